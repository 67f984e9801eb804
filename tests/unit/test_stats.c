/* Unit tests: util/memds_stats.c (latency histograms) and
 * util/memds_httpdconf.c (a directive out of httpd's configuration). */
#include "unit.h"
#include "util/memds_stats.h"
#include "util/memds_httpdconf.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

static void test_hist_buckets(void)
{
    memds_stats_t s;
    apr_uint64_t cum[MEMDS_HIST_BUCKETS], sum = 0, err = 0;
    int i;

    memset(&s, 0, sizeof(s));
    memds_stats_observe(&s, MEMDS_OP_PG_QUERY, 100, 0);     /* le 0.0001 */
    memds_stats_observe(&s, MEMDS_OP_PG_QUERY, 101, 0);     /* le 0.00025 */
    memds_stats_observe(&s, MEMDS_OP_PG_QUERY, 2000000, 1); /* le 2.5 */
    memds_stats_observe(&s, MEMDS_OP_PG_QUERY, 99000000, 0); /* +Inf */
    memds_stats_observe(&s, MEMDS_OP_PG_QUERY, -5, 0);       /* clock: 0 */
    memds_stats_observe(NULL, MEMDS_OP_PG_QUERY, 1, 1);      /* no-op */
    memds_stats_observe(&s, MEMDS_OP_COUNT, 1, 1);           /* ignored */
    memds_hist_read(&s.op[MEMDS_OP_PG_QUERY], cum, &sum, &err);
    CU_ASSERT_EQUAL(cum[0], 2);
    CU_ASSERT_EQUAL(cum[1], 3);
    CU_ASSERT_EQUAL(cum[12], 3);  /* le 1 s */
    CU_ASSERT_EQUAL(cum[13], 4);  /* le 2.5 s */
    CU_ASSERT_EQUAL(cum[MEMDS_HIST_BUCKETS - 2], 4); /* le 30 s */
    CU_ASSERT_EQUAL(cum[MEMDS_HIST_BUCKETS - 1], 5); /* +Inf: the count */
    CU_ASSERT_EQUAL(sum, 100 + 101 + 2000000 + 99000000);
    CU_ASSERT_EQUAL(err, 1);
    for (i = 1; i < MEMDS_HIST_BUCKETS; ++i) {
        CU_ASSERT(cum[i] >= cum[i - 1]);
    }
    for (i = 1; i < MEMDS_HIST_NBOUNDS; ++i) {
        CU_ASSERT(memds_hist_bound_us(i) > memds_hist_bound_us(i - 1));
    }
    CU_ASSERT_EQUAL(memds_hist_bound_us(MEMDS_HIST_NBOUNDS), 0);
    memds_hist_read(&s.op[MEMDS_OP_IMAP_FETCH], cum, &sum, &err);
    CU_ASSERT_EQUAL(cum[MEMDS_HIST_BUCKETS - 1], 0);
}

static void test_imap_ops(void)
{
    CU_ASSERT_EQUAL(memds_stats_imap_op("UID FETCH"), MEMDS_OP_IMAP_FETCH);
    CU_ASSERT_EQUAL(memds_stats_imap_op("FETCH"), MEMDS_OP_IMAP_FETCH);
    CU_ASSERT_EQUAL(memds_stats_imap_op("uid store"), MEMDS_OP_IMAP_STORE);
    CU_ASSERT_EQUAL(memds_stats_imap_op("EXAMINE"), MEMDS_OP_IMAP_SELECT);
    CU_ASSERT_EQUAL(memds_stats_imap_op("UID MOVE"), MEMDS_OP_IMAP_MOVE);
    CU_ASSERT_EQUAL(memds_stats_imap_op("STATUS"), MEMDS_OP_IMAP_LIST);
    CU_ASSERT_EQUAL(memds_stats_imap_op("FETCHX"), MEMDS_OP_IMAP_OTHER);
    CU_ASSERT_EQUAL(memds_stats_imap_op("NOOP"), MEMDS_OP_IMAP_OTHER);
    CU_ASSERT_EQUAL(memds_stats_imap_op(NULL), MEMDS_OP_IMAP_OTHER);
    CU_ASSERT_STRING_EQUAL(memds_stats_op_label(MEMDS_OP_PG_TX),
                           "transaction");
    CU_ASSERT_STRING_EQUAL(memds_stats_op_label(MEMDS_OP_PUSH_SEND), "push");
    CU_ASSERT_STRING_EQUAL(memds_stats_op_label(MEMDS_OP_COUNT), "?");
}

