/* Unit tests: syncml/memds_filter.c (the syncml:filtertype-cgi record
 * grammar, the emailitem field clause, a whole Filter -> status). */
#include "unit.h"
#include "syncml/memds_codes.h"
#include "syncml/memds_filter.h"

#include <apr_strings.h>
#include <stdio.h>
#include <string.h>

static memds_filter_rec_t *ok(const char *s)
{
    memds_filter_rec_t *r = apr_palloc(unit_pool, sizeof(*r));
    const char *why = NULL;

    if (memds_filter_cgi_parse(r, s, strlen(s), &why, unit_pool)
        != APR_SUCCESS) {
        fprintf(stderr, "\n  '%s' refused: %s\n", s, why);
        CU_FAIL("filter refused");
        return NULL;
    }
    return r;
}

static void bad(const char *s, const char *needle)
{
    memds_filter_rec_t r;
    const char *why = NULL;

    CU_ASSERT_EQUAL(memds_filter_cgi_parse(&r, s, strlen(s), &why, unit_pool),
                    APR_EINVAL);
    if (why == NULL || strstr(why, needle) == NULL) {
        fprintf(stderr, "\n  '%s': reason '%s' lacks '%s'\n", s,
                why ? why : "(none)", needle);
        CU_FAIL("specific reason");
    }
}

static apr_time_t utc(int y, int mo, int d, int h, int mi, int s)
{
    apr_time_exp_t tm;
    apr_time_t t;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    apr_time_exp_gmt_get(&t, &tm);
    return t;
}

static void date_bounds(void)
{
    memds_filter_rec_t *r;
    apr_time_t jan = utc(2024, 1, 1, 0, 0, 0);

    /* lower bounds: GE (inclusive), GT (exclusive), EQ (from then on) */
    r = ok("received&GE;20240101T000000Z");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT(r->has_since && r->since == jan && r->since_incl);
    CU_ASSERT(!r->has_before && r->luid == NULL && r->terms == 1);
    CU_ASSERT_EQUAL(r->max_size, MEMDS_NOVAL);
    CU_ASSERT_EQUAL(r->noatt, MEMDS_NOVAL);
    r = ok("modified&GT;20240101T000000Z");
    CU_ASSERT(r && r->has_since && r->since == jan && !r->since_incl);
    r = ok("received&EQ;20240101");
    CU_ASSERT(r && r->has_since && r->since == jan && r->since_incl);
    /* case-insensitive operator (the Funambol client's &iGE;) */
    r = ok("modified&iGE;2024-01-01T00:00:00Z");
    CU_ASSERT(r && r->has_since && r->since == jan && r->since_incl);
    /* upper bounds */
    r = ok("received&LT;20240101T000000Z");
    CU_ASSERT(r && r->has_before && r->before == jan && !r->before_incl);
    r = ok("received&LE;20240101T000000Z");
    CU_ASSERT(r && r->has_before && r->before == jan && r->before_incl);
    /* the libsynthesis keywords */
    r = ok("SINCE&EQ;20240101T000000Z");
    CU_ASSERT(r && r->has_since && r->since == jan && r->since_incl);
    r = ok("SINCE&GT;20240101T000000Z");
    CU_ASSERT(r && r->has_since && !r->since_incl);
    r = ok("BEFORE&EQ;20240101T000000Z");
    CU_ASSERT(r && r->has_before && r->before == jan && !r->before_incl);
    r = ok("BEFORE&LE;20240101T000000Z");
    CU_ASSERT(r && r->has_before && r->before_incl);
    r = ok("since&EQ;20240101"); /* identifiers: any case */
    CU_ASSERT(r && r->has_since);
    /* a window */
    r = ok("received&GE;20240101T000000Z&AND;received&LT;20250101T120000Z");
    CU_ASSERT(r && r->has_since && r->has_before && r->terms == 2);
    CU_ASSERT(r && r->before == utc(2025, 1, 1, 12, 0, 0));
    r = ok("SINCE&EQ;20240229&AND;BEFORE&EQ;20240301");
    CU_ASSERT(r && r->since == utc(2024, 2, 29, 0, 0, 0)
              && r->before == utc(2024, 3, 1, 0, 0, 0));
}

