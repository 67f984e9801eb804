/* memds_eng_sync.c: the engine's client changes: the Sync of package 3,
 * its Add/Replace/Delete items applied to the datastore (conflicts, slow-sync
 * matching, large objects in chunks) with the device's maps. */
#include "ds/memds_engine_int.h"
#include <apr_base64.h>
#include <apr_lib.h>

typedef struct op_ctx_t {
    eng_t *e;
    memds_sstore_t *ss;
    memds_ds_t *ds;
    const memds_cmd_t *sync; /* the Sync command being applied */
    apr_int64_t last_seq; /* device's last seen change (conflicts) */
    /* The device's maps of this datastore (luid -> guid) for the luids the
     * Sync names (its items' ids and parents), read once per Sync; new maps
     * and slow-sync "seen" marks are stored together at the end of the Sync
     * (flush_ops). */
    apr_hash_t *luid2guid;
    apr_hash_t *claimed; /* guids mapped in this Sync (not yet stored) */
    apr_array_header_t *new_guids, *new_luids, *seen;
    /* A datastore with batch operations (memds_ds_batch_of): the
     * message's slow-sync matches are looked up together before its items
     * are applied (pre_match: item -> guid, NO_MATCH, or "" for undecided;
     * rewritten: guids replaced since, whose lookup no longer holds), and
     * its new items are added together (pend_*, by luid in pending) when
     * the Sync ends or an item needs them. */
    const memds_ds_batch_t *batch;
    const memds_item_t *cur; /* the item being applied */
    apr_hash_t *pre_match, *rewritten, *pending;
    apr_array_header_t *pend_luids, *pend_types, *pend_data, *pend_lens;
    int no_partial; /* no large object is being assembled (known) */
} op_ctx_t;

static const char NO_MATCH[] = "-";

static const char *item_luid(const memds_item_t *it);

/* Every lookup of luid2guid is of a luid of this Sync: only their maps are
 * read (all the device's maps for every message made a slow sync up cost
 * the square of its items: docs/performance.md). */
static apr_status_t load_maps(op_ctx_t *o)
{
    apr_hash_t *g2l;
    apr_hash_index_t *hi;
    apr_array_header_t *luids;
    int i, j;

    if (o->luid2guid) {
        return APR_SUCCESS;
    }
    luids = apr_array_make(o->e->p, 64, sizeof(const char *));
    for (i = 0; o->sync && o->sync->cmds && i < o->sync->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(o->sync->cmds, i, memds_cmd_t *);
        for (j = 0; c->items && j < c->items->nelts; ++j) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, j, memds_item_t *);
            if (item_luid(it)) {
                APR_ARRAY_PUSH(luids, const char *) = item_luid(it);
            }
            if (it->source_parent && *it->source_parent) {
                APR_ARRAY_PUSH(luids, const char *) = it->source_parent;
            }
        }
    }
    if (o->e->db->vt->maps_of_luids(o->e->db, &g2l, o->e->dev.device_id,
                                    o->ss->store,
                                    (const char *const *)luids->elts,
                                    luids->nelts)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    o->luid2guid = apr_hash_make(o->e->p);
    for (hi = apr_hash_first(o->e->p, g2l); hi; hi = apr_hash_next(hi)) {
        const void *k;
        void *v;
        apr_hash_this(hi, &k, NULL, &v);
        apr_hash_set(o->luid2guid, v, APR_HASH_KEY_STRING, k);
    }
    return APR_SUCCESS;
}

static void new_map(op_ctx_t *o, const char *guid, const char *luid)
{
    APR_ARRAY_PUSH(o->new_guids, const char *) = guid;
    APR_ARRAY_PUSH(o->new_luids, const char *) = luid;
    apr_hash_set(o->luid2guid, luid, APR_HASH_KEY_STRING, guid);
    apr_hash_set(o->claimed, guid, APR_HASH_KEY_STRING, "");
}

static void mark_seen(op_ctx_t *o, const char *guid)
{
    if (o->ss->slow || o->ss->alert_code == MEMDS_ALERT_REFRESH_CLIENT) {
        APR_ARRAY_PUSH(o->seen, const char *) = guid;
    }
}

/* The new items held back (deferred_add) added in one statement, then
 * mapped and marked seen in their order. */
