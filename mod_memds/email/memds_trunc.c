/* memds_trunc.c: a mail truncated from its structure (memds_trunc.h).
 * Pure MIME: the original's sections come through the caller's callback. */
#include "email/memds_trunc.h"
#include "email/memds_mime.h"
#include "util/memds_buf.h"
#include "util/memds_util.h"

#include <apr_base64.h>
#include <apr_strings.h>
#include <string.h>
#include <strings.h>

/* What the MIME fields of the result and the blank line take at most
 * (subtype and charset are tokens of at most 64 bytes: token_or). */
#define MIME_OVERHEAD 256

static int is_text(const memds_trunc_part_t *l)
{
    return !strcasecmp(l->type, "text")
           && (!l->disposition || strcasecmp(l->disposition, "attachment"))
           && l->name == NULL;
}

/* The preferred text part: the first text/plain, else the first
 * text/html, that is not an attachment. */
static const memds_trunc_part_t *text_part(const apr_array_header_t *parts)
{
    static const char *const pref[] = { "plain", "html" };
    int i, k;

    for (k = 0; k < 2; ++k) {
        for (i = 0; parts && i < parts->nelts; ++i) {
            const memds_trunc_part_t *l = &APR_ARRAY_IDX(parts, i,
                                                         memds_trunc_part_t);
            if (is_text(l) && !strcasecmp(l->subtype, pref[k])) {
                return l;
            }
        }
    }
    return NULL;
}

const memds_trunc_part_t *memds_trunc_text_part(const apr_array_header_t *parts)
{
    return text_part(parts);
}

static int utf8_charset(const char *cs)
{
    return !cs || !strcasecmp(cs, "utf-8") || !strcasecmp(cs, "us-ascii");
}

/* The length of the longest prefix of d[0..n) that is valid UTF-8 without
 * NUL or lines over 998 bytes, when all of it is, but for a sequence cut
 * at the end when cut is set; (apr_size_t)-1 when it is not such text. */
static apr_size_t utf8_text_len(const char *d, apr_size_t n, int cut,
                                int *pcrlf)
{
    const unsigned char *s = (const unsigned char *)d, *end = s + n;
    apr_size_t i = 0, line = 0;
    unsigned cp;

    *pcrlf = 1;
    while (i < n) {
        apr_size_t l = 1;
        if (n - i >= 16) {
            /* sixteen bytes at once up to the first NUL, CR, LF or 8-bit */
            apr_size_t k = memds_scan16(s + i, 0, '\n', '\r', '\r',
                                        MEMDS_SCAN_HIGH);
            line += k;
            if (line > 998) {
                return (apr_size_t)-1;
            }
            i += k;
            if (k == 16) {
                continue;
            }
        }
        if (s[i] == 0) {
            return (apr_size_t)-1;
        }
        if (s[i] >= 0x80 && (l = memds_utf8_seq(s + i, end, &cp)) == 0) {
            /* a sequence that the cut at n split is no error */
            if (cut && n - i < 4 && (s[i] & 0xC0) == 0xC0) {
                unsigned char tmp[4];
                apr_size_t need = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
                if (n - i < need) {
                    memcpy(tmp, s + i, n - i);
                    memset(tmp + (n - i), 0x80, need - (n - i));
                    if (memds_utf8_seq(tmp, tmp + need, &cp) == need) {
                        return i;
                    }
                }
            }
            return (apr_size_t)-1;
        }
        if ((s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
            || (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))) {
            *pcrlf = 0; /* (a bare CR or LF: add_crlf_text) */
        }
        line = s[i] == '\n' ? 0 : line + l;
        if (line > 998) {
            return (apr_size_t)-1;
        }
        i += l;
    }
    return n;
}

