/**
 * @file memds_util.h
 * Small helpers of the core library: sizes, URLs, content types, a logger
 * hand-off. No httpd headers here (the core links into tools and tests too).
 */
#ifndef MEMDS_UTIL_H
#define MEMDS_UTIL_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <string.h>

/** Wire encodings of a SyncML message (from the HTTP Content-Type). */
typedef enum {
    MEMDS_CT_MISSING = 0, /**< no Content-Type header */
    MEMDS_CT_XML,         /**< application/vnd.syncml+xml */
    MEMDS_CT_WBXML,       /**< application/vnd.syncml+wbxml */
    MEMDS_CT_OTHER        /**< anything else */
} memds_ct_e;

#define MEMDS_CT_XML_STR "application/vnd.syncml+xml"
#define MEMDS_CT_WBXML_STR "application/vnd.syncml+wbxml"

/**
 * Classify an HTTP Content-Type value: media type compared case-insensitively,
 * parameters (e.g. "; charset=UTF-8") and surrounding blanks ignored.
 */
memds_ct_e memds_content_type(const char *value);

/**
 * Parse a byte size: decimal digits with an optional K, M or G suffix
 * (binary multiples, case-insensitive). Fails with APR_EINVAL on anything
 * else, on overflow, and when the result is outside [min, max].
 */
apr_status_t memds_parse_size(apr_off_t *psize, const char *s, apr_off_t min,
                              apr_off_t max);

/**
 * Parse a non-negative decimal integer no larger than max (no sign, no blanks).
 */
apr_status_t memds_parse_uint(int *pval, const char *s, int max);

/**
 * Check that url is an absolute URL whose scheme is one of schemes (a
 * NULL-terminated list), with a host, an optional port 1-65535, no user
 * information and nothing but "/" as path.
 * @return NULL when it is fine, else a sentence saying what is wrong,
 *         allocated from p.
 */
const char *memds_check_server_url(const char *url, const char *const *schemes,
                                   apr_pool_t *p);

/** Largest CA bundle accepted (bytes): Debian's whole system bundle is
 *  about 0.2 MB. */
#define MEMDS_MAX_CA_FILE (8 * 1024 * 1024)

/**
 * Check that buf (len bytes) reads as a CA bundle in PEM: at least one
 * CERTIFICATE block with an END line and content, every block closed, and
 * no private key. Pure (no TLS library): the certificates' contents are
 * left to the TLS library when it loads the file.
 * @return NULL when it is fine, else a fixed sentence saying why not.
 */
const char *memds_check_ca_pem(const char *buf, apr_size_t len);

/**
 * memds_check_ca_file's file: a regular file of 1 byte to
 * MEMDS_MAX_CA_FILE that memds_check_ca_pem accepts.
 * @return NULL when it is fine, else a sentence naming path, from p.
 */
const char *memds_check_ca_file(const char *path, apr_pool_t *p);

/**
 * Length (2..4) of the valid multi-byte UTF-8 sequence starting at s (s <
 * end, *s >= 0x80), or 0 when it is invalid (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF, not truncated); *cp gets the code
 * point.
 */
apr_size_t memds_utf8_seq(const unsigned char *s, const unsigned char *end,
                          unsigned *cp);

/* The scans of mail text (escaping, XML and UTF-8 checks, line ends) go
 * sixteen bytes at a time: memds_scan16 gives the index (0..15) of the
 * first of the 16 bytes at s (all readable) that is one of a, b, c, d or
 * of the class cls, or 16 when none is. SSE2 where the compiler has it
 * (every x86-64), else eight-byte words; both are exported for the unit
 * test that compares them with a byte loop. */
#define MEMDS_SCAN_NONE 0 /**< only a, b, c, d */
#define MEMDS_SCAN_HIGH 1 /**< and every byte 0x80 and above */
#define MEMDS_SCAN_CTL 2  /**< and every byte below 0x20 or 0x80 and above */

#define MEMDS_W_ONES APR_UINT64_C(0x0101010101010101)
#define MEMDS_W_HIGH APR_UINT64_C(0x8080808080808080)
/* A byte below k of w sets its high bit in (w - k*1s) & ~w & high; a
 * borrow makes bytes above the first such one inexact, never the first
 * (so only the lowest set bit is used, on a little-endian machine). */
#define MEMDS_W_BELOW(w, k) \
    (((w) - MEMDS_W_ONES * (k)) & ~(w) & MEMDS_W_HIGH)
#define MEMDS_W_HAS(w, c) MEMDS_W_BELOW((w) ^ (MEMDS_W_ONES * (unsigned char)(c)), 1)

static inline unsigned memds_scan16_bytes(const unsigned char *s,
                                          unsigned char a, unsigned char b,
                                          unsigned char c, unsigned char d,
                                          int cls)
{
    unsigned i;

    for (i = 0; i < 16; ++i) {
        unsigned char x = s[i];
        if (x == a || x == b || x == c || x == d
            || (cls != MEMDS_SCAN_NONE && x >= 0x80)
            || (cls == MEMDS_SCAN_CTL && x < 0x20)) {
            break;
        }
    }
    return i;
}

