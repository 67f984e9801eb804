/* memds_eng_map.c: the engine's package 5: the device's statuses for the
 * items we sent, its Map of our GUIDs to its LUIDs, and completing the
 * session (anchors and change positions become current). */
#include "ds/memds_engine_int.h"

/* The client's Statuses for our item commands: collected here, stored
 * together by flush_statuses. 213 (a chunk arrived) is not a result. */
apr_status_t eng_do_status(eng_t *e, const memds_cmd_t *cmd)
{
    int code = eng_code_of(cmd->data);
    const char *name = cmd->cmd;
    const char *guid, *luid;

    if (!name
        || (strcmp(name, "Add") != 0 && strcmp(name, "Replace") != 0
            && strcmp(name, "Delete") != 0)
        || code == MEMDS_ST_CHUNK_ACCEPTED) {
        return APR_SUCCESS;
    }
    guid = cmd->source_refs && cmd->source_refs->nelts
               ? APR_ARRAY_IDX(cmd->source_refs, 0, const char *)
               : NULL;
    luid = cmd->target_refs && cmd->target_refs->nelts
               ? APR_ARRAY_IDX(cmd->target_refs, 0, const char *)
               : NULL;
    if (!guid && !luid) {
        return APR_SUCCESS;
    }
    APR_ARRAY_PUSH(e->st_refs, const char *) = guid;
    APR_ARRAY_PUSH(e->st_luids, const char *) = luid;
    APR_ARRAY_PUSH(e->st_codes, apr_int64_t) = code;
    return APR_SUCCESS;
}

apr_status_t eng_flush_statuses(eng_t *e)
{
    if (e->st_codes->nelts
        && e->db->vt->queue_status_many(e->db, e->sess.session_pk,
                                        (const char *const *)e->st_refs->elts,
                                        (const char *const *)e->st_luids->elts,
                                        (const apr_int64_t *)e->st_codes->elts,
                                        e->st_codes->nelts)
               != APR_SUCCESS) {
        return eng_db_fail(e, "recording statuses");
    }
    if (e->st_codes->nelts && eng_quarantine_note(e) != APR_SUCCESS) {
        return APR_EGENERAL; /* (MemDSQuarantine) */
    }
    e->st_codes->nelts = e->st_refs->nelts = e->st_luids->nelts = 0;
    return APR_SUCCESS;
}

apr_status_t eng_do_map(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = eng_status_for(e, cmd, MEMDS_ST_OK);
    memds_sstore_t *ss;
    const char **guids, **luids;
    int i, n, k = 0;

    eng_add_ref(&st->target_refs, cmd->target ? cmd->target->uri : NULL, e->p);
    eng_add_ref(&st->source_refs, cmd->source ? cmd->source->uri : NULL, e->p);
    ss = eng_find_sstore(e,
                         eng_store_name(cmd->target ? cmd->target->uri : NULL,
                                        e->p));
    if (ss == NULL) {
        st->data = eng_code_text(e, MEMDS_ST_NOT_FOUND);
        eng_reply(e, cmd, st);
        return APR_SUCCESS;
    }
    n = cmd->map_items ? cmd->map_items->nelts : 0;
    guids = apr_palloc(e->p, sizeof(char *) * (apr_size_t)(n + 1));
    luids = apr_palloc(e->p, sizeof(char *) * (apr_size_t)(n + 1));
    for (i = 0; i < n; ++i) {
        const memds_mapitem_t *mi = APR_ARRAY_IDX(cmd->map_items, i,
                                                  memds_mapitem_t *);
        const char *guid = mi->target;
        if (guid[0] == '#') {
            memds_qitem_t q;
            apr_status_t rv = e->db->vt->queue_find(e->db, &q,
                                                    e->sess.session_pk,
                                                    ss->store, guid, NULL);
            if (rv == APR_ENOENT) {
                st->data = eng_code_text(
                    e,
                    MEMDS_ST_NOT_FOUND); /* a temporary id we never gave out */
                continue;
            }
            if (rv != APR_SUCCESS) {
                return eng_db_fail(e, "translating a temporary id");
            }
            guid = q.guid;
        }
        guids[k] = guid;
        luids[k++] = mi->source;
    }
    if (e->db->vt->map_put_many(e->db, e->dev.device_id, ss->store, guids,
                                luids, k)
        != APR_SUCCESS) {
        return eng_db_fail(e, "storing maps");
    }
    eng_reply(e, cmd, st);
    return APR_SUCCESS;
}

/* Anchors become current only when the client's last package is done. */
apr_status_t eng_complete_session(eng_t *e)
{
    int i;

    for (i = 0; e->sstores && i < e->sstores->nelts; ++i) {
        const memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i,
                                                 memds_sstore_t *);
        memds_syncstate_t state, old;
        int failed = 0;
        apr_status_t rv;

        if (e->db->vt->queue_count_failed(e->db, &failed, e->sess.session_pk,
                                          ss->store)
            != APR_SUCCESS) {
            return eng_db_fail(e, "checking item results");
        }
        if (ENG_WIPING(e) && ss->queue_built) {
            /* Remote wipe: the datastore is done when the device took every
             * Delete; its maps and anchors go (the device is "wiped" when
             * none is left). */
            int left = 0;
            if (failed) {
                continue; /* the next session deletes what is left */
            }
            if (e->db->vt->wipe_store(e->db, e->dev.device_id, ss->store, &left)
                != APR_SUCCESS) {
                return eng_db_fail(e, "finishing a wipe");
            }
            eng_syncstate_forget(e, ss->store);
            e->resp->log_level = 5;
            e->resp->log_msg = apr_psprintf(
                e->p,
                MEMDS_LOGNO(00547) "device %s of %s: datastore %s wiped; %d "
                                   "datastore%s left%s",
                            e->dev.devid, e->dev.account, ss->store, left,
                            left == 1 ? "" : "s",
                            left ? "" : ": the device is wiped and refused");
            continue;
        }
        rv = eng_syncstate(e, &old, ss->store);
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return eng_db_fail(e, "reading anchors");
        }
        state.client_uri = ss->client_uri;
        state.last_client_anchor = ss->client_next;
        state.last_server_anchor = ss->server_next;
        /* An item the device did not take is sent again next time: keep
         * the old change position then. */
        state.filter = eng_filter_remember(e, ss,
                                           rv == APR_SUCCESS ? old.filter
                                                             : NULL);
        state.last_seq = (failed && rv == APR_SUCCESS) ? old.last_seq
                         : ss->snapshot_seq >= 0
                             ? ss->snapshot_seq
                             : (rv == APR_SUCCESS ? old.last_seq : 0);
        if (e->db->vt->syncstate_put(e->db, e->dev.device_id, ss->store, &state)
            != APR_SUCCESS) {
            return eng_db_fail(e, "storing anchors");
        }
        eng_syncstate_forget(e, ss->store);
    }
    e->sess.phase = PH_DONE;
    e->sess.finished = 1;
    return eng_throttle_complete(e); /* failures in a row, quarantine */
}
