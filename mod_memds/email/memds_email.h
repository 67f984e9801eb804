/**
 * @file memds_email.h
 * The OMA DS 1.2 Email and Folder data objects
 * (application/vnd.omads-email+xml, application/vnd.omads-folder+xml):
 * models, parsers, builders, and the mapping of the email flags to IMAP.
 * Reference: OMA-TS-DS_DataObjEmail-V1_2 (the Email object) and
 * OMA-TS-DS_DataObjFolder-V1_2 (the Folder object); docs/email-objects.md.
 *
 * Input is the bytes of a SyncML item's Data (after the SyncML codec took
 * off its own XML escaping or WBXML opaque wrapping). Parsing is liberal:
 * children in any order, element names case-insensitive, the known
 * Nokia/Funambol/libsynthesis variants of emailitem. It is strict where a
 * guess could lose data: unknown or repeated elements, bad values and
 * malformed XML are errors with a message naming the element and line.
 * Building is conservative: Nokia's element order, only present fields,
 * every byte of text escaped so that it survives a conforming XML parser.
 *
 * Everything comes from the pool passed in and lives as long as it. No
 * global state: the functions are thread-safe as long as a pool is not
 * shared between threads (libxml2 must have been initialised, which
 * xmlInitParser() called by the parsers does idempotently).
 */
#ifndef MEMDS_EMAIL_H
#define MEMDS_EMAIL_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include "util/memds_buf.h" /* memds_buf_t, memds_codec_err_t, memds_ext_t */

#define MEMDS_EMAIL_CTTYPE "application/vnd.omads-email+xml"
#define MEMDS_FOLDER_CTTYPE "application/vnd.omads-folder+xml"
#define MEMDS_EMAIL_VERCT "1.2"

/** Largest object the parsers look at (checked before parsing). A single
 *  text or CDATA piece is further limited by libxml2 to 10,000,000 bytes
 *  (XML_PARSE_HUGE stays off, DESIGN.md decision 8). */
#define MEMDS_EMAIL_MAX_INPUT ((apr_size_t)64 * 1024 * 1024)
/** Element nesting limit (the objects need 4). */
#define MEMDS_EMAIL_MAX_DEPTH 8
/** Element count limit per object. */
#define MEMDS_EMAIL_MAX_NODES 65536

/** A size that is absent. */
#define MEMDS_EMAIL_NOSIZE ((apr_int64_t)-1)

/** Tri-state boolean: an absent element means "unknown / unchanged",
 *  which is not the same as false. Zero is absent, so a pcalloc'ed
 *  object has every flag absent. */
typedef enum {
    MEMDS_EMAIL_ABSENT = 0,
    MEMDS_EMAIL_FALSE = 1,
    MEMDS_EMAIL_TRUE = 2
} memds_email_bool_e;

/** A date-time value (received, created, modified; folder dates). */
typedef struct memds_email_time_t {
    /** NULL: absent. Else the canonical basic ISO 8601 form,
     *  "YYYYMMDDTHHMMSSZ" (UTC; an input with a numeric offset is
     *  converted), or "YYYYMMDDTHHMMSS" for a floating (device-local)
     *  value. Authoritative for the builder. */
    const char *text;
    /** The instant; for a floating value the wall-clock time read as if
     *  it were UTC (the zone is the device's, which only the caller may
     *  know). Nokia's own parser reads even a "Z" value as local time;
     *  that is the device's affair, we always emit UTC with Z. */
    apr_time_t t;
    int floating; /**< 1: no zone given */
} memds_email_time_t;

/** A truncated body part (OMA <truncated><body>). */
typedef struct memds_email_tbody_t {
    apr_int64_t
        size; /**< bytes left out (we send the full original size); MEMDS_EMAIL_NOSIZE */
    const char *type; /**< MIME type; NULL when absent */
} memds_email_tbody_t;

/** An attachment that was not sent: OMA <truncated><attach>, or
 *  Funambol's x-funambol-attach Ext (which adds the download URL). */
