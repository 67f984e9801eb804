/**
 * @file memds_store.h
 * Persistence of the protocol engine in PostgreSQL (schema/002_engine.sql):
 * authentication state, devices, sessions with their last response,
 * per-session datastores and send queues, partial large objects, anchors,
 * LUID<->GUID maps. libpq stays behind this interface.
 *
 * All calls run on one pool connection inside the transaction opened by
 * memds_store_begin; the engine commits once per request, together with the
 * response it sends. Strings in results are allocated from the pool given.
 * Every function returns APR_SUCCESS, APR_ENOENT (no such row, where said),
 * or APR_EGENERAL with *st->err set (and the connection marked broken when
 * libpq says it is).
 */
#ifndef MEMDS_STORE_H
#define MEMDS_STORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_hash.h>
#include "store/memds_pgpool.h"

typedef struct memds_store_t {
    memds_pgconn_t *conn;
    apr_pool_t *pool; /**< request pool: results and errors */
    const char *err;  /**< last error (for the log), never sent to a device */
} memds_store_t;

void memds_store_init(memds_store_t *st, memds_pgconn_t *conn, apr_pool_t *p);
apr_status_t memds_store_begin(memds_store_t *st);
apr_status_t memds_store_commit(memds_store_t *st);
/** Roll back; safe to call after an error or when no transaction is open. */
void memds_store_rollback(memds_store_t *st);
/** ANALYZE table (a constant name such as "memds.session_queue", with the
 *  columns worth it: "memds.maps (device_id)") inside the open transaction,
 *  which ANALYZE counts: for a table that has just grown by thousands of
 *  rows of a key its statistics do not know (the planner would take them
 *  for one row until autovacuum comes, a minute later). Only the key's
 *  column: the others' statistics (a GUID's distinct share) do not change
 *  with one more device, and sorting their sample was most of the cost
 *  (memds.maps of 31,000 rows: 82-107 ms whole, 14-15 ms its device_id).
 *  Not for a table whose other columns may have no statistics yet (the
 *  mail tables on a new server: docs/performance.md).
 *  Waits at most 5 ms for the table's lock (autovacuum or another
 *  session's ANALYZE holds it: then skipped), never fails the transaction
 *  (a savepoint), and keeps its lock_timeout. */
void memds_store_analyze(memds_store_t *st, const char *table);
/** How many rows of one new key a write (or a session) adds before its
 *  table is worth memds_store_analyze: the send queue built, a folder's
 *  first scan, the device's rows of a first sync going down. */
#define MEMDS_ANALYZE_ROWS 2000

/* --------------------------------------------------------------- auth */

typedef struct memds_auth_row_t {
    const char *nonce; /**< "" when none was issued */
    int failures;
    int blocked; /**< blocked_until is in the future */
} memds_auth_row_t;

/** Read (and lock) the auth row; a missing row reads as all-zero/"". */
apr_status_t memds_store_auth_get(memds_store_t *st, memds_auth_row_t *row,
                                  const char *account, const char *devid);
/** Remember the nonce issued to (account, devid). */
apr_status_t memds_store_auth_set_nonce(memds_store_t *st, const char *account,
                                        const char *devid, const char *nonce);
/** Count a failure; after max_failures within window_secs block for block_secs. */
apr_status_t memds_store_auth_failed(memds_store_t *st, const char *account,
                                     const char *devid, int max_failures,
                                     int window_secs, int block_secs);
/** Reset the failure counter after a success. */
apr_status_t memds_store_auth_ok(memds_store_t *st, const char *account,
                                 const char *devid);

/** The stored md5 inner value of account; APR_ENOENT if none. */
apr_status_t memds_store_md5_get(memds_store_t *st, const char **pinner,
                                 const char *account);
/** Store (replace) the md5 inner value of account; source "admin" or
 *  "basic-login". */
apr_status_t memds_store_md5_put(memds_store_t *st, const char *account,
                                 const char *inner_b64, const char *source);

/** The server's credentials towards one device (schema/008): what answers
 *  a device's challenge, and the secret of a SAN digest. */
