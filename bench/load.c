/* bench/loadgen (source bench/load.c): a SyncML load generator for
 * mod_memds. N simulated devices, each running a loop of sessions at once
 * over libcurl's multi interface (one easy handle per device, one HTTP
 * message in flight per device), speaking SyncML 1.2 XML as the recorded
 * sessions of the real client do (tests/corpus/items/xml-basic-twoway-*,
 * tests/corpus/mail/xml-basic-raw-email-inbox-twoway-*): package 1 with
 * credentials, the DevInf Put of the first session and the Alert with the
 * device's Last/Next anchors; package 3 with the statuses and the device's
 * changes; package 5 with the statuses and the Map of the server's Adds.
 * Device ids, session ids and anchors are the device's own.
 *
 * Two kinds of device, alternating by index (--mail-devices-ratio), over
 * the accounts of --users in turn:
 *   items  the items datastore (--items-url, e.g. /items): devices 2k and
 *          2k+1 are two devices of one user sharing the datastore
 *          "load-<run>-<k>", so that what one changes is what the server
 *          sends to the other; each Adds, Replaces and Deletes a few of its
 *          own items per session (never the other's: no conflicts);
 *   mail   an account's Inbox (--mail-url, e.g. /sync): sets the read flag
 *          of a mail, deletes one now and then (each device only touches
 *          the mails whose Message-ID hashes to it, so two devices of an
 *          account never race on one mail), and sometimes sends a mail to
 *          the next account through the Outbox datastore in the same
 *          session (the server must answer 201 and delete the Outbox item;
 *          a Delete that only comes in a later session is counted apart).
 * A change the server did not acknowledge (a failed session) is sent again
 * in the next session; an Add the server sends again (no Map reached it)
 * updates the item the device already has.
 *
 * Phases: for --duration seconds every device runs sessions (a pause of
 * --think ms between sessions, --msg-think ms between the messages of a
 * session, each ±50 %); then, after --settle seconds, one pull session per
 * device (two-way, no local changes); then the check: an items device
 * runs a refresh-from-server session (Alert 205) and compares what the
 * server sends with its own view (same multiset of item data); a mail
 * device writes its view (account, Message-ID, read flag) and the number
 * of mails it sent to --dump for the driver (bench/load, bench/soak) to
 * compare with the IMAP mailboxes.
 *
 * A message whose connection broke (send or receive error, nothing
 * received) is sent again on a new connection, at most twice, as
 * SyncEvolution does; counted apart (messages_resent), not an error.
 * Errors counted: transport failures and HTTP statuses other than 200,
 * unparsable answers, SyncML statuses >= 300 to the device's commands (and
 * 202 for a mail send), an unexpected sync mode, a missing Outbox delete,
 * and convergence failures. Output: "key value" lines on stdout (counts,
 * sessions/s, messages/s, latency percentiles per HTTP message), the first
 * errors on stderr.
 *
 * usage: loadgen --items-url URL --mail-url URL [--devices 200]
 *        [--duration 60] [--think 1000] [--msg-think 200] [--settle 5]
 *        [--users alice:alice-secret,bob:bob-secret,...] [--dump FILE]
 *        [--run TAG] [--p-flag 30] [--p-delete 5] [--p-send 5]
 *        [--mail-devices-ratio 50] [--trace N (messages of devices < N to stderr)]
 *        [--pending-ok (a 202 to a mail send is counted apart, not an error)] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strcasestr */
#endif
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_ERRORS_SHOWN 15 /* of each class */

/* ------------------------------------------------------------ buffers */
typedef struct buf_t {
    char *s;
    size_t n, cap;
} buf_t;

static void die_oom(void)
{
    fputs("loadgen: out of memory\n", stderr);
    exit(2);
}

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n + 1) {
            c *= 2;
        }
        b->s = realloc(b->s, c);
        if (b->s == NULL) {
            die_oom();
        }
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void buf_str(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_fmt(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_fmt(buf_t *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof tmp) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    {
        char *big = malloc((size_t)n + 1);
        if (big == NULL) {
            die_oom();
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        buf_add(b, big, (size_t)n);
        free(big);
    }
}

/* XML text: & < > escaped, CR as a character reference (as the real
 * client writes it). */
static void buf_esc(buf_t *b, const char *s)
{
    for (; *s; ++s) {
        switch (*s) {
        case '&': buf_str(b, "&amp;"); break;
        case '<': buf_str(b, "&lt;"); break;
        case '>': buf_str(b, "&gt;"); break;
        case '\r': buf_str(b, "&#13;"); break;
        default: buf_add(b, s, 1);
        }
    }
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (d == NULL) {
        die_oom();
    }
    return d;
}

/* ------------------------------------------------------------ misc */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint32_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (uint32_t)(x >> 11);
}

static int chance(uint64_t *s, int percent)
{
    return (int)(rnd(s) % 100) < percent;
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; ++s) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

/* ------------------------------------------------------------ model */
/* dirty: a change of the device the server has not acknowledged yet
 * ('A' Add, 'R' Replace), sent again in the next session as a real client
 * does after a failed one; Outbox items stay until the server deletes them
 * (acked: the server answered 201). */
typedef struct item_t {
    char *luid, *data, *msgid, *guid;
    int own, read, version, dirty, acked;
} item_t;

typedef struct items_t {
    item_t *v;
    size_t n, cap;
} items_t;

static item_t *items_push(items_t *a)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (a->v == NULL) {
            die_oom();
        }
    }
    memset(&a->v[a->n], 0, sizeof a->v[0]);
    return &a->v[a->n++];
}

static void item_free(item_t *it)
{
    free(it->luid);
    free(it->data);
    free(it->msgid);
    free(it->guid);
}

static void items_clear(items_t *a)
{
    size_t i;
    for (i = 0; i < a->n; ++i) {
        item_free(&a->v[i]);
    }
    a->n = 0;
}

static item_t *items_find(items_t *a, const char *luid)
{
    size_t i;
    for (i = 0; i < a->n; ++i) {
        if (strcmp(a->v[i].luid, luid) == 0) {
            return &a->v[i];
        }
    }
    return NULL;
}

static item_t *items_find_guid(items_t *a, const char *guid)
{
    size_t i;
    for (i = 0; i < a->n; ++i) {
        if (a->v[i].guid && strcmp(a->v[i].guid, guid) == 0) {
            return &a->v[i];
        }
    }
    return NULL;
}

static void items_remove(items_t *a, const char *luid)
{
    size_t i;
    for (i = 0; i < a->n; ++i) {
        if (strcmp(a->v[i].luid, luid) == 0) {
            item_free(&a->v[i]);
            a->v[i] = a->v[--a->n];
            return;
        }
    }
}

/* A command the device sent in this session: what it expects back. */
typedef struct sent_t {
    int msg, cmd, store;
    char what[12];
    char luid[48];
} sent_t;

typedef struct map_t {
    char guid[96], luid[48];
} map_t;

enum { K_ITEMS, K_MAIL };
enum { D_WAIT, D_BUSY, D_DONE };
enum { PH_ALERT = 1, PH_SYNC, PH_MAP };
enum { M_RUN, M_PULL, M_CHECK };

typedef struct store_t {
    const char *source, *type;
    char target[64];
    char last[48], next[48], srv_next[96];
    int started;        /* has completed a session (else slow sync) */
    int alert;          /* this session's alert code */
    int active;
    items_t items;
    unsigned seq;
    /* per session */
    map_t *maps;
    size_t nmaps, capmaps;
    items_t check;      /* M_CHECK: what the server sent */
    char **pdel;        /* Deletes not acknowledged yet */
    size_t npdel, cappdel;
} store_t;

