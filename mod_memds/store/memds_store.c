/* memds_store.c: the protocol engine's state in PostgreSQL over libpq (see
 * memds_store.h and schema/002_engine.sql).
 *
 * Every statement goes through q_run: PQexecParams with text parameters
 * (bytea parameters in binary format, so that any byte round-trips) and
 * binary results. Binary results let bytea come back byte for byte without
 * an unescape step; the col_* helpers decode the few binary types we select
 * (int2/4/8 by their length, bool, text, bytea). No SQL is ever built from
 * values. */
#include "store/memds_store.h"
#include "store/memds_store_sql.h"

#include <apr_hash.h>

#include <apr_sha1.h>
#include <apr_strings.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- transactions */

void memds_store_init(memds_store_t *st, memds_pgconn_t *conn, apr_pool_t *p)
{
    st->conn = conn;
    st->pool = p;
    st->err = NULL;
}

apr_status_t memds_store_begin(memds_store_t *st)
{
    /* READ COMMITTED on purpose: each statement sees what other sessions
     * committed before it, which memds_store_items_seq relies on. */
    /* (sent with the transaction's first statement: q_later) */
    apr_status_t rv = q_later(st, "begin",
                              "BEGIN ISOLATION LEVEL READ COMMITTED", NULL);

    if (rv == APR_SUCCESS) {
        memds_pgconn_tx(st->conn, 0, 0); /* (latency: BEGIN to the end) */
    }
    return rv;
}

/* The end of a COMMIT that q_run or q_run_many gave rv and res (NULL after a
 * failure): the transaction's latency recorded, res cleared. A COMMIT of a
 * transaction that an earlier error aborted "succeeds" with the tag
 * ROLLBACK: the engine must not believe its state was saved. */
static apr_status_t commit_ended(memds_store_t *st, apr_status_t rv,
                                 PGresult *res)
{
    int committed = rv == APR_SUCCESS
                    && strcmp(PQcmdStatus(res), "COMMIT") == 0;

    memds_pgconn_tx(st->conn, 1, !committed);
    if (rv == APR_SUCCESS && !committed) {
        st->err = apr_psprintf(st->pool,
                               "store: commit: the transaction was "
                               "rolled back (%s)",
                               PQcmdStatus(res));
        rv = APR_EGENERAL;
    }
    PQclear(res);
    return rv;
}

apr_status_t memds_store_commit(memds_store_t *st)
{
    PGresult *res = NULL;
    apr_status_t rv = q_run(st, &res, "commit", "COMMIT", NULL,
                            PGRES_COMMAND_OK);

    return commit_ended(st, rv, res);
}

void memds_store_rollback(memds_store_t *st)
{
    PGconn *c = memds_pgconn_native(st->conn);
    PGresult *res;

    memds_pgconn_tx(st->conn, 1, 1);
    (void)q_sync(st); /* (what q_later sent: its failure is no news here) */
    switch (PQtransactionStatus(c)) {
    case PQTRANS_IDLE: return;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR: break;
    default: /* ACTIVE (a query still running) or UNKNOWN (connection bad) */
        memds_pgconn_mark_broken(st->conn);
        return;
    }
    res = PQexec(c, "ROLLBACK");
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        memds_pgconn_mark_broken(st->conn);
    }
    PQclear(res);
}

/* --------------------------------------------------------------- auth */

