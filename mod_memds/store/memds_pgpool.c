/* memds_pgpool.c: libpq connection pool on apr_reslist (see memds_pgpool.h). */
#include "store/memds_pgpool.h"

#include <apr_atomic.h>
#include <apr_hash.h>
#include <apr_reslist.h>
#include <apr_strings.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct memds_pgconn_t {
    PGconn *conn;
    memds_pgpool_t *owner;
    int broken;
    apr_time_t tx_start; /* a transaction's BEGIN, 0 outside one */
    /* prepared statements of this session: SQL text -> name (the pool is
     * the connection's own, unmanaged: made and freed with it) */
    apr_pool_t *prep_pool;
    apr_hash_t *prepared;
    /* statements sent in pipeline mode, results not read (memds_sq_q_later) */
    int npending;
    const char *pending[MEMDS_PG_PENDING_MAX];
};

struct memds_pgpool_t {
    apr_reslist_t *rl;
    const char *conninfo;
    memds_pgpool_params_t params;
    const memds_logger_t *lg;
    memds_stats_t *stats; /* latency histograms, or NULL */
    /* counters, updated atomically by all threads of the process */
    volatile apr_uint32_t open;
    volatile apr_uint32_t in_use;
    volatile apr_uint64_t connects;
    volatile apr_uint64_t connect_fails;
    volatile apr_uint64_t replaced;
    volatile apr_uint64_t acquires;
    volatile apr_uint64_t acquire_fails;
    volatile apr_uint64_t acquire_waits, acquire_wait_us;
};

const char *memds_pg_check_conninfo(const char *conninfo, apr_pool_t *p)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    const char *res = NULL;

    if (opts == NULL) {
        res = err ? apr_pstrdup(p, err) : "out of memory";
        if (res[0] && res[strlen(res) - 1] == '\n') {
            res = apr_pstrndup(p, res, strlen(res) - 1);
        }
    }
    if (err) {
        PQfreemem(err);
    }
    if (opts) {
        PQconninfoFree(opts);
    }
    return res;
}

/* reslist constructor: one new connection. Runs in the acquiring thread, so
 * it allocates nothing from shared pools (the pool struct is malloc'ed). */
static apr_status_t pg_construct(void **res, void *params, apr_pool_t *p)
{
    memds_pgpool_t *pool = params;
    memds_pgconn_t *c;
    /* Our defaults first; the admin's conninfo (expanded from "dbname")
     * comes later and so overrides them. */
    const char *keys[] = { "connect_timeout", "fallback_application_name",
                           "dbname", NULL };
    const char *vals[] = { "5", "mod_memds", pool->conninfo, NULL };
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        const char *m = conn ? PQerrorMessage(conn) : "out of memory";
        int n = (int)strlen(m);
        while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ')) {
            --n;
        }
        apr_atomic_inc64(&pool->connect_fails);
        memds_logf(pool->lg, MEMDS_LOG_ERR, 0,
                   MEMDS_LOGNO(00300) "PostgreSQL connect failed: %.*s", n, m);
        if (conn) {
            PQfinish(conn);
        }
        return APR_ECONNREFUSED;
    }
    /* Prepared statements (memds_pgconn_prepare) save parsing, and
     * planning once PostgreSQL's own rule (auto) takes their generic plan;
     * the statements whose plans depend on their values are not prepared
     * (arrays; items_match, whose generic plan walks an account's items in
     * seq order). force_custom_plan planned every execution: at 200
     * devices PostgreSQL's CPU per HTTP message was 4.0-4.2 ms, 2.7-3.2 ms
     * with this (docs/performance.md, "Plans made once"). Set here, so
     * that a DBA's default for the role does not decide. */
    PQclear(PQexec(conn, "SET plan_cache_mode = auto"));
    /* Index probes priced as what they are for these tables, which are
     * read from memory: at the default random_page_cost (4, a disk seek)
     * the planner reads a whole send queue of 10,000 rows to set the
     * statuses of the 500 items of one message rather than probe its GUID
     * index 500 times (docs/performance.md). Only where nobody set it: a
     * DBA's own value (server, database or role) stays. */
    PQclear(PQexec(conn, "SELECT set_config('random_page_cost', '1.1', false)"
                         " FROM pg_settings WHERE name = 'random_page_cost'"
                         " AND source = 'default'"));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        PQfinish(conn);
        return APR_ENOMEM;
    }
    c->conn = conn;
    c->owner = pool;
    if (apr_pool_create_unmanaged_ex(&c->prep_pool, NULL, NULL)
        == APR_SUCCESS) {
        c->prepared = apr_hash_make(c->prep_pool);
    }
    apr_atomic_inc32(&pool->open);
    apr_atomic_inc64(&pool->connects);
    *res = c;
    return APR_SUCCESS;
}

