/* Unit tests: syncml/memds_msg.c (model <-> tree, DevInf, size accounting)
 * over every message of the corpus in tests/corpus (recorded sessions of the
 * real SyncEvolution client with the gateway, and hand-written messages). */
#include "unit.h"
#include "syncml/memds_msg.h"

#include <apr_base64.h>
#include <apr_file_info.h>
#include <apr_md5.h>
#include <apr_strings.h>
#include <stdio.h>
#include <string.h>

#define CORPUS MEMDS_SRCDIR "/tests/corpus/"
/* Messages of the corpus (tests/corpus/record.sh and handmade/): if fewer
 * are found, the corpus is missing or incomplete. */
#define CORPUS_MESSAGES 210

/* Files to run through the codec: the recorded and hand-written messages,
 * minus the wbxml2xml outputs (*.decoded.xml, which can be malformed on
 * purpose) and the compact renderings of hand-written ones (*.c.xml). */
static apr_array_header_t *corpus(void)
{
    static const char *const dirs[] = { "pkg1", "items", "mail", "handmade",
                                        NULL };
    apr_array_header_t *files = apr_array_make(unit_pool, 64, sizeof(char *));
    int i;

    for (i = 0; dirs[i]; ++i) {
        const char *dir = apr_pstrcat(unit_pool, CORPUS, dirs[i], NULL);
        apr_dir_t *d;
        apr_finfo_t fi;

        if (apr_dir_open(&d, dir, unit_pool) != APR_SUCCESS) {
            continue;
        }
        while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
            apr_size_t n = strlen(fi.name);
            int xml = n > 4 && strcmp(fi.name + n - 4, ".xml") == 0;
            int wbxml = n > 6 && strcmp(fi.name + n - 6, ".wbxml") == 0;
            if ((!xml && !wbxml) || strstr(fi.name, ".decoded.")
                || strstr(fi.name, ".c.xml")) {
                continue;
            }
            APR_ARRAY_PUSH(files, const char *) = apr_pstrcat(unit_pool, dir,
                                                              "/", fi.name,
                                                              NULL);
        }
        apr_dir_close(d);
    }
    return files;
}

/* Collect every BYTES item data of a message, commands nested too. */
static void collect_data(apr_array_header_t *out,
                         const apr_array_header_t *cmds)
{
    int i, j;

    for (i = 0; cmds && i < cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(cmds, i, memds_cmd_t *);
        for (j = 0; c->items && j < c->items->nelts; ++j) {
            const memds_item_t *it = APR_ARRAY_IDX(c->items, j, memds_item_t *);
            if (it->data_kind == MEMDS_DATA_BYTES) {
                APR_ARRAY_PUSH(out, const memds_bytes_t *) = &it->data;
            }
        }
        collect_data(out, c->cmds);
    }
}

static const char *xml_of(const memds_msg_t *m, apr_pool_t *p)
{
    memds_buf_t b;
    memds_codec_err_t err;

    memds_buf_init(&b, 4096, p);
    if (memds_msg_encode(&b, m, MEMDS_ENC_XML, &err, p) != APR_SUCCESS) {
        fprintf(stderr, "\n  XML encode: %s\n", err.msg);
        return NULL;
    }
    memds_buf_addc(&b, '\0');
    return b.data;
}

static void data_equal(const memds_msg_t *a, const memds_msg_t *b,
                       const char *path, const char *how)
{
    apr_array_header_t *da = apr_array_make(unit_pool, 8, sizeof(void *));
    apr_array_header_t *db = apr_array_make(unit_pool, 8, sizeof(void *));
    int i;

    collect_data(da, a->cmds);
    collect_data(db, b->cmds);
    CU_ASSERT_EQUAL_FATAL(da->nelts, db->nelts);
    for (i = 0; i < da->nelts; ++i) {
        const memds_bytes_t *x = APR_ARRAY_IDX(da, i, memds_bytes_t *);
        const memds_bytes_t *y = APR_ARRAY_IDX(db, i, memds_bytes_t *);
        if (x->len != y->len || memcmp(x->data, y->data, x->len) != 0) {
            fprintf(stderr, "\n  %s: item data %d differs after %s\n", path, i,
                    how);
            CU_FAIL("item data differs");
        }
    }
}

