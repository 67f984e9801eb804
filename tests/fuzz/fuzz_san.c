/* libFuzzer target: the Server Alerted Notification parser
 * (syncml/memds_san.c).
 *
 * Per input:
 * - SAN 1.2: parse it (digest unchecked). On failure there must be a
 *   reason. On success the values must be in range, and re-encoding them
 *   must give the input's bytes after the digest (the layout is canonical:
 *   the parser takes no future-use bit and no slack); built again with a
 *   password and nonce, the package must parse with them to the same
 *   values and be refused with another password.
 * - the legacy 1.1 form: when the bytes decode as a SyncML message that
 *   reads as a legacy SAN, building its legacy form again (WBXML) must
 *   decode and read to the same values.
 * Anything else aborts. Seeds: built with the library at start-up;
 * MEMDS_FUZZ_SAN_SEEDS=DIR writes them to DIR first. */
#include "syncml/memds_msg.h"
#include "syncml/memds_san.h"

#include "fuzz_seeds.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_san: invariant broken: %s\n", what);
        abort();
    }
}

static int nsyncs(const memds_san_t *s)
{
    return s->syncs ? s->syncs->nelts : 0;
}

/* The same values (version too unless legacy; vendor bytes unless
 * legacy, where the type strings count instead). */
static int same(const memds_san_t *a, const memds_san_t *b, int legacy)
{
    int i;

    if ((!legacy && a->version != b->version) || a->ui_mode != b->ui_mode
        || a->initiator != b->initiator || a->session_id != b->session_id
        || strcmp(a->server_id, b->server_id) != 0 || nsyncs(a) != nsyncs(b)) {
        return 0;
    }
    if (!legacy
        && (a->vendor_len != b->vendor_len
            || (a->vendor_len
                && memcmp(a->vendor, b->vendor, a->vendor_len) != 0))) {
        return 0;
    }
    for (i = 0; i < nsyncs(a); ++i) {
        const memds_san_sync_t *x = &APR_ARRAY_IDX(a->syncs, i,
                                                   memds_san_sync_t);
        const memds_san_sync_t *y = &APR_ARRAY_IDX(b->syncs, i,
                                                   memds_san_sync_t);
        if (x->sync_type != y->sync_type || x->content_type != y->content_type
            || strcmp(x->uri, y->uri) != 0
            || (x->type == NULL) != (y->type == NULL)
            || (x->type && strcmp(x->type, y->type) != 0)) {
            return 0;
        }
    }
    return 1;
}

static void check_values(const memds_san_t *s)
{
    int i;

    check(s->version == MEMDS_SAN_VERSION, "version not 12");
    check(s->ui_mode >= 0 && s->ui_mode <= 3, "ui mode out of range");
    check(s->initiator == 0 || s->initiator == 1, "initiator not a bit");
    check(s->session_id <= 0xFFFF, "session id over 16 bits");
    check(s->server_id && *s->server_id && strlen(s->server_id) <= 255,
          "server id empty or too long");
    check(nsyncs(s) <= MEMDS_SAN_MAX_SYNCS, "too many syncs");
    for (i = 0; i < nsyncs(s); ++i) {
        const memds_san_sync_t *x = &APR_ARRAY_IDX(s->syncs, i,
                                                   memds_san_sync_t);
        check(x->sync_type >= 206 && x->sync_type <= 210, "sync type");
        check(x->content_type <= 0xFFFFFF, "content type over 24 bits");
        check(x->uri && *x->uri && strlen(x->uri) <= 255, "URI");
    }
}

static void binary(const char *in, apr_size_t len, apr_pool_t *p)
{
    memds_san_t *s = NULL, *s2 = NULL;
    memds_buf_t b;
    const char *why = NULL;
    apr_status_t rv;

    rv = memds_san_parse(&s, in, len, NULL, NULL, 0, &why, p);
    if (rv != APR_SUCCESS) {
        check(rv == APR_EINVAL, "a failure other than APR_EINVAL");
        check(why != NULL && *why, "a failure without a reason");
        check(s == NULL, "a failure with a result");
        return;
    }
    check_values(s);
    memds_buf_init(&b, len + 16, p);
    why = NULL;
    check(memds_san_build(&b, s, NULL, NULL, 0, &why, p) == APR_SUCCESS,
          "the parsed values do not build");
    check(b.len == len
              && memcmp(b.data + MEMDS_SAN_DIGEST_LEN,
                        in + MEMDS_SAN_DIGEST_LEN, len - MEMDS_SAN_DIGEST_LEN)
                     == 0,
          "the re-encoding differs from the input");
    memds_buf_init(&b, len + 16, p);
    check(memds_san_build(&b, s, "pw", "n\0", 2, &why, p) == APR_SUCCESS,
          "the parsed values do not build with a password");
    check(memds_san_parse(&s2, b.data, b.len, "pw", "n\0", 2, &why, p)
              == APR_SUCCESS,
          "the re-encoding does not parse with its password");
    check(same(s, s2, 0), "the values changed through a round trip");
    why = NULL;
    check(memds_san_parse(&s2, b.data, b.len, "pW", "n\0", 2, &why, p)
                  == APR_EINVAL
              && why && strstr(why, "digest"),
          "a wrong password accepted");
}

