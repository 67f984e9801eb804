/* Unit tests: syncml/memds_san.c (Server Alerted Notification: the SAN
 * 1.2 package built and parsed, its digest, the legacy 1.1 form). */
#include "unit.h"
#include "syncml/memds_san.h"

#include <apr_base64.h>
#include <apr_md5.h>
#include <apr_strings.h>
#include <stdio.h>
#include <string.h>

/* The worked example of docs/san.md: server id mailgw.example.com,
 * password srvsecret, nonce SyncNonce1, ui background, initiator server,
 * session 42, one sync 206 of application/vnd.omads-email+xml to "mail". */
static const unsigned char k_example[52] = {
    0x65, 0xd5, 0x86, 0x02, 0x50, 0x8d, 0x64, 0xf8, 0xb8, 0x3e, 0x07,
    0x04, 0xe2, 0xf1, 0xdd, 0xdf, 0x03, 0x18, 0x00, 0x00, 0x00, 0x00,
    0x2a, 0x12, 'm',  'a',  'i',  'l',  'g',  'w',  '.',  'e',  'x',
    'a',  'm',  'p',  'l',  'e',  '.',  'c',  'o',  'm',  0x10, 0x60,
    0x00, 0x03, 0x06, 0x04, 'm',  'a',  'i',  'l'
};
#define EX_ID "mailgw.example.com"
#define EX_PW "srvsecret"
#define EX_NONCE "SyncNonce1"

static memds_san_t *example(void)
{
    memds_san_t *san = memds_san_make(EX_ID, unit_pool);

    san->ui_mode = MEMDS_SAN_UI_BACKGROUND;
    san->initiator = MEMDS_SAN_INIT_SERVER;
    san->session_id = 42;
    memds_san_add_sync(san, 206, MEMDS_SAN_CT_EMAIL, "mail", unit_pool);
    return san;
}

static const char *b64_md5(const void *data, apr_size_t len)
{
    unsigned char d[APR_MD5_DIGESTSIZE];
    char *out = apr_palloc(unit_pool, 25);

    apr_md5(d, data, len);
    apr_base64_encode(out, (const char *)d, APR_MD5_DIGESTSIZE);
    return out;
}

static memds_buf_t build(const memds_san_t *san, const char *pw,
                         const char *nonce)
{
    memds_buf_t b;
    const char *why = NULL;

    memds_buf_init(&b, 64, unit_pool);
    if (memds_san_build(&b, san, pw, nonce, nonce ? strlen(nonce) : 0, &why,
                        unit_pool)
        != APR_SUCCESS) {
        fprintf(stderr, "\n  build refused: %s\n", why);
        CU_FAIL("build refused");
    }
    return b;
}

static memds_san_t *parse(const void *buf, apr_size_t len, const char *pw,
                          const char *nonce)
{
    memds_san_t *san = NULL;
    const char *why = NULL;

    if (memds_san_parse(&san, buf, len, pw, nonce, nonce ? strlen(nonce) : 0,
                        &why, unit_pool)
        != APR_SUCCESS) {
        fprintf(stderr, "\n  parse refused: %s\n", why);
        CU_FAIL("parse refused");
        return NULL;
    }
    return san;
}