apr_status_t memds_store_auth_get(memds_store_t *st, memds_auth_row_t *row,
                                  const char *account, const char *devid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_run(st, &res, "auth_get",
               "SELECT nonce, failures,"
               " coalesce(blocked_until > now(), false)"
               " FROM memds.device_auth"
               " WHERE account = $1 AND devid = $2 FOR UPDATE",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (PQntuples(res) == 0) {
        row->nonce = "";
        row->failures = 0;
        row->blocked = 0;
    }
    else {
        row->nonce = col_str(res, 0, 0, st->pool);
        row->failures = col_int(res, 0, 1, 0);
        row->blocked = col_bool(res, 0, 2);
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_auth_set_nonce(memds_store_t *st, const char *account,
                                        const char *devid, const char *nonce)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_str(&a, nz(nonce));
    return q_cmd(st, NULL, "auth_set_nonce",
                 "INSERT INTO memds.device_auth (account, devid, nonce)"
                 " VALUES ($1, $2, $3)"
                 " ON CONFLICT (account, devid) DO UPDATE"
                 " SET nonce = EXCLUDED.nonce, updated_at = now()",
                 &a);
}

apr_status_t memds_store_auth_failed(memds_store_t *st, const char *account,
                                     const char *devid, int max_failures,
                                     int window_secs, int block_secs)
{
    qargs_t a;

    /* A failure after the window ended starts a new window at 1. Reaching
     * max_failures (when > 0) blocks for block_secs; a further failure
     * inside the same window blocks again. */
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_int(&a, max_failures);
    qa_int(&a, window_secs);
    qa_int(&a, block_secs);
    return q_cmd(
        st, NULL, "auth_failed",
        "INSERT INTO memds.device_auth AS a"
        " (account, devid, failures, window_start, blocked_until)"
        " VALUES ($1, $2, 1, now(),"
        "  CASE WHEN $3::integer > 0 AND 1 >= $3::integer"
        "   THEN now() + $5::integer * interval '1 second' END)"
        " ON CONFLICT (account, devid) DO UPDATE SET"
        " failures = CASE"
        "  WHEN a.window_start <= now() - $4::integer * interval '1 second'"
        "  THEN 1 ELSE a.failures + 1 END,"
        " window_start = CASE"
        "  WHEN a.window_start <= now() - $4::integer * interval '1 second'"
        "  THEN now() ELSE a.window_start END,"
        " blocked_until = CASE"
        "  WHEN $3::integer > 0 AND (CASE"
        "   WHEN a.window_start <= now() - $4::integer * interval '1 second'"
        "   THEN 1 ELSE a.failures + 1 END) >= $3::integer"
        "  THEN now() + $5::integer * interval '1 second'"
        "  ELSE a.blocked_until END,"
        " updated_at = now()",
        &a);
}

apr_status_t memds_store_auth_ok(memds_store_t *st, const char *account,
                                 const char *devid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    return q_cmd(st, NULL, "auth_ok",
                 "INSERT INTO memds.device_auth (account, devid)"
                 " VALUES ($1, $2)"
                 " ON CONFLICT (account, devid) DO UPDATE SET failures = 0,"
                 " window_start = now(), blocked_until = NULL,"
                 " updated_at = now()",
                 &a);
}

apr_status_t memds_store_counts(memds_store_t *st, apr_int64_t *pactive,
                                apr_int64_t *pdevices)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    rv = q_run(st, &res, "counts",
               "SELECT (SELECT count(*) FROM memds.active_sessions),"
               " (SELECT count(*) FROM memds.devices)",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pactive = col_i64(res, 0, 0, 0);
    *pdevices = col_i64(res, 0, 1, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_report(memds_store_t *st, const char *const **pcols,
                                apr_array_header_t **prows, const char *which,
                                const char *account)
{
    static const char *const sessions_cols[] = {
        "account", "device",   "session",    "phase",
        "version", "encoding", "datastores", "unacknowledged",
        "updated", "expires",  NULL
    };
    static const char *const outbox_cols[] = { "id",     "account",  "device",
                                               "state",  "attempts", "next",
                                               "status", "reason",   "created",
                                               NULL };
    static const char *const push_cols[] = { "account",  "device",  "datastore",
                                             "channel",  "address", "due",
                                             "attempts", "error",   NULL };
    const char *sql;
    const char *const *cols;
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, k, n, nc;

#define TS(x) \
    "coalesce(to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '')"
    if (strcmp(which, "sessions") == 0) {
        cols = sessions_cols;
        sql = "SELECT account, devid, session_id, phase, version, encoding,"
              " coalesce(stores, ''), pending_items::text, " TS(
                  "updated_at") ", " TS("expires_at") " FROM "
                                                      "memds.active_sessions"
                                                      " WHERE $1::text IS NULL "
                                                      "OR account = $1"
                                                      " ORDER BY account, "
                                                      "devid, updated_at";
    }
    else if (strcmp(which, "outbox") == 0) {
        cols = outbox_cols;
        sql = "SELECT o.outbox_id::text, o.account, d.devid, o.state,"
              " o.attempts::text, " TS(
                  "o.next_attempt_at") ", coalesce(o.status::text, ''), "
                                       "coalesce(o.reason, ''), " TS(
                                           "o.created_"
                                           "at") " FROM"
                                                 " memd"
                                                 "s."
                                                 "outbo"
                                                 "x o "
                                                 "JOIN "
                                                 "memds"
                                                 ".devi"
                                                 "ces d"
                                                 " USIN"
                                                 "G "
                                                 "(devi"
                                                 "ce_"
                                                 "id) "
                                                 "WHERE"
                                                 " o."
                                                 "state"
                                                 " <> "
                                                 "'ackn"
                                                 "owled"
                                                 "ged'"
                                                 " AND "
                                                 "($1::"
                                                 "text "
                                                 "IS "
                                                 "NULL "
                                                 "OR "
                                                 "o."
                                                 "accou"
                                                 "nt = "
                                                 "$1) "
                                                 "ORDER"
                                                 " BY "
                                                 "o."
                                                 "outbo"
                                                 "x_id";
    }
    else if (strcmp(which, "push") == 0) {
        cols = push_cols;
        sql = "SELECT d.account, d.devid, p.store, c.channel, c.address, " TS(
            "p.due_at") ", p.attempts::text, coalesce(p.last_error, '')"
                        " FROM memds.push_pending p JOIN memds.devices d USING"
                        " (device_id) LEFT JOIN memds.push_channels c USING "
                        "(device_id)"
                        " WHERE $1::text IS NULL OR d.account = $1"
                        " ORDER BY d.account, d.devid, p.store";
    }
    else {
        st->err = "store: no such report";
        return APR_EINVAL;
    }
#undef TS
    for (nc = 0; cols[nc]; ++nc) {
    }
    qa_init(&a, st->pool);
    qa_str(&a, account);
    rv = q_run(st, &res, which, sql, &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *prows = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(const char **));
    for (i = 0; i < n; ++i) {
        const char **row = apr_palloc(st->pool,
                                      sizeof(char *) * (apr_size_t)nc);
        for (k = 0; k < nc; ++k) {
            row[k] = col_str(res, i, k, st->pool);
        }
        APR_ARRAY_PUSH(*prows, const char **) = row;
    }
    PQclear(res);
    *pcols = cols;
    return APR_SUCCESS;
}

apr_status_t memds_store_end_sessions(memds_store_t *st, int *pn,
                                      const char *account, const char *devid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    *pn = 0;
    return q_cmd(st, pn, "end_sessions",
                 "UPDATE memds.sessions SET expires_at = now() WHERE device_id"
                 " IN (SELECT device_id FROM memds.devices WHERE account = $1"
                 " AND devid = $2) AND NOT finished AND expires_at > now()",
                 &a);
}

apr_status_t memds_store_gauges(memds_store_t *st, apr_array_header_t **prows)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    rv = q_run(st, &res, "gauges",
               "SELECT 'outbox', state, count(*) FROM memds.outbox"
               " GROUP BY state"
               " UNION ALL SELECT 'push_pending', '', count(*)"
               " FROM memds.push_pending"
               " UNION ALL SELECT 'wipe', wipe, count(*) FROM memds.devices"
               " WHERE wipe IS NOT NULL GROUP BY wipe ORDER BY 1, 2",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *prows = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_gauge_t));
    for (i = 0; i < n; ++i) {
        memds_gauge_t *g = apr_array_push(*prows);
        g->name = col_str(res, i, 0, st->pool);
        g->label = col_str(res, i, 1, st->pool);
        g->value = col_i64(res, i, 2, 0);
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_md5_get(memds_store_t *st, const char **pinner,
                                 const char *account)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    return q_value(
        st, pinner, "md5_get",
        "SELECT inner_b64 FROM memds.md5_credentials WHERE account = $1", &a);
}

apr_status_t memds_store_md5_put(memds_store_t *st, const char *account,
                                 const char *inner_b64, const char *source)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, inner_b64);
    qa_str(&a, source);
    /* Nothing written, and no row locked, when the row already says so:
     * ON CONFLICT DO UPDATE locks the row even when its WHERE is false,
     * and every basic login of the account's devices queued on it until
     * the request's transaction ended (found by bench/load). */
    return q_cmd(
        st, NULL, "md5_put",
        "INSERT INTO memds.md5_credentials (account, inner_b64, source)"
        " SELECT $1::text, $2::text, $3::text WHERE NOT EXISTS (SELECT 1"
        " FROM memds.md5_credentials c WHERE c.account = $1::text"
        " AND c.inner_b64 = $2::text AND c.source = $3::text)"
        " ON CONFLICT (account) DO UPDATE SET"
        " inner_b64 = EXCLUDED.inner_b64, source = EXCLUDED.source,"
        " updated_at = now()"
        " WHERE md5_credentials.inner_b64 <> EXCLUDED.inner_b64"
        " OR md5_credentials.source <> EXCLUDED.source",
        &a);
}

apr_status_t memds_store_server_cred_get(memds_store_t *st,
                                         memds_server_cred_t *row,
                                         const char *account, const char *devid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_row(st, &res, "server_cred_get",
               "SELECT server_id, password, auth = 'basic', nonce"
               " FROM memds.server_credentials"
               " WHERE account = $1 AND devid = $2",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    row->server_id = col_str(res, 0, 0, st->pool); /* NULL stays NULL */
    row->password = col_str(res, 0, 1, st->pool);
    row->allow_basic = col_bool(res, 0, 2);
    row->nonce = col_str(res, 0, 3, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_server_cred_nonce(memds_store_t *st,
                                           const char *account,
                                           const char *devid, const char *nonce)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_str(&a, nonce);
    return q_cmd(st, NULL, "server_cred_nonce",
                 "UPDATE memds.server_credentials SET nonce = $3,"
                 " nonce_at = now() WHERE account = $1 AND devid = $2",
                 &a);
}

apr_status_t memds_store_server_cred_put(memds_store_t *st, const char *account,
                                         const char *devid,
                                         const memds_server_cred_t *row)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    qa_str(&a, row->server_id);
    qa_str(&a, row->password);
    qa_str(&a, row->allow_basic ? "basic" : "md5");
    return q_cmd(st, NULL, "server_cred_put",
                 "INSERT INTO memds.server_credentials"
                 " (account, devid, server_id, password, auth)"
                 " VALUES ($1, $2, $3, $4, $5)"
                 " ON CONFLICT (account, devid) DO UPDATE SET"
                 " server_id = EXCLUDED.server_id,"
                 " password = EXCLUDED.password, auth = EXCLUDED.auth,"
                 " updated_at = now()",
                 &a);
}

apr_status_t memds_store_server_cred_delete(memds_store_t *st,
                                            const char *account,
                                            const char *devid)
{
    qargs_t a;
    int n = 0;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_cmd(st, &n, "server_cred_delete",
               "DELETE FROM memds.server_credentials"
               " WHERE account = $1 AND devid = $2",
               &a);
    return rv == APR_SUCCESS && n == 0 ? APR_ENOENT : rv;
}

/* ------------------------------------------------------------ devices */

/* How old memds.devices.last_seen_at may get before a request moves it. */
#define DEVICE_SEEN_SECS "60"

#define DEVICE_COLS \
    "device_id, account, devid, coalesce(max_guid_size, 0), large_objs," \
    " devinf, wipe"

static void device_from_row(memds_store_t *st, memds_device_t *dev,
                            PGresult *res)
{
    dev->device_id = col_i64(res, 0, 0, 0);
    dev->account = col_str(res, 0, 1, st->pool);
    dev->devid = col_str(res, 0, 2, st->pool);
    dev->max_guid_size = col_int(res, 0, 3, 0);
    dev->large_objs = col_bool(res, 0, 4);
    dev->devinf = col_bytes(res, 0, 5, &dev->devinf_len, st->pool);
    dev->wipe = PQgetisnull(res, 0, 6) ? NULL : col_str(res, 0, 6, st->pool);
}

apr_status_t memds_store_device_lock(memds_store_t *st, memds_device_t *dev,
                                     const char *account, const char *devid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    /* Every request locks its device's row until the transaction ends: the
     * requests of one device run one after the other. A known device's row
     * is locked (FOR UPDATE) and not rewritten: last_seen_at moves when it
     * is a minute old (DEVICE_SEEN_SECS), so most requests write no new row
     * version of memds.devices (with its DevInf) and take no value of
     * devices_device_id_seq, as the upsert did on every request. */
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_run(st, &res, "device_lock",
               "SELECT " DEVICE_COLS ","
               " last_seen_at < now() - " DEVICE_SEEN_SECS " * interval '1 second'"
               " FROM memds.devices WHERE account = $1 AND devid = $2"
               " FOR UPDATE",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (PQntuples(res) == 1) {
        int stale = col_bool(res, 0, 7);
        device_from_row(st, dev, res);
        PQclear(res);
        if (stale) {
            int n;
            qa_init(&a, st->pool);
            qa_i64(&a, dev->device_id);
            rv = q_cmd(st, &n, "device_seen",
                       "UPDATE memds.devices SET last_seen_at = now()"
                       " WHERE device_id = $1::bigint",
                       &a);
        }
        return rv;
    }
    PQclear(res);
    /* A new device: the upsert creates the row (or, when another request
     * just did, locks it) */
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    rv = q_run(st, &res, "device_create",
               "INSERT INTO memds.devices (account, devid) VALUES ($1, $2)"
               " ON CONFLICT (account, devid) DO UPDATE SET last_seen_at = now()"
               " RETURNING " DEVICE_COLS,
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (PQntuples(res) != 1) {
        st->err = "store: device_lock: no row returned";
        PQclear(res);
        return APR_EGENERAL;
    }
    device_from_row(st, dev, res);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_wipe_store(memds_store_t *st, apr_int64_t device_id,
                                    const char *store, int *premaining)
{
    qargs_t a;
    const char *v = NULL;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    rv = q_value(
        st, &v, "wipe_store",
        "WITH m AS (DELETE FROM memds.maps WHERE device_id = $1::bigint"
        "  AND store = $2), s AS (DELETE FROM memds.sync_state"
        "  WHERE device_id = $1::bigint AND store = $2),"
        " l AS (DELETE FROM memds.mail_levels WHERE device_id = $1::bigint"
        "  AND store = $2),"
        " r AS (SELECT count(DISTINCT store) AS n FROM (SELECT store FROM"
        "  memds.maps WHERE device_id = $1::bigint AND store <> $2 UNION ALL"
        "  SELECT store FROM memds.sync_state WHERE device_id = $1::bigint"
        "  AND store <> $2) x),"
        " d AS (UPDATE memds.devices SET wipe = 'wiped', wipe_done_at = now()"
        "  WHERE device_id = $1::bigint AND wipe = 'requested'"
        "  AND (SELECT n FROM r) = 0)"
        " SELECT n FROM r",
        &a);
    if (rv == APR_SUCCESS) {
        *premaining = atoi(v);
    }
    return rv;
}

apr_status_t memds_store_devices(memds_store_t *st, apr_array_header_t **prows,
                                 const char *account)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    rv = q_run(
        st, &res, "devices",
        "SELECT d.account, d.devid,"
        " to_char(d.last_seen_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
        " coalesce(d.wipe, ''),"
        " coalesce(to_char(d.wipe_requested_at AT TIME ZONE 'UTC',"
        "  'YYYY-MM-DD HH24:MI:SS'), ''),"
        " coalesce(to_char(d.wipe_done_at AT TIME ZONE 'UTC',"
        "  'YYYY-MM-DD HH24:MI:SS'), ''),"
        " coalesce((SELECT string_agg(x.store || ':' || x.n, ','"
        "  ORDER BY x.store) FROM (SELECT s.store, (SELECT count(*) FROM"
        "  memds.maps m WHERE m.device_id = d.device_id AND m.store = s.store)"
        "  AS n FROM (SELECT store FROM memds.sync_state WHERE device_id ="
        "  d.device_id UNION SELECT store FROM memds.maps WHERE device_id ="
        "  d.device_id) s) x), '')"
        " FROM memds.devices d WHERE $1::text IS NULL OR d.account = $1"
        " ORDER BY d.account, d.devid",
        &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *prows = apr_array_make(st->pool, n > 0 ? n : 1,
                            sizeof(memds_device_info_t *));
    for (i = 0; i < n; ++i) {
        memds_device_info_t *d = apr_pcalloc(st->pool, sizeof(*d));
        d->account = col_str(res, i, 0, st->pool);
        d->devid = col_str(res, i, 1, st->pool);
        d->last_seen = col_str(res, i, 2, st->pool);
        d->wipe = col_str(res, i, 3, st->pool);
        d->wipe_requested = col_str(res, i, 4, st->pool);
        d->wipe_done = col_str(res, i, 5, st->pool);
        d->stores = col_str(res, i, 6, st->pool);
        APR_ARRAY_PUSH(*prows, memds_device_info_t *) = d;
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_device_order(memds_store_t *st, const char *account,
                                      const char *devid, const char *order)
{
    qargs_t a;
    int n = 0;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, devid);
    if (strcmp(order, "wipe") == 0) {
        rv = q_cmd(st, &n, "device_wipe",
                   "UPDATE memds.devices SET wipe = 'requested',"
                   " wipe_requested_at = now(), wipe_done_at = NULL"
                   " WHERE account = $1 AND devid = $2",
                   &a);
        if (rv == APR_SUCCESS && n > 0) {
            /* with a push channel, a notification for each datastore the
             * device syncs, due now: the wipe starts at once */
            rv = q_cmd(st, NULL, "device_wipe_push",
                       "INSERT INTO memds.push_pending (device_id, store,"
                       " ui_mode, due_at) SELECT s.device_id, s.store, 1, now()"
                       " FROM memds.sync_state s JOIN memds.devices d USING"
                       " (device_id) JOIN memds.push_channels c USING"
                       " (device_id) WHERE d.account = $1 AND d.devid = $2"
                       " ON CONFLICT (device_id, store) DO UPDATE SET"
                       " due_at = now()",
                       &a);
        }
    }
    else {
        rv = q_cmd(st, &n, "device_enable",
                   "UPDATE memds.devices SET wipe = NULL,"
                   " wipe_requested_at = NULL, wipe_done_at = NULL"
                   " WHERE account = $1 AND devid = $2",
                   &a);
    }
    return rv == APR_SUCCESS && n == 0 ? APR_ENOENT : rv;
}

apr_status_t memds_store_device_set_devinf(memds_store_t *st,
                                           apr_int64_t device_id,
                                           const char *xml, apr_size_t len,
                                           int max_guid_size, int large_objs)
{
    qargs_t a;
    apr_status_t rv;
    int n;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_bin_or_null(&a, xml, len);
    qa_int(&a, max_guid_size);
    qa_bool(&a, large_objs);
    rv = q_cmd(
        st, &n, "device_set_devinf",
        "UPDATE memds.devices SET devinf = $2::bytea,"
        " devinf_at = CASE WHEN $2::bytea IS NULL THEN NULL ELSE now() END,"
        " max_guid_size = NULLIF($3::integer, 0),"
        " large_objs = $4::boolean"
        " WHERE device_id = $1::bigint",
        &a);
    if (rv == APR_SUCCESS && n == 0) {
        return APR_ENOENT;
    }
    return rv;
}

/* ----------------------------------------------------------- sessions */

#define SESSION_SELECT \
    "SELECT s.session_pk, s.token, s.device_id, d.account, d.devid," \
    " s.session_id, s.version, s.encoding, s.phase, s.client_msg_id," \
    " s.server_msg_id, s.max_msg_size, coalesce(s.max_obj_size, -1)," \
    " s.request_sha1, s.finished, s.expires_at <= now()," \
    " s.server_cred" \
    " FROM memds.sessions s JOIN memds.devices d ON d.device_id = s.device_id"

static void session_from_row(memds_session_row_t *row, const PGresult *res,
                             apr_pool_t *p)
{
    row->session_pk = col_i64(res, 0, 0, 0);
    row->token = col_str(res, 0, 1, p);
    row->device_id = col_i64(res, 0, 2, 0);
    row->account = col_str(res, 0, 3, p);
    row->devid = col_str(res, 0, 4, p);
    row->session_id = col_str(res, 0, 5, p);
    row->version = col_str(res, 0, 6, p);
    row->encoding = col_str(res, 0, 7, p);
    row->phase = col_str(res, 0, 8, p);
    row->client_msg_id = col_int(res, 0, 9, 0);
    row->server_msg_id = col_int(res, 0, 10, 0);
    row->max_msg_size = col_int(res, 0, 11, 0);
    row->max_obj_size = col_i64(res, 0, 12, -1);
    row->request_sha1 = col_str(res, 0, 13, p);
    row->response = ""; /* (memds_store_session_response) */
    row->response_len = 0;
    row->finished = col_bool(res, 0, 14);
    row->expired = col_bool(res, 0, 15);
    row->server_cred = col_int(res, 0, 16, 0);
}

/* Run a session SELECT; one row or APR_ENOENT. */
static apr_status_t session_fetch(memds_store_t *st, memds_session_row_t *row,
                                  const char *what, const char *sql,
                                  const qargs_t *a)
{
    PGresult *res;
    apr_status_t rv = q_row(st, &res, what, sql, a);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    session_from_row(row, res, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_session_by_token(memds_store_t *st,
                                          memds_session_row_t *row,
                                          const char *token)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, token);
    return session_fetch(st, row, "session_by_token",
                         SESSION_SELECT " WHERE s.token = $1 FOR UPDATE OF s",
                         &a);
}

apr_status_t memds_store_session_by_sid(memds_store_t *st,
                                        memds_session_row_t *row,
                                        apr_int64_t device_id,
                                        const char *session_id)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, session_id);
    return session_fetch(st, row, "session_by_sid",
                         SESSION_SELECT
                         " WHERE s.device_id = $1::bigint AND s.session_id = $2"
                         " ORDER BY s.session_pk DESC LIMIT 1 FOR UPDATE OF s",
                         &a);
}

apr_status_t memds_store_session_response(memds_store_t *st,
                                          memds_session_row_t *row)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, row->session_pk);
    rv = q_run(st, &res, "session_response",
               "SELECT response FROM memds.session_answers"
               " WHERE session_pk = $1::bigint",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return APR_ENOENT;
    }
    row->response = col_bytes(res, 0, 0, &row->response_len, st->pool);
    if (row->response == NULL) {
        row->response = "";
        row->response_len = 0;
    }
    PQclear(res);
    return APR_SUCCESS;
}

/* The statement that saves a session: an UPDATE of row->session_pk
 * (PGRES_COMMAND_OK) or, without one, an INSERT that returns the new
 * session_pk (PGRES_TUPLES_OK). */
static void session_save_stmt(memds_store_t *st, q_stmt_t *q, qargs_t *a,
                              const memds_session_row_t *row,
                              int timeout_secs)
{
    /* $1..$13 are common to insert and update. */
    qa_init(a, st->pool);
    qa_str(a, row->session_id);
    qa_str(a, row->version);
    qa_str(a, row->encoding);
    qa_str(a, row->phase);
    qa_int(a, row->client_msg_id);
    qa_int(a, row->server_msg_id);
    qa_int(a, row->max_msg_size);
    if (row->max_obj_size < 0) {
        qa_str(a, NULL);
    }
    else {
        qa_i64(a, row->max_obj_size);
    }
    qa_str(a, nz(row->request_sha1));
    qa_bin(a, row->response, row->response ? row->response_len : 0);
    qa_bool(a, row->finished);
    qa_int(a, timeout_secs);
    qa_int(a, row->server_cred);
    q->what = "session_save";
    q->a = a;
    if (row->session_pk != 0) {
        qa_i64(a, row->session_pk);
        qa_i64(a, row->bytes_add);
        /* (the answer in memds.session_answers, UNLOGGED: schema/024) */
        q->expect = PGRES_COMMAND_OK;
        q->sql = "WITH u AS (UPDATE memds.session_usage"
                 " SET bytes = bytes + $15::bigint"
                 " WHERE session_pk = $14::bigint AND $15::bigint <> 0),"
                 " a AS (INSERT INTO memds.session_answers (session_pk,"
                 " response) SELECT $14::bigint, $10::bytea WHERE EXISTS"
                 " (SELECT 1 FROM memds.sessions WHERE session_pk ="
                 " $14::bigint) ON CONFLICT (session_pk) DO UPDATE"
                 " SET response = EXCLUDED.response)"
                 " UPDATE memds.sessions SET session_id = $1, version = $2,"
                 " encoding = $3, phase = $4, client_msg_id = $5::integer,"
                 " server_msg_id = $6::integer, max_msg_size = $7::integer,"
                 " max_obj_size = $8::bigint, request_sha1 = $9,"
                 " finished = $11::boolean,"
                 " updated_at = now(),"
                 " expires_at = now() + $12::integer * interval '1 second',"
                 " server_cred = $13::smallint"
                 " WHERE session_pk = $14::bigint";
        return;
    }
    /* The token comes from the engine (it is unguessable; we only store it). */
    qa_str(a, row->token);
    qa_i64(a, row->device_id);
    qa_i64(a, row->bytes_add);
    /* (memds.session_usage: the limits of MemDSLimit, schema/014) */
    q->expect = PGRES_TUPLES_OK;
    q->sql = "WITH s AS (INSERT INTO memds.sessions (session_id, version,"
             " encoding,"
             " phase, client_msg_id, server_msg_id, max_msg_size,"
             " max_obj_size, request_sha1, finished, expires_at,"
             " server_cred, token, device_id)"
             " VALUES ($1, $2, $3, $4, $5::integer, $6::integer, $7::integer,"
             " $8::bigint, $9, $11::boolean,"
             " now() + $12::integer * interval '1 second', $13::smallint,"
             " $14, $15::bigint)"
             " RETURNING session_pk, device_id),"
             " a AS (INSERT INTO memds.session_answers (session_pk,"
             " response) SELECT s.session_pk, $10::bytea FROM s),"
             " u AS (INSERT INTO memds.session_usage (session_pk, device_id,"
             " account, bytes) SELECT s.session_pk, s.device_id, d.account,"
             " $16::bigint FROM s JOIN memds.devices d USING (device_id))"
             " SELECT session_pk FROM s";
}

/* What the save's result says: the new session_pk, or ENOENT when the
 * update found no session. The result is cleared. */
static apr_status_t session_saved(memds_store_t *st, PGresult *res,
                                  memds_session_row_t *row)
{
    if (row->session_pk != 0) {
        int n = atoi(PQcmdTuples(res));
        PQclear(res);
        if (n == 0) {
            st->err = "store: session_save: no such session";
            return APR_ENOENT;
        }
        return APR_SUCCESS;
    }
    row->session_pk = col_i64(res, 0, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_session_save(memds_store_t *st,
                                      memds_session_row_t *row,
                                      int timeout_secs)
{
    q_stmt_t q;
    qargs_t a;
    apr_status_t rv;

    session_save_stmt(st, &q, &a, row, timeout_secs);
    if ((rv = q_run_many(st, &q, 1)) != APR_SUCCESS) {
        return rv;
    }
    return session_saved(st, q.res, row);
}

apr_status_t memds_store_session_save_commit(memds_store_t *st,
                                             memds_session_row_t *row,
                                             int timeout_secs)
{
    q_stmt_t q[2];
    qargs_t a;
    apr_status_t rv;

    session_save_stmt(st, &q[0], &a, row, timeout_secs);
    q[1].what = "commit";
    q[1].sql = "COMMIT";
    q[1].a = NULL;
    q[1].expect = PGRES_COMMAND_OK;
    rv = q_run_many(st, q, 2);
    if ((rv = commit_ended(st, rv, q[1].res)) != APR_SUCCESS) {
        PQclear(q[0].res); /* (NULL when q_run_many failed) */
        return rv;
    }
    return session_saved(st, q[0].res, row);
}

apr_status_t memds_store_sessions_expire(memds_store_t *st, int *pn)
{
    int n;
    apr_status_t rv =
        q_cmd(st, &n, "sessions_expire",
              "WITH u AS (DELETE FROM memds.session_usage"
              " WHERE started_at < now() - interval '2 hours')"
              " DELETE FROM memds.sessions WHERE expires_at <= now()", NULL);

    if (rv == APR_SUCCESS) {
        *pn = n;
    }
    return rv;
}

/* ------------------------------------------------ session datastores */

apr_status_t memds_store_sstores_load(memds_store_t *st,
                                      apr_array_header_t **pstores,
                                      apr_int64_t session_pk)
{
    qargs_t a;
    PGresult *res;
    apr_array_header_t *arr;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    rv = q_run(st, &res, "sstores_load",
               "SELECT store, client_uri, server_uri, alert_code, slow,"
               " client_next, server_next, coalesce(snapshot_seq, -1),"
               " queue_built, filter, sent_upto, last_rows, client_caps"
               " FROM memds.session_stores"
               " WHERE session_pk = $1::bigint ORDER BY store COLLATE \"C\"",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    arr = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_sstore_t *));
    for (i = 0; i < n; ++i) {
        memds_sstore_t *ss = apr_pcalloc(st->pool, sizeof(*ss));
        ss->store = col_str(res, i, 0, st->pool);
        ss->client_uri = col_str(res, i, 1, st->pool);
        ss->server_uri = col_str(res, i, 2, st->pool);
        ss->alert_code = col_int(res, i, 3, 0);
        ss->slow = col_bool(res, i, 4);
        ss->client_next = col_str(res, i, 5, st->pool);
        ss->server_next = col_str(res, i, 6, st->pool);
        ss->snapshot_seq = col_i64(res, i, 7, -1);
        ss->queue_built = col_bool(res, i, 8);
        ss->filter = PQgetisnull(res, i, 9) ? NULL
                                            : col_str(res, i, 9, st->pool);
        ss->sent_upto = col_int(res, i, 10, 0);
        ss->last_rows = col_int(res, i, 11, 0);
        ss->client_caps = PQgetisnull(res, i, 12)
                              ? NULL
                              : col_str(res, i, 12, st->pool);
        APR_ARRAY_PUSH(arr, memds_sstore_t *) = ss;
    }
    PQclear(res);
    *pstores = arr;
    return APR_SUCCESS;
}

apr_status_t memds_store_sstore_save(memds_store_t *st, apr_int64_t session_pk,
                                     const memds_sstore_t *ss)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, ss->store);
    qa_str(&a, nz(ss->client_uri));
    qa_str(&a, nz(ss->server_uri));
    qa_int(&a, ss->alert_code);
    qa_bool(&a, ss->slow);
    qa_str(&a, nz(ss->client_next));
    qa_str(&a, nz(ss->server_next));
    if (ss->snapshot_seq < 0) {
        qa_str(&a, NULL);
    }
    else {
        qa_i64(&a, ss->snapshot_seq);
    }
    qa_bool(&a, ss->queue_built);
    qa_str(&a, ss->filter);
    qa_int(&a, ss->sent_upto);
    qa_int(&a, ss->last_rows);
    qa_str(&a, ss->client_caps);
    return q_later(st, "sstore_save",
                 "INSERT INTO memds.session_stores (session_pk, store,"
                 " client_uri, server_uri, alert_code, slow, client_next,"
                 " server_next, snapshot_seq, queue_built, filter, sent_upto,"
                 " last_rows, client_caps)"
                 " VALUES ($1::bigint, $2, $3, $4, $5::integer, $6::boolean,"
                 " $7, $8, $9::bigint, $10::boolean, $11, $12::integer,"
                 " $13::integer, $14)"
                 " ON CONFLICT (session_pk, store) DO UPDATE SET"
                 " client_uri = EXCLUDED.client_uri,"
                 " server_uri = EXCLUDED.server_uri,"
                 " alert_code = EXCLUDED.alert_code, slow = EXCLUDED.slow,"
                 " client_next = EXCLUDED.client_next,"
                 " server_next = EXCLUDED.server_next,"
                 " snapshot_seq = EXCLUDED.snapshot_seq,"
                 " queue_built = EXCLUDED.queue_built,"
                 " filter = EXCLUDED.filter, sent_upto = EXCLUDED.sent_upto,"
                 " last_rows = EXCLUDED.last_rows,"
                 " client_caps = EXCLUDED.client_caps,"
                 /* the acknowledged position is queue_status_many's; it
                  * only keeps below sent_upto (a resumed queue's restart) */
                 " acked_upto = least(memds.session_stores.acked_upto,"
                 " EXCLUDED.sent_upto)",
                 &a);
}

/* ------------------------------------------------------------- queue */

static const char *const qop_names[] = { "add", "replace", "delete",
                                         "softdelete", "refetch" };

static const char *qop_name(memds_qop_e op)
{
    return (op >= MEMDS_Q_ADD && op <= MEMDS_Q_REFETCH) ? qop_names[op] : "?";
}

static memds_qop_e qop_parse(const char *s)
{
    int i;

    for (i = MEMDS_Q_REPLACE; s && i <= MEMDS_Q_REFETCH; ++i) {
        if (strcmp(s, qop_names[i]) == 0) {
            return (memds_qop_e)i;
        }
    }
    return MEMDS_Q_ADD;
}

#define QUEUE_COLS \
    "store, n, op, guid, luid, sent_bytes, coalesce(sent_msg_id, 0)," \
    " coalesce(status, 0)"

static void qitem_from_row(memds_qitem_t *q, const PGresult *res, int i,
                           apr_pool_t *p)
{
    q->store = col_str(res, i, 0, p);
    q->n = col_int(res, i, 1, 0);
    q->op = qop_parse(PQgetvalue(res, i, 2));
    q->guid = col_str(res, i, 3, p);
    q->luid = col_str(res, i, 4, p);
    q->sent_bytes = col_i64(res, i, 5, 0);
    q->sent_msg_id = col_int(res, i, 6, 0);
    q->status = col_int(res, i, 7, 0);
    q->dirty = 0;
    q->covered = 0;
}

/* The fields of q after (session_pk, store, n): $4..$9. sent_msg_id and
 * status 0 are stored as NULL ("not yet"). */
static void qa_qitem(qargs_t *a, apr_int64_t session_pk, const memds_qitem_t *q)
{
    qa_i64(a, session_pk);
    qa_str(a, q->store);
    qa_int(a, q->n);
    qa_str(a, qop_name(q->op));
    qa_str(a, q->guid);
    qa_str(a, q->luid);
    qa_i64(a, q->sent_bytes);
    qa_int(a, q->sent_msg_id);
    qa_int(a, q->status);
}

apr_status_t memds_store_queue_add(memds_store_t *st, apr_int64_t session_pk,
                                   const memds_qitem_t *q)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_qitem(&a, session_pk, q);
    return q_cmd(st, NULL, "queue_add",
                 "INSERT INTO memds.session_queue (session_pk, store, n, op,"
                 " guid, luid, sent_bytes, sent_msg_id, status)"
                 " VALUES ($1::bigint, $2, $3::integer, $4, $5, $6, $7::bigint,"
                 " NULLIF($8::integer, 0), NULLIF($9::integer, 0))",
                 &a);
}

