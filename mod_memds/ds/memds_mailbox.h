/**
 * @file memds_mailbox.h
 * What the mailbox providers share (private to ds/ and send/): the state of
 * one mailbox datastore, the request's IMAP connection, folders and roles,
 * objects a device sends, and filing a copy. memds_mailbox.c implements
 * it; the folder datastores (memds_ds_mail.c, the hierarchical one in
 * memds_ds_mailtree.c) and the Outbox (send/memds_outbox.c) use it.
 */
#ifndef MEMDS_MAILBOX_H
#define MEMDS_MAILBOX_H

#include "ds/memds_ds.h"
#include "store/memds_mailstore.h"
#include "backends/memds_imap.h"
#include "email/memds_email.h"
#include "util/memds_buf.h"
#include "syncml/memds_codes.h"

#define MEMDS_RFC822 "message/rfc822"
/** The rows of the virtual Outbox folder (no IMAP name has a backslash). */
#define MEMDS_OUTBOX_FOLDER "\\Outbox"

/** Per request, shared by every mailbox datastore of it (kept in the
 *  request's memds_ds_shared_t): one IMAP connection and one LIST. */
typedef struct memds_mbox_shared_t {
    memds_imap_conn_t *conn;
    memds_imap_lease_t *lease; /**< conn came from this cache entry */
    memds_imap_cache_t *cache;
    apr_array_header_t *boxes; /**< memds_imap_list_t *, or NULL */
    int boxes_fresh;           /**< boxes is a LIST of this request */
    apr_array_header_t *frows; /**< memds_mfitem_t * (email datastore),
                                      or NULL: read again */
    apr_hash_t *wrote; /**< folders (wire names) held by this request's
                            transaction (memds_mbox_note_held), or NULL */
    apr_pool_t *p;
} memds_mbox_shared_t;

/** One mailbox datastore (ds->impl). */
typedef struct memds_mbox_t {
    const memds_mail_cfg_t *cfg;
    memds_ds_env_t env; /**< as opened (registry, shared, password) */
    const char *password;
    int want_rfc822;
    memds_mbox_shared_t *sh;
    apr_pool_t *p;
    const char *folder; /**< wire name, NULL until resolved */
    memds_imap_role_e role;
    int scanned;
    int locked; /**< the folder's row lock is held (memds_ds_mail.c) */
    int hier; /**< the hierarchical "email" datastore */
    int list_fresh; /**< name the folder from a LIST of this request */
    /* messages read ahead (memds_ds_vt.prefetch): guid -> memds_buf_t * */
    apr_hash_t *ahead;
    /* what the read-ahead read of them in one statement per table (a row,
     * its level, the Sent check): guid -> pre_t * (memds_ds_mail.c), and
     * the levels fetch recorded, written by memds_ds_vt.flush: guid ->
     * put_t *; NULL: fetch writes each at once */
    apr_hash_t *pre, *puts;
    /* what the read-ahead read of the ones that go truncated (structure,
     * header, the start of the text): uid (apr_uint32_t) -> memds_mbox_tpre_t *
     * (memds_mailtrunc.c) */
    apr_hash_t *tahead;
    /* the account's truncation setting, read once per datastore */
    int acct_read, acct_has;
    memds_ds_level_t acct_level;
} memds_mbox_t;

#define MBOX(ds) ((memds_mbox_t *)(ds)->impl)

/** Make ds a mailbox datastore (ds->impl); the caller sets ds->vt.
 *  APR_EINVAL without mailbox settings or shared state in env. */
apr_status_t memds_mbox_init(memds_ds_t *ds, const memds_ds_env_t *env,
                             apr_pool_t *p);

/* ---------------------------------------------------------------- failures
 * Each sets ds->status and ds->reason and returns APR_EGENERAL. */
