/* IMAP client layer: strict response parser, command layer over a libcurl
 * CONNECT_ONLY connection, and the failure → SyncML status mapping.
 * See memds_imap.h for the contract and DESIGN.md decision 5 for why the
 * IMAP verbs of libcurl are not used.
 *
 * File map: (1) small helpers, (2) sets, mailbox names, dates, (3) the
 * response parser, (4) transport (libcurl and test doubles) and the
 * response framer that streams literals, (5) command execution and
 * connection state, (6) one function per command, (7) status mapping. */
#include "memds_imap.h"
#include "util/memds_buf.h"

#include <apr_strings.h>
#include <curl/curl.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ==================================================== (1) small helpers */

#define TRY(e) do { apr_status_t try_rv_ = (e); \
                    if (try_rv_ != APR_SUCCESS) return try_rv_; } while (0)

#define MODSEQ_MAX APR_UINT64_C(9223372036854775807)

static int upc(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

/* ASCII case-insensitive comparison of s[0..n) with the literal lit (whole). */
static int tok_eq(const char *s, apr_size_t n, const char *lit)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (lit[i] == '\0' || upc((unsigned char)s[i]) != upc((unsigned char)lit[i])) {
            return 0;
        }
    }
    return lit[n] == '\0';
}

static int str_ieq(const char *a, const char *b)
{
    return tok_eq(a, strlen(a), b);
}

static char *str_upper(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *u = apr_pstrmemdup(p, s, n);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        u[i] = (char)upc((unsigned char)u[i]);
    }
    return u;
}

/* ATOM-CHAR of RFC 3501: any CHAR except atom-specials. */
static int is_atom_char(int c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{'
           && c != '%' && c != '*' && c != '"' && c != '\\' && c != ']';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* ========================================= (2) sets, names and dates */

static int range_cmp(const void *a, const void *b)
{
    apr_uint32_t x = *(const apr_uint32_t *)a, y = *(const apr_uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorted, merged ranges from a list of numbers. */
static memds_imap_set_t *set_from_numbers(const apr_uint32_t *in, int n,
                                          apr_pool_t *p)
{
    memds_imap_set_t *set = apr_pcalloc(p, sizeof(*set));
    apr_uint32_t *v;
    int i;

    if (n <= 0) {
        return set;
    }
    v = apr_pmemdup(p, in, sizeof(*v) * (apr_size_t)n);
    qsort(v, (size_t)n, sizeof(*v), range_cmp);
    set->ranges = apr_palloc(p, sizeof(*set->ranges) * (apr_size_t)n);
    for (i = 0; i < n; i++) {
        if (set->nranges > 0 && (v[i] == set->ranges[set->nranges - 1].hi
                                 || v[i] == set->ranges[set->nranges - 1].hi + 1)) {
            set->ranges[set->nranges - 1].hi = v[i];
        }
        else {
            set->ranges[set->nranges].lo = set->ranges[set->nranges].hi = v[i];
            set->nranges++;
        }
    }
    return set;
}

const char *memds_imap_set_str(const memds_imap_set_t *set, apr_pool_t *p)
{
    memds_buf_t b;
    char num[32];
    int i;

    if (set == NULL || set->nranges == 0) {
        return "";
    }
    memds_buf_init(&b, 64, p);
    for (i = 0; i < set->nranges; i++) {
        if (i > 0) {
            memds_buf_addc(&b, ',');
        }
        if (set->ranges[i].lo == set->ranges[i].hi) {
            apr_snprintf(num, sizeof(num), "%u", (unsigned)set->ranges[i].lo);
        }
        else {
            apr_snprintf(num, sizeof(num), "%u:%u", (unsigned)set->ranges[i].lo,
                         (unsigned)set->ranges[i].hi);
        }
        memds_buf_add(&b, num, strlen(num));
    }
    memds_buf_addc(&b, '\0');
    return b.data;
}

apr_uint64_t memds_imap_set_count(const memds_imap_set_t *set)
{
    apr_uint64_t n = 0;
    int i;

    for (i = 0; set && i < set->nranges; i++) {
        n += (apr_uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
    }
    return n;
}

int memds_imap_set_contains(const memds_imap_set_t *set, apr_uint32_t n)
{
    int i;

    for (i = 0; set && i < set->nranges; i++) {
        if (n >= set->ranges[i].lo && n <= set->ranges[i].hi) {
            return 1;
        }
    }
    return 0;
}

apr_uint32_t memds_imap_set_nth(const memds_imap_set_t *set, apr_uint64_t idx)
{
    int i;

    for (i = 0; set && i < set->nranges; i++) {
        apr_uint64_t k = (apr_uint64_t)set->ranges[i].hi - set->ranges[i].lo + 1;
        if (idx < k) {
            return (apr_uint32_t)(set->ranges[i].lo + idx);
        }
        idx -= k;
    }
    return 0;
}

const char *memds_imap_set_from_uids(const apr_uint32_t *uids, int n,
                                     apr_pool_t *p)
{
    return memds_imap_set_str(set_from_numbers(uids, n, p), p);
}

apr_uint32_t memds_imap_copyuid_map(const memds_imap_copyuid_t *cu,
                                    apr_uint32_t src_uid)
{
    apr_uint64_t idx = 0;
    int i;

    if (cu == NULL || cu->src == NULL) {
        return 0;
    }
    for (i = 0; i < cu->src->nranges; i++) {
        const memds_imap_range_t *r = &cu->src->ranges[i];
        if (src_uid >= r->lo && src_uid <= r->hi) {
            return memds_imap_set_nth(cu->dst, idx + (src_uid - r->lo));
        }
        idx += (apr_uint64_t)r->hi - r->lo + 1;
    }
    return 0;
}

/* ---- modified UTF-7 (RFC 3501 5.1.3) */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == ',') return 63;
    return -1;
}

static void put_utf8(memds_buf_t *b, apr_uint32_t cp)
{
    char u[4];
    apr_size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp; n = 1;
    }
    else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2;
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    }
    else {
        u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    memds_buf_add(b, u, n);
}

apr_status_t memds_imap_mutf7_decode(const char **putf8, const char *s,
                                     apr_size_t len, apr_pool_t *p)
{
    memds_buf_t b;
    apr_size_t i = 0;

    memds_buf_init(&b, len + 16, p);
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e) {
            return APR_EINVAL;
        }
        if (c != '&') {
            memds_buf_addc(&b, (char)c);
            i++;
            continue;
        }
        i++;
        if (i < len && s[i] == '-') {
            memds_buf_addc(&b, '&');
            i++;
            continue;
        }
        {
            apr_uint32_t bits = 0, hi = 0;
            int nbits = 0, any = 0;
            while (i < len && s[i] != '-') {
                int v = b64val((unsigned char)s[i]);
                if (v < 0) {
                    return APR_EINVAL;
                }
                bits = (bits << 6) | (apr_uint32_t)v;
                nbits += 6;
                i++;
                if (nbits >= 16) {
                    apr_uint32_t u = (bits >> (nbits - 16)) & 0xFFFF;
                    nbits -= 16;
                    bits &= (1u << nbits) - 1;
                    any = 1;
                    if (hi) {
                        if (u < 0xDC00 || u > 0xDFFF) {
                            return APR_EINVAL;
                        }
                        put_utf8(&b, 0x10000 + ((hi - 0xD800) << 10) + (u - 0xDC00));
                        hi = 0;
                    }
                    else if (u >= 0xD800 && u <= 0xDBFF) {
                        hi = u;
                    }
                    else if (u >= 0xDC00 && u <= 0xDFFF) {
                        return APR_EINVAL;
                    }
                    else if (u >= 0x20 && u <= 0x7e) {
                        return APR_EINVAL; /* printable ASCII must be direct */
                    }
                    else {
                        put_utf8(&b, u);
                    }
                }
            }
            /* terminated by '-', something decoded, no dangling
             * surrogate, padding shorter than a base64 digit and zero */
            if (i >= len || !any || hi || nbits >= 6 || bits != 0) {
                return APR_EINVAL;
            }
            i++; /* '-' */
        }
    }
    memds_buf_addc(&b, '\0');
    *putf8 = b.data;
    return APR_SUCCESS;
}

/* Next code point of valid UTF-8 (no overlongs, surrogates, > U+10FFFF). */
static int utf8_next(const unsigned char **ps, const unsigned char *end,
                     apr_uint32_t *pcp)
{
    const unsigned char *s = *ps;
    apr_uint32_t cp;
    int n, i;

    if (s[0] < 0x80) { *pcp = s[0]; *ps = s + 1; return 1; }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) { cp = s[0] & 0x1F; n = 1; }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) { cp = s[0] & 0x0F; n = 2; }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) { cp = s[0] & 0x07; n = 3; }
    else return 0;
    if (end - s <= n) {
        return 0;
    }
    for (i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF
        || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    *pcp = cp;
    *ps = s + n + 1;
    return 1;
}

static void b64_flush(memds_buf_t *b, const apr_uint16_t *u, int n)
{
    apr_uint32_t bits = 0;
    int nbits = 0, i;

    memds_buf_addc(b, '&');
    for (i = 0; i < n; i++) {
        bits = (bits << 16) | u[i];
        nbits += 16;
        while (nbits >= 6) {
            memds_buf_addc(b, b64chars[(bits >> (nbits - 6)) & 0x3F]);
            nbits -= 6;
        }
        bits &= (1u << nbits) - 1;
    }
    if (nbits > 0) {
        memds_buf_addc(b, b64chars[(bits << (6 - nbits)) & 0x3F]);
    }
    memds_buf_addc(b, '-');
}

apr_status_t memds_imap_mutf7_encode(const char **pmutf7, const char *utf8,
                                     apr_pool_t *p)
{
    const unsigned char *s = (const unsigned char *)utf8;
    const unsigned char *end = s + strlen(utf8);
    apr_uint16_t *u = apr_palloc(p, sizeof(*u) * (2 * (apr_size_t)(end - s) + 2));
    memds_buf_t b;
    int nu = 0;

    memds_buf_init(&b, (apr_size_t)(end - s) * 3 + 8, p);
    while (s < end) {
        apr_uint32_t cp;
        if (!utf8_next(&s, end, &cp)) {
            return APR_EINVAL;
        }
        if (cp >= 0x20 && cp <= 0x7e) {
            if (nu) {
                b64_flush(&b, u, nu);
                nu = 0;
            }
            if (cp == '&') {
                memds_buf_add(&b, "&-", 2);
            }
            else {
                memds_buf_addc(&b, (char)cp);
            }
        }
        else if (cp >= 0x10000) {
            cp -= 0x10000;
            u[nu++] = (apr_uint16_t)(0xD800 + (cp >> 10));
            u[nu++] = (apr_uint16_t)(0xDC00 + (cp & 0x3FF));
        }
        else {
            u[nu++] = (apr_uint16_t)cp;
        }
    }
    if (nu) {
        b64_flush(&b, u, nu);
    }
    memds_buf_addc(&b, '\0');
    *pmutf7 = b.data;
    return APR_SUCCESS;
}

/* ---- dates */

static apr_int64_t days_from_civil(int y, int m, int d)
{
    int era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (apr_int64_t)era * 146097 + doe - 719468;
}

