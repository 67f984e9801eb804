/**
 * @file memds_mailstore.h
 * What the gateway knows of IMAP folders and their messages
 * (schema/004_mail.sql): per folder UIDVALIDITY/HIGHESTMODSEQ, per message
 * its stable GUID, UID, flags and change sequence. Same conventions as
 * memds_store.h (one transaction per request, APR_ENOENT where said).
 */
#ifndef MEMDS_MAILSTORE_H
#define MEMDS_MAILSTORE_H

#include "store/memds_store.h"

/** Flag bits of memds.mail_messages.flags (IMAP's, plus $Forwarded). */
#define MEMDS_MAIL_SEEN      0x01
#define MEMDS_MAIL_ANSWERED  0x02
#define MEMDS_MAIL_FLAGGED   0x04
#define MEMDS_MAIL_DELETED   0x08
#define MEMDS_MAIL_DRAFT     0x10
#define MEMDS_MAIL_FORWARDED 0x40

typedef struct memds_mfolder_t {
    apr_int64_t uidvalidity;    /**< 0: never scanned */
    apr_int64_t highestmodseq;  /**< 0: no CONDSTORE */
    apr_int64_t uidnext, messages;
} memds_mfolder_t;

/** Lock the folder's row (created empty when missing: uidvalidity 0) for
 *  the rest of the transaction, so that one scan runs at a time. */
apr_status_t memds_mail_folder_lock(memds_store_t *st, memds_mfolder_t *f,
                                    const char *account, const char *folder);
apr_status_t memds_mail_folder_save(memds_store_t *st, const char *account,
                                    const char *folder,
                                    const memds_mfolder_t *f);

typedef struct memds_mmsg_t {
    const char *guid;
    apr_int64_t uid;
    int flags;                  /**< MEMDS_MAIL_* */
    const char *message_id;     /**< NULL when none */
    apr_int64_t size;
    apr_time_t internaldate;    /**< 0: unknown */
    apr_int64_t seq, content_seq;
    int deleted;
    apr_int64_t changed_by;     /**< 0: the IMAP server */
} memds_mmsg_t;

/** Live messages of the folder (memds_mmsg_t *, guid, uid, flags, and with
 *  full also message_id, size, internaldate), by uid. uids NULL: all; else
 *  only those n UIDs. */
apr_status_t memds_mail_live(memds_store_t *st, apr_array_header_t **prows,
                             const char *account, const char *folder,
                             const apr_int64_t *uids, int n, int full);
/** Insert new messages (guid ignored: the store gives one). */
apr_status_t memds_mail_insert_many(memds_store_t *st, const char *account,
                                    const char *folder,
                                    memds_mmsg_t *const *rows, int n,
                                    apr_int64_t changed_by);
/** New flags for messages (by uid); only rows whose flags differ change. */
apr_status_t memds_mail_flags_many(memds_store_t *st, const char *account,
                                   const char *folder, const apr_int64_t *uids,
                                   const int *flags, int n,
                                   apr_int64_t changed_by);
/** Tombstone the live messages with these uids. */
apr_status_t memds_mail_gone_many(memds_store_t *st, const char *account,
                                  const char *folder, const apr_int64_t *uids,
                                  int n, apr_int64_t changed_by);
/** UIDVALIDITY changed: every live row gets uid -(old uid) (a new seq only
 *  when it is not re-mapped later) until memds_mail_remap_one/ _finish. */
apr_status_t memds_mail_remap_begin(memds_store_t *st, const char *account,
                                    const char *folder);
/** Give row guid (one with a negative uid) its new uid and flags; a new seq
 *  only when the flags differ. */
apr_status_t memds_mail_remap_one(memds_store_t *st, const char *account,
                                  const char *folder, const char *guid,
                                  apr_int64_t uid, int flags, int old_flags);
/** Rows still negative were not found again: tombstones. */
apr_status_t memds_mail_remap_finish(memds_store_t *st, const char *account,
                                     const char *folder);

