/* smtp_check SMTP_HOST SMTP_PORT IMAP_PORT USER1 PASS1 USER2 PASS2 DOMAIN
 *
 * Runs the SMTP submission layer (backends/memds_smtp.c) against the real
 * Postfix of the stack, which hands mail to Dovecot over LMTP, and checks
 * every outcome over IMAP (backends/memds_imap_*.c, as USER2 on
 * SMTP_HOST:IMAP_PORT, polling up to 20 s):
 *  - argument and configuration checks (nothing is sent);
 *  - a ~200 KB message with dot lines and UTF-8 from USER1 to USER2 arrives
 *    exactly once with its body bytes intact; the before-end hook runs once,
 *    after the server's 354 and before its final 250, while the message is
 *    not yet in the mailbox;
 *  - a failing hook aborts the transaction: E_HOOK, nothing delivered;
 *  - a recipient Postfix refuses at RCPT time (bad address syntax; this
 *    Postfix accepts unknown users of DOMAIN and bounces them later, so
 *    those cannot be used): permanent 5xx, nothing delivered, also not to
 *    the good recipient of the same send; with allow_rcpt_fails the good
 *    recipient gets it; a refused sender;
 *  - a closed port (E_CONNECT), a silent server (E_TIMEOUT), TLS to a
 *    plain port (E_TLS), credentials without STARTTLS (E_TLS) and without
 *    AUTH on the server (E_CONFIG), the password never in an error text;
 *  - a scripted server in a thread for what Postfix will not do: SASL
 *    PLAIN with authzid accepted and refused, 552 and 451 to the end of
 *    data, and no reply at all to it (in_doubt);
 *  - the status mapping table;
 * then it expunges the messages it delivered, and checks that no bounce
 * about them reached USER1. TAP on stdout; exit 0 when everything passed.
 * SMTP_CHECK_VERBOSE=1 prints the layer's debug lines on stderr. */
#include "../../backends/memds_smtp.h"
#include "../../backends/memds_imap.h"
#include "ds/memds_outcome.h"

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>
#include <apr_base64.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tap.h"

/* A send's SyncML status for an item, through the one outcome map. */
static memds_outcome_t smtp_outcome(const memds_smtp_err_t *err)
{
    memds_err_t e = memds_smtp_err_of(err);

    return memds_outcome_of(&e, MEMDS_OUTCOME_ITEM);
}

static void diag(const memds_smtp_err_t *e)
{
    printf("# kind %d smtp %d (%s) curl %d permanent %d data_sent %d "
           "in_doubt %d: %s\n",
           (int)e->kind, e->smtp_code, e->enhanced ? e->enhanced : "-",
           e->curl_code, e->permanent, e->data_sent, e->in_doubt,
           e->msg ? e->msg : "");
}

static void diag_imap(const memds_imap_err_t *e)
{
    if (e->kind != MEMDS_IMAP_E_NONE) {
        printf("# imap error kind %d: %s\n", (int)e->kind,
               e->msg ? e->msg : "");
    }
}

/* ---- the log: every line in order, plus the hook's own mark */

typedef struct events_t {
    apr_pool_t *p;
    apr_array_header_t *lines; /* const char * */
    int verbose;
} events_t;

static void log_cb(void *baton, int level, apr_status_t rv, const char *msg)
{
    events_t *ev = baton;

    APR_ARRAY_PUSH(ev->lines, const char *) = apr_pstrdup(ev->p, msg);
    if (ev->verbose) {
        fprintf(stderr, "[%d] %s\n", level, msg);
    }
}

/* Index of the first line starting with prefix (after its log code
 * "MEMDSnnnnn: ", if any), or -1. */
static int event_at(const events_t *ev, const char *prefix)
{
    int i;

    for (i = 0; i < ev->lines->nelts; i++) {
        const char *l = APR_ARRAY_IDX(ev->lines, i, const char *);
        if (!strncmp(l, "MEMDS", 5) && strlen(l) > 12 && l[10] == ':') {
            l += 12;
        }
        if (!strncmp(l, prefix, strlen(prefix))) {
            return i;
        }
    }
    return -1;
}

static int events_contain(const events_t *ev, const char *needle)
{
    int i;

    for (i = 0; i < ev->lines->nelts; i++) {
        if (strstr(APR_ARRAY_IDX(ev->lines, i, const char *), needle)) {
            return 1;
        }
    }
    return 0;
}

/* ---- IMAP side */

/* Number of INBOX messages matching criteria (NOOP first, so that new
 * deliveries are seen); -1 on an IMAP error. uids (may be NULL) gets them. */
static int imap_count(memds_imap_conn_t *c, const char *criteria,
                      memds_imap_set_t **uids, apr_pool_t *p)
{
    memds_imap_err_t err;
    memds_imap_search_t *sr = NULL;

    if (memds_imap_select(c, "INBOX", 0, NULL, NULL, NULL, NULL, &err)
            != APR_SUCCESS
        || memds_imap_noop(c, NULL, NULL, &err) != APR_SUCCESS
        || memds_imap_uid_search(c, criteria, &sr, &err, p) != APR_SUCCESS) {
        diag_imap(&err);
        return -1;
    }
    if (uids) {
        *uids = sr->all;
    }
    return (int)memds_imap_set_count(sr->all);
}

/* Poll until at least one message matches (or max_ms passed). */
static int imap_wait(memds_imap_conn_t *c, const char *criteria, int max_ms,
                     memds_imap_set_t **uids, apr_pool_t *p)
{
    apr_time_t end = apr_time_now() + apr_time_from_msec(max_ms);
    int n;

    for (;;) {
        n = imap_count(c, criteria, uids, p);
        if (n != 0 || apr_time_now() >= end) {
            return n;
        }
        apr_sleep(apr_time_from_msec(200));
    }
}

