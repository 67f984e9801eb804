/* Unit tests: a mail truncated from its structure (email/memds_trunc.c),
 * over an original served by a fake fetch callback that honours partial
 * fetches: the cut on a character boundary, the single-part result, QP
 * and base64 text, the <truncated> list, an HTML-only mail, a header too
 * big, and the failures. */
#include "unit.h"
#include "email/memds_trunc.h"
#include "ds/memds_ds.h"
#include "util/memds_buf.h"
#include "util/memds_util.h"

#include <apr_base64.h>
#include <apr_strings.h>
#include <string.h>

typedef struct orig_t {
    const char *header;
    const char *text; /* decoded content of "1" */
    apr_size_t textlen;
    int calls, fail_at;
    apr_size_t max_seen; /* the largest partial fetch of "1" */
} orig_t;

static apr_status_t fetch(void *baton, const char *section, int binary,
                          apr_size_t max, const char **pdata, apr_size_t *plen)
{
    orig_t *o = baton;

    if (++o->calls == o->fail_at) {
        return APR_EGENERAL;
    }
    if (strcmp(section, "HEADER") == 0) {
        *pdata = o->header;
        *plen = strlen(o->header);
        return APR_SUCCESS;
    }
    if (strcmp(section, "1") == 0 && binary && max > 0) {
        o->max_seen = max;
        *pdata = o->text;
        *plen = o->textlen < max ? o->textlen : max;
        return APR_SUCCESS;
    }
    return APR_ENOENT; /* nothing else (never the whole message) */
}

static const char HDR[] =
    "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
    "Subject: big\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <big@example.test>\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n";

static void add_part(apr_array_header_t *a, const char *sec, const char *type,
                     const char *sub, const char *cs, const char *enc,
                     const char *disp, const char *name, apr_int64_t size)
{
    memds_trunc_part_t *l = apr_array_push(a);

    l->section = sec;
    l->type = type;
    l->subtype = sub;
    l->charset = cs;
    l->encoding = enc;
    l->disposition = disp;
    l->name = name;
    l->size = size;
}

/* "1" text/plain (QP), "2" its HTML twin, "3" a PDF, "4" a picture. */
static apr_array_header_t *mixed(const char *sub1, const char *cs1)
{
    apr_array_header_t *a = apr_array_make(unit_pool, 4,
                                           sizeof(memds_trunc_part_t));

    add_part(a, "1", "TEXT", sub1, cs1, "quoted-printable", NULL, NULL, 90000);
    add_part(a, "2", "text", "html", "utf-8", "base64", NULL, NULL, 120000);
    add_part(a, "3", "application", "pdf", NULL, "base64", "attachment",
             "report.pdf", 4000000);
    add_part(a, "4", "image", "jpeg", NULL, "base64", "inline", "p.jpg",
             700000);
    return a;
}

/* a long UTF-8 text: "é" (2 bytes) and "€" (3 bytes) in lines */
static const char *long_text(apr_size_t *plen)
{
    memds_buf_t b;
    int i;

    memds_buf_init(&b, 64000, unit_pool);
    for (i = 0; i < 2000; ++i) {
        memds_buf_add(&b, "\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xe2\x82\xac\n", 13);
    }
    *plen = b.len;
    return b.data;
}

static int valid_utf8(const char *s, apr_size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    apr_size_t i = 0, l;
    unsigned cp;

    while (i < n) {
        if (u[i] < 0x80) {
            ++i;
            continue;
        }
        if ((l = memds_utf8_seq(u + i, u + n, &cp)) == 0) {
            return 0;
        }
        i += l;
    }
    return 1;
}

static const char *body_of(const char *m)
{
    const char *b = strstr(m, "\r\n\r\n");
    return b ? b + 4 : NULL;
}