/* text with every line ending in CRLF (bare LF and CR made CRLF). */
static void add_crlf_text(memds_buf_t *b, const char *t, apr_size_t n)
{
    apr_size_t i = 0, start = 0;

    /* A CRLF stays as it is: only a bare CR or LF breaks the run copied */
    while (i < n) {
        if (n - i >= 16) {
            apr_size_t k = memds_scan16((const unsigned char *)t + i, '\r',
                                        '\n', '\r', '\n', MEMDS_SCAN_NONE);
            i += k;
            if (k == 16) {
                continue;
            }
        }
        if (t[i] == '\r' && i + 1 < n && t[i + 1] == '\n') {
            i += 2;
            continue;
        }
        if (t[i] == '\r' || t[i] == '\n') {
            memds_buf_add(b, t + start, i - start);
            memds_buf_add(b, "\r\n", 2);
            start = ++i;
            continue;
        }
        ++i;
    }
    memds_buf_add(b, t + start, n - start);
    if (n > 0 && t[n - 1] != '\n' && t[n - 1] != '\r') {
        memds_buf_add(b, "\r\n", 2);
    }
}

/* base64 of d[0..n) in lines of 76 characters. */
static void add_base64(memds_buf_t *b, const char *d, apr_size_t n,
                       apr_pool_t *p)
{
    apr_size_t i;

    for (i = 0; i < n; i += 57) {
        apr_size_t k = n - i < 57 ? n - i : 57;
        char *enc = apr_palloc(p, apr_base64_encode_len((int)k));
        int el = apr_base64_encode(enc, d + i, (int)k);
        memds_buf_add(b, enc,
                      strlen(enc) < (apr_size_t)el ? strlen(enc)
                                                   : (apr_size_t)el);
        memds_buf_add(b, "\r\n", 2);
    }
}

/* The bytes base64 of n bytes takes in lines of 76 with CRLF. */
static apr_size_t base64_size(apr_size_t n)
{
    apr_size_t lines = (n + 56) / 57;
    return (n + 2) / 3 * 4 + lines * 2;
}

/* One field "Name: value" with value cut to MEMDS_TRUNC_FIELD_MAX bytes
 * (at the last comma or blank before the limit when there is one). */
static void add_cut_field(memds_buf_t *b, const char *name, const char *v)
{
    apr_size_t n = strlen(v);

    if (n > MEMDS_TRUNC_FIELD_MAX) {
        apr_size_t k = MEMDS_TRUNC_FIELD_MAX;
        while (k > 0 && v[k] != ',' && v[k] != ' ') {
            --k;
        }
        n = k > 0 ? k : MEMDS_TRUNC_FIELD_MAX;
    }
    memds_buf_add(b, name, strlen(name));
    memds_buf_add(b, ": ", 2);
    memds_buf_add(b, v, n);
    memds_buf_add(b, "\r\n", 2);
}

/* The header to send: the original's without its MIME fields, or when
 * that does not leave MIME_OVERHEAD bytes in budget only the fields a
 * reader needs, each cut. NULL when the header cannot be read. */
static const char *cut_header(apr_size_t *plen, const char *hdr,
                              apr_size_t hdrlen, apr_size_t budget,
                              apr_pool_t *p)
{
    static const char *const drop[] = { "MIME-Version", "Content-Type",
                                        "Content-Transfer-Encoding",
                                        "Content-Disposition", NULL };
    static const char *const keep[] = { "From",        "To",   "Cc",
                                        "Subject",     "Date", "Message-ID",
                                        "In-Reply-To", NULL };
    apr_size_t body;
    const char *h = memds_mime_header_without(hdr, hdrlen, drop, &body, p);
    memds_buf_t b;
    int i;

    if (h == NULL) {
        return NULL;
    }
    if (strlen(h) + MIME_OVERHEAD <= budget && !memchr(hdr, 0, hdrlen)) {
        *plen = strlen(h);
        return h;
    }
    memds_buf_init(&b, 1024, p);
    for (i = 0; keep[i]; ++i) {
        const char *v = memds_mime_header_value(hdr, hdrlen, keep[i], p);
        if (v) {
            add_cut_field(&b, keep[i], v);
        }
    }
    memds_buf_add(&b, "", 1);
    *plen = b.len - 1;
    return b.data;
}

/* s when it is a MIME token (RFC 2045), else dflt. */
static const char *token_or(const char *s, const char *dflt)
{
    const char *c;

    if (s == NULL || *s == 0 || strlen(s) > 64) {
        return dflt;
    }
    for (c = s; *c; ++c) {
        if (*c <= ' ' || *c >= 127 || strchr("()<>@,;:\\\"/[]?=", *c)) {
            return dflt;
        }
    }
    return s;
}

