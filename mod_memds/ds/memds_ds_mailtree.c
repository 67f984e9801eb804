/* memds_ds_mailtree.c: the hierarchical "email" datastore's folders. */
#include "ds/memds_mailbox.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------- the hierarchical "email" datastore
 *
 * Every folder of the account is an item (a folder object, server id
 * "f<n>"), every message an item whose parent is its folder. A scan LISTs
 * the folders with their STATUS and scans those whose UIDVALIDITY or
 * HIGHESTMODSEQ moved. A device's Add names the parent folder (TargetParent,
 * or SourceParent for a folder it adds in the same package); a Replace with
 * another parent moves the message (UID MOVE, same server id). */

int memds_mtree_serves(const char *n)
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

apr_status_t memds_mtree_scan(memds_ds_t *ds)
{
    memds_mbox_t *x = MBOX(ds);
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    apr_array_header_t *boxes, *rows;
    apr_hash_t *known = apr_hash_make(ds->st->pool),
               *seen = apr_hash_make(ds->st->pool);
    int i;

    if (memds_mbox_conn(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    /* (HIGHESTMODSEQ is CONDSTORE's: a server without it may refuse the
     * item, and then every folder is SELECTed anyway) */
    if (memds_imap_list(c,
                        (memds_imap_caps(c) & MEMDS_IMAP_CAP_CONDSTORE)
                            ? "UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES"
                            : "UIDVALIDITY UIDNEXT MESSAGES",
                        &boxes, &err, x->sh->p)
        != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "LIST");
    }
    x->sh->boxes = boxes;
    x->sh->boxes_fresh = 1;
    if (memds_mail_folders_all(ds->st, &rows, ds->account) != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mfitem_t *f = APR_ARRAY_IDX(rows, i, memds_mfitem_t *);
        apr_hash_set(known, f->folder, APR_HASH_KEY_STRING, f);
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                   memds_imap_list_t *);
        const memds_mfitem_t *f = apr_hash_get(known, l->name,
                                               APR_HASH_KEY_STRING);
        const memds_imap_status_t *st = l->status;

        if (!memds_mbox_selectable(l) || memds_mbox_excluded(ds, l)) {
            continue;
        }
        apr_hash_set(seen, l->name, APR_HASH_KEY_STRING, l);
        if (memds_mail_folder_upsert(ds->st, ds->account, l->name,
                                     memds_mbox_path_of(l, ds->st->pool),
                                     role_text(l->role), 0, NULL)
            != APR_SUCCESS) {
            return memds_mbox_fail_db(ds);
        }
        if (f && !f->deleted && st && (st->have & MEMDS_IMAP_ST_UIDVALIDITY)
            && (st->have & MEMDS_IMAP_ST_HIGHESTMODSEQ) && st->highestmodseq > 0
            && f->uidvalidity == (apr_int64_t)st->uidvalidity
            && f->highestmodseq == (apr_int64_t)st->highestmodseq) {
            continue; /* unchanged: not even a SELECT */
        }
        if (memds_mbox_set_folder(ds, l->name) != APR_SUCCESS
            || memds_mbox_scan(ds) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    /* the Outbox: a folder of its own, not on IMAP (mail added to it is sent) */
    if (x->cfg->smtp_url) {
        if (memds_mail_folder_upsert(ds->st, ds->account, MEMDS_OUTBOX_FOLDER,
                                     "Outbox", "outbox", 0, NULL)
            != APR_SUCCESS) {
            return memds_mbox_fail_db(ds);
        }
        apr_hash_set(seen, MEMDS_OUTBOX_FOLDER, APR_HASH_KEY_STRING, "");
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_mfitem_t *f = APR_ARRAY_IDX(rows, i, memds_mfitem_t *);
        if (!f->deleted && !apr_hash_get(seen, f->folder, APR_HASH_KEY_STRING)
            && memds_mail_folder_gone(ds->st, ds->account, f->folder, 0)
                   != APR_SUCCESS) {
            return memds_mbox_fail_db(ds);
        }
    }
    x->sh->frows = NULL; /* (upserted and tombstoned above) */
    x->folder = NULL;
    return APR_SUCCESS;
}

/* The live folder row of a guid. */
apr_status_t memds_mtree_folder_row(memds_ds_t *ds, memds_mfitem_t *f,
                                    const char *guid)
{
    apr_status_t rv = memds_mail_folder_by_guid(ds->st, f, ds->account, guid);

    if (rv == APR_SUCCESS && (f->deleted || f->name == NULL)) {
        return APR_ENOENT;
    }
    return rv == APR_SUCCESS || rv == APR_ENOENT ? rv : memds_mbox_fail_db(ds);
}

const char *memds_mtree_last_component(const char *path)
{
    const char *s = strrchr(path, '/');

    return s ? s + 1 : path;
}

/* Every folder row of the account, read once per request (the email
 * datastore needs them for each item's parent); a folder change drops
 * them (x->sh->frows = NULL). */
apr_status_t memds_mtree_folder_rows(memds_ds_t *ds, apr_array_header_t **prows)
{
    memds_mbox_t *x = MBOX(ds);

    if (x->sh->frows == NULL
        && memds_mail_folders_all(ds->st, &x->sh->frows, ds->account)
               != APR_SUCCESS) {
        x->sh->frows = NULL;
        return memds_mbox_fail_db(ds);
    }
    *prows = x->sh->frows;
    return APR_SUCCESS;
}

/* The guid of the folder whose path is the parent of path, or NULL. */
apr_status_t memds_mtree_parent_of_path(memds_ds_t *ds, const char *path,
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
    if (memds_mtree_folder_rows(ds, &rows) != APR_SUCCESS) {
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

apr_status_t memds_mtree_folder_fetch(memds_ds_t *ds, const char *guid,
                                      const char **pdata, apr_size_t *plen,
                                      const char **ptype)
{
    memds_mfitem_t f;
    memds_folder_t *fo;
    memds_buf_t out;
    memds_codec_err_t err;
    apr_status_t rv = memds_mtree_folder_row(ds, &f, guid);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    fo = apr_pcalloc(ds->st->pool, sizeof(*fo));
    fo->name = memds_mtree_last_component(f.name);
    fo->role = f.role;
    memds_buf_init(&out, 256, ds->st->pool);
    memset(&err, 0, sizeof(err));
    if (memds_folder_build(&out, fo, &err, ds->st->pool) != APR_SUCCESS) {
        return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                               apr_psprintf(ds->st->pool,
                                            "building a folder "
                                            "object: %s",
                                            err.msg ? err.msg : "?"));
    }
    *pdata = out.data;
    *plen = out.len;
    *ptype = MEMDS_FOLDER_CTTYPE;
    return APR_SUCCESS;
}

int memds_mtree_is_folder_item(const char *type, const char *data,
                               apr_size_t len)
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

    if (memds_mbox_boxes(ds, &boxes) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < boxes->nelts; ++i) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                   memds_imap_list_t *);
        if (l->delim) {
            delim = l->delim;
            break;
        }
    }
    if (strchr(name, delim) || strchr(name, '/') || !*name) {
        return memds_mbox_fail(ds, MEMDS_ST_BAD_REQUEST,
                               "folder name with a hierarchy separator");
    }
    if (memds_imap_mutf7_encode(&w, name, ds->st->pool) != APR_SUCCESS) {
        return memds_mbox_fail(ds, MEMDS_ST_BAD_REQUEST,
                               "folder name is not valid UTF-8");
    }
    *pwire = pf ? apr_psprintf(ds->st->pool, "%s%c%s", pf->folder, delim, w)
                : w;
    *ppath = pf ? apr_pstrcat(ds->st->pool, pf->name, "/", name, NULL) : name;
    return APR_SUCCESS;
}