typedef struct memds_email_attach_t {
    const char *
        name; /**< as sent (Funambol: maybe an RFC 2047 encoded-word); NULL when absent */
    apr_int64_t size; /**< MEMDS_EMAIL_NOSIZE when absent */
    const char *type; /**< NULL when absent */
    const char *url;  /**< Funambol only: XVal4; else NULL */
} memds_email_attach_t;

/** Funambol's truncation data, recognised in the Ext list by the parser
 *  (the Exts themselves stay in exts; the builder writes only exts). */
typedef struct memds_email_fnbl_t {
    apr_int64_t size;      /**< x-funambol-size: whole original message */
    apr_int64_t body_left; /**< x-funambol-body: body bytes not sent */
    apr_int64_t attach_n;  /**< x-funambol-attach-n: number of attachments */
    apr_array_header_t *
        attach; /**< memds_email_attach_t *, x-funambol-attach; NULL when none */
} memds_email_fnbl_t;

/** How the emailitem arrived (set by the parser, ignored by the builder). */
#define MEMDS_EMAIL_IF_CDATA \
    0x01 /**< at least one CDATA section (CRs were lost over XML) */
#define MEMDS_EMAIL_IF_QP 0x02 /**< enc="quoted-printable": decoded */
#define MEMDS_EMAIL_IF_FNBL_END \
    0x04 /**< Funambol's literal "]]&gt;" end marker was removed */
#define MEMDS_EMAIL_IF_ESCAPED \
    0x08 /**< the whole object came XML-escaped once more */

/** The Email object. */
typedef struct memds_email_t {
    memds_email_bool_e read, forwarded, replied, deleted, flagged;
    memds_email_time_t received, created, modified;
    /** 0: no <emailitem>, i.e. a flags-only update. */
    int has_item;
    const char *
        item; /**< the RFC 2822 bytes (NUL-terminated; may contain NULs after QP) */
    apr_size_t item_len;
    /** The builder may skip its check of item (XML carries every byte:
     *  the caller made memds_email_item_xml_safe true). */
    int item_checked;
    unsigned item_form; /**< MEMDS_EMAIL_IF_* */
    /** <truncated> present (possibly empty). */
    int has_truncated;
    apr_array_header_t
        *trunc_body; /**< memds_email_tbody_t *; NULL when none */
    apr_array_header_t
        *trunc_attach;        /**< memds_email_attach_t *; NULL when none */
    apr_array_header_t *exts; /**< memds_ext_t *; NULL when none */
    memds_email_fnbl_t fnbl;  /**< derived from exts by the parser */
} memds_email_t;

/** How the builder writes emailitem. */
typedef enum {
    /** Escaped text (& < > as entities, CR as &#13;): every byte survives
     *  any conforming XML parser, whatever the SyncML encoding. Default. */
    MEMDS_EMAIL_STYLE_TEXT = 0,
    /** One CDATA section, an inner "]]>" split as "]]]]><![CDATA[>". For
     *  clients that need CDATA. CRs cannot survive an XML parser in CDATA
     *  (end-of-line handling makes CR LF into LF), so over SyncML XML the
     *  device gets LF line ends; over WBXML the object is opaque bytes to
     *  the SyncML layer, and a device that searches the CDATA instead of
     *  XML-parsing it (Funambol's C++ client) gets them exactly. */
    MEMDS_EMAIL_STYLE_CDATA = 1
} memds_email_style_e;

/** A new Email object with everything absent. */
memds_email_t *memds_email_make(apr_pool_t *p);

