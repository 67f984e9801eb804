/**
 * @file memds_pgpool.h
 * A per-process pool of PostgreSQL connections (libpq) on apr_reslist, in
 * the manner of mod_dbd: connections are opened on demand, kept up to a
 * "keep" count, closed after an idle time, and checked on every acquire so
 * that a connection the server dropped (restart, crash, idle kill) is
 * replaced instead of failing a request. Thread-safe: one pool is shared by
 * all threads of an httpd child. libpq appears only under store/.
 */
#ifndef MEMDS_PGPOOL_H
#define MEMDS_PGPOOL_H

#include <apr_pools.h>
#include <apr_time.h>
#include "util/memds_util.h"
#include "util/memds_stats.h"

typedef struct memds_pgpool_t memds_pgpool_t;

/** One pooled connection; valid between acquire and release. */
typedef struct memds_pgconn_t memds_pgconn_t;

/** Pool sizing and behaviour. */
typedef struct memds_pgpool_params_t {
    int min;  /**< connections opened at creation */
    int keep; /**< idle connections kept open */
    int max;  /**< hard limit of open connections */
    apr_interval_time_t
        exptime; /**< idle time before a connection above keep is closed */
    apr_interval_time_t
        acquire_timeout; /**< wait for a free connection when max are in use */
} memds_pgpool_params_t;

/** Counters of one pool (one process). */
typedef struct memds_pgpool_stats_t {
    apr_uint32_t open;          /**< connections open now */
    apr_uint32_t in_use;        /**< connections acquired now */
    apr_uint64_t connects;      /**< successful connects since start */
    apr_uint64_t connect_fails; /**< failed connects since start */
    apr_uint64_t replaced;      /**< dead connections detected and dropped */
    apr_uint64_t acquires;      /**< successful acquires */
    apr_uint64_t
        acquire_fails; /**< acquires that failed (no connection to be had) */
    apr_uint64_t acquire_waits;   /**< acquires that found all in use and
                                       waited (and got one) */
    apr_uint64_t acquire_wait_ms; /**< their waiting, in all */
} memds_pgpool_stats_t;

/**
 * Check a libpq connection string (key=value or postgresql:// URI).
 * @return NULL if libpq accepts it, else libpq's reason (allocated from p).
 */
const char *memds_pg_check_conninfo(const char *conninfo, apr_pool_t *p);

/**
 * Create a pool. conninfo is copied. A connect_timeout of 5 s and an
 * application_name of "mod_memds" apply unless conninfo sets them. The
 * pool lives as long as p; closing p closes every connection.
 * lg (may be NULL) receives connect failures and replacements; it must
 * outlive the pool.
 */
apr_status_t memds_pgpool_create(memds_pgpool_t **ppool, const char *conninfo,
                                 const memds_pgpool_params_t *params,
                                 const memds_logger_t *lg, apr_pool_t *p);

/**
 * Take a live connection from the pool (opening one if needed). Connections
 * found dead are dropped and replaced, a bounded number of times.
 * On failure *perr says why (from p) and the result is an APR error:
 * APR_ECONNREFUSED when PostgreSQL cannot be reached, APR_TIMEUP when all
 * connections stayed busy.
 */
apr_status_t memds_pgpool_acquire(memds_pgconn_t **pconn, memds_pgpool_t *pool,
                                  const char **perr, apr_pool_t *p);

/**
 * Give a connection back. With broken != 0 (a query failed in a way that
 * may have left the connection unusable) it is closed instead of reused.
 * A connection still inside a transaction is closed too.
 */
void memds_pgpool_release(memds_pgpool_t *pool, memds_pgconn_t *conn,
                          int broken);

/**
 * Acquire a connection and register a cleanup on p that releases it when
 * p is cleared (request pools); like mod_dbd's ap_dbd_acquire.
 */
apr_status_t memds_pgpool_acquire_for(memds_pgconn_t **pconn,
                                      memds_pgpool_t *pool, const char **perr,
                                      apr_pool_t *p);

/** Mark an acquired connection broken so its release closes it. */
void memds_pgconn_mark_broken(memds_pgconn_t *conn);

/** Statements prepared per connection, at most (more: run unnamed). */
#define MEMDS_PG_PREPARED_MAX 400

