/* memds_admin_throttle.h: memds-admin's verbs for throttling and
 * quarantine (docs/throttle.md): block, unblock, quarantine, and the
 * blocked devices under devices. */
#ifndef MEMDS_ADMIN_THROTTLE_H
#define MEMDS_ADMIN_THROTTLE_H

#include <apr_pools.h>

/** Is cmd one of block, unblock, quarantine? */
int adm_throttle_verb(const char *cmd);

/** Run it with its own reading of argv (ACCOUNT DEVICE [--until TIME],
 *  [ACCOUNT [DEVICE]] [--json], --release ACCOUNT [DEVICE [GUID]]);
 *  0 done, 1 failed (*perr), 2 usage. */
int adm_throttle(const char *cmd, int argc, const char *const *argv,
                 const char *db, const char **perr, apr_pool_t *p);

/** After memds-admin devices: the blocked devices, why and until when. */
int adm_blocked_devices(const char *db, const char *account, const char **perr,
                        apr_pool_t *p);

#endif /* MEMDS_ADMIN_THROTTLE_H */
