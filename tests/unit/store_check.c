/* store_check: exercises every function of store/memds_store.c against a
 * real PostgreSQL whose schema is already migrated (memds-admin migrate).
 *
 *   store_check CONNINFO
 *
 * Everything happens inside transactions that are rolled back at the end,
 * with account and device names unique to the run, so it can run against
 * a shared database. A second connection checks locking and what
 * memds_store_items_seq promises about concurrent writers. Prints TAP and
 * exits 0 when every check passed, 1 when one failed, 2 on a setup error. */
#include "store/memds_store.h"
#include "store/memds_mailstore.h"
#include "store/memds_pgpool.h"
#include "store/memds_store_sql.h"

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_thread_proc.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ctx_t {
    int n; /* checks run */
    int failed;
    apr_pool_t *p;
    memds_store_t a, b; /* two connections, two transactions */
    const char *acct, *acct2;
    apr_int64_t dev, dev2; /* device ids on connection a */
} ctx_t;

static void ok(ctx_t *c, int cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ok(ctx_t *c, int cond, const char *fmt, ...)
{
    va_list ap;

    ++c->n;
    if (!cond) {
        ++c->failed;
    }
    printf("%sok %d - ", cond ? "" : "not ", c->n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Check a status; on a mismatch show the store's error as a TAP comment. */
static int ok_rv(ctx_t *c, memds_store_t *st, apr_status_t rv,
                 apr_status_t want, const char *what)
{
    ok(c, rv == want, "%s", what);
    if (rv != want) {
        printf("# got status %d, wanted %d; err: %s\n", rv, want,
               st->err ? st->err : "(none)");
    }
    return rv == want;
}

static int streq(const char *x, const char *y)
{
    return x && y && strcmp(x, y) == 0;
}

static int bytes_eq(const char *x, apr_size_t xlen, const char *y,
                    apr_size_t ylen)
{
    return xlen == ylen && (xlen == 0 || (x && y && memcmp(x, y, xlen) == 0));
}

/* count(*) of a query with one text parameter, on st's connection. */
/* st's connection for a statement of the test's own, after the results of
 * what the store sent without waiting (q_later: BEGIN, some writes). */
static PGconn *raw_conn(memds_store_t *st)
{
    if (q_sync(st) != APR_SUCCESS) {
        printf("# pending statements failed: %s\n", st->err ? st->err : "?");
    }
    return memds_pgconn_native(st->conn);
}

static long raw_count(memds_store_t *st, const char *sql, const char *p1)
{
    PGconn *pc = raw_conn(st);
    const char *vals[1];
    PGresult *res;
    long n = -1;

    vals[0] = p1;
    res = PQexecParams(pc, sql, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        n = atol(PQgetvalue(res, 0, 0));
    }
    else {
        printf("# raw query failed: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    return n;
}

/* A command with up to two text parameters (p1, p2 may be NULL). */
static void raw_exec2(memds_store_t *st, const char *sql, const char *p1,
                      const char *p2)
{
    const char *vals[2];
    int n = p2 ? 2 : p1 ? 1 : 0;
    PGresult *res;

    vals[0] = p1;
    vals[1] = p2;
    res = PQexecParams(raw_conn(st), sql, n, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        printf("# %s: %s", sql, PQresultErrorMessage(res));
    }
    PQclear(res);
}

static void raw_exec(memds_store_t *st, const char *sql)
{
    raw_exec2(st, sql, NULL, NULL);
}

/* A query's one bigint value, on st's connection (-2 when it fails). */
static apr_int64_t raw_i64(memds_store_t *st, const char *sql)
{
    PGresult *res = PQexec(raw_conn(st), sql);
    apr_int64_t v = -2;

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && !PQgetisnull(res, 0, 0)) {
        v = apr_atoi64(PQgetvalue(res, 0, 0));
    }
    else {
        printf("# %s: %s", sql, PQresultErrorMessage(res));
    }
    PQclear(res);
    return v;
}

/* ------------------------------------------------------------------ */

/* IMEI:1's last_seen_at set to age ago, then device_lock: whether its
 * row then matches cond. */
static int seen_after_lock(ctx_t *c, const char *age, const char *cond)
{
    memds_device_t d;

    raw_exec2(&c->a,
              "UPDATE memds.devices SET last_seen_at = now() - $2::interval"
              " WHERE account = $1 AND devid = 'IMEI:1'",
              c->acct, age);
    return memds_store_device_lock(&c->a, &d, c->acct, "IMEI:1") == APR_SUCCESS
           && d.device_id == c->dev
           && raw_count(&c->a,
                        apr_pstrcat(c->p,
                                    "SELECT count(*) FROM memds.devices"
                                    " WHERE account = $1 AND devid = 'IMEI:1'"
                                    " AND ",
                                    cond, NULL),
                        c->acct)
                  == 1;
}

static void check_devices(ctx_t *c)
{
    memds_store_t *a = &c->a, *b = &c->b;
    memds_device_t d, d2;
    static const char xml[] = "<DevInf>\0\xff bytes</DevInf>";
    apr_status_t rv;

    memset(&d, 0, sizeof(d));
    rv = memds_store_device_lock(a, &d, c->acct, "IMEI:1");
    if (ok_rv(c, a, rv, APR_SUCCESS, "device_lock creates a device")) {
        c->dev = d.device_id;
        ok(c,
           d.device_id > 0 && streq(d.account, c->acct)
               && streq(d.devid, "IMEI:1") && d.devinf == NULL
               && d.max_guid_size == 0 && d.large_objs == 0,
           "new device: id, account, devid, no devinf, no limits");
    }
    rv = memds_store_device_lock(a, &d2, c->acct, "IMEI:1");
    ok(c, rv == APR_SUCCESS && d2.device_id == c->dev,
       "device_lock again finds the same device");
    /* last_seen_at moves when a minute old, not on every request (a new
     * row version of memds.devices per HTTP message before schema 023) */
    ok(c, seen_after_lock(c, "30 s", "last_seen_at < now() - interval '20 s'"),
       "device_lock leaves a 30 s old last_seen_at alone");
    ok(c, seen_after_lock(c, "2 min", "last_seen_at >= now()"),
       "device_lock moves a 2 min old last_seen_at");
    rv = memds_store_device_lock(a, &d2, c->acct, "IMEI:2");
    ok(c, rv == APR_SUCCESS && d2.device_id != c->dev && d2.device_id > 0,
       "another devid is another device");
    c->dev2 = d2.device_id;

    rv = memds_store_device_set_devinf(a, c->dev, xml, sizeof(xml) - 1, 32, 1);
    ok_rv(c, a, rv, APR_SUCCESS, "device_set_devinf");
    rv = memds_store_device_lock(a, &d, c->acct, "IMEI:1");
    ok(c,
       rv == APR_SUCCESS
           && bytes_eq(d.devinf, d.devinf_len, xml, sizeof(xml) - 1)
           && d.max_guid_size == 32 && d.large_objs == 1,
       "devinf (with NUL and 0xff), MaxGUIDSize and LargeObjs read back");
    rv = memds_store_device_set_devinf(a, -42, xml, 3, 0, 0);
    ok_rv(c, a, rv, APR_ENOENT,
          "device_set_devinf of an unknown device: ENOENT");

    /* The row stays locked by a's transaction: b cannot lock it. */
    raw_exec(b, "SET lock_timeout = '300ms'");
    ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "begin on connection b");
    rv = memds_store_device_lock(b, &d2, c->acct, "IMEI:1");
    ok(c, rv == APR_EGENERAL && b->err && strstr(b->err, "lock"),
       "device_lock on b waits for a's lock (lock_timeout): %s",
       b->err ? b->err : "(no err)");
    rv = memds_store_commit(b);
    ok(c, rv == APR_EGENERAL && b->err && strstr(b->err, "rolled back"),
       "commit after a failed statement reports the rollback");
    memds_store_rollback(b);
    ok(c, PQtransactionStatus(memds_pgconn_native(b->conn)) == PQTRANS_IDLE,
       "rollback is safe when no transaction is open");
    raw_exec(b, "RESET lock_timeout");
}

static void check_auth(ctx_t *c)
{
    memds_store_t *a = &c->a;
    memds_auth_row_t r;
    apr_status_t rv;
    int i;

    memset(&r, 0xff, sizeof(r));
    rv = memds_store_auth_get(a, &r, c->acct, "IMEI:1");
    ok(c,
       rv == APR_SUCCESS && streq(r.nonce, "") && r.failures == 0
           && r.blocked == 0,
       "auth_get of a missing row: zeros and \"\"");
    ok(c,
       raw_count(a,
                 "SELECT count(*) FROM memds.device_auth"
                 " WHERE account = $1",
                 c->acct)
           == 0,
       "auth_get created no row");

    rv = memds_store_auth_set_nonce(a, c->acct, "IMEI:1", "bm9uY2Ux");
    ok_rv(c, a, rv, APR_SUCCESS, "auth_set_nonce (insert)");
    rv = memds_store_auth_set_nonce(a, c->acct, "IMEI:1", "bm9uY2Uy");
    ok_rv(c, a, rv, APR_SUCCESS, "auth_set_nonce (update)");
    rv = memds_store_auth_get(a, &r, c->acct, "IMEI:1");
    ok(c, rv == APR_SUCCESS && streq(r.nonce, "bm9uY2Uy"), "nonce read back");

    for (i = 1; i <= 2; ++i) {
        rv = memds_store_auth_failed(a, c->acct, "IMEI:1", 3, 600, 60);
        ok_rv(c, a, rv, APR_SUCCESS, apr_psprintf(c->p, "auth_failed #%d", i));
    }
    rv = memds_store_auth_get(a, &r, c->acct, "IMEI:1");
    ok(c,
       rv == APR_SUCCESS && r.failures == 2 && !r.blocked
           && streq(r.nonce, "bm9uY2Uy"),
       "two failures counted, not blocked, nonce kept");
    rv = memds_store_auth_failed(a, c->acct, "IMEI:1", 3, 600, 60);
    ok_rv(c, a, rv, APR_SUCCESS, "auth_failed #3");
    rv = memds_store_auth_get(a, &r, c->acct, "IMEI:1");
    ok(c, rv == APR_SUCCESS && r.failures == 3 && r.blocked,
       "third failure within the window blocks");
    rv = memds_store_auth_ok(a, c->acct, "IMEI:1");
    ok_rv(c, a, rv, APR_SUCCESS, "auth_ok");
    rv = memds_store_auth_get(a, &r, c->acct, "IMEI:1");
    ok(c, rv == APR_SUCCESS && r.failures == 0 && !r.blocked,
       "auth_ok resets the counter and the block");

    /* A window that has passed (0 s) restarts the count at 1. */
    memds_store_auth_failed(a, c->acct, "IMEI:1", 3, 600, 60);
    memds_store_auth_failed(a, c->acct, "IMEI:1", 3, 600, 60);
    rv = memds_store_auth_failed(a, c->acct, "IMEI:1", 3, 0, 60);
    memds_store_auth_get(a, &r, c->acct, "IMEI:1");
    ok(c, rv == APR_SUCCESS && r.failures == 1 && !r.blocked,
       "a failure after the window starts a new count");
    rv = memds_store_auth_failed(a, c->acct, "IMEI:9", 1, 600, 60);
    memds_store_auth_get(a, &r, c->acct, "IMEI:9");
    ok(c, rv == APR_SUCCESS && r.failures == 1 && r.blocked,
       "max_failures 1: the first failure (new row) blocks");
    rv = memds_store_auth_ok(a, c->acct, "IMEI:8");
    memds_store_auth_get(a, &r, c->acct, "IMEI:8");
    ok(c, rv == APR_SUCCESS && r.failures == 0 && streq(r.nonce, ""),
       "auth_ok on a new device creates a clean row");
}

/* The server's credentials towards a device (schema/008). */
static void check_server_cred(ctx_t *c)
{
    memds_store_t *a = &c->a;
    memds_server_cred_t w, r;
    apr_status_t rv;

    rv = memds_store_server_cred_get(a, &r, c->acct, "IMEI:1");
    ok_rv(c, a, rv, APR_ENOENT, "server_cred_get of a missing row: ENOENT");
    rv = memds_store_server_cred_nonce(a, c->acct, "IMEI:1", "bm9uY2Ux");
    ok_rv(c, a, rv, APR_SUCCESS, "server_cred_nonce without a row: nothing");
    memset(&w, 0, sizeof(w));
    w.password = "srv-pw";
    rv = memds_store_server_cred_put(a, c->acct, "IMEI:1", &w);
    ok_rv(c, a, rv, APR_SUCCESS, "server_cred_put (insert)");
    memset(&r, 0xff, sizeof(r));
    rv = memds_store_server_cred_get(a, &r, c->acct, "IMEI:1");
    ok(c,
       rv == APR_SUCCESS && r.server_id == NULL && streq(r.password, "srv-pw")
           && !r.allow_basic && streq(r.nonce, ""),
       "server_cred_get: no server id, md5 only, no nonce");
    rv = memds_store_server_cred_nonce(a, c->acct, "IMEI:1", "bm9uY2Ux");
    ok_rv(c, a, rv, APR_SUCCESS, "server_cred_nonce");
    w.server_id = "srv-id";
    w.password = "srv-pw2";
    w.allow_basic = 1;
    rv = memds_store_server_cred_put(a, c->acct, "IMEI:1", &w);
    ok_rv(c, a, rv, APR_SUCCESS, "server_cred_put (replace)");
    rv = memds_store_server_cred_get(a, &r, c->acct, "IMEI:1");
    ok(c,
       rv == APR_SUCCESS && streq(r.server_id, "srv-id")
           && streq(r.password, "srv-pw2") && r.allow_basic
           && streq(r.nonce, "bm9uY2Ux"),
       "replaced: server id, password, basic; the nonce kept");
    rv = memds_store_server_cred_delete(a, c->acct, "IMEI:1");
    ok_rv(c, a, rv, APR_SUCCESS, "server_cred_delete");
    rv = memds_store_server_cred_delete(a, c->acct, "IMEI:1");
    ok_rv(c, a, rv, APR_ENOENT, "server_cred_delete again: ENOENT");
}

/* A session row of c's device, in phase init, not yet saved. */
static void new_session_row(memds_session_row_t *s, ctx_t *c, const char *tok,
                            const char *sid)
{
    memset(s, 0, sizeof(*s));
    s->token = tok;
    s->device_id = c->dev;
    s->session_id = sid;
    s->version = "1.2";
    s->encoding = "wbxml";
    s->phase = "init";
    s->client_msg_id = 1;
    s->server_msg_id = 1;
    s->max_msg_size = 10000;
    s->max_obj_size = -1;
}

static apr_int64_t check_sessions(ctx_t *c)
{
    memds_store_t *a = &c->a;
    memds_session_row_t s, s2, r;
    static const char resp[] = "\x6d\x6c\0\x01\xff\xfe response";
    const char *tok = apr_psprintf(c->p, "tok-%s", c->acct);
    apr_status_t rv;

    new_session_row(&s, c, tok, "1");
    rv = memds_store_session_save(a, &s, 3600);
    ok(c, rv == APR_SUCCESS && s.session_pk > 0, "session_save inserts");
    if (rv != APR_SUCCESS) {
        printf("# %s\n", a->err);
    }

    rv = memds_store_session_by_token(a, &r, tok);
    ok(c,
       rv == APR_SUCCESS && r.session_pk == s.session_pk && streq(r.token, tok)
           && r.device_id == c->dev && streq(r.account, c->acct)
           && streq(r.devid, "IMEI:1") && streq(r.session_id, "1")
           && streq(r.version, "1.2") && streq(r.encoding, "wbxml")
           && streq(r.phase, "init") && r.client_msg_id == 1
           && r.server_msg_id == 1 && r.max_msg_size == 10000
           && r.max_obj_size == -1 && streq(r.request_sha1, "")
           && r.response_len == 0 && !r.finished && !r.expired
           && r.server_cred == 0,
       "session_by_token reads every field");
    s.server_cred = 2;

    s.phase = "client-sync";
    s.client_msg_id = 2;
    s.server_msg_id = 2;
    s.max_obj_size = 1 << 20;
    s.request_sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    s.response = resp;
    s.response_len = sizeof(resp) - 1;
    rv = memds_store_session_save(a, &s, 3600);
    ok_rv(c, a, rv, APR_SUCCESS, "session_save updates");
    rv = memds_store_session_by_token(a, &r, tok);
    ok(c,
       rv == APR_SUCCESS && streq(r.phase, "client-sync")
           && r.client_msg_id == 2 && r.max_obj_size == (1 << 20)
           && streq(r.request_sha1, s.request_sha1) && r.response_len == 0,
       "updated fields read back, without the stored answer");
    rv = memds_store_session_response(a, &r);
    ok(c,
       rv == APR_SUCCESS
           && bytes_eq(r.response, r.response_len, resp, sizeof(resp) - 1),
       "session_response reads the binary answer back");
    {
        memds_session_row_t gone = r;
        gone.session_pk = -1;
        ok_rv(c, a, memds_store_session_response(a, &gone), APR_ENOENT,
              "session_response of a session that is gone: ENOENT");
    }
    ok(c, rv == APR_SUCCESS && r.server_cred == 2,
       "the server's authentication state reads back");
    rv = memds_store_session_by_token(a, &r, "no-such-token");
    ok_rv(c, a, rv, APR_ENOENT, "session_by_token of an unknown token: ENOENT");

    rv = memds_store_session_by_sid(a, &r, c->dev, "1");
    ok(c, rv == APR_SUCCESS && r.session_pk == s.session_pk,
       "session_by_sid finds the session");
    s2 = s;
    s2.session_pk = 0;
    s2.token = apr_pstrcat(c->p, tok, "-2", NULL);
    s2.phase = "init";
    s2.finished = 1;
    rv = memds_store_session_save(a, &s2, 0); /* expires now: expired */
    ok(c, rv == APR_SUCCESS && s2.session_pk > s.session_pk,
       "a second session with the same SessionID");
    rv = memds_store_session_by_sid(a, &r, c->dev, "1");
    ok(c,
       rv == APR_SUCCESS && r.session_pk == s2.session_pk && r.finished
           && r.expired,
       "session_by_sid returns the newest (finished, expired)");
    rv = memds_store_session_by_sid(a, &r, c->dev2, "1");
    ok_rv(c, a, rv, APR_ENOENT, "session_by_sid of another device: ENOENT");
    rv = memds_store_session_by_token(a, &r, s2.token);
    ok(c, rv == APR_SUCCESS && r.expired,
       "an expired session by token: expired = 1");

    s2.session_pk = -5;
    rv = memds_store_session_save(a, &s2, 60);
    ok_rv(c, a, rv, APR_ENOENT, "session_save of a missing session_pk: ENOENT");
    /* A duplicate token is a unique violation: an error, which aborts the
     * transaction, so this runs in a savepoint rolled back to afterwards. */
    raw_exec(a, "SAVEPOINT before_dup");
    s2.session_pk = 0;
    s2.token = tok;
    rv = memds_store_session_save(a, &s2, 60);
    ok(c, rv == APR_EGENERAL && a->err && strstr(a->err, "23505"),
       "a duplicate token fails with the SQL error in err: %s",
       a->err ? a->err : "(none)");
    raw_exec(a, "ROLLBACK TO SAVEPOINT before_dup");
    return s.session_pk;
}

static void check_expire(ctx_t *c)
{
    memds_store_t *a = &c->a;
    memds_session_row_t r;
    int n = -1;
    apr_status_t rv;

    rv = memds_store_sessions_expire(a, &n);
    ok(c, rv == APR_SUCCESS && n >= 1, "sessions_expire removed %d", n);
    rv = memds_store_session_by_token(a, &r,
                                      apr_psprintf(c->p, "tok-%s-2", c->acct));
    ok_rv(c, a, rv, APR_ENOENT, "the expired session is gone");
    rv = memds_store_session_by_token(a, &r,
                                      apr_psprintf(c->p, "tok-%s", c->acct));
    ok_rv(c, a, rv, APR_SUCCESS, "the live session stays");
}

static void check_sstores(ctx_t *c, apr_int64_t spk)
{
    memds_store_t *a = &c->a;
    memds_sstore_t s1, s2;
    apr_array_header_t *arr;
    const memds_sstore_t *x, *y;
    apr_status_t rv;

    memset(&s1, 0, sizeof(s1));
    s1.store = "notes";
    s1.client_uri = "./Notes";
    s1.server_uri = "./notes";
    s1.alert_code = 201;
    s1.slow = 1;
    s1.client_next = "c1";
    s1.server_next = "s1";
    s1.snapshot_seq = -1;
    s2 = s1;
    s2.store = "contacts";
    s2.client_uri = "./Contacts";
    s2.alert_code = 200;
    s2.slow = 0;
    s2.snapshot_seq = 77;
    s2.queue_built = 1;
    s2.last_rows = 12;
    s2.client_caps = "f=0;b=0;r=1;t=message/rfc822";
    ok(c,
       memds_store_sstore_save(a, spk, &s1) == APR_SUCCESS
           && memds_store_sstore_save(a, spk, &s2) == APR_SUCCESS,
       "sstore_save x2");
    rv = memds_store_sstores_load(a, &arr, spk);
    ok(c, rv == APR_SUCCESS && arr->nelts == 2, "sstores_load: two stores");
    if (rv == APR_SUCCESS && arr->nelts == 2) {
        x = APR_ARRAY_IDX(arr, 0, const memds_sstore_t *);
        y = APR_ARRAY_IDX(arr, 1, const memds_sstore_t *);
        ok(c, streq(x->store, "contacts") && streq(y->store, "notes"),
           "in store order");
        ok(c,
           streq(x->client_uri, "./Contacts") && x->alert_code == 200
               && !x->slow && x->snapshot_seq == 77 && x->queue_built
               && streq(y->server_uri, "./notes") && y->slow
               && y->snapshot_seq == -1 && !y->queue_built
               && streq(y->client_next, "c1") && streq(y->server_next, "s1")
               && x->last_rows == 12 && y->last_rows == 0
               && streq(x->client_caps, "f=0;b=0;r=1;t=message/rfc822")
               && y->client_caps == NULL,
           "every field read back (snapshot -1 stays -1)");
    }
    s1.snapshot_seq = 5;
    s1.queue_built = 1;
    s1.alert_code = 200;
    s1.last_rows = 40;
    rv = memds_store_sstore_save(a, spk, &s1);
    memds_store_sstores_load(a, &arr, spk);
    x = arr->nelts == 2 ? APR_ARRAY_IDX(arr, 1, const memds_sstore_t *) : NULL;
    ok(c,
       rv == APR_SUCCESS && x && x->snapshot_seq == 5 && x->queue_built
           && x->alert_code == 200 && x->last_rows == 40,
       "sstore_save updates");
}

static void check_queue(ctx_t *c, apr_int64_t spk)
{
    memds_store_t *a = &c->a;
    memds_qitem_t q, f;
    apr_array_header_t *arr;
    apr_status_t rv = APR_SUCCESS;
    int i, n = -1;

    memset(&q, 0, sizeof(q));
    for (i = 1; i <= 3 && rv == APR_SUCCESS; ++i) {
        q.store = "contacts";
        q.n = i;
        q.op = i == 1 ? MEMDS_Q_ADD : i == 2 ? MEMDS_Q_REPLACE : MEMDS_Q_DELETE;
        q.guid = apr_psprintf(c->p, "g%d", i);
        q.luid = i == 1 ? NULL : apr_psprintf(c->p, "l%d", i);
        rv = memds_store_queue_add(a, spk, &q);
    }
    q.store = "notes";
    q.n = 1;
    q.op = MEMDS_Q_ADD;
    q.guid = "n1";
    q.luid = NULL;
    if (rv == APR_SUCCESS) {
        rv = memds_store_queue_add(a, spk, &q);
    }
    ok_rv(c, a, rv, APR_SUCCESS, "queue_add x4 (two stores)");

    rv = memds_store_queue_unsent(a, &arr, spk, "contacts", 0, 2);
    ok(c,
       rv == APR_SUCCESS && arr->nelts == 2
           && APR_ARRAY_IDX(arr, 0, memds_qitem_t *)->n == 1
           && APR_ARRAY_IDX(arr, 1, memds_qitem_t *)->n == 2,
       "queue_unsent with limit 2: the first two in order");
    if (rv == APR_SUCCESS && arr->nelts == 2) {
        const memds_qitem_t *x = APR_ARRAY_IDX(arr, 0, memds_qitem_t *);
        const memds_qitem_t *y = APR_ARRAY_IDX(arr, 1, memds_qitem_t *);
        ok(c,
           x->op == MEMDS_Q_ADD && streq(x->guid, "g1") && x->luid == NULL
               && x->sent_bytes == 0 && x->sent_msg_id == 0 && x->status == 0
               && y->op == MEMDS_Q_REPLACE && streq(y->luid, "l2")
               && streq(y->store, "contacts"),
           "queue item fields read back");
    }
    rv = memds_store_queue_count_unsent(a, &n, spk);
    ok(c, rv == APR_SUCCESS && n == 1, "queue_count_unsent: any (all stores)");

    rv = memds_store_queue_find(a, &f, spk, "contacts", "g2", NULL);
    ok(c, rv == APR_SUCCESS && f.n == 2, "queue_find by guid");
    f.sent_bytes = 1234;
    f.sent_msg_id = 5;
    f.status = 200;
    rv = memds_store_queue_update(a, spk, &f);
    ok_rv(c, a, rv, APR_SUCCESS, "queue_update");
    rv = memds_store_queue_find(a, &f, spk, "contacts", NULL, "l2");
    ok(c,
       rv == APR_SUCCESS && f.n == 2 && f.sent_bytes == 1234
           && f.sent_msg_id == 5 && f.status == 200 && streq(f.guid, "g2"),
       "queue_find by luid sees the update");
    rv = memds_store_queue_find(a, &f, spk, "contacts", "nope", NULL);
    ok_rv(c, a, rv, APR_ENOENT, "queue_find of an unknown guid: ENOENT");
    rv = memds_store_queue_find(a, &f, spk, "notes", NULL, "l2");
    ok_rv(c, a, rv, APR_ENOENT, "queue_find in another store: ENOENT");
    f.n = 99;
    rv = memds_store_queue_update(a, spk, &f);
    ok_rv(c, a, rv, APR_ENOENT, "queue_update of a missing item: ENOENT");

    rv = memds_store_queue_unsent(a, &arr, spk, "contacts", 0, 10);
    ok(c,
       rv == APR_SUCCESS && arr->nelts == 2
           && APR_ARRAY_IDX(arr, 0, memds_qitem_t *)->n == 1
           && APR_ARRAY_IDX(arr, 1, memds_qitem_t *)->n == 3,
       "a sent item is no longer unsent");
    rv = memds_store_queue_unsent(a, &arr, spk, NULL, 0, 0);
    ok(c, rv == APR_SUCCESS && arr->nelts == 3,
       "queue_unsent of all stores without a limit");
    rv = memds_store_queue_count_unsent(a, &n, spk);
    ok(c, rv == APR_SUCCESS && n == 1, "queue_count_unsent: any left");

    /* sent_upto (schema/021): the rows up to it are sent, whatever their
     * sent_msg_id says */
    rv = memds_store_queue_unsent(a, &arr, spk, "contacts", 1, 10);
    ok(c,
       rv == APR_SUCCESS && arr->nelts == 1
           && APR_ARRAY_IDX(arr, 0, memds_qitem_t *)->n == 3,
       "queue_unsent after n 1: only the rows after it");
    {
        apr_array_header_t *ss;
        memds_sstore_t *x = NULL;
        int k;
        memds_store_sstores_load(a, &ss, spk);
        for (k = 0; k < ss->nelts; ++k) {
            if (streq(APR_ARRAY_IDX(ss, k, memds_sstore_t *)->store,
                      "contacts")) {
                x = APR_ARRAY_IDX(ss, k, memds_sstore_t *);
            }
        }
        ok(c, x && x->sent_upto == 0, "sent_upto starts at 0");
        if (x) {
            x->sent_upto = 3;
            rv = memds_store_sstore_save(a, spk, x);
            memds_store_sstores_load(a, &ss, spk);
            ok(c,
               rv == APR_SUCCESS
                   && APR_ARRAY_IDX(ss, 0, memds_sstore_t *)->sent_upto == 3,
               "sstore_save and sstores_load keep sent_upto");
        }
    }
    rv = memds_store_queue_unsent(a, &arr, spk, NULL, 0, 0);
    ok(c,
       rv == APR_SUCCESS && arr->nelts == 1
           && streq(APR_ARRAY_IDX(arr, 0, memds_qitem_t *)->store, "notes"),
       "queue_unsent of all stores: not the rows up to their sent_upto");
    rv = memds_store_queue_count_unsent(a, &n, spk);
    ok(c, rv == APR_SUCCESS && n == 1, "queue_count_unsent: notes is left");
    rv = memds_store_queue_update(a, spk, &(memds_qitem_t){
        .store = "notes", .n = 1, .op = MEMDS_Q_ADD, .guid = "n1",
        .sent_msg_id = 6 });
    rv = rv == APR_SUCCESS ? memds_store_queue_count_unsent(a, &n, spk) : rv;
    ok(c, rv == APR_SUCCESS && n == 0,
       "queue_count_unsent: none when the rest was sent on its own");
}

/* The device's statuses (schema/025): in order and 200/201 they move the
 * datastore's acked_upto and write no row; an error, a row answered past
 * one not answered, a status outside the window each get the row's own
 * status. count_failed and resume_copy read both. */
static long own_statuses(ctx_t *c, const char *pk)
{
    return raw_count(&c->a,
                     "SELECT count(*) FROM memds.session_queue"
                     " WHERE session_pk = $1::bigint AND store = 'acked'"
                     " AND status IS NOT NULL",
                     pk);
}

static long acked_upto(ctx_t *c, const char *pk)
{
    return raw_count(&c->a,
                     "SELECT acked_upto FROM memds.session_stores"
                     " WHERE session_pk = $1::bigint AND store = 'acked'",
                     pk);
}

/* refs/luids/codes[at..]: n statuses with code for the rows first..
 * first+n-1, by their GUIDs "k<n>". */
static void statuses(ctx_t *c, int first, int n, apr_int64_t code,
                     const char **refs, const char **luids, apr_int64_t *codes,
                     int at)
{
    int i;

    for (i = 0; i < n; ++i) {
        refs[at + i] = apr_psprintf(c->p, "k%d", first + i);
        luids[at + i] = NULL;
        codes[at + i] = code;
    }
}

static void check_queue_acked(ctx_t *c, apr_int64_t spk)
{
    memds_store_t *a = &c->a;
    const char *pk = apr_psprintf(c->p, "%" APR_INT64_T_FMT, spk);
    memds_sstore_t ss;
    memds_session_row_t s2;
    const char *refs[64], *luids[64];
    apr_int64_t codes[64];
    apr_status_t rv = APR_SUCCESS;
    int i, failed = -1;

    memset(&ss, 0, sizeof(ss));
    ss.store = "acked";
    ss.client_uri = ss.server_uri = "./acked";
    ss.alert_code = 200;
    ss.snapshot_seq = -1;
    ss.queue_built = 1;
    ss.sent_upto = 99; /* rows 1..99 sent, 100 not yet */
    for (i = 1; i <= 100 && rv == APR_SUCCESS; ++i) {
        memds_qitem_t q;
        memset(&q, 0, sizeof(q));
        q.store = "acked";
        q.n = i;
        q.op = MEMDS_Q_ADD;
        q.guid = apr_psprintf(c->p, "k%d", i);
        rv = memds_store_queue_add(a, spk, &q);
    }
    ok(c,
       rv == APR_SUCCESS && memds_store_sstore_save(a, spk, &ss) == APR_SUCCESS,
       "acked: 100 rows queued, 99 sent");
    statuses(c, 1, 20, 201, refs, luids, codes, 0);
    statuses(c, 21, 20, 200, refs, luids, codes, 20);
    rv = memds_store_queue_status_many(a, spk, refs, luids, codes, 40);
    ok(c, rv == APR_SUCCESS && acked_upto(c, pk) == 40 && own_statuses(c, pk) == 0,
       "40 statuses 201/200 in order: acked_upto 40, no row written (%ld, %ld)",
       acked_upto(c, pk), own_statuses(c, pk));
    memds_store_queue_count_failed(a, &failed, spk, "acked");
    ok(c, failed == 60, "count_failed: the 60 rows above it (%d)", failed);
    statuses(c, 42, 40, 201, refs, luids, codes, 0);
    rv = memds_store_queue_status_many(a, spk, refs, luids, codes, 40);
    ok(c, rv == APR_SUCCESS && acked_upto(c, pk) == 40 && own_statuses(c, pk) == 40,
       "rows 42-81 answered before row 41: statuses of their own, the "
       "position stays (%ld, %ld)",
       acked_upto(c, pk), own_statuses(c, pk));
    /* row 41 418, row 82 by temporary id 500, 83-99 201, and 13 rows
     * already passed (outside the window) 200 */
    statuses(c, 41, 1, 418, refs, luids, codes, 0);
    refs[1] = "#82";
    luids[1] = NULL;
    codes[1] = 500;
    statuses(c, 83, 17, 201, refs, luids, codes, 2);
    statuses(c, 1, 13, 200, refs, luids, codes, 19);
    rv = memds_store_queue_status_many(a, spk, refs, luids, codes, 32);
    ok(c,
       rv == APR_SUCCESS && acked_upto(c, pk) == 99 && own_statuses(c, pk) == 55,
       "418 and 500 on their rows, the position passes them to 99, the "
       "statuses outside the window on their rows (%ld, %ld)",
       acked_upto(c, pk), own_statuses(c, pk));
    memds_store_queue_count_failed(a, &failed, spk, "acked");
    ok(c, failed == 2, "count_failed: row 82 (500) and row 100 (unsent) (%d)",
       failed);
    statuses(c, 1, 1, 500, refs, luids, codes, 0);
    rv = memds_store_queue_status_many(a, spk, refs, luids, codes, 1);
    memds_store_queue_count_failed(a, &failed, spk, "acked");
    ok(c, rv == APR_SUCCESS && failed == 3,
       "a few statuses go on their rows, also below the position (%d)",
       failed);
    ss.sent_upto = 0; /* (a save never leaves the position above sent_upto) */
    rv = memds_store_sstore_save(a, spk, &ss);
    ok(c, rv == APR_SUCCESS && acked_upto(c, pk) == 0,
       "sstore_save with sent_upto 0: acked_upto 0");
    ss.sent_upto = 99;
    memds_store_sstore_save(a, spk, &ss);
    raw_exec2(a,
              "UPDATE memds.session_stores SET acked_upto = 99"
              " WHERE session_pk = $1::bigint AND store = 'acked'",
              pk, NULL);
    ok(c, acked_upto(c, pk) == 99, "sstore_save keeps acked_upto");

    /* resume: only what is above the position and has no status goes */
    new_session_row(&s2, c, apr_psprintf(c->p, "tok2-%s", c->acct), "77");
    rv = memds_store_session_save(a, &s2, 3600);
    rv = rv == APR_SUCCESS ? memds_store_resume_copy(a, s2.session_pk, spk,
                                                     "acked")
                           : rv;
    {
        const char *pk2 = apr_psprintf(c->p, "%" APR_INT64_T_FMT,
                                       s2.session_pk);
        ok(c,
           rv == APR_SUCCESS
               && raw_count(a,
                            "SELECT count(*) FROM memds.session_queue"
                            " WHERE session_pk = $1::bigint"
                            " AND store = 'acked' AND n = 100",
                            pk2)
                      == 1
               && raw_count(a,
                            "SELECT count(*) FROM memds.session_queue"
                            " WHERE session_pk = $1::bigint"
                            " AND store = 'acked'",
                            pk2)
                      == 1,
           "resume_copy: only row 100, not the rows the device took");
    }
}

/* A queue of QUEUE_ANALYZE_ROWS (2000) rows or more gets its statistics at
 * once (memds_store_queue_add_many); another ANALYZE holding the table's
 * lock only makes it skip that. */
static void check_queue_analyze(ctx_t *c, apr_int64_t spk)
{
    memds_store_t *a = &c->a, *b = &c->b;
    const char *pk = apr_psprintf(c->p, "%" APR_INT64_T_FMT, spk);
    static const char *const known =
        "SELECT count(*) FROM pg_stats WHERE schemaname = 'memds'"
        " AND tablename = 'session_queue' AND attname = 'session_pk'"
        " AND $1::bigint = ANY (most_common_vals::text::bigint[])";
    apr_array_header_t *q1 = apr_array_make(c->p, 2000,
                                            sizeof(memds_qitem_t *));
    apr_array_header_t *q2 = apr_array_make(c->p, 2000,
                                            sizeof(memds_qitem_t *));
    apr_status_t rv;
    int i;

    for (i = 1; i <= 2000; ++i) {
        memds_qitem_t *q = apr_pcalloc(c->p, sizeof(*q));
        q->store = "bulk";
        q->n = i;
        q->op = MEMDS_Q_ADD;
        q->guid = apr_psprintf(c->p, "b%d", i);
        APR_ARRAY_PUSH(q1, memds_qitem_t *) = q;
        q = apr_pmemdup(c->p, q, sizeof(*q));
        q->store = "bulk2";
        APR_ARRAY_PUSH(q2, memds_qitem_t *) = q;
    }
    ok(c, raw_count(a, known, pk) == 0,
       "a new session is unknown to session_queue's statistics");
    ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "begin on b");
    raw_exec(b, "LOCK TABLE memds.session_queue IN SHARE UPDATE EXCLUSIVE"
                " MODE");
    rv = memds_store_queue_add_many(a, spk, q1);
    ok_rv(c, a, rv, APR_SUCCESS,
          "queue_add_many of 2000 while b holds the table's ANALYZE lock");
    ok(c,
       raw_count(a,
                 "SELECT count(*) FROM memds.session_queue"
                 " WHERE session_pk = $1::bigint AND store = 'bulk'",
                 pk)
               == 2000
           && PQtransactionStatus(memds_pgconn_native(a->conn))
                  == PQTRANS_INTRANS
           && raw_count(a, known, pk) == 0,
       "the rows are queued, the transaction goes on, the ANALYZE skipped");
    memds_store_rollback(b);
    raw_exec(a, "SET LOCAL lock_timeout = '1234ms'");
    rv = memds_store_queue_add_many(a, spk, q2);
    ok_rv(c, a, rv, APR_SUCCESS, "queue_add_many of 2000 more");
    ok(c, raw_count(a, known, pk) == 1,
       "session_queue's statistics now know the session (ANALYZE)");
    ok(c,
       raw_count(a,
                 "SELECT count(*) WHERE current_setting('lock_timeout') = $1",
                 "1234ms")
           == 1,
       "the transaction's own lock_timeout is kept");
    raw_exec(a, "SET LOCAL lock_timeout TO DEFAULT");
}

static void check_partial(ctx_t *c, apr_int64_t spk)
{
    memds_store_t *a = &c->a;
    memds_partial_t pt, g;
    static const char c1[] = "BEGIN:VCARD\r\n\0";
    static const char c2[] = "\xff\xfe\x00\x01";
    static const char c3[] = "END:VCARD\r\n";
    char all[64];
    apr_size_t alen = 0;
    apr_status_t rv;

    rv = memds_store_partial_get(a, &g, spk, "contacts");
    ok_rv(c, a, rv, APR_ENOENT, "partial_get before any chunk: ENOENT");
    memset(&pt, 0, sizeof(pt));
    pt.store = "contacts";
    pt.cmd = "Add";
    pt.luid = "L77";
    pt.content_type = "text/x-vcard";
    pt.total_size = (apr_int64_t)(sizeof(c1) - 1 + sizeof(c2) - 1 + sizeof(c3)
                                  - 1);
    rv = memds_store_partial_append(a, spk, &pt, c1, sizeof(c1) - 1);
    memcpy(all + alen, c1, sizeof(c1) - 1);
    alen += sizeof(c1) - 1;
    if (rv == APR_SUCCESS) {
        pt.total_size = 0; /* later chunks need not repeat the size */
        rv = memds_store_partial_append(a, spk, &pt, c2, sizeof(c2) - 1);
        memcpy(all + alen, c2, sizeof(c2) - 1);
        alen += sizeof(c2) - 1;
    }
    if (rv == APR_SUCCESS) {
        rv = memds_store_partial_append(a, spk, &pt, c3, sizeof(c3) - 1);
        memcpy(all + alen, c3, sizeof(c3) - 1);
        alen += sizeof(c3) - 1;
    }
    ok_rv(c, a, rv, APR_SUCCESS, "partial_append x3");
    rv = memds_store_partial_get(a, &g, spk, "contacts");
    ok(c,
       rv == APR_SUCCESS && bytes_eq(g.data, g.len, all, alen)
           && streq(g.store, "contacts") && streq(g.cmd, "Add")
           && streq(g.luid, "L77") && streq(g.content_type, "text/x-vcard")
           && g.total_size == (apr_int64_t)alen,
       "partial_get: the chunks concatenated byte for byte, first chunk's "
       "meta");
    rv = memds_store_partial_drop(a, spk, "contacts");
    ok_rv(c, a, rv, APR_SUCCESS, "partial_drop");
    rv = memds_store_partial_get(a, &g, spk, "contacts");
    ok_rv(c, a, rv, APR_ENOENT, "partial_get after drop: ENOENT");
}

static void check_syncstate(ctx_t *c)
{
    memds_store_t *a = &c->a;
    memds_syncstate_t s, g;
    apr_status_t rv;

    rv = memds_store_syncstate_get(a, &g, c->dev, "contacts");
    ok_rv(c, a, rv, APR_ENOENT, "syncstate_get before a sync: ENOENT");
    memset(&s, 0, sizeof(s));
    s.client_uri = "./Contacts";
    s.last_client_anchor = "20240101T000000Z";
    s.last_server_anchor = "1";
    s.last_seq = 41;
    rv = memds_store_syncstate_put(a, c->dev, "contacts", &s);
    ok_rv(c, a, rv, APR_SUCCESS, "syncstate_put (insert)");
    rv = memds_store_syncstate_get(a, &g, c->dev, "contacts");
    ok(c,
       rv == APR_SUCCESS && streq(g.client_uri, "./Contacts")
           && streq(g.last_client_anchor, "20240101T000000Z")
           && streq(g.last_server_anchor, "1") && g.last_seq == 41
           && g.filter == NULL,
       "syncstate read back (no filter: NULL)");
    s.last_server_anchor = "2";
    s.last_seq = 42;
    s.filter = "i=0;c=5;";
    rv = memds_store_syncstate_put(a, c->dev, "contacts", &s);
    memds_store_syncstate_get(a, &g, c->dev, "contacts");
    ok(c,
       rv == APR_SUCCESS && streq(g.last_server_anchor, "2") && g.last_seq == 42
           && streq(g.filter, "i=0;c=5;"),
       "syncstate_put (update, with the filter)");
    rv = memds_store_syncstate_get(a, &g, c->dev2, "contacts");
    ok_rv(c, a, rv, APR_ENOENT, "another device has no syncstate");
}

static void check_maps(ctx_t *c)
{
    memds_store_t *a = &c->a;
    const char *v = NULL;
    apr_status_t rv;
    apr_int64_t d = c->dev;

    rv = memds_store_map_put(a, d, "contacts", "g1", "l1");
    ok_rv(c, a, rv, APR_SUCCESS, "map_put g1<->l1");
    rv = memds_store_map_guid(a, &v, d, "contacts", "l1");
    ok(c, rv == APR_SUCCESS && streq(v, "g1"), "map_guid(l1) = g1");
    rv = memds_store_map_luid(a, &v, d, "contacts", "g1");
    ok(c, rv == APR_SUCCESS && streq(v, "l1"), "map_luid(g1) = l1");
    ok(c,
       memds_store_map_guid(a, &v, d, "notes", "l1") == APR_ENOENT
           && memds_store_map_guid(a, &v, c->dev2, "contacts", "l1")
                  == APR_ENOENT,
       "maps are per store and per device");

    rv = memds_store_map_put(a, d, "contacts", "g1", "l2");
    ok(c,
       rv == APR_SUCCESS
           && memds_store_map_guid(a, &v, d, "contacts", "l1") == APR_ENOENT
           && memds_store_map_luid(a, &v, d, "contacts", "g1") == APR_SUCCESS
           && streq(v, "l2"),
       "map_put g1<->l2 replaces the map of g1");
    rv = memds_store_map_put(a, d, "contacts", "g2", "l2");
    ok(c,
       rv == APR_SUCCESS
           && memds_store_map_luid(a, &v, d, "contacts", "g1") == APR_ENOENT
           && memds_store_map_guid(a, &v, d, "contacts", "l2") == APR_SUCCESS
           && streq(v, "g2"),
       "map_put g2<->l2 replaces the map of l2");
    memds_store_map_put(a, d, "contacts", "g3", "l3");
    memds_store_map_put(a, d, "contacts", "g4", "l4");
    rv = memds_store_map_put(a, d, "contacts", "g3", "l4");
    ok(c,
       rv == APR_SUCCESS
           && memds_store_map_luid(a, &v, d, "contacts", "g4") == APR_ENOENT
           && memds_store_map_guid(a, &v, d, "contacts", "l3") == APR_ENOENT
           && memds_store_map_guid(a, &v, d, "contacts", "l4") == APR_SUCCESS
           && streq(v, "g3"),
       "map_put g3<->l4 replaces both g3<->l3 and g4<->l4");
    rv = memds_store_map_del(a, d, "contacts", "g2");
    ok(c,
       rv == APR_SUCCESS
           && memds_store_map_guid(a, &v, d, "contacts", "l2") == APR_ENOENT,
       "map_del");
    memds_store_map_put(a, d, "notes", "n1", "nl1");
    rv = memds_store_map_clear(a, d, "contacts");
    ok(c,
       rv == APR_SUCCESS
           && memds_store_map_luid(a, &v, d, "contacts", "g3") == APR_ENOENT
           && memds_store_map_luid(a, &v, d, "notes", "n1") == APR_SUCCESS,
       "map_clear forgets one store only");
}

/* memds_store_map_put_many: new pairs go in by the unique indexes alone,
 * pairs that meet a map replace it, the last pair of a batch wins. */
static int map_is(ctx_t *c, const char *store, const char *g, const char *l)
{
    const char *v = NULL;

    return memds_store_map_luid(&c->a, &v, c->dev, store, g) == APR_SUCCESS
           && streq(v, l);
}

static int unmapped(ctx_t *c, const char *store, const char *g,
                    const char *l)
{
    const char *v = NULL;

    return (g == NULL
            || memds_store_map_luid(&c->a, &v, c->dev, store, g) == APR_ENOENT)
           && (l == NULL
               || memds_store_map_guid(&c->a, &v, c->dev, store, l)
                      == APR_ENOENT);
}

static void check_maps_many(ctx_t *c)
{
    memds_store_t *a = &c->a;
    const char *st = "mapsmany";
    const char *g1[] = { "a1", "a2", "a3" }, *l1[] = { "x1", "x2", "x3" };
    const char *g2[] = { "a4", "a1", "a5" }, *l2[] = { "x4", "y1", "x2" };
    const char *g3[] = { "a6", "a7" }, *l3[] = { "x6", "x6" };
    apr_status_t rv;

    rv = memds_store_map_put_many(a, c->dev, st, g1, l1, 3);
    ok(c,
       rv == APR_SUCCESS && map_is(c, st, "a1", "x1") && map_is(c, st, "a2", "x2")
           && map_is(c, st, "a3", "x3"),
       "map_put_many: new pairs");
    /* a4 new; a1 gets another luid; x2 goes to another guid (a5) */
    rv = memds_store_map_put_many(a, c->dev, st, g2, l2, 3);
    ok(c,
       rv == APR_SUCCESS && map_is(c, st, "a4", "x4") && map_is(c, st, "a1", "y1")
           && unmapped(c, st, NULL, "x1") && map_is(c, st, "a5", "x2")
           && unmapped(c, st, "a2", NULL) && map_is(c, st, "a3", "x3"),
       "map_put_many: new pairs with pairs that replace a map of their guid "
       "or their luid");
    /* x6 twice: the last pair wins, a6 keeps no map (not even the one it
     * had: the batch gave it another) */
    rv = memds_store_map_put_many(a, c->dev, st, g3, l3 + 1, 1);
    ok(c, rv == APR_SUCCESS && map_is(c, st, "a6", "x6"), "a6 mapped to x6");
    {
        const char *l6[] = { "x5" };
        rv = memds_store_map_put_many(a, c->dev, st, g3, l6, 1);
        ok(c, rv == APR_SUCCESS && map_is(c, st, "a6", "x5"),
           "a6 mapped to x5 instead");
    }
    rv = memds_store_map_put_many(a, c->dev, st, g3, l3, 2);
    ok(c,
       rv == APR_SUCCESS && map_is(c, st, "a7", "x6")
           && unmapped(c, st, "a6", "x5"),
       "map_put_many: the last pair of a batch wins");
    rv = memds_store_map_put_many(a, c->dev, st, g1, l1, 3);
    ok(c,
       rv == APR_SUCCESS && map_is(c, st, "a1", "x1") && map_is(c, st, "a2", "x2")
           && map_is(c, st, "a3", "x3") && unmapped(c, st, "a5", "y1"),
       "map_put_many: the same pairs again");
    memds_store_map_clear(a, c->dev, st);
}

static int all_digits(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s; ++s) {
        if (*s < '0' || *s > '9') {
            return 0;
        }
    }
    return 1;
}

/* The row of guid in rows, or NULL. */
static const memds_item_row_t *find_row(const apr_array_header_t *rows,
                                        const char *guid)
{
    int i;

    for (i = 0; i < rows->nelts; ++i) {
        const memds_item_row_t *r = APR_ARRAY_IDX(rows, i, memds_item_row_t *);
        if (streq(r->guid, guid)) {
            return r;
        }
    }
    return NULL;
}

static int in_seq_order(const apr_array_header_t *rows)
{
    int i;

    for (i = 1; i < rows->nelts; ++i) {
        if (APR_ARRAY_IDX(rows, i - 1, memds_item_row_t *)->seq
            >= APR_ARRAY_IDX(rows, i, memds_item_row_t *)->seq) {
            return 0;
        }
    }
    return 1;
}

static void check_items(ctx_t *c)
{
    memds_store_t *a = &c->a, *b = &c->b;
    static const char bin[] = "\0\xff\x01\x80item\0\xff";
    const apr_size_t binlen = sizeof(bin) - 1;
    apr_size_t biglen = 200 * 1024, i;
    char *big = apr_palloc(c->p, biglen);
    const char *g1 = NULL, *g2 = NULL, *g3 = NULL, *gb = NULL, *m = NULL;
    memds_item_row_t r;
    apr_array_header_t *rows;
    apr_int64_t s0 = -1, s1 = -1, s2 = -1, s3 = -1;
    const char *acct = c->acct, *acct2 = c->acct2;
    apr_status_t rv;

    for (i = 0; i < biglen; ++i) {
        big[i] = (char)((i * 7919u + (i >> 8)) & 0xff);
    }
    rv = memds_store_items_seq(a, &s0);
    ok(c, rv == APR_SUCCESS && s0 >= 0, "items_seq = %" APR_INT64_T_FMT, s0);

    rv = memds_store_items_add(a, &g1, acct, "notes",
                               "application/octet-stream", bin, binlen, c->dev);
    ok(c, rv == APR_SUCCESS && all_digits(g1) && strlen(g1) <= 19,
       "items_add: GUID is short decimal text (%s)", g1 ? g1 : "-");
    rv = memds_store_items_get(a, &r, acct, "notes", g1);
    ok(c,
       rv == APR_SUCCESS && bytes_eq(r.data, r.len, bin, binlen)
           && streq(r.content_type, "application/octet-stream") && !r.deleted
           && r.changed_by == c->dev && r.seq == apr_atoi64(g1) && r.seq > s0,
       "items_get: bytes with NUL and 0xff exact, seq = GUID");
    rv = memds_store_items_add(a, &gb, acct, "notes", NULL, big, biglen, 0);
    ok_rv(c, a, rv, APR_SUCCESS, "items_add of a 200 KB item");
    rv = memds_store_items_get(a, &r, acct, "notes", gb);
    ok(c,
       rv == APR_SUCCESS && bytes_eq(r.data, r.len, big, biglen)
           && r.content_type == NULL && r.changed_by == 0,
       "the 200 KB item reads back byte for byte");
    rv = memds_store_items_add(a, &g2, acct, "notes", "text/plain", "two", 3,
                               c->dev2);
    ok_rv(c, a, rv, APR_SUCCESS, "items_add a third item");
    rv = memds_store_items_add(a, &g3, acct2, "notes", "text/plain", "two", 3,
                               0);
    ok_rv(c, a, rv, APR_SUCCESS, "items_add in another account");
    ok(c,
       g1 && gb && g2 && strcmp(g1, gb) != 0 && strcmp(gb, g2) != 0
           && strcmp(g2, g3 ? g3 : "") != 0,
       "GUIDs are distinct");

    /* Other transactions may be writing items meanwhile (a shared
     * database): items_seq may then stay below this run's changes, so the
     * items_changed checks use this run's own seq values as bounds. */
    rv = memds_store_items_seq(a, &s1);
    ok(c, rv == APR_SUCCESS && s1 >= s0, "items_seq does not go back");
    s1 = apr_atoi64(g3 ? g3 : "0"); /* the newest change so far */
    rv = memds_store_items_changed(a, &rows, acct, "notes", -1, s1);
    ok(c,
       rv == APR_SUCCESS && rows->nelts == 3 && find_row(rows, g1)
           && find_row(rows, gb) && find_row(rows, g2) && in_seq_order(rows),
       "items_changed(-1, now): every live item of the account, in seq order");
    if (rv == APR_SUCCESS && find_row(rows, gb)) {
        const memds_item_row_t *x = find_row(rows, gb);
        ok(c, x->data == NULL && x->len == biglen && !x->deleted,
           "items_changed rows carry no data but the size");
    }
    rv = memds_store_items_changed(a, &rows, acct, "notes", -1, apr_atoi64(gb));
    ok(c, rv == APR_SUCCESS && rows->nelts == 2 && !find_row(rows, g2),
       "items_changed(-1, upto) stops at upto");

    rv = memds_store_items_replace(a, acct, "notes", g1, "text/plain",
                                   "new\0bytes", 9, c->dev2);
    ok_rv(c, a, rv, APR_SUCCESS, "items_replace");
    rv = memds_store_items_get(a, &r, acct, "notes", g1);
    ok(c,
       rv == APR_SUCCESS && bytes_eq(r.data, r.len, "new\0bytes", 9)
           && streq(r.content_type, "text/plain") && r.changed_by == c->dev2
           && r.seq > s1 && streq(r.guid, g1),
       "replaced bytes, type, changed_by; new seq, same GUID");
    rv = memds_store_items_replace(a, acct, "notes", "999999999999", "x", "x",
                                   1, 0);
    ok_rv(c, a, rv, APR_ENOENT, "items_replace of an unknown GUID: ENOENT");
    rv = memds_store_items_delete(a, acct, "notes", g2, c->dev);
    ok_rv(c, a, rv, APR_SUCCESS, "items_delete");
    rv = memds_store_items_delete(a, acct, "notes", g2, c->dev);
    ok_rv(c, a, rv, APR_ENOENT, "items_delete of a tombstone: ENOENT");
    rv = memds_store_items_delete(a, acct, "notes", "nope", c->dev);
    ok_rv(c, a, rv, APR_ENOENT, "items_delete of an unknown GUID: ENOENT");
    rv = memds_store_items_get(a, &r, acct, "notes", "nope");
    ok_rv(c, a, rv, APR_ENOENT, "items_get of an unknown GUID: ENOENT");
    rv = memds_store_items_get(a, &r, acct, "notes", g2);
    ok(c,
       rv == APR_SUCCESS && r.deleted && r.changed_by == c->dev && r.seq > s1,
       "items_get returns the tombstone, with a new seq");

    s2 = r.seq; /* the tombstone: the newest change so far */
    rv = memds_store_items_changed(a, &rows, acct, "notes", s1, s2);
    ok(c,
       rv == APR_SUCCESS && rows->nelts == 2 && in_seq_order(rows)
           && streq(APR_ARRAY_IDX(rows, 0, memds_item_row_t *)->guid, g1)
           && streq(APR_ARRAY_IDX(rows, 1, memds_item_row_t *)->guid, g2)
           && APR_ARRAY_IDX(rows, 1, memds_item_row_t *)->deleted,
       "items_changed(since, upto): the replace, then the tombstone");
    rv = memds_store_items_changed(a, &rows, acct, "notes", -1, s2);
    ok(c, rv == APR_SUCCESS && rows->nelts == 2 && !find_row(rows, g2),
       "items_changed(-1, ...) leaves tombstones out");
    rv = memds_store_items_changed(a, &rows, acct, "notes", s2, s2);
    ok(c, rv == APR_SUCCESS && rows->nelts == 0,
       "no changes after the snapshot");

    /* slow-sync matching */
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev, big, biglen);
    ok(c, rv == APR_SUCCESS && streq(m, gb),
       "items_match finds the 200 KB item");
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev, big, biglen - 1);
    ok_rv(c, a, rv, APR_ENOENT, "items_match: one byte less does not match");
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev, "two", 3);
    ok_rv(c, a, rv, APR_ENOENT,
          "items_match skips tombstones (and other accounts)");
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev, "new\0bytes", 9);
    ok(c, rv == APR_SUCCESS && streq(m, g1), "items_match with a NUL byte");
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev, "new", 3);
    ok_rv(c, a, rv, APR_ENOENT, "items_match does not stop at the NUL");
    memds_store_map_put(a, c->dev, "notes", gb, "LB");
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev, big, biglen);
    ok_rv(c, a, rv, APR_ENOENT,
          "items_match skips items mapped for the device");
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev2, big, biglen);
    ok(c, rv == APR_SUCCESS && streq(m, gb), "... but not for another device");
    /* Tamper with the stored hash: same hash, other bytes must not match. */
    raw_exec2(a,
              "UPDATE memds.items SET sha1 = (SELECT sha1 FROM memds.items"
              " WHERE account = $1 AND store = 'notes' AND guid = $2)"
              " WHERE account = $1 AND store = 'notes' AND guid <> $2"
              " AND NOT deleted",
              acct, g1);
    rv = memds_store_items_match(a, &m, acct, "notes", c->dev2, "new\0bytes",
                                 9);
    ok(c, rv == APR_SUCCESS && streq(m, g1),
       "items_match compares bytes, not only the hash");
    rv = memds_store_items_replace(a, acct, "notes", g2, "text/plain", "back",
                                   4, 0);
    memds_store_items_get(a, &r, acct, "notes", g2);
    ok(c,
       rv == APR_SUCCESS && !r.deleted && bytes_eq(r.data, r.len, "back", 4)
           && r.changed_by == 0,
       "items_replace revives a tombstone");
    rv = memds_store_items_add(a, &m, acct, "notes", NULL, NULL, 0, 0);
    memds_store_items_get(a, &r, acct, "notes", m);
    ok(c, rv == APR_SUCCESS && r.len == 0 && r.data != NULL,
       "an empty item is stored as empty bytes");

    /* Another transaction's uncommitted change: items_seq must stop below
     * it, or a device would remember a snapshot that skips it. */
    ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "begin on b");
    rv = memds_store_items_add(b, &m, acct2, "notes", NULL, "b", 1, 0);
    ok_rv(c, b, rv, APR_SUCCESS, "b adds an item (not committed)");
    rv = memds_store_items_add(a, &g3, acct, "notes", NULL, "a", 1, 0);
    ok_rv(c, a, rv, APR_SUCCESS, "a adds an item after it");
    memds_store_items_seq(a, &s0);
    rv = memds_store_items_seq(a, &s3);
    ok(c, rv == APR_SUCCESS && m && s3 < apr_atoi64(m),
       "items_seq on a (%" APR_INT64_T_FMT ") stays below b's open change (%s)",
       s3, m ? m : "-");
    /* a's oldest open change is its first one (g1): b stops below it, even
     * below b's own change. */
    rv = memds_store_items_seq(b, &s3);
    ok(c, rv == APR_SUCCESS && g1 && s3 < apr_atoi64(g1),
       "items_seq on b (%" APR_INT64_T_FMT ") stays below a's oldest open "
       "change (%s)",
       s3, g1 ? g1 : "-");
    memds_store_rollback(b);
    rv = memds_store_items_seq(a, &s3);
    ok(c, rv == APR_SUCCESS && s3 >= s0,
       "after b's rollback items_seq on a (%" APR_INT64_T_FMT ") does not go "
       "back (alone in the database, it covers a's change %s)",
       s3, g3 ? g3 : "-");
}