typedef struct sink_t {
    char *data;
    apr_size_t len, cap;
} sink_t;

static apr_status_t sink_cb(void *baton, apr_uint64_t off, const char *d,
                            apr_size_t n)
{
    sink_t *s = baton;

    if (off != s->len || s->len + n > s->cap) {
        return APR_ENOSPC;
    }
    memcpy(s->data + s->len, d, n);
    s->len += n;
    return APR_SUCCESS;
}

static apr_status_t fetch_section(memds_imap_conn_t *c, apr_uint32_t uid,
                                  const char *section, sink_t *s,
                                  apr_size_t cap, apr_pool_t *p)
{
    memds_imap_err_t err;
    memds_imap_body_info_t bi;
    apr_status_t rv;

    s->data = apr_palloc(p, cap);
    s->len = 0;
    s->cap = cap;
    rv = memds_imap_fetch_body(c, uid, section, 0, 0, 0, sink_cb, s, &bi, &err);
    if (rv != APR_SUCCESS) {
        diag_imap(&err);
    }
    return rv;
}

/* Remove the given messages from INBOX (UID EXPUNGE: only those). */
static int imap_remove(memds_imap_conn_t *c, const memds_imap_set_t *uids,
                       apr_pool_t *p)
{
    memds_imap_err_t err;
    const char *set = memds_imap_set_str(uids, p);

    if (*set == '\0') {
        return 1;
    }
    if (memds_imap_select(c, "INBOX", 0, NULL, NULL, NULL, NULL, &err)
            != APR_SUCCESS
        || memds_imap_uid_store(c, set, '+', "\\Deleted", 1, 0, NULL, NULL,
                                NULL, &err, p)
               != APR_SUCCESS
        || memds_imap_uid_expunge(c, set, NULL, NULL, &err) != APR_SUCCESS) {
        diag_imap(&err);
        return 0;
    }
    return 1;
}

/* ---- the hook */

typedef struct hook_t {
    int calls;
    apr_status_t ret;
    events_t *ev;
    memds_imap_conn_t *imap; /* when set: count the message meanwhile */
    const char *criteria;
    apr_pool_t *p;
    int seen_in_hook;
} hook_t;

static apr_status_t hook_cb(void *baton)
{
    hook_t *h = baton;

    h->calls++;
    APR_ARRAY_PUSH(h->ev->lines, const char *) = "HOOK";
    if (h->imap) {
        h->seen_in_hook = imap_count(h->imap, h->criteria, NULL, h->p);
    }
    return h->ret;
}

static void hook_init(hook_t *h, events_t *ev, apr_status_t ret)
{
    memset(h, 0, sizeof(*h));
    h->ev = ev;
    h->ret = ret;
}

/* ---- messages */

/* ~200 KB of lines that dot-stuffing must get right, across libcurl's
 * 64 KB upload buffer boundaries ("." alone would end the data early). */
static char *make_body(apr_size_t *plen, apr_pool_t *p)
{
    static const char *const pat[] = {
        ".",
        "..",
        ".leading dot",
        "plain line",
        "",
        "...",
        ". and a space",
        "dot at the end.",
        "Gr\xc3\xbc\xc3\x9f\xe2\x82\xac aus Utf-8",
        "x",
        "."
    };
    apr_size_t cap = 220 * 1024, len = 0;
    char *b = apr_palloc(p, cap + 256);
    unsigned i = 0;

    while (len < 200 * 1024) {
        const char *l = pat[i % (sizeof(pat) / sizeof(pat[0]))];
        apr_size_t n = strlen(l);
        if (i % 7 == 3) {
            /* vary the line lengths so that the boundaries fall anywhere */
            len += (apr_size_t)apr_snprintf(b + len, 64, "line %u of the body",
                                            i);
        }
        else {
            memcpy(b + len, l, n);
            len += n;
        }
        b[len++] = '\r';
        b[len++] = '\n';
        i++;
    }
    memcpy(b + len, "the end\r\n", 9);
    len += 9;
    b[len] = '\0';
    *plen = len;
    return b;
}

typedef struct msg_t {
    const char *msgid;    /* without brackets */
    const char *criteria; /* UID SEARCH criteria that find it */
    char *data;
    apr_size_t len;
    const char *body; /* points into data */
    apr_size_t body_len;
} msg_t;

static void make_msg(msg_t *m, const char *token, int n, const char *from,
                     const char *to, const char *body, apr_size_t body_len,
                     const char *domain, apr_pool_t *p)
{
    char date[APR_RFC822_DATE_LEN];
    const char *head;
    apr_size_t hlen;

    apr_rfc822_date(date, apr_time_now());
    m->msgid = apr_psprintf(p, "%s.%d@%s", token, n, domain);
    m->criteria = apr_psprintf(p, "HEADER Message-ID \"%s.%d@\"", token, n);
    head = apr_psprintf(p,
                        "From: <%s>\r\n"
                        "To: <%s>\r\n"
                        "Subject: memds smtp_check %s #%d\r\n"
                        "Date: %s\r\n"
                        "Message-ID: <%s>\r\n"
                        "MIME-Version: 1.0\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: 8bit\r\n"
                        "\r\n",
                        from, to, token, n, date, m->msgid);
    if (body == NULL) {
        body = apr_psprintf(p, "Message %d of smtp_check %s.\r\n", n, token);
        body_len = strlen(body);
    }
    hlen = strlen(head);
    m->len = hlen + body_len;
    m->data = apr_palloc(p, m->len + 1);
    memcpy(m->data, head, hlen);
    memcpy(m->data + hlen, body, body_len);
    m->data[m->len] = '\0';
    m->body = m->data + hlen;
    m->body_len = body_len;
}

