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
 *
 * This file: the request (memds_engine_run) and the session: finding it,
 * the MsgID sequence and retransmissions, starting one, dispatching the
 * commands. The other parts: memds_auth.c (who the device is),
 * memds_eng_alert.c, memds_eng_sync.c (package 3), memds_eng_pkg.c (answers
 * and package 4), memds_eng_map.c (package 5), memds_eng_devinf.c; what they
 * share is in memds_engine_int.h.
 */
#include "ds/memds_engine_int.h"

#include <apr_lib.h>
#include <apr_sha1.h>
#include <apr_time.h>

const char *eng_new_token(apr_pool_t *p)
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

/* Datastore name from an Alert/Sync LocURI: no "./", no CGI options, no
 * trailing slash. */
const char *eng_store_name(const char *uri, apr_pool_t *p)
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

memds_sstore_t *eng_find_sstore(eng_t *e, const char *name)
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

apr_status_t eng_db_fail(eng_t *e, const char *what)
{
    e->resp->http_status = 503;
    e->resp->log_level = 3;
    e->resp->log_msg = apr_psprintf(e->p,
                                    MEMDS_LOGNO(00500) "database error while %s: %s",
                                        what, e->db->err ? e->db->err : "?");
    e->db->vt->rollback(e->db);
    return APR_EGENERAL;
}

/* A sync_state row read in this request (eng_t.syncstates). */
typedef struct {
    apr_status_t rv; /* APR_SUCCESS or APR_ENOENT */
    memds_syncstate_t state;
} eng_syncstate_t;

apr_status_t eng_syncstate(eng_t *e, memds_syncstate_t *state,
                           const char *store)
{
    eng_syncstate_t *c = e->syncstates ? apr_hash_get(e->syncstates, store,
                                                      APR_HASH_KEY_STRING)
                                       : NULL;

    if (c == NULL) {
        c = apr_pcalloc(e->p, sizeof(*c));
        c->rv = e->db->vt->syncstate_get(e->db, &c->state, e->dev.device_id,
                                         store);
        if (c->rv != APR_SUCCESS && c->rv != APR_ENOENT) {
            return c->rv;
        }
        if (e->syncstates == NULL) {
            e->syncstates = apr_hash_make(e->p);
        }
        apr_hash_set(e->syncstates, apr_pstrdup(e->p, store),
                     APR_HASH_KEY_STRING, c);
    }
    if (c->rv == APR_SUCCESS) {
        *state = c->state;
    }
    return c->rv;
}

void eng_syncstate_forget(eng_t *e, const char *store)
{
    if (e->syncstates) {
        apr_hash_set(e->syncstates, store, APR_HASH_KEY_STRING, NULL);
    }
}

apr_status_t eng_open_ds(memds_ds_t **pds, eng_t *e, const char *store)
{
    memds_ds_env_t env;
    apr_status_t rv;

    memset(&env, 0, sizeof(env));
    env.kind = e->cfg->datastore;
    env.mail = e->cfg->mail;
    env.password = e->password;
    env.shared = e->ds_shared;
    env.registry = e->cfg->registry;
    if (strcmp(env.kind, "items") != 0) {
        eng_client_caps(e, store, &env);
    }
    rv = e->db->vt->ds_open(e->db, pds, &env, e->dev.account, store,
                            e->dev.device_id, e->p);
    if (rv != APR_SUCCESS) {
        e->resp->http_status = 500;
        e->resp->log_level = 3;
        e->resp->log_msg = apr_psprintf(e->p,
                                        MEMDS_LOGNO(00501) "unknown datastore kind %s",
                                            e->cfg->datastore);
    }
    return rv;
}

/* A datastore failed where no item status can carry it (scanning the
 * mailbox for the server's changes): the whole message is answered with
 * 503 and Retry-After, nothing is stored, and the device retries. */
apr_status_t eng_ds_fail(eng_t *e, memds_ds_t *ds, const char *what)
{
    apr_status_t rv;

    if (ds->status <= 0) {
        if (ds->reason) {
            e->db->err = ds->reason;
        }
        return eng_db_fail(e, what);
    }
    rv = eng_db_fail(e, what);
    e->resp->log_level = 3;
    e->resp->log_msg = apr_psprintf(
        e->p, MEMDS_LOGNO(00502) "device %s: %s: %s (answered 503)",
                          e->dev.devid, what, ds->reason);
    return rv;
}

