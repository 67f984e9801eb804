/* memds-admin: administration tool for mod_memds.
 *
 *   memds-admin migrate --db CONNINFO [--schema DIR]
 *   memds-admin schema-version --db CONNINFO
 *   memds-admin md5-set --db CONNINFO USER     (password on standard input)
 *   memds-admin server-password --db CONNINFO [--md5|--basic]
 *               [--server-id ID] ACCOUNT DEVID       (password on stdin)
 *   memds-admin server-password --db CONNINFO --delete ACCOUNT DEVID
 *   memds-admin truncate --db CONNINFO ACCOUNT off|SIZE|default
 *   memds-admin wipe|enable --db CONNINFO ACCOUNT DEVID
 *   memds-admin accounts|devices|sessions|push --db CONNINFO [--json]
 *               [ACCOUNT]
 *   memds-admin outbox --db CONNINFO [--json] [--all] [ACCOUNT]
 *   memds-admin outbox --db CONNINFO retry|drop ID
 *   memds-admin end-session --db CONNINFO ACCOUNT DEVID
 *   memds-admin push-register --db CONNINFO ACCOUNT DEVID http URL
 *   memds-admin push-register --db CONNINFO ACCOUNT DEVID sms +NUMBER
 *   memds-admin push-register --db CONNINFO --delete ACCOUNT DEVID
 *
 *   memds-admin help [VERB]       (or VERB --help; memds-admin.1 too)
 *
 * --config HTTPD_CONF instead of --db: the MemDSDatabase of httpd's
 * configuration (memds_admin_ops.c). Exit codes: 0 success, 1 failure,
 * 2 usage error. */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/memds_util.h"
#include "store/memds_migrate.h"
#include "store/memds_store.h"
#include "store/memds_mailstore.h"
#include "store/memds_pushstore.h"
#include "ds/memds_auth.h"
#include "memds_admin_throttle.h"
#include "memds_admin_ops.h"

#ifndef MEMDS_SCHEMA_DIR
#define MEMDS_SCHEMA_DIR "schema"
#endif

static void log_stderr(void *baton, int level, apr_status_t rv, const char *msg)
{
    fprintf(level <= MEMDS_LOG_WARNING ? stderr : stdout, "memds-admin: %s\n",
            msg);
}

/* The password: the first line of standard input, without its line end. */
static int read_password(char *line, size_t size, const char **perr)
{
    apr_size_t n;

    if (fgets(line, (int)size, stdin) == NULL) {
        *perr = "no password on standard input";
        return 1;
    }
    n = strcspn(line, "\r\n");
    line[n] = '\0';
    if (n == 0) {
        *perr = "empty password";
        return 1;
    }
    return 0;
}

/* One connection to db for a store (released by the caller). */
static int store_connect(memds_store_t *st, memds_pgpool_t **ppool,
                         memds_pgconn_t **pconn, const char *db,
                         const char **perr, apr_pool_t *p)
{
    return adm_connect(st, ppool, pconn, db, perr, p);
}

