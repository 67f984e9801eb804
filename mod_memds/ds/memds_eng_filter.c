/* memds_eng_filter.c: DS 1.2 filters applied (docs/filters.md). The
 * Alert's Filter, with the administrator's limits (MemDSMaxAge,
 * MemDSMaxItems), becomes the session datastore's filter (kept in its
 * compact form in memds.session_stores.filter); building the queue, the
 * EXCLUSIVE part defines the device's sync set (items that leave it are
 * soft-deleted on the device, items that enter it are added), the
 * INCLUSIVE part adds items once (and with &LUID; re-sends one item the
 * device has at a new level: get-more), and the field clause (or MAXSIZE,
 * NOATT) is the level the session's mail goes at. */
#include "ds/memds_engine_int.h"
#include "syncml/memds_filter.h"

#include <apr_time.h>

/* ------------------------------------------------------ compact form */

static void put_time(memds_buf_t *b, const char *k, apr_time_t t, int incl,
                     apr_pool_t *p)
{
    memds_buf_addstr(b, apr_psprintf(p, "%s=%" APR_INT64_T_FMT ",%d;", k,
                                     (apr_int64_t)t, incl));
}

static void put_num(memds_buf_t *b, const char *k, apr_int64_t v, apr_pool_t *p)
{
    memds_buf_addstr(b, apr_psprintf(p, "%s=%" APR_INT64_T_FMT ";", k, v));
}

const char *eng_filter_format(const eng_filter_t *f, apr_pool_t *p)
{
    memds_buf_t b;

    if (f == NULL) {
        return NULL;
    }
    memds_buf_init(&b, 128, p);
    put_num(&b, "i", f->inclusive, p);
    if (f->has_rec) {
        const memds_filter_rec_t *r = &f->rec;
        if (r->has_since) {
            put_time(&b, "s", r->since, r->since_incl, p);
        }
        if (r->has_before) {
            put_time(&b, "b", r->before, r->before_incl, p);
        }
        if (r->max_count != MEMDS_NOVAL) {
            put_num(&b, "c", r->max_count, p);
        }
        if (r->luid) {
            memds_buf_addstr(&b, "l=");
            memds_buf_addstr(&b, memds_ds_value_escape(r->luid, p));
            memds_buf_addstr(&b, ";");
        }
    }
    if (f->admin_since) {
        put_time(&b, "as", f->admin_since, 1, p);
    }
    if (f->admin_count > 0) {
        put_num(&b, "ac", f->admin_count, p);
    }
    if (f->has_level) {
        /* the level last: its own form may hold ';' */
        memds_buf_addstr(&b, "L:");
        memds_buf_addstr(&b, memds_ds_level_format(&f->level, p));
    }
    memds_buf_addc(&b, '\0');
    return b.data;
}

static int read_time(const char *v, apr_time_t *pt, int *pincl)
{
    char *end;
    apr_int64_t t = apr_strtoi64(v, &end, 10);

    if (end == v || *end != ',' || (end[1] != '0' && end[1] != '1') || end[2]) {
        return 0;
    }
    *pt = (apr_time_t)t;
    *pincl = end[1] == '1';
    return 1;
}

apr_status_t eng_filter_parse(eng_filter_t **pf, const char *s, apr_pool_t *p)
{
    eng_filter_t *f = apr_pcalloc(p, sizeof(*f));
    const char *lv = s ? strstr(s, "L:") : NULL;
    char *head, *tok, *last;
    int ok = 1;

    *pf = NULL;
    if (s == NULL) {
        return APR_EINVAL;
    }
    f->rec.max_size = f->rec.max_count = MEMDS_NOVAL;
    f->rec.noatt = MEMDS_NOVAL;
    head = apr_pstrmemdup(p, s, lv ? (apr_size_t)(lv - s) : strlen(s));
    for (tok = apr_strtok(head, ";", &last); tok && ok;
         tok = apr_strtok(NULL, ";", &last)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            return APR_EINVAL;
        }
        *eq++ = 0;
        if (!strcmp(tok, "i")) {
            f->inclusive = atoi(eq) != 0;
        }
        else if (!strcmp(tok, "s")) {
            ok = read_time(eq, &f->rec.since, &f->rec.since_incl);
            f->rec.has_since = f->has_rec = 1;
        }
        else if (!strcmp(tok, "b")) {
            ok = read_time(eq, &f->rec.before, &f->rec.before_incl);
            f->rec.has_before = f->has_rec = 1;
        }
        else if (!strcmp(tok, "c")) {
            f->rec.max_count = apr_atoi64(eq);
            f->has_rec = 1;
        }
        else if (!strcmp(tok, "l")) {
            f->rec.luid = memds_ds_value_unescape(eq);
            f->has_rec = 1;
        }
        else if (!strcmp(tok, "as")) {
            int incl;
            ok = read_time(eq, &f->admin_since, &incl);
        }
        else if (!strcmp(tok, "ac")) {
            f->admin_count = apr_atoi64(eq);
        }
        else {
            return APR_EINVAL;
        }
    }
    if (!ok) {
        return APR_EINVAL;
    }
    if (lv) {
        if (memds_ds_level_parse(&f->level, lv + 2, p) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        f->has_level = 1;
    }
    *pf = f;
    return APR_SUCCESS;
}