/* memds.item_seq_visible() on st's connection, and the proven value
 * (memds.item_seq_proven) it left. */
static apr_int64_t seq_visible(memds_store_t *st, apr_int64_t *pproven)
{
    apr_int64_t v = raw_i64(st, "SELECT memds.item_seq_visible()");

    *pproven = raw_i64(st, "SELECT last_value FROM memds.item_seq_proven");
    return v;
}

/* The first change value st's transaction holds open (item_seq_take). */
static apr_int64_t seq_first(memds_store_t *st)
{
    return raw_i64(st,
                   "SELECT current_setting('memds.item_seq_first')::bigint");
}

/* memds.item_seq_visible() asks only about the values above the one already
 * proven (memds.item_seq_proven, schema/026): a's transaction holds its
 * first change value open (check_items), b's takes one after it. Whatever
 * path the answer takes (the values asked one by one, or pg_locks after a
 * batch of more than 128), it stops below the other transaction's first
 * value, and the proven value stays below every open transaction's first
 * value, the caller's own included, though the caller's own count as
 * visible to it. */
static void check_seq_proven(ctx_t *c)
{
    apr_int64_t fa, fb, v, pv;
    const char *g = NULL;

    fa = seq_first(&c->a);
    ok(c, fa > 0,
       "a's transaction has a first change value open (%" APR_INT64_T_FMT ")",
       fa);
    v = seq_visible(&c->a, &pv);
    ok(c, v >= fa && pv >= 0 && pv < fa,
       "on a: its own values visible (%" APR_INT64_T_FMT "), the proven value"
       " (%" APR_INT64_T_FMT ") below them", v, pv);
    ok_rv(c, &c->b, memds_store_begin(&c->b), APR_SUCCESS, "begin on b");
    v = seq_visible(&c->b, &pv);
    ok(c, v >= 0 && v < fa && pv < fa,
       "on b: visible %" APR_INT64_T_FMT ", proven %" APR_INT64_T_FMT
       ", both below a's open value (asked one by one)", v, pv);
    /* 200 more values in a's transaction, then b's first: from a, more
     * than 128 values in a row that no other transaction holds before b's,
     * so the rest of the answer comes from pg_locks */
    raw_i64(&c->a, "SELECT max(nextval('memds.item_seq'))"
                   " FROM generate_series(1, 200)");
    ok_rv(c, &c->b,
          memds_store_items_add(&c->b, &g, c->acct2, "notes", NULL, "p", 1, 0),
          APR_SUCCESS, "b adds an item (not committed)");
    fb = seq_first(&c->b);
    v = seq_visible(&c->a, &pv);
    ok(c, fb > fa + 200 && v >= fa + 200 && v < fb && pv < fa,
       "on a: visible %" APR_INT64_T_FMT " stops below b's open value %"
       APR_INT64_T_FMT " (pg_locks), proven %" APR_INT64_T_FMT " below a's",
       v, fb, pv);
    v = seq_visible(&c->b, &pv);
    ok(c, v >= 0 && v < fa && pv < fa,
       "on b: visible %" APR_INT64_T_FMT ", proven %" APR_INT64_T_FMT
       " still below a's open value", v, pv);
    /* a proven value above the sequence (memds.item_seq set back by hand)
     * is not believed: pg_locks answers and the proof starts again */
    raw_i64(&c->b, "SELECT setval('memds.item_seq_proven',"
                   " (SELECT last_value + 1000 FROM memds.item_seq))");
    v = seq_visible(&c->b, &pv);
    ok(c, v >= 0 && v < fa && pv < fa,
       "a proof above the sequence: on b visible %" APR_INT64_T_FMT
       ", proven reset to %" APR_INT64_T_FMT ", below a's open value", v, pv);
    ok(c,
       raw_i64(&c->b, "SELECT count(*) FROM pg_locks WHERE locktype ="
                      " 'advisory' AND pid = pg_backend_pid()"
                      " AND mode = 'ShareLock'") == 0,
       "no probe lock left held");
    memds_store_rollback(&c->b);
}

