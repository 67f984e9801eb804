/* memds_wbxml.c: WBXML 1.1-1.3 codec for SyncML 1.0-1.2 with MetInf and a
 * nested DevInf document (memds_tree.h; syncml-core.md section 6).
 *
 * Why our own tokenizer (DESIGN.md decision 7): libwbxml's public converter
 * goes through XML, puts opaque item data into CDATA and emits malformed XML
 * when the data contains "]]>" (every email object with a CDATA emailitem).
 * SyncML needs only SWITCH_PAGE, END, STR_I, STR_T, OPAQUE and ENTITY plus
 * three small tag tables, so decoding straight into memds_tree_t is simpler
 * and keeps item bytes exact.
 *
 * Both directions are iterative over the tree (parent pointers replace a
 * stack), so hostile nesting cannot exhaust the C stack; the only recursion
 * is the one level into a nested DevInf document, which has no <Data>.
 * Nothing here keeps state between calls: every call works on its own
 * context struct, so the codec is thread-safe.
 */
#include "syncml/memds_wbxml.h"
#include "util/memds_util.h"

#include <apr_strings.h>
#include <stdarg.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define WB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define WB_PRINTF(f, a)
#endif

/* Global tokens (WBXML 1.3, section 7.1). */
#define WB_SWITCH_PAGE 0x00
#define WB_END 0x01
#define WB_ENTITY 0x02
#define WB_STR_I 0x03
#define WB_LITERAL 0x04
#define WB_PI 0x43
#define WB_STR_T 0x83
#define WB_OPAQUE 0xC3
#define WB_CONTENT 0x40 /* tag bit: element has content */
#define WB_ATTRS 0x80   /* tag bit: element has attributes */

#define WB_CHARSET_UTF8 106
#define WB_CHARSET_ASCII 3

/* The WBXML version we write: what libsynthesis and phones send. */
#define WB_OUT_VERSION 0x02

#define DEVINF_WBXML "application/vnd.syncml-devinf+wbxml"
#define DEVINF_XML "application/vnd.syncml-devinf+xml"

typedef enum { DOC_SYNCML, DOC_DEVINF } doc_kind_e;

/* Public identifiers (syncml-core.md 6.1). MetInf has one (0x1202) but is
 * never a document of its own, so it is not accepted here. */
typedef struct {
    apr_uint32_t id;
    doc_kind_e kind;
    memds_ver_e ver;
    const char *fpi;
} pubid_t;

static const pubid_t pubids[] = {
    { 0x0FD1, DOC_SYNCML, MEMDS_V10, "-//SYNCML//DTD SyncML 1.0//EN" },
    { 0x0FD3, DOC_SYNCML, MEMDS_V11, "-//SYNCML//DTD SyncML 1.1//EN" },
    { 0x1201, DOC_SYNCML, MEMDS_V12, "-//SYNCML//DTD SyncML 1.2//EN" },
    { 0x0FD2, DOC_DEVINF, MEMDS_V10, "-//SYNCML//DTD DevInf 1.0//EN" },
    { 0x0FD4, DOC_DEVINF, MEMDS_V11, "-//SYNCML//DTD DevInf 1.1//EN" },
    { 0x1203, DOC_DEVINF, MEMDS_V12, "-//SYNCML//DTD DevInf 1.2//EN" },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *kind_name(doc_kind_e k)
{
    return k == DOC_DEVINF ? "DevInf" : "SyncML";
}

static const char *ver_name(memds_ver_e v)
{
    return v == MEMDS_V10 ? "1.0" : v == MEMDS_V11 ? "1.1" : "1.2";
}

/* ------------------------------------------------------------ helpers */

/* Index of the first byte that starts an invalid UTF-8 sequence, or len
 * (strict, RFC 3629: see memds_utf8_seq). */
static apr_size_t utf8_bad_at(const unsigned char *s, apr_size_t len)
{
    apr_size_t i = 0, k;
    unsigned cp;

    while (i < len) {
        if (s[i] < 0x80) {
            ++i;
            continue;
        }
        k = memds_utf8_seq(s + i, s + len, &cp);
        if (k == 0) {
            return i;
        }
        i += k;
    }
    return len;
}

static int is_blank(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; ++i) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

/* Case-insensitive comparison of len bytes with a NUL-terminated ASCII
 * string of the same length (MIME types and FPIs). */
static int ascii_eq(const char *s, apr_size_t len, const char *lit)
{
    apr_size_t i;

    if (strlen(lit) != len) {
        return 0;
    }
    for (i = 0; i < len; ++i) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z') {
            a = (unsigned char)(a - 'A' + 'a');
        }
        if (b >= 'A' && b <= 'Z') {
            b = (unsigned char)(b - 'A' + 'a');
        }
        if (a != b) {
            return 0;
        }
    }
    return 1;
}

/* How far data_is_devinf looks among the children of an Item, a command
 * and a Meta. Meta comes at most 5th in Item, Put and Results and Type 2nd
 * in MetInf; the bound keeps the check O(1) per <Data>, so that a message
 * with 500000 Data under one Item or Put cannot make decoding quadratic. */
#define DEVINF_SCAN 16

/* First child named name among the first DEVINF_SCAN; tolerates nodes
 * without a tag (hand-built trees reach this from the encoder before they
 * are validated). */
