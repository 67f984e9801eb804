/* memds_eng_alert.c: the engine's alerts: sync alerts (200-210) agree on
 * a sync mode per datastore (508 and the slow/refresh variant when the
 * anchors differ), resume (225), suspend (224), next message (222). */
#include "ds/memds_engine_int.h"
#include <apr_time.h>

/* Server anchors: UTC time plus a random part, so two sessions in the same
 * second still differ. */
static const char *new_anchor(apr_pool_t *p)
{
    apr_time_exp_t t;
    char buf[32];
    apr_size_t n;
    const char *tok = eng_new_token(p);

    apr_time_exp_gmt(&t, apr_time_now());
    apr_strftime(buf, &n, sizeof(buf), "%Y%m%dT%H%M%SZ", &t);
    return apr_pstrcat(p, buf, "-", tok ? apr_pstrndup(p, tok, 6) : "0", NULL);
}

/* Alert codes 206-210 are the server-alerted forms of 200, 202-205. */
static int base_mode(int code)
{
    switch (code) {
    case MEMDS_ALERT_TWO_WAY_BY_SERVER: return MEMDS_ALERT_TWO_WAY;
    case MEMDS_ALERT_ONE_WAY_CLIENT_BY_SERVER:
        return MEMDS_ALERT_ONE_WAY_CLIENT;
    case MEMDS_ALERT_REFRESH_CLIENT_BY_SERVER:
        return MEMDS_ALERT_REFRESH_CLIENT;
    case MEMDS_ALERT_ONE_WAY_SERVER_BY_SERVER:
        return MEMDS_ALERT_ONE_WAY_SERVER;
    case MEMDS_ALERT_REFRESH_SERVER_BY_SERVER:
        return MEMDS_ALERT_REFRESH_SERVER;
    default: return code;
    }
}

/* A Filter on the Alert's Target (docs/filters.md) that the server cannot
 * apply: never a silent 200. 415 for an unknown grammar, 422 for a bad
 * one, 406 for a field or a datastore the server cannot filter. */
static int filter_refused(eng_t *e, int st, const char *why, const char *name)
{
    e->resp->log_level = 6;
    e->resp->log_msg = apr_psprintf(e->p,
                                    MEMDS_LOGNO(00519) "device %s datastore "
                                                       "%s: filter refused "
                                                       "with %d: %s",
                                                e->dev.devid, name, st,
                                                why ? why : "?");
    return st;
}