typedef struct memds_server_cred_t {
    const char *server_id; /**< NULL: the LocURI the device addresses */
    const char *password;  /**< in clear */
    int allow_basic;       /**< auth = 'basic': basic challenges answered */
    const char *nonce;     /**< the device's last md5 NextNonce (b64); "" */
} memds_server_cred_t;

/** The server's credentials towards (account, devid); APR_ENOENT if none. */
apr_status_t memds_store_server_cred_get(memds_store_t *st,
                                         memds_server_cred_t *row,
                                         const char *account,
                                         const char *devid);
/** Remember the nonce of the device's md5 challenge (the server nonce). */
apr_status_t memds_store_server_cred_nonce(memds_store_t *st,
                                           const char *account,
                                           const char *devid,
                                           const char *nonce);
/** Set (insert or replace; nonce kept) the server's credentials towards
 *  (account, devid): memds-admin server-password. */
apr_status_t memds_store_server_cred_put(memds_store_t *st, const char *account,
                                         const char *devid,
                                         const memds_server_cred_t *row);
/** Remove them; APR_ENOENT if there were none. */
apr_status_t memds_store_server_cred_delete(memds_store_t *st,
                                            const char *account,
                                            const char *devid);

/** For the status page: sessions in progress and known devices. */
/** An administrator's report (memds-admin): which is "sessions" (in
 *  progress), "outbox" (ledger rows not yet acknowledged) or "push"
 *  (pending notifications with the device's channel); of account, or of
 *  all when NULL. *pcols: the column names (NULL-terminated); *prows:
 *  const char ** of ncols strings each. APR_EINVAL for another report. */
apr_status_t memds_store_report(memds_store_t *st, const char *const **pcols,
                                apr_array_header_t **prows, const char *which,
                                const char *account);
/** End the device's sessions in progress (they expire now): *pn ended. */
apr_status_t memds_store_end_sessions(memds_store_t *st, int *pn,
                                      const char *account, const char *devid);

/** One gauge of the operations tables (memds_store_gauges). */
typedef struct memds_gauge_t {
    const char *name;  /**< outbox, push_pending, wipe */
    const char *label; /**< the outbox state or wipe state, "" for none */
    apr_int64_t value;
} memds_gauge_t;
/** Rows of the outbox by state, pending push notifications, devices by
 *  wipe state (memds_gauge_t, by name and label). */
apr_status_t memds_store_gauges(memds_store_t *st, apr_array_header_t **prows);
apr_status_t memds_store_counts(memds_store_t *st, apr_int64_t *pactive,
                                apr_int64_t *pdevices);

/* ------------------------------------------------------------ devices */

typedef struct memds_device_t {
    apr_int64_t device_id;
    const char *account, *devid;
    int max_guid_size; /**< 0: no limit */
    int large_objs;
    const char *devinf; /**< XML, NULL if none */
    apr_size_t devinf_len;
    /** Remote wipe: NULL, "requested" or "wiped" (memds.devices.wipe). */
    const char *wipe;
} memds_device_t;

/** Find or create the device row of (account, devid), lock it (serialises
 *  the device's requests) and update last_seen_at. */
apr_status_t memds_store_device_lock(memds_store_t *st, memds_device_t *dev,
                                     const char *account, const char *devid);
/** A datastore of a device being wiped is done: its maps and anchors go;
 *  when nothing of the device is mapped or anchored any more, the device
 *  becomes "wiped". *premaining: datastores left. */
apr_status_t memds_store_wipe_store(memds_store_t *st, apr_int64_t device_id,
                                    const char *store, int *premaining);
/** The administrator's orders: "wipe" (request a wipe) or "enable" (clear
 *  a wipe); APR_ENOENT when there is no such device. */
apr_status_t memds_store_device_order(memds_store_t *st, const char *account,
                                      const char *devid, const char *order);
/** One device for the administrator (memds_store_devices). */
typedef struct memds_device_info_t {
    const char *account, *devid, *last_seen, *wipe, *wipe_requested, *wipe_done;
    const char
        *stores; /**< "store:mapped" of its datastores, comma-separated */
} memds_device_info_t;
/** The devices (of account, or all when NULL), as memds_device_info_t *. */
apr_status_t memds_store_devices(memds_store_t *st, apr_array_header_t **prows,
                                 const char *account);
