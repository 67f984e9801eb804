/* memds_err.c: names of the typed error kinds (memds_err.h). */
#include "util/memds_err.h"

const char *memds_err_kind_name(memds_err_kind_e kind)
{
    static const char *const names[MEMDS_ERR_KINDS] = {
        [MEMDS_ERR_NONE] = "none",
        [MEMDS_ERR_TRANSIENT] = "transient",
        [MEMDS_ERR_TLS] = "tls",
        [MEMDS_ERR_AUTH] = "auth",
        [MEMDS_ERR_NOT_FOUND] = "not-found",
        [MEMDS_ERR_EXISTS] = "exists",
        [MEMDS_ERR_PERMISSION] = "permission",
        [MEMDS_ERR_REFUSED] = "refused",
        [MEMDS_ERR_INVALID] = "invalid",
        [MEMDS_ERR_TOO_LARGE] = "too-large",
        [MEMDS_ERR_QUOTA] = "quota",
        [MEMDS_ERR_FAILED] = "failed",
        [MEMDS_ERR_PROTOCOL] = "protocol",
        [MEMDS_ERR_REJECTED] = "rejected",
        [MEMDS_ERR_STORAGE] = "storage",
        [MEMDS_ERR_CONFIG] = "config",
        [MEMDS_ERR_INTERNAL] = "internal"
    };

    return (unsigned)kind < MEMDS_ERR_KINDS ? names[kind] : "unknown";
}
