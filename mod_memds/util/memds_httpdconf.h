/**
 * @file memds_httpdconf.h
 * Reading a directive's values out of httpd's configuration files without
 * httpd (memds-admin --config): lines with their backslash continuations,
 * comments, quoted arguments as httpd's ap_getword_conf splits them,
 * Include and IncludeOptional (wildcards, directories), ServerRoot for
 * relative paths, and ${NAME} from Define or the environment. Sections
 * (<VirtualHost>, <IfModule>, ...) are not evaluated: every occurrence
 * counts, in file order. Pure APR; no global state.
 */
#ifndef MEMDS_HTTPDCONF_H
#define MEMDS_HTTPDCONF_H

#include <apr_pools.h>
#include <apr_tables.h>

/** Deepest Include nesting followed (httpd's own limit is 128). */
#define MEMDS_HTTPDCONF_MAX_DEPTH 32

/**
 * The first argument of every occurrence of directive name (compared
 * without regard to case) in the configuration file path and what it
 * includes. server_root: where relative paths start until a ServerRoot
 * directive says otherwise (NULL: the directory of path). *pvalues gets
 * const char * (possibly none). On failure (path or a non-optional,
 * wildcard-free Include unreadable, nesting too deep) *perr says why.
 */
apr_status_t memds_httpdconf_find(apr_array_header_t **pvalues,
                                  const char *path, const char *server_root,
                                  const char *name, const char **perr,
                                  apr_pool_t *p);

/** The next argument of a directive line as ap_getword_conf reads it
 *  ("..." or '...' with backslash escapes of the quote, else up to
 *  white space); *pline moves past it. NULL at the end of the line. */
const char *memds_httpdconf_word(const char **pline, apr_pool_t *p);

#endif /* MEMDS_HTTPDCONF_H */
