/* memds_admin_ops.c: see memds_admin_ops.h. */
#include "memds_admin_ops.h"

#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#include "util/memds_httpdconf.h"
#include "store/memds_adminstore.h"
#include "store/memds_pgpool.h"

/* ------------------------------------------------------------------ help */

typedef struct verb_t {
    const char *name, *synopsis, *text;
} verb_t;

#define DB "[--db CONNINFO | --config HTTPD_CONF]"

static const verb_t verbs[] = {
    { "migrate", "migrate " DB " [--schema DIR]",
      "Apply the numbered SQL migrations of DIR (default: the installed\n"
      "schema directory) that the database has not got yet, each in its own\n"
      "transaction. Safe to repeat and to run on several hosts at once.\n" },
    { "schema-version", "schema-version " DB,
      "Print the schema version of the database.\n" },
    { "md5-set", "md5-set " DB " USER < password",
      "Store the syncml:auth-md5 credential data of USER, B64(MD5(user:\n"
      "password)), from the password read on standard input. It is\n"
      "password-equivalent for SyncML md5 logins.\n" },
    { "server-password",
      "server-password " DB " [--md5|--basic] [--server-id ID]\n"
      "                ACCOUNT DEVID < password\n"
      "       memds-admin server-password " DB " --delete ACCOUNT DEVID",
      "The server's password towards device DEVID of ACCOUNT, read on\n"
      "standard input: the server answers the device's challenges with it\n"
      "and signs Server Alerted Notifications. --md5 (the default) answers\n"
      "md5 challenges only, --basic basic ones too; --server-id is the name\n"
      "the server presents (default: the sync URL as the device addresses\n"
      "it); --delete removes it.\n" },
    { "truncate", "truncate " DB " ACCOUNT off|SIZE|default",
      "How much of a mail ACCOUNT's devices get: off (whole mail), SIZE (a\n"
      "mail up to SIZE whole, a bigger one as its header and SIZE of text;\n"
      "K, M or G suffix, at most 1G), default (MemDSTruncate).\n" },
    { "wipe", "wipe " DB " ACCOUNT DEVID",
      "Remote wipe: at its next sessions device DEVID of ACCOUNT gets a\n"
      "Delete for every item and folder it has from this server, in every\n"
      "datastore it syncs; then it is refused (403) until `enable`. With a\n"
      "push channel the device is notified at once.\n" },
    { "enable", "enable " DB " ACCOUNT DEVID",
      "Let a wiped device sync again (its next sync is a slow sync).\n" },
    { "accounts", "accounts " DB " [--json] [ACCOUNT]",
      "Every account that has a device (or ACCOUNT): its devices, the last\n"
      "contact and the last completed sync of any of them, devices with a\n"
      "push channel, pending push notifications, the node whose IMAP IDLE\n"
      "watches its INBOX (memds.push_watch; \"(lease expired)\" when that\n"
      "node stopped renewing), and its outbox messages still open.\n"
      "Columns: account devices last_seen last_sync push_devices\n"
      "pending_notifications watched_by outbox_open.\n" },
    { "devices", "devices " DB " [--json] [ACCOUNT]",
      "Every device (of ACCOUNT): last contact and last completed sync, the\n"
      "sync types of its sessions still kept (two-way, slow, refresh-...;\n"
      "sessions are removed when they expire), its datastores with the\n"
      "items mapped (what a wipe still has to delete), push channel,\n"
      "pending notifications and the last push error, wipe state and\n"
      "times, its last session (phase; \"expired, not completed\" for one\n"
      "that failed or was abandoned), authentication failures in the\n"
      "current window, failed sessions in a row, and whether it is blocked\n"
      "(authentication limit, or held by `block` or the autoblock) and why.\n"
      "Without --json: one line per device (ACCOUNT DEVICE LAST-SEEN WIPE\n"
      "DATASTORES) and indented detail lines.\n" },
    { "sessions", "sessions " DB " [--json] [ACCOUNT]",
      "Sessions in progress: phase, datastores with their alert codes,\n"
      "server changes not yet acknowledged, last update, expiry.\n" },
    { "outbox",
      "outbox " DB " [--json] [--all] [ACCOUNT]\n"
      "       memds-admin outbox " DB " retry|drop ID",
      "The outbox ledger: every message a device asked to send and not yet\n"
      "acknowledged (--all: every row), with its state, attempts, next\n"
      "retry, SyncML status, reason, times, and why it is stuck (empty when\n"
      "it is not). States: received (stored, SMTP not started), submitting\n"
      "(the end of the message is being handed to the SMTP server),\n"
      "submitted (250), filed (copy in Sent), acknowledged (the device got\n"
      "the answer), rejected (refused for good, or dropped), retrying.\n"
      "A message is stuck after 5 minutes in received, submitting or\n"
      "submitted, after 5 failed attempts, or with its retry 5 minutes late.\n"
      "\n"
      "retry ID: a message in state received (SMTP never started) or\n"
      "retrying becomes due now; the background job (every 10 s) or the\n"
      "device's next sync sends it. Nothing else is retried: a message that\n"
      "reached submitting may have been delivered and is never sent again.\n"
      "drop ID: a message in state received, retrying or submitting is\n"
      "closed: state rejected, status 500, reason \"dropped by the\n"
      "administrator (was STATE)\"; the row and its message stay as a\n"
      "record, nothing sends it, and a retried Add from the device gets\n"
      "status 500. Both take the row's claim first, so a sender working on\n"
      "it makes them refuse (try again) instead of racing it.\n" },
    { "push", "push " DB " [--json] [ACCOUNT]",
      "Pending push notifications: device, datastore, channel and address,\n"
      "when due, attempts, last error.\n" },
    { "end-session", "end-session " DB " ACCOUNT DEVID",
      "End the device's sessions in progress (its next message in them gets\n"
      "400, session expired).\n" },
    { "block", "block " DB " ACCOUNT DEVID [--until TIME]",
      "Block device DEVID of ACCOUNT: its new sessions are refused (SyncML\n"
      "403) until TIME (a PostgreSQL timestamp, or +N with s, m, h or d),\n"
      "without --until until it is unblocked. devices lists the blocked ones\n"
      "(also those the autoblock of MemDSAutoBlock blocked) and why.\n" },
    { "unblock", "unblock " DB " ACCOUNT DEVID",
      "Let a blocked device in again; its failed sessions and logins are\n"
      "forgotten.\n" },
    { "quarantine",
      "quarantine " DB " [--json] [ACCOUNT [DEVID]]\n"
      "       memds-admin quarantine " DB " --release ACCOUNT [DEVID [GUID]]",
      "Server items (mail) a device does not take (it answered them with an\n"
      "error MemDSQuarantine times, or their object cannot be built): state\n"
      "(held: left out of the device's syncs; counting; released), count,\n"
      "last status, first and last time, reason. --release: the held ones\n"
      "are sent again at the device's next sync.\n" },
    { "push-register",
      "push-register " DB " ACCOUNT DEVID http URL\n"
      "       memds-admin push-register " DB " ACCOUNT DEVID sms +NUMBER\n"
      "       memds-admin push-register " DB " --delete ACCOUNT DEVID",
      "Where device DEVID of ACCOUNT gets its Server Alerted Notifications:\n"
      "http URL (POST), or sms +NUMBER (WAP Push over SMS through Kannel,\n"
      "MemDSKannelURL); --delete removes the channel.\n" },
    { "block", "block " DB " ACCOUNT DEVID [--until TIME]",
      "Hold a device: its new sessions are refused (403) whatever its\n"
      "credentials, until TIME (a PostgreSQL timestamp, or +N with s, m, h\n"
      "or d from now) or, without --until, until `unblock`\n"
      "(docs/throttle.md).\n" },
    { "unblock", "unblock " DB " ACCOUNT DEVID",
      "Lift a hold set by `block` or by the autoblock (MemDSAutoBlock).\n" },
    { "quarantine",
      "quarantine " DB " [--json] [ACCOUNT [DEVID]]\n"
      "       memds-admin quarantine " DB " --release ACCOUNT [DEVID [GUID]]",
      "Server items that a device keeps refusing, or whose object cannot be\n"
      "built, are held out of that device's syncs: list them, or --release\n"
      "them so that they are sent again (docs/throttle.md).\n" },
    { "help", "help [VERB]",
      "This list, or the help of one verb (also: memds-admin VERB --help).\n" },
    { NULL, NULL, NULL }
};

