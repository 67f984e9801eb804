/* memds_util.c: small helpers of the core library (see memds_util.h). */
#include "util/memds_util.h"
#include <unistd.h>
#include <stdlib.h>
#include <signal.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>
#include <apr_sha1.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

memds_ct_e memds_content_type(const char *value)
{
    const char *s, *e;
    apr_size_t n;

    if (value == NULL) {
        return MEMDS_CT_MISSING;
    }
    for (s = value; *s == ' ' || *s == '\t'; ++s)
        ;
    for (e = s; *e && *e != ';' && *e != ' ' && *e != '\t'; ++e)
        ;
    n = (apr_size_t)(e - s);
    if (n == 0) {
        return MEMDS_CT_MISSING;
    }
    if (n == sizeof(MEMDS_CT_XML_STR) - 1
        && strncasecmp(s, MEMDS_CT_XML_STR, n) == 0) {
        return MEMDS_CT_XML;
    }
    if (n == sizeof(MEMDS_CT_WBXML_STR) - 1
        && strncasecmp(s, MEMDS_CT_WBXML_STR, n) == 0) {
        return MEMDS_CT_WBXML;
    }
    return MEMDS_CT_OTHER;
}

apr_status_t memds_parse_size(apr_off_t *psize, const char *s, apr_off_t min,
                              apr_off_t max)
{
    apr_off_t v = 0, mult = 1;
    const char *c = s;

    if (s == NULL || !apr_isdigit(*s)) {
        return APR_EINVAL;
    }
    for (; apr_isdigit(*c); ++c) {
        if (v > (APR_INT64_MAX - 9) / 10) {
            return APR_EINVAL;
        }
        v = v * 10 + (*c - '0');
    }
    switch (*c) {
    case '\0': break;
    case 'k':
    case 'K':
        mult = 1024;
        ++c;
        break;
    case 'm':
    case 'M':
        mult = 1024 * 1024;
        ++c;
        break;
    case 'g':
    case 'G':
        mult = 1024 * 1024 * 1024;
        ++c;
        break;
    default: return APR_EINVAL;
    }
    if (*c != '\0' || v > APR_INT64_MAX / mult) {
        return APR_EINVAL;
    }
    v *= mult;
    if (v < min || v > max) {
        return APR_EINVAL;
    }
    *psize = v;
    return APR_SUCCESS;
}

apr_status_t memds_parse_uint(int *pval, const char *s, int max)
{
    long v = 0;
    const char *c;

    if (s == NULL || *s == '\0') {
        return APR_EINVAL;
    }
    for (c = s; *c; ++c) {
        if (!apr_isdigit(*c)) {
            return APR_EINVAL;
        }
        v = v * 10 + (*c - '0');
        if (v > max) {
            return APR_EINVAL;
        }
    }
    *pval = (int)v;
    return APR_SUCCESS;
}

const char *memds_check_server_url(const char *url, const char *const *schemes,
                                   apr_pool_t *p)
{
    apr_uri_t u;
    const char *const *sc;
    const char *allowed = NULL;

    for (sc = schemes; *sc; ++sc) {
        allowed = allowed ? apr_pstrcat(p, allowed, ", ", *sc, "://", NULL)
                          : apr_pstrcat(p, *sc, "://", NULL);
    }
    if (url == NULL || *url == '\0') {
        return apr_psprintf(p, "an empty URL; expected %s HOST[:PORT]",
                            allowed);
    }
    if (apr_uri_parse(p, url, &u) != APR_SUCCESS || u.scheme == NULL) {
        return apr_psprintf(p, "'%s' is not a URL; expected %s HOST[:PORT]",
                            url, allowed);
    }
    for (sc = schemes; *sc; ++sc) {
        if (strcasecmp(u.scheme, *sc) == 0) {
            break;
        }
    }
    if (*sc == NULL) {
        return apr_psprintf(p, "scheme '%s' in '%s' is not allowed; use %s",
                            u.scheme, url, allowed);
    }
    if (u.hostname == NULL || *u.hostname == '\0') {
        return apr_psprintf(p, "'%s' has no host name", url);
    }
    if (u.user || u.password) {
        return apr_psprintf(p,
                            "'%s' carries credentials; credentials do not "
                            "belong in the server URL",
                            u.hostname);
    }
    if (u.port_str && (u.port == 0 || !*u.port_str)) {
        return apr_psprintf(p, "'%s' has an invalid port; use 1-65535", url);
    }
    if (u.port_str) {
        int port;
        if (memds_parse_uint(&port, u.port_str, 65535) != APR_SUCCESS
            || port == 0) {
            return apr_psprintf(p, "'%s' has an invalid port; use 1-65535",
                                url);
        }
    }
    if ((u.path && strcmp(u.path, "/") != 0 && *u.path) || u.query
        || u.fragment) {
        return apr_psprintf(p,
                            "'%s' has a path, query or fragment; give only "
                            "%s HOST[:PORT]",
                            url, allowed);
    }
    return NULL;
}

