/* memds_sessdb_mem.c: the engine's session store in memory (see
 * memds_sessdb.h), with an "items" datastore over the same tables.
 *
 * Every table is an APR hash with a composite key; values are never
 * changed in place (an update stores a new copy), so a transaction is a
 * shallow copy of the hashes taken at begin: rollback puts the copies back,
 * commit drops them. Everything lives in the memdb's pool. Strings handed
 * in are copied into it; results are copies in the request's pool (the
 * engine changes what it reads before saving it again). */
#include "ds/memds_sessdb.h"

#include <apr_strings.h>
#include <apr_time.h>
#include <stdlib.h>
#include <string.h>

typedef struct tables_t {
    apr_int64_t next_device, next_session, seq, tick;
    apr_hash_t *auth;      /* account, devid -> mauth_t */
    apr_hash_t *md5;       /* account -> inner value */
    apr_hash_t *srvcred;   /* account, devid -> memds_server_cred_t */
    apr_hash_t *devices;   /* account, devid -> memds_device_t */
    apr_hash_t *sessions;  /* pk -> msess_t */
    apr_hash_t *sstores;   /* pk, store -> msstore_t */
    apr_hash_t *queue;     /* pk, store, n -> mqueue_t */
    apr_hash_t *seen;      /* pk, store, guid -> mseen_t */
    apr_hash_t *partial;   /* pk, store -> memds_partial_t */
    apr_hash_t *syncstate; /* device, store -> memds_syncstate_t */
    apr_hash_t *g2l;       /* device, store, guid -> mmap_t */
    apr_hash_t *l2g;       /* device, store, luid -> mmap_t (the same) */
    apr_hash_t *items;     /* account, store, guid -> mitem_t */
    apr_hash_t *usage;     /* pk -> musage_t (schema/014) */
    apr_hash_t *quar;      /* device, store, guid -> mquar_t */
    apr_hash_t *pushch;    /* device -> mpushch_t */
    apr_hash_t *pushpend;  /* device, store -> memds_push_pend_t */
} tables_t;

struct memds_memdb_t {
    apr_pool_t *pool;
    tables_t t;     /* current */
    tables_t saved; /* at begin */
    int in_tx;
    const char *broken; /* items with this data cannot be fetched (tests) */
    apr_int64_t queue_rows_read; /* rows queue_unsent returned (tests) */
};

typedef struct mauth_t {
    const char *nonce;
    int failures;
    apr_time_t window_start, blocked_until;
    int failed_sessions;    /* in a row (MemDSAutoBlock) */
    apr_time_t held_until;  /* APR_INT64_MAX: until unblocked */
    const char *held_reason;
} mauth_t;

typedef struct musage_t {
    apr_int64_t device_id, bytes;
    const char *account;
    apr_time_t started;
} musage_t;

typedef struct mquar_t {
    apr_int64_t device_id;
    const char *store, *guid, *state, *reason;
    int last_status, count;
} mquar_t;

typedef struct msess_t {
    memds_session_row_t row;
    apr_time_t expires;
    apr_int64_t updated; /* tick of the last save */
    apr_int64_t created; /* tick of the first */
} msess_t;

typedef struct mpushch_t {
    const char *channel, *address;
} mpushch_t;

typedef struct msstore_t {
    apr_int64_t pk;
    memds_sstore_t ss;
} msstore_t;

typedef struct mqueue_t {
    apr_int64_t pk;
    memds_qitem_t q;
} mqueue_t;

typedef struct mseen_t {
    apr_int64_t pk;
    const char *store, *guid;
} mseen_t;

typedef struct mmap_t {
    apr_int64_t device_id;
    const char *store, *guid, *luid;
} mmap_t;

typedef struct mitem_t {
    const char *account, *store, *guid, *type, *data;
    apr_size_t len;
    apr_int64_t seq, changed_by;
    int deleted;
} mitem_t;

#define M(db) ((memds_memdb_t *)(db)->impl)
#define SEP "\x1f"

static const char *mdup(memds_memdb_t *m, const char *s)
{
    return s ? apr_pstrdup(m->pool, s) : NULL;
}

static const char *dupmem(memds_memdb_t *m, const char *s, apr_size_t len)
{
    char *d = apr_palloc(m->pool, len + 1);

    if (len) {
        memcpy(d, s, len);
    }
    d[len] = '\0';
    return d;
}

static const char *k2(memds_memdb_t *m, const char *a, const char *b)
{
    return apr_pstrcat(m->pool, a, SEP, b, NULL);
}

static const char *kn(memds_memdb_t *m, apr_int64_t n, const char *b)
{
    return apr_psprintf(m->pool, "%" APR_INT64_T_FMT SEP "%s", n, b ? b : "");
}

static const char *kn3(memds_memdb_t *m, apr_int64_t n, const char *b,
                       const char *c)
{
    return apr_psprintf(m->pool, "%" APR_INT64_T_FMT SEP "%s" SEP "%s", n, b,
                        c);
}

static void *get(apr_hash_t *h, const char *key)
{
    return apr_hash_get(h, key, APR_HASH_KEY_STRING);
}

static void put(apr_hash_t *h, const char *key, const void *v)
{
    apr_hash_set(h, key, APR_HASH_KEY_STRING, v);
}

static int eq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* ------------------------------------------------------- transactions */

static void tables_copy(tables_t *to, const tables_t *from, apr_pool_t *p)
{
    *to = *from;
    to->auth = apr_hash_copy(p, from->auth);
    to->md5 = apr_hash_copy(p, from->md5);
    to->srvcred = apr_hash_copy(p, from->srvcred);
    to->devices = apr_hash_copy(p, from->devices);
    to->sessions = apr_hash_copy(p, from->sessions);
    to->sstores = apr_hash_copy(p, from->sstores);
    to->queue = apr_hash_copy(p, from->queue);
    to->seen = apr_hash_copy(p, from->seen);
    to->partial = apr_hash_copy(p, from->partial);
    to->syncstate = apr_hash_copy(p, from->syncstate);
    to->g2l = apr_hash_copy(p, from->g2l);
    to->l2g = apr_hash_copy(p, from->l2g);
    to->items = apr_hash_copy(p, from->items);
    to->usage = apr_hash_copy(p, from->usage);
    to->quar = apr_hash_copy(p, from->quar);
    to->pushch = apr_hash_copy(p, from->pushch);
    to->pushpend = apr_hash_copy(p, from->pushpend);
}

static void mem_rollback(memds_sessdb_t *db)
{
    memds_memdb_t *m = M(db);

    if (m->in_tx) {
        m->t = m->saved;
        m->in_tx = 0;
    }
}

static apr_status_t mem_begin(memds_sessdb_t *db)
{
    memds_memdb_t *m = M(db);

    /* A request that ended without commit or rollback: as a connection
     * closed inside a transaction, nothing of it stays. */
    mem_rollback(db);
    tables_copy(&m->saved, &m->t, m->pool);
    m->in_tx = 1;
    return APR_SUCCESS;
}

static apr_status_t mem_commit(memds_sessdb_t *db)
{
    M(db)->in_tx = 0;
    return APR_SUCCESS;
}

/* --------------------------------------------------------------- auth */

static const mauth_t *auth_of(memds_memdb_t *m, const char *account,
                              const char *devid)
{
    return get(m->t.auth, k2(m, account, devid));
}

static mauth_t *auth_copy(memds_memdb_t *m, const char *account,
                          const char *devid)
{
    const mauth_t *old = auth_of(m, account, devid);
    mauth_t *a = apr_pcalloc(m->pool, sizeof(*a));

    if (old) {
        *a = *old;
    }
    else {
        a->nonce = "";
        a->window_start = apr_time_now();
    }
    put(m->t.auth, k2(m, account, devid), a);
    return a;
}

static apr_status_t mem_auth_get(memds_sessdb_t *db, memds_auth_row_t *row,
                                 const char *account, const char *devid)
{
    const mauth_t *a = auth_of(M(db), account, devid);

    row->nonce = a ? a->nonce : "";
    row->failures = a ? a->failures : 0;
    row->blocked = a && a->blocked_until > apr_time_now();
    return APR_SUCCESS;
}

static apr_status_t mem_auth_set_nonce(memds_sessdb_t *db, const char *account,
                                       const char *devid, const char *nonce)
{
    auth_copy(M(db), account, devid)->nonce = mdup(M(db), nonce ? nonce : "");
    return APR_SUCCESS;
}

