/**
 * @file memds_mime.h
 * Preparing a message that a device put into its Outbox for SMTP
 * submission: the envelope (sender and recipients) from the header, the
 * Bcc fields taken out, Message-ID and Date added when missing, line ends
 * made CRLF.
 *
 * Only the header block is edited, as text: fields are dropped or
 * appended, never rewritten, and the body is copied byte for byte (after
 * the line-end normalisation). Address lists (groups, quoted display names
 * with commas, encoded-words, comments, domain literals) are read by the
 * module's own RFC 5322 parser (docs/addresses.md); GMime only converts
 * non-ASCII domains to IDNA and encodes a non-ASCII default sender, from
 * parts that parser checked. The message is never written through GMime,
 * whose writer may re-fold headers and re-encode parts.
 *
 * Threads: memds_mime_global_init() once per process before any thread
 * uses this file; after that memds_mime_prepare() keeps no global state
 * (GMime parser options are made per call) and is thread-safe as long as
 * a pool is not shared between threads.
 */
#ifndef MEMDS_MIME_H
#define MEMDS_MIME_H

#include <apr_pools.h>
#include <apr_tables.h>

/**
 * Process-wide GMime setup (g_mime_init()). Call it once, before threads
 * (g_mime_init() is not thread-safe: it counts calls in a plain global
 * and seeds rand()), e.g. in post_config with memds_mime_global_cleanup()
 * as a cleanup of pconf. Calls nest: each init needs one cleanup.
 */
void memds_mime_global_init(void);

/** Undo one memds_mime_global_init() (the last one frees GMime's tables).
 *  No memds_mime_prepare() may run at the same time or afterwards. */
void memds_mime_global_cleanup(void);

/** A message ready for SMTP. Everything lives in the pool given to
 *  memds_mime_prepare(). */
typedef struct memds_mime_submission_t {
    /** Envelope sender (MAIL FROM), an addr-spec: the From header's
     *  mailbox (the Sender's when From lists several and there is a
     *  Sender), else the default sender's. */
    const char *from;
    /** Envelope recipients (RCPT TO), const char * addr-specs from every
     *  To, Cc and Bcc field in header order; groups flattened, duplicates
     *  (compared ASCII case-insensitively) removed, first spelling kept.
     *  Never empty. */
    apr_array_header_t *rcpts;
    /** The Message-ID with its angle brackets: the message's own (first
     *  <...> of the first non-empty field; wrapped in <> if it had none)
     *  or the one added. */
    const char *message_id;
    /** The bytes for DATA: the header without Bcc fields and with the
     *  fields added, an empty line, the body unchanged. CRLF line ends;
     *  not dot-stuffed and not necessarily ending in CRLF (the SMTP
     *  client does both). NUL-terminated; len excludes the NUL. */
    const char *data;
    apr_size_t len;
    int added_from;       /**< 1: From: <default sender> was added */
    int added_message_id; /**< 1: a Message-ID field was added */
    int added_date;       /**< 1: a Date field was added */
    int removed_bcc;      /**< number of Bcc fields taken out */
    /** The Bcc fields taken out, as they were (CRLF line ends, each
     *  ending in CRLF), for the sender's own copies (Sent, Drafts):
     *  these fields followed by data is the message with its Bcc. ""
     *  when there was none. NUL-terminated. */
    const char *bcc_fields;
    apr_size_t bcc_len;
    /** 1: data holds bytes >= 0x80 (send with BODY=8BITMIME). */
    int eightbit;
    /** 1: from or a recipient has a non-ASCII local part (needs the
     *  SMTPUTF8 extension). Domains are IDNA A-labels (ASCII) whenever
     *  GMime could convert them. */
    int smtputf8;
} memds_mime_submission_t;

