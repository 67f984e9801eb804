/* Unit tests: util/memds_util.c */
#include "unit.h"
#include "util/memds_util.h"
#include "util/memds_jobgate.h"

#include <string.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_atomic.h>
#include <apr_thread_proc.h>

static void test_content_type(void)
{
    CU_ASSERT_EQUAL(memds_content_type(NULL), MEMDS_CT_MISSING);
    CU_ASSERT_EQUAL(memds_content_type(""), MEMDS_CT_MISSING);
    CU_ASSERT_EQUAL(memds_content_type("application/vnd.syncml+xml"),
                    MEMDS_CT_XML);
    CU_ASSERT_EQUAL(memds_content_type(
                        "Application/VND.SyncML+XML; charset=UTF-8"),
                    MEMDS_CT_XML);
    CU_ASSERT_EQUAL(memds_content_type("  application/vnd.syncml+wbxml"),
                    MEMDS_CT_WBXML);
    CU_ASSERT_EQUAL(memds_content_type("application/vnd.syncml+wbxml;x=1"),
                    MEMDS_CT_WBXML);
    CU_ASSERT_EQUAL(memds_content_type("application/vnd.syncml+xmlx"),
                    MEMDS_CT_OTHER);
    CU_ASSERT_EQUAL(memds_content_type("text/xml"), MEMDS_CT_OTHER);
    CU_ASSERT_EQUAL(memds_content_type("application/vnd.syncml.dm+xml"),
                    MEMDS_CT_OTHER);
}

static void test_parse_size(void)
{
    apr_off_t v = -1;

    CU_ASSERT_EQUAL(memds_parse_size(&v, "4096", 0, 1 << 30), APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 4096);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "150k", 0, 1 << 30), APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 150 * 1024);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "2M", 0, 1 << 30), APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 2 * 1024 * 1024);
    v = 7;
    CU_ASSERT_EQUAL(memds_parse_size(&v, "", 0, 100), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "-1", 0, 100), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "12x", 0, 100), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "1KB", 0, 1 << 20), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "101", 0, 100), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "99999999999999999999999", 0,
                                     APR_INT64_MAX),
                    APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_size(&v, "9999999999999999G", 0, APR_INT64_MAX),
                    APR_EINVAL);
    CU_ASSERT_EQUAL(v, 7); /* untouched on failure */
}

