/**
 * @file memds_imap.h
 * The IMAP client layer of the email datastore (DESIGN.md decision 5).
 *
 * libcurl connects, does STARTTLS or implicit TLS and logs in
 * (CURLOPT_CONNECT_ONLY); from then on our own strict command/response layer
 * talks IMAP4rev1 over curl_easy_send/curl_easy_recv: tagged commands,
 * literals in both directions, CONDSTORE/QRESYNC, SPECIAL-USE, MOVE/UIDPLUS,
 * ESEARCH, LIST-STATUS. Bodies are only ever fetched with BODY.PEEK /
 * BINARY.PEEK, so syncing never sets \\Seen.
 *
 * Three parts, each in its own file (memds_imap_int.h is what they share):
 *  - the response parser (memds_imap_parse_response, memds_imap_parse.c),
 *    pure and separate from the I/O so it can be unit-tested and fuzzed;
 *  - a connection (memds_imap_conn_t, memds_imap_conn.c): transport, the
 *    response framer with its literals, command execution, connect (TLS,
 *    login; libcurl options shared with SMTP in memds_curl.c);
 *  - one method per command (memds_imap_cmd.c).
 * A failure is a memds_imap_err_t (what went wrong, the response code);
 * memds_imap_cache.c keeps logged-in connections between requests.
 *
 * Memory: everything a call returns is allocated from the pool it is given,
 * except what is passed to callbacks (valid only during the call: copy what
 * you keep) and error details (from the connection's pool).
 * Threads: a connection is used by one thread at a time; the module keeps no
 * global mutable state. The process must call memds_imap_global_init() once
 * before the first connect (the glue in post_config, tools in main), since
 * libcurl's global setup is not thread-safe and curl.h stays in backends/.
 * Secrets: passwords and tokens are handed to libcurl only; they never appear
 * in error texts or log lines, and the connection forgets them after login.
 */
#ifndef MEMDS_IMAP_H
#define MEMDS_IMAP_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "util/memds_util.h"
#include "util/memds_err.h"
#include "util/memds_stats.h"

/* ================================================================ limits */

/** Default cap on one response (lines plus the literals held in memory). */
#define MEMDS_IMAP_DEFAULT_MAX_RESPONSE (64 * 1024 * 1024)
/** Nesting of parenthesised lists in a response (body extensions, ...). */
#define MEMDS_IMAP_MAX_DEPTH 32
/** Nesting of body parts in a BODYSTRUCTURE (multipart and message/rfc822). */
#define MEMDS_IMAP_MAX_BODY_DEPTH 20

/* ================================================================ sets */

/** A range lo:hi of UIDs or sequence numbers, lo <= hi. */
typedef struct memds_imap_range_t {
    apr_uint32_t lo, hi;
} memds_imap_range_t;

/** A set of UIDs (or sequence numbers) as ranges, in the order sent. */
typedef struct memds_imap_set_t {
    int nranges;
    memds_imap_range_t *ranges;
} memds_imap_set_t;

/**
 * Parse a set such as "1:3,7,9:8" (no "*": server responses never use it).
 * Reversed ranges are normalised. APR_EINVAL on anything else.
 */
apr_status_t memds_imap_set_parse(memds_imap_set_t **pset, const char *s,
                                  apr_size_t len, apr_pool_t *p);
/** The set in IMAP syntax ("" for an empty set). */
const char *memds_imap_set_str(const memds_imap_set_t *set, apr_pool_t *p);
/** Number of members (ranges are not merged: overlaps count twice). */
apr_uint64_t memds_imap_set_count(const memds_imap_set_t *set);
/** 1 when n is a member. */
int memds_imap_set_contains(const memds_imap_set_t *set, apr_uint32_t n);
/** The idx-th member (0-based, in the order of the ranges), or 0. */
apr_uint32_t memds_imap_set_nth(const memds_imap_set_t *set, apr_uint64_t idx);
/** A compact set string ("1:3,7") from n UIDs (any order, duplicates ok);
 *  "" when n is 0. */
const char *memds_imap_set_from_uids(const apr_uint32_t *uids, int n,
                                     apr_pool_t *p);

/* ============================================================ names */

/**
 * Decode a modified UTF-7 mailbox name (RFC 3501 5.1.3) into UTF-8.
 * APR_EINVAL when it is not valid modified UTF-7 (bad base64, unpaired
 * surrogates, encoded printable ASCII, 8-bit or control characters).
 */
apr_status_t memds_imap_mutf7_decode(const char **putf8, const char *s,
                                     apr_size_t len, apr_pool_t *p);
/** Encode a UTF-8 name in modified UTF-7; APR_EINVAL on invalid UTF-8. */
apr_status_t memds_imap_mutf7_encode(const char **pmutf7, const char *utf8,
                                     apr_pool_t *p);

/* ========================================================= responses */

/** What kind of response a line is. */
typedef enum {
    MEMDS_IMAP_RESP_TAGGED = 1, /**< tag OK/NO/BAD [code] text */
    MEMDS_IMAP_RESP_CONT,       /**< "+" continuation request */
    MEMDS_IMAP_RESP_COND,       /**< * OK/NO/BAD/BYE/PREAUTH [code] text */
    MEMDS_IMAP_RESP_CAPABILITY, /**< * CAPABILITY: list */
    MEMDS_IMAP_RESP_ENABLED,    /**< * ENABLED: list */
    MEMDS_IMAP_RESP_FLAGS,      /**< * FLAGS: list */
    MEMDS_IMAP_RESP_LIST,       /**< * LIST or * LSUB: mbox */
    MEMDS_IMAP_RESP_STATUS,     /**< * STATUS: status */
    MEMDS_IMAP_RESP_SEARCH,     /**< * SEARCH: search */
    MEMDS_IMAP_RESP_ESEARCH,    /**< * ESEARCH: search */
    MEMDS_IMAP_RESP_EXISTS,     /**< * n EXISTS: number */
    MEMDS_IMAP_RESP_RECENT,     /**< * n RECENT: number */
    MEMDS_IMAP_RESP_EXPUNGE,    /**< * n EXPUNGE: number */
    MEMDS_IMAP_RESP_FETCH,      /**< * n FETCH (...): fetch */
    MEMDS_IMAP_RESP_VANISHED, /**< * VANISHED [(EARLIER)] set: uids, earlier */
    MEMDS_IMAP_RESP_OTHER     /**< another well-formed untagged response
                                     (NAMESPACE, ID, ...): keyword, text */
} memds_imap_resp_e;

