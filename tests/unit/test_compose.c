/* Unit tests: reply and forward without download (email/memds_compose.c),
 * over an original served by a fake fetch callback: what is quoted, what
 * is attached byte for byte, the header fields, and the failures. */
#include "unit.h"
#include "email/memds_compose.h"

#include <apr_strings.h>
#include <string.h>

/* The original: a multipart/mixed with a text part (1), its HTML twin (2)
 * and a binary attachment (3). */
typedef struct orig_t {
    int calls, fail_at;       /* fail the fail_at-th fetch (1-based) */
    const char *text_section; /* what "1" holds */
} orig_t;

static const char ATT_MIME[] =
    "Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\n";
static const char ATT_BODY[] = "AAECAwQF/w==\r\n";

static apr_status_t fetch(void *baton, const char *section, int binary,
                          const char **pdata, apr_size_t *plen)
{
    orig_t *o = baton;
    const char *d = NULL;

    if (++o->calls == o->fail_at) {
        return APR_EGENERAL;
    }
    if (strncmp(section, "HEADER.FIELDS", 13) == 0) {
        d = "From: Bob <bob@example.test>\r\nDate: Mon, 1 Dec 2026 10:00:00 "
            "+0000\r\n"
            "Message-ID: <orig@example.test>\r\nReferences: "
            "<older@example.test>\r\n\r\n";
    }
    else if (strcmp(section, "1") == 0 && binary) {
        d = o->text_section;
    }
    else if (strcmp(section, "3.MIME") == 0) {
        d = ATT_MIME;
    }
    else if (strcmp(section, "3") == 0) {
        d = ATT_BODY;
    }
    else if (strcmp(section, "") == 0) {
        d = "Subject: whole\r\n\r\nthe whole original\r\n";
    }
    if (d == NULL) {
        return APR_ENOENT;
    }
    *pdata = d;
    *plen = strlen(d);
    return APR_SUCCESS;
}

static apr_array_header_t *parts(int single)
{
    apr_array_header_t *a = apr_array_make(unit_pool, 3,
                                           sizeof(memds_compose_part_t));
    memds_compose_part_t *p = apr_array_push(a);

    memset(p, 0, sizeof(*p));
    p->section = "1";
    p->type = "TEXT";
    p->subtype = "PLAIN";
    p->charset = "utf-8";
    if (single) {
        return a;
    }
    p = apr_array_push(a);
    memset(p, 0, sizeof(*p));
    p->section = "2";
    p->type = "text";
    p->subtype = "html";
    p->charset = "utf-8";
    p = apr_array_push(a);
    memset(p, 0, sizeof(*p));
    p->section = "3";
    p->type = "application";
    p->subtype = "octet-stream";
    p->encoding = "base64";
    p->disposition = "attachment";
    return a;
}

static const char DEVICE_REPLY[] = "From: Alice <alice@example.test>\r\nTo: "
                                   "bob@example.test\r\nSubject: Re: x\r\n"
                                   "X-MemDS-Reply: m42\r\n\r\nSure.\r\n";
static const char DEVICE_FWD[] = "From: Alice <alice@example.test>\r\nTo: "
                                 "carol@example.test\r\nSubject: Fwd: x\r\n"
                                 "X-MemDS-Forward: m42\r\nContent-Type: "
                                 "text/plain; charset=UTF-8\r\n\r\nFYI\r\n";

static void test_target(void)
{
    const char *id;
    int fwd;

    memds_compose_target(DEVICE_REPLY, strlen(DEVICE_REPLY), &id, &fwd,
                         unit_pool);
    CU_ASSERT_STRING_EQUAL(id, "m42");
    CU_ASSERT_EQUAL(fwd, 0);
    memds_compose_target(DEVICE_FWD, strlen(DEVICE_FWD), &id, &fwd, unit_pool);
    CU_ASSERT_STRING_EQUAL(id, "m42");
    CU_ASSERT_EQUAL(fwd, 1);
    memds_compose_target("Subject: plain\r\n\r\nx\r\n", 21, &id, &fwd,
                         unit_pool);
    CU_ASSERT_PTR_NULL(id);
}

