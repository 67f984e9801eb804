/* memds_eng_push.c: the engine's part of push (docs/push.md): a device
 * registering its own channel in its DevInf (Ext X-memds-push, allowed by
 * MemDSPushSelfRegister), and the in-band notification: as a session
 * ends, the device's pending notifications that the session did not
 * satisfy become Alerts 206 in the server's last message. */
#include "ds/memds_engine_int.h"

#include <apr_lib.h>

/* How long a notification told in-band waits for the device to act on it
 * before its SAN goes (a device that acts starts a session at once; one
 * in a session gets no SAN). */
#define ENG_PUSH_HOLD_MS 5000

/* ------------------------------------------------ self-registration */

/* The device's X-memds-push Ext in di: *pn how many there are. */
static const memds_ext_t *push_ext(const memds_devinf_t *di, int *pn)
{
    const memds_ext_t *found = NULL;
    int i;

    *pn = 0;
    for (i = 0; di->exts && i < di->exts->nelts; ++i) {
        const memds_ext_t *x = APR_ARRAY_IDX(di->exts, i, memds_ext_t *);
        if (x->xnam && strcasecmp(x->xnam, MEMDS_PUSH_EXT) == 0) {
            found = found ? found : x;
            ++*pn;
        }
    }
    return found;
}

const char *eng_push_self_decide(const memds_engine_cfg_t *cfg,
                                 const memds_devinf_t *di,
                                 const char **pchannel, const char **paddress)
{
    const memds_ext_t *x;
    const char *kind, *why;
    int n, nv, i;

    *pchannel = *paddress = NULL;
    if (!cfg->push || di == NULL || (x = push_ext(di, &n)) == NULL) {
        return NULL;
    }
    if (!cfg->push_self_sms
        && (cfg->push_self_prefixes == NULL
            || cfg->push_self_prefixes->nelts == 0)) {
        return "MemDSPushSelfRegister is Off here";
    }
    nv = x->xvals ? x->xvals->nelts : 0;
    kind = nv > 0 ? APR_ARRAY_IDX(x->xvals, 0, const char *) : NULL;
    if (n > 1) {
        return "malformed: more than one " MEMDS_PUSH_EXT " Ext";
    }
    if (kind && strcmp(kind, "none") == 0 && nv == 1) {
        *pchannel = "none";
        return NULL;
    }
    if (kind == NULL || nv != 2
        || (strcmp(kind, "http") != 0 && strcmp(kind, "sms") != 0)) {
        return "malformed: XVal http URL, sms NUMBER or none expected";
    }
    *pchannel = kind;
    *paddress = APR_ARRAY_IDX(x->xvals, 1, const char *);
    if ((why = memds_push_channel_check(kind, *paddress)) != NULL) {
        *paddress = NULL;
        return why;
    }
    if (strcmp(kind, "sms") == 0) {
        return cfg->push_self_sms ? NULL
                                  : "sms is not allowed by "
                                    "MemDSPushSelfRegister here";
    }
    for (i = 0; cfg->push_self_prefixes && i < cfg->push_self_prefixes->nelts;
         ++i) {
        const char *pre = APR_ARRAY_IDX(cfg->push_self_prefixes, i,
                                        const char *);
        if (strncmp(*paddress, pre, strlen(pre)) == 0) {
            return NULL;
        }
    }
    return "the URL starts with no prefix of MemDSPushSelfRegister";
}

/* The address as the log shows it: at most 200 bytes. */
static const char *log_address(const char *a, apr_pool_t *p)
{
    return strlen(a) > 200
               ? apr_pstrcat(p, apr_pstrndup(p, a, 200), "...", NULL)
               : a;
}

apr_status_t eng_push_self_register(eng_t *e, const memds_devinf_t *di)
{
    const char *channel, *address;
    const char *why = eng_push_self_decide(e->cfg, di, &channel, &address);
    int none;
    apr_status_t rv;

    if (why) {
        e->resp->log_level = 4;
        e->resp->log_msg = apr_psprintf(
            e->p, MEMDS_LOGNO(00570) "device %s of %s: the push channel in its "
                                     "DevInf is refused (%s%s%s): %s",
                              e->dev.devid, e->dev.account,
                              channel ? channel : "?", address ? " " : "",
                              address ? log_address(address, e->p) : "", why);
        return APR_SUCCESS;
    }
    if (channel == NULL) {
        return APR_SUCCESS;
    }
    none = strcmp(channel, "none") == 0;
    rv = e->db->vt->push_register(e->db, e->dev.account, e->dev.devid,
                                  none ? NULL : channel, none ? NULL : address);
    if (rv != APR_SUCCESS && !(rv == APR_ENOENT && none)) {
        return eng_db_fail(e, "registering the device's push channel");
    }
    e->resp->log_level = 6;
    e->resp->log_msg = apr_psprintf(
        e->p,
        MEMDS_LOGNO(00571) "device %s of %s: push channel %s by its DevInf%s%s",
                    e->dev.devid, e->dev.account,
                    none ? (rv == APR_ENOENT ? "none (it had none)" : "removed")
                         : channel,
                    none ? "" : " ", none ? "" : log_address(address, e->p));
    return APR_SUCCESS;
}

