/* IMAP client layer, part 3 of 3: one function per command (SELECT,
 * FETCH, STORE, SEARCH, LIST, STATUS, APPEND, COPY, MOVE, EXPUNGE, ...) and
 * the checks of their arguments, and a failure as a typed error.
 * See memds_imap.h for the contract and memds_imap_int.h for what the three
 * parts share.
 *
 * File map: argument checks, (6) the commands, (7) typed errors. */
#include "backends/memds_imap_int.h"

#include <apr_strings.h>

#include <stdlib.h>
#include <string.h>

/* ---- argument checks (our commands never carry CR/LF or a stray tag) */

static int line_ok(const char *s)
{
    return s != NULL && *s != '\0' && strpbrk(s, "\r\n") == NULL;
}

/* sequence-set: (nz-number / "*") [":" ...] *("," ...), or "$" */
static int seqset_ok(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    if (!strcmp(s, "$")) {
        return 1;
    }
    for (;;) {
        int k;
        for (k = 0; k < 2; k++) {
            if (*s == '*') {
                s++;
            }
            else if (*s >= '1' && *s <= '9') {
                apr_uint64_t v = 0;
                while (is_digit((unsigned char)*s)) {
                    v = v * 10 + (apr_uint64_t)(*s++ - '0');
                    if (v > 0xFFFFFFFFu) {
                        return 0;
                    }
                }
            }
            else {
                return 0;
            }
            if (k == 0 && *s == ':') {
                s++;
                continue;
            }
            break;
        }
        if (*s == '\0') {
            return 1;
        }
        if (*s++ != ',') {
            return 0;
        }
    }
}

/* Space-separated flags: "\" atom or atom. */
static int flags_ok(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (;;) {
        const char *b;
        if (*s == '\\') {
            s++;
        }
        b = s;
        while (is_atom_char((unsigned char)*s)) {
            s++;
        }
        if (s == b) {
            return 0;
        }
        if (*s == '\0') {
            return 1;
        }
        if (*s++ != ' ') {
            return 0;
        }
    }
}

/* FETCH items that would set \Seen: BODY[, BINARY[, RFC822, RFC822.TEXT. */
static int sets_seen(const char *s)
{
    apr_size_t i, n = strlen(s);

    for (i = 0; i < n; i++) {
        int start = i == 0 || s[i - 1] == ' ' || s[i - 1] == '(';
        if (!start) {
            continue;
        }
        if ((n - i >= 5 && tok_eq(s + i, 5, "BODY["))
            || (n - i >= 7 && tok_eq(s + i, 7, "BINARY["))
            || (n - i >= 11 && tok_eq(s + i, 11, "RFC822.TEXT"))) {
            return 1;
        }
        if (n - i >= 6 && tok_eq(s + i, 6, "RFC822")
            && (n - i == 6 || s[i + 6] == ' ' || s[i + 6] == ')')) {
            return 1;
        }
    }
    return 0;
}

static apr_status_t need_selected(memds_imap_conn_t *c, memds_imap_err_t *err,
                                  const char *verb)
{
    if (!c->selected) {
        c->verb = verb;
        return memds_imap__fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                                "IMAP %s needs a selected mailbox", verb);
    }
    return APR_SUCCESS;
}

static apr_status_t bad_arg(memds_imap_conn_t *c, memds_imap_err_t *err,
                            const char *verb, const char *what)
{
    c->verb = verb;
    return memds_imap__fail(c, err, MEMDS_IMAP_E_ARG, APR_EINVAL,
                            "IMAP %s: invalid %s", verb, what);
}

static apr_status_t unsupported(memds_imap_conn_t *c, memds_imap_err_t *err,
                                const char *verb, const char *what)
{
    c->verb = verb;
    return memds_imap__fail(c, err, MEMDS_IMAP_E_UNSUPPORTED, APR_ENOTIMPL,
                            "IMAP %s: the server does not offer %s", verb,
                            what);
}

/* ---- connection setup */

/* ================================================= (6) the commands */

