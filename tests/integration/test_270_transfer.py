"""Item data that XML cannot carry as it is, both ways: a device's large
object whose CRLFs the XML parser turned into LF (its chunks add up to
less than the Size it announced), a device's item sent base64 (Meta Format
b64), and raw 8-bit mail the server sends as message/rfc822 over XML (as
base64 with Format b64; WBXML carries the bytes themselves)."""
import base64
import imaplib
import time
import uuid

import syncml as S
from test_200_protocol import items_url, psql
from test_510_mail import imap, new_folder
from test_550_filters import falert, receive


def _open(stack, store):
    sess = S.Session(items_url(stack), "dev-" + uuid.uuid4().hex[:12], "alice",
                     "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    assert a.hdr_status() == "212"
    return sess


def _op(cmd_id, luid, data, size=None, more=False, fmt=None):
    meta = "<Type xmlns='syncml:metinf'>text/plain</Type>"
    if fmt:
        meta += "<Format xmlns='syncml:metinf'>%s</Format>" % fmt
    if size is not None:
        meta += "<Size xmlns='syncml:metinf'>%d</Size>" % size
    return ("<Add><CmdID>%d</CmdID><Meta>%s</Meta><Item><Source><LocURI>%s</LocURI>"
            "</Source><Data>%s</Data>%s</Item></Add>"
            % (cmd_id, meta, luid, data, "<MoreData/>" if more else ""))


def _sync(store, ops):
    return ("<Sync><CmdID>2</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>"
            "./%s</LocURI></Source>%s</Sync>" % (store, store, "".join(ops)))


def _stored(stack, store):
    return psql(stack, "SELECT encode(data, 'hex') FROM memds.items WHERE store = '%s' "
                       "AND NOT deleted" % store)


def test_271_large_object_with_crlf_over_xml(stack):
    store = "crlf-" + uuid.uuid4().hex[:8]
    sess = _open(stack, store)
    text = b"line one\r\nline two\r\nline three\r\n" * 40
    half = len(text) // 2
    # raw CRs in XML text: the parser makes every CRLF a LF
    a = sess.post(sess.message(_sync(store, [_op(3, "big1", S.esc(text[:half].decode()),
                                                 size=len(text), more=True)]), final=False))
    st = [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"]
    assert st == ["213"], a.body
    a = sess.post(sess.message(_sync(store, [_op(3, "big1", S.esc(text[half:].decode()))])))
    st = [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"]
    assert st == ["201"], a.body
    assert bytes.fromhex(_stored(stack, store)) == text
    # a real mismatch is still 424
    store2 = "crlf-" + uuid.uuid4().hex[:8]
    sess = _open(stack, store2)
    sess.post(sess.message(_sync(store2, [_op(3, "b", "abc", size=10, more=True)]),
                           final=False))
    a = sess.post(sess.message(_sync(store2, [_op(3, "b", "de")])))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["424"]


def test_272_device_item_in_base64(stack):
    store = "b64-" + uuid.uuid4().hex[:8]
    sess = _open(stack, store)
    raw = bytes(range(1, 256)) + b"\x00\xff end"
    enc = base64.b64encode(raw).decode()
    enc = "\n".join(enc[i:i + 60] for i in range(0, len(enc), 60))
    a = sess.post(sess.message(_sync(store, [_op(3, "bin1", enc, fmt="b64"),
                                             _op(4, "bad1", "not*base64!", fmt="b64")])))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201", "400"]
    assert bytes.fromhex(_stored(stack, store)) == raw


def test_273_eight_bit_rfc822_over_xml_goes_base64(stack):
    folder = new_folder(stack, 0)
    raw = (b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
           b"Subject: Gr\xfc\xdfe\r\nMessage-ID: <x8-" + folder.encode() + b"@example.test>\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\nSch\xf6ne Gr\xfc\xdfe.\r\n")
    m = imap(stack)
    assert m.append(folder, None, imaplib.Time2Internaldate(time.time()), raw)[0] == "OK"
    m.logout()
    sess = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:10], "alice",
                     "alice-secret")
    sess.post(sess.message(falert(201, folder, "n1")))
    a = sess.post(sess.message(
        "<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>./%s"
        "</LocURI></Source></Sync>" % (folder, folder)))
    assert b"<Format xmlns=\"syncml:metinf\">b64</Format>" in a.body \
        or b"<Format xmlns='syncml:metinf'>b64</Format>" in a.body \
        or b">b64</Format>" in a.body, a.body[:600]
    got, _, a, sts = receive(sess, a)
    assert len(got) == 1
    assert base64.b64decode(got[0][2]) == raw