typedef struct ctx_t ctx_t;

typedef struct device_t {
    ctx_t *cx;
    int idx, kind, acct, acct_k, acct_n;
    const char *user, *pass;
    char devid[96], base[512], url[512];
    store_t st[2];
    int nst;
    int state, phase, mode, pending_mode;
    int sid, msg, cmdid, devinf_sent;
    double wake, session_t0;
    uint64_t rng;
    CURL *h;
    buf_t req, resp, statuses;
    sent_t *sent;
    size_t nsent, capsent;
    unsigned outseq;
    int session_failed;
    int resends; /* of the message in flight, after transport failures */
} device_t;

struct ctx_t {
    const char *items_url, *mail_url, *dump, *run;
    char (*users)[2][64];   /* accounts: login, password */
    int nusers;
    int ndev, duration, think, msg_think, settle;
    int p_flag, p_delete, p_send, mail_ratio, trace;
    CURLM *multi;
    struct curl_slist *hdrs;
    device_t *dev;
    double t0, t_end;
    /* stats */
    double *lat[2];         /* per HTTP message, by kind of device */
    double *lat_at[2];      /* when each answer came, seconds after t0 */
    size_t nlat[2], caplat[2];
    long sessions, messages, errors, errors_http, errors_syncml,
        errors_parse, errors_converge, errors_protocol;
    long sessions_items, sessions_mail, mail_sends, item_changes,
        mail_changes, server_changes;
    long conc_samples, outbox_late, errors_of_kind[2];
    long resent; /* messages sent again after a transport failure */
    long send_pending;      /* 202 to a mail send under --pending-ok */
    int pending_ok;
    double conc_sum;
    int conc_max;
    double run_secs;
};

