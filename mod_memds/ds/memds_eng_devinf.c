/* memds_eng_devinf.c: the engine's DevInf exchange: the client's DevInf
 * (Put, Results) kept with the device, ours (Get), the content type the
 * device prefers for a datastore. */
#include "ds/memds_engine_int.h"
#include <apr_lib.h>
#include "syncml/memds_xml.h"

static int is_devinf_uri(const char *uri)
{
    return uri
           && (strcmp(uri, "./devinf12") == 0 || strcmp(uri, "./devinf11") == 0
               || strcmp(uri, "./devinf10") == 0);
}

static const char *devinf_uri(const eng_t *e)
{
    return e->in->version == MEMDS_V10   ? "./devinf10"
           : e->in->version == MEMDS_V11 ? "./devinf11"
                                         : "./devinf12";
}

/* The client's DevInf datastore whose SourceRef is uri, if it sent one. */
static const memds_datastore_t *client_ds(const memds_devinf_t *di,
                                          const char *uri)
{
    int i;

    for (i = 0; di && di->datastores && i < di->datastores->nelts; ++i) {
        const memds_datastore_t *ds = APR_ARRAY_IDX(di->datastores, i,
                                                    memds_datastore_t *);
        if (ds->source_ref && uri && strcmp(ds->source_ref, uri) == 0) {
            return ds;
        }
    }
    return NULL;
}

/* The DevInf the client sent in this message (Put or Results), if any. */
static const memds_devinf_t *devinf_in_message(const eng_t *e)
{
    int i;

    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        if ((c->type == MEMDS_CMD_PUT || c->type == MEMDS_CMD_RESULTS)
            && c->items && c->items->nelts > 0) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, 0, memds_item_t *);
            if (it->data_kind == MEMDS_DATA_DEVINF) {
                return it->devinf;
            }
        }
    }
    return NULL;
}

static memds_ctver_t *ctver(apr_pool_t *p, const char *type, const char *ver)
{
    memds_ctver_t *c = apr_pcalloc(p, sizeof(*c));

    c->ct_type = type;
    c->ver_ct = ver;
    return c;
}

/* Our DevInf: one DataStore per datastore the client alerts in this message
 * or has in this session; the items datastore takes any content type, so
 * each advertises the client's own preferred types when known. */
