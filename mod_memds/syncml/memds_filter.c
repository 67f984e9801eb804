/* memds_filter.c: DS 1.2 filters, parsed (memds_filter.h, docs/filters.md). */
#include "syncml/memds_filter.h"
#include "syncml/memds_codes.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <string.h>

/* ============================================================ record */

typedef enum { OP_EQ, OP_GT, OP_GE, OP_LT, OP_LE } op_e;

static const struct {
    const char *name;
    op_e op;
} k_ops[] = { { "EQ", OP_EQ },
              { "GT", OP_GT },
              { "GE", OP_GE },
              { "LT", OP_LT },
              { "LE", OP_LE } };

/* Operators of the grammar this server does not take (a clear reason). */
static const char *const k_other_ops[] = { "NE", "CON", "NCON", "OR", NULL };

typedef struct {
    const char *s, *end, *start;
    const char *why;
    apr_pool_t *p;
} cur_t;

static int fail(cur_t *c, const char *at, const char *what)
{
    c->why = apr_psprintf(c->p, "%s at offset %ld of the filter", what,
                          (long)(at - c->start));
    return 0;
}

/* Case-insensitive: does the input at c->s start with word? */
static int looking_at(const cur_t *c, const char *word)
{
    apr_size_t n = strlen(word);

    return (apr_size_t)(c->end - c->s) >= n && strncasecmp(c->s, word, n) == 0;
}

/* A pseudo-entity "&NAME;" at c->s: its NAME (without i prefix handling),
 * or NULL. Does not move. */
static const char *entity_at(const cur_t *c, apr_size_t *plen)
{
    const char *q;

    if (c->s >= c->end || *c->s != '&') {
        return NULL;
    }
    for (q = c->s + 1; q < c->end && apr_isalpha(*q); ++q)
        ;
    if (q == c->s + 1 || q >= c->end || *q != ';') {
        return NULL;
    }
    *plen = (apr_size_t)(q + 1 - c->s);
    return apr_pstrmemdup(c->p, c->s + 1, (apr_size_t)(q - c->s - 1));
}

/* The comparison operator at c->s; moves past it. */
static int read_op(cur_t *c, op_e *pop)
{
    apr_size_t n = 0, i;
    const char *name = entity_at(c, &n), *base;

    if (name == NULL) {
        return fail(c, c->s, "expected an operator (&EQ;, &GE;, ...)");
    }
    base = name;
    if ((name[0] == 'i' || name[0] == 'I') && name[1]) {
        base = name + 1; /* case-insensitive form: same for our values */
    }
    for (i = 0; i < sizeof(k_ops) / sizeof(k_ops[0]); ++i) {
        if (strcmp(base, k_ops[i].name) == 0) {
            *pop = k_ops[i].op;
            c->s += n;
            return 1;
        }
    }
    for (i = 0; k_other_ops[i]; ++i) {
        if (strcmp(base, k_other_ops[i]) == 0) {
            return fail(c, c->s,
                        apr_psprintf(c->p, "operator &%s; is not supported",
                                     name));
        }
    }
    return fail(c, c->s, apr_psprintf(c->p, "unknown operator &%s;", name));
}

static int hexval(char ch)
{
    return apr_isdigit(ch) ? ch - '0' : apr_tolower(ch) - 'a' + 10;
}

/* The value of a term: up to the next "&AND;" or the end, %hh decoded. */
static int read_value(cur_t *c, const char **pval, apr_size_t *plen)
{
    const char *v = c->s, *q;
    char *out, *o;

    for (q = c->s; q < c->end; ++q) {
        if (*q == '&') {
            break;
        }
        if (*q == '(' || *q == ')' || *q == '|') {
            return fail(c, q,
                        apr_psprintf(c->p,
                                     "'%c' is not supported (only "
                                     "terms joined by &AND;)",
                                     *q));
        }
    }
    if (q == v) {
        return fail(c, v, "empty value");
    }
    o = out = apr_palloc(c->p, (apr_size_t)(q - v) + 1);
    for (; v < q; ++v) {
        if (*v == '%') {
            if (q - v < 3 || !apr_isxdigit(v[1]) || !apr_isxdigit(v[2])) {
                return fail(c, v, "'%' not followed by two hex digits");
            }
            *o++ = (char)(hexval(v[1]) * 16 + hexval(v[2]));
            v += 2;
        }
        else if ((unsigned char)*v < 0x20 || *v == 0x7F) {
            return fail(c, v, "control character in a value");
        }
        else {
            *o++ = *v;
        }
    }
    *o = '\0';
    *pval = out;
    *plen = (apr_size_t)(o - out);
    c->s = q;
    return 1;
}

/* n digits at s as a number. */
static int digits(const char *s, int n, int *pv)
{
    int v = 0, i;

    for (i = 0; i < n; ++i) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *pv = v;
    return 1;
}

