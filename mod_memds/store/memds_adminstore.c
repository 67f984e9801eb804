/* memds_adminstore.c: the administrator's reports and ledger actions (see
 * memds_adminstore.h). Every column is selected as text; the reports are
 * for people and scripts, never on the request path (except the one
 * count of memds_admin_outbox_stuck, an indexed scan of the ledger). */
#include "store/memds_adminstore.h"
#include "store/memds_mailstore.h"
#include "store/memds_store_sql.h"

#include <apr_strings.h>
#include <string.h>

#define TS(x) \
    "coalesce(to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '')"
#define STUCK_SECS_SQL "interval '300 seconds'" /* MEMDS_OUTBOX_STUCK_SECS */

/* Why a ledger row o is stuck, '' when it is not (SQL). */
#define STUCK_SQL \
    "CASE WHEN o.state = 'received' AND o.updated_at < now() - " \
    STUCK_SECS_SQL " THEN 'not sent: the sender stopped before SMTP (retry " \
    "or drop)'" \
    " WHEN o.state = 'submitting' AND o.updated_at < now() - " \
    STUCK_SECS_SQL " THEN 'in doubt: the end of the message may have " \
    "reached the SMTP server; never sent again (drop to close it)'" \
    " WHEN o.state = 'submitted' AND o.updated_at < now() - " \
    STUCK_SECS_SQL " THEN 'sent, but not filed in Sent'" \
    " WHEN o.state = 'retrying' AND o.attempts >= 5" \
    " THEN 'retries keep failing (see reason; retry or drop)'" \
    " WHEN o.state = 'retrying' AND o.next_attempt_at < now() - " \
    STUCK_SECS_SQL " THEN 'retry overdue: no background job sends it " \
    "(its location or per-user SMTP login); the device''s next sync will'" \
    " ELSE '' END"

