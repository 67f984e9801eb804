/* memds_eng_pkg.c: the engine's answers: command constructors, assembly
 * and encoding, refusals, and package 4 (the server's changes queued per
 * datastore, then filled into messages up to the device's MaxMsgSize with
 * exact sizes and large objects cut into chunks). */
#include "ds/memds_engine_int.h"
#include "email/memds_email.h"
#include <apr_base64.h>

static const char *next_id(eng_t *e)
{
    return apr_itoa(e->p, e->cmd_id++);
}

memds_loc_t *eng_loc(apr_pool_t *p, const char *uri)
{
    memds_loc_t *l = apr_pcalloc(p, sizeof(*l));

    l->uri = uri;
    return l;
}

memds_item_t *eng_item_new(apr_pool_t *p)
{
    return apr_pcalloc(p, sizeof(memds_item_t));
}

memds_meta_t *eng_meta_new(apr_pool_t *p)
{
    memds_meta_t *m = apr_pcalloc(p, sizeof(*m));

    m->size = m->max_msg_size = m->max_obj_size = MEMDS_NOVAL;
    return m;
}

memds_cmd_t *eng_cmd_new(eng_t *e, memds_cmd_e type)
{
    memds_cmd_t *c = apr_pcalloc(e->p, sizeof(*c));

    c->type = type;
    return c;
}

void eng_push(apr_array_header_t **a, void *v, apr_pool_t *p)
{
    if (*a == NULL) {
        *a = apr_array_make(p, 4, sizeof(void *));
    }
    APR_ARRAY_PUSH(*a, void *) = v;
}

/* A Status answering cmd (NULL: the SyncHdr). CmdIDs are given when the
 * answer is assembled. */
memds_cmd_t *eng_status_for(eng_t *e, const memds_cmd_t *cmd, int code)
{
    memds_cmd_t *s = eng_cmd_new(e, MEMDS_CMD_STATUS);

    s->msg_ref = e->in->hdr.msg_id;
    s->cmd_ref = cmd ? cmd->cmd_id : "0";
    s->cmd = cmd ? memds_cmd_name(cmd->type) : "SyncHdr";
    s->data = apr_itoa(e->p, code);
    return s;
}

static int wants_status(const eng_t *e, const memds_cmd_t *cmd)
{
    return !e->in->hdr.no_resp && !cmd->no_resp;
}

void eng_reply(eng_t *e, const memds_cmd_t *cmd, memds_cmd_t *status)
{
    if (cmd == NULL || wants_status(e, cmd)) {
        APR_ARRAY_PUSH(e->replies, memds_cmd_t *) = status;
    }
}

void eng_add_ref(apr_array_header_t **refs, const char *uri, apr_pool_t *p)
{
    if (uri) {
        eng_push(refs, (void *)uri, p);
    }
}

int eng_code_of(const char *s)
{
    return s ? atoi(s) : 0;
}

/* A status or alert code as the text a command carries. */
const char *eng_code_text(eng_t *e, int code)
{
    return apr_itoa(e->p, code);
}

const char *eng_verdtd(const eng_t *e)
{
    return e->in->version == MEMDS_V10   ? "1.0"
           : e->in->version == MEMDS_V11 ? "1.1"
                                         : "1.2";
}

memds_msg_t *eng_answer_header(eng_t *e, int with_respuri)
{
    memds_msg_t *m = apr_pcalloc(e->p, sizeof(*m));
    const memds_hdr_t *h = &e->in->hdr;

    m->version = e->in->version;
    m->hdr.verdtd = eng_verdtd(e);
    m->hdr.verproto = apr_pstrcat(e->p, "SyncML/", m->hdr.verdtd, NULL);
    m->hdr.session_id = h->session_id;
    m->hdr.msg_id = apr_itoa(e->p, e->sess.server_msg_id > 0
                                       ? e->sess.server_msg_id
                                       : 1);
    m->hdr.target = eng_loc(e->p, h->source->uri);
    m->hdr.target->name = h->source->name;
    m->hdr.source = eng_loc(e->p, h->target->uri);
    if (with_respuri && e->sess.token && e->req->base_url) {
        m->hdr.resp_uri = apr_pstrcat(e->p, e->req->base_url,
                                      "?s=", e->sess.token, NULL);
    }
    m->hdr.meta = eng_meta_new(e->p);
    m->hdr.meta->max_msg_size = e->cfg->max_msg_size;
    if (e->in->version == MEMDS_V12) {
        m->hdr.meta->max_obj_size = e->cfg->max_obj_size;
    }
    m->cmds = apr_array_make(e->p, 16, sizeof(memds_cmd_t *));
    return m;
}

/* Give CmdIDs in document order (nested commands too). */
void eng_number(eng_t *e, memds_cmd_t *c)
{
    int i;

    c->cmd_id = next_id(e);
    for (i = 0; c->cmds && i < c->cmds->nelts; ++i) {
        eng_number(e, APR_ARRAY_IDX(c->cmds, i, memds_cmd_t *));
    }
}

