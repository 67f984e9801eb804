/* memds_mailstore.c: folders and messages of the mailbox datastores in
 * PostgreSQL (see memds_mailstore.h and schema/004_mail.sql). Batches go as
 * array parameters through unnest(), one statement per batch. */
#include "store/memds_mailstore.h"
#include "store/memds_store_sql.h"

#include <apr_strings.h>
#include <string.h>

#define USEC 1000000

/* The advisory lock that writers of a virtual folder's tombstones (the
 * Outbox's) hold shared: (1296367614, hash of account and folder), outside
 * the keys of memds.item_seq_take (002_engine.sql). */
#define OUTBOX_LOCK "1296367614, hashtext($1::text || '/' || $2::text)"

/* The first parameters of most statements: $1 account, $2 folder. */
static void qa_folder(qargs_t *a, memds_store_t *st, const char *account,
                      const char *folder)
{
    qa_init(a, st->pool);
    qa_str(a, account);
    qa_str(a, folder);
}

static const char *secs_or_null(apr_time_t t, apr_pool_t *p)
{
    return t ? apr_psprintf(p, "%" APR_INT64_T_FMT, (apr_int64_t)(t / USEC))
             : NULL;
}

apr_status_t memds_mail_folder_lock(memds_store_t *st, memds_mfolder_t *f,
                                    const char *account, const char *folder)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    static const char lock_sql[] =
        "SELECT uidvalidity, highestmodseq, uidnext, messages,"
        " scanned_at >= now() FROM memds.mail_folders"
        " WHERE account = $1 AND folder = $2 FOR UPDATE";

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    /* The row is created only when missing: the INSERT's defaults take a
     * seq (memds.item_seq_take) that stays open until the transaction
     * ends, holding back every device's change position. */
    rv = q_row(st, &res, "mail_folder_lock", lock_sql, &a);
    if (rv == APR_ENOENT) {
        rv = q_cmd(st, NULL, "mail_folder_create",
                   "INSERT INTO memds.mail_folders (account, folder,"
                   " uidvalidity) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
                   &a);
        if (rv == APR_SUCCESS) {
            rv = q_row(st, &res, "mail_folder_lock", lock_sql, &a);
        }
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    f->uidvalidity = col_i64(res, 0, 0, 0);
    f->highestmodseq = col_i64(res, 0, 1, 0);
    f->uidnext = col_i64(res, 0, 2, 0);
    f->messages = col_i64(res, 0, 3, 0);
    f->fresh = col_bool(res, 0, 4);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_mail_lock_timeout(memds_store_t *st, int ms)
{
    qargs_t a;
    const char *v = NULL;

    qa_init(&a, st->pool);
    qa_str(&a, apr_psprintf(st->pool, "%dms", ms));
    return q_value(st, &v, "mail_lock_timeout",
                   "SELECT set_config('lock_timeout', $1, true)", &a);
}

apr_status_t memds_mail_folder_save(memds_store_t *st, const char *account,
                                    const char *folder,
                                    const memds_mfolder_t *f)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_i64(&a, f->uidvalidity);
    qa_i64(&a, f->highestmodseq);
    qa_i64(&a, f->uidnext);
    qa_i64(&a, f->messages);
    return q_cmd(st, NULL, "mail_folder_save",
                 "UPDATE memds.mail_folders SET uidvalidity = $3::bigint,"
                 " highestmodseq = $4::bigint, uidnext = $5::bigint,"
                 " messages = $6::bigint, scanned_at = now()"
                 " WHERE account = $1 AND folder = $2",
                 &a);
}

#define ROW_COLS \
    "guid, uid, flags, message_id, size," \
    " coalesce(extract(epoch FROM internaldate)::bigint, 0), seq," \
    " content_seq, deleted, coalesce(changed_by, 0)," \
    " extract(epoch FROM updated_at)::bigint"

static memds_mmsg_t *row_of(const PGresult *res, int i, apr_pool_t *p)
{
    memds_mmsg_t *m = apr_pcalloc(p, sizeof(*m));

    m->guid = col_str(res, i, 0, p);
    m->uid = col_i64(res, i, 1, 0);
    m->flags = col_int(res, i, 2, 0);
    m->message_id = col_str(res, i, 3, p);
    m->size = col_i64(res, i, 4, 0);
    m->internaldate = (apr_time_t)col_i64(res, i, 5, 0) * USEC;
    m->seq = col_i64(res, i, 6, 0);
    m->content_seq = col_i64(res, i, 7, 0);
    m->deleted = col_bool(res, i, 8);
    m->changed_by = col_i64(res, i, 9, 0);
    m->updated_at = (apr_time_t)col_i64(res, i, 10, 0) * USEC;
    return m;
}

/* The rows of a result (memds_mmsg_t *), which is cleared. */
static apr_array_header_t *rows_from(PGresult *res, apr_pool_t *p)
{
    int i, n = PQntuples(res);
    apr_array_header_t *arr = apr_array_make(p, n > 0 ? n : 1,
                                             sizeof(memds_mmsg_t *));

    for (i = 0; i < n; ++i) {
        APR_ARRAY_PUSH(arr, memds_mmsg_t *) = row_of(res, i, p);
    }
    PQclear(res);
    return arr;
}

static apr_status_t rows_of(memds_store_t *st, apr_array_header_t **prows,
                            const char *what, const char *sql, const qargs_t *a)
{
    PGresult *res;
    apr_status_t rv = q_run(st, &res, what, sql, a, PGRES_TUPLES_OK);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    *prows = rows_from(res, st->pool);
    return APR_SUCCESS;
}

apr_status_t memds_mail_live(memds_store_t *st, apr_array_header_t **prows,
                             const char *account, const char *folder,
                             const apr_int64_t *uids, int n, int full)
{
    qargs_t a;

    (void)full; /* the columns are few; one statement serves both */
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, uids ? int_array(uids, n, st->pool) : NULL);
    return rows_of(st, prows, "mail_live",
                   "SELECT " ROW_COLS " FROM memds.mail_messages"
                   " WHERE account = $1 AND folder = $2 AND NOT deleted"
                   " AND ($3::bigint[] IS NULL OR uid = ANY ($3::bigint[]))"
                   " ORDER BY uid",
                   &a);
}

