/* memds_config.c: directives, create/merge, typed getters. */
#include "memds_glue.h"
#include "backends/memds_imap.h"

#include <http_core.h>
#include <ap_mpm.h>
#include <apr_strings.h>
#include <apr_file_info.h>
#include <apr_lib.h>

#include "util/memds_util.h"
#include "store/memds_pushstore.h"

extern module AP_MODULE_DECLARE_DATA memds_module;

memds_srv_conf *memds_srv_conf_get(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &memds_module);
}

memds_dir_conf *memds_dir_conf_get(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &memds_module);
}

void memds_collect_engine_dirs(apr_pool_t *p, server_rec *s)
{
    apr_hash_t *seen = apr_hash_make(p), *realms = apr_hash_make(p);
    apr_array_header_t *all = apr_array_make(p, 2, sizeof(const char *));
    apr_hash_index_t *hi;
    server_rec *v;
    int i;

    for (v = s; v; v = v->next) {
        memds_srv_conf *sc = memds_srv_conf_get(v);
        core_server_config *core = ap_get_core_module_config(v->module_config);
        memds_dir_conf *base = ap_get_module_config(v->lookup_defaults,
                                                    &memds_module);
        /* <Location> sections, and <Directory> ones (a sync URL mapped to
         * a directory with Alias): their path names the ledger's rows */
        apr_array_header_t *secs = apr_array_append(p, core->sec_url,
                                                    core->sec_dir);
        ap_conf_vector_t **sec;

        if (v != s && sc == memds_srv_conf_get(s)) {
            /* a virtual host without MemDS directives of its own shares
             * the main server's record (httpd merges nothing then): its
             * locations are the main server's, listed there already */
            continue;
        }
        sc->engine_dirs = apr_array_make(p, 2, sizeof(memds_dir_conf *));
        if (base == NULL) {
            base = memds_create_dir_conf(p, NULL);
        }
        sec = (ap_conf_vector_t **)secs->elts;
        for (i = 0; i < secs->nelts; ++i) {
            core_dir_config *cd = ap_get_core_module_config(sec[i]);
            memds_dir_conf *dc = ap_get_module_config(sec[i], &memds_module);

            if (cd == NULL || cd->d == NULL
                || apr_hash_get(seen, cd->d, APR_HASH_KEY_STRING)) {
                continue;
            }
            if (dc == NULL) {
                /* no MemDS directive in the section: all inherited */
                dc = memds_create_dir_conf(p, cd->d);
            }
            dc = memds_merge_dir_conf(p, base, dc);
            if (dc->engine == 1 && dc->location != NULL) {
                apr_hash_set(seen, cd->d, APR_HASH_KEY_STRING, cd->d);
                APR_ARRAY_PUSH(sc->engine_dirs, memds_dir_conf *) = dc;
                if (dc->account_realm) {
                    apr_hash_set(realms, dc->account_realm,
                                 APR_HASH_KEY_STRING, dc->account_realm);
                }
            }
        }
    }
    for (hi = apr_hash_first(p, realms); hi; hi = apr_hash_next(hi)) {
        APR_ARRAY_PUSH(all, const char *) = apr_hash_this_key(hi);
    }
    for (v = s; v; v = v->next) {
        memds_srv_conf_get(v)->realms = all->nelts ? all : NULL;
    }
}

void *memds_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    memds_srv_conf *sc = apr_pcalloc(p, sizeof(*sc));

    sc->db_min = sc->db_keep = sc->db_max = sc->db_exptime = MEMDS_UNSET;
    sc->push_delay = MEMDS_UNSET;
    sc->watch_max = MEMDS_UNSET;
    sc->imap_keep = sc->imap_keep_secs = MEMDS_UNSET;
    return sc;
}

#define MERGE_INT(f) c->f = (add->f != MEMDS_UNSET) ? add->f : base->f
#define MERGE_PTR(f) c->f = add->f ? add->f : base->f

void *memds_merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    const memds_srv_conf *base = basev, *add = addv;
    memds_srv_conf *c = apr_pcalloc(p, sizeof(*c));

    MERGE_PTR(db_conninfo);
    MERGE_INT(db_min);
    MERGE_INT(db_keep);
    MERGE_INT(db_max);
    MERGE_INT(db_exptime);
    MERGE_PTR(server_id);
    MERGE_INT(push_delay);
    MERGE_INT(watch_max);
    MERGE_INT(imap_keep);
    MERGE_INT(imap_keep_secs);
    MERGE_PTR(kannel_url);
    if (add->kannel_user) {
        c->kannel_user = add->kannel_user;
        c->kannel_pass = add->kannel_pass;
    }
    else {
        c->kannel_user = base->kannel_user;
        c->kannel_pass = base->kannel_pass;
    }
    c->engine_used = add->engine_used;
    c->engine_where = add->engine_where;
    return c;
}

void *memds_create_dir_conf(apr_pool_t *p, char *dir)
{
    memds_dir_conf *dc = apr_pcalloc(p, sizeof(*dc));

    dc->location = dir ? apr_pstrdup(p, dir) : NULL;
    dc->engine = MEMDS_UNSET;
    dc->max_msg_size = MEMDS_UNSET;
    dc->max_obj_size = MEMDS_UNSET;
    dc->auth_type = MEMDS_UNSET;
    dc->session_timeout = MEMDS_UNSET;
    dc->conflict = MEMDS_UNSET;
    dc->auth_failures = dc->auth_window = dc->auth_block = MEMDS_UNSET;
    {
        int i;
        for (i = 0; i < 6; ++i) {
            dc->limits[i] = MEMDS_UNSET;
        }
    }
    dc->autoblock = dc->autoblock_secs = dc->quarantine = MEMDS_UNSET;
    dc->delete_policy = MEMDS_UNSET;
    dc->smtp_auth = MEMDS_UNSET;
    dc->sent_copy = MEMDS_UNSET;
    dc->rejected_to_drafts = MEMDS_UNSET;
    dc->truncate.whole_max = dc->truncate.text_max = MEMDS_DEFAULT_TRUNCATE;
    dc->max_age = dc->max_items = MEMDS_UNSET;
    dc->push = MEMDS_UNSET;
    dc->push_self = MEMDS_UNSET;
    dc->push_watch = MEMDS_UNSET;
    dc->compress = MEMDS_UNSET;
    dc->imap_starttls = dc->smtp_starttls = MEMDS_UNSET;
    return dc;
}

