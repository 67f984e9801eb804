/**
 * @file memds_watchstore.h
 * The IMAP IDLE watcher's leases in PostgreSQL (schema/013_push_watch.sql,
 * docs/push.md): which accounts are to be watched on which IMAP server,
 * which node watches each, and what it last saw of the account's INBOX.
 */
#ifndef MEMDS_WATCHSTORE_H
#define MEMDS_WATCHSTORE_H

#include "store/memds_store.h"

/** A session of account began at a location whose IMAP server is server
 *  and that has MemDSPushWatch On: the account is a candidate (it is
 *  watched while one of its devices has a push channel). */
apr_status_t memds_watch_note(memds_store_t *st, const char *account,
                              const char *server);

/** An account whose lease this node just took. */
typedef struct memds_watch_lease_t {
    const char *account;
    apr_int64_t uidvalidity, uidnext; /**< 0: never looked at */
} memds_watch_lease_t;

/**
 * One round of lease keeping for node on server (one transaction is the
 * caller's): leases of accounts no longer wanted (no device with a push
 * channel) are given up; the others are renewed for ttl_ms; then free
 * accounts (nobody's, or whose lease ran out) are taken, as many as keeps
 * the node at max or under. *pheld: the accounts the node holds after the
 * round (const char *), *pnew: those taken now (memds_watch_lease_t).
 */
apr_status_t memds_watch_leases(memds_store_t *st, apr_array_header_t **pheld,
                                apr_array_header_t **pnew, const char *server,
                                const char *node, int ttl_ms, int max);

/** What the watcher saw of the account's INBOX (event: new mail). */
apr_status_t memds_watch_seen(memds_store_t *st, const char *server,
                              const char *node, const char *account,
                              apr_int64_t uidvalidity, apr_int64_t uidnext,
                              int event);

/** Why the account cannot be watched (why NULL: clear it). */
apr_status_t memds_watch_error(memds_store_t *st, const char *server,
                               const char *node, const char *account,
                               const char *why);

/** Give up every lease of node (a watcher that stops). */
apr_status_t memds_watch_release(memds_store_t *st, const char *node);

#endif /* MEMDS_WATCHSTORE_H */