apr_status_t memds_mail_insert_many(memds_store_t *st, const char *account,
                                    const char *folder,
                                    memds_mmsg_t *const *rows, int n,
                                    apr_int64_t changed_by)
{
    qargs_t a;
    apr_int64_t *uids, *flags, *sizes;
    const char **ids, **dates;
    int i;

    if (n == 0) {
        return APR_SUCCESS;
    }
    uids = apr_palloc(st->pool, sizeof(*uids) * (apr_size_t)n);
    flags = apr_palloc(st->pool, sizeof(*flags) * (apr_size_t)n);
    sizes = apr_palloc(st->pool, sizeof(*sizes) * (apr_size_t)n);
    ids = apr_palloc(st->pool, sizeof(*ids) * (apr_size_t)n);
    dates = apr_palloc(st->pool, sizeof(*dates) * (apr_size_t)n);
    for (i = 0; i < n; ++i) {
        uids[i] = rows[i]->uid;
        flags[i] = rows[i]->flags;
        sizes[i] = rows[i]->size;
        ids[i] = rows[i]->message_id;
        dates[i] = secs_or_null(rows[i]->internaldate, st->pool);
    }
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, int_array(uids, n, st->pool));
    qa_str(&a, int_array(flags, n, st->pool));
    qa_str(&a, text_array(ids, n, st->pool));
    qa_str(&a, int_array(sizes, n, st->pool));
    qa_str(&a, text_array(dates, n, st->pool));
    qa_str(&a, changed_by
                   ? apr_psprintf(st->pool, "%" APR_INT64_T_FMT, changed_by)
                   : NULL);
    return q_cmd(st, NULL, "mail_insert",
                 "WITH s AS (SELECT memds.item_seq_take() AS v)"
                 " INSERT INTO memds.mail_messages (account, folder, uid,"
                 " flags, message_id, size, internaldate, seq, content_seq,"
                 " changed_by)"
                 " SELECT $1, $2, u.uid, u.flags, u.mid, u.size,"
                 " to_timestamp(u.secs::double precision), s.v, s.v,"
                 " $8::bigint FROM s, unnest($3::bigint[], $4::int[],"
                 " $5::text[], $6::bigint[], $7::bigint[])"
                 " AS u (uid, flags, mid, size, secs)"
                 /* a message another scan (or a device's Add) recorded
                  * since this one read the rows keeps its row and guid */
                 " ON CONFLICT (account, folder, uid) WHERE NOT deleted"
                 " DO NOTHING",
                 &a);
}

/* The bigint of a statement's one row and column. */
static apr_status_t one_i64(memds_store_t *st, apr_int64_t *pv,
                            const char *what, const char *sql,
                            const qargs_t *a)
{
    PGresult *res;
    apr_status_t rv = q_row(st, &res, what, sql, a);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pv = col_i64(res, 0, 0, 0);
    PQclear(res);
    return APR_SUCCESS;
}

/* *pskipped (may be NULL) = rows the statement would have changed but
 * another transaction holds (SKIP LOCKED; see memds_mailstore.h). */
static apr_status_t skipped_of(memds_store_t *st, int *pskipped,
                               const char *what, const char *sql,
                               const qargs_t *a)
{
    apr_int64_t n = 0;
    apr_status_t rv = one_i64(st, &n, what, sql, a);

    if (pskipped) {
        *pskipped = (int)n;
    }
    return rv;
}

apr_status_t memds_mail_flags_many(memds_store_t *st, const char *account,
                                   const char *folder, const apr_int64_t *uids,
                                   const int *flags, int n,
                                   apr_int64_t changed_by, apr_int64_t fence,
                                   int *pskipped)
{
    qargs_t a;
    apr_int64_t *f;
    int i;

    if (pskipped) {
        *pskipped = 0;
    }
    if (n == 0) {
        return APR_SUCCESS;
    }
    f = apr_palloc(st->pool, sizeof(*f) * (apr_size_t)n);
    for (i = 0; i < n; ++i) {
        f[i] = flags[i];
    }
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, int_array(uids, n, st->pool));
    qa_str(&a, int_array(f, n, st->pool));
    qa_str(&a, changed_by
                   ? apr_psprintf(st->pool, "%" APR_INT64_T_FMT, changed_by)
                   : NULL);
    qa_str(&a, fence >= 0
                   ? apr_psprintf(st->pool, "%" APR_INT64_T_FMT, fence)
                   : NULL);
    /* A row another transaction holds (a device's change of it, not yet
     * committed) is skipped, not waited for: the caller sees how many.
     * So is a row changed after the fence: a device's flag change that
     * IMAP got after it answered the scan, committed since; the scan's
     * flags are older than it (bench/load: the device's next change of
     * the mail then met a "server" change, 419). */
    return skipped_of(
        st, pskipped, "mail_flags",
        "WITH s AS (SELECT memds.item_seq_take() AS v),"
        " w AS (SELECT m.guid, u.flags FROM memds.mail_messages m,"
        "  unnest($3::bigint[], $4::int[]) AS u (uid, flags)"
        "  WHERE m.account = $1 AND m.folder = $2 AND NOT m.deleted"
        "  AND m.uid = u.uid AND m.flags <> u.flags),"
        " l AS (SELECT m.guid FROM memds.mail_messages m, w"
        "  WHERE m.account = $1 AND m.folder = $2 AND m.guid = w.guid"
        "  AND NOT m.deleted AND ($6::bigint IS NULL OR m.seq <= $6::bigint)"
        "  FOR UPDATE OF m SKIP LOCKED),"
        " c AS (UPDATE memds.mail_messages m SET flags = w.flags,"
        "  seq = s.v, changed_by = $5::bigint, updated_at = now()"
        "  FROM s, w, l WHERE m.account = $1 AND m.folder = $2"
        "  AND m.guid = l.guid AND w.guid = l.guid AND m.flags <> w.flags"
        "  RETURNING 1)"
        " SELECT (SELECT count(*) FROM w) - (SELECT count(*) FROM c)",
        &a);
}

apr_status_t memds_mail_seq_fence(memds_store_t *st, apr_int64_t *pfence)
{
    PGresult *res;
    apr_status_t rv;

    rv = q_run(st, &res, "mail_seq_fence",
               "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1"
               " END FROM memds.item_seq",
               NULL, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pfence = PQntuples(res) == 1 ? col_i64(res, 0, 0, -1) : -1;
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_mail_gone_many(memds_store_t *st, const char *account,
                                  const char *folder, const apr_int64_t *uids,
                                  int n, apr_int64_t changed_by, int *pskipped)
{
    qargs_t a;

    if (pskipped) {
        *pskipped = 0;
    }
    if (n == 0) {
        return APR_SUCCESS;
    }
    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, int_array(uids, n, st->pool));
    qa_str(&a, changed_by
                   ? apr_psprintf(st->pool, "%" APR_INT64_T_FMT, changed_by)
                   : NULL);
    return skipped_of(
        st, pskipped, "mail_gone",
        "WITH s AS (SELECT memds.item_seq_take() AS v),"
        " w AS (SELECT m.guid FROM memds.mail_messages m"
        "  WHERE m.account = $1 AND m.folder = $2 AND NOT m.deleted"
        "  AND m.uid = ANY ($3::bigint[])),"
        " l AS (SELECT m.guid FROM memds.mail_messages m, w"
        "  WHERE m.account = $1 AND m.folder = $2 AND m.guid = w.guid"
        "  AND NOT m.deleted FOR UPDATE OF m SKIP LOCKED),"
        " c AS (UPDATE memds.mail_messages m SET deleted = true, seq = s.v,"
        "  changed_by = $4::bigint, updated_at = now() FROM s, l"
        "  WHERE m.account = $1 AND m.folder = $2 AND m.guid = l.guid"
        "  AND NOT m.deleted RETURNING 1)"
        " SELECT (SELECT count(*) FROM w) - (SELECT count(*) FROM c)",
        &a);
}

apr_status_t memds_mail_remap_begin(memds_store_t *st, const char *account,
                                    const char *folder)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    /* (negative uids cannot collide with real ones: UIDs are > 0) */
    return q_cmd(st, NULL, "mail_remap_begin",
                 "UPDATE memds.mail_messages SET uid = -uid"
                 " WHERE account = $1 AND folder = $2 AND NOT deleted"
                 " AND uid > 0",
                 &a);
}

