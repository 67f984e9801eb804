/* Unit tests: the protocol engine (ds/memds_engine*.c) driven through
 * memds_engine_run with the in-memory session store and its "items"
 * datastore: no PostgreSQL. The device side is written here as XML, the way
 * SyncEvolution (libsynthesis) writes its messages: Cred and Alerts with
 * anchors in package 1 (md5 digest over an empty nonce when it has none),
 * the Sync in package 3, Statuses and Map in package 5, Alert 222 for the
 * next message of a package spanning several. Recorded sessions of the real
 * client are replayed from tests/corpus when it is there. */
#include "unit.h"
#include "ds/memds_engine.h"
#include "ds/memds_sessdb.h"
#include "ds/memds_auth.h"
#include "syncml/memds_codes.h"

#include <apr_base64.h>
#include <apr_md5.h>
#include <apr_strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER "test"
#define PASS "secret"
#define BASE "http://server.test/sync"

/* --------------------------------------------------------- a verifier */

/* The accounts: ours, and the one the recorded corpus sessions use. */
static const char *password_of(const char *user)
{
    return strcmp(user, USER) == 0      ? PASS
           : strcmp(user, "alice") == 0 ? "alice-secret"
           : strcmp(user, "bob") == 0   ? "bob-secret"
                                        : NULL;
}

static apr_status_t v_check(const memds_verifier_t *v, const char *user,
                            const char *password, apr_pool_t *p)
{
    const char *pw = password_of(user);

    (void)v;
    (void)p;
    return pw && strcmp(password, pw) == 0 ? APR_SUCCESS : APR_EACCES;
}

static apr_status_t v_md5(const memds_verifier_t *v, const char *user,
                          const char **pinner, apr_pool_t *p)
{
    (void)v;
    if (password_of(user) == NULL) {
        return APR_ENOENT;
    }
    *pinner = memds_auth_md5_inner(user, password_of(user), p);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------ a device */

typedef struct tdev_t {
    memds_memdb_t *db;
    memds_verifier_t ver;
    memds_engine_cfg_t cfg;
    apr_pool_t *p;
    const char *devid, *user, *pass;
    int md5;           /* 1: syncml:auth-md5 */
    const char *nonce; /* md5: the last NextNonce, "" for none */
    int sid, msgid, max_msg;
    const char *token;       /* from RespURI */
    const char *http_user;   /* httpd's r->user, or NULL */
    const char *last_anchor; /* of the last completed sync */
    /* the last exchange */
    const char *body; /* what was sent */
    memds_response_t resp;
    memds_msg_t *ans;
    /* what package 4 brought */
    int got_add, got_replace, got_delete;
    /* the device answers items with this data with 500 (quarantine) */
    const char *refuse;
    int refused;
    /* sessions run with this vtable instead of the memory store's own */
    const memds_sessdb_vt *vt;
} tdev_t;

static tdev_t *dev_new(const char *devid)
{
    tdev_t *d = apr_pcalloc(unit_pool, sizeof(*d));

    d->p = unit_pool;
    d->db = memds_memdb_create(unit_pool);
    d->ver.check_password = v_check;
    d->ver.md5_inner = v_md5;
    d->cfg.datastore = "items";
    d->cfg.session_timeout = 600;
    d->cfg.max_msg_size = 150000;
    d->cfg.max_obj_size = 4000000;
    d->cfg.conflict = MEMDS_CONFLICT_SERVER_WINS;
    d->cfg.auth_type = MEMDS_AUTH_BASIC;
    d->cfg.verifier = &d->ver;
    d->cfg.auth_max_failures = 5;
    d->cfg.auth_window = 60;
    d->cfg.auth_block = 60;
    d->cfg.server_name = "unit";
    d->devid = devid;
    d->user = USER;
    d->pass = PASS;
    d->nonce = "";
    d->max_msg = 150000;
    return d;
}

/* A second device of the same account on the same server. */
static tdev_t *dev_other(const tdev_t *d, const char *devid)
{
    tdev_t *o = apr_pmemdup(unit_pool, d, sizeof(*d));

    o->devid = devid;
    o->nonce = "";
    o->token = NULL;
    o->last_anchor = NULL;
    return o;
}

static const char *cred_xml(tdev_t *d)
{
    const char *data;

    if (d->md5) {
        data = memds_auth_md5_digest(memds_auth_md5_inner(d->user, d->pass,
                                                          d->p),
                                     d->nonce, d->p);
    }
    else {
        const char *up = apr_pstrcat(d->p, d->user, ":", d->pass, NULL);
        char *b = apr_palloc(d->p, apr_base64_encode_len((int)strlen(up)));
        apr_base64_encode(b, up, (int)strlen(up));
        data = b;
    }
    return apr_psprintf(
        d->p,
        "<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>"
        "<Type xmlns='syncml:metinf'>syncml:auth-%s</Type></Meta>"
        "<Data>%s</Data></Cred>",
        d->md5 ? "md5" : "basic", data);
}

static void start(tdev_t *d)
{
    d->sid++;
    d->msgid = 0;
    d->token = NULL;
    d->got_add = d->got_replace = d->got_delete = 0;
}

/* The header Status of the answer (its Data as a number), and the Chal. */
static const memds_cmd_t *hdr_status(const memds_msg_t *m)
{
    int i;

    for (i = 0; m && i < m->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *);
        if (c->type == MEMDS_CMD_STATUS && c->cmd
            && strcmp(c->cmd, "SyncHdr") == 0) {
            return c;
        }
    }
    return NULL;
}

static int hdr_code(const memds_msg_t *m)
{
    const memds_cmd_t *c = hdr_status(m);

    return c ? atoi(c->data) : -1;
}

/* Send bytes as the next message (no MsgID handling). */
static memds_msg_t *send_bytes(tdev_t *d, const char *body, apr_size_t len,
                               memds_enc_e enc)
{
    memds_request_t rq;
    memds_codec_err_t err;
    const memds_cmd_t *hs;
    memds_sessdb_t *db;

    memset(&rq, 0, sizeof(rq));
    rq.body = body;
    rq.len = len;
    rq.enc = enc;
    rq.token = d->token;
    rq.http_user = d->http_user;
    rq.base_url = BASE;
    d->body = body;
    d->ans = NULL;
    db = memds_sessdb_mem(d->db, d->p);
    if (d->vt) {
        db->vt = d->vt;
    }
    CU_ASSERT_EQUAL(memds_engine_run(&d->resp, &d->cfg, db, &rq, d->p),
                    APR_SUCCESS);
    if (d->resp.http_status != 200) {
        return NULL;
    }
    if (memds_msg_decode(&d->ans, d->resp.body, d->resp.len, enc, &err, d->p)
        != APR_SUCCESS) {
        CU_FAIL("the answer does not decode");
        return NULL;
    }
    if (d->ans->hdr.resp_uri && strstr(d->ans->hdr.resp_uri, "?s=")) {
        d->token = strstr(d->ans->hdr.resp_uri, "?s=") + 3;
    }
    hs = hdr_status(d->ans);
    if (hs && hs->chal && hs->chal->next_nonce) {
        d->nonce = hs->chal->next_nonce;
    }
    return d->ans;
}

static memds_msg_t *send_raw(tdev_t *d, const char *body)
{
    return send_bytes(d, body, strlen(body), MEMDS_ENC_XML);
}

/* The next message of the session: header (with Cred when asked), cmds,
 * Final when asked. */
static memds_msg_t *send_msg(tdev_t *d, const char *cmds, int final, int cred)
{
    const char *body = apr_psprintf(
        d->p,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD>"
        "<VerProto>SyncML/1.2</VerProto><SessionID>%d</SessionID><MsgID>%d</"
        "MsgID>"
        "<Target><LocURI>" BASE "</LocURI></Target>"
        "<Source><LocURI>%s</LocURI><LocName>%s</LocName></Source>%s"
        "<Meta><MaxMsgSize xmlns='syncml:metinf'>%d</MaxMsgSize>"
        "<MaxObjSize "
        "xmlns='syncml:metinf'>4000000</MaxObjSize></Meta></SyncHdr>"
        "<SyncBody>%s%s</SyncBody></SyncML>",
        d->sid, ++d->msgid, d->devid, d->user, cred ? cred_xml(d) : "",
        d->max_msg, cmds, final ? "<Final/>" : "");

    return send_raw(d, body);
}

static const char *alert_xml(tdev_t *d, int code, const char *last,
                             const char *next)
{
    return apr_psprintf(
        d->p,
        "<Alert><CmdID>1</CmdID><Data>%d</Data><Item>"
        "<Target><LocURI>memo</LocURI></Target>"
        "<Source><LocURI>./memo</LocURI></Source>"
        "<Meta><Anchor xmlns='syncml:metinf'>%s%s%s<Next>%s</Next>"
        "</Anchor><MaxObjSize xmlns='syncml:metinf'>4000000</MaxObjSize>"
        "</Meta></Item></Alert>",
        code, last ? "<Last>" : "", last ? last : "", last ? "</Last>" : "",
        next);
}

static const char *item_cmd(tdev_t *d, const char *cmd, int id,
                            const char *luid, const char *data)
{
    return apr_psprintf(
        d->p,
        "<%s><CmdID>%d</CmdID><Meta><Type xmlns='syncml:metinf'>"
        "text/plain</Type></Meta><Item><Source><LocURI>%s</LocURI>"
        "</Source>%s%s%s</Item></%s>",
        cmd, id, luid, data ? "<Data>" : "", data ? data : "",
        data ? "</Data>" : "", cmd);
}

static const char *sync_xml(tdev_t *d, const char *inner)
{
    return apr_psprintf(
        d->p,
        "<Sync><CmdID>2</CmdID><Target><LocURI>memo</LocURI>"
        "</Target><Source><LocURI>./memo</LocURI></Source>%s</Sync>",
        inner);
}

/* The answer's commands of a type, and the n-th Status for a command. */
static const memds_cmd_t *find_cmd(const memds_msg_t *m, memds_cmd_e type)
{
    int i;

    for (i = 0; m && i < m->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *);
        if (c->type == type) {
            return c;
        }
    }
    return NULL;
}

static int status_code(const memds_msg_t *m, const char *cmd, int nth)
{
    int i;

    for (i = 0; m && i < m->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *);
        if (c->type == MEMDS_CMD_STATUS && c->cmd && strcmp(c->cmd, cmd) == 0
            && nth-- == 0) {
            return atoi(c->data);
        }
    }
    return -1;
}

static int alert_code(const memds_msg_t *m)
{
    const memds_cmd_t *c = find_cmd(m, MEMDS_CMD_ALERT);

    return c ? atoi(c->data) : -1;
}

/* Package 1: credentials and one Alert for ./memo; returns the server's
 * Alert code (the sync it agreed to), -1 without one. */
static int package1(tdev_t *d, int code, const char **pnext)
{
    *pnext = apr_psprintf(d->p, "%d-%d", d->sid + 1, rand());
    start(d);
    send_msg(d, alert_xml(d, code, d->last_anchor, *pnext), 1, 1);
    return alert_code(d->ans);
}

/* Statuses (and maps for Adds) for what the server's Sync carried. */
static const char *answer_sync(tdev_t *d, const char **pmap)
{
    const memds_cmd_t *sync = find_cmd(d->ans, MEMDS_CMD_SYNC);
    const char *st = "", *map = "";
    int i, id = 10;

    for (i = 0; sync && sync->cmds && i < sync->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(sync->cmds, i, memds_cmd_t *);
        const memds_item_t *it = APR_ARRAY_IDX(c->items, 0, memds_item_t *);
        const char *name = memds_cmd_name(c->type);
        const char *guid = it->source ? it->source->uri : NULL;
        const char *luid = it->target ? it->target->uri : NULL;
        int code = c->type == MEMDS_CMD_ADD ? 201 : 200;

        if (d->refuse && it->data.len == strlen(d->refuse)
            && memcmp(it->data.data, d->refuse, it->data.len) == 0) {
            code = 500;
            d->refused++;
        }
        else if (it->more_data) {
            code = 213;
        }
        else if (c->type == MEMDS_CMD_ADD) {
            d->got_add++;
            map = apr_psprintf(
                d->p,
                "%s<MapItem><Target><LocURI>%s</LocURI></Target>"
                "<Source><LocURI>dev-%s</LocURI></Source></MapItem>",
                map, guid, guid);
        }
        else if (c->type == MEMDS_CMD_REPLACE) {
            d->got_replace++;
        }
        else {
            d->got_delete++;
        }
        st = apr_psprintf(
            d->p,
            "%s<Status><CmdID>%d</CmdID><MsgRef>%s</MsgRef>"
            "<CmdRef>%s</CmdRef><Cmd>%s</Cmd>%s%s%s%s%s%s<Data>%d</Data>"
            "</Status>",
            st, id++, d->ans->hdr.msg_id, c->cmd_id, name,
            luid ? "<TargetRef>" : "", luid ? luid : "",
            luid ? "</TargetRef>" : "", guid ? "<SourceRef>" : "",
            guid ? guid : "", guid ? "</SourceRef>" : "", code);
    }
    *pmap = *map
                ? apr_psprintf(d->p,
                               "<Map><CmdID>%d</CmdID><Target><LocURI>./memo"
                               "</LocURI></Target><Source><LocURI>memo</LocURI>"
                               "</Source>%s</Map>",
                               id, map)
                : "";
    return st;
}