static void roundtrip_corpus(void)
{
    apr_array_header_t *files = corpus();
    int i, checked = 0;

    CU_ASSERT_FATAL(files->nelts >= CORPUS_MESSAGES);
    for (i = 0; i < files->nelts; ++i) {
        const char *path = APR_ARRAY_IDX(files, i, const char *);
        apr_pool_t *p;
        apr_size_t len;
        const char *buf, *x1, *x2, *x3;
        memds_msg_t *m, *m2, *m3;
        memds_codec_err_t err;
        memds_buf_t wb;

        apr_pool_create(&p, unit_pool);
        buf = unit_read_file(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        memset(&err, 0, sizeof(err));
        if (memds_msg_decode(&m, buf, len, MEMDS_ENC_AUTO, &err, p)
            != APR_SUCCESS) {
            fprintf(stderr, "\n  %s: %s (line %d, offset %lu)\n", path, err.msg,
                    err.line, (unsigned long)err.offset);
            CU_FAIL("capture does not decode");
            apr_pool_destroy(p);
            continue;
        }
        /* XML: decode(encode(m)) encodes to the same bytes (canonical). */
        x1 = xml_of(m, p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x1);
        CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m2, x1, strlen(x1),
                                               MEMDS_ENC_XML, &err, p),
                              APR_SUCCESS);
        x2 = xml_of(m2, p);
        CU_ASSERT_PTR_NOT_NULL_FATAL(x2);
        if (strcmp(x1, x2) != 0) {
            fprintf(stderr, "\n  %s: XML round trip differs\n", path);
            CU_FAIL("XML round trip");
        }
        data_equal(m, m2, path, "XML");
        /* WBXML: the same model again. */
        memds_buf_init(&wb, len + 256, p);
        CU_ASSERT_EQUAL_FATAL(memds_msg_encode(&wb, m, MEMDS_ENC_WBXML, &err,
                                               p),
                              APR_SUCCESS);
        if (memds_msg_decode(&m3, wb.data, wb.len, MEMDS_ENC_WBXML, &err, p)
            != APR_SUCCESS) {
            fprintf(stderr, "\n  %s: own WBXML does not decode: %s\n", path,
                    err.msg);
            CU_FAIL("WBXML round trip");
            apr_pool_destroy(p);
            continue;
        }
        x3 = xml_of(m3, p);
        if (!x3 || strcmp(x1, x3) != 0) {
            fprintf(stderr, "\n  %s: WBXML round trip differs\n", path);
            CU_FAIL("WBXML round trip");
        }
        data_equal(m, m3, path, "WBXML");
        ++checked;
        apr_pool_destroy(p);
    }
    CU_ASSERT_EQUAL(checked, files->nelts);
}

/* Build the message command by command with the sizer and compare its
 * predictions with the real encodings. */
static void sizer_matches_encoder(void)
{
    apr_array_header_t *files = corpus();
    int i, e, j;

    for (i = 0; i < files->nelts; ++i) {
        const char *path = APR_ARRAY_IDX(files, i, const char *);
        apr_pool_t *p;
        apr_size_t len;
        const char *buf = unit_read_file(path, &len);
        memds_msg_t *m, partial;
        memds_codec_err_t err;

        apr_pool_create(&p, unit_pool);
        if (buf == NULL
            || memds_msg_decode(&m, buf, len, MEMDS_ENC_AUTO, &err, p)
                   != APR_SUCCESS) {
            apr_pool_destroy(p);
            continue; /* reported by roundtrip_corpus */
        }
        for (e = MEMDS_ENC_XML; e <= MEMDS_ENC_WBXML; ++e) {
            memds_sizer_t sz;
            memds_buf_t b;

            partial = *m;
            partial.cmds = apr_array_make(p, 8, sizeof(memds_cmd_t *));
            partial.final = 0;
            memds_sizer_init(&sz, &partial, (memds_enc_e)e, p);
            for (j = 0; j <= m->cmds->nelts; ++j) {
                int fin;
                for (fin = 0; fin <= 1; ++fin) {
                    partial.final = fin;
                    memds_buf_init(&b, 4096, p);
                    if (memds_msg_encode(&b, &partial, (memds_enc_e)e, &err, p)
                        != APR_SUCCESS) {
                        continue; /* XML cannot carry some binary data */
                    }
                    if (j + fin > 0 && memds_sizer_total(&sz, fin) != b.len) {
                        fprintf(stderr,
                                "\n  %s (%s, %d cmds, final %d): sizer "
                                "says %lu, encoder wrote %lu\n",
                                path, e == MEMDS_ENC_XML ? "XML" : "WBXML", j,
                                fin, (unsigned long)memds_sizer_total(&sz, fin),
                                (unsigned long)b.len);
                        CU_FAIL("sizer total");
                    }
                }
                partial.final = 0;
                if (j < m->cmds->nelts) {
                    const memds_cmd_t *c = APR_ARRAY_IDX(m->cmds, j,
                                                         memds_cmd_t *);
                    apr_size_t before = memds_sizer_total(&sz, 0);
                    apr_size_t add = memds_sizer_cmd_size(&sz, c);
                    memds_sizer_add(&sz, c);
                    CU_ASSERT_EQUAL(memds_sizer_total(&sz, 0), before + add);
                    APR_ARRAY_PUSH(partial.cmds, const memds_cmd_t *) = c;
                }
            }
        }
        apr_pool_destroy(p);
    }
}