static inline unsigned memds_scan16_words(const unsigned char *s,
                                          unsigned char a, unsigned char b,
                                          unsigned char c, unsigned char d,
                                          int cls)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    unsigned k;

    for (k = 0; k < 16; k += 8) {
        apr_uint64_t w, m;
        memcpy(&w, s + k, sizeof(w));
        m = MEMDS_W_HAS(w, a) | MEMDS_W_HAS(w, b) | MEMDS_W_HAS(w, c)
            | MEMDS_W_HAS(w, d)
            | (cls == MEMDS_SCAN_NONE ? 0 : w & MEMDS_W_HIGH)
            | (cls == MEMDS_SCAN_CTL ? MEMDS_W_BELOW(w, 0x20) : 0);
        if (m) {
            return k + (unsigned)__builtin_ctzll(m) / 8;
        }
    }
    return 16;
#else
    return memds_scan16_bytes(s, a, b, c, d, cls);
#endif
}

#if defined(__SSE2__)
#include <emmintrin.h>
#define MEMDS_HAVE_SCAN16_SSE2 1
static inline unsigned memds_scan16_sse2(const unsigned char *s,
                                         unsigned char a, unsigned char b,
                                         unsigned char c, unsigned char d,
                                         int cls)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i m = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)a)),
                     _mm_cmpeq_epi8(v, _mm_set1_epi8((char)b))),
        _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)c)),
                     _mm_cmpeq_epi8(v, _mm_set1_epi8((char)d))));
    unsigned bits;

    if (cls == MEMDS_SCAN_CTL) {
        /* signed: 0x80..0xFF are below 0x20 too */
        m = _mm_or_si128(m, _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    }
    else if (cls == MEMDS_SCAN_HIGH) {
        m = _mm_or_si128(m, v); /* (the high bit is what movemask takes) */
    }
    bits = (unsigned)_mm_movemask_epi8(m);
    return bits ? (unsigned)__builtin_ctz(bits) : 16;
}
#define memds_scan16 memds_scan16_sse2
#else
#define memds_scan16 memds_scan16_words
#endif

/** Lower-case hex SHA-1 of len bytes (any length), from p. */
const char *memds_sha1_hex(const char *data, apr_size_t len, apr_pool_t *p);

/** Log levels of the core (same numbers as syslog and httpd's APLOG_*). */
typedef enum {
    MEMDS_LOG_ERR = 3,
    MEMDS_LOG_WARNING = 4,
    MEMDS_LOG_NOTICE = 5,
    MEMDS_LOG_INFO = 6,
    MEMDS_LOG_DEBUG = 7
} memds_log_level_e;

/**
 * Where the core's log lines go: the glue points it at ap_log_error, tools
 * and tests at stderr. Passed explicitly (no global logger) so that each
 * server or tool owns its own.
 */
typedef void memds_log_cb(void *baton, int level, apr_status_t rv,
                          const char *msg);
typedef struct memds_logger_t {
    memds_log_cb *cb;
    void *baton;
} memds_logger_t;

/** The code that starts every log line of the core, one per log site
 *  (as httpd's APLOGNO), put before the format: MEMDS_LOGNO(nnnnn) "...".
 *  docs/logcodes.md lists every code; tests/unit/check-logcodes.py checks
 *  that the list and the source agree and that no code is used twice. */
#define MEMDS_LOGNO(n) "MEMDS" #n ": "

/** printf-style logging through a logger; a NULL logger or cb drops it. */
void memds_logf(const memds_logger_t *lg, int level, apr_status_t rv,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** s with every occurrence of secret replaced by "***" (s itself when
 *  there is none); for error texts of libraries that echo credentials. */
const char *memds_scrub_secret(apr_pool_t *p, const char *s,
                               const char *secret);

/* Fault points (docs/testing.md, docs/crash-recovery.md): compiled only
 * with --enable-fault-injection (the fault tests' second module, never
 * production). MEMDS_FAULT("name") then kills the process (SIGKILL: no
 * cleanup) when httpd's environment has MEMDS_TEST_FAULT=name, or when
 * MEMDS_TEST_FAULT is an absolute path of an arming file holding "name"
 * (or "name N": at the Nth hit), read again at every point, which the
 * child that fires unlinks first (so one child fires per arming, and a
 * campaign kills thousands of times without restarting httpd); before
 * dying it writes "MEMDS fault point name fired in pid P" to stderr
 * (httpd's error log), so that a test can require that the point fired. */
#ifdef MEMDS_FAULT_INJECTION
void memds_fault(const char *point);
#define MEMDS_FAULT(point) memds_fault(point)
#else
#define MEMDS_FAULT(point) ((void)0)
#endif

#endif /* MEMDS_UTIL_H */