/** Condition of a status response. */
typedef enum {
    MEMDS_IMAP_OK = 1,
    MEMDS_IMAP_NO,
    MEMDS_IMAP_BAD,
    MEMDS_IMAP_BYE,
    MEMDS_IMAP_PREAUTH
} memds_imap_cond_e;

/** Response codes ("[...]" in a status response) that are decoded. */
typedef enum {
    MEMDS_IMAP_CODE_NONE = 0, /**< no response code */
    MEMDS_IMAP_CODE_OTHER,    /**< a code not listed here: name, arg */
    MEMDS_IMAP_CODE_ALERT,
    MEMDS_IMAP_CODE_PARSE,
    MEMDS_IMAP_CODE_BADCHARSET,
    MEMDS_IMAP_CODE_CAPABILITY,
    MEMDS_IMAP_CODE_PERMANENTFLAGS,
    MEMDS_IMAP_CODE_READ_ONLY,
    MEMDS_IMAP_CODE_READ_WRITE,
    MEMDS_IMAP_CODE_TRYCREATE,
    MEMDS_IMAP_CODE_UIDNEXT,
    MEMDS_IMAP_CODE_UIDVALIDITY,
    MEMDS_IMAP_CODE_UNSEEN,
    /* RFC 4315 UIDPLUS */
    MEMDS_IMAP_CODE_APPENDUID,
    MEMDS_IMAP_CODE_COPYUID,
    MEMDS_IMAP_CODE_UIDNOTSTICKY,
    /* RFC 7162 CONDSTORE/QRESYNC */
    MEMDS_IMAP_CODE_HIGHESTMODSEQ,
    MEMDS_IMAP_CODE_NOMODSEQ,
    MEMDS_IMAP_CODE_MODIFIED,
    MEMDS_IMAP_CODE_CLOSED,
    /* RFC 5530 */
    MEMDS_IMAP_CODE_UNAVAILABLE,
    MEMDS_IMAP_CODE_AUTHENTICATIONFAILED,
    MEMDS_IMAP_CODE_AUTHORIZATIONFAILED,
    MEMDS_IMAP_CODE_EXPIRED,
    MEMDS_IMAP_CODE_PRIVACYREQUIRED,
    MEMDS_IMAP_CODE_CONTACTADMIN,
    MEMDS_IMAP_CODE_NOPERM,
    MEMDS_IMAP_CODE_INUSE,
    MEMDS_IMAP_CODE_EXPUNGEISSUED,
    MEMDS_IMAP_CODE_CORRUPTION,
    MEMDS_IMAP_CODE_SERVERBUG,
    MEMDS_IMAP_CODE_CLIENTBUG,
    MEMDS_IMAP_CODE_CANNOT,
    MEMDS_IMAP_CODE_LIMIT,
    MEMDS_IMAP_CODE_OVERQUOTA,
    MEMDS_IMAP_CODE_ALREADYEXISTS,
    MEMDS_IMAP_CODE_NONEXISTENT
} memds_imap_code_e;

/** A decoded response code. Fields not used by the code are 0/NULL. */
typedef struct memds_imap_code_t {
    memds_imap_code_e code;
    const char *name;         /**< the code as sent ("APPENDUID"), or NULL */
    const char *arg;          /**< OTHER: its argument text, "" if none */
    apr_uint32_t uidvalidity; /**< UIDVALIDITY, APPENDUID, COPYUID */
    apr_uint32_t number;      /**< UIDNEXT, UNSEEN; APPENDUID: first UID */
    memds_imap_set_t *uids;   /**< APPENDUID UIDs, COPYUID source, MODIFIED */
    memds_imap_set_t *uids2;  /**< COPYUID destination (same size as uids) */
    apr_uint64_t modseq;      /**< HIGHESTMODSEQ */
    apr_array_header_t *list; /**< CAPABILITY, PERMANENTFLAGS, BADCHARSET
                                    (const char *) */
} memds_imap_code_t;

/** Mailbox attributes of a LIST response. */
#define MEMDS_IMAP_MBX_NOINFERIORS 0x0001
#define MEMDS_IMAP_MBX_NOSELECT 0x0002
#define MEMDS_IMAP_MBX_MARKED 0x0004
#define MEMDS_IMAP_MBX_UNMARKED 0x0008
#define MEMDS_IMAP_MBX_HASCHILDREN 0x0010
#define MEMDS_IMAP_MBX_HASNOCHILDREN 0x0020
#define MEMDS_IMAP_MBX_NONEXISTENT 0x0040
#define MEMDS_IMAP_MBX_SUBSCRIBED 0x0080
#define MEMDS_IMAP_MBX_REMOTE 0x0100
/* RFC 6154 SPECIAL-USE */
#define MEMDS_IMAP_MBX_ALL 0x1000
#define MEMDS_IMAP_MBX_ARCHIVE 0x2000
#define MEMDS_IMAP_MBX_DRAFTS 0x4000
#define MEMDS_IMAP_MBX_FLAGGED 0x8000
#define MEMDS_IMAP_MBX_JUNK 0x10000
#define MEMDS_IMAP_MBX_SENT 0x20000
#define MEMDS_IMAP_MBX_TRASH 0x40000