apr_status_t eng_encode(eng_t *e, memds_msg_t *m)
{
    memds_buf_t b;
    memds_codec_err_t err;

    memds_buf_init(&b, 4096, e->p);
    if (memds_msg_encode(&b, m, e->enc, &err, e->p) != APR_SUCCESS) {
        e->resp->http_status = 500;
        e->resp->log_level = 3;
        e->resp->log_msg = apr_psprintf(
            e->p, MEMDS_LOGNO(00014) "cannot encode the answer: %s", err.msg);
        return APR_EGENERAL;
    }
    e->resp->http_status = 200;
    e->resp->body = b.data;
    e->resp->len = b.len;
    return APR_SUCCESS;
}

/* An answer that ends the exchange without a session: a SyncHdr status
 * code for the header and for every command (e.g. 401), Final, no RespURI. */
apr_status_t eng_refuse(eng_t *e, int hdr_code, int cmd_code, const char *why)
{
    memds_msg_t *m = eng_answer_header(e, 0);
    memds_cmd_t *s;
    int i;

    e->refused_code = hdr_code; /* (a failed session: eng_throttle_after) */
    e->cmd_id = 1;
    s = eng_status_for(e, NULL, hdr_code);
    eng_add_ref(&s->target_refs, e->in->hdr.target->uri, e->p);
    eng_add_ref(&s->source_refs, e->in->hdr.source->uri, e->p);
    s->chal = e->chal;
    if (why && hdr_code != MEMDS_ST_INVALID_CREDENTIALS
        && hdr_code != MEMDS_ST_MISSING_CREDENTIALS) {
        memds_item_t *it = eng_item_new(e->p);
        it->data_kind = MEMDS_DATA_BYTES;
        it->data.data = why;
        it->data.len = strlen(why);
        eng_push(&s->items, it, e->p);
    }
    eng_number(e, s);
    APR_ARRAY_PUSH(m->cmds, memds_cmd_t *) = s;
    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        if (c->type == MEMDS_CMD_STATUS || !wants_status(e, c)) {
            continue;
        }
        s = eng_status_for(e, c, cmd_code);
        eng_number(e, s);
        APR_ARRAY_PUSH(m->cmds, memds_cmd_t *) = s;
    }
    m->final = 1;
    if (!e->resp->log_msg) {
        e->resp->log_level = 6;
        e->resp->log_msg = apr_psprintf(
            e->p, MEMDS_LOGNO(00516) "device %s session %s MsgID %s: "
                                     "refused with %d: %s",
                              e->in->hdr.source->uri, e->in->hdr.session_id,
                              e->in->hdr.msg_id, hdr_code, why);
    }
    return eng_encode(e, m);
}

/* Queue what the device must receive for one datastore. */
/* The depth of guid below the top (0: at the top), through the
 * datastore's parent op; depths memoised in h. */
static int depth_of(memds_ds_t *ds, apr_hash_t *h, const char *guid, int guard)
{
    const int *known = apr_hash_get(h, guid, APR_HASH_KEY_STRING);
    const char *parent = NULL;
    int *d;

    if (known) {
        return *known;
    }
    d = apr_palloc(apr_hash_pool_get(h), sizeof(*d));
    *d = 0;
    if (guard < 64 && ds->vt->parent
        && ds->vt->parent(ds, guid, &parent) == APR_SUCCESS && parent) {
        *d = depth_of(ds, h, parent, guard + 1) + 1;
    }
    apr_hash_set(h, guid, APR_HASH_KEY_STRING, d);
    return *d;
}

typedef struct wipe_item_t {
    const char *guid, *luid;
    int depth;
} wipe_item_t;

static int deepest_first(const void *a, const void *b)
{
    const wipe_item_t *x = a, *y = b;

    return (y->depth > x->depth) - (y->depth < x->depth);
}

/* Remote wipe (memds-admin wipe): the queue is a Delete of every item the
 * device has mapped, the deepest first (messages before their folders);
 * the server's changes do not go. The maps and anchors go when the session
 * completes (eng_complete_session). */
static apr_status_t wipe_queue(eng_t *e, memds_sstore_t *ss, memds_ds_t *ds)
{
    apr_hash_t *maps, *depths = apr_hash_make(e->p);
    apr_hash_index_t *hi;
    apr_array_header_t *all, *queue;
    int i;

    if (e->db->vt->maps_load(e->db, &maps, e->dev.device_id, ss->store)
        != APR_SUCCESS) {
        return eng_db_fail(e, "reading maps");
    }
    all = apr_array_make(e->p, (int)apr_hash_count(maps) + 1,
                         sizeof(wipe_item_t));
    for (hi = apr_hash_first(e->p, maps); hi; hi = apr_hash_next(hi)) {
        wipe_item_t *w = apr_array_push(all);
        w->guid = apr_hash_this_key(hi);
        w->luid = apr_hash_this_val(hi);
        w->depth = depth_of(ds, depths, w->guid, 0);
    }
    qsort(all->elts, (size_t)all->nelts, sizeof(wipe_item_t), deepest_first);
    queue = apr_array_make(e->p, all->nelts + 1, sizeof(memds_qitem_t *));
    for (i = 0; i < all->nelts; ++i) {
        const wipe_item_t *w = &APR_ARRAY_IDX(all, i, wipe_item_t);
        memds_qitem_t *q = apr_pcalloc(e->p, sizeof(*q));
        q->store = ss->store;
        q->n = i + 1;
        q->guid = w->guid;
        q->luid = w->luid;
        q->op = MEMDS_Q_DELETE;
        APR_ARRAY_PUSH(queue, memds_qitem_t *) = q;
    }
    if (e->db->vt->queue_add_many(e->db, e->sess.session_pk, queue)
            != APR_SUCCESS
        || e->db->vt->sstore_save(e->db, e->sess.session_pk, ss)
               != APR_SUCCESS) {
        return eng_db_fail(e, "queueing the wipe");
    }
    e->resp->log_level = 5;
    e->resp->log_msg = apr_psprintf(e->p,
                                    MEMDS_LOGNO(00546) "device %s of %s: "
                                                       "remote wipe of %s, %d "
                                                       "item%s to delete",
                                                e->dev.devid, e->dev.account,
                                                ss->store, all->nelts,
                                                all->nelts == 1 ? "" : "s");
    return APR_SUCCESS;
}

