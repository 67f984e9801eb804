/* memds_auth.c: SyncML credential helpers, the passwd-file and IMAP
 * verifiers, the login cache, and the engine's check of who a device is
 * (eng_authenticate: basic, md5 with nonces, failures and blocking). */
#include "ds/memds_auth.h"
#include "backends/memds_imap.h"
#include "ds/memds_engine_int.h"

#include <apr_base64.h>
#include <apr_hash.h>
#include <apr_sha1.h>
#include <apr_thread_mutex.h>
#include <apr_file_io.h>
#include <apr_md5.h>
#include <apr_random.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <string.h>

const char *memds_auth_md5_inner(const char *user, const char *password,
                                 apr_pool_t *p)
{
    unsigned char d[APR_MD5_DIGESTSIZE];
    const char *s = apr_pstrcat(p, user, ":", password, NULL);
    char *out = apr_palloc(p, apr_base64_encode_len(APR_MD5_DIGESTSIZE));

    apr_md5(d, s, strlen(s));
    apr_base64_encode(out, (const char *)d, APR_MD5_DIGESTSIZE);
    return out;
}

const char *memds_auth_md5_digest(const char *inner, const char *nonce_b64,
                                  apr_pool_t *p)
{
    apr_md5_ctx_t ctx;
    unsigned char d[APR_MD5_DIGESTSIZE];
    char *nonce = apr_palloc(p, apr_base64_decode_len(nonce_b64) + 1);
    int nlen = apr_base64_decode_binary((unsigned char *)nonce, nonce_b64);
    char *out = apr_palloc(p, apr_base64_encode_len(APR_MD5_DIGESTSIZE));

    apr_md5_init(&ctx);
    apr_md5_update(&ctx, inner, strlen(inner));
    apr_md5_update(&ctx, ":", 1);
    apr_md5_update(&ctx, nonce, (apr_size_t)nlen);
    apr_md5_final(d, &ctx);
    apr_base64_encode(out, (const char *)d, APR_MD5_DIGESTSIZE);
    return out;
}

