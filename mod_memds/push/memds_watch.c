/* memds_watch.c: the IMAP IDLE watcher (memds_watch.h). */
#include "push/memds_watch.h"
#include "store/memds_pushstore.h"
#include "store/memds_watchstore.h"

#include <apr_hash.h>
#include <apr_thread_mutex.h>
#include <apr_strings.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* New connections per round: a login refused by Dovecot takes ~2 s, so a
 * round is never held up for long by a batch of failing accounts. */
#define CONNECTS_PER_ROUND 4
#define RETRY_MAX_SECS 300

/* One watched account. */
typedef struct watched_t {
    apr_pool_t *pool; /* its own: destroyed when it is dropped */
    const memds_watch_src_t *src;
    const char *key, *account;
    memds_imap_conn_t *c;                   /* NULL while not connected */
    apr_int64_t known_validity, known_next; /* INBOX as last recorded */
    apr_uint32_t exists;
    apr_time_t retry_at, idle_at;
    int failures;
    int event;  /* new mail not yet recorded */
    int dirty;  /* known_* to record */
    int alive;  /* leased (lease round mark) */
    int failed; /* error to record */
    char error[256];
} watched_t;

struct memds_watch_t {
    apr_pool_t *pool;
    const char *node;
    apr_hash_t *all; /* "server\naccount" -> watched_t */
    apr_time_t next_lease;
    int pg_failing; /* the last PostgreSQL round failed (logged once) */
    apr_thread_mutex_t *lock; /* a round, or the stop at child exit */
    int stopped;
};

apr_status_t memds_watch_create(memds_watch_t **pw, const char *node,
                                apr_pool_t *p)
{
    memds_watch_t *w = apr_pcalloc(p, sizeof(*w));

    apr_pool_create(&w->pool, p);
    apr_pool_tag(w->pool, "memds_watch");
    w->node = apr_pstrdup(w->pool, node);
    w->all = apr_hash_make(w->pool);
    *pw = w;
    return apr_thread_mutex_create(&w->lock, APR_THREAD_MUTEX_DEFAULT, w->pool);
}

static void disconnect(watched_t *x)
{
    if (x->c) {
        memds_imap_close(x->c); /* DONE is not needed before LOGOUT's end */
        x->c = NULL;
    }
}

static void drop(memds_watch_t *w, watched_t *x)
{
    disconnect(x);
    apr_hash_set(w->all, x->key, APR_HASH_KEY_STRING, NULL);
    apr_pool_destroy(x->pool);
}

static watched_t *find(memds_watch_t *w, const memds_watch_src_t *src,
                       const char *account, apr_pool_t *tmp)
{
    return apr_hash_get(w->all,
                        apr_pstrcat(tmp, src->server, "\n", account, NULL),
                        APR_HASH_KEY_STRING);
}

static watched_t *add(memds_watch_t *w, const memds_watch_src_t *src,
                      const memds_watch_lease_t *l)
{
    apr_pool_t *p;
    watched_t *x;

    apr_pool_create(&p, w->pool);
    apr_pool_tag(p, "memds_watched");
    x = apr_pcalloc(p, sizeof(*x));
    x->pool = p;
    x->src = src;
    x->account = apr_pstrdup(p, l->account);
    x->key = apr_pstrcat(p, src->server, "\n", l->account, NULL);
    x->known_validity = l->uidvalidity;
    x->known_next = l->uidnext;
    apr_hash_set(w->all, x->key, APR_HASH_KEY_STRING, x);
    return x;
}

/* Give up, renew and take leases for every source, in one transaction. */
static apr_status_t lease_round(memds_watch_t *w, const memds_watch_cfg_t *cfg,
                                memds_store_t *st, apr_pool_t *tmp)
{
    apr_hash_index_t *hi;
    int remaining = cfg->max, s, i;

    for (hi = apr_hash_first(tmp, w->all); hi; hi = apr_hash_next(hi)) {
        ((watched_t *)apr_hash_this_val(hi))->alive = 0;
    }
    for (s = 0; s < cfg->sources->nelts; ++s) {
        const memds_watch_src_t *src = &APR_ARRAY_IDX(cfg->sources, s,
                                                      memds_watch_src_t);
        apr_array_header_t *held, *got;

        if (memds_watch_leases(st, &held, &got, src->server, w->node,
                               cfg->lease_ms, remaining > 0 ? remaining : 0)
            != APR_SUCCESS) {
            return APR_EGENERAL;
        }
        remaining -= held->nelts;
        for (i = 0; i < got->nelts; ++i) {
            const memds_watch_lease_t *l = &APR_ARRAY_IDX(got, i,
                                                          memds_watch_lease_t);
            watched_t *x = find(w, src, l->account, tmp);
            if (x == NULL) {
                add(w, src, l);
            }
        }
        for (i = 0; i < held->nelts; ++i) {
            watched_t *x = find(w, src, APR_ARRAY_IDX(held, i, const char *),
                                tmp);
            if (x) {
                x->alive = 1;
            }
        }
    }
    return APR_SUCCESS;
}

