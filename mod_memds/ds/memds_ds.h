/**
 * @file memds_ds.h
 * Datastores behind a vtable: the engine sees only these operations.
 * Implementations ("providers") are found through a registry by the
 * MemDSDatastore kind and the datastore's name, the way mod_dav finds its
 * providers: the items datastore (PostgreSQL, memds_ds_items.c) is built
 * in; the glue registers the mailbox folders (memds_ds_mail.c,
 * memds_ds_mailtree.c) and the Outbox (send/memds_outbox.c).
 *
 * Change model: a datastore has a monotonically growing change sequence;
 * the engine asks for a snapshot value, then for the changes in
 * (since, snapshot], and remembers the snapshot as the device's state once
 * the session completes. Each change says which device made it so that a
 * device's own changes are not echoed back to it.
 */
#ifndef MEMDS_DS_H
#define MEMDS_DS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_hash.h>
#include <apr_time.h>
#include "store/memds_store.h"
#include "util/memds_util.h"

typedef struct memds_ds_change_t {
    const char *guid;
    int deleted;
    apr_int64_t seq;
    apr_int64_t changed_by; /**< device id, 0 unknown */
    /** The seq of the last change of the item's content (not of its
     *  flags), 0 when the datastore does not tell them apart. */
    apr_int64_t content_seq;
} memds_ds_change_t;

/** Append a change to an array of memds_ds_change_t * (from its pool). */
void memds_ds_change_push(apr_array_header_t *changes, const char *guid,
                          int deleted, apr_int64_t seq, apr_int64_t changed_by);

typedef struct memds_ds_t memds_ds_t;

/** How much of a mail a device gets (docs/mail.md "Truncation"): the
 *  level of MemDSTruncate, an account's setting, or the device's filter.
 *  The device's size budget (ds->size_budget) caps it in any case. */
typedef struct memds_ds_level_t {
    apr_int64_t whole_max;   /**< a mail of at most this size goes whole;
                                -1: any size */
    apr_int64_t text_max;    /**< else its header and this many bytes of its
                                text; -1: all of it, 0: none */
    int attach;              /**< else also every attachment (1) or none (0) */
    const char *attach_name; /**< else also this one attachment, or NULL */
} memds_ds_level_t;

/** A value of the module's compact forms (levels, filters) %hh-escaped:
 *  controls, space, 8-bit bytes, '%', ';' and '='. */
const char *memds_ds_value_escape(const char *v, apr_pool_t *p);
/** Undo memds_ds_value_escape in place; returns v. */
char *memds_ds_value_unescape(char *v);

/** The level "the whole mail": whole_max -1. */
int memds_ds_level_is_whole(const memds_ds_level_t *l);
/** The compact form kept in memds.mail_levels: "whole" or
 *  "w=M;t=N;a=0|1[;n=NAME]" (NAME %-escaped). */
const char *memds_ds_level_format(const memds_ds_level_t *l, apr_pool_t *p);
/** Read the compact form; APR_EINVAL if it is not one. */
apr_status_t memds_ds_level_parse(memds_ds_level_t *l, const char *s,
                                  apr_pool_t *p);

/** A record filter as a datastore applies it (DS 1.2, docs/filters.md):
 *  a time window and at most max_count items (newest first, per folder).
 *  The engine handles the device's LUIDs itself. */
typedef struct memds_ds_select_t {
    apr_time_t since;  /**< at or after (0: no lower bound) */
    int since_incl;    /**< since itself is in (else strictly after) */
    apr_time_t before; /**< at or before (0: no upper bound) */
    int before_incl;
    apr_int64_t max_count; /**< <= 0: no limit */
} memds_ds_select_t;

