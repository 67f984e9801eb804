/* memds_ds_imap.c: the mailbox datastores (MemDSDatastore imap). One
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
 * Replace for a flag change carries no emailitem) or message/rfc822, as the
 * device prefers (DevInf Rx-Pref). */
#include "ds/memds_ds.h"
#include "store/memds_mailstore.h"
#include "backends/memds_imap.h"
#include "email/memds_email.h"
#include "syncml/memds_tree.h"
#include "backends/memds_smtp.h"
#include "email/memds_mime.h"
#include "store/memds_pgpool.h"

#include <apr_strings.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BATCH 500
#define RFC822 "message/rfc822"

/* Per request: one IMAP connection and one LIST for every datastore. */
struct memds_ds_shared_t {
    memds_imap_conn_t *conn;
    memds_imap_lease_t *lease;   /* conn came from this cache entry */
    memds_imap_cache_t *cache;
    apr_array_header_t *boxes;   /* memds_imap_list_t *, or NULL */
    apr_array_header_t *frows;   /* memds_mfitem_t * (email datastore), or
                                    NULL: read again */
    apr_pool_t *p;
};

typedef struct imap_ds_t {
    const memds_mail_cfg_t *cfg;
    const char *password;
    int want_rfc822;
    memds_ds_shared_t *sh;
    apr_pool_t *p;
    const char *folder;          /* wire name, NULL until resolved */
    memds_imap_role_e role;
    int scanned;
    int hier;                    /* the hierarchical "email" datastore */
    int outbox;                  /* the Outbox datastore (sending) */
} imap_ds_t;

#define OUTBOX_FOLDER "\\Outbox" /* rows of the virtual Outbox (no IMAP name has a backslash) */

#define X(ds) ((imap_ds_t *)(ds)->impl)

/* ------------------------------------------------------------ failures */

static apr_status_t fail(memds_ds_t *ds, int status, const char *reason)
{
    ds->status = status;
    ds->reason = apr_psprintf(ds->st->pool, "mailbox %s of %s: %s", ds->store,
                              ds->account, reason);
    return APR_EGENERAL;
}

static apr_status_t fail_imap(memds_ds_t *ds, const memds_imap_err_t *err,
                              const char *what)
{
    memds_imap_outcome_t o = memds_imap_status_of(err);

    return fail(ds, o.status, apr_psprintf(ds->st->pool, "IMAP %s failed: %s "
                                           "(%s)", what, err->msg ? err->msg
                                           : "no detail", o.text));
}

/* A store failure: status 0 makes the engine answer 503 and roll back. */
static apr_status_t fail_db(memds_ds_t *ds)
{
    ds->status = 0;
    ds->reason = ds->st->err;
    return APR_EGENERAL;
}

/* ------------------------------------------------------------ connection */

static apr_status_t conn_get(memds_ds_t *ds, memds_imap_conn_t **pc)
{
    imap_ds_t *x = X(ds);
    memds_imap_config_t c;
    memds_imap_err_t err;

    if (x->sh->conn && !memds_imap_broken(x->sh->conn)) {
        *pc = x->sh->conn;
        return APR_SUCCESS;
    }
    if (x->cfg == NULL || x->cfg->imap_url == NULL) {
        return fail(ds, 500, "no MemDSIMAPServer configured");
    }
    memset(&c, 0, sizeof(c));
    c.url = x->cfg->imap_url;
    if (x->cfg->master_user) {
        c.user = x->cfg->master_user;
        c.password = x->cfg->master_password;
        c.authzid = ds->account;
    }
    else if (x->password) {
        c.user = ds->account;
        c.password = x->password;
    }
    else {
        return fail(ds, 407, "no password for the IMAP login: the message "
                    "carried no basic credentials and no MemDSIMAPMaster is "
                    "configured");
    }
    c.io_timeout_ms = x->cfg->timeout_ms;
    c.log = x->cfg->log;
    if (x->sh->lease) {
        /* a broken connection from the cache: back (it is closed there) */
        memds_imap_cache_put(x->sh->cache, x->sh->lease);
        x->sh->lease = NULL;
    }
    x->sh->conn = NULL;
    if (x->cfg->imap_cache) {
        if (memds_imap_cache_get(x->cfg->imap_cache, &x->sh->lease, &x->sh->conn,
                                 &c, &err) != APR_SUCCESS) {
            x->sh->conn = NULL;
            x->sh->lease = NULL;
            return fail_imap(ds, &err, "login");
        }
        x->sh->cache = x->cfg->imap_cache;
    }
    else if (memds_imap_connect(&x->sh->conn, &c, &err, x->sh->p) != APR_SUCCESS) {
        x->sh->conn = NULL;
        return fail_imap(ds, &err, "login");
    }
    *pc = x->sh->conn;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ folders */

static memds_imap_role_e role_of_name(const char *n)
{
    static const struct { const char *name; memds_imap_role_e role; } t[] = {
        { "inbox", MEMDS_IMAP_ROLE_INBOX }, { "sent", MEMDS_IMAP_ROLE_SENT },
        { "drafts", MEMDS_IMAP_ROLE_DRAFTS }, { "draft", MEMDS_IMAP_ROLE_DRAFTS },
        { "trash", MEMDS_IMAP_ROLE_TRASH }, { "junk", MEMDS_IMAP_ROLE_JUNK },
        { "spam", MEMDS_IMAP_ROLE_JUNK }, { "archive", MEMDS_IMAP_ROLE_ARCHIVE },
        { NULL, MEMDS_IMAP_ROLE_NONE }
    };
    int i;

    for (i = 0; t[i].name; ++i) {
        if (strcasecmp(n, t[i].name) == 0) {
            return t[i].role;
        }
    }
    return MEMDS_IMAP_ROLE_NONE;
}

/* The usual names of role folders, for servers without SPECIAL-USE. */
static const char *const *usual_names(memds_imap_role_e role)
{
    static const char *const sent[] = { "Sent", "Sent Items", "Sent Messages",
                                        "Sent Mail", "INBOX.Sent", NULL };
    static const char *const drafts[] = { "Drafts", "Draft", "INBOX.Drafts", NULL };
    static const char *const trash[] = { "Trash", "Deleted Items",
                                         "Deleted Messages", "INBOX.Trash", NULL };
    static const char *const junk[] = { "Junk", "Spam", "Junk E-mail",
                                        "INBOX.Junk", NULL };
    static const char *const archive[] = { "Archive", "Archives", NULL };
    static const char *const none[] = { NULL };

    switch (role) {
    case MEMDS_IMAP_ROLE_SENT: return sent;
    case MEMDS_IMAP_ROLE_DRAFTS: return drafts;
    case MEMDS_IMAP_ROLE_TRASH: return trash;
    case MEMDS_IMAP_ROLE_JUNK: return junk;
    case MEMDS_IMAP_ROLE_ARCHIVE: return archive;
    default: return none;
    }
}

static int selectable(const memds_imap_list_t *l)
{
    return !(l->attrs & (MEMDS_IMAP_MBX_NOSELECT | MEMDS_IMAP_MBX_NONEXISTENT));
}

/* A mailbox's path as a device names it: UTF-8, "/" between levels. */
static const char *path_of(const memds_imap_list_t *l, apr_pool_t *p)
{
    char *s = apr_pstrdup(p, l->name_utf8 ? l->name_utf8 : l->name);
    char *c;

    if (l->delim && l->delim != '/') {
        for (c = s; *c; ++c) {
            if (*c == l->delim) {
                *c = '/';
            }
        }
    }
    return s;
}

static apr_status_t boxes_get(memds_ds_t *ds, apr_array_header_t **pboxes)
{
    imap_ds_t *x = X(ds);
    memds_imap_conn_t *c;
    memds_imap_err_t err;

    if (x->sh->boxes == NULL) {
        if (conn_get(ds, &c) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (memds_imap_list(c, NULL, &x->sh->boxes, &err, x->sh->p)
            != APR_SUCCESS) {
            x->sh->boxes = NULL;
            return fail_imap(ds, &err, "LIST");
        }
    }
    *pboxes = x->sh->boxes;
    return APR_SUCCESS;
}

/* The folder of a role: SPECIAL-USE, then MemDSFolder, then usual names.
 * *pname NULL when there is none. */
static apr_status_t role_folder(memds_ds_t *ds, memds_imap_role_e role,
                                const char **pname)
{
    imap_ds_t *x = X(ds);
    apr_array_header_t *boxes;
    const char *const *u;
    int i;

    *pname = NULL;
    if (role == MEMDS_IMAP_ROLE_INBOX) {
        *pname = "INBOX";
        return APR_SUCCESS;
    }
    if (boxes_get(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i, memds_imap_list_t *);
        if (l->role == role && selectable(l)) {
            *pname = l->name;
            return APR_SUCCESS;
        }
    }
    if (x->cfg->folder_names[role]) {
        for (i = 0; i < boxes->nelts; ++i) {
            const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i, memds_imap_list_t *);
            if (selectable(l) && strcmp(path_of(l, ds->st->pool),
                                        x->cfg->folder_names[role]) == 0) {
                *pname = l->name;
                return APR_SUCCESS;
            }
        }
    }
    for (u = usual_names(role); *u; ++u) {
        for (i = 0; i < boxes->nelts; ++i) {
            const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i, memds_imap_list_t *);
            if (selectable(l) && strcasecmp(path_of(l, ds->st->pool), *u) == 0) {
                *pname = l->name;
                return APR_SUCCESS;
            }
        }
    }
    return APR_SUCCESS;
}