/* What bench/load found (issue 14): a scan that inserts a UID another
 * recorded first, a scan's write of a row a device's request holds, the
 * md5 row every basic login locked, and a sent item's Delete left out of
 * its session by another transaction's open seq. Rows are committed under
 * the run's account (two connections must see them), removed at the end. */
static void check_mail_races(ctx_t *c)
{
    memds_store_t *a = &c->a, *b = &c->b;
    memds_mmsg_t r[4];
    memds_mmsg_t *rows[4];
    const char *g = NULL;
    apr_int64_t v = 0, s = 0, t;
    int i, skipped = -1;
    apr_int64_t one[1] = { 1 }, two[2] = { 1, 2 };
    int fl[2] = { 2, 2 };
    apr_time_t t0;

    memds_store_rollback(a);
    memset(r, 0, sizeof(r));
    for (i = 0; i < 4; ++i) {
        r[i].uid = i < 3 ? i + 1 : 3; /* 1, 2, 3, 3 */
        r[i].size = 100;
        r[i].message_id = "<race@example.test>";
        rows[i] = &r[i];
    }
    memds_store_begin(a);
    ok_rv(c, a, memds_mail_insert_many(a, c->acct, "INBOX", rows, 2, 0),
          APR_SUCCESS, "mail_insert_many: UIDs 1, 2");
    ok_rv(c, a, memds_mail_insert_many(a, c->acct, "INBOX", rows + 1, 3, 0),
          APR_SUCCESS,
          "mail_insert_many: UIDs 2, 3, 3 (2 recorded by another scan): no "
          "duplicate key");
    ok(c,
       raw_count(a,
                 "SELECT count(*) FROM memds.mail_messages WHERE account = $1"
                 " AND NOT deleted",
                 c->acct)
           == 3,
       "three live rows, one per UID");
    ok_rv(c, a, memds_mail_add(a, &g, c->acct, "INBOX", &r[2], c->dev),
          APR_SUCCESS, "mail_add of a UID a scan recorded first: no error");
    ok(c,
       g
           && raw_count(a,
                        "SELECT count(*) FROM memds.mail_messages WHERE"
                        " account = $1 AND NOT deleted AND uid = 3"
                        " AND changed_by IS NOT NULL",
                        c->acct)
                  == 1,
       "mail_add: the scan's row, now the device's change");
    {
        /* the read-ahead of mails going down: rows, levels, Sent checks */
        const char *gs[2], *lv = "t20480";
        apr_int64_t sb = 20480;
        apr_array_header_t *prow = NULL, *plev = NULL, *psent = NULL;
        apr_status_t rv;
        memds_device_t pd;
        memset(&pd, 0, sizeof(pd));
        ok_rv(c, a, memds_store_device_lock(a, &pd, c->acct, "IMEI:pre"),
              APR_SUCCESS, "a device for mail_pre_many");
        gs[0] = g;
        gs[1] = "no-such-guid";
        ok_rv(c, a,
              memds_mail_level_put_many(a, pd.device_id, "INBOX", gs, &lv, &sb, 1),
              APR_SUCCESS, "mail_level_put_many (sent later)");
        rv = memds_mail_pre_many(a, &prow, &plev, &psent, c->acct, "INBOX",
                                 pd.device_id, "INBOX", gs, 2);
        ok(c, rv == APR_SUCCESS && prow->nelts == 1
                  && strcmp(APR_ARRAY_IDX(prow, 0, memds_mmsg_t *)->guid, g)
                         == 0
                  && plev->nelts == 1
                  && strcmp(APR_ARRAY_IDX(plev, 0, memds_mlevel_t).level,
                            "t20480") == 0
                  && psent->nelts == 0,
           "mail_pre_many: the row and level of one, nothing for the other"
           " (%s)", a->err ? a->err : "-");
        rv = memds_mail_pre_many(a, &prow, &plev, NULL, c->acct, "INBOX",
                                 pd.device_id, "INBOX", gs, 2);
        ok(c, rv == APR_SUCCESS && prow->nelts == 1 && plev->nelts == 1,
           "mail_pre_many without the Sent check");
        raw_exec2(a,
                  "DELETE FROM memds.devices WHERE account = $1"
                  " AND devid = $2",
                  c->acct, "IMEI:pre");
    }
    ok_rv(c, a, memds_store_commit(a), APR_SUCCESS, "commit the rows");

    /* a holds row 1 (a device's flag change, not committed) */
    memds_store_begin(a);
    memds_store_begin(b);
    ok_rv(c, a, memds_mail_flags_many(a, c->acct, "INBOX", one, fl, 1, 0, -1, NULL),
          APR_SUCCESS, "a changes the flags of UID 1");
    memds_mail_lock_timeout(b, 3000);
    t0 = apr_time_now();
    ok_rv(c, b,
          memds_mail_flags_many(b, c->acct, "INBOX", two, fl, 2, 0, -1,
                                &skipped),
          APR_SUCCESS, "a scan's flags of UIDs 1, 2 do not wait for a's row");
    ok(c, skipped == 1 && apr_time_now() - t0 < apr_time_from_sec(2),
       "... UID 1 skipped and counted (%d)", skipped);
    skipped = -1;
    ok_rv(c, b, memds_mail_gone_many(b, c->acct, "INBOX", one, 1, 0, &skipped),
          APR_SUCCESS, "a scan's expunge of UID 1 does not wait either");
    ok(c, skipped == 1, "... skipped and counted (%d)", skipped);
    memds_store_rollback(b);
    memds_store_rollback(a);

    /* A scan read its flags from IMAP (after its fence); then a device's
     * flag change reached IMAP and committed its row: the scan's older
     * flags must not undo it. */
    {
        apr_int64_t fence = -1;
        int seen[1] = { 1 }, unseen[1] = { 0 }, both[2] = { 0, 8 };

        memds_store_begin(b);
        ok_rv(c, b, memds_mail_seq_fence(b, &fence), APR_SUCCESS,
              "mail_seq_fence");
        memds_store_begin(a);
        ok_rv(c, a,
              memds_mail_flags_many(a, c->acct, "INBOX", one, seen, 1, c->dev,
                                    -1, NULL),
              APR_SUCCESS, "a device sets UID 1's flags after the fence");
        ok_rv(c, a, memds_store_commit(a), APR_SUCCESS, "... and commits");
        skipped = -1;
        ok(c, fence > 0, "... a seq already taken (%" APR_INT64_T_FMT ")",
           fence);
        ok_rv(c, b,
              memds_mail_flags_many(b, c->acct, "INBOX", two, both, 2, 0,
                                    fence, &skipped),
              APR_SUCCESS,
              "the scan's older flags of UIDs 1 and 2, with its fence");
        ok(c,
           skipped == 1
               && raw_count(b,
                            "SELECT flags FROM memds.mail_messages WHERE"
                            " account = $1 AND uid = 1 AND NOT deleted",
                            c->acct)
                      == 1,
           "... UID 1's are skipped and counted, the device's flags kept (%d)",
           skipped);
        ok(c,
           raw_count(b,
                     "SELECT flags FROM memds.mail_messages WHERE"
                     " account = $1 AND uid = 2 AND NOT deleted",
                     c->acct)
               == 8,
           "... UID 2's (not changed since the fence) are applied");
        skipped = -1;
        ok_rv(c, b,
              memds_mail_flags_many(b, c->acct, "INBOX", one, unseen, 1, 0, -1,
                                    &skipped),
              APR_SUCCESS, "the same without a fence");
        ok(c,
           skipped == 0
               && raw_count(b,
                            "SELECT flags FROM memds.mail_messages WHERE"
                            " account = $1 AND uid = 1 AND NOT deleted",
                            c->acct)
                      == 0,
           "... would undo the device's change (%d)", skipped);
        memds_store_rollback(b);
    }

    /* md5: the same credential again writes and locks nothing */
    ok_rv(c, b, memds_store_md5_put(b, c->acct, "aW5uZXI=", "basic-login"),
          APR_SUCCESS, "md5_put (committed)");
    memds_store_begin(a);
    ok_rv(c, a, memds_store_md5_put(a, c->acct, "aW5uZXI=", "basic-login"),
          APR_SUCCESS, "md5_put of the same credential");
    ok(c,
       raw_count(b,
                 "SELECT count(*) FROM (SELECT 1 FROM memds.md5_credentials"
                 " WHERE account = $1 FOR UPDATE NOWAIT) x",
                 c->acct)
           == 1,
       "... leaves the row unlocked for the other logins");
    ok_rv(c, a, memds_store_md5_put(a, c->acct, "b3RoZXI=", "basic-login"),
          APR_SUCCESS, "md5_put of a new credential");
    ok(c,
       raw_count(a, "SELECT count(*) FROM memds.md5_credentials"
                    " WHERE account = $1 AND inner_b64 = 'b3RoZXI='",
                 c->acct)
           == 1,
       "... writes it");
    memds_store_rollback(a);

    /* b holds an open seq below a's tombstone */
    memds_store_begin(b);
    raw_count(b, "SELECT count(*) FROM (SELECT memds.item_seq_take()) x WHERE"
                 " $1::text IS NOT NULL",
              c->acct);
    memds_store_begin(a);
    ok_rv(c, a, memds_mail_tombstone(a, c->acct, "Outbox", "q1"), APR_SUCCESS,
          "a tombstones a sent Outbox item");
    t = raw_count(a,
                  "SELECT seq FROM memds.mail_messages WHERE account = $1"
                  " AND folder = 'Outbox' AND guid = 'q1'",
                  c->acct);
    memds_store_items_seq(a, &v);
    ok_rv(c, a, memds_outbox_seq(a, &s, c->acct, "Outbox"), APR_SUCCESS,
          "outbox_seq");
    ok(c, v < t && s >= t,
       "the Outbox's position takes in its own tombstone (seq %" APR_INT64_T_FMT
       ", visible %" APR_INT64_T_FMT ", outbox %" APR_INT64_T_FMT ")",
       t, v, s);
    ok_rv(c, b, memds_mail_tombstone(b, c->acct, "Outbox", "q2"), APR_SUCCESS,
          "b tombstones another item of the Outbox, not committed");
    memds_store_items_seq(a, &v);
    memds_outbox_seq(a, &s, c->acct, "Outbox");
    ok(c, s == v, "... so the Outbox's position stays below b's seqs");
    memds_store_rollback(b);
    memds_store_rollback(a);

    raw_exec2(a, "DELETE FROM memds.mail_messages WHERE account = $1", c->acct,
              NULL);
    raw_exec2(a, "DELETE FROM memds.mail_folders WHERE account = $1", c->acct,
              NULL);
    raw_exec2(a, "DELETE FROM memds.md5_credentials WHERE account = $1",
              c->acct, NULL);
    memds_store_begin(a);
}