static apr_status_t pg_destruct(void *res, void *params, apr_pool_t *p)
{
    memds_pgpool_t *pool = params;
    memds_pgconn_t *c = res;

    PQfinish(c->conn);
    if (c->prep_pool) {
        apr_pool_destroy(c->prep_pool);
    }
    free(c);
    apr_atomic_dec32(&pool->open);
    return APR_SUCCESS;
}

/* Is an idle connection still usable? Without a round trip: the status must
 * be OK and idle, and the socket must have nothing to read; a readable idle
 * socket means the server closed it or sent a termination notice, which
 * PQconsumeInput then turns into CONNECTION_BAD. */
static int pg_alive(PGconn *conn)
{
    struct pollfd pfd;
    int sock, tries;

    if (PQstatus(conn) != CONNECTION_OK
        || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        return 0;
    }
    sock = PQsocket(conn);
    if (sock < 0) {
        return 0;
    }
    pfd.fd = sock;
    pfd.events = POLLIN;
    /* A server that ended the connection (shutdown, restart, an idle kill)
     * sent its FATAL message and then closed: the first read takes the
     * message (libpq keeps the connection OK, as for a notice), only the
     * next one sees the end. So read while there is something to read. */
    for (tries = 0; tries < 4; ++tries) {
        pfd.revents = 0;
        if (poll(&pfd, 1, 0) <= 0) {
            return 1; /* nothing (more) pending */
        }
        if ((pfd.revents & (POLLHUP | POLLERR | POLLNVAL))
            || !PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK) {
            return 0;
        }
        /* Asynchronous NOTIFY or a notice: consumed; still fine. */
    }
    return 1;
}

