/* memds_stats.c: lock-free latency histograms (see memds_stats.h). */
#include "util/memds_stats.h"

#include <apr_atomic.h>
#include <string.h>
#include <strings.h>

static const apr_int64_t bounds[MEMDS_HIST_NBOUNDS] = MEMDS_HIST_BOUNDS_US;

apr_int64_t memds_hist_bound_us(int i)
{
    return i >= 0 && i < MEMDS_HIST_NBOUNDS ? bounds[i] : 0;
}

void memds_stats_observe(memds_stats_t *s, memds_op_e op,
                         apr_interval_time_t d, int failed)
{
    memds_hist_t *h;
    int i;

    if (s == NULL || op < 0 || op >= MEMDS_OP_COUNT) {
        return;
    }
    h = &s->op[op];
    if (d < 0) {
        d = 0; /* (the clock stepped back) */
    }
    for (i = 0; i < MEMDS_HIST_NBOUNDS && d > bounds[i]; ++i) {
    }
    apr_atomic_inc64(&h->bucket[i]);
    apr_atomic_add64(&h->sum_us, (apr_uint64_t)d);
    if (failed) {
        apr_atomic_inc64(&h->errors);
    }
}

memds_op_e memds_stats_imap_op(const char *verb)
{
    static const struct {
        const char *verb;
        memds_op_e op;
    } t[] = { { "SELECT", MEMDS_OP_IMAP_SELECT },
              { "EXAMINE", MEMDS_OP_IMAP_SELECT },
              { "FETCH", MEMDS_OP_IMAP_FETCH },
              { "STORE", MEMDS_OP_IMAP_STORE },
              { "APPEND", MEMDS_OP_IMAP_APPEND },
              { "SEARCH", MEMDS_OP_IMAP_SEARCH },
              { "LIST", MEMDS_OP_IMAP_LIST },
              { "LSUB", MEMDS_OP_IMAP_LIST },
              { "STATUS", MEMDS_OP_IMAP_LIST },
              { "MOVE", MEMDS_OP_IMAP_MOVE },
              { "COPY", MEMDS_OP_IMAP_MOVE },
              { "EXPUNGE", MEMDS_OP_IMAP_MOVE },
              { "LOGIN", MEMDS_OP_IMAP_CONNECT },
              { "AUTHENTICATE", MEMDS_OP_IMAP_CONNECT } };
    apr_size_t k, n;

    if (verb == NULL) {
        return MEMDS_OP_IMAP_OTHER;
    }
    if (strncasecmp(verb, "UID ", 4) == 0) {
        verb += 4;
    }
    n = strcspn(verb, " ");
    for (k = 0; k < sizeof(t) / sizeof(t[0]); ++k) {
        if (strlen(t[k].verb) == n && strncasecmp(verb, t[k].verb, n) == 0) {
            return t[k].op;
        }
    }
    return MEMDS_OP_IMAP_OTHER;
}

const char *memds_stats_op_label(memds_op_e op)
{
    static const char *const names[MEMDS_OP_COUNT] = {
        "connect", "select", "fetch", "store", "append", "search",
        "list",    "move",   "other", "send",  "query",  "transaction",
        "push"
    };

    return op >= 0 && op < MEMDS_OP_COUNT ? names[op] : "?";
}

void memds_hist_read(const memds_hist_t *h, apr_uint64_t *cum,
                     apr_uint64_t *psum_us, apr_uint64_t *perrors)
{
    apr_uint64_t total = 0;
    int i;

    for (i = 0; i < MEMDS_HIST_BUCKETS; ++i) {
        total += apr_atomic_read64((volatile apr_uint64_t *)&h->bucket[i]);
        cum[i] = total;
    }
    *psum_us = apr_atomic_read64((volatile apr_uint64_t *)&h->sum_us);
    *perrors = apr_atomic_read64((volatile apr_uint64_t *)&h->errors);
}
