/* memds_sessdb_pg.c: the engine's session store in PostgreSQL: each
 * operation is the store function of the same name (store/memds_store.c)
 * on the request's connection and transaction; the datastores are opened
 * on the same store (memds_ds_open). */
#include "ds/memds_sessdb.h"
#include "store/memds_watchstore.h"
#include "store/memds_throttle.h"

#include <apr_strings.h>

#define ST(db) ((memds_store_t *)(db)->impl)

/* Every call leaves the store's last error where the engine reads it. */
static apr_status_t done(memds_sessdb_t *db, apr_status_t rv)
{
    db->err = ST(db)->err;
    return rv;
}

static apr_status_t pg_begin(memds_sessdb_t *db)
{
    return done(db, memds_store_begin(ST(db)));
}

static apr_status_t pg_commit(memds_sessdb_t *db)
{
    return done(db, memds_store_commit(ST(db)));
}

static void pg_rollback(memds_sessdb_t *db)
{
    memds_store_rollback(ST(db));
}

static apr_status_t pg_auth_get(memds_sessdb_t *db, memds_auth_row_t *row,
                                const char *account, const char *devid)
{
    return done(db, memds_store_auth_get(ST(db), row, account, devid));
}

static apr_status_t pg_auth_set_nonce(memds_sessdb_t *db, const char *account,
                                      const char *devid, const char *nonce)
{
    return done(db, memds_store_auth_set_nonce(ST(db), account, devid, nonce));
}

static apr_status_t pg_auth_failed(memds_sessdb_t *db, const char *account,
                                   const char *devid, int max_failures,
                                   int window_secs, int block_secs)
{
    return done(db,
                memds_store_auth_failed(ST(db), account, devid, max_failures,
                                        window_secs, block_secs));
}

static apr_status_t pg_auth_ok(memds_sessdb_t *db, const char *account,
                               const char *devid)
{
    return done(db, memds_store_auth_ok(ST(db), account, devid));
}

static apr_status_t pg_md5_get(memds_sessdb_t *db, const char **pinner,
                               const char *account)
{
    return done(db, memds_store_md5_get(ST(db), pinner, account));
}

static apr_status_t pg_md5_put(memds_sessdb_t *db, const char *account,
                               const char *inner_b64, const char *source)
{
    return done(db, memds_store_md5_put(ST(db), account, inner_b64, source));
}

static apr_status_t pg_server_cred_get(memds_sessdb_t *db,
                                       memds_server_cred_t *row,
                                       const char *account, const char *devid)
{
    return done(db, memds_store_server_cred_get(ST(db), row, account, devid));
}

static apr_status_t pg_server_cred_nonce(memds_sessdb_t *db,
                                         const char *account, const char *devid,
                                         const char *nonce)
{
    return done(db,
                memds_store_server_cred_nonce(ST(db), account, devid, nonce));
}

static apr_status_t pg_server_cred_put(memds_sessdb_t *db, const char *account,
                                       const char *devid,
                                       const memds_server_cred_t *row)
{
    return done(db, memds_store_server_cred_put(ST(db), account, devid, row));
}

static apr_status_t pg_device_lock(memds_sessdb_t *db, memds_device_t *dev,
                                   const char *account, const char *devid)
{
    return done(db, memds_store_device_lock(ST(db), dev, account, devid));
}

static apr_status_t pg_device_set_devinf(memds_sessdb_t *db,
                                         apr_int64_t device_id, const char *xml,
                                         apr_size_t len, int max_guid_size,
                                         int large_objs)
{
    return done(db, memds_store_device_set_devinf(ST(db), device_id, xml, len,
                                                  max_guid_size, large_objs));
}

static apr_status_t pg_session_by_token(memds_sessdb_t *db,
                                        memds_session_row_t *row,
                                        const char *token)
{
    return done(db, memds_store_session_by_token(ST(db), row, token));
}

static apr_status_t pg_session_response(memds_sessdb_t *db,
                                        memds_session_row_t *row)
{
    return done(db, memds_store_session_response(ST(db), row));
}

static apr_status_t pg_session_by_sid(memds_sessdb_t *db,
                                      memds_session_row_t *row,
                                      apr_int64_t device_id,
                                      const char *session_id)
{
    return done(db,
                memds_store_session_by_sid(ST(db), row, device_id, session_id));
}