/* Run sql ($1: account or NULL) and keep every column as a string. */
static apr_status_t table(memds_store_t *st, memds_admin_table_t *t,
                          const char *what, const char *sql,
                          const char *const *cols, const char *account)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, k, n, nc;

    for (nc = 0; cols[nc]; ++nc) {
    }
    qa_init(&a, st->pool);
    qa_str(&a, account);
    rv = q_run(st, &res, what, sql, &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    t->cols = cols;
    t->rows = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(const char **));
    for (i = 0; i < n; ++i) {
        const char **row = apr_palloc(st->pool,
                                      sizeof(char *) * (apr_size_t)nc);
        for (k = 0; k < nc; ++k) {
            row[k] = PQgetisnull(res, i, k) ? ""
                                            : col_str(res, i, k, st->pool);
        }
        APR_ARRAY_PUSH(t->rows, const char **) = row;
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_admin_accounts(memds_store_t *st, memds_admin_table_t *t,
                                  const char *account)
{
    static const char *const cols[] = {
        "account",     "devices#",           "last_seen",
        "last_sync",   "push_devices#",      "pending_notifications#",
        "watched_by",  "outbox_open#",       NULL
    };

    return table(
        st, t, "admin_accounts",
        "SELECT a.account,"
        " (SELECT count(*) FROM memds.devices d WHERE d.account = a.account)"
        "::text,"
        " " TS("(SELECT max(d.last_seen_at) FROM memds.devices d"
               " WHERE d.account = a.account)") ","
        " " TS("(SELECT max(s.updated_at) FROM memds.sync_state s JOIN"
               " memds.devices d USING (device_id) WHERE d.account ="
               " a.account)") ","
        " (SELECT count(*) FROM memds.push_channels c JOIN memds.devices d"
        "  USING (device_id) WHERE d.account = a.account)::text,"
        " (SELECT count(*) FROM memds.push_pending p JOIN memds.devices d"
        "  USING (device_id) WHERE d.account = a.account)::text,"
        " coalesce((SELECT string_agg(w.node || CASE WHEN w.lease_until >"
        "  now() THEN '' ELSE ' (lease expired)' END, ',' ORDER BY w.node)"
        "  FROM memds.push_watch w WHERE w.account = a.account AND w.node IS"
        "  NOT NULL), ''),"
        " (SELECT count(*) FROM memds.outbox o WHERE o.account = a.account"
        "  AND o.state NOT IN ('acknowledged', 'rejected'))::text"
        " FROM (SELECT DISTINCT account FROM memds.devices WHERE $1::text IS"
        " NULL OR account = $1) a ORDER BY a.account",
        cols, account);
}

apr_status_t memds_admin_devices(memds_store_t *st, memds_admin_table_t *t,
                                 const char *account)
{
    static const char *const cols[] = {
        "account",         "device",          "last_seen",
        "last_sync",       "sync_types",      "datastores",
        "push_channel",    "pending_notifications#", "push_error",
        "wipe",            "wipe_requested",  "wipe_done",
        "last_session",    "auth_failures#",  "failed_sessions#",
        "blocked",         NULL
    };

    /* (blocked: the authentication limit's block, or a hold of schema 014
     *  read through to_jsonb so that this works with or without it) */
    return table(
        st, t, "admin_devices",
        "SELECT d.account, d.devid, " TS("d.last_seen_at") ","
        " " TS("(SELECT max(s.updated_at) FROM memds.sync_state s"
               " WHERE s.device_id = d.device_id)") ","
        " coalesce((SELECT string_agg(x.t, ',' ORDER BY x.c) FROM (SELECT"
        "  DISTINCT ss.alert_code AS c, CASE ss.alert_code WHEN 200 THEN"
        "  'two-way' WHEN 201 THEN 'slow' WHEN 202 THEN 'one-way-from-client'"
        "  WHEN 203 THEN 'refresh-from-client' WHEN 204 THEN"
        "  'one-way-from-server' WHEN 205 THEN 'refresh-from-server' ELSE"
        "  'server-alerted-' || ss.alert_code END AS t FROM"
        "  memds.session_stores ss JOIN memds.sessions s USING (session_pk)"
        "  WHERE s.device_id = d.device_id) x), ''),"
        " coalesce((SELECT string_agg(x.store || ':' || x.n, ','"
        "  ORDER BY x.store) FROM (SELECT s.store, (SELECT count(*) FROM"
        "  memds.maps m WHERE m.device_id = d.device_id AND m.store = s.store)"
        "  AS n FROM (SELECT store FROM memds.sync_state WHERE device_id ="
        "  d.device_id UNION SELECT store FROM memds.maps WHERE device_id ="
        "  d.device_id) s) x), ''),"
        " coalesce(c.channel || ' ' || c.address, ''),"
        " (SELECT count(*) FROM memds.push_pending p"
        "  WHERE p.device_id = d.device_id)::text,"
        " coalesce((SELECT p.last_error FROM memds.push_pending p WHERE"
        "  p.device_id = d.device_id AND p.last_error IS NOT NULL ORDER BY"
        "  p.attempts DESC LIMIT 1), ''),"
        " coalesce(d.wipe, ''), " TS("d.wipe_requested_at") ","
        " " TS("d.wipe_done_at") ","
        " coalesce((SELECT s.phase || CASE WHEN s.finished THEN ''"
        "  WHEN s.expires_at <= now() THEN ' (expired, not completed)'"
        "  ELSE ' (in progress)' END || ' ' || to_char(s.updated_at AT TIME"
        "  ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM memds.sessions s WHERE"
        "  s.device_id = d.device_id ORDER BY s.updated_at DESC LIMIT 1), ''),"
        " coalesce(au.failures, 0)::text,"
        " coalesce(to_jsonb(au) ->> 'failed_sessions', '0'),"
        " CASE WHEN (to_jsonb(au) ->> 'held_until')::timestamptz > now()"
        "  THEN 'held' || coalesce(': ' || (to_jsonb(au) ->> 'held_reason'),"
        "  '') WHEN au.blocked_until > now() THEN 'authentication failures,"
        "  until ' || to_char(au.blocked_until AT TIME ZONE 'UTC',"
        "  'YYYY-MM-DD HH24:MI:SS') ELSE '' END"
        " FROM memds.devices d LEFT JOIN memds.device_auth au"
        " ON au.account = d.account AND au.devid = d.devid"
        " LEFT JOIN memds.push_channels c ON c.device_id = d.device_id"
        " WHERE $1::text IS NULL OR d.account = $1"
        " ORDER BY d.account, d.devid",
        cols, account);
}

apr_status_t memds_admin_outbox(memds_store_t *st, memds_admin_table_t *t,
                                const char *account, int all)
{
    static const char *const cols[] = {
        "id#",     "account", "device",  "datastore", "state",
        "attempts#", "next",  "status",  "reason",    "created",
        "updated", "stuck",   NULL
    };

    return table(
        st, t, all ? "admin_outbox_all" : "admin_outbox",
        apr_pstrcat(
            st->pool,
            "SELECT o.outbox_id::text, o.account, d.devid, o.store, o.state,"
            " o.attempts::text, " TS("o.next_attempt_at") ","
            " coalesce(o.status::text, ''), coalesce(o.reason, ''),"
            " " TS("o.created_at") ", " TS("o.updated_at") ", " STUCK_SQL
            " FROM memds.outbox o JOIN memds.devices d USING (device_id)"
            " WHERE ($1::text IS NULL OR o.account = $1)",
            all ? "" : " AND o.state <> 'acknowledged'",
            " ORDER BY o.outbox_id", NULL),
        cols, account);
}

apr_status_t memds_admin_outbox_stuck(memds_store_t *st, apr_int64_t *pn)
{
    const char *v = NULL;
    qargs_t a;
    apr_status_t rv;

    qa_init(&a, st->pool);
    rv = q_value(st, &v, "admin_outbox_stuck",
                 "SELECT count(*)::text FROM memds.outbox o WHERE o.state IN"
                 " ('received', 'submitting', 'submitted', 'retrying') AND "
                 STUCK_SQL " <> ''",
                 &a);
    if (rv == APR_SUCCESS) {
        *pn = apr_atoi64(v);
    }
    return rv;
}

apr_status_t memds_admin_outbox_act(memds_store_t *st, memds_outbox_act_e *pres,
                                    const char **pwhat, const char **pstate,
                                    apr_int64_t id, int drop)
{
    memds_outbox_row_t row;
    const char *s, *v = NULL;
    qargs_t a;
    int got = 0, ok;
    apr_status_t rv;

    *pres = MEMDS_OUTBOX_ACT_REFUSED;
    *pwhat = NULL;
    *pstate = "";
    /* The claim: no sender (a device's request, the background job) can
     * work on the row until it is given back, and the row is read after
     * it was taken. */
    rv = memds_outbox_claim(st, id, &got, &row);
    if (rv == APR_ENOENT) {
        *pres = MEMDS_OUTBOX_ACT_NOROW;
        *pwhat = "no such outbox message";
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!got) {
        *pres = MEMDS_OUTBOX_ACT_BUSY;
        *pwhat = "the message is being sent right now by the module; look "
                 "again in a minute";
        return APR_SUCCESS;
    }
    s = row.state;
    *pstate = s;
    ok = strcmp(s, "received") == 0 || strcmp(s, "retrying") == 0
         || (drop && strcmp(s, "submitting") == 0);
    if (!ok) {
        *pwhat =
            strcmp(s, "rejected") == 0
                ? "it is closed already (refused by the SMTP server, or "
                  "dropped): nothing sends it"
            : strcmp(s, "submitting") == 0
                ? "its end may have reached the SMTP server (in doubt): it "
                  "is never sent again; drop closes it"
                : "it was sent: nothing to retry or drop";
        memds_outbox_unclaim(st, id);
        return APR_SUCCESS;
    }
    qa_init(&a, st->pool);
    qa_i64(&a, id);
    qa_str(&a, s);
    rv = drop
             ? q_value(st, &v, "admin_outbox_drop",
                       "UPDATE memds.outbox SET state = 'rejected',"
                       " status = 500, reason = 'dropped by the administrator"
                       " (was ' || state || ')' || coalesce(': ' || reason,"
                       " ''), next_attempt_at = NULL, updated_at = now()"
                       " WHERE outbox_id = $1::bigint AND state = $2"
                       " RETURNING 'x'",
                       &a)
             : q_value(st, &v, "admin_outbox_retry",
                       "UPDATE memds.outbox SET state = 'retrying',"
                       " next_attempt_at = now(), updated_at = now()"
                       " WHERE outbox_id = $1::bigint AND state = $2"
                       " AND data IS NOT NULL RETURNING CASE WHEN location"
                       " IS NULL THEN 'n' ELSE 'y' END",
                       &a);
    memds_outbox_unclaim(st, id);
    if (rv == APR_ENOENT) {
        *pwhat = "the message has no stored copy to send";
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pres = MEMDS_OUTBOX_ACT_DONE;
    *pwhat = drop ? "dropped: the row stays as a record in state rejected "
                    "(status 500); nothing will send it"
             : strcmp(v, "y") == 0
                 ? "due now: the background job sends it at its next run "
                   "(every 10 s; with MemDSSMTPAuth user, the device's next "
                   "sync does)"
                 : "due now: the device's next sync sends it (no location "
                   "is recorded for the background job)";
    return APR_SUCCESS;
}
