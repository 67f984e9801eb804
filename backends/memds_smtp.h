/**
 * @file memds_smtp.h
 * SMTP submission of the mail a device puts into its Outbox (DESIGN.md
 * decisions 3 and 5), through libcurl's own SMTP support: one call is one
 * connection and one mail transaction (EHLO, [STARTTLS], [AUTH], MAIL FROM,
 * RCPT TO..., DATA, the message, the end of data, QUIT).
 *
 * Exactly-once sending (decision 3) rests on one callback: the caller's
 * hook runs right before the end of the message data leaves for the server
 * (libcurl writes the terminating CRLF.CRLF only after the hook returned).
 * Until then the server cannot have accepted the mail, so a failure before
 * the hook is always safe to retry; the caller commits "submitting" in its
 * outbox ledger inside the hook, and a hook failure aborts the transaction
 * before the end of data (the server discards what it got). After the hook
 * (err->data_sent) the mail may have been accepted even when the call
 * fails, and err->in_doubt says when no final reply settled the question.
 *
 * Threads: all state is per call (from the pool given) and the libcurl
 * handle is made and cleaned up inside the call, on every path. The process
 * must have set up libcurl once before (memds_imap_global_init(), which is
 * reference-counted and also covers this file; curl_global_init is not
 * thread-safe and is never called here).
 * Secrets: the password goes to libcurl only; it never appears in error
 * texts or log lines (libcurl's error text is scrubbed of it).
 * Logging: debug lines only (progress and the server's final reply lines,
 * "smtp: S: 250 2.0.0 Ok: queued as ..."); failures are reported through
 * memds_smtp_err_t for the caller to log.
 */
#ifndef MEMDS_SMTP_H
#define MEMDS_SMTP_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "util/memds_util.h"
#include "util/memds_err.h"
#include "util/memds_stats.h"

/** Longest address accepted for MAIL FROM / RCPT TO, in bytes. */
#define MEMDS_SMTP_MAX_ADDR 512

/** How to reach the submission server. Zero means the default. */
typedef struct memds_smtp_config_t {
    /** smtp://host[:port] or smtps://host[:port] (implicit TLS), nothing
     *  else: no credentials, path, query or fragment. On smtp:// STARTTLS
     *  is used whenever the server offers it (a certificate that fails
     *  verification is then an error, not a reason to fall back); see
     *  starttls and allow_plain_auth for when it is required. */
    const char *url;
    /** smtp://: require STARTTLS (E_TLS when the server does not offer it). */
    int starttls;
    /** SMTP AUTH login name; NULL: no AUTH. With a user, smtp:// requires
     *  STARTTLS (unless allow_plain_auth), and a server that offers no AUTH
     *  at all fails the send with E_CONFIG before any data is sent (libcurl
     *  itself would silently carry on unauthenticated). */
    const char *user;
    const char *password; /**< never logged */
    /** Submit on behalf of this user (SASL PLAIN authzid; forces
     *  AUTH=PLAIN, as for the IMAP master user). NULL: none. */
    const char *authzid;
    /** "PLAIN", "LOGIN", ... or NULL for libcurl's choice. */
    const char *mech;
    /** Allow AUTH on smtp:// without TLS (loopback test servers only). */
    int allow_plain_auth;
    /** EHLO name (a host name or an address literal "[192.0.2.1]"); NULL:
     *  libcurl's default (this machine's host name). */
    const char *helo;
    long connect_timeout_ms; /**< name lookup, TCP connect and TLS
                                   handshake (CURLOPT_CONNECTTIMEOUT_MS);
                                   default 30 s */
    /** Longest wait for a server reply (rounded up to whole seconds:
     *  libcurl 7.88 has no finer setting), and the longest time the upload
     *  may stall; default 120 s. Note RFC 5321 4.5.3.2 suggests waiting up
     *  to 10 minutes for the reply to the end of data: a shorter wait makes
     *  more outcomes in_doubt. */
    long io_timeout_ms;
    /** Opt in to libcurl's CURLOPT_MAIL_RCPT_ALLLOWFAILS (three L's up to
     *  8.1, CURLOPT_MAIL_RCPT_ALLOWFAILS from 8.2): the mail then goes to
     *  the recipients the server accepted, and the send fails only when it
     *  refuses all of them. Off by default, so that any refused recipient
     *  fails the whole send and the device gets a clear status for the
     *  item instead of a partial delivery it cannot see: libcurl 7.88 does
     *  not say which recipients were refused, so with this option the user
     *  never learns that some of them got nothing. */
    int allow_rcpt_fails;
    int tls_no_verify;         /**< tests only: accept any certificate */
    const char *ca_file;       /**< CA bundle for TLS, NULL for the system's */
    const memds_logger_t *log; /**< debug lines; NULL: none */
    /** Latency of each submission that reached the network (connect to
     *  QUIT; a failure counts as an error), util/memds_stats.h; NULL: not
     *  measured. */
    memds_stats_t *stats;
} memds_smtp_config_t;