/** Folder role from SPECIAL-USE (and INBOX by name). */
typedef enum {
    MEMDS_IMAP_ROLE_NONE = 0,
    MEMDS_IMAP_ROLE_INBOX,
    MEMDS_IMAP_ROLE_DRAFTS,
    MEMDS_IMAP_ROLE_SENT,
    MEMDS_IMAP_ROLE_TRASH,
    MEMDS_IMAP_ROLE_JUNK,
    MEMDS_IMAP_ROLE_ARCHIVE,
    MEMDS_IMAP_ROLE_ALL,
    MEMDS_IMAP_ROLE_FLAGGED
} memds_imap_role_e;

/** STATUS items present (memds_imap_status_t.have). */
#define MEMDS_IMAP_ST_MESSAGES 0x01
#define MEMDS_IMAP_ST_RECENT 0x02
#define MEMDS_IMAP_ST_UIDNEXT 0x04
#define MEMDS_IMAP_ST_UIDVALIDITY 0x08
#define MEMDS_IMAP_ST_UNSEEN 0x10
#define MEMDS_IMAP_ST_HIGHESTMODSEQ 0x20
#define MEMDS_IMAP_ST_SIZE 0x40
#define MEMDS_IMAP_ST_XGUID 0x80

/** A STATUS response. */
typedef struct memds_imap_status_t {
    const char *mailbox; /**< as sent (modified UTF-7; "INBOX" normalised) */
    unsigned have;       /**< MEMDS_IMAP_ST_* */
    apr_uint32_t messages, recent, uidnext, uidvalidity, unseen;
    apr_uint64_t highestmodseq, size;
    const char *xguid; /**< Dovecot's mailbox GUID (X-GUID) */
} memds_imap_status_t;

/** A LIST (or LSUB) response. */
typedef struct memds_imap_list_t {
    const char *name;      /**< as sent (modified UTF-7); INBOX in any
                                    case is normalised to "INBOX" */
    const char *name_utf8; /**< decoded, NULL when not valid mUTF-7 */
    char delim;            /**< hierarchy delimiter, 0 for NIL */
    unsigned attrs;        /**< MEMDS_IMAP_MBX_* */
    apr_array_header_t
        *attr_names; /**< every attribute as sent (const char *) */
    memds_imap_role_e role;
    memds_imap_status_t *status; /**< filled by memds_imap_list when asked */
} memds_imap_list_t;

/** SEARCH and ESEARCH results. */
#define MEMDS_IMAP_SR_MIN 0x01
#define MEMDS_IMAP_SR_MAX 0x02
#define MEMDS_IMAP_SR_COUNT 0x04
#define MEMDS_IMAP_SR_ALL 0x08
#define MEMDS_IMAP_SR_MODSEQ 0x10
typedef struct memds_imap_search_t {
    const char *tag;       /**< ESEARCH (TAG "x"), or NULL */
    int uid;               /**< ESEARCH: the UID indicator was present */
    unsigned have;         /**< MEMDS_IMAP_SR_* */
    memds_imap_set_t *all; /**< the matches (never NULL; maybe empty) */
    apr_uint32_t min, max, count;
    apr_uint64_t modseq;
} memds_imap_search_t;

/** An address of an ENVELOPE. RFC 2822 groups appear as a start
 *  (mailbox = group name, host NULL) and an end (mailbox and host NULL). */
typedef struct memds_imap_addr_t {
    const char *name, *adl, *mailbox, *host; /**< NULL for NIL */
} memds_imap_addr_t;

/** An ENVELOPE. Strings are NULL for NIL (decoding RFC 2047 words is the
 *  caller's job); address lists are NULL for NIL, else arrays of
 *  memds_imap_addr_t. */
typedef struct memds_imap_envelope_t {
    const char *date, *subject;
    apr_array_header_t *from, *sender, *reply_to, *to, *cc, *bcc;
    const char *in_reply_to, *message_id;
} memds_imap_envelope_t;

/** A parameter of a body part (name=value). */
typedef struct memds_imap_param_t {
    const char *name, *value;
} memds_imap_param_t;

typedef struct memds_imap_body_t memds_imap_body_t;

/** One body part of a BODYSTRUCTURE (or BODY). */
struct memds_imap_body_t {
    /** Section number for BODY.PEEK[...]: "1", "2.1", ... The top-level
     *  multipart has "" (its parts are 1, 2, ...); a single-part message
     *  has "1". The body of a message/rfc822 part S is S.1 when single
     *  part; when multipart it has S and its parts are S.1, S.2, ... */
    const char *section;
    int multipart; /**< 1 for multipart/... */
    const char *type,
        *subtype; /**< as sent ("text", "plain"); multipart: "multipart" */
    apr_array_header_t *params; /**< memds_imap_param_t, or NULL for NIL */
    const char *id, *description, *encoding; /**< NULL for NIL */
    apr_uint64_t size;  /**< octets as sent (0 for multipart) */
    apr_uint64_t lines; /**< text/... and message/rfc822 */
    int has_lines;
    const char *md5;                 /**< extension data, NULL when absent */
    const char *disposition;         /**< "attachment", "inline", ... or NULL */
    apr_array_header_t *disp_params; /**< memds_imap_param_t or NULL */
    apr_array_header_t *language;    /**< const char *, or NULL */
    const char *location;
    memds_imap_envelope_t *envelope; /**< message/rfc822 */
    memds_imap_body_t *message;      /**< message/rfc822: its body */
    apr_array_header_t *parts;       /**< multipart: memds_imap_body_t * */
    memds_imap_body_t *parent;       /**< NULL at the top */
    int depth;                       /**< 0 at the top */
};