/* ------------------------------------------------- from the Alert */

/* The level a field clause, MAXSIZE and NOATT ask for (email-san.md 3.3):
 * no PropParam: the header only; texttype: the text, cut at MaxSize;
 * attachtype: the whole mail, at most MaxSize (else header and text up to
 * MaxSize); attachtype naming one attachment: that one with the text. */
static int level_of(memds_ds_level_t *l, const memds_filter_spec_t *sp)
{
    const memds_filter_field_t *fld = sp->field;
    const memds_filter_rec_t *r = sp->record;
    int any = 0;

    l->whole_max = -1;
    l->text_max = -1;
    l->attach = 1;
    l->attach_name = NULL;
    if (fld) {
        apr_int64_t ms = fld->max_size > 0 ? fld->max_size : -1;
        any = 1;
        if (fld->attach_name) {
            l->whole_max = 0;
            l->text_max = ms;
            l->attach = 0;
            l->attach_name = fld->attach_name;
        }
        else if (fld->attachtype) {
            l->whole_max = ms;
            l->text_max = ms;
            l->attach = 0;
        }
        else if (fld->texttype) {
            l->whole_max = ms > 0 ? ms : 0;
            l->text_max = ms;
            l->attach = 0;
        }
        else {
            l->whole_max = 0;
            l->text_max = 0;
            l->attach = 0;
        }
    }
    if (r && r->max_size != MEMDS_NOVAL) {
        any = 1;
        if (l->whole_max < 0 || r->max_size < l->whole_max) {
            l->whole_max = r->max_size;
        }
        if (l->text_max < 0 || r->max_size < l->text_max) {
            l->text_max = r->max_size;
        }
        l->attach = 0;
    }
    if (r && r->noatt == 1) {
        any = 1;
        l->attach = 0;
        l->attach_name = NULL;
        if (l->whole_max < 0) {
            l->whole_max = 0;
        }
    }
    return any;
}

int eng_filter_from_alert(eng_t *e, eng_filter_t **pf, const memds_filter_t *mf,
                          memds_ds_t *ds, const char **pwhy)
{
    memds_filter_spec_t *sp = NULL;
    eng_filter_t *f;
    int st = MEMDS_ST_OK;

    *pf = NULL;
    *pwhy = NULL;
    f = apr_pcalloc(e->p, sizeof(*f));
    f->rec.max_size = f->rec.max_count = MEMDS_NOVAL;
    f->rec.noatt = MEMDS_NOVAL;
    if (mf) {
        st = memds_filter_spec(&sp, mf, pwhy, e->p);
        if (st != MEMDS_ST_OK) {
            return st;
        }
        if (ds->vt->select == NULL) {
            *pwhy = "this datastore cannot be filtered";
            return MEMDS_ST_NOT_SUPPORTED;
        }
        f->inclusive = sp->inclusive;
        if (sp->record) {
            f->has_rec = 1;
            f->rec = *sp->record;
        }
        f->has_level = level_of(&f->level, sp);
        if (f->inclusive && f->rec.max_count != MEMDS_NOVAL) {
            *pwhy = "MAXCOUNT defines a sync set: EXCLUSIVE only";
            return MEMDS_ST_NOT_SUPPORTED;
        }
    }
    if (ds->vt->select && e->cfg->max_age_days > 0) {
        f->admin_since = apr_time_now()
                         - apr_time_from_sec((apr_time_t)e->cfg->max_age_days
                                             * 86400);
    }
    if (ds->vt->select && e->cfg->max_items > 0) {
        f->admin_count = e->cfg->max_items;
    }
    if (mf || f->admin_since || f->admin_count) {
        *pf = f;
    }
    return st;
}

