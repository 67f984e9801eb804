/* memds_san.c: Server Alerted Notification, SAN 1.2 and the legacy 1.1
 * form, built and parsed (memds_san.h, docs/san.md). */
#include "syncml/memds_san.h"
#include "syncml/memds_codes.h"

#include <apr_base64.h>
#include <apr_lib.h>
#include <apr_md5.h>
#include <apr_strings.h>
#include <string.h>

/* ======================================================= content types */

static const struct {
    apr_uint32_t code;
    const char *type;
} k_cts[] = {
    { 0x000003, "text/plain" },
    { 0x000006, "text/x-vCalendar" },
    { 0x000007, "text/x-vCard" },
    { 0x000055, "text/x-vMessage" },
    { 0x000305, "text/calendar" },
    { MEMDS_SAN_CT_EMAIL, "application/vnd.omads-email+xml" },
    { MEMDS_SAN_CT_FILE, "application/vnd.omads-file+xml" },
    { MEMDS_SAN_CT_FOLDER, "application/vnd.omads-folder+xml" },
    { 0x000309, "text/directory;profile=vCard" },
};

apr_uint32_t memds_san_ct_code(const char *type)
{
    apr_size_t i;

    for (i = 0; type != NULL && i < sizeof(k_cts) / sizeof(k_cts[0]); ++i) {
        if (strcasecmp(type, k_cts[i].type) == 0) {
            return k_cts[i].code;
        }
    }
    return MEMDS_SAN_CT_UNSPECIFIED;
}

const char *memds_san_ct_name(apr_uint32_t code)
{
    apr_size_t i;

    for (i = 0; i < sizeof(k_cts) / sizeof(k_cts[0]); ++i) {
        if (k_cts[i].code == code) {
            return k_cts[i].type;
        }
    }
    return NULL;
}

/* ============================================================ building */

memds_san_t *memds_san_make(const char *server_id, apr_pool_t *p)
{
    memds_san_t *san = apr_pcalloc(p, sizeof(*san));

    san->version = MEMDS_SAN_VERSION;
    san->server_id = server_id;
    return san;
}

memds_san_sync_t *memds_san_add_sync(memds_san_t *san, int sync_type,
                                     apr_uint32_t content_type, const char *uri,
                                     apr_pool_t *p)
{
    memds_san_sync_t *s;

    if (san->syncs == NULL) {
        san->syncs = apr_array_make(p, 2, sizeof(memds_san_sync_t));
    }
    s = apr_array_push(san->syncs);
    memset(s, 0, sizeof(*s));
    s->sync_type = sync_type;
    s->content_type = content_type;
    s->uri = uri;
    return s;
}

static int nsyncs(const memds_san_t *san)
{
    return san->syncs ? san->syncs->nelts : 0;
}

static const memds_san_sync_t *sync_at(const memds_san_t *san, int i)
{
    return &APR_ARRAY_IDX(san->syncs, i, memds_san_sync_t);
}

/* B64 of the MD5 of what ctx has seen: 24 characters and a NUL. */
static void md5_b64(char out[25], apr_md5_ctx_t *ctx)
{
    unsigned char d[APR_MD5_DIGESTSIZE];

    apr_md5_final(d, ctx);
    apr_base64_encode(out, (const char *)d, APR_MD5_DIGESTSIZE);
}

void memds_san_digest(unsigned char digest[MEMDS_SAN_DIGEST_LEN],
                      const char *server_id, const char *server_pw,
                      const char *nonce, apr_size_t nonce_len,
                      const char *notification, apr_size_t len)
{
    apr_md5_ctx_t ctx;
    char cred[25], body[25];

    if (server_pw == NULL) {
        memset(digest, 0, MEMDS_SAN_DIGEST_LEN);
        return;
    }
    apr_md5_init(&ctx);
    apr_md5_update(&ctx, server_id, strlen(server_id));
    apr_md5_update(&ctx, ":", 1);
    apr_md5_update(&ctx, server_pw, strlen(server_pw));
    md5_b64(cred, &ctx);
    apr_md5_init(&ctx);
    apr_md5_update(&ctx, notification, len);
    md5_b64(body, &ctx);
    apr_md5_init(&ctx);
    apr_md5_update(&ctx, cred, strlen(cred));
    apr_md5_update(&ctx, ":", 1);
    if (nonce_len > 0) {
        apr_md5_update(&ctx, nonce, nonce_len);
    }
    apr_md5_update(&ctx, ":", 1);
    apr_md5_update(&ctx, body, strlen(body));
    apr_md5_final(digest, &ctx);
}

