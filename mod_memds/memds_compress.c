/* memds_compress.c: the request body as the engine sees it (read, and
 * decoded from its Content-Encoding) and the answer as it goes out
 * (compressed when the device accepts it).
 *
 * Why the module and not mod_deflate: mod_deflate only knows gzip, and
 * the devices that compress (Funambol-style clients) send and expect
 * "deflate" -- zlib data (RFC 1950) with an Uncompressed-Content-Length
 * header, some of them raw deflate (RFC 1951). Doing every form here with
 * zlib keeps one limit for all of them: the decoded message may not grow
 * beyond MemDSMaxMsgSize, checked while inflating, so a compression bomb
 * costs at most that much memory and is refused with 413 as soon as it
 * gets there. Answers are compressed in one piece, so they keep a
 * Content-Length (some SyncML clients cannot read chunked answers, which
 * mod_deflate would give a large answer). mod_deflate, when an operator
 * configures it anyway, leaves an answer that already has a
 * Content-Encoding alone, and its input filter removes the gzip it
 * decoded from Content-Encoding, so both can be on.
 *
 * zlib allocates from the request pool: nothing to free on any path. */
#include "memds_glue.h"

#include <http_protocol.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <zlib.h>

#include "util/memds_util.h"

/** Compressed answers shorter than this are not worth it. */
#define MEMDS_COMPRESS_MIN 256

static const char *const coding_names[] = { "identity", "gzip", "deflate",
                                            "deflate (raw)" };

static voidpf zalloc_pool(voidpf opaque, uInt items, uInt size)
{
    return apr_palloc(opaque, (apr_size_t)items * size);
}

static void zfree_pool(voidpf opaque, voidpf address)
{
    (void)opaque;
    (void)address;
}

/* The Content-Encoding of the request: MEMDS_CE_*, or -1 for one we do not
 * decode (another coding, or several stacked). */
static int request_coding(const char *ce)
{
    apr_size_t n;

    if (ce == NULL) {
        return MEMDS_CE_IDENTITY;
    }
    while (apr_isspace(*ce)) {
        ++ce;
    }
    n = strlen(ce);
    while (n > 0 && apr_isspace(ce[n - 1])) {
        --n;
    }
    if (n == 0 || (n == 8 && strncasecmp(ce, "identity", 8) == 0)) {
        return MEMDS_CE_IDENTITY;
    }
    if ((n == 4 && strncasecmp(ce, "gzip", 4) == 0)
        || (n == 6 && strncasecmp(ce, "x-gzip", 6) == 0)) {
        return MEMDS_CE_GZIP;
    }
    if (n == 7 && strncasecmp(ce, "deflate", 7) == 0) {
        return MEMDS_CE_ZLIB; /* or raw: decided by the first two bytes */
    }
    return -1;
}

/* ---------------------------------------------------------------- reading */

typedef struct body_t {
    request_rec *r;
    apr_off_t max;  /* most bytes of the decoded message */
    char *buf;      /* the decoded message */
    apr_size_t len; /* bytes in buf */
    apr_size_t cap; /* size of buf (one more for the NUL) */
    int coding;     /* MEMDS_CE_* */
    apr_off_t wire; /* bytes read from the connection */
    z_stream zs;
    int zinit;            /* inflateInit2 done */
    int zdone;            /* the stream (its last gzip member) ended */
    unsigned char hdr[2]; /* first bytes of a deflate body, until two */
    apr_size_t nhdr;
} body_t;

/* Make room for at least one more byte (up to max + 1, which tells that the
 * message is too large). */
static void grow(body_t *b)
{
    apr_size_t cap = b->cap ? b->cap * 2 : 8192;
    char *nb;

    if ((apr_off_t)cap > b->max + 1) {
        cap = (apr_size_t)b->max + 1;
    }
    nb = apr_palloc(b->r->pool, cap + 1);
    memcpy(nb, b->buf, b->len);
    b->buf = nb;
    b->cap = cap;
}

static int too_large(body_t *b)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, b->r,
                  MEMDS_APLOGNO(00081) "%s request body decodes to more than "
                                       "MemDSMaxMsgSize %" APR_OFF_T_FMT
                                       " bytes (after %" APR_OFF_T_FMT
                                       " bytes read): refused",
                                coding_names[b->coding], b->max, b->wire);
    return HTTP_REQUEST_ENTITY_TOO_LARGE;
}

static int bad_data(body_t *b, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, b->r,
                  MEMDS_APLOGNO(00083) "cannot decode the %s request body: %s",
                                coding_names[b->coding],
                                why ? why : "corrupt data");
    return HTTP_BAD_REQUEST;
}

