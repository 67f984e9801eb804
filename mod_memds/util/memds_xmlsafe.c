/* memds_xmlsafe.c: the hardened libxml2 parse (see memds_xmlsafe.h). */
#include "util/memds_xmlsafe.h"

#include <apr_strings.h>
#include <libxml/SAX2.h>
#include <libxml/encoding.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <string.h>

/* Why the hooks stopped the parser. */
enum { STOP_NONE, STOP_SUBSET, STOP_DEPTH, STOP_NODES };

static memds_xmlsafe_t *x_of(void *ctx)
{
    return ((xmlParserCtxtPtr)ctx)->_private;
}

static void x_stop(xmlParserCtxtPtr ctxt, int why)
{
    memds_xmlsafe_t *d = ctxt->_private;

    if (d->stop == STOP_NONE) {
        d->stop = why;
        d->stop_line = ctxt->input ? ctxt->input->line : 0;
    }
    xmlStopParser(ctxt);
}

/** libxml2's message without its trailing newline, from p. */
static const char *message_of(const xmlError *e, apr_pool_t *p)
{
    char *m = apr_pstrdup(p, e && e->message ? e->message : "parse error");
    apr_size_t n = strlen(m);

    while (n && (m[n - 1] == '\n' || m[n - 1] == ' ')) {
        m[--n] = '\0';
    }
    return m;
}

/* The parser context's own structured error handler: keeps the first
 * error, ignores warnings (e.g. "xmlns: URI ... is not absolute"). Never
 * a global handler: decoding is thread-safe. */
static void sax_serror(void *ctx, xmlErrorPtr e)
{
    memds_xmlsafe_t *d = x_of(ctx);

    if (d == NULL || e == NULL || e->level < XML_ERR_ERROR || d->error) {
        return;
    }
    d->error = message_of(e, d->p);
    d->error_line = e->line;
}

/* DOCTYPE: refuse an internal subset before libxml2 parses a byte of it
 * (no entity declaration is ever seen, so no expansion can happen). At
 * this point libxml2 has read the name and external ids and skipped the
 * blanks; an internal subset starts with '['. */
static void sax_internal_subset(void *ctx, const xmlChar *name,
                                const xmlChar *eid, const xmlChar *sid)
{
    xmlParserCtxtPtr ctxt = ctx;

    xmlSAX2InternalSubset(ctx, name, eid, sid);
    if (ctxt->input && ctxt->input->cur && *ctxt->input->cur == '[') {
        x_stop(ctxt, STOP_SUBSET);
    }
}

/* Second line of defence: any declaration stops the parser. */
static void sax_entity_decl(void *ctx, const xmlChar *name, int type,
                            const xmlChar *pid, const xmlChar *sid,
                            xmlChar *content)
{
    (void)name;
    (void)type;
    (void)pid;
    (void)sid;
    (void)content;
    x_stop(ctx, STOP_SUBSET);
}

static void sax_element_decl(void *ctx, const xmlChar *name, int type,
                             xmlElementContentPtr content)
{
    (void)name;
    (void)type;
    (void)content;
    x_stop(ctx, STOP_SUBSET);
}

static void sax_attribute_decl(void *ctx, const xmlChar *elem,
                               const xmlChar *fullname, int type, int def,
                               const xmlChar *defaultValue,
                               xmlEnumerationPtr tree)
{
    (void)elem;
    (void)fullname;
    (void)type;
    (void)def;
    (void)defaultValue;
    xmlFreeEnumeration(tree); /* the handler owns it */
    x_stop(ctx, STOP_SUBSET);
}

static void sax_notation_decl(void *ctx, const xmlChar *name,
                              const xmlChar *pid, const xmlChar *sid)
{
    (void)name;
    (void)pid;
    (void)sid;
    x_stop(ctx, STOP_SUBSET);
}

static void sax_unparsed_decl(void *ctx, const xmlChar *name,
                              const xmlChar *pid, const xmlChar *sid,
                              const xmlChar *notation)
{
    (void)name;
    (void)pid;
    (void)sid;
    (void)notation;
    x_stop(ctx, STOP_SUBSET);
}

/* Depth and element count are enforced while parsing, so a hostile
 * document never grows a big DOM (libxml2's own depth limit is 256). */
static void sax_start(void *ctx, const xmlChar *localname,
                      const xmlChar *prefix, const xmlChar *URI,
                      int nb_namespaces, const xmlChar **namespaces,
                      int nb_attributes, int nb_defaulted,
                      const xmlChar **attributes)
{
    memds_xmlsafe_t *d = x_of(ctx);

    if (++d->depth > d->max_depth) {
        x_stop(ctx, STOP_DEPTH);
        return;
    }
    if (++d->elements > d->max_nodes) {
        x_stop(ctx, STOP_NODES);
        return;
    }
    xmlSAX2StartElementNs(ctx, localname, prefix, URI, nb_namespaces,
                          namespaces, nb_attributes, nb_defaulted, attributes);
}

static void sax_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                    const xmlChar *URI)
{
    memds_xmlsafe_t *d = x_of(ctx);

    --d->depth;
    xmlSAX2EndElementNs(ctx, localname, prefix, URI);
}

static apr_status_t x_fail(memds_xmlsafe_t *x, int line, const char *msg)
{
    x->rv = APR_EINVAL;
    x->msg = msg;
    x->line = line;
    return APR_EINVAL;
}