static apr_status_t mem_auth_failed(memds_sessdb_t *db, const char *account,
                                    const char *devid, int max_failures,
                                    int window_secs, int block_secs)
{
    apr_time_t now = apr_time_now();
    int fresh = auth_of(M(db), account, devid) == NULL;
    mauth_t *a = auth_copy(M(db), account, devid);

    /* As memds_store_auth_failed: a failure after the window ended starts
     * a new window at 1; reaching max_failures blocks for block_secs. */
    if (fresh || a->window_start <= now - apr_time_from_sec(window_secs)) {
        a->failures = 1;
        a->window_start = now;
    }
    else {
        a->failures++;
    }
    if (max_failures > 0 && a->failures >= max_failures) {
        a->blocked_until = now + apr_time_from_sec(block_secs);
    }
    return APR_SUCCESS;
}

static apr_status_t mem_auth_ok(memds_sessdb_t *db, const char *account,
                                const char *devid)
{
    mauth_t *a = auth_copy(M(db), account, devid);

    a->failures = 0;
    a->window_start = apr_time_now();
    a->blocked_until = 0;
    return APR_SUCCESS;
}

static apr_status_t mem_md5_get(memds_sessdb_t *db, const char **pinner,
                                const char *account)
{
    const char *v = get(M(db)->t.md5, account);

    if (v == NULL) {
        return APR_ENOENT;
    }
    *pinner = v;
    return APR_SUCCESS;
}

static apr_status_t mem_md5_put(memds_sessdb_t *db, const char *account,
                                const char *inner_b64, const char *source)
{
    (void)source;
    put(M(db)->t.md5, mdup(M(db), account), mdup(M(db), inner_b64));
    return APR_SUCCESS;
}

static apr_status_t mem_server_cred_get(memds_sessdb_t *db,
                                        memds_server_cred_t *row,
                                        const char *account, const char *devid)
{
    const memds_server_cred_t *c = get(M(db)->t.srvcred,
                                       k2(M(db), account, devid));

    if (c == NULL) {
        return APR_ENOENT;
    }
    *row = *c;
    return APR_SUCCESS;
}

static apr_status_t mem_server_cred_put(memds_sessdb_t *db, const char *account,
                                        const char *devid,
                                        const memds_server_cred_t *row)
{
    memds_memdb_t *m = M(db);
    const memds_server_cred_t *old = get(m->t.srvcred, k2(m, account, devid));
    memds_server_cred_t *c = apr_pcalloc(m->pool, sizeof(*c));

    c->server_id = mdup(m, row->server_id);
    c->password = mdup(m, row->password);
    c->allow_basic = row->allow_basic;
    c->nonce = old ? old->nonce : ""; /* kept, as in PostgreSQL */
    put(m->t.srvcred, k2(m, account, devid), c);
    return APR_SUCCESS;
}

static apr_status_t mem_server_cred_nonce(memds_sessdb_t *db,
                                          const char *account,
                                          const char *devid, const char *nonce)
{
    memds_memdb_t *m = M(db);
    const memds_server_cred_t *old = get(m->t.srvcred, k2(m, account, devid));
    memds_server_cred_t *c;

    if (old) {
        c = apr_pmemdup(m->pool, old, sizeof(*c));
        c->nonce = mdup(m, nonce);
        put(m->t.srvcred, k2(m, account, devid), c);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ devices */

static const memds_device_t *device_by_id(memds_memdb_t *m, apr_int64_t id)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, m->t.devices); hi; hi = apr_hash_next(hi)) {
        const memds_device_t *d = apr_hash_this_val(hi);
        if (d->device_id == id) {
            return d;
        }
    }
    return NULL;
}

static apr_status_t mem_device_lock(memds_sessdb_t *db, memds_device_t *dev,
                                    const char *account, const char *devid)
{
    memds_memdb_t *m = M(db);
    const char *key = k2(m, account, devid);
    const memds_device_t *d = get(m->t.devices, key);

    if (d == NULL) {
        memds_device_t *n = apr_pcalloc(m->pool, sizeof(*n));
        n->device_id = ++m->t.next_device;
        n->account = mdup(m, account);
        n->devid = mdup(m, devid);
        put(m->t.devices, key, n);
        d = n;
    }
    *dev = *d;
    return APR_SUCCESS;
}

static apr_status_t mem_device_set_devinf(memds_sessdb_t *db,
                                          apr_int64_t device_id,
                                          const char *xml, apr_size_t len,
                                          int max_guid_size, int large_objs)
{
    memds_memdb_t *m = M(db);
    const memds_device_t *d = device_by_id(m, device_id);
    memds_device_t *n;

    if (d == NULL) {
        return APR_ENOENT;
    }
    n = apr_pmemdup(m->pool, d, sizeof(*n));
    n->devinf = xml ? dupmem(m, xml, len) : NULL;
    n->devinf_len = xml ? len : 0;
    n->max_guid_size = max_guid_size > 0 ? max_guid_size : 0;
    n->large_objs = large_objs;
    put(m->t.devices, k2(m, n->account, n->devid), n);
    return APR_SUCCESS;
}

/* ----------------------------------------------------------- sessions */

static void session_out(memds_memdb_t *m, memds_session_row_t *row,
                        const msess_t *s)
{
    const memds_device_t *d = device_by_id(m, s->row.device_id);

    *row = s->row;
    row->account = d ? d->account : "";
    row->devid = d ? d->devid : "";
    row->expired = s->expires <= apr_time_now();
}

static apr_status_t mem_session_by_token(memds_sessdb_t *db,
                                         memds_session_row_t *row,
                                         const char *token)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, M(db)->t.sessions); hi;
         hi = apr_hash_next(hi)) {
        const msess_t *s = apr_hash_this_val(hi);
        if (eq(s->row.token, token)) {
            session_out(M(db), row, s);
            return APR_SUCCESS;
        }
    }
    return APR_ENOENT;
}

static apr_status_t mem_session_by_sid(memds_sessdb_t *db,
                                       memds_session_row_t *row,
                                       apr_int64_t device_id,
                                       const char *session_id)
{
    apr_hash_index_t *hi;
    const msess_t *best = NULL;

    for (hi = apr_hash_first(NULL, M(db)->t.sessions); hi;
         hi = apr_hash_next(hi)) {
        const msess_t *s = apr_hash_this_val(hi);
        if (s->row.device_id == device_id && eq(s->row.session_id, session_id)
            && (!best || s->row.session_pk > best->row.session_pk)) {
            best = s;
        }
    }
    if (best == NULL) {
        return APR_ENOENT;
    }
    session_out(M(db), row, best);
    return APR_SUCCESS;
}

static apr_status_t mem_session_response(memds_sessdb_t *db,
                                         memds_session_row_t *row)
{
    (void)db;
    (void)row; /* (session_out copied it already) */
    return APR_SUCCESS;
}

static apr_status_t mem_session_save(memds_sessdb_t *db,
                                     memds_session_row_t *row, int timeout_secs)
{
    memds_memdb_t *m = M(db);
    msess_t *s = apr_pcalloc(m->pool, sizeof(*s));
    const msess_t *old = NULL;

    if (row->session_pk != 0) {
        old = get(m->t.sessions,
                  apr_psprintf(m->pool, "%" APR_INT64_T_FMT, row->session_pk));
        if (old == NULL) {
            return APR_ENOENT;
        }
    }
    s->row = *row;
    if (old) {
        s->row.token = old->row.token; /* never changed by an update */
        s->row.device_id = old->row.device_id;
    }
    else {
        s->row.session_pk = row->session_pk = ++m->t.next_session;
        s->row.token = mdup(m, row->token);
    }
    s->row.account = s->row.devid = NULL; /* read from the device */
    s->row.session_id = mdup(m, row->session_id);
    s->row.version = mdup(m, row->version);
    s->row.encoding = mdup(m, row->encoding);
    s->row.phase = mdup(m, row->phase);
    s->row.request_sha1 = mdup(m, row->request_sha1 ? row->request_sha1 : "");
    s->row.response_len = row->response ? row->response_len : 0;
    s->row.response = dupmem(m, row->response ? row->response : "",
                             s->row.response_len);
    s->row.expired = 0;
    s->expires = apr_time_now() + apr_time_from_sec(timeout_secs);
    s->updated = ++m->t.tick;
    s->created = old ? old->created : s->updated;
    {
        /* memds.session_usage: the session's start and bytes */
        const char *uk = apr_psprintf(m->pool, "%" APR_INT64_T_FMT,
                                      s->row.session_pk);
        const musage_t *ou = get(m->t.usage, uk);
        musage_t *u = apr_pcalloc(m->pool, sizeof(*u));
        const memds_device_t *d = device_by_id(m, s->row.device_id);
        if (ou) {
            *u = *ou;
        }
        else {
            u->device_id = s->row.device_id;
            u->account = d ? d->account : "";
            u->started = apr_time_now();
        }
        u->bytes += row->bytes_add;
        put(m->t.usage, uk, u);
    }
    put(m->t.sessions,
        apr_psprintf(m->pool, "%" APR_INT64_T_FMT, s->row.session_pk), s);
    return APR_SUCCESS;
}