/* Which statements connection a prepared (run after the checks above used
 * it): those planned once (no array parameter), never one with an array
 * parameter or items_match (planned for their values, run unnamed); and
 * PostgreSQL's own rule decides between plans (plan_cache_mode auto). */
/* A statement run with n values in its array parameter: when it worked,
 * how many times its prepared statement on a's connection has run (-1:
 * not prepared); -2 when it failed. */
static int run_array_stmt(ctx_t *c, const char *sql, int n)
{
    memds_store_t *a = &c->a;
    PGresult *res = NULL, *r;
    qargs_t q;
    const char **v = apr_palloc(c->p, sizeof(*v) * (apr_size_t)(n > 0 ? n : 1));
    const char *arr = "{";
    const char *pv[1];
    int i, runs;

    for (i = 0; i < n; ++i) {
        v[i] = apr_psprintf(c->p, "g%d", i);
        arr = apr_pstrcat(c->p, arr, i ? "," : "", v[i], NULL);
    }
    arr = apr_pstrcat(c->p, arr, "}", NULL);
    qa_init(&q, c->p);
    qa_str(&q, arr);
    if (q_run(a, &res, "array_stmt", sql, &q, PGRES_TUPLES_OK) != APR_SUCCESS
        || col_i64(res, 0, 0, -1) != n) {
        PQclear(res);
        return -2;
    }
    PQclear(res);
    pv[0] = sql;
    r = PQexecParams(raw_conn(a), "SELECT coalesce(sum(generic_plans"
                                  " + custom_plans), -1)"
                                  " FROM pg_prepared_statements"
                                  " WHERE statement = $1",
                     1, NULL, pv, NULL, NULL, 0);
    runs = r && PQresultStatus(r) == PGRES_TUPLES_OK
               ? atoi(PQgetvalue(r, 0, 0)) : -2;
    PQclear(r);
    return runs;
}

