/* memds_ds_mail.c: the mailbox datastores (MemDSDatastore imap). One
 * datastore per IMAP folder: "Inbox", the role names "Sent", "Drafts",
 * "Trash", "Junk", "Archive" (found by SPECIAL-USE, then MemDSFolder, then
 * the usual names), or any folder by its path ("Lists/memds", "/" as the
 * separator whatever the server's).
 *
 * The mail stays on IMAP; memds.mail_messages (memds_mailstore.h) keeps one
 * row per message with its GUID, UID and flags. A sync first scans the
 * folder: with CONDSTORE/QRESYNC one SELECT tells that nothing changed, or
 * a UID FETCH CHANGEDSINCE lists what did (VANISHED for expunges); without
 * them the UIDs and flags are diffed against the rows. Every change takes a
 * seq from the same sequence as the items datastore, so the engine finds
 * changes by seq. A UIDVALIDITY change re-maps rows by (Message-ID, size,
 * INTERNALDATE). Bodies are fetched with BODY.PEEK only when sent.
 *
 * Objects: application/vnd.omads-email+xml (flags, received, emailitem; a
 * Replace for a flag change carries no emailitem when the device's DevInf
 * CTCap for the type has FieldLevel, the complete object otherwise) or
 * message/rfc822, as the device prefers (DevInf Rx-Pref). */
#include "ds/memds_mailbox.h"
#include "ds/memds_mailtrunc.h"
#include "email/memds_mime.h"
#include "store/memds_pgpool.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

#define BATCH 500

/* ------------------------------------------------------------ messages */

static int flags_of_fetch(const memds_imap_fetch_t *f)
{
    int fl = (int)(f->flags
                   & (MEMDS_IMAP_FL_SEEN | MEMDS_IMAP_FL_ANSWERED
                      | MEMDS_IMAP_FL_FLAGGED | MEMDS_IMAP_FL_DELETED
                      | MEMDS_IMAP_FL_DRAFT));
    int i;

    for (i = 0; f->flag_names && i < f->flag_names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(f->flag_names, i, const char *);
        if (n
            && (strcasecmp(n, MEMDS_EMAIL_IMAP_FORWARDED) == 0
                || strcasecmp(n, "Forwarded") == 0)) {
            fl |= MEMDS_MAIL_FORWARDED;
        }
    }
    return fl;
}

/* Metadata of new messages, inserted BATCH at a time as FETCHes arrive. */
typedef struct meta_ctx_t {
    memds_ds_t *ds;
    apr_pool_t *sub;           /* cleared after every batch */
    apr_array_header_t *batch; /* memds_mmsg_t * */
    apr_hash_t *remap;         /* key -> apr_array of old rows, or NULL */
    apr_int64_t changed_by;
    apr_status_t db; /* a store failure inside the callback */
    int inserted;    /* rows inserted (or met) by this scan */
} meta_ctx_t;

static const char *remap_key(const char *mid, apr_int64_t size, apr_time_t t,
                             apr_pool_t *p)
{
    return apr_psprintf(p, "%s|%" APR_INT64_T_FMT "|%" APR_INT64_T_FMT,
                        mid ? mid : "", size,
                        (apr_int64_t)(t / APR_USEC_PER_SEC));
}