/* YYYYMMDDTHHMMSSZ, YYYY-MM-DDTHH:MM:SSZ or YYYYMMDD, UTC. */
static int parse_date(const char *s, apr_size_t len, apr_time_t *pt)
{
    apr_time_exp_t tm;
    int y, mo, d, h = 0, mi = 0, se = 0, ok;
    static const int mdays[] = {
        31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (len == 8) {
        ok = digits(s, 4, &y) && digits(s + 4, 2, &mo) && digits(s + 6, 2, &d);
    }
    else if (len == 16 && s[8] == 'T' && s[15] == 'Z') {
        ok = digits(s, 4, &y) && digits(s + 4, 2, &mo) && digits(s + 6, 2, &d)
             && digits(s + 9, 2, &h) && digits(s + 11, 2, &mi)
             && digits(s + 13, 2, &se);
    }
    else if (len == 20 && s[4] == '-' && s[7] == '-' && s[10] == 'T'
             && s[13] == ':' && s[16] == ':' && s[19] == 'Z') {
        ok = digits(s, 4, &y) && digits(s + 5, 2, &mo) && digits(s + 8, 2, &d)
             && digits(s + 11, 2, &h) && digits(s + 14, 2, &mi)
             && digits(s + 17, 2, &se);
    }
    else {
        return 0;
    }
    if (!ok || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1
        || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60) {
        return 0;
    }
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) {
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se > 59 ? 59 : se;
    return apr_time_exp_gmt_get(pt, &tm) == APR_SUCCESS;
}

/* A non-negative decimal number (at most 18 digits). */
static int parse_num(const char *s, apr_size_t len, apr_int64_t *pv)
{
    apr_int64_t v = 0;
    apr_size_t i;

    if (len == 0 || len > 18) {
        return 0;
    }
    for (i = 0; i < len; ++i) {
        if (!apr_isdigit(s[i])) {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *pv = v;
    return 1;
}

/* One bound of the date window. lower: received/modified GE GT EQ, SINCE;
 * upper: LT LE, BEFORE. */
static int date_term(cur_t *c, memds_filter_rec_t *r, const char *ident,
                     const char *at, op_e op, const char *v, apr_size_t vl)
{
    int since_kw = strcasecmp(ident, "SINCE") == 0;
    int before_kw = strcasecmp(ident, "BEFORE") == 0;
    int lower, incl;
    apr_time_t t;

    if (since_kw) {
        if (op == OP_LT || op == OP_LE) {
            return fail(c, at, "SINCE takes &EQ;, &GE; or &GT;");
        }
        lower = 1;
    }
    else if (before_kw) {
        if (op == OP_GT || op == OP_GE) {
            return fail(c, at, "BEFORE takes &EQ;, &LT; or &LE;");
        }
        lower = 0;
    }
    else {
        lower = op == OP_EQ || op == OP_GE || op == OP_GT;
    }
    incl = op == OP_EQ ? !before_kw : (op == OP_GE || op == OP_LE);
    if (!parse_date(v, vl, &t)) {
        return fail(c, at,
                    apr_psprintf(c->p,
                                 "'%s' is not a date (YYYYMMDDTHHMMSSZ, "
                                 "YYYY-MM-DDTHH:MM:SSZ or YYYYMMDD)",
                                 v));
    }
    if (lower ? r->has_since : r->has_before) {
        return fail(c, at,
                    lower ? "a second lower date bound"
                          : "a second upper date bound");
    }
    if (lower) {
        r->has_since = 1;
        r->since = t;
        r->since_incl = incl;
    }
    else {
        r->has_before = 1;
        r->before = t;
        r->before_incl = incl;
    }
    return 1;
}

static int keyword_term(cur_t *c, memds_filter_rec_t *r, const char *ident,
                        const char *at, op_e op, const char *v, apr_size_t vl)
{
    apr_int64_t n;

    if (op != OP_EQ) {
        return fail(c, at, apr_psprintf(c->p, "%s takes &EQ; only", ident));
    }
    if (strcasecmp(ident, "NOATT") == 0) {
        if (r->noatt != MEMDS_NOVAL) {
            return fail(c, at, "a second NOATT");
        }
        if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0) {
            r->noatt = 1;
        }
        else if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0) {
            r->noatt = 0;
        }
        else {
            return fail(c, at, "NOATT takes true, false, 1 or 0");
        }
        return 1;
    }
    if (!parse_num(v, vl, &n)) {
        return fail(c, at,
                    apr_psprintf(c->p,
                                 "%s takes a number of at most 18 "
                                 "digits",
                                 ident));
    }
    if (strcasecmp(ident, "MAXSIZE") == 0) {
        if (r->max_size != MEMDS_NOVAL) {
            return fail(c, at, "a second MAXSIZE");
        }
        r->max_size = n;
    }
    else {
        if (r->max_count != MEMDS_NOVAL) {
            return fail(c, at, "a second MAXCOUNT");
        }
        r->max_count = n;
    }
    return 1;
}

/* One term: ident OP value. */
static int term(cur_t *c, memds_filter_rec_t *r)
{
    const char *at = c->s, *q, *ident, *v;
    apr_size_t vl;
    op_e op;

    if (looking_at(c, "&LUID;") || looking_at(c, "&LUID&")) {
        c->s += looking_at(c, "&LUID;") ? 6 : 5;
        if (!read_op(c, &op)) {
            return 0;
        }
        if (op != OP_EQ) {
            return fail(c, at, "&LUID; takes &EQ; only");
        }
        if (!read_value(c, &v, &vl)) {
            return 0;
        }
        if (r->luid) {
            return fail(c, at, "a second &LUID;");
        }
        if (memchr(v, '\0', vl)) {
            return fail(c, at, "NUL in a LUID");
        }
        r->luid = v;
        return 1;
    }
    for (q = c->s; q < c->end && (apr_isalnum(*q) || *q == '_'); ++q)
        ;
    if (q == c->s) {
        if (c->s < c->end && (*c->s == '(' || *c->s == ')')) {
            return fail(c, c->s, "parentheses are not supported");
        }
        return fail(c, c->s, "expected a term (identifier, operator, value)");
    }
    ident = apr_pstrmemdup(c->p, c->s, (apr_size_t)(q - c->s));
    c->s = q;
    if (!read_op(c, &op) || !read_value(c, &v, &vl)) {
        return 0;
    }
    if (strcasecmp(ident, "received") == 0 || strcasecmp(ident, "modified") == 0
        || strcasecmp(ident, "SINCE") == 0
        || strcasecmp(ident, "BEFORE") == 0) {
        return date_term(c, r, ident, at, op, v, vl);
    }
    if (strcasecmp(ident, "MAXSIZE") == 0 || strcasecmp(ident, "MAXCOUNT") == 0
        || strcasecmp(ident, "NOATT") == 0) {
        return keyword_term(c, r, ident, at, op, v, vl);
    }
    return fail(c, at, apr_psprintf(c->p, "unknown identifier '%s'", ident));
}

apr_status_t memds_filter_cgi_parse(memds_filter_rec_t *rec, const char *s,
                                    apr_size_t len, const char **why,
                                    apr_pool_t *p)
{
    cur_t c;
    apr_size_t n = 0;
    const char *name;

    memset(rec, 0, sizeof(*rec));
    rec->max_size = rec->max_count = MEMDS_NOVAL;
    rec->noatt = MEMDS_NOVAL;
    c.s = c.start = s ? s : "";
    c.end = c.s + (s ? len : 0);
    c.why = NULL;
    c.p = p;
    if (c.s == c.end) {
        *why = "empty filter expression";
        return APR_EINVAL;
    }
    for (;;) {
        if (!term(&c, rec)) {
            *why = c.why;
            return APR_EINVAL;
        }
        ++rec->terms;
        if (c.s == c.end) {
            return APR_SUCCESS;
        }
        name = entity_at(&c, &n);
        if (name && strcmp(name, "AND") == 0) {
            c.s += n;
            continue;
        }
        fail(&c, c.s,
             name && strcmp(name, "OR") == 0
                 ? "&OR; is not supported (terms are joined by &AND; only)"
                 : "expected &AND; between terms");
        *why = c.why;
        return APR_EINVAL;
    }
}

/* ============================================================ field */

int memds_filter_field_parse(memds_filter_field_t *fld,
                             const apr_array_header_t *props, const char **why,
                             apr_pool_t *p)
{
    const memds_property_t *pr;
    int i;

    memset(fld, 0, sizeof(*fld));
    fld->max_size = MEMDS_NOVAL;
    if (props == NULL || props->nelts != 1) {
        *why = "a field clause holds exactly one <Property>";
        return MEMDS_ST_BAD_CGI_SCRIPT;
    }
    pr = APR_ARRAY_IDX(props, 0, const memds_property_t *);
    if (pr->name == NULL || strcasecmp(pr->name, "emailitem") != 0) {
        *why = apr_psprintf(p, "field '%s' is not supported (only emailitem)",
                            pr->name ? pr->name : "");
        return MEMDS_ST_NOT_SUPPORTED;
    }
    if (pr->max_size
        && !parse_num(pr->max_size, strlen(pr->max_size), &fld->max_size)) {
        *why = apr_psprintf(p, "MaxSize '%s' is not a number", pr->max_size);
        return MEMDS_ST_BAD_CGI_SCRIPT;
    }
    if (pr->data_type || pr->max_occur || pr->no_truncate || pr->val_enums
        || pr->display_name) {
        *why = "emailitem takes PropParams and MaxSize only";
        return MEMDS_ST_NOT_SUPPORTED;
    }
    for (i = 0; pr->params && i < pr->params->nelts; ++i) {
        const memds_propparam_t *pp = APR_ARRAY_IDX(pr->params, i,
                                                    const memds_propparam_t *);
        int *flag = NULL;
        if (pp->name && strcasecmp(pp->name, "texttype") == 0) {
            flag = &fld->texttype;
        }
        else if (pp->name && strcasecmp(pp->name, "attachtype") == 0) {
            flag = &fld->attachtype;
        }
        if (flag == NULL) {
            *why = apr_psprintf(p,
                                "emailitem parameter '%s' is not supported "
                                "(texttype, attachtype)",
                                pp->name ? pp->name : "");
            return MEMDS_ST_NOT_SUPPORTED;
        }
        if (*flag) {
            *why = apr_psprintf(p, "emailitem parameter '%s' twice", pp->name);
            return MEMDS_ST_BAD_CGI_SCRIPT;
        }
        *flag = 1;
        if (pp->data_type || pp->display_name) {
            *why = "emailitem parameters take ValEnum only";
            return MEMDS_ST_NOT_SUPPORTED;
        }
        if (pp->val_enums && pp->val_enums->nelts > 0) {
            /* one attachment on demand: attachtype names it */
            const char *v = APR_ARRAY_IDX(pp->val_enums, 0, const char *);
            if (flag != &fld->attachtype || pp->val_enums->nelts != 1) {
                *why = "only attachtype takes a ValEnum (one attachment's "
                       "name)";
                return MEMDS_ST_NOT_SUPPORTED;
            }
            if (v == NULL || *v == 0) {
                *why = "an empty attachment name";
                return MEMDS_ST_BAD_CGI_SCRIPT;
            }
            fld->attach_name = v;
        }
    }
    return MEMDS_ST_OK;
}

/* ============================================================ Filter */

static int is_type(const memds_meta_t *m, const char *a, const char *b)
{
    return m && m->type
           && (strcasecmp(m->type, a) == 0
               || (b && strcasecmp(m->type, b) == 0));
}

int memds_filter_spec(memds_filter_spec_t **pspec, const memds_filter_t *f,
                      const char **why, apr_pool_t *p)
{
    memds_filter_spec_t *sp = apr_pcalloc(p, sizeof(*sp));
    int st;

    if (f->filter_type == NULL || strcmp(f->filter_type, "EXCLUSIVE") == 0) {
        sp->inclusive = 0;
    }
    else if (strcmp(f->filter_type, "INCLUSIVE") == 0) {
        sp->inclusive = 1;
    }
    else {
        *why = apr_psprintf(p, "FilterType '%s' (INCLUSIVE or EXCLUSIVE)",
                            f->filter_type);
        return MEMDS_ST_BAD_CGI_SCRIPT;
    }
    if (f->record) {
        const memds_item_t *it = f->record;
        if (!is_type(it->meta, MEMDS_FILTER_CGI, NULL)) {
            *why = apr_psprintf(
                p, "record filter type '%s' (only " MEMDS_FILTER_CGI ")",
                it->meta && it->meta->type ? it->meta->type : "(none)");
            return MEMDS_ST_UNSUPPORTED_MEDIA;
        }
        sp->record = apr_palloc(p, sizeof(*sp->record));
        if (memds_filter_cgi_parse(sp->record, it->data.data, it->data.len, why,
                                   p)
            != APR_SUCCESS) {
            return MEMDS_ST_BAD_CGI_SCRIPT;
        }
    }
    if (f->field) {
        const memds_item_t *it = f->field;
        if (it->meta && it->meta->type
            && !is_type(it->meta, "application/vnd.syncml-devinf+xml",
                        "application/vnd.syncml-devinf+wbxml")) {
            *why = apr_psprintf(p, "field filter type '%s' (only DevInf)",
                                it->meta->type);
            return MEMDS_ST_UNSUPPORTED_MEDIA;
        }
        if (it->data_kind != MEMDS_DATA_PROPS) {
            *why = "a field clause without DevInf <Property>";
            return MEMDS_ST_BAD_CGI_SCRIPT;
        }
        sp->field = apr_palloc(p, sizeof(*sp->field));
        st = memds_filter_field_parse(sp->field, it->props, why, p);
        if (st != MEMDS_ST_OK) {
            return st;
        }
    }
    if (sp->record == NULL && sp->field == NULL) {
        *why = "a filter with neither a Record nor a Field clause";
        return MEMDS_ST_BAD_CGI_SCRIPT;
    }
    *pspec = sp;
    return MEMDS_ST_OK;
}
