/* memds_mailbox.c: what the mailbox providers share: failures, the IMAP
 * connection of the request, folders and their roles, objects a device
 * sends, flags, and filing a copy (Sent, Drafts). Used by the folder
 * datastores (memds_ds_mail.c, memds_ds_mailtree.c) and the Outbox
 * (send/memds_outbox.c). */
#include "ds/memds_mailbox.h"
#include <apr_date.h>
#include "ds/memds_outcome.h"
#include "email/memds_mime.h"
#include "store/memds_store.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ failures */

apr_status_t memds_mbox_fail(memds_ds_t *ds, int status, const char *reason)
{
    ds->status = status;
    ds->reason = apr_psprintf(ds->st->pool, "mailbox %s of %s: %s", ds->store,
                              ds->account, reason);
    return APR_EGENERAL;
}

apr_status_t memds_mbox_fail_imap(memds_ds_t *ds, const memds_imap_err_t *err,
                                  const char *what)
{
    memds_err_t e = memds_imap_err_of(err);
    memds_outcome_t o = memds_outcome_of(&e, MEMDS_OUTCOME_ITEM);

    return memds_mbox_fail(ds, o.status,
                           apr_psprintf(ds->st->pool,
                                        "IMAP %s failed: %s "
                                        "(%s)",
                                        what, err->msg ? err->msg : "no detail",
                                        o.text));
}

/* A store failure: status 0 makes the engine answer 503 and roll back. */
apr_status_t memds_mbox_fail_db(memds_ds_t *ds)
{
    ds->status = 0;
    ds->reason = ds->st->err;
    return APR_EGENERAL;
}

/* ------------------------------------------------------------ connection */

apr_status_t memds_mbox_conn(memds_ds_t *ds, memds_imap_conn_t **pc)
{
    memds_mbox_t *x = MBOX(ds);
    memds_imap_config_t c;
    memds_imap_err_t err;

    if (x->sh->conn && !memds_imap_broken(x->sh->conn)) {
        *pc = x->sh->conn;
        return APR_SUCCESS;
    }
    if (x->cfg == NULL || x->cfg->imap_url == NULL) {
        return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                               "no MemDSIMAPServer configured");
    }
    memset(&c, 0, sizeof(c));
    c.url = x->cfg->imap_url;
    c.stats = x->cfg->stats;
    if (x->cfg->master_user) {
        c.user = x->cfg->master_user;
        c.password = x->cfg->master_password;
        c.authzid = ds->login;
    }
    else if (x->password) {
        c.user = ds->login;
        c.password = x->password;
    }
    else {
        return memds_mbox_fail(
            ds, MEMDS_ST_MISSING_CREDENTIALS,
            "no password for the IMAP login: the message "
            "carried no basic credentials and no MemDSIMAPMaster is "
            "configured");
    }
    c.io_timeout_ms = x->cfg->timeout_ms;
    c.ca_file = x->cfg->ca_file;
    c.starttls = x->cfg->imap_starttls;
    c.log = x->cfg->log;
    if (x->sh->lease) {
        /* a broken connection from the cache: back (it is closed there) */
        memds_imap_cache_put(x->sh->cache, x->sh->lease);
        x->sh->lease = NULL;
    }
    x->sh->conn = NULL;
    if (x->cfg->imap_cache) {
        if (memds_imap_cache_get(x->cfg->imap_cache, &x->sh->lease,
                                 &x->sh->conn, &c, &err)
            != APR_SUCCESS) {
            x->sh->conn = NULL;
            x->sh->lease = NULL;
            return memds_mbox_fail_imap(ds, &err, "login");
        }
        x->sh->cache = x->cfg->imap_cache;
    }
    else if (memds_imap_connect(&x->sh->conn, &c, &err, x->sh->p)
             != APR_SUCCESS) {
        x->sh->conn = NULL;
        return memds_mbox_fail_imap(ds, &err, "login");
    }
    *pc = x->sh->conn;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ folders */

