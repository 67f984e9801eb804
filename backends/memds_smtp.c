/* SMTP submission through libcurl's SMTP support, and a failure as a typed
 * error (util/memds_err.h). See memds_smtp.h for the contract.
 *
 * File map: (1) argument checks, (2) the per-call state and libcurl's
 * callbacks (read: the data and the before-end hook; header: the server's
 * reply lines), (3) classifying a failed transfer, (4) memds_smtp_send,
 * (5) a failure as a typed error.
 *
 * How the phase of a failure is known: libcurl 7.88 reports a refused
 * MAIL, RCPT or DATA command as CURLE_SEND_ERROR with "MAIL failed: 550"
 * (RCPT, DATA) in the error buffer; the read callback is first called
 * after the server's 354 to DATA; the hook runs at the read that ends the
 * data; and every reply line passes the header callback, so a reply that
 * arrives after the hook is the reply to the end of data. */
#include "memds_smtp.h"
#include "backends/memds_curl.h"

#include <apr_strings.h>

#include <string.h>

/* ============================================== (1) argument checks */

/* An addr-spec we can put between angle brackets: '@' with text on both
 * sides; no control characters, blanks, '<' or '>' (which could end the
 * path and add ESMTP parameters or commands). 8-bit bytes pass (SMTPUTF8). */
static int addr_ok(const char *a)
{
    const char *at = NULL;
    apr_size_t n = 0;

    if (a == NULL || *a == '\0') {
        return 0;
    }
    for (; a[n]; n++) {
        unsigned char c = (unsigned char)a[n];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>') {
            return 0;
        }
        if (c == '@') {
            at = a + n;
        }
    }
    return n <= MEMDS_SMTP_MAX_ADDR && at != NULL && at != a && at[1] != '\0';
}

/* An EHLO name: a host name (letters, digits, '-', '.') or an address
 * literal in brackets; it becomes the URL path, so nothing else. */
static int helo_ok(const char *h)
{
    apr_size_t n = strlen(h), i;

    if (n == 0 || n > 255) {
        return 0;
    }
    if (h[0] == '[') {
        if (n < 3 || h[n - 1] != ']') {
            return 0;
        }
        for (i = 1; i < n - 1; i++) {
            char c = h[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                  || (c >= 'A' && c <= 'F') || c == '.' || c == ':')) {
                return 0;
            }
        }
        return 1;
    }
    for (i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
              || (c >= 'A' && c <= 'Z') || c == '-' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

static int mech_ok(const char *m)
{
    if (*m == '\0') {
        return 0;
    }
    for (; *m; m++) {
        if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z')
              || (*m >= '0' && *m <= '9') || *m == '-' || *m == '_')) {
            return 0;
        }
    }
    return 1;
}

/* ======================================= (2) per-call state, callbacks */

#define MAX_REPLY 300

typedef struct send_t {
    const memds_smtp_config_t *cfg;
    const memds_logger_t *log;
    /* the data */
    const char *data;
    apr_size_t len, off;
    memds_smtp_before_end_cb *hook;
    void *baton;
    /* progress */
    int reading;   /* the read callback ran: DATA got its 354 */
    int hook_done; /* the hook ran (once, whatever it returned) */
    apr_status_t hook_rv;
    int data_sent;            /* the hook returned success */
    int noauth;               /* aborted: user set, but no AUTH took place */
    int authed;               /* a 235 reply was seen */
    int finished;             /* curl_easy_perform returned: ignore replies */
    int replies_after_end;    /* final replies after the hook succeeded */
    int replies_in_data;      /* final replies while the data was being read */
    char last[MAX_REPLY + 1]; /* last final reply line (not 221) */
} send_t;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    send_t *st = userdata;
    size_t room = size * nitems, n;

    if (!st->reading) {
        st->reading = 1;
        /* libcurl skips AUTH silently when the server offers none; with
         * credentials configured that is a misconfiguration, and the
         * message must not go out unauthenticated: abort inside DATA */
        if (st->cfg->user && !st->authed) {
            st->noauth = 1;
            return CURL_READFUNC_ABORT;
        }
    }
    if (st->off < st->len) {
        n = st->len - st->off;
        if (n > room) {
            n = room;
        }
        memcpy(buf, st->data + st->off, n);
        st->off += n;
        return n;
    }
    /* End of data: everything before went to the socket already (libcurl
     * reads again only when its buffer is empty); once this returns 0,
     * libcurl sends the terminating CRLF.CRLF. The hook runs here, once. */
    if (!st->hook_done) {
        st->hook_done = 1;
        memds_logf(st->log, MEMDS_LOG_DEBUG, 0,
                   MEMDS_LOGNO(00205) "smtp: end of %" APR_SIZE_T_FMT
                                      " bytes of data%s",
                               st->len,
                               st->hook ? ", running the before-end hook" : "");
        st->hook_rv = st->hook ? st->hook(st->baton) : APR_SUCCESS;
        if (st->hook_rv != APR_SUCCESS) {
            memds_logf(
                st->log, MEMDS_LOG_DEBUG, st->hook_rv,
                MEMDS_LOGNO(00206) "smtp: the before-end hook failed: aborting the "
                           "transaction before the end of data");
            return CURL_READFUNC_ABORT;
        }
        st->data_sent = 1;
    }
    return 0;
}