static apr_status_t flush_adds(op_ctx_t *o)
{
    int n = o->pend_luids ? o->pend_luids->nelts : 0, i;
    const char **guids;

    if (n == 0) {
        return APR_SUCCESS;
    }
    guids = apr_palloc(o->e->p, sizeof(char *) * (apr_size_t)n);
    if (o->batch->add_many(o->ds, n, (const char *const *)o->pend_types->elts,
                           (const char *const *)o->pend_data->elts,
                           (const apr_size_t *)o->pend_lens->elts, guids)
        != APR_SUCCESS) {
        if (o->ds->st->err) {
            o->e->db->err = o->ds->st->err;
        }
        return eng_db_fail(o->e, "adding items");
    }
    for (i = 0; i < n; ++i) {
        const char *luid = APR_ARRAY_IDX(o->pend_luids, i, const char *);
        new_map(o, guids[i], luid);
        mark_seen(o, guids[i]);
    }
    o->pend_luids->nelts = o->pend_types->nelts = 0;
    o->pend_data->nelts = o->pend_lens->nelts = 0;
    apr_hash_clear(o->pending);
    return APR_SUCCESS;
}

/* An add of the device's item luid held back for flush_adds (the item's
 * status does not depend on its guid). */
static void deferred_add(op_ctx_t *o, const char *luid, const char *type,
                         const char *data, apr_size_t len)
{
    if (o->pend_luids == NULL) {
        o->pend_luids = apr_array_make(o->e->p, 64, sizeof(const char *));
        o->pend_types = apr_array_make(o->e->p, 64, sizeof(const char *));
        o->pend_data = apr_array_make(o->e->p, 64, sizeof(const char *));
        o->pend_lens = apr_array_make(o->e->p, 64, sizeof(apr_size_t));
        o->pending = apr_hash_make(o->e->p);
    }
    APR_ARRAY_PUSH(o->pend_luids, const char *) = luid;
    APR_ARRAY_PUSH(o->pend_types, const char *) = type;
    APR_ARRAY_PUSH(o->pend_data, const char *) = data;
    APR_ARRAY_PUSH(o->pend_lens, apr_size_t) = len;
    apr_hash_set(o->pending, luid, APR_HASH_KEY_STRING, "");
}

