/**
 * @file memds_glue.h
 * Shared declarations of the httpd glue (the only files that include httpd
 * headers): configuration records, counters, log codes.
 */
#ifndef MEMDS_GLUE_H
#define MEMDS_GLUE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_shm.h>

#include "store/memds_pgpool.h"
#include "ds/memds_engine.h"
#include "backends/memds_imap.h"
#include "util/memds_stats.h"

#ifndef MEMDS_MODULE_MAIN /* mod_memds.c declares it with the module */
APLOG_USE_MODULE(memds);
#endif

/** Log codes of this module: "MEMDS00001: ". Listed in docs/logcodes.md. */
#define MEMDS_APLOGNO(n) "MEMDS" #n ": "

#define MEMDS_UNSET (-1)

/** Defaults (README lists them; keep in sync). */
#define MEMDS_DEFAULT_MAX_MSG_SIZE (1024 * 1024)
#define MEMDS_MIN_MAX_MSG_SIZE 1024
#define MEMDS_MAX_MAX_MSG_SIZE (64 * 1024 * 1024)
#define MEMDS_DEFAULT_DB_MIN 0
#define MEMDS_DEFAULT_DB_KEEP 2
#define MEMDS_DEFAULT_DB_MAX 8 /* (or MemDSDBKeep if more; at most ThreadsPerChild) */
#define MEMDS_DEFAULT_DB_EXPTIME 300
#define MEMDS_DEFAULT_DB_ACQUIRE_TIMEOUT 5
#define MEMDS_DEFAULT_MAX_OBJ_SIZE (4 * 1024 * 1024)
#define MEMDS_DEFAULT_TRUNCATE (20 * 1024) /**< MemDSTruncate: 20K */
#define MEMDS_DEFAULT_PUSH_DELAY 500       /**< MemDSPushDelay: ms */
#define MEMDS_PUSH_INTERVAL_MS 200         /**< the push job's period */
#define MEMDS_WATCH_INTERVAL_MS 50 /**< the IDLE watcher's (a round also
                                      waits up to 250 ms for IMAP data) */
#define MEMDS_DEFAULT_SESSION_TIMEOUT 900
#define MEMDS_DEFAULT_AUTH_FAILURES 10
#define MEMDS_DEFAULT_AUTH_WINDOW 600
#define MEMDS_DEFAULT_AUTH_BLOCK 600
/** MemDSLimit, MemDSAutoBlock, MemDSQuarantine (docs/throttle.md): a
 *  device may start 120 sessions a minute (no other limit), 30 failed
 *  sessions in a row block it for an hour, an item refused 3 times goes
 *  into quarantine. */
#define MEMDS_DEFAULT_LIMIT_DEV_MIN 120
#define MEMDS_DEFAULT_AUTOBLOCK 30
#define MEMDS_DEFAULT_AUTOBLOCK_SECS 3600
#define MEMDS_DEFAULT_QUARANTINE 3
#define MEMDS_EXPIRE_INTERVAL 60
/** Successful pass-through IMAP logins are trusted again for this long
 *  (per child), at most this many remembered. */
#define MEMDS_LOGIN_CACHE_SECS 120
#define MEMDS_LOGIN_CACHE_MAX 4096
/** IMAP connections a child keeps between requests, how long idle
 *  (MemDSIMAPKeep's defaults), and for how many requests at most. */
#define MEMDS_IMAP_CACHE_MAX 16
#define MEMDS_IMAP_CACHE_IDLE_SECS 60
#define MEMDS_IMAP_CACHE_USES 500
/** Seconds between runs of the Outbox retry job. */
#define MEMDS_OUTBOX_INTERVAL 10

/**
 * Request counters shared by all children of one generation (anonymous shared
 * memory created in post_config; reset by a restart). Updated with
 * apr_atomic, so no lock.
 */
