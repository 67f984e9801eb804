/* IMAP client layer, part 2 of 3: the connection. Transport (libcurl
 * CONNECT_ONLY and test doubles), the response framer that streams
 * literals, command execution (tags, literals sent after continuation
 * requests) and the connection state the untagged responses update, then
 * connect (TLS, login), close and the capability queries. See memds_imap.h
 * for the contract and memds_imap_int.h for what the three parts share.
 *
 * File map: (4) transport and the response framer, (5) command execution,
 * connection state and setup. */
#include "backends/memds_imap_int.h"

#include <apr_strings.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ============================== (4) transport and the response framer */

static apr_status_t failv(memds_imap_conn_t *c, memds_imap_err_t *err,
                          memds_imap_ekind_e kind, apr_status_t rv,
                          const char *fmt, va_list ap)
{
    err->rv = rv;
    err->kind = kind;
    err->cmd = c ? c->verb : NULL;
    err->msg = apr_pvsprintf(c->pool, fmt, ap);
    return rv;
}

apr_status_t memds_imap__fail(memds_imap_conn_t *c, memds_imap_err_t *err,
                              memds_imap_ekind_e kind, apr_status_t rv,
                              const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    failv(c, err, kind, rv, fmt, ap);
    va_end(ap);
    return rv;
}

/* A failure after which the stream cannot be trusted: no more commands. */
static apr_status_t broke(memds_imap_conn_t *c, memds_imap_err_t *err,
                          memds_imap_ekind_e kind, apr_status_t rv,
                          const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static apr_status_t broke(memds_imap_conn_t *c, memds_imap_err_t *err,
                          memds_imap_ekind_e kind, apr_status_t rv,
                          const char *fmt, ...)
{
    va_list ap;

    c->broken = 1;
    va_start(ap, fmt);
    failv(c, err, kind, rv, fmt, ap);
    va_end(ap);
    return rv;
}

static apr_status_t io_failed(memds_imap_conn_t *c, apr_status_t rv,
                              const char *what, memds_imap_err_t *err)
{
    char buf[120];

    if (rv == APR_EOF) {
        return broke(c, err, c->bye ? MEMDS_IMAP_E_BYE : MEMDS_IMAP_E_IO, rv,
                     "IMAP server closed the connection%s",
                     c->bye ? " after BYE" : "");
    }
    if (APR_STATUS_IS_TIMEUP(rv)) {
        return broke(c, err, MEMDS_IMAP_E_TIMEOUT, APR_TIMEUP,
                     "no data from the IMAP server within %ld ms while %s",
                     c->io_timeout_ms, what);
    }
    if (c->cio.last != CURLE_OK) {
        err->curl_code = (int)c->cio.last;
        return broke(c, err, MEMDS_IMAP_E_IO, rv, "IMAP %s failed: %s", what,
                     curl_easy_strerror(c->cio.last));
    }
    return broke(c, err, MEMDS_IMAP_E_IO, rv, "IMAP %s failed: %s", what,
                 apr_strerror(rv, buf, sizeof(buf)));
}

static apr_status_t wait_sock(curl_io_t *io, short events, apr_time_t deadline)
{
    for (;;) {
        struct pollfd pfd;
        apr_time_t now = apr_time_now();
        int n;
        if (now >= deadline) {
            return APR_TIMEUP;
        }
        pfd.fd = io->sock;
        pfd.events = events;
        pfd.revents = 0;
        n = poll(&pfd, 1, (int)((deadline - now + 999) / 1000));
        if (n > 0) {
            return APR_SUCCESS; /* readable, writable, or an error recv reports */
        }
        if (n < 0 && errno != EINTR) {
            return APR_FROM_OS_ERROR(errno);
        }
    }
}

static apr_status_t curl_recv_cb(void *baton, char *buf, apr_size_t len,
                                 apr_size_t *pgot)
{
    curl_io_t *io = baton;
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(io->timeout_ms);

    for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_recv(io->h, buf, len, &n);
        if (rc == CURLE_OK) {
            if (n == 0) {
                return APR_EOF;
            }
            *pgot = n;
            return APR_SUCCESS;
        }
        if (rc != CURLE_AGAIN) {
            io->last = rc;
            return APR_EGENERAL;
        }
        TRY(wait_sock(io, POLLIN, deadline));
    }
}

static apr_status_t curl_send_cb(void *baton, const char *buf, apr_size_t len,
                                 apr_size_t *psent)
{
    curl_io_t *io = baton;
    apr_time_t deadline = apr_time_now() + apr_time_from_msec(io->timeout_ms);

    for (;;) {
        size_t n = 0;
        CURLcode rc = curl_easy_send(io->h, buf, len, &n);
        if (rc == CURLE_OK && n > 0) {
            *psent = n;
            return APR_SUCCESS;
        }
        if (rc != CURLE_OK && rc != CURLE_AGAIN) {
            io->last = rc;
            return APR_EGENERAL;
        }
        TRY(wait_sock(io, POLLOUT, deadline));
    }
}

static apr_status_t send_all(memds_imap_conn_t *c, const char *data,
                             apr_size_t len, memds_imap_err_t *err)
{
    while (len > 0) {
        apr_size_t n = 0;
        apr_status_t rv = c->io.send(c->io.baton, data, len, &n);
        if (rv == APR_SUCCESS && (n == 0 || n > len)) {
            rv = APR_EGENERAL;
        }
        if (rv != APR_SUCCESS) {
            return io_failed(c, rv, "sending", err);
        }
        data += n;
        len -= n;
    }
    return APR_SUCCESS;
}

/* At least one unframed byte in inbuf. */
static apr_status_t fill(memds_imap_conn_t *c, memds_imap_err_t *err)
{
    apr_size_t got = 0;
    apr_status_t rv;

    if (c->in_pos < c->in_len) {
        return APR_SUCCESS;
    }
    c->in_pos = c->in_len = 0;
    rv = c->io.recv(c->io.baton, c->inbuf, sizeof(c->inbuf), &got);
    if (rv == APR_SUCCESS && got == 0) {
        rv = APR_EOF;
    }
    if (rv == APR_SUCCESS && got > sizeof(c->inbuf)) {
        rv = APR_EGENERAL;
    }
    if (rv != APR_SUCCESS) {
        return io_failed(c, rv, "receiving", err);
    }
    c->in_len = got;
    return APR_SUCCESS;
}

