/* memds_notify.c: push in the glue (docs/push.md). The memds-notify
 * handler takes the IMAP server's mail events (Dovecot's push_notification
 * OX driver: a JSON PUT or POST with "user" and "folder") and records
 * pending notifications; the watchdog job delivers them. */
#include "memds_glue.h"
#include "push/memds_push.h"
#include "store/memds_pushstore.h"
#include "util/memds_json.h"

#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_watchdog.h>
#include <apr_strings.h>

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
    if (memds_push_event(&st, &n, user, folder,
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

apr_status_t memds_push_job(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data, *v;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        memds_push_cfg_t cfg;
        memds_pgconn_t *conn;
        memds_store_t st;
        const char *err = NULL;
        int sent = 0;
        apr_status_t rv;

        if (sc->pgpool == NULL
            || (v != s && sc->pgpool == memds_srv_conf_get(s)->pgpool)) {
            continue; /* (a pool shared with the main server: done there) */
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
        rv = memds_push_run(&sent, &st, &cfg, 50, pool);
        memds_pgpool_release(sc->pgpool, conn, rv != APR_SUCCESS);
    }
    return APR_SUCCESS;
}
