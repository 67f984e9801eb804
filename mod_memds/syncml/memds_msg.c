/* memds_msg.c: the SyncML message model <-> element tree (memds_msg.h). */
#include "syncml/memds_msg.h"
#include "syncml/memds_wbxml.h"
#include "syncml/memds_xml.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <stdarg.h>
#include <string.h>

/* ================================================================ helpers */

static int is(const memds_node_t *n, const char *name)
{
    return strcmp(n->tag->name, name) == 0;
}

static const char *sval(const memds_node_t *n, apr_pool_t *p)
{
    return memds_node_str(n, p);
}

static apr_status_t bad(memds_codec_err_t *err, apr_pool_t *p, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

static apr_status_t bad(memds_codec_err_t *err, apr_pool_t *p, const char *fmt,
                        ...)
{
    va_list ap;

    if (err) {
        va_start(ap, fmt);
        err->msg = apr_pvsprintf(p, fmt, ap);
        va_end(ap);
        err->rv = APR_EINVAL;
        err->offset = 0;
        err->line = 0;
    }
    return APR_EINVAL;
}

static apr_status_t not_allowed(memds_codec_err_t *err, apr_pool_t *p,
                                const memds_node_t *c, const memds_node_t *in)
{
    return bad(err, p, "<%s> is not allowed in <%s>", c->tag->name,
               in->tag->name);
}

static int in_list(const char *name, const char *const *list)
{
    for (; *list; ++list) {
        if (strcmp(name, *list) == 0) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t parse_int(apr_int64_t *pv, const memds_node_t *n,
                              memds_codec_err_t *err, apr_pool_t *p)
{
    const char *s = sval(n, p), *c;
    apr_int64_t v = 0;

    if (*s == '\0') {
        return bad(err, p, "<%s> is empty, expected a number", n->tag->name);
    }
    for (c = s; *c; ++c) {
        if (!apr_isdigit(*c) || v > (APR_INT64_MAX - 9) / 10) {
            return bad(err, p, "<%s> value '%.40s' is not a number",
                       n->tag->name, s);
        }
        v = v * 10 + (*c - '0');
    }
    *pv = v;
    return APR_SUCCESS;
}

#define PUSH(arr, type, v, p) \
    do { \
        if ((arr) == NULL) \
            (arr) = apr_array_make((p), 4, sizeof(type)); \
        APR_ARRAY_PUSH((arr), type) = (v); \
    } while (0)

/* =================================================== tree -> model: MetInf */

static apr_status_t meta_from(memds_meta_t *m, const memds_node_t *n,
                              memds_codec_err_t *err, apr_pool_t *p);

static memds_meta_t *meta_new(apr_pool_t *p)
{
    memds_meta_t *m = apr_pcalloc(p, sizeof(*m));

    m->size = m->max_msg_size = m->max_obj_size = MEMDS_NOVAL;
    return m;
}

/* Children of n (a Meta, a Chal's Meta, a Data holding MetInf, or a
 * MetInf wrapper) into m. */
static apr_status_t meta_from(memds_meta_t *m, const memds_node_t *n,
                              memds_codec_err_t *err, apr_pool_t *p)
{
    const memds_node_t *c, *d;
    apr_status_t rv = APR_SUCCESS;

    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        if (c->tag->ts != MEMDS_TS_METINF) {
            return not_allowed(err, p, c, n);
        }
        if (is(c, "Type"))
            m->type = sval(c, p);
        else if (is(c, "Format"))
            m->format = sval(c, p);
        else if (is(c, "Mark"))
            m->mark = sval(c, p);
        else if (is(c, "Version"))
            m->version = sval(c, p);
        else if (is(c, "NextNonce"))
            m->next_nonce = sval(c, p);
        else if (is(c, "Size"))
            rv = parse_int(&m->size, c, err, p);
        else if (is(c, "MaxMsgSize"))
            rv = parse_int(&m->max_msg_size, c, err, p);
        else if (is(c, "MaxObjSize"))
            rv = parse_int(&m->max_obj_size, c, err, p);
        else if (is(c, "EMI"))
            PUSH(m->emi, const char *, sval(c, p), p);
        else if (is(c, "FieldLevel"))
            m->field_level = 1;
        else if (is(c, "MetInf"))
            rv = meta_from(m, c, err, p);
        else if (is(c, "Anchor")) {
            m->anchor = apr_pcalloc(p, sizeof(*m->anchor));
            for (d = c->first; d; d = d->next) {
                if (is(d, "Last"))
                    m->anchor->last = sval(d, p);
                else if (is(d, "Next"))
                    m->anchor->next = sval(d, p);
                else
                    return not_allowed(err, p, d, c);
            }
        }
        else if (is(c, "Mem")) {
            m->mem = apr_pcalloc(p, sizeof(*m->mem));
            for (d = c->first; d; d = d->next) {
                if (is(d, "SharedMem"))
                    m->mem->shared_mem = 1;
                else if (is(d, "FreeMem"))
                    m->mem->free_mem = sval(d, p);
                else if (is(d, "FreeID"))
                    m->mem->free_id = sval(d, p);
                else
                    return not_allowed(err, p, d, c);
            }
        }
        else {
            return not_allowed(err, p, c, n);
        }
    }
    return rv;
}

/* ======================================================= tree -> model: DevInf */

static apr_status_t ctver_from(memds_ctver_t **pcv, const memds_node_t *n,
                               memds_codec_err_t *err, apr_pool_t *p)
{
    memds_ctver_t *cv = apr_pcalloc(p, sizeof(*cv));
    const memds_node_t *c;

    for (c = n->first; c; c = c->next) {
        if (is(c, "CTType"))
            cv->ct_type = sval(c, p);
        else if (is(c, "VerCT"))
            cv->ver_ct = sval(c, p);
        else
            return not_allowed(err, p, c, n);
    }
    *pcv = cv;
    return APR_SUCCESS;
}

static apr_status_t propparam_from(memds_propparam_t **ppp,
                                   const memds_node_t *n,
                                   memds_codec_err_t *err, apr_pool_t *p)
{
    memds_propparam_t *pp = apr_pcalloc(p, sizeof(*pp));
    const memds_node_t *c;

    for (c = n->first; c; c = c->next) {
        if (is(c, "ParamName"))
            pp->name = sval(c, p);
        else if (is(c, "DataType"))
            pp->data_type = sval(c, p);
        else if (is(c, "DisplayName"))
            pp->display_name = sval(c, p);
        else if (is(c, "ValEnum"))
            PUSH(pp->val_enums, const char *, sval(c, p), p);
        else
            return not_allowed(err, p, c, n);
    }
    *ppp = pp;
    return APR_SUCCESS;
}

static apr_status_t property_from(memds_property_t **ppr, const memds_node_t *n,
                                  memds_codec_err_t *err, apr_pool_t *p)
{
    memds_property_t *pr = apr_pcalloc(p, sizeof(*pr));
    const memds_node_t *c;
    apr_status_t rv;

    for (c = n->first; c; c = c->next) {
        if (is(c, "PropName"))
            pr->name = sval(c, p);
        else if (is(c, "DataType"))
            pr->data_type = sval(c, p);
        else if (is(c, "MaxOccur"))
            pr->max_occur = sval(c, p);
        else if (is(c, "MaxSize") || is(c, "Size"))
            pr->max_size = sval(c, p);
        else if (is(c, "DisplayName"))
            pr->display_name = sval(c, p);
        else if (is(c, "NoTruncate"))
            pr->no_truncate = 1;
        else if (is(c, "ValEnum"))
            PUSH(pr->val_enums, const char *, sval(c, p), p);
        else if (is(c, "PropParam")) {
            memds_propparam_t *pp = NULL;
            if ((rv = propparam_from(&pp, c, err, p)) != APR_SUCCESS) {
                return rv;
            }
            PUSH(pr->params, memds_propparam_t *, pp, p);
        }
        else
            return not_allowed(err, p, c, n);
    }
    *ppr = pr;
    return APR_SUCCESS;
}

static apr_status_t datastore_from(memds_datastore_t **pds,
                                   const memds_node_t *n,
                                   memds_codec_err_t *err, apr_pool_t *p)
{
    memds_datastore_t *ds = apr_pcalloc(p, sizeof(*ds));
    const memds_node_t *c, *d;
    memds_ctver_t *cv = NULL;
    apr_status_t rv = APR_SUCCESS;

    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        if (is(c, "SourceRef"))
            ds->source_ref = sval(c, p);
        else if (is(c, "DisplayName"))
            ds->display_name = sval(c, p);
        else if (is(c, "MaxGUIDSize"))
            ds->max_guid_size = sval(c, p);
        else if (is(c, "Rx-Pref"))
            rv = ctver_from(&ds->rx_pref, c, err, p);
        else if (is(c, "Tx-Pref"))
            rv = ctver_from(&ds->tx_pref, c, err, p);
        else if (is(c, "Rx") || is(c, "Tx") || is(c, "Filter-Rx")) {
            if ((rv = ctver_from(&cv, c, err, p)) == APR_SUCCESS) {
                if (is(c, "Rx"))
                    PUSH(ds->rx, memds_ctver_t *, cv, p);
                else if (is(c, "Tx"))
                    PUSH(ds->tx, memds_ctver_t *, cv, p);
                else
                    PUSH(ds->filter_rx, memds_ctver_t *, cv, p);
            }
        }
        else if (is(c, "CTCap")) {
            memds_ctcap_t *cc = apr_pcalloc(p, sizeof(*cc));
            for (d = c->first; d && rv == APR_SUCCESS; d = d->next) {
                if (is(d, "CTType"))
                    cc->ct_type = sval(d, p);
                else if (is(d, "VerCT"))
                    cc->ver_ct = sval(d, p);
                else if (is(d, "FieldLevel"))
                    cc->field_level = 1;
                else if (is(d, "Property")) {
                    memds_property_t *pr = NULL;
                    if ((rv = property_from(&pr, d, err, p)) == APR_SUCCESS) {
                        PUSH(cc->props, memds_property_t *, pr, p);
                    }
                }
                else
                    return not_allowed(err, p, d, c);
            }
            PUSH(ds->ctcaps, memds_ctcap_t *, cc, p);
        }
        else if (is(c, "DSMem")) {
            ds->has_dsmem = 1;
            for (d = c->first; d; d = d->next) {
                if (is(d, "SharedMem"))
                    ds->dsmem_shared = 1;
                else if (is(d, "MaxMem"))
                    ds->dsmem_max_mem = sval(d, p);
                else if (is(d, "MaxID"))
                    ds->dsmem_max_id = sval(d, p);
                else
                    return not_allowed(err, p, d, c);
            }
        }
        else if (is(c, "SupportHierarchicalSync"))
            ds->hierarchical = 1;
        else if (is(c, "SyncCap")) {
            for (d = c->first; d; d = d->next) {
                if (!is(d, "SyncType"))
                    return not_allowed(err, p, d, c);
                PUSH(ds->sync_types, const char *, sval(d, p), p);
            }
        }
        else if (is(c, "FilterCap")) {
            memds_filtercap_t *fc = apr_pcalloc(p, sizeof(*fc));
            for (d = c->first; d; d = d->next) {
                if (is(d, "CTType"))
                    fc->ct_type = sval(d, p);
                else if (is(d, "VerCT"))
                    fc->ver_ct = sval(d, p);
                else if (is(d, "FilterKeyword"))
                    PUSH(fc->keywords, const char *, sval(d, p), p);
                else if (is(d, "PropName"))
                    PUSH(fc->prop_names, const char *, sval(d, p), p);
                else
                    return not_allowed(err, p, d, c);
            }
            PUSH(ds->filter_caps, memds_filtercap_t *, fc, p);
        }
        else
            return not_allowed(err, p, c, n);
    }
    if (rv == APR_SUCCESS && ds->source_ref == NULL) {
        return bad(err, p, "<DataStore> without <SourceRef>");
    }
    *pds = ds;
    return rv;
}

/* Deep copy of a subtree (kept DevInf 1.1 CTCap goes into new trees). */
static memds_node_t *node_copy(const memds_node_t *n, apr_pool_t *p)
{
    memds_node_t *c = memds_node_new(n->tag, p);
    const memds_node_t *k;

    if (n->text) {
        c->text = apr_pstrmemdup(p, n->text, n->len);
        c->len = n->len;
    }
    c->opaque = n->opaque;
    for (k = n->first; k; k = k->next) {
        memds_node_add(c, node_copy(k, p));
    }
    return c;
}

apr_status_t memds_devinf_from_tree(memds_devinf_t **pdi,
                                    const memds_node_t *root,
                                    memds_codec_err_t *err, apr_pool_t *p)
{
    memds_devinf_t *di = apr_pcalloc(p, sizeof(*di));
    const memds_node_t *c, *d;
    apr_status_t rv = APR_SUCCESS;

    if (root == NULL || !is(root, "DevInf")) {
        return bad(err, p, "expected <DevInf>");
    }
    for (c = root->first; c && rv == APR_SUCCESS; c = c->next) {
        if (c->tag->ts != MEMDS_TS_DEVINF)
            return not_allowed(err, p, c, root);
        if (is(c, "VerDTD"))
            di->verdtd = sval(c, p);
        else if (is(c, "Man"))
            di->man = sval(c, p);
        else if (is(c, "Mod"))
            di->mod = sval(c, p);
        else if (is(c, "OEM"))
            di->oem = sval(c, p);
        else if (is(c, "FwV"))
            di->fwv = sval(c, p);
        else if (is(c, "SwV"))
            di->swv = sval(c, p);
        else if (is(c, "HwV"))
            di->hwv = sval(c, p);
        else if (is(c, "DevID"))
            di->devid = sval(c, p);
        else if (is(c, "DevTyp"))
            di->devtyp = sval(c, p);
        else if (is(c, "UTC"))
            di->utc = 1;
        else if (is(c, "SupportLargeObjs"))
            di->large_objs = 1;
        else if (is(c, "SupportNumberOfChanges"))
            di->number_of_changes = 1;
        else if (is(c, "DataStore")) {
            memds_datastore_t *ds = NULL;
            if ((rv = datastore_from(&ds, c, err, p)) == APR_SUCCESS) {
                PUSH(di->datastores, memds_datastore_t *, ds, p);
            }
        }
        else if (is(c, "CTCap"))
            PUSH(di->ctcaps11, memds_node_t *, node_copy(c, p), p);
        else if (is(c, "Ext")) {
            memds_ext_t *x = apr_pcalloc(p, sizeof(*x));
            for (d = c->first; d; d = d->next) {
                if (is(d, "XNam"))
                    x->xnam = sval(d, p);
                else if (is(d, "XVal"))
                    PUSH(x->xvals, const char *, sval(d, p), p);
                else
                    return not_allowed(err, p, d, c);
            }
            PUSH(di->exts, memds_ext_t *, x, p);
        }
        else
            return not_allowed(err, p, c, root);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (di->verdtd == NULL) {
        return bad(err, p, "<DevInf> without <VerDTD>");
    }
    di->version = strcmp(di->verdtd, "1.2") == 0   ? MEMDS_V12
                  : strcmp(di->verdtd, "1.1") == 0 ? MEMDS_V11
                                                   : MEMDS_V10;
    *pdi = di;
    return APR_SUCCESS;
}

/* ======================================================= tree -> model: SyncML */

static apr_status_t item_from(memds_item_t **pit, const memds_node_t *n,
                              memds_codec_err_t *err, apr_pool_t *p);

/* The Data of a Filter's Field: DevInf <Property> elements, nothing else. */
static apr_status_t props_from(memds_item_t *it, const memds_node_t *data,
                               memds_codec_err_t *err, apr_pool_t *p)
{
    const memds_node_t *c;
    memds_property_t *pr = NULL;
    apr_status_t rv;

    it->data_kind = MEMDS_DATA_PROPS;
    it->props = apr_array_make(p, 1, sizeof(memds_property_t *));
    for (c = data->first; c; c = c->next) {
        if (c->tag->ts != MEMDS_TS_DEVINF || !is(c, "Property")) {
            return bad(err, p,
                       "<%s> is not allowed in the <Data> of a filter "
                       "<Field> (DevInf <Property> elements only)",
                       c->tag->name);
        }
        if ((rv = property_from(&pr, c, err, p)) != APR_SUCCESS) {
            return rv;
        }
        if (pr->name == NULL) {
            return bad(err, p, "<Property> without <PropName> in a filter");
        }
        PUSH(it->props, memds_property_t *, pr, p);
    }
    return APR_SUCCESS;
}

static apr_status_t filter_from(memds_filter_t **pf, const memds_node_t *n,
                                memds_codec_err_t *err, apr_pool_t *p)
{
    memds_filter_t *f = apr_pcalloc(p, sizeof(*f));
    const memds_node_t *c, *i;
    apr_status_t rv = APR_SUCCESS;

    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        if (is(c, "Meta")) {
            f->meta = meta_new(p);
            rv = meta_from(f->meta, c, err, p);
        }
        else if (is(c, "FilterType"))
            f->filter_type = sval(c, p);
        else if (is(c, "Field") || is(c, "Record")) {
            i = c->first;
            if (i == NULL || !is(i, "Item") || i->next) {
                return bad(err, p, "<%s> must hold exactly one <Item>",
                           c->tag->name);
            }
            if ((is(c, "Field") ? f->field : f->record) != NULL) {
                return bad(err, p, "more than one <%s> in <Filter>",
                           c->tag->name);
            }
            rv = item_from(is(c, "Field") ? &f->field : &f->record, i, err, p);
            if (rv == APR_SUCCESS && is(c, "Record")
                && f->record->data_kind != MEMDS_DATA_BYTES
                && f->record->data_kind != MEMDS_DATA_NONE) {
                return bad(err, p,
                           "the <Data> of a filter <Record> must be "
                           "text (the filter expression)");
            }
        }
        else
            return not_allowed(err, p, c, n);
    }
    if (rv == APR_SUCCESS && f->meta == NULL) {
        return bad(err, p, "<Filter> without <Meta>");
    }
    *pf = f;
    return rv;
}

static apr_status_t loc_from(memds_loc_t **pl, const memds_node_t *n,
                             int filter_ok, memds_codec_err_t *err,
                             apr_pool_t *p)
{
    memds_loc_t *l = apr_pcalloc(p, sizeof(*l));
    const memds_node_t *c;
    apr_status_t rv = APR_SUCCESS;

    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        if (is(c, "LocURI"))
            l->uri = sval(c, p);
        else if (is(c, "LocName"))
            l->name = sval(c, p);
        else if (is(c, "Filter") && filter_ok)
            rv = filter_from(&l->filter, c, err, p);
        else
            return not_allowed(err, p, c, n);
    }
    if (rv == APR_SUCCESS && l->uri == NULL) {
        return bad(err, p, "<%s> without <LocURI>", n->tag->name);
    }
    *pl = l;
    return rv;
}