static const char common[] =
    "\n"
    "Connection: --db CONNINFO (a libpq connection string, e.g.\n"
    "\"host=127.0.0.1 port=5432 dbname=memds user=memds\"), else\n"
    "--config HTTPD_CONF (the MemDSDatabase of httpd's configuration,\n"
    "following its Include and IncludeOptional lines), else $MEMDS_PG,\n"
    "else the MemDSDatabase of /etc/apache2/apache2.conf or\n"
    "/etc/httpd/conf/httpd.conf.\n"
    "--json: an array of objects, one per row (counts as numbers).\n"
    "Exit codes: 0 success, 1 failure, 2 usage error.\n";

int adm_help(const char *verb, FILE *out)
{
    int i;

    if (verb && (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0)) {
        verb = "help"; /* (memds-admin help --help) */
    }

    for (i = 0; verb && verbs[i].name; ++i) {
        if (strcmp(verb, verbs[i].name) == 0) {
            fprintf(out, "usage: memds-admin %s\n\n%s%s", verbs[i].synopsis,
                    verbs[i].text, strcmp(verb, "help") ? common : "");
            return 0;
        }
    }
    if (verb) {
        fprintf(stderr,
                "memds-admin: no verb '%s' (memds-admin help lists "
                "them)\n",
                verb);
        return 2;
    }
    fprintf(out, "usage: memds-admin VERB [options] [arguments]\n\n");
    for (i = 0; verbs[i].name; ++i) {
        fprintf(out, "  memds-admin %s\n", verbs[i].synopsis);
    }
    fprintf(out, "\nmemds-admin help VERB (or VERB --help) explains one.\n%s",
            common);
    return 0;
}

