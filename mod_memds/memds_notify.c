/* memds_notify.c: push in the glue (docs/push.md). The memds-notify
 * handler takes the IMAP server's mail events (Dovecot's push_notification
 * OX driver: a JSON PUT or POST with "user" and "folder") and records
 * pending notifications; the watchdog job delivers them. */
#include "memds_glue.h"
#include "push/memds_push.h"
#include "push/memds_watch.h"
#include "store/memds_pushstore.h"
#include "util/memds_json.h"

#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_watchdog.h>
#include <apr_strings.h>
#include <unistd.h>

#define NOTIFY_MAX 65536 /* an event is a few hundred bytes */

/* From this host (loopback) or a user httpd authenticated: other callers
 * could make devices sync at will. */
static int trusted(const request_rec *r)
{
    const char *ip = r->useragent_ip;

    return r->user != NULL
           || (ip
               && (strcmp(ip, "::1") == 0 || strncmp(ip, "127.", 4) == 0
                   || strncmp(ip, "::ffff:127.", 11) == 0));
}

static int read_all(request_rec *r, char **pbuf, apr_size_t *plen)
{
    apr_size_t cap = 4096, n = 0;
    char *buf;
    int rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);

    if (rc != OK) {
        return rc;
    }
    buf = apr_palloc(r->pool, cap + 1);
    if (ap_should_client_block(r)) {
        long got;
        while ((got = ap_get_client_block(r, buf + n, cap - n)) > 0) {
            n += (apr_size_t)got;
            if (n == cap) {
                char *nb;
                if (cap >= NOTIFY_MAX) {
                    return HTTP_REQUEST_ENTITY_TOO_LARGE;
                }
                nb = apr_palloc(r->pool, cap * 2 + 1);
                memcpy(nb, buf, n);
                buf = nb;
                cap *= 2;
            }
        }
        if (got < 0) {
            return HTTP_BAD_REQUEST;
        }
    }
    buf[n] = '\0';
    *pbuf = buf;
    *plen = n;
    return OK;
}

int memds_notify_handler(request_rec *r)
{
    memds_srv_conf *sc;
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_table_t *f;
    const char *why = NULL, *user, *folder, *err = NULL;
    char *body;
    apr_size_t len;
    int rc, n = 0;

    if (r->handler == NULL || strcmp(r->handler, "memds-notify") != 0) {
        return DECLINED;
    }
    sc = memds_srv_conf_get(r->server);
    if (r->method_number != M_POST && r->method_number != M_PUT) {
        r->allowed = AP_METHOD_BIT << M_POST | AP_METHOD_BIT << M_PUT;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!trusted(r)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MEMDS_APLOGNO(00090) "memds-notify: refused a mail event "
                                           "from %s (not this host, not "
                                           "authenticated)",
                                    r->useragent_ip);
        return HTTP_FORBIDDEN;
    }
    if ((rc = read_all(r, &body, &len)) != OK) {
        return rc;
    }
    if (memds_json_flat(&f, body, len, &why, r->pool) != APR_SUCCESS
        || (user = apr_table_get(f, "user")) == NULL || !*user) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MEMDS_APLOGNO(00091) "memds-notify: not a mail event: %s",
                                    why ? why : "no \"user\"");
        return HTTP_BAD_REQUEST;
    }
    folder = apr_table_get(f, "folder");
    if (folder == NULL) {
        folder = apr_table_get(f, "mailbox");
    }
    if (folder == NULL || !*folder) {
        folder = "INBOX";
    }
    if (sc->pgpool == NULL
        || memds_pgpool_acquire(&conn, sc->pgpool, &err, r->pool)
               != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MEMDS_APLOGNO(00092) "memds-notify: no database "
                                           "connection: %s",
                                    err ? err : "no MemDSDatabase");
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    memds_store_init(&st, conn, r->pool);
    /* The IMAP server's user in this location's realm (the notify URL of a
     * mail server lives where MemDSAccountRealm names that server). */
    if (memds_push_event(&st, &n,
                         memds_account_key(user,
                                           memds_dir_conf_get(r)->account_realm,
                                           r->pool),
                         folder,
                         sc->push_delay != MEMDS_UNSET
                             ? sc->push_delay
                             : MEMDS_DEFAULT_PUSH_DELAY)
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MEMDS_APLOGNO(00093) "memds-notify: recording the event "
                                           "of %s failed: %s",
                                    user, st.err ? st.err : "?");
        memds_pgpool_release(sc->pgpool, conn, 1);
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    memds_pgpool_release(sc->pgpool, conn, 0);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  MEMDS_APLOGNO(00094) "memds-notify: %s of %s in %s: %d "
                                       "notification%s pending",
                                apr_table_get(f, "event")
                                    ? apr_table_get(f, "event")
                                    : "event",
                                user, folder, n, n == 1 ? "" : "s");
    return HTTP_NO_CONTENT;
}