/* One line of a server reply (with its CRLF): keep the final lines. */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    send_t *st = userdata;
    size_t n = size * nitems, i, k;
    char line[MAX_REPLY + 1];
    int code;

    if (st->finished || n < 4 || buf[0] < '0' || buf[0] > '9' || buf[1] < '0'
        || buf[1] > '9' || buf[2] < '0' || buf[2] > '9'
        || (buf[3] != ' ' && buf[3] != '\r' && buf[3] != '\n')) {
        /* continuation lines ("250-...") and anything after the transfer */
        return n;
    }
    code = (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0');
    for (i = 0, k = 0; i < n && k < MAX_REPLY; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r' || c == '\n') {
            break;
        }
        line[k++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    line[k] = '\0';
    if (code == 334) {
        /* an AUTH challenge: its data is of no use in a log */
        memds_logf(st->log, MEMDS_LOG_DEBUG, 0,
                   MEMDS_LOGNO(00207) "smtp: S: 334 (challenge)");
        return n;
    }
    memds_logf(st->log, MEMDS_LOG_DEBUG, 0,
               MEMDS_LOGNO(00208) "smtp: S: %s", line);
    if (code == 235) {
        st->authed = 1;
    }
    if (code == 221) {
        /* QUIT's reply: keep the one that mattered */
        return n;
    }
    memcpy(st->last, line, k + 1);
    if (st->data_sent) {
        st->replies_after_end++;
    }
    else if (st->reading) {
        st->replies_in_data++;
    }
    return n;
}

/* SMTP sends no body; should a future libcurl write anything, it must
 * not end up on stdout. */
static size_t discard_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
    return size * nitems;
}

/* ====================================== (3) classifying a failure */

/* The enhanced status code ("5.1.1") after the reply code, or NULL. */
static const char *enhanced_of(const char *reply, apr_pool_t *p)
{
    const char *s, *e;
    int dots = 0;

    if (reply == NULL || strlen(reply) < 9 || reply[3] != ' ') {
        return NULL;
    }
    s = reply + 4;
    if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') {
        return NULL;
    }
    for (e = s + 2; *e && *e != ' '; e++) {
        if (*e == '.') {
            if (e[-1] == '.') {
                return NULL;
            }
            dots++;
        }
        else if (*e < '0' || *e > '9' || e - s > 9) {
            return NULL;
        }
    }
    if (dots != 1 || e[-1] == '.') {
        return NULL;
    }
    return apr_pstrmemdup(p, s, (apr_size_t)(e - s));
}

static const char *kind_name(memds_smtp_ekind_e k)
{
    switch (k) {
    case MEMDS_SMTP_E_CONNECT: return "connection";
    case MEMDS_SMTP_E_TLS: return "TLS";
    case MEMDS_SMTP_E_AUTH: return "AUTH";
    case MEMDS_SMTP_E_SENDER: return "MAIL FROM";
    case MEMDS_SMTP_E_RCPT: return "RCPT TO";
    case MEMDS_SMTP_E_DATA: return "DATA";
    case MEMDS_SMTP_E_TIMEOUT: return "timeout";
    case MEMDS_SMTP_E_ARG: return "argument";
    case MEMDS_SMTP_E_CONFIG: return "configuration";
    case MEMDS_SMTP_E_HOOK: return "before-end hook";
    default: return "send";
    }
}