const memds_ds_level_t *eng_filter_level(eng_t *e, const memds_sstore_t *ss)
{
    eng_filter_t *f;

    if (ss->filter == NULL
        || eng_filter_parse(&f, ss->filter, e->p) != APR_SUCCESS
        || !f->has_level) {
        return NULL;
    }
    return &f->level;
}

/* ------------------------------------------------ building the queue */

/* The selection of the sync set: the device's EXCLUSIVE record (or with
 * an INCLUSIVE filter the set of its last session), within the
 * administrator's limits. 0 when there is no set (everything). */
static int set_of(memds_ds_select_t *sel, const eng_filter_t *f,
                  const eng_filter_t *prev_excl)
{
    const eng_filter_t *d = f && !f->inclusive ? f : prev_excl;
    int any = 0;

    memset(sel, 0, sizeof(*sel));
    if (d && d->has_rec) {
        if (d->rec.has_since) {
            sel->since = d->rec.since;
            sel->since_incl = d->rec.since_incl;
            any = 1;
        }
        if (d->rec.has_before) {
            sel->before = d->rec.before;
            sel->before_incl = d->rec.before_incl;
            any = 1;
        }
        if (d->rec.max_count != MEMDS_NOVAL) {
            sel->max_count = d->rec.max_count > 0 ? d->rec.max_count : 1;
            any = 1;
        }
    }
    if (f && f->admin_since && f->admin_since > sel->since) {
        sel->since = f->admin_since;
        sel->since_incl = 1;
        any = 1;
    }
    if (f && f->admin_count > 0
        && (sel->max_count <= 0 || f->admin_count < sel->max_count)) {
        sel->max_count = f->admin_count;
        any = 1;
    }
    return any;
}

/* The set a stored (previous) filter described, by itself. */
static int prev_set_of(memds_ds_select_t *sel, const eng_filter_t *pf)
{
    eng_filter_t only = *pf;

    only.inclusive = 0;
    return set_of(sel, &only, NULL);
}

struct eng_fctx_t {
    eng_filter_t *f;  /* this session's, or NULL */
    apr_hash_t *set;  /* live items -> "1" in the sync set, "0" out; NULL:
                         no set (everything) */
    apr_hash_t *prev; /* the same for the last session's set; NULL: that
                         was everything (or a slow sync: not needed) */
    int window;       /* the set is a count window (MAXCOUNT, MemDSMaxItems) */
};

apr_status_t eng_filter_prepare(eng_t *e, eng_fctx_t **pfx,
                                const memds_sstore_t *ss, memds_ds_t *ds,
                                apr_int64_t since, const char *prev_filter)
{
    eng_fctx_t *fx = apr_pcalloc(e->p, sizeof(*fx));
    eng_filter_t *prev = NULL;
    memds_ds_select_t sel;

    *pfx = fx;
    if (ds->vt->select == NULL) {
        return APR_SUCCESS; /* (a filter here was refused with the Alert) */
    }
    if (ss->filter
        && eng_filter_parse(&fx->f, ss->filter, e->p) != APR_SUCCESS) {
        fx->f = NULL;
    }
    if (prev_filter
        && eng_filter_parse(&prev, prev_filter, e->p) != APR_SUCCESS) {
        prev = NULL;
    }
    if (set_of(&sel, fx->f, fx->f && fx->f->inclusive ? prev : NULL)
        && ds->vt->select(ds, &sel, &fx->set) != APR_SUCCESS) {
        return eng_ds_fail(e, ds, "selecting the filtered items");
    }
    fx->window = fx->set && sel.max_count > 0 && fx->f && !fx->f->inclusive;
    if (since >= 0 && prev && prev_set_of(&sel, prev)
        && ds->vt->select(ds, &sel, &fx->prev) != APR_SUCCESS) {
        return eng_ds_fail(e, ds, "selecting the previous filter's items");
    }
    return APR_SUCCESS;
}

