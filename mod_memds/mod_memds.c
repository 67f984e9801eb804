/* mod_memds.c: module record, lifecycle hooks and the memds-sync handler.
 *
 * Lifecycle (why things are created where they are):
 *  1. check_config (also run by `apachectl configtest`): cross-directive
 *     checks that a single setter cannot do, e.g. MemDSEngine On without
 *     MemDSDatabase.
 *  2. post_config (parent, every (re)start): the request counters go into
 *     anonymous shared memory so that all children of this generation add
 *     to the same numbers; the core's logger is pointed at each server.
 *  3. child_init (each child): the PostgreSQL pool. Connections must not be
 *     shared across fork, so they are opened only in the child, lazily
 *     unless MemDSDBMin says otherwise.
 */
#define MEMDS_MODULE_MAIN
#include "memds_glue.h"

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <apr_atomic.h>
#include <apr_strings.h>

#include "util/memds_util.h"
#include "util/memds_jobgate.h"
#include "ds/memds_engine.h"
#include "backends/memds_imap.h"
#include "email/memds_mime.h"
#include "send/memds_send.h"
#include <mod_watchdog.h>
#include "store/memds_migrate.h"

/* --------------------------------------------------------------- logging */

static void log_to_server(void *baton, int level, apr_status_t rv,
                          const char *msg)
{
    server_rec *s = baton;

    /* (the core's lines carry their own codes: MEMDS_LOGNO) */
    ap_log_error(APLOG_MARK, level, rv, s, "%s", msg); /* code in msg */
}

/* ----------------------------------------------------------------- hooks */

static int memds_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s)
{
    server_rec *v;
    int ok = OK, i;

    memds_collect_engine_dirs(pconf, s);
    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        memds_pgpool_params_t pp;

        for (i = 0; sc->engine_dirs && i < sc->engine_dirs->nelts; ++i) {
            const memds_dir_conf *dc = APR_ARRAY_IDX(sc->engine_dirs, i,
                                                     memds_dir_conf *);
            const char *why = memds_watch_check(dc);
            int j;

            /* The same realm on two mail servers shares their accounts'
             * state: right for replicas of one mail store, wrong else. */
            for (j = 0; j < i && dc->imap_url; ++j) {
                const memds_dir_conf *o = APR_ARRAY_IDX(sc->engine_dirs, j,
                                                        memds_dir_conf *);
                if (o->imap_url && strcmp(o->imap_url, dc->imap_url) != 0
                    && (o->account_realm == dc->account_realm
                        || (o->account_realm && dc->account_realm
                            && strcmp(o->account_realm, dc->account_realm)
                                   == 0))) {
                    ap_log_error(
                        APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, v,
                        MEMDS_APLOGNO(00043) "<Location %s> and <Location "
                                             "%s> reach different IMAP "
                                             "servers with the same account "
                                             "realm (%s): the same login on "
                                             "both shares one state; give "
                                             "each its own MemDSAccountRealm "
                                             "unless they are one mail store",
                        o->location, dc->location,
                        dc->account_realm ? dc->account_realm : "none");
                }
            }
            if (why) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, v,
                             MEMDS_APLOGNO(00042) "%s (<Location %s>)", why,
                             dc->location);
                ok = HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        if (sc->engine_used && sc->db_conninfo == NULL) {
            ap_log_error(
                APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, v,
                MEMDS_APLOGNO(00001) "MemDSEngine On (%s) needs "
                           "MemDSDatabase in the same server or virtual host",
                    sc->engine_where ? sc->engine_where : "?");
            ok = HTTP_INTERNAL_SERVER_ERROR;
        }
        memds_srv_pool_params(&pp, sc);
        if (pp.min > pp.keep || pp.keep > pp.max) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, v,
                         MEMDS_APLOGNO(00002) "MemDSDBMin (%d) <= MemDSDBKeep "
                                    "(%d) <= MemDSDBMax (%d) must hold",
                             pp.min, pp.keep, pp.max);
            ok = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return ok;
}

/* Watchdog job: remove expired sessions (and their queues, by cascade).
 * A singleton child watchdog, so one child per node does it each minute;
 * several nodes doing it at once only race on DELETE, which is harmless. */
