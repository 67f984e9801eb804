/* Unit tests: syncml/memds_wbxml.c (WBXML codec).
 *
 * 1. every recorded WBXML message decodes, re-encodes and decodes again to
 *    the same tree, item data byte-exact;
 * 2. memds_wbxml_node_size agrees with the encoder, whole message and per
 *    command;
 * 3. libwbxml's wbxml2xml is the independent oracle for our output, and it
 *    shows the "]]>" defect that DESIGN.md decision 7 is about;
 * 4. malformed input: every case gives APR_EINVAL with a precise message;
 * 5. hand-built trees: round trip and exact bytes.
 */
#include "unit.h"
#include "syncml/memds_wbxml.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CORPUS MEMDS_SRCDIR "/tests/corpus/"
/* *.wbxml files of the corpus, those of raw-email sessions, and messages
 * with a nested DevInf: fewer means the corpus is missing or incomplete. */
#define CORPUS_WBXML_FILES 90
#define CORPUS_WBXML_RAW_EMAIL 21
#define CORPUS_WBXML_DEVINF 20

/* The client's message with its three raw-email items, over WBXML. */
#define CLIENT_MAIL "wbxml-md5-raw-email-inbox-slow-002-req.wbxml"
#define CLIENT_MAIL_PATH "mail/wbxml-md5-raw-email-inbox-slow-002-req.wbxml"

#define DEVINF_WBXML "application/vnd.syncml-devinf+wbxml"
#define DEVINF_XML "application/vnd.syncml-devinf+xml"

/* ------------------------------------------------------------ helpers */

/* An assertion with a message built at run time (CUnit copies it). */
static void check(int cond, int line, const char *what)
{
    CU_assertImplementation(cond ? CU_TRUE : CU_FALSE, (unsigned)line, what,
                            __FILE__, "", CU_FALSE);
}
#define CHECK(cond, ...) \
    check((cond), __LINE__, apr_psprintf(unit_pool, __VA_ARGS__))