/** Rows with since < seq <= upto in seq order, tombstones included (since
 *  -1: all live ones). Only guid, seq, deleted, changed_by are filled. */
apr_status_t memds_mail_changed(memds_store_t *st, apr_array_header_t **prows,
                                const char *account, const char *folder,
                                apr_int64_t since, apr_int64_t upto);
/** One row by guid (tombstones too); APR_ENOENT if unknown. */
apr_status_t memds_mail_get(memds_store_t *st, memds_mmsg_t *row,
                            const char *account, const char *folder,
                            const char *guid);
/** A live message with this Message-ID (and size when size >= 0) that no map
 *  of device_id in store points to; APR_ENOENT if none. */
apr_status_t memds_mail_match(memds_store_t *st, const char **pguid,
                              const char *account, const char *folder,
                              apr_int64_t device_id, const char *store,
                              const char *message_id, apr_int64_t size);
/** A device's change of one message: new flags, and with content_changed a
 *  new uid/size/message_id/internaldate. */
apr_status_t memds_mail_update(memds_store_t *st, const char *account,
                               const char *folder, const memds_mmsg_t *row,
                               int content_changed, apr_int64_t changed_by);
/** A device added a message: *pguid the new GUID. */
apr_status_t memds_mail_add(memds_store_t *st, const char **pguid,
                            const char *account, const char *folder,
                            const memds_mmsg_t *row, apr_int64_t changed_by);
/** Tombstone one message. */
apr_status_t memds_mail_remove(memds_store_t *st, const char *account,
                               const char *folder, const char *guid,
                               apr_int64_t changed_by);

/* ------------------------------- the hierarchical "email" datastore */

typedef struct memds_mfitem_t {
    const char *folder;         /**< IMAP name */
    const char *guid, *name, *role; /**< name: UTF-8 path with "/" */
    apr_int64_t uidvalidity, highestmodseq, seq;
    int deleted;
    apr_int64_t changed_by;
} memds_mfitem_t;

/** Every folder row of the account (memds_mfitem_t *), tombstones too. */
apr_status_t memds_mail_folders_all(memds_store_t *st, apr_array_header_t **prows,
                                    const char *account);
/** The folder row with this guid; APR_ENOENT if none. */
apr_status_t memds_mail_folder_by_guid(memds_store_t *st, memds_mfitem_t *row,
                                       const char *account, const char *guid);
/** Make sure a live row for folder exists with this name and role (a new
 *  seq when it is new, was a tombstone, or its name/role changed). */
apr_status_t memds_mail_folder_upsert(memds_store_t *st, const char *account,
                                      const char *folder, const char *name,
                                      const char *role, apr_int64_t changed_by,
                                      const char **pguid);
/** The folder is gone: tombstones for it and its messages. */
apr_status_t memds_mail_folder_gone(memds_store_t *st, const char *account,
                                    const char *folder, apr_int64_t changed_by);
/** A device renamed/moved a folder: its row and messages follow. */
apr_status_t memds_mail_folder_rename(memds_store_t *st, const char *account,
                                      const char *from, const char *to,
                                      const char *name, apr_int64_t changed_by);
/** Changes of every folder and message of the account (guid, seq, deleted,
 *  changed_by in memds_mmsg_t *), in seq order; since -1: all live. */
apr_status_t memds_mail_changed_all(memds_store_t *st, apr_array_header_t **prows,
                                    const char *account, apr_int64_t since,
                                    apr_int64_t upto);
/** The live message with this guid in any folder (*pfolder its folder);
 *  APR_ENOENT if none. */
apr_status_t memds_mail_get_any(memds_store_t *st, memds_mmsg_t *row,
                                const char **pfolder, const char *account,
                                const char *guid);
/** A device moved a message: a tombstone stays in from, the message (same
 *  guid) lives in to with its new uid. */
apr_status_t memds_mail_move(memds_store_t *st, const char *account,
                             const char *from, const char *to,
                             const memds_mmsg_t *row, apr_int64_t new_uid,
                             apr_int64_t changed_by);

#endif /* MEMDS_MAILSTORE_H */