static void test_parse_uint(void)
{
    int v = -1;

    CU_ASSERT_EQUAL(memds_parse_uint(&v, "0", 10), APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(memds_parse_uint(&v, "10", 10), APR_SUCCESS);
    CU_ASSERT_EQUAL(v, 10);
    CU_ASSERT_EQUAL(memds_parse_uint(&v, "11", 10), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_uint(&v, "1 ", 10), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_uint(&v, "", 10), APR_EINVAL);
    CU_ASSERT_EQUAL(memds_parse_uint(&v, "99999999999999999999", 1000),
                    APR_EINVAL);
}

static void test_server_url(void)
{
    static const char *const imap[] = { "imap", "imaps", NULL };
    apr_pool_t *p = unit_pool;
    const char *e;

    CU_ASSERT_PTR_NULL(memds_check_server_url("imap://127.0.0.1:143", imap, p));
    CU_ASSERT_PTR_NULL(
        memds_check_server_url("imaps://mail.example.org", imap, p));
    CU_ASSERT_PTR_NULL(
        memds_check_server_url("IMAP://mail.example.org/", imap, p));
    e = memds_check_server_url("http://mail.example.org", imap, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "imap://, imaps://"));
    CU_ASSERT_PTR_NOT_NULL(memds_check_server_url("mail.example.org", imap, p));
    CU_ASSERT_PTR_NOT_NULL(memds_check_server_url("", imap, p));
    CU_ASSERT_PTR_NOT_NULL(memds_check_server_url("imap://", imap, p));
    CU_ASSERT_PTR_NOT_NULL(memds_check_server_url("imap://h:0", imap, p));
    CU_ASSERT_PTR_NOT_NULL(memds_check_server_url("imap://h:70000", imap, p));
    CU_ASSERT_PTR_NOT_NULL(memds_check_server_url("imap://h:12ab", imap, p));
    CU_ASSERT_PTR_NOT_NULL(memds_check_server_url("imap://h/INBOX", imap, p));
    e = memds_check_server_url("imap://u:secret@h", imap, p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NULL(strstr(e, "secret")); /* never echo a password */
}

static void test_ca_pem(void)
{
    static const char b64[] = "MIIBszCCAVmgAwIBAgIUQ2hlY2tlZCBieSB0ZXN0X2Nh"
                              "X3BlbSBpbiB0ZXN0X3V0aWwuYwo=\n";
    const char *cert = apr_pstrcat(unit_pool, "-----BEGIN CERTIFICATE-----\n",
                                   b64, b64, "-----END CERTIFICATE-----\n",
                                   NULL);
    const char *two = apr_pstrcat(unit_pool, "# a bundle\n", cert,
                                  "\r\n", cert, NULL);
    const char *key = apr_pstrcat(unit_pool, cert,
                                  "-----BEGIN PRIVATE KEY-----\n", b64,
                                  "-----END PRIVATE KEY-----\n", NULL);
    const char *eckey = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n"
                        "-----END EC PRIVATE KEY-----\n";
    const char *cut = apr_pstrndup(unit_pool, cert, strlen(cert) - 10);
    const char *empty = "-----BEGIN CERTIFICATE-----\n"
                        "-----END CERTIFICATE-----\n";
    const char *other = apr_pstrcat(unit_pool, "-----BEGIN X509 CRL-----\n",
                                    b64, "-----END X509 CRL-----\n", NULL);
    const char *e;

    CU_ASSERT_PTR_NULL(memds_check_ca_pem(cert, strlen(cert)));
    CU_ASSERT_PTR_NULL(memds_check_ca_pem(two, strlen(two)));
    /* other blocks may sit beside the certificates */
    e = apr_pstrcat(unit_pool, other, cert, NULL);
    CU_ASSERT_PTR_NULL(memds_check_ca_pem(e, strlen(e)));
    e = memds_check_ca_pem(other, strlen(other));
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "no PEM certificate"));
    e = memds_check_ca_pem(key, strlen(key));
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "private key"));
    CU_ASSERT_PTR_NOT_NULL(memds_check_ca_pem(eckey, strlen(eckey)));
    e = memds_check_ca_pem(cut, strlen(cut));
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "no END line"));
    CU_ASSERT_PTR_NOT_NULL(memds_check_ca_pem(empty, strlen(empty)));
    CU_ASSERT_PTR_NOT_NULL(memds_check_ca_pem("", 0));
    CU_ASSERT_PTR_NOT_NULL(memds_check_ca_pem("-----BEGIN ", 11));
    /* a DER file, or any binary */
    CU_ASSERT_PTR_NOT_NULL(memds_check_ca_pem("\x30\x82\x01\xb3\0\0", 6));
    /* only the given length counts */
    CU_ASSERT_PTR_NOT_NULL(memds_check_ca_pem(cert, strlen(cert) - 3));
}

static void test_ca_file(void)
{
    char path[] = "/tmp/memds-unit-ca-XXXXXX";
    apr_file_t *f;
    const char *e;
    const char *pem = "-----BEGIN CERTIFICATE-----\n"
                      "MIIBszCCAVmgAwIBAgIUQ2hlY2tlZCBieSB0ZXN0X2NhX2ZpbGUK"
                      "MIIBszCCAVmgAwIBAgIUQ2hlY2tlZCBieSB0ZXN0X2NhX2ZpbGUK\n"
                      "-----END CERTIFICATE-----\n";
    apr_size_t n = strlen(pem);

    CU_ASSERT_FATAL(apr_file_mktemp(&f, path,
                                    APR_FOPEN_CREATE | APR_FOPEN_READ
                                        | APR_FOPEN_WRITE | APR_FOPEN_EXCL,
                                    unit_pool)
                    == APR_SUCCESS);
    e = memds_check_ca_file(path, unit_pool);
    CU_ASSERT(e != NULL && strstr(e, "empty") != NULL);
    CU_ASSERT(apr_file_write_full(f, pem, n, NULL) == APR_SUCCESS);
    apr_file_close(f);
    CU_ASSERT_PTR_NULL(memds_check_ca_file(path, unit_pool));
    apr_file_remove(path, unit_pool);
    e = memds_check_ca_file(path, unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "cannot read"));
    e = memds_check_ca_file("/tmp", unit_pool);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL(strstr(e, "not a regular file"));
}