static void test_multipart_cut(void)
{
    orig_t ob = { HDR, NULL, 0, 0, 0, 0 };
    memds_trunc_orig_t o = { mixed("plain", "UTF-8"), fetch, &ob };
    memds_email_t *e = memds_email_make(unit_pool);
    const char *out, *why, *b;
    apr_size_t len, budget;
    const memds_email_tbody_t *tb;
    const memds_email_attach_t *ta;

    ob.text = long_text(&ob.textlen);
    for (budget = 700; budget < 800; ++budget) { /* every cut position */
        e = memds_email_make(unit_pool);
        ob.calls = 0;
        CU_ASSERT_EQUAL_FATAL(memds_trunc_build(&out, &len, e, &o, budget, &why,
                                                unit_pool),
                              APR_SUCCESS);
        CU_ASSERT(len <= budget);
        CU_ASSERT_EQUAL(strlen(out), len);
        CU_ASSERT(valid_utf8(out, len));
        b = body_of(out);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT(strlen(b) > 100); /* most of the room is text */
        CU_ASSERT(strncmp(b, "\xc3\xa9t\xc3\xa9 ", 6) == 0);
        CU_ASSERT(len >= 2 && strcmp(out + len - 2, "\r\n") == 0);
    }
    /* a single text part: no multipart left open, no bare LF */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Subject: big\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Message-ID: <big@example.test>\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out,
                                  "Content-Type: text/plain; charset=UTF-8\r\n"
                                  "Content-Transfer-Encoding: 8bit\r\n\r\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "multipart"));
    CU_ASSERT_PTR_NULL(strstr(out, "boundary"));
    for (b = strchr(out, '\n'); b; b = strchr(b + 1, '\n')) {
        CU_ASSERT(b[-1] == '\r');
    }
    /* the <truncated> list: the cut text, its HTML twin, two attachments */
    CU_ASSERT(e->has_truncated);
    CU_ASSERT_EQUAL_FATAL(e->trunc_body ? e->trunc_body->nelts : 0, 2);
    tb = APR_ARRAY_IDX(e->trunc_body, 0, memds_email_tbody_t *);
    CU_ASSERT_EQUAL(tb->size, 90000);
    CU_ASSERT_STRING_EQUAL(tb->type, "TEXT/plain");
    tb = APR_ARRAY_IDX(e->trunc_body, 1, memds_email_tbody_t *);
    CU_ASSERT_EQUAL(tb->size, 120000);
    CU_ASSERT_STRING_EQUAL(tb->type, "text/html");
    CU_ASSERT_EQUAL_FATAL(e->trunc_attach ? e->trunc_attach->nelts : 0, 2);
    ta = APR_ARRAY_IDX(e->trunc_attach, 0, memds_email_attach_t *);
    CU_ASSERT_STRING_EQUAL(ta->name, "report.pdf");
    CU_ASSERT_EQUAL(ta->size, 4000000);
    CU_ASSERT_STRING_EQUAL(ta->type, "application/pdf");
    ta = APR_ARRAY_IDX(e->trunc_attach, 1, memds_email_attach_t *);
    CU_ASSERT_STRING_EQUAL(ta->name, "p.jpg");
    CU_ASSERT_EQUAL(ta->size, 700000);
    CU_ASSERT_STRING_EQUAL(ta->type, "image/jpeg");
    /* only partial fetches of the text, never the whole message */
    CU_ASSERT(ob.max_seen > 0 && ob.max_seen < budget);
}

static void test_short_text_whole(void)
{
    orig_t ob = { HDR, "short text\r\n", 12, 0, 0, 0 };
    memds_trunc_orig_t o = { mixed("plain", NULL), fetch, &ob };
    memds_email_t *e = memds_email_make(unit_pool);
    const char *out, *why;
    apr_size_t len;

    CU_ASSERT_EQUAL_FATAL(memds_trunc_build(&out, &len, e, &o, 4000, &why,
                                            unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(body_of(out), "short text\r\n");
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "charset=utf-8\r\n"));
    /* the whole text went: only the HTML twin and the attachments */
    CU_ASSERT_EQUAL(e->trunc_body ? e->trunc_body->nelts : 0, 1);
    CU_ASSERT_EQUAL(e->trunc_attach ? e->trunc_attach->nelts : 0, 2);
}

