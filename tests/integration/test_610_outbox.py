"""61x: sending mail through the Outbox datastore, exactly once: the real
client's Outbox item reaches bob once and is filed once in alice's Sent;
Bcc recipients get it and no delivered copy names them; a retransmitted
message, a retried Add in a new session, a stopped MTA and a stopped
PostgreSQL all end in exactly one delivery."""
import imaplib
import json
import os
import re
import subprocess
import time
import uuid

import pytest
from xml.sax.saxutils import escape

import syncml as S
from client import Client
from test_510_mail import psql, stats


def outgoing(tag, to="Bob <bob@example.test>", bcc=None):
    msg = ("From: Alice <alice@example.test>\r\nTo: %s\r\n%sSubject: %s\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
           "Hello, this is %s.\r\n" % (to, "Bcc: %s\r\n" % bcc if bcc else "", tag, tag))
    return ("<Email><read>true</read><emailitem>%s</emailitem></Email>"
            % escape(msg).replace("\r", "&#13;"))


def copies(stack, user, password, box, tag, wait=20):
    """Headers of the messages with Subject tag in box (polls a while for
    at least one when wait)."""
    deadline = time.time() + wait
    while True:
        m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
        m.login(user, password)
        m.select(box, readonly=True)
        typ, d = m.search(None, "SUBJECT", '"%s"' % tag)
        out = []
        for i in d[0].split():
            out.append(m.fetch(i, "(BODY.PEEK[HEADER])")[1][0][1])
        m.logout()
        if out or time.time() > deadline:
            return out
        time.sleep(0.3)


