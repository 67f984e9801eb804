/**
 * @file memds_sessdb.h
 * The engine's session store behind a vtable: everything the protocol
 * engine keeps between requests (authentication state, devices, sessions
 * with their stored answer, per-session datastores, the send queue, the
 * slow-sync set, partial large objects, anchors, LUID<->GUID maps) and the
 * datastores it opens in the same transaction.
 *
 * Two implementations: PostgreSQL (memds_sessdb_pg, over store/memds_store.h,
 * what the module uses) and one in memory (memds_sessdb_mem, APR hash tables
 * in a pool, with the "items" datastore in memory too: for unit tests and
 * tools that run the engine without a database).
 *
 * The row types are those of store/memds_store.h; the semantics of each
 * operation are those documented there (the names match: op here is
 * memds_store_op there). Results are allocated from db->pool. On
 * APR_EGENERAL, db->err says why (for the log, never sent to a device).
 */
#ifndef MEMDS_SESSDB_H
#define MEMDS_SESSDB_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_hash.h>
#include "store/memds_store.h"
#include "store/memds_throttle.h"
#include "store/memds_pushstore.h"
#include "ds/memds_ds.h"

typedef struct memds_sessdb_t memds_sessdb_t;

typedef struct memds_sessdb_vt {
    const char *name; /**< "pg" or "mem" */

    /* one transaction per request */
    apr_status_t (*begin)(memds_sessdb_t *db);
    apr_status_t (*commit)(memds_sessdb_t *db);
    /** Safe after an error or without an open transaction. */
    void (*rollback)(memds_sessdb_t *db);

    /* authentication state and md5 credentials */
    apr_status_t (*auth_get)(memds_sessdb_t *db, memds_auth_row_t *row,
                             const char *account, const char *devid);
    apr_status_t (*auth_set_nonce)(memds_sessdb_t *db, const char *account,
                                   const char *devid, const char *nonce);
    apr_status_t (*auth_failed)(memds_sessdb_t *db, const char *account,
                                const char *devid, int max_failures,
                                int window_secs, int block_secs);
    apr_status_t (*auth_ok)(memds_sessdb_t *db, const char *account,
                            const char *devid);
    apr_status_t (*md5_get)(memds_sessdb_t *db, const char **pinner,
                            const char *account);
    apr_status_t (*md5_put)(memds_sessdb_t *db, const char *account,
                            const char *inner_b64, const char *source);

    /* the server's credentials towards a device (memds.server_credentials):
     * answering a device that challenges the server */
    apr_status_t (*server_cred_get)(memds_sessdb_t *db,
                                    memds_server_cred_t *row,
                                    const char *account, const char *devid);
    apr_status_t (*server_cred_nonce)(memds_sessdb_t *db, const char *account,
                                      const char *devid, const char *nonce);
    apr_status_t (*server_cred_put)(memds_sessdb_t *db, const char *account,
                                    const char *devid,
                                    const memds_server_cred_t *row);

    /* devices and their DevInf */
    apr_status_t (*device_lock)(memds_sessdb_t *db, memds_device_t *dev,
                                const char *account, const char *devid);
    apr_status_t (*device_set_devinf)(memds_sessdb_t *db, apr_int64_t device_id,
                                      const char *xml, apr_size_t len,
                                      int max_guid_size, int large_objs);

    /* sessions, with the stored answer for retransmissions */
    apr_status_t (*session_by_token)(memds_sessdb_t *db,
                                     memds_session_row_t *row,
                                     const char *token);
    apr_status_t (*session_by_sid)(memds_sessdb_t *db, memds_session_row_t *row,
                                   apr_int64_t device_id,
                                   const char *session_id);
    apr_status_t (*session_save)(memds_sessdb_t *db, memds_session_row_t *row,
                                 int timeout_secs);
    /* the stored answer (row->response), read only to replay it */
    apr_status_t (*session_response)(memds_sessdb_t *db,
                                     memds_session_row_t *row);
    apr_status_t (*sessions_expire)(memds_sessdb_t *db, int *pn);

    /* the datastores of a session; suspend and resume */
    apr_status_t (*sstores_load)(memds_sessdb_t *db,
                                 apr_array_header_t **pstores,
                                 apr_int64_t session_pk);
    apr_status_t (*sstore_save)(memds_sessdb_t *db, apr_int64_t session_pk,
                                const memds_sstore_t *ss);
    apr_status_t (*suspended_find)(memds_sessdb_t *db, apr_int64_t *pold,
                                   apr_int64_t device_id, const char *store,
                                   apr_int64_t except);
    apr_status_t (*resume_copy)(memds_sessdb_t *db, apr_int64_t new_pk,
                                apr_int64_t old_pk, const char *store);

    /* the change queue (package 4) and the device's statuses for it */
    apr_status_t (*queue_add_many)(memds_sessdb_t *db, apr_int64_t session_pk,
                                   const apr_array_header_t *items);
    /* (after: rows with a greater n; see memds_store_queue_unsent) */
    apr_status_t (*queue_unsent)(memds_sessdb_t *db,
                                 apr_array_header_t **pitems,
                                 apr_int64_t session_pk, const char *store,
                                 int after, int limit);
    apr_status_t (*queue_find)(memds_sessdb_t *db, memds_qitem_t *q,
                               apr_int64_t session_pk, const char *store,
                               const char *guid, const char *luid);
    apr_status_t (*queue_update_many)(memds_sessdb_t *db,
                                      apr_int64_t session_pk,
                                      const apr_array_header_t *items);
    apr_status_t (*queue_status_many)(memds_sessdb_t *db,
                                      apr_int64_t session_pk,
                                      const char *const *refs,
                                      const char *const *luids,
                                      const apr_int64_t *codes, int n);
    apr_status_t (*queue_count_unsent)(memds_sessdb_t *db, int *pn,
                                       apr_int64_t session_pk);
    apr_status_t (*queue_count_failed)(memds_sessdb_t *db, int *pn,
                                       apr_int64_t session_pk,
                                       const char *store);

    /* maps and the slow-sync "seen" set */
    apr_status_t (*maps_load)(memds_sessdb_t *db, apr_hash_t **pmap,
                              apr_int64_t device_id, const char *store);
    /* (only the maps of those n luids, guid -> luid: what one message of
     * the device's changes needs, not all its maps every message) */
    apr_status_t (*maps_of_luids)(memds_sessdb_t *db, apr_hash_t **pmap,
                                  apr_int64_t device_id, const char *store,
                                  const char *const *luids, int n);
    apr_status_t (*map_put_many)(memds_sessdb_t *db, apr_int64_t device_id,
                                 const char *store, const char *const *guids,
                                 const char *const *luids, int n);
    apr_status_t (*map_del)(memds_sessdb_t *db, apr_int64_t device_id,
                            const char *store, const char *guid);
    apr_status_t (*map_clear)(memds_sessdb_t *db, apr_int64_t device_id,
                              const char *store);
    apr_status_t (*seen_add_many)(memds_sessdb_t *db, apr_int64_t session_pk,
                                  const char *store, const char *const *guids,
                                  int n);
    apr_status_t (*seen_load)(memds_sessdb_t *db, apr_hash_t **pset,
                              apr_int64_t session_pk, const char *store);

    /* a large object arriving in chunks */
    apr_status_t (*partial_get)(memds_sessdb_t *db, memds_partial_t *pt,
                                apr_int64_t session_pk, const char *store);
    apr_status_t (*partial_append)(memds_sessdb_t *db, apr_int64_t session_pk,
                                   const memds_partial_t *pt, const char *data,
                                   apr_size_t len);
    apr_status_t (*partial_drop)(memds_sessdb_t *db, apr_int64_t session_pk,
                                 const char *store);

    /* anchors and change positions of completed syncs */
    apr_status_t (*syncstate_get)(memds_sessdb_t *db, memds_syncstate_t *ss,
                                  apr_int64_t device_id, const char *store);
    apr_status_t (*syncstate_put)(memds_sessdb_t *db, apr_int64_t device_id,
                                  const char *store,
                                  const memds_syncstate_t *ss);

    /* remote wipe: a datastore of the device is done (maps and anchors
     * gone); the device becomes "wiped" when none is left */
    apr_status_t (*wipe_store)(memds_sessdb_t *db, apr_int64_t device_id,
                               const char *store, int *premaining);
    /* push: a session of account began where the IDLE watcher watches
     * the IMAP server server (MemDSPushWatch On) */
    apr_status_t (*push_watch_note)(memds_sessdb_t *db, const char *account,
                                    const char *server);

    /* push (docs/push.md): a device registers its own channel
     * (memds_push_register: channel NULL removes it, APR_ENOENT when there
     * is none); its pending notifications as its session ends
     * (memds_push_pending_of), and one put back that completing a sync
     * removed (memds_push_keep) */
    apr_status_t (*push_register)(memds_sessdb_t *db, const char *account,
                                  const char *devid, const char *channel,
                                  const char *address);
    apr_status_t (*push_pending)(memds_sessdb_t *db, apr_array_header_t **prows,
                                 apr_int64_t device_id, apr_int64_t session_pk);
    apr_status_t (*push_keep)(memds_sessdb_t *db, apr_int64_t device_id,
                              const memds_push_pend_t *row, int hold_ms);

    /* throttling, autoblock and quarantine (docs/throttle.md,
     * store/memds_throttle.h): a new session's usage and hold (one
     * statement); a failed session (outside the transaction: it survives
     * the refusal's rollback) and a completed one; the device's error
     * statuses for items, an item held at once, the held and released
     * items of a datastore, and the items a completed session delivered */
    apr_status_t (*limits_check)(memds_sessdb_t *db, memds_usage_t *u,
                                 unsigned want, apr_int64_t device_id,
                                 const char *account, const char *devid);
    apr_status_t (*device_failed)(memds_sessdb_t *db, int *pheld,
                                  const char *account, const char *devid,
                                  int max, int block_secs, const char *why);
    apr_status_t (*device_reset)(memds_sessdb_t *db, const char *account,
                                 const char *devid);
    apr_status_t (*quarantine_note)(memds_sessdb_t *db,
                                    apr_array_header_t **prows,
                                    apr_int64_t session_pk,
                                    apr_int64_t device_id,
                                    const char *const *refs,
                                    const char *const *luids,
                                    const apr_int64_t *codes, int n,
                                    int threshold);
    apr_status_t (*quarantine_count)(memds_sessdb_t *db, int *pheld,
                                     apr_int64_t device_id, const char *store,
                                     const char *guid, int status,
                                     const char *reason, int threshold);
    apr_status_t (*quarantine_of)(memds_sessdb_t *db, apr_hash_t **pset,
                                  apr_int64_t device_id, const char *store);
    apr_status_t (*quarantine_done)(memds_sessdb_t *db, apr_int64_t session_pk,
                                    apr_int64_t device_id, const char *store);

    /** Open the datastore of env->kind in this store's transaction;
     *  APR_ENOTIMPL for a kind this store cannot serve. */
    apr_status_t (*ds_open)(memds_sessdb_t *db, memds_ds_t **pds,
                            const memds_ds_env_t *env, const char *account,
                            const char *store, apr_int64_t device_id,
                            apr_pool_t *p);
    /** The device's maps have just grown by thousands of rows in this
     *  session (a first sync going down): bring the planner's statistics
     *  up to date in the request's transaction, so that their per-message
     *  lookups probe the device's keys instead of walking all its rows.
     *  Best effort. May be NULL. */
    void (*grown)(memds_sessdb_t *db);
    /** session_save, then commit, in one round trip (the session's row is
     *  locked by this transaction: its update cannot miss). May be NULL:
     *  the two calls. */
    apr_status_t (*session_save_commit)(memds_sessdb_t *db,
                                        memds_session_row_t *row,
                                        int timeout_secs);
} memds_sessdb_vt;