int eng_filter_admit(const eng_fctx_t *fx, const memds_ds_change_t *c)
{
    const char *v;

    if (fx == NULL || fx->set == NULL || c->deleted) {
        return 1;
    }
    v = apr_hash_get(fx->set, c->guid, APR_HASH_KEY_STRING);
    return v == NULL || *v == '1'; /* (not a mail: a folder, say) */
}

static memds_qitem_t *queue_push(eng_t *e, apr_array_header_t *queue,
                                 apr_hash_t *queued, const memds_sstore_t *ss,
                                 int *pn, const char *guid, const char *luid,
                                 memds_qop_e op)
{
    memds_qitem_t *q = apr_pcalloc(e->p, sizeof(*q));

    q->store = ss->store;
    q->n = ++*pn;
    q->guid = guid;
    q->luid = luid;
    q->op = op;
    APR_ARRAY_PUSH(queue, memds_qitem_t *) = q;
    apr_hash_set(queued, guid, APR_HASH_KEY_STRING, q);
    return q;
}

/* Send guid again whole at the session's level: a queued Replace becomes
 * a re-fetch, else one is queued (when the device has it). */
static void refetch(eng_t *e, apr_array_header_t *queue, apr_hash_t *queued,
                    const memds_sstore_t *ss, int *pn, const char *guid,
                    const char *luid)
{
    memds_qitem_t *q = apr_hash_get(queued, guid, APR_HASH_KEY_STRING);

    if (q) {
        if (q->op == MEMDS_Q_REPLACE) {
            q->op = MEMDS_Q_REFETCH;
        }
        return;
    }
    if (luid) {
        queue_push(e, queue, queued, ss, pn, guid, luid, MEMDS_Q_REFETCH);
    }
}

/* Mail added outside the session's list of changes (it entered the set,
 * the count window refills) goes only when its last change is within the
 * session's snapshot, as the listed changes are. The set is what the
 * folder holds now, and under load the snapshot (memds.item_seq_visible)
 * lags behind mail just scanned: sent now, such a mail came again at the
 * next session as a change after the device's position, and the device's
 * first change of it met that "server change": 419, the device's flag
 * change lost (bench/load). It comes with the next session's changes. */
static int within_snapshot(memds_ds_t *ds, const memds_sstore_t *ss,
                           const char *guid)
{
    apr_int64_t seq, by;

    if (ss->snapshot_seq < 0 || ds->vt->last_change == NULL
        || ds->vt->last_change(ds, guid, &seq, &by) != APR_SUCCESS) {
        return 1;
    }
    return seq <= ss->snapshot_seq;
}

