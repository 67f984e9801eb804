/* memds_email.c: the OMA DS Email and Folder data objects (memds_email.h).
 *
 * Parsing is libxml2 (DOM) in the same hardened configuration as the
 * SyncML XML decoder (memds_xml.c, DESIGN.md decision 8): a parser context
 * of our own, no DTD loading, no entity substitution, no network, errors
 * from the context's structured handler (never a global handler), a
 * DOCTYPE with an internal subset refused before it is parsed, depth and
 * element count enforced by SAX hooks while parsing. The hooks are copies
 * of memds_xml.c's (static there); the DOM is then read by hand, since
 * the objects are small and their rules differ from SyncML's.
 *
 * Decisions (email-san.md 1.2-1.4, 2.1; interop/README.md):
 * - Liberal reading: any child order, case-insensitive names, the known
 *   emailitem variants. Strict where guessing could lose data: unknown
 *   elements (Nokia refuses them too), repeated single elements, text
 *   between elements, malformed values.
 * - The emailitem is written as escaped text by default, CR as &#13;, so
 *   the exact bytes survive any conforming XML parser (a CDATA section
 *   cannot carry a CR through one). Bytes XML cannot carry are an error,
 *   never silently transfer-encoded: the caller decides (message/rfc822,
 *   or a re-encoded body part), because the device stores what it gets.
 * - Date-times: canonical text plus apr_time_t; floating values (no zone)
 *   are kept floating, never interpreted in the process's time zone
 *   (localtime would be both wrong for the device and not thread-safe).
 */
#include "email/memds_email.h"
#include "util/memds_util.h"
#include "util/memds_xmlsafe.h"

#include <apr_strings.h>
#include <libxml/SAX2.h>
#include <libxml/encoding.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <string.h>

#define NS_EMAIL "syncml:email"
#define NS_FOLDER "syncml:folder"

/* Why the SAX hooks stopped the parser. */

/* ------------------------------------------------------------- helpers */

static int lc(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int ascii_caseeq(const char *a, const char *b)
{
    for (;; ++a, ++b) {
        int ca = lc((unsigned char)*a), cb = lc((unsigned char)*b);
        if (ca != cb) {
            return 0;
        }
        if (ca == 0) {
            return 1;
        }
    }
}

/* s[0..len) starts with the lower-case literal lit, case-insensitively. */
static int ascii_prefix(const char *s, apr_size_t len, const char *lit)
{
    apr_size_t i;

    for (i = 0; lit[i]; ++i) {
        if (i >= len || lc((unsigned char)s[i]) != lit[i]) {
            return 0;
        }
    }
    return 1;
}

/* Case-insensitive search of the lower-case literal lit in s. */
static int ascii_contains(const char *s, const char *lit)
{
    apr_size_t n = strlen(s), l = strlen(lit), i;

    for (i = 0; i + l <= n; ++i) {
        if (ascii_prefix(s + i, n - i, lit)) {
            return 1;
        }
    }
    return 0;
}

static int is_ws(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int all_ws(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; ++i) {
        if (!is_ws((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Exact search of n bytes of needle in h[0..hl); offset or -1. */
static apr_ssize_t find(const char *h, apr_size_t hl, const char *needle,
                        apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || hl < n) {
        return -1;
    }
    for (i = 0; i + n <= hl; ++i) {
        const char *c = memchr(h + i, needle[0], hl - n + 1 - i);
        if (c == NULL) {
            return -1;
        }
        i = (apr_size_t)(c - h);
        if (memcmp(c, needle, n) == 0) {
            return (apr_ssize_t)i;
        }
    }
    return -1;
}

/* A copy of s[0..len) without surrounding XML blanks; NULL when empty. */
static const char *trimmed(const char *s, apr_size_t len, apr_pool_t *p)
{
    while (len && is_ws((unsigned char)s[0])) {
        ++s;
        --len;
    }
    while (len && is_ws((unsigned char)s[len - 1])) {
        --len;
    }
    return len ? apr_pstrmemdup(p, s, len) : NULL;
}

/* A value for an error message: at most 40 bytes, controls as '?'. */
static const char *shown(const char *s, apr_size_t len, apr_pool_t *p)
{
    apr_size_t n = len > 40 ? 40 : len, i;
    char *c = apr_palloc(p, n + 4);

    for (i = 0; i < n; ++i) {
        unsigned char b = (unsigned char)s[i];
        c[i] = b < 0x20 || b == 0x7F ? '?' : (char)b;
    }
    if (n < len) {
        memcpy(c + n, "...", 3);
        n += 3;
    }
    c[n] = '\0';
    return c;
}

/* Offset of the first byte XML 1.0 cannot carry, or len; *what names it. */
static apr_size_t first_bad(const char *data, apr_size_t len, char *what,
                            apr_size_t wlen)
{
    const unsigned char *b = (const unsigned char *)data, *s = b,
                        *end = b + len;

    while (s < end) {
        unsigned c = *s, cp;
        apr_size_t k;

        if (end - s >= 16) {
            /* sixteen bytes at once up to the first control or 8-bit one */
            apr_size_t n = memds_scan16(s, 0, 0, 0, 0, MEMDS_SCAN_CTL);
            s += n;
            if (n == 16) {
                continue;
            }
            c = *s;
        }
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                apr_snprintf(what, wlen, "byte 0x%02X", c);
                return (apr_size_t)(s - b);
            }
            ++s;
            continue;
        }
        k = memds_utf8_seq(s, end, &cp);
        if (k == 0) {
            apr_snprintf(what, wlen, "invalid UTF-8 (byte 0x%02X)", c);
            return (apr_size_t)(s - b);
        }
        if (cp == 0xFFFE || cp == 0xFFFF) {
            apr_snprintf(what, wlen, "U+%04X", cp);
            return (apr_size_t)(s - b);
        }
        s += k;
    }
    return len;
}

int memds_email_item_xml_safe(const char *data, apr_size_t len,
                              apr_size_t *pbad)
{
    char what[48];
    apr_size_t off;

    if (data == NULL) {
        if (pbad) {
            *pbad = 0;
        }
        return len == 0;
    }
    off = first_bad(data, len, what, sizeof(what));
    if (off < len) {
        if (pbad) {
            *pbad = off;
        }
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------- date-times */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static apr_int64_t days_from_civil(apr_int64_t y, int m, int d)
{
    apr_int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(apr_int64_t z, apr_int64_t *py, int *pm, int *pd)
{
    apr_int64_t era, doe, yoe, doy, mp, y;
    int m;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *pd = (int)(doy - (153 * mp + 2) / 5 + 1);
    m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *pm = m;
    *py = y + (m <= 2);
}

static int days_in_month(apr_int64_t y, int m)
{
    static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return dim[m - 1];
}

/* n digits at s[*i], value into *v. */
static int digits(const char *s, apr_size_t len, apr_size_t *i, int n, int *v)
{
    int k, r = 0;

    for (k = 0; k < n; ++k) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9') {
            return 0;
        }
        r = r * 10 + (s[(*i)++] - '0');
    }
    *v = r;
    return 1;
}

static int opt(const char *s, apr_size_t len, apr_size_t *i, char c)
{
    if (*i < len && s[*i] == c) {
        ++*i;
        return 1;
    }
    return 0;
}

/* Seconds since the epoch -> canonical text. */
static const char *time_text(apr_int64_t secs, int floating, apr_pool_t *p)
{
    apr_int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400),
                rem = secs - days * 86400, y;
    int m, d;

    civil_from_days(days, &y, &m, &d);
    return apr_psprintf(p, "%04d%02d%02dT%02d%02d%02d%s", (int)y, m, d,
                        (int)(rem / 3600), (int)(rem / 60 % 60),
                        (int)(rem % 60), floating ? "" : "Z");
}

static apr_int64_t secs_min(void)
{
    return days_from_civil(1, 1, 1) * 86400;
}

static apr_int64_t secs_max(void)
{
    return days_from_civil(9999, 12, 31) * 86400 + 86399;
}

apr_status_t memds_email_time_parse(memds_email_time_t *dt, const char *s,
                                    apr_size_t len, apr_pool_t *p)
{
    apr_size_t i = 0;
    int y, mo, d, h, mi, sec, oh = 0, om = 0, floating = 1, sign = 0;
    apr_int64_t secs;

    if (s == NULL) {
        return APR_EINVAL;
    }
    while (len && is_ws((unsigned char)s[0])) {
        ++s;
        --len;
    }
    while (len && is_ws((unsigned char)s[len - 1])) {
        --len;
    }
    if (!digits(s, len, &i, 4, &y)) {
        return APR_EINVAL;
    }
    opt(s, len, &i, '-');
    if (!digits(s, len, &i, 2, &mo)) {
        return APR_EINVAL;
    }
    opt(s, len, &i, '-');
    if (!digits(s, len, &i, 2, &d)) {
        return APR_EINVAL;
    }
    if (!opt(s, len, &i, 'T') && !opt(s, len, &i, 't')) {
        return APR_EINVAL;
    }
    if (!digits(s, len, &i, 2, &h)) {
        return APR_EINVAL;
    }
    opt(s, len, &i, ':');
    if (!digits(s, len, &i, 2, &mi)) {
        return APR_EINVAL;
    }
    opt(s, len, &i, ':');
    if (!digits(s, len, &i, 2, &sec)) {
        return APR_EINVAL;
    }
    if (opt(s, len, &i, '.') || opt(s, len, &i, ',')) {
        apr_size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            ++i;
        }
        if (i == start) {
            return APR_EINVAL;
        }
    }
    if (opt(s, len, &i, 'Z') || opt(s, len, &i, 'z')) {
        floating = 0;
    }
    else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i++] == '-' ? -1 : 1;
        floating = 0;
        if (!digits(s, len, &i, 2, &oh)) {
            return APR_EINVAL;
        }
        opt(s, len, &i, ':');
        if (i < len && !digits(s, len, &i, 2, &om)) {
            return APR_EINVAL;
        }
        if (oh > 23 || om > 59) {
            return APR_EINVAL;
        }
    }
    if (i != len || y < 1 || mo < 1 || mo > 12 || d < 1
        || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59) {
        return APR_EINVAL;
    }
    secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
           - (apr_int64_t)sign * (oh * 3600 + om * 60);
    if (secs < secs_min() || secs > secs_max()) {
        return APR_EINVAL;
    }
    dt->text = time_text(secs, floating, p);
    dt->t = (apr_time_t)secs * APR_USEC_PER_SEC;
    dt->floating = floating;
    return APR_SUCCESS;
}

