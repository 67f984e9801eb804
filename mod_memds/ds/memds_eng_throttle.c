/* memds_eng_throttle.c: the engine's limits, autoblock and quarantine
 * (docs/throttle.md).
 *
 * Limits: a new session reads what its device and account used (one
 * statement: memds.session_usage and memds.sessions) and is refused over a
 * limit with SyncML 503 and an HTTP Retry-After; nothing of the refused
 * session is kept (the transaction is rolled back), and a session already
 * running is never cut.
 * Autoblock: failed sessions in a row (a wrong password, a protocol error
 * or an internal error in a session) are counted outside the request's
 * transaction; the MemDSAutoBlock-th holds the device (SyncML 403) for a
 * time or until an administrator unblocks it.
 * Quarantine: the device's error statuses for a server item are counted
 * per device, datastore and item across sessions; the MemDSQuarantine-th
 * holds it, as does an object that cannot be built: a held item is left
 * out of the device's queue (and does not keep the device's change
 * position back), so the rest of the folder keeps syncing; a released one
 * is queued again. */
#include "ds/memds_engine_int.h"

/* The first limit of c that u reaches (its description, *pwait the
 * seconds until it may pass), or NULL. */
static const char *over_limit(const memds_engine_cfg_t *c,
                              const memds_usage_t *u, int *pwait,
                              apr_pool_t *p)
{
    if (c->limit_dev_min > 0 && u->dev_min >= c->limit_dev_min) {
        *pwait = u->dev_min_wait;
        return apr_psprintf(p, "%d sessions per minute of this device",
                            c->limit_dev_min);
    }
    if (c->limit_acct_min > 0 && u->acct_min >= c->limit_acct_min) {
        *pwait = u->acct_min_wait;
        return apr_psprintf(p, "%d sessions per minute of this account",
                            c->limit_acct_min);
    }
    if (c->limit_dev_conc > 0 && u->dev_conc >= c->limit_dev_conc) {
        *pwait = 60;
        return apr_psprintf(p, "%d sessions at a time of this device",
                            c->limit_dev_conc);
    }
    if (c->limit_acct_conc > 0 && u->acct_conc >= c->limit_acct_conc) {
        *pwait = 60;
        return apr_psprintf(p, "%d sessions at a time of this account",
                            c->limit_acct_conc);
    }
    if (c->limit_dev_bytes > 0 && u->dev_bytes >= c->limit_dev_bytes) {
        *pwait = u->dev_bytes_wait;
        return apr_psprintf(p, "%" APR_INT64_T_FMT " bytes per hour of this "
                               "device",
                            c->limit_dev_bytes);
    }
    if (c->limit_acct_bytes > 0 && u->acct_bytes >= c->limit_acct_bytes) {
        *pwait = u->acct_bytes_wait;
        return apr_psprintf(p, "%" APR_INT64_T_FMT " bytes per hour of this "
                               "account",
                            c->limit_acct_bytes);
    }
    return NULL;
}