static void buf_reserve(memds_buf_t *b, apr_size_t extra)
{
    char *nd;

    if (b->cap - b->len >= extra) {
        return;
    }
    nd = apr_palloc(b->pool, b->len + extra + 512);
    memcpy(nd, b->data, b->len);
    b->data = nd;
    b->cap = b->len + extra + 512;
}

/* A literal announcement "{n}", "{n+}" or "~{n}" ending the fragment s[0..n):
 * 1 with its length and start, 0 if none, -1 if the length is absurd. */
static int literal_marker(const char *s, apr_size_t n, apr_uint64_t *plen,
                          apr_size_t *pstart)
{
    apr_size_t i, e, lb;
    apr_uint64_t v = 0;

    if (n < 3 || s[n - 1] != '}') {
        return 0;
    }
    i = n - 1;
    if (s[i - 1] == '+') {
        i--;
    }
    e = i;
    while (i > 0 && is_digit((unsigned char)s[i - 1])) {
        i--;
    }
    if (i == e || i == 0 || s[i - 1] != '{') {
        return 0;
    }
    lb = i - 1; /* the '{' */
    if (e - i > 18) {
        return -1;
    }
    for (; i < e; i++) {
        v = v * 10 + (apr_uint64_t)(s[i] - '0');
    }
    if (lb > 0 && s[lb - 1] == '~') {
        lb--;
    }
    *plen = v;
    *pstart = lb;
    return 1;
}

/* Status responses and continuation requests carry text, never literals
 * (a mailbox name echoed in "NO ... foo{5}" must not be taken for one). */
static int textual(const char *s, apr_size_t n)
{
    apr_size_t i = 0, w;

    if (n > 0 && s[0] == '+') {
        return 1;
    }
    while (i < n && s[i] != ' ') {
        i++;
    }
    if (i >= n) {
        return 0;
    }
    w = ++i;
    while (i < n && s[i] != ' ') {
        i++;
    }
    return tok_eq(s + w, i - w, "OK") || tok_eq(s + w, i - w, "NO")
           || tok_eq(s + w, i - w, "BAD") || tok_eq(s + w, i - w, "BYE")
           || tok_eq(s + w, i - w, "PREAUTH");
}

static int is_fetch(const char *s, apr_size_t n)
{
    apr_size_t i = 2;

    if (n < 10 || s[0] != '*' || s[1] != ' ') {
        return 0;
    }
    while (i < n && is_digit((unsigned char)s[i])) {
        i++;
    }
    return i > 2 && n - i >= 7 && s[i] == ' ' && tok_eq(s + i + 1, 5, "FETCH")
           && s[i + 6] == ' ';
}

/* The literal at s[i] is the value of "BODY[...]<n> " or "BINARY[...] ". */
static int body_literal(const char *s, apr_size_t i)
{
    if (i == 0 || s[i - 1] != ' ') {
        return 0;
    }
    i--;
    if (i > 0 && s[i - 1] == '>') {
        i--;
        while (i > 0 && is_digit((unsigned char)s[i - 1])) {
            i--;
        }
        if (i == 0 || s[i - 1] != '<') {
            return 0;
        }
        i--;
    }
    if (i == 0 || s[i - 1] != ']') {
        return 0;
    }
    i--;
    while (i > 0 && s[i - 1] != '[') {
        if (s[i - 1] == ']' || s[i - 1] == '{' || s[i - 1] == '}') {
            return 0;
        }
        i--;
    }
    if (i == 0) {
        return 0;
    }
    i--; /* at '[' */
    if (i >= 4 && tok_eq(s + i - 4, 4, "BODY")
        && (i == 4 || s[i - 5] == ' ' || s[i - 5] == '(')) {
        return 1;
    }
    return i >= 6 && tok_eq(s + i - 6, 6, "BINARY")
           && (i == 6 || s[i - 7] == ' ' || s[i - 7] == '(');
}

/* Hand n literal bytes to the chunk callback as they arrive. After a
 * callback failure the rest is read and dropped, so framing stays intact;
 * when more than max_response bytes would have to be dropped, the
 * connection is given up instead (cheaper than reading a huge body). */
static apr_status_t stream_literal(memds_imap_conn_t *c, apr_uint64_t n,
                                   memds_imap_err_t *err)
{
    apr_uint64_t off = 0;

    while (off < n) {
        apr_size_t k;
        if (c->chunk_rv != APR_SUCCESS && n - off > c->max_response) {
            return broke(c, err, MEMDS_IMAP_E_CALLBACK, c->chunk_rv,
                         "IMAP %s: a callback refused the data; connection "
                         "dropped instead of skipping %" APR_UINT64_T_FMT
                         " more bytes",
                         c->verb, n - off);
        }
        TRY(fill(c, err));
        k = c->in_len - c->in_pos;
        if ((apr_uint64_t)k > n - off) {
            k = (apr_size_t)(n - off);
        }
        if (c->chunk_rv == APR_SUCCESS) {
            c->chunk_rv = c->chunk_cb(c->chunk_baton, off, c->inbuf + c->in_pos,
                                      k);
        }
        c->in_pos += k;
        off += k;
    }
    c->chunk_total += n;
    return APR_SUCCESS;
}

static apr_status_t read_literal(memds_imap_conn_t *c, memds_buf_t *b,
                                 apr_size_t n, memds_imap_err_t *err)
{
    buf_reserve(b, n);
    while (n > 0) {
        apr_size_t k;
        if (c->in_pos < c->in_len) {
            k = c->in_len - c->in_pos;
            if (k > n) {
                k = n;
            }
            memcpy(b->data + b->len, c->inbuf + c->in_pos, k);
            c->in_pos += k;
        }
        else {
            /* straight into the response buffer: large literals are not
             * copied twice */
            apr_status_t rv = c->io.recv(c->io.baton, b->data + b->len, n, &k);
            if (rv == APR_SUCCESS && (k == 0 || k > n)) {
                rv = APR_EOF;
            }
            if (rv != APR_SUCCESS) {
                return io_failed(c, rv, "receiving a literal", err);
            }
        }
        b->len += k;
        n -= k;
    }
    return APR_SUCCESS;
}

/* One whole response (line, literals, CRLF) into b. BODY[]/BINARY[]
 * literals of FETCH responses go to the chunk callback when one is set;
 * the buffer then holds "{0}" in their place. */