static int two_digits(const char *s, int *pv)
{
    if (!is_digit((unsigned char)s[0]) || !is_digit((unsigned char)s[1])) {
        return 0;
    }
    *pv = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

apr_status_t memds_imap_parse_date(apr_time_t *pt, const char *s, apr_size_t len)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int day, mon = -1, y1, y2, year, hh, mm, ss, zh, zm, i;
    apr_int64_t secs;

    /* "dd-Mon-yyyy hh:mm:ss +zzzz" with day " d" or "dd" */
    if (len != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' '
        || s[14] != ':' || s[17] != ':' || s[20] != ' '
        || (s[21] != '+' && s[21] != '-')) {
        return APR_EINVAL;
    }
    if (s[0] == ' ') {
        if (!is_digit((unsigned char)s[1])) {
            return APR_EINVAL;
        }
        day = s[1] - '0';
    }
    else if (!two_digits(s, &day)) {
        return APR_EINVAL;
    }
    for (i = 0; i < 12; i++) {
        if (upc((unsigned char)s[3]) == upc((unsigned char)months[3 * i])
            && upc((unsigned char)s[4]) == upc((unsigned char)months[3 * i + 1])
            && upc((unsigned char)s[5]) == upc((unsigned char)months[3 * i + 2])) {
            mon = i;
            break;
        }
    }
    if (mon < 0 || !two_digits(s + 7, &y1) || !two_digits(s + 9, &y2)
        || !two_digits(s + 12, &hh) || !two_digits(s + 15, &mm)
        || !two_digits(s + 18, &ss) || !two_digits(s + 22, &zh)
        || !two_digits(s + 24, &zm)) {
        return APR_EINVAL;
    }
    year = y1 * 100 + y2;
    if (day < 1 || day > mdays[mon]
        || (mon == 1 && day == 29
            && !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        || hh > 23 || mm > 59 || ss > 60 || zh > 23 || zm > 59) {
        return APR_EINVAL;
    }
    secs = days_from_civil(year, mon + 1, day) * 86400
           + hh * 3600 + mm * 60 + ss;
    secs -= (s[21] == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
    *pt = (apr_time_t)secs * APR_USEC_PER_SEC;
    return APR_SUCCESS;
}

/* ================================================== (3) response parser */

typedef struct pctx_t {
    const char *buf, *p, *end;
    apr_size_t max_literal;
    apr_pool_t *pool;
    int depth;               /* parenthesised nesting of generic values */
    const char *emsg;        /* the first error */
    apr_size_t eoff;
} pctx_t;

static apr_status_t perr(pctx_t *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static apr_status_t perr(pctx_t *x, const char *fmt, ...)
{
    va_list ap;

    if (x->emsg == NULL) {
        va_start(ap, fmt);
        x->emsg = apr_pvsprintf(x->pool, fmt, ap);
        va_end(ap);
        x->eoff = (apr_size_t)(x->p - x->buf);
    }
    return APR_EINVAL;
}

static int peekc(const pctx_t *x)
{
    return x->p < x->end ? (unsigned char)*x->p : -1;
}

static int peek2(const pctx_t *x)
{
    return x->end - x->p >= 2 ? (unsigned char)x->p[1] : -1;
}

/* What is at the cursor, for messages. */
static const char *found(pctx_t *x)
{
    int c = peekc(x);

    if (c < 0) return "end of input";
    if (c == '\r') return "CR";
    if (c == '\n') return "LF";
    if (c == ' ') return "SP";
    if (c > 0x20 && c < 0x7f) return apr_psprintf(x->pool, "'%c'", c);
    return apr_psprintf(x->pool, "byte 0x%02X", (unsigned)c);
}

static apr_status_t expect(pctx_t *x, int c, const char *what)
{
    if (peekc(x) != c) {
        return perr(x, "expected %s, found %s", what, found(x));
    }
    x->p++;
    return APR_SUCCESS;
}

/* The cursor is at NIL (case-insensitive, as a whole atom). */
static int at_nil(const pctx_t *x)
{
    return x->end - x->p >= 3 && tok_eq(x->p, 3, "NIL")
           && (x->end - x->p == 3 || !is_atom_char((unsigned char)x->p[3]));
}

/* The next atom is the keyword kw, followed by a non-atom character. */
static int at_word(const pctx_t *x, const char *kw)
{
    apr_size_t n = strlen(kw);

    return (apr_size_t)(x->end - x->p) >= n && tok_eq(x->p, n, kw)
           && ((apr_size_t)(x->end - x->p) == n
               || !is_atom_char((unsigned char)x->p[n]));
}

static apr_status_t atom(pctx_t *x, const char **ps, apr_size_t *plen,
                         const char *what)
{
    const char *s = x->p;

    while (x->p < x->end && is_atom_char((unsigned char)*x->p)) {
        x->p++;
    }
    if (x->p == s) {
        return perr(x, "expected %s, found %s", what, found(x));
    }
    *ps = s;
    *plen = (apr_size_t)(x->p - s);
    return APR_SUCCESS;
}

static apr_status_t atom_str(pctx_t *x, const char **ps, const char *what)
{
    const char *s;
    apr_size_t n;

    TRY(atom(x, &s, &n, what));
    *ps = apr_pstrmemdup(x->pool, s, n);
    return APR_SUCCESS;
}

static apr_status_t number(pctx_t *x, apr_uint64_t *pv, apr_uint64_t max,
                           int nonzero, const char *what)
{
    const char *s = x->p;
    apr_uint64_t v = 0;

    while (x->p < x->end && is_digit((unsigned char)*x->p)) {
        unsigned d = (unsigned)(*x->p - '0');
        if (v > (max - d) / 10) {
            x->p = s;
            return perr(x, "%s is larger than %" APR_UINT64_T_FMT, what, max);
        }
        v = v * 10 + d;
        x->p++;
    }
    if (x->p == s) {
        return perr(x, "expected %s (a number), found %s", what, found(x));
    }
    if (nonzero && v == 0) {
        x->p = s;
        return perr(x, "%s must not be 0", what);
    }
    *pv = v;
    return APR_SUCCESS;
}

static apr_status_t num32(pctx_t *x, apr_uint32_t *pv, int nonzero,
                          const char *what)
{
    apr_uint64_t v;

    TRY(number(x, &v, 0xFFFFFFFFu, nonzero, what));
    *pv = (apr_uint32_t)v;
    return APR_SUCCESS;
}

static apr_status_t num64(pctx_t *x, apr_uint64_t *pv, int nonzero,
                          const char *what)
{
    return number(x, pv, MODSEQ_MAX, nonzero, what);
}

/* String flags. */
#define S_BINARY 0x01 /* body data: NUL allowed, not copied */
#define S_LIT8   0x02 /* literal8 (~{n}) allowed */

static apr_status_t literal(pctx_t *x, const char **pd, apr_size_t *plen,
                            unsigned fl, const char *what)
{
    apr_uint64_t n;

    if (peekc(x) == '~') {
        if (!(fl & S_LIT8)) {
            return perr(x, "literal8 is not allowed in %s", what);
        }
        x->p++;
    }
    TRY(expect(x, '{', "'{'"));
    TRY(number(x, &n, APR_SIZE_MAX > MODSEQ_MAX ? MODSEQ_MAX : APR_SIZE_MAX, 0,
               "literal length"));
    if (peekc(x) == '+') {
        x->p++;
    }
    TRY(expect(x, '}', "'}' after the literal length"));
    if (x->end - x->p < 2 || x->p[0] != '\r' || x->p[1] != '\n') {
        return perr(x, "expected CRLF after the literal length of %s, found %s",
                    what, found(x));
    }
    x->p += 2;
    if (x->max_literal && n > x->max_literal) {
        return perr(x, "literal of %" APR_UINT64_T_FMT " bytes in %s exceeds "
                    "the limit of %" APR_SIZE_T_FMT, n, what, x->max_literal);
    }
    if (n > (apr_uint64_t)(x->end - x->p)) {
        return perr(x, "literal of %" APR_UINT64_T_FMT " bytes in %s runs past "
                    "the end of the response (%" APR_SIZE_T_FMT " left)", n, what,
                    (apr_size_t)(x->end - x->p));
    }
    if (!(fl & S_BINARY) && memchr(x->p, '\0', (apr_size_t)n) != NULL) {
        return perr(x, "NUL byte in the literal of %s", what);
    }
    *pd = x->p;
    *plen = (apr_size_t)n;
    x->p += n;
    return APR_SUCCESS;
}

/* string = quoted / literal; the result is NUL-terminated (copied) unless
 * S_BINARY, where literals point into the buffer. */
static apr_status_t string_(pctx_t *x, const char **ps, apr_size_t *plen,
                            unsigned fl, const char *what)
{
    int c = peekc(x);

    if (c == '"') {
        const char *s = ++x->p;
        apr_size_t n = 0;
        char *out, *o;
        while (x->p < x->end && *x->p != '"') {
            unsigned char ch = (unsigned char)*x->p;
            if (ch == '\\') {
                if (x->end - x->p < 2 || (x->p[1] != '"' && x->p[1] != '\\')) {
                    x->p++;
                    return perr(x, "invalid escape in the quoted string of %s "
                                "(only \\\" and \\\\), found %s", what, found(x));
                }
                x->p++;
            }
            else if (ch == '\r' || ch == '\n' || ch == '\0') {
                return perr(x, "%s inside the quoted string of %s",
                            found(x), what);
            }
            x->p++;
            n++;
        }
        if (x->p >= x->end) {
            return perr(x, "unterminated quoted string in %s", what);
        }
        o = out = apr_palloc(x->pool, n + 1);
        while (s < x->p) {
            if (*s == '\\') {
                s++;
            }
            *o++ = *s++;
        }
        *o = '\0';
        x->p++;
        *ps = out;
        if (plen) {
            *plen = n;
        }
        return APR_SUCCESS;
    }
    if (c == '{' || c == '~') {
        const char *d = NULL;
        apr_size_t n = 0;
        TRY(literal(x, &d, &n, fl, what));
        *ps = (fl & S_BINARY) ? d : apr_pstrmemdup(x->pool, d, n);
        if (plen) {
            *plen = n;
        }
        return APR_SUCCESS;
    }
    return perr(x, "expected %s (a string), found %s", what, found(x));
}

static apr_status_t nstring(pctx_t *x, const char **ps, apr_size_t *plen,
                            unsigned fl, const char *what)
{
    if (at_nil(x)) {
        x->p += 3;
        *ps = NULL;
        if (plen) {
            *plen = 0;
        }
        return APR_SUCCESS;
    }
    return string_(x, ps, plen, fl, what);
}

/* astring = 1*ASTRING-CHAR / string */
static apr_status_t astring(pctx_t *x, const char **ps, const char *what)
{
    const char *s = x->p;
    int c = peekc(x);

    if (c == '"' || c == '{') {
        return string_(x, ps, NULL, 0, what);
    }
    while (x->p < x->end && (is_atom_char((unsigned char)*x->p) || *x->p == ']')) {
        x->p++;
    }
    if (x->p == s) {
        return perr(x, "expected %s, found %s", what, found(x));
    }
    *ps = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
    return APR_SUCCESS;
}

/* CRLF, which must end the buffer. */
static apr_status_t eol(pctx_t *x)
{
    if (x->end - x->p < 2 || x->p[0] != '\r' || x->p[1] != '\n') {
        return perr(x, "expected CRLF at the end of the response, found %s",
                    found(x));
    }
    x->p += 2;
    if (x->p != x->end) {
        return perr(x, "%" APR_SIZE_T_FMT " bytes after the end of the response",
                    (apr_size_t)(x->end - x->p));
    }
    return APR_SUCCESS;
}

/* Text up to CRLF (TEXT-CHARs; 8-bit tolerated, NUL and bare LF not). */
static apr_status_t text_eol(pctx_t *x, const char **ps)
{
    const char *s = x->p;

    while (x->p < x->end && *x->p != '\r') {
        if (*x->p == '\n' || *x->p == '\0') {
            return perr(x, "%s in response text", found(x));
        }
        x->p++;
    }
    *ps = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
    return eol(x);
}

/* uid-set / sequence-set of a response: numbers and ranges, no "*". */
static apr_status_t uidset(pctx_t *x, memds_imap_set_t **pset, const char *what)
{
    apr_array_header_t *a = apr_array_make(x->pool, 4, sizeof(memds_imap_range_t));
    memds_imap_set_t *set = apr_pcalloc(x->pool, sizeof(*set));

    for (;;) {
        memds_imap_range_t *r = apr_array_push(a);
        apr_uint32_t v;
        if (peekc(x) == '*') {
            return perr(x, "'*' is not allowed in %s", what);
        }
        TRY(num32(x, &r->lo, 1, what));
        r->hi = r->lo;
        if (peekc(x) == ':') {
            x->p++;
            if (peekc(x) == '*') {
                return perr(x, "'*' is not allowed in %s", what);
            }
            TRY(num32(x, &v, 1, what));
            if (v < r->lo) {
                r->hi = r->lo;
                r->lo = v;
            }
            else {
                r->hi = v;
            }
        }
        if (peekc(x) != ',') {
            break;
        }
        x->p++;
    }
    set->nranges = a->nelts;
    set->ranges = (memds_imap_range_t *)a->elts;
    *pset = set;
    return APR_SUCCESS;
}

apr_status_t memds_imap_set_parse(memds_imap_set_t **pset, const char *s,
                                  apr_size_t len, apr_pool_t *p)
{
    pctx_t x;
    memds_imap_set_t *set;

    memset(&x, 0, sizeof(x));
    x.buf = x.p = s;
    x.end = s + len;
    x.pool = p;
    if (uidset(&x, &set, "a set") != APR_SUCCESS || x.p != x.end) {
        return APR_EINVAL;
    }
    *pset = set;
    return APR_SUCCESS;
}

/* flag = "\" atom / atom ("\*" only where allow_star) */
static apr_status_t flag(pctx_t *x, const char **pf, int allow_star)
{
    const char *s = x->p, *a;
    apr_size_t n;

    if (peekc(x) == '\\') {
        x->p++;
        if (peekc(x) == '*') {
            if (!allow_star) {
                return perr(x, "\\* is only allowed in PERMANENTFLAGS");
            }
            x->p++;
        }
        else {
            TRY(atom(x, &a, &n, "a flag name after '\\'"));
        }
    }
    else {
        TRY(atom(x, &a, &n, "a flag"));
    }
    *pf = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
    return APR_SUCCESS;
}

static apr_status_t flag_list(pctx_t *x, apr_array_header_t **pl,
                              int allow_star, const char *what)
{
    apr_array_header_t *l = apr_array_make(x->pool, 8, sizeof(const char *));

    if (peekc(x) != '(') {
        return perr(x, "expected '(' opening %s, found %s", what, found(x));
    }
    x->p++;
    if (peekc(x) != ')') {
        for (;;) {
            TRY(flag(x, (const char **)apr_array_push(l), allow_star));
            if (peekc(x) != ' ') {
                break;
            }
            x->p++;
        }
    }
    if (peekc(x) != ')') {
        return perr(x, "expected SP or ')' in %s, found %s", what, found(x));
    }
    x->p++;
    *pl = l;
    return APR_SUCCESS;
}

/* A value of unknown meaning (extension data): atom-like token, string,
 * or a parenthesised list of values; nesting bounded. */
static apr_status_t gvalue(pctx_t *x)
{
    int c = peekc(x);
    const char *s, *d;
    apr_size_t n;

    if (c == '(') {
        if (x->depth >= MEMDS_IMAP_MAX_DEPTH) {
            return perr(x, "lists nested deeper than %d levels",
                        MEMDS_IMAP_MAX_DEPTH);
        }
        x->depth++;
        x->p++;
        if (peekc(x) != ')') {
            for (;;) {
                TRY(gvalue(x));
                if (peekc(x) != ' ') {
                    break;
                }
                x->p++;
            }
        }
        TRY(expect(x, ')', "SP or ')' in a list"));
        x->depth--;
        return APR_SUCCESS;
    }
    if (c == '"' || c == '{' || c == '~') {
        return string_(x, &d, &n, S_BINARY | S_LIT8, "a value");
    }
    s = x->p;
    while (x->p < x->end) {
        c = (unsigned char)*x->p;
        if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '"' || c == '{') {
            break;
        }
        x->p++;
    }
    if (x->p == s) {
        return perr(x, "expected a value, found %s", found(x));
    }
    return APR_SUCCESS;
}

/* ---- status responses */

static const struct {
    const char *name;
    memds_imap_code_e code;
} code_names[] = {
    { "ALERT", MEMDS_IMAP_CODE_ALERT }, { "PARSE", MEMDS_IMAP_CODE_PARSE },
    { "BADCHARSET", MEMDS_IMAP_CODE_BADCHARSET },
    { "CAPABILITY", MEMDS_IMAP_CODE_CAPABILITY },
    { "PERMANENTFLAGS", MEMDS_IMAP_CODE_PERMANENTFLAGS },
    { "READ-ONLY", MEMDS_IMAP_CODE_READ_ONLY },
    { "READ-WRITE", MEMDS_IMAP_CODE_READ_WRITE },
    { "TRYCREATE", MEMDS_IMAP_CODE_TRYCREATE },
    { "UIDNEXT", MEMDS_IMAP_CODE_UIDNEXT },
    { "UIDVALIDITY", MEMDS_IMAP_CODE_UIDVALIDITY },
    { "UNSEEN", MEMDS_IMAP_CODE_UNSEEN },
    { "APPENDUID", MEMDS_IMAP_CODE_APPENDUID },
    { "COPYUID", MEMDS_IMAP_CODE_COPYUID },
    { "UIDNOTSTICKY", MEMDS_IMAP_CODE_UIDNOTSTICKY },
    { "HIGHESTMODSEQ", MEMDS_IMAP_CODE_HIGHESTMODSEQ },
    { "NOMODSEQ", MEMDS_IMAP_CODE_NOMODSEQ },
    { "MODIFIED", MEMDS_IMAP_CODE_MODIFIED },
    { "CLOSED", MEMDS_IMAP_CODE_CLOSED },
    { "UNAVAILABLE", MEMDS_IMAP_CODE_UNAVAILABLE },
    { "AUTHENTICATIONFAILED", MEMDS_IMAP_CODE_AUTHENTICATIONFAILED },
    { "AUTHORIZATIONFAILED", MEMDS_IMAP_CODE_AUTHORIZATIONFAILED },
    { "EXPIRED", MEMDS_IMAP_CODE_EXPIRED },
    { "PRIVACYREQUIRED", MEMDS_IMAP_CODE_PRIVACYREQUIRED },
    { "CONTACTADMIN", MEMDS_IMAP_CODE_CONTACTADMIN },
    { "NOPERM", MEMDS_IMAP_CODE_NOPERM }, { "INUSE", MEMDS_IMAP_CODE_INUSE },
    { "EXPUNGEISSUED", MEMDS_IMAP_CODE_EXPUNGEISSUED },
    { "CORRUPTION", MEMDS_IMAP_CODE_CORRUPTION },
    { "SERVERBUG", MEMDS_IMAP_CODE_SERVERBUG },
    { "CLIENTBUG", MEMDS_IMAP_CODE_CLIENTBUG },
    { "CANNOT", MEMDS_IMAP_CODE_CANNOT }, { "LIMIT", MEMDS_IMAP_CODE_LIMIT },
    { "OVERQUOTA", MEMDS_IMAP_CODE_OVERQUOTA },
    { "ALREADYEXISTS", MEMDS_IMAP_CODE_ALREADYEXISTS },
    { "NONEXISTENT", MEMDS_IMAP_CODE_NONEXISTENT },
};

static apr_status_t resp_code(pctx_t *x, memds_imap_code_t *code)
{
    const char *n;
    apr_size_t nl, i;

    x->p++; /* '[' */
    TRY(atom(x, &n, &nl, "a response code"));
    code->name = apr_pstrmemdup(x->pool, n, nl);
    code->code = MEMDS_IMAP_CODE_OTHER;
    for (i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++) {
        if (tok_eq(n, nl, code_names[i].name)) {
            code->code = code_names[i].code;
            break;
        }
    }
    switch (code->code) {
    case MEMDS_IMAP_CODE_UIDNEXT:
    case MEMDS_IMAP_CODE_UIDVALIDITY:
    case MEMDS_IMAP_CODE_UNSEEN:
        TRY(expect(x, ' ', "SP after the response code"));
        TRY(num32(x, code->code == MEMDS_IMAP_CODE_UIDVALIDITY
                  ? &code->uidvalidity : &code->number, 1, code->name));
        break;
    case MEMDS_IMAP_CODE_HIGHESTMODSEQ:
        TRY(expect(x, ' ', "SP after HIGHESTMODSEQ"));
        TRY(num64(x, &code->modseq, 0, "HIGHESTMODSEQ"));
        break;
    case MEMDS_IMAP_CODE_APPENDUID:
        TRY(expect(x, ' ', "SP after APPENDUID"));
        TRY(num32(x, &code->uidvalidity, 1, "APPENDUID uidvalidity"));
        TRY(expect(x, ' ', "SP after the APPENDUID uidvalidity"));
        TRY(uidset(x, &code->uids, "APPENDUID uids"));
        code->number = code->uids->ranges[0].lo;
        break;
    case MEMDS_IMAP_CODE_COPYUID:
        TRY(expect(x, ' ', "SP after COPYUID"));
        TRY(num32(x, &code->uidvalidity, 1, "COPYUID uidvalidity"));
        TRY(expect(x, ' ', "SP after the COPYUID uidvalidity"));
        TRY(uidset(x, &code->uids, "COPYUID source uids"));
        TRY(expect(x, ' ', "SP after the COPYUID source uids"));
        TRY(uidset(x, &code->uids2, "COPYUID destination uids"));
        if (memds_imap_set_count(code->uids) != memds_imap_set_count(code->uids2)) {
            return perr(x, "COPYUID source and destination sets differ in size");
        }
        break;
    case MEMDS_IMAP_CODE_MODIFIED:
        TRY(expect(x, ' ', "SP after MODIFIED"));
        TRY(uidset(x, &code->uids, "MODIFIED set"));
        break;
    case MEMDS_IMAP_CODE_CAPABILITY:
        code->list = apr_array_make(x->pool, 32, sizeof(const char *));
        while (peekc(x) == ' ') {
            x->p++;
            TRY(atom_str(x, (const char **)apr_array_push(code->list),
                         "a capability"));
        }
        break;
    case MEMDS_IMAP_CODE_PERMANENTFLAGS:
        TRY(expect(x, ' ', "SP after PERMANENTFLAGS"));
        TRY(flag_list(x, &code->list, 1, "PERMANENTFLAGS"));
        break;
    case MEMDS_IMAP_CODE_BADCHARSET:
        code->list = apr_array_make(x->pool, 4, sizeof(const char *));
        if (peekc(x) == ' ') {
            x->p++;
            TRY(expect(x, '(', "'(' opening the BADCHARSET list"));
            for (;;) {
                TRY(astring(x, (const char **)apr_array_push(code->list),
                            "a charset"));
                if (peekc(x) != ' ') {
                    break;
                }
                x->p++;
            }
            TRY(expect(x, ')', "SP or ')' in the BADCHARSET list"));
        }
        break;
    case MEMDS_IMAP_CODE_OTHER: {
        const char *s;
        code->arg = "";
        if (peekc(x) == ' ') {
            s = ++x->p;
            while (x->p < x->end && *x->p != ']' && *x->p != '\r'
                   && *x->p != '\n' && *x->p != '\0') {
                x->p++;
            }
            if (x->p == s) {
                return perr(x, "empty argument of response code %s", code->name);
            }
            code->arg = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
        }
        break;
    }
    default:
        break; /* codes without arguments */
    }
    if (peekc(x) != ']') {
        return perr(x, "expected ']' closing response code %s, found %s",
                    code->name, found(x));
    }
    x->p++;
    return APR_SUCCESS;
}

/* resp-text after "OK"/"NO"/...: [SP ["[" code "]" [SP]] text] CRLF */
static apr_status_t resp_text(pctx_t *x, memds_imap_resp_t *r)
{
    if (peekc(x) == '\r') {
        r->text = "";
        return eol(x);
    }
    TRY(expect(x, ' ', "SP after the status"));
    if (peekc(x) == '[') {
        TRY(resp_code(x, &r->code));
        if (peekc(x) == '\r') {
            r->text = "";
            return eol(x);
        }
        TRY(expect(x, ' ', "SP after the response code"));
    }
    return text_eol(x, &r->text);
}

/* ---- FETCH */

static apr_status_t address(pctx_t *x, memds_imap_addr_t *a)
{
    TRY(expect(x, '(', "'(' opening an address"));
    TRY(nstring(x, &a->name, NULL, 0, "address name"));
    TRY(expect(x, ' ', "SP after the address name"));
    TRY(nstring(x, &a->adl, NULL, 0, "address adl"));
    TRY(expect(x, ' ', "SP after the address adl"));
    TRY(nstring(x, &a->mailbox, NULL, 0, "address mailbox"));
    TRY(expect(x, ' ', "SP after the address mailbox"));
    TRY(nstring(x, &a->host, NULL, 0, "address host"));
    return expect(x, ')', "')' closing an address");
}

static apr_status_t addr_list(pctx_t *x, apr_array_header_t **pl,
                              const char *what)
{
    apr_array_header_t *l;

    if (at_nil(x)) {
        x->p += 3;
        *pl = NULL;
        return APR_SUCCESS;
    }
    if (peekc(x) != '(') {
        return perr(x, "expected '(' or NIL for %s, found %s", what, found(x));
    }
    x->p++;
    l = apr_array_make(x->pool, 2, sizeof(memds_imap_addr_t));
    do {
        TRY(address(x, (memds_imap_addr_t *)apr_array_push(l)));
        /* addresses follow each other without SP; some servers put one */
        if (peekc(x) == ' ' && peek2(x) == '(') {
            x->p++;
        }
    } while (peekc(x) == '(');
    TRY(expect(x, ')', "')' closing an address list"));
    *pl = l;
    return APR_SUCCESS;
}

static apr_status_t envelope(pctx_t *x, memds_imap_envelope_t **pe)
{
    memds_imap_envelope_t *e = apr_pcalloc(x->pool, sizeof(*e));

    TRY(expect(x, '(', "'(' opening ENVELOPE"));
    TRY(nstring(x, &e->date, NULL, 0, "envelope date"));
    TRY(expect(x, ' ', "SP after the envelope date"));
    TRY(nstring(x, &e->subject, NULL, 0, "envelope subject"));
    TRY(expect(x, ' ', "SP after the envelope subject"));
    TRY(addr_list(x, &e->from, "envelope from"));
    TRY(expect(x, ' ', "SP after envelope from"));
    TRY(addr_list(x, &e->sender, "envelope sender"));
    TRY(expect(x, ' ', "SP after envelope sender"));
    TRY(addr_list(x, &e->reply_to, "envelope reply-to"));
    TRY(expect(x, ' ', "SP after envelope reply-to"));
    TRY(addr_list(x, &e->to, "envelope to"));
    TRY(expect(x, ' ', "SP after envelope to"));
    TRY(addr_list(x, &e->cc, "envelope cc"));
    TRY(expect(x, ' ', "SP after envelope cc"));
    TRY(addr_list(x, &e->bcc, "envelope bcc"));
    TRY(expect(x, ' ', "SP after envelope bcc"));
    TRY(nstring(x, &e->in_reply_to, NULL, 0, "envelope in-reply-to"));
    TRY(expect(x, ' ', "SP after envelope in-reply-to"));
    TRY(nstring(x, &e->message_id, NULL, 0, "envelope message-id"));
    TRY(expect(x, ')', "')' closing ENVELOPE"));
    *pe = e;
    return APR_SUCCESS;
}

/* body-fld-param: "(" string SP string *(SP string SP string) ")" / NIL */
static apr_status_t params(pctx_t *x, apr_array_header_t **pl, const char *what)
{
    apr_array_header_t *l;

    if (at_nil(x)) {
        x->p += 3;
        *pl = NULL;
        return APR_SUCCESS;
    }
    if (peekc(x) != '(') {
        return perr(x, "expected '(' or NIL for %s, found %s", what, found(x));
    }
    x->p++;
    l = apr_array_make(x->pool, 2, sizeof(memds_imap_param_t));
    if (peekc(x) != ')') { /* "()" is seen in the wild; tolerated */
        for (;;) {
            memds_imap_param_t *pa = apr_array_push(l);
            TRY(string_(x, &pa->name, NULL, 0, "a parameter name"));
            TRY(expect(x, ' ', "SP after a parameter name"));
            TRY(string_(x, &pa->value, NULL, 0, "a parameter value"));
            if (peekc(x) != ' ') {
                break;
            }
            x->p++;
        }
    }
    TRY(expect(x, ')', "SP or ')' in a parameter list"));
    *pl = l;
    return APR_SUCCESS;
}

/* body-extension = nstring / number / "(" body-extension *(SP ...) ")" */
static apr_status_t body_ext(pctx_t *x)
{
    int c = peekc(x);
    const char *s;
    apr_uint64_t v;

    if (c == '(') {
        if (x->depth >= MEMDS_IMAP_MAX_DEPTH) {
            return perr(x, "body extension nested deeper than %d levels",
                        MEMDS_IMAP_MAX_DEPTH);
        }
        x->depth++;
        x->p++;
        for (;;) {
            TRY(body_ext(x));
            if (peekc(x) != ' ') {
                break;
            }
            x->p++;
        }
        TRY(expect(x, ')', "SP or ')' in a body extension"));
        x->depth--;
        return APR_SUCCESS;
    }
    if (is_digit(c)) {
        return number(x, &v, APR_UINT64_C(0xFFFFFFFFFFFFFFFF), 0,
                      "a body extension");
    }
    return nstring(x, &s, NULL, S_BINARY, "a body extension");
}

/* [SP dsp [SP lang [SP loc *(SP body-extension)]]] */
static apr_status_t body_ext_tail(pctx_t *x, memds_imap_body_t *b)
{
    if (peekc(x) != ' ') {
        return APR_SUCCESS;
    }
    x->p++;
    if (at_nil(x)) {
        x->p += 3;
    }
    else {
        TRY(expect(x, '(', "'(' or NIL for the body disposition"));
        TRY(string_(x, &b->disposition, NULL, 0, "the disposition type"));
        TRY(expect(x, ' ', "SP after the disposition type"));
        TRY(params(x, &b->disp_params, "the disposition parameters"));
        TRY(expect(x, ')', "')' closing the body disposition"));
    }
    if (peekc(x) != ' ') {
        return APR_SUCCESS;
    }
    x->p++;
    if (peekc(x) == '(') {
        x->p++;
        b->language = apr_array_make(x->pool, 2, sizeof(const char *));
        for (;;) {
            TRY(string_(x, (const char **)apr_array_push(b->language), NULL, 0,
                        "a body language"));
            if (peekc(x) != ' ') {
                break;
            }
            x->p++;
        }
        TRY(expect(x, ')', "SP or ')' in the body language list"));
    }
    else {
        const char *l;
        TRY(nstring(x, &l, NULL, 0, "the body language"));
        if (l) {
            b->language = apr_array_make(x->pool, 1, sizeof(const char *));
            *(const char **)apr_array_push(b->language) = l;
        }
    }
    if (peekc(x) != ' ') {
        return APR_SUCCESS;
    }
    x->p++;
    TRY(nstring(x, &b->location, NULL, 0, "the body location"));
    while (peekc(x) == ' ') {
        x->p++;
        TRY(body_ext(x));
    }
    return APR_SUCCESS;
}

static apr_status_t body(pctx_t *x, memds_imap_body_t *parent, int depth,
                         memds_imap_body_t **pb)
{
    memds_imap_body_t *b;

    if (depth >= MEMDS_IMAP_MAX_BODY_DEPTH) {
        return perr(x, "body structure nested deeper than %d levels",
                    MEMDS_IMAP_MAX_BODY_DEPTH);
    }
    TRY(expect(x, '(', "'(' opening a body"));
    b = apr_pcalloc(x->pool, sizeof(*b));
    b->parent = parent;
    b->depth = depth;
    if (peekc(x) == '(') {
        b->multipart = 1;
        b->type = "multipart";
        b->parts = apr_array_make(x->pool, 4, sizeof(memds_imap_body_t *));
        do {
            TRY(body(x, b, depth + 1,
                     (memds_imap_body_t **)apr_array_push(b->parts)));
            if (peekc(x) == ' ' && peek2(x) == '(') {
                x->p++; /* tolerated SP between parts */
            }
        } while (peekc(x) == '(');
        TRY(expect(x, ' ', "SP before the multipart subtype"));
        TRY(string_(x, &b->subtype, NULL, 0, "the multipart subtype"));
        if (peekc(x) == ' ') {
            x->p++;
            TRY(params(x, &b->params, "the multipart parameters"));
            TRY(body_ext_tail(x, b));
        }
    }
    else {
        const char *enc;
        TRY(string_(x, &b->type, NULL, 0, "the media type"));
        TRY(expect(x, ' ', "SP after the media type"));
        TRY(string_(x, &b->subtype, NULL, 0, "the media subtype"));
        TRY(expect(x, ' ', "SP after the media subtype"));
        TRY(params(x, &b->params, "the body parameters"));
        TRY(expect(x, ' ', "SP after the body parameters"));
        TRY(nstring(x, &b->id, NULL, 0, "the body id"));
        TRY(expect(x, ' ', "SP after the body id"));
        TRY(nstring(x, &b->description, NULL, 0, "the body description"));
        TRY(expect(x, ' ', "SP after the body description"));
        TRY(nstring(x, &enc, NULL, 0, "the body encoding"));
        b->encoding = enc;
        TRY(expect(x, ' ', "SP after the body encoding"));
        TRY(num64(x, &b->size, 0, "the body size"));
        if (str_ieq(b->type, "message")
            && (str_ieq(b->subtype, "rfc822") || str_ieq(b->subtype, "global"))) {
            TRY(expect(x, ' ', "SP before the envelope of a message part"));
            TRY(envelope(x, &b->envelope));
            TRY(expect(x, ' ', "SP before the body of a message part"));
            TRY(body(x, b, depth + 1, &b->message));
            TRY(expect(x, ' ', "SP before the lines of a message part"));
            TRY(num64(x, &b->lines, 0, "the body lines"));
            b->has_lines = 1;
        }
        else if (str_ieq(b->type, "text")) {
            TRY(expect(x, ' ', "SP before the lines of a text part"));
            TRY(num64(x, &b->lines, 0, "the body lines"));
            b->has_lines = 1;
        }
        if (peekc(x) == ' ') {
            x->p++;
            TRY(nstring(x, &b->md5, NULL, 0, "the body MD5"));
            TRY(body_ext_tail(x, b));
        }
    }
    TRY(expect(x, ')', "')' closing a body"));
    *pb = b;
    return APR_SUCCESS;
}

/* Section numbers as in RFC 3501 6.4.5. */
static void number_body(memds_imap_body_t *b, const char *sect, apr_pool_t *p)
{
    int i;

    b->section = sect;
    if (b->multipart) {
        for (i = 0; i < b->parts->nelts; i++) {
            number_body(APR_ARRAY_IDX(b->parts, i, memds_imap_body_t *),
                        *sect ? apr_psprintf(p, "%s.%d", sect, i + 1)
                              : apr_psprintf(p, "%d", i + 1), p);
        }
    }
    else if (b->message) {
        number_body(b->message, b->message->multipart
                    ? sect : apr_pstrcat(p, sect, ".1", NULL), p);
    }
}

/* section-msgtext / "MIME" after a part number (mime_ok) */
static apr_status_t section_text(pctx_t *x, int mime_ok)
{
    const char *s = x->p;
    apr_size_t n;

    while (x->p < x->end && ((*x->p >= 'A' && *x->p <= 'Z')
                             || (*x->p >= 'a' && *x->p <= 'z') || *x->p == '.')) {
        x->p++;
    }
    n = (apr_size_t)(x->p - s);
    if (tok_eq(s, n, "HEADER") || tok_eq(s, n, "TEXT")
        || (mime_ok && tok_eq(s, n, "MIME"))) {
        return APR_SUCCESS;
    }
    if (tok_eq(s, n, "HEADER.FIELDS") || tok_eq(s, n, "HEADER.FIELDS.NOT")) {
        const char *h;
        TRY(expect(x, ' ', "SP after HEADER.FIELDS"));
        TRY(expect(x, '(', "'(' opening the header list"));
        for (;;) {
            TRY(astring(x, &h, "a header field name"));
            if (peekc(x) != ' ') {
                break;
            }
            x->p++;
        }
        return expect(x, ')', "SP or ')' in the header list");
    }
    x->p = s;
    return perr(x, "invalid section text, found %s", found(x));
}

/* "[" section "]" ; binary: only part numbers */
static apr_status_t section_spec(pctx_t *x, const char **psec, int binary)
{
    const char *s;
    apr_uint32_t v;

    TRY(expect(x, '[', "'['"));
    s = x->p;
    if (peekc(x) != ']') {
        if (is_digit(peekc(x))) {
            TRY(num32(x, &v, 1, "a part number"));
            while (peekc(x) == '.' && is_digit(peek2(x))) {
                x->p++;
                TRY(num32(x, &v, 1, "a part number"));
            }
            if (peekc(x) == '.' && !binary) {
                x->p++;
                TRY(section_text(x, 1));
            }
        }
        else if (binary) {
            return perr(x, "BINARY sections are part numbers, found %s", found(x));
        }
        else {
            TRY(section_text(x, 0));
        }
    }
    *psec = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
    return expect(x, ']', "']' closing the section");
}

static apr_status_t origin(pctx_t *x, memds_imap_section_t *sec)
{
    if (peekc(x) == '<') {
        x->p++;
        TRY(num64(x, &sec->origin, 0, "the origin"));
        TRY(expect(x, '>', "'>' closing the origin"));
        sec->has_origin = 1;
    }
    return APR_SUCCESS;
}

static apr_status_t date_time(pctx_t *x, const char **ps, apr_time_t *pt)
{
    const char *s;
    apr_size_t n;

    if (peekc(x) != '"') {
        return perr(x, "expected a quoted date-time, found %s", found(x));
    }
    TRY(string_(x, &s, &n, 0, "a date-time"));
    if (memds_imap_parse_date(pt, s, n) != APR_SUCCESS) {
        return perr(x, "invalid date-time \"%s\"", s);
    }
    *ps = s;
    return APR_SUCCESS;
}

static apr_status_t once(pctx_t *x, memds_imap_fetch_t *f, unsigned bit,
                         const char *name)
{
    if (f->have & bit) {
        return perr(x, "%s appears twice in a FETCH response", name);
    }
    f->have |= bit;
    return APR_SUCCESS;
}

static unsigned sysflag_bit(const char *f)
{
    if (str_ieq(f, "\\Seen")) return MEMDS_IMAP_FL_SEEN;
    if (str_ieq(f, "\\Answered")) return MEMDS_IMAP_FL_ANSWERED;
    if (str_ieq(f, "\\Flagged")) return MEMDS_IMAP_FL_FLAGGED;
    if (str_ieq(f, "\\Deleted")) return MEMDS_IMAP_FL_DELETED;
    if (str_ieq(f, "\\Draft")) return MEMDS_IMAP_FL_DRAFT;
    if (str_ieq(f, "\\Recent")) return MEMDS_IMAP_FL_RECENT;
    return 0;
}

static apr_status_t msg_att(pctx_t *x, memds_imap_fetch_t *f)
{
    TRY(expect(x, '(', "'(' opening the FETCH attributes"));
    f->sections = apr_array_make(x->pool, 1, sizeof(memds_imap_section_t));
    if (peekc(x) == ')') {
        return perr(x, "empty FETCH attribute list");
    }
    for (;;) {
        const char *s = x->p, *name;
        apr_size_t n;
        while (x->p < x->end && ((*x->p >= 'A' && *x->p <= 'Z')
                                 || (*x->p >= 'a' && *x->p <= 'z')
                                 || is_digit((unsigned char)*x->p)
                                 || *x->p == '.' || *x->p == '-')) {
            x->p++;
        }
        n = (apr_size_t)(x->p - s);
        if (n == 0) {
            return perr(x, "expected a FETCH item name, found %s", found(x));
        }
        name = str_upper(x->pool, s, n);
        if (!strcmp(name, "UID")) {
            TRY(once(x, f, MEMDS_IMAP_F_UID, name));
            TRY(expect(x, ' ', "SP after UID"));
            TRY(num32(x, &f->uid, 1, "UID"));
        }
        else if (!strcmp(name, "FLAGS")) {
            int i;
            TRY(once(x, f, MEMDS_IMAP_F_FLAGS, name));
            TRY(expect(x, ' ', "SP after FLAGS"));
            TRY(flag_list(x, &f->flag_names, 0, "FLAGS"));
            for (i = 0; i < f->flag_names->nelts; i++) {
                f->flags |= sysflag_bit(APR_ARRAY_IDX(f->flag_names, i, const char *));
            }
        }
        else if (!strcmp(name, "MODSEQ")) {
            TRY(once(x, f, MEMDS_IMAP_F_MODSEQ, name));
            TRY(expect(x, ' ', "SP after MODSEQ"));
            TRY(expect(x, '(', "'(' after MODSEQ"));
            TRY(num64(x, &f->modseq, 1, "MODSEQ"));
            TRY(expect(x, ')', "')' after the MODSEQ value"));
        }
        else if (!strcmp(name, "RFC822.SIZE")) {
            TRY(once(x, f, MEMDS_IMAP_F_SIZE, name));
            TRY(expect(x, ' ', "SP after RFC822.SIZE"));
            TRY(num64(x, &f->size, 0, "RFC822.SIZE"));
        }
        else if (!strcmp(name, "INTERNALDATE")) {
            TRY(once(x, f, MEMDS_IMAP_F_INTERNALDATE, name));
            TRY(expect(x, ' ', "SP after INTERNALDATE"));
            TRY(date_time(x, &f->internaldate, &f->internaldate_t));
        }
        else if (!strcmp(name, "ENVELOPE")) {
            TRY(once(x, f, MEMDS_IMAP_F_ENVELOPE, name));
            TRY(expect(x, ' ', "SP after ENVELOPE"));
            TRY(envelope(x, &f->envelope));
        }
        else if (!strcmp(name, "BODYSTRUCTURE")
                 || (!strcmp(name, "BODY") && peekc(x) == ' ')) {
            memds_imap_body_t *bs;
            int ext = name[4] != '\0';
            TRY(once(x, f, ext ? MEMDS_IMAP_F_BODYSTRUCTURE : MEMDS_IMAP_F_BODY,
                     name));
            x->p++;
            TRY(body(x, NULL, 0, &bs));
            number_body(bs, bs->multipart ? "" : "1", x->pool);
            /* both may be asked for (Dovecot then sends both): the
             * extensible form wins */
            if (ext || !(f->have & MEMDS_IMAP_F_BODYSTRUCTURE)) {
                f->body = bs;
            }
        }
        else if (!strcmp(name, "BODY") || !strcmp(name, "BINARY")) {
            memds_imap_section_t *sec = apr_array_push(f->sections);
            int bin = name[1] == 'I';
            memset(sec, 0, sizeof(*sec));
            sec->item = name;
            TRY(section_spec(x, &sec->section, bin));
            TRY(origin(x, sec));
            TRY(expect(x, ' ', "SP before the section data"));
            TRY(nstring(x, &sec->data, &sec->len,
                        S_BINARY | (bin ? S_LIT8 : 0), "section data"));
        }
        else if (!strcmp(name, "BINARY.SIZE")) {
            const char *sec;
            apr_uint64_t v;
            TRY(section_spec(x, &sec, 1));
            TRY(expect(x, ' ', "SP after BINARY.SIZE[]"));
            TRY(num64(x, &v, 0, "BINARY.SIZE"));
        }
        else if (!strcmp(name, "RFC822") || !strcmp(name, "RFC822.HEADER")
                 || !strcmp(name, "RFC822.TEXT")) {
            memds_imap_section_t *sec = apr_array_push(f->sections);
            memset(sec, 0, sizeof(*sec));
            sec->item = name;
            TRY(expect(x, ' ', "SP after RFC822"));
            TRY(nstring(x, &sec->data, &sec->len, S_BINARY, "RFC822 data"));
        }
        else if (!strcmp(name, "X-GUID")) {
            TRY(once(x, f, MEMDS_IMAP_F_XGUID, name));
            TRY(expect(x, ' ', "SP after X-GUID"));
            TRY(astring(x, &f->xguid, "X-GUID"));
        }
        else {
            memds_imap_item_t *it;
            const char *v;
            if (peekc(x) == '[') {
                return perr(x, "unknown FETCH item %s with a section", name);
            }
            TRY(expect(x, ' ', "SP after a FETCH item name"));
            v = x->p;
            TRY(gvalue(x));
            if (f->other == NULL) {
                f->other = apr_array_make(x->pool, 2, sizeof(memds_imap_item_t));
            }
            it = apr_array_push(f->other);
            it->name = name;
            it->value = apr_pstrmemdup(x->pool, v, (apr_size_t)(x->p - v));
        }
        if (peekc(x) == ')') {
            x->p++;
            return APR_SUCCESS;
        }
        if (peekc(x) != ' ') {
            return perr(x, "expected SP or ')' after FETCH item %s, found %s",
                        name, found(x));
        }
        x->p++;
    }
}

/* ---- mailbox data */

static const struct {
    const char *name;
    unsigned bit;
} mbx_attrs[] = {
    { "\\Noinferiors", MEMDS_IMAP_MBX_NOINFERIORS },
    { "\\Noselect", MEMDS_IMAP_MBX_NOSELECT },
    { "\\Marked", MEMDS_IMAP_MBX_MARKED },
    { "\\Unmarked", MEMDS_IMAP_MBX_UNMARKED },
    { "\\HasChildren", MEMDS_IMAP_MBX_HASCHILDREN },
    { "\\HasNoChildren", MEMDS_IMAP_MBX_HASNOCHILDREN },
    { "\\NonExistent", MEMDS_IMAP_MBX_NONEXISTENT },
    { "\\Subscribed", MEMDS_IMAP_MBX_SUBSCRIBED },
    { "\\Remote", MEMDS_IMAP_MBX_REMOTE },
    { "\\All", MEMDS_IMAP_MBX_ALL }, { "\\Archive", MEMDS_IMAP_MBX_ARCHIVE },
    { "\\Drafts", MEMDS_IMAP_MBX_DRAFTS }, { "\\Flagged", MEMDS_IMAP_MBX_FLAGGED },
    { "\\Junk", MEMDS_IMAP_MBX_JUNK }, { "\\Sent", MEMDS_IMAP_MBX_SENT },
    { "\\Trash", MEMDS_IMAP_MBX_TRASH },
};

static memds_imap_role_e role_of(const memds_imap_list_t *l)
{
    if (!strcmp(l->name, "INBOX")) return MEMDS_IMAP_ROLE_INBOX;
    if (l->attrs & MEMDS_IMAP_MBX_DRAFTS) return MEMDS_IMAP_ROLE_DRAFTS;
    if (l->attrs & MEMDS_IMAP_MBX_SENT) return MEMDS_IMAP_ROLE_SENT;
    if (l->attrs & MEMDS_IMAP_MBX_TRASH) return MEMDS_IMAP_ROLE_TRASH;
    if (l->attrs & MEMDS_IMAP_MBX_JUNK) return MEMDS_IMAP_ROLE_JUNK;
    if (l->attrs & MEMDS_IMAP_MBX_ARCHIVE) return MEMDS_IMAP_ROLE_ARCHIVE;
    if (l->attrs & MEMDS_IMAP_MBX_ALL) return MEMDS_IMAP_ROLE_ALL;
    if (l->attrs & MEMDS_IMAP_MBX_FLAGGED) return MEMDS_IMAP_ROLE_FLAGGED;
    return MEMDS_IMAP_ROLE_NONE;
}

static apr_status_t mailbox(pctx_t *x, const char **pname)
{
    TRY(astring(x, pname, "a mailbox name"));
    if (str_ieq(*pname, "INBOX")) {
        *pname = "INBOX";
    }
    return APR_SUCCESS;
}

static apr_status_t list_data(pctx_t *x, memds_imap_list_t **pl)
{
    memds_imap_list_t *l = apr_pcalloc(x->pool, sizeof(*l));
    apr_size_t k;

    l->attr_names = apr_array_make(x->pool, 4, sizeof(const char *));
    TRY(expect(x, '(', "'(' opening the mailbox attributes"));
    if (peekc(x) != ')') {
        for (;;) {
            const char **pa = apr_array_push(l->attr_names);
            if (peekc(x) != '\\') {
                return perr(x, "expected a mailbox attribute (\\name), found %s",
                            found(x));
            }
            TRY(flag(x, pa, 0));
            for (k = 0; k < sizeof(mbx_attrs) / sizeof(mbx_attrs[0]); k++) {
                if (str_ieq(*pa, mbx_attrs[k].name)) {
                    l->attrs |= mbx_attrs[k].bit;
                }
            }
            if (peekc(x) != ' ') {
                break;
            }
            x->p++;
        }
    }
    TRY(expect(x, ')', "SP or ')' in the mailbox attributes"));
    TRY(expect(x, ' ', "SP after the mailbox attributes"));
    if (at_nil(x)) {
        x->p += 3;
    }
    else {
        const char *d;
        apr_size_t n;
        if (peekc(x) != '"') {
            return perr(x, "expected a quoted delimiter or NIL, found %s", found(x));
        }
        TRY(string_(x, &d, &n, 0, "the hierarchy delimiter"));
        if (n != 1) {
            return perr(x, "the hierarchy delimiter must be one character");
        }
        l->delim = d[0];
    }
    TRY(expect(x, ' ', "SP after the hierarchy delimiter"));
    TRY(mailbox(x, &l->name));
    if (peekc(x) == ' ') {
        /* mbox-list-extended: ( tag SP value ... ) */
        x->p++;
        TRY(expect(x, '(', "'(' opening the extended LIST data"));
        if (peekc(x) != ')') {
            for (;;) {
                const char *t;
                TRY(astring(x, &t, "an extended LIST item"));
                TRY(expect(x, ' ', "SP after an extended LIST item"));
                TRY(gvalue(x));
                if (peekc(x) != ' ') {
                    break;
                }
                x->p++;
            }
        }
        TRY(expect(x, ')', "SP or ')' in the extended LIST data"));
    }
    if (memds_imap_mutf7_decode(&l->name_utf8, l->name, strlen(l->name),
                                x->pool) != APR_SUCCESS) {
        l->name_utf8 = NULL;
    }
    l->role = role_of(l);
    *pl = l;
    return APR_SUCCESS;
}

static apr_status_t status_data(pctx_t *x, memds_imap_status_t **pst)
{
    memds_imap_status_t *st = apr_pcalloc(x->pool, sizeof(*st));

    TRY(mailbox(x, &st->mailbox));
    TRY(expect(x, ' ', "SP after the STATUS mailbox"));
    TRY(expect(x, '(', "'(' opening the STATUS attributes"));
    while (peekc(x) != ')') {
        const char *a;
        apr_size_t n;
        unsigned bit = 0;
        apr_uint32_t *p32 = NULL;
        TRY(atom(x, &a, &n, "a STATUS attribute"));
        TRY(expect(x, ' ', "SP after a STATUS attribute"));
        if (tok_eq(a, n, "MESSAGES")) { bit = MEMDS_IMAP_ST_MESSAGES; p32 = &st->messages; }
        else if (tok_eq(a, n, "RECENT")) { bit = MEMDS_IMAP_ST_RECENT; p32 = &st->recent; }
        else if (tok_eq(a, n, "UIDNEXT")) { bit = MEMDS_IMAP_ST_UIDNEXT; p32 = &st->uidnext; }
        else if (tok_eq(a, n, "UIDVALIDITY")) { bit = MEMDS_IMAP_ST_UIDVALIDITY; p32 = &st->uidvalidity; }
        else if (tok_eq(a, n, "UNSEEN")) { bit = MEMDS_IMAP_ST_UNSEEN; p32 = &st->unseen; }
        else if (tok_eq(a, n, "HIGHESTMODSEQ")) bit = MEMDS_IMAP_ST_HIGHESTMODSEQ;
        else if (tok_eq(a, n, "SIZE")) bit = MEMDS_IMAP_ST_SIZE;
        else if (tok_eq(a, n, "X-GUID")) bit = MEMDS_IMAP_ST_XGUID;
        if (bit && (st->have & bit)) {
            return perr(x, "STATUS attribute %s appears twice",
                        apr_pstrmemdup(x->pool, a, n));
        }
        st->have |= bit;
        if (p32) {
            TRY(num32(x, p32, 0, "a STATUS value"));
        }
        else if (bit == MEMDS_IMAP_ST_HIGHESTMODSEQ) {
            TRY(num64(x, &st->highestmodseq, 0, "HIGHESTMODSEQ"));
        }
        else if (bit == MEMDS_IMAP_ST_SIZE) {
            TRY(num64(x, &st->size, 0, "SIZE"));
        }
        else if (bit == MEMDS_IMAP_ST_XGUID) {
            TRY(astring(x, &st->xguid, "X-GUID"));
        }
        else {
            TRY(gvalue(x));
        }
        if (peekc(x) != ' ') {
            break;
        }
        x->p++; /* a SP before ")" is tolerated (seen from Exchange) */
    }
    TRY(expect(x, ')', "SP or ')' in the STATUS attributes"));
    *pst = st;
    return APR_SUCCESS;
}

static apr_status_t search_data(pctx_t *x, memds_imap_search_t **psr)
{
    memds_imap_search_t *sr = apr_pcalloc(x->pool, sizeof(*sr));
    apr_array_header_t *v = apr_array_make(x->pool, 16, sizeof(apr_uint32_t));

    while (peekc(x) == ' ') {
        x->p++;
        if (peekc(x) == '(') {
            x->p++;
            if (!at_word(x, "MODSEQ")) {
                return perr(x, "expected MODSEQ in the SEARCH result, found %s",
                            found(x));
            }
            x->p += 6;
            TRY(expect(x, ' ', "SP after MODSEQ"));
            TRY(num64(x, &sr->modseq, 1, "MODSEQ"));
            TRY(expect(x, ')', "')' after the MODSEQ value"));
            sr->have |= MEMDS_IMAP_SR_MODSEQ;
            break;
        }
        TRY(num32(x, (apr_uint32_t *)apr_array_push(v), 1, "a SEARCH result"));
    }
    sr->all = set_from_numbers((const apr_uint32_t *)v->elts, v->nelts, x->pool);
    sr->count = (apr_uint32_t)v->nelts;
    sr->have |= MEMDS_IMAP_SR_ALL | MEMDS_IMAP_SR_COUNT;
    *psr = sr;
    return APR_SUCCESS;
}

static apr_status_t esearch_data(pctx_t *x, memds_imap_search_t **psr)
{
    memds_imap_search_t *sr = apr_pcalloc(x->pool, sizeof(*sr));

    sr->all = apr_pcalloc(x->pool, sizeof(*sr->all));
    if (peekc(x) == ' ' && peek2(x) == '(') {
        x->p += 2;
        if (!at_word(x, "TAG")) {
            return perr(x, "expected TAG in the ESEARCH correlator, found %s",
                        found(x));
        }
        x->p += 3;
        TRY(expect(x, ' ', "SP after TAG"));
        TRY(string_(x, &sr->tag, NULL, 0, "the ESEARCH tag"));
        TRY(expect(x, ')', "')' closing the ESEARCH correlator"));
    }
    if (peekc(x) == ' ' && x->end - x->p >= 4 && tok_eq(x->p + 1, 3, "UID")
        && (x->end - x->p == 4 || !is_atom_char((unsigned char)x->p[4]))) {
        x->p += 4;
        sr->uid = 1;
    }
    while (peekc(x) == ' ') {
        const char *a;
        apr_size_t n;
        unsigned bit = 0;
        x->p++;
        TRY(atom(x, &a, &n, "an ESEARCH result name"));
        TRY(expect(x, ' ', "SP after an ESEARCH result name"));
        if (tok_eq(a, n, "MIN")) {
            bit = MEMDS_IMAP_SR_MIN;
            TRY(num32(x, &sr->min, 1, "MIN"));
        }
        else if (tok_eq(a, n, "MAX")) {
            bit = MEMDS_IMAP_SR_MAX;
            TRY(num32(x, &sr->max, 1, "MAX"));
        }
        else if (tok_eq(a, n, "COUNT")) {
            bit = MEMDS_IMAP_SR_COUNT;
            TRY(num32(x, &sr->count, 0, "COUNT"));
        }
        else if (tok_eq(a, n, "ALL")) {
            bit = MEMDS_IMAP_SR_ALL;
            TRY(uidset(x, &sr->all, "ALL"));
        }
        else if (tok_eq(a, n, "MODSEQ")) {
            bit = MEMDS_IMAP_SR_MODSEQ;
            TRY(num64(x, &sr->modseq, 1, "MODSEQ"));
        }
        else {
            TRY(gvalue(x));
        }
        if (bit & sr->have) {
            return perr(x, "ESEARCH result %s appears twice",
                        apr_pstrmemdup(x->pool, a, n));
        }
        sr->have |= bit;
    }
    *psr = sr;
    return APR_SUCCESS;
}

static apr_status_t untagged(pctx_t *x, memds_imap_resp_t *r)
{
    const char *kw;
    apr_size_t n;

    if (is_digit(peekc(x))) {
        TRY(num32(x, &r->number, 0, "a message number"));
        TRY(expect(x, ' ', "SP after the message number"));
        TRY(atom(x, &kw, &n, "a response name"));
        if (tok_eq(kw, n, "EXISTS")) {
            r->type = MEMDS_IMAP_RESP_EXISTS;
            return eol(x);
        }
        if (tok_eq(kw, n, "RECENT")) {
            r->type = MEMDS_IMAP_RESP_RECENT;
            return eol(x);
        }
        if (tok_eq(kw, n, "EXPUNGE") || tok_eq(kw, n, "FETCH")) {
            if (r->number == 0) {
                x->p = kw;
                return perr(x, "message number 0 in %s",
                            apr_pstrmemdup(x->pool, kw, n));
            }
            if (kw[1] == 'X' || kw[1] == 'x') {
                r->type = MEMDS_IMAP_RESP_EXPUNGE;
                return eol(x);
            }
            r->type = MEMDS_IMAP_RESP_FETCH;
            r->fetch = apr_pcalloc(x->pool, sizeof(*r->fetch));
            r->fetch->seq = r->number;
            TRY(expect(x, ' ', "SP after FETCH"));
            TRY(msg_att(x, r->fetch));
            return eol(x);
        }
    }
    else {
        TRY(atom(x, &kw, &n, "a response name"));
        if (tok_eq(kw, n, "OK") || tok_eq(kw, n, "NO") || tok_eq(kw, n, "BAD")
            || tok_eq(kw, n, "BYE") || tok_eq(kw, n, "PREAUTH")) {
            r->type = MEMDS_IMAP_RESP_COND;
            r->cond = tok_eq(kw, n, "OK") ? MEMDS_IMAP_OK
                      : tok_eq(kw, n, "NO") ? MEMDS_IMAP_NO
                      : tok_eq(kw, n, "BAD") ? MEMDS_IMAP_BAD
                      : tok_eq(kw, n, "BYE") ? MEMDS_IMAP_BYE : MEMDS_IMAP_PREAUTH;
            return resp_text(x, r);
        }
        if (tok_eq(kw, n, "CAPABILITY") || tok_eq(kw, n, "ENABLED")) {
            r->type = kw[0] == 'C' || kw[0] == 'c' ? MEMDS_IMAP_RESP_CAPABILITY
                                                   : MEMDS_IMAP_RESP_ENABLED;
            r->list = apr_array_make(x->pool, 32, sizeof(const char *));
            while (peekc(x) == ' ') {
                x->p++;
                TRY(atom_str(x, (const char **)apr_array_push(r->list),
                             "a capability"));
            }
            return eol(x);
        }
        if (tok_eq(kw, n, "FLAGS")) {
            r->type = MEMDS_IMAP_RESP_FLAGS;
            TRY(expect(x, ' ', "SP after FLAGS"));
            TRY(flag_list(x, &r->list, 0, "FLAGS"));
            return eol(x);
        }
        if (tok_eq(kw, n, "LIST") || tok_eq(kw, n, "LSUB")) {
            r->type = MEMDS_IMAP_RESP_LIST;
            TRY(expect(x, ' ', "SP after LIST"));
            TRY(list_data(x, &r->mbox));
            return eol(x);
        }
        if (tok_eq(kw, n, "STATUS")) {
            r->type = MEMDS_IMAP_RESP_STATUS;
            TRY(expect(x, ' ', "SP after STATUS"));
            TRY(status_data(x, &r->status));
            return eol(x);
        }
        if (tok_eq(kw, n, "SEARCH")) {
            r->type = MEMDS_IMAP_RESP_SEARCH;
            TRY(search_data(x, &r->search));
            return eol(x);
        }
        if (tok_eq(kw, n, "ESEARCH")) {
            r->type = MEMDS_IMAP_RESP_ESEARCH;
            TRY(esearch_data(x, &r->search));
            return eol(x);
        }
        if (tok_eq(kw, n, "VANISHED")) {
            r->type = MEMDS_IMAP_RESP_VANISHED;
            TRY(expect(x, ' ', "SP after VANISHED"));
            if (peekc(x) == '(') {
                x->p++;
                if (!at_word(x, "EARLIER")) {
                    return perr(x, "expected EARLIER after VANISHED (, found %s",
                                found(x));
                }
                x->p += 7;
                TRY(expect(x, ')', "')' after EARLIER"));
                TRY(expect(x, ' ', "SP after (EARLIER)"));
                r->earlier = 1;
            }
            TRY(uidset(x, &r->uids, "VANISHED uids"));
            return eol(x);
        }
    }
    /* anything else: keyword and well-formed values */
    r->type = MEMDS_IMAP_RESP_OTHER;
    r->keyword = str_upper(x->pool, kw, n);
    if (peekc(x) == ' ') {
        const char *s = ++x->p;
        for (;;) {
            TRY(gvalue(x));
            if (peekc(x) != ' ') {
                break;
            }
            x->p++;
        }
        r->text = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
    }
    else {
        r->text = "";
    }
    return eol(x);
}

static apr_status_t parse_resp(pctx_t *x, memds_imap_resp_t *r)
{
    int c = peekc(x);

    if (c == '+') {
        r->type = MEMDS_IMAP_RESP_CONT;
        x->p++;
        if (peekc(x) == ' ') {
            x->p++;
            return text_eol(x, &r->text);
        }
        r->text = "";
        return eol(x);
    }
    if (c == '*') {
        x->p++;
        TRY(expect(x, ' ', "SP after '*'"));
        return untagged(x, r);
    }
    {
        /* tag = 1*<any ASTRING-CHAR except "+"> */
        const char *s = x->p, *kw;
        apr_size_t n;
        while (x->p < x->end && *x->p != '+'
               && (is_atom_char((unsigned char)*x->p) || *x->p == ']')) {
            x->p++;
        }
        if (x->p == s) {
            return perr(x, "expected '*', '+' or a tag, found %s", found(x));
        }
        r->type = MEMDS_IMAP_RESP_TAGGED;
        r->tag = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
        TRY(expect(x, ' ', "SP after the tag"));
        TRY(atom(x, &kw, &n, "OK, NO or BAD"));
        if (tok_eq(kw, n, "OK")) r->cond = MEMDS_IMAP_OK;
        else if (tok_eq(kw, n, "NO")) r->cond = MEMDS_IMAP_NO;
        else if (tok_eq(kw, n, "BAD")) r->cond = MEMDS_IMAP_BAD;
        else {
            x->p = kw;
            return perr(x, "tagged response must be OK, NO or BAD, found %s",
                        apr_pstrmemdup(x->pool, kw, n));
        }
        return resp_text(x, r);
    }
}

apr_status_t memds_imap_parse_response(memds_imap_resp_t **presp,
                                       const char *buf, apr_size_t len,
                                       apr_size_t max_literal,
                                       memds_imap_err_t *err, apr_pool_t *p)
{
    pctx_t x;
    memds_imap_resp_t *r = apr_pcalloc(p, sizeof(*r));
    apr_status_t rv;

    memset(&x, 0, sizeof(x));
    x.buf = x.p = buf;
    x.end = buf + len;
    x.max_literal = max_literal;
    x.pool = p;
    rv = parse_resp(&x, r);
    if (rv != APR_SUCCESS) {
        if (err) {
            memset(err, 0, sizeof(*err));
            err->rv = APR_EINVAL;
            err->kind = MEMDS_IMAP_E_PROTOCOL;
            err->msg = apr_psprintf(p, "malformed IMAP response at offset %"
                                    APR_SIZE_T_FMT ": %s", x.eoff,
                                    x.emsg ? x.emsg : "unknown error");
            err->offset = x.eoff;
        }
        return APR_EINVAL;
    }
    *presp = r;
    return APR_SUCCESS;
}

/* ============================== (4) transport and the response framer */

/* libcurl's connection: our own waits on its socket between CURLE_AGAIN. */
typedef struct curl_io_t {
    CURL *h;
    curl_socket_t sock;
    long timeout_ms;
    CURLcode last;           /* the last libcurl failure, for messages */
} curl_io_t;

/* A piece of a command: text, or literal data sent after the server's
 * continuation request (sync). */
typedef struct piece_t {
    const char *data;
    apr_size_t len;
    int sync;
} piece_t;

struct memds_imap_conn_t {
    apr_pool_t *pool;        /* the connection's own */
    apr_pool_t *rpool;       /* one response; cleared before the next */
    apr_pool_t *cpool;       /* one command: its text and tagged response */
    apr_pool_t *selpool;     /* the selected mailbox's state */
    apr_pool_t *cappool;     /* the capability list */
    memds_imap_io_t io;
    curl_io_t cio;           /* used when libcurl connected */
    char errbuf[CURL_ERROR_SIZE];
    memds_logger_t log;
    long io_timeout_ms;
    apr_size_t max_response;
    char inbuf[16384];       /* bytes received, not yet framed */
    apr_size_t in_pos, in_len;
    unsigned tagno;
    unsigned caps;
    apr_array_header_t *capnames;
    int qresync;             /* ENABLE QRESYNC succeeded */
    int broken, bye;
    int selected, selecting;
    memds_imap_mailbox_t sel;
    /* the running command */
    const char *tag, *verb;
    memds_imap_resp_cb *cb;
    void *baton;
    apr_status_t cb_rv;
    memds_imap_copyuid_t *copyuid; /* untagged OK [COPYUID] (UID MOVE) */
    const char *proto_err;   /* the first malformed untagged response */
    memds_imap_chunk_cb *chunk_cb;
    void *chunk_baton;
    apr_status_t chunk_rv;
    apr_uint64_t chunk_total; /* streamed bytes in this command */
    int chunk_lits;          /* literals streamed in the current response */
};

static apr_status_t failv(memds_imap_conn_t *c, memds_imap_err_t *err,
                          memds_imap_ekind_e kind, apr_status_t rv,
                          const char *fmt, va_list ap)
{
    err->rv = rv;
    err->kind = kind;
    err->cmd = c ? c->verb : NULL;
    err->msg = apr_pvsprintf(c->pool, fmt, ap);
    return rv;
}

static apr_status_t fail(memds_imap_conn_t *c, memds_imap_err_t *err,
                         memds_imap_ekind_e kind, apr_status_t rv,
                         const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static apr_status_t fail(memds_imap_conn_t *c, memds_imap_err_t *err,
                         memds_imap_ekind_e kind, apr_status_t rv,
                         const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    failv(c, err, kind, rv, fmt, ap);
    va_end(ap);
    return rv;
}

/* A failure after which the stream cannot be trusted: no more commands. */
static apr_status_t broke(memds_imap_conn_t *c, memds_imap_err_t *err,
                          memds_imap_ekind_e kind, apr_status_t rv,
                          const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static apr_status_t broke(memds_imap_conn_t *c, memds_imap_err_t *err,
                          memds_imap_ekind_e kind, apr_status_t rv,
                          const char *fmt, ...)
{
    va_list ap;

    c->broken = 1;
    va_start(ap, fmt);
    failv(c, err, kind, rv, fmt, ap);
    va_end(ap);
    return rv;
}

static apr_status_t io_failed(memds_imap_conn_t *c, apr_status_t rv,
                              const char *what, memds_imap_err_t *err)
{
    char buf[120];

    if (rv == APR_EOF) {
        return broke(c, err, c->bye ? MEMDS_IMAP_E_BYE : MEMDS_IMAP_E_IO, rv,
                     "IMAP server closed the connection%s",
                     c->bye ? " after BYE" : "");
    }
    if (APR_STATUS_IS_TIMEUP(rv)) {
        return broke(c, err, MEMDS_IMAP_E_TIMEOUT, APR_TIMEUP,
                     "no data from the IMAP server within %ld ms while %s",
                     c->io_timeout_ms, what);
    }
    if (c->cio.last != CURLE_OK) {
        err->curl_code = (int)c->cio.last;
        return broke(c, err, MEMDS_IMAP_E_IO, rv, "IMAP %s failed: %s", what,
                     curl_easy_strerror(c->cio.last));
    }
    return broke(c, err, MEMDS_IMAP_E_IO, rv, "IMAP %s failed: %s", what,
                 apr_strerror(rv, buf, sizeof(buf)));
}

static apr_status_t wait_sock(curl_io_t *io, short events, apr_time_t deadline)
{
    for (;;) {
        struct pollfd pfd;
        apr_time_t now = apr_time_now();
        int n;
        if (now >= deadline) {
            return APR_TIMEUP;
        }
        pfd.fd = io->sock;
        pfd.events = events;
        pfd.revents = 0;
        n = poll(&pfd, 1, (int)((deadline - now + 999) / 1000));
        if (n > 0) {
            return APR_SUCCESS; /* readable, writable, or an error recv reports */
        }
        if (n < 0 && errno != EINTR) {
            return APR_FROM_OS_ERROR(errno);
        }
    }
}

static apr_status_t curl_recv_cb(void *baton, char *buf, apr_size_t len,
                                 apr_size_t *pgot)
{
    curl_io_t *io = baton;
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(io->timeout_ms);

    for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(io->h, buf, len, &n);
        if (rc == CURLE_OK) {
            if (n == 0) {
                return APR_EOF;
            }
            *pgot = n;
            return APR_SUCCESS;
        }
        if (rc != CURLE_AGAIN) {
            io->last = rc;
            return APR_EGENERAL;
        }
        TRY(wait_sock(io, POLLIN, deadline));
    }
}

static apr_status_t curl_send_cb(void *baton, const char *buf, apr_size_t len,
                                 apr_size_t *psent)
{
    curl_io_t *io = baton;
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(io->timeout_ms);

    for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(io->h, buf, len, &n);
        if (rc == CURLE_OK && n > 0) {
            *psent = n;
            return APR_SUCCESS;
        }
        if (rc != CURLE_OK && rc != CURLE_AGAIN) {
            io->last = rc;
            return APR_EGENERAL;
        }
        TRY(wait_sock(io, POLLOUT, deadline));
    }
}

static apr_status_t send_all(memds_imap_conn_t *c, const char *data,
                             apr_size_t len, memds_imap_err_t *err)
{
    while (len > 0) {
        apr_size_t n = 0;
        apr_status_t rv = c->io.send(c->io.baton, data, len, &n);
        if (rv == APR_SUCCESS && (n == 0 || n > len)) {
            rv = APR_EGENERAL;
        }
        if (rv != APR_SUCCESS) {
            return io_failed(c, rv, "sending", err);
        }
        data += n;
        len -= n;
    }
    return APR_SUCCESS;
}

/* At least one unframed byte in inbuf. */
static apr_status_t fill(memds_imap_conn_t *c, memds_imap_err_t *err)
{
    apr_size_t got = 0;
    apr_status_t rv;

    if (c->in_pos < c->in_len) {
        return APR_SUCCESS;
    }
    c->in_pos = c->in_len = 0;
    rv = c->io.recv(c->io.baton, c->inbuf, sizeof(c->inbuf), &got);
    if (rv == APR_SUCCESS && got == 0) {
        rv = APR_EOF;
    }
    if (rv == APR_SUCCESS && got > sizeof(c->inbuf)) {
        rv = APR_EGENERAL;
    }
    if (rv != APR_SUCCESS) {
        return io_failed(c, rv, "receiving", err);
    }
    c->in_len = got;
    return APR_SUCCESS;
}

static void buf_reserve(memds_buf_t *b, apr_size_t extra)
{
    char *nd;

    if (b->cap - b->len >= extra) {
        return;
    }
    nd = apr_palloc(b->pool, b->len + extra + 512);
    memcpy(nd, b->data, b->len);
    b->data = nd;
    b->cap = b->len + extra + 512;
}

/* A literal announcement "{n}", "{n+}" or "~{n}" ending the fragment s[0..n):
 * 1 with its length and start, 0 if none, -1 if the length is absurd. */
static int literal_marker(const char *s, apr_size_t n, apr_uint64_t *plen,
                          apr_size_t *pstart)
{
    apr_size_t i, e, lb;
    apr_uint64_t v = 0;

    if (n < 3 || s[n - 1] != '}') {
        return 0;
    }
    i = n - 1;
    if (s[i - 1] == '+') {
        i--;
    }
    e = i;
    while (i > 0 && is_digit((unsigned char)s[i - 1])) {
        i--;
    }
    if (i == e || i == 0 || s[i - 1] != '{') {
        return 0;
    }
    lb = i - 1; /* the '{' */
    if (e - i > 18) {
        return -1;
    }
    for (; i < e; i++) {
        v = v * 10 + (apr_uint64_t)(s[i] - '0');
    }
    if (lb > 0 && s[lb - 1] == '~') {
        lb--;
    }
    *plen = v;
    *pstart = lb;
    return 1;
}

/* Status responses and continuation requests carry text, never literals
 * (a mailbox name echoed in "NO ... foo{5}" must not be taken for one). */
static int textual(const char *s, apr_size_t n)
{
    apr_size_t i = 0, w;

    if (n > 0 && s[0] == '+') {
        return 1;
    }
    while (i < n && s[i] != ' ') {
        i++;
    }
    if (i >= n) {
        return 0;
    }
    w = ++i;
    while (i < n && s[i] != ' ') {
        i++;
    }
    return tok_eq(s + w, i - w, "OK") || tok_eq(s + w, i - w, "NO")
           || tok_eq(s + w, i - w, "BAD") || tok_eq(s + w, i - w, "BYE")
           || tok_eq(s + w, i - w, "PREAUTH");
}

static int is_fetch(const char *s, apr_size_t n)
{
    apr_size_t i = 2;

    if (n < 10 || s[0] != '*' || s[1] != ' ') {
        return 0;
    }
    while (i < n && is_digit((unsigned char)s[i])) {
        i++;
    }
    return i > 2 && n - i >= 7 && s[i] == ' ' && tok_eq(s + i + 1, 5, "FETCH")
           && s[i + 6] == ' ';
}

/* The literal at s[i] is the value of "BODY[...]<n> " or "BINARY[...] ". */
static int body_literal(const char *s, apr_size_t i)
{
    if (i == 0 || s[i - 1] != ' ') {
        return 0;
    }
    i--;
    if (i > 0 && s[i - 1] == '>') {
        i--;
        while (i > 0 && is_digit((unsigned char)s[i - 1])) {
            i--;
        }
        if (i == 0 || s[i - 1] != '<') {
            return 0;
        }
        i--;
    }
    if (i == 0 || s[i - 1] != ']') {
        return 0;
    }
    i--;
    while (i > 0 && s[i - 1] != '[') {
        if (s[i - 1] == ']' || s[i - 1] == '{' || s[i - 1] == '}') {
            return 0;
        }
        i--;
    }
    if (i == 0) {
        return 0;
    }
    i--; /* at '[' */
    if (i >= 4 && tok_eq(s + i - 4, 4, "BODY")
        && (i == 4 || s[i - 5] == ' ' || s[i - 5] == '(')) {
        return 1;
    }
    return i >= 6 && tok_eq(s + i - 6, 6, "BINARY")
           && (i == 6 || s[i - 7] == ' ' || s[i - 7] == '(');
}

/* Hand n literal bytes to the chunk callback as they arrive. After a
 * callback failure the rest is read and dropped, so framing stays intact;
 * when more than max_response bytes would have to be dropped, the
 * connection is given up instead (cheaper than reading a huge body). */
static apr_status_t stream_literal(memds_imap_conn_t *c, apr_uint64_t n,
                                   memds_imap_err_t *err)
{
    apr_uint64_t off = 0;

    while (off < n) {
        apr_size_t k;
        if (c->chunk_rv != APR_SUCCESS && n - off > c->max_response) {
            return broke(c, err, MEMDS_IMAP_E_CALLBACK, c->chunk_rv,
                         "IMAP %s: a callback refused the data; connection "
                         "dropped instead of skipping %" APR_UINT64_T_FMT
                         " more bytes", c->verb, n - off);
        }
        TRY(fill(c, err));
        k = c->in_len - c->in_pos;
        if ((apr_uint64_t)k > n - off) {
            k = (apr_size_t)(n - off);
        }
        if (c->chunk_rv == APR_SUCCESS) {
            c->chunk_rv = c->chunk_cb(c->chunk_baton, off, c->inbuf + c->in_pos, k);
        }
        c->in_pos += k;
        off += k;
    }
    c->chunk_total += n;
    return APR_SUCCESS;
}

static apr_status_t read_literal(memds_imap_conn_t *c, memds_buf_t *b,
                                 apr_size_t n, memds_imap_err_t *err)
{
    buf_reserve(b, n);
    while (n > 0) {
        apr_size_t k;
        if (c->in_pos < c->in_len) {
            k = c->in_len - c->in_pos;
            if (k > n) {
                k = n;
            }
            memcpy(b->data + b->len, c->inbuf + c->in_pos, k);
            c->in_pos += k;
        }
        else {
            /* straight into the response buffer: large literals are not
             * copied twice */
            apr_status_t rv = c->io.recv(c->io.baton, b->data + b->len, n, &k);
            if (rv == APR_SUCCESS && (k == 0 || k > n)) {
                rv = APR_EOF;
            }
            if (rv != APR_SUCCESS) {
                return io_failed(c, rv, "receiving a literal", err);
            }
        }
        b->len += k;
        n -= k;
    }
    return APR_SUCCESS;
}

/* One whole response (line, literals, CRLF) into b. BODY[]/BINARY[]
 * literals of FETCH responses go to the chunk callback when one is set;
 * the buffer then holds "{0}" in their place. */
static apr_status_t read_response(memds_imap_conn_t *c, memds_buf_t *b,
                                  memds_imap_err_t *err)
{
    apr_size_t frag = 0;
    int first = 1;

    c->chunk_lits = 0;
    for (;;) {
        const char *fs;
        apr_size_t fl, ms;
        apr_uint64_t n;
        int m;
        for (;;) {
            const char *lf;
            apr_size_t k;
            TRY(fill(c, err));
            lf = memchr(c->inbuf + c->in_pos, '\n', c->in_len - c->in_pos);
            k = lf ? (apr_size_t)(lf - (c->inbuf + c->in_pos)) + 1
                   : c->in_len - c->in_pos;
            if (b->len + k > c->max_response) {
                return broke(c, err, MEMDS_IMAP_E_LIMIT, APR_ENOSPC,
                             "IMAP response longer than %" APR_SIZE_T_FMT
                             " bytes", c->max_response);
            }
            memds_buf_add(b, c->inbuf + c->in_pos, k);
            c->in_pos += k;
            if (lf) {
                break;
            }
        }
        if (b->len - frag < 2 || b->data[b->len - 2] != '\r') {
            return broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                         "IMAP response line ends in LF without CR");
        }
        if (first) {
            first = 0;
            if (textual(b->data, b->len - 2)) {
                return APR_SUCCESS;
            }
        }
        fs = b->data + frag;
        fl = b->len - 2 - frag;
        m = literal_marker(fs, fl, &n, &ms);
        if (m == 0) {
            return APR_SUCCESS;
        }
        if (c->chunk_cb && m > 0 && is_fetch(b->data, b->len)
            && body_literal(fs, ms)) {
            int lit8 = fs[ms] == '~';
            b->len = frag + ms;
            memds_buf_add(b, lit8 ? "~{0}\r\n" : "{0}\r\n", lit8 ? 6 : 5);
            TRY(stream_literal(c, n, err));
            c->chunk_lits++;
        }
        else {
            if (m < 0 || n > c->max_response - b->len) {
                return broke(c, err, MEMDS_IMAP_E_LIMIT, APR_ENOSPC,
                             "IMAP literal of %s bytes exceeds the limit of %"
                             APR_SIZE_T_FMT " bytes per response",
                             m < 0 ? "too many" : apr_psprintf(c->rpool, "%"
                             APR_UINT64_T_FMT, n), c->max_response);
            }
            TRY(read_literal(c, b, (apr_size_t)n, err));
        }
        frag = b->len;
    }
}

/* ============================ (5) command execution, connection state */

static const struct {
    const char *name;
    unsigned bit;
} cap_names[] = {
    { "IMAP4rev1", MEMDS_IMAP_CAP_IMAP4REV1 },
    { "CONDSTORE", MEMDS_IMAP_CAP_CONDSTORE }, { "QRESYNC", MEMDS_IMAP_CAP_QRESYNC },
    { "MOVE", MEMDS_IMAP_CAP_MOVE }, { "UIDPLUS", MEMDS_IMAP_CAP_UIDPLUS },
    { "SPECIAL-USE", MEMDS_IMAP_CAP_SPECIAL_USE },
    { "ESEARCH", MEMDS_IMAP_CAP_ESEARCH },
    { "LIST-STATUS", MEMDS_IMAP_CAP_LIST_STATUS },
    { "LIST-EXTENDED", MEMDS_IMAP_CAP_LIST_EXTENDED },
    { "LITERAL+", MEMDS_IMAP_CAP_LITERAL_PLUS },
    { "LITERAL-", MEMDS_IMAP_CAP_LITERAL_MINUS },
    { "ENABLE", MEMDS_IMAP_CAP_ENABLE }, { "UNSELECT", MEMDS_IMAP_CAP_UNSELECT },
    { "BINARY", MEMDS_IMAP_CAP_BINARY }, { "IDLE", MEMDS_IMAP_CAP_IDLE },
};

static apr_array_header_t *copy_strs(const apr_array_header_t *l, apr_pool_t *p)
{
    apr_array_header_t *o;
    int i;

    if (l == NULL) {
        return NULL;
    }
    o = apr_array_make(p, l->nelts > 0 ? l->nelts : 1, sizeof(const char *));
    for (i = 0; i < l->nelts; i++) {
        *(const char **)apr_array_push(o) =
            apr_pstrdup(p, APR_ARRAY_IDX(l, i, const char *));
    }
    return o;
}

static memds_imap_set_t *copy_set(const memds_imap_set_t *s, apr_pool_t *p)
{
    memds_imap_set_t *o;

    if (s == NULL) {
        return NULL;
    }
    o = apr_pcalloc(p, sizeof(*o));
    o->nranges = s->nranges;
    if (s->nranges > 0) {
        o->ranges = apr_pmemdup(p, s->ranges,
                                sizeof(*s->ranges) * (apr_size_t)s->nranges);
    }
    return o;
}

static void set_caps(memds_imap_conn_t *c, const apr_array_header_t *l)
{
    int i;
    apr_size_t k;

    apr_pool_clear(c->cappool);
    c->capnames = copy_strs(l, c->cappool);
    c->caps = 0;
    for (i = 0; i < l->nelts; i++) {
        const char *n = APR_ARRAY_IDX(l, i, const char *);
        for (k = 0; k < sizeof(cap_names) / sizeof(cap_names[0]); k++) {
            if (str_ieq(n, cap_names[k].name)) {
                c->caps |= cap_names[k].bit;
            }
        }
    }
}

/* Response codes that describe the mailbox being selected or selected. */
static void apply_code(memds_imap_conn_t *c, const memds_imap_code_t *code)
{
    memds_imap_mailbox_t *m = &c->sel;

    if (code->code == MEMDS_IMAP_CODE_CAPABILITY) {
        set_caps(c, code->list);
        return;
    }
    if (!c->selected && !c->selecting) {
        return;
    }
    switch (code->code) {
    case MEMDS_IMAP_CODE_UIDVALIDITY: m->uidvalidity = code->uidvalidity; break;
    case MEMDS_IMAP_CODE_UIDNEXT: m->uidnext = code->number; break;
    case MEMDS_IMAP_CODE_UNSEEN: m->unseen = code->number; break;
    case MEMDS_IMAP_CODE_HIGHESTMODSEQ:
        m->highestmodseq = code->modseq;
        m->nomodseq = 0;
        break;
    case MEMDS_IMAP_CODE_NOMODSEQ:
        m->nomodseq = 1;
        m->highestmodseq = 0;
        break;
    case MEMDS_IMAP_CODE_PERMANENTFLAGS:
        m->permanentflags = copy_strs(code->list, c->selpool);
        break;
    case MEMDS_IMAP_CODE_READ_ONLY: m->readonly = 1; break;
    case MEMDS_IMAP_CODE_READ_WRITE: m->readonly = 0; break;
    default: break;
    }
}

/* Keep the connection's view current, then pass the response on. */
static void handle_untagged(memds_imap_conn_t *c, const memds_imap_resp_t *r)
{
    memds_imap_mailbox_t *m = &c->sel;
    int on = c->selected || c->selecting, i;

    switch (r->type) {
    case MEMDS_IMAP_RESP_CAPABILITY:
        set_caps(c, r->list);
        break;
    case MEMDS_IMAP_RESP_ENABLED:
        for (i = 0; i < r->list->nelts; i++) {
            if (str_ieq(APR_ARRAY_IDX(r->list, i, const char *), "QRESYNC")) {
                c->qresync = 1;
            }
        }
        break;
    case MEMDS_IMAP_RESP_COND:
        if (r->cond == MEMDS_IMAP_BYE) {
            c->bye = 1;
            memds_logf(&c->log, MEMDS_LOG_INFO, 0, "imap: server says BYE: %s",
                       r->text);
        }
        if (r->code.code == MEMDS_IMAP_CODE_ALERT) {
            memds_logf(&c->log, MEMDS_LOG_WARNING, 0, "imap: server alert: %s",
                       r->text);
        }
        if (r->code.code == MEMDS_IMAP_CODE_COPYUID) {
            c->copyuid = apr_pcalloc(c->cpool, sizeof(*c->copyuid));
            c->copyuid->uidvalidity = r->code.uidvalidity;
            c->copyuid->src = copy_set(r->code.uids, c->cpool);
            c->copyuid->dst = copy_set(r->code.uids2, c->cpool);
        }
        if (r->cond == MEMDS_IMAP_OK) {
            apply_code(c, &r->code);
        }
        break;
    case MEMDS_IMAP_RESP_FLAGS:
        if (on) {
            m->flags = copy_strs(r->list, c->selpool);
        }
        break;
    case MEMDS_IMAP_RESP_EXISTS:
        if (on) {
            m->exists = r->number;
        }
        break;
    case MEMDS_IMAP_RESP_RECENT:
        if (on) {
            m->recent = r->number;
        }
        break;
    case MEMDS_IMAP_RESP_EXPUNGE:
        if (on && m->exists > 0) {
            m->exists--;
        }
        break;
    case MEMDS_IMAP_RESP_VANISHED:
        if (on && !r->earlier) {
            apr_uint64_t k = memds_imap_set_count(r->uids);
            m->exists = k >= m->exists ? 0 : m->exists - (apr_uint32_t)k;
        }
        break;
    default:
        break;
    }
    if (c->cb && c->cb_rv == APR_SUCCESS) {
        c->cb_rv = c->cb(c->baton, r);
    }
}

/* The next response, parsed; *pr NULL for a malformed untagged one (kept
 * in proto_err: the framing is intact, so the command goes on). */
static apr_status_t next_response(memds_imap_conn_t *c, memds_imap_resp_t **pr,
                                  memds_imap_err_t *err)
{
    memds_buf_t b;
    memds_imap_err_t pe;
    memds_imap_resp_t *r = NULL;
    int i;

    apr_pool_clear(c->rpool);
    memds_buf_init(&b, 512, c->rpool);
    TRY(read_response(c, &b, err));
    if (b.data[0] != '*' && b.data[0] != '+') {
        /* tagged: one short line that must outlive the next response */
        const char *copy = apr_pmemdup(c->cpool, b.data, b.len);
        if (memds_imap_parse_response(&r, copy, b.len, c->max_response, &pe,
                                      c->cpool) != APR_SUCCESS) {
            return broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL, "%s", pe.msg);
        }
        if (strcmp(r->tag, c->tag) != 0) {
            return broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                         "IMAP tagged response for unknown tag %s (expected %s)",
                         r->tag, c->tag);
        }
    }
    else if (memds_imap_parse_response(&r, b.data, b.len, c->max_response, &pe,
                                       c->rpool) != APR_SUCCESS) {
        if (c->proto_err == NULL) {
            c->proto_err = apr_pstrdup(c->cpool, pe.msg);
        }
        r = NULL;
    }
    else if (c->chunk_lits > 0 && r->type == MEMDS_IMAP_RESP_FETCH) {
        for (i = 0; i < r->fetch->sections->nelts; i++) {
            memds_imap_section_t *s =
                &APR_ARRAY_IDX(r->fetch->sections, i, memds_imap_section_t);
            if (s->data && s->len == 0 && s->section) {
                s->streamed = 1;
            }
        }
    }
    *pr = r;
    return APR_SUCCESS;
}

