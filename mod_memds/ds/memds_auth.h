/**
 * @file memds_auth.h
 * SyncML authentication: syncml:auth-basic and syncml:auth-md5 checks and
 * nonces, behind a pluggable credential verifier. The verifier answers two
 * questions: is this user's password right (basic), and what is the md5
 * inner value B64(MD5(user:password)) of this user (md5, which never
 * reveals the password). The passwd-file verifier reads Dovecot's
 * passwd-file format; the IMAP issue adds an IMAP-login verifier.
 */
#ifndef MEMDS_AUTH_H
#define MEMDS_AUTH_H

#include <apr_pools.h>
#include "syncml/memds_msg.h"
#include "util/memds_util.h"

/** Successful pass-through logins remembered for a short time, per
 *  process (thread-safe), so that a device's sessions do not cost an IMAP
 *  login each. Keys are salted SHA-1 digests of server, user and password:
 *  no password is kept, and a different password never hits. */
typedef struct memds_logincache_t memds_logincache_t;

/** A cache of at most max_entries logins, each good for ttl_secs. */
apr_status_t memds_logincache_create(memds_logincache_t **pc, int ttl_secs,
                                     int max_entries, apr_pool_t *p);
/** 1 when this login succeeded less than ttl_secs ago. */
int memds_logincache_hit(memds_logincache_t *c, const char *server,
                         const char *user, const char *password);
/** Remember a successful login (when full, everything is forgotten). */
void memds_logincache_put(memds_logincache_t *c, const char *server,
                          const char *user, const char *password);

typedef struct memds_verifier_t memds_verifier_t;
struct memds_verifier_t {
    /** APR_SUCCESS: right; APR_EACCES: wrong user or password; other:
     *  the verifier could not decide (backend down). */
    apr_status_t (*check_password)(const memds_verifier_t *v, const char *user,
                                   const char *password, apr_pool_t *p);
    /** The md5 inner value of user; APR_ENOENT: unknown user or none kept. */
    apr_status_t (*md5_inner)(const memds_verifier_t *v, const char *user,
                              const char **pinner, apr_pool_t *p);
    const void *baton;
    memds_logincache_t *cache; /**< IMAP verifier: recent logins, or NULL */
    /* IMAP verifier (memds_verifier_imap_tls): the CA bundle, STARTTLS
     * required on imap://, and where a TLS failure is logged */
    const char *ca_file;
    int starttls;
    const memds_logger_t *log;
    /* IMAP verifier of a mailbox location whose datastore logs in with the
     * device's own password (memds_verifier_imap_share): the login that
     * proves the password is made through the process's connection cache
     * and left there logged in, for the mailbox to take */
    struct memds_imap_cache_t *imap_cache;
    struct memds_stats_t *stats;
};

/** A verifier over a Dovecot-style passwd-file ("user:{PLAIN}password:..."
 *  or "user:password"), read at each check so edits apply at once. */
void memds_verifier_passwd_file(memds_verifier_t *v, const char *path);

/** A verifier that logs in to the IMAP server at url (imap:// or imaps://)
 *  with the device's user name and password: a successful login is the
 *  proof (pass-through). It knows no md5 inner values (APR_ENOENT). url is
 *  borrowed and must outlive the verifier. */
void memds_verifier_imap(memds_verifier_t *v, const char *url,
                         memds_logincache_t *cache);

/** The IMAP verifier's TLS settings (after memds_verifier_imap): ca_file
 *  (MemDSTLSCAFile, NULL for the system's bundle; borrowed), STARTTLS
 *  required on imap://, and the logger of a failed secure connection (an
 *  untrusted certificate is an error line, the login is not decided and
 *  the device gets 503). Remembered logins are kept per these settings. */
void memds_verifier_imap_tls(memds_verifier_t *v, const char *ca_file,
                             int starttls, const memds_logger_t *log);

/** The IMAP verifier of a location whose mailbox datastore logs in as the
 *  device (no MemDSIMAPMaster): the proving login (always a new one,
 *  memds_imap_cache_login) is left in cache (the process's logged-in
 *  connections), so the mailbox takes it instead of logging in a second
 *  time. stats (or NULL) measures the connection as the mailbox's own. */
void memds_verifier_imap_share(memds_verifier_t *v,
                               struct memds_imap_cache_t *cache,
                               struct memds_stats_t *stats);

/** B64(MD5(user ":" password)), the md5 "inner" value. */
const char *memds_auth_md5_inner(const char *user, const char *password,
                                 apr_pool_t *p);

/** B64(MD5(inner ":" nonce-bytes)) where nonce_b64 is the NextNonce as sent
 *  (base64; "" for none). */
const char *memds_auth_md5_digest(const char *inner, const char *nonce_b64,
                                  apr_pool_t *p);

/** A fresh random nonce, base64 of 12 bytes. */
const char *memds_auth_new_nonce(apr_pool_t *p);

/** Decode "user:password" from basic Cred data (base64); NULL if malformed. */
apr_status_t memds_auth_basic_decode(const char **puser, const char **ppass,
                                     const memds_bytes_t *data, apr_pool_t *p);

/** Constant-time string comparison. */
int memds_auth_equal(const char *a, const char *b);

#endif /* MEMDS_AUTH_H */