int adm_verb_known(const char *verb)
{
    int i;

    for (i = 0; verbs[i].name; ++i) {
        if (strcmp(verb, verbs[i].name) == 0) {
            return 1;
        }
    }
    return 0;
}

int adm_usage(void)
{
    adm_help(NULL, stderr);
    return 2;
}

/* ---------------------------------------------------------- connection */

int adm_db_from_config(const char **pdb, const char *conf, const char **perr,
                       apr_pool_t *p)
{
    static const char *const dflt[] = MEMDS_ADMIN_DEFAULT_CONFIGS;
    apr_array_header_t *v = NULL;
    const char *first;
    int i;

    for (i = 0; conf == NULL && dflt[i]; ++i) {
        FILE *f = fopen(dflt[i], "r");
        if (f) {
            fclose(f);
            conf = dflt[i];
        }
    }
    if (conf == NULL) {
        *perr = "no database: give --db CONNINFO or --config HTTPD_CONF, or "
                "set MEMDS_PG";
        return 1;
    }
    if (memds_httpdconf_find(&v, conf, NULL, "MemDSDatabase", perr, p)
        != APR_SUCCESS) {
        return 1;
    }
    if (v->nelts == 0) {
        *perr = apr_psprintf(p,
                             "no MemDSDatabase in %s (or the files it "
                             "includes): give --db CONNINFO",
                             conf);
        return 1;
    }
    first = APR_ARRAY_IDX(v, 0, const char *);
    for (i = 1; i < v->nelts; ++i) {
        if (strcmp(first, APR_ARRAY_IDX(v, i, const char *)) != 0) {
            *perr = apr_psprintf(p,
                                 "%s has %d different MemDSDatabase "
                                 "settings: choose one with --db",
                                 conf, v->nelts);
            return 1;
        }
    }
    *pdb = first;
    return 0;
}