apr_status_t eng_throttle_check(eng_t *e)
{
    memds_usage_t u;
    const char *limit, *why;
    int wait = 0;

    const memds_engine_cfg_t *c = e->cfg;
    unsigned want = (c->limit_dev_min > 0 ? MEMDS_USAGE_DEV_MIN : 0)
                    | (c->limit_acct_min > 0 ? MEMDS_USAGE_ACCT_MIN : 0)
                    | (c->limit_dev_conc > 0 ? MEMDS_USAGE_DEV_CONC : 0)
                    | (c->limit_acct_conc > 0 ? MEMDS_USAGE_ACCT_CONC : 0)
                    | (c->limit_dev_bytes > 0 ? MEMDS_USAGE_DEV_BYTES : 0)
                    | (c->limit_acct_bytes > 0 ? MEMDS_USAGE_ACCT_BYTES : 0);

    if (e->db->vt->limits_check(e->db, &u, want, e->dev.device_id,
                                e->dev.account, e->dev.devid)
        != APR_SUCCESS) {
        return eng_db_fail(e, "reading the device's usage");
    }
    if (u.held) {
        e->resp->blocked = 1;
        e->resp->retry_after = u.held_wait > 0 ? u.held_wait : 0;
        why = apr_psprintf(e->p, "this device is blocked (%s)%s",
                           u.held_reason ? u.held_reason : "by the server",
                           u.held_wait > 0 ? apr_psprintf(e->p, " for %d s",
                                                          u.held_wait)
                                           : " until an administrator "
                                             "unblocks it");
        e->resp->log_level = 5;
        e->resp->log_msg = apr_psprintf(
            e->p,
            MEMDS_LOGNO(00620) "device %s of %s: %s: session refused (403)",
                        e->dev.devid, e->dev.account, why);
        return eng_refuse(e, MEMDS_ST_FORBIDDEN, MEMDS_ST_FORBIDDEN, why)
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
    }
    limit = over_limit(e->cfg, &u, &wait, e->p);
    if (limit == NULL) {
        return APR_SUCCESS;
    }
    e->resp->throttled = 1;
    e->resp->retry_after = wait > 0 ? wait : 1;
    why = apr_psprintf(e->p, "limit of %s reached: retry after %d s", limit,
                       e->resp->retry_after);
    e->resp->log_level = 5;
    e->resp->log_msg = apr_psprintf(
        e->p, MEMDS_LOGNO(00621) "device %s of %s: %s: session refused (503)",
                          e->dev.devid, e->dev.account, why);
    return eng_refuse(e, MEMDS_ST_SERVICE_UNAVAILABLE,
                      MEMDS_ST_SERVICE_UNAVAILABLE, why)
                   == APR_SUCCESS
               ? APR_EACCES
               : APR_EGENERAL;
}

/* After a 503 for an item whose fetch broke the backend's connection
 * (e->suspect_*): count it, outside the rolled back transaction; the
 * MemDSQuarantine-th time holds it, and the device's retry goes on
 * without it. */
static void quarantine_suspect(eng_t *e)
{
    int held = 0;

    if (e->suspect_guid == NULL || e->cfg->quarantine <= 0) {
        return;
    }
    e->db->vt->rollback(e->db);
    if (e->db->vt->quarantine_count(
            e->db, &held, e->dev.device_id, e->suspect_store, e->suspect_guid,
            e->suspect_status,
            apr_psprintf(e->p, "fetching it failed (%d): %s",
                         e->suspect_status,
                         e->suspect_reason ? e->suspect_reason : "?"),
            e->cfg->quarantine)
            != APR_SUCCESS
        || !held) {
        e->db->vt->rollback(e->db);
        return; /* (the request's own line says what happened) */
    }
    e->resp->log_level = 4;
    e->resp->log_msg = apr_psprintf(
        e->p,
        MEMDS_LOGNO(00625) "device %s of %s: item %s of %s put in quarantine "
                           "after its fetch failed %d times: %s (answered "
                           "503; the retry goes on without it)",
                    e->dev.devid, e->dev.account, e->suspect_guid,
                    e->suspect_store, e->cfg->quarantine,
                    e->suspect_reason ? e->suspect_reason : "?");
}