/* After the device's package 3 (d->ans answers it): the server's changes
 * taken (Alert 222 while they span messages), then statuses and maps.
 * Returns the number of messages of package 4. */
static int finish(tdev_t *d, const char *next)
{
    const char *map;
    int n4 = 1;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    while (!d->ans->final) {
        const char *st = answer_sync(d, &map);
        send_msg(
            d,
            apr_pstrcat(d->p, st, map,
                        "<Alert><CmdID>99</CmdID><Data>222</Data><Item><Target>"
                        "<LocURI>" BASE "</LocURI></Target><Source><LocURI>",
                        d->devid, "</LocURI></Source></Item></Alert>", NULL),
            0, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
        if (++n4 > 50) {
            CU_FAIL_FATAL("package 4 does not end");
        }
    }
    if (find_cmd(d->ans, MEMDS_CMD_SYNC)) {
        const char *st = answer_sync(d, &map);
        send_msg(d, apr_pstrcat(d->p, st, map, NULL), 1, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
        CU_ASSERT(d->ans->final);
    }
    d->last_anchor = next;
    return n4;
}

/* Package 3 with the device's changes (Sync content), then finish. */
static int rest_of_session(tdev_t *d, const char *changes, const char *next)
{
    send_msg(d, sync_xml(d, changes), 1, 0);
    return finish(d, next);
}

/* A whole session; returns the server's Alert code. */
static int session(tdev_t *d, int code, const char *changes)
{
    const char *next;
    int got = package1(d, code, &next);

    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    rest_of_session(d, changes, next);
    return got;
}

static const char *three_adds(tdev_t *d)
{
    return apr_pstrcat(d->p, item_cmd(d, "Add", 3, "a1", "memo one"),
                       item_cmd(d, "Add", 4, "a2", "memo two"),
                       item_cmd(d, "Add", 5, "a3", "memo three"), NULL);
}

/* ------------------------------------------------------------- tests */

static void auth_basic(void)
{
    tdev_t *d = dev_new("dev-basic");
    const char *next;

    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT_PTR_NOT_NULL(d->token);
    CU_ASSERT(d->ans->final);
    /* a wrong password: 401 with a basic challenge, no session */
    d = dev_new("dev-basic");
    d->pass = "wrong";
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), -1);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0),
                    MEMDS_ST_INVALID_CREDENTIALS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hdr_status(d->ans)->chal);
    CU_ASSERT_STRING_EQUAL(hdr_status(d->ans)->chal->type, "syncml:auth-basic");
    CU_ASSERT_PTR_NULL(d->ans->hdr.resp_uri);
    /* no credentials: 407; an unknown scheme: 406 */
    start(d);
    send_msg(d, alert_xml(d, MEMDS_ALERT_SLOW, NULL, "1"), 1, 0);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_MISSING_CREDENTIALS);
    start(d);
    send_msg(d,
             apr_pstrcat(d->p,
                         "<Put><CmdID>1</CmdID><Item><Source><LocURI>x"
                         "</LocURI></Source><Data>y</Data></Item></Put>",
                         NULL),
             1, 0);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_MISSING_CREDENTIALS);
}

static void auth_blocked(void)
{
    tdev_t *d = dev_new("dev-block");
    const char *next;
    int i;

    d->cfg.auth_max_failures = 3;
    d->pass = "wrong";
    for (i = 0; i < 3; ++i) {
        package1(d, MEMDS_ALERT_SLOW, &next);
        CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    }
    /* blocked now: even the right password is refused */
    d->pass = PASS;
    package1(d, MEMDS_ALERT_SLOW, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    /* another device of the account is not blocked */
    d = dev_other(d, "dev-block-2");
    package1(d, MEMDS_ALERT_SLOW, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
}

static void auth_md5(void)
{
    tdev_t *d = dev_new("dev-md5");
    const char *next;
    const memds_cmd_t *hs;

    /* Message 1 of the real client: a digest over an empty nonce. */
    d->md5 = 1;
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    hs = hdr_status(d->ans);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hs->chal);
    CU_ASSERT_STRING_EQUAL(hs->chal->type, "syncml:auth-md5");
    CU_ASSERT_PTR_NOT_NULL_FATAL(hs->chal->next_nonce);
    CU_ASSERT_NOT_EQUAL(strcmp(d->nonce, ""), 0);
    rest_of_session(d, "", next);
    /* The next session uses the nonce it was given. */
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_TWO_WAY, ""), MEMDS_ALERT_TWO_WAY);
    /* An old nonce no longer works: 401 and a fresh md5 challenge. */
    {
        const char *used = d->nonce;
        session(d, MEMDS_ALERT_TWO_WAY, "");
        d->nonce = used;
    }
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    CU_ASSERT_STRING_EQUAL(hdr_status(d->ans)->chal->type, "syncml:auth-md5");
    /* ... with which it gets in */
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    /* a wrong password */
    d->pass = "wrong";
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    CU_ASSERT_PTR_NULL(d->ans->hdr.resp_uri);
    /* an unknown user */
    d->pass = PASS;
    d->user = "nobody";
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
}

static apr_status_t v_md5_none(const memds_verifier_t *v, const char *user,
                               const char **pinner, apr_pool_t *p)
{
    (void)v;
    (void)user;
    (void)pinner;
    (void)p;
    return APR_ENOENT;
}

static void auth_md5_recorded_from_basic(void)
{
    /* A verifier without md5 values (the IMAP login): md5 fails until a
     * basic login records the inner value (record_md5), then works. */
    tdev_t *d = dev_new("dev-rec");
    const char *next;

    d->ver.md5_inner = v_md5_none;
    d->cfg.record_md5 = 1;
    d->md5 = 1;
    package1(d, MEMDS_ALERT_SLOW, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    d->md5 = 0;
    package1(d, MEMDS_ALERT_SLOW, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    d->md5 = 1;
    package1(d, MEMDS_ALERT_SLOW, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
}

static void alert_modes(void)
{
    tdev_t *d = dev_new("dev-alerts");
    const char *next;

    /* First contact: a two-way sync without anchors is answered 508 and
     * turned into a slow sync; one-way and refresh into their refresh. */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_TWO_WAY, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_ONE_WAY_CLIENT, &next),
                    MEMDS_ALERT_REFRESH_CLIENT);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_ONE_WAY_SERVER, &next),
                    MEMDS_ALERT_REFRESH_SERVER);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_REFRESH_REQUIRED);
    /* slow and refresh need no anchors */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_REFRESH_CLIENT, &next),
                    MEMDS_ALERT_REFRESH_CLIENT);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_REFRESH_SERVER, &next),
                    MEMDS_ALERT_REFRESH_SERVER);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    /* after a completed slow sync the anchors agree: each mode as asked */
    session(d, MEMDS_ALERT_SLOW, three_adds(d));
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_TWO_WAY, &next),
                    MEMDS_ALERT_TWO_WAY);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_ONE_WAY_CLIENT, &next),
                    MEMDS_ALERT_ONE_WAY_CLIENT);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_ONE_WAY_SERVER, &next),
                    MEMDS_ALERT_ONE_WAY_SERVER);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    /* the server-alerted forms mean the same */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_TWO_WAY_BY_SERVER, &next),
                    MEMDS_ALERT_TWO_WAY);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_REFRESH_SERVER_BY_SERVER, &next),
                    MEMDS_ALERT_REFRESH_SERVER);
    /* anchors that do not match the stored ones: 508 and a slow sync */
    d->last_anchor = "not-the-anchor";
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_TWO_WAY, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_REFRESH_REQUIRED);
    /* unknown alert codes, display and result alerts: 406 */
    CU_ASSERT_EQUAL(package1(d, 299, &next), -1);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_NOT_SUPPORTED);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_DISPLAY, &next), -1);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_NOT_SUPPORTED);
    /* resume without a suspended session: 509 and a normal sync */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_RESUME, &next), MEMDS_ALERT_SLOW);
}

/* syncstate_get of the memory store, counted (ss_reads) per request. */
static const memds_sessdb_vt *ss_inner;
static int ss_reads;

static apr_status_t counted_syncstate_get(memds_sessdb_t *db,
                                          memds_syncstate_t *st,
                                          apr_int64_t device_id,
                                          const char *store)
{
    ++ss_reads;
    return ss_inner->syncstate_get(db, st, device_id, store);
}

/* The engine reads a datastore's sync_state row once per request, however
 * many of its steps need it (eng_syncstate): one statement a message. */
static void syncstate_once_per_request(void)
{
    tdev_t *d = dev_new("dev-ss");
    memds_sessdb_vt *vt = apr_pmemdup(d->p, memds_sessdb_mem(d->db, d->p)->vt,
                                      sizeof(*vt));
    const char *next;
    int most = 0;

    ss_inner = memds_sessdb_mem(d->db, d->p)->vt;
    vt->syncstate_get = counted_syncstate_get;
    d->vt = vt;
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_SLOW, three_adds(d)),
                    MEMDS_ALERT_SLOW);
    /* a two-way sync, message by message */
    ss_reads = 0;
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_TWO_WAY, &next),
                    MEMDS_ALERT_TWO_WAY);
    most = ss_reads > most ? ss_reads : most;
    ss_reads = 0;
    send_msg(d, sync_xml(d, item_cmd(d, "Replace", 3, "a1", "memo 1c")), 1, 0);
    most = ss_reads > most ? ss_reads : most;
    ss_reads = 0;
    finish(d, next);
    most = ss_reads > most ? ss_reads : most;
    CU_ASSERT_EQUAL(most, 1);
    d->vt = NULL;
}

static void two_way_and_maps(void)
{
    tdev_t *d = dev_new("dev-a"), *b;

    /* device a fills the datastore in a slow sync */
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_SLOW, three_adds(d)),
                    MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(d->got_add, 0);
    /* device b gets the three items as Adds and maps them */
    b = dev_other(d, "dev-b");
    CU_ASSERT_EQUAL(session(b, MEMDS_ALERT_SLOW, ""), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(b->got_add, 3);
    /* a two-way sync with nothing changed sends nothing */
    CU_ASSERT_EQUAL(session(b, MEMDS_ALERT_TWO_WAY, ""), MEMDS_ALERT_TWO_WAY);
    CU_ASSERT_EQUAL(b->got_add + b->got_replace + b->got_delete, 0);
    /* a changes one and deletes one: b gets a Replace and a Delete for
     * the LUIDs it mapped; a itself gets nothing back */
    CU_ASSERT_EQUAL(
        session(d, MEMDS_ALERT_TWO_WAY,
                apr_pstrcat(d->p, item_cmd(d, "Replace", 3, "a1", "memo 1b"),
                            item_cmd(d, "Delete", 4, "a2", NULL), NULL)),
        MEMDS_ALERT_TWO_WAY);
    CU_ASSERT_EQUAL(d->got_add + d->got_replace + d->got_delete, 0);
    CU_ASSERT_EQUAL(session(b, MEMDS_ALERT_TWO_WAY, ""), MEMDS_ALERT_TWO_WAY);
    CU_ASSERT_EQUAL(b->got_replace, 1);
    CU_ASSERT_EQUAL(b->got_delete, 1);
    CU_ASSERT_EQUAL(b->got_add, 0);
    {
        /* the Replace names b's own LUID (from its Map) */
        const memds_cmd_t *c;
        const char *next;
        session(d, MEMDS_ALERT_TWO_WAY,
                item_cmd(d, "Replace", 3, "a3", "memo 3b"));
        package1(b, MEMDS_ALERT_TWO_WAY, &next);
        send_msg(b, sync_xml(b, ""), 1, 0);
        c = find_cmd(b->ans, MEMDS_CMD_SYNC);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        CU_ASSERT_EQUAL_FATAL(c->cmds->nelts, 1);
        c = APR_ARRAY_IDX(c->cmds, 0, memds_cmd_t *);
        CU_ASSERT_EQUAL_FATAL(c->type, MEMDS_CMD_REPLACE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(
            APR_ARRAY_IDX(c->items, 0, memds_item_t *)->target);
        CU_ASSERT_NSTRING_EQUAL(
            APR_ARRAY_IDX(c->items, 0, memds_item_t *)->target->uri, "dev-", 4);
    }
}

static void client_changes_statuses(void)
{
    tdev_t *d = dev_new("dev-st");
    const char *next;

    session(d, MEMDS_ALERT_SLOW, three_adds(d));
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    send_msg(d,
             sync_xml(d,
                      apr_pstrcat(d->p,
                                  item_cmd(d, "Add", 3, "a4", "memo four"),
                                  item_cmd(d, "Replace", 4, "a1", "memo one"),
                                  item_cmd(d, "Replace", 5, "a2", "memo 2 new"),
                                  item_cmd(d, "Delete", 6, "a3", NULL),
                                  item_cmd(d, "Delete", 7, "nope", NULL),
                                  NULL)),
             1, 0);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_ITEM_ADDED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Replace", 0),
                    MEMDS_ST_OK); /* the same */
    CU_ASSERT_EQUAL(status_code(d->ans, "Replace", 1), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Delete", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Delete", 1),
                    MEMDS_ST_ITEM_NOT_DELETED);
    /* a Sync for a datastore not alerted: 404 */
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    send_msg(d,
             apr_pstrcat(d->p,
                         "<Sync><CmdID>2</CmdID><Target><LocURI>other</LocURI>"
                         "</Target><Source><LocURI>./other</LocURI></Source>",
                         item_cmd(d, "Add", 3, "x", "x"), "</Sync>", NULL),
             1, 0);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_NOT_FOUND);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_NOT_FOUND);
}

