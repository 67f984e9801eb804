"""Issue 11 item 1, no mail is skipped: a mail bigger than the device's
MaxObjSize reaches it truncated from its structure (the header, the first
part of its text cut on a character boundary, a single text part, and an
exact <truncated> list of what was left out) within the budget; the small
mail beside it arrives whole; nothing is logged as not sent; the next sync
sends nothing; a later flag change sends the truncated form again, never
the whole mail. A device that takes no large objects and has a small
MaxMsgSize gets it truncated to what fits a message."""
import base64
import imaplib
import quopri
import re
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

import syncml as S
from test_510_mail import (EMAIL_TYPE, _devinf_put, _hand_two_way, _imap_store,
                           _receive_all, _send_map, folder_messages, imap,
                           new_folder, parse_item)

BUDGET = 20000


class SmallSession(S.Session):
    """A hand-made device with its own MaxObjSize."""

    def __init__(self, *a, max_obj=BUDGET, **kw):
        super().__init__(*a, **kw)
        self.max_obj = max_obj

    def header(self, msg_id, cred=None):
        return super().header(msg_id, cred).replace(
            "<MaxObjSize xmlns='syncml:metinf'>4000000</MaxObjSize>",
            "<MaxObjSize xmlns='syncml:metinf'>%d</MaxObjSize>" % self.max_obj)


TEXT = "Grüße aus Köln – €uro ✓ line %d of the long text.\n"


def big_mail(folder):
    """A multipart/mixed: text/plain (QP, UTF-8) with its HTML twin
    (base64) in a multipart/alternative, and three attachments. Returns the
    message and {section: (type, name, size as stored)}."""
    text = "".join(TEXT % i for i in range(3000))
    qp = quopri.encodestring(text.encode()).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    html = ("<html><body>" + text.replace("\n", "<br>") + "</body></html>").encode()

    def b64(data):
        e = base64.b64encode(data)
        return b"\r\n".join(e[i:i + 76] for i in range(0, len(e), 76))

    hb = b64(html)
    pdf = b64(bytes(range(256)) * 1200)
    jpg = b64(b"\xff\xd8\xff" + bytes(200000))
    txt = b"plain attachment\r\n" * 50
    txt = txt.rstrip(b"\r\n")
    parts = [
        (b"Content-Type: application/pdf; name=\"report.pdf\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n", pdf),
        (b"Content-Type: image/jpeg; name=\"photo.jpg\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: inline; filename=\"photo.jpg\"\r\n", jpg),
        (b"Content-Type: text/plain; charset=us-ascii\r\n"
         b"Content-Disposition: attachment; filename=\"notes.txt\"\r\n", txt),
    ]
    msg = (b"From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
           b"Subject: big one\r\nDate: Mon, 1 Jan 2024 11:00:00 +0000\r\n"
           b"Message-ID: <big-" + folder.encode() + b"@example.test>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
           b"preamble\r\n--outer\r\n"
           b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
           b"--alt\r\nContent-Type: text/plain; charset=UTF-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + qp +
           b"\r\n--alt\r\nContent-Type: text/html; charset=UTF-8\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + hb +
           b"\r\n--alt--\r\n")
    for h, body in parts:
        msg += b"\r\n--outer\r\n" + h + b"\r\n" + body
    msg += b"\r\n--outer--\r\n"
    expect = {
        "body": [("text/plain", len(qp)), ("text/html", len(hb))],
        "attach": [("report.pdf", len(pdf), "application/pdf"),
                   ("photo.jpg", len(jpg), "image/jpeg"),
                   ("notes.txt", len(txt), "text/plain")],
    }
    return msg, text, expect


def check_truncated(obj, text, expect):
    assert len(obj.encode("utf-8")) <= BUDGET, len(obj.encode("utf-8"))
    root = ET.fromstring(obj.encode("utf-8"))
    tr = root.find("truncated")
    assert tr is not None, obj[:300]
    bodies = [(b.findtext("type").lower(), int(b.findtext("size")))
              for b in tr.findall("body")]
    atts = [(a.findtext("name"), int(a.findtext("size")), a.findtext("type").lower())
            for a in tr.findall("attach")]
    assert bodies == expect["body"], bodies
    assert atts == expect["attach"], atts
    item = parse_item(obj.encode("utf-8"))[1]
    head, _, body = item.partition(b"\r\n\r\n")
    assert b"Subject: big one\r\n" in head and b"From: Bob" in head
    assert b"Content-Type: text/plain; charset=UTF-8\r\n" in head
    assert b"Content-Transfer-Encoding: 8bit" in head
    assert b"multipart" not in item and b"report.pdf" not in item
    t = body.decode("utf-8")  # valid UTF-8: cut on a character boundary
    assert len(t) > 5000  # most of the budget is text
    assert text.replace("\n", "\r\n").startswith(t.rstrip("\r\n")), t[-80:]
    return root


