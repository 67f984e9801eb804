/**
 * @file memds_engine_int.h
 * What the parts of the protocol engine share (private to ds/memds_engine*.c,
 * memds_eng_*.c and the engine's part of memds_auth.c): the state of one
 * request (eng_t), the session phases, and the functions one part calls
 * in another. See memds_engine.c for the request's path.
 */
#ifndef MEMDS_ENGINE_INT_H
#define MEMDS_ENGINE_INT_H

#include "ds/memds_engine.h"
#include "ds/memds_ds.h"
#include "ds/memds_sessdb.h"
#include "syncml/memds_codes.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

/* Session phases (sessions.phase). */
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
    apr_array_header_t *sstores; /* memds_sstore_t * */
    /* the answer */
    memds_msg_t *out;
    int cmd_id;
    apr_array_header_t *replies; /* Status / Results, in order */
    apr_array_header_t *cmds;    /* our own commands (Alert, Sync, Put...) */
    int final;
    int hdr_status; /* 0: none yet */
    memds_meta_t *chal;
    memds_cred_t *server_cred; /* the server's Cred for our SyncHdr, or NULL */
    int authenticated_now;
    int saw_alert;     /* sync alerts processed in this message */
    int need_sync_out; /* package 4 starts in this answer */
    int suspend;       /* the client sent Alert 224 */
    /* packages 1 and 3 together: Syncs accepted / refused (508) in the
     * init phase of this message */
    int combined_ok, combined_refused;
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
    int inband; /* in-band notifications (Alerts 206) in this answer */
    /* throttling (memds_eng_throttle.c): the SyncHdr status of a refusal
     * (eng_refuse), and a failed login of this request (memds_auth.c) */
    int refused_code;
    const char *fail_account, *fail_why;
    /* an item whose fetch broke the backend's connection (503) */
    const char *suspect_store, *suspect_guid, *suspect_reason;
    int suspect_status;
    /* the device's sync_state rows read in this request, by store
     * (eng_syncstate): several steps of one message ask for the same row */
    apr_hash_t *syncstates;
} eng_t;

/* ----------------------- memds_engine.c: the request and the session */

const char *eng_new_token(apr_pool_t *p);

/* Datastore name from an Alert/Sync LocURI: no "./", no CGI options, no
 * trailing slash. */
const char *eng_store_name(const char *uri, apr_pool_t *p);

memds_sstore_t *eng_find_sstore(eng_t *e, const char *name);

apr_status_t eng_db_fail(eng_t *e, const char *what);

apr_status_t eng_open_ds(memds_ds_t **pds, eng_t *e, const char *store);

/* The device's anchors and change position of store (syncstate_get), read
 * once per request: APR_SUCCESS, APR_ENOENT (none yet) or a database
 * error (not kept). eng_syncstate_forget after the row is written. */
apr_status_t eng_syncstate(eng_t *e, memds_syncstate_t *state,
                           const char *store);
void eng_syncstate_forget(eng_t *e, const char *store);

/* A datastore failed where no item status can carry it (scanning the
 * mailbox for the server's changes): the whole message is answered with
 * 503 and Retry-After, nothing is stored, and the device retries. */
apr_status_t eng_ds_fail(eng_t *e, memds_ds_t *ds, const char *what);

/* ----------------------------------- memds_auth.c: who the device is */

/* A later message of a session: the password its basic credentials carry
 * (pass-through IMAP login). */
void eng_session_password(eng_t *e);

/* Decide who the client is. Returns APR_SUCCESS with *paccount set, or
 * APR_EACCES after filling the refusal answer, or a database error. */
apr_status_t eng_authenticate(eng_t *e, const char **paccount);

/* A later message of a session naming another account (HTTP user or
 * SyncHdr credentials) ends the session with 401. APR_SUCCESS: same
 * account; APR_EACCES: refused, stored and committed. */
apr_status_t eng_session_account_check(eng_t *e);

/* A later message of a session: the device's Status for our SyncHdr. A
 * challenge (401/407 with Chal) is answered with the server's Cred in our
 * SyncHdr (e->server_cred, from memds.server_credentials), again in every
 * message until the device answers 212; without a secret for the device,
 * or when the device rejects ours, the session ends (APR_EACCES, stored
 * and committed). */
apr_status_t eng_server_auth(eng_t *e);

/* ---------------------------- memds_eng_pkg.c: answers and package 4 */

memds_loc_t *eng_loc(apr_pool_t *p, const char *uri);

memds_item_t *eng_item_new(apr_pool_t *p);

memds_meta_t *eng_meta_new(apr_pool_t *p);

memds_cmd_t *eng_cmd_new(eng_t *e, memds_cmd_e type);

void eng_push(apr_array_header_t **a, void *v, apr_pool_t *p);

/* A Status answering cmd (NULL: the SyncHdr). CmdIDs are given when the
 * answer is assembled. */
memds_cmd_t *eng_status_for(eng_t *e, const memds_cmd_t *cmd, int code);

