/* memds_mailtrunc.c: a mail too big for the device, sent truncated
 * (memds_mailtrunc.h). */
#include "ds/memds_mailtrunc.h"
#include "email/memds_trunc.h"
#include "util/memds_buf.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

/* One message read ahead (memds_mbox_prefetch_truncated). */
typedef struct memds_mbox_tpre_t {
    apr_array_header_t *parts; /* memds_trunc_part_t, its leaves */
    const char *header;        /* BODY[HEADER], NUL-terminated; NULL: unread */
    apr_size_t header_len;
    const char *tsection; /* BINARY[tsection]<0.text_max> read, or NULL */
    const char *text;
    apr_size_t text_len, text_max;
} memds_mbox_tpre_t;

typedef struct tr_ctx_t {
    memds_ds_t *ds;
    const memds_mbox_tpre_t *pre; /* read ahead, or NULL */
    memds_imap_conn_t *c;
    apr_int64_t uid;
    apr_pool_t *p;
    apr_array_header_t *parts; /* memds_trunc_part_t */
    int gone;                  /* the UID no longer exists */
    int text_failed;           /* the server refused the text's BINARY */
    memds_imap_err_t err;
} tr_ctx_t;

const char *memds_mbox_body_param(const apr_array_header_t *params,
                                  const char *name)
{
    int i;

    for (i = 0; params && i < params->nelts; ++i) {
        const memds_imap_param_t *pa = &APR_ARRAY_IDX(params, i,
                                                      memds_imap_param_t);
        if (pa->name && strcasecmp(pa->name, name) == 0) {
            return pa->value;
        }
    }
    return NULL;
}

/* A file name XML can carry, or NULL. */
static const char *safe_name(const char *n)
{
    return n && *n && memds_email_item_xml_safe(n, strlen(n), NULL) ? n : NULL;
}

static void leaves(tr_ctx_t *t, const memds_imap_body_t *n)
{
    memds_trunc_part_t *l;
    const char *name;
    int i;

    if (n->multipart) {
        for (i = 0; n->parts && i < n->parts->nelts; ++i) {
            leaves(t, APR_ARRAY_IDX(n->parts, i, memds_imap_body_t *));
        }
        return;
    }
    l = apr_array_push(t->parts);
    l->section = apr_pstrdup(t->p, n->section);
    l->type = apr_pstrdup(t->p, n->type ? n->type : "text");
    l->subtype = apr_pstrdup(t->p, n->subtype ? n->subtype : "plain");
    l->charset = apr_pstrdup(t->p, memds_mbox_body_param(n->params, "charset"));
    l->encoding = apr_pstrdup(t->p, n->encoding);
    l->disposition = apr_pstrdup(t->p, n->disposition);
    name = memds_mbox_body_param(n->disp_params, "filename");
    name = name ? name : memds_mbox_body_param(n->params, "name");
    l->name = apr_pstrdup(t->p, safe_name(name));
    l->size = (apr_int64_t)n->size;
}

static apr_status_t bs_cb(void *baton, const memds_imap_resp_t *r)
{
    tr_ctx_t *t = baton;

    if (r->type == MEMDS_IMAP_RESP_FETCH && r->fetch->body
        && t->parts->nelts == 0) {
        leaves(t, r->fetch->body);
    }
    return APR_SUCCESS;
}