/* Forget the session's datastores, queue, slow-sync set and partial item
 * (store NULL: of every datastore). */
static void drop_session_rows(memds_memdb_t *m, apr_int64_t pk,
                              const char *store)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, m->t.sstores); hi; hi = apr_hash_next(hi)) {
        const msstore_t *v = apr_hash_this_val(hi);
        if (v->pk == pk && (!store || eq(v->ss.store, store))) {
            put(m->t.sstores, apr_hash_this_key(hi), NULL);
        }
    }
    for (hi = apr_hash_first(NULL, m->t.queue); hi; hi = apr_hash_next(hi)) {
        const mqueue_t *v = apr_hash_this_val(hi);
        if (v->pk == pk && (!store || eq(v->q.store, store))) {
            put(m->t.queue, apr_hash_this_key(hi), NULL);
        }
    }
    for (hi = apr_hash_first(NULL, m->t.seen); hi; hi = apr_hash_next(hi)) {
        const mseen_t *v = apr_hash_this_val(hi);
        if (v->pk == pk && (!store || eq(v->store, store))) {
            put(m->t.seen, apr_hash_this_key(hi), NULL);
        }
    }
    for (hi = apr_hash_first(NULL, m->t.partial); hi; hi = apr_hash_next(hi)) {
        const char *k = apr_hash_this_key(hi);
        const char *want = kn(m, pk, store);
        if (store ? strcmp(k, want) == 0
                  : strncmp(k, want, strlen(want)) == 0) {
            put(m->t.partial, k, NULL);
        }
    }
}

static apr_status_t mem_sessions_expire(memds_sessdb_t *db, int *pn)
{
    memds_memdb_t *m = M(db);
    apr_hash_index_t *hi;
    apr_time_t now = apr_time_now();
    int n = 0;

    for (hi = apr_hash_first(NULL, m->t.sessions); hi; hi = apr_hash_next(hi)) {
        const msess_t *s = apr_hash_this_val(hi);
        if (s->expires <= now) {
            drop_session_rows(m, s->row.session_pk, NULL);
            put(m->t.sessions, apr_hash_this_key(hi), NULL);
            ++n;
        }
    }
    *pn = n;
    return APR_SUCCESS;
}

/* ------------------------------------------------ session datastores */

static int by_store(const void *a, const void *b)
{
    return strcmp((*(memds_sstore_t *const *)a)->store,
                  (*(memds_sstore_t *const *)b)->store);
}

static apr_status_t mem_sstores_load(memds_sessdb_t *db,
                                     apr_array_header_t **pstores,
                                     apr_int64_t session_pk)
{
    apr_array_header_t *arr = apr_array_make(db->pool, 4,
                                             sizeof(memds_sstore_t *));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, M(db)->t.sstores); hi;
         hi = apr_hash_next(hi)) {
        const msstore_t *v = apr_hash_this_val(hi);
        if (v->pk == session_pk) {
            APR_ARRAY_PUSH(arr, memds_sstore_t *) = apr_pmemdup(db->pool,
                                                                &v->ss,
                                                                sizeof(v->ss));
        }
    }
    qsort(arr->elts, (size_t)arr->nelts, sizeof(memds_sstore_t *), by_store);
    *pstores = arr;
    return APR_SUCCESS;
}

static apr_status_t mem_sstore_save(memds_sessdb_t *db, apr_int64_t session_pk,
                                    const memds_sstore_t *ss)
{
    memds_memdb_t *m = M(db);
    msstore_t *v = apr_pcalloc(m->pool, sizeof(*v));

    v->pk = session_pk;
    v->ss = *ss;
    v->ss.store = mdup(m, ss->store);
    v->ss.client_uri = mdup(m, ss->client_uri);
    v->ss.server_uri = mdup(m, ss->server_uri);
    v->ss.client_next = mdup(m, ss->client_next);
    v->ss.server_next = mdup(m, ss->server_next);
    v->ss.filter = ss->filter ? mdup(m, ss->filter) : NULL;
    v->ss.client_caps = ss->client_caps ? mdup(m, ss->client_caps) : NULL;
    put(m->t.sstores, kn(m, session_pk, ss->store), v);
    return APR_SUCCESS;
}

static apr_status_t mem_suspended_find(memds_sessdb_t *db, apr_int64_t *pold,
                                       apr_int64_t device_id, const char *store,
                                       apr_int64_t except)
{
    memds_memdb_t *m = M(db);
    apr_hash_index_t *hi;
    const msess_t *best = NULL;
    apr_time_t now = apr_time_now();

    for (hi = apr_hash_first(NULL, m->t.sessions); hi; hi = apr_hash_next(hi)) {
        const msess_t *s = apr_hash_this_val(hi);
        if (s->row.device_id == device_id && eq(s->row.phase, "suspended")
            && s->expires > now && s->row.session_pk != except
            && get(m->t.sstores, kn(m, s->row.session_pk, store))
            && (!best || s->updated > best->updated)) {
            best = s;
        }
    }
    if (best == NULL) {
        return APR_ENOENT;
    }
    *pold = best->row.session_pk;
    return APR_SUCCESS;
}

