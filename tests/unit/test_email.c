/* Unit tests: email/memds_email.c (Email and Folder data objects, flags,
 * truncation helpers), against the real client's items in the sessions
 * recorded in tests/corpus and the variants of email-san.md 1-2. */
#include "unit.h"
#include "email/memds_email.h"
#include "syncml/memds_msg.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <stdio.h>
#include <string.h>

#define CORPUS MEMDS_SRCDIR "/tests/corpus/"
/* Messages of the raw-email sessions in pkg1/ and mail/ (XML and WBXML),
 * and the Email objects the gateway sends in them. */
#define CORPUS_RAW_EMAIL_FILES 40
#define CORPUS_SERVER_EMAILS 9

/* ------------------------------------------------------------- helpers */

static memds_email_t *parse_ok(const char *in, apr_size_t len)
{
    memds_email_t *e = NULL;
    memds_codec_err_t err;

    memset(&err, 0, sizeof(err));
    if (memds_email_parse(&e, in, len, &err, unit_pool) != APR_SUCCESS) {
        fprintf(stderr, "\n  parse failed: %s\n  input: %.200s\n", err.msg, in);
        return NULL;
    }
    return e;
}

#define PARSE(lit) parse_ok((lit), sizeof(lit) - 1)

static memds_folder_t *fparse_ok(const char *in)
{
    memds_folder_t *f = NULL;
    memds_codec_err_t err;

    if (memds_folder_parse(&f, in, strlen(in), &err, unit_pool)
        != APR_SUCCESS) {
        fprintf(stderr, "\n  folder parse failed: %s\n  input: %s\n", err.msg,
                in);
        return NULL;
    }
    return f;
}

/* The build as a NUL-terminated string (NULL on failure). */
static const char *build(const memds_email_t *e, memds_email_style_e style,
                         apr_size_t *plen)
{
    memds_buf_t b;
    memds_codec_err_t err;

    memds_buf_init(&b, 0, unit_pool);
    if (memds_email_build(&b, e, style, &err, unit_pool) != APR_SUCCESS) {
        fprintf(stderr, "\n  build failed: %s\n", err.msg);
        return NULL;
    }
    if (plen) {
        *plen = b.len;
    }
    memds_buf_addc(&b, '\0');
    return b.data;
}

static const char *fbuild(const memds_folder_t *f)
{
    memds_buf_t b;
    memds_codec_err_t err;

    memds_buf_init(&b, 0, unit_pool);
    if (memds_folder_build(&b, f, &err, unit_pool) != APR_SUCCESS) {
        fprintf(stderr, "\n  folder build failed: %s\n", err.msg);
        return NULL;
    }
    memds_buf_addc(&b, '\0');
    return b.data;
}

/* build(style) -> parse gives an equal object. */
static int round_trips(const memds_email_t *e, memds_email_style_e style)
{
    apr_size_t len;
    const char *x = build(e, style, &len);
    memds_email_t *e2;

    if (x == NULL || (e2 = parse_ok(x, len)) == NULL) {
        return 0;
    }
    if (!memds_email_equal(e, e2)) {
        fprintf(stderr, "\n  round trip differs: %s\n", x);
        return 0;
    }
    return 1;
}

/* Parsing in fails with APR_EINVAL and a message containing needle. */
static int fails_with(const char *in, apr_size_t len, const char *needle,
                      int folder)
{
    memds_codec_err_t err;
    memds_email_t *e = NULL;
    memds_folder_t *f = NULL;
    apr_status_t rv;

    memset(&err, 0, sizeof(err));
    rv = folder ? memds_folder_parse(&f, in, len, &err, unit_pool)
                : memds_email_parse(&e, in, len, &err, unit_pool);
    if (rv != APR_EINVAL || e != NULL || f != NULL || err.msg == NULL
        || err.rv != APR_EINVAL || strstr(err.msg, needle) == NULL) {
        fprintf(stderr,
                "\n  expected failure '%s', got rv %d: %s\n  input: "
                "%.120s\n",
                needle, rv, err.msg ? err.msg : "(none)", in);
        return 0;
    }
    return 1;
}

#define FAILS(lit, needle) \
    CU_ASSERT(fails_with((lit), sizeof(lit) - 1, (needle), 0))
#define FFAILS(lit, needle) \
    CU_ASSERT(fails_with((lit), sizeof(lit) - 1, (needle), 1))

static int item_is(const memds_email_t *e, const char *bytes, apr_size_t len)
{
    if (e == NULL || !e->has_item || e->item_len != len
        || memcmp(e->item, bytes, len) != 0) {
        fprintf(stderr, "\n  item differs: got '%.*s'\n",
                e && e->item ? (int)e->item_len : 0,
                e && e->item ? e->item : "");
        return 0;
    }
    return 1;
}

#define ITEM_IS(e, lit) CU_ASSERT(item_is((e), (lit), sizeof(lit) - 1))

/* The RFC 822 text of the real client's raw-email item i, and the item
 * itself, byte for byte as tests/client/run-client.sh --items writes them
 * (sample_item, rfc822_item). */
static const char *client_rfc822(int i)
{
    return apr_psprintf(
        unit_pool,
        "From: Corpus Sender <sender@example.test>"
        "\r\nTo: Alice <alice@example.test>\r\nSubject: Corpus mail %d\r\n"
        "Date: Tue, 2 Jan 2024 08:%02d:00 +0000\r\n"
        "Message-ID: <corpus-mail-%d@example.test>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
        "This is corpus mail number %d.\r\n"
        "It has a second line & a <tag>.\r\n",
        i, i % 60, i, i);
}

static const char *client_item(int i)
{
    return apr_psprintf(
        unit_pool,
        "<Email xmlns=\"syncml:email\"><read>false"
        "</read><forwarded>false</forwarded><replied>false</replied>"
        "<received>20240102T08%02d00Z</received><created>20240102T08%02d00Z"
        "</created><modified>20240102T08%02d00Z</modified><deleted>false"
        "</deleted><flagged>false</flagged><emailitem><![CDATA[%s]]>"
        "</emailitem></Email>",
        i % 60, i % 60, i % 60, client_rfc822(i));
}

static char *lf_only(const char *s, apr_size_t len, apr_size_t *olen)
{
    char *o = apr_palloc(unit_pool, len + 1);
    apr_size_t i, n = 0;

    for (i = 0; i < len; ++i) {
        if (s[i] == '\r') {
            o[n++] = '\n';
            i += i + 1 < len && s[i + 1] == '\n';
        }
        else {
            o[n++] = s[i];
        }
    }
    o[n] = '\0';
    *olen = n;
    return o;
}

/* ------------------------------------------------------ the real client */

static void test_client_item(void)
{
    int i;

    for (i = 1; i <= 3; ++i) {
        const char *in = client_item(i), *rfc = client_rfc822(i);
        memds_email_t *e = parse_ok(in, strlen(in));
        apr_time_exp_t xt;
        apr_time_t t;

        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_EQUAL(e->read, MEMDS_EMAIL_FALSE);
        CU_ASSERT_EQUAL(e->forwarded, MEMDS_EMAIL_FALSE);
        CU_ASSERT_EQUAL(e->replied, MEMDS_EMAIL_FALSE);
        CU_ASSERT_EQUAL(e->deleted, MEMDS_EMAIL_FALSE);
        CU_ASSERT_EQUAL(e->flagged, MEMDS_EMAIL_FALSE);
        CU_ASSERT_STRING_EQUAL(e->received.text,
                               apr_psprintf(unit_pool, "20240102T08%02d00Z",
                                            i));
        CU_ASSERT_STRING_EQUAL(e->created.text, e->received.text);
        CU_ASSERT_STRING_EQUAL(e->modified.text, e->received.text);
        CU_ASSERT_FALSE(e->received.floating);
        memset(&xt, 0, sizeof(xt));
        xt.tm_year = 124;
        xt.tm_mday = 2;
        xt.tm_hour = 8;
        xt.tm_min = i;
        CU_ASSERT_EQUAL_FATAL(apr_time_exp_gmt_get(&t, &xt), APR_SUCCESS);
        CU_ASSERT_EQUAL(e->received.t, t);
        /* CR LF inside CDATA is LF to any conforming XML parser;
         * memds_email_crlf restores the client's bytes exactly */
        {
            apr_size_t lflen, n;
            const char *lf = lf_only(rfc, strlen(rfc), &lflen), *c;
            CU_ASSERT(item_is(e, lf, lflen));
            memds_email_crlf(&c, &n, e->item, e->item_len, unit_pool);
            CU_ASSERT(n == strlen(rfc) && memcmp(c, rfc, n) == 0);
        }
        CU_ASSERT(e->item_form & MEMDS_EMAIL_IF_CDATA);
        CU_ASSERT_FALSE(e->item_form
                        & (MEMDS_EMAIL_IF_QP | MEMDS_EMAIL_IF_FNBL_END
                           | MEMDS_EMAIL_IF_ESCAPED));
        CU_ASSERT_FALSE(e->has_truncated);
        CU_ASSERT_PTR_NULL(e->exts);
        CU_ASSERT_FALSE(memds_email_is_flags_only(e));
        CU_ASSERT_FALSE(memds_email_is_truncated(e));
        CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
    }
    /* the build of item 1, exactly */
    {
        const char *in = client_item(1);
        memds_email_t *e = parse_ok(in, strlen(in));
        const char *x;

        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        /* with the line ends restored, as the gateway keeps the mail */
        memds_email_crlf(&e->item, &e->item_len, e->item, e->item_len,
                         unit_pool);
        x = build(e, MEMDS_EMAIL_STYLE_TEXT, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x);
        CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
        CU_ASSERT_STRING_EQUAL(
            x,
            "<Email><read>false</read><forwarded>false"
            "</forwarded><replied>false</replied><received>20240102T080100Z"
            "</received><created>20240102T080100Z</created><modified>"
            "20240102T080100Z</modified><deleted>false</deleted><flagged>false"
            "</flagged><emailitem>From: Corpus Sender "
            "&lt;sender@example.test&gt;"
            "&#13;\nTo: Alice &lt;alice@example.test&gt;&#13;\n"
            "Subject: Corpus mail 1&#13;\n"
            "Date: Tue, 2 Jan 2024 08:01:00 +0000&#13;\nMessage-ID: "
            "&lt;corpus-mail-1@example.test&gt;&#13;\nMIME-Version: 1.0&#13;\n"
            "Content-Type: text/plain; charset=UTF-8&#13;\n&#13;\n"
            "This is corpus mail number 1.&#13;\n"
            "It has a second line &amp; a &lt;tag&gt;.&#13;\n"
            "</emailitem></Email>");
        /* CDATA: the client's own item again (but for the namespace) */
        x = build(e, MEMDS_EMAIL_STYLE_CDATA, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x);
        CU_ASSERT_STRING_EQUAL(x, apr_pstrcat(unit_pool, "<Email>",
                                              strchr(in, '>') + 1, NULL));
        CU_ASSERT_PTR_NOT_NULL(
            strstr(x,
                   apr_pstrcat(unit_pool,
                               "<flagged>false</flagged><emailitem><![CDATA[",
                               client_rfc822(1), "]]></emailitem></Email>",
                               NULL)));
    }
}