const char *memds_auth_new_nonce(apr_pool_t *p)
{
    /* The nonce itself is printable (16 letters and digits, about 95 bits):
     * clients such as libsynthesis keep the decoded nonce as a C string, so
     * a NUL or a high byte in it breaks their digest (seen as a local 415). */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[16];
    char text[17];
    char *out = apr_palloc(p, apr_base64_encode_len(16));
    int i;

    if (apr_generate_random_bytes(raw, sizeof(raw)) != APR_SUCCESS) {
        /* /dev/urandom missing is a broken system; fall back to time. */
        apr_time_t t = apr_time_now();
        memset(raw, 0, sizeof(raw));
        memcpy(raw, &t, sizeof(t));
    }
    for (i = 0; i < 16; ++i) {
        text[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
    }
    text[16] = '\0';
    apr_base64_encode(out, text, 16);
    return out;
}

apr_status_t memds_auth_basic_decode(const char **puser, const char **ppass,
                                     const memds_bytes_t *data, apr_pool_t *p)
{
    char *b64 = apr_pstrmemdup(p, data->data, data->len), *dec, *colon;
    int n;

    if (data->len == 0 || data->len > 4096) {
        return APR_EINVAL;
    }
    dec = apr_palloc(p, apr_base64_decode_len(b64) + 1);
    n = apr_base64_decode(dec, b64);
    if (n <= 0) {
        return APR_EINVAL;
    }
    dec[n] = '\0';
    if ((int)strlen(dec) != n || (colon = strchr(dec, ':')) == NULL
        || colon == dec) {
        return APR_EINVAL;
    }
    *colon = '\0';
    *puser = dec;
    *ppass = colon + 1;
    return APR_SUCCESS;
}

int memds_auth_equal(const char *a, const char *b)
{
    apr_size_t la = strlen(a), lb = strlen(b), i;
    unsigned char diff = la != lb;

    for (i = 0; i < la && i < lb; ++i) {
        diff |= (unsigned char)(a[i] ^ b[i]);
    }
    return diff == 0;
}

/* ------------------------------------------------ passwd-file verifier */

/* The password of user from the file, or NULL. */
static apr_status_t file_lookup(const char **ppass, const char *path,
                                const char *user, apr_pool_t *p)
{
    apr_file_t *f;
    char line[1024];
    apr_size_t ulen = strlen(user);
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    while (apr_file_gets(line, sizeof(line), f) == APR_SUCCESS) {
        char *pw, *end;
        if (strncmp(line, user, ulen) != 0 || line[ulen] != ':') {
            continue;
        }
        pw = line + ulen + 1;
        end = strchr(pw, ':');
        if (end == NULL) {
            end = pw + strcspn(pw, "\r\n");
        }
        *end = '\0';
        if (strncmp(pw, "{PLAIN}", 7) == 0) {
            pw += 7;
        }
        else if (pw[0] == '{') {
            continue; /* a hashed scheme we cannot use for md5 */
        }
        *ppass = apr_pstrdup(p, pw);
        apr_file_close(f);
        return APR_SUCCESS;
    }
    apr_file_close(f);
    return APR_ENOENT;
}

static apr_status_t file_check(const memds_verifier_t *v, const char *user,
                               const char *password, apr_pool_t *p)
{
    const char *pw;
    apr_status_t rv = file_lookup(&pw, v->baton, user, p);

    if (rv == APR_ENOENT) {
        return APR_EACCES;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return memds_auth_equal(pw, password) ? APR_SUCCESS : APR_EACCES;
}

static apr_status_t file_md5_inner(const memds_verifier_t *v, const char *user,
                                   const char **pinner, apr_pool_t *p)
{
    const char *pw;
    apr_status_t rv = file_lookup(&pw, v->baton, user, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pinner = memds_auth_md5_inner(user, pw, p);
    return APR_SUCCESS;
}

void memds_verifier_passwd_file(memds_verifier_t *v, const char *path)
{
    v->check_password = file_check;
    v->md5_inner = file_md5_inner;
    v->baton = path;
}

/* ------------------------------------------------------ IMAP verifier */

static apr_status_t imap_check(const memds_verifier_t *v, const char *user,
                               const char *password, apr_pool_t *p)
{
    memds_imap_config_t cfg;
    memds_imap_conn_t *c = NULL;
    memds_imap_err_t err;
    apr_pool_t *sub;
    apr_status_t rv;

    /* a login proven under other TLS settings proves nothing here */
    const char *server = apr_pstrcat(p, (const char *)v->baton, " ca=",
                                     v->ca_file ? v->ca_file : "(system)",
                                     v->starttls ? " starttls" : "", NULL);

    if (v->cache && memds_logincache_hit(v->cache, server, user, password)) {
        return APR_SUCCESS;
    }
    if (apr_pool_create(&sub, p) != APR_SUCCESS) {
        return APR_ENOMEM;
    }
    memset(&cfg, 0, sizeof(cfg));
    memset(&err, 0, sizeof(err));
    cfg.url = v->baton;
    cfg.user = user;
    cfg.password = password;
    cfg.connect_timeout_ms = 10000;
    cfg.io_timeout_ms = 10000;
    cfg.ca_file = v->ca_file;
    cfg.starttls = v->starttls;
    if (v->imap_cache) {
        /* The mailbox logs in as the device too: one login for both. The
         * login is always a new one (an idle connection logged in with
         * this password proves nothing about it now: a password changed
         * on the server would go on working while it is kept and used);
         * it then stays in the cache with the mailbox's own I/O timeout
         * (the login itself is bounded by the connect timeout). */
        memds_imap_lease_t *lease = NULL;
        cfg.io_timeout_ms = 0;
        cfg.stats = v->stats;
        cfg.log = v->log;
        rv = memds_imap_cache_login(v->imap_cache, &lease, &c, &cfg, &err);
        if (rv == APR_SUCCESS) {
            memds_imap_cache_put(v->imap_cache, lease);
        }
    }
    else {
        rv = memds_imap_connect(&c, &cfg, &err, sub);
        if (rv == APR_SUCCESS) {
            memds_imap_close(c);
        }
    }
    if (rv == APR_SUCCESS) {
        if (v->cache) {
            memds_logincache_put(v->cache, server, user, password);
        }
    }
    else {
        /* A refused login is a wrong password; anything else means the
         * server could not decide (503 to the device, not 401). */
        memds_err_t te = memds_imap_err_of(&err);
        rv = te.kind == MEMDS_ERR_AUTH ? APR_EACCES : APR_EGENERAL;
        if (te.kind == MEMDS_ERR_TLS) {
            memds_logf(v->log, MEMDS_LOG_ERR, 0,
                       MEMDS_LOGNO(00220) "pass-through login of %s not "
                                          "checked: %s",
                       user, err.msg ? err.msg : te.text);
        }
    }
    apr_pool_destroy(sub);
    return rv;
}

static apr_status_t imap_md5_inner(const memds_verifier_t *v, const char *user,
                                   const char **pinner, apr_pool_t *p)
{
    return APR_ENOENT;
}

void memds_verifier_imap(memds_verifier_t *v, const char *url,
                         memds_logincache_t *cache)
{
    v->check_password = imap_check;
    v->md5_inner = imap_md5_inner;
    v->baton = url;
    v->cache = cache;
    v->ca_file = NULL;
    v->starttls = 0;
    v->log = NULL;
    v->imap_cache = NULL;
    v->stats = NULL;
}

void memds_verifier_imap_share(memds_verifier_t *v,
                               struct memds_imap_cache_t *cache,
                               struct memds_stats_t *stats)
{
    v->imap_cache = cache;
    v->stats = stats;
}

void memds_verifier_imap_tls(memds_verifier_t *v, const char *ca_file,
                             int starttls, const memds_logger_t *log)
{
    v->ca_file = ca_file;
    v->starttls = starttls;
    v->log = log;
}

/* ------------------------------------------------------- login cache */

struct memds_logincache_t {
    apr_thread_mutex_t *lock;
    apr_pool_t *pool; /* entries; cleared when full */
    apr_hash_t *h;    /* key -> apr_time_t * (expiry) */
    unsigned char salt[16];
    apr_interval_time_t ttl;
    int max;
};

static const char *cache_key(const memds_logincache_t *c, const char *server,
                             const char *user, const char *password, char *buf)
{
    apr_sha1_ctx_t ctx;
    unsigned char d[APR_SHA1_DIGESTSIZE];
    int i;

    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, c->salt, sizeof(c->salt));
    apr_sha1_update(&ctx, server ? server : "",
                    (unsigned)strlen(server ? server : "") + 1);
    apr_sha1_update(&ctx, user, (unsigned)strlen(user) + 1);
    apr_sha1_update(&ctx, password, (unsigned)strlen(password));
    apr_sha1_final(d, &ctx);
    for (i = 0; i < APR_SHA1_DIGESTSIZE; ++i) {
        apr_snprintf(buf + 2 * i, 3, "%02x", d[i]);
    }
    return buf;
}

apr_status_t memds_logincache_create(memds_logincache_t **pc, int ttl_secs,
                                     int max_entries, apr_pool_t *p)
{
    memds_logincache_t *c = apr_pcalloc(p, sizeof(*c));
    apr_status_t rv;

    if ((rv = apr_generate_random_bytes(c->salt, sizeof(c->salt)))
            != APR_SUCCESS
        || (rv = apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p))
               != APR_SUCCESS
        || (rv = apr_pool_create(&c->pool, p)) != APR_SUCCESS) {
        return rv;
    }
    c->h = apr_hash_make(c->pool);
    c->ttl = apr_time_from_sec(ttl_secs);
    c->max = max_entries > 0 ? max_entries : 1;
    *pc = c;
    return APR_SUCCESS;
}

int memds_logincache_hit(memds_logincache_t *c, const char *server,
                         const char *user, const char *password)
{
    char key[2 * APR_SHA1_DIGESTSIZE + 1];
    apr_time_t *exp;
    int hit;

    cache_key(c, server, user, password, key);
    apr_thread_mutex_lock(c->lock);
    exp = apr_hash_get(c->h, key, APR_HASH_KEY_STRING);
    hit = exp && *exp > apr_time_now();
    apr_thread_mutex_unlock(c->lock);
    return hit;
}

void memds_logincache_put(memds_logincache_t *c, const char *server,
                          const char *user, const char *password)
{
    char key[2 * APR_SHA1_DIGESTSIZE + 1];
    apr_time_t *exp;

    cache_key(c, server, user, password, key);
    apr_thread_mutex_lock(c->lock);
    if ((int)apr_hash_count(c->h) >= c->max) {
        apr_pool_clear(c->pool); /* bounded: start over */
        c->h = apr_hash_make(c->pool);
    }
    exp = apr_hash_get(c->h, key, APR_HASH_KEY_STRING);
    if (exp == NULL) {
        exp = apr_palloc(c->pool, sizeof(*exp));
        apr_hash_set(c->h, apr_pstrdup(c->pool, key), APR_HASH_KEY_STRING, exp);
    }
    *exp = apr_time_now() + c->ttl;
    apr_thread_mutex_unlock(c->lock);
}

/* ============================================= the engine's login check */

/* The mailbox datastores log in to IMAP with the device's own password
 * (no MemDSIMAPMaster), or the Outbox to SMTP (MemDSSMTPAuth user): every
 * message may need it. */
static int pass_through(const eng_t *e)
{
    return strcmp(e->cfg->datastore, "imap") == 0 && e->cfg->mail
           && (e->cfg->mail->master_user == NULL
               || (e->cfg->mail->smtp_url
                   && e->cfg->mail->smtp_auth == MEMDS_SMTP_AUTH_USER));
}

/* A later message of a session: the password its basic credentials carry
 * (pass-through IMAP login). */
void eng_session_password(eng_t *e)
{
    const memds_cred_t *cred = e->in->hdr.cred;
    const char *user, *pass;

    /* A later message of a session: the basic credentials the device keeps
     * sending carry the password for the pass-through IMAP login (the IMAP
     * server checks it again there). */
    if (pass_through(e) && !e->req->http_user && cred
        && (!cred->meta || !cred->meta->type
            || strcmp(cred->meta->type, "syncml:auth-basic") == 0)
        && memds_auth_basic_decode(&user, &pass, &cred->data, e->p)
               == APR_SUCCESS
        && strcmp(memds_account_key(user, e->cfg->realm, e->p),
                  e->sess.account)
               == 0) {
        e->password = pass;
        e->hdr_status = MEMDS_ST_OK;
    }
}

/* The user a later message of a session names: the HTTP user, then the
 * basic credentials' user, then for md5 the Source LocName. NULL when it
 * names none (no credentials, malformed or unsupported ones: nothing to
 * compare; the session's account stands). */
static const char *claimed_user(const eng_t *e, const char **phow)
{
    const memds_hdr_t *h = &e->in->hdr;
    const memds_cred_t *cred = h->cred;
    const char *type, *user, *pass;

    if (e->req->http_user) {
        *phow = "HTTP user";
        return e->req->http_user;
    }
    if (cred == NULL) {
        return NULL;
    }
    type = cred->meta && cred->meta->type ? cred->meta->type
                                          : "syncml:auth-basic";
    if (strcmp(type, "syncml:auth-basic") == 0
        && memds_auth_basic_decode(&user, &pass, &cred->data, e->p)
               == APR_SUCCESS) {
        *phow = "basic credentials";
        return user;
    }
    if (strcmp(type, "syncml:auth-md5") == 0 && h->source->name
        && *h->source->name) {
        *phow = "md5 credentials";
        return h->source->name;
    }
    return NULL;
}

static apr_status_t end_session(eng_t *e, int code, const char *why);

/* The session's account is of another location's realm: its RespURI
 * posted here. (Without a realm here, an account "r:login" of a
 * configured realm r is foreign.) */
static int foreign_realm(const eng_t *e)
{
    const char *key = e->sess.account;
    int i;

    if (memds_account_login(key, e->cfg->realm) == NULL) {
        return 1;
    }
    for (i = 0; e->cfg->realm == NULL && e->cfg->realms
                && i < e->cfg->realms->nelts;
         ++i) {
        if (memds_account_login(key, APR_ARRAY_IDX(e->cfg->realms, i,
                                                   const char *))
            != NULL) {
            return 1;
        }
    }
    return 0;
}

/* A session belongs to the account it was opened for. A later message
 * whose HTTP user or SyncHdr credentials name another account (valid or
 * not: they are not checked, so this is no password oracle) ends the
 * session: the answer is 401 for the header and every command and nothing
 * else, and the session row keeps that answer (for a retransmission of
 * the same bytes) and expires now, so that any other message with its
 * token is refused as for an expired session and it cannot be resumed.
 * Returns APR_SUCCESS (same account), or APR_EACCES once the refusal is
 * stored and committed, or APR_EGENERAL. */
apr_status_t eng_session_account_check(eng_t *e)
{
    const memds_hdr_t *h = &e->in->hdr;
    const char *how = NULL, *user = claimed_user(e, &how);

    if (foreign_realm(e)) {
        /* a session of another location's realm (its RespURI used here) */
        how = "the location (MemDSAccountRealm)";
        user = e->cfg->realm ? e->cfg->realm : "no realm";
    }
    else if (user == NULL
             || strcmp(memds_account_key(user, e->cfg->realm, e->p),
                       e->sess.account)
                    == 0) {
        return APR_SUCCESS;
    }
    e->resp->log_level = 4;
    e->resp->log_msg = apr_psprintf(
        e->p, MEMDS_LOGNO(00540) "device %s session %s MsgID %s of account "
                                 "%s: %s name another account (%.60s); "
                                 "session ended, answered 401",
                          e->sess.devid, e->sess.session_id, h->msg_id,
                          e->sess.account, how, user);
    return end_session(e, MEMDS_ST_INVALID_CREDENTIALS,
                       "session of another account");
}

/* End a found session with this message: code for the header and every
 * command and nothing else (eng_refuse), Final, no RespURI; the session row
 * keeps that answer (for a retransmission of the same bytes) and expires
 * now, so that any other message with its token is refused as for an
 * expired session and it cannot be resumed. The log line is the caller's.
 * Returns APR_EACCES once the answer is stored and committed, or
 * APR_EGENERAL. */
static apr_status_t end_session(eng_t *e, int code, const char *why)
{
    e->sess.client_msg_id = atoi(e->in->hdr.msg_id);
    e->sess.server_msg_id++;
    e->chal = NULL;
    if (eng_refuse(e, code, code, why) != APR_SUCCESS) {
        e->db->vt->rollback(e->db);
        return APR_EGENERAL;
    }
    e->sess.request_sha1 = e->req_sha1;
    e->sess.response = e->resp->body;
    e->sess.response_len = e->resp->len;
    e->sess.finished = 0;
    if (e->db->vt->session_save(e->db, &e->sess, 0) != APR_SUCCESS) {
        return eng_db_fail(e, "ending the session");
    }
    if (e->db->vt->commit(e->db) != APR_SUCCESS) {
        return eng_db_fail(e, "committing the end of a session");
    }
    return APR_EACCES;
}

/* --------------------------------- the device authenticates the server */

/* memds.sessions.server_cred: how far the device's authentication of the
 * server got in this session. */
#define SC_NONE 0     /* no challenge (or none since the last acceptance) */
#define SC_BASIC 1    /* our last message carried basic credentials */
#define SC_MD5 2      /* ... md5 credentials */
#define SC_ACCEPTED 3 /* the device answered 212: accepted for the session */

/* The device's Status for the SyncHdr of our previous message, or NULL. */
static const memds_cmd_t *hdr_status(const eng_t *e)
{
    int i;

    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        if (c->type == MEMDS_CMD_STATUS && c->cmd
            && strcmp(c->cmd, "SyncHdr") == 0
            && (c->cmd_ref == NULL || strcmp(c->cmd_ref, "0") == 0)) {
            return c;
        }
    }
    return NULL;
}