def mta_queue(stack):
    """The messages in the stack's Postfix queue (postqueue -j: maildrop,
    incoming, active, deferred, hold), as its JSON objects. The MTA must be
    running (postqueue asks its showq service)."""
    r = subprocess.run(["postqueue", "-c", os.path.join(stack.var, "postfix"), "-j"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=30)
    assert r.returncode == 0, "postqueue -j failed: %s" % r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def settle(stack, _unused=None, timeout=60):
    """Waits until the MTA has nothing left to deliver: Postfix's queue is
    empty, so every message it accepted (the module's SMTP transaction ends
    with the queue file written) has been handed to Dovecot over LMTP and
    delivered (Postfix removes a queue file only after LMTP's 250), or it
    would still be queued. A count taken after this sees every duplicate
    the MTA accepted. Fails when the queue does not empty in timeout s.
    (The second argument is the old fixed sleep's length, no longer used.)"""
    deadline = time.time() + timeout
    while True:
        q = mta_queue(stack)
        if not q:
            return
        assert time.time() < deadline, "the MTA queue did not empty in %d s: %r" % (
            timeout, [(m.get("queue_name"), m.get("queue_id"),
                       [r.get("delay_reason") for r in m.get("recipients", [])])
                      for m in q])
        time.sleep(0.2)


def test_611_real_client_outbox_once_and_sent_once(stack):
    tag = "outbox-" + uuid.uuid4().hex[:8]
    c = Client(stack, typ="raw-email", uri="Outbox")
    c.sync("slow", url=stack["MEMDS_URL"])
    c.put("mail1", outgoing(tag, bcc="Hidden <alice@example.test>").encode())
    c.sync("two-way", url=stack["MEMDS_URL"])
    s = stats(c)
    assert s[4] == 1 and s[2] == 1, c.last_log[-2000:]  # sent; the item left Outbox
    assert c.local() == []
    bob = copies(stack, "bob", "bob-secret", "INBOX", tag)
    hidden = copies(stack, "alice", "alice-secret", "INBOX", tag)
    sent = copies(stack, "alice", "alice-secret", "Sent", tag)
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(bob) == 1 and len(hidden) == 1 and len(sent) == 1
    for h in bob + hidden + sent:
        assert re.search(rb"(?im)^Message-ID: <", h) and re.search(rb"(?im)^Date: ", h)
    for h in bob + hidden:  # what was transmitted names no Bcc recipient
        assert not re.search(rb"(?im)^bcc:", h) and b"Hidden" not in h
    # the sender's own copy in Sent keeps its Bcc, as mail programs do
    assert re.search(rb"(?m)^Bcc: Hidden <alice@example.test>\r$", sent[0])
    assert psql(stack, "SELECT state FROM memds.outbox o JOIN memds.devices d USING "
                       "(device_id) WHERE d.devid = '%s'" % c.devid) == "filed"
    # the next sync changes nothing, and shows the device got the answer
    c.sync("two-way", url=stack["MEMDS_URL"])
    assert stats(c) == [0] * 8
    assert psql(stack, "SELECT state FROM memds.outbox o JOIN memds.devices d USING "
                       "(device_id) WHERE d.devid = '%s'" % c.devid) == "acknowledged"


def _outbox_session(stack, devid, sid, tag, last=None, url=None):
    sess = S.Session(url or stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id=sid)
    a = sess.post(sess.message(S.alert(1, 200 if last else 201, "Outbox", "./outbox",
                                       "n" + sid, last=last)))
    assert a.http_status == 200
    body = ("<Sync><CmdID>2</CmdID><Target><LocURI>Outbox</LocURI></Target><Source>"
            "<LocURI>./outbox</LocURI></Source><Add><CmdID>3</CmdID><Meta><Type "
            "xmlns='syncml:metinf'>application/vnd.omads-email+xml</Type></Meta><Item>"
            "<Source><LocURI>L1</LocURI></Source><Data>%s</Data></Item></Add></Sync>"
            % S.esc(outgoing(tag)))
    return sess, body


def test_612_retransmission_and_retried_add_send_once(stack):
    tag = "retry-" + uuid.uuid4().hex[:8]
    devid = "dev-" + uuid.uuid4().hex[:8]
    sess, body = _outbox_session(stack, devid, "1", tag)
    msg = sess.message(body)
    a1 = sess.post(msg)
    a2 = sess.post(msg)  # the answer was "lost": the same message again
    assert a1.body == a2.body
    assert [s["Data"] for s in a1.statuses() if s["Cmd"] == "Add"] == ["201"]
    # a new session re-sends the same item (the device never saw a Status)
    s2, body2 = _outbox_session(stack, devid, "2", tag)
    a3 = s2.post(s2.message(body2))
    assert [s["Data"] for s in a3.statuses() if s["Cmd"] == "Add"] == ["201"]
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1
    # the server deletes the Outbox item on the device, both times
    assert [(op, tgt) for op, src, tgt, *_ in a1.sync_items()] == [("Delete", "L1")]
    assert [(op, tgt) for op, src, tgt, *_ in a3.sync_items()] == [("Delete", "L1")]


def test_613_mta_down_then_sent_once(stack):
    stack.allow_log(r"not sent yet, retried|Mail server not reachable")
    tag = "mtadown-" + uuid.uuid4().hex[:8]
    devid = "dev-" + uuid.uuid4().hex[:8]
    stack.dev("svc", "mta", "stop")
    try:
        sess, body = _outbox_session(stack, devid, "1", tag)
        a = sess.post(sess.message(body))
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["202"]
        a = sess.post(sess.message(""))
        assert psql(stack, "SELECT state FROM memds.outbox o JOIN memds.devices d USING "
                           "(device_id) WHERE d.devid = '%s'" % devid) == "retrying"
    finally:
        stack.dev("svc", "mta", "start")
    # the retry is due (skip the backoff wait), the next sync sends it
    psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() WHERE state = 'retrying'")
    s2 = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id="2")
    a = s2.post(s2.message(S.alert(1, 200, "Outbox", "./outbox", "n2", last="n1")))
    a = s2.post(s2.message(S.sync(2, "Outbox", "./outbox", [])))
    assert [op for op, *_ in a.sync_items()] == ["Delete"]
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1


def _ledger_state(stack, devid):
    """The Outbox ledger rows of device devid: their states, oldest first."""
    out = psql(stack, "SELECT state FROM memds.outbox o JOIN memds.devices d USING "
                      "(device_id) WHERE d.devid = '%s' ORDER BY outbox_id" % devid)
    return out.split() if out else []