/* Collect the email items (Meta Type on the command or the item) of a
 * decoded message, commands nested in Sync too. */
static void collect_email(apr_array_header_t *out,
                          const apr_array_header_t *cmds)
{
    int i, j;

    for (i = 0; cmds && i < cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(cmds, i, memds_cmd_t *);
        for (j = 0; c->items && j < c->items->nelts; ++j) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, j, memds_item_t *);
            const char *type = it->meta && it->meta->type ? it->meta->type
                               : c->meta                  ? c->meta->type
                                                          : NULL;
            if (it->data_kind == MEMDS_DATA_BYTES && type
                && strcmp(type, MEMDS_EMAIL_CTTYPE) == 0) {
                APR_ARRAY_PUSH(out, const memds_item_t *) = it;
            }
        }
        collect_email(out, c->cmds);
    }
}

/* Every Email object in the recorded raw-email sessions (tests/corpus:
 * pkg1/ refused at authentication, mail/ with the Inbox): the client's own
 * items 1..3 as it adds them in its slow syncs over XML and WBXML, its
 * later changes, and the objects the gateway sends down. */
static void test_captures(void)
{
    static const char *const dirs[] = { "pkg1", "mail", NULL };
    /* [0]: over XML, [1]: over WBXML, per client item 1..3 */
    const memds_email_t *seen[2][4];
    int d, files = 0, pkg1_items = 0, server_items = 0, i;

    memset(seen, 0, sizeof(seen));
    for (d = 0; dirs[d]; ++d) {
        const char *dir = apr_pstrcat(unit_pool, CORPUS, dirs[d], NULL);
        apr_dir_t *dh;
        apr_finfo_t fi;

        CU_ASSERT_EQUAL_FATAL(apr_dir_open(&dh, dir, unit_pool), APR_SUCCESS);
        while (apr_dir_read(&fi, APR_FINFO_NAME, dh) == APR_SUCCESS) {
            apr_size_t n = strlen(fi.name), len;
            int wbxml = n > 6 && strcmp(fi.name + n - 6, ".wbxml") == 0;
            int xml = n > 4 && strcmp(fi.name + n - 4, ".xml") == 0
                      && strstr(fi.name, ".decoded.") == NULL;
            int from_server = strstr(fi.name, "-resp.") != NULL;
            int client_adds = !from_server && strstr(fi.name, "-slow-") != NULL;
            apr_array_header_t *items;
            memds_msg_t *m;
            memds_codec_err_t err;
            const char *buf;

            if (strstr(fi.name, "raw-email") == NULL || (!xml && !wbxml)) {
                continue;
            }
            buf = unit_read_file(apr_pstrcat(unit_pool, dir, "/", fi.name,
                                             NULL),
                                 &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
            CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, buf, len, MEMDS_ENC_AUTO,
                                                   &err, unit_pool),
                                  APR_SUCCESS);
            ++files;
            items = apr_array_make(unit_pool, 4, sizeof(memds_item_t *));
            collect_email(items, m->cmds);
            if (d == 0) {
                pkg1_items += items->nelts;
            }
            for (i = 0; i < items->nelts; ++i) {
                const memds_item_t *it = APR_ARRAY_IDX(items, i,
                                                       memds_item_t *);
                memds_email_t *e = parse_ok(it->data.data, it->data.len);
                int k;

                CU_ASSERT_PTR_NOT_NULL_FATAL(e);
                /* text build -> parse: identical, every byte */
                CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
                if (from_server) {
                    /* the gateway writes the object's text escaped, CR as
                     * &#13;, so that any XML parser gives the mail's CR LF
                     * back: exact bytes over both encodings */
                    ++server_items;
                    CU_ASSERT_FATAL(e->has_item);
                    CU_ASSERT_FALSE(e->item_form & MEMDS_EMAIL_IF_CDATA);
                    CU_ASSERT_PTR_NULL(
                        memchr(it->data.data, '\r', it->data.len));
                    CU_ASSERT_PTR_NOT_NULL(memchr(e->item, '\r', e->item_len));
                    continue;
                }
                CU_ASSERT(e->item_form & MEMDS_EMAIL_IF_CDATA);
                /* the client's SyncML Data itself: exact over WBXML, LF over
                 * XML (a raw CR inside its CDATA) */
                CU_ASSERT((memchr(it->data.data, '\r', it->data.len) != NULL)
                          == wbxml);
                if (!client_adds) {
                    continue;
                }
                CU_ASSERT_PTR_NOT_NULL_FATAL(it->source);
                k = it->source->uri[0] - '0';
                CU_ASSERT_FATAL(k >= 1 && k <= 3 && it->source->uri[1] == '\0');
                CU_ASSERT_PTR_NULL(seen[wbxml][k]);
                seen[wbxml][k] = e;
            }
        }
        apr_dir_close(dh);
    }
    /* pkg1 is package #1 only: DevInf, Get, Alert; no item at all */
    CU_ASSERT_EQUAL(pkg1_items, 0);
    CU_ASSERT(files >= CORPUS_RAW_EMAIL_FILES);
    CU_ASSERT(server_items >= CORPUS_SERVER_EMAILS);
    for (i = 1; i <= 3; ++i) {
        const char *rfc = client_rfc822(i), *crlf;
        apr_size_t lflen, crlflen;
        const char *lf = lf_only(rfc, strlen(rfc), &lflen);
        const char *raw = client_item(i);
        memds_email_t *file_e = parse_ok(raw, strlen(raw));

        CU_ASSERT_PTR_NOT_NULL_FATAL(seen[0][i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(seen[1][i]);
        /* Over WBXML the object's bytes arrive exactly (the raw CRLF in the
         * CDATA included), over XML with LF; either way the object is XML,
         * and a conforming parser (ours) makes CR LF inside CDATA into LF:
         * both give the same object, the one of the client's file too. */
        CU_ASSERT(item_is(seen[0][i], lf, lflen));
        CU_ASSERT(memds_email_equal(seen[0][i], seen[1][i]));
        CU_ASSERT(memds_email_equal(seen[0][i], file_e));
        CU_ASSERT_PTR_NULL(
            memchr(seen[0][i]->item, '\r', seen[0][i]->item_len));
        /* memds_email_crlf gives IMAP/SMTP the client's bytes back */
        memds_email_crlf(&crlf, &crlflen, seen[1][i]->item,
                         seen[1][i]->item_len, unit_pool);
        CU_ASSERT(crlflen == strlen(rfc) && memcmp(crlf, rfc, crlflen) == 0);
    }
}

/* Our builds inside a real SyncML message (the client's), through both
 * wire encodings of the SyncML codec: TEXT keeps every byte (CR as &#13;)
 * over both; in CDATA a CR cannot survive an XML parser, whichever wire
 * encoding carried the object. */
static void test_through_syncml(void)
{
    apr_size_t len, xlen;
    const char *in = unit_read_file(
        CORPUS "mail/xml-basic-raw-email-inbox-slow-002-req.xml", &len);
    memds_msg_t *m;
    memds_codec_err_t err;
    apr_array_header_t *items = apr_array_make(unit_pool, 4,
                                               sizeof(memds_item_t *));
    memds_item_t *it;
    memds_email_t *e = memds_email_make(unit_pool);
    static const char rfc[] = "From: a@example.org\r\nSubject: x ]]> y\r\n"
                              "\r\nline\rbare CR & <tags>\r\n";
    int style, enc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, in, len, MEMDS_ENC_XML, &err,
                                           unit_pool),
                          APR_SUCCESS);
    collect_email(items, m->cmds);
    CU_ASSERT_EQUAL_FATAL(items->nelts, 3);
    it = APR_ARRAY_IDX(items, 0, memds_item_t *);
    e->read = MEMDS_EMAIL_TRUE;
    e->has_item = 1;
    e->item = rfc;
    e->item_len = sizeof(rfc) - 1;
    for (style = 0; style < 2; ++style) {
        const char *obj = build(e, (memds_email_style_e)style, &xlen);
        CU_ASSERT_PTR_NOT_NULL_FATAL(obj);
        it->data.data = obj;
        it->data.len = xlen;
        for (enc = MEMDS_ENC_XML; enc <= MEMDS_ENC_WBXML; ++enc) {
            memds_buf_t b;
            memds_msg_t *m2;
            apr_array_header_t *items2 = apr_array_make(unit_pool, 4,
                                                        sizeof(memds_item_t *));
            const memds_item_t *it2;
            memds_email_t *e2;

            memds_buf_init(&b, 0, unit_pool);
            CU_ASSERT_EQUAL_FATAL(memds_msg_encode(&b, m, (memds_enc_e)enc,
                                                   &err, unit_pool),
                                  APR_SUCCESS);
            CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m2, b.data, b.len,
                                                   (memds_enc_e)enc, &err,
                                                   unit_pool),
                                  APR_SUCCESS);
            collect_email(items2, m2->cmds);
            CU_ASSERT_EQUAL_FATAL(items2->nelts, 3);
            it2 = APR_ARRAY_IDX(items2, 0, memds_item_t *);
            e2 = parse_ok(it2->data.data, it2->data.len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(e2);
            if (style == MEMDS_EMAIL_STYLE_TEXT) {
                ITEM_IS(e2, rfc);
            }
            else {
                ITEM_IS(e2, "From: a@example.org\nSubject: x ]]> y\n\nline\n"
                            "bare CR & <tags>\n");
            }
            CU_ASSERT_EQUAL(e2->read, MEMDS_EMAIL_TRUE);
        }
    }
}

/* ------------------------------------------------------------ round trips */