typedef struct cmd_t {
    memds_imap_conn_t *c;
    memds_buf_t b;               /* the text since the last literal */
    apr_array_header_t *pieces;  /* piece_t */
} cmd_t;

static void cmd_add(cmd_t *cmd, const char *s)
{
    memds_buf_add(&cmd->b, s, strlen(s));
}

static void cmd_start(memds_imap_conn_t *c, cmd_t *cmd, const char *verb)
{
    apr_pool_clear(c->cpool);
    c->verb = verb;
    c->tag = apr_psprintf(c->cpool, "M%u", ++c->tagno);
    cmd->c = c;
    cmd->pieces = apr_array_make(c->cpool, 4, sizeof(piece_t));
    memds_buf_init(&cmd->b, 256, c->cpool);
    cmd_add(cmd, c->tag);
    memds_buf_addc(&cmd->b, ' ');
    cmd_add(cmd, verb);
}

static void cmd_addf(cmd_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cmd_addf(cmd_t *cmd, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = apr_pvsprintf(cmd->c->cpool, fmt, ap);
    va_end(ap);
    cmd_add(cmd, s);
}

static void cmd_piece(cmd_t *cmd, const char *data, apr_size_t len, int sync)
{
    piece_t *pc = apr_array_push(cmd->pieces);

    pc->data = data;
    pc->len = len;
    pc->sync = sync;
}

/* A literal; the data is referenced, not copied (it must live until the
 * command ends). LITERAL+ (or LITERAL- up to 4096 bytes) saves a round
 * trip; otherwise the server's "+" is awaited first. */
static void cmd_literal(cmd_t *cmd, const char *data, apr_size_t len)
{
    memds_imap_conn_t *c = cmd->c;
    int nonsync = (c->caps & MEMDS_IMAP_CAP_LITERAL_PLUS)
                  || ((c->caps & MEMDS_IMAP_CAP_LITERAL_MINUS) && len <= 4096);

    cmd_addf(cmd, "{%" APR_SIZE_T_FMT "%s}\r\n", len, nonsync ? "+" : "");
    cmd_piece(cmd, cmd->b.data, cmd->b.len, 0);
    cmd_piece(cmd, data, len, !nonsync);
    memds_buf_init(&cmd->b, 64, c->cpool);
}

/* INBOX is case-insensitive: one spelling on the wire and in the cache. */
static const char *mbox_norm(const char *s)
{
    return str_ieq(s, "INBOX") ? "INBOX" : s;
}

/* An astring: atom when possible, else quoted, else a literal. */
static void cmd_astring(cmd_t *cmd, const char *s)
{
    apr_size_t n = strlen(s), i;
    int is_atom = n > 0, quotable = n < 1024;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!is_atom_char(ch)) {
            is_atom = 0;
        }
        if (ch == '\r' || ch == '\n' || ch >= 0x80) {
            quotable = 0;
        }
    }
    if (is_atom) {
        cmd_add(cmd, s);
    }
    else if (quotable) {
        memds_buf_addc(&cmd->b, '"');
        for (i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\') {
                memds_buf_addc(&cmd->b, '\\');
            }
            memds_buf_addc(&cmd->b, s[i]);
        }
        memds_buf_addc(&cmd->b, '"');
    }
    else {
        cmd_literal(cmd, s, n);
    }
}