/* Inflate n bytes into the message; n == 0 at the end of the body, to
 * take what zlib still holds. */
static int inflate_some(body_t *b, const unsigned char *data, apr_size_t n)
{
    int zr;

    b->zs.next_in = (Bytef *)data;
    b->zs.avail_in = (uInt)n;
    for (;;) {
        if (b->zdone) {
            if (b->zs.avail_in == 0) {
                break;
            }
            if (b->coding != MEMDS_CE_GZIP) {
                return bad_data(b, "data after the end of the stream");
            }
            /* RFC 1952: a gzip file may have several members. */
            inflateReset(&b->zs);
            b->zdone = 0;
        }
        if (b->len == b->cap) {
            if ((apr_off_t)b->len > b->max) {
                return too_large(b);
            }
            grow(b);
        }
        b->zs.next_out = (Bytef *)b->buf + b->len;
        b->zs.avail_out = (uInt)(b->cap - b->len);
        zr = inflate(&b->zs, Z_NO_FLUSH);
        b->len = b->cap - b->zs.avail_out;
        if ((apr_off_t)b->len > b->max) {
            return too_large(b);
        }
        if (zr == Z_STREAM_END) {
            b->zdone = 1;
        }
        else if (zr == Z_BUF_ERROR || (zr == Z_OK && b->zs.avail_in == 0)) {
            if (b->zs.avail_out > 0) {
                break; /* all input taken, nothing more to give now */
            }
        }
        else if (zr != Z_OK) {
            return bad_data(b, zr == Z_NEED_DICT ? "needs a preset dictionary"
                                                 : b->zs.msg);
        }
    }
    return OK;
}

/* The first bytes of a compressed body: start zlib for its form. */
static int start_inflate(body_t *b)
{
    int wbits = 16 + MAX_WBITS; /* gzip only */
    int zr;

    if (b->coding == MEMDS_CE_ZLIB) {
        /* RFC 1950's header: method 8, window <= 32K, a multiple of 31.
         * A raw stream that starts so would be a stored block with
         * non-zero padding bits, which no compressor writes. */
        unsigned cmf = b->hdr[0], flg = b->hdr[1];
        if ((cmf & 0x0f) != 8 || (cmf >> 4) > 7 || ((cmf << 8) | flg) % 31) {
            b->coding = MEMDS_CE_RAW;
        }
    }
    if (b->coding != MEMDS_CE_GZIP) {
        wbits = b->coding == MEMDS_CE_RAW ? -MAX_WBITS : MAX_WBITS;
    }
    b->zs.zalloc = zalloc_pool;
    b->zs.zfree = zfree_pool;
    b->zs.opaque = b->r->pool;
    zr = inflateInit2(&b->zs, wbits);
    if (zr != Z_OK) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, b->r,
                      MEMDS_APLOGNO(00084) "zlib: cannot start inflating (%d)",
                                    zr);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    b->zinit = 1;
    return inflate_some(b, b->hdr, b->nhdr);
}

static int take(body_t *b, const char *data, apr_size_t n)
{
    b->wire += n;
    if (b->wire > b->max) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, b->r,
                      MEMDS_APLOGNO(00015) "request body is larger "
                                 "than MemDSMaxMsgSize %" APR_OFF_T_FMT,
                          b->max);
        return HTTP_REQUEST_ENTITY_TOO_LARGE;
    }
    if (b->coding == MEMDS_CE_IDENTITY) {
        while (b->len + n > b->cap) {
            grow(b);
        }
        memcpy(b->buf + b->len, data, n);
        b->len += n;
        return OK;
    }
    if (!b->zinit) {
        int st;
        while (n > 0 && b->nhdr < 2) {
            b->hdr[b->nhdr++] = (unsigned char)*data++;
            --n;
        }
        if (b->nhdr < 2) {
            return OK;
        }
        if ((st = start_inflate(b)) != OK) {
            return st;
        }
    }
    return n ? inflate_some(b, (const unsigned char *)data, n) : OK;
}

/* At the end of the body: a compressed one must have ended too. */
static int finish(body_t *b)
{
    int st;

    if (b->coding == MEMDS_CE_IDENTITY) {
        return OK;
    }
    if (!b->zinit) {
        return bad_data(b, "too short");
    }
    if (!b->zdone && (st = inflate_some(b, NULL, 0)) != OK) {
        return st;
    }
    return b->zdone ? OK : bad_data(b, "the stream ends early");
}