static memds_email_t *full_email(void)
{
    static const char *const vals[] = { "1", "" };
    memds_email_t *e = memds_email_make(unit_pool);

    e->read = MEMDS_EMAIL_TRUE;
    e->forwarded = MEMDS_EMAIL_FALSE;
    CU_ASSERT_EQUAL(memds_email_time_parse(&e->received, "20240131T083000Z", 16,
                                           unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(memds_email_time_parse(&e->modified, "2024-01-31T09:30:00",
                                           19, unit_pool),
                    APR_SUCCESS);
    e->deleted = MEMDS_EMAIL_FALSE;
    e->flagged = MEMDS_EMAIL_TRUE;
    e->has_item = 1;
    e->item = "A&B <x>\r\n]]>\tz";
    e->item_len = strlen(e->item);
    memds_email_add_tbody(e, 48213, "text/plain", unit_pool);
    memds_email_add_tattach(e, "report.pdf", 1203311, "application/pdf",
                            unit_pool);
    memds_email_ext_add(&e->exts, "x-foo", vals, 2, unit_pool);
    return e;
}

static void test_build_order(void)
{
    memds_email_t *e = full_email();
    const char *x;

    x = build(e, MEMDS_EMAIL_STYLE_TEXT, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_STRING_EQUAL(
        x, "<Email><read>true</read><forwarded>false"
           "</forwarded><received>20240131T083000Z</received><modified>"
           "20240131T093000</modified><deleted>false</deleted><flagged>true"
           "</flagged><emailitem>A&amp;B &lt;x&gt;&#13;\n]]&gt;\tz</emailitem>"
           "<truncated><body><size>48213</size><type>text/plain</type></body>"
           "<attach><name>report.pdf</name><size>1203311</size><type>"
           "application/pdf</type></attach></truncated><Ext><XNam>x-foo</XNam>"
           "<XVal>1</XVal><XVal/></Ext></Email>");
    x = build(e, MEMDS_EMAIL_STYLE_CDATA, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        x, "<flagged>true</flagged><emailitem>"
           "<![CDATA[A&B <x>\r\n]]]]><![CDATA[>\tz]]></emailitem><truncated>"));
    /* an empty object and an empty item */
    {
        memds_email_t *z = memds_email_make(unit_pool);
        x = build(z, MEMDS_EMAIL_STYLE_TEXT, NULL);
        CU_ASSERT_STRING_EQUAL(x, "<Email></Email>");
        z->has_item = 1;
        x = build(z, MEMDS_EMAIL_STYLE_TEXT, NULL);
        CU_ASSERT_STRING_EQUAL(x, "<Email><emailitem></emailitem></Email>");
        CU_ASSERT(round_trips(z, MEMDS_EMAIL_STYLE_TEXT));
        CU_ASSERT(round_trips(z, MEMDS_EMAIL_STYLE_CDATA));
    }
}

static void test_round_trips(void)
{
    memds_email_t *e = full_email(), *e2;
    const char *x;
    apr_size_t len;
    /* every ASCII byte XML can carry, CR/LF combinations, UTF-8 up to 4
     * bytes, "]]>" at the start, the end and twice in a row */
    char item[512];
    apr_size_t n = 0;
    int c;

    CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
    memcpy(item + n, "]]>", 3);
    n += 3;
    for (c = 1; c < 0x80; ++c) {
        if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r') {
            item[n++] = (char)c;
        }
    }
    {
        static const char tail[] = "\r\r\n\n\r\xc3\xa9\xe2\x82\xac\xf0\x9f\x98"
                                   "\x80]]>]]>]]]>>";
        memcpy(item + n, tail, sizeof(tail) - 1);
        n += sizeof(tail) - 1;
    }
    e->item = item;
    e->item_len = n;
    CU_ASSERT(memds_email_item_xml_safe(item, n, NULL));
    CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
    /* CDATA: the same bytes with XML's end-of-line handling applied */
    x = build(e, MEMDS_EMAIL_STYLE_CDATA, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    e2 = parse_ok(x, len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e2);
    {
        apr_size_t lflen;
        const char *lf = lf_only(item, n, &lflen);
        CU_ASSERT(item_is(e2, lf, lflen));
    }
    /* whole objects without item, with floating and offset dates */
    e->has_item = 0;
    CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
    CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_CDATA));
    /* equality notices differences */
    e2 = full_email();
    CU_ASSERT_FALSE(memds_email_equal(e, e2));
    e2->has_item = 0;
    CU_ASSERT(memds_email_equal(e, e2));
    e2->replied = MEMDS_EMAIL_FALSE;
    CU_ASSERT_FALSE(memds_email_equal(e, e2));
}

/* The email object of a text item, escaped byte by byte (the reference). */
static void escaped_ref(memds_buf_t *ref, const char *item, apr_size_t n)
{
    apr_size_t i;

    memds_buf_init(ref, 0, unit_pool);
    memds_buf_addstr(ref, "<Email><emailitem>");
    for (i = 0; i < n; ++i) {
        switch (item[i]) {
        case '&': memds_buf_addstr(ref, "&amp;"); break;
        case '<': memds_buf_addstr(ref, "&lt;"); break;
        case '>': memds_buf_addstr(ref, "&gt;"); break;
        case '\r': memds_buf_addstr(ref, "&#13;"); break;
        default: memds_buf_addc(ref, item[i]); break;
        }
    }
    memds_buf_addstr(ref, "</emailitem></Email>");
}

/* The emailitem's escaping looks at eight bytes at a time: every special
 * byte at every position of a word, runs of them, and long plain runs,
 * against a byte-by-byte reference. */