apr_status_t memds_mail_remap_one(memds_store_t *st, const char *account,
                                  const char *folder, const char *guid,
                                  apr_int64_t uid, int flags, int old_flags)
{
    qargs_t a;

    qa_folder(&a, st, account, folder);
    qa_str(&a, guid);
    qa_i64(&a, uid);
    if (flags == old_flags) {
        return q_cmd(st, NULL, "mail_remap_one",
                     "UPDATE memds.mail_messages SET uid = $4::bigint,"
                     " updated_at = now() WHERE account = $1 AND folder = $2"
                     " AND guid = $3",
                     &a);
    }
    qa_int(&a, flags);
    return q_cmd(st, NULL, "mail_remap_one",
                 "UPDATE memds.mail_messages SET uid = $4::bigint,"
                 " flags = $5::int, seq = memds.item_seq_take(),"
                 " changed_by = NULL, updated_at = now()"
                 " WHERE account = $1 AND folder = $2 AND guid = $3",
                 &a);
}

apr_status_t memds_mail_remap_finish(memds_store_t *st, const char *account,
                                     const char *folder)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    return q_cmd(st, NULL, "mail_remap_finish",
                 "WITH s AS (SELECT memds.item_seq_take() AS v)"
                 " UPDATE memds.mail_messages m SET deleted = true, seq = s.v,"
                 " changed_by = NULL, updated_at = now() FROM s"
                 " WHERE m.account = $1 AND m.folder = $2 AND NOT m.deleted"
                 " AND m.uid < 0",
                 &a);
}

apr_status_t memds_mail_changed(memds_store_t *st, apr_array_header_t **prows,
                                const char *account, const char *folder,
                                apr_int64_t since, apr_int64_t upto)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_i64(&a, since);
    qa_i64(&a, upto);
    return rows_of(st, prows, "mail_changed",
                   "SELECT " ROW_COLS " FROM memds.mail_messages"
                   " WHERE account = $1 AND folder = $2"
                   " AND seq > $3::bigint AND seq <= $4::bigint"
                   " AND ($3::bigint >= 0 OR NOT deleted)"
                   " ORDER BY seq",
                   &a);
}

apr_status_t memds_mail_get(memds_store_t *st, memds_mmsg_t *row,
                            const char *account, const char *folder,
                            const char *guid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, guid);
    rv = q_row(st, &res, "mail_get",
               "SELECT " ROW_COLS " FROM memds.mail_messages"
               " WHERE account = $1 AND folder = $2 AND guid = $3",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *row = *row_of(res, 0, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_mail_match(memds_store_t *st, const char **pguid,
                              const char *account, const char *folder,
                              apr_int64_t device_id, const char *store,
                              const char *message_id, apr_int64_t size)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, message_id);
    qa_i64(&a, size);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    return q_value(st, pguid, "mail_match",
                   "SELECT g.guid FROM memds.mail_messages g"
                   " WHERE g.account = $1 AND g.folder = $2"
                   " AND g.message_id = $3 AND NOT g.deleted"
                   " AND ($4::bigint < 0 OR g.size = $4::bigint)"
                   " AND NOT EXISTS (SELECT 1 FROM memds.maps m"
                   "  WHERE m.device_id = $5::bigint AND m.store = $6"
                   "  AND m.guid = g.guid)"
                   " ORDER BY g.uid LIMIT 1",
                   &a);
}

apr_status_t memds_mail_update(memds_store_t *st, const char *account,
                               const char *folder, const memds_mmsg_t *row,
                               int content_changed, apr_int64_t changed_by)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, row->guid);
    qa_int(&a, row->flags);
    qa_bool(&a, content_changed);
    qa_i64(&a, row->uid);
    qa_i64(&a, row->size);
    qa_str(&a, row->message_id);
    qa_str(&a, secs_or_null(row->internaldate, st->pool));
    qa_i64(&a, changed_by);
    return q_cmd(
        st, NULL, "mail_update",
        "WITH s AS (SELECT memds.item_seq_take() AS v)"
        " UPDATE memds.mail_messages m SET flags = $4::int,"
        " seq = s.v, changed_by = $10::bigint, updated_at = now(),"
        " content_seq = CASE WHEN $5::bool THEN s.v ELSE content_seq END,"
        " uid = CASE WHEN $5::bool THEN $6::bigint ELSE uid END,"
        " size = CASE WHEN $5::bool THEN $7::bigint ELSE size END,"
        " message_id = CASE WHEN $5::bool THEN $8 ELSE message_id END,"
        " internaldate = CASE WHEN $5::bool AND $9::bigint IS NOT NULL"
        "  THEN to_timestamp($9::double precision) ELSE internaldate END"
        " FROM s WHERE m.account = $1 AND m.folder = $2"
        " AND m.guid = $3",
        &a);
}

apr_status_t memds_mail_add(memds_store_t *st, const char **pguid,
                            const char *account, const char *folder,
                            const memds_mmsg_t *row, apr_int64_t changed_by)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_i64(&a, row->uid);
    qa_int(&a, row->flags);
    qa_str(&a, row->message_id);
    qa_i64(&a, row->size);
    qa_str(&a, secs_or_null(row->internaldate, st->pool));
    qa_i64(&a, changed_by);
    return q_value(st, pguid, "mail_add",
                   "WITH s AS (SELECT memds.item_seq_take() AS v)"
                   " INSERT INTO memds.mail_messages (account, folder, uid,"
                   " flags, message_id, size, internaldate, seq, content_seq,"
                   " changed_by)"
                   " SELECT $1, $2, $3::bigint, $4::int, $5, $6::bigint,"
                   " to_timestamp($7::double precision), s.v, s.v, $8::bigint"
                   " FROM s"
                   /* a scan that saw the new UID first made the row: this
                    * is that message, now the adding device's change */
                   " ON CONFLICT (account, folder, uid) WHERE NOT deleted"
                   " DO UPDATE SET flags = EXCLUDED.flags, seq = EXCLUDED.seq,"
                   " changed_by = EXCLUDED.changed_by, updated_at = now()"
                   " RETURNING guid",
                   &a);
}