static apr_status_t pg_session_save(memds_sessdb_t *db,
                                    memds_session_row_t *row, int timeout_secs)
{
    return done(db, memds_store_session_save(ST(db), row, timeout_secs));
}

static apr_status_t pg_session_save_commit(memds_sessdb_t *db,
                                           memds_session_row_t *row,
                                           int timeout_secs)
{
    return done(db,
                memds_store_session_save_commit(ST(db), row, timeout_secs));
}

static apr_status_t pg_sessions_expire(memds_sessdb_t *db, int *pn)
{
    return done(db, memds_store_sessions_expire(ST(db), pn));
}

static apr_status_t pg_sstores_load(memds_sessdb_t *db,
                                    apr_array_header_t **pstores,
                                    apr_int64_t session_pk)
{
    return done(db, memds_store_sstores_load(ST(db), pstores, session_pk));
}

static apr_status_t pg_sstore_save(memds_sessdb_t *db, apr_int64_t session_pk,
                                   const memds_sstore_t *ss)
{
    return done(db, memds_store_sstore_save(ST(db), session_pk, ss));
}

static apr_status_t pg_suspended_find(memds_sessdb_t *db, apr_int64_t *pold,
                                      apr_int64_t device_id, const char *store,
                                      apr_int64_t except)
{
    return done(db, memds_store_suspended_find(ST(db), pold, device_id, store,
                                               except));
}

static apr_status_t pg_resume_copy(memds_sessdb_t *db, apr_int64_t new_pk,
                                   apr_int64_t old_pk, const char *store)
{
    return done(db, memds_store_resume_copy(ST(db), new_pk, old_pk, store));
}

static apr_status_t pg_queue_add_many(memds_sessdb_t *db,
                                      apr_int64_t session_pk,
                                      const apr_array_header_t *items)
{
    return done(db, memds_store_queue_add_many(ST(db), session_pk, items));
}

static apr_status_t pg_queue_unsent(memds_sessdb_t *db,
                                    apr_array_header_t **pitems,
                                    apr_int64_t session_pk, const char *store,
                                    int after, int limit)
{
    return done(db, memds_store_queue_unsent(ST(db), pitems, session_pk, store,
                                             after, limit));
}

static apr_status_t pg_queue_find(memds_sessdb_t *db, memds_qitem_t *q,
                                  apr_int64_t session_pk, const char *store,
                                  const char *guid, const char *luid)
{
    return done(db, memds_store_queue_find(ST(db), q, session_pk, store, guid,
                                           luid));
}

static apr_status_t pg_queue_update_many(memds_sessdb_t *db,
                                         apr_int64_t session_pk,
                                         const apr_array_header_t *items)
{
    return done(db, memds_store_queue_update_many(ST(db), session_pk, items));
}

static apr_status_t pg_queue_status_many(memds_sessdb_t *db,
                                         apr_int64_t session_pk,
                                         const char *const *refs,
                                         const char *const *luids,
                                         const apr_int64_t *codes, int n)
{
    return done(db, memds_store_queue_status_many(ST(db), session_pk, refs,
                                                  luids, codes, n));
}

static apr_status_t pg_queue_count_unsent(memds_sessdb_t *db, int *pn,
                                          apr_int64_t session_pk)
{
    return done(db, memds_store_queue_count_unsent(ST(db), pn, session_pk));
}

static apr_status_t pg_queue_count_failed(memds_sessdb_t *db, int *pn,
                                          apr_int64_t session_pk,
                                          const char *store)
{
    return done(db,
                memds_store_queue_count_failed(ST(db), pn, session_pk, store));
}

static apr_status_t pg_maps_load(memds_sessdb_t *db, apr_hash_t **pmap,
                                 apr_int64_t device_id, const char *store)
{
    return done(db, memds_store_maps_load(ST(db), pmap, device_id, store));
}

static apr_status_t pg_maps_of_luids(memds_sessdb_t *db, apr_hash_t **pmap,
                                     apr_int64_t device_id, const char *store,
                                     const char *const *luids, int n)
{
    return done(db, memds_store_maps_of_luids(ST(db), pmap, device_id, store,
                                              luids, n));
}