/* NULL, or why a name (server id, URI) cannot be written. */
static const char *bad_name(const char *what, const char *s, apr_pool_t *p)
{
    if (s == NULL || *s == '\0') {
        return apr_psprintf(p, "the %s is empty", what);
    }
    if (strlen(s) > 255) {
        return apr_psprintf(p, "the %s has %lu bytes (at most 255)", what,
                            (unsigned long)strlen(s));
    }
    return NULL;
}

/* NULL, or why a sync type is not one a server may alert. */
static const char *bad_sync_type(int t, int i, apr_pool_t *p)
{
    if (t < MEMDS_ALERT_TWO_WAY_BY_SERVER
        || t > MEMDS_ALERT_REFRESH_SERVER_BY_SERVER) {
        return apr_psprintf(p, "sync %d: sync type %d is not 206..210", i + 1,
                            t);
    }
    return NULL;
}

/* What both forms check: NULL when san can be written. */
static const char *check_common(const memds_san_t *san, apr_pool_t *p)
{
    const char *why;
    int i;

    if (san->session_id > 0xFFFF) {
        return apr_psprintf(p, "session id %u is over 65535", san->session_id);
    }
    if ((why = bad_name("server identifier", san->server_id, p)) != NULL) {
        return why;
    }
    if (nsyncs(san) > MEMDS_SAN_MAX_SYNCS) {
        return apr_psprintf(p, "%d sync entries (at most %d)", nsyncs(san),
                            MEMDS_SAN_MAX_SYNCS);
    }
    for (i = 0; i < nsyncs(san); ++i) {
        const memds_san_sync_t *s = sync_at(san, i);
        if ((why = bad_sync_type(s->sync_type, i, p)) != NULL) {
            return why;
        }
        if (s->content_type > 0xFFFFFF) {
            return apr_psprintf(p,
                                "sync %d: content type 0x%lx is over 24 bits",
                                i + 1, (unsigned long)s->content_type);
        }
        if ((why = bad_name("server URI", s->uri, p)) != NULL) {
            return apr_psprintf(p, "sync %d: %s", i + 1, why);
        }
    }
    return NULL;
}

apr_status_t memds_san_build(memds_buf_t *out, const memds_san_t *san,
                             const char *server_pw, const char *nonce,
                             apr_size_t nonce_len, const char **why,
                             apr_pool_t *p)
{
    unsigned char hdr[8], d[MEMDS_SAN_DIGEST_LEN];
    const char *w;
    apr_size_t start, sid_len;
    int i;

    if (san->version != MEMDS_SAN_VERSION) {
        *why = apr_psprintf(p, "version %d: only 12 (1.2) has this form",
                            san->version);
        return APR_EINVAL;
    }
    if (san->ui_mode < 0 || san->ui_mode > 3) {
        *why = apr_psprintf(p, "ui mode %d is not 0..3", san->ui_mode);
        return APR_EINVAL;
    }
    if (san->initiator != 0 && san->initiator != 1) {
        *why = apr_psprintf(p, "initiator %d is not 0 (user) or 1 (server)",
                            san->initiator);
        return APR_EINVAL;
    }
    if ((w = check_common(san, p)) != NULL) {
        *why = w;
        return APR_EINVAL;
    }
    start = out->len;
    memset(d, 0, sizeof(d));
    memds_buf_add(out, d, sizeof(d)); /* filled in below */
    sid_len = strlen(san->server_id);
    hdr[0] = (unsigned char)(san->version >> 2);
    hdr[1] = (unsigned char)(((san->version & 3) << 6) | (san->ui_mode << 4)
                             | (san->initiator << 3));
    hdr[2] = hdr[3] = hdr[4] = 0;
    hdr[5] = (unsigned char)(san->session_id >> 8);
    hdr[6] = (unsigned char)(san->session_id & 0xFF);
    hdr[7] = (unsigned char)sid_len;
    memds_buf_add(out, hdr, sizeof(hdr));
    memds_buf_add(out, san->server_id, sid_len);
    memds_buf_addc(out, (char)(nsyncs(san) << 4));
    for (i = 0; i < nsyncs(san); ++i) {
        const memds_san_sync_t *s = sync_at(san, i);
        unsigned char e[5];
        e[0] = (unsigned char)((s->sync_type - 200) << 4);
        e[1] = (unsigned char)(s->content_type >> 16);
        e[2] = (unsigned char)((s->content_type >> 8) & 0xFF);
        e[3] = (unsigned char)(s->content_type & 0xFF);
        e[4] = (unsigned char)strlen(s->uri);
        memds_buf_add(out, e, sizeof(e));
        memds_buf_add(out, s->uri, e[4]);
    }
    if (san->vendor_len > 0) {
        memds_buf_add(out, san->vendor, san->vendor_len);
    }
    memds_san_digest(d, san->server_id, server_pw, nonce, nonce_len,
                     out->data + start + MEMDS_SAN_DIGEST_LEN,
                     out->len - start - MEMDS_SAN_DIGEST_LEN);
    memcpy(out->data + start, d, sizeof(d));
    return APR_SUCCESS;
}

