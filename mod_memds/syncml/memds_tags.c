/* memds_tags.c: the SyncML, MetInf and DevInf tag tables (names and WBXML
 * tokens from the OMA SyncML RepPro / MetInf / DevInf DTDs: code pages 0
 * and 1 of "-//SYNCML//DTD SyncML 1.2//EN" and the DevInf document). */
#include "syncml/memds_tree.h"

#include <string.h>

#define S(tok, name, fl) \
    { \
        name, MEMDS_TS_SYNCML, tok, fl, sizeof(name) - 1 \
    }
#define M(tok, name, fl) \
    { \
        name, MEMDS_TS_METINF, tok, fl, sizeof(name) - 1 \
    }
#define D(tok, name, fl) \
    { \
        name, MEMDS_TS_DEVINF, tok, fl, sizeof(name) - 1 \
    }
#define E MEMDS_TAGF_EMPTY
#define V12 MEMDS_TAGF_V12
#define V11 MEMDS_TAGF_V11

/* Indexed by token - 5. */
static const memds_tag_t syncml_tags[] = {
    S(0x05, "Add", 0),
    S(0x06, "Alert", 0),
    S(0x07, "Archive", E),
    S(0x08, "Atomic", 0),
    S(0x09, "Chal", 0),
    S(0x0A, "Cmd", 0),
    S(0x0B, "CmdID", 0),
    S(0x0C, "CmdRef", 0),
    S(0x0D, "Copy", 0),
    S(0x0E, "Cred", 0),
    S(0x0F, "Data", MEMDS_TAGF_DATA),
    S(0x10, "Delete", 0),
    S(0x11, "Exec", 0),
    S(0x12, "Final", E),
    S(0x13, "Get", 0),
    S(0x14, "Item", 0),
    S(0x15, "Lang", 0),
    S(0x16, "LocName", 0),
    S(0x17, "LocURI", 0),
    S(0x18, "Map", 0),
    S(0x19, "MapItem", 0),
    S(0x1A, "Meta", 0),
    S(0x1B, "MsgID", 0),
    S(0x1C, "MsgRef", 0),
    S(0x1D, "NoResp", E),
    S(0x1E, "NoResults", E),
    S(0x1F, "Put", 0),
    S(0x20, "Replace", 0),
    S(0x21, "RespURI", 0),
    S(0x22, "Results", 0),
    S(0x23, "Search", 0),
    S(0x24, "Sequence", 0),
    S(0x25, "SessionID", 0),
    S(0x26, "SftDel", E),
    S(0x27, "Source", 0),
    S(0x28, "SourceRef", 0),
    S(0x29, "Status", 0),
    S(0x2A, "Sync", 0),
    S(0x2B, "SyncBody", 0),
    S(0x2C, "SyncHdr", 0),
    S(0x2D, "SyncML", 0),
    S(0x2E, "Target", 0),
    S(0x2F, "TargetRef", 0),
    { NULL, 0, 0x30, 0, 0 } /* reserved */,
    S(0x31, "VerDTD", 0),
    S(0x32, "VerProto", 0),
    S(0x33, "NumberOfChanges", V11),
    S(0x34, "MoreData", E | V11),
    S(0x35, "Field", V12),
    S(0x36, "Filter", V12),
    S(0x37, "Record", V12),
    S(0x38, "FilterType", V12),
    /* SourceParent is accepted in 1.1 too (Nokia), like libwbxml does. */
    S(0x39, "SourceParent", 0),
    S(0x3A, "TargetParent", V12),
    S(0x3B, "Move", V12),
    S(0x3C, "Correlator", V12),
};

static const memds_tag_t metinf_tags[] = {
    M(0x05, "Anchor", 0),       M(0x06, "EMI", 0),
    M(0x07, "Format", 0),       M(0x08, "FreeID", 0),
    M(0x09, "FreeMem", 0),      M(0x0A, "Last", 0),
    M(0x0B, "Mark", 0),         M(0x0C, "MaxMsgSize", 0),
    M(0x0D, "Mem", 0),          M(0x0E, "MetInf", 0),
    M(0x0F, "Next", 0),         M(0x10, "NextNonce", 0),
    M(0x11, "SharedMem", E),    M(0x12, "Size", 0),
    M(0x13, "Type", 0),         M(0x14, "Version", 0),
    M(0x15, "MaxObjSize", V11), M(0x16, "FieldLevel", E | V12),
};

