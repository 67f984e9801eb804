/* bench/codec: throughput of mod_memds' SyncML codec on the corpus of
 * recorded and hand-written messages (tests/corpus),
 * as ratios against baselines measured in the same run on the same bytes:
 *
 *   XML:   memds decode + model + encode  vs  a plain libxml2 parse (xmlReadMemory)
 *   WBXML: memds decode + model + encode  vs  libwbxml's WBXML->XML conversion
 *          (wbxml_conv_wbxml2xml_run, what the wbxml2xml tool does)
 *
 * The machines are shared and noisy: rounds alternate between candidate and
 * baseline and the median of the per-round ratios is reported, never an
 * absolute time as a pass/fail figure.
 *
 * usage: bench/codec [CORPUS_DIR] [ROUNDS]   (default tests/corpus, 15) */
#include <apr_file_info.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wbxml/wbxml.h>

#include "syncml/memds_msg.h"

typedef struct file_t {
    const char *name, *data;
    apr_size_t len;
    int wbxml;
} file_t;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void load_dir(apr_array_header_t *files, const char *dir, apr_pool_t *p)
{
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS) {
        return;
    }
    while (
        apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_SIZE | APR_FINFO_TYPE, d)
        == APR_SUCCESS) {
        apr_size_t n = strlen(fi.name);
        int xml = n > 4 && strcmp(fi.name + n - 4, ".xml") == 0;
        int wb = n > 6 && strcmp(fi.name + n - 6, ".wbxml") == 0;
        const char *path = apr_pstrcat(p, dir, "/", fi.name, NULL);
        FILE *f;
        file_t *e;
        char *buf;

        if (fi.filetype != APR_REG || (!xml && !wb)
            || strstr(fi.name, ".decoded.") || strstr(fi.name, ".c.xml")) {
            continue;
        }
        f = fopen(path, "rb");
        if (!f) {
            continue;
        }
        buf = apr_palloc(p, (apr_size_t)fi.size + 1);
        if (fread(buf, 1, (size_t)fi.size, f) != (size_t)fi.size) {
            fclose(f);
            continue;
        }
        fclose(f);
        buf[fi.size] = '\0';
        e = apr_array_push(files);
        e->name = apr_pstrdup(p, fi.name);
        e->data = buf;
        e->len = (apr_size_t)fi.size;
        e->wbxml = wb;
    }
    apr_dir_close(d);
}

/* One pass of the candidate over the files of one encoding; returns bytes. */
static apr_size_t run_memds(const apr_array_header_t *files, int wbxml,
                            apr_pool_t *parent)
{
    apr_size_t bytes = 0;
    int i;

    for (i = 0; i < files->nelts; ++i) {
        const file_t *f = &APR_ARRAY_IDX(files, i, file_t);
        apr_pool_t *p;
        memds_msg_t *m;
        memds_codec_err_t err;
        memds_buf_t out;

        if (f->wbxml != wbxml) {
            continue;
        }
        apr_pool_create(&p, parent);
        if (memds_msg_decode(&m, f->data, f->len, MEMDS_ENC_AUTO, &err, p)
            == APR_SUCCESS) {
            memds_buf_init(&out, f->len + 256, p);
            memds_msg_encode(&out, m, wbxml ? MEMDS_ENC_WBXML : MEMDS_ENC_XML,
                             &err, p);
        }
        bytes += f->len;
        apr_pool_destroy(p);
    }
    return bytes;
}

static void run_baseline(const apr_array_header_t *files, int wbxml)
{
    int i;

    for (i = 0; i < files->nelts; ++i) {
        const file_t *f = &APR_ARRAY_IDX(files, i, file_t);

        if (f->wbxml != wbxml) {
            continue;
        }
        if (!wbxml) {
            xmlDocPtr doc = xmlReadMemory(f->data, (int)f->len, NULL, NULL,
                                          XML_PARSE_NONET | XML_PARSE_NOERROR
                                              | XML_PARSE_NOWARNING);
            xmlFreeDoc(doc);
        }
        else {
            WBXMLConvWBXML2XML *conv = NULL;
            WB_UTINY *xml = NULL;
            WB_ULONG xlen = 0;
            if (wbxml_conv_wbxml2xml_create(&conv) == WBXML_OK) {
                wbxml_conv_wbxml2xml_run(conv, (WB_UTINY *)f->data,
                                         (WB_ULONG)f->len, &xml, &xlen);
                wbxml_conv_wbxml2xml_destroy(conv);
                free(xml);
            }
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, const char *const *argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/corpus";
    int rounds = argc > 2 ? atoi(argv[2]) : 15, r, enc, reps = 20, k;
    apr_pool_t *p;
    apr_array_header_t *files;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);
    xmlInitParser();
    files = apr_array_make(p, 64, sizeof(file_t));
    load_dir(files, apr_pstrcat(p, dir, "/pkg1", NULL), p);
    load_dir(files, apr_pstrcat(p, dir, "/items", NULL), p);
    load_dir(files, apr_pstrcat(p, dir, "/mail", NULL), p);
    load_dir(files, apr_pstrcat(p, dir, "/handmade", NULL), p);
    if (files->nelts == 0 || rounds < 1) {
        fprintf(stderr, "bench/codec: no corpus under %s\n", dir);
        return 2;
    }
    printf("bench/codec: %d files, %d rounds x %d passes, median of per-round "
           "ratios\n",
           files->nelts, rounds, reps);
    for (enc = 0; enc <= 1; ++enc) {
        double *ratio = calloc((size_t)rounds, sizeof(double));
        double mbps = 0, base_mbps = 0;
        apr_size_t bytes = 0;

        for (r = 0; r < rounds; ++r) {
            double t0, t1, t2;
            bytes = 0;
            t0 = now();
            for (k = 0; k < reps; ++k) {
                bytes += run_memds(files, enc, p);
            }
            t1 = now();
            for (k = 0; k < reps; ++k) {
                run_baseline(files, enc);
            }
            t2 = now();
            ratio[r] = (t2 - t1) / (t1 - t0); /* >1: memds faster */
            mbps += (double)bytes / (t1 - t0) / 1e6;
            base_mbps += (double)bytes / (t2 - t1) / 1e6;
        }
        qsort(ratio, (size_t)rounds, sizeof(double), cmp_double);
        printf(
            "%-5s memds decode+encode %.1f MB/s, %s %.1f MB/s: "
            "speed ratio memds/baseline = %.2f (median; min %.2f, max %.2f)\n",
            enc ? "WBXML" : "XML", mbps / rounds,
            enc ? "libwbxml wbxml2xml conversion" : "libxml2 parse only",
            base_mbps / rounds, ratio[rounds / 2], ratio[0], ratio[rounds - 1]);
        free(ratio);
    }
    apr_pool_destroy(p);
    apr_terminate();
    return 0;
}
