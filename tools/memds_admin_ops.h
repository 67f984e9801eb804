/* memds_admin_ops.h: the verbs of memds-admin that report and act on the
 * operators' tables (accounts, devices, outbox with retry and drop), the
 * help of every verb, and finding the database in httpd's configuration
 * (--config). memds-admin.c parses the command line and dispatches. */
#ifndef MEMDS_ADMIN_OPS_H
#define MEMDS_ADMIN_OPS_H

#include <apr_pools.h>
#include <stdio.h>

#include "store/memds_pgpool.h"
#include "store/memds_store.h"

/** Where memds-admin looks for httpd's configuration when neither --db,
 *  --config nor MEMDS_PG says where the database is. */
#define MEMDS_ADMIN_DEFAULT_CONFIGS \
    { \
        "/etc/apache2/apache2.conf", "/etc/httpd/conf/httpd.conf", NULL \
    }

/** Help: every verb with its synopsis (verb NULL), or one verb in full.
 *  Returns 0, or 2 (usage error) for an unknown verb. */
int adm_help(const char *verb, FILE *out);
/** 1 when verb is one of memds-admin's. */
int adm_verb_known(const char *verb);
/** The short usage on stderr; returns 2. */
int adm_usage(void);

/** The connection string of MemDSDatabase in httpd's configuration conf
 *  (following its Include lines); conf NULL: the usual places. 0, or 1
 *  with *perr (none found, several different ones, unreadable). */
int adm_db_from_config(const char **pdb, const char *conf, const char **perr,
                       apr_pool_t *p);

/** One connection to db for a store (the caller releases it to *ppool);
 *  0, or 1 with *perr. */
int adm_connect(memds_store_t *st, memds_pgpool_t **ppool,
                memds_pgconn_t **pconn, const char *db, const char **perr,
                apr_pool_t *p);

/** s as a JSON string (RFC 8259) on out; NULL as null. */
void adm_json_str(FILE *out, const char *s);

/** accounts [ACCOUNT] [--json] */
int adm_accounts(const char *db, const char *account, int json,
                 const char **perr, apr_pool_t *p);
/** devices [ACCOUNT] [--json] */
int adm_devices(const char *db, const char *account, int json,
                const char **perr, apr_pool_t *p);
/** outbox [ACCOUNT] [--all] [--json] */
int adm_outbox(const char *db, const char *account, int all, int json,
               const char **perr, apr_pool_t *p);
/** outbox retry|drop ID */
int adm_outbox_act(const char *db, const char *action, const char *id,
                   const char **perr, apr_pool_t *p);

#endif /* MEMDS_ADMIN_OPS_H */
