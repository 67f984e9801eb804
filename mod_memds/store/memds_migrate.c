/* memds_migrate.c: numbered SQL migrations (see memds_migrate.h). */
#include "store/memds_migrate.h"

#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_lib.h>
#include <apr_sha1.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

/* Key of the advisory lock that serialises concurrent migrate runs. */
#define MIGRATE_LOCK_SQL "SELECT pg_advisory_xact_lock(7472851390)"

#define BOOTSTRAP_SQL \
    "CREATE SCHEMA IF NOT EXISTS memds;" \
    "CREATE TABLE IF NOT EXISTS memds.schema_migrations (" \
    " version integer PRIMARY KEY," \
    " name text NOT NULL," \
    " sha1 text NOT NULL," \
    " applied_at timestamptz NOT NULL DEFAULT now())"

typedef struct migration_t {
    int version;
    const char *name; /* file name */
    const char *path;
    const char *sql;
    const char *sha1; /* hex */
} migration_t;

static const char *trim_msg(const char *m, apr_pool_t *p)
{
    apr_size_t n = strlen(m);

    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ')) {
        --n;
    }
    return apr_pstrndup(p, m, n);
}

/* Run one statement (or several, simple protocol) expecting no error. */
static apr_status_t exec_ok(PGconn *c, const char *sql, const char *what,
                            const char **perr, apr_pool_t *p)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        *perr = apr_psprintf(p, "%s: %s", what,
                             trim_msg(res ? PQresultErrorMessage(res)
                                          : PQerrorMessage(c),
                                      p));
        PQclear(res);
        return APR_EGENERAL;
    }
    PQclear(res);
    return APR_SUCCESS;
}

static int cmp_migration(const void *a, const void *b)
{
    const migration_t *x = *(migration_t *const *)a;
    const migration_t *y = *(migration_t *const *)b;

    return (x->version > y->version) - (x->version < y->version);
}

/* Read dir's NNN_*.sql files, sorted by version; duplicates are an error. */
static apr_status_t load_migrations(apr_array_header_t **pmigs, const char *dir,
                                    const char **perr, apr_pool_t *p)
{
    apr_array_header_t *migs = apr_array_make(p, 16, sizeof(migration_t *));
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;
    int i;

    rv = apr_dir_open(&d, dir, p);
    if (rv != APR_SUCCESS) {
        *perr = apr_psprintf(p, "cannot open schema directory %s", dir);
        return rv;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
           == APR_SUCCESS) {
        const char *n = fi.name, *c;
        apr_size_t len = strlen(n);
        migration_t *m;
        apr_file_t *f;
        apr_finfo_t ffi;
        char *buf;
        apr_size_t got;
        int v = 0;

        if (fi.filetype != APR_REG || len < 6
            || strcmp(n + len - 4, ".sql") != 0) {
            continue;
        }
        for (c = n; apr_isdigit(*c); ++c) {
            v = v * 10 + (*c - '0');
            if (v > 99999) {
                break;
            }
        }
        if (c - n < 3 || *c != '_' || v > 99999) {
            continue; /* not a migration (e.g. a helper script) */
        }
        m = apr_pcalloc(p, sizeof(*m));
        m->version = v;
        m->name = apr_pstrdup(p, n);
        m->path = apr_pstrcat(p, dir, "/", n, NULL);
        rv = apr_file_open(&f, m->path, APR_FOPEN_READ, 0, p);
        if (rv == APR_SUCCESS) {
            rv = apr_file_info_get(&ffi, APR_FINFO_SIZE, f);
        }
        if (rv == APR_SUCCESS) {
            buf = apr_palloc(p, (apr_size_t)ffi.size + 1);
            rv = apr_file_read_full(f, buf, (apr_size_t)ffi.size, &got);
            buf[ffi.size] = '\0';
            m->sql = buf;
            m->sha1 = memds_sha1_hex(buf, (apr_size_t)ffi.size, p);
            apr_file_close(f);
            if (memchr(buf, '\0', (apr_size_t)ffi.size)) {
                *perr = apr_psprintf(p, "%s contains a NUL byte", m->path);
                apr_dir_close(d);
                return APR_EINVAL;
            }
        }
        if (rv != APR_SUCCESS) {
            *perr = apr_psprintf(p, "cannot read %s", m->path);
            apr_dir_close(d);
            return rv;
        }
        APR_ARRAY_PUSH(migs, migration_t *) = m;
    }
    apr_dir_close(d);
    qsort(migs->elts, (size_t)migs->nelts, sizeof(migration_t *),
          cmp_migration);
    for (i = 1; i < migs->nelts; ++i) {
        migration_t *a = APR_ARRAY_IDX(migs, i - 1, migration_t *);
        migration_t *b = APR_ARRAY_IDX(migs, i, migration_t *);
        if (a->version == b->version) {
            *perr = apr_psprintf(p, "%s and %s have the same version %d",
                                 a->name, b->name, a->version);
            return APR_EINVAL;
        }
    }
    *pmigs = migs;
    return APR_SUCCESS;
}

/* Apply one migration in its own transaction, unless already recorded (then
 * compare checksums). *papplied is set to 1 when it ran. */