apr_status_t memds_imap_select(memds_imap_conn_t *c, const char *mailbox,
                               unsigned flags, const memds_imap_qresync_t *qr,
                               memds_imap_resp_cb *cb, void *baton,
                               const memds_imap_mailbox_t **pmbox,
                               memds_imap_err_t *err)
{
    int ro = (flags & MEMDS_IMAP_SEL_READONLY) != 0;
    int cs = (flags & MEMDS_IMAP_SEL_CONDSTORE) != 0;
    const char *verb = ro ? "EXAMINE" : "SELECT";
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    if (mailbox == NULL || *mailbox == '\0') {
        return bad_arg(c, err, verb, "mailbox name");
    }
    mailbox = memds_imap__mbox_norm(mailbox);
    if (qr && !c->qresync) {
        return unsupported(c, err, verb, "QRESYNC (or it is not enabled)");
    }
    if (qr
        && (qr->uidvalidity == 0 || qr->modseq == 0
            || (qr->known_uids && !seqset_ok(qr->known_uids)))) {
        return bad_arg(c, err, verb, "QRESYNC parameters");
    }
    if (cs && !(c->caps & MEMDS_IMAP_CAP_CONDSTORE)) {
        return unsupported(c, err, verb, "CONDSTORE");
    }
    /* connection reuse within a request: no second SELECT of the same box */
    if (!(flags & MEMDS_IMAP_SEL_FORCE) && qr == NULL && c->selected
        && strcmp(c->sel.name, mailbox) == 0 && c->sel.readonly == ro
        && (!cs || c->sel.condstore)) {
        if (pmbox) {
            *pmbox = &c->sel;
        }
        return APR_SUCCESS;
    }
    memds_imap__cmd_start(c, &cmd, verb);
    memds_buf_addc(&cmd.b, ' ');
    memds_imap__cmd_astring(&cmd, mailbox);
    if (qr) {
        memds_imap__cmd_addf(&cmd, " (QRESYNC (%u %" APR_UINT64_T_FMT "%s%s))",
                             (unsigned)qr->uidvalidity, qr->modseq,
                             qr->known_uids ? " " : "",
                             qr->known_uids ? qr->known_uids : "");
    }
    else if (cs) {
        memds_imap__cmd_add(&cmd, " (CONDSTORE)");
    }
    /* any SELECT, even a failing one, ends the previous selection */
    apr_pool_clear(c->selpool);
    memset(&c->sel, 0, sizeof(c->sel));
    c->sel.name = apr_pstrdup(c->selpool, mailbox);
    c->sel.readonly = ro;
    c->sel.condstore = cs || qr != NULL || c->qresync;
    c->selected = 0;
    c->selecting = 1;
    rv = memds_imap__cmd_exec(&cmd, cb, baton, &tagged, err);
    c->selecting = 0;
    c->selected = tagged != NULL && tagged->cond == MEMDS_IMAP_OK;
    if (c->sel.nomodseq) {
        c->sel.condstore = 0;
    }
    if (rv == APR_SUCCESS && pmbox) {
        *pmbox = &c->sel;
    }
    return rv;
}

const memds_imap_mailbox_t *memds_imap_selected(const memds_imap_conn_t *c)
{
    return c->selected ? &c->sel : NULL;
}

/* UNSELECT, its answer read now or later (memds_imap_settle). */
static apr_status_t unselect(memds_imap_conn_t *c, int later,
                             memds_imap_err_t *err)
{
    cmd_t cmd;
    apr_status_t rv = APR_SUCCESS;
    ERR_ARG(err);

    if (!c->selected) {
        return APR_SUCCESS;
    }
    if (c->caps & MEMDS_IMAP_CAP_UNSELECT) {
        memds_imap__cmd_start(c, &cmd, "UNSELECT");
        rv = later ? memds_imap__cmd_send_later(&cmd, err)
                   : memds_imap__cmd_exec(&cmd, NULL, NULL, NULL, err);
    }
    /* without UNSELECT (CLOSE would expunge) the server keeps the box
     * selected; we just stop attributing its updates */
    c->selected = 0;
    return rv;
}

apr_status_t memds_imap_unselect(memds_imap_conn_t *c, memds_imap_err_t *err)
{
    return unselect(c, 0, err);
}

apr_status_t memds_imap_unselect_later(memds_imap_conn_t *c,
                                       memds_imap_err_t *err)
{
    return unselect(c, 1, err);
}

apr_status_t memds_imap_uid_fetch(memds_imap_conn_t *c, const char *uidset,
                                  const char *items, apr_uint64_t changedsince,
                                  unsigned flags, memds_imap_resp_cb *cb,
                                  void *baton, memds_imap_err_t *err)
{
    cmd_t cmd;
    int vanished = (flags & MEMDS_IMAP_FETCH_VANISHED) != 0;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID FETCH"));
    if (!seqset_ok(uidset)) {
        return bad_arg(c, err, "UID FETCH", "UID set");
    }
    if (!line_ok(items)) {
        return bad_arg(c, err, "UID FETCH", "item list");
    }
    if (sets_seen(items)) {
        return bad_arg(c, err, "UID FETCH",
                       "item list: it would set \\Seen (use BODY.PEEK)");
    }
    if (vanished && (!c->qresync || changedsince == 0)) {
        return c->qresync ? bad_arg(c, err, "UID FETCH",
                                    "VANISHED without "
                                    "CHANGEDSINCE")
                          : unsupported(c, err, "UID FETCH", "QRESYNC");
    }
    if (changedsince && !(c->caps & MEMDS_IMAP_CAP_CONDSTORE)) {
        return unsupported(c, err, "UID FETCH", "CONDSTORE");
    }
    memds_imap__cmd_start(c, &cmd, "UID FETCH");
    memds_imap__cmd_addf(&cmd, " %s ", uidset);
    if (items[0] != '(' && strchr(items, ' ') != NULL) {
        memds_imap__cmd_addf(&cmd, "(%s)", items);
    }
    else {
        memds_imap__cmd_add(&cmd, items);
    }
    if (changedsince) {
        memds_imap__cmd_addf(&cmd, " (CHANGEDSINCE %" APR_UINT64_T_FMT "%s)",
                             changedsince, vanished ? " VANISHED" : "");
    }
    return memds_imap__cmd_exec(&cmd, cb, baton, NULL, err);
}