/* Move (DS 1.2) in a datastore without SupportHierarchicalSync (the items
 * store): 406, the item untouched, the other items of the Sync applied. */
static void move_not_hierarchical(void)
{
    tdev_t *d = dev_new("dev-mv");
    const char *next;

    session(d, MEMDS_ALERT_SLOW, three_adds(d));
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    send_msg(
        d,
        sync_xml(d, apr_pstrcat(d->p,
                                "<Move><CmdID>3</CmdID><Item><Source><LocURI>a1"
                                "</LocURI></Source><TargetParent><LocURI>x"
                                "</LocURI></TargetParent></Item></Move>",
                                item_cmd(d, "Replace", 4, "a2", "memo 2 new"),
                                NULL)),
        1, 0);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Move", 0), MEMDS_ST_NOT_SUPPORTED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Replace", 0), MEMDS_ST_OK);
}

/* Packages 1 and 3 in one message (issue 15 item 4): the Alert and the
 * Sync with the device's changes together. */
static int items_count(tdev_t *d)
{
    memds_sessdb_t *db = memds_sessdb_mem(d->db, d->p);
    memds_ds_t *ds;
    memds_ds_env_t env;
    apr_array_header_t *live;
    apr_int64_t upto;

    memset(&env, 0, sizeof(env));
    env.kind = "items";
    if (db->vt->ds_open(db, &ds, &env, USER, "memo", 0, d->p) != APR_SUCCESS
        || ds->vt->snapshot(ds, &upto) != APR_SUCCESS
        || ds->vt->changes(ds, &live, -1, upto) != APR_SUCCESS) {
        return -1;
    }
    return live->nelts;
}

/* A new session whose first message holds the Alert and the Sync with
 * changes; returns the Next anchor sent. */
static const char *combined(tdev_t *d, int code, const char *last,
                            const char *changes)
{
    const char *next = apr_psprintf(d->p, "comb-%d", rand());

    start(d);
    send_msg(d,
             apr_pstrcat(d->p, alert_xml(d, code, last, next),
                         sync_xml(d, changes), NULL),
             1, 1);
    return next;
}

static const char *add_replace_delete(tdev_t *d, const char *add,
                                      const char *replace, const char *del)
{
    return apr_pstrcat(d->p, item_cmd(d, "Add", 3, add, "new memo"),
                       item_cmd(d, "Replace", 4, replace, "changed memo"),
                       item_cmd(d, "Delete", 5, del, NULL), NULL);
}

static void combined_packages(void)
{
    tdev_t *d = dev_new("dev-comb"), *b;
    const char *next;
    int before;

    session(d, MEMDS_ALERT_SLOW, three_adds(d));
    b = dev_other(d, "dev-comb-b");
    session(b, MEMDS_ALERT_SLOW, "");
    CU_ASSERT_EQUAL(b->got_add, 3);
    /* b changes one item so that d has something to receive */
    session(b, MEMDS_ALERT_TWO_WAY, item_cmd(b, "Add", 3, "b1", "from b"));
    before = items_count(d);
    CU_ASSERT_EQUAL(before, 4);

    /* Anchors match: Alert 200 and the Sync applied as in package 3; the
     * same answer carries package 2 and package 4 (b's new item). */
    next = combined(d, MEMDS_ALERT_TWO_WAY, d->last_anchor,
                    add_replace_delete(d, "a5", "a1", "a2"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(alert_code(d->ans), MEMDS_ALERT_TWO_WAY);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_ITEM_ADDED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Replace", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Delete", 0), MEMDS_ST_OK);
    CU_ASSERT_PTR_NOT_NULL(find_cmd(d->ans, MEMDS_CMD_SYNC));
    CU_ASSERT_EQUAL(items_count(d), before); /* +1 -1 */
    finish(d, next);
    CU_ASSERT_EQUAL(d->got_add, 1); /* b's item, not d's own changes */
    CU_ASSERT_EQUAL(d->got_replace + d->got_delete, 0);
    /* b learns d's changes in its next sync: the session completed */
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 1);
    CU_ASSERT_EQUAL(b->got_replace, 1);
    CU_ASSERT_EQUAL(b->got_delete, 1);

    /* The server requires a slow sync (the device's Last is not the
     * stored anchor): 508 for the Alert, the Sync and every item; nothing
     * applied; the device sends its slow sync in package 3. */
    before = items_count(d);
    next = combined(d, MEMDS_ALERT_TWO_WAY, "stale",
                    add_replace_delete(d, "a6", "a3", "a1"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(alert_code(d->ans), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Replace", 0),
                    MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Delete", 0),
                    MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_PTR_NULL(find_cmd(d->ans, MEMDS_CMD_SYNC));
    CU_ASSERT(d->ans->final);
    CU_ASSERT_EQUAL(items_count(d), before);
    /* package 3: the slow sync, taken as usual */
    rest_of_session(d, item_cmd(d, "Replace", 3, "a3", "memo 3 slow"), next);
    CU_ASSERT_EQUAL(items_count(d), before);

    /* The client asked for a slow sync itself: accepted as sent. */
    next = combined(d, MEMDS_ALERT_SLOW, NULL,
                    item_cmd(d, "Add", 3, "a7", "memo 7"));
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_ITEM_ADDED);
    finish(d, next);
    CU_ASSERT_EQUAL(items_count(d), before + 1);

    /* Package 1 over two messages: the Alert in the first (no Final), the
     * Sync with the Final in the second; package 4 follows the second. */
    session(b, MEMDS_ALERT_TWO_WAY, item_cmd(b, "Add", 3, "b2", "from b 2"));
    next = apr_psprintf(d->p, "comb-%d", rand());
    start(d);
    send_msg(d, alert_xml(d, MEMDS_ALERT_TWO_WAY, d->last_anchor, next), 0, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    CU_ASSERT(!d->ans->final);
    send_msg(d, sync_xml(d, item_cmd(d, "Add", 3, "a8", "memo 8")), 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_ITEM_ADDED);
    CU_ASSERT_PTR_NOT_NULL(find_cmd(d->ans, MEMDS_CMD_SYNC));
    finish(d, next);
    CU_ASSERT_EQUAL(d->got_add, 1); /* b's */
    CU_ASSERT_EQUAL(items_count(d), before + 3);

    /* An Alert that wants no Status (NoResp): the agreed mode tells; a
     * forced slow sync still refuses the Sync with 508. */
    next = apr_psprintf(d->p, "comb-%d", rand());
    start(d);
    send_msg(d,
             apr_pstrcat(d->p,
                         apr_pstrcat(d->p, "<Alert><CmdID>1</CmdID><NoResp/>",
                                     alert_xml(d, MEMDS_ALERT_TWO_WAY, "stale",
                                               next)
                                         + 23,
                                     NULL),
                         sync_xml(d, item_cmd(d, "Add", 3, "a9", "memo 9")),
                         NULL),
             1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), -1);
    CU_ASSERT_EQUAL(alert_code(d->ans), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(status_code(d->ans, "Sync", 0), MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_REFRESH_REQUIRED);
    CU_ASSERT_EQUAL(items_count(d), before + 3);
}

static void one_way_and_refresh(void)
{
    tdev_t *a = dev_new("dev-ow"), *b;
    const char *next;

    session(a, MEMDS_ALERT_SLOW, three_adds(a));
    b = dev_other(a, "dev-ow-b");
    session(b, MEMDS_ALERT_SLOW, "");
    CU_ASSERT_EQUAL(b->got_add, 3);
    /* one-way from server: the device's changes are refused with 403 */
    CU_ASSERT_EQUAL(package1(b, MEMDS_ALERT_ONE_WAY_SERVER, &next),
                    MEMDS_ALERT_ONE_WAY_SERVER);
    send_msg(b, sync_xml(b, item_cmd(b, "Add", 3, "b1", "from b")), 1, 0);
    CU_ASSERT_EQUAL(status_code(b->ans, "Add", 0), MEMDS_ST_FORBIDDEN);
    finish(b, next);
    /* one-way from client: a's change is taken, the server's new item is
     * not sent to a then */
    session(b, MEMDS_ALERT_TWO_WAY, item_cmd(b, "Add", 3, "b2", "from b, 2"));
    CU_ASSERT_EQUAL(session(a, MEMDS_ALERT_ONE_WAY_CLIENT,
                            item_cmd(a, "Add", 3, "a9", "from a")),
                    MEMDS_ALERT_ONE_WAY_CLIENT);
    CU_ASSERT_EQUAL(a->got_add, 0);
    /* ... but in the next two-way sync */
    session(a, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(a->got_add, 1);
    /* refresh from server: every item goes to the device */
    CU_ASSERT_EQUAL(session(b, MEMDS_ALERT_REFRESH_SERVER, ""),
                    MEMDS_ALERT_REFRESH_SERVER);
    CU_ASSERT_EQUAL(b->got_add, 5);
    /* refresh from client: what the device does not send is deleted on
     * the server, which the other device then learns */
    CU_ASSERT_EQUAL(session(a, MEMDS_ALERT_REFRESH_CLIENT,
                            item_cmd(a, "Add", 3, "only", "memo one")),
                    MEMDS_ALERT_REFRESH_CLIENT);
    CU_ASSERT_EQUAL(a->got_add + a->got_delete, 0);
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_delete, 4);
    CU_ASSERT_EQUAL(b->got_add, 0);
}

/* n Adds of memos of about 200 bytes, LUIDs prefix0, prefix1, ... */
static const char *memo_adds(tdev_t *d, int n, const char *prefix)
{
    const char *adds = "";
    int i;

    for (i = 0; i < n; ++i) {
        adds = apr_pstrcat(d->p, adds,
                           item_cmd(d, "Add", 3 + i,
                                    apr_psprintf(d->p, "%s%d", prefix, i),
                                    apr_psprintf(d->p, "memo %d %0200d", i, i)),
                           NULL);
    }
    return adds;
}

static void multi_message_package(void)
{
    tdev_t *a = dev_new("dev-big"), *b;
    const char *next;
    int n4;

    session(a, MEMDS_ALERT_SLOW, memo_adds(a, 40, "l"));
    /* a device with a small MaxMsgSize gets package 4 over several
     * messages, asking for each with Alert 222 */
    b = dev_other(a, "dev-small");
    b->max_msg = 3000;
    package1(b, MEMDS_ALERT_SLOW, &next);
    n4 = rest_of_session(b, "", next);
    CU_ASSERT(n4 > 2);
    CU_ASSERT_EQUAL(b->got_add, 40);
    CU_ASSERT(b->resp.len <= 3000);
    /* the device's own package 3 over two messages: the first without
     * Final gets its statuses and no Final */
    package1(a, MEMDS_ALERT_TWO_WAY, &next);
    send_msg(a, sync_xml(a, item_cmd(a, "Add", 3, "m1", "part one")), 0, 0);
    CU_ASSERT_FALSE(a->ans->final);
    CU_ASSERT_EQUAL(status_code(a->ans, "Add", 0), MEMDS_ST_ITEM_ADDED);
    CU_ASSERT_PTR_NULL(find_cmd(a->ans, MEMDS_CMD_SYNC));
    rest_of_session(a, item_cmd(a, "Add", 3, "m2", "part two"), next);
    CU_ASSERT_EQUAL(status_code(a->ans, "Add", 0), -1);
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 2);
}

/* A message reads about twice as many send queue rows as the last one
 * carried (schema/027), not 500: a download over many messages reads each
 * row a few times at most, not once per message until it goes. */
static void queue_read_by_last_message(void)
{
    tdev_t *a = dev_new("dev-rows"), *b;
    const char *next;
    apr_int64_t before, rows;
    int n4;

    session(a, MEMDS_ALERT_SLOW, memo_adds(a, 200, "r"));
    b = dev_other(a, "dev-rows-small");
    b->max_msg = 3000;
    package1(b, MEMDS_ALERT_SLOW, &next);
    before = memds_memdb_queue_rows_read(b->db);
    n4 = rest_of_session(b, "", next);
    rows = memds_memdb_queue_rows_read(b->db) - before;
    CU_ASSERT_EQUAL(b->got_add, 200);
    CU_ASSERT(n4 > 20);
    /* (500 at a time: every row read again by each message until it goes,
     * about 200 * n4 / 2) */
    CU_ASSERT(rows <= 200 + 40 * (apr_int64_t)n4);
}

static void next_message_alert(void)
{
    tdev_t *d = dev_new("dev-222");
    const char *next, *body;

    /* A message without Final that wants no statuses: nothing to say, so
     * the server asks for the next message with Alert 222. */
    package1(d, MEMDS_ALERT_SLOW, &next);
    body = apr_psprintf(
        d->p,
        "<?xml version=\"1.0\"?><SyncML xmlns='SYNCML:SYNCML1.2'>"
        "<SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>"
        "<SessionID>%d</SessionID><MsgID>2</MsgID>"
        "<Target><LocURI>" BASE "</LocURI></Target>"
        "<Source><LocURI>%s</LocURI></Source><NoResp/></SyncHdr>"
        "<SyncBody>%s</SyncBody></SyncML>",
        d->sid, d->devid, sync_xml(d, ""));
    d->msgid = 2;
    send_raw(d, body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(alert_code(d->ans), MEMDS_ALERT_NEXT_MESSAGE);
    CU_ASSERT_FALSE(d->ans->final);
}

static void retransmission(void)
{
    tdev_t *d = dev_new("dev-re");
    const char *next, *first, *body;
    apr_size_t len;

    session(d, MEMDS_ALERT_SLOW, three_adds(d));
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    send_msg(d, sync_xml(d, item_cmd(d, "Add", 3, "r1", "once")), 1, 0);
    CU_ASSERT_FALSE(d->resp.replayed);
    first = d->resp.body;
    len = d->resp.len;
    body = d->body;
    /* the same bytes again: the stored answer, nothing applied twice */
    send_raw(d, body);
    CU_ASSERT(d->resp.replayed);
    CU_ASSERT_EQUAL_FATAL(d->resp.len, len);
    CU_ASSERT_EQUAL(memcmp(d->resp.body, first, len), 0);
    finish(d, next);
    {
        tdev_t *o = dev_other(d, "dev-re-2");
        session(o, MEMDS_ALERT_SLOW, "");
        CU_ASSERT_EQUAL(o->got_add, 4);
    }
    /* the same MsgID with other bytes: 400 */
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    send_msg(d, sync_xml(d, ""), 1, 0);
    d->msgid--;
    send_msg(d, sync_xml(d, item_cmd(d, "Add", 3, "r2", "other")), 1, 0);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_BAD_REQUEST);
    /* a MsgID out of order: 400 */
    d->msgid += 3;
    send_msg(d, "", 1, 0);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_BAD_REQUEST);
    /* a retransmitted first message: the stored answer too */
    start(d);
    send_msg(d, alert_xml(d, MEMDS_ALERT_SLOW, NULL, "x"), 1, 1);
    first = d->resp.body;
    len = d->resp.len;
    d->token = NULL; /* resent to the URL of message 1 */
    send_raw(d, d->body);
    CU_ASSERT(d->resp.replayed);
    CU_ASSERT_EQUAL_FATAL(d->resp.len, len);
    CU_ASSERT_EQUAL(memcmp(d->resp.body, first, len), 0);
}