/* ---- ports without a working SMTP server */

/* A loopback socket bound to a free port; listening when listen_too. */
static apr_socket_t *bind_free(apr_port_t *pport, int listen_too, apr_pool_t *p)
{
    apr_socket_t *s;
    apr_sockaddr_t *sa;

    if (apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p)
            != APR_SUCCESS
        || apr_socket_create(&s, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p)
               != APR_SUCCESS) {
        return NULL;
    }
    if (apr_socket_bind(s, sa) != APR_SUCCESS
        || (listen_too && apr_socket_listen(s, 4) != APR_SUCCESS)
        || apr_socket_addr_get(&sa, APR_LOCAL, s) != APR_SUCCESS) {
        apr_socket_close(s);
        return NULL;
    }
    *pport = sa->port;
    return s;
}

/* ---- a scripted SMTP server in a thread, for replies Postfix never gives */

typedef enum {
    FAKE_AUTH_OK = 1, /* AUTH PLAIN → 235, then 250 to the end of data */
    FAKE_AUTH_FAIL,   /* AUTH PLAIN → 535 */
    FAKE_END_552,     /* 552 5.3.4 to the end of data */
    FAKE_END_451,     /* 451 4.3.0 to the end of data */
    FAKE_END_SILENT   /* no reply to the end of data */
} fake_mode_e;

typedef struct fake_t {
    apr_socket_t *ls;
    apr_pool_t *tp; /* the thread's own pool */
    fake_mode_e mode;
    /* results */
    char auth[512];      /* decoded SASL PLAIN response, NULs as '|' */
    apr_size_t data_len; /* message bytes received (dot-stuffing undone) */
    int got_end, got_quit;
} fake_t;

typedef struct fconn_t {
    apr_socket_t *s;
    char buf[8192];
    apr_size_t have;
} fconn_t;

static int fake_send(fconn_t *fc, const char *txt)
{
    apr_size_t len = strlen(txt), n;

    while (len > 0) {
        n = len;
        if (apr_socket_send(fc->s, txt, &n) != APR_SUCCESS) {
            return 0;
        }
        txt += n;
        len -= n;
    }
    return 1;
}

/* One line with its CRLF into line (NUL-terminated, CRLF kept); 0 at EOF. */
static int fake_line(fconn_t *fc, char *line, apr_size_t cap, apr_size_t *plen)
{
    for (;;) {
        char *nl = memchr(fc->buf, '\n', fc->have);
        apr_size_t n;
        if (nl) {
            n = (apr_size_t)(nl - fc->buf) + 1;
            if (n >= cap) {
                return 0;
            }
            memcpy(line, fc->buf, n);
            line[n] = '\0';
            memmove(fc->buf, fc->buf + n, fc->have - n);
            fc->have -= n;
            *plen = n;
            return 1;
        }
        if (fc->have == sizeof(fc->buf)) {
            return 0;
        }
        n = sizeof(fc->buf) - fc->have;
        if (apr_socket_recv(fc->s, fc->buf + fc->have, &n) != APR_SUCCESS
            || n == 0) {
            return 0;
        }
        fc->have += n;
    }
}

static void fake_auth(fake_t *f, const char *b64)
{
    char dec[512];
    int n, i;

    if (apr_base64_decode_len(b64) > (int)sizeof(dec)) {
        return;
    }
    n = apr_base64_decode(dec, b64);
    for (i = 0; i < n && i < (int)sizeof(f->auth) - 1; i++) {
        f->auth[i] = dec[i] == '\0' ? '|' : dec[i];
    }
    f->auth[i] = '\0';
}

static void *APR_THREAD_FUNC fake_thread(apr_thread_t *th, void *data)
{
    fake_t *f = data;
    apr_pool_t *tp = f->tp;
    fconn_t *fc;
    char *line;
    apr_size_t n;
    int in_data = 0;

    fc = apr_pcalloc(tp, sizeof(*fc));
    line = apr_palloc(tp, 2048);
    if (apr_socket_accept(&fc->s, f->ls, tp) != APR_SUCCESS) {
        goto out;
    }
    apr_socket_timeout_set(fc->s, apr_time_from_sec(10));
    fake_send(fc, "220 fake.test ESMTP\r\n");
    while (fake_line(fc, line, 2048, &n)) {
        if (in_data) {
            if (!strcmp(line, ".\r\n")) {
                in_data = 0;
                f->got_end = 1;
                if (f->mode == FAKE_END_552) {
                    fake_send(fc,
                              "552 5.3.4 Message size exceeds fixed limit\r\n");
                }
                else if (f->mode == FAKE_END_451) {
                    fake_send(fc, "451 4.3.0 Try again later\r\n");
                }
                else if (f->mode == FAKE_END_SILENT) {
                    /* say nothing: wait until the client gives up */
                    while (fake_line(fc, line, 2048, &n)) {
                    }
                    break;
                }
                else {
                    fake_send(fc, "250 2.0.0 Ok: queued as FAKE1\r\n");
                }
                continue;
            }
            f->data_len += line[0] == '.' ? n - 1 : n;
            continue;
        }
        if (!strncasecmp(line, "EHLO", 4)) {
            fake_send(fc, "250-fake.test\r\n250-AUTH PLAIN LOGIN\r\n"
                          "250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n");
        }
        else if (!strncasecmp(line, "AUTH PLAIN", 10)) {
            char *arg = line + 10;
            if (*arg == ' ') {
                arg++;
            }
            arg[strcspn(arg, "\r\n")] = '\0';
            if (*arg == '\0') {
                fake_send(fc, "334 \r\n");
                if (!fake_line(fc, line, 2048, &n)) {
                    break;
                }
                arg = line;
                arg[strcspn(arg, "\r\n")] = '\0';
            }
            fake_auth(f, arg);
            fake_send(fc, f->mode == FAKE_AUTH_FAIL
                              ? "535 5.7.8 Error: authentication failed\r\n"
                              : "235 2.7.0 Authentication successful\r\n");
        }
        else if (!strncasecmp(line, "MAIL FROM:", 10)) {
            fake_send(fc, "250 2.1.0 Ok\r\n");
        }
        else if (!strncasecmp(line, "RCPT TO:", 8)) {
            fake_send(fc, "250 2.1.5 Ok\r\n");
        }
        else if (!strncasecmp(line, "DATA", 4)) {
            fake_send(fc, "354 End data with <CR><LF>.<CR><LF>\r\n");
            in_data = 1;
        }
        else if (!strncasecmp(line, "QUIT", 4)) {
            f->got_quit = 1;
            fake_send(fc, "221 2.0.0 Bye\r\n");
            break;
        }
        else {
            fake_send(fc, "502 5.5.2 Error: command not recognized\r\n");
        }
    }
    apr_socket_close(fc->s);
out:
    /* A plain return rather than apr_thread_exit(): pthread_exit()'s forced
     * unwind leaves this frame's ASan stack poisoning behind, which gcc's
     * ASan reports at the thread's exit (stack-use-after-scope in
     * sigaltstack) when this check runs in a --enable-sanitizers build. */
    return NULL;
}