/** What went wrong (or MEMDS_SMTP_E_NONE). */
typedef enum {
    MEMDS_SMTP_E_NONE = 0,
    MEMDS_SMTP_E_CONNECT, /**< cannot resolve / connect, greeting or EHLO
                                refused, connection lost */
    MEMDS_SMTP_E_TLS,     /**< TLS handshake, certificate, or STARTTLS
                                required but not offered / refused */
    MEMDS_SMTP_E_AUTH,    /**< AUTH refused (smtp_code 535, 454, ...) */
    MEMDS_SMTP_E_SENDER,  /**< MAIL FROM refused */
    MEMDS_SMTP_E_RCPT,    /**< a RCPT TO refused (or, with allow_rcpt_fails,
                                all of them) */
    MEMDS_SMTP_E_DATA,    /**< DATA refused, or the message refused at
                                or after the end of data (data_sent tells) */
    MEMDS_SMTP_E_TIMEOUT, /**< no reply or no progress within io_timeout_ms,
                                or no connection within connect_timeout_ms */
    MEMDS_SMTP_E_ARG,     /**< invalid sender, recipient or message (the
                                caller's input; nothing was sent) */
    MEMDS_SMTP_E_CONFIG,  /**< invalid configuration (URL, EHLO name,
                                mechanism), a libcurl without SMTP, or
                                credentials configured for a server that
                                offers no AUTH */
    MEMDS_SMTP_E_HOOK,    /**< the before-end hook failed: aborted before
                                the end of data, the server discards it */
    MEMDS_SMTP_E_OTHER    /**< anything else (out of memory, ...) */
} memds_smtp_ekind_e;

/** Details of a send, filled on success too. */
typedef struct memds_smtp_err_t {
    memds_smtp_ekind_e kind; /**< E_NONE on success */
    /** The server's last reply code (CURLINFO_RESPONSE_CODE): 250 on
     *  success, the refusal (550, 451, ...) on failure, 0 if none. */
    int smtp_code;
    /** The RFC 3463 enhanced status code of that reply ("5.1.1"), or NULL. */
    const char *enhanced;
    /** The server's last final reply line (not QUIT's), printable ASCII,
     *  at most about 300 bytes; e.g. "250 2.0.0 Ok: queued as 93F1C512009"
     *  for the ledger. NULL if none. Server text: for logs and the ledger,
     *  never for the device. */
    const char *reply;
    /** 1 when sending this same message again cannot succeed: a 5xx reply
     *  to MAIL, RCPT (not 552, which RFC 5321 4.5.3.1.10 says to treat as
     *  temporary there), DATA or the end of data; or E_ARG. 0 when a later
     *  retry may succeed: 4xx, network, timeout, TLS, AUTH, configuration,
     *  hook failures. */
    int permanent;
    /** 1 when the hook ran and returned success, i.e. the end of data was
     *  (possibly) sent: the server may have accepted the mail. Never retry
     *  such a send without reconciliation (DESIGN.md decision 3). */
    int data_sent;
    /** 1 when data_sent, the call failed, and no reply to the end of data
     *  arrived (timeout, connection lost): the outcome is unknown. When
     *  data_sent and not in_doubt, a failure is a definite refusal. */
    int in_doubt;
    /** Detail for the log: what failed, libcurl's text, the server's
     *  reply. Never contains the password. From the call's pool. */
    const char *msg;
    int curl_code; /**< CURLcode of the transfer, 0 if none */
} memds_smtp_err_t;

/**
 * Called once, right before the end of the message data is handed to the
 * server (after all data went out, before libcurl writes the final
 * CRLF.CRLF): the caller commits "submitting" in its ledger here. It is
 * not called when the transaction fails earlier. A non-success return
 * aborts the transaction before the end of data (the connection is dropped
 * in DATA, so the server discards the message) and memds_smtp_send returns
 * that status with E_HOOK. Keep it short: the server and the I/O timeout
 * wait meanwhile.
 */