static void test_html_only(void)
{
    orig_t ob = { HDR, "<p>hello</p>", 12, 0, 0, 0 };
    apr_array_header_t *a = apr_array_make(unit_pool, 2,
                                           sizeof(memds_trunc_part_t));
    memds_trunc_orig_t o = { a, fetch, &ob };
    memds_email_t *e = memds_email_make(unit_pool);
    const char *out, *why;
    apr_size_t len;

    add_part(a, "1", "text", "html", "us-ascii", "7bit", NULL, NULL, 12);
    add_part(a, "2", "application", "zip", NULL, "base64", "attachment", NULL,
             300000);
    CU_ASSERT_EQUAL_FATAL(memds_trunc_build(&out, &len, e, &o, 2000, &why,
                                            unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Content-Type: text/html; "
                                       "charset=us-ascii\r\n"));
    CU_ASSERT_STRING_EQUAL(body_of(out), "<p>hello</p>\r\n");
    CU_ASSERT_PTR_NULL(e->trunc_body);
    CU_ASSERT_EQUAL_FATAL(e->trunc_attach ? e->trunc_attach->nelts : 0, 1);
    CU_ASSERT_STRING_EQUAL(
        APR_ARRAY_IDX(e->trunc_attach, 0, memds_email_attach_t *)->name,
        "part-2"); /* no name given: named by its section */
}

static void test_base64_other_charset(void)
{
    /* Latin-1 text (not UTF-8): sent as base64 in its own charset */
    static char latin[3000];
    orig_t ob = { HDR, latin, sizeof(latin), 0, 0, 0 };
    memds_trunc_orig_t o = { mixed("plain", "iso-8859-1"), fetch, &ob };
    memds_email_t *e = memds_email_make(unit_pool);
    const char *out, *why, *b;
    char *dec;
    apr_size_t len, i;
    memds_buf_t joined;

    for (i = 0; i < sizeof(latin); ++i) {
        latin[i] = (i % 40 == 39) ? '\n' : (char)(0xe0 + i % 20);
    }
    CU_ASSERT_EQUAL_FATAL(memds_trunc_build(&out, &len, e, &o, 1500, &why,
                                            unit_pool),
                          APR_SUCCESS);
    CU_ASSERT(len <= 1500);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "charset=iso-8859-1\r\nContent-Transfer-Encoding: "
                    "base64\r\n\r\n"));
    b = body_of(out);
    memds_buf_init(&joined, len, unit_pool);
    for (; *b; ++b) {
        if (*b != '\r' && *b != '\n') {
            memds_buf_add(&joined, b, 1);
        }
    }
    memds_buf_add(&joined, "", 1);
    dec = apr_palloc(unit_pool, apr_base64_decode_len(joined.data));
    len = (apr_size_t)apr_base64_decode(dec, joined.data);
    CU_ASSERT(len > 500);
    CU_ASSERT(memcmp(dec, latin, len) == 0); /* a prefix of the text */
    CU_ASSERT_EQUAL(e->trunc_body ? e->trunc_body->nelts : 0, 2);
}

/* UTF-8 text goes as 8bit only without NUL and lines over 998 bytes; the
 * check reads eight ASCII bytes at a time, so each case at every alignment. */
static void test_text_lines(void)
{
    static char t[4000];
    int off, kind;

    for (kind = 0; kind < 4; ++kind) {
        for (off = 0; off < 9; ++off) {
            orig_t ob = { HDR, t, 0, 0, 0, 0 };
            memds_trunc_orig_t o = { mixed("plain", "utf-8"), fetch, &ob };
            memds_email_t *e = memds_email_make(unit_pool);
            const char *out, *why;
            apr_size_t len, n = 0, i, line = kind == 1 ? 999 : 998;

            for (i = 0; i < (apr_size_t)off; ++i) {
                t[n++] = 'a';
            }
            t[n++] = '\n';
            for (i = 0; i < line; ++i) { /* the CR of a CRLF counts */
                t[n++] = i + 1 == line && kind == 3 ? '\r' : 'b';
            }
            t[n++] = '\n';
            for (i = 0; i < 100; ++i) {
                t[n++] = kind == 2 && i == 50 ? '\0' : 'c';
            }
            ob.textlen = n;
            CU_ASSERT_EQUAL_FATAL(memds_trunc_build(&out, &len, e, &o, 9000,
                                                    &why, unit_pool),
                                  APR_SUCCESS);
            if (kind == 1 || kind == 2) {
                CU_ASSERT_PTR_NOT_NULL(strstr(out, "base64\r\n\r\n"));
            }
            else {
                CU_ASSERT_PTR_NOT_NULL(strstr(out, "8bit\r\n\r\n"));
                CU_ASSERT_PTR_NULL(strstr(out, "base64\r\n\r\n"));
            }
        }
    }
}

