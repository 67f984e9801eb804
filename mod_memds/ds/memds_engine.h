/**
 * @file memds_engine.h
 * The OMA DS 1.2 protocol engine: one call per HTTP request. Nothing of a
 * session lives in process memory between requests: the engine finds the
 * session in PostgreSQL (RespURI token, or device + SessionID), locks it,
 * processes the message, and commits the new state together with the
 * encoded response it returns, so that a retransmitted message is answered
 * with the stored bytes and no double effect, on any httpd child or node.
 */
#ifndef MEMDS_ENGINE_H
#define MEMDS_ENGINE_H

#include <apr_pools.h>
#include "syncml/memds_msg.h"
#include "ds/memds_auth.h"
#include "store/memds_pgpool.h"
#include "ds/memds_ds.h"
#include "ds/memds_sessdb.h"

/** Conflict resolution when both sides changed an item. */
typedef enum {
    MEMDS_CONFLICT_SERVER_WINS =
        0, /**< 419; the server version goes to the device */
    MEMDS_CONFLICT_CLIENT_WINS, /**< 208; the device's change is applied */
    MEMDS_CONFLICT_DUPLICATE    /**< 209; both kept */
} memds_conflict_e;

/** Preferred authentication scheme (asked for in Chal). */
typedef enum { MEMDS_AUTH_BASIC = 0, MEMDS_AUTH_MD5 } memds_authtype_e;

typedef struct memds_engine_cfg_t {
    const char *datastore;        /**< datastore kind: "items" or "imap" */
    const memds_mail_cfg_t *mail; /**< the mailbox datastores' settings */
    const memds_ds_registry_t *registry; /**< datastore providers; NULL:
                                         only the built-in "items" */
    int session_timeout; /**< seconds of idle time before a session expires */
    apr_int64_t max_msg_size; /**< largest message we accept (our MaxMsgSize) */
    apr_int64_t max_obj_size; /**< largest item we accept (our MaxObjSize) */
    memds_conflict_e conflict;
    memds_authtype_e auth_type; /**< scheme asked for in Chal */
    const memds_verifier_t
        *verifier;           /**< NULL: only HTTP-authenticated users */
    int auth_max_failures;   /**< failures per window before blocking */
    int auth_window;         /**< seconds */
    int auth_block;          /**< seconds */
    const char *server_name; /**< DevInf Man/Mod */
    int record_md5;          /**< keep md5 inner values from basic logins */
    int max_age_days;        /**< MemDSMaxAge: mail older than this many days is
                           not synchronised (0: no limit) */
    int max_items; /**< MemDSMaxItems: at most this many mails per folder
                           (the newest; 0: no limit) */
    int push; /**< MemDSPush On: server-alerted sync (SyncType 7) offered */
    /** MemDSPushSelfRegister: a device may register its own channel in
     *  its DevInf (Ext X-memds-push): sms numbers when push_self_sms, http
     *  URLs that start with one of push_self_prefixes (const char *;
     *  NULL: none). Both unset: Off. */
    int push_self_sms;
    const apr_array_header_t *push_self_prefixes;
    const char *realm; /**< MemDSAccountRealm: account keys are
                          "realm:login" (memds_account_key), or NULL */
    const apr_array_header_t *realms; /**< every realm of the configuration
                                         (const char *), or NULL */
    const char *push_watch; /**< MemDSPushWatch On: the IMAP server's URL;
                               a session notes its account for the IDLE
                               watcher (memds.push_watch) */
    /** MemDSLimit (docs/throttle.md): per device and per account, sessions
     *  started per minute, sessions in progress, bytes per hour (0: no
     *  limit); a new session over one is refused with 503 and
     *  Retry-After. */
    int limit_dev_min, limit_acct_min, limit_dev_conc, limit_acct_conc;
    apr_int64_t limit_dev_bytes, limit_acct_bytes;
    /** MemDSAutoBlock: this many failed sessions in a row hold the device
     *  (0: never) for autoblock_secs (0: until an administrator unblocks
     *  it). */
    int autoblock, autoblock_secs;
    /** MemDSQuarantine: a server item the device answers with an error
     *  this many times is put in quarantine (0: never). */
    int quarantine;
} memds_engine_cfg_t;

typedef struct memds_request_t {
    const char *body;
    apr_size_t len;
    memds_enc_e enc;
    const char *token;    /**< the RespURI token (?s=...), NULL if none */
    const char *base_url; /**< absolute URL of the sync location, for RespURI */
    const char *http_user; /**< user httpd authenticated (r->user), or NULL */
} memds_request_t;

typedef struct memds_response_t {
    int http_status; /**< 200, or 400 / 503 / 500 */
    const char *body;
    apr_size_t len;
    int log_level;       /**< level of log_msg (syslog numbers), 0: none */
    const char *log_msg; /**< one line for the error log; never has passwords */
    int replayed;        /**< the stored response of a retransmission */
    int retry_after; /**< seconds for an HTTP Retry-After header, 0: none */
    int throttled;   /**< a new session refused by a limit (MemDSLimit) */
    int blocked;     /**< a new session of a held device refused */
    /* What this request did, for the metrics (set only when its
     * transaction committed): a session began / completed, the items of
     * the device's Syncs (up) and of ours (down), and the sync alerts the
     * device sent by code (200 two-way ... 206 one-way from the server by
     * the server's alert; index code - 200). */
    int session_started, session_completed;
    int items_up, items_down;
    int sync_alerts[7];
} memds_response_t;

/**
 * Process one SyncML message with the session store db (one transaction).
 * Always fills resp; the return value is APR_SUCCESS unless the store
 * failed (resp then says 503).
 */
apr_status_t memds_engine_run(memds_response_t *resp,
                              const memds_engine_cfg_t *cfg, memds_sessdb_t *db,
                              const memds_request_t *req, apr_pool_t *p);

/** memds_engine_run with the PostgreSQL session store on conn. */
apr_status_t memds_engine_process(memds_response_t *resp,
                                  const memds_engine_cfg_t *cfg,
                                  memds_pgconn_t *conn,
                                  const memds_request_t *req, apr_pool_t *p);

/** Remove expired sessions of db (own transaction); *pn how many. */
apr_status_t memds_engine_expire_db(int *pn, memds_sessdb_t *db);

/** Remove expired sessions (for the watchdog); *pn how many. */
apr_status_t memds_engine_expire(int *pn, memds_pgconn_t *conn, apr_pool_t *p);

#endif /* MEMDS_ENGINE_H */