/* Is mod_deflate's input filter (SetInputFilter DEFLATE) in the chain? It
 * inflates a gzip body, under its own limits (DeflateInflateLimitRequestBody,
 * DeflateInflateRatioLimit), and leaves Content-Encoding as it was. */
static int deflate_filter_on(request_rec *r)
{
    ap_filter_t *f;

    for (f = r->input_filters; f; f = f->next) {
        if (f->frec && f->frec->name
            && strcasecmp(f->frec->name, "deflate") == 0) {
            return 1;
        }
    }
    return 0;
}

int memds_read_body(const char **pbuf, apr_size_t *plen, int *pcoding,
                    request_rec *r, apr_off_t max)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    const char *ucl = apr_table_get(r->headers_in,
                                    "Uncompressed-Content-Length");
    const char *ce = apr_table_get(r->headers_in, "Content-Encoding");
    apr_bucket_brigade *bb;
    body_t b;
    int seen_eos = 0, st;
    apr_status_t rv;

    memset(&b, 0, sizeof(b));
    b.r = r;
    b.max = max;
    b.coding = request_coding(ce);
    if (b.coding < 0) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      MEMDS_APLOGNO(00080) "refusing Content-Encoding '%s': "
                                           "expected gzip or deflate",
                                    ce);
        return HTTP_UNSUPPORTED_MEDIA_TYPE;
    }
    if (b.coding == MEMDS_CE_GZIP && deflate_filter_on(r)) {
        b.coding = MEMDS_CE_IDENTITY; /* mod_deflate inflates it for us */
    }
    b.cap = 8192;
    if (cl) {
        apr_off_t n;
        if (memds_parse_size(&n, cl, 0, APR_INT64_MAX) != APR_SUCCESS) {
            return HTTP_BAD_REQUEST;
        }
        if (n > max) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                          MEMDS_APLOGNO(00010) "request body of %" APR_OFF_T_FMT
                                     " bytes is larger "
                                     "than MemDSMaxMsgSize %" APR_OFF_T_FMT,
                              n, max);
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        if (b.coding == MEMDS_CE_IDENTITY) {
            b.cap = (apr_size_t)n;
        }
    }
    if (ucl && b.coding != MEMDS_CE_IDENTITY) {
        /* Funambol-style clients announce the decoded size: a hint for the
         * buffer and an early refusal, never trusted beyond that. */
        apr_off_t n;
        if (memds_parse_size(&n, ucl, 0, APR_INT64_MAX) == APR_SUCCESS) {
            if (n > max) {
                ap_log_rerror(
                    APLOG_MARK, APLOG_INFO, 0, r,
                    MEMDS_APLOGNO(00082) "Uncompressed-Content-Length %" APR_OFF_T_FMT
                               " is larger than MemDSMaxMsgSize "
                               "%" APR_OFF_T_FMT,
                        n, max);
                return HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            b.cap = n > 0 ? (apr_size_t)n : 1;
        }
    }
    if ((apr_off_t)b.cap > max + 1) {
        b.cap = (apr_size_t)max + 1;
    }
    b.buf = apr_palloc(r->pool, b.cap + 1);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!seen_eos) {
        apr_bucket *e;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, 65536);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r,
                          MEMDS_APLOGNO(00012) "reading the request body failed");
            return ap_map_http_request_error(rv, HTTP_BAD_REQUEST);
        }
        for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
             e = APR_BUCKET_NEXT(e)) {
            const char *data;
            apr_size_t n;

            if (APR_BUCKET_IS_EOS(e)) {
                seen_eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(e)) {
                continue;
            }
            rv = apr_bucket_read(e, &data, &n, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                return HTTP_BAD_REQUEST;
            }
            if ((st = take(&b, data, n)) != OK) {
                return st;
            }
        }
        apr_brigade_cleanup(bb);
    }
    if ((st = finish(&b)) != OK) {
        return st;
    }
    b.buf[b.len] = '\0';
    if (b.coding != MEMDS_CE_IDENTITY) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      MEMDS_APLOGNO(00085) "%s request body: %" APR_OFF_T_FMT
                                           " bytes decoded to %" APR_SIZE_T_FMT,
                                    coding_names[b.coding], b.wire, b.len);
    }
    *pbuf = b.buf;
    *plen = b.len;
    *pcoding = b.coding;
    return OK;
}

/* ---------------------------------------------------------------- writing */

/* The q-value the Accept-Encoding header gives a coding (1000 = 1.0); -1
 * when it does not name it. */