int adm_connect(memds_store_t *st, memds_pgpool_t **ppool,
                memds_pgconn_t **pconn, const char *db, const char **perr,
                apr_pool_t *p)
{
    memds_pgpool_params_t pp;

    memset(&pp, 0, sizeof(pp));
    pp.keep = pp.max = 1;
    pp.exptime = apr_time_from_sec(60);
    pp.acquire_timeout = apr_time_from_sec(10);
    if (memds_pgpool_create(ppool, db, &pp, NULL, p) != APR_SUCCESS
        || memds_pgpool_acquire(pconn, *ppool, perr, p) != APR_SUCCESS) {
        if (!*perr) {
            *perr = "cannot connect to PostgreSQL";
        }
        return 1;
    }
    memds_store_init(st, *pconn, p);
    return 0;
}

/* --------------------------------------------------------------- output */

/* A column's name without its integer mark; *pint 1 for an integer. */
static const char *col_name(const char *c, int *pint, apr_pool_t *p)
{
    apr_size_t n = strlen(c);

    *pint = n > 0 && c[n - 1] == '#';
    return *pint ? apr_pstrndup(p, c, n - 1) : c;
}

void adm_json_str(FILE *out, const char *s)
{
    if (s == NULL) { /* (a report's NULL column: a seg fault before) */
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
        }
        else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
        }
        else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

static void print_json(FILE *out, const memds_admin_table_t *t, apr_pool_t *p)
{
    int i, k, isint;

    fputc('[', out);
    for (i = 0; i < t->rows->nelts; ++i) {
        const char **r = APR_ARRAY_IDX(t->rows, i, const char **);
        fprintf(out, "%s\n  {", i ? "," : "");
        for (k = 0; t->cols[k]; ++k) {
            const char *name = col_name(t->cols[k], &isint, p);
            fprintf(out, "%s", k ? ", " : "");
            adm_json_str(out, name);
            fputs(": ", out);
            if (isint && *r[k]) {
                fprintf(out, "%lld", (long long)apr_atoi64(r[k]));
            }
            else {
                adm_json_str(out, r[k]);
            }
        }
        fputc('}', out);
    }
    fprintf(out, "%s]\n", t->rows->nelts ? "\n" : "");
}

/* Tab-separated, a header line first, "-" for empty values. */
static void print_tsv(FILE *out, const memds_admin_table_t *t, apr_pool_t *p)
{
    int i, k, isint;

    for (k = 0; t->cols[k]; ++k) {
        fprintf(out, "%s%s", k ? "\t" : "", col_name(t->cols[k], &isint, p));
    }
    fputc('\n', out);
    for (i = 0; i < t->rows->nelts; ++i) {
        const char **r = APR_ARRAY_IDX(t->rows, i, const char **);
        for (k = 0; t->cols[k]; ++k) {
            fprintf(out, "%s%s", k ? "\t" : "", *r[k] ? r[k] : "-");
        }
        fputc('\n', out);
    }
}

typedef apr_status_t table_fn(memds_store_t *st, memds_admin_table_t *t,
                              const char *account, int all);

static apr_status_t accounts_fn(memds_store_t *st, memds_admin_table_t *t,
                                const char *account, int all)
{
    return memds_admin_accounts(st, t, account);
}

static apr_status_t devices_fn(memds_store_t *st, memds_admin_table_t *t,
                               const char *account, int all)
{
    return memds_admin_devices(st, t, account);
}

static apr_status_t outbox_fn(memds_store_t *st, memds_admin_table_t *t,
                              const char *account, int all)
{
    return memds_admin_outbox(st, t, account, all);
}