void eng_reply(eng_t *e, const memds_cmd_t *cmd, memds_cmd_t *status);

void eng_add_ref(apr_array_header_t **refs, const char *uri, apr_pool_t *p);

int eng_code_of(const char *s);

/* A status or alert code as the text a command carries. */
const char *eng_code_text(eng_t *e, int code);

/* The device's SyncML version as VerDTD ("1.0", "1.1", "1.2"): answers,
 * DevInf and the session row are in the version the device speaks. */
const char *eng_verdtd(const eng_t *e);

memds_msg_t *eng_answer_header(eng_t *e, int with_respuri);

/* Give CmdIDs in document order (nested commands too). */
void eng_number(eng_t *e, memds_cmd_t *c);

apr_status_t eng_encode(eng_t *e, memds_msg_t *m);

/* An answer that ends the exchange without a session: a SyncHdr status
 * code for the header and for every command (e.g. 401), Final, no RespURI. */
apr_status_t eng_refuse(eng_t *e, int hdr_code, int cmd_code, const char *why);

/* Queue what the device must receive for one datastore. */
apr_status_t eng_build_queue(eng_t *e, memds_sstore_t *ss);

/* Room left in the answer for commands, per the client's MaxMsgSize. */
apr_size_t eng_limit_of(eng_t *e);

/* Put as many queued changes as fit into one Sync per datastore.
 * Sizes: each command's share is measured alone (a Sync's children add up:
 * every item command ends on WBXML page 0, and XML namespaces depend only
 * on the parent), then the whole Sync is measured exactly once and trimmed
 * if the sum was short; so filling is linear in the number of items.
 * *pdone: nothing is left to send in any datastore. */
apr_status_t eng_fill_sync(eng_t *e, memds_sizer_t *sz, int *pdone);

/* Does the answer carry any Sync (something the client must answer)? */
int eng_sent_items(const eng_t *e);

/* ------------------------ memds_eng_filter.c: DS 1.2 filters applied */

#include "syncml/memds_filter.h"

/* A session datastore's filter: the device's (with its level) and the
 * administrator's limits; kept in memds_sstore_t.filter in compact form. */
typedef struct eng_filter_t {
    int inclusive;
    int has_rec;
    memds_filter_rec_t rec; /* the device's record clause */
    int has_level;
    memds_ds_level_t level;  /* from the field clause, MAXSIZE, NOATT */
    apr_time_t admin_since;  /* MemDSMaxAge, 0: none */
    apr_int64_t admin_count; /* MemDSMaxItems, 0: none */
} eng_filter_t;

const char *eng_filter_format(const eng_filter_t *f, apr_pool_t *p);
apr_status_t eng_filter_parse(eng_filter_t **pf, const char *s, apr_pool_t *p);

/* The Alert's Filter (mf, NULL for none) for datastore ds with the
 * administrator's limits: MEMDS_ST_OK with *pf (NULL when there is nothing
 * to apply), or the status the Alert gets with *pwhy. */
int eng_filter_from_alert(eng_t *e, eng_filter_t **pf, const memds_filter_t *mf,
                          memds_ds_t *ds, const char **pwhy);

/* The level the session's filter asks for, NULL for none. */
const memds_ds_level_t *eng_filter_level(eng_t *e, const memds_sstore_t *ss);

/* Building the queue with a filter: prepare once (the sets), admit each
 * change, finish (soft deletes, mail that entered the set, INCLUSIVE
 * additions, get-more, what the device asked for). */
typedef struct eng_fctx_t eng_fctx_t;
apr_status_t eng_filter_prepare(eng_t *e, eng_fctx_t **pfx,
                                const memds_sstore_t *ss, memds_ds_t *ds,
                                apr_int64_t since, const char *prev_filter);
int eng_filter_admit(const eng_fctx_t *fx, const memds_ds_change_t *c);
apr_status_t eng_filter_finish(eng_t *e, eng_fctx_t *fx,
                               const memds_sstore_t *ss, memds_ds_t *ds,
                               apr_hash_t *maps, apr_array_header_t *queue,
                               int *pn);

/* The filter the device's sync state keeps after the session (the
 * EXCLUSIVE set; an INCLUSIVE one leaves the old one in place). */
const char *eng_filter_remember(eng_t *e, const memds_sstore_t *ss,
                                const char *old);

/* The device is being wiped remotely (memds-admin wipe). */
#define ENG_WIPING(e) ((e)->dev.wipe && strcmp((e)->dev.wipe, "requested") == 0)

/* A queued change that goes as a Delete. */
#define ENG_Q_IS_DELETE(op) \
    ((op) == MEMDS_Q_DELETE || (op) == MEMDS_Q_SOFTDELETE)

/* ----------------------------------------- memds_eng_alert.c: alerts */

apr_status_t eng_do_alert(eng_t *e, const memds_cmd_t *cmd);

/* ------------------- memds_eng_sync.c: the client's Sync (package 3) */

apr_status_t eng_do_sync(eng_t *e, const memds_cmd_t *cmd);

/* ------------ memds_eng_map.c: statuses, Map, completion (package 5) */