typedef struct body_baton_t {
    memds_imap_conn_t *c;
    apr_uint32_t uid;
    memds_imap_chunk_cb *cb;
    void *baton;
    int found;
    memds_imap_body_info_t info;
} body_baton_t;

static apr_status_t body_resp(void *baton, const memds_imap_resp_t *r)
{
    body_baton_t *bb = baton;
    int i;

    if (r->type != MEMDS_IMAP_RESP_FETCH || r->fetch->sections->nelts == 0
        || ((r->fetch->have & MEMDS_IMAP_F_UID) && r->fetch->uid != bb->uid)) {
        return APR_SUCCESS; /* unsolicited flag updates and the like */
    }
    bb->found = 1;
    for (i = 0; i < r->fetch->sections->nelts; i++) {
        const memds_imap_section_t *s = &APR_ARRAY_IDX(r->fetch->sections, i,
                                                       memds_imap_section_t);
        if (s->data == NULL) {
            bb->info.nil = 1;
        }
        else if (!s->streamed && s->len > 0) {
            /* a quoted string or a literal that was not streamed */
            TRY(bb->cb(bb->baton, bb->info.len, s->data, s->len));
            bb->info.len += s->len;
        }
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_fetch_body(memds_imap_conn_t *c, apr_uint32_t uid,
                                   const char *section, apr_uint64_t origin,
                                   apr_uint64_t length, unsigned flags,
                                   memds_imap_chunk_cb *cb, void *baton,
                                   memds_imap_body_info_t *info,
                                   memds_imap_err_t *err)
{
    int bin = (flags & MEMDS_IMAP_BODY_BINARY) != 0;
    body_baton_t bb;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID FETCH"));
    if (section == NULL) {
        section = "";
    }
    if (uid == 0 || cb == NULL
        || !memds_imap__section_ok(section, bin, c->cpool)
        || length > 0xFFFFFFFFu || origin > 0xFFFFFFFFu) {
        return bad_arg(c, err, "UID FETCH", "body section, range or callback");
    }
    if (bin && !(c->caps & MEMDS_IMAP_CAP_BINARY)) {
        return unsupported(c, err, "UID FETCH", "BINARY");
    }
    memset(&bb, 0, sizeof(bb));
    bb.c = c;
    bb.uid = uid;
    bb.cb = cb;
    bb.baton = baton;
    memds_imap__cmd_start(c, &cmd, "UID FETCH");
    memds_imap__cmd_addf(&cmd, " %u (UID %s[%s]", (unsigned)uid,
                         bin ? "BINARY.PEEK" : "BODY.PEEK", section);
    if (origin > 0 || length > 0) {
        memds_imap__cmd_addf(&cmd,
                             "<%" APR_UINT64_T_FMT ".%" APR_UINT64_T_FMT ">",
                             origin,
                             length > 0 ? length : APR_UINT64_C(4294967295));
    }
    memds_imap__cmd_add(&cmd, ")");
    c->chunk_cb = cb;
    c->chunk_baton = baton;
    rv = memds_imap__cmd_exec(&cmd, body_resp, &bb, NULL, err);
    if (rv == APR_SUCCESS && !bb.found) {
        rv = memds_imap__fail(c, err, MEMDS_IMAP_E_NOTFOUND, APR_NOTFOUND,
                              "IMAP UID FETCH: message UID %u not found",
                              (unsigned)uid);
    }
    bb.info.len += c->chunk_total;
    if (info) {
        *info = bb.info;
    }
    return rv;
}

apr_status_t memds_imap_uid_store(memds_imap_conn_t *c, const char *uidset,
                                  char op, const char *flags, int silent,
                                  apr_uint64_t unchangedsince,
                                  memds_imap_resp_cb *cb, void *baton,
                                  memds_imap_set_t **pmodified,
                                  memds_imap_err_t *err, apr_pool_t *p)
{
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    if (pmodified) {
        *pmodified = NULL;
    }
    TRY(need_selected(c, err, "UID STORE"));
    if (!seqset_ok(uidset) || (op != '+' && op != '-' && op != '=')
        || !flags_ok(flags)) {
        return bad_arg(c, err, "UID STORE", "UID set, operation or flags");
    }
    if (unchangedsince && !(c->caps & MEMDS_IMAP_CAP_CONDSTORE)) {
        return unsupported(c, err, "UID STORE", "CONDSTORE");
    }
    memds_imap__cmd_start(c, &cmd, "UID STORE");
    memds_imap__cmd_addf(&cmd, " %s ", uidset);
    if (unchangedsince) {
        memds_imap__cmd_addf(&cmd, "(UNCHANGEDSINCE %" APR_UINT64_T_FMT ") ",
                             unchangedsince);
    }
    memds_imap__cmd_addf(&cmd, "%sFLAGS%s (%s)",
                         op == '='   ? ""
                         : op == '+' ? "+"
                                     : "-",
                         silent ? ".SILENT" : "", flags);
    rv = memds_imap__cmd_exec(&cmd, cb, baton, &tagged, err);
    if (rv == APR_SUCCESS && pmodified
        && tagged->code.code == MEMDS_IMAP_CODE_MODIFIED) {
        *pmodified = memds_imap__copy_set(tagged->code.uids, p);
    }
    return rv;
}

typedef struct search_baton_t {
    memds_imap_conn_t *c;
    apr_pool_t *p;
    apr_array_header_t *uids; /* SEARCH results */
    memds_imap_search_t *es;  /* ESEARCH result */
    apr_uint64_t modseq;
} search_baton_t;

static apr_status_t search_resp(void *baton, const memds_imap_resp_t *r)
{
    search_baton_t *sb = baton;
    int i, j;

    if (r->type == MEMDS_IMAP_RESP_SEARCH) {
        const memds_imap_set_t *s = r->search->all;
        for (i = 0; i < s->nranges; i++) {
            for (j = 0; (apr_uint64_t)j
                        <= (apr_uint64_t)s->ranges[i].hi - s->ranges[i].lo;
                 j++) {
                *(apr_uint32_t *)apr_array_push(sb->uids) = s->ranges[i].lo
                                                            + (apr_uint32_t)j;
            }
        }
        if (r->search->have & MEMDS_IMAP_SR_MODSEQ) {
            sb->modseq = r->search->modseq;
        }
    }
    else if (r->type == MEMDS_IMAP_RESP_ESEARCH
             && (r->search->tag == NULL
                 || !strcmp(r->search->tag, sb->c->tag))) {
        sb->es = apr_pmemdup(sb->p, r->search, sizeof(*r->search));
        sb->es->tag = NULL;
        sb->es->all = memds_imap__copy_set(r->search->all, sb->p);
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_uid_search(memds_imap_conn_t *c, const char *criteria,
                                   memds_imap_search_t **presult,
                                   memds_imap_err_t *err, apr_pool_t *p)
{
    search_baton_t sb;
    memds_imap_search_t *res;
    cmd_t cmd;
    int es = (c->caps & MEMDS_IMAP_CAP_ESEARCH) != 0;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID SEARCH"));
    if (!line_ok(criteria)) {
        return bad_arg(c, err, "UID SEARCH", "criteria");
    }
    memset(&sb, 0, sizeof(sb));
    sb.c = c;
    sb.p = p;
    sb.uids = apr_array_make(p, 64, sizeof(apr_uint32_t));
    memds_imap__cmd_start(c, &cmd, "UID SEARCH");
    memds_imap__cmd_addf(&cmd, "%s %s", es ? " RETURN (ALL)" : "", criteria);
    TRY(memds_imap__cmd_exec(&cmd, search_resp, &sb, NULL, err));
    if (sb.es) {
        res = sb.es;
        res->count = (apr_uint32_t)memds_imap_set_count(res->all);
        res->have |= MEMDS_IMAP_SR_COUNT | MEMDS_IMAP_SR_ALL;
    }
    else {
        res = apr_pcalloc(p, sizeof(*res));
        res->uid = 1;
        res->all = memds_imap__set_from_numbers((const apr_uint32_t *)
                                                    sb.uids->elts,
                                                sb.uids->nelts, p);
        res->count = (apr_uint32_t)memds_imap_set_count(res->all);
        res->have = MEMDS_IMAP_SR_ALL | MEMDS_IMAP_SR_COUNT;
        if (sb.modseq) {
            res->modseq = sb.modseq;
            res->have |= MEMDS_IMAP_SR_MODSEQ;
        }
    }
    if (res->all->nranges > 0) {
        res->min = res->all->ranges[0].lo;
        res->max = res->all->ranges[res->all->nranges - 1].hi;
        res->have |= MEMDS_IMAP_SR_MIN | MEMDS_IMAP_SR_MAX;
    }
    *presult = res;
    return APR_SUCCESS;
}

static memds_imap_status_t *copy_status(const memds_imap_status_t *s,
                                        apr_pool_t *p)
{
    memds_imap_status_t *o = apr_pmemdup(p, s, sizeof(*s));

    o->mailbox = apr_pstrdup(p, s->mailbox);
    o->xguid = s->xguid ? apr_pstrdup(p, s->xguid) : NULL;
    return o;
}

typedef struct list_baton_t {
    apr_pool_t *p;
    apr_array_header_t *boxes;    /* memds_imap_list_t * */
    apr_array_header_t *statuses; /* memds_imap_status_t * */
} list_baton_t;

/* A folder of a LIST answer, from p (without its STATUS). */
static memds_imap_list_t *copy_list(const memds_imap_list_t *m, apr_pool_t *p)
{
    memds_imap_list_t *l = apr_pmemdup(p, m, sizeof(*m));

    l->name = apr_pstrdup(p, m->name);
    l->name_utf8 = m->name_utf8 ? apr_pstrdup(p, m->name_utf8) : NULL;
    l->attr_names = memds_imap__copy_strs(m->attr_names, p);
    l->status = NULL;
    return l;
}

static apr_array_header_t *copy_lists(const apr_array_header_t *boxes,
                                      apr_pool_t *p)
{
    apr_array_header_t *o = apr_array_make(p, boxes->nelts > 0 ? boxes->nelts
                                                               : 1,
                                           sizeof(memds_imap_list_t *));
    int i;

    for (i = 0; i < boxes->nelts; i++) {
        *(memds_imap_list_t **)apr_array_push(o) = copy_list(
            APR_ARRAY_IDX(boxes, i, const memds_imap_list_t *), p);
    }
    return o;
}

static apr_status_t list_resp(void *baton, const memds_imap_resp_t *r)
{
    list_baton_t *lb = baton;

    if (r->type == MEMDS_IMAP_RESP_LIST) {
        *(memds_imap_list_t **)apr_array_push(lb->boxes) = copy_list(r->mbox,
                                                                     lb->p);
    }
    else if (r->type == MEMDS_IMAP_RESP_STATUS) {
        *(memds_imap_status_t **)apr_array_push(
            lb->statuses) = copy_status(r->status, lb->p);
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_list(memds_imap_conn_t *c, const char *status_items,
                             apr_array_header_t **pboxes, memds_imap_err_t *err,
                             apr_pool_t *p)
{
    list_baton_t lb;
    cmd_t cmd;
    int su = (c->caps & MEMDS_IMAP_CAP_SPECIAL_USE) != 0;
    int ls = status_items && (c->caps & MEMDS_IMAP_CAP_LIST_STATUS);
    int i, j;
    apr_status_t rv;
    ERR_ARG(err);

    if (status_items && !line_ok(status_items)) {
        return bad_arg(c, err, "LIST", "status items");
    }
    memset(&lb, 0, sizeof(lb));
    lb.p = p;
    lb.boxes = apr_array_make(p, 16, sizeof(memds_imap_list_t *));
    lb.statuses = apr_array_make(p, 16, sizeof(memds_imap_status_t *));
    memds_imap__cmd_start(c, &cmd, "LIST");
    memds_imap__cmd_add(&cmd, " \"\" \"*\"");
    if (su || ls) {
        memds_imap__cmd_addf(&cmd, " RETURN (%s%s%s%s%s)",
                             su ? "SPECIAL-USE" : "", su && ls ? " " : "",
                             ls ? "STATUS (" : "", ls ? status_items : "",
                             ls ? ")" : "");
    }
    rv = memds_imap__cmd_exec(&cmd, list_resp, &lb, NULL, err);
    if (rv != APR_SUCCESS && (su || ls) && err->kind == MEMDS_IMAP_E_BAD) {
        /* the server does not take LIST-EXTENDED after all: plain LIST */
        err_init(err);
        ls = 0;
        apr_array_clear(lb.boxes);
        apr_array_clear(lb.statuses);
        memds_imap__cmd_start(c, &cmd, "LIST");
        memds_imap__cmd_add(&cmd, " \"\" \"*\"");
        rv = memds_imap__cmd_exec(&cmd, list_resp, &lb, NULL, err);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < lb.boxes->nelts; i++) {
        memds_imap_list_t *l = APR_ARRAY_IDX(lb.boxes, i, memds_imap_list_t *);
        for (j = 0; j < lb.statuses->nelts; j++) {
            memds_imap_status_t *st = APR_ARRAY_IDX(lb.statuses, j,
                                                    memds_imap_status_t *);
            if (!strcmp(st->mailbox, l->name)) {
                l->status = st;
            }
        }
        if (status_items && !ls && l->status == NULL
            && !(l->attrs
                 & (MEMDS_IMAP_MBX_NOSELECT | MEMDS_IMAP_MBX_NONEXISTENT))) {
            rv = memds_imap_status(c, l->name, status_items, &l->status, err,
                                   p);
            if (rv != APR_SUCCESS) {
                if (err->kind != MEMDS_IMAP_E_NO) {
                    return rv;
                }
                err_init(err); /* deleted meanwhile: no status */
            }
        }
    }
    *pboxes = lb.boxes;
    return APR_SUCCESS;
}

apr_status_t memds_imap_list_recent(memds_imap_conn_t *c,
                                    apr_interval_time_t max_age,
                                    apr_array_header_t **pboxes,
                                    memds_imap_err_t *err, apr_pool_t *p)
{
    apr_array_header_t *boxes;
    apr_time_t now = apr_time_now();
    ERR_ARG(err);

    if (c->listed && max_age > 0 && now >= c->listed_at
        && now - c->listed_at < max_age) {
        *pboxes = copy_lists(c->listed, p);
        return APR_SUCCESS;
    }
    TRY(memds_imap_list(c, NULL, &boxes, err, p));
    apr_pool_clear(c->listpool);
    c->listed = copy_lists(boxes, c->listpool);
    c->listed_at = now;
    *pboxes = boxes;
    return APR_SUCCESS;
}

typedef struct status_baton_t {
    apr_pool_t *p;
    const char *name;
    memds_imap_status_t *match, *any;
    int n;
} status_baton_t;

static apr_status_t status_resp(void *baton, const memds_imap_resp_t *r)
{
    status_baton_t *sb = baton;

    if (r->type == MEMDS_IMAP_RESP_STATUS) {
        memds_imap_status_t *st = copy_status(r->status, sb->p);
        sb->n++;
        sb->any = st;
        if (!strcmp(st->mailbox, sb->name)) {
            sb->match = st;
        }
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_status(memds_imap_conn_t *c, const char *mailbox,
                               const char *items, memds_imap_status_t **pst,
                               memds_imap_err_t *err, apr_pool_t *p)
{
    status_baton_t sb;
    cmd_t cmd;
    ERR_ARG(err);

    if (mailbox == NULL || *mailbox == '\0' || (items && !line_ok(items))) {
        return bad_arg(c, err, "STATUS", "mailbox or items");
    }
    if (items == NULL) {
        items = (c->caps & MEMDS_IMAP_CAP_CONDSTORE)
                    ? "MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ"
                    : "MESSAGES UIDNEXT UIDVALIDITY UNSEEN";
    }
    memset(&sb, 0, sizeof(sb));
    sb.p = p;
    sb.name = mailbox = memds_imap__mbox_norm(mailbox);
    memds_imap__cmd_start(c, &cmd, "STATUS");
    memds_buf_addc(&cmd.b, ' ');
    memds_imap__cmd_astring(&cmd, mailbox);
    memds_imap__cmd_addf(&cmd, " (%s)", items);
    TRY(memds_imap__cmd_exec(&cmd, status_resp, &sb, NULL, err));
    if (sb.match == NULL && sb.n != 1) {
        return memds_imap__fail(
            c, err, MEMDS_IMAP_E_PROTOCOL, APR_EINVAL,
            "IMAP STATUS: no STATUS response for the mailbox");
    }
    *pst = sb.match ? sb.match : sb.any;
    return APR_SUCCESS;
}

apr_status_t memds_imap_append(memds_imap_conn_t *c, const char *mailbox,
                               const char *flags, apr_time_t internaldate,
                               const char *msg, apr_size_t len,
                               apr_uint32_t *puidvalidity, apr_uint32_t *puid,
                               memds_imap_err_t *err)
{
    static const char *const mon[] = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun",
        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
    };
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    apr_status_t rv;
    ERR_ARG(err);

    if (puidvalidity) {
        *puidvalidity = 0;
    }
    if (puid) {
        *puid = 0;
    }
    if (mailbox == NULL || *mailbox == '\0'
        || (flags && *flags && !flags_ok(flags)) || (msg == NULL && len > 0)
        || len > 0xFFFFFFFFu) {
        return bad_arg(c, err, "APPEND", "mailbox, flags or message");
    }
    memds_imap__cmd_start(c, &cmd, "APPEND");
    memds_buf_addc(&cmd.b, ' ');
    memds_imap__cmd_astring(&cmd, memds_imap__mbox_norm(mailbox));
    if (flags && *flags) {
        memds_imap__cmd_addf(&cmd, " (%s)", flags);
    }
    if (internaldate > 0) {
        apr_time_exp_t tm;
        apr_time_exp_gmt(&tm, internaldate);
        memds_imap__cmd_addf(&cmd, " \"%2d-%s-%04d %02d:%02d:%02d +0000\"",
                             tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900,
                             tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    memds_buf_addc(&cmd.b, ' ');
    memds_imap__cmd_literal(&cmd, msg ? msg : "", len);
    rv = memds_imap__cmd_exec(&cmd, NULL, NULL, &tagged, err);
    if (rv == APR_SUCCESS && tagged->code.code == MEMDS_IMAP_CODE_APPENDUID) {
        if (puidvalidity) {
            *puidvalidity = tagged->code.uidvalidity;
        }
        if (puid) {
            *puid = tagged->code.number;
        }
    }
    return rv;
}

static memds_imap_copyuid_t *copy_cu(const memds_imap_copyuid_t *cu,
                                     apr_pool_t *p)
{
    memds_imap_copyuid_t *o = apr_pcalloc(p, sizeof(*o));

    o->uidvalidity = cu->uidvalidity;
    o->src = memds_imap__copy_set(cu->src, p);
    o->dst = memds_imap__copy_set(cu->dst, p);
    return o;
}

static memds_imap_copyuid_t *tagged_cu(const memds_imap_resp_t *t,
                                       apr_pool_t *p)
{
    memds_imap_copyuid_t cu;

    if (t == NULL || t->code.code != MEMDS_IMAP_CODE_COPYUID) {
        return NULL;
    }
    cu.uidvalidity = t->code.uidvalidity;
    cu.src = t->code.uids;
    cu.dst = t->code.uids2;
    return copy_cu(&cu, p);
}

apr_status_t memds_imap_uid_copy(memds_imap_conn_t *c, const char *uidset,
                                 const char *dest, memds_imap_copyuid_t **pcu,
                                 memds_imap_err_t *err, apr_pool_t *p)
{
    const memds_imap_resp_t *tagged = NULL;
    cmd_t cmd;
    ERR_ARG(err);

    if (pcu) {
        *pcu = NULL;
    }
    TRY(need_selected(c, err, "UID COPY"));
    if (!seqset_ok(uidset) || dest == NULL || *dest == '\0') {
        return bad_arg(c, err, "UID COPY", "UID set or mailbox");
    }
    memds_imap__cmd_start(c, &cmd, "UID COPY");
    memds_imap__cmd_addf(&cmd, " %s ", uidset);
    memds_imap__cmd_astring(&cmd, memds_imap__mbox_norm(dest));
    TRY(memds_imap__cmd_exec(&cmd, NULL, NULL, &tagged, err));
    if (pcu) {
        *pcu = tagged_cu(tagged, p);
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_uid_expunge(memds_imap_conn_t *c, const char *uidset,
                                    memds_imap_resp_cb *cb, void *baton,
                                    memds_imap_err_t *err)
{
    cmd_t cmd;
    ERR_ARG(err);

    TRY(need_selected(c, err, "UID EXPUNGE"));
    if (!seqset_ok(uidset)) {
        return bad_arg(c, err, "UID EXPUNGE", "UID set");
    }
    if (!(c->caps & MEMDS_IMAP_CAP_UIDPLUS)) {
        return unsupported(c, err, "UID EXPUNGE", "UIDPLUS");
    }
    memds_imap__cmd_start(c, &cmd, "UID EXPUNGE");
    memds_imap__cmd_addf(&cmd, " %s", uidset);
    return memds_imap__cmd_exec(&cmd, cb, baton, NULL, err);
}

apr_status_t memds_imap_uid_move(memds_imap_conn_t *c, const char *uidset,
                                 const char *dest, memds_imap_resp_cb *cb,
                                 void *baton, memds_imap_copyuid_t **pcu,
                                 memds_imap_err_t *err, apr_pool_t *p)
{
    const memds_imap_resp_t *tagged = NULL;
    memds_imap_copyuid_t *cu = NULL;
    cmd_t cmd;
    ERR_ARG(err);

    if (pcu) {
        *pcu = NULL;
    }
    TRY(need_selected(c, err, "UID MOVE"));
    if (!seqset_ok(uidset) || dest == NULL || *dest == '\0') {
        return bad_arg(c, err, "UID MOVE", "UID set or mailbox");
    }
    if (c->caps & MEMDS_IMAP_CAP_MOVE) {
        memds_imap__cmd_start(c, &cmd, "UID MOVE");
        memds_imap__cmd_addf(&cmd, " %s ", uidset);
        memds_imap__cmd_astring(&cmd, memds_imap__mbox_norm(dest));
        TRY(memds_imap__cmd_exec(&cmd, cb, baton, &tagged, err));
        /* RFC 6851: COPYUID in an untagged OK before the expunges (some
         * servers put it in the tagged OK) */
        cu = c->copyuid ? copy_cu(c->copyuid, p) : tagged_cu(tagged, p);
    }
    else {
        TRY(memds_imap_uid_copy(c, uidset, dest, &cu, err, p));
        TRY(memds_imap_uid_store(c, uidset, '+', "\\Deleted", 1, 0, cb, baton,
                                 NULL, err, p));
        if (c->caps & MEMDS_IMAP_CAP_UIDPLUS) {
            TRY(memds_imap_uid_expunge(c, uidset, cb, baton, err));
        }
    }
    if (pcu) {
        *pcu = cu;
    }
    return APR_SUCCESS;
}

static apr_status_t mailbox_cmd(memds_imap_conn_t *c, const char *verb,
                                const char *a, const char *b,
                                memds_imap_err_t *err)
{
    cmd_t cmd;

    if (a == NULL || *a == '\0' || (b != NULL && *b == '\0')) {
        return bad_arg(c, err, verb, "mailbox name");
    }
    a = memds_imap__mbox_norm(a);
    b = b ? memds_imap__mbox_norm(b) : NULL;
    memds_imap__cmd_start(c, &cmd, verb);
    memds_buf_addc(&cmd.b, ' ');
    memds_imap__cmd_astring(&cmd, a);
    if (b) {
        memds_buf_addc(&cmd.b, ' ');
        memds_imap__cmd_astring(&cmd, b);
    }
    /* (whether it failed or not, the folders may have changed) */
    c->listed = NULL;
    TRY(memds_imap__cmd_exec(&cmd, NULL, NULL, NULL, err));
    if (c->selected && strcmp(verb, "CREATE") != 0 && !strcmp(c->sel.name, a)) {
        c->selected = 0; /* the selected box is gone or renamed */
    }
    return APR_SUCCESS;
}

apr_status_t memds_imap_create(memds_imap_conn_t *c, const char *mailbox,
                               memds_imap_err_t *err)
{
    ERR_ARG(err);
    return mailbox_cmd(c, "CREATE", mailbox, NULL, err);
}

apr_status_t memds_imap_delete(memds_imap_conn_t *c, const char *mailbox,
                               memds_imap_err_t *err)
{
    ERR_ARG(err);
    return mailbox_cmd(c, "DELETE", mailbox, NULL, err);
}

apr_status_t memds_imap_rename(memds_imap_conn_t *c, const char *from,
                               const char *to, memds_imap_err_t *err)
{
    ERR_ARG(err);
    if (to == NULL) {
        return bad_arg(c, err, "RENAME", "mailbox name");
    }
    return mailbox_cmd(c, "RENAME", from, to, err);
}

apr_status_t memds_imap_noop(memds_imap_conn_t *c, memds_imap_resp_cb *cb,
                             void *baton, memds_imap_err_t *err)
{
    cmd_t cmd;
    ERR_ARG(err);

    memds_imap__cmd_start(c, &cmd, "NOOP");
    return memds_imap__cmd_exec(&cmd, cb, baton, NULL, err);
}

apr_status_t memds_imap_run(memds_imap_conn_t *c, const char *line,
                            memds_imap_resp_cb *cb, void *baton,
                            const memds_imap_resp_t **ptagged,
                            memds_imap_err_t *err)
{
    cmd_t cmd;
    const char *sp;
    ERR_ARG(err);

    if (!line_ok(line)) {
        return bad_arg(c, err, "(command)", "command line");
    }
    sp = strchr(line, ' ');
    memds_imap__cmd_start(c, &cmd,
                          str_upper(c->pool, line,
                                    sp ? (apr_size_t)(sp - line)
                                       : strlen(line)));
    if (sp) {
        memds_imap__cmd_add(&cmd, sp);
    }
    return memds_imap__cmd_exec(&cmd, cb, baton, ptagged, err);
}

/* ============================================= (7) typed errors */

memds_err_t memds_imap_err_of(const memds_imap_err_t *err)
{
    if (err == NULL || err->kind == MEMDS_IMAP_E_NONE) {
        return memds_err_make(MEMDS_ERR_NONE, "OK");
    }
    /* response codes first: they say most precisely what happened */
    switch (err->code) {
    case MEMDS_IMAP_CODE_AUTHENTICATIONFAILED:
    case MEMDS_IMAP_CODE_AUTHORIZATIONFAILED:
    case MEMDS_IMAP_CODE_EXPIRED:
        return memds_err_make(MEMDS_ERR_AUTH, "Mail server login failed");
    case MEMDS_IMAP_CODE_NONEXISTENT:
    case MEMDS_IMAP_CODE_TRYCREATE:
        return memds_err_make(MEMDS_ERR_NOT_FOUND, "Mail folder not found");
    case MEMDS_IMAP_CODE_ALREADYEXISTS:
        return memds_err_make(MEMDS_ERR_EXISTS, "Mail folder already exists");
    case MEMDS_IMAP_CODE_NOPERM:
        return memds_err_make(MEMDS_ERR_PERMISSION,
                              "Permission denied by the mail server");
    case MEMDS_IMAP_CODE_OVERQUOTA:
        return memds_err_make(MEMDS_ERR_QUOTA, "Mailbox quota exceeded");
    case MEMDS_IMAP_CODE_UNAVAILABLE:
    case MEMDS_IMAP_CODE_INUSE:
        return memds_err_make(MEMDS_ERR_TRANSIENT,
                              "Mail server temporarily unavailable");
    case MEMDS_IMAP_CODE_EXPUNGEISSUED:
        return memds_err_make(MEMDS_ERR_NOT_FOUND, "Message no longer exists");
    default: break;
    }
    switch (err->kind) {
    case MEMDS_IMAP_E_AUTH:
        return memds_err_make(MEMDS_ERR_AUTH, "Mail server login failed");
    case MEMDS_IMAP_E_TLS:
        return memds_err_make(MEMDS_ERR_TLS,
                              "Secure connection to the mail server failed");
    case MEMDS_IMAP_E_CONNECT:
    case MEMDS_IMAP_E_IO:
    case MEMDS_IMAP_E_BYE:
        return memds_err_make(MEMDS_ERR_TRANSIENT, "Mail server not reachable");
    case MEMDS_IMAP_E_TIMEOUT:
        return memds_err_make(MEMDS_ERR_TRANSIENT, "Mail server timed out");
    case MEMDS_IMAP_E_NOTFOUND:
        return memds_err_make(MEMDS_ERR_NOT_FOUND, "Message no longer exists");
    case MEMDS_IMAP_E_NO:
        /* Dovecot answers SELECT/EXAMINE/STATUS of a missing mailbox with a
         * plain NO (no [NONEXISTENT]): that is what a code-less NO to these
         * means in practice */
        if (err->code == MEMDS_IMAP_CODE_NONE && err->cmd
            && (!strcmp(err->cmd, "SELECT") || !strcmp(err->cmd, "EXAMINE")
                || !strcmp(err->cmd, "STATUS"))) {
            return memds_err_make(MEMDS_ERR_NOT_FOUND, "Mail folder not found");
        }
        return memds_err_make(MEMDS_ERR_FAILED,
                              "Mail server refused the operation");
    case MEMDS_IMAP_E_PROTOCOL:
        return memds_err_make(MEMDS_ERR_PROTOCOL,
                              "Invalid answer from the mail server");
    case MEMDS_IMAP_E_LIMIT:
        return memds_err_make(MEMDS_ERR_TOO_LARGE,
                              "Mail server data too large");
    case MEMDS_IMAP_E_BAD:
        return memds_err_make(MEMDS_ERR_REJECTED,
                              "Mail server rejected the command");
    case MEMDS_IMAP_E_UNSUPPORTED:
        return memds_err_make(MEMDS_ERR_CONFIG,
                              "Mail server lacks a needed feature");
    default: return memds_err_make(MEMDS_ERR_INTERNAL, "Mail operation failed");
    }
}