static apr_status_t on_resp(void *baton, const memds_imap_resp_t *r)
{
    watched_t *x = baton;

    if (r->type == MEMDS_IMAP_RESP_EXISTS) {
        if (r->number > x->exists) {
            x->event = 1;
        }
        x->exists = r->number;
    }
    else if (r->type == MEMDS_IMAP_RESP_EXPUNGE && x->exists > 0) {
        x->exists--;
    }
    else if (r->type == MEMDS_IMAP_RESP_VANISHED && !r->earlier) {
        apr_uint64_t k = memds_imap_set_count(r->uids);
        x->exists = k >= x->exists ? 0 : x->exists - (apr_uint32_t)k;
    }
    return APR_SUCCESS;
}

/* INBOX as the server has it now, against what was recorded: mail that
 * arrived while nobody watched is an event. */
static void look(watched_t *x, apr_uint32_t validity, apr_uint32_t next)
{
    if (x->known_next > 0
        && ((apr_int64_t)validity != x->known_validity
            || (apr_int64_t)next > x->known_next)) {
        x->event = 1;
    }
    if ((apr_int64_t)validity != x->known_validity
        || (apr_int64_t)next != x->known_next) {
        x->known_validity = validity;
        x->known_next = next;
        x->dirty = 1;
    }
}

static void fail_watch(watched_t *x, const memds_watch_cfg_t *cfg, int level,
                       const char *what, const memds_imap_err_t *err)
{
    char why[sizeof(x->error)];
    apr_time_t backoff;

    snprintf(why, sizeof(why), "%s: %s", what,
             err && err->msg ? err->msg : "failed");
    disconnect(x);
    ++x->failures;
    backoff = apr_time_from_sec(x->failures > 8 ? RETRY_MAX_SECS
                                                : (1 << (x->failures - 1)));
    if (backoff > apr_time_from_sec(RETRY_MAX_SECS)) {
        backoff = apr_time_from_sec(RETRY_MAX_SECS);
    }
    x->retry_at = apr_time_now() + backoff;
    if (strcmp(why, x->error) != 0) { /* logged and kept when it changes */
        memcpy(x->error, why, sizeof(why));
        x->failed = 1;
        memds_logf(cfg->log, level, APR_SUCCESS,
                   MEMDS_LOGNO(00613) "push: the IDLE watcher cannot watch "
                                      "INBOX of %s on %s (retried in %d s): "
                                      "%s",
                               x->account, x->src->server,
                               (int)apr_time_sec(backoff), why);
    }
}

static void connect_one(watched_t *x, const memds_watch_cfg_t *cfg)
{
    memds_imap_config_t c = x->src->imap;
    const memds_imap_mailbox_t *m = NULL;
    memds_imap_err_t err;

    /* the login: the account key without "realm:" */
    c.authzid = x->account;
    if (x->src->realm) {
        size_t n = strlen(x->src->realm);
        if (strncmp(x->account, x->src->realm, n) == 0
            && x->account[n] == ':') {
            c.authzid = x->account + n + 1;
        }
    }
    if (memds_imap_connect(&x->c, &c, &err, x->pool) != APR_SUCCESS) {
        x->c = NULL;
        fail_watch(x, cfg, MEMDS_LOG_WARNING, "login", &err);
        return;
    }
    if (memds_imap_select(x->c, "INBOX", MEMDS_IMAP_SEL_READONLY, NULL, NULL,
                          NULL, &m, &err)
        != APR_SUCCESS) {
        fail_watch(x, cfg, MEMDS_LOG_WARNING, "EXAMINE INBOX", &err);
        return;
    }
    x->exists = m->exists;
    look(x, m->uidvalidity, m->uidnext);
    if (memds_imap_idle_start(x->c, on_resp, x, &err) != APR_SUCCESS) {
        fail_watch(x, cfg, MEMDS_LOG_WARNING, "IDLE", &err);
        return;
    }
    x->idle_at = apr_time_now();
    x->failures = 0;
    if (x->error[0]) {
        x->error[0] = 0;
        x->failed = 1; /* cleared in the table */
    }
}

