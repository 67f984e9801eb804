/* memds_xml.c: the XML wire encoding of SyncML (memds_tree.h).
 *
 * Decoding is libxml2 (DOM) in its hardened configuration (DESIGN.md
 * decision 8), followed by a conversion of the DOM into memds_node_t.
 * Encoding writes the tree directly; the same code run in count-only mode
 * is memds_xml_node_size(), so the size and the bytes can never disagree.
 *
 * Choices that both directions rely on (and that make decode(encode(t))
 * reproduce t and encode(decode(x)) a canonical form):
 *
 * - Text of a non-Data leaf is kept as the parser delivers it (no trimming,
 *   memds_node_str() trims), except that whitespace-only text is dropped:
 *   <X></X>, <X/> and <X> </X> all give text == NULL.
 * - <Data> text is payload: never trimmed, whitespace-only kept. An empty
 *   <Data/> or <Data></Data> (the DOM cannot tell them apart) gives text ""
 *   (non-NULL, len 0). The encoder writes text == NULL as <X/> and
 *   text != NULL with len 0 as <X></X>; both decode to the same meaning.
 * - Data that holds elements (a DevInf root, MetInf elements such as an
 *   Anchor in a Status Item) has them as child nodes and text == NULL.
 * - Namespaces: the root gets xmlns="SYNCML:SYNCML1.x", every MetInf element
 *   whose parent is not MetInf xmlns="syncml:metinf", a DevInf root
 *   xmlns="syncml:devinf"; descendants inherit. The decoder reads them back
 *   (and is lenient about MetInf without namespace, see resolve()).
 */
#include "syncml/memds_xml.h"
#include "util/memds_util.h"
#include "util/memds_xmlsafe.h"

#include <apr_strings.h>
#include <libxml/SAX2.h>
#include <libxml/encoding.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <string.h>

/** Largest XML document the decoder looks at (before parsing). */
#define MEMDS_XML_MAX_INPUT ((apr_size_t)64 * 1024 * 1024)

#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
#define NS_METINF "syncml:metinf"
#define NS_DEVINF "syncml:devinf"
#define DEVINF_WBXML "application/vnd.syncml-devinf+wbxml"
#define DEVINF_XML "application/vnd.syncml-devinf+xml"

/* Class of an XML namespace. */
enum { NSC_NONE, NSC_SYNCML, NSC_METINF, NSC_DEVINF, NSC_OTHER };

/* Why the SAX hooks stopped the parser. */

/* ------------------------------------------------------------- helpers */

static int ascii_caseeq(const char *a, const char *b)
{
    for (;; ++a, ++b) {
        int ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca >= 'A' && ca <= 'Z') {
            ca += 'a' - 'A';
        }
        if (cb >= 'A' && cb <= 'Z') {
            cb += 'a' - 'A';
        }
        if (ca != cb) {
            return 0;
        }
        if (ca == 0) {
            return 1;
        }
    }
}

static int is_xml_ws(const char *s)
{
    for (; *s; ++s) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
            return 0;
        }
    }
    return 1;
}

/** Namespace class of an element; *ver gets the SyncML version for
 *  NSC_SYNCML. */
static int ns_class(const xmlNode *e, memds_ver_e *ver)
{
    const char *h;

    if (e == NULL || e->type != XML_ELEMENT_NODE || e->ns == NULL
        || e->ns->href == NULL || e->ns->href[0] == '\0') {
        return NSC_NONE;
    }
    h = (const char *)e->ns->href;
    if (ascii_caseeq(h, NS_METINF)) {
        return NSC_METINF;
    }
    if (ascii_caseeq(h, NS_DEVINF)) {
        return NSC_DEVINF;
    }
    if (ascii_caseeq(h, "syncml:syncml1.0")
        || ascii_caseeq(h, "syncml:syncml1.1")
        || ascii_caseeq(h, "syncml:syncml1.2")) {
        if (ver) {
            *ver = h[15] == '0'   ? MEMDS_V10
                   : h[15] == '1' ? MEMDS_V11
                                  : MEMDS_V12;
        }
        return NSC_SYNCML;
    }
    return NSC_OTHER;
}