static apr_status_t mem_resume_copy(memds_sessdb_t *db, apr_int64_t new_pk,
                                    apr_int64_t old_pk, const char *store)
{
    memds_memdb_t *m = M(db);
    apr_hash_index_t *hi;
    const memds_partial_t *pt;

    for (hi = apr_hash_first(NULL, m->t.queue); hi; hi = apr_hash_next(hi)) {
        const mqueue_t *v = apr_hash_this_val(hi);
        if (v->pk == old_pk && eq(v->q.store, store) && v->q.status == 0) {
            mqueue_t *n = apr_pcalloc(m->pool, sizeof(*n));
            n->pk = new_pk;
            n->q.store = v->q.store;
            n->q.n = v->q.n;
            n->q.op = v->q.op;
            n->q.guid = v->q.guid;
            n->q.luid = v->q.luid;
            put(m->t.queue, kn3(m, new_pk, store, apr_itoa(m->pool, v->q.n)),
                n);
        }
    }
    for (hi = apr_hash_first(NULL, m->t.seen); hi; hi = apr_hash_next(hi)) {
        const mseen_t *v = apr_hash_this_val(hi);
        if (v->pk == old_pk && eq(v->store, store)) {
            mseen_t *n = apr_pmemdup(m->pool, v, sizeof(*v));
            n->pk = new_pk;
            put(m->t.seen, kn3(m, new_pk, store, v->guid), n);
        }
    }
    if ((pt = get(m->t.partial, kn(m, old_pk, store))) != NULL) {
        put(m->t.partial, kn(m, new_pk, store), pt);
    }
    put(m->t.sstores, kn(m, old_pk, store), NULL);
    for (hi = apr_hash_first(NULL, m->t.sstores); hi; hi = apr_hash_next(hi)) {
        if (((const msstore_t *)apr_hash_this_val(hi))->pk == old_pk) {
            return APR_SUCCESS;
        }
    }
    {
        /* a suspended session with nothing left to resume is over */
        const char *sk = apr_psprintf(m->pool, "%" APR_INT64_T_FMT, old_pk);
        const msess_t *s = get(m->t.sessions, sk);
        if (s) {
            msess_t *n = apr_pmemdup(m->pool, s, sizeof(*s));
            n->row.phase = "done";
            n->row.finished = 1;
            put(m->t.sessions, sk, n);
        }
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------- queue */

static apr_status_t mem_queue_add_many(memds_sessdb_t *db,
                                       apr_int64_t session_pk,
                                       const apr_array_header_t *items)
{
    memds_memdb_t *m = M(db);
    int i;

    for (i = 0; i < items->nelts; ++i) {
        const memds_qitem_t *q = APR_ARRAY_IDX(items, i, memds_qitem_t *);
        mqueue_t *v = apr_pcalloc(m->pool, sizeof(*v));
        v->pk = session_pk;
        v->q.store = mdup(m, q->store);
        v->q.n = q->n;
        v->q.op = q->op;
        v->q.guid = mdup(m, q->guid);
        v->q.luid = mdup(m, q->luid);
        put(m->t.queue, kn3(m, session_pk, q->store, apr_itoa(m->pool, q->n)),
            v);
    }
    return APR_SUCCESS;
}

static int by_store_n(const void *a, const void *b)
{
    const memds_qitem_t *x = *(memds_qitem_t *const *)a;
    const memds_qitem_t *y = *(memds_qitem_t *const *)b;
    int c = strcmp(x->store, y->store);

    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* The sent_upto of a session's datastore (schema/021): 0 when none. */
static int mem_sent_upto(memds_memdb_t *m, apr_int64_t pk, const char *store)
{
    const msstore_t *v = get(m->t.sstores, kn(m, pk, store));
    return v ? v->ss.sent_upto : 0;
}

static apr_status_t mem_queue_unsent(memds_sessdb_t *db,
                                     apr_array_header_t **pitems,
                                     apr_int64_t session_pk, const char *store,
                                     int after, int limit)
{
    apr_array_header_t *arr = apr_array_make(db->pool, 16,
                                             sizeof(memds_qitem_t *));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, M(db)->t.queue); hi;
         hi = apr_hash_next(hi)) {
        const mqueue_t *v = apr_hash_this_val(hi);
        if (v->pk == session_pk && (!store || eq(v->q.store, store))
            && v->q.n > (store ? after
                               : mem_sent_upto(M(db), session_pk, v->q.store))
            && v->q.sent_msg_id == 0) {
            APR_ARRAY_PUSH(arr, memds_qitem_t *) = apr_pmemdup(db->pool, &v->q,
                                                               sizeof(v->q));
        }
    }
    qsort(arr->elts, (size_t)arr->nelts, sizeof(memds_qitem_t *), by_store_n);
    if (limit > 0 && arr->nelts > limit) {
        arr->nelts = limit;
    }
    M(db)->queue_rows_read += arr->nelts;
    *pitems = arr;
    return APR_SUCCESS;
}

/* A temporary id "#n" (see memds_store_queue_find): n, or -1. */
static int temp_id(const char *guid)
{
    if (guid && guid[0] == '#' && guid[1]
        && strspn(guid + 1, "0123456789") == strlen(guid + 1)
        && strlen(guid) < 10) {
        return atoi(guid + 1);
    }
    return -1;
}

static apr_status_t mem_queue_find(memds_sessdb_t *db, memds_qitem_t *q,
                                   apr_int64_t session_pk, const char *store,
                                   const char *guid, const char *luid)
{
    apr_hash_index_t *hi;
    const mqueue_t *best = NULL;
    int n = temp_id(guid);

    if (guid == NULL && luid == NULL) {
        db->err = "store: queue_find: neither guid nor luid given";
        return APR_EGENERAL;
    }
    for (hi = apr_hash_first(NULL, M(db)->t.queue); hi;
         hi = apr_hash_next(hi)) {
        const mqueue_t *v = apr_hash_this_val(hi);
        if (v->pk != session_pk || !eq(v->q.store, store)) {
            continue;
        }
        if (n >= 0 ? v->q.n == n
            : guid ? eq(v->q.guid, guid)
                   : eq(v->q.luid, luid)) {
            if (!best || v->q.n < best->q.n) {
                best = v;
            }
        }
    }
    if (best == NULL) {
        return APR_ENOENT;
    }
    *q = best->q;
    return APR_SUCCESS;
}

static apr_status_t mem_queue_update_many(memds_sessdb_t *db,
                                          apr_int64_t session_pk,
                                          const apr_array_header_t *items)
{
    memds_memdb_t *m = M(db);
    int i;

    for (i = 0; i < items->nelts; ++i) {
        const memds_qitem_t *q = APR_ARRAY_IDX(items, i, memds_qitem_t *);
        const char *key = kn3(m, session_pk, q->store, apr_itoa(m->pool, q->n));
        const mqueue_t *v = get(m->t.queue, key);
        mqueue_t *n;
        if (v == NULL) {
            continue;
        }
        n = apr_pmemdup(m->pool, v, sizeof(*v));
        n->q.sent_bytes = q->sent_bytes;
        n->q.sent_msg_id = q->sent_msg_id > 0 ? q->sent_msg_id : 0;
        n->q.status = q->status > 0 ? q->status : 0;
        put(m->t.queue, key, n);
    }
    return APR_SUCCESS;
}

static apr_status_t mem_queue_status_many(memds_sessdb_t *db,
                                          apr_int64_t session_pk,
                                          const char *const *refs,
                                          const char *const *luids,
                                          const apr_int64_t *codes, int n)
{
    memds_memdb_t *m = M(db);
    apr_hash_index_t *hi;
    int i;

    for (i = 0; i < n; ++i) {
        int tn = temp_id(refs[i]);
        for (hi = apr_hash_first(NULL, m->t.queue); hi;
             hi = apr_hash_next(hi)) {
            const mqueue_t *v = apr_hash_this_val(hi);
            mqueue_t *nv;
            if (v->pk != session_pk
                || !(eq(v->q.guid, refs[i]) || (tn >= 0 && v->q.n == tn)
                     || (!refs[i] && eq(v->q.luid, luids[i])))) {
                continue;
            }
            nv = apr_pmemdup(m->pool, v, sizeof(*v));
            nv->q.status = (int)codes[i];
            put(m->t.queue, apr_hash_this_key(hi), nv);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t mem_queue_count_unsent(memds_sessdb_t *db, int *pn,
                                           apr_int64_t session_pk)
{
    apr_hash_index_t *hi;
    int n = 0;

    for (hi = apr_hash_first(NULL, M(db)->t.queue); hi;
         hi = apr_hash_next(hi)) {
        const mqueue_t *v = apr_hash_this_val(hi);
        n += v->pk == session_pk && v->q.sent_msg_id == 0
             && v->q.n > mem_sent_upto(M(db), session_pk, v->q.store);
    }
    *pn = n;
    return APR_SUCCESS;
}

/* ------------------------------------------- quarantine (schema/014) */

static const char *quar_key(memds_memdb_t *m, apr_int64_t device_id,
                            const char *store, const char *guid)
{
    return kn3(m, device_id, store, guid);
}

/* Is guid of store held for the device of session pk? */
static int quar_held(memds_memdb_t *m, apr_int64_t pk, const char *store,
                     const char *guid)
{
    const msess_t *s = get(m->t.sessions,
                           apr_psprintf(m->pool, "%" APR_INT64_T_FMT, pk));
    const mquar_t *z = s ? get(m->t.quar, quar_key(m, s->row.device_id, store,
                                                   guid))
                         : NULL;

    return z && strcmp(z->state, "held") == 0;
}

static apr_status_t mem_queue_count_failed(memds_sessdb_t *db, int *pn,
                                           apr_int64_t session_pk,
                                           const char *store)
{
    apr_hash_index_t *hi;
    int n = 0;

    for (hi = apr_hash_first(NULL, M(db)->t.queue); hi;
         hi = apr_hash_next(hi)) {
        const mqueue_t *v = apr_hash_this_val(hi);
        n += v->pk == session_pk && eq(v->q.store, store)
             && (v->q.status == 0
                 || (v->q.status >= 300 && v->q.status != 418))
             && !quar_held(M(db), session_pk, store, v->q.guid);
    }
    *pn = n;
    return APR_SUCCESS;
}

/* ------------------------------------------------------ maps and seen */

static void map_forget(memds_memdb_t *m, const mmap_t *x)
{
    if (x) {
        put(m->t.g2l, kn3(m, x->device_id, x->store, x->guid), NULL);
        put(m->t.l2g, kn3(m, x->device_id, x->store, x->luid), NULL);
    }
}

static apr_status_t mem_maps_load(memds_sessdb_t *db, apr_hash_t **pmap,
                                  apr_int64_t device_id, const char *store)
{
    apr_hash_t *h = apr_hash_make(db->pool);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, M(db)->t.g2l); hi; hi = apr_hash_next(hi)) {
        const mmap_t *x = apr_hash_this_val(hi);
        if (x->device_id == device_id && eq(x->store, store)) {
            put(h, x->guid, x->luid);
        }
    }
    *pmap = h;
    return APR_SUCCESS;
}

static apr_status_t mem_maps_of_luids(memds_sessdb_t *db, apr_hash_t **pmap,
                                      apr_int64_t device_id, const char *store,
                                      const char *const *luids, int n)
{
    apr_hash_t *h = apr_hash_make(db->pool);
    int i;

    for (i = 0; i < n; ++i) {
        const mmap_t *x = get(M(db)->t.l2g,
                              kn3(M(db), device_id, store, luids[i]));
        if (x) {
            put(h, x->guid, x->luid);
        }
    }
    *pmap = h;
    return APR_SUCCESS;
}

static apr_status_t mem_map_put_many(memds_sessdb_t *db, apr_int64_t device_id,
                                     const char *store,
                                     const char *const *guids,
                                     const char *const *luids, int n)
{
    memds_memdb_t *m = M(db);
    int i;

    /* One after the other: the last pair wins on repeats. */
    for (i = 0; i < n; ++i) {
        mmap_t *x = apr_pcalloc(m->pool, sizeof(*x));
        map_forget(m, get(m->t.g2l, kn3(m, device_id, store, guids[i])));
        map_forget(m, get(m->t.l2g, kn3(m, device_id, store, luids[i])));
        x->device_id = device_id;
        x->store = mdup(m, store);
        x->guid = mdup(m, guids[i]);
        x->luid = mdup(m, luids[i]);
        put(m->t.g2l, kn3(m, device_id, store, x->guid), x);
        put(m->t.l2g, kn3(m, device_id, store, x->luid), x);
    }
    return APR_SUCCESS;
}

static apr_status_t mem_map_del(memds_sessdb_t *db, apr_int64_t device_id,
                                const char *store, const char *guid)
{
    memds_memdb_t *m = M(db);

    map_forget(m, get(m->t.g2l, kn3(m, device_id, store, guid)));
    return APR_SUCCESS;
}

static apr_status_t mem_map_clear(memds_sessdb_t *db, apr_int64_t device_id,
                                  const char *store)
{
    memds_memdb_t *m = M(db);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, m->t.g2l); hi; hi = apr_hash_next(hi)) {
        const mmap_t *x = apr_hash_this_val(hi);
        if (x->device_id == device_id && eq(x->store, store)) {
            map_forget(m, x);
        }
    }
    return APR_SUCCESS;
}

