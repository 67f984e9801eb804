/* memds_store_sql.c: the statement helpers of the store (see
 * memds_store_sql.h): every statement goes through q_run (or q_later, for
 * a write sent with the next one), prepared or unnamed, with text
 * parameters (bytea in binary) and binary results. */
#include "store/memds_store_sql.h"

#include <apr_strings.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void qa_init(qargs_t *a, apr_pool_t *p)
{
    a->n = 0;
    a->too_big = 0;
    a->p = p;
}

/* A text parameter; NULL is SQL NULL. */
void qa_str(qargs_t *a, const char *s)
{
    a->val[a->n] = s;
    a->len[a->n] = 0;
    a->fmt[a->n] = 0;
    ++a->n;
}

void qa_i64(qargs_t *a, apr_int64_t v)
{
    qa_str(a, apr_psprintf(a->p, "%" APR_INT64_T_FMT, v));
}

void qa_int(qargs_t *a, int v)
{
    qa_str(a, apr_psprintf(a->p, "%d", v));
}

void qa_bool(qargs_t *a, int v)
{
    qa_str(a, v ? "true" : "false");
}

/* A bytea parameter in binary format; data NULL with len 0 is the empty
 * string, not NULL (a NULL value pointer would mean SQL NULL to libpq). */
void qa_bin(qargs_t *a, const char *data, apr_size_t len)
{
    if (len > (apr_size_t)INT_MAX) {
        a->too_big = 1;
        len = 0;
    }
    a->val[a->n] = data ? data : "";
    a->len[a->n] = (int)len;
    a->fmt[a->n] = 1;
    ++a->n;
}

/* An optional bytea parameter: NULL data is SQL NULL. */
void qa_bin_or_null(qargs_t *a, const char *data, apr_size_t len)
{
    if (data == NULL) {
        qa_str(a, NULL);
    }
    else {
        qa_bin(a, data, len);
    }
}

/* "" for NULL: NOT NULL text columns whose "unset" value is empty. */
const char *nz(const char *s)
{
    return s ? s : "";
}

const char *trim_nl(const char *m, apr_pool_t *p)
{
    apr_size_t n = strlen(m);

    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ')) {
        --n;
    }
    return apr_pstrndup(p, m, n);
}

/* Record a failed statement: st->err gets "what: message (SQLSTATE)" for
 * the log; the connection is marked broken when libpq lost it. res is
 * cleared. */
apr_status_t q_fail(memds_store_t *st, PGresult *res, const char *what)
{
    PGconn *c = memds_pgconn_native(st->conn);
    const char *msg = NULL, *state = NULL;

    if (res) {
        msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (msg == NULL && PQresultStatus(res) != PGRES_FATAL_ERROR) {
            msg = apr_psprintf(st->pool, "unexpected result %s",
                               PQresStatus(PQresultStatus(res)));
        }
    }
    if (msg == NULL) {
        msg = PQerrorMessage(c);
        if (msg == NULL || !*msg) {
            msg = "no result from libpq";
        }
    }
    st->err = state ? apr_psprintf(st->pool, "store: %s: %s (SQLSTATE %s)",
                                   what, trim_nl(msg, st->pool), state)
                    : apr_psprintf(st->pool, "store: %s: %s", what,
                                   trim_nl(msg, st->pool));
    PQclear(res);
    if (PQstatus(c) != CONNECTION_OK) {
        memds_pgconn_mark_broken(st->conn);
    }
    return APR_EGENERAL;
}

/* ------------------------------------------------ statements in a pipeline
 *
 * A write whose result the caller needs only to be a success (q_later) is
 * sent in libpq's pipeline mode and not waited for: it goes to the server
 * with the next statement that is waited for (q_run: a read, the session's
 * save, COMMIT), in one round trip, and its result is read then. The
 * statements run in the order they were sent, in the same transaction; a
 * failure of one is reported by the statement that read it (its `what`
 * named in st->err), the ones after it up to that statement do not run
 * (PGRES_PIPELINE_ABORTED), and the transaction is rolled back as after
 * any failed statement. */

/* A big-endian 32-bit value. */
static apr_uint32_t be32(const char *b)
{
    const unsigned char *u = (const unsigned char *)b;

    return (apr_uint32_t)u[0] << 24 | (apr_uint32_t)u[1] << 16
           | (apr_uint32_t)u[2] << 8 | u[3];
}

/* Has a array parameters, and does each hold at most MEMDS_PG_SHORT_ARRAY
 * values? An array is a text value in array syntax ("{...}", text_array,
 * int_array) or a one-dimensional one in binary format (bin_array). A
 * comma inside a quoted value counts as another value: an array it makes
 * look longer is only planned for its values, as before. */
