/* imap_check HOST PORT USER PASS MASTERUSER MASTERPASS
 *
 * Runs the IMAP client layer (backends/memds_imap_*.c) against a real Dovecot:
 * logins (password, master user by SASL authzid and by "user*master",
 * wrong password → 401), LIST with SPECIAL-USE and LIST-STATUS, CREATE,
 * APPEND with flags/date/APPENDUID, SELECT (CONDSTORE), FETCH of metadata,
 * ENVELOPE and BODYSTRUCTURE, streamed and partial BODY.PEEK fetches
 * compared byte for byte, \Seen left alone, STORE and CHANGEDSINCE,
 * UNCHANGEDSINCE conflicts, EXPUNGE and QRESYNC's VANISHED (EARLIER), UID
 * SEARCH, UID MOVE with COPYUID, error mapping, connection reuse; then it
 * deletes what it created. TAP on stdout; exit 0 when everything passed.
 * IMAP_CHECK_VERBOSE=1 prints the layer's debug lines on stderr. */
#include "../../backends/memds_imap.h"
#include "ds/memds_auth.h"
#include "ds/memds_outcome.h"

#include <apr_general.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

/* A failure's SyncML status for an item, through the one outcome map. */
static memds_outcome_t imap_outcome(const memds_imap_err_t *err)
{
    memds_err_t e = memds_imap_err_of(err);

    return memds_outcome_of(&e, MEMDS_OUTCOME_ITEM);
}

static void diag_err(const memds_imap_err_t *e)
{
    if (e->kind != MEMDS_IMAP_E_NONE) {
        printf("# error kind %d code %d: %s\n", (int)e->kind, (int)e->code,
               e->msg ? e->msg : "");
    }
}

typedef struct logcount_t {
    int commands;
    int verbose;
} logcount_t;

static void log_cb(void *baton, int level, apr_status_t rv, const char *msg)
{
    logcount_t *lc = baton;

    if (!strncmp(msg, "imap: M", 7)) {
        lc->commands++;
    }
    if (lc->verbose) {
        fprintf(stderr, "[%d] %s\n", level, msg);
    }
}

/* ---- collecting callbacks */

typedef struct collect_t {
    apr_pool_t *p;
    int fetches, vanished_earlier, vanished;
    memds_imap_set_t *vanished_uids;
    apr_uint32_t uid;
    unsigned flags, have;
    apr_uint64_t modseq, size;
    apr_time_t idate;
    const char *subject, *from_mailbox, *from_host, *from_name, *msgid;
    int nparts;
    const char *part2_type, *part2_sub, *part2_disp, *part2_enc, *part2_name;
    const char *part1_section, *part2_section, *part11_section;
    apr_uint64_t part2_size;
    apr_array_header_t *uids;
} collect_t;

static apr_status_t collect(void *baton, const memds_imap_resp_t *r)
{
    collect_t *c = baton;
    const memds_imap_fetch_t *f;

    if (r->type == MEMDS_IMAP_RESP_VANISHED) {
        if (r->earlier) {
            c->vanished_earlier++;
        }
        else {
            c->vanished++;
        }
        c->vanished_uids = apr_pmemdup(c->p, r->uids, sizeof(*r->uids));
        c->vanished_uids->ranges = apr_pmemdup(c->p, r->uids->ranges,
                                               sizeof(memds_imap_range_t)
                                                   * (apr_size_t)
                                                         r->uids->nranges);
        return APR_SUCCESS;
    }
    if (r->type != MEMDS_IMAP_RESP_FETCH) {
        return APR_SUCCESS;
    }
    f = r->fetch;
    c->fetches++;
    c->uid = f->uid;
    if (c->uids) {
        *(apr_uint32_t *)apr_array_push(c->uids) = f->uid;
    }
    c->have = f->have;
    c->flags = f->flags;
    c->modseq = f->modseq;
    c->size = f->size;
    c->idate = f->internaldate_t;
    if (f->envelope) {
        const memds_imap_envelope_t *e = f->envelope;
        c->subject = e->subject ? apr_pstrdup(c->p, e->subject) : NULL;
        c->msgid = e->message_id ? apr_pstrdup(c->p, e->message_id) : NULL;
        if (e->from && e->from->nelts > 0) {
            const memds_imap_addr_t *a = &APR_ARRAY_IDX(e->from, 0,
                                                        memds_imap_addr_t);
            c->from_name = a->name ? apr_pstrdup(c->p, a->name) : NULL;
            c->from_mailbox = a->mailbox ? apr_pstrdup(c->p, a->mailbox) : NULL;
            c->from_host = a->host ? apr_pstrdup(c->p, a->host) : NULL;
        }
    }
    if (f->body && f->body->multipart) {
        const memds_imap_body_t *b = f->body, *b1, *b2;
        c->nparts = b->parts->nelts;
        if (c->nparts >= 2) {
            b1 = APR_ARRAY_IDX(b->parts, 0, memds_imap_body_t *);
            b2 = APR_ARRAY_IDX(b->parts, 1, memds_imap_body_t *);
            c->part1_section = apr_pstrdup(c->p, b1->section);
            if (b1->multipart && b1->parts->nelts > 0) {
                c->part11_section = apr_pstrdup(
                    c->p,
                    APR_ARRAY_IDX(b1->parts, 0, memds_imap_body_t *)->section);
            }
            c->part2_section = apr_pstrdup(c->p, b2->section);
            c->part2_type = apr_pstrdup(c->p, b2->type);
            c->part2_sub = apr_pstrdup(c->p, b2->subtype);
            c->part2_enc = b2->encoding ? apr_pstrdup(c->p, b2->encoding)
                                        : NULL;
            c->part2_disp = b2->disposition ? apr_pstrdup(c->p, b2->disposition)
                                            : NULL;
            c->part2_size = b2->size;
            if (b2->params && b2->params->nelts > 0) {
                c->part2_name = apr_pstrdup(
                    c->p,
                    APR_ARRAY_IDX(b2->params, 0, memds_imap_param_t).value);
            }
        }
    }
    return APR_SUCCESS;
}