static const char *mime_type(const memds_trunc_part_t *l, apr_pool_t *p)
{
    return apr_pstrcat(p, l->type, "/", l->subtype, NULL);
}

/* The <truncated> entries: the text part when cut (or when there is
 * none), every other text part as a body, every other part attached. */
static int list_omitted(memds_email_t *e, const memds_trunc_orig_t *o,
                        const memds_trunc_part_t *tp, int text_whole,
                        const memds_trunc_part_t *att, apr_pool_t *p)
{
    int i, n = 0;

    e->has_truncated = 1;
    for (i = 0; o->parts && i < o->parts->nelts; ++i) {
        const memds_trunc_part_t *l = &APR_ARRAY_IDX(o->parts, i,
                                                     memds_trunc_part_t);
        if ((l == tp && text_whole) || l == att) {
            continue;
        }
        ++n;
        if (is_text(l)) {
            memds_email_add_tbody(e, l->size, mime_type(l, p), p);
        }
        else {
            memds_email_add_tattach(e,
                                    l->name ? l->name
                                            : apr_pstrcat(p, "part-",
                                                          l->section, NULL),
                                    l->size, mime_type(l, p), p);
        }
    }
    return n;
}

/* The leaf named name that is not the text part, or NULL. */
static const memds_trunc_part_t *attachment(const memds_trunc_orig_t *o,
                                            const memds_trunc_part_t *tp,
                                            const char *name)
{
    int i;

    for (i = 0; name && o->parts && i < o->parts->nelts; ++i) {
        const memds_trunc_part_t *l = &APR_ARRAY_IDX(o->parts, i,
                                                     memds_trunc_part_t);
        if (l != tp && l->name && strcmp(l->name, name) == 0) {
            return l;
        }
    }
    return NULL;
}