/* A datastore of a device being wiped is done (memds_store_wipe_store). */
/* The in-memory store has no watcher: nothing to note. */
static apr_status_t mem_push_watch_note(memds_sessdb_t *db,
                                        const char *account, const char *server)
{
    (void)db;
    (void)account;
    (void)server;
    return APR_SUCCESS;
}

static apr_status_t mem_wipe_store(memds_sessdb_t *db, apr_int64_t device_id,
                                   const char *store, int *premaining)
{
    memds_memdb_t *m = M(db);
    apr_hash_t *left = apr_hash_make(db->pool);
    apr_hash_index_t *hi;
    const char *prefix = kn(m, device_id, "");
    const memds_device_t *d;

    mem_map_clear(db, device_id, store);
    apr_hash_set(m->t.syncstate, kn(m, device_id, store), APR_HASH_KEY_STRING,
                 NULL);
    for (hi = apr_hash_first(NULL, m->t.g2l); hi; hi = apr_hash_next(hi)) {
        const mmap_t *x = apr_hash_this_val(hi);
        if (x->device_id == device_id) {
            apr_hash_set(left, x->store, APR_HASH_KEY_STRING, "");
        }
    }
    for (hi = apr_hash_first(NULL, m->t.syncstate); hi;
         hi = apr_hash_next(hi)) {
        const char *k = apr_hash_this_key(hi);
        if (strncmp(k, prefix, strlen(prefix)) == 0) {
            apr_hash_set(left, k + strlen(prefix), APR_HASH_KEY_STRING, "");
        }
    }
    *premaining = (int)apr_hash_count(left);
    d = device_by_id(m, device_id);
    if (*premaining == 0 && d && d->wipe && strcmp(d->wipe, "requested") == 0) {
        memds_device_t *n = apr_pmemdup(m->pool, d, sizeof(*n));
        n->wipe = "wiped";
        put(m->t.devices, k2(m, n->account, n->devid), n);
    }
    return APR_SUCCESS;
}

apr_status_t memds_memdb_device_order(memds_memdb_t *m, const char *account,
                                      const char *devid, const char *order)
{
    const memds_device_t *d = get(m->t.devices, k2(m, account, devid));
    memds_device_t *n;

    if (d == NULL) {
        return APR_ENOENT;
    }
    n = apr_pmemdup(m->pool, d, sizeof(*n));
    n->wipe = strcmp(order, "wipe") == 0 ? "requested" : NULL;
    put(m->t.devices, k2(m, n->account, n->devid), n);
    return APR_SUCCESS;
}

static apr_status_t mem_seen_add_many(memds_sessdb_t *db,
                                      apr_int64_t session_pk, const char *store,
                                      const char *const *guids, int n)
{
    memds_memdb_t *m = M(db);
    int i;

    for (i = 0; i < n; ++i) {
        mseen_t *v = apr_pcalloc(m->pool, sizeof(*v));
        v->pk = session_pk;
        v->store = mdup(m, store);
        v->guid = mdup(m, guids[i]);
        put(m->t.seen, kn3(m, session_pk, store, guids[i]), v);
    }
    return APR_SUCCESS;
}

static apr_status_t mem_seen_load(memds_sessdb_t *db, apr_hash_t **pset,
                                  apr_int64_t session_pk, const char *store)
{
    apr_hash_t *h = apr_hash_make(db->pool);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, M(db)->t.seen); hi; hi = apr_hash_next(hi)) {
        const mseen_t *v = apr_hash_this_val(hi);
        if (v->pk == session_pk && eq(v->store, store)) {
            put(h, v->guid, "");
        }
    }
    *pset = h;
    return APR_SUCCESS;
}

/* ------------------------------------------------- partial large object */

static apr_status_t mem_partial_get(memds_sessdb_t *db, memds_partial_t *pt,
                                    apr_int64_t session_pk, const char *store)
{
    const memds_partial_t *v = get(M(db)->t.partial,
                                   kn(M(db), session_pk, store));

    if (v == NULL) {
        return APR_ENOENT;
    }
    *pt = *v;
    return APR_SUCCESS;
}

static apr_status_t mem_partial_append(memds_sessdb_t *db,
                                       apr_int64_t session_pk,
                                       const memds_partial_t *pt,
                                       const char *data, apr_size_t len)
{
    memds_memdb_t *m = M(db);
    const char *key = kn(m, session_pk, pt->store);
    const memds_partial_t *old = get(m->t.partial, key);
    memds_partial_t *v = apr_pcalloc(m->pool, sizeof(*v));
    char *all;

    if (old) {
        *v = *old;
    }
    else {
        v->store = mdup(m, pt->store);
        v->cmd = mdup(m, pt->cmd);
        v->luid = mdup(m, pt->luid);
        v->content_type = mdup(m, pt->content_type);
        v->total_size = pt->total_size;
        v->data = "";
        v->len = 0;
    }
    all = apr_palloc(m->pool, v->len + len + 1);
    memcpy(all, v->data, v->len);
    memcpy(all + v->len, data, len);
    all[v->len + len] = '\0';
    v->data = all;
    v->len += len;
    put(m->t.partial, key, v);
    return APR_SUCCESS;
}

static apr_status_t mem_partial_drop(memds_sessdb_t *db, apr_int64_t session_pk,
                                     const char *store)
{
    put(M(db)->t.partial, kn(M(db), session_pk, store), NULL);
    return APR_SUCCESS;
}

/* ----------------------------------------------------- anchors */

static apr_status_t mem_syncstate_get(memds_sessdb_t *db, memds_syncstate_t *ss,
                                      apr_int64_t device_id, const char *store)
{
    const memds_syncstate_t *v = get(M(db)->t.syncstate,
                                     kn(M(db), device_id, store));

    if (v == NULL) {
        return APR_ENOENT;
    }
    *ss = *v;
    return APR_SUCCESS;
}

