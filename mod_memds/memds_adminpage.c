/* memds_adminpage.c: the memds-admin handler, the remote wipe (and its
 * undoing) for administrators through httpd: POST action=wipe|enable,
 * account, device (application/x-www-form-urlencoded); GET lists the
 * devices. Only for a user httpd authenticated (the location's own
 * authentication and Require decide who is an administrator); anyone
 * else gets 403. The same orders as memds-admin wipe / enable. */
#include "memds_glue.h"
#include "store/memds_store.h"

#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_script.h>
#include <apr_strings.h>
#include <string.h>

#define FORM_MAX 4096

/* The value of a form field (at most FORM_MAX bytes in all). */
static const char *field(apr_array_header_t *pairs, const char *name,
                         apr_pool_t *p)
{
    int i;

    for (i = 0; pairs && i < pairs->nelts; ++i) {
        ap_form_pair_t *f = &APR_ARRAY_IDX(pairs, i, ap_form_pair_t);
        apr_off_t len;
        apr_size_t size;
        char *v;

        if (strcmp(f->name, name) != 0) {
            continue;
        }
        if (apr_brigade_length(f->value, 1, &len) != APR_SUCCESS || len < 0
            || len > FORM_MAX) {
            return NULL;
        }
        size = (apr_size_t)len;
        v = apr_palloc(p, size + 1);
        if (apr_brigade_flatten(f->value, v, &size) != APR_SUCCESS) {
            return NULL;
        }
        v[size] = 0;
        return v;
    }
    return NULL;
}

static int list_devices(request_rec *r, memds_store_t *st)
{
    apr_array_header_t *rows;
    int i;

    if (memds_store_devices(st, &rows, NULL) != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_set_content_type(r, "text/plain; charset=utf-8");
    ap_rputs("# account device last-seen wipe\n", r);
    for (i = 0; i < rows->nelts; ++i) {
        const memds_device_info_t *d = APR_ARRAY_IDX(rows, i,
                                                     memds_device_info_t *);
        ap_rprintf(r, "%s %s %s %s\n", d->account, d->devid, d->last_seen,
                   d->wipe ? d->wipe : "-");
    }
    ap_rputs("# POST action=wipe|enable&account=ACCOUNT&device=DEVID\n", r);
    return OK;
}

static int order(request_rec *r, memds_store_t *st)
{
    apr_array_header_t *pairs = NULL;
    const char *action, *account, *device;
    apr_status_t rv;

    if (ap_parse_form_data(r, NULL, &pairs, 8, FORM_MAX) != OK) {
        return HTTP_BAD_REQUEST;
    }
    action = field(pairs, "action", r->pool);
    account = field(pairs, "account", r->pool);
    device = field(pairs, "device", r->pool);
    if (action == NULL || account == NULL || device == NULL || !*account
        || !*device
        || (strcmp(action, "wipe") != 0 && strcmp(action, "enable") != 0)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      MEMDS_APLOGNO(00096) "memds-admin: a request of %s "
                                           "without action=wipe|enable, "
                                           "account and device: 400",
                                    r->user);
        return HTTP_BAD_REQUEST;
    }
    if (memds_store_begin(st) != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    rv = memds_store_device_order(st, account, device, action);
    if (rv == APR_SUCCESS) {
        rv = memds_store_commit(st);
    }
    else {
        memds_store_rollback(st);
    }
    if (rv == APR_ENOENT) {
        return HTTP_NOT_FOUND;
    }
    if (rv != APR_SUCCESS) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  MEMDS_APLOGNO(00097) "memds-admin: %s ordered %s of device "
                                       "%s of %s",
                                r->user, action, device, account);
    ap_set_content_type(r, "text/plain; charset=utf-8");
    ap_rprintf(r, "%s ordered for device %s of %s\n", action, device, account);
    return OK;
}

int memds_adminpage_handler(request_rec *r)
{
    memds_srv_conf *sc;
    memds_pgconn_t *conn;
    memds_store_t st;
    const char *err = NULL;
    int rc;

    if (r->handler == NULL || strcmp(r->handler, "memds-admin") != 0) {
        return DECLINED;
    }
    if (r->method_number != M_GET && r->method_number != M_POST) {
        r->allowed = AP_METHOD_BIT << M_GET | AP_METHOD_BIT << M_POST;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (r->user == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      MEMDS_APLOGNO(00095) "memds-admin: refused a request "
                                           "from %s without an authenticated "
                                           "user (give the location "
                                           "authentication and Require)",
                                    r->useragent_ip);
        return HTTP_FORBIDDEN;
    }
    sc = memds_srv_conf_get(r->server);
    if (sc->pgpool == NULL
        || memds_pgpool_acquire(&conn, sc->pgpool, &err, r->pool)
               != APR_SUCCESS) {
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        return HTTP_SERVICE_UNAVAILABLE;
    }
    memds_store_init(&st, conn, r->pool);
    rc = r->method_number == M_GET ? list_devices(r, &st) : order(r, &st);
    memds_pgpool_release(sc->pgpool, conn, rc == HTTP_SERVICE_UNAVAILABLE);
    return rc;
}
