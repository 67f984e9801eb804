/* libFuzzer target: the Email and Folder data objects (email/memds_email.c).
 *
 * Per input, as an Email object: parse; when that succeeds, build in both
 * styles. A TEXT build must succeed exactly when the emailitem is XML-safe
 * (a QP-decoded item may not be), parse again to an equal object and
 * build again to the same bytes. A CDATA build must parse too and give
 * the same object, but for the item's line ends (XML end-of-line handling)
 * and Funambol's "]]&gt;" tail, which the parser strips from CDATA. The
 * same input as a Folder object: parse, build, parse, equal. Failures
 * must come with a message. Anything else is a bug and aborts.
 * Seeds: built in (below); MEMDS_FUZZ_EMAIL_SEEDS=DIR writes them to DIR
 * at start-up, before libFuzzer reads its corpus directories. */
#include "email/memds_email.h"

#include "fuzz_seeds.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <libxml/parser.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Built-in seeds: the real client's raw-email item (as in the captures and
 * run-client.sh), and the Nokia, libsynthesis and Funambol variants of
 * email-san.md 1-2. */
#define S(x) FUZZ_SEED(x)
static const fuzz_seed_t seeds[] = {
    S("<Email xmlns=\"syncml:email\"><read>false</read><forwarded>false"
      "</forwarded><replied>false</replied><received>20240101T100100Z"
      "</received><created>20240101T100100Z</created><modified>"
      "20240101T100100Z</modified><deleted>false</deleted><flagged>false"
      "</flagged><emailitem><![CDATA[From: Alice <alice@example.org>\r\n"
      "To: Bob <bob@example.org>\r\nSubject: Test mail 1\r\nDate: Mon, 1 "
      "Jan 2024 10:01:00 +0000\r\nMessage-ID: <rc-mail-1@example.org>\r\n"
      "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
      "\r\nHello Bob, this is mail number 1.\r\n]]></emailitem></Email>"),
    S("<Email><read>true</read><forwarded>false</forwarded><received>"
      "20240131T083000Z</received><modified>20240131T093000</modified>"
      "<deleted>false</deleted><flagged>true</flagged><emailitem>A&amp;B "
      "&lt;x&gt;&#13;\n]]&gt;\tz</emailitem><truncated><body><size>48213"
      "</size><type>text/plain</type></body><attach><name>report.pdf</name>"
      "<size>1203311</size><type>application/pdf</type></attach></truncated>"
      "<Ext><XNam>x-foo</XNam><XVal>1</XVal><XVal/></Ext></Email>"),
    S("<Email><emailitem><![CDATA[a]]]]>&gt;<![CDATA[b]]></emailitem></Email>"),
    S("<Email><emailitem><![CDATA[a]]>]<![CDATA[]>b]]></emailitem></Email>"),
    S("<Email>\n  <read>1</read>\n  <emailitem>\n    <![CDATA[x\r\ny]]>\n"
      "  </emailitem>\n</Email>\n"),
    S("<Email><emailitem ENC=\"Quoted-Printable\"><![CDATA[Subject: caf=C3=A9"
      "\r\n\r\nline one is lo=\r\nng=3D=\n soft=  \r\nx=4\r\n=zz end=00=FF]]>"
      "</emailitem></Email>"),
    S("<Email><read>false</read><emailitem><![CDATA[From: a@b\r\n\r\nhi "
      "<there>\r\n]]&gt;\n</emailitem><flagged>true</flagged></Email>"),
    S("<Email><emailitem><![CDATA[From: a@b\n\nhi]]&gt; ]]></emailitem>"
      "</Email>"),
    S("&lt;Email&gt;&lt;read&gt;true&lt;/read&gt;&lt;emailitem&gt;a &amp;amp; "
      "b&amp;#13;&#10;&lt;/emailitem&gt;&lt;/Email&gt;"),
    S("<Email><emailitem><![CDATA[From: a@b\r\n\r\nfirst 2 KB]]></emailitem>"
      "<Ext><XNam>x-funambol-size</XNam><XVal>52000</XVal></Ext><Ext><XNam>"
      "x-funambol-body</XNam><XVal> 48000 </XVal></Ext><Ext><XNam>"
      "X-Funambol-Attach-N</XNam><XVal>1</XVal></Ext><Ext><XNam>"
      "x-funambol-attach</XNam><XVal>=?UTF-8?Q?r=C3=A9port.pdf?=</XVal><XVal>"
      "1203311</XVal><XVal>application/pdf</XVal><XVal>http://h/cp?AUTH=t&amp;"
      "USER=u&amp;INDEX=1</XVal></Ext></Email>"),
    S("<e:Email xmlns:e='syncml:email'><e:read>true</e:read><flagged/>"
      "<truncated/></e:Email>"),
    S("<Folder xmlns='syncml:folder'><role> Trash </role><attributes><e>true"
      "</e><H>false</H><w/></attributes><name> My &amp; Folder </name>"
      "<accessed>2024-01-02T03:04:05Z</accessed><Ext><XNam>EmailAddress"
      "</XNam><XVal>alice@example.org</XVal></Ext><modified>20240101T000000"
      "</modified></Folder>"),
    S("<Folder><name>Inbox</name><created>20050101T000000Z</created><role>"
      "inbox</role></Folder>"),
    S("&lt;Folder&gt;&lt;name&gt;A &amp;amp; B&lt;/name&gt;&lt;/Folder&gt;"),
    S("From: a\r\nX-Sync-Message-Limit: 2048\r\nSubject: x\r\n\r\nbody"),
    S("2024-01-31T09:30:00+01:00"),
};