apr_status_t memds_pgpool_create(memds_pgpool_t **ppool, const char *conninfo,
                                 const memds_pgpool_params_t *params,
                                 const memds_logger_t *lg, apr_pool_t *p)
{
    memds_pgpool_t *pool = apr_pcalloc(p, sizeof(*pool));
    apr_status_t rv;

    pool->conninfo = apr_pstrdup(p, conninfo);
    pool->params = *params;
    pool->lg = lg;
    if (pool->params.max < 1) {
        pool->params.max = 1;
    }
    if (pool->params.keep > pool->params.max) {
        pool->params.keep = pool->params.max;
    }
    if (pool->params.min > pool->params.keep) {
        pool->params.min = pool->params.keep;
    }
    rv = apr_reslist_create(&pool->rl, pool->params.min, pool->params.keep,
                            pool->params.max, pool->params.exptime,
                            pg_construct, pg_destruct, pool, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_reslist_timeout_set(pool->rl, pool->params.acquire_timeout);
    *ppool = pool;
    return APR_SUCCESS;
}

apr_status_t memds_pgpool_acquire(memds_pgconn_t **pconn, memds_pgpool_t *pool,
                                  const char **perr, apr_pool_t *p)
{
    /* Each dead idle connection costs one more round; after max+1 of them
     * every idle connection has been replaced or PostgreSQL is down. */
    int tries = pool->params.max + 1;
    apr_status_t rv = APR_EGENERAL;
    void *res;
    /* (all in use when asked: this acquire waits; read without a lock,
     * a figure for the status page) */
    int full = apr_atomic_read32(&pool->in_use)
               >= (apr_uint32_t)pool->params.max;
    apr_time_t t0 = full ? apr_time_now() : 0;

    while (tries-- > 0) {
        rv = apr_reslist_acquire(pool->rl, &res);
        if (rv != APR_SUCCESS) {
            break;
        }
        if (pg_alive(((memds_pgconn_t *)res)->conn)) {
            memds_pgconn_t *c = res;
            c->broken = 0;
            apr_atomic_inc32(&pool->in_use);
            apr_atomic_inc64(&pool->acquires);
            if (full) {
                apr_atomic_inc64(&pool->acquire_waits);
                apr_atomic_add64(&pool->acquire_wait_us,
                                 (apr_uint64_t)(apr_time_now() - t0));
            }
            *pconn = c;
            return APR_SUCCESS;
        }
        apr_atomic_inc64(&pool->replaced);
        memds_logf(
            pool->lg, MEMDS_LOG_INFO, 0,
            MEMDS_LOGNO(00301) "dropping a dead PostgreSQL connection from the pool");
        apr_reslist_invalidate(pool->rl, res);
    }
    apr_atomic_inc64(&pool->acquire_fails);
    if (perr) {
        if (APR_STATUS_IS_TIMEUP(rv) || rv == APR_EAGAIN) {
            *perr = apr_psprintf(p,
                                 "all %d PostgreSQL connections of this "
                                 "process stayed busy",
                                 pool->params.max);
            rv = APR_TIMEUP;
        }
        else if (rv == APR_SUCCESS || rv == APR_EGENERAL) {
            *perr = "PostgreSQL connections keep dying";
            rv = APR_ECONNREFUSED;
        }
        else {
            *perr = "PostgreSQL cannot be reached (see the preceding "
                    "connect error)";
        }
    }
    return rv == APR_SUCCESS ? APR_ECONNREFUSED : rv;
}

void memds_pgpool_release(memds_pgpool_t *pool, memds_pgconn_t *conn,
                          int broken)
{
    if (conn->tx_start) {
        memds_pgconn_tx(conn, 1, 1);
    }
    apr_atomic_dec32(&pool->in_use);
    if (broken || conn->broken || PQstatus(conn->conn) != CONNECTION_OK
        || PQpipelineStatus(conn->conn) != PQ_PIPELINE_OFF
        || PQtransactionStatus(conn->conn) != PQTRANS_IDLE) {
        apr_atomic_inc64(&pool->replaced);
        apr_reslist_invalidate(pool->rl, conn);
        return;
    }
    apr_reslist_release(pool->rl, conn);
}

static apr_status_t release_cleanup(void *data)
{
    memds_pgconn_t *c = data;

    memds_pgpool_release(c->owner, c, 0);
    return APR_SUCCESS;
}

apr_status_t memds_pgpool_acquire_for(memds_pgconn_t **pconn,
                                      memds_pgpool_t *pool, const char **perr,
                                      apr_pool_t *p)
{
    apr_status_t rv = memds_pgpool_acquire(pconn, pool, perr, p);

    if (rv == APR_SUCCESS) {
        apr_pool_cleanup_register(p, *pconn, release_cleanup,
                                  apr_pool_cleanup_null);
    }
    return rv;
}

void memds_pgconn_mark_broken(memds_pgconn_t *conn)
{
    conn->broken = 1;
}

void *memds_pgconn_native(memds_pgconn_t *conn)
{
    return conn->conn;
}

void memds_pgpool_get_stats(memds_pgpool_stats_t *st, memds_pgpool_t *pool)
{
    st->open = apr_atomic_read32(&pool->open);
    st->in_use = apr_atomic_read32(&pool->in_use);
    st->connects = apr_atomic_read64(&pool->connects);
    st->connect_fails = apr_atomic_read64(&pool->connect_fails);
    st->replaced = apr_atomic_read64(&pool->replaced);
    st->acquires = apr_atomic_read64(&pool->acquires);
    st->acquire_fails = apr_atomic_read64(&pool->acquire_fails);
    st->acquire_waits = apr_atomic_read64(&pool->acquire_waits);
    st->acquire_wait_ms = apr_atomic_read64(&pool->acquire_wait_us) / 1000;
}

const memds_pgpool_params_t *memds_pgpool_params(memds_pgpool_t *pool)
{
    return &pool->params;
}

void memds_pgpool_set_stats(memds_pgpool_t *pool, memds_stats_t *stats)
{
    pool->stats = stats;
}

void memds_pgconn_observe(memds_pgconn_t *conn, apr_interval_time_t d,
                          int failed)
{
    memds_stats_observe(conn->owner->stats, MEMDS_OP_PG_QUERY, d, failed);
}

void memds_pgconn_tx(memds_pgconn_t *conn, int end, int failed)
{
    if (!end) {
        conn->tx_start = apr_time_now();
        return;
    }
    if (conn->tx_start) {
        memds_stats_observe(conn->owner->stats, MEMDS_OP_PG_TX,
                            apr_time_now() - conn->tx_start, failed);
        conn->tx_start = 0;
    }
}

/* Is sql run unnamed, planned for its values? */
static int per_values(const char *sql, int short_arrays)
{
    return (!short_arrays && strstr(sql, "[]") != NULL)
           || strstr(sql, MEMDS_PG_CUSTOM_PLAN) != NULL;
}

void *memds_pgconn_prepare(memds_pgconn_t *conn, const char *sql, int nparams,
                           int short_arrays, const char **pname)
{
    const char *name;
    char buf[16];
    PGresult *res;
    size_t len = strlen(sql);

    *pname = NULL;
    if (conn->prepared == NULL || per_values(sql, short_arrays)) {
        return NULL;
    }
    name = apr_hash_get(conn->prepared, sql, (apr_ssize_t)len);
    if (name) {
        *pname = name;
        return NULL;
    }
    if (apr_hash_count(conn->prepared) >= MEMDS_PG_PREPARED_MAX) {
        return NULL; /* (statements made on the fly: run unnamed) */
    }
    snprintf(buf, sizeof(buf), "m%u", apr_hash_count(conn->prepared) + 1);
    res = PQprepare(conn->conn, buf, sql, nparams, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        return res; /* the statement's own error, for the caller */
    }
    PQclear(res);
    name = apr_pstrdup(conn->prep_pool, buf);
    apr_hash_set(conn->prepared, apr_pstrmemdup(conn->prep_pool, sql, len),
                 (apr_ssize_t)len, name);
    *pname = name;
    return NULL;
}

int memds_pgconn_needs_prepare(memds_pgconn_t *conn, const char *sql,
                               int short_arrays)
{
    return conn->prepared != NULL && !per_values(sql, short_arrays)
           && apr_hash_count(conn->prepared) < MEMDS_PG_PREPARED_MAX
           && apr_hash_get(conn->prepared, sql, APR_HASH_KEY_STRING) == NULL;
}

int memds_pgconn_pending(memds_pgconn_t *conn)
{
    return conn->npending;
}

void memds_pgconn_pending_add(memds_pgconn_t *conn, const char *what)
{
    if (conn->npending < MEMDS_PG_PENDING_MAX) {
        conn->pending[conn->npending] = what;
    }
    conn->npending++;
}

const char *memds_pgconn_pending_what(memds_pgconn_t *conn, int i)
{
    return i >= 0 && i < conn->npending && i < MEMDS_PG_PENDING_MAX
               ? conn->pending[i]
               : "a statement sent before";
}

void memds_pgconn_pending_clear(memds_pgconn_t *conn)
{
    conn->npending = 0;
}

/* ------------------------------------------------------------ LISTEN */

struct memds_pglisten_t {
    memds_pgpool_t *pool;
    memds_pgconn_t *c; /* NULL: none (not yet, lost) */
    char *listen;      /* "LISTEN channel" */
    apr_time_t last_try;
};

memds_pglisten_t *memds_pglisten_create(memds_pgpool_t *pool,
                                        const char *channel)
{
    memds_pglisten_t *l = calloc(1, sizeof(*l));
    size_t n = strlen(channel) + sizeof("LISTEN ");

    if (l == NULL || (l->listen = malloc(n)) == NULL) {
        free(l);
        return NULL;
    }
    snprintf(l->listen, n, "LISTEN %s", channel);
    l->pool = pool;
    return l;
}

static void listen_drop(memds_pglisten_t *l)
{
    if (l->c) {
        pg_destruct(l->c, l->pool, NULL);
        l->c = NULL;
    }
}

int memds_pglisten_poll(memds_pglisten_t *l)
{
    PGnotify *n;
    PGresult *res;
    int got = 0;

    if (l->c == NULL) {
        apr_time_t now = apr_time_now();
        void *c = NULL;
        if (now - l->last_try < apr_time_from_sec(5)) {
            return 1;
        }
        l->last_try = now;
        if (pg_construct(&c, l->pool, NULL) != APR_SUCCESS) {
            return 1;
        }
        l->c = c;
        res = PQexec(l->c->conn, l->listen);
        if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
            PQclear(res);
            listen_drop(l);
            return 1;
        }
        PQclear(res);
        return 1;
    }
    if (!PQconsumeInput(l->c->conn) || PQstatus(l->c->conn) != CONNECTION_OK) {
        listen_drop(l);
        return 1;
    }
    while ((n = PQnotifies(l->c->conn)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

void memds_pglisten_destroy(memds_pglisten_t *l)
{
    if (l) {
        listen_drop(l);
        free(l->listen);
        free(l);
    }
}
