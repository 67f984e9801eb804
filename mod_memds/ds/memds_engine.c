/* memds_engine.c: the OMA DS 1.2 protocol engine (see memds_engine.h).
 *
 * One request:
 *   decode -> version check -> BEGIN -> find + lock the session (token, or
 *   after authentication device + SessionID) -> replay check (same MsgID
 *   and same bytes: stored answer) -> authenticate if the session is new ->
 *   process every command -> fill the answer up to the client's MaxMsgSize
 *   -> store state and answer -> COMMIT -> send.
 *
 * Session phases (sessions.phase):
 *   init         the client's package 1 (alerts, DevInf) is arriving
 *   client-sync  its package 3 (Sync with its changes) is arriving
 *   server-sync  our package 4 is going out, possibly over several messages
 *   map          waiting for the client's package 5 (statuses, Map)
 *   done         anchors committed; kept for replays until it expires
 */
#include "ds/memds_engine.h"

#include <apr_base64.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_sha1.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <stdlib.h>
#include <string.h>

#include "ds/memds_ds.h"
#include "ds/memds_sessdb.h"
#include "syncml/memds_xml.h"

#define PH_INIT "init"
#define PH_CLIENT "client-sync"
#define PH_SERVER "server-sync"
#define PH_MAP "map"
#define PH_DONE "done"
#define PH_SUSPENDED "suspended"

/* Room kept free below the client's MaxMsgSize for what the sizer cannot
 * know in advance (none today; a safety margin for odd clients). */
#define MSG_MARGIN 64

typedef struct eng_t {
    apr_pool_t *p;
    const memds_engine_cfg_t *cfg;
    const memds_request_t *req;
    memds_response_t *resp;
    memds_sessdb_t *db;
    memds_enc_e enc;
    memds_msg_t *in;
    const char *req_sha1;
    memds_session_row_t sess;
    memds_device_t dev;
    int new_session;
    apr_array_header_t *sstores;   /* memds_sstore_t * */
    /* the answer */
    memds_msg_t *out;
    int cmd_id;
    apr_array_header_t *replies;   /* Status / Results, in order */
    apr_array_header_t *cmds;      /* our own commands (Alert, Sync, Put...) */
    int final;
    const char *hdr_status;
    memds_meta_t *chal;
    int authenticated_now;
    int saw_alert;                 /* sync alerts processed in this message */
    int need_sync_out;             /* package 4 starts in this answer */
    int suspend;                   /* the client sent Alert 224 */
    /* the client's statuses for our items, stored in one statement */
    apr_array_header_t *st_refs, *st_luids, *st_codes;
    /* queue items changed while filling, stored in one statement */
    apr_array_header_t *dirty;
    /* datastores: what they share in this request, the device's password
     * of this message (pass-through IMAP login), its DevInf (parsed once) */
    memds_ds_shared_t *ds_shared;
    const char *password;
    const memds_devinf_t *client_devinf;
    int client_devinf_read;
} eng_t;

static apr_status_t open_ds(memds_ds_t **pds, eng_t *e, const char *store);
static apr_status_t ds_fail(eng_t *e, memds_ds_t *ds, const char *what);

/* ================================================================ helpers */

static const char *next_id(eng_t *e)
{
    return apr_itoa(e->p, e->cmd_id++);
}

static const char *new_token(apr_pool_t *p)
{
    unsigned char raw[16];
    char *hex = apr_palloc(p, 33);
    int i;

    if (apr_generate_random_bytes(raw, sizeof(raw)) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < 16; ++i) {
        apr_snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    return hex;
}

/* Server anchors: UTC time plus a random part, so two sessions in the same
 * second still differ. */
static const char *new_anchor(apr_pool_t *p)
{
    apr_time_exp_t t;
    char buf[32];
    apr_size_t n;
    const char *tok = new_token(p);

    apr_time_exp_gmt(&t, apr_time_now());
    apr_strftime(buf, &n, sizeof(buf), "%Y%m%dT%H%M%SZ", &t);
    return apr_pstrcat(p, buf, "-", tok ? apr_pstrndup(p, tok, 6) : "0", NULL);
}

/* Datastore name from an Alert/Sync LocURI: no "./", no CGI options, no
 * trailing slash. */
static const char *store_name(const char *uri, apr_pool_t *p)
{
    const char *s = uri ? uri : "";
    apr_size_t n;

    while (s[0] == '.' && s[1] == '/') {
        s += 2;
    }
    n = strcspn(s, "?");
    while (n > 0 && s[n - 1] == '/') {
        --n;
    }
    return apr_pstrndup(p, s, n);
}

static memds_sstore_t *find_sstore(eng_t *e, const char *name)
{
    int i;

    for (i = 0; e->sstores && i < e->sstores->nelts; ++i) {
        memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i, memds_sstore_t *);
        if (strcmp(ss->store, name) == 0) {
            return ss;
        }
    }
    return NULL;
}

static memds_loc_t *loc(apr_pool_t *p, const char *uri)
{
    memds_loc_t *l = apr_pcalloc(p, sizeof(*l));

    l->uri = uri;
    return l;
}

static memds_item_t *item_new(apr_pool_t *p)
{
    return apr_pcalloc(p, sizeof(memds_item_t));
}

static memds_meta_t *meta_new(apr_pool_t *p)
{
    memds_meta_t *m = apr_pcalloc(p, sizeof(*m));

    m->size = m->max_msg_size = m->max_obj_size = MEMDS_NOVAL;
    return m;
}

static memds_cmd_t *cmd_new(eng_t *e, memds_cmd_e type)
{
    memds_cmd_t *c = apr_pcalloc(e->p, sizeof(*c));

    c->type = type;
    return c;
}

static void push(apr_array_header_t **a, void *v, apr_pool_t *p)
{
    if (*a == NULL) {
        *a = apr_array_make(p, 4, sizeof(void *));
    }
    APR_ARRAY_PUSH(*a, void *) = v;
}

/* A Status answering cmd (NULL: the SyncHdr). CmdIDs are given when the
 * answer is assembled. */
static memds_cmd_t *status_for(eng_t *e, const memds_cmd_t *cmd,
                               const char *code)
{
    memds_cmd_t *s = cmd_new(e, MEMDS_CMD_STATUS);

    s->msg_ref = e->in->hdr.msg_id;
    s->cmd_ref = cmd ? cmd->cmd_id : "0";
    s->cmd = cmd ? memds_cmd_name(cmd->type) : "SyncHdr";
    s->data = code;
    return s;
}

static int wants_status(const eng_t *e, const memds_cmd_t *cmd)
{
    return !e->in->hdr.no_resp && !cmd->no_resp;
}

static void reply(eng_t *e, const memds_cmd_t *cmd, memds_cmd_t *status)
{
    if (cmd == NULL || wants_status(e, cmd)) {
        APR_ARRAY_PUSH(e->replies, memds_cmd_t *) = status;
    }
}

static void add_ref(apr_array_header_t **refs, const char *uri, apr_pool_t *p)
{
    if (uri) {
        push(refs, (void *)uri, p);
    }
}

static int code_of(const char *s)
{
    return s ? atoi(s) : 0;
}

static apr_status_t db_fail(eng_t *e, const char *what)
{
    e->resp->http_status = 503;
    e->resp->log_level = 3;
    e->resp->log_msg = apr_psprintf(e->p, "database error while %s: %s", what,
                                    e->db->err ? e->db->err : "?");
    e->db->vt->rollback(e->db);
    return APR_EGENERAL;
}

/* ====================================================== answer assembly */

static memds_msg_t *answer_header(eng_t *e, int with_respuri)
{
    memds_msg_t *m = apr_pcalloc(e->p, sizeof(*m));
    const memds_hdr_t *h = &e->in->hdr;

    m->version = e->in->version;
    m->hdr.verdtd = e->in->version == MEMDS_V11 ? "1.1" : "1.2";
    m->hdr.verproto = e->in->version == MEMDS_V11 ? "SyncML/1.1" : "SyncML/1.2";
    m->hdr.session_id = h->session_id;
    m->hdr.msg_id = apr_itoa(e->p, e->sess.server_msg_id > 0
                             ? e->sess.server_msg_id : 1);
    m->hdr.target = loc(e->p, h->source->uri);
    m->hdr.target->name = h->source->name;
    m->hdr.source = loc(e->p, h->target->uri);
    if (with_respuri && e->sess.token && e->req->base_url) {
        m->hdr.resp_uri = apr_pstrcat(e->p, e->req->base_url, "?s=",
                                      e->sess.token, NULL);
    }
    m->hdr.meta = meta_new(e->p);
    m->hdr.meta->max_msg_size = e->cfg->max_msg_size;
    if (e->in->version == MEMDS_V12) {
        m->hdr.meta->max_obj_size = e->cfg->max_obj_size;
    }
    m->cmds = apr_array_make(e->p, 16, sizeof(memds_cmd_t *));
    return m;
}

/* Give CmdIDs in document order (nested commands too). */
static void number(eng_t *e, memds_cmd_t *c)
{
    int i;

    c->cmd_id = next_id(e);
    for (i = 0; c->cmds && i < c->cmds->nelts; ++i) {
        number(e, APR_ARRAY_IDX(c->cmds, i, memds_cmd_t *));
    }
}

static apr_status_t encode(eng_t *e, memds_msg_t *m)
{
    memds_buf_t b;
    memds_codec_err_t err;

    memds_buf_init(&b, 4096, e->p);
    if (memds_msg_encode(&b, m, e->enc, &err, e->p) != APR_SUCCESS) {
        e->resp->http_status = 500;
        e->resp->log_level = 3;
        e->resp->log_msg = apr_psprintf(e->p, "cannot encode the answer: %s",
                                        err.msg);
        return APR_EGENERAL;
    }
    e->resp->http_status = 200;
    e->resp->body = b.data;
    e->resp->len = b.len;
    return APR_SUCCESS;
}

/* An answer that ends the exchange without a session: a SyncHdr status
 * code for the header and for every command (e.g. 401), Final, no RespURI. */
static apr_status_t refuse(eng_t *e, const char *hdr_code, const char *cmd_code,
                           const char *why)
{
    memds_msg_t *m = answer_header(e, 0);
    memds_cmd_t *s;
    int i;

    e->cmd_id = 1;
    s = status_for(e, NULL, hdr_code);
    add_ref(&s->target_refs, e->in->hdr.target->uri, e->p);
    add_ref(&s->source_refs, e->in->hdr.source->uri, e->p);
    s->chal = e->chal;
    if (why && strcmp(hdr_code, "401") != 0 && strcmp(hdr_code, "407") != 0) {
        memds_item_t *it = item_new(e->p);
        it->data_kind = MEMDS_DATA_BYTES;
        it->data.data = why;
        it->data.len = strlen(why);
        push(&s->items, it, e->p);
    }
    number(e, s);
    APR_ARRAY_PUSH(m->cmds, memds_cmd_t *) = s;
    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        if (c->type == MEMDS_CMD_STATUS || !wants_status(e, c)) {
            continue;
        }
        s = status_for(e, c, cmd_code);
        number(e, s);
        APR_ARRAY_PUSH(m->cmds, memds_cmd_t *) = s;
    }
    m->final = 1;
    if (!e->resp->log_msg) {
        e->resp->log_level = 6;
        e->resp->log_msg = apr_psprintf(e->p, "device %s session %s MsgID %s: "
                                        "refused with %s: %s",
                                        e->in->hdr.source->uri,
                                        e->in->hdr.session_id,
                                        e->in->hdr.msg_id, hdr_code, why);
    }
    return encode(e, m);
}

/* ========================================================= authentication */

/* The mailbox datastores log in to IMAP with the device's own password. */
static int pass_through(const eng_t *e)
{
    return strcmp(e->cfg->datastore, "imap") == 0 && e->cfg->mail
           && e->cfg->mail->master_user == NULL;
}

