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
#define MEMDS_MAIL_SEEN 0x01
#define MEMDS_MAIL_ANSWERED 0x02
#define MEMDS_MAIL_FLAGGED 0x04
#define MEMDS_MAIL_DELETED 0x08
#define MEMDS_MAIL_DRAFT 0x10
#define MEMDS_MAIL_FORWARDED 0x40

typedef struct memds_mfolder_t {
    apr_int64_t uidvalidity;   /**< 0: never scanned */
    apr_int64_t highestmodseq; /**< 0: no CONDSTORE */
    apr_int64_t uidnext, messages;
    int fresh; /**< (read by memds_mail_folder_lock) the last scan began
                    after this transaction did */
} memds_mfolder_t;

/** Lock the folder's row (created empty when missing: uidvalidity 0) for
 *  the rest of the transaction, so that one scan runs at a time. */
apr_status_t memds_mail_folder_lock(memds_store_t *st, memds_mfolder_t *f,
                                    const char *account, const char *folder);
apr_status_t memds_mail_folder_save(memds_store_t *st, const char *account,
                                    const char *folder,
                                    const memds_mfolder_t *f);
/** Lock waits of the rest of the transaction end after ms with SQLSTATE
 *  55P03 (a scan in a transaction of its own, memds_ds_mail.c). */
apr_status_t memds_mail_lock_timeout(memds_store_t *st, int ms);

typedef struct memds_mmsg_t {
    const char *guid;
    apr_int64_t uid;
    int flags;              /**< MEMDS_MAIL_* */
    const char *message_id; /**< NULL when none */
    apr_int64_t size;
    apr_time_t internaldate; /**< 0: unknown */
    apr_int64_t seq, content_seq;
    int deleted;
    apr_int64_t changed_by; /**< 0: the IMAP server */
    apr_time_t updated_at;  /**< the last change the server knows of
                                 (new, flags, content): the <modified> */
} memds_mmsg_t;

/** Live messages of the folder (memds_mmsg_t *, guid, uid, flags, and with
 *  full also message_id, size, internaldate), by uid. uids NULL: all; else
 *  only those n UIDs. */
apr_status_t memds_mail_live(memds_store_t *st, apr_array_header_t **prows,
                             const char *account, const char *folder,
                             const apr_int64_t *uids, int n, int full);
/** Insert new messages (guid ignored: the store gives one); a UID that has
 *  a live row already (another scan's, a device's Add) keeps that row. */
apr_status_t memds_mail_insert_many(memds_store_t *st, const char *account,
                                    const char *folder,
                                    memds_mmsg_t *const *rows, int n,
                                    apr_int64_t changed_by);
/** New flags for messages (by uid); only rows whose flags differ change.
 *  A row another transaction holds is skipped, not waited for: *pskipped
 *  (may be NULL) counts those (and rows changed meanwhile), so the caller
 *  can tell the folder is not yet up to date. fence >= 0: a row whose seq
 *  is above it (changed after the flags were read from IMAP: see
 *  memds_mail_seq_fence) is skipped and counted too; -1: none. */
apr_status_t memds_mail_flags_many(memds_store_t *st, const char *account,
                                   const char *folder, const apr_int64_t *uids,
                                   const int *flags, int n,
                                   apr_int64_t changed_by, apr_int64_t fence,
                                   int *pskipped);
/** The highest value memds.item_seq has handed out: every seq taken after
 *  this call is above it. A scan reads it before it asks IMAP for flags,
 *  so that a device's change stored on IMAP after that answer, whose row
 *  takes a later seq, is not undone by the older flags. */
apr_status_t memds_mail_seq_fence(memds_store_t *st, apr_int64_t *pfence);
/** Tombstone the live messages with these uids; rows another transaction
 *  holds are skipped and counted in *pskipped (may be NULL). */
apr_status_t memds_mail_gone_many(memds_store_t *st, const char *account,
                                  const char *folder, const apr_int64_t *uids,
                                  int n, apr_int64_t changed_by, int *pskipped);
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
/** A device added a message: *pguid the new GUID (or that of the row a
 *  scan made for the same UID first, now marked as the device's change). */
apr_status_t memds_mail_add(memds_store_t *st, const char **pguid,
                            const char *account, const char *folder,
                            const memds_mmsg_t *row, apr_int64_t changed_by);
/** A tombstone with this guid (new, or with a new seq): devices that map
 *  the guid get a Delete. */
apr_status_t memds_mail_tombstone(memds_store_t *st, const char *account,
                                  const char *folder, const char *guid);
