/* memds_imap_cache.c: logged-in IMAP connections kept between requests,
 * per process (see memds_imap.h). A Dovecot login costs a process start
 * (≈15 ms); a sync of many messages is many requests. */
#include "backends/memds_imap.h"

#include <apr_sha1.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <string.h>

struct memds_imap_lease_t {
    char key[2 * APR_SHA1_DIGESTSIZE + 1];
    apr_pool_t *pool; /* unmanaged root: the connection's home */
    memds_imap_conn_t *conn;
    int uses;
    apr_time_t idle_since;
};

struct memds_imap_cache_t {
    apr_thread_mutex_t *lock;
    memds_imap_lease_t **idle; /* max_idle slots, NULL when free */
    int max_idle, max_uses;
    apr_interval_time_t max_age; /* idle longer: closed */
    unsigned char salt[16];
};

apr_status_t memds_imap_cache_create(memds_imap_cache_t **pc, int max_idle,
                                     int idle_secs, int max_uses, apr_pool_t *p)
{
    memds_imap_cache_t *c = apr_pcalloc(p, sizeof(*c));
    apr_status_t rv;

    c->max_idle = max_idle > 0 ? max_idle : 1;
    c->max_uses = max_uses > 0 ? max_uses : 1;
    c->max_age = apr_time_from_sec(idle_secs);
    c->idle = apr_pcalloc(p, sizeof(*c->idle) * (apr_size_t)c->max_idle);
    if ((rv = apr_generate_random_bytes(c->salt, sizeof(c->salt)))
            != APR_SUCCESS
        || (rv = apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p))
               != APR_SUCCESS) {
        return rv;
    }
    *pc = c;
    return APR_SUCCESS;
}

/* Who the connection is logged in as: server, user, authzid and password
 * (salted digest: no password is kept). */