/* The next "-----BEGIN <label>-----" line in [s, end), its label in *plabel
 * (pointing into the buffer, *plen bytes); NULL when there is none. */
static const char *pem_begin(const char *s, const char *end,
                             const char **plabel, apr_size_t *plen)
{
    static const char dash[] = "-----BEGIN ";
    const char *l, *e;

    for (; (apr_size_t)(end - s) >= sizeof(dash) - 1; s++) {
        if (memcmp(s, dash, sizeof(dash) - 1) != 0) {
            continue;
        }
        l = s + sizeof(dash) - 1;
        for (e = l; e < end && *e != '-' && *e != '\n'; e++) {
        }
        if (end - e >= 5 && memcmp(e, "-----", 5) == 0) {
            *plabel = l;
            *plen = (apr_size_t)(e - l);
            return e + 5;
        }
    }
    return NULL;
}

const char *memds_check_ca_pem(const char *buf, apr_size_t len)
{
    const char *s = buf, *end = buf + len, *label, *body, *stop;
    apr_size_t n, b64;
    int certs = 0;

    while ((body = pem_begin(s, end, &label, &n)) != NULL) {
        char endline[80];
        if (n >= 11 && memcmp(label + n - 11, "PRIVATE KEY", 11) == 0) {
            return "it holds a private key: give the CA's certificates "
                   "only (never a key)";
        }
        if (n + 14 >= sizeof(endline)) {
            return "it holds a PEM block with an overlong label";
        }
        apr_snprintf(endline, sizeof(endline), "-----END %.*s-----", (int)n,
                     label);
        stop = NULL;
        for (s = body; (apr_size_t)(end - s) >= strlen(endline); s++) {
            if (memcmp(s, endline, strlen(endline)) == 0) {
                stop = s;
                break;
            }
        }
        if (stop == NULL) {
            return "a PEM block has no END line (truncated file?)";
        }
        for (b64 = 0, s = body; s < stop; s++) {
            b64 += apr_isalnum(*s) || *s == '+' || *s == '/';
        }
        if (n == 11 && memcmp(label, "CERTIFICATE", 11) == 0) {
            if (b64 < 64) {
                return "a CERTIFICATE block is empty or too short";
            }
            certs++;
        }
        s = stop + strlen(endline);
    }
    if (certs == 0) {
        return "it holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")";
    }
    return NULL;
}

const char *memds_check_ca_file(const char *path, apr_pool_t *p)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t n;
    const char *why;
    apr_status_t rv;

    rv = apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_SIZE, p);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot read '%s': %pm", path, &rv);
    }
    if (fi.filetype != APR_REG) {
        return apr_psprintf(p, "'%s' is not a regular file", path);
    }
    if (fi.size <= 0 || fi.size > MEMDS_MAX_CA_FILE) {
        return apr_psprintf(p, "'%s' is empty or larger than %d MB", path,
                            MEMDS_MAX_CA_FILE >> 20);
    }
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "cannot open '%s': %pm", path, &rv);
    }
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n);
    rv = apr_file_read_full(f, buf, n, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return apr_psprintf(p, "cannot read '%s': %pm", path, &rv);
    }
    why = memds_check_ca_pem(buf, n);
    return why ? apr_psprintf(p, "'%s' is not a PEM CA bundle: %s", path, why)
               : NULL;
}

