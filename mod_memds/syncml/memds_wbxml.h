/**
 * @file memds_wbxml.h
 * The WBXML wire codec of SyncML: decodes a document into the element tree
 * (memds_tree.h) and encodes a tree back, with exact sizes for the package
 * builder.
 */
#ifndef MEMDS_WBXML_H
#define MEMDS_WBXML_H

#include "syncml/memds_tree.h"

/**
 * Decode WBXML 1.1-1.3 straight into the tree (decision 7 of DESIGN.md):
 * public id numeric or from the string table (or unknown: then version from
 * the root's VerDTD), charset UTF-8, string table, SWITCH_PAGE, END, STR_I,
 * STR_T, OPAQUE, ENTITY. Attributes, LITERAL tags, extensions and PIs are
 * refused. A <Data> OPAQUE holding a nested DevInf document (when the
 * command's or item's Meta Type is application/vnd.syncml-devinf+wbxml) is
 * decoded into a DevInf subtree; any other OPAQUE stays bytes (opaque=1).
 */
apr_status_t memds_wbxml_decode(memds_tree_t **ptree, const char *buf,
                                apr_size_t len, memds_codec_err_t *err,
                                apr_pool_t *p);

/**
 * Encode as WBXML 1.2, appended to out: numeric public id, UTF-8, no
 * string table; leaves as STR_I unless opaque, containing NUL or not valid
 * UTF-8 (then OPAQUE); <Data> bytes always OPAQUE (except text in a Data
 * typed as DevInf, written as STR_I so that it is not taken for a nested
 * document); a nested DevInf subtree as an OPAQUE holding a complete
 * DevInf document. Type values "application/vnd.syncml-devinf+xml" are
 * written as "+wbxml". Page switches only where the next tag needs another
 * page.
 */
apr_status_t memds_wbxml_encode(memds_buf_t *out, const memds_tree_t *tree,
                                memds_codec_err_t *err);

/** Exact number of bytes memds_wbxml_encode writes for node n when the
 *  current code page before it is *page; *page is updated to the page
 *  current after it. 0 for a subtree the encoder refuses. */
apr_size_t memds_wbxml_node_size(const memds_node_t *n, int *page);

#endif /* MEMDS_WBXML_H */