static void check_prepared(ctx_t *c)
{
    PGconn *pc = raw_conn(&c->a);
    PGresult *r = PQexec(pc, "SELECT count(*) FILTER (WHERE statement LIKE '%i.guid FROM memds.items i%'),"
                             " count(*), current_setting('plan_cache_mode')"
                             " FROM pg_prepared_statements");
    int ok_res = r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    const char *shrt = "SELECT count(*) FROM unnest($1::text[]) /* short */";
    const char *lng = "SELECT count(*) FROM unnest($1::text[]) /* long */";
    int got[4];

    ok(c, ok_res && atoi(PQgetvalue(r, 0, 0)) == 0,
       "items_match not prepared (%s)", ok_res ? PQgetvalue(r, 0, 0) : "?");
    ok(c, ok_res && atoi(PQgetvalue(r, 0, 1)) >= 10,
       "the others prepared (%s)", ok_res ? PQgetvalue(r, 0, 1) : "?");
    ok(c, ok_res && strcmp(PQgetvalue(r, 0, 2), "auto") == 0,
       "plan_cache_mode auto (%s)", ok_res ? PQgetvalue(r, 0, 2) : "?");
    PQclear(r);
    /* arrays: prepared while short, planned for their values when longer
     * (a generic plan made for 3 values must not run with 500) */
    got[0] = run_array_stmt(c, lng, MEMDS_PG_SHORT_ARRAY + 1);
    got[1] = run_array_stmt(c, lng, 500);
    got[2] = run_array_stmt(c, shrt, MEMDS_PG_SHORT_ARRAY);
    got[3] = run_array_stmt(c, shrt, 3);
    ok(c, got[0] == -1 && got[1] == -1,
       "a statement with an array of %d or 500 values is not prepared "
       "(%d %d)", MEMDS_PG_SHORT_ARRAY + 1, got[0], got[1]);
    ok(c, got[2] == 1 && got[3] == 2,
       "the same with %d or 3 values runs prepared (%d %d)",
       MEMDS_PG_SHORT_ARRAY, got[2], got[3]);
    got[0] = run_array_stmt(c, shrt, 500);
    ok(c, got[0] == 2,
       "the prepared one, given 500 values, runs unnamed, planned for them "
       "(%d)", got[0]);
}