/* When the push job looks for due notifications again: it LISTENs on
 * memds_push (schema/020: new or rescheduled notifications NOTIFY it) and
 * otherwise waits until the next one falls due, instead of querying every
 * round (five times a second, ~1 ms of PostgreSQL each). */
struct memds_push_wake_t {
    memds_pglisten_t *listen;
    apr_time_t next_at; /* 0: at the next round */
};

#define PUSH_HELD_RECHECK apr_time_from_sec(1) /* a device in a session */
#define PUSH_IDLE_RECHECK apr_time_from_sec(30) /* (in case) */
#define PUSH_BATCH 50

static apr_status_t push_wake_cleanup(void *data)
{
    memds_srv_conf *sc = data;

    memds_pglisten_destroy(sc->push_wake->listen);
    sc->push_wake = NULL;
    return APR_SUCCESS;
}

void memds_push_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec *v;

    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        struct memds_push_wake_t *w;

        if (sc->pgpool == NULL
            || (v != s && sc->pgpool == memds_srv_conf_get(s)->pgpool)) {
            continue;
        }
        w = apr_pcalloc(pchild, sizeof(*w));
        w->listen = memds_pglisten_create(sc->pgpool, "memds_push");
        if (w->listen == NULL) {
            continue; /* (the job then looks every round) */
        }
        sc->push_wake = w;
        apr_pool_cleanup_register(pchild, sc, push_wake_cleanup,
                                  apr_pool_cleanup_null);
    }
}

/* When to look next after a round that sent sent notifications. */
static apr_time_t push_next_at(memds_store_t *st, int sent, apr_time_t now)
{
    apr_time_t at = 0;

    if (sent >= PUSH_BATCH || memds_push_next_due(st, &at) != APR_SUCCESS) {
        return 0; /* more, or unknown: at once */
    }
    if (at == 0 || at > now + PUSH_IDLE_RECHECK) {
        return now + PUSH_IDLE_RECHECK;
    }
    return at <= now ? now + PUSH_HELD_RECHECK : at;
}

apr_status_t memds_push_job(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data, *v;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        struct memds_push_wake_t *w = sc->push_wake;
        memds_push_cfg_t cfg;
        memds_pgconn_t *conn;
        memds_store_t st;
        const char *err = NULL;
        int sent = 0;
        apr_status_t rv;
        apr_time_t now = apr_time_now();

        if (sc->pgpool == NULL
            || (v != s && sc->pgpool == memds_srv_conf_get(s)->pgpool)) {
            continue; /* (a pool shared with the main server: done there) */
        }
        /* (polled every round: notifications are read as they come) */
        if (w && !memds_pglisten_poll(w->listen) && now < w->next_at) {
            continue;
        }
        if (memds_pgpool_acquire(&conn, sc->pgpool, &err, pool)
            != APR_SUCCESS) {
            continue; /* PostgreSQL down: next round */
        }
        memds_store_init(&st, conn, pool);
        cfg.server_id = sc->server_id;
        cfg.kannel_url = sc->kannel_url;
        cfg.kannel_user = sc->kannel_user;
        cfg.kannel_pass = sc->kannel_pass;
        cfg.timeout_ms = 5000;
        cfg.log = &sc->logger;
        cfg.stats = sc->counters ? &sc->counters->stats : NULL;
        rv = memds_push_run(&sent, &st, &cfg, PUSH_BATCH, pool);
        if (w) {
            w->next_at = rv == APR_SUCCESS ? push_next_at(&st, sent, now) : 0;
        }
        memds_pgpool_release(sc->pgpool, conn, rv != APR_SUCCESS);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------- the IMAP IDLE watcher */

#define WATCH_LEASE_MS 8000      /* renewed every 2 s */
#define WATCH_IDLE_RENEW 1500    /* s: IDLE restarted (RFC 2177: < 29 min) */
#define WATCH_WAIT_MS 250        /* longest wait for IMAP data per round */
#define WATCH_DEFAULT_MAX 1000

const char *memds_watch_check(const memds_dir_conf *dc)
{
    if (dc->push_watch != 1) {
        return NULL;
    }
    if (dc->push != 1) {
        return "MemDSPushWatch On needs MemDSPush On";
    }
    if (dc->imap_url == NULL) {
        return "MemDSPushWatch On needs MemDSIMAPServer";
    }
    if (dc->master_user == NULL) {
        return "MemDSPushWatch On needs MemDSIMAPMaster (the watcher logs "
               "in for each account without its password)";
    }
    return NULL;
}

int memds_watch_wanted(server_rec *s)
{
    server_rec *v;
    int i;

    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        for (i = 0; sc->engine_dirs && i < sc->engine_dirs->nelts; ++i) {
            const memds_dir_conf *dc = APR_ARRAY_IDX(sc->engine_dirs, i,
                                                     memds_dir_conf *);
            if (dc->push_watch == 1 && memds_watch_check(dc) == NULL) {
                return 1;
            }
        }
    }
    return 0;
}