/**
 * Parse an Email object: root <Email> in namespace syncml:email or none.
 * Hardened libxml2 (no DTD, no entities, no network; a DOCTYPE with an
 * internal subset is refused), UTF-8 only, input, depth and element count
 * limits. Accepted variants:
 * - children in any order; element names compared case-insensitively;
 *   attributes ignored except emailitem's enc;
 * - booleans true/false/1/0 (any case) or empty (= false);
 * - date-times in basic or extended ISO 8601, Z / numeric offset / none
 *   (floating), fractions of seconds ignored; an empty one is absent;
 * - emailitem as escaped text (exact), or as CDATA pieces joined
 *   (Nokia's "]]]]>&gt;<![CDATA[" split and libsynthesis' "]]>]<![CDATA[]>"
 *   included) with whitespace outside the first/last CDATA ignored;
 *   Funambol's "]]&gt;" end marker, both as an unterminated CDATA (the
 *   document is repaired and parsed again only if it is malformed as it
 *   stands) and as the tail of a CDATA section; enc="quoted-printable"
 *   (QP-decoded; 7bit, 8bit, binary: as is; any other enc is an error);
 * - a whole object escaped once more (starting "&lt;"): unescaped first.
 * The parser is a conforming XML parser: inside CDATA, CR LF and a lone
 * CR come out as LF (XML end-of-line handling), whichever SyncML encoding
 * carried the object; only text written with &#13; keeps its CRs. RFC 2822
 * allows CR only in CRLF, so memds_email_crlf() restores such an item
 * exactly before it goes to IMAP or SMTP (item_form has IF_CDATA).
 * Unknown elements (also inside truncated and Ext), repeated single
 * elements, text between elements, bad numbers and bad dates are errors.
 * On failure err (may be NULL) says what and where (err->line) and *pe is
 * untouched.
 */
apr_status_t memds_email_parse(memds_email_t **pe, const char *data,
                               apr_size_t len, memds_codec_err_t *err,
                               apr_pool_t *p);

/**
 * Append the object to out in Nokia's order: read, forwarded, replied,
 * received, created, modified, deleted, flagged, emailitem,
 * truncated (body*, attach*), Ext*; only present fields; no XML
 * declaration, no namespace; fnbl and item_form are not written (add the
 * Funambol Exts with memds_email_ext_add()). Fails with APR_EINVAL and a
 * message in err (may be NULL), writing nothing, when a value is invalid
 * (a date that does not parse, an Ext without XNam) or when text cannot
 * be carried by XML: NUL, C0 controls other than TAB/LF/CR, invalid
 * UTF-8, U+FFFE/U+FFFF. A real email may contain raw 8-bit bytes in
 * another charset; check memds_email_item_xml_safe() first and, for such
 * a message, re-encode the offending body parts (base64 /
 * quoted-printable, a MIME-level change the caller owns) or send it as
 * message/rfc822 with Meta Format b64 or over WBXML: the builder never
 * transfer-encodes behind the caller's back, because the device would
 * store different bytes than the mailbox holds.
 */
apr_status_t memds_email_build(memds_buf_t *out, const memds_email_t *e,
                               memds_email_style_e style,
                               memds_codec_err_t *err, apr_pool_t *p);

/**
 * 1 when len bytes can be carried as XML text (see memds_email_build()),
 * else 0 with *pbad (may be NULL) set to the offset of the first bad byte.
 */
int memds_email_item_xml_safe(const char *data, apr_size_t len,
                              apr_size_t *pbad);

/** Deep comparison (what the builder writes): 1 when equal. item_form and
 *  fnbl are not compared (fnbl follows from exts). */
int memds_email_equal(const memds_email_t *a, const memds_email_t *b);

/** 1 for a flags-only update (no emailitem). */
int memds_email_is_flags_only(const memds_email_t *e);

/** 1 when the object says something was left out: a <truncated> entry or
 *  Funambol's x-funambol-body > 0 / attachments listed. */
int memds_email_is_truncated(const memds_email_t *e);

/** 1 when what a device sent is its copy of a message rather than the
 *  message: the email object e (NULL for message/rfc822) carries
 *  <truncated> (even empty) or an x-funambol-body Ext, or the message msg
 *  (NULL for none) has an X-Sync-Message-Limit pseudo-header other than
 *  -1 (an unreadable value counts as a copy). Such an object is a
 *  flags-only change: never content to append, match or replace. */