static apr_status_t dispatch(eng_t *e, const memds_cmd_t *cmd)
{
    switch (cmd->type) {
    case MEMDS_CMD_STATUS: return eng_do_status(e, cmd);
    case MEMDS_CMD_ALERT: return eng_do_alert(e, cmd);
    case MEMDS_CMD_PUT: return eng_do_put(e, cmd);
    case MEMDS_CMD_GET: eng_do_get(e, cmd); return APR_SUCCESS;
    case MEMDS_CMD_RESULTS: return eng_do_results(e, cmd);
    case MEMDS_CMD_SYNC: return eng_do_sync(e, cmd);
    case MEMDS_CMD_MAP: return eng_do_map(e, cmd);
    default:
        /* Atomic, Sequence, Copy, Exec, Search, Move and item commands
         * outside a Sync: not part of DS as served here. */
        eng_reply(e, cmd, eng_status_for(e, cmd, MEMDS_ST_NOT_SUPPORTED));
        return APR_SUCCESS;
    }
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
        return eng_refuse(e, MEMDS_ST_NOT_FOUND, MEMDS_ST_NOT_FOUND,
                          "unknown session")
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
    }
    if (rv != APR_SUCCESS) {
        return eng_db_fail(e, "finding the session");
    }
    if (strcmp(e->sess.devid, h->source->uri) != 0) {
        e->resp->log_level = 4;
        e->resp->log_msg = apr_psprintf(
            e->p, MEMDS_LOGNO(00503) "device %s presented the session "
                                     "token of another device",
                              h->source->uri);
        memset(&e->sess, 0, sizeof(e->sess));
        return eng_refuse(e, MEMDS_ST_FORBIDDEN, MEMDS_ST_FORBIDDEN,
                          "session of another device")
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
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
            apr_status_t rv = e->db->vt->session_response(e->db, &e->sess);
            if (rv == APR_ENOENT) {
                /* gone with a crash of PostgreSQL (UNLOGGED, schema/024):
                 * what the message did is committed, its answer cannot be
                 * given again; the device starts a new session */
                e->resp->log_level = 4;
                e->resp->log_msg = apr_psprintf(
                    e->p,
                    MEMDS_LOGNO(00626) "device %s session %s MsgID %d: "
                                       "retransmission, but the stored "
                                       "answer is gone (PostgreSQL "
                                       "restarted after a crash?): the "
                                       "session cannot go on",
                    e->sess.devid, e->sess.session_id, msgid);
                return eng_refuse(e, MEMDS_ST_COMMAND_FAILED,
                                  MEMDS_ST_COMMAND_FAILED,
                                  "the stored answer of this message is gone")
                               == APR_SUCCESS
                           ? APR_EACCES
                           : APR_EGENERAL;
            }
            if (rv != APR_SUCCESS) {
                return eng_db_fail(e, "reading the stored answer");
            }
            e->resp->http_status = 200;
            e->resp->body = e->sess.response;
            e->resp->len = e->sess.response_len;
            e->resp->replayed = 1;
            e->resp->log_level = 6;
            e->resp->log_msg = apr_psprintf(
                e->p, MEMDS_LOGNO(00504) "device %s session %s MsgID %d: "
                                         "retransmission, stored answer sent",
                                  e->sess.devid, e->sess.session_id, msgid);
            return APR_EACCES;
        }
        return eng_refuse(e, MEMDS_ST_BAD_REQUEST, MEMDS_ST_BAD_REQUEST,
                          "MsgID reused for another message")
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
    }
    if (msgid != e->sess.client_msg_id + 1) {
        return eng_refuse(e, MEMDS_ST_BAD_REQUEST, MEMDS_ST_BAD_REQUEST,
                          "out-of-order MsgID")
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
    }
    if (e->sess.expired && !e->sess.finished) {
        return eng_refuse(e, MEMDS_ST_BAD_REQUEST, MEMDS_ST_BAD_REQUEST,
                          "session expired")
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t start_session(eng_t *e, const char *account)
{
    const memds_hdr_t *h = &e->in->hdr;
    apr_status_t rv;

    if (e->db->vt->device_lock(e->db, &e->dev, account, h->source->uri)
        != APR_SUCCESS) {
        return eng_db_fail(e, "locking the device");
    }
    if (e->dev.wipe && strcmp(e->dev.wipe, "wiped") == 0) {
        /* Remote wipe done: refused until an administrator enables it. */
        e->resp->log_level = 4;
        e->resp->log_msg = apr_psprintf(
            e->p,
            MEMDS_LOGNO(00545) "device %s of %s was wiped remotely: refused "
                               "(403) until an administrator enables it "
                               "(memds-admin enable)",
                        e->dev.devid, account);
        return eng_refuse(e, MEMDS_ST_FORBIDDEN, MEMDS_ST_FORBIDDEN,
                          "this device was wiped remotely")
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
    }
    if (e->cfg->push_watch
        && e->db->vt->push_watch_note(e->db, account, e->cfg->push_watch)
               != APR_SUCCESS) {
        return eng_db_fail(e, "noting the account for the IDLE watcher");
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
        return eng_db_fail(e, "finding the session");
    }
    if ((rv = eng_throttle_check(e)) != APR_SUCCESS) {
        return rv; /* held, or over a limit (MemDSLimit) */
    }
    memset(&e->sess, 0, sizeof(e->sess));
    e->sess.token = eng_new_token(e->p);
    if (e->sess.token == NULL) {
        e->resp->http_status = 500;
        e->resp->log_level = 2;
        e->resp->log_msg = MEMDS_LOGNO(00505) "no random numbers for a session token";
        e->db->vt->rollback(e->db);
        return APR_EGENERAL;
    }
    e->sess.device_id = e->dev.device_id;
    e->sess.account = e->dev.account;
    e->sess.devid = e->dev.devid;
    e->sess.session_id = h->session_id;
    e->sess.version = eng_verdtd(e);
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
        return eng_db_fail(e, "creating the session");
    }
    e->new_session = 1;
    return APR_SUCCESS;
}