/* The server's Cred of the given type from the device's secret. */
static memds_cred_t *server_cred_make(eng_t *e, const memds_server_cred_t *sc,
                                      const char *id, int md5,
                                      const char *nonce)
{
    memds_cred_t *cred = apr_pcalloc(e->p, sizeof(*cred));
    const char *data;

    cred->meta = eng_meta_new(e->p);
    cred->meta->type = md5 ? "syncml:auth-md5" : "syncml:auth-basic";
    cred->meta->format = "b64";
    if (md5) {
        data = memds_auth_md5_digest(memds_auth_md5_inner(id, sc->password,
                                                          e->p),
                                     nonce, e->p);
    }
    else {
        const char *plain = apr_pstrcat(e->p, id, ":", sc->password, NULL);
        char *b = apr_palloc(e->p, apr_base64_encode_len((int)strlen(plain)));
        apr_base64_encode(b, plain, (int)strlen(plain));
        data = b;
    }
    cred->data.data = data;
    cred->data.len = strlen(data);
    return cred;
}

/* The device's authentication of the server cannot go on: a warning, and
 * the session ends with 514 (see end_session). */
static apr_status_t server_auth_end(eng_t *e, const char *msg)
{
    e->resp->log_level = 4;
    e->resp->log_msg = msg; /* code in msg */
    return end_session(e, MEMDS_ST_OP_CANCELLED_FAIL,
                       "server authentication failed");
}