/** BODY[...] / BINARY[...] / RFC822* data of a FETCH response. */
typedef struct memds_imap_section_t {
    const char *item;    /**< "BODY", "BINARY", "RFC822", "RFC822.HEADER",
                                    "RFC822.TEXT" (upper case) */
    const char *section; /**< between the brackets as sent ("" for
                                    BODY[]), NULL for RFC822* */
    int has_origin;
    apr_uint64_t origin; /**< <origin> of a partial fetch */
    const char *data;    /**< exact bytes (may contain NUL); NULL for NIL;
                                    points into the parsed buffer */
    apr_size_t len;
    int streamed; /**< the data went to a chunk callback instead */
} memds_imap_section_t;

/** A FETCH item the parser does not decode: name and raw value text. */
typedef struct memds_imap_item_t {
    const char *name, *value;
} memds_imap_item_t;

/** FETCH items present (memds_imap_fetch_t.have). */
#define MEMDS_IMAP_F_UID 0x001
#define MEMDS_IMAP_F_FLAGS 0x002
#define MEMDS_IMAP_F_MODSEQ 0x004
#define MEMDS_IMAP_F_SIZE 0x008
#define MEMDS_IMAP_F_INTERNALDATE 0x010
#define MEMDS_IMAP_F_ENVELOPE 0x020
#define MEMDS_IMAP_F_BODYSTRUCTURE 0x040
#define MEMDS_IMAP_F_XGUID 0x080
#define MEMDS_IMAP_F_BODY 0x100 /**< non-extensible BODY */

/** System flags (memds_imap_fetch_t.flags). */
#define MEMDS_IMAP_FL_SEEN 0x01
#define MEMDS_IMAP_FL_ANSWERED 0x02
#define MEMDS_IMAP_FL_FLAGGED 0x04
#define MEMDS_IMAP_FL_DELETED 0x08
#define MEMDS_IMAP_FL_DRAFT 0x10
#define MEMDS_IMAP_FL_RECENT 0x20

/** A FETCH response. */
typedef struct memds_imap_fetch_t {
    apr_uint32_t seq; /**< message sequence number */
    unsigned have;    /**< MEMDS_IMAP_F_* */
    apr_uint32_t uid;
    unsigned flags;                 /**< MEMDS_IMAP_FL_* */
    apr_array_header_t *flag_names; /**< all flags and keywords as sent */
    apr_uint64_t modseq;
    apr_uint64_t size;         /**< RFC822.SIZE */
    const char *internaldate;  /**< as sent ("02-Jan-2023 09:00:00 +0000") */
    apr_time_t internaldate_t; /**< the same as APR time (UTC) */
    memds_imap_envelope_t *envelope;
    memds_imap_body_t *body;      /**< BODYSTRUCTURE, else BODY */
    apr_array_header_t *sections; /**< memds_imap_section_t, maybe empty */
    const char *xguid;            /**< Dovecot X-GUID */
    apr_array_header_t *other;    /**< memds_imap_item_t for other items */
} memds_imap_fetch_t;

/** One parsed response. */
typedef struct memds_imap_resp_t {
    memds_imap_resp_e type;
    const char *tag;          /**< TAGGED: the tag */
    memds_imap_cond_e cond;   /**< TAGGED, COND */
    memds_imap_code_t code;   /**< TAGGED, COND (code NONE when absent) */
    const char *text;         /**< TAGGED, COND, CONT: human text ("" if none);
                                    OTHER: the rest of the line as sent */
    const char *keyword;      /**< OTHER: the response name (upper case) */
    apr_uint32_t number;      /**< EXISTS, RECENT, EXPUNGE; OTHER: 0 or a
                                    leading number */
    apr_array_header_t *list; /**< CAPABILITY, ENABLED, FLAGS (const char *) */
    memds_imap_list_t *mbox;  /**< LIST */
    memds_imap_status_t *status; /**< STATUS */
    memds_imap_search_t *search; /**< SEARCH, ESEARCH */
    memds_imap_fetch_t *fetch;   /**< FETCH */
    memds_imap_set_t *uids;      /**< VANISHED */
    int earlier;                 /**< VANISHED (EARLIER) */
} memds_imap_resp_t;

/* ============================================================ errors */

/** What went wrong. */
typedef enum {
    MEMDS_IMAP_E_NONE = 0,
    MEMDS_IMAP_E_CONNECT,  /**< cannot resolve / connect / TLS handshake */
    MEMDS_IMAP_E_TLS,      /**< STARTTLS refused or certificate rejected */
    MEMDS_IMAP_E_AUTH,     /**< login refused */
    MEMDS_IMAP_E_TIMEOUT,  /**< no answer within the I/O timeout */
    MEMDS_IMAP_E_IO,       /**< connection lost, or unusable after an error */
    MEMDS_IMAP_E_BYE,      /**< the server said BYE and closed */
    MEMDS_IMAP_E_PROTOCOL, /**< malformed or unexpected response */
    MEMDS_IMAP_E_LIMIT,    /**< a response exceeded max_response */
    MEMDS_IMAP_E_NO,       /**< tagged NO (see code) */
    MEMDS_IMAP_E_BAD,      /**< tagged BAD */
    MEMDS_IMAP_E_NOTFOUND, /**< a fetched UID does not exist (any more) */
    MEMDS_IMAP_E_CALLBACK, /**< a callback returned an error (rv) */
    MEMDS_IMAP_E_UNSUPPORTED, /**< the server lacks a needed capability */
    MEMDS_IMAP_E_ARG          /**< invalid argument from the caller */
} memds_imap_ekind_e;

