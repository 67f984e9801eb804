/**
 * @file memds_adminstore.h
 * What memds-admin shows and changes beyond the engine's own statements:
 * the accounts and devices overview, the outbox ledger with its stuck
 * rows, and the administrator's retry and drop of one ledger row (see
 * docs/admin.md). Also the cheap count of stuck ledger rows for the
 * status page.
 */
#ifndef MEMDS_ADMINSTORE_H
#define MEMDS_ADMINSTORE_H

#include "store/memds_store.h"

/** A report: column names (a trailing '#' marks an integer column; the
 *  name shown is without it), rows of strings ("" for none). */
typedef struct memds_admin_table_t {
    const char *const *cols;
    apr_array_header_t *rows; /**< const char ** per row */
} memds_admin_table_t;

/** A ledger row is stuck after this long without a state change in
 *  received, submitting or submitted, or with its retry this late. */
#define MEMDS_OUTBOX_STUCK_SECS 300
/** ... or after this many failed attempts while retrying. */
#define MEMDS_OUTBOX_STUCK_ATTEMPTS 5

/** Each account (or the one given): devices, last contact and sync,
 *  devices with a push channel, pending notifications, the node whose
 *  IMAP IDLE watches it (memds.push_watch), open outbox messages. */
apr_status_t memds_admin_accounts(memds_store_t *st, memds_admin_table_t *t,
                                  const char *account);
/** Each device (of account, or all): last contact and sync, sync types of
 *  its sessions still kept, datastores with items mapped and their last
 *  sync, push channel, pending notifications and the last push error,
 *  wipe state, the last session and how it ended, authentication failures,
 *  failed sessions in a row and whether it is blocked (and why). */
apr_status_t memds_admin_devices(memds_store_t *st, memds_admin_table_t *t,
                                 const char *account);
/** The outbox ledger: rows not yet acknowledged (all when all), of
 *  account or every one, with why a row is stuck ("" when it is not). */
apr_status_t memds_admin_outbox(memds_store_t *st, memds_admin_table_t *t,
                                const char *account, int all);

/** What memds_admin_outbox_act did or why it refused. */
typedef enum {
    MEMDS_OUTBOX_ACT_DONE = 0,
    MEMDS_OUTBOX_ACT_NOROW,   /**< no such row */
    MEMDS_OUTBOX_ACT_BUSY,    /**< a sender holds the row right now */
    MEMDS_OUTBOX_ACT_REFUSED  /**< not in a state this action allows */
} memds_outbox_act_e;

/**
 * The administrator's retry (drop 0) or drop (drop 1) of ledger row id,
 * under the row's claim (memds_outbox_claim) so that no sender works on
 * it meanwhile, and only from a state where it cannot send twice:
 *  - retry: received (SMTP never started) or retrying become retrying and
 *    due now: the background job (or the device's next sync) sends it;
 *  - drop: received, retrying or submitting become rejected with the
 *    status 500 and the reason "dropped by the administrator (was STATE)";
 *    the row and its message stay (a record), nothing sends it again and
 *    a retried Add from the device gets that status.
 * Every other state is refused (submitted, filed, acknowledged: sent;
 * rejected: refused by the SMTP server, or dropped already; submitting
 * for retry: it may have reached the SMTP server). *pwhat says what
 * happened in a sentence; *pstate is the state the row was in.
 */
apr_status_t memds_admin_outbox_act(memds_store_t *st, memds_outbox_act_e *pres,
                                    const char **pwhat, const char **pstate,
                                    apr_int64_t id, int drop);

/** Ledger rows that are stuck now (the status page). */
apr_status_t memds_admin_outbox_stuck(memds_store_t *st, apr_int64_t *pn);

#endif /* MEMDS_ADMINSTORE_H */