static apr_status_t flush_ops(op_ctx_t *o)
{
    eng_t *e = o->e;

    if (flush_adds(o) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (e->db->vt->map_put_many(e->db, e->dev.device_id, o->ss->store,
                                (const char *const *)o->new_guids->elts,
                                (const char *const *)o->new_luids->elts,
                                o->new_guids->nelts)
            != APR_SUCCESS
        || e->db->vt->seen_add_many(e->db, e->sess.session_pk, o->ss->store,
                                    (const char *const *)o->seen->elts,
                                    o->seen->nelts)
               != APR_SUCCESS) {
        return eng_db_fail(e, "storing maps");
    }
    o->new_guids->nelts = o->new_luids->nelts = o->seen->nelts = 0;
    return APR_SUCCESS;
}

/* Did anyone but this device change guid after the device last synced? */
static int changed_on_server(op_ctx_t *o, const char *guid)
{
    apr_int64_t seq, by;

    if (o->last_seq < 0
        || o->ds->vt->last_change(o->ds, guid, &seq, &by) != APR_SUCCESS) {
        return 0;
    }
    return seq > o->last_seq && by != o->e->dev.device_id;
}

/* A datastore operation failed: its status for the item, or 0 (a store
 * failure: the request fails and rolls back). */
static int ds_failed(op_ctx_t *o)
{
    if (o->ds->status <= 0) {
        if (o->ds->reason) {
            o->e->db->err = o->ds->reason;
        }
        return 0;
    }
    o->e->resp->log_level = 4;
    o->e->resp->log_msg = apr_psprintf(o->e->p,
                                       MEMDS_LOGNO(00514) "device %s: %s",
                                                   o->e->dev.devid,
                                                   o->ds->reason);
    return o->ds->status;
}

/* Apply one Add or Replace item from the client; returns the status code,
 * 0 on a database error. */
static int put_item(op_ctx_t *o, int is_add, const char *luid, const char *type,
                    const char *data, apr_size_t len)
{
    eng_t *e = o->e;
    const char *guid;
    apr_status_t rv;
    int conflict, same = 0;

    if (load_maps(o) != APR_SUCCESS) {
        return 0;
    }
    if (o->pending && apr_hash_get(o->pending, luid, APR_HASH_KEY_STRING)
        && flush_adds(o) != APR_SUCCESS) {
        return 0;
    }
    guid = apr_hash_get(o->luid2guid, luid, APR_HASH_KEY_STRING);
    rv = guid ? o->ds->vt->same(o->ds, guid, type, data, len, &same)
              : APR_ENOENT;
    if (rv != APR_SUCCESS && rv != APR_ENOENT) {
        return ds_failed(o);
    }
    if (rv == APR_SUCCESS) {
        /* Known item: unchanged, conflict, or plain replace. */
        if (same) {
            mark_seen(o, guid);
            return MEMDS_ST_OK;
        }
        conflict = o->ss->slow || changed_on_server(o, guid);
        if (conflict && e->cfg->conflict == MEMDS_CONFLICT_DUPLICATE) {
            const char *nguid;
            if (o->batch) {
                deferred_add(o, luid, type, data, len);
                return MEMDS_ST_CONFLICT_DUPLICATE;
            }
            if (o->ds->vt->add(o->ds, &nguid, type, data, len) != APR_SUCCESS) {
                return ds_failed(o);
            }
            /* The device's item becomes the new one; the server's old one
             * is no longer mapped and goes to the device as an Add. */
            new_map(o, nguid, luid);
            mark_seen(o, nguid);
            return MEMDS_ST_CONFLICT_DUPLICATE;
        }
        if (conflict && e->cfg->conflict == MEMDS_CONFLICT_SERVER_WINS) {
            /* The server version is queued for the device as a Replace (it
             * is "changed since", or unseen in a slow sync). */
            return MEMDS_ST_SERVER_DATA_WINS;
        }
        if (o->rewritten) {
            apr_hash_set(o->rewritten, guid, APR_HASH_KEY_STRING, "");
        }
        if (o->ds->vt->replace(o->ds, guid, type, data, len) != APR_SUCCESS) {
            return ds_failed(o);
        }
        mark_seen(o, guid);
        return conflict ? MEMDS_ST_CONFLICT_CLIENT_WON : MEMDS_ST_OK;
    }
    /* Unknown LUID: in a slow or refresh sync match identical content first
     * so that nothing is duplicated. */
    if (o->ss->slow || o->ss->alert_code == MEMDS_ALERT_REFRESH_CLIENT) {
        const char *pre = o->pre_match ? apr_hash_get(o->pre_match, &o->cur,
                                                      sizeof(o->cur))
                                       : NULL;
        /* looked up with the message's others, unless it was undecided or
         * its item has been replaced since (then no longer the first) */
        if (pre && *pre
            && (pre == NO_MATCH
                || !apr_hash_get(o->rewritten, pre, APR_HASH_KEY_STRING))) {
            rv = pre == NO_MATCH ? APR_ENOENT : APR_SUCCESS;
            guid = pre;
        }
        else {
            rv = o->ds->vt->match(o->ds, &guid, data, len);
        }
        if (rv == APR_SUCCESS) {
            /* not already claimed by another item of this batch */
            if (!apr_hash_get(o->claimed, guid, APR_HASH_KEY_STRING)) {
                new_map(o, guid, luid);
                /* A refresh from the client: its version of an item the
                 * server keeps wins (a mail matched by Message-ID and
                 * size may have other flags), and nothing goes back. */
                if (o->ss->alert_code == MEMDS_ALERT_REFRESH_CLIENT
                    && (o->ds->vt->same(o->ds, guid, type, data, len, &same)
                            != APR_SUCCESS
                        || (!same
                            && o->ds->vt->replace(o->ds, guid, type, data, len)
                                   != APR_SUCCESS))) {
                    return ds_failed(o);
                }
                /* A slow sync: a mail matched by identity may have other
                 * flags than the server's; that is a conflict like a
                 * known item's (the README's MemDSConflictPolicy).
                 * duplicate never copies a mail for its flags: the
                 * server's version goes to the device as with
                 * server-wins (not seen: queued as a Replace). */
                if (o->ss->alert_code != MEMDS_ALERT_REFRESH_CLIENT
                    && o->ds->vt->match_loose) {
                    if (o->ds->vt->same(o->ds, guid, type, data, len, &same)
                        != APR_SUCCESS) {
                        return ds_failed(o);
                    }
                    if (!same
                        && e->cfg->conflict != MEMDS_CONFLICT_CLIENT_WINS) {
                        return MEMDS_ST_SERVER_DATA_WINS;
                    }
                    if (!same) {
                        if (o->rewritten) {
                            apr_hash_set(o->rewritten, guid,
                                         APR_HASH_KEY_STRING, "");
                        }
                        if (o->ds->vt->replace(o->ds, guid, type, data, len)
                            != APR_SUCCESS) {
                            return ds_failed(o);
                        }
                        mark_seen(o, guid);
                        return MEMDS_ST_CONFLICT_CLIENT_WON;
                    }
                }
                mark_seen(o, guid);
                return is_add ? MEMDS_ST_ITEM_ADDED : MEMDS_ST_OK;
            }
        }
        else if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return ds_failed(o);
        }
    }
    if (o->batch) {
        deferred_add(o, luid, type, data, len);
        return MEMDS_ST_ITEM_ADDED;
    }
    o->ds->ok_status = 0;
    if (o->ds->vt->add(o->ds, &guid, type, data, len) != APR_SUCCESS) {
        return ds_failed(o);
    }
    new_map(o, guid, luid);
    mark_seen(o, guid);
    /* (202: accepted, e.g. a message that will be sent later) */
    return o->ds->ok_status ? o->ds->ok_status : MEMDS_ST_ITEM_ADDED;
}

