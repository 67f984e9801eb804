/* libFuzzer target: the flat JSON object of the IMAP server's mail events
 * (util/memds_json.c, read by the memds-notify handler).
 *
 * Per input: parse it. On failure there must be a reason. On success every
 * key and value is a NUL-terminated string without NUL, and the object
 * written back (every string escaped, numbers and literals as parsed)
 * parses to the same fields. Anything else aborts. Seeds: built in;
 * MEMDS_FUZZ_JSON_SEEDS=DIR writes them to DIR first. */
#include "util/memds_json.h"
#include "util/memds_buf.h"

#include "fuzz_seeds.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define S(x) FUZZ_SEED(x)
static const fuzz_seed_t seeds[] = {
    S("{\"user\":\"alice\",\"event\":\"messageNew\",\"folder\":\"INBOX\","
      "\"imap-uidvalidity\":1700000000,\"imap-uid\":42,\"from\":\"Bob "
      "<bob@example.test>\",\"subject\":\"hi \\u00e9\",\"snippet\":\"x\","
      "\"unseen\":3}"),
    S("{}"),
    S(" { \"a\" : -1.5e+3 , \"b\" : true, \"c\": null, \"d\": false } "),
    S("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\ud83d\\ude00\"}"),
    S("{\"a\":{\"nested\":1}}"),
    S("{\"a\":[1,2]}"),
    S("{\"a\":\"\\u0000\"}"),
    S("{\"a\":01}"),
    S("{\"a\":\"unterminated}"),
};

static void check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_json: invariant broken: %s\n", what);
        abort();
    }
}

static void put_string(memds_buf_t *b, const char *s)
{
    memds_buf_addc(b, '"');
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            memds_buf_addc(b, '\\');
            memds_buf_addc(b, (char)c);
        }
        else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof(e), "\\u%04x", c);
            memds_buf_addstr(b, e);
        }
        else {
            memds_buf_addc(b, (char)c);
        }
    }
    memds_buf_addc(b, '"');
}

static int is_literal(const char *v)
{
    return !strcmp(v, "true") || !strcmp(v, "false") || !strcmp(v, "null")
           || ((*v == '-' || (*v >= '0' && *v <= '9'))
               && v[strspn(v, "-+.eE0123456789")] == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    apr_table_t *t = NULL, *t2 = NULL;
    const char *why = NULL;
    apr_status_t rv;

    apr_pool_create(&p, NULL);
    rv = memds_json_flat(&t, (const char *)data, size, &why, p);
    if (rv != APR_SUCCESS) {
        check(rv == APR_EINVAL, "a failure other than APR_EINVAL");
        check(why != NULL && *why, "a failure without a reason");
    }
    else {
        const apr_array_header_t *a = apr_table_elts(t);
        const apr_table_entry_t *e = (const apr_table_entry_t *)a->elts;
        memds_buf_t b;
        int i;

        memds_buf_init(&b, 256, p);
        memds_buf_addc(&b, '{');
        for (i = 0; i < a->nelts; ++i) {
            check(e[i].key != NULL && e[i].val != NULL, "a NULL key or value");
            if (i) {
                memds_buf_addc(&b, ',');
            }
            put_string(&b, e[i].key);
            memds_buf_addc(&b, ':');
            /* (a value that looks like a literal may have been one; a
             * string that looks like one is written as a string: both
             * parse to the same text) */
            if (is_literal(e[i].val)) {
                memds_buf_addstr(&b, e[i].val);
            }
            else {
                put_string(&b, e[i].val);
            }
        }
        memds_buf_addc(&b, '}');
        why = NULL;
        rv = memds_json_flat(&t2, b.data, b.len, &why, p);
        if (rv != APR_SUCCESS) {
            /* a literal-looking string that is not valid as a number */
            memds_buf_init(&b, 256, p);
            memds_buf_addc(&b, '{');
            for (i = 0; i < a->nelts; ++i) {
                if (i) {
                    memds_buf_addc(&b, ',');
                }
                put_string(&b, e[i].key);
                memds_buf_addc(&b, ':');
                put_string(&b, e[i].val);
            }
            memds_buf_addc(&b, '}');
            rv = memds_json_flat(&t2, b.data, b.len, &why, p);
        }
        check(rv == APR_SUCCESS, "the rendering does not parse");
        check(apr_table_elts(t2)->nelts == a->nelts, "the field count changed");
        for (i = 0; i < a->nelts; ++i) {
            const char *v2 = apr_table_get(t2, e[i].key);
            check(v2 != NULL && strcmp(v2, apr_table_get(t, e[i].key)) == 0,
                  "a value changed");
        }
    }
    apr_pool_destroy(p);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    fuzz_write_seeds("MEMDS_FUZZ_JSON_SEEDS", "json", seeds,
                     FUZZ_NSEEDS(seeds));
    return 0;
}
