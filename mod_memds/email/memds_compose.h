/**
 * @file memds_compose.h
 * Reply and forward without download: the message that goes out, composed
 * from what the device wrote and the original it names, fetched part by
 * part through a callback (the caller knows where the original lives; this
 * module knows only MIME).
 *
 * A device's Outbox message carries "X-MemDS-Reply: <server id>" or
 * "X-MemDS-Forward: <server id>":
 * - reply: the original's text quoted under the device's text ("On <date>,
 *   <from> wrote:" and "> " lines), In-Reply-To and References set;
 * - forward: the original's text quoted under a "Forwarded message" line,
 *   and every attachment of the original attached byte for byte (its MIME
 *   header and body as stored).
 * Quoting needs the device's message to be one text/plain part without a
 * transfer encoding (what phones send) and the original's text to be UTF-8
 * or ASCII; otherwise the text is attached instead of quoted.
 */
#ifndef MEMDS_COMPOSE_H
#define MEMDS_COMPOSE_H

#include <apr_pools.h>
#include <apr_tables.h>

/** A leaf part of the original (from its BODYSTRUCTURE), in order. */
typedef struct memds_compose_part_t {
    const char *section;        /**< IMAP section number ("1", "2.1") */
    const char *type, *subtype; /**< lower or any case; never NULL */
    const char *charset, *encoding, *disposition; /**< or NULL */
} memds_compose_part_t;

/** Fetch a section of the original: "" the whole message, "N.MIME" a
 *  part's MIME header, "N" its body as stored, or with binary set its
 *  decoded content; a header field list "HEADER.FIELDS (...)" too.
 *  A failure is the caller's to report (compose returns it unchanged). */
typedef apr_status_t memds_compose_fetch_fn(void *baton, const char *section,
                                            int binary, const char **pdata,
                                            apr_size_t *plen);

typedef struct memds_compose_orig_t {
    int forward;                     /**< 1 forward, 0 reply */
    const apr_array_header_t *parts; /**< memds_compose_part_t */
    int multipart;                   /**< the original is multipart */
    memds_compose_fetch_fn *fetch;
    void *baton;
} memds_compose_orig_t;

/** The original a device's message names: *pid (NULL: none) and whether
 *  it asks for a forward. */
void memds_compose_target(const char *msg, apr_size_t len, const char **pid,
                          int *pforward, apr_pool_t *p);

/**
 * The message to send: the device's message msg (CRLF, header and text)
 * with the original o quoted and (forward) attached. The header fields
 * X-MemDS-Reply/-Forward are removed. *pout is NUL-terminated.
 * @return APR_SUCCESS; APR_EINVAL when the device's header cannot be read
 *         (*pwhy says why); the fetch callback's error as it returned it
 *         (*pwhy NULL); APR_EGENERAL with *pwhy for anything else.
 */
apr_status_t memds_compose(const char **pout, apr_size_t *plen, const char *msg,
                           apr_size_t len, const memds_compose_orig_t *o,
                           const char **pwhy, apr_pool_t *p);

#endif /* MEMDS_COMPOSE_H */