/* A device may authenticate the server: it answers our SyncHdr with 401 or
 * 407 and a Chal (syncml:auth-basic, or syncml:auth-md5 with NextNonce).
 * The SyncHdr of our answer then carries our Cred, made from the device's
 * row of memds.server_credentials (server_id, or the LocURI the device
 * addresses; the password). Until the device answers 212 (accepted for the
 * session) every later message carries it again (200: this message only),
 * with the nonce of the latest md5 Chal. A challenge that answers a message
 * with our Cred is a rejection; the session ends (514), as it does when the
 * device has no row or asks for what its row does not allow: a device that
 * requires server authentication cannot go on without it. Returns
 * APR_SUCCESS (e->server_cred set when our answer carries Cred), APR_EACCES
 * once the end of the session is stored, or a database error. */
apr_status_t eng_server_auth(eng_t *e)
{
    const memds_cmd_t *st = hdr_status(e);
    int code = st ? eng_code_of(st->data) : 0, md5;
    const memds_meta_t *chal = st ? st->chal : NULL;
    const char *type, *id, *nonce, *why;
    memds_server_cred_t sc;
    apr_status_t rv;

    if (code == MEMDS_ST_INVALID_CREDENTIALS
        || code == MEMDS_ST_MISSING_CREDENTIALS) {
        if (e->sess.server_cred == SC_BASIC || e->sess.server_cred == SC_MD5) {
            return server_auth_end(
                e, apr_psprintf(e->p,
                                MEMDS_LOGNO(00592) "device %s session %s MsgID "
                                                   "%s: the device rejected "
                                                   "the server's credentials "
                                                   "(%d); session ended",
                                            e->sess.devid, e->sess.session_id,
                                            e->in->hdr.msg_id, code));
        }
        type = chal && chal->type ? chal->type : "syncml:auth-basic";
    }
    else if (e->sess.server_cred == SC_BASIC || e->sess.server_cred == SC_MD5) {
        if (code == MEMDS_ST_AUTH_ACCEPTED) {
            e->sess.server_cred = SC_ACCEPTED;
            return APR_SUCCESS;
        }
        /* Accepted for that message only (or not answered): again. */
        type = e->sess.server_cred == SC_MD5 ? "syncml:auth-md5"
                                             : "syncml:auth-basic";
    }
    else {
        return APR_SUCCESS; /* the device asks nothing of the server */
    }

    md5 = strcmp(type, "syncml:auth-md5") == 0;
    rv = e->db->vt->server_cred_get(e->db, &sc, e->sess.account, e->sess.devid);
    if (rv == APR_ENOENT) {
        return server_auth_end(
            e, apr_psprintf(e->p,
                            MEMDS_LOGNO(00590) "device %s of account %s "
                                               "session %s: the device "
                                               "requires the server to "
                                               "authenticate (%d, %.40s) but "
                                               "no server password is set "
                                               "for it (memds-admin "
                                               "server-password); session "
                                               "ended",
                                        e->sess.devid, e->sess.account,
                                        e->sess.session_id, code, type));
    }
    if (rv != APR_SUCCESS) {
        return eng_db_fail(e, "reading the server's credentials");
    }
    why = !md5 && strcmp(type, "syncml:auth-basic") != 0
              ? "an authentication type the server does not support"
          : !md5 && !sc.allow_basic
              ? "basic, which its server password does not allow "
                "(memds-admin server-password --basic)"
              : NULL;
    if (why) {
        return server_auth_end(
            e, apr_psprintf(e->p,
                            MEMDS_LOGNO(00593) "device %s of account %s "
                                               "session %s: the device asks "
                                               "the server to authenticate "
                                               "with %.40s: %s; session ended",
                                        e->sess.devid, e->sess.account,
                                        e->sess.session_id, type, why));
    }
    nonce = sc.nonce ? sc.nonce : "";
    if (md5 && chal
        && strcmp(chal->next_nonce ? chal->next_nonce : "", nonce) != 0) {
        /* The server nonce (also the SAN digest's) is the device's latest;
         * a Chal without NextNonce means the empty nonce. */
        nonce = chal->next_nonce ? chal->next_nonce : "";
        if (e->db->vt->server_cred_nonce(e->db, e->sess.account, e->sess.devid,
                                         nonce)
            != APR_SUCCESS) {
            return eng_db_fail(e, "storing the server nonce");
        }
    }
    id = sc.server_id ? sc.server_id : e->in->hdr.target->uri;
    e->server_cred = server_cred_make(e, &sc, id, md5, nonce);
    e->sess.server_cred = md5 ? SC_MD5 : SC_BASIC;
    if (code == MEMDS_ST_INVALID_CREDENTIALS
        || code == MEMDS_ST_MISSING_CREDENTIALS) {
        e->resp->log_level = 6;
        e->resp->log_msg = apr_psprintf(
            e->p, MEMDS_LOGNO(00591) "device %s session %s MsgID %s: its "
                                     "challenge (%d) answered with the "
                                     "server's %s credentials as %.80s",
                              e->sess.devid, e->sess.session_id,
                              e->in->hdr.msg_id, code, md5 ? "md5" : "basic",
                              id);
    }
    return APR_SUCCESS;
}

