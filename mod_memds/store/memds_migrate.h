/**
 * @file memds_migrate.h
 * Numbered SQL migrations (schema/NNN_name.sql) applied idempotently, each
 * in its own transaction under an advisory lock, and recorded with a
 * checksum in memds.schema_migrations.
 */
#ifndef MEMDS_MIGRATE_H
#define MEMDS_MIGRATE_H

#include <apr_pools.h>
#include "util/memds_util.h"
#include "store/memds_pgpool.h"

/** The schema version this build of the module needs (highest migration). */
#define MEMDS_SCHEMA_VERSION 28

/**
 * Connect with conninfo and apply every migration of dir not yet recorded.
 * Migrations already applied are checked against their recorded checksum;
 * a changed file is an error. Safe to run concurrently (advisory lock).
 * @param napplied  out: migrations applied by this call
 * @param pversion  out: the schema version afterwards
 * @param lg        progress lines (one per applied migration); may be NULL
 * @param perr      out on failure: what went wrong, from p
 */
apr_status_t memds_migrate_run(int *napplied, int *pversion,
                               const char *conninfo, const char *dir,
                               const memds_logger_t *lg, const char **perr,
                               apr_pool_t *p);

/** Connect with conninfo and read the schema version (0: never migrated). */
apr_status_t memds_migrate_version(int *pversion, const char *conninfo,
                                   const char **perr, apr_pool_t *p);

/**
 * The schema version recorded in the database behind an acquired pool
 * connection: 0 when no migration was ever applied. A failure that may have
 * broken the connection marks it broken (APR_ECONNRESET).
 */
apr_status_t memds_store_schema_version(int *pversion, memds_pgconn_t *conn,
                                        const char **perr, apr_pool_t *p);

#endif /* MEMDS_MIGRATE_H */