static void worked_example(void)
{
    memds_buf_t b;
    unsigned char d[MEMDS_SAN_DIGEST_LEN];
    memds_san_t *san;
    const memds_san_sync_t *s;

    /* the two inner values of the digest, as the example gives them */
    CU_ASSERT_STRING_EQUAL(b64_md5(EX_ID ":" EX_PW, strlen(EX_ID ":" EX_PW)),
                           "WOBWPf8D9bOUlhOFScBYNQ==");
    CU_ASSERT_STRING_EQUAL(b64_md5(k_example + 16, sizeof(k_example) - 16),
                           "PgWCsERrOuOKX0yDMroAaA==");
    memds_san_digest(d, EX_ID, EX_PW, EX_NONCE, strlen(EX_NONCE),
                     (const char *)k_example + 16, sizeof(k_example) - 16);
    CU_ASSERT(memcmp(d, k_example, 16) == 0);
    /* the whole package, byte for byte */
    b = build(example(), EX_PW, EX_NONCE);
    CU_ASSERT_EQUAL_FATAL(b.len, 52);
    CU_ASSERT(memcmp(b.data, k_example, sizeof(k_example)) == 0);
    /* parsed back, the digest checked */
    san = parse(k_example, sizeof(k_example), EX_PW, EX_NONCE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(san);
    CU_ASSERT_EQUAL(san->version, 12);
    CU_ASSERT_EQUAL(san->ui_mode, MEMDS_SAN_UI_BACKGROUND);
    CU_ASSERT_EQUAL(san->initiator, MEMDS_SAN_INIT_SERVER);
    CU_ASSERT_EQUAL(san->session_id, 42);
    CU_ASSERT_STRING_EQUAL(san->server_id, EX_ID);
    CU_ASSERT_EQUAL_FATAL(san->syncs->nelts, 1);
    s = &APR_ARRAY_IDX(san->syncs, 0, memds_san_sync_t);
    CU_ASSERT_EQUAL(s->sync_type, 206);
    CU_ASSERT_EQUAL(s->content_type, 0x000306);
    CU_ASSERT_STRING_EQUAL(s->type, "application/vnd.omads-email+xml");
    CU_ASSERT_STRING_EQUAL(s->uri, "mail");
    CU_ASSERT_EQUAL(san->vendor_len, 0);
    CU_ASSERT(memcmp(san->digest, k_example, 16) == 0);
    /* unchecked without a password */
    CU_ASSERT_PTR_NOT_NULL(parse(k_example, sizeof(k_example), NULL, NULL));
    /* appended after what the buffer holds */
    memds_buf_init(&b, 8, unit_pool);
    memds_buf_addstr(&b, "xyz");
    {
        const char *why = NULL;
        CU_ASSERT_EQUAL(memds_san_build(&b, example(), EX_PW, EX_NONCE,
                                        strlen(EX_NONCE), &why, unit_pool),
                        APR_SUCCESS);
        CU_ASSERT(b.len == 55 && memcmp(b.data + 3, k_example, 52) == 0);
    }
}

/* A wrong password, nonce or server id, or one changed byte: refused. */
static void digest_checked(void)
{
    char copy[sizeof(k_example)];
    memds_san_t *san;
    const char *why = NULL;
    memds_buf_t b;
    apr_size_t i;

    CU_ASSERT_EQUAL(memds_san_parse(&san, (const char *)k_example,
                                    sizeof(k_example), "srvsecreT", EX_NONCE,
                                    strlen(EX_NONCE), &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "digest"));
    why = NULL;
    CU_ASSERT_EQUAL(memds_san_parse(&san, (const char *)k_example,
                                    sizeof(k_example), EX_PW, "SyncNonce2", 10,
                                    &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "digest"));
    CU_ASSERT_EQUAL(memds_san_parse(&san, (const char *)k_example,
                                    sizeof(k_example), EX_PW, EX_NONCE, 0, &why,
                                    unit_pool),
                    APR_EINVAL);
    /* every single flipped bit of the notification breaks the digest (or
     * the layout) */
    for (i = 0; i < sizeof(k_example) * 8; ++i) {
        memcpy(copy, k_example, sizeof(copy));
        copy[i / 8] ^= (char)(1 << (i % 8));
        CU_ASSERT_EQUAL(memds_san_parse(&san, copy, sizeof(copy), EX_PW,
                                        EX_NONCE, strlen(EX_NONCE), &why,
                                        unit_pool),
                        APR_EINVAL);
    }
    /* a nonce of raw bytes, NUL included */
    memds_buf_init(&b, 64, unit_pool);
    CU_ASSERT_EQUAL(memds_san_build(&b, example(), EX_PW, "a\0b", 3, &why,
                                    unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(memds_san_parse(&san, b.data, b.len, EX_PW, "a\0b", 3, &why,
                                    unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(memds_san_parse(&san, b.data, b.len, EX_PW, "a\0c", 3, &why,
                                    unit_pool),
                    APR_EINVAL);
    /* no password: an all-zero digest */
    b = build(example(), NULL, NULL);
    CU_ASSERT(b.len == 52
              && memcmp(b.data, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0
              && memcmp(b.data + 16, k_example + 16, 36) == 0);
}

static int same(const memds_san_t *a, const memds_san_t *b)
{
    int i, n = a->syncs ? a->syncs->nelts : 0;

    if (a->version != b->version || a->ui_mode != b->ui_mode
        || a->initiator != b->initiator || a->session_id != b->session_id
        || strcmp(a->server_id, b->server_id) != 0
        || n != (b->syncs ? b->syncs->nelts : 0)
        || a->vendor_len != b->vendor_len
        || (a->vendor_len && memcmp(a->vendor, b->vendor, a->vendor_len))) {
        return 0;
    }
    for (i = 0; i < n; ++i) {
        const memds_san_sync_t *x = &APR_ARRAY_IDX(a->syncs, i,
                                                   memds_san_sync_t);
        const memds_san_sync_t *y = &APR_ARRAY_IDX(b->syncs, i,
                                                   memds_san_sync_t);
        if (x->sync_type != y->sync_type || x->content_type != y->content_type
            || strcmp(x->uri, y->uri) != 0) {
            return 0;
        }
    }
    return 1;
}

static void round_trips(void)
{
    static const char *const uris[] = { "Inbox", "Outbox", "Sent", "Drafts",
                                        "email" };
    char uri255[256];
    memds_san_t *san, *back;
    memds_buf_t b;
    int ui, init, n, i;

    memset(uri255, 'u', 255);
    uri255[255] = '\0';
    for (ui = 0; ui <= 3; ++ui) {
        for (init = 0; init <= 1; ++init) {
            for (n = 0; n <= MEMDS_SAN_MAX_SYNCS; n += 5) {
                san = memds_san_make("https://sync.example.org/memds",
                                     unit_pool);
                san->ui_mode = ui;
                san->initiator = init;
                san->session_id = (unsigned)(0xFFFF - ui * 1000 - n);
                for (i = 0; i < n; ++i) {
                    memds_san_add_sync(san, 206 + i % 5,
                                       i == 3 ? 0xFFFFFF : (apr_uint32_t)i,
                                       i == 4 ? uri255 : uris[i % 5],
                                       unit_pool);
                }
                if (n == 10) {
                    san->vendor = "\x01\x00vendor";
                    san->vendor_len = 8;
                }
                b = build(san, "pw", "n");
                /* the fixed header, bit for bit */
                CU_ASSERT_EQUAL((unsigned char)b.data[16], 0x03);
                CU_ASSERT_EQUAL((unsigned char)b.data[17],
                                (ui << 4) | (init << 3));
                CU_ASSERT_EQUAL((unsigned char)b.data[21],
                                san->session_id >> 8);
                CU_ASSERT_EQUAL((unsigned char)b.data[22],
                                san->session_id & 0xFF);
                CU_ASSERT_EQUAL((unsigned char)b.data[23], 30);
                CU_ASSERT_EQUAL((unsigned char)b.data[24 + 30], n << 4);
                back = parse(b.data, b.len, "pw", "n");
                CU_ASSERT(back != NULL && same(san, back));
            }
        }
    }
    /* num-syncs 0 ("all datastores"): the body is the one byte 00 */
    san = memds_san_make("s", unit_pool);
    b = build(san, NULL, NULL);
    CU_ASSERT(b.len == 26 && b.data[24] == 's' && b.data[25] == 0);
    back = parse(b.data, b.len, NULL, NULL);
    CU_ASSERT(back && back->syncs && back->syncs->nelts == 0);
    /* a content type the table does not know keeps its code, no name */
    san = memds_san_make("s", unit_pool);
    memds_san_add_sync(san, 210, 0x00ABCD, "x", unit_pool);
    b = build(san, NULL, NULL);
    back = parse(b.data, b.len, NULL, NULL);
    CU_ASSERT(back && same(san, back)
              && APR_ARRAY_IDX(back->syncs, 0, memds_san_sync_t).type == NULL);
}

static void build_refused(memds_san_t *san, const char *needle)
{
    memds_buf_t b;
    const char *why = NULL;

    memds_buf_init(&b, 64, unit_pool);
    CU_ASSERT_EQUAL(memds_san_build(&b, san, "pw", "n", 1, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT_EQUAL(b.len, 0);
    if (why == NULL || strstr(why, needle) == NULL) {
        fprintf(stderr, "\n  build: reason '%s' lacks '%s'\n",
                why ? why : "(none)", needle);
        CU_FAIL("specific reason");
    }
}

/* The example with a second sync entry that cannot be written. */
static void refused_sync(int type, apr_uint32_t ct, const char *uri,
                         const char *needle)
{
    memds_san_t *san = example();

    memds_san_add_sync(san, type, ct, uri, unit_pool);
    build_refused(san, needle);
}

static void build_refusals(void)
{
    char long_id[300];
    memds_san_t *san;
    int i;

    memset(long_id, 'x', 256);
    long_id[256] = '\0';
    san = example();
    san->version = 11;
    build_refused(san, "version 11");
    san = example();
    san->ui_mode = 4;
    build_refused(san, "ui mode 4");
    san = example();
    san->initiator = 2;
    build_refused(san, "initiator 2");
    san = example();
    san->session_id = 65536;
    build_refused(san, "session id 65536");
    build_refused(memds_san_make("", unit_pool), "server identifier is empty");
    build_refused(memds_san_make(NULL, unit_pool),
                  "server identifier is empty");
    build_refused(memds_san_make(long_id, unit_pool), "256 bytes");
    refused_sync(205, 0, "x", "sync 2: sync type 205");
    refused_sync(211, 0, "x", "sync type 211");
    refused_sync(206, 0x1000000, "x", "over 24 bits");
    refused_sync(206, 0, "", "sync 2: the server URI is empty");
    refused_sync(206, 0, long_id, "server URI has 256 bytes");
    san = example();
    for (i = 0; i < MEMDS_SAN_MAX_SYNCS; ++i) {
        memds_san_add_sync(san, 206, 0, "x", unit_pool);
    }
    build_refused(san, "16 sync entries");
}

/* The example with bytes [at, at+n) replaced by rep (n_rep bytes), then
 * cut to len (0: as long as it is); parsed without a password. */
static void parse_refused(apr_size_t at, const char *rep, apr_size_t n,
                          apr_size_t n_rep, apr_size_t len, const char *needle)
{
    char buf[128];
    apr_size_t total = sizeof(k_example) - n + n_rep;
    memds_san_t *san = NULL;
    const char *why = NULL;

    memcpy(buf, k_example, at);
    memcpy(buf + at, rep, n_rep);
    memcpy(buf + at + n_rep, k_example + at + n, sizeof(k_example) - at - n);
    if (len) {
        total = len;
    }
    CU_ASSERT_EQUAL(memds_san_parse(&san, buf, total, NULL, NULL, 0, &why,
                                    unit_pool),
                    APR_EINVAL);
    CU_ASSERT_PTR_NULL(san);
    if (why == NULL || strstr(why, needle) == NULL) {
        fprintf(stderr, "\n  parse: reason '%s' lacks '%s'\n",
                why ? why : "(none)", needle);
        CU_FAIL("specific reason");
    }
}

static void parse_refusals(void)
{
    apr_size_t i;

    /* too short for digest and header, whatever the length below 24 */
    for (i = 0; i < 24; ++i) {
        parse_refused(0, "", 0, 0, i ? i : 1, "shorter than the 24");
    }
    /* versions: 11 (0x02 0xC0), 10, 13, 0 */
    parse_refused(16, "\x02\xd8", 2, 2, 0, "version 11 (1.1)");
    parse_refused(16, "\x02\x98", 2, 2, 0, "version 10");
    parse_refused(16, "\x03\x58", 2, 2, 0, "version 13");
    parse_refused(16, "\x00\x18", 2, 2, 0, "version 0");
    /* future-use bits of the header */
    parse_refused(17, "\x19", 1, 1, 0, "future-use bits of the header");
    parse_refused(18, "\x80", 1, 1, 0, "future-use bits of the header");
    parse_refused(20, "\x01", 1, 1, 0, "future-use bits of the header");
    /* server identifier: beyond the buffer, empty, with a NUL */
    parse_refused(23, "\x1d", 1, 1, 0, "server identifier of 29 bytes runs");
    parse_refused(23, "\xff", 1, 1, 0, "server identifier of 255 bytes runs");
    parse_refused(0, "", 0, 0, 30, "server identifier of 18 bytes runs");
    parse_refused(23, "\x00", 1, 1, 0, "server identifier is empty");
    parse_refused(30, "\0", 1, 1, 0, "server identifier holds a NUL");
    /* no body */
    parse_refused(0, "", 0, 0, 42, "no notification body");
    /* num-syncs: future-use bits, more than fit */
    parse_refused(42, "\x11", 1, 1, 0, "future-use bits after num-syncs");
    parse_refused(42, "\x20", 1, 1, 0,
                  "num-syncs 2: 9 bytes left hold at "
                  "most 1");
    parse_refused(42, "\xf0", 1, 1, 0, "num-syncs 15");
    parse_refused(0, "", 0, 0, 47, "num-syncs 1: 4 bytes left");
    /* a sync entry: type, future bits, URI beyond the end, empty, NUL */
    parse_refused(43, "\x50", 1, 1, 0, "sync 1: sync type 205 is not");
    parse_refused(43, "\xb0", 1, 1, 0, "sync type 211");
    parse_refused(43, "\x00", 1, 1, 0, "sync type 200");
    parse_refused(43, "\x61", 1, 1, 0, "sync 1: future-use bits");
    parse_refused(47, "\x05", 1, 1, 0, "server URI of sync 1 of 5 bytes runs");
    parse_refused(0, "", 0, 0, 50, "server URI of sync 1 of 4 bytes runs");
    parse_refused(47, "\x00", 1, 1, 0, "server URI of sync 1 is empty");
    parse_refused(49, "\0", 1, 1, 0, "server URI of sync 1 holds a NUL");
    /* a second entry announced, cut after the first: what is left is 3
     * bytes, not the 5 of an entry */
    parse_refused(42, "\x20", 1, 1, 0, "hold at most 1");
    {
        /* two announced, room for the fixed part of the second only when
         * the first's URI is counted: cut short inside the loop */
        static const unsigned char two[] = { 0x20, 0x60, 0,   0,    0, 3,
                                             'a',  'b',  'c', 0x70, 0, 0 };
        char buf[64];
        memds_san_t *san;
        const char *why = NULL;
        memcpy(buf, k_example, 42);
        memcpy(buf + 42, two, sizeof(two));
        CU_ASSERT_EQUAL(memds_san_parse(&san, buf, 42 + sizeof(two), NULL, NULL,
                                        0, &why, unit_pool),
                        APR_EINVAL);
        CU_ASSERT(why && strstr(why, "sync 2 of 2 is cut short"));
    }
}

/* Bytes after the last entry are the vendor part, covered by the digest. */
static void vendor_bytes(void)
{
    char buf[64];
    memds_san_t *san;
    memds_buf_t b;
    const char *why = NULL;

    memcpy(buf, k_example, 52);
    memcpy(buf + 52, "VND", 3);
    san = parse(buf, 55, NULL, NULL);
    CU_ASSERT(san && san->vendor_len == 3
              && memcmp(san->vendor, "VND", 3) == 0);
    CU_ASSERT_EQUAL(memds_san_parse(&san, buf, 55, EX_PW, EX_NONCE,
                                    strlen(EX_NONCE), &why, unit_pool),
                    APR_EINVAL);
    san = example();
    san->vendor = "VND";
    san->vendor_len = 3;
    b = build(san, EX_PW, EX_NONCE);
    CU_ASSERT(b.len == 55 && memcmp(b.data + 16, buf + 16, 39) == 0);
    CU_ASSERT_PTR_NOT_NULL(parse(b.data, b.len, EX_PW, EX_NONCE));
}

static void content_types(void)
{
    CU_ASSERT_EQUAL(memds_san_ct_code("application/vnd.omads-email+xml"),
                    0x306);
    CU_ASSERT_EQUAL(memds_san_ct_code("Application/VND.omads-folder+xml"),
                    0x308);
    CU_ASSERT_EQUAL(memds_san_ct_code("application/vnd.omads-file+xml"), 0x307);
    CU_ASSERT_EQUAL(memds_san_ct_code("text/x-vcard"), 0x007);
    CU_ASSERT_EQUAL(memds_san_ct_code("text/directory;profile=vCard"), 0x309);
    CU_ASSERT_EQUAL(memds_san_ct_code("message/rfc822"), 0);
    CU_ASSERT_EQUAL(memds_san_ct_code(NULL), 0);
    CU_ASSERT_STRING_EQUAL(memds_san_ct_name(0x306),
                           "application/vnd.omads-email+xml");
    CU_ASSERT_STRING_EQUAL(memds_san_ct_name(0x055), "text/x-vMessage");
    CU_ASSERT_PTR_NULL(memds_san_ct_name(0));
    CU_ASSERT_PTR_NULL(memds_san_ct_name(0x123456));
}

/* The legacy form decodes with the codec to the expected message. */
static void legacy_form(void)
{
    memds_san_t *san = example(), *back;
    memds_buf_t b;
    memds_msg_t *m;
    memds_cmd_t *c;
    memds_item_t *it;
    memds_codec_err_t err;
    const char *why = NULL;

    memds_san_add_sync(san, 209, 0, "Sent", unit_pool);
    APR_ARRAY_IDX(san->syncs, 1, memds_san_sync_t).type = "text/x-own";
    memds_buf_init(&b, 256, unit_pool);
    CU_ASSERT_EQUAL_FATAL(memds_san_build_legacy(&b, san, "IMEI:4711",
                                                 MEMDS_ENC_WBXML, &why,
                                                 unit_pool),
                          APR_SUCCESS);
    /* WBXML 1.2, public id SyncML 1.1 (0x0FD3), UTF-8 */
    CU_ASSERT(b.len > 4 && memcmp(b.data, "\x02\x9f\x53\x6a", 4) == 0);
    memset(&err, 0, sizeof(err));
    CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, b.data, b.len, MEMDS_ENC_AUTO,
                                           &err, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL(m->version, MEMDS_V11);
    CU_ASSERT_STRING_EQUAL(m->hdr.verdtd, "1.1");
    CU_ASSERT_STRING_EQUAL(m->hdr.verproto, "SyncML/1.1");
    CU_ASSERT_STRING_EQUAL(m->hdr.session_id, "42");
    CU_ASSERT_STRING_EQUAL(m->hdr.msg_id, "1");
    CU_ASSERT_STRING_EQUAL(m->hdr.target->uri, "IMEI:4711");
    CU_ASSERT_STRING_EQUAL(m->hdr.source->uri, EX_ID);
    CU_ASSERT_PTR_NULL(m->hdr.cred);
    CU_ASSERT(m->final);
    CU_ASSERT_EQUAL_FATAL(m->cmds->nelts, 2);
    c = APR_ARRAY_IDX(m->cmds, 0, memds_cmd_t *);
    CU_ASSERT(c->type == MEMDS_CMD_ALERT && strcmp(c->cmd_id, "1") == 0
              && strcmp(c->data, "206") == 0 && c->items->nelts == 1);
    it = APR_ARRAY_IDX(c->items, 0, memds_item_t *);
    CU_ASSERT(it->target == NULL && it->source
              && strcmp(it->source->uri, "mail") == 0);
    CU_ASSERT(it->meta && it->meta->type
              && strcmp(it->meta->type, "application/vnd.omads-email+xml")
                     == 0);
    c = APR_ARRAY_IDX(m->cmds, 1, memds_cmd_t *);
    CU_ASSERT(c->type == MEMDS_CMD_ALERT && strcmp(c->cmd_id, "2") == 0
              && strcmp(c->data, "209") == 0);
    it = APR_ARRAY_IDX(c->items, 0, memds_item_t *);
    CU_ASSERT(strcmp(it->source->uri, "Sent") == 0 && it->meta
              && strcmp(it->meta->type, "text/x-own") == 0);
    /* read back as a SAN */
    CU_ASSERT_EQUAL_FATAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT(back->version == 11 && back->session_id == 42
              && strcmp(back->server_id, EX_ID) == 0
              && back->syncs->nelts == 2);
    CU_ASSERT(APR_ARRAY_IDX(back->syncs, 0, memds_san_sync_t).content_type
              == 0x306);
    CU_ASSERT(APR_ARRAY_IDX(back->syncs, 1, memds_san_sync_t).sync_type == 209);
    /* XML too; no device id: Target "/"; no type: no Meta */
    san = memds_san_make("srv", unit_pool);
    memds_san_add_sync(san, 210, 0, "Inbox", unit_pool);
    memds_buf_init(&b, 256, unit_pool);
    CU_ASSERT_EQUAL_FATAL(memds_san_build_legacy(&b, san, NULL, MEMDS_ENC_XML,
                                                 &why, unit_pool),
                          APR_SUCCESS);
    memds_buf_addc(&b, '\0');
    CU_ASSERT(strstr(b.data, "<Target><LocURI>/</LocURI></Target>") != NULL);
    CU_ASSERT(strstr(b.data, "<Meta>") == NULL);
    CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, b.data, b.len - 1,
                                           MEMDS_ENC_AUTO, &err, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_SUCCESS);
}

static void legacy_refusals(void)
{
    memds_san_t *san = memds_san_make("srv", unit_pool), *back;
    memds_buf_t b;
    memds_msg_t *m;
    memds_cmd_t *c;
    const char *why = NULL;

    memds_buf_init(&b, 256, unit_pool);
    CU_ASSERT_EQUAL(memds_san_build_legacy(&b, san, NULL, MEMDS_ENC_WBXML, &why,
                                           unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "at least one sync entry"));
    CU_ASSERT_EQUAL(b.len, 0);
    memds_san_add_sync(san, 211, 0, "x", unit_pool);
    CU_ASSERT_EQUAL(memds_san_legacy_msg(&m, san, NULL, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "211"));
    /* parse: a good one, then broken one way at a time */
    san = example();
    CU_ASSERT_EQUAL_FATAL(memds_san_legacy_msg(&m, san, NULL, &why, unit_pool),
                          APR_SUCCESS);
    c = APR_ARRAY_IDX(m->cmds, 0, memds_cmd_t *);
    c->data = "200";
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "code 200 is not 206..210"));
    c->data = "206";
    m->hdr.session_id = "70000";
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "SessionID"));
    m->hdr.session_id = "42";
    m->final = 0;
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_EINVAL);
    m->final = 1;
    m->version = MEMDS_V12;
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_EINVAL);
    m->version = MEMDS_V11;
    c->type = MEMDS_CMD_SYNC;
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "only Alerts"));
    c->type = MEMDS_CMD_ALERT;
    APR_ARRAY_IDX(c->items, 0, memds_item_t *)->source = NULL;
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "Source LocURI is empty"));
    m->cmds->nelts = 0;
    CU_ASSERT_EQUAL(memds_san_parse_legacy(&back, m, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(why && strstr(why, "no Alert"));
}

void unit_add_san(void)
{
    CU_pSuite s = CU_add_suite("san", NULL, NULL);

    CU_add_test(s, "the worked example, byte for byte", worked_example);
    CU_add_test(s, "digest: password, nonce, every bit checked",
                digest_checked);
    CU_add_test(s, "round trips: ui, initiator, session, 0-15 syncs",
                round_trips);
    CU_add_test(s, "build: every refusal with its reason", build_refusals);
    CU_add_test(s, "parse: every malformed package with its reason",
                parse_refusals);
    CU_add_test(s, "vendor bytes kept and covered by the digest", vendor_bytes);
    CU_add_test(s, "content-type codes", content_types);
    CU_add_test(s, "legacy 1.1 form: decoded by the codec, read back",
                legacy_form);
    CU_add_test(s, "legacy 1.1 form: refusals", legacy_refusals);
}
