/* memds_compose.c: reply and forward without download (memds_compose.h).
 * Pure MIME: the original's parts come through the caller's callback. */
#include "email/memds_compose.h"
#include "email/memds_mime.h"
#include "util/memds_buf.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

void memds_compose_target(const char *msg, apr_size_t len, const char **pid,
                          int *pforward, apr_pool_t *p)
{
    const char *rid = memds_mime_header_value(msg, len, "X-MemDS-Reply", p);
    const char *fid = memds_mime_header_value(msg, len, "X-MemDS-Forward", p);

    *pid = rid ? rid : fid;
    *pforward = rid == NULL && fid != NULL;
}

/* "> " before every line of text (CRLF). */
static void add_quoted(memds_buf_t *b, const char *t, apr_size_t n)
{
    apr_size_t i = 0;

    while (i < n) {
        apr_size_t eol = i;
        while (eol < n && t[eol] != '\n') {
            ++eol;
        }
        memds_buf_add(b, ">", 1);
        if (eol > i && t[i] != '>') {
            memds_buf_add(b, " ", 1);
        }
        memds_buf_add(b, t + i,
                      (eol > i && t[eol - 1] == '\r') ? eol - 1 - i : eol - i);
        memds_buf_add(b, "\r\n", 2);
        i = eol + 1;
    }
}

static void add_str(memds_buf_t *b, const char *s)
{
    memds_buf_add(b, s, strlen(s));
}

static int simple_text(const char *charset, const char *enc)
{
    return (!charset || !strcasecmp(charset, "utf-8")
            || !strcasecmp(charset, "us-ascii"))
           && (!enc || !strcasecmp(enc, "7bit") || !strcasecmp(enc, "8bit")
               || !strcasecmp(enc, "quoted-printable")
               || !strcasecmp(enc, "base64"));
}

/* The original's first text/plain part that is not an attachment. */
static const memds_compose_part_t *text_part(const apr_array_header_t *parts)
{
    int i;

    for (i = 0; parts && i < parts->nelts; ++i) {
        const memds_compose_part_t *l = &APR_ARRAY_IDX(parts, i,
                                                       memds_compose_part_t);
        if (!strcasecmp(l->type, "text") && !strcasecmp(l->subtype, "plain")
            && (!l->disposition || strcasecmp(l->disposition, "attachment"))) {
            return l;
        }
    }
    return NULL;
}

/* The original's parts after the text, each as a part of the new
 * multipart/mixed (boundary); a single-part original goes whole as
 * message/rfc822. */
static apr_status_t add_parts(memds_buf_t *out, const memds_compose_orig_t *o,
                              const memds_compose_part_t *textpart, int quote,
                              const char *boundary, apr_pool_t *p)
{
    const char *d, *x;
    apr_size_t n;
    apr_status_t rv;
    int i;

    for (i = 0; o->parts && i < o->parts->nelts; ++i) {
        const memds_compose_part_t *l = &APR_ARRAY_IDX(o->parts, i,
                                                       memds_compose_part_t);
        const char *mh, *mb;
        apr_size_t mhl, mbl;
        if (quote && l == textpart) {
            continue;
        }
        if (!strcasecmp(l->type, "text") && !l->disposition && o->multipart
            && l != textpart && !strcasecmp(l->subtype, "html") && quote) {
            continue; /* the HTML twin of the quoted text */
        }
        if (!o->multipart) {
            /* a single-part original: attach it whole */
            if ((rv = o->fetch(o->baton, "", 0, &d, &n)) != APR_SUCCESS) {
                return rv;
            }
            x = apr_psprintf(p,
                             "\r\n--%s\r\nContent-Type: message/rfc822\r\n"
                             "Content-Disposition: attachment\r\n\r\n",
                             boundary);
            add_str(out, x);
            memds_buf_add(out, d, n);
            break;
        }
        if ((rv = o->fetch(o->baton, apr_pstrcat(p, l->section, ".MIME", NULL),
                           0, &mh, &mhl))
                != APR_SUCCESS
            || (rv = o->fetch(o->baton, l->section, 0, &mb, &mbl))
                   != APR_SUCCESS) {
            return rv;
        }
        add_str(out, apr_psprintf(p, "\r\n--%s\r\n", boundary));
        memds_buf_add(out, mh, mhl); /* (ends with its blank line) */
        memds_buf_add(out, mb, mbl);
    }
    return APR_SUCCESS;
}