static memds_devinf_t *server_devinf(eng_t *e)
{
    memds_devinf_t *di = apr_pcalloc(e->p, sizeof(*di));
    const memds_devinf_t *cdi = devinf_in_message(e);
    apr_array_header_t *names = apr_array_make(e->p, 4, sizeof(const char *));
    int i, j;

    /* DevInf in the session's version: memds_devinf_to_tree leaves out
     * what that DevInf DTD lacks (UTC, SupportLargeObjs and
     * SupportNumberOfChanges before 1.1; SupportHierarchicalSync, CTCap in
     * DataStore, Filter-Rx and FilterCap before 1.2). */
    di->version = e->in->version;
    di->verdtd = eng_verdtd(e);
    di->man = e->cfg->server_name ? e->cfg->server_name : "mod_memds";
    di->mod = "mod_memds";
    di->swv = MEMDS_VERSION;
    di->devid = e->in->hdr.target->uri;
    di->devtyp = "server";
    di->utc = 1;
    di->large_objs = 1;
    di->number_of_changes = 1;
    di->datastores = apr_array_make(e->p, 4, sizeof(memds_datastore_t *));
    for (i = 0; i < e->in->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(e->in->cmds, i, memds_cmd_t *);
        if (c->type != MEMDS_CMD_ALERT) {
            continue;
        }
        for (j = 0; c->items && j < c->items->nelts; ++j) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, j, memds_item_t *);
            if (it->target && it->target->uri) {
                APR_ARRAY_PUSH(names, const char *) = it->target->uri;
                APR_ARRAY_PUSH(names, const char *) = it->source
                                                          ? it->source->uri
                                                          : NULL;
            }
        }
    }
    for (i = 0; e->sstores && i < e->sstores->nelts; ++i) {
        const memds_sstore_t *ss = APR_ARRAY_IDX(e->sstores, i,
                                                 memds_sstore_t *);
        APR_ARRAY_PUSH(names, const char *) = ss->server_uri;
        APR_ARRAY_PUSH(names, const char *) = ss->client_uri;
    }
    for (i = 0; i + 1 < names->nelts; i += 2) {
        const char *uri = APR_ARRAY_IDX(names, i, const char *);
        const memds_datastore_t *cds = client_ds(cdi,
                                                 APR_ARRAY_IDX(names, i + 1,
                                                               const char *));
        memds_datastore_t *ds = apr_pcalloc(e->p, sizeof(*ds));
        int k, dup = 0;

        for (k = 0; k < di->datastores->nelts; ++k) {
            if (strcmp(APR_ARRAY_IDX(di->datastores, k, memds_datastore_t *)
                           ->source_ref,
                       uri)
                == 0) {
                dup = 1;
            }
        }
        if (dup) {
            continue;
        }
        ds->source_ref = uri;
        ds->display_name = eng_store_name(uri, e->p);
        if (strcmp(e->cfg->datastore, "imap") == 0) {
            /* A mailbox: OMA email objects or plain messages, the device's
             * preference first; folder objects in the hierarchical one. */
            int rfc = cds && cds->rx_pref && cds->rx_pref->ct_type
                      && strcasecmp(cds->rx_pref->ct_type, "message/rfc822")
                             == 0;
            const char *n = eng_store_name(uri, e->p);
            memds_ctver_t *em = ctver(e->p, "application/vnd.omads-email+xml",
                                      "1.2");
            memds_ctver_t *rf = ctver(e->p, "message/rfc822", "1.0");
            ds->rx_pref = ds->tx_pref = rfc ? rf : em;
            ds->rx = apr_array_make(e->p, 2, sizeof(memds_ctver_t *));
            APR_ARRAY_PUSH(ds->rx, memds_ctver_t *) = rfc ? em : rf;
            if (strcasecmp(n, "email") == 0 || strcasecmp(n, "mail") == 0) {
                APR_ARRAY_PUSH(ds->rx, memds_ctver_t *) =
                    ctver(e->p, "application/vnd.omads-folder+xml", "1.2");
                ds->hierarchical = di->version == MEMDS_V12;
            }
            ds->tx = ds->rx;
            if (di->version == MEMDS_V12) {
                /* DS 1.2 filters, exactly what eng_filter applies: not in
                 * the Outbox (docs/filters.md) */
                memds_ds_t *d;
                if (eng_open_ds(&d, e, n) == APR_SUCCESS && d->vt->select) {
                    static const char *const kw[] = { "SINCE",    "BEFORE",
                                                      "MAXSIZE",  "NOATT",
                                                      "MAXCOUNT", NULL };
                    static const char *const pn[] = { "emailitem", "received",
                                                      "modified", NULL };
                    memds_filtercap_t *fc = apr_pcalloc(e->p, sizeof(*fc));
                    int w;
                    ds->filter_rx = apr_array_make(e->p, 1,
                                                   sizeof(memds_ctver_t *));
                    APR_ARRAY_PUSH(ds->filter_rx, memds_ctver_t *) =
                        ctver(e->p, "syncml:filtertype-cgi", "1.0");
                    fc->ct_type = em->ct_type;
                    fc->ver_ct = em->ver_ct;
                    fc->keywords = apr_array_make(e->p, 5, sizeof(char *));
                    fc->prop_names = apr_array_make(e->p, 3, sizeof(char *));
                    for (w = 0; kw[w]; ++w) {
                        APR_ARRAY_PUSH(fc->keywords, const char *) = kw[w];
                    }
                    for (w = 0; pn[w]; ++w) {
                        APR_ARRAY_PUSH(fc->prop_names, const char *) = pn[w];
                    }
                    ds->filter_caps = apr_array_make(e->p, 1,
                                                     sizeof(
                                                         memds_filtercap_t *));
                    APR_ARRAY_PUSH(ds->filter_caps, memds_filtercap_t *) = fc;
                }
            }
        }
        else if (cds && cds->rx_pref) {
            ds->rx_pref = cds->rx_pref;
            ds->rx = cds->rx;
            ds->tx_pref = cds->tx_pref ? cds->tx_pref : cds->rx_pref;
            ds->tx = cds->tx;
        }
        else {
            ds->rx_pref = ctver(e->p, "text/plain", "1.0");
            ds->tx_pref = ctver(e->p, "text/plain", "1.0");
        }
        ds->sync_types = apr_array_make(e->p, 7, sizeof(const char *));
        /* 7, server-alerted sync, only where push is on (MemDSPush): a
         * device believes it */
        for (k = 1; k <= (e->cfg->push ? 7 : 6); ++k) {
            APR_ARRAY_PUSH(ds->sync_types, const char *) = apr_itoa(e->p, k);
        }
        APR_ARRAY_PUSH(di->datastores, memds_datastore_t *) = ds;
    }
    return di;
}