apr_status_t eng_do_map(eng_t *e, const memds_cmd_t *cmd);

/* The client's Statuses for our item commands: collected here, stored
 * together by eng_flush_statuses. 213 (a chunk arrived) is not a result. */
apr_status_t eng_do_status(eng_t *e, const memds_cmd_t *cmd);

apr_status_t eng_flush_statuses(eng_t *e);

/* Anchors become current only when the client's last package is done. */
apr_status_t eng_complete_session(eng_t *e);

/* ---------------------------------------- memds_eng_devinf.c: DevInf */

/* The content type the device prefers for a datastore (its DevInf
 * Rx-Pref, from this message or stored), or NULL. */
const char *eng_client_rx_type(eng_t *e, const char *store);

/* Does the device merge field-level replaces of type in a datastore (a
 * CTCap for the type with FieldLevel in its DevInf 1.2)? */
int eng_client_field_level(eng_t *e, const char *store, const char *type);

/* Is the device a Funambol client (DevInf Man or Mod)? It gets truncation
 * in Funambol's x-funambol-* Ext form too. */
int eng_client_is_funambol(eng_t *e, const char *store);

/* Does the device take type in a datastore (DevInf Rx-Pref or Rx; 1 when
 * it announced nothing)? */
int eng_client_takes(eng_t *e, const char *store, const char *type);

/* What opening a mail datastore needs of the device's DevInf (preferred
 * type, field-level email, Funambol, takes message/rfc822) into env: from
 * the session's datastore row (client_caps, schema 028) when it has them
 * and this message brings no DevInf, else read from the DevInf and noted
 * there (the stored DevInf is parsed once per session, not per message). */
void eng_client_caps(eng_t *e, const char *store, memds_ds_env_t *env);

apr_status_t eng_do_put(eng_t *e, const memds_cmd_t *cmd);

apr_status_t eng_do_results(eng_t *e, const memds_cmd_t *cmd);

void eng_do_get(eng_t *e, const memds_cmd_t *cmd);

/* ------------------------------- memds_eng_push.c: the engine's push */

/* The DevInf Ext in which a device names its push channel: XVal http and
 * a URL, sms and a number, or none (docs/push.md). */
#define MEMDS_PUSH_EXT "X-memds-push"

/* What the device's DevInf di asks for its push channel under cfg
 * (MemDSPush, MemDSPushSelfRegister): NULL with *pchannel NULL (nothing
 * asked), "none" (remove it), or "http"/"sms" with *paddress; else why it
 * is refused (*pchannel, *paddress as far as they were read). */
const char *eng_push_self_decide(const memds_engine_cfg_t *cfg,
                                 const memds_devinf_t *di,
                                 const char **pchannel, const char **paddress);

/* The client's DevInf di was stored: register, change or remove the
 * device's push channel as it asks, or log why not (MEMDS00570); never
 * fails the DevInf's command (only a database error returns). */
apr_status_t eng_push_self_register(eng_t *e, const memds_devinf_t *di);

/* The session ends in this answer (eng_complete_session): the device's
 * pending notifications this session did not satisfy (a datastore not in
 * it or synced from the client only, or mail that came during it) become
 * Alerts 206 at the end of the answer and stay pending until the device
 * syncs that datastore. */
apr_status_t eng_push_complete(eng_t *e);

/* ------------ memds_eng_throttle.c: limits, autoblock, quarantine */

/* A new session (device locked): refused with 403 while the device is
 * held, with 503 and Retry-After over a limit of MemDSLimit (APR_EACCES,
 * answer made); APR_SUCCESS to go on. */
apr_status_t eng_throttle_check(eng_t *e);

/* After the request: a failed login, a protocol error in a session or an
 * internal error counts a failed session of the device (MemDSAutoBlock),
 * and an item whose fetch broke the backend's connection counts towards
 * its quarantine, outside the request's transaction. */
void eng_throttle_after(eng_t *e);

/* The session completed: failures in a row start again; the items it
 * delivered leave the quarantine table. */
apr_status_t eng_throttle_complete(eng_t *e);

/* The device's statuses of this message (e->st_*), before they are
 * cleared: error statuses count towards the quarantine (MemDSQuarantine). */
apr_status_t eng_quarantine_note(eng_t *e);

/* Building the queue of ss: items held are left out, items released are
 * sent again (*pn numbers the queue). */
apr_status_t eng_quarantine_apply(eng_t *e, const memds_sstore_t *ss,
                                  apr_hash_t *maps, apr_array_header_t *queue,
                                  int *pn);

/* Fetching q failed: APR_SUCCESS when its object cannot be built (an item
 * failure, not the backend's): held, the caller marks it and goes on;
 * APR_EAGAIN when the failure is not the item's; else a database error
 * (answer made). */
apr_status_t eng_quarantine_unbuildable(eng_t *e, const memds_sstore_t *ss,
                                        const memds_qitem_t *q, memds_ds_t *ds);

#endif /* MEMDS_ENGINE_INT_H */