static apr_status_t parent_from(const char **puri, const memds_node_t *n,
                                memds_codec_err_t *err, apr_pool_t *p)
{
    memds_loc_t *l = NULL;
    apr_status_t rv = loc_from(&l, n, 0, err, p);

    if (rv == APR_SUCCESS) {
        if (l->name) {
            return bad(err, p, "<LocName> is not allowed in <%s>",
                       n->tag->name);
        }
        *puri = l->uri;
    }
    return rv;
}

static apr_status_t item_from(memds_item_t **pit, const memds_node_t *n,
                              memds_codec_err_t *err, apr_pool_t *p)
{
    memds_item_t *it = apr_pcalloc(p, sizeof(*it));
    const memds_node_t *c;
    apr_status_t rv = APR_SUCCESS;

    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        if (is(c, "Target"))
            rv = loc_from(&it->target, c, 1, err, p);
        else if (is(c, "Source"))
            rv = loc_from(&it->source, c, 0, err, p);
        else if (is(c, "TargetParent"))
            rv = parent_from(&it->target_parent, c, err, p);
        else if (is(c, "SourceParent"))
            rv = parent_from(&it->source_parent, c, err, p);
        else if (is(c, "Meta")) {
            it->meta = meta_new(p);
            rv = meta_from(it->meta, c, err, p);
        }
        else if (is(c, "MoreData"))
            it->more_data = 1;
        else if (is(c, "Data")) {
            if (c->first && c->first->tag->ts == MEMDS_TS_DEVINF
                && is(c->first, "Property")) {
                if (n->parent == NULL || !is(n->parent, "Field")) {
                    return bad(err, p,
                               "DevInf <Property> in a <Data> outside a "
                               "filter <Field>");
                }
                rv = props_from(it, c, err, p);
            }
            else if (c->first && c->first->tag->ts == MEMDS_TS_DEVINF) {
                if (c->first->next) {
                    return bad(err, p, "<Data> holds more than one DevInf");
                }
                it->data_kind = MEMDS_DATA_DEVINF;
                rv = memds_devinf_from_tree(&it->devinf, c->first, err, p);
            }
            else if (c->first) {
                it->data_kind = MEMDS_DATA_META;
                it->data_meta = meta_new(p);
                rv = meta_from(it->data_meta, c, err, p);
            }
            else {
                it->data_kind = MEMDS_DATA_BYTES;
                it->data.data = c->text ? c->text : "";
                it->data.len = c->text ? c->len : 0;
                it->data_opaque = c->opaque;
            }
        }
        else
            return not_allowed(err, p, c, n);
    }
    *pit = it;
    return rv;
}