/* What a failed transfer means; see the file comment for the clues. */
static memds_smtp_ekind_e classify(const send_t *st, CURLcode rc,
                                   const char *errbuf, int code)
{
    memds_curl_class_e cls = memds_curl_class(rc);

    if (st->hook_done && st->hook_rv != APR_SUCCESS) {
        return MEMDS_SMTP_E_HOOK;
    }
    if (st->noauth) {
        return MEMDS_SMTP_E_CONFIG;
    }
    if (st->data_sent) {
        /* after the end of data: a reply to it is a refusal of the
         * message; without one the outcome is unknown */
        if (st->replies_after_end > 0 && code >= 400) {
            return MEMDS_SMTP_E_DATA;
        }
        return rc == CURLE_OPERATION_TIMEDOUT ? MEMDS_SMTP_E_TIMEOUT
                                              : MEMDS_SMTP_E_CONNECT;
    }
    switch (cls) {
    case MEMDS_CURL_TIMEOUT: return MEMDS_SMTP_E_TIMEOUT;
    case MEMDS_CURL_AUTH: return MEMDS_SMTP_E_AUTH;
    case MEMDS_CURL_CONFIG: return MEMDS_SMTP_E_CONFIG;
    case MEMDS_CURL_NOMEM: return MEMDS_SMTP_E_OTHER;
    case MEMDS_CURL_TLS: return MEMDS_SMTP_E_TLS;
    default: break;
    }
    if (st->reading) {
        /* DATA was accepted; the server cut in, or the connection broke */
        return st->replies_in_data > 0 && code >= 400 ? MEMDS_SMTP_E_DATA
                                                      : MEMDS_SMTP_E_CONNECT;
    }
    if (!strncmp(errbuf, "MAIL failed", 11)) {
        return MEMDS_SMTP_E_SENDER;
    }
    if (!strncmp(errbuf, "RCPT failed", 11)) {
        return MEMDS_SMTP_E_RCPT;
    }
    if (!strncmp(errbuf, "DATA failed", 11)) {
        return MEMDS_SMTP_E_DATA;
    }
    return cls == MEMDS_CURL_CONNECT ? MEMDS_SMTP_E_CONNECT
                                     : MEMDS_SMTP_E_OTHER;
}

static void err_clear(memds_smtp_err_t *err)
{
    memset(err, 0, sizeof(*err));
}

/* An argument or configuration error before anything was sent. */
static apr_status_t bad_arg(memds_smtp_err_t *err, memds_smtp_ekind_e kind,
                            const char *msg)
{
    err->kind = kind;
    err->permanent = kind == MEMDS_SMTP_E_ARG;
    err->msg = msg;
    return APR_EINVAL;
}

/* ============================================== (4) memds_smtp_send */