static apr_status_t expire_sessions(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data;
    memds_srv_conf *sc = memds_srv_conf_get(s);
    memds_pgconn_t *conn;
    const char *err = NULL;
    int n = 0;
    apr_status_t rv;

    if (state != AP_WATCHDOG_STATE_RUNNING || sc->pgpool == NULL) {
        return APR_SUCCESS;
    }
    if (memds_pgpool_acquire(&conn, sc->pgpool, &err, pool) != APR_SUCCESS) {
        return APR_SUCCESS; /* PostgreSQL down: the request path says so */
    }
    rv = memds_engine_expire(&n, conn, pool);
    memds_pgpool_release(sc->pgpool, conn, rv != APR_SUCCESS);
    if (n > 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s,
                     MEMDS_APLOGNO(00040) "removed %d expired session%s", n,
                                   n == 1 ? "" : "s");
    }
    return APR_SUCCESS;
}

/* Watchdog job: send the Outbox messages whose retry is due, per location
 * with its own settings (a singleton too: one child per node). */
static apr_status_t retry_outbox(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data, *v;
    int i;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        for (i = 0; sc->pgpool && sc->engine_dirs && i < sc->engine_dirs->nelts;
             ++i) {
            const memds_dir_conf *dc = APR_ARRAY_IDX(sc->engine_dirs, i,
                                                     memds_dir_conf *);
            memds_engine_cfg_t cfg;
            memds_verifier_t vbuf;
            memds_mail_cfg_t mail;
            int sent = 0;
            if (dc->engine != 1 || dc->imap_url == NULL
                || dc->smtp_url == NULL) {
                continue;
            }
            memds_dir_engine_cfg(&cfg, &vbuf, &mail, &sc->logger, sc->pgpool,
                                 NULL, NULL,
                                 sc->counters ? &sc->counters->stats : NULL,
                                 dc);
            mail.ledger_pool = sc->ledger_pool;
            memds_send_background(&sent, sc->pgpool, &mail, 20, pool);
        }
    }
    return APR_SUCCESS;
}

/* A job as registered with mod_watchdog: it runs inside the child's gate
 * (memds_jobgate.h), never after the child's pool is gone. */
typedef struct gated_job_t {
    ap_watchdog_callback_fn_t *fn;
    server_rec *s;
} gated_job_t;

static apr_status_t gated_job(int state, void *data, apr_pool_t *pool)
{
    const gated_job_t *j = data;
    memds_jobgate_t *gate = memds_srv_conf_get(j->s)->jobgate;
    apr_status_t rv;

    if (!memds_jobgate_enter(gate)) {
        return APR_SUCCESS; /* (the child exits, or its start failed) */
    }
    rv = j->fn(state, j->s, pool);
    memds_jobgate_leave(gate);
    return rv;
}

static void *gated(apr_pool_t *pconf, server_rec *s,
                   ap_watchdog_callback_fn_t *fn)
{
    gated_job_t *j = apr_palloc(pconf, sizeof(*j));

    j->fn = fn;
    j->s = s;
    return j;
}

/* Does any location have MemDSPush On? (The delivery job runs then.) */
static int push_on(server_rec *s)
{
    server_rec *v;
    int i;

    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        for (i = 0; sc->engine_dirs && i < sc->engine_dirs->nelts; ++i) {
            if (APR_ARRAY_IDX(sc->engine_dirs, i, memds_dir_conf *)->push
                == 1) {
                return 1;
            }
        }
    }
    return 0;
}

