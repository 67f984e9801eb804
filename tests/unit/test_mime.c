/* Unit tests: email/memds_mime.c (an Outbox message prepared for SMTP:
 * envelope from the header, Bcc removed, Message-ID/Date added, CRLF,
 * body untouched). */
#include "unit.h"
#include "email/memds_mime.h"

#include <apr_base64.h>
#include <apr_date.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEF_FROM "dev@example.org"
#define DOMAIN "gw.example.org"

/* ------------------------------------------------------------- helpers */

static memds_mime_submission_t *prep_ok(const char *msg, apr_size_t len,
                                        const char *def, const char *dom,
                                        apr_size_t max)
{
    memds_mime_submission_t *s = NULL;
    const char *why = NULL;
    apr_status_t rv;

    rv = memds_mime_prepare(&s, msg, len, def, dom, max, &why, unit_pool);
    if (rv != APR_SUCCESS || s == NULL) {
        fprintf(stderr, "\n  prepare failed (%d): %s\n  input: %.200s\n", rv,
                why ? why : "(no reason)", msg);
        return NULL;
    }
    return s;
}

#define PREP(lit) prep_ok((lit), sizeof(lit) - 1, DEF_FROM, DOMAIN, 0)
#define PREP_WITH(lit, def, dom, max) \
    prep_ok((lit), sizeof(lit) - 1, (def), (dom), (max))
/* s starts with the literal. */
#define STARTS(s, lit) (strncmp((s), (lit), sizeof(lit) - 1) == 0)

/* Preparing fails with APR_EINVAL, a reason containing needle, and
 * leaves *psub alone. */
static int fails_with(const char *msg, apr_size_t len, const char *def,
                      apr_size_t max, const char *needle)
{
    memds_mime_submission_t *s = NULL;
    const char *why = NULL;
    apr_status_t rv;

    rv = memds_mime_prepare(&s, msg, len, def, DOMAIN, max, &why, unit_pool);
    if (rv != APR_EINVAL || s != NULL || why == NULL
        || strstr(why, needle) == NULL) {
        fprintf(stderr,
                "\n  expected failure '%s', got rv %d: %s\n  input: "
                "%.200s\n",
                needle, rv, why ? why : "(none)", msg ? msg : "(null)");
        return 0;
    }
    return 1;
}

#define FAILS(lit, needle) \
    CU_ASSERT(fails_with((lit), sizeof(lit) - 1, DEF_FROM, 0, (needle)))

/* The recipients are exactly the NULL-terminated list. */
static int rcpts_are(const memds_mime_submission_t *s, ...)
{
    va_list ap;
    const char *want;
    int i = 0, ok = 1;

    if (s == NULL) {
        return 0;
    }
    va_start(ap, s);
    while ((want = va_arg(ap, const char *)) != NULL) {
        if (i >= s->rcpts->nelts
            || strcmp(APR_ARRAY_IDX(s->rcpts, i, const char *), want) != 0) {
            ok = 0;
        }
        ++i;
    }
    va_end(ap);
    if (i != s->rcpts->nelts) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "\n  recipients:");
        for (i = 0; i < s->rcpts->nelts; ++i) {
            fprintf(stderr, " [%s]", APR_ARRAY_IDX(s->rcpts, i, const char *));
        }
        fprintf(stderr, "\n");
    }
    return ok;
}

#define RCPTS(s, ...) CU_ASSERT(rcpts_are((s), __VA_ARGS__, (const char *)NULL))

/* The header part of the prepared data (up to the first empty line). */
static const char *header_of(const memds_mime_submission_t *s)
{
    const char *e = strstr(s->data, "\r\n\r\n");
    return e ? apr_pstrmemdup(unit_pool, s->data, (apr_size_t)(e - s->data) + 2)
             : NULL;
}

/* Case-insensitive: the header has a line starting with field. */
static int has_field(const memds_mime_submission_t *s, const char *field)
{
    const char *h = header_of(s), *c;
    apr_size_t n = strlen(field);

    for (c = h; c && *c; c = strstr(c, "\r\n") ? strstr(c, "\r\n") + 2 : "") {
        apr_size_t i;
        for (i = 0; i < n && c[i] && apr_tolower(c[i]) == apr_tolower(field[i]);
             ++i) {
        }
        if (i == n) {
            return 1;
        }
    }
    return 0;
}

/* data ends with exactly the n bytes of tail. */
static int ends_with(const memds_mime_submission_t *s, const char *tail,
                     apr_size_t n)
{
    return s && s->len >= n && memcmp(s->data + s->len - n, tail, n) == 0;
}

#define ENDS(s, lit) ends_with((s), (lit), sizeof(lit) - 1)

/* Every LF follows a CR and every CR precedes an LF. */
static int all_crlf(const char *d, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; ++i) {
        if ((d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
            || (d[i] == '\r' && (i + 1 == n || d[i + 1] != '\n'))) {
            return 0;
        }
    }
    return 1;
}

#define HDRS_FULL \
    "From: Dev <dev@example.org>\r\n" \
    "Date: Mon, 2 Jun 2025 10:00:00 +0200\r\n" \
    "Message-ID: <m1@example.org>\r\n"

/* -------------------------------------------------------------- tests */

static void test_groups(void)
{
    memds_mime_submission_t *s;

    s = PREP(HDRS_FULL "To: undisclosed-recipients:;\r\n"
                       "Bcc: a@x.org\r\n\r\nbody\r\n");
    RCPTS(s, "a@x.org");
    s = PREP(HDRS_FULL "To: Team: a@x.org, \"B\" <b@y.org>;, c@z.org\r\n"
                       "\r\nbody\r\n");
    RCPTS(s, "a@x.org", "b@y.org", "c@z.org");
    /* empty group, nested groups (flattened), group in Cc */
    s = PREP(HDRS_FULL "To: Nobody: ;, Outer: Inner: i@x.org;, o@x.org;\r\n"
                       "Cc: List: l1@y.org, l2@y.org;\r\n\r\nbody\r\n");
    RCPTS(s, "i@x.org", "o@x.org", "l1@y.org", "l2@y.org");
    /* the group's header is written as it was */
    CU_ASSERT(s && strstr(s->data, "Cc: List: l1@y.org, l2@y.org;\r\n"));
}