static apr_status_t smtp_send(const memds_smtp_config_t *cfg, const char *from,
                              const char *const *rcpts, int nrcpts,
                              const char *data, apr_size_t len,
                              memds_smtp_before_end_cb *hook, void *baton,
                              memds_smtp_err_t *err, apr_pool_t *p)
{
    static const char *const schemes[] = { "smtp", "smtps", NULL };
    memds_smtp_err_t err_local;
    send_t *st;
    CURL *h = NULL;
    struct curl_slist *rl = NULL, *tmp;
    CURLcode rc;
    char *errbuf;
    const char *why, *url, *mech, *detail;
    long cto, ito, ito_s, code = 0;
    int i, tls_url, noauth;
    apr_status_t rv;

    if (err == NULL) {
        err = &err_local;
    }
    err_clear(err);

    /* ---- checks: nothing leaves the process unless all of this holds */
    if (cfg == NULL) {
        return bad_arg(err, MEMDS_SMTP_E_CONFIG, "SMTP: no configuration");
    }
    if ((why = memds_check_server_url(cfg->url, schemes, p)) != NULL) {
        return bad_arg(err, MEMDS_SMTP_E_CONFIG,
                       apr_pstrcat(p, "SMTP server URL: ", why, NULL));
    }
    if (cfg->helo && !helo_ok(cfg->helo)) {
        return bad_arg(err, MEMDS_SMTP_E_CONFIG,
                       "SMTP: the EHLO name must be a host name or an "
                       "address literal");
    }
    mech = cfg->authzid ? "PLAIN" : cfg->mech;
    if (mech && !mech_ok(mech)) {
        return bad_arg(err, MEMDS_SMTP_E_CONFIG,
                       "SMTP: invalid SASL mechanism name");
    }
    if (!addr_ok(from)) {
        return bad_arg(err, MEMDS_SMTP_E_ARG,
                       "SMTP: invalid envelope sender address");
    }
    if (rcpts == NULL || nrcpts < 1) {
        return bad_arg(err, MEMDS_SMTP_E_ARG, "SMTP: no recipients");
    }
    for (i = 0; i < nrcpts; i++) {
        if (!addr_ok(rcpts[i])) {
            return bad_arg(err, MEMDS_SMTP_E_ARG,
                           apr_psprintf(p,
                                        "SMTP: invalid recipient address "
                                        "(recipient %d of %d)",
                                        i + 1, nrcpts));
        }
    }
    if (data == NULL || len == 0) {
        return bad_arg(err, MEMDS_SMTP_E_ARG, "SMTP: empty message");
    }

    st = apr_pcalloc(p, sizeof(*st));
    st->cfg = cfg;
    st->log = cfg->log;
    st->data = data;
    st->len = len;
    st->hook = hook;
    st->baton = baton;
    errbuf = apr_pcalloc(p, CURL_ERROR_SIZE);
    cto = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 30000;
    ito = cfg->io_timeout_ms > 0 ? cfg->io_timeout_ms : 120000;
    ito_s = (ito + 999) / 1000;
    tls_url = curl_strnequal(cfg->url, "smtps:", 6);

    /* libcurl takes the EHLO name from the URL path */
    url = cfg->url;
    if (url[strlen(url) - 1] == '/') {
        url = apr_pstrmemdup(p, url, strlen(url) - 1);
    }
    url = apr_pstrcat(p, url, "/", cfg->helo ? cfg->helo : "", NULL);

    /* ---- the transfer; from here on every path goes through done */
    for (i = 0; i < nrcpts; i++) {
        tmp = curl_slist_append(rl, apr_pstrcat(p, "<", rcpts[i], ">", NULL));
        if (tmp == NULL) {
            rv = APR_ENOMEM;
            err->kind = MEMDS_SMTP_E_OTHER;
            err->msg = "SMTP: out of memory";
            goto done;
        }
        rl = tmp;
    }
    if ((h = curl_easy_init()) == NULL) {
        rv = APR_ENOMEM;
        err->kind = MEMDS_SMTP_E_OTHER;
        err->msg = "SMTP: curl_easy_init failed";
        goto done;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    memds_curl_protocols(h, "smtp,smtps",
                         (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
    curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, cto);
    /* every wait for a reply, including the one after the end of data */
    curl_easy_setopt(h, CURLOPT_SERVER_RESPONSE_TIMEOUT, ito_s);
    /* a stalled upload: less than 1 byte/s over the I/O timeout. No total
     * CURLOPT_TIMEOUT: a big message on a slow link may take long. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, ito_s);
    if (!tls_url) {
        /* STARTTLS when offered; required when asked for, and whenever a
         * password would otherwise cross the network in the clear */
        curl_easy_setopt(h, CURLOPT_USE_SSL,
                         (cfg->starttls
                          || (cfg->user && !cfg->allow_plain_auth))
                             ? (long)CURLUSESSL_ALL
                             : (long)CURLUSESSL_TRY);
    }
    memds_curl_tls(h, cfg->tls_no_verify, cfg->ca_file);
    if (cfg->user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD,
                         cfg->password ? cfg->password : "");
        memds_curl_sasl(h, mech, cfg->authzid, p);
    }
    curl_easy_setopt(h, CURLOPT_MAIL_FROM,
                     apr_pstrcat(p, "<", from, ">", NULL));
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rl);
    if (cfg->allow_rcpt_fails) {
#if LIBCURL_VERSION_NUM >= 0x080200
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT_ALLOWFAILS, 1L);
#else
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT_ALLLOWFAILS, 1L);
#endif
    }
    /* no CURLOPT_INFILESIZE: see memds_smtp_send in the header */
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, st);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, st);

    memds_logf(st->log, MEMDS_LOG_DEBUG, 0,
               MEMDS_LOGNO(00209) "smtp: sending %" APR_SIZE_T_FMT
                                  " bytes from %s to %d "
                                  "recipient(s) via %s%s%s",
                           len, from, nrcpts, cfg->url, cfg->user ? " as " : "",
                           cfg->user ? cfg->user : "");
    rc = curl_easy_perform(h);
    st->finished = 1;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);

    err->curl_code = (int)rc;
    err->smtp_code = (int)code;
    err->reply = st->last[0] ? apr_pstrdup(p, st->last) : NULL;
    err->enhanced = enhanced_of(err->reply, p);
    err->data_sent = st->data_sent;
    if (rc == CURLE_OK) {
        if (!st->hook_done) {
            /* cannot happen with libcurl 7.88 (without INFILESIZE the end
             * of data is only ever signalled by our read returning 0) */
            memds_logf(
                st->log, MEMDS_LOG_WARNING, 0,
                MEMDS_LOGNO(00210) "smtp: libcurl ended "
                           "the data without the final read: the before-end "
                           "hook did not run");
        }
        err->data_sent = 1; /* accepted, so certainly sent */
        memds_logf(st->log, MEMDS_LOG_DEBUG, 0,
                   MEMDS_LOGNO(00211) "smtp: accepted (%s)",
                               err->reply ? err->reply : "no reply text");
        rv = APR_SUCCESS;
        goto done;
    }

    err->kind = classify(st, rc, errbuf, (int)code);
    err->in_doubt = st->data_sent && err->kind != MEMDS_SMTP_E_DATA;
    noauth = st->noauth;
    if (err->kind == MEMDS_SMTP_E_SENDER || err->kind == MEMDS_SMTP_E_RCPT) {
        if (cfg->user && !st->authed) {
            /* refused because libcurl skipped the login the server did
             * not offer: a configuration problem, not the message's */
            err->kind = MEMDS_SMTP_E_CONFIG;
            noauth = 1;
        }
    }
    if (err->kind == MEMDS_SMTP_E_SENDER || err->kind == MEMDS_SMTP_E_RCPT
        || err->kind == MEMDS_SMTP_E_DATA) {
        err->permanent = code >= 500 && code <= 599
                         && !(err->kind == MEMDS_SMTP_E_RCPT && code == 552);
    }
    detail = memds_scrub_secret(p, errbuf, cfg->password);
    if (err->kind == MEMDS_SMTP_E_HOOK) {
        rv = st->hook_rv;
        err->msg = apr_psprintf(p,
                                "SMTP to %s: the before-end hook failed; "
                                "the transaction was aborted before the end "
                                "of data",
                                cfg->url);
    }
    else if (noauth) {
        rv = APR_EINVAL;
        err->msg = apr_psprintf(p,
                                "SMTP to %s: credentials are configured "
                                "but the server offers no AUTH; the mail was "
                                "not sent%s%s",
                                cfg->url,
                                /* the refusal that followed, if any */
                                err->reply && !st->noauth ? "; server: " : "",
                                err->reply && !st->noauth ? err->reply : "");
    }
    else {
        rv = err->kind == MEMDS_SMTP_E_TIMEOUT  ? APR_TIMEUP
             : err->kind == MEMDS_SMTP_E_CONFIG ? APR_EINVAL
             : rc == CURLE_OUT_OF_MEMORY        ? APR_ENOMEM
                                                : APR_EGENERAL;
        err->msg = apr_psprintf(
            p,
            "SMTP %s failure sending from %s via %s: "
            "%s%s%s%s%s%s%s",
            kind_name(err->kind), from, cfg->url, memds_curl_strerror(rc),
            *detail ? " (" : "", detail, *detail ? ")" : "",
            err->reply ? "; server: " : "", err->reply ? err->reply : "",
            err->in_doubt ? "; the end of data was sent "
                            "and no reply came: the mail may have been "
                            "accepted"
                          : "");
    }
    memds_logf(st->log, MEMDS_LOG_DEBUG, rv,
               MEMDS_LOGNO(00212) "smtp: %s", err->msg);

