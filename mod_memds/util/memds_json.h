/**
 * @file memds_json.h
 * The one JSON shape the module reads: a flat object whose values are
 * strings, numbers, true, false or null (Dovecot's push_notification
 * events, docs/push.md). Strict RFC 8259 syntax for that subset; nested
 * objects and arrays are refused. Pure; results from the pool given.
 */
#ifndef MEMDS_JSON_H
#define MEMDS_JSON_H

#include <apr_pools.h>
#include <apr_tables.h>

/**
 * Parse buf (len bytes) into *pfields: keys to values, NUL-terminated
 * (strings unescaped, \\u escapes as UTF-8, other bytes as given; numbers,
 * true, false and null as written). Keys are looked up without regard to
 * case (an apr_table_t); a repeated key keeps the last value.
 * APR_EINVAL with *why (naming the offset) for anything else, including a
 * string holding a NUL.
 */
apr_status_t memds_json_flat(apr_table_t **pfields, const char *buf,
                             apr_size_t len, const char **why, apr_pool_t *p);

#endif /* MEMDS_JSON_H */