int memds_email_is_device_copy(const memds_email_t *e, const char *msg,
                               apr_size_t len);

/** Append a <truncated><body> entry (size MEMDS_EMAIL_NOSIZE / type NULL
 *  when unknown); sets has_truncated. Strings are not copied. */
memds_email_tbody_t *memds_email_add_tbody(memds_email_t *e, apr_int64_t size,
                                           const char *type, apr_pool_t *p);
/** Append a <truncated><attach> entry; sets has_truncated. */
memds_email_attach_t *memds_email_add_tattach(memds_email_t *e,
                                              const char *name,
                                              apr_int64_t size,
                                              const char *type, apr_pool_t *p);

/** Append an Ext (XNam plus n XVals, not copied) to *pexts (created when
 *  NULL); for emails and folders. */
memds_ext_t *memds_email_ext_add(apr_array_header_t **pexts, const char *xnam,
                                 const char *const *xvals, int n,
                                 apr_pool_t *p);
/** The first Ext named xnam (case-insensitive), or NULL. */
const memds_ext_t *memds_email_ext_find(const apr_array_header_t *exts,
                                        const char *xnam);

/* ------------------------------------------------------------ date-times */

/**
 * Parse a date-time: YYYYMMDDTHHMMSS[Z], '-' and ':' separators allowed,
 * a fraction of seconds ignored, Z or +hh[:mm]/-hh[:mm] (converted to
 * UTC), none = floating; blanks around it ignored; years 0001-9999.
 * APR_EINVAL otherwise (dt untouched).
 */
apr_status_t memds_email_time_parse(memds_email_time_t *dt, const char *s,
                                    apr_size_t len, apr_pool_t *p);
/** Set dt to the UTC instant t ("...Z"); APR_EINVAL outside years
 *  0001-9999. Seconds are the resolution. */
apr_status_t memds_email_time_set(memds_email_time_t *dt, apr_time_t t,
                                  apr_pool_t *p);

/* --------------------------------------------------- RFC 2822 helpers */

/**
 * libsynthesis' truncation pseudo-header "X-Sync-Message-Limit: <n>" of an
 * RFC 2822 text (header section only, name case-insensitive, folded lines
 * joined). *plimit: -1 = complete, else the byte count the body was cut
 * at. APR_NOTFOUND when there is no such header, APR_EINVAL when its
 * value is not -1 or a non-negative decimal.
 */
apr_status_t memds_email_sync_limit(apr_int64_t *plimit, const char *msg,
                                    apr_size_t len);

/**
 * The text with every line end made CRLF (bare LF and bare CR become
 * CRLF), as IMAP APPEND and SMTP need it: an item that came over XML has
 * LF only (the parser's end-of-line handling). *pout is data itself when
 * nothing changes, else a NUL-terminated copy from p.
 */
void memds_email_crlf(const char **pout, apr_size_t *poutlen, const char *data,
                      apr_size_t len, apr_pool_t *p);

/* ---------------------------------------------------------- IMAP flags */

/** What to change on the IMAP message to carry an Email's flags. */
typedef struct memds_email_flagops_t {
    apr_array_header_t *add;    /**< const char *: for +FLAGS */
    apr_array_header_t *remove; /**< const char *: for -FLAGS */
    const char *add_str;        /**< add, space-separated; NULL when empty */
    const char *remove_str;     /**< remove, space-separated; NULL when empty */
} memds_email_flagops_t;

#define MEMDS_EMAIL_IMAP_FORWARDED "$Forwarded"

/**
 * read -> \\Seen, replied -> \\Answered, forwarded -> $Forwarded,
 * flagged -> \\Flagged, deleted -> \\Deleted. True adds, false removes,
 * absent changes nothing. ($Forwarded is a keyword: the mailbox must allow
 * keywords, PERMANENTFLAGS with \\*.)
 */