/* Allowed children per command (RepPro 1.2 content models). */
static const char *const k_item_cmd[] = { "CmdID", "NoResp", "Cred",
                                          "Meta",  "Item",   NULL };
static const char *const k_delete[] = { "CmdID", "NoResp", "Archive", "SftDel",
                                        "Cred",  "Meta",   "Item",    NULL };
static const char *const k_alert[] = { "CmdID",      "NoResp", "Cred", "Data",
                                       "Correlator", "Item",   NULL };
static const char *const k_putget[] = { "CmdID", "NoResp", "Lang", "Cred",
                                        "Meta",  "Item",   NULL };
static const char *const k_results[] = { "CmdID", "MsgRef",    "CmdRef",
                                         "Meta",  "TargetRef", "SourceRef",
                                         "Item",  NULL };
static const char *const k_status[] = { "CmdID", "MsgRef",    "CmdRef",
                                        "Cmd",   "TargetRef", "SourceRef",
                                        "Cred",  "Chal",      "Data",
                                        "Item",  NULL };
static const char *const k_sync[] = {
    "CmdID",           "NoResp",   "Cred",   "Target", "Source", "Meta",
    "NumberOfChanges", "Add",      "Atomic", "Copy",   "Delete", "Move",
    "Replace",         "Sequence", NULL
};
static const char *const k_map[] = { "CmdID", "Target",  "Source", "Cred",
                                     "Meta",  "MapItem", NULL };