typedef struct memds_ds_vt {
    const char *kind;
    /** Current change sequence. */
    apr_status_t (*snapshot)(memds_ds_t *ds, apr_int64_t *pseq);
    /** Changes (memds_ds_change_t *) with since < seq <= upto in seq order;
     *  since -1: every live item. */
    apr_status_t (*changes)(memds_ds_t *ds, apr_array_header_t **pchanges,
                            apr_int64_t since, apr_int64_t upto);
    /** An item's bytes and type; APR_ENOENT if unknown or deleted.
     *  known_seq: the change position up to which the device has the item
     *  (a Replace), -1 when it has nothing; a datastore may then send less
     *  (a flags-only email update). */
    apr_status_t (*fetch)(memds_ds_t *ds, const char *guid,
                          apr_int64_t known_seq, const char **pdata,
                          apr_size_t *plen, const char **ptype);
    apr_status_t (*add)(memds_ds_t *ds, const char **pguid, const char *type,
                        const char *data, apr_size_t len);
    apr_status_t (*replace)(memds_ds_t *ds, const char *guid, const char *type,
                            const char *data, apr_size_t len);
    /** APR_ENOENT when there is nothing to delete. */
    apr_status_t (*remove)(memds_ds_t *ds, const char *guid);
    /** A live item with the same content not mapped for this device. */
    apr_status_t (*match)(memds_ds_t *ds, const char **pguid, const char *data,
                          apr_size_t len);
    /** Does the item already hold what data says? *psame 1/0; APR_ENOENT
     *  if unknown or deleted. */
    apr_status_t (*same)(memds_ds_t *ds, const char *guid, const char *type,
                         const char *data, apr_size_t len, int *psame);
    /** The item's last change: its seq and the device that made it. */
    apr_status_t (*last_change)(memds_ds_t *ds, const char *guid,
                                apr_int64_t *pseq, apr_int64_t *pby);
    /** Can the datastore be used at all (folder exists, backend reachable)?
     *  May be NULL. On failure ds->status says what to answer. */
    apr_status_t (*check)(memds_ds_t *ds);
    /** 1: a refresh from the client never deletes what the device did not
     *  send (a mailbox is not the device's to wipe). */
    int keep_on_refresh;
    /** Hierarchical datastores: the server id of the item's parent folder
     *  (*pparent NULL at the top). May be NULL. */
    apr_status_t (*parent)(memds_ds_t *ds, const char *guid,
                           const char **pparent);
    /** Hierarchical datastores: Move (DS 1.2) the item to the folder
     *  ds->parent_hint (same server id). NULL: Move is not supported. */
    apr_status_t (*move)(memds_ds_t *ds, const char *guid);
    /** Filters: every live item as a key of *pset (a hash of guid), with
     *  the value "1" when it is in the set sel describes and "0" when not.
     *  NULL: the datastore cannot filter (the Alert gets 406). */
    apr_status_t (*select)(memds_ds_t *ds, const memds_ds_select_t *sel,
                           apr_hash_t **pset);
    /** Items the device asked to get again at a new level (a Replace of
     *  its truncated copy with a larger X-Sync-Message-Limit): guids in
     *  *pguids (const char *). May be NULL. */
    apr_status_t (*wanted)(memds_ds_t *ds, apr_array_header_t **pguids);
    /** A hint before the engine fetches these new items (Adds, in order):
     *  the datastore may read ahead the ones it will send whole, at most
     *  max_bytes in all, in one round trip instead of one each. A failure
     *  only means fetch does the work. May be NULL. */
    apr_status_t (*prefetch)(memds_ds_t *ds, const char *const *guids, int n,
                             apr_size_t max_bytes);
    /** 1: match finds the same item by identity (a mail's Message-ID and
     *  size), not by its bytes, so a match may still differ (its flags):
     *  a slow sync then settles it as a conflict (MemDSConflictPolicy).
     *  0: a match is the same bytes. */
    int match_loose;
} memds_ds_vt;

/** What a datastore may do for many items of a message at once (one
 *  round trip instead of one per item), besides its vtable; the engine
 *  asks memds_ds_batch_of and falls back to the vtable's one-item
 *  operations when it gives NULL. */
typedef struct memds_ds_batch_t {
    /** match for n contents at once, as the datastore stands now: for
     *  each, the item match would give (pguids[i], NULL for none), or
     *  "" when only match itself can tell (a hash collision). The arrays
     *  are the caller's. */
    apr_status_t (*match_many)(memds_ds_t *ds, int n, const char *const *data,
                               const apr_size_t *lens, const char **pguids);
    /** add of n items in order; pguids[i] receives item i's id. */
    apr_status_t (*add_many)(memds_ds_t *ds, int n, const char *const *types,
                             const char *const *data, const apr_size_t *lens,
                             const char **pguids);
} memds_ds_batch_t;

/** The batch operations of ds, or NULL (memds_ds_items.c: the items
 *  datastore over PostgreSQL has them). */
const memds_ds_batch_t *memds_ds_batch_of(const memds_ds_t *ds);

/** Settings of the mailbox datastores (MemDSIMAP*, MemDSFolder,
 *  MemDSDeletePolicy). */
typedef enum {
    MEMDS_DELETE_TRASH = 0, /**< move to Trash; expunge when in Trash */
    MEMDS_DELETE_FLAG,      /**< set \\Deleted only */
    MEMDS_DELETE_EXPUNGE    /**< set \\Deleted and UID EXPUNGE */
} memds_delete_policy_e;