/* The builder's fetch: BODY.PEEK[HEADER], BINARY.PEEK[n]<0.max>. */
static apr_status_t fetch_cb(void *baton, const char *section, int binary,
                             apr_size_t max, const char **pdata,
                             apr_size_t *plen)
{
    tr_ctx_t *t = baton;
    const memds_mbox_tpre_t *pre = t->pre;
    memds_imap_body_info_t info;
    memds_buf_t b;

    if (pre && !binary && max == 0 && pre->header
        && strcmp(section, "HEADER") == 0) {
        *pdata = pre->header;
        *plen = pre->header_len;
        return APR_SUCCESS;
    }
    if (pre && binary && pre->tsection && max > 0 && max <= pre->text_max
        && strcmp(section, pre->tsection) == 0) {
        /* (the first max bytes of the first text_max) */
        *plen = pre->text_len < max ? pre->text_len : max;
        *pdata = apr_pstrmemdup(t->p, pre->text, *plen);
        return APR_SUCCESS;
    }
    memds_buf_init(&b, max > 0 && max < 65536 ? max + 1 : 4096, t->p);
    if (memds_imap_fetch_body(t->c, (apr_uint32_t)t->uid, section, 0, max,
                              binary ? MEMDS_IMAP_BODY_BINARY : 0,
                              memds_mbox_body_cb, &b, &info, &t->err)
        != APR_SUCCESS) {
        if (t->err.kind == MEMDS_IMAP_E_NOTFOUND) {
            t->gone = 1;
            return APR_ENOENT;
        }
        if (binary && t->err.kind == MEMDS_IMAP_E_NO) {
            /* (an encoding the server cannot decode: no text is sent, the
             * text part is listed as left out) */
            t->text_failed = 1;
            *pdata = "";
            *plen = 0;
            return APR_SUCCESS;
        }
        return APR_EGENERAL;
    }
    memds_buf_addc(&b, '\0');
    *pdata = b.data;
    *plen = b.len - 1;
    return APR_SUCCESS;
}

/* The text part the builder took for whole when the server could not
 * decode it: listed as left out. */
static void text_left_out(memds_email_t *te, const apr_array_header_t *parts,
                          apr_pool_t *p)
{
    int i;

    for (i = 0; i < parts->nelts; ++i) {
        const memds_trunc_part_t *l = &APR_ARRAY_IDX(parts, i,
                                                     memds_trunc_part_t);
        if (!strcasecmp(l->type, "text")) {
            memds_email_add_tbody(te, l->size,
                                  apr_pstrcat(p, l->type, "/", l->subtype,
                                              NULL),
                                  p);
            return;
        }
    }
}

/* Funambol's form of the <truncated> list (email-san.md 1.4 b), for its
 * clients: x-funambol-size (the whole message), x-funambol-body (the full
 * size of the body parts cut or left out), x-funambol-attach-n and one
 * x-funambol-attach (name, size, type; no download URL: get-more goes
 * through SyncML) per attachment left out. */
static void funambol_exts(memds_email_t *te, apr_int64_t size, apr_pool_t *p)
{
    apr_int64_t body = 0;
    const char *v[3];
    int i;

    for (i = 0; te->trunc_body && i < te->trunc_body->nelts; ++i) {
        const memds_email_tbody_t *b = APR_ARRAY_IDX(te->trunc_body, i,
                                                     memds_email_tbody_t *);
        body += b->size > 0 ? b->size : 0;
    }
    te->exts = NULL;
    v[0] = apr_psprintf(p, "%" APR_INT64_T_FMT, size);
    memds_email_ext_add(&te->exts, "x-funambol-size", v, 1, p);
    if (body > 0) {
        v[0] = apr_psprintf(p, "%" APR_INT64_T_FMT, body);
        memds_email_ext_add(&te->exts, "x-funambol-body", v, 1, p);
    }
    v[0] = apr_itoa(p, te->trunc_attach ? te->trunc_attach->nelts : 0);
    memds_email_ext_add(&te->exts, "x-funambol-attach-n", v, 1, p);
    for (i = 0; te->trunc_attach && i < te->trunc_attach->nelts; ++i) {
        const memds_email_attach_t *a = APR_ARRAY_IDX(te->trunc_attach, i,
                                                      memds_email_attach_t *);
        v[0] = a->name ? a->name : "";
        v[1] = apr_psprintf(p, "%" APR_INT64_T_FMT, a->size);
        v[2] = a->type ? a->type : "application/octet-stream";
        memds_email_ext_add(&te->exts, "x-funambol-attach",
                            apr_pmemdup(p, v, sizeof(v)), 3, p);
    }
}