apr_status_t eng_filter_finish(eng_t *e, eng_fctx_t *fx,
                               const memds_sstore_t *ss, memds_ds_t *ds,
                               apr_hash_t *maps, apr_array_header_t *queue,
                               int *pn)
{
    apr_hash_t *queued = apr_hash_make(e->p), *byluid = NULL;
    apr_hash_index_t *hi;
    apr_array_header_t *wanted = NULL;
    int i;

    for (i = 0; i < queue->nelts; ++i) {
        memds_qitem_t *q = APR_ARRAY_IDX(queue, i, memds_qitem_t *);
        apr_hash_set(queued, q->guid, APR_HASH_KEY_STRING, q);
    }
    if (fx && fx->set) {
        /* Mail the device has that is out of its set: soft-deleted on the
         * device only (and no longer mapped, so never twice). */
        for (hi = apr_hash_first(e->p, maps); hi; hi = apr_hash_next(hi)) {
            const char *guid = apr_hash_this_key(hi);
            const char *v = apr_hash_get(fx->set, guid, APR_HASH_KEY_STRING);
            if (v && *v == '0'
                && !apr_hash_get(queued, guid, APR_HASH_KEY_STRING)) {
                queue_push(e, queue, queued, ss, pn, guid,
                           apr_hash_this_val(hi), MEMDS_Q_SOFTDELETE);
                if (e->db->vt->map_del(e->db, e->dev.device_id, ss->store, guid)
                    != APR_SUCCESS) {
                    return eng_db_fail(e, "forgetting a soft-deleted item");
                }
            }
        }
    }
    if (fx && fx->prev) {
        /* Mail that entered the set since the last session: added. */
        for (hi = apr_hash_first(e->p, fx->prev); hi; hi = apr_hash_next(hi)) {
            const char *guid = apr_hash_this_key(hi);
            const char *was = apr_hash_this_val(hi), *now = NULL;
            if (*was == '1') {
                continue;
            }
            if (fx->set) {
                now = apr_hash_get(fx->set, guid, APR_HASH_KEY_STRING);
                if (now == NULL || *now != '1') {
                    continue;
                }
            }
            if (!apr_hash_get(maps, guid, APR_HASH_KEY_STRING)
                && !apr_hash_get(queued, guid, APR_HASH_KEY_STRING)
                && within_snapshot(ds, ss, guid)) {
                queue_push(e, queue, queued, ss, pn, guid, NULL, MEMDS_Q_ADD);
            }
        }
    }
    if (fx && fx->window) {
        /* A count window refills: when newer mail goes (deleted on the
         * device or elsewhere), older mail enters it. Mail in the set that
         * the device does not have is added (found by bench/load: with
         * MemDSMaxItems a device that deleted its mail got nothing). */
        for (hi = apr_hash_first(e->p, fx->set); hi; hi = apr_hash_next(hi)) {
            const char *guid = apr_hash_this_key(hi);
            if (*(const char *)apr_hash_this_val(hi) == '1'
                && !apr_hash_get(maps, guid, APR_HASH_KEY_STRING)
                && !apr_hash_get(queued, guid, APR_HASH_KEY_STRING)
                && within_snapshot(ds, ss, guid)) {
                queue_push(e, queue, queued, ss, pn, guid, NULL, MEMDS_Q_ADD);
            }
        }
    }
    if (fx && fx->f && fx->f->inclusive && fx->f->has_rec) {
        const memds_filter_rec_t *r = &fx->f->rec;
        memds_ds_select_t sel;
        eng_filter_t only = *fx->f;
        apr_hash_t *add = NULL;

        only.inclusive = 0;
        only.rec.luid = NULL;
        if (set_of(&sel, &only, NULL)
            && ds->vt->select(ds, &sel, &add) != APR_SUCCESS) {
            return eng_ds_fail(e, ds, "selecting the filtered items");
        }
        if (r->luid) {
            /* get-more: the one item the device names, again at the
             * session's level; nothing else changes on the device */
            byluid = apr_hash_make(e->p);
            for (hi = apr_hash_first(e->p, maps); hi; hi = apr_hash_next(hi)) {
                apr_hash_set(byluid, apr_hash_this_val(hi), APR_HASH_KEY_STRING,
                             apr_hash_this_key(hi));
            }
            {
                const char *guid = apr_hash_get(byluid, r->luid,
                                                APR_HASH_KEY_STRING);
                const char *in = guid && add ? apr_hash_get(add, guid,
                                                            APR_HASH_KEY_STRING)
                                             : "1";
                if (guid && in && *in == '1') {
                    refetch(e, queue, queued, ss, pn, guid, r->luid);
                }
            }
        }
        else if (add) {
            /* INCLUSIVE: the matching mail the device lacks, added once */
            for (hi = apr_hash_first(e->p, add); hi; hi = apr_hash_next(hi)) {
                const char *guid = apr_hash_this_key(hi);
                const char *v = apr_hash_this_val(hi);
                if (*v == '1' && !apr_hash_get(maps, guid, APR_HASH_KEY_STRING)
                    && !apr_hash_get(queued, guid, APR_HASH_KEY_STRING)
                    && within_snapshot(ds, ss, guid)) {
                    queue_push(e, queue, queued, ss, pn, guid, NULL,
                               MEMDS_Q_ADD);
                }
            }
        }
    }
    if (ds->vt->wanted) {
        /* what the device asked for with a larger limit */
        if (ds->vt->wanted(ds, &wanted) != APR_SUCCESS) {
            return eng_ds_fail(e, ds, "reading what the device asked for");
        }
        for (i = 0; i < wanted->nelts; ++i) {
            const char *guid = APR_ARRAY_IDX(wanted, i, const char *);
            refetch(e, queue, queued, ss, pn, guid,
                    apr_hash_get(maps, guid, APR_HASH_KEY_STRING));
        }
    }
    return APR_SUCCESS;
}

const char *eng_filter_remember(eng_t *e, const memds_sstore_t *ss,
                                const char *old)
{
    eng_filter_t *f;

    if (ss->filter == NULL
        || eng_filter_parse(&f, ss->filter, e->p) != APR_SUCCESS) {
        return NULL;
    }
    return f->inclusive ? old : ss->filter;
}