struct memds_sessdb_t {
    const memds_sessdb_vt *vt;
    apr_pool_t *pool; /**< the request's pool: results and errors */
    const char *err;  /**< last error, for the log */
    void *impl;
};

/** The PostgreSQL session store on conn (one request, in pool p). */
memds_sessdb_t *memds_sessdb_pg(memds_pgconn_t *conn, apr_pool_t *p);

/** The data of an in-memory session store: lives in the pool it is made
 *  in and grows with it (nothing is freed before the pool is). Not
 *  thread-safe: one request at a time. */
typedef struct memds_memdb_t memds_memdb_t;

memds_memdb_t *memds_memdb_create(apr_pool_t *p);

/** The administrator's order for a device of an in-memory store: "wipe"
 *  or "enable" (memds_store_device_order); APR_ENOENT: no such device. */
apr_status_t memds_memdb_device_order(memds_memdb_t *m, const char *account,
                                      const char *devid, const char *order);

/** Test helpers for push in an in-memory store: the device's channel
 *  (*pchannel NULL when none; APR_ENOENT: no such device), and a pending
 *  notification for a datastore of it made now (as memds_push_event). */
apr_status_t memds_memdb_push_channel(memds_memdb_t *m, const char *account,
                                      const char *devid, const char **pchannel,
                                      const char **paddress);
