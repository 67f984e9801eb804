"""2xx: the protocol engine driven message by message (tests/integration/
syncml.py): a complete session, retransmissions, refusals, two httpd
instances on one database, and a child killed in mid-session."""
import http.client
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

import syncml as S
from conftest import capture


def psql(stack, sql, *args):
    cmd = ["psql", stack["MEMDS_PG"], "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def items_url(stack):
    return stack["MEMDS_ITEMS_URL"]


def count_items(stack, store, user="alice"):
    return int(psql(stack, "SELECT count(*) FROM memds.items WHERE account='%s' "
                           "AND store='%s' AND NOT deleted" % (user, store)))


def new_session(stack, **kw):
    return S.Session(items_url(stack), "dev-" + uuid.uuid4().hex[:12],
                     kw.pop("user", "alice"), kw.pop("password", "alice-secret"), **kw)


def run_to_sync(sess, store, items, code=201):
    """Package 1 and 3 of a session; returns the answer to package 3."""
    a = sess.post(sess.message(S.alert(1, code, store, "./" + store, "c-next-1")))
    assert a.http_status == 200, a.body
    assert a.hdr_status() == "212", a.body
    assert a.resp_uri and "?s=" in a.resp_uri
    assert a.final
    al = a.commands("Alert")
    assert len(al) == 1
    ops = [("Add", "luid-%d" % i, data) for i, data in enumerate(items)]
    return sess.post(sess.message(S.sync(2, store, "./" + store, ops)))


def test_201_complete_session(stack):
    store = "proto-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    a = run_to_sync(sess, store, ["one", "two\r\nlines", "<three> & ]]>"])
    st = a.statuses()
    assert st[0]["Data"] == "200"
    adds = [s for s in st if s["Cmd"] == "Add"]
    assert [s["Data"] for s in adds] == ["201", "201", "201"]
    assert sorted(s["SourceRef"][0] for s in adds) == ["luid-0", "luid-1", "luid-2"]
    assert a.final
    assert count_items(stack, store) == 3
    data = psql(stack, "SELECT string_agg(encode(data,'hex'), '|' ORDER BY seq) "
                       "FROM memds.items WHERE store='%s'" % store)
    assert data == "|".join(x.encode().hex() for x in ["one", "two\r\nlines", "<three> & ]]>"])
    a = sess.post(sess.message(""))
    assert a.final and a.hdr_status() == "200"
    assert psql(stack, "SELECT last_client_anchor FROM memds.sync_state s JOIN memds.devices d "
                       "USING (device_id) WHERE d.devid='%s'" % sess.devid) == "c-next-1"
    # A second, two-way session sees the anchors agree: 200, not 508.
    s2 = S.Session(items_url(stack), sess.devid, "alice", "alice-secret", session_id="2")
    a = s2.post(s2.message(S.alert(1, 200, store, "./" + store, "c-next-2", last="c-next-1")))
    alert_status = [s for s in a.statuses() if s["Cmd"] == "Alert"][0]
    assert alert_status["Data"] == "200"
    assert a.commands("Alert")[0].find(S.NS + "Data").text == "200"


def test_202_anchor_mismatch_forces_slow_sync(stack):
    store = "proto-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    a = sess.post(sess.message(S.alert(1, 200, store, "./" + store, "n1", last="bogus")))
    st = [s for s in a.statuses() if s["Cmd"] == "Alert"][0]
    assert st["Data"] == "508"
    assert a.commands("Alert")[0].find(S.NS + "Data").text == "201"


