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
} memds_push_due_t;

/** The devices whose notifications are due and that are not in a session
 *  (a device mid-session gets nothing until it ends), at most limit,
 *  their rows locked (SKIP LOCKED: several nodes share the work). */
apr_status_t memds_push_due(memds_store_t *st, apr_array_header_t **prows,
                            int limit);
/** Delivered: the device's rows for those stores go. */
apr_status_t memds_push_delivered(memds_store_t *st, apr_int64_t device_id,
                                  const apr_array_header_t *stores);
/** Not delivered: retried later (1, 2, 4 ... up to 300 s), why kept. */
apr_status_t memds_push_failed(memds_store_t *st, apr_int64_t device_id,
                               const char *why);

#endif /* MEMDS_PUSHSTORE_H */