static int short_arrays(const qargs_t *a)
{
    int i, commas, arrays = 0;

    for (i = 0; a && i < a->n; ++i) {
        const char *v = a->val[i];
        if (v == NULL) {
            continue;
        }
        if (a->fmt[i] != 0) {
            /* (dimensions, NULLs flag, element type, length, lower bound) */
            if (a->len[i] >= 20 && be32(v) == 1) {
                if (be32(v + 12) > MEMDS_PG_SHORT_ARRAY) {
                    return 0;
                }
                ++arrays;
            }
            continue;
        }
        if (*v != '{') {
            continue;
        }
        for (commas = 0; (v = strchr(v + 1, ',')) != NULL;) {
            if (++commas >= MEMDS_PG_SHORT_ARRAY) {
                return 0;
            }
        }
        ++arrays;
    }
    return arrays > 0;
}

/* Send one statement (prepared name or unnamed); 0 when libpq refused. */
static int send_one(PGconn *c, const char *name, const char *sql,
                    const qargs_t *a)
{
    return name ? PQsendQueryPrepared(c, name, a ? a->n : 0,
                                      a ? a->val : NULL, a ? a->len : NULL,
                                      a ? a->fmt : NULL, 1)
                : PQsendQueryParams(c, sql, a ? a->n : 0, NULL,
                                    a ? a->val : NULL, a ? a->len : NULL,
                                    a ? a->fmt : NULL, 1);
}

/* Read the results of the statements sent in pipeline mode and of nlast
 * more sent after them (last[i] gets the result of the i-th, NULL if none
 * came), up to the synchronization point just sent; then leave pipeline
 * mode. The first failed statement's error is the one kept. */
static apr_status_t pipe_read(memds_store_t *st, PGresult **last, int nlast)
{
    PGconn *c = memds_pgconn_native(st->conn);
    int pend = memds_pgconn_pending(st->conn), n = pend + nlast, q = 0;
    apr_status_t rv = APR_SUCCESS;
    PGresult *r;

    for (q = 0; q < nlast; ++q) {
        last[q] = NULL;
    }
    q = 0;
    while (q < n) {
        if ((r = PQgetResult(c)) == NULL) {
            ++q; /* (the end of statement q's results) */
            continue;
        }
        if (q >= pend && last[q - pend] == NULL) {
            last[q - pend] = r;
            continue;
        }
        if (rv == APR_SUCCESS && PQresultStatus(r) != PGRES_COMMAND_OK
            && PQresultStatus(r) != PGRES_TUPLES_OK) {
            rv = q_fail(st, r, memds_pgconn_pending_what(st->conn, q));
        }
        else {
            PQclear(r);
        }
        if (PQstatus(c) != CONNECTION_OK) {
            break; /* (no more results are coming) */
        }
    }
    memds_pgconn_pending_clear(st->conn);
    r = PQstatus(c) == CONNECTION_OK ? PQgetResult(c) : NULL;
    if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC
        || !PQexitPipelineMode(c)) {
        if (rv == APR_SUCCESS) {
            rv = q_fail(st, NULL, "the end of a pipeline");
        }
        memds_pgconn_mark_broken(st->conn);
    }
    PQclear(r);
    return rv;
}

apr_status_t q_sync(memds_store_t *st)
{
    PGconn *c = memds_pgconn_native(st->conn);

    if (PQpipelineStatus(c) == PQ_PIPELINE_OFF) {
        return APR_SUCCESS;
    }
    if (!PQpipelineSync(c)) {
        memds_pgconn_pending_clear(st->conn);
        memds_pgconn_mark_broken(st->conn);
        return q_fail(st, NULL, memds_pgconn_pending_what(st->conn, 0));
    }
    return pipe_read(st, NULL, 0);
}

apr_status_t q_later(memds_store_t *st, const char *what, const char *sql,
                     const qargs_t *a)
{
    PGconn *c = memds_pgconn_native(st->conn);
    PGresult *res;
    const char *name = NULL;
    int sa = short_arrays(a);
    apr_status_t rv;

    if (a && a->too_big) {
        st->err = apr_psprintf(st->pool, "store: %s: value larger than 2 GB",
                               what);
        return APR_EGENERAL;
    }
    /* (a PREPARE waits for its answer: outside the pipeline) */
    if (PQpipelineStatus(c) != PQ_PIPELINE_OFF
        && (memds_pgconn_pending(st->conn) >= MEMDS_PG_PENDING_MAX
            || memds_pgconn_needs_prepare(st->conn, sql, sa))
        && (rv = q_sync(st)) != APR_SUCCESS) {
        return rv;
    }
    if ((res = memds_pgconn_prepare(st->conn, sql, a ? a->n : 0, sa, &name))
        != NULL) {
        return q_fail(st, res, what);
    }
    if (PQpipelineStatus(c) == PQ_PIPELINE_OFF && !PQenterPipelineMode(c)) {
        return q_fail(st, NULL, what);
    }
    if (!send_one(c, name, sql, a)) {
        memds_pgconn_mark_broken(st->conn);
        return q_fail(st, NULL, what);
    }
    memds_pgconn_pending_add(st->conn, what);
    return APR_SUCCESS;
}