/* A folder object from the device, and the folder row of the parent it
 * names (parent_hint; *phas 0 when it names none). */
static apr_status_t parse_folder(memds_ds_t *ds, const char *data,
                                 apr_size_t len, memds_folder_t **pfo,
                                 memds_mfitem_t *pf, int *phas)
{
    memds_codec_err_t err;

    *phas = 0;
    memset(&err, 0, sizeof(err));
    if (memds_folder_parse(pfo, data, len, &err, ds->st->pool) != APR_SUCCESS) {
        return memds_mbox_fail(ds, MEMDS_ST_UNSUPPORTED_MEDIA,
                               apr_psprintf(ds->st->pool,
                                            "unreadable folder object: %s",
                                            err.msg ? err.msg : "?"));
    }
    if (ds->parent_hint) {
        if (memds_mtree_folder_row(ds, pf, ds->parent_hint) != APR_SUCCESS) {
            return ds->status
                       ? APR_EGENERAL
                       : memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                                         "the parent folder does not exist");
        }
        *phas = 1;
    }
    return APR_SUCCESS;
}

apr_status_t memds_mtree_folder_add(memds_ds_t *ds, const char **pguid,
                                    const char *data, apr_size_t len)
{
    memds_folder_t *fo;
    memds_mfitem_t pf;
    memds_imap_conn_t *c;
    memds_imap_err_t ierr;
    const char *wire, *path;
    int has_parent = 0;

    if (parse_folder(ds, data, len, &fo, &pf, &has_parent) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (wire_name(ds, has_parent ? &pf : NULL, fo->name, &wire, &path)
            != APR_SUCCESS
        || memds_mbox_conn(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    MEMDS_FAULT("imap-folder-create-before");
    if (memds_imap_create(c, wire, &ierr) != APR_SUCCESS
        && ierr.code != MEMDS_IMAP_CODE_ALREADYEXISTS) {
        return memds_mbox_fail_imap(ds, &ierr, "CREATE");
    }
    MEMDS_FAULT("imap-folder-create-after");
    MBOX(ds)->sh->boxes = NULL; /* LIST again when needed */
    MBOX(ds)->sh->frows = NULL;
    if (memds_mail_folder_upsert(ds->st, ds->account, wire, path, NULL,
                                 ds->device_id, pguid)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

/* Rename (or re-parent) folder row f to wire name wire, device path path. */
static apr_status_t rename_folder(memds_ds_t *ds, const memds_mfitem_t *f,
                                  const char *wire, const char *path)
{
    memds_imap_conn_t *c;
    memds_imap_err_t ierr;

    if (strcmp(wire, f->folder) == 0) {
        return APR_SUCCESS; /* same name and place */
    }
    if (f->role || strcmp(f->folder, "INBOX") == 0) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                               "special folders (Inbox, Sent, Drafts, Trash, "
                               "...) cannot be renamed or moved");
    }
    if (memds_mbox_conn(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memds_imap_unselect(c, &ierr);
    MEMDS_FAULT("imap-folder-rename-before");
    if (memds_imap_rename(c, f->folder, wire, &ierr) != APR_SUCCESS) {
        memds_imap_status_t *st;
        memds_imap_err_t serr;
        /* the old name gone and the new one there: a rename a dead request
         * made (its rows never committed) is this one
         * (docs/crash-recovery.md) */
        if (memds_imap_err_of(&ierr).kind != MEMDS_ERR_NOT_FOUND
            || memds_imap_status(c, wire, "UIDVALIDITY", &st, &serr,
                                 ds->st->pool)
                   != APR_SUCCESS) {
            return memds_mbox_fail_imap(ds, &ierr, "RENAME");
        }
    }
    MEMDS_FAULT("imap-folder-rename-after");
    MBOX(ds)->sh->boxes = NULL;
    MBOX(ds)->sh->frows = NULL;
    if (memds_mail_folder_rename(ds->st, ds->account, f->folder, wire, path,
                                 ds->device_id)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

apr_status_t memds_mtree_folder_replace(memds_ds_t *ds, const char *guid,
                                        const char *data, apr_size_t len)
{
    memds_folder_t *fo;
    memds_mfitem_t f, pf;
    const char *wire, *path, *ppath;
    int has_parent = 0;
    apr_status_t rv = memds_mtree_folder_row(ds, &f, guid);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (parse_folder(ds, data, len, &fo, &pf, &has_parent) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (!has_parent) {
        /* no parent named: it stays where it is */
        if (memds_mtree_parent_of_path(ds, f.name, &ppath) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (ppath && memds_mtree_folder_row(ds, &pf, ppath) == APR_SUCCESS) {
            has_parent = 1;
        }
    }
    if (wire_name(ds, has_parent ? &pf : NULL, fo->name, &wire, &path)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return rename_folder(ds, &f, wire, path);
}

apr_status_t memds_mtree_folder_remove(memds_ds_t *ds, const char *guid)
{
    memds_mfitem_t f;
    memds_imap_conn_t *c;
    memds_imap_err_t ierr;
    apr_status_t rv = memds_mtree_folder_row(ds, &f, guid);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (f.role || strcmp(f.folder, "INBOX") == 0) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                               "special folders (Inbox, Sent, Drafts, Trash, "
                               "...) cannot be deleted");
    }
    if (memds_mbox_conn(ds, &c) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memds_imap_unselect(c, &ierr);
    MEMDS_FAULT("imap-folder-delete-before");
    if (memds_imap_delete(c, f.folder, &ierr) != APR_SUCCESS
        && memds_imap_err_of(&ierr).kind != MEMDS_ERR_NOT_FOUND) {
        return memds_mbox_fail_imap(ds, &ierr, "DELETE");
    }
    MEMDS_FAULT("imap-folder-delete-after");
    MBOX(ds)->sh->boxes = NULL;
    MBOX(ds)->sh->frows = NULL;
    if (memds_mail_folder_gone(ds->st, ds->account, f.folder, ds->device_id)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

/* Move the message of row (in the current folder) to folder row to. */
apr_status_t memds_mtree_move_msg(memds_ds_t *ds, memds_mmsg_t *row,
                                  const memds_mfitem_t *to)
{
    memds_mbox_t *x = MBOX(ds);
    memds_imap_conn_t *c;
    memds_imap_err_t err;
    memds_imap_copyuid_t *cu = NULL;
    const char *from = x->folder;
    apr_uint32_t nuid;

    if (memds_mbox_select(ds, &c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    MEMDS_FAULT("imap-move-before");
    memset(&err, 0, sizeof(err));
    if (memds_imap_uid_move(c,
                            apr_psprintf(ds->st->pool, "%" APR_INT64_T_FMT,
                                         row->uid),
                            to->folder, NULL, NULL, &cu, &err, ds->st->pool)
            != APR_SUCCESS
        && err.kind != MEMDS_IMAP_E_NOTFOUND) {
        return memds_mbox_fail_imap(ds, &err, "UID MOVE");
    }
    MEMDS_FAULT("imap-move-after");
    nuid = cu ? memds_imap_copyuid_map(cu, (apr_uint32_t)row->uid) : 0;
    if (nuid == 0 && row->message_id && row->size > 0) {
        /* no such UID any more: a move a dead request made (its row never
         * committed) left the message in the target without a row; that
         * is the one (docs/crash-recovery.md) */
        if (memds_imap_select(c, to->folder, 0, NULL, NULL, NULL, NULL, &err)
            != APR_SUCCESS) {
            return memds_mbox_fail_imap(ds, &err, "SELECT");
        }
        if (memds_mbox_find_orphan(ds, c, to->folder, NULL,
                                   (apr_size_t)row->size, row->message_id,
                                   0, &nuid)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    if (nuid == 0) {
        return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                               "the IMAP server did not say where the message "
                               "went (no COPYUID)");
    }
    if (memds_mail_move(ds->st, ds->account, from, to->folder, row, nuid,
                        ds->device_id)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    row->uid = nuid;
    return memds_mbox_set_folder(ds, to->folder);
}

/* The folder a device names for a message (parent_hint), or INBOX. */
apr_status_t memds_mtree_target_folder(memds_ds_t *ds, memds_mfitem_t *f,
                                       int *pnamed)
{
    *pnamed = 0;
    if (ds->parent_hint) {
        apr_status_t rv = memds_mtree_folder_row(ds, f, ds->parent_hint);
        if (rv != APR_SUCCESS) {
            return ds->status
                       ? APR_EGENERAL
                       : memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                                         "the parent folder does not exist");
        }
        *pnamed = 1;
    }
    return APR_SUCCESS;
}

apr_status_t memds_mtree_parent(memds_ds_t *ds, const char *guid,
                                const char **pparent)
{
    memds_mfitem_t f;
    memds_mmsg_t row;
    const char *folder;
    apr_array_header_t *rows;
    apr_status_t rv;
    int i;

    *pparent = NULL;
    if (!MBOX(ds)->hier) {
        return APR_SUCCESS;
    }
    if (guid[0] == 'f') {
        rv = memds_mtree_folder_row(ds, &f, guid);
        return rv == APR_SUCCESS
                   ? memds_mtree_parent_of_path(ds, f.name, pparent)
                   : rv;
    }
    rv = memds_mail_get_any(ds->st, &row, &folder, ds->account, guid);
    if (rv != APR_SUCCESS) {
        return rv == APR_ENOENT ? rv : memds_mbox_fail_db(ds);
    }
    if (memds_mtree_folder_rows(ds, &rows) != APR_SUCCESS) {
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

/* Move (DS 1.2) a message or a folder to the folder ds->parent_hint: a
 * message by UID MOVE (same server id, flags kept), a folder by RENAME under
 * its new parent. The Outbox is no place to move to or from, and special
 * folders stay where they are. */
apr_status_t memds_mtree_move(memds_ds_t *ds, const char *guid)
{
    memds_mfitem_t f, to;
    memds_mmsg_t row;
    const char *folder, *wire, *path;
    apr_status_t rv;

    if (guid[0] == 'q') { /* an Outbox item (memds_outbox.c) */
        return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                               "Move out of the Outbox: mail there is being "
                               "sent");
    }
    if (ds->parent_hint == NULL) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                               "Move: the target folder does not exist");
    }
    rv = memds_mtree_folder_row(ds, &to, ds->parent_hint);
    if (rv != APR_SUCCESS) {
        return rv == APR_ENOENT
                   ? memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                                     "Move: the target folder does not exist")
                   : APR_EGENERAL;
    }
    if (strcmp(to.folder, MEMDS_OUTBOX_FOLDER) == 0) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                               "Move into the Outbox: mail is sent by adding "
                               "it there, not by moving it");
    }
    if (guid[0] == 'f') {
        rv = memds_mtree_folder_row(ds, &f, guid);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (strcmp(f.folder, MEMDS_OUTBOX_FOLDER) == 0) {
            return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                                   "the Outbox cannot be moved");
        }
        if (strcmp(to.guid, f.guid) == 0
            || (strncmp(to.name, f.name, strlen(f.name)) == 0
                && to.name[strlen(f.name)] == '/')) {
            return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                                   "a folder cannot be moved into itself");
        }
        if (wire_name(ds, &to, memds_mtree_last_component(f.name), &wire, &path)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        return rename_folder(ds, &f, wire, path);
    }
    rv = memds_mail_get_any(ds->st, &row, &folder, ds->account, guid);
    if (rv != APR_SUCCESS) {
        return rv == APR_ENOENT ? rv : memds_mbox_fail_db(ds);
    }
    if (strcmp(folder, MEMDS_OUTBOX_FOLDER) == 0) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_ALLOWED,
                               "Move out of the Outbox: mail there is being "
                               "sent");
    }
    if (strcmp(folder, to.folder) == 0) {
        return APR_SUCCESS; /* already there */
    }
    if (memds_mbox_set_folder(ds, folder) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    return memds_mtree_move_msg(ds, &row, &to);
}