static int memds_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp, server_rec *s)
{
    apr_shm_t *shm;
    memds_counters_t *counters;
    server_rec *v;
    apr_status_t rv;

    /* libcurl's process-wide setup, before any child thread exists. */
    rv = memds_imap_global_init();
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                     MEMDS_APLOGNO(00006) "libcurl initialisation failed");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    rv = apr_shm_create(&shm, sizeof(memds_counters_t), NULL, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(
            APLOG_MARK, APLOG_EMERG, rv, s,
            MEMDS_APLOGNO(00003) "cannot create shared memory for the request counters");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    memds_collect_engine_dirs(pconf, s);
    {
        /* The datastore providers: built in ("items"), the mailbox folders
         * and the Outbox. One registry, read-only once the children run. */
        memds_ds_registry_t *reg = memds_ds_registry_make(pconf);
        memds_send_register(reg);
        memds_ds_mail_register(reg);
        for (v = s; v; v = v->next) {
            memds_srv_conf_get(v)->ds_registry = reg;
        }
    }
    counters = apr_shm_baseaddr_get(shm);
    memset(counters, 0, sizeof(*counters));
    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        sc->counters = counters;
        sc->logger.cb = log_to_server;
        sc->logger.baton = v;
    }
    {
        APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance)
        *get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
        APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_cb =
            APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
        ap_watchdog_t *wd;

        if (get_instance && register_cb && push_on(s)
            && get_instance(&wd, "memds-push", 0, 1, pconf) == APR_SUCCESS) {
            register_cb(wd, apr_time_from_msec(MEMDS_PUSH_INTERVAL_MS),
                        gated(pconf, s, memds_push_job), gated_job);
        }
        if (get_instance && register_cb && memds_watch_wanted(s)
            && get_instance(&wd, "memds-watch", 0, 1, pconf) == APR_SUCCESS) {
            register_cb(wd, apr_time_from_msec(MEMDS_WATCH_INTERVAL_MS),
                        gated(pconf, s, memds_watch_job), gated_job);
        }
        /* The two slow jobs share one instance: each instance's thread
         * wakes every 100 ms in every child (mod_watchdog's slice), 1-1.5 %
         * of httpd's CPU per instance in a mail first sync */
        if (get_instance && register_cb
            && get_instance(&wd, "memds-jobs", 0, 1, pconf) == APR_SUCCESS) {
            register_cb(wd, apr_time_from_sec(MEMDS_EXPIRE_INTERVAL),
                        gated(pconf, s, expire_sessions), gated_job);
            register_cb(wd, apr_time_from_sec(MEMDS_OUTBOX_INTERVAL),
                        gated(pconf, s, retry_outbox), gated_job);
        }
        else {
            ap_log_error(
                APLOG_MARK, APLOG_NOTICE, 0, s,
                MEMDS_APLOGNO(00041) "mod_watchdog is not loaded: expired sessions are "
                           "removed by requests instead (every 256th)");
        }
    }
    return OK;
}

static void memds_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_pool_t *p;
    server_rec *v, *w;
    memds_jobgate_t *gate = NULL;

    /* GMime (MIME parsing for sending mail) in each child, before its
     * threads run, and never in the parent: httpd unloads and reloads the
     * module (and with it libgmime) between configuration passes and at
     * restarts, and GLib's type registry, which stays loaded, would then
     * point into the old copy. */
    memds_mime_global_init();
    apr_pool_create(&p, pchild);
    apr_pool_tag(p, "memds_pgpool");
    {
        /* Recent pass-through logins: one cache per child, for every
         * virtual host (the server URL is part of each key). */
        memds_logincache_t *logins = NULL;
        memds_imap_cache_t *imaps = NULL;
        /* (MemDSIMAPKeep: the main server's) */
        const memds_srv_conf *msc = memds_srv_conf_get(s);

        if (memds_logincache_create(&logins, MEMDS_LOGIN_CACHE_SECS,
                                    MEMDS_LOGIN_CACHE_MAX, pchild)
            != APR_SUCCESS) {
            logins = NULL;
        }
        if (memds_imap_cache_create(&imaps,
                                    msc->imap_keep != MEMDS_UNSET
                                        ? msc->imap_keep
                                        : MEMDS_IMAP_CACHE_MAX,
                                    msc->imap_keep_secs != MEMDS_UNSET
                                        ? msc->imap_keep_secs
                                        : MEMDS_IMAP_CACHE_IDLE_SECS,
                                    MEMDS_IMAP_CACHE_USES, pchild)
            != APR_SUCCESS) {
            imaps = NULL;
        }
        for (v = s; v; v = v->next) {
            memds_srv_conf_get(v)->logins = logins;
            memds_srv_conf_get(v)->imap_cache = imaps;
        }
    }
    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        memds_pgpool_params_t pp;
        apr_status_t rv;

        if (sc->db_conninfo == NULL || sc->pgpool) {
            continue;
        }
        /* Servers that share a connection string share one pool. */
        for (w = s; w != v; w = w->next) {
            memds_srv_conf *wc = memds_srv_conf_get(w);
            if (wc->pgpool && strcmp(wc->db_conninfo, sc->db_conninfo) == 0) {
                sc->pgpool = wc->pgpool;
                sc->ledger_pool = wc->ledger_pool;
                break;
            }
        }
        if (sc->pgpool) {
            continue;
        }
        memds_srv_pool_params(&pp, sc);
        rv = memds_pgpool_create(&sc->pgpool, sc->db_conninfo, &pp, &sc->logger,
                                 p);
        if (rv != APR_SUCCESS && pp.min > 0) {
            /* MemDSDBMin connections could not be opened: go on lazily. */
            ap_log_error(APLOG_MARK, APLOG_WARNING, rv, v,
                         MEMDS_APLOGNO(00004) "could not open MemDSDBMin=%d PostgreSQL "
                                    "connections "
                                    "at child start; connecting on demand",
                             pp.min);
            pp.min = 0;
            rv = memds_pgpool_create(&sc->pgpool, sc->db_conninfo, &pp,
                                     &sc->logger, p);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(
                APLOG_MARK, APLOG_CRIT, rv, v,
                MEMDS_APLOGNO(00005) "cannot create the PostgreSQL connection pool");
            sc->pgpool = NULL;
            continue;
        }
        /* The outbox ledger's autocommit connections: a pool of their own,
         * so that a request that holds a connection of the first never
         * waits for a second from it (every thread sending at once would
         * starve). At most one per request holding a first one, and one
         * for the background job; opened only when mail is sent. */
        pp.min = 0;
        pp.keep = 1;
        pp.max = pp.max + 1;
        if (sc->counters) {
            memds_pgpool_set_stats(sc->pgpool, &sc->counters->stats);
        }
        if (memds_pgpool_create(&sc->ledger_pool, sc->db_conninfo, &pp,
                                &sc->logger, p)
            != APR_SUCCESS) {
            ap_log_error(
                APLOG_MARK, APLOG_CRIT, 0, v,
                MEMDS_APLOGNO(00007) "cannot create the outbox ledger's connection pool; "
                           "sending answers 500");
            sc->ledger_pool = NULL;
        }
        else if (sc->counters) {
            memds_pgpool_set_stats(sc->ledger_pool, &sc->counters->stats);
        }
    }
    memds_watch_child_init(pchild, s);
    if (push_on(s)) {
        memds_push_child_init(pchild, s);
    }
    /* Last, so that its pre-cleanup runs first at child exit: the jobs
     * that mod_watchdog's threads (started after this hook) are running
     * end before anything of this child is released. */
    if (memds_jobgate_create(&gate, s->process->pool) == APR_SUCCESS) {
        memds_jobgate_close_with(gate, pchild);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     MEMDS_APLOGNO(00098) "cannot create the background jobs' "
                     "gate: this child runs none");
    }
    for (v = s; v; v = v->next) {
        memds_srv_conf_get(v)->jobgate = gate;
    }
}

