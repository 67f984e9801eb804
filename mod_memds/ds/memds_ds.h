/**
 * @file memds_ds.h
 * Datastores behind a vtable: the engine sees only these operations; the
 * items datastore (PostgreSQL, memds_ds_items.c) is one implementation, the
 * IMAP mailbox another (email issue).
 *
 * Change model: a datastore has a monotonically growing change sequence;
 * the engine asks for a snapshot value, then for the changes in
 * (since, snapshot], and remembers the snapshot as the device's state once
 * the session completes. Each change says which device made it so that a
 * device's own changes are not echoed back to it.
 */
#ifndef MEMDS_DS_H
#define MEMDS_DS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "store/memds_store.h"

typedef struct memds_ds_change_t {
    const char *guid;
    int deleted;
    apr_int64_t seq;
    apr_int64_t changed_by;   /**< device id, 0 unknown */
} memds_ds_change_t;

typedef struct memds_ds_t memds_ds_t;

typedef struct memds_ds_vt {
    const char *kind;
    /** Current change sequence. */
    apr_status_t (*snapshot)(memds_ds_t *ds, apr_int64_t *pseq);
    /** Changes (memds_ds_change_t *) with since < seq <= upto in seq order;
     *  since -1: every live item. */
    apr_status_t (*changes)(memds_ds_t *ds, apr_array_header_t **pchanges,
                            apr_int64_t since, apr_int64_t upto);
    /** An item's bytes and type; APR_ENOENT if unknown or deleted. */
    apr_status_t (*fetch)(memds_ds_t *ds, const char *guid, const char **pdata,
                          apr_size_t *plen, const char **ptype);
    apr_status_t (*add)(memds_ds_t *ds, const char **pguid, const char *type,
                        const char *data, apr_size_t len);
    apr_status_t (*replace)(memds_ds_t *ds, const char *guid, const char *type,
                            const char *data, apr_size_t len);
    /** APR_ENOENT when there is nothing to delete. */
    apr_status_t (*remove)(memds_ds_t *ds, const char *guid);
    /** A live item with the same content not mapped for this device. */
    apr_status_t (*match)(memds_ds_t *ds, const char **pguid, const char *data,
                          apr_size_t len);
} memds_ds_vt;

struct memds_ds_t {
    const memds_ds_vt *vt;
    memds_store_t *st;        /**< the request's store (same transaction) */
    const char *account, *store;
    apr_int64_t device_id;
    void *impl;
};

/** Open the datastore of kind ("items") for account/store on behalf of
 *  device_id; APR_ENOTIMPL for an unknown kind. */
apr_status_t memds_ds_open(memds_ds_t **pds, const char *kind,
                           memds_store_t *st, const char *account,
                           const char *store, apr_int64_t device_id,
                           apr_pool_t *p);

#endif /* MEMDS_DS_H */