apr_status_t memds_email_time_set(memds_email_time_t *dt, apr_time_t t,
                                  apr_pool_t *p)
{
    apr_int64_t secs = t >= 0 ? t / APR_USEC_PER_SEC
                              : -((-(t + 1)) / APR_USEC_PER_SEC) - 1;

    if (secs < secs_min() || secs > secs_max()) {
        return APR_EINVAL;
    }
    dt->text = time_text(secs, 0, p);
    dt->t = (apr_time_t)secs * APR_USEC_PER_SEC;
    dt->floating = 0;
    return APR_SUCCESS;
}

/* ---------------------------------------------- hardened libxml2 parse */

typedef struct px_t {
    apr_pool_t *p;
    const char *own_ns;  /**< syncml:email / syncml:folder */
    const char *root_ns; /**< namespace of the root as written, or NULL */
    int stopped; /**< the parse hit a hardening limit (not repairable) */
    /* the outcome */
    apr_status_t rv;
    const char *msg;
    int line;
} px_t;

static apr_status_t px_fail(px_t *x, int line, const char *msg)
{
    x->rv = APR_EINVAL;
    x->msg = msg;
    x->line = line;
    return APR_EINVAL;
}

/**
 * Parse buf into *pdoc (the caller frees it with xmlFreeDoc). On failure
 * x->msg/line/rv say why and *pdoc is NULL.
 */
static apr_status_t xml_parse(px_t *x, xmlDocPtr *pdoc, const char *buf,
                              apr_size_t len)
{
    memds_xmlsafe_t sx;
    apr_status_t rv;

    memset(&sx, 0, sizeof(sx));
    sx.p = x->p;
    sx.max_depth = MEMDS_EMAIL_MAX_DEPTH;
    sx.max_nodes = MEMDS_EMAIL_MAX_NODES;
    sx.keep_cdata = 1; /* the emailitem rules need to see CDATA */
    rv = memds_xmlsafe_parse(pdoc, &sx, buf, len);
    if (rv != APR_SUCCESS) {
        px_fail(x, sx.line, sx.msg);
        x->rv = sx.rv;
        x->stopped = sx.stop != 0;
    }
    return rv;
}

/* ------------------------------------------------ input pre-processing */

/* Append the UTF-8 form of cp to o. */
static char *put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    }
    else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* One level of XML escaping undone (the five predefined entities and
 * character references; anything else is copied), for objects that came
 * escaped once more than the SyncML layer accounts for. The result is
 * never longer than the input (a reference is at least as long as its
 * UTF-8 form). */
static char *unescape_once(const char *s, apr_size_t len, apr_size_t *olen,
                           apr_pool_t *p)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = { { "&lt;", '<' },
                 { "&gt;", '>' },
                 { "&amp;", '&' },
                 { "&quot;", '"' },
                 { "&apos;", '\'' } };
    char *out = apr_palloc(p, len + 1), *o = out;
    apr_size_t i = 0, k;

    while (i < len) {
        if (s[i] != '&') {
            *o++ = s[i++];
            continue;
        }
        for (k = 0; k < sizeof(ents) / sizeof(ents[0]); ++k) {
            apr_size_t el = strlen(ents[k].ent);
            if (len - i >= el && memcmp(s + i, ents[k].ent, el) == 0) {
                *o++ = ents[k].c;
                i += el;
                break;
            }
        }
        if (k < sizeof(ents) / sizeof(ents[0])) {
            continue;
        }
        if (len - i >= 4 && s[i + 1] == '#') {
            apr_size_t j = i + 2;
            int hex = j < len && (s[j] == 'x' || s[j] == 'X');
            unsigned long cp = 0;
            apr_size_t nd = 0;

            j += hex;
            for (; j < len && nd < 8; ++j, ++nd) {
                int c = lc((unsigned char)s[j]), v;
                if (c >= '0' && c <= '9') {
                    v = c - '0';
                }
                else if (hex && c >= 'a' && c <= 'f') {
                    v = c - 'a' + 10;
                }
                else {
                    break;
                }
                cp = cp * (hex ? 16 : 10) + (unsigned long)v;
            }
            if (nd > 0 && j < len && s[j] == ';' && cp > 0 && cp <= 0x10FFFF
                && (cp < 0xD800 || cp > 0xDFFF)) {
                o = put_utf8(o, cp);
                i = j + 1;
                continue;
            }
        }
        *o++ = s[i++];
    }
    *o = '\0';
    *olen = (apr_size_t)(o - out);
    return out;
}

/* Funambol's C++ client ends the emailitem CDATA with the literal text
 * "]]&gt;" (it relies on an outer CDATA around the whole object), so the
 * section is never closed and the document is malformed. Repair: if the
 * first "</emailitem" after "<emailitem ...><![CDATA[" comes before any
 * "]]>" and is preceded (blanks aside) by "]]&gt;", make that "]]>".
 * Only tried when the document does not parse as it stands. */
static int fnbl_repair(const char *buf, apr_size_t len, char **pout,
                       apr_size_t *polen, apr_pool_t *p)
{
    apr_ssize_t a, b, c;
    apr_size_t i, cd, end, close;
    char *out;

    a = find(buf, len, "<emailitem", 10);
    if (a < 0) {
        return 0;
    }
    for (i = (apr_size_t)a + 10; i < len && buf[i] != '>'; ++i) {
    }
    for (++i; i < len && is_ws((unsigned char)buf[i]); ++i) {
    }
    if (len - (i < len ? i : len) < 9 || memcmp(buf + i, "<![CDATA[", 9) != 0) {
        return 0;
    }
    cd = i + 9;
    b = find(buf + cd, len - cd, "</emailitem", 11);
    if (b < 0) {
        return 0;
    }
    end = cd + (apr_size_t)b;
    c = find(buf + cd, end - cd, "]]>", 3);
    if (c >= 0) {
        return 0;
    }
    close = end;
    while (close > cd && is_ws((unsigned char)buf[close - 1])) {
        --close;
    }
    if (close - cd < 6 || memcmp(buf + close - 6, "]]&gt;", 6) != 0) {
        return 0;
    }
    close -= 6;
    out = apr_palloc(p, len - 3 + 1);
    memcpy(out, buf, close);
    memcpy(out + close, "]]>", 3);
    memcpy(out + close + 3, buf + close + 6, len - close - 6);
    *polen = len - 3;
    out[*polen] = '\0';
    *pout = out;
    return 1;
}

/* -------------------------------------------------------- DOM reading */

static int line_of(const xmlNode *n)
{
    long l = xmlGetLineNo((xmlNodePtr)n);

    return l > 0 && l < 0x7fffffffL ? (int)l : 0;
}

static const char *nm(const xmlNode *e)
{
    return (const char *)e->name;
}

/* An element must be in the object's namespace (as declared on the
 * root, or the standard one) or in none. */
static apr_status_t check_ns(px_t *x, const xmlNode *e)
{
    const char *h;

    if (e->ns == NULL || e->ns->href == NULL || e->ns->href[0] == '\0') {
        return APR_SUCCESS;
    }
    h = (const char *)e->ns->href;
    if ((x->root_ns && strcmp(h, x->root_ns) == 0)
        || ascii_caseeq(h, x->own_ns)) {
        return APR_SUCCESS;
    }
    return px_fail(x, line_of(e),
                   apr_psprintf(x->p,
                                "element <%s> (line %d) "
                                "is in namespace '%s', not %s",
                                nm(e), line_of(e), h, x->own_ns));
}

/* A non-element child of container element `in`: blanks, comments and
 * PIs are fine, anything else is an error. */
static apr_status_t check_other(px_t *x, const xmlNode *c, const char *in)
{
    switch (c->type) {
    case XML_TEXT_NODE:
    case XML_CDATA_SECTION_NODE:
        if (c->content == NULL
            || all_ws((const char *)c->content,
                      strlen((const char *)c->content))) {
            return APR_SUCCESS;
        }
        return px_fail(x, line_of(c),
                       apr_psprintf(x->p,
                                    "text inside <%s> "
                                    "(line %d): '%s'",
                                    in, line_of(c),
                                    shown((const char *)c->content,
                                          strlen((const char *)c->content),
                                          x->p)));
    case XML_COMMENT_NODE:
    case XML_PI_NODE: return APR_SUCCESS;
    case XML_ENTITY_REF_NODE:
        return px_fail(x, line_of(c),
                       apr_psprintf(x->p,
                                    "entity reference "
                                    "&%s; in <%s> (line %d) is refused",
                                    nm(c), in, line_of(c)));
    default:
        return px_fail(x, line_of(c),
                       apr_psprintf(x->p,
                                    "unexpected XML node "
                                    "(type %d) in <%s> (line %d)",
                                    (int)c->type, in, line_of(c)));
    }
}

