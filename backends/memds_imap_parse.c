/* IMAP client layer, part 1 of 3: the strict response parser (pure, no
 * I/O: unit-tested and fuzzed through memds_imap_parse_response), sets,
 * modified UTF-7 mailbox names and dates. See memds_imap.h for the contract
 * and memds_imap_int.h for what the three parts share.
 *
 * File map: (2) sets, mailbox names, dates, (3) the response parser and the
 * check of a section spec the commands send. */
#include "backends/memds_imap_int.h"

#include <apr_strings.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ========================================= (2) sets, names and dates */

static int range_cmp(const void *a, const void *b)
{
    apr_uint32_t x = *(const apr_uint32_t *)a, y = *(const apr_uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Sorted, merged ranges from a list of numbers. */
memds_imap_set_t *memds_imap__set_from_numbers(const apr_uint32_t *in, int n,
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
        if (set->nranges > 0
            && (v[i] == set->ranges[set->nranges - 1].hi
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
        apr_uint64_t k = (apr_uint64_t)set->ranges[i].hi - set->ranges[i].lo
                         + 1;
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
    return memds_imap_set_str(memds_imap__set_from_numbers(uids, n, p), p);
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
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

static void put_utf8(memds_buf_t *b, apr_uint32_t cp)
{
    char u[4];
    apr_size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    }
    else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
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
                        put_utf8(&b, 0x10000 + ((hi - 0xD800) << 10)
                                         + (u - 0xDC00));
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

    if (s[0] < 0x80) {
        *pcp = s[0];
        *ps = s + 1;
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        cp = s[0] & 0x1F;
        n = 1;
    }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        cp = s[0] & 0x0F;
        n = 2;
    }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        cp = s[0] & 0x07;
        n = 3;
    }
    else
        return 0;
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
    apr_uint16_t *u = apr_palloc(p,
                                 sizeof(*u) * (2 * (apr_size_t)(end - s) + 2));
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

apr_status_t memds_imap_parse_date(apr_time_t *pt, const char *s,
                                   apr_size_t len)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const int mdays[] = {
        31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };
    int day, mon = -1, y1, y2, year, hh, mm, ss, zh, zm, i;
    apr_int64_t secs;

    /* "dd-Mon-yyyy hh:mm:ss +zzzz" with day " d" or "dd" */
    if (len != 26 || s[2] != '-' || s[6] != '-' || s[11] != ' ' || s[14] != ':'
        || s[17] != ':' || s[20] != ' ' || (s[21] != '+' && s[21] != '-')) {
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
            && upc((unsigned char)s[5])
                   == upc((unsigned char)months[3 * i + 2])) {
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
    secs = days_from_civil(year, mon + 1, day) * 86400 + hh * 3600 + mm * 60
           + ss;
    secs -= (s[21] == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
    *pt = (apr_time_t)secs * APR_USEC_PER_SEC;
    return APR_SUCCESS;
}

/* ================================================== (3) response parser */

typedef struct pctx_t {
    const char *buf, *p, *end;
    apr_size_t max_literal;
    apr_pool_t *pool;
    int depth;        /* parenthesised nesting of generic values */
    const char *emsg; /* the first error */
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

    if (c < 0)
        return "end of input";
    if (c == '\r')
        return "CR";
    if (c == '\n')
        return "LF";
    if (c == ' ')
        return "SP";
    if (c > 0x20 && c < 0x7f)
        return apr_psprintf(x->pool, "'%c'", c);
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
#define S_LIT8 0x02   /* literal8 (~{n}) allowed */

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
        return perr(x,
                    "literal of %" APR_UINT64_T_FMT " bytes in %s exceeds "
                    "the limit of %" APR_SIZE_T_FMT,
                    n, what, x->max_literal);
    }
    if (n > (apr_uint64_t)(x->end - x->p)) {
        return perr(x,
                    "literal of %" APR_UINT64_T_FMT " bytes in %s runs past "
                    "the end of the response (%" APR_SIZE_T_FMT " left)",
                    n, what, (apr_size_t)(x->end - x->p));
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
                    return perr(x,
                                "invalid escape in the quoted string of %s "
                                "(only \\\" and \\\\), found %s",
                                what, found(x));
                }
                x->p++;
            }
            else if (ch == '\r' || ch == '\n' || ch == '\0') {
                return perr(x, "%s inside the quoted string of %s", found(x),
                            what);
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
    while (x->p < x->end
           && (is_atom_char((unsigned char)*x->p) || *x->p == ']')) {
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
        return perr(x,
                    "%" APR_SIZE_T_FMT " bytes after the end of the response",
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
    apr_array_header_t *a = apr_array_make(x->pool, 4,
                                           sizeof(memds_imap_range_t));
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
        if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '"'
            || c == '{') {
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
    { "ALERT", MEMDS_IMAP_CODE_ALERT },
    { "PARSE", MEMDS_IMAP_CODE_PARSE },
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
    { "NOPERM", MEMDS_IMAP_CODE_NOPERM },
    { "INUSE", MEMDS_IMAP_CODE_INUSE },
    { "EXPUNGEISSUED", MEMDS_IMAP_CODE_EXPUNGEISSUED },
    { "CORRUPTION", MEMDS_IMAP_CODE_CORRUPTION },
    { "SERVERBUG", MEMDS_IMAP_CODE_SERVERBUG },
    { "CLIENTBUG", MEMDS_IMAP_CODE_CLIENTBUG },
    { "CANNOT", MEMDS_IMAP_CODE_CANNOT },
    { "LIMIT", MEMDS_IMAP_CODE_LIMIT },
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
        TRY(num32(x,
                  code->code == MEMDS_IMAP_CODE_UIDVALIDITY ? &code->uidvalidity
                                                            : &code->number,
                  1, code->name));
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
        if (memds_imap_set_count(code->uids)
            != memds_imap_set_count(code->uids2)) {
            return perr(x,
                        "COPYUID source and destination sets differ in size");
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
                return perr(x, "empty argument of response code %s",
                            code->name);
            }
            code->arg = apr_pstrmemdup(x->pool, s, (apr_size_t)(x->p - s));
        }
        break;
    }
    default: break; /* codes without arguments */
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
            && (str_ieq(b->subtype, "rfc822")
                || str_ieq(b->subtype, "global"))) {
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
                              : apr_psprintf(p, "%d", i + 1),
                        p);
        }
    }
    else if (b->message) {
        number_body(b->message,
                    b->message->multipart ? sect
                                          : apr_pstrcat(p, sect, ".1", NULL),
                    p);
    }
}