static int contains(const char *d, apr_size_t n, const char *w)
{
    apr_size_t k = strlen(w), i;

    for (i = 0; i + k <= n; ++i) {
        if (d[i] == w[0] && memcmp(d + i, w, k) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A boundary that occurs in none of the given data. */
static const char *boundary_for(const char *a, apr_size_t al, const char *b,
                                apr_size_t bl, apr_pool_t *p)
{
    int k;

    for (k = 0;; ++k) {
        const char *bd = apr_psprintf(p, "=_memds_part_%d", k);
        if (!contains(a, al, bd) && !contains(b, bl, bd)) {
            return bd;
        }
    }
}

apr_status_t memds_trunc_build(const char **pout, apr_size_t *plen,
                               memds_email_t *e, const memds_trunc_orig_t *o,
                               apr_size_t budget, const char **pwhy,
                               apr_pool_t *p)
{
    int all;

    return memds_trunc_build_opts(pout, plen, e, o, budget, NULL, &all, pwhy,
                                  p);
}

apr_status_t memds_trunc_build_opts(const char **pout, apr_size_t *plen,
                                    memds_email_t *e,
                                    const memds_trunc_orig_t *o,
                                    apr_size_t budget,
                                    const memds_trunc_opts_t *opts, int *pall,
                                    const char **pwhy, apr_pool_t *p)
{
    const memds_trunc_part_t *tp = text_part(o->parts), *att = NULL;
    const char *hdr, *h, *text = "", *charset, *subtype, *amime = NULL,
                         *abody = NULL, *bd = NULL;
    apr_size_t hdrlen, hl, room, want, tl = 0, keep, aml = 0, abl = 0;
    memds_buf_t out;
    int b64 = 0, text_whole = 0, crlf = 0;
    apr_status_t rv;

    *pwhy = NULL;
    if ((rv = o->fetch(o->baton, "HEADER", 0, 0, &hdr, &hdrlen))
        != APR_SUCCESS) {
        return rv;
    }
    h = cut_header(&hl, hdr, hdrlen, budget, p);
    if (h == NULL) {
        *pwhy = "cannot read the header of the message";
        return APR_EINVAL;
    }
    if (hl + MIME_OVERHEAD > budget) {
        *pwhy = apr_psprintf(p,
                             "even the cut header (%" APR_SIZE_T_FMT
                             " bytes) does not fit %" APR_SIZE_T_FMT " bytes",
                             hl, budget);
        return APR_ENOSPC;
    }
    room = budget - hl - MIME_OVERHEAD;
    att = attachment(o, tp, opts ? opts->attach_name : NULL);
    if (att && att->size >= 0
        && (apr_size_t)att->size + 2 * MIME_OVERHEAD < room) {
        /* the attachment asked for, as stored: its MIME header and body */
        if ((rv = o->fetch(o->baton,
                           apr_pstrcat(p, att->section, ".MIME", NULL), 0, 0,
                           &amime, &aml))
                != APR_SUCCESS
            || (rv = o->fetch(o->baton, att->section, 0, 0, &abody, &abl))
                   != APR_SUCCESS) {
            return rv;
        }
        if (aml + abl + 2 * MIME_OVERHEAD < room) {
            room -= aml + abl + 2 * MIME_OVERHEAD;
        }
        else {
            att = NULL; /* (bigger than BODYSTRUCTURE said) */
        }
    }
    else {
        att = NULL;
    }
    charset = tp ? token_or(tp->charset, NULL) : NULL;
    subtype = tp ? token_or(tp->subtype, "plain") : "plain";
    if (tp && room > 8 && !(opts && opts->text_max == 0)) {
        /* as text, a CR may become CRLF: half the room is always safe;
         * as base64, 3 bytes take 4 and a CRLF every 57 */
        want = room / 2;
        if (opts && opts->text_max > 0 && (apr_size_t)opts->text_max < want) {
            want = (apr_size_t)opts->text_max;
        }
        if ((rv = o->fetch(o->baton, tp->section, 1, want, &text, &tl))
            != APR_SUCCESS) {
            return rv;
        }
        text_whole = tl < want;
        keep = utf8_charset(tp->charset)
                   ? utf8_text_len(text, tl, !text_whole, &crlf)
                   : (apr_size_t)-1;
        if (keep == (apr_size_t)-1) {
            b64 = 1;
            keep = tl;
            while (keep > 0 && base64_size(keep) > room) {
                keep = keep > 64 ? keep - keep / 8 : keep - 1;
            }
        }
        text_whole = text_whole && keep == tl;
        tl = keep;
    }
    *pall = list_omitted(e, o, tp, text_whole, att, p) == 0;
    memds_buf_init(&out, hl + 2 * MIME_OVERHEAD + tl * 2 + aml + abl + 16, p);
    memds_buf_add(&out, h, hl);
    memds_buf_add(&out, "MIME-Version: 1.0\r\n", 19);
    if (att) {
        bd = boundary_for(amime, aml, abody, abl, p);
        memds_buf_addstr(&out, "Content-Type: multipart/mixed; boundary=\"");
        memds_buf_addstr(&out, bd);
        memds_buf_addstr(&out, "\"\r\n\r\n--");
        memds_buf_addstr(&out, bd);
        memds_buf_add(&out, "\r\n", 2);
    }
    memds_buf_add(&out, "Content-Type: text/", 19);
    memds_buf_add(&out, subtype, strlen(subtype));
    memds_buf_add(&out, "; charset=", 10);
    charset = charset ? charset : "utf-8";
    memds_buf_add(&out, charset, strlen(charset));
    if (b64) {
        memds_buf_add(&out, "\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                      39);
        add_base64(&out, text, tl, p);
    }
    else {
        memds_buf_add(&out, "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", 37);
        if (crlf) {
            /* (every line end is CRLF already, as a mail's are: one copy,
             * ended as add_crlf_text ends it) */
            memds_buf_add(&out, text, tl);
            if (tl > 0 && text[tl - 1] != '\n') {
                memds_buf_add(&out, "\r\n", 2);
            }
        }
        else {
            add_crlf_text(&out, text, tl);
        }
    }
    if (att) {
        /* (the CRLF before a delimiter belongs to it: each part keeps its
         * bytes exactly) */
        memds_buf_addstr(&out, "\r\n--");
        memds_buf_addstr(&out, bd);
        memds_buf_add(&out, "\r\n", 2);
        memds_buf_add(&out, amime, aml);
        memds_buf_add(&out, abody, abl);
        memds_buf_addstr(&out, "\r\n--");
        memds_buf_addstr(&out, bd);
        memds_buf_add(&out, "--\r\n", 4);
    }
    memds_buf_add(&out, "", 1);
    *pout = out.data;
    *plen = out.len - 1;
    return APR_SUCCESS;
}