/* Send the command and read up to its tagged response. */
static apr_status_t cmd_exec(cmd_t *cmd, memds_imap_resp_cb *cb, void *baton,
                             const memds_imap_resp_t **ptagged,
                             memds_imap_err_t *err)
{
    memds_imap_conn_t *c = cmd->c;
    memds_imap_resp_t *r, *tagged = NULL;
    apr_status_t rv = APR_SUCCESS;
    int i;

    cmd_add(cmd, "\r\n");
    cmd_piece(cmd, cmd->b.data, cmd->b.len, 0);
    if (c->broken) {
        return fail(c, err, c->bye ? MEMDS_IMAP_E_BYE : MEMDS_IMAP_E_IO,
                    APR_ECONNABORTED,
                    "IMAP connection unusable after an earlier failure");
    }
    c->cb = cb;
    c->baton = baton;
    c->cb_rv = c->chunk_rv = APR_SUCCESS;
    c->chunk_total = 0;
    c->copyuid = NULL;
    c->proto_err = NULL;
    memds_logf(&c->log, MEMDS_LOG_DEBUG, 0, "imap: %s %s", c->tag, c->verb);

    for (i = 0; i < cmd->pieces->nelts && tagged == NULL; i++) {
        const piece_t *pc = &APR_ARRAY_IDX(cmd->pieces, i, piece_t);
        while (pc->sync) {
            if ((rv = next_response(c, &r, err)) != APR_SUCCESS) {
                goto done;
            }
            if (r == NULL) {
                continue;
            }
            if (r->type == MEMDS_IMAP_RESP_CONT) {
                break;
            }
            if (r->type == MEMDS_IMAP_RESP_TAGGED) {
                tagged = r; /* refused before the literal was sent */
                break;
            }
            handle_untagged(c, r);
        }
        if (tagged) {
            break;
        }
        if ((rv = send_all(c, pc->data, pc->len, err)) != APR_SUCCESS) {
            goto done;
        }
    }
    while (tagged == NULL) {
        if ((rv = next_response(c, &r, err)) != APR_SUCCESS) {
            goto done;
        }
        if (r == NULL) {
            continue;
        }
        if (r->type == MEMDS_IMAP_RESP_TAGGED) {
            tagged = r;
        }
        else if (r->type == MEMDS_IMAP_RESP_CONT) {
            rv = broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                       "unexpected IMAP continuation request to %s", c->verb);
            goto done;
        }
        else {
            handle_untagged(c, r);
        }
    }
    if (ptagged) {
        *ptagged = tagged;
    }
    if (tagged->cond == MEMDS_IMAP_OK) {
        apply_code(c, &tagged->code);
    }
    if (tagged->cond != MEMDS_IMAP_OK) {
        rv = fail(c, err, tagged->cond == MEMDS_IMAP_NO ? MEMDS_IMAP_E_NO
                                                        : MEMDS_IMAP_E_BAD,
                  APR_EGENERAL, "IMAP %s: %s %s%s%s%s", c->verb,
                  tagged->cond == MEMDS_IMAP_NO ? "NO" : "BAD",
                  tagged->code.name ? "[" : "",
                  tagged->code.name ? tagged->code.name : "",
                  tagged->code.name ? "] " : "", tagged->text);
        err->code = tagged->code.code;
        memds_logf(&c->log, MEMDS_LOG_DEBUG, 0, "%s", err->msg);
    }
    else if (c->cb_rv != APR_SUCCESS || c->chunk_rv != APR_SUCCESS) {
        rv = fail(c, err, MEMDS_IMAP_E_CALLBACK,
                  c->cb_rv != APR_SUCCESS ? c->cb_rv : c->chunk_rv,
                  "IMAP %s: a callback refused the data", c->verb);
    }
    else if (c->proto_err) {
        rv = fail(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL, "IMAP %s: %s",
                  c->verb, c->proto_err);
    }
