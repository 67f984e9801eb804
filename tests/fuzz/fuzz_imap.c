/* libFuzzer target for the IMAP client layer (backends/memds_imap_*.c).
 *
 * Parser mode (any input): the bytes are one server response for
 * memds_imap_parse_response. It must either succeed with a well-typed result
 * or fail with APR_EINVAL, a message and an offset inside the input; never
 * crash, read outside the buffer or recurse without bound.
 *
 * Session mode (input starting with "#S"): the rest is everything a server
 * sends on one connection, handed out in chunks of a size taken from the
 * third byte. A fixed sequence of commands runs over it (open with
 * CAPABILITY/ENABLE, SELECT with QRESYNC, UID FETCH, streamed BODY.PEEK,
 * STORE, SEARCH, LIST with status, APPEND with a literal, MOVE, NOOP,
 * LOGOUT), which exercises the framer (literals, streaming), the state
 * updates and every result path. Failures are fine; crashes and leaks are
 * not.
 *
 * Seeds: built in (below); MEMDS_FUZZ_IMAP_SEEDS=DIR writes them to DIR. */
#include "../../backends/memds_imap.h"

#include "fuzz_seeds.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Built-in seeds: Dovecot 2.3.19 responses captured from the ./dev stack
 * and two recorded sessions ("#S"). With MEMDS_FUZZ_IMAP_SEEDS=DIR they are
 * written into DIR at start-up, before libFuzzer reads its corpus
 * directories, so `MEMDS_FUZZ_IMAP_SEEDS=DIR fuzz_imap DIR` starts from them
 * (in 30 s: about 1850 edges with them, 800 without). */