static void luid_and_keywords(void)
{
    memds_filter_rec_t *r;

    r = ok("&LUID;&EQ;4711");
    CU_ASSERT(r && r->luid && strcmp(r->luid, "4711") == 0);
    /* the lenient forms (email-san.md 3.2) */
    r = ok("&LUID&EQ;I/4711-FUN-1700000001");
    CU_ASSERT(r && r->luid && strcmp(r->luid, "I/4711-FUN-1700000001") == 0);
    r = ok("&LUID;&iEQ;a");
    CU_ASSERT(r && r->luid && strcmp(r->luid, "a") == 0);
    r = ok("&LUID&iEQ;b");
    CU_ASSERT(r && r->luid && strcmp(r->luid, "b") == 0);
    /* %hh escapes in values */
    r = ok("&LUID;&EQ;a%26b%3Bc");
    CU_ASSERT(r && r->luid && strcmp(r->luid, "a&b;c") == 0);
    r = ok("MAXSIZE&EQ;20480&AND;NOATT&EQ;true&AND;MAXCOUNT&EQ;50");
    CU_ASSERT(r && r->max_size == 20480 && r->noatt == 1 && r->max_count == 50
              && r->terms == 3);
    r = ok("NOATT&EQ;0");
    CU_ASSERT(r && r->noatt == 0);
    r = ok("noatt&EQ;FALSE");
    CU_ASSERT(r && r->noatt == 0);
    r = ok("&LUID;&EQ;7&AND;received&GE;20240101&AND;MAXSIZE&EQ;0");
    CU_ASSERT(r && r->luid && r->has_since && r->max_size == 0);
}

static void refusals(void)
{
    bad("", "empty filter expression");
    bad("received", "expected an operator");
    bad("received&GE;", "empty value");
    bad("received&GE;20240101&AND;", "expected a term");
    bad("&AND;received&GE;20240101", "expected a term");
    bad("received&GE;20240101&OR;received&LT;20230101", "&OR; is not "
                                                        "supported");
    bad("received&GE;20240101&amp;received&LT;20230101",
        "expected &AND; between terms");
    bad("received&GE;20240101&received&LT;20230101",
        "expected &AND; between terms");
    bad("received&GE;20240101|received&LT;20230101", "'|' is not supported");
    bad("(received&GE;20240101)", "parentheses are not supported");
    bad("received&GE;2024(", "'(' is not supported");
    bad("SUBJECT&CON;invoice", "operator &CON; is not supported");
    bad("SUBJECT&iCON;invoice", "operator &iCON; is not supported");
    bad("received&NE;20240101", "operator &NE; is not supported");
    bad("received&NCON;x", "operator &NCON; is not supported");
    bad("received&XX;20240101", "unknown operator &XX;");
    bad("received&ge;20240101", "unknown operator &ge;"); /* case matters */
    bad("received&GE20240101", "expected an operator");
    bad("SUBJECT&EQ;invoice", "unknown identifier 'SUBJECT'");
    bad("DBOPTIONS&EQ;x", "unknown identifier 'DBOPTIONS'");
    bad("&LUID;&GT;100", "&LUID; takes &EQ; only");
    bad("&LUID;&EQ;1&AND;&LUID;&EQ;2", "a second &LUID;");
    bad("&LUID;&EQ;a%00b", "NUL in a LUID");
    bad("&LUID;&EQ;a%2", "'%' not followed by two hex digits");
    bad("&LUID;&EQ;a%zz", "'%' not followed by two hex digits");
    bad("&LUID;&EQ;a\tb", "control character");
    bad("&LUIDX;&EQ;1", "expected a term");
    bad("&LUID;&EQ;&AND;x", "empty value");
    bad("SINCE&LT;20240101", "SINCE takes &EQ;, &GE; or &GT;");
    bad("BEFORE&GE;20240101", "BEFORE takes &EQ;, &LT; or &LE;");
    bad("received&GE;yesterday", "'yesterday' is not a date");
    bad("received&GE;20241301", "is not a date");
    bad("received&GE;20230229", "is not a date");
    bad("received&GE;20240101T250000Z", "is not a date");
    bad("received&GE;20240101T000000", "is not a date");
    bad("received&GE;19690101", "is not a date");
    bad("received&GE;20240101&AND;SINCE&EQ;20230101",
        "a second lower date bound");
    bad("received&LT;20240101&AND;BEFORE&EQ;20230101",
        "a second upper date bound");
    bad("MAXSIZE&GT;1", "MAXSIZE takes &EQ; only");
    bad("MAXSIZE&EQ;-1", "MAXSIZE takes a number");
    bad("MAXSIZE&EQ;1234567890123456789", "MAXSIZE takes a number");
    bad("MAXSIZE&EQ;1&AND;MAXSIZE&EQ;2", "a second MAXSIZE");
    bad("MAXCOUNT&EQ;x", "MAXCOUNT takes a number");
    bad("MAXCOUNT&EQ;1&AND;MAXCOUNT&EQ;2", "a second MAXCOUNT");
    bad("NOATT&EQ;yes", "NOATT takes true, false, 1 or 0");
    bad("NOATT&EQ;1&AND;NOATT&EQ;0", "a second NOATT");
    bad("NOATT&LE;1", "NOATT takes &EQ; only");
    /* offsets are given */
    bad("received&GE;20240101&AND;foo&EQ;1", "at offset 25");
}

