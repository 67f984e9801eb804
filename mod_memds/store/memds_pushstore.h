/**
 * @file memds_pushstore.h
 * Push in PostgreSQL (schema/011_push.sql, docs/push.md): the devices'
 * channels, and the notifications waiting to be delivered, coalesced per
 * device and datastore.
 */
#ifndef MEMDS_PUSHSTORE_H
#define MEMDS_PUSHSTORE_H

#include "store/memds_store.h"

/** Register (or replace) a device's channel ("http" and a URL, or "sms"
 *  and a phone number); clear it with channel NULL. APR_ENOENT when there
 *  is no such device. */
apr_status_t memds_push_register(memds_store_t *st, const char *account,
                                 const char *devid, const char *channel,
                                 const char *address);

/** Whether address is acceptable for channel: "http" and an http:// or
 *  https:// URL with a host, at most 2048 bytes, no space or control
 *  character; "sms" and a phone number (an optional + and 3 to 20
 *  digits). NULL when it is, else why not (a fixed text). The rule of
 *  memds-admin push-register and of a device registering itself. */
const char *memds_push_channel_check(const char *channel, const char *address);

/** A pending notification of a device, as its session ends (the engine's
 *  in-band notification, docs/push.md). */
typedef struct memds_push_pend_t {
    const char *store;
    int sync_type, ui_mode, attempts;
    const char *first_at, *due_at; /**< as PostgreSQL prints them */
    const char *last_error;        /**< NULL: none */
    int in_session; /**< made since the session began (first_at) */
} memds_push_pend_t;

/** The device's pending notifications (memds_push_pend_t *), in store
 *  order; in_session compares first_at with the start of session_pk. */
apr_status_t memds_push_pending_of(memds_store_t *st,
                                   apr_array_header_t **prows,
                                   apr_int64_t device_id,
                                   apr_int64_t session_pk);

/** Put row back for the device (completing a sync of its datastore
 *  removed it), not due before hold_ms from now; one there already is
 *  only held as long. */
apr_status_t memds_push_keep(memds_store_t *st, apr_int64_t device_id,
                             const memds_push_pend_t *row, int hold_ms);

/** Mail arrived or changed in folder (IMAP name) of account: a pending
 *  notification, due in delay_ms, for each datastore showing the folder
 *  (by name, INBOX as Inbox, or the hierarchical email/mail) of each
 *  device of the account that has a channel, synced that datastore before
 *  and is not wiped. One that is pending already stays as it is (a burst
 *  makes one notification). *pn: rows made. */
apr_status_t memds_push_event(memds_store_t *st, int *pn, const char *account,
                              const char *folder, int delay_ms);

/** A device with notifications due (its datastores in stores). */
typedef struct memds_push_due_t {
    apr_int64_t device_id;
    const char *account, *devid, *channel, *address;
    const char *server_id, *password, *nonce; /**< NULL when none stored */
    apr_array_header_t *stores;               /**< const char * */
    int sync_type, ui_mode, attempts;
    const char *devinf; /**< the device's stored DevInf (XML), or NULL */
    apr_size_t devinf_len;
} memds_push_due_t;

/** The devices whose notifications are due and that are not in a session
 *  (a device mid-session gets nothing until it ends), at most limit,
 *  their rows locked (SKIP LOCKED: several nodes share the work). */
apr_status_t memds_push_due(memds_store_t *st, apr_array_header_t **prows,
                            int limit);
/** When the next notification is due (*pat, 0 when none is pending; a
 *  time already past when one is held back by a session or a lock). */
apr_status_t memds_push_next_due(memds_store_t *st, apr_time_t *pat);
/** Delivered: the device's rows for those stores go. */
apr_status_t memds_push_delivered(memds_store_t *st, apr_int64_t device_id,
                                  const apr_array_header_t *stores);
/** Not delivered: retried later (1, 2, 4 ... up to 300 s), why kept. */
apr_status_t memds_push_failed(memds_store_t *st, apr_int64_t device_id,
                               const char *why);

#endif /* MEMDS_PUSHSTORE_H */
