/* memds_msg_min.c: interim SyncML answer (see memds_msg_min.h). */
#include "syncml/memds_msg_min.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdlib.h>
#include <string.h>
#include <wbxml/wbxml.h>

typedef struct hdr_t {
    const char *verdtd, *verproto, *session_id, *msg_id, *target, *source;
} hdr_t;

typedef struct cmd_t {
    const char *name, *cmdid;
} cmd_t;

static int is_el(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE
        && strcmp((const char *)n->name, name) == 0;
}

static const xmlNode *child(const xmlNode *n, const char *name)
{
    const xmlNode *c;

    for (c = n ? n->children : NULL; c; c = c->next) {
        if (is_el(c, name)) {
            return c;
        }
    }
    return NULL;
}

static const char *text_of(const xmlNode *n, apr_pool_t *p)
{
    xmlChar *t;
    const char *s;

    if (n == NULL) {
        return NULL;
    }
    t = xmlNodeGetContent(n);
    if (t == NULL) {
        return "";
    }
    s = apr_pstrdup(p, (const char *)t);
    xmlFree(t);
    /* trim blanks of pretty-printed input */
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
        ++s;
    }
    {
        apr_size_t n2 = strlen(s);
        while (n2 > 0 && (s[n2 - 1] == ' ' || s[n2 - 1] == '\t'
                          || s[n2 - 1] == '\r' || s[n2 - 1] == '\n')) {
            --n2;
        }
        s = apr_pstrndup(p, s, n2);
    }
    return s;
}

static int depth_ok(const xmlNode *n, int depth)
{
    const xmlNode *c;

    if (depth > MEMDS_MSG_MIN_MAX_DEPTH) {
        return 0;
    }
    for (c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE && !depth_ok(c, depth + 1)) {
            return 0;
        }
    }
    return 1;
}

/* WBXML -> XML with libwbxml's converter. Interim only: decision 7 of
 * DESIGN.md replaces this with a direct decoder in the codec issue. */
static apr_status_t wbxml_to_xml(const char **pxml, apr_size_t *plen,
                                 const char **perr, const char *in,
                                 apr_size_t inlen, apr_pool_t *p)
{
    WBXMLConvWBXML2XML *conv = NULL;
    WB_UTINY *xml = NULL;
    WB_ULONG xlen = 0;
    WBXMLError e;

    e = wbxml_conv_wbxml2xml_create(&conv);
    if (e != WBXML_OK) {
        *perr = "out of memory";
        return APR_ENOMEM;
    }
    wbxml_conv_wbxml2xml_set_gen_type(conv, WBXML_GEN_XML_COMPACT);
    e = wbxml_conv_wbxml2xml_run(conv, (WB_UTINY *)in, (WB_ULONG)inlen,
                                 &xml, &xlen);
    wbxml_conv_wbxml2xml_destroy(conv);
    if (e != WBXML_OK) {
        *perr = apr_psprintf(p, "invalid WBXML: %s",
                             (const char *)wbxml_errors_string(e));
        free(xml);
        return APR_EINVAL;
    }
    *pxml = apr_pstrmemdup(p, (const char *)xml, xlen);
    *plen = xlen;
    free(xml);
    return APR_SUCCESS;
}

static apr_status_t xml_to_wbxml(const char **pout, apr_size_t *plen,
                                 const char *xml, apr_size_t xlen,
                                 apr_pool_t *p)
{
    WBXMLConvXML2WBXML *conv = NULL;
    WB_UTINY *out = NULL;
    WB_ULONG olen = 0;
    WBXMLError e;

    if (wbxml_conv_xml2wbxml_create(&conv) != WBXML_OK) {
        return APR_ENOMEM;
    }
    wbxml_conv_xml2wbxml_set_version(conv, WBXML_VERSION_12);
    e = wbxml_conv_xml2wbxml_run(conv, (WB_UTINY *)xml, (WB_ULONG)xlen,
                                 &out, &olen);
    wbxml_conv_xml2wbxml_destroy(conv);
    if (e != WBXML_OK) {
        free(out);
        return APR_EGENERAL;
    }
    *pout = apr_pmemdup(p, out, olen);
    *plen = olen;
    free(out);
    return APR_SUCCESS;
}

