/* libFuzzer target: the XML decoder and encoder (syncml/memds_xml.c).
 *
 * Per input: decode; when that succeeds, encode and decode the result
 * again, which must succeed and give the same encoding (the encoder's
 * output is canonical); the sizer must agree with the encoder. Anything
 * else is a bug and aborts. Seed corpus: the XML messages of tests/corpus
 * (see tests/fuzz/run-fuzz.sh). */
#include "syncml/memds_xml.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <libxml/parser.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

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
    fprintf(stderr, "fuzz_xml: %s: %s\n", what,
            err && err->msg ? err->msg : "(no message)");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    memds_tree_t *t = NULL, *t2 = NULL;
    memds_codec_err_t err;
    memds_buf_t b1, b2;

    setup();
    if (apr_pool_create(&p, root_pool) != APR_SUCCESS) {
        abort();
    }
    memset(&err, 0, sizeof(err));
    if (memds_xml_decode(&t, (const char *)data, size, &err, p)
        == APR_SUCCESS) {
        if (t == NULL || t->root == NULL) {
            fail("decode succeeded without a tree", NULL);
        }
        memds_buf_init(&b1, 0, p);
        if (memds_xml_encode(&b1, t, &err) != APR_SUCCESS) {
            fail("encoding a decoded tree failed", &err);
        }
        if (memds_xml_node_size(t->root) + sizeof(XML_DECL) - 1 != b1.len) {
            fail("memds_xml_node_size disagrees with the encoder", NULL);
        }
        if (memds_xml_decode(&t2, b1.data, b1.len, &err, p) != APR_SUCCESS) {
            fail("decoding the encoder's output failed", &err);
        }
        memds_buf_init(&b2, 0, p);
        if (memds_xml_encode(&b2, t2, &err) != APR_SUCCESS) {
            fail("second encoding failed", &err);
        }
        if (t2->version != t->version || b1.len != b2.len
            || memcmp(b1.data, b2.data, b1.len) != 0) {
            fail("encoding is not canonical", NULL);
        }
    }
    else if (err.msg == NULL || (err.rv != APR_EINVAL && err.rv != APR_ENOMEM)
             || t != NULL) {
        fail("decode failed without a proper error", &err);
    }
    apr_pool_destroy(p);
    return 0;
}