void memds_email_flags_to_imap(memds_email_flagops_t *ops,
                               const memds_email_t *e, apr_pool_t *p);

/**
 * Set the five flags of e from a complete IMAP flag list (each becomes
 * true or false, never absent). Flags compare case-insensitively; the
 * user flag "Forwarded" (Funambol's) counts as $Forwarded. flags may be
 * NULL when n is 0; NULL entries are skipped.
 */
void memds_email_from_imap_flags(memds_email_t *e, const char *const *flags,
                                 int n);

/* -------------------------------------------------------------- folders */

/** Folder attribute letters, in element order. */
typedef enum {
    MEMDS_FOLDER_ATTR_H = 0, /**< hidden */
    MEMDS_FOLDER_ATTR_S,     /**< system */
    MEMDS_FOLDER_ATTR_A,     /**< archived */
    MEMDS_FOLDER_ATTR_D,     /**< delete(able) */
    MEMDS_FOLDER_ATTR_W,     /**< writable */
    MEMDS_FOLDER_ATTR_R,     /**< readable */
    MEMDS_FOLDER_ATTR_X, /**< executable (Funambol's client wrote "e"; accepted) */
    MEMDS_FOLDER_NATTR
} memds_folder_attr_e;

/** Folder roles (normalised from the role text). */
typedef enum {
    MEMDS_FOLDER_ROLE_NONE = 0, /**< no <role> */
    MEMDS_FOLDER_ROLE_INBOX,
    MEMDS_FOLDER_ROLE_OUTBOX,
    MEMDS_FOLDER_ROLE_SENT,
    MEMDS_FOLDER_ROLE_DRAFTS,  /**< draft | drafts */
    MEMDS_FOLDER_ROLE_TRASH,   /**< trash | deleted */
    MEMDS_FOLDER_ROLE_ACCOUNT, /**< Funambol client's account pseudo-folder */
    MEMDS_FOLDER_ROLE_OTHER    /**< any other text */
} memds_folder_role_e;

/** The Folder object. */
typedef struct memds_folder_t {
    const char *name; /**< exact text (not trimmed); required, non-empty */
    memds_email_time_t created, modified, accessed;
    int has_attributes; /**< <attributes> present (possibly empty) */
    memds_email_bool_e attr[MEMDS_FOLDER_NATTR];
    const char
        *role; /**< as sent, trimmed; NULL when absent; the builder writes it */
    memds_folder_role_e role_id; /**< set by the parser */
    apr_array_header_t *exts;    /**< memds_ext_t *; NULL when none */
} memds_folder_t;

/** The role of a role text (case-insensitive; NULL -> NONE). */
memds_folder_role_e memds_folder_role(const char *role);
/** The text to emit for a role (Funambol server's: inbox, outbox, sent,
 *  drafts, deleted; account); NULL for NONE and OTHER. */
const char *memds_folder_role_name(memds_folder_role_e role);

/**
 * Parse a Folder object (root <Folder>, namespace syncml:folder or none),
 * with the same hardening and liberal rules as memds_email_parse(). A
 * missing or empty <name> is an error (the DTD requires it and Funambol's
 * client rejects such folders); "e" is accepted for the "x" attribute.
 */
apr_status_t memds_folder_parse(memds_folder_t **pf, const char *data,
                                apr_size_t len, memds_codec_err_t *err,
                                apr_pool_t *p);

/**
 * Append the folder in Nokia's order: name, created, modified, accessed,
 * attributes (h s a d w r x), role, Ext*. Same failures as
 * memds_email_build(), plus a missing or empty name.
 */
apr_status_t memds_folder_build(memds_buf_t *out, const memds_folder_t *f,
                                memds_codec_err_t *err, apr_pool_t *p);

/** Deep comparison of what the builder writes: 1 when equal. */
int memds_folder_equal(const memds_folder_t *a, const memds_folder_t *b);

#endif /* MEMDS_EMAIL_H */
