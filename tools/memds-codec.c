/* memds-codec: read and convert SyncML messages as mod_memds sees them.
 *
 *   memds-codec decode FILE            indented XML, whatever the input encoding
 *   memds-codec encode --xml|--wbxml FILE   re-encode to stdout
 *   memds-codec check FILE             validate; exit 1 with a precise error
 *
 * FILE "-" reads standard input. The encoding is detected from the bytes.
 * Exit codes: 0 ok, 1 invalid message, 2 usage or I/O error. */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_base64.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncml/memds_msg.h"
#include "syncml/memds_xml.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: memds-codec decode FILE\n"
            "       memds-codec encode --xml|--wbxml FILE\n"
            "       memds-codec check FILE\n"
            "FILE may be - for standard input; XML or WBXML is detected.\n");
    return 2;
}

static int read_all(const char **pbuf, apr_size_t *plen, const char *path,
                    apr_pool_t *p)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    memds_buf_t b;
    char chunk[65536];
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "memds-codec: cannot open %s\n", path);
        return 2;
    }
    memds_buf_init(&b, sizeof(chunk), p);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        memds_buf_add(&b, chunk, n);
    }
    if (ferror(f)) {
        fprintf(stderr, "memds-codec: cannot read %s\n", path);
        return 2;
    }
    if (f != stdin) {
        fclose(f);
    }
    memds_buf_addc(&b, '\0');
    *pbuf = b.data;
    *plen = b.len - 1;
    return 0;
}

static void print_err(const char *path, const char *buf, apr_size_t len,
                      const memds_codec_err_t *err)
{
    const char *enc = memds_msg_sniff(buf, len) == MEMDS_ENC_WBXML ? "WBXML"
                                                                   : "XML";

    if (err->line) {
        fprintf(stderr, "%s: invalid %s at line %d: %s\n", path, enc, err->line,
                err->msg);
    }
    else if (err->offset) {
        fprintf(stderr, "%s: invalid %s at byte %lu: %s\n", path, enc,
                (unsigned long)err->offset, err->msg);
    }
    else {
        fprintf(stderr, "%s: invalid %s: %s\n", path, enc,
                err->msg ? err->msg : "unknown error");
    }
}

/* Read FILE and decode it; prints the error itself. 0, 1 or 2 as main. */
static int load(memds_msg_t **pm, const char **pbuf, apr_size_t *plen,
                const char *path, apr_pool_t *p)
{
    memds_codec_err_t err;
    int rc = read_all(pbuf, plen, path, p);

    if (rc != 0) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    if (memds_msg_decode(pm, *pbuf, *plen, MEMDS_ENC_AUTO, &err, p)
        != APR_SUCCESS) {
        print_err(path, *pbuf, *plen, &err);
        return 1;
    }
    return 0;
}

/* Opaque leaves XML cannot carry become base64 text, marked as such, so
 * that `decode` still shows the rest of the message. */
static int b64_opaque(memds_node_t *n, apr_pool_t *p)
{
    int changed = 0;
    memds_node_t *c;

    if (n->text && n->opaque) {
        memds_tree_t t;
        memds_buf_t b;
        memds_codec_err_t e;
        memds_node_t *probe = memds_node_new(memds_tag_SyncML, p);
        memds_node_add_text(probe, n->tag, n->text, n->len, p);
        t.root = probe;
        t.version = MEMDS_V12;
        t.wbxml_version = 0;
        memds_buf_init(&b, 256, p);
        if (memds_xml_encode(&b, &t, &e) != APR_SUCCESS) {
            char *enc = apr_palloc(p, apr_base64_encode_len((int)n->len) + 16);
            int l = apr_base64_encode(enc + 8, n->text, (int)n->len);
            memcpy(enc, "[base64]", 8);
            n->text = enc;
            n->len = (apr_size_t)l - 1 + 8;
            changed = 1;
        }
    }
    for (c = n->first; c; c = c->next) {
        changed |= b64_opaque(c, p);
    }
    return changed;
}

