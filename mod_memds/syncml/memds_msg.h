/**
 * @file memds_msg.h
 * The SyncML message model (SyncML 1.0-1.2, RepPro + MetInf + DevInf),
 * decoded from and encoded to XML or WBXML through the element tree of
 * memds_tree.h. All structs come from the pool given to the decoder or
 * builder and live as long as it.
 *
 * Strictness: every element the DTDs define for a place is modelled; an
 * element that is known but not allowed where it stands, or unknown, is an
 * error with a message naming it ("<Foo> is not allowed in <Add>"), never
 * silently dropped. Unknown *values* (alert codes, SyncTypes, Ext) are kept.
 */
#ifndef MEMDS_MSG_H
#define MEMDS_MSG_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "syncml/memds_tree.h"

/** Wire encodings. */
typedef enum {
    MEMDS_ENC_AUTO = 0, /**< decode only: detect from the bytes */
    MEMDS_ENC_XML,
    MEMDS_ENC_WBXML
} memds_enc_e;

/** Not set (integers of the model). */
#define MEMDS_NOVAL (-1)

/** Opaque bytes (item data, credentials). */
typedef struct memds_bytes_t {
    const char *data; /**< NUL-terminated for convenience; may contain NULs */
    apr_size_t len;
} memds_bytes_t;

typedef struct memds_anchor_t {
    const char *last; /**< NULL when absent */
    const char *next;
} memds_anchor_t;

typedef struct memds_mem_t {
    int shared_mem;
    const char *free_mem, *free_id;
} memds_mem_t;

/** MetInf (Meta, and MetInf inside Data). Strings NULL when absent. */
typedef struct memds_meta_t {
    const char *type, *format, *mark, *version, *next_nonce;
    apr_int64_t size, max_msg_size,
        max_obj_size; /**< MEMDS_NOVAL when absent */
    memds_anchor_t *anchor;
    memds_mem_t *mem;
    apr_array_header_t *emi; /**< const char *; NULL when none */
    int field_level;
} memds_meta_t;

typedef struct memds_item_t memds_item_t;

/**
 * 1.2 Filter (in an Alert item Target): Meta (Type: the filtered CTType),
 * Field (one Item whose Data holds DevInf <Property> elements,
 * MEMDS_DATA_PROPS, e.g. emailitem with MaxSize and PropParams), Record (one
 * Item whose Data is the filter expression as bytes, its Meta Type the
 * grammar, e.g. syncml:filtertype-cgi), FilterType (INCLUSIVE / EXCLUSIVE;
 * NULL when absent, which means EXCLUSIVE). Field and Record in either
 * order on input; encoded Field first.
 */
typedef struct memds_filter_t {
    memds_meta_t *meta;
    memds_item_t *field, *record;
    const char *filter_type;
} memds_filter_t;

/** Target / Source: LocURI, LocName, and (Target only) Filter. */
typedef struct memds_loc_t {
    const char *uri;
    const char *name;       /**< NULL when absent */
    memds_filter_t *filter; /**< NULL when absent */
} memds_loc_t;

typedef struct memds_cred_t {
    memds_meta_t *meta;
    memds_bytes_t data;
} memds_cred_t;

typedef struct memds_devinf_t memds_devinf_t;

/** What an Item's Data holds. */
typedef enum {
    MEMDS_DATA_NONE = 0, /**< no <Data> */
    MEMDS_DATA_BYTES,    /**< payload bytes (data) */
    MEMDS_DATA_DEVINF,   /**< a DevInf document (devinf) */
    MEMDS_DATA_META, /**< MetInf elements, e.g. Anchor in a Status item (data_meta) */
    MEMDS_DATA_PROPS /**< DevInf <Property> elements: a Filter's Field (props) */
} memds_data_e;

struct memds_item_t {
    memds_loc_t *target, *source;
    const char *target_parent, *source_parent; /**< LocURI of each (1.2) */
    memds_meta_t *meta;
    memds_data_e data_kind;
    memds_bytes_t data;
    int data_opaque; /**< came as / goes as WBXML OPAQUE */
    memds_devinf_t *devinf;
    memds_meta_t *data_meta;
    apr_array_header_t *props; /**< memds_property_t *: MEMDS_DATA_PROPS */
    int more_data;
};