/** Store the DevInf (xml NULL clears it); max_guid_size 0: no limit.
 *  APR_ENOENT if there is no such device. */
apr_status_t memds_store_device_set_devinf(memds_store_t *st,
                                           apr_int64_t device_id,
                                           const char *xml, apr_size_t len,
                                           int max_guid_size, int large_objs);

/* ----------------------------------------------------------- sessions */

typedef struct memds_session_row_t {
    apr_int64_t session_pk; /**< 0 for a session not yet inserted */
    const char *token;
    apr_int64_t device_id;
    const char *account, *devid; /**< of the device (read with the session) */
    const char *session_id, *version, *encoding, *phase;
    int client_msg_id, server_msg_id, max_msg_size;
    apr_int64_t max_obj_size; /**< -1: unknown */
    const char *request_sha1;
    /** The answer to request_sha1, for a retransmission: written by
     *  session_save; not read by session_by_token/by_sid (every request
     *  would read the last answer, up to MaxMsgSize, to use it only on a
     *  retransmission): memds_store_session_response reads it. */
    const char *response;
    apr_size_t response_len;
    int finished, expired;
    int server_cred; /**< 0 none, 1 our Cred sent, 2 accepted (schema/008) */
    apr_int64_t bytes_add; /**< bytes of this message and its answer, added
                              to memds.session_usage by session_save */
} memds_session_row_t;

/** The session of a RespURI token, locked; APR_ENOENT if none. Expired
 *  sessions are returned with expired = 1. */
apr_status_t memds_store_session_by_token(memds_store_t *st,
                                          memds_session_row_t *row,
                                          const char *token);
/** The newest session of a device with this SessionID, locked; APR_ENOENT. */
apr_status_t memds_store_session_by_sid(memds_store_t *st,
                                        memds_session_row_t *row,
                                        apr_int64_t device_id,
                                        const char *session_id);
/** The stored answer of row's session (row->response, response_len);
 *  APR_ENOENT when there is none: the session is gone, or its answer is
 *  (memds.session_answers is UNLOGGED: crash recovery empties it). */
apr_status_t memds_store_session_response(memds_store_t *st,
                                          memds_session_row_t *row);
/** Insert (row->session_pk == 0; sets it) or update a session; expires_at
 *  becomes now() + timeout_secs. The token is the caller's (stored as is,
 *  never changed by an update). NULL request_sha1/response are stored as
 *  empty. APR_ENOENT when updating a session_pk that does not exist. */
apr_status_t memds_store_session_save(memds_store_t *st,
                                      memds_session_row_t *row,
                                      int timeout_secs);
/** memds_store_session_save and memds_store_commit in one round trip
 *  (the request's last two statements). APR_ENOENT when updating a
 *  session_pk that does not exist: the transaction is committed then
 *  (only a caller that holds the session's row lock, as the engine does,
 *  should use it). */
apr_status_t memds_store_session_save_commit(memds_store_t *st,
                                             memds_session_row_t *row,
                                             int timeout_secs);
/** Delete sessions whose expires_at passed; *pn = how many. */
apr_status_t memds_store_sessions_expire(memds_store_t *st, int *pn);

/* ------------------------------------------------ session datastores */

typedef struct memds_sstore_t {
    const char *store, *client_uri, *server_uri;
    int alert_code;
    int slow;
    const char *client_next, *server_next;
    apr_int64_t snapshot_seq; /**< -1: none */
    int queue_built;
    /** The filter of the Alert (with the administrator's limits) in the
     *  compact form of ds/memds_dsfilter.h, NULL for none. */
    const char *filter;
    /** Every queue row with n <= sent_upto is sent (schema/021); 0: none. */
    int sent_upto;
    /** Rows the last message that moved sent_upto covered (schema/027): the
     *  next message reads about that many first; 0: none yet. */
    int last_rows;
    /** What opening the datastore needs of the device's DevInf, in the
     *  engine's compact form (schema/028, eng_client_caps); NULL: not read
     *  yet in this session. */
    const char *client_caps;
} memds_sstore_t;

/** All datastores of a session (memds_sstore_t *), in store order. */
apr_status_t memds_store_sstores_load(memds_store_t *st,
                                      apr_array_header_t **pstores,
                                      apr_int64_t session_pk);