apr_status_t eng_build_queue(eng_t *e, memds_sstore_t *ss)
{
    memds_ds_t *ds;
    apr_array_header_t *changes, *queue;
    apr_hash_t *maps = NULL, *seen = NULL;
    memds_syncstate_t state;
    apr_int64_t since = -1, snap;
    apr_status_t rv;
    int i, n = 0, mode = ss->alert_code;
    const char *prev_filter = NULL;
    eng_fctx_t *fx = NULL;

    if ((rv = eng_open_ds(&ds, e, ss->store)) != APR_SUCCESS) {
        return rv;
    }
    if (ds->vt->snapshot(ds, &snap) != APR_SUCCESS) {
        return eng_ds_fail(e, ds, "reading the change sequence");
    }
    ss->snapshot_seq = snap;
    ss->queue_built = 1;
    if (ENG_WIPING(e)) {
        return wipe_queue(e, ss, ds);
    }
    rv = eng_syncstate(e, &state, ss->store);
    if (rv == APR_SUCCESS) {
        since = state.last_seq;
        prev_filter = state.filter;
    }
    else if (rv != APR_ENOENT) {
        return eng_db_fail(e, "reading anchors");
    }
    if (mode == MEMDS_ALERT_REFRESH_CLIENT && !ds->vt->keep_on_refresh) {
        /* Refresh from client: what the device did not send is gone. */
        if (ds->vt->changes(ds, &changes, -1, snap) != APR_SUCCESS) {
            return eng_db_fail(e, "listing items");
        }
        if (e->db->vt->seen_load(e->db, &seen, e->sess.session_pk, ss->store)
            != APR_SUCCESS) {
            return eng_db_fail(e, "reading the slow-sync set");
        }
        for (i = 0; i < changes->nelts; ++i) {
            const memds_ds_change_t *c = APR_ARRAY_IDX(changes, i,
                                                       memds_ds_change_t *);
            if (!apr_hash_get(seen, c->guid, APR_HASH_KEY_STRING)
                && ds->vt->remove(ds, c->guid) != APR_SUCCESS) {
                return eng_ds_fail(e, ds, "deleting an item");
            }
        }
        /* The deletions are this device's own: not sent back to it. */
        if (ds->vt->snapshot(ds, &ss->snapshot_seq) != APR_SUCCESS) {
            return eng_ds_fail(e, ds, "reading the change sequence");
        }
    }
    if (mode == MEMDS_ALERT_ONE_WAY_CLIENT) {
        /* One-way from client: the server's changes wait for a later sync,
         * so the device's change position stays where it was (its own
         * changes of this session are not echoed: changed_by). */
        ss->snapshot_seq = since;
        goto done;
    }
    if (mode == MEMDS_ALERT_REFRESH_CLIENT) {
        goto done; /* the server now holds exactly the device's items */
    }
    if (mode == MEMDS_ALERT_SLOW || mode == MEMDS_ALERT_REFRESH_SERVER) {
        since = -1; /* everything live */
    }
    if (ds->vt->changes(ds, &changes, since, snap) != APR_SUCCESS) {
        return eng_ds_fail(e, ds, "listing changes");
    }
    /* The device's maps (and in a slow sync what it turned out to have),
     * read once: the queue is built in memory and stored in one go. */
    if (e->db->vt->maps_load(e->db, &maps, e->dev.device_id, ss->store)
            != APR_SUCCESS
        || (mode == MEMDS_ALERT_SLOW
            && e->db->vt->seen_load(e->db, &seen, e->sess.session_pk, ss->store)
                   != APR_SUCCESS)) {
        return eng_db_fail(e, "reading maps");
    }
    if ((rv = eng_filter_prepare(e, &fx, ss, ds, since, prev_filter))
        != APR_SUCCESS) {
        return rv;
    }
    queue = apr_array_make(e->p, changes->nelts + 1, sizeof(memds_qitem_t *));
    for (i = 0; i < changes->nelts; ++i) {
        const memds_ds_change_t *c = APR_ARRAY_IDX(changes, i,
                                                   memds_ds_change_t *);
        const char *luid = apr_hash_get(maps, c->guid, APR_HASH_KEY_STRING);
        memds_qitem_t *q;

        if (since >= 0 && c->changed_by == e->dev.device_id) {
            continue; /* the device's own change in this session */
        }
        if (mode == MEMDS_ALERT_SLOW
            && apr_hash_get(seen, c->guid, APR_HASH_KEY_STRING)) {
            continue; /* the device has it, matched or sent by it */
        }
        /* (In a slow sync a mapped item the device did not send goes as a
         * Replace: it lost it, or the server won a conflict over it.) */
        if (c->deleted && !luid) {
            continue;
        }
        if (!luid && since >= 0 && c->content_seq > 0
            && c->content_seq <= since) {
            continue; /* the device had it and soft-deleted it: a change of
                         its flags does not bring it back */
        }
        if (!eng_filter_admit(fx, c)) {
            continue; /* out of the device's filter (soft-deleted below) */
        }
        q = apr_pcalloc(e->p, sizeof(*q));
        q->store = ss->store;
        q->n = ++n;
        q->guid = c->guid;
        q->luid = luid;
        q->op = c->deleted ? MEMDS_Q_DELETE
                : luid     ? MEMDS_Q_REPLACE
                           : MEMDS_Q_ADD;
        APR_ARRAY_PUSH(queue, memds_qitem_t *) = q;
    }
    if (mode == MEMDS_ALERT_SLOW) {
        /* A slow sync lists live items only; an item the device holds (it
         * sent it in this sync, or it was mapped before) that the server
         * has deleted since (a sent Outbox message, say) must go too. */
        apr_array_header_t *all;
        if (ds->vt->changes(ds, &all, 0, snap) != APR_SUCCESS) {
            return eng_ds_fail(e, ds, "listing deletions");
        }
        for (i = 0; i < all->nelts; ++i) {
            const memds_ds_change_t *c = APR_ARRAY_IDX(all, i,
                                                       memds_ds_change_t *);
            const char *luid = apr_hash_get(maps, c->guid, APR_HASH_KEY_STRING);
            memds_qitem_t *q;
            if (!c->deleted || !luid || c->changed_by == e->dev.device_id) {
                continue;
            }
            q = apr_pcalloc(e->p, sizeof(*q));
            q->store = ss->store;
            q->n = ++n;
            q->guid = c->guid;
            q->luid = luid;
            q->op = MEMDS_Q_DELETE;
            APR_ARRAY_PUSH(queue, memds_qitem_t *) = q;
        }
    }
    if ((rv = eng_filter_finish(e, fx, ss, ds, maps, queue, &n))
        != APR_SUCCESS) {
        return rv;
    }
    if ((rv = eng_quarantine_apply(e, ss, maps, queue, &n)) != APR_SUCCESS) {
        return rv; /* held items left out, released ones again */
    }
    if (e->db->vt->queue_add_many(e->db, e->sess.session_pk, queue)
        != APR_SUCCESS) {
        return eng_db_fail(e, "queueing changes");
    }
done:
    if (e->db->vt->sstore_save(e->db, e->sess.session_pk, ss) != APR_SUCCESS) {
        return eng_db_fail(e, "saving a session datastore");
    }
    return APR_SUCCESS;
}