static const memds_node_t *child_named(const memds_node_t *n, const char *name)
{
    const memds_node_t *c;
    int i = 0;

    for (c = n ? n->first : NULL; c && i < DEVINF_SCAN; c = c->next, ++i) {
        if (c->tag && c->tag->name && strcmp(c->tag->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

static int is_named(const memds_node_t *n, const char *name)
{
    return n && n->tag && n->tag->name && strcmp(n->tag->name, name) == 0;
}

/* Meta holding <Type>application/vnd.syncml-devinf+wbxml</Type> (or +xml,
 * which the XML side uses for the same thing). */
static int meta_is_devinf(const memds_node_t *meta)
{
    const memds_node_t *t = child_named(meta, "Type");
    const char *s, *e;

    if (t == NULL || t->text == NULL) {
        return 0;
    }
    s = t->text;
    e = s + t->len;
    while (s < e && is_blank(s, 1)) {
        ++s;
    }
    while (e > s && is_blank(e - 1, 1)) {
        --e;
    }
    return ascii_eq(s, (apr_size_t)(e - s), DEVINF_WBXML)
           || ascii_eq(s, (apr_size_t)(e - s), DEVINF_XML);
}

/* Does this <Data> carry a DevInf document? Like libwbxml, decided by the
 * Meta Type of the enclosing Item or of the command (Put or Results). Both
 * Metas precede the Data in a well-formed command, so the decoder can ask
 * this while it is still building the tree. Decoder and encoder share it so
 * that what one writes the other reads back the same way. */
static int data_is_devinf(const memds_node_t *data)
{
    const memds_node_t *item = data->parent, *cmd;

    if (!is_named(item, "Item")) {
        return 0;
    }
    /* a filter's Field holds DevInf <Property> elements, whatever its Meta */
    if (is_named(item->parent, "Field")
        || meta_is_devinf(child_named(item, "Meta"))) {
        return 1;
    }
    cmd = item->parent;
    return (is_named(cmd, "Put") || is_named(cmd, "Results"))
           && meta_is_devinf(child_named(cmd, "Meta"));
}

/* ------------------------------------------------------------ decoder */

typedef struct dec_t dec_t;
struct dec_t {
    const unsigned char *buf;
    apr_size_t len, pos;
    apr_size_t base; /* offset of buf[0] in the outer message */
    const unsigned char *strtbl;
    apr_size_t strtbl_len;
    apr_size_t strtbl_off; /* offset of the table in buf */
    doc_kind_e kind;
    int prop_root;     /* nested DevInf of a filter Field: root <Property> */
    int page;          /* current code page; END does not change it */
    apr_size_t *nodes; /* element count, shared with a nested doc */
    apr_pool_t *p;
    const char *msg;    /* the failure, when one occurred */
    apr_size_t err_off; /* absolute offset of the failure */
    /* Content of the innermost open element collected so far: pointing
     * into the input while it is one piece, else gathered in scratch. */
    struct {
        int have, opaque, in_scratch;
        const char *ptr;
        apr_size_t len;
        apr_size_t off;      /* offset (in buf) of the first content token */
        apr_size_t data_off; /* offset (in buf) of the first content byte */
    } txt;
    memds_buf_t scratch;
    int scratch_ready;
};

static apr_status_t bad(dec_t *d, apr_size_t off, const char *fmt, ...)
    WB_PRINTF(3, 4);

/* Record why decoding failed; off is relative to d->buf. */
static apr_status_t bad(dec_t *d, apr_size_t off, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    d->msg = apr_pvsprintf(d->p, fmt, ap);
    va_end(ap);
    d->err_off = d->base + off;
    return APR_EINVAL;
}

#define ABS(d, off) ((d)->base + (off))

static apr_status_t get_mb(dec_t *d, apr_uint32_t *pv)
{
    apr_size_t start = d->pos;
    apr_uint64_t v = 0;
    int i;

    for (i = 0;; ++i) {
        unsigned char c;

        /* 5 bytes carry 35 bits; more can only be padding or an attack */
        if (i == 5) {
            return bad(
                d, start,
                "mb_u_int32 longer than 5 bytes at offset %" APR_SIZE_T_FMT,
                ABS(d, start));
        }
        if (d->pos >= d->len) {
            return bad(d, start,
                       "truncated mb_u_int32 at offset %" APR_SIZE_T_FMT,
                       ABS(d, start));
        }
        c = d->buf[d->pos++];
        v = (v << 7) | (c & 0x7F);
        if (!(c & 0x80)) {
            break;
        }
    }
    if (v > 0xFFFFFFFFu) {
        return bad(d, start, "mb_u_int32 overflow at offset %" APR_SIZE_T_FMT,
                   ABS(d, start));
    }
    *pv = (apr_uint32_t)v;
    return APR_SUCCESS;
}

/* A string for an error message: at most 64 printable ASCII bytes. */
static const char *printable(apr_pool_t *p, const unsigned char *s,
                             apr_size_t len)
{
    apr_size_t i, n = len > 64 ? 64 : len;
    char *r = apr_palloc(p, n + 4);

    for (i = 0; i < n; ++i) {
        r[i] = (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '"') ? (char)s[i] : '?';
    }
    if (n < len) {
        memcpy(r + n, "...", 3);
        n += 3;
    }
    r[n] = '\0';
    return r;
}

static apr_status_t dec_header(dec_t *d, doc_kind_e want, int *pwbver,
                               const pubid_t **ppub)
{
    apr_status_t rv;
    apr_uint32_t pub, idx = 0, cs, slen;
    apr_size_t off, cs_off, i;
    const pubid_t *found = NULL;
    unsigned ver;

    if (d->len == 0) {
        return bad(d, 0, "empty message");
    }
    ver = d->buf[0];
    d->pos = 1;
    if (ver < 0x01 || ver > 0x03) {
        return bad(d, 0, "unsupported WBXML version 0x%02X", ver);
    }
    off = d->pos;
    if ((rv = get_mb(d, &pub)) != APR_SUCCESS) {
        return rv;
    }
    if (pub == 0 && (rv = get_mb(d, &idx)) != APR_SUCCESS) {
        return rv;
    }
    cs_off = d->pos;
    if ((rv = get_mb(d, &cs)) != APR_SUCCESS) {
        return rv;
    }
    /* US-ASCII is a subset of UTF-8; strings are checked as UTF-8 either way */
    if (cs != WB_CHARSET_UTF8 && cs != WB_CHARSET_ASCII) {
        return bad(d, cs_off,
                   "unsupported charset %u at offset %" APR_SIZE_T_FMT,
                   (unsigned)cs, ABS(d, cs_off));
    }
    if ((rv = get_mb(d, &slen)) != APR_SUCCESS) {
        return rv;
    }
    if (slen > d->len - d->pos) {
        return bad(d, d->pos,
                   "string table length %u past the end of the "
                   "message (at offset %" APR_SIZE_T_FMT ")",
                   (unsigned)slen, ABS(d, d->pos));
    }
    d->strtbl = d->buf + d->pos;
    d->strtbl_len = slen;
    d->strtbl_off = d->pos;
    d->pos += slen;

    if (pub == 0) {
        /* FPI as a string. Horde omits the NUL after it, so the end of the
         * table ends it too. */
        const unsigned char *s, *e;
        if (idx >= slen) {
            return bad(d, off,
                       "public id string table reference %u past the "
                       "table (size %u)",
                       (unsigned)idx, (unsigned)slen);
        }
        s = d->strtbl + idx;
        e = memchr(s, 0, slen - idx);
        if (e == NULL) {
            e = d->strtbl + slen;
        }
        for (i = 0; i < COUNT(pubids); ++i) {
            if (ascii_eq((const char *)s, (apr_size_t)(e - s), pubids[i].fpi)) {
                found = &pubids[i];
            }
        }
        if (found == NULL) {
            return bad(d, off, "unknown public id \"%s\"",
                       printable(d->p, s, (apr_size_t)(e - s)));
        }
    }
    else if (pub != 1) {
        for (i = 0; i < COUNT(pubids); ++i) {
            if (pubids[i].id == pub) {
                found = &pubids[i];
            }
        }
        if (found == NULL) {
            return bad(d, off, "unknown public id 0x%X", (unsigned)pub);
        }
    }
    if (found && found->kind != want) {
        return bad(d, off,
                   "public id of %s %s where a %s document was "
                   "expected",
                   kind_name(found->kind), ver_name(found->ver),
                   kind_name(want));
    }
    *pwbver = (int)ver;
    *ppub = found;
    return APR_SUCCESS;
}

/* ------------------------------- content of the innermost open element */

static void txt_reset(dec_t *d)
{
    d->txt.have = d->txt.opaque = d->txt.in_scratch = 0;
    d->txt.ptr = NULL;
    d->txt.len = 0;
}

/* Add one content piece. Pieces that do not live in the input (an ENTITY)
 * are copied at once; input pieces only when a second one arrives. */
static void txt_add(dec_t *d, const char *data, apr_size_t len, int opaque,
                    int transient, apr_size_t off, apr_size_t data_off)
{
    if (!d->scratch_ready) {
        memds_buf_init(&d->scratch, 256, d->p);
        d->scratch_ready = 1;
    }
    if (!d->txt.have) {
        d->txt.have = 1;
        d->txt.off = off;
        d->txt.data_off = data_off;
        d->txt.opaque = opaque;
        if (!transient) {
            d->txt.ptr = data;
            d->txt.len = len;
            return;
        }
        d->scratch.len = 0;
        d->txt.in_scratch = 1;
    }
    else if (!d->txt.in_scratch) {
        d->scratch.len = 0;
        memds_buf_add(&d->scratch, d->txt.ptr, d->txt.len);
        d->txt.in_scratch = 1;
    }
    memds_buf_add(&d->scratch, data, len);
    d->txt.opaque |= opaque;
    d->txt.ptr = d->scratch.data;
    d->txt.len = d->scratch.len;
}

/* Text next to child elements: whitespace between elements is dropped,
 * anything else is mixed content, which no SyncML element has. */
static apr_status_t txt_drop_blank(dec_t *d, const memds_node_t *cur)
{
    if (d->txt.opaque || !is_blank(d->txt.ptr, d->txt.len)) {
        return bad(d, d->txt.off,
                   "mixed content: text and child elements in "
                   "<%s> at offset %" APR_SIZE_T_FMT,
                   cur->tag->name, ABS(d, d->txt.off));
    }
    txt_reset(d);
    return APR_SUCCESS;
}

static apr_status_t dec_doc(dec_t *d, doc_kind_e want, int depth0,
                            memds_node_t **proot, memds_ver_e *pver,
                            int *pwbver);

/* The OPAQUE of a DevInf <Data> is a document of its own: decode it and
 * hang its <DevInf> under the Data. */
static apr_status_t dec_nested(dec_t *d, memds_node_t *data, int depth)
{
    dec_t sub;
    memds_node_t *root = NULL;
    memds_ver_e ver;
    int wbver;
    apr_status_t rv;

    memset(&sub, 0, sizeof(sub));
    sub.buf = (const unsigned char *)d->txt.ptr;
    sub.len = d->txt.len;
    /* exact unless the content came in several pieces */
    sub.base = ABS(d, d->txt.data_off);
    sub.nodes = d->nodes;
    sub.p = d->p;
    sub.prop_root = is_named(data->parent ? data->parent->parent : NULL,
                             "Field");
    rv = dec_doc(&sub, DOC_DEVINF, depth, &root, &ver, &wbver);
    if (rv != APR_SUCCESS) {
        d->msg = apr_psprintf(d->p,
                              "nested DevInf document in <Data> at "
                              "offset %" APR_SIZE_T_FMT ": %s",
                              ABS(d, d->txt.off), sub.msg);
        d->err_off = sub.err_off;
        return rv;
    }
    memds_node_add(data, root);
    data->text = NULL;
    data->len = 0;
    data->opaque = 0;
    return APR_SUCCESS;
}

/* END of cur (at depth): settle its collected content. */
static apr_status_t dec_close(dec_t *d, memds_node_t *cur, int depth)
{
    apr_status_t rv = APR_SUCCESS;
    char *s;

    if (!d->txt.have) {
        return APR_SUCCESS;
    }
    if (cur->first) {
        return txt_drop_blank(d, cur);
    }
    if (d->kind == DOC_SYNCML && (cur->tag->flags & MEMDS_TAGF_DATA)
        && d->txt.opaque && data_is_devinf(cur)) {
        rv = dec_nested(d, cur, depth);
    }
    else {
        /* decoders promise a NUL after the text */
        s = apr_palloc(d->p, d->txt.len + 1);
        memcpy(s, d->txt.ptr, d->txt.len);
        s[d->txt.len] = '\0';
        cur->text = s;
        cur->len = d->txt.len;
        cur->opaque = d->txt.opaque;
    }
    txt_reset(d);
    return rv;
}

/* Read one STR_I, STR_T, OPAQUE or ENTITY (token t at off) into d->txt. */
static apr_status_t dec_content(dec_t *d, unsigned t, apr_size_t off)
{
    apr_status_t rv;
    apr_uint32_t v;
    const unsigned char *s, *e;
    apr_size_t bad_at;

    switch (t) {
    case WB_STR_I:
        s = d->buf + d->pos;
        e = memchr(s, 0, d->len - d->pos);
        if (e == NULL) {
            return bad(
                d, off,
                "unterminated inline string (STR_I at offset %" APR_SIZE_T_FMT
                ")",
                ABS(d, off));
        }
        bad_at = utf8_bad_at(s, (apr_size_t)(e - s));
        if (bad_at != (apr_size_t)(e - s)) {
            return bad(d, d->pos + bad_at,
                       "invalid UTF-8 in string at offset %" APR_SIZE_T_FMT,
                       ABS(d, d->pos + bad_at));
        }
        txt_add(d, (const char *)s, (apr_size_t)(e - s), 0, 0, off, d->pos);
        d->pos += (apr_size_t)(e - s) + 1;
        return APR_SUCCESS;

    case WB_STR_T:
        if ((rv = get_mb(d, &v)) != APR_SUCCESS) {
            return rv;
        }
        if (v >= d->strtbl_len) {
            return bad(d, off,
                       "string table reference %u past the table "
                       "(size %" APR_SIZE_T_FMT ") at offset %" APR_SIZE_T_FMT,
                       (unsigned)v, d->strtbl_len, ABS(d, off));
        }
        s = d->strtbl + v;
        e = memchr(s, 0, d->strtbl_len - v);
        if (e == NULL) {
            return bad(d, off,
                       "unterminated string table entry %u (STR_T at "
                       "offset %" APR_SIZE_T_FMT ")",
                       (unsigned)v, ABS(d, off));
        }
        bad_at = utf8_bad_at(s, (apr_size_t)(e - s));
        if (bad_at != (apr_size_t)(e - s)) {
            apr_size_t at = d->strtbl_off + v + bad_at;
            return bad(d, at,
                       "invalid UTF-8 in string at offset %" APR_SIZE_T_FMT,
                       ABS(d, at));
        }
        txt_add(d, (const char *)s, (apr_size_t)(e - s), 0, 0, off,
                d->strtbl_off + v);
        return APR_SUCCESS;

    case WB_OPAQUE:
        if ((rv = get_mb(d, &v)) != APR_SUCCESS) {
            return rv;
        }
        if (v > d->len - d->pos) {
            return bad(d, off,
                       "OPAQUE length %u past the end of the message "
                       "(at offset %" APR_SIZE_T_FMT ")",
                       (unsigned)v, ABS(d, off));
        }
        txt_add(d, (const char *)d->buf + d->pos, v, 1, 0, off, d->pos);
        d->pos += v;
        return APR_SUCCESS;

    default: /* WB_ENTITY: a character by code point */
    {
        char u[4];
        apr_size_t n;

        if ((rv = get_mb(d, &v)) != APR_SUCCESS) {
            return rv;
        }
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
            return bad(
                d, off,
                "invalid character entity 0x%X at offset %" APR_SIZE_T_FMT,
                (unsigned)v, ABS(d, off));
        }
        if (v < 0x80) {
            u[0] = (char)v;
            n = 1;
        }
        else if (v < 0x800) {
            u[0] = (char)(0xC0 | (v >> 6));
            u[1] = (char)(0x80 | (v & 0x3F));
            n = 2;
        }
        else if (v < 0x10000) {
            u[0] = (char)(0xE0 | (v >> 12));
            u[1] = (char)(0x80 | ((v >> 6) & 0x3F));
            u[2] = (char)(0x80 | (v & 0x3F));
            n = 3;
        }
        else {
            u[0] = (char)(0xF0 | (v >> 18));
            u[1] = (char)(0x80 | ((v >> 12) & 0x3F));
            u[2] = (char)(0x80 | ((v >> 6) & 0x3F));
            u[3] = (char)(0x80 | (v & 0x3F));
            n = 4;
        }
        txt_add(d, u, n, 0, 1, off, off);
        return APR_SUCCESS;
    }
    }
}

/* A LITERAL tag (its name in the string table). libwbxml writes one for
 * every element its SyncML tables lack, such as the DevInf <Property> of a
 * filter Field written inline in the <Data>: accepted there only, inside a
 * <Data> of a SyncML document or below a DevInf element in it, and only
 * for DevInf names. */
static apr_status_t dec_literal(dec_t *d, const memds_node_t *cur,
                                apr_size_t off, const memds_tag_t **ptag)
{
    apr_uint32_t idx;
    const unsigned char *s, *e;
    apr_status_t rv;

    if ((rv = get_mb(d, &idx)) != APR_SUCCESS) {
        return rv;
    }
    if (d->kind != DOC_SYNCML || cur == NULL
        || !((cur->tag->flags & MEMDS_TAGF_DATA)
             || cur->tag->ts == MEMDS_TS_DEVINF)) {
        return bad(d, off,
                   "LITERAL tag at offset %" APR_SIZE_T_FMT
                   " outside a <Data> (only DevInf elements of a filter "
                   "Field may come as LITERAL)",
                   ABS(d, off));
    }
    if (idx >= d->strtbl_len
        || (e = memchr(d->strtbl + idx, 0, d->strtbl_len - idx)) == NULL) {
        return bad(d, off,
                   "LITERAL tag at offset %" APR_SIZE_T_FMT
                   " names string table index %u, outside the table",
                   ABS(d, off), (unsigned)idx);
    }
    if ((cur->tag->flags & MEMDS_TAGF_DATA)
        && (cur->first || !is_named(cur->parent, "Item")
            || !is_named(cur->parent->parent, "Field"))) {
        /* what the encoder can write back: one Property, in a Field */
        return bad(d, off,
                   "LITERAL tag at offset %" APR_SIZE_T_FMT
                   ": a <Data> holds one DevInf <Property>, in a filter "
                   "<Field> only",
                   ABS(d, off));
    }
    s = d->strtbl + idx;
    *ptag = memds_tag_by_name(MEMDS_TS_DEVINF, (const char *)s,
                              (apr_size_t)(e - s));
    if (*ptag == NULL || *ptag == memds_tag_DevInf
        || ((cur->tag->flags & MEMDS_TAGF_DATA)
            && strcmp((*ptag)->name, "Property") != 0)) {
        return bad(d, off,
                   "LITERAL tag <%.*s> at offset %" APR_SIZE_T_FMT
                   " is not a DevInf element of a filter Field",
                   (int)(e - s), (const char *)s, ABS(d, off));
    }
    return APR_SUCCESS;
}

/* The token stream after the header. depth0 is the depth of the element
 * the document hangs under (0 for a message, the Data's for a nested doc),
 * so the nesting limit holds for the whole tree. */
static apr_status_t dec_body(dec_t *d, int depth0, memds_node_t **proot)
{
    apr_status_t rv = APR_SUCCESS;
    memds_node_t *root = NULL, *cur = NULL, *n;
    const memds_tag_t *tag, *lit = NULL;
    int depth = depth0, closed = 0;
    apr_size_t body = d->pos;

    d->page = 0;
    txt_reset(d);
    while (d->pos < d->len) {
        apr_size_t off = d->pos;
        unsigned t = d->buf[d->pos++], id;

        if (closed) {
            rv =
                bad(d, off,
                    "content after the root element at offset %" APR_SIZE_T_FMT,
                    ABS(d, off));
            goto done;
        }
        switch (t) {
        case WB_SWITCH_PAGE:
            if (d->pos >= d->len) {
                rv = bad(d, off,
                         "truncated SWITCH_PAGE at offset %" APR_SIZE_T_FMT,
                         ABS(d, off));
                goto done;
            }
            id = d->buf[d->pos++];
            if (id > (d->kind == DOC_SYNCML ? 1u : 0u)) {
                rv = bad(d, off,
                         "unsupported code page %u in a %s document "
                         "at offset %" APR_SIZE_T_FMT,
                         id, kind_name(d->kind), ABS(d, off));
                goto done;
            }
            d->page = (int)id;
            continue;

        case WB_END:
            if (cur == NULL) {
                rv = bad(
                    d, off,
                    "END without an open element at offset %" APR_SIZE_T_FMT,
                    ABS(d, off));
                goto done;
            }
            if ((rv = dec_close(d, cur, depth)) != APR_SUCCESS) {
                goto done;
            }
            if (cur == root) {
                closed = 1;
            }
            cur = cur->parent;
            --depth;
            continue;

        case WB_STR_I:
        case WB_STR_T:
        case WB_OPAQUE:
        case WB_ENTITY:
            if (cur == NULL) {
                rv = bad(d, off,
                         "content before the root element at offset "
                         "%" APR_SIZE_T_FMT,
                         ABS(d, off));
                goto done;
            }
            if ((rv = dec_content(d, t, off)) != APR_SUCCESS) {
                goto done;
            }
            continue;

        case WB_LITERAL:
        case WB_LITERAL | 0x40:
            if ((rv = dec_literal(d, cur, off, &lit)) != APR_SUCCESS) {
                goto done;
            }
            break;

        case WB_LITERAL | 0x80:
        case WB_LITERAL | 0xC0:
            rv = bad(d, off,
                     "LITERAL token 0x%02X at offset %" APR_SIZE_T_FMT
                     " is not supported",
                     t, ABS(d, off));
            goto done;

        case WB_PI:
            rv = bad(d, off,
                     "processing instruction (PI) at offset %" APR_SIZE_T_FMT
                     " is not supported",
                     ABS(d, off));
            goto done;

        case 0x40:
        case 0x41:
        case 0x42:
        case 0x80:
        case 0x81:
        case 0x82:
        case 0xC0:
        case 0xC1:
        case 0xC2:
            rv = bad(d, off,
                     "extension token 0x%02X at offset %" APR_SIZE_T_FMT
                     " is not supported",
                     t, ABS(d, off));
            goto done;

        default: break;
        }

        /* a tag */
        if (lit) {
            tag = lit;
            lit = NULL;
        }
        else if (t & WB_ATTRS) {
            rv = bad(d, off,
                     "attributes are not allowed in %s (tag 0x%02X at "
                     "offset %" APR_SIZE_T_FMT ")",
                     kind_name(d->kind), t, ABS(d, off));
            goto done;
        }
        else {
            id = t & 0x3F;
            tag = memds_tag_by_tok(d->kind == DOC_DEVINF ? MEMDS_TS_DEVINF
                                   : d->page             ? MEMDS_TS_METINF
                                                         : MEMDS_TS_SYNCML,
                                   id);
            if (tag == NULL) {
                rv = bad(d, off,
                         "unknown tag 0x%02X on code page %d at offset "
                         "%" APR_SIZE_T_FMT,
                         id, d->page, ABS(d, off));
                goto done;
            }
            if (d->kind == DOC_SYNCML && cur
                && (cur->tag->ts == MEMDS_TS_DEVINF
                    || (cur->first
                        && cur->first->tag->ts == MEMDS_TS_DEVINF))) {
                /* below or beside a LITERAL DevInf element: LITERAL
                 * tags only */
                rv = bad(d, off,
                         "%s element <%s> inside DevInf <%s> at offset "
                         "%" APR_SIZE_T_FMT,
                         tag->ts == MEMDS_TS_METINF ? "MetInf" : "SyncML",
                         tag->name,
                         cur->tag->ts == MEMDS_TS_DEVINF
                             ? cur->tag->name
                             : cur->first->tag->name,
                         ABS(d, off));
                goto done;
            }
        }
        if (root == NULL) {
            const memds_tag_t *want = d->kind == DOC_DEVINF ? memds_tag_DevInf
                                                            : memds_tag_SyncML;
            if (d->prop_root) {
                want = memds_tag_by_name(MEMDS_TS_DEVINF, "Property", 8);
            }
            if (tag != want) {
                rv = bad(d, off,
                         "root element is <%s>, expected <%s> (at "
                         "offset %" APR_SIZE_T_FMT ")",
                         tag->name, want->name, ABS(d, off));
                goto done;
            }
        }
        else if (d->txt.have && (rv = txt_drop_blank(d, cur)) != APR_SUCCESS) {
            goto done;
        }
        if (depth + 1 > MEMDS_CODEC_MAX_DEPTH) {
            rv =
                bad(d, off,
                    "elements nested deeper than %d (at offset %" APR_SIZE_T_FMT
                    ")",
                    MEMDS_CODEC_MAX_DEPTH, ABS(d, off));
            goto done;
        }
        if (++*d->nodes > MEMDS_CODEC_MAX_NODES) {
            rv = bad(d, off,
                     "more than %d elements (at offset %" APR_SIZE_T_FMT ")",
                     MEMDS_CODEC_MAX_NODES, ABS(d, off));
            goto done;
        }
        n = memds_node_new(tag, d->p);
        if (cur) {
            memds_node_add(cur, n);
        }
        else {
            root = n;
        }
        if (t & WB_CONTENT) {
            cur = n;
            ++depth;
        }
        else if (n == root) {
            closed = 1;
        }
    }

    if (root == NULL) {
        rv = bad(d, d->pos,
                 "no root element (the message ends at offset %" APR_SIZE_T_FMT
                 "%s)",
                 ABS(d, d->pos),
                 d->pos == body ? ", right after the header" : "");
    }
    else if (!closed) {
        rv = bad(
            d, d->pos,
            "unexpected end of message inside <%s> (at offset %" APR_SIZE_T_FMT
            ")",
            cur->tag->name, ABS(d, d->pos));
    }
done:
    if (rv == APR_SUCCESS) {
        *proot = root;
    }
    return rv;
}

/* Version from <VerDTD> when the public id is unknown (publicid 0x01). */
static int ver_from_verdtd(const memds_node_t *root, doc_kind_e kind,
                           memds_ver_e *pver, apr_pool_t *p)
{
    const memds_node_t *v = child_named(kind == DOC_SYNCML
                                            ? child_named(root, "SyncHdr")
                                            : root,
                                        "VerDTD");
    const char *s = memds_node_str(v, p);

    if (strcmp(s, "1.2") == 0) {
        *pver = MEMDS_V12;
    }
    else if (strcmp(s, "1.1") == 0) {
        *pver = MEMDS_V11;
    }
    else if (strcmp(s, "1.0") == 0) {
        *pver = MEMDS_V10;
    }
    else {
        return 0;
    }
    return 1;
}

static apr_status_t dec_doc(dec_t *d, doc_kind_e want, int depth0,
                            memds_node_t **proot, memds_ver_e *pver,
                            int *pwbver)
{
    apr_status_t rv;
    const pubid_t *pub = NULL;
    memds_node_t *root = NULL;
    memds_ver_e ver = MEMDS_V12;
    int wbver = 0;

    d->kind = want;
    if ((rv = dec_header(d, want, &wbver, &pub)) != APR_SUCCESS) {
        goto done;
    }
    if ((rv = dec_body(d, depth0, &root)) != APR_SUCCESS) {
        goto done;
    }
    if (pub) {
        ver = pub->ver;
    }
    else if (!ver_from_verdtd(root, want, &ver, d->p) && want == DOC_SYNCML) {
        /* a nested DevInf needs no version of its own: the message has one */
        rv = bad(d, 0,
                 "public id unknown and no VerDTD 1.0, 1.1 or 1.2 in "
                 "the SyncHdr: cannot tell the SyncML version");
        goto done;
    }
done:
    if (rv == APR_SUCCESS) {
        *proot = root;
        *pver = ver;
        *pwbver = wbver;
    }
    return rv;
}

apr_status_t memds_wbxml_decode(memds_tree_t **ptree, const char *buf,
                                apr_size_t len, memds_codec_err_t *err,
                                apr_pool_t *p)
{
    apr_status_t rv;
    dec_t d;
    apr_size_t nodes = 0;
    memds_node_t *root = NULL;
    memds_ver_e ver = MEMDS_V12;
    int wbver = 0;
    memds_tree_t *tree;

    memset(&d, 0, sizeof(d));
    d.buf = (const unsigned char *)buf;
    d.len = buf ? len : 0;
    d.nodes = &nodes;
    d.p = p;
    rv = dec_doc(&d, DOC_SYNCML, 0, &root, &ver, &wbver);
    if (rv != APR_SUCCESS) {
        if (err) {
            err->rv = rv;
            err->msg = d.msg;
            err->offset = d.err_off;
            err->line = 0;
        }
        return rv;
    }
    tree = apr_pcalloc(p, sizeof(*tree));
    tree->root = root;
    tree->version = ver;
    tree->wbxml_version = wbver;
    *ptree = tree;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ encoder */

/* The encoder runs twice over the same code: once counting (out == NULL),
 * once writing. memds_wbxml_node_size is the counting run, so the size it
 * reports can never disagree with the bytes written; the count also lets
 * memds_wbxml_encode validate the whole tree before it touches out. */
typedef struct {
    memds_buf_t *out; /* NULL: count only */
    apr_size_t n;     /* bytes written or counted */
    int page;
    memds_ver_e ver;
    const memds_node_t *bad; /* the node the failure is about */
    const char *why;         /* static text of the failure */
} enc_t;

static void put(enc_t *e, const void *data, apr_size_t len)
{
    if (e->out && len) {
        memds_buf_add(e->out, data, len);
    }
    e->n += len;
}

static void putc_(enc_t *e, unsigned char c)
{
    put(e, &c, 1);
}

static void put_mb(enc_t *e, apr_uint32_t v)
{
    unsigned char b[5];
    int i = 4;

    /* big-endian groups of 7 bits, continuation bit on all but the last */
    b[4] = (unsigned char)(v & 0x7F);
    while ((v >>= 7) != 0) {
        b[--i] = (unsigned char)(0x80 | (v & 0x7F));
    }
    put(e, b + i, (apr_size_t)(5 - i));
}

static apr_status_t enc_fail(enc_t *e, const memds_node_t *n, const char *why)
{
    e->bad = n;
    e->why = why;
    return APR_EINVAL;
}

static apr_status_t enc_header(enc_t *e, doc_kind_e kind)
{
    apr_size_t i;

    for (i = 0; i < COUNT(pubids); ++i) {
        if (pubids[i].kind == kind && pubids[i].ver == e->ver) {
            putc_(e, WB_OUT_VERSION);
            put_mb(e, pubids[i].id);
            putc_(e, WB_CHARSET_UTF8);
            putc_(e, 0); /* no string table */
            return APR_SUCCESS;
        }
    }
    return enc_fail(e, NULL, "unsupported SyncML version in the tree");
}

static apr_status_t enc_walk(enc_t *e, const memds_node_t *top,
                             doc_kind_e kind);

/* <Data> holding a DevInf tree: OPAQUE with a complete DevInf document.
 * Its length comes first, so the document is counted before written. */
static apr_status_t enc_nested(enc_t *e, const memds_node_t *devinf)
{
    enc_t c;
    apr_status_t rv;

    memset(&c, 0, sizeof(c));
    c.ver = e->ver;
    if ((rv = enc_header(&c, DOC_DEVINF)) != APR_SUCCESS
        || (rv = enc_walk(&c, devinf, DOC_DEVINF)) != APR_SUCCESS) {
        e->bad = c.bad;
        e->why = c.why;
        return rv;
    }
    if (c.n > 0xFFFFFFFFu) {
        return enc_fail(e, devinf, "nested DevInf document larger than 4 GB");
    }
    putc_(e, WB_OPAQUE);
    put_mb(e, (apr_uint32_t)c.n);
    if (e->out == NULL) {
        e->n += c.n;
        return APR_SUCCESS;
    }
    /* the second run cannot fail: same tree, same code */
    c.out = e->out;
    c.n = 0;
    c.page = 0;
    enc_header(&c, DOC_DEVINF);
    enc_walk(&c, devinf, DOC_DEVINF);
    e->n += c.n;
    return APR_SUCCESS;
}

/* A leaf with content: STR_I where that carries the bytes unchanged and
 * decodes back as the same text, else OPAQUE. Item data is always OPAQUE
 * (binary-safe; what libsynthesis sends) except in a DevInf Data, where an
 * OPAQUE would be read back as a nested document. */
static apr_status_t enc_leaf(enc_t *e, const memds_node_t *n)
{
    const char *s = n->text;
    apr_size_t len = n->len;
    int str_i;

    /* the WBXML form names the WBXML content type (libwbxml does the same) */
    if (n->tag->ts == MEMDS_TS_METINF && strcmp(n->tag->name, "Type") == 0
        && len == sizeof(DEVINF_XML) - 1 && memcmp(s, DEVINF_XML, len) == 0) {
        s = DEVINF_WBXML;
        len = sizeof(DEVINF_WBXML) - 1;
    }
    /* (the cheap tests first: an item's Data, often a whole mail, goes
     * OPAQUE without a scan of its bytes) */
    str_i = !n->opaque
            && (!(n->tag->flags & MEMDS_TAGF_DATA) || data_is_devinf(n))
            && memchr(s, 0, len) == NULL
            && utf8_bad_at((const unsigned char *)s, len) == len;
    if (len > 0xFFFFFFFFu) {
        return enc_fail(e, n, "content larger than 4 GB");
    }
    putc_(e, (unsigned char)(n->tag->tok | WB_CONTENT));
    if (str_i) {
        putc_(e, WB_STR_I);
        put(e, s, len);
        putc_(e, 0);
    }
    else {
        putc_(e, WB_OPAQUE);
        put_mb(e, (apr_uint32_t)len);
        put(e, s, len);
    }
    putc_(e, WB_END);
    return APR_SUCCESS;
}

/* Start element n: its token (after a page switch if needed); leaves and
 * nested documents are written whole, *descend asks for the children. */
static apr_status_t enc_open(enc_t *e, const memds_node_t *n, doc_kind_e kind,
                             int *descend)
{
    const memds_tag_t *tag = n->tag;
    int page;

    *descend = 0;
    if (tag == NULL || tag->name == NULL) {
        return enc_fail(e, n, "element without a tag");
    }
    if (kind == DOC_DEVINF ? tag->ts != MEMDS_TS_DEVINF
                           : tag->ts == MEMDS_TS_DEVINF) {
        return enc_fail(e, n,
                        kind == DOC_DEVINF
                            ? "SyncML or MetInf element inside DevInf"
                            : "DevInf element outside a <Data>");
    }
    page = tag->ts == MEMDS_TS_METINF ? 1 : 0;
    if (page != e->page) {
        putc_(e, WB_SWITCH_PAGE);
        putc_(e, (unsigned char)page);
        e->page = page;
    }
    if (n->first == NULL) {
        if (n->text == NULL) {
            putc_(e, tag->tok);
            return APR_SUCCESS;
        }
        return enc_leaf(e, n);
    }
    if (n->text) {
        return enc_fail(e, n, "element with both text and child elements");
    }
    if (n->first->parent != n) {
        return enc_fail(e, n, "child element whose parent pointer is wrong");
    }
    putc_(e, (unsigned char)(tag->tok | WB_CONTENT));
    if (kind == DOC_SYNCML && (tag->flags & MEMDS_TAGF_DATA) && n->first->tag
        && n->first->tag->ts == MEMDS_TS_DEVINF) {
        apr_status_t rv;
        int prop = strcmp(n->first->tag->name, "Property") == 0;
        /* a filter Field's <Property>: a nested document of its own too */
        if (prop
            && (n->first->next || !is_named(n->parent, "Item")
                || !is_named(n->parent->parent, "Field"))) {
            return enc_fail(e, n,
                            "WBXML carries one DevInf <Property> per <Data>, "
                            "in a filter <Field> only");
        }
        if (!prop && (n->first->next || n->first->tag != memds_tag_DevInf)) {
            return enc_fail(e, n,
                            "<Data> with DevInf elements other than one "
                            "<DevInf>");
        }
        if ((rv = enc_nested(e, n->first)) != APR_SUCCESS) {
            return rv;
        }
        putc_(e, WB_END);
        return APR_SUCCESS;
    }
    *descend = 1;
    return APR_SUCCESS;
}

/* Depth-first over top's subtree without recursion: parent pointers lead
 * back up, writing END for every element whose children are done. */
static apr_status_t enc_walk(enc_t *e, const memds_node_t *top, doc_kind_e kind)
{
    const memds_node_t *n = top;
    apr_status_t rv;
    int descend;

    for (;;) {
        if ((rv = enc_open(e, n, kind, &descend)) != APR_SUCCESS) {
            return rv;
        }
        if (descend) {
            n = n->first;
            continue;
        }
        while (n != top && n->next == NULL) {
            n = n->parent;
            putc_(e, WB_END);
        }
        if (n == top) {
            return APR_SUCCESS;
        }
        if (n->next->parent != n->parent) {
            return enc_fail(e, n->next,
                            "sibling whose parent pointer is "
                            "wrong");
        }
        n = n->next;
    }
}

apr_status_t memds_wbxml_encode(memds_buf_t *out, const memds_tree_t *tree,
                                memds_codec_err_t *err)
{
    apr_status_t rv;
    enc_t e;
    doc_kind_e kind;
    apr_size_t total;

    memset(&e, 0, sizeof(e));
    if (out == NULL || out->pool == NULL) {
        rv = enc_fail(&e, NULL, "no output buffer");
        goto done;
    }
    if (tree == NULL || tree->root == NULL || tree->root->tag == NULL) {
        rv = enc_fail(&e, NULL, "no root element");
        goto done;
    }
    if (tree->root->tag != memds_tag_SyncML
        && tree->root->tag != memds_tag_DevInf) {
        rv = enc_fail(&e, tree->root, "root is neither <SyncML> nor <DevInf>");
        goto done;
    }
    kind = tree->root->tag == memds_tag_DevInf ? DOC_DEVINF : DOC_SYNCML;
    e.ver = tree->version;
    if ((rv = enc_header(&e, kind)) != APR_SUCCESS
        || (rv = enc_walk(&e, tree->root, kind)) != APR_SUCCESS) {
        goto done;
    }
    /* room for all of it at once: no growth garbage left in the pool */
    total = e.n;
    if (out->cap - out->len < total) {
        char *nd = apr_palloc(out->pool, out->len + total);
        if (out->len) {
            memcpy(nd, out->data, out->len);
        }
        out->data = nd;
        out->cap = out->len + total;
    }
    e.out = out;
    e.n = 0;
    e.page = 0;
    enc_header(&e, kind);
    enc_walk(&e, tree->root, kind);
done:
    if (rv != APR_SUCCESS && err) {
        err->rv = rv;
        err->offset = 0;
        err->line = 0;
        err->msg = e.bad && e.bad->tag && e.bad->tag->name && out
                       ? apr_psprintf(out->pool, "cannot encode <%s>: %s",
                                      e.bad->tag->name, e.why)
                       : e.why;
    }
    return rv;
}

apr_size_t memds_wbxml_node_size(const memds_node_t *n, int *page)
{
    enc_t e;

    if (n == NULL || n->tag == NULL) {
        return 0;
    }
    memset(&e, 0, sizeof(e));
    e.page = *page;
    /* A nested DevInf header is 5 bytes for every version (all its public
     * ids take two mb_u_int32 bytes), so the count needs no tree version. */
    e.ver = MEMDS_V12;
    if (enc_walk(&e, n, n->tag->ts == MEMDS_TS_DEVINF ? DOC_DEVINF : DOC_SYNCML)
        != APR_SUCCESS) {
        return 0; /* the encoder refuses this tree too */
    }
    *page = e.page;
    return e.n;
}