static const memds_cmd_t *find_cmd(const memds_msg_t *m, memds_cmd_e t)
{
    int i;

    for (i = 0; i < m->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *);
        if (c->type == t) {
            return c;
        }
    }
    return NULL;
}

static int bytes_are(const memds_bytes_t *b, const char *s)
{
    return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

/* The credential SyncEvolution sends with md5 in message 1, before any
 * nonce: b64(md5(b64(md5("user:password")) ":")), the nonce empty. */
static const char *md5_empty_nonce(const char *user, const char *password)
{
    unsigned char d[APR_MD5_DIGESTSIZE];
    char b1[32], b2[32];
    const char *up = apr_pstrcat(unit_pool, user, ":", password, NULL);

    apr_md5(d, up, strlen(up));
    apr_base64_encode(b1, (const char *)d, sizeof(d));
    up = apr_pstrcat(unit_pool, b1, ":", NULL);
    apr_md5(d, up, strlen(up));
    apr_base64_encode(b2, (const char *)d, sizeof(d));
    return apr_pstrdup(unit_pool, b2);
}

/* Package 1 of the real client (tests/corpus/pkg1: user "corpus",
 * password "corpus-secret", memo datastore, XML and WBXML, basic and md5). */
static void model_of_pkg1(void)
{
    const char *names[] = { "xml-basic-001-req.xml",
                            "wbxml-basic-001-req.wbxml", "xml-md5-001-req.xml",
                            "wbxml-md5-001-req.wbxml", NULL };
    int i;

    for (i = 0; names[i]; ++i) {
        apr_size_t len;
        const char *buf = unit_read_file(apr_pstrcat(unit_pool, CORPUS, "pkg1/",
                                                     names[i], NULL),
                                         &len);
        int md5 = strstr(names[i], "-md5-") != NULL;
        memds_msg_t *m;
        memds_codec_err_t err;
        const memds_cmd_t *put, *alert;
        const memds_item_t *it;
        const memds_datastore_t *ds;

        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, buf, len, MEMDS_ENC_AUTO,
                                               &err, unit_pool),
                              APR_SUCCESS);
        CU_ASSERT_STRING_EQUAL(m->hdr.verdtd, "1.2");
        CU_ASSERT_STRING_EQUAL(m->hdr.msg_id, "1");
        CU_ASSERT_STRING_EQUAL(m->hdr.source->name, "corpus");
        CU_ASSERT_PTR_NOT_NULL_FATAL(m->hdr.cred);
        CU_ASSERT_STRING_EQUAL(m->hdr.cred->meta->type,
                               md5 ? "syncml:auth-md5" : "syncml:auth-basic");
        /* md5: credentials in message 1 already, over an empty nonce */
        CU_ASSERT(bytes_are(&m->hdr.cred->data,
                            md5 ? md5_empty_nonce("corpus", "corpus-secret")
                                : "Y29ycHVzOmNvcnB1cy1zZWNyZXQ=")); /* basic */
        CU_ASSERT_EQUAL(m->hdr.meta->max_msg_size, 150000);
        CU_ASSERT_EQUAL(m->hdr.meta->max_obj_size, 4000000);
        CU_ASSERT(m->final);
        put = find_cmd(m, MEMDS_CMD_PUT);
        CU_ASSERT_PTR_NOT_NULL_FATAL(put);
        it = APR_ARRAY_IDX(put->items, 0, memds_item_t *);
        CU_ASSERT_EQUAL_FATAL(it->data_kind, MEMDS_DATA_DEVINF);
        CU_ASSERT_STRING_EQUAL(it->devinf->verdtd, "1.2");
        CU_ASSERT(it->devinf->utc && it->devinf->large_objs
                  && it->devinf->number_of_changes);
        CU_ASSERT_PTR_NOT_NULL_FATAL(it->devinf->datastores);
        ds = APR_ARRAY_IDX(it->devinf->datastores, 0, memds_datastore_t *);
        CU_ASSERT_STRING_EQUAL(ds->source_ref, "./memo");
        CU_ASSERT_STRING_EQUAL(ds->max_guid_size, "64");
        CU_ASSERT_STRING_EQUAL(ds->rx_pref->ct_type, "text/plain");
        CU_ASSERT_EQUAL(ds->sync_types->nelts, 8);
        alert = find_cmd(m, MEMDS_CMD_ALERT);
        CU_ASSERT_PTR_NOT_NULL_FATAL(alert);
        CU_ASSERT_STRING_EQUAL(alert->data, "201");
        it = APR_ARRAY_IDX(alert->items, 0, memds_item_t *);
        CU_ASSERT_STRING_EQUAL(it->target->uri, "notes");
        CU_ASSERT_PTR_NULL(it->meta->anchor->last);
        CU_ASSERT_PTR_NOT_NULL(it->meta->anchor->next);
    }
}