/* ============================================================= parsing */

typedef struct {
    const unsigned char *b;
    apr_size_t len, off;
    const char *why;
    apr_pool_t *p;
} rd_t;

static int rd_fail(rd_t *r, const char *what)
{
    r->why = apr_psprintf(r->p, "%s (byte %lu of %lu)", what,
                          (unsigned long)r->off, (unsigned long)r->len);
    return 0;
}

/* A name of n bytes at r->off (server id or URI), copied to *ps. */
static int rd_name(rd_t *r, const char **ps, apr_size_t n, const char *what)
{
    if (n == 0) {
        return rd_fail(r, apr_psprintf(r->p, "the %s is empty", what));
    }
    if (r->len - r->off < n) {
        return rd_fail(r, apr_psprintf(r->p,
                                       "the %s of %lu bytes runs past the end",
                                       what, (unsigned long)n));
    }
    if (memchr(r->b + r->off, '\0', n) != NULL) {
        return rd_fail(r, apr_psprintf(r->p, "the %s holds a NUL byte", what));
    }
    *ps = apr_pstrmemdup(r->p, (const char *)r->b + r->off, n);
    r->off += n;
    return 1;
}

static int rd_header(rd_t *r, memds_san_t *san)
{
    const unsigned char *h = r->b + MEMDS_SAN_DIGEST_LEN;

    if (r->len < MEMDS_SAN_HDR_LEN) {
        return rd_fail(r, apr_psprintf(r->p,
                                       "%lu bytes: shorter than the 24 of "
                                       "digest and header",
                                       (unsigned long)r->len));
    }
    memcpy(san->digest, r->b, MEMDS_SAN_DIGEST_LEN);
    r->off = MEMDS_SAN_DIGEST_LEN;
    san->version = (h[0] << 2) | (h[1] >> 6);
    if (san->version != MEMDS_SAN_VERSION) {
        return rd_fail(r, apr_psprintf(r->p,
                                       "version %d (%d.%d): not a SAN 1.2 (12)",
                                       san->version, san->version / 10,
                                       san->version % 10));
    }
    san->ui_mode = (h[1] >> 4) & 3;
    san->initiator = (h[1] >> 3) & 1;
    if ((h[1] & 7) != 0 || h[2] != 0 || h[3] != 0 || h[4] != 0) {
        r->off = MEMDS_SAN_DIGEST_LEN + 1;
        return rd_fail(r, "future-use bits of the header are not 0");
    }
    san->session_id = ((unsigned)h[5] << 8) | h[6];
    r->off = MEMDS_SAN_HDR_LEN;
    return rd_name(r, &san->server_id, h[7], "server identifier");
}

static int rd_body(rd_t *r, memds_san_t *san)
{
    unsigned n, i;

    if (r->off >= r->len) {
        return rd_fail(r, "no notification body (num-syncs) after the "
                          "server identifier");
    }
    n = r->b[r->off] >> 4;
    if ((r->b[r->off] & 0x0F) != 0) {
        return rd_fail(r, "future-use bits after num-syncs are not 0");
    }
    r->off++;
    if (n * 5 > r->len - r->off) {
        return rd_fail(r, apr_psprintf(r->p,
                                       "num-syncs %u: %lu bytes left hold at "
                                       "most %lu sync entries",
                                       n, (unsigned long)(r->len - r->off),
                                       (unsigned long)(r->len - r->off) / 5));
    }
    san->syncs = apr_array_make(r->p, n ? (int)n : 1, sizeof(memds_san_sync_t));
    for (i = 0; i < n; ++i) {
        const unsigned char *e = r->b + r->off;
        memds_san_sync_t *s;
        if (r->len - r->off < 5) {
            return rd_fail(r, apr_psprintf(r->p, "sync %u of %u is cut short",
                                           i + 1, n));
        }
        if ((e[0] & 0x0F) != 0) {
            return rd_fail(r, apr_psprintf(r->p,
                                           "sync %u: future-use bits are not 0",
                                           i + 1));
        }
        if ((e[0] >> 4) < 6 || (e[0] >> 4) > 10) {
            return rd_fail(r, apr_psprintf(r->p,
                                           "sync %u: sync type %d is not "
                                           "206..210",
                                           i + 1, 200 + (e[0] >> 4)));
        }
        s = memds_san_add_sync(san, 200 + (e[0] >> 4),
                               ((apr_uint32_t)e[1] << 16)
                                   | ((apr_uint32_t)e[2] << 8) | e[3],
                               NULL, r->p);
        s->type = memds_san_ct_name(s->content_type);
        r->off += 5;
        if (!rd_name(r, &s->uri, e[4],
                     apr_psprintf(r->p, "server URI of sync %u", i + 1))) {
            return 0;
        }
    }
    san->vendor_len = r->len - r->off;
    san->vendor = san->vendor_len
                      ? apr_pmemdup(r->p, r->b + r->off, san->vendor_len)
                      : NULL;
    return 1;
}

