/**
 * @file memds_err.h
 * A typed error as the backends (IMAP, SMTP) report it to the layers above:
 * what kind of failure it is, and a fixed, sanitised reason. The backends
 * know nothing of SyncML; ds/memds_outcome.c maps a kind to a SyncML status
 * and a log level, in one place.
 */
#ifndef MEMDS_ERR_H
#define MEMDS_ERR_H

/** What kind of failure (the distinctions the outcome map needs). */
typedef enum {
    MEMDS_ERR_NONE = 0,   /**< success */
    MEMDS_ERR_TRANSIENT,  /**< may work later: server unreachable, timed
                                out, busy, a temporary refusal, an outcome
                                not confirmed */
    MEMDS_ERR_TLS,        /**< the secure connection failed (handshake,
                                certificate, STARTTLS) */
    MEMDS_ERR_AUTH,       /**< login refused */
    MEMDS_ERR_NOT_FOUND,  /**< the folder or message does not exist */
    MEMDS_ERR_EXISTS,     /**< it exists already */
    MEMDS_ERR_PERMISSION, /**< no permission for this operation */
    MEMDS_ERR_REFUSED,    /**< refused for good by the server's policy
                                (a sender or recipient not allowed) */
    MEMDS_ERR_INVALID,    /**< the data from the device is invalid (an
                                address, an empty message) */
    MEMDS_ERR_TOO_LARGE,  /**< too large for the server or a limit */
    MEMDS_ERR_QUOTA,      /**< the mailbox is over its quota */
    MEMDS_ERR_FAILED,     /**< the server failed the operation */
    MEMDS_ERR_PROTOCOL,   /**< the server's answer is malformed */
    MEMDS_ERR_REJECTED,   /**< the server rejected the command or the
                                message as such */
    MEMDS_ERR_STORAGE,    /**< our own storage failed */
    MEMDS_ERR_CONFIG,     /**< misconfiguration, or a server feature the
                                module needs is missing */
    MEMDS_ERR_INTERNAL    /**< anything else (a local error, a bug) */
} memds_err_kind_e;

/** Number of kinds (for tables indexed by kind). */
#define MEMDS_ERR_KINDS (MEMDS_ERR_INTERNAL + 1)

/** A typed error. */
typedef struct memds_err_t {
    memds_err_kind_e kind;
    /** A fixed reason (static storage), safe to show to a device and to
     *  log: never server text, addresses, user names or secrets. "OK" on
     *  success. The backend's own error struct has the details. */
    const char *text;
} memds_err_t;

/** A typed error of kind with the fixed text. */
static inline memds_err_t memds_err_make(memds_err_kind_e kind,
                                         const char *text)
{
    memds_err_t e;

    e.kind = kind;
    e.text = text;
    return e;
}

/** The kind's name for log lines ("transient", "auth", ...). */
const char *memds_err_kind_name(memds_err_kind_e kind);

#endif /* MEMDS_ERR_H */
