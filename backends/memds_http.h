/**
 * @file memds_http.h
 * One-shot HTTP(S) requests through libcurl (push delivery, docs/push.md):
 * a POST (the http channel) and a GET (Kannel's sendsms, the sms channel).
 */
#ifndef MEMDS_HTTP_H
#define MEMDS_HTTP_H

#include <apr_pools.h>

/**
 * POST len bytes of data with Content-Type ctype to url (http:// or
 * https://, certificates verified), waiting at most timeout_ms. *pstatus:
 * the HTTP status (0 when none came). APR_SUCCESS when a status came;
 * APR_EGENERAL with *perr (from p) when the request failed.
 */
apr_status_t memds_http_post(int *pstatus, const char *url, const char *ctype,
                             const char *data, apr_size_t len, long timeout_ms,
                             const char **perr, apr_pool_t *p);

/**
 * GET url (http:// or https://), waiting at most timeout_ms. *pstatus and
 * the result as for memds_http_post; *pbody (when pbody is not NULL): the
 * first 256 bytes of the answer. An error names the URL without its query.
 */
apr_status_t memds_http_get(int *pstatus, const char *url, long timeout_ms,
                            const char **pbody, const char **perr,
                            apr_pool_t *p);

#endif /* MEMDS_HTTP_H */