static const memds_tag_t *tag_named(memds_ts_e ts, const xmlNode *e)
{
    const char *name = (const char *)e->name;

    return memds_tag_by_name(ts, name, strlen(name));
}

static const char *ts_name(int ts)
{
    return ts == MEMDS_TS_METINF   ? "MetInf"
           : ts == MEMDS_TS_DEVINF ? "DevInf"
                                   : "SyncML";
}

/* ------------------------------------------------------------- decoder */

typedef struct dec_t {
    apr_pool_t *p;
    memds_ver_e version;
    int devinf_root; /* a stored DevInf document (memds_xml_decode_devinf) */
    /* set on failure */
    const char *msg;
    int line;
} dec_t;

static apr_status_t dec_fail(dec_t *d, int line, const char *msg)
{
    d->msg = msg;
    d->line = line;
    return APR_EINVAL;
}

static int line_of(const xmlNode *n)
{
    long l = xmlGetLineNo((xmlNodePtr)n);

    return l > 0 && l < 0x7fffffffL ? (int)l : 0;
}

/**
 * The tag of element e, child of tree node pn (NULL for the root).
 * Explicit MetInf / DevInf namespaces select those tables. An element in
 * the SyncML namespace or none inherits its parent's tag space (children
 * of DevInf are DevInf, of MetInf MetInf), with the leniency real parsers
 * have: children of <Meta> are MetInf first (libsynthesis puts the
 * namespace on each, others on <Meta> or nowhere), and children of <Data>
 * are MetInf (an Anchor in a Status Item), a DevInf root or DevInf
 * <Property> elements (a filter's Field, docs/codec.md). An element
 * that declares the SyncML namespace (or none) under a MetInf/DevInf one
 * switches back to SyncML explicitly (that is what the encoder writes for
 * such a tree).
 */
static const memds_tag_t *resolve(dec_t *d, const xmlNode *e,
                                  const memds_node_t *pn, apr_status_t *rv)
{
    const memds_tag_t *t = NULL;
    int cls = ns_class(e, NULL), pcls = ns_class(e->parent, NULL);

    *rv = APR_SUCCESS;
    switch (cls) {
    case NSC_METINF:
        t = tag_named(MEMDS_TS_METINF, e);
        if (t == NULL && pn && pn->tag->ts == MEMDS_TS_SYNCML
            && strcmp((const char *)e->name, "Meta") == 0) {
            /* <Meta xmlns='syncml:metinf'> declares it for its children */
            t = tag_named(MEMDS_TS_SYNCML, e);
        }
        break;
    case NSC_DEVINF: t = tag_named(MEMDS_TS_DEVINF, e); break;
    case NSC_OTHER:
        *rv = dec_fail(
            d, line_of(e),
            apr_psprintf(d->p,
                         "element <%s> in unknown namespace '%s' (line %d)",
                         (const char *)e->name, (const char *)e->ns->href,
                         line_of(e)));
        return NULL;
    default: /* SyncML namespace or none */
        if (pn == NULL || pcls == NSC_METINF || pcls == NSC_DEVINF) {
            t = tag_named(MEMDS_TS_SYNCML, e);
        }
        else if (pn->tag->ts == MEMDS_TS_DEVINF) {
            t = tag_named(MEMDS_TS_DEVINF, e);
        }
        else if (pn->tag->ts == MEMDS_TS_METINF) {
            t = tag_named(MEMDS_TS_METINF, e);
        }
        else if (strcmp(pn->tag->name, "Meta") == 0) {
            t = tag_named(MEMDS_TS_METINF, e);
            if (t == NULL) {
                t = tag_named(MEMDS_TS_SYNCML, e);
            }
        }
        else if (pn->tag->flags & MEMDS_TAGF_DATA) {
            t = tag_named(MEMDS_TS_METINF, e);
            if (t == NULL
                && (strcmp((const char *)e->name, "DevInf") == 0
                    || strcmp((const char *)e->name, "Property") == 0)) {
                /* a DevInf root, or a filter Field's <Property> */
                t = tag_named(MEMDS_TS_DEVINF, e);
            }
        }
        else {
            t = tag_named(MEMDS_TS_SYNCML, e);
        }
        break;
    }
    if (t == NULL) {
        *rv = dec_fail(d, line_of(e),
                       apr_psprintf(d->p,
                                    "unknown element <%s> in <%s> (line %d)",
                                    (const char *)e->name,
                                    pn ? pn->tag->name : "(document)",
                                    line_of(e)));
        return NULL;
    }
    /* Tag spaces must nest the way both wire encodings can carry them. */
    if (pn && pn->tag->ts == MEMDS_TS_DEVINF && t->ts != MEMDS_TS_DEVINF) {
        *rv = dec_fail(
            d, line_of(e),
            apr_psprintf(d->p, "%s element <%s> inside DevInf <%s> (line %d)",
                         ts_name(t->ts), t->name, pn->tag->name, line_of(e)));
        return NULL;
    }
    if (t->ts == MEMDS_TS_DEVINF
        && (pn == NULL || pn->tag->ts != MEMDS_TS_DEVINF)
        && ((t != memds_tag_DevInf && strcmp(t->name, "Property") != 0)
            || !(pn && (pn->tag->flags & MEMDS_TAGF_DATA)))
        && !(d->devinf_root && pn == NULL && t == memds_tag_DevInf)) {
        *rv = dec_fail(
            d, line_of(e),
            apr_psprintf(d->p,
                         "DevInf element <%s> in <%s> (line %d): DevInf must "
                         "come as one <DevInf> (or <Property> elements) "
                         "inside <Data>",
                         t->name, pn ? pn->tag->name : "(document)",
                         line_of(e)));
        return NULL;
    }
    if ((t->flags & MEMDS_TAGF_V12) && d->version != MEMDS_V12) {
        *rv = dec_fail(
            d, line_of(e),
            apr_psprintf(d->p,
                         "element <%s> (line %d) exists only in SyncML 1.2, "
                         "this message is SyncML 1.%d",
                         t->name, line_of(e), (int)d->version - 10));
        return NULL;
    }
    return t;
}