static int del_item(op_ctx_t *o, const char *luid, int soft)
{
    eng_t *e = o->e;
    const char *guid;
    apr_status_t rv = APR_SUCCESS;

    if (load_maps(o) != APR_SUCCESS || flush_adds(o) != APR_SUCCESS) {
        return 0;
    }
    o->pre_match = NULL; /* maps change: look up one by one from here */
    guid = apr_hash_get(o->luid2guid, luid, APR_HASH_KEY_STRING);
    if (guid == NULL) {
        return MEMDS_ST_ITEM_NOT_DELETED;
    }
    if (flush_ops(o) != APR_SUCCESS) { /* pending maps before a deletion */
        return 0;
    }
    if (!soft) {
        rv = o->ds->vt->remove(o->ds, guid);
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return ds_failed(o);
        }
    }
    if (e->db->vt->map_del(e->db, e->dev.device_id, o->ss->store, guid)
        != APR_SUCCESS) {
        return 0;
    }
    apr_hash_set(o->luid2guid, luid, APR_HASH_KEY_STRING, NULL);
    return (!soft && rv == APR_ENOENT) ? MEMDS_ST_ITEM_NOT_DELETED
                                       : MEMDS_ST_OK;
}

/* A Move (DS 1.2) of a hierarchical datastore's item to the folder its
 * TargetParent (our id) or SourceParent (the device's, mapped) names; the
 * server id and the map stay. Returns the status code, 0 on a database
 * error. */
static int move_item(op_ctx_t *o, const memds_item_t *it, const char *luid)
{
    const char *guid, *to = NULL;

    if (o->ds->vt->move == NULL) {
        /* no SupportHierarchicalSync here: an optional feature */
        return MEMDS_ST_NOT_SUPPORTED;
    }
    if (load_maps(o) != APR_SUCCESS || flush_adds(o) != APR_SUCCESS) {
        return 0;
    }
    o->pre_match = NULL;
    guid = apr_hash_get(o->luid2guid, luid, APR_HASH_KEY_STRING);
    if (guid == NULL) {
        return MEMDS_ST_NOT_FOUND;
    }
    if (it->target_parent && *it->target_parent) {
        to = it->target_parent;
    }
    else if (it->source_parent && *it->source_parent) {
        to = apr_hash_get(o->luid2guid, it->source_parent, APR_HASH_KEY_STRING);
        if (to == NULL) {
            return MEMDS_ST_NOT_FOUND;
        }
    }
    else {
        return MEMDS_ST_INCOMPLETE_COMMAND; /* moved where? */
    }
    o->ds->parent_hint = to;
    o->ds->luid_hint = luid;
    switch (o->ds->vt->move(o->ds, guid)) {
    case APR_SUCCESS: return MEMDS_ST_OK;
    case APR_ENOENT: return MEMDS_ST_NOT_FOUND;
    default: return ds_failed(o);
    }
}

/* The device's item id: its Source, else its Target. */
static const char *item_luid(const memds_item_t *it)
{
    return it->source && it->source->uri ? it->source->uri
           : it->target                  ? it->target->uri
                                         : NULL;
}

/* Does the item come base64 (Meta Format b64)? */
static int is_b64(const memds_cmd_t *c, const memds_item_t *it)
{
    const char *fmt = it->meta && it->meta->format ? it->meta->format
                      : c->meta                    ? c->meta->format
                                                   : NULL;

    return fmt != NULL && strcasecmp(fmt, "b64") == 0;
}

/* Item data the device sent base64 (Meta Format b64: bytes XML cannot
 * carry): decoded, whitespace and line ends ignored. 400 when it is not
 * base64. */
static int b64_item(eng_t *e, const memds_cmd_t *c, const memds_item_t *it,
                    const char **pdata, apr_size_t *plen)
{
    char *clean, *out;
    apr_size_t i, n = 0;
    int len;

    if (!is_b64(c, it)) {
        return MEMDS_ST_OK;
    }
    clean = apr_palloc(e->p, *plen + 1);
    for (i = 0; i < *plen; ++i) {
        char ch = (*pdata)[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
            continue;
        }
        if (!apr_isalnum(ch) && ch != '+' && ch != '/' && ch != '=') {
            return MEMDS_ST_BAD_REQUEST;
        }
        clean[n++] = ch;
    }
    clean[n] = '\0';
    if (n % 4 != 0) {
        return MEMDS_ST_BAD_REQUEST;
    }
    out = apr_palloc(e->p, (apr_size_t)apr_base64_decode_len(clean) + 1);
    len = apr_base64_decode(out, clean);
    out[len] = '\0';
    *pdata = out;
    *plen = (apr_size_t)len;
    return MEMDS_ST_OK;
}