void *memds_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const memds_dir_conf *base = basev, *add = addv;
    memds_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    MERGE_INT(engine);
    c->location = add->location ? add->location : base->location;
    MERGE_PTR(imap_url);
    MERGE_PTR(smtp_url);
    c->max_msg_size = add->max_msg_size != MEMDS_UNSET ? add->max_msg_size
                                                       : base->max_msg_size;
    c->max_obj_size = add->max_obj_size != MEMDS_UNSET ? add->max_obj_size
                                                       : base->max_obj_size;
    MERGE_PTR(datastore);
    MERGE_PTR(master_user);
    MERGE_PTR(account_realm);
    MERGE_PTR(master_password);
    MERGE_INT(delete_policy);
    MERGE_INT(sent_copy);
    MERGE_INT(rejected_to_drafts);
    c->truncate_set = add->truncate_set || base->truncate_set;
    c->truncate = add->truncate_set ? add->truncate : base->truncate;
    MERGE_INT(max_age);
    MERGE_INT(max_items);
    MERGE_INT(push);
    c->push_self = add->push_self != MEMDS_UNSET ? add->push_self
                                                 : base->push_self;
    c->push_self_sms = add->push_self != MEMDS_UNSET ? add->push_self_sms
                                                     : base->push_self_sms;
    c->push_self_prefixes = add->push_self != MEMDS_UNSET
                                ? add->push_self_prefixes
                                : base->push_self_prefixes;
    MERGE_INT(push_watch);
    MERGE_PTR(exclude);
    MERGE_INT(compress);
    MERGE_PTR(tls_ca_file);
    MERGE_INT(imap_starttls);
    MERGE_INT(smtp_starttls);
    if (add->smtp_auth != MEMDS_UNSET) {
        c->smtp_auth = add->smtp_auth;
        c->smtp_user = add->smtp_user;
        c->smtp_password = add->smtp_password;
    }
    else {
        c->smtp_auth = base->smtp_auth;
        c->smtp_user = base->smtp_user;
        c->smtp_password = base->smtp_password;
    }
    {
        int i;
        for (i = 0; i < 9; ++i) {
            c->folder_names[i] = add->folder_names[i] ? add->folder_names[i]
                                                      : base->folder_names[i];
        }
    }
    MERGE_PTR(auth_file);
    MERGE_INT(auth_type);
    MERGE_INT(session_timeout);
    MERGE_INT(conflict);
    MERGE_INT(auth_failures);
    MERGE_INT(auth_window);
    MERGE_INT(auth_block);
    {
        int i;
        for (i = 0; i < 6; ++i) {
            c->limits[i] = add->limits[i] != MEMDS_UNSET ? add->limits[i]
                                                         : base->limits[i];
        }
    }
    c->autoblock_secs = add->autoblock != MEMDS_UNSET ? add->autoblock_secs
                                                      : base->autoblock_secs;
    MERGE_INT(autoblock);
    MERGE_INT(quarantine);
    if (c->auth_file) {
        memds_verifier_passwd_file(&c->verifier, c->auth_file);
    }
    return c;
}

int memds_dir_engine(const memds_dir_conf *dc)
{
    return dc->engine == 1;
}

apr_off_t memds_dir_max_msg_size(const memds_dir_conf *dc)
{
    return dc->max_msg_size != MEMDS_UNSET ? dc->max_msg_size
                                           : MEMDS_DEFAULT_MAX_MSG_SIZE;
}

void memds_dir_engine_cfg(memds_engine_cfg_t *cfg, memds_verifier_t *vbuf,
                          memds_mail_cfg_t *mbuf, const memds_logger_t *log,
                          memds_pgpool_t *pgpool, memds_logincache_t *logins,
                          memds_imap_cache_t *imap_cache,
                          memds_stats_t *stats, const memds_dir_conf *dc)
{
#define OR(v, d) ((v) != MEMDS_UNSET ? (v) : (d))
    memset(cfg, 0, sizeof(*cfg));
    memset(mbuf, 0, sizeof(*mbuf));
    /* A location with an IMAP server serves its mailbox by default. */
    cfg->datastore = dc->datastore  ? dc->datastore
                     : dc->imap_url ? "imap"
                                    : "items";
    mbuf->imap_url = dc->imap_url;
    mbuf->master_user = dc->master_user;
    mbuf->realm = dc->account_realm;
    cfg->realm = dc->account_realm;
    mbuf->master_password = dc->master_password;
    mbuf->delete_policy = (memds_delete_policy_e)OR(dc->delete_policy,
                                                    MEMDS_DELETE_TRASH);
    memcpy(mbuf->folder_names, dc->folder_names, sizeof(mbuf->folder_names));
    mbuf->log = log;
    mbuf->smtp_url = dc->smtp_url;
    mbuf->smtp_auth = OR(dc->smtp_auth, MEMDS_SMTP_AUTH_NONE);
    mbuf->smtp_user = dc->smtp_user;
    mbuf->smtp_password = dc->smtp_password;
    mbuf->pgpool = pgpool;
    mbuf->location = dc->location;
    mbuf->imap_cache = imap_cache;
    mbuf->stats = stats;
    mbuf->no_sent_copy = !OR(dc->sent_copy, 1);
    mbuf->keep_rejected = !OR(dc->rejected_to_drafts, 1);
    mbuf->truncate = &dc->truncate;
    mbuf->exclude = dc->exclude;
    mbuf->ca_file = dc->tls_ca_file;
    mbuf->imap_starttls = OR(dc->imap_starttls, 0) == 1;
    mbuf->smtp_starttls = OR(dc->smtp_starttls, 0) == 1;
    cfg->max_age_days = OR(dc->max_age, 0);
    cfg->max_items = OR(dc->max_items, 0);
    cfg->push = OR(dc->push, 0) == 1;
    cfg->push_self_sms = dc->push_self == 1 && dc->push_self_sms;
    cfg->push_self_prefixes = dc->push_self == 1 ? dc->push_self_prefixes
                                                 : NULL;
    cfg->push_watch = cfg->push && OR(dc->push_watch, 0) == 1 ? dc->imap_url
                                                               : NULL;
    cfg->mail = mbuf;
    cfg->session_timeout = OR(dc->session_timeout,
                              MEMDS_DEFAULT_SESSION_TIMEOUT);
    cfg->max_msg_size = memds_dir_max_msg_size(dc);
    cfg->max_obj_size = OR(dc->max_obj_size, MEMDS_DEFAULT_MAX_OBJ_SIZE);
    cfg->conflict = (memds_conflict_e)OR(dc->conflict,
                                         MEMDS_CONFLICT_SERVER_WINS);
    cfg->auth_type = (memds_authtype_e)OR(dc->auth_type, MEMDS_AUTH_BASIC);
    /* Who checks credentials: the passwd-file when there is one, else a
     * login to the location's IMAP server (pass-through); basic logins
     * checked by IMAP record the md5 inner value for md5 devices. */
    if (dc->auth_file) {
        cfg->verifier = &dc->verifier;
    }
    else if (dc->imap_url) {
        memds_verifier_imap(vbuf, dc->imap_url, logins);
        memds_verifier_imap_tls(vbuf, dc->tls_ca_file,
                                OR(dc->imap_starttls, 0) == 1, log);
        if (strcmp(cfg->datastore, "imap") == 0 && dc->master_user == NULL) {
            /* the mailbox logs in as the device: one login proves the
             * password and serves the mailbox */
            memds_verifier_imap_share(vbuf, imap_cache, stats);
        }
        cfg->verifier = vbuf;
        cfg->record_md5 = 1;
    }
    cfg->auth_max_failures = OR(dc->auth_failures, MEMDS_DEFAULT_AUTH_FAILURES);
    cfg->auth_window = OR(dc->auth_window, MEMDS_DEFAULT_AUTH_WINDOW);
    cfg->auth_block = OR(dc->auth_block, MEMDS_DEFAULT_AUTH_BLOCK);
    cfg->server_name = "mod_memds";
    cfg->limit_dev_min = (int)OR(dc->limits[0], MEMDS_DEFAULT_LIMIT_DEV_MIN);
    cfg->limit_acct_min = (int)OR(dc->limits[1], 0);
    cfg->limit_dev_conc = (int)OR(dc->limits[2], 0);
    cfg->limit_acct_conc = (int)OR(dc->limits[3], 0);
    cfg->limit_dev_bytes = OR(dc->limits[4], 0);
    cfg->limit_acct_bytes = OR(dc->limits[5], 0);
    cfg->autoblock = OR(dc->autoblock, MEMDS_DEFAULT_AUTOBLOCK);
    cfg->autoblock_secs = OR(dc->autoblock_secs, MEMDS_DEFAULT_AUTOBLOCK_SECS);
    cfg->quarantine = OR(dc->quarantine, MEMDS_DEFAULT_QUARANTINE);
#undef OR
}

