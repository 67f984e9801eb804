/**
 * @file memds_watch.h
 * The IMAP IDLE watcher (docs/push.md): for IMAP servers that cannot tell
 * the module about new mail (no Dovecot push_notification), a node keeps
 * one IMAP connection in IDLE on INBOX per account with a push-enabled
 * device, under a lease in PostgreSQL (store/memds_watchstore.h) so that
 * with several nodes each account is watched by exactly one, and a
 * crashed node's accounts move to another within seconds. New mail
 * becomes a pending notification (memds_push_event), delivered by the
 * push job like any other. Mail that arrived while nobody watched (a
 * restart, a lease moving) is noticed from INBOX's UIDNEXT, kept with the
 * lease.
 *
 * Run by one watchdog thread per node (the memds-watch job); the stop may
 * come from another thread (the child's exit): a lock keeps them apart.
 */
#ifndef MEMDS_WATCH_H
#define MEMDS_WATCH_H

#include "store/memds_pgpool.h"
#include "backends/memds_imap.h"
#include "util/memds_util.h"

/** An IMAP server to watch (a location with MemDSPushWatch On). */
typedef struct memds_watch_src_t {
    const char *server;       /**< MemDSIMAPServer: also the lease key */
    const char *realm;        /**< MemDSAccountRealm: accounts are
                                   "realm:login" (NULL: the login) */
    memds_imap_config_t imap; /**< the master login (authzid: the account) */
} memds_watch_src_t;

typedef struct memds_watch_cfg_t {
    apr_array_header_t *sources; /**< memds_watch_src_t */
    int max;                     /**< MemDSPushWatchMax: accounts per node */
    int delay_ms;                /**< MemDSPushDelay for the events */
    int lease_ms;                /**< lease time (renewed every lease_ms/4) */
    int idle_renew_secs;         /**< IDLE is restarted after this long */
    const memds_logger_t *log;
} memds_watch_cfg_t;

typedef struct memds_watch_t memds_watch_t;

/** A watcher for node (a name unique to this process, e.g.
 *  host:ppid:pid), living in p. */
apr_status_t memds_watch_create(memds_watch_t **pw, const char *node,
                                apr_pool_t *p);

/**
 * One round: lease keeping when due (give up, renew, take), connections
 * for newly taken accounts (a few per round; failures retried with
 * backoff, the reason kept in memds.push_watch.last_error), then a wait of
 * at most wait_ms for IMAP data on every watched connection; new mail in
 * INBOX becomes a pending notification. PostgreSQL connections come from
 * pg (none held between rounds). tmp: cleared by the caller after.
 */
apr_status_t memds_watch_round(memds_watch_t *w, const memds_watch_cfg_t *cfg,
                               memds_pgpool_t *pg, int wait_ms,
                               apr_pool_t *tmp);

/** Stop: every connection closed, every lease of the node given up (once;
 *  later rounds do nothing). */
void memds_watch_stop(memds_watch_t *w, const memds_watch_cfg_t *cfg,
                      memds_pgpool_t *pg, apr_pool_t *tmp);

#endif /* MEMDS_WATCH_H */