apr_status_t memds_store_queue_unsent(memds_store_t *st,
                                      apr_array_header_t **pitems,
                                      apr_int64_t session_pk, const char *store,
                                      int after, int limit)
{
    qargs_t a;
    PGresult *res;
    apr_array_header_t *arr;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, store);
    if (limit > 0) {
        qa_int(&a, limit);
    }
    else {
        qa_str(&a, NULL); /* LIMIT NULL: no limit */
    }
    qa_int(&a, after);
    /* One datastore: from `after` on in the order of the primary key, so
     * that a message reads only its own rows (not the rows sent before it,
     * nor every unsent row sorted again per message). */
    rv = q_run(st, &res, "queue_unsent",
               store ? "SELECT " QUEUE_COLS " FROM memds.session_queue"
                       " WHERE session_pk = $1::bigint AND store = $2::text"
                       " AND n > $4::integer AND sent_msg_id IS NULL"
                       " ORDER BY n LIMIT $3::integer"
                     : "SELECT " QUEUE_COLS " FROM memds.session_queue q"
                       " WHERE session_pk = $1::bigint"
                       " AND ($2::text IS NULL OR store = $2::text)"
                       " AND n > coalesce((SELECT ss.sent_upto"
                       "  FROM memds.session_stores ss"
                       "  WHERE ss.session_pk = q.session_pk"
                       "  AND ss.store = q.store), 0) + 0 * $4::integer"
                       " AND sent_msg_id IS NULL"
                       " ORDER BY store COLLATE \"C\", n LIMIT $3::integer",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    arr = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_qitem_t *));
    for (i = 0; i < n; ++i) {
        memds_qitem_t *q = apr_palloc(st->pool, sizeof(*q));
        qitem_from_row(q, res, i, st->pool);
        APR_ARRAY_PUSH(arr, memds_qitem_t *) = q;
    }
    PQclear(res);
    *pitems = arr;
    return APR_SUCCESS;
}