/* Room left in the answer for commands, per the client's MaxMsgSize. */
apr_size_t eng_limit_of(eng_t *e)
{
    apr_int64_t m = e->sess.max_msg_size > 0 ? e->sess.max_msg_size : 150000;

    return (apr_size_t)(m > MSG_MARGIN * 4 ? m - MSG_MARGIN : m);
}

/* The budget to fetch an item again with after its object of len bytes
 * (fetched with budget, 0: none) did not fit a message with room bytes for
 * it: room less a margin first, then two thirds each time; 0 when no
 * smaller budget is worth a try (or the datastore did not keep to it). */
static int retry_budget(apr_size_t *pnext, apr_size_t budget, apr_size_t len,
                        apr_size_t room)
{
    apr_size_t next = room > 512 ? room - 512 : 0;

    if (budget > 0 && len > budget) {
        return 0; /* a datastore that cannot make it smaller */
    }
    if (budget > 0 && budget <= next) {
        next = budget * 2 / 3;
    }
    if (next >= len) {
        next = len * 2 / 3;
    }
    if (next < 1024) {
        return 0;
    }
    *pnext = next;
    return 1;
}

/* The command carrying one queued change; data and type fetched now. */
static apr_status_t queued_cmd(memds_cmd_t **pc, eng_t *e, memds_ds_t *ds,
                               const memds_qitem_t *q, apr_int64_t known_seq,
                               const char **pdata, apr_size_t *plen)
{
    memds_cmd_t *c;
    memds_item_t *it = eng_item_new(e->p);
    const char *type = NULL;
    apr_status_t rv;

    *pdata = NULL;
    *plen = 0;
    if (!ENG_Q_IS_DELETE(q->op)) {
        ds->force = q->op == MEMDS_Q_REFETCH;
        rv = ds->vt->fetch(ds, q->guid, q->op == MEMDS_Q_ADD ? -1 : known_seq,
                           pdata, plen, &type);
        if (rv != APR_SUCCESS) {
            return rv; /* gone meanwhile: APR_ENOENT */
        }
    }
    c = eng_cmd_new(e, q->op == MEMDS_Q_ADD     ? MEMDS_CMD_ADD
                       : ENG_Q_IS_DELETE(q->op) ? MEMDS_CMD_DELETE
                                                : MEMDS_CMD_REPLACE);
    c->sft_del = q->op == MEMDS_Q_SOFTDELETE;
    if (e->dev.max_guid_size > 0
        && strlen(q->guid) > (apr_size_t)e->dev.max_guid_size) {
        /* The device cannot store our GUID: an Add carries the temporary
         * id "#n" (queue position), which Map and Status translate back;
         * Replace and Delete need only the device's LUID. */
        if (q->op == MEMDS_Q_ADD) {
            it->source = eng_loc(e->p, apr_psprintf(e->p, "#%d", q->n));
        }
        else {
            it->target = eng_loc(e->p, q->luid);
        }
    }
    else if (q->op == MEMDS_Q_ADD) {
        it->source = eng_loc(e->p, q->guid);
    }
    else {
        it->target = eng_loc(e->p, q->luid);
        it->source = eng_loc(e->p, q->guid);
    }
    if (!ENG_Q_IS_DELETE(q->op) && ds->vt->parent) {
        const char *parent = NULL;
        if (ds->vt->parent(ds, q->guid, &parent) == APR_SUCCESS && parent) {
            it->source_parent = parent;
        }
    }
    if (!ENG_Q_IS_DELETE(q->op)) {
        if (type) {
            c->meta = eng_meta_new(e->p);
            c->meta->type = type;
        }
        if (e->enc == MEMDS_ENC_XML && *plen > 0
            && !memds_email_item_xml_safe(*pdata, *plen, NULL)) {
            /* bytes XML cannot carry (raw 8-bit mail as message/rfc822):
             * base64, Meta Format b64 (WBXML carries them as they are) */
            char *b = apr_palloc(e->p,
                                 (apr_size_t)apr_base64_encode_len((int)*plen));
            int bl = apr_base64_encode(b, *pdata, (int)*plen);
            *pdata = b;
            *plen = bl > 0 ? (apr_size_t)bl - 1 : 0;
            if (c->meta == NULL) {
                c->meta = eng_meta_new(e->p);
            }
            c->meta->format = "b64";
        }
        it->data_kind = MEMDS_DATA_BYTES;
        it->data.data = *pdata + q->sent_bytes;
        it->data.len = *plen - (apr_size_t)q->sent_bytes;
        it->data_opaque = 1;
    }
    eng_push(&c->items, it, e->p);
    *pc = c;
    return APR_SUCCESS;
}