/* Which IMAP folder this datastore is. */
static apr_status_t resolve(memds_ds_t *ds)
{
    imap_ds_t *x = X(ds);
    apr_array_header_t *boxes;
    const char *name = ds->store;
    int i, pass;

    if (x->folder) {
        return APR_SUCCESS;
    }
    if (x->hier) {
        return fail(ds, 500, "no folder chosen in the hierarchical datastore");
    }
    x->role = role_of_name(name);
    if (x->role != MEMDS_IMAP_ROLE_NONE) {
        if (role_folder(ds, x->role, &x->folder) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (x->folder) {
            return APR_SUCCESS;
        }
    }
    /* Any folder by its path: exact first, then ignoring case. */
    if (boxes_get(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (pass = 0; pass < 2; ++pass) {
        for (i = 0; i < boxes->nelts; ++i) {
            const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i, memds_imap_list_t *);
            const char *path = path_of(l, ds->st->pool);
            if (selectable(l) && (pass == 0 ? strcmp(path, name) == 0
                                  : strcasecmp(path, name) == 0)) {
                x->folder = l->name;
                if (x->role == MEMDS_IMAP_ROLE_NONE) {
                    x->role = l->role;
                }
                return APR_SUCCESS;
            }
        }
    }
    return fail(ds, 404, "no such mail folder");
}

static apr_status_t select_folder(memds_ds_t *ds, memds_imap_conn_t **pc,
                                  const memds_imap_mailbox_t **pmb)
{
    memds_imap_err_t err;
    const memds_imap_mailbox_t *mb;

    if (resolve(ds) != APR_SUCCESS || conn_get(ds, pc) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_imap_select(*pc, X(ds)->folder,
                          (memds_imap_caps(*pc) & MEMDS_IMAP_CAP_CONDSTORE)
                          ? MEMDS_IMAP_SEL_CONDSTORE : 0,
                          NULL, NULL, NULL, &mb, &err) != APR_SUCCESS) {
        return fail_imap(ds, &err, "SELECT");
    }
    if (pmb) {
        *pmb = mb;
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ messages */

static int flags_of_fetch(const memds_imap_fetch_t *f)
{
    int fl = (int)(f->flags & (MEMDS_IMAP_FL_SEEN | MEMDS_IMAP_FL_ANSWERED
                               | MEMDS_IMAP_FL_FLAGGED | MEMDS_IMAP_FL_DELETED
                               | MEMDS_IMAP_FL_DRAFT));
    int i;

    for (i = 0; f->flag_names && i < f->flag_names->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(f->flag_names, i, const char *);
        if (n && (strcasecmp(n, MEMDS_EMAIL_IMAP_FORWARDED) == 0
                  || strcasecmp(n, "Forwarded") == 0)) {
            fl |= MEMDS_MAIL_FORWARDED;
        }
    }
    return fl;
}

/* Metadata of new messages, inserted BATCH at a time as FETCHes arrive. */
typedef struct meta_ctx_t {
    memds_ds_t *ds;
    apr_pool_t *sub;                /* cleared after every batch */
    apr_array_header_t *batch;      /* memds_mmsg_t * */
    apr_hash_t *remap;              /* key -> apr_array of old rows, or NULL */
    apr_int64_t changed_by;
    apr_status_t db;                /* a store failure inside the callback */
} meta_ctx_t;

static const char *remap_key(const char *mid, apr_int64_t size, apr_time_t t,
                             apr_pool_t *p)
{
    return apr_psprintf(p, "%s|%" APR_INT64_T_FMT "|%" APR_INT64_T_FMT,
                        mid ? mid : "", size, (apr_int64_t)(t / APR_USEC_PER_SEC));
}

static apr_status_t meta_flush(meta_ctx_t *m)
{
    memds_ds_t *ds = m->ds;

    if (m->batch->nelts > 0
        && memds_mail_insert_many(ds->st, ds->account, X(ds)->folder,
                                  (memds_mmsg_t *const *)m->batch->elts,
                                  m->batch->nelts, m->changed_by)
           != APR_SUCCESS) {
        return APR_EGENERAL;
    }
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

    if (r->type != MEMDS_IMAP_RESP_FETCH || !(f->have & MEMDS_IMAP_F_UID)
        || m->db != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if (f->flags & MEMDS_IMAP_FL_DELETED) {
        return APR_SUCCESS; /* deleted mail is not shown to devices */
    }
    row = apr_pcalloc(m->sub, sizeof(*row));
    row->uid = f->uid;
    row->flags = flags_of_fetch(f);
    row->size = (apr_int64_t)f->size;
    row->internaldate = (f->have & MEMDS_IMAP_F_INTERNALDATE) ? f->internaldate_t : 0;
    for (i = 0; f->sections && i < f->sections->nelts; ++i) {
        const memds_imap_section_t *s = &APR_ARRAY_IDX(f->sections, i,
                                                       memds_imap_section_t);
        if (s->data) {
            row->message_id = memds_mime_header_value(s->data, s->len, "Message-ID", m->sub);
        }
    }
    if (m->remap) {
        const char *k = remap_key(row->message_id, row->size,
                                  row->internaldate, m->sub);
        apr_array_header_t *olds = apr_hash_get(m->remap, k, APR_HASH_KEY_STRING);
        if (olds && olds->nelts > 0) {
            const memds_mmsg_t *o = *(memds_mmsg_t **)apr_array_pop(olds);
            if (memds_mail_remap_one(m->ds->st, m->ds->account,
                                     X(m->ds)->folder, o->guid, row->uid,
                                     row->flags, o->flags) != APR_SUCCESS) {
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

#define META_ITEMS "(UID FLAGS RFC822.SIZE INTERNALDATE " \
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
        return fail_db(ds);
    }
    if (rv != APR_SUCCESS) {
        return fail_imap(ds, &err, "UID FETCH");
    }
    if (meta_flush(&m) != APR_SUCCESS) {
        return fail_db(ds);
    }
    apr_pool_destroy(m.sub);
    return APR_SUCCESS;
}

/* UIDs and flags as the server reports them. */
typedef struct uf_ctx_t {
    apr_array_header_t *uids;      /* apr_int64_t */
    apr_array_header_t *flags;     /* int */
    apr_array_header_t *vanished;  /* apr_int64_t */
} uf_ctx_t;

static apr_status_t uf_cb(void *baton, const memds_imap_resp_t *r)
{
    uf_ctx_t *u = baton;

    if (r->type == MEMDS_IMAP_RESP_FETCH && (r->fetch->have & MEMDS_IMAP_F_UID)) {
        APR_ARRAY_PUSH(u->uids, apr_int64_t) = r->fetch->uid;
        APR_ARRAY_PUSH(u->flags, int) = flags_of_fetch(r->fetch);
    }
    else if (r->type == MEMDS_IMAP_RESP_VANISHED && r->uids) {
        int i;
        apr_uint32_t n;
        for (i = 0; i < r->uids->nranges; ++i) {
            for (n = r->uids->ranges[i].lo; ; ++n) {
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
 * (expunged, or flagged \Deleted), and new messages. full: u lists every
 * message, so rows it does not list are gone. */
static apr_status_t apply(memds_ds_t *ds, memds_imap_conn_t *c, uf_ctx_t *u,
                          int full)
{
    apr_pool_t *p = ds->st->pool;
    apr_array_header_t *rows, *fu, *ff, *gone, *newu;
    apr_hash_t *byuid = apr_hash_make(p), *present = apr_hash_make(p);
    apr_uint32_t *nu;
    int i;

    if (memds_mail_live(ds->st, &rows, ds->account, X(ds)->folder,
                        full ? NULL : (const apr_int64_t *)u->uids->elts,
                        u->uids->nelts, 0) != APR_SUCCESS) {
        return fail_db(ds);
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
            if (fl & MEMDS_MAIL_DELETED) {
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
        APR_ARRAY_PUSH(gone, apr_int64_t) = APR_ARRAY_IDX(u->vanished, i, apr_int64_t);
    }
    if (memds_mail_flags_many(ds->st, ds->account, X(ds)->folder,
                              (const apr_int64_t *)fu->elts,
                              (const int *)ff->elts, fu->nelts, 0) != APR_SUCCESS
        || memds_mail_gone_many(ds->st, ds->account, X(ds)->folder,
                                (const apr_int64_t *)gone->elts, gone->nelts, 0)
           != APR_SUCCESS) {
        return fail_db(ds);
    }
    nu = (apr_uint32_t *)newu->elts;
    return load_meta(ds, c, memds_imap_set_from_uids(nu, newu->nelts, p), NULL);
}

static uf_ctx_t *uf_make(apr_pool_t *p)
{
    uf_ctx_t *u = apr_pcalloc(p, sizeof(*u));

    u->uids = apr_array_make(p, 64, sizeof(apr_int64_t));
    u->flags = apr_array_make(p, 64, sizeof(int));
    u->vanished = apr_array_make(p, 16, sizeof(apr_int64_t));
    return u;
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

    if (memds_mail_remap_begin(ds->st, ds->account, X(ds)->folder) != APR_SUCCESS
        || memds_mail_live(ds->st, &rows, ds->account, X(ds)->folder, NULL, 0, 1)
           != APR_SUCCESS) {
        return fail_db(ds);
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
    if (memds_mail_remap_finish(ds->st, ds->account, X(ds)->folder) != APR_SUCCESS) {
        return fail_db(ds);
    }
    memds_logf(X(ds)->cfg->log, 5, APR_SUCCESS, "mailbox %s of %s: UIDVALIDITY "
               "changed to %u, %d known messages re-mapped", X(ds)->folder,
               ds->account, mb->uidvalidity, rows->nelts);
    return APR_SUCCESS;
}

/* Bring memds.mail_messages up to date with the folder. */
static apr_status_t scan(memds_ds_t *ds)
{
    imap_ds_t *x = X(ds);
    memds_imap_conn_t *c;
    const memds_imap_mailbox_t *mb;
    memds_mfolder_t f, nf;
    memds_imap_err_t err;
    uf_ctx_t *u;
    apr_status_t rv;

    if (x->scanned) {
        return APR_SUCCESS;
    }
    if (resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    /* The folder row lock makes concurrent scans of one folder (two devices
     * of an account) run one after the other. */
    if (memds_mail_folder_lock(ds->st, &f, ds->account, x->folder) != APR_SUCCESS) {
        return fail_db(ds);
    }
    if (select_folder(ds, &c, &mb) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    nf.uidvalidity = mb->uidvalidity;
    nf.highestmodseq = mb->condstore && !mb->nomodseq
                       ? (apr_int64_t)mb->highestmodseq : 0;
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
        u = uf_make(ds->st->pool);
        rv = mb->exists == 0 && f.messages == 0 ? APR_SUCCESS
             : memds_imap_uid_fetch(c, "1:*", "(UID FLAGS)",
                                    (apr_uint64_t)f.highestmodseq,
                                    MEMDS_IMAP_FETCH_VANISHED, uf_cb, u, &err);
        if (rv != APR_SUCCESS) {
            return fail_imap(ds, &err, "UID FETCH CHANGEDSINCE");
        }
        rv = apply(ds, c, u, 0);
    }
    else {
        /* No CONDSTORE (or the first scan): diff every UID and its flags. */
        u = uf_make(ds->st->pool);
        if (mb->exists > 0
            && memds_imap_uid_fetch(c, "1:*", "(UID FLAGS)", 0, 0, uf_cb, u,
                                    &err) != APR_SUCCESS) {
            return fail_imap(ds, &err, "UID FETCH");
        }
        rv = apply(ds, c, u, 1);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (memds_mail_folder_save(ds->st, ds->account, x->folder, &nf) != APR_SUCCESS) {
        return fail_db(ds);
    }
    x->scanned = 1;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ objects */

/* What a device sent: the RFC 2822 bytes (CRLF) if any, and the email
 * object for its flags (NULL for message/rfc822). */
typedef struct incoming_t {
    memds_email_t *email;
    const char *msg;
    apr_size_t len;
    const char *message_id;
} incoming_t;

static apr_status_t parse_in(memds_ds_t *ds, incoming_t *in, const char *type,
                             const char *data, apr_size_t len)
{
    apr_pool_t *p = ds->st->pool;
    memds_codec_err_t err;

    memset(in, 0, sizeof(*in));
    if ((type && strcasecmp(type, RFC822) == 0)
        || (!type && (len == 0 || data[0] != '<'))) {
        memds_email_crlf(&in->msg, &in->len, data, len, p);
    }
    else {
        memset(&err, 0, sizeof(err));
        if (memds_email_parse(&in->email, data, len, &err, p) != APR_SUCCESS) {
            return fail(ds, 415, apr_psprintf(p, "unreadable email object: %s",
                                              err.msg ? err.msg : "?"));
        }
        if (in->email->has_item) {
            memds_email_crlf(&in->msg, &in->len, in->email->item,
                             in->email->item_len, p);
        }
    }
    if (in->msg) {
        in->message_id = memds_mime_header_value(in->msg, in->len, "Message-ID", p);
    }
    return APR_SUCCESS;
}

/* Flags after applying an email object's tri-state flags to old. */
static int merge_flags(int old, const memds_email_t *e)
{
    int fl = old;

#define SETB(field, bit) \
    if (e->field == MEMDS_EMAIL_TRUE) { fl |= (bit); } \
    else if (e->field == MEMDS_EMAIL_FALSE) { fl &= ~(bit); }
    if (e) {
        SETB(read, MEMDS_MAIL_SEEN);
        SETB(replied, MEMDS_MAIL_ANSWERED);
        SETB(flagged, MEMDS_MAIL_FLAGGED);
        SETB(forwarded, MEMDS_MAIL_FORWARDED);
        SETB(deleted, MEMDS_MAIL_DELETED);
    }
#undef SETB
    return fl;
}

static const char *imap_flag_list(int fl, apr_pool_t *p)
{
    const char *s = apr_pstrcat(p,
        (fl & MEMDS_MAIL_SEEN) ? " \\Seen" : "",
        (fl & MEMDS_MAIL_ANSWERED) ? " \\Answered" : "",
        (fl & MEMDS_MAIL_FLAGGED) ? " \\Flagged" : "",
        (fl & MEMDS_MAIL_DELETED) ? " \\Deleted" : "",
        (fl & MEMDS_MAIL_DRAFT) ? " \\Draft" : "",
        (fl & MEMDS_MAIL_FORWARDED) ? " " MEMDS_EMAIL_IMAP_FORWARDED : "", NULL);

    return *s ? s + 1 : NULL;
}

/* STORE the difference between two flag sets on uid. */
static apr_status_t store_flags(memds_ds_t *ds, memds_imap_conn_t *c,
                                apr_int64_t uid, int from, int to)
{
    const char *set = apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT, uid);
    const char *add = imap_flag_list(to & ~from, ds->st->pool);
    const char *del = imap_flag_list(from & ~to, ds->st->pool);
    memds_imap_err_t err;

    if ((add && memds_imap_uid_store(c, set, '+', add, 1, 0, NULL, NULL, NULL,
                                     &err, ds->st->pool) != APR_SUCCESS)
        || (del && memds_imap_uid_store(c, set, '-', del, 1, 0, NULL, NULL, NULL,
                                        &err, ds->st->pool) != APR_SUCCESS)) {
        return fail_imap(ds, &err, "UID STORE");
    }
    return APR_SUCCESS;
}

static apr_status_t body_cb(void *baton, apr_uint64_t off, const char *data,
                            apr_size_t len)
{
    (void)off;
    memds_buf_add(baton, data, len);
    return APR_SUCCESS;
}


/* ------------------------------------- the hierarchical "email" datastore
 *
 * Every folder of the account is an item (a folder object, server id
 * "f<n>"), every message an item whose parent is its folder. A scan LISTs
 * the folders with their STATUS and scans those whose UIDVALIDITY or
 * HIGHESTMODSEQ moved. A device's Add names the parent folder (TargetParent,
 * or SourceParent for a folder it adds in the same package); a Replace with
 * another parent moves the message (UID MOVE, same server id). */

static int is_hier_name(const char *n)
{
    return strcasecmp(n, "email") == 0 || strcasecmp(n, "mail") == 0;
}

static const char *role_text(memds_imap_role_e r)
{
    switch (r) {
    case MEMDS_IMAP_ROLE_INBOX: return "inbox";
    case MEMDS_IMAP_ROLE_SENT: return "sent";
    case MEMDS_IMAP_ROLE_DRAFTS: return "drafts";
    case MEMDS_IMAP_ROLE_TRASH: return "trash";
    case MEMDS_IMAP_ROLE_JUNK: return "junk";
    case MEMDS_IMAP_ROLE_ARCHIVE: return "archive";
    default: return NULL;
    }
}

/* Choose the folder the next operations work on (by IMAP name). */
static apr_status_t set_folder(memds_ds_t *ds, const char *folder)
{
    imap_ds_t *x = X(ds);
    apr_array_header_t *boxes;
    int i;

    x->folder = folder;
    x->scanned = 0;
    x->role = MEMDS_IMAP_ROLE_NONE;
    if (strcmp(folder, "INBOX") == 0) {
        x->role = MEMDS_IMAP_ROLE_INBOX;
        return APR_SUCCESS;
    }
    if (strcmp(folder, OUTBOX_FOLDER) == 0) {
        return APR_SUCCESS;
    }
    if (boxes_get(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i, memds_imap_list_t *);
        if (strcmp(l->name, folder) == 0) {
            x->role = l->role;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t scan_all(memds_ds_t *ds)
{
    imap_ds_t *x = X(ds);
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    apr_array_header_t *boxes, *rows;
    apr_hash_t *known = apr_hash_make(ds->st->pool), *seen = apr_hash_make(ds->st->pool);
    int i;

    if (conn_get(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_imap_list(c, "UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES", &boxes,
                        &err, x->sh->p) != APR_SUCCESS) {
        return fail_imap(ds, &err, "LIST");
    }
    x->sh->boxes = boxes;
    if (memds_mail_folders_all(ds->st, &rows, ds->account) != APR_SUCCESS) {
        return fail_db(ds);
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mfitem_t *f = APR_ARRAY_IDX(rows, i, memds_mfitem_t *);
        apr_hash_set(known, f->folder, APR_HASH_KEY_STRING, f);
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i, memds_imap_list_t *);
        const memds_mfitem_t *f = apr_hash_get(known, l->name, APR_HASH_KEY_STRING);
        const memds_imap_status_t *st = l->status;

        if (!selectable(l)) {
            continue;
        }
        apr_hash_set(seen, l->name, APR_HASH_KEY_STRING, l);
        if (memds_mail_folder_upsert(ds->st, ds->account, l->name,
                                     path_of(l, ds->st->pool), role_text(l->role),
                                     0, NULL) != APR_SUCCESS) {
            return fail_db(ds);
        }
        if (f && !f->deleted && st && (st->have & MEMDS_IMAP_ST_UIDVALIDITY)
            && (st->have & MEMDS_IMAP_ST_HIGHESTMODSEQ) && st->highestmodseq > 0
            && f->uidvalidity == (apr_int64_t)st->uidvalidity
            && f->highestmodseq == (apr_int64_t)st->highestmodseq) {
            continue; /* unchanged: not even a SELECT */
        }
        if (set_folder(ds, l->name) != APR_SUCCESS || scan(ds) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    /* the Outbox: a folder of its own, not on IMAP (mail added to it is sent) */
    if (x->cfg->smtp_url) {
        if (memds_mail_folder_upsert(ds->st, ds->account, OUTBOX_FOLDER, "Outbox",
                                     "outbox", 0, NULL) != APR_SUCCESS) {
            return fail_db(ds);
        }
        apr_hash_set(seen, OUTBOX_FOLDER, APR_HASH_KEY_STRING, "");
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mfitem_t *f = APR_ARRAY_IDX(rows, i, memds_mfitem_t *);
        if (!f->deleted && !apr_hash_get(seen, f->folder, APR_HASH_KEY_STRING)
            && memds_mail_folder_gone(ds->st, ds->account, f->folder, 0)
               != APR_SUCCESS) {
            return fail_db(ds);
        }
    }
    x->sh->frows = NULL; /* (upserted and tombstoned above) */
    x->folder = NULL;
    return APR_SUCCESS;
}

/* The live folder row of a guid. */
static apr_status_t folder_row(memds_ds_t *ds, memds_mfitem_t *f, const char *guid)
{
    apr_status_t rv = memds_mail_folder_by_guid(ds->st, f, ds->account, guid);

    if (rv == APR_SUCCESS && (f->deleted || f->name == NULL)) {
        return APR_ENOENT;
    }
    return rv == APR_SUCCESS || rv == APR_ENOENT ? rv : fail_db(ds);
}

static const char *last_component(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

/* Every folder row of the account, read once per request (the email
 * datastore needs them for each item's parent); a folder change drops
 * them (x->sh->frows = NULL). */
static apr_status_t folder_rows(memds_ds_t *ds, apr_array_header_t **prows)
{
    imap_ds_t *x = X(ds);

    if (x->sh->frows == NULL
        && memds_mail_folders_all(ds->st, &x->sh->frows, ds->account)
           != APR_SUCCESS) {
        x->sh->frows = NULL;
        return fail_db(ds);
    }
    *prows = x->sh->frows;
    return APR_SUCCESS;
}

/* The guid of the folder whose path is the parent of path, or NULL. */
static apr_status_t parent_of_path(memds_ds_t *ds, const char *path,
                                   const char **pguid)
{
    apr_array_header_t *rows;
    const char *slash = strrchr(path, '/');
    const char *ppath;
    int i;

    *pguid = NULL;
    if (slash == NULL) {
        return APR_SUCCESS;
    }
    ppath = apr_pstrndup(ds->st->pool, path, (apr_size_t)(slash - path));
    if (folder_rows(ds, &rows) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mfitem_t *f = APR_ARRAY_IDX(rows, i, memds_mfitem_t *);
        if (!f->deleted && f->name && strcmp(f->name, ppath) == 0) {
            *pguid = f->guid;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t folder_fetch(memds_ds_t *ds, const char *guid,
                                 const char **pdata, apr_size_t *plen,
                                 const char **ptype)
{
    memds_mfitem_t f;
    memds_folder_t *fo;
    memds_buf_t out;
    memds_codec_err_t err;
    apr_status_t rv = folder_row(ds, &f, guid);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    fo = apr_pcalloc(ds->st->pool, sizeof(*fo));
    fo->name = last_component(f.name);
    fo->role = f.role;
    memds_buf_init(&out, 256, ds->st->pool);
    memset(&err, 0, sizeof(err));
    if (memds_folder_build(&out, fo, &err, ds->st->pool) != APR_SUCCESS) {
        return fail(ds, 500, apr_psprintf(ds->st->pool, "building a folder "
                                          "object: %s", err.msg ? err.msg : "?"));
    }
    *pdata = out.data;
    *plen = out.len;
    *ptype = MEMDS_FOLDER_CTTYPE;
    return APR_SUCCESS;
}

static int is_folder_item(const char *type, const char *data, apr_size_t len)
{
    if (type && strcasecmp(type, MEMDS_FOLDER_CTTYPE) == 0) {
        return 1;
    }
    return !type && len >= 7 && strncmp(data, "<Folder", 7) == 0;
}

/* The IMAP name for a device path under parent folder row pf (NULL: top). */
static apr_status_t wire_name(memds_ds_t *ds, const memds_mfitem_t *pf,
                              const char *name, const char **pwire,
                              const char **ppath)
{
    apr_array_header_t *boxes;
    char delim = '/';
    const char *w;
    int i;

    if (boxes_get(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i, memds_imap_list_t *);
        if (l->delim) {
            delim = l->delim;
            break;
        }
    }
    if (strchr(name, delim) || strchr(name, '/') || !*name) {
        return fail(ds, 400, "folder name with a hierarchy separator");
    }
    if (memds_imap_mutf7_encode(&w, name, ds->st->pool) != APR_SUCCESS) {
        return fail(ds, 400, "folder name is not valid UTF-8");
    }
    *pwire = pf ? apr_psprintf(ds->st->pool, "%s%c%s", pf->folder, delim, w) : w;
    *ppath = pf ? apr_pstrcat(ds->st->pool, pf->name, "/", name, NULL) : name;
    return APR_SUCCESS;
}

static apr_status_t folder_add(memds_ds_t *ds, const char **pguid,
                               const char *data, apr_size_t len)
{
    memds_folder_t *fo;
    memds_codec_err_t err;
    memds_mfitem_t pf;
    memds_imap_conn_t *c;
    memds_imap_err_t ierr;
    const char *wire, *path;
    int has_parent = 0;

    memset(&err, 0, sizeof(err));
    if (memds_folder_parse(&fo, data, len, &err, ds->st->pool) != APR_SUCCESS) {
        return fail(ds, 415, apr_psprintf(ds->st->pool, "unreadable folder "
                                          "object: %s", err.msg ? err.msg : "?"));
    }
    if (ds->parent_hint) {
        if (folder_row(ds, &pf, ds->parent_hint) != APR_SUCCESS) {
            return ds->status ? APR_EGENERAL
                   : fail(ds, 404, "the parent folder does not exist");
        }
        has_parent = 1;
    }
    if (wire_name(ds, has_parent ? &pf : NULL, fo->name, &wire, &path) != APR_SUCCESS
        || conn_get(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_imap_create(c, wire, &ierr) != APR_SUCCESS
        && ierr.code != MEMDS_IMAP_CODE_ALREADYEXISTS) {
        return fail_imap(ds, &ierr, "CREATE");
    }
    X(ds)->sh->boxes = NULL; /* LIST again when needed */
    X(ds)->sh->frows = NULL;
    if (memds_mail_folder_upsert(ds->st, ds->account, wire, path, NULL,
                                 ds->device_id, pguid) != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t folder_replace(memds_ds_t *ds, const char *guid,
                                   const char *data, apr_size_t len)
{
    memds_folder_t *fo;
    memds_codec_err_t err;
    memds_mfitem_t f, pf;
    memds_imap_conn_t *c;
    memds_imap_err_t ierr;
    const char *wire, *path, *ppath;
    int has_parent = 0;
    apr_status_t rv = folder_row(ds, &f, guid);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(&err, 0, sizeof(err));
    if (memds_folder_parse(&fo, data, len, &err, ds->st->pool) != APR_SUCCESS) {
        return fail(ds, 415, apr_psprintf(ds->st->pool, "unreadable folder "
                                          "object: %s", err.msg ? err.msg : "?"));
    }
    if (ds->parent_hint) {
        if (folder_row(ds, &pf, ds->parent_hint) != APR_SUCCESS) {
            return ds->status ? APR_EGENERAL
                   : fail(ds, 404, "the parent folder does not exist");
        }
        has_parent = 1;
    }
    else {
        /* no parent named: it stays where it is */
        if (parent_of_path(ds, f.name, &ppath) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (ppath && folder_row(ds, &pf, ppath) == APR_SUCCESS) {
            has_parent = 1;
        }
    }
    if (wire_name(ds, has_parent ? &pf : NULL, fo->name, &wire, &path) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (strcmp(wire, f.folder) == 0) {
        return APR_SUCCESS; /* same name and place */
    }
    if (f.role || strcmp(f.folder, "INBOX") == 0) {
        return fail(ds, 405, "special folders (Inbox, Sent, Drafts, Trash, "
                    "...) cannot be renamed");
    }
    if (conn_get(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memds_imap_unselect(c, &ierr);
    if (memds_imap_rename(c, f.folder, wire, &ierr) != APR_SUCCESS) {
        return fail_imap(ds, &ierr, "RENAME");
    }
    X(ds)->sh->boxes = NULL;
    X(ds)->sh->frows = NULL;
    if (memds_mail_folder_rename(ds->st, ds->account, f.folder, wire, path,
                                 ds->device_id) != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t folder_remove(memds_ds_t *ds, const char *guid)
{
    memds_mfitem_t f;
    memds_imap_conn_t *c;
    memds_imap_err_t ierr;
    apr_status_t rv = folder_row(ds, &f, guid);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (f.role || strcmp(f.folder, "INBOX") == 0) {
        return fail(ds, 405, "special folders (Inbox, Sent, Drafts, Trash, "
                    "...) cannot be deleted");
    }
    if (conn_get(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memds_imap_unselect(c, &ierr);
    if (memds_imap_delete(c, f.folder, &ierr) != APR_SUCCESS
        && memds_imap_status_of(&ierr).status != 404) {
        return fail_imap(ds, &ierr, "DELETE");
    }
    X(ds)->sh->boxes = NULL;
    X(ds)->sh->frows = NULL;
    if (memds_mail_folder_gone(ds->st, ds->account, f.folder, ds->device_id)
        != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

/* Move the message of row (in the current folder) to folder row to. */
static apr_status_t move_msg(memds_ds_t *ds, memds_mmsg_t *row,
                             const memds_mfitem_t *to)
{
    imap_ds_t *x = X(ds);
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    memds_imap_copyuid_t *cu = NULL;
    const char *from = x->folder;
    apr_uint32_t nuid;

    if (select_folder(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_imap_uid_move(c, apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT,
                                            row->uid),
                            to->folder, NULL, NULL, &cu, &err, ds->st->pool)
        != APR_SUCCESS) {
        return fail_imap(ds, &err, "UID MOVE");
    }
    nuid = cu ? memds_imap_copyuid_map(cu, (apr_uint32_t)row->uid) : 0;
    if (nuid == 0) {
        return fail(ds, 500, "the IMAP server did not say where the message "
                    "went (no COPYUID)");
    }
    if (memds_mail_move(ds->st, ds->account, from, to->folder, row, nuid,
                        ds->device_id) != APR_SUCCESS) {
        return fail_db(ds);
    }
    row->uid = nuid;
    return set_folder(ds, to->folder);
}

/* The folder a device names for a message (parent_hint), or INBOX. */
static apr_status_t target_folder(memds_ds_t *ds, memds_mfitem_t *f, int *pnamed)
{
    *pnamed = 0;
    if (ds->parent_hint) {
        apr_status_t rv = folder_row(ds, f, ds->parent_hint);
        if (rv != APR_SUCCESS) {
            return ds->status ? APR_EGENERAL
                   : fail(ds, 404, "the parent folder does not exist");
        }
        *pnamed = 1;
    }
    return APR_SUCCESS;
}

static apr_status_t hier_parent(memds_ds_t *ds, const char *guid,
                                const char **pparent)
{
    memds_mfitem_t f;
    memds_mmsg_t row;
    const char *folder;
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *pparent = NULL;
    if (!X(ds)->hier) {
        return APR_SUCCESS;
    }
    if (guid[0] == 'f') {
        rv = folder_row(ds, &f, guid);
        return rv == APR_SUCCESS ? parent_of_path(ds, f.name, pparent) : rv;
    }
    rv = memds_mail_get_any(ds->st, &row, &folder, ds->account, guid);
    if (rv != APR_SUCCESS) {
        return rv == APR_ENOENT ? rv : fail_db(ds);
    }
    if (folder_rows(ds, &rows) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mfitem_t *r = APR_ARRAY_IDX(rows, i, memds_mfitem_t *);
        if (!r->deleted && strcmp(r->folder, folder) == 0) {
            *pparent = r->guid;
        }
    }
    return APR_SUCCESS;
}


/* ------------------------------------------------------------ the Outbox
 *
 * An Add to "Outbox" means "send this". Exactly once (DESIGN.md decision 3):
 * the ledger row (memds.outbox) is committed on its own connection before
 * SMTP starts, keyed by (account, device, datastore, LUID, SHA-1 of the
 * item), and moves received -> submitting (committed by the SMTP layer's
 * hook just before the end of the data goes out) -> submitted (250) ->
 * filed (copy appended to Sent). A retried Add finds its row: received
 * (died before SMTP) is sent now, submitting/submitted/filed are answered
 * as sent without sending again, rejected gets its stored status, retrying
 * waits for its time. The device's Outbox item is then deleted by the
 * server (a tombstone in the virtual Outbox folder), so it turns into the
 * Sent copy on devices that sync Sent. */

/* Test hook: MEMDS_TEST_FAULT=<point> in httpd's environment kills the
 * process at that point of sending (SIGKILL: no cleanup, no answer), so
 * that tests can show a crash at every step of the ledger ends in exactly
 * one delivery. Never set in production; reading the environment has no
 * other effect. */
static void fault_point(const char *point)
{
    const char *f = getenv("MEMDS_TEST_FAULT");

    if (f && strcmp(f, point) == 0) {
        kill(getpid(), SIGKILL);
    }
}

typedef struct ledger_t {
    memds_store_t st;
    memds_pgconn_t *conn;
} ledger_t;

static apr_status_t ledger_open(memds_ds_t *ds, ledger_t *l)
{
    const char *why;

    if (X(ds)->cfg->pgpool == NULL) {
        return fail(ds, 500, "no database pool for the outbox ledger");
    }
    if (memds_pgpool_acquire_for(&l->conn, X(ds)->cfg->pgpool, &why,
                                 ds->st->pool) != APR_SUCCESS) {
        return fail(ds, 503, apr_psprintf(ds->st->pool, "outbox ledger: no "
                                          "database connection: %s", why));
    }
    /* autocommit: every ledger step is durable at once */
    memds_store_init(&l->st, l->conn, ds->st->pool);
    return APR_SUCCESS;
}

static apr_status_t ledger_fail(memds_ds_t *ds, ledger_t *l)
{
    return fail(ds, 503, apr_psprintf(ds->st->pool, "outbox ledger: %s",
                                      l->st.err ? l->st.err : "?"));
}

typedef struct hook_ctx_t {
    ledger_t *l;
    apr_int64_t id;
} hook_ctx_t;

static apr_status_t before_end(void *baton)
{
    hook_ctx_t *h = baton;

    return memds_outbox_set(&h->l->st, h->id, "submitting", 0, NULL, NULL, 0,
                            0, 0);
}

/* APPEND a copy to the folder of role (Sent, or Drafts for a refused
 * message); its row makes it appear on the devices. *pguid NULL when there
 * is no such folder. */
static apr_status_t file_copy(memds_ds_t *ds, memds_imap_role_e role,
                              const char *data, apr_size_t len, int flags,
                              const char **pguid)
{
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    const char *folder;
    apr_uint32_t uv = 0, uid = 0;
    memds_mmsg_t row;

    *pguid = NULL;
    if (role_folder(ds, role, &folder) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (folder == NULL) {
        return APR_SUCCESS;
    }
    if (conn_get(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_imap_append(c, folder, imap_flag_list(flags, ds->st->pool), 0,
                          data, len, &uv, &uid, &err) != APR_SUCCESS) {
        return fail_imap(ds, &err, "APPEND");
    }
    if (uid == 0) {
        return APR_SUCCESS; /* no UIDPLUS: the next scan finds it */
    }
    memset(&row, 0, sizeof(row));
    row.uid = uid;
    row.flags = flags;
    row.message_id = memds_mime_header_value(data, len, "Message-ID", ds->st->pool);
    row.size = (apr_int64_t)len;
    row.internaldate = apr_time_now();
    /* changed_by 0: every device of the account gets it */
    if (memds_mail_add(ds->st, pguid, ds->account, folder, &row, 0) != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}


/* ------------------------------- reply and forward without download
 *
 * A device replies to or forwards a message it has (maybe only its
 * headers, truncated) without sending the original back: its Outbox
 * message carries the header "X-MemDS-Reply: <server id>" or
 * "X-MemDS-Forward: <server id>" (the id it got the original under; in an
 * Email object or a message/rfc822 item alike). The server composes what
 * goes out from the device's text and the original on IMAP, fetched by
 * parts (BODYSTRUCTURE, then BODY.PEEK of the parts it needs):
 * - reply: the original's text quoted under the device's text ("On <date>,
 *   <from> wrote:" and "> " lines), In-Reply-To and References set; the
 *   original gets \Answered;
 * - forward: the original's text quoted under a "Forwarded message" line,
 *   and every attachment of the original attached byte for byte (its MIME
 *   header and body as stored); the original gets $Forwarded.
 * Quoting needs the device's message to be one text/plain part without a
 * transfer encoding (what phones send) and the original's text to be
 * UTF-8 or ASCII; otherwise the text is attached instead of quoted. */

typedef struct leaf_t {
    const char *section, *type, *subtype, *charset, *encoding, *disposition;
} leaf_t;

typedef struct bs_ctx_t {
    apr_pool_t *p;
    apr_array_header_t *leaves;   /* leaf_t */
    int multipart;
} bs_ctx_t;

static const char *param_of(const apr_array_header_t *params, const char *name)
{
    int i;

    for (i = 0; params && i < params->nelts; ++i) {
        const memds_imap_param_t *pa = &APR_ARRAY_IDX(params, i, memds_imap_param_t);
        if (pa->name && strcasecmp(pa->name, name) == 0) {
            return pa->value;
        }
    }
    return NULL;
}

static void collect_leaves(bs_ctx_t *b, const memds_imap_body_t *n)
{
    int i;

    if (n->multipart) {
        for (i = 0; n->parts && i < n->parts->nelts; ++i) {
            collect_leaves(b, APR_ARRAY_IDX(n->parts, i, memds_imap_body_t *));
        }
        return;
    }
    {
        leaf_t *l = apr_array_push(b->leaves);
        l->section = apr_pstrdup(b->p, n->section);
        l->type = apr_pstrdup(b->p, n->type ? n->type : "text");
        l->subtype = apr_pstrdup(b->p, n->subtype ? n->subtype : "plain");
        l->charset = apr_pstrdup(b->p, param_of(n->params, "charset"));
        l->encoding = apr_pstrdup(b->p, n->encoding);
        l->disposition = apr_pstrdup(b->p, n->disposition);
    }
}

static apr_status_t bs_cb(void *baton, const memds_imap_resp_t *r)
{
    bs_ctx_t *b = baton;

    if (r->type == MEMDS_IMAP_RESP_FETCH && r->fetch->body) {
        b->multipart = r->fetch->body->multipart;
        collect_leaves(b, r->fetch->body);
    }
    return APR_SUCCESS;
}

static apr_status_t fetch_section(memds_ds_t *ds, memds_imap_conn_t *c,
                                  apr_int64_t uid, const char *section,
                                  unsigned flags, memds_buf_t *out)
{
    memds_imap_err_t err;
    memds_imap_body_info_t info;

    memds_buf_init(out, 4096, ds->st->pool);
    if (memds_imap_fetch_body(c, (apr_uint32_t)uid, section, 0, 0, flags,
                              body_cb, out, &info, &err) != APR_SUCCESS) {
        return fail_imap(ds, &err, "UID FETCH BODY.PEEK[part]");
    }
    memds_buf_addc(out, '\0');
    out->len--;
    return APR_SUCCESS;
}

/* "> " before every line of text (CRLF). */
static void add_quoted(memds_buf_t *b, const char *t, apr_size_t n)
{
    apr_size_t i = 0;

    while (i < n) {
        apr_size_t eol = i;
        while (eol < n && t[eol] != '\n') {
            ++eol;
        }
        memds_buf_add(b, ">", 1);
        if (eol > i && t[i] != '>') {
            memds_buf_add(b, " ", 1);
        }
        memds_buf_add(b, t + i, (eol > i && t[eol - 1] == '\r') ? eol - 1 - i : eol - i);
        memds_buf_add(b, "\r\n", 2);
        i = eol + 1;
    }
}

static int simple_text(const char *charset, const char *enc)
{
    return (!charset || !strcasecmp(charset, "utf-8") || !strcasecmp(charset, "us-ascii"))
           && (!enc || !strcasecmp(enc, "7bit") || !strcasecmp(enc, "8bit")
               || !strcasecmp(enc, "quoted-printable") || !strcasecmp(enc, "base64"));
}

/* in->msg becomes the composed message when it asks for a reply or forward. */
static apr_status_t compose_smart(memds_ds_t *ds, incoming_t *in)
{
    static const char *const drop_top[] = {
        "X-MemDS-Reply", "X-MemDS-Forward", "MIME-Version", "Content-Type",
        "Content-Transfer-Encoding", NULL
    };
    apr_pool_t *p = ds->st->pool;
    const char *rid = memds_mime_header_value(in->msg, in->len, "X-MemDS-Reply", p);
    const char *fid = memds_mime_header_value(in->msg, in->len, "X-MemDS-Forward", p);
    const char *id = rid ? rid : fid, *ctype, *cte, *orig_id, *from, *date,
               *boundary, *refs, *top;
    memds_mmsg_t row;
    const char *folder;
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    bs_ctx_t b;
    memds_buf_t out, hdr, text;
    apr_size_t hlen;
    const leaf_t *textpart = NULL;
    int quote, i, nf;
    unsigned char rnd[8];

    if (id == NULL) {
        return APR_SUCCESS;
    }
    if (memds_mail_get_any(ds->st, &row, &folder, ds->account, id) != APR_SUCCESS) {
        return fail(ds, 404, apr_psprintf(p, "the message to %s (%s) does not "
                                          "exist (any more)", rid ? "reply to"
                                          : "forward", id));
    }
    if (set_folder(ds, folder) != APR_SUCCESS || select_folder(ds, &c, NULL)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memset(&b, 0, sizeof(b));
    b.p = p;
    b.leaves = apr_array_make(p, 4, sizeof(leaf_t));
    if (memds_imap_uid_fetch(c, apr_psprintf(p, "%" APR_INT64_T_FMT, row.uid),
                             "(UID BODYSTRUCTURE)", 0, 0, bs_cb, &b, &err)
        != APR_SUCCESS) {
        return fail_imap(ds, &err, "UID FETCH BODYSTRUCTURE");
    }
    /* the original's header fields the reply needs */
    if (fetch_section(ds, c, row.uid, "HEADER.FIELDS (FROM DATE MESSAGE-ID "
                      "REFERENCES SUBJECT)", 0, &hdr) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    from = memds_mime_header_value(hdr.data, hdr.len, "From", p);
    date = memds_mime_header_value(hdr.data, hdr.len, "Date", p);
    orig_id = memds_mime_header_value(hdr.data, hdr.len, "Message-ID", p);
    refs = memds_mime_header_value(hdr.data, hdr.len, "References", p);
    for (i = 0; i < b.leaves->nelts; ++i) {
        const leaf_t *l = &APR_ARRAY_IDX(b.leaves, i, leaf_t);
        if (!strcasecmp(l->type, "text") && !strcasecmp(l->subtype, "plain")
            && (!l->disposition || strcasecmp(l->disposition, "attachment"))) {
            textpart = l;
            break;
        }
    }
    top = memds_mime_header_without(in->msg, in->len, drop_top, &hlen, p);
    if (top == NULL) {
        return fail(ds, 400, "cannot read the header of the message");
    }
    ctype = memds_mime_header_value(in->msg, hlen, "Content-Type", p);
    cte = memds_mime_header_value(in->msg, hlen, "Content-Transfer-Encoding", p);
    quote = textpart && simple_text(textpart->charset, textpart->encoding)
            && (!ctype || !strncasecmp(ctype, "text/plain", 10))
            && (!cte || !strcasecmp(cte, "7bit") || !strcasecmp(cte, "8bit"));
    /* the new text: the device's, then the original's quoted */
    memds_buf_init(&text, in->len + 1024, p);
    memds_buf_add(&text, in->msg + hlen, in->len - hlen);
    if (quote) {
        memds_buf_t ot;
        if (fetch_section(ds, c, row.uid, textpart->section, MEMDS_IMAP_BODY_BINARY,
                          &ot) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (text.len >= 2 && memcmp(text.data + text.len - 2, "\r\n", 2) != 0) {
            memds_buf_add(&text, "\r\n", 2);
        }
        if (rid) {
            const char *att = apr_psprintf(p, "\r\nOn %s, %s wrote:\r\n",
                                           date ? date : "an earlier day",
                                           from ? from : "someone");
            memds_buf_add(&text, att, strlen(att));
        }
        else {
            const char *att = apr_psprintf(p, "\r\n---------- Forwarded message "
                                           "----------\r\nFrom: %s\r\nDate: %s\r\n"
                                           "\r\n", from ? from : "", date ? date : "");
            memds_buf_add(&text, att, strlen(att));
        }
        add_quoted(&text, ot.data, ot.len);
    }
    /* the parts to attach: a forward's attachments (or the whole original
     * when its text could not be quoted and it has no other part) */
    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        return fail(ds, 500, "no random bytes for a MIME boundary");
    }
    boundary = apr_psprintf(p, "=_memds_%02x%02x%02x%02x%02x%02x%02x%02x",
                            rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
                            rnd[6], rnd[7]);
    memds_buf_init(&out, in->len + text.len + 4096, p);
    memds_buf_add(&out, top, strlen(top));
    if (rid && orig_id) {
        const char *x = apr_psprintf(p, "In-Reply-To: %s\r\nReferences: %s%s%s\r\n",
                                     orig_id, refs ? refs : "", refs ? " " : "",
                                     orig_id);
        memds_buf_add(&out, x, strlen(x));
    }
    memds_buf_add(&out, "MIME-Version: 1.0\r\n", 19);
    if (rid || (fid && b.leaves->nelts <= (textpart ? 1 : 0) && quote)) {
        /* one text part: what the device wrote, with the quote */
        const char *x = apr_psprintf(p, "Content-Type: %s\r\n%s%s%s\r\n",
                                     ctype ? ctype : "text/plain; charset=UTF-8",
                                     cte ? "Content-Transfer-Encoding: " : "",
                                     cte ? cte : "", cte ? "\r\n" : "");
        memds_buf_add(&out, x, strlen(x));
        memds_buf_add(&out, text.data, text.len);
    }
    else {
        const char *x = apr_psprintf(p, "Content-Type: multipart/mixed; "
                                     "boundary=\"%s\"\r\n\r\n--%s\r\nContent-Type: "
                                     "%s\r\n%s%s%s\r\n", boundary, boundary,
                                     ctype ? ctype : "text/plain; charset=UTF-8",
                                     cte ? "Content-Transfer-Encoding: " : "",
                                     cte ? cte : "", cte ? "\r\n" : "");
        memds_buf_add(&out, x, strlen(x));
        memds_buf_add(&out, text.data, text.len);
        for (i = 0; i < b.leaves->nelts; ++i) {
            const leaf_t *l = &APR_ARRAY_IDX(b.leaves, i, leaf_t);
            memds_buf_t mh, mb;
            if (quote && l == textpart) {
                continue;
            }
            if (!strcasecmp(l->type, "text") && !l->disposition && b.multipart
                && l != textpart && !strcasecmp(l->subtype, "html") && quote) {
                continue; /* the HTML twin of the quoted text */
            }
            if (!b.multipart) {
                /* a single-part original: attach it whole */
                if (fetch_section(ds, c, row.uid, "", 0, &mb) != APR_SUCCESS) {
                    return APR_EGENERAL;
                }
                x = apr_psprintf(p, "\r\n--%s\r\nContent-Type: message/rfc822\r\n"
                                 "Content-Disposition: attachment\r\n\r\n", boundary);
                memds_buf_add(&out, x, strlen(x));
                memds_buf_add(&out, mb.data, mb.len);
                break;
            }
            if (fetch_section(ds, c, row.uid, apr_pstrcat(p, l->section, ".MIME", NULL),
                              0, &mh) != APR_SUCCESS
                || fetch_section(ds, c, row.uid, l->section, 0, &mb) != APR_SUCCESS) {
                return APR_EGENERAL;
            }
            x = apr_psprintf(p, "\r\n--%s\r\n", boundary);
            memds_buf_add(&out, x, strlen(x));
            memds_buf_add(&out, mh.data, mh.len); /* (ends with its blank line) */
            memds_buf_add(&out, mb.data, mb.len);
        }
        x = apr_psprintf(p, "\r\n--%s--\r\n", boundary);
        memds_buf_add(&out, x, strlen(x));
    }
    in->msg = out.data;
    in->len = out.len;
    /* the original is now answered / forwarded (best effort: the message
     * goes out either way) */
    nf = row.flags | (rid ? MEMDS_MAIL_ANSWERED : MEMDS_MAIL_FORWARDED);
    if (nf != row.flags) {
        if (store_flags(ds, c, row.uid, row.flags, nf) == APR_SUCCESS) {
            row.flags = nf;
            if (memds_mail_update(ds->st, ds->account, folder, &row, 0, 0)
                != APR_SUCCESS) {
                return fail_db(ds);
            }
        }
        else {
            memds_logf(X(ds)->cfg->log, 4, APR_SUCCESS, "%s (the original "
                       "stays unflagged)", ds->reason);
            ds->status = 0;
        }
    }
    return APR_SUCCESS;
}

/* The Outbox item's server id: "q" and the ledger row. */
static const char *outbox_guid(memds_ds_t *ds, apr_int64_t id)
{
    return apr_psprintf(ds->st->pool, "q%" APR_INT64_T_FMT, id);
}

/* The Outbox item is done (sent, or refused and moved to Drafts): a
 * tombstone makes the device delete it, in this session when possible. */
static apr_status_t outbox_done(memds_ds_t *ds, apr_int64_t id, const char **pguid)
{
    *pguid = outbox_guid(ds, id);
    if (memds_mail_tombstone(ds->st, ds->account, OUTBOX_FOLDER, *pguid)
        != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

static void smtp_cfg(memds_ds_t *ds, memds_smtp_config_t *c)
{
    imap_ds_t *x = X(ds);

    memset(c, 0, sizeof(*c));
    c->url = x->cfg->smtp_url;
    c->log = x->cfg->log;
    if (x->cfg->smtp_auth == MEMDS_SMTP_AUTH_USER) {
        c->user = ds->account;
        c->password = x->password;
    }
    else if (x->cfg->smtp_auth == MEMDS_SMTP_AUTH_FIXED) {
        c->user = x->cfg->smtp_user;
        c->password = x->cfg->smtp_password;
        c->authzid = ds->account;
    }
}

/* Send ledger row id now; the outcome is in the ledger and in ds. */
/* The sender's own copy (for Sent, or Drafts): the Bcc fields taken out
 * of the transmitted message put back in front of it. */
static const char *own_copy(memds_ds_t *ds, const char *data, apr_size_t len,
                            const char *bcc, apr_size_t bcc_len,
                            apr_size_t *pcopy_len)
{
    char *c;

    *pcopy_len = len + bcc_len;
    if (bcc == NULL || bcc_len == 0) {
        return data;
    }
    c = apr_palloc(ds->st->pool, len + bcc_len + 1);
    memcpy(c, bcc, bcc_len);
    memcpy(c + bcc_len, data, len);
    c[len + bcc_len] = '\0';
    return c;
}

static apr_status_t send_claimed(memds_ds_t *ds, ledger_t *l, apr_int64_t id,
                                 const char *from, const char *const *rcpts,
                                 int nrcpts, const char *data, apr_size_t len,
                                 const char *bcc, apr_size_t bcc_len,
                                 int attempts)
{
    apr_size_t own_len;
    const char *own;
    memds_smtp_config_t cfg;
    memds_smtp_err_t err;
    memds_smtp_outcome_t o;
    hook_ctx_t h;
    const char *sent = NULL;
    apr_status_t rv;

    if (X(ds)->cfg->smtp_url == NULL) {
        return fail(ds, 500, "no MemDSSMTPServer configured: cannot send");
    }
    smtp_cfg(ds, &cfg);
    h.l = l;
    h.id = id;
    memset(&err, 0, sizeof(err));
    rv = memds_smtp_send(&cfg, from, rcpts, nrcpts, data, len, before_end, &h,
                         &err, ds->st->pool);
    if (rv == APR_SUCCESS || err.in_doubt) {
        fault_point("outbox-sent");
        if (err.in_doubt) {
            memds_logf(X(ds)->cfg->log, 4, APR_SUCCESS, "outbox %" APR_INT64_T_FMT
                       " of %s: the SMTP server did not confirm the end of the "
                       "message; treated as sent, not sent again: %s", id,
                       ds->account, err.msg ? err.msg : "");
        }
        if (memds_outbox_set(&l->st, id, "submitted", 201, err.reply, NULL, 1, 0,
                             0) != APR_SUCCESS) {
            /* sent, but not recorded: the row stays "submitting", which a
             * retry also treats as sent */
            return ledger_fail(ds, l);
        }
        own = own_copy(ds, data, len, bcc, bcc_len, &own_len);
        if (!X(ds)->cfg->no_sent_copy
            && file_copy(ds, MEMDS_IMAP_ROLE_SENT, own, own_len, MEMDS_MAIL_SEEN,
                         &sent) != APR_SUCCESS) {
            /* sent: the copy is missing, which the log says; the device's
             * Add still succeeded */
            memds_logf(X(ds)->cfg->log, 4, APR_SUCCESS, "outbox %" APR_INT64_T_FMT
                       " of %s: sent, but not filed in Sent: %s", id, ds->account,
                       ds->reason);
            ds->status = 0;
            return APR_SUCCESS;
        }
        if (memds_outbox_set(&l->st, id, "filed", 0, NULL, sent, 0, 0, 1)
            != APR_SUCCESS) {
            return ledger_fail(ds, l);
        }
        fault_point("outbox-filed");
        return APR_SUCCESS;
    }
    o = memds_smtp_status_of(&err);
    if (err.kind == MEMDS_SMTP_E_HOOK) {
        /* the ledger could not record "submitting": nothing went out */
        return fail(ds, 503, "outbox ledger unavailable; message not sent");
    }
    if (err.permanent) {
        const char *reason = apr_psprintf(ds->st->pool, "%s (%s)", o.text,
                                          err.reply ? err.reply : err.msg ? err.msg : "");
        const char *draft, *copy;
        memds_outbox_set(&l->st, id, "rejected", o.status, reason, NULL, 1, 0, 0);
        /* the device keeps nothing in Outbox: the message goes to Drafts
         * with the reason, for the user to fix and send again */
        copy = apr_pstrcat(ds->st->pool, "X-MemDS-Send-Error: ",
                           apr_pstrndup(ds->st->pool, reason, 200), "\r\n", NULL);
        own = own_copy(ds, data, len, bcc, bcc_len, &own_len);
        copy = apr_pstrcat(ds->st->pool, copy, own, NULL);
        if (!X(ds)->cfg->keep_rejected
            && file_copy(ds, MEMDS_IMAP_ROLE_DRAFTS, copy, strlen(copy),
                         MEMDS_MAIL_DRAFT, &draft) != APR_SUCCESS) {
            ds->status = 0;
        }
        return fail(ds, o.status, apr_psprintf(ds->st->pool, "message refused "
                                               "by the SMTP server: %s", reason));
    }
    /* transient: later, with backoff (1, 2, 4, ... minutes, at most an hour) */
    {
        int secs = 60 << (attempts < 6 ? attempts : 6);
        if (secs > 3600) {
            secs = 3600;
        }
        memds_outbox_set(&l->st, id, "retrying", 202,
                         apr_psprintf(ds->st->pool, "%s (%s)", o.text,
                                      err.msg ? err.msg : ""), NULL, 1, secs, 0);
        memds_logf(X(ds)->cfg->log, 4, APR_SUCCESS, "outbox %" APR_INT64_T_FMT
                   " of %s: not sent yet, retried in %d s: %s (%s)", id,
                   ds->account, secs, o.text, err.msg ? err.msg : "");
        ds->ok_status = 202;
        return APR_SUCCESS;
    }
}

/* A row sent but not filed (submitting or submitted: the sender died or
 * lost the database after the SMTP server took the message): the copy in
 * Sent is made now. Nothing to do for other states. */
static apr_status_t file_late(memds_ds_t *ds, ledger_t *l,
                              const memds_outbox_row_t *row, const char *data,
                              apr_size_t len, const char *bcc, apr_size_t bcc_len)
{
    const char *sent = NULL;

    if ((strcmp(row->state, "submitting") != 0
         && strcmp(row->state, "submitted") != 0) || data == NULL
        || X(ds)->cfg->no_sent_copy) {
        return APR_SUCCESS;
    }
    data = own_copy(ds, data, len, bcc, bcc_len, &len);
    if (file_copy(ds, MEMDS_IMAP_ROLE_SENT, data, len, MEMDS_MAIL_SEEN, &sent)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_outbox_set(&l->st, row->id, "filed", 0, NULL, sent, 0, 0, 1)
        != APR_SUCCESS) {
        return ledger_fail(ds, l);
    }
    return APR_SUCCESS;
}

/* Send ledger row id, as one sender: a device's Add or retried Add, the
 * retries at a device's sync and the background job can reach the same row
 * at the same time (two children, or a child and the watchdog), and only
 * the one holding the row's claim (memds_outbox_claim) sends. The others
 * answer "pending" (202). The claimant reads the row again first, so that
 * what a sender before it did counts: sent (and filed) means done, refused
 * means its status. */
static apr_status_t submit(memds_ds_t *ds, ledger_t *l, apr_int64_t id,
                           const char *from, const char *const *rcpts,
                           int nrcpts, const char *data, apr_size_t len,
                           const char *bcc, apr_size_t bcc_len)
{
    memds_outbox_row_t now;
    int got;
    apr_status_t rv;

    if (memds_outbox_claim(&l->st, id, &got, &now) != APR_SUCCESS) {
        return ledger_fail(ds, l);
    }
    if (!got) {
        memds_logf(X(ds)->cfg->log, 6, APR_SUCCESS, "outbox %" APR_INT64_T_FMT
                   " of %s: being sent by another process; pending", id,
                   ds->account);
        ds->ok_status = 202;
        return APR_SUCCESS;
    }
    if (strcmp(now.state, "received") == 0 || strcmp(now.state, "retrying") == 0) {
        rv = send_claimed(ds, l, id, from, rcpts, nrcpts, data, len, bcc, bcc_len,
                          now.attempts);
    }
    else if (strcmp(now.state, "rejected") == 0) {
        rv = fail(ds, now.status ? now.status : 500,
                  now.reason ? now.reason : "message refused");
    }
    else {
        /* sent meanwhile by another sender */
        rv = file_late(ds, l, &now, data, len, bcc, bcc_len);
    }
    if (memds_outbox_unclaim(&l->st, id) != APR_SUCCESS) {
        /* the claim ends with the connection */
        memds_pgconn_mark_broken(l->conn);
    }
    return rv;
}

/* Due retries of this device's Outbox (at its syncs). */
static apr_status_t outbox_retry(memds_ds_t *ds)
{
    ledger_t l;
    apr_array_header_t *rows;
    int i;

    if (ledger_open(ds, &l) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_outbox_due(&l.st, &rows, NULL, ds->account, ds->device_id,
                         ds->store, 20)
        != APR_SUCCESS) {
        return ledger_fail(ds, &l);
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_outbox_row_t *r = APR_ARRAY_IDX(rows, i, memds_outbox_row_t *);
        const char *g;
        ds->ok_status = 0;
        if (submit(ds, &l, r->id, r->envelope_from,
                   (const char *const *)r->rcpts->elts, r->rcpts->nelts,
                   r->data, r->len, r->bcc, r->bcc_len) != APR_SUCCESS) {
            if (ds->status == 0) {
                return APR_EGENERAL;
            }
            memds_logf(X(ds)->cfg->log, 4, APR_SUCCESS, "%s", ds->reason);
            ds->status = 0;
            continue;
        }
        if (ds->ok_status == 0 && outbox_done(ds, r->id, &g) != APR_SUCCESS) {
            return APR_EGENERAL; /* (sent now: the device's item goes) */
        }
    }
    ds->ok_status = 0;
    return APR_SUCCESS;
}

/* SMTP MAIL FROM: the account when it is an address (accounts that log in
 * with their mail address), else the message's sender. */
static const char *envelope_from(memds_ds_t *ds, const memds_mime_submission_t *sub)
{
    return strchr(ds->account, '@') ? ds->account : sub->from;
}

static apr_status_t outbox_add(memds_ds_t *ds, const char **pguid,
                               const char *type, const char *data,
                               apr_size_t len)
{
    imap_ds_t *x = X(ds);
    incoming_t in;
    ledger_t l;
    memds_outbox_row_t row;
    memds_mime_submission_t *sub;
    const char *sha1, *why = NULL, *from;
    apr_int64_t id;
    apr_status_t rv;

    if (ds->luid_hint == NULL) {
        return fail(ds, 412, "an Outbox item without the device's id");
    }
    if (parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (in.msg == NULL) {
        return fail(ds, 412, "an Outbox item without the message (no emailitem)");
    }
    if (ledger_open(ds, &l) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    sha1 = memds_sha1_hex(data, len, ds->st->pool);
    rv = memds_outbox_find(&l.st, &row, ds->account, ds->device_id, ds->store,
                           ds->luid_hint, sha1);
    if (rv == APR_SUCCESS) {
        /* A retried Add: its outcome, never a second submission. */
        if (strcmp(row.state, "rejected") == 0) {
            return fail(ds, row.status ? row.status : 500, row.reason ? row.reason
                        : "message refused");
        }
        if (strcmp(row.state, "retrying") == 0 && !row.due) {
            ds->ok_status = 202;
            *pguid = outbox_guid(ds, row.id);
            return APR_SUCCESS;
        }
        if (strcmp(row.state, "filed") == 0
            || strcmp(row.state, "acknowledged") == 0) {
            return outbox_done(ds, row.id, pguid);
        }
        if (strcmp(row.state, "submitting") == 0) {
            memds_logf(x->cfg->log, 4, APR_SUCCESS, "outbox %" APR_INT64_T_FMT
                       " of %s: retried while its submission was in "
                       "progress or interrupted; it may have been sent and "
                       "is not sent again", row.id, ds->account);
        }
        /* received (died before SMTP) or a due retry: the stored message is
         * sent now, exactly as prepared the first time; submitting or
         * submitted: sent, filed in Sent now if it is not (submit decides
         * under the row's claim, after reading it again) */
        if (row.data == NULL) {
            return fail(ds, 500, "outbox ledger row without its message");
        }
        if (submit(ds, &l, row.id, row.envelope_from,
                   (const char *const *)row.rcpts->elts, row.rcpts->nelts,
                   row.data, row.len, row.bcc, row.bcc_len) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (ds->ok_status == 202) {
            *pguid = outbox_guid(ds, row.id);
            return APR_SUCCESS;
        }
        return outbox_done(ds, row.id, pguid);
    }
    else if (rv != APR_ENOENT) {
        return ledger_fail(ds, &l);
    }
    else {
        id = 0;
    }
    if (compose_smart(ds, &in) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    from = strchr(ds->account, '@') ? ds->account : NULL;
    if (memds_mime_prepare(&sub, in.msg, in.len, from, NULL,
                           (apr_size_t)64 * 1024 * 1024, &why, ds->st->pool)
        != APR_SUCCESS) {
        return fail(ds, 400, apr_psprintf(ds->st->pool, "cannot send: %s",
                                          why ? why : "invalid message"));
    }
    if (id == 0 && memds_outbox_insert(&l.st, &id, ds->account, ds->device_id,
                                       ds->store, x->cfg->location,
                                       ds->luid_hint, sha1,
                                       sub->message_id, envelope_from(ds, sub),
                                       (const char *const *)sub->rcpts->elts,
                                       sub->rcpts->nelts, sub->data, sub->len,
                                       sub->bcc_fields, sub->bcc_len)
                   != APR_SUCCESS) {
        return ledger_fail(ds, &l);
    }
    fault_point("outbox-received");
    if (submit(ds, &l, id, envelope_from(ds, sub), (const char *const *)sub->rcpts->elts,
               sub->rcpts->nelts, sub->data, sub->len, sub->bcc_fields,
               sub->bcc_len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (ds->ok_status == 202) {
        *pguid = outbox_guid(ds, id);
        return APR_SUCCESS;
    }
    return outbox_done(ds, id, pguid);
}

/* The rest of the Outbox datastore: it has nothing to send to a device but
 * the deletions of its sent items. */
static apr_status_t outbox_snapshot(memds_ds_t *ds, apr_int64_t *pseq)
{
    if (outbox_retry(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_outbox_acknowledge(ds->st, ds->account, ds->device_id, ds->store,
                                 OUTBOX_FOLDER) != APR_SUCCESS) {
        return fail_db(ds);
    }
    return memds_store_items_seq(ds->st, pseq) == APR_SUCCESS ? APR_SUCCESS
           : fail_db(ds);
}

/* ------------------------------------------------------------ the vtable */

static apr_status_t imap_snapshot(memds_ds_t *ds, apr_int64_t *pseq)
{
    if (X(ds)->outbox) {
        return outbox_snapshot(ds, pseq);
    }
    if ((X(ds)->hier ? scan_all(ds) : scan(ds)) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (X(ds)->hier && X(ds)->cfg->smtp_url
        && memds_outbox_acknowledge(ds->st, ds->account, ds->device_id, ds->store,
                                    OUTBOX_FOLDER) != APR_SUCCESS) {
        return fail_db(ds);
    }
    if (memds_store_items_seq(ds->st, pseq) != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t imap_changes(memds_ds_t *ds, apr_array_header_t **pchanges,
                                 apr_int64_t since, apr_int64_t upto)
{
    apr_array_header_t *rows, *out;
    int i;

    if (X(ds)->hier) {
        if (memds_mail_changed_all(ds->st, &rows, ds->account, since, upto)
            != APR_SUCCESS) {
            return fail_db(ds);
        }
    }
    else if (X(ds)->outbox) {
        if (memds_mail_changed(ds->st, &rows, ds->account, OUTBOX_FOLDER, since,
                               upto) != APR_SUCCESS) {
            return fail_db(ds);
        }
    }
    else if (resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    else if (memds_mail_changed(ds->st, &rows, ds->account, X(ds)->folder,
                                since, upto) != APR_SUCCESS) {
        return fail_db(ds);
    }
    out = apr_array_make(ds->st->pool, rows->nelts + 1, sizeof(memds_ds_change_t *));
    for (i = 0; i < rows->nelts; ++i) {
        const memds_mmsg_t *r = APR_ARRAY_IDX(rows, i, memds_mmsg_t *);
        memds_ds_change_t *c = apr_palloc(ds->st->pool, sizeof(*c));
        c->guid = r->guid;
        c->deleted = r->deleted;
        c->seq = r->seq;
        c->changed_by = r->changed_by;
        APR_ARRAY_PUSH(out, memds_ds_change_t *) = c;
    }
    *pchanges = out;
    return APR_SUCCESS;
}

/* The row of a live message; APR_ENOENT if unknown or deleted. */

static apr_status_t live_row(memds_ds_t *ds, memds_mmsg_t *row, const char *guid)
{
    apr_status_t rv;

    if (X(ds)->hier) {
        const char *folder;
        rv = memds_mail_get_any(ds->st, row, &folder, ds->account, guid);
        if (rv == APR_SUCCESS) {
            return set_folder(ds, folder);
        }
        return rv == APR_ENOENT ? rv : fail_db(ds);
    }
    if (resolve(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    rv = memds_mail_get(ds->st, row, ds->account, X(ds)->folder, guid);
    if (rv == APR_ENOENT || (rv == APR_SUCCESS && (row->deleted || row->uid <= 0))) {
        return APR_ENOENT;
    }
    return rv == APR_SUCCESS ? rv : fail_db(ds);
}

static apr_status_t imap_fetch(memds_ds_t *ds, const char *guid,
                               apr_int64_t known_seq, const char **pdata,
                               apr_size_t *plen, const char **ptype)
{
    imap_ds_t *x = X(ds);
    apr_pool_t *p = ds->st->pool;
    memds_mmsg_t row;
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    memds_imap_body_info_t info;
    memds_email_t *e;
    memds_buf_t body, out;
    memds_codec_err_t cerr;
    apr_status_t rv;

    if (x->hier && guid[0] == 'f') {
        return folder_fetch(ds, guid, pdata, plen, ptype);
    }
    if (x->outbox) {
        return APR_ENOENT; /* only deletions go to the device */
    }
    if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    e = memds_email_make(p);
    e->read = (row.flags & MEMDS_MAIL_SEEN) ? MEMDS_EMAIL_TRUE : MEMDS_EMAIL_FALSE;
    e->forwarded = (row.flags & MEMDS_MAIL_FORWARDED) ? MEMDS_EMAIL_TRUE : MEMDS_EMAIL_FALSE;
    e->replied = (row.flags & MEMDS_MAIL_ANSWERED) ? MEMDS_EMAIL_TRUE : MEMDS_EMAIL_FALSE;
    e->flagged = (row.flags & MEMDS_MAIL_FLAGGED) ? MEMDS_EMAIL_TRUE : MEMDS_EMAIL_FALSE;
    e->deleted = (row.flags & MEMDS_MAIL_DELETED) ? MEMDS_EMAIL_TRUE : MEMDS_EMAIL_FALSE;
    if (row.internaldate) {
        memds_email_time_set(&e->received, row.internaldate, p);
    }
    if (!x->want_rfc822 && known_seq >= 0 && row.content_seq <= known_seq) {
        /* The device has this message: only its flags changed. */
        goto build;
    }
    if (select_folder(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memds_buf_init(&body, row.size > 0 ? (apr_size_t)row.size + 1 : 4096, p);
    if (memds_imap_fetch_body(c, (apr_uint32_t)row.uid, "", 0, 0, 0, body_cb,
                              &body, &info, &err) != APR_SUCCESS) {
        if (err.kind == MEMDS_IMAP_E_NOTFOUND) {
            return APR_ENOENT; /* expunged since the scan */
        }
        return fail_imap(ds, &err, "UID FETCH BODY.PEEK[]");
    }
    if (x->want_rfc822 || !memds_email_item_xml_safe(body.data, body.len, NULL)) {
        /* (raw 8-bit mail in another charset cannot be XML text: it goes as
         * message/rfc822, which WBXML and b64 carry byte for byte) */
        *pdata = body.data;
        *plen = body.len;
        *ptype = RFC822;
        return APR_SUCCESS;
    }
    e->has_item = 1;
    e->item = body.data;
    e->item_len = body.len;
build:
    memds_buf_init(&out, 512 + e->item_len + e->item_len / 8, p);
    memset(&cerr, 0, sizeof(cerr));
    if (memds_email_build(&out, e, MEMDS_EMAIL_STYLE_TEXT, &cerr, p) != APR_SUCCESS) {
        return fail(ds, 500, apr_psprintf(p, "building the email object: %s",
                                          cerr.msg ? cerr.msg : "?"));
    }
    *pdata = out.data;
    *plen = out.len;
    *ptype = MEMDS_EMAIL_CTTYPE;
    return APR_SUCCESS;
}

static apr_status_t append_msg(memds_ds_t *ds, memds_imap_conn_t *c,
                               const incoming_t *in, int flags,
                               memds_mmsg_t *row)
{
    memds_imap_err_t err;
    apr_uint32_t uv = 0, uid = 0;
    apr_time_t when = 0;

    if (in->email && in->email->received.text && !in->email->received.floating) {
        when = in->email->received.t;
    }
    if (memds_imap_append(c, X(ds)->folder, imap_flag_list(flags, ds->st->pool),
                          when, in->msg, in->len, &uv, &uid, &err)
        != APR_SUCCESS) {
        return fail_imap(ds, &err, "APPEND");
    }
    if (uid == 0) {
        return fail(ds, 500, "the IMAP server has no UIDPLUS: the appended "
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

static apr_status_t imap_add(memds_ds_t *ds, const char **pguid,
                             const char *type, const char *data, apr_size_t len)
{
    incoming_t in;
    memds_imap_conn_t *c;
    memds_mmsg_t row;

    if (X(ds)->outbox) {
        return outbox_add(ds, pguid, type, data, len);
    }
    if (X(ds)->hier) {
        memds_mfitem_t f;
        int named;
        if (is_folder_item(type, data, len)) {
            return folder_add(ds, pguid, data, len);
        }
        if (target_folder(ds, &f, &named) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (named && strcmp(f.folder, OUTBOX_FOLDER) == 0) {
            return outbox_add(ds, pguid, type, data, len); /* send it */
        }
        if (set_folder(ds, named ? f.folder : "INBOX") != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    if (parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (in.msg == NULL) {
        return fail(ds, 412, "an Add without the message (no emailitem)");
    }
    if (select_folder(ds, &c, NULL) != APR_SUCCESS
        || append_msg(ds, c, &in, merge_flags(0, in.email), &row) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_mail_add(ds->st, pguid, ds->account, X(ds)->folder, &row,
                       ds->device_id) != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

/* Is in the message of row (its content, not its flags)? */
static int same_content(const incoming_t *in, const memds_mmsg_t *row)
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
    incoming_t in;
    apr_status_t rv;

    if (X(ds)->outbox) {
        return APR_ENOENT; /* every Outbox item is an Add to send */
    }
    if (X(ds)->hier && guid[0] == 'f') {
        memds_mfitem_t f;
        memds_folder_t *fo;
        const char *pg;
        if ((rv = folder_row(ds, &f, guid)) != APR_SUCCESS) {
            return rv;
        }
        if (parent_of_path(ds, f.name, &pg) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        *psame = memds_folder_parse(&fo, data, len, NULL, ds->st->pool) == APR_SUCCESS
                 && strcmp(fo->name, last_component(f.name)) == 0
                 && (!ds->parent_hint || (pg && strcmp(pg, ds->parent_hint) == 0));
        return APR_SUCCESS;
    }
    if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    if (parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *psame = same_content(&in, &row) && merge_flags(row.flags, in.email) == row.flags;
    if (*psame && X(ds)->hier && ds->parent_hint) {
        const char *pg;
        if (hier_parent(ds, guid, &pg) != APR_SUCCESS) {
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
    imap_ds_t *x = X(ds);
    memds_mmsg_t row, nrow;
    incoming_t in;
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    int flags;
    apr_status_t rv;

    if (x->hier && guid[0] == 'f') {
        return folder_replace(ds, guid, data, len);
    }
    if (x->outbox) {
        const char *g;
        return outbox_add(ds, &g, type, data, len);
    }
    if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    if (parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (x->hier && ds->parent_hint) {
        memds_mfitem_t to;
        int named;
        if (target_folder(ds, &to, &named) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (named && strcmp(to.folder, x->folder) != 0
            && move_msg(ds, &row, &to) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    flags = merge_flags(row.flags, in.email);
    if (select_folder(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (same_content(&in, &row)) {
        if (flags != row.flags
            && store_flags(ds, c, row.uid, row.flags, flags) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        row.flags = flags;
        if (memds_mail_update(ds->st, ds->account, x->folder, &row, 0,
                              ds->device_id) != APR_SUCCESS) {
            return fail_db(ds);
        }
        return APR_SUCCESS;
    }
    if (x->role == MEMDS_IMAP_ROLE_INBOX || x->role == MEMDS_IMAP_ROLE_SENT) {
        return fail(ds, 405, "content changes to received or sent mail are "
                    "refused (only flags and deletion)");
    }
    /* A new version (a draft): append it, then remove the old one. */
    if (append_msg(ds, c, &in, flags, &nrow) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    {
        const char *set = apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT, row.uid);
        if (memds_imap_uid_store(c, set, '+', "\\Deleted", 1, 0, NULL, NULL, NULL,
                                 &err, ds->st->pool) != APR_SUCCESS
            || ((memds_imap_caps(c) & MEMDS_IMAP_CAP_UIDPLUS)
                && memds_imap_uid_expunge(c, set, NULL, NULL, &err) != APR_SUCCESS)) {
            return fail_imap(ds, &err, "removing the old version");
        }
    }
    nrow.guid = row.guid;
    if (memds_mail_update(ds->st, ds->account, x->folder, &nrow, 1,
                          ds->device_id) != APR_SUCCESS) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t imap_remove(memds_ds_t *ds, const char *guid)
{
    imap_ds_t *x = X(ds);
    memds_mmsg_t row;
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    const char *set, *trash = NULL;
    memds_delete_policy_e pol = x->cfg->delete_policy;
    apr_status_t rv;

    if (x->hier && guid[0] == 'f') {
        return folder_remove(ds, guid);
    }
    if (x->outbox) {
        return APR_SUCCESS; /* the device forgets its item; sent is sent */
    }
    if ((rv = live_row(ds, &row, guid)) != APR_SUCCESS) {
        return rv;
    }
    if (select_folder(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    set = apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT, row.uid);
    if (pol == MEMDS_DELETE_TRASH) {
        if (role_folder(ds, MEMDS_IMAP_ROLE_TRASH, &trash) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (trash == NULL || strcmp(trash, x->folder) == 0) {
            pol = MEMDS_DELETE_EXPUNGE; /* deleting in Trash: gone for good */
        }
    }
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
        return fail_imap(ds, &err, pol == MEMDS_DELETE_TRASH ? "UID MOVE"
                                   : "deleting");
    }
    if (memds_mail_remove(ds->st, ds->account, x->folder, guid, ds->device_id)
        == APR_EGENERAL) {
        return fail_db(ds);
    }
    return APR_SUCCESS;
}

static apr_status_t imap_match(memds_ds_t *ds, const char **pguid,
                               const char *data, apr_size_t len)
{
    incoming_t in;
    apr_status_t rv;

    if (X(ds)->outbox) {
        return APR_ENOENT;
    }
    if (X(ds)->hier) {
        memds_mfitem_t f;
        int named;
        if (is_folder_item(NULL, data, len)) {
            return APR_ENOENT; /* (a folder Add finds its folder by name) */
        }
        if (target_folder(ds, &f, &named) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (set_folder(ds, named ? f.folder : "INBOX") != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    if (resolve(ds) != APR_SUCCESS || parse_in(ds, &in, NULL, data, len)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (in.message_id == NULL) {
        return APR_ENOENT;
    }
    rv = memds_mail_match(ds->st, pguid, ds->account, X(ds)->folder,
                          ds->device_id, ds->store, in.message_id,
                          in.msg ? (apr_int64_t)in.len : -1);
    return rv == APR_SUCCESS || rv == APR_ENOENT ? rv : fail_db(ds);
}

static apr_status_t imap_last_change(memds_ds_t *ds, const char *guid,
                                     apr_int64_t *pseq, apr_int64_t *pby)
{
    memds_mmsg_t row;
    apr_status_t rv;

    if (X(ds)->outbox) {
        return APR_ENOENT;
    }
    if (X(ds)->hier && guid[0] == 'f') {
        memds_mfitem_t f;
        if ((rv = folder_row(ds, &f, guid)) == APR_SUCCESS) {
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

    if (X(ds)->outbox) {
        return X(ds)->cfg->smtp_url ? APR_SUCCESS
               : fail(ds, 404, "no Outbox: sending is not configured "
                      "(MemDSSMTPServer)");
    }
    return X(ds)->hier ? conn_get(ds, &c) : resolve(ds);
}

static const memds_ds_vt imap_vt = {
    "imap", imap_snapshot, imap_changes, imap_fetch, imap_add, imap_replace,
    imap_remove, imap_match, imap_same, imap_last_change, imap_check, 1,
    hier_parent
};

apr_status_t memds_ds_imap_open(memds_ds_t *ds, const memds_ds_env_t *env,
                                apr_pool_t *p)
{
    imap_ds_t *x = apr_pcalloc(p, sizeof(*x));

    if (env->mail == NULL || env->shared == NULL) {
        return APR_EINVAL;
    }
    x->cfg = env->mail;
    x->password = env->password;
    x->want_rfc822 = env->want_type && strcasecmp(env->want_type, RFC822) == 0;
    x->sh = env->shared;
    x->p = p;
    x->hier = is_hier_name(ds->store);
    x->outbox = strcasecmp(ds->store, "Outbox") == 0;
    ds->vt = &imap_vt;
    ds->impl = x;
    return APR_SUCCESS;
}

/* The end of the request: a cached connection goes back for the next. */
static apr_status_t shared_done(void *data)
{
    memds_ds_shared_t *sh = data;

    if (sh->lease) {
        memds_imap_cache_put(sh->cache, sh->lease);
        sh->lease = NULL;
        sh->conn = NULL;
    }
    return APR_SUCCESS;
}

memds_ds_shared_t *memds_ds_shared_make(apr_pool_t *p)
{
    memds_ds_shared_t *sh = apr_pcalloc(p, sizeof(*sh));

    sh->p = p;
    apr_pool_cleanup_register(p, sh, shared_done, apr_pool_cleanup_null);
    return sh;
}

apr_status_t memds_outbox_background(int *psent, struct memds_pgpool_t *pool,
                                     const memds_mail_cfg_t *cfg, int limit,
                                     apr_pool_t *p)
{
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_array_header_t *rows;
    const char *why;
    apr_status_t rv;
    int i;

    *psent = 0;
    if (cfg->location == NULL || cfg->smtp_url == NULL
        || cfg->smtp_auth == MEMDS_SMTP_AUTH_USER) {
        return APR_SUCCESS; /* nothing this job can send */
    }
    if (memds_pgpool_acquire_for(&conn, pool, &why, p) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memds_store_init(&st, conn, p);
    if (memds_outbox_due(&st, &rows, cfg->location, NULL, 0, NULL, limit)
        != APR_SUCCESS) {
        /* (PostgreSQL down or restarted: requests report that; the job
         * just tries again at its next run) */
        memds_logf(cfg->log, 6, APR_SUCCESS, "outbox retries skipped: %s", st.err);
        return APR_EGENERAL;
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_outbox_row_t *r = APR_ARRAY_IDX(rows, i, memds_outbox_row_t *);
        memds_ds_env_t env;
        memds_ds_t *ds;
        ledger_t l;
        const char *g;
        apr_pool_t *sub;

        apr_pool_create(&sub, p);
        memset(&env, 0, sizeof(env));
        env.kind = "imap";
        env.mail = cfg;
        env.shared = memds_ds_shared_make(sub);
        st.pool = sub;
        if (memds_ds_open(&ds, &env, &st, r->account, r->store, r->device_id,
                          sub) != APR_SUCCESS) {
            apr_pool_destroy(sub);
            continue;
        }
        rv = ledger_open(ds, &l);
        if (rv == APR_SUCCESS) {
            rv = submit(ds, &l, r->id, r->envelope_from,
                        (const char *const *)r->rcpts->elts, r->rcpts->nelts,
                        r->data, r->len, r->bcc, r->bcc_len);
        }
        if (rv == APR_SUCCESS && ds->ok_status == 0) {
            rv = outbox_done(ds, r->id, &g);
            if (rv == APR_SUCCESS) {
                ++*psent;
                memds_logf(cfg->log, 6, APR_SUCCESS, "outbox %" APR_INT64_T_FMT
                           " of %s: sent by the background retry", r->id,
                           r->account);
            }
        }
        if (rv != APR_SUCCESS && ds->reason) {
            memds_logf(cfg->log, 4, APR_SUCCESS, "outbox retry: %s", ds->reason);
        }
        apr_pool_destroy(sub);
        st.pool = p;
    }
    return APR_SUCCESS;
}