typedef struct memds_mapitem_t {
    const char *target; /**< server GUID */
    const char *source; /**< client LUID */
} memds_mapitem_t;

typedef enum {
    MEMDS_CMD_ADD,
    MEMDS_CMD_ALERT,
    MEMDS_CMD_ATOMIC,
    MEMDS_CMD_COPY,
    MEMDS_CMD_DELETE,
    MEMDS_CMD_EXEC,
    MEMDS_CMD_GET,
    MEMDS_CMD_MAP,
    MEMDS_CMD_MOVE,
    MEMDS_CMD_PUT,
    MEMDS_CMD_REPLACE,
    MEMDS_CMD_RESULTS,
    MEMDS_CMD_SEARCH,
    MEMDS_CMD_SEQUENCE,
    MEMDS_CMD_STATUS,
    MEMDS_CMD_SYNC,
    MEMDS_CMD_COUNT
} memds_cmd_e;

/** Element name of a command ("Add", ...). */
const char *memds_cmd_name(memds_cmd_e type);

/**
 * One command. Which fields a command uses follows its content model in
 * the RepPro DTD (syncml-core.md 1.5); the others stay NULL/0.
 */
typedef struct memds_cmd_t memds_cmd_t;
struct memds_cmd_t {
    memds_cmd_e type;
    const char *cmd_id;
    int no_resp;
    memds_cred_t *cred;
    memds_meta_t *meta;
    apr_array_header_t
        *items; /**< memds_item_t *; Add..Status, Results, Alert */
    /* Delete */
    int archive, sft_del;
    /* Alert: code; Status: status code; Search: data */
    const char *data;
    const char *correlator; /**< Alert, Exec (1.2) */
    const char *lang;       /**< Get, Put, Search */
    /* Status, Results */
    const char *msg_ref, *cmd_ref, *cmd;
    apr_array_header_t *target_refs, *source_refs; /**< const char * */
    memds_meta_t *chal;                            /**< Status: Chal's Meta */
    /* Sync, Map, Search (Search: sources) */
    memds_loc_t *target, *source;
    apr_array_header_t *sources;   /**< Search: memds_loc_t * */
    const char *number_of_changes; /**< Sync */
    apr_array_header_t *map_items; /**< Map: memds_mapitem_t * */
    apr_array_header_t *cmds;      /**< Sync, Atomic, Sequence: memds_cmd_t * */
    int no_results;                /**< Search */
};

typedef struct memds_hdr_t {
    const char *verdtd, *verproto, *session_id, *msg_id;
    memds_loc_t *target, *source;
    const char *resp_uri;
    int no_resp;
    memds_cred_t *cred;
    memds_meta_t *meta;
} memds_hdr_t;

typedef struct memds_msg_t {
    memds_ver_e version;
    memds_hdr_t hdr;
    apr_array_header_t *cmds; /**< memds_cmd_t * */
    int final;
} memds_msg_t;

/* ------------------------------------------------------------- DevInf */

typedef struct memds_ctver_t {
    const char *ct_type, *ver_ct;
} memds_ctver_t;

typedef struct memds_propparam_t {
    const char *name, *data_type, *display_name;
    apr_array_header_t *val_enums; /**< const char * */
} memds_propparam_t;

typedef struct memds_property_t {
    const char *name, *data_type, *max_occur, *max_size, *display_name;
    int no_truncate;
    apr_array_header_t *val_enums; /**< const char * */
    apr_array_header_t *params;    /**< memds_propparam_t * */
} memds_property_t;

typedef struct memds_ctcap_t {
    const char *ct_type, *ver_ct;
    int field_level;
    apr_array_header_t *props; /**< memds_property_t * */
} memds_ctcap_t;

typedef struct memds_filtercap_t {
    const char *ct_type, *ver_ct;
    apr_array_header_t *keywords, *prop_names; /**< const char * */
} memds_filtercap_t;