static void test_quoted_names(void)
{
    memds_mime_submission_t *s;

    s = PREP(HDRS_FULL "To: \"Doe, John\" <j@x.org>,"
                       " \"Smith, A.\" <a@y.org>\r\n"
                       "\r\nbody\r\n");
    RCPTS(s, "j@x.org", "a@y.org");
    /* an address-like display name is not an address */
    s = PREP(HDRS_FULL "To: \"evil@z.org, <e2@z.org>\" <real@x.org>\r\n"
                       "\r\nbody\r\n");
    RCPTS(s, "real@x.org");
    /* comments (with commas), angle-addr without a name, quoted local part */
    s = PREP(HDRS_FULL "To: a@x.org (Alice, at work), (c) b@y.org,\r\n"
                       " <c@z.org>, \"d.d\"@z.org\r\n\r\nbody\r\n");
    RCPTS(s, "a@x.org", "b@y.org", "c@z.org", "\"d.d\"@z.org");
    /* a blank inside a quoted local part is legal but cannot be passed to
     * the SMTP layer: refused with a reason */
    {
        memds_mime_submission_t *r;
        const char *why = NULL;
        const char *m = HDRS_FULL "To: \"d d\"@z.org\r\n\r\nbody\r\n";
        CU_ASSERT_EQUAL(memds_mime_prepare(&r, m, strlen(m), DEF_FROM, NULL, 0,
                                           &why, unit_pool),
                        APR_EINVAL);
        CU_ASSERT(why != NULL && strstr(why, "blank") != NULL);
        m = HDRS_FULL
            "To: \"d\\ d\"@z.org\r\n\r\nbody\r\n"; /* an escaped blank */
        CU_ASSERT_EQUAL(memds_mime_prepare(&r, m, strlen(m), DEF_FROM, NULL, 0,
                                           &why, unit_pool),
                        APR_EINVAL);
    }
}

static void test_encoded_names(void)
{
    memds_mime_submission_t *s;

    s = PREP(HDRS_FULL "To: =?UTF-8?B?w4RyZ2Vy?= <a@x.org>,\r\n"
                       " =?ISO-8859-1?Q?M=FCller=2C_Hans?= <m@y.org>\r\n"
                       "Cc: \"=?UTF-8?Q?Caf=C3=A9=2C_Bar?=\" <c@z.org>\r\n"
                       "\r\nbody\r\n");
    RCPTS(s, "a@x.org", "m@y.org", "c@z.org");
    /* raw UTF-8 in a display name (RFC 6532) */
    s = PREP(HDRS_FULL "To: J\xc3\xbcrgen <j@x.org>\r\n\r\nbody\r\n");
    RCPTS(s, "j@x.org");
    CU_ASSERT(s && s->smtputf8 == 0);
}

static void test_bcc_removed(void)
{
    static const char body[] = "Bcc: not-a-header@z.org\r\nbody\r\n";
    memds_mime_submission_t *s;
    const char *h;

    s = PREP(HDRS_FULL "To: a@x.org\r\n"
                       "Bcc: b1@y.org,\r\n"
                       "  \"Hidden, Too\" <b2@y.org>\r\n"
                       "Subject: hi\r\n"
                       "bcc: b3@y.org\r\n"
                       "BCC : b4@y.org\r\n"
                       "X-Other: kept\r\n"
                       "\r\n"
                       "Bcc: not-a-header@z.org\r\nbody\r\n");
    RCPTS(s, "a@x.org", "b1@y.org", "b2@y.org", "b3@y.org", "b4@y.org");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->removed_bcc, 3);
    h = header_of(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NULL(strstr(h, "b1@"));
    CU_ASSERT_PTR_NULL(strstr(h, "b2@"));
    CU_ASSERT_PTR_NULL(strstr(h, "Hidden"));
    CU_ASSERT_PTR_NULL(strstr(h, "b3@"));
    CU_ASSERT_PTR_NULL(strstr(h, "b4@"));
    CU_ASSERT_FALSE(has_field(s, "bcc"));
    /* the rest exactly, in order; the body's "Bcc:" line untouched */
    CU_ASSERT_STRING_EQUAL(s->data,
                           HDRS_FULL "To: a@x.org\r\n"
                                     "Subject: hi\r\nX-Other: kept\r\n\r\n"
                                     "Bcc: "
                                     "not-a-header@z.org\r\nbody\r\n");
    CU_ASSERT(ends_with(s, body, sizeof(body) - 1));
    CU_ASSERT_EQUAL(s->added_date + s->added_message_id + s->added_from, 0);
    /* the sender's copies get them back: exactly as they were */
    CU_ASSERT_STRING_EQUAL(s->bcc_fields,
                           "Bcc: b1@y.org,\r\n"
                           "  \"Hidden, Too\" <b2@y.org>\r\nbcc: b3@y.org\r\n"
                           "BCC : b4@y.org\r\n");
    CU_ASSERT_EQUAL(s->bcc_len, strlen(s->bcc_fields));

    /* Bcc as the last field, folded, before the empty line; empty Bcc */
    s = PREP(HDRS_FULL "To: a@x.org\r\nBcc:\r\nbcc: x@y.org,\r\n\ty@y.org\r\n"
                       "\r\nbody");
    RCPTS(s, "a@x.org", "x@y.org", "y@y.org");
    CU_ASSERT(s && s->removed_bcc == 2);
    CU_ASSERT(s && strcmp(s->data, HDRS_FULL "To: a@x.org\r\n\r\nbody") == 0);
    CU_ASSERT(s
              && strcmp(s->bcc_fields, "Bcc:\r\nbcc: x@y.org,\r\n\ty@y.org\r\n")
                     == 0);
    /* the last line of a message without a body; none at all */
    s = PREP(HDRS_FULL "To: a@x.org\r\nBcc: z@y.org");
    CU_ASSERT(s && strcmp(s->bcc_fields, "Bcc: z@y.org\r\n") == 0);
    s = PREP(HDRS_FULL "To: a@x.org\r\n\r\nb");
    CU_ASSERT(s && s->bcc_len == 0 && strcmp(s->bcc_fields, "") == 0);

    /* Resent-* fields are not ours: kept, not used */
    s = PREP(HDRS_FULL "To: a@x.org\r\nResent-Bcc: r@y.org\r\n\r\nbody");
    RCPTS(s, "a@x.org");
    CU_ASSERT(s && s->removed_bcc == 0
              && strstr(s->data, "Resent-Bcc: r@y.org"));

    /* Bcc only */
    s = PREP(HDRS_FULL "Bcc: only@y.org\r\n\r\nbody");
    RCPTS(s, "only@y.org");
    CU_ASSERT(s && strcmp(s->data, HDRS_FULL "\r\nbody") == 0);
}

static void test_duplicates(void)
{
    memds_mime_submission_t *s;

    s = PREP(HDRS_FULL "To: a@x.org, b@y.org, A@X.ORG\r\n"
                       "Cc: \"Again\" <a@x.org>, c@z.org, B@y.org\r\n"
                       "Bcc: c@Z.org, d@z.org\r\n\r\nbody");
    RCPTS(s, "a@x.org", "b@y.org", "c@z.org", "d@z.org");
    /* the first spelling wins */
    s = PREP(HDRS_FULL "To: Mixed@Case.ORG\r\nCc: mixed@case.org\r\n\r\nx");
    RCPTS(s, "Mixed@Case.ORG");
}