/* Decide who the client is. Returns APR_SUCCESS with *paccount set, or
 * APR_EACCES after filling the refusal answer, or a database error. */
static void session_password(eng_t *e)
{
    const memds_cred_t *cred = e->in->hdr.cred;
    const char *user, *pass;

    /* A later message of a session: the basic credentials the device keeps
     * sending carry the password for the pass-through IMAP login (the IMAP
     * server checks it again there). */
    if (pass_through(e) && !e->req->http_user && cred
        && (!cred->meta || !cred->meta->type
            || strcmp(cred->meta->type, "syncml:auth-basic") == 0)
        && memds_auth_basic_decode(&user, &pass, &cred->data, e->p) == APR_SUCCESS
        && strcmp(user, e->sess.account) == 0) {
        e->password = pass;
        e->hdr_status = "200";
    }
}

static apr_status_t authenticate(eng_t *e, const char **paccount)
{
    const memds_hdr_t *h = &e->in->hdr;
    const memds_cred_t *cred = h->cred;
    const char *type = cred && cred->meta && cred->meta->type
                       ? cred->meta->type : "syncml:auth-basic";
    const char *user = NULL, *pass = NULL, *devid = h->source->uri;
    memds_auth_row_t ar;
    apr_status_t rv;
    int md5 = strcmp(type, "syncml:auth-md5") == 0;
    const char *why = NULL;

    if (e->req->http_user) {
        *paccount = e->req->http_user;
        e->hdr_status = "200";
        return APR_SUCCESS;
    }
    if (e->cfg->verifier == NULL) {
        why = "no credential verifier configured";
        goto fail_nocount;
    }
    if (cred == NULL) {
        user = h->source->name;
        why = "no credentials";
        goto challenge;
    }
    if (md5) {
        user = h->source->name;
        if (user == NULL || !*user) {
            why = "md5 credentials without LocName (user name)";
            goto challenge;
        }
    }
    else if (strcmp(type, "syncml:auth-basic") == 0) {
        if (memds_auth_basic_decode(&user, &pass, &cred->data, e->p)
            != APR_SUCCESS) {
            why = "malformed basic credentials";
            goto challenge;
        }
    }
    else {
        e->resp->log_level = 6;
        e->resp->log_msg = apr_psprintf(e->p, "device %s: unsupported "
                                        "authentication type %.60s", devid, type);
        return refuse(e, "406", "406", "unsupported authentication type")
               == APR_SUCCESS ? APR_EACCES : APR_EGENERAL;
    }
    if (strlen(user) > 255) {
        why = "user name too long";
        goto challenge;
    }
    if (e->db->vt->auth_get(e->db, &ar, user, devid) != APR_SUCCESS) {
        return db_fail(e, "reading authentication state");
    }
    if (ar.blocked) {
        why = "too many failed attempts, blocked for a while";
        goto challenge_nocount;
    }
    if (md5) {
        const char *inner = NULL, *expect, *got;
        rv = e->cfg->verifier->md5_inner(e->cfg->verifier, user, &inner, e->p);
        if (rv == APR_ENOENT) {
            /* The verifier does not know it (passwords live on the IMAP
             * server): the value an admin set or a basic login recorded. */
            rv = e->db->vt->md5_get(e->db, &inner, user);
            if (rv != APR_SUCCESS && rv != APR_ENOENT) {
                return db_fail(e, "reading md5 credential data");
            }
        }
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            e->resp->http_status = 503;
            e->resp->log_level = 3;
            e->resp->log_msg = "credential verifier unavailable";
            e->db->vt->rollback(e->db);
            return APR_EGENERAL;
        }
        if (rv == APR_ENOENT) {
            why = "unknown user or no md5 credential data";
            goto challenge;
        }
        expect = memds_auth_md5_digest(inner, ar.nonce, e->p);
        got = apr_pstrmemdup(e->p, cred->data.data, cred->data.len);
        if (cred->data.len == 16 && (!cred->meta || !cred->meta->format
                                     || strcmp(cred->meta->format, "b64") != 0)) {
            char *b = apr_palloc(e->p, apr_base64_encode_len(16));
            apr_base64_encode(b, cred->data.data, 16);
            got = b;
        }
        if (!memds_auth_equal(expect, got)) {
            why = "wrong md5 digest";
            goto challenge;
        }
    }
    else {
        rv = e->cfg->verifier->check_password(e->cfg->verifier, user, pass, e->p);
        if (rv == APR_EACCES) {
            why = "wrong user name or password";
            goto challenge;
        }
        if (rv != APR_SUCCESS) {
            e->resp->http_status = 503;
            e->resp->log_level = 3;
            e->resp->log_msg = "credential verifier unavailable";
            e->db->vt->rollback(e->db);
            return APR_EGENERAL;
        }
    }
    if (e->db->vt->auth_ok(e->db, user, devid) != APR_SUCCESS) {
        return db_fail(e, "recording authentication");
    }
    if (!md5 && e->cfg->record_md5
        && e->db->vt->md5_put(e->db, user, memds_auth_md5_inner(user, pass, e->p),
                               "basic-login") != APR_SUCCESS) {
        /* Keep md5 working for this account's other devices. */
        return db_fail(e, "recording md5 credential data");
    }
    if (md5) {
        /* The nonce for the next session goes out with this answer. */
        const char *nonce = memds_auth_new_nonce(e->p);
        if (e->db->vt->auth_set_nonce(e->db, user, devid, nonce) != APR_SUCCESS) {
            return db_fail(e, "storing the nonce");
        }
        e->chal = meta_new(e->p);
        e->chal->type = "syncml:auth-md5";
        e->chal->format = "b64";
        e->chal->next_nonce = nonce;
    }
    /* With a pass-through IMAP login the password is needed in every
     * message that reaches the mailbox: 200 (not 212, "authenticated for
     * the session") keeps the device sending its credentials. */
    e->password = pass;
    e->hdr_status = pass_through(e) && !md5 ? "200" : "212";
    e->authenticated_now = 1;
    *paccount = user;
    return APR_SUCCESS;

challenge:
    if (user && e->db->vt->auth_failed(e->db, user, devid,
                                        e->cfg->auth_max_failures,
                                        e->cfg->auth_window,
                                        e->cfg->auth_block) != APR_SUCCESS) {
        return db_fail(e, "counting an authentication failure");
    }
challenge_nocount:
    e->chal = meta_new(e->p);
    if (e->cfg->auth_type == MEMDS_AUTH_MD5 || md5) {
        const char *nonce = memds_auth_new_nonce(e->p);
        e->chal->type = "syncml:auth-md5";
        e->chal->format = "b64";
        e->chal->next_nonce = nonce;
        if (user && e->db->vt->auth_set_nonce(e->db, user, devid, nonce)
            != APR_SUCCESS) {
            return db_fail(e, "storing the nonce");
        }
    }
    else {
        e->chal->type = "syncml:auth-basic";
        e->chal->format = "b64";
    }
fail_nocount:
    e->resp->log_level = 4;
    e->resp->log_msg = apr_psprintf(e->p, "device %s user %s: authentication "
                                    "failed: %s", devid,
                                    user ? user : "(none)", why);
    if (refuse(e, cred ? "401" : "407", cred ? "401" : "407", why) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    /* Keep the failure count and the nonce. */
    if (e->db->vt->commit(e->db) != APR_SUCCESS) {
        return db_fail(e, "committing an authentication failure");
    }
    return APR_EACCES;
}

/* ================================================================ DevInf */

static int is_devinf_uri(const char *uri)
{
    return uri && (strcmp(uri, "./devinf12") == 0 || strcmp(uri, "./devinf11") == 0
                   || strcmp(uri, "./devinf10") == 0);
}

static const char *devinf_uri(const eng_t *e)
{
    return e->in->version == MEMDS_V11 ? "./devinf11" : "./devinf12";
}

/* The client's DevInf datastore whose SourceRef is uri, if it sent one. */
static const memds_datastore_t *client_ds(const memds_devinf_t *di,
                                          const char *uri)
{
    int i;

    for (i = 0; di && di->datastores && i < di->datastores->nelts; ++i) {
        const memds_datastore_t *ds = APR_ARRAY_IDX(di->datastores, i,
                                                    memds_datastore_t *);
        if (ds->source_ref && uri && strcmp(ds->source_ref, uri) == 0) {
            return ds;
        }
    }
    return NULL;
}

/* The DevInf the client sent in this message (Put or Results), if any. */
static const memds_devinf_t *devinf_in_message(const eng_t *e)
{
    int i;

    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        if ((c->type == MEMDS_CMD_PUT || c->type == MEMDS_CMD_RESULTS)
            && c->items && c->items->nelts > 0) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, 0, memds_item_t *);
            if (it->data_kind == MEMDS_DATA_DEVINF) {
                return it->devinf;
            }
        }
    }
    return NULL;
}

static memds_ctver_t *ctver(apr_pool_t *p, const char *type, const char *ver)
{
    memds_ctver_t *c = apr_pcalloc(p, sizeof(*c));

    c->ct_type = type;
    c->ver_ct = ver;
    return c;
}

/* Our DevInf: one DataStore per datastore the client alerts in this message
 * or has in this session; the items datastore takes any content type, so
 * each advertises the client's own preferred types when known. */
static memds_devinf_t *server_devinf(eng_t *e)
{
    memds_devinf_t *di = apr_pcalloc(e->p, sizeof(*di));
    const memds_devinf_t *cdi = devinf_in_message(e);
    apr_array_header_t *names = apr_array_make(e->p, 4, sizeof(const char *));
    int i, j;

    di->version = e->in->version == MEMDS_V11 ? MEMDS_V11 : MEMDS_V12;
    di->verdtd = di->version == MEMDS_V11 ? "1.1" : "1.2";
    di->man = e->cfg->server_name ? e->cfg->server_name : "mod_memds";
    di->mod = "mod_memds";
    di->swv = MEMDS_VERSION;
    di->devid = e->in->hdr.target->uri;
    di->devtyp = "server";
    di->utc = 1;
    di->large_objs = 1;
    di->number_of_changes = 1;
    di->datastores = apr_array_make(e->p, 4, sizeof(memds_datastore_t *));
    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        if (c->type != MEMDS_CMD_ALERT) {
            continue;
        }
        for (j = 0; c->items && j < c->items->nelts; ++j) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, j, memds_item_t *);
            if (it->target && it->target->uri) {
                APR_ARRAY_PUSH(names, const char *) = it->target->uri;
                APR_ARRAY_PUSH(names, const char *) = it->source ? it->source->uri : NULL;
            }
        }
    }
    for (i = 0; e->sstores && i < e->sstores->nelts; ++i) {
        const memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i, memds_sstore_t *);
        APR_ARRAY_PUSH(names, const char *) = ss->server_uri;
        APR_ARRAY_PUSH(names, const char *) = ss->client_uri;
    }
    for (i = 0; i + 1 < names->nelts; i += 2) {
        const char *uri = APR_ARRAY_IDX(names, i, const char *);
        const memds_datastore_t *cds = client_ds(cdi, APR_ARRAY_IDX(names, i + 1,
                                                                    const char *));
        memds_datastore_t *ds = apr_pcalloc(e->p, sizeof(*ds));
        int k, dup = 0;

        for (k = 0; k < di->datastores->nelts; ++k) {
            if (strcmp(APR_ARRAY_IDX(di->datastores, k, memds_datastore_t *)->source_ref,
                       uri) == 0) {
                dup = 1;
            }
        }
        if (dup) {
            continue;
        }
        ds->source_ref = uri;
        ds->display_name = store_name(uri, e->p);
        if (strcmp(e->cfg->datastore, "imap") == 0) {
            /* A mailbox: OMA email objects or plain messages, the device's
             * preference first; folder objects in the hierarchical one. */
            int rfc = cds && cds->rx_pref && cds->rx_pref->ct_type
                      && strcasecmp(cds->rx_pref->ct_type, "message/rfc822") == 0;
            const char *n = store_name(uri, e->p);
            memds_ctver_t *em = ctver(e->p, "application/vnd.omads-email+xml", "1.2");
            memds_ctver_t *rf = ctver(e->p, "message/rfc822", "1.0");
            ds->rx_pref = ds->tx_pref = rfc ? rf : em;
            ds->rx = apr_array_make(e->p, 2, sizeof(memds_ctver_t *));
            APR_ARRAY_PUSH(ds->rx, memds_ctver_t *) = rfc ? em : rf;
            if (strcasecmp(n, "email") == 0 || strcasecmp(n, "mail") == 0) {
                APR_ARRAY_PUSH(ds->rx, memds_ctver_t *) =
                    ctver(e->p, "application/vnd.omads-folder+xml", "1.2");
                ds->hierarchical = di->version == MEMDS_V12;
            }
            ds->tx = ds->rx;
        }
        else if (cds && cds->rx_pref) {
            ds->rx_pref = cds->rx_pref;
            ds->rx = cds->rx;
            ds->tx_pref = cds->tx_pref ? cds->tx_pref : cds->rx_pref;
            ds->tx = cds->tx;
        }
        else {
            ds->rx_pref = ctver(e->p, "text/plain", "1.0");
            ds->tx_pref = ctver(e->p, "text/plain", "1.0");
        }
        ds->sync_types = apr_array_make(e->p, 7, sizeof(const char *));
        for (k = 1; k <= 7; ++k) {
            APR_ARRAY_PUSH(ds->sync_types, const char *) = apr_itoa(e->p, k);
        }
        APR_ARRAY_PUSH(di->datastores, memds_datastore_t *) = ds;
    }
    return di;
}