/** Convert element e (and its subtree) into a new node under pn. The SAX
 *  hooks limited the depth to MEMDS_CODEC_MAX_DEPTH; depth guards it
 *  again so this recursion is bounded whatever happens. */
static apr_status_t convert(dec_t *d, memds_node_t **pnode, memds_node_t *pn,
                            const xmlNode *e, int depth)
{
    const memds_tag_t *t;
    memds_node_t *n;
    const xmlNode *c, *text_at = NULL;
    apr_size_t total = 0;
    int has_el = 0;
    apr_status_t rv;

    if (depth > MEMDS_CODEC_MAX_DEPTH) {
        return dec_fail(d, line_of(e),
                        apr_psprintf(d->p,
                                     "elements nested deeper than %d (line %d)",
                                     MEMDS_CODEC_MAX_DEPTH, line_of(e)));
    }
    t = resolve(d, e, pn, &rv);
    if (t == NULL) {
        return rv;
    }
    if (e->properties) {
        return dec_fail(
            d, line_of(e),
            apr_psprintf(d->p,
                         "attribute '%s' on <%s> (line %d): SyncML has no "
                         "attributes",
                         (const char *)e->properties->name, t->name,
                         line_of(e)));
    }
    for (c = e->children; c; c = c->next) {
        switch (c->type) {
        case XML_ELEMENT_NODE: has_el = 1; break;
        case XML_TEXT_NODE:
        case XML_CDATA_SECTION_NODE:
            if (c->content) {
                total += strlen((const char *)c->content);
                if (text_at == NULL && !is_xml_ws((const char *)c->content)) {
                    text_at = c;
                }
            }
            break;
        case XML_COMMENT_NODE:
        case XML_PI_NODE: break;
        case XML_ENTITY_REF_NODE:
            return dec_fail(
                d, line_of(c),
                apr_psprintf(d->p,
                             "entity reference &%s; in <%s> (line %d) is "
                             "refused",
                             (const char *)c->name, t->name, line_of(c)));
        default:
            return dec_fail(
                d, line_of(c),
                apr_psprintf(d->p,
                             "unexpected XML node (type %d) in <%s> (line %d)",
                             (int)c->type, t->name, line_of(c)));
        }
    }
    if ((t->flags & MEMDS_TAGF_EMPTY) && (has_el || text_at)) {
        return dec_fail(
            d, line_of(e),
            apr_psprintf(d->p,
                         "<%s> (line %d) is an empty flag element but has "
                         "content",
                         t->name, line_of(e)));
    }
    if (has_el && text_at) {
        return dec_fail(d, line_of(text_at),
                        apr_psprintf(d->p, "text inside <%s> (line %d)",
                                     t->name, line_of(text_at)));
    }
    n = memds_node_new(t, d->p);
    n->parent = pn;
    if (has_el) {
        for (c = e->children; c; c = c->next) {
            memds_node_t *child;
            if (c->type != XML_ELEMENT_NODE) {
                continue;
            }
            rv = convert(d, &child, n, c, depth + 1);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            memds_node_add(n, child);
        }
    }
    else if ((t->flags & MEMDS_TAGF_DATA) || text_at) {
        /* the exact concatenation of text and CDATA pieces */
        char *s = apr_palloc(d->p, total + 1);
        apr_size_t off = 0;
        for (c = e->children; c; c = c->next) {
            if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
                && c->content) {
                apr_size_t l = strlen((const char *)c->content);
                memcpy(s + off, c->content, l);
                off += l;
            }
        }
        s[off] = '\0';
        n->text = s;
        n->len = off;
    }
    *pnode = n;
    return APR_SUCCESS;
}

