/**
 * @file memds_jobgate.h
 * The gate of a child's background jobs.
 *
 * mod_watchdog starts its threads in the child but in a pool of the
 * process, not in the child's pool: when the child exits, its pool (the
 * PostgreSQL pools, the IDLE watchers, the push job's LISTEN connection)
 * is destroyed while those threads may still be inside a job, and they
 * go on calling the jobs until the process pool goes at exit. Each job
 * therefore runs inside the gate (memds_jobgate_enter/leave), and a
 * pre-cleanup of the child's pool closes the gate: it waits for the jobs
 * inside, and every later call is refused. The gate itself lives in the
 * process pool, so it outlives the threads that ask it.
 */
#ifndef MEMDS_JOBGATE_H
#define MEMDS_JOBGATE_H

#include <apr_pools.h>

typedef struct memds_jobgate_t memds_jobgate_t;

/** A gate, open, allocated in keep (a pool that outlives every caller). */
apr_status_t memds_jobgate_create(memds_jobgate_t **g, apr_pool_t *keep);

/** Closes g when p is destroyed or cleared (a pre-cleanup: it runs before
 *  p's subpools and cleanups go). */
void memds_jobgate_close_with(memds_jobgate_t *g, apr_pool_t *p);

/** Closes g: no job enters afterwards; returns once the jobs inside have
 *  left. Closing again is harmless. */
void memds_jobgate_close(memds_jobgate_t *g);

/** 1: the caller may run its job and must call memds_jobgate_leave after;
 *  0: closed, the job must not run (a NULL gate is closed too). */
int memds_jobgate_enter(memds_jobgate_t *g);

/** The end of a job that entered. */
void memds_jobgate_leave(memds_jobgate_t *g);

#endif /* MEMDS_JOBGATE_H */