/** The change position of a virtual folder of tombstones (the Outbox):
 *  memds_store_items_seq, raised to the folder's highest seq when no other
 *  transaction is writing tombstones into it, so that this transaction's
 *  own tombstones go in this session. */
apr_status_t memds_outbox_seq(memds_store_t *st, apr_int64_t *pseq,
                              const char *account, const char *folder);
/** Tombstone one message. */
apr_status_t memds_mail_remove(memds_store_t *st, const char *account,
                               const char *folder, const char *guid,
                               apr_int64_t changed_by);

/* ------------------------------- the hierarchical "email" datastore */

typedef struct memds_mfitem_t {
    const char *folder;             /**< IMAP name */
    const char *guid, *name, *role; /**< name: UTF-8 path with "/" */
    apr_int64_t uidvalidity, highestmodseq, seq;
    int deleted;
    apr_int64_t changed_by;
} memds_mfitem_t;

/** Every folder row of the account (memds_mfitem_t *), tombstones too. */
apr_status_t memds_mail_folders_all(memds_store_t *st,
                                    apr_array_header_t **prows,
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
apr_status_t memds_mail_changed_all(memds_store_t *st,
                                    apr_array_header_t **prows,
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

/* ------------------------------------------------- the outbox ledger */

typedef struct memds_outbox_row_t {
    apr_int64_t id;
    const char *state; /**< received, submitting, submitted, filed,
                                     acknowledged, rejected, retrying */
    const char *luid, *message_id, *envelope_from, *sent_guid, *reason;
    const char *account, *store; /**< (memds_outbox_due only) */
    apr_int64_t device_id;
    apr_array_header_t *rcpts; /**< const char * (with data: due rows only) */
    const char *data;          /**< NULL unless asked for */
    apr_size_t len;
    const char *bcc; /**< the Bcc fields taken out (with data) */
    apr_size_t bcc_len;
    int status, attempts;
    int due; /**< retrying and next_attempt_at has come */
    int drafts_pending; /**< rejected, its copy for Drafts not yet made */
} memds_outbox_row_t;

/** The ledger row of a device's item, with its message unless filed;
 *  APR_ENOENT if none. */
apr_status_t memds_outbox_find(memds_store_t *st, memds_outbox_row_t *row,
                               const char *account, apr_int64_t device_id,
                               const char *store, const char *luid,
                               const char *sha1);
/** A new row in state received with the prepared message (and the Bcc
 *  fields taken out of it, for the sender's copies); *pid its id.
 *  location: the sync location whose settings send it (may be NULL). */
apr_status_t memds_outbox_insert(memds_store_t *st, apr_int64_t *pid,
                                 const char *account, apr_int64_t device_id,
                                 const char *store, const char *location,
                                 const char *luid, const char *sha1,
                                 const char *message_id, const char *from,
                                 const char *const *rcpts, int nrcpts,
                                 const char *data, apr_size_t len,
                                 const char *bcc, apr_size_t bcc_len);
/** Move row id to state; status/reason/sent_guid NULL-or-0 keep theirs;
 *  attempt 1 counts an SMTP attempt; retry_secs > 0 sets next_attempt_at;
 *  clear_data drops the stored message. */
apr_status_t memds_outbox_set(memds_store_t *st, apr_int64_t id,
                              const char *state, int status, const char *reason,
                              const char *sent_guid, int attempt,
                              int retry_secs, int clear_data);
/** The copy of refused row id for Drafts is still to be made (pending 1)
 *  or made (0): memds.outbox.drafts_pending. */
apr_status_t memds_outbox_drafts_set(memds_store_t *st, apr_int64_t id,
                                     int pending);

/** Take the right to send row id: a PostgreSQL session-level advisory
 *  lock (key pair MEMDS_OUTBOX_LOCK_CLASS + high bits of id, low 32 bits
 *  of id) on st's connection, held until memds_outbox_unclaim or until the
 *  connection ends (a crashed child's claim ends with it). *pgot 0 when
 *  another connection holds it. When got, *row is the row as it is now
 *  (read after the lock: what another sender did before is seen), without
 *  its message. */
apr_status_t memds_outbox_claim(memds_store_t *st, apr_int64_t id, int *pgot,
                                memds_outbox_row_t *row);
/** Give the claim back (a failure here means the connection is broken, and
 *  then the claim has ended with it). */
apr_status_t memds_outbox_unclaim(memds_store_t *st, apr_int64_t id);

/** Rows of (account, device, store) in state filed whose Outbox item the
 *  device has since been told to delete in a completed session (the
 *  tombstone "q<id>" in folder is at or below the device's last_seq):
 *  the device got our answer; they become acknowledged. */
apr_status_t memds_outbox_acknowledge(memds_store_t *st, const char *account,
                                      apr_int64_t device_id, const char *store,
                                      const char *folder);
/** Retries that are due (memds_outbox_row_t * with account, device_id,
 *  store and the message), at most limit: of every account sent through
 *  location (account NULL), or of one device's datastore (location NULL). */
apr_status_t memds_outbox_due(memds_store_t *st, apr_array_header_t **prows,
                              const char *location, const char *account,
                              apr_int64_t device_id, const char *store,
                              int limit);

/* ------------------------------------------ filters and sent levels */

/** Every live message of account (of folder, or of every folder when
 *  folder is NULL) as a key of *pset (guid) with the value "1" when its
 *  INTERNALDATE is in the window (since/before 0: unbounded; _incl: the
 *  bound itself is in) and it is among the newest max_count of its folder
 *  in the window (max_count <= 0: no limit), else "0". */
apr_status_t memds_mail_select(memds_store_t *st, apr_hash_t **pset,
                               const char *account, const char *folder,
                               apr_time_t since, int since_incl,
                               apr_time_t before, int before_incl,
                               apr_int64_t max_count);
/** The level a device holds a mail at (memds.mail_levels, the compact
 *  form of memds_ds_level_format) and a level it asked for (*pwant, NULL
 *  for none); APR_ENOENT when never recorded. */
apr_status_t memds_mail_level_get(memds_store_t *st, const char **plevel,
                                  const char **pwant, apr_int64_t device_id,
                                  const char *store, const char *guid);
/** Record the level just sent (and forget what was asked for). */
apr_status_t memds_mail_level_put(memds_store_t *st, apr_int64_t device_id,
                                  const char *store, const char *guid,
                                  const char *level, apr_int64_t sent_bytes);
/** Record a level the device asks for. */
apr_status_t memds_mail_level_want(memds_store_t *st, apr_int64_t device_id,
                                   const char *store, const char *guid,
                                   const char *want);
/** The guids of the device's datastore with a level asked for. */
apr_status_t memds_mail_level_wanted(memds_store_t *st,
                                     apr_array_header_t **pguids,
                                     apr_int64_t device_id, const char *store);
/** The account's truncation setting (memds.account_settings.truncate);
 *  APR_ENOENT when it has none. */
apr_status_t memds_account_truncate(memds_store_t *st, const char **pvalue,
                                    const char *account);
/** Did this device send the message whose copy in Sent is guid (the
 *  outbox ledger's sent_guid)? APR_SUCCESS yes, APR_ENOENT no. */
apr_status_t memds_outbox_sent_by(memds_store_t *st, const char *account,
                                  apr_int64_t device_id, const char *guid);
/** Set it ("off" or a byte count; NULL: back to MemDSTruncate). */
apr_status_t memds_account_truncate_set(memds_store_t *st, const char *account,
                                        const char *value);

/* ------------------------------------------- batches of one SyncML message
 * (a mail datastore's read-ahead: one statement per table, not per mail) */
/** One recorded level (memds_mail_level_get) of memds_mail_pre_many. */
typedef struct memds_mlevel_t {
    const char *guid, *level, *want; /**< want NULL: none */
} memds_mlevel_t;
/** The read-ahead of n mails going down, in one round trip: their rows in
 *  folder (*prows, memds_mmsg_t *, any order, unknown guids missing),
 *  their recorded levels (*plevels, memds_mlevel_t, unrecorded ones
 *  missing) and, when psent is not NULL, which of them the device sent
 *  (memds_outbox_sent_by: *psent, const char *). */
apr_status_t memds_mail_pre_many(memds_store_t *st, apr_array_header_t **prows,
                                 apr_array_header_t **plevels,
                                 apr_array_header_t **psent,
                                 const char *account, const char *folder,
                                 apr_int64_t device_id, const char *store,
                                 const char *const *guids, int n);
/** memds_mail_level_put for n distinct guids in one statement. */
apr_status_t memds_mail_level_put_many(memds_store_t *st, apr_int64_t device_id,
                                       const char *store,
                                       const char *const *guids,
                                       const char *const *levels,
                                       const apr_int64_t *sent_bytes, int n);

#endif /* MEMDS_MAILSTORE_H */
