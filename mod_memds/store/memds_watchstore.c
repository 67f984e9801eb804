/* memds_watchstore.c: the IMAP IDLE watcher's leases in PostgreSQL
 * (memds_watchstore.h). */
#include "store/memds_watchstore.h"
#include "store/memds_store_sql.h"

#include <apr_strings.h>

/* An account is wanted while one of its devices (not wiped) has a channel. */
#define WANTED(w) \
    "EXISTS (SELECT 1 FROM memds.devices d JOIN memds.push_channels c" \
    " USING (device_id) WHERE d.account = " w ".account" \
    " AND d.wipe IS DISTINCT FROM 'wiped')"

apr_status_t memds_watch_note(memds_store_t *st, const char *account,
                              const char *server)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, server);
    return q_cmd(st, NULL, "watch_note",
                 "INSERT INTO memds.push_watch (account, imap_server)"
                 " VALUES ($1, $2) ON CONFLICT DO NOTHING",
                 &a);
}

apr_status_t memds_watch_leases(memds_store_t *st, apr_array_header_t **pheld,
                                apr_array_header_t **pnew, const char *server,
                                const char *node, int ttl_ms, int max)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, server);
    qa_str(&a, node);
    rv = q_cmd(st, NULL, "watch_unwanted",
               "UPDATE memds.push_watch w SET node = NULL, lease_until = NULL,"
               " watched_since = NULL WHERE w.imap_server = $1 AND w.node = $2"
               " AND NOT " WANTED("w"),
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    qa_int(&a, ttl_ms);
    rv = q_run(st, &res, "watch_renew",
               "UPDATE memds.push_watch SET lease_until = now()"
               " + $3::integer * interval '1 millisecond'"
               " WHERE imap_server = $1 AND node = $2 RETURNING account",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *pheld = apr_array_make(st->pool, n + 4, sizeof(const char *));
    for (i = 0; i < n; ++i) {
        APR_ARRAY_PUSH(*pheld, const char *) = col_str(res, i, 0, st->pool);
    }
    PQclear(res);
    *pnew = apr_array_make(st->pool, 4, sizeof(memds_watch_lease_t));
    if (n >= max) {
        return APR_SUCCESS;
    }
    qa_int(&a, max - n);
    rv = q_run(st, &res, "watch_take",
               "UPDATE memds.push_watch w SET node = $2, lease_until = now()"
               " + $3::integer * interval '1 millisecond',"
               " watched_since = now(), last_error = NULL"
               " FROM (SELECT x.account FROM memds.push_watch x"
               "  WHERE x.imap_server = $1 AND (x.node IS NULL"
               "  OR x.lease_until < now()) AND " WANTED(
                   "x") "  ORDER BY x.account LIMIT $4::integer"
                        "  FOR UPDATE OF x SKIP LOCKED) f"
                        " WHERE w.imap_server = $1 AND w.account = f.account"
                        " RETURNING w.account, coalesce(w.uidvalidity, 0),"
                        " coalesce(w.uidnext, 0)",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    for (i = 0; i < n; ++i) {
        memds_watch_lease_t *l = apr_array_push(*pnew);
        l->account = col_str(res, i, 0, st->pool);
        l->uidvalidity = col_i64(res, i, 1, 0);
        l->uidnext = col_i64(res, i, 2, 0);
        APR_ARRAY_PUSH(*pheld, const char *) = l->account;
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_watch_seen(memds_store_t *st, const char *server,
                              const char *node, const char *account,
                              apr_int64_t uidvalidity, apr_int64_t uidnext,
                              int event)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, server);
    qa_str(&a, node);
    qa_str(&a, account);
    qa_i64(&a, uidvalidity);
    qa_i64(&a, uidnext);
    qa_bool(&a, event);
    return q_cmd(st, NULL, "watch_seen",
                 "UPDATE memds.push_watch SET uidvalidity = $4::bigint,"
                 " uidnext = $5::bigint, last_error = NULL,"
                 " last_event_at = CASE WHEN $6::boolean THEN now()"
                 "  ELSE last_event_at END"
                 " WHERE imap_server = $1 AND node = $2 AND account = $3",
                 &a);
}

apr_status_t memds_watch_error(memds_store_t *st, const char *server,
                               const char *node, const char *account,
                               const char *why)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, server);
    qa_str(&a, node);
    qa_str(&a, account);
    qa_str(&a, why);
    return q_cmd(st, NULL, "watch_error",
                 "UPDATE memds.push_watch SET last_error = $4"
                 " WHERE imap_server = $1 AND node = $2 AND account = $3",
                 &a);
}

apr_status_t memds_watch_release(memds_store_t *st, const char *node)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, node);
    return q_cmd(st, NULL, "watch_release",
                 "UPDATE memds.push_watch SET node = NULL, lease_until = NULL,"
                 " watched_since = NULL WHERE node = $1",
                 &a);
}