/* section-msgtext / "MIME" after a part number (mime_ok) */
static apr_status_t section_text(pctx_t *x, int mime_ok)
{
    const char *s = x->p;
    apr_size_t n;

    while (x->p < x->end
           && ((*x->p >= 'A' && *x->p <= 'Z') || (*x->p >= 'a' && *x->p <= 'z')
               || *x->p == '.')) {
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
            return perr(x, "BINARY sections are part numbers, found %s",
                        found(x));
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
    if (str_ieq(f, "\\Seen"))
        return MEMDS_IMAP_FL_SEEN;
    if (str_ieq(f, "\\Answered"))
        return MEMDS_IMAP_FL_ANSWERED;
    if (str_ieq(f, "\\Flagged"))
        return MEMDS_IMAP_FL_FLAGGED;
    if (str_ieq(f, "\\Deleted"))
        return MEMDS_IMAP_FL_DELETED;
    if (str_ieq(f, "\\Draft"))
        return MEMDS_IMAP_FL_DRAFT;
    if (str_ieq(f, "\\Recent"))
        return MEMDS_IMAP_FL_RECENT;
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
        while (x->p < x->end
               && ((*x->p >= 'A' && *x->p <= 'Z')
                   || (*x->p >= 'a' && *x->p <= 'z')
                   || is_digit((unsigned char)*x->p) || *x->p == '.'
                   || *x->p == '-')) {
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
                f->flags |= sysflag_bit(
                    APR_ARRAY_IDX(f->flag_names, i, const char *));
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
            TRY(expect(x, ' ',
                       ext ? "SP after BODYSTRUCTURE" : "SP after BODY"));
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
            TRY(nstring(x, &sec->data, &sec->len, S_BINARY | (bin ? S_LIT8 : 0),
                        "section data"));
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
                f->other = apr_array_make(x->pool, 2,
                                          sizeof(memds_imap_item_t));
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
    { "\\All", MEMDS_IMAP_MBX_ALL },
    { "\\Archive", MEMDS_IMAP_MBX_ARCHIVE },
    { "\\Drafts", MEMDS_IMAP_MBX_DRAFTS },
    { "\\Flagged", MEMDS_IMAP_MBX_FLAGGED },
    { "\\Junk", MEMDS_IMAP_MBX_JUNK },
    { "\\Sent", MEMDS_IMAP_MBX_SENT },
    { "\\Trash", MEMDS_IMAP_MBX_TRASH },
};

static memds_imap_role_e role_of(const memds_imap_list_t *l)
{
    if (!strcmp(l->name, "INBOX"))
        return MEMDS_IMAP_ROLE_INBOX;
    if (l->attrs & MEMDS_IMAP_MBX_DRAFTS)
        return MEMDS_IMAP_ROLE_DRAFTS;
    if (l->attrs & MEMDS_IMAP_MBX_SENT)
        return MEMDS_IMAP_ROLE_SENT;
    if (l->attrs & MEMDS_IMAP_MBX_TRASH)
        return MEMDS_IMAP_ROLE_TRASH;
    if (l->attrs & MEMDS_IMAP_MBX_JUNK)
        return MEMDS_IMAP_ROLE_JUNK;
    if (l->attrs & MEMDS_IMAP_MBX_ARCHIVE)
        return MEMDS_IMAP_ROLE_ARCHIVE;
    if (l->attrs & MEMDS_IMAP_MBX_ALL)
        return MEMDS_IMAP_ROLE_ALL;
    if (l->attrs & MEMDS_IMAP_MBX_FLAGGED)
        return MEMDS_IMAP_ROLE_FLAGGED;
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
                return perr(x,
                            "expected a mailbox attribute (\\name), found %s",
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
            return perr(x, "expected a quoted delimiter or NIL, found %s",
                        found(x));
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
                                x->pool)
        != APR_SUCCESS) {
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
        if (tok_eq(a, n, "MESSAGES")) {
            bit = MEMDS_IMAP_ST_MESSAGES;
            p32 = &st->messages;
        }
        else if (tok_eq(a, n, "RECENT")) {
            bit = MEMDS_IMAP_ST_RECENT;
            p32 = &st->recent;
        }
        else if (tok_eq(a, n, "UIDNEXT")) {
            bit = MEMDS_IMAP_ST_UIDNEXT;
            p32 = &st->uidnext;
        }
        else if (tok_eq(a, n, "UIDVALIDITY")) {
            bit = MEMDS_IMAP_ST_UIDVALIDITY;
            p32 = &st->uidvalidity;
        }
        else if (tok_eq(a, n, "UNSEEN")) {
            bit = MEMDS_IMAP_ST_UNSEEN;
            p32 = &st->unseen;
        }
        else if (tok_eq(a, n, "HIGHESTMODSEQ"))
            bit = MEMDS_IMAP_ST_HIGHESTMODSEQ;
        else if (tok_eq(a, n, "SIZE"))
            bit = MEMDS_IMAP_ST_SIZE;
        else if (tok_eq(a, n, "X-GUID"))
            bit = MEMDS_IMAP_ST_XGUID;
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
    sr->all = memds_imap__set_from_numbers((const apr_uint32_t *)v->elts,
                                           v->nelts, x->pool);
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
            r->cond = tok_eq(kw, n, "OK")    ? MEMDS_IMAP_OK
                      : tok_eq(kw, n, "NO")  ? MEMDS_IMAP_NO
                      : tok_eq(kw, n, "BAD") ? MEMDS_IMAP_BAD
                      : tok_eq(kw, n, "BYE") ? MEMDS_IMAP_BYE
                                             : MEMDS_IMAP_PREAUTH;
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
                    return perr(x,
                                "expected EARLIER after VANISHED (, found %s",
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
        if (tok_eq(kw, n, "OK"))
            r->cond = MEMDS_IMAP_OK;
        else if (tok_eq(kw, n, "NO"))
            r->cond = MEMDS_IMAP_NO;
        else if (tok_eq(kw, n, "BAD"))
            r->cond = MEMDS_IMAP_BAD;
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
            err->msg = apr_psprintf(
                p, "malformed IMAP response at offset %" APR_SIZE_T_FMT ": %s",
                x.eoff, x.emsg ? x.emsg : "unknown error");
            err->offset = x.eoff;
        }
        return APR_EINVAL;
    }
    *presp = r;
    return APR_SUCCESS;
}

/* ---- a section spec as the commands send it (FETCH BODY[...]) */

int memds_imap__section_ok(const char *s, int binary, apr_pool_t *p)
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