typedef apr_status_t memds_smtp_before_end_cb(void *baton);

/**
 * Submit one message in one SMTP transaction.
 *
 * @param cfg     server, TLS and credentials (see memds_smtp_config_t)
 * @param from    envelope sender (MAIL FROM), an addr-spec such as
 *                "alice@example.test": no angle brackets, no display name
 * @param rcpts   nrcpts (>= 1) envelope recipients (RCPT TO), addr-specs
 *                likewise. Addresses must hold an '@' with text on both
 *                sides, at most MEMDS_SMTP_MAX_ADDR bytes, and no control
 *                characters, spaces, '<' or '>' (E_ARG otherwise: nothing
 *                can be smuggled into the SMTP commands). UTF-8 is passed
 *                on (libcurl asks for SMTPUTF8 when the server offers it).
 *                Never list Bcc recipients in the message, only here.
 * @param data    the message (len > 0 bytes, may contain NUL), CRLF line
 *                ends, not dot-stuffed, preferably ending in CRLF: libcurl
 *                dot-stuffs it, and appends CRLF.CRLF (or .CRLF when the
 *                data ends in CRLF). No CURLOPT_INFILESIZE is given: libcurl
 *                7.88 compares the dot-stuffed byte count with it, which can
 *                end the upload early, and would then skip the final read
 *                the hook hangs on; so no SIZE= is declared with MAIL FROM
 *                and a too-large message is refused after its data (552).
 *                libcurl 7.88 declares no BODY=8BITMIME either.
 * @param hook    memds_smtp_before_end_cb, or NULL
 * @param err     filled on success and failure (may be NULL)
 * @param p       pool for everything the call allocates (err strings)
 * @return APR_SUCCESS when the server accepted the message for every
 *         recipient (for the accepted ones with allow_rcpt_fails);
 *         APR_EINVAL for E_ARG and E_CONFIG, APR_TIMEUP for E_TIMEOUT,
 *         the hook's status for E_HOOK, APR_EGENERAL otherwise.
 */
apr_status_t memds_smtp_send(const memds_smtp_config_t *cfg, const char *from,
                             const char *const *rcpts, int nrcpts,
                             const char *data, apr_size_t len,
                             memds_smtp_before_end_cb *hook, void *baton,
                             memds_smtp_err_t *err, apr_pool_t *p);

/**
 * A send's result as a typed error (util/memds_err.h), in one place. The
 * first matching row wins ("NNN" is err->smtp_code, "x.y.z" the enhanced
 * code):
 *
 *  | result                                        | kind      |
 *  |-----------------------------------------------|-----------|
 *  | err NULL, E_NONE                              | NONE      |
 *  | in_doubt (end of data sent, no final reply)   | TRANSIENT |
 *  | E_HOOK (our ledger failed; nothing was sent)  | STORAGE   |
 *  | E_ARG (bad address or empty message)          | INVALID   |
 *  | E_CONFIG                                      | CONFIG    |
 *  | E_CONNECT, E_TIMEOUT                          | TRANSIENT |
 *  | E_TLS                                         | TLS       |
 *  | E_AUTH with 4xx                               | TRANSIENT |
 *  | E_AUTH otherwise                              | AUTH      |
 *  | SENDER/RCPT/DATA: 4xx, or 552 to RCPT         | TRANSIENT |
 *  | SENDER/DATA: 552; any of them: 5.3.4          | TOO_LARGE |
 *  | SENDER 5xx                                    | REFUSED   |
 *  | RCPT 5xx with 5.7.x (policy, relay denied)    | REFUSED   |
 *  | RCPT 5xx otherwise (unknown user, syntax)     | INVALID   |
 *  | DATA 5xx with 5.7.x (policy)                  | REFUSED   |
 *  | DATA 5xx otherwise (content refused)          | REJECTED  |
 *  | anything else (E_OTHER)                       | INTERNAL  |
 *
 * The texts never carry server text or addresses. ds/memds_outcome.h maps
 * the result to a SyncML status (TRANSIENT and TLS: 503, try later).
 */
memds_err_t memds_smtp_err_of(const memds_smtp_err_t *err);

#endif /* MEMDS_SMTP_H */