static const char *const k_atomic[] = {
    "CmdID", "NoResp", "Meta",  "Add",  "Replace",  "Delete",
    "Copy",  "Atomic", "Map",   "Move", "Sequence", "Sync",
    "Get",   "Exec",   "Alert", NULL
};
static const char *const k_exec[] = { "CmdID",      "NoResp", "Cred", "Meta",
                                      "Correlator", "Item",   NULL };
static const char *const k_search[] = { "CmdID",  "NoResp", "NoResults", "Cred",
                                        "Target", "Source", "Lang",      "Meta",
                                        "Data",   NULL };

static const struct {
    const char *name;
    const char *const *allowed;
} k_cmds[MEMDS_CMD_COUNT] = {
    [MEMDS_CMD_ADD] = { "Add", k_item_cmd },
    [MEMDS_CMD_ALERT] = { "Alert", k_alert },
    [MEMDS_CMD_ATOMIC] = { "Atomic", k_atomic },
    [MEMDS_CMD_COPY] = { "Copy", k_item_cmd },
    [MEMDS_CMD_DELETE] = { "Delete", k_delete },
    [MEMDS_CMD_EXEC] = { "Exec", k_exec },
    [MEMDS_CMD_GET] = { "Get", k_putget },
    [MEMDS_CMD_MAP] = { "Map", k_map },
    [MEMDS_CMD_MOVE] = { "Move", k_item_cmd },
    [MEMDS_CMD_PUT] = { "Put", k_putget },
    [MEMDS_CMD_REPLACE] = { "Replace", k_item_cmd },
    [MEMDS_CMD_RESULTS] = { "Results", k_results },
    [MEMDS_CMD_SEARCH] = { "Search", k_search },
    [MEMDS_CMD_SEQUENCE] = { "Sequence", k_atomic },
    [MEMDS_CMD_STATUS] = { "Status", k_status },
    [MEMDS_CMD_SYNC] = { "Sync", k_sync },
};

const char *memds_cmd_name(memds_cmd_e type)
{
    return (unsigned)type < MEMDS_CMD_COUNT ? k_cmds[type].name : "?";
}

