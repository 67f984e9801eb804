/* memds-codec: read and convert SyncML messages as mod_memds sees them.
 *
 *   memds-codec decode FILE            indented XML, whatever the input encoding
 *   memds-codec encode --xml|--wbxml FILE   re-encode to stdout
 *   memds-codec check FILE             validate; exit 1 with a precise error
 *   memds-codec san-decode [--password PW] [--nonce N|--nonce-b64 B] FILE
 *                                      a Server Alerted Notification, field
 *                                      by field (SAN 1.2 or the legacy 1.1
 *                                      form); with --password the digest is
 *                                      checked
 *   memds-codec san-build --server-id ID [--password PW] [--nonce N|
 *       --nonce-b64 B] [--session S] [--ui 0..3] [--initiator user|server]
 *       {--alert 206..210 [--type T] --uri URI}... [--legacy [--device D]
 *       [--xml]] > FILE                a SAN 1.2 package (or the legacy form)
 *
 * FILE "-" reads standard input. The encoding is detected from the bytes.
 * Exit codes: 0 ok, 1 invalid message, 2 usage or I/O error. */
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_base64.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncml/memds_msg.h"
#include "syncml/memds_san.h"
#include "syncml/memds_xml.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: memds-codec decode FILE\n"
            "       memds-codec encode --xml|--wbxml FILE\n"
            "       memds-codec check FILE\n"
            "       memds-codec san-decode [--password PW] [--nonce N | "
            "--nonce-b64 B64] FILE\n"
            "       memds-codec san-build --server-id ID [--password PW] "
            "[--nonce N | --nonce-b64 B64]\n"
            "           [--session 0..65535] [--ui 0..3] [--initiator "
            "user|server]\n"
            "           --alert 206..210 [--type MIME|CODE] --uri URI "
            "[--alert ...]\n"
            "           [--legacy [--device DEVID] [--xml]] > FILE\n"
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

/* ------------------------------------------------------------------ SAN */

/* s with bytes other than printable ASCII as \xNN, in double quotes. */
static const char *esc(const char *s, apr_pool_t *p)
{
    memds_buf_t b;

    memds_buf_init(&b, strlen(s) + 3, p);
    memds_buf_addc(&b, '"');
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
            memds_buf_addstr(&b, apr_psprintf(p, "\\x%02x", c));
        }
        else {
            memds_buf_addc(&b, (char)c);
        }
    }
    memds_buf_addc(&b, '"');
    memds_buf_addc(&b, '\0');
    return b.data;
}

static const char *sync_type_name(int t)
{
    static const char *const names[] = { "two-way", "one-way from client",
                                         "refresh from client",
                                         "one-way from server",
                                         "refresh from server" };

    return t >= 206 && t <= 210 ? names[t - 206] : "?";
}

static void print_syncs(const memds_san_t *san, apr_pool_t *p)
{
    int i;

    for (i = 0; san->syncs && i < san->syncs->nelts; ++i) {
        const memds_san_sync_t *s = &APR_ARRAY_IDX(san->syncs, i,
                                                   memds_san_sync_t);
        printf("sync %-2d      %d (%s), content-type 0x%06lx", i + 1,
               s->sync_type, sync_type_name(s->sync_type),
               (unsigned long)s->content_type);
        if (s->type) {
            printf(" (%s)", esc(s->type, p));
        }
        printf(", server URI %s\n", esc(s->uri, p));
    }
}

/* The options both SAN commands read for the digest: --password,
 * --nonce, --nonce-b64. 1 when argv[*i] was one (and consumed), 0 when
 * not, -1 on a bad value. */
typedef struct {
    const char *pw, *nonce;
    apr_size_t nonce_len;
} san_secret_t;

static int secret_opt(san_secret_t *sec, int argc, const char *const *argv,
                      int *i, apr_pool_t *p)
{
    const char *o = argv[*i];

    if (*i + 1 >= argc) {
        return 0;
    }
    if (strcmp(o, "--password") == 0) {
        sec->pw = argv[++*i];
    }
    else if (strcmp(o, "--nonce") == 0) {
        sec->nonce = argv[++*i];
        sec->nonce_len = strlen(sec->nonce);
    }
    else if (strcmp(o, "--nonce-b64") == 0) {
        const char *b = argv[++*i];
        char *d = apr_palloc(p, (apr_size_t)apr_base64_decode_len(b) + 1);
        int n = apr_base64_decode(d, b);
        if (n < 0 || (apr_size_t)apr_base64_encode_len(n) != strlen(b) + 1) {
            fprintf(stderr, "memds-codec: --nonce-b64 %s is not base64\n", b);
            return -1;
        }
        sec->nonce = d;
        sec->nonce_len = (apr_size_t)n;
    }
    else {
        return 0;
    }
    return 1;
}