/* Run sql with a's parameters, binary results, and expect status `expect`.
 * On success *pres (if pres is not NULL) gets the result, which the caller
 * must PQclear; otherwise the result is cleared here. The statements that
 * q_later sent go with it (their failure is this call's). */
apr_status_t q_run(memds_store_t *st, PGresult **pres, const char *what,
                   const char *sql, const qargs_t *a, ExecStatusType expect)
{
    q_stmt_t q;
    apr_status_t rv;

    q.what = what;
    q.sql = sql;
    q.a = a;
    q.expect = expect;
    rv = q_run_many(st, &q, 1);
    if (rv == APR_SUCCESS && pres) {
        *pres = q.res;
    }
    else if (rv == APR_SUCCESS) {
        PQclear(q.res);
    }
    return rv;
}

apr_status_t q_run_many(memds_store_t *st, q_stmt_t *v, int n)
{
    PGconn *c = memds_pgconn_native(st->conn);
    PGresult *res = NULL, **got;
    const char **names;
    apr_time_t t0;
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; i < n; ++i) {
        v[i].res = NULL;
        if (v[i].a && v[i].a->too_big) {
            st->err = apr_psprintf(st->pool,
                                   "store: %s: value larger than 2 GB",
                                   v[i].what);
            return APR_EGENERAL;
        }
    }
    names = apr_pcalloc(st->pool, sizeof(*names) * (apr_size_t)n);
    got = apr_pcalloc(st->pool, sizeof(*got) * (apr_size_t)n);
    t0 = apr_time_now();
    /* (a PREPARE waits for its answer: outside the pipeline) */
    for (i = 0; i < n; ++i) {
        int sa = short_arrays(v[i].a);
        if (PQpipelineStatus(c) != PQ_PIPELINE_OFF
            && memds_pgconn_needs_prepare(st->conn, v[i].sql, sa)
            && (rv = q_sync(st)) != APR_SUCCESS) {
            return rv;
        }
        if ((res = memds_pgconn_prepare(st->conn, v[i].sql,
                                        v[i].a ? v[i].a->n : 0, sa,
                                        &names[i]))
            != NULL) {
            return q_fail(st, res, v[i].what);
        }
    }
    if (n == 1 && PQpipelineStatus(c) == PQ_PIPELINE_OFF) {
        /* (nothing waits: the plain call; its last result is the one) */
        if (!send_one(c, names[0], v[0].sql, v[0].a)) {
            return q_fail(st, NULL, v[0].what);
        }
        while ((res = PQgetResult(c)) != NULL) {
            PQclear(got[0]);
            got[0] = res;
        }
    }
    else {
        /* these, then the synchronization point: one round trip */
        if (PQpipelineStatus(c) == PQ_PIPELINE_OFF
            && !PQenterPipelineMode(c)) {
            return q_fail(st, NULL, v[0].what);
        }
        for (i = 0; i < n; ++i) {
            if (!send_one(c, names[i], v[i].sql, v[i].a)) {
                break;
            }
        }
        if (i < n || !PQpipelineSync(c)) {
            memds_pgconn_pending_clear(st->conn);
            memds_pgconn_mark_broken(st->conn);
            return q_fail(st, NULL, v[i < n ? i : 0].what);
        }
        rv = pipe_read(st, got, n);
    }
    for (i = 0; i < n && rv == APR_SUCCESS; ++i) {
        if (got[i] == NULL || PQresultStatus(got[i]) != v[i].expect) {
            rv = q_fail(st, got[i], v[i].what);
            got[i] = NULL;
        }
    }
    memds_pgconn_observe(st->conn, apr_time_now() - t0, rv != APR_SUCCESS);
    for (i = 0; i < n; ++i) {
        if (rv == APR_SUCCESS) {
            v[i].res = got[i];
        }
        else {
            PQclear(got[i]); /* (after a failure: none is kept) */
        }
    }
    return rv;
}

/* A query that yields at most one row of interest: APR_ENOENT (result
 * freed) when it yields none. */
