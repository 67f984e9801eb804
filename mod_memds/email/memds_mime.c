/* memds_mime.c: preparing an Outbox message for SMTP (memds_mime.h).
 *
 * Decisions:
 * - The header block is edited as text, the body copied as bytes. GMime's
 *   message writer re-folds and may re-encode headers, and a device that
 *   signed or hashed its message (or simply the user) expects the exact
 *   bytes to go out.
 * - Line ends become CRLF first, for the whole message: SMTP DATA carries
 *   nothing else, and the header scan then only knows one line end.
 * - Address lists are read by our own RFC 5322 parser (below, and
 *   docs/addresses.md), not by GMime's, which leaks on malformed lists
 *   (issue 17): a list not read completely is refused rather than sent to
 *   a guess of its recipients, while sloppiness with one meaning is
 *   accepted (an unquoted address as display name, "a@b <a@b>"; a missing
 *   '>'). Every addr-spec is checked against RFC 5321 syntax; that check
 *   is also what keeps CR, LF, '<' and '>' out of the SMTP commands.
 * - Bcc removal is by field name on the field lines we found, so a folded
 *   Bcc goes with all its continuation lines. The header scan refuses any
 *   line that is neither a field nor a continuation: the SMTP server must
 *   not read a header line we took for something else.
 * - Nothing global: the GMime objects used (IDNA conversion, the default
 *   sender's From text) are made and released per call, results are
 *   copied into the pool before GMime's are freed.
 */
#include "email/memds_mime.h"

#include <apr_general.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_time.h>
#include <gmime/gmime.h>
#include <string.h>

/* Group nesting accepted (RFC 5322 has none; GMime parses "a: b: c;;"). */
#define MAX_GROUP_DEPTH 8
/* Characters of message text quoted in an error reason. */
#define WHY_TEXT_MAX 64

/* One header field as found in the (CRLF-normalised) message. */
typedef struct hfield_t {
    const char *line; /* first byte of the field */
    apr_size_t len;   /* through its last CRLF, or to the end of input */
    const char *name; /* without white space before the colon */
    apr_size_t nlen;
    const char *value; /* after the colon, up to the final CRLF */
    apr_size_t vlen;
    int drop; /* not written out */
} hfield_t;

/* Addresses collected from one or more fields. */
typedef struct addrs_t {
    apr_pool_t *p;
    apr_array_header_t *list; /* const char * addr-specs */
    apr_hash_t *seen;         /* lower-cased addr-specs; NULL: keep all */
    int smtputf8;             /* a local part is not ASCII */
    const char *name;         /* display name of the last mailbox, or NULL */
    const char *why;
} addrs_t;

void memds_mime_global_init(void)
{
    g_mime_init();
}

void memds_mime_global_cleanup(void)
{
    g_mime_shutdown();
}

/* ------------------------------------------------------------- helpers */