apr_status_t memds_mbox_fail(memds_ds_t *ds, int status, const char *reason);
apr_status_t memds_mbox_fail_imap(memds_ds_t *ds, const memds_imap_err_t *err,
                                  const char *what);
/** A store failure: status 0 makes the engine answer 503 and roll back. */
apr_status_t memds_mbox_fail_db(memds_ds_t *ds);

/* ------------------------------------------------------ connection, folders */
/** The request's IMAP connection (logged in on first use). */
apr_status_t memds_mbox_conn(memds_ds_t *ds, memds_imap_conn_t **pc);
memds_imap_role_e memds_mbox_role_of_name(const char *n);
int memds_mbox_selectable(const memds_imap_list_t *l);
/** Is the folder excluded from synchronisation (MemDSExcludeFolder names
 *  its IMAP name or its path)? */
int memds_mbox_excluded(const memds_ds_t *ds, const memds_imap_list_t *l);
/** A mailbox's path as a device names it: UTF-8, "/" between levels. */
const char *memds_mbox_path_of(const memds_imap_list_t *l, apr_pool_t *p);
/** The account's folders (one LIST per request). */
apr_status_t memds_mbox_boxes(memds_ds_t *ds, apr_array_header_t **pboxes);
/** The folder of a role (SPECIAL-USE, MemDSFolder, usual names); *pfolder
 *  NULL when the account has none. */
apr_status_t memds_mbox_role_folder(memds_ds_t *ds, memds_imap_role_e role,
                                    const char **pfolder);
/** Which IMAP folder this datastore is (404 when there is none). */
apr_status_t memds_mbox_resolve(memds_ds_t *ds);
/** memds_mbox_resolve from a LIST of this request, not a kept
 *  connection's (an Alert: a folder gone since is refused at once). */
apr_status_t memds_mbox_resolve_listed(memds_ds_t *ds);
/** SELECT this datastore's folder. */
apr_status_t memds_mbox_select(memds_ds_t *ds, memds_imap_conn_t **pc,
                               const memds_imap_mailbox_t **pmb);
/** Choose the folder the next operations work on (by IMAP name). */
apr_status_t memds_mbox_set_folder(memds_ds_t *ds, const char *folder);

/* ---------------------------------------------------------------- messages */
/** What a device sent: the RFC 2822 bytes (CRLF) if any, and the email
 *  object for its flags (NULL for message/rfc822). A device's copy (a
 *  truncated object, memds_email_is_device_copy) has copy set and no msg:
 *  only its flags and its Message-ID count. */
typedef struct memds_mbox_in_t {
    memds_email_t *email;
    const char *msg;
    apr_size_t len;
    const char *message_id;
    int copy;
    /** A copy's X-Sync-Message-Limit (-1: complete), when has_limit. */
    int has_limit;
    apr_int64_t limit;
} memds_mbox_in_t;

apr_status_t memds_mbox_parse_in(memds_ds_t *ds, memds_mbox_in_t *in,
                                 const char *type, const char *data,
                                 apr_size_t len);
/** The email object's <created>: the message's Date header field (left
 *  unset when there is none or it cannot be read). */
void memds_mbox_set_created(memds_email_t *e, const char *msg, apr_size_t len,
                            apr_pool_t *p);
/** Flags after applying an email object's tri-state flags to old. */
int memds_mbox_merge_flags(int old, const memds_email_t *e);
/** IMAP flag list of MEMDS_MAIL_* bits, NULL for none. */
const char *memds_mbox_flag_list(int fl, apr_pool_t *p);
/** STORE the difference between two flag sets on uid. */
apr_status_t memds_mbox_store_flags(memds_ds_t *ds, memds_imap_conn_t *c,
                                    apr_int64_t uid, int from, int to);
/** Body callback appending to a memds_buf_t. */
apr_status_t memds_mbox_body_cb(void *baton, apr_uint64_t off, const char *data,
                                apr_size_t len);
