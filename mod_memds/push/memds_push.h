/**
 * @file memds_push.h
 * Push delivery (docs/push.md): the notifications that are due
 * (store/memds_pushstore.h) become a SAN 1.2 per device (syncml/
 * memds_san.h: one entry per datastore, sync type 206, the email content
 * type, the digest from the device's row of memds.server_credentials) and
 * go to its channel: HTTP POST, or WAP Push over SMS through Kannel's
 * sendsms (push/memds_wappush.h). Run by the module's watchdog job, one
 * child per node; several nodes share the work through row locks.
 */
#ifndef MEMDS_PUSH_H
#define MEMDS_PUSH_H

#include "store/memds_store.h"
#include "util/memds_util.h"
#include "util/memds_stats.h"

typedef struct memds_push_cfg_t {
    const char *server_id;   /**< MemDSServerID: the SAN's server identifier
                                when the device's row names none */
    const char *kannel_url;  /**< MemDSKannelURL: smsbox's sendsms (NULL:
                                  no SMS channel) */
    const char *kannel_user; /**< MemDSKannelAuth (NULL when none) */
    const char *kannel_pass;
    long timeout_ms; /**< per delivery (per SMS) */
    const memds_logger_t *log;
    memds_stats_t *stats; /**< latency and failures of each delivery
                             (MEMDS_OP_PUSH_SEND), or NULL */
} memds_push_cfg_t;

/** Deliver what is due for at most limit devices, each in its own
 *  transaction on st's connection. *psent: SANs delivered. A failure of
 *  one device's delivery is logged and retried later, never fatal. */
apr_status_t memds_push_run(int *psent, memds_store_t *st,
                            const memds_push_cfg_t *cfg, int limit,
                            apr_pool_t *p);

#endif /* MEMDS_PUSH_H */