static int lc(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int name_is(const hfield_t *f, const char *lit)
{
    apr_size_t i;

    for (i = 0; i < f->nlen; ++i) {
        if (lit[i] == '\0' || lc((unsigned char)f->name[i]) != lit[i]) {
            return 0;
        }
    }
    return lit[i] == '\0';
}

static int is_wsp(int c)
{
    return c == ' ' || c == '\t';
}

static int blank(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; ++i) {
        if (!is_wsp((unsigned char)s[i]) && s[i] != '\r' && s[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

/* RFC 5322 ftext: a field name character. */
static int is_ftext(int c)
{
    return c >= 33 && c <= 126 && c != ':';
}

/* RFC 5322 atext (ASCII part). */
static int is_atext(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9')
           || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9');
}

/* Message text fit for an error reason: trimmed, printable ASCII,
 * shortened. */
static const char *quote_text(const char *s, apr_size_t len, apr_pool_t *p)
{
    apr_size_t n, i;
    char *out;

    while (len > 0 && is_wsp((unsigned char)*s)) {
        ++s;
        --len;
    }
    while (len > 0 && is_wsp((unsigned char)s[len - 1])) {
        --len;
    }
    n = len > WHY_TEXT_MAX ? WHY_TEXT_MAX : len;
    out = apr_palloc(p, n + 4);

    for (i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c >= 32 && c < 127 ? (char)c : '?';
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

/* The message with every bare LF and bare CR made CRLF (in itself when
 * there is none: a large message is not copied once more). */
static const char *to_crlf(apr_size_t *pout, const char *in, apr_size_t len,
                           apr_pool_t *p)
{
    apr_size_t i, extra = 0;
    char *out, *o;

    for (i = 0; i < len; ++i) {
        if ((in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            || (in[i] == '\r' && (i + 1 == len || in[i + 1] != '\n'))) {
            ++extra;
        }
    }
    if (extra == 0) {
        *pout = len;
        return in;
    }
    out = o = apr_palloc(p, len + extra + 1);
    for (i = 0; i < len; ++i) {
        if ((in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
            || (in[i] == '\r' && (i + 1 == len || in[i + 1] != '\n'))) {
            *o++ = '\r';
            *o++ = '\n';
        }
        else {
            *o++ = in[i];
        }
    }
    *o = '\0';
    *pout = (apr_size_t)(o - out);
    return out;
}

/* Copy n bytes to o; the end of the copy. */
static char *put(char *o, const char *s, apr_size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* A field value with its folding CRLFs taken out, NUL-terminated. */
static char *unfold(const hfield_t *f, apr_pool_t *p)
{
    char *out = apr_palloc(p, f->vlen + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < f->vlen; ++i) {
        if (f->value[i] != '\r' && f->value[i] != '\n') {
            *o++ = f->value[i];
        }
    }
    *o = '\0';
    return out;
}

/* ---------------------------------------------------------- header scan */

/* Split d[0..n) (CRLF only) into header fields and the body offset (n
 * when no empty line ends the header). */
static apr_status_t scan_header(apr_array_header_t **pfields, apr_size_t *pbody,
                                const char *d, apr_size_t n, const char **pwhy,
                                apr_pool_t *p)
{
    apr_array_header_t *fields = apr_array_make(p, 16, sizeof(hfield_t));
    hfield_t *cur = NULL;
    apr_size_t pos = 0, body = n;
    int lineno = 0, i;

    while (pos < n) {
        const char *nl = memchr(d + pos, '\n', n - pos);
        /* Normalised: every LF follows a CR. */
        apr_size_t next = nl ? (apr_size_t)(nl - d) + 1 : n;
        apr_size_t end = nl ? (apr_size_t)(nl - d) - 1 : n;
        apr_size_t k;

        ++lineno;
        if (nl && end == pos) {
            body = next;
            break;
        }
        if (memchr(d + pos, '\0', end - pos)) {
            *pwhy = apr_psprintf(p, "NUL byte in header line %d", lineno);
            return APR_EINVAL;
        }
        if (is_wsp((unsigned char)d[pos])) {
            if (cur == NULL) {
                *pwhy = "the header starts with a continuation line";
                return APR_EINVAL;
            }
            cur->len = next - (apr_size_t)(cur->line - d);
            pos = next;
            continue;
        }
        for (k = pos; k < end && is_ftext((unsigned char)d[k]); ++k) {
        }
        cur = apr_array_push(fields);
        cur->name = d + pos;
        cur->nlen = k - pos;
        /* obs-optional: white space between the name and the colon */
        while (k < end && is_wsp((unsigned char)d[k])) {
            ++k;
        }
        if (cur->nlen == 0 || k >= end || d[k] != ':') {
            *pwhy = apr_psprintf(p, "malformed header line %d: %s", lineno,
                                 quote_text(d + pos, end - pos, p));
            return APR_EINVAL;
        }
        cur->line = d + pos;
        cur->len = next - pos;
        cur->value = d + k + 1;
        cur->drop = 0;
        pos = next;
    }
    for (i = 0; i < fields->nelts; ++i) {
        hfield_t *f = &APR_ARRAY_IDX(fields, i, hfield_t);
        apr_size_t vend = (apr_size_t)(f->line - f->value) + f->len;
        if (vend >= 2 && f->value[vend - 1] == '\n') {
            vend -= 2;
        }
        f->vlen = vend;
    }
    *pfields = fields;
    *pbody = body;
    return APR_SUCCESS;
}

/* A field name as name_is() wants it: lower case. */
static const char *lower(const char *s, apr_pool_t *p)
{
    char *o = apr_pstrdup(p, s), *c;

    for (c = o; *c; ++c) {
        *c = (char)lc((unsigned char)*c);
    }
    return o;
}

const char *memds_mime_header_value(const char *msg, apr_size_t len,
                                    const char *name, apr_pool_t *p)
{
    apr_array_header_t *fields;
    apr_size_t body;
    const char *why, *ln = lower(name, p);
    int i;

    if (scan_header(&fields, &body, msg, len, &why, p) != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < fields->nelts; ++i) {
        const hfield_t *f = &APR_ARRAY_IDX(fields, i, hfield_t);
        if (name_is(f, ln)) {
            char *v = unfold(f, p);
            apr_size_t n;
            while (is_wsp((unsigned char)*v)) {
                ++v;
            }
            n = strlen(v);
            while (n > 0 && is_wsp((unsigned char)v[n - 1])) {
                v[--n] = '\0';
            }
            return *v ? v : NULL;
        }
    }
    return NULL;
}

const char *memds_mime_header_without(const char *msg, apr_size_t len,
                                      const char *const *drop,
                                      apr_size_t *pbody, apr_pool_t *p)
{
    apr_array_header_t *fields;
    apr_size_t body, n = 0;
    const char *why;
    char *out;
    int i, k;

    if (scan_header(&fields, &body, msg, len, &why, p) != APR_SUCCESS) {
        return NULL;
    }
    out = apr_palloc(p, body + 1);
    for (i = 0; i < fields->nelts; ++i) {
        const hfield_t *f = &APR_ARRAY_IDX(fields, i, hfield_t);
        int keep = 1;
        for (k = 0; drop[k]; ++k) {
            if (name_is(f, lower(drop[k], p))) {
                keep = 0;
            }
        }
        if (keep) {
            memcpy(out + n, f->line, f->len);
            n += f->len;
        }
    }
    out[n] = '\0';
    *pbody = body;
    return out;
}

/* ------------------------------------------------------------ addresses */

/* An RFC 5321 Mailbox: Local-part "@" (Domain / address-literal); bytes
 * >= 0x80 allowed where RFC 6531 allows them, if valid UTF-8. NULL when
 * valid, else what is wrong. */
static const char *check_addr(const char *s)
{
    const char *at = strrchr(s, '@'), *c, *dom;

    if (at == NULL) {
        return "no domain";
    }
    if (at == s) {
        return "empty local part";
    }
    if (!g_utf8_validate(s, -1, NULL)) {
        return "invalid UTF-8";
    }
    if (*s == '"') {
        /* Quoted-string: qtextSMTP or quoted-pairSMTP */
        if (at - s < 2 || at[-1] != '"') {
            return "bad quoted local part";
        }
        for (c = s + 1; c < at - 1; ++c) {
            unsigned char u = (unsigned char)*c;
            if (u == '\\') {
                ++c;
                u = (unsigned char)*c;
                if (c >= at - 1 || u < 32 || u == 127) {
                    return "bad quoted local part";
                }
                if (u == ' ' || u == '<' || u == '>') {
                    return "blank or angle bracket in a quoted local part";
                }
            }
            else if (u == '"' || u < 32 || u == 127) {
                return "bad quoted local part";
            }
            else if (u == ' ' || u == '<' || u == '>') {
                /* legal, but not something the SMTP layer passes on
                 * (memds_smtp_send refuses blanks and angle brackets):
                 * refused here with a clear reason instead */
                return "blank or angle bracket in a quoted local part";
            }
        }
    }
    else {
        /* Dot-string */
        for (c = s; c < at; ++c) {
            unsigned char u = (unsigned char)*c;
            if (u == '.') {
                if (c == s || c + 1 == at || c[1] == '.') {
                    return "misplaced dot in the local part";
                }
            }
            else if (u < 0x80 && !is_atext(u)) {
                return "bad character in the local part";
            }
        }
    }
    dom = at + 1;
    if (*dom == '\0') {
        return "empty domain";
    }
    if (*dom == '[') {
        apr_size_t dl = strlen(dom);
        if (dl < 3 || dom[dl - 1] != ']') {
            return "bad address literal";
        }
        for (c = dom + 1; c < dom + dl - 1; ++c) {
            unsigned char u = (unsigned char)*c;
            if (u < 33 || u > 126 || u == '[' || u == ']' || u == '\\') {
                return "bad address literal";
            }
            if (u == '<' || u == '>') {
                /* dcontent allows them; the SMTP layer does not pass them
                 * on, so refused here with the reason */
                return "angle bracket in an address literal";
            }
        }
        return NULL;
    }
    /* sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str] */
    for (c = dom; *c; ++c) {
        unsigned char u = (unsigned char)*c;
        if (u == '.') {
            if (c == dom || c[1] == '\0' || c[1] == '.' || c[-1] == '-'
                || c[1] == '-') {
                return "bad domain";
            }
        }
        else if (u == '-') {
            if (c == dom || c[1] == '\0') {
                return "bad domain";
            }
        }
        else if (u < 0x80 && !is_alnum(u)) {
            return "bad domain";
        }
    }
    return NULL;
}

/* The project's own RFC 5322 address-list parser (docs/addresses.md).
 *
 * GMime 3.2's internet_address_list_parse() leaks on malformed lists (a
 * GString on several error paths: a@[1<2], a@["](, [",b@[]("; found one
 * after the other by fuzz_mime). Teaching a pre-check one shape per find
 * did not close the class, so the raw text no longer reaches GMime: this
 * parser reads the list, extracts the addr-specs and refuses anything it
 * cannot read completely, with a reason. GMime only ever sees text this
 * parser accepted and re-serialised: "x@<domain>" for the IDNA conversion
 * of a domain that is not ASCII, and the default sender's mailbox (name
 * and addr-spec given separately) for RFC 2047 encoding.
 *
 * Two passes. The tokenizer reads the whole value first: atoms (atext and
 * any byte >= 0x80, so encoded-words and UTF-8 are atoms), quoted strings,
 * domain literals, the specials "<>:;@,." and, skipped, white space and
 * (nested) comments; backslash escapes inside the three delimited forms.
 * A delimited form not closed, a ')' or ']' without its opener, a '[' in
 * a domain literal, a backslash or control character anywhere else is
 * refused there: what the grammar pass sees is balanced by construction.
 * The grammar pass is a recursive descent over the tokens (recursion only
 * for groups, bounded by MAX_GROUP_DEPTH). */

typedef enum { TK_ATOM, TK_QUOTED, TK_LITERAL, TK_SPECIAL, TK_END } tkind_t;

typedef struct tok_t {
    tkind_t kind;
    const char *s; /* raw text: quotes and brackets included */
    apr_size_t len;
} tok_t;

/* One parse of one field value. */
typedef struct aparse_t {
    addrs_t *a;
    const tok_t *t;
    int n, i;             /* tokens (t[n] is TK_END), current */
    const char *why;      /* grammar: what is wrong */
    int bad_address;      /* 1: why is about one address (check_addr) */
    const char *bad_text; /* that address */
} aparse_t;

static int is_special(int c)
{
    return c != '\0' && strchr("<>:;@,.", c) != NULL;
}

/* The end of the delimited form that starts at s (a '"', '(' or '['): the
 * byte after its closing delimiter; NULL with *pwhy when it is not
 * closed or holds what it may not. */
static const char *delimited(const char *s, const char **pwhy)
{
    char open = *s, close = open == '(' ? ')' : open == '"' ? '"' : ']';
    int depth = 1;

    for (++s; *s; ++s) {
        unsigned char u = (unsigned char)*s;
        int escaped = u == '\\';
        if (escaped && (u = (unsigned char)*++s) == '\0') {
            break;
        }
        if ((u < 32 && u != '\t') || u == 127) {
            *pwhy = "control character in the address list";
            return NULL;
        }
        if (escaped) {
            continue;
        }
        if (u == close && --depth == 0) {
            return s + 1;
        }
        if (u == '(' && open == '(') {
            ++depth;
        }
        else if (u == '[' && open == '[') {
            *pwhy = "'[' inside a domain literal";
            return NULL;
        }
    }
    *pwhy = open == '('   ? "unclosed comment"
            : open == '"' ? "unclosed quoted string"
                          : "unclosed domain literal";
    return NULL;
}

/* Split an address-list value into tokens (comments and white space
 * dropped), the last one TK_END. NULL with *pwhy when the value is not
 * made of tokens. */
static tok_t *tokenize(int *pn, const char *s, const char **pwhy, apr_pool_t *p)
{
    apr_array_header_t *toks = apr_array_make(p, 16, sizeof(tok_t));
    tok_t *t;

    while (*s) {
        unsigned char u = (unsigned char)*s;
        const char *e;
        if (is_wsp(u)) {
            ++s;
            continue;
        }
        if (u == '(') {
            if ((e = delimited(s, pwhy)) == NULL) {
                return NULL;
            }
            s = e;
            continue;
        }
        t = apr_array_push(toks);
        t->s = s;
        if (u == '"' || u == '[') {
            if ((e = delimited(s, pwhy)) == NULL) {
                return NULL;
            }
            t->kind = u == '"' ? TK_QUOTED : TK_LITERAL;
        }
        else if (is_special(u)) {
            t->kind = TK_SPECIAL;
            e = s + 1;
        }
        else if (is_atext(u) || u >= 0x80) {
            for (e = s;
                 is_atext((unsigned char)*e) || (unsigned char)*e >= 0x80;
                 ++e) {
            }
            t->kind = TK_ATOM;
        }
        else {
            *pwhy = u == ')'    ? "')' without '('"
                    : u == ']'  ? "']' without '['"
                    : u == '\\' ? "backslash outside a quoted string or comment"
                                : "control character in the address list";
            return NULL;
        }
        t->len = (apr_size_t)(e - s);
        s = e;
    }
    t = apr_array_push(toks);
    t->kind = TK_END;
    t->s = s;
    t->len = 0;
    *pn = toks->nelts - 1;
    return (tok_t *)toks->elts;
}

static int at_special(const aparse_t *P, char c)
{
    const tok_t *t = &P->t[P->i];
    return t->kind == TK_SPECIAL && *t->s == c;
}

static int at_word(const aparse_t *P)
{
    return P->t[P->i].kind == TK_ATOM || P->t[P->i].kind == TK_QUOTED;
}

/* Where an element may end: ',' ';' or the end. */
static int at_element_end(const aparse_t *P)
{
    return P->t[P->i].kind == TK_END || at_special(P, ',')
           || at_special(P, ';');
}

static apr_status_t fail(aparse_t *P, const char *why)
{
    P->why = why;
    return APR_EINVAL;
}

/* Append the text of the current token to parts and move on. */
static void take(aparse_t *P, apr_array_header_t *parts)
{
    struct iovec *v = apr_array_push(parts);

    v->iov_base = (void *)P->t[P->i].s;
    v->iov_len = P->t[P->i].len;
    ++P->i;
}

static void push_dot(apr_array_header_t *parts)
{
    struct iovec *v = apr_array_push(parts);

    v->iov_base = (void *)".";
    v->iov_len = 1;
}

/* An addr-spec: local-part "@" domain. Local part: word *("." word)
 * (dot-atom, quoted-string, obs-local-part); domain: atom *("." atom)
 * with one trailing dot dropped (dot-atom, obs-domain), or a domain
 * literal. The result is the tokens' text joined, no CFWS. */
static apr_status_t addr_spec(aparse_t *P, const char **paddr)
{
    apr_pool_t *p = P->a->p;
    const char *local, *domain;
    apr_array_header_t *parts = apr_array_make(p, 8, sizeof(struct iovec));

    if (at_special(P, '@')) {
        return fail(P, "empty local part");
    }
    if (!at_word(P)) {
        return fail(P, "expected an address");
    }
    for (;;) {
        take(P, parts);
        if (!at_special(P, '.')) {
            break;
        }
        push_dot(parts);
        ++P->i;
        if (!at_word(P)) {
            return fail(P, "misplaced dot in the local part");
        }
    }
    local = apr_pstrcatv(p, (struct iovec *)parts->elts, parts->nelts, NULL);
    if (!at_special(P, '@')) {
        if (at_element_end(P) || at_special(P, '>')) {
            P->bad_address = 1;
            P->bad_text = local;
            return fail(P, "no domain");
        }
        return fail(P, "text after a local part where '@' belongs");
    }
    ++P->i;
    parts->nelts = 0;
    if (P->t[P->i].kind == TK_LITERAL) {
        take(P, parts);
    }
    else if (P->t[P->i].kind == TK_ATOM) {
        for (;;) {
            take(P, parts);
            if (!at_special(P, '.')) {
                break;
            }
            ++P->i;
            if (P->t[P->i].kind != TK_ATOM) {
                break; /* a trailing dot (FQDN spelling): dropped */
            }
            push_dot(parts);
        }
    }
    else {
        return fail(P, P->t[P->i].kind == TK_END || at_element_end(P)
                               || at_special(P, '>')
                           ? "empty domain"
                           : "bad domain");
    }
    domain = apr_pstrcatv(p, (struct iovec *)parts->elts, parts->nelts, NULL);
    *paddr = apr_pstrcat(p, local, "@", domain, NULL);
    return APR_SUCCESS;
}

/* The domain as IDNA A-labels when it is not ASCII and GMime can convert
 * it; GMime sees "x@<domain>", a domain check_addr() accepted. */
static const char *idn_addr(const char *addr, apr_pool_t *p)
{
    const char *at = strrchr(addr, '@'), *c, *idn;
    InternetAddress *ia;

    for (c = at + 1; *c && (unsigned char)*c < 0x80; ++c) {
    }
    if (*c == '\0' || at[1] == '[') {
        return addr;
    }
    ia = internet_address_mailbox_new(NULL, apr_pstrcat(p, "x@", at + 1, NULL));
    idn = internet_address_mailbox_get_idn_addr(INTERNET_ADDRESS_MAILBOX(ia));
    if (idn != NULL && strncmp(idn, "x@", 2) == 0 && idn[2] != '\0') {
        addr = apr_pstrcat(p, apr_pstrmemdup(p, addr, (apr_size_t)(at - addr)),
                           "@", idn + 2, NULL);
    }
    g_object_unref(ia);
    return addr;
}

/* Check one mailbox's addr-spec, convert its domain, add it to the list. */
static apr_status_t add_addr(aparse_t *P, const char *addr)
{
    addrs_t *a = P->a;
    const char *bad, *c;
    char *key;

    if ((bad = check_addr(addr)) == NULL) {
        addr = idn_addr(addr, a->p);
        bad = check_addr(addr);
    }
    if (bad != NULL) {
        P->bad_address = 1;
        P->bad_text = addr;
        return fail(P, bad);
    }
    key = apr_pstrdup(a->p, addr);
    if (a->seen) {
        char *k;
        for (k = key; *k; ++k) {
            *k = (char)lc((unsigned char)*k);
        }
        if (apr_hash_get(a->seen, key, APR_HASH_KEY_STRING)) {
            return APR_SUCCESS;
        }
        apr_hash_set(a->seen, key, APR_HASH_KEY_STRING, key);
    }
    for (c = addr; *c && (unsigned char)*c < 0x80; ++c) {
    }
    if (*c) {
        a->smtputf8 = 1;
    }
    APR_ARRAY_PUSH(a->list, const char *) = addr;
    return APR_SUCCESS;
}

/* A display name from tokens [from, to): quoted strings unquoted, words
 * joined by one blank, dots kept; encoded-words as they are. */
static const char *display_name(const aparse_t *P, int from, int to)
{
    apr_pool_t *p = P->a->p;
    char *out, *o;
    apr_size_t n = 1;
    int k;

    for (k = from; k < to; ++k) {
        n += P->t[k].len + 1;
    }
    out = o = apr_palloc(p, n);
    for (k = from; k < to; ++k) {
        const tok_t *t = &P->t[k];
        apr_size_t j;
        if (o > out && !(t->kind == TK_SPECIAL && *t->s == '.')) {
            *o++ = ' ';
        }
        if (t->kind != TK_QUOTED) {
            o = put(o, t->s, t->len);
            continue;
        }
        for (j = 1; j + 1 < t->len; ++j) {
            if (t->s[j] == '\\') {
                ++j;
            }
            *o++ = t->s[j];
        }
    }
    *o = '\0';
    return out;
}

/* obs-route: obs-domain-list ":" (after '<'); the domains are dropped. */
static apr_status_t route(aparse_t *P)
{
    for (;;) {
        while (at_special(P, ',')) {
            ++P->i;
        }
        if (!at_special(P, '@')) {
            break;
        }
        ++P->i;
        if (P->t[P->i].kind == TK_LITERAL) {
            ++P->i;
            continue;
        }
        if (P->t[P->i].kind != TK_ATOM) {
            return fail(P, "bad route in an angle address");
        }
        for (++P->i; at_special(P, '.') && P->t[P->i + 1].kind == TK_ATOM;
             P->i += 2) {
        }
    }
    if (!at_special(P, ':')) {
        return fail(P, "bad route in an angle address");
    }
    ++P->i;
    return APR_SUCCESS;
}

static apr_status_t address_list(aparse_t *P, int depth);

/* address = mailbox / group; mailbox = name-addr / addr-spec. */
static apr_status_t address(aparse_t *P, int depth)
{
    const char *addr;
    apr_status_t rv;
    int start = P->i, j = P->i, k;

    /* display-name: phrase (words and obs-phrase dots) */
    while (at_word(P) || at_special(P, '.')) {
        ++P->i;
    }
    j = P->i;
    if (at_special(P, ':')) {
        if (j == start) {
            return fail(P, "group without a name");
        }
        if (depth >= MAX_GROUP_DEPTH) {
            return fail(P, "address groups nested too deep");
        }
        ++P->i;
        if ((rv = address_list(P, depth + 1)) != APR_SUCCESS) {
            return rv;
        }
        if (at_special(P, ';')) {
            ++P->i;
        }
        /* else the end of the value: the ';' missing, one meaning */
        return APR_SUCCESS;
    }
    /* An unquoted address in front of an angle address ("a@b <a@b>"): a
     * display name that was not quoted, one meaning. */
    for (k = j; P->t[k].kind == TK_ATOM || P->t[k].kind == TK_QUOTED
                || P->t[k].kind == TK_LITERAL
                || (P->t[k].kind == TK_SPECIAL
                    && (*P->t[k].s == '.' || *P->t[k].s == '@'));
         ++k) {
    }
    if (P->t[k].kind == TK_SPECIAL && *P->t[k].s == '<') {
        P->a->name = display_name(P, start, k);
        P->i = k + 1;
        if (at_special(P, '@') && (rv = route(P)) != APR_SUCCESS) {
            return rv;
        }
        if ((rv = addr_spec(P, &addr)) != APR_SUCCESS) {
            return rv;
        }
        if (at_special(P, '>')) {
            ++P->i;
        }
        else if (!at_element_end(P)) {
            return fail(P, "text in an angle address after the address");
        }
        /* else the '>' missing before ',' or the end: one meaning */
        return add_addr(P, addr);
    }
    P->i = start;
    P->a->name = NULL;
    if ((rv = addr_spec(P, &addr)) != APR_SUCCESS) {
        return rv;
    }
    if (at_special(P, '>')) {
        ++P->i; /* a stray '>' after an address ("<a@b, c@d>") */
    }
    return add_addr(P, addr);
}

/* address-list (or a group's list when depth > 0): addresses separated
 * by ',', empty elements allowed (obs-addr-list, obs-group-list). Stops
 * at the end, or at ';' in a group. */
static apr_status_t address_list(aparse_t *P, int depth)
{
    apr_status_t rv;

    for (;;) {
        if (P->t[P->i].kind == TK_END) {
            return APR_SUCCESS;
        }
        if (at_special(P, ',')) {
            ++P->i;
            continue;
        }
        if (at_special(P, ';')) {
            return depth > 0
                       ? APR_SUCCESS
                       : fail(
                           P,
                           "';' outside a group (use ',' between addresses)");
        }
        if ((rv = address(P, depth)) != APR_SUCCESS) {
            return rv;
        }
        if (!at_element_end(P)) {
            return fail(P, "text after an address (use ',' between "
                           "addresses)");
        }
    }
}

/* Append the mailboxes of an address-list text (an unfolded field value,
 * or the default sender) to a. An empty text adds nothing. */
static apr_status_t add_list(addrs_t *a, const char *text, const char *hname)
{
    aparse_t P;
    apr_status_t rv;
    const char *why = NULL;

    memset(&P, 0, sizeof(P));
    P.a = a;
    if ((P.t = tokenize(&P.n, text, &why, a->p)) == NULL) {
        rv = fail(&P, why);
    }
    else if ((rv = address_list(&P, 0)) == APR_SUCCESS
             && P.t[P.i].kind != TK_END) {
        rv = fail(&P, "text after the address list");
    }
    if (rv == APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if (P.bad_address) {
        a->why = apr_psprintf(a->p,
                              "invalid address in the %s header (%s): "
                              "%s",
                              hname, P.why,
                              quote_text(P.bad_text, strlen(P.bad_text), a->p));
    }
    else {
        a->why = apr_psprintf(a->p,
                              "invalid address list in the %s header "
                              "(%s): %s",
                              hname, P.why,
                              quote_text(text, strlen(text), a->p));
    }
    return rv;
}

static void addrs_init(addrs_t *a, int dedup, apr_pool_t *p)
{
    a->p = p;
    a->list = apr_array_make(p, 4, sizeof(const char *));
    a->seen = dedup ? apr_hash_make(p) : NULL;
    a->smtputf8 = 0;
    a->name = NULL;
    a->why = NULL;
}

/* The From field text for the default sender (a parsed one-mailbox list):
 * as given when it is plain printable ASCII, else GMime's RFC 2047
 * encoding of the display name (decoded for it first) with the addr-spec
 * (CRLF folding). GMime gets the parts, never the text to parse. */
static const char *from_field_text(const char *def, const addrs_t *from,
                                   apr_pool_t *p)
{
    const char *c, *addr = APR_ARRAY_IDX(from->list, 0, const char *);
    GMimeFormatOptions *fo;
    InternetAddressList *l;
    InternetAddress *ia;
    char *name = NULL, *s;
    const char *out = NULL;

    for (c = def; *c && (unsigned char)*c >= 32 && (unsigned char)*c < 127;
         ++c) {
    }
    if (*c == '\0') {
        return def;
    }
    if (from->name != NULL && *from->name) {
        name = g_mime_utils_header_decode_text(NULL, from->name);
    }
    ia = internet_address_mailbox_new(name, addr);
    l = internet_address_list_new();
    internet_address_list_add(l, ia);
    fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    s = internet_address_list_to_string(l, fo, TRUE);
    if (s != NULL) {
        out = apr_pstrdup(p, s);
        g_free(s);
    }
    g_mime_format_options_free(fo);
    g_object_unref(ia);
    g_object_unref(l);
    g_free(name);
    return out;
}

/* ------------------------------------------------- Message-ID and Date */

/* An RFC 5322 id-right: dot-atom-text or no-fold-literal, ASCII only. */
static int valid_id_right(const char *s)
{
    const char *c;

    if (*s == '[') {
        apr_size_t n = strlen(s);
        if (n < 3 || s[n - 1] != ']') {
            return 0;
        }
        for (c = s + 1; c < s + n - 1; ++c) {
            if (*c < 33 || *c > 126 || *c == '[' || *c == ']' || *c == '\\') {
                return 0;
            }
        }
        return 1;
    }
    if (*s == '\0' || *s == '.') {
        return 0;
    }
    for (c = s; *c; ++c) {
        if (*c == '.'
                ? (c[1] == '\0' || c[1] == '.')
                : !is_atext((unsigned char)*c) || (unsigned char)*c >= 0x80) {
            return 0;
        }
    }
    return 1;
}

static apr_status_t new_message_id(const char **pid, const char *dom,
                                   const char **pwhy, apr_pool_t *p)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[12];
    char rhex[2 * sizeof(rnd) + 1];
    apr_status_t rv;
    apr_size_t i;

    if (!valid_id_right(dom)) {
        *pwhy = apr_psprintf(p, "no valid domain for a Message-ID: %s",
                             quote_text(dom, strlen(dom), p));
        return APR_EINVAL;
    }
    if ((rv = apr_generate_random_bytes(rnd, sizeof(rnd))) != APR_SUCCESS) {
        *pwhy = "no random bytes for a Message-ID";
        return rv;
    }
    for (i = 0; i < sizeof(rnd); ++i) {
        rhex[2 * i] = hex[rnd[i] >> 4];
        rhex[2 * i + 1] = hex[rnd[i] & 15];
    }
    rhex[2 * sizeof(rnd)] = '\0';
    *pid = apr_psprintf(p, "<%" APR_UINT64_T_HEX_FMT ".%s@%s>",
                        (apr_uint64_t)apr_time_now(), rhex, dom);
    return APR_SUCCESS;
}

/* The message's own Message-ID from an unfolded, non-blank value: its
 * first <...>, else its first word (without stray brackets) in <>. */
static const char *existing_message_id(const char *v, apr_pool_t *p)
{
    const char *lt = strchr(v, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    apr_size_t n;

    if (gt != NULL) {
        return apr_pstrmemdup(p, lt, (apr_size_t)(gt - lt) + 1);
    }
    while (is_wsp((unsigned char)*v) || *v == '<') {
        ++v;
    }
    for (n = 0; v[n] && !is_wsp((unsigned char)v[n]) && v[n] != '>'; ++n) {
    }
    return apr_psprintf(p, "<%.*s>", (int)n, v);
}

/* RFC 5322 date-time of now in UTC (no strftime: locale-free). */
static const char *date_now(apr_pool_t *p)
{
    apr_time_exp_t t;

    apr_time_exp_gmt(&t, apr_time_now());
    return apr_psprintf(p, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                        apr_day_snames[t.tm_wday], t.tm_mday,
                        apr_month_snames[t.tm_mon], t.tm_year + 1900, t.tm_hour,
                        t.tm_min, t.tm_sec);
}

/* -------------------------------------------------------------- prepare */

apr_status_t memds_mime_prepare(memds_mime_submission_t **psub, const char *msg,
                                apr_size_t len, const char *default_from,
                                const char *domain, apr_size_t max_len,
                                const char **pwhy, apr_pool_t *p)
{
    memds_mime_submission_t *sub;
    apr_array_header_t *fields;
    hfield_t *f, *sender_field = NULL, *msgid_field = NULL;
    addrs_t rcpts, from;
    const char *d, *why = NULL, *from_text = NULL;
    struct {
        const char *name, *value;
    } added[3];
    char *out, *o;
    apr_size_t n, body, total, k;
    apr_status_t rv;
    int i, has_date = 0, nadded = 0;

    if (msg == NULL || len == 0) {
        why = "empty message";
        rv = APR_EINVAL;
        goto out;
    }
    if (max_len && len > max_len) {
        why = apr_psprintf(p,
                           "message too large (%" APR_SIZE_T_FMT
                           " bytes, limit %" APR_SIZE_T_FMT ")",
                           len, max_len);
        rv = APR_EINVAL;
        goto out;
    }
    sub = apr_pcalloc(p, sizeof(*sub));
    d = to_crlf(&n, msg, len, p);
    if ((rv = scan_header(&fields, &body, d, n, &why, p)) != APR_SUCCESS) {
        goto out;
    }

    /* Envelope recipients, in field order; Bcc fields go. */
    addrs_init(&rcpts, 1, p);
    addrs_init(&from, 0, p);
    for (i = 0; i < fields->nelts; ++i) {
        f = &APR_ARRAY_IDX(fields, i, hfield_t);
        if (name_is(f, "to") || name_is(f, "cc") || name_is(f, "bcc")) {
            if ((rv = add_list(&rcpts, unfold(f, p),
                               name_is(f, "to")   ? "To"
                               : name_is(f, "cc") ? "Cc"
                                                  : "Bcc"))
                != APR_SUCCESS) {
                why = rcpts.why;
                goto out;
            }
            if (name_is(f, "bcc")) {
                f->drop = 1;
                ++sub->removed_bcc;
            }
        }
        else if (name_is(f, "from")) {
            apr_size_t before = (apr_size_t)from.list->nelts;
            if ((rv = add_list(&from, unfold(f, p), "From")) != APR_SUCCESS) {
                why = from.why;
                goto out;
            }
            /* No mailbox in it: as if missing (replaced below). */
            if ((apr_size_t)from.list->nelts == before) {
                f->drop = 1;
            }
        }
        else if (name_is(f, "sender")) {
            sender_field = sender_field ? sender_field : f;
        }
        else if (name_is(f, "message-id")) {
            if (blank(f->value, f->vlen) || msgid_field) {
                f->drop = blank(f->value, f->vlen);
            }
            else {
                msgid_field = f;
            }
        }
        else if (name_is(f, "date")) {
            if (blank(f->value, f->vlen)) {
                f->drop = 1;
            }
            else {
                has_date = 1;
            }
        }
    }
    if (rcpts.list->nelts == 0) {
        why = "no recipients";
        rv = APR_EINVAL;
        goto out;
    }

    /* Envelope sender. */
    if (from.list->nelts > 1 && sender_field != NULL) {
        addrs_t s;
        addrs_init(&s, 0, p);
        if ((rv = add_list(&s, unfold(sender_field, p), "Sender"))
            != APR_SUCCESS) {
            why = s.why;
            goto out;
        }
        if (s.list->nelts > 0) {
            from = s;
        }
    }
    if (from.list->nelts == 0) {
        const char *c;
        if (default_from == NULL || *default_from == '\0') {
            why = "no sender: the message has no From address";
            rv = APR_EINVAL;
            goto out;
        }
        /* Configuration, not message text: checked before it becomes a
         * header line (no control characters, exactly one mailbox). */
        for (c = default_from;
             *c && (unsigned char)*c >= 32 && (unsigned char)*c != 127; ++c) {
        }
        if (*c == '\0') {
            rv = add_list(&from, default_from, "default From");
        }
        if (*c || rv != APR_SUCCESS || from.list->nelts != 1
            || (from_text = from_field_text(default_from, &from, p)) == NULL) {
            why = "invalid default sender address";
            rv = APR_EINVAL;
            goto out;
        }
        sub->added_from = 1;
    }
    sub->from = APR_ARRAY_IDX(from.list, 0, const char *);
    sub->rcpts = rcpts.list;
    sub->smtputf8 = rcpts.smtputf8 || from.smtputf8;

    if (msgid_field != NULL) {
        sub->message_id = existing_message_id(unfold(msgid_field, p), p);
    }
    else {
        if (domain == NULL || *domain == '\0') {
            domain = strrchr(sub->from, '@') + 1;
        }
        if ((rv = new_message_id(&sub->message_id, domain, &why, p))
            != APR_SUCCESS) {
            goto out;
        }
        sub->added_message_id = 1;
    }
    sub->added_date = !has_date;

    /* The Bcc fields as they were, for the sender's copies. */
    for (k = 0, i = 0; i < fields->nelts; ++i) {
        f = &APR_ARRAY_IDX(fields, i, hfield_t);
        if (name_is(f, "bcc")) {
            k += f->len + (f->line[f->len - 1] == '\n' ? 0 : 2);
        }
    }
    sub->bcc_len = k;
    sub->bcc_fields = o = apr_palloc(p, k + 1);
    for (i = 0; i < fields->nelts; ++i) {
        f = &APR_ARRAY_IDX(fields, i, hfield_t);
        if (name_is(f, "bcc")) {
            o = put(o, f->line, f->len);
            if (f->line[f->len - 1] != '\n') {
                o = put(o, "\r\n", 2);
            }
        }
    }
    *o = '\0';

    /* Write: kept fields, added fields, the empty line, the body. */
    if (from_text) {
        added[nadded].name = "From";
        added[nadded++].value = from_text;
    }
    if (sub->added_date) {
        added[nadded].name = "Date";
        added[nadded++].value = date_now(p);
    }
    if (sub->added_message_id) {
        added[nadded].name = "Message-ID";
        added[nadded++].value = sub->message_id;
    }
    total = n - body + 2;
    for (i = 0; i < fields->nelts; ++i) {
        f = &APR_ARRAY_IDX(fields, i, hfield_t);
        if (!f->drop) {
            total += f->len + (f->line[f->len - 1] == '\n' ? 0 : 2);
        }
    }
    for (i = 0; i < nadded; ++i) {
        total += strlen(added[i].name) + 2 + strlen(added[i].value) + 2;
    }
    if (max_len && total > max_len) {
        why = apr_psprintf(p,
                           "message too large (%" APR_SIZE_T_FMT
                           " bytes prepared, limit %" APR_SIZE_T_FMT ")",
                           total, max_len);
        rv = APR_EINVAL;
        goto out;
    }
    out = o = apr_palloc(p, total + 1);
    for (i = 0; i < fields->nelts; ++i) {
        f = &APR_ARRAY_IDX(fields, i, hfield_t);
        if (!f->drop) {
            o = put(o, f->line, f->len);
            if (f->line[f->len - 1] != '\n') {
                /* the last line of a message without a body */
                o = put(o, "\r\n", 2);
            }
        }
    }
    for (i = 0; i < nadded; ++i) {
        o = put(o, added[i].name, strlen(added[i].name));
        o = put(o, ": ", 2);
        o = put(o, added[i].value, strlen(added[i].value));
        o = put(o, "\r\n", 2);
    }
    o = put(o, "\r\n", 2);
    o = put(o, d + body, n - body);
    *o = '\0';
    sub->data = out;
    sub->len = (apr_size_t)(o - out);
    for (k = 0; k < sub->len && (unsigned char)out[k] < 0x80; ++k) {
    }
    sub->eightbit = k < sub->len;
    *psub = sub;
    rv = APR_SUCCESS;

out:
    if (rv != APR_SUCCESS && pwhy) {
        *pwhy = why ? why : "cannot prepare the message";
    }
    return rv;
}

/* ------------------------------------------------------------ 7-bit */

static int has_8bit(const char *s)
{
    for (; s && *s; ++s) {
        if ((unsigned char)*s >= 0x80) {
            return 1;
        }
    }
    return 0;
}

/* Header fields with 8-bit bytes, written again as encoded words. */
static void seven_bit_headers(GMimeObject *o)
{
    GMimeHeaderList *hl = g_mime_object_get_header_list(o);
    int i, n = hl ? g_mime_header_list_get_count(hl) : 0;

    for (i = 0; i < n; ++i) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        if (has_8bit(g_mime_header_get_raw_value(h))) {
            char *v = g_strdup(g_mime_header_get_value(h));
            g_mime_header_set_value(h, NULL, v ? v : "", "utf-8");
            g_free(v);
        }
    }
}

static void seven_bit_part(GMimeObject *parent, GMimeObject *part, void *data)
{
    (void)parent;
    (void)data;
    seven_bit_headers(part);
    if (GMIME_IS_PART(part)) {
        GMimePart *mp = (GMimePart *)part;
        GMimeContentEncoding enc = g_mime_part_get_content_encoding(mp);
        if (enc == GMIME_CONTENT_ENCODING_DEFAULT
            || enc == GMIME_CONTENT_ENCODING_7BIT
            || enc == GMIME_CONTENT_ENCODING_8BIT
            || enc == GMIME_CONTENT_ENCODING_BINARY) {
            GMimeContentEncoding best = g_mime_part_get_best_content_encoding(
                mp, GMIME_ENCODING_CONSTRAINT_7BIT);
            if (best != enc && best != GMIME_CONTENT_ENCODING_7BIT) {
                g_mime_part_set_content_encoding(mp, best);
            }
        }
    }
}

apr_status_t memds_mime_seven_bit(const char **pout, apr_size_t *plen,
                                  const char *msg, apr_size_t len,
                                  apr_pool_t *p)
{
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(msg, len);
    GMimeParser *ps = g_mime_parser_new_with_stream(st);
    GMimeMessage *m = g_mime_parser_construct_message(ps, NULL);
    GMimeFormatOptions *fo;
    char *s;
    apr_size_t i, n;
    apr_status_t rv = APR_EINVAL;

    g_object_unref(ps);
    g_object_unref(st);
    if (m == NULL) {
        return APR_EINVAL;
    }
    seven_bit_headers(GMIME_OBJECT(m));
    g_mime_message_foreach(m, seven_bit_part, NULL);
    fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    s = g_mime_object_to_string(GMIME_OBJECT(m), fo);
    g_mime_format_options_free(fo);
    g_object_unref(m);
    if (s != NULL) {
        n = strlen(s);
        for (i = 0; i < n && (unsigned char)s[i] < 0x80; ++i) {
        }
        if (i == n) {
            *pout = apr_pstrmemdup(p, s, n);
            *plen = n;
            rv = APR_SUCCESS;
        }
        g_free(s);
    }
    return rv;
}
