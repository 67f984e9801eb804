/* memds-unit: runs every CUnit suite of the core library.
 * Exit status: 0 when every test passed (automake's test driver reads it). */
#include "unit.h"

#include <CUnit/Basic.h>
#include <CUnit/TestRun.h>
#include <apr_general.h>
#include <apr_file_io.h>
#include <stdio.h>
#include <stdlib.h>

apr_pool_t *unit_pool;

const char *unit_read_file(const char *path, apr_size_t *plen)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t got;

    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, unit_pool)
        != APR_SUCCESS) {
        return NULL;
    }
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS) {
        apr_file_close(f);
        return NULL;
    }
    buf = apr_palloc(unit_pool, (apr_size_t)fi.size + 1);
    if (apr_file_read_full(f, buf, (apr_size_t)fi.size, &got) != APR_SUCCESS) {
        apr_file_close(f);
        return NULL;
    }
    buf[got] = '\0';
    apr_file_close(f);
    *plen = got;
    return buf;
}

/* TAP output (one line per test case) so that automake's TAP driver and
 * CI count single tests; failures print their assertion lines as
 * diagnostics. The CUnit registry is the only state, owned by main. */
static void on_complete(const CU_pTest test, const CU_pSuite suite,
                        const CU_pFailureRecord failure)
{
    unsigned n = CU_get_number_of_tests_run();
    CU_pFailureRecord f;

    if (failure == NULL) {
        printf("ok %u - %s: %s\n", n, suite->pName, test->pName);
        return;
    }
    printf("not ok %u - %s: %s\n", n, suite->pName, test->pName);
    for (f = failure; f; f = f->pNext) {
        printf("# %s:%u: %s\n", f->strFileName ? f->strFileName : "?",
               f->uiLineNumber, f->strCondition ? f->strCondition : "");
    }
}

int main(int argc, const char *const *argv)
{
    unsigned failed, run, total = 0;
    CU_pSuite s;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&unit_pool, NULL);
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 2;
    }
    unit_add_util();
    unit_add_auth();
    unit_add_pgpool();
    unit_add_xml();
    unit_add_wbxml();
    unit_add_msg();
    unit_add_filter();
    unit_add_san();
    unit_add_wappush();
    unit_add_imap();
    unit_add_email();
    unit_add_mime();
    unit_add_outcome();
    unit_add_compose();
    unit_add_trunc();
    unit_add_engine();
    unit_add_stats();
    for (s = CU_get_registry()->pSuite; s; s = s->pNext) {
        total += s->uiNumberOfTests;
    }
    printf("1..%u\n", total);
    fflush(stdout);
    CU_set_test_complete_handler(on_complete);
    CU_run_all_tests();
    failed = CU_get_number_of_tests_failed();
    run = CU_get_number_of_tests_run();
    printf("# unit: %u passed, %u failed\n", run - failed, failed);
    CU_cleanup_registry();
    apr_pool_destroy(unit_pool);
    apr_terminate();
    return failed ? 1 : 0;
}