/* The exact text of leaf element e (text and CDATA pieces joined). */
static apr_status_t leaf_text(px_t *x, const xmlNode *e, const char **ps,
                              apr_size_t *plen)
{
    const xmlNode *c;
    apr_size_t total = 0, off = 0;
    char *s;

    for (c = e->children; c; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            total += c->content ? strlen((const char *)c->content) : 0;
        }
        else if (c->type == XML_ELEMENT_NODE) {
            return px_fail(
                x, line_of(c),
                apr_psprintf(x->p,
                             "element <%s> "
                             "inside <%s> (line %d), which holds a value",
                             nm(c), nm(e), line_of(c)));
        }
        else if (check_other(x, c, nm(e)) != APR_SUCCESS) {
            return x->rv;
        }
    }
    s = apr_palloc(x->p, total + 1);
    for (c = e->children; c; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
            && c->content) {
            apr_size_t l = strlen((const char *)c->content);
            memcpy(s + off, c->content, l);
            off += l;
        }
    }
    s[off] = '\0';
    *ps = s;
    *plen = off;
    return APR_SUCCESS;
}

/* Index of e's name in names (case-insensitive), or -1. */
static int name_index(const xmlNode *e, const char *const *names, int n)
{
    int i;

    for (i = 0; i < n; ++i) {
        if (ascii_caseeq(nm(e), names[i])) {
            return i;
        }
    }
    return -1;
}

static apr_status_t unknown(px_t *x, const xmlNode *e, const char *in,
                            const char *allowed)
{
    return px_fail(x, line_of(e),
                   apr_psprintf(x->p,
                                "unknown element <%s> in "
                                "<%s> (line %d); allowed: %s",
                                nm(e), in, line_of(e), allowed));
}

static apr_status_t repeated(px_t *x, const xmlNode *e, const char *in)
{
    return px_fail(x, line_of(e),
                   apr_psprintf(x->p,
                                "<%s> repeated in <%s> "
                                "(line %d)",
                                nm(e), in, line_of(e)));
}

static apr_status_t get_bool(px_t *x, const xmlNode *e, memds_email_bool_e *pb)
{
    const char *s, *t;
    apr_size_t len;

    if (leaf_text(x, e, &s, &len) != APR_SUCCESS) {
        return x->rv;
    }
    t = trimmed(s, len, x->p);
    if (t == NULL || ascii_caseeq(t, "false") || strcmp(t, "0") == 0) {
        *pb = MEMDS_EMAIL_FALSE; /* Nokia reads an empty element as false */
    }
    else if (ascii_caseeq(t, "true") || strcmp(t, "1") == 0) {
        *pb = MEMDS_EMAIL_TRUE;
    }
    else {
        return px_fail(
            x, line_of(e),
            apr_psprintf(x->p,
                         "<%s> (line %d): "
                         "'%s' is not a boolean (true, false, 1, 0 or empty)",
                         nm(e), line_of(e), shown(t, strlen(t), x->p)));
    }
    return APR_SUCCESS;
}

static apr_status_t get_time(px_t *x, const xmlNode *e, memds_email_time_t *dt)
{
    const char *s, *t;
    apr_size_t len;

    if (leaf_text(x, e, &s, &len) != APR_SUCCESS) {
        return x->rv;
    }
    t = trimmed(s, len, x->p);
    if (t == NULL) {
        return APR_SUCCESS; /* empty: absent */
    }
    if (memds_email_time_parse(dt, t, strlen(t), x->p) != APR_SUCCESS) {
        return px_fail(x, line_of(e),
                       apr_psprintf(x->p,
                                    "<%s> (line %d): "
                                    "'%s' is not an ISO 8601 date-time "
                                    "(YYYYMMDDTHHMMSSZ)",
                                    nm(e), line_of(e),
                                    shown(t, strlen(t), x->p)));
    }
    return APR_SUCCESS;
}

/* Decimal byte count (blanks around it ignored); empty: absent. */
static int parse_size(const char *t, apr_int64_t *pv)
{
    apr_int64_t v = 0;

    if (t == NULL || *t == '\0') {
        return 0;
    }
    for (; *t; ++t) {
        if (*t < '0' || *t > '9' || v > (APR_INT64_MAX - (*t - '0')) / 10) {
            return 0;
        }
        v = v * 10 + (*t - '0');
    }
    *pv = v;
    return 1;
}

static apr_status_t get_size(px_t *x, const xmlNode *e, apr_int64_t *pv)
{
    const char *s, *t;
    apr_size_t len;

    if (leaf_text(x, e, &s, &len) != APR_SUCCESS) {
        return x->rv;
    }
    t = trimmed(s, len, x->p);
    if (t == NULL) {
        *pv = MEMDS_EMAIL_NOSIZE;
        return APR_SUCCESS;
    }
    if (!parse_size(t, pv)) {
        return px_fail(x, line_of(e),
                       apr_psprintf(x->p,
                                    "<%s> (line %d): "
                                    "'%s' is not a byte count",
                                    nm(e), line_of(e),
                                    shown(t, strlen(t), x->p)));
    }
    return APR_SUCCESS;
}

/* Trimmed text value; NULL when empty. */
static apr_status_t get_str(px_t *x, const xmlNode *e, const char **pv)
{
    const char *s;
    apr_size_t len;

    if (leaf_text(x, e, &s, &len) != APR_SUCCESS) {
        return x->rv;
    }
    *pv = trimmed(s, len, x->p);
    return APR_SUCCESS;
}

/* <Ext>: XNam (exactly one, non-empty), XVal*. */
static apr_status_t get_ext(px_t *x, const xmlNode *e,
                            apr_array_header_t **pexts)
{
    static const char *const names[] = { "XNam", "XVal" };
    const xmlNode *c;
    const char *xnam = NULL, *v;
    apr_array_header_t *vals = apr_array_make(x->p, 2, sizeof(const char *));
    memds_ext_t *ext;
    apr_size_t len;
    int seen = 0;

    for (c = e->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) {
            if (check_other(x, c, nm(e)) != APR_SUCCESS) {
                return x->rv;
            }
            continue;
        }
        if (check_ns(x, c) != APR_SUCCESS) {
            return x->rv;
        }
        switch (name_index(c, names, 2)) {
        case 0:
            if (seen) {
                return repeated(x, c, nm(e));
            }
            seen = 1;
            if (get_str(x, c, &xnam) != APR_SUCCESS) {
                return x->rv;
            }
            if (xnam == NULL) {
                return px_fail(x, line_of(c),
                               apr_psprintf(x->p,
                                            "empty <%s> "
                                            "in <%s> (line %d)",
                                            nm(c), nm(e), line_of(c)));
            }
            break;
        case 1:
            if (leaf_text(x, c, &v, &len) != APR_SUCCESS) {
                return x->rv;
            }
            APR_ARRAY_PUSH(vals, const char *) = v; /* exact, not trimmed */
            break;
        default: return unknown(x, c, nm(e), "XNam, XVal");
        }
    }
    if (xnam == NULL) {
        return px_fail(x, line_of(e),
                       apr_psprintf(x->p,
                                    "<%s> (line %d) has "
                                    "no <XNam>",
                                    nm(e), line_of(e)));
    }
    ext = memds_email_ext_add(pexts, xnam, NULL, 0, x->p);
    ext->xvals = vals;
    return APR_SUCCESS;
}

/* <truncated>: body* (size?, type?), attach* (name?, size?, type?). */
static apr_status_t get_truncated(px_t *x, const xmlNode *e, memds_email_t *em)
{
    static const char *const kinds[] = { "body", "attach" };
    static const char *const fields[] = { "name", "size", "type" };
    const xmlNode *c, *f;

    em->has_truncated = 1;
    for (c = e->children; c; c = c->next) {
        int kind, seen = 0;
        const char *name = NULL, *type = NULL;
        apr_int64_t size = MEMDS_EMAIL_NOSIZE;

        if (c->type != XML_ELEMENT_NODE) {
            if (check_other(x, c, nm(e)) != APR_SUCCESS) {
                return x->rv;
            }
            continue;
        }
        if (check_ns(x, c) != APR_SUCCESS) {
            return x->rv;
        }
        kind = name_index(c, kinds, 2);
        if (kind < 0) {
            return unknown(x, c, nm(e), "body, attach");
        }
        for (f = c->children; f; f = f->next) {
            int k;
            if (f->type != XML_ELEMENT_NODE) {
                if (check_other(x, f, nm(c)) != APR_SUCCESS) {
                    return x->rv;
                }
                continue;
            }
            if (check_ns(x, f) != APR_SUCCESS) {
                return x->rv;
            }
            k = name_index(f, fields, 3);
            if (k < 0 || (kind == 0 && k == 0)) {
                return unknown(x, f, nm(c),
                               kind == 0 ? "size, type" : "name, size, type");
            }
            if (seen & (1 << k)) {
                return repeated(x, f, nm(c));
            }
            seen |= 1 << k;
            if ((k == 0 && get_str(x, f, &name) != APR_SUCCESS)
                || (k == 1 && get_size(x, f, &size) != APR_SUCCESS)
                || (k == 2 && get_str(x, f, &type) != APR_SUCCESS)) {
                return x->rv;
            }
        }
        if (kind == 0) {
            memds_email_add_tbody(em, size, type, x->p);
        }
        else {
            memds_email_add_tattach(em, name, size, type, x->p);
        }
    }
    return APR_SUCCESS;
}