def _admin_psql(stack, sql):
    """sql run in the cluster's maintenance database (postgres), for what a
    connection to memds cannot do (refuse new connections to it)."""
    return subprocess.run(["psql", stack["MEMDS_PG"].replace("dbname=memds", "dbname=postgres"),
                           "-XAtq", "-c", sql], check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


@pytest.mark.parametrize("outage", ["stopped", "ledger"])
def test_614_database_down_nothing_sent_then_once(stack, outage):
    """PostgreSQL fails while a device is in an Outbox session (opened with
    PostgreSQL up): the Add is answered 503, nothing reaches the MTA, and
    the device's retry of the same message once PostgreSQL is back sends it
    exactly once. "stopped": the server is stopped, so the request cannot
    even get its connection (the glue's pool answers, MEMDS00021): the
    session's state cannot be read, nothing runs. "ledger": the request's
    pooled connection lives on but new connections are refused (database
    not accepting connections), so the Outbox datastore cannot open the
    ledger's own connection (its Sync first looks for the device's due
    retries there, then the Add would record the message): 503 from the
    ledger path before any SMTP, and no ledger row exists."""
    stack.allow_log(r"MEMDS00300: PostgreSQL connect failed|MEMDS0002[12]: database|"
                    r"MEMDS00500: database error|outbox ledger|MEMDS0040[8]|MEMDS00410|"
                    r"MEMDS00502")
    tag = "pgdown-%s-%s" % (outage, uuid.uuid4().hex[:8])
    devid = "dev-" + uuid.uuid4().hex[:8]
    if outage == "ledger":
        # fresh children: each request pool holds its MemDSDBMin connections,
        # the ledger pools none (opened when mail is sent); no retry of
        # another test's row falls due meanwhile (the background job would
        # open a ledger connection for it)
        psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() + interval '1 hour' "
                    "WHERE state = 'retrying'")
        stack.graceful()
    for attempt in range(5):
        sess, body = _outbox_session(stack, devid, "1", tag)
        msg = sess.message(body)
        mark = stack.log_mark()
        if outage == "stopped":
            stack.dev("svc", "pg", "stop")
        else:
            _admin_psql(stack, "ALTER DATABASE memds ALLOW_CONNECTIONS false")
        try:
            a = sess.post(msg)
            assert a.http_status == 503, (a.http_status, a.body)
            assert a.headers.get("retry-after") == "30"
            log = stack.log_since(mark)
            if (outage == "ledger" and attempt < 4 and "MEMDS00021" in log
                    and "outbox ledger" not in log):
                # the Add went to a child holding no connection of the
                # session's (the MPM chooses the child: a new TCP
                # connection after the keep-alive ended, as under ASan):
                # the glue answered, which is the "stopped" case; again
                # with a new device until a child with its connection
                # takes it
                devid = "dev-" + uuid.uuid4().hex[:8]
                continue
            if outage == "stopped":
                # the pooled connection is seen dead before use (not at the
                # store's first query), no new one can be had: 503 before the
                # engine runs
                assert "MEMDS00301: dropping a dead PostgreSQL connection" in log, log
                assert "MEMDS00021: database unavailable, answering 503" in log, log
                assert "MEMDS00500" not in log, log
            else:
                # answered by the Outbox datastore: its ledger had no connection
                assert "outbox ledger: no database connection" in log, log
                assert "MEMDS00021" not in log, log
            # nothing reached the MTA, nothing was delivered
            assert mta_queue(stack) == []
            assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0) == []
        finally:
            if outage == "stopped":
                stack.dev("svc", "pg", "start")
            else:
                _admin_psql(stack, "ALTER DATABASE memds ALLOW_CONNECTIONS true")
        break
    # the ledger never recorded the message
    assert _ledger_state(stack, devid) == []
    assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=2) == []
    # the device retries the same message: sent once now
    a = sess.post(msg)
    assert a.http_status == 200, a.body
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201"], a.body
    assert _ledger_state(stack, devid) == ["filed"]
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1