/* Cut a chunk of at most n bytes (rest = bytes left) that XML carries
 * unchanged: not inside a UTF-8 sequence, and with no whitespace at either
 * edge of a chunk, since XML clients (libsynthesis) trim the text of <Data>
 * and would lose it. WBXML takes any cut. */
static apr_size_t safe_cut(const char *d, apr_size_t n, apr_size_t rest,
                           memds_enc_e enc)
{
#define WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')

    if (enc == MEMDS_ENC_WBXML || n >= rest) {
        return n;
    }
    while (
        n > 0
        && (((unsigned char)d[n] & 0xC0) == 0x80 || WS(d[n]) || WS(d[n - 1]))) {
        --n;
    }
    return n;
#undef WS
}

/* One queued change placed in this answer, to undo if it does not fit. */
typedef struct placed_t {
    memds_qitem_t *q;
    apr_int64_t prev_sent;
} placed_t;

static apr_status_t mark_sent(eng_t *e, memds_qitem_t *q, apr_int64_t sent,
                              int complete, int status)
{
    q->sent_bytes = sent;
    q->sent_msg_id = complete ? e->sess.server_msg_id : 0;
    q->status = status;
    if (!q->dirty) {
        q->dirty = 1;
        APR_ARRAY_PUSH(e->dirty, memds_qitem_t *) = q;
    }
    return APR_SUCCESS;
}

/* Store the queue items changed since the last flush. An item just sent
 * whole with no status of its own needs no row write when its datastore's
 * sent_upto comes to cover it (schema/021, note_sent_upto): until the end
 * of its datastore's Sync (final 0) it stays pending; items covered are
 * dropped; with final set every other one is written. */
static apr_status_t flush_queue(eng_t *e, int final)
{
    apr_array_header_t *w = apr_array_make(e->p, e->dirty->nelts + 1,
                                           sizeof(memds_qitem_t *));
    int i, k = 0;

    for (i = 0; i < e->dirty->nelts; ++i) {
        memds_qitem_t *q = APR_ARRAY_IDX(e->dirty, i, memds_qitem_t *);
        if (q->covered) {
            q->dirty = 0;
        }
        else if (!final && q->sent_msg_id && !q->status) {
            APR_ARRAY_IDX(e->dirty, k++, memds_qitem_t *) = q;
        }
        else {
            APR_ARRAY_PUSH(w, memds_qitem_t *) = q;
        }
    }
    e->dirty->nelts = k;
    if (w->nelts
        && e->db->vt->queue_update_many(e->db, e->sess.session_pk, w)
               != APR_SUCCESS) {
        return eng_db_fail(e, "updating the send queue");
    }
    for (i = 0; i < w->nelts; ++i) {
        APR_ARRAY_IDX(w, i, memds_qitem_t *)->dirty = 0;
    }
    return APR_SUCCESS;
}