/* Keep the client's DevInf: as XML (readable by DBAs and memds-codec). */
static apr_status_t store_client_devinf(eng_t *e, const memds_devinf_t *di)
{
    memds_tree_t t;
    memds_buf_t b;
    memds_codec_err_t err;
    int i, max_guid = 0;

    t.root = memds_devinf_to_tree(di, e->p);
    t.version = di->version;
    t.wbxml_version = 0;
    memds_buf_init(&b, 4096, e->p);
    /* A devinf root alone: wrap nothing, the XML codec writes it with its
     * namespace when it is the root. */
    if (memds_xml_encode(&b, &t, &err) != APR_SUCCESS) {
        b.len = 0;
    }
    for (i = 0; di->datastores && i < di->datastores->nelts; ++i) {
        const memds_datastore_t *ds = APR_ARRAY_IDX(di->datastores, i,
                                                    memds_datastore_t *);
        int g = ds->max_guid_size ? atoi(ds->max_guid_size) : 0;
        if (g > 0 && (max_guid == 0 || g < max_guid)) {
            max_guid = g;
        }
    }
    e->dev.max_guid_size = max_guid;
    e->dev.large_objs = di->large_objs;
    if (e->db->vt->device_set_devinf(e->db, e->dev.device_id,
                                      b.len ? b.data : NULL, b.len, max_guid,
                                      di->large_objs) != APR_SUCCESS) {
        return db_fail(e, "storing the DevInf");
    }
    return APR_SUCCESS;
}

/* ================================================================ alerts */

/* Alert codes 206-210 are the server-alerted forms of 200, 202-205. */
static int base_mode(int code)
{
    switch (code) {
    case 206: return 200;
    case 207: return 202;
    case 208: return 203;
    case 209: return 204;
    case 210: return 205;
    default: return code;
    }
}

static apr_status_t sync_alert(eng_t *e, const memds_cmd_t *cmd, int code)
{
    int i;

    for (i = 0; cmd->items && i < cmd->items->nelts; ++i) {
        const memds_item_t *it = APR_ARRAY_IDX(cmd->items, i, memds_item_t *);
        memds_cmd_t *st = status_for(e, cmd, "200"), *al;
        memds_item_t *sit, *ait;
        memds_sstore_t *ss;
        memds_syncstate_t state;
        const char *name, *next = NULL, *last = NULL, *server_last = NULL;
        int mode = base_mode(code), have_state = 0, effective;
        memds_sstore_t *resumed = NULL;
        apr_int64_t old_pk = 0;
        apr_status_t rv;

        add_ref(&st->target_refs, it->target ? it->target->uri : NULL, e->p);
        add_ref(&st->source_refs, it->source ? it->source->uri : NULL, e->p);
        name = store_name(it->target ? it->target->uri : NULL, e->p);
        if (!*name && it->source) {
            name = store_name(it->source->uri, e->p);
        }
        if (!*name || !it->source || !it->source->uri) {
            st->data = "404";
            reply(e, cmd, st);
            continue;
        }
        if (strcmp(e->sess.phase, PH_INIT) != 0) {
            st->data = "403"; /* sync alerts belong in package 1 */
            reply(e, cmd, st);
            continue;
        }
        {
            /* The datastore must exist (a mail folder) and be reachable. */
            memds_ds_t *ds;
            if ((rv = open_ds(&ds, e, name)) != APR_SUCCESS) {
                return rv;
            }
            if (ds->vt->check && ds->vt->check(ds) != APR_SUCCESS) {
                if (ds->status <= 0) {
                    return ds_fail(e, ds, "opening a datastore");
                }
                e->resp->log_level = 4;
                e->resp->log_msg = apr_psprintf(e->p, "device %s: %s",
                                                e->dev.devid, ds->reason);
                st->data = apr_itoa(e->p, ds->status);
                reply(e, cmd, st);
                continue;
            }
        }
        if (it->meta && it->meta->anchor) {
            next = it->meta->anchor->next;
            last = it->meta->anchor->last;
        }
        rv = e->db->vt->syncstate_get(e->db, &state, e->dev.device_id, name);
        if (rv == APR_SUCCESS) {
            have_state = 1;
            server_last = state.last_server_anchor;
        }
        else if (rv != APR_ENOENT) {
            return db_fail(e, "reading anchors");
        }
        if (code == 225) {
            /* Resume: continue the newest suspended session of this device
             * and datastore where it stopped, in its sync mode; without one
             * (or before 1.2), 509 and a normal sync. */
            if (e->in->version != MEMDS_V12) {
                st->data = "406";
                reply(e, cmd, st);
                continue;
            }
            rv = e->db->vt->suspended_find(e->db, &old_pk, e->dev.device_id,
                                            name, e->sess.session_pk);
            if (rv == APR_SUCCESS) {
                apr_array_header_t *olds;
                int k;
                if (e->db->vt->sstores_load(e->db, &olds, old_pk) != APR_SUCCESS) {
                    return db_fail(e, "loading a suspended session");
                }
                for (k = 0; k < olds->nelts; ++k) {
                    if (strcmp(APR_ARRAY_IDX(olds, k, memds_sstore_t *)->store, name) == 0) {
                        resumed = APR_ARRAY_IDX(olds, k, memds_sstore_t *);
                    }
                }
            }
            else if (rv != APR_ENOENT) {
                return db_fail(e, "finding a suspended session");
            }
            mode = resumed ? resumed->alert_code : 200;
            if (!resumed) {
                st->data = "509";
            }
        }
        effective = mode;
        if (!resumed && (mode == 200 || mode == 202 || mode == 204)) {
            /* A normal sync needs the anchors to agree; otherwise 508 and
             * the slow/refresh variant (+1). */
            if (!have_state || !last
                || strcmp(last, state.last_client_anchor) != 0) {
                st->data = "508";
                effective = mode + 1;
            }
        }
        ss = find_sstore(e, name);
        if (ss == NULL) {
            ss = apr_pcalloc(e->p, sizeof(*ss));
            push(&e->sstores, ss, e->p);
        }
        ss->store = name;
        ss->client_uri = it->source->uri;
        ss->server_uri = it->target && it->target->uri ? it->target->uri : name;
        ss->alert_code = effective;
        ss->slow = effective == 201;
        ss->client_next = next ? next : "";
        ss->server_next = new_anchor(e->p);
        ss->snapshot_seq = resumed ? resumed->snapshot_seq : -1;
        ss->queue_built = resumed ? resumed->queue_built : 0;
        if (resumed) {
            ss->slow = resumed->slow;
            if (e->db->vt->resume_copy(e->db, e->sess.session_pk, old_pk, name)
                != APR_SUCCESS) {
                return db_fail(e, "resuming a session");
            }
        }
        else if (effective == 205 || effective == 203) {
            /* Refresh: the device's copy starts empty (205) or replaces the
             * server's view of it (203); old maps must not match. */
            if (e->db->vt->map_clear(e->db, e->dev.device_id, name) != APR_SUCCESS) {
                return db_fail(e, "clearing maps");
            }
        }
        if (e->db->vt->sstore_save(e->db, e->sess.session_pk, ss) != APR_SUCCESS) {
            return db_fail(e, "saving a session datastore");
        }
        /* Echo the client's Next anchor in the Status item. */
        sit = item_new(e->p);
        sit->data_kind = MEMDS_DATA_META;
        sit->data_meta = meta_new(e->p);
        sit->data_meta->anchor = apr_pcalloc(e->p, sizeof(memds_anchor_t));
        sit->data_meta->anchor->next = ss->client_next;
        push(&st->items, sit, e->p);
        reply(e, cmd, st);
        /* Our Alert for the datastore. */
        al = cmd_new(e, MEMDS_CMD_ALERT);
        al->data = apr_itoa(e->p, effective);
        ait = item_new(e->p);
        ait->target = loc(e->p, ss->client_uri);
        ait->source = loc(e->p, ss->server_uri);
        ait->meta = meta_new(e->p);
        ait->meta->anchor = apr_pcalloc(e->p, sizeof(memds_anchor_t));
        ait->meta->anchor->last = (effective == 200 || effective == 202
                                   || effective == 204) ? server_last : NULL;
        ait->meta->anchor->next = ss->server_next;
        ait->meta->max_obj_size = e->cfg->max_obj_size;
        push(&al->items, ait, e->p);
        APR_ARRAY_PUSH(e->cmds, memds_cmd_t *) = al;
        e->saw_alert = 1;
    }
    if (cmd->items == NULL || cmd->items->nelts == 0) {
        reply(e, cmd, status_for(e, cmd, "412"));
    }
    return APR_SUCCESS;
}

static apr_status_t do_alert(eng_t *e, const memds_cmd_t *cmd)
{
    int code = code_of(cmd->data);

    if ((code >= 200 && code <= 210) || code == 225) {
        return sync_alert(e, cmd, code);
    }
    if (code == 224) {
        /* Suspend: the state stays as it is (all in the database); a later
         * session resumes it with Alert 225. */
        e->suspend = 1;
        reply(e, cmd, status_for(e, cmd, "200"));
        return APR_SUCCESS;
    }
    if (code == 222) {
        /* "Send the next message": answered by what we send anyway. */
        reply(e, cmd, status_for(e, cmd, "200"));
        return APR_SUCCESS;
    }
    /* 100 (display), 221, 223, 224/225 (suspend/resume, not yet): refused
     * explicitly so the client knows. */
    reply(e, cmd, status_for(e, cmd, "406"));
    return APR_SUCCESS;
}

/* ============================================== client changes (Sync) */

typedef struct op_ctx_t {
    eng_t *e;
    memds_sstore_t *ss;
    memds_ds_t *ds;
    apr_int64_t last_seq;      /* device's last seen change (conflicts) */
    /* The device's maps of this datastore (luid -> guid), read once per
     * Sync; new maps and slow-sync "seen" marks are stored together at the
     * end of the Sync (flush_ops). */
    apr_hash_t *luid2guid;
    apr_hash_t *claimed;       /* guids mapped in this Sync (not yet stored) */
    apr_array_header_t *new_guids, *new_luids, *seen;
} op_ctx_t;