/* After new mail: UIDNEXT as it is now (DONE, STATUS, IDLE again). */
static void refresh(watched_t *x, const memds_watch_cfg_t *cfg, apr_pool_t *tmp)
{
    memds_imap_status_t *s = NULL;
    memds_imap_err_t err;

    if (memds_imap_idle_done(x->c, on_resp, x, &err) != APR_SUCCESS
        || memds_imap_status(x->c, "INBOX", "UIDNEXT UIDVALIDITY", &s, &err,
                             tmp)
               != APR_SUCCESS) {
        fail_watch(x, cfg, MEMDS_LOG_INFO, "IMAP connection lost", &err);
        x->retry_at = apr_time_now();
        return;
    }
    look(x, s->uidvalidity, s->uidnext);
    if (memds_imap_idle_start(x->c, on_resp, x, &err) != APR_SUCCESS) {
        fail_watch(x, cfg, MEMDS_LOG_INFO, "IDLE", &err);
        x->retry_at = apr_time_now();
        return;
    }
    x->idle_at = apr_time_now();
}

/* Wait up to wait_ms for data on the watched connections and read it. */
static void wait_data(memds_watch_t *w, const memds_watch_cfg_t *cfg,
                      int wait_ms, apr_pool_t *tmp)
{
    unsigned n = apr_hash_count(w->all), k = 0, i;
    struct pollfd *fds = apr_pcalloc(tmp, (n + 1) * sizeof(*fds));
    watched_t **xs = apr_pcalloc(tmp, (n + 1) * sizeof(*xs));
    apr_hash_index_t *hi;
    int timeout = wait_ms, rc;

    for (hi = apr_hash_first(tmp, w->all); hi; hi = apr_hash_next(hi)) {
        watched_t *x = apr_hash_this_val(hi);
        if (x->c == NULL || !memds_imap_idling(x->c)
            || memds_imap_socket(x->c) < 0) {
            continue;
        }
        if (memds_imap_buffered(x->c)) {
            timeout = 0;
        }
        fds[k].fd = memds_imap_socket(x->c);
        fds[k].events = POLLIN;
        xs[k++] = x;
    }
    if (k == 0) {
        if (wait_ms > 0) {
            apr_sleep(apr_time_from_msec(wait_ms));
        }
        return;
    }
    rc = poll(fds, k, timeout);
    if (rc < 0 && errno != EINTR) {
        return;
    }
    for (i = 0; i < k; ++i) {
        watched_t *x = xs[i];
        memds_imap_err_t err;

        if (fds[i].revents == 0 && !memds_imap_buffered(x->c)) {
            continue;
        }
        if (memds_imap_idle_read(x->c, on_resp, x, &err) != APR_SUCCESS) {
            fail_watch(x, cfg, MEMDS_LOG_INFO, "IMAP connection lost", &err);
            x->retry_at = apr_time_now() + apr_time_from_sec(1);
        }
    }
}

/* Record events, INBOX states and errors in one transaction. */
static void record(memds_watch_t *w, const memds_watch_cfg_t *cfg,
                   memds_pgpool_t *pg, apr_int64_t due_lease, apr_pool_t *tmp)
{
    apr_hash_index_t *hi;
    memds_pgconn_t *conn;
    memds_store_t st;
    const char *why = NULL;
    int todo = due_lease != 0, ok;

    for (hi = apr_hash_first(tmp, w->all); hi && !todo;
         hi = apr_hash_next(hi)) {
        const watched_t *x = apr_hash_this_val(hi);
        todo = x->event || x->dirty || x->failed;
    }
    if (!todo) {
        return;
    }
    if (memds_pgpool_acquire(&conn, pg, &why, tmp) != APR_SUCCESS) {
        goto fail;
    }
    memds_store_init(&st, conn, tmp);
    ok = memds_store_begin(&st) == APR_SUCCESS;
    if (ok && due_lease) {
        ok = lease_round(w, cfg, &st, tmp) == APR_SUCCESS;
    }
    for (hi = apr_hash_first(tmp, w->all); hi && ok; hi = apr_hash_next(hi)) {
        watched_t *x = apr_hash_this_val(hi);
        int n = 0;

        if (x->event) {
            ok = memds_push_event(&st, &n, x->account, "INBOX", cfg->delay_ms)
                 == APR_SUCCESS;
            if (ok) {
                memds_logf(cfg->log, MEMDS_LOG_DEBUG, APR_SUCCESS,
                           MEMDS_LOGNO(00612) "push: new mail in INBOX of %s "
                                              "seen by the IDLE watcher (%d "
                                              "notification%s made)",
                                       x->account, n, n == 1 ? "" : "s");
            }
        }
        if (ok && (x->event || x->dirty)) {
            ok = memds_watch_seen(&st, x->src->server, w->node, x->account,
                                  x->known_validity, x->known_next, x->event)
                 == APR_SUCCESS;
        }
        if (ok && x->failed) {
            ok = memds_watch_error(&st, x->src->server, w->node, x->account,
                                   x->error[0] ? x->error : NULL)
                 == APR_SUCCESS;
        }
    }
    ok = ok && memds_store_commit(&st) == APR_SUCCESS;
    if (!ok) {
        why = st.err;
        memds_store_rollback(&st);
    }
    memds_pgpool_release(pg, conn, !ok);
    if (!ok) {
        goto fail;
    }
    for (hi = apr_hash_first(tmp, w->all); hi; hi = apr_hash_next(hi)) {
        watched_t *x = apr_hash_this_val(hi);
        x->event = x->dirty = x->failed = 0;
        if (due_lease && !x->alive) {
            drop(w, x); /* (removing the current entry is allowed) */
        }
    }
    if (w->pg_failing) {
        w->pg_failing = 0;
        memds_logf(cfg->log, MEMDS_LOG_NOTICE, APR_SUCCESS,
                   MEMDS_LOGNO(00614) "push: the IDLE watcher reaches "
                                      "PostgreSQL again");
    }
    return;
fail:
    /* Events stay flagged and are recorded at the next round; leases not
     * renewed run out and other nodes may take them meanwhile. */
    if (!w->pg_failing) {
        w->pg_failing = 1;
        memds_logf(cfg->log, MEMDS_LOG_WARNING, APR_SUCCESS,
                   MEMDS_LOGNO(00615) "push: the IDLE watcher cannot reach "
                                      "PostgreSQL (retried): %s",
                               why ? why : "?");
    }
}