/** Details of a failure (filled by every call that takes one). */
typedef struct memds_imap_err_t {
    apr_status_t rv; /**< what the call returned */
    memds_imap_ekind_e kind;
    memds_imap_code_e code; /**< response code of a NO/BAD (TRYCREATE, ...) */
    const char *cmd;        /**< command verb ("SELECT"), or NULL */
    int curl_code;          /**< CURLcode of a libcurl failure, else 0 */
    const char *msg;        /**< detail for the log: never contains a
                                   password; may contain server text and
                                   mailbox names. Allocated from the
                                   connection's pool (or the pool given). */
    apr_size_t offset;      /**< parse errors: byte offset in the response */
    char buf[256]; /**< holds msg when the pool it came from is gone (a
                      failed login of the connection cache) */
} memds_imap_err_t;

/**
 * A failure as a typed error (util/memds_err.h), in one place; the kind
 * and a fixed, sanitised text (no server text, no names, no secrets).
 * Response codes first: AUTHENTICATIONFAILED, AUTHORIZATIONFAILED, EXPIRED
 * → AUTH; NONEXISTENT, TRYCREATE, EXPUNGEISSUED → NOT_FOUND; ALREADYEXISTS
 * → EXISTS; NOPERM → PERMISSION; OVERQUOTA → QUOTA; UNAVAILABLE, INUSE →
 * TRANSIENT. Then the kind: E_AUTH → AUTH; E_TLS → TLS; E_CONNECT, E_IO,
 * E_BYE, E_TIMEOUT → TRANSIENT; E_NOTFOUND and a NO without code to
 * SELECT/EXAMINE/STATUS (Dovecot's answer for a missing mailbox) →
 * NOT_FOUND; another NO → FAILED; E_PROTOCOL → PROTOCOL; E_LIMIT →
 * TOO_LARGE; E_BAD → REJECTED; E_UNSUPPORTED → CONFIG; else INTERNAL.
 * err NULL or kind NONE → MEMDS_ERR_NONE. ds/memds_outcome.h maps the
 * result to a SyncML status.
 */
memds_err_t memds_imap_err_of(const memds_imap_err_t *err);

/* ============================================================ parser */

/**
 * Parse one complete response: the line, its literals, and the final CRLF,
 * nothing more (buf need not be NUL-terminated). Strings are copied into p;
 * BODY[]/BINARY[] section data points into buf, which must live as long as
 * the result. Literals larger than max_literal (0: no limit beyond len) are
 * refused. Any malformed input gives APR_EINVAL with err->msg saying what
 * and err->offset where; recursion is bounded (MEMDS_IMAP_MAX_DEPTH,
 * MEMDS_IMAP_MAX_BODY_DEPTH).
 */
apr_status_t memds_imap_parse_response(memds_imap_resp_t **presp,
                                       const char *buf, apr_size_t len,
                                       apr_size_t max_literal,
                                       memds_imap_err_t *err, apr_pool_t *p);

/** Parse an INTERNALDATE value without quotes ("dd-Mon-yyyy hh:mm:ss +zzzz"). */
apr_status_t memds_imap_parse_date(apr_time_t *pt, const char *s,
                                   apr_size_t len);

/* ======================================================== connection */

/** Capabilities the layer uses (memds_imap_caps). */
#define MEMDS_IMAP_CAP_IMAP4REV1 0x0001
#define MEMDS_IMAP_CAP_CONDSTORE 0x0002
#define MEMDS_IMAP_CAP_QRESYNC 0x0004
#define MEMDS_IMAP_CAP_MOVE 0x0008
#define MEMDS_IMAP_CAP_UIDPLUS 0x0010
#define MEMDS_IMAP_CAP_SPECIAL_USE 0x0020
#define MEMDS_IMAP_CAP_ESEARCH 0x0040
#define MEMDS_IMAP_CAP_LIST_STATUS 0x0080
#define MEMDS_IMAP_CAP_LIST_EXTENDED 0x0100
#define MEMDS_IMAP_CAP_LITERAL_PLUS 0x0200
#define MEMDS_IMAP_CAP_LITERAL_MINUS 0x0400
#define MEMDS_IMAP_CAP_ENABLE 0x0800
#define MEMDS_IMAP_CAP_UNSELECT 0x1000
#define MEMDS_IMAP_CAP_BINARY 0x2000
#define MEMDS_IMAP_CAP_IDLE 0x4000

/** How to reach and log in to the server. Zero means the default. */
typedef struct memds_imap_config_t {
    const char *url;      /**< imap://host[:port] or imaps://host[:port] */
    int starttls;         /**< imap://: require STARTTLS */
    const char *user;     /**< login name; Dovecot's "user*master" works too */
    const char *password; /**< never logged or kept after login */
    const char *authzid;  /**< act as this user (master-user login via
                                   SASL PLAIN authzid; forces AUTH=PLAIN) */
    const char *mech;     /**< "PLAIN", "LOGIN", "XOAUTH2", ... or NULL
                                   for libcurl's choice */
    const char *bearer;   /**< OAuth 2 token for XOAUTH2/OAUTHBEARER */
    long connect_timeout_ms; /**< TCP+TLS+login; default 30 s */
    long io_timeout_ms;      /**< longest wait for server data; default 60 s */
    apr_size_t max_response; /**< MEMDS_IMAP_DEFAULT_MAX_RESPONSE */
    int tls_no_verify;       /**< tests only: accept any certificate */
    const char *ca_file;     /**< CA bundle for TLS, NULL for the system's */
    int no_qresync;          /**< do not ENABLE QRESYNC even when offered */
    const memds_logger_t *log; /**< debug lines (commands without arguments) */
    /** Latency of the connect and of each command but IDLE, by command
     *  (util/memds_stats.h); NULL: not measured. Kept by the connection. */
    memds_stats_t *stats;
} memds_imap_config_t;