static void test_reply(void)
{
    orig_t ob = { 0, 0, "Hello Alice,\r\n> earlier\r\nbye\r\n" };
    memds_compose_orig_t o = { 0, NULL, 1, fetch, &ob };
    const char *out, *why;
    apr_size_t len;

    o.parts = parts(0);
    CU_ASSERT_EQUAL_FATAL(memds_compose(&out, &len, DEVICE_REPLY,
                                        strlen(DEVICE_REPLY), &o, &why,
                                        unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL(strlen(out), len);
    CU_ASSERT_PTR_NULL(strstr(out, "X-MemDS-Reply"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Subject: Re: x\r\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out,
               "In-Reply-To: <orig@example.test>\r\n"
               "References: <older@example.test> <orig@example.test>\r\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "MIME-Version: 1.0\r\nContent-Type: text/plain; "
                    "charset=UTF-8\r\n\r\nSure.\r\n\r\nOn Mon, 1 Dec 2026 "
                    "10:00:00 +0000, Bob <bob@example.test> wrote:\r\n"
                    "> Hello Alice,\r\n>> earlier\r\n> bye\r\n"));
    /* a reply attaches nothing */
    CU_ASSERT_PTR_NULL(strstr(out, "multipart"));
    CU_ASSERT_PTR_NULL(strstr(out, "a.bin"));
}

static void test_forward(void)
{
    orig_t ob = { 0, 0, "original text\r\n" };
    memds_compose_orig_t o = { 1, NULL, 1, fetch, &ob };
    const char *out, *why, *b, *att;
    apr_size_t len;

    o.parts = parts(0);
    CU_ASSERT_EQUAL_FATAL(memds_compose(&out, &len, DEVICE_FWD,
                                        strlen(DEVICE_FWD), &o, &why,
                                        unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_PTR_NULL(strstr(out, "X-MemDS-Forward"));
    CU_ASSERT_PTR_NULL(strstr(out, "In-Reply-To"));
    b = strstr(out, "Content-Type: multipart/mixed; boundary=\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "FYI\r\n\r\n---------- Forwarded message ----------\r\n"
                    "From: Bob <bob@example.test>\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "> original text\r\n"));
    /* the attachment byte for byte, its MIME header as stored; the HTML
     * twin of the quoted text is left out */
    att = strstr(out, ATT_MIME);
    CU_ASSERT_PTR_NOT_NULL_FATAL(att);
    CU_ASSERT_EQUAL(strncmp(att + strlen(ATT_MIME), ATT_BODY, strlen(ATT_BODY)),
                    0);
    CU_ASSERT_PTR_NULL(strstr(out, "text/html"));
    /* closed */
    CU_ASSERT_EQUAL(memcmp(out + len - 4, "--\r\n", 4), 0);
}

static void test_forward_single_unquotable(void)
{
    /* a Latin-1 original cannot be quoted: it goes whole as message/rfc822 */
    orig_t ob = { 0, 0, "x" };
    memds_compose_orig_t o = { 1, NULL, 0, fetch, &ob };
    const char *out, *why;
    apr_size_t len;

    o.parts = parts(1);
    APR_ARRAY_IDX(o.parts, 0, memds_compose_part_t).charset = "iso-8859-1";
    CU_ASSERT_EQUAL_FATAL(memds_compose(&out, &len, DEVICE_FWD,
                                        strlen(DEVICE_FWD), &o, &why,
                                        unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "Content-Type: message/rfc822\r\nContent-Disposition: "
                    "attachment\r\n\r\nSubject: whole\r\n\r\nthe whole "
                    "original\r\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "> "));
}

static void test_failures(void)
{
    orig_t ob = { 0, 0, "t\r\n" };
    memds_compose_orig_t o = { 1, NULL, 1, fetch, &ob };
    const char *out, *why;
    apr_size_t len;
    int at;

    o.parts = parts(0);
    /* every fetch failing in turn: its error comes back, no reason of ours */
    for (at = 1; at <= 4; ++at) {
        ob.calls = 0;
        ob.fail_at = at;
        CU_ASSERT_EQUAL(memds_compose(&out, &len, DEVICE_FWD,
                                      strlen(DEVICE_FWD), &o, &why, unit_pool),
                        APR_EGENERAL);
        CU_ASSERT_PTR_NULL(why);
    }
    /* a device message without a header/body separator */
    ob.calls = 0;
    ob.fail_at = 0;
    CU_ASSERT_EQUAL(memds_compose(&out, &len, "no header at all", 16, &o, &why,
                                  unit_pool),
                    APR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(why);
}

void unit_add_compose(void)
{
    CU_pSuite s = CU_add_suite("compose", NULL, NULL);

    CU_add_test(s, "the original a message names", test_target);
    CU_add_test(s, "reply: quoted, In-Reply-To, nothing attached", test_reply);
    CU_add_test(s, "forward: quoted, attachments byte for byte", test_forward);
    CU_add_test(s, "forward of an unquotable single part",
                test_forward_single_unquotable);
    CU_add_test(s, "failures", test_failures);
}
