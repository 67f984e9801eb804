/* memds-unit: runs every CUnit suite of the core library.
 * Exit status: 0 when every test passed (automake's test driver reads it). */
#include "unit.h"

#include <CUnit/Basic.h>
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

int main(int argc, const char *const *argv)
{
    unsigned failed, run;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&unit_pool, NULL);
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 2;
    }
    unit_add_util();
    unit_add_msg_min();
    unit_add_pgpool();
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_tests_failed();
    run = CU_get_number_of_tests_run();
    printf("\nunit: %u passed, %u failed\n", run - failed, failed);
    CU_cleanup_registry();
    apr_pool_destroy(unit_pool);
    apr_terminate();
    return failed ? 1 : 0;
}
