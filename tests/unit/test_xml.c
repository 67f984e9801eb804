/* Unit tests: syncml/memds_xml.c (XML decoder, encoder and sizer). */
#include "unit.h"
#include "syncml/memds_xml.h"
#include "syncml/memds_msg.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORPUS MEMDS_SRCDIR "/tests/corpus/"
/* *.xml files of the corpus, and those that are not wbxml2xml renderings
 * (*.decoded.xml): fewer means the corpus is missing or incomplete. */
#define CORPUS_XML_FILES 168
#define CORPUS_XML_PLAIN 132
#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define DECL_LEN (sizeof(DECL) - 1)

/* A minimal message around a body. */
#define HDR \
    "<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD>" \
    "<VerProto>SyncML/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>" \
    "<Target><LocURI>http://s/</LocURI></Target><Source><LocURI>dev</LocURI>" \
    "</Source></SyncHdr><SyncBody>"
#define TRL "<Final/></SyncBody></SyncML>"
#define ITEM_PRE HDR "<Add><CmdID>1</CmdID><Item><Data>"
#define ITEM_POST "</Data></Item></Add>" TRL

static const memds_tag_t *T(memds_ts_e ts, const char *name)
{
    const memds_tag_t *t = memds_tag_by_name(ts, name, strlen(name));

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

#define S_(name) T(MEMDS_TS_SYNCML, name)
#define M_(name) T(MEMDS_TS_METINF, name)
#define D_(name) T(MEMDS_TS_DEVINF, name)

/* ------------------------------------------------------------- helpers */

/* Text of a leaf as XML carries it: the encoder writes the DevInf type
 * "+wbxml" as "+xml" (the *.decoded.xml files of the corpus are XML
 * renderings of WBXML messages and have "+wbxml"). */
static void xml_text(const memds_node_t *n, const char **t, apr_size_t *l)
{
    static const char wb[] = "application/vnd.syncml-devinf+wbxml";

    *t = n->text;
    *l = n->len;
    if (n->tag->ts == MEMDS_TS_METINF && strcmp(n->tag->name, "Type") == 0
        && n->len == sizeof(wb) - 1 && memcmp(n->text, wb, n->len) == 0) {
        *t = "application/vnd.syncml-devinf+xml";
        *l = strlen(*t);
    }
}

static int same_text(const memds_node_t *a, const memds_node_t *b)
{
    const char *ta, *tb;
    apr_size_t la, lb;

    xml_text(a, &ta, &la);
    xml_text(b, &tb, &lb);
    return la == lb && (la == 0 || memcmp(ta, tb, la) == 0);
}

/** Same tags, same structure, same text bytes. NULL text and empty text
 *  are the same meaning (see memds_xml.c). Returns NULL or a reason. */
static const char *tree_diff(const memds_node_t *a, const memds_node_t *b,
                             apr_pool_t *p)
{
    const memds_node_t *ca, *cb;
    const char *why;

    if (a->tag != b->tag) {
        return apr_psprintf(p, "<%s> vs <%s>", a->tag->name, b->tag->name);
    }
    if (!same_text(a, b)) {
        return apr_psprintf(p, "text of <%s> differs (%d vs %d bytes)",
                            a->tag->name, (int)a->len, (int)b->len);
    }
    if (a->first && a->text) {
        return apr_psprintf(p, "<%s> has text and children", a->tag->name);
    }
    for (ca = a->first, cb = b->first; ca && cb; ca = ca->next, cb = cb->next) {
        if (ca->parent != a || cb->parent != b) {
            return "bad parent pointer";
        }
        why = tree_diff(ca, cb, p);
        if (why) {
            return apr_psprintf(p, "%s/%s", a->tag->name, why);
        }
    }
    if (ca || cb) {
        return apr_psprintf(p, "<%s>: different number of children",
                            a->tag->name);
    }
    return NULL;
}

static memds_tree_t *dec_ok(const char *s, apr_size_t len, apr_pool_t *p)
{
    memds_tree_t *t = NULL;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    apr_status_t rv = memds_xml_decode(&t, s, len, &err, p);

    if (rv != APR_SUCCESS) {
        fprintf(stderr, "\n  decode failed: %s\n", err.msg);
    }
    CU_ASSERT_EQUAL(rv, APR_SUCCESS);
    return rv == APR_SUCCESS ? t : NULL;
}

static memds_tree_t *dec_str(const char *s)
{
    return dec_ok(s, strlen(s), unit_pool);
}

static const char *enc_ok(const memds_tree_t *t, apr_size_t *plen,
                          apr_pool_t *p)
{
    memds_buf_t b;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    apr_status_t rv;

    memds_buf_init(&b, 0, p);
    rv = memds_xml_encode(&b, t, &err);
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "\n  encode failed: %s\n", err.msg);
        *plen = 0;
        CU_FAIL("encode");
        return NULL;
    }
    *plen = b.len;
    memds_buf_addc(&b, '\0');
    return b.data;
}

static void expect_fail(const char *s, apr_size_t len, const char *needle)
{
    memds_tree_t *t = NULL;
    memds_codec_err_t err = { 0, NULL, 0, 0 };
    apr_status_t rv = memds_xml_decode(&t, s, len, &err, unit_pool);

    CU_ASSERT_EQUAL(rv, APR_EINVAL);
    CU_ASSERT_PTR_NULL(t); /* out-param untouched on failure */
    if (rv == APR_SUCCESS) {
        fprintf(stderr, "\n  decoded what should fail (%s): %.80s\n", needle,
                s);
        return;
    }
    CU_ASSERT_EQUAL(err.rv, rv);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
    if (needle && strstr(err.msg, needle) == NULL) {
        fprintf(stderr, "\n  error '%s' lacks '%s'\n", err.msg, needle);
        CU_FAIL("error message");
    }
}

static void expect_fail_str(const char *s, const char *needle)
{
    expect_fail(s, strlen(s), needle);
}

/* Every node's size equals its slice of the encoded document:
 * walks the output alongside the tree. */
static apr_size_t check_slices(const memds_node_t *n, const char *out,
                               apr_size_t pos, apr_size_t end, int *bad)
{
    apr_size_t sz = memds_xml_node_size(n), nl = strlen(n->tag->name);
    const memds_node_t *c;

    if (pos + sz > end || out[pos] != '<'
        || strncmp(out + pos + 1, n->tag->name, nl) != 0
        || !strchr(" />", out[pos + 1 + nl])) {
        ++*bad;
        return sz;
    }
    if (n->first) {
        const char *gt = memchr(out + pos, '>', sz);
        apr_size_t p2 = (apr_size_t)(gt - out) + 1;
        for (c = n->first; c; c = c->next) {
            p2 += check_slices(c, out, p2, end, bad);
        }
        if (p2 + nl + 3 != pos + sz || strncmp(out + p2, "</", 2) != 0
            || strncmp(out + p2 + 2, n->tag->name, nl) != 0
            || out[p2 + 2 + nl] != '>') {
            ++*bad;
        }
    }
    else if (!(out[pos + sz - 1] == '>'
               && (out[pos + sz - 2] == '/'
                   || (out[pos + sz - nl - 3] == '<'
                       && out[pos + sz - nl - 2] == '/')))) {
        ++*bad;
    }
    return sz;
}

/* Round trip of one document: decode, encode, decode to an equal tree,
 * encode again to the same bytes, sizes equal to the slices. */