static const memds_tag_t *tS(const char *name)
{
    const memds_tag_t *t = memds_tag_by_name(MEMDS_TS_SYNCML, name,
                                             strlen(name));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static const memds_tag_t *tM(const char *name)
{
    const memds_tag_t *t = memds_tag_by_name(MEMDS_TS_METINF, name,
                                             strlen(name));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static const memds_tag_t *tD(const char *name)
{
    const memds_tag_t *t = memds_tag_by_name(MEMDS_TS_DEVINF, name,
                                             strlen(name));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static const char *find_bytes(const char *hay, apr_size_t hlen,
                              const void *needle, apr_size_t nlen)
{
    apr_size_t i;

    if (nlen == 0) {
        return hay;
    }
    for (i = 0; i + nlen <= hlen; ++i) {
        if (memcmp(hay + i, needle, nlen) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

static int is_devinf_type(const char *s, apr_size_t len)
{
    return (len == strlen(DEVINF_WBXML) && memcmp(s, DEVINF_WBXML, len) == 0)
           || (len == strlen(DEVINF_XML) && memcmp(s, DEVINF_XML, len) == 0);
}

/* NULL when a and b have the same tags, structure and text bytes, else
 * where they differ. The encoder writes the DevInf Type as "+wbxml", so
 * "+xml" and "+wbxml" count as equal; the opaque flag is not compared (a
 * Status <Data> sent as STR_I comes back from OPAQUE). */
static const char *tree_diff(const memds_node_t *a, const memds_node_t *b,
                             const char *path)
{
    const memds_node_t *x, *y;

    if (a == NULL || b == NULL) {
        return a == b ? NULL
                      : apr_psprintf(unit_pool, "%s: missing node", path);
    }
    path = apr_pstrcat(unit_pool, path, "/", a->tag->name, NULL);
    if (a->tag != b->tag) {
        return apr_psprintf(unit_pool, "%s: tag %s vs %s", path, a->tag->name,
                            b->tag->name);
    }
    if ((a->text == NULL) != (b->text == NULL)) {
        return apr_psprintf(unit_pool, "%s: text on one side only", path);
    }
    if (a->text && !(a->len == b->len && memcmp(a->text, b->text, a->len) == 0)
        && !(is_devinf_type(a->text, a->len)
             && is_devinf_type(b->text, b->len))) {
        return apr_psprintf(unit_pool,
                            "%s: text differs (%" APR_SIZE_T_FMT
                            " vs %" APR_SIZE_T_FMT " bytes)",
                            path, a->len, b->len);
    }
    for (x = a->first, y = b->first; x && y; x = x->next, y = y->next) {
        const char *d = tree_diff(x, y, path);
        if (d) {
            return d;
        }
        if (x->parent != a || y->parent != b) {
            return apr_psprintf(unit_pool, "%s: bad parent pointer", path);
        }
    }
    if (x || y) {
        return apr_psprintf(unit_pool, "%s: different number of children",
                            path);
    }
    return NULL;
}

/* The Data leaves (bytes) of a tree in document order. */
static void collect_data(const memds_node_t *n, apr_array_header_t *a)
{
    const memds_node_t *c;

    if (n->tag == memds_tag_Data && n->text) {
        APR_ARRAY_PUSH(a, const memds_node_t *) = n;
    }
    for (c = n->first; c; c = c->next) {
        collect_data(c, a);
    }
}

typedef struct {
    const char *name; /* relative to CORPUS */
    const char *buf;
    apr_size_t len;
} capture_t;

/* Every *.wbxml file of the corpus: recorded sessions and hand-made. */
static apr_array_header_t *wbxml_files(void)
{
    static const char *const dirs[] = { "pkg1", "items", "mail", "handmade" };
    apr_array_header_t *a = apr_array_make(unit_pool, 64, sizeof(capture_t));
    apr_size_t i;

    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); ++i) {
        apr_dir_t *dir;
        apr_finfo_t fi;
        apr_status_t rv;

        rv = apr_dir_open(&dir, apr_pstrcat(unit_pool, CORPUS, dirs[i], NULL),
                          unit_pool);
        CHECK(rv == APR_SUCCESS, "cannot open %s%s", CORPUS, dirs[i]);
        if (rv != APR_SUCCESS) {
            continue;
        }
        while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, dir)) == APR_SUCCESS
               || rv == APR_INCOMPLETE) {
            apr_size_t nl = strlen(fi.name);
            capture_t *c;

            if (nl < 7 || strcmp(fi.name + nl - 6, ".wbxml") != 0) {
                continue;
            }
            c = apr_array_push(a);
            c->name = apr_pstrcat(unit_pool, dirs[i], "/", fi.name, NULL);
            c->buf = unit_read_file(apr_pstrcat(unit_pool, CORPUS, c->name,
                                                NULL),
                                    &c->len);
            CHECK(c->buf != NULL, "cannot read %s", c->name);
            if (c->buf == NULL) {
                --a->nelts;
            }
        }
        apr_dir_close(dir);
    }
    return a;
}

static memds_tree_t *decode_ok(const char *buf, apr_size_t len,
                               const char *name)
{
    memds_tree_t *t = NULL;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    apr_status_t rv = memds_wbxml_decode(&t, buf, len, &err, unit_pool);

    CHECK(rv == APR_SUCCESS, "%s: decode failed: %s", name,
          err.msg ? err.msg : "(no message)");
    return rv == APR_SUCCESS ? t : NULL;
}

static memds_buf_t *encode_ok(const memds_tree_t *t, const char *name)
{
    memds_buf_t *b = apr_pcalloc(unit_pool, sizeof(*b));
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    apr_status_t rv;

    memds_buf_init(b, 64, unit_pool);
    rv = memds_wbxml_encode(b, t, &err);
    CHECK(rv == APR_SUCCESS, "%s: encode failed: %s", name,
          err.msg ? err.msg : "(no message)");
    return rv == APR_SUCCESS ? b : NULL;
}

/* ------------------------------------------------ 1. capture round trip */

static void captures_round_trip(void)
{
    apr_array_header_t *files = wbxml_files();
    int i, raw_email = 0, nested = 0;

    CHECK(files->nelts >= CORPUS_WBXML_FILES,
          "expected the %d WBXML messages "
          "of the corpus, found %d",
          CORPUS_WBXML_FILES, files->nelts);
    for (i = 0; i < files->nelts; ++i) {
        const capture_t *c = &APR_ARRAY_IDX(files, i, capture_t);
        memds_tree_t *t1, *t2;
        memds_buf_t *out, *out2;
        apr_array_header_t *d1, *d2;
        const char *diff;
        int k;

        t1 = decode_ok(c->buf, c->len, c->name);
        if (t1 == NULL) {
            continue;
        }
        CHECK(t1->version
                      == (strstr(c->name, "syncml11") ? MEMDS_V11 : MEMDS_V12)
                  && t1->wbxml_version == 2,
              "%s: version %d, WBXML 0x%02X", c->name, t1->version,
              t1->wbxml_version);
        out = encode_ok(t1, c->name);
        if (out == NULL) {
            continue;
        }
        t2 = decode_ok(out->data, out->len,
                       apr_pstrcat(unit_pool, c->name, " (re-encoded)", NULL));
        if (t2 == NULL) {
            continue;
        }
        diff = tree_diff(t1->root, t2->root, "");
        CHECK(diff == NULL, "%s: trees differ after re-encoding: %s", c->name,
              diff);
        CHECK(t2->version == t1->version, "%s: version changed", c->name);

        /* the encoder's output is a fixed point */
        out2 = encode_ok(t2, c->name);
        CHECK(out2 && out2->len == out->len
                  && memcmp(out2->data, out->data, out->len) == 0,
              "%s: second encoding differs from the first", c->name);

        /* item bytes: each opaque Data of the original is in the original
         * message byte for byte, and identical after the round trip */
        d1 = apr_array_make(unit_pool, 8, sizeof(const memds_node_t *));
        d2 = apr_array_make(unit_pool, 8, sizeof(const memds_node_t *));
        collect_data(t1->root, d1);
        collect_data(t2->root, d2);
        CHECK(d1->nelts == d2->nelts, "%s: %d Data leaves, %d after", c->name,
              d1->nelts, d2->nelts);
        for (k = 0; k < d1->nelts && k < d2->nelts; ++k) {
            const memds_node_t *a = APR_ARRAY_IDX(d1, k, const memds_node_t *);
            const memds_node_t *b = APR_ARRAY_IDX(d2, k, const memds_node_t *);
            CHECK(a->len == b->len && memcmp(a->text, b->text, a->len) == 0,
                  "%s: Data %d changed", c->name, k);
            CHECK(a->text[a->len] == '\0' && b->text[b->len] == '\0',
                  "%s: Data %d not NUL-terminated", c->name, k);
            /* (libwbxml's encoder writes a Data of several CDATA sections
             * as several OPAQUE pieces, which the decoder joins) */
            if (a->opaque && !strstr(c->name, ".libwbxml.")) {
                CHECK(find_bytes(c->buf, c->len, a->text, a->len) != NULL,
                      "%s: opaque Data %d not found in the original", c->name,
                      k);
            }
        }
        if (strstr(c->name, "raw-email")) {
            ++raw_email;
            CHECK(d1->nelts > 0, "%s: no Data at all", c->name);
        }
        {
            /* a Put or Results with DevInf: nested document became a tree */
            const memds_node_t *body = memds_node_child(t1->root, "SyncBody");
            const memds_node_t *cmd;
            for (cmd = body ? body->first : NULL; cmd; cmd = cmd->next) {
                const memds_node_t *data =
                    memds_node_child(memds_node_child(cmd, "Item"), "Data");
                if (data && data->first
                    && data->first->tag == memds_tag_DevInf) {
                    ++nested;
                    CHECK(data->text == NULL && data->first->next == NULL,
                          "%s: DevInf Data has more than the DevInf", c->name);
                }
            }
        }
    }
    CHECK(raw_email >= CORPUS_WBXML_RAW_EMAIL,
          "expected the %d raw-email "
          "messages, found %d",
          CORPUS_WBXML_RAW_EMAIL, raw_email);
    CHECK(nested >= CORPUS_WBXML_DEVINF,
          "expected the %d messages with a "
          "nested DevInf, found %d",
          CORPUS_WBXML_DEVINF, nested);
}

/* A raw email item holds "]]>" and CRLF: check the bytes in detail. */
static void raw_email_bytes(void)
{
    const char *name = "mail/" CLIENT_MAIL;
    apr_size_t len;
    const char *buf = unit_read_file(CORPUS "mail/" CLIENT_MAIL, &len);
    memds_tree_t *t1, *t2;
    memds_buf_t *out;
    apr_array_header_t *d1, *d2;
    int k, with_cdata_end = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    t1 = decode_ok(buf, len, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
    out = encode_ok(t1, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    t2 = decode_ok(out->data, out->len, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    d1 = apr_array_make(unit_pool, 8, sizeof(const memds_node_t *));
    d2 = apr_array_make(unit_pool, 8, sizeof(const memds_node_t *));
    collect_data(t1->root, d1);
    collect_data(t2->root, d2);
    CU_ASSERT_EQUAL_FATAL(d1->nelts, d2->nelts);
    for (k = 0; k < d1->nelts; ++k) {
        const memds_node_t *a = APR_ARRAY_IDX(d1, k, const memds_node_t *);
        const memds_node_t *b = APR_ARRAY_IDX(d2, k, const memds_node_t *);
        CU_ASSERT_EQUAL(a->len, b->len);
        CU_ASSERT(memcmp(a->text, b->text, a->len) == 0);
        if (find_bytes(a->text, a->len, "]]>", 3)) {
            ++with_cdata_end;
            CU_ASSERT(a->opaque && b->opaque);
            CU_ASSERT_PTR_NOT_NULL(find_bytes(a->text, a->len, "\r\n", 2));
            CU_ASSERT_PTR_NOT_NULL(find_bytes(buf, len, a->text, a->len));
        }
    }
    CU_ASSERT_EQUAL(with_cdata_end, 3);
}

/* ----------------------------------------------------- 2. node sizes */

static int tag_page(const memds_node_t *n)
{
    return n->tag->ts == MEMDS_TS_METINF ? 1 : 0;
}

static void check_sizes(const memds_tree_t *t, const memds_buf_t *out,
                        const char *name)
{
    const unsigned char *o = (const unsigned char *)out->data;
    const memds_node_t *hdr, *body, *cmd;
    int page = 0;
    apr_size_t off, sz;

    sz = memds_wbxml_node_size(t->root, &page);
    CHECK(5 + sz == out->len,
          "%s: header + root size %" APR_SIZE_T_FMT " but %" APR_SIZE_T_FMT
          " bytes written",
          name, 5 + sz, out->len);

    hdr = memds_node_child(t->root, "SyncHdr");
    body = memds_node_child(t->root, "SyncBody");
    if (hdr == NULL || body == NULL || hdr->next != body) {
        CHECK(0, "%s: no SyncHdr + SyncBody", name);
        return;
    }
    page = 0;
    off = 5 + 1; /* header, SyncML */
    off += memds_wbxml_node_size(hdr, &page);
    if (page != 0) {
        CHECK(o[off] == 0x00 && o[off + 1] == 0x00,
              "%s: no switch to page 0 "
              "before SyncBody",
              name);
        off += 2;
        page = 0;
    }
    CHECK(o[off] == 0x6B, "%s: SyncBody expected at %" APR_SIZE_T_FMT, name,
          off);
    ++off;
    for (cmd = body->first; cmd; cmd = cmd->next) {
        int before = page;
        unsigned tok = cmd->tag->tok;

        sz = memds_wbxml_node_size(cmd, &page);
        CHECK(sz > 0 && off + sz <= out->len,
              "%s: <%s> size %" APR_SIZE_T_FMT " at %" APR_SIZE_T_FMT, name,
              cmd->tag->name, sz, off);
        if (sz == 0 || off + sz > out->len) {
            return;
        }
        /* the command starts with its token (or a page switch before it)
         * and ends with END (or is the bare token) */
        if (before != tag_page(cmd)) {
            CHECK(o[off] == 0x00, "%s: <%s>: page switch expected", name,
                  cmd->tag->name);
        }
        else {
            CHECK((o[off] & 0x3F) == tok,
                  "%s: <%s> token 0x%02X expected at %" APR_SIZE_T_FMT
                  ", found 0x%02X",
                  name, cmd->tag->name, tok, off, o[off]);
        }
        if (cmd->first || cmd->text) {
            CHECK(o[off + sz - 1] == 0x01, "%s: <%s> does not end with END",
                  name, cmd->tag->name);
        }
        else {
            CHECK(o[off + sz - 1] == tok, "%s: <%s> bare token expected", name,
                  cmd->tag->name);
        }
        off += sz;
    }
    CHECK(off + 2 == out->len && o[off] == 0x01 && o[off + 1] == 0x01,
          "%s: commands end at %" APR_SIZE_T_FMT " of %" APR_SIZE_T_FMT, name,
          off, out->len);
}

static void captures_node_sizes(void)
{
    apr_array_header_t *files = wbxml_files();
    int i;

    CU_ASSERT_FATAL(files->nelts > 0);
    for (i = 0; i < files->nelts; ++i) {
        const capture_t *c = &APR_ARRAY_IDX(files, i, capture_t);
        memds_tree_t *t = decode_ok(c->buf, c->len, c->name);
        memds_buf_t *out = t ? encode_ok(t, c->name) : NULL;

        if (out) {
            check_sizes(t, out, c->name);
        }
    }
}

/* ------------------------------------------------------- 3. the oracle */

static int have_wbxml2xml(void)
{
    return system("command -v wbxml2xml >/dev/null 2>&1") == 0;
}

/* Run wbxml2xml (compact, keep whitespace) on buf; the XML it wrote, or
 * NULL when it failed. */
static const char *wbxml2xml(const char *buf, apr_size_t len, apr_size_t *plen)
{
    char in[] = "/tmp/memds-wbxml-in-XXXXXX";
    char out[] = "/tmp/memds-wbxml-out-XXXXXX";
    int fd, fo, rc;
    const char *xml = NULL;
    FILE *f;

    fd = mkstemp(in);
    if (fd < 0) {
        return NULL;
    }
    f = fdopen(fd, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len) {
        if (f) {
            fclose(f);
        }
        unlink(in);
        return NULL;
    }
    fclose(f);
    fo = mkstemp(out);
    if (fo < 0) {
        unlink(in);
        return NULL;
    }
    close(fo);
    rc = system(apr_psprintf(unit_pool,
                             "wbxml2xml -m 0 -k -o %s %s "
                             ">/dev/null 2>&1",
                             out, in));
    if (rc == 0) {
        xml = unit_read_file(out, plen);
    }
    unlink(in);
    unlink(out);
    return xml;
}

/* Text as an XML parser delivers it: CR LF and lone CR become LF. */
static const char *xml_eol(const char *s, apr_size_t len, apr_size_t *plen)
{
    char *r = apr_palloc(unit_pool, len + 1);
    apr_size_t i, n = 0;

    for (i = 0; i < len; ++i) {
        if (s[i] == '\r') {
            r[n++] = '\n';
            if (i + 1 < len && s[i + 1] == '\n') {
                ++i;
            }
        }
        else {
            r[n++] = s[i];
        }
    }
    r[n] = '\0';
    *plen = n;
    return r;
}

/* Same element names and leaf texts in libxml2's tree of wbxml2xml's
 * output as in ours. */
static const char *xml_diff(xmlNode *x, const memds_node_t *n, const char *path)
{
    xmlNode *xc;
    const memds_node_t *c;

    path = apr_pstrcat(unit_pool, path, "/", n->tag->name, NULL);
    if (strcmp((const char *)x->name, n->tag->name) != 0) {
        return apr_psprintf(unit_pool, "%s: wbxml2xml has <%s>", path,
                            (const char *)x->name);
    }
    if (n->first == NULL) {
        xmlChar *content = xmlNodeGetContent(x);
        const char *want = n->text ? n->text : "";
        apr_size_t wlen = n->text ? n->len : 0, elen;
        const char *got = (const char *)content;
        const char *diff = NULL;

        want = xml_eol(want, wlen, &wlen);
        if (is_devinf_type(want, wlen)) {
            want = DEVINF_XML; /* libwbxml writes the XML type name */
            wlen = strlen(want);
        }
        elen = got ? strlen(got) : 0;
        if (elen != wlen || memcmp(got ? got : "", want, wlen) != 0) {
            diff = apr_psprintf(unit_pool, "%s: text \"%s\" vs \"%s\"", path,
                                got ? got : "", want);
        }
        xmlFree(content);
        return diff;
    }
    for (xc = x->children, c = n->first; c; c = c->next, xc = xc->next) {
        const char *d;
        while (xc && xc->type != XML_ELEMENT_NODE) {
            xc = xc->next;
        }
        if (xc == NULL) {
            return apr_psprintf(unit_pool, "%s: wbxml2xml lacks <%s>", path,
                                c->tag->name);
        }
        if ((d = xml_diff(xc, c, path)) != NULL) {
            return d;
        }
    }
    for (; xc; xc = xc->next) {
        if (xc->type == XML_ELEMENT_NODE) {
            return apr_psprintf(unit_pool, "%s: wbxml2xml has an extra <%s>",
                                path, (const char *)xc->name);
        }
    }
    return NULL;
}

static void oracle_wbxml2xml(void)
{
    const char *name = "items/wbxml-basic-slow-001-req.wbxml";
    apr_size_t len, xlen = 0;
    const char *buf = unit_read_file(CORPUS
                                     "items/wbxml-basic-slow-001-req.wbxml",
                                     &len);
    memds_tree_t *t;
    memds_buf_t *out;
    const char *xml, *diff;
    xmlDoc *doc;

    if (!have_wbxml2xml()) {
        CU_FAIL("wbxml2xml not found in PATH (Debian: libwbxml2-utils): the "
                "WBXML oracle test cannot run");
        return;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_PTR_NULL(find_bytes(buf, len, "]]>", 3));
    t = decode_ok(buf, len, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    out = encode_ok(t, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    xml = wbxml2xml(out->data, out->len, &xlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(xml);
    doc = xmlReadMemory(xml, (int)xlen, "oracle.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR
                            | XML_PARSE_NOWARNING);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    diff = xml_diff(xmlDocGetRootElement(doc), t->root, "");
    CHECK(diff == NULL, "wbxml2xml disagrees with our decoder: %s", diff);
    /* the nested DevInf we wrote is a document libwbxml understands too */
    CU_ASSERT_PTR_NOT_NULL(strstr(xml, "<DevInf xmlns=\"syncml:devinf\">"));
    xmlFreeDoc(doc);
}

/* DESIGN.md decision 7: libwbxml's converter turns opaque item data into
 * CDATA and breaks on "]]>"; our codec keeps the bytes. */
static void oracle_cdata_defect(void)
{
    const char *name = "mail/" CLIENT_MAIL;
    apr_size_t len, xlen = 0;
    const char *buf = unit_read_file(CORPUS "mail/" CLIENT_MAIL, &len);
    memds_tree_t *t, *t2;
    memds_buf_t *out;
    const char *xml;
    xmlDoc *doc;
    apr_array_header_t *d1, *d2;
    int k, seen = 0;

    if (!have_wbxml2xml()) {
        CU_FAIL("wbxml2xml not found in PATH (Debian: libwbxml2-utils): the "
                "WBXML oracle test cannot run");
        return;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    t = decode_ok(buf, len, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    out = encode_ok(t, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    xml = wbxml2xml(out->data, out->len, &xlen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(xml); /* libwbxml itself reports success */
    doc = xmlReadMemory(xml, (int)xlen, "oracle.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR
                            | XML_PARSE_NOWARNING);
    CU_ASSERT_PTR_NULL(doc); /* ... but its XML is not well-formed */
    if (doc) {
        xmlFreeDoc(doc);
    }
    /* our own decoder gets every byte back */
    t2 = decode_ok(out->data, out->len, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    d1 = apr_array_make(unit_pool, 8, sizeof(const memds_node_t *));
    d2 = apr_array_make(unit_pool, 8, sizeof(const memds_node_t *));
    collect_data(t->root, d1);
    collect_data(t2->root, d2);
    CU_ASSERT_EQUAL_FATAL(d1->nelts, d2->nelts);
    for (k = 0; k < d1->nelts; ++k) {
        const memds_node_t *a = APR_ARRAY_IDX(d1, k, const memds_node_t *);
        const memds_node_t *b = APR_ARRAY_IDX(d2, k, const memds_node_t *);
        if (find_bytes(a->text, a->len, "]]>", 3)) {
            ++seen;
            CU_ASSERT(a->len == b->len
                      && memcmp(a->text, b->text, a->len) == 0);
        }
    }
    CU_ASSERT(seen > 0);
}

/* ------------------------------------------------ 4. malformed input */

#define H12 "\x02\xA4\x01\x6A\x00"
/* <SyncML><SyncHdr><VerDTD>1.2</VerDTD></SyncHdr><SyncBody><Final/>... */
#define MIN_BODY \
    "\x6D\x6C\x71\x03" \
    "1.2" \
    "\x00\x01\x01\x6B\x12\x01\x01"

/* buf must give APR_EINVAL with word in the message. */
static void expect_bad_at(int line, const void *buf, apr_size_t len,
                          const char *word)
{
    memds_tree_t *t = NULL;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    apr_status_t rv;
    char *copy = malloc(len ? len : 1); /* exact size: reads past it show */

    memcpy(copy, buf, len);
    rv = memds_wbxml_decode(&t, copy, len, &err, unit_pool);
    free(copy);
    check(rv == APR_EINVAL && t == NULL && err.rv == APR_EINVAL && err.msg
              && strstr(err.msg, word),
          line,
          apr_psprintf(unit_pool,
                       "expected an error with \"%s\", got rv %d: "
                       "%s",
                       word, rv, err.msg ? err.msg : "(none)"));
}
#define BAD(lit, word) expect_bad_at(__LINE__, lit, sizeof(lit) - 1, word)

static memds_tree_t *expect_good_at(int line, const void *buf, apr_size_t len)
{
    memds_tree_t *t = NULL;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    apr_status_t rv = memds_wbxml_decode(&t, buf, len, &err, unit_pool);

    check(rv == APR_SUCCESS, line,
          apr_psprintf(unit_pool, "decode failed: %s",
                       err.msg ? err.msg : "?"));
    return t;
}
#define GOOD(lit) expect_good_at(__LINE__, lit, sizeof(lit) - 1)

static void malformed_truncated(void)
{
    static const char *const files[] = {
        "pkg1/wbxml-md5-001-req.wbxml", /* nested DevInf */
        "handmade/string-fpi-wbxml-basic-slow-001-resp.wbxml", /* string FPI */
        "handmade/hm01-client-pkg1-email.libwbxml.wbxml", /* string table */
        CLIENT_MAIL_PATH,
    };
    apr_size_t f, i, len;

    for (f = 0; f < sizeof(files) / sizeof(files[0]); ++f) {
        const char *buf = unit_read_file(apr_pstrcat(unit_pool, CORPUS,
                                                     files[f], NULL),
                                         &len);
        apr_pool_t *p;
        int failures = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        CU_ASSERT_PTR_NOT_NULL(expect_good_at(__LINE__, buf, len));
        apr_pool_create(&p, unit_pool);
        for (i = 0; i < len; ++i) {
            memds_tree_t *t = NULL;
            memds_codec_err_t err = { 0, NULL, 0, 0 };
            char *copy = malloc(i ? i : 1);
            apr_status_t rv;

            memcpy(copy, buf, i);
            rv = memds_wbxml_decode(&t, copy, i, &err, p);
            free(copy);
            if (rv != APR_EINVAL || err.msg == NULL || t != NULL
                || err.offset > i) {
                if (failures++ < 5) {
                    CHECK(0,
                          "%s truncated to %" APR_SIZE_T_FMT " bytes: rv %d,"
                          " %s",
                          files[f], i, rv, err.msg ? err.msg : "?");
                }
            }
            apr_pool_clear(p);
        }
        CHECK(failures == 0, "%s: %d truncations not refused", files[f],
              failures);
        apr_pool_destroy(p);
    }
    /* what the messages say at a few places */
    BAD("", "empty message");
    BAD("\x02", "truncated mb_u_int32 at offset 1");
    BAD("\x02\xA4", "truncated mb_u_int32 at offset 1");
    BAD(H12, "no root element");
    BAD(H12 "\x6D\x6C", "unexpected end of message inside <SyncHdr>");
    BAD(H12 "\x6D\x6C\x71\x03"
            "1.",
        "unterminated inline string");
}

static void malformed_header(void)
{
    BAD("\x00\xA4\x01\x6A\x00" MIN_BODY, "unsupported WBXML version 0x00");
    BAD("\x04\xA4\x01\x6A\x00" MIN_BODY, "unsupported WBXML version 0x04");
    BAD("\x02\xA4\x34\x6A\x00" MIN_BODY, "unknown public id 0x1234");
    BAD("\x02\x05\x6A\x00" MIN_BODY, "unknown public id 0x5");
    /* MetInf has a public id but is no document */
    BAD("\x02\xA4\x02\x6A\x00" MIN_BODY, "unknown public id 0x1202");
    /* a DevInf document where a message belongs */
    BAD("\x02\xA4\x03\x6A\x00" MIN_BODY, "public id of DevInf 1.2");
    BAD("\x02\x00\x00\x6A\x05"
        "abcd\x00" MIN_BODY,
        "unknown public id \"abcd\"");
    BAD("\x02\x00\x09\x6A\x05"
        "abcd\x00" MIN_BODY,
        "public id string table reference 9 past the table (size 5)");
    BAD("\x02\xA4\x01\x04\x00" MIN_BODY, "unsupported charset 4");
    BAD("\x02\xA4\x01\x6A\x20"
        "abc",
        "string table length 32 past the end");
    /* mb_u_int32: 6 bytes, 2^32, truncated */
    BAD("\x02\x80\x80\x80\x80\x80\x01\x6A\x00" MIN_BODY, "longer than 5 bytes");
    BAD("\x02\x90\x80\x80\x80\x00\x6A\x00" MIN_BODY, "mb_u_int32 overflow");
    BAD("\x02\x8F\xFF\xFF\xFF\x7F\x6A\x00" MIN_BODY,
        "unknown public id 0xFFFFFFFF");
    BAD("\x02\xA4\x01\x6A\x80", "truncated mb_u_int32 at offset 4");
    /* unknown public id and no usable VerDTD */
    BAD("\x02\x01\x6A\x00\x6D\x6B\x12\x01\x01", "VerDTD");
    BAD("\x02\x01\x6A\x00\x6D\x6C\x71\x03"
        "9.9\x00\x01\x01\x6B\x12\x01\x01",
        "VerDTD");
}

/* A string table for LITERAL tags: Property (0), CTType (9), Foo (16),
 * DevInf (20); the body starts at offset 32. */
#define LIT_TBL \
    "\x02\xA4\x01\x6A\x1B" \
    "Property\0CTType\0Foo\0DevInf\0"

/* libwbxml's form of a filter Field's Property: LITERAL tags in the Data,
 * read as the DevInf elements they name. */
static void literal_property(void)
{
    static const char msg[] = "\x02\xA4\x01\x6A\x12"
                              "Property\0PropName\0"
                              "\x6D\x75\x54\x4F\x44\x00\x44\x09\x03"
                              "emailitem\0\x01\x01\x01\x01\x01\x01";
    memds_tree_t *t = NULL;
    memds_codec_err_t err;
    const memds_node_t *d;

    memset(&err, 0, sizeof(err));
    CU_ASSERT_EQUAL_FATAL(memds_wbxml_decode(&t, msg, sizeof(msg) - 1, &err,
                                             unit_pool),
                          APR_SUCCESS);
    d = t->root->first->first->first; /* SyncML/Field/Item/Data */
    CU_ASSERT_STRING_EQUAL(d->tag->name, "Data");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->first);
    CU_ASSERT_EQUAL(d->first->tag->ts, MEMDS_TS_DEVINF);
    CU_ASSERT_STRING_EQUAL(d->first->tag->name, "Property");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->first->first);
    CU_ASSERT_EQUAL(d->first->first->tag->ts, MEMDS_TS_DEVINF);
    CU_ASSERT_STRING_EQUAL(d->first->first->tag->name, "PropName");
    CU_ASSERT_STRING_EQUAL(memds_node_str(d->first->first, unit_pool),
                           "emailitem");
}

static void malformed_tokens(void)
{
    char *deep, *many;
    apr_size_t i, n;

    /* lengths and references past the end */
    BAD(H12 "\x6D\x6C\x4F\xC3\xA7\x08"
            "abc",
        "OPAQUE length 5000 past the end of the message (at offset 8)");
    BAD(H12 "\x6D\x6C\x71\x83\x14\x01", "string table reference 20 past the "
                                        "table (size 0)");
    BAD("\x02\xA4\x01\x6A\x03"
        "abc"
        "\x6D\x6C\x71\x83\x01\x01",
        "unterminated string table entry 1");
    BAD(H12 "\x6D\x6C\x71\x03"
            "1.2",
        "unterminated inline string (STR_I at "
        "offset 8)");
    BAD(H12 "\x6D\x6C\x71\xC3\x85", "truncated mb_u_int32 at offset 9");
    BAD(H12 "\x6D\x6C\x71\x02\xFF\xFF\xFF\xFF\xFF\x01", "longer than 5 bytes");
    /* unsupported WBXML features */
    BAD(H12 "\xAD",
        "attributes are not allowed in SyncML (tag 0xAD at offset 5)");
    BAD(H12 "\x6D\xEC\x01", "attributes are not allowed");
    /* LITERAL tags: only DevInf names of a filter Field, in a <Data> */
    BAD(H12 "\x6D\x04\x00\x01", "LITERAL tag at offset 6 outside a <Data>");
    BAD(H12 "\x6D\x44\x00\x01", "LITERAL tag at offset 6 outside a <Data>");
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x1E\x01\x01\x01",
        "string table index 30, outside the table");
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x10\x01\x01\x01",
        "LITERAL tag <Foo> at offset 36 is not a DevInf element");
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x09\x01\x01\x01",
        "LITERAL tag <CTType> at offset 36 is not a DevInf element");
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x14\x01\x01\x01",
        "LITERAL tag <DevInf> at offset 36 is not a DevInf element");
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x00\x04\x10\x01\x01\x01",
        "LITERAL tag <Foo> at offset 38 is not a DevInf element");
    /* a Property in a Data outside a Field, or a second one */
    BAD(LIT_TBL "\x6D\x54\x4F\x44\x00\x01\x01\x01\x01",
        "a <Data> holds one DevInf <Property>, in a filter <Field> only");
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x00\x01\x44\x00\x01\x01\x01"
                "\x01\x01",
        "LITERAL tag at offset 39: a <Data> holds one DevInf <Property>");
    /* below a LITERAL DevInf element, no SyncML or MetInf token */
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x00\x4F\x03"
                "x\x00\x01\x01\x01\x01\x01\x01",
        "SyncML element <Data> inside DevInf <Property> at offset 38");
    /* nor beside one in the Data */
    BAD(LIT_TBL "\x6D\x75\x54\x4F\x44\x00\x01\x4F\x03"
                "x\x00\x01\x01\x01\x01\x01",
        "SyncML element <Data> inside DevInf <Property> at offset 39");
    BAD(H12 "\x6D\x84\x00\x01", "LITERAL token 0x84");
    BAD(H12 "\x6D\xC4\x00\x01", "LITERAL token 0xC4");
    BAD(H12 "\x6D\x40"
            "x\x00\x01",
        "extension token 0x40");
    BAD(H12 "\x6D\x80\x00\x01", "extension token 0x80");
    BAD(H12 "\x6D\xC0\x01", "extension token 0xC0");
    BAD(H12 "\x6D\x43\x01", "processing instruction");
    /* tags and pages */
    BAD(H12 "\x6D\x00\x01\x7F\x01\x01",
        "unknown tag 0x3F on code page 1 at offset 8");
    BAD(H12 "\x6D\x00\x01\x57\x01\x01", "unknown tag 0x17 on code page 1");
    BAD(H12 "\x6D\x70\x01\x01", "unknown tag 0x30 on code page 0");
    BAD(H12 "\x6D\x00\x05\x6C\x01\x01", "unsupported code page 5");
    BAD(H12 "\x6D\x00", "truncated SWITCH_PAGE");
    BAD(H12 "\x6C\x01", "root element is <SyncHdr>, expected <SyncML>");
    BAD(H12 "\x00\x01\x45\x01", "root element is <Anchor>");
    /* structure */
    BAD(H12 "\x01", "END without an open element at offset 5");
    BAD(H12 "\x03"
            "x\x00",
        "content before the root element");
    BAD(H12 MIN_BODY "\x00\x00", "content after the root element at offset 19");
    BAD(H12 MIN_BODY "\x6D\x01", "content after the root element");
    BAD(H12 MIN_BODY "\x01", "content after the root element");
    BAD(H12 "\x2D\x6D\x01", "content after the root element");
    BAD(H12 "\x6D\x6C\x03"
            "text\x00\x71\x03"
            "1.2\x00\x01\x01\x01",
        "mixed content: text and child elements in <SyncHdr>");
    BAD(H12 "\x6D\x6C\x71\x03"
            "1.2\x00\x01\x03"
            "x\x00\x01\x01",
        "mixed content");
    BAD(H12 "\x6D\x6C\xC3\x01 \x71\x03"
            "1.2\x00\x01\x01\x01",
        "mixed content"); /* opaque blanks are data, never dropped */
    /* text */
    BAD(H12 "\x6D\x6C\x71\x03\xC3\x28\x00\x01\x01\x01",
        "invalid UTF-8 in string at offset 9");
    BAD(H12 "\x6D\x6C\x71\x03"
            "1\xC0\x80\x00\x01\x01\x01",
        "invalid UTF-8 in "
        "string at offset 10");
    BAD(H12 "\x6D\x6C\x71\x03\xED\xA0\x80\x00\x01\x01\x01", "invalid UTF-8");
    BAD(H12 "\x6D\x6C\x71\x03\xF4\x90\x80\x80\x00\x01\x01\x01",
        "invalid UTF-8");
    BAD(H12 "\x6D\x6C\x71\x03\xE2\x82\x00\x01\x01\x01", "invalid UTF-8");
    BAD("\x02\xA4\x01\x6A\x03"
        "\xFF"
        "a\x00\x6D\x6C\x71\x83\x00\x01\x01\x01",
        "invalid UTF-8 in string at offset 5");
    BAD(H12 "\x6D\x6C\x71\x02\x83\xB0\x00\x01\x01\x01", /* U+D800 */
        "invalid character entity 0xD800");
    BAD(H12 "\x6D\x6C\x71\x02\x00\x01\x01\x01", "invalid character entity 0x0");
    BAD(H12 "\x6D\x6C\x71\x02\xC4\x80\x00\x01\x01\x01",
        "invalid character entity 0x110000");

    /* 100 nested <Sync> */
    n = 5 + 1 + 100 + 100 + 1;
    deep = apr_palloc(unit_pool, n);
    memcpy(deep, H12 "\x6D", 6);
    memset(deep + 6, 0x6A, 100);
    memset(deep + 106, 0x01, 101);
    expect_bad_at(__LINE__, deep, n, "elements nested deeper than 32");
    {
        /* SyncML + 30 Sync + a bare Sync: 32 levels are fine */
        char ok[5 + 1 + 30 + 1 + 31], no[5 + 1 + 31 + 1 + 32];
        memcpy(ok, H12 "\x6D", 6);
        memset(ok + 6, 0x6A, 30);
        ok[36] = 0x2A;
        memset(ok + 37, 0x01, 31);
        /* (the public id is known: no VerDTD needed) */
        CU_ASSERT_PTR_NOT_NULL(expect_good_at(__LINE__, ok, sizeof(ok)));
        /* one more level is not */
        memcpy(no, H12 "\x6D", 6);
        memset(no + 6, 0x6A, 31);
        no[37] = 0x2A;
        memset(no + 38, 0x01, 32);
        expect_bad_at(__LINE__, no, sizeof(no),
                      "elements nested deeper than "
                      "32 (at offset 37)");
    }

    /* too many elements: SyncML with 1000001 bare <Final> */
    n = 5 + 1 + MEMDS_CODEC_MAX_NODES + 1;
    many = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(many);
    memcpy(many, H12 "\x6D", 6);
    for (i = 6; i < n - 1; ++i) {
        many[i] = 0x12;
    }
    many[n - 1] = 0x01;
    expect_bad_at(__LINE__, many, n, "more than 1000000 elements");
    /* one fewer is accepted */
    many[n - 2] = 0x01;
    CU_ASSERT_PTR_NOT_NULL(expect_good_at(__LINE__, many, n - 1));
    free(many);
}

/* 300000 <Data> under one Item, and as many Items under one Put: the
 * DevInf check at each Data must not look at all earlier siblings (that
 * was quadratic: minutes instead of milliseconds). */
static void wide_trees(void)
{
    apr_size_t k = 300000, n = 5 + 4 + k * 7 + 4, i, o;
    char *b = malloc(n);
    memds_tree_t *t = NULL;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    memds_buf_t out;
    apr_pool_t *p;
    int page = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    apr_pool_create(&p, unit_pool); /* 40 MB of nodes: given back at the end */
    memcpy(b, H12 "\x6D\x6B\x5F\x54", 9);
    for (i = 0, o = 9; i < k; ++i, o += 5) {
        memcpy(b + o, "\x4F\x03x\x00\x01", 5);
    }
    memcpy(b + o, "\x01\x01\x01\x01", 4);
    CU_ASSERT_EQUAL_FATAL(memds_wbxml_decode(&t, b, o + 4, &err, p),
                          APR_SUCCESS);
    memds_buf_init(&out, 0, p);
    CU_ASSERT_EQUAL(memds_wbxml_encode(&out, t, &err), APR_SUCCESS);
    CU_ASSERT_EQUAL(out.len, 5 + memds_wbxml_node_size(t->root, &page));
    apr_pool_clear(p);

    memcpy(b, H12 "\x6D\x6B\x5F", 8);
    for (i = 0, o = 8; i < k; ++i, o += 7) {
        memcpy(b + o, "\x54\x4F\x03x\x00\x01\x01", 7);
    }
    memcpy(b + o, "\x01\x01\x01", 3);
    CU_ASSERT_EQUAL(memds_wbxml_decode(&t, b, o + 3, &err, p), APR_SUCCESS);
    apr_pool_destroy(p);
    free(b);
}

/* A Put of DevInf with the nested document given as bytes. */
static const char *devinf_put(const char *nested, apr_size_t nlen,
                              apr_size_t *plen)
{
    memds_buf_t b;
    static const char type[] = DEVINF_WBXML;
    unsigned char l1 = (unsigned char)(0x80 | (nlen >> 7));
    unsigned char l2 = (unsigned char)(nlen & 0x7F);

    memds_buf_init(&b, 256, unit_pool);
#define ADD(lit) memds_buf_add(&b, lit, sizeof(lit) - 1)
    ADD(H12 "\x6D\x6C\x71\x03"
            "1.2\x00\x01\x01\x6B\x5F");
    ADD("\x4B\x03"
        "1\x00\x01");            /* CmdID */
    ADD("\x5A\x00\x01\x53\x03"); /* Meta, Type */
    memds_buf_add(&b, type, sizeof(type));
    ADD("\x01\x01\x00\x00\x54\x4F\xC3"); /* Item, Data, OPAQUE */
    memds_buf_addc(&b, (char)l1);
    memds_buf_addc(&b, (char)l2);
    memds_buf_add(&b, nested, nlen);
    ADD("\x01\x01\x01\x12\x01\x01");
#undef ADD
    *plen = b.len;
    return b.data;
}
#define DEVINF_PUT(lit, plen) devinf_put(lit, sizeof(lit) - 1, plen)

static void malformed_nested(void)
{
    apr_size_t len;
    const char *m;
    memds_tree_t *t;
    const memds_node_t *data;

    /* well-formed first: DevInf(VerDTD 1.2, UTC) */
    m = DEVINF_PUT("\x02\xA4\x03\x6A\x00\x4A\x65\x03"
                   "1.2\x00\x01\x28\x01",
                   &len);
    t = expect_good_at(__LINE__, m, len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    data = memds_node_child(
        memds_node_child(memds_node_child(memds_node_child(t->root, "SyncBody"),
                                          "Put"),
                         "Item"),
        "Data");
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_PTR_NULL(data->text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data->first);
    CU_ASSERT_PTR_EQUAL(data->first->tag, memds_tag_DevInf);
    CU_ASSERT_PTR_EQUAL(data->first->parent, data);
    CU_ASSERT_STRING_EQUAL(memds_node_child(data->first, "VerDTD")->text,
                           "1.2");

    /* invalid UTF-8 inside the nested document: offset in the message */
    m = DEVINF_PUT("\x02\xA4\x03\x6A\x00\x4A\x65\x03"
                   "1\xFF\x00\x01\x01",
                   &len);
    expect_bad_at(__LINE__, m, len,
                  "nested DevInf document in <Data> at offset");
    expect_bad_at(__LINE__, m, len, "invalid UTF-8 in string at offset 81");
    m = DEVINF_PUT("\x02\xA4\x01\x6A\x00\x4A\x01", &len);
    expect_bad_at(__LINE__, m, len, "public id of SyncML 1.2 where a DevInf");
    m = DEVINF_PUT("\x02\xA4\x03\x6A\x00\x4A\x00\x01\x45\x01\x01", &len);
    expect_bad_at(__LINE__, m, len, "unsupported code page 1 in a DevInf");
    m = DEVINF_PUT("\x02\xA4\x03\x6A\x00\x4A\x6F\x01\x01", &len);
    expect_bad_at(__LINE__, m, len, "unknown tag 0x2F on code page 0");
    m = DEVINF_PUT("\x02\xA4\x03\x6A\x00\x47\x01", &len);
    expect_bad_at(__LINE__, m, len, "root element is <DataStore>");
    m = DEVINF_PUT("\x02\xA4\x03\x6A\x00\x4A\x01\x12", &len);
    expect_bad_at(__LINE__, m, len, "content after the root element");
    m = DEVINF_PUT("\x02\xA4\x03\x6A\x00\x4A", &len);
    expect_bad_at(__LINE__, m, len,
                  "unexpected end of message inside <DevInf>");
    m = DEVINF_PUT("<DevInf/>", &len);
    expect_bad_at(__LINE__, m, len, "nested DevInf document");
}

/* Lenient or less common forms that must be accepted. */
static void decode_variants(void)
{
    memds_tree_t *t;
    const memds_node_t *hdr, *n;

    /* public id unknown: version from VerDTD */
    t = GOOD("\x02\x01\x6A\x00\x6D\x6C\x71\x03"
             "1.1\x00\x01\x01\x6B\x12\x01\x01");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V11);
    /* FPI in the string table (libsynthesis 1.0), WBXML 1.3, US-ASCII */
    t = GOOD("\x03\x00\x00\x03\x1E"
             "-//SYNCML//DTD SyncML 1.0//EN\x00" MIN_BODY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V10);
    CU_ASSERT_EQUAL(t->wbxml_version, 3);
    /* Horde: FPI without its NUL; numeric 1.1 id; WBXML 1.1 */
    t = GOOD("\x02\x00\x00\x6A\x1D"
             "-//SYNCML//DTD SyncML 1.1//EN" MIN_BODY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V11);
    t = GOOD("\x01\x9F\x53\x6A\x00" MIN_BODY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V11);
    CU_ASSERT_EQUAL(t->wbxml_version, 1);

    /* STR_T, STR_I, ENTITY and OPAQUE concatenated; blanks between
     * elements dropped; 1.2-only tags in a 1.1 message; page 1 kept across
     * END; an empty element written with the content bit */
    t = GOOD(
        "\x02\x9F\x53\x6A\x04"
        "1.\x00x"
        "\x6D\x03 \n\x00"              /* blanks: dropped */
        "\x6C\x71\x83\x00\x02\x32\x01" /* VerDTD: STR_T + ENTITY */
        "\x5A\x00\x01\x4C\x03"
        "10\x00\xC3\x02"
        "0\x00\x01"                    /* MaxMsgSize */
        "\x4D\x49\x02\xC1\x2C\x01\x01" /* Mem/FreeMem: ENTITY 0x20AC */
        "\x16"                         /* FieldLevel (1.2 only) */
        "\x01\x03\t\x00\x01"           /* END Meta on page 1, blank, END */
        "\x00\x00\x6B\x7B\x01\x52\x01\x01\x01"); /* Move, Final w/ content */
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_PTR_NULL(t->root->text);
    hdr = memds_node_child(t->root, "SyncHdr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(hdr);
    n = memds_node_child(hdr, "VerDTD");
    CU_ASSERT_EQUAL(n->len, 3);
    CU_ASSERT_STRING_EQUAL(n->text, "1.2");
    CU_ASSERT_FALSE(n->opaque);
    n = memds_node_child(memds_node_child(hdr, "Meta"), "MaxMsgSize");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL(n->tag->ts, MEMDS_TS_METINF);
    CU_ASSERT_EQUAL(n->len, 4);
    CU_ASSERT(memcmp(n->text, "10\x30\x00", 5) == 0);
    CU_ASSERT_TRUE(n->opaque);
    n = memds_node_child(memds_node_child(hdr, "Meta"), "Mem");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_PTR_NULL(n->text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n->first);
    /* U+20AC (euro sign) from the ENTITY 0x20AC */
    CU_ASSERT_STRING_EQUAL(n->first->tag->name, "FreeMem");
    CU_ASSERT_STRING_EQUAL(n->first->text, "\xE2\x82\xAC");
    CU_ASSERT_PTR_NOT_NULL(
        memds_node_child(memds_node_child(hdr, "Meta"), "FieldLevel"));
    n = memds_node_child(t->root, "SyncBody");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_STRING_EQUAL(n->first->tag->name, "Move");
    CU_ASSERT_PTR_NULL(n->first->text);
    CU_ASSERT_STRING_EQUAL(n->last->tag->name, "Final");

    /* Data holding MetInf elements (Status for an Alert: Anchor/Next) */
    t = GOOD(H12 "\x6D\x6C\x71\x03"
                 "1.2\x00\x01\x01\x6B\x69\x54\x4F"
                 "\x00\x01\x45\x4F\x03"
                 "42\x00\x01\x01\x01\x01\x01"
                 "\x00\x00\x12\x01\x01");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    n = memds_node_child(
        memds_node_child(memds_node_child(memds_node_child(t->root, "SyncBody"),
                                          "Status"),
                         "Item"),
        "Data");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_PTR_NULL(n->text);
    CU_ASSERT_STRING_EQUAL(memds_node_child(n->first, "Next")->text, "42");

    /* OPAQUE Data in a Put without a DevInf type stays bytes */
    t = GOOD(H12 "\x6D\x6C\x71\x03"
                 "1.2\x00\x01\x01\x6B\x5F\x54\x4F\xC3\x03"
                 "\x02\xA4\x03\x01\x01\x01\x01\x01");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
}

/* --------------------------------------------- 5. hand-built trees */

static const char binary[] = "a\0b\xFF]]>\r\nz\r\n";

static memds_tree_t *build_tree(memds_ver_e ver, const char *devinf_type)
{
    apr_pool_t *p = unit_pool;
    memds_tree_t *t = apr_pcalloc(p, sizeof(*t));
    memds_node_t *root, *hdr, *body, *cmd, *item, *meta, *data, *di, *ds, *a;

    t->version = ver;
    t->root = root = memds_node_new(memds_tag_SyncML, p);
    hdr = memds_node_add(root, memds_node_new(tS("SyncHdr"), p));
    memds_node_add_str(hdr, tS("VerDTD"), ver == MEMDS_V12 ? "1.2" : "1.1", p);
    memds_node_add_str(hdr, tS("VerProto"), "SyncML/1.2", p);
    memds_node_add_str(hdr, tS("SessionID"), "5", p);
    memds_node_add_str(hdr, tS("MsgID"), "1", p);
    memds_node_add_str(memds_node_add(hdr, memds_node_new(tS("Target"), p)),
                       tS("LocURI"), "device", p);
    memds_node_add_str(memds_node_add(hdr, memds_node_new(tS("Source"), p)),
                       tS("LocURI"), "http://server/sync", p);
    body = memds_node_add(root, memds_node_new(tS("SyncBody"), p));

    /* Status for an Alert: its Item's Data holds a MetInf Anchor */
    cmd = memds_node_add(body, memds_node_new(tS("Status"), p));
    memds_node_add_str(cmd, tS("CmdID"), "1", p);
    memds_node_add_str(cmd, tS("MsgRef"), "1", p);
    memds_node_add_str(cmd, tS("CmdRef"), "3", p);
    memds_node_add_str(cmd, tS("Cmd"), "Alert", p);
    memds_node_add_str(cmd, tS("Data"), "200", p);
    item = memds_node_add(cmd, memds_node_new(tS("Item"), p));
    data = memds_node_add(item, memds_node_new(memds_tag_Data, p));
    a = memds_node_add(data, memds_node_new(tM("Anchor"), p));
    memds_node_add_str(a, tM("Next"), "20240101T000000Z", p);

    /* Put of DevInf */
    cmd = memds_node_add(body, memds_node_new(tS("Put"), p));
    memds_node_add_str(cmd, tS("CmdID"), "2", p);
    meta = memds_node_add(cmd, memds_node_new(tS("Meta"), p));
    memds_node_add_str(meta, tM("Type"), devinf_type, p);
    item = memds_node_add(cmd, memds_node_new(tS("Item"), p));
    memds_node_add_str(memds_node_add(item, memds_node_new(tS("Source"), p)),
                       tS("LocURI"), "./devinf12", p);
    data = memds_node_add(item, memds_node_new(memds_tag_Data, p));
    di = memds_node_add(data, memds_node_new(memds_tag_DevInf, p));
    memds_node_add_str(di, tD("VerDTD"), "1.2", p);
    memds_node_add_str(di, tD("Man"), "mod_memds", p);
    memds_node_add(di, memds_node_new(tD("UTC"), p));
    ds = memds_node_add(di, memds_node_new(tD("DataStore"), p));
    memds_node_add_str(ds, tD("SourceRef"), "Inbox", p);
    a = memds_node_add(ds, memds_node_new(tD("Rx-Pref"), p));
    memds_node_add_str(a, tD("CTType"), "application/vnd.omads-email+xml", p);
    memds_node_add_str(a, tD("VerCT"), "1.2", p);

    /* Add with binary data */
    cmd = memds_node_add(body, memds_node_new(tS("Add"), p));
    memds_node_add_str(cmd, tS("CmdID"), "3", p);
    item = memds_node_add(cmd, memds_node_new(tS("Item"), p));
    meta = memds_node_add(item, memds_node_new(tS("Meta"), p));
    memds_node_add_str(meta, tM("Type"), "application/octet-stream", p);
    memds_node_add_str(memds_node_add(item, memds_node_new(tS("Source"), p)),
                       tS("LocURI"), "77", p);
    memds_node_add_text(item, memds_tag_Data, binary, sizeof(binary) - 1, p);

    memds_node_add(body, memds_node_new(tS("Final"), p));
    return t;
}

#define HAS(out, lit) \
    (find_bytes((out)->data, (out)->len, lit, sizeof(lit) - 1) != NULL)

static void built_round_trip(void)
{
    memds_tree_t *t = build_tree(MEMDS_V12, DEVINF_XML), *t2;
    memds_buf_t *out;
    const memds_node_t *d;
    const char *diff;
    int page = 0;

    out = encode_ok(t, "built 1.2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(out->len > 5
              && memcmp(out->data, "\x02\xA4\x01\x6A\x00", 5) == 0);
    /* Final as bare 0x12, then END SyncBody, END SyncML */
    CU_ASSERT(memcmp(out->data + out->len - 3, "\x12\x01\x01", 3) == 0);
    /* MetInf Type inside Meta: page switch, Type, END, END(Meta) on page 1,
     * switch back for Item; "+xml" written as "+wbxml" */
    CU_ASSERT(HAS(out, "\x5A\x00\x01\x53\x03" DEVINF_WBXML
                       "\x00\x01\x01\x00\x00\x54"));
    CU_ASSERT_FALSE(HAS(out, DEVINF_XML));
    /* Status Item Data with an Anchor */
    CU_ASSERT(HAS(out, "\x54\x4F\x00\x01\x45\x4F\x03"
                       "20240101T000000Z"
                       "\x00\x01\x01\x01\x01\x01"));
    /* Status Data "200" as OPAQUE */
    CU_ASSERT(HAS(out, "\x4F\xC3\x03"
                       "200\x01"));
    /* nested DevInf: Data, OPAQUE, length, DevInf 1.2 document */
    CU_ASSERT(HAS(out, "\x02\xA4\x03\x6A\x00\x4A\x65\x03"
                       "1.2\x00\x01"));
    CU_ASSERT(HAS(out, "\x28\x47\x5D\x03"
                       "Inbox")); /* UTC bare, DataStore */
    /* binary data as OPAQUE, every byte */
    CU_ASSERT(HAS(out, "\x4F\xC3\x0C"
                       "a\0b\xFF]]>\r\nz\r\n\x01"));
    CU_ASSERT_EQUAL(5 + memds_wbxml_node_size(t->root, &page), out->len);
    CU_ASSERT_EQUAL(page, 0);

    t2 = decode_ok(out->data, out->len, "built 1.2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_EQUAL(t2->version, MEMDS_V12);
    diff = tree_diff(t->root, t2->root, "");
    CHECK(diff == NULL, "built tree changed: %s", diff);
    d = memds_node_child(
        memds_node_child(memds_node_child(memds_node_child(t2->root,
                                                           "SyncBody"),
                                          "Add"),
                         "Item"),
        "Data");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(d->len, sizeof(binary) - 1);
    CU_ASSERT(memcmp(d->text, binary, d->len) == 0);
    CU_ASSERT_EQUAL(d->text[d->len], '\0');
    CU_ASSERT_TRUE(d->opaque);
    check_sizes(t, out, "built 1.2");
    check_sizes(t2, out, "built 1.2 decoded");
}

static void built_versions(void)
{
    memds_tree_t *t = build_tree(MEMDS_V11, DEVINF_WBXML), *t2;
    memds_buf_t *out = encode_ok(t, "built 1.1");
    memds_node_t *r;
    apr_pool_t *p = unit_pool;
    int page;

    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(memcmp(out->data, "\x02\x9F\x53\x6A\x00", 5) == 0);
    CU_ASSERT(HAS(out, "\x02\x9F\x54\x6A\x00\x4A"));
    t2 = decode_ok(out->data, out->len, "built 1.1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_EQUAL(t2->version, MEMDS_V11);

    t = build_tree(MEMDS_V10, DEVINF_WBXML);
    out = encode_ok(t, "built 1.0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(memcmp(out->data, "\x02\x9F\x51\x6A\x00", 5) == 0);
    CU_ASSERT(HAS(out, "\x02\x9F\x52\x6A\x00\x4A"));
    t2 = decode_ok(out->data, out->len, "built 1.0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_EQUAL(t2->version, MEMDS_V10);

    /* the smallest message, byte for byte */
    t = apr_pcalloc(p, sizeof(*t));
    t->version = MEMDS_V12;
    t->root = r = memds_node_new(memds_tag_SyncML, p);
    memds_node_add_str(memds_node_add(r, memds_node_new(tS("SyncHdr"), p)),
                       tS("VerDTD"), "1.2", p);
    memds_node_add(memds_node_add(r, memds_node_new(tS("SyncBody"), p)),
                   memds_node_new(tS("Final"), p));
    out = encode_ok(t, "minimal");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(out->len, sizeof(H12 MIN_BODY) - 1);
    CU_ASSERT(memcmp(out->data, H12 MIN_BODY, out->len) == 0);

    /* a DevInf tree on its own is a DevInf document */
    t = apr_pcalloc(p, sizeof(*t));
    t->version = MEMDS_V12;
    t->root = r = memds_node_new(memds_tag_DevInf, p);
    memds_node_add_str(r, tD("VerDTD"), "1.2", p);
    out = encode_ok(t, "DevInf");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL_FATAL(out->len, 14);
    CU_ASSERT(memcmp(out->data,
                     "\x02\xA4\x03\x6A\x00\x4A\x65\x03"
                     "1.2\x00"
                     "\x01\x01",
                     14)
              == 0);
    page = 0;
    CU_ASSERT_EQUAL(memds_wbxml_node_size(r, &page), 9);

    /* node sizes follow the page: a MetInf element after page 1 */
    page = 1;
    CU_ASSERT_EQUAL(memds_wbxml_node_size(memds_node_new(tM("Type"), p), &page),
                    1);
    CU_ASSERT_EQUAL(page, 1);
    CU_ASSERT_EQUAL(memds_wbxml_node_size(memds_node_new(tS("Final"), p),
                                          &page),
                    3);
    CU_ASSERT_EQUAL(page, 0);
}

static void encode_errors(void)
{
    apr_pool_t *p = unit_pool;
    memds_tree_t *t = apr_pcalloc(p, sizeof(*t));
    memds_node_t *r, *n;
    memds_buf_t b;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    int page = 0;

    memds_buf_init(&b, 16, p);
    t->version = MEMDS_V12;
    t->root = r = memds_node_new(memds_tag_SyncML, p);
    n = memds_node_add_str(r, tS("SyncHdr"), "text", p);
    memds_node_add_str(n, tS("VerDTD"), "1.2", p);
    CU_ASSERT_EQUAL(memds_wbxml_encode(&b, t, &err), APR_EINVAL);
    CU_ASSERT(err.msg && strstr(err.msg, "both text and child"));
    CU_ASSERT_EQUAL(b.len, 0); /* nothing written on failure */
    CU_ASSERT_EQUAL(memds_wbxml_node_size(r, &page), 0);

    t->root = r = memds_node_new(memds_tag_SyncML, p);
    memds_node_add_str(r, tD("Man"), "x", p);
    err.msg = NULL;
    CU_ASSERT_EQUAL(memds_wbxml_encode(&b, t, &err), APR_EINVAL);
    CU_ASSERT(err.msg && strstr(err.msg, "DevInf element outside"));

    t->root = memds_node_new(memds_tag_SyncML, p);
    t->version = (memds_ver_e)13;
    err.msg = NULL;
    CU_ASSERT_EQUAL(memds_wbxml_encode(&b, t, &err), APR_EINVAL);
    CU_ASSERT(err.msg && strstr(err.msg, "version"));
    CU_ASSERT_EQUAL(b.len, 0);

    /* text with NUL or invalid UTF-8 goes as OPAQUE even outside Data */
    t->version = MEMDS_V12;
    t->root = r = memds_node_new(memds_tag_SyncML, p);
    memds_node_add_text(r, tS("SessionID"), "a\0\xFF", 3, p);
    CU_ASSERT_EQUAL(memds_wbxml_encode(&b, t, &err), APR_SUCCESS);
    CU_ASSERT(b.len == 14
              && memcmp(b.data,
                        H12 "\x6D\x65\xC3\x03"
                            "a\0\xFF\x01\x01",
                        14)
                     == 0);
}

void unit_add_wbxml(void)
{
    CU_pSuite s = CU_add_suite("wbxml", NULL, NULL);

    CU_add_test(s, "captures round trip", captures_round_trip);
    CU_add_test(s, "raw email bytes", raw_email_bytes);
    CU_add_test(s, "captures node sizes", captures_node_sizes);
    CU_add_test(s, "oracle wbxml2xml", oracle_wbxml2xml);
    CU_add_test(s, "oracle CDATA defect", oracle_cdata_defect);
    CU_add_test(s, "malformed: truncated", malformed_truncated);
    CU_add_test(s, "malformed: header", malformed_header);
    CU_add_test(s, "malformed: tokens", malformed_tokens);
    CU_add_test(s, "LITERAL DevInf Property in a filter Field (libwbxml)",
                literal_property);
    CU_add_test(s, "malformed: nested DevInf", malformed_nested);
    CU_add_test(s, "wide trees stay linear", wide_trees);
    CU_add_test(s, "decode variants", decode_variants);
    CU_add_test(s, "built round trip", built_round_trip);
    CU_add_test(s, "built versions and bytes", built_versions);
    CU_add_test(s, "encode errors", encode_errors);
}