static apr_status_t load_maps(op_ctx_t *o)
{
    apr_hash_t *g2l;
    apr_hash_index_t *hi;

    if (o->luid2guid) {
        return APR_SUCCESS;
    }
    if (o->e->db->vt->maps_load(o->e->db, &g2l, o->e->dev.device_id, o->ss->store)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    o->luid2guid = apr_hash_make(o->e->p);
    for (hi = apr_hash_first(o->e->p, g2l); hi; hi = apr_hash_next(hi)) {
        const void *k;
        void *v;
        apr_hash_this(hi, &k, NULL, &v);
        apr_hash_set(o->luid2guid, v, APR_HASH_KEY_STRING, k);
    }
    return APR_SUCCESS;
}

static void new_map(op_ctx_t *o, const char *guid, const char *luid)
{
    APR_ARRAY_PUSH(o->new_guids, const char *) = guid;
    APR_ARRAY_PUSH(o->new_luids, const char *) = luid;
    apr_hash_set(o->luid2guid, luid, APR_HASH_KEY_STRING, guid);
    apr_hash_set(o->claimed, guid, APR_HASH_KEY_STRING, "");
}

static void mark_seen(op_ctx_t *o, const char *guid)
{
    if (o->ss->slow || o->ss->alert_code == 203) {
        APR_ARRAY_PUSH(o->seen, const char *) = guid;
    }
}

static apr_status_t flush_ops(op_ctx_t *o)
{
    eng_t *e = o->e;

    if (e->db->vt->map_put_many(e->db, e->dev.device_id, o->ss->store,
                                 (const char *const *)o->new_guids->elts,
                                 (const char *const *)o->new_luids->elts,
                                 o->new_guids->nelts) != APR_SUCCESS
        || e->db->vt->seen_add_many(e->db, e->sess.session_pk, o->ss->store,
                                     (const char *const *)o->seen->elts,
                                     o->seen->nelts) != APR_SUCCESS) {
        return db_fail(e, "storing maps");
    }
    o->new_guids->nelts = o->new_luids->nelts = o->seen->nelts = 0;
    return APR_SUCCESS;
}

/* The content type the device prefers for a datastore (its DevInf
 * Rx-Pref, from this message or stored), or NULL. */
static const char *client_rx_type(eng_t *e, const char *store)
{
    const memds_sstore_t *ss = find_sstore(e, store);
    const memds_datastore_t *cds;

    if (!e->client_devinf_read) {
        e->client_devinf_read = 1;
        e->client_devinf = devinf_in_message(e);
        if (e->client_devinf == NULL && e->dev.devinf) {
            memds_tree_t *t;
            memds_codec_err_t err;
            memds_devinf_t *di;
            if (memds_xml_decode_devinf(&t, e->dev.devinf, e->dev.devinf_len,
                                        &err, e->p)
                == APR_SUCCESS
                && memds_devinf_from_tree(&di, t->root, &err, e->p) == APR_SUCCESS) {
                e->client_devinf = di;
            }
        }
    }
    cds = client_ds(e->client_devinf, ss ? ss->client_uri : NULL);
    return cds && cds->rx_pref ? cds->rx_pref->ct_type : NULL;
}

static apr_status_t open_ds(memds_ds_t **pds, eng_t *e, const char *store)
{
    memds_ds_env_t env;
    apr_status_t rv;

    memset(&env, 0, sizeof(env));
    env.kind = e->cfg->datastore;
    env.mail = e->cfg->mail;
    env.password = e->password;
    env.shared = e->ds_shared;
    if (strcmp(env.kind, "items") != 0) {
        env.want_type = client_rx_type(e, store);
    }
    rv = e->db->vt->ds_open(e->db, pds, &env, e->dev.account, store,
                            e->dev.device_id, e->p);
    if (rv != APR_SUCCESS) {
        e->resp->http_status = 500;
        e->resp->log_level = 3;
        e->resp->log_msg = apr_psprintf(e->p, "unknown datastore kind %s",
                                        e->cfg->datastore);
    }
    return rv;
}

/* Did anyone but this device change guid after the device last synced? */
static int changed_on_server(op_ctx_t *o, const char *guid)
{
    apr_int64_t seq, by;

    if (o->last_seq < 0
        || o->ds->vt->last_change(o->ds, guid, &seq, &by) != APR_SUCCESS) {
        return 0;
    }
    return seq > o->last_seq && by != o->e->dev.device_id;
}

/* A datastore operation failed: its status for the item, or NULL (a store
 * failure: the request fails and rolls back). */
static const char *ds_failed(op_ctx_t *o)
{
    if (o->ds->status <= 0) {
        if (o->ds->reason) {
            o->e->db->err = o->ds->reason;
        }
        return NULL;
    }
    o->e->resp->log_level = 4;
    o->e->resp->log_msg = apr_psprintf(o->e->p, "device %s: %s",
                                       o->e->dev.devid, o->ds->reason);
    return apr_itoa(o->e->p, o->ds->status);
}

/* Apply one Add or Replace item from the client; returns the status code,
 * NULL on a database error. */
static const char *put_item(op_ctx_t *o, int is_add, const char *luid,
                            const char *type, const char *data, apr_size_t len)
{
    eng_t *e = o->e;
    const char *guid;
    apr_status_t rv;
    int conflict, same = 0;

    if (load_maps(o) != APR_SUCCESS) {
        return NULL;
    }
    guid = apr_hash_get(o->luid2guid, luid, APR_HASH_KEY_STRING);
    rv = guid ? o->ds->vt->same(o->ds, guid, type, data, len, &same) : APR_ENOENT;
    if (rv != APR_SUCCESS && rv != APR_ENOENT) {
        return ds_failed(o);
    }
    if (rv == APR_SUCCESS) {
        /* Known item: unchanged, conflict, or plain replace. */
        if (same) {
            mark_seen(o, guid);
            return "200";
        }
        conflict = o->ss->slow || changed_on_server(o, guid);
        if (conflict && e->cfg->conflict == MEMDS_CONFLICT_DUPLICATE) {
            const char *nguid;
            if (o->ds->vt->add(o->ds, &nguid, type, data, len) != APR_SUCCESS) {
                return ds_failed(o);
            }
            /* The device's item becomes the new one; the server's old one
             * is no longer mapped and goes to the device as an Add. */
            new_map(o, nguid, luid);
            mark_seen(o, nguid);
            return "209";
        }
        if (conflict && e->cfg->conflict == MEMDS_CONFLICT_SERVER_WINS) {
            /* The server version is queued for the device as a Replace (it
             * is "changed since", or unseen in a slow sync). */
            return "419";
        }
        if (o->ds->vt->replace(o->ds, guid, type, data, len) != APR_SUCCESS) {
            return ds_failed(o);
        }
        mark_seen(o, guid);
        return conflict ? "208" : "200";
    }
    /* Unknown LUID: in a slow or refresh sync match identical content first
     * so that nothing is duplicated. */
    if (o->ss->slow || o->ss->alert_code == 203) {
        rv = o->ds->vt->match(o->ds, &guid, data, len);
        if (rv == APR_SUCCESS) {
            /* not already claimed by another item of this batch */
            if (!apr_hash_get(o->claimed, guid, APR_HASH_KEY_STRING)) {
                new_map(o, guid, luid);
                mark_seen(o, guid);
                return is_add ? "201" : "200";
            }
        }
        else if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return ds_failed(o);
        }
    }
    o->ds->ok_status = 0;
    if (o->ds->vt->add(o->ds, &guid, type, data, len) != APR_SUCCESS) {
        return ds_failed(o);
    }
    new_map(o, guid, luid);
    mark_seen(o, guid);
    /* (202: accepted, e.g. a message that will be sent later) */
    return o->ds->ok_status ? apr_itoa(e->p, o->ds->ok_status) : "201";
}

static const char *del_item(op_ctx_t *o, const char *luid, int soft)
{
    eng_t *e = o->e;
    const char *guid;
    apr_status_t rv = APR_SUCCESS;

    if (load_maps(o) != APR_SUCCESS) {
        return NULL;
    }
    guid = apr_hash_get(o->luid2guid, luid, APR_HASH_KEY_STRING);
    if (guid == NULL) {
        return "211";
    }
    if (flush_ops(o) != APR_SUCCESS) { /* pending maps before a deletion */
        return NULL;
    }
    if (!soft) {
        rv = o->ds->vt->remove(o->ds, guid);
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return ds_failed(o);
        }
    }
    if (e->db->vt->map_del(e->db, e->dev.device_id, o->ss->store, guid)
        != APR_SUCCESS) {
        return NULL;
    }
    apr_hash_set(o->luid2guid, luid, APR_HASH_KEY_STRING, NULL);
    return (!soft && rv == APR_ENOENT) ? "211" : "200";
}

/* A chunk of a large object (MoreData), or the last chunk completing one.
 * Returns NULL on a database error; *pdone says the item is whole and
 * *pdata and *plen hold it. */
static const char *chunk(op_ctx_t *o, const memds_cmd_t *c,
                         const memds_item_t *it, const char *luid,
                         const char **pdata, apr_size_t *plen, int *pdone)
{
    eng_t *e = o->e;
    memds_partial_t pt;
    apr_status_t rv;
    apr_int64_t size = it->meta && it->meta->size != MEMDS_NOVAL ? it->meta->size
                     : c->meta && c->meta->size != MEMDS_NOVAL ? c->meta->size : -1;

    *pdone = 0;
    rv = e->db->vt->partial_get(e->db, &pt, e->sess.session_pk, o->ss->store);
    if (rv != APR_SUCCESS && rv != APR_ENOENT) {
        return NULL;
    }
    if (rv == APR_ENOENT) {
        if (!it->more_data) {
            *pdata = it->data.data;
            *plen = it->data.len;
            *pdone = 1;
            return "200";
        }
        if (size < 0) {
            return "411";
        }
        if (size > e->cfg->max_obj_size) {
            return "413";
        }
        memset(&pt, 0, sizeof(pt));
        pt.store = o->ss->store;
        pt.cmd = memds_cmd_name(c->type);
        pt.luid = luid;
        pt.content_type = it->meta && it->meta->type ? it->meta->type
                          : c->meta ? c->meta->type : NULL;
        pt.total_size = size;
    }
    else if (strcmp(pt.luid, luid) != 0 || strcmp(pt.cmd, memds_cmd_name(c->type)) != 0) {
        /* A different item while one was incomplete: drop the old one. */
        if (e->db->vt->partial_drop(e->db, e->sess.session_pk, o->ss->store)
            != APR_SUCCESS) {
            return NULL;
        }
        return chunk(o, c, it, luid, pdata, plen, pdone);
    }
    if ((apr_int64_t)(pt.len + it->data.len) > pt.total_size) {
        e->db->vt->partial_drop(e->db, e->sess.session_pk, o->ss->store);
        return "424";
    }
    if (it->more_data) {
        if (e->db->vt->partial_append(e->db, e->sess.session_pk, &pt,
                                       it->data.data, it->data.len) != APR_SUCCESS) {
            return NULL;
        }
        return "213";
    }
    /* Last chunk: assemble, check the announced size. */
    {
        char *all = apr_palloc(e->p, pt.len + it->data.len + 1);
        memcpy(all, pt.data, pt.len);
        memcpy(all + pt.len, it->data.data, it->data.len);
        all[pt.len + it->data.len] = '\0';
        if (e->db->vt->partial_drop(e->db, e->sess.session_pk, o->ss->store)
            != APR_SUCCESS) {
            return NULL;
        }
        if ((apr_int64_t)(pt.len + it->data.len) != pt.total_size) {
            return "424";
        }
        *pdata = all;
        *plen = pt.len + it->data.len;
        *pdone = 1;
        return "200";
    }
}