/** Insert or update one. */
apr_status_t memds_store_sstore_save(memds_store_t *st, apr_int64_t session_pk,
                                     const memds_sstore_t *ss);

/* ------------------------------------------------------------- queue */

/** SOFTDELETE: a Delete with SftDel (the item left the device's filter
 *  window); REFETCH: a Replace with the whole content at the session's
 *  level (get-more), never a flags-only update. */
typedef enum {
    MEMDS_Q_ADD = 0,
    MEMDS_Q_REPLACE,
    MEMDS_Q_DELETE,
    MEMDS_Q_SOFTDELETE,
    MEMDS_Q_REFETCH
} memds_qop_e;

typedef struct memds_qitem_t {
    const char *store;
    int n;
    memds_qop_e op;
    const char *guid, *luid; /**< luid NULL for add */
    apr_int64_t sent_bytes;
    int sent_msg_id; /**< 0: not completely sent */
    int status;      /**< 0: no status yet */
    int dirty;       /**< engine bookkeeping: changed, not yet stored */
    int covered;     /**< engine bookkeeping: sent, and within its
                          datastore's sent_upto: no row write needed */
} memds_qitem_t;

apr_status_t memds_store_queue_add(memds_store_t *st, apr_int64_t session_pk,
                                   const memds_qitem_t *q);
/** Items of store after position `after` (its sent_upto, or the last
 *  one read) not completely sent on their own (sent_msg_id 0), in order,
 *  at most limit. store NULL: of every store (by store, then n), after
 *  each store's sent_upto; limit <= 0: no limit. */
apr_status_t memds_store_queue_unsent(memds_store_t *st,
                                      apr_array_header_t **pitems,
                                      apr_int64_t session_pk, const char *store,
                                      int after, int limit);
/** The item with this store and guid or luid (whichever is not NULL;
 *  guid wins when both are given); a guid "#n" is the temporary id of
 *  queue position n; APR_ENOENT if none. */
apr_status_t memds_store_queue_find(memds_store_t *st, memds_qitem_t *q,
                                    apr_int64_t session_pk, const char *store,
                                    const char *guid, const char *luid);
/** Update the item (session_pk, q->store, q->n) to q's fields;
 *  APR_ENOENT if there is no such item. */
apr_status_t memds_store_queue_update(memds_store_t *st, apr_int64_t session_pk,
                                      const memds_qitem_t *q);
/** Whether the session has queue items still unsent (all stores: after
 *  their store's sent_upto, sent_msg_id 0): *pn is 1 if any, 0 if none. */
apr_status_t memds_store_queue_count_unsent(memds_store_t *st, int *pn,
                                            apr_int64_t session_pk);

/** Items of store not taken by the device: no status, or an error. */
apr_status_t memds_store_queue_count_failed(memds_store_t *st, int *pn,
                                            apr_int64_t session_pk,
                                            const char *store);

/* --------------------------------------------- slow-sync "seen" set */

/* The slow-sync "seen" set (memds.session_seen) is written and read in
 * batches: memds_store_seen_add_many, memds_store_seen_load. */

/* --------------------------------------------------- suspend/resume */

/** The newest suspended, unexpired session of the device that has store
 *  (other than except), locked; APR_ENOENT if none. */
apr_status_t memds_store_suspended_find(memds_store_t *st, apr_int64_t *pold,
                                        apr_int64_t device_id,
                                        const char *store, apr_int64_t except);
/** Move what store still had to do in session old_pk into new_pk: the
 *  unacknowledged send queue, the slow-sync set, a partial large object;
 *  the old session forgets store (and ends when nothing is left). The
 *  caller saves the new session's datastore row itself. */
apr_status_t memds_store_resume_copy(memds_store_t *st, apr_int64_t new_pk,
                                     apr_int64_t old_pk, const char *store);

/* ------------------------------------------------------------ batches */
/* One statement for many rows, for the engine's per-message loops. */

/** Value of an int64 array element that is SQL NULL. */
#define MEMDS_STORE_NULL APR_INT64_MIN