typedef struct memds_mail_cfg_t {
    const char *imap_url; /**< imap:// or imaps:// */
    /** MemDSTLSCAFile: the CA bundle that verifies the IMAP and SMTP
     *  servers' certificates, NULL for the system's */
    const char *ca_file;
    int imap_starttls; /**< MemDSIMAPStartTLS On: imap:// needs STARTTLS */
    int smtp_starttls; /**< MemDSSMTPStartTLS On: smtp:// needs STARTTLS */
    const char *master_user; /**< log in as this user for the account
                                     (SASL PLAIN authzid), or NULL */
    const char *master_password;
    memds_delete_policy_e delete_policy;
    const char
        *folder_names[9]; /**< configured name per memds_imap_role_e, or NULL */
    long timeout_ms;      /**< IMAP I/O timeout; 0: default */
    const memds_logger_t *log;
    /* sending (the Outbox datastore) */
    const char *smtp_url;                  /**< MemDSSMTPServer, or NULL */
    int smtp_auth;                         /**< MEMDS_SMTP_AUTH_* */
    const char *smtp_user, *smtp_password; /**< MemDSSMTPAuth USER PASSWORD */
    struct memds_pgpool_t *pgpool; /**< the request pool (background job) */
    struct memds_pgpool_t *ledger_pool; /**< the outbox ledger's own
                                     autocommit connections: a pool of its
                                     own, so that a request holding a
                                     connection of pgpool never waits for a
                                     second one from it */
    int no_sent_copy;     /**< MemDSSentCopy Off: the server files it */
    const char *location; /**< the <Location> path (outbox retries) */
    const char *realm;    /**< MemDSAccountRealm, or NULL */
    struct memds_imap_cache_t *imap_cache; /**< connections kept between
                                                requests, or NULL */
    int keep_rejected; /**< MemDSRejectedMail keep: not to Drafts */
    /** MemDSTruncate: the level mail goes at when neither the device's
     *  filter nor the account's setting says otherwise; NULL: whole. */
    const memds_ds_level_t *truncate;
    /** MemDSExcludeFolder: folders (IMAP names) never synchronised;
     *  const char *, or NULL. */
    const apr_array_header_t *exclude;
    /** Latency histograms of the IMAP and SMTP calls made with these
     *  settings (util/memds_stats.h), or NULL. */
    struct memds_stats_t *stats;
} memds_mail_cfg_t;

#define MEMDS_SMTP_AUTH_NONE 0 /**< no AUTH (trusted submission) */
#define MEMDS_SMTP_AUTH_USER 1 /**< the device's own password */
#define MEMDS_SMTP_AUTH_FIXED \
    2 /**< MemDSSMTPAuth USER PASSWORD, account as authzid */

/** What the datastores of one request share (a mailbox kind keeps its
 *  IMAP connection there), opaque to the engine: each provider keeps its
 *  own state under its own key. */
typedef struct memds_ds_shared_t memds_ds_shared_t;
/** A new one, living (and closing what it holds) with p. Cheap: nothing
 *  is made until a provider asks for its slot. */
memds_ds_shared_t *memds_ds_shared_make(apr_pool_t *p);
/** The state a provider keeps under key, or NULL. */
void *memds_ds_shared_get(memds_ds_shared_t *sh, const char *key);
/** Keep v under key for the rest of the request. */
void memds_ds_shared_set(memds_ds_shared_t *sh, const char *key, void *v);
/** The pool the shared state lives in (the request's). */
apr_pool_t *memds_ds_shared_pool(memds_ds_shared_t *sh);

typedef struct memds_ds_registry_t memds_ds_registry_t;

/** Who the datastore acts for and how it reaches the backend. */
typedef struct memds_ds_env_t {
    const char *kind; /**< MemDSDatastore: "items" or "imap" */
    const memds_ds_registry_t *registry; /**< the providers; NULL: only
                                     the built-in "items" */
    const memds_mail_cfg_t *mail;
    const char *password;      /**< the device's password (basic) for a
                                     pass-through IMAP login, or NULL */
    const char *want_type;     /**< the device's preferred content type */
    memds_ds_shared_t *shared; /**< per request (memds_ds_shared_make) */
    /** The device merges field-level replaces of the email type (DevInf
     *  CTCap FieldLevel): a flag change may go to it as flags only. */
    int field_level;
    /** A Funambol client: a truncated mail carries the x-funambol-* Exts
     *  (email-san.md 1.4 b) besides <truncated>. */
    int funambol;
    /** The device's DevInf announces the email object but not
     *  message/rfc822: 8-bit mail goes to it made 7-bit, in the email
     *  object. */
    int no_rfc822;
} memds_ds_env_t;

