"""24x: a session belongs to one account (issue 15 item 1). Credentials of
another account in a later message of a live session (basic or md5, valid
or not) end it with 401: nothing of either mailbox in that answer, the same
refusal for a retransmission, and any other message with its token is
refused. Two real accounts of the stack (alice and bob), hand-made
sessions (tests/integration/syncml.py)."""
import base64
import hashlib
import imaplib
import time
import uuid

import syncml as S

OTHER_ACCOUNT_LOG = r"MEMDS00540"


def imap_append(stack, user, password, tag):
    """One mail in user's Inbox whose subject carries tag."""
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login(user, password)
    raw = ("From: Carol <carol@example.test>\r\nTo: %s@example.test\r\n"
           "Subject: %s\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
           "Message-ID: <%s@example.test>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=UTF-8\r\n\r\nBody of %s.\r\n"
           % (user, tag, tag, tag)).encode()
    assert m.append("INBOX", None, imaplib.Time2Internaldate(time.time()), raw)[0] == "OK"
    m.logout()


def basic_cred(user, password):
    raw = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return ("<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>"
            "<Type xmlns='syncml:metinf'>syncml:auth-basic</Type></Meta>"
            "<Data>%s</Data></Cred>" % raw)


def md5_cred(user, password, nonce=b""):
    inner = base64.b64encode(hashlib.md5(("%s:%s" % (user, password)).encode()).digest())
    digest = base64.b64encode(hashlib.md5(inner + b":" + nonce).digest()).decode()
    return ("<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>"
            "<Type xmlns='syncml:metinf'>syncml:auth-md5</Type></Meta>"
            "<Data>%s</Data></Cred>" % digest)


def open_inbox(stack):
    """alice's slow sync of Inbox at /sync, package 1 accepted."""
    sess = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:12],
                     "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, "Inbox", "./Inbox", "n1")))
    assert a.http_status == 200, a.body
    assert a.hdr_status() in ("200", "212"), a.body
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"], a.body
    assert a.resp_uri and "?s=" in a.resp_uri
    return sess


def assert_refused_bare(a, *tags):
    assert a.http_status == 200, a.body
    assert a.hdr_status() == "401", a.body
    assert {x["Data"] for x in a.statuses()} == {"401"}, a.body
    for cmd in ("Sync", "Alert", "Results", "Put", "Add", "Replace"):
        assert a.commands(cmd) == [], a.body
    assert a.resp_uri is None
    assert a.final
    for tag in tags:
        assert tag.encode() not in a.body, tag


def assert_ended(stack, sess, refused_body, refusal, *tags):
    """The same bytes again: the stored refusal; the next message with the
    token, even with alice's own credentials: refused, nothing in it."""
    again = sess.post(refused_body)
    assert again.body == refusal.body
    a = sess.post(sess.message(S.sync(2, "Inbox", "./Inbox", []),
                               cred=basic_cred("alice", "alice-secret")))
    assert a.http_status == 200, a.body
    assert a.hdr_status() == "400", a.body
    assert a.commands("Sync") == []
    for tag in tags:
        assert tag.encode() not in a.body, tag


def test_241_control_own_credentials_again(stack):
    """alice's own credentials in message 2: her mail comes."""
    tag = "own-" + uuid.uuid4().hex[:10]
    imap_append(stack, "alice", "alice-secret", tag)
    sess = open_inbox(stack)
    a = sess.post(sess.message(S.sync(2, "Inbox", "./Inbox", []),
                               cred=basic_cred("alice", "alice-secret")))
    assert a.hdr_status() == "200", a.body
    assert a.commands("Sync"), a.body
    assert tag.encode() in a.body


def test_242_other_account_basic_ends_session(stack):
    """bob's valid basic credentials in message 2 of alice's Inbox session:
    401, nothing of bob's nor alice's mail, the session ended."""
    stack.allow_log(OTHER_ACCOUNT_LOG)
    tag_a = "alice-" + uuid.uuid4().hex[:10]
    tag_b = "bob-" + uuid.uuid4().hex[:10]
    imap_append(stack, "alice", "alice-secret", tag_a)
    imap_append(stack, "bob", "bob-secret", tag_b)
    sess = open_inbox(stack)
    mark = stack.log_mark()
    sess.user = "bob"
    body = sess.message(S.sync(2, "Inbox", "./Inbox", []),
                        cred=basic_cred("bob", "bob-secret"))
    a = sess.post(body)
    assert_refused_bare(a, tag_a, tag_b)
    lines = [x for x in stack.log_since(mark).splitlines() if "MEMDS00540" in x]
    assert len(lines) == 1 and "account alice" in lines[0] and "(bob)" in lines[0], lines
    sess.user = "alice"
    assert_ended(stack, sess, body, a, tag_a, tag_b)


def test_243_other_account_md5_and_wrong_password(stack):
    """The same with md5 credentials naming bob (LocName), and with bob's
    basic credentials carrying a wrong password."""
    stack.allow_log(OTHER_ACCOUNT_LOG)
    tag_a = "alice-" + uuid.uuid4().hex[:10]
    tag_b = "bob-" + uuid.uuid4().hex[:10]
    imap_append(stack, "alice", "alice-secret", tag_a)
    imap_append(stack, "bob", "bob-secret", tag_b)
    for cred in (md5_cred("bob", "bob-secret"), basic_cred("bob", "not-his")):
        sess = open_inbox(stack)
        sess.user = "bob"
        body = sess.message(S.sync(2, "Inbox", "./Inbox", []), cred=cred)
        a = sess.post(body)
        assert_refused_bare(a, tag_a, tag_b)
        sess.user = "alice"
        assert_ended(stack, sess, body, a, tag_a, tag_b)