static void test_header_too_big(void)
{
    memds_buf_t h;
    orig_t ob = { NULL, "text\r\n", 6, 0, 0, 0 };
    memds_trunc_orig_t o = { mixed("plain", NULL), fetch, &ob };
    memds_email_t *e = memds_email_make(unit_pool);
    const char *out, *why;
    apr_size_t len;
    int i;

    memds_buf_init(&h, 100000, unit_pool);
    memds_buf_add(&h,
                  "From: bob@example.test\r\nSubject: huge header\r\nTo: ", 50);
    for (i = 0; i < 500; ++i) {
        memds_buf_add(&h, "someone@example.test, ", 22);
    }
    memds_buf_add(&h, "last@example.test\r\n", 19);
    for (i = 0; i < 500; ++i) {
        memds_buf_add(&h, "Received: from x by y; Mon, 1 Dec 2026\r\n", 40);
    }
    memds_buf_add(&h, "\r\n", 3); /* with the NUL */
    ob.header = h.data;
    CU_ASSERT_EQUAL_FATAL(memds_trunc_build(&out, &len, e, &o, 1000, &why,
                                            unit_pool),
                          APR_SUCCESS);
    CU_ASSERT(len <= 1000);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "From: bob@example.test\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Subject: huge header\r\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "Received:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "To: someone@example.test, "));
    CU_ASSERT_PTR_NULL(strstr(out, "last@example.test"));
    CU_ASSERT_STRING_EQUAL(body_of(out), "text\r\n");
    /* not even that fits */
    CU_ASSERT_EQUAL(memds_trunc_build(&out, &len, e, &o, 300, &why, unit_pool),
                    APR_ENOSPC);
    CU_ASSERT_PTR_NOT_NULL(why);
}

/* The fetch of an original whose "3" (report.pdf) is served as stored. */
static apr_status_t fetch_att(void *baton, const char *section, int binary,
                              apr_size_t max, const char **pdata,
                              apr_size_t *plen)
{
    if (strcmp(section, "3.MIME") == 0 && !binary && max == 0) {
        *pdata = "Content-Type: application/pdf; name=\"report.pdf\"\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\n";
        *plen = strlen(*pdata);
        return APR_SUCCESS;
    }
    if (strcmp(section, "3") == 0 && !binary && max == 0) {
        *pdata = "JVBERi0xLjQK\r\nJSVFT0YK";
        *plen = strlen(*pdata);
        return APR_SUCCESS;
    }
    return fetch(baton, section, binary, max, pdata, plen);
}