done:
    c->cb = NULL;
    c->baton = NULL;
    c->chunk_cb = NULL;
    c->chunk_baton = NULL;
    return rv;
}

static void err_init(memds_imap_err_t *err)
{
    memset(err, 0, sizeof(*err));
}

#define ERR_ARG(err) memds_imap_err_t err_local_; \
    if ((err) == NULL) { (err) = &err_local_; } \
    err_init(err)

/* ---- argument checks (our commands never carry CR/LF or a stray tag) */

static int line_ok(const char *s)
{
    return s != NULL && *s != '\0' && strpbrk(s, "\r\n") == NULL;
}

/* sequence-set: (nz-number / "*") [":" ...] *("," ...), or "$" */
static int seqset_ok(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    if (!strcmp(s, "$")) {
        return 1;
    }
    for (;;) {
        int k;
        for (k = 0; k < 2; k++) {
            if (*s == '*') {
                s++;
            }
            else if (*s >= '1' && *s <= '9') {
                apr_uint64_t v = 0;
                while (is_digit((unsigned char)*s)) {
                    v = v * 10 + (apr_uint64_t)(*s++ - '0');
                    if (v > 0xFFFFFFFFu) {
                        return 0;
                    }
                }
            }
            else {
                return 0;
            }
            if (k == 0 && *s == ':') {
                s++;
                continue;
            }
            break;
        }
        if (*s == '\0') {
            return 1;
        }
        if (*s++ != ',') {
            return 0;
        }
    }
}