/* Keep the client's DevInf: as XML (readable by DBAs and memds-codec). */
static apr_status_t store_client_devinf(eng_t *e, const memds_devinf_t *di)
{
    memds_tree_t t;
    memds_buf_t b;
    memds_codec_err_t err;
    int i, max_guid = 0;

    t.root = memds_devinf_to_tree(di, e->p);
    t.version = di->version;
    t.wbxml_version = 0;
    memds_buf_init(&b, 4096, e->p);
    /* A devinf root alone: wrap nothing, the XML codec writes it with its
     * namespace when it is the root. */
    if (memds_xml_encode(&b, &t, &err) != APR_SUCCESS) {
        b.len = 0;
    }
    for (i = 0; di->datastores && i < di->datastores->nelts; ++i) {
        const memds_datastore_t *ds = APR_ARRAY_IDX(di->datastores, i,
                                                    memds_datastore_t *);
        int g = ds->max_guid_size ? atoi(ds->max_guid_size) : 0;
        if (g > 0 && (max_guid == 0 || g < max_guid)) {
            max_guid = g;
        }
    }
    e->dev.max_guid_size = max_guid;
    e->dev.large_objs = di->large_objs;
    if (e->db->vt->device_set_devinf(e->db, e->dev.device_id,
                                     b.len ? b.data : NULL, b.len, max_guid,
                                     di->large_objs)
        != APR_SUCCESS) {
        return eng_db_fail(e, "storing the DevInf");
    }
    return eng_push_self_register(e, di);
}

/* The client's DevInf datastore of a datastore of ours (from this
 * message or stored), or NULL. */
static const memds_datastore_t *client_store_devinf(eng_t *e, const char *store)
{
    const memds_sstore_t *ss = eng_find_sstore(e, store);

    if (!e->client_devinf_read) {
        e->client_devinf_read = 1;
        e->client_devinf = devinf_in_message(e);
        if (e->client_devinf == NULL && e->dev.devinf) {
            memds_tree_t *t;
            memds_codec_err_t err;
            memds_devinf_t *di;
            if (memds_xml_decode_devinf(&t, e->dev.devinf, e->dev.devinf_len,
                                        &err, e->p)
                    == APR_SUCCESS
                && memds_devinf_from_tree(&di, t->root, &err, e->p)
                       == APR_SUCCESS) {
                e->client_devinf = di;
            }
        }
    }
    return client_ds(e->client_devinf, ss ? ss->client_uri : NULL);
}

/* The facts of the device's DevInf that opening a mail datastore needs,
 * in the compact form kept in memds.session_stores.client_caps (schema
 * 028): "f=0|1;b=0|1;r=0|1[;t=TYPE]" (field-level email replaces, a
 * Funambol client, takes message/rfc822, the preferred type %-escaped). */