static void error_(device_t *d, long *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void error_(device_t *d, long *kind, const char *fmt, ...)
{
    va_list ap;
    ctx_t *cx = d->cx;

    cx->errors++;
    cx->errors_of_kind[d->kind]++;
    d->session_failed = 1;
    if ((*kind)++ < MAX_ERRORS_SHOWN) {
        fprintf(stderr, "error: %s (session %d msg %d): ", d->devid, d->sid, d->msg);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
}

/* ------------------------------------------------------------ XML reading */
static int is(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNode *kid(const xmlNode *n, const char *name)
{
    xmlNode *c;
    if (n == NULL) {
        return NULL;
    }
    for (c = n->children; c; c = c->next) {
        if (is(c, name)) {
            return c;
        }
    }
    return NULL;
}

/* The text of n (a copy, "" when absent). */
static char *text(const xmlNode *n)
{
    xmlChar *t;
    char *s;
    if (n == NULL) {
        return xstrdup("");
    }
    t = xmlNodeGetContent(n);
    s = xstrdup((const char *)t);
    xmlFree(t);
    return s;
}

static int num(const xmlNode *n)
{
    char *t = text(n);
    int v = atoi(t);
    free(t);
    return v;
}

static char *path_text(const xmlNode *n, const char *a, const char *b, const char *c)
{
    const xmlNode *x = kid(n, a);
    if (b) {
        x = kid(x, b);
    }
    if (c) {
        x = kid(x, c);
    }
    return text(x);
}

/* ------------------------------------------------------------ messages */
static void msg_begin(device_t *d, buf_t *b)
{
    d->msg++;
    d->cmdid = 0;
    b->n = 0;
    buf_fmt(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SyncML xmlns='SYNCML:SYNCML1.2'>"
               "<SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>"
               "<SessionID>%d</SessionID><MsgID>%d</MsgID><Target><LocURI>",
            d->sid, d->msg);
    buf_esc(b, d->url);
    buf_fmt(b, "</LocURI></Target><Source><LocURI>%s</LocURI><LocName>%s</LocName></Source>",
            d->devid, d->user);
    if (d->msg == 1) {
        /* basic credentials in the first message, as the recorded client */
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char raw[160], enc[220];
        size_t n, i, o = 0;
        snprintf(raw, sizeof raw, "%s:%s", d->user, d->pass);
        n = strlen(raw);
        for (i = 0; i < n; i += 3) {
            unsigned v = (unsigned char)raw[i] << 16;
            if (i + 1 < n) v |= (unsigned char)raw[i + 1] << 8;
            if (i + 2 < n) v |= (unsigned char)raw[i + 2];
            enc[o++] = b64[(v >> 18) & 63];
            enc[o++] = b64[(v >> 12) & 63];
            enc[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
            enc[o++] = i + 2 < n ? b64[v & 63] : '=';
        }
        enc[o] = '\0';
        buf_fmt(b, "<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>"
                   "<Type xmlns='syncml:metinf'>syncml:auth-basic</Type></Meta>"
                   "<Data>%s</Data></Cred>", enc);
    }
    buf_str(b, "<Meta><MaxMsgSize xmlns='syncml:metinf'>150000</MaxMsgSize>"
               "<MaxObjSize xmlns='syncml:metinf'>4000000</MaxObjSize></Meta>"
               "</SyncHdr><SyncBody>");
}

static int next_cmd(device_t *d)
{
    return ++d->cmdid;
}

static void remember(device_t *d, int store, const char *what, const char *luid)
{
    sent_t *s;
    if (d->nsent == d->capsent) {
        d->capsent = d->capsent ? 2 * d->capsent : 32;
        d->sent = realloc(d->sent, d->capsent * sizeof *d->sent);
        if (d->sent == NULL) {
            die_oom();
        }
    }
    s = &d->sent[d->nsent++];
    s->msg = d->msg;
    s->cmd = d->cmdid;
    s->store = store;
    snprintf(s->what, sizeof s->what, "%s", what);
    snprintf(s->luid, sizeof s->luid, "%s", luid ? luid : "");
}

/* The DevInf of the recorded client (SyncEvolution 2.0.0), with this
 * device's id and datastores. */
static void put_devinf(device_t *d, buf_t *b)
{
    int i;
    next_cmd(d);
    remember(d, -1, "Put", NULL);
    buf_fmt(b, "<Put><CmdID>%d</CmdID><Meta><Type xmlns='syncml:metinf'>"
               "application/vnd.syncml-devinf+xml</Type></Meta><Item><Source><LocURI>"
               "./devinf12</LocURI></Source><Data><DevInf xmlns='syncml:devinf'>"
               "<VerDTD>1.2</VerDTD><Man>Patrick Ohly</Man><Mod>SyncEvolution</Mod>"
               "<OEM>Synthesis AG</OEM><FwV>2.0.0</FwV><SwV>3.4.0.47</SwV>"
               "<HwV>unknown</HwV><DevID>%s</DevID><DevTyp>workstation</DevTyp><UTC/>"
               "<SupportNumberOfChanges/><SupportLargeObjs/>", d->cmdid, d->devid);
    for (i = 0; i < d->nst; ++i) {
        const store_t *s = &d->st[i];
        const char *ver = strcmp(s->type, "text/plain") == 0 ? "1.0" : "1.2";
        buf_fmt(b, "<DataStore><SourceRef>%s</SourceRef><DisplayName>%s</DisplayName>"
                   "<MaxGUIDSize>64</MaxGUIDSize><Rx-Pref><CTType>%s</CTType><VerCT>%s"
                   "</VerCT></Rx-Pref><Tx-Pref><CTType>%s</CTType><VerCT>%s</VerCT>"
                   "</Tx-Pref><SyncCap><SyncType>1</SyncType><SyncType>2</SyncType>"
                   "<SyncType>3</SyncType><SyncType>4</SyncType><SyncType>5</SyncType>"
                   "<SyncType>6</SyncType><SyncType>7</SyncType></SyncCap></DataStore>",
                s->source, s->source + 2, s->type, ver, s->type, ver);
    }
    buf_str(b, "</DevInf></Data></Item></Put>");
}

static void anchor_now(device_t *d, char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    char ts[32];
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, n, "%s-%d", ts, d->sid);
}

static void put_alert(device_t *d, buf_t *b, int si, int code)
{
    store_t *s = &d->st[si];
    next_cmd(d);
    remember(d, si, "Alert", NULL);
    anchor_now(d, s->next, sizeof s->next);
    s->alert = code;
    buf_fmt(b, "<Alert><CmdID>%d</CmdID><Data>%d</Data><Item><Target><LocURI>%s</LocURI>"
               "</Target><Source><LocURI>%s</LocURI></Source><Meta><Anchor "
               "xmlns='syncml:metinf'>", d->cmdid, code, s->target, s->source);
    if (s->started) {
        buf_fmt(b, "<Last>%s</Last>", s->last);
    }
    buf_fmt(b, "<Next>%s</Next></Anchor><MaxObjSize xmlns='syncml:metinf'>4000000"
               "</MaxObjSize></Meta></Item></Alert>", s->next);
}

static void put_item_cmd(device_t *d, buf_t *b, int si, const char *op, const item_t *it)
{
    store_t *s = &d->st[si];
    next_cmd(d);
    remember(d, si, op, it->luid);
    buf_fmt(b, "<%s><CmdID>%d</CmdID><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta>"
               "<Item><Source><LocURI>%s</LocURI></Source>", op, d->cmdid, s->type, it->luid);
    if (strcmp(op, "Delete") != 0) {
        buf_str(b, "<Data>");
        buf_esc(b, it->data);
        buf_str(b, "</Data>");
    }
    buf_fmt(b, "</Item></%s>", op);
}

/* ------------------------------------------------------------ device changes */
static void memo_text(device_t *d, item_t *it)
{
    char t[256];
    free(it->data);
    snprintf(t, sizeof t, "Load memo %s/%s version %d\nWritten by the load generator "
                          "on device %d, <&> included.\n", d->devid, it->luid,
             it->version, d->idx);
    it->data = xstrdup(t);
}

static item_t *pick_own(device_t *d, store_t *s, int want_unread)
{
    size_t i, n = s->items.n, start;
    if (n == 0) {
        return NULL;
    }
    start = rnd(&d->rng) % n;
    for (i = 0; i < n; ++i) {
        item_t *it = &s->items.v[(start + i) % n];
        if (it->dirty) {
            continue;
        }
        if (d->kind == K_ITEMS ? it->own
                               : (it->msgid && fnv1a(it->msgid) % (uint32_t)d->acct_n
                                                   == (uint32_t)d->acct_k
                                  && (!want_unread || !it->read))) {
            return it;
        }
    }
    return NULL;
}

static size_t count_own(store_t *s)
{
    size_t i, n = 0;
    for (i = 0; i < s->items.n; ++i) {
        n += s->items.v[i].own;
    }
    return n;
}

static void set_read(item_t *it)
{
    char *p = strstr(it->data, "<read>false</read>");
    if (p) {
        memcpy(p, "<read>true</read> ", 18);
        /* keep the text well-formed: "<read>true</read> " has the same length */
    }
    it->read = 1;
}

static void pdel_push(store_t *s, const char *luid)
{
    if (s->npdel == s->cappdel) {
        s->cappdel = s->cappdel ? 2 * s->cappdel : 8;
        s->pdel = realloc(s->pdel, s->cappdel * sizeof *s->pdel);
        if (s->pdel == NULL) {
            die_oom();
        }
    }
    s->pdel[s->npdel++] = xstrdup(luid);
}

static void pdel_drop(store_t *s, const char *luid)
{
    size_t i;
    for (i = 0; i < s->npdel; ++i) {
        if (strcmp(s->pdel[i], luid) == 0) {
            free(s->pdel[i]);
            s->pdel[i] = s->pdel[--s->npdel];
            return;
        }
    }
}

static void delete_own(device_t *d, buf_t *b, int si, item_t *it)
{
    store_t *s = &d->st[si];
    char l[48];
    snprintf(l, sizeof l, "%s", it->luid);
    put_item_cmd(d, b, si, "Delete", it);
    items_remove(&s->items, l);
    pdel_push(s, l);
}

/* The device's Sync for store si: what the server has not acknowledged
 * yet, then (in M_RUN) this session's new changes. */
static void put_sync(device_t *d, buf_t *b, int si)
{
    store_t *s = &d->st[si];
    ctx_t *cx = d->cx;
    int changes = d->mode == M_RUN && s->alert == 200;
    size_t k;
    item_t *it;

    next_cmd(d);
    remember(d, si, "Sync", NULL);
    buf_fmt(b, "<Sync><CmdID>%d</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
               "<LocURI>%s</LocURI></Source>", d->cmdid, s->target, s->source);
    if (d->mode != M_CHECK) {
        for (k = 0; k < s->items.n; ++k) {
            it = &s->items.v[k];
            if (it->dirty) {
                put_item_cmd(d, b, si, it->dirty == 'A' ? "Add" : "Replace", it);
            }
        }
        for (k = 0; k < s->npdel; ++k) {
            item_t tmp;
            memset(&tmp, 0, sizeof tmp);
            tmp.luid = s->pdel[k];
            put_item_cmd(d, b, si, "Delete", &tmp);
        }
    }
    if (d->kind == K_ITEMS && changes) {
        size_t own = count_own(s);
        int adds = own < 3 ? 2 : chance(&d->rng, 50);
        int i;
        for (i = 0; i < adds; ++i) {
            char l[32];
            it = items_push(&s->items);
            snprintf(l, sizeof l, "%u", ++s->seq);
            it->luid = xstrdup(l);
            it->own = 1;
            it->dirty = 'A';
            memo_text(d, it);
            put_item_cmd(d, b, si, "Add", it);
            cx->item_changes++;
        }
        if (own >= 3 && chance(&d->rng, 50) && (it = pick_own(d, s, 0)) != NULL) {
            it->version++;
            it->dirty = 'R';
            memo_text(d, it);
            put_item_cmd(d, b, si, "Replace", it);
            cx->item_changes++;
        }
        if (own > 4 && chance(&d->rng, 25) && (it = pick_own(d, s, 0)) != NULL) {
            delete_own(d, b, si, it);
            cx->item_changes++;
        }
    } else if (d->kind == K_MAIL && si == 0 && changes) {
        if (chance(&d->rng, cx->p_flag) && (it = pick_own(d, s, 1)) != NULL) {
            set_read(it);
            it->dirty = 'R';
            put_item_cmd(d, b, si, "Replace", it);
            cx->mail_changes++;
        }
        if (chance(&d->rng, cx->p_delete) && (it = pick_own(d, s, 0)) != NULL) {
            delete_own(d, b, si, it);
            cx->mail_changes++;
        }
    } else if (d->kind == K_MAIL && si == 1 && d->mode == M_RUN && s->active == 2) {
        /* a mail to the other account through the Outbox */
        buf_t m = {0}, r = {0};
        const char *me = cx->users[d->acct][0];
        const char *other = cx->users[(d->acct + 1) % cx->nusers][0];
        char l[48];
        snprintf(l, sizeof l, "o%u", ++d->outseq);
        buf_fmt(&r, "From: %s <%s@example.test>\r\nTo: %s <%s@example.test>\r\n"
                    "Subject: load %s %s %s\r\nMessage-ID: <load-out-%s-%s-%s@example.test>\r\n"
                    "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
                    "Sent by the load generator's device %s.\r\n",
                me, me, other, other, cx->run, d->devid, l, cx->run, d->devid, l, d->devid);
        buf_str(&m, "<Email><read>true</read><emailitem>");
        buf_esc(&m, r.s);
        buf_str(&m, "</emailitem></Email>");
        it = items_push(&s->items);
        it->luid = xstrdup(l);
        it->data = m.s;
        it->dirty = 'A';
        put_item_cmd(d, b, si, "Add", it);
        free(r.s);
        cx->mail_sends++;
    }
    buf_str(b, "</Sync>");
}

static void put_maps(device_t *d, buf_t *b)
{
    int si;
    size_t i;
    for (si = 0; si < d->nst; ++si) {
        store_t *s = &d->st[si];
        if (!s->active || s->nmaps == 0) {
            continue;
        }
        next_cmd(d);
        remember(d, si, "Map", NULL);
        buf_fmt(b, "<Map><CmdID>%d</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
                   "<LocURI>%s</LocURI></Source>", d->cmdid, s->target, s->source);
        for (i = 0; i < s->nmaps; ++i) {
            buf_str(b, "<MapItem><Target><LocURI>");
            buf_esc(b, s->maps[i].guid);
            buf_fmt(b, "</LocURI></Target><Source><LocURI>%s</LocURI></Source></MapItem>",
                    s->maps[i].luid);
        }
        buf_str(b, "</Map>");
        s->nmaps = 0;
    }
}

/* ------------------------------------------------------------ answers */
static void add_map(store_t *s, const char *guid, const char *luid)
{
    if (s->nmaps == s->capmaps) {
        s->capmaps = s->capmaps ? 2 * s->capmaps : 16;
        s->maps = realloc(s->maps, s->capmaps * sizeof *s->maps);
        if (s->maps == NULL) {
            die_oom();
        }
    }
    snprintf(s->maps[s->nmaps].guid, sizeof s->maps[0].guid, "%s", guid);
    snprintf(s->maps[s->nmaps].luid, sizeof s->maps[0].luid, "%s", luid);
    s->nmaps++;
}

static void status_to(device_t *d, int msgref, int cmdref, const char *cmd,
                      const char *tref, const char *sref, int code, const char *anchor)
{
    buf_t *b = &d->statuses;
    buf_fmt(b, "<Status><CmdID>@@</CmdID><MsgRef>%d</MsgRef><CmdRef>%d</CmdRef><Cmd>%s</Cmd>",
            msgref, cmdref, cmd);
    if (tref && *tref) {
        buf_str(b, "<TargetRef>");
        buf_esc(b, tref);
        buf_str(b, "</TargetRef>");
    }
    if (sref && *sref) {
        buf_str(b, "<SourceRef>");
        buf_esc(b, sref);
        buf_str(b, "</SourceRef>");
    }
    buf_fmt(b, "<Data>%d</Data>", code);
    if (anchor) {
        buf_fmt(b, "<Item><Data><Anchor xmlns='syncml:metinf'><Next>%s</Next></Anchor>"
                   "</Data></Item>", anchor);
    }
    buf_str(b, "</Status>");
}

static char *msgid_of(const char *data)
{
    const char *p = strcasestr(data, "Message-ID:");
    const char *e;
    buf_t b = {0};
    if (p == NULL) {
        return NULL;
    }
    p += 11;
    while (*p == ' ' || *p == '\t') {
        ++p;
    }
    e = p;
    while (*e && *e != '\r' && *e != '\n' && strncmp(e, "&#13;", 5) != 0) {
        ++e;
    }
    for (; p < e; ++p) {
        if (strncmp(p, "&lt;", 4) == 0) {
            p += 3;
        } else if (strncmp(p, "&gt;", 4) == 0) {
            p += 3;
        } else if (*p != '<' && *p != '>' && *p != ' ') {
            buf_add(&b, p, 1);
        }
    }
    return b.s ? b.s : xstrdup("");
}

static void set_mail_fields(item_t *it)
{
    free(it->msgid);
    it->msgid = msgid_of(it->data);
    it->read = strstr(it->data, "<read>true</read>") != NULL;
}

static store_t *store_named(device_t *d, const char *target_or_source)
{
    int i;
    for (i = 0; i < d->nst; ++i) {
        if (strcmp(d->st[i].source, target_or_source) == 0
            || strcmp(d->st[i].target, target_or_source) == 0) {
            return &d->st[i];
        }
    }
    return NULL;
}

static void server_op(device_t *d, store_t *s, int msgref, const xmlNode *op)
{
    const char *name = (const char *)op->name;
    int cmdref = num(kid(op, "CmdID"));
    const xmlNode *c;
    int code = 200;
    int is_add = strcmp(name, "Add") == 0, is_rep = strcmp(name, "Replace") == 0;

    for (c = op->children; c; c = c->next) {
        char *src, *tgt, *data;
        if (!is(c, "Item")) {
            continue;
        }
        src = path_text(c, "Source", "LocURI", NULL);
        tgt = path_text(c, "Target", "LocURI", NULL);
        data = path_text(c, "Data", NULL, NULL);
        d->cx->server_changes++;
        if (d->mode == M_CHECK && is_add) {
            item_t *it = items_push(&s->check);
            char l[32];
            snprintf(l, sizeof l, "c%u", ++s->seq);
            it->luid = xstrdup(l);
            it->data = xstrdup(data);
            add_map(s, src, l);
            code = 201;
        } else if (is_add) {
            /* an Add the device already got in a session that failed
             * before its Map: the same item again, not a second one */
            item_t *it = items_find_guid(&s->items, src);
            if (it == NULL) {
                char l[32];
                it = items_push(&s->items);
                snprintf(l, sizeof l, "%u", ++s->seq);
                it->luid = xstrdup(l);
                it->guid = xstrdup(src);
            }
            free(it->data);
            it->data = xstrdup(data);
            if (d->kind == K_MAIL) {
                set_mail_fields(it);
            }
            add_map(s, src, it->luid);
            code = 201;
        } else if (is_rep) {
            item_t *it = items_find(&s->items, tgt);
            if (it == NULL) {
                error_(d, &d->cx->errors_protocol, "server Replace of unknown item %s", tgt);
                code = 404;
            } else {
                free(it->data);
                it->data = xstrdup(data);
                if (d->kind == K_MAIL) {
                    set_mail_fields(it);
                }
                code = 200;
            }
        } else if (strcmp(name, "Delete") == 0) {
            if (items_find(&s->items, tgt) == NULL) {
                /* a soft delete of an item that already left: fine */
                code = 211;
            } else {
                items_remove(&s->items, tgt);
                code = 200;
            }
        } else {
            code = 406;
        }
        status_to(d, msgref, cmdref, name, tgt, src, code, NULL);
        free(src);
        free(tgt);
        free(data);
    }
}

static int ok_status(const sent_t *s, int code)
{
    if (strcmp(s->what, "Add") == 0 && s->store == 1) {
        return code == 201 || code == 200;      /* a mail send; 202 = not sent */
    }
    return code >= 200 && code < 300;
}

static void check_status(device_t *d, const xmlNode *st)
{
    int msgref = num(kid(st, "MsgRef")), cmdref = num(kid(st, "CmdRef"));
    int code = num(kid(st, "Data"));
    char *cmd = text(kid(st, "Cmd"));
    size_t i;

    if (cmdref == 0) {
        if (code != 200 && code != 212) {
            error_(d, &d->cx->errors_syncml, "SyncHdr status %d", code);
        }
        free(cmd);
        return;
    }
    for (i = 0; i < d->nsent; ++i) {
        sent_t *s = &d->sent[i];
        if (s->msg != msgref || s->cmd != cmdref) {
            continue;
        }
        if (code == 202 && d->cx->pending_ok && strcmp(s->what, "Add") == 0 && s->store == 1) {
            /* --pending-ok: not sent yet (e.g. the MTA is down), which a
             * real client takes as a success of its session; sent again */
            d->cx->send_pending++;
        } else if (!ok_status(s, code)) {
            error_(d, &d->cx->errors_syncml, "status %d to %s %s of store %s", code,
                   s->what, s->luid, s->store >= 0 ? d->st[s->store].target : "-");
        } else if (s->store >= 0 && s->luid[0]) {
            store_t *ss = &d->st[s->store];
            item_t *it = items_find(&ss->items, s->luid);
            if (strcmp(s->what, "Delete") == 0) {
                pdel_drop(ss, s->luid);
            } else if (it) {
                it->dirty = 0;
                it->acked = 1;
            }
        }
        free(cmd);
        return;
    }
    free(cmd);
}

/* Reads one answer; fills d->statuses with the device's statuses for it.
 * Returns 1 when the answer ends the server's package (Final), 0 when
 * not, -1 on a failure. */
static int read_answer(device_t *d)
{
    xmlDoc *doc;
    xmlNode *root, *hdr, *body, *c;
    int msgref, final = 0;
    char *respuri;

    doc = xmlReadMemory(d->resp.s, (int)d->resp.n, "answer.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING
                            | XML_PARSE_HUGE);
    root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!is(root, "SyncML") || (hdr = kid(root, "SyncHdr")) == NULL
        || (body = kid(root, "SyncBody")) == NULL) {
        error_(d, &d->cx->errors_parse, "unparsable answer (%zu bytes)", d->resp.n);
        xmlFreeDoc(doc);
        return -1;
    }
    msgref = num(kid(hdr, "MsgID"));
    respuri = text(kid(hdr, "RespURI"));
    if (*respuri) {
        snprintf(d->url, sizeof d->url, "%s", respuri);
    }
    free(respuri);
    d->statuses.n = 0;
    {
        char *tgt = path_text(hdr, "Target", "LocURI", NULL);
        char *src = path_text(hdr, "Source", "LocURI", NULL);
        status_to(d, msgref, 0, "SyncHdr", tgt, src, 200, NULL);
        free(tgt);
        free(src);
    }
    for (c = body->children; c; c = c->next) {
        if (is(c, "Final")) {
            final = 1;
        } else if (is(c, "Status")) {
            check_status(d, c);
        } else if (is(c, "Alert")) {
            int code = num(kid(c, "Data"));
            xmlNode *item = kid(c, "Item");
            char *tgt = path_text(item, "Target", "LocURI", NULL);
            char *src = path_text(item, "Source", "LocURI", NULL);
            char *next = path_text(kid(item, "Meta"), "Anchor", "Next", NULL);
            store_t *s = store_named(d, tgt);
            if (s == NULL) {
                error_(d, &d->cx->errors_protocol, "Alert %d for unknown store %s", code, tgt);
            } else {
                snprintf(s->srv_next, sizeof s->srv_next, "%s", next);
                if (code != s->alert && !(code == 200 && s->alert == 200)) {
                    error_(d, &d->cx->errors_protocol, "server alerted %d for %s, device %d",
                           code, s->target, s->alert);
                }
            }
            status_to(d, msgref, num(kid(c, "CmdID")), "Alert", tgt, src, 200, next);
            free(tgt);
            free(src);
            free(next);
        } else if (is(c, "Sync")) {
            char *tgt = path_text(c, "Target", "LocURI", NULL);
            char *src = path_text(c, "Source", "LocURI", NULL);
            store_t *s = store_named(d, tgt);
            xmlNode *op;
            status_to(d, msgref, num(kid(c, "CmdID")), "Sync", tgt, src, s ? 200 : 404, NULL);
            if (s) {
                for (op = c->children; op; op = op->next) {
                    if (is(op, "Add") || is(op, "Replace") || is(op, "Delete")) {
                        server_op(d, s, msgref, op);
                    }
                }
            } else {
                error_(d, &d->cx->errors_protocol, "Sync for unknown store %s", tgt);
            }
            free(tgt);
            free(src);
        } else if (is(c, "Results") || is(c, "Put") || is(c, "Get")) {
            status_to(d, msgref, num(kid(c, "CmdID")), (const char *)c->name, NULL, NULL,
                      200, NULL);
        }
    }
    xmlFreeDoc(doc);
    return final;
}

/* ------------------------------------------------------------ sessions */
static void send_msg(device_t *d);

static void finish_statuses(device_t *d, buf_t *b)
{
    /* number the statuses now that the message's CmdIDs are known */
    const char *p = d->statuses.s ? d->statuses.s : "";
    const char *q;
    while ((q = strstr(p, "@@")) != NULL) {
        buf_add(b, p, (size_t)(q - p));
        buf_fmt(b, "%d", next_cmd(d));
        p = q + 2;
    }
    buf_str(b, p);
}

static void start_session(device_t *d)
{
    ctx_t *cx = d->cx;
    buf_t *b = &d->req;
    int i;

    d->sid++;
    d->msg = 0;
    d->nsent = 0;
    d->session_failed = 0;
    d->mode = d->pending_mode;
    snprintf(d->url, sizeof d->url, "%s", d->base);
    d->session_t0 = now_s();
    d->st[0].active = 1;
    /* the Outbox: 2 = a new mail to send this session, 1 = items of
     * earlier sends still there (not acknowledged, or not deleted yet) */
    d->st[1].active = d->kind != K_MAIL || d->mode == M_CHECK ? 0
                      : d->mode == M_RUN && chance(&d->rng, cx->p_send) ? 2
                      : d->st[1].items.n > 0;
    for (i = 0; i < d->nst; ++i) {
        d->st[i].nmaps = 0;
        items_clear(&d->st[i].check);
    }
    msg_begin(d, b);
    if (!d->devinf_sent) {
        put_devinf(d, b);
    }
    for (i = 0; i < d->nst; ++i) {
        if (d->st[i].active) {
            put_alert(d, b, i, d->mode == M_CHECK ? 205 : d->st[i].started ? 200 : 201);
        }
    }
    buf_str(b, "<Final/></SyncBody></SyncML>");
    d->phase = PH_ALERT;
    send_msg(d);
}

static void compare_check(device_t *d, store_t *s)
{
    size_t i, j, n = s->items.n;
    char *used;
    if (s->check.n != n) {
        error_(d, &d->cx->errors_converge, "store %s: device has %zu items, server %zu",
               s->target, n, s->check.n);
        return;
    }
    used = calloc(n + 1, 1);
    if (used == NULL) {
        die_oom();
    }
    for (i = 0; i < n; ++i) {
        for (j = 0; j < n; ++j) {
            if (!used[j] && strcmp(s->items.v[i].data, s->check.v[j].data) == 0) {
                used[j] = 1;
                break;
            }
        }
        if (j == n) {
            error_(d, &d->cx->errors_converge, "store %s: item %s not on the server as the "
                   "device has it", s->target, s->items.v[i].luid);
            break;
        }
    }
    free(used);
}

static void end_session(device_t *d)
{
    ctx_t *cx = d->cx;
    int i;
    double t = now_s();

    cx->sessions++;
    if (d->kind == K_ITEMS) {
        cx->sessions_items++;
    } else {
        cx->sessions_mail++;
    }
    d->devinf_sent = 1;
    for (i = 0; i < d->nst; ++i) {
        store_t *s = &d->st[i];
        if (!s->active) {
            continue;
        }
        if (i == 1 && !d->session_failed) {
            /* README: the device gets the Delete of a sent Outbox item in
             * the same session; counted when it comes later (not an
             * error), an error when it never comes (checked at the end) */
            size_t k;
            for (k = 0; k < s->items.n; ++k) {
                /* (version: an Outbox item's "counted late" mark) */
                if (s->items.v[k].acked && !s->items.v[k].version) {
                    s->items.v[k].version = 1;
                    cx->outbox_late++;
                }
            }
        }
        if (!d->session_failed) {
            snprintf(s->last, sizeof s->last, "%s", s->next);
            s->started = 1;
        }
        if (d->mode == M_CHECK) {
            compare_check(d, s);
        }
    }
    d->phase = 0;
    if (d->mode == M_PULL && d->kind == K_ITEMS) {
        d->pending_mode = M_CHECK;      /* then the refresh-from-server check */
    }
    if (d->mode != M_RUN) {
        d->state = D_DONE;
        return;
    }
    d->state = D_WAIT;
    d->wake = t + (cx->think * (0.5 + (rnd(&d->rng) % 1000) / 1000.0)) / 1000.0;
    if (t >= cx->t_end) {
        d->state = D_DONE;
    }
}

static void next_msg(device_t *d, int final)
{
    buf_t *b = &d->req;
    int i;

    msg_begin(d, b);
    finish_statuses(d, b);
    if (!final) {
        /* the server's package goes on: ask for its next message */
        for (i = 0; i < d->nst; ++i) {
            if (d->st[i].active) {
                next_cmd(d);
                buf_fmt(b, "<Alert><CmdID>%d</CmdID><Data>222</Data><Item><Target><LocURI>"
                           "%s</LocURI></Target><Source><LocURI>%s</LocURI></Source></Item>"
                           "</Alert>", d->cmdid, d->st[i].target, d->st[i].source);
                break;
            }
        }
    } else if (d->phase == PH_ALERT) {
        for (i = 0; i < d->nst; ++i) {
            if (d->st[i].active) {
                put_sync(d, b, i);
            }
        }
        d->phase = PH_SYNC;
    } else {
        put_maps(d, b);
        d->phase = PH_MAP;
    }
    buf_str(b, "<Final/></SyncBody></SyncML>");
    send_msg(d);
}

/* ------------------------------------------------------------ HTTP */
static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    buf_add((buf_t *)ud, p, sz * n);
    return sz * n;
}

/* Hands the device's message to the multi handle. */
static void post_now(device_t *d)
{
    d->resp.n = 0;
    curl_easy_setopt(d->h, CURLOPT_URL, d->url);
    curl_easy_setopt(d->h, CURLOPT_POSTFIELDS, d->req.s);
    curl_easy_setopt(d->h, CURLOPT_POSTFIELDSIZE, (long)d->req.n);
    d->state = D_BUSY;
    curl_multi_add_handle(d->cx->multi, d->h);
}

static void send_msg(device_t *d)
{
    ctx_t *cx = d->cx;
    double delay = d->msg > 1 ? cx->msg_think * (0.5 + (rnd(&d->rng) % 1000) / 1000.0) : 0;
    if (delay > 0) {
        /* the device's own time between messages: sent when it is due */
        d->state = D_WAIT;
        d->wake = now_s() + delay / 1000.0;
        return;
    }
    post_now(d);
}

static void push_latency(ctx_t *cx, int kind, double s)
{
    if (cx->nlat[kind] == cx->caplat[kind]) {
        cx->caplat[kind] = cx->caplat[kind] ? 2 * cx->caplat[kind] : 4096;
        cx->lat[kind] = realloc(cx->lat[kind], cx->caplat[kind] * sizeof *cx->lat[kind]);
        cx->lat_at[kind] = realloc(cx->lat_at[kind],
                                   cx->caplat[kind] * sizeof *cx->lat_at[kind]);
        if (cx->lat[kind] == NULL || cx->lat_at[kind] == NULL) {
            die_oom();
        }
    }
    cx->lat_at[kind][cx->nlat[kind]] = now_s() - cx->t0;
    cx->lat[kind][cx->nlat[kind]++] = s;
}

/* Times a message is sent again after its connection broke. */
#define MAX_RESENDS 2

static void on_done(device_t *d, CURLcode rc)
{
    ctx_t *cx = d->cx;
    long code = 0;
    curl_off_t us = 0;
    int final;

    curl_multi_remove_handle(cx->multi, d->h);
    curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(d->h, CURLINFO_TOTAL_TIME_T, &us);
    cx->messages++;
    push_latency(cx, d->kind, (double)us / 1e6);
    if ((rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR
         || rc == CURLE_GOT_NOTHING)
        && d->resends < MAX_RESENDS) {
        /* The connection broke under the message (httpd closed a kept-alive
         * connection as a child retired, say): like SyncEvolution, send
         * the same message again on a new connection; the server answers
         * a message it already took with the answer it gave. */
        d->resends++;
        cx->resent++;
        curl_easy_setopt(d->h, CURLOPT_FRESH_CONNECT, 1L);
        post_now(d);
        return;
    }
    if (d->resends) {
        d->resends = 0;
        curl_easy_setopt(d->h, CURLOPT_FRESH_CONNECT, 0L);
    }
    if (rc != CURLE_OK || code != 200) {
        if (rc != CURLE_OK) {
            error_(d, &cx->errors_http, "transport: %s", curl_easy_strerror(rc));
        } else {
            error_(d, &cx->errors_http, "HTTP %ld", code);
        }
        /* give the session up; the next one starts afresh (anchors kept) */
        d->session_failed = 1;
        end_session(d);
        return;
    }
    if (cx->trace && d->idx < cx->trace) {
        fprintf(stderr, "trace %s >>> %s\ntrace %s <<< %s\n", d->devid, d->req.s, d->devid,
                d->resp.s ? d->resp.s : "");
    }
    final = read_answer(d);
    if (final < 0) {
        end_session(d);
        return;
    }
    if (final && d->phase == PH_MAP) {
        end_session(d);
        return;
    }
    if (d->msg > 20) {
        error_(d, &cx->errors_protocol, "session does not end after 20 messages");
        end_session(d);
        return;
    }
    next_msg(d, final);
}

/* ------------------------------------------------------------ main loop */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    size_t i;
    if (n == 0) {
        return 0;
    }
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

/* Prints the percentiles of the latencies of kind (2: all). */
static void print_latency(const ctx_t *cx, int kind, const char *name)
{
    size_t n = kind == 2 ? cx->nlat[0] + cx->nlat[1] : cx->nlat[kind];
    double *v = malloc((n + 1) * sizeof *v);
    if (v == NULL) {
        die_oom();
    }
    if (kind == 2) {
        memcpy(v, cx->lat[0], cx->nlat[0] * sizeof *v);
        memcpy(v + cx->nlat[0], cx->lat[1], cx->nlat[1] * sizeof *v);
    } else {
        memcpy(v, cx->lat[kind], n * sizeof *v);
    }
    qsort(v, n, sizeof *v, cmp_double);
    printf("latency%s_p50_ms %.1f\nlatency%s_p90_ms %.1f\nlatency%s_p99_ms %.1f\n"
           "latency%s_max_ms %.1f\nmessages%s %zu\n", name, 1000 * pct(v, n, 0.5), name,
           1000 * pct(v, n, 0.9), name, 1000 * pct(v, n, 0.99), name,
           n ? 1000 * v[n - 1] : 0.0, name, n);
    free(v);
}

/* The p99 of every kind's latencies in each 10 s of the run (by when the
 * answer came): the start, when every device begins at once and httpd
 * starts children, apart from the rest. */
#define WINDOW_S 10
static void print_latency_windows(const ctx_t *cx)
{
    int w, nw = (int)(cx->run_secs / WINDOW_S + 0.999);
    size_t n = cx->nlat[0] + cx->nlat[1], k, i;
    double *v = malloc((n + 1) * sizeof *v);
    if (v == NULL) {
        die_oom();
    }
    printf("latency_p99_per_10s_ms");
    for (w = 0; w < nw; ++w) {
        int kind;
        k = 0;
        for (kind = 0; kind < 2; ++kind) {
            for (i = 0; i < cx->nlat[kind]; ++i) {
                if ((int)(cx->lat_at[kind][i] / WINDOW_S) == w) {
                    v[k++] = cx->lat[kind][i];
                }
            }
        }
        qsort(v, k, sizeof *v, cmp_double);
        printf("%s%.0f", w ? "," : " ", 1000 * pct(v, k, 0.99));
    }
    printf("\n");
    free(v);
}

static void setup_devices(ctx_t *cx)
{
    int i, n_mail = 0, n_items = 0, *per_acct = calloc((size_t)cx->nusers, sizeof(int));
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)time(NULL);

    cx->dev = calloc((size_t)cx->ndev, sizeof *cx->dev);
    if (cx->dev == NULL || per_acct == NULL) {
        die_oom();
    }
    /* which devices are mail devices: mail_ratio percent, spread out */
    for (i = 0; i < cx->ndev; ++i) {
        device_t *d = &cx->dev[i];
        int mail = (i * cx->mail_ratio) / 100 != ((i + 1) * cx->mail_ratio) / 100;
        d->cx = cx;
        d->idx = i;
        d->kind = mail ? K_MAIL : K_ITEMS;
        d->rng = seed + (uint64_t)i * 0x2545F4914F6CDD1Dull + 1;
        rnd(&d->rng);
        snprintf(d->devid, sizeof d->devid, "load-%s-%s-%03d", cx->run,
                 mail ? "mail" : "items", i);
        d->h = curl_easy_init();
        if (d->h == NULL) {
            die_oom();
        }
        curl_easy_setopt(d->h, CURLOPT_HTTPHEADER, cx->hdrs);
        curl_easy_setopt(d->h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(d->h, CURLOPT_WRITEDATA, &d->resp);
        curl_easy_setopt(d->h, CURLOPT_PRIVATE, d);
        curl_easy_setopt(d->h, CURLOPT_TIMEOUT, 120L);
        curl_easy_setopt(d->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(d->h, CURLOPT_USERAGENT, "SyncEvolution");
        if (mail) {
            d->acct = n_mail % cx->nusers;
            d->acct_k = per_acct[d->acct]++;
            n_mail++;
            d->nst = 2;
            snprintf(d->base, sizeof d->base, "%s", cx->mail_url);
            snprintf(d->st[0].target, sizeof d->st[0].target, "Inbox");
            d->st[0].source = "./mail";
            d->st[0].type = "application/vnd.omads-email+xml";
            snprintf(d->st[1].target, sizeof d->st[1].target, "Outbox");
            d->st[1].source = "./outbox";
            d->st[1].type = "application/vnd.omads-email+xml";
        } else {
            /* devices 2k and 2k+1 of the items kind share one datastore */
            int pair = n_items / 2;
            d->acct = pair % cx->nusers;
            n_items++;
            d->nst = 1;
            snprintf(d->base, sizeof d->base, "%s", cx->items_url);
            snprintf(d->st[0].target, sizeof d->st[0].target, "load-%s-%d", cx->run, pair);
            d->st[0].source = "./memo";
            d->st[0].type = "text/plain";
        }
        d->user = cx->users[d->acct][0];
        d->pass = cx->users[d->acct][1];
        d->state = D_WAIT;
        d->pending_mode = M_RUN;
        /* start spread over the first two seconds */
        d->wake = cx->t0 + 2.0 * i / cx->ndev;
    }
    for (i = 0; i < cx->ndev; ++i) {
        if (cx->dev[i].kind == K_MAIL) {
            cx->dev[i].acct_n = per_acct[cx->dev[i].acct];
        }
    }
    free(per_acct);
}

/* Runs every device until all are D_DONE. */
static void drive(ctx_t *cx)
{
    int running = 1;
    double last_sample = 0;
    while (running) {
        int i, in_session = 0, still, numfds;
        double t = now_s(), next_wake = t + 0.1;
        CURLMsg *m;
        int left;

        running = 0;
        for (i = 0; i < cx->ndev; ++i) {
            device_t *d = &cx->dev[i];
            if (d->state == D_DONE) {
                continue;
            }
            running = 1;
            if (d->state == D_WAIT && d->wake <= t) {
                if (d->phase != 0) {
                    post_now(d);    /* a message of a running session, due now */
                } else {
                    start_session(d);
                }
            }
            if (d->state == D_WAIT && d->wake < next_wake) {
                next_wake = d->wake;
            }
            in_session += d->phase != 0;
        }
        if (t - last_sample >= 0.5) {
            last_sample = t;
            cx->conc_samples++;
            cx->conc_sum += in_session;
            if (in_session > cx->conc_max) {
                cx->conc_max = in_session;
            }
        }
        curl_multi_perform(cx->multi, &still);
        while ((m = curl_multi_info_read(cx->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE) {
                device_t *d = NULL;
                CURL *h = m->easy_handle;
                CURLcode rc = m->data.result;
                curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&d);
                on_done(d, rc);
            }
        }
        {
            int ms = (int)((next_wake - now_s()) * 1000);
            if (ms < 0) {
                ms = 0;
            }
            if (ms > 100) {
                ms = 100;
            }
            curl_multi_poll(cx->multi, NULL, 0, ms, &numfds);
        }
    }
}

static void write_dump(ctx_t *cx)
{
    FILE *f;
    int i;
    size_t j;
    if (cx->dump == NULL) {
        return;
    }
    f = fopen(cx->dump, "w");
    if (f == NULL) {
        perror(cx->dump);
        return;
    }
    for (i = 0; i < cx->ndev; ++i) {
        device_t *d = &cx->dev[i];
        if (d->kind != K_MAIL) {
            continue;
        }
        /* outseq: the device sent load-out-<run>-<devid>-o1 ... o<outseq> */
        fprintf(f, "device %s %s %zu %u\n", d->devid, d->user, d->st[0].items.n, d->outseq);
        for (j = 0; j < d->st[0].items.n; ++j) {
            item_t *it = &d->st[0].items.v[j];
            fprintf(f, "item %s %s %d\n", d->devid, it->msgid ? it->msgid : "-", it->read);
        }
    }
    fclose(f);
}

/* --users login:password,login:password,...: the accounts, mail devices
 * spread over them in turn, the pairs of items devices too. */
static int parse_users(ctx_t *cx, const char *list)
{
    const char *p = list;
    int n = 1;
    for (; *p; ++p) {
        n += *p == ',';
    }
    cx->users = calloc((size_t)n, sizeof *cx->users);
    if (cx->users == NULL) {
        die_oom();
    }
    for (p = list, cx->nusers = 0; cx->nusers < n; ++cx->nusers) {
        int len = 0;
        if (sscanf(p, "%63[^:]:%63[^,]%n", cx->users[cx->nusers][0],
                   cx->users[cx->nusers][1], &len) != 2) {
            return -1;
        }
        p += len;
        if (*p == ',') {
            ++p;
        }
    }
    return cx->nusers;
}

static void usage(void)
{
    fputs("usage: loadgen --items-url URL --mail-url URL [--devices N] [--duration S]\n"
          "       [--think MS] [--msg-think MS] [--settle S] [--users u:p,u:p]\n"
          "       [--dump FILE] [--run TAG] [--p-flag PCT] [--p-delete PCT]\n"
          "       [--p-send PCT] [--mail-devices-ratio PCT] [--trace N] [--pending-ok]\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    ctx_t cx;
    int i;
    char runbuf[32];
    const char *users = "alice:alice-secret,bob:bob-secret";

    memset(&cx, 0, sizeof cx);
    cx.ndev = 200;
    cx.duration = 60;
    cx.think = 1000;
    cx.msg_think = 200;
    cx.settle = 5;
    cx.p_flag = 30;
    cx.p_delete = 5;
    cx.p_send = 5;
    cx.mail_ratio = 50;
    snprintf(runbuf, sizeof runbuf, "%lx", (unsigned long)time(NULL));
    cx.run = runbuf;
    for (i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pending-ok")) {
            cx.pending_ok = 1;
            continue;
        }
        if (v == NULL) {
            usage();
        }
        ++i;
        if (!strcmp(a, "--items-url")) cx.items_url = v;
        else if (!strcmp(a, "--mail-url")) cx.mail_url = v;
        else if (!strcmp(a, "--devices")) cx.ndev = atoi(v);
        else if (!strcmp(a, "--duration")) cx.duration = atoi(v);
        else if (!strcmp(a, "--think")) cx.think = atoi(v);
        else if (!strcmp(a, "--msg-think")) cx.msg_think = atoi(v);
        else if (!strcmp(a, "--settle")) cx.settle = atoi(v);
        else if (!strcmp(a, "--users")) users = v;
        else if (!strcmp(a, "--dump")) cx.dump = v;
        else if (!strcmp(a, "--run")) cx.run = v;
        else if (!strcmp(a, "--p-flag")) cx.p_flag = atoi(v);
        else if (!strcmp(a, "--p-delete")) cx.p_delete = atoi(v);
        else if (!strcmp(a, "--p-send")) cx.p_send = atoi(v);
        else if (!strcmp(a, "--mail-devices-ratio")) cx.mail_ratio = atoi(v);
        else if (!strcmp(a, "--trace")) cx.trace = atoi(v);
        else usage();
    }
    if (cx.items_url == NULL || cx.mail_url == NULL || cx.ndev < 1
        || cx.mail_ratio < 0 || cx.mail_ratio > 100
        || parse_users(&cx, users) < 1) {
        usage();
    }
    xmlInitParser();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    cx.multi = curl_multi_init();
    curl_multi_setopt(cx.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cx.ndev + 8);
    cx.hdrs = curl_slist_append(NULL, "Content-Type: application/vnd.syncml+xml");
    cx.hdrs = curl_slist_append(cx.hdrs, "Expect:");
    cx.t0 = now_s();
    cx.t_end = cx.t0 + cx.duration;
    setup_devices(&cx);

    printf("phase run devices %d duration %d\n", cx.ndev, cx.duration);
    fflush(stdout);
    drive(&cx);
    cx.run_secs = now_s() - cx.t0;
    {
        long errs_run = cx.errors;
        printf("run_seconds %.2f\n", cx.run_secs);
        printf("run_sessions %ld\nrun_messages %ld\n", cx.sessions, cx.messages);
        printf("sessions_per_s %.2f\nmessages_per_s %.2f\n", cx.sessions / cx.run_secs,
               cx.messages / cx.run_secs);
        print_latency(&cx, 2, "");
        print_latency(&cx, K_ITEMS, "_items");
        print_latency(&cx, K_MAIL, "_mail");
        print_latency_windows(&cx);
        printf("concurrent_sessions_avg %.1f\nconcurrent_sessions_max %d\n",
               cx.conc_samples ? cx.conc_sum / cx.conc_samples : 0.0, cx.conc_max);
        printf("sessions_items %ld\nsessions_mail %ld\nitem_changes %ld\nmail_changes %ld\n"
               "mail_sends %ld\nserver_changes %ld\nrun_errors %ld\n", cx.sessions_items,
               cx.sessions_mail, cx.item_changes, cx.mail_changes, cx.mail_sends,
               cx.server_changes, errs_run);
        fflush(stdout);
    }

    /* settle, then one pull session per device, then the check */
    {
        double until = now_s() + cx.settle;
        while (now_s() < until) {
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
    }
    printf("phase pull\n");
    fflush(stdout);
    for (i = 0; i < cx.ndev; ++i) {
        device_t *d = &cx.dev[i];
        d->pending_mode = M_PULL;
        d->phase = 0;
        d->state = D_WAIT;
        d->wake = now_s() + 2.0 * i / cx.ndev;
    }
    cx.t_end = now_s();
    drive(&cx);
    printf("phase check\n");
    fflush(stdout);
    for (i = 0; i < cx.ndev; ++i) {
        device_t *d = &cx.dev[i];
        if (d->kind == K_ITEMS) {
            d->phase = 0;
            d->state = D_WAIT;
            d->wake = now_s() + 2.0 * i / cx.ndev;
        }
    }
    drive(&cx);
    write_dump(&cx);
    for (i = 0; i < cx.ndev; ++i) {
        device_t *d = &cx.dev[i];
        size_t k;
        for (k = 0; d->kind == K_MAIL && k < d->st[1].items.n; ++k) {
            error_(d, &cx.errors_converge, "Outbox item %s still on the device after the "
                   "pull (%s)", d->st[1].items.v[k].luid,
                   d->st[1].items.v[k].acked ? "sent, never deleted" : "never acknowledged");
        }
        for (k = 0; k < d->st[0].items.n; ++k) {
            if (d->st[0].items.v[k].dirty) {
                error_(d, &cx.errors_converge, "change of item %s never acknowledged",
                       d->st[0].items.v[k].luid);
            }
        }
        if (d->st[0].npdel) {
            error_(d, &cx.errors_converge, "%zu deletes never acknowledged", d->st[0].npdel);
        }
    }
    {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("cpu_seconds %.2f\nwall_seconds %.2f\n",
               (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
                   + (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
               now_s() - cx.t0);
    }
    printf("total_sessions %ld\ntotal_messages %ld\noutbox_delete_late %ld\n"
           "send_pending %ld\nmessages_resent %ld\n", cx.sessions, cx.messages,
           cx.outbox_late, cx.send_pending, cx.resent);
    printf("errors %ld\nerrors_http %ld\nerrors_syncml %ld\nerrors_parse %ld\n"
           "errors_protocol %ld\nerrors_converge %ld\nerrors_items_devices %ld\n"
           "errors_mail_devices %ld\n", cx.errors, cx.errors_http,
           cx.errors_syncml, cx.errors_parse, cx.errors_protocol, cx.errors_converge,
           cx.errors_of_kind[K_ITEMS], cx.errors_of_kind[K_MAIL]);
    for (i = 0; i < cx.ndev; ++i) {
        device_t *d = &cx.dev[i];
        int j;
        for (j = 0; j < 2; ++j) {
            items_clear(&d->st[j].items);
            items_clear(&d->st[j].check);
            free(d->st[j].items.v);
            free(d->st[j].check.v);
            free(d->st[j].maps);
            while (d->st[j].npdel) {
                free(d->st[j].pdel[--d->st[j].npdel]);
            }
            free(d->st[j].pdel);
        }
        free(d->req.s);
        free(d->resp.s);
        free(d->statuses.s);
        free(d->sent);
        curl_easy_cleanup(d->h);
    }
    free(cx.dev);
    free(cx.users);
    free(cx.lat[0]);
    free(cx.lat[1]);
    free(cx.lat_at[0]);
    free(cx.lat_at[1]);
    curl_slist_free_all(cx.hdrs);
    curl_multi_cleanup(cx.multi);
    curl_global_cleanup();
    xmlCleanupParser();
    return cx.errors ? 1 : 0;
}