/* The client's package 3 is complete: queue the server's changes of
 * every datastore; package 4 starts in this answer. */
static apr_status_t start_server_sync(eng_t *e)
{
    apr_status_t rv;
    int i;

    for (i = 0; e->sstores && i < e->sstores->nelts; ++i) {
        memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i, memds_sstore_t *);
        if (!ss->queue_built && (rv = eng_build_queue(e, ss)) != APR_SUCCESS) {
            return rv; /* (a resumed datastore brings its queue) */
        }
    }
    e->sess.phase = PH_SERVER;
    e->need_sync_out = 1;
    return APR_SUCCESS;
}

/* Items in the Sync commands of a message. */
static int sync_items(const memds_msg_t *m)
{
    int i, k, n = 0;

    for (i = 0; m && m->cmds && i < m->cmds->nelts; ++i) {
        const memds_cmd_t *s = APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *);
        for (k = 0; s->type == MEMDS_CMD_SYNC && s->cmds && k < s->cmds->nelts;
             ++k) {
            const memds_cmd_t *c = APR_ARRAY_IDX(s->cmds, k, memds_cmd_t *);
            n += c->items ? c->items->nelts : 0;
        }
    }
    return n;
}

/* What a committed request did, for the metrics (memds_response_t). */
static void eng_count(eng_t *e, memds_response_t *resp, int was_finished)
{
    int i, code;

    resp->session_started = e->new_session;
    resp->session_completed = e->sess.finished && !was_finished;
    resp->items_up = sync_items(e->in);
    resp->items_down = sync_items(e->out);
    for (i = 0; e->in->cmds && i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        code = c->type == MEMDS_CMD_ALERT && c->data ? atoi(c->data) : 0;
        if (code >= 200 && code <= 206) {
            resp->sync_alerts[code - 200]++;
        }
    }
}