typedef struct memds_counters_t {
    volatile apr_uint64_t requests;    /**< requests reaching memds-sync */
    volatile apr_uint64_t answered;    /**< 200 with a SyncML body */
    volatile apr_uint64_t bad_method;  /**< 405 */
    volatile apr_uint64_t bad_type;    /**< 415 */
    volatile apr_uint64_t too_large;   /**< 413 */
    volatile apr_uint64_t bad_body;    /**< 400 */
    volatile apr_uint64_t unavailable; /**< 503 (database or backend down) */
    volatile apr_uint64_t failed;      /**< 500 */
    volatile apr_uint64_t bytes_in;    /**< request body bytes */
    volatile apr_uint64_t bytes_out;   /**< response body bytes */
    volatile apr_uint64_t throttled;   /**< new sessions over MemDSLimit */
    volatile apr_uint64_t blocked;     /**< new sessions of held devices */
    /** Answers of the sync handler by HTTP status class (index status /
     *  100, 1 to 5), whatever the code. */
    volatile apr_uint64_t status_class[6];
    /** Committed requests: sessions begun and completed, the items of
     *  the devices' Syncs (up) and of ours (down), the sync alerts the
     *  devices sent (index alert code - 200). */
    volatile apr_uint64_t sessions_started, sessions_completed;
    volatile apr_uint64_t items_up, items_down;
    volatile apr_uint64_t sync_alerts[7];
    /** Latency histograms of IMAP, SMTP, PostgreSQL and push deliveries
     *  (the layers get a pointer to it through their configuration). */
    memds_stats_t stats;
} memds_counters_t;

/** Per-server configuration. */
typedef struct memds_srv_conf {
    const char *db_conninfo;                 /**< MemDSDatabase */
    int db_min, db_keep, db_max, db_exptime; /**< MemDSDB* (MEMDS_UNSET) */
    int engine_used;          /**< a MemDSEngine On appeared in this server */
    const char *engine_where; /**< where, for the configtest message */
    apr_array_header_t *engine_dirs; /**< memds_dir_conf * of each location
                                          where the engine is on, merged with
                                          the server's defaults (background
                                          jobs; memds_collect_engine_dirs) */
    /* Runtime, not configuration: set in post_config / child_init. */
    memds_pgpool_t *pgpool;      /**< this child's connection pool */
    memds_pgpool_t *ledger_pool; /**< this child's outbox ledger connections
                                     (a request may hold one of each) */
    struct memds_ds_registry_t *ds_registry; /**< datastore providers
                                     (post_config; read-only after) */
    memds_logincache_t *logins; /**< this child's recent pass-through logins */
    memds_imap_cache_t *imap_cache; /**< this child's idle IMAP connections */
    memds_counters_t *counters;     /**< shared by the generation's children */
    memds_logger_t logger;   /**< core log lines to this server's ErrorLog */
    const char *server_id;   /**< MemDSServerID: the SAN's server identifier */
    int push_delay;          /**< MemDSPushDelay (ms; MEMDS_UNSET) */
    const char *kannel_url;  /**< MemDSKannelURL: smsbox's sendsms */
    const char *kannel_user; /**< MemDSKannelAuth */
    const char *kannel_pass;
    int watch_max;           /**< MemDSPushWatchMax (MEMDS_UNSET) */
    int imap_keep, imap_keep_secs; /**< MemDSIMAPKeep (MEMDS_UNSET) */
    apr_array_header_t *realms; /**< every MemDSAccountRealm of the
                                   configuration (memds_collect_engine_dirs) */
    struct memds_watch_t *watch; /**< this child's IDLE watcher (child_init;
                                    used by the memds-watch job's thread
                                    only), NULL when nothing is watched */
    struct memds_watch_cfg_t *watch_cfg; /**< its sources and settings */
    struct memds_push_wake_t *push_wake; /**< when this child's push job
                                            looks again (child_init; its
                                            thread only), or NULL */
    struct memds_jobgate_t *jobgate; /**< this child's background jobs may
                                        run (child_init, in the process
                                        pool: memds_jobgate.h) */
    volatile apr_uint32_t
        schema_ok; /**< this child saw the right schema version */
} memds_srv_conf;

