/**
 * @file memds_buf.h
 * Small types every layer of the core shares, below the SyncML codecs, the
 * email objects and the backends: a growable byte buffer in pool memory,
 * the error a decoder or builder reports, and an Ext (a name with values,
 * as DevInf and the email object carry them).
 */
#ifndef MEMDS_BUF_H
#define MEMDS_BUF_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>

/** A growable output buffer (pool memory). */
typedef struct memds_buf_t {
    char *data;
    apr_size_t len, cap;
    apr_pool_t *pool;
} memds_buf_t;

void memds_buf_init(memds_buf_t *b, apr_size_t initial, apr_pool_t *p);
void memds_buf_add(memds_buf_t *b, const void *data, apr_size_t len);
void memds_buf_addc(memds_buf_t *b, char c);
/** Room for at least len more bytes after b->len (writers that fill
 *  b->data + b->len themselves, then advance b->len). */
void memds_buf_reserve(memds_buf_t *b, apr_size_t len);
/** Append a NUL-terminated string (without its NUL). */
void memds_buf_addstr(memds_buf_t *b, const char *s);

/** Why decoding (or encoding) failed: a message for the log and the 400
 *  answer. */
typedef struct memds_codec_err_t {
    apr_status_t rv;   /**< APR_EINVAL for bad input, APR_ENOMEM, ... */
    const char *msg;   /**< what is wrong, e.g. "unknown tag 0x3F on page 1" */
    apr_size_t offset; /**< byte offset into the input (WBXML) or 0 */
    int line;          /**< line (XML) or 0 */
} memds_codec_err_t;

/** An Ext element: a name and its values. */
typedef struct memds_ext_t {
    const char *xnam;
    apr_array_header_t *xvals; /**< const char * */
} memds_ext_t;

#endif /* MEMDS_BUF_H */