static void sessions_and_tokens(void)
{
    tdev_t *d = dev_new("dev-tok"), *o;
    const char *next;
    int n = -1;

    package1(d, MEMDS_ALERT_SLOW, &next);
    /* another device with this device's token: 403 */
    o = dev_other(d, "dev-thief");
    o->token = d->token;
    o->msgid = 1;
    send_msg(o, sync_xml(o, ""), 1, 0);
    CU_ASSERT_EQUAL(hdr_code(o->ans), MEMDS_ST_FORBIDDEN);
    /* an unknown token after message 1: 404 */
    o->token = "0123456789abcdef";
    send_msg(o, sync_xml(o, ""), 1, 0);
    CU_ASSERT_EQUAL(hdr_code(o->ans), MEMDS_ST_NOT_FOUND);
    /* not SyncML: HTTP 400; a wrong VerProto: 513 */
    send_raw(o, "<html/>");
    CU_ASSERT_EQUAL(o->resp.http_status, 400);
    /* expiry removes nothing that has not expired */
    CU_ASSERT_EQUAL(memds_engine_expire_db(&n, memds_sessdb_mem(d->db, d->p)),
                    APR_SUCCESS);
    CU_ASSERT_EQUAL(n, 0);
    d->cfg.session_timeout = 0;
    package1(d, MEMDS_ALERT_SLOW, &next);
    CU_ASSERT_EQUAL(memds_engine_expire_db(&n, memds_sessdb_mem(d->db, d->p)),
                    APR_SUCCESS);
    CU_ASSERT(n >= 1);
}

/* MemDSLimit: a new session over a limit gets SyncML 503 and Retry-After,
 * nothing of it is kept; the limit off, it goes. */
static void throttle_limits(void)
{
    tdev_t *d = dev_new("dev-limit");
    const char *next;

    d->cfg.limit_dev_min = 2;
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_SLOW, three_adds(d)),
                    MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_TWO_WAY, ""), MEMDS_ALERT_TWO_WAY);
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0),
                    MEMDS_ST_SERVICE_UNAVAILABLE);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_SERVICE_UNAVAILABLE);
    CU_ASSERT(d->resp.throttled);
    CU_ASSERT(d->resp.retry_after >= 1 && d->resp.retry_after <= 60);
    CU_ASSERT(d->ans->final);
    CU_ASSERT_PTR_NULL(d->ans->hdr.resp_uri);
    /* the account's sessions at a time: one left in progress */
    d->cfg.limit_dev_min = 0;
    d->cfg.limit_acct_conc = 1;
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_TWO_WAY, &next),
                    MEMDS_ALERT_TWO_WAY);
    {
        tdev_t *o = dev_other(d, "dev-limit-2");
        const char *n2;
        package1(o, MEMDS_ALERT_SLOW, &n2);
        CU_ASSERT_EQUAL(hdr_code(o->ans), MEMDS_ST_SERVICE_UNAVAILABLE);
        CU_ASSERT(o->resp.throttled);
    }
    rest_of_session(d, "", next);
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_TWO_WAY, ""), MEMDS_ALERT_TWO_WAY);
}

/* MemDSAutoBlock: failed logins in a row block the device (403 with the
 * right password) until it is unblocked; a completed session resets. */
static void throttle_autoblock(void)
{
    tdev_t *d = dev_new("dev-ab");
    const char *next;

    d->cfg.autoblock = 2;
    d->cfg.autoblock_secs = 0;
    d->pass = "wrong";
    package1(d, MEMDS_ALERT_SLOW, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    d->pass = PASS;
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_SLOW, ""), MEMDS_ALERT_SLOW);
    d->pass = "wrong";
    package1(d, MEMDS_ALERT_TWO_WAY, &next); /* 1 in a row after the reset */
    CU_ASSERT_PTR_NULL(d->resp.log_msg ? strstr(d->resp.log_msg, "MEMDS00622")
                                       : NULL);
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_PTR_NOT_NULL(strstr(d->resp.log_msg, "MEMDS00622"));
    d->pass = PASS;
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_FORBIDDEN);
    CU_ASSERT(d->resp.blocked);
    CU_ASSERT_EQUAL(d->resp.retry_after, 0); /* until unblocked */
    memds_memdb_device_hold(d->db, USER, d->devid, 0);
    CU_ASSERT_EQUAL(session(d, MEMDS_ALERT_TWO_WAY, ""), MEMDS_ALERT_TWO_WAY);
    /* an administrator's block, for a time */
    memds_memdb_device_hold(d->db, USER, d->devid, 60);
    package1(d, MEMDS_ALERT_TWO_WAY, &next);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_FORBIDDEN);
    CU_ASSERT(d->resp.retry_after > 0 && d->resp.retry_after <= 61);
}

/* MemDSQuarantine: an item the device refuses twice is held (the rest
 * syncs on, the change position moves), released it goes again; an item
 * whose object cannot be built is held at once. */
static void throttle_quarantine(void)
{
    tdev_t *a = dev_new("dev-qa"), *b;
    const char *state = NULL;
    int count = 0;

    a->cfg.quarantine = 2;
    session(a, MEMDS_ALERT_SLOW, three_adds(a)); /* items 1 2 3 */
    b = dev_other(a, "dev-qb");
    session(b, MEMDS_ALERT_SLOW, "");
    CU_ASSERT_EQUAL(b->got_add, 3);
    session(a, MEMDS_ALERT_TWO_WAY,
            apr_pstrcat(a->p, item_cmd(a, "Add", 3, "a4", "memo bad"),
                        item_cmd(a, "Add", 4, "a5", "memo five"), NULL));
    b->refuse = "memo bad"; /* item 4 */
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 1);
    CU_ASSERT_EQUAL(b->refused, 1);
    memds_memdb_quarantine_state(b->db, 2, "memo", "4", &state, &count);
    CU_ASSERT_STRING_EQUAL(state ? state : "", "counting");
    CU_ASSERT_EQUAL(count, 1);
    /* sent again (the position stays), refused again: held */
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->refused, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(b->resp.log_msg ? b->resp.log_msg : "",
                                  "MEMDS00623"));
    memds_memdb_quarantine_state(b->db, 2, "memo", "4", &state, &count);
    CU_ASSERT_STRING_EQUAL(state ? state : "", "held");
    /* held: left out, the position moves; the rest goes on */
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add + b->got_replace, 0);
    CU_ASSERT_EQUAL(b->refused, 2);
    session(a, MEMDS_ALERT_TWO_WAY, item_cmd(a, "Add", 3, "a6", "memo six"));
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 1);
    CU_ASSERT_EQUAL(b->refused, 2);
    /* released: sent again, taken, gone from the table */
    b->refuse = NULL;
    CU_ASSERT_EQUAL(memds_memdb_quarantine_release(b->db, 2), 1);
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 1);
    memds_memdb_quarantine_state(b->db, 2, "memo", "4", &state, &count);
    CU_ASSERT_PTR_NULL(state);
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 0);
    /* an object that cannot be built: held at once, the session goes on */
    memds_memdb_break(a->db, "memo seven");
    session(a, MEMDS_ALERT_TWO_WAY,
            apr_pstrcat(a->p, item_cmd(a, "Add", 3, "a7", "memo seven"),
                        item_cmd(a, "Add", 4, "a8", "memo eight"), NULL));
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 1);
    memds_memdb_quarantine_state(b->db, 2, "memo", "7", &state, &count);
    CU_ASSERT_STRING_EQUAL(state ? state : "", "held");
    session(b, MEMDS_ALERT_TWO_WAY, "");
    CU_ASSERT_EQUAL(b->got_add, 0);
}

static void devinf_exchange(void)
{
    tdev_t *d = dev_new("dev-devinf");
    const memds_cmd_t *res;

    start(d);
    send_msg(
        d,
        "<Put><CmdID>1</CmdID><Meta><Type xmlns='syncml:metinf'>"
        "application/vnd.syncml-devinf+xml</Type></Meta><Item><Source><LocURI>"
        "./devinf12</LocURI></Source><Data><DevInf xmlns='syncml:devinf'>"
        "<VerDTD>1.2</VerDTD><Man>unit</Man><Mod>unit</Mod><OEM>unit</OEM>"
        "<FwV>1</FwV><SwV>1</SwV><HwV>1</HwV><DevID>dev-devinf</DevID>"
        "<DevTyp>workstation</DevTyp><UTC/><SupportLargeObjs/>"
        "<SupportNumberOfChanges/><DataStore><SourceRef>./memo</SourceRef>"
        "<MaxGUIDSize>64</MaxGUIDSize><Rx-Pref><CTType>text/plain</CTType>"
        "<VerCT>1.0</VerCT></Rx-Pref><Tx-Pref><CTType>text/plain</CTType>"
        "<VerCT>1.0</VerCT></Tx-Pref><SyncCap><SyncType>1</SyncType>"
        "<SyncType>2</SyncType></SyncCap></DataStore></DevInf></Data></Item></"
        "Put>"
        "<Get><CmdID>2</CmdID><Meta><Type xmlns='syncml:metinf'>"
        "application/vnd.syncml-devinf+xml</Type></Meta><Item><Target><LocURI>"
        "./devinf12</LocURI></Target></Item></Get>",
        1, 1);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Put", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Get", 0), MEMDS_ST_OK);
    res = find_cmd(d->ans, MEMDS_CMD_RESULTS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(res);
    CU_ASSERT_EQUAL(APR_ARRAY_IDX(res->items, 0, memds_item_t *)->data_kind,
                    MEMDS_DATA_DEVINF);
    CU_ASSERT(d->ans->final);
}

/* ------------------------------- SyncML 1.1 and 1.0 (issue 15 item 6) */