/** Per-directory (<Location>) configuration. */
typedef struct memds_dir_conf {
    int engine;             /**< MemDSEngine */
    const char *location;   /**< the <Location> path, NULL elsewhere */
    const char *imap_url;   /**< MemDSIMAPServer */
    const char *smtp_url;   /**< MemDSSMTPServer */
    apr_off_t max_msg_size; /**< MemDSMaxMsgSize (MEMDS_UNSET) */
    apr_off_t max_obj_size; /**< MemDSMaxObjSize (MEMDS_UNSET) */
    const char *datastore;  /**< MemDSDatastore */
    const char *auth_file;  /**< MemDSAuthFile */
    int auth_type;          /**< MemDSAuthType (MEMDS_UNSET, basic, md5) */
    int session_timeout;    /**< MemDSSessionTimeout */
    int conflict;           /**< MemDSConflictPolicy */
    int auth_failures, auth_window, auth_block; /**< MemDSAuthLimit */
    /** MemDSLimit: device/account sessions per minute, concurrent, bytes
     *  per hour (MEMDS_UNSET each) */
    apr_int64_t limits[6];
    int autoblock, autoblock_secs; /**< MemDSAutoBlock (MEMDS_UNSET) */
    int quarantine;                /**< MemDSQuarantine (MEMDS_UNSET) */
    memds_verifier_t verifier; /**< built from auth_file at config time */
    const char *master_user, *master_password; /**< MemDSIMAPMaster */
    int delete_policy;           /**< MemDSDeletePolicy (MEMDS_UNSET) */
    int sent_copy;               /**< MemDSSentCopy (MEMDS_UNSET) */
    int rejected_to_drafts;      /**< MemDSRejectedMail (MEMDS_UNSET) */
    const char *folder_names[9]; /**< MemDSFolder, by memds_imap_role_e */
    int smtp_auth;               /**< MemDSSMTPAuth (MEMDS_UNSET) */
    const char *smtp_user, *smtp_password;
    int truncate_set;            /**< MemDSTruncate given here */
    memds_ds_level_t truncate;   /**< MemDSTruncate (default 20K) */
    int max_age, max_items;      /**< MemDSMaxAge, MemDSMaxItems */
    int push;                    /**< MemDSPush (MEMDS_UNSET) */
    int push_watch;              /**< MemDSPushWatch (MEMDS_UNSET) */
    const char *account_realm;   /**< MemDSAccountRealm */
    apr_array_header_t *exclude; /**< MemDSExcludeFolder, or NULL */
    int compress;                /**< MemDSCompression (MEMDS_UNSET: On) */
    const char *tls_ca_file;     /**< MemDSTLSCAFile (absolute), or NULL */
    int imap_starttls;           /**< MemDSIMAPStartTLS (MEMDS_UNSET) */
    int smtp_starttls;           /**< MemDSSMTPStartTLS (MEMDS_UNSET) */
    /* MemDSPushSelfRegister: MEMDS_UNSET, 0 Off, 1 on; sms, URL prefixes */
    int push_self, push_self_sms;
    apr_array_header_t *push_self_prefixes; /* or NULL */
} memds_dir_conf;

extern const command_rec memds_cmds[];
/** The memds-notify handler (memds_notify.c): mail events from the IMAP
 *  server (Dovecot's push_notification) become pending notifications. */
int memds_notify_handler(request_rec *r);
/** The memds-admin handler (memds_adminpage.c): remote wipe and enable
 *  for users httpd authenticated. */
