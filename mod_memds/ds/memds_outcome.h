/**
 * @file memds_outcome.h
 * The one outcome map: a typed error (util/memds_err.h) as the backends
 * report it becomes a SyncML status (syncml/memds_codes.h), the text the
 * device gets, and the level of the log line that records it. Modelled on
 * mod_dav_svn's dav_svn__convert_err: the layers below say what happened,
 * this module alone says what it means for the protocol.
 *
 * The context is the scope of the failure: one item (an Add, Replace,
 * Delete or Get of one object, the default of the old wrappers), or the
 * session (logging in, opening a datastore, a whole Sync command). The
 * kinds that only make sense for an item (EXISTS, INVALID, REFUSED,
 * TOO_LARGE) are "command failed" (500) for a session, and the failures
 * the device caused are logged one level higher there, as the whole sync
 * stops.
 *
 *  | kind        | item | session | log (item / session) |
 *  |-------------|------|---------|----------------------|
 *  | NONE        | 200  | 200     | debug                |
 *  | TRANSIENT   | 503  | 503     | warning              |
 *  | TLS         | 503  | 503     | error                |
 *  | AUTH        | 401  | 401     | info                 |
 *  | NOT_FOUND   | 404  | 404     | info / warning       |
 *  | EXISTS      | 418  | 500     | info / warning       |
 *  | PERMISSION  | 425  | 425     | warning              |
 *  | REFUSED     | 403  | 500     | info / warning       |
 *  | INVALID     | 400  | 500     | info / warning       |
 *  | TOO_LARGE   | 413  | 500     | info / warning       |
 *  | QUOTA       | 510  | 510     | warning              |
 *  | FAILED      | 510  | 510     | warning              |
 *  | PROTOCOL    | 510  | 510     | error                |
 *  | STORAGE     | 510  | 510     | error                |
 *  | REJECTED    | 500  | 500     | error                |
 *  | CONFIG      | 500  | 500     | error                |
 *  | INTERNAL    | 500  | 500     | error                |
 */
#ifndef MEMDS_OUTCOME_H
#define MEMDS_OUTCOME_H

#include "util/memds_err.h"
#include "util/memds_util.h" /* memds_log_level_e */

/** The scope of a failure. */
typedef enum {
    MEMDS_OUTCOME_ITEM = 0, /**< one item of a Sync (Add, Replace, ...) */
    MEMDS_OUTCOME_SESSION   /**< the session or a whole datastore */
} memds_outcome_ctx_e;

/** What an error means for the protocol and the log. */
typedef struct memds_outcome_t {
    int status;              /**< SyncML status (MEMDS_ST_*) */
    const char *text;        /**< the error's sanitised text ("OK") */
    memds_log_level_e level; /**< level of the log line recording it */
} memds_outcome_t;

/** The outcome of e (NULL: success) in context ctx. */
memds_outcome_t memds_outcome_of(const memds_err_t *e, memds_outcome_ctx_e ctx);

/** The SyncML status alone of a kind in context ctx. */
int memds_outcome_status(memds_err_kind_e kind, memds_outcome_ctx_e ctx);

#endif /* MEMDS_OUTCOME_H */
