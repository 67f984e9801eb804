/**
 * @file memds_filter.h
 * DS 1.2 filters (docs/filters.md): the record expression in the
 * `syncml:filtertype-cgi` grammar and the `emailitem` field clause, parsed
 * into what a mail datastore can act on. Pure: no I/O, no state; every
 * result comes from the pool given.
 *
 * Accepted record terms, joined by `&AND;` only (after XML decoding the
 * parser sees `&EQ;`, not `&amp;EQ;`; an `i` prefix, `&iGE;`, is accepted
 * and changes nothing for dates and numbers):
 *
 *   received|modified &GE; &GT; &EQ; DATE   lower bound (EQ: from DATE on)
 *   received|modified &LT; &LE; DATE        upper bound
 *   SINCE &EQ; &GE; &GT; DATE               lower bound
 *   BEFORE &EQ; &LT; &LE; DATE              upper bound (EQ: before DATE)
 *   &LUID; &EQ; VALUE                       one item (also `&LUID&EQ;`,
 *                                           `&LUID;&iEQ;`, `&LUID&iEQ;`)
 *   MAXSIZE &EQ; N   NOATT &EQ; BOOL   MAXCOUNT &EQ; N
 *
 * DATE is `YYYYMMDDTHHMMSSZ`, `YYYY-MM-DDTHH:MM:SSZ` or `YYYYMMDD` (UTC
 * midnight); VALUE may hold `%hh` escapes. Identifiers are matched without
 * regard to case. Anything else (`&OR;`, parentheses, `&NE;`, `&CON;`,
 * other identifiers, a second bound of the same side, a second LUID or
 * keyword, an empty term) is a grammar error with a reason.
 */
#ifndef MEMDS_FILTER_H
#define MEMDS_FILTER_H

#include <apr_pools.h>
#include <apr_time.h>
#include "syncml/memds_msg.h"

/** The grammar this parser reads (Filter/Record/Item/Meta/Type). */
#define MEMDS_FILTER_CGI "syncml:filtertype-cgi"

/** A record expression, parsed. Unset numbers are MEMDS_NOVAL. */
typedef struct memds_filter_rec_t {
    int has_since; /**< lower bound set */
    apr_time_t
        since; /**< items at or after this time (after, if !since_incl) */
    int since_incl;
    int has_before; /**< upper bound set */
    apr_time_t
        before; /**< items at or before this time (before, if !before_incl) */
    int before_incl;
    const char *luid;      /**< &LUID;&EQ;: one item, NULL when absent */
    apr_int64_t max_size;  /**< MAXSIZE (bytes) */
    apr_int64_t max_count; /**< MAXCOUNT */
    int noatt;             /**< NOATT: 1, 0 or MEMDS_NOVAL */
    int terms;             /**< number of terms read */
} memds_filter_rec_t;

/** The field clause (an `emailitem` Property). */
typedef struct memds_filter_field_t {
    int texttype;         /**< PropParam texttype: the body */
    int attachtype;       /**< PropParam attachtype: the attachments */
    apr_int64_t max_size; /**< MaxSize, MEMDS_NOVAL when absent */
    /** One attachment asked for: the ValEnum of the attachtype PropParam
     *  (the attachment's file name), NULL when absent. */
    const char *attach_name;
} memds_filter_field_t;

/** A whole Filter, understood. */
typedef struct memds_filter_spec_t {
    int inclusive;               /**< FilterType INCLUSIVE (else EXCLUSIVE) */
    memds_filter_rec_t *record;  /**< NULL without a Record clause */
    memds_filter_field_t *field; /**< NULL without a Field clause */
} memds_filter_spec_t;

/**
 * Parse a record expression (len bytes, not NUL-terminated necessarily).
 * APR_SUCCESS with *prec filled, or APR_EINVAL with *why saying what is
 * wrong and where.
 */
apr_status_t memds_filter_cgi_parse(memds_filter_rec_t *rec, const char *s,
                                    apr_size_t len, const char **why,
                                    apr_pool_t *p);

/**
 * Read a field clause: the DevInf Property elements of a Filter's Field.
 * Exactly one Property, PropName `emailitem`, PropParams `texttype` and
 * `attachtype` only, MaxSize a number; attachtype may carry one ValEnum,
 * the file name of the one attachment asked for. Returns MEMDS_ST_OK, or
 * MEMDS_ST_NOT_SUPPORTED (another property or parameter: a field the server
 * does not know) or MEMDS_ST_BAD_CGI_SCRIPT (malformed), with *why.
 */
int memds_filter_field_parse(memds_filter_field_t *fld,
                             const apr_array_header_t *props, const char **why,
                             apr_pool_t *p);

/**
 * Understand a whole Filter: MEMDS_ST_OK with *pspec, or the status the
 * Alert gets (syncml-core.md, email-san.md 3.1) with *why:
 * MEMDS_ST_UNSUPPORTED_MEDIA (415) for a record grammar other than
 * syncml:filtertype-cgi or a field clause that is not DevInf,
 * MEMDS_ST_BAD_CGI_SCRIPT (422) for a grammar error or a FilterType other
 * than INCLUSIVE / EXCLUSIVE, MEMDS_ST_NOT_SUPPORTED (406) for a field the
 * server does not know.
 */
int memds_filter_spec(memds_filter_spec_t **pspec, const memds_filter_t *f,
                      const char **why, apr_pool_t *p);

#endif /* MEMDS_FILTER_H */
