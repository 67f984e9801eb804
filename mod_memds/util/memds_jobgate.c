/* The gate of a child's background jobs (memds_jobgate.h). */
#include "memds_jobgate.h"

#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>

struct memds_jobgate_t {
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *left; /* signalled when the last job leaves */
    int inside;              /* jobs running */
    int closed;
};

apr_status_t memds_jobgate_create(memds_jobgate_t **pg, apr_pool_t *keep)
{
    memds_jobgate_t *g = apr_pcalloc(keep, sizeof(*g));
    apr_status_t rv;

    rv = apr_thread_mutex_create(&g->lock, APR_THREAD_MUTEX_DEFAULT, keep);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_cond_create(&g->left, keep);
    }
    *pg = rv == APR_SUCCESS ? g : NULL;
    return rv;
}

static apr_status_t close_cleanup(void *data)
{
    memds_jobgate_close(data);
    return APR_SUCCESS;
}

void memds_jobgate_close_with(memds_jobgate_t *g, apr_pool_t *p)
{
    apr_pool_pre_cleanup_register(p, g, close_cleanup);
}

void memds_jobgate_close(memds_jobgate_t *g)
{
    apr_thread_mutex_lock(g->lock);
    g->closed = 1;
    while (g->inside > 0) {
        apr_thread_cond_wait(g->left, g->lock);
    }
    apr_thread_mutex_unlock(g->lock);
}

int memds_jobgate_enter(memds_jobgate_t *g)
{
    int open;

    if (g == NULL) {
        return 0;
    }
    apr_thread_mutex_lock(g->lock);
    open = !g->closed;
    g->inside += open;
    apr_thread_mutex_unlock(g->lock);
    return open;
}

void memds_jobgate_leave(memds_jobgate_t *g)
{
    apr_thread_mutex_lock(g->lock);
    if (--g->inside == 0) {
        apr_thread_cond_broadcast(g->left);
    }
    apr_thread_mutex_unlock(g->lock);
}