/* Statements sent without waiting (q_later) go with the next one waited
 * for, in order, in the same transaction; a failure among them fails that
 * statement, names the one that failed, and leaves the transaction to roll
 * back; the connection comes out of pipeline mode every time. */
static void check_pipeline(ctx_t *c)
{
    memds_store_t *b = &c->b;
    PGconn *pc = memds_pgconn_native(b->conn);
    PGresult *res = NULL;
    qargs_t a;
    apr_status_t rv;
    int i, all = 1, n = MEMDS_PG_PENDING_MAX + 5;
    const char *mark = apr_psprintf(c->p, "v%" APR_TIME_T_FMT, apr_time_now());

    memds_store_rollback(b);
    ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "pipeline: begin on b");
    ok(c, PQpipelineStatus(pc) == PQ_PIPELINE_ON
              && memds_pgconn_pending(b->conn) == 1,
       "pipeline: BEGIN sent, not waited for");
    all = q_later(b, "t_create",
                  "CREATE TEMP TABLE memds_pipe_t (k integer PRIMARY KEY)"
                  " ON COMMIT DROP", NULL) == APR_SUCCESS;
    for (i = 1; i <= n; ++i) {
        qa_init(&a, c->p);
        qa_int(&a, i);
        all &= q_later(b, "t_insert",
                       "INSERT INTO memds_pipe_t VALUES ($1::integer)", &a)
               == APR_SUCCESS;
        all &= memds_pgconn_pending(b->conn) <= MEMDS_PG_PENDING_MAX;
    }
    ok(c, all, "pipeline: %d writes sent, never more than %d unread", n + 1,
       MEMDS_PG_PENDING_MAX);
    rv = q_run(b, &res, "t_count",
               "SELECT count(*), sum(k) FROM memds_pipe_t", NULL,
               PGRES_TUPLES_OK);
    ok(c, rv == APR_SUCCESS && col_i64(res, 0, 0, -1) == n
              && col_i64(res, 0, 1, -1) == (apr_int64_t)n * (n + 1) / 2
              && PQpipelineStatus(pc) == PQ_PIPELINE_OFF
              && memds_pgconn_pending(b->conn) == 0
              && PQtransactionStatus(pc) == PQTRANS_INTRANS,
       "pipeline: the next read sees every write, in order; pipeline off");
    if (rv == APR_SUCCESS) {
        PQclear(res);
    }

    /* a failure among the writes (statements prepared above: nothing is
     * read before t_count2) */
    qa_init(&a, c->p);
    qa_int(&a, 1);
    all = q_later(b, "t_dup", "INSERT INTO memds_pipe_t VALUES ($1::integer)",
                  &a) == APR_SUCCESS;
    qa_init(&a, c->p);
    qa_int(&a, 100000);
    all &= q_later(b, "t_after",
                   "INSERT INTO memds_pipe_t VALUES ($1::integer)", &a)
           == APR_SUCCESS;
    rv = q_run(b, &res, "t_count2", "SELECT count(*) FROM memds_pipe_t", NULL,
               PGRES_TUPLES_OK);
    ok(c, all && rv == APR_EGENERAL && b->err && strstr(b->err, "t_dup")
              && strstr(b->err, "23505")
              && PQpipelineStatus(pc) == PQ_PIPELINE_OFF
              && PQtransactionStatus(pc) == PQTRANS_INERROR,
       "pipeline: a failed write fails the next read, named: %s",
       b->err ? b->err : "(no err)");
    rv = memds_store_commit(b);
    ok(c, rv == APR_EGENERAL && b->err && strstr(b->err, "rolled back"),
       "pipeline: the commit after it reports the rollback");
    memds_store_rollback(b);
    ok(c, PQtransactionStatus(pc) == PQTRANS_IDLE,
       "pipeline: rolled back");

    /* a statement first prepared while writes wait (they are read first),
     * and a commit that carries writes */
    ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "pipeline: begin again");
    all = q_later(b, "t_create2", "CREATE TEMP TABLE memds_pipe_c (v text)",
                  NULL) == APR_SUCCESS;
    qa_init(&a, c->p);
    qa_str(&a, mark);
    all &= q_later(b, "t_new",
                   apr_psprintf(c->p,
                                "INSERT INTO memds_pipe_c VALUES ($1)"
                                " /* %s */", mark),
                   &a) == APR_SUCCESS;
    all &= q_later(b, "t_new2",
                   "INSERT INTO memds_pipe_c SELECT v || '-2' FROM"
                   " memds_pipe_c", NULL) == APR_SUCCESS;
    ok_rv(c, b, memds_store_commit(b), APR_SUCCESS,
          "pipeline: the commit carries the writes");
    ok(c, all && PQpipelineStatus(pc) == PQ_PIPELINE_OFF
              && PQtransactionStatus(pc) == PQTRANS_IDLE
              && raw_count(b,
                           "SELECT count(*) FROM memds_pipe_c WHERE v = $1"
                           " OR v = $1 || '-2'",
                           mark) == 2,
       "pipeline: both rows committed, in order");

    /* a rollback with writes unread */
    ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "pipeline: begin, once more");
    q_later(b, "t_gone", "INSERT INTO memds_pipe_c VALUES ('gone')", NULL);
    memds_store_rollback(b);
    ok(c, PQpipelineStatus(pc) == PQ_PIPELINE_OFF
              && PQtransactionStatus(pc) == PQTRANS_IDLE
              && raw_count(b,
                           "SELECT count(*) FROM memds_pipe_c WHERE v = $1",
                           "gone") == 0,
       "pipeline: a rollback reads what was sent, then undoes it");
    raw_exec(b, "DROP TABLE memds_pipe_c");

    /* several reads in one round trip, after writes (q_run_many): each
     * gets its own result, the writes are seen by all */
    {
        q_stmt_t q[3];
        ok_rv(c, b, memds_store_begin(b), APR_SUCCESS,
              "pipeline: begin for reads together");
        all = q_later(b, "t_make",
                      "CREATE TEMP TABLE memds_pipe_m ON COMMIT DROP AS"
                      " SELECT k FROM generate_series(1, 40) AS k", NULL)
              == APR_SUCCESS;
        qa_init(&a, c->p);
        qa_int(&a, 3);
        q[0].what = "t_max";
        q[0].sql = "SELECT max(k) FROM memds_pipe_m";
        q[0].a = NULL;
        q[0].expect = PGRES_TUPLES_OK;
        q[1].what = "t_some";
        q[1].sql = "SELECT k FROM memds_pipe_m WHERE k <= $1::integer"
                   " ORDER BY k";
        q[1].a = &a;
        q[1].expect = PGRES_TUPLES_OK;
        q[2].what = "t_arr";
        q[2].sql = "SELECT count(*) FROM memds_pipe_m WHERE k = ANY"
                   " ('{1,2,99999}'::integer[])";
        q[2].a = NULL;
        q[2].expect = PGRES_TUPLES_OK;
        rv = q_run_many(b, q, 3);
        ok(c, all && rv == APR_SUCCESS && col_i64(q[0].res, 0, 0, -1) == 40
                  && PQntuples(q[1].res) == 3
                  && col_i64(q[1].res, 2, 0, -1) == 3
                  && col_i64(q[2].res, 0, 0, -1) == 2
                  && PQpipelineStatus(pc) == PQ_PIPELINE_OFF
                  && memds_pgconn_pending(b->conn) == 0,
           "pipeline: three reads in one round trip, each its own result");
        for (i = 0; rv == APR_SUCCESS && i < 3; ++i) {
            PQclear(q[i].res);
        }
        /* the second of three fails: named, no result kept */
        q[1].sql = "SELECT k / 0 FROM memds_pipe_m";
        q[1].a = NULL;
        rv = q_run_many(b, q, 3);
        ok(c, rv == APR_EGENERAL && b->err && strstr(b->err, "t_some")
                  && strstr(b->err, "22012") && q[0].res == NULL
                  && q[1].res == NULL && q[2].res == NULL
                  && PQpipelineStatus(pc) == PQ_PIPELINE_OFF
                  && PQtransactionStatus(pc) == PQTRANS_INERROR,
           "pipeline: a failed read among three is named, none kept: %s",
           b->err ? b->err : "(no err)");
        memds_store_rollback(b);
    }

    /* the session's save and the COMMIT in one round trip */
    {
        memds_session_row_t s;
        memds_device_t d;
        const char *tok = apr_psprintf(c->p, "tok-sc-%s", c->acct);
        memset(&d, 0, sizeof(d));
        ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "save+commit: begin");
        ok_rv(c, b, memds_store_device_lock(b, &d, c->acct, "IMEI:sc"),
              APR_SUCCESS, "save+commit: a device");
        new_session_row(&s, c, tok, "1");
        s.device_id = d.device_id;
        rv = memds_store_session_save_commit(b, &s, 3600);
        ok(c, rv == APR_SUCCESS && s.session_pk > 0
                  && PQtransactionStatus(pc) == PQTRANS_IDLE
                  && raw_count(b,
                               "SELECT count(*) FROM memds.sessions"
                               " WHERE token = $1 AND phase = 'init'",
                               tok) == 1,
           "save+commit: a new session inserted and committed");
        ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "save+commit: begin");
        s.phase = "sync";
        rv = memds_store_session_save_commit(b, &s, 3600);
        ok(c, rv == APR_SUCCESS && PQtransactionStatus(pc) == PQTRANS_IDLE
                  && raw_count(b,
                               "SELECT count(*) FROM memds.sessions"
                               " WHERE token = $1 AND phase = 'sync'",
                               tok) == 1,
           "save+commit: the update committed");
        ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "save+commit: begin");
        s.session_pk = -5;
        rv = memds_store_session_save_commit(b, &s, 3600);
        ok(c, rv == APR_ENOENT && PQtransactionStatus(pc) == PQTRANS_IDLE,
           "save+commit of a missing session_pk: ENOENT");
        ok_rv(c, b, memds_store_begin(b), APR_SUCCESS, "save+commit: begin");
        qa_init(&a, c->p);
        qa_int(&a, 1);
        all = q_later(b, "t_fail", "SELECT 1 / ($1::integer - 1)", &a)
              == APR_SUCCESS;
        rv = memds_store_session_save_commit(b, &s, 3600);
        ok(c, all && rv == APR_EGENERAL && b->err && strstr(b->err, "t_fail")
                  && PQtransactionStatus(pc) == PQTRANS_INERROR,
           "save+commit after a failed write: its error, nothing committed");
        memds_store_rollback(b);
        raw_exec2(b,
                  "DELETE FROM memds.devices WHERE account = $1"
                  " AND devid = $2",
                  c->acct, "IMEI:sc");
    }
}

