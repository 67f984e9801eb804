/* memds_outbox.c: sending. The Outbox datastore (an Add to "Outbox", or to
 * the Outbox folder of the hierarchical datastore, means "send this"), its
 * ledger, the retries at a device's syncs and the background job
 * (memds_send_background), and the IMAP side of reply/forward without
 * download (the composition itself is email/memds_compose.c).
 *
 * An Add to "Outbox" means "send this". Exactly once (DESIGN.md decision 3):
 * the ledger row (memds.outbox) is committed on its own connection before
 * SMTP starts, keyed by (account, device, datastore, LUID, SHA-1 of the
 * item), and moves received -> submitting (committed by the SMTP layer's
 * hook just before the end of the data goes out) -> submitted (250) ->
 * filed (copy appended to Sent). A retried Add finds its row: received
 * (died before SMTP) is sent now, submitting/submitted/filed are answered
 * as sent without sending again, rejected gets its stored status, retrying
 * waits for its time. The device's Outbox item is then deleted by the
 * server (a tombstone in the virtual Outbox folder), so it turns into the
 * Sent copy on devices that sync Sent. */

#include "send/memds_send.h"
#include "ds/memds_mailbox.h"
#include "ds/memds_mailtrunc.h"
#include "backends/memds_smtp.h"
#include "ds/memds_outcome.h"
#include "email/memds_compose.h"
#include "email/memds_mime.h"
#include "store/memds_pgpool.h"

#include <apr_strings.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Fault points (MEMDS_FAULT, --enable-fault-injection only): a crash at
 * every step of the ledger must end in exactly one delivery. */
#define fault_point(p) MEMDS_FAULT(p)

typedef struct ledger_t {
    memds_store_t st;
    memds_pgconn_t *conn;
} ledger_t;

static apr_status_t ledger_open(memds_ds_t *ds, ledger_t *l)
{
    const char *why;

    if (MBOX(ds)->cfg->ledger_pool == NULL) {
        return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                               "no database pool for the outbox ledger");
    }
    if (memds_pgpool_acquire_for(&l->conn, MBOX(ds)->cfg->ledger_pool, &why,
                                 ds->st->pool)
        != APR_SUCCESS) {
        return memds_mbox_fail(ds, MEMDS_ST_SERVICE_UNAVAILABLE,
                               apr_psprintf(ds->st->pool,
                                            "outbox ledger: no "
                                            "database connection: %s",
                                            why));
    }
    /* autocommit: every ledger step is durable at once */
    memds_store_init(&l->st, l->conn, ds->st->pool);
    return APR_SUCCESS;
}

static apr_status_t ledger_fail(memds_ds_t *ds, ledger_t *l)
{
    return memds_mbox_fail(ds, MEMDS_ST_SERVICE_UNAVAILABLE,
                           apr_psprintf(ds->st->pool, "outbox ledger: %s",
                                        l->st.err ? l->st.err : "?"));
}

typedef struct hook_ctx_t {
    ledger_t *l;
    apr_int64_t id;
} hook_ctx_t;

static apr_status_t before_end(void *baton)
{
    hook_ctx_t *h = baton;
    apr_status_t rv;

    /* (MAIL FROM, RCPT TO and DATA have had their answers; the message but
     * its final dot is written) */
    fault_point("outbox-submitting-before");
    rv = memds_outbox_set(&h->l->st, h->id, "submitting", 0, NULL, NULL, 0, 0,
                          0);
    if (rv == APR_SUCCESS) {
        fault_point("outbox-submitting");
    }
    return rv;
}

/* ------------------------------- reply and forward without download
 *
 * The original named by the device's message is found by its server id,
 * its structure read with BODYSTRUCTURE and its parts fetched with
 * BODY.PEEK as email/memds_compose.c asks for them; the original is then
 * flagged \\Answered or $Forwarded. */

typedef struct bs_ctx_t {
    apr_pool_t *p;
    apr_array_header_t *parts; /* memds_compose_part_t */
    int multipart;
} bs_ctx_t;

static void collect_leaves(bs_ctx_t *b, const memds_imap_body_t *n)
{
    memds_compose_part_t *l;
    int i;

    if (n->multipart) {
        for (i = 0; n->parts && i < n->parts->nelts; ++i) {
            collect_leaves(b, APR_ARRAY_IDX(n->parts, i, memds_imap_body_t *));
        }
        return;
    }
    l = apr_array_push(b->parts);
    l->section = apr_pstrdup(b->p, n->section);
    l->type = apr_pstrdup(b->p, n->type ? n->type : "text");
    l->subtype = apr_pstrdup(b->p, n->subtype ? n->subtype : "plain");
    l->charset = apr_pstrdup(b->p, memds_mbox_body_param(n->params, "charset"));
    l->encoding = apr_pstrdup(b->p, n->encoding);
    l->disposition = apr_pstrdup(b->p, n->disposition);
}