memds_imap_role_e memds_mbox_role_of_name(const char *n)
{
    static const struct {
        const char *name;
        memds_imap_role_e role;
    } t[] = { { "inbox", MEMDS_IMAP_ROLE_INBOX },
              { "sent", MEMDS_IMAP_ROLE_SENT },
              { "drafts", MEMDS_IMAP_ROLE_DRAFTS },
              { "draft", MEMDS_IMAP_ROLE_DRAFTS },
              { "trash", MEMDS_IMAP_ROLE_TRASH },
              { "junk", MEMDS_IMAP_ROLE_JUNK },
              { "spam", MEMDS_IMAP_ROLE_JUNK },
              { "archive", MEMDS_IMAP_ROLE_ARCHIVE },
              { NULL, MEMDS_IMAP_ROLE_NONE } };
    int i;

    for (i = 0; t[i].name; ++i) {
        if (strcasecmp(n, t[i].name) == 0) {
            return t[i].role;
        }
    }
    return MEMDS_IMAP_ROLE_NONE;
}

/* The usual names of role folders, for servers without SPECIAL-USE. */
static const char *const *memds_mbox_usual_names(memds_imap_role_e role)
{
    static const char *const sent[] = { "Sent",          "Sent Items",
                                        "Sent Messages", "Sent Mail",
                                        "INBOX.Sent",    NULL };
    static const char *const drafts[] = { "Drafts", "Draft", "INBOX.Drafts",
                                          NULL };
    static const char *const trash[] = { "Trash", "Deleted Items",
                                         "Deleted Messages", "INBOX.Trash",
                                         NULL };
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

int memds_mbox_selectable(const memds_imap_list_t *l)
{
    return !(l->attrs & (MEMDS_IMAP_MBX_NOSELECT | MEMDS_IMAP_MBX_NONEXISTENT));
}

int memds_mbox_excluded(const memds_ds_t *ds, const memds_imap_list_t *l)
{
    const apr_array_header_t *ex = MBOX(ds)->cfg->exclude;
    const char *path = NULL;
    int i;

    for (i = 0; ex && i < ex->nelts; ++i) {
        const char *n = APR_ARRAY_IDX(ex, i, const char *);
        if (path == NULL) {
            path = memds_mbox_path_of(l, ds->st->pool);
        }
        if (strcmp(n, l->name) == 0 || strcmp(n, path) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A mailbox's path as a device names it: UTF-8, "/" between levels. */
const char *memds_mbox_path_of(const memds_imap_list_t *l, apr_pool_t *p)
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

/* A kept IMAP connection's LIST is used again for this long (a folder is
 * looked up by name in every HTTP message: one LIST each, 4 % of httpd's
 * CPU in a mail first sync); a name it does not have is looked up in a new
 * LIST (memds_mbox_resolve). */
#define MBOX_LIST_MAX_AGE apr_time_from_sec(30)

static apr_status_t mbox_list(memds_ds_t *ds, int fresh,
                              apr_array_header_t **pboxes)
{
    memds_mbox_t *x = MBOX(ds);
    memds_imap_conn_t *c;
    memds_imap_err_t err;

    fresh = fresh || x->list_fresh;
    if (x->sh->boxes == NULL || (fresh && !x->sh->boxes_fresh)) {
        if (memds_mbox_conn(ds, &c) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (memds_imap_list_recent(c, fresh ? 0 : MBOX_LIST_MAX_AGE,
                                   &x->sh->boxes, &err, x->sh->p)
            != APR_SUCCESS) {
            x->sh->boxes = NULL;
            return memds_mbox_fail_imap(ds, &err, "LIST");
        }
        x->sh->boxes_fresh = fresh;
    }
    *pboxes = x->sh->boxes;
    return APR_SUCCESS;
}

apr_status_t memds_mbox_boxes(memds_ds_t *ds, apr_array_header_t **pboxes)
{
    return mbox_list(ds, 0, pboxes);
}

/* The folder of a role: SPECIAL-USE, then MemDSFolder, then usual names.
 * *pname NULL when there is none. */
apr_status_t memds_mbox_role_folder(memds_ds_t *ds, memds_imap_role_e role,
                                    const char **pname)
{
    memds_mbox_t *x = MBOX(ds);
    apr_array_header_t *boxes;
    const char *const *u;
    int i;

    *pname = NULL;
    if (role == MEMDS_IMAP_ROLE_INBOX) {
        *pname = "INBOX";
        return APR_SUCCESS;
    }
    if (memds_mbox_boxes(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                   memds_imap_list_t *);
        if (l->role == role && memds_mbox_selectable(l)) {
            *pname = l->name;
            return APR_SUCCESS;
        }
    }
    if (x->cfg->folder_names[role]) {
        for (i = 0; i < boxes->nelts; ++i) {
            const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                       memds_imap_list_t *);
            if (memds_mbox_selectable(l)
                && strcmp(memds_mbox_path_of(l, ds->st->pool),
                          x->cfg->folder_names[role])
                       == 0) {
                *pname = l->name;
                return APR_SUCCESS;
            }
        }
    }
    for (u = memds_mbox_usual_names(role); *u; ++u) {
        for (i = 0; i < boxes->nelts; ++i) {
            const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                       memds_imap_list_t *);
            if (memds_mbox_selectable(l)
                && strcasecmp(memds_mbox_path_of(l, ds->st->pool), *u) == 0) {
                *pname = l->name;
                return APR_SUCCESS;
            }
        }
    }
    return APR_SUCCESS;
}

/* The selectable folder whose path is name: exactly, else ignoring case;
 * NULL when none. */
static const memds_imap_list_t *mbox_by_path(memds_ds_t *ds,
                                             const apr_array_header_t *boxes,
                                             const char *name)
{
    int i, exact;

    for (exact = 1; exact >= 0; --exact) {
        for (i = 0; i < boxes->nelts; ++i) {
            const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                       memds_imap_list_t *);
            const char *path = memds_mbox_path_of(l, ds->st->pool);
            if (memds_mbox_selectable(l)
                && (exact ? strcmp(path, name) : strcasecmp(path, name))
                       == 0) {
                return l;
            }
        }
    }
    return NULL;
}

/* Which IMAP folder this datastore is. */
apr_status_t memds_mbox_resolve(memds_ds_t *ds)
{
    memds_mbox_t *x = MBOX(ds);
    apr_array_header_t *boxes;
    const memds_imap_list_t *l;
    const char *name = ds->store;
    int i;

    if (x->folder) {
        return APR_SUCCESS;
    }
    if (x->hier) {
        return memds_mbox_fail(
            ds, MEMDS_ST_COMMAND_FAILED,
            "no folder chosen in the hierarchical datastore");
    }
    x->role = memds_mbox_role_of_name(name);
    if (x->role != MEMDS_IMAP_ROLE_NONE) {
        if (memds_mbox_role_folder(ds, x->role, &x->folder) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (x->folder) {
            for (i = 0; MBOX(ds)->cfg->exclude
                        && memds_mbox_boxes(ds, &boxes) == APR_SUCCESS
                        && i < boxes->nelts;
                 ++i) {
                const memds_imap_list_t *b = APR_ARRAY_IDX(boxes, i,
                                                           memds_imap_list_t *);
                if (strcmp(b->name, x->folder) == 0
                    && memds_mbox_excluded(ds, b)) {
                    x->folder = NULL;
                    return memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                                           "the folder is excluded from "
                                           "synchronisation "
                                           "(MemDSExcludeFolder)");
                }
            }
            return APR_SUCCESS;
        }
    }
    /* Any folder by its path; when a kept connection's LIST lacks it, in a
     * LIST of this request */
    if (memds_mbox_boxes(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if ((l = mbox_by_path(ds, boxes, name)) == NULL && !x->sh->boxes_fresh) {
        if (mbox_list(ds, 1, &boxes) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        l = mbox_by_path(ds, boxes, name);
    }
    if (l == NULL) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND, "no such mail folder");
    }
    if (memds_mbox_excluded(ds, l)) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                               "the folder is excluded from synchronisation "
                               "(MemDSExcludeFolder)");
    }
    x->folder = l->name;
    if (x->role == MEMDS_IMAP_ROLE_NONE) {
        x->role = l->role;
    }
    return APR_SUCCESS;
}

apr_status_t memds_mbox_resolve_listed(memds_ds_t *ds)
{
    apr_status_t rv;

    /* (LIST only if the name needs one: INBOX does not) */
    MBOX(ds)->list_fresh = 1;
    rv = memds_mbox_resolve(ds);
    MBOX(ds)->list_fresh = 0;
    return rv;
}

apr_status_t memds_mbox_select(memds_ds_t *ds, memds_imap_conn_t **pc,
                               const memds_imap_mailbox_t **pmb)
{
    memds_imap_err_t err;
    const memds_imap_mailbox_t *mb;

    if (memds_mbox_resolve(ds) != APR_SUCCESS
        || memds_mbox_conn(ds, pc) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    while (memds_imap_select(*pc, MBOX(ds)->folder,
                             (memds_imap_caps(*pc) & MEMDS_IMAP_CAP_CONDSTORE)
                                 ? MEMDS_IMAP_SEL_CONDSTORE
                                 : 0,
                             NULL, NULL, NULL, &mb, &err)
           != APR_SUCCESS) {
        memds_mbox_t *x = MBOX(ds);
        apr_array_header_t *boxes;
        if (x->sh->boxes_fresh || err.kind != MEMDS_IMAP_E_NO
            || memds_imap_broken(*pc) || x->hier
            || strcmp(x->folder, "INBOX") == 0) {
            return memds_mbox_fail_imap(ds, &err, "SELECT");
        }
        /* named from a kept connection's LIST: gone or renamed since?
         * Named again from a new one (not there: "no such mail folder") */
        x->folder = NULL;
        if (mbox_list(ds, 1, &boxes) != APR_SUCCESS
            || memds_mbox_resolve(ds) != APR_SUCCESS
            || memds_mbox_conn(ds, pc) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    if (pmb) {
        *pmb = mb;
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ objects */

apr_status_t memds_mbox_parse_in(memds_ds_t *ds, memds_mbox_in_t *in,
                                 const char *type, const char *data,
                                 apr_size_t len)
{
    apr_pool_t *p = ds->st->pool;
    memds_codec_err_t err;

    memset(in, 0, sizeof(*in));
    if ((type && strcasecmp(type, MEMDS_RFC822) == 0)
        || (!type && (len == 0 || data[0] != '<'))) {
        memds_email_crlf(&in->msg, &in->len, data, len, p);
    }
    else {
        memset(&err, 0, sizeof(err));
        if (memds_email_parse(&in->email, data, len, &err, p) != APR_SUCCESS) {
            return memds_mbox_fail(ds, MEMDS_ST_UNSUPPORTED_MEDIA,
                                   apr_psprintf(p,
                                                "unreadable email object: %s",
                                                err.msg ? err.msg : "?"));
        }
        if (in->email->has_item) {
            memds_email_crlf(&in->msg, &in->len, in->email->item,
                             in->email->item_len, p);
        }
    }
    if (in->msg) {
        in->message_id = memds_mime_header_value(in->msg, in->len, "Message-ID",
                                                 p);
    }
    if (memds_email_is_device_copy(in->email, in->msg, in->len)) {
        /* The device's truncated copy: a flags-only change (with a limit:
         * what the device asks to hold, libsynthesis' get-more). */
        in->copy = 1;
        in->has_limit = in->msg
                        && memds_email_sync_limit(&in->limit, in->msg, in->len)
                               == APR_SUCCESS;
        in->msg = NULL;
        in->len = 0;
    }
    return APR_SUCCESS;
}

/* Flags after applying an email object's tri-state flags to old. */
int memds_mbox_merge_flags(int old, const memds_email_t *e)
{
    int fl = old;

#define SETB(field, bit) \
    if (e->field == MEMDS_EMAIL_TRUE) { \
        fl |= (bit); \
    } \
    else if (e->field == MEMDS_EMAIL_FALSE) { \
        fl &= ~(bit); \
    }
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

const char *memds_mbox_flag_list(int fl, apr_pool_t *p)
{
    const char *s = apr_pstrcat(p, (fl & MEMDS_MAIL_SEEN) ? " \\Seen" : "",
                                (fl & MEMDS_MAIL_ANSWERED) ? " \\Answered" : "",
                                (fl & MEMDS_MAIL_FLAGGED) ? " \\Flagged" : "",
                                (fl & MEMDS_MAIL_DELETED) ? " \\Deleted" : "",
                                (fl & MEMDS_MAIL_DRAFT) ? " \\Draft" : "",
                                (fl & MEMDS_MAIL_FORWARDED)
                                    ? " " MEMDS_EMAIL_IMAP_FORWARDED
                                    : "",
                                NULL);

    return *s ? s + 1 : NULL;
}

/* STORE the difference between two flag sets on uid. */
apr_status_t memds_mbox_store_flags(memds_ds_t *ds, memds_imap_conn_t *c,
                                    apr_int64_t uid, int from, int to)
{
    const char *set = apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT, uid);
    const char *add = memds_mbox_flag_list(to & ~from, ds->st->pool);
    const char *del = memds_mbox_flag_list(from & ~to, ds->st->pool);
    memds_imap_err_t err;

    MEMDS_FAULT("imap-store-before");
    if ((add
         && memds_imap_uid_store(c, set, '+', add, 1, 0, NULL, NULL, NULL, &err,
                                 ds->st->pool)
                != APR_SUCCESS)
        || (del
            && memds_imap_uid_store(c, set, '-', del, 1, 0, NULL, NULL, NULL,
                                    &err, ds->st->pool)
                   != APR_SUCCESS)) {
        return memds_mbox_fail_imap(ds, &err, "UID STORE");
    }
    MEMDS_FAULT("imap-store-after");
    return APR_SUCCESS;
}

apr_status_t memds_mbox_body_cb(void *baton, apr_uint64_t off, const char *data,
                                apr_size_t len)
{
    (void)off;
    memds_buf_add(baton, data, len);
    return APR_SUCCESS;
}

/* APPEND a copy to the folder of role (Sent, or Drafts for a refused
 * message); its row makes it appear on the devices. *pguid NULL when there
 * is no such folder. */
apr_status_t memds_mbox_file_copy(memds_ds_t *ds, memds_imap_role_e role,
                                  const char *data, apr_size_t len, int flags,
                                  const char **pguid)
{
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    const char *folder;
    apr_uint32_t uv = 0, uid = 0;
    memds_mmsg_t row;

    *pguid = NULL;
    if (memds_mbox_role_folder(ds, role, &folder) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (folder == NULL) {
        return APR_SUCCESS;
    }
    if (memds_mbox_conn(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    /* a copy filed by a sender that died before its row was committed is
     * the copy (docs/crash-recovery.md): not filed twice */
    if (memds_imap_select(c, folder, 0, NULL, NULL, NULL, NULL, &err)
        != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "SELECT");
    }
    if (memds_mbox_find_orphan(ds, c, folder, data, len,
                               memds_mime_header_value(data, len, "Message-ID",
                                                       ds->st->pool),
                               1, &uid)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    MEMDS_FAULT("imap-file-before");
    if (uid == 0
        && memds_imap_append(c, folder,
                             memds_mbox_flag_list(flags, ds->st->pool), 0, data,
                             len, &uv, &uid, &err)
               != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "APPEND");
    }
    MEMDS_FAULT("imap-file-after");
    if (uid == 0) {
        return APR_SUCCESS; /* no UIDPLUS: the next scan finds it */
    }
    memset(&row, 0, sizeof(row));
    row.uid = uid;
    row.flags = flags;
    row.message_id = memds_mime_header_value(data, len, "Message-ID",
                                             ds->st->pool);
    row.size = (apr_int64_t)len;
    row.internaldate = apr_time_now();
    /* changed_by 0: every device of the account gets it */
    if (memds_mail_add(ds->st, pguid, ds->account, folder, &row, 0)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    memds_mbox_note_held(ds, folder);
    return APR_SUCCESS;
}

void memds_mbox_note_held(memds_ds_t *ds, const char *folder)
{
    memds_mbox_shared_t *sh = MBOX(ds)->sh;

    if (sh->wrote == NULL) {
        sh->wrote = apr_hash_make(sh->p);
    }
    apr_hash_set(sh->wrote, apr_pstrdup(sh->p, folder), APR_HASH_KEY_STRING,
                 "");
}

int memds_mbox_is_held(const memds_ds_t *ds, const char *folder)
{
    const memds_mbox_shared_t *sh = MBOX(ds)->sh;

    return sh->wrote && folder
           && apr_hash_get(sh->wrote, folder, APR_HASH_KEY_STRING) != NULL;
}

/* Choose the folder the next operations work on (by IMAP name). */
apr_status_t memds_mbox_set_folder(memds_ds_t *ds, const char *folder)
{
    memds_mbox_t *x = MBOX(ds);
    apr_array_header_t *boxes;
    int i;

    x->folder = folder;
    x->scanned = 0;
    x->role = MEMDS_IMAP_ROLE_NONE;
    if (strcmp(folder, "INBOX") == 0) {
        x->role = MEMDS_IMAP_ROLE_INBOX;
        return APR_SUCCESS;
    }
    if (strcmp(folder, MEMDS_OUTBOX_FOLDER) == 0) {
        return APR_SUCCESS;
    }
    if (memds_mbox_boxes(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                   memds_imap_list_t *);
        if (strcmp(l->name, folder) == 0) {
            x->role = l->role;
        }
    }
    return APR_SUCCESS;
}

apr_status_t memds_mbox_fetch_section(memds_ds_t *ds, memds_imap_conn_t *c,
                                      apr_int64_t uid, const char *section,
                                      unsigned flags, memds_buf_t *out)
{
    memds_imap_err_t err;
    memds_imap_body_info_t info;

    memds_buf_init(out, 4096, ds->st->pool);
    if (memds_imap_fetch_body(c, (apr_uint32_t)uid, section, 0, 0, flags,
                              memds_mbox_body_cb, out, &info, &err)
        != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "UID FETCH BODY.PEEK[part]");
    }
    memds_buf_addc(out, '\0');
    out->len--;
    return APR_SUCCESS;
}

/* A copy of msg that an earlier APPEND (or MOVE) left in folder (selected
 * on c) without its row: the request that made it died before its
 * transaction committed (docs/crash-recovery.md). Candidates: messages of
 * exactly len bytes (and with msg's Message-ID, when it has a plain one)
 * that no live row of folder records; the first whose bytes are msg's is
 * it (msg NULL: the first, when message_id is plain). *puid 0 when there
 * is none. With adopt (and msg and a plain Message-ID), a message a row
 * records is a candidate too when that row is not this device's own change
 * and the device does not hold it (no map): a scan of another request
 * recorded the copy as the server's mail between the crash and the retry,
 * and the retry takes that row (memds_mail_add) instead of a second copy. */
apr_status_t memds_mbox_find_orphan(memds_ds_t *ds, memds_imap_conn_t *c,
                                    const char *folder, const char *msg,
                                    apr_size_t len, const char *message_id,
                                    int adopt, apr_uint32_t *puid)
{
    apr_pool_t *p = ds->st->pool;
    const char *crit;
    const char *s;
    memds_imap_search_t *sr = NULL;
    memds_imap_err_t err;
    apr_array_header_t *rows;
    apr_int64_t *uids;
    apr_uint64_t i, n;
    int j, known;
    memds_buf_t b;

    *puid = 0;
    if (len == 0) {
        return APR_SUCCESS;
    }
    crit = apr_psprintf(p, "LARGER %lu SMALLER %lu", (unsigned long)len - 1,
                        (unsigned long)len + 1);
    for (s = message_id; s && *s; ++s) {
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20
            || (unsigned char)*s >= 0x7f) {
            break;
        }
    }
    if (message_id && *message_id && s && *s == '\0') {
        crit = apr_pstrcat(p, crit, " HEADER Message-ID \"", message_id, "\"",
                           NULL);
    }
    else if (msg == NULL) {
        return APR_SUCCESS; /* (the size alone says nothing) */
    }
    else {
        adopt = 0; /* (without a Message-ID, equal bytes may be two mails) */
    }
    if (msg == NULL) {
        adopt = 0;
    }
    if (memds_imap_uid_search(c, crit, &sr, &err, p) != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "UID SEARCH");
    }
    n = memds_imap_set_count(sr->all);
    if (n == 0) {
        return APR_SUCCESS;
    }
    if (n > 32) {
        n = 32; /* (the same bytes 32 times over: not a crash's leftover) */
    }
    uids = apr_palloc(p, (apr_size_t)n * sizeof(*uids));
    for (i = 0; i < n; ++i) {
        uids[i] = memds_imap_set_nth(sr->all, i);
    }
    if (memds_mail_live(ds->st, &rows, ds->account, folder, uids, (int)n, 0)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    for (i = 0; i < n; ++i) {
        const memds_mmsg_t *row = NULL;
        for (known = 0, j = 0; j < rows->nelts && !known; ++j) {
            row = APR_ARRAY_IDX(rows, j, memds_mmsg_t *);
            known = row->uid == uids[i];
        }
        if (known && adopt && row->changed_by != ds->device_id) {
            const char *luid;
            apr_status_t rv = memds_store_map_luid(ds->st, &luid,
                                                   ds->device_id, ds->store,
                                                   row->guid);
            if (rv != APR_SUCCESS && rv != APR_ENOENT) {
                return memds_mbox_fail_db(ds);
            }
            known = rv == APR_SUCCESS; /* (the device holds it) */
        }
        if (known) {
            continue;
        }
        if (msg == NULL) {
            *puid = (apr_uint32_t)uids[i];
            return APR_SUCCESS;
        }
        if (memds_mbox_fetch_section(ds, c, uids[i], "", 0, &b)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (b.len == len && memcmp(b.data, msg, len) == 0) {
            *puid = (apr_uint32_t)uids[i];
            return APR_SUCCESS;
        }
    }
    return APR_SUCCESS;
}

apr_array_header_t *memds_mbox_changes_of(const apr_array_header_t *rows,
                                          apr_pool_t *p)
{
    apr_array_header_t *out = apr_array_make(p, rows->nelts + 1,
                                             sizeof(memds_ds_change_t *));
    int i;

    for (i = 0; i < rows->nelts; ++i) {
        const memds_mmsg_t *r = APR_ARRAY_IDX(rows, i, memds_mmsg_t *);
        memds_ds_change_push(out, r->guid, r->deleted, r->seq, r->changed_by);
        APR_ARRAY_IDX(out, out->nelts - 1, memds_ds_change_t *)
            ->content_seq = r->content_seq;
    }
    return out;
}

/* ------------------------------------------------------------ set-up */

#define SHARED_KEY "memds.mailbox"

/* The end of the request: a cached connection goes back for the next. */
static apr_status_t shared_done(void *data)
{
    memds_mbox_shared_t *sh = data;

    if (sh->lease) {
        memds_imap_cache_put(sh->cache, sh->lease);
        sh->lease = NULL;
        sh->conn = NULL;
    }
    return APR_SUCCESS;
}

/* The mailbox state of the request, made on first use. */
static memds_mbox_shared_t *shared_of(memds_ds_shared_t *rs)
{
    memds_mbox_shared_t *sh = memds_ds_shared_get(rs, SHARED_KEY);

    if (sh == NULL) {
        apr_pool_t *p = memds_ds_shared_pool(rs);
        sh = apr_pcalloc(p, sizeof(*sh));
        sh->p = p;
        apr_pool_cleanup_register(p, sh, shared_done, apr_pool_cleanup_null);
        memds_ds_shared_set(rs, SHARED_KEY, sh);
    }
    return sh;
}

apr_status_t memds_mbox_init(memds_ds_t *ds, const memds_ds_env_t *env,
                             apr_pool_t *p)
{
    memds_mbox_t *x;

    if (env->mail == NULL || env->shared == NULL) {
        return APR_EINVAL;
    }
    x = apr_pcalloc(p, sizeof(*x));
    x->cfg = env->mail;
    x->env = *env;
    x->password = env->password;
    x->want_rfc822 = env->want_type
                     && strcasecmp(env->want_type, MEMDS_RFC822) == 0;
    x->sh = shared_of(env->shared);
    x->p = p;
    ds->impl = x;
    return APR_SUCCESS;
}

void memds_mbox_set_created(memds_email_t *e, const char *msg, apr_size_t len,
                            apr_pool_t *p)
{
    const char *d = msg ? memds_mime_header_value(msg, len, "Date", p) : NULL;
    apr_time_t t = d ? apr_date_parse_rfc(d) : APR_DATE_BAD;

    if (t != APR_DATE_BAD && t > 0) {
        memds_email_time_set(&e->created, t, p);
    }
}