/** In a statement's text (a comment): its plan is made for the values of
 *  each execution, as for one with array parameters ("[]"). */
#define MEMDS_PG_CUSTOM_PLAN "/* plan per values */"

/** A statement with array parameters runs prepared when no array holds
 *  more than this many values (short_arrays below). */
#define MEMDS_PG_SHORT_ARRAY 16

/**
 * The prepared statement for sql on this connection: prepared (with
 * nparams parameters, types inferred as for an unnamed statement) on its
 * first use, then reused, so that each statement is parsed once per
 * connection and, once PostgreSQL finds its generic plan no dearer than
 * the plans made for the values (plan_cache_mode auto, after five
 * executions), planned once too. *pname gets its name, or NULL when it is
 * not prepared: the cache is full, or the statement's plan depends on
 * its values: MEMDS_PG_CUSTOM_PLAN, or array parameters ("[]") of this
 * execution that are not short (short_arrays 0: a generic plan made for
 * three GUIDs, then run with 500, walked whole tables), so it runs
 * unnamed, planned for its values. Returns NULL, or the failed PREPARE's
 * result (a PGresult *, the statement's own error: the caller reports and
 * frees it).
 */
void *memds_pgconn_prepare(memds_pgconn_t *conn, const char *sql, int nparams,
                           int short_arrays, const char **pname);

/** Would memds_pgconn_prepare send a PREPARE for sql (a statement not yet
 *  prepared on this connection, that it prepares)? PREPARE is a round
 *  trip of its own, which pipeline mode cannot run. */
int memds_pgconn_needs_prepare(memds_pgconn_t *conn, const char *sql,
                               int short_arrays);

/** The most statements sent in pipeline mode before their results are
 *  read (memds_sq_q_later: the store reads them before this many more). */
#define MEMDS_PG_PENDING_MAX 32

/** Statements sent in pipeline mode whose results are not read yet: how
 *  many, add one (what names it for the log: a constant string), the
 *  name of the i-th, forget them all. */
int memds_pgconn_pending(memds_pgconn_t *conn);
void memds_pgconn_pending_add(memds_pgconn_t *conn, const char *what);
const char *memds_pgconn_pending_what(memds_pgconn_t *conn, int i);
void memds_pgconn_pending_clear(memds_pgconn_t *conn);

/** The libpq handle of an acquired connection (type PGconn *). */
void *memds_pgconn_native(memds_pgconn_t *conn);

/** A snapshot of the pool's counters. */
void memds_pgpool_get_stats(memds_pgpool_stats_t *st, memds_pgpool_t *pool);

/** The params the pool was created with. */
const memds_pgpool_params_t *memds_pgpool_params(memds_pgpool_t *pool);

/** Where the pool's connections add the latency of their statements and
 *  transactions (util/memds_stats.h); NULL (the default): not measured.
 *  Set it before the pool is used by several threads. */
void memds_pgpool_set_stats(memds_pgpool_t *pool, memds_stats_t *stats);
/** One statement of d microseconds on conn (the store's q_run). */
void memds_pgconn_observe(memds_pgconn_t *conn, apr_interval_time_t d,
                          int failed);
/** A transaction on conn begins (end 0) or ends (end 1; failed: rolled
 *  back or the commit failed). A connection released with a transaction
 *  still open counts it as failed. */
void memds_pgconn_tx(memds_pgconn_t *conn, int end, int failed);

/**
 * A connection of its own (not the pool's) that LISTENs on a channel, for
 * a background job to learn without polling that there is work: the
 * statements that make work NOTIFY the channel (a trigger). One thread
 * uses it. NULL when out of memory.
 */
typedef struct memds_pglisten_t memds_pglisten_t;
memds_pglisten_t *memds_pglisten_create(memds_pgpool_t *pool,
                                        const char *channel);
/**
 * Never blocks: 1 when a notification came since the last call, or when
 * the connection is new, lost or cannot be made (what came meanwhile is
 * unknown: the caller looks for work); 0 when none came. A lost
 * connection is made again at a later call (at most every 5 s).
 */
int memds_pglisten_poll(memds_pglisten_t *l);
void memds_pglisten_destroy(memds_pglisten_t *l);

#endif /* MEMDS_PGPOOL_H */
