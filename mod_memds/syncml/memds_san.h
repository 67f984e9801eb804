/**
 * @file memds_san.h
 * Server Alerted Notification (SAN, "package #0", docs/san.md): the OMA DS
 * 1.2 binary package that tells a device to start a sync, and the legacy
 * form for DS 1.0/1.1 devices (a SyncML 1.1 message with one Alert per
 * datastore). Built, and parsed by the project's own strict parser (which
 * reads untrusted bytes and is fuzzed). Pure: no I/O, no state; every
 * result comes from the pool given. Delivery (WAP push, HTTP) is not here.
 *
 * SAN 1.2 layout (big-endian, bit 0 = MSB of byte 16):
 *
 *   0   16 bytes digest   MD5(B64(MD5(id ":" pw)) ":" nonce ":"
 *                             B64(MD5(bytes 16..end)))
 *   16  10 bits version (12), 2 bits ui-mode, 1 bit initiator,
 *       27 bits future use (0), 16 bits session id, 8 bits length N
 *   24  N bytes server identifier
 *       4 bits num-syncs (0: all datastores), 4 bits future use (0)
 *       per sync: 4 bits sync type - 200, 4 bits future use, 24 bits
 *       content-type code, 8 bits length M, M bytes server URI
 *       vendor-specific bytes (opaque) up to the end
 */
#ifndef MEMDS_SAN_H
#define MEMDS_SAN_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "util/memds_buf.h"
#include "syncml/memds_msg.h"

/** The version field of a SAN 1.2 (10 * major + minor). */
#define MEMDS_SAN_VERSION 12
/** Bytes of the digest at the start of a SAN 1.2. */
#define MEMDS_SAN_DIGEST_LEN 16
/** Bytes from the start to the server identifier (digest and header). */
#define MEMDS_SAN_HDR_LEN 24
/** Most sync entries one package can list (a 4-bit field). */
#define MEMDS_SAN_MAX_SYNCS 15

/** UI mode of the notification. */
#define MEMDS_SAN_UI_NOT_SPECIFIED 0
#define MEMDS_SAN_UI_BACKGROUND 1
#define MEMDS_SAN_UI_INFORMATIVE 2
#define MEMDS_SAN_UI_USER 3

/** Initiator. */
#define MEMDS_SAN_INIT_USER 0
#define MEMDS_SAN_INIT_SERVER 1

/** Content-type codes of a sync entry (OMNA/WSP well-known values). */
#define MEMDS_SAN_CT_UNSPECIFIED 0x000000
#define MEMDS_SAN_CT_EMAIL 0x000306  /**< application/vnd.omads-email+xml */
#define MEMDS_SAN_CT_FILE 0x000307   /**< application/vnd.omads-file+xml */
#define MEMDS_SAN_CT_FOLDER 0x000308 /**< application/vnd.omads-folder+xml */

/** One datastore to sync. */
typedef struct memds_san_sync_t {
    int sync_type;             /**< alert code 206..210 */
    apr_uint32_t content_type; /**< 24-bit code (SAN 1.2), 0: unspecified */
    /** The MIME type of the legacy form's Item/Meta/Type. Build: NULL means
     *  the name of content_type (none for 0). Parse: the name of the code
     *  (1.2; NULL when the table has none) or the type as sent (legacy). */
    const char *type;
    const char *uri; /**< the server's datastore URI, 1-255 bytes, no NUL */
} memds_san_sync_t;

/** A notification. */
typedef struct memds_san_t {
    int version;           /**< MEMDS_SAN_VERSION (the legacy form: 11) */
    int ui_mode;           /**< MEMDS_SAN_UI_* (0..3) */
    int initiator;         /**< MEMDS_SAN_INIT_* */
    unsigned session_id;   /**< 0..65535 */
    const char *server_id; /**< the server identifier, 1-255 bytes, no NUL */
    /** memds_san_sync_t (by value), at most MEMDS_SAN_MAX_SYNCS; NULL or
     *  empty: "all datastores" (num-syncs 0; the legacy form refuses it). */
    apr_array_header_t *syncs;
    const char *vendor; /**< opaque bytes after the last sync entry (1.2) */
    apr_size_t vendor_len;
    /** Parse: the digest as read (1.2; zeros for the legacy form). */
    unsigned char digest[MEMDS_SAN_DIGEST_LEN];
} memds_san_t;