typedef struct memds_datastore_t {
    const char *source_ref, *display_name, *max_guid_size;
    memds_ctver_t *rx_pref, *tx_pref;
    apr_array_header_t *rx, *tx; /**< memds_ctver_t * */
    apr_array_header_t *ctcaps;  /**< memds_ctcap_t * (1.2) */
    int has_dsmem, dsmem_shared;
    const char *dsmem_max_mem, *dsmem_max_id;
    int hierarchical;                /**< SupportHierarchicalSync */
    apr_array_header_t *sync_types;  /**< const char * (values as sent) */
    apr_array_header_t *filter_rx;   /**< memds_ctver_t * */
    apr_array_header_t *filter_caps; /**< memds_filtercap_t * */
} memds_datastore_t;

/* memds_ext_t (an Ext: name and values) is in util/memds_buf.h. */

struct memds_devinf_t {
    memds_ver_e version; /**< from VerDTD */
    const char *verdtd, *man, *mod, *oem, *fwv, *swv, *hwv, *devid, *devtyp;
    int utc, large_objs, number_of_changes;
    apr_array_header_t *datastores; /**< memds_datastore_t * */
    /** DevInf 1.1 top-level CTCap: a flat sequence kept as its tree. */
    apr_array_header_t *ctcaps11; /**< memds_node_t * */
    apr_array_header_t *exts;     /**< memds_ext_t * */
};

/* ------------------------------------------------------------ codec */

/** Guess the encoding of a message from its first bytes. */
memds_enc_e memds_msg_sniff(const char *buf, apr_size_t len);

/**
 * Decode one message. enc MEMDS_ENC_AUTO sniffs. On failure err says what
 * and where; nothing is returned.
 */
apr_status_t memds_msg_decode(memds_msg_t **pmsg, const char *buf,
                              apr_size_t len, memds_enc_e enc,
                              memds_codec_err_t *err, apr_pool_t *p);

/** Model -> tree (for encoding, sizing and comparing). */
memds_tree_t *memds_msg_to_tree(const memds_msg_t *m, apr_pool_t *p);
/** Tree -> model, with the strict checks described above. */
apr_status_t memds_msg_from_tree(memds_msg_t **pmsg, const memds_tree_t *t,
                                 memds_codec_err_t *err, apr_pool_t *p);

/** Encode one message in XML or WBXML, appended to out. */
apr_status_t memds_msg_encode(memds_buf_t *out, const memds_msg_t *m,
                              memds_enc_e enc, memds_codec_err_t *err,
                              apr_pool_t *p);

/** DevInf <-> tree (root <DevInf>). */
apr_status_t memds_devinf_from_tree(memds_devinf_t **pdi,
                                    const memds_node_t *root,
                                    memds_codec_err_t *err, apr_pool_t *p);
memds_node_t *memds_devinf_to_tree(const memds_devinf_t *di, apr_pool_t *p);

/* ---------------------------------------------------- size accounting */

/**
 * Size accounting for filling a message up to the peer's MaxMsgSize:
 * start with the header (and commands already placed), ask what a command
 * would add before appending it, and read the total the message would have
 * if closed now (with or without Final). Exact for both encodings.
 */
typedef struct memds_sizer_t {
    memds_enc_e enc;
    memds_ver_e version;
    apr_size_t open_size; /**< bytes up to and including the last command */
    int page;             /**< WBXML code page current after the last command */
    apr_pool_t *pool;
} memds_sizer_t;

/** Start sizing a message whose header is m's (m's commands are counted too). */
void memds_sizer_init(memds_sizer_t *sz, const memds_msg_t *m, memds_enc_e enc,
                      apr_pool_t *p);
/** Bytes that appending cmd to SyncBody would add. */
apr_size_t memds_sizer_cmd_size(const memds_sizer_t *sz,
                                const memds_cmd_t *cmd);
/** Account cmd as appended. */
void memds_sizer_add(memds_sizer_t *sz, const memds_cmd_t *cmd);
/** Size of the complete message if closed now. */
apr_size_t memds_sizer_total(const memds_sizer_t *sz, int final);

#endif /* MEMDS_MSG_H */