static apr_status_t do_sync_op(op_ctx_t *o, const memds_cmd_t *c)
{
    eng_t *e = o->e;
    int i;

    for (i = 0; c->items && i < c->items->nelts; ++i) {
        const memds_item_t *it = APR_ARRAY_IDX(c->items, i, memds_item_t *);
        const char *luid = it->source && it->source->uri ? it->source->uri
                         : it->target ? it->target->uri : NULL;
        const char *code = NULL, *type, *data;
        apr_size_t len;
        int done = 0;
        memds_cmd_t *st = status_for(e, c, "200");

        add_ref(&st->source_refs, it->source ? it->source->uri : NULL, e->p);
        add_ref(&st->target_refs, it->target ? it->target->uri : NULL, e->p);
        if (luid == NULL) {
            code = "412";
        }
        else if (o->ss->alert_code == 204 || o->ss->alert_code == 205) {
            code = "403"; /* one-way / refresh from server: no client changes */
        }
        else if (c->type == MEMDS_CMD_DELETE) {
            o->ds->luid_hint = luid;
            code = del_item(o, luid, c->sft_del);
        }
        else if (c->type == MEMDS_CMD_ADD || c->type == MEMDS_CMD_REPLACE) {
            type = it->meta && it->meta->type ? it->meta->type
                 : c->meta ? c->meta->type : NULL;
            /* The parent folder (hierarchical datastores): TargetParent is
             * our id; a SourceParent is the device's id of a folder it
             * added, mapped by now. */
            o->ds->parent_hint = NULL;
            o->ds->luid_hint = luid;
            if (it->target_parent && *it->target_parent) {
                o->ds->parent_hint = it->target_parent;
            }
            else if (it->source_parent && *it->source_parent) {
                if (load_maps(o) != APR_SUCCESS) {
                    return db_fail(e, "reading maps");
                }
                o->ds->parent_hint = apr_hash_get(o->luid2guid, it->source_parent,
                                                  APR_HASH_KEY_STRING);
            }
            if (it->data_kind != MEMDS_DATA_BYTES) {
                code = "412";
            }
            else if ((code = chunk(o, c, it, luid, &data, &len, &done)) != NULL
                     && done) {
                if ((apr_int64_t)len > e->cfg->max_obj_size) {
                    code = "413";
                }
                else {
                    code = put_item(o, c->type == MEMDS_CMD_ADD, luid, type,
                                    data, len);
                }
            }
        }
        else {
            code = "406"; /* Copy, Move, Atomic, Sequence inside Sync */
        }
        if (code == NULL) {
            return db_fail(e, "applying a client change");
        }
        st->data = code;
        reply(e, c, st);
    }
    return APR_SUCCESS;
}

static apr_status_t do_sync(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = status_for(e, cmd, "200");
    op_ctx_t o;
    memds_syncstate_t state;
    apr_status_t rv;
    int i;

    add_ref(&st->target_refs, cmd->target ? cmd->target->uri : NULL, e->p);
    add_ref(&st->source_refs, cmd->source ? cmd->source->uri : NULL, e->p);
    memset(&o, 0, sizeof(o));
    o.e = e;
    o.ss = find_sstore(e, store_name(cmd->target ? cmd->target->uri : NULL, e->p));
    if (o.ss == NULL || strcmp(e->sess.phase, PH_INIT) == 0) {
        /* Not alerted in this session (or before the alerts are answered). */
        st->data = o.ss ? "403" : "404";
        reply(e, cmd, st);
        for (i = 0; cmd->cmds && i < cmd->cmds->nelts; ++i) {
            const memds_cmd_t *c = APR_ARRAY_IDX(cmd->cmds, i, memds_cmd_t *);
            reply(e, c, status_for(e, c, st->data));
        }
        return APR_SUCCESS;
    }
    reply(e, cmd, st);
    if ((rv = open_ds(&o.ds, e, o.ss->store)) != APR_SUCCESS) {
        return rv;
    }
    o.last_seq = -1;
    rv = e->db->vt->syncstate_get(e->db, &state, e->dev.device_id, o.ss->store);
    if (rv == APR_SUCCESS) {
        o.last_seq = state.last_seq;
    }
    else if (rv != APR_ENOENT) {
        return db_fail(e, "reading anchors");
    }
    o.claimed = apr_hash_make(e->p);
    o.new_guids = apr_array_make(e->p, 64, sizeof(const char *));
    o.new_luids = apr_array_make(e->p, 64, sizeof(const char *));
    o.seen = apr_array_make(e->p, 64, sizeof(const char *));
    for (i = 0; cmd->cmds && i < cmd->cmds->nelts; ++i) {
        if ((rv = do_sync_op(&o, APR_ARRAY_IDX(cmd->cmds, i, memds_cmd_t *)))
            != APR_SUCCESS) {
            return rv;
        }
    }
    return flush_ops(&o);
}

static apr_status_t do_map(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = status_for(e, cmd, "200");
    memds_sstore_t *ss;
    const char **guids, **luids;
    int i, n, k = 0;

    add_ref(&st->target_refs, cmd->target ? cmd->target->uri : NULL, e->p);
    add_ref(&st->source_refs, cmd->source ? cmd->source->uri : NULL, e->p);
    ss = find_sstore(e, store_name(cmd->target ? cmd->target->uri : NULL, e->p));
    if (ss == NULL) {
        st->data = "404";
        reply(e, cmd, st);
        return APR_SUCCESS;
    }
    n = cmd->map_items ? cmd->map_items->nelts : 0;
    guids = apr_palloc(e->p, sizeof(char *) * (apr_size_t)(n + 1));
    luids = apr_palloc(e->p, sizeof(char *) * (apr_size_t)(n + 1));
    for (i = 0; i < n; ++i) {
        const memds_mapitem_t *mi = APR_ARRAY_IDX(cmd->map_items, i,
                                                  memds_mapitem_t *);
        const char *guid = mi->target;
        if (guid[0] == '#') {
            memds_qitem_t q;
            apr_status_t rv = e->db->vt->queue_find(e->db, &q, e->sess.session_pk,
                                                     ss->store, guid, NULL);
            if (rv == APR_ENOENT) {
                st->data = "404"; /* a temporary id we never gave out */
                continue;
            }
            if (rv != APR_SUCCESS) {
                return db_fail(e, "translating a temporary id");
            }
            guid = q.guid;
        }
        guids[k] = guid;
        luids[k++] = mi->source;
    }
    if (e->db->vt->map_put_many(e->db, e->dev.device_id, ss->store, guids,
                                 luids, k) != APR_SUCCESS) {
        return db_fail(e, "storing maps");
    }
    reply(e, cmd, st);
    return APR_SUCCESS;
}

/* The client's Statuses for our item commands: collected here, stored
 * together by flush_statuses. 213 (a chunk arrived) is not a result. */
static apr_status_t do_status(eng_t *e, const memds_cmd_t *cmd)
{
    int code = code_of(cmd->data);
    const char *name = cmd->cmd;
    const char *guid, *luid;

    if (!name || (strcmp(name, "Add") != 0 && strcmp(name, "Replace") != 0
                  && strcmp(name, "Delete") != 0) || code == 213) {
        return APR_SUCCESS;
    }
    guid = cmd->source_refs && cmd->source_refs->nelts
           ? APR_ARRAY_IDX(cmd->source_refs, 0, const char *) : NULL;
    luid = cmd->target_refs && cmd->target_refs->nelts
           ? APR_ARRAY_IDX(cmd->target_refs, 0, const char *) : NULL;
    if (!guid && !luid) {
        return APR_SUCCESS;
    }
    APR_ARRAY_PUSH(e->st_refs, const char *) = guid;
    APR_ARRAY_PUSH(e->st_luids, const char *) = luid;
    APR_ARRAY_PUSH(e->st_codes, apr_int64_t) = code;
    return APR_SUCCESS;
}

static apr_status_t flush_statuses(eng_t *e)
{
    if (e->st_codes->nelts
        && e->db->vt->queue_status_many(e->db, e->sess.session_pk,
                                         (const char *const *)e->st_refs->elts,
                                         (const char *const *)e->st_luids->elts,
                                         (const apr_int64_t *)e->st_codes->elts,
                                         e->st_codes->nelts) != APR_SUCCESS) {
        return db_fail(e, "recording statuses");
    }
    e->st_codes->nelts = e->st_refs->nelts = e->st_luids->nelts = 0;
    return APR_SUCCESS;
}

/* ======================================== server changes (package 4) */

/* A datastore failed where no item status can carry it (scanning the
 * mailbox for the server's changes): the whole message is answered with
 * 503 and Retry-After, nothing is stored, and the device retries. */
static apr_status_t ds_fail(eng_t *e, memds_ds_t *ds, const char *what)
{
    apr_status_t rv;

    if (ds->status <= 0) {
        if (ds->reason) {
            e->db->err = ds->reason;
        }
        return db_fail(e, what);
    }
    rv = db_fail(e, what);
    e->resp->log_level = 3;
    e->resp->log_msg = apr_psprintf(e->p, "device %s: %s: %s (answered 503)",
                                    e->dev.devid, what, ds->reason);
    return rv;
}

/* Queue what the device must receive for one datastore. */
static apr_status_t build_queue(eng_t *e, memds_sstore_t *ss)
{
    memds_ds_t *ds;
    apr_array_header_t *changes, *queue;
    apr_hash_t *maps = NULL, *seen = NULL;
    memds_syncstate_t state;
    apr_int64_t since = -1, snap;
    apr_status_t rv;
    int i, n = 0, mode = ss->alert_code;

    if ((rv = open_ds(&ds, e, ss->store)) != APR_SUCCESS) {
        return rv;
    }
    if (ds->vt->snapshot(ds, &snap) != APR_SUCCESS) {
        return ds_fail(e, ds, "reading the change sequence");
    }
    ss->snapshot_seq = snap;
    ss->queue_built = 1;
    rv = e->db->vt->syncstate_get(e->db, &state, e->dev.device_id, ss->store);
    if (rv == APR_SUCCESS) {
        since = state.last_seq;
    }
    else if (rv != APR_ENOENT) {
        return db_fail(e, "reading anchors");
    }
    if (mode == 203 && !ds->vt->keep_on_refresh) {
        /* Refresh from client: what the device did not send is gone. */
        if (ds->vt->changes(ds, &changes, -1, snap) != APR_SUCCESS) {
            return db_fail(e, "listing items");
        }
        if (e->db->vt->seen_load(e->db, &seen, e->sess.session_pk, ss->store)
            != APR_SUCCESS) {
            return db_fail(e, "reading the slow-sync set");
        }
        for (i = 0; i < changes->nelts; ++i) {
            const memds_ds_change_t *c = APR_ARRAY_IDX(changes, i, memds_ds_change_t *);
            if (!apr_hash_get(seen, c->guid, APR_HASH_KEY_STRING)
                && ds->vt->remove(ds, c->guid) != APR_SUCCESS) {
                return ds_fail(e, ds, "deleting an item");
            }
        }
        /* The deletions are this device's own: not sent back to it. */
        if (ds->vt->snapshot(ds, &ss->snapshot_seq) != APR_SUCCESS) {
            return ds_fail(e, ds, "reading the change sequence");
        }
    }
    if (mode == 202) {
        /* One-way from client: the server's changes wait for a later sync,
         * so the device's change position stays where it was (its own
         * changes of this session are not echoed: changed_by). */
        ss->snapshot_seq = since;
        goto done;
    }
    if (mode == 203) {
        goto done; /* the server now holds exactly the device's items */
    }
    if (mode == 201 || mode == 205) {
        since = -1; /* everything live */
    }
    if (ds->vt->changes(ds, &changes, since, snap) != APR_SUCCESS) {
        return ds_fail(e, ds, "listing changes");
    }
    /* The device's maps (and in a slow sync what it turned out to have),
     * read once: the queue is built in memory and stored in one go. */
    if (e->db->vt->maps_load(e->db, &maps, e->dev.device_id, ss->store)
        != APR_SUCCESS
        || (mode == 201 && e->db->vt->seen_load(e->db, &seen, e->sess.session_pk,
                                                 ss->store) != APR_SUCCESS)) {
        return db_fail(e, "reading maps");
    }
    queue = apr_array_make(e->p, changes->nelts + 1, sizeof(memds_qitem_t *));
    for (i = 0; i < changes->nelts; ++i) {
        const memds_ds_change_t *c = APR_ARRAY_IDX(changes, i, memds_ds_change_t *);
        const char *luid = apr_hash_get(maps, c->guid, APR_HASH_KEY_STRING);
        memds_qitem_t *q;

        if (since >= 0 && c->changed_by == e->dev.device_id) {
            continue; /* the device's own change in this session */
        }
        if (mode == 201 && apr_hash_get(seen, c->guid, APR_HASH_KEY_STRING)) {
            continue; /* the device has it, matched or sent by it */
        }
        /* (In a slow sync a mapped item the device did not send goes as a
         * Replace: it lost it, or the server won a conflict over it.) */
        if (c->deleted && !luid) {
            continue;
        }
        q = apr_pcalloc(e->p, sizeof(*q));
        q->store = ss->store;
        q->n = ++n;
        q->guid = c->guid;
        q->luid = luid;
        q->op = c->deleted ? MEMDS_Q_DELETE : luid ? MEMDS_Q_REPLACE : MEMDS_Q_ADD;
        APR_ARRAY_PUSH(queue, memds_qitem_t *) = q;
    }
    if (mode == 201) {
        /* A slow sync lists live items only; an item the device holds (it
         * sent it in this sync, or it was mapped before) that the server
         * has deleted since (a sent Outbox message, say) must go too. */
        apr_array_header_t *all;
        if (ds->vt->changes(ds, &all, 0, snap) != APR_SUCCESS) {
            return ds_fail(e, ds, "listing deletions");
        }
        for (i = 0; i < all->nelts; ++i) {
            const memds_ds_change_t *c = APR_ARRAY_IDX(all, i, memds_ds_change_t *);
            const char *luid = apr_hash_get(maps, c->guid, APR_HASH_KEY_STRING);
            memds_qitem_t *q;
            if (!c->deleted || !luid || c->changed_by == e->dev.device_id) {
                continue;
            }
            q = apr_pcalloc(e->p, sizeof(*q));
            q->store = ss->store;
            q->n = ++n;
            q->guid = c->guid;
            q->luid = luid;
            q->op = MEMDS_Q_DELETE;
            APR_ARRAY_PUSH(queue, memds_qitem_t *) = q;
        }
    }
    if (e->db->vt->queue_add_many(e->db, e->sess.session_pk, queue) != APR_SUCCESS) {
        return db_fail(e, "queueing changes");
    }
done:
    if (e->db->vt->sstore_save(e->db, e->sess.session_pk, ss) != APR_SUCCESS) {
        return db_fail(e, "saving a session datastore");
    }
    return APR_SUCCESS;
}