apr_status_t memds_mail_remove(memds_store_t *st, const char *account,
                               const char *folder, const char *guid,
                               apr_int64_t changed_by)
{
    qargs_t a;
    int n = 0;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, guid);
    qa_i64(&a, changed_by);
    rv = q_cmd(st, &n, "mail_remove",
               "UPDATE memds.mail_messages SET deleted = true,"
               " seq = memds.item_seq_take(), changed_by = $4::bigint,"
               " updated_at = now() WHERE account = $1 AND folder = $2"
               " AND guid = $3 AND NOT deleted",
               &a);
    return rv == APR_SUCCESS && n == 0 ? APR_ENOENT : rv;
}

/* ------------------------------- the hierarchical "email" datastore */

#define FOLDER_COLS \
    "folder, guid, name, role, uidvalidity, highestmodseq," \
    " seq, deleted, coalesce(changed_by, 0)"

static void fitem_of(memds_mfitem_t *f, const PGresult *res, int i,
                     apr_pool_t *p)
{
    f->folder = col_str(res, i, 0, p);
    f->guid = col_str(res, i, 1, p);
    f->name = col_str(res, i, 2, p);
    f->role = col_str(res, i, 3, p);
    f->uidvalidity = col_i64(res, i, 4, 0);
    f->highestmodseq = col_i64(res, i, 5, 0);
    f->seq = col_i64(res, i, 6, 0);
    f->deleted = col_bool(res, i, 7);
    f->changed_by = col_i64(res, i, 8, 0);
}

apr_status_t memds_mail_folders_all(memds_store_t *st,
                                    apr_array_header_t **prows,
                                    const char *account)
{
    qargs_t a;
    PGresult *res;
    apr_array_header_t *arr;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    rv = q_run(st, &res, "mail_folders_all",
               "SELECT " FOLDER_COLS " FROM memds.mail_folders"
               " WHERE account = $1 ORDER BY folder",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    arr = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_mfitem_t *));
    for (i = 0; i < n; ++i) {
        memds_mfitem_t *f = apr_palloc(st->pool, sizeof(*f));
        fitem_of(f, res, i, st->pool);
        APR_ARRAY_PUSH(arr, memds_mfitem_t *) = f;
    }
    PQclear(res);
    *prows = arr;
    return APR_SUCCESS;
}