apr_status_t memds_compose(const char **pout, apr_size_t *plen, const char *msg,
                           apr_size_t len, const memds_compose_orig_t *o,
                           const char **pwhy, apr_pool_t *p)
{
    static const char *const drop_top[] = {
        "X-MemDS-Reply", "X-MemDS-Forward",           "MIME-Version",
        "Content-Type",  "Content-Transfer-Encoding", NULL
    };
    const char *ctype, *cte, *orig_id, *from, *date, *boundary, *refs, *top,
        *hdr, *ctline;
    memds_buf_t out, text;
    apr_size_t hlen, hdrlen;
    const memds_compose_part_t *textpart = text_part(o->parts);
    int quote, nparts = o->parts ? o->parts->nelts : 0;
    unsigned char rnd[8];
    apr_status_t rv;

    *pwhy = NULL;
    /* the original's header fields the reply needs */
    rv = o->fetch(o->baton,
                  "HEADER.FIELDS (FROM DATE MESSAGE-ID REFERENCES SUBJECT)", 0,
                  &hdr, &hdrlen);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    from = memds_mime_header_value(hdr, hdrlen, "From", p);
    date = memds_mime_header_value(hdr, hdrlen, "Date", p);
    orig_id = memds_mime_header_value(hdr, hdrlen, "Message-ID", p);
    refs = memds_mime_header_value(hdr, hdrlen, "References", p);
    top = memds_mime_header_without(msg, len, drop_top, &hlen, p);
    if (top == NULL) {
        *pwhy = "cannot read the header of the message";
        return APR_EINVAL;
    }
    ctype = memds_mime_header_value(msg, hlen, "Content-Type", p);
    cte = memds_mime_header_value(msg, hlen, "Content-Transfer-Encoding", p);
    quote = textpart && simple_text(textpart->charset, textpart->encoding)
            && (!ctype || !strncasecmp(ctype, "text/plain", 10))
            && (!cte || !strcasecmp(cte, "7bit") || !strcasecmp(cte, "8bit"));
    /* the new text: the device's, then the original's quoted */
    memds_buf_init(&text, len + 1024, p);
    memds_buf_add(&text, msg + hlen, len - hlen);
    if (quote) {
        const char *ot;
        apr_size_t otl;
        if ((rv = o->fetch(o->baton, textpart->section, 1, &ot, &otl))
            != APR_SUCCESS) {
            return rv;
        }
        if (text.len >= 2 && memcmp(text.data + text.len - 2, "\r\n", 2) != 0) {
            memds_buf_add(&text, "\r\n", 2);
        }
        if (!o->forward) {
            add_str(&text, apr_psprintf(p, "\r\nOn %s, %s wrote:\r\n",
                                        date ? date : "an earlier day",
                                        from ? from : "someone"));
        }
        else {
            add_str(&text, apr_psprintf(p,
                                        "\r\n---------- Forwarded message "
                                        "----------\r\nFrom: %s\r\nDate: %s\r\n"
                                        "\r\n",
                                        from ? from : "", date ? date : ""));
        }
        add_quoted(&text, ot, otl);
    }
    /* the parts to attach: a forward's attachments (or the whole original
     * when its text could not be quoted and it has no other part) */
    if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
        *pwhy = "no random bytes for a MIME boundary";
        return APR_EGENERAL;
    }
    boundary = apr_psprintf(p, "=_memds_%02x%02x%02x%02x%02x%02x%02x%02x",
                            rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
                            rnd[6], rnd[7]);
    memds_buf_init(&out, len + text.len + 4096, p);
    add_str(&out, top);
    if (!o->forward && orig_id) {
        add_str(&out,
                apr_psprintf(p, "In-Reply-To: %s\r\nReferences: %s%s%s\r\n",
                             orig_id, refs ? refs : "", refs ? " " : "",
                             orig_id));
    }
    add_str(&out, "MIME-Version: 1.0\r\n");
    ctline = apr_psprintf(p, "Content-Type: %s\r\n%s%s%s\r\n",
                          ctype ? ctype : "text/plain; charset=UTF-8",
                          cte ? "Content-Transfer-Encoding: " : "",
                          cte ? cte : "", cte ? "\r\n" : "");
    if (!o->forward || (nparts <= (textpart ? 1 : 0) && quote)) {
        /* one text part: what the device wrote, with the quote */
        add_str(&out, ctline);
        memds_buf_add(&out, text.data, text.len);
    }
    else {
        add_str(&out, apr_psprintf(p,
                                   "Content-Type: multipart/mixed; "
                                   "boundary=\"%s\"\r\n\r\n--%s\r\n",
                                   boundary, boundary));
        add_str(&out, ctline);
        memds_buf_add(&out, text.data, text.len);
        if ((rv = add_parts(&out, o, textpart, quote, boundary, p))
            != APR_SUCCESS) {
            return rv;
        }
        add_str(&out, apr_psprintf(p, "\r\n--%s--\r\n", boundary));
    }
    memds_buf_addc(&out, '\0'); /* (a C string too) */
    *pout = out.data;
    *plen = out.len - 1;
    return APR_SUCCESS;
}