apr_status_t memds_memdb_push_pending(memds_memdb_t *m, const char *account,
                                      const char *devid, const char *store);

/** Test helpers for throttling in an in-memory store: hold a device
 *  (secs > 0 for that long, -1 until unblocked, 0 unblock); the
 *  quarantine state of an item (*pstate NULL when it has no row), and
 *  release the held items of a device (*pn how many). */
apr_status_t memds_memdb_device_hold(memds_memdb_t *m, const char *account,
                                     const char *devid, int secs);
void memds_memdb_quarantine_state(memds_memdb_t *m, apr_int64_t device_id,
                                  const char *store, const char *guid,
                                  const char **pstate, int *pcount);
int memds_memdb_quarantine_release(memds_memdb_t *m, apr_int64_t device_id);
/** Test helper: the "items" datastore cannot build (fetch fails with 500)
 *  the items whose data is data (NULL: none). */
void memds_memdb_break(memds_memdb_t *m, const char *data);
/** Test helper: how many rows of send queues queue_unsent has returned. */
apr_int64_t memds_memdb_queue_rows_read(const memds_memdb_t *m);

/** A session store over m for one request (results in p). Its "items"
 *  datastore keeps items in m as well. */
memds_sessdb_t *memds_sessdb_mem(memds_memdb_t *m, apr_pool_t *p);

#endif /* MEMDS_SESSDB_H */