static void test_message_id_date(void)
{
    static const char full[] = HDRS_FULL "To: a@x.org\r\n\r\nbody\r\n";
    memds_mime_submission_t *s;
    const char *h, *c;
    apr_time_t t;

    /* present: nothing added, the message unchanged */
    s = PREP(full);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->added_message_id, 0);
    CU_ASSERT_EQUAL(s->added_date, 0);
    CU_ASSERT_EQUAL(s->added_from, 0);
    CU_ASSERT_STRING_EQUAL(s->message_id, "<m1@example.org>");
    CU_ASSERT_STRING_EQUAL(s->from, "dev@example.org");
    CU_ASSERT_EQUAL(s->len, sizeof(full) - 1);
    CU_ASSERT(memcmp(s->data, full, sizeof(full) - 1) == 0);

    /* missing: both added before the empty line */
    s = PREP("From: x@sender.org\r\nTo: a@x.org\r\nSubject: s\r\n\r\nbody\r\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->added_message_id, 1);
    CU_ASSERT_EQUAL(s->added_date, 1);
    CU_ASSERT(STARTS(s->message_id, "<"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s->message_id, "@" DOMAIN ">"));
    CU_ASSERT_PTR_NULL(strchr(s->message_id + 1, '<'));
    h = header_of(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT(STARTS(h, "From: x@sender.org\r\nTo: a@x.org\r\nSubject: s\r\n"
                        "Date: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, apr_pstrcat(unit_pool, "\r\nMessage-ID: ",
                                                 s->message_id, "\r\n", NULL)));
    c = strstr(h, "Date: ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    c = apr_pstrndup(unit_pool, c + 6, (apr_size_t)(strstr(c, "\r\n") - c - 6));
    t = apr_date_parse_rfc(c);
    CU_ASSERT(t != APR_DATE_BAD);
    CU_ASSERT(t > apr_time_now() - apr_time_from_sec(60)
              && t <= apr_time_now());
    CU_ASSERT_PTR_NOT_NULL(strstr(c, " +0000"));
    CU_ASSERT(ENDS(s, "\r\n\r\nbody\r\n"));

    /* two messages get different ids */
    {
        memds_mime_submission_t *s2 = PREP("From: x@sender.org\r\nTo: a@x.org"
                                           "\r\n\r\nbody\r\n");
        CU_ASSERT(s2 && strcmp(s2->message_id, s->message_id) != 0);
    }

    /* no domain given: the sender's */
    s = PREP_WITH("From: x@sender.org\r\nTo: a@x.org\r\n\r\nb", DEF_FROM, NULL,
                  0);
    CU_ASSERT(s && strstr(s->message_id, "@sender.org>") != NULL);

    /* an existing folded Message-ID, a Message-ID without <>, empty ones */
    s = PREP("From: x@sender.org\r\nMessage-ID:\r\n <fold@ed.org>\r\n"
             "To: a@x.org\r\nDate: Tue, 3 Jun 2025 08:00:00 +0000\r\n\r\nb");
    CU_ASSERT(s && strcmp(s->message_id, "<fold@ed.org>") == 0);
    CU_ASSERT(s && s->added_message_id == 0 && s->added_date == 0);
    s = PREP("From: x@sender.org\r\nmessage-id: bare@id.org\r\n"
             "DATE: Tue, 3 Jun 2025 08:00:00 +0000\r\nTo: a@x.org\r\n\r\nb");
    CU_ASSERT(s && strcmp(s->message_id, "<bare@id.org>") == 0);
    CU_ASSERT(s && s->added_message_id == 0 && s->added_date == 0);
    s = PREP("From: x@sender.org\r\nMessage-ID: <unclosed@id.org\r\n"
             "Date: Tue, 3 Jun 2025 08:00:00 +0000\r\nTo: a@x.org\r\n\r\nb");
    CU_ASSERT(s && strcmp(s->message_id, "<unclosed@id.org>") == 0);
    s = PREP("From: x@sender.org\r\nMessage-ID: \r\nDate:\r\nTo: a@x.org\r\n"
             "\r\nb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(s->added_message_id == 1 && s->added_date == 1);
    CU_ASSERT_PTR_NULL(strstr(s->data, "Message-ID: \r\n"));
    CU_ASSERT_PTR_NULL(strstr(s->data, "Date:\r\n"));
    CU_ASSERT(STARTS(s->data, "From: x@sender.org\r\nTo: a@x.org\r\nDate: "));

    /* a bad Message-ID domain is refused */
    {
        memds_mime_submission_t *s3 = NULL;
        const char *why = NULL;
        CU_ASSERT_EQUAL(memds_mime_prepare(&s3, "To: a@x.org\r\n\r\nb", 17,
                                           DEF_FROM, "bad domain>", 0, &why,
                                           unit_pool),
                        APR_EINVAL);
        CU_ASSERT(s3 == NULL && why && strstr(why, "Message-ID"));
    }
}

/* A multipart message with a line starting with ".", 8-bit UTF-8 text,
 * trailing white space and a base64 attachment: the body comes out as it
 * went in, byte for byte. */
#define MP_BODY \
    "This is a multi-part message in MIME format.\r\n" \
    "--b1\r\n" \
    "Content-Type: text/plain; charset=UTF-8\r\n" \
    "Content-Transfer-Encoding: 8bit\r\n" \
    "\r\n" \
    "Gr\xc3\xbc\xc3\x9f" \
    "e aus K\xc3\xb6ln \xe2\x80\x93 " \
    "\xe6\x97\xa5\xe6\x9c\xac\r\n" \
    ".\r\n" \
    ".leading dot\r\n" \
    "..two dots\r\n" \
    "trailing spaces   \r\n" \
    "\ttab line\r\n" \
    "\r\n" \
    "\r\n" \
    "--b1\r\n" \
    "Content-Type: application/octet-stream; name=\"a.bin\"\r\n" \
    "Content-Transfer-Encoding: base64\r\n" \
    "Content-Disposition: attachment; filename=\"a.bin\"\r\n" \
    "\r\n" \
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\r\n" \
    "MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f\r\n" \
    "YGFiYw==\r\n" \
    "--b1--\r\n" \
    "epilogue without line end"

static void test_body_exact(void)
{
    static const char body[] = MP_BODY;
    memds_mime_submission_t *s;

    s = PREP("From: =?UTF-8?Q?D=C3=A9v?= <dev@example.org>\r\n"
             "To: a@x.org\r\nBcc: b@y.org\r\n"
             "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
             "MIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed;\r\n boundary=\"b1\"\r\n"
             "\r\n" MP_BODY);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(ENDS(s, "\r\n\r\n" MP_BODY));
    /* everything after the first empty line is the body, nothing else */
    {
        const char *b = strstr(s->data, "\r\n\r\n");
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        b += 4;
        CU_ASSERT_EQUAL(s->len - (apr_size_t)(b - s->data), sizeof(body) - 1);
        CU_ASSERT(memcmp(b, body, sizeof(body) - 1) == 0);
    }
    CU_ASSERT_EQUAL(s->eightbit, 1);
    CU_ASSERT_EQUAL(s->data[s->len], '\0');
    /* folded fields other than Bcc keep their folding */
    CU_ASSERT_PTR_NOT_NULL(strstr(s->data, "Content-Type: multipart/mixed;\r\n"
                                           " boundary=\"b1\"\r\n"));
    CU_ASSERT(all_crlf(s->data, s->len));
    CU_ASSERT_EQUAL(s->len, strlen(s->data));

    /* 8-bit in the header is kept too */
    s = PREP("From: dev@example.org\r\nTo: a@x.org\r\n"
             "Subject: Gr\xc3\xbc\xc3\x9f"
             "e\r\n\r\nplain ascii\r\n");
    CU_ASSERT(s
              && strstr(s->data, "Subject: Gr\xc3\xbc\xc3\x9f"
                                 "e\r\n"));
    CU_ASSERT(s && s->eightbit == 1);
    s = PREP(HDRS_FULL "To: a@x.org\r\n\r\nascii\r\n");
    CU_ASSERT(s && s->eightbit == 0);

    /* a NUL byte in the body is passed on (the SMTP side decides) */
    {
        static const char nul[] = HDRS_FULL "To: a@x.org\r\n\r\na\0b\r\n";
        s = prep_ok(nul, sizeof(nul) - 1, DEF_FROM, DOMAIN, 0);
        CU_ASSERT(s && s->len == sizeof(nul) - 1
                  && memcmp(s->data, nul, sizeof(nul) - 1) == 0);
    }
}

/* The input need not be NUL-terminated (ASan checks a malloc'ed copy of
 * exactly len bytes, CRLF and LF forms, with and without a body). */
static void test_unterminated_input(void)
{
    static const char *const msgs[] = {
        HDRS_FULL "To: a@x.org\r\nBcc: b@y.org\r\n\r\nbody",
        "To: a@x.org\nBcc: b@y.org\n\nbody\n.",
        "To: a@x.org\r\nBcc: b@y.org",
        "To: a@x.org\r\nBcc: b@y.org\r",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(msgs) / sizeof(msgs[0]); ++i) {
        apr_size_t n = strlen(msgs[i]);
        char *copy = malloc(n);
        memds_mime_submission_t *s;

        CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
        memcpy(copy, msgs[i], n);
        s = prep_ok(copy, n, DEF_FROM, DOMAIN, 0);
        free(copy);
        RCPTS(s, "a@x.org", "b@y.org");
        CU_ASSERT(s && all_crlf(s->data, s->len));
    }
}

static void test_lf_to_crlf(void)
{
    memds_mime_submission_t *s;

    s = PREP("From: dev@example.org\nTo: a@x.org,\n b@y.org\nBcc: c@z.org\n"
             "Date: Mon, 2 Jun 2025 10:00:00 +0200\n"
             "Message-ID: <lf@example.org>\n\n"
             "line 1\n.dot\n\nlast\n");
    RCPTS(s, "a@x.org", "b@y.org", "c@z.org");
    CU_ASSERT(s
              && strcmp(s->data, "From: dev@example.org\r\n"
                                 "To: a@x.org,\r\n b@y.org\r\n"
                                 "Date: Mon, 2 Jun 2025 10:00:00 +0200\r\n"
                                 "Message-ID: <lf@example.org>\r\n\r\n"
                                 "line 1\r\n.dot\r\n\r\nlast\r\n")
                     == 0);
    /* mixed line ends, a bare CR */
    s = PREP("From: dev@example.org\r\nTo: a@x.org\n"
             "Date: Mon, 2 Jun 2025 10:00:00 +0200\r\n"
             "Message-ID: <lf@example.org>\n\r\n"
             "crlf\r\nlf\ncr\rend");
    CU_ASSERT(s && ENDS(s, "\r\n\r\ncrlf\r\nlf\r\ncr\r\nend"));
    CU_ASSERT(s && all_crlf(s->data, s->len));
}

static void test_default_from(void)
{
    memds_mime_submission_t *s;

    /* no From: the default is the sender and becomes the From field */
    s = PREP("To: a@x.org\r\nSubject: s\r\n\r\nbody");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s->from, DEF_FROM);
    CU_ASSERT_EQUAL(s->added_from, 1);
    CU_ASSERT(STARTS(s->data, "To: a@x.org\r\nSubject: s\r\nFrom: " DEF_FROM
                              "\r\nDate: "));

    /* name-addr default */
    s = PREP_WITH("To: a@x.org\r\n\r\nb", "Dev Name <dev2@example.org>", DOMAIN,
                  0);
    CU_ASSERT(s && strcmp(s->from, "dev2@example.org") == 0);
    CU_ASSERT(s
              && strstr(s->data, "\r\nFrom: Dev Name <dev2@example.org>\r\n"));
    /* non-ASCII name: encoded */
    s = PREP_WITH("To: a@x.org\r\n\r\nb", "J\xc3\xbcrgen <j@example.org>",
                  DOMAIN, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s->from, "j@example.org");
    CU_ASSERT_PTR_NOT_NULL(strstr(s->data, "From: =?"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s->data, "<j@example.org>\r\n"));
    CU_ASSERT(all_crlf(s->data, s->len));

    /* From with a name: only the addr-spec; the default is not used */
    s = PREP("From: \"Doe, Jane\" <jane@example.com>\r\nTo: a@x.org\r\n\r\nb");
    CU_ASSERT(s && strcmp(s->from, "jane@example.com") == 0
              && s->added_from == 0);
    /* several From mailboxes: the Sender; without Sender the first */
    s = PREP("From: a1@example.com, a2@example.com\r\n"
             "Sender: Sec <sec@example.com>\r\nTo: a@x.org\r\n\r\nb");
    CU_ASSERT(s && strcmp(s->from, "sec@example.com") == 0);
    s = PREP("From: a1@example.com, a2@example.com\r\nTo: a@x.org\r\n\r\nb");
    CU_ASSERT(s && strcmp(s->from, "a1@example.com") == 0);
    /* a From field without a mailbox is replaced */
    s = PREP("From: \r\nTo: a@x.org\r\n\r\nb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s->from, DEF_FROM);
    CU_ASSERT(s->added_from == 1);
    CU_ASSERT(STARTS(s->data, "To: a@x.org\r\nFrom: " DEF_FROM "\r\n"));

    /* no From and no default */
    CU_ASSERT(fails_with("To: a@x.org\r\n\r\nb", 17, NULL, 0, "no sender"));
    CU_ASSERT(fails_with("To: a@x.org\r\n\r\nb", 17, "", 0, "no sender"));
    /* bad defaults, including header injection */
    CU_ASSERT(
        fails_with("To: a@x.org\r\n\r\nb", 17, "nobody", 0, "default sender"));
    CU_ASSERT(fails_with("To: a@x.org\r\n\r\nb", 17, "a@b.org, c@d.org", 0,
                         "default sender"));
    CU_ASSERT(fails_with("To: a@x.org\r\n\r\nb", 17,
                         "a@b.org\r\nBcc: spy@evil.org", 0, "default sender"));
    /* a bad From address in the message */
    FAILS("From: john\r\nTo: a@x.org\r\n\r\nb", "From");
    /* pwhy may be NULL */
    CU_ASSERT_EQUAL(memds_mime_prepare(&s, "To: a@x.org\r\n\r\nb", 17, NULL,
                                       DOMAIN, 0, NULL, unit_pool),
                    APR_EINVAL);
}

/* Sloppy lists with one meaning are accepted. */
static void test_liberal(void)
{
    memds_mime_submission_t *s;

    s = PREP(HDRS_FULL "To: a@x.org <a@x.org>, <b@y.org, c@z.org>,\r\n"
                       " Name<d@z.org>, , e@z.org,\r\n\r\nb");
    RCPTS(s, "a@x.org", "b@y.org", "c@z.org", "d@z.org", "e@z.org");
    /* quotes and parentheses inside each other, escapes */
    s = PREP(HDRS_FULL "To: \"a (b\" <a@x.org>, (c \"d) b@y.org,\r\n"
                       " \"e \\\" f\" <c@z.org>, (g \\) h) d@z.org\r\n\r\nb");
    RCPTS(s, "a@x.org", "b@y.org", "c@z.org", "d@z.org");
    /* trailing dot of a domain, obsolete route */
    s = PREP(HDRS_FULL "To: a@x.org., <@relay.org:b@y.org>\r\n\r\nb");
    RCPTS(s, "a@x.org", "b@y.org");
}

static void test_international(void)
{
    memds_mime_submission_t *s;

    /* IDN domain: A-labels, no SMTPUTF8 needed */
    s = PREP(HDRS_FULL "To: M <m@b\xc3\xbc"
                       "cher.de>\r\n\r\nb");
    RCPTS(s, "m@xn--bcher-kva.de");
    CU_ASSERT(s && s->smtputf8 == 0);
    /* UTF-8 local part: SMTPUTF8 */
    s = PREP(HDRS_FULL "To: \xc3\xa4rger@x.org\r\n\r\nb");
    RCPTS(s, "\xc3\xa4rger@x.org");
    CU_ASSERT(s && s->smtputf8 == 1);
    /* address literal */
    s = PREP(HDRS_FULL "To: a@[192.0.2.1]\r\n\r\nb");
    RCPTS(s, "a@[192.0.2.1]");
}

static void test_errors(void)
{
    memds_mime_submission_t *s = NULL;
    const char *why = NULL;
    static const char big[] = HDRS_FULL "To: a@x.org\r\n\r\n0123456789";
    static const char small[] = "To: a@x.org\r\n\r\nb";

    /* empty */
    CU_ASSERT(fails_with("", 0, DEF_FROM, 0, "empty"));
    CU_ASSERT(fails_with(NULL, 0, DEF_FROM, 0, "empty"));
    /* no recipients */
    FAILS(HDRS_FULL "Subject: s\r\n\r\nbody", "no recipients");
    FAILS(HDRS_FULL "To: undisclosed-recipients:;\r\n\r\nbody",
          "no recipients");
    FAILS(HDRS_FULL "To:\r\nCc: \r\n\r\nbody", "no recipients");
    FAILS("\r\nTo: a@x.org\r\n", "no recipients"); /* all body */
    /* bad addresses */
    FAILS(HDRS_FULL "To: john\r\n\r\nb", "no domain");
    FAILS(HDRS_FULL "To: a@x.org, john\r\n\r\nb", "To");
    FAILS(HDRS_FULL "Cc: a@b c@d.org\r\n\r\nb", "Cc");
    FAILS(HDRS_FULL "To: x <a@x.org> y\r\n\r\nb", "To");
    FAILS(HDRS_FULL "To: <a@x.org> <b@y.org>\r\n\r\nb", "To");
    FAILS(HDRS_FULL "To: a@x.org; b@y.org\r\n\r\nb", "To");
    FAILS(HDRS_FULL "To: a@-x.org\r\n\r\nb", "bad domain");
    FAILS(HDRS_FULL "To: a@x_y.org\r\n\r\nb", "bad domain");
    FAILS(HDRS_FULL "To: a..b@x.org\r\n\r\nb", "To");
    FAILS(HDRS_FULL "To: a@x.org (unclosed\r\n\r\nb", "To");
    FAILS(HDRS_FULL "To: \"unclosed <a@x.org>\r\n\r\nb",
          "unclosed quoted string");
    FAILS(HDRS_FULL "To: \"Bob <bob@x.org>, c@y.org\r\n\r\nb",
          "unclosed quoted string");
    FAILS(HDRS_FULL "To: a@x.org (a (nested) comment\r\n\r\nb",
          "unclosed comment");
    FAILS(HDRS_FULL "Bcc: x <a@x.org> y\r\n\r\nb", "Bcc");
    FAILS(HDRS_FULL "To: @x.org\r\n\r\nb", "To");
    /* address literals: printable, no brackets inside (found by fuzz_mime) */
    FAILS(HDRS_FULL "To: a@[1<2]\r\n\r\nb", "angle bracket");
    FAILS(HDRS_FULL "To: <a@[1>2]>\r\n\r\nb", "angle bracket");
    FAILS(HDRS_FULL "To: a@[]\r\n\r\nb", "To");
    /* a domain literal is one token: the quote in it opens nothing, the
     * comment after it is unclosed (GMime 3.2 leaked on this list; see
     * test_hostile_found) */
    FAILS(HDRS_FULL "To:D@[\"](\"\r\n\r\nb", "unclosed comment");
    FAILS(HDRS_FULL "To: a@[1.2.3.4\r\n\r\nb", "unclosed domain literal");
    CU_ASSERT_PTR_NOT_NULL(
        prep_ok(HDRS_FULL "To: \"x@[y\" <a@b.example>\r\n\r\nb",
                sizeof(HDRS_FULL "To: \"x@[y\" <a@b.example>\r\n\r\nb") - 1,
                DEF_FROM, DOMAIN, 0));
    CU_ASSERT_PTR_NOT_NULL(
        prep_ok(HDRS_FULL "To: a@[192.0.2.1]\r\n\r\nb",
                sizeof(HDRS_FULL "To: a@[192.0.2.1]\r\n\r\nb") - 1, DEF_FROM,
                DOMAIN, 0));
    /* the reason shows the address as printable ASCII only */
    {
        static const char ctl[] = HDRS_FULL "To: j\x01ohn\r\n\r\nb";
        CU_ASSERT_EQUAL(memds_mime_prepare(&s, ctl, sizeof(ctl) - 1, DEF_FROM,
                                           DOMAIN, 0, &why, unit_pool),
                        APR_EINVAL);
    }
    CU_ASSERT(why && strchr(why, '\x01') == NULL);
    CU_ASSERT_PTR_NULL(s);

    /* too large: the input, and the prepared data */
    CU_ASSERT(fails_with(big, sizeof(big) - 1, DEF_FROM, sizeof(big) - 2,
                         "too large"));
    CU_ASSERT_PTR_NOT_NULL(
        prep_ok(big, sizeof(big) - 1, DEF_FROM, DOMAIN, sizeof(big) - 1));
    CU_ASSERT(fails_with(small, sizeof(small) - 1, DEF_FROM, sizeof(small) - 1,
                         "too large"));
    CU_ASSERT_PTR_NOT_NULL(prep_ok(small, sizeof(small) - 1, DEF_FROM, DOMAIN,
                                   sizeof(small) - 1 + 200));

    /* malformed header */
    FAILS("not a header line\r\nTo: a@x.org\r\n\r\nb",
          "malformed header line 1");
    FAILS("To: a@x.org\r\nFrom foo@bar Mon Jun  2\r\n\r\nb",
          "malformed header line 2");
    FAILS(": no name\r\nTo: a@x.org\r\n\r\nb", "malformed header");
    FAILS(" To: a@x.org\r\n\r\nb", "continuation");
    FAILS("To: a@x.org\r\nSubject: a\0b\r\n\r\nb", "NUL");
}

/* Issue 17: the hostile lists GMime 3.2 leaked on (found by fuzz_mime one
 * after the other) are refused by the module's own parser before GMime
 * sees anything; this suite runs under ASan/LSan in `./dev test`, which
 * reports a leak as a failure. */
static void test_hostile_found(void)
{
    FAILS("To:[\",b@[](\"", "'[' inside a domain literal");
    FAILS(HDRS_FULL "To:[\",b@[](\"\r\n\r\nb", "To");
    FAILS(HDRS_FULL "To: a@[1<2]\r\n\r\nb", "angle bracket");
    FAILS(HDRS_FULL "To: a@[\"](\r\n\r\nb", "unclosed comment");
    FAILS(HDRS_FULL "To:D@[\"](\"\r\n\r\nb", "unclosed comment");
    FAILS(HDRS_FULL "Cc: x@y.org, [\",b@[](\"\r\n\r\nb", "Cc");
    FAILS(HDRS_FULL "Bcc: G: a@[\"](;\r\n\r\nb", "Bcc");
}

/* What the tokenizer refuses, each with its reason. */
static void test_unbalanced_reasons(void)
{
    FAILS(HDRS_FULL "To: a@x.org)\r\n\r\nb", "')' without '('");
    FAILS(HDRS_FULL "To: a@x.org]\r\n\r\nb", "']' without '['");
    FAILS(HDRS_FULL "To: a\\b@x.org\r\n\r\nb", "backslash");
    FAILS(HDRS_FULL "To: \"a\\\"@x.org\r\n\r\nb", "unclosed quoted string");
    FAILS(HDRS_FULL "To: a@x.org (c\\)\r\n\r\nb", "unclosed comment");
    FAILS(HDRS_FULL "To: a@[1\\]\r\n\r\nb", "unclosed domain literal");
    FAILS(HDRS_FULL "To: a@[1[2]]\r\n\r\nb", "'[' inside a domain literal");
    FAILS(HDRS_FULL "To: a@x.org (((c))\r\n\r\nb", "unclosed comment");
    FAILS(HDRS_FULL "To: \"a\x01\"@x.org\r\n\r\nb", "control character");
    FAILS(HDRS_FULL "To: (c\\\x7f) a@x.org\r\n\r\nb", "control character");
    FAILS(HDRS_FULL "To: G: a@x.org;;\r\n\r\nb", "';' outside a group");
    FAILS(HDRS_FULL "To: : a@x.org;\r\n\r\nb", "group without a name");
    FAILS(HDRS_FULL "To: A: B: C: D: E: F: G: H: I: a@x.org;;;;;;;;;\r\n\r\nb",
          "nested too deep");
    FAILS(HDRS_FULL "To: <a@x.org y>\r\n\r\nb", "angle address");
    FAILS(HDRS_FULL "To: <@r.org a@x.org>\r\n\r\nb", "route");
    FAILS(HDRS_FULL "To: a@\r\n\r\nb", "empty domain");
    FAILS(HDRS_FULL "To: a@\"x\".org\r\n\r\nb", "bad domain");
    FAILS(HDRS_FULL "To: a b@x.org\r\n\r\nb", "'@'");
}

/* The class of issue 17: every sequence of one to three of [ ( " \ (with
 * at most one '"', so that nothing in it closes what it opens) put into
 * and around domain literals, comments, quoted strings, angle addresses
 * and groups. Where the hole is outside any quoted string, comment or
 * literal and nothing after it closes one, the list is unbalanced and
 * must be refused with a reason; inside them, either refused with a
 * reason or read as sane recipients. Never a crash, never a leak (the
 * ASan stage). */
static void test_unbalanced_class(void)
{
    /* %s: the hole; 1: structural (nothing after it closes anything) */
    static const struct {
        const char *tmpl;
        int structural;
    } ctx[] = {
        { "%sa@x.org", 1 },
        { "a@x.org%s", 1 },
        { "a%s@x.org", 1 },
        { "a@%sx.org", 1 },
        { "a@x%s.org", 1 },
        { "a@x.org, %sb@y.org", 1 },
        { "a@[127.0.0.1]%s", 1 },
        { "a@[127.0.0.1] %s, b@y.org", 1 },
        { "a@%s[127.0.0.1", 1 },
        { "a@[1%s2]", 0 },
        { "a@[%s]", 0 },
        { "<a@[1%s2]>", 0 },
        { "(c) a@x.org%s", 1 },
        { "a@x.org (c%sd)", 0 },
        { "(%s) a@x.org", 0 },
        { "a@x.org (c (%s) d)", 0 },
        { "\"q\" <a@x.org>%s", 1 },
        { "\"q%sq\" <a@x.org>", 0 },
        { "\"%s\"@x.org", 0 },
        { "\"q\"@x.org%s", 1 },
        { "N%s <a@x.org>", 1 },
        { "N <a@x.org%s>", 1 },
        { "N <%sa@x.org>", 1 },
        { "<@r.org%s:a@x.org>", 1 },
        { "G: a@x.org%s;", 1 },
        { "G: %sa@x.org;", 1 },
        { "G%s: a@x.org;", 1 },
        { "G: a@x.org;%s", 1 },
        { "G: \"n%s\" <a@x.org>;", 0 },
        { "G: a@[1%s] ;", 0 },
        { "G: (%s) a@x.org;", 0 },
        { "O: I: a@x.org%s;;", 1 },
    };
    static const char alpha[] = "[(\"\\";
    char fill[4];
    int c, len, k, idx[3], refused = 0, accepted = 0, bad = 0;

    for (c = 0; c < (int)(sizeof(ctx) / sizeof(ctx[0])); ++c) {
        for (len = 1; len <= 3; ++len) {
            int total = len == 1 ? 4 : len == 2 ? 16 : 64;
            for (k = 0; k < total; ++k) {
                memds_mime_submission_t *s = NULL;
                const char *why = NULL, *m, *hole;
                apr_status_t rv;
                int j, quotes = 0;
                idx[0] = k % 4;
                idx[1] = (k / 4) % 4;
                idx[2] = k / 16;
                for (j = 0; j < len; ++j) {
                    fill[j] = alpha[idx[j]];
                    quotes += fill[j] == '"';
                }
                fill[len] = '\0';
                if (quotes > 1) {
                    continue;
                }
                hole = strstr(ctx[c].tmpl, "%s");
                m = apr_pstrcat(unit_pool, HDRS_FULL "To: ",
                                apr_pstrmemdup(unit_pool, ctx[c].tmpl,
                                               (apr_size_t)(hole
                                                            - ctx[c].tmpl)),
                                fill, hole + 2, "\r\n\r\nbody\r\n", NULL);
                rv = memds_mime_prepare(&s, m, strlen(m), DEF_FROM, DOMAIN, 0,
                                        &why, unit_pool);
                if (rv != APR_SUCCESS) {
                    ++refused;
                    if (rv != APR_EINVAL || s != NULL || why == NULL
                        || strstr(why, "To") == NULL) {
                        ++bad;
                        fprintf(stderr, "\n  unclean refusal: %s\n", m);
                    }
                    continue;
                }
                ++accepted;
                if (ctx[c].structural) {
                    ++bad;
                    fprintf(stderr, "\n  unbalanced list accepted: %s\n", m);
                }
                for (j = 0; j < s->rcpts->nelts; ++j) {
                    const char *r = APR_ARRAY_IDX(s->rcpts, j, const char *);
                    if (strchr(r, '@') == NULL
                        || strpbrk(r, " \t<>\r\n") != NULL) {
                        ++bad;
                        fprintf(stderr, "\n  recipient %s from: %s\n", r, m);
                    }
                }
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(refused > 1000);
    CU_ASSERT(accepted > 0);
}

/* Valid hard cases are still read. */
static void test_valid_hard(void)
{
    memds_mime_submission_t *s;

    s = PREP(HDRS_FULL
             "To: a@[127.0.0.1], b@[IPv6:2001:db8::1],\r\n"
             " (x [ \" \\) y) c@x.org (nested (comments) \\( too),\r\n"
             " \"q \\\" [ ( name\" <d@x.org>, \"e.f\"@x.org,\r\n"
             " =?UTF-8?Q?G=C3=BCnter_=5B=28?= <g@x.org>,\r\n"
             " Team: h@x.org, Sub: i@x.org;, \"J, K\" <j@x.org>;,\r\n"
             " John Q. Public <k@x.org>, l . m @ x . org,\r\n"
             " <@r1.org,@[192.0.2.9]:n@x.org>, Empty:;, [Ext] <o@x.org>\r\n"
             "\r\nbody\r\n");
    RCPTS(s, "a@[127.0.0.1]", "b@[IPv6:2001:db8::1]", "c@x.org", "d@x.org",
          "\"e.f\"@x.org", "g@x.org", "h@x.org", "i@x.org", "j@x.org",
          "k@x.org", "l.m@x.org", "n@x.org", "o@x.org");
    /* the header is sent as it was written */
    CU_ASSERT(s
              && strstr(s->data, "To: a@[127.0.0.1], b@[IPv6:2001:db8::1],"
                                 "\r\n (x [ \" \\) y) c@x.org")
                     != NULL);
    /* a group without its ';' at the end of the field: one meaning */
    s = PREP(HDRS_FULL "To: Team: a@x.org, b@y.org\r\n\r\nb");
    RCPTS(s, "a@x.org", "b@y.org");
    /* the From field's display name, quoted with escapes */
    s = PREP("From: \"Doe \\\"JD\\\" (x)\" <jd@example.org>\r\n"
             "To: a@x.org\r\n\r\nb");
    CU_ASSERT(s && strcmp(s->from, "jd@example.org") == 0);
}

static void test_no_body(void)
{
    memds_mime_submission_t *s;

    /* no empty line: all header, an empty line is added */
    s = PREP(HDRS_FULL "To: a@x.org\r\nBcc: b@y.org");
    RCPTS(s, "a@x.org", "b@y.org");
    CU_ASSERT(s && strcmp(s->data, HDRS_FULL "To: a@x.org\r\n\r\n") == 0);
    s = PREP("To: a@x.org\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(STARTS(s->data, "To: a@x.org\r\nFrom: " DEF_FROM "\r\n"));
    CU_ASSERT(ENDS(s, ">\r\n\r\n"));
    /* an empty body after the empty line */
    s = PREP(HDRS_FULL "To: a@x.org\r\n\r\n");
    CU_ASSERT(s && strcmp(s->data, HDRS_FULL "To: a@x.org\r\n\r\n") == 0);
}

/* ------------------------------------------------------------- threads */

#define THREADS 8
#define ROUNDS 200

typedef struct mime_job_t {
    int failures[THREADS];
} mime_job_t;

typedef struct mime_arg_t {
    mime_job_t *job;
    int id;
} mime_arg_t;

static void *APR_THREAD_FUNC mime_thread(apr_thread_t *th, void *data)
{
    mime_arg_t *a = data;
    apr_pool_t *p;
    int i;

    apr_pool_create(&p, NULL);
    for (i = 0; i < ROUNDS; ++i) {
        memds_mime_submission_t *s = NULL;
        const char *why = NULL;
        const char *msg = apr_psprintf(
            p,
            "From: \"T, %d\" <t%d@example.org>\nTo: G: a%d@x.org, "
            "=?UTF-8?B?w4RyZ2Vy?= <b@y.org>;\nBcc: c%d@z.org\n\nbody %d\n",
            a->id, a->id, i, i, i);
        if (memds_mime_prepare(&s, msg, strlen(msg), DEF_FROM, DOMAIN, 0, &why,
                               p)
                != APR_SUCCESS
            || s->rcpts->nelts != 3 || s->removed_bcc != 1
            || strcmp(s->from, apr_psprintf(p, "t%d@example.org", a->id)) != 0
            || strstr(s->data, "Bcc") != NULL) {
            ++a->job->failures[a->id];
        }
        if (memds_mime_prepare(&s, "To: john\n\n", 10, DEF_FROM, DOMAIN, 0,
                               &why, p)
            != APR_EINVAL) {
            ++a->job->failures[a->id];
        }
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    /* A plain return rather than apr_thread_exit(): pthread_exit()'s
     * forced unwind leaves this frame's ASan redzones poisoned, which
     * GCC's ASan then reports as a stack overflow in the thread's TSD
     * destructors (GLib's, set up by GMime). The status is not used. */
    return NULL;
}

static void test_threads(void)
{
    mime_job_t *job = apr_pcalloc(unit_pool, sizeof(*job));
    mime_arg_t args[THREADS];
    apr_thread_t *th[THREADS];
    int i;

    for (i = 0; i < THREADS; ++i) {
        args[i].job = job;
        args[i].id = i;
        CU_ASSERT_EQUAL_FATAL(apr_thread_create(&th[i], NULL, mime_thread,
                                                &args[i], unit_pool),
                              APR_SUCCESS);
    }
    for (i = 0; i < THREADS; ++i) {
        apr_status_t trv;
        apr_thread_join(&trv, th[i]);
        CU_ASSERT_EQUAL(job->failures[i], 0);
    }
}

/* GMime is set up once for the suite, as the module does in post_config. */
static int suite_init(void)
{
    memds_mime_global_init();
    return 0;
}

static int suite_clean(void)
{
    memds_mime_global_cleanup();
    return 0;
}

/* Reading and dropping header fields (for the mailbox datastores). */
static void test_header_access(void)
{
    static const char m[] = "From: a@x.org\r\nmessage-id:  <m1@x.org> \r\n"
                            "X-Long: one\r\n two\r\nX-MemDS-Reply: "
                            "m7\r\n\r\nbody\r\nX-Long: no\r\n";
    static const char *const drop[] = { "X-MemDS-Reply", "x-long", NULL };
    apr_size_t body = 0;
    const char *h;

    CU_ASSERT_STRING_EQUAL(memds_mime_header_value(m, sizeof(m) - 1,
                                                   "Message-ID", unit_pool),
                           "<m1@x.org>");
    CU_ASSERT_STRING_EQUAL(memds_mime_header_value(m, sizeof(m) - 1, "x-long",
                                                   unit_pool),
                           "one two");
    CU_ASSERT_PTR_NULL(
        memds_mime_header_value(m, sizeof(m) - 1, "Subject", unit_pool));
    h = memds_mime_header_without(m, sizeof(m) - 1, drop, &body, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_STRING_EQUAL(h, "From: a@x.org\r\nmessage-id:  <m1@x.org> \r\n");
    CU_ASSERT_STRING_EQUAL(m + body, "body\r\nX-Long: no\r\n");
    /* a malformed header: nothing read */
    CU_ASSERT_PTR_NULL(
        memds_mime_header_value(" x\r\nA: b\r\n\r\n", 12, "A", unit_pool));
}

/* Latin-1 mail made 7-bit: the text part QP, the Subject an encoded word,
 * the content unchanged once decoded, every byte ASCII. */
static void test_seven_bit(void)
{
    static const char msg[] =
        "From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
        "Subject: Gr\xfc\xdf" "e aus K\xf6ln\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Sch\xf6ne Gr\xfc\xdf" "e, \xe9t\xe9 \xe0 Paris.\r\n";
    const char *out = NULL;
    apr_size_t len = 0, i;

    CU_ASSERT_EQUAL_FATAL(memds_mime_seven_bit(&out, &len, msg, sizeof(msg) - 1,
                                               unit_pool),
                          APR_SUCCESS);
    for (i = 0; i < len; ++i) {
        CU_ASSERT_FATAL((unsigned char)out[i] < 0x80);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Subject: =?"));
    if (strstr(out, "Content-Transfer-Encoding: base64\r\n")) {
        const char *b = strstr(out, "\r\n\r\n");
        char dec[256];
        int n;
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        n = apr_base64_decode(dec, b + 4);
        CU_ASSERT(n == (int)strlen(strstr(msg, "Sch\xf6ne"))
                  && memcmp(dec, strstr(msg, "Sch\xf6ne"), (apr_size_t)n) == 0);
    }
    else {
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "quoted-printable"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "Sch=F6ne Gr=FC=DF"));
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "charset=iso-8859-1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "From: Bob <bob@example.test>\r\n"));
    /* not a message at all */
    CU_ASSERT_EQUAL(memds_mime_seven_bit(&out, &len, "", 0, unit_pool),
                    APR_EINVAL);
}

void unit_add_mime(void)
{
    CU_pSuite s = CU_add_suite("mime", suite_init, suite_clean);

    CU_add_test(s, "header access", test_header_access);
    CU_add_test(s, "groups", test_groups);
    CU_add_test(s, "quoted names with commas, comments", test_quoted_names);
    CU_add_test(s, "encoded-word names", test_encoded_names);
    CU_add_test(s, "Bcc removed", test_bcc_removed);
    CU_add_test(s, "duplicates removed", test_duplicates);
    CU_add_test(s, "Message-ID and Date added when missing",
                test_message_id_date);
    CU_add_test(s, "body byte-exact", test_body_exact);
    CU_add_test(s, "LF to CRLF", test_lf_to_crlf);
    CU_add_test(s, "input not NUL-terminated", test_unterminated_input);
    CU_add_test(s, "default sender", test_default_from);
    CU_add_test(s, "sloppy but unambiguous lists", test_liberal);
    CU_add_test(s, "international addresses", test_international);
    CU_add_test(s, "errors", test_errors);
    CU_add_test(s, "hostile lists found by fuzz_mime", test_hostile_found);
    CU_add_test(s, "unbalanced lists: reasons", test_unbalanced_reasons);
    CU_add_test(s, "unbalanced lists: the class", test_unbalanced_class);
    CU_add_test(s, "valid hard lists", test_valid_hard);
    CU_add_test(s, "no body", test_no_body);
    CU_add_test(s, "threads", test_threads);
    CU_add_test(s, "8-bit mail made 7-bit", test_seven_bit);
}