apr_status_t memds_san_parse(memds_san_t **psan, const char *buf,
                             apr_size_t len, const char *server_pw,
                             const char *nonce, apr_size_t nonce_len,
                             const char **why, apr_pool_t *p)
{
    memds_san_t *san = apr_pcalloc(p, sizeof(*san));
    unsigned char d[MEMDS_SAN_DIGEST_LEN];
    rd_t r;
    unsigned diff = 0;
    int i;

    memset(&r, 0, sizeof(r));
    r.b = (const unsigned char *)buf;
    r.len = len;
    r.p = p;
    if (!rd_header(&r, san) || !rd_body(&r, san)) {
        *why = r.why;
        return APR_EINVAL;
    }
    if (server_pw != NULL) {
        memds_san_digest(d, san->server_id, server_pw, nonce, nonce_len,
                         buf + MEMDS_SAN_DIGEST_LEN,
                         len - MEMDS_SAN_DIGEST_LEN);
        for (i = 0; i < MEMDS_SAN_DIGEST_LEN; ++i) {
            diff |= (unsigned)(d[i] ^ san->digest[i]);
        }
        if (diff != 0) {
            *why = "the digest does not match the server identifier, "
                   "password and nonce given";
            return APR_EINVAL;
        }
    }
    *psan = san;
    return APR_SUCCESS;
}

/* ========================================================= legacy form */

static memds_loc_t *loc(const char *uri, apr_pool_t *p)
{
    memds_loc_t *l = apr_pcalloc(p, sizeof(*l));

    l->uri = uri;
    return l;
}

apr_status_t memds_san_legacy_msg(memds_msg_t **pmsg, const memds_san_t *san,
                                  const char *device_id, const char **why,
                                  apr_pool_t *p)
{
    memds_msg_t *m;
    const char *w;
    int i;

    if ((w = check_common(san, p)) != NULL) {
        *why = w;
        return APR_EINVAL;
    }
    if (nsyncs(san) == 0) {
        *why = "the legacy form needs at least one sync entry (it has no "
               "\"all datastores\")";
        return APR_EINVAL;
    }
    m = apr_pcalloc(p, sizeof(*m));
    m->version = MEMDS_V11;
    m->hdr.verdtd = "1.1";
    m->hdr.verproto = "SyncML/1.1";
    m->hdr.session_id = apr_psprintf(p, "%u", san->session_id);
    m->hdr.msg_id = "1";
    m->hdr.target = loc(device_id && *device_id ? device_id : "/", p);
    m->hdr.source = loc(san->server_id, p);
    m->cmds = apr_array_make(p, nsyncs(san), sizeof(memds_cmd_t *));
    for (i = 0; i < nsyncs(san); ++i) {
        const memds_san_sync_t *s = sync_at(san, i);
        memds_cmd_t *c = apr_pcalloc(p, sizeof(*c));
        memds_item_t *it = apr_pcalloc(p, sizeof(*it));
        const char *type = s->type ? s->type
                                   : memds_san_ct_name(s->content_type);
        c->type = MEMDS_CMD_ALERT;
        c->cmd_id = apr_itoa(p, i + 1);
        c->data = apr_itoa(p, s->sync_type);
        it->source = loc(s->uri, p);
        if (type != NULL) {
            it->meta = apr_pcalloc(p, sizeof(*it->meta));
            it->meta->size = it->meta->max_msg_size = it->meta->max_obj_size =
                MEMDS_NOVAL;
            it->meta->type = type;
        }
        c->items = apr_array_make(p, 1, sizeof(memds_item_t *));
        APR_ARRAY_PUSH(c->items, memds_item_t *) = it;
        APR_ARRAY_PUSH(m->cmds, memds_cmd_t *) = c;
    }
    m->final = 1;
    *pmsg = m;
    return APR_SUCCESS;
}

