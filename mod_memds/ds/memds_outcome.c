/* memds_outcome.c: the one map from a typed error to a SyncML status and a
 * log level (memds_outcome.h), and the deprecated per-backend wrappers. */
#include "ds/memds_outcome.h"
#include "syncml/memds_codes.h"

/* One row per kind: the SyncML status (MEMDS_ST_*) for an item and for a
 * session, and the log level (MEMDS_LOG_*) for each. */
#define ROW(kind, item, session, level, session_level) \
    [MEMDS_ERR_##kind] = { MEMDS_ST_##item, MEMDS_ST_##session, \
                           MEMDS_LOG_##level, MEMDS_LOG_##session_level }

static const struct {
    int item, session;
    memds_log_level_e level, session_level;
} outcome_map[MEMDS_ERR_KINDS] = {
    /*  kind        item                 session              log: item, session */
    ROW(NONE, OK, OK, DEBUG, DEBUG),
    ROW(TRANSIENT, SERVICE_UNAVAILABLE, SERVICE_UNAVAILABLE, WARNING, WARNING),
    ROW(TLS, SERVICE_UNAVAILABLE, SERVICE_UNAVAILABLE, ERR, ERR),
    ROW(AUTH, INVALID_CREDENTIALS, INVALID_CREDENTIALS, INFO, INFO),
    ROW(NOT_FOUND, NOT_FOUND, NOT_FOUND, INFO, WARNING),
    ROW(EXISTS, ALREADY_EXISTS, COMMAND_FAILED, INFO, WARNING),
    ROW(PERMISSION, PERMISSION_DENIED, PERMISSION_DENIED, WARNING, WARNING),
    ROW(REFUSED, FORBIDDEN, COMMAND_FAILED, INFO, WARNING),
    ROW(INVALID, BAD_REQUEST, COMMAND_FAILED, INFO, WARNING),
    ROW(TOO_LARGE, ENTITY_TOO_LARGE, COMMAND_FAILED, INFO, WARNING),
    ROW(QUOTA, DATASTORE_FAILURE, DATASTORE_FAILURE, WARNING, WARNING),
    ROW(FAILED, DATASTORE_FAILURE, DATASTORE_FAILURE, WARNING, WARNING),
    ROW(PROTOCOL, DATASTORE_FAILURE, DATASTORE_FAILURE, ERR, ERR),
    ROW(REJECTED, COMMAND_FAILED, COMMAND_FAILED, ERR, ERR),
    ROW(STORAGE, DATASTORE_FAILURE, DATASTORE_FAILURE, ERR, ERR),
    ROW(CONFIG, COMMAND_FAILED, COMMAND_FAILED, ERR, ERR),
    ROW(INTERNAL, COMMAND_FAILED, COMMAND_FAILED, ERR, ERR),
};

#undef ROW

int memds_outcome_status(memds_err_kind_e kind, memds_outcome_ctx_e ctx)
{
    if ((unsigned)kind >= MEMDS_ERR_KINDS) {
        kind = MEMDS_ERR_INTERNAL;
    }
    return ctx == MEMDS_OUTCOME_SESSION ? outcome_map[kind].session
                                        : outcome_map[kind].item;
}

memds_outcome_t memds_outcome_of(const memds_err_t *e, memds_outcome_ctx_e ctx)
{
    memds_outcome_t o;
    memds_err_kind_e kind = e ? e->kind : MEMDS_ERR_NONE;

    if ((unsigned)kind >= MEMDS_ERR_KINDS) {
        kind = MEMDS_ERR_INTERNAL;
    }
    o.status = memds_outcome_status(kind, ctx);
    o.level = ctx == MEMDS_OUTCOME_SESSION ? outcome_map[kind].session_level
                                           : outcome_map[kind].level;
    o.text = e && e->text             ? e->text
             : kind == MEMDS_ERR_NONE ? "OK"
                                      : memds_err_kind_name(kind);
    return o;
}