/* Parse and extract what the answer echoes. */
static apr_status_t read_request(hdr_t *h, apr_array_header_t *cmds,
                                 const char **perr, const char *xml,
                                 apr_size_t len, apr_pool_t *p)
{
    xmlParserCtxtPtr ctxt;
    xmlDocPtr doc;
    const xmlNode *root, *hdr, *body, *c;
    apr_status_t rv = APR_EINVAL;

    if (len > (apr_size_t)INT32_MAX) {
        *perr = "message too large";
        return APR_EINVAL;
    }
    ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        *perr = "out of memory";
        return APR_ENOMEM;
    }
    /* No DTD loading, no entity substitution, no network (DESIGN.md 8). */
    doc = xmlCtxtReadMemory(ctxt, xml, (int)len, NULL, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR
                            | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
    if (doc == NULL) {
        const xmlError *err = xmlCtxtGetLastError(ctxt);
        *perr = apr_psprintf(p, "malformed XML at line %d: %s",
                             err ? err->line : 0,
                             err && err->message ? err->message : "parse error");
        {   /* drop libxml2's trailing newline */
            char *m = (char *)*perr;
            apr_size_t n = strlen(m);
            if (n && m[n - 1] == '\n') {
                m[n - 1] = '\0';
            }
        }
        xmlFreeParserCtxt(ctxt);
        return APR_EINVAL;
    }
    if (doc->intSubset && doc->intSubset->children) {
        *perr = "a DOCTYPE with an internal subset (entity declarations) "
                "is not accepted";
        goto done;
    }
    root = xmlDocGetRootElement(doc);
    if (!is_el(root, "SyncML")) {
        *perr = apr_psprintf(p, "root element is <%s>, not <SyncML>",
                             root ? (const char *)root->name : "(none)");
        goto done;
    }
    if (!depth_ok(root, 1)) {
        *perr = apr_psprintf(p, "elements nested deeper than %d levels",
                             MEMDS_MSG_MIN_MAX_DEPTH);
        goto done;
    }
    hdr = child(root, "SyncHdr");
    body = child(root, "SyncBody");
    if (hdr == NULL || body == NULL) {
        *perr = "SyncHdr or SyncBody missing";
        goto done;
    }
    h->verdtd = text_of(child(hdr, "VerDTD"), p);
    h->verproto = text_of(child(hdr, "VerProto"), p);
    h->session_id = text_of(child(hdr, "SessionID"), p);
    h->msg_id = text_of(child(hdr, "MsgID"), p);
    h->target = text_of(child(child(hdr, "Target"), "LocURI"), p);
    h->source = text_of(child(child(hdr, "Source"), "LocURI"), p);
    if (!h->verdtd || !h->verproto || !h->session_id || !h->msg_id
        || !h->target || !h->source) {
        *perr = "SyncHdr lacks one of VerDTD, VerProto, SessionID, MsgID, "
                "Target/LocURI, Source/LocURI";
        goto done;
    }
    for (c = body->children; c; c = c->next) {
        cmd_t *cmd;
        if (c->type != XML_ELEMENT_NODE || is_el(c, "Final")
            || is_el(c, "Status")) {
            continue;
        }
        cmd = apr_array_push(cmds);
        cmd->name = apr_pstrdup(p, (const char *)c->name);
        cmd->cmdid = text_of(child(c, "CmdID"), p);
        if (cmd->cmdid == NULL) {
            *perr = apr_psprintf(p, "<%s> without CmdID", cmd->name);
            goto done;
        }
    }
    rv = APR_SUCCESS;
done:
    xmlFreeDoc(doc);
    xmlFreeParserCtxt(ctxt);
    return rv;
}

static xmlNodePtr add_text(xmlNodePtr parent, const char *name, const char *v)
{
    /* xmlNewTextChild escapes v (xmlNewChild would not). */
    return xmlNewTextChild(parent, NULL, BAD_CAST name, BAD_CAST v);
}

static void add_status(xmlNodePtr body, int cmdid, const char *msgref,
                       const char *cmdref, const char *cmd, const char *tref,
                       const char *sref, const char *code)
{
    xmlNodePtr st = xmlNewChild(body, NULL, BAD_CAST "Status", NULL);
    char buf[16];

    apr_snprintf(buf, sizeof(buf), "%d", cmdid);
    add_text(st, "CmdID", buf);
    add_text(st, "MsgRef", msgref);
    add_text(st, "CmdRef", cmdref);
    add_text(st, "Cmd", cmd);
    if (tref) {
        add_text(st, "TargetRef", tref);
    }
    if (sref) {
        add_text(st, "SourceRef", sref);
    }
    add_text(st, "Data", code);
}