apr_status_t memds_store_queue_find(memds_store_t *st, memds_qitem_t *q,
                                    apr_int64_t session_pk, const char *store,
                                    const char *guid, const char *luid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    if (guid == NULL && luid == NULL) {
        st->err = "store: queue_find: neither guid nor luid given";
        return APR_EGENERAL;
    }
    if (guid && guid[0] == '#' && guid[1]
        && strspn(guid + 1, "0123456789") == strlen(guid + 1)
        && strlen(guid) < 10) {
        /* A temporary id "#n" stands for queue position n (devices whose
         * MaxGUIDSize is smaller than our GUIDs). */
        qa_init(&a, st->pool);
        qa_i64(&a, session_pk);
        qa_str(&a, store);
        qa_int(&a, atoi(guid + 1));
        rv = q_row(st, &res, "queue_find",
                   "SELECT " QUEUE_COLS " FROM memds.session_queue"
                   " WHERE session_pk = $1::bigint AND store = $2"
                   " AND n = $3::integer",
                   &a);
    }
    else {
        qa_init(&a, st->pool);
        qa_i64(&a, session_pk);
        qa_str(&a, store);
        qa_str(&a, guid);
        qa_str(&a, luid);
        rv = q_row(st, &res, "queue_find",
                   "SELECT " QUEUE_COLS " FROM memds.session_queue"
                   " WHERE session_pk = $1::bigint AND store = $2"
                   " AND CASE WHEN $3::text IS NOT NULL THEN guid = $3::text"
                   "     ELSE luid = $4::text END"
                   " ORDER BY n LIMIT 1",
                   &a);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    qitem_from_row(q, res, 0, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_queue_update(memds_store_t *st, apr_int64_t session_pk,
                                      const memds_qitem_t *q)
{
    qargs_t a;
    apr_status_t rv;
    int n;

    qa_init(&a, st->pool);
    qa_qitem(&a, session_pk, q);
    rv = q_cmd(st, &n, "queue_update",
               "UPDATE memds.session_queue SET op = $4, guid = $5, luid = $6,"
               " sent_bytes = $7::bigint,"
               " sent_msg_id = NULLIF($8::integer, 0),"
               " status = NULLIF($9::integer, 0)"
               " WHERE session_pk = $1::bigint AND store = $2"
               " AND n = $3::integer",
               &a);
    if (rv == APR_SUCCESS && n == 0) {
        return APR_ENOENT;
    }
    return rv;
}

apr_status_t memds_store_queue_count_unsent(memds_store_t *st, int *pn,
                                            apr_int64_t session_pk)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    /* Whether any is left (0 or 1), not how many: the engine asks it after
     * every message going down, and counting the unsent rows of a long
     * queue cost ~2 ms a message (docs/performance.md, Mail). */
    rv = q_run(st, &res, "queue_count_unsent",
               /* per datastore the first row after its sent_upto, in the
                * order of the primary key (a join let the planner walk the
                * session's rows from the start: every row already sent) */
               "SELECT count(*) FROM (SELECT 1 FROM memds.session_stores ss"
               " CROSS JOIN LATERAL (SELECT 1 FROM memds.session_queue q"
               "  WHERE q.session_pk = ss.session_pk AND q.store = ss.store"
               "  AND q.n > ss.sent_upto AND q.sent_msg_id IS NULL"
               "  ORDER BY q.n LIMIT 1) f"
               " WHERE ss.session_pk = $1::bigint LIMIT 1) x",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pn = col_int(res, 0, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_queue_count_failed(memds_store_t *st, int *pn,
                                            apr_int64_t session_pk,
                                            const char *store)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, store);
    /* Not taken: no status yet (none of its own, above the acknowledged
     * position), or an error status. 418 (already exists) and 211 (not
     * deleted, not found) leave the device as wanted. */
    rv = q_run(st, &res, "queue_count_failed",
               "SELECT count(*) FROM memds.session_queue q"
               " WHERE session_pk = $1::bigint AND store = $2"
               " AND CASE WHEN status IS NULL"
               "  THEN n > coalesce((SELECT ss.acked_upto"
               "   FROM memds.session_stores ss WHERE ss.session_pk = $1::bigint"
               "   AND ss.store = $2), 0)"
               "  ELSE status >= 300 AND status <> 418 END"
               /* items in quarantine do not hold the device back */
               " AND NOT EXISTS (SELECT 1 FROM memds.quarantine z"
               "  JOIN memds.sessions s USING (device_id)"
               "  WHERE s.session_pk = $1::bigint AND z.store = q.store"
               "  AND z.guid = q.guid AND z.state = 'held')",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pn = col_int(res, 0, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

/* ------------------------------------------------ slow-sync "seen" set */

/* ------------------------------------------------------ suspend/resume */

apr_status_t memds_store_suspended_find(memds_store_t *st, apr_int64_t *pold,
                                        apr_int64_t device_id,
                                        const char *store, apr_int64_t except)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_i64(&a, except);
    rv = q_row(st, &res, "suspended_find",
               "SELECT s.session_pk FROM memds.sessions s"
               " JOIN memds.session_stores ss USING (session_pk)"
               " WHERE s.device_id = $1::bigint AND ss.store = $2"
               " AND s.phase = 'suspended' AND s.expires_at > now()"
               " AND s.session_pk <> $3::bigint"
               " ORDER BY s.updated_at DESC LIMIT 1 FOR UPDATE OF s",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pold = col_i64(res, 0, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_resume_copy(memds_store_t *st, apr_int64_t new_pk,
                                     apr_int64_t old_pk, const char *store)
{
    static const char *const sql[] = {
        /* what the device had not acknowledged goes again, from the start */
        "INSERT INTO memds.session_queue (session_pk, store, n, op, guid, luid)"
        " SELECT $1::bigint, store, n, op, guid, luid FROM memds.session_queue"
        " WHERE session_pk = $2::bigint AND store = $3 AND status IS NULL"
        " AND n > coalesce((SELECT ss.acked_upto FROM memds.session_stores ss"
        "  WHERE ss.session_pk = $2::bigint AND ss.store = $3), 0)",
        "INSERT INTO memds.session_seen (session_pk, store, guid)"
        " SELECT $1::bigint, store, guid FROM memds.session_seen"
        " WHERE session_pk = $2::bigint AND store = $3",
        "INSERT INTO memds.session_partial (session_pk, store, cmd, luid,"
        " content_type, total_size, data)"
        " SELECT $1::bigint, store, cmd, luid, content_type, total_size, data"
        " FROM memds.session_partial WHERE session_pk = $2::bigint AND store = "
        "$3",
        "DELETE FROM memds.session_stores WHERE session_pk = $2::bigint AND "
        "store = $3"
        " AND $1::bigint IS NOT NULL",
        /* a suspended session with nothing left to resume is over */
        "UPDATE memds.sessions SET phase = 'done', finished = true"
        " WHERE session_pk = $2::bigint AND NOT EXISTS (SELECT 1 FROM"
        " memds.session_stores WHERE session_pk = $2::bigint) AND $3::text IS "
        "NOT NULL"
        " AND $1::bigint IS NOT NULL",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(sql) / sizeof(sql[0]); ++i) {
        qargs_t a;
        apr_status_t rv;

        qa_init(&a, st->pool);
        qa_i64(&a, new_pk);
        qa_i64(&a, old_pk);
        qa_str(&a, store);
        if ((rv = q_cmd(st, NULL, "resume_copy", sql[i], &a)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* ---------------------------------------------------------- batches */

/* The pairs of guids/luids that the INSERT needs: the last pair wins when
 * one guid or luid repeats in the batch (a pair goes when a later pair has
 * its luid, or a later pair that stays has its guid), so that the INSERT
 * needs no sorting. Into g[*pk..n), l[*pk..n). */
static void map_last_pairs(memds_store_t *st, const char *const *guids,
                           const char *const *luids, int n, const char **g,
                           const char **l, int *pk)
{
    apr_hash_t *ls = apr_hash_make(st->pool), *gs = apr_hash_make(st->pool);
    int i, k = n;

    for (i = n - 1; i >= 0; --i) {
        if (apr_hash_get(ls, luids[i], APR_HASH_KEY_STRING)) {
            continue;
        }
        apr_hash_set(ls, luids[i], APR_HASH_KEY_STRING, "");
        if (apr_hash_get(gs, guids[i], APR_HASH_KEY_STRING)) {
            continue;
        }
        apr_hash_set(gs, guids[i], APR_HASH_KEY_STRING, "");
        --k;
        g[k] = guids[i];
        l[k] = luids[i];
    }
    *pk = k;
}

static void qa_map_pairs(qargs_t *a, memds_store_t *st, apr_int64_t device_id,
                         const char *store, const char *const *g,
                         const char *const *l, int n)
{
    qa_init(a, st->pool);
    qa_i64(a, device_id);
    qa_str(a, store);
    qa_str(a, text_array(g, n, st->pool));
    qa_str(a, text_array(l, n, st->pool));
}

/* Every map of the nd guids dg and luids dl goes, then the ni pairs
 * (ig, il) go in (no guid or luid twice among them). */
static apr_status_t map_replace(memds_store_t *st, apr_int64_t device_id,
                                const char *store, const char *const *dg,
                                const char *const *dl, int nd,
                                const char *const *ig, const char *const *il,
                                int ni)
{
    qargs_t a;
    apr_status_t rv;

    qa_map_pairs(&a, st, device_id, store, dg, dl, nd);
    rv = q_cmd(
        st, NULL, "map_put_many",
        /* (two DELETEs, each an index probe per key: with the OR of both
         * lists the planner scanned the whole table, 2.2 against 0.3 ms
         * for 57 pairs among 11,000 maps; docs/performance.md) */
        "WITH by_guid AS (DELETE FROM memds.maps"
        " WHERE device_id = $1::bigint AND store = $2"
        " AND guid = ANY($3::text[]))"
        " DELETE FROM memds.maps WHERE device_id = $1::bigint AND store = $2"
        " AND luid = ANY($4::text[])",
        &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    qa_map_pairs(&a, st, device_id, store, ig, il, ni);
    return q_cmd(st, NULL, "map_put_many",
                 "INSERT INTO memds.maps (device_id, store, guid, luid)"
                 " SELECT $1::bigint, $2, g, l"
                 " FROM unnest($3::text[], $4::text[]) AS u(g, l)",
                 &a);
}

apr_status_t memds_store_map_put_many(memds_store_t *st, apr_int64_t device_id,
                                      const char *store,
                                      const char *const *guids,
                                      const char *const *luids, int n)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    apr_hash_t *added;
    const char **g, **l;
    int i, k, m, rows;

    if (n == 0) {
        return APR_SUCCESS;
    }
    g = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    l = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    map_last_pairs(st, guids, luids, n, g, l, &k);
    if (k > 0) {
        /* a guid or luid twice in the batch: every guid and luid named
         * loses its map first (a pair a later one overrode included) */
        return map_replace(st, device_id, store, guids, luids, n, g + k,
                           l + k, n - k);
    }
    /* New pairs, the common case (a device's first sync, its new items):
     * inserted in one statement; a pair whose guid or luid the device has
     * mapped already is left for map_replace. (Before, every batch ran
     * the DELETE: 64 index probes that found nothing for 32 new pairs;
     * docs/performance.md.) The device's requests run one after the other
     * (its row is locked), so nothing else inserts its maps in between. */
    qa_map_pairs(&a, st, device_id, store, g, l, n);
    rv = q_run(st, &res, "map_put_many",
               "INSERT INTO memds.maps (device_id, store, guid, luid)"
               " SELECT $1::bigint, $2, g, l"
               " FROM unnest($3::text[], $4::text[]) AS u(g, l)"
               " ON CONFLICT DO NOTHING RETURNING guid",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rows = PQntuples(res);
    if (rows == n) {
        PQclear(res);
        return APR_SUCCESS;
    }
    added = apr_hash_make(st->pool);
    for (i = 0; i < rows; ++i) {
        apr_hash_set(added, col_str(res, i, 0, st->pool), APR_HASH_KEY_STRING,
                     "");
    }
    PQclear(res);
    for (i = 0, m = 0; i < n; ++i) {
        if (!apr_hash_get(added, g[i], APR_HASH_KEY_STRING)) {
            g[m] = g[i];
            l[m] = l[i];
            ++m;
        }
    }
    return map_replace(st, device_id, store, g, l, m, g, l, m);
}

apr_status_t memds_store_seen_add_many(memds_store_t *st,
                                       apr_int64_t session_pk,
                                       const char *store,
                                       const char *const *guids, int n)
{
    qargs_t a;

    if (n == 0) {
        return APR_SUCCESS;
    }
    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, store);
    qa_str(&a, text_array(guids, n, st->pool));
    return q_cmd(
        st, NULL, "seen_add_many",
        "INSERT INTO memds.session_seen (session_pk, store, guid)"
        " SELECT $1::bigint, $2, g FROM unnest($3::text[]) AS u(g)"
        " ON CONFLICT DO NOTHING", /* (also a guid twice in the array) */
        &a);
}

/* The device's maps of the datastore (guid -> luid): all, or (luids not
 * NULL) those of the n luids. */
static apr_status_t maps_read(memds_store_t *st, apr_hash_t **pmap,
                              apr_int64_t device_id, const char *store,
                              const char *const *luids, int n)
{
    qargs_t a;
    PGresult *res;
    apr_hash_t *h = apr_hash_make(st->pool);
    apr_status_t rv;
    int i;

    *pmap = h;
    if (luids && n == 0) {
        return APR_SUCCESS;
    }
    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, luids ? text_array(luids, n, st->pool) : NULL);
    rv = q_run(st, &res, luids ? "maps_of_luids" : "maps_load",
               "SELECT guid, luid FROM memds.maps WHERE device_id = $1::bigint"
               " AND store = $2"
               " AND ($3::text[] IS NULL OR luid = ANY ($3::text[]))",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < PQntuples(res); ++i) {
        apr_hash_set(h, col_str(res, i, 0, st->pool), APR_HASH_KEY_STRING,
                     col_str(res, i, 1, st->pool));
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_maps_load(memds_store_t *st, apr_hash_t **pmap,
                                   apr_int64_t device_id, const char *store)
{
    return maps_read(st, pmap, device_id, store, NULL, 0);
}

apr_status_t memds_store_maps_of_luids(memds_store_t *st, apr_hash_t **pmap,
                                       apr_int64_t device_id,
                                       const char *store,
                                       const char *const *luids, int n)
{
    static const char *const none[] = { NULL };

    /* (no luids: no maps, never all of them) */
    return maps_read(st, pmap, device_id, store, luids ? luids : none, n);
}

apr_status_t memds_store_seen_load(memds_store_t *st, apr_hash_t **pset,
                                   apr_int64_t session_pk, const char *store)
{
    qargs_t a;
    PGresult *res;
    apr_hash_t *h = apr_hash_make(st->pool);
    apr_status_t rv;
    int i;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, store);
    rv = q_run(
        st, &res, "seen_load",
        "SELECT guid FROM memds.session_seen WHERE session_pk = $1::bigint"
        " AND store = $2",
        &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < PQntuples(res); ++i) {
        apr_hash_set(h, col_str(res, i, 0, st->pool), APR_HASH_KEY_STRING, "");
    }
    PQclear(res);
    *pset = h;
    return APR_SUCCESS;
}

/* A long new queue gets its statistics at once. Until then the planner
 * takes the new session for one row of memds.session_queue (its statistics
 * do not know the session), and the statuses of each message going down
 * (queue_status_many, by GUID) walk every row of the session instead of
 * probing session_queue_guid: 2.7 ms against 0.4 ms a message for 10,000
 * rows, 175 messages for a folder of 10,000 mails (docs/performance.md).
 * (memds_store_analyze: ≈7 ms for 10,000 rows.) */

void memds_store_analyze(memds_store_t *st, const char *table)
{
    PGconn *c = memds_pgconn_native(st->conn);
    PGresult *res;
    const char *old;
    int ok;

    if (q_sync(st) != APR_SUCCESS) {
        return; /* (the transaction failed: the caller hears of it next) */
    }
    res = PQexec(c, "SHOW lock_timeout");
    old = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
              ? apr_pstrdup(st->pool, PQgetvalue(res, 0, 0))
              : NULL;
    PQclear(res);
    if (old == NULL) {
        return;
    }
    res = PQexec(c, apr_pstrcat(st->pool,
                                "SAVEPOINT memds_analyze;"
                                " SET LOCAL lock_timeout = '5ms';"
                                " ANALYZE ",
                                table, "; RELEASE memds_analyze", NULL));
    ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!ok) {
        /* (the lock was not to be had: the transaction goes on as it was,
         * its lock_timeout too) */
        PQclear(PQexec(c, "ROLLBACK TO SAVEPOINT memds_analyze;"
                          " RELEASE memds_analyze"));
        return;
    }
    {
        const char *v[1] = { old };
        PQclear(PQexecParams(c, "SELECT set_config('lock_timeout', $1, true)",
                             1, NULL, v, NULL, NULL, 0));
    }
}

apr_status_t memds_store_queue_add_many(memds_store_t *st,
                                        apr_int64_t session_pk,
                                        const apr_array_header_t *items)
{
    int n = items->nelts, i;
    const char **stores, **ops, **guids, **luids;
    apr_int64_t *ns;
    qargs_t a;
    apr_status_t rv;

    if (n == 0) {
        return APR_SUCCESS;
    }
    stores = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    ops = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    guids = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    luids = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    ns = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)n);
    for (i = 0; i < n; ++i) {
        const memds_qitem_t *q = APR_ARRAY_IDX(items, i, memds_qitem_t *);
        stores[i] = q->store;
        ops[i] = qop_name(q->op);
        guids[i] = q->guid;
        luids[i] = q->luid;
        ns[i] = q->n;
    }
    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, text_array(stores, n, st->pool));
    qa_str(&a, int_array(ns, n, st->pool));
    qa_str(&a, text_array(ops, n, st->pool));
    qa_str(&a, text_array(guids, n, st->pool));
    qa_str(&a, text_array(luids, n, st->pool));
    rv = q_cmd(
        st, NULL, "queue_add_many",
        "INSERT INTO memds.session_queue (session_pk, store, n, op, guid, luid)"
        " SELECT $1::bigint, s, n, o, g, l FROM unnest($2::text[],"
        " $3::integer[], $4::text[], $5::text[], $6::text[]) AS u(s, n, o, g, "
        "l)",
        &a);
    if (rv == APR_SUCCESS && n >= MEMDS_ANALYZE_ROWS) {
        memds_store_analyze(st, "memds.session_queue (session_pk)");
    }
    return rv;
}

/* The n stores as a text array literal with each store once: statements
 * that find queue rows by (store, n) name them in "store = ANY" too (the
 * planner prices an index scan by the product of its arrays' lengths). */
static const char *distinct_stores(const char *const *stores, int n,
                                   apr_pool_t *p)
{
    const char **d = apr_palloc(p, sizeof(char *) * (apr_size_t)(n + 1));
    int nd = 0, i, k;

    for (i = 0; i < n; ++i) {
        for (k = 0; k < nd && strcmp(d[k], stores[i]) != 0; ++k) {
        }
        if (k == nd) {
            d[nd++] = stores[i];
        }
    }
    return text_array(d, nd, p);
}

apr_status_t memds_store_queue_update_many(memds_store_t *st,
                                           apr_int64_t session_pk,
                                           const apr_array_header_t *items)
{
    int n = items->nelts, i;
    const char **stores;
    apr_int64_t *ns, *sent, *msg, *status;
    qargs_t a;

    if (n == 0) {
        return APR_SUCCESS;
    }
    stores = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    ns = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)n);
    sent = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)n);
    msg = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)n);
    status = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)n);
    for (i = 0; i < n; ++i) {
        const memds_qitem_t *q = APR_ARRAY_IDX(items, i, memds_qitem_t *);
        stores[i] = q->store;
        ns[i] = q->n;
        sent[i] = q->sent_bytes;
        msg[i] = q->sent_msg_id > 0 ? q->sent_msg_id : MEMDS_STORE_NULL;
        status[i] = q->status > 0 ? q->status : MEMDS_STORE_NULL;
    }
    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, text_array(stores, n, st->pool));
    qa_str(&a, int_array(ns, n, st->pool));
    qa_str(&a, int_array(sent, n, st->pool));
    qa_str(&a, int_array(msg, n, st->pool));
    qa_str(&a, int_array(status, n, st->pool));
    qa_str(&a, distinct_stores(stores, n, st->pool));
    return q_later(
        st, "queue_update_many",
        "UPDATE memds.session_queue q SET sent_bytes = u.b,"
        " sent_msg_id = u.m, status = u.c"
        " FROM unnest($2::text[], $3::integer[], $4::bigint[],"
        " $5::integer[], $6::integer[]) AS u(s, n, b, m, c)"
        " WHERE q.session_pk = $1::bigint AND q.store = u.s AND q.n = u.n"
        /* the rows by their primary key, not the session's queue hashed;
         * the stores each once ($7): the planner prices an index scan by
         * the product of its arrays' lengths, and the same store 500
         * times made it 250,000 probes, so it read the whole table */
        " AND q.store = ANY ($7::text[]) AND q.n = ANY ($3::integer[])",
        &a);
}