static const char *caps_format(const memds_ds_env_t *env, apr_pool_t *p)
{
    const char *s = apr_psprintf(p, "f=%d;b=%d;r=%d", env->field_level ? 1 : 0,
                                 env->funambol ? 1 : 0,
                                 env->no_rfc822 ? 0 : 1);

    return env->want_type
               ? apr_pstrcat(p, s, ";t=",
                             memds_ds_value_escape(env->want_type, p), NULL)
               : s;
}

static int caps_parse(memds_ds_env_t *env, const char *caps, apr_pool_t *p)
{
    char *copy = apr_pstrdup(p, caps), *last = NULL, *tok;
    int seen = 0;

    env->want_type = NULL;
    for (tok = apr_strtok(copy, ";", &last); tok;
         tok = apr_strtok(NULL, ";", &last)) {
        if (tok[0] == 't' && tok[1] == '=') {
            env->want_type = memds_ds_value_unescape(tok + 2);
        }
        else if (tok[1] == '=' && (tok[2] == '0' || tok[2] == '1') && !tok[3]) {
            int v = tok[2] == '1';
            switch (tok[0]) {
            case 'f': env->field_level = v; seen |= 1; break;
            case 'b': env->funambol = v; seen |= 2; break;
            case 'r': env->no_rfc822 = !v; seen |= 4; break;
            default: return 0;
            }
        }
        else {
            return 0;
        }
    }
    return seen == 7;
}

void eng_client_caps(eng_t *e, const char *store, memds_ds_env_t *env)
{
    memds_sstore_t *ss = eng_find_sstore(e, store);

    /* (a DevInf in this message is read again: it may be new) */
    if (ss && ss->client_caps && devinf_in_message(e) == NULL
        && caps_parse(env, ss->client_caps, e->p)) {
        return;
    }
    env->want_type = eng_client_rx_type(e, store);
    env->field_level =
        eng_client_field_level(e, store, "application/vnd.omads-email+xml");
    env->funambol = eng_client_is_funambol(e, store);
    env->no_rfc822 = !eng_client_takes(e, store, "message/rfc822");
    if (ss) {
        /* kept with the datastore's row when the request saves it */
        ss->client_caps = caps_format(env, e->p);
    }
}

/* The content type the device prefers for a datastore (its DevInf
 * Rx-Pref, from this message or stored), or NULL. */
const char *eng_client_rx_type(eng_t *e, const char *store)
{
    const memds_datastore_t *cds = client_store_devinf(e, store);

    return cds && cds->rx_pref ? cds->rx_pref->ct_type : NULL;
}

/* Does the device merge field-level replaces of type in a datastore (a
 * CTCap for the type with FieldLevel in its DevInf 1.2)? */