static void expect_bad(const char *xml, const char *needle)
{
    memds_msg_t *m;
    memds_codec_err_t err;

    memset(&err, 0, sizeof(err));
    CU_ASSERT_EQUAL(memds_msg_decode(&m, xml, strlen(xml), MEMDS_ENC_XML, &err,
                                     unit_pool),
                    APR_EINVAL);
    if (!err.msg || !strstr(err.msg, needle)) {
        fprintf(stderr, "\n  error '%s' lacks '%s'\n",
                err.msg ? err.msg : "(none)", needle);
        CU_FAIL("specific error");
    }
}

#define HDR \
    "<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD>" \
    "<VerProto>SyncML/1.2</VerProto><SessionID>1</SessionID><MsgID>1</MsgID>" \
    "<Target><LocURI>http://x/</LocURI></Target><Source><LocURI>dev</LocURI>" \
    "</Source></SyncHdr><SyncBody>"

static void strict_model(void)
{
    expect_bad(HDR
               "<Add><CmdID>1</CmdID><Cmd>Add</Cmd></Add></SyncBody></SyncML>",
               "<Cmd> is not allowed in <Add>");
    expect_bad(HDR "<Add><Item/></Add></SyncBody></SyncML>", "without <CmdID>");
    expect_bad(HDR "<Status><CmdID>1</CmdID><MsgRef>1</MsgRef></Status>"
                   "</SyncBody></SyncML>",
               "needs <CmdRef>");
    expect_bad(HDR
               "<Final/><Alert><CmdID>1</CmdID></Alert></SyncBody></SyncML>",
               "after <Final>");
    expect_bad(HDR "<Item><Data>x</Data></Item></SyncBody></SyncML>",
               "not a command");
    expect_bad(HDR "<Map><CmdID>1</CmdID><MapItem><Target><LocURI>1</LocURI>"
                   "</Target></MapItem></Map></SyncBody></SyncML>",
               "<MapItem> needs");
    expect_bad("<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD>"
               "</SyncHdr><SyncBody/></SyncML>",
               "<SyncHdr> lacks <VerProto>");
    expect_bad(HDR
               "<Alert><CmdID>1</CmdID><Item><Meta><MaxObjSize "
               "xmlns='syncml:metinf'>12ab</MaxObjSize></Meta></Item></Alert>"
               "</SyncBody></SyncML>",
               "is not a number");
}