static apr_status_t pg_map_put_many(memds_sessdb_t *db, apr_int64_t device_id,
                                    const char *store, const char *const *guids,
                                    const char *const *luids, int n)
{
    return done(db, memds_store_map_put_many(ST(db), device_id, store, guids,
                                             luids, n));
}

static apr_status_t pg_map_del(memds_sessdb_t *db, apr_int64_t device_id,
                               const char *store, const char *guid)
{
    return done(db, memds_store_map_del(ST(db), device_id, store, guid));
}

static apr_status_t pg_map_clear(memds_sessdb_t *db, apr_int64_t device_id,
                                 const char *store)
{
    return done(db, memds_store_map_clear(ST(db), device_id, store));
}

static apr_status_t pg_seen_add_many(memds_sessdb_t *db, apr_int64_t session_pk,
                                     const char *store,
                                     const char *const *guids, int n)
{
    return done(db,
                memds_store_seen_add_many(ST(db), session_pk, store, guids, n));
}

static apr_status_t pg_seen_load(memds_sessdb_t *db, apr_hash_t **pset,
                                 apr_int64_t session_pk, const char *store)
{
    return done(db, memds_store_seen_load(ST(db), pset, session_pk, store));
}

static apr_status_t pg_partial_get(memds_sessdb_t *db, memds_partial_t *pt,
                                   apr_int64_t session_pk, const char *store)
{
    return done(db, memds_store_partial_get(ST(db), pt, session_pk, store));
}

static apr_status_t pg_partial_append(memds_sessdb_t *db,
                                      apr_int64_t session_pk,
                                      const memds_partial_t *pt,
                                      const char *data, apr_size_t len)
{
    return done(db,
                memds_store_partial_append(ST(db), session_pk, pt, data, len));
}

static apr_status_t pg_partial_drop(memds_sessdb_t *db, apr_int64_t session_pk,
                                    const char *store)
{
    return done(db, memds_store_partial_drop(ST(db), session_pk, store));
}

static apr_status_t pg_syncstate_get(memds_sessdb_t *db, memds_syncstate_t *ss,
                                     apr_int64_t device_id, const char *store)
{
    return done(db, memds_store_syncstate_get(ST(db), ss, device_id, store));
}

static apr_status_t pg_syncstate_put(memds_sessdb_t *db, apr_int64_t device_id,
                                     const char *store,
                                     const memds_syncstate_t *ss)
{
    return done(db, memds_store_syncstate_put(ST(db), device_id, store, ss));
}

static apr_status_t pg_wipe_store(memds_sessdb_t *db, apr_int64_t device_id,
                                  const char *store, int *premaining)
{
    return done(db,
                memds_store_wipe_store(ST(db), device_id, store, premaining));
}

static apr_status_t pg_limits_check(memds_sessdb_t *db, memds_usage_t *u,
                                    unsigned want, apr_int64_t device_id,
                                    const char *account, const char *devid)
{
    return done(db, memds_throttle_usage(ST(db), u, want, device_id, account,
                                         devid));
}

static apr_status_t pg_device_failed(memds_sessdb_t *db, int *pheld,
                                     const char *account, const char *devid,
                                     int max, int block_secs, const char *why)
{
    return done(db, memds_throttle_failed(ST(db), pheld, account, devid, max,
                                          block_secs, why));
}

static apr_status_t pg_device_reset(memds_sessdb_t *db, const char *account,
                                    const char *devid)
{
    return done(db, memds_throttle_reset(ST(db), account, devid));
}

static apr_status_t pg_quarantine_note(memds_sessdb_t *db,
                                       apr_array_header_t **prows,
                                       apr_int64_t session_pk,
                                       apr_int64_t device_id,
                                       const char *const *refs,
                                       const char *const *luids,
                                       const apr_int64_t *codes, int n,
                                       int threshold)
{
    return done(db, memds_quarantine_note(ST(db), prows, session_pk,
                                          device_id, refs, luids, codes, n,
                                          threshold));
}

static apr_status_t pg_quarantine_count(memds_sessdb_t *db, int *pheld,
                                        apr_int64_t device_id,
                                        const char *store, const char *guid,
                                        int status, const char *reason,
                                        int threshold)
{
    return done(db, memds_quarantine_count(ST(db), pheld, device_id, store,
                                           guid, status, reason, threshold));
}