/* The sources of the servers sharing v's pool (each IMAP server once). */
static apr_array_header_t *watch_sources(server_rec *s, memds_pgpool_t *pg,
                                         apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 2, sizeof(memds_watch_src_t));
    server_rec *v;
    int i, j;

    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        for (i = 0; sc->pgpool == pg && sc->engine_dirs
                    && i < sc->engine_dirs->nelts;
             ++i) {
            const memds_dir_conf *dc = APR_ARRAY_IDX(sc->engine_dirs, i,
                                                     memds_dir_conf *);
            memds_watch_src_t *src;
            int dup = 0;

            if (dc->push_watch != 1 || memds_watch_check(dc) != NULL) {
                continue;
            }
            for (j = 0; j < a->nelts; ++j) {
                dup |= strcmp(APR_ARRAY_IDX(a, j, memds_watch_src_t).server,
                              dc->imap_url)
                       == 0;
            }
            if (dup) {
                continue;
            }
            src = apr_array_push(a);
            memset(src, 0, sizeof(*src));
            src->server = dc->imap_url;
            src->realm = dc->account_realm;
            src->imap.url = dc->imap_url;
            src->imap.user = dc->master_user;
            src->imap.password = dc->master_password;
            src->imap.connect_timeout_ms = 10000;
            src->imap.io_timeout_ms = 30000;
            src->imap.ca_file = dc->tls_ca_file;
            src->imap.starttls = dc->imap_starttls == 1;
            src->imap.log = &memds_srv_conf_get(s)->logger;
        }
    }
    return a;
}

/* The child exits: its leases are given up now rather than running out
 * (a pre-cleanup: the PostgreSQL pool, a subpool, is still there). The
 * watchdog's own STOPPING call may not come before the process ends. */
static apr_status_t watch_cleanup(void *data)
{
    memds_srv_conf *sc = data;
    apr_pool_t *tmp;

    if (apr_pool_create(&tmp, NULL) == APR_SUCCESS) {
        memds_watch_stop(sc->watch, sc->watch_cfg, sc->pgpool, tmp);
        apr_pool_destroy(tmp);
    }
    return APR_SUCCESS;
}

void memds_watch_child_init(apr_pool_t *pchild, server_rec *s)
{
    server_rec *v, *w;
    char host[APRMAXHOSTLEN + 1];
    const char *node;

    if (apr_gethostname(host, sizeof(host), pchild) != APR_SUCCESS) {
        apr_cpystrn(host, "localhost", sizeof(host));
    }
    node = apr_psprintf(pchild, "%s:%ld:%ld", host, (long)getppid(),
                        (long)getpid());
    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        memds_watch_cfg_t *cfg;
        int shared = 0;

        for (w = s; w != v; w = w->next) {
            shared |= memds_srv_conf_get(w)->pgpool == sc->pgpool;
        }
        if (sc->pgpool == NULL || shared) {
            continue; /* (watched with the first server of its pool) */
        }
        cfg = apr_pcalloc(pchild, sizeof(*cfg));
        cfg->sources = watch_sources(s, sc->pgpool, pchild);
        if (cfg->sources->nelts == 0) {
            continue;
        }
        cfg->max = sc->watch_max != MEMDS_UNSET ? sc->watch_max
                                                : WATCH_DEFAULT_MAX;
        cfg->delay_ms = sc->push_delay != MEMDS_UNSET ? sc->push_delay
                                                      : MEMDS_DEFAULT_PUSH_DELAY;
        cfg->lease_ms = WATCH_LEASE_MS;
        cfg->idle_renew_secs = WATCH_IDLE_RENEW;
        cfg->log = &sc->logger;
        sc->watch_cfg = cfg;
        if (memds_watch_create(&sc->watch, node, pchild) != APR_SUCCESS) {
            sc->watch = NULL;
            continue;
        }
        apr_pool_pre_cleanup_register(pchild, sc, watch_cleanup);
    }
}

apr_status_t memds_watch_job(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data, *v;

    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        apr_pool_t *tmp;

        if (sc->watch == NULL) {
            continue;
        }
        apr_pool_create(&tmp, pool);
        if (state == AP_WATCHDOG_STATE_RUNNING) {
            memds_watch_round(sc->watch, sc->watch_cfg, sc->pgpool,
                              WATCH_WAIT_MS, tmp);
        }
        else if (state == AP_WATCHDOG_STATE_STOPPING) {
            memds_watch_stop(sc->watch, sc->watch_cfg, sc->pgpool, tmp);
        }
        apr_pool_destroy(tmp);
    }
    return APR_SUCCESS;
}