#define S(x) FUZZ_SEED(x)
static const fuzz_seed_t seeds[] = {
    S("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LI"
      "TERAL+ AUTH=PLAIN AUTH=LOGIN] Dovecot (Debian) ready.\r\n"),
    S("a1 OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE S"
      "ORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT"
      " MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLU"
      "S LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRE"
      "S WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIE"
      "W=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE] Lo"
      "gged in\r\n"),
    S("* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT S"
      "ORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULT"
      "IAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIS"
      "T-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WIT"
      "HIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZ"
      "ZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE\r\n"),
    S("a2 OK Capability completed (0.001 + 0.000 secs).\r\n"),
    S("* ENABLED QRESYNC\r\n"),
    S("a3 OK Enabled (0.001 + 0.000 secs).\r\n"),
    S("* LIST (\\UnMarked \\Trash) \"/\" Trash\r\n"),
    S("a4 OK List completed (0.001 + 0.000 secs).\r\n"),
    S("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"),
    S("* 3 EXISTS\r\n"),
    S("* 0 RECENT\r\n"),
    S("a5 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"),
    S("* 1 FETCH (UID 1 FLAGS () MODSEQ (4) RFC822.SIZE 800 INTERNALDATE \""
      "28-Nov-2026 19:14:52 +0000\" ENVELOPE (\"Sat, 28 Nov 2026 19:14:52 +"
      "0000\" \"Welcome to MemDS\" ((\"bob\" NIL \"bob\" \"example.test\"))"
      " ((\"bob\" NIL \"bob\" \"example.test\")) ((\"bob\" NIL \"bob\" \"ex"
      "ample.test\")) ((\"alice\" NIL \"alice\" \"example.test\")) NIL NIL "
      "NIL \"<seed-1795893292-9745-12519@example.test>\") BODYSTRUCTURE (\""
      "text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 80 5 NIL N"
      "IL NIL NIL))\r\n"),
    S("* 3 FETCH (UID 3 FLAGS () MODSEQ (4) RFC822.SIZE 814 INTERNALDATE \""
      "28-Nov-2026 19:14:52 +0000\" ENVELOPE (\"Sat, 28 Nov 2026 19:14:52 +"
      "0000\" \"Quarterly report draft\" ((\"bob\" NIL \"bob\" \"example.te"
      "st\")) ((\"bob\" NIL \"bob\" \"example.test\")) ((\"bob\" NIL \"bob\""
      " \"example.test\")) ((\"alice\" NIL \"alice\" \"example.test\")) NIL"
      " NIL NIL \"<seed-1795893292-9745-30244@example.test>\") BODYSTRUCTUR"
      "E (\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8bit\" 88 5 "
      "NIL NIL NIL NIL))\r\n"),
    S("a6 OK Fetch completed (0.001 + 0.000 secs).\r\n"),
    S("* STATUS INBOX (MESSAGES 3 UIDNEXT 4 UIDVALIDITY 1795893292 UNSEEN 3"
      " HIGHESTMODSEQ 4)\r\n"),
    S("a7 OK [CLIENTBUG] Status on selected mailbox completed (0.001 + 0.00"
      "0 secs).\r\n"),
    S("* SEARCH 1 2 3\r\n"),
    S("a8 OK Search completed (0.001 + 0.000 secs).\r\n"),
    S("* ESEARCH (TAG \"a9\") UID MIN 1 MAX 3 ALL 1:3 COUNT 3\r\n"),
    S("* BYE Logging out\r\n"),
    S("b2 OK Logout completed (0.001 + 0.000 secs).\r\n"),
    S("a3 OK Create completed (0.004 + 0.000 + 0.003 secs).\r\n"),
    S("a6 OK [APPENDUID 1795893293 1] Append completed (0.004 + 0.000 + 0.0"
      "03 secs).\r\n"),
    S("* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent $Label1) MODSEQ (3) RFC82"
      "2.SIZE 884 INTERNALDATE \"02-Jan-2023 09:00:00 +0000\" ENVELOPE (\"M"
      "on, 02 Jan 2023 10:00:00 +0100\" {21}\r\n"
      "Mixed \"quoted\" \\ test ((\"=?UTF-8?B?SsO8cmdlbg==?=\" NIL \"j\" \""
      "example.test\")) ((\"=?UTF-8?B?SsO8cmdlbg==?=\" NIL \"j\" \"example."
      "test\")) ((\"=?UTF-8?B?SsO8cmdlbg==?=\" NIL \"j\" \"example.test\"))"
      " ((\"Bob, B.\" NIL \"bob\" \"example.test\")(NIL NIL \"group\" NIL)("
      "NIL NIL \"a\" \"b.c\")(NIL NIL \"d\" \"e.f\")(NIL NIL NIL NIL)) ((NI"
      "L NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL \"<x@y>\""
      " \"<m1@example.test>\") BODYSTRUCTURE (((\"text\" \"plain\" (\"chars"
      "et\" \"utf-8\") NIL NIL \"quoted-printable\" 12 0 NIL NIL NIL NIL)(\""
      "text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 0 NIL NI"
      "L NIL NIL) \"alternative\" (\"boundary\" \"AA\") NIL NIL NIL)(\"appl"
      "ication\" \"pdf\" (\"name\" {11}\r\n"
      "r\xc3\xa9port.pdf) \"<cid1@x>\" \"The report\" \"base64\" 12 NIL (\""
      "attachment\" (\"filename\" \"report.pdf\")) (\"en\") NIL)(\"message\""
      " \"rfc822\" NIL NIL NIL \"7bit\" 33 (NIL \"inner\" ((NIL NIL \"a\" \""
      "b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NI"
      "L NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit"
      "\" 4 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \""
      "BB\") NIL NIL NIL))\r\n"),
    S("b2 OK [MODIFIED 1] Conditional store failed (0.001 + 0.000 secs).\r\n"),
    S("b3 OK Store completed (0.001 + 0.000 secs).\r\n"),
    S("* VANISHED 2\r\n"),
    S("b5 OK [HIGHESTMODSEQ 6] Move completed (0.006 + 0.000 + 0.005 secs)."
      "\r\n"),
    S("b6 OK [COPYUID 1795893294 1 2] Copy completed (0.007 + 0.000 + 0.006"
      " secs).\r\n"),
    S("b7 BAD Error in IMAP command SELECT: Invalid QRESYNC parameters (0.0"
      "01 + 0.000 secs).\r\n"),
    S("b8 NO Mailbox doesn't exist: Nope (0.001 + 0.000 secs).\r\n"),
    S("b9 BAD No mailbox selected (0.001 + 0.000 secs).\r\n"),
    S("c4 OK NOOP completed (0.001 + 0.000 secs).\r\n"),
    S("* 1 FETCH (UID 1 MODSEQ (5))\r\n"),
    S("c9 OK Unselect completed (0.001 + 0.000 secs).\r\n"),
    S("d1 OK Delete completed (0.053 + 0.000 + 0.052 secs).\r\n"),
    S("d3 NO [NONEXISTENT] Mailbox doesn't exist: Nope (0.002 + 0.000 + 0.0"
      "01 secs).\r\n"),
    S("* ID (\"name\" \"Dovecot\")\r\n"),
    S("a3 OK ID completed (0.001 + 0.000 secs).\r\n"),
    S("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n"),
    S("a4 OK Namespace completed (0.001 + 0.000 secs).\r\n"),
    S("* 1 FETCH (UID 1 X-GUID 1795894224.M255926P25904.vm,S=118,W=124 SAVE"
      "DATE \"28-Nov-2026 19:30:24 +0000\" BINARY[1] ~{9}\r\n"
      "\x00\x01\x02\x03\x00"
      "def\n"
      " BINARY.SIZE[1] 9 BODYSTRUCTURE (\"application\" \"octet-stream\" NI"
      "L NIL NIL \"base64\" 14 NIL NIL NIL NIL) BODY (\"application\" \"oct"
      "et-stream\" NIL NIL NIL \"base64\" 14))\r\n"),
    S("#S\x07* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE "
      "SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJEC"
      "T MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPL"
      "US LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHR"
      "ES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVI"
      "EW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE\r\n"
      "M1 OK Capability completed.\r\n"
      "* ENABLED QRESYNC\r\n"
      "M2 OK Enabled.\r\n"
      "* OK [CLOSED] Previous mailbox closed.\r\n"
      "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
      "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
      "\\*)] Flags permitted.\r\n"
      "* 2 EXISTS\r\n"
      "* 0 RECENT\r\n"
      "* OK [UIDVALIDITY 7] UIDs valid\r\n"
      "* OK [UIDNEXT 4] Predicted next UID\r\n"
      "* OK [HIGHESTMODSEQ 9] Highest\r\n"
      "* VANISHED (EARLIER) 2\r\n"
      "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (2))\r\n"
      "M3 OK [READ-WRITE] Select completed.\r\n"
      "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent $Label1) MODSEQ (3) RFC82"
      "2.SIZE 884 INTERNALDATE \"02-Jan-2023 09:00:00 +0000\" ENVELOPE (\"M"
      "on, 02 Jan 2023 10:00:00 +0100\" {21}\r\n"
      "Mixed \"quoted\" \\ test ((\"=?UTF-8?B?SsO8cmdlbg==?=\" NIL \"j\" \""
      "example.test\")) ((\"=?UTF-8?B?SsO8cmdlbg==?=\" NIL \"j\" \"example."
      "test\")) ((\"=?UTF-8?B?SsO8cmdlbg==?=\" NIL \"j\" \"example.test\"))"
      " ((\"Bob, B.\" NIL \"bob\" \"example.test\")(NIL NIL \"group\" NIL)("
      "NIL NIL \"a\" \"b.c\")(NIL NIL \"d\" \"e.f\")(NIL NIL NIL NIL)) ((NI"
      "L NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL \"<x@y>\""
      " \"<m1@example.test>\") BODYSTRUCTURE (((\"text\" \"plain\" (\"chars"
      "et\" \"utf-8\") NIL NIL \"quoted-printable\" 12 0 NIL NIL NIL NIL)(\""
      "text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 0 NIL NI"
      "L NIL NIL) \"alternative\" (\"boundary\" \"AA\") NIL NIL NIL)(\"appl"
      "ication\" \"pdf\" (\"name\" {11}\r\n"
      "r\xc3\xa9port.pdf) \"<cid1@x>\" \"The report\" \"base64\" 12 NIL (\""
      "attachment\" (\"filename\" \"report.pdf\")) (\"en\") NIL)(\"message\""
      " \"rfc822\" NIL NIL NIL \"7bit\" 33 (NIL \"inner\" ((NIL NIL \"a\" \""
      "b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NI"
      "L NIL) (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit"
      "\" 4 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \""
      "BB\") NIL NIL NIL))\r\n"
      "* VANISHED (EARLIER) 3:4\r\n"
      "M4 OK Fetch completed.\r\n"
      "* 1 FETCH (UID 1 BODY[] {12}\r\n"
      "Subject: x\r\n"
      " FLAGS (\\Recent))\r\n"
      "M5 OK Fetch completed.\r\n"
      "* 1 FETCH (UID 1 BINARY[2]<10> ~{3}\r\n"
      "\x00\x01\x02)\r\n"
      "M6 OK Fetch completed.\r\n"
      "* 1 FETCH (UID 1 MODSEQ (10) FLAGS (\\Seen))\r\n"
      "M7 OK [MODIFIED 2:3] Conditional store failed.\r\n"
      "* ESEARCH (TAG \"M8\") UID ALL 1\r\n"
      "M8 OK Search completed.\r\n"
      "* LIST (\\Drafts) \"/\" Drafts\r\n"
      "* STATUS Drafts (MESSAGES 0 UIDNEXT 1)\r\n"
      "* LIST () \"/\" INBOX\r\n"
      "* STATUS INBOX (MESSAGES 1 UIDNEXT 4)\r\n"
      "* LIST (\\Sent) \"/\" {4}\r\n"
      "Sent\r\n"
      "* STATUS Sent (MESSAGES 0 UIDNEXT 1)\r\n"
      "M9 OK List completed.\r\n"
      "* STATUS Sent (MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8 UNSEEN 0 HIGHESTMO"
      "DSEQ 1)\r\n"
      "M10 OK Status completed.\r\n"
      "M11 OK [APPENDUID 8 1] Append completed.\r\n"
      "* OK [COPYUID 9 1 1] Moved UIDs.\r\n"
      "* VANISHED 1\r\n"
      "M12 OK [HIGHESTMODSEQ 11] Move completed.\r\n"
      "* 0 EXISTS\r\n"
      "M13 OK NOOP completed.\r\n"
      "* BYE Logging out\r\n"
      "M14 OK Logout completed.\r\n"),
    S("#S\x01* CAPABILITY IMAP4rev1 UIDPLUS CONDSTORE\r\n"
      "M1 OK done\r\n"
      "* 2 EXISTS\r\n"
      "* OK [UIDVALIDITY 7] x\r\n"
      "* OK [NOMODSEQ] x\r\n"
      "M2 OK [READ-WRITE] done\r\n"
      "* 1 FETCH (UID 1 FLAGS () ENVELOPE (NIL {3}\r\n"
      "abc NIL NIL NIL NIL NIL NIL NIL NIL) BODYSTRUCTURE (\"text\" \"plain"
      "\" NIL NIL NIL \"7bit\" 3 1))\r\n"
      "M3 OK done\r\n"
      "* 1 FETCH (UID 1 BODY[] \"abc\")\r\n"
      "M4 OK done\r\n"
      "M5 BAD no binary\r\n"
      "M6 OK done\r\n"
      "* SEARCH 1 2\r\n"
      "M7 OK done\r\n"
      "M8 BAD no return\r\n"
      "* LIST () \"/\" INBOX\r\n"
      "M9 OK done\r\n"
      "* STATUS INBOX (MESSAGES 2 UIDNEXT 3)\r\n"
      "M10 OK done\r\n"
      "* STATUS Sent (MESSAGES 0)\r\n"
      "M11 OK done\r\n"
      "+ go\r\n"
      "M12 OK done\r\n"
      "M13 OK [COPYUID 1 1 1] done\r\n"
      "M14 OK done\r\n"
      "* 1 EXPUNGE\r\n"
      "M15 OK done\r\n"
      "M16 OK done\r\n"
      "M17 OK bye\r\n"),
};
#undef S

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_write_seeds("MEMDS_FUZZ_IMAP_SEEDS", "imap", seeds,
                     FUZZ_NSEEDS(seeds));
    return 0;
}