void memds_logf(const memds_logger_t *lg, int level, apr_status_t rv,
                const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    if (lg == NULL || lg->cb == NULL) {
        return;
    }
    va_start(ap, fmt);
    apr_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    lg->cb(lg->baton, level, rv, buf);
}

const char *memds_sha1_hex(const char *data, apr_size_t len, apr_pool_t *p)
{
    static const char hexd[] = "0123456789abcdef";
    apr_sha1_ctx_t ctx;
    unsigned char d[APR_SHA1_DIGESTSIZE];
    char *hex = apr_palloc(p, 2 * APR_SHA1_DIGESTSIZE + 1);
    int i;

    apr_sha1_init(&ctx);
    while (len > 0) { /* apr_sha1_update_binary takes an unsigned int */
        unsigned int n = len > 0x40000000u ? 0x40000000u : (unsigned int)len;
        apr_sha1_update_binary(&ctx, (const unsigned char *)data, n);
        data += n;
        len -= n;
    }
    apr_sha1_final(d, &ctx);
    for (i = 0; i < APR_SHA1_DIGESTSIZE; ++i) {
        hex[2 * i] = hexd[d[i] >> 4];
        hex[2 * i + 1] = hexd[d[i] & 15];
    }
    hex[2 * APR_SHA1_DIGESTSIZE] = '\0';
    return hex;
}

apr_size_t memds_utf8_seq(const unsigned char *s, const unsigned char *end,
                          unsigned *cp)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF, v;
    apr_size_t k, i;

    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
        v = c & 0x1F;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        v = c & 0x0F;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        v = c & 0x07;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    }
    else {
        return 0;
    }
    if ((apr_size_t)(end - s) < k || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 1; i < k; ++i) {
        if (i > 1 && (s[i] < 0x80 || s[i] > 0xBF)) {
            return 0;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return k;
}

const char *memds_scrub_secret(apr_pool_t *p, const char *s, const char *secret)
{
    const char *hit;
    apr_size_t n;

    if (s == NULL || secret == NULL || (n = strlen(secret)) == 0) {
        return s;
    }
    while ((hit = strstr(s, secret)) != NULL) {
        s = apr_pstrcat(p, apr_pstrmemdup(p, s, (apr_size_t)(hit - s)), "***",
                        hit + n, NULL);
    }
    return s;
}

#ifdef MEMDS_FAULT_INJECTION
#include <fcntl.h>
#include <sys/types.h>

/* The point named by the arming file path ("NAME" or "NAME N": fire at
 * the Nth hit): true when this call is the one to fire. Hits are counted
 * in path.hits (one byte appended per hit, O_APPEND: the offset after the
 * write is this hit's number, whichever child makes it); the child that
 * fires unlinks the file first, which succeeds once, so exactly one child
 * fires per arming. */
static int fault_armed_file(const char *path, const char *point)
{
    char buf[256], hits[1024];
    const char *sp;
    long nth = 1, n;
    ssize_t r;
    size_t plen = strlen(point);
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    r = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (r <= 0) {
        return 0;
    }
    buf[r] = '\0';
    sp = buf + strcspn(buf, " \t\r\n");
    if ((size_t)(sp - buf) != plen || strncmp(buf, point, plen) != 0) {
        return 0;
    }
    if (*sp == ' ' || *sp == '\t') {
        nth = strtol(sp + 1, NULL, 10);
    }
    if (nth > 1) {
        if (strlen(path) + 6 > sizeof(hits)) {
            return 0;
        }
        strcpy(hits, path);
        strcat(hits, ".hits");
        fd = open(hits, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) {
            return 0;
        }
        n = (write(fd, "x", 1) == 1) ? (long)lseek(fd, 0, SEEK_CUR) : 0;
        close(fd);
        if (n != nth) {
            return 0;
        }
    }
    return unlink(path) == 0;
}

void memds_fault(const char *point)
{
    const char *f = getenv("MEMDS_TEST_FAULT");

    if (f == NULL
        || (f[0] == '/' ? !fault_armed_file(f, point)
                        : strcmp(f, point) != 0)) {
        return;
    }
    fprintf(stderr, "MEMDS fault point %s fired in pid %ld\n", point,
            (long)getpid());
    fflush(stderr);
    kill(getpid(), SIGKILL);
}
#endif