/** Version of a document without namespace: SyncHdr/VerDTD. Unknown or
 *  missing: 1.2 (the engine's VerDTD/VerProto check answers the client). */
static memds_ver_e version_from_verdtd(const xmlNode *root)
{
    const xmlNode *h, *v, *c;
    char buf[8];
    apr_size_t n = 0;
    const char *s;

    for (h = root->children; h; h = h->next) {
        if (h->type == XML_ELEMENT_NODE
            && strcmp((const char *)h->name, "SyncHdr") == 0) {
            break;
        }
    }
    for (v = h ? h->children : NULL; v; v = v->next) {
        if (v->type == XML_ELEMENT_NODE
            && strcmp((const char *)v->name, "VerDTD") == 0) {
            break;
        }
    }
    for (c = v ? v->children : NULL; c; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE)
            && c->content) {
            for (s = (const char *)c->content; *s; ++s) {
                if (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
                    continue;
                }
                if (n + 1 >= sizeof(buf)) {
                    return MEMDS_V12;
                }
                buf[n++] = *s;
            }
        }
    }
    buf[n] = '\0';
    if (strcmp(buf, "1.0") == 0) {
        return MEMDS_V10;
    }
    if (strcmp(buf, "1.1") == 0) {
        return MEMDS_V11;
    }
    return MEMDS_V12;
}

/** Checks the root and converts the document. */
static apr_status_t dec_doc(dec_t *d, memds_tree_t **ptree, xmlDocPtr doc)
{
    const xmlNode *root = xmlDocGetRootElement(doc);
    memds_tree_t *tree;
    memds_node_t *n;
    memds_ver_e ver = MEMDS_V12;
    int cls;
    apr_status_t rv;

    if (doc->intSubset && doc->intSubset->children) {
        return dec_fail(d, 0,
                        "a DOCTYPE with an internal subset (entity "
                        "declarations) is refused");
    }
    if (root == NULL) {
        return dec_fail(d, 0, "no root element");
    }
    if (d->devinf_root) {
        if (strcmp((const char *)root->name, "DevInf") != 0
            || ns_class(root, NULL) != NSC_DEVINF) {
            return dec_fail(d, line_of(root), "not a DevInf document");
        }
    }
    else if (strcmp((const char *)root->name, "SyncML") != 0) {
        return dec_fail(d, line_of(root),
                        apr_psprintf(d->p, "root element is <%s>, not <SyncML>",
                                     (const char *)root->name));
    }
    cls = d->devinf_root ? NSC_SYNCML : ns_class(root, &ver);
    if (cls == NSC_NONE) {
        ver = version_from_verdtd(root);
    }
    else if (cls != NSC_SYNCML) {
        return dec_fail(d, line_of(root),
                        apr_psprintf(d->p,
                                     "root <SyncML> is in namespace '%s', not "
                                     "SYNCML:SYNCML1.0, 1.1 or 1.2",
                                     (const char *)root->ns->href));
    }
    d->version = ver;
    rv = convert(d, &n, NULL, root, 1);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    tree = apr_pcalloc(d->p, sizeof(*tree));
    tree->root = n;
    tree->version = ver;
    tree->wbxml_version = 0;
    *ptree = tree;
    return APR_SUCCESS;
}