static apr_status_t pg_quarantine_of(memds_sessdb_t *db, apr_hash_t **pset,
                                     apr_int64_t device_id, const char *store)
{
    return done(db, memds_quarantine_of(ST(db), pset, device_id, store));
}

static apr_status_t pg_quarantine_done(memds_sessdb_t *db,
                                       apr_int64_t session_pk,
                                       apr_int64_t device_id, const char *store)
{
    return done(db,
                memds_quarantine_done(ST(db), session_pk, device_id, store));
}

static apr_status_t pg_ds_open(memds_sessdb_t *db, memds_ds_t **pds,
                               const memds_ds_env_t *env, const char *account,
                               const char *store, apr_int64_t device_id,
                               apr_pool_t *p)
{
    return memds_ds_open(pds, env, ST(db), account, store, device_id, p);
}

static apr_status_t pg_push_watch_note(memds_sessdb_t *db, const char *account,
                                       const char *server)
{
    return done(db, memds_watch_note(ST(db), account, server));
}

static apr_status_t pg_push_register(memds_sessdb_t *db, const char *account,
                                     const char *devid, const char *channel,
                                     const char *address)
{
    return done(db,
                memds_push_register(ST(db), account, devid, channel, address));
}

static apr_status_t pg_push_pending(memds_sessdb_t *db,
                                    apr_array_header_t **prows,
                                    apr_int64_t device_id,
                                    apr_int64_t session_pk)
{
    return done(db,
                memds_push_pending_of(ST(db), prows, device_id, session_pk));
}

static apr_status_t pg_push_keep(memds_sessdb_t *db, apr_int64_t device_id,
                                 const memds_push_pend_t *row, int hold_ms)
{
    return done(db, memds_push_keep(ST(db), device_id, row, hold_ms));
}

static void pg_grown(memds_sessdb_t *db)
{
    memds_store_analyze(ST(db), "memds.maps (device_id)");
}

static const memds_sessdb_vt pg_vt = { "pg",
                                       pg_begin,
                                       pg_commit,
                                       pg_rollback,
                                       pg_auth_get,
                                       pg_auth_set_nonce,
                                       pg_auth_failed,
                                       pg_auth_ok,
                                       pg_md5_get,
                                       pg_md5_put,
                                       pg_server_cred_get,
                                       pg_server_cred_nonce,
                                       pg_server_cred_put,
                                       pg_device_lock,
                                       pg_device_set_devinf,
                                       pg_session_by_token,
                                       pg_session_by_sid,
                                       pg_session_save,
                                       pg_session_response,
                                       pg_sessions_expire,
                                       pg_sstores_load,
                                       pg_sstore_save,
                                       pg_suspended_find,
                                       pg_resume_copy,
                                       pg_queue_add_many,
                                       pg_queue_unsent,
                                       pg_queue_find,
                                       pg_queue_update_many,
                                       pg_queue_status_many,
                                       pg_queue_count_unsent,
                                       pg_queue_count_failed,
                                       pg_maps_load,
                                       pg_maps_of_luids,
                                       pg_map_put_many,
                                       pg_map_del,
                                       pg_map_clear,
                                       pg_seen_add_many,
                                       pg_seen_load,
                                       pg_partial_get,
                                       pg_partial_append,
                                       pg_partial_drop,
                                       pg_syncstate_get,
                                       pg_syncstate_put,
                                       pg_wipe_store,
                                       pg_push_watch_note,
                                       pg_push_register,
                                       pg_push_pending,
                                       pg_push_keep,
                                       pg_limits_check,
                                       pg_device_failed,
                                       pg_device_reset,
                                       pg_quarantine_note,
                                       pg_quarantine_count,
                                       pg_quarantine_of,
                                       pg_quarantine_done,
                                       pg_ds_open,
                                       pg_grown,
                                       pg_session_save_commit };

memds_sessdb_t *memds_sessdb_pg(memds_pgconn_t *conn, apr_pool_t *p)
{
    memds_sessdb_t *db = apr_pcalloc(p, sizeof(*db));
    memds_store_t *st = apr_pcalloc(p, sizeof(*st));

    memds_store_init(st, conn, p);
    db->vt = &pg_vt;
    db->pool = p;
    db->impl = st;
    return db;
}