/* Run one send against the scripted server. */
static apr_status_t fake_send_msg(fake_t *f, fake_mode_e mode,
                                  memds_smtp_config_t *cfg, const msg_t *m,
                                  const char *from, const char *to, hook_t *hk,
                                  memds_smtp_err_t *err, apr_pool_t *p)
{
    apr_thread_t *th;
    apr_status_t rv, trv;
    apr_port_t port;
    const char *rcpts[1];

    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->ls = bind_free(&port, 1, p);
    apr_pool_create(&f->tp, NULL);
    if (f->ls == NULL
        || apr_thread_create(&th, NULL, fake_thread, f, f->tp) != APR_SUCCESS) {
        apr_pool_destroy(f->tp);
        memset(err, 0, sizeof(*err));
        err->kind = MEMDS_SMTP_E_OTHER;
        err->msg = "test setup: no fake server";
        return APR_EGENERAL;
    }
    cfg->url = apr_psprintf(p, "smtp://127.0.0.1:%u", (unsigned)port);
    rcpts[0] = to;
    rv = memds_smtp_send(cfg, from, rcpts, 1, m->data, m->len, hook_cb, hk, err,
                         p);
    apr_thread_join(&trv, th);
    apr_pool_destroy(f->tp);
    apr_socket_close(f->ls);
    return rv;
}

/* ---- the status table */