void memds_srv_pool_params(memds_pgpool_params_t *pp, const memds_srv_conf *sc)
{
    int threads = 0;

    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
        || threads < 1) {
        threads = 1;
    }
    pp->min = sc->db_min != MEMDS_UNSET ? sc->db_min : MEMDS_DEFAULT_DB_MIN;
    pp->keep = sc->db_keep != MEMDS_UNSET ? sc->db_keep : MEMDS_DEFAULT_DB_KEEP;
    /* A few connections per child, not one per worker thread: requests
     * beyond them wait for one. Under bench/load PostgreSQL with about 185
     * backends on 2 cores spent 4.0-4.7 ms of CPU per HTTP message, 2.7-3.4
     * with 8 per child, which answered more messages sooner
     * (docs/performance.md, "Connections per child"). */
    if (sc->db_max != MEMDS_UNSET) {
        pp->max = sc->db_max;
    }
    else {
        /* (and at least MemDSDBKeep: a configuration that kept more than
         * 8 before this default still starts) */
        pp->max = pp->keep > MEMDS_DEFAULT_DB_MAX ? pp->keep
                                                  : MEMDS_DEFAULT_DB_MAX;
        pp->max = threads < pp->max ? threads : pp->max;
    }
    pp->exptime = apr_time_from_sec(sc->db_exptime != MEMDS_UNSET
                                        ? sc->db_exptime
                                        : MEMDS_DEFAULT_DB_EXPTIME);
    pp->acquire_timeout = apr_time_from_sec(MEMDS_DEFAULT_DB_ACQUIRE_TIMEOUT);
}

/* ------------------------------------------------------------- setters */

static const char *set_engine(cmd_parms *cmd, void *dcv, int flag)
{
    memds_dir_conf *dc = dcv;

    dc->engine = flag ? 1 : 0;
    if (flag) {
        memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
        sc->engine_used = 1;
        if (sc->engine_where == NULL) {
            sc->engine_where = apr_psprintf(cmd->pool, "%s:%d",
                                            cmd->directive->filename,
                                            cmd->directive->line_num);
        }
    }
    return NULL;
}

static const char *set_database(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
    const char *err = ap_check_cmd_context(cmd,
                                           GLOBAL_ONLY & ~NOT_IN_VIRTUALHOST);
    const char *why;

    if (err) {
        return err;
    }
    if (*arg == '\0') {
        return "MemDSDatabase: the libpq connection string is empty; give "
               "e.g. \"host=127.0.0.1 dbname=memds user=memds\"";
    }
    why = memds_pg_check_conninfo(arg, cmd->temp_pool);
    if (why) {
        return apr_psprintf(cmd->pool,
                            "MemDSDatabase: not a valid libpq "
                            "connection string (key=value pairs or a "
                            "postgresql:// URI): %s",
                            why);
    }
    sc->db_conninfo = arg;
    return NULL;
}

static const char *set_url(cmd_parms *cmd, const char **slot, const char *arg,
                           const char *const *schemes)
{
    const char *why = memds_check_server_url(arg, schemes, cmd->temp_pool);

    if (why) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, why);
    }
    *slot = arg;
    return NULL;
}

static const char *set_imap(cmd_parms *cmd, void *dcv, const char *arg)
{
    static const char *const schemes[] = { "imap", "imaps", NULL };
    memds_dir_conf *dc = dcv;

    return set_url(cmd, &dc->imap_url, arg, schemes);
}

static const char *set_smtp(cmd_parms *cmd, void *dcv, const char *arg)
{
    static const char *const schemes[] = { "smtp", "smtps", NULL };
    memds_dir_conf *dc = dcv;

    return set_url(cmd, &dc->smtp_url, arg, schemes);
}

/* MemDSTLSCAFile: relative to ServerRoot; checked now (configtest) so that
 * a wrong path does not surface as a TLS failure at the first sync. */
static const char *set_tls_ca_file(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    const char *why;

    if (path == NULL || *arg == '\0') {
        return apr_psprintf(cmd->pool, "MemDSTLSCAFile: invalid path '%s'",
                            arg);
    }
    if ((why = memds_check_ca_file(path, cmd->temp_pool)) != NULL) {
        return apr_psprintf(cmd->pool, "MemDSTLSCAFile: %s", why);
    }
    dc->tls_ca_file = path;
    return NULL;
}

