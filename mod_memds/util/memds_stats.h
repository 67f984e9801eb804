/**
 * @file memds_stats.h
 * Latency histograms of the layers below the engine (IMAP commands, SMTP
 * submissions, PostgreSQL statements and transactions), with their error
 * counts. The counters live wherever the caller puts them (the module: in
 * the anonymous shared memory of the generation's request counters); the
 * layers get a pointer through their configuration and add to it with
 * apr_atomic, so there is no lock and no global state. A NULL pointer
 * means "not measured".
 *
 * Buckets are fixed (MEMDS_HIST_BOUNDS_US, upper bounds in microseconds;
 * the last bucket is +Inf) and kept per bucket, not cumulatively: the
 * reader (memds_hist_read) adds them up for the Prometheus form.
 */
#ifndef MEMDS_STATS_H
#define MEMDS_STATS_H

#include <apr.h>
#include <apr_time.h>

/** Upper bounds of the buckets, in microseconds (then +Inf). */
#define MEMDS_HIST_BOUNDS_US \
    { 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, \
      250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000 }
#define MEMDS_HIST_NBOUNDS 17
#define MEMDS_HIST_BUCKETS (MEMDS_HIST_NBOUNDS + 1)

/** One histogram: counts per bucket, the sum of the observed times and
 *  the number of observations that failed (counted in the buckets too). */
typedef struct memds_hist_t {
    volatile apr_uint64_t bucket[MEMDS_HIST_BUCKETS];
    volatile apr_uint64_t sum_us;
    volatile apr_uint64_t errors;
} memds_hist_t;

/** What is measured. The IMAP ones are by command (IDLE is not measured:
 *  it waits by design); connect is TCP, TLS and the login. */
typedef enum {
    MEMDS_OP_IMAP_CONNECT = 0,
    MEMDS_OP_IMAP_SELECT,   /**< SELECT, EXAMINE */
    MEMDS_OP_IMAP_FETCH,    /**< FETCH, UID FETCH */
    MEMDS_OP_IMAP_STORE,    /**< STORE, UID STORE */
    MEMDS_OP_IMAP_APPEND,
    MEMDS_OP_IMAP_SEARCH,   /**< SEARCH, UID SEARCH */
    MEMDS_OP_IMAP_LIST,     /**< LIST, LSUB, STATUS */
    MEMDS_OP_IMAP_MOVE,     /**< MOVE, COPY, EXPUNGE (and their UID forms) */
    MEMDS_OP_IMAP_OTHER,    /**< anything else (NOOP, CAPABILITY, ...) */
    MEMDS_OP_SMTP_SEND,     /**< one submission: connect to QUIT */
    MEMDS_OP_PG_QUERY,      /**< one statement */
    MEMDS_OP_PG_TX,         /**< BEGIN to COMMIT or ROLLBACK (a rollback
                                 counts as an error) */
    MEMDS_OP_PUSH_SEND,     /**< one SAN delivery to a device's channel
                                 (a failure is kept and retried) */
    MEMDS_OP_COUNT
} memds_op_e;

/** The histograms of every measured operation. */
typedef struct memds_stats_t {
    memds_hist_t op[MEMDS_OP_COUNT];
} memds_stats_t;

/** Add one observation of d microseconds (failed: also an error). s may
 *  be NULL (nothing happens). */
void memds_stats_observe(memds_stats_t *s, memds_op_e op,
                         apr_interval_time_t d, int failed);

/** The operation an IMAP command verb counts as ("UID FETCH" -> FETCH). */
memds_op_e memds_stats_imap_op(const char *verb);

/** The label of an operation ("fetch", "send", "query", ...). */
const char *memds_stats_op_label(memds_op_e op);

/** A consistent-enough copy of a histogram for a reader: cumulative
 *  counts per bucket (cum[MEMDS_HIST_BUCKETS - 1] is the total count),
 *  the sum in microseconds and the errors. */
void memds_hist_read(const memds_hist_t *h, apr_uint64_t *cum,
                     apr_uint64_t *psum_us, apr_uint64_t *perrors);

/** The upper bound of bucket i in microseconds (0 for the last, +Inf). */
apr_int64_t memds_hist_bound_us(int i);

#endif /* MEMDS_STATS_H */