def test_615_invalid_recipient_is_refused(stack):
    stack.allow_log(r"cannot send")
    devid = "dev-" + uuid.uuid4().hex[:8]
    sess = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret")
    sess.post(sess.message(S.alert(1, 201, "Outbox", "./outbox", "n1")))
    body = ("<Sync><CmdID>2</CmdID><Target><LocURI>Outbox</LocURI></Target><Source>"
            "<LocURI>./outbox</LocURI></Source><Add><CmdID>3</CmdID><Item><Source>"
            "<LocURI>L1</LocURI></Source><Data>%s</Data></Item></Add></Sync>"
            % S.esc(outgoing("bad", to="nobody at all")))
    a = sess.post(sess.message(body))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["400"]


@pytest.mark.fault
@pytest.mark.parametrize("point,state,bob,sent", [
    ("outbox-received", "received", 0, 0),
    ("outbox-sent", "submitting", 1, 0),
    ("outbox-filed", "filed", 1, 1)])
def test_616_child_killed_at_each_ledger_step_sends_once(stack, point, state, bob, sent):
    """The httpd child dies (SIGKILL at the named fault point, armed through
    the fault build's arming file: no restart) right after the ledger row is
    stored, right after the SMTP server's 250, and after filing but before
    the answer is committed. The point's line is required and the ledger,
    bob's INBOX and alice's Sent at the kill are what that step means; the
    device retries the same message and the mail is delivered exactly once,
    filed once (test_415 has every step)."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fault"))
    import campaign as F
    stack.allow_log(r"exit signal Killed|child pid \\d+ exit signal|retried while its submission")
    F.ensure_armable(stack)
    tag = "kill-%s-%s" % (point, uuid.uuid4().hex[:6])
    devid = "dev-" + uuid.uuid4().hex[:8]
    sess, body = _outbox_session(stack, devid, "1", tag)
    msg = sess.message(body)
    mark = stack.log_mark()
    F.arm(stack, point)
    try:
        try:
            st = sess.post(msg).http_status
        except Exception:  # noqa: BLE001 (the connection died with the child)
            st = None
    finally:
        left = F.disarm(stack)
    assert st is None and not left
    assert F.fired_line(point) in stack.log_since(mark)
    ledger = psql(stack, "SELECT string_agg(o.state, ',') FROM memds.outbox o JOIN "
                         "memds.devices d ON d.device_id = o.device_id "
                         "WHERE d.devid = '%s'" % devid)
    assert ledger == state
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=15 if bob else 0)) == bob
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == sent
    a = F.post_until_200(sess, msg)
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201"], a.body
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1


def _original_with_attachment(stack, folder, tag):
    """A multipart message with a binary attachment in folder; synced once
    by a real client so that it has a server id. Returns (guid, bytes)."""
    import email.message
    blob = os.urandom(3000) + b"\x00\r\n.\r\n" + os.urandom(500)
    msg = email.message.EmailMessage()
    msg["From"] = "Carol <carol@example.test>"
    msg["To"] = "alice@example.test"
    msg["Subject"] = tag
    msg["Message-ID"] = "<%s@example.test>" % tag
    msg["Date"] = "Mon, 1 Jan 2024 10:00:00 +0000"
    msg.set_content("Dear Alice,\nplease find the report attached.\nCarol\n")
    msg.add_attachment(blob, maintype="application", subtype="octet-stream",
                       filename="report.bin")
    raw = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login("alice", "alice-secret")
    m.create(folder)
    m.append(folder, None, imaplib.Time2Internaldate(time.time()), raw)
    m.logout()
    c = Client(stack, typ="raw-email", uri=folder)
    c.sync("slow", url=stack["MEMDS_URL"])
    guid = psql(stack, "SELECT guid FROM memds.mail_messages WHERE folder = '%s' "
                       "AND NOT deleted" % folder)
    return guid, blob


def _send_smart(stack, header, guid, tag, text):
    msg = ("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
           "Subject: %s\r\n%s: %s\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
           "%s\r\n" % (tag, header, guid, text))
    obj = "<Email><read>true</read><emailitem>%s</emailitem></Email>" % (
        escape(msg).replace("\r", "&#13;"))
    devid = "dev-" + uuid.uuid4().hex[:8]
    sess = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret")
    sess.post(sess.message(S.alert(1, 201, "Outbox", "./outbox", "n1")))
    body = ("<Sync><CmdID>2</CmdID><Target><LocURI>Outbox</LocURI></Target><Source>"
            "<LocURI>./outbox</LocURI></Source><Add><CmdID>3</CmdID><Item><Source>"
            "<LocURI>L1</LocURI></Source><Data>%s</Data></Item></Add></Sync>" % S.esc(obj))
    a = sess.post(sess.message(body))
    return [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"]


def _delivered(stack, tag):
    import email
    from email import policy
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login("bob", "bob-secret")
    deadline = time.time() + 20
    while True:
        m.select("INBOX", readonly=True)
        typ, d = m.search(None, "SUBJECT", '"%s"' % tag)
        if d[0].split() or time.time() > deadline:
            break
        time.sleep(0.3)
    ids = d[0].split()
    assert len(ids) == 1
    raw = m.fetch(ids[0], "(BODY.PEEK[])")[1][0][1]
    m.logout()
    return email.message_from_bytes(raw, policy=policy.default)


def test_617_forward_and_reply_without_download(stack):
    """The device forwards and replies by server id: the original's
    attachment goes out byte for byte and its text quoted, without the
    device ever sending (or having) them; the original is flagged."""
    folder = "Orig" + uuid.uuid4().hex[:6]
    otag = "orig-" + uuid.uuid4().hex[:6]
    guid, blob = _original_with_attachment(stack, folder, otag)
    ftag = "fwd-" + uuid.uuid4().hex[:6]
    assert _send_smart(stack, "X-MemDS-Forward", guid, ftag, "FYI, see below.") == ["201"]
    fwd = _delivered(stack, ftag)
    assert "X-MemDS-Forward" not in fwd
    atts = [p for p in fwd.iter_attachments()]
    assert len(atts) == 1 and atts[0].get_filename() == "report.bin"
    assert atts[0].get_content() == blob
    text = fwd.get_body(preferencelist=("plain",)).get_content()
    assert "FYI, see below." in text and "> please find the report attached." in text
    rtag = "re-" + uuid.uuid4().hex[:6]
    assert _send_smart(stack, "X-MemDS-Reply", guid, rtag, "Thanks, got it.") == ["201"]
    rep = _delivered(stack, rtag)
    assert rep["In-Reply-To"] == "<%s@example.test>" % otag
    body = rep.get_body(preferencelist=("plain",)).get_content()
    assert "Thanks, got it." in body and "> Dear Alice," in body and "wrote:" in body
    assert list(rep.iter_attachments()) == []
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login("alice", "alice-secret")
    m.select(folder, readonly=True)
    flags = m.fetch(b"1", "(FLAGS)")[1][0]
    m.logout()
    assert b"\\Answered" in flags and b"$Forwarded" in flags
    # an unknown id: a clear status, nothing sent
    stack.allow_log(r"does not exist \(any more\)")
    assert _send_smart(stack, "X-MemDS-Reply", "m999999999", "nope", "x") == ["404"]


def _pending_while_the_mta_is_down(stack, prefix, url=None):
    """Add a message to the Outbox while the MTA is down (202, the session
    completed), then start the MTA again. Returns (tag, devid, body)."""
    stack.allow_log(r"not sent yet, retried|Mail server not reachable")
    tag = prefix + uuid.uuid4().hex[:8]
    devid = "dev-" + uuid.uuid4().hex[:8]
    stack.dev("svc", "mta", "stop")
    try:
        sess, body = _outbox_session(stack, devid, "1", tag, url=url)
        a = sess.post(sess.message(body))
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["202"]
        sess.post(sess.message(""))
    finally:
        stack.dev("svc", "mta", "start")
    return tag, devid, body


def _sent_by_the_background_job(stack, prefix, url=None):
    """A message pending while the MTA was down; once its retry is due the
    background job (not a device) sends it to bob once and the ledger row
    ends filed. Returns (tag, devid)."""
    tag, devid, _ = _pending_while_the_mta_is_down(stack, prefix, url)
    psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() WHERE state = 'retrying'")
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=60)) == 1
    assert psql(stack, "SELECT state FROM memds.outbox o JOIN memds.devices d USING "
                       "(device_id) WHERE d.devid = '%s'" % devid) == "filed"
    return tag, devid


def test_618_background_retry_without_the_device(stack):
    """A message that could not be sent (MTA down) is sent by the background
    job once the MTA is back, without the device syncing; the device's next
    sync then deletes its Outbox item."""
    tag, devid = _sent_by_the_background_job(stack, "bg-")
    s2 = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id="2")
    s2.post(s2.message(S.alert(1, 200, "Outbox", "./outbox", "n2", last="n1")))
    a = s2.post(s2.message(S.sync(2, "Outbox", "./outbox", [])))
    assert [op for op, *_ in a.sync_items()] == ["Delete"]
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1


def test_619_outbox_folder_of_the_hierarchical_datastore(stack):
    """In the "email" datastore the Outbox is a folder (role outbox): a
    message added into it is sent once, filed in Sent, and deleted from the
    device's Outbox folder."""
    from test_510_mail import _hier_items, _receive_all, _op
    import xml.etree.ElementTree as ET
    tag = "hier-out-" + uuid.uuid4().hex[:6]
    devid = "dev-" + uuid.uuid4().hex[:8]
    sess = S.Session(stack["MEMDS_URL"], devid, "bob", "bob-secret")
    sess.post(sess.message(S.alert(1, 201, "email", "./email", "n1")))
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(2, "email", "./email", []))))
    outbox = [src for op, src, par, typ, data, _ in got
              if typ == "application/vnd.omads-folder+xml"
              and ET.fromstring(data).findtext("role") == "outbox"]
    assert len(outbox) == 1
    maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                   "</LocURI></Source></MapItem>" % (g, g) for _, g, *_ in got)
    sess.post(sess.message("<Map><CmdID>1</CmdID><Target><LocURI>email</LocURI></Target>"
                           "<Source><LocURI>./email</LocURI></Source>%s</Map>" % maps))
    s2 = S.Session(stack["MEMDS_URL"], devid, "bob", "bob-secret", session_id="2")
    s2.post(s2.message(S.alert(1, 200, "email", "./email", "n2", last="n1")))
    msg = outgoing(tag, to="Alice <alice@example.test>").replace(
        "From: Alice &lt;alice@example.test&gt;", "From: Bob &lt;bob@example.test&gt;")
    ops = _op("Add", 3, "cOut1", "application/vnd.omads-email+xml", msg,
              target_parent=outbox[0])
    a = s2.post(s2.message("<Sync><CmdID>2</CmdID><Target><LocURI>email</LocURI></Target>"
                           "<Source><LocURI>./email</LocURI></Source>%s</Sync>" % ops))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201"], a.body
    got2, a = _receive_all(s2, a)
    assert [(op, par) for op, src, par, *_ in got2 if op == "Delete"] == [("Delete", None)]
    assert len(copies(stack, "alice", "alice-secret", "INBOX", tag)) == 1
    assert len(copies(stack, "bob", "bob-secret", "Sent", tag, wait=0)) == 1


