/* libFuzzer target for the WBXML codec (syncml/memds_wbxml.c).
 *
 * Every input is decoded; a refusal must be APR_EINVAL with a message.
 * What decodes must encode, and the encoding must decode again to the same
 * tree, encode to the same bytes (the encoder's output is a fixed point)
 * and be exactly as long as memds_wbxml_node_size says. Any violation
 * abort()s so that libFuzzer records the input.
 */
#include "syncml/memds_wbxml.h"

#include <apr_general.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_devinf_type(const char *s, apr_size_t len)
{
    static const char w[] = "application/vnd.syncml-devinf+wbxml";
    static const char x[] = "application/vnd.syncml-devinf+xml";

    return (len == sizeof(w) - 1 && memcmp(s, w, len) == 0)
           || (len == sizeof(x) - 1 && memcmp(s, x, len) == 0);
}

/* Same tags, structure and bytes ("+xml" and "+wbxml" DevInf types are the
 * same: the encoder rewrites one into the other). The decoder bounds the
 * depth, so the recursion is bounded too. */
static int same_tree(const memds_node_t *a, const memds_node_t *b)
{
    const memds_node_t *x, *y;

    /* WBXML knows a tag by its code page and token: DevInf's 0x1C is Size
     * in 1.1 and MaxSize in 1.2 (memds_tags.c), so a "Size" read from
     * embedded XML comes back as MaxSize (found with libFuzzer seed
     * 499830229 at 1dcacdd). */
    if (a->tag->ts != b->tag->ts || a->tag->tok != b->tag->tok
        || (a->text == NULL) != (b->text == NULL)) {
        return 0;
    }
    if (a->text && !(a->len == b->len && memcmp(a->text, b->text, a->len) == 0)
        && !(is_devinf_type(a->text, a->len)
             && is_devinf_type(b->text, b->len))) {
        return 0;
    }
    for (x = a->first, y = b->first; x && y; x = x->next, y = y->next) {
        if (x->parent != a || y->parent != b || !same_tree(x, y)) {
            return 0;
        }
    }
    return x == NULL && y == NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* libFuzzer calls this from one thread; APR is initialised once and
     * every input gets its own pool under one long-lived parent. */
    static int initialised;
    static apr_pool_t *parent;
    apr_pool_t *p;
    memds_tree_t *t = NULL, *t2 = NULL;
    memds_codec_err_t err;
    memds_buf_t out, out2;
    apr_status_t rv;
    int page = 0;

    if (!initialised) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&parent, NULL) != APR_SUCCESS) {
            abort();
        }
        initialised = 1;
    }
    apr_pool_create(&p, parent);
    memset(&err, 0, sizeof(err));
    rv = memds_wbxml_decode(&t, (const char *)data, size, &err, p);
    if (rv != APR_SUCCESS) {
        if (rv != APR_EINVAL || err.rv != APR_EINVAL || err.msg == NULL
            || t != NULL || err.offset > size) {
            abort();
        }
        goto done;
    }
    memds_buf_init(&out, size + 64, p);
    if (memds_wbxml_encode(&out, t, &err) != APR_SUCCESS) {
        abort();
    }
    /* header (5 bytes: all our public ids are two mb_u_int32 bytes) */
    if (5 + memds_wbxml_node_size(t->root, &page) != out.len) {
        abort();
    }
    if (memds_wbxml_decode(&t2, out.data, out.len, &err, p) != APR_SUCCESS) {
        abort();
    }
    if (t2->version != t->version || !same_tree(t->root, t2->root)) {
        abort();
    }
    memds_buf_init(&out2, out.len, p);
    if (memds_wbxml_encode(&out2, t2, &err) != APR_SUCCESS
        || out2.len != out.len || memcmp(out2.data, out.data, out.len) != 0) {
        abort();
    }
done:
    apr_pool_destroy(p);
    return 0;
}