static int do_decode(const char *path, apr_pool_t *p)
{
    const char *buf;
    apr_size_t len;
    memds_msg_t *m;
    memds_tree_t *t;
    memds_codec_err_t err;
    memds_buf_t out;
    xmlDocPtr doc;
    xmlChar *pretty;
    int plen, rc;

    if ((rc = load(&m, &buf, &len, path, p)) != 0) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    t = memds_msg_to_tree(m, p);
    memds_buf_init(&out, len * 2 + 256, p);
    if (memds_xml_encode(&out, t, &err) != APR_SUCCESS) {
        if (!b64_opaque(t->root, p)) {
            print_err(path, buf, len, &err);
            return 1;
        }
        fprintf(stderr,
                "memds-codec: note: binary item data shown as [base64]\n");
        memds_buf_init(&out, len * 2 + 256, p);
        if (memds_xml_encode(&out, t, &err) != APR_SUCCESS) {
            print_err(path, buf, len, &err);
            return 1;
        }
    }
    /* Indent with libxml2: our own output, parsed without blanks. */
    doc = xmlReadMemory(out.data, (int)out.len, NULL, "UTF-8",
                        XML_PARSE_NONET | XML_PARSE_NOBLANKS);
    if (doc == NULL) {
        fwrite(out.data, 1, out.len, stdout);
        putchar('\n');
        return 0;
    }
    xmlDocDumpFormatMemoryEnc(doc, &pretty, &plen, "UTF-8", 1);
    fwrite(pretty, 1, (size_t)plen, stdout);
    xmlFree(pretty);
    xmlFreeDoc(doc);
    return 0;
}

static int do_encode(const char *path, memds_enc_e enc, apr_pool_t *p)
{
    const char *buf;
    apr_size_t len;
    memds_msg_t *m;
    memds_codec_err_t err;
    memds_buf_t out;
    int rc;

    if ((rc = load(&m, &buf, &len, path, p)) != 0) {
        return rc;
    }
    memset(&err, 0, sizeof(err));
    memds_buf_init(&out, len + 256, p);
    if (memds_msg_encode(&out, m, enc, &err, p) != APR_SUCCESS) {
        fprintf(stderr, "%s: cannot encode as %s: %s\n", path,
                enc == MEMDS_ENC_WBXML ? "WBXML" : "XML", err.msg);
        return 1;
    }
    fwrite(out.data, 1, out.len, stdout);
    return 0;
}

static int do_check(const char *path, apr_pool_t *p)
{
    const char *buf;
    apr_size_t len;
    memds_msg_t *m;
    int rc;

    if ((rc = load(&m, &buf, &len, path, p)) != 0) {
        return rc;
    }
    printf(
        "%s: OK: SyncML %s %s message, session %s, MsgID %s, %d command%s%s\n",
        path, m->hdr.verdtd,
        memds_msg_sniff(buf, len) == MEMDS_ENC_WBXML ? "WBXML" : "XML",
        m->hdr.session_id, m->hdr.msg_id, m->cmds->nelts,
        m->cmds->nelts == 1 ? "" : "s", m->final ? ", Final" : "");
    return 0;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    int rc;

    if (argc < 3) {
        return usage();
    }
    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&p, NULL);
    xmlInitParser();
    if (strcmp(argv[1], "decode") == 0 && argc == 3) {
        rc = do_decode(argv[2], p);
    }
    else if (strcmp(argv[1], "check") == 0 && argc == 3) {
        rc = do_check(argv[2], p);
    }
    else if (strcmp(argv[1], "encode") == 0 && argc == 4
             && (strcmp(argv[2], "--xml") == 0
                 || strcmp(argv[2], "--wbxml") == 0)) {
        rc = do_encode(argv[3],
                       strcmp(argv[2], "--xml") == 0 ? MEMDS_ENC_XML
                                                     : MEMDS_ENC_WBXML,
                       p);
    }
    else {
        rc = usage();
    }
    apr_pool_destroy(p);
    return rc;
}