def test_203_retransmission_gets_identical_bytes(stack):
    store = "proto-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    msg = sess.message(S.sync(2, store, "./" + store, [("Add", "l1", "x"), ("Add", "l2", "y")]))
    a1 = sess.post(msg)
    a2 = sess.post(msg)
    a3 = sess.post(msg)
    assert a1.body == a2.body == a3.body
    assert count_items(stack, store) == 2
    # The first message again, too.
    first = S.Session(items_url(stack), "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    m1 = first.message(S.alert(1, 201, store + "b", "./x", "n1"))
    b1, b2 = first.post(m1, url=items_url(stack)), first.post(m1, url=items_url(stack))
    assert b1.body == b2.body
    assert psql(stack, "SELECT count(*) FROM memds.sessions s JOIN memds.devices d "
                       "USING (device_id) WHERE d.devid='%s'" % first.devid) == "1"


def test_204_wrong_password(stack):
    stack.allow_log(r"authentication failed")
    sess = new_session(stack, password="wrong")
    a = sess.post(sess.message(S.alert(1, 201, "x", "./x", "n1")))
    assert a.http_status == 200
    assert a.hdr_status() == "401"
    assert a.resp_uri is None
    assert [s["Data"] for s in a.statuses()[1:]] == ["401"]
    chal = a.root.find(".//" + S.NS + "Chal")
    assert chal is not None
    # No credentials at all: 407.
    sess = new_session(stack)
    sess.cred = False
    a = sess.post(sess.message(S.alert(1, 201, "x", "./x", "n1")))
    assert a.hdr_status() == "407"


def test_205_unknown_and_foreign_tokens(stack):
    stack.allow_log(r"session token of another device")
    store = "proto-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    # Unknown token, MsgID 2: refused.
    other = new_session(stack)
    other.msg_id = 1
    a = other.post(other.message(""), url=items_url(stack) + "?s=" + "0" * 32)
    assert a.hdr_status() == "404" and a.resp_uri is None
    # Another device's token: refused, and the session is untouched.
    a = other.post(other.message(""), url=sess.next_url)
    assert a.hdr_status() == "403"
    a = sess.post(sess.message(S.sync(2, store, "./" + store, [("Add", "l1", "z")])))
    assert a.hdr_status() == "200"
    assert count_items(stack, store) == 1


def test_203b_lost_answer_is_not_run_again(stack):
    """The stored answers are UNLOGGED (schema/024): crash recovery empties
    them. A resend of a message whose answer is gone is refused (500,
    MEMDS00626), nothing is run twice, and a new session goes on."""
    stack.allow_log(r"MEMDS00626")
    store = "proto-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    msg = sess.message(S.sync(2, store, "./" + store, [("Add", "l1", "x"), ("Add", "l2", "y")]))
    a1 = sess.post(msg)
    assert a1.hdr_status() == "200", a1.body
    # what crash recovery does to the UNLOGGED table
    psql(stack, "DELETE FROM memds.session_answers a USING memds.sessions s "
                "JOIN memds.devices d USING (device_id) WHERE a.session_pk = "
                "s.session_pk AND d.devid = '%s'" % sess.devid)
    a2 = sess.post(msg)
    assert a2.http_status == 200 and a2.hdr_status() == "500", a2.body
    assert b"stored answer of this message is gone" in a2.body
    assert count_items(stack, store) == 2
    again = S.Session(items_url(stack), sess.devid, "alice", "alice-secret",
                      session_id="2")
    a3 = again.post(again.message(S.alert(1, 200, store, "./" + store, "n2")))
    assert a3.http_status == 200 and a3.hdr_status() == "212", a3.body


def test_206_out_of_order_msgid(stack):
    store = "proto-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    a = sess.post(sess.message(S.sync(2, store, "./" + store, [("Add", "l1", "z")]), msg_id=5))
    assert a.hdr_status() == "400"
    assert count_items(stack, store) == 0
    sess.msg_id = 1
    a = sess.post(sess.message(S.sync(2, store, "./" + store, [("Add", "l1", "z")])))
    assert a.hdr_status() == "200"


def test_207_garbage_bodies(stack):
    for body in (b"", b"garbage", b"<SyncML/>", b"<?xml version='1.0'?><a/>",
                 b"\x02\xa4\x01\x6a\x00\x6d", b"<SyncML xmlns='SYNCML:SYNCML1.2'>" * 100):
        st, _, _ = stack.post_syncml(body, path="/items")
        assert st == 400, body[:40]
    st, _, _ = stack.post_syncml(b"\x02\xa4\x01\x6a\x00\x6d", wbxml=True, path="/items")
    assert st == 400


def test_208_server_changes_over_several_messages(stack):
    """Server changes larger than the client's MaxMsgSize go over several
    messages without Final until the last; every item arrives once."""
    store = "proto-" + uuid.uuid4().hex[:8]
    seed = new_session(stack)
    run_to_sync(seed, store, ["item %03d %s" % (i, "x" * 300) for i in range(60)])
    seed.post(seed.message(""))
    sess = new_session(stack, max_msg=4096)
    a = sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    a = sess.post(sess.message(S.sync(2, store, "./" + store, [])))
    got, rounds = [], 0
    while True:
        assert len(a.body) <= 4096
        items = a.sync_items()
        got += items
        rounds += 1
        if a.final:
            break
        body = "".join(S.status(i + 1, a.hdr("MsgID").text, it[4], it[0], "201",
                                source_ref=it[1]) for i, it in enumerate(items))
        body += ("<Alert><CmdID>%d</CmdID><Data>222</Data><Item><Target><LocURI>%s"
                 "</LocURI></Target><Source><LocURI>dev</LocURI></Source></Item></Alert>"
                 % (len(items) + 1, S.esc(sess.url)))
        a = sess.post(sess.message(body, final=False))
        assert rounds < 40
    assert rounds > 3
    assert len(got) == 60
    assert len(set(i[1] for i in got)) == 60
    maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%d</LocURI>"
                   "</Source></MapItem>" % (it[1], n) for n, it in enumerate(got))
    a = sess.post(sess.message("<Map><CmdID>1</CmdID><Target><LocURI>%s</LocURI></Target>"
                               "<Source><LocURI>./%s</LocURI></Source>%s</Map>"
                               % (store, store, maps)))
    assert a.final
    assert psql(stack, "SELECT count(*) FROM memds.maps m JOIN memds.devices d USING "
                       "(device_id) WHERE d.devid='%s'" % sess.devid) == "60"