static void round_trip(const char *name, const char *in, apr_size_t len,
                       apr_pool_t *p)
{
    memds_tree_t *t1, *t2;
    const char *e1, *e2, *why;
    apr_size_t l1, l2;
    const memds_node_t *body, *c;
    int bad = 0;

    t1 = dec_ok(in, len, p);
    if (t1 == NULL) {
        fprintf(stderr, "  (%s)\n", name);
        return;
    }
    e1 = enc_ok(t1, &l1, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e1);
    t2 = dec_ok(e1, l1, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_EQUAL(t1->version, t2->version);
    why = tree_diff(t1->root, t2->root, p);
    if (why) {
        fprintf(stderr, "\n  %s: trees differ: %s\n", name, why);
        CU_FAIL("round trip tree");
    }
    e2 = enc_ok(t2, &l2, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e2);
    if (l1 != l2 || memcmp(e1, e2, l1) != 0) {
        fprintf(stderr, "\n  %s: encoding is not canonical\n", name);
        CU_FAIL("canonical encoding");
    }
    /* sizes */
    CU_ASSERT_EQUAL(memds_xml_node_size(t1->root) + DECL_LEN, l1);
    CU_ASSERT(memcmp(e1, DECL, DECL_LEN) == 0);
    check_slices(t1->root, e1, DECL_LEN, l1, &bad);
    if (bad) {
        fprintf(stderr, "\n  %s: %d node sizes differ from their slices\n",
                name, bad);
        CU_FAIL("node sizes");
    }
    /* children of SyncBody by summing: they end right at </SyncBody> */
    body = memds_node_child(t1->root, "SyncBody");
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    {
        apr_size_t pos = DECL_LEN
                         + strlen("<SyncML xmlns=\"SYNCML:SYNCML1.2\">")
                         + memds_xml_node_size(
                             memds_node_child(t1->root, "SyncHdr"))
                         + strlen("<SyncBody>");
        for (c = body->first; c; c = c->next) {
            apr_size_t sz = memds_xml_node_size(c);
            CU_ASSERT(pos + sz <= l1);
            CU_ASSERT(strncmp(e1 + pos + 1, c->tag->name, strlen(c->tag->name))
                      == 0);
            pos += sz;
        }
        CU_ASSERT(pos + strlen("</SyncBody></SyncML>") == l1);
        CU_ASSERT(strcmp(e1 + pos, "</SyncBody></SyncML>") == 0);
    }
}

static int ends_with(const char *s, const char *suffix)
{
    apr_size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcmp(s + a - b, suffix) == 0;
}

typedef void (*file_cb)(const char *path, const char *name, int decoded_xml,
                        void *baton);

/** Calls cb for each *.xml file of the corpus folders. */
static int for_each_xml(file_cb cb, void *baton)
{
    static const char *const dirs[] = {
        CORPUS "pkg1",
        CORPUS "items",
        CORPUS "mail",
        CORPUS "handmade",
    };
    apr_size_t i;
    int count = 0;

    for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); ++i) {
        apr_dir_t *dir;
        apr_finfo_t fi;
        CU_ASSERT_EQUAL_FATAL(apr_dir_open(&dir, dirs[i], unit_pool),
                              APR_SUCCESS);
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir)
               == APR_SUCCESS) {
            if (fi.filetype != APR_REG || !ends_with(fi.name, ".xml")) {
                continue;
            }
            cb(apr_pstrcat(unit_pool, dirs[i], "/", fi.name, NULL), fi.name,
               ends_with(fi.name, ".decoded.xml"), baton);
            ++count;
        }
        apr_dir_close(dir);
    }
    return count;
}

/* ----------------------------------------------------------- corpus */

typedef struct corpus_stats_t {
    int ok, decoded_ok, decoded_refused;
} corpus_stats_t;

static void corpus_one(const char *path, const char *name, int decoded_xml,
                       void *baton)
{
    corpus_stats_t *st = baton;
    apr_pool_t *p;
    apr_size_t len;
    const char *in = unit_read_file(path, &len);

    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    apr_pool_create(&p, unit_pool);
    if (decoded_xml) {
        /* wbxml2xml output: may be malformed on purpose (opaque data with
         * ]]> inside a CDATA section); must decode or fail cleanly. */
        memds_tree_t *t = NULL;
        memds_codec_err_t err = { 0, NULL, 0, 0 };
        if (memds_xml_decode(&t, in, len, &err, p) == APR_SUCCESS) {
            ++st->decoded_ok;
            round_trip(name, in, len, p);
        }
        else {
            ++st->decoded_refused;
            CU_ASSERT_EQUAL(err.rv, APR_EINVAL);
            CU_ASSERT_PTR_NOT_NULL(err.msg);
            CU_ASSERT_PTR_NULL(t);
        }
    }
    else {
        round_trip(name, in, len, p);
        ++st->ok;
    }
    apr_pool_destroy(p);
}

static void test_corpus(void)
{
    corpus_stats_t st = { 0, 0, 0 };
    int n = for_each_xml(corpus_one, &st);

    /* make sure the corpus was found: its XML documents, the wbxml2xml
     * renderings among them, and some of those are well-formed */
    CU_ASSERT(n >= CORPUS_XML_FILES);
    CU_ASSERT(st.ok >= CORPUS_XML_PLAIN);
    CU_ASSERT(st.decoded_ok >= 1);
    CU_ASSERT(st.decoded_refused >= 1);
}

/* The compact renderings (*.c.xml, made by tests/corpus/make-derived.py)
 * of the hand-written, indented messages decode to the same tree as the
 * indented file: whitespace between elements is ignored, leaf text is not
 * touched. */
static void test_renderings_equal(void)
{
    static const char *const variants[] = { ".c.xml" };
    apr_dir_t *dir;
    apr_finfo_t fi;
    int pairs = 0;

    CU_ASSERT_EQUAL_FATAL(apr_dir_open(&dir, CORPUS "handmade", unit_pool),
                          APR_SUCCESS);
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir)
           == APR_SUCCESS) {
        apr_size_t i, l1, l2;
        for (i = 0; i < sizeof(variants) / sizeof(variants[0]); ++i) {
            const char *base, *a, *b, *why;
            memds_tree_t *ta, *tb;
            if (fi.filetype != APR_REG || !ends_with(fi.name, variants[i])) {
                continue;
            }
            base = apr_pstrmemdup(unit_pool, fi.name,
                                  strlen(fi.name) - strlen(variants[i]));
            a = unit_read_file(apr_pstrcat(unit_pool, CORPUS "handmade/",
                                           fi.name, NULL),
                               &l1);
            b = unit_read_file(apr_pstrcat(unit_pool, CORPUS "handmade/", base,
                                           ".xml", NULL),
                               &l2);
            if (a == NULL || b == NULL) {
                continue; /* no plain sibling */
            }
            ta = dec_ok(a, l1, unit_pool);
            tb = dec_ok(b, l2, unit_pool);
            CU_ASSERT_PTR_NOT_NULL_FATAL(ta);
            CU_ASSERT_PTR_NOT_NULL_FATAL(tb);
            why = tree_diff(ta->root, tb->root, unit_pool);
            if (why) {
                fprintf(stderr, "\n  %s vs %s.xml: %s\n", fi.name, base, why);
                CU_FAIL("renderings differ");
            }
            ++pairs;
        }
    }
    apr_dir_close(dir);
    CU_ASSERT(pairs >= 12);
}

/* Item data bytes survive: the client's email items (tests/client's
 * sample raw-email items) with ]]> split across CDATA sections, checked
 * against the bytes of the item. */
static void test_corpus_email_data(void)
{
    apr_size_t len, l1;
    const char *in = unit_read_file(
        CORPUS "mail/xml-basic-raw-email-inbox-slow-002-req.xml", &len);
    memds_tree_t *t, *t2;
    const memds_node_t *sync, *add, *data;
    const char *e1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    t = dec_ok(in, len, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    sync = memds_node_child(memds_node_child(t->root, "SyncBody"), "Sync");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sync);
    add = memds_node_child(sync, "Add");
    CU_ASSERT_PTR_NOT_NULL_FATAL(add);
    data = memds_node_child(memds_node_child(add, "Item"), "Data");
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data->text);
    CU_ASSERT_EQUAL(data->text[data->len], '\0');
    /* the inner CDATA of the email object, rejoined; raw CRLF became LF */
    CU_ASSERT_PTR_NOT_NULL(strstr(
        data->text,
        "<emailitem><![CDATA[From: Corpus Sender <sender@example.test>\nTo:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        data->text,
        "mail number 1.\nIt has a second line & a <tag>.\n]]></emailitem>"
        "</Email>"));
    CU_ASSERT_PTR_NULL(strchr(data->text, '\r'));
    /* and back: the encoder escapes, so no CDATA is needed */
    e1 = enc_ok(t, &l1, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e1);
    CU_ASSERT_PTR_NOT_NULL(strstr(e1, "line &amp; a &lt;tag&gt;.\n]]&gt;"
                                      "&lt;/emailitem&gt;"));
    t2 = dec_ok(e1, l1, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_PTR_NULL(tree_diff(t->root, t2->root, unit_pool));
}

/* Version and namespace variants of the corpus. */
/* A SyncML 1.0 message with elements new in 1.1 (a lenient client's
 * MaxObjSize): decoded, and encoded again (found by fuzz_xml). */