/* What the two filtered Alerts of handmade/hm13 say (docs/codec.md). */
static void check_filters(const memds_msg_t *m, const char *how)
{
    const memds_cmd_t *a1, *a2;
    const memds_filter_t *f;
    const memds_property_t *pr;
    const memds_item_t *it;

    CU_ASSERT_EQUAL_FATAL(m->cmds->nelts, 2);
    a1 = APR_ARRAY_IDX(m->cmds, 0, memds_cmd_t *);
    a2 = APR_ARRAY_IDX(m->cmds, 1, memds_cmd_t *);
    it = APR_ARRAY_IDX(a1->items, 0, memds_item_t *);
    CU_ASSERT_STRING_EQUAL(it->target->uri, "Inbox");
    f = it->target->filter;
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(f->meta->type, "application/vnd.omads-email+xml");
    CU_ASSERT_STRING_EQUAL(f->filter_type, "INCLUSIVE");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->record);
    CU_ASSERT_STRING_EQUAL(f->record->meta->type, "syncml:filtertype-cgi");
    CU_ASSERT_EQUAL(f->record->data_kind, MEMDS_DATA_BYTES);
    CU_ASSERT(bytes_are(&f->record->data, "&LUID;&EQ;4711"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->field);
    CU_ASSERT_EQUAL_FATAL(f->field->data_kind, MEMDS_DATA_PROPS);
    CU_ASSERT_EQUAL_FATAL(f->field->props->nelts, 1);
    pr = APR_ARRAY_IDX(f->field->props, 0, memds_property_t *);
    CU_ASSERT_STRING_EQUAL(pr->name, "emailitem");
    CU_ASSERT_STRING_EQUAL(pr->max_size, "20480");
    CU_ASSERT_EQUAL_FATAL(pr->params->nelts, 2);
    CU_ASSERT_STRING_EQUAL(
        APR_ARRAY_IDX(pr->params, 0, memds_propparam_t *)->name, "texttype");
    CU_ASSERT_STRING_EQUAL(
        APR_ARRAY_IDX(pr->params, 1, memds_propparam_t *)->name, "attachtype");

    it = APR_ARRAY_IDX(a2->items, 0, memds_item_t *);
    CU_ASSERT_STRING_EQUAL(it->target->uri, "Sent");
    f = it->target->filter;
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NULL(f->filter_type); /* absent: EXCLUSIVE */
    CU_ASSERT(bytes_are(&f->record->data, "received&GE;20240101T000000Z&AND;"
                                          "received&LT;20250101T000000Z"));
    CU_ASSERT_EQUAL_FATAL(f->field->data_kind, MEMDS_DATA_PROPS);
    pr = APR_ARRAY_IDX(f->field->props, 0, memds_property_t *);
    CU_ASSERT_STRING_EQUAL(pr->name, "emailitem");
    CU_ASSERT_PTR_NULL(pr->max_size);
    CU_ASSERT_EQUAL(pr->params->nelts, 1);
    (void)how;
}

/* A Filter whose Field holds DevInf Property elements (with and without
 * the namespace; Record before Field): XML, libwbxml's WBXML (LITERAL
 * tags), and both encodings of ours, decoded again. */
static void model_of_filters(void)
{
    static const char *const names[] = {
        "hm13-client-filter-field.xml", "hm13-client-filter-field.c.xml",
        "hm13-client-filter-field.libwbxml.wbxml", NULL
    };
    int i;
    memds_enc_e e;

    for (i = 0; names[i]; ++i) {
        apr_size_t len;
        const char *buf = unit_read_file(apr_pstrcat(unit_pool, CORPUS,
                                                     "handmade/", names[i],
                                                     NULL),
                                         &len);
        memds_msg_t *m, *m2;
        memds_codec_err_t err;

        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        memset(&err, 0, sizeof(err));
        if (memds_msg_decode(&m, buf, len, MEMDS_ENC_AUTO, &err, unit_pool)
            != APR_SUCCESS) {
            fprintf(stderr, "\n  %s: %s\n", names[i], err.msg);
            CU_FAIL_FATAL("filter message does not decode");
        }
        check_filters(m, names[i]);
        for (e = MEMDS_ENC_XML; e <= MEMDS_ENC_WBXML; ++e) {
            memds_buf_t b;
            memds_buf_init(&b, 4096, unit_pool);
            CU_ASSERT_EQUAL_FATAL(memds_msg_encode(&b, m, e, &err, unit_pool),
                                  APR_SUCCESS);
            CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m2, b.data, b.len, e, &err,
                                                   unit_pool),
                                  APR_SUCCESS);
            check_filters(m2, e == MEMDS_ENC_XML ? "XML again" : "WBXML again");
        }
    }
}

#define FILTER_OPEN \
    HDR "<Alert><CmdID>1</CmdID><Data>200</Data><Item><Target>" \
        "<LocURI>Inbox</LocURI><Filter><Meta><Type xmlns='syncml:metinf'>" \
        "application/vnd.omads-email+xml</Type></Meta>"
#define FILTER_CLOSE "</Filter></Target></Item></Alert></SyncBody></SyncML>"
#define PROP \
    "<Property xmlns='syncml:devinf'><PropName>emailitem</PropName>" \
    "</Property>"