typedef struct sink_t {
    char *data;
    apr_size_t len, cap;
    int chunks;
    apr_size_t max_chunk;
    int offsets_ok;
} sink_t;

static apr_status_t sink_cb(void *baton, apr_uint64_t off, const char *d,
                            apr_size_t n)
{
    sink_t *s = baton;

    if (off != s->len) {
        s->offsets_ok = 0;
    }
    if (s->len + n > s->cap) {
        return APR_ENOSPC;
    }
    memcpy(s->data + s->len, d, n);
    s->len += n;
    s->chunks++;
    if (n > s->max_chunk) {
        s->max_chunk = n;
    }
    return APR_SUCCESS;
}

static void sink_init(sink_t *s, apr_size_t cap, apr_pool_t *p)
{
    memset(s, 0, sizeof(*s));
    s->data = apr_palloc(p, cap);
    s->cap = cap;
    s->offsets_ok = 1;
}

/* ---- the test message: multipart/mixed with a text/alternative and a
 * binary attachment (base64 of bytes that include NULs) */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *make_message(apr_pool_t *p, const char *box, apr_size_t *plen,
                          unsigned char **pbin, apr_size_t *pbinlen)
{
    apr_size_t nbin = 45000, i, o = 0, col = 0;
    unsigned char *bin = apr_palloc(p, nbin);
    char *enc = apr_palloc(p, nbin * 2 + 1000);
    apr_uint32_t seed = 12345;
    char *msg;

    for (i = 0; i < nbin; i++) {
        seed = seed * 1103515245u + 12345u;
        bin[i] = (unsigned char)(i % 97 == 0 ? 0 : (seed >> 16));
    }
    for (i = 0; i < nbin; i += 3) {
        apr_uint32_t v = (apr_uint32_t)bin[i] << 16
                         | (apr_uint32_t)(i + 1 < nbin ? bin[i + 1] : 0) << 8
                         | (i + 2 < nbin ? bin[i + 2] : 0);
        enc[o++] = b64[(v >> 18) & 63];
        enc[o++] = b64[(v >> 12) & 63];
        enc[o++] = i + 1 < nbin ? b64[(v >> 6) & 63] : '=';
        enc[o++] = i + 2 < nbin ? b64[v & 63] : '=';
        col += 4;
        if (col == 76) {
            enc[o++] = '\r';
            enc[o++] = '\n';
            col = 0;
        }
    }
    enc[o] = '\0';
    msg = apr_pstrcat(
        p,
        "From: \"Check, Robot\" <robot@example.test>\r\n"
        "To: alice@example.test\r\n"
        "Subject: memds imap_check ",
        box,
        "\r\n"
        "Message-ID: <imap-check-",
        box,
        "@example.test>\r\n"
        "Date: Mon, 02 Jan 2023 10:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
        "\r\n"
        "--outer\r\n"
        "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
        "\r\n"
        "--inner\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Hello from imap_check.\r\n"
        "--inner\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n"
        "<p>Hello from imap_check.</p>\r\n"
        "--inner--\r\n"
        "--outer\r\n"
        "Content-Type: application/octet-stream; name=\"blob.bin\"\r\n"
        "Content-Disposition: attachment; filename=\"blob.bin\"\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n",
        enc,
        "\r\n"
        "--outer--\r\n",
        NULL);
    *plen = strlen(msg);
    *pbin = bin;
    *pbinlen = nbin;
    return msg;
}

/* Dovecot's successful logins of user so far (its log, MEMDS_DOVECOT_LOG),
 * waiting up to 2 s for at least want of them (the log process writes
 * them a moment after the login). */
static int dovecot_logins(const char *path, const char *user, int want)
{
    char line[2048], pat[300];
    int i, n = -1;

    snprintf(pat, sizeof(pat), "imap-login: Info: Login: user=<%s>", user);
    for (i = 0; i < 40; ++i) {
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            return -1;
        }
        n = 0;
        while (fgets(line, sizeof(line), f)) {
            n += strstr(line, pat) != NULL;
        }
        fclose(f);
        if (n >= want) {
            break;
        }
        usleep(50000);
    }
    return n;
}