/* The next message in SyncML version ver ("1.0", "1.1"), XML or (re-encoded
 * by the codec) WBXML; no MaxObjSize, which MetInf 1.0 lacks. */
static memds_msg_t *send_ver(tdev_t *d, const char *ver, memds_enc_e enc,
                             const char *cmds, int final, int cred)
{
    const char *xml = apr_psprintf(
        d->p,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
        "<SyncML xmlns='SYNCML:SYNCML%s'><SyncHdr><VerDTD>%s</VerDTD>"
        "<VerProto>SyncML/%s</VerProto><SessionID>%d</SessionID>"
        "<MsgID>%d</MsgID><Target><LocURI>" BASE "</LocURI></Target>"
        "<Source><LocURI>%s</LocURI><LocName>%s</LocName></Source>%s"
        "<Meta><MaxMsgSize xmlns='syncml:metinf'>%d</MaxMsgSize></Meta>"
        "</SyncHdr><SyncBody>%s%s</SyncBody></SyncML>",
        ver, ver, ver, d->sid, ++d->msgid, d->devid, d->user,
        cred ? cred_xml(d) : "", d->max_msg, cmds, final ? "<Final/>" : "");
    memds_msg_t *m;
    memds_codec_err_t err;
    memds_buf_t b;

    if (enc == MEMDS_ENC_XML) {
        return send_raw(d, xml);
    }
    CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, xml, strlen(xml), MEMDS_ENC_XML,
                                           &err, d->p),
                          APR_SUCCESS);
    memds_buf_init(&b, 4096, d->p);
    CU_ASSERT_EQUAL_FATAL(memds_msg_encode(&b, m, MEMDS_ENC_WBXML, &err, d->p),
                          APR_SUCCESS);
    return send_bytes(d, b.data, b.len, MEMDS_ENC_WBXML);
}