/* Once-initialised process state of the harness (not of the code under
 * test, which has none). */
static apr_pool_t *root_pool;

static void setup(void)
{
    if (root_pool == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&root_pool, NULL) != APR_SUCCESS) {
            abort();
        }
    }
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_imap: %s\n", what);
    abort();
}

static void check_parse(const uint8_t *data, size_t size, apr_pool_t *p)
{
    memds_imap_resp_t *r = NULL;
    memds_imap_err_t err;
    /* an exact-size copy so that ASan sees any read past the end */
    char *buf = malloc(size ? size : 1);
    apr_status_t rv;

    if (buf == NULL) {
        abort();
    }
    memcpy(buf, data, size);
    memset(&err, 0, sizeof(err));
    rv = memds_imap_parse_response(&r, buf, size, 1 << 20, &err, p);
    if (rv == APR_SUCCESS) {
        if (r == NULL || r->type < MEMDS_IMAP_RESP_TAGGED
            || r->type > MEMDS_IMAP_RESP_OTHER) {
            fail("success without a proper response");
        }
        if (r->type == MEMDS_IMAP_RESP_FETCH
            && (r->fetch == NULL || r->fetch->sections == NULL)) {
            fail("FETCH without its data");
        }
    }
    else if (rv != APR_EINVAL || err.msg == NULL || err.offset > size
             || err.kind != MEMDS_IMAP_E_PROTOCOL) {
        fail("failure without a proper error");
    }
    free(buf);
}