static apr_status_t read_response(memds_imap_conn_t *c, memds_buf_t *b,
                                  memds_imap_err_t *err)
{
    apr_size_t frag = 0;
    int first = 1;

    c->chunk_lits = 0;
    for (;;) {
        const char *fs;
        apr_size_t fl, ms;
        apr_uint64_t n;
        int m;
        for (;;) {
            const char *lf;
            apr_size_t k;
            TRY(fill(c, err));
            lf = memchr(c->inbuf + c->in_pos, '\n', c->in_len - c->in_pos);
            k = lf ? (apr_size_t)(lf - (c->inbuf + c->in_pos)) + 1
                   : c->in_len - c->in_pos;
            if (b->len + k > c->max_response) {
                return broke(c, err, MEMDS_IMAP_E_LIMIT, APR_ENOSPC,
                             "IMAP response longer than %" APR_SIZE_T_FMT
                             " bytes",
                             c->max_response);
            }
            memds_buf_add(b, c->inbuf + c->in_pos, k);
            c->in_pos += k;
            if (lf) {
                break;
            }
        }
        if (b->len - frag < 2 || b->data[b->len - 2] != '\r') {
            return broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                         "IMAP response line ends in LF without CR");
        }
        if (first) {
            first = 0;
            if (textual(b->data, b->len - 2)) {
                return APR_SUCCESS;
            }
        }
        fs = b->data + frag;
        fl = b->len - 2 - frag;
        m = literal_marker(fs, fl, &n, &ms);
        if (m == 0) {
            return APR_SUCCESS;
        }
        if (c->chunk_cb && m > 0 && is_fetch(b->data, b->len)
            && body_literal(fs, ms)) {
            int lit8 = fs[ms] == '~';
            b->len = frag + ms;
            memds_buf_add(b, lit8 ? "~{0}\r\n" : "{0}\r\n", lit8 ? 6 : 5);
            TRY(stream_literal(c, n, err));
            c->chunk_lits++;
        }
        else {
            if (m < 0 || n > c->max_response - b->len) {
                return broke(c, err, MEMDS_IMAP_E_LIMIT, APR_ENOSPC,
                             "IMAP literal of %s bytes exceeds the limit of "
                             "%" APR_SIZE_T_FMT " bytes per response",
                             m < 0 ? "too many"
                                   : apr_psprintf(c->rpool,
                                                  "%" APR_UINT64_T_FMT, n),
                             c->max_response);
            }
            TRY(read_literal(c, b, (apr_size_t)n, err));
        }
        frag = b->len;
    }
}

/* ============================ (5) command execution, connection state */

static const struct {
    const char *name;
    unsigned bit;
} cap_names[] = {
    { "IMAP4rev1", MEMDS_IMAP_CAP_IMAP4REV1 },
    { "CONDSTORE", MEMDS_IMAP_CAP_CONDSTORE },
    { "QRESYNC", MEMDS_IMAP_CAP_QRESYNC },
    { "MOVE", MEMDS_IMAP_CAP_MOVE },
    { "UIDPLUS", MEMDS_IMAP_CAP_UIDPLUS },
    { "SPECIAL-USE", MEMDS_IMAP_CAP_SPECIAL_USE },
    { "ESEARCH", MEMDS_IMAP_CAP_ESEARCH },
    { "LIST-STATUS", MEMDS_IMAP_CAP_LIST_STATUS },
    { "LIST-EXTENDED", MEMDS_IMAP_CAP_LIST_EXTENDED },
    { "LITERAL+", MEMDS_IMAP_CAP_LITERAL_PLUS },
    { "LITERAL-", MEMDS_IMAP_CAP_LITERAL_MINUS },
    { "ENABLE", MEMDS_IMAP_CAP_ENABLE },
    { "UNSELECT", MEMDS_IMAP_CAP_UNSELECT },
    { "BINARY", MEMDS_IMAP_CAP_BINARY },
    { "IDLE", MEMDS_IMAP_CAP_IDLE },
};

apr_array_header_t *memds_imap__copy_strs(const apr_array_header_t *l,
                                          apr_pool_t *p)
{
    apr_array_header_t *o;
    int i;

    if (l == NULL) {
        return NULL;
    }
    o = apr_array_make(p, l->nelts > 0 ? l->nelts : 1, sizeof(const char *));
    for (i = 0; i < l->nelts; i++) {
        *(const char **)apr_array_push(
            o) = apr_pstrdup(p, APR_ARRAY_IDX(l, i, const char *));
    }
    return o;
}

memds_imap_set_t *memds_imap__copy_set(const memds_imap_set_t *s, apr_pool_t *p)
{
    memds_imap_set_t *o;

    if (s == NULL) {
        return NULL;
    }
    o = apr_pcalloc(p, sizeof(*o));
    o->nranges = s->nranges;
    if (s->nranges > 0) {
        o->ranges = apr_pmemdup(p, s->ranges,
                                sizeof(*s->ranges) * (apr_size_t)s->nranges);
    }
    return o;
}

static void set_caps(memds_imap_conn_t *c, const apr_array_header_t *l)
{
    int i;
    apr_size_t k;

    apr_pool_clear(c->cappool);
    c->capnames = memds_imap__copy_strs(l, c->cappool);
    c->caps = 0;
    for (i = 0; i < l->nelts; i++) {
        const char *n = APR_ARRAY_IDX(l, i, const char *);
        for (k = 0; k < sizeof(cap_names) / sizeof(cap_names[0]); k++) {
            if (str_ieq(n, cap_names[k].name)) {
                c->caps |= cap_names[k].bit;
            }
        }
    }
}

/* Response codes that describe the mailbox being selected or selected. */
static void apply_code(memds_imap_conn_t *c, const memds_imap_code_t *code)
{
    memds_imap_mailbox_t *m = &c->sel;

    if (code->code == MEMDS_IMAP_CODE_CAPABILITY) {
        set_caps(c, code->list);
        return;
    }
    if (!c->selected && !c->selecting) {
        return;
    }
    switch (code->code) {
    case MEMDS_IMAP_CODE_UIDVALIDITY: m->uidvalidity = code->uidvalidity; break;
    case MEMDS_IMAP_CODE_UIDNEXT: m->uidnext = code->number; break;
    case MEMDS_IMAP_CODE_UNSEEN: m->unseen = code->number; break;
    case MEMDS_IMAP_CODE_HIGHESTMODSEQ:
        m->highestmodseq = code->modseq;
        m->nomodseq = 0;
        break;
    case MEMDS_IMAP_CODE_NOMODSEQ:
        m->nomodseq = 1;
        m->highestmodseq = 0;
        break;
    case MEMDS_IMAP_CODE_PERMANENTFLAGS:
        m->permanentflags = memds_imap__copy_strs(code->list, c->selpool);
        break;
    case MEMDS_IMAP_CODE_READ_ONLY: m->readonly = 1; break;
    case MEMDS_IMAP_CODE_READ_WRITE: m->readonly = 0; break;
    default: break;
    }
}