static apr_status_t xml_decode(memds_tree_t **ptree, const char *buf,
                               apr_size_t len, int devinf_root,
                               memds_codec_err_t *err, apr_pool_t *p)
{
    memds_codec_err_t dummy;
    memds_xmlsafe_t x;
    xmlDocPtr doc = NULL;
    dec_t d;
    apr_status_t rv = APR_EINVAL;

    memset(&d, 0, sizeof(d));
    d.p = p;
    d.devinf_root = devinf_root;
    if (err == NULL) {
        err = &dummy;
    }
    /* The cap comes before libxml2 sees a byte (decision 8). */
    if (len > MEMDS_XML_MAX_INPUT) {
        d.msg = apr_psprintf(p,
                             "XML message of %" APR_SIZE_T_FMT " bytes "
                             "exceeds the decoder's limit of %" APR_SIZE_T_FMT
                             " bytes (64 MiB)",
                             len, MEMDS_XML_MAX_INPUT);
        goto done;
    }
    memset(&x, 0, sizeof(x));
    x.p = p;
    x.max_depth = MEMDS_CODEC_MAX_DEPTH;
    x.max_nodes = MEMDS_CODEC_MAX_NODES;
    x.keep_cdata = 0; /* Data is the join of its text and CDATA pieces */
    rv = memds_xmlsafe_parse(&doc, &x, buf, len);
    if (rv != APR_SUCCESS) {
        d.msg = x.msg;
        d.line = x.line;
        goto done;
    }
    rv = dec_doc(&d, ptree, doc);

done:
    if (doc) {
        xmlFreeDoc(doc);
    }
    if (rv != APR_SUCCESS) {
        err->rv = rv;
        err->msg = d.msg ? d.msg : "XML decoding failed";
        err->offset = 0;
        err->line = d.line;
    }
    return rv;
}

apr_status_t memds_xml_decode(memds_tree_t **ptree, const char *buf,
                              apr_size_t len, memds_codec_err_t *err,
                              apr_pool_t *p)
{
    return xml_decode(ptree, buf, len, 0, err, p);
}

apr_status_t memds_xml_decode_devinf(memds_tree_t **ptree, const char *buf,
                                     apr_size_t len, memds_codec_err_t *err,
                                     apr_pool_t *p)
{
    return xml_decode(ptree, buf, len, 1, err, p);
}

/* ------------------------------------------------------------- encoder */

typedef struct enc_t {
    memds_buf_t *out; /**< NULL: count only (memds_xml_node_size) */
    apr_size_t n;     /**< bytes written or counted */
    const char *ns;   /**< SyncML namespace of the document */
    int version;      /**< 10..12; 0 when sizing (no checks) */
    memds_codec_err_t *err;
} enc_t;

static void put(enc_t *e, const char *s, apr_size_t len)
{
    if (e->out) {
        memds_buf_add(e->out, s, len);
    }
    e->n += len;
}

#define PUTS(e, lit) put((e), (lit), sizeof(lit) - 1)

static apr_status_t enc_fail(enc_t *e, const char *msg)
{
    if (e->out == NULL) {
        return APR_SUCCESS; /* sizing never fails (see memds_xml_node_size) */
    }
    e->err->rv = APR_EINVAL;
    e->err->msg = msg;
    e->err->offset = 0;
    e->err->line = 0;
    return APR_EINVAL;
}