static const char *set_starttls(cmd_parms *cmd, void *dcv, int flag)
{
    memds_dir_conf *dc = dcv;

    if (strcmp((const char *)cmd->info, "imap") == 0) {
        dc->imap_starttls = flag ? 1 : 0;
    }
    else {
        dc->smtp_starttls = flag ? 1 : 0;
    }
    return NULL;
}

static const char *set_max_msg_size(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    apr_off_t v;

    if (memds_parse_size(&v, arg, MEMDS_MIN_MAX_MSG_SIZE,
                         MEMDS_MAX_MAX_MSG_SIZE)
        != APR_SUCCESS) {
        return apr_psprintf(cmd->pool,
                            "MemDSMaxMsgSize: '%s' is not a size "
                            "from 1K to 64M (bytes, or a number with a K or "
                            "M suffix)",
                            arg);
    }
    dc->max_msg_size = v;
    return NULL;
}

static const char *set_max_obj_size(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    apr_off_t v;

    if (memds_parse_size(&v, arg, 1024, (apr_off_t)1024 * 1024 * 1024)
        != APR_SUCCESS) {
        return apr_psprintf(cmd->pool,
                            "MemDSMaxObjSize: '%s' is not a size "
                            "from 1K to 1G (bytes, or a number with a K, M or "
                            "G suffix)",
                            arg);
    }
    dc->max_obj_size = v;
    return NULL;
}

static const char *set_datastore(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;

    if (strcmp(arg, "items") != 0 && strcmp(arg, "imap") != 0) {
        return apr_psprintf(cmd->pool,
                            "MemDSDatastore: unknown datastore '%s'; "
                            "allowed: items, imap",
                            arg);
    }
    dc->datastore = arg;
    return NULL;
}

static const char *set_imap_master(cmd_parms *cmd, void *dcv, const char *user,
                                   const char *password)
{
    memds_dir_conf *dc = dcv;

    if (!*user || !*password || strpbrk(user, " \t\r\n")) {
        return "MemDSIMAPMaster: give the master user's name (no blanks) and "
               "its password, both non-empty";
    }
    dc->master_user = user;
    dc->master_password = password;
    return NULL;
}

static const char *set_smtp_auth(cmd_parms *cmd, void *dcv, const char *a1,
                                 const char *a2)
{
    memds_dir_conf *dc = dcv;

    if (a2 == NULL) {
        if (strcasecmp(a1, "none") == 0) {
            dc->smtp_auth = MEMDS_SMTP_AUTH_NONE;
            return NULL;
        }
        if (strcasecmp(a1, "user") == 0) {
            dc->smtp_auth = MEMDS_SMTP_AUTH_USER;
            return NULL;
        }
        return apr_psprintf(cmd->pool,
                            "MemDSSMTPAuth: '%s' is not none, user, "
                            "or a user name followed by a password",
                            a1);
    }
    if (!*a1 || !*a2 || strpbrk(a1, " \t\r\n")) {
        return "MemDSSMTPAuth: give the submission user's name (no blanks) and "
               "its password, both non-empty";
    }
    dc->smtp_auth = MEMDS_SMTP_AUTH_FIXED;
    dc->smtp_user = a1;
    dc->smtp_password = a2;
    return NULL;
}

static const char *set_sent_copy(cmd_parms *cmd, void *dcv, int flag)
{
    ((memds_dir_conf *)dcv)->sent_copy = flag ? 1 : 0;
    return NULL;
}

static const char *set_compression(cmd_parms *cmd, void *dcv, int flag)
{
    ((memds_dir_conf *)dcv)->compress = flag ? 1 : 0;
    return NULL;
}

static const char *set_rejected_mail(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;

    if (strcasecmp(arg, "drafts") == 0) {
        dc->rejected_to_drafts = 1;
    }
    else if (strcasecmp(arg, "keep") == 0) {
        dc->rejected_to_drafts = 0;
    }
    else {
        return apr_psprintf(cmd->pool,
                            "MemDSRejectedMail: '%s' is not drafts "
                            "or keep",
                            arg);
    }
    return NULL;
}

static const char *set_truncate(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    apr_off_t v;

    memset(&dc->truncate, 0, sizeof(dc->truncate));
    dc->truncate_set = 1;
    if (strcasecmp(arg, "off") == 0) {
        dc->truncate.whole_max = dc->truncate.text_max = -1;
        dc->truncate.attach = 1;
        return NULL;
    }
    if (memds_parse_size(&v, arg, 0, (apr_off_t)1024 * 1024 * 1024)
        != APR_SUCCESS) {
        return apr_psprintf(cmd->pool,
                            "MemDSTruncate: '%s' is neither Off nor a size "
                            "up to 1G (bytes, or a number with a K, M or G "
                            "suffix)",
                            arg);
    }
    dc->truncate.whole_max = dc->truncate.text_max = v;
    return NULL;
}

static const char *set_limit(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    int v;

    if (memds_parse_uint(&v, arg, 1000000) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a number from 0 to 1000000",
                            cmd->cmd->name, arg);
    }
    if (strcasecmp(cmd->cmd->name, "MemDSMaxAge") == 0) {
        dc->max_age = v;
    }
    else {
        dc->max_items = v;
    }
    return NULL;
}

static const char *set_push(cmd_parms *cmd, void *dcv, int on)
{
    ((memds_dir_conf *)dcv)->push = on ? 1 : 0;
    (void)cmd;
    return NULL;
}

static const char *set_push_watch(cmd_parms *cmd, void *dcv, int on)
{
    ((memds_dir_conf *)dcv)->push_watch = on ? 1 : 0;
    (void)cmd;
    return NULL;
}

static const char *set_watch_max(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
    int v;

    (void)dcv;
    if (memds_parse_uint(&v, arg, 100000) != APR_SUCCESS || v < 1) {
        return apr_psprintf(cmd->pool,
                            "MemDSPushWatchMax: '%s' is not a number of "
                            "accounts from 1 to 100000",
                            arg);
    }
    sc->watch_max = v;
    return NULL;
}

/* MemDSIMAPKeep N [SECONDS]: the child's cache of logged-in IMAP
 * connections (one per child, for every virtual host: main server only). */
