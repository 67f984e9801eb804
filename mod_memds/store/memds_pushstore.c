/* memds_pushstore.c: push channels and pending notifications in
 * PostgreSQL (memds_pushstore.h). */
#include "store/memds_pushstore.h"
#include "store/memds_store_sql.h"

#include <apr_strings.h>
#include <string.h>

apr_status_t memds_push_register(memds_store_t *st, const char *account,
                                 const char *devid, const char *channel,
                                 const char *address)
{
    qargs_t a;
    int n = 0;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_str(&a, channel);
    qa_str(&a, address);
    rv = q_cmd(st, &n, "push_register",
               channel ? "INSERT INTO memds.push_channels (device_id, channel,"
                         " address) SELECT device_id, $3, $4 FROM"
                         " memds.devices WHERE account = $1 AND devid = $2"
                         " ON CONFLICT (device_id) DO UPDATE SET"
                         " channel = EXCLUDED.channel,"
                         " address = EXCLUDED.address, created_at = now()"
                       : "DELETE FROM memds.push_channels WHERE device_id IN"
                         " (SELECT device_id FROM memds.devices WHERE"
                         " account = $1 AND devid = $2) AND $3::text IS NULL"
                         " AND $4::text IS NULL",
               &a);
    return rv == APR_SUCCESS && n == 0 ? APR_ENOENT : rv;
}

const char *memds_push_channel_check(const char *channel, const char *address)
{
    const char *c, *host;
    apr_size_t n = 0;

    if (channel == NULL || address == NULL) {
        return "a channel and an address are needed";
    }
    if (strcmp(channel, "sms") == 0) {
        c = address + (*address == '+');
        for (; *c; ++c, ++n) {
            if (*c < '0' || *c > '9') {
                return "the channel sms takes a phone number: an optional + "
                       "and 3 to 20 digits";
            }
        }
        return n >= 3 && n <= 20 ? NULL
                                 : "the channel sms takes a phone number: an "
                                   "optional + and 3 to 20 digits";
    }
    if (strcmp(channel, "http") != 0) {
        return "the channel is http or sms";
    }
    host = strncmp(address, "http://", 7) == 0    ? address + 7
           : strncmp(address, "https://", 8) == 0 ? address + 8
                                                  : NULL;
    if (host == NULL || *host == '\0' || *host == '/' || *host == ':'
        || *host == '?' || *host == '#') {
        return "the channel http takes an http:// or https:// URL with a host";
    }
    for (c = address; *c; ++c) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            return "the URL has a space or a control character";
        }
    }
    return c - address > 2048 ? "the URL is longer than 2048 bytes" : NULL;
}

apr_status_t memds_push_pending_of(memds_store_t *st,
                                   apr_array_header_t **prows,
                                   apr_int64_t device_id,
                                   apr_int64_t session_pk)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_i64(&a, session_pk);
    rv = q_run(st, &res, "push_pending_of",
               "SELECT p.store, p.sync_type, p.ui_mode, p.attempts,"
               " p.first_at::text, p.due_at::text, p.last_error,"
               " coalesce(p.last_at >= s.created_at, false)"
               " FROM memds.push_pending p LEFT JOIN memds.sessions s"
               "  ON s.session_pk = $2::bigint"
               " WHERE p.device_id = $1::bigint"
               " ORDER BY p.store COLLATE \"C\"",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *prows = apr_array_make(st->pool, 2, sizeof(memds_push_pend_t *));
    for (i = 0; i < PQntuples(res); ++i) {
        memds_push_pend_t *r = apr_pcalloc(st->pool, sizeof(*r));
        r->store = col_str(res, i, 0, st->pool);
        r->sync_type = col_int(res, i, 1, 206);
        r->ui_mode = col_int(res, i, 2, 1);
        r->attempts = col_int(res, i, 3, 0);
        r->first_at = col_str(res, i, 4, st->pool);
        r->due_at = col_str(res, i, 5, st->pool);
        r->last_error = PQgetisnull(res, i, 6) ? NULL
                                               : col_str(res, i, 6, st->pool);
        r->in_session = col_bool(res, i, 7);
        APR_ARRAY_PUSH(*prows, memds_push_pend_t *) = r;
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_push_keep(memds_store_t *st, apr_int64_t device_id,
                             const memds_push_pend_t *row, int hold_ms)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, row->store);
    qa_int(&a, row->sync_type);
    qa_int(&a, row->ui_mode);
    qa_str(&a, row->first_at);
    qa_str(&a, row->due_at);
    qa_int(&a, row->attempts);
    qa_str(&a, row->last_error);
    qa_int(&a, hold_ms);
    return q_cmd(st, NULL, "push_keep",
                 "INSERT INTO memds.push_pending (device_id, store, sync_type,"
                 " ui_mode, first_at, due_at, attempts, last_error)"
                 " VALUES ($1::bigint, $2, $3::integer, $4::integer,"
                 " $5::timestamptz, greatest($6::timestamptz, now()"
                 " + $9::integer * interval '1 millisecond'), $7::integer, $8)"
                 " ON CONFLICT (device_id, store) DO UPDATE SET due_at ="
                 " greatest(memds.push_pending.due_at, now()"
                 " + $9::integer * interval '1 millisecond')",
                 &a);
}