/* Statuses written on the rows they name (what the acknowledged position
 * does not cover): by GUID, temporary id or LUID. */
static apr_status_t status_rows(memds_store_t *st, apr_int64_t session_pk,
                               const char *const *refs,
                               const char *const *luids,
                               const apr_int64_t *codes, int n)
{
    qargs_t a;
    int i;

    if (n == 0) {
        return APR_SUCCESS;
    }
    for (i = 0; i < n && refs[i] && refs[i][0] != '#'; ++i) {
    }
    if (i == n) {
        /* Every status by GUID (the common case): the rows by
         * session_queue_guid, one probe per status, not a pass over the
         * session's queue (docs/performance.md). */
        qa_init(&a, st->pool);
        qa_i64(&a, session_pk);
        qa_str(&a, text_array(refs, n, st->pool));
        qa_str(&a, int_array(codes, n, st->pool));
        return q_later(st, "queue_status_many",
                     "UPDATE memds.session_queue q SET status = u.c"
                     " FROM unnest($2::text[], $3::integer[]) AS u(g, c)"
                     " WHERE q.session_pk = $1::bigint"
                     " AND q.guid = ANY ($2::text[]) AND q.guid = u.g",
                     &a);
    }
    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, text_array(refs, n, st->pool));
    qa_str(&a, text_array(luids, n, st->pool));
    qa_str(&a, int_array(codes, n, st->pool));
    /* A status names our item by its GUID (SourceRef), its temporary id
     * "#n", or, for Replace/Delete without a SourceRef, the device's LUID.
     * Three equi-joins (hash joins over the session's queue, once per
     * message), not one join on an OR: that was a nested loop, its cost
     * the queue's length times the statuses (quadratic in the items). */
    /* (The GUID join goes through session_queue_guid; the other two are
     * rare and run only when a status needs them.) */
    return q_cmd(
        st, NULL, "queue_status_many",
        "WITH u AS (SELECT * FROM unnest($2::text[], $3::text[],"
        "  $4::integer[]) AS u(g, l, c)),"
        " t AS (SELECT q.store, q.n, u.c FROM memds.session_queue q"
        "  JOIN u ON q.guid = u.g WHERE q.session_pk = $1::bigint"
        "  AND q.guid = ANY ($2::text[])"
        "  UNION ALL SELECT q.store, q.n, u.c FROM memds.session_queue q"
        "  JOIN u ON '#' || q.n = u.g WHERE q.session_pk = $1::bigint"
        "  AND EXISTS (SELECT 1 FROM u WHERE u.g LIKE '#%')"
        "  UNION ALL SELECT q.store, q.n, u.c FROM memds.session_queue q"
        "  JOIN u ON q.luid = u.l WHERE q.session_pk = $1::bigint"
        "  AND u.g IS NULL AND EXISTS (SELECT 1 FROM u WHERE u.g IS NULL))"
        " UPDATE memds.session_queue q SET status = t.c FROM t"
        " WHERE q.session_pk = $1::bigint AND q.store = t.store AND q.n = t.n",
        &a);
}

