/* Unit test suites of the core library (CUnit). */
#ifndef MEMDS_UNIT_H
#define MEMDS_UNIT_H

#include <CUnit/CUnit.h>
#include <apr_pools.h>

/** A pool for the running test, cleared between tests. */
extern apr_pool_t *unit_pool;

void unit_add_util(void);
void unit_add_auth(void);
void unit_add_pgpool(void);
void unit_add_xml(void);
void unit_add_wbxml(void);
void unit_add_msg(void);
void unit_add_filter(void);
void unit_add_san(void);
void unit_add_wappush(void);
void unit_add_imap(void);
void unit_add_email(void);
void unit_add_mime(void);
void unit_add_outcome(void);
void unit_add_compose(void);
void unit_add_trunc(void);
void unit_add_engine(void);
void unit_add_stats(void);

/** Read a file into unit_pool; NULL if unreadable. */
const char *unit_read_file(const char *path, apr_size_t *plen);

#endif
