/* libFuzzer target: the syncml:filtertype-cgi record grammar
 * (syncml/memds_filter.c).
 *
 * Per input: parse it as a record expression. On failure there must be a
 * reason. On success the result must be sane (at least one term, numbers
 * not negative, a LUID without NUL) and its canonical rendering (the
 * parsed values written back in the grammar, the LUID %-escaped) must
 * parse to the same values. The same bytes as the Record of a whole
 * Filter must give 200 exactly when the parse succeeded, else 422.
 * Anything else aborts. Seeds: built in; MEMDS_FUZZ_FILTER_SEEDS=DIR
 * writes them to DIR first. */
#include "syncml/memds_codes.h"
#include "syncml/memds_filter.h"

#include "fuzz_seeds.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define S(x) FUZZ_SEED(x)
static const fuzz_seed_t seeds[] = {
    S("received&GE;20240101T000000Z"),
    S("modified&iGE;2024-01-01T00:00:00Z"),
    S("received&GE;20240101T000000Z&AND;received&LT;20250101T000000Z"),
    S("SINCE&EQ;20240229&AND;BEFORE&EQ;20240301"),
    S("&LUID;&EQ;4711"),
    S("&LUID&iEQ;I/4711-FUN-1700000001"),
    S("&LUID;&EQ;a%26b%3Bc"),
    S("MAXSIZE&EQ;20480&AND;NOATT&EQ;true&AND;MAXCOUNT&EQ;50"),
    S("&LUID;&EQ;7&AND;received&LE;20240101&AND;MAXSIZE&EQ;0"),
    S("(SUBJECT&iCON;invoice)&OR;(FROM&iCON;bank)"),
    S("&LUID&GT;100"),
};

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_filter: invariant broken: %s\n", what);
        abort();
    }
}

static const char *date(apr_time_t t, apr_pool_t *p)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d%02d%02dT%02d%02d%02dZ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec);
}

/* The parsed record written back in the grammar. */
static const char *render(const memds_filter_rec_t *r, apr_pool_t *p)
{
    const char *s = "";
    const char *sep = "";
    size_t i;

    if (r->luid) {
        char *e = apr_palloc(p, strlen(r->luid) * 3 + 1), *o = e;
        for (i = 0; r->luid[i]; ++i) {
            o += sprintf(o, "%%%02X", (unsigned char)r->luid[i]);
        }
        *o = '\0';
        s = apr_pstrcat(p, s, sep, "&LUID;&EQ;", e, NULL);
        sep = "&AND;";
    }
    if (r->has_since) {
        s = apr_pstrcat(p, s, sep, "received", r->since_incl ? "&GE;" : "&GT;",
                        date(r->since, p), NULL);
        sep = "&AND;";
    }
    if (r->has_before) {
        s = apr_pstrcat(p, s, sep, "received", r->before_incl ? "&LE;" : "&LT;",
                        date(r->before, p), NULL);
        sep = "&AND;";
    }
    if (r->max_size != MEMDS_NOVAL) {
        s = apr_psprintf(p, "%s%sMAXSIZE&EQ;%" APR_INT64_T_FMT, s, sep,
                         r->max_size);
        sep = "&AND;";
    }
    if (r->max_count != MEMDS_NOVAL) {
        s = apr_psprintf(p, "%s%sMAXCOUNT&EQ;%" APR_INT64_T_FMT, s, sep,
                         r->max_count);
        sep = "&AND;";
    }
    if (r->noatt != MEMDS_NOVAL) {
        s = apr_pstrcat(p, s, sep, "NOATT&EQ;", r->noatt ? "true" : "false",
                        NULL);
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    memds_filter_rec_t r, r2;
    memds_filter_t f;
    memds_item_t it;
    memds_meta_t meta;
    memds_filter_spec_t *sp = NULL;
    const char *why = NULL, *s;
    apr_status_t rv;
    int st;

    apr_pool_create(&p, NULL);
    rv = memds_filter_cgi_parse(&r, (const char *)data, size, &why, p);
    if (rv != APR_SUCCESS) {
        check(rv == APR_EINVAL, "a failure other than APR_EINVAL");
        check(why != NULL && *why, "a failure without a reason");
    }
    else {
        check(r.terms >= 1, "success without a term");
        check(r.luid == NULL || strlen(r.luid) > 0, "an empty LUID");
        check(r.max_size == MEMDS_NOVAL || r.max_size >= 0, "MAXSIZE < 0");
        check(r.max_count == MEMDS_NOVAL || r.max_count >= 0, "MAXCOUNT < 0");
        check(r.noatt == MEMDS_NOVAL || r.noatt == 0 || r.noatt == 1,
              "NOATT not a boolean");
        check(!r.has_since || r.since >= 0, "a bound before 1970");
        s = render(&r, p);
        why = NULL;
        check(memds_filter_cgi_parse(&r2, s, strlen(s), &why, p) == APR_SUCCESS,
              "the rendering does not parse");
        check((r.luid == NULL) == (r2.luid == NULL)
                  && (r.luid == NULL || strcmp(r.luid, r2.luid) == 0),
              "the LUID changed");
        check(r.has_since == r2.has_since && r.has_before == r2.has_before
                  && (!r.has_since
                      || (r.since == r2.since && r.since_incl == r2.since_incl))
                  && (!r.has_before
                      || (r.before == r2.before
                          && r.before_incl == r2.before_incl)),
              "the date window changed");
        check(r.max_size == r2.max_size && r.max_count == r2.max_count
                  && r.noatt == r2.noatt,
              "a keyword changed");
    }
    /* the same bytes as a whole Filter's Record */
    memset(&f, 0, sizeof(f));
    memset(&it, 0, sizeof(it));
    memset(&meta, 0, sizeof(meta));
    meta.type = MEMDS_FILTER_CGI;
    it.meta = &meta;
    it.data_kind = MEMDS_DATA_BYTES;
    it.data.data = (const char *)data;
    it.data.len = size;
    f.record = &it;
    why = NULL;
    st = memds_filter_spec(&sp, &f, &why, p);
    check(rv == APR_SUCCESS ? st == MEMDS_ST_OK && sp && sp->record
                            : st == MEMDS_ST_BAD_CGI_SCRIPT && why && *why,
          "the Filter's status disagrees with the parse");
    apr_pool_destroy(p);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    fuzz_write_seeds("MEMDS_FUZZ_FILTER_SEEDS", "filter", seeds,
                     FUZZ_NSEEDS(seeds));
    return 0;
}
