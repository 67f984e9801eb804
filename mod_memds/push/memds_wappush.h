/**
 * @file memds_wappush.h
 * WAP Push over SMS (docs/push.md, "The SMS channel"): a SAN wrapped in a
 * WSP Push PDU (TID, PDU type 0x06 Push, HeadersLen as uintvar,
 * Content-Type 0xCE application/vnd.syncml.ds.notification,
 * X-Wap-Application-Id 0xAF 0x85 x-wap-application:push.syncml), carried
 * in 8-bit SMS whose User Data Header addresses WDP port 2948 from 9200
 * (16-bit port addressing, IE 0x05), concatenated (IE 0x00, 8-bit
 * reference) when the PDU does not fit the 140 octets of one SMS. Pure
 * functions, no I/O.
 */
#ifndef MEMDS_WAPPUSH_H
#define MEMDS_WAPPUSH_H

#include "util/memds_buf.h"

#include <apr_pools.h>
#include <apr_tables.h>

#define MEMDS_SMS_UD_MAX 140   /**< octets of user data (UDH included) */
#define MEMDS_SMS_MAX_SEGS 255 /**< the concatenation IE counts in a byte */
#define MEMDS_WAPPUSH_PORT 2948
#define MEMDS_WAPPUSH_SRC_PORT 9200

/** One SMS: its User Data Header (the length octet UDHL first) and the
 *  rest of its user data. udh_len + ud_len <= MEMDS_SMS_UD_MAX. */
typedef struct memds_sms_seg_t {
    unsigned char udh[12];
    apr_size_t udh_len;
    const unsigned char *ud; /**< points into the PDU */
    apr_size_t ud_len;
} memds_sms_seg_t;

/** Append to out the WSP Push PDU (connectionless: TID first) of len
 *  bytes of SAN. */
void memds_wappush_pdu(memds_buf_t *out, unsigned char tid, const void *san,
                       apr_size_t len);
/** The same for a legacy (DS 1.1) SAN, a WBXML SyncML message: Content-Type
 *  application/vnd.syncml+wbxml (well-known 0x0303, in the general form
 *  03 02 03 03), the same application id. */
void memds_wappush_pdu_legacy(memds_buf_t *out, unsigned char tid,
                              const void *san, apr_size_t len);

/**
 * The SMS of the WAP Push of len bytes of SAN (transaction id tid,
 * concatenation reference ref): one SMS when the PDU fits (UDH 7 octets),
 * else segments of 128 octets with a 12-octet UDH. *psegs: an array of
 * memds_sms_seg_t, in order, from p. APR_EINVAL with *why when the SAN is
 * empty or would need more than 255 SMS.
 */
apr_status_t memds_wappush_sms(apr_array_header_t **psegs, const void *san,
                               apr_size_t len, unsigned char tid,
                               unsigned char ref, const char **why,
                               apr_pool_t *p);
/** The same with memds_wappush_pdu_legacy's PDU. */
apr_status_t memds_wappush_sms_legacy(apr_array_header_t **psegs,
                                      const void *san, apr_size_t len,
                                      unsigned char tid, unsigned char ref,
                                      const char **why, apr_pool_t *p);

/** Whether s is a phone number for the SMS channel: an optional + and 3
 *  to 20 digits. */
int memds_sms_number_ok(const char *s);

#endif /* MEMDS_WAPPUSH_H */
