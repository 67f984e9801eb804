/* memds_http.c: a one-shot HTTP POST (memds_http.h). */
#include "backends/memds_http.h"
#include "backends/memds_curl.h"

#include <apr_strings.h>

static size_t discard(char *ptr, size_t size, size_t n, void *baton)
{
    (void)ptr;
    (void)baton;
    return size * n;
}

apr_status_t memds_http_post(int *pstatus, const char *url, const char *ctype,
                             const char *data, apr_size_t len, long timeout_ms,
                             const char **perr, apr_pool_t *p)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode rc;
    long code = 0;

    *pstatus = 0;
    if (h == NULL) {
        *perr = "cannot make a libcurl handle";
        return APR_EGENERAL;
    }
    errbuf[0] = 0;
    hdrs = curl_slist_append(hdrs,
                             apr_pstrcat(p, "Content-Type: ", ctype, NULL));
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url);
    memds_curl_protocols(h, "http,https", CURLPROTO_HTTP | CURLPROTO_HTTPS);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        *pstatus = (int)code;
    }
    else {
        *perr = apr_psprintf(p, "POST %s: %s", url,
                             errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? APR_SUCCESS : APR_EGENERAL;
}
