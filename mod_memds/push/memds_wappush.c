/* memds_wappush.c: WAP Push over SMS framing (memds_wappush.h). */
#include "push/memds_wappush.h"
#include "store/memds_pushstore.h"

#include <string.h>

#define WSP_PDU_PUSH 0x06
#define WSP_CT_SYNCML_DS_NOTIFICATION (0x4E | 0x80)
#define WSP_HDR_X_WAP_APPLICATION_ID (0x2F | 0x80)
#define WSP_APPID_PUSH_SYNCML (0x05 | 0x80)

#define IE_CONCAT_8BIT 0x00
#define IE_PORTS_16BIT 0x05
#define UDH_PORTS_LEN 7   /* UDHL, IE 05, IEDL 04, dst, src */
#define UDH_CONCAT_LEN 12 /* ... and IE 00, IEDL 03, ref, total, seq */

/* A WSP uintvar: 7 bits per octet, most significant first, the high bit
 * set on every octet but the last. */
static void add_uintvar(memds_buf_t *out, apr_uint32_t v)
{
    unsigned char b[5];
    int n = 0, i;

    do {
        b[n++] = (unsigned char)(v & 0x7F);
        v >>= 7;
    } while (v);
    for (i = n - 1; i >= 0; --i) {
        memds_buf_addc(out, (char)(b[i] | (i ? 0x80 : 0)));
    }
}

static void pdu(memds_buf_t *out, unsigned char tid, int legacy,
                const void *san, apr_size_t len)
{
    static const unsigned char hdrs[] = { WSP_CT_SYNCML_DS_NOTIFICATION,
                                          WSP_HDR_X_WAP_APPLICATION_ID,
                                          WSP_APPID_PUSH_SYNCML };
    /* application/vnd.syncml+wbxml is 0x0303: a long integer, so the
     * Content-general-form: Value-length 3, Short-length 2, 03 03 */
    static const unsigned char hdrs11[] = { 0x03,
                                            0x02,
                                            0x03,
                                            0x03,
                                            WSP_HDR_X_WAP_APPLICATION_ID,
                                            WSP_APPID_PUSH_SYNCML };

    memds_buf_addc(out, (char)tid);
    memds_buf_addc(out, WSP_PDU_PUSH);
    add_uintvar(out, legacy ? sizeof(hdrs11) : sizeof(hdrs));
    if (legacy) {
        memds_buf_add(out, hdrs11, sizeof(hdrs11));
    }
    else {
        memds_buf_add(out, hdrs, sizeof(hdrs));
    }
    memds_buf_add(out, san, len);
}

void memds_wappush_pdu(memds_buf_t *out, unsigned char tid, const void *san,
                       apr_size_t len)
{
    pdu(out, tid, 0, san, len);
}

void memds_wappush_pdu_legacy(memds_buf_t *out, unsigned char tid,
                              const void *san, apr_size_t len)
{
    pdu(out, tid, 1, san, len);
}

static void ports_ie(unsigned char *u)
{
    u[0] = IE_PORTS_16BIT;
    u[1] = 4;
    u[2] = MEMDS_WAPPUSH_PORT >> 8;
    u[3] = MEMDS_WAPPUSH_PORT & 0xFF;
    u[4] = MEMDS_WAPPUSH_SRC_PORT >> 8;
    u[5] = MEMDS_WAPPUSH_SRC_PORT & 0xFF;
}

static apr_status_t sms(apr_array_header_t **psegs, int legacy,
                        const void *san, apr_size_t len, unsigned char tid,
                        unsigned char ref, const char **why, apr_pool_t *p)
{
    const apr_size_t one = MEMDS_SMS_UD_MAX - UDH_PORTS_LEN;
    const apr_size_t per = MEMDS_SMS_UD_MAX - UDH_CONCAT_LEN;
    memds_buf_t pdu_buf;
    apr_size_t n, i;

    if (len == 0) {
        *why = "empty SAN";
        return APR_EINVAL;
    }
    memds_buf_init(&pdu_buf, len + 8, p);
    pdu(&pdu_buf, tid, legacy, san, len);
    n = pdu_buf.len <= one ? 1 : (pdu_buf.len + per - 1) / per;
    if (n > MEMDS_SMS_MAX_SEGS) {
        *why = "the SAN needs more than 255 SMS";
        return APR_EINVAL;
    }
    *psegs = apr_array_make(p, (int)n, sizeof(memds_sms_seg_t));
    for (i = 0; i < n; ++i) {
        memds_sms_seg_t *s = apr_array_push(*psegs);
        apr_size_t off = i * per;

        memset(s, 0, sizeof(*s));
        ports_ie(s->udh + 1);
        if (n == 1) {
            s->udh[0] = UDH_PORTS_LEN - 1;
            s->udh_len = UDH_PORTS_LEN;
            s->ud = (const unsigned char *)pdu_buf.data;
            s->ud_len = pdu_buf.len;
            break;
        }
        s->udh[0] = UDH_CONCAT_LEN - 1;
        s->udh[7] = IE_CONCAT_8BIT;
        s->udh[8] = 3;
        s->udh[9] = ref;
        s->udh[10] = (unsigned char)n;
        s->udh[11] = (unsigned char)(i + 1);
        s->udh_len = UDH_CONCAT_LEN;
        s->ud = (const unsigned char *)pdu_buf.data + off;
        s->ud_len = pdu_buf.len - off < per ? pdu_buf.len - off : per;
    }
    return APR_SUCCESS;
}

apr_status_t memds_wappush_sms(apr_array_header_t **psegs, const void *san,
                               apr_size_t len, unsigned char tid,
                               unsigned char ref, const char **why,
                               apr_pool_t *p)
{
    return sms(psegs, 0, san, len, tid, ref, why, p);
}

apr_status_t memds_wappush_sms_legacy(apr_array_header_t **psegs,
                                      const void *san, apr_size_t len,
                                      unsigned char tid, unsigned char ref,
                                      const char **why, apr_pool_t *p)
{
    return sms(psegs, 1, san, len, tid, ref, why, p);
}

int memds_sms_number_ok(const char *s)
{
    return s != NULL && memds_push_channel_check("sms", s) == NULL;
}