static void test_sha1(void)
{
    CU_ASSERT_STRING_EQUAL(memds_sha1_hex("abc", 3, unit_pool),
                           "a9993e364706816aba3e25717850c26c9cd0d89d");
    CU_ASSERT_STRING_EQUAL(memds_sha1_hex("", 0, unit_pool),
                           "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

static void test_utf8(void)
{
#define SEQ(str) \
    memds_utf8_seq((const unsigned char *)(str), \
                   (const unsigned char *)(str) + sizeof(str) - 1, &cp)
    unsigned cp = 0;

    CU_ASSERT_EQUAL(SEQ("\xC3\xA4"), 2);
    CU_ASSERT_EQUAL(cp, 0xE4);
    CU_ASSERT_EQUAL(SEQ("\xE2\x82\xAC"), 3);
    CU_ASSERT_EQUAL(cp, 0x20AC);
    CU_ASSERT_EQUAL(SEQ("\xF0\x9F\x98\x80"), 4);
    CU_ASSERT_EQUAL(cp, 0x1F600);
    CU_ASSERT_EQUAL(SEQ("\xC0\xAF"), 0);         /* overlong */
    CU_ASSERT_EQUAL(SEQ("\xE0\x80\xAF"), 0);     /* overlong */
    CU_ASSERT_EQUAL(SEQ("\xED\xA0\x80"), 0);     /* surrogate */
    CU_ASSERT_EQUAL(SEQ("\xF4\x90\x80\x80"), 0); /* > U+10FFFF */
    CU_ASSERT_EQUAL(SEQ("\xE2\x82"), 0);         /* truncated */
    CU_ASSERT_EQUAL(SEQ("\xE2\x28\xAC"), 0);     /* bad continuation */
    CU_ASSERT_EQUAL(SEQ("\xFF"), 0);
#undef SEQ
}

/* memds_scan16's implementations agree with a byte loop: every set and
 * class of the callers, on bytes drawn so that each position is often a
 * hit (and the word version's borrows meet every neighbour). */
static void test_scan16(void)
{
    static const unsigned char pool[] = { 0x00, 0x01, 0x09, 0x0A, 0x0D,
                                          0x1F, 0x20, 0x21, '&',  '<',
                                          '>',  'a',  0x7F, 0x80, 0xC3,
                                          0xFF };
    static const unsigned char sets[][4] = {
        { '&', '<', '>', '&' }, { '&', '<', '>', '\r' },
        { 0, '\n', '\r', '\r' }, { '\r', '\n', '\r', '\n' }, { 0, 0, 0, 0 }
    };
    unsigned seed = 12345, round, bad = 0;

    for (round = 0; round < 20000; ++round) {
        unsigned char buf[16];
        unsigned i, k, cls;
        /* mostly plain letters, a few bytes from the pool */
        for (i = 0; i < 16; ++i) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (seed >> 16) % 4 == 0 ? pool[(seed >> 20) % sizeof(pool)]
                                           : (unsigned char)('b' + (seed >> 24) % 20);
        }
        for (k = 0; k < sizeof(sets) / sizeof(sets[0]); ++k) {
            for (cls = MEMDS_SCAN_NONE; cls <= MEMDS_SCAN_CTL; ++cls) {
                unsigned want = memds_scan16_bytes(buf, sets[k][0], sets[k][1],
                                                   sets[k][2], sets[k][3],
                                                   (int)cls);
                bad += memds_scan16_words(buf, sets[k][0], sets[k][1],
                                          sets[k][2], sets[k][3], (int)cls)
                       != want;
#ifdef MEMDS_HAVE_SCAN16_SSE2
                bad += memds_scan16_sse2(buf, sets[k][0], sets[k][1],
                                         sets[k][2], sets[k][3], (int)cls)
                       != want;
#endif
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(memds_scan16((const unsigned char *)"0123456789abcdef",
                                 '&', '<', '>', '&', MEMDS_SCAN_CTL),
                    16);
    CU_ASSERT_EQUAL(memds_scan16((const unsigned char *)"0123456789abcd\xC3\xA4",
                                 '&', '<', '>', '&', MEMDS_SCAN_CTL),
                    14);
    CU_ASSERT_EQUAL(memds_scan16((const unsigned char *)"01234\r\n789abcdef",
                                 0, '\n', '\r', '\r', MEMDS_SCAN_HIGH),
                    5);
}

/* The jobs' gate: open, then closed by its pool's pre-cleanup. */
static void test_jobgate_open_close(void)
{
    memds_jobgate_t *g = NULL;
    apr_pool_t *child;

    CU_ASSERT_FALSE(memds_jobgate_enter(NULL));
    CU_ASSERT_EQUAL_FATAL(memds_jobgate_create(&g, unit_pool), APR_SUCCESS);
    apr_pool_create(&child, unit_pool);
    memds_jobgate_close_with(g, child);
    CU_ASSERT_TRUE(memds_jobgate_enter(g));
    CU_ASSERT_TRUE(memds_jobgate_enter(g));
    memds_jobgate_leave(g);
    memds_jobgate_leave(g);
    apr_pool_destroy(child);
    CU_ASSERT_FALSE(memds_jobgate_enter(g));
    memds_jobgate_close(g); /* (again: harmless) */
    CU_ASSERT_FALSE(memds_jobgate_enter(g));
}

typedef struct gate_run_t {
    memds_jobgate_t *g;
    apr_pool_t *child;
    volatile apr_uint32_t inside, release, done, done_at_close;
} gate_run_t;

static void *APR_THREAD_FUNC gate_job(apr_thread_t *t, void *data)
{
    gate_run_t *r = data;

    if (memds_jobgate_enter(r->g)) {
        apr_atomic_set32(&r->inside, 1);
        while (!apr_atomic_read32(&r->release)) {
            apr_sleep(1000);
        }
        apr_atomic_set32(&r->done, 1);
        memds_jobgate_leave(r->g);
    }
    return NULL;
}

static void *APR_THREAD_FUNC gate_closer(apr_thread_t *t, void *data)
{
    gate_run_t *r = data;

    apr_pool_destroy(r->child); /* (the child exits) */
    apr_atomic_set32(&r->done_at_close, apr_atomic_read32(&r->done) + 1);
    return NULL;
}

/* The child's pool is destroyed while a job runs: the destruction waits
 * for the job to leave (what the child's pool holds is still there for
 * it), and no job enters afterwards. */
static void test_jobgate_waits(void)
{
    gate_run_t r;
    apr_thread_t *job, *closer;
    apr_status_t trv;

    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL_FATAL(memds_jobgate_create(&r.g, unit_pool), APR_SUCCESS);
    apr_pool_create(&r.child, unit_pool);
    memds_jobgate_close_with(r.g, r.child);
    CU_ASSERT_EQUAL_FATAL(apr_thread_create(&job, NULL, gate_job, &r,
                                            unit_pool), APR_SUCCESS);
    while (!apr_atomic_read32(&r.inside)) {
        apr_sleep(1000);
    }
    CU_ASSERT_EQUAL_FATAL(apr_thread_create(&closer, NULL, gate_closer, &r,
                                            unit_pool), APR_SUCCESS);
    apr_sleep(apr_time_from_msec(50)); /* (the closer waits meanwhile) */
    CU_ASSERT_EQUAL(apr_atomic_read32(&r.done_at_close), 0);
    apr_atomic_set32(&r.release, 1);
    apr_thread_join(&trv, job);
    apr_thread_join(&trv, closer);
    /* 2: the job had ended when the destruction returned */
    CU_ASSERT_EQUAL(apr_atomic_read32(&r.done_at_close), 2);
    CU_ASSERT_FALSE(memds_jobgate_enter(r.g));
}

void unit_add_util(void)
{
    CU_pSuite s = CU_add_suite("util", NULL, NULL);

    CU_add_test(s, "content type", test_content_type);
    CU_add_test(s, "parse size", test_parse_size);
    CU_add_test(s, "parse uint", test_parse_uint);
    CU_add_test(s, "server url", test_server_url);
    CU_add_test(s, "sha1", test_sha1);
    CU_add_test(s, "CA bundle (PEM)", test_ca_pem);
    CU_add_test(s, "CA bundle file", test_ca_file);
    CU_add_test(s, "utf8", test_utf8);
    CU_add_test(s, "scan16", test_scan16);
    CU_add_test(s, "jobs' gate: open, closed with its pool",
                test_jobgate_open_close);
    CU_add_test(s, "jobs' gate: closing waits for the job inside",
                test_jobgate_waits);
}