apr_status_t memds_san_build_legacy(memds_buf_t *out, const memds_san_t *san,
                                    const char *device_id, memds_enc_e enc,
                                    const char **why, apr_pool_t *p)
{
    memds_msg_t *m;
    memds_codec_err_t err;
    apr_status_t rv;

    if ((rv = memds_san_legacy_msg(&m, san, device_id, why, p))
        != APR_SUCCESS) {
        return rv;
    }
    memset(&err, 0, sizeof(err));
    if ((rv = memds_msg_encode(out, m,
                               enc == MEMDS_ENC_XML ? enc : MEMDS_ENC_WBXML,
                               &err, p))
        != APR_SUCCESS) {
        *why = apr_pstrcat(p, "encoding the legacy SAN: ",
                           err.msg ? err.msg : "failed", NULL);
    }
    return rv;
}

/* A decimal 0..max, the whole string; -1 otherwise. */
static long small_number(const char *s, long max)
{
    long v = 0;

    if (s == NULL || *s == '\0' || strlen(s) > 9) {
        return -1;
    }
    for (; *s; ++s) {
        if (!apr_isdigit(*s)) {
            return -1;
        }
        v = v * 10 + (*s - '0');
    }
    return v <= max ? v : -1;
}

/* One Alert of a legacy SAN into san; NULL or why not. */
static const char *legacy_alert(memds_san_t *san, const memds_cmd_t *c,
                                apr_pool_t *p)
{
    const char *cmd = apr_psprintf(p, "Alert %s", c->cmd_id ? c->cmd_id : "?");
    long code = small_number(c->data, 999);
    int i;

    if (code < 0 || bad_sync_type((int)code, 0, p) != NULL) {
        return apr_psprintf(p, "%s: code %s is not 206..210", cmd,
                            c->data ? c->data : "(none)");
    }
    if (c->items == NULL || c->items->nelts == 0) {
        return apr_psprintf(p, "%s has no Item", cmd);
    }
    for (i = 0; i < c->items->nelts; ++i) {
        const memds_item_t *it = APR_ARRAY_IDX(c->items, i, memds_item_t *);
        const char *uri = it->source ? it->source->uri : NULL;
        const char *w;
        memds_san_sync_t *s;
        if ((w = bad_name("Item Source LocURI", uri, p)) != NULL) {
            return apr_psprintf(p, "%s: %s", cmd, w);
        }
        if (nsyncs(san) == MEMDS_SAN_MAX_SYNCS) {
            return apr_psprintf(p, "more than %d datastores",
                                MEMDS_SAN_MAX_SYNCS);
        }
        s = memds_san_add_sync(san, (int)code, 0, uri, p);
        if (it->meta && it->meta->type) {
            s->type = it->meta->type;
            s->content_type = memds_san_ct_code(s->type);
        }
    }
    return NULL;
}

apr_status_t memds_san_parse_legacy(memds_san_t **psan, const memds_msg_t *m,
                                    const char **why, apr_pool_t *p)
{
    memds_san_t *san;
    const char *w;
    long sid;
    int i;

    if (m->version != MEMDS_V10 && m->version != MEMDS_V11) {
        *why = "not SyncML 1.0 or 1.1";
        return APR_EINVAL;
    }
    if (!m->final) {
        *why = "no Final";
        return APR_EINVAL;
    }
    if ((sid = small_number(m->hdr.session_id, 0xFFFF)) < 0) {
        *why = "the SessionID is not a number 0..65535";
        return APR_EINVAL;
    }
    san = memds_san_make(m->hdr.source ? m->hdr.source->uri : NULL, p);
    san->version = (int)m->version;
    san->session_id = (unsigned)sid;
    if ((w = bad_name("header Source LocURI", san->server_id, p)) != NULL) {
        *why = w;
        return APR_EINVAL;
    }
    san->syncs = apr_array_make(p, 2, sizeof(memds_san_sync_t));
    for (i = 0; m->cmds && i < m->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *);
        if (c->type != MEMDS_CMD_ALERT) {
            *why = apr_psprintf(p, "a %s: a legacy SAN holds only Alerts",
                                memds_cmd_name(c->type));
            return APR_EINVAL;
        }
        if ((w = legacy_alert(san, c, p)) != NULL) {
            *why = w;
            return APR_EINVAL;
        }
    }
    if (nsyncs(san) == 0) {
        *why = "no Alert";
        return APR_EINVAL;
    }
    *psan = san;
    return APR_SUCCESS;
}