/* Room left in the answer for commands, per the client's MaxMsgSize. */
static apr_size_t limit_of(eng_t *e)
{
    apr_int64_t m = e->sess.max_msg_size > 0 ? e->sess.max_msg_size : 150000;

    return (apr_size_t)(m > MSG_MARGIN * 4 ? m - MSG_MARGIN : m);
}

/* The command carrying one queued change; data and type fetched now. */
static apr_status_t queued_cmd(memds_cmd_t **pc, eng_t *e, memds_ds_t *ds,
                               const memds_qitem_t *q, apr_int64_t known_seq,
                               const char **pdata, apr_size_t *plen)
{
    memds_cmd_t *c;
    memds_item_t *it = item_new(e->p);
    const char *type = NULL;
    apr_status_t rv;

    *pdata = NULL;
    *plen = 0;
    if (q->op != MEMDS_Q_DELETE) {
        rv = ds->vt->fetch(ds, q->guid, q->op == MEMDS_Q_REPLACE ? known_seq : -1,
                           pdata, plen, &type);
        if (rv != APR_SUCCESS) {
            return rv; /* gone meanwhile: APR_ENOENT */
        }
    }
    c = cmd_new(e, q->op == MEMDS_Q_ADD ? MEMDS_CMD_ADD
                : q->op == MEMDS_Q_REPLACE ? MEMDS_CMD_REPLACE : MEMDS_CMD_DELETE);
    if (e->dev.max_guid_size > 0 && strlen(q->guid) > (apr_size_t)e->dev.max_guid_size) {
        /* The device cannot store our GUID: an Add carries the temporary
         * id "#n" (queue position), which Map and Status translate back;
         * Replace and Delete need only the device's LUID. */
        if (q->op == MEMDS_Q_ADD) {
            it->source = loc(e->p, apr_psprintf(e->p, "#%d", q->n));
        }
        else {
            it->target = loc(e->p, q->luid);
        }
    }
    else if (q->op == MEMDS_Q_ADD) {
        it->source = loc(e->p, q->guid);
    }
    else {
        it->target = loc(e->p, q->luid);
        it->source = loc(e->p, q->guid);
    }
    if (q->op != MEMDS_Q_DELETE && ds->vt->parent) {
        const char *parent = NULL;
        if (ds->vt->parent(ds, q->guid, &parent) == APR_SUCCESS && parent) {
            it->source_parent = parent;
        }
    }
    if (q->op != MEMDS_Q_DELETE) {
        if (type) {
            c->meta = meta_new(e->p);
            c->meta->type = type;
        }
        it->data_kind = MEMDS_DATA_BYTES;
        it->data.data = *pdata + q->sent_bytes;
        it->data.len = *plen - (apr_size_t)q->sent_bytes;
        it->data_opaque = 1;
    }
    push(&c->items, it, e->p);
    *pc = c;
    return APR_SUCCESS;
}

/* Cut a chunk of at most n bytes (rest = bytes left) that XML carries
 * unchanged: not inside a UTF-8 sequence, and with no whitespace at either
 * edge of a chunk, since XML clients (libsynthesis) trim the text of <Data>
 * and would lose it. WBXML takes any cut. */
static apr_size_t safe_cut(const char *d, apr_size_t n, apr_size_t rest,
                           memds_enc_e enc)
{
#define WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')

    if (enc == MEMDS_ENC_WBXML || n >= rest) {
        return n;
    }
    while (n > 0 && (((unsigned char)d[n] & 0xC0) == 0x80 || WS(d[n])
                     || WS(d[n - 1]))) {
        --n;
    }
    return n;
#undef WS
}

/* One queued change placed in this answer, to undo if it does not fit. */
typedef struct placed_t {
    memds_qitem_t *q;
    apr_int64_t prev_sent;
} placed_t;

static apr_status_t mark_sent(eng_t *e, memds_qitem_t *q, apr_int64_t sent,
                              int complete, int status)
{
    q->sent_bytes = sent;
    q->sent_msg_id = complete ? e->sess.server_msg_id : 0;
    q->status = status;
    if (!q->dirty) {
        q->dirty = 1;
        APR_ARRAY_PUSH(e->dirty, memds_qitem_t *) = q;
    }
    return APR_SUCCESS;
}

/* Store the queue items changed since the last flush. */
static apr_status_t flush_queue(eng_t *e)
{
    int i;

    if (e->dirty->nelts
        && e->db->vt->queue_update_many(e->db, e->sess.session_pk, e->dirty)
           != APR_SUCCESS) {
        return db_fail(e, "updating the send queue");
    }
    for (i = 0; i < e->dirty->nelts; ++i) {
        APR_ARRAY_IDX(e->dirty, i, memds_qitem_t *)->dirty = 0;
    }
    e->dirty->nelts = 0;
    return APR_SUCCESS;
}

/* Exact bytes the answer would have with sync appended (and Final). */
static apr_size_t total_with(eng_t *e, memds_sizer_t *sz, memds_cmd_t *sync,
                             int base)
{
    e->cmd_id = base;
    number(e, sync);
    return memds_sizer_total(sz, 1) + memds_sizer_cmd_size(sz, sync);
}

/* Put as many queued changes as fit into one Sync per datastore.
 * Sizes: each command's share is measured alone (a Sync's children add up:
 * every item command ends on WBXML page 0, and XML namespaces depend only
 * on the parent), then the whole Sync is measured exactly once and trimmed
 * if the sum was short; so filling is linear in the number of items.
 * *pdone: nothing is left to send in any datastore. */