/* Over XML a parser's end-of-line handling turns the device's CRLF into
 * LF, so the chunks of a large object may add up to less than the Size it
 * announced (counted with CRLF): when exactly the bare LFs are missing,
 * the CRLFs are put back and the object is whole. NULL otherwise. */
static char *crlf_restored(eng_t *e, const char *d, apr_size_t n,
                           apr_int64_t size, apr_size_t *plen)
{
    apr_size_t i, lf = 0, k = 0;
    char *out;

    if (e->enc != MEMDS_ENC_XML) {
        return NULL;
    }
    for (i = 0; i < n; ++i) {
        lf += d[i] == '\n' && (i == 0 || d[i - 1] != '\r');
    }
    if (lf == 0 || (apr_int64_t)(n + lf) != size) {
        return NULL;
    }
    out = apr_palloc(e->p, n + lf + 1);
    for (i = 0; i < n; ++i) {
        if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r')) {
            out[k++] = '\r';
        }
        out[k++] = d[i];
    }
    out[k] = '\0';
    *plen = k;
    return out;
}

/* A chunk of a large object (MoreData), or the last chunk completing one.
 * Returns 0 on a database error; *pdone says the item is whole and
 * *pdata and *plen hold it. */
static int chunk(op_ctx_t *o, const memds_cmd_t *c, const memds_item_t *it,
                 const char *luid, const char **pdata, apr_size_t *plen,
                 int *pdone)
{
    eng_t *e = o->e;
    memds_partial_t pt;
    apr_status_t rv;
    apr_int64_t size = it->meta && it->meta->size != MEMDS_NOVAL
                           ? it->meta->size
                       : c->meta && c->meta->size != MEMDS_NOVAL ? c->meta->size
                                                                 : -1;

    *pdone = 0;
    rv = o->no_partial ? APR_ENOENT
                       : e->db->vt->partial_get(e->db, &pt, e->sess.session_pk,
                                                o->ss->store);
    if (rv != APR_SUCCESS && rv != APR_ENOENT) {
        return 0;
    }
    o->no_partial = rv == APR_ENOENT && !it->more_data;
    if (rv == APR_ENOENT) {
        if (!it->more_data) {
            *pdata = it->data.data;
            *plen = it->data.len;
            *pdone = 1;
            return MEMDS_ST_OK;
        }
        if (size < 0) {
            return MEMDS_ST_SIZE_REQUIRED;
        }
        if (size > e->cfg->max_obj_size) {
            return MEMDS_ST_ENTITY_TOO_LARGE;
        }
        memset(&pt, 0, sizeof(pt));
        pt.store = o->ss->store;
        pt.cmd = memds_cmd_name(c->type);
        pt.luid = luid;
        pt.content_type = it->meta && it->meta->type ? it->meta->type
                          : c->meta                  ? c->meta->type
                                                     : NULL;
        pt.total_size = size;
    }
    else if (strcmp(pt.luid, luid) != 0
             || strcmp(pt.cmd, memds_cmd_name(c->type)) != 0) {
        /* A different item while one was incomplete: drop the old one. */
        if (e->db->vt->partial_drop(e->db, e->sess.session_pk, o->ss->store)
            != APR_SUCCESS) {
            return 0;
        }
        return chunk(o, c, it, luid, pdata, plen, pdone);
    }
    if ((apr_int64_t)(pt.len + it->data.len) > pt.total_size) {
        e->db->vt->partial_drop(e->db, e->sess.session_pk, o->ss->store);
        return MEMDS_ST_SIZE_MISMATCH;
    }
    if (it->more_data) {
        if (e->db->vt->partial_append(e->db, e->sess.session_pk, &pt,
                                      it->data.data, it->data.len)
            != APR_SUCCESS) {
            return 0;
        }
        return MEMDS_ST_CHUNK_ACCEPTED;
    }
    /* Last chunk: assemble, check the announced size. */
    {
        char *all = apr_palloc(e->p, pt.len + it->data.len + 1);
        memcpy(all, pt.data, pt.len);
        memcpy(all + pt.len, it->data.data, it->data.len);
        all[pt.len + it->data.len] = '\0';
        if (e->db->vt->partial_drop(e->db, e->sess.session_pk, o->ss->store)
            != APR_SUCCESS) {
            return 0;
        }
        *plen = pt.len + it->data.len;
        if ((apr_int64_t)*plen != pt.total_size) {
            char *fixed = crlf_restored(e, all, *plen, pt.total_size, plen);
            if (fixed == NULL) {
                return MEMDS_ST_SIZE_MISMATCH;
            }
            all = fixed;
        }
        *pdata = all;
        *pdone = 1;
        return MEMDS_ST_OK;
    }
}