/* Keep the connection's view current, then pass the response on. */
static void handle_untagged(memds_imap_conn_t *c, const memds_imap_resp_t *r)
{
    memds_imap_mailbox_t *m = &c->sel;
    int on = c->selected || c->selecting, i;

    switch (r->type) {
    case MEMDS_IMAP_RESP_CAPABILITY: set_caps(c, r->list); break;
    case MEMDS_IMAP_RESP_ENABLED:
        for (i = 0; i < r->list->nelts; i++) {
            if (str_ieq(APR_ARRAY_IDX(r->list, i, const char *), "QRESYNC")) {
                c->qresync = 1;
            }
        }
        break;
    case MEMDS_IMAP_RESP_COND:
        if (r->cond == MEMDS_IMAP_BYE) {
            c->bye = 1;
            memds_logf(&c->log, MEMDS_LOG_INFO, 0,
                       MEMDS_LOGNO(00200) "imap: server says BYE: %s", r->text);
        }
        if (r->code.code == MEMDS_IMAP_CODE_ALERT) {
            memds_logf(&c->log, MEMDS_LOG_WARNING, 0,
                       MEMDS_LOGNO(00201) "imap: server alert: %s", r->text);
        }
        if (r->code.code == MEMDS_IMAP_CODE_COPYUID) {
            c->copyuid = apr_pcalloc(c->cpool, sizeof(*c->copyuid));
            c->copyuid->uidvalidity = r->code.uidvalidity;
            c->copyuid->src = memds_imap__copy_set(r->code.uids, c->cpool);
            c->copyuid->dst = memds_imap__copy_set(r->code.uids2, c->cpool);
        }
        if (r->cond == MEMDS_IMAP_OK) {
            apply_code(c, &r->code);
        }
        break;
    case MEMDS_IMAP_RESP_FLAGS:
        if (on) {
            m->flags = memds_imap__copy_strs(r->list, c->selpool);
        }
        break;
    case MEMDS_IMAP_RESP_EXISTS:
        if (on) {
            m->exists = r->number;
        }
        break;
    case MEMDS_IMAP_RESP_RECENT:
        if (on) {
            m->recent = r->number;
        }
        break;
    case MEMDS_IMAP_RESP_EXPUNGE:
        if (on && m->exists > 0) {
            m->exists--;
        }
        break;
    case MEMDS_IMAP_RESP_VANISHED:
        if (on && !r->earlier) {
            apr_uint64_t k = memds_imap_set_count(r->uids);
            m->exists = k >= m->exists ? 0 : m->exists - (apr_uint32_t)k;
        }
        break;
    default: break;
    }
    if (c->cb && c->cb_rv == APR_SUCCESS) {
        c->cb_rv = c->cb(c->baton, r);
    }
}

/* The next response, parsed; *pr NULL for a malformed untagged one (kept
 * in proto_err: the framing is intact, so the command goes on). */
static apr_status_t next_response(memds_imap_conn_t *c, memds_imap_resp_t **pr,
                                  memds_imap_err_t *err)
{
    memds_buf_t b;
    memds_imap_err_t pe;
    memds_imap_resp_t *r = NULL;
    int i;

    apr_pool_clear(c->rpool);
    memds_buf_init(&b, 512, c->rpool);
    TRY(read_response(c, &b, err));
    if (b.data[0] != '*' && b.data[0] != '+') {
        /* tagged: one short line that must outlive the next response */
        const char *copy = apr_pmemdup(c->cpool, b.data, b.len);
        if (memds_imap_parse_response(&r, copy, b.len, c->max_response, &pe,
                                      c->cpool)
            != APR_SUCCESS) {
            return broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL, "%s",
                         pe.msg);
        }
        if (strcmp(r->tag, c->tag) != 0) {
            return broke(
                c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                "IMAP tagged response for unknown tag %s (expected %s)", r->tag,
                c->tag);
        }
    }
    else if (memds_imap_parse_response(&r, b.data, b.len, c->max_response, &pe,
                                       c->rpool)
             != APR_SUCCESS) {
        if (c->proto_err == NULL) {
            c->proto_err = apr_pstrdup(c->cpool, pe.msg);
        }
        r = NULL;
    }
    else if (c->chunk_lits > 0 && r->type == MEMDS_IMAP_RESP_FETCH) {
        for (i = 0; i < r->fetch->sections->nelts; i++) {
            memds_imap_section_t *s = &APR_ARRAY_IDX(r->fetch->sections, i,
                                                     memds_imap_section_t);
            if (s->data && s->len == 0 && s->section) {
                s->streamed = 1;
            }
        }
    }
    *pr = r;
    return APR_SUCCESS;
}

void memds_imap__cmd_add(cmd_t *cmd, const char *s)
{
    memds_buf_add(&cmd->b, s, strlen(s));
}

void memds_imap__cmd_start(memds_imap_conn_t *c, cmd_t *cmd, const char *verb)
{
    if (!c->idling) { /* (during IDLE, exec refuses it: keep IDLE's tag) */
        apr_pool_clear(c->cpool);
        c->verb = verb;
        c->tag = apr_psprintf(c->cpool, "M%u", ++c->tagno);
    }
    cmd->c = c;
    cmd->pieces = apr_array_make(c->cpool, 4, sizeof(piece_t));
    memds_buf_init(&cmd->b, 256, c->cpool);
    memds_imap__cmd_add(cmd, c->tag);
    memds_buf_addc(&cmd->b, ' ');
    memds_imap__cmd_add(cmd, verb);
}

void memds_imap__cmd_addf(cmd_t *cmd, const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = apr_pvsprintf(cmd->c->cpool, fmt, ap);
    va_end(ap);
    memds_imap__cmd_add(cmd, s);
}

static void cmd_piece(cmd_t *cmd, const char *data, apr_size_t len, int sync)
{
    piece_t *pc = apr_array_push(cmd->pieces);

    pc->data = data;
    pc->len = len;
    pc->sync = sync;
}