/* After a datastore's Sync is final (trimmed to fit): the items read for
 * it came in the order of n after its sent_upto; those sent whole before
 * the first one not completely sent move sent_upto, and the ones among
 * them with no status of their own are covered by it (no row write). */
static apr_status_t note_sent_upto(eng_t *e, memds_sstore_t *ss,
                                   memds_ds_t *ds,
                                   const apr_array_header_t *read)
{
    int cur = ss->sent_upto, i, rows = 0;

    for (i = 0; i < read->nelts; ++i) {
        const memds_qitem_t *q = APR_ARRAY_IDX(read, i, memds_qitem_t *);
        if (q->sent_msg_id == 0) {
            break;
        }
        cur = q->n;
        ++rows;
    }
    if (cur == ss->sent_upto) {
        return APR_SUCCESS;
    }
    ss->last_rows = rows; /* (the next message reads about as many) */
    for (i = 0; i < read->nelts; ++i) {
        memds_qitem_t *q = APR_ARRAY_IDX(read, i, memds_qitem_t *);
        if (q->n > cur) {
            break;
        }
        q->covered = q->dirty && !q->status;
    }
    if (ss->sent_upto < MEMDS_ANALYZE_ROWS && cur >= MEMDS_ANALYZE_ROWS) {
        /* A first sync: the rows kept per device and item (maps, the mail
         * levels) have grown from none to thousands within it, and the
         * planner, whose statistics do not know the device yet, took its
         * lookups by key for walks of all its rows; fresh statistics once
         * (docs/performance.md). */
        if (e->db->vt->grown) {
            e->db->vt->grown(e->db);
        }
        if (ds->grown) {
            ds->grown(ds);
        }
    }
    ss->sent_upto = cur;
    if (e->db->vt->sstore_save(e->db, e->sess.session_pk, ss) != APR_SUCCESS) {
        return eng_db_fail(e, "saving the send queue's position");
    }
    return APR_SUCCESS;
}

/* Rows of the send queue read at a time at most, and first when the
 * datastore's last message sent none (the session's first message). */
#define QUEUE_BATCH 500
/* The fewest rows read first after a message that sent some: twice what
 * it covered, at least this many (schema/027). */
#define QUEUE_BATCH_MIN 32

/* How many rows of ss's queue a message reads first: about twice what the
 * datastore's last message covered (a message of mail carries about ten
 * mails of a first sync; every row read is decoded), else QUEUE_BATCH. A
 * message with room left reads on, twice as many each time. */
static int queue_batch_first(const memds_sstore_t *ss)
{
    if (ss->last_rows <= 0 || ss->last_rows >= QUEUE_BATCH / 2) {
        return QUEUE_BATCH;
    }
    return ss->last_rows * 2 < QUEUE_BATCH_MIN ? QUEUE_BATCH_MIN
                                               : ss->last_rows * 2;
}

/* Exact bytes the answer would have with sync appended (and Final). */
static apr_size_t total_with(eng_t *e, memds_sizer_t *sz, memds_cmd_t *sync,
                             int base)
{
    e->cmd_id = base;
    eng_number(e, sync);
    return memds_sizer_total(sz, 1) + memds_sizer_cmd_size(sz, sync);
}

/* Put as many queued changes as fit into one Sync per datastore.
 * Sizes: each command's share is measured alone (a Sync's children add up:
 * every item command ends on WBXML page 0, and XML namespaces depend only
 * on the parent), then the whole Sync is measured exactly once and trimmed
 * if the sum was short; so filling is linear in the number of items.
 * *pdone: nothing is left to send in any datastore. */