static int cmd_type(const char *name)
{
    int i;

    for (i = 0; i < MEMDS_CMD_COUNT; ++i) {
        if (strcmp(k_cmds[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

static apr_status_t cred_from(memds_cred_t **pc, const memds_node_t *n,
                              memds_codec_err_t *err, apr_pool_t *p)
{
    memds_cred_t *cr = apr_pcalloc(p, sizeof(*cr));
    const memds_node_t *c;
    apr_status_t rv = APR_SUCCESS;

    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        if (is(c, "Meta")) {
            cr->meta = meta_new(p);
            rv = meta_from(cr->meta, c, err, p);
        }
        else if (is(c, "Data") && c->first == NULL) {
            cr->data.data = c->text ? c->text : "";
            cr->data.len = c->text ? c->len : 0;
        }
        else
            return not_allowed(err, p, c, n);
    }
    *pc = cr;
    return rv;
}

static apr_status_t cmd_from(memds_cmd_t **pcmd, const memds_node_t *n,
                             int depth, memds_codec_err_t *err, apr_pool_t *p)
{
    memds_cmd_t *cmd = apr_pcalloc(p, sizeof(*cmd));
    const memds_node_t *c, *d;
    int t = cmd_type(n->tag->name);
    apr_status_t rv = APR_SUCCESS;

    if (t < 0) {
        return bad(err, p, "<%s> is not a command", n->tag->name);
    }
    cmd->type = (memds_cmd_e)t;
    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        const char *name = c->tag->name;
        int sub;

        if (c->tag->ts != MEMDS_TS_SYNCML
            || !in_list(name, k_cmds[t].allowed)) {
            return not_allowed(err, p, c, n);
        }
        if ((sub = cmd_type(name)) >= 0) {
            memds_cmd_t *child = NULL;
            if (depth > 8) {
                return bad(err, p, "commands nested deeper than 8");
            }
            if ((rv = cmd_from(&child, c, depth + 1, err, p)) == APR_SUCCESS) {
                PUSH(cmd->cmds, memds_cmd_t *, child, p);
            }
        }
        else if (is(c, "CmdID"))
            cmd->cmd_id = sval(c, p);
        else if (is(c, "NoResp"))
            cmd->no_resp = 1;
        else if (is(c, "NoResults"))
            cmd->no_results = 1;
        else if (is(c, "Archive"))
            cmd->archive = 1;
        else if (is(c, "SftDel"))
            cmd->sft_del = 1;
        else if (is(c, "Cred"))
            rv = cred_from(&cmd->cred, c, err, p);
        else if (is(c, "Meta")) {
            cmd->meta = meta_new(p);
            rv = meta_from(cmd->meta, c, err, p);
        }
        else if (is(c, "Item")) {
            memds_item_t *it = NULL;
            if ((rv = item_from(&it, c, err, p)) == APR_SUCCESS) {
                PUSH(cmd->items, memds_item_t *, it, p);
            }
        }
        else if (is(c, "Data")) {
            if (c->first) {
                return bad(err, p, "<Data> of <%s> must be text", n->tag->name);
            }
            cmd->data = sval(c, p);
        }
        else if (is(c, "Correlator"))
            cmd->correlator = sval(c, p);
        else if (is(c, "Lang"))
            cmd->lang = sval(c, p);
        else if (is(c, "MsgRef"))
            cmd->msg_ref = sval(c, p);
        else if (is(c, "CmdRef"))
            cmd->cmd_ref = sval(c, p);
        else if (is(c, "Cmd"))
            cmd->cmd = sval(c, p);
        else if (is(c, "TargetRef"))
            PUSH(cmd->target_refs, const char *, sval(c, p), p);
        else if (is(c, "SourceRef"))
            PUSH(cmd->source_refs, const char *, sval(c, p), p);
        else if (is(c, "NumberOfChanges"))
            cmd->number_of_changes = sval(c, p);
        else if (is(c, "Chal")) {
            d = c->first;
            if (d == NULL || !is(d, "Meta") || d->next) {
                return bad(err, p, "<Chal> must hold exactly one <Meta>");
            }
            cmd->chal = meta_new(p);
            rv = meta_from(cmd->chal, d, err, p);
        }
        else if (is(c, "Target")) {
            rv = loc_from(&cmd->target, c, 0, err, p);
        }
        else if (is(c, "Source")) {
            memds_loc_t *l = NULL;
            if ((rv = loc_from(&l, c, 0, err, p)) == APR_SUCCESS) {
                if (t == MEMDS_CMD_SEARCH)
                    PUSH(cmd->sources, memds_loc_t *, l, p);
                else
                    cmd->source = l;
            }
        }
        else if (is(c, "MapItem")) {
            memds_mapitem_t *mi = apr_pcalloc(p, sizeof(*mi));
            memds_loc_t *l = NULL;
            for (d = c->first; d && rv == APR_SUCCESS; d = d->next) {
                if (is(d, "Target") || is(d, "Source")) {
                    if ((rv = loc_from(&l, d, 0, err, p)) == APR_SUCCESS) {
                        if (is(d, "Target"))
                            mi->target = l->uri;
                        else
                            mi->source = l->uri;
                    }
                }
                else
                    return not_allowed(err, p, d, c);
            }
            if (rv == APR_SUCCESS && (!mi->target || !mi->source)) {
                return bad(err, p, "<MapItem> needs <Target> and <Source>");
            }
            PUSH(cmd->map_items, memds_mapitem_t *, mi, p);
        }
        else {
            return not_allowed(err, p, c, n);
        }
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (cmd->cmd_id == NULL) {
        return bad(err, p, "<%s> without <CmdID>", n->tag->name);
    }
    if (t == MEMDS_CMD_STATUS && (!cmd->cmd_ref || !cmd->cmd || !cmd->data)) {
        return bad(err, p,
                   "<Status> (CmdID %s) needs <CmdRef>, <Cmd> and <Data>",
                   cmd->cmd_id);
    }
    *pcmd = cmd;
    return APR_SUCCESS;
}

static apr_status_t hdr_from(memds_hdr_t *h, const memds_node_t *n,
                             memds_codec_err_t *err, apr_pool_t *p)
{
    const memds_node_t *c;
    apr_status_t rv = APR_SUCCESS;

    for (c = n->first; c && rv == APR_SUCCESS; c = c->next) {
        if (is(c, "VerDTD"))
            h->verdtd = sval(c, p);
        else if (is(c, "VerProto"))
            h->verproto = sval(c, p);
        else if (is(c, "SessionID"))
            h->session_id = sval(c, p);
        else if (is(c, "MsgID"))
            h->msg_id = sval(c, p);
        else if (is(c, "Target"))
            rv = loc_from(&h->target, c, 0, err, p);
        else if (is(c, "Source"))
            rv = loc_from(&h->source, c, 0, err, p);
        else if (is(c, "RespURI"))
            h->resp_uri = sval(c, p);
        else if (is(c, "NoResp"))
            h->no_resp = 1;
        else if (is(c, "Cred"))
            rv = cred_from(&h->cred, c, err, p);
        else if (is(c, "Meta")) {
            h->meta = meta_new(p);
            rv = meta_from(h->meta, c, err, p);
        }
        else
            return not_allowed(err, p, c, n);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!h->verdtd || !h->verproto || !h->session_id || !h->msg_id || !h->target
        || !h->source) {
        return bad(err, p, "<SyncHdr> lacks %s",
                   !h->verdtd       ? "<VerDTD>"
                   : !h->verproto   ? "<VerProto>"
                   : !h->session_id ? "<SessionID>"
                   : !h->msg_id     ? "<MsgID>"
                   : !h->target     ? "<Target>"
                                    : "<Source>");
    }
    return APR_SUCCESS;
}

apr_status_t memds_msg_from_tree(memds_msg_t **pmsg, const memds_tree_t *t,
                                 memds_codec_err_t *err, apr_pool_t *p)
{
    memds_msg_t *m = apr_pcalloc(p, sizeof(*m));
    const memds_node_t *root = t->root, *c, *hdr = NULL, *body = NULL;
    apr_status_t rv;

    if (root == NULL || !is(root, "SyncML")) {
        return bad(err, p, "root element is not <SyncML>");
    }
    m->version = t->version;
    for (c = root->first; c; c = c->next) {
        if (is(c, "SyncHdr") && !hdr && !body)
            hdr = c;
        else if (is(c, "SyncBody") && hdr && !body)
            body = c;
        else
            return bad(err, p,
                       "<SyncML> must hold <SyncHdr> then <SyncBody>, "
                       "found <%s>",
                       c->tag->name);
    }
    if (!hdr || !body) {
        return bad(err, p, "<SyncML> must hold <SyncHdr> then <SyncBody>");
    }
    if ((rv = hdr_from(&m->hdr, hdr, err, p)) != APR_SUCCESS) {
        return rv;
    }
    m->cmds = apr_array_make(p, 8, sizeof(memds_cmd_t *));
    for (c = body->first; c; c = c->next) {
        memds_cmd_t *cmd;
        if (m->final) {
            return bad(err, p, "<%s> after <Final>", c->tag->name);
        }
        if (is(c, "Final")) {
            m->final = 1;
            continue;
        }
        if ((rv = cmd_from(&cmd, c, 0, err, p)) != APR_SUCCESS) {
            return rv;
        }
        APR_ARRAY_PUSH(m->cmds, memds_cmd_t *) = cmd;
    }
    *pmsg = m;
    return APR_SUCCESS;
}

/* ===================================================== model -> tree */

#define TAG(ts, name) memds_tag_by_name((ts), (name), strlen(name))
#define SM(name) TAG(MEMDS_TS_SYNCML, name)
#define MI(name) TAG(MEMDS_TS_METINF, name)
#define DI(name) TAG(MEMDS_TS_DEVINF, name)

static memds_node_t *el(memds_node_t *parent, const memds_tag_t *tag,
                        apr_pool_t *p)
{
    return memds_node_add(parent, memds_node_new(tag, p));
}

static void int_el_of(memds_node_t *parent, const memds_tag_t *tag,
                      apr_int64_t v, apr_pool_t *p)
{
    memds_node_add_str(parent, tag, apr_psprintf(p, "%" APR_INT64_T_FMT, v), p);
}

static void strs_el_of(memds_node_t *parent, const memds_tag_t *tag,
                       const apr_array_header_t *a, apr_pool_t *p)
{
    int i;

    for (i = 0; i < a->nelts; ++i) {
        const char *s = APR_ARRAY_IDX(a, i, const char *);
        if (s) {
            memds_node_add_str(parent, tag, s, p);
        }
    }
}

/* An element with text s, with integer v, or one per string of a; none
 * when s is NULL, v MEMDS_NOVAL, a NULL or empty. Macros, so that the tag
 * is looked up only for an element that is there: most of a Meta's
 * optional children are not (and the sizer builds every item's command). */
#define str_el(parent, tag, s, p) \
    do { \
        const char *s_ = (s); \
        if (s_) { \
            memds_node_add_str((parent), (tag), s_, (p)); \
        } \
    } while (0)
#define int_el(parent, tag, v, p) \
    do { \
        apr_int64_t v_ = (v); \
        if (v_ != MEMDS_NOVAL) { \
            int_el_of((parent), (tag), v_, (p)); \
        } \
    } while (0)
#define strs_el(parent, tag, a, p) \
    do { \
        const apr_array_header_t *a_ = (a); \
        if (a_ && a_->nelts > 0) { \
            strs_el_of((parent), (tag), a_, (p)); \
        } \
    } while (0)

/* MetInf children into parent (a Meta, a Chal's Meta or a Data). */
static void meta_children(memds_node_t *n, const memds_meta_t *m, apr_pool_t *p)
{
    str_el(n, MI("Format"), m->format, p);
    str_el(n, MI("Type"), m->type, p);
    str_el(n, MI("Mark"), m->mark, p);
    int_el(n, MI("Size"), m->size, p);
    if (m->anchor) {
        memds_node_t *a = el(n, MI("Anchor"), p);
        str_el(a, MI("Last"), m->anchor->last, p);
        str_el(a, MI("Next"), m->anchor->next, p);
    }
    str_el(n, MI("Version"), m->version, p);
    str_el(n, MI("NextNonce"), m->next_nonce, p);
    int_el(n, MI("MaxMsgSize"), m->max_msg_size, p);
    int_el(n, MI("MaxObjSize"), m->max_obj_size, p);
    strs_el(n, MI("EMI"), m->emi, p);
    if (m->mem) {
        memds_node_t *mm = el(n, MI("Mem"), p);
        if (m->mem->shared_mem)
            el(mm, MI("SharedMem"), p);
        str_el(mm, MI("FreeMem"), m->mem->free_mem, p);
        str_el(mm, MI("FreeID"), m->mem->free_id, p);
    }
    if (m->field_level)
        el(n, MI("FieldLevel"), p);
}

static void meta_el(memds_node_t *parent, const memds_meta_t *m, apr_pool_t *p)
{
    if (m) {
        meta_children(el(parent, SM("Meta"), p), m, p);
    }
}

static void ctver_el(memds_node_t *parent, const char *name,
                     const memds_ctver_t *cv, apr_pool_t *p)
{
    memds_node_t *n;

    if (cv) {
        n = el(parent, DI(name), p);
        str_el(n, DI("CTType"), cv->ct_type, p);
        str_el(n, DI("VerCT"), cv->ver_ct, p);
    }
}

static void ctvers_el(memds_node_t *parent, const char *name,
                      const apr_array_header_t *a, apr_pool_t *p)
{
    int i;

    for (i = 0; a && i < a->nelts; ++i) {
        ctver_el(parent, name, APR_ARRAY_IDX(a, i, memds_ctver_t *), p);
    }
}

/* DevInf <Property> elements (a CTCap's, or a filter Field's Data). */
static void props_el(memds_node_t *parent, const apr_array_header_t *props,
                     apr_pool_t *p)
{
    memds_node_t *d, *e;
    int k, l;

    for (k = 0; props && k < props->nelts; ++k) {
        const memds_property_t *pr = APR_ARRAY_IDX(props, k,
                                                   memds_property_t *);
        d = el(parent, DI("Property"), p);
        str_el(d, DI("PropName"), pr->name, p);
        str_el(d, DI("DataType"), pr->data_type, p);
        str_el(d, DI("MaxOccur"), pr->max_occur, p);
        str_el(d, DI("MaxSize"), pr->max_size, p);
        if (pr->no_truncate)
            el(d, DI("NoTruncate"), p);
        strs_el(d, DI("ValEnum"), pr->val_enums, p);
        str_el(d, DI("DisplayName"), pr->display_name, p);
        for (l = 0; pr->params && l < pr->params->nelts; ++l) {
            const memds_propparam_t *pp = APR_ARRAY_IDX(pr->params, l,
                                                        memds_propparam_t *);
            e = el(d, DI("PropParam"), p);
            str_el(e, DI("ParamName"), pp->name, p);
            str_el(e, DI("DataType"), pp->data_type, p);
            strs_el(e, DI("ValEnum"), pp->val_enums, p);
            str_el(e, DI("DisplayName"), pp->display_name, p);
        }
    }
}

/* Only what the DevInf's own version (its VerDTD) defines is written:
 * 1.0 has no UTC, SupportLargeObjs, SupportNumberOfChanges; 1.0 and 1.1
 * have no CTCap inside DataStore (their CTCap is the top-level one, kept
 * as ctcaps11), SupportHierarchicalSync, Filter-Rx, FilterCap. */
memds_node_t *memds_devinf_to_tree(const memds_devinf_t *di, apr_pool_t *p)
{
    memds_node_t *r = memds_node_new(memds_tag_DevInf, p), *n, *c;
    int i, j;
    int v11 = di->version != MEMDS_V10, v12 = v11 && di->version != MEMDS_V11;

    str_el(r, DI("VerDTD"), di->verdtd, p);
    str_el(r, DI("Man"), di->man, p);
    str_el(r, DI("Mod"), di->mod, p);
    str_el(r, DI("OEM"), di->oem, p);
    str_el(r, DI("FwV"), di->fwv, p);
    str_el(r, DI("SwV"), di->swv, p);
    str_el(r, DI("HwV"), di->hwv, p);
    str_el(r, DI("DevID"), di->devid, p);
    str_el(r, DI("DevTyp"), di->devtyp, p);
    if (di->utc && v11)
        el(r, DI("UTC"), p);
    if (di->large_objs && v11)
        el(r, DI("SupportLargeObjs"), p);
    if (di->number_of_changes && v11)
        el(r, DI("SupportNumberOfChanges"), p);
    for (i = 0; di->datastores && i < di->datastores->nelts; ++i) {
        const memds_datastore_t *ds = APR_ARRAY_IDX(di->datastores, i,
                                                    memds_datastore_t *);
        n = el(r, DI("DataStore"), p);
        str_el(n, DI("SourceRef"), ds->source_ref, p);
        str_el(n, DI("DisplayName"), ds->display_name, p);
        str_el(n, DI("MaxGUIDSize"), ds->max_guid_size, p);
        ctver_el(n, "Rx-Pref", ds->rx_pref, p);
        ctvers_el(n, "Rx", ds->rx, p);
        ctver_el(n, "Tx-Pref", ds->tx_pref, p);
        ctvers_el(n, "Tx", ds->tx, p);
        for (j = 0; v12 && ds->ctcaps && j < ds->ctcaps->nelts; ++j) {
            const memds_ctcap_t *cc = APR_ARRAY_IDX(ds->ctcaps, j,
                                                    memds_ctcap_t *);
            c = el(n, DI("CTCap"), p);
            str_el(c, DI("CTType"), cc->ct_type, p);
            str_el(c, DI("VerCT"), cc->ver_ct, p);
            if (cc->field_level)
                el(c, DI("FieldLevel"), p);
            props_el(c, cc->props, p);
        }
        if (ds->has_dsmem) {
            c = el(n, DI("DSMem"), p);
            if (ds->dsmem_shared)
                el(c, DI("SharedMem"), p);
            str_el(c, DI("MaxMem"), ds->dsmem_max_mem, p);
            str_el(c, DI("MaxID"), ds->dsmem_max_id, p);
        }
        if (ds->hierarchical && v12)
            el(n, DI("SupportHierarchicalSync"), p);
        if (ds->sync_types) {
            c = el(n, DI("SyncCap"), p);
            strs_el(c, DI("SyncType"), ds->sync_types, p);
        }
        ctvers_el(n, "Filter-Rx", v12 ? ds->filter_rx : NULL, p);
        for (j = 0; v12 && ds->filter_caps && j < ds->filter_caps->nelts; ++j) {
            const memds_filtercap_t *fc = APR_ARRAY_IDX(ds->filter_caps, j,
                                                        memds_filtercap_t *);
            c = el(n, DI("FilterCap"), p);
            str_el(c, DI("CTType"), fc->ct_type, p);
            str_el(c, DI("VerCT"), fc->ver_ct, p);
            strs_el(c, DI("FilterKeyword"), fc->keywords, p);
            strs_el(c, DI("PropName"), fc->prop_names, p);
        }
    }
    for (i = 0; di->ctcaps11 && i < di->ctcaps11->nelts; ++i) {
        memds_node_add(r,
                       node_copy(APR_ARRAY_IDX(di->ctcaps11, i, memds_node_t *),
                                 p));
    }
    for (i = 0; di->exts && i < di->exts->nelts; ++i) {
        const memds_ext_t *x = APR_ARRAY_IDX(di->exts, i, memds_ext_t *);
        n = el(r, DI("Ext"), p);
        str_el(n, DI("XNam"), x->xnam, p);
        strs_el(n, DI("XVal"), x->xvals, p);
    }
    return r;
}

static void loc_el(memds_node_t *parent, const char *name, const memds_loc_t *l,
                   apr_pool_t *p);

static void item_el(memds_node_t *parent, const memds_item_t *it,
                    apr_pool_t *p);

static void loc_el(memds_node_t *parent, const char *name, const memds_loc_t *l,
                   apr_pool_t *p)
{
    memds_node_t *n, *f;

    if (l == NULL) {
        return;
    }
    n = el(parent, SM(name), p);
    str_el(n, SM("LocURI"), l->uri, p);
    str_el(n, SM("LocName"), l->name, p);
    if (l->filter) {
        f = el(n, SM("Filter"), p);
        meta_el(f, l->filter->meta, p);
        if (l->filter->field)
            item_el(el(f, SM("Field"), p), l->filter->field, p);
        if (l->filter->record)
            item_el(el(f, SM("Record"), p), l->filter->record, p);
        str_el(f, SM("FilterType"), l->filter->filter_type, p);
    }
}

static void parent_el(memds_node_t *parent, const char *name, const char *uri,
                      apr_pool_t *p)
{
    if (uri) {
        str_el(el(parent, SM(name), p), SM("LocURI"), uri, p);
    }
}

static void item_el(memds_node_t *parent, const memds_item_t *it, apr_pool_t *p)
{
    memds_node_t *n = el(parent, SM("Item"), p), *d;

    loc_el(n, "Target", it->target, p);
    loc_el(n, "Source", it->source, p);
    parent_el(n, "SourceParent", it->source_parent, p);
    parent_el(n, "TargetParent", it->target_parent, p);
    meta_el(n, it->meta, p);
    switch (it->data_kind) {
    case MEMDS_DATA_BYTES:
        /* not copied: the tree lives no longer than the message it is
         * made from (encoding and sizing) */
        d = memds_node_add_ref(n, memds_tag_Data, it->data.data, it->data.len,
                               p);
        d->opaque = it->data_opaque;
        break;
    case MEMDS_DATA_DEVINF:
        d = el(n, memds_tag_Data, p);
        memds_node_add(d, memds_devinf_to_tree(it->devinf, p));
        break;
    case MEMDS_DATA_META:
        d = el(n, memds_tag_Data, p);
        meta_children(d, it->data_meta, p);
        break;
    case MEMDS_DATA_PROPS:
        d = el(n, memds_tag_Data, p);
        props_el(d, it->props, p);
        break;
    case MEMDS_DATA_NONE: break;
    }
    if (it->more_data)
        el(n, SM("MoreData"), p);
}

static void cred_el(memds_node_t *parent, const memds_cred_t *c, apr_pool_t *p)
{
    memds_node_t *n;

    if (c) {
        n = el(parent, SM("Cred"), p);
        meta_el(n, c->meta, p);
        memds_node_add_text(n, memds_tag_Data, c->data.data, c->data.len, p);
    }
}

static void items_el(memds_node_t *n, const apr_array_header_t *a,
                     apr_pool_t *p)
{
    int i;

    for (i = 0; a && i < a->nelts; ++i) {
        item_el(n, APR_ARRAY_IDX(a, i, memds_item_t *), p);
    }
}

static memds_node_t *cmd_el(memds_node_t *parent, const memds_cmd_t *c,
                            apr_pool_t *p)
{
    memds_node_t *n = memds_node_new(SM(memds_cmd_name(c->type)), p);
    int i;

    if (parent) {
        memds_node_add(parent, n);
    }
    str_el(n, SM("CmdID"), c->cmd_id, p);
    switch (c->type) {
    case MEMDS_CMD_RESULTS:
    case MEMDS_CMD_STATUS:
        str_el(n, SM("MsgRef"), c->msg_ref, p);
        str_el(n, SM("CmdRef"), c->cmd_ref, p);
        if (c->type == MEMDS_CMD_RESULTS) {
            meta_el(n, c->meta, p);
        }
        else {
            str_el(n, SM("Cmd"), c->cmd, p);
        }
        strs_el(n, SM("TargetRef"), c->target_refs, p);
        strs_el(n, SM("SourceRef"), c->source_refs, p);
        if (c->type == MEMDS_CMD_STATUS) {
            cred_el(n, c->cred, p);
            if (c->chal)
                meta_children(el(el(n, SM("Chal"), p), SM("Meta"), p), c->chal,
                              p);
            str_el(n, SM("Data"), c->data, p);
        }
        items_el(n, c->items, p);
        return n;
    case MEMDS_CMD_MAP:
        loc_el(n, "Target", c->target, p);
        loc_el(n, "Source", c->source, p);
        cred_el(n, c->cred, p);
        meta_el(n, c->meta, p);
        for (i = 0; c->map_items && i < c->map_items->nelts; ++i) {
            const memds_mapitem_t *mi = APR_ARRAY_IDX(c->map_items, i,
                                                      memds_mapitem_t *);
            memds_node_t *m = el(n, SM("MapItem"), p);
            str_el(el(m, SM("Target"), p), SM("LocURI"), mi->target, p);
            str_el(el(m, SM("Source"), p), SM("LocURI"), mi->source, p);
        }
        return n;
    default: break;
    }
    if (c->no_resp)
        el(n, SM("NoResp"), p);
    switch (c->type) {
    case MEMDS_CMD_DELETE:
        if (c->archive)
            el(n, SM("Archive"), p);
        if (c->sft_del)
            el(n, SM("SftDel"), p);
        cred_el(n, c->cred, p);
        meta_el(n, c->meta, p);
        break;
    case MEMDS_CMD_ALERT:
        cred_el(n, c->cred, p);
        str_el(n, SM("Data"), c->data, p);
        str_el(n, SM("Correlator"), c->correlator, p);
        break;
    case MEMDS_CMD_GET:
    case MEMDS_CMD_PUT:
        str_el(n, SM("Lang"), c->lang, p);
        cred_el(n, c->cred, p);
        meta_el(n, c->meta, p);
        break;
    case MEMDS_CMD_SYNC:
        cred_el(n, c->cred, p);
        loc_el(n, "Target", c->target, p);
        loc_el(n, "Source", c->source, p);
        meta_el(n, c->meta, p);
        str_el(n, SM("NumberOfChanges"), c->number_of_changes, p);
        break;
    case MEMDS_CMD_ATOMIC:
    case MEMDS_CMD_SEQUENCE: meta_el(n, c->meta, p); break;
    case MEMDS_CMD_EXEC:
        cred_el(n, c->cred, p);
        meta_el(n, c->meta, p);
        str_el(n, SM("Correlator"), c->correlator, p);
        break;
    case MEMDS_CMD_SEARCH:
        if (c->no_results)
            el(n, SM("NoResults"), p);
        cred_el(n, c->cred, p);
        loc_el(n, "Target", c->target, p);
        for (i = 0; c->sources && i < c->sources->nelts; ++i) {
            loc_el(n, "Source", APR_ARRAY_IDX(c->sources, i, memds_loc_t *), p);
        }
        str_el(n, SM("Lang"), c->lang, p);
        meta_el(n, c->meta, p);
        str_el(n, SM("Data"), c->data, p);
        break;
    default: /* Add, Copy, Move, Replace */
        cred_el(n, c->cred, p);
        meta_el(n, c->meta, p);
        break;
    }
    items_el(n, c->items, p);
    for (i = 0; c->cmds && i < c->cmds->nelts; ++i) {
        cmd_el(n, APR_ARRAY_IDX(c->cmds, i, memds_cmd_t *), p);
    }
    return n;
}

static memds_node_t *hdr_el(memds_node_t *root, const memds_hdr_t *h,
                            apr_pool_t *p)
{
    memds_node_t *n = el(root, SM("SyncHdr"), p);

    str_el(n, SM("VerDTD"), h->verdtd, p);
    str_el(n, SM("VerProto"), h->verproto, p);
    str_el(n, SM("SessionID"), h->session_id, p);
    str_el(n, SM("MsgID"), h->msg_id, p);
    loc_el(n, "Target", h->target, p);
    loc_el(n, "Source", h->source, p);
    str_el(n, SM("RespURI"), h->resp_uri, p);
    if (h->no_resp)
        el(n, SM("NoResp"), p);
    cred_el(n, h->cred, p);
    meta_el(n, h->meta, p);
    return n;
}

memds_tree_t *memds_msg_to_tree(const memds_msg_t *m, apr_pool_t *p)
{
    memds_tree_t *t = apr_pcalloc(p, sizeof(*t));
    memds_node_t *body;
    int i;

    t->version = m->version ? m->version : MEMDS_V12;
    t->root = memds_node_new(memds_tag_SyncML, p);
    hdr_el(t->root, &m->hdr, p);
    body = el(t->root, SM("SyncBody"), p);
    for (i = 0; m->cmds && i < m->cmds->nelts; ++i) {
        cmd_el(body, APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *), p);
    }
    if (m->final)
        el(body, SM("Final"), p);
    return t;
}

/* ============================================================== codec */

memds_enc_e memds_msg_sniff(const char *buf, apr_size_t len)
{
    if (len >= 1 && (unsigned char)buf[0] >= 0x01
        && (unsigned char)buf[0] <= 0x03) {
        return MEMDS_ENC_WBXML;
    }
    return MEMDS_ENC_XML;
}

apr_status_t memds_msg_decode(memds_msg_t **pmsg, const char *buf,
                              apr_size_t len, memds_enc_e enc,
                              memds_codec_err_t *err, apr_pool_t *p)
{
    memds_tree_t *t;
    apr_status_t rv;

    if (enc == MEMDS_ENC_AUTO) {
        enc = memds_msg_sniff(buf, len);
    }
    rv = enc == MEMDS_ENC_WBXML ? memds_wbxml_decode(&t, buf, len, err, p)
                                : memds_xml_decode(&t, buf, len, err, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return memds_msg_from_tree(pmsg, t, err, p);
}

apr_status_t memds_msg_encode(memds_buf_t *out, const memds_msg_t *m,
                              memds_enc_e enc, memds_codec_err_t *err,
                              apr_pool_t *p)
{
    memds_tree_t *t = memds_msg_to_tree(m, p);

    return enc == MEMDS_ENC_WBXML ? memds_wbxml_encode(out, t, err)
                                  : memds_xml_encode(out, t, err);
}

/* ===================================================== size accounting */

/* Bytes of the WBXML document header our encoder writes (version, public
 * id, charset, empty string table): 02 A4 01 6A 00 or 02 9F 5x 6A 00. */
#define WBXML_HDR_LEN 5
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define XML_CLOSE "</SyncBody></SyncML>"
#define XML_FINAL "<Final/>"

void memds_sizer_init(memds_sizer_t *sz, const memds_msg_t *m, memds_enc_e enc,
                      apr_pool_t *p)
{
    memds_tree_t *t;
    memds_node_t *body, *c;

    sz->enc = enc;
    sz->version = m->version ? m->version : MEMDS_V12;
    sz->pool = p;
    t = memds_msg_to_tree(m, p);
    body = memds_node_child(t->root, "SyncBody");
    if (enc == MEMDS_ENC_WBXML) {
        int page = 0;
        sz->open_size = WBXML_HDR_LEN + 1 /* SyncML */
                        + memds_wbxml_node_size(memds_node_child(t->root,
                                                                 "SyncHdr"),
                                                &page);
        if (page != 0) {
            sz->open_size += 2;
            page = 0;
        }
        sz->open_size += 1; /* SyncBody */
        for (c = body->first; c; c = c->next) {
            if (!is(c, "Final")) {
                sz->open_size += memds_wbxml_node_size(c, &page);
            }
        }
        sz->page = page;
    }
    else {
        /* The whole message with a Final, less what closes it. */
        if (!m->final) {
            el(body, SM("Final"), p);
        }
        sz->open_size = sizeof(XML_DECL) - 1 + memds_xml_node_size(t->root)
                        - (sizeof(XML_FINAL) - 1) - (sizeof(XML_CLOSE) - 1);
        sz->page = 0;
    }
}

/* The command as a node under a throwaway SyncBody (sizes depend on the
 * parent for XML namespace declarations). */
static memds_node_t *cmd_node(const memds_sizer_t *sz, const memds_cmd_t *cmd)
{
    memds_node_t *body = memds_node_new(SM("SyncBody"), sz->pool);

    return cmd_el(body, cmd, sz->pool);
}

apr_size_t memds_sizer_cmd_size(const memds_sizer_t *sz, const memds_cmd_t *cmd)
{
    int page = sz->page;
    memds_node_t *n = cmd_node(sz, cmd);

    return sz->enc == MEMDS_ENC_WBXML ? memds_wbxml_node_size(n, &page)
                                      : memds_xml_node_size(n);
}

void memds_sizer_add(memds_sizer_t *sz, const memds_cmd_t *cmd)
{
    memds_node_t *n = cmd_node(sz, cmd);

    if (sz->enc == MEMDS_ENC_WBXML) {
        sz->open_size += memds_wbxml_node_size(n, &sz->page);
    }
    else {
        sz->open_size += memds_xml_node_size(n);
    }
}

apr_size_t memds_sizer_total(const memds_sizer_t *sz, int final)
{
    if (sz->enc == MEMDS_ENC_WBXML) {
        return sz->open_size + (final ? (sz->page != 0 ? 3 : 1) : 0) + 2;
    }
    return sz->open_size + (final ? sizeof(XML_FINAL) - 1 : 0)
           + sizeof(XML_CLOSE) - 1;
}