/** map_put for n pairs at once (the last pair wins on repeats). */
apr_status_t memds_store_map_put_many(memds_store_t *st, apr_int64_t device_id,
                                      const char *store,
                                      const char *const *guids,
                                      const char *const *luids, int n);
/** Every map of the device's store: guid -> luid. */
/** The maps of those n luids only (guid -> luid), by the unique index. */
apr_status_t memds_store_maps_of_luids(memds_store_t *st, apr_hash_t **pmap,
                                       apr_int64_t device_id,
                                       const char *store,
                                       const char *const *luids, int n);
apr_status_t memds_store_maps_load(memds_store_t *st, apr_hash_t **pmap,
                                   apr_int64_t device_id, const char *store);
/** Remember that the device has these GUIDs (slow or refresh-from-client
 *  sync), so they are not sent back to it. */
apr_status_t memds_store_seen_add_many(memds_store_t *st,
                                       apr_int64_t session_pk,
                                       const char *store,
                                       const char *const *guids, int n);
/** The slow-sync set of a session's store: guid -> "". */
apr_status_t memds_store_seen_load(memds_store_t *st, apr_hash_t **pset,
                                   apr_int64_t session_pk, const char *store);
/** queue_add for an array of memds_qitem_t *. */
apr_status_t memds_store_queue_add_many(memds_store_t *st,
                                        apr_int64_t session_pk,
                                        const apr_array_header_t *items);
/** queue_update (sent_bytes, sent_msg_id, status) for memds_qitem_t *. */
apr_status_t memds_store_queue_update_many(memds_store_t *st,
                                           apr_int64_t session_pk,
                                           const apr_array_header_t *items);
/** Record the device's statuses: refs[i] is a GUID or "#n" (or NULL, then
 *  luids[i] names the item), codes[i] the status. */
apr_status_t memds_store_queue_status_many(memds_store_t *st,
                                           apr_int64_t session_pk,
                                           const char *const *refs,
                                           const char *const *luids,
                                           const apr_int64_t *codes, int n);

/* ------------------------------------------------- partial large object */

typedef struct memds_partial_t {
    const char *store, *cmd, *luid, *content_type;
    apr_int64_t total_size;
    const char *data;
    apr_size_t len;
} memds_partial_t;

/** APR_ENOENT when the session has no partial item for store. */
apr_status_t memds_store_partial_get(memds_store_t *st, memds_partial_t *pt,
                                     apr_int64_t session_pk, const char *store);
/** Insert, or append data to, the partial item (other fields from pt). */
apr_status_t memds_store_partial_append(memds_store_t *st,
                                        apr_int64_t session_pk,
                                        const memds_partial_t *pt,
                                        const char *data, apr_size_t len);
apr_status_t memds_store_partial_drop(memds_store_t *st, apr_int64_t session_pk,
                                      const char *store);

/* ----------------------------------------------------- anchors and maps */

typedef struct memds_syncstate_t {
    const char *client_uri, *last_client_anchor, *last_server_anchor;
    apr_int64_t last_seq;
    /** The EXCLUSIVE filter of the last completed session (compact form),
     *  NULL: none (the device had the whole datastore). */
    const char *filter;
} memds_syncstate_t;

/** APR_ENOENT when the device never completed a sync of store. */
apr_status_t memds_store_syncstate_get(memds_store_t *st, memds_syncstate_t *ss,
                                       apr_int64_t device_id,
                                       const char *store);
apr_status_t memds_store_syncstate_put(memds_store_t *st, apr_int64_t device_id,
                                       const char *store,
                                       const memds_syncstate_t *ss);

/** The GUID mapped to luid (APR_ENOENT if none). */
apr_status_t memds_store_map_guid(memds_store_t *st, const char **pguid,
                                  apr_int64_t device_id, const char *store,
                                  const char *luid);
/** The LUID mapped to guid (APR_ENOENT if none). */
apr_status_t memds_store_map_luid(memds_store_t *st, const char **pluid,
                                  apr_int64_t device_id, const char *store,
                                  const char *guid);
/** Map guid <-> luid, replacing earlier maps of either. */
apr_status_t memds_store_map_put(memds_store_t *st, apr_int64_t device_id,
                                 const char *store, const char *guid,
                                 const char *luid);
