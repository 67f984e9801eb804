/* Unit tests: store/memds_pgpool.c without a server (the integration tests
 * run it against a real PostgreSQL). */
#include "unit.h"
#include "store/memds_pgpool.h"

#include <string.h>

static void check_conninfo(void)
{
    CU_ASSERT_PTR_NULL(
        memds_pg_check_conninfo("host=127.0.0.1 dbname=memds", unit_pool));
    CU_ASSERT_PTR_NULL(
        memds_pg_check_conninfo("postgresql://u@127.0.0.1:5/db", unit_pool));
    CU_ASSERT_PTR_NOT_NULL(memds_pg_check_conninfo("nosuchkey=1", unit_pool));
    CU_ASSERT_PTR_NOT_NULL(
        memds_pg_check_conninfo("host='unterminated", unit_pool));
}

static int logged;
static void count_log(void *baton, int level, apr_status_t rv, const char *msg)
{
    ++logged;
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "PostgreSQL connect failed"));
}

static void unreachable_server(void)
{
    /* Port 1 on loopback: refused at once, nothing leaves the machine. */
    memds_pgpool_params_t pp = { 0, 1, 2, apr_time_from_sec(60),
                                 apr_time_from_sec(1) };
    memds_logger_t lg = { count_log, NULL };
    memds_pgpool_t *pool;
    memds_pgconn_t *c = NULL;
    memds_pgpool_stats_t st;
    const char *err = NULL;

    logged = 0;
    CU_ASSERT_EQUAL_FATAL(memds_pgpool_create(&pool,
                                              "host=127.0.0.1 port=1 "
                                              "dbname=x user=x",
                                              &pp, &lg, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL(memds_pgpool_acquire(&c, pool, &err, unit_pool),
                    APR_ECONNREFUSED);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(err);
    CU_ASSERT(logged >= 1);
    memds_pgpool_get_stats(&st, pool);
    CU_ASSERT_EQUAL(st.open, 0);
    CU_ASSERT_EQUAL(st.in_use, 0);
    CU_ASSERT(st.connect_fails >= 1);
    CU_ASSERT_EQUAL(st.acquire_fails, 1);
}

static void min_connections_fail_creation(void)
{
    memds_pgpool_params_t pp = { 1, 1, 1, apr_time_from_sec(60),
                                 apr_time_from_sec(1) };
    memds_pgpool_t *pool = NULL;

    CU_ASSERT_NOT_EQUAL(memds_pgpool_create(&pool,
                                            "host=127.0.0.1 port=1 "
                                            "dbname=x user=x",
                                            &pp, NULL, unit_pool),
                        APR_SUCCESS);
}

void unit_add_pgpool(void)
{
    CU_pSuite s = CU_add_suite("pgpool", NULL, NULL);

    CU_add_test(s, "conninfo check", check_conninfo);
    CU_add_test(s, "unreachable server", unreachable_server);
    CU_add_test(s, "MemDSDBMin needs a server", min_connections_fail_creation);
}