static apr_status_t sync_alert(eng_t *e, const memds_cmd_t *cmd, int code)
{
    int i;

    for (i = 0; cmd->items && i < cmd->items->nelts; ++i) {
        const memds_item_t *it = APR_ARRAY_IDX(cmd->items, i, memds_item_t *);
        memds_cmd_t *st = eng_status_for(e, cmd, MEMDS_ST_OK), *al;
        memds_item_t *sit, *ait;
        memds_sstore_t *ss;
        memds_syncstate_t state;
        const char *name, *next = NULL, *last = NULL, *server_last = NULL;
        int mode = base_mode(code), have_state = 0, effective;
        memds_sstore_t *resumed = NULL;
        eng_filter_t *flt = NULL;
        apr_int64_t old_pk = 0;
        apr_status_t rv;

        eng_add_ref(&st->target_refs, it->target ? it->target->uri : NULL,
                    e->p);
        eng_add_ref(&st->source_refs, it->source ? it->source->uri : NULL,
                    e->p);
        name = eng_store_name(it->target ? it->target->uri : NULL, e->p);
        if (!*name && it->source) {
            name = eng_store_name(it->source->uri, e->p);
        }
        if (!*name || !it->source || !it->source->uri) {
            st->data = eng_code_text(e, MEMDS_ST_NOT_FOUND);
            eng_reply(e, cmd, st);
            continue;
        }
        if (strcmp(e->sess.phase, PH_INIT) != 0) {
            st->data = eng_code_text(
                e, MEMDS_ST_FORBIDDEN); /* sync alerts belong in package 1 */
            eng_reply(e, cmd, st);
            continue;
        }
        {
            /* The datastore must exist (a mail folder) and be reachable. */
            memds_ds_t *ds;
            const char *why = NULL;
            int fst;
            if ((rv = eng_open_ds(&ds, e, name)) != APR_SUCCESS) {
                return rv;
            }
            if (ds->vt->check && ds->vt->check(ds) != APR_SUCCESS) {
                if (ds->status <= 0) {
                    return eng_ds_fail(e, ds, "opening a datastore");
                }
                e->resp->log_level = 4;
                e->resp->log_msg = apr_psprintf(e->p,
                                                MEMDS_LOGNO(00513) "device %s: %s",
                                                    e->dev.devid, ds->reason);
                st->data = apr_itoa(e->p, ds->status);
                eng_reply(e, cmd, st);
                continue;
            }
            fst = eng_filter_from_alert(e, &flt,
                                        it->target ? it->target->filter : NULL,
                                        ds, &why);
            if (fst != MEMDS_ST_OK) {
                st->data = eng_code_text(e, filter_refused(e, fst, why, name));
                eng_reply(e, cmd, st);
                continue;
            }
        }
        if (it->meta && it->meta->anchor) {
            next = it->meta->anchor->next;
            last = it->meta->anchor->last;
        }
        rv = eng_syncstate(e, &state, name);
        if (rv == APR_SUCCESS) {
            have_state = 1;
            server_last = state.last_server_anchor;
        }
        else if (rv != APR_ENOENT) {
            return eng_db_fail(e, "reading anchors");
        }
        if (code == MEMDS_ALERT_RESUME) {
            /* Resume: continue the newest suspended session of this device
             * and datastore where it stopped, in its sync mode; without one
             * (or before 1.2), 509 and a normal sync. */
            if (e->in->version != MEMDS_V12) {
                st->data = eng_code_text(e, MEMDS_ST_NOT_SUPPORTED);
                eng_reply(e, cmd, st);
                continue;
            }
            rv = e->db->vt->suspended_find(e->db, &old_pk, e->dev.device_id,
                                           name, e->sess.session_pk);
            if (rv == APR_SUCCESS) {
                apr_array_header_t *olds;
                int k;
                if (e->db->vt->sstores_load(e->db, &olds, old_pk)
                    != APR_SUCCESS) {
                    return eng_db_fail(e, "loading a suspended session");
                }
                for (k = 0; k < olds->nelts; ++k) {
                    if (strcmp(APR_ARRAY_IDX(olds, k, memds_sstore_t *)->store,
                               name)
                        == 0) {
                        resumed = APR_ARRAY_IDX(olds, k, memds_sstore_t *);
                    }
                }
            }
            else if (rv != APR_ENOENT) {
                return eng_db_fail(e, "finding a suspended session");
            }
            mode = resumed ? resumed->alert_code : MEMDS_ALERT_TWO_WAY;
            if (!resumed) {
                st->data = eng_code_text(e, MEMDS_ST_RESERVED_509);
            }
        }
        effective = mode;
        if (!resumed
            && (mode == MEMDS_ALERT_TWO_WAY
                || mode == MEMDS_ALERT_ONE_WAY_CLIENT
                || mode == MEMDS_ALERT_ONE_WAY_SERVER)) {
            /* A normal sync needs the anchors to agree; otherwise 508 and
             * the slow/refresh variant (+1). */
            if (!have_state || !last
                || strcmp(last, state.last_client_anchor) != 0) {
                st->data = eng_code_text(e, MEMDS_ST_REFRESH_REQUIRED);
                effective = mode + 1;
            }
        }
        ss = eng_find_sstore(e, name);
        if (ss == NULL) {
            ss = apr_pcalloc(e->p, sizeof(*ss));
            eng_push(&e->sstores, ss, e->p);
        }
        ss->store = name;
        ss->client_uri = it->source->uri;
        ss->server_uri = it->target && it->target->uri ? it->target->uri : name;
        ss->alert_code = effective;
        ss->slow = effective == MEMDS_ALERT_SLOW;
        ss->client_next = next ? next : "";
        ss->server_next = new_anchor(e->p);
        ss->snapshot_seq = resumed ? resumed->snapshot_seq : -1;
        ss->queue_built = resumed ? resumed->queue_built : 0;
        ss->sent_upto = 0; /* (a resumed queue goes again from its start) */
        ss->filter = eng_filter_format(flt, e->p);
        if (resumed) {
            ss->slow = resumed->slow;
            ss->filter = resumed->filter;
            if (e->db->vt->resume_copy(e->db, e->sess.session_pk, old_pk, name)
                != APR_SUCCESS) {
                return eng_db_fail(e, "resuming a session");
            }
        }
        else if (effective == MEMDS_ALERT_REFRESH_SERVER
                 || effective == MEMDS_ALERT_REFRESH_CLIENT) {
            /* Refresh: the device's copy starts empty (205) or replaces the
             * server's view of it (203); old maps must not match. */
            if (e->db->vt->map_clear(e->db, e->dev.device_id, name)
                != APR_SUCCESS) {
                return eng_db_fail(e, "clearing maps");
            }
        }
        if (e->db->vt->sstore_save(e->db, e->sess.session_pk, ss)
            != APR_SUCCESS) {
            return eng_db_fail(e, "saving a session datastore");
        }
        /* Echo the client's Next anchor in the Status item. */
        sit = eng_item_new(e->p);
        sit->data_kind = MEMDS_DATA_META;
        sit->data_meta = eng_meta_new(e->p);
        sit->data_meta->anchor = apr_pcalloc(e->p, sizeof(memds_anchor_t));
        sit->data_meta->anchor->next = ss->client_next;
        eng_push(&st->items, sit, e->p);
        eng_reply(e, cmd, st);
        /* Our Alert for the datastore. */
        al = eng_cmd_new(e, MEMDS_CMD_ALERT);
        al->data = apr_itoa(e->p, effective);
        ait = eng_item_new(e->p);
        ait->target = eng_loc(e->p, ss->client_uri);
        ait->source = eng_loc(e->p, ss->server_uri);
        ait->meta = eng_meta_new(e->p);
        ait->meta->anchor = apr_pcalloc(e->p, sizeof(memds_anchor_t));
        ait->meta->anchor->last = (effective == MEMDS_ALERT_TWO_WAY
                                   || effective == MEMDS_ALERT_ONE_WAY_CLIENT
                                   || effective == MEMDS_ALERT_ONE_WAY_SERVER)
                                      ? server_last
                                      : NULL;
        ait->meta->anchor->next = ss->server_next;
        if (e->in->version != MEMDS_V10) { /* (MetInf 1.0 has none) */
            ait->meta->max_obj_size = e->cfg->max_obj_size;
        }
        eng_push(&al->items, ait, e->p);
        APR_ARRAY_PUSH(e->cmds, memds_cmd_t *) = al;
        e->saw_alert = 1;
    }
    if (cmd->items == NULL || cmd->items->nelts == 0) {
        eng_reply(e, cmd, eng_status_for(e, cmd, MEMDS_ST_INCOMPLETE_COMMAND));
    }
    return APR_SUCCESS;
}

apr_status_t eng_do_alert(eng_t *e, const memds_cmd_t *cmd)
{
    int code = eng_code_of(cmd->data);

    if (MEMDS_ALERT_IS_SYNC(code) || MEMDS_ALERT_IS_SAN(code)
        || code == MEMDS_ALERT_RESUME) {
        return sync_alert(e, cmd, code);
    }
    if (code == MEMDS_ALERT_SUSPEND) {
        /* Suspend: the state stays as it is (all in the database); a later
         * session resumes it with Alert 225. */
        e->suspend = 1;
        eng_reply(e, cmd, eng_status_for(e, cmd, MEMDS_ST_OK));
        return APR_SUCCESS;
    }
    if (code == MEMDS_ALERT_NEXT_MESSAGE) {
        /* "Send the next message": answered by what we send anyway. */
        eng_reply(e, cmd, eng_status_for(e, cmd, MEMDS_ST_OK));
        return APR_SUCCESS;
    }
    /* 100 (display), 221, 223, 224/225 (suspend/resume, not yet): refused
     * explicitly so the client knows. */
    eng_reply(e, cmd, eng_status_for(e, cmd, MEMDS_ST_NOT_SUPPORTED));
    return APR_SUCCESS;
}
