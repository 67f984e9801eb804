/* Unit tests: syncml/memds_msg_min.c (interim SyncML answer). */
#include "unit.h"
#include "syncml/memds_msg_min.h"

#include <apr_strings.h>
#include <string.h>

#define CAPTURES MEMDS_SRCDIR "/../shared/interop/captures/pkg1/"

static void respond_xml_capture(void)
{
    apr_size_t len, olen = 0;
    const char *in = unit_read_file(CAPTURES "xml-basic-001-req.xml", &len);
    const char *out = NULL, *err = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_EQUAL_FATAL(memds_msg_min_respond(&out, &olen, &err, in, len, 0,
                                                unit_pool), APR_SUCCESS);
    out = apr_pstrmemdup(unit_pool, out, olen);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<SyncML xmlns=\"SYNCML:SYNCML1.2\">"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<SessionID>5</SessionID>"));
    /* Target of the answer is the client's device id */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<Target><LocURI>syncevolution-"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>"));
    /* Put (1), Get (2), Alert (3) each refused with 501 */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<CmdRef>1</CmdRef><Cmd>Put</Cmd><Data>501</Data>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<CmdRef>3</CmdRef><Cmd>Alert</Cmd><Data>501</Data>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<Final/></SyncBody></SyncML>"));
}

static void respond_wbxml_capture(void)
{
    apr_size_t len, olen = 0;
    const char *in = unit_read_file(CAPTURES "wbxml-basic-001-req.wbxml", &len);
    const char *out = NULL, *err = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(in);
    CU_ASSERT_EQUAL_FATAL(memds_msg_min_respond(&out, &olen, &err, in, len, 1,
                                                unit_pool), APR_SUCCESS);
    CU_ASSERT_FATAL(olen > 4);
    /* WBXML 1.2, public id of SyncML 1.2 (0x1201 as mb_u_int32 0xa4 0x01) */
    CU_ASSERT_EQUAL((unsigned char)out[0], 0x02);
}

static void escapes_echoed_values(void)
{
    const char *in = "<SyncML><SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2"
        "</VerProto><SessionID>a&amp;b&lt;</SessionID><MsgID>7</MsgID><Target>"
        "<LocURI>http://x/sync</LocURI></Target><Source><LocURI>dev</LocURI>"
        "</Source></SyncHdr><SyncBody><Final/></SyncBody></SyncML>";
    const char *out = NULL, *err = NULL;
    apr_size_t olen;

    CU_ASSERT_EQUAL_FATAL(memds_msg_min_respond(&out, &olen, &err, in,
                                                strlen(in), 0, unit_pool),
                          APR_SUCCESS);
    out = apr_pstrmemdup(unit_pool, out, olen);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<SessionID>a&amp;b&lt;</SessionID>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "<MsgRef>7</MsgRef>"));
}

static void expect_einval(const char *in, apr_size_t len, int wbxml,
                          const char *needle)
{
    const char *out = NULL, *err = NULL;
    apr_size_t olen;

    CU_ASSERT_EQUAL(memds_msg_min_respond(&out, &olen, &err, in, len, wbxml,
                                          unit_pool), APR_EINVAL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    if (needle && !strstr(err, needle)) {
        fprintf(stderr, "\n  error '%s' lacks '%s'\n", err, needle);
        CU_FAIL("error message");
    }
}

static void rejects_bad_input(void)
{
    static const char laughs[] =
        "<?xml version=\"1.0\"?><!DOCTYPE SyncML [<!ENTITY a \"aaaaaaaa\">"
        "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;\">"
        "]><SyncML><SyncHdr>&c;</SyncHdr></SyncML>";
    static const char xxe[] =
        "<?xml version=\"1.0\"?><!DOCTYPE SyncML [<!ENTITY x SYSTEM "
        "\"file:///etc/passwd\">]><SyncML><SyncHdr>&x;</SyncHdr></SyncML>";
    char *deep;
    int i;

    expect_einval("", 0, 0, "empty");
    expect_einval("<SyncML><SyncHdr>", 17, 0, "malformed XML");
    expect_einval("<html><body/></html>", 20, 0, "<html>");
    expect_einval("<SyncML><SyncHdr/><SyncBody/></SyncML>", 38, 0, "SyncHdr lacks");
    expect_einval(laughs, sizeof(laughs) - 1, 0, "entity");
    expect_einval(xxe, sizeof(xxe) - 1, 0, "entity");
    expect_einval("\x02\xa4\x01\x6a\x00", 5, 1, NULL); /* truncated WBXML */
    expect_einval("\xff\xff\xff\xff", 4, 1, "WBXML");
    deep = apr_palloc(unit_pool, 100 * 7 + 100 * 8 + 64);
    strcpy(deep, "<SyncML>");
    for (i = 0; i < 100; ++i) strcat(deep, "<a>");
    for (i = 0; i < 100; ++i) strcat(deep, "</a>");
    strcat(deep, "</SyncML>");
    expect_einval(deep, strlen(deep), 0, "nested deeper");
}

void unit_add_msg_min(void)
{
    CU_pSuite s = CU_add_suite("msg_min", NULL, NULL);

    CU_add_test(s, "answers an XML capture", respond_xml_capture);
    CU_add_test(s, "answers a WBXML capture", respond_wbxml_capture);
    CU_add_test(s, "escapes echoed values", escapes_echoed_values);
    CU_add_test(s, "rejects bad input", rejects_bad_input);
}