def _second_httpd(stack, port):
    conf = open(stack["MEMDS_HTTPD_CONF"]).read()
    d = os.path.join(stack.var, "httpd2")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    conf = conf.replace("Listen 127.0.0.1:%s" % stack["MEMDS_HTTP_PORT"],
                        "Listen 127.0.0.1:%d" % port)
    import re
    # the stack's HTTPS port is the first httpd's
    conf = re.sub(r"(?ms)^# --- HTTPS .*?^# --- end of HTTPS\n", "", conf)
    conf = re.sub(r'^PidFile .*$', 'PidFile "%s/httpd.pid"' % d, conf, flags=re.M)
    conf = re.sub(r'^ErrorLog .*$', 'ErrorLog "%s/error.log"' % d, conf, flags=re.M)
    conf = re.sub(r'^DefaultRuntimeDir .*$', 'DefaultRuntimeDir "%s"' % d, conf, flags=re.M)
    conf = re.sub(r'^Mutex .*$', 'Mutex "file:%s" default' % d, conf, flags=re.M)
    conf = re.sub(r'^CustomLog .*$', 'CustomLog "%s/access.log" memds' % d, conf, flags=re.M)
    path = os.path.join(d, "httpd.conf")
    open(path, "w").write(conf)
    subprocess.run([stack["MEMDS_HTTPD_BIN"], "-f", path, "-k", "start"], check=True)
    return path


def test_209_two_servers_alternate_messages(stack):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    conf = _second_httpd(stack, port)
    try:
        url2 = "http://127.0.0.1:%d/items" % port
        deadline = time.time() + 10
        while True:
            try:
                S.Session(url2, "x").post(b"x", url=url2)
                break
            except OSError:
                assert time.time() < deadline, "the second httpd does not answer"
                time.sleep(0.2)
        store = "proto-" + uuid.uuid4().hex[:8]
        sess = new_session(stack)
        a = sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
        token = S.token_of(a.resp_uri)
        # Message 2 to the second server, message 3 to the first.
        a = sess.post(sess.message(S.sync(2, store, "./" + store, [("Add", "l1", "a"), ("Add", "l2", "b")])),
                      url=url2 + "?s=" + token)
        assert a.hdr_status() == "200"
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201", "201"]
        a = sess.post(sess.message(""), url=items_url(stack) + "?s=" + token)
        assert a.final and a.hdr_status() == "200"
        assert count_items(stack, store) == 2
    finally:
        subprocess.run([stack["MEMDS_HTTPD_BIN"], "-f", conf, "-k", "stop"])
        time.sleep(1)