/* Space-separated flags: "\" atom or atom. */
static int flags_ok(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (;;) {
        const char *b;
        if (*s == '\\') {
            s++;
        }
        b = s;
        while (is_atom_char((unsigned char)*s)) {
            s++;
        }
        if (s == b) {
            return 0;
        }
        if (*s == '\0') {
            return 1;
        }
        if (*s++ != ' ') {
            return 0;
        }
    }
}

/* FETCH items that would set \Seen: BODY[, BINARY[, RFC822, RFC822.TEXT. */
static int sets_seen(const char *s)
{
    apr_size_t i, n = strlen(s);

    for (i = 0; i < n; i++) {
        int start = i == 0 || s[i - 1] == ' ' || s[i - 1] == '(';
        if (!start) {
            continue;
        }
        if ((n - i >= 5 && tok_eq(s + i, 5, "BODY["))
            || (n - i >= 7 && tok_eq(s + i, 7, "BINARY["))
            || (n - i >= 11 && tok_eq(s + i, 11, "RFC822.TEXT"))) {
            return 1;
        }
        if (n - i >= 6 && tok_eq(s + i, 6, "RFC822")
            && (n - i == 6 || s[i + 6] == ' ' || s[i + 6] == ')')) {
            return 1;
        }
    }
    return 0;
}

static int section_ok(const char *s, int binary, apr_pool_t *p)
{
    pctx_t x;
    const char *sec, *b;

    if (s == NULL || strpbrk(s, "\r\n]") != NULL) {
        return 0;
    }
    b = apr_pstrcat(p, "[", s, "]", NULL);
    memset(&x, 0, sizeof(x));
    x.buf = x.p = b;
    x.end = b + strlen(b);
    x.pool = p;
    return section_spec(&x, &sec, binary) == APR_SUCCESS && x.p == x.end;
}

static apr_status_t need_selected(memds_imap_conn_t *c, memds_imap_err_t *err,
                                  const char *verb)
{
    if (!c->selected) {
        c->verb = verb;
        return fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                    "IMAP %s needs a selected mailbox", verb);
    }
    return APR_SUCCESS;
}

static apr_status_t bad_arg(memds_imap_conn_t *c, memds_imap_err_t *err,
                            const char *verb, const char *what)
{
    c->verb = verb;
    return fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL, "IMAP %s: invalid %s",
                verb, what);
}

static apr_status_t unsupported(memds_imap_conn_t *c, memds_imap_err_t *err,
                                const char *verb, const char *what)
{
    c->verb = verb;
    return fail(c, err, MEMDS_IMAP_E_UNSUPPORTED, APR_ENOTIMPL,
                "IMAP %s: the server does not offer %s", verb, what);
}

/* ---- connection setup */

apr_status_t memds_imap_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? APR_SUCCESS
                                                             : APR_EGENERAL;
}

void memds_imap_global_cleanup(void)
{
    curl_global_cleanup();
}

static apr_status_t conn_cleanup(void *data)
{
    memds_imap_conn_t *c = data;

    if (c->cio.h) {
        curl_easy_cleanup(c->cio.h);
        c->cio.h = NULL;
    }
    return APR_SUCCESS;
}

static memds_imap_conn_t *conn_new(const memds_imap_config_t *cfg, apr_pool_t *p)
{
    apr_pool_t *cp;
    memds_imap_conn_t *c;

    apr_pool_create(&cp, p);
    apr_pool_tag(cp, "memds_imap_conn");
    c = apr_pcalloc(cp, sizeof(*c));
    c->pool = cp;
    apr_pool_create(&c->rpool, cp);
    apr_pool_create(&c->cpool, cp);
    apr_pool_create(&c->selpool, cp);
    apr_pool_create(&c->cappool, cp);
    apr_pool_tag(c->rpool, "memds_imap_response");
    apr_pool_tag(c->cpool, "memds_imap_command");
    c->io_timeout_ms = cfg && cfg->io_timeout_ms > 0 ? cfg->io_timeout_ms : 60000;
    c->max_response = cfg && cfg->max_response > 0 ? cfg->max_response
                      : MEMDS_IMAP_DEFAULT_MAX_RESPONSE;
    if (cfg && cfg->log) {
        c->log = *cfg->log;
    }
    c->verb = "LOGIN";
    apr_pool_cleanup_register(cp, c, conn_cleanup, apr_pool_cleanup_null);
    return c;
}

/* CAPABILITY, then ENABLE QRESYNC when offered (a refusal is not fatal). */
static apr_status_t post_login(memds_imap_conn_t *c, int no_qresync,
                               memds_imap_err_t *err)
{
    cmd_t cmd;
    apr_status_t rv;

    cmd_start(c, &cmd, "CAPABILITY");
    TRY(cmd_exec(&cmd, NULL, NULL, NULL, err));
    if ((c->caps & MEMDS_IMAP_CAP_QRESYNC) && (c->caps & MEMDS_IMAP_CAP_ENABLE)
        && !no_qresync) {
        cmd_start(c, &cmd, "ENABLE QRESYNC");
        rv = cmd_exec(&cmd, NULL, NULL, NULL, err);
        if (rv != APR_SUCCESS) {
            if (err->kind != MEMDS_IMAP_E_NO && err->kind != MEMDS_IMAP_E_BAD) {
                return rv;
            }
            err_init(err);
        }
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_open_io(memds_imap_conn_t **pconn,
                                const memds_imap_io_t *io,
                                const memds_imap_config_t *cfg,
                                memds_imap_err_t *err, apr_pool_t *p)
{
    memds_imap_conn_t *c;
    apr_status_t rv;
    ERR_ARG(err);

    c = conn_new(cfg, p);
    c->io = *io;
    rv = post_login(c, cfg ? cfg->no_qresync : 0, err);
    if (rv != APR_SUCCESS) {
        /* the message lives in c->pool: keep a copy in p */
        err->msg = apr_pstrdup(p, err->msg);
        apr_pool_destroy(c->pool);
        return rv;
    }
    *pconn = c;
    return APR_SUCCESS;
}

static memds_imap_ekind_e curl_kind(CURLcode rc)
{
    switch (rc) {
    case CURLE_LOGIN_DENIED:
        return MEMDS_IMAP_E_AUTH;
    case CURLE_OPERATION_TIMEDOUT:
        return MEMDS_IMAP_E_TIMEOUT;
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return MEMDS_IMAP_E_TLS;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return MEMDS_IMAP_E_ARG;
    default:
        return MEMDS_IMAP_E_CONNECT;
    }
}

static int mech_ok(const char *m)
{
    for (; *m; m++) {
        if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z')
              || is_digit((unsigned char)*m) || *m == '-' || *m == '_')) {
            return 0;
        }
    }
    return 1;
}