def _fake_smtp(reply_rcpt):
    """A one-trick SMTP server on a free loopback port: every RCPT gets
    reply_rcpt. Returns (port, list of connections seen, stop)."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.5)
    seen = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            seen.append(1)
            f = c.makefile("rwb")
            f.write(b"220 fake ESMTP\r\n")
            f.flush()
            for line in f:
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    f.write(b"250 fake\r\n")
                elif verb == b"MAIL":
                    f.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    f.write(reply_rcpt + b"\r\n")
                elif verb == b"QUIT":
                    f.write(b"221 2.0.0 Bye\r\n")
                    f.flush()
                    break
                else:
                    f.write(b"503 5.5.1 Error\r\n")
                f.flush()
            c.close()
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], seen, stop


def test_620_refused_by_the_smtp_server_goes_to_drafts(stack):
    """A recipient the SMTP server refuses for good (a fake server answers
    550 5.1.1 to RCPT): the device gets the documented status (400), the
    message goes to Drafts with the reason, and a retried Add gets the same
    status without another SMTP attempt."""
    stack.allow_log(r"message refused by the SMTP server|Recipient address rejected")
    port, seen, stop = _fake_smtp(b"550 5.1.1 <nobody@example.test>: User unknown")
    try:
        stack.apply_site("""