static const memds_tag_t devinf_tags[] = {
    D(0x05, "CTCap", 0),
    D(0x06, "CTType", 0),
    D(0x07, "DataStore", 0),
    D(0x08, "DataType", 0),
    D(0x09, "DevID", 0),
    D(0x0A, "DevInf", 0),
    D(0x0B, "DevTyp", 0),
    D(0x0C, "DisplayName", 0),
    D(0x0D, "DSMem", 0),
    D(0x0E, "Ext", 0),
    D(0x0F, "FwV", 0),
    D(0x10, "HwV", 0),
    D(0x11, "Man", 0),
    D(0x12, "MaxGUIDSize", 0),
    D(0x13, "MaxID", 0),
    D(0x14, "MaxMem", 0),
    D(0x15, "Mod", 0),
    D(0x16, "OEM", 0),
    D(0x17, "ParamName", 0),
    D(0x18, "PropName", 0),
    D(0x19, "Rx", 0),
    D(0x1A, "Rx-Pref", 0),
    D(0x1B, "SharedMem", E),
    /* 0x1C is Size in DevInf 1.1 and MaxSize in 1.2: one token, two names;
     * the table keeps MaxSize, memds_tag_by_name maps "Size" to it too. */
    D(0x1C, "MaxSize", 0),
    D(0x1D, "SourceRef", 0),
    D(0x1E, "SwV", 0),
    D(0x1F, "SyncCap", 0),
    D(0x20, "SyncType", 0),
    D(0x21, "Tx", 0),
    D(0x22, "Tx-Pref", 0),
    D(0x23, "ValEnum", 0),
    D(0x24, "VerCT", 0),
    D(0x25, "VerDTD", 0),
    D(0x26, "XNam", 0),
    D(0x27, "XVal", 0),
    D(0x28, "UTC", E),
    D(0x29, "SupportNumberOfChanges", E),
    D(0x2A, "SupportLargeObjs", E),
    D(0x2B, "Property", 0),
    D(0x2C, "PropParam", 0),
    D(0x2D, "MaxOccur", 0),
    D(0x2E, "NoTruncate", E),
    { NULL, 0, 0x2F, 0, 0 } /* unassigned */,
    D(0x30, "Filter-Rx", 0),
    D(0x31, "FilterCap", 0),
    D(0x32, "FilterKeyword", 0),
    D(0x33, "FieldLevel", E),
    D(0x34, "SupportHierarchicalSync", E),
};

static const memds_tag_t devinf_size_alias = D(0x1C, "Size", 0);

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const memds_tag_t *table(memds_ts_e ts, apr_size_t *n)
{
    switch (ts) {
    case MEMDS_TS_SYNCML: *n = COUNT(syncml_tags); return syncml_tags;
    case MEMDS_TS_METINF: *n = COUNT(metinf_tags); return metinf_tags;
    case MEMDS_TS_DEVINF: *n = COUNT(devinf_tags); return devinf_tags;
    }
    *n = 0;
    return NULL;
}

const memds_tag_t *memds_tag_by_name(memds_ts_e ts, const char *name,
                                     apr_size_t len)
{
    apr_size_t n, i;
    const memds_tag_t *t = table(ts, &n);

    if (len == 0) {
        return NULL;
    }
    for (i = 0; i < n; ++i) {
        /* (the length and the first byte first: every element built or
         * read looks its tag up here; a reserved entry has length 0) */
        if (t[i].len == len && t[i].name[0] == name[0]
            && memcmp(t[i].name, name, len) == 0) {
            return &t[i];
        }
    }
    if (ts == MEMDS_TS_DEVINF && len == 4 && memcmp(name, "Size", 4) == 0) {
        return &devinf_size_alias;
    }
    return NULL;
}

const memds_tag_t *memds_tag_by_tok(memds_ts_e ts, unsigned tok)
{
    apr_size_t n;
    const memds_tag_t *t = table(ts, &n);

    if (tok < 0x05 || tok - 0x05 >= n || t[tok - 0x05].name == NULL) {
        return NULL;
    }
    return &t[tok - 0x05];
}

const memds_tag_t *const memds_tag_SyncML = &syncml_tags[0x2D - 5];
const memds_tag_t *const memds_tag_DevInf = &devinf_tags[0x0A - 5];
const memds_tag_t *const memds_tag_Data = &syncml_tags[0x0F - 5];