static apr_status_t bad_text(enc_t *e, const memds_node_t *n, apr_size_t off,
                             const char *what)
{
    apr_pool_t *p = e->out ? e->out->pool : NULL;

    if (p == NULL) {
        return enc_fail(e, NULL);
    }
    if (n->tag->flags & MEMDS_TAGF_DATA) {
        return enc_fail(e, apr_psprintf(p,
                                        "item data of <%s> contains %s at "
                                        "offset %" APR_SIZE_T_FMT
                                        ", which XML cannot carry; "
                                        "send it base64 (Format b64)",
                                        n->tag->name, what, off));
    }
    return enc_fail(
        e, apr_psprintf(p,
                        "text of <%s> contains %s at offset %" APR_SIZE_T_FMT
                        ", which XML cannot carry",
                        n->tag->name, what, off));
}

/** Escaped text: & < > as entities, CR as &#13; (a parser's end-of-line
 *  handling would turn a raw CR into LF), TAB and LF raw. Other C0
 *  controls, NUL, invalid UTF-8 and U+FFFE/U+FFFF fail (when sizing they
 *  are counted as if copied). */
static apr_status_t put_text(enc_t *e, const memds_node_t *n, const char *text,
                             apr_size_t len)
{
    const unsigned char *b = (const unsigned char *)text, *s = b,
                        *end = b + len, *run = b;
    apr_status_t rv;

    while (s < end) {
        unsigned c = *s, cp;
        const char *rep;
        apr_size_t k;

        if (c >= 0x80) {
            k = memds_utf8_seq(s, end, &cp);
            if (k == 0) {
                if (e->out) {
                    char what[48];
                    apr_snprintf(what, sizeof(what),
                                 "invalid UTF-8 (byte 0x%02X)", c);
                    return bad_text(e, n, (apr_size_t)(s - b), what);
                }
                k = 1;
            }
            else if (cp == 0xFFFE || cp == 0xFFFF) {
                rv = bad_text(e, n, (apr_size_t)(s - b),
                              cp == 0xFFFE ? "U+FFFE" : "U+FFFF");
                if (rv != APR_SUCCESS) {
                    return rv;
                }
            }
            s += k;
            continue;
        }
        if ((c >= 0x20 && c != '&' && c != '<' && c != '>') || c == '\t'
            || c == '\n') {
            ++s;
            continue;
        }
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '\r': rep = "&#13;"; break;
        default: {
            char what[16];
            apr_snprintf(what, sizeof(what), "byte 0x%02X", c);
            rv = bad_text(e, n, (apr_size_t)(s - b), what);
            if (rv != APR_SUCCESS) {
                return rv;
            }
            ++s;
            continue;
        }
        }
        put(e, (const char *)run, (apr_size_t)(s - run));
        put(e, rep, strlen(rep));
        run = ++s;
    }
    put(e, (const char *)run, (apr_size_t)(s - run));
    return APR_SUCCESS;
}

/** Writes element n: the whole element when it has no children, else its
 *  start tag. The namespace declaration depends on its parent only. */