static void legacy(const char *in, apr_size_t len, apr_pool_t *p)
{
    memds_msg_t *m;
    memds_codec_err_t err;
    memds_san_t *s = NULL, *s2 = NULL;
    memds_buf_t b;
    const char *why = NULL;
    apr_status_t rv;

    memset(&err, 0, sizeof(err));
    if (memds_msg_decode(&m, in, len, MEMDS_ENC_AUTO, &err, p) != APR_SUCCESS) {
        return;
    }
    rv = memds_san_parse_legacy(&s, m, &why, p);
    if (rv != APR_SUCCESS) {
        check(rv == APR_EINVAL && why && *why,
              "a legacy refusal without a reason");
        return;
    }
    check(s->version == 10 || s->version == 11, "legacy version");
    check(nsyncs(s) >= 1 && nsyncs(s) <= MEMDS_SAN_MAX_SYNCS,
          "legacy sync count");
    memds_buf_init(&b, len + 64, p);
    why = NULL;
    check(memds_san_build_legacy(&b, s, "dev", MEMDS_ENC_WBXML, &why, p)
              == APR_SUCCESS,
          "the legacy values do not build");
    check(memds_msg_decode(&m, b.data, b.len, MEMDS_ENC_WBXML, &err, p)
                  == APR_SUCCESS
              && memds_san_parse_legacy(&s2, m, &why, p) == APR_SUCCESS,
          "the legacy re-encoding does not read back");
    check(same(s, s2, 1), "the legacy values changed through a round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;

    apr_pool_create(&p, NULL);
    binary((const char *)data, size, p);
    legacy((const char *)data, size, p);
    apr_pool_destroy(p);
    return 0;
}

/* Seeds: packages the builder makes (the worked example of docs/san.md,
 * all datastores, several syncs with vendor bytes) and the legacy form in
 * WBXML and XML. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_seed_t seeds[6];
    memds_san_t *s[3];
    memds_buf_t b;
    const char *why;
    apr_pool_t *p;
    int i, n = 0;

    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&p, NULL);
    s[0] = memds_san_make("mailgw.example.com", p);
    s[0]->ui_mode = MEMDS_SAN_UI_BACKGROUND;
    s[0]->initiator = MEMDS_SAN_INIT_SERVER;
    s[0]->session_id = 42;
    memds_san_add_sync(s[0], 206, MEMDS_SAN_CT_EMAIL, "mail", p);
    s[1] = memds_san_make("https://sync.example.org/memds", p);
    s[2] = memds_san_make("srv", p);
    s[2]->ui_mode = MEMDS_SAN_UI_USER;
    s[2]->session_id = 0xBEEF;
    memds_san_add_sync(s[2], 206, MEMDS_SAN_CT_EMAIL, "Inbox", p);
    memds_san_add_sync(s[2], 210, MEMDS_SAN_CT_FOLDER, "email", p);
    memds_san_add_sync(s[2], 209, 0, "Sent", p);
    s[2]->vendor = "\x01\x02vnd";
    s[2]->vendor_len = 5;
    for (i = 0; i < 3; ++i) {
        memds_buf_init(&b, 128, p);
        check(memds_san_build(&b, s[i], "srvsecret", "SyncNonce1", 10, &why, p)
                  == APR_SUCCESS,
              "a seed does not build");
        seeds[n].data = b.data;
        seeds[n++].len = b.len;
    }
    for (i = 0; i < 2; ++i) {
        memds_buf_init(&b, 512, p);
        check(memds_san_build_legacy(&b, s[i == 0 ? 0 : 2], "IMEI:1",
                                     i == 0 ? MEMDS_ENC_WBXML : MEMDS_ENC_XML,
                                     &why, p)
                  == APR_SUCCESS,
              "a legacy seed does not build");
        seeds[n].data = b.data;
        seeds[n++].len = b.len;
    }
    /* a SAN 1.2 cut inside its sync entry */
    seeds[n].data = seeds[0].data;
    seeds[n++].len = seeds[0].len - 3;
    fuzz_write_seeds("MEMDS_FUZZ_SAN_SEEDS", "san", seeds, (size_t)n);
    apr_pool_destroy(p);
    return 0;
}