static apr_status_t mem_syncstate_put(memds_sessdb_t *db, apr_int64_t device_id,
                                      const char *store,
                                      const memds_syncstate_t *ss)
{
    memds_memdb_t *m = M(db);
    memds_syncstate_t *v = apr_pcalloc(m->pool, sizeof(*v));

    v->client_uri = mdup(m, ss->client_uri);
    v->last_client_anchor = mdup(m, ss->last_client_anchor);
    v->last_server_anchor = mdup(m, ss->last_server_anchor);
    v->last_seq = ss->last_seq;
    v->filter = ss->filter ? mdup(m, ss->filter) : NULL;
    put(m->t.syncstate, kn(m, device_id, store), v);
    /* as the trigger memds.push_synced: the sync clears its notification */
    put(m->t.pushpend, kn(m, device_id, store), NULL);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------- push */

static apr_status_t mem_push_register(memds_sessdb_t *db, const char *account,
                                      const char *devid, const char *channel,
                                      const char *address)
{
    memds_memdb_t *m = M(db);
    const memds_device_t *d = get(m->t.devices, k2(m, account, devid));
    const char *key;
    mpushch_t *c;

    if (d == NULL) {
        return APR_ENOENT;
    }
    key = kn(m, d->device_id, NULL);
    if (channel == NULL) {
        if (get(m->t.pushch, key) == NULL) {
            return APR_ENOENT;
        }
        put(m->t.pushch, key, NULL);
        return APR_SUCCESS;
    }
    c = apr_pcalloc(m->pool, sizeof(*c));
    c->channel = mdup(m, channel);
    c->address = mdup(m, address);
    put(m->t.pushch, key, c);
    return APR_SUCCESS;
}

static apr_status_t mem_push_pending(memds_sessdb_t *db,
                                     apr_array_header_t **prows,
                                     apr_int64_t device_id,
                                     apr_int64_t session_pk)
{
    memds_memdb_t *m = M(db);
    const msess_t *s = get(m->t.sessions,
                           apr_psprintf(m->pool, "%" APR_INT64_T_FMT,
                                        session_pk));
    const char *prefix = kn(m, device_id, NULL);
    apr_hash_index_t *hi;

    *prows = apr_array_make(db->pool, 2, sizeof(memds_push_pend_t *));
    for (hi = apr_hash_first(db->pool, m->t.pushpend); hi;
         hi = apr_hash_next(hi)) {
        const void *k;
        void *v;
        memds_push_pend_t *r;
        apr_hash_this(hi, &k, NULL, &v);
        if (strncmp(k, prefix, strlen(prefix)) != 0) {
            continue;
        }
        r = apr_pmemdup(db->pool, v, sizeof(*r));
        r->in_session = s && apr_atoi64(r->first_at) >= s->created;
        APR_ARRAY_PUSH(*prows, memds_push_pend_t *) = r;
    }
    return APR_SUCCESS;
}

static apr_status_t mem_push_keep(memds_sessdb_t *db, apr_int64_t device_id,
                                  const memds_push_pend_t *row, int hold_ms)
{
    memds_memdb_t *m = M(db);
    const char *key = kn(m, device_id, row->store);
    memds_push_pend_t *r;

    (void)hold_ms;
    if (get(m->t.pushpend, key) == NULL) {
        r = apr_pmemdup(m->pool, row, sizeof(*r));
        r->store = mdup(m, row->store);
        r->first_at = mdup(m, row->first_at);
        r->due_at = mdup(m, row->due_at);
        r->last_error = mdup(m, row->last_error);
        put(m->t.pushpend, key, r);
    }
    return APR_SUCCESS;
}

apr_status_t memds_memdb_push_channel(memds_memdb_t *m, const char *account,
                                      const char *devid, const char **pchannel,
                                      const char **paddress)
{
    const memds_device_t *d = get(m->t.devices, k2(m, account, devid));
    const mpushch_t *c;

    if (d == NULL) {
        return APR_ENOENT;
    }
    c = get(m->t.pushch, kn(m, d->device_id, NULL));
    *pchannel = c ? c->channel : NULL;
    *paddress = c ? c->address : NULL;
    return APR_SUCCESS;
}

apr_status_t memds_memdb_push_pending(memds_memdb_t *m, const char *account,
                                      const char *devid, const char *store)
{
    const memds_device_t *d = get(m->t.devices, k2(m, account, devid));
    memds_push_pend_t *r;

    if (d == NULL) {
        return APR_ENOENT;
    }
    r = apr_pcalloc(m->pool, sizeof(*r));
    r->store = mdup(m, store);
    r->sync_type = 206;
    r->ui_mode = 1;
    r->first_at = r->due_at = apr_psprintf(m->pool, "%" APR_INT64_T_FMT,
                                           ++m->t.tick);
    if (get(m->t.pushpend, kn(m, d->device_id, store)) == NULL) {
        put(m->t.pushpend, kn(m, d->device_id, store), r);
    }
    return APR_SUCCESS;
}

/* ------------------------------------------- the items datastore */

#define DM(ds) ((memds_memdb_t *)(ds)->impl)

static const char *item_key(memds_ds_t *ds, const char *guid)
{
    return apr_pstrcat(DM(ds)->pool, ds->account, SEP, ds->store, SEP, guid,
                       NULL);
}

static const mitem_t *item_of(memds_ds_t *ds, const char *guid)
{
    return get(DM(ds)->t.items, item_key(ds, guid));
}

static void item_put(memds_ds_t *ds, mitem_t *it, const char *type,
                     const char *data, apr_size_t len)
{
    memds_memdb_t *m = DM(ds);

    it->type = mdup(m, type);
    it->data = dupmem(m, data, len);
    it->len = len;
    it->seq = ++m->t.seq;
    it->deleted = 0;
    it->changed_by = ds->device_id > 0 ? ds->device_id : 0;
    put(m->t.items, item_key(ds, it->guid), it);
}

static apr_status_t mi_snapshot(memds_ds_t *ds, apr_int64_t *pseq)
{
    *pseq = DM(ds)->t.seq; /* one request at a time: all is visible */
    return APR_SUCCESS;
}

static int by_seq(const void *a, const void *b)
{
    apr_int64_t x = (*(memds_ds_change_t *const *)a)->seq;
    apr_int64_t y = (*(memds_ds_change_t *const *)b)->seq;

    return (x > y) - (x < y);
}

static apr_status_t mi_changes(memds_ds_t *ds, apr_array_header_t **pchanges,
                               apr_int64_t since, apr_int64_t upto)
{
    apr_pool_t *p = ds->st->pool;
    apr_array_header_t *out = apr_array_make(p, 16,
                                             sizeof(memds_ds_change_t *));
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, DM(ds)->t.items); hi;
         hi = apr_hash_next(hi)) {
        const mitem_t *it = apr_hash_this_val(hi);
        memds_ds_change_t *c;
        if (!eq(it->account, ds->account) || !eq(it->store, ds->store)
            || it->seq <= since || it->seq > upto
            || (since < 0 && it->deleted)) {
            continue;
        }
        c = apr_pcalloc(p, sizeof(*c));
        c->guid = it->guid;
        c->deleted = it->deleted;
        c->seq = it->seq;
        c->changed_by = it->changed_by;
        APR_ARRAY_PUSH(out, memds_ds_change_t *) = c;
    }
    qsort(out->elts, (size_t)out->nelts, sizeof(memds_ds_change_t *), by_seq);
    *pchanges = out;
    return APR_SUCCESS;
}

static apr_status_t mi_fetch(memds_ds_t *ds, const char *guid,
                             apr_int64_t known_seq, const char **pdata,
                             apr_size_t *plen, const char **ptype)
{
    const mitem_t *it = item_of(ds, guid);

    (void)known_seq;
    if (it == NULL || it->deleted) {
        return APR_ENOENT;
    }
    if (eq(DM(ds)->broken, it->data)) {
        /* (memds_memdb_break: an object that cannot be built) */
        ds->status = 500;
        ds->reason = "the object cannot be built (test)";
        return APR_EGENERAL;
    }
    *pdata = it->data;
    *plen = it->len;
    *ptype = it->type;
    return APR_SUCCESS;
}

static apr_status_t mi_add(memds_ds_t *ds, const char **pguid, const char *type,
                           const char *data, apr_size_t len)
{
    memds_memdb_t *m = DM(ds);
    mitem_t *it = apr_pcalloc(m->pool, sizeof(*it));

    /* The GUID is the item's first change sequence value, as in
     * memds_store_items_add. */
    it->account = mdup(m, ds->account);
    it->store = mdup(m, ds->store);
    it->guid = apr_psprintf(m->pool, "%" APR_INT64_T_FMT, m->t.seq + 1);
    item_put(ds, it, type, data, len);
    *pguid = it->guid;
    return APR_SUCCESS;
}

static apr_status_t mi_replace(memds_ds_t *ds, const char *guid,
                               const char *type, const char *data,
                               apr_size_t len)
{
    const mitem_t *old = item_of(ds, guid);

    if (old == NULL) {
        return APR_ENOENT;
    }
    item_put(ds, apr_pmemdup(DM(ds)->pool, old, sizeof(*old)), type, data, len);
    return APR_SUCCESS;
}

