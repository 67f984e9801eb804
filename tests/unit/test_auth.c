/* Unit tests: ds/memds_auth.c (credential helpers, passwd-file verifier). */
#include "unit.h"
#include "ds/memds_auth.h"

#include <apr_file_io.h>
#include <apr_base64.h>
#include <apr_lib.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void md5_known_answer(void)
{
    /* syncml-core.md 3.3: user test, password secret, NextNonce
     * NFY+QS8iISE= gives rIEoQQPbZEQCa+jKPIYb+g== (verified live). */
    const char *inner = memds_auth_md5_inner("test", "secret", unit_pool);

    CU_ASSERT_STRING_EQUAL(memds_auth_md5_digest(inner,
                                                 "NFY+QS8iISE=", unit_pool),
                           "rIEoQQPbZEQCa+jKPIYb+g==");
    /* An empty nonce (first contact) is hashed as nothing after the colon. */
    CU_ASSERT_NOT_EQUAL(strcmp(memds_auth_md5_digest(inner, "", unit_pool),
                               "rIEoQQPbZEQCa+jKPIYb+g=="),
                        0);
}

static void basic_decode(void)
{
    memds_bytes_t d;
    const char *u = NULL, *pw = NULL;

    d.data = "dGVzdDpzZWNyZXQ=";
    d.len = strlen(d.data);
    CU_ASSERT_EQUAL_FATAL(memds_auth_basic_decode(&u, &pw, &d, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(u, "test");
    CU_ASSERT_STRING_EQUAL(pw, "secret");
    d.data = "bm9jb2xvbg=="; /* "nocolon" */
    d.len = strlen(d.data);
    CU_ASSERT_EQUAL(memds_auth_basic_decode(&u, &pw, &d, unit_pool),
                    APR_EINVAL);
    d.data = "!!!";
    d.len = 3;
    CU_ASSERT_EQUAL(memds_auth_basic_decode(&u, &pw, &d, unit_pool),
                    APR_EINVAL);
    d.data = "OnB3"; /* ":pw": empty user */
    d.len = 4;
    CU_ASSERT_EQUAL(memds_auth_basic_decode(&u, &pw, &d, unit_pool),
                    APR_EINVAL);
}

static void nonces_differ(void)
{
    const char *a = memds_auth_new_nonce(unit_pool),
               *b = memds_auth_new_nonce(unit_pool);

    char raw[32];
    int n, i;

    CU_ASSERT_EQUAL(strlen(a), 24);
    n = apr_base64_decode(raw, a);
    CU_ASSERT_EQUAL(n, 16);
    for (i = 0; i < n; ++i) {
        CU_ASSERT(apr_isalnum(raw[i])); /* printable: clients keep C strings */
    }
    CU_ASSERT_NOT_EQUAL(strcmp(a, b), 0);
    CU_ASSERT(memds_auth_equal("abc", "abc"));
    CU_ASSERT(!memds_auth_equal("abc", "abd"));
    CU_ASSERT(!memds_auth_equal("abc", "abcd"));
}

static void passwd_file(void)
{
    char path[] = "/tmp/memds-unit-passwdXXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    memds_verifier_t v;
    const char *inner = NULL;

    fputs("alice:{PLAIN}alice-secret::::\nbob:bob-secret\ncarol:{SHA512-CRYPT}$"
          "6$x\n",
          f);
    fclose(f);
    memds_verifier_passwd_file(&v, path);
    CU_ASSERT_EQUAL(v.check_password(&v, "alice", "alice-secret", unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(v.check_password(&v, "alice", "wrong", unit_pool),
                    APR_EACCES);
    CU_ASSERT_EQUAL(v.check_password(&v, "ali", "alice-secret", unit_pool),
                    APR_EACCES);
    CU_ASSERT_EQUAL(v.check_password(&v, "bob", "bob-secret", unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(v.check_password(&v, "carol", "x", unit_pool), APR_EACCES);
    CU_ASSERT_EQUAL(v.md5_inner(&v, "alice", &inner, unit_pool), APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(inner, memds_auth_md5_inner("alice", "alice-secret",
                                                       unit_pool));
    CU_ASSERT_EQUAL(v.md5_inner(&v, "nobody", &inner, unit_pool), APR_ENOENT);
    remove(path);
    CU_ASSERT_NOT_EQUAL(v.check_password(&v, "alice", "alice-secret",
                                         unit_pool),
                        APR_SUCCESS);
}

/* Recent pass-through logins: right password hits, anything else misses,
 * entries expire, and the cache stays bounded. */
static void test_login_cache(void)
{
    memds_logincache_t *c, *c0;

    CU_ASSERT_EQUAL_FATAL(memds_logincache_create(&c, 60, 3, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_FALSE(memds_logincache_hit(c, "imap://h", "alice", "pw"));
    memds_logincache_put(c, "imap://h", "alice", "pw");
    CU_ASSERT_TRUE(memds_logincache_hit(c, "imap://h", "alice", "pw"));
    CU_ASSERT_FALSE(memds_logincache_hit(c, "imap://h", "alice", "pw2"));
    CU_ASSERT_FALSE(memds_logincache_hit(c, "imap://h", "alice", "p"));
    CU_ASSERT_FALSE(memds_logincache_hit(c, "imap://h", "bob", "pw"));
    CU_ASSERT_FALSE(memds_logincache_hit(c, "imap://other", "alice", "pw"));
    /* no ambiguity from joining the parts */
    memds_logincache_put(c, "imap://h", "ab", "c");
    CU_ASSERT_FALSE(memds_logincache_hit(c, "imap://h", "a", "bc"));
    /* bounded: the fourth entry starts over */
    memds_logincache_put(c, "imap://h", "u3", "x");
    memds_logincache_put(c, "imap://h", "u4", "x");
    CU_ASSERT_TRUE(memds_logincache_hit(c, "imap://h", "u4", "x"));
    CU_ASSERT_FALSE(memds_logincache_hit(c, "imap://h", "alice", "pw"));
    /* a ttl of 0: nothing is trusted again */
    CU_ASSERT_EQUAL_FATAL(memds_logincache_create(&c0, 0, 3, unit_pool),
                          APR_SUCCESS);
    memds_logincache_put(c0, "imap://h", "alice", "pw");
    CU_ASSERT_FALSE(memds_logincache_hit(c0, "imap://h", "alice", "pw"));
}

void unit_add_auth(void)
{
    CU_pSuite s = CU_add_suite("auth", NULL, NULL);

    CU_add_test(s, "login cache", test_login_cache);
    CU_add_test(s, "md5 known answer", md5_known_answer);
    CU_add_test(s, "basic credentials", basic_decode);
    CU_add_test(s, "nonces and comparison", nonces_differ);
    CU_add_test(s, "passwd-file verifier", passwd_file);
}