/** A byte transport under the connection: libcurl's, or a test double. */
typedef struct memds_imap_io_t {
    /** Read up to len bytes (waiting at most the I/O timeout): APR_SUCCESS
     *  with *pgot > 0, APR_EOF when closed, APR_TIMEUP, or another error. */
    apr_status_t (*recv)(void *baton, char *buf, apr_size_t len,
                         apr_size_t *pgot);
    /** Write up to len bytes; *psent > 0 on success. */
    apr_status_t (*send)(void *baton, const char *buf, apr_size_t len,
                         apr_size_t *psent);
    void *baton;
} memds_imap_io_t;

typedef struct memds_imap_conn_t memds_imap_conn_t;

/**
 * Process-wide libcurl setup (curl_global_init; reference-counted, so other
 * backends may call it too). Once, before any thread connects; not
 * thread-safe. APR_EGENERAL when libcurl cannot initialise.
 */
apr_status_t memds_imap_global_init(void);
/** The counterpart of memds_imap_global_init, at process exit. */
void memds_imap_global_cleanup(void);

/**
 * Connect and log in with libcurl, then read the capabilities (CAPABILITY)
 * and ENABLE QRESYNC when offered. The connection lives in a subpool of p;
 * destroying p closes it without LOGOUT. On failure err says why
 * (E_AUTH for a refused login, E_CONNECT, E_TLS, E_TIMEOUT, ...).
 */
apr_status_t memds_imap_connect(memds_imap_conn_t **pconn,
                                const memds_imap_config_t *cfg,
                                memds_imap_err_t *err, apr_pool_t *p);

/**
 * The same over an already logged-in transport (unit tests script a server
 * this way). cfg may be NULL (its url and credentials are not used).
 */
apr_status_t memds_imap_open_io(memds_imap_conn_t **pconn,
                                const memds_imap_io_t *io,
                                const memds_imap_config_t *cfg,
                                memds_imap_err_t *err, apr_pool_t *p);

/**
 * Logged-in connections kept between requests (per process, thread-safe):
 * memds_imap_cache_get gives one logged in as cfg says (same server, user,
 * authzid and password; an idle one proven alive by its silence or a NOOP,
 * else a new login), memds_imap_cache_login always a new login (a proof
 * of the password now, as the pass-through check needs), and
 * memds_imap_cache_put gives it back (kept only when healthy, with
 * nothing selected: UNSELECT). At most max_idle are kept, each at most
 * idle_secs idle and max_uses times. Connections live in pools of their
 * own, not in the caller's.
 */
typedef struct memds_imap_cache_t memds_imap_cache_t;
typedef struct memds_imap_lease_t memds_imap_lease_t;
apr_status_t memds_imap_cache_create(memds_imap_cache_t **pc, int max_idle,
                                     int idle_secs, int max_uses,
                                     apr_pool_t *p);
apr_status_t memds_imap_cache_get(memds_imap_cache_t *c,
                                  memds_imap_lease_t **pl,
                                  memds_imap_conn_t **pconn,
                                  const memds_imap_config_t *cfg,
                                  memds_imap_err_t *err);
apr_status_t memds_imap_cache_login(memds_imap_cache_t *c,
                                    memds_imap_lease_t **pl,
                                    memds_imap_conn_t **pconn,
                                    const memds_imap_config_t *cfg,
                                    memds_imap_err_t *err);
void memds_imap_cache_put(memds_imap_cache_t *c, memds_imap_lease_t *l);
/** The cache's limits (MemDSIMAPKeep) and how many it keeps now. */
void memds_imap_cache_stats(memds_imap_cache_t *c, int *pmax, int *pidle_secs,
                            int *pkept);

/** LOGOUT (best effort) and free the connection and its pool. */
void memds_imap_close(memds_imap_conn_t *c);

/** MEMDS_IMAP_CAP_* of the logged-in session. */
unsigned memds_imap_caps(const memds_imap_conn_t *c);
/** 1 when the server announced the capability (case-insensitive). */
int memds_imap_has_cap(const memds_imap_conn_t *c, const char *name);
/** 1 when QRESYNC was enabled (expunges are then reported as VANISHED). */
int memds_imap_qresync(const memds_imap_conn_t *c);
/** 0 while usable; non-zero after an I/O or protocol failure or BYE. */
int memds_imap_broken(const memds_imap_conn_t *c);
/** 1 when an idle connection is known usable without a round trip: not
 *  broken, no mailbox selected, no answer owed (memds_imap_settle), nothing
 *  received and not yet read, and its
 *  socket has nothing to read (a server that closed it or said BYE while it
 *  was idle makes it readable). 0 otherwise, and always over a transport
 *  other than libcurl's: then ask the server (memds_imap_noop). */
int memds_imap_quiet(const memds_imap_conn_t *c);

/** Untagged responses while a command runs, after the connection updated
 *  its own state. r and everything in it is valid only during the call.
 *  A non-success return ends the command with E_CALLBACK (the response is
 *  still read to its end, so the connection stays usable). */
typedef apr_status_t memds_imap_resp_cb(void *baton,
                                        const memds_imap_resp_t *r);

/**
 * IDLE (RFC 2177), for watchers that wait for new mail without polling:
 * memds_imap_idle_start sends IDLE and returns once the server accepted it
 * (E_UNSUPPORTED without the IDLE capability); then, whenever the socket
 * (memds_imap_socket, for poll) is readable or bytes are already buffered
 * (memds_imap_buffered), memds_imap_idle_read reads the untagged responses
 * that arrived (EXISTS, EXPUNGE, FETCH ...: the selected mailbox's state is
 * kept current, each goes to cb; a BYE fails with E_BYE); and
 * memds_imap_idle_done sends DONE and reads the tagged answer. No other
 * command may run meanwhile (E_ARG).
 */