static void lease_key(const memds_imap_cache_t *c,
                      const memds_imap_config_t *cfg, char *out)
{
    apr_sha1_ctx_t ctx;
    unsigned char d[APR_SHA1_DIGESTSIZE];
    const char *parts[7];
    int i;

    parts[0] = cfg->url;
    parts[1] = cfg->user;
    parts[2] = cfg->authzid;
    parts[3] = cfg->password;
    parts[4] = cfg->bearer;
    /* and how it was secured: a connection made with one CA bundle or
     * without STARTTLS is no answer for settings that ask for another */
    parts[5] = cfg->ca_file;
    parts[6] = cfg->starttls ? "starttls" : NULL;
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, c->salt, sizeof(c->salt));
    for (i = 0; i < 7; ++i) {
        const char *s = parts[i] ? parts[i] : "";
        apr_sha1_update_binary(&ctx,
                               (const unsigned char *)(parts[i] ? "1" : "0"),
                               1);
        apr_sha1_update_binary(&ctx, (const unsigned char *)s, strlen(s) + 1);
    }
    apr_sha1_final(d, &ctx);
    for (i = 0; i < APR_SHA1_DIGESTSIZE; ++i) {
        apr_snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static void lease_close(memds_imap_lease_t *l)
{
    memds_imap_close(l->conn);
    apr_pool_destroy(l->pool);
}

/* A new connection logged in as cfg says, in a lease of its own. */
static apr_status_t lease_new(memds_imap_lease_t **pl,
                              memds_imap_conn_t **pconn, const char *key,
                              const memds_imap_config_t *cfg,
                              memds_imap_err_t *err)
{
    memds_imap_lease_t *l;
    apr_pool_t *lp;
    apr_status_t rv = apr_pool_create_unmanaged_ex(&lp, NULL, NULL);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    l = apr_pcalloc(lp, sizeof(*l));
    memcpy(l->key, key, sizeof(l->key));
    l->pool = lp;
    l->uses = 1;
    rv = memds_imap_connect(&l->conn, cfg, err, lp);
    if (rv != APR_SUCCESS) {
        /* the message lives in lp: keep it in err itself (a refused
         * login's text used to be read from the freed pool) */
        if (err && err->msg) {
            apr_cpystrn(err->buf, err->msg, sizeof(err->buf));
            err->msg = err->buf;
        }
        apr_pool_destroy(lp);
        return rv;
    }
    *pl = l;
    *pconn = l->conn;
    return APR_SUCCESS;
}

apr_status_t memds_imap_cache_login(memds_imap_cache_t *c,
                                    memds_imap_lease_t **pl,
                                    memds_imap_conn_t **pconn,
                                    const memds_imap_config_t *cfg,
                                    memds_imap_err_t *err)
{
    char key[2 * APR_SHA1_DIGESTSIZE + 1];

    lease_key(c, cfg, key);
    return lease_new(pl, pconn, key, cfg, err);
}

apr_status_t memds_imap_cache_get(memds_imap_cache_t *c,
                                  memds_imap_lease_t **pl,
                                  memds_imap_conn_t **pconn,
                                  const memds_imap_config_t *cfg,
                                  memds_imap_err_t *err)
{
    char key[2 * APR_SHA1_DIGESTSIZE + 1];
    memds_imap_lease_t *l = NULL, *stale[8];
    apr_time_t now = apr_time_now();
    int i, nstale = 0;

    lease_key(c, cfg, key);
    apr_thread_mutex_lock(c->lock);
    for (i = 0; i < c->max_idle; ++i) {
        memds_imap_lease_t *x = c->idle[i];
        if (x == NULL) {
            continue;
        }
        if (now - x->idle_since > c->max_age && nstale < 8) {
            stale[nstale++] = x; /* too old: closed below, outside the lock */
            c->idle[i] = NULL;
        }
        else if (l == NULL && strcmp(x->key, key) == 0) {
            l = x;
            c->idle[i] = NULL;
        }
    }
    apr_thread_mutex_unlock(c->lock);
    for (i = 0; i < nstale; ++i) {
        lease_close(stale[i]);
    }
    if (l) {
        /* proven alive (the server may have dropped it while idle): by
         * its silence (a close or BYE would have arrived), else a NOOP */
        if ((memds_imap_settle(l->conn, NULL) == APR_SUCCESS
             && memds_imap_quiet(l->conn))
            || memds_imap_noop(l->conn, NULL, NULL, err) == APR_SUCCESS) {
            l->uses++;
            *pl = l;
            *pconn = l->conn;
            return APR_SUCCESS;
        }
        lease_close(l);
    }
    return lease_new(pl, pconn, key, cfg, err);
}

void memds_imap_cache_put(memds_imap_cache_t *c, memds_imap_lease_t *l)
{
    memds_imap_err_t err;
    memds_imap_lease_t *evict = NULL;
    int i, slot = -1;

    if (l == NULL) {
        return;
    }
    /* Only a healthy connection with nothing selected is kept: the next
     * user must not see a stale mailbox state. */
    if (memds_imap_broken(l->conn) || l->uses >= c->max_uses
        || memds_imap_unselect_later(l->conn, &err) != APR_SUCCESS
        || memds_imap_broken(l->conn)) {
        lease_close(l);
        return;
    }
    l->idle_since = apr_time_now();
    apr_thread_mutex_lock(c->lock);
    for (i = 0; i < c->max_idle; ++i) {
        if (c->idle[i] == NULL) {
            slot = i;
            break;
        }
        if (slot < 0 || c->idle[i]->idle_since < c->idle[slot]->idle_since) {
            slot = i; /* full: the oldest idle one makes room */
        }
    }
    evict = c->idle[slot];
    c->idle[slot] = l;
    apr_thread_mutex_unlock(c->lock);
    if (evict) {
        lease_close(evict); /* the oldest idle one made room */
    }
}

void memds_imap_cache_stats(memds_imap_cache_t *c, int *pmax, int *pidle_secs,
                            int *pkept)
{
    int i, n = 0;

    apr_thread_mutex_lock(c->lock);
    for (i = 0; i < c->max_idle; ++i) {
        n += c->idle[i] != NULL;
    }
    apr_thread_mutex_unlock(c->lock);
    *pmax = c->max_idle;
    *pidle_secs = (int)apr_time_sec(c->max_age);
    *pkept = n;
}