/* Does the answer (its bytes) contain s? */
static int answer_has(const tdev_t *d, const char *s)
{
    apr_size_t n = strlen(s), i;

    for (i = 0; i + n <= d->resp.len; ++i) {
        if (memcmp(d->resp.body + i, s, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *devinf_put_xml(tdev_t *d, const char *uri,
                                  const char *verdtd, const char *extra)
{
    return apr_psprintf(
        d->p,
        "<Put><CmdID>1</CmdID><Meta><Type xmlns='syncml:metinf'>"
        "application/vnd.syncml-devinf+xml</Type></Meta><Item><Source>"
        "<LocURI>%s</LocURI></Source><Data><DevInf xmlns='syncml:devinf'>"
        "<VerDTD>%s</VerDTD><Man>unit</Man><DevID>%s</DevID><DevTyp>phone"
        "</DevTyp>%s<DataStore><SourceRef>./memo</SourceRef><Rx-Pref><CTType>"
        "text/plain</CTType><VerCT>1.0</VerCT></Rx-Pref><Tx-Pref><CTType>"
        "text/plain</CTType><VerCT>1.0</VerCT></Tx-Pref><SyncCap><SyncType>1"
        "</SyncType><SyncType>2</SyncType></SyncCap></DataStore></DevInf>"
        "</Data></Item></Put>",
        uri, verdtd, d->devid, extra);
}

static const char *slow_alert_xml(tdev_t *d, const char *next)
{
    return apr_psprintf(
        d->p,
        "<Alert><CmdID>3</CmdID><Data>201</Data><Item><Target><LocURI>"
        "memo</LocURI></Target><Source><LocURI>./memo</LocURI></Source>"
        "<Meta><Anchor xmlns='syncml:metinf'><Next>%s</Next></Anchor>"
        "</Meta></Item></Alert>",
        next);
}

static void one_version(const char *ver, memds_enc_e enc)
{
    tdev_t *d = dev_new(apr_psprintf(unit_pool, "dev-v%s-%d", ver, enc));
    memds_ver_e v = strcmp(ver, "1.0") == 0 ? MEMDS_V10 : MEMDS_V11;
    const char *uri = v == MEMDS_V10 ? "./devinf10" : "./devinf11", *map;
    const memds_cmd_t *res, *al;
    const memds_item_t *it;
    const memds_devinf_t *di;

    start(d);
    send_ver(d, ver, enc,
             apr_pstrcat(d->p, devinf_put_xml(d, uri, ver, ""),
                         "<Get><CmdID>2</CmdID><Meta><Type xmlns='syncml:"
                         "metinf'>application/vnd.syncml-devinf+xml</Type>"
                         "</Meta><Item><Target><LocURI>",
                         uri, "</LocURI></Target></Item></Get>",
                         slow_alert_xml(d, "v-next-1"), NULL),
             1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    /* answered in the device's version */
    CU_ASSERT_EQUAL(d->ans->version, v);
    CU_ASSERT_STRING_EQUAL(d->ans->hdr.verdtd, ver);
    CU_ASSERT_STRING_EQUAL(d->ans->hdr.verproto,
                           apr_pstrcat(d->p, "SyncML/", ver, NULL));
    if (enc == MEMDS_ENC_XML) {
        CU_ASSERT(answer_has(d, apr_pstrcat(d->p, "SYNCML:SYNCML", ver, NULL)));
        CU_ASSERT(!answer_has(d, "SYNCML1.2"));
        /* MetInf 1.0 has no MaxObjSize */
        CU_ASSERT_EQUAL(answer_has(d, "MaxObjSize"), v != MEMDS_V10);
    }
    else {
        /* public id 0x0FD1 (1.0) / 0x0FD3 (1.1) as mb_u_int32 */
        CU_ASSERT_EQUAL((unsigned char)d->resp.body[1], 0x9F);
        CU_ASSERT_EQUAL((unsigned char)d->resp.body[2],
                        v == MEMDS_V10 ? 0x51 : 0x53);
    }
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Put", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Get", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    al = find_cmd(d->ans, MEMDS_CMD_ALERT);
    CU_ASSERT_PTR_NOT_NULL_FATAL(al);
    it = APR_ARRAY_IDX(al->items, 0, memds_item_t *);
    CU_ASSERT_EQUAL(it->meta->max_obj_size,
                    v == MEMDS_V10 ? MEMDS_NOVAL : 4000000);
    /* DevInf in its version: ./devinf1x, VerDTD 1.x, nothing the DTD lacks */
    res = find_cmd(d->ans, MEMDS_CMD_RESULTS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(res);
    it = APR_ARRAY_IDX(res->items, 0, memds_item_t *);
    CU_ASSERT_STRING_EQUAL(it->source->uri, uri);
    CU_ASSERT_EQUAL_FATAL(it->data_kind, MEMDS_DATA_DEVINF);
    di = it->devinf;
    CU_ASSERT_STRING_EQUAL(di->verdtd, ver);
    CU_ASSERT_EQUAL(di->utc, v != MEMDS_V10);
    CU_ASSERT_EQUAL(di->large_objs, v != MEMDS_V10);
    CU_ASSERT_EQUAL(di->number_of_changes, v != MEMDS_V10);
    CU_ASSERT(di->datastores && di->datastores->nelts == 1);
    CU_ASSERT(d->ans->final);
    /* packages 3 to 5 in the same version */
    send_ver(d, ver, enc,
             sync_xml(d, apr_pstrcat(d->p, item_cmd(d, "Add", 3, "v1", "one"),
                                     item_cmd(d, "Add", 4, "v2", "two"), NULL)),
             1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_STRING_EQUAL(d->ans->hdr.verdtd, ver);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_ITEM_ADDED);
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 1), MEMDS_ST_ITEM_ADDED);
    CU_ASSERT(d->ans->final);
    send_ver(d, ver, enc, answer_sync(d, &map), 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(items_count(d), 2);
}

static void syncml_11_and_10(void)
{
    tdev_t *d = dev_new("dev-v2");
    char big[6001];

    one_version("1.1", MEMDS_ENC_XML);
    one_version("1.1", MEMDS_ENC_WBXML);
    one_version("1.0", MEMDS_ENC_XML);
    one_version("1.0", MEMDS_ENC_WBXML);
    /* unknown versions: 513 listing the three; VerDTD and VerProto must
     * agree (505) */
    start(d);
    send_raw(d, "<SyncML><SyncHdr><VerDTD>2.0</VerDTD><VerProto>SyncML/2.0"
                "</VerProto><SessionID>1</SessionID><MsgID>1</MsgID><Target>"
                "<LocURI>" BASE "</LocURI></Target><Source><LocURI>x</LocURI>"
                "</Source></SyncHdr><SyncBody><Final/></SyncBody></SyncML>");
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_PROTOCOL_VERSION);
    CU_ASSERT(answer_has(d, "SyncML/1.0, SyncML/1.1, SyncML/1.2"));
    start(d);
    send_raw(d, "<SyncML xmlns='SYNCML:SYNCML1.0'><SyncHdr><VerDTD>1.1"
                "</VerDTD><VerProto>SyncML/1.0</VerProto><SessionID>1"
                "</SessionID><MsgID>1</MsgID><Target><LocURI>" BASE
                "</LocURI></Target><Source><LocURI>x</LocURI></Source>"
                "</SyncHdr><SyncBody><Final/></SyncBody></SyncML>");
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_DTD_VERSION);
    /* SyncML 1.0 has no MoreData: an item bigger than the device's
     * MaxMsgSize is not cut into chunks, even for a device whose (1.1)
     * DevInf claims large objects. */
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    session(d, MEMDS_ALERT_SLOW, item_cmd(d, "Add", 3, "big", big));
    d = dev_other(d, "dev-v2-b");
    d->max_msg = 4000;
    start(d);
    send_ver(d, "1.0", MEMDS_ENC_XML,
             apr_pstrcat(d->p,
                         devinf_put_xml(d, "./devinf10", "1.1",
                                        "<SupportLargeObjs/>"),
                         slow_alert_xml(d, "n"), NULL),
             1, 1);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    send_ver(d, "1.0", MEMDS_ENC_XML, sync_xml(d, ""), 1, 0);
    CU_ASSERT_EQUAL(d->resp.http_status, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT(!answer_has(d, "MoreData"));
    CU_ASSERT(!answer_has(d, "xxxxxxxxxxxxxxxx"));
}

/* ------------------------------------------- DS 1.2 filters */

/* Package 1 with an Alert whose Target carries filter_xml (the children of
 * <Filter> after its Meta); returns the Alert's status. */
static int filtered_alert(tdev_t *d, const char *filter_xml)
{
    start(d);
    send_msg(d,
             apr_psprintf(d->p,
                          "<Alert><CmdID>1</CmdID><Data>201</Data><Item>"
                          "<Target><LocURI>memo</LocURI><Filter><Meta><Type "
                          "xmlns='syncml:metinf'>text/plain</Type></Meta>%s"
                          "</Filter></Target><Source><LocURI>./memo</LocURI>"
                          "</Source><Meta><Anchor xmlns='syncml:metinf'>"
                          "<Next>1</Next></Anchor></Meta></Item></Alert>",
                          filter_xml),
             1, 1);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    /* a refused Alert opens no sync */
    CU_ASSERT_EQUAL(alert_code(d->ans), -1);
    return status_code(d->ans, "Alert", 0);
}

#define F_REC(type, expr) \
    "<Record><Item><Meta><Type xmlns='syncml:metinf'>" type "</Type></Meta>" \
    "<Data>" expr "</Data></Item></Record>"
#define F_FIELD(prop) \
    "<Field><Item><Meta><Type xmlns='syncml:metinf'>application/vnd.syncml-" \
    "devinf+xml</Type></Meta><Data><Property xmlns='syncml:devinf'>" prop \
    "</Property></Data></Item></Field>"

/* A Filter is never answered 200 while the server applies none: 422 for a
 * bad grammar or FilterType, 415 for another grammar, 406 for an unknown
 * field and for every valid filter; the server's DevInf advertises no
 * filtering; an Alert without a filter still syncs. */
static void filter_refusals(void)
{
    tdev_t *d = dev_new("dev-filters");
    const memds_cmd_t *res;
    const memds_item_t *it;
    const char *next;
    int i;

    /* valid filters on a datastore that cannot filter (items): 406 */
    CU_ASSERT_EQUAL(
        filtered_alert(
            d,
            F_REC(
                "syncml:filtertype-cgi",
                "&amp;LUID;&amp;EQ;4711") "<FilterType>INCLUSIVE</FilterType>"),
        MEMDS_ST_NOT_SUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(d->resp.log_msg);
    CU_ASSERT(d->resp.log_msg && strstr(d->resp.log_msg, "00519")
              && strstr(d->resp.log_msg, "cannot be filtered"));
    CU_ASSERT_EQUAL(filtered_alert(d,
                                   F_REC("syncml:filtertype-cgi",
                                         "received&amp;GE;20240101T000000Z"
                                         "&amp;AND;received&amp;LT;20250101")),
                    MEMDS_ST_NOT_SUPPORTED);
    CU_ASSERT_EQUAL(filtered_alert(d,
                                   F_FIELD("<PropName>emailitem</PropName>"
                                           "<MaxSize>20480</MaxSize><PropParam>"
                                           "<ParamName>texttype</ParamName>"
                                           "</PropParam>")),
                    MEMDS_ST_NOT_SUPPORTED);
    /* a field the server does not know: 406 */
    CU_ASSERT_EQUAL(filtered_alert(d, F_FIELD("<PropName>subject</PropName>")),
                    MEMDS_ST_NOT_SUPPORTED);
    CU_ASSERT(d->resp.log_msg && strstr(d->resp.log_msg, "'subject'"));
    /* bad grammar, bad FilterType: 422 */
    CU_ASSERT_EQUAL(filtered_alert(d, F_REC("syncml:filtertype-cgi",
                                            "a&amp;OR;b")),
                    MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT(d->resp.log_msg && strstr(d->resp.log_msg, "with 422"));
    CU_ASSERT_EQUAL(filtered_alert(d, F_REC("syncml:filtertype-cgi",
                                            "&amp;LUID;&amp;GT;100")),
                    MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT_EQUAL(
        filtered_alert(
            d,
            F_REC("syncml:filtertype-cgi",
                  "&amp;LUID;&amp;EQ;1") "<FilterType>SOMETIMES</FilterType>"),
        MEMDS_ST_BAD_CGI_SCRIPT);
    CU_ASSERT_EQUAL(filtered_alert(d, ""), MEMDS_ST_BAD_CGI_SCRIPT);
    /* another grammar: 415 */
    CU_ASSERT_EQUAL(filtered_alert(d, F_REC("syncml:filtertype-xpath", "/x")),
                    MEMDS_ST_UNSUPPORTED_MEDIA);
    /* without a filter the same Alert syncs (slow sync: first contact) */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(status_code(d->ans, "Alert", 0), MEMDS_ST_OK);
    /* the server's DevInf promises no filtering (a DataStore per Alert) */
    start(d);
    send_msg(d,
             apr_pstrcat(d->p,
                         "<Get><CmdID>2</CmdID><Meta><Type xmlns="
                         "'syncml:metinf'>application/vnd.syncml-devinf+xml"
                         "</Type></Meta><Item><Target><LocURI>./devinf12"
                         "</LocURI></Target></Item></Get>",
                         alert_xml(d, MEMDS_ALERT_SLOW, NULL, "2"), NULL),
             1, 1);
    res = find_cmd(d->ans, MEMDS_CMD_RESULTS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(res);
    it = APR_ARRAY_IDX(res->items, 0, memds_item_t *);
    CU_ASSERT_EQUAL_FATAL(it->data_kind, MEMDS_DATA_DEVINF);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it->devinf->datastores);
    for (i = 0; i < it->devinf->datastores->nelts; ++i) {
        const memds_datastore_t *ds = APR_ARRAY_IDX(it->devinf->datastores, i,
                                                    memds_datastore_t *);
        CU_ASSERT_PTR_NULL(ds->filter_rx);
        CU_ASSERT_PTR_NULL(ds->filter_caps);
    }
}

/* ------------------------------------------- the recorded corpus */

#ifndef MEMDS_SRCDIR
#define MEMDS_SRCDIR "."
#endif
#define CORPUS MEMDS_SRCDIR "/tests/corpus/"

/* What an answer says about the device's commands, comparable between two
 * runs: every Status (command, CmdRef, code), the Alerts' codes, Final. */
static const char *outcome(const memds_msg_t *m, apr_pool_t *p)
{
    const char *s = "";
    int i;

    for (i = 0; m && i < m->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(m->cmds, i, memds_cmd_t *);
        if (c->type == MEMDS_CMD_STATUS) {
            s = apr_psprintf(p, "%s %s/%s=%s", s, c->cmd, c->cmd_ref, c->data);
        }
        else if (c->type == MEMDS_CMD_ALERT) {
            s = apr_psprintf(p, "%s Alert=%s", s, c->data);
        }
    }
    return apr_pstrcat(p, s, m && m->final ? " Final" : "", NULL);
}

/* Replay the device's messages of one recorded session (dir/name-NNN-req)
 * against the engine; each answer must say what the recorded one said.
 * Message number resend goes twice (a retransmission): the second answer
 * must be the stored bytes of the first. Returns the number of messages. */
static int replay(tdev_t *d, const char *dir, const char *name, int resend)
{
    int i;

    for (i = 1;; ++i) {
        const char *base = apr_psprintf(d->p, CORPUS "%s/%s-%03d-", dir, name,
                                        i);
        memds_enc_e enc = MEMDS_ENC_XML;
        apr_size_t len, rlen;
        const char *req = unit_read_file(apr_pstrcat(d->p, base, "req.xml",
                                                     NULL),
                                         &len);
        const char *rec, *ours, *theirs;
        memds_msg_t *rm;
        memds_codec_err_t err;

        if (req == NULL) {
            enc = MEMDS_ENC_WBXML;
            req = unit_read_file(apr_pstrcat(d->p, base, "req.wbxml", NULL),
                                 &len);
        }
        if (req == NULL) {
            return i - 1;
        }
        rec = unit_read_file(apr_pstrcat(d->p, base,
                                         enc == MEMDS_ENC_XML ? "resp.xml"
                                                              : "resp.wbxml",
                                         NULL),
                             &rlen);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
        CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&rm, rec, rlen, enc, &err, d->p),
                              APR_SUCCESS);
        send_bytes(d, req, len, enc);
        CU_ASSERT_EQUAL(d->resp.http_status, 200);
        CU_ASSERT_FALSE(d->resp.replayed);
        if (i == resend) {
            const char *first = d->resp.body;
            apr_size_t flen = d->resp.len;
            send_bytes(d, req, len, enc);
            CU_ASSERT(d->resp.replayed);
            CU_ASSERT_EQUAL_FATAL(d->resp.len, flen);
            CU_ASSERT_EQUAL(memcmp(d->resp.body, first, flen), 0);
        }
        ours = outcome(d->ans, d->p);
        theirs = outcome(rm, d->p);
        CU_ASSERT_STRING_EQUAL(ours, theirs);
        if (strcmp(ours, theirs) != 0) {
            printf("# %s: engine:%s\n#   recorded:%s\n", base, ours, theirs);
        }
        if (d->ans && d->ans->final && !d->ans->hdr.resp_uri) {
            d->token = NULL; /* the session is over */
        }
    }
}

/* The NextNonce the recorded gateway gave in an answer, for the next
 * recorded session's md5 digest. */
static void take_recorded_nonce(tdev_t *d, const char *file, memds_enc_e enc,
                                const char *account, const char *devid)
{
    apr_size_t len;
    const char *buf = unit_read_file(apr_pstrcat(d->p, CORPUS, file, NULL),
                                     &len);
    memds_msg_t *m;
    memds_codec_err_t err;
    memds_sessdb_t *db = memds_sessdb_mem(d->db, d->p);
    const memds_cmd_t *hs;

    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_EQUAL_FATAL(memds_msg_decode(&m, buf, len, enc, &err, d->p),
                          APR_SUCCESS);
    hs = hdr_status(m);
    CU_ASSERT_FATAL(hs && hs->chal && hs->chal->next_nonce);
    db->vt->begin(db);
    db->vt->auth_set_nonce(db, account, devid, hs->chal->next_nonce);
    db->vt->commit(db);
}

static void corpus_items_sessions(void)
{
    static const char *const kinds[] = { "xml-basic", "xml-md5", "wbxml-basic",
                                         "wbxml-md5" };
    int k;

    for (k = 0; k < 4; ++k) {
        /* slow sync of three memos, then a two-way sync with changes both
         * ways (the recorded gateway had a server-side Add more: it only
         * changes what package 4 carries) */
        tdev_t *d = dev_new("corpus");
        int xml = strncmp(kinds[k], "xml", 3) == 0;

        CU_ASSERT_EQUAL(replay(d, "items",
                               apr_pstrcat(d->p, kinds[k], "-slow", NULL), 0),
                        3);
        if (strstr(kinds[k], "md5")) {
            take_recorded_nonce(d,
                                apr_pstrcat(d->p, "items/", kinds[k],
                                            "-slow-001-resp.",
                                            xml ? "xml" : "wbxml", NULL),
                                xml ? MEMDS_ENC_XML : MEMDS_ENC_WBXML, "alice",
                                apr_pstrcat(d->p, "corpus-", kinds[k], NULL));
        }
        CU_ASSERT_EQUAL(replay(d, "items",
                               apr_pstrcat(d->p, kinds[k], "-twoway", NULL), 2),
                        3);
    }
}

/* What the gateway kept of device devid's earlier syncs of store before a
 * recorded session: the client's Last anchor of its last sync, one item and
 * the map of the device's LUID to it, as a completed two-way sync of
 * another copy of the device leaves them. */
static void seed_synced_device(tdev_t *d, const char *account,
                               const char *devid, const char *store,
                               const char *client_anchor, const char *luid,
                               const char *data)
{
    memds_sessdb_t *db = memds_sessdb_mem(d->db, d->p);
    memds_ds_env_t env = { 0 };
    memds_device_t dev;
    memds_syncstate_t state = { 0 };
    memds_ds_t *ds;
    const char *guid;

    env.kind = "items";
    CU_ASSERT_EQUAL_FATAL(db->vt->begin(db), APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(db->vt->device_lock(db, &dev, account, devid),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(db->vt->ds_open(db, &ds, &env, account, store,
                                          dev.device_id, d->p),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(ds->vt->add(ds, &guid, "text/plain", data,
                                      strlen(data)),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(db->vt->map_put_many(db, dev.device_id, store, &guid,
                                               &luid, 1),
                          APR_SUCCESS);
    state.client_uri = "./memo";
    state.last_client_anchor = client_anchor;
    state.last_server_anchor = "20240101T000000Z-000000";
    state.last_seq = -1;
    CU_ASSERT_EQUAL_FATAL(db->vt->syncstate_put(db, dev.device_id, store,
                                                &state),
                          APR_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(db->vt->commit(db), APR_SUCCESS);
}

static void corpus_other_sessions(void)
{
    static const char *const pkg1[] = { "xml-basic", "xml-md5", "wbxml-basic",
                                        "wbxml-md5" };
    tdev_t *d;
    int k;

    /* an unknown user's package 1 and retries: 401 with the challenge */
    for (k = 0; k < 4; ++k) {
        d = dev_new("corpus");
        CU_ASSERT(replay(d, "pkg1", pkg1[k], 0) >= 2);
    }
    /* a large object up in chunks to a location with an 8K MaxMsgSize */
    d = dev_new("corpus");
    d->cfg.max_msg_size = 8192;
    CU_ASSERT_EQUAL(replay(d, "items", "xml-basic-large-up", 3), 5);
    d = dev_new("corpus");
    d->cfg.max_msg_size = 8192;
    CU_ASSERT_EQUAL(replay(d, "items", "wbxml-basic-large-up", 0), 4);
    /* a stale copy of a device whose original synced on: its Last anchor
     * is not the one the gateway kept, so 508 and a slow sync (201), where
     * its old memo loses to the server's newer one (419) */
    d = dev_new("corpus");
    seed_synced_device(d, "alice", "corpus-anchor", "notes-anchor",
                       "20240101T000000Z", "1",
                       "Memo changed after the copy\n");
    CU_ASSERT_EQUAL(replay(d, "items", "xml-basic-anchor-mismatch", 0), 3);
}

/* ------------------------------------- a session belongs to one account */

/* alice's items on the server (from another of her devices), then her
 * device's package 1 for a slow sync, which package 4 would answer with
 * all of them. */
static tdev_t *alice_in_session(const char *devid, int md5)
{
    tdev_t *d = dev_new(devid), *seed;

    d->user = "alice";
    d->pass = "alice-secret";
    d->md5 = md5;
    seed = dev_other(d, apr_pstrcat(d->p, devid, "-seed", NULL));
    session(seed, MEMDS_ALERT_SLOW, three_adds(seed));
    return d;
}

/* The answer refuses with 401 and carries nothing of any mailbox. */
static void assert_refused_bare(const tdev_t *d)
{
    int i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_INVALID_CREDENTIALS);
    CU_ASSERT_PTR_NULL(d->ans->hdr.resp_uri);
    CU_ASSERT(d->ans->final);
    CU_ASSERT_PTR_NULL(hdr_status(d->ans)->chal); /* no retry in it */
    for (i = 0; i < d->ans->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(d->ans->cmds, i, memds_cmd_t *);
        CU_ASSERT_EQUAL(c->type, MEMDS_CMD_STATUS);
        CU_ASSERT(c->data && atoi(c->data) == MEMDS_ST_INVALID_CREDENTIALS);
    }
    CU_ASSERT_PTR_NULL(strstr(d->resp.body, "memo one"));
    CU_ASSERT_PTR_NULL(strstr(d->resp.body, "bob's memo"));
}

/* After the refusal: the same bytes again get the stored refusal; any
 * other message with the token is refused (the session has expired) and
 * brings nothing. */
static void assert_session_ended(tdev_t *d)
{
    const char *refusal = apr_pstrmemdup(d->p, d->resp.body, d->resp.len);
    apr_size_t len = d->resp.len;

    send_raw(d, d->body);
    CU_ASSERT(d->resp.replayed);
    CU_ASSERT_EQUAL_FATAL(d->resp.len, len);
    CU_ASSERT_EQUAL(memcmp(d->resp.body, refusal, len), 0);
    d->user = "alice";
    d->pass = "alice-secret";
    d->http_user = NULL;
    send_msg(d, sync_xml(d, ""), 1, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_BAD_REQUEST);
    CU_ASSERT_PTR_NULL(find_cmd(d->ans, MEMDS_CMD_SYNC));
    CU_ASSERT_PTR_NULL(d->ans->hdr.resp_uri);
}

/* bob's items, so that his mailbox has something to leak too. */
static void bob_has_items(tdev_t *alice)
{
    tdev_t *b = dev_other(alice, "dev-bob");

    b->user = "bob";
    b->pass = "bob-secret";
    b->md5 = 0;
    session(b, MEMDS_ALERT_SLOW, item_cmd(b, "Add", 3, "b1", "bob's memo"));
}

/* Message 2 of the session names bob (his credentials, or httpd's user):
 * refused with nothing, the session ended. */
static void message2_as_bob(tdev_t *d, int cred)
{
    if (cred) {
        d->user = "bob"; /* valid credentials of another account */
        d->pass = "bob-secret";
    }
    else {
        d->http_user = "bob";
    }
    send_msg(d, sync_xml(d, ""), 1, cred);
    assert_refused_bare(d);
    assert_session_ended(d);
}

/* alice's slow sync opened with her credentials, bob's items on the
 * server; then message 2 names bob. */
static void account_other(const char *devid, int md5, int cred)
{
    tdev_t *d = alice_in_session(devid, md5);
    const char *next;

    bob_has_items(d);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    message2_as_bob(d, cred);
}

static void account_other_basic(void)
{
    account_other("dev-acct-basic", 0, 1);
}

static void account_other_md5(void)
{
    account_other("dev-acct-md5", 1, 1);
}

static void account_other_http_user(void)
{
    tdev_t *d = alice_in_session("dev-acct-http", 0);

    /* opened by httpd's user alone (no Cred), then another HTTP user */
    bob_has_items(d);
    d->http_user = "alice";
    start(d);
    send_msg(d, alert_xml(d, MEMDS_ALERT_SLOW, NULL, "h1"), 1, 0);
    CU_ASSERT_EQUAL(alert_code(d->ans), MEMDS_ALERT_SLOW);
    CU_ASSERT_PTR_NOT_NULL(d->token);
    message2_as_bob(d, 0);
    /* opened by basic credentials, then an HTTP user of another account */
    account_other("dev-acct-http-2", 0, 0);
}

static void account_same_again(void)
{
    tdev_t *d = alice_in_session("dev-acct-same", 0);
    const char *next;

    /* alice's own credentials in message 2 (and her HTTP user): fine */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    send_msg(d, sync_xml(d, ""), 1, 1);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_OK);
    CU_ASSERT_PTR_NOT_NULL(find_cmd(d->ans, MEMDS_CMD_SYNC));
    finish(d, next);
    CU_ASSERT_EQUAL(d->got_add, 3);
    d->md5 = 1;
    d->http_user = "alice";
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    send_msg(d, sync_xml(d, ""), 1, 1);
    CU_ASSERT_PTR_NOT_NULL(find_cmd(d->ans, MEMDS_CMD_SYNC));
    finish(d, next);
    CU_ASSERT_EQUAL(d->got_add + d->got_replace, 3);
}

/* ------------------------------- the device authenticates the server */

#define SRV_PASS "srv-secret"

/* The device's Status for the server's last SyncHdr: code, and a Chal of
 * type (NULL: none) with NextNonce (NULL: none). */
static const char *hdr_status_xml(tdev_t *d, int code, const char *type,
                                  const char *nonce)
{
    const char *chal =
        type ? apr_psprintf(d->p,
                            "<Chal><Meta><Type xmlns='syncml:metinf'>%s</Type>"
                            "<Format xmlns='syncml:metinf'>b64</Format>%s%s%s"
                            "</Meta></Chal>",
                            type,
                            nonce ? "<NextNonce xmlns='syncml:metinf'>" : "",
                            nonce ? nonce : "", nonce ? "</NextNonce>" : "")
             : "";

    return apr_psprintf(d->p,
                        "<Status><CmdID>1</CmdID><MsgRef>%s</MsgRef>"
                        "<CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>"
                        "<TargetRef>%s</TargetRef><SourceRef>" BASE
                        "</SourceRef>%s<Data>%d</Data></Status>",
                        d->ans->hdr.msg_id, d->devid, chal, code);
}

/* The server's password towards the device (what memds-admin sets). */
static void set_server_password(tdev_t *d, const char *server_id, int basic)
{
    memds_sessdb_t *db = memds_sessdb_mem(d->db, d->p);
    memds_server_cred_t sc;

    memset(&sc, 0, sizeof(sc));
    sc.server_id = server_id;
    sc.password = SRV_PASS;
    sc.allow_basic = basic;
    CU_ASSERT_EQUAL(db->vt->server_cred_put(db, USER, d->devid, &sc),
                    APR_SUCCESS);
}

/* Computed here from the definitions (syncml-core 3.2, 3.3), not with the
 * engine's helpers. */
static const char *b64_of(apr_pool_t *p, const unsigned char *v, int len)
{
    char *b = apr_palloc(p, apr_base64_encode_len(len));

    apr_base64_encode_binary(b, v, len);
    return b;
}

static const char *expect_cred(apr_pool_t *p, const char *id, int md5,
                               const char *nonce_b64)
{
    unsigned char d[APR_MD5_DIGESTSIZE], nonce[64];
    const char *inner, *s;
    int n;

    if (!md5) {
        s = apr_pstrcat(p, id, ":", SRV_PASS, NULL);
        return b64_of(p, (const unsigned char *)s, (int)strlen(s));
    }
    s = apr_pstrcat(p, id, ":", SRV_PASS, NULL);
    apr_md5(d, s, strlen(s));
    inner = b64_of(p, d, APR_MD5_DIGESTSIZE);
    n = apr_base64_decode_binary(nonce, nonce_b64);
    s = apr_pstrcat(p, inner, ":", NULL);
    {
        apr_md5_ctx_t c;
        apr_md5_init(&c);
        apr_md5_update(&c, s, strlen(s));
        apr_md5_update(&c, nonce, (apr_size_t)n);
        apr_md5_final(d, &c);
    }
    return b64_of(p, d, APR_MD5_DIGESTSIZE);
}

static void assert_server_cred(const tdev_t *d, const char *type,
                               const char *data)
{
    const memds_cred_t *c = d->ans ? d->ans->hdr.cred : NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c->meta);
    CU_ASSERT_STRING_EQUAL(c->meta->type, type);
    CU_ASSERT_STRING_EQUAL(c->meta->format, "b64");
    CU_ASSERT_EQUAL(c->data.len, strlen(data));
    CU_ASSERT_STRING_EQUAL(c->data.data, data);
}

/* The session ended: 514 for the header and every command, nothing else,
 * no RespURI, Final, no Cred; the log line names the code. */
static void assert_cancelled(tdev_t *d, const char *logno)
{
    int i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_OP_CANCELLED_FAIL);
    CU_ASSERT_PTR_NULL(d->ans->hdr.resp_uri);
    CU_ASSERT_PTR_NULL(d->ans->hdr.cred);
    CU_ASSERT(d->ans->final);
    for (i = 0; i < d->ans->cmds->nelts; ++i) {
        const memds_cmd_t *c = APR_ARRAY_IDX(d->ans->cmds, i, memds_cmd_t *);
        CU_ASSERT_EQUAL(c->type, MEMDS_CMD_STATUS);
        CU_ASSERT(c->data && atoi(c->data) == MEMDS_ST_OP_CANCELLED_FAIL);
    }
    CU_ASSERT(d->resp.log_msg && strstr(d->resp.log_msg, logno) != NULL);
    /* any later message of the session: refused, nothing */
    send_msg(d, sync_xml(d, ""), 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_BAD_REQUEST);
    CU_ASSERT_PTR_NULL(find_cmd(d->ans, MEMDS_CMD_SYNC));
}

static void server_cred_basic(void)
{
    tdev_t *d = dev_new("dev-srv-basic");
    const char *next;

    set_server_password(d, NULL, 1);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    CU_ASSERT_PTR_NULL(d->ans->hdr.cred); /* nobody asked */
    /* the device challenges the server's header: 407 with basic */
    send_msg(d,
             apr_pstrcat(d->p,
                         hdr_status_xml(d, MEMDS_ST_MISSING_CREDENTIALS,
                                        "syncml:auth-basic", NULL),
                         sync_xml(d, item_cmd(d, "Add", 3, "a1", "memo one")),
                         NULL),
             1, 0);
    /* as the sync URL the device addresses, and the session goes on */
    assert_server_cred(d, "syncml:auth-basic", expect_cred(d->p, BASE, 0, ""));
    CU_ASSERT_EQUAL(status_code(d->ans, "Add", 0), MEMDS_ST_ITEM_ADDED);
    CU_ASSERT(d->resp.log_msg && strstr(d->resp.log_msg, "MEMDS00591") != NULL);
    /* 212: accepted for the session, no more Cred */
    send_msg(d, hdr_status_xml(d, MEMDS_ST_AUTH_ACCEPTED, NULL, NULL), 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT_PTR_NULL(d->ans->hdr.cred);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_OK);
    finish(d, next);
    /* a new session: nobody asks, no Cred */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_TWO_WAY, &next),
                    MEMDS_ALERT_TWO_WAY);
    CU_ASSERT_PTR_NULL(d->ans->hdr.cred);
}

static void server_cred_md5(void)
{
    tdev_t *d = dev_new("dev-srv-md5");
    memds_sessdb_t *db;
    memds_server_cred_t sc;
    const char *next;

    set_server_password(d, "memds-server", 0);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    /* 401 with md5 and the device's nonce ("Nonce1") */
    send_msg(d,
             apr_pstrcat(d->p,
                         hdr_status_xml(d, MEMDS_ST_INVALID_CREDENTIALS,
                                        "syncml:auth-md5", "Tm9uY2Ux"),
                         sync_xml(d, ""), NULL),
             1, 0);
    assert_server_cred(d, "syncml:auth-md5",
                       expect_cred(d->p, "memds-server", 1, "Tm9uY2Ux"));
    /* the server nonce is kept (the SAN digest's) */
    db = memds_sessdb_mem(d->db, d->p);
    CU_ASSERT_EQUAL_FATAL(db->vt->server_cred_get(db, &sc, USER, d->devid),
                          APR_SUCCESS);
    CU_ASSERT_STRING_EQUAL(sc.nonce, "Tm9uY2Ux");
    /* 200 (this message only) with the next nonce: Cred again with it */
    send_msg(d, hdr_status_xml(d, MEMDS_ST_OK, "syncml:auth-md5", "Tm9uY2Uy"),
             0, 0);
    assert_server_cred(d, "syncml:auth-md5",
                       expect_cred(d->p, "memds-server", 1, "Tm9uY2Uy"));
    /* then a challenge again: the device rejected it; the session ends */
    send_msg(d,
             hdr_status_xml(d, MEMDS_ST_INVALID_CREDENTIALS, "syncml:auth-md5",
                            "Tm9uY2Uz"),
             1, 0);
    assert_cancelled(d, "MEMDS00592");
}

static void server_cred_missing(void)
{
    tdev_t *d = dev_new("dev-srv-none");
    const char *next;

    /* no server password for the device: the session ends */
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    send_msg(d,
             apr_pstrcat(d->p,
                         hdr_status_xml(d, MEMDS_ST_MISSING_CREDENTIALS,
                                        "syncml:auth-md5", "Tm9uY2Ux"),
                         sync_xml(d, item_cmd(d, "Add", 3, "a1", "memo one")),
                         NULL),
             1, 0);
    assert_cancelled(d, "MEMDS00590");
    /* md5 only: a basic challenge is not answered (password in clear) */
    d = dev_new("dev-srv-md5only");
    set_server_password(d, NULL, 0);
    CU_ASSERT_EQUAL(package1(d, MEMDS_ALERT_SLOW, &next), MEMDS_ALERT_SLOW);
    send_msg(d,
             apr_pstrcat(d->p,
                         hdr_status_xml(d, MEMDS_ST_MISSING_CREDENTIALS,
                                        "syncml:auth-basic", NULL),
                         sync_xml(d, ""), NULL),
             1, 0);
    assert_cancelled(d, "MEMDS00593");
}

/* --------------------------------------------- push (docs/push.md) */

/* A DevInf Put whose Ext X-memds-push has the values v1 and v2 (NULL:
 * not there); the device's channel afterwards ("" for none). */
static const char *self_register(tdev_t *d, const char *v1, const char *v2)
{
    const char *ch = NULL, *addr = NULL;
    const char *ext =
        apr_psprintf(d->p, "<Ext><XNam>X-memds-push</XNam>%s%s%s%s%s%s</Ext>",
                     v1 ? "<XVal>" : "", v1 ? v1 : "", v1 ? "</XVal>" : "",
                     v2 ? "<XVal>" : "", v2 ? v2 : "", v2 ? "</XVal>" : "");

    start(d);
    send_msg(d, devinf_put_xml(d, "./devinf12", "1.2", ext), 1, 1);
    CU_ASSERT_EQUAL(status_code(d->ans, "Put", 0), MEMDS_ST_OK);
    CU_ASSERT_EQUAL(memds_memdb_push_channel(d->db, USER, d->devid, &ch, &addr),
                    APR_SUCCESS);
    return ch ? apr_pstrcat(d->p, ch, " ", addr, NULL) : "";
}

static int logged(const tdev_t *d, const char *code)
{
    return d->resp.log_msg && strstr(d->resp.log_msg, code) != NULL;
}

static void push_self_registration(void)
{
    tdev_t *d = dev_new("dev-push-self");
    apr_array_header_t *pre = apr_array_make(d->p, 1, sizeof(const char *));

    APR_ARRAY_PUSH(pre, const char *) = "https://push.example/dev/";
    d->cfg.push = 1;
    /* MemDSPushSelfRegister Off (the default): refused, logged */
    CU_ASSERT_STRING_EQUAL(self_register(d, "http",
                                         "https://push.example/dev/1"),
                           "");
    CU_ASSERT(logged(d, "MEMDS00570"));
    d->cfg.push_self_prefixes = pre;
    CU_ASSERT_STRING_EQUAL(self_register(d, "http",
                                         "https://push.example/dev/1"),
                           "http https://push.example/dev/1");
    CU_ASSERT(logged(d, "MEMDS00571"));
    /* outside the prefixes, sms not allowed, malformed: kept as it was */
    CU_ASSERT_STRING_EQUAL(self_register(d, "http",
                                         "https://push.example/other/1"),
                           "http https://push.example/dev/1");
    CU_ASSERT(logged(d, "MEMDS00570"));
    CU_ASSERT_STRING_EQUAL(self_register(d, "http", "https://push.example/dev"),
                           "http https://push.example/dev/1");
    CU_ASSERT_STRING_EQUAL(self_register(d, "sms", "+4915550001"),
                           "http https://push.example/dev/1");
    CU_ASSERT(logged(d, "MEMDS00570"));
    d->cfg.push_self_sms = 1;
    CU_ASSERT_STRING_EQUAL(self_register(d, "sms", "+4915550001"),
                           "sms +4915550001");
    CU_ASSERT_STRING_EQUAL(self_register(d, "sms", "+49 1555"),
                           "sms +4915550001");
    CU_ASSERT(logged(d, "MEMDS00570"));
    CU_ASSERT_STRING_EQUAL(self_register(d, "fax", "+4915550002"),
                           "sms +4915550001");
    CU_ASSERT_STRING_EQUAL(self_register(d, "http", NULL), "sms +4915550001");
    CU_ASSERT_STRING_EQUAL(self_register(d, NULL, NULL), "sms +4915550001");
    CU_ASSERT(logged(d, "MEMDS00570"));
    CU_ASSERT_STRING_EQUAL(self_register(d, "http",
                                         "https://push.example/dev/a b"),
                           "sms +4915550001");
    /* none removes it, a second none is harmless */
    CU_ASSERT_STRING_EQUAL(self_register(d, "none", NULL), "");
    CU_ASSERT(logged(d, "MEMDS00571"));
    CU_ASSERT_STRING_EQUAL(self_register(d, "none", NULL), "");
    /* without MemDSPush the Ext means nothing */
    d->cfg.push = 0;
    CU_ASSERT_STRING_EQUAL(self_register(d, "sms", "+4915550001"), "");
    CU_ASSERT(!logged(d, "MEMDS0057"));
    /* the rule of memds-admin push-register too */
    CU_ASSERT_PTR_NULL(memds_push_channel_check("http", "http://h/p?q=1"));
    CU_ASSERT_PTR_NULL(memds_push_channel_check("sms", "0049301234567"));
    CU_ASSERT_PTR_NOT_NULL(memds_push_channel_check("http", "http://"));
    CU_ASSERT_PTR_NOT_NULL(memds_push_channel_check("http", "http:///x"));
    CU_ASSERT_PTR_NOT_NULL(memds_push_channel_check("http", "ftp://h/"));
    CU_ASSERT_PTR_NOT_NULL(memds_push_channel_check("http", "http://h/ x"));
    CU_ASSERT_PTR_NOT_NULL(memds_push_channel_check("sms", "++1555"));
    CU_ASSERT_PTR_NOT_NULL(memds_push_channel_check("x", "+1555"));
    CU_ASSERT_PTR_NOT_NULL(memds_push_channel_check("http", NULL));
}

/* A session of store (Alert code, anchors in *plast) without changes;
 * mid: a notification for that datastore made while it runs. The last
 * answer's in-band Alert, or NULL. */
static const memds_cmd_t *store_session(tdev_t *d, const char *store, int code,
                                        const char **plast, const char *mid)
{
    const char *next = apr_psprintf(d->p, "%s-%d", store, rand());
    const memds_cmd_t *al;

    start(d);
    send_msg(d,
             apr_psprintf(d->p,
                          "<Alert><CmdID>1</CmdID><Data>%d</Data><Item>"
                          "<Target><LocURI>%s</LocURI></Target><Source>"
                          "<LocURI>./%s</LocURI></Source><Meta><Anchor "
                          "xmlns='syncml:metinf'>%s%s%s<Next>%s</Next>"
                          "</Anchor></Meta></Item></Alert>",
                          code, store, store, *plast ? "<Last>" : "",
                          *plast ? *plast : "", *plast ? "</Last>" : "", next),
             1, 1);
    CU_ASSERT_EQUAL(hdr_code(d->ans), MEMDS_ST_AUTH_ACCEPTED);
    if (mid) {
        CU_ASSERT_EQUAL(memds_memdb_push_pending(d->db, USER, d->devid, mid),
                        APR_SUCCESS);
    }
    send_msg(d,
             apr_psprintf(d->p,
                          "<Sync><CmdID>2</CmdID><Target><LocURI>%s</LocURI>"
                          "</Target><Source><LocURI>./%s</LocURI></Source>"
                          "</Sync>",
                          store, store),
             1, 0);
    finish(d, next);
    *plast = next;
    CU_ASSERT(d->ans->final);
    al = find_cmd(d->ans, MEMDS_CMD_ALERT);
    if (al == NULL) {
        return NULL;
    }
    /* the device answers it (as SyncEvolution does: 406): the session is
     * over, Final */
    CU_ASSERT_PTR_NOT_NULL(d->ans->hdr.resp_uri);
    send_msg(d,
             apr_psprintf(d->p,
                          "<Status><CmdID>1</CmdID><MsgRef>%s</MsgRef>"
                          "<CmdRef>%s</CmdRef><Cmd>Alert</Cmd><Data>406"
                          "</Data></Status>",
                          d->ans->hdr.msg_id, al->cmd_id),
             1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->ans);
    CU_ASSERT(d->ans->final);
    CU_ASSERT_PTR_NULL(find_cmd(d->ans, MEMDS_CMD_ALERT));
    return al;
}

static int alert_names(const memds_cmd_t *al, const char *target,
                       const char *source)
{
    const memds_item_t *it;

    if (al == NULL || strcmp(al->data, "206") != 0 || !al->items
        || al->items->nelts != 1) {
        return 0;
    }
    it = APR_ARRAY_IDX(al->items, 0, memds_item_t *);
    return it->target && strcmp(it->target->uri, target) == 0 && it->source
           && strcmp(it->source->uri, source) == 0;
}

static void push_inband(void)
{
    tdev_t *d = dev_new("dev-push-inband");
    const char *memo = NULL, *notes = NULL;

    d->cfg.push = 1;
    CU_ASSERT_PTR_NULL(
        store_session(d, "notes", MEMDS_ALERT_SLOW, &notes, NULL));
    CU_ASSERT_PTR_NULL(store_session(d, "memo", MEMDS_ALERT_SLOW, &memo, NULL));
    /* a datastore the session does not sync: told, and it stays pending
     * until the device syncs it */
    memds_memdb_push_pending(d->db, USER, d->devid, "notes");
    CU_ASSERT(
        alert_names(store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo, NULL),
                    "./notes", "notes"));
    CU_ASSERT(logged(d, "MEMDS00572") || d->resp.log_msg);
    CU_ASSERT(
        alert_names(store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo, NULL),
                    "./notes", "notes"));
    CU_ASSERT_PTR_NULL(
        store_session(d, "notes", MEMDS_ALERT_TWO_WAY, &notes, NULL));
    CU_ASSERT_PTR_NULL(
        store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo, NULL));
    /* synced one way from the client: told, kept */
    memds_memdb_push_pending(d->db, USER, d->devid, "memo");
    CU_ASSERT(alert_names(store_session(d, "memo", MEMDS_ALERT_ONE_WAY_CLIENT,
                                        &memo, NULL),
                          "./memo", "memo"));
    CU_ASSERT_PTR_NULL(
        store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo, NULL));
    CU_ASSERT_PTR_NULL(
        store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo, NULL));
    /* made during the session (mail after its snapshot): told, kept */
    CU_ASSERT(alert_names(store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo,
                                        "memo"),
                          "./memo", "memo"));
    CU_ASSERT_PTR_NULL(
        store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo, NULL));
    /* without MemDSPush: never */
    d->cfg.push = 0;
    memds_memdb_push_pending(d->db, USER, d->devid, "notes");
    CU_ASSERT_PTR_NULL(
        store_session(d, "memo", MEMDS_ALERT_TWO_WAY, &memo, NULL));
}