static apr_status_t apply_one(int *papplied, PGconn *c, const migration_t *m,
                              const char **perr, apr_pool_t *p)
{
    char vbuf[16];
    const char *params[3];
    PGresult *res;
    apr_status_t rv;

    *papplied = 0;
    if ((rv = exec_ok(c, "BEGIN", "BEGIN", perr, p)) != APR_SUCCESS
        || (rv = exec_ok(c, MIGRATE_LOCK_SQL, "advisory lock", perr, p))
               != APR_SUCCESS
        || (rv = exec_ok(c, BOOTSTRAP_SQL, "creating memds.schema_migrations",
                         perr, p))
               != APR_SUCCESS) {
        goto fail;
    }
    apr_snprintf(vbuf, sizeof(vbuf), "%d", m->version);
    params[0] = vbuf;
    res = PQexecParams(c,
                       "SELECT sha1 FROM memds.schema_migrations "
                       "WHERE version = $1::integer",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        *perr = apr_psprintf(p, "reading memds.schema_migrations: %s",
                             trim_msg(PQresultErrorMessage(res), p));
        PQclear(res);
        rv = APR_EGENERAL;
        goto fail;
    }
    if (PQntuples(res) == 1) {
        const char *was = apr_pstrdup(p, PQgetvalue(res, 0, 0));
        PQclear(res);
        exec_ok(c, "ROLLBACK", "ROLLBACK", perr, p);
        if (strcmp(was, m->sha1) != 0) {
            *perr = apr_psprintf(p,
                                 "%s was changed after it was applied "
                                 "(recorded sha1 %s, file has %s); add a new "
                                 "migration instead of editing an applied one",
                                 m->path, was, m->sha1);
            return APR_EINVAL;
        }
        return APR_SUCCESS;
    }
    PQclear(res);
    if ((rv = exec_ok(c, m->sql, m->name, perr, p)) != APR_SUCCESS) {
        goto fail;
    }
    params[1] = m->name;
    params[2] = m->sha1;
    res = PQexecParams(c,
                       "INSERT INTO memds.schema_migrations "
                       "(version, name, sha1) VALUES ($1::integer, $2, $3)",
                       3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        *perr = apr_psprintf(p, "recording %s: %s", m->name,
                             trim_msg(PQresultErrorMessage(res), p));
        PQclear(res);
        rv = APR_EGENERAL;
        goto fail;
    }
    PQclear(res);
    if ((rv = exec_ok(c, "COMMIT", "COMMIT", perr, p)) != APR_SUCCESS) {
        goto fail;
    }
    *papplied = 1;
    return APR_SUCCESS;

fail : {
    const char *ignored;
    exec_ok(c, "ROLLBACK", "ROLLBACK", &ignored, p);
}
    return rv;
}

static apr_status_t query_version(int *pversion, PGconn *c, const char **perr,
                                  apr_pool_t *p)
{
    PGresult *res;
    int exists;

    /* Two steps: a query naming a missing table fails at parse time, even
     * in a CASE branch that would not run. to_regclass does not fail. */
    res = PQexec(c,
                 "SELECT to_regclass('memds.schema_migrations') IS NOT NULL");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        goto fail;
    }
    exists = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!exists) {
        *pversion = 0;
        return APR_SUCCESS;
    }
    res = PQexec(
        c, "SELECT coalesce(max(version), 0) FROM memds.schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        goto fail;
    }
    *pversion = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return APR_SUCCESS;

fail:
    *perr = apr_psprintf(p, "reading the schema version: %s",
                         trim_msg(res ? PQresultErrorMessage(res)
                                      : PQerrorMessage(c),
                                  p));
    PQclear(res);
    return APR_EGENERAL;
}

static PGconn *connect_or_fail(const char *conninfo, const char **perr,
                               apr_pool_t *p)
{
    PGconn *c = PQconnectdb(conninfo);

    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        *perr = apr_psprintf(p, "cannot connect to PostgreSQL: %s",
                             trim_msg(c ? PQerrorMessage(c) : "out of memory",
                                      p));
        PQfinish(c);
        return NULL;
    }
    return c;
}

apr_status_t memds_migrate_version(int *pversion, const char *conninfo,
                                   const char **perr, apr_pool_t *p)
{
    PGconn *c = connect_or_fail(conninfo, perr, p);
    apr_status_t rv;

    if (c == NULL) {
        return APR_ECONNREFUSED;
    }
    rv = query_version(pversion, c, perr, p);
    PQfinish(c);
    return rv;
}

apr_status_t memds_migrate_run(int *napplied, int *pversion,
                               const char *conninfo, const char *dir,
                               const memds_logger_t *lg, const char **perr,
                               apr_pool_t *p)
{
    apr_array_header_t *migs;
    PGconn *c;
    apr_status_t rv;
    int i, n = 0;

    rv = load_migrations(&migs, dir, perr, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    c = connect_or_fail(conninfo, perr, p);
    if (c == NULL) {
        return APR_ECONNREFUSED;
    }
    exec_ok(c, "SET client_min_messages = warning", "SET", perr, p);
    for (i = 0; i < migs->nelts; ++i) {
        const migration_t *m = APR_ARRAY_IDX(migs, i, migration_t *);
        int applied;

        rv = apply_one(&applied, c, m, perr, p);
        if (rv != APR_SUCCESS) {
            PQfinish(c);
            return rv;
        }
        if (applied) {
            ++n;
            memds_logf(lg, MEMDS_LOG_NOTICE, 0,
                       MEMDS_LOGNO(00302) "applied %s", m->name);
        }
    }
    rv = query_version(pversion, c, perr, p);
    PQfinish(c);
    if (rv == APR_SUCCESS) {
        *napplied = n;
    }
    return rv;
}

apr_status_t memds_store_schema_version(int *pversion, memds_pgconn_t *conn,
                                        const char **perr, apr_pool_t *p)
{
    PGconn *c = memds_pgconn_native(conn);
    apr_status_t rv = query_version(pversion, c, perr, p);

    if (rv != APR_SUCCESS && PQstatus(c) != CONNECTION_OK) {
        memds_pgconn_mark_broken(conn);
        return APR_ECONNRESET;
    }
    return rv;
}
