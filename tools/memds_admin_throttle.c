/* memds_admin_throttle.c: memds-admin block, unblock, quarantine (see
 * memds_admin_throttle.h, docs/throttle.md).
 *
 *   memds-admin block ACCOUNT DEVICE [--until TIME]
 *   memds-admin unblock ACCOUNT DEVICE
 *   memds-admin quarantine [ACCOUNT [DEVICE]] [--json]
 *   memds-admin quarantine --release ACCOUNT [DEVICE [GUID]]
 *
 * TIME: a PostgreSQL timestamp ('2026-12-24 18:00 UTC'), or +N with s, m,
 * h or d (from now); without --until: until unblocked. */
#include "memds_admin_throttle.h"
#include "memds_admin_ops.h"

#include <apr_strings.h>
#include <apr_time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/memds_pgpool.h"
#include "store/memds_store.h"
#include "store/memds_throttle.h"

int adm_throttle_verb(const char *cmd)
{
    return strcmp(cmd, "block") == 0 || strcmp(cmd, "unblock") == 0
           || strcmp(cmd, "quarantine") == 0;
}

/* --until: +N[smhd] becomes the time that far from now (UTC), else as
 * given (PostgreSQL reads it); NULL when malformed. */
static const char *until_of(const char *s, apr_pool_t *p)
{
    char *end;
    long n;
    apr_time_exp_t t;
    apr_int64_t secs;

    if (s == NULL || s[0] != '+') {
        return s;
    }
    n = strtol(s + 1, &end, 10);
    if (end == s + 1 || n <= 0 || n > 100000000L || (*end && end[1])
        || (*end && !strchr("smhd", *end))) {
        return NULL;
    }
    secs = (apr_int64_t)n
           * (*end == 'm'   ? 60
              : *end == 'h' ? 3600
              : *end == 'd' ? 86400
                            : 1);
    apr_time_exp_gmt(&t, apr_time_now() + apr_time_from_sec(secs));
    return apr_psprintf(p, "%04d-%02d-%02d %02d:%02d:%02d+00", t.tm_year + 1900,
                        t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
}

static int quarantine_show(memds_store_t *st, const char *account,
                           const char *devid, int json, const char **perr)
{
    apr_array_header_t *rows;
    int i;

    if (memds_quarantine_list(st, &rows, account, devid) != APR_SUCCESS) {
        *perr = st->err;
        return 1;
    }
    if (json) {
        printf("[");
        for (i = 0; i < rows->nelts; ++i) {
            const memds_quar_t *q = APR_ARRAY_IDX(rows, i, memds_quar_t *);
            printf("%s\n  {\"account\": ", i ? "," : "");
            adm_json_str(stdout, q->account);
            printf(", \"device\": ");
            adm_json_str(stdout, q->devid);
            printf(", \"store\": ");
            adm_json_str(stdout, q->store);
            printf(", \"guid\": ");
            adm_json_str(stdout, q->guid);
            printf(", \"state\": ");
            adm_json_str(stdout, q->state);
            printf(", \"count\": %d, \"status\": %d, \"reason\": ", q->count,
                   q->last_status);
            adm_json_str(stdout, q->reason);
            printf(", \"first\": ");
            adm_json_str(stdout, q->first_at);
            printf(", \"last\": ");
            adm_json_str(stdout, q->last_at);
            printf("}");
        }
        printf("%s]\n", rows->nelts ? "\n" : "");
        return 0;
    }
    printf("account\tdevice\tstore\tguid\tstate\tcount\tstatus\tfirst\tlast"
           "\treason\n");
    for (i = 0; i < rows->nelts; ++i) {
        const memds_quar_t *q = APR_ARRAY_IDX(rows, i, memds_quar_t *);
        printf("%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", q->account, q->devid,
               q->store, q->guid, q->state, q->count, q->last_status,
               q->first_at, q->last_at, q->reason);
    }
    return 0;
}

int adm_throttle(const char *cmd, int argc, const char *const *argv,
                 const char *db, const char **perr, apr_pool_t *p)
{
    const char *pos[3] = { NULL, NULL, NULL }, *until = NULL;
    int i, np = 0, json = 0, release = 0, rc = 0, n = 0;
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_status_t rv;

    for (i = 2; i < argc; ++i) {
        if ((strcmp(argv[i], "--db") == 0 || strcmp(argv[i], "--config") == 0
             || strcmp(argv[i], "--schema") == 0)
            && i + 1 < argc) {
            ++i;
        }
        else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc) {
            until = argv[++i];
        }
        else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        }
        else if (strcmp(argv[i], "--release") == 0) {
            release = 1;
        }
        else if (argv[i][0] != '-' && np < 3) {
            pos[np++] = argv[i];
        }
        else {
            return 2;
        }
    }
    if (strcmp(cmd, "quarantine") != 0
            ? (np != 2 || json || release
               || (until && strcmp(cmd, "block") != 0))
            : (until || (release ? np < 1 : np > 2))) {
        return 2;
    }
    if (until && (until = until_of(until, p)) == NULL) {
        *perr = "--until takes a time (e.g. '2026-12-24 18:00 UTC') or +N "
                "with s, m, h or d";
        return 1;
    }
    if (adm_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (strcmp(cmd, "block") == 0) {
        rv = memds_throttle_block(&st, pos[0], pos[1], until,
                                  "blocked by an administrator");
        if (rv == APR_SUCCESS) {
            printf("memds-admin: device %s of %s blocked %s%s\n", pos[1],
                   pos[0], until ? "until " : "until unblocked",
                   until ? until : "");
        }
    }
    else if (strcmp(cmd, "unblock") == 0) {
        rv = memds_throttle_unblock(&st, pos[0], pos[1]);
        if (rv == APR_SUCCESS) {
            printf("memds-admin: device %s of %s unblocked (its failures "
                   "forgotten)\n",
                   pos[1], pos[0]);
        }
        else if (rv == APR_ENOENT) {
            *perr = "nothing is known of this device";
            memds_pgpool_release(pool, conn, 0);
            return 1;
        }
    }
    else if (release) {
        rv = memds_quarantine_release(&st, &n, pos[0], pos[1], pos[2]);
        if (rv == APR_SUCCESS) {
            printf("memds-admin: %d item%s released: sent again at the "
                   "device's next sync\n",
                   n, n == 1 ? "" : "s");
        }
    }
    else {
        rv = APR_SUCCESS;
        rc = quarantine_show(&st, pos[0], pos[1], json, perr);
    }
    if (rv != APR_SUCCESS) {
        *perr = st.err;
        rc = 1;
    }
    memds_pgpool_release(pool, conn, rv != APR_SUCCESS);
    return rc;
}

int adm_blocked_devices(const char *db, const char *account, const char **perr,
                        apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_array_header_t *rows;
    int i;

    if (adm_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (memds_throttle_held(&st, &rows, account) != APR_SUCCESS) {
        *perr = st.err;
        memds_pgpool_release(pool, conn, 1);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    if (rows->nelts == 0) {
        return 0;
    }
    printf("\nBLOCKED (memds-admin unblock ACCOUNT DEVICE)\n");
    printf("%-16s %-28s %-19s %s\n", "ACCOUNT", "DEVICE", "SINCE (UTC)",
           "UNTIL (UTC) / WHY");
    for (i = 0; i < rows->nelts; ++i) {
        const memds_held_t *h = APR_ARRAY_IDX(rows, i, memds_held_t *);
        printf("%-16s %-28s %-19s %s: %s\n", h->account, h->devid, h->since,
               h->until, h->reason);
    }
    return 0;
}