apr_status_t memds_mbox_fetch_truncated(memds_ds_t *ds, memds_imap_conn_t *c,
                                        const memds_mmsg_t *row,
                                        memds_email_t *e, int want_rfc822,
                                        const memds_ds_level_t *lv,
                                        const char **pdata, apr_size_t *plen,
                                        const char **ptype)
{
    apr_pool_t *p = ds->st->pool;
    apr_size_t budget = ds->size_budget > 0 ? ds->size_budget
                                            : (apr_size_t)1 << 40,
               mb;
    memds_trunc_opts_t opts;
    apr_int64_t limit;
    int all = 0;
    const char *msg = NULL, *why, *mark;
    apr_size_t mlen = 0;
    memds_trunc_orig_t o;
    tr_ctx_t t;
    memds_email_t *te = NULL;
    memds_buf_t out;
    memds_codec_err_t cerr;
    int tries, rfc822 = want_rfc822;
    apr_status_t rv;

    memset(&t, 0, sizeof(t));
    t.ds = ds;
    t.c = c;
    t.uid = row->uid;
    t.p = p;
    t.parts = apr_array_make(p, 8, sizeof(memds_trunc_part_t));
    if (MBOX(ds)->tahead) {
        apr_uint32_t u = (apr_uint32_t)row->uid;
        t.pre = apr_hash_get(MBOX(ds)->tahead, &u, sizeof(u));
    }
    if (t.pre) {
        t.parts = t.pre->parts; /* (read ahead with the others) */
    }
    else if (memds_imap_uid_fetch(c,
                                  apr_psprintf(p, "%" APR_INT64_T_FMT,
                                               row->uid),
                                  "(UID BODYSTRUCTURE)", 0, 0, bs_cb, &t,
                                  &t.err)
             != APR_SUCCESS) {
        if (t.err.kind == MEMDS_IMAP_E_NOTFOUND) {
            return APR_ENOENT;
        }
        return memds_mbox_fail_imap(ds, &t.err, "UID FETCH BODYSTRUCTURE");
    }
    if (t.parts->nelts == 0) {
        return APR_ENOENT; /* expunged since the scan: no FETCH came */
    }
    o.parts = t.parts;
    o.fetch = fetch_cb;
    o.baton = &t;
    opts.text_max = lv ? lv->text_max : -1;
    opts.attach_name = lv ? lv->attach_name : NULL;
    /* (the mark: where the text was cut at most) */
    limit = ds->size_budget > 0 ? (apr_int64_t)ds->size_budget
            : row->size > 0     ? row->size - 1
                                : 0;
    if (opts.text_max >= 0 && opts.text_max < limit) {
        limit = opts.text_max;
    }
    mark = apr_psprintf(p, "X-Sync-Message-Limit: %" APR_INT64_T_FMT "\r\n",
                        limit);
    /* the email object's own overhead (flags, dates, the <truncated>
     * list) and XML escaping are known only once built: build with a
     * smaller message budget until the object fits */
    mb = budget > 600 + 160 * (apr_size_t)t.parts->nelts
             ? budget - 600 - 160 * (apr_size_t)t.parts->nelts
             : budget / 2;
    *pdata = NULL;
    for (tries = 0; tries < 6; ++tries, mb = mb * 2 / 3) {
        if (mb <= strlen(mark) + 64) {
            ds->reason = "the budget is too small for any message";
            return *pdata ? APR_SUCCESS : APR_ENOSPC;
        }
        te = apr_pmemdup(p, e, sizeof(*e));
        t.text_failed = 0;
        rv = memds_trunc_build_opts(&msg, &mlen, te, &o, mb - strlen(mark),
                                    &opts, &all, &why, p);
        if (rv != APR_SUCCESS) {
            if (t.gone) {
                return APR_ENOENT;
            }
            if (rv == APR_ENOSPC || rv == APR_EINVAL) {
                /* not even the cut header fits: the last one built (too
                 * big, the engine says so), else the engine's ENOSPC */
                ds->reason = why;
                return *pdata ? APR_SUCCESS : APR_ENOSPC;
            }
            return memds_mbox_fail_imap(ds, &t.err,
                                        "UID FETCH BODY.PEEK (truncated)");
        }
        if (t.text_failed) {
            text_left_out(te, t.parts, p);
        }
        else if (all && tries == 0
                 && (ds->size_budget == 0
                     || (apr_size_t)row->size + 512 + (apr_size_t)row->size / 8
                            <= ds->size_budget)) {
            return APR_EEXIST; /* nothing left out: the whole mail fits */
        }
        if (!rfc822) {
            /* (what XML cannot carry fails the build, checked while it is
             * escaped: then message/rfc822 below) */
            memds_mbox_set_created(te, msg, mlen, p);
            if (MBOX(ds)->env.funambol) {
                funambol_exts(te, row->size, p);
            }
            te->has_item = 1;
            te->item = msg;
            te->item_len = mlen;
            te->item_checked = 0;
            memds_buf_init(&out, mlen + mlen / 4 + 2048, p);
            memset(&cerr, 0, sizeof(cerr));
            if (memds_email_build(&out, te, MEMDS_EMAIL_STYLE_TEXT, &cerr, p)
                == APR_SUCCESS) {
                *pdata = out.data;
                *plen = out.len;
                *ptype = MEMDS_EMAIL_CTTYPE;
                if (out.len <= budget) {
                    return APR_SUCCESS;
                }
                continue;
            }
        }
        /* message/rfc822: asked for, or what XML cannot carry */
        rfc822 = 1;
        *pdata = apr_pstrcat(p, mark, msg, NULL);
        *plen = strlen(mark) + mlen;
        *ptype = MEMDS_RFC822;
        if (*plen <= budget) {
            return APR_SUCCESS;
        }
    }
    return APR_SUCCESS; /* (the last one, too big: the engine says so) */
}

