/* memds_curl.c: libcurl options and CURLcode classes shared by the IMAP
 * and SMTP clients (memds_curl.h). */
#include "backends/memds_curl.h"

#include <apr_strings.h>

memds_curl_class_e memds_curl_class(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return MEMDS_CURL_TIMEOUT;
    case CURLE_LOGIN_DENIED: return MEMDS_CURL_AUTH;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_BAD_FUNCTION_ARGUMENT: return MEMDS_CURL_CONFIG;
    case CURLE_OUT_OF_MEMORY: return MEMDS_CURL_NOMEM;
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED: return MEMDS_CURL_TLS;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:   /* greeting refused (421, 554) */
    case CURLE_REMOTE_ACCESS_DENIED: /* SMTP: EHLO and HELO refused */
        return MEMDS_CURL_CONNECT;
    default: return MEMDS_CURL_OTHER;
    }
}

void memds_curl_protocols(CURL *h, const char *names, long bits)
{
#if LIBCURL_VERSION_NUM >= 0x075500
    (void)bits;
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, names);
#else
    (void)names;
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, bits);
#endif
}

void memds_curl_tls(CURL *h, int no_verify, const char *ca_file)
{
    if (no_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (ca_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    }
}

const char *memds_curl_strerror(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        return "the server's certificate is not trusted (unknown CA, "
               "expired, or not for this host name)";
    case CURLE_USE_SSL_FAILED:
        return "STARTTLS is required but the server does not offer it";
    case CURLE_SSL_CACERT_BADFILE:
        return "the CA file cannot be read";
    default: return curl_easy_strerror(rc);
    }
}

void memds_curl_sasl(CURL *h, const char *mech, const char *authzid,
                     apr_pool_t *p)
{
    if (mech) {
        curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS,
                         apr_pstrcat(p, "AUTH=", mech, NULL));
    }
    if (authzid) {
        curl_easy_setopt(h, CURLOPT_SASL_AUTHZID, authzid);
    }
}

apr_status_t memds_curl_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS
                                                             : APR_EGENERAL;
}

void memds_curl_global_cleanup(void)
{
    curl_global_cleanup();
}