static apr_status_t do_sync_op(op_ctx_t *o, const memds_cmd_t *c)
{
    eng_t *e = o->e;
    int i;

    for (i = 0; c->items && i < c->items->nelts; ++i) {
        const memds_item_t *it = APR_ARRAY_IDX(c->items, i, memds_item_t *);
        const char *luid = item_luid(it);
        const char *type, *data;
        int code = 0;
        apr_size_t len;
        int done = 0;
        memds_cmd_t *st = eng_status_for(e, c, MEMDS_ST_OK);

        o->cur = it;

        eng_add_ref(&st->source_refs, it->source ? it->source->uri : NULL,
                    e->p);
        eng_add_ref(&st->target_refs, it->target ? it->target->uri : NULL,
                    e->p);
        if (luid == NULL) {
            code = MEMDS_ST_INCOMPLETE_COMMAND;
        }
        else if (ENG_WIPING(e)) {
            code = MEMDS_ST_FORBIDDEN; /* a device being wiped changes
                                          nothing on the server */
        }
        else if (o->ss->alert_code == MEMDS_ALERT_ONE_WAY_SERVER
                 || o->ss->alert_code == MEMDS_ALERT_REFRESH_SERVER) {
            code =
                MEMDS_ST_FORBIDDEN; /* one-way / refresh from server: no client changes */
        }
        else if (c->type == MEMDS_CMD_DELETE) {
            o->ds->luid_hint = luid;
            code = del_item(o, luid, c->sft_del);
        }
        else if (c->type == MEMDS_CMD_ADD || c->type == MEMDS_CMD_REPLACE) {
            type = it->meta && it->meta->type ? it->meta->type
                   : c->meta                  ? c->meta->type
                                              : NULL;
            /* The parent folder (hierarchical datastores): TargetParent is
             * our id; a SourceParent is the device's id of a folder it
             * added, mapped by now. */
            o->ds->parent_hint = NULL;
            o->ds->luid_hint = luid;
            if (it->target_parent && *it->target_parent) {
                o->ds->parent_hint = it->target_parent;
            }
            else if (it->source_parent && *it->source_parent) {
                if (load_maps(o) != APR_SUCCESS) {
                    return eng_db_fail(e, "reading maps");
                }
                o->ds->parent_hint = apr_hash_get(o->luid2guid,
                                                  it->source_parent,
                                                  APR_HASH_KEY_STRING);
            }
            if (it->data_kind != MEMDS_DATA_BYTES) {
                code = MEMDS_ST_INCOMPLETE_COMMAND;
            }
            else if ((code = chunk(o, c, it, luid, &data, &len, &done)) != 0
                     && done
                     && (code = b64_item(e, c, it, &data, &len))
                            == MEMDS_ST_OK) {
                if ((apr_int64_t)len > e->cfg->max_obj_size) {
                    code = MEMDS_ST_ENTITY_TOO_LARGE;
                }
                else {
                    code = put_item(o, c->type == MEMDS_CMD_ADD, luid, type,
                                    data, len);
                }
            }
        }
        else if (c->type == MEMDS_CMD_MOVE) {
            code = move_item(o, it, luid);
        }
        else {
            code =
                MEMDS_ST_NOT_SUPPORTED; /* Copy, Atomic, Sequence inside Sync */
        }
        if (code == 0) {
            return eng_db_fail(e, "applying a client change");
        }
        st->data = eng_code_text(e, code);
        eng_reply(e, c, st);
    }
    return APR_SUCCESS;
}

/* Before the items of a Sync are applied one by one (a datastore with
 * batch operations): the rows of the items the device already has read
 * in one statement (prefetch), and the slow-sync matches of the others
 * looked up in one statement (pre_match). Only the leading Adds and
 * Replaces, whole items as sent (not in chunks, not base64): whatever
 * follows goes one by one as before. */