void unit_add_engine(void)
{
    CU_pSuite s = CU_add_suite("engine", NULL, NULL);

    CU_add_test(s, "auth basic: right, wrong, missing", auth_basic);
    CU_add_test(s, "auth failures block the device", auth_blocked);
    CU_add_test(s, "auth md5: empty nonce, next nonce, wrong", auth_md5);
    CU_add_test(s, "auth md5 inner value recorded",
                auth_md5_recorded_from_basic);
    CU_add_test(s, "account: another's basic Cred ends the session",
                account_other_basic);
    CU_add_test(s, "account: another's md5 Cred ends the session",
                account_other_md5);
    CU_add_test(s, "account: another HTTP user ends the session",
                account_other_http_user);
    CU_add_test(s, "account: the same account's Cred again is fine",
                account_same_again);
    CU_add_test(s, "server credentials: basic challenge, 212",
                server_cred_basic);
    CU_add_test(s, "server credentials: md5 challenge, 200, rejection",
                server_cred_md5);
    CU_add_test(s, "server credentials: none set, basic not allowed: 514",
                server_cred_missing);
    CU_add_test(s, "every alert, 508 on anchors", alert_modes);
    CU_add_test(s, "two-way syncs and maps", two_way_and_maps);
    CU_add_test(s, "sync_state read once per request",
                syncstate_once_per_request);
    CU_add_test(s, "statuses of client changes", client_changes_statuses);
    CU_add_test(s, "one-way and refresh", one_way_and_refresh);
    CU_add_test(s, "packages 1 and 3 together; 508 when slow",
                combined_packages);
    CU_add_test(s, "SyncML 1.1 and 1.0: answers and DevInf in their version",
                syncml_11_and_10);
    CU_add_test(s, "Move outside a hierarchical datastore: 406",
                move_not_hierarchical);
    CU_add_test(s, "multi-message packages", multi_message_package);
    CU_add_test(s, "queue rows read by the last message's count",
                queue_read_by_last_message);
    CU_add_test(s, "Alert 222 when nothing to say", next_message_alert);
    CU_add_test(s, "retransmission answered from storage", retransmission);
    CU_add_test(s, "sessions and tokens", sessions_and_tokens);
    CU_add_test(s, "DevInf Put and Get", devinf_exchange);
    CU_add_test(s, "throttling: MemDSLimit refuses new sessions with 503",
                throttle_limits);
    CU_add_test(s, "throttling: autoblock, unblock, block for a time",
                throttle_autoblock);
    CU_add_test(s, "throttling: quarantine of refused and unbuildable items",
                throttle_quarantine);
    CU_add_test(s, "push: a device registers its channel in its DevInf",
                push_self_registration);
    CU_add_test(s, "push: in-band Alert 206 as the session ends", push_inband);
    CU_add_test(s, "filters: 406/415/422, never 200; no FilterCap",
                filter_refusals);
    CU_add_test(s, "corpus: items sessions replayed, a retransmission",
                corpus_items_sessions);
    CU_add_test(s, "corpus: 401, large objects, anchor mismatch replayed",
                corpus_other_sessions);
}
