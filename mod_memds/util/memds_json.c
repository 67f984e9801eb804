/* memds_json.c: a flat JSON object (memds_json.h). */
#include "util/memds_json.h"
#include "util/memds_buf.h"

#include <apr_strings.h>
#include <string.h>

typedef struct {
    const char *s, *end, *start, *why;
    apr_pool_t *p;
} jc_t;

static int fail(jc_t *c, const char *what)
{
    c->why = apr_psprintf(c->p, "%s at offset %ld", what,
                          (long)(c->s - c->start));
    return 0;
}

static void ws(jc_t *c)
{
    while (
        c->s < c->end
        && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r')) {
        ++c->s;
    }
}

static int hex4(jc_t *c, unsigned *pv)
{
    unsigned v = 0;
    int i;

    if (c->end - c->s < 4) {
        return fail(c, "short \\u escape");
    }
    for (i = 0; i < 4; ++i) {
        char h = c->s[i];
        v <<= 4;
        if (h >= '0' && h <= '9') {
            v |= (unsigned)(h - '0');
        }
        else if (h >= 'a' && h <= 'f') {
            v |= (unsigned)(h - 'a' + 10);
        }
        else if (h >= 'A' && h <= 'F') {
            v |= (unsigned)(h - 'A' + 10);
        }
        else {
            return fail(c, "bad \\u escape");
        }
    }
    c->s += 4;
    *pv = v;
    return 1;
}

static void utf8(memds_buf_t *b, unsigned cp)
{
    char o[4];
    int n;

    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    }
    else if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    }
    else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    else {
        o[0] = (char)(0xF0 | cp >> 18);
        o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    memds_buf_add(b, o, (apr_size_t)n);
}

/* A string at c->s (its opening quote). */
static int string(jc_t *c, const char **pout)
{
    memds_buf_t b;

    if (c->s >= c->end || *c->s != '"') {
        return fail(c, "expected a string");
    }
    ++c->s;
    memds_buf_init(&b, 32, c->p);
    while (c->s < c->end && *c->s != '"') {
        unsigned char ch = (unsigned char)*c->s;
        if (ch < 0x20) {
            return fail(c, "control character in a string");
        }
        if (ch != '\\') {
            memds_buf_addc(&b, (char)ch);
            ++c->s;
            continue;
        }
        if (++c->s >= c->end) {
            return fail(c, "unfinished escape");
        }
        switch (*c->s++) {
        case '"': memds_buf_addc(&b, '"'); break;
        case '\\': memds_buf_addc(&b, '\\'); break;
        case '/': memds_buf_addc(&b, '/'); break;
        case 'b': memds_buf_addc(&b, '\b'); break;
        case 'f': memds_buf_addc(&b, '\f'); break;
        case 'n': memds_buf_addc(&b, '\n'); break;
        case 'r': memds_buf_addc(&b, '\r'); break;
        case 't': memds_buf_addc(&b, '\t'); break;
        case 'u': {
            unsigned cp, lo;
            if (!hex4(c, &cp)) {
                return 0;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (c->end - c->s < 2 || c->s[0] != '\\' || c->s[1] != 'u') {
                    return fail(c, "lone high surrogate");
                }
                c->s += 2;
                if (!hex4(c, &lo)) {
                    return 0;
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    return fail(c, "bad low surrogate");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return fail(c, "lone low surrogate");
            }
            if (cp == 0) {
                return fail(c, "NUL in a string");
            }
            utf8(&b, cp);
            break;
        }
        default: return fail(c, "unknown escape");
        }
    }
    if (c->s >= c->end) {
        return fail(c, "unfinished string");
    }
    ++c->s;
    memds_buf_addc(&b, '\0');
    *pout = b.data;
    return 1;
}

/* A number, true, false or null: as written. */
static int scalar(jc_t *c, const char **pout)
{
    const char *b = c->s;
    static const char *const words[] = { "true", "false", "null" };
    int i;

    for (i = 0; i < 3; ++i) {
        apr_size_t n = strlen(words[i]);
        if ((apr_size_t)(c->end - c->s) >= n
            && memcmp(c->s, words[i], n) == 0) {
            c->s += n;
            *pout = words[i];
            return 1;
        }
    }
    if (c->s < c->end && *c->s == '-') {
        ++c->s;
    }
    if (c->s >= c->end || *c->s < '0' || *c->s > '9') {
        return fail(c, "expected a value (string, number, true, false, null)");
    }
    if (*c->s == '0') {
        ++c->s;
    }
    else {
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            ++c->s;
        }
    }
    if (c->s < c->end && *c->s == '.') {
        const char *d = ++c->s;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            ++c->s;
        }
        if (c->s == d) {
            return fail(c, "no digit after the decimal point");
        }
    }
    if (c->s < c->end && (*c->s == 'e' || *c->s == 'E')) {
        const char *d;
        ++c->s;
        if (c->s < c->end && (*c->s == '+' || *c->s == '-')) {
            ++c->s;
        }
        d = c->s;
        while (c->s < c->end && *c->s >= '0' && *c->s <= '9') {
            ++c->s;
        }
        if (c->s == d) {
            return fail(c, "no digit in the exponent");
        }
    }
    *pout = apr_pstrmemdup(c->p, b, (apr_size_t)(c->s - b));
    return 1;
}

apr_status_t memds_json_flat(apr_table_t **pfields, const char *buf,
                             apr_size_t len, const char **why, apr_pool_t *p)
{
    jc_t c;
    apr_table_t *t = apr_table_make(p, 8);
    int first = 1;

    c.s = c.start = buf;
    c.end = buf + len;
    c.why = NULL;
    c.p = p;
    ws(&c);
    if (c.s >= c.end || *c.s != '{') {
        fail(&c, "expected an object");
        goto bad;
    }
    ++c.s;
    for (;;) {
        const char *k, *v;
        ws(&c);
        if (c.s < c.end && *c.s == '}' && first) {
            ++c.s;
            break;
        }
        if (!string(&c, &k)) {
            goto bad;
        }
        ws(&c);
        if (c.s >= c.end || *c.s != ':') {
            fail(&c, "expected ':'");
            goto bad;
        }
        ++c.s;
        ws(&c);
        if (c.s < c.end && (*c.s == '{' || *c.s == '[')) {
            fail(&c, "nested objects and arrays are not taken");
            goto bad;
        }
        if (!(c.s < c.end && *c.s == '"' ? string(&c, &v) : scalar(&c, &v))) {
            goto bad;
        }
        apr_table_set(t, k, v);
        first = 0;
        ws(&c);
        if (c.s < c.end && *c.s == ',') {
            ++c.s;
            continue;
        }
        if (c.s < c.end && *c.s == '}') {
            ++c.s;
            break;
        }
        fail(&c, "expected ',' or '}'");
        goto bad;
    }
    ws(&c);
    if (c.s != c.end) {
        fail(&c, "trailing bytes after the object");
        goto bad;
    }
    *pfields = t;
    return APR_SUCCESS;
bad:
    *why = c.why;
    return APR_EINVAL;
}
