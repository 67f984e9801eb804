/* memds_config.c: directives, create/merge, typed getters. */
#include "memds_glue.h"

#include <http_core.h>
#include <ap_mpm.h>
#include <apr_strings.h>

#include "util/memds_util.h"

extern module AP_MODULE_DECLARE_DATA memds_module;

memds_srv_conf *memds_srv_conf_get(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &memds_module);
}

memds_dir_conf *memds_dir_conf_get(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &memds_module);
}

void *memds_create_srv_conf(apr_pool_t *p, server_rec *s)
{
    memds_srv_conf *sc = apr_pcalloc(p, sizeof(*sc));

    sc->db_min = sc->db_keep = sc->db_max = sc->db_exptime = MEMDS_UNSET;
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
    c->engine_used = add->engine_used;
    c->engine_where = add->engine_where;
    return c;
}

void *memds_create_dir_conf(apr_pool_t *p, char *dir)
{
    memds_dir_conf *dc = apr_pcalloc(p, sizeof(*dc));

    dc->engine = MEMDS_UNSET;
    dc->max_msg_size = MEMDS_UNSET;
    return dc;
}

void *memds_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    const memds_dir_conf *base = basev, *add = addv;
    memds_dir_conf *c = apr_pcalloc(p, sizeof(*c));

    MERGE_INT(engine);
    MERGE_PTR(imap_url);
    MERGE_PTR(smtp_url);
    c->max_msg_size = add->max_msg_size != MEMDS_UNSET ? add->max_msg_size
                                                       : base->max_msg_size;
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

void memds_srv_pool_params(memds_pgpool_params_t *pp, const memds_srv_conf *sc)
{
    int threads = 0;

    if (ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
        || threads < 1) {
        threads = 1;
    }
    pp->min = sc->db_min != MEMDS_UNSET ? sc->db_min : MEMDS_DEFAULT_DB_MIN;
    pp->keep = sc->db_keep != MEMDS_UNSET ? sc->db_keep : MEMDS_DEFAULT_DB_KEEP;
    /* Every worker thread of a child may need a connection at once. */
    pp->max = sc->db_max != MEMDS_UNSET ? sc->db_max : threads;
    pp->exptime = apr_time_from_sec(sc->db_exptime != MEMDS_UNSET
                                    ? sc->db_exptime : MEMDS_DEFAULT_DB_EXPTIME);
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
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY & ~NOT_IN_VIRTUALHOST);
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
        return apr_psprintf(cmd->pool, "MemDSDatabase: not a valid libpq "
                            "connection string (key=value pairs or a "
                            "postgresql:// URI): %s", why);
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

static const char *set_max_msg_size(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_dir_conf *dc = dcv;
    apr_off_t v;

    if (memds_parse_size(&v, arg, MEMDS_MIN_MAX_MSG_SIZE,
                         MEMDS_MAX_MAX_MSG_SIZE) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "MemDSMaxMsgSize: '%s' is not a size "
                            "from 1K to 64M (bytes, or a number with a K or "
                            "M suffix)", arg);
    }
    dc->max_msg_size = v;
    return NULL;
}

/* MemDSDBMin/Keep/Max/Exptime share one setter; the name picks the field. */
static const char *set_db_int(cmd_parms *cmd, void *dcv, const char *arg)
{
    memds_srv_conf *sc = memds_srv_conf_get(cmd->server);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY & ~NOT_IN_VIRTUALHOST);
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
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number from "
                            "%d to %d", name, arg, lo, hi);
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
    { NULL }
};