static const char *set_imap_keep(cmd_parms *cmd, void *dcv, const char *n,
                                 const char *secs)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int v, t = MEMDS_IMAP_CACHE_IDLE_SECS;

    (void)dcv;
    if (err) {
        return err;
    }
    if (memds_parse_uint(&v, n, 1024) != APR_SUCCESS || v < 1) {
        return apr_psprintf(cmd->pool,
                            "MemDSIMAPKeep: '%s' is not a number of "
                            "connections from 1 to 1024",
                            n);
    }
    if (secs && (memds_parse_uint(&t, secs, 3600) != APR_SUCCESS || t < 1)) {
        return apr_psprintf(cmd->pool,
                            "MemDSIMAPKeep: '%s' is not a number of seconds "
                            "from 1 to 3600",
                            secs);
    }
    sc->imap_keep = v;
    sc->imap_keep_secs = t;
    return NULL;
}

/* MemDSPushSelfRegister Off | [sms] [URL-prefix ...] (one word a call). */
static const char *set_push_self(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    const char *why;

    if (strcasecmp(arg, "Off") == 0 || dc->push_self == 0) {
        if (dc->push_self != MEMDS_UNSET) {
            return "MemDSPushSelfRegister: Off stands alone";
        }
        dc->push_self = 0;
        return NULL;
    }
    dc->push_self = 1;
    if (strcasecmp(arg, "sms") == 0) {
        dc->push_self_sms = 1;
        return NULL;
    }
    why = memds_push_channel_check("http", arg);
    if (why == NULL
        && strchr(arg + (strncmp(arg, "https", 5) == 0 ? 8 : 7), '/') == NULL) {
        why = "the prefix must end its host with a / (http://host/ or "
              "http://host:port/path)";
    }
    if (why) {
        return apr_psprintf(cmd->pool,
                            "MemDSPushSelfRegister: '%s' is not Off, sms or "
                            "an http:// or https:// URL prefix: %s",
                            arg, why);
    }
    if (dc->push_self_prefixes == NULL) {
        dc->push_self_prefixes = apr_array_make(cmd->pool, 2,
                                                sizeof(const char *));
    }
    APR_ARRAY_PUSH(dc->push_self_prefixes,
                   const char *) = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_account_realm(cmd_parms *cmd, void *dcv,
                                     const char *arg)
{
    const char *c;

    for (c = arg; *c; ++c) {
        if (!apr_isalnum(*c) && *c != '.' && *c != '-' && *c != '_') {
            break;
        }
    }
    if (!*arg || *c || strlen(arg) > 64) {
        return apr_psprintf(cmd->pool,
                            "MemDSAccountRealm: '%s' is not 1 to 64 letters, "
                            "digits, '.', '-' or '_'",
                            arg);
    }
    ((memds_dir_conf *)dcv)->account_realm = arg;
    return NULL;
}

static const char *set_server_id(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);

    (void)dcv;
    if (!*arg || strlen(arg) > 255) {
        return "MemDSServerID: 1 to 255 bytes";
    }
    sc->server_id = arg;
    return NULL;
}

static const char *set_push_delay(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
    int v;

    (void)dcv;
    if (memds_parse_uint(&v, arg, 60000) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool,
                            "MemDSPushDelay: '%s' is not a number of "
                            "milliseconds from 0 to 60000",
                            arg);
    }
    sc->push_delay = v;
    return NULL;
}

static const char *set_kannel_url(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
    apr_uri_t u;
    int port;

    (void)dcv;
    if (apr_uri_parse(cmd->temp_pool, arg, &u) != APR_SUCCESS
        || u.scheme == NULL
        || (ap_cstr_casecmp(u.scheme, "http") != 0
            && ap_cstr_casecmp(u.scheme, "https") != 0)
        || u.hostname == NULL || !*u.hostname) {
        return apr_psprintf(cmd->pool,
                            "MemDSKannelURL: '%s' is not an http:// or "
                            "https:// URL of smsbox's sendsms, e.g. "
                            "http://127.0.0.1:13013/cgi-bin/sendsms",
                            arg);
    }
    if (u.user || u.password) {
        return "MemDSKannelURL: credentials do not belong in the URL; use "
               "MemDSKannelAuth";
    }
    if (u.port_str
        && (memds_parse_uint(&port, u.port_str, 65535) != APR_SUCCESS
            || port == 0)) {
        return apr_psprintf(cmd->pool,
                            "MemDSKannelURL: '%s' has an invalid port; use "
                            "1-65535",
                            arg);
    }
    if (u.path == NULL || strcmp(u.path, "/") == 0 || !*u.path || u.fragment) {
        return apr_psprintf(cmd->pool,
                            "MemDSKannelURL: '%s' needs the path of the "
                            "sendsms interface (e.g. /cgi-bin/sendsms) and "
                            "no fragment",
                            arg);
    }
    sc->kannel_url = arg;
    return NULL;
}

static const char *set_kannel_auth(cmd_parms *cmd, void *dcv, const char *user,
                                   const char *pass)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);

    (void)dcv;
    if (!*user || !*pass) {
        return "MemDSKannelAuth: a user name and a password of Kannel's "
               "sendsms-user group, both non-empty";
    }
    sc->kannel_user = user;
    sc->kannel_pass = pass;
    return NULL;
}