/** A part of message uid (BODY.PEEK[section]) into out (NUL-terminated). */
apr_status_t memds_mbox_fetch_section(memds_ds_t *ds, memds_imap_conn_t *c,
                                      apr_int64_t uid, const char *section,
                                      unsigned flags, memds_buf_t *out);
/** APPEND a copy to the folder of role (Sent, or Drafts for a refused
 *  message); its row makes it appear on the devices. *pguid NULL when
 *  there is no such folder. */
apr_status_t memds_mbox_file_copy(memds_ds_t *ds, memds_imap_role_e role,
                                  const char *data, apr_size_t len, int flags,
                                  const char **pguid);

/** This request's transaction holds folder's row lock, or gave a message
 *  row of it a new UID (an Add, a new version, a copy filed): a scan of
 *  folder in a transaction of its own would wait for this one, so it runs
 *  in this one (memds_ds_mail.c). */
void memds_mbox_note_held(memds_ds_t *ds, const char *folder);
int memds_mbox_is_held(const memds_ds_t *ds, const char *folder);

/** The UID of a message of folder (selected on c) with exactly the bytes
 *  msg that no live row records (an APPEND or MOVE whose transaction
 *  died), or 0 in *puid (docs/crash-recovery.md); msg NULL: one of len
 *  bytes with this Message-ID. adopt: also one a row records that is
 *  neither this device's change nor held by it (a scan recorded the dead
 *  request's copy): the caller's memds_mail_add then takes that row. */
apr_status_t memds_mbox_find_orphan(memds_ds_t *ds, memds_imap_conn_t *c,
                                    const char *folder, const char *msg,
                                    apr_size_t len, const char *message_id,
                                    int adopt, apr_uint32_t *puid);

/** Message rows (memds_mmsg_t *) as the engine's changes. */
apr_array_header_t *memds_mbox_changes_of(const apr_array_header_t *rows,
                                          apr_pool_t *p);

/* ------------------------------------------------ the per-folder datastore */
/** Bring memds.mail_messages up to date with the current folder. */
apr_status_t memds_mbox_scan(memds_ds_t *ds);

/* ------------------------------------ the hierarchical datastore's folders */
int memds_mtree_serves(const char *store);
apr_status_t memds_mtree_scan(memds_ds_t *ds);
apr_status_t memds_mtree_folder_row(memds_ds_t *ds, memds_mfitem_t *f,
                                    const char *guid);
const char *memds_mtree_last_component(const char *path);
apr_status_t memds_mtree_folder_rows(memds_ds_t *ds,
                                     apr_array_header_t **prows);
apr_status_t memds_mtree_parent_of_path(memds_ds_t *ds, const char *path,
                                        const char **pguid);
apr_status_t memds_mtree_folder_fetch(memds_ds_t *ds, const char *guid,
                                      const char **pdata, apr_size_t *plen,
                                      const char **ptype);
int memds_mtree_is_folder_item(const char *type, const char *data,
                               apr_size_t len);
apr_status_t memds_mtree_folder_add(memds_ds_t *ds, const char **pguid,
                                    const char *data, apr_size_t len);
apr_status_t memds_mtree_folder_replace(memds_ds_t *ds, const char *guid,
                                        const char *data, apr_size_t len);
apr_status_t memds_mtree_folder_remove(memds_ds_t *ds, const char *guid);
apr_status_t memds_mtree_move_msg(memds_ds_t *ds, memds_mmsg_t *row,
                                  const memds_mfitem_t *to);
/** The folder a device names for a message (parent_hint), or INBOX. */
apr_status_t memds_mtree_target_folder(memds_ds_t *ds, memds_mfitem_t *f,
                                       int *pnamed);
apr_status_t memds_mtree_parent(memds_ds_t *ds, const char *guid,
                                const char **pparent);
apr_status_t memds_mtree_move(memds_ds_t *ds, const char *guid);

#endif /* MEMDS_MAILBOX_H */