/* ---- session mode */

typedef struct feed_t {
    const char *data;
    size_t len, pos, chunk;
} feed_t;

static apr_status_t feed_recv(void *baton, char *buf, apr_size_t len,
                              apr_size_t *pgot)
{
    feed_t *f = baton;
    size_t n = f->len - f->pos;

    if (n == 0) {
        return APR_EOF;
    }
    if (n > f->chunk) {
        n = f->chunk;
    }
    if (n > len) {
        n = len;
    }
    memcpy(buf, f->data + f->pos, n);
    f->pos += n;
    *pgot = n;
    return APR_SUCCESS;
}

static apr_status_t feed_send(void *baton, const char *buf, apr_size_t len,
                              apr_size_t *psent)
{
    *psent = len;
    return APR_SUCCESS;
}

static apr_status_t any_resp(void *baton, const memds_imap_resp_t *r)
{
    int *n = baton;

    /* touch what a datastore would read */
    if (r->type == MEMDS_IMAP_RESP_FETCH && r->fetch->envelope
        && r->fetch->envelope->subject) {
        *n += (int)strlen(r->fetch->envelope->subject);
    }
    (*n)++;
    return *n > 100000 ? APR_EGENERAL : APR_SUCCESS;
}

static apr_status_t chunk(void *baton, apr_uint64_t off, const char *d,
                          apr_size_t n)
{
    apr_uint64_t *total = baton;

    volatile char first, last; /* the whole chunk must be readable */

    if (n == 0 || d == NULL) {
        fail("empty chunk");
    }
    first = d[0];
    last = d[n - 1];
    (void)first;
    (void)last;
    *total += n;
    return APR_SUCCESS;
}