static int hexval(int c)
{
    c = lc(c);
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

/* Quoted-printable decoding (RFC 2045 6.7): =XX, soft line breaks (= then
 * blanks then a line end, or at the very end); a malformed "=" is kept. */
static char *qp_decode(const char *s, apr_size_t len, apr_size_t *olen,
                       apr_pool_t *p)
{
    char *out = apr_palloc(p, len + 1), *o = out;
    apr_size_t i = 0;

    while (i < len) {
        if (s[i] != '=') {
            *o++ = s[i++];
            continue;
        }
        if (i + 2 < len && hexval((unsigned char)s[i + 1]) >= 0
            && hexval((unsigned char)s[i + 2]) >= 0) {
            *o++ = (char)(hexval((unsigned char)s[i + 1]) * 16
                          + hexval((unsigned char)s[i + 2]));
            i += 3;
            continue;
        }
        {
            apr_size_t j = i + 1;
            while (j < len && (s[j] == ' ' || s[j] == '\t')) {
                ++j;
            }
            if (j == len) {
                i = j;
                continue;
            }
            if (s[j] == '\n') {
                i = j + 1;
                continue;
            }
            if (s[j] == '\r') {
                i = j + 1 + (j + 1 < len && s[j + 1] == '\n');
                continue;
            }
        }
        *o++ = s[i++];
    }
    *o = '\0';
    *olen = (apr_size_t)(o - out);
    return out;
}

/* <emailitem>: see memds_email_parse() for the variants. */
static apr_status_t get_item(px_t *x, const xmlNode *e, memds_email_t *em)
{
    const xmlNode *c, *first_cd = NULL, *last_cd = NULL;
    const xmlAttr *a;
    apr_size_t total = 0, off = 0, last_off = 0;
    int qp = 0, in_range;
    char *s;

    for (a = e->properties; a; a = a->next) {
        xmlChar *v;
        if (a->name == NULL || !ascii_caseeq((const char *)a->name, "enc")) {
            continue; /* liberal: other attributes mean nothing to us */
        }
        v = xmlNodeListGetString(e->doc, a->children, 1);
        if (v && ascii_contains((const char *)v, "quoted-printable")) {
            qp = 1;
        }
        else if (v && *v && !ascii_caseeq((const char *)v, "7bit")
                 && !ascii_caseeq((const char *)v, "8bit")
                 && !ascii_caseeq((const char *)v, "binary")) {
            const char *m = apr_psprintf(
                x->p,
                "<%s enc='%s'> (line %d): "
                "unsupported encoding (quoted-printable, 7bit, 8bit or "
                "binary)",
                nm(e), shown((const char *)v, strlen((const char *)v), x->p),
                line_of(e));
            xmlFree(v);
            return px_fail(x, line_of(e), m);
        }
        if (v) {
            xmlFree(v);
        }
    }
    for (c = e->children; c; c = c->next) {
        if (c->type == XML_CDATA_SECTION_NODE) {
            if (first_cd == NULL) {
                first_cd = c;
            }
            last_cd = c;
        }
        else if (c->type == XML_ELEMENT_NODE) {
            return px_fail(
                x, line_of(c),
                apr_psprintf(x->p,
                             "element <%s> "
                             "inside <%s> (line %d): the message must be CDATA "
                             "or escaped text",
                             nm(c), nm(e), line_of(c)));
        }
        else if (c->type != XML_TEXT_NODE
                 && check_other(x, c, nm(e)) != APR_SUCCESS) {
            return x->rv;
        }
    }
    /* With CDATA, blanks outside the first..last section are layout
     * (pretty-printing); without, text is taken exactly. */
    for (in_range = first_cd == NULL, c = e->children; c; c = c->next) {
        if (c == first_cd) {
            in_range = 1;
        }
        if (in_range
            && (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
            && c->content) {
            total += strlen((const char *)c->content);
        }
        if (c == last_cd) {
            in_range = 0;
        }
    }
    s = apr_palloc(x->p, total + 1);
    for (in_range = first_cd == NULL, c = e->children; c; c = c->next) {
        if (c == first_cd) {
            in_range = 1;
        }
        if (in_range
            && (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
            && c->content) {
            apr_size_t l = strlen((const char *)c->content);
            if (c == last_cd) {
                last_off = off;
            }
            memcpy(s + off, c->content, l);
            off += l;
        }
        if (c == last_cd) {
            in_range = 0;
        }
    }
    s[off] = '\0';
    if (first_cd) {
        apr_size_t end = off;
        em->item_form |= MEMDS_EMAIL_IF_CDATA;
        /* Funambol's "]]&gt;" at the end of a closed CDATA section */
        while (end > last_off && is_ws((unsigned char)s[end - 1])) {
            --end;
        }
        if (end - last_off >= 6 && memcmp(s + end - 6, "]]&gt;", 6) == 0) {
            off = end - 6;
            s[off] = '\0';
            em->item_form |= MEMDS_EMAIL_IF_FNBL_END;
        }
    }
    if (qp) {
        s = qp_decode(s, off, &off, x->p);
        em->item_form |= MEMDS_EMAIL_IF_QP;
    }
    em->has_item = 1;
    em->item = s;
    em->item_len = off;
    return APR_SUCCESS;
}

/* Funambol's truncation Exts, as data (malformed numbers are ignored:
 * the Exts themselves are kept either way). */
static void fnbl_view(memds_email_t *em, apr_pool_t *p)
{
    int i;

    for (i = 0; em->exts && i < em->exts->nelts; ++i) {
        const memds_ext_t *x = APR_ARRAY_IDX(em->exts, i, memds_ext_t *);
        int n = x->xvals ? x->xvals->nelts : 0;
        const char *v0 = n > 0 ? APR_ARRAY_IDX(x->xvals, 0, const char *)
                               : NULL;
        apr_int64_t v;

        if (ascii_caseeq(x->xnam, "x-funambol-size")) {
            if (parse_size(trimmed(v0 ? v0 : "", v0 ? strlen(v0) : 0, p), &v)) {
                em->fnbl.size = v;
            }
        }
        else if (ascii_caseeq(x->xnam, "x-funambol-body")) {
            if (parse_size(trimmed(v0 ? v0 : "", v0 ? strlen(v0) : 0, p), &v)) {
                em->fnbl.body_left = v;
            }
        }
        else if (ascii_caseeq(x->xnam, "x-funambol-attach-n")) {
            if (parse_size(trimmed(v0 ? v0 : "", v0 ? strlen(v0) : 0, p), &v)) {
                em->fnbl.attach_n = v;
            }
        }
        else if (ascii_caseeq(x->xnam, "x-funambol-attach")) {
            memds_email_attach_t *at = apr_pcalloc(p, sizeof(*at));
            const char *v1 = n > 1 ? APR_ARRAY_IDX(x->xvals, 1, const char *)
                                   : NULL;
            at->name = v0;
            at->size = MEMDS_EMAIL_NOSIZE;
            if (v1 && parse_size(trimmed(v1, strlen(v1), p), &v)) {
                at->size = v;
            }
            at->type = n > 2 ? APR_ARRAY_IDX(x->xvals, 2, const char *) : NULL;
            at->url = n > 3 ? APR_ARRAY_IDX(x->xvals, 3, const char *) : NULL;
            if (em->fnbl.attach == NULL) {
                em->fnbl.attach = apr_array_make(p, 2, sizeof(at));
            }
            APR_ARRAY_PUSH(em->fnbl.attach, memds_email_attach_t *) = at;
        }
    }
}

/* Email element indices, in Nokia's order. */
enum {
    E_READ,
    E_FORWARDED,
    E_REPLIED,
    E_RECEIVED,
    E_CREATED,
    E_MODIFIED,
    E_DELETED,
    E_FLAGGED,
    E_EMAILITEM,
    E_TRUNCATED,
    E_EXT,
    E_COUNT
};
static const char *const email_names[E_COUNT] = {
    "read",    "forwarded", "replied",   "received",  "created", "modified",
    "deleted", "flagged",   "emailitem", "truncated", "Ext"
};
#define EMAIL_ALLOWED \
    "read, forwarded, replied, received, created, " \
    "modified, deleted, flagged, emailitem, truncated, Ext"

static apr_status_t conv_email(px_t *x, memds_email_t *em, const xmlNode *root)
{
    const xmlNode *c;
    unsigned seen = 0;

    for (c = root->children; c; c = c->next) {
        int k;
        apr_status_t rv = APR_SUCCESS;

        if (c->type != XML_ELEMENT_NODE) {
            if (check_other(x, c, nm(root)) != APR_SUCCESS) {
                return x->rv;
            }
            continue;
        }
        if (check_ns(x, c) != APR_SUCCESS) {
            return x->rv;
        }
        k = name_index(c, email_names, E_COUNT);
        if (k < 0) {
            return unknown(x, c, nm(root), EMAIL_ALLOWED);
        }
        if (k != E_EXT && (seen & (1u << k))) {
            return repeated(x, c, nm(root));
        }
        seen |= 1u << k;
        switch (k) {
        case E_READ: rv = get_bool(x, c, &em->read); break;
        case E_FORWARDED: rv = get_bool(x, c, &em->forwarded); break;
        case E_REPLIED: rv = get_bool(x, c, &em->replied); break;
        case E_DELETED: rv = get_bool(x, c, &em->deleted); break;
        case E_FLAGGED: rv = get_bool(x, c, &em->flagged); break;
        case E_RECEIVED: rv = get_time(x, c, &em->received); break;
        case E_CREATED: rv = get_time(x, c, &em->created); break;
        case E_MODIFIED: rv = get_time(x, c, &em->modified); break;
        case E_EMAILITEM: rv = get_item(x, c, em); break;
        case E_TRUNCATED: rv = get_truncated(x, c, em); break;
        default: rv = get_ext(x, c, &em->exts); break;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    fnbl_view(em, x->p);
    return APR_SUCCESS;
}

enum {
    F_NAME,
    F_CREATED,
    F_MODIFIED,
    F_ACCESSED,
    F_ATTRIBUTES,
    F_ROLE,
    F_EXT,
    F_COUNT
};
static const char *const folder_names[F_COUNT] = {
    "name", "created", "modified", "accessed", "attributes", "role", "Ext"
};
/* attribute letters in element order, then Funambol client's "e" (= x) */
static const char *const attr_names[] = {
    "h", "s", "a", "d", "w", "r", "x", "e"
};

static apr_status_t get_attributes(px_t *x, const xmlNode *e, memds_folder_t *f)
{
    const xmlNode *c;
    unsigned seen = 0;

    f->has_attributes = 1;
    for (c = e->children; c; c = c->next) {
        int k;
        if (c->type != XML_ELEMENT_NODE) {
            if (check_other(x, c, nm(e)) != APR_SUCCESS) {
                return x->rv;
            }
            continue;
        }
        if (check_ns(x, c) != APR_SUCCESS) {
            return x->rv;
        }
        k = name_index(c, attr_names, 8);
        if (k < 0) {
            return unknown(x, c, nm(e), "h, s, a, d, w, r, x");
        }
        if (k == 7) {
            k = MEMDS_FOLDER_ATTR_X;
        }
        if (seen & (1u << k)) {
            return repeated(x, c, nm(e));
        }
        seen |= 1u << k;
        if (get_bool(x, c, &f->attr[k]) != APR_SUCCESS) {
            return x->rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t conv_folder(px_t *x, memds_folder_t *f, const xmlNode *root)
{
    const xmlNode *c;
    unsigned seen = 0;

    for (c = root->children; c; c = c->next) {
        int k;
        apr_status_t rv = APR_SUCCESS;
        const char *s = NULL;
        apr_size_t len = 0;

        if (c->type != XML_ELEMENT_NODE) {
            if (check_other(x, c, nm(root)) != APR_SUCCESS) {
                return x->rv;
            }
            continue;
        }
        if (check_ns(x, c) != APR_SUCCESS) {
            return x->rv;
        }
        k = name_index(c, folder_names, F_COUNT);
        if (k < 0) {
            return unknown(x, c, nm(root),
                           "name, created, modified, accessed, "
                           "attributes, role, Ext");
        }
        if (k != F_EXT && (seen & (1u << k))) {
            return repeated(x, c, nm(root));
        }
        seen |= 1u << k;
        switch (k) {
        case F_NAME:
            rv = leaf_text(x, c, &s, &len);
            if (rv == APR_SUCCESS && len == 0) {
                return px_fail(x, line_of(c),
                               apr_psprintf(x->p,
                                            "empty <%s> "
                                            "in <%s> (line %d)",
                                            nm(c), nm(root), line_of(c)));
            }
            f->name = s;
            break;
        case F_CREATED: rv = get_time(x, c, &f->created); break;
        case F_MODIFIED: rv = get_time(x, c, &f->modified); break;
        case F_ACCESSED: rv = get_time(x, c, &f->accessed); break;
        case F_ATTRIBUTES: rv = get_attributes(x, c, f); break;
        case F_ROLE:
            rv = get_str(x, c, &f->role);
            f->role_id = memds_folder_role(f->role);
            break;
        default: rv = get_ext(x, c, &f->exts); break;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    if (f->name == NULL) {
        return px_fail(x, line_of(root),
                       apr_psprintf(x->p,
                                    "<%s> (line %d) "
                                    "has no <name>",
                                    nm(root), line_of(root)));
    }
    return APR_SUCCESS;
}

/**
 * Common front end of both parsers: limits, pre-processing, the parse
 * (with the Funambol repair as a second attempt) and the root check.
 * conv fills obj from the root element.
 */
typedef apr_status_t conv_fn(px_t *x, void *obj, const xmlNode *root);

static apr_status_t conv_email_cb(px_t *x, void *obj, const xmlNode *root)
{
    return conv_email(x, obj, root);
}

static apr_status_t conv_folder_cb(px_t *x, void *obj, const xmlNode *root)
{
    return conv_folder(x, obj, root);
}

static apr_status_t parse_object(const char *data, apr_size_t len,
                                 const char *root_name, const char *own_ns,
                                 conv_fn *conv, void *obj, unsigned *pform,
                                 memds_codec_err_t *err, apr_pool_t *p)
{
    px_t x, x2;
    xmlDocPtr doc = NULL;
    const xmlNode *root;
    apr_status_t rv;

    memset(&x, 0, sizeof(x));
    x.p = p;
    x.own_ns = own_ns;
    if (len > MEMDS_EMAIL_MAX_INPUT) {
        px_fail(
            &x, 0,
            apr_psprintf(p,
                         "<%s> object of %" APR_SIZE_T_FMT
                         " bytes exceeds the parser's limit of %" APR_SIZE_T_FMT
                         " bytes",
                         root_name, len, MEMDS_EMAIL_MAX_INPUT));
        goto done;
    }
    /* Leading blanks would make an XML declaration illegal: skip them. */
    while (data && len && is_ws((unsigned char)*data)) {
        ++data;
        --len;
    }
    if (data == NULL || len == 0) {
        px_fail(&x, 0, apr_psprintf(p, "empty <%s> object", root_name));
        goto done;
    }
    if (len >= 4 && memcmp(data, "&lt;", 4) == 0) {
        /* escaped once more than the SyncML layer took off (Funambol's
         * client unescapes folder objects for this reason) */
        data = unescape_once(data, len, &len, p);
        *pform |= MEMDS_EMAIL_IF_ESCAPED;
    }
    rv = xml_parse(&x, &doc, data, len);
    if (rv != APR_SUCCESS && !x.stopped && rv != APR_ENOMEM) {
        char *fixed;
        apr_size_t flen;

        if (fnbl_repair(data, len, &fixed, &flen, p)) {
            memset(&x2, 0, sizeof(x2));
            x2.p = p;
            x2.own_ns = own_ns;
            if (xml_parse(&x2, &doc, fixed, flen) == APR_SUCCESS) {
                x.msg = NULL; /* report the first attempt's error otherwise */
                x.rv = APR_SUCCESS;
                *pform |= MEMDS_EMAIL_IF_FNBL_END;
            }
        }
    }
    if (x.msg) {
        goto done;
    }
    root = xmlDocGetRootElement(doc);
    if (root == NULL) {
        px_fail(&x, 0, "no root element");
        goto done;
    }
    if (!ascii_caseeq(nm(root), root_name)) {
        px_fail(&x, line_of(root),
                apr_psprintf(p,
                             "root element is <%s>, not "
                             "<%s>",
                             nm(root), root_name));
        goto done;
    }
    if (root->ns && root->ns->href && root->ns->href[0]) {
        x.root_ns = (const char *)root->ns->href;
        if (!ascii_caseeq(x.root_ns, own_ns)) {
            px_fail(&x, line_of(root),
                    apr_psprintf(p,
                                 "root <%s> is in "
                                 "namespace '%s', not %s (or none)",
                                 root_name, x.root_ns, own_ns));
            goto done;
        }
    }
    if (conv(&x, obj, root) != APR_SUCCESS && x.msg == NULL) {
        px_fail(&x, 0, "conversion failed");
    }

done:
    if (doc) {
        xmlFreeDoc(doc);
    }
    if (x.msg) {
        if (err) {
            err->rv = x.rv ? x.rv : APR_EINVAL;
            err->msg = x.msg;
            err->offset = 0;
            err->line = x.line;
        }
        return x.rv ? x.rv : APR_EINVAL;
    }
    return APR_SUCCESS;
}

memds_email_t *memds_email_make(apr_pool_t *p)
{
    memds_email_t *e = apr_pcalloc(p, sizeof(*e));

    e->fnbl.size = e->fnbl.body_left = e->fnbl.attach_n = MEMDS_EMAIL_NOSIZE;
    return e;
}

apr_status_t memds_email_parse(memds_email_t **pe, const char *data,
                               apr_size_t len, memds_codec_err_t *err,
                               apr_pool_t *p)
{
    memds_email_t *e = memds_email_make(p);
    unsigned form = 0;
    apr_status_t rv;

    rv = parse_object(data, len, "Email", NS_EMAIL, conv_email_cb, e, &form,
                      err, p);
    if (rv == APR_SUCCESS) {
        if (e->has_item) {
            e->item_form |= form;
        }
        *pe = e;
    }
    return rv;
}

apr_status_t memds_folder_parse(memds_folder_t **pf, const char *data,
                                apr_size_t len, memds_codec_err_t *err,
                                apr_pool_t *p)
{
    memds_folder_t *f = apr_pcalloc(p, sizeof(*f));
    unsigned form = 0;
    apr_status_t rv;

    rv = parse_object(data, len, "Folder", NS_FOLDER, conv_folder_cb, f, &form,
                      err, p);
    if (rv == APR_SUCCESS) {
        *pf = f;
    }
    return rv;
}

/* ------------------------------------------------------------ building */

typedef struct bw_t {
    memds_buf_t *out;
    memds_codec_err_t *err;
    apr_pool_t *p;
} bw_t;

#define PUTS(w, lit) memds_buf_add((w)->out, (lit), sizeof(lit) - 1)

static apr_status_t bw_fail(bw_t *w, const char *msg)
{
    if (w->err) {
        w->err->rv = APR_EINVAL;
        w->err->msg = msg;
        w->err->offset = 0;
        w->err->line = 0;
    }
    return APR_EINVAL;
}

static apr_status_t check_xml(bw_t *w, const char *what, const char *s,
                              apr_size_t len)
{
    char why[48];
    apr_size_t off = first_bad(s, len, why, sizeof(why));

    if (off < len) {
        return bw_fail(w,
                       apr_psprintf(w->p,
                                    "%s contains %s at offset %" APR_SIZE_T_FMT
                                    ", which XML cannot carry",
                                    what, why, off));
    }
    return APR_SUCCESS;
}

/* Escaped text: & < > as entities, CR as &#13;. Unless the caller checked
 * it (checked), what XML cannot carry is found in the same pass (the
 * error names it as check_xml does): the mail's text was read twice. */
static apr_status_t put_text_checked(bw_t *w, const char *what, const char *s,
                                     apr_size_t len, int checked)
{
    const unsigned char *b = (const unsigned char *)s, *end = b + len;

    /* written straight into the buffer: a mail's CRLF lines made two
     * appends per line (the run and "&#13;") */
    while (b < end) {
        unsigned char *o, *oe;
        memds_buf_reserve(w->out,
                          (apr_size_t)(end - b) + (apr_size_t)(end - b) / 16
                              + 64);
        o = (unsigned char *)w->out->data + w->out->len;
        oe = (unsigned char *)w->out->data + w->out->cap - 5; /* an entity */
        while (b < end && o < oe) {
            unsigned c;
            if (end - b >= 16 && oe - o >= 16) {
                /* sixteen bytes copied, and kept up to the first that
                 * needs an entity (or, to be checked, is 8-bit or a
                 * control byte) */
                apr_size_t n = memds_scan16(b, '&', '<', '>',
                                            checked ? '\r' : '&',
                                            checked ? MEMDS_SCAN_NONE
                                                    : MEMDS_SCAN_CTL);
                memcpy(o, b, 16);
                o += n;
                b += n;
                if (n == 16) {
                    continue;
                }
            }
            c = *b;
            if (!checked && (c < 0x20 || c >= 0x80)) {
                apr_size_t k = 1;
                unsigned cp = c;
                if (c >= 0x80) {
                    k = memds_utf8_seq(b, end, &cp);
                }
                if (k == 0 || cp == 0xFFFE || cp == 0xFFFF
                    || (c < 0x20 && c != '\t' && c != '\n' && c != '\r')) {
                    apr_status_t rv = check_xml(w, what, s, len);
                    return rv != APR_SUCCESS
                               ? rv
                               : bw_fail(w, "text XML cannot carry");
                }
                if (k > 1) {
                    memcpy(o, b, k); /* (k <= 4: room for an entity) */
                    o += k;
                    b += k;
                    continue;
                }
            }
            switch (*b++) {
            case '&': memcpy(o, "&amp;", 5); o += 5; break;
            case '<': memcpy(o, "&lt;", 4); o += 4; break;
            case '>': memcpy(o, "&gt;", 4); o += 4; break;
            case '\r': memcpy(o, "&#13;", 5); o += 5; break;
            default: *o++ = b[-1]; break;
            }
        }
        w->out->len = (apr_size_t)((char *)o - w->out->data);
    }
    return APR_SUCCESS;
}

static apr_status_t put_text(bw_t *w, const char *what, const char *s,
                             apr_size_t len)
{
    return put_text_checked(w, what, s, len, 0);
}

/* One CDATA section; an inner "]]>" split as "]]]]><![CDATA[>". */
static apr_status_t put_cdata(bw_t *w, const char *what, const char *s,
                              apr_size_t len)
{
    apr_ssize_t at;

    if (check_xml(w, what, s, len) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    PUTS(w, "<![CDATA[");
    while ((at = find(s, len, "]]>", 3)) >= 0) {
        memds_buf_add(w->out, s, (apr_size_t)at + 2);
        PUTS(w, "]]><![CDATA[");
        s += at + 2;
        len -= (apr_size_t)at + 2;
    }
    memds_buf_add(w->out, s, len);
    PUTS(w, "]]>");
    return APR_SUCCESS;
}

static void put_open(bw_t *w, const char *name)
{
    memds_buf_addc(w->out, '<');
    memds_buf_add(w->out, name, strlen(name));
    memds_buf_addc(w->out, '>');
}

static void put_close(bw_t *w, const char *name)
{
    PUTS(w, "</");
    memds_buf_add(w->out, name, strlen(name));
    memds_buf_addc(w->out, '>');
}

/* <name>text</name>, <name/> when empty. */
static apr_status_t put_leaf(bw_t *w, const char *name, const char *s,
                             apr_size_t len)
{
    if (len == 0) {
        memds_buf_addc(w->out, '<');
        memds_buf_add(w->out, name, strlen(name));
        PUTS(w, "/>");
        return APR_SUCCESS;
    }
    put_open(w, name);
    if (put_text(w, apr_psprintf(w->p, "<%s>", name), s, len) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    put_close(w, name);
    return APR_SUCCESS;
}

static apr_status_t put_bool(bw_t *w, const char *name, memds_email_bool_e b)
{
    switch (b) {
    case MEMDS_EMAIL_ABSENT: return APR_SUCCESS;
    case MEMDS_EMAIL_FALSE: return put_leaf(w, name, "false", 5);
    case MEMDS_EMAIL_TRUE: return put_leaf(w, name, "true", 4);
    default:
        return bw_fail(w, apr_psprintf(w->p,
                                       "<%s>: %d is not a tri-state "
                                       "boolean",
                                       name, (int)b));
    }
}

static apr_status_t put_time(bw_t *w, const char *name,
                             const memds_email_time_t *dt)
{
    memds_email_time_t c;

    if (dt->text == NULL) {
        return APR_SUCCESS;
    }
    /* the text is authoritative; written in canonical form */
    if (memds_email_time_parse(&c, dt->text, strlen(dt->text), w->p)
        != APR_SUCCESS) {
        return bw_fail(w,
                       apr_psprintf(w->p,
                                    "<%s>: '%s' is not an ISO 8601 "
                                    "date-time",
                                    name,
                                    shown(dt->text, strlen(dt->text), w->p)));
    }
    return put_leaf(w, name, c.text, strlen(c.text));
}

static apr_status_t put_str(bw_t *w, const char *name, const char *s)
{
    return s ? put_leaf(w, name, s, strlen(s)) : APR_SUCCESS;
}

static apr_status_t put_size(bw_t *w, const char *name, apr_int64_t v)
{
    const char *s;

    if (v == MEMDS_EMAIL_NOSIZE) {
        return APR_SUCCESS;
    }
    if (v < 0) {
        return bw_fail(w, apr_psprintf(w->p,
                                       "<%s>: negative size %" APR_INT64_T_FMT,
                                       name, v));
    }
    s = apr_psprintf(w->p, "%" APR_INT64_T_FMT, v);
    return put_leaf(w, name, s, strlen(s));
}

static apr_status_t put_exts(bw_t *w, const apr_array_header_t *exts)
{
    int i, j;

    for (i = 0; exts && i < exts->nelts; ++i) {
        const memds_ext_t *x = APR_ARRAY_IDX(exts, i, memds_ext_t *);

        if (x == NULL || x->xnam == NULL || x->xnam[0] == '\0') {
            return bw_fail(w, apr_psprintf(w->p, "Ext %d has no XNam", i + 1));
        }
        PUTS(w, "<Ext>");
        if (put_leaf(w, "XNam", x->xnam, strlen(x->xnam)) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        for (j = 0; x->xvals && j < x->xvals->nelts; ++j) {
            const char *v = APR_ARRAY_IDX(x->xvals, j, const char *);
            if (put_leaf(w, "XVal", v ? v : "", v ? strlen(v) : 0)
                != APR_SUCCESS) {
                return APR_EINVAL;
            }
        }
        PUTS(w, "</Ext>");
    }
    return APR_SUCCESS;
}

static apr_status_t put_truncated(bw_t *w, const memds_email_t *e)
{
    int i, nb = e->trunc_body ? e->trunc_body->nelts : 0,
           na = e->trunc_attach ? e->trunc_attach->nelts : 0;
    apr_size_t mark;

    if (!e->has_truncated && nb == 0 && na == 0) {
        return APR_SUCCESS;
    }
    if (nb == 0 && na == 0) {
        PUTS(w, "<truncated/>");
        return APR_SUCCESS;
    }
    PUTS(w, "<truncated>");
    for (i = 0; i < nb; ++i) {
        const memds_email_tbody_t *b = APR_ARRAY_IDX(e->trunc_body, i,
                                                     memds_email_tbody_t *);
        if (b == NULL) {
            return bw_fail(w, "a NULL truncated body entry");
        }
        PUTS(w, "<body>");
        mark = w->out->len;
        if (put_size(w, "size", b->size) != APR_SUCCESS
            || put_str(w, "type", b->type) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        if (w->out->len == mark) {
            w->out->len -= 6;
            PUTS(w, "<body/>");
        }
        else {
            PUTS(w, "</body>");
        }
    }
    for (i = 0; i < na; ++i) {
        const memds_email_attach_t *a = APR_ARRAY_IDX(e->trunc_attach, i,
                                                      memds_email_attach_t *);
        if (a == NULL) {
            return bw_fail(w, "a NULL truncated attach entry");
        }
        PUTS(w, "<attach>");
        mark = w->out->len;
        if (put_str(w, "name", a->name) != APR_SUCCESS
            || put_size(w, "size", a->size) != APR_SUCCESS
            || put_str(w, "type", a->type) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        if (w->out->len == mark) {
            w->out->len -= 8;
            PUTS(w, "<attach/>");
        }
        else {
            PUTS(w, "</attach>");
        }
    }
    PUTS(w, "</truncated>");
    return APR_SUCCESS;
}

static apr_status_t build_email(bw_t *w, const memds_email_t *e,
                                memds_email_style_e style)
{
    if (style != MEMDS_EMAIL_STYLE_TEXT && style != MEMDS_EMAIL_STYLE_CDATA) {
        return bw_fail(w, "unknown emailitem style");
    }
    PUTS(w, "<Email>");
    if (put_bool(w, "read", e->read) != APR_SUCCESS
        || put_bool(w, "forwarded", e->forwarded) != APR_SUCCESS
        || put_bool(w, "replied", e->replied) != APR_SUCCESS
        || put_time(w, "received", &e->received) != APR_SUCCESS
        || put_time(w, "created", &e->created) != APR_SUCCESS
        || put_time(w, "modified", &e->modified) != APR_SUCCESS
        || put_bool(w, "deleted", e->deleted) != APR_SUCCESS
        || put_bool(w, "flagged", e->flagged) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (e->has_item) {
        const char *s = e->item ? e->item : "";
        if (e->item == NULL && e->item_len) {
            return bw_fail(w, "emailitem has a length but no bytes");
        }
        PUTS(w, "<emailitem>");
        if ((style == MEMDS_EMAIL_STYLE_CDATA
                 ? put_cdata(w, "emailitem", s, e->item_len)
                 : put_text_checked(w, "emailitem", s, e->item_len,
                                    e->item_checked))
            != APR_SUCCESS) {
            return APR_EINVAL;
        }
        PUTS(w, "</emailitem>");
    }
    if (put_truncated(w, e) != APR_SUCCESS
        || put_exts(w, e->exts) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    PUTS(w, "</Email>");
    return APR_SUCCESS;
}

apr_status_t memds_email_build(memds_buf_t *out, const memds_email_t *e,
                               memds_email_style_e style,
                               memds_codec_err_t *err, apr_pool_t *p)
{
    bw_t w;
    apr_size_t start = out->len;
    apr_status_t rv;

    w.out = out;
    w.err = err;
    w.p = p;
    if (e == NULL) {
        return bw_fail(&w, "no email object");
    }
    rv = build_email(&w, e, style);
    if (rv != APR_SUCCESS) {
        out->len = start; /* nothing written on failure */
    }
    return rv;
}

static apr_status_t build_folder(bw_t *w, const memds_folder_t *f)
{
    static const char *const letters[MEMDS_FOLDER_NATTR] = { "h", "s", "a", "d",
                                                             "w", "r", "x" };
    int i, any = 0;

    if (f->name == NULL || f->name[0] == '\0') {
        return bw_fail(w, "a folder needs a non-empty name");
    }
    PUTS(w, "<Folder>");
    if (put_leaf(w, "name", f->name, strlen(f->name)) != APR_SUCCESS
        || put_time(w, "created", &f->created) != APR_SUCCESS
        || put_time(w, "modified", &f->modified) != APR_SUCCESS
        || put_time(w, "accessed", &f->accessed) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    for (i = 0; i < MEMDS_FOLDER_NATTR; ++i) {
        any |= f->attr[i] != MEMDS_EMAIL_ABSENT;
    }
    if (any) {
        PUTS(w, "<attributes>");
        for (i = 0; i < MEMDS_FOLDER_NATTR; ++i) {
            if (put_bool(w, letters[i], f->attr[i]) != APR_SUCCESS) {
                return APR_EINVAL;
            }
        }
        PUTS(w, "</attributes>");
    }
    else if (f->has_attributes) {
        PUTS(w, "<attributes/>");
    }
    if (put_str(w, "role", f->role) != APR_SUCCESS
        || put_exts(w, f->exts) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    PUTS(w, "</Folder>");
    return APR_SUCCESS;
}

apr_status_t memds_folder_build(memds_buf_t *out, const memds_folder_t *f,
                                memds_codec_err_t *err, apr_pool_t *p)
{
    bw_t w;
    apr_size_t start = out->len;
    apr_status_t rv;

    w.out = out;
    w.err = err;
    w.p = p;
    if (f == NULL) {
        return bw_fail(&w, "no folder object");
    }
    rv = build_folder(&w, f);
    if (rv != APR_SUCCESS) {
        out->len = start;
    }
    return rv;
}

/* ------------------------------------------------ model helpers, equal */

memds_email_tbody_t *memds_email_add_tbody(memds_email_t *e, apr_int64_t size,
                                           const char *type, apr_pool_t *p)
{
    memds_email_tbody_t *b = apr_pcalloc(p, sizeof(*b));

    b->size = size;
    b->type = type;
    if (e->trunc_body == NULL) {
        e->trunc_body = apr_array_make(p, 1, sizeof(b));
    }
    APR_ARRAY_PUSH(e->trunc_body, memds_email_tbody_t *) = b;
    e->has_truncated = 1;
    return b;
}

memds_email_attach_t *memds_email_add_tattach(memds_email_t *e,
                                              const char *name,
                                              apr_int64_t size,
                                              const char *type, apr_pool_t *p)
{
    memds_email_attach_t *a = apr_pcalloc(p, sizeof(*a));

    a->name = name;
    a->size = size;
    a->type = type;
    if (e->trunc_attach == NULL) {
        e->trunc_attach = apr_array_make(p, 2, sizeof(a));
    }
    APR_ARRAY_PUSH(e->trunc_attach, memds_email_attach_t *) = a;
    e->has_truncated = 1;
    return a;
}

memds_ext_t *memds_email_ext_add(apr_array_header_t **pexts, const char *xnam,
                                 const char *const *xvals, int n, apr_pool_t *p)
{
    memds_ext_t *x = apr_pcalloc(p, sizeof(*x));
    int i;

    x->xnam = xnam;
    x->xvals = apr_array_make(p, n > 0 ? n : 1, sizeof(const char *));
    for (i = 0; i < n; ++i) {
        APR_ARRAY_PUSH(x->xvals, const char *) = xvals[i];
    }
    if (*pexts == NULL) {
        *pexts = apr_array_make(p, 2, sizeof(x));
    }
    APR_ARRAY_PUSH(*pexts, memds_ext_t *) = x;
    return x;
}

const memds_ext_t *memds_email_ext_find(const apr_array_header_t *exts,
                                        const char *xnam)
{
    int i;

    for (i = 0; exts && xnam && i < exts->nelts; ++i) {
        const memds_ext_t *x = APR_ARRAY_IDX(exts, i, memds_ext_t *);
        if (x && x->xnam && ascii_caseeq(x->xnam, xnam)) {
            return x;
        }
    }
    return NULL;
}

int memds_email_is_flags_only(const memds_email_t *e)
{
    return e && !e->has_item;
}

int memds_email_is_truncated(const memds_email_t *e)
{
    if (e == NULL) {
        return 0;
    }
    return (e->trunc_body && e->trunc_body->nelts)
           || (e->trunc_attach && e->trunc_attach->nelts)
           || e->fnbl.body_left > 0
           || (e->fnbl.attach && e->fnbl.attach->nelts);
}

int memds_email_is_device_copy(const memds_email_t *e, const char *msg,
                               apr_size_t len)
{
    apr_int64_t limit = -1;

    if (e
        && (e->has_truncated || memds_email_is_truncated(e)
            || memds_email_ext_find(e->exts, "x-funambol-body"))) {
        return 1;
    }
    if (msg) {
        apr_status_t rv = memds_email_sync_limit(&limit, msg, len);
        return rv == APR_EINVAL || (rv == APR_SUCCESS && limit != -1);
    }
    return 0;
}

static int str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int time_eq(const memds_email_time_t *a, const memds_email_time_t *b)
{
    if (a->text == NULL || b->text == NULL) {
        return a->text == b->text;
    }
    return strcmp(a->text, b->text) == 0 && a->t == b->t
           && a->floating == b->floating;
}

static int exts_eq(const apr_array_header_t *a, const apr_array_header_t *b)
{
    int na = a ? a->nelts : 0, nb = b ? b->nelts : 0, i, j;

    if (na != nb) {
        return 0;
    }
    for (i = 0; i < na; ++i) {
        const memds_ext_t *x = APR_ARRAY_IDX(a, i, memds_ext_t *),
                          *y = APR_ARRAY_IDX(b, i, memds_ext_t *);
        int nx = x->xvals ? x->xvals->nelts : 0,
            ny = y->xvals ? y->xvals->nelts : 0;
        if (!str_eq(x->xnam, y->xnam) || nx != ny) {
            return 0;
        }
        for (j = 0; j < nx; ++j) {
            const char *u = APR_ARRAY_IDX(x->xvals, j, const char *),
                       *v = APR_ARRAY_IDX(y->xvals, j, const char *);
            if (!str_eq(u ? u : "", v ? v : "")) {
                return 0;
            }
        }
    }
    return 1;
}

int memds_email_equal(const memds_email_t *a, const memds_email_t *b)
{
    int nba, nbb, naa, nab, i;

    if (a == NULL || b == NULL) {
        return a == b;
    }
    if (a->read != b->read || a->forwarded != b->forwarded
        || a->replied != b->replied || a->deleted != b->deleted
        || a->flagged != b->flagged || !time_eq(&a->received, &b->received)
        || !time_eq(&a->created, &b->created)
        || !time_eq(&a->modified, &b->modified) || a->has_item != b->has_item) {
        return 0;
    }
    if (a->has_item
        && (a->item_len != b->item_len
            || (a->item_len && memcmp(a->item, b->item, a->item_len) != 0))) {
        return 0;
    }
    nba = a->trunc_body ? a->trunc_body->nelts : 0;
    nbb = b->trunc_body ? b->trunc_body->nelts : 0;
    naa = a->trunc_attach ? a->trunc_attach->nelts : 0;
    nab = b->trunc_attach ? b->trunc_attach->nelts : 0;
    if ((a->has_truncated || nba || naa) != (b->has_truncated || nbb || nab)
        || nba != nbb || naa != nab) {
        return 0;
    }
    for (i = 0; i < nba; ++i) {
        const memds_email_tbody_t *x = APR_ARRAY_IDX(a->trunc_body, i,
                                                     memds_email_tbody_t *),
                                  *y = APR_ARRAY_IDX(b->trunc_body, i,
                                                     memds_email_tbody_t *);
        if (x->size != y->size || !str_eq(x->type, y->type)) {
            return 0;
        }
    }
    for (i = 0; i < naa; ++i) {
        const memds_email_attach_t *x = APR_ARRAY_IDX(a->trunc_attach, i,
                                                      memds_email_attach_t *),
                                   *y = APR_ARRAY_IDX(b->trunc_attach, i,
                                                      memds_email_attach_t *);
        if (x->size != y->size || !str_eq(x->type, y->type)
            || !str_eq(x->name, y->name)) {
            return 0;
        }
    }
    return exts_eq(a->exts, b->exts);
}

int memds_folder_equal(const memds_folder_t *a, const memds_folder_t *b)
{
    int i, anya = a && a->has_attributes, anyb = b && b->has_attributes;

    if (a == NULL || b == NULL) {
        return a == b;
    }
    for (i = 0; i < MEMDS_FOLDER_NATTR; ++i) {
        if (a->attr[i] != b->attr[i]) {
            return 0;
        }
        anya |= a->attr[i] != MEMDS_EMAIL_ABSENT;
        anyb |= b->attr[i] != MEMDS_EMAIL_ABSENT;
    }
    return anya == anyb && str_eq(a->name, b->name)
           && time_eq(&a->created, &b->created)
           && time_eq(&a->modified, &b->modified)
           && time_eq(&a->accessed, &b->accessed) && str_eq(a->role, b->role)
           && exts_eq(a->exts, b->exts);
}

/* -------------------------------------------------------------- roles */

memds_folder_role_e memds_folder_role(const char *role)
{
    static const struct {
        const char *name;
        memds_folder_role_e r;
    } map[] = { { "inbox", MEMDS_FOLDER_ROLE_INBOX },
                { "outbox", MEMDS_FOLDER_ROLE_OUTBOX },
                { "sent", MEMDS_FOLDER_ROLE_SENT },
                { "drafts", MEMDS_FOLDER_ROLE_DRAFTS },
                { "draft", MEMDS_FOLDER_ROLE_DRAFTS },
                { "trash", MEMDS_FOLDER_ROLE_TRASH },
                { "deleted", MEMDS_FOLDER_ROLE_TRASH },
                { "account", MEMDS_FOLDER_ROLE_ACCOUNT } };
    apr_size_t i;

    if (role == NULL) {
        return MEMDS_FOLDER_ROLE_NONE;
    }
    for (i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
        if (ascii_caseeq(role, map[i].name)) {
            return map[i].r;
        }
    }
    return MEMDS_FOLDER_ROLE_OTHER;
}

const char *memds_folder_role_name(memds_folder_role_e role)
{
    switch (role) {
    case MEMDS_FOLDER_ROLE_INBOX: return "inbox";
    case MEMDS_FOLDER_ROLE_OUTBOX: return "outbox";
    case MEMDS_FOLDER_ROLE_SENT: return "sent";
    case MEMDS_FOLDER_ROLE_DRAFTS: return "drafts";
    case MEMDS_FOLDER_ROLE_TRASH: return "deleted";
    case MEMDS_FOLDER_ROLE_ACCOUNT: return "account";
    default: return NULL;
    }
}

/* ---------------------------------------------------------- IMAP flags */

/* The IMAP flag of each Email flag; FORWARDED_AT is $Forwarded's index. */
static const char *const imap_flags[] = { "\\Seen", "\\Answered",
                                          MEMDS_EMAIL_IMAP_FORWARDED,
                                          "\\Flagged", "\\Deleted" };
#define NFLAGS ((int)(sizeof(imap_flags) / sizeof(imap_flags[0])))
#define FORWARDED_AT 2

/* The Email flag that imap_flags[i] carries. */
static memds_email_bool_e *flag_field(memds_email_t *e, int i)
{
    switch (i) {
    case 0: return &e->read;
    case 1: return &e->replied;
    case 2: return &e->forwarded;
    case 3: return &e->flagged;
    default: return &e->deleted;
    }
}

static memds_email_bool_e flag_value(const memds_email_t *e, int i)
{
    switch (i) {
    case 0: return e->read;
    case 1: return e->replied;
    case 2: return e->forwarded;
    case 3: return e->flagged;
    default: return e->deleted;
    }
}

static const char *joined(const apr_array_header_t *a, apr_pool_t *p)
{
    return a->nelts ? apr_array_pstrcat(p, a, ' ') : NULL;
}

void memds_email_flags_to_imap(memds_email_flagops_t *ops,
                               const memds_email_t *e, apr_pool_t *p)
{
    int i;

    ops->add = apr_array_make(p, NFLAGS, sizeof(const char *));
    ops->remove = apr_array_make(p, NFLAGS, sizeof(const char *));
    for (i = 0; e && i < NFLAGS; ++i) {
        memds_email_bool_e b = flag_value(e, i);
        if (b == MEMDS_EMAIL_TRUE) {
            APR_ARRAY_PUSH(ops->add, const char *) = imap_flags[i];
        }
        else if (b == MEMDS_EMAIL_FALSE) {
            APR_ARRAY_PUSH(ops->remove, const char *) = imap_flags[i];
        }
    }
    ops->add_str = joined(ops->add, p);
    ops->remove_str = joined(ops->remove, p);
}

void memds_email_from_imap_flags(memds_email_t *e, const char *const *flags,
                                 int n)
{
    int i, j;

    for (i = 0; i < NFLAGS; ++i) {
        *flag_field(e, i) = MEMDS_EMAIL_FALSE;
    }
    for (j = 0; flags && j < n; ++j) {
        if (flags[j] == NULL) {
            continue;
        }
        for (i = 0; i < NFLAGS; ++i) {
            if (ascii_caseeq(flags[j], imap_flags[i])
                || (i == FORWARDED_AT && ascii_caseeq(flags[j], "Forwarded"))) {
                *flag_field(e, i) = MEMDS_EMAIL_TRUE;
            }
        }
    }
}

/* ---------------------------------------------------- RFC 2822 helpers */

apr_status_t memds_email_sync_limit(apr_int64_t *plimit, const char *msg,
                                    apr_size_t len)
{
    static const char name[] = "x-sync-message-limit";
    apr_size_t pos = 0;

    while (msg && pos < len) {
        const char *nl = memchr(msg + pos, '\n', len - pos);
        apr_size_t eol = nl ? (apr_size_t)(nl - msg) : len, end = eol, i;

        if (end > pos && msg[end - 1] == '\r') {
            --end;
        }
        if (end == pos) {
            break; /* the blank line: end of the header section */
        }
        if (ascii_prefix(msg + pos, end - pos, name)) {
            char buf[32];
            apr_size_t n = 0;
            const char *v;
            apr_int64_t val;
            int neg = 0;

            i = pos + sizeof(name) - 1;
            while (i < end && (msg[i] == ' ' || msg[i] == '\t')) {
                ++i;
            }
            if (i < end && msg[i] == ':') {
                /* the value with its continuation lines, blanks dropped */
                for (++i;;) {
                    for (; i < end; ++i) {
                        if (!is_ws((unsigned char)msg[i])) {
                            if (n + 1 >= sizeof(buf)) {
                                return APR_EINVAL;
                            }
                            buf[n++] = msg[i];
                        }
                    }
                    pos = eol + 1;
                    if (pos >= len || (msg[pos] != ' ' && msg[pos] != '\t')) {
                        break;
                    }
                    nl = memchr(msg + pos, '\n', len - pos);
                    eol = nl ? (apr_size_t)(nl - msg) : len;
                    end = eol;
                    i = pos;
                }
                buf[n] = '\0';
                v = buf;
                if (*v == '-') {
                    neg = 1;
                    ++v;
                }
                if (!parse_size(v, &val) || (neg && val != 1)) {
                    return APR_EINVAL;
                }
                *plimit = neg ? -1 : val;
                return APR_SUCCESS;
            }
        }
        pos = eol + 1;
    }
    return APR_NOTFOUND;
}

void memds_email_crlf(const char **pout, apr_size_t *poutlen, const char *data,
                      apr_size_t len, apr_pool_t *p)
{
    apr_size_t i, extra = 0;
    char *out, *o;

    for (i = 0; i < len; ++i) {
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
            ++extra;
        }
        else if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n')) {
            ++extra;
        }
    }
    if (extra == 0) {
        *pout = data;
        *poutlen = len;
        return;
    }
    out = o = apr_palloc(p, len + extra + 1);
    for (i = 0; i < len; ++i) {
        if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) {
            *o++ = '\r';
            *o++ = '\n';
        }
        else if (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n')) {
            *o++ = '\r';
            *o++ = '\n';
        }
        else {
            *o++ = data[i];
        }
    }
    *o = '\0';
    *pout = out;
    *poutlen = (apr_size_t)(o - out);
}