/* The window of a message's statuses: per datastore the rows sent and not
 * yet acknowledged, (acked_upto, sent_upto], at most twice as many (and 16)
 * as there are statuses: a device that leaves a row unanswered for good
 * does not make every later message read a longer window (what lies beyond
 * goes to status_rows), while rows answered on their own before the
 * position reached them still leave room for this message's. */
#define WINDOW_SQL \
    "SELECT ss.store, q.n, q.guid, q.luid, q.status IS NOT NULL" \
    " FROM memds.session_stores ss CROSS JOIN LATERAL (" \
    "  SELECT q.n, q.guid, q.luid, q.status FROM memds.session_queue q" \
    "  WHERE q.session_pk = ss.session_pk AND q.store = ss.store" \
    "  AND q.n > ss.acked_upto" \
    "  AND q.n <= least(ss.sent_upto, ss.acked_upto + 2 * $2::integer + 16)" \
    "  ORDER BY q.n) q" \
    " WHERE ss.session_pk = $1::bigint ORDER BY ss.store, q.n"

/* Fewer statuses than this (a mail message's few items, a small change)
 * are written on their rows in one UPDATE, as before: the window's read
 * and the position's write would be two statements for one. */
#define STATUS_WINDOW_MIN 32

/* A status that leaves nothing to remember: the row counts as taken, and
 * a row within acked_upto with no status of its own had one of these. */
#define CLEAN_STATUS(c) ((c) == 200 || (c) == 201)

/* The status of statuses[] that names window row r (its GUID, its
 * temporary id "#n" when some status names one (temp_ids), or its LUID
 * for a status without a SourceRef): the index, or -1. */
static int status_for_row(apr_hash_t *by_ref, apr_hash_t *by_luid,
                          int temp_ids, int n, const char *guid,
                          const char *luid, apr_pool_t *p)
{
    void *v = guid ? apr_hash_get(by_ref, guid, APR_HASH_KEY_STRING) : NULL;

    if (v == NULL && temp_ids) {
        v = apr_hash_get(by_ref, apr_psprintf(p, "#%d", n),
                         APR_HASH_KEY_STRING);
    }
    if (v == NULL && luid) {
        v = apr_hash_get(by_luid, luid, APR_HASH_KEY_STRING);
    }
    return v ? *(const int *)v : -1;
}