static int accept_q(const char *ae, const char *coding)
{
    apr_size_t clen = strlen(coding);
    const char *p = ae;

    while (p && *p) {
        const char *tok, *end;
        int q = 1000;

        while (*p == ',' || apr_isspace(*p)) {
            ++p;
        }
        tok = p;
        while (*p && *p != ',' && *p != ';' && !apr_isspace(*p)) {
            ++p;
        }
        end = p;
        while (*p && *p != ',') {
            /* parameters: only q matters */
            if (*p == ';') {
                ++p;
                while (apr_isspace(*p)) {
                    ++p;
                }
                if ((*p == 'q' || *p == 'Q') && p[1] == '=') {
                    double v = strtod(p + 2, NULL);
                    q = v <= 0 ? 0 : v >= 1 ? 1000 : (int)(v * 1000 + 0.5);
                }
                continue;
            }
            ++p;
        }
        if ((apr_size_t)(end - tok) == clen
            && strncasecmp(tok, coding, clen) == 0) {
            return q;
        }
    }
    return -1;
}

/* Which coding the answer gets: MEMDS_CE_*. */
static int answer_coding(request_rec *r, int req_coding)
{
    const char *ae = apr_table_get(r->headers_in, "Accept-Encoding");
    int qg, qd, qa;

    if (ae == NULL) {
        return MEMDS_CE_IDENTITY;
    }
    qa = accept_q(ae, "*");
    qg = accept_q(ae, "gzip");
    if (qg < 0) {
        qg = accept_q(ae, "x-gzip");
    }
    qd = accept_q(ae, "deflate");
    qg = qg < 0 ? qa : qg;
    qd = qd < 0 ? qa : qd;
    /* A client that compressed its request with deflate (the Funambol
     * form) gets the same form back, raw if it sent raw. */
    if ((req_coding == MEMDS_CE_ZLIB || req_coding == MEMDS_CE_RAW) && qd > 0) {
        return req_coding;
    }
    if (qg > 0 && qg >= qd) {
        return MEMDS_CE_GZIP;
    }
    return qd > 0 ? MEMDS_CE_ZLIB : MEMDS_CE_IDENTITY;
}

void memds_compress_answer(const char **pout, apr_size_t *plen, request_rec *r,
                           const memds_dir_conf *dc, int req_coding)
{
    z_stream zs;
    int coding, wbits, zr;
    uLong bound;
    unsigned char *buf = NULL;

    if (dc->compress == 0) {
        return;
    }
    apr_table_mergen(r->headers_out, "Vary", "Accept-Encoding");
    coding = answer_coding(r, req_coding);
    if (coding == MEMDS_CE_IDENTITY || *plen < MEMDS_COMPRESS_MIN) {
        return;
    }
    wbits = coding == MEMDS_CE_GZIP  ? 16 + MAX_WBITS
            : coding == MEMDS_CE_RAW ? -MAX_WBITS
                                     : MAX_WBITS;
    memset(&zs, 0, sizeof(zs));
    zs.zalloc = zalloc_pool;
    zs.zfree = zfree_pool;
    zs.opaque = r->pool;
    zr = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, wbits, 8,
                      Z_DEFAULT_STRATEGY);
    if (zr == Z_OK) {
        bound = deflateBound(&zs, (uLong)*plen);
        buf = apr_palloc(r->pool, bound);
        zs.next_in = (Bytef *)*pout;
        zs.avail_in = (uInt)*plen;
        zs.next_out = buf;
        zs.avail_out = (uInt)bound;
        zr = deflate(&zs, Z_FINISH);
        deflateEnd(&zs);
    }
    if (zr != Z_STREAM_END) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      MEMDS_APLOGNO(00086) "zlib: compressing the answer "
                                           "failed (%d); sent uncompressed",
                                    zr);
        return;
    }
    if (zs.total_out >= *plen) {
        return; /* incompressible: the plain answer is as good */
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  MEMDS_APLOGNO(00087) "answer of %" APR_SIZE_T_FMT
                                       " bytes sent as %s, %lu bytes",
                                *plen, coding_names[coding],
                                (unsigned long)zs.total_out);
    apr_table_setn(r->headers_out, "Content-Encoding",
                   coding == MEMDS_CE_GZIP ? "gzip" : "deflate");
    apr_table_setn(r->headers_out, "Uncompressed-Content-Length",
                   apr_psprintf(r->pool, "%" APR_SIZE_T_FMT, *plen));
    *pout = (const char *)buf;
    *plen = (apr_size_t)zs.total_out;
}