apr_status_t memds_mail_folder_by_guid(memds_store_t *st, memds_mfitem_t *row,
                                       const char *account, const char *guid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, guid);
    rv = q_row(st, &res, "mail_folder_by_guid",
               "SELECT " FOLDER_COLS " FROM memds.mail_folders"
               " WHERE account = $1 AND guid = $2",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    fitem_of(row, res, 0, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_mail_folder_upsert(memds_store_t *st, const char *account,
                                      const char *folder, const char *name,
                                      const char *role, apr_int64_t changed_by,
                                      const char **pguid)
{
    qargs_t a, k;
    const char *g;
    apr_status_t rv;

    qa_folder(&a, st, account, folder);
    qa_str(&a, name);
    qa_str(&a, role);
    qa_str(&a, changed_by
                   ? apr_psprintf(st->pool, "%" APR_INT64_T_FMT, changed_by)
                   : NULL);
    /* written only when new or changed (a scan calls this for every
     * folder); unchanged, the guid is read */
    rv = q_value(st, pguid ? pguid : &g, "mail_folder_upsert",
                 "INSERT INTO memds.mail_folders AS f (account, folder,"
                 " uidvalidity, name, role, changed_by)"
                 " VALUES ($1, $2, 0, $3, $4, $5::bigint)"
                 " ON CONFLICT (account, folder) DO UPDATE SET"
                 " name = EXCLUDED.name, role = EXCLUDED.role,"
                 " deleted = false, seq = memds.item_seq_take(),"
                 " changed_by = EXCLUDED.changed_by"
                 " WHERE f.deleted OR f.name IS DISTINCT FROM EXCLUDED.name"
                 " OR f.role IS DISTINCT FROM EXCLUDED.role"
                 " RETURNING guid",
                 &a);
    if (rv != APR_ENOENT) {
        return rv;
    }
    qa_folder(&k, st, account, folder);
    return q_value(st, pguid ? pguid : &g, "mail_folder_guid",
                   "SELECT guid FROM memds.mail_folders WHERE account = $1"
                   " AND folder = $2",
                   &k);
}

apr_status_t memds_mail_folder_gone(memds_store_t *st, const char *account,
                                    const char *folder, apr_int64_t changed_by)
{
    qargs_t a;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, changed_by
                   ? apr_psprintf(st->pool, "%" APR_INT64_T_FMT, changed_by)
                   : NULL);
    rv = q_cmd(st, NULL, "mail_folder_gone_msgs",
               "WITH s AS (SELECT memds.item_seq_take() AS v)"
               " UPDATE memds.mail_messages m SET deleted = true, seq = s.v,"
               " changed_by = $3::bigint, updated_at = now() FROM s"
               " WHERE m.account = $1 AND m.folder = $2 AND NOT m.deleted",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return q_cmd(st, NULL, "mail_folder_gone",
                 "UPDATE memds.mail_folders SET deleted = true,"
                 " seq = memds.item_seq_take(), changed_by = $3::bigint,"
                 " uidvalidity = 0, highestmodseq = 0"
                 " WHERE account = $1 AND folder = $2 AND NOT deleted",
                 &a);
}

apr_status_t memds_mail_folder_rename(memds_store_t *st, const char *account,
                                      const char *from, const char *to,
                                      const char *name, apr_int64_t changed_by)
{
    qargs_t d, m, a;
    apr_status_t rv;

    /* a tombstone under the new name would collide: it goes */
    qa_folder(&d, st, account, to);
    rv = q_cmd(st, NULL, "mail_folder_rename_drop",
               "DELETE FROM memds.mail_folders WHERE account = $1"
               " AND folder = $2 AND deleted",
               &d);
    if (rv == APR_SUCCESS) {
        qa_folder(&m, st, account, from);
        qa_str(&m, to);
        rv = q_cmd(st, NULL, "mail_folder_rename_msgs",
                   "UPDATE memds.mail_messages SET folder = $3"
                   " WHERE account = $1 AND folder = $2",
                   &m);
    }
    if (rv == APR_SUCCESS) {
        qa_folder(&a, st, account, from);
        qa_str(&a, to);
        qa_str(&a, name);
        qa_i64(&a, changed_by);
        rv = q_cmd(st, NULL, "mail_folder_rename",
                   "UPDATE memds.mail_folders SET folder = $3, name = $4,"
                   " seq = memds.item_seq_take(), changed_by = $5::bigint"
                   " WHERE account = $1 AND folder = $2",
                   &a);
    }
    return rv;
}

apr_status_t memds_mail_changed_all(memds_store_t *st,
                                    apr_array_header_t **prows,
                                    const char *account, apr_int64_t since,
                                    apr_int64_t upto)
{
    qargs_t a;
    PGresult *res;
    apr_array_header_t *arr;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_i64(&a, since);
    qa_i64(&a, upto);
    rv = q_run(
        st, &res, "mail_changed_all",
        "SELECT guid, seq, deleted, coalesce(changed_by, 0) FROM ("
        " SELECT guid, seq, deleted, changed_by FROM memds.mail_folders"
        "  WHERE account = $1 AND name IS NOT NULL"
        "  AND seq > $2::bigint AND seq <= $3::bigint"
        "  AND ($2::bigint >= 0 OR NOT deleted)"
        " UNION ALL"
        " SELECT guid, seq, deleted, changed_by FROM memds.mail_messages"
        "  WHERE account = $1 AND seq > $2::bigint AND seq <= $3::bigint"
        "  AND ($2::bigint >= 0 OR NOT deleted)"
        "  AND NOT (deleted AND EXISTS (SELECT 1 FROM memds.mail_messages l"
        "   WHERE l.account = $1 AND l.guid = mail_messages.guid"
        "   AND NOT l.deleted))"
        ") c ORDER BY seq, guid",
        &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    arr = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_mmsg_t *));
    for (i = 0; i < n; ++i) {
        memds_mmsg_t *m = apr_pcalloc(st->pool, sizeof(*m));
        m->guid = col_str(res, i, 0, st->pool);
        m->seq = col_i64(res, i, 1, 0);
        m->deleted = col_bool(res, i, 2);
        m->changed_by = col_i64(res, i, 3, 0);
        APR_ARRAY_PUSH(arr, memds_mmsg_t *) = m;
    }
    PQclear(res);
    *prows = arr;
    return APR_SUCCESS;
}

apr_status_t memds_mail_get_any(memds_store_t *st, memds_mmsg_t *row,
                                const char **pfolder, const char *account,
                                const char *guid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, guid);
    rv = q_row(st, &res, "mail_get_any",
               "SELECT " ROW_COLS ", folder FROM memds.mail_messages"
               " WHERE account = $1 AND guid = $2 AND NOT deleted AND uid > 0"
               " LIMIT 1",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *row = *row_of(res, 0, st->pool);
    *pfolder = col_str(res, 0, 11, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_mail_move(memds_store_t *st, const char *account,
                             const char *from, const char *to,
                             const memds_mmsg_t *row, apr_int64_t new_uid,
                             apr_int64_t changed_by)
{
    qargs_t d, a;
    apr_status_t rv;

    /* a tombstone of an earlier stay in "to" would collide: it goes */
    qa_folder(&d, st, account, to);
    qa_str(&d, row->guid);
    rv = q_cmd(st, NULL, "mail_move_clear",
               "DELETE FROM memds.mail_messages WHERE account = $1"
               " AND folder = $2 AND guid = $3 AND deleted",
               &d);
    if (rv == APR_SUCCESS) {
        qa_folder(&a, st, account, from);
        qa_str(&a, to);
        qa_str(&a, row->guid);
        qa_i64(&a, new_uid);
        qa_i64(&a, changed_by);
        rv = q_cmd(st, NULL, "mail_move",
                   "WITH s AS (SELECT memds.item_seq_take() AS v),"
                   " old AS (UPDATE memds.mail_messages m SET deleted = true,"
                   "  seq = s.v, changed_by = $6::bigint, updated_at = now()"
                   "  FROM s WHERE m.account = $1 AND m.folder = $2"
                   "  AND m.guid = $4 AND NOT m.deleted RETURNING m.*)"
                   " INSERT INTO memds.mail_messages (account, folder, guid,"
                   " uid, flags, message_id, size, internaldate, seq,"
                   " content_seq, changed_by)"
                   " SELECT $1, $3, old.guid, $5::bigint, old.flags,"
                   " old.message_id, old.size, old.internaldate, s.v,"
                   " old.content_seq, $6::bigint FROM old, s",
                   &a);
    }
    return rv;
}

/* ------------------------------------------------- the outbox ledger */

#define OUTBOX_COLS \
    "outbox_id, state, luid, message_id, envelope_from," \
    " sent_guid, reason, coalesce(status, 0), attempts," \
    " (state = 'retrying' AND next_attempt_at <= now()), drafts_pending"

/* The recipients column (space-separated: addresses have no blanks). */
static apr_array_header_t *rcpts_of(const PGresult *res, int i, int col,
                                    apr_pool_t *p)
{
    apr_array_header_t *r = apr_array_make(p, 4, sizeof(const char *));
    char *list = apr_pstrdup(p, col_str(res, i, col, p)), *tok, *last;

    for (tok = list ? apr_strtok(list, " ", &last) : NULL; tok;
         tok = apr_strtok(NULL, " ", &last)) {
        APR_ARRAY_PUSH(r, const char *) = tok;
    }
    return r;
}

static void outbox_of(memds_outbox_row_t *o, const PGresult *res, int i,
                      apr_pool_t *p)
{
    memset(o, 0, sizeof(*o));
    o->id = col_i64(res, i, 0, 0);
    o->state = col_str(res, i, 1, p);
    o->luid = col_str(res, i, 2, p);
    o->message_id = col_str(res, i, 3, p);
    o->envelope_from = col_str(res, i, 4, p);
    o->sent_guid = col_str(res, i, 5, p);
    o->reason = col_str(res, i, 6, p);
    o->status = col_int(res, i, 7, 0);
    o->attempts = col_int(res, i, 8, 0);
    o->due = col_bool(res, i, 9);
    o->drafts_pending = col_bool(res, i, 10);
}

/* The first column after OUTBOX_COLS. */
#define OB 11

apr_status_t memds_outbox_find(memds_store_t *st, memds_outbox_row_t *row,
                               const char *account, apr_int64_t device_id,
                               const char *store, const char *luid,
                               const char *sha1)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, luid);
    qa_str(&a, sha1);
    rv = q_row(st, &res, "outbox_find",
               "SELECT " OUTBOX_COLS
               ", data, coalesce(array_to_string(rcpts, ' '), ''),"
               " bcc_fields FROM memds.outbox WHERE account = $1"
               " AND device_id = $2::bigint AND store = $3 AND luid = $4"
               " AND content_sha1 = $5",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    outbox_of(row, res, 0, st->pool);
    row->data = col_bytes(res, 0, OB, &row->len, st->pool);
    row->rcpts = rcpts_of(res, 0, OB + 1, st->pool);
    row->bcc = col_bytes(res, 0, OB + 2, &row->bcc_len, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_outbox_insert(memds_store_t *st, apr_int64_t *pid,
                                 const char *account, apr_int64_t device_id,
                                 const char *store, const char *location,
                                 const char *luid, const char *sha1,
                                 const char *message_id, const char *from,
                                 const char *const *rcpts, int nrcpts,
                                 const char *data, apr_size_t len,
                                 const char *bcc, apr_size_t bcc_len)
{
    qargs_t a;
    const char *id;
    apr_status_t rv;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, luid);
    qa_str(&a, sha1);
    qa_str(&a, message_id);
    qa_str(&a, from);
    qa_str(&a, text_array(rcpts, nrcpts, st->pool));
    qa_bin(&a, data, len);
    qa_str(&a, location);
    qa_bin_or_null(&a, bcc_len ? bcc : NULL, bcc_len);
    rv =
        q_value(st, &id, "outbox_insert",
                "INSERT INTO memds.outbox (account, device_id, store, luid,"
                " content_sha1, message_id, envelope_from, rcpts, data,"
                " location, bcc_fields) VALUES ($1, $2::bigint, $3, $4, $5, $6,"
                " $7, $8::text[], $9::bytea, $10, $11::bytea)"
                " RETURNING outbox_id::text",
                &a);
    if (rv == APR_SUCCESS) {
        *pid = apr_atoi64(id);
    }
    return rv;
}

apr_status_t memds_outbox_set(memds_store_t *st, apr_int64_t id,
                              const char *state, int status, const char *reason,
                              const char *sent_guid, int attempt,
                              int retry_secs, int clear_data)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, id);
    qa_str(&a, state);
    qa_str(&a, status ? apr_itoa(st->pool, status) : NULL);
    qa_str(&a, reason);
    qa_str(&a, sent_guid);
    qa_int(&a, attempt ? 1 : 0);
    qa_int(&a, retry_secs);
    qa_bool(&a, clear_data);
    return q_cmd(
        st, NULL, "outbox_set",
        "UPDATE memds.outbox SET state = $2,"
        " status = coalesce($3::int, status),"
        " reason = coalesce($4, reason),"
        " sent_guid = coalesce($5, sent_guid),"
        " attempts = attempts + $6::int,"
        " next_attempt_at = CASE WHEN $7::int > 0"
        "  THEN now() + make_interval(secs => $7::int) ELSE NULL END,"
        " data = CASE WHEN $8::bool THEN NULL ELSE data END,"
        " bcc_fields = CASE WHEN $8::bool THEN NULL ELSE bcc_fields END,"
        " updated_at = now() WHERE outbox_id = $1::bigint",
        &a);
}

apr_status_t memds_outbox_drafts_set(memds_store_t *st, apr_int64_t id,
                                     int pending)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_i64(&a, id);
    qa_bool(&a, pending);
    return q_cmd(st, NULL, "outbox_drafts_set",
                 "UPDATE memds.outbox SET drafts_pending = $2::bool"
                 " WHERE outbox_id = $1::bigint",
                 &a);
}