/* ------------------------------------------- in-band notification */

/* Does the session's datastore bring the server's changes to the device
 * (not one-way or refresh from the client)? */
static int brings_changes(const memds_sstore_t *ss)
{
    return ss->alert_code != MEMDS_ALERT_ONE_WAY_CLIENT
           && ss->alert_code != MEMDS_ALERT_REFRESH_CLIENT;
}

/* An Alert telling the device to sync one of its datastores. */
static memds_cmd_t *inband_alert(eng_t *e, const memds_push_pend_t *r,
                                 const char *client_uri, const char *server_uri)
{
    memds_cmd_t *al = eng_cmd_new(e, MEMDS_CMD_ALERT);
    memds_item_t *it = eng_item_new(e->p);

    al->data = eng_code_text(e, MEMDS_ALERT_IS_SAN(r->sync_type)
                                    ? r->sync_type
                                    : MEMDS_ALERT_TWO_WAY_BY_SERVER);
    it->target = eng_loc(e->p, client_uri);
    it->source = eng_loc(e->p, server_uri);
    eng_push(&al->items, it, e->p);
    return al;
}

apr_status_t eng_push_complete(eng_t *e)
{
    apr_array_header_t *rows = NULL, *told, *alerts;
    const char *names = NULL;
    apr_status_t rv;
    int i;

    if (!e->cfg->push || ENG_WIPING(e)) {
        return eng_complete_session(e);
    }
    if (e->db->vt->push_pending(e->db, &rows, e->dev.device_id,
                                e->sess.session_pk)
        != APR_SUCCESS) {
        return eng_db_fail(e, "reading pending notifications");
    }
    told = apr_array_make(e->p, 2, sizeof(memds_push_pend_t *));
    alerts = apr_array_make(e->p, 2, sizeof(memds_cmd_t *));
    for (i = 0; i < rows->nelts; ++i) {
        const memds_push_pend_t *r = APR_ARRAY_IDX(rows, i,
                                                   memds_push_pend_t *);
        const memds_sstore_t *ss = eng_find_sstore(e, r->store);
        memds_syncstate_t st;

        memset(&st, 0, sizeof(st));
        if (ss && brings_changes(ss) && !r->in_session) {
            continue; /* this session brought what it stands for */
        }
        if (ss == NULL) {
            rv = eng_syncstate(e, &st, r->store);
            if (rv == APR_ENOENT) {
                continue;
            }
            if (rv != APR_SUCCESS) {
                return eng_db_fail(e, "reading anchors");
            }
        }
        APR_ARRAY_PUSH(told, const memds_push_pend_t *) = r;
        APR_ARRAY_PUSH(alerts, memds_cmd_t *) = inband_alert(e, r,
                                                             ss ? ss->client_uri
                                                                : st.client_uri,
                                                             ss ? ss->server_uri
                                                                : r->store);
        names = names ? apr_pstrcat(e->p, names, ", ", r->store, NULL)
                      : r->store;
    }
    if ((rv = eng_complete_session(e)) != APR_SUCCESS) {
        return rv;
    }
    /* Completing a sync removed its notification: the ones told stay
     * until the device syncs that datastore (a SAN follows if it does not
     * act on the Alert). */
    for (i = 0; i < told->nelts; ++i) {
        if (e->db->vt->push_keep(e->db, e->dev.device_id,
                                 APR_ARRAY_IDX(told, i,
                                               const memds_push_pend_t *),
                                 ENG_PUSH_HOLD_MS)
            != APR_SUCCESS) {
            return eng_db_fail(e, "keeping pending notifications");
        }
    }
    for (i = 0; i < alerts->nelts; ++i) {
        memds_cmd_t *al = APR_ARRAY_IDX(alerts, i, memds_cmd_t *);
        if (e->out) { /* the answer is assembled already: at its end */
            eng_number(e, al);
            APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = al;
        }
        else {
            APR_ARRAY_PUSH(e->cmds, memds_cmd_t *) = al;
        }
    }
    e->inband = alerts->nelts;
    if (names) {
        e->resp->log_level = 6;
        e->resp->log_msg = apr_psprintf(
            e->p, MEMDS_LOGNO(00572) "device %s of %s session %s: in-band "
                                     "notification (Alert 206) for %s",
                              e->dev.devid, e->dev.account, e->sess.session_id,
                              names);
    }
    return APR_SUCCESS;
}