done:
    if (h) {
        /* sends QUIT on a connection still in a clean state */
        curl_easy_cleanup(h);
    }
    curl_slist_free_all(rl);
    return rv;
}

apr_status_t memds_smtp_send(const memds_smtp_config_t *cfg, const char *from,
                             const char *const *rcpts, int nrcpts,
                             const char *data, apr_size_t len,
                             memds_smtp_before_end_cb *hook, void *baton,
                             memds_smtp_err_t *err, apr_pool_t *p)
{
    memds_smtp_err_t err_local;
    apr_time_t t0 = apr_time_now();
    apr_status_t rv;

    if (err == NULL) {
        err = &err_local;
    }
    rv = smtp_send(cfg, from, rcpts, nrcpts, data, len, hook, baton, err, p);
    /* (refused before anything left the process: not a submission) */
    if (cfg && err->kind != MEMDS_SMTP_E_ARG
        && err->kind != MEMDS_SMTP_E_CONFIG) {
        memds_stats_observe(cfg->stats, MEMDS_OP_SMTP_SEND,
                            apr_time_now() - t0, rv != APR_SUCCESS);
    }
    return rv;
}

/* ============================================== (5) typed errors */

/* "5.7.1" → 7 (the subject class), else -1. */
static int enh_subject(const memds_smtp_err_t *err)
{
    const char *e = err->enhanced;

    if (e == NULL || e[0] == '\0' || e[1] != '.' || e[2] < '0' || e[2] > '9') {
        return -1;
    }
    return e[3] == '.' ? e[2] - '0' : -1;
}