static void test_v10_with_v11_elements(void)
{
    static const char in[] =
        "<SyncML xmlns='SYNCML:SYNCML1.0'><SyncHdr><VerDTD>1.0</VerDTD>"
        "<VerProto>SyncML/1.0</VerProto><SessionID>1</SessionID>"
        "<MsgID>1</MsgID><Target><LocURI>s</LocURI></Target><Source>"
        "<LocURI>d</LocURI></Source><Meta><MaxObjSize xmlns='syncml:metinf'>"
        "4000</MaxObjSize></Meta></SyncHdr><SyncBody><Final/></SyncBody>"
        "</SyncML>";
    memds_tree_t *t = NULL, *t2 = NULL;
    memds_codec_err_t err;
    memds_buf_t b;

    memset(&err, 0, sizeof(err));
    CU_ASSERT_EQUAL_FATAL(memds_xml_decode(&t, in, sizeof(in) - 1, &err,
                                           unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL(t->version, MEMDS_V10);
    memds_buf_init(&b, 0, unit_pool);
    CU_ASSERT_EQUAL_FATAL(memds_xml_encode(&b, t, &err), APR_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "<MaxObjSize"));
    CU_ASSERT_EQUAL(memds_xml_decode(&t2, b.data, b.len, &err, unit_pool),
                    APR_SUCCESS);
}

static void test_versions(void)
{
    memds_tree_t *t;
    static const char nons11[] = "<SyncML><SyncHdr><VerDTD> 1.1 </VerDTD>"
                                 "</SyncHdr><SyncBody/></SyncML>";

    t = dec_str(
        "<SyncML xmlns='syncml:syncml1.2'><SyncHdr/><SyncBody/></SyncML>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V12);
    CU_ASSERT_EQUAL(t->wbxml_version, 0);
    t = dec_str(
        "<SyncML xmlns='SYNCML:SYNCML1.1'><SyncHdr/><SyncBody/></SyncML>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V11);
    t = dec_str(
        "<SyncML xmlns='SYNCML:SYNCML1.0'><SyncHdr/><SyncBody/></SyncML>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V10);
    t = dec_str(nons11);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V11);
    {
        apr_size_t l;
        const char *e = enc_ok(t, &l, unit_pool);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_STRING_EQUAL(
            e, DECL
            "<SyncML xmlns=\"SYNCML:SYNCML1.1\">"
            "<SyncHdr><VerDTD> 1.1 </VerDTD></SyncHdr><SyncBody/></SyncML>");
    }
    /* no namespace, no VerDTD: 1.2, the engine's version check answers */
    t = dec_str("<SyncML><SyncHdr/><SyncBody/></SyncML>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(t->version, MEMDS_V12);
    /* 1.2-only elements are refused in a 1.1 message */
    expect_fail_str("<SyncML xmlns='SYNCML:SYNCML1.1'><SyncHdr/><SyncBody>"
                    "<Move><CmdID>1</CmdID></Move></SyncBody></SyncML>",
                    "only in SyncML 1.2");
    /* prefixed elements are namespaced like any other */
    t = dec_str("<s:SyncML xmlns:s='SYNCML:SYNCML1.2' xmlns:m='syncml:metinf'>"
                "<s:SyncHdr><s:Meta><m:MaxMsgSize>9</m:MaxMsgSize></s:Meta>"
                "</s:SyncHdr><s:SyncBody/></s:SyncML>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(
        memds_node_child(memds_node_child(memds_node_child(t->root, "SyncHdr"),
                                          "Meta"),
                         "MaxMsgSize")
            ->tag->ts,
        MEMDS_TS_METINF);
}

/* ------------------------------------------------------- data specifics */

static const memds_node_t *item_data(const char *payload)
{
    const char *doc = apr_pstrcat(unit_pool, ITEM_PRE, payload, ITEM_POST,
                                  NULL);
    memds_tree_t *t = dec_str(doc);
    const memds_node_t *d;

    if (t == NULL) {
        return NULL;
    }
    d = memds_node_child(
        memds_node_child(memds_node_child(memds_node_child(t->root, "SyncBody"),
                                          "Add"),
                         "Item"),
        "Data");
    CU_ASSERT_PTR_NOT_NULL(d);
    return d;
}

#define DATA_IS(payload, bytes) \
    do { \
        const memds_node_t *d_ = item_data(payload); \
        CU_ASSERT_PTR_NOT_NULL_FATAL(d_); \
        CU_ASSERT_PTR_NOT_NULL_FATAL(d_->text); \
        CU_ASSERT_EQUAL(d_->len, sizeof(bytes) - 1); \
        CU_ASSERT(memcmp(d_->text, bytes, sizeof(bytes) - 1) == 0); \
        CU_ASSERT_EQUAL(d_->text[d_->len], '\0'); \
        CU_ASSERT_PTR_NULL(d_->first); \
    } while (0)

static void test_data_decode(void)
{
    /* libsynthesis writes ]]> inside data as adjacent CDATA sections */
    DATA_IS("<![CDATA[a]]]]><![CDATA[>b]]>", "a]]>b");
    DATA_IS("<![CDATA[x]]>]<![CDATA[]>y]]>", "x]]>y");
    DATA_IS("&lt;x&gt; &amp;", "<x> &");
    DATA_IS("a<![CDATA[<b>&amp;]]>c&amp;", "a<b>&amp;c&");
    DATA_IS("&#13;&#10;", "\r\n");
    DATA_IS("\xC3\xA4 \xE2\x82\xAC \xF0\x9F\x98\x80",
            "\xC3\xA4 \xE2\x82\xAC \xF0\x9F\x98\x80");
    DATA_IS("&#228;&#x20AC;&#x1F600;", "\xC3\xA4\xE2\x82\xAC\xF0\x9F\x98\x80");
    /* XML end-of-line handling (XML 1.0 section 2.11): raw CR LF and a lone
     * raw CR reach the application as LF, also inside CDATA; only &#13;
     * carries a CR */
    DATA_IS("<![CDATA[l1\r\nl2\rl3]]>", "l1\nl2\nl3");
    DATA_IS("a\r\nb", "a\nb");
    DATA_IS("\tx\t", "\tx\t");
    /* Data is payload: not trimmed, whitespace-only kept */
    DATA_IS("  200 ", "  200 ");
    DATA_IS(" \n\t ", " \n\t ");
    /* empty Data: <Data/> and <Data></Data> both give "" (non-NULL) */
    DATA_IS("", "");
    {
        memds_tree_t *t = dec_str(HDR
                                  "<Alert><CmdID>1</CmdID><Data/></Alert>" TRL);
        const memds_node_t *d;
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        d = memds_node_child(memds_node_child(memds_node_child(t->root,
                                                               "SyncBody"),
                                              "Alert"),
                             "Data");
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        CU_ASSERT_PTR_NOT_NULL(d->text);
        CU_ASSERT_EQUAL(d->len, 0);
    }
    /* comments vanish, text around them joins */
    DATA_IS("ab<!-- c -->cd", "abcd");
}

static void test_leaf_text(void)
{
    memds_tree_t *t = dec_str(
        "<SyncML xmlns='SYNCML:SYNCML1.2'>\n  <SyncHdr>\n"
        "    <VerDTD> 1.2 </VerDTD>\n    <SessionID></SessionID>\n"
        "    <MsgID>  </MsgID>\n  </SyncHdr>\n  <SyncBody>\n"
        "    <Final></Final>\n  </SyncBody>\n</SyncML>\n");
    const memds_node_t *h, *n;

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    h = memds_node_child(t->root, "SyncHdr");
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NULL(h->text);
    n = memds_node_child(h, "VerDTD");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_EQUAL(n->len, 5); /* kept; memds_node_str trims */
    CU_ASSERT_STRING_EQUAL(n->text, " 1.2 ");
    CU_ASSERT_STRING_EQUAL(memds_node_str(n, unit_pool), "1.2");
    n = memds_node_child(h, "SessionID");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_PTR_NULL(n->text);
    n = memds_node_child(h, "MsgID");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_PTR_NULL(n->text); /* whitespace-only, not Data: dropped */
    n = memds_node_child(memds_node_child(t->root, "SyncBody"), "Final");
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_PTR_NULL(n->text);
    {
        apr_size_t l;
        const char *e = enc_ok(t, &l, unit_pool);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_STRING_EQUAL(
            e,
            DECL "<SyncML xmlns=\"SYNCML:SYNCML1.2\">"
                 "<SyncHdr><VerDTD> 1.2 </VerDTD><SessionID/><MsgID/></SyncHdr>"
                 "<SyncBody><Final/></SyncBody></SyncML>");
    }
}

/* Builds SyncML/SyncBody/Add/Item/Data with the given bytes. */
static memds_tree_t *data_tree(const char *bytes, apr_size_t len,
                               memds_node_t **pdata)
{
    memds_tree_t *t = apr_pcalloc(unit_pool, sizeof(*t));
    memds_node_t *body, *add, *item;

    t->version = MEMDS_V12;
    t->root = memds_node_new(memds_tag_SyncML, unit_pool);
    memds_node_add(t->root, memds_node_new(S_("SyncHdr"), unit_pool));
    body = memds_node_add(t->root, memds_node_new(S_("SyncBody"), unit_pool));
    add = memds_node_add(body, memds_node_new(S_("Add"), unit_pool));
    memds_node_add_str(add, S_("CmdID"), "1", unit_pool);
    item = memds_node_add(add, memds_node_new(S_("Item"), unit_pool));
    memds_node_add_str(memds_node_add(item,
                                      memds_node_new(S_("Source"), unit_pool)),
                       S_("LocURI"), "a&b", unit_pool);
    *pdata = memds_node_add_text(item, memds_tag_Data, bytes, len, unit_pool);
    return t;
}

static void test_data_encode(void)
{
    static const char bytes[] = "x]]>y\r\nz<&>\t\xC3\xA4\xF0\x9F\x98\x80 ";
    memds_node_t *data;
    memds_tree_t *t = data_tree(bytes, sizeof(bytes) - 1, &data), *t2;
    const memds_node_t *d2;
    const char *e;
    apr_size_t l;

    e = enc_ok(t, &l, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "<Data>x]]&gt;y&#13;\nz&lt;&amp;&gt;\t"
                                     "\xC3\xA4\xF0\x9F\x98\x80 </Data>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "<LocURI>a&amp;b</LocURI>"));
    CU_ASSERT_EQUAL(memds_xml_node_size(t->root) + DECL_LEN, l);
    CU_ASSERT_EQUAL(memds_xml_node_size(data),
                    strlen("<Data>x]]&gt;y&#13;\nz&lt;&amp;&gt;\t</Data>") + 7);
    t2 = dec_ok(e, l, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_PTR_NULL(tree_diff(t->root, t2->root, unit_pool));
    d2 = memds_node_child(
        memds_node_child(memds_node_child(memds_node_child(t2->root,
                                                           "SyncBody"),
                                          "Add"),
                         "Item"),
        "Data");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d2);
    CU_ASSERT_EQUAL(d2->len, sizeof(bytes) - 1);
    CU_ASSERT(memcmp(d2->text, bytes, sizeof(bytes) - 1) == 0);

    /* text NULL: <Data/>; text "" : <Data></Data>; both decode to "" */
    data->text = NULL;
    data->len = 0;
    e = enc_ok(t, &l, unit_pool);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "<Item><Source><LocURI>a&amp;b</LocURI>"
                                     "</Source><Data/></Item>"));
    CU_ASSERT_EQUAL(memds_xml_node_size(data), 7);
    data->text = "";
    e = enc_ok(t, &l, unit_pool);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "<Data></Data></Item>"));
    CU_ASSERT_EQUAL(memds_xml_node_size(data), 13);
    t2 = dec_ok(e, l, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_PTR_NULL(tree_diff(t->root, t2->root, unit_pool));
}

static void refuse(const char *bytes, apr_size_t len, const char *needle)
{
    memds_node_t *data;
    memds_tree_t *t = data_tree(bytes, len, &data);
    memds_buf_t b;
    memds_codec_err_t err = { 0, NULL, 0, 0 };

    memds_buf_init(&b, 0, unit_pool);
    memds_buf_add(&b, "keep", 4);
    CU_ASSERT_EQUAL(memds_xml_encode(&b, t, &err), APR_EINVAL);
    CU_ASSERT_EQUAL(b.len, 4); /* nothing left behind */
    CU_ASSERT_EQUAL(err.rv, APR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
    if (strstr(err.msg, needle) == NULL || strstr(err.msg, "<Data>") == NULL
        || strstr(err.msg, "base64") == NULL) {
        fprintf(stderr, "\n  error '%s' lacks '%s'\n", err.msg, needle);
        CU_FAIL("encoder error message");
    }
}

static void test_data_refused(void)
{
    static const char ctl[] = "0123456789abcdefg\x01xyz";
    memds_tree_t *t;
    memds_node_t *data;
    memds_buf_t b;
    memds_codec_err_t err = { 0, NULL, 0, 0 };

    refuse(ctl, sizeof(ctl) - 1, "byte 0x01 at offset 17");
    refuse("ab\0cd", 5, "byte 0x00 at offset 2");
    refuse("a\x1F", 2, "byte 0x1F at offset 1");
    refuse("\xC3\x28", 2, "invalid UTF-8 (byte 0xC3) at offset 0");
    refuse("ok\xFF", 3, "invalid UTF-8 (byte 0xFF) at offset 2");
    refuse("\xC0\xAF", 2, "invalid UTF-8");         /* overlong '/' */
    refuse("\xED\xA0\x80", 3, "invalid UTF-8");     /* surrogate */
    refuse("\xF4\x90\x80\x80", 4, "invalid UTF-8"); /* > U+10FFFF */
    refuse("\xE2\x82", 2, "invalid UTF-8");         /* truncated */
    refuse("x\xEF\xBF\xBE", 4, "U+FFFE at offset 1");
    refuse("\xEF\xBF\xBF", 3, "U+FFFF");
    /* the message names the element */
    t = data_tree("x", 1, &data);
    memds_node_add_text(data->parent, S_("MoreData"), NULL, 0, unit_pool);
    memds_node_child(memds_node_child(data->parent, "Source"), "LocURI")
        ->text = "a\x02";
    memds_buf_init(&b, 0, unit_pool);
    CU_ASSERT_EQUAL(memds_xml_encode(&b, t, &err), APR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "text of <LocURI> contains byte "
                                           "0x02 at offset 1"));
    /* a flag element with text cannot be written */
    memds_node_child(memds_node_child(data->parent, "Source"), "LocURI")
        ->text = "a";
    memds_node_child(memds_node_child(data->parent, "Source"), "LocURI")
        ->len = 1;
    memds_node_child(data->parent, "MoreData")->text = "x";
    memds_node_child(data->parent, "MoreData")->len = 1;
    CU_ASSERT_EQUAL(memds_xml_encode(&b, t, &err), APR_EINVAL);
    /* unknown version */
    memds_node_child(data->parent, "MoreData")->len = 0;
    CU_ASSERT_EQUAL(memds_xml_encode(&b, t, &err), APR_SUCCESS);
    t->version = 13;
    CU_ASSERT_EQUAL(memds_xml_encode(&b, t, &err), APR_EINVAL);
}

/* ----------------------------------------------------------- malformed */

static void test_truncated(void)
{
    apr_size_t len, i;
    const char *in = unit_read_file(CORPUS "pkg1/xml-md5-001-req.xml", &len);

    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    for (i = 0; i < 20; ++i) {
        apr_size_t cut = (len - 1) * i / 20 + 1 + i;
        if (cut >= len - 1) {
            cut = len - 2;
        }
        expect_fail(in, cut, "malformed XML");
    }
}

static void test_malformed(void)
{
    static const char laughs[] =
        "<?xml version=\"1.0\"?><!DOCTYPE SyncML [<!ENTITY a \"aaaa\">"
        "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
        "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
        "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">]>"
        "<SyncML><SyncHdr><VerDTD>&d;</VerDTD></SyncHdr><SyncBody/></SyncML>";
    static const char xxe[] =
        "<?xml version=\"1.0\"?><!DOCTYPE SyncML [<!ENTITY x SYSTEM "
        "\"file:///etc/passwd\">]><SyncML><SyncHdr><VerDTD>&x;</VerDTD>"
        "</SyncHdr><SyncBody/></SyncML>";
    static const char pe[] =
        "<!DOCTYPE SyncML [<!ENTITY % p SYSTEM \"http://127.0.0.1:1/x.dtd\">"
        "%p;]><SyncML><SyncHdr/><SyncBody/></SyncML>";
    static const char bom16[] = "\xFF\xFE<\0S\0y\0n\0c\0M\0L\0>\0\x00\xD8<\0";
    static const char nul[] = "<SyncML><SyncHdr/>\0<SyncBody/></SyncML>";
    char *deep, *p;
    int i;

    expect_fail_str("<SyncML xmlns='SYNCML:SYNCML1.2'>\n<SyncHdr>\n"
                    "<Item><Data>x</Item></Data></SyncHdr></SyncML>",
                    "malformed XML at line 3: Opening and ending tag "
                    "mismatch: Data line 3 and Item");
    { /* the line is reported */
        memds_tree_t *t = NULL;
        memds_codec_err_t err = { 0, NULL, 0, 0 };
        static const char m[] = "<SyncML>\n\n<a></b></SyncML>";
        CU_ASSERT_EQUAL(memds_xml_decode(&t, m, sizeof(m) - 1, &err, unit_pool),
                        APR_EINVAL);
        CU_ASSERT_EQUAL(err.line, 3);
    }
    expect_fail_str("<html><body/></html>",
                    "root element is <html>, not <SyncML>");
    expect_fail_str("<foo xmlns=\"bar\"/>", "root element is <foo>");
    expect_fail_str("<SyncML xmlns='bar'/>", "namespace 'bar'");
    expect_fail_str("<SyncML xmlns='SYNCML:SYNCML2.0'/>", "namespace");
    expect_fail_str("<SyncML xmlns='syncml:metinf'/>", "namespace");
    expect_fail_str("<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><Foo/></SyncHdr>"
                    "</SyncML>",
                    "unknown element <Foo> in <SyncHdr> (line 1)");
    expect_fail_str("<SyncML><SyncHdr><Meta><Bogus/></Meta></SyncHdr></SyncML>",
                    "unknown element <Bogus> in <Meta>");
    expect_fail_str("<SyncML><SyncBody><Add><x:Item xmlns:x='urn:x'/></Add>"
                    "</SyncBody></SyncML>",
                    "unknown namespace 'urn:x'");
    expect_fail_str("<SyncML><SyncBody><Add id='1'/></SyncBody></SyncML>",
                    "attribute 'id' on <Add>");
    expect_fail_str("<SyncML><SyncBody xml:lang='en'/></SyncML>", "attribute");
    expect_fail_str("<SyncML><SyncHdr/><SyncBody>x<Final/></SyncBody></SyncML>",
                    "text inside <SyncBody> (line 1)");
    expect_fail_str(ITEM_PRE "x<Anchor><Next>1</Next></Anchor>" ITEM_POST,
                    "text inside <Data>");
    expect_fail_str("<SyncML><SyncBody><Final>x</Final></SyncBody></SyncML>",
                    "flag element");
    expect_fail_str(
        "<SyncML><SyncBody><Final><Add/></Final></SyncBody></SyncML>",
        "flag element");
    expect_fail_str("<SyncML><SyncHdr><DevInf xmlns='syncml:devinf'/></SyncHdr>"
                    "</SyncML>",
                    "DevInf element <DevInf> in <SyncHdr>");
    expect_fail_str(ITEM_PRE
                    "<VerDTD xmlns='syncml:devinf'>1.2</VerDTD>" ITEM_POST,
                    "DevInf must come as one <DevInf>");
    expect_fail_str(ITEM_PRE "<DevInf xmlns='syncml:devinf'><Anchor xmlns="
                             "'syncml:metinf'/></DevInf>" ITEM_POST,
                    "MetInf element <Anchor> inside DevInf");
    expect_fail_str(ITEM_PRE "<DevInf xmlns='syncml:devinf'><Item xmlns="
                             "'SYNCML:SYNCML1.2'/></DevInf>" ITEM_POST,
                    "SyncML element <Item> inside DevInf");
    expect_fail_str("<SyncML><x:SyncBody/></SyncML>", "malformed XML");
    /* entities: no internal subset is ever read */
    expect_fail(laughs, sizeof(laughs) - 1,
                "a DOCTYPE with an internal "
                "subset (entity declarations) is refused");
    expect_fail(xxe, sizeof(xxe) - 1, "internal subset");
    expect_fail(pe, sizeof(pe) - 1, "internal subset");
    expect_fail_str("<!DOCTYPE SyncML []><SyncML/>", "internal subset");
    /* an undeclared entity (external DTD not loaded) */
    expect_fail_str("<!DOCTYPE SyncML SYSTEM \"http://127.0.0.1:1/x.dtd\">"
                    "<SyncML><SyncHdr><VerDTD>&x;</VerDTD></SyncHdr></SyncML>",
                    "malformed XML at line 1: Entity 'x' not defined");
    /* nesting */
    deep = malloc(200 * 13 + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(deep);
    p = deep + sprintf(deep, "<SyncML><SyncBody>");
    for (i = 0; i < 200; ++i) {
        p += sprintf(p, "<Sync>");
    }
    for (i = 0; i < 200; ++i) {
        p += sprintf(p, "</Sync>");
    }
    sprintf(p, "</SyncBody></SyncML>");
    expect_fail_str(deep, "elements nested deeper than 32");
    free(deep);
    /* encodings */
    expect_fail_str(ITEM_PRE "\xC3\x28" ITEM_POST, "malformed XML");
    expect_fail_str(ITEM_PRE "\xFF\xFE" ITEM_POST, "malformed XML");
    expect_fail_str(ITEM_PRE "&#1;" ITEM_POST, "malformed XML");
    expect_fail_str(ITEM_PRE "&#xFFFE;" ITEM_POST, "malformed XML");
    expect_fail(nul, sizeof(nul) - 1, "malformed XML");
    expect_fail(bom16, sizeof(bom16) - 1, "refused");
    expect_fail("", 0, "empty document");
    expect_fail_str("   ", "malformed XML");
}

static void test_encodings(void)
{
    /* SyncML XML is UTF-8: UTF-16 is refused before parsing (even when
     * well-formed), a declared encoding is ignored and the bytes must be
     * UTF-8 */
    static const char u16[] = "\xFF\xFE<\0S\0y\0n\0c\0M\0L\0/\0>\0";
    static const char u16nobom[] = "<\0?\0x\0m\0l\0 \0";
    static const char u8bom[] = "\xEF\xBB\xBF<SyncML><SyncHdr/><SyncBody/>"
                                "</SyncML>";

    expect_fail(u16, sizeof(u16) - 1, "XML in UTF-16 is refused");
    expect_fail(u16nobom, sizeof(u16nobom) - 1, "is refused");
    CU_ASSERT_PTR_NOT_NULL(dec_ok(u8bom, sizeof(u8bom) - 1, unit_pool));
    CU_ASSERT_PTR_NOT_NULL(dec_str("<?xml version='1.0' encoding='x-bogus'?>"
                                   "<SyncML><SyncHdr/><SyncBody/></SyncML>"));
    CU_ASSERT_PTR_NOT_NULL(dec_str("<?xml version='1.0' encoding='ISO-8859-1'"
                                   "?><SyncML><SyncHdr/><SyncBody/></SyncML>"));
    expect_fail_str("<?xml version='1.0' encoding='ISO-8859-1'?><SyncML>"
                    "<SyncHdr><LocName>\xE4</LocName></SyncHdr></SyncML>",
                    "malformed XML");
}

static void test_doctype_public(void)
{
    /* libsynthesis-style DOCTYPE without internal subset: accepted, the DTD
     * is not loaded (nothing listens on those addresses anyway) */
    memds_tree_t *t = dec_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<!DOCTYPE SyncML PUBLIC \"-//SYNCML//DTD SyncML 1.2//EN\" "
        "\"http://www.openmobilealliance.org/tech/DTD/OMA-TS-SyncML_RepPro_"
        "DTD-V1_2.dtd\">" HDR TRL);

    CU_ASSERT_PTR_NOT_NULL(t);
    t = dec_str("<!DOCTYPE SyncML SYSTEM \"file:///etc/passwd\">" HDR TRL);
    CU_ASSERT_PTR_NOT_NULL(t);
    t = dec_str(
        "<!DOCTYPE SyncML SYSTEM \"http://127.0.0.1:1/x.dtd\">" HDR TRL);
    CU_ASSERT_PTR_NOT_NULL(t);
}

static void test_too_big(void)
{
    apr_size_t len = (apr_size_t)70 * 1000 * 1000;
    char *big = malloc(len);
    memds_tree_t *t = NULL;
    memds_codec_err_t err = { 0, NULL, 0, 0 };

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    /* a well-formed start: refused on size, not on content */
    memset(big, ' ', len);
    memcpy(big, "<SyncML>", 8);
    CU_ASSERT_EQUAL(memds_xml_decode(&t, big, len, &err, unit_pool),
                    APR_EINVAL);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err.msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "70000000 bytes"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "64 MiB"));
    free(big);
}