apr_status_t memds_watch_round(memds_watch_t *w, const memds_watch_cfg_t *cfg,
                               memds_pgpool_t *pg, int wait_ms, apr_pool_t *tmp)
{
    apr_time_t now;
    apr_hash_index_t *hi;
    int lease_due, connects = 0;

    apr_thread_mutex_lock(w->lock);
    if (w->stopped) {
        apr_thread_mutex_unlock(w->lock);
        return APR_SUCCESS;
    }
    now = apr_time_now();
    lease_due = now >= w->next_lease;
    if (lease_due) {
        w->next_lease = now + apr_time_from_msec(cfg->lease_ms / 4);
        record(w, cfg, pg, 1, tmp); /* leases first: who to watch */
    }
    for (hi = apr_hash_first(tmp, w->all); hi; hi = apr_hash_next(hi)) {
        watched_t *x = apr_hash_this_val(hi);
        if (x->c == NULL && x->retry_at <= now
            && connects < CONNECTS_PER_ROUND) {
            ++connects;
            connect_one(x, cfg);
        }
        else if (x->c && memds_imap_idling(x->c)
                 && now - x->idle_at
                        > apr_time_from_sec(cfg->idle_renew_secs)) {
            refresh(x, cfg, tmp); /* a long IDLE is ended and started again */
        }
    }
    wait_data(w, cfg, wait_ms, tmp);
    for (hi = apr_hash_first(tmp, w->all); hi; hi = apr_hash_next(hi)) {
        watched_t *x = apr_hash_this_val(hi);
        if (x->event && x->c) {
            refresh(x, cfg, tmp);
        }
    }
    record(w, cfg, pg, 0, tmp);
    apr_thread_mutex_unlock(w->lock);
    return APR_SUCCESS;
}

void memds_watch_stop(memds_watch_t *w, const memds_watch_cfg_t *cfg,
                      memds_pgpool_t *pg, apr_pool_t *tmp)
{
    apr_hash_index_t *hi;
    memds_pgconn_t *conn;
    memds_store_t st;
    const char *why = NULL;

    apr_thread_mutex_lock(w->lock);
    if (w->stopped) {
        apr_thread_mutex_unlock(w->lock);
        return;
    }
    w->stopped = 1;
    if (w->next_lease == 0) { /* never ran here: nothing held */
        apr_thread_mutex_unlock(w->lock);
        return;
    }
    record(w, cfg, pg, 0, tmp); /* what was seen last */
    for (hi = apr_hash_first(tmp, w->all); hi; hi = apr_hash_next(hi)) {
        drop(w, apr_hash_this_val(hi));
    }
    if (memds_pgpool_acquire(&conn, pg, &why, tmp) == APR_SUCCESS) {
        memds_store_init(&st, conn, tmp);
        memds_pgpool_release(pg, conn,
                             memds_watch_release(&st, w->node) != APR_SUCCESS);
    }
    apr_thread_mutex_unlock(w->lock);
}
