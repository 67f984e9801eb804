/**
 * @file memds_tree.h
 * The element tree that both wire encodings of SyncML (XML and WBXML) are
 * decoded into and encoded from. The typed message model (memds_msg.h) is
 * built on top of it. One node per element; leaves carry their content as
 * bytes (text or opaque). Every element name is one of the tag tables
 * (memds_tags.c): SyncML 1.1/1.2 (WBXML page 0), MetInf (page 1) and DevInf
 * (a separate WBXML document nested as OPAQUE in <Data>).
 *
 * The wire codecs have their own headers: memds_xml.h and memds_wbxml.h.
 *
 * Everything is allocated from the pool given to the decoder / builder; the
 * tree lives as long as that pool. Trees are not shared between threads.
 */
#ifndef MEMDS_TREE_H
#define MEMDS_TREE_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "util/memds_buf.h" /* memds_buf_t, memds_codec_err_t */

/** Tag spaces: where a tag lives (XML namespace / WBXML code page). */
typedef enum {
    MEMDS_TS_SYNCML = 0, /**< SYNCML:SYNCML1.x, WBXML page 0 */
    MEMDS_TS_METINF = 1, /**< syncml:metinf, WBXML page 1 */
    MEMDS_TS_DEVINF = 2  /**< syncml:devinf, page 0 of a nested document */
} memds_ts_e;

/** Protocol versions (also select public ids and namespaces). */
typedef enum { MEMDS_V10 = 10, MEMDS_V11 = 11, MEMDS_V12 = 12 } memds_ver_e;

/** Tag flags. */
#define MEMDS_TAGF_V12 \
    0x01 /**< defined in 1.2 (the XML codec refuses it in 1.0/1.1 documents; WBXML accepts it, as old Nokia phones use it) */
#define MEMDS_TAGF_EMPTY \
    0x02 /**< a flag element, never has content (<Final/>) */
#define MEMDS_TAGF_DATA \
    0x04 /**< <Data>: opaque bytes, or a nested element tree */
#define MEMDS_TAGF_V11 \
    0x08 /**< defined since 1.1 (MaxObjSize, MoreData, NumberOfChanges): the XML encoder refuses it in 1.0 documents; both decoders accept it */

/** One entry of a tag table. */
typedef struct memds_tag_t {
    const char *name; /**< element name as in XML */
    unsigned char ts; /**< memds_ts_e */
    unsigned char
        tok; /**< WBXML token (0x05..0x3F), without content/attr bits */
    unsigned char flags; /**< MEMDS_TAGF_* */
    unsigned char len;   /**< strlen(name) (0 for an unassigned token) */
} memds_tag_t;

/** Look a tag up by tag space and name; NULL if unknown. */
const memds_tag_t *memds_tag_by_name(memds_ts_e ts, const char *name,
                                     apr_size_t len);
/** Look a tag up by tag space and WBXML token; NULL if unknown. */
const memds_tag_t *memds_tag_by_tok(memds_ts_e ts, unsigned tok);

/* Well-known tags, for builders and the model (defined in memds_tags.c). */
extern const memds_tag_t *const memds_tag_SyncML, *const memds_tag_DevInf,
                                                      *const memds_tag_Data;

typedef struct memds_node_t memds_node_t;

/** One element. */
struct memds_node_t {
    const memds_tag_t *tag;
    memds_node_t *parent, *next, *first, *last; /**< siblings and children */
    /** Content of a leaf: NULL for an element with child elements or none
     *  at all; else len bytes (not NUL-terminated in general, though the
     *  decoders add a NUL after them for convenience). */
    const char *text;
    apr_size_t len;
    /** The content is binary (WBXML OPAQUE): encoders keep it opaque in
     *  WBXML; in XML it is escaped text (it must then be valid UTF-8 without
     *  XML-forbidden control characters, or encoding fails). */
    int opaque;
};

/** A decoded document: root <SyncML> (or <DevInf> for a nested one). */
typedef struct memds_tree_t {
    memds_node_t *root;
    memds_ver_e version; /**< from the namespace / public id */
    int wbxml_version; /**< 0x02 (1.2) or 0x03 (1.3) when decoded from WBXML, else 0 */
} memds_tree_t;

/** Limits applied by both decoders. */
#define MEMDS_CODEC_MAX_DEPTH 32 /**< element nesting (SyncML needs < 20) */
#define MEMDS_CODEC_MAX_NODES 1000000 /**< elements per message */

/* ----------------------------------------------------------- building */

/** New element (no content). */
memds_node_t *memds_node_new(const memds_tag_t *tag, apr_pool_t *p);
/** Append child to parent; returns child. */
memds_node_t *memds_node_add(memds_node_t *parent, memds_node_t *child);
/** New child element with text content (copied) appended to parent. */
memds_node_t *memds_node_add_text(memds_node_t *parent, const memds_tag_t *tag,
                                  const char *text, apr_size_t len,
                                  apr_pool_t *p);
/** Same without the copy: the node points at text, which must outlive the
 *  tree (an outgoing message's item data, sized and encoded several times
 *  per message: copying a mail each time was half of httpd's CPU in a
 *  mail folder's first sync, docs/performance.md). */
memds_node_t *memds_node_add_ref(memds_node_t *parent, const memds_tag_t *tag,
                                 const char *text, apr_size_t len,
                                 apr_pool_t *p);
/** Same, with a NUL-terminated string; NULL text adds nothing and returns NULL. */
memds_node_t *memds_node_add_str(memds_node_t *parent, const memds_tag_t *tag,
                                 const char *s, apr_pool_t *p);
/** First child with this tag name (any tag space), or NULL. */
memds_node_t *memds_node_child(const memds_node_t *n, const char *name);
/** The content as a NUL-terminated string with surrounding blanks trimmed
 *  (for numbers and names); "" when empty; from p. */
const char *memds_node_str(const memds_node_t *n, apr_pool_t *p);

#endif /* MEMDS_TREE_H */
