/**
 * @file memds_mailtrunc.h
 * A mail too big for the device (ds->size_budget) sent truncated: its
 * structure read with BODYSTRUCTURE, its header and the first bytes of its
 * text fetched partially, the object built by email/memds_trunc.c. Never
 * the whole message.
 */
#ifndef MEMDS_MAILTRUNC_H
#define MEMDS_MAILTRUNC_H

#include "ds/memds_mailbox.h"

/** The value of parameter name (case-insensitive) of a BODYSTRUCTURE
 *  parameter list (memds_imap_param_t), or NULL. */
const char *memds_mbox_body_param(const apr_array_header_t *params,
                                  const char *name);

/**
 * The object of message row (in the folder selected on c) within
 * ds->size_budget bytes (0: no limit) at level lv (the text cut at
 * lv->text_max, the attachment lv->attach_name included; NULL: as much text
 * as fits): the email object e (flags already set) with the
 * truncated message and its <truncated> list, or for a device that wants
 * message/rfc822 (want_rfc822) the truncated message itself with
 * "X-Sync-Message-Limit: <budget>" as its first header field (the mark of
 * a truncated copy, memds_email_is_device_copy). A truncated message that
 * XML cannot carry (raw 8-bit header bytes) goes as message/rfc822 the
 * same way. When no try fits, the last (too big) object is returned and
 * the engine logs that it cannot be sent.
 * @return APR_SUCCESS; APR_EEXIST when nothing would be left out and the
 *         whole mail fits the budget (send it whole); APR_ENOENT when the
 *         message is gone; APR_ENOSPC
 *         when not even the cut header fits (ds->reason says why);
 *         APR_EGENERAL with ds->status/reason set.
 */
apr_status_t memds_mbox_fetch_truncated(memds_ds_t *ds, memds_imap_conn_t *c,
                                        const memds_mmsg_t *row,
                                        memds_email_t *e, int want_rfc822,
                                        const memds_ds_level_t *lv,
                                        const char **pdata, apr_size_t *plen,
                                        const char **ptype);

/**
 * Read ahead for memds_mbox_fetch_truncated the n messages uids (of the
 * folder selected on c) that go truncated: their structure and header in
 * one UID FETCH, and the first text_max bytes of their text part
 * (BINARY.PEEK, one UID FETCH per section name; none when text_max <= 0),
 * into MBOX(ds)->tahead. A failure leaves the rest to fetch.
 */
void memds_mbox_prefetch_truncated(memds_ds_t *ds, memds_imap_conn_t *c,
                                   const apr_uint32_t *uids, int n,
                                   apr_int64_t text_max);

#endif /* MEMDS_MAILTRUNC_H */