typedef struct tahead_ctx_t {
    apr_hash_t *h;
    apr_pool_t *p;
} tahead_ctx_t;

/* The read-ahead record of a FETCH response's UID, made on first sight. */
static memds_mbox_tpre_t *tpre_of(tahead_ctx_t *a, const memds_imap_resp_t *r)
{
    memds_mbox_tpre_t *pre;
    apr_uint32_t *k;

    if (r->type != MEMDS_IMAP_RESP_FETCH
        || !(r->fetch->have & MEMDS_IMAP_F_UID)) {
        return NULL;
    }
    pre = apr_hash_get(a->h, &r->fetch->uid, sizeof(r->fetch->uid));
    if (pre == NULL) {
        pre = apr_pcalloc(a->p, sizeof(*pre));
        k = apr_pmemdup(a->p, &r->fetch->uid, sizeof(*k));
        apr_hash_set(a->h, k, sizeof(*k), pre);
    }
    return pre;
}

/* The section item of a FETCH response (item, section), or NULL. */
static const memds_imap_section_t *
section_of(const memds_imap_resp_t *r, const char *item, const char *section)
{
    int i;

    for (i = 0; r->fetch->sections && i < r->fetch->sections->nelts; ++i) {
        const memds_imap_section_t *sec = &APR_ARRAY_IDX(r->fetch->sections, i,
                                                         memds_imap_section_t);
        if (sec->data && !sec->streamed && sec->section
            && strcmp(sec->item, item) == 0
            && strcmp(sec->section, section) == 0) {
            return sec;
        }
    }
    return NULL;
}

static apr_status_t tahead_bs_cb(void *baton, const memds_imap_resp_t *r)
{
    tahead_ctx_t *a = baton;
    memds_mbox_tpre_t *pre = tpre_of(a, r);
    const memds_imap_section_t *sec;
    tr_ctx_t t;

    if (pre == NULL) {
        return APR_SUCCESS;
    }
    if (r->fetch->body && pre->parts == NULL) {
        memset(&t, 0, sizeof(t));
        t.p = a->p;
        t.parts = apr_array_make(a->p, 4, sizeof(memds_trunc_part_t));
        leaves(&t, r->fetch->body);
        pre->parts = t.parts;
    }
    if ((sec = section_of(r, "BODY", "HEADER")) != NULL) {
        pre->header = apr_pstrmemdup(a->p, sec->data, sec->len);
        pre->header_len = sec->len;
    }
    return APR_SUCCESS;
}