/* ------------------------------------------------------ hand-built trees */

static memds_tree_t *new_msg(memds_node_t **pbody)
{
    memds_tree_t *t = apr_pcalloc(unit_pool, sizeof(*t));
    memds_node_t *hdr, *meta;

    t->version = MEMDS_V12;
    t->root = memds_node_new(memds_tag_SyncML, unit_pool);
    hdr = memds_node_add(t->root, memds_node_new(S_("SyncHdr"), unit_pool));
    memds_node_add_str(hdr, S_("VerDTD"), "1.2", unit_pool);
    memds_node_add_str(hdr, S_("VerProto"), "SyncML/1.2", unit_pool);
    meta = memds_node_add(hdr, memds_node_new(S_("Meta"), unit_pool));
    memds_node_add_str(meta, M_("MaxMsgSize"), "150000", unit_pool);
    memds_node_add_str(meta, M_("MaxObjSize"), "4000000", unit_pool);
    *pbody = memds_node_add(t->root, memds_node_new(S_("SyncBody"), unit_pool));
    return t;
}

/* encode, compare with the expected text, decode back to the same tree,
 * sizes of all nodes equal their slices */
static void check_built(memds_tree_t *t, const char *expect_sub)
{
    apr_size_t l;
    const char *e = enc_ok(t, &l, unit_pool);
    memds_tree_t *t2;
    int bad = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    if (strstr(e, expect_sub) == NULL) {
        fprintf(stderr, "\n  %s\n  lacks %s\n", e, expect_sub);
        CU_FAIL("encoded form");
    }
    CU_ASSERT_EQUAL(memds_xml_node_size(t->root) + DECL_LEN, l);
    check_slices(t->root, e, DECL_LEN, l, &bad);
    CU_ASSERT_EQUAL(bad, 0);
    t2 = dec_ok(e, l, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
    CU_ASSERT_PTR_NULL(tree_diff(t->root, t2->root, unit_pool));
    CU_ASSERT_EQUAL(t2->version, t->version);
}

static void test_built_status_anchor(void)
{
    memds_node_t *body, *st, *item, *data, *anchor;
    memds_tree_t *t = new_msg(&body);

    st = memds_node_add(body, memds_node_new(S_("Status"), unit_pool));
    memds_node_add_str(st, S_("CmdID"), "1", unit_pool);
    memds_node_add_str(st, S_("MsgRef"), "1", unit_pool);
    memds_node_add_str(st, S_("CmdRef"), "3", unit_pool);
    memds_node_add_str(st, S_("Cmd"), "Alert", unit_pool);
    memds_node_add_str(st, S_("Data"), "200", unit_pool);
    item = memds_node_add(st, memds_node_new(S_("Item"), unit_pool));
    data = memds_node_add(item, memds_node_new(memds_tag_Data, unit_pool));
    anchor = memds_node_add(data, memds_node_new(M_("Anchor"), unit_pool));
    memds_node_add_str(anchor, M_("Next"), "20261128T175715Z", unit_pool);
    memds_node_add(body, memds_node_new(S_("Final"), unit_pool));
    check_built(t, "<Cmd>Alert</Cmd><Data>200</Data><Item><Data><Anchor "
                   "xmlns=\"syncml:metinf\"><Next>20261128T175715Z</Next>"
                   "</Anchor></Data></Item></Status><Final/></SyncBody>");
    check_built(t, "<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncHdr><VerDTD>1.2"
                   "</VerDTD><VerProto>SyncML/1.2</VerProto><Meta><MaxMsgSize "
                   "xmlns=\"syncml:metinf\">150000</MaxMsgSize><MaxObjSize "
                   "xmlns=\"syncml:metinf\">4000000</MaxObjSize></Meta>");
    /* the Anchor node's size includes its xmlns */
    CU_ASSERT_EQUAL(memds_xml_node_size(anchor),
                    strlen("<Anchor xmlns=\"syncml:metinf\"><Next>"
                           "20261128T175715Z</Next></Anchor>"));
    CU_ASSERT_EQUAL(memds_xml_node_size(data),
                    memds_xml_node_size(anchor) + strlen("<Data></Data>"));
    /* 1.1 */
    t->version = MEMDS_V11;
    check_built(t, "<SyncML xmlns=\"SYNCML:SYNCML1.1\">");
}

static void test_built_put_devinf(void)
{
    memds_node_t *body, *put, *meta, *item, *data, *di, *ds, *rx;
    memds_tree_t *t = new_msg(&body);

    put = memds_node_add(body, memds_node_new(S_("Put"), unit_pool));
    memds_node_add_str(put, S_("CmdID"), "1", unit_pool);
    meta = memds_node_add(put, memds_node_new(S_("Meta"), unit_pool));
    memds_node_add_str(meta, M_("Type"), "application/vnd.syncml-devinf+wbxml",
                       unit_pool);
    item = memds_node_add(put, memds_node_new(S_("Item"), unit_pool));
    memds_node_add_str(memds_node_add(item,
                                      memds_node_new(S_("Source"), unit_pool)),
                       S_("LocURI"), "./devinf12", unit_pool);
    data = memds_node_add(item, memds_node_new(memds_tag_Data, unit_pool));
    di = memds_node_add(data, memds_node_new(memds_tag_DevInf, unit_pool));
    memds_node_add_str(di, D_("VerDTD"), "1.2", unit_pool);
    memds_node_add_str(di, D_("Man"), "M&S <x>", unit_pool);
    memds_node_add_str(di, D_("DevID"), "server", unit_pool);
    memds_node_add(di, memds_node_new(D_("UTC"), unit_pool));
    memds_node_add(di, memds_node_new(D_("SupportLargeObjs"), unit_pool));
    ds = memds_node_add(di, memds_node_new(D_("DataStore"), unit_pool));
    memds_node_add_str(ds, D_("SourceRef"), "mail", unit_pool);
    rx = memds_node_add(ds, memds_node_new(D_("Rx-Pref"), unit_pool));
    memds_node_add_str(rx, D_("CTType"), "text/plain", unit_pool);
    memds_node_add_str(rx, D_("VerCT"), "1.0", unit_pool);
    memds_node_add(body, memds_node_new(S_("Final"), unit_pool));

    /* +wbxml is written as +xml; decoding gives +xml: compare after
     * setting the tree to what XML carries */
    {
        apr_size_t l;
        const char *e = enc_ok(t, &l, unit_pool);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_PTR_NOT_NULL(
            strstr(e, "<Meta><Type xmlns=\"syncml:metinf\">"
                      "application/vnd.syncml-devinf+xml</Type></Meta>"));
        CU_ASSERT_EQUAL(memds_xml_node_size(t->root) + DECL_LEN, l);
        CU_ASSERT_EQUAL(memds_xml_node_size(meta),
                        strlen("<Meta><Type xmlns=\"syncml:metinf\">application"
                               "/vnd.syncml-devinf+xml</Type></Meta>"));
    }
    meta->first->text = "application/vnd.syncml-devinf+xml";
    meta->first->len = strlen(meta->first->text);
    check_built(t, "<Item><Source><LocURI>./devinf12</LocURI></Source><Data>"
                   "<DevInf xmlns=\"syncml:devinf\"><VerDTD>1.2</VerDTD><Man>"
                   "M&amp;S &lt;x&gt;</Man><DevID>server</DevID><UTC/>"
                   "<SupportLargeObjs/><DataStore><SourceRef>mail</SourceRef>"
                   "<Rx-Pref><CTType>text/plain</CTType><VerCT>1.0</VerCT>"
                   "</Rx-Pref></DataStore></DevInf></Data></Item></Put>");
    CU_ASSERT_EQUAL(
        memds_xml_node_size(di),
        strlen(
            "<DevInf xmlns=\"syncml:"
            "devinf\"><VerDTD>1.2</VerDTD><Man>M&amp;S &lt;x&gt;</Man><DevID>"
            "server</DevID><UTC/><SupportLargeObjs/><DataStore><SourceRef>mail"
            "</SourceRef><Rx-Pref><CTType>text/plain</CTType><VerCT>1.0</VerCT>"
            "</Rx-Pref></DataStore></DevInf>"));
    /* a DevInf tree of its own (nested document) */
    {
        memds_tree_t dt = { di, MEMDS_V12, 0 };
        memds_node_t *saved = di->parent;
        apr_size_t l;
        const char *e;
        di->parent = NULL;
        e = enc_ok(&dt, &l, unit_pool);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT(strncmp(e, DECL "<DevInf xmlns=\"syncml:devinf\"><VerDTD>",
                          strlen(DECL "<DevInf xmlns=\"syncml:devinf\">"
                                      "<VerDTD>"))
                  == 0);
        CU_ASSERT_EQUAL(memds_xml_node_size(di) + DECL_LEN, l);
        di->parent = saved;
    }
}

/* A DevInf document of its own (how the engine stores a client's DevInf)
 * decodes with memds_xml_decode_devinf, and only with it. */
static void test_devinf_document(void)
{
    static const char doc[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<DevInf xmlns=\"syncml:devinf\"><VerDTD>1.2</VerDTD><Man>m</Man>"
        "<DevID>dev1</DevID><DataStore><SourceRef>./mail</SourceRef>"
        "<Rx-Pref><CTType>message/rfc822</CTType><VerCT>1.0</VerCT></Rx-Pref>"
        "<SyncCap><SyncType>1</SyncType></SyncCap></DataStore></DevInf>";
    static const char syncml[] = "<SyncML xmlns=\"SYNCML:SYNCML1.2\"><SyncHdr>"
                                 "</SyncHdr><SyncBody/></SyncML>";
    memds_tree_t *t;
    memds_codec_err_t err;
    memds_devinf_t *di;
    const memds_datastore_t *ds;

    CU_ASSERT_EQUAL(memds_xml_decode(&t, doc, strlen(doc), &err, unit_pool),
                    APR_EINVAL);
    CU_ASSERT_EQUAL_FATAL(memds_xml_decode_devinf(&t, doc, strlen(doc), &err,
                                                  unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(memds_devinf_from_tree(&di, t->root, &err, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(di->devid, "dev1");
    CU_ASSERT_EQUAL_FATAL(di->datastores->nelts, 1);
    ds = APR_ARRAY_IDX(di->datastores, 0, memds_datastore_t *);
    CU_ASSERT_STRING_EQUAL(ds->source_ref, "./mail");
    CU_ASSERT_STRING_EQUAL(ds->rx_pref->ct_type, "message/rfc822");
    /* a SyncML message is not a DevInf document */
    CU_ASSERT_EQUAL(memds_xml_decode_devinf(&t, syncml, strlen(syncml), &err,
                                            unit_pool),
                    APR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not a DevInf document"));
}

static void test_built_meta(void)
{
    memds_node_t *body, *alert, *item, *meta, *anchor, *mem;
    memds_tree_t *t = new_msg(&body);

    alert = memds_node_add(body, memds_node_new(S_("Alert"), unit_pool));
    memds_node_add_str(alert, S_("CmdID"), "1", unit_pool);
    memds_node_add_str(alert, S_("Data"), "200", unit_pool);
    item = memds_node_add(alert, memds_node_new(S_("Item"), unit_pool));
    meta = memds_node_add(item, memds_node_new(S_("Meta"), unit_pool));
    anchor = memds_node_add(meta, memds_node_new(M_("Anchor"), unit_pool));
    memds_node_add_str(anchor, M_("Last"), "1", unit_pool);
    memds_node_add_str(anchor, M_("Next"), "2", unit_pool);
    memds_node_add_str(meta, M_("MaxObjSize"), "4000000", unit_pool);
    memds_node_add_str(meta, M_("Format"), "b64", unit_pool);
    mem = memds_node_add(meta, memds_node_new(M_("Mem"), unit_pool));
    memds_node_add(mem, memds_node_new(M_("SharedMem"), unit_pool));
    memds_node_add_str(mem, M_("FreeMem"), "10", unit_pool);
    memds_node_add(meta, memds_node_new(M_("FieldLevel"), unit_pool));
    check_built(t,
                "<Item><Meta><Anchor xmlns=\"syncml:metinf\"><Last>1</Last>"
                "<Next>2</Next></Anchor><MaxObjSize xmlns=\"syncml:metinf\">"
                "4000000</MaxObjSize><Format xmlns=\"syncml:metinf\">b64"
                "</Format><Mem xmlns=\"syncml:metinf\"><SharedMem/><FreeMem>10"
                "</FreeMem></Mem><FieldLevel xmlns=\"syncml:metinf\"/></Meta>"
                "</Item></Alert>");
    CU_ASSERT_EQUAL(memds_xml_node_size(mem),
                    strlen("<Mem xmlns=\"syncml:"
                           "metinf\"><SharedMem/><FreeMem>10</FreeMem></Mem>"));
    CU_ASSERT_EQUAL(memds_xml_node_size(mem->first), strlen("<SharedMem/>"));
    /* FieldLevel (MetInf) is 1.2 only */
    {
        memds_buf_t b;
        memds_codec_err_t err = { 0, NULL, 0, 0 };
        t->version = MEMDS_V11;
        memds_buf_init(&b, 0, unit_pool);
        CU_ASSERT_EQUAL(memds_xml_encode(&b, t, &err), APR_EINVAL);
        CU_ASSERT(err.msg && strstr(err.msg, "FieldLevel"));
    }
}

/* The namespace leniency of real clients: MetInf without namespace, on
 * <Meta>, DevInf in Data without namespace. */
/* A filter Field's Data: DevInf <Property> elements with the namespace,
 * without it, or with a prefix, give one tree; the encoder writes the
 * namespace on the Property only. A Property elsewhere is refused. */
static void test_filter_property(void)
{
    static const char *const props[] = {
        "<Property xmlns='syncml:devinf'><PropName>emailitem</PropName>"
        "<MaxSize>20480</MaxSize></Property>",
        "<Property><PropName>emailitem</PropName><MaxSize>20480</MaxSize>"
        "</Property>",
        "<d:Property xmlns:d='syncml:devinf'><d:PropName>emailitem"
        "</d:PropName><d:MaxSize>20480</d:MaxSize></d:Property>",
    };
    memds_tree_t *ref = NULL, *t;
    apr_size_t i;
    memds_buf_t b;
    memds_codec_err_t err;

    for (i = 0; i < sizeof(props) / sizeof(props[0]); ++i) {
        const memds_node_t *data;
        t = dec_str(apr_pstrcat(
            unit_pool,
            HDR "<Alert><CmdID>1</CmdID><Item><Target><LocURI>Inbox</LocURI>"
                "<Filter><Meta><Type xmlns='syncml:metinf'>t</Type></Meta>"
                "<Field><Item><Data>",
            props[i],
            "</Data></Item></Field></Filter></Target></Item></Alert>" TRL,
            NULL));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        data = memds_node_child(
            memds_node_child(
                memds_node_child(
                    memds_node_child(
                        memds_node_child(
                            memds_node_child(
                                memds_node_child(memds_node_child(t->root,
                                                                  "SyncBody"),
                                                 "Alert"),
                                "Item"),
                            "Target"),
                        "Filter"),
                    "Field"),
                "Item"),
            "Data");
        CU_ASSERT_PTR_NOT_NULL_FATAL(data);
        CU_ASSERT_PTR_NOT_NULL_FATAL(data->first);
        CU_ASSERT_EQUAL(data->first->tag->ts, MEMDS_TS_DEVINF);
        CU_ASSERT_STRING_EQUAL(data->first->tag->name, "Property");
        CU_ASSERT_EQUAL(data->first->last->tag->ts, MEMDS_TS_DEVINF);
        if (ref) {
            CU_ASSERT_PTR_NULL(tree_diff(ref->root, t->root, unit_pool));
        }
        ref = t;
    }
    memds_buf_init(&b, 1024, unit_pool);
    CU_ASSERT_EQUAL_FATAL(memds_xml_encode(&b, ref, &err), APR_SUCCESS);
    memds_buf_addc(&b, '\0');
    CU_ASSERT_PTR_NOT_NULL(
        strstr(b.data, "<Data><Property xmlns=\"syncml:devinf\"><PropName>"
                       "emailitem</PropName>"));
    /* DevInf elements other than a Property or a DevInf root in a Data */
    expect_fail_str(ITEM_PRE
                    "<PropName xmlns='syncml:devinf'>a</PropName>" ITEM_POST,
                    "DevInf element <PropName> in <Data>");
    expect_fail_str(HDR "<Add><CmdID>1</CmdID><Item><Property xmlns="
                        "'syncml:devinf'/></Item></Add>" TRL,
                    "DevInf element <Property> in <Item>");
    expect_fail_str(ITEM_PRE "<PropName>a</PropName>" ITEM_POST,
                    "unknown element <PropName> in <Data>");
}

static void test_lenient_namespaces(void)
{
    static const char *const docs[] = {
        "<Meta><Type xmlns='syncml:metinf'>t</Type><Anchor xmlns="
        "'syncml:metinf'><Next>2</Next></Anchor></Meta>",
        "<Meta xmlns='syncml:metinf'><Type>t</Type><Anchor><Next>2</Next>"
        "</Anchor></Meta>",
        "<Meta><Type>t</Type><Anchor><Next>2</Next></Anchor></Meta>",
        "<m:Meta xmlns:m='syncml:metinf'><m:Type>t</m:Type><m:Anchor>"
        "<m:Next>2</m:Next></m:Anchor></m:Meta>",
    };
    memds_tree_t *ref = NULL, *t;
    apr_size_t i;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); ++i) {
        const memds_node_t *meta;
        t = dec_str(apr_pstrcat(unit_pool, HDR "<Alert><CmdID>1</CmdID><Item>",
                                docs[i], "</Item></Alert>" TRL, NULL));
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        meta = memds_node_child(
            memds_node_child(memds_node_child(memds_node_child(t->root,
                                                               "SyncBody"),
                                              "Alert"),
                             "Item"),
            "Meta");
        CU_ASSERT_PTR_NOT_NULL_FATAL(meta);
        CU_ASSERT_EQUAL(meta->tag->ts, MEMDS_TS_SYNCML);
        CU_ASSERT_EQUAL(meta->first->tag->ts, MEMDS_TS_METINF);
        CU_ASSERT_EQUAL(meta->last->first->tag->ts, MEMDS_TS_METINF);
        if (ref) {
            CU_ASSERT_PTR_NULL(tree_diff(ref->root, t->root, unit_pool));
        }
        ref = t;
    }
    /* Anchor in Status Item Data without namespace, DevInf without one */
    t = dec_str(HDR
                "<Status><CmdID>1</CmdID><Item><Data><Anchor><Next>2"
                "</Next></Anchor></Data></Item></Status><Put><CmdID>2</CmdID>"
                "<Item><Data>\n  <DevInf>\n    <VerDTD>1.2</VerDTD>\n"
                "    <Size>5</Size>\n  </DevInf>\n</Data></Item></Put>" TRL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    {
        const memds_node_t *b = memds_node_child(t->root, "SyncBody"), *d;
        d = memds_node_child(memds_node_child(memds_node_child(b, "Status"),
                                              "Item"),
                             "Data");
        CU_ASSERT_PTR_NULL(d->text);
        CU_ASSERT_EQUAL(d->first->tag->ts, MEMDS_TS_METINF);
        CU_ASSERT_EQUAL(d->first->first->tag->ts, MEMDS_TS_METINF);
        d = memds_node_child(memds_node_child(memds_node_child(b, "Put"),
                                              "Item"),
                             "Data");
        CU_ASSERT_PTR_NULL(d->text); /* whitespace around elements ignored */
        CU_ASSERT_PTR_EQUAL(d->first->tag, memds_tag_DevInf);
        CU_ASSERT_EQUAL(d->first->first->tag->ts, MEMDS_TS_DEVINF);
        CU_ASSERT_STRING_EQUAL(d->first->last->tag->name, "Size");
        CU_ASSERT_EQUAL(d->first->last->tag->tok, 0x1C);
    }
    /* an explicit switch back to SyncML inside MetInf round-trips */
    t = dec_str(HDR
                "<Alert><CmdID>1</CmdID><Item><Data><Anchor xmlns="
                "'syncml:metinf'><Next>1</Next><LocURI xmlns='SYNCML:SYNCML1.2'"
                ">u</LocURI></Anchor></Data></Item></Alert>" TRL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    check_built(t, "<Anchor xmlns=\"syncml:metinf\"><Next>1</Next><LocURI "
                   "xmlns=\"SYNCML:SYNCML1.2\">u</LocURI></Anchor>");
}

/* ------------------------------------------------------------ threads */

#define THREADS 4
#define THREAD_DOCS 64

typedef struct thread_job_t {
    const char *in[THREAD_DOCS], *expect[THREAD_DOCS];
    apr_size_t inlen[THREAD_DOCS], explen[THREAD_DOCS];
    int n;
    volatile int failures[THREADS];
} thread_job_t;

typedef struct thread_arg_t {
    thread_job_t *job;
    int id;
} thread_arg_t;

static void collect_doc(const char *path, const char *name, int decoded_xml,
                        void *baton)
{
    thread_job_t *job = baton;
    apr_size_t len;
    const char *in;
    memds_tree_t *t = NULL;
    memds_codec_err_t err;

    (void)name;
    if (decoded_xml || job->n >= THREAD_DOCS) {
        return;
    }
    in = unit_read_file(path, &len);
    if (in && memds_xml_decode(&t, in, len, &err, unit_pool) == APR_SUCCESS) {
        job->in[job->n] = in;
        job->inlen[job->n] = len;
        job->expect[job->n] = enc_ok(t, &job->explen[job->n], unit_pool);
        ++job->n;
    }
}

static void *APR_THREAD_FUNC decode_thread(apr_thread_t *th, void *data)
{
    thread_arg_t *a = data;
    thread_job_t *job = a->job;
    apr_pool_t *p;
    int round, i;

    /* a pool of the thread's own: pools are never shared between threads */
    apr_pool_create(&p, NULL);
    for (round = 0; round < 5; ++round) {
        for (i = 0; i < job->n; ++i) {
            memds_tree_t *t = NULL;
            memds_codec_err_t err;
            memds_buf_t b;
            apr_status_t rv;
            rv = memds_xml_decode(&t, job->in[i], job->inlen[i], &err, p);
            if (rv == APR_SUCCESS) {
                memds_buf_init(&b, 0, p);
                rv = memds_xml_encode(&b, t, &err);
            }
            if (rv != APR_SUCCESS || b.len != job->explen[i]
                || memcmp(b.data, job->expect[i], b.len) != 0) {
                ++job->failures[a->id];
            }
            /* and a failing one, which records its error in the context */
            if (memds_xml_decode(&t, "<SyncML><a></b></SyncML>", 24, &err, p)
                    != APR_EINVAL
                || strstr(err.msg, "mismatch") == NULL) {
                ++job->failures[a->id];
            }
            apr_pool_clear(p);
        }
    }
    apr_pool_destroy(p);
    apr_thread_exit(th, APR_SUCCESS);
    return NULL;
}

/* The codec has no global state: threads decoding at once agree with a
 * single-threaded run (libxml2 errors stay in each parser context). */
static void test_threads(void)
{
    thread_job_t *job = apr_pcalloc(unit_pool, sizeof(*job));
    thread_arg_t args[THREADS];
    apr_thread_t *th[THREADS];
    int i;

    for_each_xml(collect_doc, job);
    CU_ASSERT_FATAL(job->n >= 32);
    for (i = 0; i < THREADS; ++i) {
        args[i].job = job;
        args[i].id = i;
        CU_ASSERT_EQUAL_FATAL(apr_thread_create(&th[i], NULL, decode_thread,
                                                &args[i], unit_pool),
                              APR_SUCCESS);
    }
    for (i = 0; i < THREADS; ++i) {
        apr_status_t trv;
        apr_thread_join(&trv, th[i]);
        CU_ASSERT_EQUAL(job->failures[i], 0);
    }
}

void unit_add_xml(void)
{
    CU_pSuite s = CU_add_suite("xml", NULL, NULL);

    CU_add_test(s, "capture corpus round trip and sizes", test_corpus);
    CU_add_test(s, "compact and indented renderings", test_renderings_equal);
    CU_add_test(s, "email item data bytes", test_corpus_email_data);
    CU_add_test(s, "versions and namespaces", test_versions);
    CU_add_test(s, "data decoding", test_data_decode);
    CU_add_test(s, "leaf text", test_leaf_text);
    CU_add_test(s, "data encoding", test_data_encode);
    CU_add_test(s, "data the encoder refuses", test_data_refused);
    CU_add_test(s, "truncated documents", test_truncated);
    CU_add_test(s, "malformed documents", test_malformed);
    CU_add_test(s, "encodings", test_encodings);
    CU_add_test(s, "DOCTYPE without internal subset", test_doctype_public);
    CU_add_test(s, "size cap", test_too_big);
    CU_add_test(s, "built Status with Anchor", test_built_status_anchor);
    CU_add_test(s, "built Put with DevInf", test_built_put_devinf);
    CU_add_test(s, "stored DevInf document", test_devinf_document);
    CU_add_test(s, "built Meta", test_built_meta);
    CU_add_test(s, "lenient namespaces", test_lenient_namespaces);
    CU_add_test(s, "filter Field: DevInf Property in Data",
                test_filter_property);
    CU_add_test(s, "threads", test_threads);
    CU_add_test(s, "SyncML 1.0 with 1.1 elements round-trips",
                test_v10_with_v11_elements);
}