/* The pool's waiting, counted: a thread asks for a connection while both
 * are in use, and gets one when cb is given back, 100 ms after the thread
 * said it was asking (so a thread started late still finds both in use). */
typedef struct {
    memds_pgpool_t *pool;
    apr_pool_t *p;
    apr_status_t rv;
    volatile apr_uint32_t asking;
} waiter_t;

static void *APR_THREAD_FUNC waiter_run(apr_thread_t *t, void *arg)
{
    waiter_t *w = arg;
    memds_pgconn_t *conn = NULL;
    const char *err = NULL;

    (void)t;
    apr_atomic_set32(&w->asking, 1);
    w->rv = memds_pgpool_acquire(&conn, w->pool, &err, w->p);
    if (w->rv == APR_SUCCESS) {
        memds_pgpool_release(w->pool, conn, 0);
    }
    /* (a return, not apr_thread_exit: pthread_exit's unwinding is what
     * ASan reports as a stack-buffer-underflow when the thread ends) */
    return NULL;
}

static void check_pool_waits(ctx_t *c, memds_pgpool_t *pool,
                             memds_pgconn_t *cb)
{
    memds_pgpool_stats_t before, after;
    apr_thread_t *t;
    apr_status_t trv;
    waiter_t w = { pool, NULL, APR_EGENERAL, 0 };
    int i;

    apr_pool_create(&w.p, c->p);
    memds_pgpool_get_stats(&before, pool);
    if (apr_thread_create(&t, NULL, waiter_run, &w, c->p) != APR_SUCCESS) {
        ok(c, 0, "pool waits: thread");
        return;
    }
    for (i = 0; i < 10000 && !apr_atomic_read32(&w.asking); ++i) {
        apr_sleep(apr_time_from_msec(1));
    }
    apr_sleep(apr_time_from_msec(100));
    memds_pgpool_release(pool, cb, 0);
    apr_thread_join(&trv, t);
    memds_pgpool_get_stats(&after, pool);
    ok(c, w.rv == APR_SUCCESS
              && after.acquire_waits == before.acquire_waits + 1
              && after.acquire_wait_ms > before.acquire_wait_ms,
       "pool: an acquire that found every connection in use is counted "
       "with its wait (%" APR_UINT64_T_FMT " waits, %" APR_UINT64_T_FMT
       " ms)", after.acquire_waits - before.acquire_waits,
       after.acquire_wait_ms - before.acquire_wait_ms);
}