/* A literal; the data is referenced, not copied (it must live until the
 * command ends). LITERAL+ (or LITERAL- up to 4096 bytes) saves a round
 * trip; otherwise the server's "+" is awaited first. */
void memds_imap__cmd_literal(cmd_t *cmd, const char *data, apr_size_t len)
{
    memds_imap_conn_t *c = cmd->c;
    int nonsync = (c->caps & MEMDS_IMAP_CAP_LITERAL_PLUS)
                  || ((c->caps & MEMDS_IMAP_CAP_LITERAL_MINUS) && len <= 4096);

    memds_imap__cmd_addf(cmd, "{%" APR_SIZE_T_FMT "%s}\r\n", len,
                         nonsync ? "+" : "");
    cmd_piece(cmd, cmd->b.data, cmd->b.len, 0);
    cmd_piece(cmd, data, len, !nonsync);
    memds_buf_init(&cmd->b, 64, c->cpool);
}

/* INBOX is case-insensitive: one spelling on the wire and in the cache. */
const char *memds_imap__mbox_norm(const char *s)
{
    return str_ieq(s, "INBOX") ? "INBOX" : s;
}

/* An astring: atom when possible, else quoted, else a literal. */
void memds_imap__cmd_astring(cmd_t *cmd, const char *s)
{
    apr_size_t n = strlen(s), i;
    int is_atom = n > 0, quotable = n < 1024;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!is_atom_char(ch)) {
            is_atom = 0;
        }
        if (ch == '\r' || ch == '\n' || ch >= 0x80) {
            quotable = 0;
        }
    }
    if (is_atom) {
        memds_imap__cmd_add(cmd, s);
    }
    else if (quotable) {
        memds_buf_addc(&cmd->b, '"');
        for (i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\') {
                memds_buf_addc(&cmd->b, '\\');
            }
            memds_buf_addc(&cmd->b, s[i]);
        }
        memds_buf_addc(&cmd->b, '"');
    }
    else {
        memds_imap__cmd_literal(cmd, s, n);
    }
}

/* Send the command; its tagged response is read later (memds_imap_settle). */
apr_status_t memds_imap__cmd_send_later(cmd_t *cmd, memds_imap_err_t *err)
{
    memds_imap_conn_t *c = cmd->c;
    apr_status_t rv;

    memds_imap__cmd_add(cmd, "\r\n");
    if (c->idling || c->broken || c->owed[0]
        || strlen(c->tag) >= sizeof(c->owed)) {
        return memds_imap__fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                                "IMAP %s cannot be sent now", c->verb);
    }
    memds_logf(&c->log, MEMDS_LOG_DEBUG, 0,
               MEMDS_LOGNO(00214) "imap: %s %s (answer read later)", c->tag,
               c->verb);
    rv = send_all(c, cmd->b.data, cmd->b.len, err);
    if (rv == APR_SUCCESS) {
        apr_cpystrn(c->owed, c->tag, sizeof(c->owed));
    }
    return rv;
}

apr_status_t memds_imap_settle(memds_imap_conn_t *c, memds_imap_err_t *err)
{
    const char *tag = c->tag, *verb = c->verb;
    memds_imap_resp_t *r;
    apr_status_t rv = APR_SUCCESS;
    ERR_ARG(err);

    if (!c->owed[0]) {
        return APR_SUCCESS;
    }
    if (c->broken) {
        return memds_imap__fail(c, err, MEMDS_IMAP_E_IO, APR_ECONNABORTED,
                                "IMAP connection unusable after an earlier "
                                "failure");
    }
    c->tag = c->owed; /* (next_response checks the tag) */
    c->verb = "(a command sent before)";
    for (;;) {
        if ((rv = next_response(c, &r, err)) != APR_SUCCESS) {
            break;
        }
        if (r == NULL) {
            continue;
        }
        if (r->type == MEMDS_IMAP_RESP_TAGGED) {
            if (r->cond != MEMDS_IMAP_OK) {
                rv = broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EGENERAL,
                           "IMAP: the answer to a command sent before was "
                           "%s %s",
                           r->cond == MEMDS_IMAP_NO ? "NO" : "BAD", r->text);
            }
            break;
        }
        if (r->type == MEMDS_IMAP_RESP_CONT) {
            rv = broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                       "unexpected IMAP continuation request");
            break;
        }
        handle_untagged(c, r); /* (no command: nothing attributed) */
    }
    c->owed[0] = '\0';
    c->tag = tag;
    c->verb = verb;
    c->proto_err = NULL;
    return rv;
}