static memds_property_t *prop(const char *name, const char *max, const char *p1,
                              const char *p2)
{
    memds_property_t *pr = apr_pcalloc(unit_pool, sizeof(*pr));
    const char *ps[2];
    int i;

    ps[0] = p1;
    ps[1] = p2;
    pr->name = name;
    pr->max_size = max;
    for (i = 0; i < 2; ++i) {
        if (ps[i]) {
            memds_propparam_t *pp = apr_pcalloc(unit_pool, sizeof(*pp));
            pp->name = ps[i];
            if (pr->params == NULL) {
                pr->params = apr_array_make(unit_pool, 2, sizeof(pp));
            }
            APR_ARRAY_PUSH(pr->params, memds_propparam_t *) = pp;
        }
    }
    return pr;
}

static apr_array_header_t *props1(memds_property_t *pr)
{
    apr_array_header_t *a = apr_array_make(unit_pool, 1, sizeof(pr));

    APR_ARRAY_PUSH(a, memds_property_t *) = pr;
    return a;
}

static void field_clause(void)
{
    memds_filter_field_t f;
    const char *why = NULL;
    apr_array_header_t *two;
    memds_property_t *pr;

    CU_ASSERT_EQUAL(memds_filter_field_parse(&f,
                                             props1(prop("emailitem", NULL,
                                                         NULL, NULL)),
                                             &why, unit_pool),
                    MEMDS_ST_OK);
    CU_ASSERT(!f.texttype && !f.attachtype && f.max_size == MEMDS_NOVAL);
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f,
                                             props1(prop("emailitem", "20480",
                                                         "texttype",
                                                         "attachtype")),
                                             &why, unit_pool),
                    MEMDS_ST_OK);
    CU_ASSERT(f.texttype && f.attachtype && f.max_size == 20480);
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f,
                                             props1(prop("emailitem", "0",
                                                         "texttype", NULL)),
                                             &why, unit_pool),
                    MEMDS_ST_OK);
    CU_ASSERT(f.texttype && !f.attachtype && f.max_size == 0);
    /* refusals: unknown field or parameter 406, malformed 422 */
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f,
                                             props1(prop("subject", NULL, NULL,
                                                         NULL)),
                                             &why, unit_pool),
                    MEMDS_ST_NOT_SUPPORTED);
    CU_ASSERT(strstr(why, "field 'subject' is not supported") != NULL);
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f,
                                             props1(prop("emailitem", NULL,
                                                         "htmltype", NULL)),
                                             &why, unit_pool),
                    MEMDS_ST_NOT_SUPPORTED);
    CU_ASSERT(strstr(why, "parameter 'htmltype'") != NULL);
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f,
                                             props1(prop("emailitem", NULL,
                                                         "texttype",
                                                         "texttype")),
                                             &why, unit_pool),
                    MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT(strstr(why, "'texttype' twice") != NULL);
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f,
                                             props1(prop("emailitem", "2k",
                                                         NULL, NULL)),
                                             &why, unit_pool),
                    MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT(strstr(why, "MaxSize '2k' is not a number") != NULL);
    pr = prop("emailitem", NULL, NULL, NULL);
    pr->data_type = "chr";
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f, props1(pr), &why, unit_pool),
                    MEMDS_ST_NOT_SUPPORTED);
    two = props1(prop("emailitem", NULL, NULL, NULL));
    APR_ARRAY_PUSH(two, memds_property_t *) = prop("emailitem", NULL, NULL,
                                                   NULL);
    CU_ASSERT_EQUAL(memds_filter_field_parse(&f, two, &why, unit_pool),
                    MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT(strstr(why, "exactly one <Property>") != NULL);
}