apr_status_t memds_store_map_del(memds_store_t *st, apr_int64_t device_id,
                                 const char *store, const char *guid);
/** Forget every map of the device's store (refresh from server). */
apr_status_t memds_store_map_clear(memds_store_t *st, apr_int64_t device_id,
                                   const char *store);

/* ------------------------------------------------- the items datastore */

typedef struct memds_item_row_t {
    const char *guid, *content_type;
    const char *data;
    apr_size_t len;
    apr_int64_t seq;
    int deleted;
    apr_int64_t changed_by; /**< 0: unknown source */
} memds_item_row_t;

/** Current value of the change sequence (changes with seq <= it are visible).
 *  Every change with seq <= it is committed, rolled back, or the caller's
 *  own: a change still open in another transaction keeps it below that
 *  change's seq (so it can be lower than the caller's own latest changes). */
apr_status_t memds_store_items_seq(memds_store_t *st, apr_int64_t *pseq);
/** Items of (account, store) with since < seq <= upto, tombstones included,
 *  without data (memds_item_row_t *), in seq order. since -1: all live items.
 *  The rows' data is NULL and len is the item's size in bytes. */
apr_status_t memds_store_items_changed(memds_store_t *st,
                                       apr_array_header_t **prows,
                                       const char *account, const char *store,
                                       apr_int64_t since, apr_int64_t upto);
/** One item with its data (tombstones too); APR_ENOENT if unknown. */
apr_status_t memds_store_items_get(memds_store_t *st, memds_item_row_t *row,
                                   const char *account, const char *store,
                                   const char *guid);
/** The rows of these n guids (those that exist, any order), in one
 *  statement: *prows holds memds_item_row_t *. */
apr_status_t memds_store_items_get_many(memds_store_t *st,
                                        apr_array_header_t **prows,
                                        const char *account, const char *store,
                                        const char *const *guids, int n);
/** A live item with exactly these bytes that no map of device_id points to
 *  (slow-sync matching); APR_ENOENT if none. */
apr_status_t memds_store_items_match(memds_store_t *st, const char **pguid,
                                     const char *account, const char *store,
                                     apr_int64_t device_id, const char *data,
                                     apr_size_t len);
/** New item; *pguid receives its new GUID: the decimal text of the item's
 *  first change sequence value (short, so that it fits MaxGUIDSize). */
apr_status_t memds_store_items_add(memds_store_t *st, const char **pguid,
                                   const char *account, const char *store,
                                   const char *content_type, const char *data,
                                   apr_size_t len, apr_int64_t changed_by);
/** Replace the bytes of an item (reviving a tombstone); APR_ENOENT if the
 *  GUID is unknown. */
apr_status_t memds_store_items_replace(memds_store_t *st, const char *account,
                                       const char *store, const char *guid,
                                       const char *content_type,
                                       const char *data, apr_size_t len,
                                       apr_int64_t changed_by);
/** Make an item a tombstone; APR_ENOENT if it is unknown or deleted. */
apr_status_t memds_store_items_delete(memds_store_t *st, const char *account,
                                      const char *store, const char *guid,
                                      apr_int64_t changed_by);
/** Slow-sync matching of n items in one statement: for each data[i],
 *  the live item first in seq order whose SHA-1 equals that of data[i]
 *  and that no map of device_id points to: pguids[i] its GUID (NULL for
 *  none) and pdata[i], plens[i] its bytes, which the caller compares (a
 *  SHA-1 collision must not match). The arrays are the caller's. */
apr_status_t memds_store_items_match_many(memds_store_t *st,
                                          const char *account,
                                          const char *store,
                                          apr_int64_t device_id, int n,
                                          const char *const *data,
                                          const apr_size_t *lens,
                                          const char **pguids,
                                          const char **pdata,
                                          apr_size_t *plens);
/** n new items in one statement, as memds_store_items_add each in order:
 *  pguids[i] (the caller's array) receives the GUID of item i. */
apr_status_t memds_store_items_add_many(memds_store_t *st, const char *account,
                                        const char *store, int n,
                                        const char *const *types,
                                        const char *const *data,
                                        const apr_size_t *lens,
                                        apr_int64_t changed_by,
                                        const char **pguids);

#endif /* MEMDS_STORE_H */