/* Is a folder of this (wire) name in a LIST answer? */
static int listed(const apr_array_header_t *boxes, const char *name)
{
    int i;

    for (i = 0; boxes && i < boxes->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(boxes, i, const memds_imap_list_t *)->name,
                   name) == 0) {
            return 1;
        }
    }
    return 0;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    memds_imap_config_t cfg;
    memds_imap_conn_t *c = NULL, *m = NULL;
    memds_imap_err_t err;
    memds_outcome_t oc;
    logcount_t lc = { 0, 0 };
    memds_logger_t lg;
    const char *url, *box, *dst, *box_utf8, *box_m7;
    apr_array_header_t *boxes;
    const memds_imap_mailbox_t *mb;
    apr_uint32_t uv = 0, uid1 = 0, uid2 = 0, uv2 = 0;
    apr_uint64_t modseq0, modseq_exp;
    char *msg, *msg2;
    apr_size_t len, len2, binlen;
    unsigned char *bin;
    collect_t col;
    sink_t sk;
    memds_imap_body_info_t bi;
    memds_imap_set_t *modified = NULL;
    memds_imap_search_t *sr = NULL;
    memds_imap_copyuid_t *cu = NULL;
    memds_imap_status_t *st = NULL;
    apr_status_t rv;
    int i, found_roles = 0, found_utf8 = 0, found_status = 0, n;

    if (argc != 7) {
        fprintf(
            stderr,
            "usage: imap_check HOST PORT USER PASS MASTERUSER MASTERPASS\n");
        return 2;
    }
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    if (memds_imap_global_init() != APR_SUCCESS) {
        fprintf(stderr, "imap_check: libcurl cannot initialise\n");
        return 2;
    }
    lc.verbose = getenv("IMAP_CHECK_VERBOSE") != NULL;
    lg.cb = log_cb;
    lg.baton = &lc;
    url = apr_psprintf(p, "imap://%s:%s", argv[1], argv[2]);
    box = apr_psprintf(p, "memds-check-%ld", (long)getpid());
    dst = apr_pstrcat(p, box, "-dst", NULL);
    box_utf8 = apr_pstrcat(p, box, "-Gr\xc3\xbc\xc3\x9f\xe2\x82\xac", NULL);
    memset(&col, 0, sizeof(col));
    col.p = p;

    /* ---- logins */
    memset(&cfg, 0, sizeof(cfg));
    cfg.url = url;
    cfg.user = argv[3];
    cfg.password = "certainly-wrong-pw";
    cfg.connect_timeout_ms = 10000;
    cfg.io_timeout_ms = 10000;
    rv = memds_imap_connect(&c, &cfg, &err, p);
    oc = imap_outcome(&err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_AUTH && oc.status == 401,
       "wrong password gives E_AUTH and SyncML 401 (%d: %s)", oc.status,
       oc.text);
    ok(err.msg && strstr(err.msg, "certainly-wrong-pw") == NULL,
       "the password is not in the error text");
    diag_err(&err);

    cfg.password = argv[4];
    cfg.log = &lg;
    rv = memds_imap_connect(&c, &cfg, &err, p);
    ok(rv == APR_SUCCESS, "login as %s", argv[3]);
    if (rv != APR_SUCCESS) {
        diag_err(&err);
        printf("1..%d\n", ntest);
        return 1;
    }
    n = (MEMDS_IMAP_CAP_CONDSTORE | MEMDS_IMAP_CAP_QRESYNC | MEMDS_IMAP_CAP_MOVE
         | MEMDS_IMAP_CAP_UIDPLUS | MEMDS_IMAP_CAP_SPECIAL_USE
         | MEMDS_IMAP_CAP_ESEARCH | MEMDS_IMAP_CAP_LIST_STATUS);
    ok((memds_imap_caps(c) & (unsigned)n) == (unsigned)n,
       "capabilities CONDSTORE QRESYNC MOVE UIDPLUS SPECIAL-USE ESEARCH "
       "LIST-STATUS");
    ok(memds_imap_has_cap(c, "IMAP4rev1") && !memds_imap_has_cap(c, "X-NOPE"),
       "has_cap by name");
    ok(memds_imap_qresync(c), "QRESYNC enabled");

    memset(&cfg, 0, sizeof(cfg));
    cfg.url = url;
    cfg.user = argv[5];
    cfg.password = argv[6];
    cfg.authzid = argv[3];
    rv = memds_imap_connect(&m, &cfg, &err, p);
    ok(rv == APR_SUCCESS, "master user %s logs in for %s (SASL PLAIN authzid)",
       argv[5], argv[3]);
    diag_err(&err);
    if (rv == APR_SUCCESS) {
        rv = memds_imap_status(m, "INBOX", NULL, &st, &err, p);
        ok(rv == APR_SUCCESS && (st->have & MEMDS_IMAP_ST_UIDVALIDITY),
           "master session sees the user's INBOX");
        memds_imap_close(m);
        m = NULL;
    }
    cfg.authzid = NULL;
    cfg.user = apr_pstrcat(p, argv[3], "*", argv[5], NULL);
    rv = memds_imap_connect(&m, &cfg, &err, p);
    ok(rv == APR_SUCCESS, "master user by Dovecot's user*master login");
    diag_err(&err);
    if (rv == APR_SUCCESS) {
        memds_imap_close(m);
        m = NULL;
    }
    cfg.user = argv[5];
    cfg.password = "wrong-master";
    cfg.authzid = argv[3];
    rv = memds_imap_connect(&m, &cfg, &err, p);
    ok(rv != APR_SUCCESS && imap_outcome(&err).status == 401
           && strstr(err.msg, "wrong-master") == NULL,
       "wrong master password gives 401 without the password in the text");

    /* forced SASL mechanisms */
    memset(&cfg, 0, sizeof(cfg));
    cfg.url = url;
    cfg.user = argv[3];
    cfg.password = argv[4];
    cfg.mech = "LOGIN";
    rv = memds_imap_connect(&m, &cfg, &err, p);
    ok(rv == APR_SUCCESS, "login with AUTH=LOGIN");
    if (rv == APR_SUCCESS) {
        memds_imap_close(m);
        m = NULL;
    }
    cfg.mech = "CRAM-MD5"; /* not offered by this server */
    rv = memds_imap_connect(&m, &cfg, &err, p);
    ok(rv != APR_SUCCESS && imap_outcome(&err).status >= 400,
       "a mechanism the server does not offer fails (%d)",
       imap_outcome(&err).status);
    diag_err(&err);
    cfg.mech = NULL;

    /* STARTTLS required: refused when the server does not offer it, and
     * when its certificate is not trusted (the stack's Dovecot offers
     * STARTTLS with a certificate of the stack's own CA, not given here) */
    cfg.starttls = 1;
    rv = memds_imap_connect(&m, &cfg, &err, p);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_TLS
           && imap_outcome(&err).status == 503,
       "STARTTLS required, not offered or not trusted: E_TLS / 503");
    diag_err(&err);
    if (getenv("MEMDS_CA_FILE")) {
        /* with the stack's CA (./dev env MEMDS_CA_FILE) it succeeds */
        cfg.ca_file = getenv("MEMDS_CA_FILE");
        rv = memds_imap_connect(&m, &cfg, &err, p);
        ok(rv == APR_SUCCESS, "STARTTLS with the stack's CA: logged in");
        diag_err(&err);
        if (rv == APR_SUCCESS) {
            memds_imap_close(m);
            m = NULL;
        }
        cfg.ca_file = NULL;
    }
    cfg.starttls = 0;

    /* nobody listening; a server that never speaks */
    {
        apr_socket_t *ls;
        apr_sockaddr_t *sa;
        apr_port_t port = 0;
        apr_time_t t0;
        cfg.url = "imap://127.0.0.1:1";
        rv = memds_imap_connect(&m, &cfg, &err, p);
        ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_CONNECT
               && imap_outcome(&err).status == 503,
           "closed port: E_CONNECT / 503");
        diag_err(&err);
        if (apr_sockaddr_info_get(&sa, "127.0.0.1", APR_INET, 0, 0, p)
                == APR_SUCCESS
            && apr_socket_create(&ls, APR_INET, SOCK_STREAM, APR_PROTO_TCP, p)
                   == APR_SUCCESS
            && apr_socket_bind(ls, sa) == APR_SUCCESS
            && apr_socket_listen(ls, 4) == APR_SUCCESS
            && apr_socket_addr_get(&sa, APR_LOCAL, ls) == APR_SUCCESS) {
            port = sa->port;
        }
        cfg.url = apr_psprintf(p, "imap://127.0.0.1:%u", (unsigned)port);
        cfg.connect_timeout_ms = 500;
        cfg.io_timeout_ms = 500;
        t0 = apr_time_now();
        rv = memds_imap_connect(&m, &cfg, &err, p);
        ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_TIMEOUT
               && imap_outcome(&err).status == 503
               && apr_time_now() - t0 < apr_time_from_sec(5),
           "silent server: E_TIMEOUT / 503 within the timeouts");
        diag_err(&err);
        cfg.url = url;
    }

    /* ---- folders */
    rv = memds_imap_create(c, box, &err);
    ok(rv == APR_SUCCESS, "CREATE %s", box);
    diag_err(&err);
    rv = memds_imap_create(c, dst, &err);
    ok(rv == APR_SUCCESS, "CREATE %s", dst);
    rv = memds_imap_create(c, box, &err);
    oc = imap_outcome(&err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_NO && oc.status == 418,
       "CREATE of an existing mailbox maps to 418 (%d)", oc.status);
    rv = memds_imap_mutf7_encode(&box_m7, box_utf8, p);
    ok(rv == APR_SUCCESS && strchr(box_m7, '&') != NULL,
       "UTF-8 name encodes to modified UTF-7 (%s)", box_m7);
    rv = memds_imap_create(c, box_m7, &err);
    ok(rv == APR_SUCCESS, "CREATE the modified UTF-7 name");

    rv = memds_imap_list(c, "MESSAGES UIDVALIDITY UIDNEXT HIGHESTMODSEQ",
                         &boxes, &err, p);
    ok(rv == APR_SUCCESS && boxes->nelts >= 6,
       "LIST RETURN (SPECIAL-USE STATUS) "
       "lists %d mailboxes",
       rv == APR_SUCCESS ? boxes->nelts : -1);
    for (i = 0; rv == APR_SUCCESS && i < boxes->nelts; i++) {
        const memds_imap_list_t *l = APR_ARRAY_IDX(boxes, i,
                                                   memds_imap_list_t *);
        if (l->role == MEMDS_IMAP_ROLE_DRAFTS || l->role == MEMDS_IMAP_ROLE_SENT
            || l->role == MEMDS_IMAP_ROLE_TRASH) {
            found_roles |= 1 << l->role;
        }
        if (l->name_utf8 && !strcmp(l->name_utf8, box_utf8)
            && !strcmp(l->name, box_m7)) {
            found_utf8 = 1;
        }
        /* (a \NoSelect or \NonExistent one has no status, RFC 5819:
         * e.g. the parent of a nested folder another test made) */
        if ((l->attrs & (MEMDS_IMAP_MBX_NOSELECT | MEMDS_IMAP_MBX_NONEXISTENT))
            || (l->status && (l->status->have & MEMDS_IMAP_ST_UIDVALIDITY)
                && (l->status->have & MEMDS_IMAP_ST_HIGHESTMODSEQ))) {
            found_status++;
        }
    }
    ok(found_roles
           == ((1 << MEMDS_IMAP_ROLE_DRAFTS) | (1 << MEMDS_IMAP_ROLE_SENT)
               | (1 << MEMDS_IMAP_ROLE_TRASH)),
       "SPECIAL-USE roles Drafts, Sent and Trash found");
    ok(found_utf8, "the UTF-8 mailbox name decodes back from LIST");
    ok(rv == APR_SUCCESS && found_status == boxes->nelts,
       "every mailbox has its status through LIST-STATUS");
    {
        /* memds_imap_list_recent: the last plain LIST again while it is
         * young; a folder another connection made shows in a new LIST; one
         * made through this connection at once */
        memds_imap_config_t c2cfg;
        memds_imap_conn_t *c2 = NULL;
        apr_array_header_t *r1 = NULL, *r2 = NULL, *r3 = NULL, *r4 = NULL;
        const char *other = apr_pstrcat(p, box, "-other", NULL);
        const char *mine = apr_pstrcat(p, box, "-mine", NULL);
        memset(&c2cfg, 0, sizeof(c2cfg));
        c2cfg.url = url;
        c2cfg.user = argv[3];
        c2cfg.password = argv[4];
        c2cfg.io_timeout_ms = 10000;
        rv = memds_imap_list_recent(c, apr_time_from_sec(60), &r1, &err, p);
        ok(rv == APR_SUCCESS && r1->nelts == boxes->nelts
               && listed(r1, box_m7) && !listed(r1, other),
           "LIST (recent): the folders");
        rv = memds_imap_connect(&c2, &c2cfg, &err, p);
        if (rv == APR_SUCCESS) {
            rv = memds_imap_create(c2, other, &err);
            memds_imap_close(c2);
        }
        ok(rv == APR_SUCCESS, "another connection makes %s", other);
        rv = memds_imap_list_recent(c, apr_time_from_sec(60), &r2, &err, p);
        ok(rv == APR_SUCCESS && r2 != r1 && r2->nelts == r1->nelts
               && !listed(r2, other),
           "LIST (recent) again: the kept answer, a copy");
        rv = memds_imap_list_recent(c, 0, &r3, &err, p);
        ok(rv == APR_SUCCESS && listed(r3, other),
           "LIST (recent, max age 0): a new LIST has it");
        rv = memds_imap_create(c, mine, &err);
        if (rv == APR_SUCCESS) {
            rv = memds_imap_list_recent(c, apr_time_from_sec(60), &r4, &err,
                                        p);
        }
        ok(rv == APR_SUCCESS && listed(r4, mine) && listed(r4, other),
           "a CREATE through the connection: the next LIST (recent) is new");
        memds_imap_delete(c, other, &err);
        memds_imap_delete(c, mine, &err);
    }

    /* ---- append */
    msg = make_message(p, box, &len, &bin, &binlen);
    msg2 = apr_psprintf(
        p,
        "From: robot@example.test\r\nSubject: second\r\n"
        "Message-ID: <imap-check-2-%s@example.test>\r\n\r\nbye\r\n",
        box);
    len2 = strlen(msg2);
    rv = memds_imap_append(c, box, "$Check", apr_time_from_sec(1672650000), msg,
                           len, &uv, &uid1, &err);
    ok(rv == APR_SUCCESS && uv != 0 && uid1 != 0,
       "APPEND %lu bytes: APPENDUID %u %u", (unsigned long)len, (unsigned)uv,
       (unsigned)uid1);
    diag_err(&err);
    rv = memds_imap_append(c, box, NULL, 0, msg2, len2, NULL, &uid2, &err);
    ok(rv == APR_SUCCESS && uid2 == uid1 + 1, "APPEND a second message: UID %u",
       (unsigned)uid2);

    /* ---- select, fetch metadata */
    rv = memds_imap_select(c, box, MEMDS_IMAP_SEL_CONDSTORE, NULL, NULL, NULL,
                           &mb, &err);
    ok(rv == APR_SUCCESS && mb->exists == 2 && mb->uidvalidity == uv
           && mb->highestmodseq > 0 && !mb->readonly && mb->uidnext == uid2 + 1,
       "SELECT (CONDSTORE): EXISTS 2, UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT");
    diag_err(&err);
    n = lc.commands;
    rv = memds_imap_select(c, box, 0, NULL, NULL, NULL, &mb, &err);
    ok(rv == APR_SUCCESS && lc.commands == n,
       "the same SELECT again sends nothing");

    rv = memds_imap_uid_fetch(
        c, apr_psprintf(p, "%u", (unsigned)uid1),
        "UID FLAGS MODSEQ RFC822.SIZE INTERNALDATE ENVELOPE "
        "BODYSTRUCTURE",
        0, 0, collect, &col, &err);
    ok(rv == APR_SUCCESS && col.fetches == 1 && col.uid == uid1,
       "UID FETCH metadata");
    diag_err(&err);
    ok(col.size == len, "RFC822.SIZE is the appended length (%lu)",
       (unsigned long)col.size);
    ok(col.idate == apr_time_from_sec(1672650000), "INTERNALDATE as appended");
    ok(col.modseq > 0 && (col.have & MEMDS_IMAP_F_MODSEQ), "MODSEQ present");
    ok(!(col.flags & MEMDS_IMAP_FL_SEEN), "no \\Seen after APPEND");
    ok(col.subject
           && !strcmp(col.subject,
                      apr_pstrcat(p, "memds imap_check ", box, NULL)),
       "ENVELOPE subject");
    ok(col.from_name && !strcmp(col.from_name, "Check, Robot")
           && col.from_mailbox && !strcmp(col.from_mailbox, "robot")
           && col.from_host && !strcmp(col.from_host, "example.test"),
       "ENVELOPE from address");
    ok(col.msgid && strstr(col.msgid, "imap-check-"), "ENVELOPE message-id");
    ok(col.nparts == 2 && col.part1_section && !strcmp(col.part1_section, "1")
           && col.part11_section && !strcmp(col.part11_section, "1.1")
           && col.part2_section && !strcmp(col.part2_section, "2"),
       "BODYSTRUCTURE: multipart with sections 1, 1.1, 2");
    ok(col.part2_type && !strcasecmp(col.part2_type, "application")
           && !strcasecmp(col.part2_sub, "octet-stream") && col.part2_disp
           && !strcasecmp(col.part2_disp, "attachment") && col.part2_enc
           && !strcasecmp(col.part2_enc, "base64") && col.part2_name
           && !strcmp(col.part2_name, "blob.bin") && col.part2_size > binlen,
       "BODYSTRUCTURE: attachment type, disposition, "
       "encoding, name, size");

    /* ---- body, streamed and partial */
    sink_init(&sk, len + 16, p);
    rv = memds_imap_fetch_body(c, uid1, "", 0, 0, 0, sink_cb, &sk, &bi, &err);
    ok(rv == APR_SUCCESS && sk.len == len && memcmp(sk.data, msg, len) == 0
           && bi.len == len && sk.offsets_ok,
       "BODY.PEEK[] streamed in %d chunks (largest %lu) is byte-exact",
       sk.chunks, (unsigned long)sk.max_chunk);
    diag_err(&err);
    ok(sk.chunks > 1 && sk.max_chunk < len,
       "the body arrived in several chunks");
    {
        apr_size_t off = 0;
        int parts = 0, good = 1;
        sink_init(&sk, len + 16, p);
        while (off < len && good) {
            apr_size_t before = sk.len;
            sk.offsets_ok = 1;
            rv = memds_imap_fetch_body(c, uid1, "", off, 1000, 0,
                                       (memds_imap_chunk_cb *)sink_cb, &sk, &bi,
                                       &err);
            good = rv == APR_SUCCESS && sk.len > before;
            off = sk.len;
            parts++;
        }
        ok(good && sk.len == len && memcmp(sk.data, msg, len) == 0,
           "BODY.PEEK[]<n.1000> in %d partial fetches is byte-exact", parts);
        sink_init(&sk, len + 16, p);
        rv = memds_imap_fetch_body(c, uid1, "", len - 10, 0, 0, sink_cb, &sk,
                                   &bi, &err);
        ok(rv == APR_SUCCESS && sk.len == 10
               && !memcmp(sk.data, msg + len - 10, 10),
           "BODY.PEEK[]<origin> to the end gives the last bytes");
    }
    sink_init(&sk, binlen + 16, p);
    rv = memds_imap_fetch_body(c, uid1, "2", 0, 0, MEMDS_IMAP_BODY_BINARY,
                               sink_cb, &sk, &bi, &err);
    ok(rv == APR_SUCCESS && sk.len == binlen
           && memcmp(sk.data, bin, binlen) == 0,
       "BINARY.PEEK[2] gives the attachment's decoded bytes (with NULs)");
    diag_err(&err);
    sink_init(&sk, 4096, p);
    rv = memds_imap_fetch_body(c, uid1, "1.1", 0, 0, 0, sink_cb, &sk, &bi,
                               &err);
    /* a part's body ends before the CRLF that precedes the boundary */
    ok(rv == APR_SUCCESS && sk.len == 22
           && !memcmp(sk.data, "Hello from imap_check.", 22),
       "BODY.PEEK[1.1] text part");
    sink_init(&sk, 4096, p);
    rv = memds_imap_fetch_body(c, uid1, "HEADER.FIELDS (Subject)", 0, 0, 0,
                               sink_cb, &sk, &bi, &err);
    ok(rv == APR_SUCCESS && sk.len > 9 && !memcmp(sk.data, "Subject: ", 9),
       "BODY.PEEK[HEADER.FIELDS (Subject)]");
    rv = memds_imap_fetch_body(c, uid2 + 100, "", 0, 0, 0, sink_cb, &sk, &bi,
                               &err);
    oc = imap_outcome(&err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_NOTFOUND
           && oc.status == 404,
       "fetching a missing UID gives E_NOTFOUND / 404");
    rv = memds_imap_uid_fetch(c, "1:*", "(UID BODY[])", 0, 0, collect, &col,
                              &err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_ARG,
       "a FETCH item that sets \\Seen is refused");

    memset(&col, 0, sizeof(col));
    col.p = p;
    rv = memds_imap_uid_fetch(c, "1:*", "(UID FLAGS MODSEQ)", 0, 0, collect,
                              &col, &err);
    ok(rv == APR_SUCCESS && col.fetches == 2
           && !(col.flags & MEMDS_IMAP_FL_SEEN),
       "\\Seen is still not set after the body fetches");
    rv = memds_imap_uid_fetch(c, apr_psprintf(p, "%u", (unsigned)uid1),
                              "(UID FLAGS MODSEQ)", 0, 0, collect, &col, &err);
    ok(rv == APR_SUCCESS && !(col.flags & MEMDS_IMAP_FL_SEEN),
       "message 1 has no \\Seen");
    modseq0 = mb->highestmodseq > col.modseq ? mb->highestmodseq : col.modseq;

    /* ---- store and changes */
    memset(&col, 0, sizeof(col));
    col.p = p;
    rv = memds_imap_uid_store(c, apr_psprintf(p, "%u", (unsigned)uid1), '+',
                              "\\Flagged", 0, 0, collect, &col, &modified, &err,
                              p);
    ok(rv == APR_SUCCESS && col.fetches == 1
           && (col.flags & MEMDS_IMAP_FL_FLAGGED) && col.modseq > modseq0
           && modified == NULL,
       "UID STORE +FLAGS (\\Flagged) reports the new flags and MODSEQ");
    memset(&col, 0, sizeof(col));
    col.p = p;
    rv = memds_imap_uid_fetch(c, "1:*", "(UID FLAGS)", modseq0,
                              MEMDS_IMAP_FETCH_VANISHED, collect, &col, &err);
    ok(rv == APR_SUCCESS && col.fetches == 1 && col.uid == uid1
           && (col.flags & MEMDS_IMAP_FL_FLAGGED) && col.vanished_earlier == 0,
       "UID FETCH (CHANGEDSINCE) shows only the changed message");
    diag_err(&err);
    rv = memds_imap_uid_store(c, apr_psprintf(p, "%u", (unsigned)uid1), '-',
                              "\\Flagged", 1, modseq0, NULL, NULL, &modified,
                              &err, p);
    ok(rv == APR_SUCCESS && modified && memds_imap_set_contains(modified, uid1),
       "UID STORE (UNCHANGEDSINCE old) reports [MODIFIED]");

    /* ---- expunge, QRESYNC */
    rv = memds_imap_uid_store(c, apr_psprintf(p, "%u", (unsigned)uid2), '+',
                              "\\Deleted", 1, 0, NULL, NULL, NULL, &err, p);
    ok(rv == APR_SUCCESS, "UID STORE +FLAGS.SILENT (\\Deleted)");
    modseq_exp = memds_imap_selected(c)->highestmodseq;
    memset(&col, 0, sizeof(col));
    col.p = p;
    rv = memds_imap_uid_expunge(c, apr_psprintf(p, "%u", (unsigned)uid2),
                                collect, &col, &err);
    ok(rv == APR_SUCCESS && col.vanished == 1
           && memds_imap_set_contains(col.vanished_uids, uid2)
           && memds_imap_selected(c)->exists == 1,
       "UID EXPUNGE reports VANISHED and EXISTS drops to 1");
    rv = memds_imap_select(c, "INBOX", 0, NULL, NULL, NULL, &mb, &err);
    ok(rv == APR_SUCCESS && !strcmp(memds_imap_selected(c)->name, "INBOX"),
       "SELECT INBOX");
    {
        memds_imap_qresync_t qr;
        qr.uidvalidity = uv;
        qr.modseq = modseq_exp;
        qr.known_uids = apr_psprintf(p, "%u:%u", (unsigned)uid1,
                                     (unsigned)uid2);
        memset(&col, 0, sizeof(col));
        col.p = p;
        rv = memds_imap_select(c, box, 0, &qr, collect, &col, &mb, &err);
        ok(rv == APR_SUCCESS && col.vanished_earlier == 1
               && memds_imap_set_contains(col.vanished_uids, uid2)
               && !memds_imap_set_contains(col.vanished_uids, uid1)
               && mb->exists == 1,
           "SELECT (QRESYNC) reports VANISHED (EARLIER) for the expunged UID");
        diag_err(&err);
    }
    rv = memds_imap_uid_search(c, "ALL", &sr, &err, p);
    ok(rv == APR_SUCCESS && sr->count == 1
           && memds_imap_set_contains(sr->all, uid1),
       "UID SEARCH ALL finds the remaining message");
    rv = memds_imap_uid_search(c, "UID 100000:200000", &sr, &err, p);
    ok(rv == APR_SUCCESS && sr->count == 0 && sr->all->nranges == 0,
       "UID SEARCH with no match");

    /* ---- errors */
    rv = memds_imap_uid_copy(c, apr_psprintf(p, "%u", (unsigned)uid1),
                             "memds-no-such-box", NULL, &err, p);
    oc = imap_outcome(&err);
    ok(rv != APR_SUCCESS && err.code == MEMDS_IMAP_CODE_TRYCREATE
           && oc.status == 404,
       "COPY to a missing mailbox: TRYCREATE → 404");
    rv = memds_imap_status(c, "memds-no-such-box", NULL, &st, &err, p);
    oc = imap_outcome(&err);
    ok(rv != APR_SUCCESS && oc.status == 404,
       "STATUS of a missing mailbox → 404");
    rv = memds_imap_run(c, "FROBNICATE", NULL, NULL, NULL, &err);
    oc = imap_outcome(&err);
    ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_BAD && oc.status == 500,
       "an unknown command: BAD → 500");
    rv = memds_imap_noop(c, NULL, NULL, &err);
    ok(rv == APR_SUCCESS, "the connection still works after errors (NOOP)");

    /* ---- move */
    rv = memds_imap_select(c, box, 0, NULL, NULL, NULL, &mb, &err);
    ok(rv == APR_SUCCESS && !strcmp(mb->name, box),
       "the test mailbox is selected");
    memset(&col, 0, sizeof(col));
    col.p = p;
    rv = memds_imap_uid_move(c, apr_psprintf(p, "%u", (unsigned)uid1), dst,
                             collect, &col, &cu, &err, p);
    ok(rv == APR_SUCCESS && cu && cu->uidvalidity != 0
           && memds_imap_copyuid_map(cu, uid1) != 0 && col.vanished == 1,
       "UID MOVE: COPYUID %u %u→%u and VANISHED",
       cu ? (unsigned)cu->uidvalidity : 0, (unsigned)uid1,
       cu ? (unsigned)memds_imap_copyuid_map(cu, uid1) : 0);
    diag_err(&err);
    rv = memds_imap_status(c, dst, "MESSAGES UIDVALIDITY", &st, &err, p);
    ok(rv == APR_SUCCESS && st->messages == 1 && cu
           && st->uidvalidity == cu->uidvalidity,
       "STATUS of the destination: 1 message, UIDVALIDITY as in COPYUID");
    uv2 = st ? st->uidvalidity : 0;
    rv = memds_imap_select(c, dst, MEMDS_IMAP_SEL_READONLY, NULL, NULL, NULL,
                           &mb, &err);
    ok(rv == APR_SUCCESS && mb->readonly && mb->uidvalidity == uv2,
       "EXAMINE the destination (read-only)");
    sink_init(&sk, len + 16, p);
    rv = memds_imap_fetch_body(c, cu ? memds_imap_copyuid_map(cu, uid1) : 1, "",
                               0, 0, 0, sink_cb, &sk, &bi, &err);
    ok(rv == APR_SUCCESS && sk.len == len && !memcmp(sk.data, msg, len),
       "the moved message is byte-exact at its new UID");

    /* ---- a message larger than the response cap still streams */
    {
        memds_imap_conn_t *small = NULL;
        apr_size_t blen = 3 * 1024 * 1024, k;
        char *big = apr_palloc(p, blen);
        apr_uint32_t buid = 0;
        int hdr = apr_snprintf(big, blen,
                               "From: robot@example.test\r\n"
                               "Subject: big\r\n\r\n");
        for (k = (apr_size_t)hdr; k < blen; k++) {
            big[k] = (k % 78 == 76)   ? '\r'
                     : (k % 78 == 77) ? '\n'
                                      : (char)('a' + k % 26);
        }
        memset(&cfg, 0, sizeof(cfg));
        cfg.url = url;
        cfg.user = argv[3];
        cfg.password = argv[4];
        cfg.max_response = 256 * 1024;
        rv = memds_imap_connect(&small, &cfg, &err, p);
        if (rv == APR_SUCCESS) {
            rv = memds_imap_append(small, box, NULL, 0, big, blen, NULL, &buid,
                                   &err);
        }
        if (rv == APR_SUCCESS) {
            rv = memds_imap_select(small, box, 0, NULL, NULL, NULL, NULL, &err);
        }
        sink_init(&sk, blen + 16, p);
        if (rv == APR_SUCCESS) {
            rv = memds_imap_fetch_body(small, buid, "", 0, 0, 0, sink_cb, &sk,
                                       &bi, &err);
        }
        ok(rv == APR_SUCCESS && sk.len == blen && !memcmp(sk.data, big, blen),
           "a 3 MB message streams byte-exact through a 256 KB response cap "
           "(%d chunks)",
           sk.chunks);
        diag_err(&err);
        if (small) {
            rv = memds_imap_uid_fetch(small,
                                      apr_psprintf(p, "%u", (unsigned)buid),
                                      "(UID BODY.PEEK[])", 0, 0, NULL, NULL,
                                      &err);
            ok(rv != APR_SUCCESS && err.kind == MEMDS_IMAP_E_LIMIT
                   && imap_outcome(&err).status == 413,
               "held in memory instead, it exceeds the cap: E_LIMIT / 413");
            memds_imap_close(small);
        }
        /* clean up with the main connection */
        rv = memds_imap_select(c, box, 0, NULL, NULL, NULL, NULL, &err);
        if (rv == APR_SUCCESS) {
            rv = memds_imap_uid_store(c, apr_psprintf(p, "%u", (unsigned)buid),
                                      '+', "\\Deleted", 1, 0, NULL, NULL, NULL,
                                      &err, p);
        }
        if (rv == APR_SUCCESS) {
            rv = memds_imap_uid_expunge(c,
                                        apr_psprintf(p, "%u", (unsigned)buid),
                                        NULL, NULL, &err);
        }
        ok(rv == APR_SUCCESS, "the big message is expunged again");
    }

    /* ---- the pass-through check's login, left for the mailbox */
    if (getenv("MEMDS_DOVECOT_LOG")) {
        const char *dlog = getenv("MEMDS_DOVECOT_LOG");
        memds_imap_cache_t *kc = NULL;
        memds_imap_lease_t *lease = NULL;
        memds_imap_conn_t *kept = NULL;
        memds_imap_config_t cc;
        memds_verifier_t v;
        int n0, n1;

        ok(memds_imap_cache_create(&kc, 4, 60, 500, p) == APR_SUCCESS,
           "a connection cache");
        memds_verifier_imap(&v, url, NULL); /* (no remembered logins) */
        memds_verifier_imap_share(&v, kc, NULL);
        n0 = dovecot_logins(dlog, argv[3], 0);
        n1 = v.check_password(&v, argv[3], argv[4], p) == APR_SUCCESS
                 ? dovecot_logins(dlog, argv[3], n0 + 1)
                 : -1;
        ok(n0 >= 0 && n1 == n0 + 1, "the check logs in once (%d -> %d)", n0,
           n1);
        memset(&cc, 0, sizeof(cc));
        cc.url = url;
        cc.user = argv[3];
        cc.password = argv[4];
        rv = memds_imap_cache_get(kc, &lease, &kept, &cc, &err);
        ok(rv == APR_SUCCESS, "the mailbox takes the check's connection");
        memds_imap_cache_put(kc, lease);
        usleep(300000);
        ok(dovecot_logins(dlog, argv[3], 0) == n1,
           "... without a login of its own");
        /* a kept connection proves nothing about the password now (it may
         * have changed on the server): every check is a new login */
        n0 = v.check_password(&v, argv[3], argv[4], p) == APR_SUCCESS
                 ? dovecot_logins(dlog, argv[3], n1 + 1)
                 : -1;
        ok(n0 == n1 + 1,
           "a second check logs in again though a connection is kept "
           "(%d -> %d)",
           n1, n0);
        ok(v.check_password(&v, argv[3], "certainly-wrong-pw", p)
               == APR_EACCES,
           "a wrong password is refused");
    }

    /* ---- cleanup */
    rv = memds_imap_unselect(c, &err);
    ok(rv == APR_SUCCESS && memds_imap_selected(c) == NULL, "UNSELECT");
    rv = memds_imap_rename(c, box_m7, apr_pstrcat(p, box, "-renamed", NULL),
                           &err);
    ok(rv == APR_SUCCESS, "RENAME");
    n = memds_imap_delete(c, box, &err) == APR_SUCCESS;
    n += memds_imap_delete(c, dst, &err) == APR_SUCCESS;
    n += memds_imap_delete(c, apr_pstrcat(p, box, "-renamed", NULL), &err)
         == APR_SUCCESS;
    ok(n == 3, "DELETE the test mailboxes");
    rv = memds_imap_delete(c, box, &err);
    ok(rv != APR_SUCCESS && imap_outcome(&err).status == 404,
       "DELETE of a missing mailbox → 404");
    memds_imap_close(c);

    printf("1..%d\n", ntest);
    memds_imap_global_cleanup();
    apr_pool_destroy(p);
    apr_terminate();
    return nfail == 0 ? 0 : 1;
}