static memds_item_t *rec_item(const char *type, const char *expr)
{
    memds_item_t *it = apr_pcalloc(unit_pool, sizeof(*it));

    if (type) {
        it->meta = apr_pcalloc(unit_pool, sizeof(*it->meta));
        it->meta->type = type;
    }
    it->data_kind = MEMDS_DATA_BYTES;
    it->data.data = expr;
    it->data.len = strlen(expr);
    return it;
}

static int spec_status(const memds_filter_t *f, const char **why,
                       memds_filter_spec_t **sp)
{
    *why = NULL;
    return memds_filter_spec(sp, f, why, unit_pool);
}

static void whole_filter(void)
{
    memds_filter_t f;
    memds_filter_spec_t *sp = NULL;
    memds_item_t *fld;
    const char *why;

    memset(&f, 0, sizeof(f));
    f.record = rec_item(MEMDS_FILTER_CGI, "&LUID;&EQ;9");
    f.filter_type = "INCLUSIVE";
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_OK);
    CU_ASSERT(sp && sp->inclusive && sp->record
              && strcmp(sp->record->luid, "9") == 0 && sp->field == NULL);
    f.filter_type = NULL; /* absent: EXCLUSIVE */
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_OK);
    CU_ASSERT(sp && !sp->inclusive);
    f.filter_type = "EXCLUSIVE";
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_OK);
    f.filter_type = "inclusive"; /* the values are case-sensitive */
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT(why && strstr(why, "FilterType 'inclusive'"));
    f.filter_type = NULL;
    /* grammar: another type 415, none 415, error 422 */
    f.record = rec_item("syncml:filtertype-xpath", "x");
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_UNSUPPORTED_MEDIA);
    CU_ASSERT(why && strstr(why, "'syncml:filtertype-xpath'"));
    f.record = rec_item(NULL, "&LUID;&EQ;1");
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_UNSUPPORTED_MEDIA);
    f.record = rec_item(MEMDS_FILTER_CGI, "a&OR;b");
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_BAD_CGI_SCRIPT);
    f.record = rec_item(MEMDS_FILTER_CGI, "");
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_BAD_CGI_SCRIPT);
    /* field */
    f.record = NULL;
    fld = rec_item("application/vnd.syncml-devinf+wbxml", "");
    fld->data_kind = MEMDS_DATA_PROPS;
    fld->props = props1(prop("emailitem", "100", "texttype", NULL));
    f.field = fld;
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_OK);
    CU_ASSERT(sp && sp->field && sp->field->texttype
              && sp->field->max_size == 100 && sp->record == NULL);
    fld->meta->type = "text/plain";
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_UNSUPPORTED_MEDIA);
    fld->meta = NULL;
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_OK);
    fld->props = props1(prop("subject", NULL, NULL, NULL));
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_NOT_SUPPORTED);
    fld->data_kind = MEMDS_DATA_BYTES;
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_BAD_CGI_SCRIPT);
    /* neither clause */
    f.field = NULL;
    CU_ASSERT_EQUAL(spec_status(&f, &why, &sp), MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT(why && strstr(why, "neither"));
}

void unit_add_filter(void)
{
    CU_pSuite s = CU_add_suite("filter", NULL, NULL);

    CU_add_test(s, "cgi: date bounds, every operator", date_bounds);
    CU_add_test(s, "cgi: LUID (lenient forms) and keywords", luid_and_keywords);
    CU_add_test(s, "cgi: every refusal with its reason", refusals);
    CU_add_test(s, "field clause: emailitem", field_clause);
    CU_add_test(s, "whole Filter: statuses 200/406/415/422", whole_filter);
}