static void test_escape_words(void)
{
    static const char specials[] = "&<>\r";
    memds_email_t *e = memds_email_make(unit_pool);
    char item[700];
    apr_size_t n, i;
    int k, pos;

    e->has_item = 1;
    for (k = 0; k < 4; ++k) {
        for (pos = 0; pos < 24; ++pos) {
            memds_buf_t ref;
            const char *x;
            apr_size_t len;
            n = 0;
            for (i = 0; i < 40; ++i) {
                item[n++] = (char)('a' + (int)(i % 26));
            }
            item[pos] = specials[k];
            item[pos + 9] = specials[(k + 1) % 4];
            item[pos + 10] = specials[(k + 2) % 4];
            item[n++] = '\n';
            for (i = 0; i < 600; ++i) { /* a long line, then one more */
                item[n++] = i % 97 == 96 ? specials[(i / 97) % 4] : 'x';
            }
            e->item = item;
            e->item_len = n;
            x = build(e, MEMDS_EMAIL_STYLE_TEXT, &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(x);
            escaped_ref(&ref, item, n);
            CU_ASSERT_EQUAL(len, ref.len);
            CU_ASSERT(len == ref.len && memcmp(x, ref.data, len) == 0);
            CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
        }
    }
}

/* Text the caller did not check (item_checked 0) is checked while it is
 * escaped, eight bytes at a time: UTF-8 of every length, TAB and LF at
 * every position of a word go through as they are; a byte XML cannot carry
 * fails the build at every position, named with its offset. */
static void test_escape_checks(void)
{
    static const char *const good[] = { "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80", "\t", "\n" };
    static const struct {
        const char *bytes, *what;
    } bad[] = { { "\x01", "byte 0x01" },
                { "\x1f", "byte 0x1F" },
                { "\xc3\x28", "invalid UTF-8 (byte 0xC3)" },
                { "\xff", "invalid UTF-8 (byte 0xFF)" },
                { "\xef\xbf\xbe", "U+FFFE" } };
    static const char tail[] = "0123456789&abcdefghij\r\nklmnopqrstuvwxyz";
    memds_email_t *e = memds_email_make(unit_pool);
    char item[128];
    apr_size_t n, i, k;
    int pos;

    e->has_item = 1;
    e->item_checked = 0;
    for (pos = 0; pos < 24; ++pos) {
        for (k = 0; k < sizeof(good) / sizeof(good[0]); ++k) {
            memds_buf_t ref;
            const char *x;
            apr_size_t len;
            n = 0;
            for (i = 0; i < (apr_size_t)pos; ++i) {
                item[n++] = (char)('a' + (int)(i % 26));
            }
            memcpy(item + n, good[k], strlen(good[k]));
            n += strlen(good[k]);
            memcpy(item + n, tail, strlen(tail));
            n += strlen(tail);
            e->item = item;
            e->item_len = n;
            x = build(e, MEMDS_EMAIL_STYLE_TEXT, &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(x);
            escaped_ref(&ref, item, n);
            CU_ASSERT(len == ref.len && memcmp(x, ref.data, len) == 0);
        }
        for (k = 0; k < sizeof(bad) / sizeof(bad[0]); ++k) {
            memds_buf_t b;
            memds_codec_err_t err;
            const char *want = apr_psprintf(unit_pool, "%s at offset %d",
                                            bad[k].what, pos);
            n = 0;
            for (i = 0; i < (apr_size_t)pos; ++i) {
                item[n++] = (char)('a' + (int)(i % 26));
            }
            memcpy(item + n, bad[k].bytes, strlen(bad[k].bytes));
            n += strlen(bad[k].bytes);
            memcpy(item + n, tail + 11, strlen(tail + 11));
            n += strlen(tail + 11);
            e->item = item;
            e->item_len = n;
            memds_buf_init(&b, 0, unit_pool);
            memset(&err, 0, sizeof(err));
            CU_ASSERT_EQUAL(memds_email_build(&b, e, MEMDS_EMAIL_STYLE_TEXT,
                                              &err, unit_pool),
                            APR_EINVAL);
            CU_ASSERT(err.msg && strstr(err.msg, want));
        }
    }
}

/* ------------------------------------------------------------- variants */

static void test_nokia_variants(void)
{
    memds_email_t *e;

    /* Nokia's split of an inner "]]>" */
    e = PARSE("<Email><emailitem><![CDATA[a]]]]>&gt;<![CDATA[b]]></emailitem>"
              "</Email>");
    ITEM_IS(e, "a]]>b");
    /* libsynthesis' split, as in the captures: close, "]", reopen "]>" */
    e = PARSE("<Email><emailitem><![CDATA[a]]>]<![CDATA[]>b]]></emailitem>"
              "</Email>");
    ITEM_IS(e, "a]]>b");
    /* pretty-printed: blanks outside the CDATA are layout */
    e = PARSE("<Email>\n  <read>1</read>\n  <emailitem>\n    <![CDATA[x\r\ny]]>"
              "\n  </emailitem>\n</Email>\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->read, MEMDS_EMAIL_TRUE);
    ITEM_IS(e, "x\ny");
    /* escaped text is exact, blanks included; &#13; is a CR */
    e = PARSE(
        "<Email><emailitem>  a&#13;\nb &amp; &lt;c&gt; </emailitem></Email>");
    ITEM_IS(e, "  a\r\nb & <c> ");
    CU_ASSERT_FALSE(e->item_form & MEMDS_EMAIL_IF_CDATA);
    /* any order, any case, empty booleans are false, 1/0 */
    e = PARSE("<email><Flagged>TRUE</Flagged><emailitem/><READ/><replied>0"
              "</replied><forwarded></forwarded><Received>2024-01-31T08:30:00Z"
              "</Received><deleted> 1 </deleted><!-- c --><?pi x?></email>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->flagged, MEMDS_EMAIL_TRUE);
    CU_ASSERT_EQUAL(e->read, MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(e->replied, MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(e->forwarded, MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(e->deleted, MEMDS_EMAIL_TRUE);
    CU_ASSERT_STRING_EQUAL(e->received.text, "20240131T083000Z");
    ITEM_IS(e, "");
    /* the Nokia order comes back out */
    CU_ASSERT_STRING_EQUAL(
        build(e, MEMDS_EMAIL_STYLE_TEXT, NULL),
        "<Email><read>false</read><forwarded>false</forwarded><replied>false"
        "</replied><received>20240131T083000Z</received><deleted>true"
        "</deleted><flagged>true</flagged><emailitem></emailitem></Email>");
    /* namespaces: none, syncml:email (any case), prefixed; an XML
     * declaration and leading blanks */
    CU_ASSERT_PTR_NOT_NULL(PARSE("<Email xmlns='SYNCML:EMAIL'><read>true</read>"
                                 "</Email>"));
    CU_ASSERT_PTR_NOT_NULL(PARSE("<e:Email xmlns:e='syncml:email'><e:read>true"
                                 "</e:read><flagged/></e:Email>"));
    CU_ASSERT_PTR_NOT_NULL(PARSE("\r\n <?xml version='1.0' encoding='UTF-8'?>"
                                 "<Email/>"));
    /* an empty date is absent; unknown attributes are ignored */
    e = PARSE("<Email><received/><read foo='bar'>true</read></Email>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NULL(e->received.text);
    CU_ASSERT_FALSE(e->has_item);
}

static void test_funambol_variants(void)
{
    memds_email_t *e;
    static const char qp[] =
        "<Email><emailitem ENC=\"Quoted-Printable\">"
        "<![CDATA[Subject: caf=C3=A9\r\n\r\nline one is lo=\r\nng=3D=\n"
        " soft=  \r\nx=4\r\n=zz end=]]></emailitem></Email>";

    /* enc="quoted-printable": decoded (after XML end-of-line handling) */
    e = parse_ok(qp, sizeof(qp) - 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    ITEM_IS(e, "Subject: caf\xc3\xa9\n\nline one is long= softx=4\n=zz end");
    CU_ASSERT(e->item_form & MEMDS_EMAIL_IF_QP);
    e = PARSE("<Email><emailitem enc='8bit'>x</emailitem></Email>");
    ITEM_IS(e, "x");
    CU_ASSERT_FALSE(e->item_form & MEMDS_EMAIL_IF_QP);
    /* the C++ client's "]]&gt;" closing an unterminated CDATA section */
    e = PARSE(
        "<Email><read>false</read><emailitem><![CDATA[From: a@b\r\n\r\n"
        "hi <there>\r\n]]&gt;\n</emailitem><flagged>true</flagged></Email>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    ITEM_IS(e, "From: a@b\n\nhi <there>\n");
    CU_ASSERT(e->item_form & MEMDS_EMAIL_IF_FNBL_END);
    CU_ASSERT_EQUAL(e->flagged, MEMDS_EMAIL_TRUE);
    /* ... and as the tail of a closed section */
    e = PARSE("<Email><emailitem><![CDATA[From: a@b\n\nhi]]&gt; ]]></emailitem>"
              "</Email>");
    ITEM_IS(e, "From: a@b\n\nhi");
    CU_ASSERT(e->item_form & MEMDS_EMAIL_IF_FNBL_END);
    /* not in escaped text (that is the item's own content) */
    e = PARSE("<Email><emailitem>a]]&amp;gt;</emailitem></Email>");
    ITEM_IS(e, "a]]&gt;");
    /* the whole object escaped once more */
    e = PARSE("&lt;Email&gt;&lt;read&gt;true&lt;/read&gt;&lt;emailitem&gt;"
              "a &amp;amp; b&amp;#13;&#10;&lt;/emailitem&gt;&lt;/Email&gt;");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->read, MEMDS_EMAIL_TRUE);
    ITEM_IS(e, "a & b\r\n");
    CU_ASSERT(e->item_form & MEMDS_EMAIL_IF_ESCAPED);
    /* server style inside a SyncML XML message: the object in an outer
     * CDATA, the C++ client's inner end marker */
    {
        static const char msg[] =
            "<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr>"
            "<VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto><SessionID>1"
            "</SessionID><MsgID>2</MsgID><Target><LocURI>http://s/</LocURI>"
            "</Target><Source><LocURI>fnbl</LocURI></Source></"
            "SyncHdr><SyncBody>"
            "<Sync><CmdID>1</CmdID><Target><LocURI>mail</LocURI></Target><Add>"
            "<CmdID>2</CmdID><Meta><Type xmlns='syncml:metinf'>"
            "application/vnd.omads-email+xml</Type></"
            "Meta><Item><Source><LocURI>"
            "O/12</LocURI></Source><Data><![CDATA[<Email><read>true</read>"
            "<emailitem><![CDATA[From: a@b\r\n\r\nhi\r\n]]&gt;</emailitem>"
            "</Email>]]></Data></Item></Add></Sync><Final/></SyncBody></"
            "SyncML>";
        memds_msg_t *m;
        memds_codec_err_t err;
        apr_array_header_t *items = apr_array_make(unit_pool, 1,
                                                   sizeof(memds_item_t *));
        const memds_item_t *it;

        CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, msg, sizeof(msg) - 1,
                                               MEMDS_ENC_XML, &err, unit_pool),
                              APR_SUCCESS);
        collect_email(items, m->cmds);
        CU_ASSERT_EQUAL_FATAL(items->nelts, 1);
        it = APR_ARRAY_IDX(items, 0, memds_item_t *);
        e = parse_ok(it->data.data, it->data.len);
        ITEM_IS(e, "From: a@b\n\nhi\n");
    }
}

static void test_flags_only(void)
{
    memds_email_t *e = PARSE("<Email><read>true</read><flagged>false</flagged>"
                             "</Email>");
    const char *x;

    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT(memds_email_is_flags_only(e));
    CU_ASSERT_FALSE(e->has_item);
    CU_ASSERT_PTR_NULL(e->item);
    CU_ASSERT_EQUAL(e->replied, MEMDS_EMAIL_ABSENT);
    x = build(e, MEMDS_EMAIL_STYLE_TEXT, NULL);
    CU_ASSERT_STRING_EQUAL(x, "<Email><read>true</read><flagged>false</flagged>"
                              "</Email>");
    CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_CDATA));
    /* an empty emailitem is an (empty) item, not a flags-only update */
    e = PARSE("<Email><emailitem></emailitem></Email>");
    CU_ASSERT_FALSE(memds_email_is_flags_only(e));
}

/* ------------------------------------------------------------ truncation */

static void test_truncation(void)
{
    memds_email_t *e;
    const memds_email_tbody_t *b;
    const memds_email_attach_t *a;
    const char *x;

    /* (a) OMA <truncated>, children in any order, fields optional */
    e = PARSE(
        "<Email><truncated><attach><type>application/pdf</type><size>"
        "1203311</size><name> report.pdf </name></attach><body><size>48213"
        "</size><type>text/plain</type></body><attach/><body><type>"
        "text/html</type></body></truncated></Email>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT(e->has_truncated);
    CU_ASSERT(memds_email_is_truncated(e));
    CU_ASSERT_EQUAL_FATAL(e->trunc_body->nelts, 2);
    CU_ASSERT_EQUAL_FATAL(e->trunc_attach->nelts, 2);
    b = APR_ARRAY_IDX(e->trunc_body, 0, memds_email_tbody_t *);
    CU_ASSERT_EQUAL(b->size, 48213);
    CU_ASSERT_STRING_EQUAL(b->type, "text/plain");
    b = APR_ARRAY_IDX(e->trunc_body, 1, memds_email_tbody_t *);
    CU_ASSERT_EQUAL(b->size, MEMDS_EMAIL_NOSIZE);
    a = APR_ARRAY_IDX(e->trunc_attach, 0, memds_email_attach_t *);
    CU_ASSERT_STRING_EQUAL(a->name, "report.pdf");
    CU_ASSERT_EQUAL(a->size, 1203311);
    CU_ASSERT_STRING_EQUAL(a->type, "application/pdf");
    a = APR_ARRAY_IDX(e->trunc_attach, 1, memds_email_attach_t *);
    CU_ASSERT_PTR_NULL(a->name);
    CU_ASSERT_EQUAL(a->size, MEMDS_EMAIL_NOSIZE);
    /* built: bodies before attachments, empty entries as <x/> */
    x = build(e, MEMDS_EMAIL_STYLE_TEXT, NULL);
    CU_ASSERT_STRING_EQUAL(
        x, "<Email><truncated><body><size>48213</size><type>"
           "text/plain</type></body><body><type>text/html</type></body><attach>"
           "<name>report.pdf</name><size>1203311</size><type>application/pdf"
           "</type></attach><attach/></truncated></Email>");
    CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
    /* an empty <truncated/> is kept, but says nothing is missing */
    e = PARSE("<Email><truncated/></Email>");
    CU_ASSERT(e->has_truncated);
    CU_ASSERT_FALSE(memds_email_is_truncated(e));
    CU_ASSERT_STRING_EQUAL(build(e, MEMDS_EMAIL_STYLE_TEXT, NULL),
                           "<Email><truncated/></Email>");
    /* a huge size */
    e = PARSE("<Email><truncated><body><size>9223372036854775807</size></body>"
              "</truncated></Email>");
    CU_ASSERT_EQUAL(APR_ARRAY_IDX(e->trunc_body, 0, memds_email_tbody_t *)
                        ->size,
                    APR_INT64_MAX);
    FAILS("<Email><truncated><body><size>9223372036854775808</size></body>"
          "</truncated></Email>",
          "is not a byte count");

    /* (b) Funambol's Exts, recognised as data and kept as Exts */
    e = PARSE(
        "<Email><emailitem><![CDATA[From: a@b\r\n\r\nfirst 2 KB]]>"
        "</emailitem><Ext><XNam>x-funambol-size</XNam><XVal>52000</XVal>"
        "</Ext><Ext><XNam>x-funambol-body</XNam><XVal> 48000 </XVal></Ext>"
        "<Ext><XNam>X-Funambol-Attach-N</XNam><XVal>1</XVal></Ext><Ext>"
        "<XNam>x-funambol-attach</XNam><XVal>=?UTF-8?Q?r=C3=A9port.pdf?="
        "</XVal><XVal>1203311</XVal><XVal>application/pdf</XVal><XVal>"
        "http://h/cp?AUTH=t&amp;USER=u&amp;INDEX=1</XVal></Ext><Ext><XNam>"
        "x-funambol-attach</XNam><XVal>b.txt</XVal></Ext></Email>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->fnbl.size, 52000);
    CU_ASSERT_EQUAL(e->fnbl.body_left, 48000);
    CU_ASSERT_EQUAL(e->fnbl.attach_n, 1);
    CU_ASSERT_EQUAL_FATAL(e->fnbl.attach->nelts, 2);
    a = APR_ARRAY_IDX(e->fnbl.attach, 0, memds_email_attach_t *);
    CU_ASSERT_STRING_EQUAL(a->name, "=?UTF-8?Q?r=C3=A9port.pdf?=");
    CU_ASSERT_EQUAL(a->size, 1203311);
    CU_ASSERT_STRING_EQUAL(a->type, "application/pdf");
    CU_ASSERT_STRING_EQUAL(a->url, "http://h/cp?AUTH=t&USER=u&INDEX=1");
    a = APR_ARRAY_IDX(e->fnbl.attach, 1, memds_email_attach_t *);
    CU_ASSERT_STRING_EQUAL(a->name, "b.txt");
    CU_ASSERT_EQUAL(a->size, MEMDS_EMAIL_NOSIZE);
    CU_ASSERT_PTR_NULL(a->type);
    CU_ASSERT_PTR_NULL(a->url);
    CU_ASSERT_FALSE(e->has_truncated);
    CU_ASSERT(memds_email_is_truncated(e));
    CU_ASSERT_EQUAL(e->exts->nelts, 5);
    CU_ASSERT_PTR_NOT_NULL(memds_email_ext_find(e->exts, "X-FUNAMBOL-SIZE"));
    CU_ASSERT_PTR_NULL(memds_email_ext_find(e->exts, "x-funambol"));
    CU_ASSERT(round_trips(e, MEMDS_EMAIL_STYLE_TEXT));
    /* Exts with odd values are kept, just not recognised */
    e = PARSE("<Email><Ext><XNam>x-funambol-size</XNam><XVal>lots</XVal></Ext>"
              "<Ext><XNam>x-funambol-body</XNam></Ext></Email>");
    CU_ASSERT_EQUAL(e->fnbl.size, MEMDS_EMAIL_NOSIZE);
    CU_ASSERT_EQUAL(e->fnbl.body_left, MEMDS_EMAIL_NOSIZE);
    CU_ASSERT_EQUAL(e->exts->nelts, 2);
    CU_ASSERT_FALSE(memds_email_is_truncated(e));
    /* built by hand, as a server would for a Funambol client */
    {
        static const char *const v[] = { "52000" };
        memds_email_t *f = memds_email_make(unit_pool);
        memds_email_ext_add(&f->exts, "x-funambol-size", v, 1, unit_pool);
        CU_ASSERT_STRING_EQUAL(
            build(f, MEMDS_EMAIL_STYLE_TEXT, NULL),
            "<Email><Ext><XNam>x-funambol-size</XNam><XVal>52000</XVal></Ext>"
            "</Email>");
    }
}

static void test_sync_limit(void)
{
    apr_int64_t v = 0;
    static const char m1[] = "From: a\r\nX-Sync-Message-Limit: 2048\r\n"
                             "Subject: x\r\n\r\nbody";
    static const char m2[] = "x-sync-message-limit:-1\n\nbody";
    static const char m3[] =
        "Subject: s\r\nX-Sync-Message-Limit :\r\n 51\r\n\t2"
        "\r\nTo: b\r\n\r\n";
    static const char m4[] = "From: a\r\n\r\nX-Sync-Message-Limit: 5\r\n";
    static const char m5[] = "X-Sync-Message-Limit: abc\r\n\r\n";
    static const char m6[] = "X-Sync-Message-Limit: -2\r\n\r\n";
    static const char m7[] = "X-Sync-Message-Limits: 3\r\n\r\n";
    static const char m8[] = "X-Sync-Message-Limit: 77";

    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m1, sizeof(m1) - 1),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 2048);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m2, sizeof(m2) - 1),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(v, -1);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m3, sizeof(m3) - 1),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 512);
    v = 9;
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m4, sizeof(m4) - 1),
                    APR_NOTFOUND);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m5, sizeof(m5) - 1), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m6, sizeof(m6) - 1), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m7, sizeof(m7) - 1),
                    APR_NOTFOUND);
    CU_ASSERT_EQUAL(v, 9);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, m8, sizeof(m8) - 1),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 77);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, "", 0), APR_NOTFOUND);
    CU_ASSERT_EQUAL(memds_email_sync_limit(&v, NULL, 0), APR_NOTFOUND);
}

