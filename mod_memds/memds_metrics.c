/* memds_metrics.c: the rest of the status page's Prometheus form (the
 * first part is in memds_status.c): answers by status class, sessions,
 * items, sync alerts, the latency histograms of IMAP, SMTP, PostgreSQL
 * and push deliveries with their errors (all children of the generation,
 * from the shared counters), and the stuck outbox messages (PostgreSQL, at
 * scrape time). docs/metrics.md lists every metric. */
#include "memds_glue.h"

#include <http_protocol.h>
#include <apr_atomic.h>
#include <apr_strings.h>

#include "store/memds_adminstore.h"

#define RD(x) apr_atomic_read64((volatile apr_uint64_t *)&(x))

static void meta(request_rec *r, const char *name, const char *type,
                 const char *help)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series (label k="v", or none when k is NULL). */
static void hist(request_rec *r, const char *name, const char *k,
                 const char *v, const memds_hist_t *h)
{
    apr_uint64_t cum[MEMDS_HIST_BUCKETS], sum, errors;
    const char *lab = k ? apr_psprintf(r->pool, "%s=\"%s\",", k, v) : "";
    const char *only = k ? apr_psprintf(r->pool, "{%s=\"%s\"}", k, v) : "";
    int i;

    memds_hist_read(h, cum, &sum, &errors);
    for (i = 0; i < MEMDS_HIST_BUCKETS; ++i) {
        if (i < MEMDS_HIST_NBOUNDS) {
            ap_rprintf(r, "%s_bucket{%sle=\"%g\"} %" APR_UINT64_T_FMT "\n",
                       name, lab, (double)memds_hist_bound_us(i) / 1e6,
                       cum[i]);
        }
        else {
            ap_rprintf(r, "%s_bucket{%sle=\"+Inf\"} %" APR_UINT64_T_FMT "\n",
                       name, lab, cum[i]);
        }
    }
    ap_rprintf(r, "%s_sum%s %.6f\n%s_count%s %" APR_UINT64_T_FMT "\n", name,
               only, (double)sum / 1e6, name, only,
               cum[MEMDS_HIST_BUCKETS - 1]);
}

/* The errors of operations first..last as one counter labelled k. */
static void errors(request_rec *r, const char *name, const char *help,
                   const char *k, const memds_stats_t *s, int first, int last)
{
    int op;

    meta(r, name, "counter", help);
    for (op = first; op <= last; ++op) {
        ap_rprintf(r, "%s{%s=\"%s\"} %" APR_UINT64_T_FMT "\n", name, k,
                   memds_stats_op_label((memds_op_e)op),
                   RD(s->op[op].errors));
    }
}