static void session(const uint8_t *data, size_t size, apr_pool_t *p)
{
    feed_t f;
    memds_imap_io_t io;
    memds_imap_config_t cfg;
    memds_imap_conn_t *c = NULL;
    memds_imap_err_t err;
    memds_imap_qresync_t qr;
    const memds_imap_mailbox_t *mb;
    memds_imap_set_t *mod;
    memds_imap_search_t *sr;
    memds_imap_copyuid_t *cu;
    memds_imap_status_t *st;
    memds_imap_body_info_t info;
    apr_array_header_t *boxes;
    apr_uint32_t uv, uid;
    apr_uint64_t total = 0;
    int n = 0;

    f.chunk = size > 0 ? (size_t)(data[0] % 64) + 1 : 1;
    f.data = (const char *)data + (size > 0);
    f.len = size - (size > 0);
    f.pos = 0;
    io.recv = feed_recv;
    io.send = feed_send;
    io.baton = &f;
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_response = 1 << 20;
    if (memds_imap_open_io(&c, &io, &cfg, &err, p) != APR_SUCCESS) {
        if (err.msg == NULL) {
            fail("open failed without a message");
        }
        return;
    }
    qr.uidvalidity = 7;
    qr.modseq = 9;
    qr.known_uids = "1:5";
    (void)memds_imap_select(c, "INBOX", 0, memds_imap_qresync(c) ? &qr : NULL,
                            any_resp, &n, &mb, &err);
    (void)memds_imap_select(c, "INBOX", MEMDS_IMAP_SEL_CONDSTORE, NULL,
                            any_resp, &n, &mb, &err);
    (void)memds_imap_uid_fetch(c, "1:*",
                               "(UID FLAGS MODSEQ ENVELOPE BODYSTRUCTURE)",
                               memds_imap_qresync(c) ? 5 : 0,
                               memds_imap_qresync(c) ? MEMDS_IMAP_FETCH_VANISHED
                                                     : 0,
                               any_resp, &n, &err);
    (void)memds_imap_fetch_body(c, 1, "", 0, 0, 0, chunk, &total, &info, &err);
    (void)memds_imap_fetch_body(c, 1, "2", 10, 100, MEMDS_IMAP_BODY_BINARY,
                                chunk, &total, &info, &err);
    (void)memds_imap_uid_store(c, "1:3", '+', "\\Seen", 0, 4, any_resp, &n,
                               &mod, &err, p);
    (void)memds_imap_uid_search(c, "ALL", &sr, &err, p);
    (void)memds_imap_list(c, "MESSAGES UIDNEXT", &boxes, &err, p);
    (void)memds_imap_status(c, "Sent", NULL, &st, &err, p);
    (void)memds_imap_append(c, "Sent", "\\Seen", 1, "hello", 5, &uv, &uid,
                            &err);
    (void)memds_imap_uid_move(c, "1", "Trash", any_resp, &n, &cu, &err, p);
    (void)memds_imap_noop(c, any_resp, &n, &err);
    memds_imap_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;

    setup();
    if (apr_pool_create(&p, root_pool) != APR_SUCCESS) {
        abort();
    }
    if (size >= 2 && data[0] == '#' && data[1] == 'S') {
        session(data + 2, size - 2, p);
    }
    else {
        check_parse(data, size, p);
    }
    apr_pool_destroy(p);
    return 0;
}