void eng_throttle_after(eng_t *e)
{
    const char *account = e->fail_account, *why = e->fail_why;
    const char *devid = e->in && e->in->hdr.source ? e->in->hdr.source->uri
                                                   : NULL;
    int held = 0;

    if (e->db == NULL) {
        return;
    }
    quarantine_suspect(e);
    if (e->cfg->autoblock <= 0 || devid == NULL) {
        return;
    }
    if (why == NULL && e->sess.account
        && (e->refused_code == MEMDS_ST_BAD_REQUEST
            || e->refused_code == MEMDS_ST_INVALID_CREDENTIALS)) {
        account = e->sess.account;
        why = apr_psprintf(e->p, "protocol error (%d)", e->refused_code);
    }
    else if (why == NULL && e->resp->http_status == 500 && e->dev.account) {
        account = e->dev.account;
        why = "internal error (500)";
    }
    if (why == NULL || account == NULL) {
        return;
    }
    /* (after a refusal or a failure: outside the request's transaction) */
    e->db->vt->rollback(e->db);
    if (e->db->vt->device_failed(e->db, &held, account, devid,
                                 e->cfg->autoblock, e->cfg->autoblock_secs,
                                 apr_psprintf(e->p, "%d failed sessions in a "
                                                    "row, the last: %s",
                                              e->cfg->autoblock, why))
        != APR_SUCCESS) {
        e->db->vt->rollback(e->db);
        return; /* (the request's own line says what happened) */
    }
    if (held) {
        e->resp->log_level = 4;
        e->resp->log_msg = apr_psprintf(
            e->p,
            MEMDS_LOGNO(00622) "device %s of %s blocked after %d failed "
                               "sessions in a row (the last: %s) %s",
                        devid, account, e->cfg->autoblock, why,
                        e->cfg->autoblock_secs > 0
                            ? apr_psprintf(e->p, "for %d s",
                                           e->cfg->autoblock_secs)
                            : "until an administrator unblocks it "
                              "(memds-admin unblock)");
    }
}

apr_status_t eng_throttle_complete(eng_t *e)
{
    int i;

    for (i = 0; e->cfg->quarantine > 0 && e->sstores && i < e->sstores->nelts;
         ++i) {
        const memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i,
                                                 memds_sstore_t *);
        if (ss->queue_built
            && e->db->vt->quarantine_done(e->db, e->sess.session_pk,
                                          e->dev.device_id, ss->store)
                   != APR_SUCCESS) {
            return eng_db_fail(e, "updating the quarantine");
        }
    }
    if (e->cfg->autoblock > 0
        && e->db->vt->device_reset(e->db, e->dev.account, e->dev.devid)
               != APR_SUCCESS) {
        return eng_db_fail(e, "resetting the failed sessions");
    }
    return APR_SUCCESS;
}

apr_status_t eng_quarantine_note(eng_t *e)
{
    apr_array_header_t *rows = NULL;
    const apr_int64_t *codes = (const apr_int64_t *)e->st_codes->elts;
    const memds_quar_t *first = NULL;
    int i, errors = 0, held = 0;

    for (i = 0; i < e->st_codes->nelts; ++i) {
        errors += codes[i] >= 300 && codes[i] != MEMDS_ST_ALREADY_EXISTS;
    }
    if (e->cfg->quarantine <= 0 || errors == 0) {
        return APR_SUCCESS;
    }
    if (e->db->vt->quarantine_note(e->db, &rows, e->sess.session_pk,
                                   e->dev.device_id,
                                   (const char *const *)e->st_refs->elts,
                                   (const char *const *)e->st_luids->elts,
                                   codes, e->st_codes->nelts,
                                   e->cfg->quarantine)
        != APR_SUCCESS) {
        return eng_db_fail(e, "counting failed items");
    }
    for (i = 0; i < rows->nelts; ++i) {
        const memds_quar_t *q = APR_ARRAY_IDX(rows, i, memds_quar_t *);
        if (q->newly_held) {
            first = first ? first : q;
            ++held;
        }
    }
    if (first) {
        e->resp->log_level = 4;
        e->resp->log_msg = apr_psprintf(
            e->p,
            MEMDS_LOGNO(00623) "device %s of %s: item %s of %s put in "
                               "quarantine after %d error statuses (the "
                               "last: %d)%s; memds-admin quarantine shows "
                               "it",
                        e->dev.devid, e->dev.account, first->guid,
                        first->store, first->count, first->last_status,
                        held > 1 ? apr_psprintf(e->p, ", and %d more item%s",
                                                held - 1, held > 2 ? "s" : "")
                                 : "");
    }
    return APR_SUCCESS;
}

