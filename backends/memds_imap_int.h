/**
 * @file memds_imap_int.h
 * What the three parts of the IMAP client layer share, and nothing else
 * includes: memds_imap_parse.c (the response parser), memds_imap_conn.c
 * (transport, framer, command execution, connect) and memds_imap_cmd.c
 * (one function per command). The API is memds_imap.h.
 */
#ifndef MEMDS_IMAP_INT_H
#define MEMDS_IMAP_INT_H

#include "backends/memds_imap.h"
#include "backends/memds_curl.h"
#include "util/memds_buf.h"

#include <apr_strings.h>

#include <string.h>

/* ======================================================== small helpers */

#define TRY(e) \
    do { \
        apr_status_t try_rv_ = (e); \
        if (try_rv_ != APR_SUCCESS) \
            return try_rv_; \
    } while (0)

#define MODSEQ_MAX APR_UINT64_C(9223372036854775807)

static inline int upc(int c)
{
    return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

/* ASCII case-insensitive comparison of s[0..n) with the literal lit (whole). */
static inline int tok_eq(const char *s, apr_size_t n, const char *lit)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (lit[i] == '\0'
            || upc((unsigned char)s[i]) != upc((unsigned char)lit[i])) {
            return 0;
        }
    }
    return lit[n] == '\0';
}

static inline int str_ieq(const char *a, const char *b)
{
    return tok_eq(a, strlen(a), b);
}

static inline char *str_upper(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *u = apr_pstrmemdup(p, s, n);
    apr_size_t i;

    for (i = 0; i < n; i++) {
        u[i] = (char)upc((unsigned char)u[i]);
    }
    return u;
}

/* ATOM-CHAR of RFC 3501: any CHAR except atom-specials. */
static inline int is_atom_char(int c)
{
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%'
           && c != '*' && c != '"' && c != '\\' && c != ']';
}

static inline int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* ============================================= the connection (conn.c) */

/* libcurl's connection: our own waits on its socket between CURLE_AGAIN. */
typedef struct curl_io_t {
    CURL *h;
    curl_socket_t sock;
    long timeout_ms;
    CURLcode last; /* the last libcurl failure, for messages */
} curl_io_t;

/* A piece of a command: text, or literal data sent after the server's
 * continuation request (sync). */
typedef struct piece_t {
    const char *data;
    apr_size_t len;
    int sync;
} piece_t;

struct memds_imap_conn_t {
    apr_pool_t *pool;    /* the connection's own */
    apr_pool_t *rpool;   /* one response; cleared before the next */
    apr_pool_t *cpool;   /* one command: its text and tagged response */
    apr_pool_t *selpool; /* the selected mailbox's state */
    apr_pool_t *cappool; /* the capability list */
    apr_pool_t *listpool; /* the last plain LIST (memds_imap_list_recent) */
    apr_array_header_t *listed; /* its folders, or NULL */
    apr_time_t listed_at;
    memds_imap_io_t io;
    curl_io_t cio; /* used when libcurl connected */
    char errbuf[CURL_ERROR_SIZE];
    memds_logger_t log;
    long io_timeout_ms;
    apr_size_t max_response;
    char inbuf[16384]; /* bytes received, not yet framed */
    apr_size_t in_pos, in_len;
    unsigned tagno;
    unsigned caps;
    apr_array_header_t *capnames;
    int qresync; /* ENABLE QRESYNC succeeded */
    int broken, bye;
    int selected, selecting;
    int idling; /* IDLE running: only memds_imap_idle_* may talk */
    char owed[16]; /* the tag of a command sent whose tagged answer is not
                      read yet (memds_imap_unselect_later), or "" */
    memds_imap_mailbox_t sel;
    /* the running command */
    const char *tag, *verb;
    memds_imap_resp_cb *cb;
    void *baton;
    apr_status_t cb_rv;
    memds_imap_copyuid_t *copyuid; /* untagged OK [COPYUID] (UID MOVE) */
    const char *proto_err;         /* the first malformed untagged response */
    memds_imap_chunk_cb *chunk_cb;
    void *chunk_baton;
    apr_status_t chunk_rv;
    apr_uint64_t chunk_total; /* streamed bytes in this command */
    int chunk_lits;           /* literals streamed in the current response */
    memds_stats_t *stats;     /* latency per command, or NULL */
};

typedef struct cmd_t {
    memds_imap_conn_t *c;
    memds_buf_t b;              /* the text since the last literal */
    apr_array_header_t *pieces; /* piece_t */
} cmd_t;

static inline void err_init(memds_imap_err_t *err)
{
    memset(err, 0, sizeof(*err));
}

#define ERR_ARG(err) \
    memds_imap_err_t err_local_; \
    if ((err) == NULL) { \
        (err) = &err_local_; \
    } \
    err_init(err)

/* A failure: fills err (kind, rv, the running command, the message from
 * the connection's pool) and returns rv. */
apr_status_t memds_imap__fail(memds_imap_conn_t *c, memds_imap_err_t *err,
                              memds_imap_ekind_e kind, apr_status_t rv,
                              const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Copies into p of what a callback saw (valid only during the call). */
apr_array_header_t *memds_imap__copy_strs(const apr_array_header_t *l,
                                          apr_pool_t *p);
memds_imap_set_t *memds_imap__copy_set(const memds_imap_set_t *s,
                                       apr_pool_t *p);

/* Building a command: start (new tag, the command pool cleared), add text,
 * astrings and literals, then execute (send it, read up to its tagged
 * response, untagged responses to cb). */
void memds_imap__cmd_start(memds_imap_conn_t *c, cmd_t *cmd, const char *verb);
void memds_imap__cmd_add(cmd_t *cmd, const char *s);
void memds_imap__cmd_addf(cmd_t *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void memds_imap__cmd_literal(cmd_t *cmd, const char *data, apr_size_t len);
void memds_imap__cmd_astring(cmd_t *cmd, const char *s);
/* Sends a command without literals and reads nothing: its tagged answer
 * is read before the next command's (memds_imap_settle). One at a time. */
apr_status_t memds_imap__cmd_send_later(cmd_t *cmd, memds_imap_err_t *err);
apr_status_t memds_imap__cmd_exec(cmd_t *cmd, memds_imap_resp_cb *cb,
                                  void *baton,
                                  const memds_imap_resp_t **ptagged,
                                  memds_imap_err_t *err);
/* INBOX is case-insensitive: one spelling on the wire and in the cache. */
const char *memds_imap__mbox_norm(const char *s);

/* ================================================= the parser (parse.c) */

/* A set from UIDs (sorted, adjacent ones joined into ranges). */
memds_imap_set_t *memds_imap__set_from_numbers(const apr_uint32_t *in, int n,
                                               apr_pool_t *p);
/* 1 when s is a section spec FETCH may send (BODY[s], BINARY[s]). */
int memds_imap__section_ok(const char *s, int binary, apr_pool_t *p);

#endif /* MEMDS_IMAP_INT_H */