static apr_status_t engine_run(eng_t *e, memds_response_t *resp,
                               const memds_engine_cfg_t *cfg,
                               memds_sessdb_t *db, const memds_request_t *req,
                               apr_pool_t *p)
{
    memds_codec_err_t err;
    const memds_hdr_t *h;
    const char *account = NULL;
    memds_cmd_t *hs;
    memds_sizer_t sz;
    int i, have = 0, done = 1, alerted, was_finished;
    apr_status_t rv;

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
        resp->log_msg = apr_psprintf(
            p,
            MEMDS_LOGNO(00013) "not a SyncML message (%s%s%s): %s",
                        e->enc == MEMDS_ENC_WBXML ? "WBXML" : "XML",
                        err.line ? apr_psprintf(p, ", line %d", err.line) : "",
                        err.offset ? apr_psprintf(p, ", byte %lu",
                                                  (unsigned long)err.offset)
                                   : "",
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
    if (strcmp(h->verproto, "SyncML/1.2") != 0
        && strcmp(h->verproto, "SyncML/1.1") != 0
        && strcmp(h->verproto, "SyncML/1.0") != 0) {
        return eng_refuse(e, MEMDS_ST_PROTOCOL_VERSION,
                          MEMDS_ST_PROTOCOL_VERSION,
                          "SyncML/1.0, SyncML/1.1, SyncML/1.2");
    }
    /* The document's version (namespace or WBXML public id, else VerDTD),
     * VerDTD and VerProto must name the same version. */
    if (strcmp(h->verdtd, eng_verdtd(e)) != 0
        || strcmp(h->verproto + 7, eng_verdtd(e)) != 0) {
        return eng_refuse(e, MEMDS_ST_DTD_VERSION, MEMDS_ST_DTD_VERSION,
                          "VerDTD does not match VerProto");
    }
    if (atoi(h->msg_id) < 1) {
        return eng_refuse(e, MEMDS_ST_BAD_REQUEST, MEMDS_ST_BAD_REQUEST,
                          "invalid MsgID");
    }

    e->db = db;
    if (db->vt->begin(db) != APR_SUCCESS) {
        return eng_db_fail(e, "starting a transaction");
    }
    rv = find_session(e, &have);
    if (rv == APR_SUCCESS && have) {
        if (e->db->vt->device_lock(e->db, &e->dev, e->sess.account,
                                   e->sess.devid)
            != APR_SUCCESS) {
            return eng_db_fail(e, "locking the device");
        }
        rv = check_sequence(e);
        if (rv == APR_SUCCESS) {
            rv = eng_session_account_check(e);
        }
        if (rv == APR_SUCCESS) {
            eng_session_password(e);
        }
    }
    else if (rv == APR_SUCCESS) {
        rv = eng_authenticate(e, &account);
        if (rv == APR_SUCCESS) {
            rv = start_session(e, account);
        }
    }
    if (rv == APR_SUCCESS && !e->new_session) {
        rv = eng_server_auth(e); /* the device authenticates the server */
    }
    if (rv == APR_EACCES) {
        e->db->vt->rollback(
            e->db); /* refusals change nothing (auth committed itself) */
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    was_finished = e->sess.finished;
    if (!e->new_session
        && e->db->vt->sstores_load(e->db, &e->sstores, e->sess.session_pk)
               != APR_SUCCESS) {
        return eng_db_fail(e, "loading the session datastores");
    }
    e->sess.client_msg_id = atoi(h->msg_id);
    e->sess.server_msg_id++;
    if (h->meta && h->meta->max_msg_size > 0) {
        e->sess.max_msg_size = (int)(h->meta->max_msg_size > 0x7fffffff
                                         ? 0x7fffffff
                                         : h->meta->max_msg_size);
    }
    if (h->meta && h->meta->max_obj_size > 0) {
        e->sess.max_obj_size = h->meta->max_obj_size;
    }
    if (e->sess.max_msg_size <= 0) {
        e->sess.max_msg_size = 65536; /* none announced: a cautious size */
    }

    /* Status for the SyncHdr comes first. */
    hs = eng_status_for(e, NULL, e->hdr_status ? e->hdr_status : MEMDS_ST_OK);
    eng_add_ref(&hs->target_refs, h->target->uri, p);
    eng_add_ref(&hs->source_refs, h->source->uri, p);
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
    if ((rv = eng_flush_statuses(e)) != APR_SUCCESS) {
        return rv;
    }

    /* Package transitions on the client's Final. Package 1 may span
     * messages: its datastores were alerted in this message or in an
     * earlier one (then they are in sstores). */
    alerted = e->saw_alert || (e->sstores && e->sstores->nelts > 0);
    if (e->suspend) {
        e->sess.phase = PH_SUSPENDED;
        e->final = 1;
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_INIT) == 0 && alerted
             && e->combined_ok && !e->combined_refused) {
        /* Packages 1 and 3 together: package 2 and package 4 answer. */
        if ((rv = start_server_sync(e)) != APR_SUCCESS) {
            return rv;
        }
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_INIT) == 0 && alerted) {
        e->sess.phase = PH_CLIENT;
        e->final = 1;
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_INIT) == 0) {
        e->final = 1; /* DevInf exchange only */
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_CLIENT) == 0) {
        if ((rv = start_server_sync(e)) != APR_SUCCESS) {
            return rv;
        }
    }
    else if (strcmp(e->sess.phase, PH_DONE) == 0) {
        e->final = 1; /* a late message (statuses for our last answer) */
    }
    else if (e->in->final && strcmp(e->sess.phase, PH_MAP) == 0) {
        if ((rv = eng_push_complete(e)) != APR_SUCCESS) {
            return rv;
        }
        e->final = 1;
    }

    /* Assemble: replies, our commands, then queued changes while they fit. */
    e->out = eng_answer_header(e, 1);
    e->out->hdr.cred = e->server_cred;
    e->cmd_id = 1;
    for (i = 0; i < e->replies->nelts; ++i) {
        memds_cmd_t *c = APR_ARRAY_IDX(e->replies, i, memds_cmd_t *);
        eng_number(e, c);
        APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = c;
    }
    for (i = 0; i < e->cmds->nelts; ++i) {
        memds_cmd_t *c = APR_ARRAY_IDX(e->cmds, i, memds_cmd_t *);
        eng_number(e, c);
        APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = c;
    }
    if (strcmp(e->sess.phase, PH_SERVER) == 0) {
        memds_sizer_init(&sz, e->out, e->enc, p);
        if ((rv = eng_fill_sync(e, &sz, &done)) != APR_SUCCESS) {
            return rv;
        }
        if (done) {
            e->final = 1;
            e->sess.phase = PH_MAP;
            if (!eng_sent_items(e)) {
                /* Nothing in this last message needs an answer, so the
                 * client may not send one (libsynthesis does not): every
                 * status is in, finish now. */
                if ((rv = eng_push_complete(e)) != APR_SUCCESS) {
                    return rv;
                }
            }
        }
    }
    if (e->out->cmds->nelts == 0 && !e->final) {
        /* Nothing to say (the client asked for no statuses) but its
         * package goes on: ask for the next message. */
        memds_cmd_t *al = eng_cmd_new(e, MEMDS_CMD_ALERT);
        memds_item_t *it = eng_item_new(p);
        al->data = eng_code_text(e, MEMDS_ALERT_NEXT_MESSAGE);
        it->target = eng_loc(p, h->source->uri);
        it->source = eng_loc(p, h->target->uri);
        eng_push(&al->items, it, p);
        eng_number(e, al);
        APR_ARRAY_PUSH(e->out->cmds, memds_cmd_t *) = al;
    }
    e->out->final = e->final;
    if (e->sess.finished && !e->inband) {
        e->out->hdr.resp_uri = NULL; /* nothing follows */
    }
    if (eng_encode(e, e->out) != APR_SUCCESS) {
        e->db->vt->rollback(e->db);
        return APR_SUCCESS;
    }
    if (resp->len > eng_limit_of(e) + MSG_MARGIN) {
        resp->log_level = 4;
        resp->log_msg = apr_psprintf(
            p, MEMDS_LOGNO(00507) "answer of %lu bytes exceeds the device's "
                                  "MaxMsgSize %d (statuses alone)",
                           (unsigned long)resp->len, e->sess.max_msg_size);
    }
    e->sess.request_sha1 = e->req_sha1;
    e->sess.bytes_add = (apr_int64_t)(req->len + resp->len); /* MemDSLimit */
    e->sess.response = resp->body;
    e->sess.response_len = resp->len;
    if (e->db->vt->session_save_commit) {
        /* (one round trip; the fault point is before both) */
        MEMDS_FAULT("pg-commit-before");
        if (e->db->vt->session_save_commit(e->db, &e->sess,
                                           cfg->session_timeout)
            != APR_SUCCESS) {
            return eng_db_fail(e, "saving the session and committing");
        }
    }
    else {
        if (e->db->vt->session_save(e->db, &e->sess, cfg->session_timeout)
            != APR_SUCCESS) {
            return eng_db_fail(e, "saving the session");
        }
        MEMDS_FAULT("pg-commit-before");
        if (e->db->vt->commit(e->db) != APR_SUCCESS) {
            return eng_db_fail(e, "committing");
        }
    }
    MEMDS_FAULT("pg-commit-after");
    eng_count(e, resp, was_finished);
    if (!resp->log_msg) {
        resp->log_level = 7;
        resp->log_msg = apr_psprintf(
            p, MEMDS_LOGNO(00508) "device %s session %s MsgID %s: phase %s, "
                                  "%d commands in, %d out%s",
                           e->sess.devid, e->sess.session_id, h->msg_id,
                           e->sess.phase, e->in->cmds->nelts,
                           e->out->cmds->nelts, e->final ? ", Final" : "");
    }
    return APR_SUCCESS;
}

apr_status_t memds_engine_run(memds_response_t *resp,
                              const memds_engine_cfg_t *cfg, memds_sessdb_t *db,
                              const memds_request_t *req, apr_pool_t *p)
{
    eng_t *e = apr_pcalloc(p, sizeof(*e));
    apr_status_t rv = engine_run(e, resp, cfg, db, req, p);

    eng_throttle_after(e); /* a failed session (MemDSAutoBlock) */
    return rv;
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