/* The advisory-lock keys of an outbox row: the two-int4 form, which
 * nothing else in the schema uses (migrations lock with the bigint form),
 * first key a class tag plus the id's bits above 32, second the low 32
 * bits as a signed int4. */
#define MEMDS_OUTBOX_LOCK_CLASS 0x4d440000
static void outbox_lock_args(qargs_t *a, apr_int64_t id)
{
    apr_uint32_t lo = (apr_uint32_t)((apr_uint64_t)id & 0xffffffffu);
    apr_int64_t hi = (apr_int64_t)(((apr_uint64_t)id >> 32) & 0xffffu);

    qa_i64(a, MEMDS_OUTBOX_LOCK_CLASS + hi);
    qa_i64(a,
           (apr_int64_t)lo - (lo > 0x7fffffffu ? APR_INT64_C(0x100000000) : 0));
}

apr_status_t memds_outbox_claim(memds_store_t *st, apr_int64_t id, int *pgot,
                                memds_outbox_row_t *row)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    *pgot = 0;
    qa_init(&a, st->pool);
    outbox_lock_args(&a, id);
    rv = q_row(st, &res, "outbox_claim",
               "SELECT pg_try_advisory_lock($1::int, $2::int)", &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pgot = col_bool(res, 0, 0);
    PQclear(res);
    if (!*pgot) {
        return APR_SUCCESS;
    }
    /* a statement of its own: its snapshot is taken after the lock */
    qa_init(&a, st->pool);
    qa_i64(&a, id);
    rv = q_row(st, &res, "outbox_claimed",
               "SELECT " OUTBOX_COLS
               " FROM memds.outbox WHERE outbox_id = $1::bigint",
               &a);
    if (rv != APR_SUCCESS) {
        memds_outbox_unclaim(st, id);
        *pgot = 0;
        return rv;
    }
    outbox_of(row, res, 0, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_outbox_unclaim(memds_store_t *st, apr_int64_t id)
{
    qargs_t a;

    qa_init(&a, st->pool);
    outbox_lock_args(&a, id);
    return q_cmd(st, NULL, "outbox_unclaim",
                 "SELECT pg_advisory_unlock($1::int, $2::int)", &a);
}

apr_status_t memds_mail_tombstone(memds_store_t *st, const char *account,
                                  const char *folder, const char *guid)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, folder);
    qa_str(&a, guid);
    /* The folder's writer lock (shared, OUTBOX_LOCK) before the seq is
     * taken: memds_outbox_seq knows from it that no write is in flight. */
    return q_cmd(
        st, NULL, "mail_tombstone",
        "WITH k AS (SELECT pg_advisory_xact_lock_shared(" OUTBOX_LOCK ")"
        "  AS held),"
        " s AS (SELECT memds.item_seq_take() AS v FROM k)"
        " INSERT INTO memds.mail_messages AS m (account, folder, guid,"
        " uid, deleted, seq) SELECT $1, $2, $3, 0, true, s.v FROM s"
        " ON CONFLICT (account, folder, guid) DO UPDATE SET"
        " deleted = true, seq = EXCLUDED.seq, changed_by = NULL,"
        " updated_at = now()",
        &a);
}

apr_status_t memds_outbox_seq(memds_store_t *st, apr_int64_t *pseq,
                              const char *account, const char *folder)
{
    qargs_t a;

    qa_folder(&a, st, account, folder);
    /* memds.item_seq_visible() stops below every seq an open transaction
     * holds, this one's own tombstones excluded, so under load a sent
     * item's Delete (written in this transaction) missed the session. Its
     * rows are safe to include when no other transaction is writing the
     * folder: writers hold OUTBOX_LOCK shared from before their seq until
     * they end, so if it can be had exclusively for a moment, every other
     * row up to the folder's highest seq is committed, and any later
     * writer's seq is higher. (The lock is this session's own and given
     * back at once; CASE orders the two calls.) */
    return one_i64(st, pseq, "outbox_seq",
               "SELECT CASE WHEN pg_try_advisory_lock(" OUTBOX_LOCK ")"
               " THEN CASE WHEN pg_advisory_unlock(" OUTBOX_LOCK ")"
               "  THEN greatest(v.v, (SELECT max(m.seq) FROM"
               "   memds.mail_messages m WHERE m.account = $1"
               "   AND m.folder = $2)) ELSE v.v END"
               " ELSE v.v END FROM (SELECT memds.item_seq_visible() AS v) v",
               &a);
}