static apr_status_t prepare_batch(op_ctx_t *o, const memds_cmd_t *sync)
{
    eng_t *e = o->e;
    apr_array_header_t *known, *items, *data, *lens;
    memds_partial_t pt;
    const char **guids;
    apr_status_t rv;
    int i, j,
        match = o->ss->slow || o->ss->alert_code == MEMDS_ALERT_REFRESH_CLIENT;

    rv = e->db->vt->partial_get(e->db, &pt, e->sess.session_pk, o->ss->store);
    if (rv == APR_SUCCESS) {
        return APR_SUCCESS; /* a large object goes on: one by one */
    }
    if (rv != APR_ENOENT) {
        return eng_db_fail(e, "reading a partial item");
    }
    o->no_partial = 1;
    if (load_maps(o) != APR_SUCCESS) {
        return eng_db_fail(e, "reading maps");
    }
    known = apr_array_make(e->p, 64, sizeof(const char *));
    items = apr_array_make(e->p, 64, sizeof(const memds_item_t *));
    data = apr_array_make(e->p, 64, sizeof(const char *));
    lens = apr_array_make(e->p, 64, sizeof(apr_size_t));
    for (i = 0; sync->cmds && i < sync->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(sync->cmds, i, memds_cmd_t *);
        if (c->type != MEMDS_CMD_ADD && c->type != MEMDS_CMD_REPLACE) {
            break;
        }
        for (j = 0; c->items && j < c->items->nelts; ++j) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, j, memds_item_t *);
            const char *luid = item_luid(it), *guid;
            if (luid == NULL || it->data_kind != MEMDS_DATA_BYTES
                || it->more_data || is_b64(c, it)
                || (apr_int64_t)it->data.len > e->cfg->max_obj_size) {
                continue;
            }
            guid = apr_hash_get(o->luid2guid, luid, APR_HASH_KEY_STRING);
            if (guid) {
                APR_ARRAY_PUSH(known, const char *) = guid;
            }
            else if (match) {
                APR_ARRAY_PUSH(items, const memds_item_t *) = it;
                APR_ARRAY_PUSH(data, const char *) = it->data.data;
                APR_ARRAY_PUSH(lens, apr_size_t) = it->data.len;
            }
        }
    }
    if (known->nelts > 0 && o->ds->vt->prefetch) {
        /* (a failure only means the items are read one by one) */
        o->ds->vt->prefetch(o->ds, (const char *const *)known->elts,
                            known->nelts, (apr_size_t)-1);
    }
    if (items->nelts == 0) {
        return APR_SUCCESS;
    }
    guids = apr_palloc(e->p, sizeof(char *) * (apr_size_t)items->nelts);
    if (o->batch->match_many(o->ds, items->nelts,
                             (const char *const *)data->elts,
                             (const apr_size_t *)lens->elts, guids)
        != APR_SUCCESS) {
        if (o->ds->st->err) {
            e->db->err = o->ds->st->err;
        }
        return eng_db_fail(e, "matching items");
    }
    o->pre_match = apr_hash_make(e->p);
    o->rewritten = apr_hash_make(e->p);
    for (i = 0; i < items->nelts; ++i) {
        apr_hash_set(o->pre_match,
                     &APR_ARRAY_IDX(items, i, const memds_item_t *),
                     sizeof(const memds_item_t *),
                     guids[i] ? guids[i] : NO_MATCH);
    }
    return APR_SUCCESS;
}

/* Alert codes whose anchors must agree (two-way and one-way, also as
 * alerted by the server): the code the mode falls back to is this + 1. */
static int normal_mode(int code)
{
    switch (code) {
    case MEMDS_ALERT_TWO_WAY:
    case MEMDS_ALERT_TWO_WAY_BY_SERVER: return MEMDS_ALERT_TWO_WAY;
    case MEMDS_ALERT_ONE_WAY_CLIENT:
    case MEMDS_ALERT_ONE_WAY_CLIENT_BY_SERVER:
        return MEMDS_ALERT_ONE_WAY_CLIENT;
    case MEMDS_ALERT_ONE_WAY_SERVER:
    case MEMDS_ALERT_ONE_WAY_SERVER_BY_SERVER:
        return MEMDS_ALERT_ONE_WAY_SERVER;
    default: return 0;
    }
}

/* A Sync in the init phase: packages 1 and 3 together. The status this
 * message's answer gives the datastore's Alert: 200 when it was accepted
 * as sent; 0 when the datastore was alerted in an earlier message of the
 * package (the device has seen our answer and syncs in the agreed mode). */