apr_status_t eng_fill_sync(eng_t *e, memds_sizer_t *sz, int *pdone)
{
    apr_size_t limit = eng_limit_of(e);
    int i, j, full = 0, first_sync = 1, left = 0;
    apr_status_t rv;

    for (i = 0; e->sstores && i < e->sstores->nelts && !full; ++i) {
        memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i, memds_sstore_t *);
        memds_cmd_t *sync, one;
        memds_ds_t *ds;
        apr_array_header_t *items, *placed, *read;
        apr_size_t empty, one_empty, est;
        int base = e->cmd_id, more = 1, after = ss->sent_upto,
            batch = queue_batch_first(ss);
        apr_int64_t known_seq = -1;
        apr_size_t shrink = 0; /* a smaller budget for the item retried */
        memds_syncstate_t state;

        if (!ss->queue_built) {
            continue;
        }
        /* Up to where the device has the items it gets a Replace for (in a
         * slow sync it may have lost them: whole items then). */
        if (!ss->slow) {
            rv = eng_syncstate(e, &state, ss->store);
            if (rv == APR_SUCCESS) {
                known_seq = state.last_seq;
            }
            else if (rv != APR_ENOENT) {
                return eng_db_fail(e, "reading anchors");
            }
        }
        sync = eng_cmd_new(e, MEMDS_CMD_SYNC);
        sync->target = eng_loc(e->p, ss->client_uri);
        sync->source = eng_loc(e->p, ss->server_uri);
        sync->cmds = apr_array_make(e->p, 64, sizeof(memds_cmd_t *));
        placed = apr_array_make(e->p, 64, sizeof(placed_t));
        read = apr_array_make(e->p, 64, sizeof(memds_qitem_t *));
        if (eng_open_ds(&ds, e, ss->store) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        ds->level = eng_filter_level(e, ss);
        empty = total_with(e, sz, sync, base);
        est = empty;
        one = *sync;
        one.cmds = apr_array_make(e->p, 1, sizeof(memds_cmd_t *));
        one_empty = memds_sizer_cmd_size(sz, &one);

        while (more && !full) {
            if ((rv = flush_queue(e, 0)) != APR_SUCCESS) {
                return rv;
            }
            if (e->db->vt->queue_unsent(e->db, &items, e->sess.session_pk,
                                        ss->store, after, batch)
                != APR_SUCCESS) {
                return eng_db_fail(e, "reading the send queue");
            }
            more = items->nelts == batch;
            batch = batch * 2 < QUEUE_BATCH ? batch * 2 : QUEUE_BATCH;
            for (j = 0; j < items->nelts; ++j) {
                APR_ARRAY_PUSH(read, memds_qitem_t *) = APR_ARRAY_IDX(
                    items, j, memds_qitem_t *);
            }
            if (items->nelts) {
                after = APR_ARRAY_IDX(items, items->nelts - 1,
                                      memds_qitem_t *)->n;
            }
            if (ds->vt->prefetch) {
                /* one round trip for the new items this message can carry
                 * (the datastore reads ahead what it sends whole) */
                const char **ahead = apr_palloc(e->p,
                                                sizeof(char *)
                                                    * (apr_size_t)(items->nelts
                                                                   + 1));
                int na = 0;
                for (j = 0; j < items->nelts; ++j) {
                    const memds_qitem_t *q = APR_ARRAY_IDX(items, j,
                                                           memds_qitem_t *);
                    if (q->op == MEMDS_Q_ADD) {
                        /* (with the rest of an object begun in the last
                         * message: it is built again, from the same
                         * bytes) */
                        ahead[na++] = q->guid;
                    }
                }
                ds->size_budget = e->sess.max_obj_size > 0
                                      ? (apr_size_t)e->sess.max_obj_size
                                      : 0;
                if (na > 1
                    && ds->vt->prefetch(ds, ahead, na, limit) != APR_SUCCESS) {
                    ds->status = 0; /* (fetch does the work) */
                }
            }
            for (j = 0; j < items->nelts && !full; ++j) {
                memds_qitem_t *q = APR_ARRAY_IDX(items, j, memds_qitem_t *);
                memds_cmd_t *c;
                const char *data;
                apr_size_t len, delta;
                placed_t *pl;

                /* The object's budget: a mail too big goes truncated. */
                ds->size_budget = shrink ? shrink
                                  : e->sess.max_obj_size > 0
                                      ? (apr_size_t)e->sess.max_obj_size
                                      : 0;
                shrink = 0;
                ds->item_failed = 0;
                rv = queued_cmd(&c, e, ds, q, known_seq, &data, &len);
                if (rv == APR_ENOSPC) {
                    /* Not even its cut header fits the budget. */
                    e->resp->log_level = 4;
                    e->resp->log_msg = apr_psprintf(
                        e->p,
                        MEMDS_LOGNO(00560) "item %s of %s does not fit %lu "
                                           "bytes even truncated (%s): not "
                                           "sent",
                                    q->guid, ss->store,
                                    (unsigned long)ds->size_budget,
                                    ds->reason ? ds->reason : "?");
                    if ((rv = mark_sent(e, q, 0, 1, MEMDS_ST_ENTITY_TOO_LARGE))
                        != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                if (rv == APR_ENOENT) {
                    /* Deleted meanwhile: nothing to send; the next sync tells. */
                    if ((rv = mark_sent(e, q, 0, 1, MEMDS_ST_OK))
                        != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                if (rv != APR_SUCCESS
                    && (rv = eng_quarantine_unbuildable(e, ss, q, ds))
                           == APR_SUCCESS) {
                    /* its object cannot be built: in quarantine, the rest
                     * goes on */
                    if ((rv = mark_sent(e, q, 0, 1, ds->status))
                        != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                if (rv == APR_EAGAIN) {
                    return eng_ds_fail(e, ds, "fetching an item");
                }
                if (rv != APR_SUCCESS) {
                    return rv;
                }
                if (e->sess.max_obj_size > 0
                    && (apr_int64_t)len > e->sess.max_obj_size) {
                    e->resp->log_level = 4;
                    e->resp->log_msg = apr_psprintf(
                        e->p,
                        MEMDS_LOGNO(00517) "item %s of %s (%lu bytes) "
                                           "exceeds the device's MaxObjSize: "
                                           "not sent",
                                    q->guid, ss->store, (unsigned long)len);
                    if ((rv = mark_sent(e, q, 0, 1, MEMDS_ST_ENTITY_TOO_LARGE))
                        != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                /* This command's share, with the CmdID it will have. */
                e->cmd_id = base + 1 + sync->cmds->nelts;
                c->cmd_id = apr_itoa(e->p, e->cmd_id);
                APR_ARRAY_PUSH(one.cmds, memds_cmd_t *) = c;
                delta = memds_sizer_cmd_size(sz, &one) - one_empty;
                one.cmds->nelts = 0;
                if (est + delta <= limit) {
                    APR_ARRAY_PUSH(sync->cmds, memds_cmd_t *) = c;
                    pl = apr_array_push(placed);
                    pl->q = q;
                    pl->prev_sent = q->sent_bytes;
                    est += delta;
                    if ((rv = mark_sent(e, q, (apr_int64_t)len, 1, 0))
                        != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                full = 1;
                if (!ENG_Q_IS_DELETE(q->op) && e->dev.large_objs
                    && e->in->version != MEMDS_V10) {
                    /* (SyncML 1.0 has no MoreData) */
                    /* A large object: the biggest chunk that fits, exactly
                     * measured (binary search), cut where XML keeps it. */
                    memds_item_t *it = APR_ARRAY_IDX(c->items, 0,
                                                     memds_item_t *);
                    apr_size_t rest = len - (apr_size_t)q->sent_bytes, lo = 0,
                               hi = rest;

                    it->more_data = 1;
                    if (q->sent_bytes == 0) {
                        if (!it->meta) {
                            it->meta = eng_meta_new(e->p);
                        }
                        it->meta->size = (apr_int64_t)len;
                    }
                    APR_ARRAY_PUSH(sync->cmds, memds_cmd_t *) = c;
                    while (lo < hi) {
                        apr_size_t mid = (lo + hi + 1) / 2;
                        it->data.len = mid;
                        if (total_with(e, sz, sync, base) <= limit) {
                            lo = mid;
                        }
                        else {
                            hi = mid - 1;
                        }
                    }
                    lo = safe_cut(it->data.data, lo, rest, e->enc);
                    if (lo >= 64 || (lo > 0 && sync->cmds->nelts == 1)) {
                        it->data.len = lo;
                        pl = apr_array_push(placed);
                        pl->q = q;
                        pl->prev_sent = q->sent_bytes;
                        if ((rv = mark_sent(e, q,
                                            q->sent_bytes + (apr_int64_t)lo, 0,
                                            0))
                            != APR_SUCCESS) {
                            return rv;
                        }
                    }
                    else {
                        sync->cmds->nelts--;
                    }
                }
                else if (sync->cmds->nelts == 0 && first_sync
                         && !ENG_Q_IS_DELETE(q->op) && q->sent_bytes == 0
                         && retry_budget(&shrink, ds->size_budget, len,
                                         limit > est + one_empty
                                             ? limit - est - one_empty
                                             : 0)) {
                    /* Would not fit even an otherwise empty message, and the
                     * device takes no large objects: again, truncated to
                     * what fits (a smaller budget each time). */
                    full = 0;
                    --j;
                }
                else if (sync->cmds->nelts == 0 && first_sync) {
                    /* Would not fit even an otherwise empty message, and the
                     * device takes no large objects: it cannot be sent. */
                    e->resp->log_level = 4;
                    e->resp->log_msg = apr_psprintf(
                        e->p,
                        MEMDS_LOGNO(00518) "item %s of %s does not "
                                           "fit the device's MaxMsgSize and "
                                           "the device takes no large "
                                           "objects: not sent",
                                    q->guid, ss->store);
                    if ((rv = mark_sent(e, q, 0, 1, MEMDS_ST_ENTITY_TOO_LARGE))
                        != APR_SUCCESS) {
                        return rv;
                    }
                    full = 0;
                }
            }
        }
        if (ds->flush && ds->flush(ds) != APR_SUCCESS) {
            return eng_ds_fail(e, ds, "recording the items sent");
        }
        /* The exact size, trimmed if the shares added up short. */
        while (sync->cmds->nelts > 0 && total_with(e, sz, sync, base) > limit) {
            placed_t *pl = &APR_ARRAY_IDX(placed, placed->nelts - 1, placed_t);
            if ((rv = mark_sent(e, pl->q, pl->prev_sent, 0, 0))
                != APR_SUCCESS) {
                return rv;
            }
            placed->nelts--;
            sync->cmds->nelts--;
            full = 1;
        }
        if ((rv = note_sent_upto(e, ss, ds, read)) != APR_SUCCESS) {
            return rv;
        }
        if (sync->cmds->nelts > 0 || e->need_sync_out) {
            total_with(e, sz, sync, base); /* final CmdIDs */
            APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = sync;
            memds_sizer_add(sz, sync);
            first_sync = 0;
        }
        else {
            e->cmd_id = base;
        }
    }
    if ((rv = flush_queue(e, 1)) != APR_SUCCESS) {
        return rv;
    }
    if (e->db->vt->queue_count_unsent(e->db, &left, e->sess.session_pk)
        != APR_SUCCESS) {
        return eng_db_fail(e, "counting the send queue");
    }
    *pdone = left == 0;
    return APR_SUCCESS;
}

/* Does the answer carry any Sync (something the client must answer)? */
int eng_sent_items(const eng_t *e)
{
    int i;

    for (i = 0; i < e->out->cmds->nelts; ++i) {
        if (APR_ARRAY_IDX(e->out->cmds, i, memds_cmd_t *)->type
            == MEMDS_CMD_SYNC) {
            return 1;
        }
    }
    return 0;
}
