/* Unit tests: the one outcome map (ds/memds_outcome.c): every error kind
 * to a SyncML status and a log level, for an item and for a session; the
 * SMTP typed errors through it give the statuses the SMTP layer always
 * gave (the IMAP ones are checked in test_imap.c). */
#include "unit.h"
#include "ds/memds_outcome.h"
#include "syncml/memds_codes.h"
#include "../../backends/memds_imap.h"
#include "../../backends/memds_smtp.h"

#include <string.h>

#define CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
        } \
        CU_ASSERT(cond); \
    } while (0)

static const struct {
    memds_err_kind_e kind;
    int item, session;
    memds_log_level_e level, session_level;
} kinds[] = {
    { MEMDS_ERR_NONE, 200, 200, MEMDS_LOG_DEBUG, MEMDS_LOG_DEBUG },
    { MEMDS_ERR_TRANSIENT, 503, 503, MEMDS_LOG_WARNING, MEMDS_LOG_WARNING },
    { MEMDS_ERR_TLS, 503, 503, MEMDS_LOG_ERR, MEMDS_LOG_ERR },
    { MEMDS_ERR_AUTH, 401, 401, MEMDS_LOG_INFO, MEMDS_LOG_INFO },
    { MEMDS_ERR_NOT_FOUND, 404, 404, MEMDS_LOG_INFO, MEMDS_LOG_WARNING },
    { MEMDS_ERR_EXISTS, 418, 500, MEMDS_LOG_INFO, MEMDS_LOG_WARNING },
    { MEMDS_ERR_PERMISSION, 425, 425, MEMDS_LOG_WARNING, MEMDS_LOG_WARNING },
    { MEMDS_ERR_REFUSED, 403, 500, MEMDS_LOG_INFO, MEMDS_LOG_WARNING },
    { MEMDS_ERR_INVALID, 400, 500, MEMDS_LOG_INFO, MEMDS_LOG_WARNING },
    { MEMDS_ERR_TOO_LARGE, 413, 500, MEMDS_LOG_INFO, MEMDS_LOG_WARNING },
    { MEMDS_ERR_QUOTA, 510, 510, MEMDS_LOG_WARNING, MEMDS_LOG_WARNING },
    { MEMDS_ERR_FAILED, 510, 510, MEMDS_LOG_WARNING, MEMDS_LOG_WARNING },
    { MEMDS_ERR_PROTOCOL, 510, 510, MEMDS_LOG_ERR, MEMDS_LOG_ERR },
    { MEMDS_ERR_STORAGE, 510, 510, MEMDS_LOG_ERR, MEMDS_LOG_ERR },
    { MEMDS_ERR_REJECTED, 500, 500, MEMDS_LOG_ERR, MEMDS_LOG_ERR },
    { MEMDS_ERR_CONFIG, 500, 500, MEMDS_LOG_ERR, MEMDS_LOG_ERR },
    { MEMDS_ERR_INTERNAL, 500, 500, MEMDS_LOG_ERR, MEMDS_LOG_ERR },
};

static void test_kinds(void)
{
    apr_size_t i, j;

    CU_ASSERT_EQUAL(sizeof(kinds) / sizeof(kinds[0]), MEMDS_ERR_KINDS);
    for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        memds_err_t e = memds_err_make(kinds[i].kind, "Some fixed reason");
        memds_outcome_t o = memds_outcome_of(&e, MEMDS_OUTCOME_ITEM);
        memds_outcome_t s = memds_outcome_of(&e, MEMDS_OUTCOME_SESSION);

        CHECK(o.status == kinds[i].item, "%s: item %d, expected %d",
              memds_err_kind_name(kinds[i].kind), o.status, kinds[i].item);
        CHECK(s.status == kinds[i].session, "%s: session %d, expected %d",
              memds_err_kind_name(kinds[i].kind), s.status, kinds[i].session);
        CU_ASSERT_EQUAL(o.level, kinds[i].level);
        CU_ASSERT_EQUAL(s.level, kinds[i].session_level);
        CU_ASSERT_STRING_EQUAL(o.text, "Some fixed reason");
        CU_ASSERT_EQUAL(memds_outcome_status(kinds[i].kind, MEMDS_OUTCOME_ITEM),
                        kinds[i].item);
        /* only success is a success */
        CU_ASSERT_EQUAL(MEMDS_ST_IS_SUCCESS(o.status),
                        kinds[i].kind == MEMDS_ERR_NONE);
        /* every kind has its own name */
        CU_ASSERT_PTR_NOT_NULL(memds_err_kind_name(kinds[i].kind));
        for (j = 0; j < i; j++) {
            CU_ASSERT(strcmp(memds_err_kind_name(kinds[i].kind),
                             memds_err_kind_name(kinds[j].kind))
                      != 0);
        }
    }
}

static void test_edges(void)
{
    memds_outcome_t o = memds_outcome_of(NULL, MEMDS_OUTCOME_ITEM);
    memds_err_t e;

    CU_ASSERT_EQUAL(o.status, MEMDS_ST_OK);
    CU_ASSERT_STRING_EQUAL(o.text, "OK");
    CU_ASSERT_EQUAL(o.level, MEMDS_LOG_DEBUG);
    /* a kind out of range is an internal error, never a success */
    e.kind = (memds_err_kind_e)999;
    e.text = NULL;
    o = memds_outcome_of(&e, MEMDS_OUTCOME_SESSION);
    CU_ASSERT_EQUAL(o.status, MEMDS_ST_COMMAND_FAILED);
    CU_ASSERT_EQUAL(o.level, MEMDS_LOG_ERR);
    CU_ASSERT_STRING_EQUAL(o.text, "internal");
    CU_ASSERT_EQUAL(memds_outcome_status((memds_err_kind_e)-1,
                                         MEMDS_OUTCOME_ITEM),
                    MEMDS_ST_COMMAND_FAILED);
    CU_ASSERT_STRING_EQUAL(memds_err_kind_name((memds_err_kind_e)999),
                           "unknown");
    /* no text: the kind's name */
    e = memds_err_make(MEMDS_ERR_QUOTA, NULL);
    CU_ASSERT_STRING_EQUAL(memds_outcome_of(&e, MEMDS_OUTCOME_ITEM).text,
                           "quota");
}