/* Once-initialised process state of the harness (not of the code under
 * test, which has none). */
static apr_pool_t *root_pool;

static void setup(void)
{
    if (root_pool == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&root_pool, NULL) != APR_SUCCESS) {
            abort();
        }
        xmlInitParser();
    }
}

static void fail(const char *what, const memds_codec_err_t *err)
{
    fprintf(stderr, "fuzz_email: %s: %s\n", what,
            err && err->msg ? err->msg : "(no message)");
    abort();
}

static void check_error(apr_status_t rv, const memds_codec_err_t *err,
                        const void *obj)
{
    if (err->msg == NULL || err->rv != rv || obj != NULL
        || (rv != APR_EINVAL && rv != APR_ENOMEM)) {
        fail("parse failed without a proper error", err);
    }
}

/* The item as a conforming parser returns it from CDATA: CR LF and lone
 * CR as LF. */
static char *eol_normalised(const char *s, apr_size_t len, apr_size_t *olen,
                            apr_pool_t *p)
{
    char *o = apr_palloc(p, len + 1);
    apr_size_t i, n = 0;

    for (i = 0; i < len; ++i) {
        if (s[i] == '\r') {
            o[n++] = '\n';
            if (i + 1 < len && s[i + 1] == '\n') {
                ++i;
            }
        }
        else {
            o[n++] = s[i];
        }
    }
    o[n] = '\0';
    *olen = n;
    return o;
}

/* Ends with "]]&gt;" and blanks: the parser strips that from CDATA. */
static int fnbl_tail(const char *s, apr_size_t len)
{
    while (len
           && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n'
               || s[len - 1] == '\r')) {
        --len;
    }
    return len >= 6 && memcmp(s + len - 6, "]]&gt;", 6) == 0;
}

