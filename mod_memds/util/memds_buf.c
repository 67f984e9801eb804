/* memds_buf.c: growable output buffers (memds_buf.h). */
#include "util/memds_buf.h"

#include <string.h>

void memds_buf_init(memds_buf_t *b, apr_size_t initial, apr_pool_t *p)
{
    b->pool = p;
    b->cap = initial ? initial : 256;
    b->data = apr_palloc(p, b->cap);
    b->len = 0;
}

void memds_buf_reserve(memds_buf_t *b, apr_size_t len)
{
    if (b->len + len > b->cap) {
        apr_size_t cap = b->cap * 2;
        char *nd;
        while (cap < b->len + len) {
            cap *= 2;
        }
        nd = apr_palloc(b->pool, cap);
        memcpy(nd, b->data, b->len);
        b->data = nd;
        b->cap = cap;
    }
}

void memds_buf_add(memds_buf_t *b, const void *data, apr_size_t len)
{
    memds_buf_reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void memds_buf_addc(memds_buf_t *b, char c)
{
    memds_buf_add(b, &c, 1);
}

void memds_buf_addstr(memds_buf_t *b, const char *s)
{
    memds_buf_add(b, s, strlen(s));
}
