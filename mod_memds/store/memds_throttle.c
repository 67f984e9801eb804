/* memds_throttle.c: throttling, autoblock and quarantine in PostgreSQL
 * (memds_throttle.h, schema/014). */
#include "store/memds_throttle.h"
#include "store/memds_store_sql.h"

#include <apr_hash.h>
#include <apr_strings.h>

/* Sessions in progress, as the concurrent limits count them. */
#define IN_PROGRESS \
    "NOT s.finished AND s.phase <> 'suspended' AND s.expires_at > now()"

/* Seconds until ts + span (at least 1). */
#define WAIT(ts, span) \
    "greatest(1, ceil(extract(epoch FROM " ts " + interval '" span \
    "' - now())))::integer"

apr_status_t memds_throttle_usage(memds_store_t *st, memds_usage_t *u,
                                  unsigned want, apr_int64_t device_id,
                                  const char *account, const char *devid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    const char *rows;

#define DEV_MIN "device_id = $1::bigint AND started_at > now() - interval '1 minute'"
#define ANY_MIN "started_at > now() - interval '1 minute'"
    /* The rows of memds.session_usage the wanted figures need: the
     * account's last hour, the device's last minute (one index range,
     * session_usage_device: the default limit alone), or none. */
    if (want & (MEMDS_USAGE_ACCT_MIN | MEMDS_USAGE_DEV_BYTES
                | MEMDS_USAGE_ACCT_BYTES)) {
        rows = "account = $2 AND started_at > now() - interval '1 hour'";
    }
    else if (want & MEMDS_USAGE_DEV_MIN) {
        rows = DEV_MIN;
    }
    else {
        rows = "false";
    }
    /* (results come in binary: every number is cast to its C type) */
    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_row(
        st, &res, "throttle_usage",
        apr_pstrcat(
            st->pool,
            "SELECT u.dm, u.dmw, u.am, u.amw, u.db, u.dbw, u.ab, u.abw, ",
            (want & MEMDS_USAGE_DEV_CONC)
                ? "(SELECT count(*) FROM memds.sessions s"
                  " WHERE s.device_id = $1::bigint AND " IN_PROGRESS "), "
                : "0::bigint, ",
            (want & MEMDS_USAGE_ACCT_CONC)
                ? "(SELECT count(*) FROM memds.sessions s JOIN memds.devices d"
                  " USING (device_id) WHERE d.account = $2"
                  " AND " IN_PROGRESS "),"
                : "0::bigint,",
            " h.held_until IS NOT NULL,"
            " CASE WHEN h.held_until = 'infinity' THEN -1"
            "  ELSE " WAIT("h.held_until", "0 s") " END,"
            " h.held_reason"
            " FROM (SELECT"
            "  count(*) FILTER (WHERE " DEV_MIN ") AS dm,"
            "  " WAIT("min(started_at) FILTER (WHERE " DEV_MIN ")",
                      "1 minute") "   AS dmw,"
            "  count(*) FILTER (WHERE " ANY_MIN ") AS am,"
            "  " WAIT("min(started_at) FILTER (WHERE " ANY_MIN ")",
                      "1 minute") "   AS amw,"
            "  coalesce(sum(bytes) FILTER (WHERE device_id = $1::bigint), 0)"
            "::bigint AS db,"
            "  " WAIT("min(started_at) FILTER (WHERE device_id = $1::bigint)",
                      "1 hour") " AS dbw,"
            "  coalesce(sum(bytes), 0)::bigint AS ab,"
            "  " WAIT("min(started_at)", "1 hour") " AS abw"
            "  FROM memds.session_usage WHERE ", rows, ") u"
            " LEFT JOIN memds.device_auth h ON h.account = $2 AND h.devid = $3"
            "  AND h.held_until > now()",
            NULL),
        &a);
#undef DEV_MIN
#undef ANY_MIN
    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(u, 0, sizeof(*u));
    u->dev_min = col_int(res, 0, 0, 0);
    u->dev_min_wait = col_int(res, 0, 1, 60);
    u->acct_min = col_int(res, 0, 2, 0);
    u->acct_min_wait = col_int(res, 0, 3, 60);
    u->dev_bytes = col_i64(res, 0, 4, 0);
    u->dev_bytes_wait = col_int(res, 0, 5, 3600);
    u->acct_bytes = col_i64(res, 0, 6, 0);
    u->acct_bytes_wait = col_int(res, 0, 7, 3600);
    u->dev_conc = col_int(res, 0, 8, 0);
    u->acct_conc = col_int(res, 0, 9, 0);
    u->held = col_bool(res, 0, 10);
    u->held_wait = col_int(res, 0, 11, -1);
    u->held_reason = PQgetisnull(res, 0, 12) ? NULL
                                             : col_str(res, 0, 12, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_throttle_failed(memds_store_t *st, int *pheld,
                                   const char *account, const char *devid,
                                   int max, int block_secs, const char *why)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    *pheld = 0;
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_int(&a, max);
    /* (a row exists for every device that tried to log in; one that has
     * none starts at 1) */
    rv = q_row(
        st, &res, "throttle_failed",
        "INSERT INTO memds.device_auth AS a (account, devid, failed_sessions)"
        " VALUES ($1, $2, 1)"
        " ON CONFLICT (account, devid) DO UPDATE SET"
        " failed_sessions = a.failed_sessions + 1, updated_at = now()"
        " RETURNING failed_sessions >= $3::integer AND $3::integer > 0"
        "  AND (held_until IS NULL OR held_until <= now())",
        &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pheld = col_bool(res, 0, 0);
    PQclear(res);
    if (!*pheld) {
        return APR_SUCCESS;
    }
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_int(&a, block_secs);
    qa_str(&a, why);
    return q_cmd(st, NULL, "throttle_hold",
                 "UPDATE memds.device_auth SET failed_sessions = 0,"
                 " held_until = CASE WHEN $3::integer > 0"
                 "  THEN now() + $3::integer * interval '1 second'"
                 "  ELSE 'infinity' END,"
                 " held_reason = $4, held_at = now(), updated_at = now()"
                 " WHERE account = $1 AND devid = $2",
                 &a);
}

apr_status_t memds_throttle_reset(memds_store_t *st, const char *account,
                                  const char *devid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    return q_cmd(st, NULL, "throttle_reset",
                 "UPDATE memds.device_auth SET failed_sessions = 0"
                 " WHERE account = $1 AND devid = $2 AND failed_sessions > 0",
                 &a);
}

apr_status_t memds_throttle_block(memds_store_t *st, const char *account,
                                  const char *devid, const char *until,
                                  const char *reason)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_str(&a, until);
    qa_str(&a, reason);
    return q_cmd(st, NULL, "throttle_block",
                 "INSERT INTO memds.device_auth AS a (account, devid,"
                 " held_until, held_reason, held_at)"
                 " VALUES ($1, $2, coalesce($3::timestamptz, 'infinity'), $4,"
                 " now())"
                 " ON CONFLICT (account, devid) DO UPDATE SET"
                 " held_until = excluded.held_until,"
                 " held_reason = excluded.held_reason, held_at = now(),"
                 " updated_at = now()",
                 &a);
}

apr_status_t memds_throttle_unblock(memds_store_t *st, const char *account,
                                    const char *devid)
{
    qargs_t a;
    int n = 0;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_cmd(st, &n, "throttle_unblock",
               "UPDATE memds.device_auth SET held_until = NULL,"
               " held_reason = NULL, held_at = NULL, failed_sessions = 0,"
               " failures = 0, blocked_until = NULL, updated_at = now()"
               " WHERE account = $1 AND devid = $2",
               &a);
    return rv == APR_SUCCESS && n == 0 ? APR_ENOENT : rv;
}

#define UTC(c) "to_char(" c " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"

apr_status_t memds_throttle_held(memds_store_t *st, apr_array_header_t **prows,
                                 const char *account)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    rv = q_run(st, &res, "throttle_held",
               "SELECT account, devid, CASE WHEN held_until = 'infinity'"
               " THEN 'unblocked by an administrator' ELSE " UTC("held_until")
               " END, coalesce(held_reason, ''), coalesce(" UTC("held_at")
               ", ''), failed_sessions"
               " FROM memds.device_auth WHERE held_until > now()"
               " AND ($1::text IS NULL OR account = $1)"
               " ORDER BY account, devid",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *prows = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_held_t *));
    for (i = 0; i < n; ++i) {
        memds_held_t *h = apr_pcalloc(st->pool, sizeof(*h));
        h->account = col_str(res, i, 0, st->pool);
        h->devid = col_str(res, i, 1, st->pool);
        h->until = col_str(res, i, 2, st->pool);
        h->reason = col_str(res, i, 3, st->pool);
        h->since = col_str(res, i, 4, st->pool);
        h->failed_sessions = col_int(res, i, 5, 0);
        APR_ARRAY_PUSH(*prows, memds_held_t *) = h;
    }
    PQclear(res);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ quarantine */