apr_status_t memds_imap_idle_start(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                                   void *baton, memds_imap_err_t *err);
apr_status_t memds_imap_idle_read(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                                  void *baton, memds_imap_err_t *err);
apr_status_t memds_imap_idle_done(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                                  void *baton, memds_imap_err_t *err);
/** 1 while IDLE runs. */
int memds_imap_idling(const memds_imap_conn_t *c);
/** The socket of a libcurl connection (for poll), -1 for other transports. */
int memds_imap_socket(const memds_imap_conn_t *c);
/** 1 when received bytes wait to be read (read them before polling). */
int memds_imap_buffered(const memds_imap_conn_t *c);

/** Body data as it arrives: offset counts from the start of the literal. */
typedef apr_status_t memds_imap_chunk_cb(void *baton, apr_uint64_t offset,
                                         const char *data, apr_size_t len);

/** The selected mailbox (cached on the connection). */
typedef struct memds_imap_mailbox_t {
    const char *name; /**< as given to select (modified UTF-7) */
    int readonly;     /**< EXAMINE, or [READ-ONLY] */
    int condstore;    /**< CONDSTORE or QRESYNC active for it */
    apr_uint32_t exists, recent, uidvalidity, uidnext, unseen;
    apr_uint64_t highestmodseq; /**< 0 with NOMODSEQ */
    int nomodseq;
    apr_array_header_t *flags, *permanentflags; /**< const char * */
} memds_imap_mailbox_t;

/** QRESYNC parameters of SELECT. */
typedef struct memds_imap_qresync_t {
    apr_uint32_t uidvalidity; /**< known UIDVALIDITY */
    apr_uint64_t modseq;      /**< known HIGHESTMODSEQ */
    const char *known_uids;   /**< optional UID set the client knows */
} memds_imap_qresync_t;

#define MEMDS_IMAP_SEL_READONLY 0x01  /**< EXAMINE */
#define MEMDS_IMAP_SEL_CONDSTORE 0x02 /**< (CONDSTORE) */
#define MEMDS_IMAP_SEL_FORCE 0x04     /**< select even when already selected */

/**
 * SELECT (or EXAMINE) a mailbox. When the same mailbox is already selected in
 * the same mode and no QRESYNC is asked, nothing is sent and the cached state
 * (kept current by the untagged responses seen since) is returned. With qr
 * (QRESYNC must be enabled) the server reports VANISHED (EARLIER) and FETCH
 * for the changes, which go to cb. *pmbox lives until the next SELECT.
 */
apr_status_t memds_imap_select(memds_imap_conn_t *c, const char *mailbox,
                               unsigned flags, const memds_imap_qresync_t *qr,
                               memds_imap_resp_cb *cb, void *baton,
                               const memds_imap_mailbox_t **pmbox,
                               memds_imap_err_t *err);
/** The selected mailbox or NULL. */
const memds_imap_mailbox_t *memds_imap_selected(const memds_imap_conn_t *c);
/** UNSELECT (or nothing when none is selected). */
apr_status_t memds_imap_unselect(memds_imap_conn_t *c, memds_imap_err_t *err);
/** UNSELECT sent without waiting for its answer (a connection going back
 *  to the cache: the server deselects at once, and the thread does not
 *  wait a round trip). The answer is read before the next command, or by
 *  memds_imap_settle; nothing is selected from now on. */
apr_status_t memds_imap_unselect_later(memds_imap_conn_t *c,
                                       memds_imap_err_t *err);
/** Reads the answer of a command sent without waiting (untagged responses
 *  before it are not attributed to a mailbox). A refusal or a failure
 *  leaves the connection broken. Nothing owed: APR_SUCCESS at once. */
apr_status_t memds_imap_settle(memds_imap_conn_t *c, memds_imap_err_t *err);

#define MEMDS_IMAP_FETCH_VANISHED 0x01 /**< with CHANGEDSINCE: VANISHED too */

/**
 * UID FETCH uidset items [(CHANGEDSINCE m [VANISHED])] on the selected
 * mailbox. items is a FETCH attribute list ("(UID FLAGS MODSEQ)" or a single
 * item); items that set \\Seen (BODY[...], BINARY[...], RFC822,
 * RFC822.TEXT) are refused (E_ARG): use BODY.PEEK. changedsince 0: none.
 * Every FETCH (and VANISHED) goes to cb.
 */
apr_status_t memds_imap_uid_fetch(memds_imap_conn_t *c, const char *uidset,
                                  const char *items, apr_uint64_t changedsince,
                                  unsigned flags, memds_imap_resp_cb *cb,
                                  void *baton, memds_imap_err_t *err);

/** What memds_imap_fetch_body delivered. */
typedef struct memds_imap_body_info_t {
    apr_uint64_t len; /**< bytes given to the chunk callback */
    int nil;          /**< the server answered NIL for the section */
} memds_imap_body_info_t;

#define MEMDS_IMAP_BODY_BINARY \
    0x01 /**< BINARY.PEEK (content-transfer-decoded) */

/**
 * UID FETCH uid (UID BODY.PEEK[section]<origin.length>): the body data goes
 * to cb in chunks as it arrives from the network, so no message is held in
 * memory whole. section "" is the whole message; length 0 means to the end.
 * E_NOTFOUND when the UID does not exist.
 */
apr_status_t memds_imap_fetch_body(memds_imap_conn_t *c, apr_uint32_t uid,
                                   const char *section, apr_uint64_t origin,
                                   apr_uint64_t length, unsigned flags,
                                   memds_imap_chunk_cb *cb, void *baton,
                                   memds_imap_body_info_t *info,
                                   memds_imap_err_t *err);

/**
 * UID STORE uidset [(UNCHANGEDSINCE m)] op FLAGS[.SILENT] (flags).
 * op is '+', '-' or '='; flags like "\\Seen \\Flagged" (system flags and
 * keywords). unchangedsince 0: unconditional. Untagged FETCH go to cb.
 * *pmodified (may be NULL) gets the [MODIFIED] set of UIDs that failed the
 * condition, or NULL; from p.
 */