struct memds_ds_t {
    const memds_ds_vt *vt;
    memds_store_t *st; /**< the request's store (same transaction) */
    const char *account, *store;
    const char *login; /**< the mail server's login of the account (the
                          account key without its MemDSAccountRealm) */
    apr_int64_t device_id;
    void *impl;
    /** After a failed operation: the SyncML status to answer (0: a store
     *  failure) and a line for the log. */
    int status;
    const char *reason;
    /** Set by the engine before add/replace/same/match: the server id of
     *  the parent folder the device names (TargetParent, or its
     *  SourceParent mapped), NULL for none. */
    const char *parent_hint;
    /** Set by the engine before add/replace/remove: the device's id of the
     *  item (the outbox ledger keys on it). */
    const char *luid_hint;
    /** Set by the engine before fetch: the most bytes the object may
     *  take on the device (its MaxObjSize, or what fits a message when it
     *  takes no large objects), 0 for no limit. A datastore that can send
     *  a smaller form (the mail datastore: a truncated mail) keeps to it. */
    apr_size_t size_budget;
    /** Set by the engine before fetch: the level the session sends at
     *  (NULL: whole); force: the whole content at that level even when the
     *  device has the item and only flags changed (get-more). */
    const memds_ds_level_t *level;
    int force;
    /** After a successful add: the status to answer instead of 201 (e.g.
     *  202 for a message accepted but not yet sent), 0 for 201. */
    int ok_status;
    /** After a failed fetch: the item's own command failed on a backend
     *  connection that worked until then (the IMAP server dropped the
     *  connection on this message, say); the engine counts it towards
     *  the item's quarantine (docs/throttle.md). */
    int item_failed;
    /** Set by a datastore that batches what fetch records (the mail
     *  datastore: the levels sent): the engine calls it once it filled a
     *  message with the datastore's items, before the request commits.
     *  NULL: nothing to write. */
    apr_status_t (*flush)(memds_ds_t *ds);
    /** Set by a datastore that keeps rows per device and item (the mail
     *  datastore: its levels): the engine calls it once in a session, when
     *  thousands of its items have gone down, to bring the planner's
     *  statistics of those rows up to date (see memds_sessdb_vt.grown).
     *  Best effort. NULL: nothing to do. */
    void (*grown)(memds_ds_t *ds);
};

/** A datastore implementation, registered under a MemDSDatastore kind. */
typedef struct memds_ds_provider_t {
    const char *kind; /**< the MemDSDatastore value it serves */
    const char *name; /**< for logs and docs ("mail folder", "outbox") */
    /** Does it serve the datastore called store? NULL: every datastore of
     *  the kind not claimed by a provider that has this test. */
    int (*serves)(const char *store);
    /** Make ds (account, store, device, st already set) this provider's:
     *  set ds->vt and ds->impl. Nothing is contacted yet. */
    apr_status_t (*open)(memds_ds_t *ds, const memds_ds_env_t *env,
                         apr_pool_t *p);
} memds_ds_provider_t;

/** A registry with the built-in "items" provider, living in p. Filled at
 *  start-up, read-only afterwards (safe to share between threads). */
memds_ds_registry_t *memds_ds_registry_make(apr_pool_t *p);
/** Add a provider (not copied: it must outlive the registry). */
void memds_ds_register(memds_ds_registry_t *reg,
                       const memds_ds_provider_t *prov);

/** Open the datastore store of env->kind for account on behalf of
 *  device_id; APR_ENOTIMPL when no provider serves it. Nothing is
 *  contacted yet. */
apr_status_t memds_ds_open(memds_ds_t **pds, const memds_ds_env_t *env,
                           memds_store_t *st, const char *account,
                           const char *store, apr_int64_t device_id,
                           apr_pool_t *p);

/** The "items" provider (memds_ds_items.c). */
extern const memds_ds_provider_t memds_ds_items_provider;
/** Register the mailbox providers (memds_ds_mail.c; kind "imap": one
 *  datastore per folder, and the hierarchical "email" datastore). */
void memds_ds_mail_register(memds_ds_registry_t *reg);

/** The account key of a login at a location (MemDSAccountRealm): the
 *  login itself without a realm, else "realm:login", so that the same login
 *  on two mail servers keeps two separate states (devices, sessions,
 *  anchors, maps, mail rows, outbox rows). */
const char *memds_account_key(const char *login, const char *realm,
                              apr_pool_t *p);
/** The login of an account key at a location with that realm (NULL: the
 *  key itself); a key of another realm gives NULL. */
const char *memds_account_login(const char *key, const char *realm);

#endif /* MEMDS_DS_H */