/* Send the command and read up to its tagged response. */
apr_status_t memds_imap__cmd_exec(cmd_t *cmd, memds_imap_resp_cb *cb,
                                  void *baton,
                                  const memds_imap_resp_t **ptagged,
                                  memds_imap_err_t *err)
{
    memds_imap_conn_t *c = cmd->c;
    memds_imap_resp_t *r, *tagged = NULL;
    apr_status_t rv = APR_SUCCESS;
    apr_time_t t0 = apr_time_now();
    int i;

    memds_imap__cmd_add(cmd, "\r\n");
    cmd_piece(cmd, cmd->b.data, cmd->b.len, 0);
    if (c->idling) {
        return memds_imap__fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                                "IMAP command during IDLE (end it first)");
    }
    if (c->broken) {
        return memds_imap__fail(
            c, err, c->bye ? MEMDS_IMAP_E_BYE : MEMDS_IMAP_E_IO,
            APR_ECONNABORTED,
            "IMAP connection unusable after an earlier failure");
    }
    if (c->owed[0] && (rv = memds_imap_settle(c, err)) != APR_SUCCESS) {
        goto done;
    }
    c->cb = cb;
    c->baton = baton;
    c->cb_rv = c->chunk_rv = APR_SUCCESS;
    c->chunk_total = 0;
    c->copyuid = NULL;
    c->proto_err = NULL;
    memds_logf(&c->log, MEMDS_LOG_DEBUG, 0,
               MEMDS_LOGNO(00202) "imap: %s %s", c->tag, c->verb);

    for (i = 0; i < cmd->pieces->nelts && tagged == NULL; i++) {
        const piece_t *pc = &APR_ARRAY_IDX(cmd->pieces, i, piece_t);
        while (pc->sync) {
            if ((rv = next_response(c, &r, err)) != APR_SUCCESS) {
                goto done;
            }
            if (r == NULL) {
                continue;
            }
            if (r->type == MEMDS_IMAP_RESP_CONT) {
                break;
            }
            if (r->type == MEMDS_IMAP_RESP_TAGGED) {
                tagged = r; /* refused before the literal was sent */
                break;
            }
            handle_untagged(c, r);
        }
        if (tagged) {
            break;
        }
        if ((rv = send_all(c, pc->data, pc->len, err)) != APR_SUCCESS) {
            goto done;
        }
    }
    while (tagged == NULL) {
        if ((rv = next_response(c, &r, err)) != APR_SUCCESS) {
            goto done;
        }
        if (r == NULL) {
            continue;
        }
        if (r->type == MEMDS_IMAP_RESP_TAGGED) {
            tagged = r;
        }
        else if (r->type == MEMDS_IMAP_RESP_CONT) {
            rv = broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                       "unexpected IMAP continuation request to %s", c->verb);
            goto done;
        }
        else {
            handle_untagged(c, r);
        }
    }
    if (ptagged) {
        *ptagged = tagged;
    }
    if (tagged->cond == MEMDS_IMAP_OK) {
        apply_code(c, &tagged->code);
    }
    if (tagged->cond != MEMDS_IMAP_OK) {
        rv = memds_imap__fail(c, err,
                              tagged->cond == MEMDS_IMAP_NO ? MEMDS_IMAP_E_NO
                                                            : MEMDS_IMAP_E_BAD,
                              APR_EGENERAL, "IMAP %s: %s %s%s%s%s", c->verb,
                              tagged->cond == MEMDS_IMAP_NO ? "NO" : "BAD",
                              tagged->code.name ? "[" : "",
                              tagged->code.name ? tagged->code.name : "",
                              tagged->code.name ? "] " : "", tagged->text);
        err->code = tagged->code.code;
        memds_logf(&c->log, MEMDS_LOG_DEBUG, 0,
                   MEMDS_LOGNO(00203) "%s", err->msg);
    }
    else if (c->cb_rv != APR_SUCCESS || c->chunk_rv != APR_SUCCESS) {
        rv = memds_imap__fail(c, err, MEMDS_IMAP_E_CALLBACK,
                              c->cb_rv != APR_SUCCESS ? c->cb_rv : c->chunk_rv,
                              "IMAP %s: a callback refused the data", c->verb);
    }
    else if (c->proto_err) {
        rv = memds_imap__fail(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                              "IMAP %s: %s", c->verb, c->proto_err);
    }
done:
    memds_stats_observe(c->stats, memds_stats_imap_op(c->verb),
                        apr_time_now() - t0, rv != APR_SUCCESS);
    c->cb = NULL;
    c->baton = NULL;
    c->chunk_cb = NULL;
    c->chunk_baton = NULL;
    return rv;
}

/* ---- IDLE (RFC 2177) */

/* Start the callback's time for a command-less exchange. */
static void idle_cb(memds_imap_conn_t *c, memds_imap_resp_cb *cb, void *baton)
{
    c->cb = cb;
    c->baton = baton;
    c->cb_rv = APR_SUCCESS;
    c->proto_err = NULL;
}

/* After an untagged response: a BYE ends the connection. */
static apr_status_t idle_after(memds_imap_conn_t *c, memds_imap_err_t *err)
{
    if (c->bye) {
        c->idling = 0;
        return broke(c, err, MEMDS_IMAP_E_BYE, APR_ECONNABORTED,
                     "IMAP server ended the connection (BYE) during IDLE");
    }
    if (c->cb_rv != APR_SUCCESS) {
        return memds_imap__fail(c, err, MEMDS_IMAP_E_CALLBACK, c->cb_rv,
                                "IMAP IDLE: a callback refused the data");
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_idle_start(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                                   void *baton, memds_imap_err_t *err)
{
    cmd_t cmd;
    memds_imap_resp_t *r;
    apr_status_t rv;
    ERR_ARG(err);

    if (c->idling) {
        return memds_imap__fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                                "IMAP IDLE is already running");
    }
    if (!(c->caps & MEMDS_IMAP_CAP_IDLE)) {
        return memds_imap__fail(c, err, MEMDS_IMAP_E_UNSUPPORTED, APR_ENOTIMPL,
                                "the IMAP server does not offer IDLE");
    }
    if (c->broken) {
        return memds_imap__fail(
            c, err, c->bye ? MEMDS_IMAP_E_BYE : MEMDS_IMAP_E_IO,
            APR_ECONNABORTED,
            "IMAP connection unusable after an earlier failure");
    }
    if (c->owed[0] && (rv = memds_imap_settle(c, err)) != APR_SUCCESS) {
        return rv;
    }
    memds_imap__cmd_start(c, &cmd, "IDLE");
    memds_imap__cmd_add(&cmd, "\r\n");
    memds_logf(&c->log, MEMDS_LOG_DEBUG, 0,
               MEMDS_LOGNO(00213) "imap: %s IDLE (waiting for news)", c->tag);
    idle_cb(c, cb, baton);
    rv = send_all(c, cmd.b.data, cmd.b.len, err);
    while (rv == APR_SUCCESS && !c->idling) {
        rv = next_response(c, &r, err);
        if (rv != APR_SUCCESS || r == NULL) {
            continue;
        }
        if (r->type == MEMDS_IMAP_RESP_CONT) {
            c->idling = 1;
        }
        else if (r->type == MEMDS_IMAP_RESP_TAGGED) {
            rv = memds_imap__fail(
                c, err,
                r->cond == MEMDS_IMAP_NO ? MEMDS_IMAP_E_NO : MEMDS_IMAP_E_BAD,
                APR_EGENERAL, "IMAP IDLE refused: %s", r->text);
        }
        else {
            handle_untagged(c, r);
            rv = idle_after(c, err);
        }
    }
    c->cb = NULL;
    c->baton = NULL;
    return rv;
}

apr_status_t memds_imap_idle_read(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                                  void *baton, memds_imap_err_t *err)
{
    memds_imap_resp_t *r;
    apr_status_t rv;
    ERR_ARG(err);

    if (!c->idling) {
        return memds_imap__fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                                "IMAP IDLE is not running");
    }
    idle_cb(c, cb, baton);
    do {
        rv = next_response(c, &r, err);
        if (rv != APR_SUCCESS || r == NULL) {
            continue;
        }
        if (r->type == MEMDS_IMAP_RESP_TAGGED
            || r->type == MEMDS_IMAP_RESP_CONT) {
            c->idling = 0;
            rv = broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                       "unexpected IMAP %s during IDLE",
                       r->type == MEMDS_IMAP_RESP_CONT ? "continuation"
                                                       : "tagged response");
        }
        else {
            handle_untagged(c, r);
            rv = idle_after(c, err);
        }
    } while (rv == APR_SUCCESS && c->in_pos < c->in_len);
    if (rv != APR_SUCCESS && c->broken) {
        c->idling = 0;
    }
    c->cb = NULL;
    c->baton = NULL;
    return rv;
}