apr_status_t memds_imap_uid_store(memds_imap_conn_t *c, const char *uidset,
                                  char op, const char *flags, int silent,
                                  apr_uint64_t unchangedsince,
                                  memds_imap_resp_cb *cb, void *baton,
                                  memds_imap_set_t **pmodified,
                                  memds_imap_err_t *err, apr_pool_t *p);

/**
 * UID SEARCH criteria ("ALL", "UNDELETED SINCE 1-Jan-2024", ...), with
 * RETURN (ALL) when ESEARCH is offered. Result from p.
 */
apr_status_t memds_imap_uid_search(memds_imap_conn_t *c, const char *criteria,
                                   memds_imap_search_t **presult,
                                   memds_imap_err_t *err, apr_pool_t *p);

/**
 * Every mailbox: LIST "" "*" RETURN (SPECIAL-USE) when SPECIAL-USE is
 * offered (falling back to plain LIST if refused). With status_items
 * ("UIDVALIDITY UIDNEXT HIGHESTMODSEQ MESSAGES UNSEEN") each selectable
 * mailbox also gets its status: through LIST-STATUS when offered, else one
 * STATUS per mailbox. *pboxes: memds_imap_list_t * from p.
 */
apr_status_t memds_imap_list(memds_imap_conn_t *c, const char *status_items,
                             apr_array_header_t **pboxes, memds_imap_err_t *err,
                             apr_pool_t *p);

/** memds_imap_list without STATUS, answered from this connection's last
 *  such LIST while it is younger than max_age (none after a CREATE, DELETE
 *  or RENAME through this connection; other clients' changes show when it
 *  is renewed): a kept connection does not LIST again for every request.
 *  From p. */
apr_status_t memds_imap_list_recent(memds_imap_conn_t *c,
                                    apr_interval_time_t max_age,
                                    apr_array_header_t **pboxes,
                                    memds_imap_err_t *err, apr_pool_t *p);

/** STATUS mailbox (items); items NULL: MESSAGES UIDNEXT UIDVALIDITY UNSEEN
 *  (and HIGHESTMODSEQ with CONDSTORE). From p. */
apr_status_t memds_imap_status(memds_imap_conn_t *c, const char *mailbox,
                               const char *items, memds_imap_status_t **pst,
                               memds_imap_err_t *err, apr_pool_t *p);

/**
 * APPEND a message (CRLF line ends) with flags ("\\Seen \\Draft" or NULL)
 * and an internal date (0: the server's now). With UIDPLUS the new UID and
 * the mailbox's UIDVALIDITY are returned (else 0).
 */
apr_status_t memds_imap_append(memds_imap_conn_t *c, const char *mailbox,
                               const char *flags, apr_time_t internaldate,
                               const char *msg, apr_size_t len,
                               apr_uint32_t *puidvalidity, apr_uint32_t *puid,
                               memds_imap_err_t *err);

/** Where COPY/MOVE put the messages (UIDPLUS). */
typedef struct memds_imap_copyuid_t {
    apr_uint32_t uidvalidity;    /**< of the destination */
    memds_imap_set_t *src, *dst; /**< corresponding UIDs, same order */
} memds_imap_copyuid_t;

/** The destination UID of src_uid, or 0. */
apr_uint32_t memds_imap_copyuid_map(const memds_imap_copyuid_t *cu,
                                    apr_uint32_t src_uid);

/**
 * UID MOVE; without MOVE: UID COPY, UID STORE +FLAGS.SILENT (\\Deleted) and
 * UID EXPUNGE of just those UIDs (with UIDPLUS; without it the originals are
 * left flagged \\Deleted, since a plain EXPUNGE would also remove other
 * clients' deleted mail). *pcu (may be NULL) gets COPYUID or NULL; from p.
 * Untagged responses (VANISHED/EXPUNGE of the sources) go to cb.
 */
apr_status_t memds_imap_uid_move(memds_imap_conn_t *c, const char *uidset,
                                 const char *dest, memds_imap_resp_cb *cb,
                                 void *baton, memds_imap_copyuid_t **pcu,
                                 memds_imap_err_t *err, apr_pool_t *p);
/** UID COPY, with COPYUID as for memds_imap_uid_move. */
apr_status_t memds_imap_uid_copy(memds_imap_conn_t *c, const char *uidset,
                                 const char *dest, memds_imap_copyuid_t **pcu,
                                 memds_imap_err_t *err, apr_pool_t *p);
/** UID EXPUNGE (needs UIDPLUS: E_UNSUPPORTED otherwise). */
apr_status_t memds_imap_uid_expunge(memds_imap_conn_t *c, const char *uidset,
                                    memds_imap_resp_cb *cb, void *baton,
                                    memds_imap_err_t *err);

/** CREATE, DELETE, RENAME (names in modified UTF-7, quoted as needed). */
apr_status_t memds_imap_create(memds_imap_conn_t *c, const char *mailbox,
                               memds_imap_err_t *err);
apr_status_t memds_imap_delete(memds_imap_conn_t *c, const char *mailbox,
                               memds_imap_err_t *err);
apr_status_t memds_imap_rename(memds_imap_conn_t *c, const char *from,
                               const char *to, memds_imap_err_t *err);

/** NOOP: collects pending untagged responses (to cb). */
apr_status_t memds_imap_noop(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                             void *baton, memds_imap_err_t *err);

/**
 * Any other command without literals (line without tag and CRLF). *ptagged
 * (may be NULL) is the tagged response, valid until the next command.
 */
apr_status_t memds_imap_run(memds_imap_conn_t *c, const char *line,
                            memds_imap_resp_cb *cb, void *baton,
                            const memds_imap_resp_t **ptagged,
                            memds_imap_err_t *err);

#endif /* MEMDS_IMAP_H */