MemDSDatabase "{PG}"
<Location /rej>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster %s %s
    MemDSSMTPServer smtp://127.0.0.1:%d
</Location>
""" % (stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"], port))
        url = "http://127.0.0.1:%s/rej" % stack["MEMDS_HTTP_PORT"]
        tag = "rej-" + uuid.uuid4().hex[:8]
        devid = "dev-" + uuid.uuid4().hex[:8]
        sess = S.Session(url, devid, "alice", "alice-secret")
        sess.post(sess.message(S.alert(1, 201, "Outbox", "./outbox", "n1")))
        body = ("<Sync><CmdID>2</CmdID><Target><LocURI>Outbox</LocURI></Target><Source>"
                "<LocURI>./outbox</LocURI></Source><Add><CmdID>3</CmdID><Item><Source>"
                "<LocURI>L1</LocURI></Source><Data>%s</Data></Item></Add></Sync>"
                % S.esc(outgoing(tag, to="Nobody <nobody@example.test>",
                                 bcc="Carol <carol@example.test>")))
        a = sess.post(sess.message(body))
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["400"]
        assert len(seen) == 1
        drafts = copies(stack, "alice", "alice-secret", "Drafts", tag, wait=5)
        assert len(drafts) == 1 and b"X-MemDS-Send-Error: " in drafts[0]
        # back in Drafts whole, Bcc included, for the user to send again
        assert b"\r\nBcc: Carol <carol@example.test>\r\n" in drafts[0]
        # the reason: the SMTP server's reply, as it gave it
        assert re.search(rb"(?m)^X-MemDS-Send-Error: [^\r\n]*550 5\.1\.1 "
                         rb"<nobody@example\.test>: User unknown", drafts[0]), drafts[0]
        assert psql(stack, "SELECT state FROM memds.outbox o JOIN memds.devices d USING "
                           "(device_id) WHERE d.devid = '%s'" % devid) == "rejected"
        s2 = S.Session(url, devid, "alice", "alice-secret", session_id="2")
        s2.post(s2.message(S.alert(1, 201, "Outbox", "./outbox", "n2")))
        a = s2.post(s2.message(body))
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["400"]
        assert len(seen) == 1
    finally:
        stop.set()


@pytest.mark.parametrize("section", ["Location", "Directory"])
def test_621_background_retry_with_settings_from_the_server_level(stack, section):
    """The background job sends with what a sync URL's section inherits from
    the server level (here every mail setting: the section only switches
    the engine on), for a <Location> and for a <Directory> the URL maps to;
    before, it saw the <Location> block alone and never sent."""
    if section == "Location":
        where, path = "/inherited", "/inherited"
    else:
        where = os.path.join(stack.var, "httpd", "htdocs", "dsync")
        os.makedirs(where, exist_ok=True)
        path = "/dsync"
    stack.apply_site("""