apr_status_t memds_store_queue_status_many(memds_store_t *st,
                                           apr_int64_t session_pk,
                                           const char *const *refs,
                                           const char *const *luids,
                                           const apr_int64_t *codes, int n)
{
    /* A message's statuses answer, nearly always, the rows the message
     * before carried, in order, all 200 or 201. Those rows are not each
     * written: the datastore's acknowledged position (schema/025,
     * session_stores.acked_upto) moves over them, one row written per
     * datastore. A row is written on its own when its status says more
     * (an error, 418, ...) or when it is answered past a row not yet
     * answered; statuses for rows outside the window go as before. */
    apr_hash_t *by_ref, *by_luid;
    char *used;
    int *idx;
    const char **ps, **rest_refs, **rest_luids, **as;
    apr_int64_t *wc, *pn, *rest_codes, *av;
    int np = 0, nrest = 0, na = 0, temp_ids = 0, i, rows;
    PGresult *res;
    qargs_t a;
    apr_status_t rv;

    if (n < STATUS_WINDOW_MIN) {
        return status_rows(st, session_pk, refs, luids, codes, n);
    }
    by_ref = apr_hash_make(st->pool);
    by_luid = apr_hash_make(st->pool);
    used = apr_pcalloc(st->pool, (apr_size_t)n);
    idx = apr_palloc(st->pool, sizeof(int) * (apr_size_t)n);
    for (i = 0; i < n; ++i) {
        idx[i] = i;
        if (refs[i]) {
            apr_hash_set(by_ref, refs[i], APR_HASH_KEY_STRING, &idx[i]);
            temp_ids |= refs[i][0] == '#';
        }
        else if (luids[i]) {
            apr_hash_set(by_luid, luids[i], APR_HASH_KEY_STRING, &idx[i]);
        }
    }
    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_int(&a, n);
    rv = q_run(st, &res, "queue_status_window", WINDOW_SQL, &a,
               PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rows = PQntuples(res);
    wc = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)(rows + 1));
    ps = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)(rows + 1));
    pn = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)(rows + 1));
    as = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)(rows + 1));
    av = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)(rows + 1));
    {
        const char *cur = NULL;
        int gap = 0, top = 0;

        for (i = 0; i <= rows; ++i) {
            const char *store = i < rows ? col_str(res, i, 0, st->pool) : NULL;
            int qn, k, had;

            if (cur && (store == NULL || strcmp(store, cur) != 0)) {
                if (top > 0) { /* the datastore's new position */
                    as[na] = cur;
                    av[na++] = top;
                }
                cur = NULL;
            }
            if (store == NULL) {
                break;
            }
            if (cur == NULL) {
                cur = store;
                gap = 0;
                top = 0;
            }
            qn = col_int(res, i, 1, 0);
            had = col_bool(res, i, 4);
            k = status_for_row(by_ref, by_luid, temp_ids, qn,
                               PQgetisnull(res, i, 2)
                                   ? NULL
                                   : col_str(res, i, 2, st->pool),
                               PQgetisnull(res, i, 3)
                                   ? NULL
                                   : col_str(res, i, 3, st->pool),
                               st->pool);
            if (k >= 0) {
                used[k] = 1;
                if (gap || !CLEAN_STATUS(codes[k])) {
                    ps[np] = store; /* this row's own status */
                    pn[np] = qn;
                    wc[np++] = codes[k];
                }
            }
            else if (!had) {
                gap = 1; /* not answered (yet): the position stops here */
            }
            if (!gap) {
                top = qn;
            }
        }
    }
    PQclear(res);
    if (np > 0) {
        /* the rows by their primary key */
        qa_init(&a, st->pool);
        qa_i64(&a, session_pk);
        qa_str(&a, text_array(ps, np, st->pool));
        qa_str(&a, int_array(pn, np, st->pool));
        qa_str(&a, int_array(wc, np, st->pool));
        qa_str(&a, distinct_stores(ps, np, st->pool));
        rv = q_later(st, "queue_status_rows",
                   "UPDATE memds.session_queue q SET status = u.c"
                   " FROM unnest($2::text[], $3::integer[], $4::integer[])"
                   " AS u(s, n, c)"
                   " WHERE q.session_pk = $1::bigint AND q.store = u.s"
                   " AND q.n = u.n AND q.store = ANY ($5::text[])"
                   " AND q.n = ANY ($3::integer[])",
                   &a);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (na > 0) {
        qa_init(&a, st->pool);
        qa_i64(&a, session_pk);
        qa_str(&a, text_array(as, na, st->pool));
        qa_str(&a, int_array(av, na, st->pool));
        rv = q_later(st, "queue_acked_upto",
                   "UPDATE memds.session_stores ss SET acked_upto = u.v"
                   " FROM unnest($2::text[], $3::integer[]) AS u(s, v)"
                   " WHERE ss.session_pk = $1::bigint AND ss.store = u.s"
                   " AND u.v > ss.acked_upto",
                   &a);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    rest_refs = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    rest_luids = apr_palloc(st->pool, sizeof(char *) * (apr_size_t)n);
    rest_codes = apr_palloc(st->pool, sizeof(apr_int64_t) * (apr_size_t)n);
    for (i = 0; i < n; ++i) {
        if (!used[i]) {
            rest_refs[nrest] = refs[i];
            rest_luids[nrest] = luids[i];
            rest_codes[nrest++] = codes[i];
        }
    }
    return status_rows(st, session_pk, rest_refs, rest_luids, rest_codes,
                       nrest);
}

/* ------------------------------------------------- partial large object */

apr_status_t memds_store_partial_get(memds_store_t *st, memds_partial_t *pt,
                                     apr_int64_t session_pk, const char *store)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, store);
    rv = q_row(st, &res, "partial_get",
               "SELECT store, cmd, luid, content_type, total_size, data"
               " FROM memds.session_partial"
               " WHERE session_pk = $1::bigint AND store = $2",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    pt->store = col_str(res, 0, 0, st->pool);
    pt->cmd = col_str(res, 0, 1, st->pool);
    pt->luid = col_str(res, 0, 2, st->pool);
    pt->content_type = col_str(res, 0, 3, st->pool);
    pt->total_size = col_i64(res, 0, 4, 0);
    pt->data = col_bytes(res, 0, 5, &pt->len, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_partial_append(memds_store_t *st,
                                        apr_int64_t session_pk,
                                        const memds_partial_t *pt,
                                        const char *data, apr_size_t len)
{
    qargs_t a;

    /* cmd, luid, type and size come with the first chunk; later chunks
     * only add bytes (they need not repeat the Meta Size). */
    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, pt->store);
    qa_str(&a, pt->cmd);
    qa_str(&a, pt->luid);
    qa_str(&a, pt->content_type);
    qa_i64(&a, pt->total_size);
    qa_bin(&a, data, len);
    return q_cmd(st, NULL, "partial_append",
                 "INSERT INTO memds.session_partial AS p (session_pk, store,"
                 " cmd, luid, content_type, total_size, data)"
                 " VALUES ($1::bigint, $2, $3, $4, $5, $6::bigint, $7::bytea)"
                 " ON CONFLICT (session_pk, store) DO UPDATE"
                 " SET data = p.data || EXCLUDED.data",
                 &a);
}

apr_status_t memds_store_partial_drop(memds_store_t *st, apr_int64_t session_pk,
                                      const char *store)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, session_pk);
    qa_str(&a, store);
    return q_cmd(st, NULL, "partial_drop",
                 "DELETE FROM memds.session_partial"
                 " WHERE session_pk = $1::bigint AND store = $2",
                 &a);
}

/* ----------------------------------------------------- anchors and maps */

apr_status_t memds_store_syncstate_get(memds_store_t *st, memds_syncstate_t *ss,
                                       apr_int64_t device_id, const char *store)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    rv = q_row(st, &res, "syncstate_get",
               "SELECT client_uri, last_client_anchor, last_server_anchor,"
               " last_seq, filter FROM memds.sync_state"
               " WHERE device_id = $1::bigint AND store = $2",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    ss->client_uri = col_str(res, 0, 0, st->pool);
    ss->last_client_anchor = col_str(res, 0, 1, st->pool);
    ss->last_server_anchor = col_str(res, 0, 2, st->pool);
    ss->last_seq = col_i64(res, 0, 3, 0);
    ss->filter = PQgetisnull(res, 0, 4) ? NULL : col_str(res, 0, 4, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_syncstate_put(memds_store_t *st, apr_int64_t device_id,
                                       const char *store,
                                       const memds_syncstate_t *ss)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, nz(ss->client_uri));
    qa_str(&a, nz(ss->last_client_anchor));
    qa_str(&a, nz(ss->last_server_anchor));
    qa_i64(&a, ss->last_seq);
    qa_str(&a, ss->filter);
    return q_later(st, "syncstate_put",
                 "INSERT INTO memds.sync_state (device_id, store, client_uri,"
                 " last_client_anchor, last_server_anchor, last_seq, filter)"
                 " VALUES ($1::bigint, $2, $3, $4, $5, $6::bigint, $7)"
                 " ON CONFLICT (device_id, store) DO UPDATE SET"
                 " client_uri = EXCLUDED.client_uri,"
                 " last_client_anchor = EXCLUDED.last_client_anchor,"
                 " last_server_anchor = EXCLUDED.last_server_anchor,"
                 " last_seq = EXCLUDED.last_seq, filter = EXCLUDED.filter,"
                 " updated_at = now()",
                 &a);
}

apr_status_t memds_store_map_guid(memds_store_t *st, const char **pguid,
                                  apr_int64_t device_id, const char *store,
                                  const char *luid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, luid);
    return q_value(st, pguid, "map_guid",
                   "SELECT guid FROM memds.maps WHERE device_id = $1::bigint"
                   " AND store = $2 AND luid = $3",
                   &a);
}

apr_status_t memds_store_map_luid(memds_store_t *st, const char **pluid,
                                  apr_int64_t device_id, const char *store,
                                  const char *guid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, guid);
    return q_value(st, pluid, "map_luid",
                   "SELECT luid FROM memds.maps WHERE device_id = $1::bigint"
                   " AND store = $2 AND guid = $3",
                   &a);
}

apr_status_t memds_store_map_put(memds_store_t *st, apr_int64_t device_id,
                                 const char *store, const char *guid,
                                 const char *luid)
{
    qargs_t a;
    apr_status_t rv;

    /* Two statements, not a DELETE in a WITH: the INSERT's unique checks
     * must see the rows already gone. */
    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, guid);
    qa_str(&a, luid);
    rv = q_cmd(st, NULL, "map_put",
               "DELETE FROM memds.maps WHERE device_id = $1::bigint"
               " AND store = $2 AND (guid = $3 OR luid = $4)",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return q_cmd(st, NULL, "map_put",
                 "INSERT INTO memds.maps (device_id, store, guid, luid)"
                 " VALUES ($1::bigint, $2, $3, $4)",
                 &a);
}

apr_status_t memds_store_map_del(memds_store_t *st, apr_int64_t device_id,
                                 const char *store, const char *guid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, guid);
    return q_cmd(st, NULL, "map_del",
                 "DELETE FROM memds.maps WHERE device_id = $1::bigint"
                 " AND store = $2 AND guid = $3",
                 &a);
}

apr_status_t memds_store_map_clear(memds_store_t *st, apr_int64_t device_id,
                                   const char *store)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    return q_cmd(st, NULL, "map_clear",
                 "DELETE FROM memds.maps WHERE device_id = $1::bigint"
                 " AND store = $2",
                 &a);
}

/* ------------------------------------------------- the items datastore */

