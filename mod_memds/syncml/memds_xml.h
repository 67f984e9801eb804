/**
 * @file memds_xml.h
 * The XML wire codec of SyncML: decodes a document into the element tree
 * (memds_tree.h) and encodes a tree back, with exact sizes for the package
 * builder.
 */
#ifndef MEMDS_XML_H
#define MEMDS_XML_H

#include "syncml/memds_tree.h"

/**
 * Decode XML (libxml2 with DTD loading, entity substitution and network off;
 * a DOCTYPE with an internal subset is refused). Unknown elements, elements
 * of the wrong namespace and text where only elements may be are errors.
 * <Data> holds either bytes (text and CDATA sections joined, exactly as the
 * parser delivers them) or one nested element tree (DevInf, or MetInf
 * elements such as an Anchor in a Status item).
 */
apr_status_t memds_xml_decode(memds_tree_t **ptree, const char *buf,
                              apr_size_t len, memds_codec_err_t *err,
                              apr_pool_t *p);
/** The same for a stored DevInf document (root <DevInf xmlns='syncml:devinf'>,
 *  as the engine keeps a client's DevInf); the tree's root is the DevInf. */
apr_status_t memds_xml_decode_devinf(memds_tree_t **ptree, const char *buf,
                                     apr_size_t len, memds_codec_err_t *err,
                                     apr_pool_t *p);

/**
 * Encode as XML: no declaration of DTD, namespace on the root and on the
 * first element of each other tag space (xmlns='syncml:metinf' on each
 * MetInf element, as libsynthesis does), text escaped (&lt; &amp; &gt;, CR
 * as &#13;) so every byte survives a conforming parser; no whitespace added.
 * Type values "application/vnd.syncml-devinf+wbxml" are written as "+xml".
 * Fails (APR_EINVAL, err->msg) when content cannot be carried by XML 1.0
 * (invalid UTF-8, NUL or other forbidden control characters).
 */
apr_status_t memds_xml_encode(memds_buf_t *out, const memds_tree_t *tree,
                              memds_codec_err_t *err);

/** Exact number of bytes memds_xml_encode writes for node n (and its
 *  subtree) at its place in a document (namespace declarations included). */
apr_size_t memds_xml_node_size(const memds_node_t *n);

#endif /* MEMDS_XML_H */