def test_541_big_mail_arrives_truncated(stack, monkeypatch):
    folder = new_folder(stack, 1)
    msg, text, expect = big_mail(folder)
    assert len(msg) > 500000
    m = imap(stack)
    assert m.append(folder, None, imaplib.Time2Internaldate(time.time()), msg)[0] == "OK"
    m.logout()
    msgs = folder_messages(stack, folder)
    small = msgs["<%s-0@example.test>" % folder][2]
    devid = "dev-" + uuid.uuid4().hex[:10]
    sess = SmallSession(stack["MEMDS_URL"], devid, "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(2, 201, folder, "./" + folder, "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(3, folder, "./" + folder, []))))
    _send_map(sess, folder, got)
    assert [op for op, *_ in got] == ["Add", "Add"], got
    objs = [g[4] for g in got]
    items = [parse_item(o.encode("utf-8"))[1] for o in objs]
    assert small in items  # the small one whole
    big = [o for o, i in zip(objs, items) if i != small][0]
    check_truncated(big, text, expect)
    # the next sync sends nothing (the same device: its small MaxObjSize)
    monkeypatch.setattr(S, "Session", SmallSession)
    assert _hand_two_way(stack, folder, devid, "n1", "n2") == []
    # a flag change of the big mail: the truncated form again, not the mail
    uid = folder_messages(stack, folder)["<big-%s@example.test>" % folder][0]
    _imap_store(stack, folder, uid, r"(\Flagged)")
    got = _hand_two_way(stack, folder, devid, "n2", "n3")
    assert [op for op, *_ in got] == ["Replace"], got
    root = check_truncated(got[0][4], text, expect)
    assert root.findtext("flagged") == "true"


def test_542_no_large_objects_small_message(stack):
    """A device without large objects (no DevInf) and MaxMsgSize 12000 with
    no MaxObjSize limit to speak of: the big mail is truncated to what fits
    one message."""
    folder = new_folder(stack, 1)
    msg, text, expect = big_mail(folder)
    m = imap(stack)
    assert m.append(folder, None, imaplib.Time2Internaldate(time.time()), msg)[0] == "OK"
    m.logout()
    devid = "dev-" + uuid.uuid4().hex[:10]
    sess = SmallSession(stack["MEMDS_URL"], devid, "alice", "alice-secret",
                        max_msg=12000, max_obj=4000000)
    a = sess.post(sess.message(S.alert(2, 201, folder, "./" + folder, "n1")))
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(3, folder, "./" + folder, []))))
    assert [op for op, *_ in got] == ["Add", "Add"], got
    big = [g[4] for g in got if b"big one" in parse_item(g[4].encode("utf-8"))[1]]
    assert len(big) == 1
    root = ET.fromstring(big[0].encode("utf-8"))
    assert root.find("truncated") is not None
    assert len(big[0].encode("utf-8")) < 12000


def test_543_rfc822_device_gets_the_truncated_message(stack):
    """A device that wants message/rfc822 gets the truncated message itself,
    marked with X-Sync-Message-Limit (so that its copy coming back is a
    flags-only change), within its MaxObjSize."""
    folder = new_folder(stack, 1)
    msg, text, expect = big_mail(folder)
    m = imap(stack)
    assert m.append(folder, None, imaplib.Time2Internaldate(time.time()), msg)[0] == "OK"
    m.logout()
    devid = "dev-" + uuid.uuid4().hex[:10]
    put = _devinf_put(devid, folder, False).replace(EMAIL_TYPE, "message/rfc822")
    sess = SmallSession(stack["MEMDS_URL"], devid, "alice", "alice-secret")
    a = sess.post(sess.message(put + S.alert(2, 201, folder, "./" + folder, "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(3, folder, "./" + folder, []))))
    assert [(op, typ) for op, _, _, typ, *_ in got] == [("Add", "message/rfc822")] * 2, got
    big = [g[4] for g in got if "big one" in g[4]]
    assert len(big) == 1
    data = big[0].encode("utf-8")
    assert len(data) <= BUDGET
    assert data.startswith(b"X-Sync-Message-Limit: %d\r\n" % BUDGET)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Subject: big one\r\n" in head and b"multipart" not in data
    assert text.replace("\n", "\r\n").startswith(body.decode("utf-8").rstrip("\r\n"))


def _hand_sync(stack, folder, session):
    """A fresh hand-made device's slow sync of folder: {Message-ID: the
    email object without its dates} of what it got (all Adds)."""
    sess = session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:10],
                     "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(2, 201, folder, "./" + folder, "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(3, folder, "./" + folder, []))))
    _send_map(sess, folder, got)
    out = {}
    for g in got:
        op, obj = g[0], g[4]
        assert op == "Add", got
        root = ET.fromstring(obj.encode("utf-8"))
        for tag in ("received", "created", "modified"):
            for el in root.findall(tag):
                root.remove(el)
        item = parse_item(obj.encode("utf-8"))[1]
        mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", item).group(1).decode()
        out[mid] = ET.tostring(root)
    return out