static const char *set_exclude(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;

    if (!*arg) {
        return "MemDSExcludeFolder: the folder name is empty";
    }
    if (strcasecmp(arg, "INBOX") == 0) {
        return "MemDSExcludeFolder: INBOX cannot be excluded";
    }
    if (dc->exclude == NULL) {
        dc->exclude = apr_array_make(cmd->pool, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(dc->exclude, const char *) = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_delete_policy(cmd_parms *cmd, void *dcv, const char *arg)
{
    static const char *const names[] = { "trash", "flag", "expunge", NULL };
    memds_dir_conf *dc = dcv;
    int i;

    for (i = 0; names[i]; ++i) {
        if (strcasecmp(arg, names[i]) == 0) {
            dc->delete_policy = i;
            return NULL;
        }
    }
    return apr_psprintf(cmd->pool,
                        "MemDSDeletePolicy: '%s' is not one of "
                        "trash, flag, expunge",
                        arg);
}

static const char *set_folder(cmd_parms *cmd, void *dcv, const char *role,
                              const char *path)
{
    static const struct {
        const char *name;
        int role;
    } roles[] = { { "drafts", MEMDS_IMAP_ROLE_DRAFTS },
                  { "sent", MEMDS_IMAP_ROLE_SENT },
                  { "trash", MEMDS_IMAP_ROLE_TRASH },
                  { "junk", MEMDS_IMAP_ROLE_JUNK },
                  { "archive", MEMDS_IMAP_ROLE_ARCHIVE },
                  { NULL, 0 } };
    memds_dir_conf *dc = dcv;
    int i;

    if (!*path) {
        return "MemDSFolder: the folder path is empty";
    }
    for (i = 0; roles[i].name; ++i) {
        if (strcasecmp(role, roles[i].name) == 0) {
            dc->folder_names[roles[i].role] = path;
            return NULL;
        }
    }
    return apr_psprintf(cmd->pool,
                        "MemDSFolder: unknown role '%s'; allowed: "
                        "drafts, sent, trash, junk, archive",
                        role);
}

static const char *set_auth_file(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    const char *path = ap_server_root_relative(cmd->pool, arg);
    apr_finfo_t fi;

    if (path == NULL
        || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS
        || fi.filetype != APR_REG) {
        return apr_psprintf(cmd->pool,
                            "MemDSAuthFile: '%s' is not a readable "
                            "file (a Dovecot-style passwd-file: "
                            "user:{PLAIN}password)",
                            arg);
    }
    dc->auth_file = path;
    memds_verifier_passwd_file(&dc->verifier, path);
    return NULL;
}

static const char *set_auth_type(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;

    if (strcasecmp(arg, "basic") == 0)
        dc->auth_type = MEMDS_AUTH_BASIC;
    else if (strcasecmp(arg, "md5") == 0)
        dc->auth_type = MEMDS_AUTH_MD5;
    else
        return "MemDSAuthType: use basic or md5";
    return NULL;
}

static const char *set_conflict(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;

    if (strcasecmp(arg, "server-wins") == 0)
        dc->conflict = MEMDS_CONFLICT_SERVER_WINS;
    else if (strcasecmp(arg, "client-wins") == 0)
        dc->conflict = MEMDS_CONFLICT_CLIENT_WINS;
    else if (strcasecmp(arg, "duplicate") == 0)
        dc->conflict = MEMDS_CONFLICT_DUPLICATE;
    else
        return "MemDSConflictPolicy: use server-wins, client-wins or duplicate";
    return NULL;
}

static const char *set_session_timeout(cmd_parms *cmd, void *dcv,
                                       const char *arg)
{
    memds_dir_conf *dc = dcv;
    int v;

    if (memds_parse_uint(&v, arg, 86400) != APR_SUCCESS || v < 30) {
        return apr_psprintf(cmd->pool,
                            "MemDSSessionTimeout: '%s' is not a "
                            "number of seconds from 30 to 86400",
                            arg);
    }
    dc->session_timeout = v;
    return NULL;
}

static const char *set_auth_limit(cmd_parms *cmd, void *dcv, const char *a1,
                                  const char *a2, const char *a3)
{
    memds_dir_conf *dc = dcv;
    int f, w, b;

    if (memds_parse_uint(&f, a1, 1000) != APR_SUCCESS || f < 1
        || memds_parse_uint(&w, a2, 86400) != APR_SUCCESS || w < 1
        || memds_parse_uint(&b, a3, 86400) != APR_SUCCESS || b < 1) {
        return "MemDSAuthLimit: give FAILURES (1-1000) WINDOW-SECONDS "
               "(1-86400) "
               "BLOCK-SECONDS (1-86400)";
    }
    dc->auth_failures = f;
    dc->auth_window = w;
    dc->auth_block = b;
    return NULL;
}

/* MemDSLimit device|account sessions/min|concurrent|bytes/hour N|off */
static const char *set_throttle_limit(cmd_parms *cmd, void *dcv,
                                      const char *who, const char *what,
                                      const char *value)
{
    static const char *const kinds[] = { "sessions/min", "concurrent",
                                         "bytes/hour" };
    memds_dir_conf *dc = dcv;
    int k, v, acct;
    apr_off_t size;

    acct = strcasecmp(who, "account") == 0;
    for (k = 0; k < 3 && strcasecmp(what, kinds[k]) != 0; ++k) {
    }
    if ((!acct && strcasecmp(who, "device") != 0) || k == 3) {
        return "MemDSLimit: give device or account, then sessions/min, "
               "concurrent or bytes/hour, then the limit (or off)";
    }
    if (strcasecmp(value, "off") == 0) {
        dc->limits[k * 2 + acct] = 0;
    }
    else if (k == 2) {
        if (memds_parse_size(&size, value, 1, (apr_off_t)1 << 50)
            != APR_SUCCESS) {
            return apr_psprintf(cmd->pool,
                                "MemDSLimit: '%s' is not a number of bytes "
                                "(K, M, G allowed) or off",
                                value);
        }
        dc->limits[k * 2 + acct] = (apr_int64_t)size;
    }
    else {
        if (memds_parse_uint(&v, value, 1000000) != APR_SUCCESS || v < 1) {
            return apr_psprintf(cmd->pool,
                                "MemDSLimit: '%s' is not a number from 1 to "
                                "1000000 or off",
                                value);
        }
        dc->limits[k * 2 + acct] = v;
    }
    return NULL;
}

/* MemDSAutoBlock N [SECONDS|forever] | off */
static const char *set_autoblock(cmd_parms *cmd, void *dcv, const char *n,
                                 const char *secs)
{
    memds_dir_conf *dc = dcv;
    int v, s = 0;

    (void)cmd;
    if (strcasecmp(n, "off") == 0 && secs == NULL) {
        dc->autoblock = 0;
        dc->autoblock_secs = 0;
        return NULL;
    }
    if (memds_parse_uint(&v, n, 100000) != APR_SUCCESS || v < 1
        || (secs && strcasecmp(secs, "forever") != 0
            && (memds_parse_uint(&s, secs, 31536000) != APR_SUCCESS
                || s < 1))) {
        return "MemDSAutoBlock: give FAILED-SESSIONS (1-100000) and "
               "optionally SECONDS (1-31536000) or forever, or off";
    }
    dc->autoblock = v;
    dc->autoblock_secs = secs == NULL ? MEMDS_DEFAULT_AUTOBLOCK_SECS : s;
    return NULL;
}

/* MemDSQuarantine N | off */
static const char *set_quarantine(cmd_parms *cmd, void *dcv, const char *n)
{
    memds_dir_conf *dc = dcv;
    int v;

    (void)cmd;
    if (strcasecmp(n, "off") == 0) {
        dc->quarantine = 0;
        return NULL;
    }
    if (memds_parse_uint(&v, n, 1000) != APR_SUCCESS || v < 1) {
        return "MemDSQuarantine: give ERROR-STATUSES (1-1000) or off";
    }
    dc->quarantine = v;
    return NULL;
}

/* MemDSDBMin/Keep/Max/Exptime share one setter; the name picks the field. */
static const char *set_db_int(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
    const char *err = ap_check_cmd_context(cmd,
                                           GLOBAL_ONLY & ~NOT_IN_VIRTUALHOST);
    const char *name = cmd->cmd->name;
    int v, lo = 0, hi = 10000;
    int *slot;

    if (err) {
        return err;
    }
    if (strcmp(name, "MemDSDBMin") == 0) {
        slot = &sc->db_min;
    }
    else if (strcmp(name, "MemDSDBKeep") == 0) {
        slot = &sc->db_keep;
    }
    else if (strcmp(name, "MemDSDBMax") == 0) {
        slot = &sc->db_max;
        lo = 1;
    }
    else {
        slot = &sc->db_exptime;
        hi = 86400;
    }
    if (memds_parse_uint(&v, arg, hi) != APR_SUCCESS || v < lo) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a whole number from "
                            "%d to %d",
                            name, arg, lo, hi);
    }
    *slot = v;
    return NULL;
}

const command_rec memds_cmds[] = {
    AP_INIT_FLAG("MemDSEngine", set_engine, NULL, RSRC_CONF | ACCESS_CONF,
                 "On or Off: serve SyncML at this location (with SetHandler "
                 "memds-sync). Default: Off."),
    AP_INIT_TAKE1("MemDSDatabase", set_database, NULL, RSRC_CONF,
                  "libpq connection string (key=value or postgresql:// URI) "
                  "of the PostgreSQL database that holds devices, sessions "
                  "and maps. No default: required where MemDSEngine is On."),
    AP_INIT_TAKE1("MemDSIMAPServer", set_imap, NULL, RSRC_CONF | ACCESS_CONF,
                  "imap://HOST[:PORT] or imaps://HOST[:PORT] of the mailbox "
                  "server. Default: none."),
    AP_INIT_TAKE1("MemDSSMTPServer", set_smtp, NULL, RSRC_CONF | ACCESS_CONF,
                  "smtp://HOST[:PORT] or smtps://HOST[:PORT] of the mail "
                  "submission server. Default: none."),
    AP_INIT_TAKE1("MemDSTLSCAFile", set_tls_ca_file, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "PEM file of the CA certificates that verify the IMAP and "
                  "SMTP servers' certificates (imaps://, smtps://, STARTTLS). "
                  "Default: the system's CA bundle."),
    AP_INIT_FLAG("MemDSIMAPStartTLS", set_starttls, "imap",
                 RSRC_CONF | ACCESS_CONF,
                 "On: an imap:// server must switch to TLS with STARTTLS "
                 "(refused when it does not offer it). Default: Off (imap:// "
                 "in the clear)."),
    AP_INIT_FLAG("MemDSSMTPStartTLS", set_starttls, "smtp",
                 RSRC_CONF | ACCESS_CONF,
                 "On: an smtp:// server must switch to TLS with STARTTLS "
                 "(refused when it does not offer it). Default: Off "
                 "(STARTTLS when the server offers it)."),
    AP_INIT_TAKE1("MemDSMaxMsgSize", set_max_msg_size, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Largest SyncML message accepted, 1K to 64M (bytes, or K/M "
                  "suffix); larger bodies get 413. Default: 1M."),
    AP_INIT_TAKE1("MemDSDBMin", set_db_int, NULL, RSRC_CONF,
                  "PostgreSQL connections each child opens at start. "
                  "Default: 0."),
    AP_INIT_TAKE1("MemDSDBKeep", set_db_int, NULL, RSRC_CONF,
                  "Idle PostgreSQL connections each child keeps open. "
                  "Default: 2."),
    AP_INIT_TAKE1("MemDSDBMax", set_db_int, NULL, RSRC_CONF,
                  "Most PostgreSQL connections one child opens. Default: the "
                  "MPM's ThreadsPerChild."),
    AP_INIT_TAKE1("MemDSDBExptime", set_db_int, NULL, RSRC_CONF,
                  "Seconds an idle PostgreSQL connection above MemDSDBKeep "
                  "stays open. Default: 300."),
    AP_INIT_TAKE12("MemDSIMAPKeep", set_imap_keep, NULL, RSRC_CONF,
                   "Logged-in IMAP connections each child keeps between "
                   "requests (1-1024), and the seconds one may stay idle "
                   "(1-3600). Default: 16 60."),
    AP_INIT_TAKE1("MemDSMaxObjSize", set_max_obj_size, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Largest single item accepted (after reassembly of chunks), "
                  "1K to 1G; larger ones get Status 413. Default: 4M."),
    AP_INIT_TAKE1("MemDSDatastore", set_datastore, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "What the datastores of this location are: imap (the "
                  "account's mail folders on MemDSIMAPServer) or items (opaque "
                  "items in PostgreSQL, one store per alerted name). Default: "
                  "imap where MemDSIMAPServer is set, else items."),
    AP_INIT_TAKE2("MemDSIMAPMaster", set_imap_master, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "USER PASSWORD of an IMAP master user (Dovecot master user, "
                  "SASL PLAIN authzid) through which the gateway reaches every "
                  "account's mailbox; needed for md5 devices and HTTP-level "
                  "auth. Default: none (the device's own password is the IMAP "
                  "login)."),
    AP_INIT_TAKE12("MemDSSMTPAuth", set_smtp_auth, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "none, user (the device's own password), or USER PASSWORD "
                   "(one submission account acting for each user as SASL "
                   "authzid): how mail is submitted to MemDSSMTPServer. "
                   "Default: none."),
    AP_INIT_FLAG("MemDSSentCopy", set_sent_copy, NULL, RSRC_CONF | ACCESS_CONF,
                 "On or Off: append a copy of each sent message to the Sent "
                 "folder (Off when the submission server files it itself, "
                 "like Gmail). Default: On."),
    AP_INIT_FLAG("MemDSCompression", set_compression, NULL,
                 RSRC_CONF | ACCESS_CONF,
                 "On or Off: compress answers (gzip or deflate) for devices "
                 "that accept it; compressed requests are decoded either "
                 "way. Default: On."),
    AP_INIT_TAKE1("MemDSRejectedMail", set_rejected_mail, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "drafts or keep: a message the SMTP server refuses goes to "
                  "Drafts with the reason (X-MemDS-Send-Error), or stays "
                  "only in the device's Outbox. Default: drafts."),
    AP_INIT_TAKE1("MemDSDeletePolicy", set_delete_policy, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "trash, flag or expunge: what a device's Delete does to the "
                  "IMAP message (move to Trash, set \\Deleted, or expunge). "
                  "Default: trash."),
    AP_INIT_TAKE1("MemDSTruncate", set_truncate, NULL, RSRC_CONF | ACCESS_CONF,
                  "Off, or a size (bytes, K/M/G): a mail up to that size "
                  "goes to devices whole; a bigger one as its header and that "
                  "much of its text, its attachments listed in <truncated> "
                  "(get-more brings the rest). A device's filter or the "
                  "account's setting (memds-admin) overrides it. Default: "
                  "20K."),
    AP_INIT_TAKE1("MemDSMaxAge", set_limit, NULL, RSRC_CONF | ACCESS_CONF,
                  "Days: mail received longer ago is not synchronised (and "
                  "leaves devices as it ages, nothing is deleted on the "
                  "server); a device's filter can only narrow it. Default: 0 "
                  "(no limit)."),
    AP_INIT_TAKE1("MemDSMaxItems", set_limit, NULL, RSRC_CONF | ACCESS_CONF,
                  "At most this many mails (the newest) per folder on a "
                  "device. Default: 0 (no limit)."),
    AP_INIT_FLAG("MemDSPush", set_push, NULL, RSRC_CONF | ACCESS_CONF,
                 "On or Off: this location offers server-alerted sync (DevInf "
                 "SyncType 7) and its devices get Server Alerted "
                 "Notifications over their registered channel. Default: Off."),
    AP_INIT_FLAG("MemDSPushWatch", set_push_watch, NULL,
                 RSRC_CONF | ACCESS_CONF,
                 "On or Off: for an IMAP server that cannot report new mail "
                 "itself, this node keeps IMAP IDLE on INBOX of the accounts "
                 "with push-enabled devices (leases in PostgreSQL: one node "
                 "per account). Needs MemDSPush On, MemDSIMAPServer and "
                 "MemDSIMAPMaster. Default: Off."),
    AP_INIT_TAKE1("MemDSPushWatchMax", set_watch_max, NULL, RSRC_CONF,
                  "At most this many accounts watched by IMAP IDLE per node "
                  "(one IMAP connection each), 1 to 100000. Default: 1000."),
    AP_INIT_ITERATE("MemDSPushSelfRegister", set_push_self, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "Off, or what a device may register itself as its push "
                    "channel in its DevInf (Ext X-memds-push) where MemDSPush "
                    "is On: sms (phone numbers) and http:// or https:// URL "
                    "prefixes its URL must start with. Default: Off."),
    AP_INIT_TAKE1("MemDSAccountRealm", set_account_realm, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "A name for this location's mail server: its accounts are "
                  "kept as realm:login, apart from the same login on another "
                  "server. Default: none (the login alone)."),
    AP_INIT_TAKE1("MemDSServerID", set_server_id, NULL, RSRC_CONF,
                  "The server identifier in a SAN (and its digest) when the "
                  "device's server credentials name none. Default: none."),
    AP_INIT_TAKE1("MemDSPushDelay", set_push_delay, NULL, RSRC_CONF,
                  "Milliseconds a notification waits for more mail before it "
                  "goes (one SAN for a burst), 0 to 60000. Default: 500."),
    AP_INIT_TAKE1("MemDSKannelURL", set_kannel_url, NULL, RSRC_CONF,
                  "The sendsms URL of Kannel's smsbox (http:// or https://, "
                  "e.g. http://127.0.0.1:13013/cgi-bin/sendsms) through "
                  "which devices with the sms push channel get their SANs as "
                  "WAP Push. Default: none (no SMS push)."),
    AP_INIT_TAKE2("MemDSKannelAuth", set_kannel_auth, NULL, RSRC_CONF,
                  "User name and password of a sendsms-user of Kannel's "
                  "smsbox. Default: none."),
    AP_INIT_ITERATE("MemDSExcludeFolder", set_exclude, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "IMAP folders (name or path) never synchronised: not in "
                    "the email datastore, 404 as datastores of their own. "
                    "Default: none."),
    AP_INIT_TAKE2("MemDSFolder", set_folder, NULL, RSRC_CONF | ACCESS_CONF,
                  "ROLE PATH: the folder of a role (drafts, sent, trash, junk, "
                  "archive) when the IMAP server does not mark it with "
                  "SPECIAL-USE. Default: the usual names (Sent, Drafts, Trash, "
                  "...)."),
    AP_INIT_TAKE1(
        "MemDSAuthFile", set_auth_file, NULL, RSRC_CONF | ACCESS_CONF,
        "Dovecot-style passwd-file (user:{PLAIN}password) that SyncML "
        "basic and md5 credentials are checked against. Default: "
        "none (only users httpd authenticated)."),
    AP_INIT_TAKE1("MemDSAuthType", set_auth_type, NULL, RSRC_CONF | ACCESS_CONF,
                  "basic or md5: the scheme asked for when a device sends no "
                  "or wrong credentials (both are accepted). Default: basic."),
    AP_INIT_TAKE1("MemDSConflictPolicy", set_conflict, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "server-wins (419), client-wins (208) or duplicate (209) "
                  "when device and server changed the same item. Default: "
                  "server-wins."),
    AP_INIT_TAKE1("MemDSSessionTimeout", set_session_timeout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "Seconds a session may stay idle before it expires, 30 to "
                  "86400. Default: 900."),
    AP_INIT_TAKE3("MemDSAuthLimit", set_auth_limit, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "FAILURES WINDOW BLOCK: after FAILURES failed logins of one "
                  "account and device within WINDOW seconds, refuse it for "
                  "BLOCK seconds. Default: 10 600 600."),
    AP_INIT_TAKE3("MemDSLimit", set_throttle_limit, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "device|account sessions/min|concurrent|bytes/hour N|off: "
                  "a new session of a device (account) over the limit is "
                  "refused with SyncML 503 and Retry-After; counted in "
                  "PostgreSQL for all nodes. Default: device sessions/min "
                  "120, the others off."),
    AP_INIT_TAKE12("MemDSAutoBlock", set_autoblock, NULL,
                   RSRC_CONF | ACCESS_CONF,
                   "N [SECONDS|forever], or off: after N failed sessions in "
                   "a row (wrong password, protocol or internal error) a "
                   "device is refused (403) for SECONDS, or until "
                   "memds-admin unblock. Default: 30 3600."),
    AP_INIT_TAKE1("MemDSQuarantine", set_quarantine, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "N, or off: a server item a device answers with an error "
                  "status N times is put in quarantine (left out of that "
                  "device's syncs until memds-admin quarantine --release). "
                  "Default: 3."),
    { NULL }
};