apr_status_t memds_imap_idle_done(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                                  void *baton, memds_imap_err_t *err)
{
    memds_imap_resp_t *r, *tagged = NULL;
    apr_status_t rv;
    ERR_ARG(err);

    if (!c->idling) {
        return APR_SUCCESS;
    }
    c->idling = 0;
    idle_cb(c, cb, baton);
    rv = send_all(c, "DONE\r\n", 6, err);
    while (rv == APR_SUCCESS && tagged == NULL) {
        rv = next_response(c, &r, err);
        if (rv != APR_SUCCESS || r == NULL) {
            continue;
        }
        if (r->type == MEMDS_IMAP_RESP_TAGGED) {
            tagged = r;
        }
        else if (r->type == MEMDS_IMAP_RESP_CONT) {
            rv = broke(c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
                       "unexpected IMAP continuation request after DONE");
        }
        else {
            handle_untagged(c, r);
        }
    }
    if (rv == APR_SUCCESS && tagged->cond != MEMDS_IMAP_OK) {
        rv = memds_imap__fail(c, err,
                              tagged->cond == MEMDS_IMAP_NO ? MEMDS_IMAP_E_NO
                                                            : MEMDS_IMAP_E_BAD,
                              APR_EGENERAL, "IMAP IDLE ended with %s: %s",
                              tagged->cond == MEMDS_IMAP_NO ? "NO" : "BAD",
                              tagged->text);
    }
    c->cb = NULL;
    c->baton = NULL;
    return rv;
}

int memds_imap_idling(const memds_imap_conn_t *c)
{
    return c->idling;
}

int memds_imap_socket(const memds_imap_conn_t *c)
{
    return c->cio.h ? (int)c->cio.sock : -1;
}

int memds_imap_buffered(const memds_imap_conn_t *c)
{
    return c->in_pos < c->in_len;
}

/* ---- connection setup */

apr_status_t memds_imap_global_init(void)
{
    return memds_curl_global_init();
}

void memds_imap_global_cleanup(void)
{
    memds_curl_global_cleanup();
}

static apr_status_t conn_cleanup(void *data)
{
    memds_imap_conn_t *c = data;

    if (c->cio.h) {
        curl_easy_cleanup(c->cio.h);
        c->cio.h = NULL;
    }
    return APR_SUCCESS;
}

static memds_imap_conn_t *conn_new(const memds_imap_config_t *cfg,
                                   apr_pool_t *p)
{
    apr_pool_t *cp;
    memds_imap_conn_t *c;

    apr_pool_create(&cp, p);
    apr_pool_tag(cp, "memds_imap_conn");
    c = apr_pcalloc(cp, sizeof(*c));
    c->pool = cp;
    apr_pool_create(&c->rpool, cp);
    apr_pool_create(&c->cpool, cp);
    apr_pool_create(&c->selpool, cp);
    apr_pool_create(&c->cappool, cp);
    apr_pool_create(&c->listpool, cp);
    apr_pool_tag(c->rpool, "memds_imap_response");
    apr_pool_tag(c->cpool, "memds_imap_command");
    c->io_timeout_ms = cfg && cfg->io_timeout_ms > 0 ? cfg->io_timeout_ms
                                                     : 60000;
    c->max_response = cfg && cfg->max_response > 0
                          ? cfg->max_response
                          : MEMDS_IMAP_DEFAULT_MAX_RESPONSE;
    if (cfg && cfg->log) {
        c->log = *cfg->log;
    }
    c->stats = cfg ? cfg->stats : NULL;
    c->verb = "LOGIN";
    apr_pool_cleanup_register(cp, c, conn_cleanup, apr_pool_cleanup_null);
    return c;
}

/* CAPABILITY, then ENABLE QRESYNC when offered (a refusal is not fatal). */
static apr_status_t post_login(memds_imap_conn_t *c, int no_qresync,
                               memds_imap_err_t *err)
{
    cmd_t cmd;
    apr_status_t rv;

    memds_imap__cmd_start(c, &cmd, "CAPABILITY");
    TRY(memds_imap__cmd_exec(&cmd, NULL, NULL, NULL, err));
    if ((c->caps & MEMDS_IMAP_CAP_QRESYNC) && (c->caps & MEMDS_IMAP_CAP_ENABLE)
        && !no_qresync) {
        memds_imap__cmd_start(c, &cmd, "ENABLE QRESYNC");
        rv = memds_imap__cmd_exec(&cmd, NULL, NULL, NULL, err);
        if (rv != APR_SUCCESS) {
            if (err->kind != MEMDS_IMAP_E_NO && err->kind != MEMDS_IMAP_E_BAD) {
                return rv;
            }
            err_init(err);
        }
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_open_io(memds_imap_conn_t **pconn,
                                const memds_imap_io_t *io,
                                const memds_imap_config_t *cfg,
                                memds_imap_err_t *err, apr_pool_t *p)
{
    memds_imap_conn_t *c;
    apr_status_t rv;
    ERR_ARG(err);

    c = conn_new(cfg, p);
    c->io = *io;
    rv = post_login(c, cfg ? cfg->no_qresync : 0, err);
    if (rv != APR_SUCCESS) {
        /* the message lives in c->pool: keep a copy in p */
        err->msg = apr_pstrdup(p, err->msg);
        apr_pool_destroy(c->pool);
        return rv;
    }
    *pconn = c;
    return APR_SUCCESS;
}

static memds_imap_ekind_e curl_kind(CURLcode rc)
{
    switch (memds_curl_class(rc)) {
    case MEMDS_CURL_AUTH: return MEMDS_IMAP_E_AUTH;
    case MEMDS_CURL_TIMEOUT: return MEMDS_IMAP_E_TIMEOUT;
    case MEMDS_CURL_TLS: return MEMDS_IMAP_E_TLS;
    case MEMDS_CURL_CONFIG: return MEMDS_IMAP_E_ARG;
    default: return MEMDS_IMAP_E_CONNECT;
    }
}

static int mech_ok(const char *m)
{
    for (; *m; m++) {
        if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z')
              || is_digit((unsigned char)*m) || *m == '-' || *m == '_')) {
            return 0;
        }
    }
    return 1;
}