typedef struct tahead_text_t {
    tahead_ctx_t *a;
    const char *section;
    apr_size_t max;
} tahead_text_t;

static apr_status_t tahead_text_cb(void *baton, const memds_imap_resp_t *r)
{
    tahead_text_t *tt = baton;
    memds_mbox_tpre_t *pre = tpre_of(tt->a, r);
    const memds_imap_section_t *sec;

    if (pre && pre->parts && (sec = section_of(r, "BINARY", tt->section))
        && (!sec->has_origin || sec->origin == 0) && sec->len <= tt->max) {
        pre->text = apr_pstrmemdup(tt->a->p, sec->data, sec->len);
        pre->text_len = sec->len;
        pre->text_max = tt->max;
        pre->tsection = tt->section;
    }
    return APR_SUCCESS;
}

void memds_mbox_prefetch_truncated(memds_ds_t *ds, memds_imap_conn_t *c,
                                   const apr_uint32_t *uids, int n,
                                   apr_int64_t text_max)
{
    memds_mbox_t *x = MBOX(ds);
    apr_pool_t *p = ds->st->pool;
    apr_hash_t *bysec;
    apr_hash_index_t *hi;
    memds_imap_err_t err;
    tahead_ctx_t a;

    if (n <= 0) {
        return;
    }
    a.h = apr_hash_make(p);
    a.p = p;
    if (memds_imap_uid_fetch(c, memds_imap_set_from_uids(uids, n, p),
                             "(UID BODYSTRUCTURE BODY.PEEK[HEADER])", 0, 0,
                             tahead_bs_cb, &a, &err)
        != APR_SUCCESS) {
        return; /* (fetch reads them one by one) */
    }
    if (text_max > 0) {
        /* the start of each text part: one UID FETCH per section name */
        bysec = apr_hash_make(p);
        for (hi = apr_hash_first(p, a.h); hi; hi = apr_hash_next(hi)) {
            const void *k;
            void *v;
            const memds_mbox_tpre_t *pre;
            const memds_trunc_part_t *tp;
            apr_array_header_t *set;
            apr_hash_this(hi, &k, NULL, &v);
            pre = v;
            if (pre->parts == NULL || pre->header == NULL
                || (tp = memds_trunc_text_part(pre->parts)) == NULL) {
                continue;
            }
            set = apr_hash_get(bysec, tp->section, APR_HASH_KEY_STRING);
            if (set == NULL) {
                set = apr_array_make(p, n, sizeof(apr_uint32_t));
                apr_hash_set(bysec, tp->section, APR_HASH_KEY_STRING, set);
            }
            APR_ARRAY_PUSH(set, apr_uint32_t) = *(const apr_uint32_t *)k;
        }
        for (hi = apr_hash_first(p, bysec); hi; hi = apr_hash_next(hi)) {
            const void *k;
            void *v;
            const apr_array_header_t *set;
            tahead_text_t tt;
            apr_hash_this(hi, &k, NULL, &v);
            set = v;
            tt.a = &a;
            tt.section = k;
            tt.max = (apr_size_t)text_max;
            /* (a server that cannot decode a part answers NO: fetch then
             * finds the text unread and asks for it alone) */
            (void)memds_imap_uid_fetch(
                c,
                memds_imap_set_from_uids((const apr_uint32_t *)set->elts,
                                         set->nelts, p),
                apr_psprintf(p, "(UID BINARY.PEEK[%s]<0.%" APR_SIZE_T_FMT ">)",
                             tt.section, tt.max),
                0, 0, tahead_text_cb, &tt, &err);
        }
    }
    for (hi = apr_hash_first(p, a.h); hi; hi = apr_hash_next(hi)) {
        const void *k;
        void *v;
        apr_hash_this(hi, &k, NULL, &v);
        if (((const memds_mbox_tpre_t *)v)->parts) {
            if (x->tahead == NULL) {
                x->tahead = apr_hash_make(p);
            }
            apr_hash_set(x->tahead, k, sizeof(apr_uint32_t), v);
        }
    }
}
