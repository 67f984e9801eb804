/* memds_status.c: the memds-status handler, text or JSON.
 *
 * Request counters are shared by all children of the running generation;
 * pool figures are those of the child that answers (each child has its own
 * connections), so they are labelled with its pid. */
#include "memds_glue.h"

#include <http_protocol.h>
#include <http_request.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include <unistd.h>

#include "store/memds_migrate.h"
#include "store/memds_store.h"
#include "store/memds_throttle.h"

typedef struct stat_line_t {
    const char *key;
    apr_uint64_t value;
} stat_line_t;

static int wants_json(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    if (r->args
        && (strcmp(r->args, "json") == 0
            || strstr(r->args, "format=json") != NULL)) {
        return 1;
    }
    return accept && strstr(accept, "application/json") != NULL;
}

static int wants_prometheus(request_rec *r)
{
    return r->args && strstr(r->args, "format=prometheus") != NULL;
}

/* One metric's HELP and TYPE lines. */
static void meta(request_rec *r, const char *name, const char *type,
                 const char *help)
{
    ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The Prometheus text exposition format (version 0.0.4): the request
 * counters of all children, the database's figures, this child's pool. */
/* Throttling (docs/throttle.md): refusals since the last start, and from
 * the database (-1: not read) items in quarantine and devices blocked. */
static void throttle_prometheus(request_rec *r, memds_counters_t *c,
                                apr_int64_t quar_items, apr_int64_t held)
{
    meta(r, "memds_sessions_refused_total", "counter",
         "New sessions refused: over a limit of MemDSLimit (throttled), "
         "of a blocked device (blocked).");
    ap_rprintf(r,
               "memds_sessions_refused_total{reason=\"throttled\"} "
               "%" APR_UINT64_T_FMT "\n"
               "memds_sessions_refused_total{reason=\"blocked\"} "
               "%" APR_UINT64_T_FMT "\n",
               apr_atomic_read64(&c->throttled),
               apr_atomic_read64(&c->blocked));
    if (quar_items >= 0) {
        meta(r, "memds_quarantine_items", "gauge",
             "Server items in quarantine (left out of a device's syncs).");
        ap_rprintf(r, "memds_quarantine_items %" APR_INT64_T_FMT "\n",
                   quar_items);
        meta(r, "memds_devices_blocked", "gauge",
             "Devices blocked now (autoblock or memds-admin block).");
        ap_rprintf(r, "memds_devices_blocked %" APR_INT64_T_FMT "\n", held);
    }
}

static void prometheus(request_rec *r, const stat_line_t *lines, int n,
                       int db_ok, int schema, apr_int64_t active,
                       apr_int64_t devices, const apr_array_header_t *gauges,
                       const memds_pgpool_stats_t *ps, int pooled)
{
    long pid = (long)getpid();
    int i, k;

    meta(r, "memds_requests_total", "counter",
         "Requests that reached the sync handler since the last start.");
    ap_rprintf(r, "memds_requests_total %" APR_UINT64_T_FMT "\n",
               lines[0].value);
    meta(r, "memds_responses_total", "counter", "Answers by HTTP status.");
    ap_rprintf(r, "memds_responses_total{code=\"200\"} %" APR_UINT64_T_FMT "\n",
               lines[1].value);
    for (i = 2; i < n; ++i) {
        if (strncmp(lines[i].key, "http_", 5) == 0) {
            ap_rprintf(r,
                       "memds_responses_total{code=\"%s\"} %" APR_UINT64_T_FMT
                       "\n",
                       lines[i].key + 5, lines[i].value);
        }
    }
    meta(r, "memds_bytes_total", "counter",
         "SyncML message bytes, uncompressed.");
    for (i = 0; i < n; ++i) {
        if (strncmp(lines[i].key, "bytes_", 6) == 0) {
            ap_rprintf(r,
                       "memds_bytes_total{direction=\"%s\"} %" APR_UINT64_T_FMT
                       "\n",
                       lines[i].key + 6, lines[i].value);
        }
    }
    meta(r, "memds_database_up", "gauge", "PostgreSQL answered this scrape.");
    ap_rprintf(r, "memds_database_up %d\n", db_ok);
    meta(r, "memds_schema_version", "gauge", "The database's schema version.");
    ap_rprintf(r, "memds_schema_version %d\n", schema);
    meta(r, "memds_schema_version_required", "gauge",
         "The schema version the module needs.");
    ap_rprintf(r, "memds_schema_version_required %d\n", MEMDS_SCHEMA_VERSION);
    if (db_ok) {
        static const struct {
            const char *kind, *metric, *label, *help;
        } g[] = { { "push_pending", "memds_push_pending", NULL,
                    "Push notifications waiting to be delivered." },
                  { "outbox", "memds_outbox_messages", "state",
                    "Outbox ledger rows by state." },
                  { "wipe", "memds_devices_wipe", "wipe",
                    "Devices by remote-wipe state." } };
        meta(r, "memds_sessions_active", "gauge",
             "Sessions neither finished nor expired.");
        ap_rprintf(r, "memds_sessions_active %" APR_INT64_T_FMT "\n", active);
        meta(r, "memds_devices", "gauge", "Known devices.");
        ap_rprintf(r, "memds_devices %" APR_INT64_T_FMT "\n", devices);
        for (k = 0; k < 3; ++k) {
            int seen = 0;
            meta(r, g[k].metric, "gauge", g[k].help);
            for (i = 0; gauges && i < gauges->nelts; ++i) {
                const memds_gauge_t *x = &APR_ARRAY_IDX(gauges, i,
                                                        memds_gauge_t);
                if (strcmp(x->name, g[k].kind) != 0) {
                    continue;
                }
                seen = 1;
                if (g[k].label) {
                    ap_rprintf(r, "%s{%s=\"%s\"} %" APR_INT64_T_FMT "\n",
                               g[k].metric, g[k].label, x->label, x->value);
                }
                else {
                    ap_rprintf(r, "%s %" APR_INT64_T_FMT "\n", g[k].metric,
                               x->value);
                }
            }
            if (!seen && !g[k].label) {
                ap_rprintf(r, "%s 0\n", g[k].metric);
            }
        }
    }
    if (pooled) {
        meta(r, "memds_db_pool_connections", "gauge",
             "PostgreSQL connections of the child that answered.");
        ap_rprintf(r,
                   "memds_db_pool_connections{pid=\"%ld\",state=\"open\"} %u\n"
                   "memds_db_pool_connections{pid=\"%ld\",state=\"in_use\"} "
                   "%u\n",
                   pid, ps->open, pid, ps->in_use);
        meta(r, "memds_db_pool_events_total", "counter",
             "Pool events of the child that answered.");
        ap_rprintf(r,
                   "memds_db_pool_events_total{pid=\"%ld\",event=\"connect\"} "
                   "%" APR_UINT64_T_FMT "\n"
                   "memds_db_pool_events_total{pid=\"%ld\",event=\"connect_"
                   "failure\"} %" APR_UINT64_T_FMT "\n"
                   "memds_db_pool_events_total{pid=\"%ld\",event=\"acquire\"} "
                   "%" APR_UINT64_T_FMT "\n"
                   "memds_db_pool_events_total{pid=\"%ld\",event=\"acquire_"
                   "failure\"} %" APR_UINT64_T_FMT "\n"
                   "memds_db_pool_events_total{pid=\"%ld\",event=\"acquire_"
                   "wait\"} %" APR_UINT64_T_FMT "\n",
                   pid, ps->connects, pid, ps->connect_fails, pid, ps->acquires,
                   pid, ps->acquire_fails, pid, ps->acquire_waits);
        meta(r, "memds_db_pool_wait_seconds_total", "counter",
             "Time the child's requests waited for a free PostgreSQL "
             "connection.");
        ap_rprintf(r, "memds_db_pool_wait_seconds_total{pid=\"%ld\"} %.3f\n",
                   pid, (double)ps->acquire_wait_ms / 1000.0);
    }
}

int memds_status_handler(request_rec *r)
{
    memds_srv_conf *sc;
    memds_counters_t zero, *c;
    memds_pgpool_stats_t ps;
    const memds_pgpool_params_t *pp = NULL;
    stat_line_t lines[32];
    int n = 0, i, json, db_ok = 0, schema = 0;
    apr_int64_t active = 0, devices = 0;
    apr_array_header_t *gauges = NULL;
    apr_int64_t quar_items = -1, held_devices = -1;
    memds_pgconn_t *dbconn = NULL;
    int imax = 0, isecs = 0, ikept = 0;

    if (r->handler == NULL || strcmp(r->handler, "memds-status") != 0) {
        return DECLINED;
    }
    ap_allow_methods(r, REPLACE_ALLOW, "GET", "HEAD", "OPTIONS", NULL);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    sc = memds_srv_conf_get(r->server);
    memset(&zero, 0, sizeof(zero));
    c = sc->counters ? sc->counters : &zero;
    if (sc->imap_cache) {
        memds_imap_cache_stats(sc->imap_cache, &imax, &isecs, &ikept);
    }
    memset(&ps, 0, sizeof(ps));
    if (sc->pgpool) {
        memds_pgconn_t *conn;
        const char *err = NULL;
        memds_pgpool_get_stats(&ps, sc->pgpool);
        pp = memds_pgpool_params(sc->pgpool);
        /* Database figures, when it answers (the page still works when
         * it does not: that is when admins look at it). */
        if (memds_pgpool_acquire_for(&conn, sc->pgpool, &err, r->pool)
            == APR_SUCCESS) {
            memds_store_t st;
            memds_store_init(&st, conn, r->pool);
            dbconn = conn;
            db_ok = memds_store_schema_version(&schema, conn, &err, r->pool)
                        == APR_SUCCESS
                    && memds_store_counts(&st, &active, &devices)
                           == APR_SUCCESS;
            if (db_ok && wants_prometheus(r)
                && memds_store_gauges(&st, &gauges) != APR_SUCCESS) {
                gauges = NULL; /* (the rest still shows) */
            }
            if (db_ok && wants_prometheus(r)
                && memds_throttle_gauges(&st, &quar_items, &held_devices)
                       != APR_SUCCESS) {
                quar_items = held_devices = -1;
            }
        }
    }

#define L(k, v) \
    do { \
        lines[n].key = (k); \
        lines[n].value = (v); \
        ++n; \
    } while (0)
    L("requests", apr_atomic_read64(&c->requests));
    L("answered", apr_atomic_read64(&c->answered));
    L("http_400", apr_atomic_read64(&c->bad_body));
    L("http_405", apr_atomic_read64(&c->bad_method));
    L("http_413", apr_atomic_read64(&c->too_large));
    L("http_415", apr_atomic_read64(&c->bad_type));
    L("http_500", apr_atomic_read64(&c->failed));
    L("http_503", apr_atomic_read64(&c->unavailable));
    L("bytes_in", apr_atomic_read64(&c->bytes_in));
    L("bytes_out", apr_atomic_read64(&c->bytes_out));
#undef L

    if (wants_prometheus(r)) {
        ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        if (!r->header_only) {
            prometheus(r, lines, n, db_ok, schema, active, devices, gauges, &ps,
                       sc->pgpool != NULL);
            throttle_prometheus(r, c, quar_items, held_devices);
            memds_metrics_prometheus(r, c, db_ok ? dbconn : NULL);
        }
        return OK;
    }
    json = wants_json(r);
    ap_set_content_type(r, json ? "application/json"
                                : "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    if (json) {
        ap_rputs("{\n  \"module\": \"mod_memds " MEMDS_VERSION "\",\n", r);
        ap_rprintf(r, "  \"schema_version_required\": %d,\n",
                   MEMDS_SCHEMA_VERSION);
        ap_rprintf(
            r,
            "  \"database\": {\"reachable\": %s, \"schema_version\": %d, "
            "\"active_sessions\": %" APR_INT64_T_FMT
            ", \"devices\": %" APR_INT64_T_FMT "},\n",
            db_ok ? "true" : "false", schema, active, devices);
        ap_rputs("  \"requests\": {", r);
        for (i = 0; i < n; ++i) {
            ap_rprintf(r, "%s\n    \"%s\": %" APR_UINT64_T_FMT, i ? "," : "",
                       lines[i].key, lines[i].value);
        }
        ap_rputs("\n  },\n", r);
        ap_rprintf(r,
                   "  \"db_pool\": {\n    \"pid\": %ld,\n"
                   "    \"configured\": %s,\n    \"max\": %d,\n"
                   "    \"keep\": %d,\n    \"open\": %u,\n    \"in_use\": %u,\n"
                   "    \"connects\": %" APR_UINT64_T_FMT ",\n"
                   "    \"connect_failures\": %" APR_UINT64_T_FMT ",\n"
                   "    \"replaced\": %" APR_UINT64_T_FMT ",\n"
                   "    \"acquires\": %" APR_UINT64_T_FMT ",\n"
                   "    \"acquire_failures\": %" APR_UINT64_T_FMT ",\n"
                   "    \"acquire_waits\": %" APR_UINT64_T_FMT ",\n"
                   "    \"acquire_wait_ms\": %" APR_UINT64_T_FMT "\n  },\n",
                   (long)getpid(), sc->pgpool ? "true" : "false",
                   pp ? pp->max : 0, pp ? pp->keep : 0, ps.open, ps.in_use,
                   ps.connects, ps.connect_fails, ps.replaced, ps.acquires,
                   ps.acquire_fails, ps.acquire_waits, ps.acquire_wait_ms);
        ap_rprintf(r,
                   "  \"imap_cache\": {\"max\": %d, \"idle_secs\": %d, "
                   "\"kept\": %d}\n}\n",
                   imax, isecs, ikept);
        return OK;
    }
    ap_rputs("mod_memds " MEMDS_VERSION "\n", r);
    ap_rprintf(r, "schema version required: %d\n", MEMDS_SCHEMA_VERSION);
    if (db_ok) {
        ap_rprintf(r,
                   "database: reachable, schema version %d, %" APR_INT64_T_FMT
                   " active sessions, %" APR_INT64_T_FMT " devices\n\n",
                   schema, active, devices);
    }
    else {
        ap_rputs("database: NOT reachable (see the error log)\n\n", r);
    }
    ap_rputs("Requests (all children since the last (re)start):\n", r);
    for (i = 0; i < n; ++i) {
        ap_rprintf(r, "  %-10s %" APR_UINT64_T_FMT "\n", lines[i].key,
                   lines[i].value);
    }
    ap_rprintf(r,
               "\nIMAP connections kept (child pid %ld): %d of at most %d,"
               " each for %d s idle\n",
               (long)getpid(), ikept, imax, isecs);
    ap_rprintf(r, "\nPostgreSQL pool (child pid %ld):\n", (long)getpid());
    if (!sc->pgpool) {
        ap_rputs("  not configured in this server\n", r);
        return OK;
    }
    ap_rprintf(r,
               "  max              %d\n  keep             %d\n"
               "  open             %u\n  in_use           %u\n"
               "  connects         %" APR_UINT64_T_FMT "\n"
               "  connect_failures %" APR_UINT64_T_FMT "\n"
               "  replaced         %" APR_UINT64_T_FMT "\n"
               "  acquires         %" APR_UINT64_T_FMT "\n"
               "  acquire_failures %" APR_UINT64_T_FMT "\n"
               "  acquire_waits    %" APR_UINT64_T_FMT "\n"
               "  acquire_wait_ms  %" APR_UINT64_T_FMT "\n",
               pp->max, pp->keep, ps.open, ps.in_use, ps.connects,
               ps.connect_fails, ps.replaced, ps.acquires, ps.acquire_fails,
               ps.acquire_waits, ps.acquire_wait_ms);
    return OK;
}