/* md5-set: read the password (first line of stdin), store the inner value. */
static int md5_set(const char *db, const char *user, const char **perr,
                   apr_pool_t *p)
{
    char line[1024];
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;

    if (read_password(line, sizeof(line), perr) != 0
        || store_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (memds_store_md5_put(&st, user, memds_auth_md5_inner(user, line, p),
                            "admin")
        != APR_SUCCESS) {
        *perr = st.err;
        memds_pgpool_release(pool, conn, 1);
        return 1;
    }
    memset(line, 0, sizeof(line));
    memds_pgpool_release(pool, conn, 0);
    printf("memds-admin: md5 credential data of %s stored\n", user);
    return 0;
}

/* server-password: the server's credentials towards one device of an
 * account (memds.server_credentials), answering the device's challenges
 * and the secret of a SAN digest; or --delete them. */
static int server_password(const char *db, const char *account,
                           const char *devid, const char *server_id,
                           int allow_basic, int del, const char **perr,
                           apr_pool_t *p)
{
    char line[1024];
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    memds_server_cred_t sc;
    apr_status_t rv;

    if ((!del && read_password(line, sizeof(line), perr) != 0)
        || store_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (del) {
        rv = memds_store_server_cred_delete(&st, account, devid);
    }
    else {
        memset(&sc, 0, sizeof(sc));
        sc.server_id = server_id;
        sc.password = line;
        sc.allow_basic = allow_basic;
        rv = memds_store_server_cred_put(&st, account, devid, &sc);
        memset(line, 0, sizeof(line));
    }
    if (rv != APR_SUCCESS) {
        *perr = rv == APR_ENOENT ? "no server password was set for that device"
                                 : st.err;
        memds_pgpool_release(pool, conn, rv != APR_ENOENT);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    printf("memds-admin: server password towards device %s of %s %s\n", devid,
           account,
           del           ? "removed"
           : allow_basic ? "stored (answers basic and md5 challenges)"
                         : "stored (answers md5 challenges)");
    return 0;
}

/* truncate: an account's truncation setting (memds.account_settings):
 * "off", a size (K/M/G suffix), or "default" (MemDSTruncate). */
static int truncate_set(const char *db, const char *account, const char *value,
                        const char **perr, apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    const char *v = NULL;
    apr_off_t n;

    if (strcasecmp(value, "off") == 0) {
        v = "off";
    }
    else if (strcasecmp(value, "default") != 0) {
        if (memds_parse_size(&n, value, 0, (apr_off_t)1024 * 1024 * 1024)
            != APR_SUCCESS) {
            *perr = apr_psprintf(p,
                                 "'%s' is neither off, default nor a size up "
                                 "to 1G (bytes, or with a K, M or G suffix)",
                                 value);
            return 1;
        }
        v = apr_off_t_toa(p, n);
    }
    if (store_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (memds_account_truncate_set(&st, account, v) != APR_SUCCESS) {
        *perr = st.err;
        memds_pgpool_release(pool, conn, 1);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    printf("memds-admin: truncation of %s: %s\n", account,
           v == NULL               ? "MemDSTruncate (the default)"
           : strcmp(v, "off") == 0 ? "off (whole mail)"
                                   : apr_pstrcat(p, v, " bytes", NULL));
    return 0;
}

/* wipe / enable: the administrator's order for one device. */
static int device_order(const char *db, const char *cmd, const char *account,
                        const char *devid, const char **perr, apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_status_t rv;

    if (store_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    rv = memds_store_device_order(&st, account, devid, cmd);
    if (rv != APR_SUCCESS) {
        *perr = rv == APR_ENOENT ? "no such device (it never synced)" : st.err;
        memds_pgpool_release(pool, conn, rv != APR_ENOENT);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    printf("memds-admin: device %s of %s %s\n", devid, account,
           strcmp(cmd, "wipe") == 0
               ? "will be wiped at its next sessions (every item and folder "
                 "it has from this server deleted), then refused"
               : "enabled: its next sync is a slow sync");
    return 0;
}

/* push-register: the device's push channel (or --delete it). */
static int push_register(const char *db, const char *account, const char *devid,
                         const char *channel, const char *address, int del,
                         const char **perr, apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_status_t rv;

    if (!del && (*perr = memds_push_channel_check(channel, address)) != NULL) {
        if (channel == NULL || address == NULL
            || (strcmp(channel, "http") != 0 && strcmp(channel, "sms") != 0)) {
            *perr = "the channel is http followed by an http:// or https:// "
                    "URL, or sms followed by a phone number";
        }
        return 1;
    }
    if (store_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    rv = memds_push_register(&st, account, devid, del ? NULL : channel,
                             del ? NULL : address);
    if (rv != APR_SUCCESS) {
        *perr = rv == APR_ENOENT ? (del ? "the device has no push channel"
                                        : "no such device (it never synced)")
                                 : st.err;
        memds_pgpool_release(pool, conn, rv != APR_ENOENT);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    printf("memds-admin: push channel of device %s of %s %s%s\n", devid,
           account, del ? "removed" : "set to ", del ? "" : address);
    return 0;
}

/* sessions, outbox, push: a report as a table, or JSON (an array of
 * objects) with --json. */
static int report(const char *db, const char *which, const char *account,
                  int json, const char **perr, apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_array_header_t *rows;
    const char *const *cols;
    int i, k, nc;

    if (store_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (memds_store_report(&st, &cols, &rows, which, account) != APR_SUCCESS) {
        *perr = st.err;
        memds_pgpool_release(pool, conn, 1);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    for (nc = 0; cols[nc]; ++nc) {
    }
    if (json) {
        printf("[");
        for (i = 0; i < rows->nelts; ++i) {
            const char **r = APR_ARRAY_IDX(rows, i, const char **);
            printf("%s\n  {", i ? "," : "");
            for (k = 0; k < nc; ++k) {
                printf("%s", k ? ", " : "");
                adm_json_str(stdout, cols[k]);
                printf(": ");
                adm_json_str(stdout, r[k]);
            }
            printf("}");
        }
        printf("%s]\n", rows->nelts ? "\n" : "");
        return 0;
    }
    for (k = 0; k < nc; ++k) {
        printf("%s%s", k ? "\t" : "", cols[k]);
    }
    printf("\n");
    for (i = 0; i < rows->nelts; ++i) {
        const char **r = APR_ARRAY_IDX(rows, i, const char **);
        for (k = 0; k < nc; ++k) {
            printf("%s%s", k ? "\t" : "", *r[k] ? r[k] : "-");
        }
        printf("\n");
    }
    return 0;
}

/* end-session: the device's sessions in progress expire now. */
static int end_session(const char *db, const char *account, const char *devid,
                       const char **perr, apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    int n = 0;

    if (store_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (memds_store_end_sessions(&st, &n, account, devid) != APR_SUCCESS) {
        *perr = st.err;
        memds_pgpool_release(pool, conn, 1);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    printf("memds-admin: %d session%s of device %s of %s ended (its next "
           "message gets 400, session expired)\n",
           n, n == 1 ? "" : "s", devid, account);
    return 0;
}

static int usage(void)
{
    return adm_usage(); /* (every verb's help: memds_admin_ops.c) */
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    const char *cmd, *db = getenv("MEMDS_PG"), *dir = MEMDS_SCHEMA_DIR;
    const char *err = NULL, *user = NULL, *devid = NULL, *server_id = NULL;
    const char *extra1 = NULL, *extra2 = NULL, *config = NULL;
    memds_logger_t lg = { log_stderr, NULL };
    int i, napplied = 0, version = 0, rc = 1, allow_basic = 0, del = 0,
           json = 0, all = 0, db_given = 0;
    apr_status_t rv;

    if (argc < 2) {
        return usage();
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0
        || strcmp(argv[1], "-h") == 0) {
        return adm_help(argc > 2 ? argv[2] : NULL, stdout);
    }
    if (!adm_verb_known(argv[1])) {
        return adm_help(argv[1], stdout); /* (says so; 2) */
    }
    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&p, NULL);
    cmd = argv[1];
    for (i = 2; i < argc; ++i) {
        if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
            db_given = 1;
        }
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        }
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return adm_help(cmd, stdout);
        }
        else if (strcmp(argv[i], "--all") == 0) {
            all = 1;
        }
        else if (strcmp(argv[i], "--schema") == 0 && i + 1 < argc) {
            dir = argv[++i];
        }
        else if (strcmp(argv[i], "--server-id") == 0 && i + 1 < argc) {
            server_id = argv[++i];
        }
        else if (strcmp(argv[i], "--basic") == 0
                 || strcmp(argv[i], "--md5") == 0) {
            allow_basic = strcmp(argv[i], "--basic") == 0;
        }
        else if (strcmp(argv[i], "--delete") == 0) {
            del = 1;
        }
        else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        }
        else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc) {
            ++i; /* (block: memds_admin_throttle.c reads it) */
        }
        else if (strcmp(argv[i], "--release") == 0) {
            continue; /* (quarantine: memds_admin_throttle.c) */
        }
        else if (argv[i][0] != '-' && user == NULL) {
            user = argv[i];
        }
        else if (argv[i][0] != '-' && devid == NULL) {
            devid = argv[i];
        }
        else if (argv[i][0] != '-' && extra1 == NULL) {
            extra1 = argv[i];
        }
        else if (argv[i][0] != '-' && extra2 == NULL) {
            extra2 = argv[i];
        }
        else {
            return usage();
        }
    }
    if (extra1 != NULL && strcmp(cmd, "push-register") != 0
        && strcmp(cmd, "quarantine") != 0) {
        return usage();
    }
    if ((config != NULL && !db_given) || db == NULL) {
        /* httpd's own configuration: --config, else the usual places */
        if (adm_db_from_config(&db, config, &err, p) != 0) {
            fprintf(stderr, "memds-admin: %s\n", err);
            return 2;
        }
    }
    if (strcmp(cmd, "migrate") == 0) {
        rv = memds_migrate_run(&napplied, &version, db, dir, &lg, &err, p);
        if (rv == APR_SUCCESS) {
            printf(
                "memds-admin: schema at version %d (%d migration%s applied)\n",
                version, napplied, napplied == 1 ? "" : "s");
            rc = 0;
        }
    }
    else if (strcmp(cmd, "schema-version") == 0) {
        rv = memds_migrate_version(&version, db, &err, p);
        if (rv == APR_SUCCESS) {
            printf("%d\n", version);
            rc = 0;
        }
    }
    else if (strcmp(cmd, "md5-set") == 0 && user != NULL && devid == NULL) {
        rc = md5_set(db, user, &err, p);
    }
    else if (strcmp(cmd, "server-password") == 0 && devid != NULL
             && (server_id == NULL || *server_id)) {
        rc = server_password(db, user, devid, server_id, allow_basic, del, &err,
                             p);
    }
    else if ((strcmp(cmd, "wipe") == 0 || strcmp(cmd, "enable") == 0)
             && devid != NULL) {
        rc = device_order(db, cmd, user, devid, &err, p);
    }
    else if (strcmp(cmd, "push-register") == 0 && devid != NULL
             && (del ? extra1 == NULL : extra2 != NULL)) {
        rc = push_register(db, user, devid, extra1, extra2, del, &err, p);
    }
    else if (strcmp(cmd, "outbox") == 0 && devid != NULL && user != NULL
             && (strcmp(user, "retry") == 0 || strcmp(user, "drop") == 0)) {
        rc = adm_outbox_act(db, user, devid, &err, p);
    }
    else if (strcmp(cmd, "outbox") == 0 && devid == NULL) {
        rc = adm_outbox(db, user, all, json, &err, p);
    }
    else if (strcmp(cmd, "accounts") == 0 && devid == NULL) {
        rc = adm_accounts(db, user, json, &err, p);
    }
    else if ((strcmp(cmd, "sessions") == 0 || strcmp(cmd, "push") == 0)
             && devid == NULL) {
        rc = report(db, cmd, user, json, &err, p);
    }
    else if (strcmp(cmd, "end-session") == 0 && devid != NULL) {
        rc = end_session(db, user, devid, &err, p);
    }
    else if (strcmp(cmd, "devices") == 0 && devid == NULL) {
        rc = adm_devices(db, user, json, &err, p);
    }
    else if (adm_throttle_verb(cmd)) {
        rc = adm_throttle(cmd, argc, argv, db, &err, p);
        if (rc == 2) {
            apr_pool_destroy(p);
            return usage();
        }
    }
    else if (strcmp(cmd, "truncate") == 0 && devid != NULL) {
        rc = truncate_set(db, user, devid, &err, p);
    }
    else {
        apr_pool_destroy(p);
        return usage();
    }
    if (rc == 0 && strcmp(cmd, "devices") == 0 && !json) {
        rc = adm_blocked_devices(db, user, &err, p); /* docs/throttle.md */
    }
    if (rc != 0) {
        fprintf(stderr, "memds-admin: %s failed: %s\n", cmd,
                err ? err : "unknown error");
    }
    apr_pool_destroy(p);
    return rc;
}