static void email(const uint8_t *data, size_t size, apr_pool_t *p)
{
    memds_email_t *e = NULL, *e2 = NULL, *e3 = NULL, copy;
    memds_codec_err_t err;
    memds_buf_t b1, b2, b3;
    apr_status_t rv;
    int safe;

    memset(&err, 0, sizeof(err));
    rv = memds_email_parse(&e, (const char *)data, size, &err, p);
    if (rv != APR_SUCCESS) {
        check_error(rv, &err, e);
        return;
    }
    if (e == NULL) {
        fail("parse succeeded without an object", NULL);
    }
    safe = !e->has_item
           || memds_email_item_xml_safe(e->item, e->item_len, NULL);
    if (!safe && !(e->item_form & MEMDS_EMAIL_IF_QP)) {
        fail("a parsed item that is not XML-safe without QP", NULL);
    }
    memds_buf_init(&b1, 0, p);
    rv = memds_email_build(&b1, e, MEMDS_EMAIL_STYLE_TEXT, &err, p);
    if (!safe) {
        if (rv != APR_EINVAL || b1.len != 0) {
            fail("an unsafe item was built", NULL);
        }
        memds_buf_init(&b3, 0, p);
        if (memds_email_build(&b3, e, MEMDS_EMAIL_STYLE_CDATA, &err, p)
                != APR_EINVAL
            || b3.len != 0) {
            fail("an unsafe item was built as CDATA", NULL);
        }
        return;
    }
    if (rv != APR_SUCCESS) {
        fail("building a parsed object failed", &err);
    }
    if (memds_email_parse(&e2, b1.data, b1.len, &err, p) != APR_SUCCESS) {
        fail("parsing the TEXT build failed", &err);
    }
    if (!memds_email_equal(e, e2)) {
        fail("TEXT build does not round-trip", NULL);
    }
    memds_buf_init(&b2, 0, p);
    if (memds_email_build(&b2, e2, MEMDS_EMAIL_STYLE_TEXT, &err, p)
            != APR_SUCCESS
        || b2.len != b1.len || memcmp(b1.data, b2.data, b1.len) != 0) {
        fail("TEXT build is not canonical", &err);
    }
    memds_buf_init(&b3, 0, p);
    if (memds_email_build(&b3, e, MEMDS_EMAIL_STYLE_CDATA, &err, p)
        != APR_SUCCESS) {
        fail("CDATA build failed", &err);
    }
    if (memds_email_parse(&e3, b3.data, b3.len, &err, p) != APR_SUCCESS) {
        fail("parsing the CDATA build failed", &err);
    }
    copy = *e;
    if (e->has_item) {
        copy.item = eol_normalised(e->item, e->item_len, &copy.item_len, p);
        if (fnbl_tail(copy.item, copy.item_len)) {
            copy.item = e3->item; /* stripped on purpose; not compared */
            copy.item_len = e3->item_len;
        }
    }
    if (!memds_email_equal(&copy, e3)) {
        fail("CDATA build does not round-trip", NULL);
    }
}

static void folder(const uint8_t *data, size_t size, apr_pool_t *p)
{
    memds_folder_t *f = NULL, *f2 = NULL;
    memds_codec_err_t err;
    memds_buf_t b;
    apr_status_t rv;

    memset(&err, 0, sizeof(err));
    rv = memds_folder_parse(&f, (const char *)data, size, &err, p);
    if (rv != APR_SUCCESS) {
        check_error(rv, &err, f);
        return;
    }
    memds_buf_init(&b, 0, p);
    if (memds_folder_build(&b, f, &err, p) != APR_SUCCESS) {
        fail("building a parsed folder failed", &err);
    }
    if (memds_folder_parse(&f2, b.data, b.len, &err, p) != APR_SUCCESS) {
        fail("parsing the folder build failed", &err);
    }
    if (!memds_folder_equal(f, f2)) {
        fail("folder build does not round-trip", NULL);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_write_seeds("MEMDS_FUZZ_EMAIL_SEEDS", "email", seeds,
                     FUZZ_NSEEDS(seeds));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_int64_t limit;
    const char *out;
    apr_size_t olen;
    memds_email_time_t dt;

    setup();
    if (apr_pool_create(&p, root_pool) != APR_SUCCESS) {
        abort();
    }
    email(data, size, p);
    folder(data, size, p);
    /* the text helpers must not crash on anything either */
    (void)memds_email_sync_limit(&limit, (const char *)data, size);
    memds_email_crlf(&out, &olen, (const char *)data, size, p);
    if (olen < size) {
        fail("CRLF made the text shorter", NULL);
    }
    if (memds_email_time_parse(&dt, (const char *)data, size, p)
        == APR_SUCCESS) {
        memds_email_time_t dt2;
        if (memds_email_time_parse(&dt2, dt.text, strlen(dt.text), p)
                != APR_SUCCESS
            || dt2.t != dt.t || strcmp(dt.text, dt2.text) != 0) {
            fail("date-time text is not canonical", NULL);
        }
    }
    apr_pool_destroy(p);
    return 0;
}