apr_status_t memds_imap_connect(memds_imap_conn_t **pconn,
                                const memds_imap_config_t *cfg,
                                memds_imap_err_t *err, apr_pool_t *p)
{
    memds_imap_conn_t *c;
    CURL *h;
    CURLcode rc;
    curl_socket_t sock = CURL_SOCKET_BAD;
    long cto;
    const char *mech;
    apr_status_t rv;
    ERR_ARG(err);

    c = conn_new(cfg, p);
    if (cfg == NULL || cfg->url == NULL || cfg->user == NULL
        || strchr(cfg->url, '@') != NULL
        || (strncmp(cfg->url, "imap://", 7) != 0
            && strncmp(cfg->url, "imaps://", 8) != 0)) {
        rv = fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL, "IMAP connect: the "
                  "URL must be imap://host[:port] or imaps://host[:port] "
                  "without credentials, and a user is needed");
        goto failed;
    }
    mech = cfg->authzid ? "PLAIN" : cfg->mech;
    if (mech && !mech_ok(mech)) {
        rv = fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                  "IMAP connect: invalid SASL mechanism name");
        goto failed;
    }
    if ((h = curl_easy_init()) == NULL) {
        rv = fail(c, err, MEMDS_IMAP_E_CONNECT, APR_ENOMEM,
                  "IMAP connect: curl_easy_init failed");
        goto failed;
    }
    c->cio.h = h;
    cto = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 30000;
    curl_easy_setopt(h, CURLOPT_URL, cfg->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "imap,imaps");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_IMAP | CURLPROTO_IMAPS));
#endif
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cto);
    /* the whole connect + TLS + login */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, cto + c->io_timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_USERNAME, cfg->user);
    if (cfg->password) {
        curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->password);
    }
    if (cfg->bearer) {
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, cfg->bearer);
    }
    if (mech) {
        curl_easy_setopt(h, CURLOPT_LOGIN_OPTIONS,
                         apr_pstrcat(c->pool, "AUTH=", mech, NULL));
    }
    if (cfg->authzid) {
        curl_easy_setopt(h, CURLOPT_SASL_AUTHZID, cfg->authzid);
    }
    if (cfg->starttls) {
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    }
    if (cfg->tls_no_verify) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cfg->ca_file) {
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
    }
    rc = curl_easy_perform(h);
    /* the secrets are needed no more: drop libcurl's copies; our own waits
     * bound the I/O from now on, not libcurl's transfer timeout */
    curl_easy_setopt(h, CURLOPT_PASSWORD, NULL);
    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, NULL);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
    if (rc != CURLE_OK) {
        const char *detail = memds_scrub_secret(c->pool, memds_scrub_secret(c->pool, c->errbuf,
                                                  cfg->password), cfg->bearer);
        err->curl_code = (int)rc;
        rv = fail(c, err, curl_kind(rc), rc == CURLE_OPERATION_TIMEDOUT
                  ? APR_TIMEUP : APR_EGENERAL,
                  "IMAP %s to %s as %s failed: %s%s%s%s",
                  rc == CURLE_LOGIN_DENIED ? "login" : "connect", cfg->url,
                  cfg->user, curl_easy_strerror(rc),
                  *detail ? " (" : "", detail, *detail ? ")" : "");
        goto failed;
    }
    rc = curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &sock);
    if (rc != CURLE_OK || sock == CURL_SOCKET_BAD) {
        rv = fail(c, err, MEMDS_IMAP_E_CONNECT, APR_EGENERAL,
                  "IMAP connect: no socket from libcurl");
        goto failed;
    }
    c->cio.sock = sock;
    c->cio.timeout_ms = c->io_timeout_ms;
    c->io.recv = curl_recv_cb;
    c->io.send = curl_send_cb;
    c->io.baton = &c->cio;
    rv = post_login(c, cfg->no_qresync, err);
    if (rv != APR_SUCCESS) {
        goto failed;
    }
    memds_logf(&c->log, MEMDS_LOG_DEBUG, 0, "imap: logged in to %s as %s%s%s",
               cfg->url, cfg->user, cfg->authzid ? " for " : "",
               cfg->authzid ? cfg->authzid : "");
    *pconn = c;
    return APR_SUCCESS;
failed:
    err->msg = apr_pstrdup(p, err->msg);
    apr_pool_destroy(c->pool);
    return rv;
}

void memds_imap_close(memds_imap_conn_t *c)
{
    cmd_t cmd;
    memds_imap_err_t err;

    if (c == NULL) {
        return;
    }
    if (!c->broken) {
        c->io_timeout_ms = c->io_timeout_ms > 5000 ? 5000 : c->io_timeout_ms;
        c->cio.timeout_ms = c->io_timeout_ms;
        err_init(&err);
        cmd_start(c, &cmd, "LOGOUT");
        (void)cmd_exec(&cmd, NULL, NULL, NULL, &err);
    }
    apr_pool_destroy(c->pool);
}

unsigned memds_imap_caps(const memds_imap_conn_t *c)
{
    return c->caps;
}

int memds_imap_has_cap(const memds_imap_conn_t *c, const char *name)
{
    int i;

    for (i = 0; c->capnames && i < c->capnames->nelts; i++) {
        if (str_ieq(APR_ARRAY_IDX(c->capnames, i, const char *), name)) {
            return 1;
        }
    }
    return 0;
}

int memds_imap_qresync(const memds_imap_conn_t *c)
{
    return c->qresync;
}

int memds_imap_broken(const memds_imap_conn_t *c)
{
    return c->broken;
}

/* ================================================= (6) the commands */

apr_status_t memds_imap_select(memds_imap_conn_t *c, const char *mailbox,
                               unsigned flags, const memds_imap_qresync_t *qr,
                               memds_imap_resp_cb *cb, void *baton,
                               const memds_imap_mailbox_t **pmbox,
                               memds_imap_err_t *err)
{
    int ro = (flags & MEMDS_IMAP_SEL_READONLY) != 0;
    int cs = (flags & MEMDS_IMAP_SEL_CONDSTORE) != 0;
    const char *verb = ro ? "EXAMINE" : "SELECT";
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    if (mailbox == NULL || *mailbox == '\0') {
        return bad_arg(c, err, verb, "mailbox name");
    }
    mailbox = mbox_norm(mailbox);
    if (qr && !c->qresync) {
        return unsupported(c, err, verb, "QRESYNC (or it is not enabled)");
    }
    if (qr && (qr->uidvalidity == 0 || qr->modseq == 0
               || (qr->known_uids && !seqset_ok(qr->known_uids)))) {
        return bad_arg(c, err, verb, "QRESYNC parameters");
    }
    if (cs && !(c->caps & MEMDS_IMAP_CAP_CONDSTORE)) {
        return unsupported(c, err, verb, "CONDSTORE");
    }
    /* connection reuse within a request: no second SELECT of the same box */
    if (!(flags & MEMDS_IMAP_SEL_FORCE) && qr == NULL && c->selected
        && strcmp(c->sel.name, mailbox) == 0 && c->sel.readonly == ro
        && (!cs || c->sel.condstore)) {
        if (pmbox) {
            *pmbox = &c->sel;
        }
        return APR_SUCCESS;
    }
    cmd_start(c, &cmd, verb);
    memds_buf_addc(&cmd.b, ' ');
    cmd_astring(&cmd, mailbox);
    if (qr) {
        cmd_addf(&cmd, " (QRESYNC (%u %" APR_UINT64_T_FMT "%s%s))",
                 (unsigned)qr->uidvalidity, qr->modseq,
                 qr->known_uids ? " " : "", qr->known_uids ? qr->known_uids : "");
    }
    else if (cs) {
        cmd_add(&cmd, " (CONDSTORE)");
    }
    /* any SELECT, even a failing one, ends the previous selection */
    apr_pool_clear(c->selpool);
    memset(&c->sel, 0, sizeof(c->sel));
    c->sel.name = apr_pstrdup(c->selpool, mailbox);
    c->sel.readonly = ro;
    c->sel.condstore = cs || qr != NULL || c->qresync;
    c->selected = 0;
    c->selecting = 1;
    rv = cmd_exec(&cmd, cb, baton, &tagged, err);
    c->selecting = 0;
    c->selected = tagged != NULL && tagged->cond == MEMDS_IMAP_OK;
    if (c->sel.nomodseq) {
        c->sel.condstore = 0;
    }
    if (rv == APR_SUCCESS && pmbox) {
        *pmbox = &c->sel;
    }
    return rv;
}

const memds_imap_mailbox_t *memds_imap_selected(const memds_imap_conn_t *c)
{
    return c->selected ? &c->sel : NULL;
}

apr_status_t memds_imap_unselect(memds_imap_conn_t *c, memds_imap_err_t *err)
{
    cmd_t cmd;
    apr_status_t rv = APR_SUCCESS;
    ERR_ARG(err);

    if (!c->selected) {
        return APR_SUCCESS;
    }
    if (c->caps & MEMDS_IMAP_CAP_UNSELECT) {
        cmd_start(c, &cmd, "UNSELECT");
        rv = cmd_exec(&cmd, NULL, NULL, NULL, err);
    }
    /* without UNSELECT (CLOSE would expunge) the server keeps the box
     * selected; we just stop attributing its updates */
    c->selected = 0;
    return rv;
}

apr_status_t memds_imap_uid_fetch(memds_imap_conn_t *c, const char *uidset,
                                  const char *items, apr_uint64_t changedsince,
                                  unsigned flags, memds_imap_resp_cb *cb,
                                  void *baton, memds_imap_err_t *err)
{
    cmd_t cmd;
    int vanished = (flags & MEMDS_IMAP_FETCH_VANISHED) != 0;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID FETCH"));
    if (!seqset_ok(uidset)) {
        return bad_arg(c, err, "UID FETCH", "UID set");
    }
    if (!line_ok(items)) {
        return bad_arg(c, err, "UID FETCH", "item list");
    }
    if (sets_seen(items)) {
        return bad_arg(c, err, "UID FETCH",
                       "item list: it would set \\Seen (use BODY.PEEK)");
    }
    if (vanished && (!c->qresync || changedsince == 0)) {
        return c->qresync ? bad_arg(c, err, "UID FETCH", "VANISHED without "
                                    "CHANGEDSINCE")
                          : unsupported(c, err, "UID FETCH", "QRESYNC");
    }
    if (changedsince && !(c->caps & MEMDS_IMAP_CAP_CONDSTORE)) {
        return unsupported(c, err, "UID FETCH", "CONDSTORE");
    }
    cmd_start(c, &cmd, "UID FETCH");
    cmd_addf(&cmd, " %s ", uidset);
    if (items[0] != '(' && strchr(items, ' ') != NULL) {
        cmd_addf(&cmd, "(%s)", items);
    }
    else {
        cmd_add(&cmd, items);
    }
    if (changedsince) {
        cmd_addf(&cmd, " (CHANGEDSINCE %" APR_UINT64_T_FMT "%s)", changedsince,
                 vanished ? " VANISHED" : "");
    }
    return cmd_exec(&cmd, cb, baton, NULL, err);
}

typedef struct body_baton_t {
    memds_imap_conn_t *c;
    apr_uint32_t uid;
    memds_imap_chunk_cb *cb;
    void *baton;
    int found;
    memds_imap_body_info_t info;
} body_baton_t;