static int san_decode_legacy(const char *path, const memds_msg_t *m,
                             apr_size_t len, apr_pool_t *p)
{
    memds_san_t *san;
    const char *why = NULL;

    if (memds_san_parse_legacy(&san, m, &why, p) != APR_SUCCESS) {
        fprintf(stderr, "%s: a SyncML message, but not a legacy SAN: %s\n",
                path, why);
        return 1;
    }
    printf("legacy SAN (SyncML %s message), %lu bytes\n", m->hdr.verdtd,
           (unsigned long)len);
    printf("session-id   %u\n", san->session_id);
    printf("server-id    %s\n", esc(san->server_id, p));
    printf("device       %s\n", m->hdr.target && m->hdr.target->uri
                                    ? esc(m->hdr.target->uri, p)
                                    : "(none)");
    printf("num-syncs    %d\n", san->syncs->nelts);
    print_syncs(san, p);
    return 0;
}

static int do_san_decode(int argc, const char *const *argv, apr_pool_t *p)
{
    static const char *const ui[] = { "not specified", "background",
                                      "informative", "user interaction" };
    san_secret_t sec = { NULL, NULL, 0 };
    const char *path = NULL, *buf, *why = NULL;
    apr_size_t len, k;
    memds_msg_t *m;
    memds_san_t *san;
    memds_codec_err_t err;
    int i, rc;

    for (i = 2; i < argc; ++i) {
        if ((rc = secret_opt(&sec, argc, argv, &i, p)) < 0) {
            return 2;
        }
        if (rc == 0) {
            if (path != NULL || (argv[i][0] == '-' && argv[i][1] != '\0')) {
                return usage();
            }
            path = argv[i];
        }
    }
    if (path == NULL || (sec.nonce && !sec.pw)) {
        return usage();
    }
    if ((rc = read_all(&buf, &len, path, p)) != 0) {
        return rc;
    }
    /* the legacy form is a whole SyncML message; a SAN 1.2 never is one */
    memset(&err, 0, sizeof(err));
    if (memds_msg_decode(&m, buf, len, MEMDS_ENC_AUTO, &err, p)
        == APR_SUCCESS) {
        return san_decode_legacy(path, m, len, p);
    }
    if (memds_san_parse(&san, buf, len, sec.pw, sec.nonce, sec.nonce_len, &why,
                        p)
        != APR_SUCCESS) {
        fprintf(stderr, "%s: invalid SAN: %s\n", path, why);
        return 1;
    }
    printf("SAN 1.2, %lu bytes\n", (unsigned long)len);
    printf("digest       ");
    for (k = 0; k < MEMDS_SAN_DIGEST_LEN; ++k) {
        printf("%02x", san->digest[k]);
    }
    printf(sec.pw ? " (matches the password and nonce given)\n"
                  : " (not checked: no --password)\n");
    printf("version      %d (%d.%d)\n", san->version, san->version / 10,
           san->version % 10);
    printf("ui-mode      %d (%s)\n", san->ui_mode, ui[san->ui_mode]);
    printf("initiator    %d (%s)\n", san->initiator,
           san->initiator ? "server" : "user");
    printf("session-id   %u\n", san->session_id);
    printf("server-id    %s\n", esc(san->server_id, p));
    printf("num-syncs    %d%s\n", san->syncs->nelts,
           san->syncs->nelts ? "" : " (all datastores)");
    print_syncs(san, p);
    if (san->vendor_len) {
        printf("vendor       %lu bytes:", (unsigned long)san->vendor_len);
        for (k = 0; k < san->vendor_len; ++k) {
            printf(" %02x", (unsigned char)san->vendor[k]);
        }
        printf("\n");
    }
    return 0;
}

/* A whole decimal or 0x hex number 0..max of an option; -1 otherwise. */
static long opt_number(const char *opt, const char *s, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 0);
    if (errno || end == s || *end || v < 0 || v > max) {
        fprintf(stderr, "memds-codec: %s %s: not a number 0..%ld\n", opt, s,
                max);
        return -1;
    }
    return v;
}