MemDSDatabase "{PG}"
MemDSIMAPServer {IMAP}
MemDSIMAPMaster %s %s
MemDSSMTPServer {SMTP}
<%s "%s">
    SetHandler memds-sync
    MemDSEngine On
</%s>
""" % (stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"], section, where, section))
    url = "http://127.0.0.1:%s%s" % (stack["MEMDS_HTTP_PORT"], path)
    tag, _ = _sent_by_the_background_job(stack, "inh-", url=url)
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=5)) == 1


def test_622_one_sender_per_message_at_a_time(stack):
    """Two senders (children, or a child and the background job) that reach
    the same ledger row at once do not both send it: while another database
    connection holds the row's claim (as a sender does for the length of its
    SMTP transaction), neither the device's retried Add nor the background
    job sends; the device is told "pending" (202). When that connection
    ends (as a crashed child's does), the message is sent, once."""
    stack.allow_log(r"being sent by another process")
    tag, devid, body = _pending_while_the_mta_is_down(stack, "claim-")
    oid = int(psql(stack, "SELECT outbox_id FROM memds.outbox o JOIN memds.devices d "
                          "USING (device_id) WHERE d.devid = '%s'" % devid))
    holder = subprocess.Popen(["psql", stack["MEMDS_PG"], "-XAtq"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("SELECT 'held' FROM pg_advisory_lock(%d, %d);\n"
                           % (0x4d440000 + (oid >> 32), oid & 0x7fffffff))
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held"
        mark = stack.log_mark()
        psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() "
                    "WHERE outbox_id = %d" % oid)
        s2, _ = _outbox_session(stack, devid, "2", tag, last="n1")
        a = s2.post(s2.message(body))
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["202"]
        # the device's Add found the claim held, and so did (at least) one
        # run of the background job (every 10 s): each says so once
        held = "MEMDS00405: outbox %d of alice: being sent by another process" % oid
        deadline = time.time() + 30
        while stack.log_since(mark).count(held) < 2:
            assert time.time() < deadline, "the background job never tried: " + \
                stack.log_since(mark)
            time.sleep(0.2)
        assert mta_queue(stack) == []
        assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0) == []
        assert psql(stack, "SELECT state FROM memds.outbox WHERE outbox_id = %d"
                    % oid) == "retrying"
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=60)) == 1
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=5)) == 1