/** A new notification (version 12, no syncs) from p. */
memds_san_t *memds_san_make(const char *server_id, apr_pool_t *p);

/** Append a sync entry to san (its syncs array is made when NULL). */
memds_san_sync_t *memds_san_add_sync(memds_san_t *san, int sync_type,
                                     apr_uint32_t content_type, const char *uri,
                                     apr_pool_t *p);

/** The content-type code of a MIME type (case-insensitive, parameters as
 *  in the table), 0 when the table has none. */
apr_uint32_t memds_san_ct_code(const char *type);
/** The MIME type of a content-type code, NULL when the table has none
 *  (and for 0). */
const char *memds_san_ct_name(apr_uint32_t code);

/** digest = MD5(B64(MD5(server_id ":" server_pw)) ":" nonce ":"
 *  B64(MD5(notification))), notification being every byte after the
 *  digest. server_pw NULL: all zeros (no credentials). */
void memds_san_digest(unsigned char digest[MEMDS_SAN_DIGEST_LEN],
                      const char *server_id, const char *server_pw,
                      const char *nonce, apr_size_t nonce_len,
                      const char *notification, apr_size_t len);

/**
 * Build the SAN 1.2 package of san, appended to out, with its digest from
 * server_pw and nonce (nonce_len bytes, the nonce's raw bytes; server_pw
 * NULL: an all-zero digest). APR_EINVAL with *why when a value does not fit
 * the layout (version not 12, ui mode, initiator, session id above 65535,
 * server id or URI empty or over 255 bytes, sync type outside 206..210,
 * content type over 24 bits, more than 15 syncs); nothing is appended then.
 */
apr_status_t memds_san_build(memds_buf_t *out, const memds_san_t *san,
                             const char *server_pw, const char *nonce,
                             apr_size_t nonce_len, const char **why,
                             apr_pool_t *p);

/**
 * Parse a SAN 1.2 package. With server_pw (and nonce) the digest must
 * match; server_pw NULL leaves it unchecked (san->digest holds it). Strict:
 * version 12 only, future-use bits 0, lengths within the buffer, num-syncs
 * entries that fit, sync types 206..210, no empty or NUL-holding server id
 * or URI. APR_EINVAL with *why (naming the byte offset) otherwise.
 */
apr_status_t memds_san_parse(memds_san_t **psan, const char *buf,
                             apr_size_t len, const char *server_pw,
                             const char *nonce, apr_size_t nonce_len,
                             const char **why, apr_pool_t *p);

/**
 * The legacy (DS 1.0/1.1) form as a message: SyncML 1.1, SessionID the
 * session id in decimal, MsgID 1, Target device_id (NULL: "/"), Source the
 * server id; one Alert per sync entry (CmdID 1..n, Data the sync type,
 * Item/Source/LocURI the URI, Item/Meta/Type the entry's type), Final.
 * UI mode, initiator and vendor bytes have no place in it. APR_EINVAL with
 * *why for no sync entry or a value out of range.
 */
apr_status_t memds_san_legacy_msg(memds_msg_t **pmsg, const memds_san_t *san,
                                  const char *device_id, const char **why,
                                  apr_pool_t *p);

/** memds_san_legacy_msg encoded (MEMDS_ENC_WBXML, as devices take it, or
 *  MEMDS_ENC_XML), appended to out. */
apr_status_t memds_san_build_legacy(memds_buf_t *out, const memds_san_t *san,
                                    const char *device_id, memds_enc_e enc,
                                    const char **why, apr_pool_t *p);

/**
 * A decoded SyncML message read as a legacy SAN: SyncML 1.0 or 1.1, Final,
 * only Alerts with a code 206..210 and Items with a Source LocURI (1-255
 * bytes; a Meta/Type is kept as type, content_type its code), at most 15
 * items in all. version is 11 (or 10), server_id the Source LocURI of the
 * header, session_id its SessionID (a number 0..65535). APR_EINVAL with
 * *why otherwise.
 */
apr_status_t memds_san_parse_legacy(memds_san_t **psan, const memds_msg_t *m,
                                    const char **why, apr_pool_t *p);

#endif /* MEMDS_SAN_H */
