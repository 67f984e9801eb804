/* libFuzzer target: preparing a device's message for SMTP submission
 * (email/memds_mime.c: header block, address lists by the module's own
 * RFC 5322 parser, Bcc removal, Message-ID/Date).
 *
 * Per input: prepare. On success the result must be sane: CRLF line ends
 * only, recipients that are addr-specs without blanks or angle brackets,
 * no Bcc field left in the header, a Message-ID; and preparing the result
 * again must change nothing (no field added or removed, the same bytes).
 * On failure there must be a reason. Anything else aborts.
 * Seeds: built in; MEMDS_FUZZ_MIME_SEEDS=DIR writes them to DIR first. */
#include "email/memds_mime.h"

#include "fuzz_seeds.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define S(x) FUZZ_SEED(x)
static const fuzz_seed_t seeds[] = {
    S("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
      "Subject: hi\r\n\r\nHello\r\n"),
    S("From: \"Doe, John\" <j@x.example>\nTo: Team: a@x.example, \"B, b\" "
      "<b@y.example>;, undisclosed-recipients:;\nCc: =?UTF-8?B?w6lsw6g=?= "
      "<c@z.example> (comment)\nBcc: hidden@w.example,\n hidden2@w.example\n"
      "Message-ID: <m1@x.example>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\n"
      ".\n..\nbody\n"),
    S("To: a@b.example\r\nbcc: c@d.example\r\nContent-Type: multipart/mixed; "
      "boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
      "--b\r\nContent-Type: application/octet-stream\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b--\r\n"),
    S("To: \"unclosed <a@b.example>\r\n\r\n"),
    S("To: john\r\n\r\n"),
    S("To: a@[192.0.2.1], b@[IPv6:2001:db8::1]\r\n\r\nx"),
    /* found by fuzz_mime: GMime 3.2 leaked on these (issue 17); now the
     * module's own parser refuses them before GMime sees anything */
    S("To: a@[1<2]\r\n\r\nx"),
    S("To:D@[\"](\""),
    S("To: a@[\"](\r\n\r\nx"),
    S("To:[\",b@[](\""),
    /* valid hard cases: the parser's other paths */
    S("From: \"Doe \\\"JD\\\" (x)\" <jd@x.example>\r\nTo: (x [ \" \\) y) "
      "c@x.example (nested (comments)), \"q \\\" [ ( n\" <d@x.example>,\r\n"
      " Team: h@x.example, Sub: i@x.example;;, <@r.example,@[192.0.2.9]:"
      "n@x.example>, l . m @ x . example, Empty:;, [Ext] <o@x.example>\r\n"
      "\r\nx"),
    S("To: M <m@b\xc3\xbc"
      "cher.example>, \xc3\xa4rger@x.example\r\n\r\nx"),
};

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_mime: invariant broken: %s\n", what);
        abort();
    }
}

static int has_bcc_field(const char *d, size_t len)
{
    size_t i = 0;

    while (i < len) {
        size_t eol = i;
        if (d[i] == '\r' || d[i] == '\n') {
            return 0; /* end of the header */
        }
        while (eol < len && d[eol] != '\n') {
            eol++;
        }
        if (eol - i >= 4 && (d[i] == 'B' || d[i] == 'b')
            && (d[i + 1] == 'C' || d[i + 1] == 'c')
            && (d[i + 2] == 'C' || d[i + 2] == 'c')) {
            size_t k = i + 3;
            while (k < eol && (d[k] == ' ' || d[k] == '\t')) {
                k++;
            }
            if (k < eol && d[k] == ':') {
                return 1;
            }
        }
        i = eol + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    memds_mime_submission_t *sub, *again;
    const char *why = NULL;
    size_t i;

    apr_pool_create(&p, NULL);
    if (memds_mime_prepare(&sub, (const char *)data, size, "dev@example.org",
                           "example.org", 1 << 20, &why, p)
        != APR_SUCCESS) {
        check(why != NULL && *why, "a failure without a reason");
        apr_pool_destroy(p);
        return 0;
    }
    check(sub->rcpts && sub->rcpts->nelts > 0, "no recipients");
    for (i = 0; i < (size_t)sub->rcpts->nelts; i++) {
        const char *r = APR_ARRAY_IDX(sub->rcpts, i, const char *);
        check(strchr(r, '@') != NULL, "recipient without @");
        check(strpbrk(r, " <>\r\n\t") == NULL, "recipient with blank or <>");
    }
    check(sub->message_id && sub->message_id[0] == '<', "no Message-ID");
    for (i = 0; i < sub->len; i++) {
        if (sub->data[i] == '\n') {
            check(i > 0 && sub->data[i - 1] == '\r', "bare LF");
        }
        if (sub->data[i] == '\r') {
            check(i + 1 < sub->len && sub->data[i + 1] == '\n', "bare CR");
        }
    }
    check(!has_bcc_field(sub->data, sub->len), "a Bcc field left");
    check(sub->bcc_fields != NULL && strlen(sub->bcc_fields) == sub->bcc_len
              && (sub->bcc_len == 0) == (sub->removed_bcc == 0),
          "the removed Bcc fields do not match");
    if (memds_mime_prepare(&again, sub->data, sub->len, "dev@example.org",
                           "example.org", 1 << 20, &why, p)
        == APR_SUCCESS) {
        check(!again->added_message_id && !again->added_date
                  && !again->removed_bcc,
              "preparing twice changed the header");
        check(again->len == sub->len
                  && memcmp(again->data, sub->data, sub->len) == 0,
              "preparing twice changed the bytes");
    }
    else {
        /* only Bcc recipients: the transmitted copy names nobody */
        check(sub->removed_bcc > 0,
              "the prepared message does not prepare again");
    }
    apr_pool_destroy(p);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    memds_mime_global_init();
    fuzz_write_seeds("MEMDS_FUZZ_MIME_SEEDS", "mime", seeds,
                     FUZZ_NSEEDS(seeds));
    return 0;
}
