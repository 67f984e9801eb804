/**
 * @file memds_store_sql.h
 * The store's statement helpers (internal to store/): parameters, running a
 * statement with binary results, decoding result columns, array literals.
 * memds_store.c and memds_mailstore.c use them; nothing outside store/.
 */
#ifndef MEMDS_STORE_SQL_H
#define MEMDS_STORE_SQL_H

#include "store/memds_store.h"
#include <libpq-fe.h>

/* External names with a prefix; the short names are for the store's code. */
#define qa_init memds_sq_qa_init
#define qa_str memds_sq_qa_str
#define qa_i64 memds_sq_qa_i64
#define qa_int memds_sq_qa_int
#define qa_bool memds_sq_qa_bool
#define qa_bin memds_sq_qa_bin
#define qa_bin_or_null memds_sq_qa_bin_or_null
#define nz memds_sq_nz
#define trim_nl memds_sq_trim_nl
#define q_fail memds_sq_q_fail
#define q_run memds_sq_q_run
#define q_run_many memds_sq_q_run_many
#define q_row memds_sq_q_row
#define q_cmd memds_sq_q_cmd
#define q_later memds_sq_q_later
#define q_sync memds_sq_q_sync
#define q_value memds_sq_q_value
#define col_i64 memds_sq_col_i64
#define col_int memds_sq_col_int
#define col_bool memds_sq_col_bool
#define col_str memds_sq_col_str
#define col_bytes memds_sq_col_bytes
#define text_array memds_sq_text_array
#define int_array memds_sq_int_array

/* The most parameters any statement here takes. */
#define QMAX_PARAMS 16

/* Parameters of one statement; values are borrowed from the caller or
 * allocated from the store's pool. */
typedef struct qargs_t {
    int n;
    int too_big; /* a binary value exceeded libpq's int length */
    const char *val[QMAX_PARAMS];
    int len[QMAX_PARAMS];
    int fmt[QMAX_PARAMS];
    apr_pool_t *p;
} qargs_t;

void qa_init(qargs_t *a, apr_pool_t *p);
void qa_str(qargs_t *a, const char *s);
void qa_i64(qargs_t *a, apr_int64_t v);
void qa_int(qargs_t *a, int v);
void qa_bool(qargs_t *a, int v);
void qa_bin(qargs_t *a, const char *data, apr_size_t len);
void qa_bin_or_null(qargs_t *a, const char *data, apr_size_t len);
const char *nz(const char *s);
const char *trim_nl(const char *m, apr_pool_t *p);
apr_status_t q_fail(memds_store_t *st, PGresult *res, const char *what);
apr_status_t q_run(memds_store_t *st, PGresult **pres, const char *what,
                   const char *sql, const qargs_t *a, ExecStatusType expect);
/* Statements run together: sent in one pipeline with those q_later sent,
 * one round trip; each must give its expect, else none of the results is
 * kept (st->err names the first that failed). On success each res is the
 * caller's to PQclear. */
typedef struct {
    const char *what;
    const char *sql;
    const qargs_t *a;
    ExecStatusType expect;
    PGresult *res;
} q_stmt_t;
apr_status_t q_run_many(memds_store_t *st, q_stmt_t *v, int n);
apr_status_t q_row(memds_store_t *st, PGresult **pres, const char *what,
                   const char *sql, const qargs_t *a);
apr_status_t q_cmd(memds_store_t *st, int *pn, const char *what,
                   const char *sql, const qargs_t *a);
/* A write whose result needs only to be a success, sent in pipeline mode
 * and not waited for: the next q_run (a read, COMMIT) carries it to the
 * server and reads its result, and fails if it failed (st->err names it).
 * Only for a statement whose failure may surface there: not one that an
 * action outside the database (IMAP, SMTP) must follow. */
apr_status_t q_later(memds_store_t *st, const char *what, const char *sql,
                     const qargs_t *a);
/* Read the results of what q_later sent (nothing to do when it sent
 * nothing); before anything that talks to the connection other than
 * q_run. */
apr_status_t q_sync(memds_store_t *st);
apr_int64_t col_i64(const PGresult *r, int row, int col, apr_int64_t dflt);
int col_int(const PGresult *r, int row, int col, int dflt);
int col_bool(const PGresult *r, int row, int col);
const char *col_str(const PGresult *r, int row, int col, apr_pool_t *p);
const char *col_bytes(const PGresult *r, int row, int col, apr_size_t *plen,
                      apr_pool_t *p);
apr_status_t q_value(memds_store_t *st, const char **pval, const char *what,
                     const char *sql, const qargs_t *a);
const char *text_array(const char *const *v, int n, apr_pool_t *p);
const char *int_array(const apr_int64_t *v, int n, apr_pool_t *p);

#endif /* MEMDS_STORE_SQL_H */