int main(int argc, const char *const *argv)
{
    ctx_t c;
    apr_pool_t *p;
    memds_pgpool_t *pool;
    memds_pgpool_params_t pp = { 0, 2, 2, apr_time_from_sec(60),
                                 apr_time_from_sec(5) };
    memds_pgconn_t *ca = NULL, *cb = NULL;
    const char *err = NULL;
    apr_int64_t spk;
    int nn;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CONNINFO\n", argv[0]);
        return 2;
    }
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    memset(&c, 0, sizeof(c));
    c.p = p;
    c.acct = apr_psprintf(p, "store-check-%ld-%" APR_TIME_T_FMT, (long)getpid(),
                          apr_time_now());
    c.acct2 = apr_pstrcat(p, c.acct, "-other", NULL);

    if (memds_pgpool_create(&pool, argv[1], &pp, NULL, p) != APR_SUCCESS
        || memds_pgpool_acquire(&ca, pool, &err, p) != APR_SUCCESS
        || memds_pgpool_acquire(&cb, pool, &err, p) != APR_SUCCESS) {
        printf("1..0 # Skipped: cannot connect: %s\n", err ? err : "?");
        fprintf(stderr, "store_check: cannot connect: %s\n", err ? err : "?");
        return 2;
    }
    memds_store_init(&c.a, ca, p);
    memds_store_init(&c.b, cb, p);
    {
        /* the pool's connections price index probes for data in memory
         * (memds_pgpool.c): 1.1, set by the session, where the server
         * keeps PostgreSQL's default of 4 */
        PGresult *r = PQexec(memds_pgconn_native(ca),
                             "SELECT setting, source FROM pg_settings"
                             " WHERE name = 'random_page_cost'");
        int one = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        ok(&c,
           one && strcmp(PQgetvalue(r, 0, 0), "1.1") == 0
               && strcmp(PQgetvalue(r, 0, 1), "session") == 0,
           "pooled connection: random_page_cost %s (%s)",
           one ? PQgetvalue(r, 0, 0) : "?", one ? PQgetvalue(r, 0, 1) : "?");
        PQclear(r);
    }

    memds_store_rollback(&c.a);
    ok_rv(&c, &c.a, memds_store_begin(&c.a), APR_SUCCESS, "begin on a");
    check_devices(&c);
    check_auth(&c);
    check_server_cred(&c);
    spk = check_sessions(&c);
    check_expire(&c);
    check_sstores(&c, spk);
    check_queue(&c, spk);
    check_queue_acked(&c, spk);
    check_queue_analyze(&c, spk);
    check_partial(&c, spk);
    check_syncstate(&c);
    check_maps(&c);
    check_maps_many(&c);
    check_items(&c);
    check_seq_proven(&c);
    check_mail_races(&c);
    check_prepared(&c);
    check_pipeline(&c);

    memds_store_rollback(&c.a);
    ok(&c, PQtransactionStatus(memds_pgconn_native(ca)) == PQTRANS_IDLE,
       "rolled back");
    {
        /* with no value of its own, a caller's answer becomes the proven
         * value, which the next caller starts from */
        apr_int64_t pv;
        apr_int64_t v = seq_visible(&c.b, &pv);
        ok(&c, v > 0 && pv == v,
           "item_seq_visible %" APR_INT64_T_FMT " kept as proven (%"
           APR_INT64_T_FMT ")", v, pv);
    }
    nn = (int)raw_count(&c.a,
                        "SELECT (SELECT count(*) FROM memds.devices"
                        " WHERE account LIKE $1 || '%')"
                        " + (SELECT count(*) FROM memds.items"
                        " WHERE account LIKE $1 || '%')"
                        " + (SELECT count(*) FROM memds.device_auth"
                        " WHERE account LIKE $1 || '%')",
                        c.acct);
    ok(&c, nn == 0, "nothing of this run remains in the database");

    check_pool_waits(&c, pool, cb); /* (gives cb back) */
    memds_pgpool_release(pool, ca, 0);
    printf("1..%d\n", c.n);
    if (c.failed) {
        printf("# %d of %d checks failed\n", c.failed, c.n);
    }
    apr_pool_destroy(p);
    apr_terminate();
    return c.failed ? 1 : 0;
}