static apr_status_t put_start(enc_t *e, const memds_node_t *n)
{
    const memds_tag_t *t = n->tag;
    const memds_node_t *par = n->parent;
    apr_size_t nl;

    if (t == NULL || t->name == NULL) {
        /* only hand-built trees can do this; sizing counts nothing */
        return e->out ? enc_fail(e, "a node without a tag") : APR_EGENERAL;
    }
    nl = strlen(t->name);
    if (e->version && (t->flags & MEMDS_TAGF_V12) && e->version != MEMDS_V12) {
        return enc_fail(e,
                        apr_psprintf(e->out->pool,
                                     "<%s> exists only in "
                                     "SyncML 1.2, this message is SyncML 1.%d",
                                     t->name, e->version - 10));
    }
    /* (elements new in 1.1 -- MaxObjSize, MoreData, NumberOfChanges -- in
     * a 1.0 tree are written as decoded: both decoders take them from
     * lenient 1.0 clients, so a decoded tree always encodes again; the
     * engine never puts them into its answers to a 1.0 device) */
    PUTS(e, "<");
    put(e, t->name, nl);
    if (par == NULL || par->tag == NULL || par->tag->ts != t->ts) {
        switch (t->ts) {
        case MEMDS_TS_METINF: PUTS(e, " xmlns=\"" NS_METINF "\""); break;
        case MEMDS_TS_DEVINF: PUTS(e, " xmlns=\"" NS_DEVINF "\""); break;
        default:
            PUTS(e, " xmlns=\"");
            put(e, e->ns, strlen(e->ns));
            PUTS(e, "\"");
            break;
        }
    }
    if (n->first) {
        if (e->out && n->text && n->len) {
            return enc_fail(e, apr_psprintf(e->out->pool,
                                            "<%s> has both text "
                                            "and child elements",
                                            t->name));
        }
        if (e->out && (t->flags & MEMDS_TAGF_EMPTY)) {
            return enc_fail(e, apr_psprintf(e->out->pool,
                                            "<%s> is an empty "
                                            "flag element but has children",
                                            t->name));
        }
        PUTS(e, ">");
        return APR_SUCCESS;
    }
    if (n->text == NULL || ((t->flags & MEMDS_TAGF_EMPTY) && n->len == 0)) {
        PUTS(e, "/>");
        return APR_SUCCESS;
    }
    if (e->out && (t->flags & MEMDS_TAGF_EMPTY)) {
        return enc_fail(e, apr_psprintf(e->out->pool,
                                        "<%s> is an empty flag "
                                        "element but has text",
                                        t->name));
    }
    PUTS(e, ">");
    if (t->ts == MEMDS_TS_METINF && strcmp(t->name, "Type") == 0
        && n->len == sizeof(DEVINF_WBXML) - 1
        && memcmp(n->text, DEVINF_WBXML, n->len) == 0) {
        PUTS(e, DEVINF_XML); /* the XML form of the DevInf type */
    }
    else {
        apr_status_t rv = put_text(e, n, n->text, n->len);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    PUTS(e, "</");
    put(e, t->name, nl);
    PUTS(e, ">");
    return APR_SUCCESS;
}

static void put_end(enc_t *e, const memds_node_t *n)
{
    PUTS(e, "</");
    put(e, n->tag->name, strlen(n->tag->name));
    PUTS(e, ">");
}

/** Element top and its subtree, in document order. Iterative (parent
 *  pointers), so the encoder has no recursion depth whatever the tree. */
static apr_status_t put_tree(enc_t *e, const memds_node_t *top)
{
    const memds_node_t *n = top;
    apr_status_t rv;

    for (;;) {
        rv = put_start(e, n);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (n->first) {
            n = n->first;
            continue;
        }
        while (n != top && n->next == NULL) {
            n = n->parent;
            put_end(e, n);
        }
        if (n == top) {
            return APR_SUCCESS;
        }
        n = n->next;
    }
}

apr_status_t memds_xml_encode(memds_buf_t *out, const memds_tree_t *tree,
                              memds_codec_err_t *err)
{
    memds_codec_err_t dummy;
    apr_size_t start = out->len;
    enc_t e;
    apr_status_t rv;

    memset(&e, 0, sizeof(e));
    e.out = out;
    e.err = err ? err : &dummy;
    switch (tree ? tree->version : 0) {
    case MEMDS_V10: e.ns = "SYNCML:SYNCML1.0"; break;
    case MEMDS_V11: e.ns = "SYNCML:SYNCML1.1"; break;
    case MEMDS_V12: e.ns = "SYNCML:SYNCML1.2"; break;
    default: return enc_fail(&e, "no tree or unknown SyncML version");
    }
    if (tree->root == NULL) {
        return enc_fail(&e, "no root element");
    }
    e.version = tree->version;
    PUTS(&e, XML_DECL);
    rv = put_tree(&e, tree->root);
    if (rv != APR_SUCCESS) {
        out->len = start; /* nothing written on failure */
    }
    return rv;
}

apr_size_t memds_xml_node_size(const memds_node_t *n)
{
    enc_t e;

    /* Count-only run of the encoder. The three SyncML namespaces have the
     * same length, so the size does not depend on the tree's version.
     * Content the encoder refuses is counted as if it were copied. */
    memset(&e, 0, sizeof(e));
    e.ns = "SYNCML:SYNCML1.2";
    if (n == NULL) {
        return 0;
    }
    put_tree(&e, n);
    return e.n;
}