static apr_status_t mi_remove(memds_ds_t *ds, const char *guid)
{
    memds_memdb_t *m = DM(ds);
    const mitem_t *old = item_of(ds, guid);
    mitem_t *it;

    if (old == NULL || old->deleted) {
        return APR_ENOENT;
    }
    /* The tombstone keeps its bytes (a Replace revives it). */
    it = apr_pmemdup(m->pool, old, sizeof(*old));
    it->deleted = 1;
    it->seq = ++m->t.seq;
    it->changed_by = ds->device_id > 0 ? ds->device_id : 0;
    put(m->t.items, item_key(ds, guid), it);
    return APR_SUCCESS;
}

static apr_status_t mi_match(memds_ds_t *ds, const char **pguid,
                             const char *data, apr_size_t len)
{
    memds_memdb_t *m = DM(ds);
    apr_hash_index_t *hi;
    const mitem_t *best = NULL;

    for (hi = apr_hash_first(NULL, m->t.items); hi; hi = apr_hash_next(hi)) {
        const mitem_t *it = apr_hash_this_val(hi);
        if (eq(it->account, ds->account) && eq(it->store, ds->store)
            && !it->deleted && it->len == len
            && memcmp(it->data, data, len) == 0
            && !get(m->t.g2l, kn3(m, ds->device_id, ds->store, it->guid))
            && (!best || it->seq < best->seq)) {
            best = it;
        }
    }
    if (best == NULL) {
        return APR_ENOENT;
    }
    *pguid = best->guid;
    return APR_SUCCESS;
}

static apr_status_t mi_same(memds_ds_t *ds, const char *guid, const char *type,
                            const char *data, apr_size_t len, int *psame)
{
    const mitem_t *it = item_of(ds, guid);

    (void)type;
    if (it == NULL || it->deleted) {
        return APR_ENOENT;
    }
    *psame = it->len == len && memcmp(it->data, data, len) == 0;
    return APR_SUCCESS;
}

static apr_status_t mi_last_change(memds_ds_t *ds, const char *guid,
                                   apr_int64_t *pseq, apr_int64_t *pby)
{
    const mitem_t *it = item_of(ds, guid);

    if (it == NULL) {
        return APR_ENOENT;
    }
    *pseq = it->seq;
    *pby = it->changed_by;
    return APR_SUCCESS;
}

static const memds_ds_vt mem_items_vt = {
    .kind = "items",
    .snapshot = mi_snapshot,
    .changes = mi_changes,
    .fetch = mi_fetch,
    .add = mi_add,
    .replace = mi_replace,
    .remove = mi_remove,
    .match = mi_match,
    .same = mi_same,
    .last_change = mi_last_change,
};

static apr_status_t mem_ds_open(memds_sessdb_t *db, memds_ds_t **pds,
                                const memds_ds_env_t *env, const char *account,
                                const char *store, apr_int64_t device_id,
                                apr_pool_t *p)
{
    memds_ds_t *ds;
    memds_store_t *st;

    if (strcmp(env->kind, "items") != 0) {
        return APR_ENOTIMPL;
    }
    /* No database: a store record only for the pool datastores allocate
     * their results from. */
    st = apr_pcalloc(p, sizeof(*st));
    st->pool = p;
    ds = apr_pcalloc(p, sizeof(*ds));
    ds->vt = &mem_items_vt;
    ds->st = st;
    ds->account = apr_pstrdup(p, account);
    ds->login = ds->account;
    ds->store = apr_pstrdup(p, store);
    ds->device_id = device_id;
    ds->impl = M(db);
    *pds = ds;
    return APR_SUCCESS;
}

/* ----------------------------- throttling and autoblock (schema/014) */

static apr_status_t mem_limits_check(memds_sessdb_t *db, memds_usage_t *u,
                                     unsigned want, apr_int64_t device_id,
                                     const char *account, const char *devid)
{
    memds_memdb_t *m = M(db);
    apr_time_t now = apr_time_now(), minute = now - apr_time_from_sec(60),
               hour = now - apr_time_from_sec(3600);
    apr_time_t dmin = 0, amin = 0, dhour = 0, ahour = 0;
    const mauth_t *a = auth_of(m, account, devid);
    apr_hash_index_t *hi;

    (void)want; /* (every figure counted) */
    memset(u, 0, sizeof(*u));
    for (hi = apr_hash_first(NULL, m->t.usage); hi; hi = apr_hash_next(hi)) {
        const musage_t *x = apr_hash_this_val(hi);
        int dev = x->device_id == device_id;
        if (!eq(x->account, account) || x->started <= hour) {
            continue;
        }
        u->acct_bytes += x->bytes;
        ahour = ahour && ahour < x->started ? ahour : x->started;
        if (dev) {
            u->dev_bytes += x->bytes;
            dhour = dhour && dhour < x->started ? dhour : x->started;
        }
        if (x->started > minute) {
            u->acct_min++;
            amin = amin && amin < x->started ? amin : x->started;
            if (dev) {
                u->dev_min++;
                dmin = dmin && dmin < x->started ? dmin : x->started;
            }
        }
    }
#define WAIT_OF(t, span) \
    ((t) ? (int)apr_time_sec((t) + apr_time_from_sec(span) - now) + 1 : (span))
    u->dev_min_wait = WAIT_OF(dmin, 60);
    u->acct_min_wait = WAIT_OF(amin, 60);
    u->dev_bytes_wait = WAIT_OF(dhour, 3600);
    u->acct_bytes_wait = WAIT_OF(ahour, 3600);
#undef WAIT_OF
    for (hi = apr_hash_first(NULL, m->t.sessions); hi; hi = apr_hash_next(hi)) {
        const msess_t *x = apr_hash_this_val(hi);
        const memds_device_t *d = device_by_id(m, x->row.device_id);
        if (x->row.finished || x->expires <= now
            || eq(x->row.phase, "suspended") || !d || !eq(d->account, account)) {
            continue;
        }
        u->acct_conc++;
        u->dev_conc += x->row.device_id == device_id;
    }
    if (a && a->held_until > now) {
        u->held = 1;
        u->held_wait = a->held_until == APR_INT64_MAX
                           ? -1
                           : (int)apr_time_sec(a->held_until - now) + 1;
        u->held_reason = a->held_reason;
    }
    return APR_SUCCESS;
}

static apr_status_t mem_device_failed(memds_sessdb_t *db, int *pheld,
                                      const char *account, const char *devid,
                                      int max, int block_secs, const char *why)
{
    memds_memdb_t *m = M(db);
    mauth_t *a = auth_copy(m, account, devid);
    apr_time_t now = apr_time_now();

    *pheld = 0;
    a->failed_sessions++;
    if (max > 0 && a->failed_sessions >= max && a->held_until <= now) {
        *pheld = 1;
        a->failed_sessions = 0;
        a->held_until = block_secs > 0 ? now + apr_time_from_sec(block_secs)
                                       : APR_INT64_MAX;
        a->held_reason = mdup(m, why);
    }
    return APR_SUCCESS;
}

static apr_status_t mem_device_reset(memds_sessdb_t *db, const char *account,
                                     const char *devid)
{
    if (auth_of(M(db), account, devid)) {
        auth_copy(M(db), account, devid)->failed_sessions = 0;
    }
    return APR_SUCCESS;
}

apr_status_t memds_memdb_device_hold(memds_memdb_t *m, const char *account,
                                     const char *devid, int secs)
{
    mauth_t *a = auth_copy(m, account, devid);

    a->held_until = secs > 0    ? apr_time_now() + apr_time_from_sec(secs)
                    : secs < 0 ? APR_INT64_MAX
                               : 0;
    a->held_reason = secs ? "held by the administrator" : NULL;
    a->failed_sessions = 0;
    return APR_SUCCESS;
}

/* A quarantine row made anew (counting) or copied to be changed. */
static mquar_t *quar_copy(memds_memdb_t *m, apr_int64_t device_id,
                          const char *store, const char *guid)
{
    const char *key = quar_key(m, device_id, store, guid);
    const mquar_t *old = get(m->t.quar, key);
    mquar_t *z = apr_pcalloc(m->pool, sizeof(*z));

    if (old) {
        *z = *old;
    }
    else {
        z->device_id = device_id;
        z->store = mdup(m, store);
        z->guid = mdup(m, guid);
        z->state = "counting";
    }
    put(m->t.quar, key, z);
    return z;
}