static int combined_alert_status(eng_t *e, const memds_cmd_t *sync,
                                 const memds_sstore_t *ss)
{
    int i, j, k, code = 0;

    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *a = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        int ac = eng_code_of(a->data);
        if (a == sync) {
            break;
        }
        if (a->type != MEMDS_CMD_ALERT
            || !(MEMDS_ALERT_IS_SYNC(ac) || MEMDS_ALERT_IS_SAN(ac)
                 || ac == MEMDS_ALERT_RESUME)) {
            continue;
        }
        for (j = 0; a->items && j < a->items->nelts; ++j) {
            const memds_item_t *it = APR_ARRAY_IDX(a->items, j, memds_item_t *);
            const char *uri = it->target ? it->target->uri : NULL;
            int found = 0;
            if (strcmp(eng_store_name(uri, e->p), ss->store) != 0) {
                continue;
            }
            /* Our Status for this item of the Alert, if it asked for one;
             * without, what the agreed mode says. */
            for (k = 0; k < e->replies->nelts; ++k) {
                const memds_cmd_t *s = APR_ARRAY_IDX(e->replies, k,
                                                     memds_cmd_t *);
                if (s->type == MEMDS_CMD_STATUS && s->cmd_ref && a->cmd_id
                    && strcmp(s->cmd_ref, a->cmd_id) == 0 && s->target_refs
                    && s->target_refs->nelts > 0 && uri
                    && strcmp(APR_ARRAY_IDX(s->target_refs, 0, const char *),
                              uri)
                           == 0) {
                    code = eng_code_of(s->data);
                    found = 1;
                }
            }
            if (!found) {
                code = normal_mode(ac) && ss->alert_code == normal_mode(ac) + 1
                           ? MEMDS_ST_REFRESH_REQUIRED
                           : MEMDS_ST_OK;
            }
        }
    }
    return code;
}

apr_status_t eng_do_sync(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = eng_status_for(e, cmd, MEMDS_ST_OK);
    op_ctx_t o;
    memds_syncstate_t state;
    apr_status_t rv;
    int i, refuse = 0;

    eng_add_ref(&st->target_refs, cmd->target ? cmd->target->uri : NULL, e->p);
    eng_add_ref(&st->source_refs, cmd->source ? cmd->source->uri : NULL, e->p);
    memset(&o, 0, sizeof(o));
    o.e = e;
    o.sync = cmd;
    o.ss = eng_find_sstore(e,
                           eng_store_name(cmd->target ? cmd->target->uri : NULL,
                                          e->p));
    if (o.ss == NULL) {
        refuse = MEMDS_ST_NOT_FOUND; /* not alerted in this session */
    }
    else if (strcmp(e->sess.phase, PH_INIT) == 0) {
        /* Packages 1 and 3 together: taken when the Alert was accepted as
         * sent. When the server requires a slow sync (508) the device's
         * changes since its last sync are not what a slow sync needs: the
         * Sync and its items get 508 as well, nothing is applied, and the
         * device sends its whole datastore in package 3. */
        int ac = combined_alert_status(e, cmd, o.ss);
        if (ac == MEMDS_ST_REFRESH_REQUIRED) {
            refuse = MEMDS_ST_REFRESH_REQUIRED;
            e->combined_refused = 1;
        }
        else if (ac != 0 && ac != MEMDS_ST_OK) {
            refuse = ac >= 300 ? ac : MEMDS_ST_FORBIDDEN;
            e->combined_refused = 1;
        }
        else {
            e->combined_ok = 1;
        }
    }
    if (refuse) {
        st->data = eng_code_text(e, refuse);
        eng_reply(e, cmd, st);
        for (i = 0; cmd->cmds && i < cmd->cmds->nelts; ++i) {
            const memds_cmd_t *c = APR_ARRAY_IDX(cmd->cmds, i, memds_cmd_t *);
            eng_reply(e, c, eng_status_for(e, c, eng_code_of(st->data)));
        }
        return APR_SUCCESS;
    }
    eng_reply(e, cmd, st);
    if ((rv = eng_open_ds(&o.ds, e, o.ss->store)) != APR_SUCCESS) {
        return rv;
    }
    o.last_seq = -1;
    rv = eng_syncstate(e, &state, o.ss->store);
    if (rv == APR_SUCCESS) {
        o.last_seq = state.last_seq;
    }
    else if (rv != APR_ENOENT) {
        return eng_db_fail(e, "reading anchors");
    }
    o.claimed = apr_hash_make(e->p);
    o.new_guids = apr_array_make(e->p, 64, sizeof(const char *));
    o.new_luids = apr_array_make(e->p, 64, sizeof(const char *));
    o.seen = apr_array_make(e->p, 64, sizeof(const char *));
    o.batch = memds_ds_batch_of(o.ds);
    if (o.batch && !ENG_WIPING(e)
        && o.ss->alert_code != MEMDS_ALERT_ONE_WAY_SERVER
        && o.ss->alert_code != MEMDS_ALERT_REFRESH_SERVER
        && (rv = prepare_batch(&o, cmd)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; cmd->cmds && i < cmd->cmds->nelts; ++i) {
        if ((rv = do_sync_op(&o, APR_ARRAY_IDX(cmd->cmds, i, memds_cmd_t *)))
            != APR_SUCCESS) {
            return rv;
        }
    }
    return flush_ops(&o);
}