static apr_status_t bs_cb(void *baton, const memds_imap_resp_t *r)
{
    bs_ctx_t *b = baton;

    if (r->type == MEMDS_IMAP_RESP_FETCH && r->fetch->body) {
        b->multipart = r->fetch->body->multipart;
        collect_leaves(b, r->fetch->body);
    }
    return APR_SUCCESS;
}

typedef struct orig_ctx_t {
    memds_ds_t *ds;
    memds_imap_conn_t *c;
    apr_int64_t uid;
} orig_ctx_t;

static apr_status_t fetch_part(void *baton, const char *section, int binary,
                               const char **pdata, apr_size_t *plen)
{
    orig_ctx_t *o = baton;
    memds_buf_t b;

    if (memds_mbox_fetch_section(o->ds, o->c, o->uid, section,
                                 binary ? MEMDS_IMAP_BODY_BINARY : 0, &b)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    *pdata = b.data;
    *plen = b.len;
    return APR_SUCCESS;
}

/* in->msg becomes the composed message when it asks for a reply or forward. */
static apr_status_t compose_smart(memds_ds_t *ds, memds_mbox_in_t *in)
{
    apr_pool_t *p = ds->st->pool;
    const char *id, *folder, *why, *out;
    apr_size_t outlen;
    memds_mmsg_t row;
    memds_imap_err_t err;
    memds_compose_orig_t o;
    orig_ctx_t oc;
    bs_ctx_t b;
    int forward, nf;
    apr_status_t rv;

    memds_compose_target(in->msg, in->len, &id, &forward, p);
    if (id == NULL) {
        return APR_SUCCESS;
    }
    if (memds_mail_get_any(ds->st, &row, &folder, ds->account, id)
        != APR_SUCCESS) {
        return memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                               apr_psprintf(p,
                                            "the message to %s (%s) "
                                            "does not exist (any more)",
                                            forward ? "forward" : "reply to",
                                            id));
    }
    memset(&oc, 0, sizeof(oc));
    oc.ds = ds;
    oc.uid = row.uid;
    if (memds_mbox_set_folder(ds, folder) != APR_SUCCESS
        || memds_mbox_select(ds, &oc.c, NULL) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memset(&b, 0, sizeof(b));
    b.p = p;
    b.parts = apr_array_make(p, 4, sizeof(memds_compose_part_t));
    if (memds_imap_uid_fetch(oc.c,
                             apr_psprintf(p, "%" APR_INT64_T_FMT, row.uid),
                             "(UID BODYSTRUCTURE)", 0, 0, bs_cb, &b, &err)
        != APR_SUCCESS) {
        return memds_mbox_fail_imap(ds, &err, "UID FETCH BODYSTRUCTURE");
    }
    memset(&o, 0, sizeof(o));
    o.forward = forward;
    o.parts = b.parts;
    o.multipart = b.multipart;
    o.fetch = fetch_part;
    o.baton = &oc;
    rv = memds_compose(&out, &outlen, in->msg, in->len, &o, &why, p);
    if (rv != APR_SUCCESS) {
        return why == NULL
                   ? rv /* (the fetch's failure, in ds) */
                   : memds_mbox_fail(ds,
                                     rv == APR_EINVAL ? MEMDS_ST_BAD_REQUEST
                                                      : MEMDS_ST_COMMAND_FAILED,
                                     why);
    }
    in->msg = out;
    in->len = outlen;
    /* the original is now answered / forwarded (best effort: the message
     * goes out either way) */
    nf = row.flags | (forward ? MEMDS_MAIL_FORWARDED : MEMDS_MAIL_ANSWERED);
    if (nf != row.flags) {
        if (memds_mbox_store_flags(ds, oc.c, row.uid, row.flags, nf)
            == APR_SUCCESS) {
            row.flags = nf;
            if (memds_mail_update(ds->st, ds->account, folder, &row, 0, 0)
                != APR_SUCCESS) {
                return memds_mbox_fail_db(ds);
            }
        }
        else {
            memds_logf(MBOX(ds)->cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                       MEMDS_LOGNO(00401) "%s (the original "
                                          "stays unflagged)",
                                   ds->reason);
            ds->status = 0;
        }
    }
    return APR_SUCCESS;
}

/* The Outbox item's server id: "q" and the ledger row. */
static const char *outbox_guid(memds_ds_t *ds, apr_int64_t id)
{
    return apr_psprintf(ds->st->pool, "q%" APR_INT64_T_FMT, id);
}

/* The Outbox item is done (sent, or refused and moved to Drafts): a
 * tombstone makes the device delete it, in this session when possible. */
static apr_status_t outbox_done(memds_ds_t *ds, apr_int64_t id,
                                const char **pguid)
{
    *pguid = outbox_guid(ds, id);
    if (memds_mail_tombstone(ds->st, ds->account, MEMDS_OUTBOX_FOLDER, *pguid)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    return APR_SUCCESS;
}

static void smtp_cfg(memds_ds_t *ds, memds_smtp_config_t *c)
{
    memds_mbox_t *x = MBOX(ds);

    memset(c, 0, sizeof(*c));
    c->url = x->cfg->smtp_url;
    c->ca_file = x->cfg->ca_file;
    c->starttls = x->cfg->smtp_starttls;
    c->log = x->cfg->log;
    c->stats = x->cfg->stats;
    if (x->cfg->smtp_auth == MEMDS_SMTP_AUTH_USER) {
        c->user = ds->login;
        c->password = x->password;
    }
    else if (x->cfg->smtp_auth == MEMDS_SMTP_AUTH_FIXED) {
        c->user = x->cfg->smtp_user;
        c->password = x->cfg->smtp_password;
        c->authzid = ds->login;
    }
}

/* Send ledger row id now; the outcome is in the ledger and in ds. */
/* The sender's own copy (for Sent, or Drafts): the Bcc fields taken out
 * of the transmitted message put back in front of it. */
static const char *own_copy(memds_ds_t *ds, const char *data, apr_size_t len,
                            const char *bcc, apr_size_t bcc_len,
                            apr_size_t *pcopy_len)
{
    char *c;

    *pcopy_len = len + bcc_len;
    if (bcc == NULL || bcc_len == 0) {
        return data;
    }
    c = apr_palloc(ds->st->pool, len + bcc_len + 1);
    memcpy(c, bcc, bcc_len);
    memcpy(c + bcc_len, data, len);
    c[len + bcc_len] = '\0';
    return c;
}

/* The copy of a message refused for good, for the user to fix and send
 * again (MemDSRejectedMail drafts): the message with X-MemDS-Send-Error
 * naming the reason, appended to Drafts, and the row's drafts_pending
 * cleared. Made the same from the same row, so that a retry after a crash
 * between the APPEND and the clearing takes the copy already there
 * (memds_mbox_file_copy). Its failure is not the device's: the device
 * gets the refusal as its status, and drafts_pending stays set, so that
 * its next retry tries the copy again. */
static void file_refused(memds_ds_t *ds, ledger_t *l, apr_int64_t id,
                         const char *reason, const char *data, apr_size_t len,
                         const char *bcc, apr_size_t bcc_len)
{
    const char *copy, *own, *draft = NULL;
    apr_size_t own_len;

    copy = apr_pstrcat(ds->st->pool, "X-MemDS-Send-Error: ",
                       apr_pstrndup(ds->st->pool, reason ? reason : "", 200),
                       "\r\n", NULL);
    own = own_copy(ds, data, len, bcc, bcc_len, &own_len);
    copy = apr_pstrcat(ds->st->pool, copy, own, NULL);
    if (memds_mbox_file_copy(ds, MEMDS_IMAP_ROLE_DRAFTS, copy, strlen(copy),
                             MEMDS_MAIL_DRAFT, &draft)
        != APR_SUCCESS) {
        ds->status = 0;
        return;
    }
    fault_point("outbox-rejected-filed");
    if (memds_outbox_drafts_set(&l->st, id, 0) != APR_SUCCESS) {
        /* the copy is there: a retry takes it instead of a second one */
        memds_pgconn_mark_broken(l->conn);
    }
}

static apr_status_t send_claimed(memds_ds_t *ds, ledger_t *l, apr_int64_t id,
                                 const char *from, const char *const *rcpts,
                                 int nrcpts, const char *data, apr_size_t len,
                                 const char *bcc, apr_size_t bcc_len,
                                 int attempts)
{
    apr_size_t own_len;
    const char *own;
    memds_smtp_config_t cfg;
    memds_smtp_err_t err;
    memds_err_t te;
    memds_outcome_t o;
    hook_ctx_t h;
    const char *sent = NULL;
    apr_status_t rv;

    if (MBOX(ds)->cfg->smtp_url == NULL) {
        return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                               "no MemDSSMTPServer configured: cannot send");
    }
    if (MBOX(ds)->cfg->smtp_auth == MEMDS_SMTP_AUTH_USER
        && MBOX(ds)->password == NULL) {
        /* (the row stays as it is: the device's retry with basic
         * credentials sends it) */
        return memds_mbox_fail(ds, MEMDS_ST_MISSING_CREDENTIALS,
                               "no password for the SMTP login "
                               "(MemDSSMTPAuth user): the message carried "
                               "no basic credentials");
    }
    smtp_cfg(ds, &cfg);
    h.l = l;
    h.id = id;
    memset(&err, 0, sizeof(err));
    rv = memds_smtp_send(&cfg, from, rcpts, nrcpts, data, len, before_end, &h,
                         &err, ds->st->pool);
    if (rv == APR_SUCCESS || err.in_doubt) {
        fault_point("outbox-sent");
        if (err.in_doubt) {
            memds_logf(
                MBOX(ds)->cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                MEMDS_LOGNO(00402) "outbox %" APR_INT64_T_FMT
                           " of %s: the SMTP server did not confirm the end of "
                           "the "
                           "message; treated as sent, not sent again: %s",
                    id, ds->account, err.msg ? err.msg : "");
        }
        if (memds_outbox_set(&l->st, id, "submitted", MEMDS_ST_ITEM_ADDED,
                             err.reply, NULL, 1, 0, 0)
            != APR_SUCCESS) {
            /* sent, but not recorded: the row stays "submitting", which a
             * retry also treats as sent */
            return ledger_fail(ds, l);
        }
        fault_point("outbox-submitted");
        own = own_copy(ds, data, len, bcc, bcc_len, &own_len);
        if (!MBOX(ds)->cfg->no_sent_copy
            && memds_mbox_file_copy(ds, MEMDS_IMAP_ROLE_SENT, own, own_len,
                                    MEMDS_MAIL_SEEN, &sent)
                   != APR_SUCCESS) {
            /* sent: the copy is missing, which the log says; the device's
             * Add still succeeded */
            memds_logf(MBOX(ds)->cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                       MEMDS_LOGNO(00403) "outbox %" APR_INT64_T_FMT
                                  " of %s: sent, but not filed in Sent: %s",
                           id, ds->account, ds->reason);
            ds->status = 0;
            return APR_SUCCESS;
        }
        if (memds_outbox_set(&l->st, id, "filed", 0, NULL, sent, 0, 0, 1)
            != APR_SUCCESS) {
            return ledger_fail(ds, l);
        }
        fault_point("outbox-filed");
        return APR_SUCCESS;
    }
    te = memds_smtp_err_of(&err);
    o = memds_outcome_of(&te, MEMDS_OUTCOME_ITEM);
    if (err.kind == MEMDS_SMTP_E_HOOK) {
        /* the ledger could not record "submitting": nothing went out (the
         * transaction was aborted before the end of the data); the row
         * stays "received" for the device's retry */
        return memds_mbox_fail(
            ds, MEMDS_ST_SERVICE_UNAVAILABLE,
            apr_psprintf(ds->st->pool,
                         "outbox %" APR_INT64_T_FMT
                         ": the ledger could not record the submission, "
                         "message not sent: %s",
                         id, l->st.err ? l->st.err : "?"));
    }
    if (err.permanent) {
        const char *reason = apr_psprintf(ds->st->pool, "%s (%s)", o.text,
                                          err.reply ? err.reply
                                          : err.msg ? err.msg
                                                    : "");
        int to_drafts = !MBOX(ds)->cfg->keep_rejected;
        /* the device gets the refusal as its Add's status; the message
         * goes to Drafts with the reason (MemDSRejectedMail drafts), for
         * the user to fix and send again. "rejected" first (never sent
         * again), the copy to make recorded with it: a retry after a
         * crash between the two makes the copy (docs/crash-recovery.md) */
        if (to_drafts) {
            (void)memds_outbox_drafts_set(&l->st, id, 1);
        }
        memds_outbox_set(&l->st, id, "rejected", o.status, reason, NULL, 1, 0,
                         0);
        fault_point("outbox-rejected");
        if (to_drafts) {
            file_refused(ds, l, id, reason, data, len, bcc, bcc_len);
        }
        return memds_mbox_fail(ds, o.status,
                               apr_psprintf(ds->st->pool,
                                            "message refused "
                                            "by the SMTP server: %s",
                                            reason));
    }
    /* transient: later, with backoff (1, 2, 4, ... minutes, at most an hour) */
    {
        int secs = 60 << (attempts < 6 ? attempts : 6);
        if (secs > 3600) {
            secs = 3600;
        }
        memds_outbox_set(&l->st, id, "retrying", MEMDS_ST_ACCEPTED,
                         apr_psprintf(ds->st->pool, "%s (%s)", o.text,
                                      err.msg ? err.msg : ""),
                         NULL, 1, secs, 0);
        memds_logf(MBOX(ds)->cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                   MEMDS_LOGNO(00404) "outbox %" APR_INT64_T_FMT
                              " of %s: not sent yet, retried in %d s: %s (%s)",
                       id, ds->account, secs, o.text, err.msg ? err.msg : "");
        ds->ok_status = MEMDS_ST_ACCEPTED;
        return APR_SUCCESS;
    }
}

/* A row sent but not filed (submitting or submitted: the sender died or
 * lost the database after the SMTP server took the message): the copy in
 * Sent is made now. Nothing to do for other states. */
static apr_status_t file_late(memds_ds_t *ds, ledger_t *l,
                              const memds_outbox_row_t *row, const char *data,
                              apr_size_t len, const char *bcc,
                              apr_size_t bcc_len)
{
    const char *sent = NULL;

    if ((strcmp(row->state, "submitting") != 0
         && strcmp(row->state, "submitted") != 0)
        || data == NULL || MBOX(ds)->cfg->no_sent_copy) {
        return APR_SUCCESS;
    }
    data = own_copy(ds, data, len, bcc, bcc_len, &len);
    if (memds_mbox_file_copy(ds, MEMDS_IMAP_ROLE_SENT, data, len,
                             MEMDS_MAIL_SEEN, &sent)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_outbox_set(&l->st, row->id, "filed", 0, NULL, sent, 0, 0, 1)
        != APR_SUCCESS) {
        return ledger_fail(ds, l);
    }
    return APR_SUCCESS;
}

/* A retried Add of a message refused for good: when the copy for Drafts
 * is still to be made (the sender died after writing "rejected"), it is
 * made now, under the row's claim (one retry at a time makes it). */
static void refused_retry(memds_ds_t *ds, ledger_t *l,
                          const memds_outbox_row_t *row)
{
    memds_outbox_row_t now;
    int got = 0;

    if (MBOX(ds)->cfg->keep_rejected || row->data == NULL
        || !row->drafts_pending) {
        return;
    }
    if (memds_outbox_claim(&l->st, row->id, &got, &now) != APR_SUCCESS
        || !got) {
        return; /* (another sender has it: it makes the copy) */
    }
    if (now.drafts_pending) { /* (as read under the claim) */
        memds_logf(MBOX(ds)->cfg->log, MEMDS_LOG_NOTICE, APR_SUCCESS,
                   MEMDS_LOGNO(00411) "outbox %" APR_INT64_T_FMT
                              " of %s: refused, and its copy for Drafts was "
                              "not made (the sender stopped): made now",
                       row->id, ds->account);
        file_refused(ds, l, row->id, row->reason, row->data, row->len,
                     row->bcc, row->bcc_len);
    }
    if (memds_outbox_unclaim(&l->st, row->id) != APR_SUCCESS) {
        memds_pgconn_mark_broken(l->conn);
    }
}

/* Send ledger row id, as one sender: a device's Add or retried Add, the
 * retries at a device's sync and the background job can reach the same row
 * at the same time (two children, or a child and the watchdog), and only
 * the one holding the row's claim (memds_outbox_claim) sends. The others
 * answer "pending" (202). The claimant reads the row again first, so that
 * what a sender before it did counts: sent (and filed) means done, refused
 * means its status. */
static apr_status_t submit(memds_ds_t *ds, ledger_t *l, apr_int64_t id,
                           const char *from, const char *const *rcpts,
                           int nrcpts, const char *data, apr_size_t len,
                           const char *bcc, apr_size_t bcc_len)
{
    memds_outbox_row_t now;
    int got;
    apr_status_t rv;

    if (memds_outbox_claim(&l->st, id, &got, &now) != APR_SUCCESS) {
        return ledger_fail(ds, l);
    }
    if (!got) {
        memds_logf(MBOX(ds)->cfg->log, MEMDS_LOG_INFO, APR_SUCCESS,
                   MEMDS_LOGNO(00405) "outbox %" APR_INT64_T_FMT
                              " of %s: being sent by another process; pending",
                       id, ds->account);
        ds->ok_status = MEMDS_ST_ACCEPTED;
        return APR_SUCCESS;
    }
    if (strcmp(now.state, "received") == 0
        || (strcmp(now.state, "retrying") == 0 && now.due)) {
        rv = send_claimed(ds, l, id, from, rcpts, nrcpts, data, len, bcc,
                          bcc_len, now.attempts);
    }
    else if (strcmp(now.state, "retrying") == 0) {
        /* tried by another sender between this one's reading the row as
         * due and its claim: it waits for its new time */
        ds->ok_status = MEMDS_ST_ACCEPTED;
        rv = APR_SUCCESS;
    }
    else if (strcmp(now.state, "rejected") == 0) {
        rv = memds_mbox_fail(ds,
                             now.status ? now.status : MEMDS_ST_COMMAND_FAILED,
                             now.reason ? now.reason : "message refused");
    }
    else {
        /* sent meanwhile by another sender */
        rv = file_late(ds, l, &now, data, len, bcc, bcc_len);
    }
    if (memds_outbox_unclaim(&l->st, id) != APR_SUCCESS) {
        /* the claim ends with the connection */
        memds_pgconn_mark_broken(l->conn);
    }
    return rv;
}

/* Due retries of this device's Outbox (at its syncs). */
static apr_status_t outbox_retry(memds_ds_t *ds)
{
    ledger_t l;
    apr_array_header_t *rows;
    int i;

    if (ledger_open(ds, &l) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_outbox_due(&l.st, &rows, NULL, ds->account, ds->device_id,
                         ds->store, 20)
        != APR_SUCCESS) {
        return ledger_fail(ds, &l);
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_outbox_row_t *r = APR_ARRAY_IDX(rows, i, memds_outbox_row_t *);
        const char *g;
        ds->ok_status = 0;
        if (submit(ds, &l, r->id, r->envelope_from,
                   (const char *const *)r->rcpts->elts, r->rcpts->nelts,
                   r->data, r->len, r->bcc, r->bcc_len)
            != APR_SUCCESS) {
            if (ds->status == 0) {
                return APR_EGENERAL;
            }
            memds_logf(MBOX(ds)->cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                       MEMDS_LOGNO(00406) "%s", ds->reason);
            ds->status = 0;
            continue;
        }
        if (ds->ok_status == 0 && outbox_done(ds, r->id, &g) != APR_SUCCESS) {
            return APR_EGENERAL; /* (sent now: the device's item goes) */
        }
    }
    ds->ok_status = 0;
    return APR_SUCCESS;
}

/* SMTP MAIL FROM: the account when it is an address (accounts that log in
 * with their mail address), else the message's sender. */
static const char *envelope_from(memds_ds_t *ds,
                                 const memds_mime_submission_t *sub)
{
    return strchr(ds->login, '@') ? ds->login : sub->from;
}

static apr_status_t outbox_add(memds_ds_t *ds, const char **pguid,
                               const char *type, const char *data,
                               apr_size_t len)
{
    memds_mbox_t *x = MBOX(ds);
    memds_mbox_in_t in;
    ledger_t l;
    memds_outbox_row_t row;
    memds_mime_submission_t *sub;
    const char *sha1, *why = NULL, *from;
    apr_int64_t id;
    apr_status_t rv;

    if (ds->luid_hint == NULL) {
        return memds_mbox_fail(ds, MEMDS_ST_INCOMPLETE_COMMAND,
                               "an Outbox item without the device's id");
    }
    if (memds_mbox_parse_in(ds, &in, type, data, len) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (in.msg == NULL) {
        return memds_mbox_fail(
            ds, MEMDS_ST_INCOMPLETE_COMMAND,
            "an Outbox item without the message (no emailitem)");
    }
    if (ledger_open(ds, &l) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    sha1 = memds_sha1_hex(data, len, ds->st->pool);
    rv = memds_outbox_find(&l.st, &row, ds->account, ds->device_id, ds->store,
                           ds->luid_hint, sha1);
    if (rv == APR_SUCCESS) {
        /* A retried Add: its outcome, never a second submission. */
        if (strcmp(row.state, "rejected") == 0) {
            refused_retry(ds, &l, &row);
            return memds_mbox_fail(ds,
                                   row.status ? row.status
                                              : MEMDS_ST_COMMAND_FAILED,
                                   row.reason ? row.reason : "message refused");
        }
        if (strcmp(row.state, "retrying") == 0 && !row.due) {
            ds->ok_status = MEMDS_ST_ACCEPTED;
            *pguid = outbox_guid(ds, row.id);
            return APR_SUCCESS;
        }
        if (strcmp(row.state, "filed") == 0
            || strcmp(row.state, "acknowledged") == 0) {
            return outbox_done(ds, row.id, pguid);
        }
        if (strcmp(row.state, "submitting") == 0) {
            memds_logf(
                x->cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                MEMDS_LOGNO(00407) "outbox %" APR_INT64_T_FMT
                           " of %s: retried while its submission was in "
                           "progress or interrupted; it may have been sent and "
                           "is not sent again",
                    row.id, ds->account);
        }
        /* received (died before SMTP) or a due retry: the stored message is
         * sent now, exactly as prepared the first time; submitting or
         * submitted: sent, filed in Sent now if it is not (submit decides
         * under the row's claim, after reading it again) */
        if (row.data == NULL) {
            return memds_mbox_fail(ds, MEMDS_ST_COMMAND_FAILED,
                                   "outbox ledger row without its message");
        }
        if (submit(ds, &l, row.id, row.envelope_from,
                   (const char *const *)row.rcpts->elts, row.rcpts->nelts,
                   row.data, row.len, row.bcc, row.bcc_len)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        if (ds->ok_status == MEMDS_ST_ACCEPTED) {
            *pguid = outbox_guid(ds, row.id);
            return APR_SUCCESS;
        }
        return outbox_done(ds, row.id, pguid);
    }
    else if (rv != APR_ENOENT) {
        return ledger_fail(ds, &l);
    }
    else {
        id = 0;
    }
    if (compose_smart(ds, &in) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    from = strchr(ds->login, '@') ? ds->login : NULL;
    if (memds_mime_prepare(&sub, in.msg, in.len, from, NULL,
                           (apr_size_t)64 * 1024 * 1024, &why, ds->st->pool)
        != APR_SUCCESS) {
        return memds_mbox_fail(ds, MEMDS_ST_BAD_REQUEST,
                               apr_psprintf(ds->st->pool, "cannot send: %s",
                                            why ? why : "invalid message"));
    }
    fault_point("outbox-received-before");
    if (id == 0
        && memds_outbox_insert(&l.st, &id, ds->account, ds->device_id,
                               ds->store, x->cfg->location, ds->luid_hint, sha1,
                               sub->message_id, envelope_from(ds, sub),
                               (const char *const *)sub->rcpts->elts,
                               sub->rcpts->nelts, sub->data, sub->len,
                               sub->bcc_fields, sub->bcc_len)
               != APR_SUCCESS) {
        return ledger_fail(ds, &l);
    }
    fault_point("outbox-received");
    if (submit(ds, &l, id, envelope_from(ds, sub),
               (const char *const *)sub->rcpts->elts, sub->rcpts->nelts,
               sub->data, sub->len, sub->bcc_fields, sub->bcc_len)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (ds->ok_status == MEMDS_ST_ACCEPTED) {
        *pguid = outbox_guid(ds, id);
        return APR_SUCCESS;
    }
    return outbox_done(ds, id, pguid);
}

/* The rest of the Outbox datastore: it has nothing to send to a device but
 * the deletions of its sent items. */
static apr_status_t outbox_snapshot(memds_ds_t *ds, apr_int64_t *pseq)
{
    if (outbox_retry(ds) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    if (memds_outbox_acknowledge(ds->st, ds->account, ds->device_id, ds->store,
                                 MEMDS_OUTBOX_FOLDER)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    /* (past this transaction's own tombstones when it can: a sent item's
     * Delete goes in the session that sent it, not the next) */
    return memds_outbox_seq(ds->st, pseq, ds->account, MEMDS_OUTBOX_FOLDER)
                   == APR_SUCCESS
               ? APR_SUCCESS
               : memds_mbox_fail_db(ds);
}

/* The rest of the Outbox datastore: nothing goes to a device but the
 * deletions of its sent items. */
static apr_status_t outbox_changes(memds_ds_t *ds,
                                   apr_array_header_t **pchanges,
                                   apr_int64_t since, apr_int64_t upto)
{
    apr_array_header_t *rows;

    if (memds_mail_changed(ds->st, &rows, ds->account, MEMDS_OUTBOX_FOLDER,
                           since, upto)
        != APR_SUCCESS) {
        return memds_mbox_fail_db(ds);
    }
    *pchanges = memds_mbox_changes_of(rows, ds->st->pool);
    return APR_SUCCESS;
}

static apr_status_t outbox_fetch(memds_ds_t *ds, const char *guid,
                                 apr_int64_t known_seq, const char **pdata,
                                 apr_size_t *plen, const char **ptype)
{
    return APR_ENOENT; /* only deletions go to the device */
}

static apr_status_t outbox_replace(memds_ds_t *ds, const char *guid,
                                   const char *type, const char *data,
                                   apr_size_t len)
{
    const char *g;

    return outbox_add(ds, &g, type, data, len);
}

static apr_status_t outbox_remove(memds_ds_t *ds, const char *guid)
{
    return APR_SUCCESS; /* the device forgets its item; sent is sent */
}

static apr_status_t outbox_match(memds_ds_t *ds, const char **pguid,
                                 const char *data, apr_size_t len)
{
    return APR_ENOENT; /* every Outbox item is an Add to send */
}

static apr_status_t outbox_same(memds_ds_t *ds, const char *guid,
                                const char *type, const char *data,
                                apr_size_t len, int *psame)
{
    return APR_ENOENT;
}

static apr_status_t outbox_last_change(memds_ds_t *ds, const char *guid,
                                       apr_int64_t *pseq, apr_int64_t *pby)
{
    return APR_ENOENT;
}

static apr_status_t outbox_check(memds_ds_t *ds)
{
    return MBOX(ds)->cfg->smtp_url
               ? APR_SUCCESS
               : memds_mbox_fail(ds, MEMDS_ST_NOT_FOUND,
                                 "no Outbox: sending is not configured "
                                 "(MemDSSMTPServer)");
}

static const memds_ds_vt outbox_vt = { "outbox",       outbox_snapshot,
                                       outbox_changes, outbox_fetch,
                                       outbox_add,     outbox_replace,
                                       outbox_remove,  outbox_match,
                                       outbox_same,    outbox_last_change,
                                       outbox_check,   1,
                                       NULL,           NULL,
                                       NULL,           NULL,
                                       NULL,           0 };

static int serves_outbox(const char *store)
{
    return strcasecmp(store, "Outbox") == 0;
}

static apr_status_t outbox_open(memds_ds_t *ds, const memds_ds_env_t *env,
                                apr_pool_t *p)
{
    apr_status_t rv = memds_mbox_init(ds, env, p);

    if (rv == APR_SUCCESS) {
        ds->vt = &outbox_vt;
    }
    return rv;
}

static const memds_ds_provider_t outbox_provider = { "imap", "outbox",
                                                     serves_outbox,
                                                     outbox_open };

void memds_send_register(memds_ds_registry_t *reg)
{
    memds_ds_register(reg, &outbox_provider);
}

apr_status_t memds_send_background(int *psent, struct memds_pgpool_t *pool,
                                   const memds_mail_cfg_t *cfg, int limit,
                                   apr_pool_t *p)
{
    memds_pgconn_t *conn;
    memds_store_t st;
    apr_array_header_t *rows;
    const char *why;
    apr_status_t rv;
    int i;

    *psent = 0;
    if (cfg->location == NULL || cfg->smtp_url == NULL
        || cfg->smtp_auth == MEMDS_SMTP_AUTH_USER) {
        return APR_SUCCESS; /* nothing this job can send */
    }
    if (memds_pgpool_acquire_for(&conn, pool, &why, p) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    memds_store_init(&st, conn, p);
    if (memds_outbox_due(&st, &rows, cfg->location, NULL, 0, NULL, limit)
        != APR_SUCCESS) {
        /* (PostgreSQL down or restarted: requests report that; the job
         * just tries again at its next run) */
        memds_logf(cfg->log, MEMDS_LOG_INFO, APR_SUCCESS,
                   MEMDS_LOGNO(00408) "outbox retries skipped: %s", st.err);
        return APR_EGENERAL;
    }
    for (i = 0; i < rows->nelts; ++i) {
        memds_outbox_row_t *r = APR_ARRAY_IDX(rows, i, memds_outbox_row_t *);
        memds_ds_env_t env;
        memds_ds_t *ds;
        ledger_t l;
        const char *g;
        apr_pool_t *sub;

        apr_pool_create(&sub, p);
        memset(&env, 0, sizeof(env));
        env.kind = "imap";
        env.mail = cfg;
        env.shared = memds_ds_shared_make(sub);
        st.pool = sub;
        /* (opened directly: the row's datastore may be the hierarchical
         * one, whose Outbox folder this is) */
        ds = apr_pcalloc(sub, sizeof(*ds));
        ds->st = &st;
        ds->account = r->account;
        ds->login = memds_account_login(r->account, cfg->realm);
        ds->store = r->store;
        ds->device_id = r->device_id;
        if (ds->login == NULL /* (the location's realm changed since) */
            || outbox_open(ds, &env, sub) != APR_SUCCESS) {
            apr_pool_destroy(sub);
            continue;
        }
        rv = ledger_open(ds, &l);
        if (rv == APR_SUCCESS) {
            rv = submit(ds, &l, r->id, r->envelope_from,
                        (const char *const *)r->rcpts->elts, r->rcpts->nelts,
                        r->data, r->len, r->bcc, r->bcc_len);
        }
        if (rv == APR_SUCCESS && ds->ok_status == 0) {
            rv = outbox_done(ds, r->id, &g);
            if (rv == APR_SUCCESS) {
                ++*psent;
                memds_logf(cfg->log, MEMDS_LOG_INFO, APR_SUCCESS,
                           MEMDS_LOGNO(00409) "outbox %" APR_INT64_T_FMT
                                      " of %s: sent by the background retry",
                               r->id, r->account);
            }
        }
        if (rv != APR_SUCCESS && ds->reason) {
            memds_logf(cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                       MEMDS_LOGNO(00410) "outbox retry: %s", ds->reason);
        }
        apr_pool_destroy(sub);
        st.pool = p;
    }
    return APR_SUCCESS;
}