apr_status_t memds_outbox_due(memds_store_t *st, apr_array_header_t **prows,
                              const char *location, const char *account,
                              apr_int64_t device_id, const char *store,
                              int limit)
{
    qargs_t a;
    PGresult *res;
    apr_array_header_t *arr;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_str(&a, location);
    qa_str(&a, account);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_int(&a, limit);
    rv = q_run(st, &res, "outbox_due",
               "SELECT " OUTBOX_COLS
               ", data, coalesce(array_to_string(rcpts, ' '),"
               " ''), account, device_id, store, bcc_fields FROM memds.outbox"
               " WHERE state = 'retrying' AND next_attempt_at <= now()"
               " AND ($1::text IS NULL OR location = $1)"
               " AND ($2::text IS NULL OR (account = $2"
               "  AND device_id = $3::bigint AND store = $4))"
               " ORDER BY outbox_id LIMIT $5::int",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    arr = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(memds_outbox_row_t *));
    for (i = 0; i < n; ++i) {
        memds_outbox_row_t *o = apr_palloc(st->pool, sizeof(*o));
        outbox_of(o, res, i, st->pool);
        o->data = col_bytes(res, i, OB, &o->len, st->pool);
        o->rcpts = rcpts_of(res, i, OB + 1, st->pool);
        o->bcc = col_bytes(res, i, OB + 5, &o->bcc_len, st->pool);
        o->account = col_str(res, i, OB + 2, st->pool);
        o->device_id = col_i64(res, i, OB + 3, 0);
        o->store = col_str(res, i, OB + 4, st->pool);
        APR_ARRAY_PUSH(arr, memds_outbox_row_t *) = o;
    }
    PQclear(res);
    *prows = arr;
    return APR_SUCCESS;
}

apr_status_t memds_outbox_acknowledge(memds_store_t *st, const char *account,
                                      apr_int64_t device_id, const char *store,
                                      const char *folder)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    qa_str(&a, folder);
    return q_cmd(st, NULL, "outbox_acknowledge",
                 "UPDATE memds.outbox o SET state = 'acknowledged',"
                 " updated_at = now() FROM memds.sync_state s,"
                 " memds.mail_messages m"
                 " WHERE o.account = $1 AND o.device_id = $2::bigint"
                 " AND o.store = $3 AND o.state = 'filed'"
                 " AND s.device_id = o.device_id AND s.store = o.store"
                 " AND m.account = o.account AND m.folder = $4"
                 " AND m.guid = 'q' || o.outbox_id AND m.seq <= s.last_seq",
                 &a);
}

/* ------------------------------------------ filters and sent levels */

static const char *usecs_or_null(apr_time_t t, apr_pool_t *p)
{
    return t ? apr_psprintf(p, "%" APR_INT64_T_FMT ".%06d",
                            (apr_int64_t)(t / USEC), (int)(t % USEC))
             : NULL;
}

apr_status_t memds_mail_select(memds_store_t *st, apr_hash_t **pset,
                               const char *account, const char *folder,
                               apr_time_t since, int since_incl,
                               apr_time_t before, int before_incl,
                               apr_int64_t max_count)
{
    qargs_t a;
    PGresult *res;
    apr_hash_t *h = apr_hash_make(st->pool);
    apr_status_t rv;
    int i, n;

    qa_folder(&a, st, account, folder);
    qa_str(&a, usecs_or_null(since, st->pool));
    qa_bool(&a, since_incl);
    qa_str(&a, usecs_or_null(before, st->pool));
    qa_bool(&a, before_incl);
    qa_i64(&a, max_count);
    rv = q_run(
        st, &res, "mail_select",
        "SELECT guid, w AND ($7::bigint <= 0 OR row_number() OVER"
        "  (PARTITION BY folder, w ORDER BY t DESC, uid DESC) <= $7::bigint)"
        " FROM (SELECT guid, folder, uid, t,"
        "  ($3::numeric IS NULL OR t > to_timestamp($3::double precision)"
        "   OR ($4::boolean AND t = to_timestamp($3::double precision)))"
        "  AND ($5::numeric IS NULL OR t < to_timestamp($5::double precision)"
        "   OR ($6::boolean AND t = to_timestamp($5::double precision))) AS w"
        "  FROM (SELECT guid, folder, uid,"
        "   coalesce(internaldate, created_at) AS t FROM memds.mail_messages"
        "   WHERE account = $1 AND ($2::text IS NULL OR folder = $2)"
        "   AND NOT deleted AND uid > 0) AS m) AS x",
        &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    for (i = 0; i < n; ++i) {
        apr_hash_set(h, col_str(res, i, 0, st->pool), APR_HASH_KEY_STRING,
                     col_bool(res, i, 1) ? "1" : "0");
    }
    PQclear(res);
    *pset = h;
    return APR_SUCCESS;
}

/* $1 device, $2 store, $3 guid: a row of memds.mail_levels. */
static void qa_level_key(qargs_t *a, memds_store_t *st, apr_int64_t device_id,
                         const char *store, const char *guid)
{
    qa_init(a, st->pool);
    qa_i64(a, device_id);
    qa_str(a, store);
    qa_str(a, guid);
}

apr_status_t memds_mail_level_get(memds_store_t *st, const char **plevel,
                                  const char **pwant, apr_int64_t device_id,
                                  const char *store, const char *guid)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;

    qa_level_key(&a, st, device_id, store, guid);
    rv = q_row(st, &res, "mail_level_get",
               "SELECT level, want FROM memds.mail_levels"
               " WHERE device_id = $1::bigint AND store = $2 AND guid = $3",
               &a);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *plevel = col_str(res, 0, 0, st->pool);
    *pwant = PQgetisnull(res, 0, 1) ? NULL : col_str(res, 0, 1, st->pool);
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_mail_level_put(memds_store_t *st, apr_int64_t device_id,
                                  const char *store, const char *guid,
                                  const char *level, apr_int64_t sent_bytes)
{
    qargs_t a;

    qa_level_key(&a, st, device_id, store, guid);
    qa_str(&a, level);
    qa_i64(&a, sent_bytes);
    return q_cmd(st, NULL, "mail_level_put",
                 "INSERT INTO memds.mail_levels (device_id, store, guid, level,"
                 " sent_bytes) VALUES ($1::bigint, $2, $3, $4, $5::bigint)"
                 " ON CONFLICT (device_id, store, guid) DO UPDATE SET"
                 " level = EXCLUDED.level, sent_bytes = EXCLUDED.sent_bytes,"
                 " want = NULL, updated_at = now()",
                 &a);
}

apr_status_t memds_mail_level_want(memds_store_t *st, apr_int64_t device_id,
                                   const char *store, const char *guid,
                                   const char *want)
{
    qargs_t a;

    qa_level_key(&a, st, device_id, store, guid);
    qa_str(&a, want);
    return q_cmd(st, NULL, "mail_level_want",
                 "INSERT INTO memds.mail_levels (device_id, store, guid, level,"
                 " want) VALUES ($1::bigint, $2, $3, 'whole', $4)"
                 " ON CONFLICT (device_id, store, guid) DO UPDATE SET"
                 " want = EXCLUDED.want, updated_at = now()",
                 &a);
}

apr_status_t memds_mail_level_wanted(memds_store_t *st,
                                     apr_array_header_t **pguids,
                                     apr_int64_t device_id, const char *store)
{
    qargs_t a;
    PGresult *res;
    apr_status_t rv;
    int i, n;

    qa_init(&a, st->pool);
    qa_i64(&a, device_id);
    qa_str(&a, store);
    rv = q_run(st, &res, "mail_level_wanted",
               "SELECT guid FROM memds.mail_levels WHERE device_id = $1::bigint"
               " AND store = $2 AND want IS NOT NULL ORDER BY guid",
               &a, PGRES_TUPLES_OK);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    n = PQntuples(res);
    *pguids = apr_array_make(st->pool, n > 0 ? n : 1, sizeof(const char *));
    for (i = 0; i < n; ++i) {
        APR_ARRAY_PUSH(*pguids, const char *) = col_str(res, i, 0, st->pool);
    }
    PQclear(res);
    return APR_SUCCESS;
}

apr_status_t memds_account_truncate(memds_store_t *st, const char **pvalue,
                                    const char *account)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    return q_value(st, pvalue, "account_truncate",
                   "SELECT truncate FROM memds.account_settings"
                   " WHERE account = $1 AND truncate IS NOT NULL",
                   &a);
}