static void strict_filters(void)
{
    /* a Property anywhere but in a filter's Field */
    expect_bad(HDR "<Add><CmdID>1</CmdID><Item><Data>" PROP "</Data></Item>"
                   "</Add></SyncBody></SyncML>",
               "outside a filter <Field>");
    expect_bad(FILTER_OPEN "<Record><Item><Data>" PROP "</Data></Item>"
                           "</Record>" FILTER_CLOSE,
               "outside a filter <Field>");
    /* a Field's Data holds Property elements only */
    expect_bad(FILTER_OPEN "<Field><Item><Data>" PROP
                           "<DevInf xmlns='syncml:devinf'><VerDTD>1.2</VerDTD>"
                           "</DevInf></Data></Item></Field>" FILTER_CLOSE,
               "DevInf <Property> elements only");
    expect_bad(FILTER_OPEN "<Field><Item><Data><Property xmlns='syncml:devinf'>"
                           "<MaxSize>1</MaxSize></Property></Data></Item>"
                           "</Field>" FILTER_CLOSE,
               "<Property> without <PropName>");
    expect_bad(FILTER_OPEN "<Field><Item><Data><Property xmlns='syncml:devinf'>"
                           "<PropName>a</PropName><CTType>x</CTType>"
                           "</Property></Data></Item></Field>" FILTER_CLOSE,
               "<CTType> is not allowed in <Property>");
    expect_bad(FILTER_OPEN
               "<Field><Item/></Field><Field><Item/></Field>" FILTER_CLOSE,
               "more than one <Field>");
    expect_bad(FILTER_OPEN "<Record><Item/><Item/></Record>" FILTER_CLOSE,
               "exactly one <Item>");
    expect_bad(FILTER_OPEN
               "<Record><Item><Data><Anchor xmlns='syncml:metinf'>"
               "<Next>1</Next></Anchor></Data></Item></Record>" FILTER_CLOSE,
               "must be text");
    expect_bad(HDR "<Alert><CmdID>1</CmdID><Item><Target><LocURI>Inbox</LocURI>"
                   "<Filter><FilterType>INCLUSIVE</FilterType></Filter>"
                   "</Target></Item></Alert></SyncBody></SyncML>",
               "<Filter> without <Meta>");
    /* Filter belongs to an Alert item's Target only */
    expect_bad(HDR "<Alert><CmdID>1</CmdID><Item><Source><LocURI>x</LocURI>"
                   "<Filter/></Source></Item></Alert></SyncBody></SyncML>",
               "<Filter> is not allowed in <Source>");
}

/* WBXML carries a Field's Property as a nested document: one per Data. */
static void filter_wbxml_one_property(void)
{
    const char *xml = FILTER_OPEN "<Field><Item><Data>" PROP PROP
                                  "</Data></Item></Field>" FILTER_CLOSE;
    memds_msg_t *m;
    memds_codec_err_t err;
    memds_buf_t b;

    memset(&err, 0, sizeof(err));
    CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, xml, strlen(xml), MEMDS_ENC_XML,
                                           &err, unit_pool),
                          APR_SUCCESS);
    memds_buf_init(&b, 1024, unit_pool);
    CU_ASSERT_EQUAL(memds_msg_encode(&b, m, MEMDS_ENC_XML, &err, unit_pool),
                    APR_SUCCESS);
    memds_buf_init(&b, 1024, unit_pool);
    CU_ASSERT_EQUAL(memds_msg_encode(&b, m, MEMDS_ENC_WBXML, &err, unit_pool),
                    APR_EINVAL);
    CU_ASSERT(err.msg && strstr(err.msg, "one DevInf <Property> per <Data>"));
}

void unit_add_msg(void)
{
    CU_pSuite s = CU_add_suite("msg", NULL, NULL);

    CU_add_test(s, "every capture round-trips through the model",
                roundtrip_corpus);
    CU_add_test(s, "sizer predicts the encoders exactly",
                sizer_matches_encoder);
    CU_add_test(s, "model of a real package 1", model_of_pkg1);
    CU_add_test(s, "strict content models", strict_model);
    CU_add_test(s, "filters: Field with DevInf Property, both encodings",
                model_of_filters);
    CU_add_test(s, "filters: strict content models", strict_filters);
    CU_add_test(s, "filters: WBXML carries one Property per Data",
                filter_wbxml_one_property);
}