static void test_conf_word(void)
{
    const char *l = "  \"host=a dbname=b\" 'it\\'s'  plain\\x  ";

    CU_ASSERT_STRING_EQUAL(memds_httpdconf_word(&l, unit_pool),
                           "host=a dbname=b");
    CU_ASSERT_STRING_EQUAL(memds_httpdconf_word(&l, unit_pool), "it's");
    CU_ASSERT_STRING_EQUAL(memds_httpdconf_word(&l, unit_pool), "plain\\x");
    CU_ASSERT_PTR_NULL(memds_httpdconf_word(&l, unit_pool));
}

static const char *put(const char *dir, const char *name, const char *text)
{
    const char *path = apr_pstrcat(unit_pool, dir, "/", name, NULL);
    apr_file_t *f;

    if (apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                                    | APR_FOPEN_TRUNCATE,
                      APR_OS_DEFAULT, unit_pool)
        == APR_SUCCESS) {
        apr_file_puts(text, f);
        apr_file_close(f);
    }
    return path;
}

static void test_conf_find(void)
{
    char tmpl[] = "/tmp/memds-unit-conf-XXXXXX";
    const char *dir = mkdtemp(tmpl), *main, *err = NULL;
    apr_array_header_t *v = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    apr_dir_make(apr_pstrcat(unit_pool, dir, "/sites", NULL), APR_OS_DEFAULT,
                 unit_pool);
    apr_dir_make(apr_pstrcat(unit_pool, dir, "/conf.d", NULL), APR_OS_DEFAULT,
                 unit_pool);
    main = put(dir, "httpd.conf",
               "# MemDSDatabase \"commented out\"\n"
               "Define PGPORT 5433\n"
               "Include sites/*.conf\n"
               "IncludeOptional nowhere/*.conf\n"
               "IncludeOptional missing.conf\n"
               "Include conf.d\n");
    put(dir, "sites/a.conf",
        "<VirtualHost *:80>\n"
        "  memdsdatabase \"host=127.0.0.1 \\\n"
        "port=${PGPORT} dbname=memds\"\n"
        "</VirtualHost>\n");
    put(dir, "conf.d/z.conf", "MemDSDatabase other\n");
    CU_ASSERT_EQUAL(memds_httpdconf_find(&v, main, NULL, "MemDSDatabase",
                                         &err, unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(v->nelts, 2);
    CU_ASSERT_STRING_EQUAL(APR_ARRAY_IDX(v, 0, const char *),
                           "host=127.0.0.1 port=5433 dbname=memds");
    CU_ASSERT_STRING_EQUAL(APR_ARRAY_IDX(v, 1, const char *), "other");
    /* ServerRoot changes where relative Includes start */
    main = put(dir, "root.conf",
               apr_psprintf(unit_pool, "ServerRoot %s/sites\nInclude a.conf\n",
                            dir));
    CU_ASSERT_EQUAL(memds_httpdconf_find(&v, main, "/nonexistent",
                                         "MemDSDatabase", &err, unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(v->nelts, 1);
    /* a missing Include without wildcards fails, as httpd does */
    main = put(dir, "bad.conf", "Include nothere.conf\n");
    err = NULL;
    CU_ASSERT_NOT_EQUAL(memds_httpdconf_find(&v, main, NULL, "MemDSDatabase",
                                             &err, unit_pool),
                        APR_SUCCESS);
    CU_ASSERT_PTR_NOT_NULL(err);
    /* an Include loop ends */
    main = put(dir, "loop.conf", "Include loop.conf\n");
    err = NULL;
    CU_ASSERT_EQUAL(memds_httpdconf_find(&v, main, NULL, "MemDSDatabase",
                                         &err, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(err != NULL && strstr(err, "nested") != NULL);
    CU_ASSERT_NOT_EQUAL(memds_httpdconf_find(&v, "/nonexistent/httpd.conf",
                                             NULL, "MemDSDatabase", &err,
                                             unit_pool),
                        APR_SUCCESS);
    {
        int rc = system(apr_pstrcat(unit_pool, "rm -rf '", dir, "'", NULL));
        (void)rc;
    }
}

void unit_add_stats(void)
{
    CU_pSuite s = CU_add_suite("stats", NULL, NULL);

    CU_add_test(s, "histogram buckets", test_hist_buckets);
    CU_add_test(s, "IMAP command kinds", test_imap_ops);
    CU_add_test(s, "httpd conf: words", test_conf_word);
    CU_add_test(s, "httpd conf: MemDSDatabase", test_conf_find);
}