apr_status_t memds_account_truncate_set(memds_store_t *st, const char *account,
                                        const char *value)
{
    qargs_t a;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_str(&a, value);
    return q_cmd(st, NULL, "account_truncate_set",
                 "INSERT INTO memds.account_settings (account, truncate)"
                 " VALUES ($1, $2) ON CONFLICT (account) DO UPDATE SET"
                 " truncate = EXCLUDED.truncate, updated_at = now()",
                 &a);
}

apr_status_t memds_outbox_sent_by(memds_store_t *st, const char *account,
                                  apr_int64_t device_id, const char *guid)
{
    qargs_t a;
    const char *v;

    qa_init(&a, st->pool);
    qa_str(&a, account);
    qa_i64(&a, device_id);
    qa_str(&a, guid);
    return q_value(st, &v, "outbox_sent_by",
                   "SELECT 1 FROM memds.outbox WHERE account = $1"
                   " AND device_id = $2::bigint AND sent_guid = $3 LIMIT 1",
                   &a);
}

/* ------------------------------------------------------------------ batches */

/* $1 device, $2 store, $3 the guids (a text[] from text_array). */
static void qa_level_keys(qargs_t *a, memds_store_t *st, apr_int64_t device_id,
                          const char *store, const char *guid_array)
{
    qa_init(a, st->pool);
    qa_i64(a, device_id);
    qa_str(a, store);
    qa_str(a, guid_array);
}

apr_status_t memds_mail_level_put_many(memds_store_t *st, apr_int64_t device_id,
                                       const char *store,
                                       const char *const *guids,
                                       const char *const *levels,
                                       const apr_int64_t *sent_bytes, int n)
{
    qargs_t a;

    if (n <= 0) {
        return APR_SUCCESS;
    }
    qa_level_keys(&a, st, device_id, store, text_array(guids, n, st->pool));
    qa_str(&a, text_array(levels, n, st->pool));
    qa_str(&a, int_array(sent_bytes, n, st->pool));
    return q_later(st, "mail_level_put_many",
                 "INSERT INTO memds.mail_levels (device_id, store, guid, level,"
                 " sent_bytes) SELECT $1::bigint, $2, u.g, u.l, u.b"
                 " FROM unnest($3::text[], $4::text[], $5::bigint[])"
                 " AS u (g, l, b)"
                 " ON CONFLICT (device_id, store, guid) DO UPDATE SET"
                 " level = EXCLUDED.level, sent_bytes = EXCLUDED.sent_bytes,"
                 " want = NULL, updated_at = now()",
                 &a);
}

static void pre_stmt(q_stmt_t *q, const char *what, const char *sql,
                     const qargs_t *a)
{
    q->what = what;
    q->sql = sql;
    q->a = a;
    q->expect = PGRES_TUPLES_OK;
}

apr_status_t memds_mail_pre_many(memds_store_t *st, apr_array_header_t **prows,
                                 apr_array_header_t **plevels,
                                 apr_array_header_t **psent,
                                 const char *account, const char *folder,
                                 apr_int64_t device_id, const char *store,
                                 const char *const *guids, int n)
{
    qargs_t ra, la, sa;
    q_stmt_t q[3];
    const char *arr = text_array(guids, n, st->pool);
    apr_status_t rv;
    int i, rows;

    qa_folder(&ra, st, account, folder);
    qa_str(&ra, arr);
    pre_stmt(&q[0], "mail_pre_many (rows)",
             "SELECT " ROW_COLS " FROM memds.mail_messages"
             " WHERE account = $1 AND folder = $2"
             " AND guid = ANY ($3::text[])",
             &ra);
    qa_level_keys(&la, st, device_id, store, arr);
    pre_stmt(&q[1], "mail_pre_many (levels)",
             "SELECT guid, level, want FROM memds.mail_levels"
             " WHERE device_id = $1::bigint AND store = $2"
             " AND guid = ANY ($3::text[])",
             &la);
    qa_init(&sa, st->pool);
    qa_str(&sa, account);
    qa_i64(&sa, device_id);
    qa_str(&sa, arr);
    pre_stmt(&q[2], "mail_pre_many (sent)",
             "SELECT DISTINCT sent_guid FROM memds.outbox"
             " WHERE account = $1 AND device_id = $2::bigint"
             " AND sent_guid = ANY ($3::text[])",
             &sa);
    if ((rv = q_run_many(st, q, psent ? 3 : 2)) != APR_SUCCESS) {
        return rv;
    }
    *prows = rows_from(q[0].res, st->pool);
    rows = PQntuples(q[1].res);
    *plevels = apr_array_make(st->pool, rows > 0 ? rows : 1,
                              sizeof(memds_mlevel_t));
    for (i = 0; i < rows; ++i) {
        memds_mlevel_t *l = apr_array_push(*plevels);
        l->guid = col_str(q[1].res, i, 0, st->pool);
        l->level = col_str(q[1].res, i, 1, st->pool);
        l->want = PQgetisnull(q[1].res, i, 2) ? NULL
                                              : col_str(q[1].res, i, 2,
                                                        st->pool);
    }
    PQclear(q[1].res);
    if (psent) {
        rows = PQntuples(q[2].res);
        *psent = apr_array_make(st->pool, rows > 0 ? rows : 1,
                                sizeof(const char *));
        for (i = 0; i < rows; ++i) {
            APR_ARRAY_PUSH(*psent, const char *) = col_str(q[2].res, i, 0,
                                                           st->pool);
        }
        PQclear(q[2].res);
    }
    return APR_SUCCESS;
}