apr_status_t memds_store_items_seq(memds_store_t *st, apr_int64_t *pseq)
{
    PGresult *res;
    apr_status_t rv;

    /* Not simply the sequence's last_value: a transaction still open may
     * hold a smaller value than one already committed, and a device given
     * last_value would skip that change for ever. memds.item_seq_visible()
     * (002_engine.sql) stops below the smallest such value. */
    rv = q_run(st, &res, "items_seq", "SELECT memds.item_seq_visible()", NULL,
               PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pseq = col_i64(res, 0, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_items_changed(memds_store_t *st,
                                       apr_array_header_t **prows,
                                       const char *account, const char *store,
                                       apr_int64_t since, apr_int64_t upto)
{
    qargs_t a;
    PGresult *res;
    apr_array_header_t *arr;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_i64(&a, since < 0 ? -1 : since);
    qa_i64(&a, upto);
    rv = q_run(st, &res, "items_changed",
               "SELECT guid, content_type, octet_length(data), seq, deleted,"
               " coalesce(changed_by, 0) FROM memds.items"
               " WHERE account = $1 AND store = $2"
               " AND seq > $3::bigint AND seq <= $4::bigint"
               " AND ($3::bigint >= 0 OR NOT deleted)"
               " ORDER BY seq",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    arr = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_item_row_t *));
    for (i = 0; i < n; ++i) {
        memds_item_row_t *r = apr_palloc(st->pool, sizeof(*r));
        r->guid = col_str(res, i, 0, st->pool);
        r->content_type = col_str(res, i, 1, st->pool);
        r->data = NULL;
        r->len = (apr_size_t)col_i64(res, i, 2, 0);
        r->seq = col_i64(res, i, 3, 0);
        r->deleted = col_bool(res, i, 4);
        r->changed_by = col_i64(res, i, 5, 0);
        APR_ARRAY_PUSH(arr, memds_item_row_t *) = r;
    }
    PQclear(res);
    *prows = arr;
    return APR_SUCCESS;
}

apr_status_t memds_store_items_get(memds_store_t *st, memds_item_row_t *row,
                                   const char *account, const char *store,
                                   const char *guid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_str(&a, guid);
    rv = q_row(st, &res, "items_get",
               "SELECT guid, content_type, data, seq, deleted,"
               " coalesce(changed_by, 0) FROM memds.items"
               " WHERE account = $1 AND store = $2 AND guid = $3",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    row->guid = col_str(res, 0, 0, st->pool);
    row->content_type = col_str(res, 0, 1, st->pool);
    row->data = col_bytes(res, 0, 2, &row->len, st->pool);
    row->seq = col_i64(res, 0, 3, 0);
    row->deleted = col_bool(res, 0, 4);
    row->changed_by = col_i64(res, 0, 5, 0);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_items_get_many(memds_store_t *st,
                                        apr_array_header_t **prows,
                                        const char *account, const char *store,
                                        const char *const *guids, int n)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, k;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_str(&a, text_array(guids, n, st->pool));
    rv = q_run(st, &res, "items_get_many",
               "SELECT guid, content_type, data, seq, deleted,"
               " coalesce(changed_by, 0) FROM memds.items"
               " WHERE account = $1 AND store = $2 AND guid = ANY ($3::text[])",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    k = PQntuples(res);
    *prows = apr_array_make(st->pool, k + 1, sizeof(memds_item_row_t *));
    for (i = 0; i < k; ++i) {
        memds_item_row_t *row = apr_pcalloc(st->pool, sizeof(*row));
        row->guid = col_str(res, i, 0, st->pool);
        row->content_type = col_str(res, i, 1, st->pool);
        row->data = col_bytes(res, i, 2, &row->len, st->pool);
        row->seq = col_i64(res, i, 3, 0);
        row->deleted = col_bool(res, i, 4);
        row->changed_by = col_i64(res, i, 5, 0);
        APR_ARRAY_PUSH(*prows, memds_item_row_t *) = row;
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_items_match(memds_store_t *st, const char **pguid,
                                     const char *account, const char *store,
                                     apr_int64_t device_id, const char *data,
                                     apr_size_t len)
{
    qargs_t a;

    /* The hash finds candidates through the items_match index; comparing
     * the bytes too makes a SHA-1 collision harmless. (Account and store
     * as InitPlans: see memds_store_items_match_many.) */
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_str(&a, memds_sha1_hex(data, len, st->pool));
    qa_bin(&a, data, len);
    qa_i64(&a, device_id);
    return q_value(st, pguid, "items_match",
                   "SELECT " MEMDS_PG_CUSTOM_PLAN " i.guid FROM memds.items i"
                   " WHERE i.account = (SELECT $1::text)"
                   " AND i.store = (SELECT $2::text) AND i.sha1 = $3"
                   " AND NOT i.deleted AND i.data = $4::bytea"
                   " AND NOT EXISTS (SELECT 1 FROM memds.maps m"
                   "  WHERE m.device_id = $5::bigint AND m.store = i.store"
                   "  AND m.guid = i.guid)"
                   " ORDER BY i.seq LIMIT 1",
                   &a);
}

apr_status_t memds_store_items_add(memds_store_t *st, const char **pguid,
                                   const char *account, const char *store,
                                   const char *content_type, const char *data,
                                   apr_size_t len, apr_int64_t changed_by)
{
    qargs_t a;

    /* The GUID is the item's first change sequence value in decimal: unique
     * (each value is taken once) and short, since devices limit GUIDs
     * (MaxGUIDSize, often 32 or 64): under 10 characters for the first
     * billion changes, 19 at most. The item keeps its GUID when later
     * changes give it a new seq. */
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_str(&a, content_type);
    qa_bin(&a, data, len);
    qa_str(&a, memds_sha1_hex(data, len, st->pool));
    if (changed_by > 0) {
        qa_i64(&a, changed_by);
    }
    else {
        qa_str(&a, NULL);
    }
    return q_value(st, pguid, "items_add",
                   "WITH s AS (SELECT memds.item_seq_take() AS v)"
                   " INSERT INTO memds.items (account, store, guid,"
                   " content_type, data, sha1, seq, changed_by)"
                   " SELECT $1::text, $2::text, s.v::text, $3::text,"
                   " $4::bytea, $5::text, s.v, $6::bigint FROM s"
                   " RETURNING guid",
                   &a);
}

apr_status_t memds_store_items_replace(memds_store_t *st, const char *account,
                                       const char *store, const char *guid,
                                       const char *content_type,
                                       const char *data, apr_size_t len,
                                       apr_int64_t changed_by)
{
    qargs_t a;
    apr_status_t rv;
    int n;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_str(&a, guid);
    qa_str(&a, content_type);
    qa_bin(&a, data, len);
    qa_str(&a, memds_sha1_hex(data, len, st->pool));
    if (changed_by > 0) {
        qa_i64(&a, changed_by);
    }
    else {
        qa_str(&a, NULL);
    }
    rv = q_cmd(st, &n, "items_replace",
               "UPDATE memds.items SET content_type = $4, data = $5::bytea,"
               " sha1 = $6, seq = memds.item_seq_take(), deleted = false,"
               " changed_by = $7::bigint, updated_at = now()"
               " WHERE account = $1 AND store = $2 AND guid = $3",
               &a);
    if (rv == APR_SUCCESS && n == 0) {
        return APR_ENOENT;
    }
    return rv;
}

apr_status_t memds_store_items_delete(memds_store_t *st, const char *account,
                                      const char *store, const char *guid,
                                      apr_int64_t changed_by)
{
    qargs_t a;
    apr_status_t rv;
    int n;

    /* The tombstone keeps its bytes (items_get returns them; a Replace of
     * the GUID revives the item). */
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_str(&a, guid);
    if (changed_by > 0) {
        qa_i64(&a, changed_by);
    }
    else {
        qa_str(&a, NULL);
    }
    rv = q_cmd(st, &n, "items_delete",
               "UPDATE memds.items SET deleted = true,"
               " seq = memds.item_seq_take(), changed_by = $4::bigint,"
               " updated_at = now()"
               " WHERE account = $1 AND store = $2 AND guid = $3"
               " AND NOT deleted",
               &a);
    if (rv == APR_SUCCESS && n == 0) {
        return APR_ENOENT;
    }
    return rv;
}

/* ------------------------------------ the items datastore, in batches */

static void put_be32(unsigned char *o, apr_uint32_t v)
{
    o[0] = (unsigned char)(v >> 24);
    o[1] = (unsigned char)(v >> 16);
    o[2] = (unsigned char)(v >> 8);
    o[3] = (unsigned char)v;
}

/* A one-dimensional array parameter in PostgreSQL's binary format
 * (elements of type oid; lens NULL: NUL-terminated text, a NULL element
 * is SQL NULL), for qa_bin: no escaping of the bytes, and a bytea[] cannot
 * be written any other way without hex-encoding every item. */
static const char *bin_array(const char *const *v, const apr_size_t *lens,
                             int n, apr_uint32_t oid, apr_size_t *plen,
                             apr_pool_t *p)
{
    apr_size_t cap = 20, k = 20;
    unsigned char *out;
    int i;

    for (i = 0; i < n; ++i) {
        cap += 4 + (lens ? lens[i] : v[i] ? strlen(v[i]) : 0);
    }
    out = apr_palloc(p, cap);
    put_be32(out, 1);      /* dimensions */
    put_be32(out + 4, 1);  /* may have NULLs */
    put_be32(out + 8, oid);
    put_be32(out + 12, (apr_uint32_t)n);
    put_be32(out + 16, 1); /* lower bound */
    for (i = 0; i < n; ++i) {
        apr_size_t l = lens ? lens[i] : v[i] ? strlen(v[i]) : 0;
        if (v[i] == NULL && lens == NULL) {
            put_be32(out + k, 0xFFFFFFFFu); /* -1: NULL */
            k += 4;
            continue;
        }
        put_be32(out + k, (apr_uint32_t)l);
        if (l) {
            memcpy(out + k + 4, v[i], l);
        }
        k += 4 + l;
    }
    *plen = k;
    return (const char *)out;
}

#define OID_BYTEA 17
#define OID_TEXT 25

static const char *const *sha1_all(const char *const *data,
                                   const apr_size_t *lens, int n,
                                   apr_pool_t *p)
{
    const char **h = apr_palloc(p, sizeof(char *) * (apr_size_t)(n > 0 ? n : 1));
    int i;

    for (i = 0; i < n; ++i) {
        h[i] = memds_sha1_hex(data[i], lens[i], p);
    }
    return h;
}

apr_status_t memds_store_items_match_many(memds_store_t *st,
                                          const char *account,
                                          const char *store,
                                          apr_int64_t device_id, int n,
                                          const char *const *data,
                                          const apr_size_t *lens,
                                          const char **pguids,
                                          const char **pdata,
                                          apr_size_t *plens)
{
    qargs_t a;
    PGresult *res;
    const char *const *h;
    const char *arr;
    apr_hash_t *first;
    apr_size_t alen;
    apr_status_t rv;
    int i, *rows;

    for (i = 0; i < n; ++i) {
        pguids[i] = pdata[i] = NULL;
        plens[i] = 0;
    }
    if (n == 0) {
        return APR_SUCCESS;
    }
    h = sha1_all(data, lens, n, st->pool);
    arr = bin_array(h, NULL, n, OID_TEXT, &alen, st->pool);
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_bin(&a, arr, alen);
    qa_i64(&a, device_id);
    /* Every candidate of the message's hashes, oldest first; the first of
     * each hash is the item's (docs/performance.md). Not one LIMIT 1
     * subquery per item: a store that grew since the last ANALYZE is
     * believed to hold one row, and the planner then walked it in seq
     * order (items_changes) for each item, quadratic in a slow sync. This
     * form is an index scan of items_match with fresh statistics and at
     * worst one pass over the store per message with stale ones. */
    rv = q_run(st, &res, "items_match_many",
               "SELECT i.sha1, i.guid, i.data FROM memds.items i"
               " WHERE i.account = $1 AND i.store = $2"
               " AND i.sha1 = ANY ($3::text[]) AND NOT i.deleted"
               " AND NOT EXISTS (SELECT 1 FROM memds.maps m"
               "  WHERE m.device_id = $4::bigint AND m.store = i.store"
               "  AND m.guid = i.guid)"
               " ORDER BY i.seq",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* hash -> its first row (the result's strings live until PQclear) */
    first = apr_hash_make(st->pool);
    rows = apr_palloc(st->pool, sizeof(int) * (apr_size_t)(PQntuples(res) + 1));
    for (i = 0; i < PQntuples(res); ++i) {
        const char *hash = PQgetvalue(res, i, 0);
        rows[i] = i;
        if (apr_hash_get(first, hash, APR_HASH_KEY_STRING) == NULL) {
            apr_hash_set(first, hash, APR_HASH_KEY_STRING, &rows[i]);
        }
    }
    for (i = 0; i < n; ++i) {
        const int *r = apr_hash_get(first, h[i], APR_HASH_KEY_STRING);
        if (r) {
            pguids[i] = col_str(res, *r, 1, st->pool);
            pdata[i] = col_bytes(res, *r, 2, &plens[i], st->pool);
        }
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_store_items_add_many(memds_store_t *st, const char *account,
                                        const char *store, int n,
                                        const char *const *types,
                                        const char *const *data,
                                        const apr_size_t *lens,
                                        apr_int64_t changed_by,
                                        const char **pguids)
{
    qargs_t a;
    PGresult *res;
    const char *ta, *da, *ha;
    apr_size_t tl, dl, hl;
    apr_status_t rv;
    int i, k;

    if (n == 0) {
        return APR_SUCCESS;
    }
    ta = bin_array(types, NULL, n, OID_TEXT, &tl, st->pool);
    da = bin_array(data, lens, n, OID_BYTEA, &dl, st->pool);
    ha = bin_array(sha1_all(data, lens, n, st->pool), NULL, n, OID_TEXT, &hl,
                   st->pool);
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, store);
    qa_bin(&a, ta, tl);
    qa_bin(&a, da, dl);
    qa_bin(&a, ha, hl);
    if (changed_by > 0) {
        qa_i64(&a, changed_by);
    }
    else {
        qa_str(&a, NULL);
    }
    qa_int(&a, n);
    /* Each item's seq and GUID as memds_store_items_add gives them, in
     * order; but only the first value goes through item_seq_take() (its
     * gate and the lock that names the transaction's first value, which
     * keeps item_seq_visible() below all of them), the others are plain
     * nextval: one PL/pgSQL call per message instead of one per item. */
    rv = q_run(st, &res, "items_add_many",
               "WITH f AS MATERIALIZED (SELECT memds.item_seq_take() AS v0),"
               " s AS MATERIALIZED (SELECT g.o, CASE WHEN g.o = 1 THEN f.v0"
               "  ELSE nextval('memds.item_seq') END AS v"
               "  FROM generate_series(1, $7::integer) AS g(o) CROSS JOIN f),"
               " ins AS (INSERT INTO memds.items (account, store, guid,"
               "  content_type, data, sha1, seq, changed_by)"
               "  SELECT $1::text, $2::text, s.v::text, u.t,"
               "  u.d, u.h, s.v, $6::bigint"
               "  FROM unnest($3::text[], $4::bytea[], $5::text[])"
               "  WITH ORDINALITY AS u(t, d, h, o) JOIN s ON s.o = u.o"
               "  RETURNING 1)"
               " SELECT s.o, s.v::text, (SELECT count(*) FROM ins)"
               " FROM s ORDER BY s.o",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    k = PQntuples(res);
    if (k != n || col_i64(res, 0, 2, 0) != n) {
        st->err = apr_psprintf(st->pool,
                               "store: items_add_many: %d of %d items added",
                               k > 0 ? (int)col_i64(res, 0, 2, 0) : 0, n);
        PQclear(res);
        return APR_EGENERAL;
    }
    for (i = 0; i < k; ++i) {
        pguids[i] = col_str(res, i, 1, st->pool);
    }
    PQclear(res);
    return APR_SUCCESS;
}