static void test_levels(void)
{
    orig_t ob = { HDR, NULL, 0, 0, 0, 0 };
    memds_trunc_orig_t o = { mixed("plain", "UTF-8"), fetch, &ob };
    memds_trunc_opts_t opts = { 100, NULL };
    memds_email_t *e = memds_email_make(unit_pool);
    const char *out, *why, *b;
    apr_size_t len;
    int all = -1, i;

    ob.text = long_text(&ob.textlen);
    /* the text limit, whatever the budget */
    CU_ASSERT_EQUAL_FATAL(memds_trunc_build_opts(&out, &len, e, &o, 100000,
                                                 &opts, &all, &why, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL(ob.max_seen, 100);
    b = body_of(out);
    /* (100 bytes of text, its LF lines made CRLF) */
    CU_ASSERT(b && strlen(b) <= 120 && valid_utf8(b, strlen(b)));
    CU_ASSERT_EQUAL(all, 0);
    CU_ASSERT_EQUAL(e->trunc_body ? e->trunc_body->nelts : 0, 2);
    /* headers only: no text fetched, the text listed */
    e = memds_email_make(unit_pool);
    ob.max_seen = 0;
    opts.text_max = 0;
    CU_ASSERT_EQUAL_FATAL(memds_trunc_build_opts(&out, &len, e, &o, 100000,
                                                 &opts, &all, &why, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL(ob.max_seen, 0);
    CU_ASSERT_STRING_EQUAL(body_of(out), "");
    CU_ASSERT_EQUAL(e->trunc_body ? e->trunc_body->nelts : 0, 2);
    /* one attachment: multipart/mixed, the part as stored, closed */
    e = memds_email_make(unit_pool);
    o.fetch = fetch_att;
    opts.text_max = 50;
    opts.attach_name = "report.pdf";
    CU_ASSERT_EQUAL_FATAL(memds_trunc_build_opts(&out, &len, e, &o, 5000000,
                                                 &opts, &all, &why, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Content-Type: multipart/mixed; "
                                       "boundary=\"=_memds_part_0\"\r\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "\r\n--=_memds_part_0\r\nContent-Type: application/pdf; "
                    "name=\"report.pdf\"\r\nContent-Transfer-Encoding: "
                    "base64\r\n\r\nJVBERi0xLjQK\r\nJSVFT0YK\r\n"
                    "--=_memds_part_0--\r\n"));
    CU_ASSERT_EQUAL(e->trunc_attach ? e->trunc_attach->nelts : 0, 1);
    for (i = 0; e->trunc_attach && i < e->trunc_attach->nelts; ++i) {
        const memds_email_attach_t *a = APR_ARRAY_IDX(e->trunc_attach, i,
                                                      memds_email_attach_t *);
        CU_ASSERT_STRING_EQUAL(a->name, "p.jpg");
    }
    /* a name that matches no part: left out, listed, single part */
    e = memds_email_make(unit_pool);
    opts.attach_name = "nothing.doc";
    CU_ASSERT_EQUAL_FATAL(memds_trunc_build_opts(&out, &len, e, &o, 5000000,
                                                 &opts, &all, &why, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_PTR_NULL(strstr(out, "multipart"));
    CU_ASSERT_EQUAL(e->trunc_attach ? e->trunc_attach->nelts : 0, 2);
    /* nothing left out: *pall */
    {
        orig_t sb = { HDR, "short\r\n", 7, 0, 0, 0 };
        apr_array_header_t *one = apr_array_make(unit_pool, 1,
                                                 sizeof(memds_trunc_part_t));
        memds_trunc_orig_t so = { one, fetch, &sb };
        add_part(one, "1", "text", "plain", "utf-8", "7bit", NULL, NULL, 7);
        e = memds_email_make(unit_pool);
        opts.text_max = -1;
        opts.attach_name = NULL;
        CU_ASSERT_EQUAL_FATAL(memds_trunc_build_opts(&out, &len, e, &so, 5000,
                                                     &opts, &all, &why,
                                                     unit_pool),
                              APR_SUCCESS);
        CU_ASSERT_EQUAL(all, 1);
    }
}

/* The compact form of a level (memds.mail_levels) reads back. */
static void test_level_form(void)
{
    memds_ds_level_t l = { 0, 20480, 0, "a;b=c%d \xc3\xa9.pdf" }, r;

    CU_ASSERT_STRING_EQUAL(memds_ds_level_format(&l, unit_pool),
                           "w=0;t=20480;a=0;n=a%3Bb%3Dc%25d%20%C3%A9.pdf");
    CU_ASSERT_EQUAL_FATAL(memds_ds_level_parse(&r,
                                               memds_ds_level_format(&l,
                                                                     unit_pool),
                                               unit_pool),
                          APR_SUCCESS);
    CU_ASSERT(r.whole_max == 0 && r.text_max == 20480 && !r.attach
              && strcmp(r.attach_name, l.attach_name) == 0);
    CU_ASSERT_EQUAL(memds_ds_level_parse(&r, "whole", unit_pool), APR_SUCCESS);
    CU_ASSERT(memds_ds_level_is_whole(&r) && r.attach);
    CU_ASSERT_STRING_EQUAL(memds_ds_level_format(&r, unit_pool), "whole");
    CU_ASSERT_EQUAL(memds_ds_level_parse(&r, "w=1;t=2", unit_pool), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_ds_level_parse(&r, "w=x;t=2;a=0", unit_pool),
                    APR_EINVAL);
    CU_ASSERT_EQUAL(memds_ds_level_parse(&r, "", unit_pool), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_ds_level_parse(&r, NULL, unit_pool), APR_EINVAL);
}

static void test_failures(void)
{
    orig_t ob = { HDR, "text", 4, 0, 0, 0 };
    memds_trunc_orig_t o = { mixed("plain", NULL), fetch, &ob };
    const char *out, *why;
    apr_size_t len;
    int k;

    for (k = 1; k <= 2; ++k) {
        ob.calls = 0;
        ob.fail_at = k;
        CU_ASSERT_EQUAL(memds_trunc_build(&out, &len,
                                          memds_email_make(unit_pool), &o, 4000,
                                          &why, unit_pool),
                        APR_EGENERAL);
    }
    /* a header without its blank line */
    ob.fail_at = 0;
    ob.header = "no header at all";
    CU_ASSERT_EQUAL(memds_trunc_build(&out, &len, memds_email_make(unit_pool),
                                      &o, 4000, &why, unit_pool),
                    APR_EINVAL);
}


/* The reference: every CR, LF and CRLF becomes CRLF, byte by byte; a text
 * not ending in a line end gets one. */
static apr_size_t crlf_ref(char *o, const char *t, apr_size_t n)
{
    apr_size_t i, k = 0;

    for (i = 0; i < n; ++i) {
        if (t[i] == '\r' || t[i] == '\n') {
            o[k++] = '\r';
            o[k++] = '\n';
            if (t[i] == '\r' && i + 1 < n && t[i + 1] == '\n') {
                ++i;
            }
        }
        else {
            o[k++] = t[i];
        }
    }
    if (n > 0 && t[n - 1] != '\n' && t[n - 1] != '\r') {
        o[k++] = '\r';
        o[k++] = '\n';
    }
    return k;
}

static void test_line_ends(void)
{
    static const char *const ends[] = { "\r\n", "\n", "\r", "\r\r\n",
                                        "\n\r", "\r\n\r\n", "" };
    static char t[64], ref[160];
    unsigned e1, e2;
    apr_size_t at, n, i;

    for (e1 = 0; e1 < sizeof(ends) / sizeof(ends[0]); ++e1) {
        for (e2 = 0; e2 < sizeof(ends) / sizeof(ends[0]); ++e2) {
            for (at = 0; at < 20; ++at) {
                orig_t ob = { HDR, t, 0, 0, 0, 0 };
                memds_trunc_orig_t o = { mixed("plain", "utf-8"), fetch, &ob };
                memds_email_t *e = memds_email_make(unit_pool);
                const char *out, *why, *body;
                apr_size_t len, rl;

                n = 0;
                for (i = 0; i < at; ++i) {
                    t[n++] = (char)('a' + i % 26);
                }
                memcpy(t + n, ends[e1], strlen(ends[e1]));
                n += strlen(ends[e1]);
                for (i = 0; i < 9; ++i) {
                    t[n++] = 'x';
                }
                memcpy(t + n, ends[e2], strlen(ends[e2]));
                n += strlen(ends[e2]);
                ob.textlen = n;
                CU_ASSERT_EQUAL_FATAL(memds_trunc_build(&out, &len, e, &o, 9000,
                                                        &why, unit_pool),
                                      APR_SUCCESS);
                rl = crlf_ref(ref, t, n);
                ref[rl] = '\0';
                body = strstr(out, "8bit\r\n\r\n");
                CU_ASSERT_PTR_NOT_NULL_FATAL(body);
                body += 8;
                /* (the text part ends where the attachments' list begins:
                 * a single-part result, so at the end of out) */
                CU_ASSERT_EQUAL(strlen(body), rl);
                CU_ASSERT_STRING_EQUAL(body, ref);
            }
        }
    }
}

void unit_add_trunc(void)
{
    CU_pSuite s = CU_add_suite("trunc", NULL, NULL);

    CU_add_test(s,
                "multipart: text cut on a character boundary, the rest "
                "listed",
                test_multipart_cut);
    CU_add_test(s, "a short text goes whole", test_short_text_whole);
    CU_add_test(s, "an HTML-only mail", test_html_only);
    CU_add_test(s, "non-UTF-8 text as base64", test_base64_other_charset);
    CU_add_test(s, "8bit text: NUL and line lengths", test_text_lines);
    CU_add_test(s, "8bit text: bare CR and LF made CRLF at every alignment",
                test_line_ends);
    CU_add_test(s, "a header too big is cut", test_header_too_big);
    CU_add_test(s, "failures", test_failures);
    CU_add_test(s, "levels: text limit, headers only, one attachment",
                test_levels);
    CU_add_test(s, "the compact form of a level", test_level_form);
}