apr_status_t memds_imap_connect(memds_imap_conn_t **pconn,
                                const memds_imap_config_t *cfg,
                                memds_imap_err_t *err, apr_pool_t *p)
{
    memds_imap_conn_t *c;
    CURL *h;
    CURLcode rc;
    curl_socket_t sock = CURL_SOCKET_BAD;
    long cto;
    const char *mech;
    apr_status_t rv;
    apr_time_t t0 = apr_time_now();
    ERR_ARG(err);

    c = conn_new(cfg, p);
    if (cfg == NULL || cfg->url == NULL || cfg->user == NULL
        || strchr(cfg->url, '@') != NULL
        || (strncmp(cfg->url, "imap://", 7) != 0
            && strncmp(cfg->url, "imaps://", 8) != 0)) {
        rv = memds_imap__fail(
            c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
            "IMAP connect: the "
            "URL must be imap://host[:port] or imaps://host[:port] "
            "without credentials, and a user is needed");
        goto failed;
    }
    mech = cfg->authzid ? "PLAIN" : cfg->mech;
    if (mech && !mech_ok(mech)) {
        rv = memds_imap__fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                              "IMAP connect: invalid SASL mechanism name");
        goto failed;
    }
    if ((h = curl_easy_init()) == NULL) {
        rv = memds_imap__fail(c, err, MEMDS_IMAP_E_CONNECT, APR_ENOMEM,
                              "IMAP connect: curl_easy_init failed");
        goto failed;
    }
    c->cio.h = h;
    cto = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 30000;
    curl_easy_setopt(h, CURLOPT_URL, cfg->url);
    memds_curl_protocols(h, "imap,imaps",
                         (long)(CURLPROTO_IMAP | CURLPROTO_IMAPS));
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cto);
    /* the whole connect + TLS + login */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, cto + c->io_timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_USERNAME, cfg->user);
    if (cfg->password) {
        curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->password);
    }
    if (cfg->bearer) {
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, cfg->bearer);
    }
    memds_curl_sasl(h, mech, cfg->authzid, c->pool);
    if (cfg->starttls) {
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    }
    memds_curl_tls(h, cfg->tls_no_verify, cfg->ca_file);
    rc = curl_easy_perform(h);
    /* the secrets are needed no more: drop libcurl's copies; our own waits
     * bound the I/O from now on, not libcurl's transfer timeout */
    curl_easy_setopt(h, CURLOPT_PASSWORD, NULL);
    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, NULL);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
    if (rc != CURLE_OK) {
        const char *detail = memds_scrub_secret(
            c->pool, memds_scrub_secret(c->pool, c->errbuf, cfg->password),
            cfg->bearer);
        err->curl_code = (int)rc;
        rv = memds_imap__fail(c, err, curl_kind(rc),
                              rc == CURLE_OPERATION_TIMEDOUT ? APR_TIMEUP
                                                             : APR_EGENERAL,
                              "IMAP %s to %s as %s failed: %s%s%s%s",
                              rc == CURLE_LOGIN_DENIED ? "login" : "connect",
                              cfg->url, cfg->user, memds_curl_strerror(rc),
                              *detail ? " (" : "", detail, *detail ? ")" : "");
        goto failed;
    }
    rc = curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &sock);
    if (rc != CURLE_OK || sock == CURL_SOCKET_BAD) {
        rv = memds_imap__fail(c, err, MEMDS_IMAP_E_CONNECT, APR_EGENERAL,
                              "IMAP connect: no socket from libcurl");
        goto failed;
    }
    c->cio.sock = sock;
    c->cio.timeout_ms = c->io_timeout_ms;
    c->io.recv = curl_recv_cb;
    c->io.send = curl_send_cb;
    c->io.baton = &c->cio;
    rv = post_login(c, cfg->no_qresync, err);
    if (rv != APR_SUCCESS) {
        goto failed;
    }
    memds_logf(&c->log, MEMDS_LOG_DEBUG, 0,
               MEMDS_LOGNO(00204) "imap: logged in to %s as %s%s%s", cfg->url,
                           cfg->user, cfg->authzid ? " for " : "",
                           cfg->authzid ? cfg->authzid : "");
    memds_stats_observe(c->stats, MEMDS_OP_IMAP_CONNECT, apr_time_now() - t0,
                        0);
    *pconn = c;
    return APR_SUCCESS;
failed:
    memds_stats_observe(cfg ? cfg->stats : NULL, MEMDS_OP_IMAP_CONNECT,
                        apr_time_now() - t0, 1);
    err->msg = apr_pstrdup(p, err->msg);
    apr_pool_destroy(c->pool);
    return rv;
}

void memds_imap_close(memds_imap_conn_t *c)
{
    cmd_t cmd;
    memds_imap_err_t err;

    if (c == NULL) {
        return;
    }
    if (!c->broken) {
        c->io_timeout_ms = c->io_timeout_ms > 5000 ? 5000 : c->io_timeout_ms;
        c->cio.timeout_ms = c->io_timeout_ms;
        err_init(&err);
        memds_imap__cmd_start(c, &cmd, "LOGOUT");
        (void)memds_imap__cmd_exec(&cmd, NULL, NULL, NULL, &err);
    }
    apr_pool_destroy(c->pool);
}

unsigned memds_imap_caps(const memds_imap_conn_t *c)
{
    return c->caps;
}

int memds_imap_has_cap(const memds_imap_conn_t *c, const char *name)
{
    int i;

    for (i = 0; c->capnames && i < c->capnames->nelts; i++) {
        if (str_ieq(APR_ARRAY_IDX(c->capnames, i, const char *), name)) {
            return 1;
        }
    }
    return 0;
}

int memds_imap_qresync(const memds_imap_conn_t *c)
{
    return c->qresync;
}

int memds_imap_broken(const memds_imap_conn_t *c)
{
    return c->broken;
}

int memds_imap_quiet(const memds_imap_conn_t *c)
{
    struct pollfd pfd;

    if (c->broken || c->bye || c->idling || c->selected || c->owed[0]
        || c->in_pos < c->in_len || c->io.recv != curl_recv_cb
        || c->cio.sock == CURL_SOCKET_BAD) {
        return 0;
    }
    pfd.fd = c->cio.sock;
    pfd.events = POLLIN;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) == 0;
}