static int load(memds_admin_table_t *t, table_fn *fn, const char *db,
                const char *account, int all, const char **perr, apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;

    if (adm_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (fn(&st, t, account, all) != APR_SUCCESS) {
        *perr = st.err;
        memds_pgpool_release(pool, conn, 1);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    return 0;
}

int adm_accounts(const char *db, const char *account, int json,
                 const char **perr, apr_pool_t *p)
{
    memds_admin_table_t t;
    int i;

    if (load(&t, accounts_fn, db, account, 0, perr, p) != 0) {
        return 1;
    }
    if (json) {
        print_json(stdout, &t, p);
        return 0;
    }
    printf("%-24s %7s %-19s %-19s %4s %7s %6s %s\n", "ACCOUNT", "DEVICES",
           "LAST SEEN (UTC)", "LAST SYNC (UTC)", "PUSH", "PENDING", "OUTBOX",
           "WATCHED BY");
    for (i = 0; i < t.rows->nelts; ++i) {
        const char **r = APR_ARRAY_IDX(t.rows, i, const char **);
        printf("%-24s %7s %-19s %-19s %4s %7s %6s %s\n", r[0], r[1],
               *r[2] ? r[2] : "-", *r[3] ? r[3] : "-", r[4], r[5], r[7],
               *r[6] ? r[6] : "-");
    }
    return 0;
}

int adm_devices(const char *db, const char *account, int json,
                const char **perr, apr_pool_t *p)
{
    memds_admin_table_t t;
    int i;

    if (load(&t, devices_fn, db, account, 0, perr, p) != 0) {
        return 1;
    }
    if (json) {
        print_json(stdout, &t, p);
        return 0;
    }
    printf("%-16s %-28s %-19s %-10s %s\n", "ACCOUNT", "DEVICE",
           "LAST SEEN (UTC)", "WIPE", "DATASTORES (items mapped)");
    for (i = 0; i < t.rows->nelts; ++i) {
        const char **r = APR_ARRAY_IDX(t.rows, i, const char **);
        /* account device last_seen last_sync sync_types datastores
         * push_channel pending push_error wipe wipe_requested wipe_done
         * last_session auth_failures failed_sessions blocked */
        printf("%-16s %-28s %-19s %-10s %s\n", r[0], r[1], r[2],
               *r[9] ? r[9] : "-", *r[5] ? r[5] : "-");
        if (*r[9]) {
            printf("%-16s wipe ordered %s%s%s\n", "", r[10],
                   *r[11] ? ", done " : "", r[11]);
        }
        printf("%-16s last sync %s, sync types %s, last session %s\n", "",
               *r[3] ? r[3] : "never", *r[4] ? r[4] : "-",
               *r[12] ? r[12] : "-");
        printf("%-16s push %s, %s pending%s%s\n", "", *r[6] ? r[6] : "none",
               r[7], *r[8] ? ", last error: " : "", r[8]);
        if (strcmp(r[13], "0") || strcmp(r[14], "0") || *r[15]) {
            printf("%-16s errors: %s authentication failures, %s failed "
                   "sessions in a row%s%s\n",
                   "", r[13], r[14], *r[15] ? ", blocked: " : "", r[15]);
        }
    }
    return 0;
}

int adm_outbox(const char *db, const char *account, int all, int json,
               const char **perr, apr_pool_t *p)
{
    memds_admin_table_t t;

    if (load(&t, outbox_fn, db, account, all, perr, p) != 0) {
        return 1;
    }
    if (json) {
        print_json(stdout, &t, p);
    }
    else {
        print_tsv(stdout, &t, p);
    }
    return 0;
}

int adm_outbox_act(const char *db, const char *action, const char *id,
                   const char **perr, apr_pool_t *p)
{
    memds_pgpool_t *pool;
    memds_pgconn_t *conn;
    memds_store_t st;
    memds_outbox_act_e res;
    const char *what = NULL, *state = NULL;
    char *end;
    apr_int64_t n = apr_strtoi64(id, &end, 10);
    int drop = strcmp(action, "drop") == 0;

    if (*id == '\0' || *end != '\0' || n <= 0) {
        *perr = apr_psprintf(p,
                             "'%s' is not an outbox id (the id column "
                             "of memds-admin outbox)",
                             id);
        return 1;
    }
    if (adm_connect(&st, &pool, &conn, db, perr, p) != 0) {
        return 1;
    }
    if (memds_admin_outbox_act(&st, &res, &what, &state, n, drop)
        != APR_SUCCESS) {
        *perr = st.err;
        memds_pgpool_release(pool, conn, 1);
        return 1;
    }
    memds_pgpool_release(pool, conn, 0);
    if (res != MEMDS_OUTBOX_ACT_DONE) {
        *perr = apr_psprintf(p, "outbox %s%s%s%s: %s", id,
                             *state ? " (state " : "", state, *state ? ")" : "",
                             what);
        return 1;
    }
    printf("memds-admin: outbox %s (was %s) %s\n", id, state, what);
    return 0;
}