apr_status_t eng_quarantine_apply(eng_t *e, const memds_sstore_t *ss,
                                  apr_hash_t *maps, apr_array_header_t *queue,
                                  int *pn)
{
    apr_hash_t *set, *queued;
    apr_hash_index_t *hi;
    int i, k = 0;

    if (e->db->vt->quarantine_of(e->db, &set, e->dev.device_id, ss->store)
        != APR_SUCCESS) {
        return eng_db_fail(e, "reading the quarantine");
    }
    if (apr_hash_count(set) == 0) {
        return APR_SUCCESS;
    }
    queued = apr_hash_make(e->p);
    for (i = 0; i < queue->nelts; ++i) {
        memds_qitem_t *q = APR_ARRAY_IDX(queue, i, memds_qitem_t *);
        const char *state = apr_hash_get(set, q->guid, APR_HASH_KEY_STRING);
        if (state && strcmp(state, "held") == 0 && !ENG_Q_IS_DELETE(q->op)) {
            continue; /* left out of this device's syncs */
        }
        apr_hash_set(queued, q->guid, APR_HASH_KEY_STRING, q);
        APR_ARRAY_IDX(queue, k++, memds_qitem_t *) = q;
    }
    queue->nelts = k;
    for (hi = apr_hash_first(e->p, set); hi; hi = apr_hash_next(hi)) {
        const char *guid = apr_hash_this_key(hi);
        const char *luid = maps ? apr_hash_get(maps, guid, APR_HASH_KEY_STRING)
                                : NULL;
        memds_qitem_t *q;
        if (strcmp(apr_hash_this_val(hi), "released") != 0
            || apr_hash_get(queued, guid, APR_HASH_KEY_STRING)) {
            continue;
        }
        /* released by the administrator: sent again */
        q = apr_pcalloc(e->p, sizeof(*q));
        q->store = ss->store;
        q->n = ++*pn;
        q->guid = guid;
        q->luid = luid;
        q->op = luid ? MEMDS_Q_REPLACE : MEMDS_Q_ADD;
        APR_ARRAY_PUSH(queue, memds_qitem_t *) = q;
    }
    return APR_SUCCESS;
}

apr_status_t eng_quarantine_unbuildable(eng_t *e, const memds_sstore_t *ss,
                                        const memds_qitem_t *q, memds_ds_t *ds)
{
    const char *reason;
    int held = 0;

    /* 0: the store; 503: the backend is unreachable; 401: its login. Any
     * other status is this item's. */
    if (ds->status <= 0 || ds->status == MEMDS_ST_SERVICE_UNAVAILABLE
        || ds->status == MEMDS_ST_INVALID_CREDENTIALS) {
        if (ds->item_failed && ds->status > 0) {
            /* this message's own fetch broke a working connection: the
             * request answers 503; counted after its rollback */
            e->suspect_store = ss->store;
            e->suspect_guid = q->guid;
            e->suspect_status = ds->status;
            e->suspect_reason = ds->reason;
        }
        return APR_EAGAIN;
    }

    reason = apr_psprintf(e->p, "the object cannot be built (%d): %s",
                          ds->status, ds->reason ? ds->reason : "?");
    if (e->db->vt->quarantine_count(e->db, &held, e->dev.device_id, ss->store,
                                    q->guid, ds->status, reason, 1)
        != APR_SUCCESS) {
        return eng_db_fail(e, "putting an item in quarantine");
    }
    e->resp->log_level = 4;
    e->resp->log_msg = apr_psprintf(
        e->p,
        MEMDS_LOGNO(00624) "device %s of %s: item %s of %s put in "
                           "quarantine: %s; memds-admin quarantine shows it",
                    e->dev.devid, e->dev.account, q->guid, ss->store, reason);
    return APR_SUCCESS;
}
