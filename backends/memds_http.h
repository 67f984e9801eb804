/**
 * @file memds_http.h
 * A one-shot HTTP(S) POST through libcurl (push delivery, docs/push.md).
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

#endif /* MEMDS_HTTP_H */