apr_status_t q_row(memds_store_t *st, PGresult **pres, const char *what,
                   const char *sql, const qargs_t *a)
{
    apr_status_t rv = q_run(st, pres, what, sql, a, PGRES_TUPLES_OK);

    if (rv == APR_SUCCESS && PQntuples(*pres) == 0) {
        PQclear(*pres);
        *pres = NULL;
        return APR_ENOENT;
    }
    return rv;
}

/* A statement that changes rows: *pn = how many (pn may be NULL). */
apr_status_t q_cmd(memds_store_t *st, int *pn, const char *what,
                   const char *sql, const qargs_t *a)
{
    PGresult *res;
    apr_status_t rv = q_run(st, &res, what, sql, a, PGRES_COMMAND_OK);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (pn) {
        *pn = atoi(PQcmdTuples(res));
    }
    PQclear(res);
    return APR_SUCCESS;
}

/* ---------------------------------------------- binary result decoding */

/* An integer column (int2, int4 or int8; binary big-endian, or text). */
apr_int64_t col_i64(const PGresult *r, int row, int col, apr_int64_t dflt)
{
    const unsigned char *v;
    int len, i;
    apr_uint64_t u = 0;

    if (PQgetisnull(r, row, col)) {
        return dflt;
    }
    v = (const unsigned char *)PQgetvalue(r, row, col);
    if (PQfformat(r, col) == 0) {
        return (apr_int64_t)strtoll((const char *)v, NULL, 10);
    }
    len = PQgetlength(r, row, col);
    if (len != 2 && len != 4 && len != 8) {
        return dflt;
    }
    for (i = 0; i < len; ++i) {
        u = (u << 8) | v[i];
    }
    switch (len) {
    case 2: return (apr_int16_t)(apr_uint16_t)u;
    case 4: return (apr_int32_t)(apr_uint32_t)u;
    default: return (apr_int64_t)u;
    }
}

int col_int(const PGresult *r, int row, int col, int dflt)
{
    return (int)col_i64(r, row, col, dflt);
}

int col_bool(const PGresult *r, int row, int col)
{
    const char *v;

    if (PQgetisnull(r, row, col)) {
        return 0;
    }
    v = PQgetvalue(r, row, col);
    return PQfformat(r, col) == 0 ? v[0] == 't' : v[0] != 0;
}

/* A text column (NULL stays NULL), copied into p. */
const char *col_str(const PGresult *r, int row, int col, apr_pool_t *p)
{
    if (PQgetisnull(r, row, col)) {
        return NULL;
    }
    return apr_pstrmemdup(p, PQgetvalue(r, row, col),
                          (apr_size_t)PQgetlength(r, row, col));
}

/* A bytea column (binary format): copied into p with a NUL appended (not
 * counted in *plen) so that text content can be used as a C string. */
const char *col_bytes(const PGresult *r, int row, int col, apr_size_t *plen,
                      apr_pool_t *p)
{
    if (PQgetisnull(r, row, col)) {
        *plen = 0;
        return NULL;
    }
    *plen = (apr_size_t)PQgetlength(r, row, col);
    return apr_pstrmemdup(p, PQgetvalue(r, row, col), *plen);
}
/* One text value of a single-row query, or APR_ENOENT. */
apr_status_t q_value(memds_store_t *st, const char **pval, const char *what,
                     const char *sql, const qargs_t *a)
{
    PGresult *res;
    apr_status_t rv = q_row(st, &res, what, sql, a);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pval = col_str(res, 0, 0, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

/* A text[] literal for an array parameter ({"a","b",NULL}); elements are
 * quoted with backslash escapes, NULL stays NULL. */
const char *text_array(const char *const *v, int n, apr_pool_t *p)
{
    apr_size_t cap = 2;
    char *out, *o;
    int i;

    for (i = 0; i < n; ++i) {
        cap += (v[i] ? 2 * strlen(v[i]) + 3 : 5);
    }
    o = out = apr_palloc(p, cap + 1);
    *o++ = '{';
    for (i = 0; i < n; ++i) {
        const char *c;
        if (i) {
            *o++ = ',';
        }
        if (v[i] == NULL) {
            memcpy(o, "NULL", 4);
            o += 4;
            continue;
        }
        *o++ = '"';
        for (c = v[i]; *c; ++c) {
            if (*c == '"' || *c == '\\') {
                *o++ = '\\';
            }
            *o++ = *c;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

const char *int_array(const apr_int64_t *v, int n, apr_pool_t *p)
{
    const char **s = apr_palloc(p, sizeof(char *) * (apr_size_t)(n ? n : 1));
    int i;

    for (i = 0; i < n; ++i) {
        s[i] = v[i] == MEMDS_STORE_NULL
                   ? NULL
                   : apr_psprintf(p, "%" APR_INT64_T_FMT, v[i]);
    }
    return text_array(s, n, p);
}