static apr_status_t meta_flush(meta_ctx_t *m)
{
    memds_ds_t *ds = m->ds;

    if (m->batch->nelts > 0
        && memds_mail_insert_many(ds->st, ds->account, MBOX(ds)->folder,
                                  (memds_mmsg_t *const *)m->batch->elts,
                                  m->batch->nelts, m->changed_by)
               != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    m->inserted += m->batch->nelts;
    m->batch->nelts = 0;
    apr_pool_clear(m->sub);
    return APR_SUCCESS;
}

static apr_status_t meta_cb(void *baton, const memds_imap_resp_t *r)
{
    meta_ctx_t *m = baton;
    const memds_imap_fetch_t *f = r->fetch;
    memds_mmsg_t *row;
    int i;

    /* (a FETCH without RFC822.SIZE is not an answer to META_ITEMS but the
     * server telling of another client's flag change, UID included under
     * CONDSTORE: not a new message, and inserting it made the UID twice) */
    if (r->type != MEMDS_IMAP_RESP_FETCH || !(f->have & MEMDS_IMAP_F_UID)
        || !(f->have & MEMDS_IMAP_F_SIZE) || m->db != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if (f->flags & MEMDS_IMAP_FL_DELETED) {
        return APR_SUCCESS; /* deleted mail is not shown to devices */
    }
    row = apr_pcalloc(m->sub, sizeof(*row));
    row->uid = f->uid;
    row->flags = flags_of_fetch(f);
    row->size = (apr_int64_t)f->size;
    row->internaldate = (f->have & MEMDS_IMAP_F_INTERNALDATE)
                            ? f->internaldate_t
                            : 0;
    for (i = 0; f->sections && i < f->sections->nelts; ++i) {
        const memds_imap_section_t *s = &APR_ARRAY_IDX(f->sections, i,
                                                       memds_imap_section_t);
        if (s->data) {
            row->message_id = memds_mime_header_value(s->data, s->len,
                                                      "Message-ID", m->sub);
        }
    }
    if (m->remap) {
        const char *k = remap_key(row->message_id, row->size, row->internaldate,
                                  m->sub);
        apr_array_header_t *olds = apr_hash_get(m->remap, k,
                                                APR_HASH_KEY_STRING);
        if (olds && olds->nelts > 0) {
            const memds_mmsg_t *o = *(memds_mmsg_t **)apr_array_pop(olds);
            if (memds_mail_remap_one(m->ds->st, m->ds->account,
                                     MBOX(m->ds)->folder, o->guid, row->uid,
                                     row->flags, o->flags)
                != APR_SUCCESS) {
                m->db = APR_EGENERAL;
            }
            return APR_SUCCESS;
        }
    }
    APR_ARRAY_PUSH(m->batch, memds_mmsg_t *) = row;
    if (m->batch->nelts >= BATCH && meta_flush(m) != APR_SUCCESS) {
        m->db = APR_EGENERAL;
    }
    return APR_SUCCESS;
}

#define META_ITEMS \
    "(UID FLAGS RFC822.SIZE INTERNALDATE " \
    "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"

/* Fetch the metadata of uidset and insert the messages (or re-map them). */
static apr_status_t load_meta(memds_ds_t *ds, memds_imap_conn_t *c,
                              const char *uidset, apr_hash_t *remap)
{
    meta_ctx_t m;
    memds_imap_err_t err;
    apr_status_t rv;

    if (!*uidset) {
        return APR_SUCCESS;
    }
    memset(&m, 0, sizeof(m));
    m.ds = ds;
    m.remap = remap;
    apr_pool_create(&m.sub, ds->st->pool);
    m.batch = apr_array_make(ds->st->pool, BATCH, sizeof(memds_mmsg_t *));
    rv = memds_imap_uid_fetch(c, uidset, META_ITEMS, 0, 0, meta_cb, &m, &err);
    if (m.db != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    if (rv != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "UID FETCH");
    }
    if (meta_flush(&m) != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    apr_pool_destroy(m.sub);
    if (m.inserted >= MEMDS_ANALYZE_ROWS) {
        /* A folder's first scan: the rows of this device's first sync are
         * read by GUID (memds_mail_pre_many) once per message going down;
         * with the folder unknown to the statistics the planner walked the
         * whole folder each time (docs/performance.md, Mail). */
        memds_store_analyze(ds->st, "memds.mail_messages");
    }
    return APR_SUCCESS;
}

/* UIDs and flags as the server reports them. */
typedef struct uf_ctx_t {
    apr_array_header_t *uids;     /* apr_int64_t */
    apr_array_header_t *flags;    /* int */
    apr_array_header_t *vanished; /* apr_int64_t */
    int skipped; /* rows another transaction held: not applied (apply) */
    apr_int64_t fence; /* memds_mail_seq_fence before the FETCH; -1: none */
} uf_ctx_t;

static apr_status_t uf_cb(void *baton, const memds_imap_resp_t *r)
{
    uf_ctx_t *u = baton;

    if (r->type == MEMDS_IMAP_RESP_FETCH
        && (r->fetch->have & MEMDS_IMAP_F_UID)) {
        APR_ARRAY_PUSH(u->uids, apr_int64_t) = r->fetch->uid;
        APR_ARRAY_PUSH(u->flags, int) = flags_of_fetch(r->fetch);
    }
    else if (r->type == MEMDS_IMAP_RESP_VANISHED && r->uids) {
        int i;
        apr_uint32_t n;
        for (i = 0; i < r->uids->nranges; ++i) {
            for (n = r->uids->ranges[i].lo;; ++n) {
                APR_ARRAY_PUSH(u->vanished, apr_int64_t) = n;
                if (n >= r->uids->ranges[i].hi) {
                    break;
                }
            }
        }
    }
    return APR_SUCCESS;
}

/* Apply what the server reported (u) to the rows: flag changes, deletions
 * (expunged, or flagged \Deleted unless MemDSDeletePolicy is flag: then
 * \Deleted is a flag the devices get, and the message goes when it is
 * expunged), and new messages (not those already flagged \Deleted). full:
 * u lists every message, so rows it does not list are gone. */
static apr_status_t apply(memds_ds_t *ds, memds_imap_conn_t *c, uf_ctx_t *u,
                          int full)
{
    apr_pool_t *p = ds->st->pool;
    apr_array_header_t *rows, *fu, *ff, *gone, *newu;
    apr_hash_t *byuid = apr_hash_make(p), *present = apr_hash_make(p);
    apr_uint32_t *nu;
    int nf = 0, ng = 0;
    int i, gone_flag = MBOX(ds)->cfg->delete_policy == MEMDS_DELETE_FLAG
                           ? 0
                           : MEMDS_MAIL_DELETED;

    if (memds_mail_live(ds->st, &rows, ds->account, MBOX(ds)->folder,
                        full ? NULL : (const apr_int64_t *)u->uids->elts,
                        u->uids->nelts, 0)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mmsg_t *r = APR_ARRAY_IDX(rows, i, memds_mmsg_t *);
        apr_hash_set(byuid, &r->uid, sizeof(r->uid), r);
    }
    fu = apr_array_make(p, 16, sizeof(apr_int64_t));
    ff = apr_array_make(p, 16, sizeof(int));
    gone = apr_array_make(p, 16, sizeof(apr_int64_t));
    newu = apr_array_make(p, 16, sizeof(apr_uint32_t));
    for (i = 0; i < u->uids->nelts; ++i) {
        apr_int64_t *uid = &APR_ARRAY_IDX(u->uids, i, apr_int64_t);
        int fl = APR_ARRAY_IDX(u->flags, i, int);
        const memds_mmsg_t *r = apr_hash_get(byuid, uid, sizeof(*uid));
        if (r) {
            apr_hash_set(present, uid, sizeof(*uid), r);
            if (fl & gone_flag) {
                APR_ARRAY_PUSH(gone, apr_int64_t) = *uid;
            }
            else if (fl != r->flags) {
                APR_ARRAY_PUSH(fu, apr_int64_t) = *uid;
                APR_ARRAY_PUSH(ff, int) = fl;
            }
        }
        else if (!(fl & MEMDS_MAIL_DELETED)) {
            APR_ARRAY_PUSH(newu, apr_uint32_t) = (apr_uint32_t)*uid;
        }
    }
    if (full) {
        for (i = 0; i < rows->nelts; ++i) {
            memds_mmsg_t *r = APR_ARRAY_IDX(rows, i, memds_mmsg_t *);
            if (!apr_hash_get(present, &r->uid, sizeof(r->uid))) {
                APR_ARRAY_PUSH(gone, apr_int64_t) = r->uid;
            }
        }
    }
    for (i = 0; i < u->vanished->nelts; ++i) {
        APR_ARRAY_PUSH(gone, apr_int64_t) = APR_ARRAY_IDX(u->vanished, i,
                                                          apr_int64_t);
    }
    /* (rows a device's request holds are skipped, not waited for: its own
     * change of them is under way; u->skipped keeps the scan's position) */
    if (memds_mail_flags_many(ds->st, ds->account, MBOX(ds)->folder,
                              (const apr_int64_t *)fu->elts,
                              (const int *)ff->elts, fu->nelts, 0, u->fence,
                              &nf)
            != APR_SUCCESS
        || memds_mail_gone_many(ds->st, ds->account, MBOX(ds)->folder,
                                (const apr_int64_t *)gone->elts, gone->nelts, 0,
                                &ng)
               != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    u->skipped += nf + ng;
    nu = (apr_uint32_t *)newu->elts;
    return load_meta(ds, c, memds_imap_set_from_uids(nu, newu->nelts, p), NULL);
}

/* What a scan's UID FETCH of flags reports, with the fence read before it
 * is sent (memds_mail_seq_fence: flags from that answer never undo a row
 * changed after it). Only a scan that asks IMAP for flags reads it. */
static apr_status_t uf_make(memds_ds_t *ds, uf_ctx_t **pu)
{
    apr_pool_t *p = ds->st->pool;
    uf_ctx_t *u = apr_pcalloc(p, sizeof(*u));

    u->uids = apr_array_make(p, 64, sizeof(apr_int64_t));
    u->flags = apr_array_make(p, 64, sizeof(int));
    u->vanished = apr_array_make(p, 16, sizeof(apr_int64_t));
    *pu = u;
    if (memds_mail_seq_fence(ds->st, &u->fence) != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

/* UIDVALIDITY changed: find every message again by (Message-ID, size,
 * INTERNALDATE) so that devices keep their copies. */
static apr_status_t remap(memds_ds_t *ds, memds_imap_conn_t *c,
                          const memds_imap_mailbox_t *mb)
{
    apr_pool_t *p = ds->st->pool;
    apr_array_header_t *rows;
    apr_hash_t *h = apr_hash_make(p);
    int i;

    if (memds_mail_remap_begin(ds->st, ds->account, MBOX(ds)->folder)
            != APR_SUCCESS
        || memds_mail_live(ds->st, &rows, ds->account, MBOX(ds)->folder, NULL,
                           0, 1)
               != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mmsg_t *r = APR_ARRAY_IDX(rows, i, memds_mmsg_t *);
        const char *k = remap_key(r->message_id, r->size, r->internaldate, p);
        apr_array_header_t *a = apr_hash_get(h, k, APR_HASH_KEY_STRING);
        if (a == NULL) {
            a = apr_array_make(p, 1, sizeof(memds_mmsg_t *));
            apr_hash_set(h, k, APR_HASH_KEY_STRING, a);
        }
        APR_ARRAY_PUSH(a, memds_mmsg_t *) = r;
    }
    if (mb->exists > 0 && load_meta(ds, c, "1:*", h) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_mail_remap_finish(ds->st, ds->account, MBOX(ds)->folder)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    memds_logf(MBOX(ds)->cfg->log, MEMDS_LOG_NOTICE, APR_SUCCESS,
               MEMDS_LOGNO(00400) "mailbox %s of %s: UIDVALIDITY "
                                  "changed to %u, %d known messages re-mapped",
                           MBOX(ds)->folder, ds->account, mb->uidvalidity,
                           rows->nelts);
    return APR_SUCCESS;
}

/* Bring memds.mail_messages up to date with the folder, in ds->st's
 * transaction. */
static apr_status_t scan_locked(memds_ds_t *ds)
{
    memds_mbox_t *x = MBOX(ds);
    memds_imap_conn_t *c;
    const memds_imap_mailbox_t *mb;
    memds_mfolder_t f, nf;
    memds_imap_err_t err;
    uf_ctx_t *u = NULL;
    apr_status_t rv;

    /* The folder row lock makes concurrent scans of one folder (two devices
     * of an account) run one after the other. */
    if (memds_mail_folder_lock(ds->st, &f, ds->account, x->folder)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    if (f.fresh && f.uidvalidity != 0) {
        /* Another device's scan of the folder began after this transaction
         * did (while this one waited for the lock) and has committed: what
         * IMAP held when this sync came is recorded. The devices of an
         * account waiting for the lock share one scan. */
        x->scanned = 1;
        return APR_SUCCESS;
    }
    if (memds_mbox_select(ds, &c, &mb) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    nf.uidvalidity = mb->uidvalidity;
    nf.highestmodseq = mb->condstore && !mb->nomodseq
                           ? (apr_int64_t)mb->highestmodseq
                           : 0;
    nf.uidnext = mb->uidnext;
    nf.messages = mb->exists;
    if (f.uidvalidity != 0 && f.uidvalidity != (apr_int64_t)mb->uidvalidity) {
        rv = remap(ds, c, mb);
    }
    else if (f.uidvalidity != 0 && nf.highestmodseq > 0
             && f.highestmodseq == nf.highestmodseq) {
        rv = APR_SUCCESS; /* CONDSTORE: nothing changed */
    }
    else if (f.uidvalidity != 0 && nf.highestmodseq > 0 && f.highestmodseq > 0
             && memds_imap_qresync(c)) {
        /* QRESYNC: what changed since, and what vanished */
        if (uf_make(ds, &u) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        rv = mb->exists == 0 && f.messages == 0
                 ? APR_SUCCESS
                 : memds_imap_uid_fetch(c, "1:*", "(UID FLAGS)",
                                        (apr_uint64_t)f.highestmodseq,
                                        MEMDS_IMAP_FETCH_VANISHED, uf_cb, u,
                                        &err);
        if (rv != APR_SUCCESS) {
            return memds_mbox_fail_imap(ds, &err, "UID FETCH CHANGEDSINCE");
        }
        rv = apply(ds, c, u, 0);
    }
    else {
        /* No CONDSTORE (or the first scan): diff every UID and its flags. */
        if (uf_make(ds, &u) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (mb->exists > 0
            && memds_imap_uid_fetch(c, "1:*", "(UID FLAGS)", 0, 0, uf_cb, u,
                                    &err)
                   != APR_SUCCESS) {
            return memds_mbox_fail_imap(ds, &err, "UID FETCH");
        }
        rv = apply(ds, c, u, 1);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (u && u->skipped) {
        /* Rows a device's request held were left as they were: the next
         * scan asks for the changes since the old position again. */
        nf.highestmodseq = f.highestmodseq;
    }
    if (memds_mail_folder_save(ds->st, ds->account, x->folder, &nf)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    x->scanned = 1;
    return APR_SUCCESS;
}

/* Lock waits of a scan in its own transaction, at most (ms). */
#define SCAN_LOCK_WAIT 2000

/* A per-folder datastore scans in a transaction of its own (scan_apart),
 * unless this request's transaction holds the folder's row lock (an Add)
 * or gave rows of it new UIDs (a new version, a copy filed in Sent):
 * memds_mbox_note_held; the scan would wait for its own request. The
 * hierarchical datastore scans in the request's transaction. */
static int scan_apart_ok(memds_ds_t *ds)
{
    memds_mbox_t *x = MBOX(ds);

    return !x->hier && !x->locked && x->folder && x->cfg && x->cfg->ledger_pool
           && !memds_mbox_is_held(ds, x->folder);
}

/* The scan in a transaction of its own on a connection of the ledger pool
 * (docs/performance.md, "Concurrency"), committed at once: the folder's
 * row lock is held for the scan alone, not for the rest of the request,
 * so the devices of an account no longer sync one at a time, and the
 * seqs it takes are not held open. Its rows are what IMAP holds whether
 * or not the request succeeds. A lock it waits for longer than
 * SCAN_LOCK_WAIT, or a deadlock it loses, ends the scan with nothing
 * written: this sync sends what earlier scans recorded, the next one
 * scans again. APR_EAGAIN: no connection, scan in the request's
 * transaction. */
static apr_status_t scan_apart(memds_ds_t *ds)
{
    memds_mbox_t *x = MBOX(ds);
    memds_store_t *req = ds->st, own;
    memds_pgconn_t *conn;
    const char *why = NULL;
    apr_status_t rv;

    if (memds_pgpool_acquire(&conn, x->cfg->ledger_pool, &why, req->pool)
        != APR_SUCCESS) {
        return APR_EAGAIN;
    }
    memds_store_init(&own, conn, req->pool);
    ds->st = &own;
    rv = memds_store_begin(&own);
    if (rv == APR_SUCCESS) {
        rv = memds_mail_lock_timeout(&own, SCAN_LOCK_WAIT);
    }
    if (rv != APR_SUCCESS) {
        ds->st = req;
        memds_pgpool_release(x->cfg->ledger_pool, conn, 1);
        return APR_EAGAIN;
    }
    rv = scan_locked(ds);
    ds->st = req;
    if (rv == APR_SUCCESS && memds_store_commit(&own) != APR_SUCCESS) {
        ds->status = 0;
        ds->reason = own.err;
        rv = APR_EGENERAL;
    }
    else if (rv != APR_SUCCESS) {
        memds_store_rollback(&own);
    }
    memds_pgpool_release(x->cfg->ledger_pool, conn, 0);
    if (rv != APR_SUCCESS && ds->status == 0 && own.err
        && (strstr(own.err, "55P03") || strstr(own.err, "40P01"))) {
        memds_logf(x->cfg->log, MEMDS_LOG_INFO, APR_SUCCESS,
                   MEMDS_LOGNO(00770) "mailbox %s of %s: scan left for the "
                                      "next sync (%s)",
                               x->folder, ds->account, own.err);
        ds->reason = NULL;
        x->scanned = 1;
        return APR_SUCCESS;
    }
    return rv;
}

/* Bring memds.mail_messages up to date with the folder. */
apr_status_t memds_mbox_scan(memds_ds_t *ds)
{
    apr_status_t rv;

    if (MBOX(ds)->scanned) {
        return APR_SUCCESS;
    }
    if (memds_mbox_resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (scan_apart_ok(ds) && (rv = scan_apart(ds)) != APR_EAGAIN) {
        return rv;
    }
    return scan_locked(ds);
}

/* ------------------------------------------------------------ the vtable */

static apr_status_t imap_snapshot(memds_ds_t *ds, apr_int64_t *pseq)
{
    if ((MBOX(ds)->hier ? memds_mtree_scan(ds) : memds_mbox_scan(ds))
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (MBOX(ds)->hier && MBOX(ds)->cfg->smtp_url
        && memds_outbox_acknowledge(ds->st, ds->account, ds->device_id,
                                    ds->store, MEMDS_OUTBOX_FOLDER)
               != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    if (memds_store_items_seq(ds->st, pseq) != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t imap_changes(memds_ds_t *ds, apr_array_header_t **pchanges,
                                 apr_int64_t since, apr_int64_t upto)
{
    apr_array_header_t *rows;

    if (MBOX(ds)->hier) {
        if (memds_mail_changed_all(ds->st, &rows, ds->account, since, upto)
            != APR_SUCCESS) {
            return memds_mbox_fail_db(ds);
        }
    }
    else if (memds_mbox_resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    else if (memds_mail_changed(ds->st, &rows, ds->account, MBOX(ds)->folder,
                                since, upto)
             != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    *pchanges = memds_mbox_changes_of(rows, ds->st->pool);
    return APR_SUCCESS;
}

/* What the read-ahead read of one new mail (memds_mbox_t.pre), taken by
 * its fetch. */
typedef struct pre_t {
    memds_mmsg_t row;         /* its live row */
    const char *level, *want; /* recorded level (NULL: none) and wish */
    int sent_read, sent_by;   /* the Sent check was made; its answer */
} pre_t;

/* A level fetch recorded for memds_ds_vt.flush (memds_mbox_t.puts). */
typedef struct put_t {
    const char *level;
    apr_int64_t sent_bytes;
} put_t;

/* The read-ahead's record of guid, taken (NULL: none). */
static pre_t *take_pre(memds_mbox_t *x, const char *guid)
{
    pre_t *pre = x->pre ? apr_hash_get(x->pre, guid, APR_HASH_KEY_STRING)
                        : NULL;

    if (pre) {
        apr_hash_set(x->pre, guid, APR_HASH_KEY_STRING, NULL);
    }
    return pre;
}

/* The row of a live message; APR_ENOENT if unknown or deleted. */

static apr_status_t live_row(memds_ds_t *ds, memds_mmsg_t *row,
                             const char *guid)
{
    apr_status_t rv;

    if (MBOX(ds)->hier) {
        const char *folder;
        rv = memds_mail_get_any(ds->st, row, &folder, ds->account, guid);
        if (rv == APR_SUCCESS) {
            return memds_mbox_set_folder(ds, folder);
        }
        return rv == APR_ENOENT ? rv : memds_mbox_fail_db(ds);
    }
    if (memds_mbox_resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = memds_mail_get(ds->st, row, ds->account, MBOX(ds)->folder, guid);
    if (rv == APR_ENOENT
        || (rv == APR_SUCCESS && (row->deleted || row->uid <= 0))) {
        return APR_ENOENT;
    }
    return rv == APR_SUCCESS ? rv : memds_mbox_fail_db(ds);
}

/* A truncation setting ("off" or a byte count) as a level. */
static int level_of_setting(memds_ds_level_t *l, const char *v)
{
    char *end;
    apr_int64_t n;

    memset(l, 0, sizeof(*l));
    if (v && strcasecmp(v, "off") == 0) {
        l->whole_max = l->text_max = -1;
        l->attach = 1;
        return 1;
    }
    n = v ? apr_strtoi64(v, &end, 10) : -1;
    if (v == NULL || end == v || *end || n < 0) {
        return 0;
    }
    l->whole_max = l->text_max = n;
    return 1;
}

/* The level a device gets mail at by default: the account's setting,
 * else MemDSTruncate (NULL: whole). */
static apr_status_t default_level(memds_ds_t *ds,
                                  const memds_ds_level_t **plevel)
{
    memds_mbox_t *x = MBOX(ds);

    if (!x->acct_read) {
        const char *v = NULL;
        apr_status_t rv = memds_account_truncate(ds->st, &v, ds->account);
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return memds_mbox_fail_db(ds);
        }
        x->acct_has = rv == APR_SUCCESS && level_of_setting(&x->acct_level, v);
        x->acct_read = 1;
    }
    *plevel = x->acct_has ? &x->acct_level : x->cfg->truncate;
    return APR_SUCCESS;
}

/* The level to send the mail row at now (docs/mail.md "Truncation"):
 * what the device asked for (a larger X-Sync-Message-Limit), what the
 * session asks for when forced (get-more), for a change of flags only the
 * level the device already has, else the session's level or the default.
 * *pflags_only: the device merges field-level replaces and has the
 * content: its flags are enough. *pl NULL: whole. */
static apr_status_t level_for(memds_ds_t *ds, const memds_mmsg_t *row,
                              const pre_t *pre, apr_int64_t known_seq,
                              const memds_ds_level_t **pl, int *pflags_only)
{
    memds_mbox_t *x = MBOX(ds);
    apr_pool_t *p = ds->st->pool;
    const char *have = NULL, *want = NULL;
    memds_ds_level_t *l = apr_pcalloc(p, sizeof(*l));
    const put_t *put = x->puts ? apr_hash_get(x->puts, row->guid,
                                              APR_HASH_KEY_STRING)
                               : NULL;
    apr_status_t rv;

    *pflags_only = 0;
    if (put) {
        /* recorded in this message, not yet written */
        have = put->level;
        rv = APR_SUCCESS;
    }
    else if (pre) {
        have = pre->level;
        want = pre->want;
        rv = have ? APR_SUCCESS : APR_ENOENT;
    }
    else {
        rv = memds_mail_level_get(ds->st, &have, &want, ds->device_id,
                                  ds->store, row->guid);
    }
    if (rv != APR_SUCCESS && rv != APR_ENOENT) {
        return memds_mbox_fail_db(ds);
    }
    if (want && memds_ds_level_parse(l, want, p) == APR_SUCCESS) {
        *pl = l;
        return APR_SUCCESS;
    }
    if (ds->force) {
        *pl = ds->level; /* get-more: the session's level, else whole */
        return APR_SUCCESS;
    }
    if (known_seq >= 0 && row->content_seq <= known_seq) {
        /* The device has this content: only its flags changed. A device
         * that merges field-level replaces gets them alone; any other
         * replaces its whole copy with what it gets, so it gets the
         * complete object at the level it has. */
        if (!x->want_rfc822 && x->env.field_level) {
            *pflags_only = 1;
            return APR_SUCCESS;
        }
        if (have && memds_ds_level_parse(l, have, p) == APR_SUCCESS) {
            *pl = l;
            return APR_SUCCESS;
        }
    }
    if (known_seq < 0 && x->cfg->smtp_url) {
        /* The sender's own Sent copy: the device wrote it, so it gets the
         * header and flags (what it already has), never the whole message
         * with its attachments again; get-more brings the rest. */
        rv = pre && pre->sent_read
                 ? (pre->sent_by ? APR_SUCCESS : APR_ENOENT)
                 : memds_outbox_sent_by(ds->st, ds->account, ds->device_id,
                                        row->guid);
        if (rv == APR_SUCCESS) {
            l->whole_max = l->text_max = 0;
            *pl = l;
            return APR_SUCCESS;
        }
        if (rv != APR_ENOENT) {
            return memds_mbox_fail_db(ds);
        }
    }
    if (ds->level) {
        *pl = ds->level;
        return APR_SUCCESS;
    }
    return default_level(ds, pl);
}

static apr_status_t imap_fetch(memds_ds_t *ds, const char *guid,
                               apr_int64_t known_seq, const char **pdata,
                               apr_size_t *plen, const char **ptype)
{
    memds_mbox_t *x = MBOX(ds);
    apr_pool_t *p = ds->st->pool;
    memds_mmsg_t row;
    memds_imap_conn_t *c = NULL;
    memds_imap_err_t err;
    memds_imap_body_info_t info;
    memds_email_t *e;
    memds_buf_t body, out;
    memds_codec_err_t cerr;
    const memds_ds_level_t *lv = NULL;
    const char *sent_level = "whole";
    const memds_buf_t *ahead;
    int flags_only = 0, truncated = 0;
    pre_t *pre;
    apr_status_t rv;

    if (x->hier && guid[0] == 'f') {
        return memds_mtree_folder_fetch(ds, guid, pdata, plen, ptype);
    }
    if ((pre = take_pre(x, guid)) != NULL) {
        row = pre->row; /* (read ahead with the others of this message) */
    }
    else if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    e = memds_email_make(p);
    e->read = (row.flags & MEMDS_MAIL_SEEN) ? MEMDS_EMAIL_TRUE
                                            : MEMDS_EMAIL_FALSE;
    e->forwarded = (row.flags & MEMDS_MAIL_FORWARDED) ? MEMDS_EMAIL_TRUE
                                                      : MEMDS_EMAIL_FALSE;
    e->replied = (row.flags & MEMDS_MAIL_ANSWERED) ? MEMDS_EMAIL_TRUE
                                                   : MEMDS_EMAIL_FALSE;
    e->flagged = (row.flags & MEMDS_MAIL_FLAGGED) ? MEMDS_EMAIL_TRUE
                                                  : MEMDS_EMAIL_FALSE;
    e->deleted = (row.flags & MEMDS_MAIL_DELETED) ? MEMDS_EMAIL_TRUE
                                                  : MEMDS_EMAIL_FALSE;
    if (row.internaldate) {
        memds_email_time_set(&e->received, row.internaldate, p);
    }
    if (row.updated_at) {
        /* <modified>: the last change the server knows of (arrival, flags,
         * a new version) */
        memds_email_time_set(&e->modified, row.updated_at, p);
    }
    if ((rv = level_for(ds, &row, pre, known_seq, &lv, &flags_only))
        != APR_SUCCESS) {
        return rv;
    }
    if (flags_only) {
        goto build;
    }
    if (memds_mbox_select(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if ((lv && !memds_ds_level_is_whole(lv)
         && (lv->attach_name || row.size > lv->whole_max))
        || (ds->size_budget > 0
            && (apr_size_t)row.size
                       + (x->want_rfc822 ? 0 : 512 + (apr_size_t)row.size / 8)
                   > ds->size_budget)) {
        /* more than the level or the device's budget: truncated, never
         * fetched whole */
        rv = memds_mbox_fetch_truncated(ds, c, &row, e, x->want_rfc822, lv,
                                        pdata, plen, ptype);
        if (rv != APR_EEXIST) {
            truncated = 1;
            goto sent;
        }
        e = apr_pmemdup(p, e, sizeof(*e)); /* (nothing left out: whole) */
        e->has_truncated = 0;
        e->trunc_body = e->trunc_attach = NULL;
    }
    ahead = x->ahead ? apr_hash_get(x->ahead, row.guid, APR_HASH_KEY_STRING)
                     : NULL;
    if (ahead) {
        /* read ahead with the others of this message (prefetch) */
        body = *ahead;
        apr_hash_set(x->ahead, row.guid, APR_HASH_KEY_STRING, NULL);
    }
    else {
        memds_buf_init(&body, row.size > 0 ? (apr_size_t)row.size + 1 : 4096,
                       p);
        if (memds_imap_fetch_body(c, (apr_uint32_t)row.uid, "", 0, 0, 0,
                                  memds_mbox_body_cb, &body, &info, &err)
            != APR_SUCCESS) {
            if (err.kind == MEMDS_IMAP_E_NOTFOUND) {
                return APR_ENOENT; /* expunged since the scan */
            }
            ds->item_failed = 1; /* (selected fine: this message's fetch) */
            return memds_mbox_fail_imap(ds, &err, "UID FETCH BODY.PEEK[]");
        }
    }
    if (!x->want_rfc822) {
        /* the mail as the email object's text: what XML cannot carry fails
         * the build, found while the text is escaped (one pass over the
         * mail, not a check first) */
        memds_email_t keep = *e;
        memds_buf_t orig = body;
        int tries;
        for (tries = 0; tries < 2; ++tries) {
            const char *sb;
            apr_size_t sbl;
            e->has_item = 1;
            e->item = body.data;
            e->item_len = body.len;
            e->item_checked = 0;
            memds_mbox_set_created(e, body.data, body.len, p);
            memds_buf_init(&out, 512 + body.len + body.len / 8, p);
            memset(&cerr, 0, sizeof(cerr));
            if (memds_email_build(&out, e, MEMDS_EMAIL_STYLE_TEXT, &cerr, p)
                == APR_SUCCESS) {
                goto built;
            }
            *e = keep;
            if (memds_email_item_xml_safe(body.data, body.len, NULL)) {
                return memds_mbox_fail(
                    ds, MEMDS_ST_COMMAND_FAILED,
                    apr_psprintf(p, "building the email object: %s",
                                 cerr.msg ? cerr.msg : "?"));
            }
            /* a device that takes only the email object: the mail made
             * 7-bit (transfer-encoded parts, encoded words), never a type
             * it did not announce */
            if (tries > 0 || !x->env.no_rfc822
                || memds_mime_seven_bit(&sb, &sbl, body.data, body.len, p)
                       != APR_SUCCESS) {
                break;
            }
            body.data = (char *)sb;
            body.len = sbl;
        }
        body = orig; /* (as it is, for message/rfc822) */
    }
    /* (raw 8-bit mail in another charset cannot be XML text: it goes as
     * message/rfc822, which WBXML and b64 carry byte for byte) */
    if (ds->size_budget > 0 && body.len > ds->size_budget) {
        rv = memds_mbox_fetch_truncated(ds, c, &row, e, 1, lv, pdata, plen,
                                        ptype);
        truncated = 1;
        goto sent;
    }
    *pdata = body.data;
    *plen = body.len;
    *ptype = MEMDS_RFC822;
    rv = APR_SUCCESS;
    goto sent;
build:
    memds_buf_init(&out, 512 + e->item_len + e->item_len / 8, p);
    memset(&cerr, 0, sizeof(cerr));
    if (memds_email_build(&out, e, MEMDS_EMAIL_STYLE_TEXT, &cerr, p)
        != APR_SUCCESS) {
        return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                               apr_psprintf(p, "building the email object: %s",
                                            cerr.msg ? cerr.msg : "?"));
    }
built:
    if (e->has_item && ds->size_budget > 0 && out.len > ds->size_budget) {
        /* (XML escaping made it too big) */
        e->has_item = 0;
        rv = memds_mbox_fetch_truncated(ds, c, &row, e, 0, lv, pdata, plen,
                                        ptype);
        truncated = 1;
        goto sent;
    }
    *pdata = out.data;
    *plen = out.len;
    *ptype = MEMDS_EMAIL_CTTYPE;
    if (flags_only) {
        return APR_SUCCESS; /* (the device keeps its level) */
    }
    rv = APR_SUCCESS;
sent:
    if (rv == APR_EEXIST) {
        rv = APR_SUCCESS; /* (cannot happen past the first try) */
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (truncated) {
        /* truncated: what the device now holds, for later changes */
        memds_ds_level_t held;
        memset(&held, 0, sizeof(held));
        held.text_max = lv ? lv->text_max : -1;
        held.attach_name = lv ? lv->attach_name : NULL;
        sent_level = memds_ds_level_format(&held, p);
    }
    if (x->puts) {
        /* written with the others of this message (imap_flush) */
        put_t *put = apr_palloc(p, sizeof(*put));
        put->level = sent_level;
        put->sent_bytes = (apr_int64_t)*plen;
        apr_hash_set(x->puts, row.guid, APR_HASH_KEY_STRING, put);
    }
    else if (memds_mail_level_put(ds->st, ds->device_id, ds->store, row.guid,
                                  sent_level, (apr_int64_t)*plen)
             != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

/* adopt: a device's Add, whose row memds_mail_add makes (or takes over:
 * memds_mbox_find_orphan); not a new version, whose row is the old one's */
static apr_status_t append_msg(memds_ds_t *ds, memds_imap_conn_t *c,
                               const memds_mbox_in_t *in, int flags, int adopt,
                               memds_mmsg_t *row)
{
    memds_imap_err_t err;
    apr_uint32_t uv = 0, uid = 0;
    apr_time_t when = 0;

    if (in->email && in->email->received.text
        && !in->email->received.floating) {
        when = in->email->received.t;
    }
    /* the copy an earlier try appended before it died (its row was never
     * committed) is this message: not appended twice
     * (docs/crash-recovery.md) */
    if (memds_mbox_find_orphan(ds, c, MBOX(ds)->folder, in->msg, in->len,
                               in->message_id, adopt, &uid)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    MEMDS_FAULT("imap-append-before");
    if (uid == 0
        && memds_imap_append(c, MBOX(ds)->folder,
                             memds_mbox_flag_list(flags, ds->st->pool), when,
                             in->msg, in->len, &uv, &uid, &err)
               != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "APPEND");
    }
    MEMDS_FAULT("imap-append-after");
    if (uid == 0) {
        return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                               "the IMAP server has no UIDPLUS: the appended "
                               "message's UID is unknown");
    }
    memset(row, 0, sizeof(*row));
    row->uid = uid;
    row->flags = flags;
    row->message_id = in->message_id;
    row->size = (apr_int64_t)in->len;
    row->internaldate = when;
    return APR_SUCCESS;
}

/* A message the device puts into the Outbox folder of the hierarchical
 * datastore: handed to the Outbox datastore of the same kind (found through
 * the registry like any other), whose outcome becomes this one's. */
static apr_status_t send_via_outbox(memds_ds_t *ds, const char **pguid,
                                    const char *type, const char *data,
                                    apr_size_t len)
{
    memds_ds_t *ob;
    apr_status_t rv;

    if (memds_ds_open(&ob, &MBOX(ds)->env, ds->st, ds->account, "Outbox",
                      ds->device_id, ds->st->pool)
            != APR_SUCCESS
        || strcmp(ob->vt->kind, "outbox") != 0) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                               "no Outbox: sending is not configured");
    }
    ob->store = ds->store; /* the ledger keys on this datastore */
    ob->luid_hint = ds->luid_hint;
    ob->parent_hint = ds->parent_hint;
    rv = ob->vt->add(ob, pguid, type, data, len);
    ds->status = ob->status;
    ds->reason = ob->reason;
    ds->ok_status = ob->ok_status;
    return rv;
}

/* A per-folder datastore's writes take the folder's row lock first, as
 * its scan does (memds_mbox_scan): the same order in every request. A
 * device's flag change or delete used to write message rows before its own
 * scan took the folder lock, while another device's scan held that lock
 * and waited for those rows: a deadlock (found by bench/load, 40P01). */
static apr_status_t lock_folder(memds_ds_t *ds)
{
    memds_mbox_t *x = MBOX(ds);
    memds_mfolder_t f;

    if (x->hier || x->locked) {
        return APR_SUCCESS;
    }
    if (memds_mbox_resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_mail_folder_lock(ds->st, &f, ds->account, x->folder)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    x->locked = 1;
    memds_mbox_note_held(ds, x->folder);
    return APR_SUCCESS;
}

/* A device's Replace or Delete: the folder's row lock only when the scan
 * runs in the request's transaction (lock_folder); a scan in a transaction
 * of its own skips the rows this request holds instead of waiting. */
static apr_status_t lock_for_change(memds_ds_t *ds)
{
    if (!MBOX(ds)->hier && memds_mbox_resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return scan_apart_ok(ds) ? APR_SUCCESS : lock_folder(ds);
}

static apr_status_t imap_add(memds_ds_t *ds, const char **pguid,
                             const char *type, const char *data, apr_size_t len)
{
    memds_mbox_in_t in;
    memds_imap_conn_t *c;
    memds_mmsg_t row;

    if (MBOX(ds)->hier) {
        memds_mfitem_t f;
        int named;
        if (memds_mtree_is_folder_item(type, data, len)) {
            return memds_mtree_folder_add(ds, pguid, data, len);
        }
        if (memds_mtree_target_folder(ds, &f, &named) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (named && strcmp(f.folder, MEMDS_OUTBOX_FOLDER) == 0) {
            return send_via_outbox(ds, pguid, type, data, len);
        }
        if (memds_mbox_set_folder(ds, named ? f.folder : "INBOX")
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    if (lock_folder(ds) != APR_SUCCESS
        || memds_mbox_parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (in.copy) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                               "a truncated copy of a message is not the "
                               "message: not appended");
    }
    if (in.msg == NULL) {
        return memds_mbox_fail(ds, MEMDS_ST_INCOMPLETE_COMMAND,
                               "an Add without the message (no emailitem)");
    }
    if (memds_mbox_select(ds, &c, NULL) != APR_SUCCESS
        || append_msg(ds, c, &in, memds_mbox_merge_flags(0, in.email), 1,
                             &row)
               != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_mail_add(ds->st, pguid, ds->account, MBOX(ds)->folder, &row,
                       ds->device_id)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

/* Is in the message of row (its content, not its flags)? */
static int same_content(const memds_mbox_in_t *in, const memds_mmsg_t *row)
{
    if (in->msg == NULL) {
        return 1; /* flags only */
    }
    return (apr_int64_t)in->len == row->size
           && ((in->message_id == NULL && row->message_id == NULL)
               || (in->message_id && row->message_id
                   && strcmp(in->message_id, row->message_id) == 0));
}

static apr_status_t imap_same(memds_ds_t *ds, const char *guid,
                              const char *type, const char *data,
                              apr_size_t len, int *psame)
{
    memds_mmsg_t row;
    memds_mbox_in_t in;
    apr_status_t rv;

    if (MBOX(ds)->hier && guid[0] == 'f') {
        memds_mfitem_t f;
        memds_folder_t *fo;
        const char *pg;
        if ((rv = memds_mtree_folder_row(ds, &f, guid)) != APR_SUCCESS) {
            return rv;
        }
        if (memds_mtree_parent_of_path(ds, f.name, &pg) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        *psame = memds_folder_parse(&fo, data, len, NULL, ds->st->pool)
                     == APR_SUCCESS
                 && strcmp(fo->name, memds_mtree_last_component(f.name)) == 0
                 && (!ds->parent_hint
                     || (pg && strcmp(pg, ds->parent_hint) == 0));
        return APR_SUCCESS;
    }
    if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    if (memds_mbox_parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *psame = same_content(&in, &row)
             && memds_mbox_merge_flags(row.flags, in.email) == row.flags;
    if (*psame && MBOX(ds)->hier && ds->parent_hint) {
        const char *pg;
        if (memds_mtree_parent(ds, guid, &pg) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        *psame = pg && strcmp(pg, ds->parent_hint) == 0;
    }
    return APR_SUCCESS;
}

static apr_status_t imap_replace(memds_ds_t *ds, const char *guid,
                                 const char *type, const char *data,
                                 apr_size_t len)
{
    memds_mbox_t *x = MBOX(ds);
    memds_mmsg_t row, nrow;
    memds_mbox_in_t in;
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    int flags;
    apr_status_t rv;

    if (x->hier && guid[0] == 'f') {
        return memds_mtree_folder_replace(ds, guid, data, len);
    }
    if (lock_for_change(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    if (memds_mbox_parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (x->hier && ds->parent_hint) {
        memds_mfitem_t to;
        int named;
        if (memds_mtree_target_folder(ds, &to, &named) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (named && strcmp(to.folder, x->folder) != 0
            && memds_mtree_move_msg(ds, &row, &to) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    flags = memds_mbox_merge_flags(row.flags, in.email);
    if (memds_mbox_select(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (!in.copy && in.msg) {
        /* X-Sync-Message-Limit: -1 on a mail this device holds truncated:
         * its copy, asking for all of it (not new content) */
        apr_int64_t lim;
        const char *have = NULL, *want = NULL;
        memds_ds_level_t h;
        if (memds_email_sync_limit(&lim, in.msg, in.len) == APR_SUCCESS
            && memds_mail_level_get(ds->st, &have, &want, ds->device_id,
                                    ds->store, row.guid)
                   == APR_SUCCESS
            && memds_ds_level_parse(&h, have, ds->st->pool) == APR_SUCCESS
            && !memds_ds_level_is_whole(&h)) {
            in.copy = in.has_limit = 1;
            in.limit = lim;
            in.msg = NULL;
            in.len = 0;
        }
    }
    if (in.copy && in.has_limit) {
        /* libsynthesis' get-more (email-san.md 3.6, 2): its copy with a
         * larger limit asks for the message again at that limit */
        memds_ds_level_t w;
        const char *have = NULL, *want = NULL;
        memds_ds_level_t h;
        memset(&w, 0, sizeof(w));
        w.whole_max = in.limit < 0 ? -1 : in.limit;
        w.text_max = in.limit;
        w.attach = in.limit < 0;
        rv = memds_mail_level_get(ds->st, &have, &want, ds->device_id,
                                  ds->store, row.guid);
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return memds_mbox_fail_db(ds);
        }
        if ((rv == APR_ENOENT
             || memds_ds_level_parse(&h, have, ds->st->pool) != APR_SUCCESS
             || (!memds_ds_level_is_whole(&h)
                 && (in.limit < 0
                     || (h.text_max >= 0 && in.limit > h.text_max))))
            && memds_mail_level_want(ds->st, ds->device_id, ds->store, row.guid,
                                     memds_ds_level_format(&w, ds->st->pool))
                   != APR_SUCCESS) {
            return memds_mbox_fail_db(ds);
        }
    }
    if (same_content(&in, &row)) {
        if (flags != row.flags
            && memds_mbox_store_flags(ds, c, row.uid, row.flags, flags)
                   != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        row.flags = flags;
        if (memds_mail_update(ds->st, ds->account, x->folder, &row, 0,
                              ds->device_id)
            != APR_SUCCESS) {
            return memds_mbox_fail_db(ds);
        }
        return APR_SUCCESS;
    }
    if (x->role == MEMDS_IMAP_ROLE_INBOX || x->role == MEMDS_IMAP_ROLE_SENT) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                               "content changes to received or sent mail are "
                               "refused (only flags and deletion)");
    }
    /* A new version (a draft): append it, then remove the old one. */
    if (append_msg(ds, c, &in, flags, 0, &nrow) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    {
        const char *set = apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT,
                                       row.uid);
        MEMDS_FAULT("imap-replace-expunge-before");
        if (memds_imap_uid_store(c, set, '+', "\\Deleted", 1, 0, NULL, NULL,
                                 NULL, &err, ds->st->pool)
                != APR_SUCCESS
            || ((memds_imap_caps(c) & MEMDS_IMAP_CAP_UIDPLUS)
                && memds_imap_uid_expunge(c, set, NULL, NULL, &err)
                       != APR_SUCCESS)) {
            return memds_mbox_fail_imap(ds, &err, "removing the old version");
        }
        MEMDS_FAULT("imap-replace-expunge-after");
    }
    nrow.guid = row.guid;
    memds_mbox_note_held(ds, x->folder); /* (its new UID) */
    if (memds_mail_update(ds->st, ds->account, x->folder, &nrow, 1,
                          ds->device_id)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t imap_remove(memds_ds_t *ds, const char *guid)
{
    memds_mbox_t *x = MBOX(ds);
    memds_mmsg_t row;
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    const char *set, *trash = NULL;
    memds_delete_policy_e pol = x->cfg->delete_policy;
    apr_status_t rv;

    if (x->hier && guid[0] == 'f') {
        return memds_mtree_folder_remove(ds, guid);
    }
    if (lock_for_change(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    if (memds_mbox_select(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    set = apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT, row.uid);
    if (pol == MEMDS_DELETE_TRASH) {
        if (memds_mbox_role_folder(ds, MEMDS_IMAP_ROLE_TRASH, &trash)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (trash == NULL || strcmp(trash, x->folder) == 0) {
            pol = MEMDS_DELETE_EXPUNGE; /* deleting in Trash: gone for good */
        }
    }
    MEMDS_FAULT("imap-delete-before");
    if (pol == MEMDS_DELETE_TRASH) {
        rv = memds_imap_uid_move(c, set, trash, NULL, NULL, NULL, &err,
                                 ds->st->pool);
    }
    else {
        rv = memds_imap_uid_store(c, set, '+', "\\Deleted", 1, 0, NULL, NULL,
                                  NULL, &err, ds->st->pool);
        if (rv == APR_SUCCESS && pol == MEMDS_DELETE_EXPUNGE
            && (memds_imap_caps(c) & MEMDS_IMAP_CAP_UIDPLUS)) {
            rv = memds_imap_uid_expunge(c, set, NULL, NULL, &err);
        }
    }
    if (rv != APR_SUCCESS && err.kind != MEMDS_IMAP_E_NOTFOUND) {
        return memds_mbox_fail_imap(ds, &err,
                                    pol == MEMDS_DELETE_TRASH ? "UID MOVE"
                                                              : "deleting");
    }
    MEMDS_FAULT("imap-delete-after");
    if (memds_mail_remove(ds->st, ds->account, x->folder, guid, ds->device_id)
        == APR_EGENERAL) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t imap_match(memds_ds_t *ds, const char **pguid,
                               const char *data, apr_size_t len)
{
    memds_mbox_in_t in;
    apr_status_t rv;

    if (MBOX(ds)->hier) {
        memds_mfitem_t f;
        int named;
        if (memds_mtree_is_folder_item(NULL, data, len)) {
            return APR_ENOENT; /* (a folder Add finds its folder by name) */
        }
        if (memds_mtree_target_folder(ds, &f, &named) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (memds_mbox_set_folder(ds, named ? f.folder : "INBOX")
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    /* (the rows must be current: a slow sync matches before the folder is
     * scanned for the server's changes) */
    if (memds_mbox_resolve(ds) != APR_SUCCESS
        || (!MBOX(ds)->hier && memds_mbox_scan(ds) != APR_SUCCESS)
        || memds_mbox_parse_in(ds, &in, NULL, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (in.message_id == NULL) {
        return APR_ENOENT;
    }
    rv = memds_mail_match(ds->st, pguid, ds->account, MBOX(ds)->folder,
                          ds->device_id, ds->store, in.message_id,
                          in.msg ? (apr_int64_t)in.len : -1);
    return rv == APR_SUCCESS || rv == APR_ENOENT ? rv : memds_mbox_fail_db(ds);
}

static apr_status_t imap_last_change(memds_ds_t *ds, const char *guid,
                                     apr_int64_t *pseq, apr_int64_t *pby)
{
    memds_mmsg_t row;
    apr_status_t rv;

    if (MBOX(ds)->hier && guid[0] == 'f') {
        memds_mfitem_t f;
        if ((rv = memds_mtree_folder_row(ds, &f, guid)) == APR_SUCCESS) {
            *pseq = f.seq;
            *pby = f.changed_by;
        }
        return rv;
    }
    if ((rv = live_row(ds, &row, guid)) == APR_SUCCESS) {
        *pseq = row.seq;
        *pby = row.changed_by;
    }
    return rv;
}

static apr_status_t imap_check(memds_ds_t *ds)
{
    memds_imap_conn_t *c;

    return MBOX(ds)->hier ? memds_mbox_conn(ds, &c)
                          : memds_mbox_resolve_listed(ds);
}

static apr_status_t imap_select(memds_ds_t *ds, const memds_ds_select_t *sel,
                                apr_hash_t **pset)
{
    if (!MBOX(ds)->hier && memds_mbox_resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_mail_select(ds->st, pset, ds->account,
                          MBOX(ds)->hier ? NULL : MBOX(ds)->folder, sel->since,
                          sel->since_incl, sel->before, sel->before_incl,
                          sel->max_count)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

typedef struct ahead_ctx_t {
    memds_mbox_t *x;
    apr_hash_t *byuid; /* uid -> guid */
    apr_pool_t *p;
} ahead_ctx_t;

static apr_status_t ahead_cb(void *baton, const memds_imap_resp_t *r)
{
    ahead_ctx_t *a = baton;
    const char *guid;
    int i;

    if (r->type != MEMDS_IMAP_RESP_FETCH
        || !(r->fetch->have & MEMDS_IMAP_F_UID)) {
        return APR_SUCCESS;
    }
    guid = apr_hash_get(a->byuid, &r->fetch->uid, sizeof(r->fetch->uid));
    for (i = 0; guid && r->fetch->sections && i < r->fetch->sections->nelts;
         ++i) {
        const memds_imap_section_t *sec = &APR_ARRAY_IDX(r->fetch->sections, i,
                                                         memds_imap_section_t);
        if (sec->data && sec->section && *sec->section == '\0'
            && strcmp(sec->item, "BODY") == 0) {
            memds_buf_t *b = apr_palloc(a->p, sizeof(*b));
            memds_buf_init(b, sec->len + 1, a->p);
            memds_buf_add(b, sec->data, sec->len);
            memds_buf_addc(b, '\0');
            b->len--; /* (NUL-terminated, as fetch leaves it) */
            apr_hash_set(a->x->ahead, guid, APR_HASH_KEY_STRING, b);
        }
    }
    return APR_SUCCESS;
}

/* Read the rows, recorded levels and (with an Outbox) the Sent check of
 * n new mails, one statement each in one round trip, for their fetch
 * (x->pre). */
static apr_status_t read_pre(memds_ds_t *ds, const char *const *guids, int n)
{
    memds_mbox_t *x = MBOX(ds);
    apr_array_header_t *rows, *levels, *sent = NULL;
    int i;

    if (memds_mail_pre_many(ds->st, &rows, &levels,
                            x->cfg->smtp_url ? &sent : NULL, ds->account,
                            x->folder, ds->device_id, ds->store, guids, n)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < rows->nelts; ++i) {
        const memds_mmsg_t *r = APR_ARRAY_IDX(rows, i, memds_mmsg_t *);
        pre_t *pre;
        if (r->deleted || r->uid <= 0) {
            continue; /* (fetch says it is gone) */
        }
        pre = apr_pcalloc(ds->st->pool, sizeof(*pre));
        pre->row = *r;
        pre->sent_read = x->cfg->smtp_url != NULL;
        apr_hash_set(x->pre, r->guid, APR_HASH_KEY_STRING, pre);
    }
    /* (the levels and Sent checks of gone ones find no pre) */
    for (i = 0; i < levels->nelts; ++i) {
        const memds_mlevel_t *l = &APR_ARRAY_IDX(levels, i, memds_mlevel_t);
        pre_t *pre = apr_hash_get(x->pre, l->guid, APR_HASH_KEY_STRING);
        if (pre) {
            pre->level = l->level;
            pre->want = l->want;
        }
    }
    for (i = 0; sent && i < sent->nelts; ++i) {
        pre_t *pre = apr_hash_get(x->pre, APR_ARRAY_IDX(sent, i, const char *),
                                  APR_HASH_KEY_STRING);
        if (pre) {
            pre->sent_by = 1;
        }
    }
    return APR_SUCCESS;
}

/* Rows read ahead at a time: about what one message carries. */
#define PRE_CHUNK 32

/* Read ahead the new messages of one folder: their rows, levels and Sent
 * checks (read_pre), and the bodies of the ones that go whole in one UID
 * FETCH (UID BODY.PEEK[]) instead of one round trip each, bounded by the
 * message's room; the levels fetch records are written by imap_flush.
 * Only for a per-folder datastore and not in Sent (the sender's own copy
 * goes truncated); anything unusual is left to fetch. */
static apr_status_t imap_prefetch(memds_ds_t *ds, const char *const *guids,
                                  int n, apr_size_t max_bytes)
{
    memds_mbox_t *x = MBOX(ds);
    apr_pool_t *p = ds->st->pool;
    const memds_ds_level_t *lv = ds->level;
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    ahead_ctx_t a;
    apr_array_header_t *uids, *tuids;
    apr_size_t total = 0;
    int i, done = 0;

    if (x->hier || x->role == MEMDS_IMAP_ROLE_SENT || ds->force
        || (lv == NULL && default_level(ds, &lv) != APR_SUCCESS)
        || memds_mbox_resolve(ds) != APR_SUCCESS) {
        ds->status = 0;
        return APR_SUCCESS;
    }
    if (x->ahead == NULL) {
        x->ahead = apr_hash_make(p);
    }
    if (x->pre == NULL) {
        x->pre = apr_hash_make(p);
    }
    if (x->puts == NULL) {
        x->puts = apr_hash_make(p);
    }
    a.x = x;
    a.p = p;
    a.byuid = apr_hash_make(p);
    uids = apr_array_make(p, n > 0 ? n : 1, sizeof(apr_uint32_t));
    tuids = apr_array_make(p, 16, sizeof(apr_uint32_t));
    for (i = 0; i < n && !done; ++i) {
        const pre_t *pre;
        apr_uint32_t *k; /* (the type of memds_imap_fetch_t.uid: the
                          * callback looks it up by that) */
        if (i % PRE_CHUNK == 0
            && read_pre(ds, guids + i, n - i < PRE_CHUNK ? n - i : PRE_CHUNK)
                   != APR_SUCCESS) {
            ds->status = 0; /* (fetch reads them one by one) */
            x->pre = NULL;
            break;
        }
        pre = apr_hash_get(x->pre, guids[i], APR_HASH_KEY_STRING);
        if (pre == NULL) {
            continue; /* (gone: fetch says so) */
        }
        if ((lv && !memds_ds_level_is_whole(lv)
             && (lv->attach_name || pre->row.size > lv->whole_max))
            || (ds->size_budget > 0
                && (apr_size_t)pre->row.size + 512
                           + (apr_size_t)pre->row.size / 8
                       > ds->size_budget)) {
            /* goes truncated (fetch reads its parts): about its text */
            apr_size_t cut = lv && lv->text_max >= 0
                                 ? (apr_size_t)lv->text_max + 2048
                                 : ds->size_budget;
            total += cut < (apr_size_t)pre->row.size
                         ? cut
                         : (apr_size_t)pre->row.size;
            done = total > max_bytes;
            APR_ARRAY_PUSH(tuids, apr_uint32_t) = (apr_uint32_t)pre->row.uid;
            continue;
        }
        total += (apr_size_t)pre->row.size;
        APR_ARRAY_PUSH(uids, apr_uint32_t) = (apr_uint32_t)pre->row.uid;
        k = apr_palloc(p, sizeof(*k));
        *k = (apr_uint32_t)pre->row.uid;
        apr_hash_set(a.byuid, k, sizeof(*k), pre->row.guid);
        /* the one that crosses the room is read too: the engine builds it
         * before it knows it does not fit (and begins it as a large
         * object when the device takes them) */
        done = total > max_bytes;
    }
    if ((uids->nelts < 2 && tuids->nelts == 0)
        || memds_mbox_select(ds, &c, NULL) != APR_SUCCESS) {
        ds->status = 0;
        return APR_SUCCESS; /* (one message: fetch does it as well) */
    }
    memds_mbox_prefetch_truncated(ds, c, (const apr_uint32_t *)tuids->elts,
                                  tuids->nelts,
                                  lv && !memds_ds_level_is_whole(lv)
                                      ? lv->text_max
                                      : 0);
    if (uids->nelts >= 2
        && memds_imap_uid_fetch(c,
                                memds_imap_set_from_uids((apr_uint32_t *)
                                                             uids->elts,
                                                         uids->nelts, p),
                                "(UID BODY.PEEK[])", 0, 0, ahead_cb, &a, &err)
               != APR_SUCCESS) {
        x->ahead = NULL; /* (fetch reads them one by one) */
    }
    return APR_SUCCESS;
}

/* Write the levels fetch recorded in this message, one statement. */
/* The device's levels of a folder going down by thousands (a first sync):
 * until analyzed, the planner takes the new device for one row of
 * memds.mail_levels and each message's mail_level_get_many walks all its
 * rows instead of probing its keys (10,000 mails: 343 ms, 41x the 1000's;
 * docs/performance.md). */
static void imap_grown(memds_ds_t *ds)
{
    memds_store_analyze(ds->st, "memds.mail_levels");
}

static apr_status_t imap_flush(memds_ds_t *ds)
{
    memds_mbox_t *x = MBOX(ds);
    apr_pool_t *p = ds->st->pool;
    apr_hash_index_t *hi;
    const char **guids, **levels;
    apr_int64_t *sent;
    int n = 0, cap;

    if (x->puts == NULL) {
        return APR_SUCCESS;
    }
    cap = (int)apr_hash_count(x->puts);
    guids = apr_palloc(p, sizeof(*guids) * (apr_size_t)(cap + 1));
    levels = apr_palloc(p, sizeof(*levels) * (apr_size_t)(cap + 1));
    sent = apr_palloc(p, sizeof(*sent) * (apr_size_t)(cap + 1));
    for (hi = apr_hash_first(p, x->puts); hi; hi = apr_hash_next(hi)) {
        const void *key;
        void *val;
        apr_hash_this(hi, &key, NULL, &val);
        guids[n] = key;
        levels[n] = ((const put_t *)val)->level;
        sent[n] = ((const put_t *)val)->sent_bytes;
        ++n;
    }
    x->puts = NULL; /* (later fetches of the request write at once) */
    if (memds_mail_level_put_many(ds->st, ds->device_id, ds->store, guids,
                                  levels, sent, n)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t imap_wanted(memds_ds_t *ds, apr_array_header_t **pguids)
{
    if (memds_mail_level_wanted(ds->st, pguids, ds->device_id, ds->store)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

static const memds_ds_vt imap_vt = { "imap",        imap_snapshot,
                                     imap_changes,  imap_fetch,
                                     imap_add,      imap_replace,
                                     imap_remove,   imap_match,
                                     imap_same,     imap_last_change,
                                     imap_check,    1,
                                     NULL,          NULL,
                                     imap_select,   imap_wanted,
                                     imap_prefetch, 1 };

static const memds_ds_vt tree_vt = { "imap",
                                     imap_snapshot,
                                     imap_changes,
                                     imap_fetch,
                                     imap_add,
                                     imap_replace,
                                     imap_remove,
                                     imap_match,
                                     imap_same,
                                     imap_last_change,
                                     imap_check,
                                     1,
                                     memds_mtree_parent,
                                     memds_mtree_move,
                                     imap_select,
                                     imap_wanted,
                                     imap_prefetch,
                                     1 };

static apr_status_t mail_open(memds_ds_t *ds, const memds_ds_env_t *env,
                              apr_pool_t *p)
{
    apr_status_t rv = memds_mbox_init(ds, env, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    MBOX(ds)->hier = memds_mtree_serves(ds->store);
    ds->vt = MBOX(ds)->hier ? &tree_vt : &imap_vt;
    ds->flush = imap_flush;
    ds->grown = imap_grown;
    return APR_SUCCESS;
}

static const memds_ds_provider_t mail_provider = { "imap", "mail folder", NULL,
                                                   mail_open };

static const memds_ds_provider_t tree_provider = {
    "imap", "mail folders (hierarchical)", memds_mtree_serves, mail_open
};

void memds_ds_mail_register(memds_ds_registry_t *reg)
{
    memds_ds_register(reg, &tree_provider);
    memds_ds_register(reg, &mail_provider);
}
