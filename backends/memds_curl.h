/**
 * @file memds_curl.h
 * What the IMAP and SMTP clients both do with libcurl: the protocols a
 * handle may use, the TLS options (certificate checks, CA bundle), the SASL
 * options of a login, and what a CURLcode means. Private to backends/ (the
 * only folder that includes curl.h).
 */
#ifndef MEMDS_CURL_H
#define MEMDS_CURL_H

#include <apr_pools.h>
#include <curl/curl.h>

/** What a failed libcurl call means, for the backends' own error kinds. */
typedef enum {
    MEMDS_CURL_OTHER = 0, /**< anything else */
    MEMDS_CURL_CONNECT,   /**< resolve, connect, send or receive failed,
                                 nothing or a refusal as greeting */
    MEMDS_CURL_TLS,       /**< TLS handshake, certificate, STARTTLS */
    MEMDS_CURL_AUTH,      /**< login refused */
    MEMDS_CURL_TIMEOUT,   /**< no progress within the timeout */
    MEMDS_CURL_CONFIG,    /**< bad URL, protocol not built in, bad option */
    MEMDS_CURL_NOMEM      /**< out of memory */
} memds_curl_class_e;

/** The class of a CURLcode other than CURLE_OK. */
memds_curl_class_e memds_curl_class(CURLcode rc);

/** Restrict h to the protocols named as in CURLOPT_PROTOCOLS_STR (e.g.
 *  "imap,imaps"); bits is the same as CURLPROTO_* for a libcurl older than
 *  7.85. */
void memds_curl_protocols(CURL *h, const char *names, long bits);

/** TLS options: no_verify turns the peer and host checks off (tests only);
 *  ca_file, when not NULL, is the CA bundle instead of the system's. */
void memds_curl_tls(CURL *h, int no_verify, const char *ca_file);

/** A CURLcode other than CURLE_OK for the log: what an untrusted
 *  certificate, STARTTLS not offered or an unreadable CA file means, else
 *  libcurl's own text (e.g. "SSL connect error"). Static. */
const char *memds_curl_strerror(CURLcode rc);

/** SASL options of a login: the mechanism (CURLOPT_LOGIN_OPTIONS
 *  "AUTH=mech", from p) and the authorization identity, each when not
 *  NULL. */
void memds_curl_sasl(CURL *h, const char *mech, const char *authzid,
                     apr_pool_t *p);

/** Process-wide libcurl setup and teardown (not thread-safe: once, before
 *  any thread uses libcurl). */
apr_status_t memds_curl_global_init(void);
void memds_curl_global_cleanup(void);

#endif /* MEMDS_CURL_H */