/* --type MIME or CODE into the sync entry s. */
static int san_type_opt(memds_san_sync_t *s, const char *v, int legacy)
{
    long code;

    if (v[0] >= '0' && v[0] <= '9') {
        if ((code = opt_number("--type", v, 0xFFFFFF)) < 0) {
            return 2;
        }
        s->content_type = (apr_uint32_t)code;
        return 0;
    }
    s->type = v;
    s->content_type = memds_san_ct_code(v);
    if (s->content_type == 0 && !legacy) {
        fprintf(stderr,
                "memds-codec: --type %s has no SAN 1.2 code known here: give "
                "the code (e.g. 0x000306)\n",
                v);
        return 2;
    }
    return 0;
}

static int do_san_build(int argc, const char *const *argv, apr_pool_t *p)
{
    san_secret_t sec = { NULL, NULL, 0 };
    memds_san_t *san = memds_san_make(NULL, p);
    memds_san_sync_t *cur = NULL;
    const char *device = NULL, *why = NULL;
    memds_buf_t out;
    apr_status_t rv;
    int i, rc, legacy = 0, xml = 0;
    long v;

    san->initiator = MEMDS_SAN_INIT_SERVER;
    for (i = 1; i < argc; ++i) { /* --legacy first: --type depends on it */
        legacy |= strcmp(argv[i], "--legacy") == 0;
    }
    for (i = 2; i < argc; ++i) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if ((rc = secret_opt(&sec, argc, argv, &i, p)) < 0) {
            return 2;
        }
        if (rc == 1) {
            continue;
        }
        if (strcmp(o, "--legacy") == 0 || strcmp(o, "--xml") == 0) {
            xml |= o[2] == 'x';
            continue;
        }
        if (val == NULL) {
            return usage();
        }
        ++i;
        if (strcmp(o, "--server-id") == 0) {
            san->server_id = val;
        }
        else if (strcmp(o, "--device") == 0) {
            device = val;
        }
        else if (strcmp(o, "--session") == 0 || strcmp(o, "--ui") == 0
                 || strcmp(o, "--alert") == 0) {
            if ((v = opt_number(o, val, o[2] == 'u' ? 3 : 65535)) < 0) {
                return 2;
            }
            if (o[2] == 's') {
                san->session_id = (unsigned)v;
            }
            else if (o[2] == 'u') {
                san->ui_mode = (int)v;
            }
            else {
                cur = memds_san_add_sync(san, (int)v, 0, NULL, p);
            }
        }
        else if (strcmp(o, "--initiator") == 0 && strcmp(val, "user") == 0) {
            san->initiator = MEMDS_SAN_INIT_USER;
        }
        else if (strcmp(o, "--initiator") == 0 && strcmp(val, "server") == 0) {
            san->initiator = MEMDS_SAN_INIT_SERVER;
        }
        else if (strcmp(o, "--type") == 0 && cur != NULL) {
            if ((rc = san_type_opt(cur, val, legacy)) != 0) {
                return rc;
            }
        }
        else if (strcmp(o, "--uri") == 0 && cur != NULL) {
            cur->uri = val;
        }
        else {
            return usage();
        }
    }
    if (san->server_id == NULL || (sec.nonce && !sec.pw)
        || (!legacy && (xml || device))) {
        return usage();
    }
    if (legacy && sec.pw) {
        fprintf(stderr, "memds-codec: note: the legacy form has no digest: "
                        "--password and --nonce not used\n");
    }
    memds_buf_init(&out, 256, p);
    rv = legacy ? memds_san_build_legacy(&out, san, device,
                                         xml ? MEMDS_ENC_XML : MEMDS_ENC_WBXML,
                                         &why, p)
                : memds_san_build(&out, san, sec.pw, sec.nonce, sec.nonce_len,
                                  &why, p);
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "memds-codec: cannot build the SAN: %s\n", why);
        return 1;
    }
    fwrite(out.data, 1, out.len, stdout);
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
    else if (strcmp(argv[1], "san-decode") == 0) {
        rc = do_san_decode(argc, argv, p);
    }
    else if (strcmp(argv[1], "san-build") == 0) {
        rc = do_san_build(argc, argv, p);
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