def test_210_kill_child_mid_session(stack):
    """kill -9 of the children while a big message is processed; the client's
    retry of the same message completes the session with every item once.
    The kill is made while the request is known to be inside the module, in
    its PostgreSQL transaction: another connection holds memds.items locked
    against writes, so the request's first write waits on that lock (seen
    in pg_stat_activity); only then are the children killed. The device
    gets no answer, nothing of the message was committed, and the retry
    stores all 600 items once."""
    stack.allow_log(r"AH10392")  # mpm_event: "children are killed successively"
    store = "proto-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    a = sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    assert a.http_status == 200
    ops = [("Add", "l%d" % i, "item %d %s" % (i, "y" * 200)) for i in range(600)]
    msg = sess.message(S.sync(2, store, "./" + store, ops))
    holder = subprocess.Popen(["psql", stack["MEMDS_PG"], "-XAtq"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    first = []
    t = None
    try:
        holder.stdin.write("BEGIN; LOCK TABLE memds.items IN EXCLUSIVE MODE; "
                           "SELECT 'held';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held"

        def post():
            try:
                first.append(sess.post(msg))
            except (OSError, http.client.HTTPException) as e:
                first.append(e)  # the connection died with the child

        t = threading.Thread(target=post)
        t.start()
        deadline = time.time() + 30
        while True:  # the request waits for the lock, inside its transaction
            waiting = psql(stack, "SELECT count(*) FROM pg_stat_activity WHERE "
                                  "wait_event_type = 'Lock' AND query ILIKE '%memds.items%'")
            if waiting == "1":
                break
            assert time.time() < deadline, "the request never reached its write"
            time.sleep(0.05)
        children = stack.httpd_children()
        assert children
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        t.join(timeout=30)
        assert not t.is_alive()
    finally:
        holder.stdin.close()  # (ends the lock's transaction)
        holder.wait(timeout=30)
        if t is not None:
            t.join(timeout=30)
    # the kill happened: the device got no answer, the children are gone
    assert len(first) == 1 and isinstance(first[0], Exception), first
    deadline = time.time() + 30
    while set(children) & set(stack.httpd_children()):
        assert time.time() < deadline, "the killed children are still there"
        time.sleep(0.2)
    assert count_items(stack, store) == 0  # nothing of the message was committed
    deadline = time.time() + 30
    answer = None
    while answer is None:
        try:
            answer = sess.post(msg)
        except (OSError, http.client.HTTPException):
            # (only while httpd replaces the killed children)
            assert time.time() < deadline, "httpd did not answer after the kill"
            time.sleep(0.3)
    assert answer.http_status == 200 and answer.hdr_status() == "200", answer.body
    assert [s["Data"] for s in answer.statuses() if s["Cmd"] == "Add"] == ["201"] * 600
    assert count_items(stack, store) == 600
    a = sess.post(sess.message(""))
    assert a.final


SITE_ITEMS = """
MemDSDatabase "{PG}"
<Location /items>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore items
    MemDSAuthFile "%s"
    %s
</Location>
"""


def _items_site(stack, extra):
    return SITE_ITEMS % (os.path.join(stack.var, "httpd", "users"), extra)


def _set_item(stack, store, data):
    psql(stack, "UPDATE memds.items SET data = convert_to('%s', 'UTF8'), sha1 = 'x', "
                "seq = memds.item_seq_take(), changed_by = NULL WHERE store = '%s'"
         % (data, store))


@pytest.mark.parametrize("policy,code", [("server-wins", "419"), ("client-wins", "208"),
                                         ("duplicate", "209")])
def test_211_conflict_policies(stack, policy, code):
    stack.apply_site(_items_site(stack, "MemDSConflictPolicy " + policy))
    store = "conf-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    run_to_sync(sess, store, ["v1"])
    sess.post(sess.message(""))
    _set_item(stack, store, "server")
    s2 = S.Session(items_url(stack), sess.devid, "alice", "alice-secret", session_id="2")
    a = s2.post(s2.message(S.alert(1, 200, store, "./" + store, "n2", last="c-next-1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    a = s2.post(s2.message(S.sync(2, store, "./" + store, [("Replace", "luid-0", "client")])))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Replace"] == [code]
    sent = a.sync_items()
    datas = sorted(psql(stack, "SELECT convert_from(data, 'UTF8') FROM memds.items "
                              "WHERE store='%s' AND NOT deleted" % store).split("\n"))
    if policy == "server-wins":
        assert [(i[0], i[2], i[3]) for i in sent] == [("Replace", "luid-0", "server")]
        assert datas == ["server"]
    elif policy == "client-wins":
        assert sent == []
        assert datas == ["client"]
    else:
        assert [(i[0], i[3]) for i in sent] == [("Add", "server")]
        assert datas == ["client", "server"]


def test_212_auth_failures_are_limited(stack):
    stack.allow_log(r"authentication failed")
    stack.apply_site(_items_site(stack, "MemDSAuthLimit 3 60 60"))
    devid = "dev-" + uuid.uuid4().hex[:8]
    for i in range(3):
        bad = S.Session(items_url(stack), devid, "alice", "nope", session_id=str(i))
        assert bad.post(bad.message(S.alert(1, 201, "x", "./x", "n"))).hdr_status() == "401"
    good = S.Session(items_url(stack), devid, "alice", "alice-secret", session_id="9")
    a = good.post(good.message(S.alert(1, 201, "x", "./x", "n")))
    assert a.hdr_status() == "401"  # blocked, although the password is right
    other = S.Session(items_url(stack), devid + "-2", "alice", "alice-secret")
    assert other.post(other.message(S.alert(1, 201, "x", "./x", "n"))).hdr_status() == "212"


def test_213_httpd_authenticated_user(stack):
    """With Apache auth on the location, the user httpd authenticated is the
    account and the SyncML message needs no Cred."""
    users = os.path.join(stack.var, "httpd", "htpasswd")
    subprocess.run(["htpasswd", "-bc", users, "carol", "carol-pw"], check=True,
                   stderr=subprocess.DEVNULL)
    os.chmod(users, 0o644)
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /items>
    SetHandler memds-sync
    MemDSEngine On
    AuthType Basic
    AuthName "sync"
    AuthUserFile "%s"
    Require valid-user
</Location>
""" % users)
    import base64
    import http.client
    sess = S.Session(items_url(stack), "dev-" + uuid.uuid4().hex[:8], "carol", None)
    sess.cred = False
    body = sess.message(S.alert(1, 201, "httpauth", "./h", "n1"))
    c = http.client.HTTPConnection("127.0.0.1", int(stack["MEMDS_HTTP_PORT"]))
    c.request("POST", "/items", body=body, headers={
        "Content-Type": "application/vnd.syncml+xml",
        "Authorization": "Basic " + base64.b64encode(b"carol:carol-pw").decode()})
    r = c.getresponse()
    a = S.Answer(r.status, {}, r.read())
    assert a.hdr_status() == "200"
    assert a.resp_uri
    assert psql(stack, "SELECT account FROM memds.devices WHERE devid='%s'" % sess.devid) == "carol"
    c.request("POST", "/items", body=body, headers={"Content-Type": "application/vnd.syncml+xml"})
    assert c.getresponse().status == 401


def _ack(a):
    """Statuses for every item of an answer, and Alert 222."""
    items = a.sync_items()
    body = "".join(S.status(i + 1, a.hdr("MsgID").text, it[4], it[0], "201",
                            source_ref=it[1]) for i, it in enumerate(items))
    return items, body


def test_214_suspend_and_resume(stack):
    """Suspend (Alert 224) in the middle of the server's package; a new
    session resumes (Alert 225) in the same mode and sends only what the
    device had not acknowledged."""
    store = "susp-" + uuid.uuid4().hex[:8]
    seed = new_session(stack)
    run_to_sync(seed, store, ["item %03d %s" % (i, "z" * 300) for i in range(40)])
    seed.post(seed.message(""))

    sess = new_session(stack, max_msg=4096)
    sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    a = sess.post(sess.message(S.sync(2, store, "./" + store, [])))
    assert not a.final
    first, body = _ack(a)
    assert 0 < len(first) < 40
    # The device takes the first message's items, then suspends.
    body += ("<Alert><CmdID>%d</CmdID><Data>224</Data><Item><Target><LocURI>%s</LocURI>"
             "</Target><Source><LocURI>%s</LocURI></Source></Item></Alert>"
             % (len(first) + 1, S.esc(sess.url), S.esc(sess.devid)))
    a = sess.post(sess.message(body))
    assert a.final
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    assert a.sync_items() == []

    # Resume in a new session.
    r = S.Session(items_url(stack), sess.devid, "alice", "alice-secret", session_id="2",
                  max_msg=4096)
    a = r.post(r.message(S.alert(1, 225, store, "./" + store, "n2")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    assert a.commands("Alert")[0].find(S.NS + "Data").text == "201"
    a = r.post(r.message(S.sync(2, store, "./" + store, [])))
    rest = []
    for _ in range(40):
        items, body = _ack(a)
        rest += items
        if a.final:
            break
        a = r.post(r.message(body, final=False))
    assert a.final
    guids_first = set(i[1] for i in first)
    guids_rest = set(i[1] for i in rest)
    assert not guids_first & guids_rest        # nothing acknowledged is resent
    assert len(guids_first | guids_rest) == 40  # and nothing is missing

    # the device's statuses for the last message end the resumed session
    a = r.post(r.message(body))
    assert a.http_status == 200 and a.final and a.sync_items() == []

    # Resume with nothing suspended, the anchors agreeing: 509 (cannot
    # resume), and the normal sync goes on: the server alerts two-way (200).
    again = S.Session(items_url(stack), sess.devid, "alice", "alice-secret", session_id="3")
    a = again.post(again.message(S.alert(1, 225, store, "./" + store, "n3", last="n2")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["509"], a.body
    assert a.commands("Alert")[0].find(S.NS + "Data").text == "200"
    # A device that never synced resumes: nothing suspended and no anchors,
    # so the normal sync it falls back to needs a slow sync: 508 (which
    # replaces the 509), and the server alerts slow (201).
    other = new_session(stack)
    a = other.post(other.message(S.alert(1, 225, store, "./" + store, "n3")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["508"], a.body
    assert a.commands("Alert")[0].find(S.NS + "Data").text == "201"


def test_215_noresp_gets_alert_222(stack):
    """A non-final message with NoResp on the header gets no Status at all,
    and the answer asks for the next message with Alert 222."""
    store = "nr-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    msg = sess.message(S.sync(2, store, "./" + store, [("Add", "l1", "a")]), final=False)
    msg = msg.replace(b"</MsgID>", b"</MsgID>", 1).replace(
        b"<Meta><MaxMsgSize", b"<NoResp/><Meta><MaxMsgSize", 1)
    a = sess.post(msg)
    assert a.statuses() == []
    al = a.commands("Alert")
    assert [x.find(S.NS + "Data").text for x in al] == ["222"]
    assert count_items(stack, store) == 1


def test_216_max_guid_size(stack):
    """A device whose DevInf says MaxGUIDSize 3 gets temporary ids (#n) in
    Adds; its Map with them lands on the real GUIDs."""
    store = "guid-" + uuid.uuid4().hex[:8]
    psql(stack, "SELECT setval('memds.item_seq', greatest(nextval('memds.item_seq'), 100000))")
    seed = new_session(stack)
    run_to_sync(seed, store, ["a", "b", "c"])
    seed.post(seed.message(""))
    assert min(len(g) for g in psql(stack, "SELECT guid FROM memds.items WHERE "
                                           "store='%s'" % store).split()) > 3
    sess = new_session(stack)
    devinf = ("<Put><CmdID>1</CmdID><Meta><Type xmlns='syncml:metinf'>application/"
              "vnd.syncml-devinf+xml</Type></Meta><Item><Source><LocURI>./devinf12</LocURI>"
              "</Source><Data><DevInf xmlns='syncml:devinf'><VerDTD>1.2</VerDTD>"
              "<DevID>%s</DevID><DevTyp>phone</DevTyp><DataStore><SourceRef>./%s"
              "</SourceRef><MaxGUIDSize>3</MaxGUIDSize><Rx-Pref><CTType>text/plain</CTType>"
              "<VerCT>1.0</VerCT></Rx-Pref><Tx-Pref><CTType>text/plain</CTType><VerCT>1.0"
              "</VerCT></Tx-Pref><SyncCap><SyncType>1</SyncType></SyncCap></DataStore>"
              "</DevInf></Data></Item></Put>" % (sess.devid, store))
    a = sess.post(sess.message(devinf + S.alert(2, 201, store, "./" + store, "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Put"] == ["200"]
    a = sess.post(sess.message(S.sync(3, store, "./" + store, [])))
    items = a.sync_items()
    assert len(items) == 3 and all(i[1].startswith("#") and len(i[1]) <= 3 for i in items)
    maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>L%d"
                   "</LocURI></Source></MapItem>" % (it[1], n) for n, it in enumerate(items))
    a = sess.post(sess.message("<Map><CmdID>1</CmdID><Target><LocURI>%s</LocURI></Target>"
                               "<Source><LocURI>./%s</LocURI></Source>%s</Map>"
                               % (store, store, maps)))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Map"] == ["200"]
    mapped = psql(stack, "SELECT string_agg(m.guid, ',' ORDER BY m.guid) FROM memds.maps m "
                         "JOIN memds.devices d USING (device_id) WHERE d.devid='%s'" % sess.devid)
    real = psql(stack, "SELECT string_agg(guid, ',' ORDER BY guid) FROM memds.items "
                       "WHERE store='%s'" % store)
    assert mapped == real


def test_217_watchdog_removes_expired_sessions(stack):
    """The mod_watchdog job (every minute) deletes sessions past expires_at,
    with their queues; live sessions stay."""
    store = "exp-" + uuid.uuid4().hex[:8]
    old = new_session(stack)
    old.post(old.message(S.alert(1, 201, store, "./" + store, "n1")))
    live = new_session(stack)
    live.post(live.message(S.alert(1, 201, store, "./" + store, "n1")))
    psql(stack, "UPDATE memds.sessions SET expires_at = now() - interval '1 second' "
                "WHERE token = '%s'" % S.token_of(old.next_url))
    deadline = time.time() + 90
    while time.time() < deadline:
        if psql(stack, "SELECT count(*) FROM memds.sessions WHERE token = '%s'"
                % S.token_of(old.next_url)) == "0":
            break
        time.sleep(2)
    assert psql(stack, "SELECT count(*) FROM memds.sessions WHERE token = '%s'"
                % S.token_of(old.next_url)) == "0"
    assert psql(stack, "SELECT count(*) FROM memds.sessions WHERE token = '%s'"
                % S.token_of(live.next_url)) == "1"
    assert psql(stack, "SELECT count(*) FROM memds.session_stores ss WHERE NOT EXISTS "
                       "(SELECT 1 FROM memds.sessions s WHERE s.session_pk = ss.session_pk)") == "0"


def _filtered_alert(sess, filter_xml, store="Inbox", opened=False):
    """Package 1 whose Alert Target carries a Filter (email-san.md 3.1)."""
    body = ("<Alert><CmdID>1</CmdID><Data>200</Data><Item><Target><LocURI>%s</LocURI>"
            "<Filter><Meta><Type xmlns='syncml:metinf'>application/vnd.omads-email+xml"
            "</Type></Meta>%s</Filter></Target><Source><LocURI>./%s</LocURI></Source>"
            "<Meta><Anchor xmlns='syncml:metinf'><Next>n1</Next></Anchor></Meta></Item>"
            "</Alert>" % (S.esc(store), filter_xml, S.esc(store)))
    a = sess.post(sess.message(body))
    assert a.http_status == 200, a.body
    assert a.hdr_status() == "212"
    assert len(a.commands("Alert")) == (1 if opened else 0)  # a sync opened or not
    return [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"]


def _record(expr, grammar="syncml:filtertype-cgi"):
    return ("<Record><Item><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta>"
            "<Data>%s</Data></Item></Record>" % (grammar, S.esc(expr)))


def test_218_filters_are_refused_never_200(stack):
    """A DS 1.2 Filter on an Alert is never answered 200 and then ignored:
    a mail datastore applies the valid ones (200, docs/filters.md; what they
    do is test_550; a first Alert 200 gets 508 and the slow sync), the items datastore cannot filter (406), an unknown
    field is 406, another grammar 415, a bad one 422; the hand-made filter
    message (a Field with a DevInf Property) is no longer a 400, in XML nor
    in libwbxml's WBXML."""
    url = "http://127.0.0.1:%s/sync" % stack["MEMDS_HTTP_PORT"]
    sess = S.Session(url, "dev-" + uuid.uuid4().hex[:12], "alice", "alice-secret")
    assert _filtered_alert(sess, _record("&LUID;&EQ;4711")
                           + "<FilterType>INCLUSIVE</FilterType>", opened=True) == ["508"]
    for filt, code in [
            (_record("received&GE;20240101T000000Z&AND;received&LT;20250101"), "508"),
            ("<Field><Item><Data><Property xmlns='syncml:devinf'><PropName>emailitem"
             "</PropName><MaxSize>20480</MaxSize></Property></Data></Item></Field>", "508"),
            ("<Field><Item><Data><Property><PropName>subject</PropName></Property>"
             "</Data></Item></Field>", "406"),
            (_record("/Email[read='false']", "syncml:filtertype-xpath"), "415"),
            (_record("SUBJECT&CON;invoice"), "422"),
            (_record("&LUID;&EQ;1") + "<FilterType>MAYBE</FilterType>", "422")]:
        s = S.Session(url, "dev-" + uuid.uuid4().hex[:12], "alice", "alice-secret")
        assert _filtered_alert(s, filt, opened=code == "508") == [code], filt
    s = S.Session(items_url(stack), "dev-" + uuid.uuid4().hex[:12], "alice", "alice-secret")
    assert _filtered_alert(s, _record("received&GE;20240101T000000Z"), "notes") == ["406"]
    # the same Alert without a filter syncs
    s = S.Session(url, "dev-" + uuid.uuid4().hex[:12], "alice", "alice-secret")
    a = s.post(s.message(S.alert(1, 201, "Inbox", "./Inbox", "n1")))
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"]
    assert len(a.commands("Alert")) == 1
    # the hand-made message with two filtered Alerts, XML and WBXML
    for name, wbxml in [("handmade/hm13-client-filter-field.xml", False),
                        ("handmade/hm13-client-filter-field.libwbxml.wbxml", True)]:
        devid = ("fdev-" + uuid.uuid4().hex)[:16].encode()
        body = capture(name).replace(b"corpus-device-13", devid)
        st, hdr, out = stack.post_syncml(body, wbxml=wbxml)
        assert st == 200, out
        if wbxml:
            assert hdr["content-type"].startswith("application/vnd.syncml+wbxml")
            with tempfile.NamedTemporaryFile(suffix=".wbxml") as f:
                f.write(out)
                f.flush()
                out = subprocess.run(["wbxml2xml", "-o", "-", f.name], check=True,
                                     stdout=subprocess.PIPE).stdout
        a = S.Answer(200, hdr, out)
        assert a.hdr_status() == "212", out
        assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["508", "508"]
        assert len(a.commands("Alert")) == 2