/* Decide who the client is. Returns APR_SUCCESS with *paccount set, or
 * APR_EACCES after filling the refusal answer, or a database error. */
apr_status_t eng_authenticate(eng_t *e, const char **paccount)
{
    const memds_hdr_t *h = &e->in->hdr;
    const memds_cred_t *cred = h->cred;
    const char *type = cred && cred->meta && cred->meta->type
                           ? cred->meta->type
                           : "syncml:auth-basic";
    const char *user = NULL, *pass = NULL, *devid = h->source->uri;
    memds_auth_row_t ar;
    apr_status_t rv;
    int md5 = strcmp(type, "syncml:auth-md5") == 0;
    const char *why = NULL, *akey = NULL;

    if (e->req->http_user) {
        *paccount = memds_account_key(e->req->http_user, e->cfg->realm, e->p);
        e->hdr_status = MEMDS_ST_OK;
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
        e->resp->log_msg = apr_psprintf(e->p,
                                        MEMDS_LOGNO(00509) "device %s: unsupported "
                                                   "authentication type %.60s",
                                            devid, type);
        return eng_refuse(e, MEMDS_ST_NOT_SUPPORTED, MEMDS_ST_NOT_SUPPORTED,
                          "unsupported authentication type")
                       == APR_SUCCESS
                   ? APR_EACCES
                   : APR_EGENERAL;
    }
    if (strlen(user) > 255) {
        why = "user name too long";
        goto challenge;
    }
    /* State is kept per account key (the login in this location's realm);
     * the verifier and the md5 digest know the login. */
    akey = memds_account_key(user, e->cfg->realm, e->p);
    if (e->db->vt->auth_get(e->db, &ar, akey, devid) != APR_SUCCESS) {
        return eng_db_fail(e, "reading authentication state");
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
            rv = e->db->vt->md5_get(e->db, &inner, akey);
            if (rv != APR_SUCCESS && rv != APR_ENOENT) {
                return eng_db_fail(e, "reading md5 credential data");
            }
        }
        if (rv != APR_SUCCESS && rv != APR_ENOENT) {
            e->resp->http_status = 503;
            e->resp->log_level = 3;
            e->resp->log_msg = MEMDS_LOGNO(00510) "credential verifier unavailable";
            e->db->vt->rollback(e->db);
            return APR_EGENERAL;
        }
        if (rv == APR_ENOENT) {
            why = "unknown user or no md5 credential data";
            goto challenge;
        }
        expect = memds_auth_md5_digest(inner, ar.nonce, e->p);
        got = apr_pstrmemdup(e->p, cred->data.data, cred->data.len);
        if (cred->data.len == 16
            && (!cred->meta || !cred->meta->format
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
        rv = e->cfg->verifier->check_password(e->cfg->verifier, user, pass,
                                              e->p);
        if (rv == APR_EACCES) {
            why = "wrong user name or password";
            goto challenge;
        }
        if (rv != APR_SUCCESS) {
            e->resp->http_status = 503;
            e->resp->log_level = 3;
            e->resp->log_msg = MEMDS_LOGNO(00511) "credential verifier unavailable";
            e->db->vt->rollback(e->db);
            return APR_EGENERAL;
        }
    }
    if (e->db->vt->auth_ok(e->db, akey, devid) != APR_SUCCESS) {
        return eng_db_fail(e, "recording authentication");
    }
    if (!md5 && e->cfg->record_md5
        && e->db->vt->md5_put(e->db, akey,
                              memds_auth_md5_inner(user, pass, e->p),
                              "basic-login")
               != APR_SUCCESS) {
        /* Keep md5 working for this account's other devices. */
        return eng_db_fail(e, "recording md5 credential data");
    }
    if (md5) {
        /* The nonce for the next session goes out with this answer. */
        const char *nonce = memds_auth_new_nonce(e->p);
        if (e->db->vt->auth_set_nonce(e->db, akey, devid, nonce)
            != APR_SUCCESS) {
            return eng_db_fail(e, "storing the nonce");
        }
        e->chal = eng_meta_new(e->p);
        e->chal->type = "syncml:auth-md5";
        e->chal->format = "b64";
        e->chal->next_nonce = nonce;
    }
    /* With a pass-through IMAP login the password is needed in every
     * message that reaches the mailbox: 200 (not 212, "authenticated for
     * the session") keeps the device sending its credentials. */
    e->password = pass;
    e->hdr_status = pass_through(e) && !md5 ? MEMDS_ST_OK
                                            : MEMDS_ST_AUTH_ACCEPTED;
    e->authenticated_now = 1;
    *paccount = akey;
    return APR_SUCCESS;

challenge:
    if (user && akey == NULL) {
        akey = memds_account_key(user, e->cfg->realm, e->p);
    }
    if (user) {
        e->fail_account = akey; /* a failed session (MemDSAutoBlock) */
        e->fail_why = why;
    }
    if (user
        && e->db->vt->auth_failed(e->db, akey, devid, e->cfg->auth_max_failures,
                                  e->cfg->auth_window, e->cfg->auth_block)
               != APR_SUCCESS) {
        return eng_db_fail(e, "counting an authentication failure");
    }
challenge_nocount:
    e->chal = eng_meta_new(e->p);
    if (e->cfg->auth_type == MEMDS_AUTH_MD5 || md5) {
        const char *nonce = memds_auth_new_nonce(e->p);
        e->chal->type = "syncml:auth-md5";
        e->chal->format = "b64";
        e->chal->next_nonce = nonce;
        if (user && akey == NULL) {
            akey = memds_account_key(user, e->cfg->realm, e->p);
        }
        if (user
            && e->db->vt->auth_set_nonce(e->db, akey, devid, nonce)
                   != APR_SUCCESS) {
            return eng_db_fail(e, "storing the nonce");
        }
    }
    else {
        e->chal->type = "syncml:auth-basic";
        e->chal->format = "b64";
    }
fail_nocount:
    e->resp->log_level = 4;
    e->resp->log_msg = apr_psprintf(
        e->p, MEMDS_LOGNO(00512) "device %s user %s: authentication "
                                 "failed: %s",
                          devid, user ? user : "(none)", why);
    if (eng_refuse(e,
                   cred ? MEMDS_ST_INVALID_CREDENTIALS
                        : MEMDS_ST_MISSING_CREDENTIALS,
                   cred ? MEMDS_ST_INVALID_CREDENTIALS
                        : MEMDS_ST_MISSING_CREDENTIALS,
                   why)
        != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    /* Keep the failure count and the nonce. */
    if (e->db->vt->commit(e->db) != APR_SUCCESS) {
        return eng_db_fail(e, "committing an authentication failure");
    }
    return APR_EACCES;
}