void memds_metrics_prometheus(request_rec *r, const memds_counters_t *c,
                              memds_pgconn_t *conn)
{
    static const char *const alerts[7] = {
        "two-way",         "slow",           "one-way-from-client",
        "refresh-from-client", "one-way-from-server", "refresh-from-server",
        "server-alerted"
    };
    const memds_stats_t *s = &c->stats;
    apr_uint64_t cum[MEMDS_HIST_BUCKETS], sum, err;
    int i, op;

    meta(r, "memds_responses_by_class_total", "counter",
         "Answers of the sync handler by HTTP status class.");
    for (i = 1; i <= 5; ++i) {
        ap_rprintf(r,
                   "memds_responses_by_class_total{class=\"%dxx\"} "
                   "%" APR_UINT64_T_FMT "\n",
                   i, RD(c->status_class[i]));
    }
    meta(r, "memds_sessions_started_total", "counter",
         "Sync sessions begun (committed first messages).");
    ap_rprintf(r, "memds_sessions_started_total %" APR_UINT64_T_FMT "\n",
               RD(c->sessions_started));
    meta(r, "memds_sessions_completed_total", "counter",
         "Sync sessions completed (anchors committed).");
    ap_rprintf(r, "memds_sessions_completed_total %" APR_UINT64_T_FMT "\n",
               RD(c->sessions_completed));
    meta(r, "memds_items_total", "counter",
         "Items in Sync commands: up from the devices, down to them.");
    ap_rprintf(r,
               "memds_items_total{direction=\"up\"} %" APR_UINT64_T_FMT "\n"
               "memds_items_total{direction=\"down\"} %" APR_UINT64_T_FMT
               "\n",
               RD(c->items_up), RD(c->items_down));
    meta(r, "memds_sync_alerts_total", "counter",
         "Sync alerts the devices sent, by sync type.");
    for (i = 0; i < 7; ++i) {
        ap_rprintf(r, "memds_sync_alerts_total{type=\"%s\"} %" APR_UINT64_T_FMT
                   "\n", alerts[i], RD(c->sync_alerts[i]));
    }

    meta(r, "memds_imap_command_duration_seconds", "histogram",
         "IMAP commands by kind (connect: TCP, TLS and login), all "
         "children.");
    for (op = MEMDS_OP_IMAP_CONNECT; op <= MEMDS_OP_IMAP_OTHER; ++op) {
        hist(r, "memds_imap_command_duration_seconds", "command",
             memds_stats_op_label((memds_op_e)op), &s->op[op]);
    }
    errors(r, "memds_imap_errors_total",
           "IMAP commands that failed (NO, BAD, I/O, timeout).", "command", s,
           MEMDS_OP_IMAP_CONNECT, MEMDS_OP_IMAP_OTHER);
    meta(r, "memds_smtp_submission_duration_seconds", "histogram",
         "SMTP submissions, connect to QUIT.");
    hist(r, "memds_smtp_submission_duration_seconds", NULL, NULL,
         &s->op[MEMDS_OP_SMTP_SEND]);
    meta(r, "memds_smtp_errors_total", "counter",
         "SMTP submissions that failed (refused, unreachable, in doubt).");
    ap_rprintf(r, "memds_smtp_errors_total %" APR_UINT64_T_FMT "\n",
               RD(s->op[MEMDS_OP_SMTP_SEND].errors));
    meta(r, "memds_db_query_duration_seconds", "histogram",
         "PostgreSQL statements of the module's pools.");
    hist(r, "memds_db_query_duration_seconds", NULL, NULL,
         &s->op[MEMDS_OP_PG_QUERY]);
    meta(r, "memds_db_transaction_duration_seconds", "histogram",
         "PostgreSQL transactions, BEGIN to COMMIT or ROLLBACK.");
    hist(r, "memds_db_transaction_duration_seconds", NULL, NULL,
         &s->op[MEMDS_OP_PG_TX]);
    errors(r, "memds_db_errors_total",
           "PostgreSQL statements that failed and transactions rolled back.",
           "kind", s, MEMDS_OP_PG_QUERY, MEMDS_OP_PG_TX);
    meta(r, "memds_push_delivery_duration_seconds", "histogram",
         "Deliveries of a Server Alerted Notification to a device.");
    hist(r, "memds_push_delivery_duration_seconds", NULL, NULL,
         &s->op[MEMDS_OP_PUSH_SEND]);
    memds_hist_read(&s->op[MEMDS_OP_PUSH_SEND], cum, &sum, &err);
    meta(r, "memds_push_deliveries_total", "counter",
         "Push deliveries by result (a failure is kept and retried).");
    ap_rprintf(r,
               "memds_push_deliveries_total{result=\"sent\"} "
               "%" APR_UINT64_T_FMT "\n"
               "memds_push_deliveries_total{result=\"failed\"} "
               "%" APR_UINT64_T_FMT "\n",
               cum[MEMDS_HIST_BUCKETS - 1] >= err ? cum[MEMDS_HIST_BUCKETS - 1] - err : 0,
               err);
    if (conn) {
        memds_store_t st;
        apr_int64_t n = 0;
        memds_store_init(&st, conn, r->pool);
        if (memds_admin_outbox_stuck(&st, &n) == APR_SUCCESS) {
            meta(r, "memds_outbox_stuck", "gauge",
                 "Outbox messages stuck (memds-admin outbox shows why).");
            ap_rprintf(r, "memds_outbox_stuck %" APR_INT64_T_FMT "\n", n);
        }
    }
}