/* What a device sends back as its copy of a mail (issue 11 item 5). */
static void test_device_copy(void)
{
    static const char whole[] = "<Email><read>true</read><emailitem>From: a"
                                "\r\n\r\nbody</emailitem></Email>";
    static const char empty_tr[] = "<Email><emailitem>From: a\r\n\r\nbo"
                                   "</emailitem><truncated/></Email>";
    static const char body_tr[] =
        "<Email><emailitem>From: a\r\n\r\nbo</emailitem><truncated><body>"
        "<size>40000</size><type>text/plain</type></body></truncated></Email>";
    static const char fnbl[] =
        "<Email><emailitem>From: a\r\n\r\nbo</emailitem><Ext><XNam>"
        "x-funambol-body</XNam><XVal>0</XVal></Ext></Email>";
    static const char fnbl_size[] =
        "<Email><emailitem>From: a\r\n\r\nbody</emailitem><Ext><XNam>"
        "x-funambol-size</XNam><XVal>12</XVal></Ext></Email>";
    static const char lim[] = "From: a\r\nX-Sync-Message-Limit: 2048\r\n"
                              "\r\nbo";
    static const char lim_all[] = "From: a\r\nX-Sync-Message-Limit: -1\r\n"
                                  "\r\nbody";
    static const char lim_bad[] = "From: a\r\nX-Sync-Message-Limit: x\r\n"
                                  "\r\nbody";
    memds_email_t *e;

    e = parse_ok(whole, sizeof(whole) - 1);
    CU_ASSERT_FALSE(memds_email_is_device_copy(e, e->item, e->item_len));
    e = parse_ok(empty_tr, sizeof(empty_tr) - 1);
    CU_ASSERT(memds_email_is_device_copy(e, e->item, e->item_len));
    e = parse_ok(body_tr, sizeof(body_tr) - 1);
    CU_ASSERT(memds_email_is_device_copy(e, e->item, e->item_len));
    e = parse_ok(fnbl, sizeof(fnbl) - 1);
    CU_ASSERT(memds_email_is_device_copy(e, e->item, e->item_len));
    e = parse_ok(fnbl_size, sizeof(fnbl_size) - 1);
    CU_ASSERT_FALSE(memds_email_is_device_copy(e, e->item, e->item_len));
    CU_ASSERT(memds_email_is_device_copy(NULL, lim, sizeof(lim) - 1));
    CU_ASSERT_FALSE(
        memds_email_is_device_copy(NULL, lim_all, sizeof(lim_all) - 1));
    CU_ASSERT(memds_email_is_device_copy(NULL, lim_bad, sizeof(lim_bad) - 1));
    CU_ASSERT_FALSE(memds_email_is_device_copy(NULL, NULL, 0));
}

/* ------------------------------------------------------------ date-times */