/**
 * Parse an RFC 5322 message and prepare it for submission.
 *
 * msg/len: the message, CRLF or LF line ends (a bare CR or LF becomes
 * CRLF, also in the body: SMTP carries nothing else). The header block
 * ends at the first empty line; a message without one is all header with
 * no body (an empty line is then written after the header). Every header
 * line must be a field ("name:" with an RFC 5322 field name, white space
 * before the colon tolerated) or a continuation line.
 *
 * Envelope: see memds_mime_submission_t. Each address must be an
 * RFC 5321 mailbox (local part, '@', domain; no domain-less names like
 * "john"). A list that is not read completely is refused with a reason:
 * leftover words ("a@b c@d", "a@b; c@d"), an unclosed quoted string,
 * comment or domain literal, a stray ')' ']' or backslash, a control
 * character (docs/addresses.md has the grammar). Sloppiness with one
 * meaning is accepted ("a@b <a@b>" unquoted, a missing '>', a missing ';'
 * at the end, empty list elements). From fields without any mailbox
 * (empty, or an empty group) count as missing: they are dropped and
 * default_from is used.
 * Resent-* fields are left alone and not used. A quoted local part
 * ("a b"@x) is returned as such (the SMTP backend refuses spaces).
 *
 * Header changes: every Bcc field (name case-insensitive, with its
 * continuation lines) is removed; when missing, appended in this order
 * before the empty line: "From: default_from", "Date: <now, UTC,
 * RFC 5322>", "Message-ID: <hex.hex@domain>". Empty Date and Message-ID
 * fields count as missing and are replaced. Nothing else changes.
 *
 * @param psub         set on success only
 * @param default_from sender used when the message has none: an addr-spec
 *                     or "Name <addr-spec>" (written as given, or
 *                     RFC 2047-encoded by GMime when not plain ASCII);
 *                     may be NULL (then a From is required)
 * @param domain       right-hand side of generated Message-IDs (dot-atom
 *                     or [literal]); NULL or "": the envelope sender's
 *                     domain
 * @param max_len      limit in bytes of the input and of the prepared
 *                     data; 0: no limit
 * @param pwhy         on failure (may be NULL): a reason fit for a user
 *                     (static or from p; addresses in it are reduced to
 *                     printable ASCII)
 * @return APR_SUCCESS; APR_EINVAL for an empty, too large or malformed
 *         message, no recipients, a bad address, no sender, a bad
 *         default_from or domain; the status of apr_generate_random_bytes()
 *         if that fails.
 *
 * memds_mime_global_init() must have been called.
 */
apr_status_t memds_mime_prepare(memds_mime_submission_t **psub, const char *msg,
                                apr_size_t len, const char *default_from,
                                const char *domain, apr_size_t max_len,
                                const char **pwhy, apr_pool_t *p);

/**
 * The value of the first header field called name (case-insensitive) of a
 * CRLF message: unfolded, blanks around it removed; NULL when there is no
 * such field, it is empty, or the header is malformed.
 */
const char *memds_mime_header_value(const char *msg, apr_size_t len,
                                    const char *name, apr_pool_t *p);

/**
 * The header fields of a CRLF message except those named in drop
 * (NULL-terminated list, case-insensitive), as text without the empty line
 * that ends the header; *pbody the offset of the body. NULL when the
 * header is malformed.
 */
const char *memds_mime_header_without(const char *msg, apr_size_t len,
                                      const char *const *drop,
                                      apr_size_t *pbody, apr_pool_t *p);

/**
 * The message made 7-bit (for a device that takes only the email object,
 * whose text is XML: raw 8-bit mail in another charset cannot be XML
 * text): every part whose content has 8-bit bytes gets the best 7-bit
 * transfer encoding (quoted-printable or base64) and every header field
 * with 8-bit bytes is decoded (UTF-8, else the parser's fallback charset)
 * and written again as RFC 2047 encoded words. The content is unchanged
 * once decoded. APR_SUCCESS with *pout (CRLF, NUL-terminated, all ASCII);
 * APR_EINVAL when the message cannot be read or some byte stays 8-bit
 * (a preamble, say).
 */
apr_status_t memds_mime_seven_bit(const char **pout, apr_size_t *plen,
                                  const char *msg, apr_size_t len,
                                  apr_pool_t *p);

#endif /* MEMDS_MIME_H */