@pytest.mark.parametrize("dbmax", [2, None])
def test_623_every_thread_sending_at_once_no_503(stack, dbmax):
    """ThreadsPerChild (25) devices send at the same moment. Each request
    holds a connection of the request pool for its transaction and needs a
    ledger connection besides (committed on its own before SMTP). Before,
    both came from one pool, so with every connection held by a sender
    each waited for a second one and answered 503; the ledger has its own
    pool now. With MemDSDBMax 2 every child's pool is exhausted for sure;
    with the default (ThreadsPerChild) as it comes. All get 201 and each
    message reaches bob exactly once."""
    import threading
    stack.apply_site("""
MemDSDatabase "{PG}"
%s
<Location /many>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster %s %s
    MemDSSMTPServer {SMTP}
</Location>
""" % ("MemDSDBMax %d" % dbmax if dbmax else "", stack["MEMDS_MASTER_USER"],
       stack["MEMDS_MASTER_PASS"]))
    url = "http://127.0.0.1:%s/many" % stack["MEMDS_HTTP_PORT"]
    n = 25
    run = uuid.uuid4().hex[:6]
    tags = ["many-%s-%02d" % (run, i) for i in range(n)]
    sessions = []
    for i, tag in enumerate(tags):
        sessions.append(_outbox_session(stack, "dev-%s-%02d" % (run, i), "1", tag,
                                        url=url))
    barrier = threading.Barrier(n)
    answers = [None] * n

    def send(i):
        sess, body = sessions[i]
        msg = sess.message(body)
        barrier.wait()
        answers[i] = sess.post(msg)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [a.http_status for a in answers] == [200] * n
    assert [[s["Data"] for s in a.statuses() if s["Cmd"] == "Add"]
            for a in answers] == [["201"]] * n
    for tag in tags:
        assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1, tag
    settle(stack)
    for tag in tags:
        assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1, tag
        assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1, tag
