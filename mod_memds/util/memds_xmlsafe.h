/**
 * @file memds_xmlsafe.h
 * The one hardened libxml2 parse every XML reader of the module uses (the
 * SyncML codec, the email and folder objects): no network, no DTD loading,
 * no entity substitution, a DOCTYPE internal subset refused before any
 * declaration is read, UTF-8 input only, depth and element limits enforced
 * while parsing, errors taken from the parser context (never a global
 * handler), so it is thread-safe (DESIGN.md decision 8).
 */
#ifndef MEMDS_XMLSAFE_H
#define MEMDS_XMLSAFE_H

#include <apr_pools.h>
#include <libxml/tree.h>

typedef struct memds_xmlsafe_t {
    /* in */
    apr_pool_t *p;
    int max_depth;        /**< element nesting allowed */
    apr_size_t max_nodes; /**< elements allowed */
    int keep_cdata;       /**< keep CDATA nodes (else they become text) */
    /* out, on failure */
    apr_status_t rv; /**< APR_EINVAL (bad input) or APR_ENOMEM */
    const char *msg; /**< e.g. "malformed XML at line 3: ..." */
    int line;
    int stop; /**< non-zero: a hardening limit stopped the parse
                                 (internal subset, depth, elements) */
    /* private: set by the parser hooks */
    int depth;
    apr_size_t elements;
    int stop_line;
    const char *error;
    int error_line;
} memds_xmlsafe_t;

/**
 * Parse buf into *pdoc (free with xmlFreeDoc). x->p, max_depth, max_nodes
 * and keep_cdata must be set; on failure *pdoc is NULL and x->rv, msg and
 * line say why.
 */
apr_status_t memds_xmlsafe_parse(xmlDocPtr *pdoc, memds_xmlsafe_t *x,
                                 const char *buf, apr_size_t len);

#endif /* MEMDS_XMLSAFE_H */