int memds_adminpage_handler(request_rec *r);
/** Watchdog job (memds_notify.c): deliver the push notifications due. */
apr_status_t memds_push_job(int state, void *data, apr_pool_t *pool);
/** Watchdog job (memds_notify.c): the IMAP IDLE watcher's rounds. */
apr_status_t memds_watch_job(int state, void *data, apr_pool_t *pool);
/** The IDLE watchers of this child (child_init): one per PostgreSQL pool
 *  whose servers have locations with MemDSPushWatch On. */
void memds_watch_child_init(apr_pool_t *pchild, server_rec *s);
/** child_init: the push job's LISTEN connection (memds_push_job). */
void memds_push_child_init(apr_pool_t *pchild, server_rec *s);
/** 1 when some location has MemDSPushWatch On (the job is registered). */
int memds_watch_wanted(server_rec *s);
/** Configuration check of MemDSPushWatch (check_config): NULL or why not. */
const char *memds_watch_check(const memds_dir_conf *dc);
void *memds_create_srv_conf(apr_pool_t *p, server_rec *s);
void *memds_merge_srv_conf(apr_pool_t *p, void *base, void *add);
void *memds_create_dir_conf(apr_pool_t *p, char *dir);
void *memds_merge_dir_conf(apr_pool_t *p, void *base, void *add);

/** Fill each server's engine_dirs (post_config): every <Location> (and
 * <Directory>) section where the engine is on once merged with its
 * server's defaults, each path once (the first server that has it). */
void memds_collect_engine_dirs(apr_pool_t *p, server_rec *s);

/** Typed getters (the only users of ap_get_module_config). */
memds_srv_conf *memds_srv_conf_get(const server_rec *s);
memds_dir_conf *memds_dir_conf_get(const request_rec *r);
int memds_dir_engine(const memds_dir_conf *dc);
apr_off_t memds_dir_max_msg_size(const memds_dir_conf *dc);
/** Engine settings of a location (defaults applied), in cfg; mbuf holds
 *  the mailbox settings cfg->mail points to, logging through log; IMAP
 *  latencies are counted in stats (or not, NULL). */
void memds_dir_engine_cfg(memds_engine_cfg_t *cfg, memds_verifier_t *vbuf,
                          memds_mail_cfg_t *mbuf, const memds_logger_t *log,
                          memds_pgpool_t *pgpool, memds_logincache_t *logins,
                          memds_imap_cache_t *imap_cache,
                          memds_stats_t *stats, const memds_dir_conf *dc);
/** Effective pool sizing for a server (defaults applied; max from the MPM). */
void memds_srv_pool_params(memds_pgpool_params_t *pp, const memds_srv_conf *sc);

/** Content codings of request bodies and answers (memds_compress.c). */
enum { MEMDS_CE_IDENTITY, MEMDS_CE_GZIP, MEMDS_CE_ZLIB, MEMDS_CE_RAW };

/** Read the request body, decoded from its Content-Encoding (gzip, deflate
 *  in the zlib or raw form); the decoded message may not exceed max bytes,
 *  checked while inflating. Returns OK, or the HTTP status to answer
 *  (logged); *pcoding tells the form the body came in. */
int memds_read_body(const char **pbuf, apr_size_t *plen, int *pcoding,
                    request_rec *r, apr_off_t max);
/** Compress the answer in *pout when the request accepts a coding and
 *  MemDSCompression is On: Content-Encoding, Uncompressed-Content-Length
 *  and Vary set, *pout and *plen replaced. */
void memds_compress_answer(const char **pout, apr_size_t *plen, request_rec *r,
                           const memds_dir_conf *dc, int req_coding);

/** The memds-status handler. */
int memds_status_handler(request_rec *r);
/** The status page's Prometheus form, second part (memds_metrics.c): the
 *  shared counters and histograms; with conn (the database answered), the
 *  stuck outbox messages. */
void memds_metrics_prometheus(request_rec *r, const memds_counters_t *c,
                              memds_pgconn_t *conn);

#endif /* MEMDS_GLUE_H */
