/* memds_push.c: push delivery (memds_push.h). */
#include "push/memds_push.h"
#include "store/memds_pushstore.h"
#include "syncml/memds_san.h"
#include "backends/memds_http.h"
#include "util/memds_buf.h"

#include <apr_base64.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <string.h>

#define SAN_CTYPE "application/vnd.syncml.ds.notification"

/* The SAN of one device's due notifications, or NULL with *why. */
static const char *san_of(apr_size_t *plen, const memds_push_due_t *d,
                          const memds_push_cfg_t *cfg, const char **why,
                          apr_pool_t *p)
{
    const char *id = d->server_id ? d->server_id : cfg->server_id;
    memds_san_t *san;
    memds_buf_t out;
    unsigned char sid[2] = { 0, 0 };
    char *nonce = NULL;
    apr_size_t nlen = 0;
    int i;

    if (id == NULL) {
        *why = "no server identifier (MemDSServerID, or memds-admin "
               "server-password --server-id)";
        return NULL;
    }
    if (d->password == NULL) {
        *why = "no server password for the device (memds-admin "
               "server-password): the SAN digest needs it";
        return NULL;
    }
    if (d->nonce && *d->nonce) {
        nonce = apr_palloc(p, (apr_size_t)apr_base64_decode_len(d->nonce) + 1);
        nlen = (apr_size_t)apr_base64_decode(nonce, d->nonce);
    }
    san = memds_san_make(id, p);
    san->ui_mode = d->ui_mode;
    san->initiator = MEMDS_SAN_INIT_SERVER;
    apr_generate_random_bytes(sid, sizeof(sid));
    san->session_id = (unsigned)sid[0] << 8 | sid[1];
    for (i = 0; i < d->stores->nelts && i < MEMDS_SAN_MAX_SYNCS; ++i) {
        memds_san_add_sync(san, d->sync_type, MEMDS_SAN_CT_EMAIL,
                           APR_ARRAY_IDX(d->stores, i, const char *), p);
    }
    memds_buf_init(&out, 128, p);
    if (memds_san_build(&out, san, d->password, nonce, nlen, why, p)
        != APR_SUCCESS) {
        return NULL;
    }
    *plen = out.len;
    return out.data;
}

apr_status_t memds_push_run(int *psent, memds_store_t *st,
                            const memds_push_cfg_t *cfg, int limit,
                            apr_pool_t *p)
{
    apr_array_header_t *due;
    int i;

    *psent = 0;
    if (memds_store_begin(st) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_push_due(st, &due, limit) != APR_SUCCESS) {
        memds_store_rollback(st);
        return APR_EGENERAL;
    }
    for (i = 0; i < due->nelts; ++i) {
        const memds_push_due_t *d = APR_ARRAY_IDX(due, i, memds_push_due_t *);
        const char *why = NULL, *san;
        apr_size_t len = 0;
        int status = 0;

        san = san_of(&len, d, cfg, &why, p);
        if (san != NULL
            && memds_http_post(&status, d->address, SAN_CTYPE, san, len,
                               cfg->timeout_ms, &why, p)
                   == APR_SUCCESS
            && status >= 200 && status < 300) {
            if (memds_push_delivered(st, d->device_id, d->stores)
                != APR_SUCCESS) {
                break;
            }
            ++*psent;
            memds_logf(cfg->log, MEMDS_LOG_INFO, APR_SUCCESS,
                       MEMDS_LOGNO(00610) "push: SAN for %d datastore%s sent "
                                          "to device %s of %s (%s)",
                                   d->stores->nelts,
                                   d->stores->nelts == 1 ? "" : "s", d->devid,
                                   d->account, d->address);
            continue;
        }
        if (san != NULL && why == NULL) {
            why = apr_psprintf(p, "the receiver answered %d", status);
        }
        if (memds_push_failed(st, d->device_id, why) != APR_SUCCESS) {
            break;
        }
        memds_logf(cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                   MEMDS_LOGNO(00611) "push: notification for device %s of %s "
                                      "not delivered (attempt %d, kept and "
                                      "retried): %s",
                               d->devid, d->account, d->attempts + 1, why);
    }
    if (i < due->nelts) {
        memds_store_rollback(st);
        return APR_EGENERAL;
    }
    return memds_store_commit(st);
}