static void test_times(void)
{
    memds_email_time_t dt;
    apr_time_exp_t xt;
    apr_time_t t;
    apr_pool_t *sub;
    static const char *const bad[] = { "",
                                       "2024",
                                       "20240230T000000Z",
                                       "20230229T000000Z",
                                       "20240131T240000Z",
                                       "20240131T236000Z",
                                       "20240131T235960Z",
                                       "2024013T083000Z",
                                       "20240131 083000Z",
                                       "20240131T083000ZZ",
                                       "00000101T000000Z",
                                       "99991231T235959-0100",
                                       "20240131T083000+2400",
                                       "20240131T083000.Z",
                                       "+2024-01-31T08:30:00Z",
                                       "20240131T0830Z",
                                       "2024\xef\xbc\x90"
                                       "0131T083000Z",
                                       NULL };
    int i;

    memset(&xt, 0, sizeof(xt));
    xt.tm_year = 124;
    xt.tm_mday = 31;
    xt.tm_hour = 8;
    xt.tm_min = 30;
    CU_ASSERT_EQUAL_FATAL(apr_time_exp_gmt_get(&t, &xt), APR_SUCCESS);
#define TP(s) memds_email_time_parse(&dt, (s), strlen(s), unit_pool)
    CU_ASSERT_EQUAL(TP("20240131T083000Z"), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "20240131T083000Z");
    CU_ASSERT_EQUAL(dt.t, t);
    CU_ASSERT_FALSE(dt.floating);
    CU_ASSERT_EQUAL(TP(" 2024-01-31T08:30:00.123z\n"), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "20240131T083000Z");
    CU_ASSERT_EQUAL(dt.t, t);
    CU_ASSERT_EQUAL(TP("2024-01-31T09:30:00+01:00"), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "20240131T083000Z");
    CU_ASSERT_EQUAL(dt.t, t);
    CU_ASSERT_EQUAL(TP("20240131T043000-0400"), APR_SUCCESS);
    CU_ASSERT_EQUAL(dt.t, t);
    CU_ASSERT_EQUAL(TP("20240101T003000+0100"), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "20231231T233000Z");
    /* floating: kept floating, the wall clock read as UTC */
    CU_ASSERT_EQUAL(TP("20240131t083000"), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "20240131T083000");
    CU_ASSERT(dt.floating);
    CU_ASSERT_EQUAL(dt.t, t);
    CU_ASSERT_EQUAL(TP("20240229T235959Z"), APR_SUCCESS);
    CU_ASSERT_EQUAL(TP("00010101T000000Z"), APR_SUCCESS);
    CU_ASSERT_EQUAL(TP("99991231T235959Z"), APR_SUCCESS);
    CU_ASSERT_EQUAL(TP("19000101T000000Z"), APR_SUCCESS);
    CU_ASSERT(dt.t < 0);
    dt.text = "untouched";
    for (i = 0; bad[i]; ++i) {
        if (TP(bad[i]) != APR_EINVAL) {
            fprintf(stderr, "\n  accepted '%s'\n", bad[i]);
            CU_FAIL("bad date-time accepted");
        }
    }
    CU_ASSERT_STRING_EQUAL(dt.text, "untouched");
    CU_ASSERT_EQUAL(memds_email_time_parse(&dt, NULL, 0, unit_pool),
                    APR_EINVAL);
#undef TP
    /* set */
    CU_ASSERT_EQUAL(memds_email_time_set(&dt, 0, unit_pool), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "19700101T000000Z");
    CU_ASSERT_EQUAL(memds_email_time_set(&dt, -1, unit_pool), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "19691231T235959Z");
    CU_ASSERT_EQUAL(dt.t, -APR_USEC_PER_SEC);
    CU_ASSERT_EQUAL(memds_email_time_set(&dt, t + 999999, unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(dt.text, "20240131T083000Z");
    CU_ASSERT_EQUAL(dt.t, t);
    CU_ASSERT_EQUAL(memds_email_time_set(&dt, APR_INT64_MAX, unit_pool),
                    APR_EINVAL);
    CU_ASSERT_EQUAL(memds_email_time_set(&dt, APR_INT64_MIN, unit_pool),
                    APR_EINVAL);
    /* every day of 400 years goes around */
    apr_pool_create(&sub, unit_pool);
    for (i = 0; i < 146097; i += 1) {
        apr_time_t ti = ((apr_time_t)i * 86400 - (apr_time_t)60 * 365 * 86400)
                            * APR_USEC_PER_SEC
                        + (apr_time_t)(i % 86400) * APR_USEC_PER_SEC;
        memds_email_time_t a, b;
        if (memds_email_time_set(&a, ti, sub) != APR_SUCCESS
            || memds_email_time_parse(&b, a.text, strlen(a.text), sub)
                   != APR_SUCCESS
            || b.t != ti || strcmp(a.text, b.text) != 0) {
            CU_FAIL("date round trip");
            break;
        }
        apr_pool_clear(sub);
    }
    apr_pool_destroy(sub);
}

/* --------------------------------------------------------------- folders */

static void test_folders(void)
{
    static const char *const vals[] = { "alice@example.org" };
    memds_folder_t *f, *f2;
    const char *x;

    f = fparse_ok(
        "<Folder><name>Inbox</name><created>20050101T000000Z</created>"
        "<role>inbox</role></Folder>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(f->name, "Inbox");
    CU_ASSERT_STRING_EQUAL(f->created.text, "20050101T000000Z");
    CU_ASSERT_EQUAL(f->role_id, MEMDS_FOLDER_ROLE_INBOX);
    CU_ASSERT_FALSE(f->has_attributes);
    /* any order, namespace, Funambol client's "e", name exact */
    f = fparse_ok(
        "<Folder xmlns='syncml:folder'><role> Trash </role><attributes>"
        "<e>true</e><H>false</H><w/></attributes><name> My &amp; "
        "Folder </name><accessed>2024-01-02T03:04:05Z</accessed>"
        "<Ext><XNam>EmailAddress</XNam><XVal>alice@example.org</XVal>"
        "</Ext><modified>20240101T000000</modified></Folder>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(f->name, " My & Folder ");
    CU_ASSERT_STRING_EQUAL(f->role, "Trash");
    CU_ASSERT_EQUAL(f->role_id, MEMDS_FOLDER_ROLE_TRASH);
    CU_ASSERT(f->has_attributes);
    CU_ASSERT_EQUAL(f->attr[MEMDS_FOLDER_ATTR_X], MEMDS_EMAIL_TRUE);
    CU_ASSERT_EQUAL(f->attr[MEMDS_FOLDER_ATTR_H], MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(f->attr[MEMDS_FOLDER_ATTR_W], MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(f->attr[MEMDS_FOLDER_ATTR_R], MEMDS_EMAIL_ABSENT);
    CU_ASSERT(f->modified.floating);
    x = fbuild(f);
    CU_ASSERT_STRING_EQUAL(
        x, "<Folder><name> My &amp; Folder </name><modified>"
           "20240101T000000</modified><accessed>20240102T030405Z</accessed>"
           "<attributes><h>false</h><w>false</w><x>true</x></attributes><role>"
           "Trash</role><Ext><XNam>EmailAddress</XNam><XVal>alice@example.org"
           "</XVal></Ext></Folder>");
    f2 = fparse_ok(x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f2);
    CU_ASSERT(memds_folder_equal(f, f2));
    f2->attr[MEMDS_FOLDER_ATTR_S] = MEMDS_EMAIL_TRUE;
    CU_ASSERT_FALSE(memds_folder_equal(f, f2));
    /* built from scratch */
    f = apr_pcalloc(unit_pool, sizeof(*f));
    f->name = "Sent";
    f->role = memds_folder_role_name(MEMDS_FOLDER_ROLE_SENT);
    f->has_attributes = 1;
    memds_email_ext_add(&f->exts, "EmailAddress", vals, 1, unit_pool);
    CU_ASSERT_EQUAL(memds_email_time_set(&f->created, 0, unit_pool),
                    APR_SUCCESS);
    x = fbuild(f);
    CU_ASSERT_STRING_EQUAL(
        x, "<Folder><name>Sent</name><created>"
           "19700101T000000Z</created><attributes/><role>sent</role><Ext><XNam>"
           "EmailAddress</XNam><XVal>alice@example.org</XVal></Ext></Folder>");
    f2 = fparse_ok(x);
    CU_ASSERT(memds_folder_equal(f, f2));
    CU_ASSERT_EQUAL(f2->role_id, MEMDS_FOLDER_ROLE_SENT);
    /* escaped once more (the Funambol client unescapes for this) */
    f = fparse_ok("&lt;Folder&gt;&lt;name&gt;A &amp;amp; B&lt;/name&gt;"
                  "&lt;/Folder&gt;");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(f->name, "A & B");
    /* roles */
    CU_ASSERT_EQUAL(memds_folder_role("Drafts"), MEMDS_FOLDER_ROLE_DRAFTS);
    CU_ASSERT_EQUAL(memds_folder_role("draft"), MEMDS_FOLDER_ROLE_DRAFTS);
    CU_ASSERT_EQUAL(memds_folder_role("TRASH"), MEMDS_FOLDER_ROLE_TRASH);
    CU_ASSERT_EQUAL(memds_folder_role("deleted"), MEMDS_FOLDER_ROLE_TRASH);
    CU_ASSERT_EQUAL(memds_folder_role("outbox"), MEMDS_FOLDER_ROLE_OUTBOX);
    CU_ASSERT_EQUAL(memds_folder_role("account"), MEMDS_FOLDER_ROLE_ACCOUNT);
    CU_ASSERT_EQUAL(memds_folder_role("Junk"), MEMDS_FOLDER_ROLE_OTHER);
    CU_ASSERT_EQUAL(memds_folder_role(NULL), MEMDS_FOLDER_ROLE_NONE);
    CU_ASSERT_STRING_EQUAL(memds_folder_role_name(MEMDS_FOLDER_ROLE_TRASH),
                           "deleted");
    CU_ASSERT_STRING_EQUAL(memds_folder_role_name(MEMDS_FOLDER_ROLE_DRAFTS),
                           "drafts");
    CU_ASSERT_PTR_NULL(memds_folder_role_name(MEMDS_FOLDER_ROLE_OTHER));
    /* errors */
    FFAILS("<Folder><role>inbox</role></Folder>",
           "<Folder> (line 1) has no <name>");
    FFAILS("<Folder><name></name></Folder>", "empty <name> in <Folder>");
    FFAILS("<Folder><name>a</name><name>b</name></Folder>", "<name> repeated");
    FFAILS("<Folder><name>a</name><attributes><q>1</q></attributes></Folder>",
           "unknown element <q> in <attributes>");
    FFAILS("<Folder><name>a</name><attributes><x>1</x><e>0</e></attributes>"
           "</Folder>",
           "<e> repeated in <attributes>");
    FFAILS("<Folder><name>a</name><attributes><h>maybe</h></attributes>"
           "</Folder>",
           "'maybe' is not a boolean");
    FFAILS("<Folder><name>a</name><parent>x</parent></Folder>",
           "unknown element <parent> in <Folder>");
    FFAILS("<Email/>", "root element is <Email>, not <Folder>");
    FFAILS("<Folder xmlns='syncml:email'><name>a</name></Folder>",
           "namespace 'syncml:email', not syncml:folder");
    {
        memds_folder_t *z = apr_pcalloc(unit_pool, sizeof(*z));
        memds_buf_t b;
        memds_codec_err_t err;
        memds_buf_init(&b, 0, unit_pool);
        CU_ASSERT_EQUAL(memds_folder_build(&b, z, &err, unit_pool), APR_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "name"));
        CU_ASSERT_EQUAL(b.len, 0);
    }
}

/* ------------------------------------------------------------ malformed */

static void test_malformed(void)
{
    memds_codec_err_t err;
    memds_email_t *e = NULL;
    apr_size_t big_len;
    char *big;
    int i;

    CU_ASSERT(fails_with("", 0, "empty <Email> object", 0));
    FAILS(" \r\n\t", "empty <Email> object");
    CU_ASSERT_EQUAL(memds_email_parse(&e, NULL, 0, &err, unit_pool),
                    APR_EINVAL);
    FAILS("<Email>", "malformed XML at line 1");
    FAILS("not xml", "malformed XML");
    FAILS("<Email></Emial>", "malformed XML");
    FAILS("<Mail/>", "root element is <Mail>, not <Email>");
    FAILS("<Email xmlns='urn:x'/>", "root <Email> is in namespace 'urn:x'");
    FAILS("<Email><read xmlns='urn:x'>true</read></Email>",
          "element <read> (line 1) is in namespace 'urn:x', not syncml:email");
    FAILS("<Email>\n<subject>x</subject></Email>",
          "unknown element <subject> in <Email> (line 2)");
    FAILS("<Email><read>true</read><read>false</read></Email>",
          "<read> repeated in <Email>");
    FAILS("<Email><emailitem>a</emailitem><emailitem>b</emailitem></Email>",
          "<emailitem> repeated");
    FAILS("<Email><truncated/><truncated/></Email>", "<truncated> repeated");
    FAILS("<Email><read>yes</read></Email>", "<read> (line 1): 'yes' is not a "
                                             "boolean");
    FAILS("<Email><received>2024-13-01T00:00:00Z</received></Email>",
          "<received> (line 1): '2024-13-01T00:00:00Z' is not an ISO 8601 "
          "date-time");
    FAILS("<Email><modified>yesterday</modified></Email>", "'yesterday'");
    FAILS("<Email><truncated><body><size>12k</size></body></truncated></Email>",
          "<size> (line 1): '12k' is not a byte count");
    FAILS("<Email><truncated><body><size>-1</size></body></truncated></Email>",
          "'-1' is not a byte count");
    FAILS("<Email><truncated><body><size>1</size><size>2</size></body>"
          "</truncated></Email>",
          "<size> repeated in <body>");
    FAILS("<Email><truncated><body><name>x</name></body></truncated></Email>",
          "unknown element <name> in <body>");
    FAILS("<Email><truncated><part/></truncated></Email>",
          "unknown element <part> in <truncated>");
    FAILS("<Email><truncated>x</truncated></Email>", "text inside <truncated>");
    FAILS("<Email>hello<read/></Email>",
          "text inside <Email> (line 1): 'hello'");
    FAILS("<Email><![CDATA[x]]></Email>", "text inside <Email>");
    FAILS("<Email><emailitem>a<b/>c</emailitem></Email>",
          "element <b> inside <emailitem> (line 1)");
    FAILS("<Email><read><b/></read></Email>", "element <b> inside <read>");
    FAILS("<Email><Ext><XVal>1</XVal></Ext></Email>",
          "<Ext> (line 1) has no <XNam>");
    FAILS("<Email><Ext><XNam> </XNam></Ext></Email>", "empty <XNam> in <Ext>");
    FAILS("<Email><Ext><XNam>a</XNam><XNam>b</XNam></Ext></Email>",
          "<XNam> repeated in <Ext>");
    FAILS("<Email><Ext><XNam>a</XNam><Foo/></Ext></Email>",
          "unknown element <Foo> in <Ext>");
    FAILS("<Email><Ext><XNam>a</XNam><XVal><i/></XVal></Ext></Email>",
          "element <i> inside <XVal>");
    FAILS("<!DOCTYPE Email [<!ENTITY x 'y'>]><Email><read>&x;</read></Email>",
          "DOCTYPE with an internal subset");
    FAILS("<!DOCTYPE Email SYSTEM 'http://example.org/e.dtd' [ ]><Email/>",
          "DOCTYPE with an internal subset");
    FAILS("<Email><read>&x;</read></Email>", "malformed XML");
    FAILS("<Email><read>&#0;</read></Email>", "malformed XML");
    FAILS("<Email><emailitem>\x01</emailitem></Email>", "malformed XML");
    FAILS("<Email><emailitem>caf\xe9</emailitem></Email>", "malformed XML");
    FAILS("<Email><Ext><XVal><a><b><c><d><e><f><g/></f></e></d></c></b></a>"
          "</XVal></Ext></Email>",
          "elements nested deeper than 8 (line 1)");
    CU_ASSERT(fails_with("\xff\xfe<\0E\0m\0", 8, "refused", 0));
    CU_ASSERT(fails_with("\0<\0?\0x", 6, "refused", 0));
    FAILS("<Email><emailitem enc='base64'>eA==</emailitem></Email>",
          "<emailitem enc='base64'> (line 1): unsupported encoding");
    /* the Funambol repair does not hide other errors */
    FAILS("<Email><emailitem><![CDATA[abc</emailitem></Email>",
          "malformed XML at line 1");
    FAILS("<Email><emailitem><![CDATA[abc]]&gt;</emailitem><x/></Email>",
          "unknown element <x> in <Email>");
    /* size limit before parsing (the buffer is never read) */
    CU_ASSERT(fails_with("<Email/>", MEMDS_EMAIL_MAX_INPUT + 1, "exceeds", 0));
    /* element count limit */
    big_len = 0;
    big = apr_palloc(unit_pool, 40 + 7 * (MEMDS_EMAIL_MAX_NODES + 10));
    memcpy(big, "<Email><Ext><XNam>a</XNam>", 26);
    big_len = 26;
    for (i = 0; i < MEMDS_EMAIL_MAX_NODES + 5; ++i) {
        memcpy(big + big_len, "<XVal/>", 7);
        big_len += 7;
    }
    memcpy(big + big_len, "</Ext></Email>", 14);
    big_len += 14;
    CU_ASSERT(fails_with(big, big_len, "more than 65536 elements", 0));
    /* the error has the line */
    memset(&err, 0, sizeof(err));
    CU_ASSERT_EQUAL(memds_email_parse(&e, "<Email>\n\n<read>x</read></Email>",
                                      30, &err, unit_pool),
                    APR_EINVAL);
    CU_ASSERT_EQUAL(err.line, 3);
    CU_ASSERT_PTR_NULL(e);
    /* a NULL err is fine */
    CU_ASSERT_EQUAL(memds_email_parse(&e, "<x/>", 4, NULL, unit_pool),
                    APR_EINVAL);
    /* long values are cut in messages, controls masked */
    FAILS("<Email><read>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "</read></Email>",
          "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
    FAILS("<Email><read>a&#9;b</read></Email>", "'a?b'");
}

/* ---------------------------------------------------------- build refuses */

static int build_fails(const memds_email_t *e, memds_email_style_e style,
                       const char *needle)
{
    memds_buf_t b;
    memds_codec_err_t err;

    memds_buf_init(&b, 0, unit_pool);
    memds_buf_add(&b, "keep", 4);
    memset(&err, 0, sizeof(err));
    if (memds_email_build(&b, e, style, &err, unit_pool) != APR_EINVAL
        || err.rv != APR_EINVAL || err.msg == NULL
        || strstr(err.msg, needle) == NULL || b.len != 4) {
        fprintf(stderr, "\n  expected build failure '%s', got %s\n", needle,
                err.msg ? err.msg : "(none)");
        return 0;
    }
    return 1;
}

static void test_build_refuses(void)
{
    static const struct {
        const char *bytes;
        apr_size_t len, bad;
        const char *what;
    } cases[] = {
        { "abc\0def", 7, 3, "byte 0x00 at offset 3" },
        { "ab\x0b", 3, 2, "byte 0x0B at offset 2" },
        { "caf\xe9 latin-1", 12, 3, "invalid UTF-8 (byte 0xE9) at offset 3" },
        { "x\xc3\x28", 3, 1, "invalid UTF-8 (byte 0xC3)" },
        { "\xc0\xaf", 2, 0, "invalid UTF-8 (byte 0xC0)" },
        { "ab\xed\xa0\x80", 5, 2, "invalid UTF-8 (byte 0xED)" },
        { "\xf4\x90\x80\x80", 4, 0, "invalid UTF-8 (byte 0xF4)" },
        { "a\xe2\x82", 3, 1, "invalid UTF-8" },
        { "ok\xef\xbf\xbe", 5, 2, "U+FFFE at offset 2" },
        { "\xef\xbf\xbf", 3, 0, "U+FFFF" },
    };
    memds_email_t *e = memds_email_make(unit_pool);
    apr_size_t i, bad;

    e->has_item = 1;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        e->item = cases[i].bytes;
        e->item_len = cases[i].len;
        bad = 999;
        CU_ASSERT_FALSE(
            memds_email_item_xml_safe(cases[i].bytes, cases[i].len, &bad));
        CU_ASSERT_EQUAL(bad, cases[i].bad);
        CU_ASSERT(build_fails(e, MEMDS_EMAIL_STYLE_TEXT, cases[i].what));
        CU_ASSERT(build_fails(e, MEMDS_EMAIL_STYLE_CDATA, cases[i].what));
    }
    CU_ASSERT(memds_email_item_xml_safe("\t\r\n \x7f\xc2\x80\xf4\x8f\xbf\xbf",
                                        11, NULL));
    {
        /* the check's eight-bytes-at-once path: a bad byte at every offset
         * of a long ASCII run is found there, 0x7F and CRLF are not bad */
        char run[61];
        apr_size_t k;
        for (k = 0; k < sizeof(run); ++k) {
            memset(run, 'a', sizeof(run));
            run[k] = '\x01';
            bad = 999;
            CU_ASSERT_FALSE(memds_email_item_xml_safe(run, sizeof(run), &bad));
            CU_ASSERT_EQUAL(bad, k);
            run[k] = '\xe9';
            bad = 999;
            CU_ASSERT_FALSE(memds_email_item_xml_safe(run, sizeof(run), &bad));
            CU_ASSERT_EQUAL(bad, k);
            run[k] = '\x7f';
            CU_ASSERT(memds_email_item_xml_safe(run, sizeof(run), NULL));
            run[k] = '\r';
            run[(k + 1) % sizeof(run)] = '\n';
            CU_ASSERT(memds_email_item_xml_safe(run, sizeof(run), NULL));
            /* a character of 2, 3 and 4 bytes after a CRLF, across the
             * eight bytes checked one by one, and a bad byte after it */
            if (k + 12 <= sizeof(run)) {
                memcpy(run + k + 2, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
                CU_ASSERT(memds_email_item_xml_safe(run, sizeof(run), NULL));
                run[k + 11] = '\x02';
                bad = 999;
                CU_ASSERT_FALSE(
                    memds_email_item_xml_safe(run, sizeof(run), &bad));
                CU_ASSERT_EQUAL(bad, k + 11);
            }
        }
    }
    CU_ASSERT(memds_email_item_xml_safe(NULL, 0, NULL));
    CU_ASSERT(build_fails(e, (memds_email_style_e)7, "style"));
    e->item = NULL;
    e->item_len = 3;
    CU_ASSERT(build_fails(e, MEMDS_EMAIL_STYLE_TEXT, "no bytes"));
    e->has_item = 0;
    e->received.text = "yesterday";
    CU_ASSERT(build_fails(e, MEMDS_EMAIL_STYLE_TEXT,
                          "<received>: 'yesterday' "
                          "is not an ISO 8601 date-time"));
    e->received.text = NULL;
    e->read = (memds_email_bool_e)7;
    CU_ASSERT(
        build_fails(e, MEMDS_EMAIL_STYLE_TEXT, "<read>: 7 is not a tri-state"));
    e->read = MEMDS_EMAIL_ABSENT;
    memds_email_add_tbody(e, -5, NULL, unit_pool);
    CU_ASSERT(
        build_fails(e, MEMDS_EMAIL_STYLE_TEXT, "<size>: negative size -5"));
    e = memds_email_make(unit_pool);
    memds_email_ext_add(&e->exts, NULL, NULL, 0, unit_pool);
    CU_ASSERT(build_fails(e, MEMDS_EMAIL_STYLE_TEXT, "Ext 1 has no XNam"));
    e = memds_email_make(unit_pool);
    memds_email_add_tattach(e, "a\x01", 1, NULL, unit_pool);
    CU_ASSERT(
        build_fails(e, MEMDS_EMAIL_STYLE_TEXT, "<name> contains byte 0x01"));
    CU_ASSERT(build_fails(NULL, MEMDS_EMAIL_STYLE_TEXT, "no email object"));
    /* the canonical form of a date the caller wrote loosely */
    e = memds_email_make(unit_pool);
    e->received.text = "2024-01-31T09:30:00+01:00";
    CU_ASSERT_STRING_EQUAL(
        build(e, MEMDS_EMAIL_STYLE_TEXT, NULL),
        "<Email><received>20240131T083000Z</received></Email>");
}

/* ------------------------------------------------------------ IMAP flags */

static void test_imap_flags(void)
{
    memds_email_t *e = memds_email_make(unit_pool);
    memds_email_flagops_t ops;
    static const char *const flags[] = { "\\SEEN", "\\Flagged", "Forwarded",
                                         NULL,     "$Junk",     "\\Recent" };
    static const char *const answered[] = { "\\Answered", "$forwarded" };

    memds_email_flags_to_imap(&ops, e, unit_pool);
    CU_ASSERT_EQUAL(ops.add->nelts, 0);
    CU_ASSERT_EQUAL(ops.remove->nelts, 0);
    CU_ASSERT_PTR_NULL(ops.add_str);
    CU_ASSERT_PTR_NULL(ops.remove_str);
    e->read = MEMDS_EMAIL_TRUE;
    e->replied = MEMDS_EMAIL_FALSE;
    e->forwarded = MEMDS_EMAIL_TRUE;
    e->deleted = MEMDS_EMAIL_FALSE;
    memds_email_flags_to_imap(&ops, e, unit_pool);
    CU_ASSERT_STRING_EQUAL(ops.add_str, "\\Seen $Forwarded");
    CU_ASSERT_STRING_EQUAL(ops.remove_str, "\\Answered \\Deleted");
    CU_ASSERT_EQUAL(ops.add->nelts, 2);
    CU_ASSERT_STRING_EQUAL(APR_ARRAY_IDX(ops.remove, 1, const char *),
                           "\\Deleted");
    e->flagged = MEMDS_EMAIL_TRUE;
    e->deleted = MEMDS_EMAIL_TRUE;
    memds_email_flags_to_imap(&ops, e, unit_pool);
    CU_ASSERT_STRING_EQUAL(ops.add_str,
                           "\\Seen $Forwarded \\Flagged \\Deleted");
    CU_ASSERT_STRING_EQUAL(ops.remove_str, "\\Answered");
    /* from a complete IMAP list: every flag set or cleared */
    e = memds_email_make(unit_pool);
    memds_email_from_imap_flags(e, flags, 6);
    CU_ASSERT_EQUAL(e->read, MEMDS_EMAIL_TRUE);
    CU_ASSERT_EQUAL(e->flagged, MEMDS_EMAIL_TRUE);
    CU_ASSERT_EQUAL(e->forwarded, MEMDS_EMAIL_TRUE);
    CU_ASSERT_EQUAL(e->replied, MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(e->deleted, MEMDS_EMAIL_FALSE);
    memds_email_from_imap_flags(e, answered, 2);
    CU_ASSERT_EQUAL(e->read, MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(e->replied, MEMDS_EMAIL_TRUE);
    CU_ASSERT_EQUAL(e->forwarded, MEMDS_EMAIL_TRUE);
    memds_email_from_imap_flags(e, NULL, 0);
    CU_ASSERT_EQUAL(e->replied, MEMDS_EMAIL_FALSE);
    CU_ASSERT_EQUAL(e->forwarded, MEMDS_EMAIL_FALSE);
    /* and back: the object carries the mailbox's state */
    memds_email_from_imap_flags(e, flags, 6);
    memds_email_flags_to_imap(&ops, e, unit_pool);
    CU_ASSERT_STRING_EQUAL(ops.add_str, "\\Seen $Forwarded \\Flagged");
    CU_ASSERT_STRING_EQUAL(ops.remove_str, "\\Answered \\Deleted");
    /* into a built object */
    e->has_item = 0;
    CU_ASSERT_STRING_EQUAL(
        build(e, MEMDS_EMAIL_STYLE_TEXT, NULL),
        "<Email><read>true</read><forwarded>true</forwarded><replied>false"
        "</replied><deleted>false</deleted><flagged>true</flagged></Email>");
}

static void test_crlf(void)
{
    const char *o;
    apr_size_t n;
    static const char in[] = "a\nb\r\nc\rd\n\n\r";
    static const char ok[] = "a\r\nb\r\n";

    memds_email_crlf(&o, &n, in, sizeof(in) - 1, unit_pool);
    CU_ASSERT_EQUAL(n, 16);
    CU_ASSERT(memcmp(o, "a\r\nb\r\nc\r\nd\r\n\r\n\r\n", 16) == 0);
    CU_ASSERT_EQUAL(o[n], '\0');
    memds_email_crlf(&o, &n, ok, sizeof(ok) - 1, unit_pool);
    CU_ASSERT_PTR_EQUAL(o, ok);
    CU_ASSERT_EQUAL(n, sizeof(ok) - 1);
    memds_email_crlf(&o, &n, "\n", 1, unit_pool);
    CU_ASSERT(n == 2 && memcmp(o, "\r\n", 2) == 0);
    memds_email_crlf(&o, &n, "", 0, unit_pool);
    CU_ASSERT_EQUAL(n, 0);
}

/* --------------------------------------------------------------- threads */

#define THREADS 4

typedef struct email_job_t {
    const char *in;
    int failures[THREADS];
} email_job_t;

typedef struct email_arg_t {
    email_job_t *job;
    int id;
} email_arg_t;

static void *APR_THREAD_FUNC email_thread(apr_thread_t *th, void *data)
{
    email_arg_t *a = data;
    apr_pool_t *p;
    int round;

    apr_pool_create(&p, NULL);
    for (round = 0; round < 300; ++round) {
        memds_email_t *e = NULL, *e2 = NULL;
        memds_codec_err_t err;
        memds_buf_t b;

        memds_buf_init(&b, 0, p);
        if (memds_email_parse(&e, a->job->in, strlen(a->job->in), &err, p)
                != APR_SUCCESS
            || memds_email_build(&b, e, MEMDS_EMAIL_STYLE_TEXT, &err, p)
                   != APR_SUCCESS
            || memds_email_parse(&e2, b.data, b.len, &err, p) != APR_SUCCESS
            || !memds_email_equal(e, e2)) {
            ++a->job->failures[a->id];
        }
        if (memds_email_parse(&e, "<Email><a></b></Email>", 22, &err, p)
                != APR_EINVAL
            || strstr(err.msg, "mismatch") == NULL) {
            ++a->job->failures[a->id];
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    apr_thread_exit(th, APR_SUCCESS);
    return NULL;
}

static void test_threads(void)
{
    email_job_t *job = apr_pcalloc(unit_pool, sizeof(*job));
    email_arg_t args[THREADS];
    apr_thread_t *th[THREADS];
    int i;

    job->in = client_item(7);
    for (i = 0; i < THREADS; ++i) {
        args[i].job = job;
        args[i].id = i;
        CU_ASSERT_EQUAL_FATAL(apr_thread_create(&th[i], NULL, email_thread,
                                                &args[i], unit_pool),
                              APR_SUCCESS);
    }
    for (i = 0; i < THREADS; ++i) {
        apr_status_t trv;
        apr_thread_join(&trv, th[i]);
        CU_ASSERT_EQUAL(job->failures[i], 0);
    }
}

void unit_add_email(void)
{
    CU_pSuite s = CU_add_suite("email", NULL, NULL);

    CU_add_test(s, "real client's raw-email items", test_client_item);
    CU_add_test(s, "raw-email captures", test_captures);
    CU_add_test(s, "built objects through SyncML XML and WBXML",
                test_through_syncml);
    CU_add_test(s, "build order", test_build_order);
    CU_add_test(s, "round trips", test_round_trips);
    CU_add_test(s, "escaping eight bytes at a time", test_escape_words);
    CU_add_test(s, "unchecked text checked while escaped, at every position",
                test_escape_checks);
    CU_add_test(s, "Nokia and libsynthesis variants", test_nokia_variants);
    CU_add_test(s, "Funambol variants", test_funambol_variants);
    CU_add_test(s, "flags-only updates", test_flags_only);
    CU_add_test(s, "truncation", test_truncation);
    CU_add_test(s, "X-Sync-Message-Limit", test_sync_limit);
    CU_add_test(s, "device copies (truncated objects)", test_device_copy);
    CU_add_test(s, "date-times", test_times);
    CU_add_test(s, "folder objects", test_folders);
    CU_add_test(s, "malformed objects", test_malformed);
    CU_add_test(s, "builds refused", test_build_refuses);
    CU_add_test(s, "IMAP flags", test_imap_flags);
    CU_add_test(s, "CRLF", test_crlf);
    CU_add_test(s, "threads", test_threads);
}