/* ------------------------------------------------------------ the handler */

#define COUNT(sc, f) \
    do { \
        if ((sc)->counters) \
            apr_atomic_inc64(&(sc)->counters->f); \
    } while (0)

/* An HTTP error of ours: count it; on 413 close the connection rather than
 * read the rest of a body we refused. */
static int fail(request_rec *r, memds_srv_conf *sc, int status)
{
    if (sc->counters && status >= 100 && status < 600) {
        apr_atomic_inc64(&sc->counters->status_class[status / 100]);
    }
    switch (status) {
    case HTTP_METHOD_NOT_ALLOWED: COUNT(sc, bad_method); break;
    case HTTP_UNSUPPORTED_MEDIA_TYPE: COUNT(sc, bad_type); break;
    case HTTP_REQUEST_ENTITY_TOO_LARGE:
        COUNT(sc, too_large);
        r->connection->keepalive = AP_CONN_CLOSE;
        break;
    case HTTP_BAD_REQUEST: COUNT(sc, bad_body); break;
    case HTTP_SERVICE_UNAVAILABLE:
        COUNT(sc, unavailable);
        apr_table_setn(r->err_headers_out, "Retry-After", "30");
        break;
    default: COUNT(sc, failed); break;
    }
    return status;
}

/* Is the database migrated far enough for this module? Checked once per
 * child (then remembered in sc->schema_ok); the 503 it gives tells the
 * admin what to run. */
static int check_schema(request_rec *r, memds_srv_conf *sc,
                        memds_pgconn_t *conn)
{
    const char *err = NULL;
    int version = 0;
    apr_status_t rv;

    if (apr_atomic_read32(&sc->schema_ok)) {
        return OK;
    }
    rv = memds_store_schema_version(&version, conn, &err, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      MEMDS_APLOGNO(00022) "database query failed, answering 503: %s",
                          err);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (version < MEMDS_SCHEMA_VERSION) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            MEMDS_APLOGNO(00023) "database schema is at version %d, this module needs "
                       "%d: run `memds-admin migrate`",
                version, MEMDS_SCHEMA_VERSION);
        return HTTP_SERVICE_UNAVAILABLE;
    }
    apr_atomic_set32(&sc->schema_ok, 1);
    return OK;
}