memds_err_t memds_smtp_err_of(const memds_smtp_err_t *err)
{
    int code, cls, policy;

    if (err == NULL || err->kind == MEMDS_SMTP_E_NONE) {
        return memds_err_make(MEMDS_ERR_NONE, "OK");
    }
    code = err->smtp_code;
    cls = code / 100;
    policy = enh_subject(err) == 7;
    if (err->in_doubt) {
        return memds_err_make(MEMDS_ERR_TRANSIENT,
                              "Mail server did not confirm the message");
    }
    switch (err->kind) {
    case MEMDS_SMTP_E_HOOK:
        return memds_err_make(MEMDS_ERR_STORAGE,
                              "Message not sent: server storage failure");
    case MEMDS_SMTP_E_ARG:
        return memds_err_make(MEMDS_ERR_INVALID,
                              "Invalid sender, recipient or message");
    case MEMDS_SMTP_E_CONFIG:
        return memds_err_make(MEMDS_ERR_CONFIG,
                              "Mail submission is not configured correctly");
    case MEMDS_SMTP_E_CONNECT:
        return memds_err_make(MEMDS_ERR_TRANSIENT, "Mail server not reachable");
    case MEMDS_SMTP_E_TLS:
        return memds_err_make(MEMDS_ERR_TLS,
                              "Secure connection to the mail server failed");
    case MEMDS_SMTP_E_TIMEOUT:
        return memds_err_make(MEMDS_ERR_TRANSIENT, "Mail server timed out");
    case MEMDS_SMTP_E_AUTH:
        if (cls == 4) {
            return memds_err_make(MEMDS_ERR_TRANSIENT,
                                  "Mail server login temporarily failed");
        }
        return memds_err_make(MEMDS_ERR_AUTH, "Mail server login failed");
    case MEMDS_SMTP_E_SENDER:
    case MEMDS_SMTP_E_RCPT:
    case MEMDS_SMTP_E_DATA: break;
    default:
        return memds_err_make(MEMDS_ERR_INTERNAL, "Sending the message failed");
    }
    /* a refusal of the transaction: sender, a recipient, or the message */
    if (cls == 4 || (err->kind == MEMDS_SMTP_E_RCPT && code == 552)) {
        return memds_err_make(MEMDS_ERR_TRANSIENT,
                              "Mail server temporarily refused the message");
    }
    if (code == 552 || (err->enhanced && !strcmp(err->enhanced + 1, ".3.4"))) {
        return memds_err_make(MEMDS_ERR_TOO_LARGE,
                              "Message too large for the mail server");
    }
    if (err->kind == MEMDS_SMTP_E_SENDER) {
        return memds_err_make(MEMDS_ERR_REFUSED,
                              "Sender address not accepted by the mail server");
    }
    if (err->kind == MEMDS_SMTP_E_RCPT) {
        return policy
                   ? memds_err_make(MEMDS_ERR_REFUSED,
                                    "Recipient not allowed by the mail server")
                   : memds_err_make(
                       MEMDS_ERR_INVALID,
                       "Recipient address rejected by the mail server");
    }
    return policy ? memds_err_make(MEMDS_ERR_REFUSED,
                                   "Message refused by the mail server policy")
                  : memds_err_make(MEMDS_ERR_REJECTED,
                                   "Mail server rejected the message");
}