static int status_is(memds_smtp_ekind_e kind, int code, const char *enh,
                     int in_doubt, int want)
{
    memds_smtp_err_t e;

    memset(&e, 0, sizeof(e));
    e.kind = kind;
    e.smtp_code = code;
    e.enhanced = enh;
    e.in_doubt = in_doubt;
    e.data_sent = in_doubt;
    return smtp_outcome(&e).status == want;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    memds_smtp_config_t cfg, bad;
    memds_smtp_err_t err;
    memds_outcome_t oc;
    memds_imap_config_t icfg;
    memds_imap_conn_t *c2 = NULL, *c1 = NULL;
    memds_imap_err_t ierr;
    memds_imap_set_t *uids = NULL, *delivered1 = NULL, *delivered5 = NULL;
    events_t ev;
    memds_logger_t lg;
    hook_t hk;
    fake_t fk;
    msg_t m1, m2, m3, m4, m5, m6, m7, m8, mf;
    sink_t sk;
    const char *host, *domain, *from, *to, *badrcpt, *token, *imap_url;
    const char *rcpts[3];
    char *body;
    apr_size_t body_len;
    apr_port_t port;
    apr_socket_t *sock;
    apr_time_t t0;
    apr_status_t rv;
    int n, i354, ihook, i250, found;

    if (argc != 9) {
        fprintf(stderr, "usage: smtp_check SMTP_HOST SMTP_PORT IMAP_PORT USER1 "
                        "PASS1 USER2 PASS2 DOMAIN\n");
        return 2;
    }
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    if (memds_imap_global_init() != APR_SUCCESS) {
        fprintf(stderr, "smtp_check: libcurl cannot initialise\n");
        return 2;
    }
    host = argv[1];
    domain = argv[8];
    from = apr_pstrcat(p, argv[4], "@", domain, NULL);
    to = apr_pstrcat(p, argv[6], "@", domain, NULL);
    /* refused by Postfix at RCPT time (501 5.1.3 Bad recipient address
     * syntax); a merely unknown user of the domain would be accepted and
     * bounced to USER1 later */
    badrcpt = apr_pstrcat(p, "nosuchuser@bad..", domain, NULL);
    token = apr_psprintf(p, "smtpcheck-%ld-%" APR_TIME_T_FMT, (long)getpid(),
                         apr_time_now());
    ev.p = p;
    ev.lines = apr_array_make(p, 64, sizeof(const char *));
    ev.verbose = getenv("SMTP_CHECK_VERBOSE") != NULL;
    lg.cb = log_cb;
    lg.baton = &ev;

    memset(&cfg, 0, sizeof(cfg));
    cfg.url = apr_psprintf(p, "smtp://%s:%s", host, argv[2]);
    cfg.connect_timeout_ms = 10000;
    cfg.io_timeout_ms = 30000;
    cfg.log = &lg;
    /* the stack's CA (./dev env MEMDS_CA_FILE): its Postfix offers
     * STARTTLS, which smtp:// then uses (unset: a server without TLS) */
    cfg.ca_file = getenv("MEMDS_CA_FILE");

    body = make_body(&body_len, p);
    make_msg(&m1, token, 1, from, to, body, body_len, domain, p);
    make_msg(&m2, token, 2, from, to, NULL, 0, domain, p);
    make_msg(&m3, token, 3, from, badrcpt, NULL, 0, domain, p);
    make_msg(&m4, token, 4, from, to, NULL, 0, domain, p);
    make_msg(&m5, token, 5, from, to, NULL, 0, domain, p);
    make_msg(&m6, token, 6, from, to, NULL, 0, domain, p);
    make_msg(&m7, token, 7, from, to, NULL, 0, domain, p);
    make_msg(&m8, token, 8, from, to, NULL, 0, domain, p);

    /* ================================ arguments: nothing is sent */
    hook_init(&hk, &ev, APR_SUCCESS);
    rcpts[0] = apr_pstrcat(p, to, ">\r\nRSET", NULL);
    rv = memds_smtp_send(&cfg, from, rcpts, 1, m2.data, m2.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_ARG && err.permanent
           && hk.calls == 0 && !err.data_sent,
       "a recipient with CRLF and '>' is refused before connecting (E_ARG)");
    rcpts[0] = apr_pstrcat(p, "<", to, ">", NULL);
    rv = memds_smtp_send(&cfg, from, rcpts, 1, m2.data, m2.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_ARG,
       "angle brackets are refused (addr-specs only)");
    rcpts[0] = to;
    rv = memds_smtp_send(&cfg, "no-at-sign", rcpts, 1, m2.data, m2.len, hook_cb,
                         &hk, &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_ARG,
       "a sender without '@' is refused");
    rv = memds_smtp_send(&cfg, from, rcpts, 0, m2.data, m2.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_ARG,
       "no recipients: E_ARG");
    rv = memds_smtp_send(&cfg, from, rcpts, 1, m2.data, 0, hook_cb, &hk, &err,
                         p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_ARG
           && smtp_outcome(&err).status == 400,
       "empty message: E_ARG, 400");
    bad = cfg;
    bad.url = apr_psprintf(p, "smtp://someone:%s@%s:%s", argv[5], host,
                           argv[2]);
    rv = memds_smtp_send(&bad, from, rcpts, 1, m2.data, m2.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_CONFIG && !err.permanent
           && err.msg && !strstr(err.msg, argv[5]),
       "credentials in the URL: E_CONFIG, password not in the text");
    bad.url = apr_psprintf(p, "http://%s:%s", host, argv[2]);
    rv = memds_smtp_send(&bad, from, rcpts, 1, m2.data, m2.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_CONFIG
           && smtp_outcome(&err).status == 500,
       "http:// URL: E_CONFIG, 500");
    bad = cfg;
    bad.helo = "bad/name";
    rv = memds_smtp_send(&bad, from, rcpts, 1, m2.data, m2.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_CONFIG,
       "bad EHLO name: E_CONFIG");
    ok(hk.calls == 0, "the hook never ran for refused arguments");

    /* ================================ IMAP as USER2 */
    memset(&icfg, 0, sizeof(icfg));
    imap_url = apr_psprintf(p, "imap://%s:%s", host, argv[3]);
    icfg.url = imap_url;
    icfg.user = argv[6];
    icfg.password = argv[7];
    icfg.connect_timeout_ms = 10000;
    icfg.io_timeout_ms = 10000;
    rv = memds_imap_connect(&c2, &icfg, &ierr, p);
    ok(rv == APR_SUCCESS, "IMAP login as %s", argv[6]);
    if (rv != APR_SUCCESS) {
        diag_imap(&ierr);
        printf("1..%d\n", ntest);
        return 1;
    }

    /* ================================ (1)(2) one message, delivered once */
    hook_init(&hk, &ev, APR_SUCCESS);
    hk.imap = c2;
    hk.criteria = m1.criteria;
    hk.p = p;
    apr_array_clear(ev.lines);
    bad = cfg;
    bad.helo = "client.smtp-check.test";
    rcpts[0] = to;
    rv = memds_smtp_send(&bad, from, rcpts, 1, m1.data, m1.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_SUCCESS && err.kind == MEMDS_SMTP_E_NONE,
       "send %" APR_SIZE_T_FMT " bytes from %s to %s", m1.len, from, to);
    if (rv != APR_SUCCESS) {
        diag(&err);
    }
    ok(err.smtp_code == 250 && err.reply && !strncmp(err.reply, "250 ", 4)
           && err.enhanced && !strcmp(err.enhanced, "2.0.0"),
       "final reply 250 2.0.0 kept for the ledger (%s)",
       err.reply ? err.reply : "none");
    ok(err.data_sent && !err.in_doubt && !err.permanent,
       "data_sent set, not in doubt");
    ok(hk.calls == 1, "the hook ran exactly once (%d)", hk.calls);
    i354 = event_at(&ev, "smtp: S: 354");
    ihook = event_at(&ev, "HOOK");
    i250 = event_at(&ev, "smtp: S: 250 2.0.0");
    ok(i354 >= 0 && ihook > i354 && i250 > ihook,
       "the hook ran after the 354 to DATA and before the final 250 "
       "(log lines %d < %d < %d)",
       i354, ihook, i250);
    ok(hk.seen_in_hook == 0,
       "the message was not in the mailbox while the hook ran (%d)",
       hk.seen_in_hook);
    oc = smtp_outcome(&err);
    ok(oc.status == 200, "status_of: 200");
    ok(!events_contain(&ev, argv[7]) && !events_contain(&ev, argv[5]),
       "no password in the log lines");

    n = imap_wait(c2, m1.criteria, 20000, &delivered1, p);
    ok(n == 1, "the message arrived in %s's INBOX (%d found)", argv[6], n);
    apr_sleep(apr_time_from_sec(1));
    n = imap_count(c2, m1.criteria, &delivered1, p);
    ok(n == 1, "exactly once (%d found a second later)", n);
    found = 0;
    if (n == 1) {
        apr_uint32_t uid = memds_imap_set_nth(delivered1, 0);
        rv = fetch_section(c2, uid, "TEXT", &sk, m1.body_len + 4096, p);
        ok(rv == APR_SUCCESS && sk.len == m1.body_len
               && memcmp(sk.data, m1.body, m1.body_len) == 0,
           "body bytes intact: %" APR_SIZE_T_FMT " sent, %" APR_SIZE_T_FMT
           " fetched (dot lines, UTF-8, across 64 KB buffers)",
           m1.body_len, sk.len);
        rv = fetch_section(c2, uid, "HEADER", &sk, 64 * 1024, p);
        if (rv == APR_SUCCESS) {
            char *hdr = apr_pstrmemdup(p, sk.data, sk.len);
            found = strstr(hdr, apr_psprintf(p, "Message-ID: <%s>", m1.msgid))
                    && strstr(hdr, apr_psprintf(p,
                                                "Subject: memds smtp_check "
                                                "%s #1",
                                                token))
                    && strstr(hdr, "client.smtp-check.test");
        }
        ok(found, "header intact, and Received: names our EHLO name");
    }
    else {
        ok(0, "body bytes intact (not fetched)");
        ok(0, "header intact (not fetched)");
    }

    /* ================================ (3) a failing hook */
    hook_init(&hk, &ev, APR_ENOSPC);
    rv = memds_smtp_send(&cfg, from, rcpts, 1, m2.data, m2.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_ENOSPC && err.kind == MEMDS_SMTP_E_HOOK,
       "a failing hook: its status returned, E_HOOK");
    ok(hk.calls == 1 && !err.data_sent && !err.in_doubt && !err.permanent,
       "the hook ran once; data_sent not set");
    oc = smtp_outcome(&err);
    ok(oc.status == 510, "status_of(E_HOOK) = 510 (%s)", oc.text);

    /* ================================ (4) refused recipient, refused sender */
    hook_init(&hk, &ev, APR_SUCCESS);
    rcpts[0] = badrcpt;
    rv = memds_smtp_send(&cfg, from, rcpts, 1, m3.data, m3.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EGENERAL && err.kind == MEMDS_SMTP_E_RCPT,
       "recipient %s refused: E_RCPT", badrcpt);
    ok(err.smtp_code >= 500 && err.smtp_code <= 599 && err.permanent
           && !err.data_sent && hk.calls == 0,
       "permanent, 5xx, nothing sent, no hook (Postfix: %s)",
       err.reply ? err.reply : "no reply");
    diag(&err);
    oc = smtp_outcome(&err);
    ok(oc.status == 400, "status_of: %d %s", oc.status, oc.text);

    rcpts[0] = to;
    rcpts[1] = badrcpt;
    rv = memds_smtp_send(&cfg, from, rcpts, 2, m4.data, m4.len, hook_cb, &hk,
                         &err, p);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_SMTP_E_RCPT && err.permanent
           && hk.calls == 0,
       "a good and a refused recipient: the whole send fails (E_RCPT)");
    bad = cfg;
    bad.allow_rcpt_fails = 1;
    rv = memds_smtp_send(&bad, from, rcpts, 2, m5.data, m5.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_SUCCESS && err.kind == MEMDS_SMTP_E_NONE && hk.calls == 1,
       "the same with allow_rcpt_fails: sent to the good one");
    rcpts[1] = NULL;

    rv = memds_smtp_send(&cfg, badrcpt, rcpts, 1, m6.data, m6.len, hook_cb, &hk,
                         &err, p);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_SMTP_E_SENDER && err.permanent
           && err.smtp_code / 100 == 5 && smtp_outcome(&err).status == 403,
       "sender %s refused: E_SENDER, permanent, 403 (Postfix: %s)", badrcpt,
       err.reply ? err.reply : "no reply");

    /* ================================ (5) no server */
    sock = bind_free(&port, 0, p);
    if (sock) {
        apr_socket_close(sock);
    }
    bad = cfg;
    bad.url = apr_psprintf(p, "smtp://127.0.0.1:%u", (unsigned)port);
    rv = memds_smtp_send(&bad, from, rcpts, 1, m7.data, m7.len, hook_cb, &hk,
                         &err, p);
    ok(sock && rv == APR_EGENERAL && err.kind == MEMDS_SMTP_E_CONNECT
           && !err.permanent && err.smtp_code == 0 && !err.data_sent,
       "connection refused on a closed port: E_CONNECT, transient");
    oc = smtp_outcome(&err);
    ok(oc.status == 503, "status_of: 503 (%s)", oc.text);

    sock = bind_free(&port, 1, p); /* listens, never accepts or greets */
    bad.url = apr_psprintf(p, "smtp://127.0.0.1:%u", (unsigned)port);
    bad.connect_timeout_ms = 1500;
    bad.io_timeout_ms = 1000;
    t0 = apr_time_now();
    rv = memds_smtp_send(&bad, from, rcpts, 1, m7.data, m7.len, hook_cb, &hk,
                         &err, p);
    t0 = apr_time_now() - t0;
    ok(sock && rv == APR_TIMEUP && err.kind == MEMDS_SMTP_E_TIMEOUT
           && !err.permanent && smtp_outcome(&err).status == 503
           && t0 < apr_time_from_sec(10),
       "a server that never greets: E_TIMEOUT after %d ms, 503",
       (int)apr_time_as_msec(t0));
    if (sock) {
        apr_socket_close(sock);
    }

    bad = cfg;
    bad.url = apr_psprintf(p, "smtps://%s:%s", host, argv[2]);
    bad.connect_timeout_ms = 5000;
    bad.io_timeout_ms = 5000;
    rv = memds_smtp_send(&bad, from, rcpts, 1, m7.data, m7.len, hook_cb, &hk,
                         &err, p);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_SMTP_E_TLS
           && smtp_outcome(&err).status == 503,
       "smtps:// to the plain port: E_TLS, 503");
    if (err.kind != MEMDS_SMTP_E_TLS) {
        diag(&err);
    }

    /* credentials: STARTTLS is then required; without the CA that signed
     * the server's certificate (or from a server without TLS) it fails */
    bad = cfg;
    bad.user = argv[4];
    bad.password = argv[5];
    bad.ca_file = NULL;
    rv = memds_smtp_send(&bad, from, rcpts, 1, m7.data, m7.len, hook_cb, &hk,
                         &err, p);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_SMTP_E_TLS && !err.data_sent
           && err.msg && !strstr(err.msg, argv[5]),
       "credentials over smtp:// without a trusted STARTTLS: E_TLS, "
       "password not in the text");
    /* with TLS (or allowed in the clear): Postfix here offers no AUTH */
    bad.ca_file = cfg.ca_file;
    bad.allow_plain_auth = 1;
    rv = memds_smtp_send(&bad, from, rcpts, 1, m7.data, m7.len, hook_cb, &hk,
                         &err, p);
    ok(rv == APR_EINVAL && err.kind == MEMDS_SMTP_E_CONFIG && !err.data_sent
           && smtp_outcome(&err).status == 500 && err.msg
           && !strstr(err.msg, argv[5]),
       "credentials, but the server offers no AUTH: E_CONFIG, not sent, 500");
    diag(&err);
    ok(hk.calls == 1, "the hook ran only for the allow_rcpt_fails send (%d)",
       hk.calls);

    /* ================================ scripted server */
    make_msg(&mf, token, 100, from, to, body, body_len, domain, p);
    bad = cfg;
    bad.user = "carol";
    bad.password = "carol-pw-xyzzy";
    bad.authzid = "dave";
    bad.allow_plain_auth = 1;
    hook_init(&hk, &ev, APR_SUCCESS);
    rv = fake_send_msg(&fk, FAKE_AUTH_OK, &bad, &mf, from, to, &hk, &err, p);
    ok(rv == APR_SUCCESS && !strcmp(fk.auth, "dave|carol|carol-pw-xyzzy")
           && hk.calls == 1 && fk.data_len == mf.len && fk.got_quit,
       "fake server: AUTH PLAIN with authzid (\"%s\"), %" APR_SIZE_T_FMT
       " bytes un-stuffed, QUIT",
       fk.auth, fk.data_len);
    rv = fake_send_msg(&fk, FAKE_AUTH_FAIL, &bad, &mf, from, to, &hk, &err, p);
    oc = smtp_outcome(&err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_SMTP_E_AUTH
           && err.smtp_code == 535 && oc.status == 401 && !err.permanent
           && hk.calls == 1 && err.msg && !strstr(err.msg, "carol-pw-xyzzy"),
       "fake server: 535 → E_AUTH, 401, password not in the text");

    bad = cfg;
    hook_init(&hk, &ev, APR_SUCCESS);
    rv = fake_send_msg(&fk, FAKE_END_552, &bad, &mf, from, to, &hk, &err, p);
    oc = smtp_outcome(&err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_SMTP_E_DATA
           && err.smtp_code == 552 && err.permanent && err.data_sent
           && !err.in_doubt && hk.calls == 1 && oc.status == 413,
       "fake server: 552 to the end of data → E_DATA, permanent, data_sent, "
       "not in doubt, 413");
    rv = fake_send_msg(&fk, FAKE_END_451, &bad, &mf, from, to, &hk, &err, p);
    oc = smtp_outcome(&err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_SMTP_E_DATA
           && err.smtp_code == 451 && !err.permanent && err.data_sent
           && !err.in_doubt && oc.status == 503,
       "fake server: 451 to the end of data → E_DATA, transient, 503");
    bad.io_timeout_ms = 1000;
    t0 = apr_time_now();
    rv = fake_send_msg(&fk, FAKE_END_SILENT, &bad, &mf, from, to, &hk, &err, p);
    t0 = apr_time_now() - t0;
    oc = smtp_outcome(&err);
    ok(rv == APR_TIMEUP && err.kind == MEMDS_SMTP_E_TIMEOUT && err.data_sent
           && err.in_doubt && fk.got_end && oc.status == 503
           && t0 < apr_time_from_sec(10),
       "fake server: no reply to the end of data → E_TIMEOUT, in_doubt "
       "(%d ms)",
       (int)apr_time_as_msec(t0));
    diag(&err);

    /* ================================ nothing else arrived */
    n = imap_wait(c2, m5.criteria, 20000, &delivered5, p);
    ok(n == 1, "the allow_rcpt_fails message arrived once (%d)", n);
    apr_sleep(apr_time_from_sec(2)); /* anything queued would be here by now */
    n = imap_count(c2, m2.criteria, NULL, p);
    ok(n == 0, "the hook-aborted message was not delivered (%d)", n);
    n = imap_count(c2, m4.criteria, NULL, p);
    ok(n == 0,
       "the message with a refused recipient was not delivered to "
       "the good one (%d)",
       n);
    n = imap_count(c2, m7.criteria, NULL, p);
    ok(n == 0, "the message refused for lack of AUTH was not delivered (%d)",
       n);
    n = imap_count(c2, m8.criteria, NULL, p);
    ok(n == 0, "control: an unsent message is not found (%d)", n);
    n = imap_count(c2, apr_psprintf(p, "TEXT \"%s\"", token), &uids, p);
    ok(n == 2, "%s got exactly the 2 messages sent to it (%d)", argv[6], n);

    icfg.user = argv[4];
    icfg.password = argv[5];
    rv = memds_imap_connect(&c1, &icfg, &ierr, p);
    ok(rv == APR_SUCCESS, "IMAP login as %s", argv[4]);
    if (rv == APR_SUCCESS) {
        n = imap_count(c1, apr_psprintf(p, "TEXT \"%s\"", token), NULL, p);
        ok(n == 0, "no bounce about these messages reached %s (%d)", argv[4],
           n);
        memds_imap_close(c1);
    }
    else {
        diag_imap(&ierr);
    }

    /* ================================ (6) the status table */
    ok(smtp_outcome(NULL).status == 200
           && status_is(MEMDS_SMTP_E_NONE, 250, "2.0.0", 0, 200),
       "200 for success");
    ok(status_is(MEMDS_SMTP_E_TIMEOUT, 0, NULL, 1, 503)
           && status_is(MEMDS_SMTP_E_CONNECT, 0, NULL, 1, 503),
       "in doubt → 503");
    ok(status_is(MEMDS_SMTP_E_HOOK, 0, NULL, 0, 510), "E_HOOK → 510");
    ok(status_is(MEMDS_SMTP_E_ARG, 0, NULL, 0, 400), "E_ARG → 400");
    ok(status_is(MEMDS_SMTP_E_CONFIG, 0, NULL, 0, 500), "E_CONFIG → 500");
    ok(status_is(MEMDS_SMTP_E_CONNECT, 421, "4.3.2", 0, 503)
           && status_is(MEMDS_SMTP_E_TLS, 0, NULL, 0, 503)
           && status_is(MEMDS_SMTP_E_TIMEOUT, 0, NULL, 0, 503),
       "E_CONNECT, E_TLS, E_TIMEOUT → 503");
    ok(status_is(MEMDS_SMTP_E_AUTH, 535, "5.7.8", 0, 401)
           && status_is(MEMDS_SMTP_E_AUTH, 0, NULL, 0, 401)
           && status_is(MEMDS_SMTP_E_AUTH, 454, "4.7.0", 0, 503),
       "E_AUTH → 401, 454 → 503");
    ok(status_is(MEMDS_SMTP_E_RCPT, 450, "4.2.0", 0, 503)
           && status_is(MEMDS_SMTP_E_SENDER, 451, NULL, 0, 503)
           && status_is(MEMDS_SMTP_E_DATA, 452, "4.3.1", 0, 503)
           && status_is(MEMDS_SMTP_E_RCPT, 552, "5.2.2", 0, 503),
       "4xx, and 552 to RCPT → 503");
    ok(status_is(MEMDS_SMTP_E_DATA, 552, "5.3.4", 0, 413)
           && status_is(MEMDS_SMTP_E_SENDER, 552, NULL, 0, 413)
           && status_is(MEMDS_SMTP_E_DATA, 554, "5.3.4", 0, 413),
       "552 / 5.3.4 → 413");
    ok(status_is(MEMDS_SMTP_E_SENDER, 553, "5.7.1", 0, 403)
           && status_is(MEMDS_SMTP_E_SENDER, 501, "5.1.7", 0, 403),
       "refused sender → 403");
    ok(status_is(MEMDS_SMTP_E_RCPT, 550, "5.1.1", 0, 400)
           && status_is(MEMDS_SMTP_E_RCPT, 501, "5.1.3", 0, 400)
           && status_is(MEMDS_SMTP_E_RCPT, 550, NULL, 0, 400)
           && status_is(MEMDS_SMTP_E_RCPT, 554, "5.7.1", 0, 403),
       "refused recipient → 400, by policy (5.7.x) → 403");
    ok(status_is(MEMDS_SMTP_E_DATA, 554, "5.6.0", 0, 500)
           && status_is(MEMDS_SMTP_E_DATA, 554, "5.7.1", 0, 403)
           && status_is(MEMDS_SMTP_E_DATA, 554, NULL, 0, 500),
       "refused message → 500, by policy → 403");
    ok(status_is(MEMDS_SMTP_E_OTHER, 0, NULL, 0, 500), "E_OTHER → 500");

    /* ================================ cleanup */
    ok(uids != NULL && imap_remove(c2, uids, p)
           && imap_count(c2, apr_psprintf(p, "TEXT \"%s\"", token), NULL, p)
                  == 0,
       "the delivered test messages are expunged again");
    memds_imap_close(c2);

    printf("1..%d\n", ntest);
    memds_imap_global_cleanup();
    apr_pool_destroy(p);
    apr_terminate();
    return nfail == 0 ? 0 : 1;
}