/* The RespURI token from the query string (s=...), or NULL. */
static const char *query_token(request_rec *r)
{
    const char *a = r->args, *t;
    apr_size_t n;

    while (a && *a) {
        if (a[0] == 's' && a[1] == '=') {
            t = a + 2;
            n = strcspn(t, "&;");
            if (n == 0 || n > 64) {
                return NULL;
            }
            return apr_pstrndup(r->pool, t, n);
        }
        a = strchr(a, '&');
        if (a) {
            ++a;
        }
    }
    return NULL;
}

/* A 200 answer: its class, and what the engine did (memds_response_t). */
static void count_answer(memds_counters_t *c, const memds_response_t *resp)
{
    int i;

    apr_atomic_inc64(&c->status_class[2]);
    apr_atomic_add64(&c->sessions_started, resp->session_started ? 1 : 0);
    apr_atomic_add64(&c->sessions_completed, resp->session_completed ? 1 : 0);
    apr_atomic_add64(&c->items_up, (apr_uint64_t)resp->items_up);
    apr_atomic_add64(&c->items_down, (apr_uint64_t)resp->items_down);
    for (i = 0; i < 7; ++i) {
        apr_atomic_add64(&c->sync_alerts[i], (apr_uint64_t)resp->sync_alerts[i]);
    }
}

static int memds_sync_handler(request_rec *r)
{
    memds_dir_conf *dc;
    memds_srv_conf *sc;
    memds_ct_e ct;
    const char *body = NULL, *out = NULL, *err = NULL;
    apr_size_t blen = 0, olen = 0;
    apr_status_t rv;
    memds_pgconn_t *conn;
    memds_engine_cfg_t cfg;
    memds_verifier_t verifier;
    memds_mail_cfg_t mailcfg;
    memds_request_t rq;
    memds_response_t resp;
    int st, coding = MEMDS_CE_IDENTITY;

    if (r->handler == NULL || strcmp(r->handler, "memds-sync") != 0) {
        return DECLINED;
    }
    dc = memds_dir_conf_get(r);
    if (!memds_dir_engine(dc)) {
        return DECLINED;
    }
    sc = memds_srv_conf_get(r->server);
    ap_allow_methods(r, REPLACE_ALLOW, "POST", "OPTIONS", NULL);
    if (r->method_number == M_OPTIONS) {
        return DECLINED; /* the core answers with Allow: POST, OPTIONS */
    }
    COUNT(sc, requests);
    if (r->method_number != M_POST) {
        return fail(r, sc, HTTP_METHOD_NOT_ALLOWED);
    }
    ct = memds_content_type(apr_table_get(r->headers_in, "Content-Type"));
    if (ct != MEMDS_CT_XML && ct != MEMDS_CT_WBXML) {
        ap_log_rerror(
            APLOG_MARK, APLOG_INFO, 0, r,
            MEMDS_APLOGNO(00011) "refusing Content-Type '%s': expected " MEMDS_CT_XML_STR
                       " or " MEMDS_CT_WBXML_STR,
                apr_table_get(r->headers_in, "Content-Type")
                    ? apr_table_get(r->headers_in, "Content-Type")
                    : "");
        return fail(r, sc, HTTP_UNSUPPORTED_MEDIA_TYPE);
    }
    st = memds_read_body(&body, &blen, &coding, r, memds_dir_max_msg_size(dc));
    if (st != OK) {
        return fail(r, sc, st);
    }
    if (sc->counters) {
        apr_atomic_add64(&sc->counters->bytes_in, blen);
    }
    if (sc->pgpool == NULL) {
        ap_log_rerror(
            APLOG_MARK, APLOG_ERR, 0, r,
            MEMDS_APLOGNO(00020) "no PostgreSQL pool in this child (see MEMDS00005 at "
                       "child start)");
        return fail(r, sc, HTTP_SERVICE_UNAVAILABLE);
    }
    rv = memds_pgpool_acquire_for(&conn, sc->pgpool, &err, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      MEMDS_APLOGNO(00021) "database unavailable, answering 503: %s",
                          err);
        return fail(r, sc, HTTP_SERVICE_UNAVAILABLE);
    }
    if ((st = check_schema(r, sc, conn)) != OK) {
        return fail(r, sc, st);
    }
    memds_dir_engine_cfg(&cfg, &verifier, &mailcfg, &sc->logger, sc->pgpool,
                         sc->logins, sc->imap_cache,
                         sc->counters ? &sc->counters->stats : NULL, dc);
    mailcfg.ledger_pool = sc->ledger_pool;
    cfg.registry = sc->ds_registry;
    cfg.realms = sc->realms;
    memset(&rq, 0, sizeof(rq));
    rq.body = body;
    rq.len = blen;
    rq.enc = ct == MEMDS_CT_WBXML ? MEMDS_ENC_WBXML : MEMDS_ENC_XML;
    rq.token = query_token(r);
    rq.base_url = ap_construct_url(r->pool, r->uri, r);
    rq.http_user = r->user;
    memds_engine_process(&resp, &cfg, conn, &rq, r->pool);
    if (sc->counters && (apr_atomic_read64(&sc->counters->requests) & 255) == 0
        && !APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance)) {
        int n = 0;
        memds_engine_expire(&n, conn, r->pool);
    }
    if (resp.log_msg && resp.log_level) {
        ap_log_rerror(APLOG_MARK, resp.log_level, 0, r, "%s",
                      resp.log_msg); /* code in msg */
    }
    if (resp.retry_after > 0) {
        /* a refused session (MemDSLimit, a held device): when to come back */
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_itoa(r->pool, resp.retry_after));
    }
    if (resp.throttled) {
        COUNT(sc, throttled);
    }
    if (resp.blocked) {
        COUNT(sc, blocked);
    }
    if (resp.http_status != HTTP_OK) {
        /* (A database failure left the transaction rolled back; the pool
         * drops the connection on release if libpq says it is broken.) */
        return fail(r, sc, resp.http_status);
    }
    out = resp.body;
    olen = resp.len;
    ap_set_content_type(r, ct == MEMDS_CT_WBXML ? MEMDS_CT_WBXML_STR
                                                : MEMDS_CT_XML_STR);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    COUNT(sc, answered);
    if (sc->counters) {
        apr_atomic_add64(&sc->counters->bytes_out, olen);
        count_answer(sc->counters, &resp);
    }
    memds_compress_answer(&out, &olen, r, dc, coding);
    ap_set_content_length(r, (apr_off_t)olen);
    if (!r->header_only) {
        MEMDS_FAULT("answer-write-before");
        ap_rwrite(out, (int)olen, r);
#ifdef MEMDS_FAULT_INJECTION
        ap_rflush(r); /* (the answer reached the client: then die) */
        MEMDS_FAULT("answer-write-after");
#endif
    }
    return OK;
}