apr_status_t memds_msg_min_respond(const char **pout, apr_size_t *poutlen,
                                   const char **perr, const char *in,
                                   apr_size_t inlen, int wbxml, apr_pool_t *p)
{
    hdr_t h;
    apr_array_header_t *cmds = apr_array_make(p, 8, sizeof(cmd_t));
    const char *xml = in, *verdtd, *verproto, *ns;
    apr_size_t xlen = inlen;
    xmlDocPtr doc;
    xmlNodePtr root, hdr, body, n;
    xmlChar *dump = NULL;
    int dlen = 0, i, cmdid = 1;
    apr_status_t rv;

    memset(&h, 0, sizeof(h));
    if (inlen == 0) {
        *perr = "empty body";
        return APR_EINVAL;
    }
    if (wbxml) {
        rv = wbxml_to_xml(&xml, &xlen, perr, in, inlen, p);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    rv = read_request(&h, cmds, perr, xml, xlen, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    /* Answer in the client's version when it is one we know (1.1 or 1.2). */
    if (strcmp(h.verdtd, "1.1") == 0) {
        verdtd = "1.1"; verproto = "SyncML/1.1"; ns = "SYNCML:SYNCML1.1";
    }
    else {
        verdtd = "1.2"; verproto = "SyncML/1.2"; ns = "SYNCML:SYNCML1.2";
    }

    doc = xmlNewDoc(BAD_CAST "1.0");
    if (wbxml) {
        /* libwbxml picks the WBXML code pages from the public id. */
        xmlCreateIntSubset(doc, BAD_CAST "SyncML",
                           BAD_CAST (strcmp(verdtd, "1.1") == 0
                                     ? "-//SYNCML//DTD SyncML 1.1//EN"
                                     : "-//SYNCML//DTD SyncML 1.2//EN"),
                           BAD_CAST "http://www.openmobilealliance.org/tech/DTD/OMA-TS-SyncML_RepPro_DTD-V1_2.dtd");
    }
    root = xmlNewNode(NULL, BAD_CAST "SyncML");
    xmlDocSetRootElement(doc, root);
    if (!wbxml) {
        xmlNewNs(root, BAD_CAST ns, NULL);
    }
    hdr = xmlNewChild(root, NULL, BAD_CAST "SyncHdr", NULL);
    add_text(hdr, "VerDTD", verdtd);
    add_text(hdr, "VerProto", verproto);
    add_text(hdr, "SessionID", h.session_id);
    add_text(hdr, "MsgID", h.msg_id);
    n = xmlNewChild(hdr, NULL, BAD_CAST "Target", NULL);
    add_text(n, "LocURI", h.source);
    n = xmlNewChild(hdr, NULL, BAD_CAST "Source", NULL);
    add_text(n, "LocURI", h.target);
    body = xmlNewChild(root, NULL, BAD_CAST "SyncBody", NULL);
    add_status(body, cmdid++, h.msg_id, "0", "SyncHdr", h.target, h.source,
               "200");
    for (i = 0; i < cmds->nelts; ++i) {
        const cmd_t *c = &APR_ARRAY_IDX(cmds, i, cmd_t);
        add_status(body, cmdid++, h.msg_id, c->cmdid, c->name, NULL, NULL,
                   "501");
    }
    xmlNewChild(body, NULL, BAD_CAST "Final", NULL);
    xmlDocDumpMemoryEnc(doc, &dump, &dlen, "UTF-8");
    xmlFreeDoc(doc);
    if (dump == NULL) {
        *perr = "out of memory";
        return APR_ENOMEM;
    }
    if (wbxml) {
        rv = xml_to_wbxml(pout, poutlen, (const char *)dump, (apr_size_t)dlen, p);
        xmlFree(dump);
        if (rv != APR_SUCCESS) {
            *perr = "WBXML encoding of the response failed";
        }
        return rv;
    }
    *pout = apr_pmemdup(p, dump, (apr_size_t)dlen);
    *poutlen = (apr_size_t)dlen;
    xmlFree(dump);
    return APR_SUCCESS;
}
