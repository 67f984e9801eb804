/**
 * @file memds_msg_min.h
 * Interim SyncML answer used until the codec and engine issues land: reads
 * the SyncHdr and the top-level commands of a request (XML, or WBXML through
 * libwbxml's converter) and builds a well-formed response in the same
 * encoding: a Status 200 for the SyncHdr and a Status 501 ("command not
 * implemented") for every top-level command, then Final. It never claims to
 * have done anything it did not do.
 */
#ifndef MEMDS_MSG_MIN_H
#define MEMDS_MSG_MIN_H

#include <apr_pools.h>

/** Largest nesting depth accepted in an XML request. */
#define MEMDS_MSG_MIN_MAX_DEPTH 64

/**
 * Build the interim response to one request body.
 * @param pout,poutlen out: response bytes, from p
 * @param perr  out on failure: why the body is not a SyncML message
 *              (for the log and a 400 answer), from p
 * @param in,inlen  the request body
 * @param wbxml non-zero for application/vnd.syncml+wbxml
 * @return APR_SUCCESS, APR_EINVAL when the body is not SyncML, or another
 *         error when the response could not be encoded
 */
apr_status_t memds_msg_min_respond(const char **pout, apr_size_t *poutlen,
                                   const char **perr, const char *in,
                                   apr_size_t inlen, int wbxml, apr_pool_t *p);

#endif /* MEMDS_MSG_MIN_H */