static apr_status_t body_resp(void *baton, const memds_imap_resp_t *r)
{
    body_baton_t *bb = baton;
    int i;

    if (r->type != MEMDS_IMAP_RESP_FETCH || r->fetch->sections->nelts == 0
        || ((r->fetch->have & MEMDS_IMAP_F_UID) && r->fetch->uid != bb->uid)) {
        return APR_SUCCESS; /* unsolicited flag updates and the like */
    }
    bb->found = 1;
    for (i = 0; i < r->fetch->sections->nelts; i++) {
        const memds_imap_section_t *s =
            &APR_ARRAY_IDX(r->fetch->sections, i, memds_imap_section_t);
        if (s->data == NULL) {
            bb->info.nil = 1;
        }
        else if (!s->streamed && s->len > 0) {
            /* a quoted string or a literal that was not streamed */
            TRY(bb->cb(bb->baton, bb->info.len, s->data, s->len));
            bb->info.len += s->len;
        }
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_fetch_body(memds_imap_conn_t *c, apr_uint32_t uid,
                                   const char *section, apr_uint64_t origin,
                                   apr_uint64_t length, unsigned flags,
                                   memds_imap_chunk_cb *cb, void *baton,
                                   memds_imap_body_info_t *info,
                                   memds_imap_err_t *err)
{
    int bin = (flags & MEMDS_IMAP_BODY_BINARY) != 0;
    body_baton_t bb;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID FETCH"));
    if (section == NULL) {
        section = "";
    }
    if (uid == 0 || cb == NULL || !section_ok(section, bin, c->cpool)
        || length > 0xFFFFFFFFu || origin > 0xFFFFFFFFu) {
        return bad_arg(c, err, "UID FETCH", "body section, range or callback");
    }
    if (bin && !(c->caps & MEMDS_IMAP_CAP_BINARY)) {
        return unsupported(c, err, "UID FETCH", "BINARY");
    }
    memset(&bb, 0, sizeof(bb));
    bb.c = c;
    bb.uid = uid;
    bb.cb = cb;
    bb.baton = baton;
    cmd_start(c, &cmd, "UID FETCH");
    cmd_addf(&cmd, " %u (UID %s[%s]", (unsigned)uid,
             bin ? "BINARY.PEEK" : "BODY.PEEK", section);
    if (origin > 0 || length > 0) {
        cmd_addf(&cmd, "<%" APR_UINT64_T_FMT ".%" APR_UINT64_T_FMT ">", origin,
                 length > 0 ? length : APR_UINT64_C(4294967295));
    }
    cmd_add(&cmd, ")");
    c->chunk_cb = cb;
    c->chunk_baton = baton;
    rv = cmd_exec(&cmd, body_resp, &bb, NULL, err);
    if (rv == APR_SUCCESS && !bb.found) {
        rv = fail(c, err, MEMDS_IMAP_E_NOTFOUND, APR_NOTFOUND,
                  "IMAP UID FETCH: message UID %u not found", (unsigned)uid);
    }
    bb.info.len += c->chunk_total;
    if (info) {
        *info = bb.info;
    }
    return rv;
}

apr_status_t memds_imap_uid_store(memds_imap_conn_t *c, const char *uidset,
                                  char op, const char *flags, int silent,
                                  apr_uint64_t unchangedsince,
                                  memds_imap_resp_cb *cb, void *baton,
                                  memds_imap_set_t **pmodified,
                                  memds_imap_err_t *err, apr_pool_t *p)
{
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    if (pmodified) {
        *pmodified = NULL;
    }
    TRY(need_selected(c, err, "UID STORE"));
    if (!seqset_ok(uidset) || (op != '+' && op != '-' && op != '=')
        || !flags_ok(flags)) {
        return bad_arg(c, err, "UID STORE", "UID set, operation or flags");
    }
    if (unchangedsince && !(c->caps & MEMDS_IMAP_CAP_CONDSTORE)) {
        return unsupported(c, err, "UID STORE", "CONDSTORE");
    }
    cmd_start(c, &cmd, "UID STORE");
    cmd_addf(&cmd, " %s ", uidset);
    if (unchangedsince) {
        cmd_addf(&cmd, "(UNCHANGEDSINCE %" APR_UINT64_T_FMT ") ", unchangedsince);
    }
    cmd_addf(&cmd, "%sFLAGS%s (%s)", op == '=' ? "" : op == '+' ? "+" : "-",
             silent ? ".SILENT" : "", flags);
    rv = cmd_exec(&cmd, cb, baton, &tagged, err);
    if (rv == APR_SUCCESS && pmodified
        && tagged->code.code == MEMDS_IMAP_CODE_MODIFIED) {
        *pmodified = copy_set(tagged->code.uids, p);
    }
    return rv;
}

typedef struct search_baton_t {
    memds_imap_conn_t *c;
    apr_pool_t *p;
    apr_array_header_t *uids;   /* SEARCH results */
    memds_imap_search_t *es;    /* ESEARCH result */
    apr_uint64_t modseq;
} search_baton_t;

static apr_status_t search_resp(void *baton, const memds_imap_resp_t *r)
{
    search_baton_t *sb = baton;
    int i, j;

    if (r->type == MEMDS_IMAP_RESP_SEARCH) {
        const memds_imap_set_t *s = r->search->all;
        for (i = 0; i < s->nranges; i++) {
            for (j = 0; (apr_uint64_t)j <= (apr_uint64_t)s->ranges[i].hi
                                              - s->ranges[i].lo; j++) {
                *(apr_uint32_t *)apr_array_push(sb->uids) =
                    s->ranges[i].lo + (apr_uint32_t)j;
            }
        }
        if (r->search->have & MEMDS_IMAP_SR_MODSEQ) {
            sb->modseq = r->search->modseq;
        }
    }
    else if (r->type == MEMDS_IMAP_RESP_ESEARCH
             && (r->search->tag == NULL || !strcmp(r->search->tag, sb->c->tag))) {
        sb->es = apr_pmemdup(sb->p, r->search, sizeof(*r->search));
        sb->es->tag = NULL;
        sb->es->all = copy_set(r->search->all, sb->p);
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_uid_search(memds_imap_conn_t *c, const char *criteria,
                                   memds_imap_search_t **presult,
                                   memds_imap_err_t *err, apr_pool_t *p)
{
    search_baton_t sb;
    memds_imap_search_t *res;
    cmd_t cmd;
    int es = (c->caps & MEMDS_IMAP_CAP_ESEARCH) != 0;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID SEARCH"));
    if (!line_ok(criteria)) {
        return bad_arg(c, err, "UID SEARCH", "criteria");
    }
    memset(&sb, 0, sizeof(sb));
    sb.c = c;
    sb.p = p;
    sb.uids = apr_array_make(p, 64, sizeof(apr_uint32_t));
    cmd_start(c, &cmd, "UID SEARCH");
    cmd_addf(&cmd, "%s %s", es ? " RETURN (ALL)" : "", criteria);
    TRY(cmd_exec(&cmd, search_resp, &sb, NULL, err));
    if (sb.es) {
        res = sb.es;
        res->count = (apr_uint32_t)memds_imap_set_count(res->all);
        res->have |= MEMDS_IMAP_SR_COUNT | MEMDS_IMAP_SR_ALL;
    }
    else {
        res = apr_pcalloc(p, sizeof(*res));
        res->uid = 1;
        res->all = set_from_numbers((const apr_uint32_t *)sb.uids->elts,
                                    sb.uids->nelts, p);
        res->count = (apr_uint32_t)memds_imap_set_count(res->all);
        res->have = MEMDS_IMAP_SR_ALL | MEMDS_IMAP_SR_COUNT;
        if (sb.modseq) {
            res->modseq = sb.modseq;
            res->have |= MEMDS_IMAP_SR_MODSEQ;
        }
    }
    if (res->all->nranges > 0) {
        res->min = res->all->ranges[0].lo;
        res->max = res->all->ranges[res->all->nranges - 1].hi;
        res->have |= MEMDS_IMAP_SR_MIN | MEMDS_IMAP_SR_MAX;
    }
    *presult = res;
    return APR_SUCCESS;
}

static memds_imap_status_t *copy_status(const memds_imap_status_t *s,
                                        apr_pool_t *p)
{
    memds_imap_status_t *o = apr_pmemdup(p, s, sizeof(*s));

    o->mailbox = apr_pstrdup(p, s->mailbox);
    o->xguid = s->xguid ? apr_pstrdup(p, s->xguid) : NULL;
    return o;
}

typedef struct list_baton_t {
    apr_pool_t *p;
    apr_array_header_t *boxes;     /* memds_imap_list_t * */
    apr_array_header_t *statuses;  /* memds_imap_status_t * */
} list_baton_t;

static apr_status_t list_resp(void *baton, const memds_imap_resp_t *r)
{
    list_baton_t *lb = baton;

    if (r->type == MEMDS_IMAP_RESP_LIST) {
        memds_imap_list_t *l = apr_pmemdup(lb->p, r->mbox, sizeof(*r->mbox));
        l->name = apr_pstrdup(lb->p, r->mbox->name);
        l->name_utf8 = r->mbox->name_utf8 ? apr_pstrdup(lb->p, r->mbox->name_utf8)
                                          : NULL;
        l->attr_names = copy_strs(r->mbox->attr_names, lb->p);
        l->status = NULL;
        *(memds_imap_list_t **)apr_array_push(lb->boxes) = l;
    }
    else if (r->type == MEMDS_IMAP_RESP_STATUS) {
        *(memds_imap_status_t **)apr_array_push(lb->statuses) =
            copy_status(r->status, lb->p);
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_list(memds_imap_conn_t *c, const char *status_items,
                             apr_array_header_t **pboxes,
                             memds_imap_err_t *err, apr_pool_t *p)
{
    list_baton_t lb;
    cmd_t cmd;
    int su = (c->caps & MEMDS_IMAP_CAP_SPECIAL_USE) != 0;
    int ls = status_items && (c->caps & MEMDS_IMAP_CAP_LIST_STATUS);
    int i, j;
    apr_status_t rv;
    ERR_ARG(err);

    if (status_items && !line_ok(status_items)) {
        return bad_arg(c, err, "LIST", "status items");
    }
    memset(&lb, 0, sizeof(lb));
    lb.p = p;
    lb.boxes = apr_array_make(p, 16, sizeof(memds_imap_list_t *));
    lb.statuses = apr_array_make(p, 16, sizeof(memds_imap_status_t *));
    cmd_start(c, &cmd, "LIST");
    cmd_add(&cmd, " \"\" \"*\"");
    if (su || ls) {
        cmd_addf(&cmd, " RETURN (%s%s%s%s%s)", su ? "SPECIAL-USE" : "",
                 su && ls ? " " : "", ls ? "STATUS (" : "",
                 ls ? status_items : "", ls ? ")" : "");
    }
    rv = cmd_exec(&cmd, list_resp, &lb, NULL, err);
    if (rv != APR_SUCCESS && (su || ls) && err->kind == MEMDS_IMAP_E_BAD) {
        /* the server does not take LIST-EXTENDED after all: plain LIST */
        err_init(err);
        ls = 0;
        apr_array_clear(lb.boxes);
        apr_array_clear(lb.statuses);
        cmd_start(c, &cmd, "LIST");
        cmd_add(&cmd, " \"\" \"*\"");
        rv = cmd_exec(&cmd, list_resp, &lb, NULL, err);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < lb.boxes->nelts; i++) {
        memds_imap_list_t *l = APR_ARRAY_IDX(lb.boxes, i, memds_imap_list_t *);
        for (j = 0; j < lb.statuses->nelts; j++) {
            memds_imap_status_t *st = APR_ARRAY_IDX(lb.statuses, j,
                                                    memds_imap_status_t *);
            if (!strcmp(st->mailbox, l->name)) {
                l->status = st;
            }
        }
        if (status_items && !ls && l->status == NULL
            && !(l->attrs & (MEMDS_IMAP_MBX_NOSELECT | MEMDS_IMAP_MBX_NONEXISTENT))) {
            rv = memds_imap_status(c, l->name, status_items, &l->status, err, p);
            if (rv != APR_SUCCESS) {
                if (err->kind != MEMDS_IMAP_E_NO) {
                    return rv;
                }
                err_init(err); /* deleted meanwhile: no status */
            }
        }
    }
    *pboxes = lb.boxes;
    return APR_SUCCESS;
}

typedef struct status_baton_t {
    apr_pool_t *p;
    const char *name;
    memds_imap_status_t *match, *any;
    int n;
} status_baton_t;

static apr_status_t status_resp(void *baton, const memds_imap_resp_t *r)
{
    status_baton_t *sb = baton;

    if (r->type == MEMDS_IMAP_RESP_STATUS) {
        memds_imap_status_t *st = copy_status(r->status, sb->p);
        sb->n++;
        sb->any = st;
        if (!strcmp(st->mailbox, sb->name)) {
            sb->match = st;
        }
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_status(memds_imap_conn_t *c, const char *mailbox,
                               const char *items, memds_imap_status_t **pst,
                               memds_imap_err_t *err, apr_pool_t *p)
{
    status_baton_t sb;
    cmd_t cmd;
    ERR_ARG(err);

    if (mailbox == NULL || *mailbox == '\0' || (items && !line_ok(items))) {
        return bad_arg(c, err, "STATUS", "mailbox or items");
    }
    if (items == NULL) {
        items = (c->caps & MEMDS_IMAP_CAP_CONDSTORE)
                ? "MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ"
                : "MESSAGES UIDNEXT UIDVALIDITY UNSEEN";
    }
    memset(&sb, 0, sizeof(sb));
    sb.p = p;
    sb.name = mailbox = mbox_norm(mailbox);
    cmd_start(c, &cmd, "STATUS");
    memds_buf_addc(&cmd.b, ' ');
    cmd_astring(&cmd, mailbox);
    cmd_addf(&cmd, " (%s)", items);
    TRY(cmd_exec(&cmd, status_resp, &sb, NULL, err));
    if (sb.match == NULL && sb.n != 1) {
        return fail(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                    "IMAP STATUS: no STATUS response for the mailbox");
    }
    *pst = sb.match ? sb.match : sb.any;
    return APR_SUCCESS;
}

apr_status_t memds_imap_append(memds_imap_conn_t *c, const char *mailbox,
                               const char *flags, apr_time_t internaldate,
                               const char *msg, apr_size_t len,
                               apr_uint32_t *puidvalidity, apr_uint32_t *puid,
                               memds_imap_err_t *err)
{
    static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    if (puidvalidity) {
        *puidvalidity = 0;
    }
    if (puid) {
        *puid = 0;
    }
    if (mailbox == NULL || *mailbox == '\0' || (flags && *flags && !flags_ok(flags))
        || (msg == NULL && len > 0) || len > 0xFFFFFFFFu) {
        return bad_arg(c, err, "APPEND", "mailbox, flags or message");
    }
    cmd_start(c, &cmd, "APPEND");
    memds_buf_addc(&cmd.b, ' ');
    cmd_astring(&cmd, mbox_norm(mailbox));
    if (flags && *flags) {
        cmd_addf(&cmd, " (%s)", flags);
    }
    if (internaldate > 0) {
        apr_time_exp_t tm;
        apr_time_exp_gmt(&tm, internaldate);
        cmd_addf(&cmd, " \"%2d-%s-%04d %02d:%02d:%02d +0000\"", tm.tm_mday,
                 mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
    }
    memds_buf_addc(&cmd.b, ' ');
    cmd_literal(&cmd, msg ? msg : "", len);
    rv = cmd_exec(&cmd, NULL, NULL, &tagged, err);
    if (rv == APR_SUCCESS && tagged->code.code == MEMDS_IMAP_CODE_APPENDUID) {
        if (puidvalidity) {
            *puidvalidity = tagged->code.uidvalidity;
        }
        if (puid) {
            *puid = tagged->code.number;
        }
    }
    return rv;
}

static memds_imap_copyuid_t *copy_cu(const memds_imap_copyuid_t *cu,
                                     apr_pool_t *p)
{
    memds_imap_copyuid_t *o = apr_pcalloc(p, sizeof(*o));

    o->uidvalidity = cu->uidvalidity;
    o->src = copy_set(cu->src, p);
    o->dst = copy_set(cu->dst, p);
    return o;
}

static memds_imap_copyuid_t *tagged_cu(const memds_imap_resp_t *t, apr_pool_t *p)
{
    memds_imap_copyuid_t cu;

    if (t == NULL || t->code.code != MEMDS_IMAP_CODE_COPYUID) {
        return NULL;
    }
    cu.uidvalidity = t->code.uidvalidity;
    cu.src = t->code.uids;
    cu.dst = t->code.uids2;
    return copy_cu(&cu, p);
}

apr_status_t memds_imap_uid_copy(memds_imap_conn_t *c, const char *uidset,
                                 const char *dest, memds_imap_copyuid_t **pcu,
                                 memds_imap_err_t *err, apr_pool_t *p)
{
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    ERR_ARG(err);

    if (pcu) {
        *pcu = NULL;
    }
    TRY(need_selected(c, err, "UID COPY"));
    if (!seqset_ok(uidset) || dest == NULL || *dest == '\0') {
        return bad_arg(c, err, "UID COPY", "UID set or mailbox");
    }
    cmd_start(c, &cmd, "UID COPY");
    cmd_addf(&cmd, " %s ", uidset);
    cmd_astring(&cmd, mbox_norm(dest));
    TRY(cmd_exec(&cmd, NULL, NULL, &tagged, err));
    if (pcu) {
        *pcu = tagged_cu(tagged, p);
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_uid_expunge(memds_imap_conn_t *c, const char *uidset,
                                    memds_imap_resp_cb *cb, void *baton,
                                    memds_imap_err_t *err)
{
    cmd_t cmd;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID EXPUNGE"));
    if (!seqset_ok(uidset)) {
        return bad_arg(c, err, "UID EXPUNGE", "UID set");
    }
    if (!(c->caps & MEMDS_IMAP_CAP_UIDPLUS)) {
        return unsupported(c, err, "UID EXPUNGE", "UIDPLUS");
    }
    cmd_start(c, &cmd, "UID EXPUNGE");
    cmd_addf(&cmd, " %s", uidset);
    return cmd_exec(&cmd, cb, baton, NULL, err);
}

apr_status_t memds_imap_uid_move(memds_imap_conn_t *c, const char *uidset,
                                 const char *dest, memds_imap_resp_cb *cb,
                                 void *baton, memds_imap_copyuid_t **pcu,
                                 memds_imap_err_t *err, apr_pool_t *p)
{
    const memds_imap_resp_t *tagged = NULL;
    memds_imap_copyuid_t *cu = NULL;
    cmd_t cmd;
    ERR_ARG(err);

    if (pcu) {
        *pcu = NULL;
    }
    TRY(need_selected(c, err, "UID MOVE"));
    if (!seqset_ok(uidset) || dest == NULL || *dest == '\0') {
        return bad_arg(c, err, "UID MOVE", "UID set or mailbox");
    }
    if (c->caps & MEMDS_IMAP_CAP_MOVE) {
        cmd_start(c, &cmd, "UID MOVE");
        cmd_addf(&cmd, " %s ", uidset);
        cmd_astring(&cmd, mbox_norm(dest));
        TRY(cmd_exec(&cmd, cb, baton, &tagged, err));
        /* RFC 6851: COPYUID in an untagged OK before the expunges (some
         * servers put it in the tagged OK) */
        cu = c->copyuid ? copy_cu(c->copyuid, p) : tagged_cu(tagged, p);
    }
    else {
        TRY(memds_imap_uid_copy(c, uidset, dest, &cu, err, p));
        TRY(memds_imap_uid_store(c, uidset, '+', "\\Deleted", 1, 0, cb, baton,
                                 NULL, err, p));
        if (c->caps & MEMDS_IMAP_CAP_UIDPLUS) {
            TRY(memds_imap_uid_expunge(c, uidset, cb, baton, err));
        }
    }
    if (pcu) {
        *pcu = cu;
    }
    return APR_SUCCESS;
}

static apr_status_t mailbox_cmd(memds_imap_conn_t *c, const char *verb,
                                const char *a, const char *b,
                                memds_imap_err_t *err)
{
    cmd_t cmd;

    if (a == NULL || *a == '\0' || (b != NULL && *b == '\0')) {
        return bad_arg(c, err, verb, "mailbox name");
    }
    a = mbox_norm(a);
    b = b ? mbox_norm(b) : NULL;
    cmd_start(c, &cmd, verb);
    memds_buf_addc(&cmd.b, ' ');
    cmd_astring(&cmd, a);
    if (b) {
        memds_buf_addc(&cmd.b, ' ');
        cmd_astring(&cmd, b);
    }
    TRY(cmd_exec(&cmd, NULL, NULL, NULL, err));
    if (c->selected && strcmp(verb, "CREATE") != 0 && !strcmp(c->sel.name, a)) {
        c->selected = 0; /* the selected box is gone or renamed */
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_create(memds_imap_conn_t *c, const char *mailbox,
                               memds_imap_err_t *err)
{
    ERR_ARG(err);
    return mailbox_cmd(c, "CREATE", mailbox, NULL, err);
}

apr_status_t memds_imap_delete(memds_imap_conn_t *c, const char *mailbox,
                               memds_imap_err_t *err)
{
    ERR_ARG(err);
    return mailbox_cmd(c, "DELETE", mailbox, NULL, err);
}

apr_status_t memds_imap_rename(memds_imap_conn_t *c, const char *from,
                               const char *to, memds_imap_err_t *err)
{
    ERR_ARG(err);
    if (to == NULL) {
        return bad_arg(c, err, "RENAME", "mailbox name");
    }
    return mailbox_cmd(c, "RENAME", from, to, err);
}

apr_status_t memds_imap_noop(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                             void *baton, memds_imap_err_t *err)
{
    cmd_t cmd;
    ERR_ARG(err);

    cmd_start(c, &cmd, "NOOP");
    return cmd_exec(&cmd, cb, baton, NULL, err);
}

apr_status_t memds_imap_run(memds_imap_conn_t *c, const char *line,
                            memds_imap_resp_cb *cb, void *baton,
                            const memds_imap_resp_t **ptagged,
                            memds_imap_err_t *err)
{
    cmd_t cmd;
    const char *sp;
    ERR_ARG(err);

    if (!line_ok(line)) {
        return bad_arg(c, err, "(command)", "command line");
    }
    sp = strchr(line, ' ');
    cmd_start(c, &cmd, str_upper(c->pool, line, sp ? (apr_size_t)(sp - line)
                                                   : strlen(line)));
    if (sp) {
        cmd_add(&cmd, sp);
    }
    return cmd_exec(&cmd, cb, baton, ptagged, err);
}

/* ============================================= (7) status mapping */

memds_imap_outcome_t memds_imap_status_of(const memds_imap_err_t *err)
{
    memds_imap_outcome_t o = { 200, "OK" };

    if (err == NULL || err->kind == MEMDS_IMAP_E_NONE) {
        return o;
    }
    /* response codes first: they say most precisely what happened */
    switch (err->code) {
    case MEMDS_IMAP_CODE_AUTHENTICATIONFAILED:
    case MEMDS_IMAP_CODE_AUTHORIZATIONFAILED:
    case MEMDS_IMAP_CODE_EXPIRED:
        o.status = 401; o.text = "Mail server login failed"; return o;
    case MEMDS_IMAP_CODE_NONEXISTENT:
    case MEMDS_IMAP_CODE_TRYCREATE:
        o.status = 404; o.text = "Mail folder not found"; return o;
    case MEMDS_IMAP_CODE_ALREADYEXISTS:
        o.status = 418; o.text = "Mail folder already exists"; return o;
    case MEMDS_IMAP_CODE_NOPERM:
        o.status = 425; o.text = "Permission denied by the mail server"; return o;
    case MEMDS_IMAP_CODE_OVERQUOTA:
        o.status = 510; o.text = "Mailbox quota exceeded"; return o;
    case MEMDS_IMAP_CODE_UNAVAILABLE:
    case MEMDS_IMAP_CODE_INUSE:
        o.status = 503; o.text = "Mail server temporarily unavailable"; return o;
    case MEMDS_IMAP_CODE_EXPUNGEISSUED:
        o.status = 404; o.text = "Message no longer exists"; return o;
    default:
        break;
    }
    switch (err->kind) {
    case MEMDS_IMAP_E_AUTH:
        o.status = 401; o.text = "Mail server login failed"; break;
    case MEMDS_IMAP_E_CONNECT:
    case MEMDS_IMAP_E_TLS:
    case MEMDS_IMAP_E_IO:
    case MEMDS_IMAP_E_BYE:
        o.status = 503; o.text = "Mail server not reachable"; break;
    case MEMDS_IMAP_E_TIMEOUT:
        o.status = 503; o.text = "Mail server timed out"; break;
    case MEMDS_IMAP_E_NOTFOUND:
        o.status = 404; o.text = "Message no longer exists"; break;
    case MEMDS_IMAP_E_NO:
        /* Dovecot answers SELECT/EXAMINE/STATUS of a missing mailbox with a
         * plain NO (no [NONEXISTENT]): that is what a code-less NO to these
         * means in practice */
        if (err->code == MEMDS_IMAP_CODE_NONE && err->cmd
            && (!strcmp(err->cmd, "SELECT") || !strcmp(err->cmd, "EXAMINE")
                || !strcmp(err->cmd, "STATUS"))) {
            o.status = 404; o.text = "Mail folder not found";
        }
        else {
            o.status = 510; o.text = "Mail server refused the operation";
        }
        break;
    case MEMDS_IMAP_E_PROTOCOL:
        o.status = 510; o.text = "Invalid answer from the mail server"; break;
    case MEMDS_IMAP_E_LIMIT:
        o.status = 413; o.text = "Mail server data too large"; break;
    case MEMDS_IMAP_E_BAD:
        o.status = 500; o.text = "Mail server rejected the command"; break;
    case MEMDS_IMAP_E_UNSUPPORTED:
        o.status = 500; o.text = "Mail server lacks a needed feature"; break;
    default:
        o.status = 500; o.text = "Mail operation failed"; break;
    }
    return o;
}
