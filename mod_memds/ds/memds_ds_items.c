/* memds_ds_items.c: the "items" datastore: opaque items of any content type
 * per account and datastore name, kept in PostgreSQL (memds.items) in the
 * same transaction as the session state. */
#include "ds/memds_ds.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <string.h>

static apr_status_t items_snapshot(memds_ds_t *ds, apr_int64_t *pseq)
{
    return memds_store_items_seq(ds->st, pseq);
}

static apr_status_t items_changes(memds_ds_t *ds, apr_array_header_t **pchanges,
                                  apr_int64_t since, apr_int64_t upto)
{
    apr_array_header_t *rows, *out;
    apr_status_t rv;
    int i;

    rv = memds_store_items_changed(ds->st, &rows, ds->account, ds->store, since,
                                   upto);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    out = apr_array_make(ds->st->pool, rows->nelts + 1,
                         sizeof(memds_ds_change_t *));
    for (i = 0; i < rows->nelts; ++i) {
        const memds_item_row_t *r = APR_ARRAY_IDX(rows, i, memds_item_row_t *);
        memds_ds_change_push(out, r->guid, r->deleted, r->seq, r->changed_by);
    }
    *pchanges = out;
    return APR_SUCCESS;
}

static apr_status_t items_fetch(memds_ds_t *ds, const char *guid,
                                apr_int64_t known_seq, const char **pdata,
                                apr_size_t *plen, const char **ptype)
{
    memds_item_row_t row;
    const memds_item_row_t *ahead = ds->impl ? apr_hash_get(ds->impl, guid,
                                                            APR_HASH_KEY_STRING)
                                             : NULL;
    apr_status_t rv = APR_SUCCESS;

    (void)known_seq; /* opaque items always go whole */
    if (ahead) {
        row = *ahead; /* read ahead with the others of this message */
    }
    else {
        rv = memds_store_items_get(ds->st, &row, ds->account, ds->store, guid);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (row.deleted) {
        return APR_ENOENT;
    }
    *pdata = row.data;
    *plen = row.len;
    *ptype = row.content_type;
    return APR_SUCCESS;
}

static apr_status_t items_add(memds_ds_t *ds, const char **pguid,
                              const char *type, const char *data,
                              apr_size_t len)
{
    return memds_store_items_add(ds->st, pguid, ds->account, ds->store, type,
                                 data, len, ds->device_id);
}

/* A row read ahead is stale once the item changes: the next read goes to
 * the database. */
static void ahead_forget(memds_ds_t *ds, const char *guid)
{
    if (ds->impl) {
        apr_hash_set(ds->impl, guid, APR_HASH_KEY_STRING, NULL);
    }
}

static apr_status_t items_replace(memds_ds_t *ds, const char *guid,
                                  const char *type, const char *data,
                                  apr_size_t len)
{
    ahead_forget(ds, guid);
    return memds_store_items_replace(ds->st, ds->account, ds->store, guid, type,
                                     data, len, ds->device_id);
}

static apr_status_t items_remove(memds_ds_t *ds, const char *guid)
{
    ahead_forget(ds, guid);
    return memds_store_items_delete(ds->st, ds->account, ds->store, guid,
                                    ds->device_id);
}

static apr_status_t items_match(memds_ds_t *ds, const char **pguid,
                                const char *data, apr_size_t len)
{
    return memds_store_items_match(ds->st, pguid, ds->account, ds->store,
                                   ds->device_id, data, len);
}

static apr_status_t items_same(memds_ds_t *ds, const char *guid,
                               const char *type, const char *data,
                               apr_size_t len, int *psame)
{
    const char *odata, *otype;
    apr_size_t olen;
    apr_status_t rv = items_fetch(ds, guid, -1, &odata, &olen, &otype);

    (void)type;
    if (rv == APR_SUCCESS) {
        *psame = olen == len && memcmp(odata, data, len) == 0;
    }
    return rv;
}

static apr_status_t items_last_change(memds_ds_t *ds, const char *guid,
                                      apr_int64_t *pseq, apr_int64_t *pby)
{
    memds_item_row_t row;
    const memds_item_row_t *ahead = ds->impl ? apr_hash_get(ds->impl, guid,
                                                            APR_HASH_KEY_STRING)
                                             : NULL;
    apr_status_t rv = ahead ? APR_SUCCESS
                            : memds_store_items_get(ds->st, &row, ds->account,
                                                    ds->store, guid);

    if (rv == APR_SUCCESS) {
        *pseq = ahead ? ahead->seq : row.seq;
        *pby = ahead ? ahead->changed_by : row.changed_by;
    }
    return rv;
}

/* The items a message will carry, in one statement (fetch takes them from
 * here; the rows live as long as the request's store pool). */
static apr_status_t items_prefetch(memds_ds_t *ds, const char *const *guids,
                                   int n, apr_size_t max_bytes)
{
    apr_array_header_t *rows;
    apr_hash_t *h = ds->impl ? ds->impl : apr_hash_make(ds->st->pool);
    apr_size_t bytes = 0;
    int i;

    if (memds_store_items_get_many(ds->st, &rows, ds->account, ds->store, guids,
                                   n)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    apr_hash_clear(h);
    for (i = 0; i < rows->nelts && bytes <= max_bytes; ++i) {
        const memds_item_row_t *r = APR_ARRAY_IDX(rows, i, memds_item_row_t *);
        apr_hash_set(h, r->guid, APR_HASH_KEY_STRING, r);
        bytes += r->len;
    }
    ds->impl = h;
    return APR_SUCCESS;
}

/* Slow-sync matching of a message's items in one statement; a candidate
 * whose bytes differ (a SHA-1 collision) is left to items_match. */
static apr_status_t items_match_many(memds_ds_t *ds, int n,
                                     const char *const *data,
                                     const apr_size_t *lens,
                                     const char **pguids)
{
    const char **cdata = apr_palloc(ds->st->pool,
                                    sizeof(char *) * (apr_size_t)(n + 1));
    apr_size_t *clens = apr_palloc(ds->st->pool,
                                   sizeof(apr_size_t) * (apr_size_t)(n + 1));
    apr_status_t rv = memds_store_items_match_many(ds->st, ds->account,
                                                   ds->store, ds->device_id, n,
                                                   data, lens, pguids, cdata,
                                                   clens);
    int i;

    for (i = 0; rv == APR_SUCCESS && i < n; ++i) {
        if (pguids[i]
            && (clens[i] != lens[i]
                || memcmp(cdata[i], data[i], lens[i]) != 0)) {
            pguids[i] = "";
        }
    }
    return rv;
}

static apr_status_t items_add_many(memds_ds_t *ds, int n,
                                   const char *const *types,
                                   const char *const *data,
                                   const apr_size_t *lens, const char **pguids)
{
    return memds_store_items_add_many(ds->st, ds->account, ds->store, n, types,
                                      data, lens, ds->device_id, pguids);
}

static const memds_ds_batch_t items_batch = { items_match_many,
                                              items_add_many };

static const memds_ds_vt items_vt = { "items",        items_snapshot,
                                      items_changes,  items_fetch,
                                      items_add,      items_replace,
                                      items_remove,   items_match,
                                      items_same,     items_last_change,
                                      NULL,           0,
                                      NULL,           NULL,
                                      NULL,           NULL,
                                      items_prefetch, 0 };

static apr_status_t items_open(memds_ds_t *ds, const memds_ds_env_t *env,
                               apr_pool_t *p)
{
    (void)env;
    (void)p;
    ds->vt = &items_vt;
    return APR_SUCCESS;
}

const memds_ds_batch_t *memds_ds_batch_of(const memds_ds_t *ds)
{
    return ds->vt == &items_vt ? &items_batch : NULL;
}

const memds_ds_provider_t memds_ds_items_provider = { "items", "items", NULL,
                                                      items_open };