apr_status_t memds_push_event(memds_store_t *st, int *pn, const char *account,
                              const char *folder, int delay_ms)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_int(&a, delay_ms);
    *pn = 0;
    return q_cmd(
        st, pn, "push_event",
        "INSERT INTO memds.push_pending (device_id, store, due_at)"
        " SELECT s.device_id, s.store,"
        "  now() + $3::integer * interval '1 millisecond'"
        " FROM memds.sync_state s JOIN memds.devices d USING (device_id)"
        " JOIN memds.push_channels c USING (device_id)"
        " WHERE d.account = $1 AND d.wipe IS NULL"
        " AND (lower(s.store) = lower($2) OR lower(s.store) IN ('email',"
        "  'mail'))"
        " ON CONFLICT (device_id, store) DO UPDATE SET last_at = now()",
        &a);
}

apr_status_t memds_push_next_due(memds_store_t *st, apr_time_t *pat)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    rv = q_row(st, &res, "push_next_due",
               "SELECT (extract(epoch FROM min(due_at)) * 1000000)::bigint"
               " FROM memds.push_pending",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pat = (apr_time_t)col_i64(res, 0, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_push_due(memds_store_t *st, apr_array_header_t **prows,
                            int limit)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    memds_push_due_t *cur = NULL;
    int i, n;

    qa_init(&a, st->pool);
    qa_int(&a, limit);
    rv = q_run(
        st, &res, "push_due",
        "SELECT p.device_id, d.account, d.devid, c.channel, c.address,"
        " k.server_id, k.password, k.nonce, p.store, p.sync_type, p.ui_mode,"
        " p.attempts, d.devinf"
        " FROM memds.push_pending p JOIN memds.devices d USING (device_id)"
        " JOIN memds.push_channels c USING (device_id)"
        " LEFT JOIN memds.server_credentials k ON k.account = d.account"
        "  AND k.devid = d.devid"
        " WHERE p.due_at <= now() AND d.wipe IS DISTINCT FROM 'wiped'"
        " AND NOT EXISTS"
        "  (SELECT 1 FROM memds.sessions x WHERE x.device_id = p.device_id"
        "   AND NOT x.finished AND x.expires_at > now()"
        "   AND x.phase <> 'suspended')"
        " AND p.device_id IN (SELECT DISTINCT device_id FROM"
        "  memds.push_pending WHERE due_at <= now() ORDER BY device_id"
        "  LIMIT $1::integer)"
        " ORDER BY p.device_id, p.store COLLATE \"C\""
        " FOR UPDATE OF p SKIP LOCKED",
        &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *prows = apr_array_make(st->pool, 4, sizeof(memds_push_due_t *));
    for (i = 0; i < n; ++i) {
        apr_int64_t id = col_i64(res, i, 0, 0);
        if (cur == NULL || cur->device_id != id) {
            cur = apr_pcalloc(st->pool, sizeof(*cur));
            cur->device_id = id;
            cur->account = col_str(res, i, 1, st->pool);
            cur->devid = col_str(res, i, 2, st->pool);
            cur->channel = col_str(res, i, 3, st->pool);
            cur->address = col_str(res, i, 4, st->pool);
            cur->server_id = PQgetisnull(res, i, 5)
                                 ? NULL
                                 : col_str(res, i, 5, st->pool);
            cur->password = PQgetisnull(res, i, 6)
                                ? NULL
                                : col_str(res, i, 6, st->pool);
            cur->nonce = PQgetisnull(res, i, 7) ? NULL
                                                : col_str(res, i, 7, st->pool);
            cur->stores = apr_array_make(st->pool, 2, sizeof(const char *));
            cur->sync_type = col_int(res, i, 9, 206);
            cur->devinf = PQgetisnull(res, i, 12)
                              ? NULL
                              : col_bytes(res, i, 12, &cur->devinf_len,
                                          st->pool);
            APR_ARRAY_PUSH(*prows, memds_push_due_t *) = cur;
        }
        APR_ARRAY_PUSH(cur->stores, const char *) = col_str(res, i, 8,
                                                            st->pool);
        if (col_int(res, i, 10, 1) > cur->ui_mode) {
            cur->ui_mode = col_int(res, i, 10, 1);
        }
        if (col_int(res, i, 11, 0) > cur->attempts) {
            cur->attempts = col_int(res, i, 11, 0);
        }
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_push_delivered(memds_store_t *st, apr_int64_t device_id,
                                  const apr_array_header_t *stores)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, text_array((const char *const *)stores->elts, stores->nelts,
                          st->pool));
    return q_cmd(st, NULL, "push_delivered",
                 "DELETE FROM memds.push_pending WHERE device_id = $1::bigint"
                 " AND store = ANY ($2::text[])",
                 &a);
}

apr_status_t memds_push_failed(memds_store_t *st, apr_int64_t device_id,
                               const char *why)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, why);
    return q_cmd(st, NULL, "push_failed",
                 "UPDATE memds.push_pending SET attempts = attempts + 1,"
                 " last_error = $2, due_at = now() + least(300,"
                 " power(2, least(attempts, 9)))::integer * interval '1 second'"
                 " WHERE device_id = $1::bigint",
                 &a);
}