/* A sync URL maps to no file: where its <Location> switches the engine on,
 * the directory walk (a stat and a .htaccess open per path component, for
 * every message of every session) is skipped, as mod_proxy does for the
 * URLs it serves. A sync URL configured by a <Directory> section keeps the
 * walk: the location walk done here does not see that section. (The core
 * walked the locations from the same defaults before translate_name, so
 * this walk is its cached result; the core walks them again after this
 * hook either way.) */
static int memds_map_to_storage(request_rec *r)
{
    if (r->proxyreq) {
        return DECLINED;
    }
    if (ap_location_walk(r) == OK
        && memds_dir_engine(memds_dir_conf_get(r))) {
        return OK;
    }
    /* the directory walk starts from the server's defaults, as without
     * this hook */
    r->per_dir_config = r->server->lookup_defaults;
    return DECLINED;
}

static void memds_register_hooks(apr_pool_t *p)
{
    static const char *const watchdog_after[] = { "mod_watchdog.c", NULL };

    ap_hook_map_to_storage(memds_map_to_storage, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(memds_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(memds_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    /* before mod_watchdog's, which starts the threads of the jobs */
    ap_hook_child_init(memds_child_init, NULL, watchdog_after,
                       APR_HOOK_MIDDLE);
    ap_hook_handler(memds_sync_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(memds_status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(memds_notify_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(memds_adminpage_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(memds) = { STANDARD20_MODULE_STUFF,
                             memds_create_dir_conf,
                             memds_merge_dir_conf,
                             memds_create_srv_conf,
                             memds_merge_srv_conf,
                             memds_cmds,
                             memds_register_hooks
#ifdef AP_MODULE_FLAG_NONE
                             ,
                             AP_MODULE_FLAG_NONE
#endif
};