/* The columns of memds_quar_t, read by quar_of_row. */
#define QUAR_COLS \
    "z.store, z.guid, z.state, z.reason, coalesce(z.last_status, 0)," \
    " z.count, " UTC("z.first_at") ", " UTC("z.last_at")

static memds_quar_t *quar_of_row(PGresult *res, int i, int base, apr_pool_t *p)
{
    memds_quar_t *q = apr_pcalloc(p, sizeof(*q));

    q->store = col_str(res, i, base, p);
    q->guid = col_str(res, i, base + 1, p);
    q->state = col_str(res, i, base + 2, p);
    q->reason = col_str(res, i, base + 3, p);
    q->last_status = col_int(res, i, base + 4, 0);
    q->count = col_int(res, i, base + 5, 0);
    q->first_at = col_str(res, i, base + 6, p);
    q->last_at = col_str(res, i, base + 7, p);
    return q;
}

apr_status_t memds_quarantine_note(memds_store_t *st,
                                   apr_array_header_t **prows,
                                   apr_int64_t session_pk,
                                   apr_int64_t device_id,
                                   const char *const *refs,
                                   const char *const *luids,
                                   const apr_int64_t *codes, int n,
                                   int threshold)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, k;

    if (prows) {
        *prows = apr_array_make(st->pool, 1, sizeof(memds_quar_t *));
    }
    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, text_array(refs, n, st->pool));
    qa_str(&a, text_array(luids, n, st->pool));
    qa_str(&a, int_array(codes, n, st->pool));
    qa_i64(&a, device_id);
    qa_int(&a, threshold);
    /* The items are found as queue_status_many finds them (three
     * equi-joins, not a join on an OR: a nested loop over the queue). */
    rv = q_run(
        st, &res, "quarantine_note",
        "WITH u AS (SELECT * FROM unnest($2::text[], $3::text[],"
        "  $4::integer[]) AS u(g, l, c) WHERE c >= 300 AND c <> 418),"
        " t AS (SELECT q.store, q.guid, u.c FROM memds.session_queue q"
        "  JOIN u ON q.guid = u.g WHERE q.session_pk = $1::bigint"
        "  UNION ALL SELECT q.store, q.guid, u.c FROM memds.session_queue q"
        "  JOIN u ON '#' || q.n = u.g WHERE q.session_pk = $1::bigint"
        "  UNION ALL SELECT q.store, q.guid, u.c FROM memds.session_queue q"
        "  JOIN u ON q.luid = u.l WHERE q.session_pk = $1::bigint"
        "  AND u.g IS NULL),"
        " f AS (SELECT DISTINCT ON (store, guid) store, guid, c FROM t"
        "  ORDER BY store, guid)"
        " INSERT INTO memds.quarantine AS z (device_id, store, guid, state,"
        " reason, last_status, count, held_at)"
        " SELECT $5::bigint, f.store, f.guid,"
        "  CASE WHEN $6::integer <= 1 THEN 'held' ELSE 'counting' END,"
        "  'the device answered ' || f.c, f.c, 1,"
        "  CASE WHEN $6::integer <= 1 THEN now() END FROM f"
        " ON CONFLICT (device_id, store, guid) DO UPDATE SET"
        " count = z.count + 1, last_status = excluded.last_status,"
        " reason = excluded.reason, last_at = now(),"
        " state = CASE WHEN z.state = 'held' OR z.count + 1 >= $6::integer"
        "  THEN 'held' ELSE z.state END,"
        " held_at = CASE WHEN z.state <> 'held' AND z.count + 1 >= $6::integer"
        "  THEN now() ELSE z.held_at END"
        " RETURNING " QUAR_COLS ", z.state = 'held' AND z.held_at = now()",
        &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    k = PQntuples(res);
    for (i = 0; prows && i < k; ++i) {
        memds_quar_t *q = quar_of_row(res, i, 0, st->pool);
        q->newly_held = col_bool(res, i, 8);
        APR_ARRAY_PUSH(*prows, memds_quar_t *) = q;
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_quarantine_count(memds_store_t *st, int *pheld,
                                    apr_int64_t device_id, const char *store,
                                    const char *guid, int status,
                                    const char *reason, int threshold)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, guid);
    qa_int(&a, status);
    qa_str(&a, reason);
    qa_int(&a, threshold);
    rv = q_row(st, &res, "quarantine_count",
               "INSERT INTO memds.quarantine AS z (device_id, store, guid,"
               " state, reason, last_status, count, held_at)"
               " VALUES ($1::bigint, $2, $3,"
               "  CASE WHEN $6::integer <= 1 THEN 'held' ELSE 'counting' END,"
               "  $5, $4::integer, 1,"
               "  CASE WHEN $6::integer <= 1 THEN now() END)"
               " ON CONFLICT (device_id, store, guid) DO UPDATE SET"
               " count = z.count + 1, reason = $5, last_status = $4::integer,"
               " last_at = now(),"
               " state = CASE WHEN z.state = 'held' OR z.count + 1 >= $6::integer"
               "  THEN 'held' ELSE z.state END,"
               " held_at = CASE WHEN z.state <> 'held'"
               "  AND z.count + 1 >= $6::integer THEN now() ELSE z.held_at END"
               " RETURNING state = 'held' AND held_at = now()",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pheld = col_bool(res, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_quarantine_of(memds_store_t *st, apr_hash_t **pset,
                                 apr_int64_t device_id, const char *store)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    rv = q_run(st, &res, "quarantine_of",
               "SELECT guid, state FROM memds.quarantine"
               " WHERE device_id = $1::bigint AND store = $2"
               " AND state <> 'counting'",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pset = apr_hash_make(st->pool);
    n = PQntuples(res);
    for (i = 0; i < n; ++i) {
        apr_hash_set(*pset, col_str(res, i, 0, st->pool), APR_HASH_KEY_STRING,
                     col_str(res, i, 1, st->pool));
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_quarantine_done(memds_store_t *st, apr_int64_t session_pk,
                                   apr_int64_t device_id, const char *store)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    return q_cmd(st, NULL, "quarantine_done",
                 "DELETE FROM memds.quarantine z USING memds.session_queue q"
                 " WHERE z.device_id = $2::bigint AND z.store = $3"
                 " AND z.state <> 'held' AND q.session_pk = $1::bigint"
                 " AND q.store = z.store AND q.guid = z.guid"
                 " AND (q.status < 300 OR q.status = 418"
                 /* (taken with no status of its own: schema/025) */
                 "  OR (q.status IS NULL AND q.n <= (SELECT ss.acked_upto"
                 "   FROM memds.session_stores ss WHERE ss.session_pk ="
                 "   $1::bigint AND ss.store = z.store)))",
                 &a);
}

apr_status_t memds_quarantine_list(memds_store_t *st,
                                   apr_array_header_t **prows,
                                   const char *account, const char *devid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_run(st, &res, "quarantine_list",
               "SELECT d.account, d.devid, " QUAR_COLS
               " FROM memds.quarantine z JOIN memds.devices d USING (device_id)"
               " WHERE ($1::text IS NULL OR d.account = $1)"
               " AND ($2::text IS NULL OR d.devid = $2)"
               " ORDER BY z.state = 'counting', d.account, d.devid, z.store,"
               " z.first_at",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *prows = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_quar_t *));
    for (i = 0; i < n; ++i) {
        memds_quar_t *q = quar_of_row(res, i, 2, st->pool);
        q->account = col_str(res, i, 0, st->pool);
        q->devid = col_str(res, i, 1, st->pool);
        APR_ARRAY_PUSH(*prows, memds_quar_t *) = q;
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_quarantine_release(memds_store_t *st, int *pn,
                                      const char *account, const char *devid,
                                      const char *guid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_str(&a, guid);
    return q_cmd(st, pn, "quarantine_release",
                 "UPDATE memds.quarantine z SET state = 'released', count = 0,"
                 " released_at = now() FROM memds.devices d"
                 " WHERE d.device_id = z.device_id AND z.state = 'held'"
                 " AND d.account = $1 AND ($2::text IS NULL OR d.devid = $2)"
                 " AND ($3::text IS NULL OR z.guid = $3)",
                 &a);
}

apr_status_t memds_throttle_gauges(memds_store_t *st, apr_int64_t *pitems,
                                   apr_int64_t *pdevices)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    rv = q_row(st, &res, "throttle_gauges",
               "SELECT (SELECT count(*) FROM memds.quarantine"
               " WHERE state = 'held'),"
               " (SELECT count(*) FROM memds.device_auth"
               " WHERE held_until > now())",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pitems = col_i64(res, 0, 0, 0);
    *pdevices = col_i64(res, 0, 1, 0);
    PQclear(res);
    return APR_SUCCESS;
}