static apr_status_t mem_quarantine_note(memds_sessdb_t *db,
                                        apr_array_header_t **prows,
                                        apr_int64_t session_pk,
                                        apr_int64_t device_id,
                                        const char *const *refs,
                                        const char *const *luids,
                                        const apr_int64_t *codes, int n,
                                        int threshold)
{
    memds_memdb_t *m = M(db);
    apr_hash_t *done = apr_hash_make(db->pool);
    apr_hash_index_t *hi;
    int i;

    if (prows) {
        *prows = apr_array_make(db->pool, 1, sizeof(memds_quar_t *));
    }
    for (i = 0; i < n; ++i) {
        int tn = temp_id(refs[i]);
        if (codes[i] < 300 || codes[i] == 418) {
            continue;
        }
        for (hi = apr_hash_first(NULL, m->t.queue); hi;
             hi = apr_hash_next(hi)) {
            const mqueue_t *v = apr_hash_this_val(hi);
            const char *dk;
            mquar_t *z;
            if (v->pk != session_pk
                || !(eq(v->q.guid, refs[i]) || (tn >= 0 && v->q.n == tn)
                     || (!refs[i] && eq(v->q.luid, luids[i])))) {
                continue;
            }
            dk = quar_key(m, device_id, v->q.store, v->q.guid);
            if (get(done, dk)) {
                continue;
            }
            put(done, dk, "1");
            z = quar_copy(m, device_id, v->q.store, v->q.guid);
            z->count++;
            z->last_status = (int)codes[i];
            z->reason = apr_psprintf(m->pool, "the device answered %d",
                                     (int)codes[i]);
            if (prows) {
                memds_quar_t *r = apr_pcalloc(db->pool, sizeof(*r));
                r->store = z->store;
                r->guid = z->guid;
                r->count = z->count;
                r->last_status = z->last_status;
                r->reason = z->reason;
                r->newly_held = strcmp(z->state, "held") != 0
                                && z->count >= threshold;
                APR_ARRAY_PUSH(*prows, memds_quar_t *) = r;
            }
            if (z->count >= threshold) {
                z->state = "held";
            }
            if (prows) {
                APR_ARRAY_IDX(*prows, (*prows)->nelts - 1, memds_quar_t *)
                    ->state = z->state;
            }
        }
    }
    return APR_SUCCESS;
}

static apr_status_t mem_quarantine_count(memds_sessdb_t *db, int *pheld,
                                         apr_int64_t device_id,
                                         const char *store, const char *guid,
                                         int status, const char *reason,
                                         int threshold)
{
    mquar_t *z = quar_copy(M(db), device_id, store, guid);

    *pheld = strcmp(z->state, "held") != 0 && z->count + 1 >= threshold;
    z->count++;
    z->last_status = status;
    z->reason = mdup(M(db), reason);
    if (z->count >= threshold) {
        z->state = "held";
    }
    return APR_SUCCESS;
}

static apr_status_t mem_quarantine_of(memds_sessdb_t *db, apr_hash_t **pset,
                                      apr_int64_t device_id, const char *store)
{
    apr_hash_index_t *hi;

    *pset = apr_hash_make(db->pool);
    for (hi = apr_hash_first(NULL, M(db)->t.quar); hi; hi = apr_hash_next(hi)) {
        const mquar_t *z = apr_hash_this_val(hi);
        if (z->device_id == device_id && eq(z->store, store)
            && strcmp(z->state, "counting") != 0) {
            apr_hash_set(*pset, apr_pstrdup(db->pool, z->guid),
                         APR_HASH_KEY_STRING, z->state);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t mem_quarantine_done(memds_sessdb_t *db,
                                        apr_int64_t session_pk,
                                        apr_int64_t device_id,
                                        const char *store)
{
    memds_memdb_t *m = M(db);
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, m->t.queue); hi; hi = apr_hash_next(hi)) {
        const mqueue_t *v = apr_hash_this_val(hi);
        const char *key;
        const mquar_t *z;
        if (v->pk != session_pk || !eq(v->q.store, store) || v->q.status == 0
            || (v->q.status >= 300 && v->q.status != 418)) {
            continue;
        }
        key = quar_key(m, device_id, store, v->q.guid);
        z = get(m->t.quar, key);
        if (z && strcmp(z->state, "held") != 0) {
            put(m->t.quar, key, NULL);
        }
    }
    return APR_SUCCESS;
}

void memds_memdb_quarantine_state(memds_memdb_t *m, apr_int64_t device_id,
                                  const char *store, const char *guid,
                                  const char **pstate, int *pcount)
{
    const mquar_t *z = get(m->t.quar, quar_key(m, device_id, store, guid));

    *pstate = z ? z->state : NULL;
    *pcount = z ? z->count : 0;
}

void memds_memdb_break(memds_memdb_t *m, const char *data)
{
    m->broken = mdup(m, data);
}

apr_int64_t memds_memdb_queue_rows_read(const memds_memdb_t *m)
{
    return m->queue_rows_read;
}

int memds_memdb_quarantine_release(memds_memdb_t *m, apr_int64_t device_id)
{
    apr_hash_index_t *hi;
    int n = 0;

    for (hi = apr_hash_first(NULL, m->t.quar); hi; hi = apr_hash_next(hi)) {
        const mquar_t *z = apr_hash_this_val(hi);
        if (z->device_id == device_id && strcmp(z->state, "held") == 0) {
            mquar_t *c = quar_copy(m, device_id, z->store, z->guid);
            c->state = "released";
            c->count = 0;
            ++n;
        }
    }
    return n;
}

static const memds_sessdb_vt mem_vt = { "mem",
                                        mem_begin,
                                        mem_commit,
                                        mem_rollback,
                                        mem_auth_get,
                                        mem_auth_set_nonce,
                                        mem_auth_failed,
                                        mem_auth_ok,
                                        mem_md5_get,
                                        mem_md5_put,
                                        mem_server_cred_get,
                                        mem_server_cred_nonce,
                                        mem_server_cred_put,
                                        mem_device_lock,
                                        mem_device_set_devinf,
                                        mem_session_by_token,
                                        mem_session_by_sid,
                                        mem_session_save,
                                        mem_session_response,
                                        mem_sessions_expire,
                                        mem_sstores_load,
                                        mem_sstore_save,
                                        mem_suspended_find,
                                        mem_resume_copy,
                                        mem_queue_add_many,
                                        mem_queue_unsent,
                                        mem_queue_find,
                                        mem_queue_update_many,
                                        mem_queue_status_many,
                                        mem_queue_count_unsent,
                                        mem_queue_count_failed,
                                        mem_maps_load,
                                        mem_maps_of_luids,
                                        mem_map_put_many,
                                        mem_map_del,
                                        mem_map_clear,
                                        mem_seen_add_many,
                                        mem_seen_load,
                                        mem_partial_get,
                                        mem_partial_append,
                                        mem_partial_drop,
                                        mem_syncstate_get,
                                        mem_syncstate_put,
                                        mem_wipe_store,
                                        mem_push_watch_note,
                                        mem_push_register,
                                        mem_push_pending,
                                        mem_push_keep,
                                        mem_limits_check,
                                        mem_device_failed,
                                        mem_device_reset,
                                        mem_quarantine_note,
                                        mem_quarantine_count,
                                        mem_quarantine_of,
                                        mem_quarantine_done,
                                        mem_ds_open,
                                        NULL,
                                        NULL };

memds_memdb_t *memds_memdb_create(apr_pool_t *p)
{
    memds_memdb_t *m = apr_pcalloc(p, sizeof(*m));

    m->pool = p;
    m->t.auth = apr_hash_make(p);
    m->t.md5 = apr_hash_make(p);
    m->t.srvcred = apr_hash_make(p);
    m->t.devices = apr_hash_make(p);
    m->t.sessions = apr_hash_make(p);
    m->t.sstores = apr_hash_make(p);
    m->t.queue = apr_hash_make(p);
    m->t.seen = apr_hash_make(p);
    m->t.partial = apr_hash_make(p);
    m->t.syncstate = apr_hash_make(p);
    m->t.g2l = apr_hash_make(p);
    m->t.l2g = apr_hash_make(p);
    m->t.items = apr_hash_make(p);
    m->t.usage = apr_hash_make(p);
    m->t.quar = apr_hash_make(p);
    m->t.pushch = apr_hash_make(p);
    m->t.pushpend = apr_hash_make(p);
    return m;
}

memds_sessdb_t *memds_sessdb_mem(memds_memdb_t *m, apr_pool_t *p)
{
    memds_sessdb_t *db = apr_pcalloc(p, sizeof(*db));

    db->vt = &mem_vt;
    db->pool = p;
    db->impl = m;
    return db;
}