/* The SMTP results and the statuses memds_smtp_status_of gave before the
 * typed errors (its table in memds_smtp.h, row by row). */
static void test_smtp(void)
{
    static const struct {
        memds_smtp_ekind_e kind;
        int code;
        const char *enhanced;
        int in_doubt;
        memds_err_kind_e want;
        int status;
    } map[] = {
        { MEMDS_SMTP_E_NONE, 250, NULL, 0, MEMDS_ERR_NONE, 200 },
        { MEMDS_SMTP_E_DATA, 0, NULL, 1, MEMDS_ERR_TRANSIENT, 503 },
        { MEMDS_SMTP_E_HOOK, 0, NULL, 0, MEMDS_ERR_STORAGE, 510 },
        { MEMDS_SMTP_E_ARG, 0, NULL, 0, MEMDS_ERR_INVALID, 400 },
        { MEMDS_SMTP_E_CONFIG, 0, NULL, 0, MEMDS_ERR_CONFIG, 500 },
        { MEMDS_SMTP_E_CONNECT, 0, NULL, 0, MEMDS_ERR_TRANSIENT, 503 },
        { MEMDS_SMTP_E_TLS, 0, NULL, 0, MEMDS_ERR_TLS, 503 },
        { MEMDS_SMTP_E_TIMEOUT, 0, NULL, 0, MEMDS_ERR_TRANSIENT, 503 },
        { MEMDS_SMTP_E_AUTH, 454, "4.7.0", 0, MEMDS_ERR_TRANSIENT, 503 },
        { MEMDS_SMTP_E_AUTH, 535, "5.7.8", 0, MEMDS_ERR_AUTH, 401 },
        { MEMDS_SMTP_E_SENDER, 451, "4.3.0", 0, MEMDS_ERR_TRANSIENT, 503 },
        { MEMDS_SMTP_E_RCPT, 552, "5.2.2", 0, MEMDS_ERR_TRANSIENT, 503 },
        { MEMDS_SMTP_E_DATA, 552, "5.3.4", 0, MEMDS_ERR_TOO_LARGE, 413 },
        { MEMDS_SMTP_E_SENDER, 552, NULL, 0, MEMDS_ERR_TOO_LARGE, 413 },
        { MEMDS_SMTP_E_RCPT, 554, "5.3.4", 0, MEMDS_ERR_TOO_LARGE, 413 },
        { MEMDS_SMTP_E_SENDER, 553, "5.1.8", 0, MEMDS_ERR_REFUSED, 403 },
        { MEMDS_SMTP_E_RCPT, 554, "5.7.1", 0, MEMDS_ERR_REFUSED, 403 },
        { MEMDS_SMTP_E_RCPT, 550, "5.1.1", 0, MEMDS_ERR_INVALID, 400 },
        { MEMDS_SMTP_E_RCPT, 501, NULL, 0, MEMDS_ERR_INVALID, 400 },
        { MEMDS_SMTP_E_DATA, 554, "5.7.1", 0, MEMDS_ERR_REFUSED, 403 },
        { MEMDS_SMTP_E_DATA, 554, "5.6.0", 0, MEMDS_ERR_REJECTED, 500 },
        { MEMDS_SMTP_E_OTHER, 0, NULL, 0, MEMDS_ERR_INTERNAL, 500 },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        memds_smtp_err_t err;
        memds_err_t e;
        memds_outcome_t o;

        memset(&err, 0, sizeof(err));
        err.kind = map[i].kind;
        err.smtp_code = map[i].code;
        err.enhanced = map[i].enhanced;
        err.in_doubt = map[i].in_doubt;
        err.data_sent = map[i].in_doubt;
        err.reply = "550 5.1.1 <secret@example.org>: unknown user";
        err.msg = "SMTP AUTH as user with password secret failed";
        e = memds_smtp_err_of(&err);
        o = memds_outcome_of(&e, MEMDS_OUTCOME_ITEM);
        CHECK(e.kind == map[i].want, "smtp %d: kind %s, expected %s", (int)i,
              memds_err_kind_name(e.kind), memds_err_kind_name(map[i].want));
        CHECK(o.status == map[i].status, "smtp %d: %d, expected %d", (int)i,
              o.status, map[i].status);
        CHECK(e.text && *e.text && strstr(e.text, "secret") == NULL
                  && strchr(e.text, '@') == NULL,
              "smtp %d: sanitised text", (int)i);
    }
    CU_ASSERT_EQUAL(memds_smtp_err_of(NULL).kind, MEMDS_ERR_NONE);
    CU_ASSERT_EQUAL(memds_outcome_of(NULL, MEMDS_OUTCOME_ITEM).status, 200);
}

void unit_add_outcome(void)
{
    CU_pSuite s = CU_add_suite("outcome", NULL, NULL);

    CU_add_test(s, "every kind, item and session", test_kinds);
    CU_add_test(s, "success, unknown kinds, no text", test_edges);
    CU_add_test(s, "SMTP results", test_smtp);
}
