/* memds_push.c: push delivery (memds_push.h). */
#include "push/memds_push.h"
#include "store/memds_pushstore.h"
#include "syncml/memds_san.h"
#include "syncml/memds_xml.h"
#include "push/memds_wappush.h"
#include "backends/memds_http.h"
#include "util/memds_buf.h"

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <string.h>

#define SAN_CTYPE "application/vnd.syncml.ds.notification"
#define SAN_CTYPE_LEGACY "application/vnd.syncml+wbxml"

/* Whether the device speaks DS 1.0/1.1 only (the VerDTD of the DevInf it
 * sent): it gets the legacy SAN, a SyncML 1.1 message (docs/san.md). */
static int legacy_device(const memds_push_due_t *d, apr_pool_t *p)
{
    memds_tree_t *t;
    memds_codec_err_t err;
    memds_devinf_t *di;

    if (d->devinf == NULL
        || memds_xml_decode_devinf(&t, d->devinf, d->devinf_len, &err, p)
               != APR_SUCCESS
        || memds_devinf_from_tree(&di, t->root, &err, p) != APR_SUCCESS
        || di->verdtd == NULL) {
        return 0;
    }
    return strcmp(di->verdtd, "1.1") == 0 || strcmp(di->verdtd, "1.0") == 0;
}

/* The SAN of one device's due notifications, or NULL with *why; *plegacy:
 * the legacy form (a WBXML SyncML 1.1 message, no digest). */
static const char *san_of(apr_size_t *plen, int *plegacy,
                          const memds_push_due_t *d,
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
    *plegacy = legacy_device(d, p);
    if (d->password == NULL && !*plegacy) {
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
    if (*plegacy ? memds_san_build_legacy(&out, san, d->devid, MEMDS_ENC_WBXML,
                                          why, p)
                       != APR_SUCCESS
                 : memds_san_build(&out, san, d->password, nonce, nlen, why, p)
                       != APR_SUCCESS) {
        return NULL;
    }
    *plen = out.len;
    return out.data;
}

/* Percent-encoding of len bytes (everything but the unreserved
 * characters of RFC 3986), for a query parameter. */
static const char *pct(const void *data, apr_size_t len, apr_pool_t *p)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = data;
    char *out = apr_palloc(p, len * 3 + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < len; ++i) {
        if (apr_isalnum(s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_'
            || s[i] == '~') {
            *o++ = (char)s[i];
        }
        else {
            *o++ = '%';
            *o++ = hex[s[i] >> 4];
            *o++ = hex[s[i] & 15];
        }
    }
    *o = 0;
    return out;
}

/* The SAN as WAP Push over SMS: one sendsms call per SMS (8-bit data with
 * the UDH). *pn: SMS accepted by Kannel. */
static apr_status_t send_sms(int *pn, const memds_push_due_t *d,
                             const char *san, apr_size_t len, int legacy,
                             const memds_push_cfg_t *cfg, const char **why,
                             apr_pool_t *p)
{
    apr_array_header_t *segs;
    unsigned char rnd[2] = { 0, 0 };
    const char *base;
    int i;

    *pn = 0;
    if (cfg->kannel_url == NULL) {
        *why = "the device's channel is sms but there is no MemDSKannelURL";
        return APR_EGENERAL;
    }
    apr_generate_random_bytes(rnd, sizeof(rnd));
    if ((legacy ? memds_wappush_sms_legacy(&segs, san, len, rnd[0], rnd[1],
                                           why, p)
                : memds_wappush_sms(&segs, san, len, rnd[0], rnd[1], why, p))
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    base = apr_pstrcat(p, cfg->kannel_url,
                       strchr(cfg->kannel_url, '?') ? "&" : "?",
                       cfg->kannel_user ? "username=" : "",
                       cfg->kannel_user
                           ? pct(cfg->kannel_user, strlen(cfg->kannel_user), p)
                           : "",
                       cfg->kannel_user ? "&password=" : "",
                       cfg->kannel_user
                           ? pct(cfg->kannel_pass, strlen(cfg->kannel_pass), p)
                           : "",
                       cfg->kannel_user ? "&" : "",
                       "to=", pct(d->address, strlen(d->address), p),
                       "&coding=1", NULL);
    for (i = 0; i < segs->nelts; ++i) {
        const memds_sms_seg_t *s = &APR_ARRAY_IDX(segs, i, memds_sms_seg_t);
        const char *body = NULL;
        int status = 0;

        if (memds_http_get(&status,
                           apr_pstrcat(p, base,
                                       "&udh=", pct(s->udh, s->udh_len, p),
                                       "&text=", pct(s->ud, s->ud_len, p),
                                       NULL),
                           cfg->timeout_ms, &body, why, p)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (status < 200 || status > 299) {
            char *c, *b = apr_pstrdup(p, body ? body : "");

            for (c = b; *c; ++c) { /* one line in the log */
                if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                    *c = ' ';
                }
            }
            *why = apr_psprintf(p,
                                "Kannel's sendsms answered %d (%s) to SMS "
                                "%d of %d",
                                status, b, i + 1, segs->nelts);
            return APR_EGENERAL;
        }
        ++*pn;
    }
    return APR_SUCCESS;
}

/* Deliver the SAN over the device's channel; *pwhere: what it reached. */
static apr_status_t deliver(const char **pwhere, const memds_push_due_t *d,
                            const char *san, apr_size_t len, int legacy,
                            const memds_push_cfg_t *cfg, const char **why,
                            apr_pool_t *p)
{
    int status = 0, n = 0;

    if (strcmp(d->channel, "sms") == 0) {
        if (send_sms(&n, d, san, len, legacy, cfg, why, p) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        *pwhere = apr_psprintf(p, "%d SMS to %s", n, d->address);
        return APR_SUCCESS;
    }
    if (memds_http_post(&status, d->address,
                        legacy ? SAN_CTYPE_LEGACY : SAN_CTYPE, san, len,
                        cfg->timeout_ms, why, p)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (status < 200 || status > 299) {
        *why = apr_psprintf(p, "the receiver answered %d", status);
        return APR_EGENERAL;
    }
    *pwhere = d->address;
    return APR_SUCCESS;
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
        const char *why = NULL, *san, *where = NULL;
        apr_size_t len = 0;
        apr_time_t t0 = apr_time_now();
        int ok, legacy = 0;

        san = san_of(&len, &legacy, d, cfg, &why, p);
        ok = san != NULL
             && deliver(&where, d, san, len, legacy, cfg, &why, p)
                    == APR_SUCCESS;
        memds_stats_observe(cfg->stats, MEMDS_OP_PUSH_SEND,
                            apr_time_now() - t0, !ok);
        if (ok) {
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
                                   d->account, where);
            continue;
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
