/* memds_http.c: one-shot HTTP POST and GET (memds_http.h). */
#include "backends/memds_http.h"
#include "backends/memds_curl.h"

#include <apr_strings.h>
#include <string.h>

#define BODY_KEEP 256 /* bytes of an answer kept for the caller */

typedef struct body_t {
    char buf[BODY_KEEP + 1];
    apr_size_t len;
} body_t;

static size_t keep_head(char *ptr, size_t size, size_t n, void *baton)
{
    body_t *b = baton;
    size_t got = size * n, room = BODY_KEEP - b->len;

    if (room > 0) {
        memcpy(b->buf + b->len, ptr, got < room ? got : room);
        b->len += got < room ? got : room;
    }
    return got;
}

/* A request to url: POST of data when ctype is not NULL, else GET. The
 * error names the URL without its query (which may carry credentials). */
static apr_status_t request(int *pstatus, const char *url, const char *ctype,
                            const char *data, apr_size_t len, long timeout_ms,
                            const char **pbody, const char **perr,
                            apr_pool_t *p)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    body_t body;
    CURLcode rc;
    long code = 0;

    *pstatus = 0;
    if (h == NULL) {
        *perr = "cannot make a libcurl handle";
        return APR_EGENERAL;
    }
    errbuf[0] = 0;
    body.len = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    memds_curl_protocols(h, "http,https", CURLPROTO_HTTP | CURLPROTO_HTTPS);
    if (ctype != NULL) {
        hdrs = curl_slist_append(hdrs,
                                 apr_pstrcat(p, "Content-Type: ", ctype, NULL));
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_head);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        *pstatus = (int)code;
        if (pbody != NULL) {
            *pbody = apr_pstrmemdup(p, body.buf, body.len);
        }
    }
    else {
        const char *q = strchr(url, '?');

        *perr = apr_psprintf(p, "%s %s: %s", ctype ? "POST" : "GET",
                             q ? apr_pstrmemdup(p, url, (apr_size_t)(q - url))
                               : url,
                             errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t memds_http_post(int *pstatus, const char *url, const char *ctype,
                             const char *data, apr_size_t len, long timeout_ms,
                             const char **perr, apr_pool_t *p)
{
    return request(pstatus, url, ctype, data, len, timeout_ms, NULL, perr, p);
}

apr_status_t memds_http_get(int *pstatus, const char *url, long timeout_ms,
                            const char **pbody, const char **perr,
                            apr_pool_t *p)
{
    return request(pstatus, url, NULL, NULL, 0, timeout_ms, pbody, perr, p);
}