int eng_client_field_level(eng_t *e, const char *store, const char *type)
{
    const memds_datastore_t *cds = client_store_devinf(e, store);
    int i;

    for (i = 0; cds && cds->ctcaps && i < cds->ctcaps->nelts; ++i) {
        const memds_ctcap_t *cc = APR_ARRAY_IDX(cds->ctcaps, i,
                                                memds_ctcap_t *);
        if (cc->field_level && cc->ct_type
            && strcasecmp(cc->ct_type, type) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Does the device take type in a datastore (its DevInf Rx-Pref or Rx)?
 * 1 too when it sent no DevInf for the datastore (nothing announced). */
int eng_client_takes(eng_t *e, const char *store, const char *type)
{
    const memds_datastore_t *cds = client_store_devinf(e, store);
    int i;

    if (cds == NULL || (cds->rx_pref == NULL && cds->rx == NULL)) {
        return 1;
    }
    if (cds->rx_pref && cds->rx_pref->ct_type
        && strcasecmp(cds->rx_pref->ct_type, type) == 0) {
        return 1;
    }
    for (i = 0; cds->rx && i < cds->rx->nelts; ++i) {
        const memds_ctver_t *cv = APR_ARRAY_IDX(cds->rx, i, memds_ctver_t *);
        if (cv->ct_type && strcasecmp(cv->ct_type, type) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Does s name Funambol (any case)? */
static int names_funambol(const char *s, apr_pool_t *p)
{
    char *l = s ? apr_pstrdup(p, s) : NULL, *c;

    for (c = l; c && *c; ++c) {
        *c = (char)apr_tolower(*c);
    }
    return l && strstr(l, "funambol") != NULL;
}

/* Is the device a Funambol client (its DevInf Man or Mod says so)? */
int eng_client_is_funambol(eng_t *e, const char *store)
{
    const memds_devinf_t *di;

    (void)client_store_devinf(e, store); /* (reads the DevInf once) */
    di = e->client_devinf;
    return di
           && (names_funambol(di->man, e->p) || names_funambol(di->mod, e->p));
}

apr_status_t eng_do_put(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = eng_status_for(e, cmd, MEMDS_ST_OK);
    const memds_item_t *it = cmd->items && cmd->items->nelts
                                 ? APR_ARRAY_IDX(cmd->items, 0, memds_item_t *)
                                 : NULL;

    if (it && it->source) {
        eng_add_ref(&st->source_refs, it->source->uri, e->p);
    }
    if (it == NULL || !it->source || !is_devinf_uri(it->source->uri)) {
        st->data = eng_code_text(e, MEMDS_ST_NOT_FOUND);
    }
    else if (it->data_kind != MEMDS_DATA_DEVINF) {
        st->data = eng_code_text(e, MEMDS_ST_UNSUPPORTED_MEDIA);
    }
    else if (store_client_devinf(e, it->devinf) != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    eng_reply(e, cmd, st);
    return APR_SUCCESS;
}

apr_status_t eng_do_results(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = eng_status_for(e, cmd, MEMDS_ST_OK);
    const memds_item_t *it = cmd->items && cmd->items->nelts
                                 ? APR_ARRAY_IDX(cmd->items, 0, memds_item_t *)
                                 : NULL;

    if (it && it->data_kind == MEMDS_DATA_DEVINF) {
        if (store_client_devinf(e, it->devinf) != APR_SUCCESS) {
            return APR_EGENERAL;
        }
    }
    eng_reply(e, cmd, st);
    return APR_SUCCESS;
}

void eng_do_get(eng_t *e, const memds_cmd_t *cmd)
{
    memds_cmd_t *st = eng_status_for(e, cmd, MEMDS_ST_OK), *res;
    const memds_item_t *it = cmd->items && cmd->items->nelts
                                 ? APR_ARRAY_IDX(cmd->items, 0, memds_item_t *)
                                 : NULL;
    memds_item_t *rit;

    if (it && it->target) {
        eng_add_ref(&st->target_refs, it->target->uri, e->p);
    }
    if (it == NULL || !it->target || !is_devinf_uri(it->target->uri)) {
        st->data = eng_code_text(e, MEMDS_ST_NOT_FOUND);
        eng_reply(e, cmd, st);
        return;
    }
    eng_reply(e, cmd, st);
    res = eng_cmd_new(e, MEMDS_CMD_RESULTS);
    res->msg_ref = e->in->hdr.msg_id;
    res->cmd_ref = cmd->cmd_id;
    res->meta = eng_meta_new(e->p);
    res->meta->type = e->enc == MEMDS_ENC_WBXML
                          ? "application/vnd.syncml-devinf+wbxml"
                          : "application/vnd.syncml-devinf+xml";
    rit = eng_item_new(e->p);
    rit->source = eng_loc(e->p, devinf_uri(e));
    rit->data_kind = MEMDS_DATA_DEVINF;
    rit->devinf = server_devinf(e);
    eng_push(&res->items, rit, e->p);
    /* Results follow the Get's Status. */
    APR_ARRAY_PUSH(e->replies, memds_cmd_t *) = res;
}