apr_status_t memds_xmlsafe_parse(xmlDocPtr *pdoc, memds_xmlsafe_t *x,
                                 const char *buf, apr_size_t len)
{
    xmlParserCtxtPtr ctxt;
    xmlDocPtr doc;

    *pdoc = NULL;
    x->rv = APR_SUCCESS;
    x->msg = NULL;
    x->line = 0;
    x->depth = 0;
    x->elements = 0;
    x->stop = STOP_NONE;
    x->error = NULL;
    if (buf == NULL || len == 0) {
        return x_fail(x, 0, "empty document");
    }
    if (len > (apr_size_t)0x7fffffff) {
        return x_fail(x, 0, "document too large");
    }
    /* Only UTF-8: other encodings would run libxml2's converters, whose
     * errors go to the process-wide error handler instead of this context;
     * so UTF-16/UCS-4/EBCDIC input is refused here, and an encoding
     * declaration is ignored (XML_PARSE_IGNORE_ENC): the bytes must be
     * UTF-8 (an ASCII-only "ISO-8859-1" document is fine). */
    if (len >= 4) {
        xmlCharEncoding enc = xmlDetectCharEncoding((const xmlChar *)buf, 4);
        if (enc != XML_CHAR_ENCODING_NONE && enc != XML_CHAR_ENCODING_UTF8) {
            const char *name = xmlGetCharEncodingName(enc);
            return x_fail(x, 1,
                          apr_psprintf(x->p,
                                       "XML in %s is refused: it "
                                       "must be UTF-8",
                                       name ? name : "another encoding"));
        }
    }
    xmlInitParser(); /* idempotent */
    ctxt = xmlCreateMemoryParserCtxt(buf, (int)len);
    if (ctxt == NULL) {
        x_fail(x, 0, "out of memory (XML parser context)");
        x->rv = APR_ENOMEM;
        return APR_ENOMEM;
    }
    /* No DTD loading, no entity substitution, no network, no error output
     * (decision 8). Never NOENT, DTDLOAD, DTDATTR or HUGE. */
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR
                                | XML_PARSE_NOWARNING | XML_PARSE_BIG_LINES
                                | XML_PARSE_IGNORE_ENC
                                | (x->keep_cdata ? 0 : XML_PARSE_NOCDATA));
    /* Whatever process-wide defaults another part of the process set
     * (xmlSubstituteEntitiesDefault, xmlLoadExtDtdDefaultValue, ...). */
    ctxt->replaceEntities = 0;
    ctxt->loadsubset = 0;
    ctxt->validate = 0;
    ctxt->pedantic = 0;
    ctxt->keepBlanks = 1;
    ctxt->recovery = 0;
    ctxt->linenumbers = 1;
    ctxt->_private = x;
    /* ctxt->sax belongs to this context: per-context hooks, no globals. */
    ctxt->sax->ignorableWhitespace = xmlSAX2Characters;
    ctxt->sax->serror = sax_serror;
    ctxt->sax->internalSubset = sax_internal_subset;
    ctxt->sax->entityDecl = sax_entity_decl;
    ctxt->sax->elementDecl = sax_element_decl;
    ctxt->sax->attributeDecl = sax_attribute_decl;
    ctxt->sax->notationDecl = sax_notation_decl;
    ctxt->sax->unparsedEntityDecl = sax_unparsed_decl;
    ctxt->sax->startElementNs = sax_start;
    ctxt->sax->endElementNs = sax_end;

    xmlParseDocument(ctxt);
    doc = ctxt->myDoc;
    ctxt->myDoc = NULL;

    switch (x->stop) {
    case STOP_SUBSET:
        x_fail(x, x->stop_line,
               "a DOCTYPE with an internal subset (entity "
               "declarations) is refused");
        break;
    case STOP_DEPTH:
        x_fail(x, x->stop_line,
               apr_psprintf(x->p,
                            "elements nested deeper "
                            "than %d (line %d)",
                            x->max_depth, x->stop_line));
        break;
    case STOP_NODES:
        x_fail(x, x->stop_line,
               apr_psprintf(x->p,
                            "more than %lu elements "
                            "(line %d)",
                            (unsigned long)x->max_nodes, x->stop_line));
        break;
    default:
        /* Not only wellFormed: libxml2 reports some failures (a text node
         * over its 10 MB limit, undeclared entities, unbound prefixes) as
         * errors without clearing it. */
        if (!ctxt->wellFormed || x->error || doc == NULL) {
            if (x->error == NULL) {
                const xmlError *le = xmlCtxtGetLastError(ctxt);
                x->error = message_of(le, x->p);
                x->error_line = le ? le->line : 0;
            }
            x_fail(x, x->error_line,
                   apr_psprintf(x->p,
                                "malformed XML at "
                                "line %d: %s",
                                x->error_line, x->error));
            if (ctxt->errNo == XML_ERR_NO_MEMORY
                && strstr(x->error, "huge") == NULL) {
                x->rv = APR_ENOMEM;
            }
        }
        else if (doc->intSubset && doc->intSubset->children) {
            x_fail(x, 0,
                   "a DOCTYPE with an internal subset (entity "
                   "declarations) is refused");
        }
        break;
    }
    xmlFreeParserCtxt(ctxt);
    if (x->msg) {
        if (doc) {
            xmlFreeDoc(doc);
        }
        return x->rv;
    }
    *pdoc = doc;
    return APR_SUCCESS;
}
