/**
 * @file memds_trunc.h
 * A mail too big for a device, truncated from its structure: the message
 * the device gets in its Email object instead of the whole mail, built
 * from the original's BODYSTRUCTURE leaves and partial section fetches
 * through a callback (the caller knows where the original lives; this
 * module knows only MIME), never from the whole message.
 *
 * The result is a single-part message: the original's header fields
 * (without its Content-* and MIME-Version fields), then the first bytes of
 * the preferred text part (text/plain, else text/html) decoded and cut on
 * a character boundary, as 8bit UTF-8 text (CRLF lines) when the text is
 * UTF-8 or ASCII with short lines, else base64 in the part's own charset.
 * Everything left out goes to the Email object's <truncated>: the text
 * part when cut and every other text part as <body> (size = the part's
 * full size as stored, type), every other part as <attach> (name, size,
 * type).  When the whole header does not fit, only From, To, Cc, Subject,
 * Date, Message-ID, In-Reply-To are kept, each value at most
 * MEMDS_TRUNC_FIELD_MAX bytes.
 */
#ifndef MEMDS_TRUNC_H
#define MEMDS_TRUNC_H

#include "email/memds_email.h"

#include <apr_pools.h>
#include <apr_tables.h>

/** The longest header field value kept when the header is cut. */
#define MEMDS_TRUNC_FIELD_MAX 256

/** A leaf part of the original (from its BODYSTRUCTURE), in order. */
typedef struct memds_trunc_part_t {
    const char *section;        /**< IMAP section number ("1", "2.1") */
    const char *type, *subtype; /**< any case; never NULL */
    const char *charset, *encoding, *disposition; /**< or NULL */
    const char *name; /**< file name (disposition or type parameter) or NULL */
    apr_int64_t size; /**< body octets as stored (BODYSTRUCTURE size) */
} memds_trunc_part_t;

/** Fetch a section of the original: "HEADER" the message header (with its
 *  blank line), "N" a part's body as stored or with binary set its decoded
 *  content; at most max bytes from the start when max > 0
 *  (BODY.PEEK[N]<0.max>, BINARY.PEEK[N]<0.max>). A failure is returned
 *  unchanged by memds_trunc_build. */
typedef apr_status_t memds_trunc_fetch_fn(void *baton, const char *section,
                                          int binary, apr_size_t max,
                                          const char **pdata, apr_size_t *plen);

typedef struct memds_trunc_orig_t {
    const apr_array_header_t *parts; /**< memds_trunc_part_t */
    memds_trunc_fetch_fn *fetch;
    void *baton;
} memds_trunc_orig_t;

/**
 * The truncated message of o, at most budget bytes (*pout NUL-terminated),
 * and the <truncated> entries added to e (e->has_truncated set even when
 * nothing had to be left out, so that the device treats it as a copy).
 * @return APR_SUCCESS; APR_ENOSPC when not even the cut header fits
 *         (*pwhy says why); the fetch callback's error as it returned it.
 */
apr_status_t memds_trunc_build(const char **pout, apr_size_t *plen,
                               memds_email_t *e, const memds_trunc_orig_t *o,
                               apr_size_t budget, const char **pwhy,
                               apr_pool_t *p);

/** What else the truncated message holds (a level, docs/mail.md). */
typedef struct memds_trunc_opts_t {
    /** At most this many bytes of the text (of the decoded text part);
     *  -1: as much as the budget leaves, 0: no text. */
    apr_int64_t text_max;
    /** The attachment (leaf whose name is exactly this) to send whole,
     *  as stored (its own MIME header and transfer encoding), after the
     *  text in a multipart/mixed; NULL: none. Left out (and listed) when
     *  there is no such part or it does not fit the budget. */
    const char *attach_name;
} memds_trunc_opts_t;

/**
 * memds_trunc_build with a level: opts NULL is memds_trunc_build. Sets
 * *pall when nothing was left out (the caller may send the mail whole).
 */
apr_status_t memds_trunc_build_opts(const char **pout, apr_size_t *plen,
                                    memds_email_t *e,
                                    const memds_trunc_orig_t *o,
                                    apr_size_t budget,
                                    const memds_trunc_opts_t *opts, int *pall,
                                    const char **pwhy, apr_pool_t *p);

/** The text part memds_trunc_build_opts sends (the first text/plain, else
 *  text/html, that is not an attachment), or NULL. */
const memds_trunc_part_t *
memds_trunc_text_part(const apr_array_header_t *parts);

#endif /* MEMDS_TRUNC_H */
