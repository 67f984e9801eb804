/**
 * @file memds_throttle.h
 * Throttling, autoblock and quarantine in PostgreSQL (schema/014,
 * docs/throttle.md): what a new session of a device has used (one
 * statement), devices held after failed sessions or by the administrator,
 * and server items that do not reach a device.
 */
#ifndef MEMDS_THROTTLE_H
#define MEMDS_THROTTLE_H

#include "store/memds_store.h"

/** What a device and its account have used, and whether the device is
 *  held: read when a session starts. *_wait: seconds until the oldest
 *  session counted leaves the window (at least 1). */
typedef struct memds_usage_t {
    int dev_min, acct_min; /**< sessions started in the last minute */
    int dev_min_wait, acct_min_wait;
    apr_int64_t dev_bytes, acct_bytes; /**< bytes of the last hour's sessions */
    int dev_bytes_wait, acct_bytes_wait;
    int dev_conc, acct_conc; /**< sessions in progress (not finished, not
                                suspended, not expired) */
    int held;                /**< the device is held (blocked) */
    int held_wait;           /**< seconds left; -1: until unblocked */
    const char *held_reason;
} memds_usage_t;

/** The figures of memds_usage_t a check needs (the limits set): */
#define MEMDS_USAGE_DEV_MIN 0x01u    /**< dev_min, dev_min_wait */
#define MEMDS_USAGE_ACCT_MIN 0x02u   /**< acct_min, acct_min_wait */
#define MEMDS_USAGE_DEV_CONC 0x04u   /**< dev_conc */
#define MEMDS_USAGE_ACCT_CONC 0x08u  /**< acct_conc */
#define MEMDS_USAGE_DEV_BYTES 0x10u  /**< dev_bytes, dev_bytes_wait */
#define MEMDS_USAGE_ACCT_BYTES 0x20u /**< acct_bytes, acct_bytes_wait */

/** One statement: the usage of device_id (account, devid) and its hold.
 *  Only the figures in want are counted (the others may be 0 or partial:
 *  the limits that are off cost nothing); the hold is always read. */
apr_status_t memds_throttle_usage(memds_store_t *st, memds_usage_t *u,
                                  unsigned want, apr_int64_t device_id,
                                  const char *account, const char *devid);

/** A failed session of (account, devid): count it; with max > 0 the
 *  max-th in a row holds the device for block_secs (0: until unblocked),
 *  *pheld 1 then (else 0) and the count starts again. An autocommit
 *  statement is fine (outside the request's transaction). */
apr_status_t memds_throttle_failed(memds_store_t *st, int *pheld,
                                   const char *account, const char *devid,
                                   int max, int block_secs, const char *why);

/** A completed session: the failures in a row start again from 0. */
apr_status_t memds_throttle_reset(memds_store_t *st, const char *account,
                                  const char *devid);

/** memds-admin block: hold (account, devid) until the time until
 *  (PostgreSQL timestamptz input; NULL: until unblocked). */
apr_status_t memds_throttle_block(memds_store_t *st, const char *account,
                                  const char *devid, const char *until,
                                  const char *reason);

/** memds-admin unblock: no longer held, failures (also the login
 *  failures of MemDSAuthLimit) forgotten. APR_ENOENT: nothing known. */
apr_status_t memds_throttle_unblock(memds_store_t *st, const char *account,
                                    const char *devid);

/** A device held now, for memds-admin devices. */
typedef struct memds_held_t {
    const char *account, *devid, *until, *reason, *since;
    int failed_sessions;
} memds_held_t;

/** Held devices (of account, all when NULL), memds_held_t *. */
apr_status_t memds_throttle_held(memds_store_t *st, apr_array_header_t **prows,
                                 const char *account);

/* ------------------------------------------------------------ quarantine */

/** A row of memds.quarantine. */
typedef struct memds_quar_t {
    const char *account, *devid; /**< (memds_quarantine_list only) */
    const char *store, *guid, *state, *reason;
    int last_status, count;
    const char *first_at, *last_at;
    int newly_held; /**< (memds_quarantine_note: held by this call) */
} memds_quar_t;

/** The device's statuses for the items of session_pk (as
 *  memds_store_queue_status_many): each error status (>= 300, not 418)
 *  counts a failure of the item; the threshold-th holds it. The items
 *  touched in *prows (memds_quar_t *, newly_held set), may be NULL. */
apr_status_t memds_quarantine_note(memds_store_t *st,
                                   apr_array_header_t **prows,
                                   apr_int64_t session_pk,
                                   apr_int64_t device_id,
                                   const char *const *refs,
                                   const char *const *luids,
                                   const apr_int64_t *codes, int n,
                                   int threshold);

/** A failure of an item the device did not get (its object cannot be
 *  built: threshold 1, held at once; its fetch made the backend fail):
 *  counted like an error status, the threshold-th holds it (*pheld 1
 *  then). Also as an autocommit statement, after a rollback. */
apr_status_t memds_quarantine_count(memds_store_t *st, int *pheld,
                                    apr_int64_t device_id, const char *store,
                                    const char *guid, int status,
                                    const char *reason, int threshold);

/** The items of the device's datastore held or released: a hash of guid
 *  to "held" or "released". */
apr_status_t memds_quarantine_of(memds_store_t *st, apr_hash_t **pset,
                                 apr_int64_t device_id, const char *store);

/** The session completed: the items of store it delivered (a success
 *  status) leave the quarantine table (counting or released). */
apr_status_t memds_quarantine_done(memds_store_t *st, apr_int64_t session_pk,
                                   apr_int64_t device_id, const char *store);

/** memds-admin quarantine: the rows (of account, of devid; NULL: all),
 *  memds_quar_t *, held and released first. */
apr_status_t memds_quarantine_list(memds_store_t *st,
                                   apr_array_header_t **prows,
                                   const char *account, const char *devid);

/** memds-admin quarantine --release: held items of account (devid, guid
 *  when not NULL) are sent again at the device's next sync; *pn how many. */
apr_status_t memds_quarantine_release(memds_store_t *st, int *pn,
                                      const char *account, const char *devid,
                                      const char *guid);

/** For the status page: items held, devices held now. */
apr_status_t memds_throttle_gauges(memds_store_t *st, apr_int64_t *pitems,
                                   apr_int64_t *pdevices);

#endif /* MEMDS_THROTTLE_H */
