/* Unit tests: push/memds_wappush.c (a SAN as WAP Push over SMS: the WSP
 * Push PDU, the UDH with WDP ports 2948/9200, concatenation). */
#include "unit.h"
#include "push/memds_wappush.h"
#include "syncml/memds_san.h"

#include <string.h>

/* The SAN of the worked example (docs/san.md, 52 bytes; test_san.c
 * checks it byte for byte). */
static memds_buf_t example_san(void)
{
    memds_san_t *san = memds_san_make("mailgw.example.com", unit_pool);
    memds_buf_t b;
    const char *why = NULL;

    san->ui_mode = MEMDS_SAN_UI_BACKGROUND;
    san->initiator = MEMDS_SAN_INIT_SERVER;
    san->session_id = 42;
    memds_san_add_sync(san, 206, MEMDS_SAN_CT_EMAIL, "mail", unit_pool);
    memds_buf_init(&b, 64, unit_pool);
    CU_ASSERT_EQUAL(memds_san_build(&b, san, "srvsecret", "SyncNonce1", 10,
                                    &why, unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(b.len, 52);
    return b;
}

static const unsigned char k_wsp[6] = { 0x01, 0x06, 0x03, 0xce, 0xaf, 0x85 };

/* The whole user data of one SMS: UDH then the rest. */
static apr_size_t user_data(unsigned char *out, const memds_sms_seg_t *s)
{
    memcpy(out, s->udh, s->udh_len);
    memcpy(out + s->udh_len, s->ud, s->ud_len);
    return s->udh_len + s->ud_len;
}

static void test_single_sms_is_the_example(void)
{
    static const unsigned char udh[7] = { 0x06, 0x05, 0x04, 0x0b,
                                          0x84, 0x23, 0xf0 };
    apr_array_header_t *segs = NULL;
    const char *why = NULL;
    unsigned char ud[MEMDS_SMS_UD_MAX], want[65];
    const memds_sms_seg_t *s;
    memds_buf_t k = example_san();

    /* 06 05 04 0b 84 23 f0 | 01 06 03 ce af 85 | 65 d5 86 02 ... */
    CU_ASSERT_EQUAL_FATAL(k.len, 52);
    CU_ASSERT(memcmp(k.data, "\x65\xd5\x86\x02", 4) == 0);
    CU_ASSERT_EQUAL_FATAL(memds_wappush_sms(&segs, k.data, k.len, 1, 0x42, &why,
                                            unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(segs->nelts, 1);
    s = &APR_ARRAY_IDX(segs, 0, memds_sms_seg_t);
    memcpy(want, udh, 7);
    memcpy(want + 7, k_wsp, 6);
    memcpy(want + 13, k.data, k.len);
    CU_ASSERT_EQUAL(s->udh_len, 7);
    CU_ASSERT_EQUAL(user_data(ud, s), 65);
    CU_ASSERT(memcmp(ud, want, 65) == 0);
}

static void test_largest_single_sms(void)
{
    unsigned char san[128];
    apr_array_header_t *segs = NULL;
    const char *why = NULL;

    memset(san, 0xA5, sizeof(san));
    /* 127 bytes of SAN + 6 of WSP + 7 of UDH = 140: one SMS */
    CU_ASSERT_EQUAL(memds_wappush_sms(&segs, san, 127, 1, 0, &why, unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(segs->nelts, 1);
    CU_ASSERT_EQUAL(APR_ARRAY_IDX(segs, 0, memds_sms_seg_t).ud_len, 133);
    /* one more byte: two */
    CU_ASSERT_EQUAL(memds_wappush_sms(&segs, san, 128, 1, 0, &why, unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(segs->nelts, 2);
}

static void test_concatenation_reassembles(void)
{
    unsigned char san[300], pdu[400];
    apr_array_header_t *segs = NULL;
    const char *why = NULL;
    apr_size_t at = 0;
    int i;

    for (i = 0; i < (int)sizeof(san); ++i) {
        san[i] = (unsigned char)(i * 7 + 3);
    }
    CU_ASSERT_EQUAL_FATAL(memds_wappush_sms(&segs, san, sizeof(san), 9, 0x5c,
                                            &why, unit_pool),
                          APR_SUCCESS);
    /* 306 bytes of PDU in 128-byte pieces */
    CU_ASSERT_EQUAL_FATAL(segs->nelts, 3);
    for (i = 0; i < segs->nelts; ++i) {
        const memds_sms_seg_t *s = &APR_ARRAY_IDX(segs, i, memds_sms_seg_t);
        const unsigned char udh[12] = {
            0x0b, 0x05, 0x04, 0x0b, 0x84, 0x23,
            0xf0, 0x00, 0x03, 0x5c, 3,    (unsigned char)(i + 1)
        };

        CU_ASSERT_EQUAL(s->udh_len, 12);
        CU_ASSERT(memcmp(s->udh, udh, 12) == 0);
        CU_ASSERT(s->udh_len + s->ud_len <= MEMDS_SMS_UD_MAX);
        CU_ASSERT_EQUAL(s->ud_len, i < 2 ? 128 : 50);
        memcpy(pdu + at, s->ud, s->ud_len);
        at += s->ud_len;
    }
    CU_ASSERT_EQUAL_FATAL(at, 306);
    CU_ASSERT_EQUAL(pdu[0], 9);
    CU_ASSERT(memcmp(pdu + 1, k_wsp + 1, 5) == 0);
    CU_ASSERT(memcmp(pdu + 6, san, sizeof(san)) == 0);
}

static void test_refuses_empty_and_too_long(void)
{
    apr_array_header_t *segs = NULL;
    const char *why = NULL;
    apr_size_t big = 255 * 128 + 1;
    unsigned char *san = apr_pcalloc(unit_pool, big);

    CU_ASSERT_EQUAL(memds_wappush_sms(&segs, san, 0, 1, 0, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(why);
    /* 255 segments hold 32640 bytes of PDU, i.e. 32634 of SAN */
    CU_ASSERT_EQUAL(memds_wappush_sms(&segs, san, 255 * 128 - 6, 1, 0, &why,
                                      unit_pool),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(segs->nelts, 255);
    why = NULL;
    CU_ASSERT_EQUAL(memds_wappush_sms(&segs, san, big, 1, 0, &why, unit_pool),
                    APR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(why);
}

static void test_uintvar_headers_len(void)
{
    memds_buf_t b;

    memds_buf_init(&b, 16, unit_pool);
    memds_wappush_pdu(&b, 0x7f, "x", 1);
    CU_ASSERT_EQUAL_FATAL(b.len, 7);
    CU_ASSERT(memcmp(b.data, "\x7f\x06\x03\xce\xaf\x85x", 7) == 0);
}

/* A legacy SAN (a WBXML SyncML 1.1 message): Content-Type
 * application/vnd.syncml+wbxml, well-known 0x0303 in the general form
 * (Value-length 3, Short-length 2, 03 03); the same application id. */
static void test_legacy_header(void)
{
    memds_buf_t b;
    apr_array_header_t *segs;
    const memds_sms_seg_t *s;
    const char *why = NULL;
    static const char msg[] = "\x02\x9f\x53\x6a";

    memds_buf_init(&b, 16, unit_pool);
    memds_wappush_pdu_legacy(&b, 0x11, msg, 4);
    CU_ASSERT_EQUAL_FATAL(b.len, 13);
    CU_ASSERT(memcmp(b.data, "\x11\x06\x06\x03\x02\x03\x03\xaf\x85"
                             "\x02\x9f\x53\x6a",
                     13)
              == 0);
    CU_ASSERT_EQUAL_FATAL(memds_wappush_sms_legacy(&segs, msg, 4, 0x11, 0,
                                                   &why, unit_pool),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(segs->nelts, 1);
    s = &APR_ARRAY_IDX(segs, 0, memds_sms_seg_t);
    CU_ASSERT_EQUAL(s->ud_len, 13);
    CU_ASSERT(memcmp(s->ud, "\x11\x06\x06\x03\x02\x03\x03", 7) == 0);
}

static void test_phone_numbers(void)
{
    CU_ASSERT(memds_sms_number_ok("+15550001"));
    CU_ASSERT(memds_sms_number_ok("0049301234567"));
    CU_ASSERT(!memds_sms_number_ok(NULL));
    CU_ASSERT(!memds_sms_number_ok("+"));
    CU_ASSERT(!memds_sms_number_ok("12"));
    CU_ASSERT(!memds_sms_number_ok("+1 555"));
    CU_ASSERT(!memds_sms_number_ok("++1555"));
    CU_ASSERT(!memds_sms_number_ok("123456789012345678901"));
}

void unit_add_wappush(void)
{
    CU_pSuite s = CU_add_suite("wappush", NULL, NULL);

    CU_add_test(s, "one SMS: the example of docs/san.md byte for byte",
                test_single_sms_is_the_example);
    CU_add_test(s, "127 bytes of SAN fit one SMS, 128 need two",
                test_largest_single_sms);
    CU_add_test(s, "a long SAN is concatenated and reassembles",
                test_concatenation_reassembles);
    CU_add_test(s, "empty and over-long SANs are refused",
                test_refuses_empty_and_too_long);
    CU_add_test(s, "the WSP header", test_uintvar_headers_len);
    CU_add_test(s, "the WSP header of a legacy (DS 1.1) SAN", test_legacy_header);
    CU_add_test(s, "phone numbers", test_phone_numbers);
}