static apr_status_t fill_sync(eng_t *e, memds_sizer_t *sz, int *pdone)
{
    apr_size_t limit = limit_of(e);
    int i, j, full = 0, first_sync = 1, left = 0;
    apr_status_t rv;

    for (i = 0; e->sstores && i < e->sstores->nelts && !full; ++i) {
        memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i, memds_sstore_t *);
        memds_cmd_t *sync, one;
        memds_ds_t *ds;
        apr_array_header_t *items, *placed;
        apr_size_t empty, one_empty, est;
        int base = e->cmd_id, more = 1;
        apr_int64_t known_seq = -1;
        memds_syncstate_t state;

        if (!ss->queue_built) {
            continue;
        }
        /* Up to where the device has the items it gets a Replace for (in a
         * slow sync it may have lost them: whole items then). */
        if (!ss->slow) {
            rv = e->db->vt->syncstate_get(e->db, &state, e->dev.device_id,
                                           ss->store);
            if (rv == APR_SUCCESS) {
                known_seq = state.last_seq;
            }
            else if (rv != APR_ENOENT) {
                return db_fail(e, "reading anchors");
            }
        }
        sync = cmd_new(e, MEMDS_CMD_SYNC);
        sync->target = loc(e->p, ss->client_uri);
        sync->source = loc(e->p, ss->server_uri);
        sync->cmds = apr_array_make(e->p, 64, sizeof(memds_cmd_t *));
        placed = apr_array_make(e->p, 64, sizeof(placed_t));
        if (open_ds(&ds, e, ss->store) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        empty = total_with(e, sz, sync, base);
        est = empty;
        one = *sync;
        one.cmds = apr_array_make(e->p, 1, sizeof(memds_cmd_t *));
        one_empty = memds_sizer_cmd_size(sz, &one);

        while (more && !full) {
            if ((rv = flush_queue(e)) != APR_SUCCESS) {
                return rv;
            }
            if (e->db->vt->queue_unsent(e->db, &items, e->sess.session_pk,
                                         ss->store, 500) != APR_SUCCESS) {
                return db_fail(e, "reading the send queue");
            }
            more = items->nelts == 500;
            for (j = 0; j < items->nelts && !full; ++j) {
                memds_qitem_t *q = APR_ARRAY_IDX(items, j, memds_qitem_t *);
                memds_cmd_t *c;
                const char *data;
                apr_size_t len, delta;
                placed_t *pl;

                rv = queued_cmd(&c, e, ds, q, known_seq, &data, &len);
                if (rv == APR_ENOENT) {
                    /* Deleted meanwhile: nothing to send; the next sync tells. */
                    if ((rv = mark_sent(e, q, 0, 1, 200)) != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                if (rv != APR_SUCCESS) {
                    return ds_fail(e, ds, "fetching an item");
                }
                if (e->sess.max_obj_size > 0 && (apr_int64_t)len > e->sess.max_obj_size) {
                    e->resp->log_level = 4;
                    e->resp->log_msg = apr_psprintf(e->p, "item %s of %s (%lu bytes) "
                                                    "exceeds the device's MaxObjSize: "
                                                    "not sent", q->guid, ss->store,
                                                    (unsigned long)len);
                    if ((rv = mark_sent(e, q, 0, 1, 413)) != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                /* This command's share, with the CmdID it will have. */
                e->cmd_id = base + 1 + sync->cmds->nelts;
                c->cmd_id = apr_itoa(e->p, e->cmd_id);
                APR_ARRAY_PUSH(one.cmds, memds_cmd_t *) = c;
                delta = memds_sizer_cmd_size(sz, &one) - one_empty;
                one.cmds->nelts = 0;
                if (est + delta <= limit) {
                    APR_ARRAY_PUSH(sync->cmds, memds_cmd_t *) = c;
                    pl = apr_array_push(placed);
                    pl->q = q;
                    pl->prev_sent = q->sent_bytes;
                    est += delta;
                    if ((rv = mark_sent(e, q, (apr_int64_t)len, 1, 0)) != APR_SUCCESS) {
                        return rv;
                    }
                    continue;
                }
                full = 1;
                if (q->op != MEMDS_Q_DELETE && e->dev.large_objs) {
                    /* A large object: the biggest chunk that fits, exactly
                     * measured (binary search), cut where XML keeps it. */
                    memds_item_t *it = APR_ARRAY_IDX(c->items, 0, memds_item_t *);
                    apr_size_t rest = len - (apr_size_t)q->sent_bytes, lo = 0, hi = rest;

                    it->more_data = 1;
                    if (q->sent_bytes == 0) {
                        if (!it->meta) {
                            it->meta = meta_new(e->p);
                        }
                        it->meta->size = (apr_int64_t)len;
                    }
                    APR_ARRAY_PUSH(sync->cmds, memds_cmd_t *) = c;
                    while (lo < hi) {
                        apr_size_t mid = (lo + hi + 1) / 2;
                        it->data.len = mid;
                        if (total_with(e, sz, sync, base) <= limit) {
                            lo = mid;
                        }
                        else {
                            hi = mid - 1;
                        }
                    }
                    lo = safe_cut(it->data.data, lo, rest, e->enc);
                    if (lo >= 64 || (lo > 0 && sync->cmds->nelts == 1)) {
                        it->data.len = lo;
                        pl = apr_array_push(placed);
                        pl->q = q;
                        pl->prev_sent = q->sent_bytes;
                        if ((rv = mark_sent(e, q, q->sent_bytes + (apr_int64_t)lo, 0, 0))
                            != APR_SUCCESS) {
                            return rv;
                        }
                    }
                    else {
                        sync->cmds->nelts--;
                    }
                }
                else if (sync->cmds->nelts == 0 && first_sync) {
                    /* Would not fit even an otherwise empty message, and the
                     * device takes no large objects: it cannot be sent. */
                    e->resp->log_level = 4;
                    e->resp->log_msg = apr_psprintf(e->p, "item %s of %s does not "
                                                    "fit the device's MaxMsgSize and "
                                                    "the device takes no large "
                                                    "objects: not sent", q->guid,
                                                    ss->store);
                    if ((rv = mark_sent(e, q, 0, 1, 413)) != APR_SUCCESS) {
                        return rv;
                    }
                    full = 0;
                }
            }
        }
        /* The exact size, trimmed if the shares added up short. */
        while (sync->cmds->nelts > 0 && total_with(e, sz, sync, base) > limit) {
            placed_t *pl = &APR_ARRAY_IDX(placed, placed->nelts - 1, placed_t);
            if ((rv = mark_sent(e, pl->q, pl->prev_sent, 0, 0)) != APR_SUCCESS) {
                return rv;
            }
            placed->nelts--;
            sync->cmds->nelts--;
            full = 1;
        }
        if (sync->cmds->nelts > 0 || e->need_sync_out) {
            total_with(e, sz, sync, base); /* final CmdIDs */
            APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = sync;
            memds_sizer_add(sz, sync);
            first_sync = 0;
        }
        else {
            e->cmd_id = base;
        }
    }
    if ((rv = flush_queue(e)) != APR_SUCCESS) {
        return rv;
    }
    if (e->db->vt->queue_count_unsent(e->db, &left, e->sess.session_pk)
        != APR_SUCCESS) {
        return db_fail(e, "counting the send queue");
    }
    *pdone = left == 0;
    return APR_SUCCESS;
}

/* ======================================================== other commands */

static apr_status_t do_put(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = status_for(e, cmd, "200");
    const memds_item_t *it = cmd->items && cmd->items->nelts
                             ? APR_ARRAY_IDX(cmd->items, 0, memds_item_t *) : NULL;

    if (it && it->source) {
        add_ref(&st->source_refs, it->source->uri, e->p);
    }
    if (it == NULL || !it->source || !is_devinf_uri(it->source->uri)) {
        st->data = "404";
    }
    else if (it->data_kind != MEMDS_DATA_DEVINF) {
        st->data = "415";
    }
    else if (store_client_devinf(e, it->devinf) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    reply(e, cmd, st);
    return APR_SUCCESS;
}

static apr_status_t do_results(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = status_for(e, cmd, "200");
    const memds_item_t *it = cmd->items && cmd->items->nelts
                             ? APR_ARRAY_IDX(cmd->items, 0, memds_item_t *) : NULL;

    if (it && it->data_kind == MEMDS_DATA_DEVINF) {
        if (store_client_devinf(e, it->devinf) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    reply(e, cmd, st);
    return APR_SUCCESS;
}

static void do_get(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = status_for(e, cmd, "200"), *res;
    const memds_item_t *it = cmd->items && cmd->items->nelts
                             ? APR_ARRAY_IDX(cmd->items, 0, memds_item_t *) : NULL;
    memds_item_t *rit;

    if (it && it->target) {
        add_ref(&st->target_refs, it->target->uri, e->p);
    }
    if (it == NULL || !it->target || !is_devinf_uri(it->target->uri)) {
        st->data = "404";
        reply(e, cmd, st);
        return;
    }
    reply(e, cmd, st);
    res = cmd_new(e, MEMDS_CMD_RESULTS);
    res->msg_ref = e->in->hdr.msg_id;
    res->cmd_ref = cmd->cmd_id;
    res->meta = meta_new(e->p);
    res->meta->type = e->enc == MEMDS_ENC_WBXML ? "application/vnd.syncml-devinf+wbxml"
                                                : "application/vnd.syncml-devinf+xml";
    rit = item_new(e->p);
    rit->source = loc(e->p, devinf_uri(e));
    rit->data_kind = MEMDS_DATA_DEVINF;
    rit->devinf = server_devinf(e);
    push(&res->items, rit, e->p);
    /* Results follow the Get's Status. */
    APR_ARRAY_PUSH(e->replies, memds_cmd_t *) = res;
}

static apr_status_t dispatch(eng_t *e, const memds_cmd_t *cmd)
{
    switch (cmd->type) {
    case MEMDS_CMD_STATUS: return do_status(e, cmd);
    case MEMDS_CMD_ALERT: return do_alert(e, cmd);
    case MEMDS_CMD_PUT: return do_put(e, cmd);
    case MEMDS_CMD_GET: do_get(e, cmd); return APR_SUCCESS;
    case MEMDS_CMD_RESULTS: return do_results(e, cmd);
    case MEMDS_CMD_SYNC: return do_sync(e, cmd);
    case MEMDS_CMD_MAP: return do_map(e, cmd);
    default:
        /* Atomic, Sequence, Copy, Exec, Search, Move and item commands
         * outside a Sync: not part of DS as served here. */
        reply(e, cmd, status_for(e, cmd, "406"));
        return APR_SUCCESS;
    }
}

/* ============================================================ the request */

/* Anchors become current only when the client's last package is done. */
static apr_status_t complete_session(eng_t *e)
{
    int i;

    for (i = 0; e->sstores && i < e->sstores->nelts; ++i) {
        const memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i, memds_sstore_t *);
        memds_syncstate_t state, old;
        int failed = 0;
        apr_status_t rv;

        if (e->db->vt->queue_count_failed(e->db, &failed, e->sess.session_pk,
                                           ss->store) != APR_SUCCESS) {
            return db_fail(e, "checking item results");
        }
        rv = e->db->vt->syncstate_get(e->db, &old, e->dev.device_id, ss->store);
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            return db_fail(e, "reading anchors");
        }
        state.client_uri = ss->client_uri;
        state.last_client_anchor = ss->client_next;
        state.last_server_anchor = ss->server_next;
        /* An item the device did not take is sent again next time: keep
         * the old change position then. */
        state.last_seq = (failed && rv == APR_SUCCESS) ? old.last_seq
                       : ss->snapshot_seq >= 0 ? ss->snapshot_seq
                       : (rv == APR_SUCCESS ? old.last_seq : 0);
        if (e->db->vt->syncstate_put(e->db, e->dev.device_id, ss->store, &state)
            != APR_SUCCESS) {
            return db_fail(e, "storing anchors");
        }
    }
    e->sess.phase = PH_DONE;
    e->sess.finished = 1;
    return APR_SUCCESS;
}

static apr_status_t find_session(eng_t *e, int *phave)
{
    const memds_hdr_t *h = &e->in->hdr;
    apr_status_t rv;

    *phave = 0;
    if (e->req->token == NULL) {
        return APR_SUCCESS;
    }
    rv = e->db->vt->session_by_token(e->db, &e->sess, e->req->token);
    if (rv == APR_ENOENT) {
        if (strcmp(h->msg_id, "1") == 0) {
            return APR_SUCCESS; /* a new session at an old RespURI */
        }
        return refuse(e, "404", "404", "unknown session") == APR_SUCCESS
               ? APR_EACCES : APR_EGENERAL;
    }
    if (rv != APR_SUCCESS) {
        return db_fail(e, "finding the session");
    }
    if (strcmp(e->sess.devid, h->source->uri) != 0) {
        e->resp->log_level = 4;
        e->resp->log_msg = apr_psprintf(e->p, "device %s presented the session "
                                        "token of another device", h->source->uri);
        memset(&e->sess, 0, sizeof(e->sess));
        return refuse(e, "403", "403", "session of another device") == APR_SUCCESS
               ? APR_EACCES : APR_EGENERAL;
    }
    *phave = 1;
    return APR_SUCCESS;
}

/* Same MsgID again: the stored answer if the bytes are the same. */
static apr_status_t check_sequence(eng_t *e)
{
    int msgid = atoi(e->in->hdr.msg_id);

    if (msgid == e->sess.client_msg_id) {
        if (strcmp(e->req_sha1, e->sess.request_sha1) == 0) {
            e->resp->http_status = 200;
            e->resp->body = e->sess.response;
            e->resp->len = e->sess.response_len;
            e->resp->replayed = 1;
            e->resp->log_level = 6;
            e->resp->log_msg = apr_psprintf(e->p, "device %s session %s MsgID %d: "
                                            "retransmission, stored answer sent",
                                            e->sess.devid, e->sess.session_id,
                                            msgid);
            return APR_EACCES;
        }
        return refuse(e, "400", "400", "MsgID reused for another message")
               == APR_SUCCESS ? APR_EACCES : APR_EGENERAL;
    }
    if (msgid != e->sess.client_msg_id + 1) {
        return refuse(e, "400", "400", "out-of-order MsgID") == APR_SUCCESS
               ? APR_EACCES : APR_EGENERAL;
    }
    if (e->sess.expired && !e->sess.finished) {
        return refuse(e, "400", "400", "session expired") == APR_SUCCESS
               ? APR_EACCES : APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t start_session(eng_t *e, const char *account)
{
    const memds_hdr_t *h = &e->in->hdr;
    apr_status_t rv;

    if (e->db->vt->device_lock(e->db, &e->dev, account, h->source->uri)
        != APR_SUCCESS) {
        return db_fail(e, "locking the device");
    }
    /* A client that ignores RespURI continues by SessionID. */
    rv = e->db->vt->session_by_sid(e->db, &e->sess, e->dev.device_id,
                                    h->session_id);
    if (rv == APR_SUCCESS && !e->sess.finished && !e->sess.expired
        && strcmp(h->msg_id, "1") != 0) {
        return check_sequence(e);
    }
    if (rv == APR_SUCCESS && strcmp(h->msg_id, "1") == 0
        && e->sess.client_msg_id == 1 && !e->sess.expired
        && strcmp(e->req_sha1, e->sess.request_sha1) == 0) {
        return check_sequence(e); /* retransmitted first message */
    }
    if (rv != APR_SUCCESS && rv != APR_ENOENT) {
        return db_fail(e, "finding the session");
    }
    memset(&e->sess, 0, sizeof(e->sess));
    e->sess.token = new_token(e->p);
    if (e->sess.token == NULL) {
        e->resp->http_status = 500;
        e->resp->log_level = 2;
        e->resp->log_msg = "no random numbers for a session token";
        e->db->vt->rollback(e->db);
        return APR_EGENERAL;
    }
    e->sess.device_id = e->dev.device_id;
    e->sess.account = e->dev.account;
    e->sess.devid = e->dev.devid;
    e->sess.session_id = h->session_id;
    e->sess.version = e->in->version == MEMDS_V11 ? "1.1" : "1.2";
    e->sess.encoding = e->enc == MEMDS_ENC_WBXML ? "wbxml" : "xml";
    e->sess.phase = PH_INIT;
    e->sess.client_msg_id = atoi(h->msg_id) - 1;
    e->sess.server_msg_id = 0;
    e->sess.max_obj_size = -1;
    e->sess.request_sha1 = "";
    e->sess.response = "";
    e->sess.response_len = 0;
    if (e->db->vt->session_save(e->db, &e->sess, e->cfg->session_timeout)
        != APR_SUCCESS) {
        return db_fail(e, "creating the session");
    }
    e->new_session = 1;
    return APR_SUCCESS;
}

/* Does the answer carry any Sync (something the client must answer)? */
static int sent_items(const eng_t *e)
{
    int i;

    for (i = 0; i < e->out->cmds->nelts; ++i) {
        if (APR_ARRAY_IDX(e->out->cmds, i, memds_cmd_t *)->type == MEMDS_CMD_SYNC) {
            return 1;
        }
    }
    return 0;
}

apr_status_t memds_engine_run(memds_response_t *resp,
                              const memds_engine_cfg_t *cfg, memds_sessdb_t *db,
                              const memds_request_t *req, apr_pool_t *p)
{
    eng_t E, *e = &E;
    memds_codec_err_t err;
    const memds_hdr_t *h;
    const char *account = NULL;
    memds_cmd_t *hs;
    memds_sizer_t sz;
    int i, have = 0, done = 1;
    apr_status_t rv;

    memset(e, 0, sizeof(*e));
    memset(resp, 0, sizeof(*resp));
    memset(&err, 0, sizeof(err));
    e->p = p;
    e->cfg = cfg;
    e->req = req;
    e->resp = resp;
    e->enc = req->enc == MEMDS_ENC_WBXML ? MEMDS_ENC_WBXML : MEMDS_ENC_XML;
    resp->http_status = 500;

    if (memds_msg_decode(&e->in, req->body, req->len, e->enc, &err, p)
        != APR_SUCCESS) {
        resp->http_status = 400;
        resp->log_level = 6;
        resp->log_msg = apr_psprintf(p, "not a SyncML message (%s%s%s): %s",
                                     e->enc == MEMDS_ENC_WBXML ? "WBXML" : "XML",
                                     err.line ? apr_psprintf(p, ", line %d", err.line) : "",
                                     err.offset ? apr_psprintf(p, ", byte %lu",
                                                               (unsigned long)err.offset) : "",
                                     err.msg ? err.msg : "?");
        return APR_SUCCESS;
    }
    h = &e->in->hdr;
    e->req_sha1 = memds_sha1_hex(req->body, req->len, p);
    e->replies = apr_array_make(p, 16, sizeof(memds_cmd_t *));
    e->cmds = apr_array_make(p, 8, sizeof(memds_cmd_t *));
    e->st_refs = apr_array_make(p, 16, sizeof(const char *));
    e->st_luids = apr_array_make(p, 16, sizeof(const char *));
    e->st_codes = apr_array_make(p, 16, sizeof(apr_int64_t));
    e->dirty = apr_array_make(p, 64, sizeof(memds_qitem_t *));
    e->ds_shared = memds_ds_shared_make(p);
    if (strcmp(h->verproto, "SyncML/1.2") != 0 && strcmp(h->verproto, "SyncML/1.1") != 0) {
        return refuse(e, "513", "513", "SyncML/1.1, SyncML/1.2");
    }
    if ((e->in->version == MEMDS_V12) != (strcmp(h->verproto, "SyncML/1.2") == 0)
        || (strcmp(h->verdtd, "1.2") != 0 && strcmp(h->verdtd, "1.1") != 0)) {
        return refuse(e, "505", "505", "VerDTD does not match VerProto");
    }
    if (atoi(h->msg_id) < 1) {
        return refuse(e, "400", "400", "invalid MsgID");
    }

    e->db = db;
    if (db->vt->begin(db) != APR_SUCCESS) {
        return db_fail(e, "starting a transaction");
    }
    rv = find_session(e, &have);
    if (rv == APR_SUCCESS && have) {
        if (e->db->vt->device_lock(e->db, &e->dev, e->sess.account, e->sess.devid)
            != APR_SUCCESS) {
            return db_fail(e, "locking the device");
        }
        rv = check_sequence(e);
        if (rv == APR_SUCCESS) {
            session_password(e);
        }
    }
    else if (rv == APR_SUCCESS) {
        rv = authenticate(e, &account);
        if (rv == APR_SUCCESS) {
            rv = start_session(e, account);
        }
    }
    if (rv == APR_EACCES) {
        e->db->vt->rollback(e->db); /* refusals change nothing (auth committed itself) */
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!e->new_session
        && e->db->vt->sstores_load(e->db, &e->sstores, e->sess.session_pk)
           != APR_SUCCESS) {
        return db_fail(e, "loading the session datastores");
    }
    e->sess.client_msg_id = atoi(h->msg_id);
    e->sess.server_msg_id++;
    if (h->meta && h->meta->max_msg_size > 0) {
        e->sess.max_msg_size = (int)(h->meta->max_msg_size > 0x7fffffff
                                     ? 0x7fffffff : h->meta->max_msg_size);
    }
    if (h->meta && h->meta->max_obj_size > 0) {
        e->sess.max_obj_size = h->meta->max_obj_size;
    }
    if (e->sess.max_msg_size <= 0) {
        e->sess.max_msg_size = 65536; /* none announced: a cautious size */
    }

    /* Status for the SyncHdr comes first. */
    hs = status_for(e, NULL, e->hdr_status ? e->hdr_status : "200");
    add_ref(&hs->target_refs, h->target->uri, p);
    add_ref(&hs->source_refs, h->source->uri, p);
    hs->chal = e->chal;
    if (!h->no_resp) {
        APR_ARRAY_PUSH(e->replies, memds_cmd_t *) = hs;
    }

    for (i = 0; i < e->in->cmds->nelts; ++i) {
        if ((rv = dispatch(e, APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *)))
            != APR_SUCCESS) {
            return rv;
        }
    }
    if ((rv = flush_statuses(e)) != APR_SUCCESS) {
        return rv;
    }

    /* Package transitions on the client's Final. */
    if (e->suspend) {
        e->sess.phase = PH_SUSPENDED;
        e->final = 1;
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_INIT) == 0 && e->saw_alert) {
        e->sess.phase = PH_CLIENT;
        e->final = 1;
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_INIT) == 0) {
        e->final = 1; /* DevInf exchange only */
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_CLIENT) == 0) {
        for (i = 0; e->sstores && i < e->sstores->nelts; ++i) {
            memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i, memds_sstore_t *);
            if (!ss->queue_built && (rv = build_queue(e, ss)) != APR_SUCCESS) {
                return rv; /* (a resumed datastore brings its queue) */
            }
        }
        e->sess.phase = PH_SERVER;
        e->need_sync_out = 1;
    }
    else if (strcmp(e->sess.phase, PH_DONE) == 0) {
        e->final = 1; /* a late message (statuses for our last answer) */
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_MAP) == 0) {
        if ((rv = complete_session(e)) != APR_SUCCESS) {
            return rv;
        }
        e->final = 1;
    }

    /* Assemble: replies, our commands, then queued changes while they fit. */
    e->out = answer_header(e, 1);
    e->cmd_id = 1;
    for (i = 0; i < e->replies->nelts; ++i) {
        memds_cmd_t *c = APR_ARRAY_IDX(e->replies, i, memds_cmd_t *);
        number(e, c);
        APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = c;
    }
    for (i = 0; i < e->cmds->nelts; ++i) {
        memds_cmd_t *c = APR_ARRAY_IDX(e->cmds, i, memds_cmd_t *);
        number(e, c);
        APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = c;
    }
    if (strcmp(e->sess.phase, PH_SERVER) == 0) {
        memds_sizer_init(&sz, e->out, e->enc, p);
        if ((rv = fill_sync(e, &sz, &done)) != APR_SUCCESS) {
            return rv;
        }
        if (done) {
            e->final = 1;
            e->sess.phase = PH_MAP;
            if (!sent_items(e)) {
                /* Nothing in this last message needs an answer, so the
                 * client may not send one (libsynthesis does not): every
                 * status is in, finish now. */
                if ((rv = complete_session(e)) != APR_SUCCESS) {
                    return rv;
                }
            }
        }
    }
    if (e->out->cmds->nelts == 0 && !e->final) {
        /* Nothing to say (the client asked for no statuses) but its
         * package goes on: ask for the next message. */
        memds_cmd_t *al = cmd_new(e, MEMDS_CMD_ALERT);
        memds_item_t *it = item_new(p);
        al->data = "222";
        it->target = loc(p, h->source->uri);
        it->source = loc(p, h->target->uri);
        push(&al->items, it, p);
        number(e, al);
        APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = al;
    }
    e->out->final = e->final;
    if (e->sess.finished) {
        e->out->hdr.resp_uri = NULL; /* nothing follows */
    }
    if (encode(e, e->out) != APR_SUCCESS) {
        e->db->vt->rollback(e->db);
        return APR_SUCCESS;
    }
    if (resp->len > limit_of(e) + MSG_MARGIN) {
        resp->log_level = 4;
        resp->log_msg = apr_psprintf(p, "answer of %lu bytes exceeds the device's "
                                     "MaxMsgSize %d (statuses alone)",
                                     (unsigned long)resp->len, e->sess.max_msg_size);
    }
    e->sess.request_sha1 = e->req_sha1;
    e->sess.response = resp->body;
    e->sess.response_len = resp->len;
    if (e->db->vt->session_save(e->db, &e->sess, cfg->session_timeout)
        != APR_SUCCESS) {
        return db_fail(e, "saving the session");
    }
    if (e->db->vt->commit(e->db) != APR_SUCCESS) {
        return db_fail(e, "committing");
    }
    if (!resp->log_msg) {
        resp->log_level = 7;
        resp->log_msg = apr_psprintf(p, "device %s session %s MsgID %s: phase %s, "
                                     "%d commands in, %d out%s", e->sess.devid,
                                     e->sess.session_id, h->msg_id, e->sess.phase,
                                     e->in->cmds->nelts, e->out->cmds->nelts,
                                     e->final ? ", Final" : "");
    }
    return APR_SUCCESS;
}

apr_status_t memds_engine_process(memds_response_t *resp,
                                  const memds_engine_cfg_t *cfg,
                                  memds_pgconn_t *conn,
                                  const memds_request_t *req, apr_pool_t *p)
{
    return memds_engine_run(resp, cfg, memds_sessdb_pg(conn, p), req, p);
}

apr_status_t memds_engine_expire_db(int *pn, memds_sessdb_t *db)
{
    apr_status_t rv;

    if ((rv = db->vt->begin(db)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = db->vt->sessions_expire(db, pn)) != APR_SUCCESS) {
        db->vt->rollback(db);
        return rv;
    }
    return db->vt->commit(db);
}

apr_status_t memds_engine_expire(int *pn, memds_pgconn_t *conn, apr_pool_t *p)
{
    return memds_engine_expire_db(pn, memds_sessdb_pg(conn, p));
}