@pytest.mark.parametrize("session", [S.Session, SmallSession], ids=["level", "budget"])
def test_544_read_ahead_sends_what_one_at_a_time_sends(stack, session):
    """Issue 14: the mails of one SyncML message are read ahead together
    (rows, levels, bodies, and for the truncated ones structure, header and
    the start of the text in one UID FETCH each); every object is byte for
    byte the one the mail gets when it is alone in its folder (one fetch
    of its own, nothing read ahead), and reading never sets \\Seen. Cut
    at the default level (MemDSTruncate 20K) and by a device's MaxObjSize."""
    mails = []
    for k in range(3):
        msg, _, _ = big_mail("ra%d" % k)
        mails.append(msg.replace(b"Subject: big one", b"Subject: big %d" % k))
    long_text = b"".join(b"plain line %05d of a long mail, just text.\r\n" % i
                         for i in range(1200))  # ~50 KB: cut at the level
    for k in range(3):
        mails.append(b"From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
                     b"Subject: plain %d\r\nDate: Mon, 1 Jan 2024 12:00:00 +0000\r\n"
                     b"Message-ID: <plain-%d-%s@example.test>\r\n\r\n" % (k, k, uuid.uuid4().hex[:6].encode())
                     + long_text[:20000 + 9000 * k])
    for k in range(3):
        mails.append(b"From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
                     b"Subject: small %d\r\nMessage-ID: <small-%d-%s@example.test>\r\n\r\n"
                     b"hello %d\r\n" % (k, k, uuid.uuid4().hex[:6].encode(), k))
    when = imaplib.Time2Internaldate(time.time())
    together = new_folder(stack, 0)
    alone = [new_folder(stack, 0) for _ in mails]
    m = imap(stack)
    for i, msg in enumerate(mails):
        assert m.append(together, None, when, msg)[0] == "OK"
        assert m.append(alone[i], None, when, msg)[0] == "OK"
    m.logout()
    got = _hand_sync(stack, together, session)
    assert len(got) == len(mails), sorted(got)
    for i, f in enumerate(alone):
        one = _hand_sync(stack, f, session)
        assert len(one) == 1
        (mid, obj), = one.items()
        assert got[mid] == obj, (mid, got[mid][:400], obj[:400])
    assert b"<truncated>" in got[next(k for k in got if k.startswith("<big-ra0"))]
    for f in [together] + alone:
        assert all(r"\Seen" not in fl for _, fl, _ in folder_messages(stack, f).values())


def _imap_fetches(stack):
    """IMAP FETCH commands the gateway has sent so far (its metrics)."""
    from test_112_metrics import scrape
    _, h = scrape(stack)
    return h[("memds_imap_command_duration_seconds", (("command", "fetch"),))][0]


@pytest.mark.parametrize("session", [S.Session, SmallSession], ids=["level", "budget"])
def test_545_read_ahead_is_used(stack, session):
    """Issue 14: what is read ahead is what goes: the mails of a message
    come from one UID FETCH of their bodies (and one each for the structure
    and the text of the truncated ones), not from a FETCH per mail after
    it. 16 mails, the first and every fifth cut at the level or the
    device's MaxObjSize, in messages of up to ~150 KB: the fetches are
    counted by the gateway's own metrics."""
    long_text = b"".join(b"plain line %05d of a long mail, just text.\r\n" % i
                         for i in range(1200))
    folder = new_folder(stack, 0)
    when = imaplib.Time2Internaldate(time.time())
    m = imap(stack)
    for k in range(16):
        body = long_text[:24000] if k % 5 == 0 else b"hello %d\r\n" % k * 200
        assert m.append(folder, None, when,
                        b"From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
                        b"Subject: ahead %d\r\nMessage-ID: <ahead-%d-%s@example.test>\r\n\r\n"
                        % (k, k, uuid.uuid4().hex[:6].encode()) + body)[0] == "OK"
    m.logout()
    before = _imap_fetches(stack)
    got = _hand_sync(stack, folder, session)
    fetches = _imap_fetches(stack) - before
    assert len(got) == 16
    # (the folder's scan: a few; then per message one body FETCH and, for
    # truncated mails, two; a FETCH per mail makes 16 more)
    assert fetches <= 10, fetches  # (8 and 5 here; 20 and 17 before)
