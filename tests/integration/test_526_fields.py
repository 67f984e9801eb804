"""Issue 15 item 5: the email objects the server builds carry <created>
(the message's Date) and <modified> (the last change the server knows:
arrival, a flag change), in Nokia's order (read, forwarded, replied,
received, created, modified, deleted, flagged, emailitem); what a device
sends in them is accepted and not stored (IMAP has no place for them: the
Date stays the message's own, INTERNALDATE comes from <received>)."""
import imaplib
import time
import uuid
import xml.etree.ElementTree as ET

import syncml as S
from test_510_mail import folder_messages, imap, new_folder
from test_550_filters import Device, item_of


def _fields(obj):
    root = ET.fromstring(obj.encode())
    return [c.tag for c in root], {c.tag: c.text for c in root}


def test_527_created_and_modified(stack):
    folder = new_folder(stack, 1)  # Date: Mon, 1 Jan 2024 10:00:00 +0000
    dev = Device(stack, folder)
    got, _, _ = dev.sync()
    order, f = _fields(got[0][2])
    assert order == ["read", "forwarded", "replied", "received", "created", "modified",
                     "deleted", "flagged", "emailitem"], order
    assert f["created"] == "20240101T100000Z"
    first = f["modified"]
    assert first >= f["received"]
    # a flag change on the server: <modified> moves on
    time.sleep(1.2)
    uid = list(folder_messages(stack, folder).values())[0][0]
    m = imap(stack)
    m.select(folder)
    m.uid("STORE", str(uid), "+FLAGS", r"(\Flagged)")
    m.logout()
    got, _, _ = dev.sync()
    order, f = _fields(got[0][2])
    assert f["flagged"] == "true" and f["modified"] > first, (first, f["modified"])
    assert f["created"] == "20240101T100000Z"


def test_528_device_created_and_modified_are_not_stored(stack):
    folder = new_folder(stack, 0)
    tag = "fld-" + uuid.uuid4().hex[:8]
    msg = ("From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
           "Subject: %s\r\nDate: Tue, 2 Jan 2024 08:00:00 +0000\r\n"
           "Message-ID: <%s@example.test>\r\n\r\nhello\r\n" % (tag, tag))
    obj = ("<Email><read>true</read><received>20240102T080500Z</received>"
           "<created>19990101T000000Z</created><modified>20991231T235959Z</modified>"
           "<emailitem>%s</emailitem></Email>" % S.esc(msg).replace("\r", "&#13;"))
    add = ("<Add><CmdID>4</CmdID><Meta><Type xmlns='syncml:metinf'>"
           "application/vnd.omads-email+xml</Type></Meta><Item><Source><LocURI>d1</LocURI>"
           "</Source><Data>%s</Data></Item></Add>" % S.esc(obj))
    dev = Device(stack, folder)
    got, _, st = dev.sync(ops=[add])
    assert st == "200"
    msgs = folder_messages(stack, folder)
    assert len(msgs) == 1
    raw = list(msgs.values())[0][2]
    assert raw.replace(b"\r\n", b"\n") == msg.encode().replace(b"\r\n", b"\n")
    m = imap(stack)
    m.select(folder, readonly=True)
    typ, data = m.uid("FETCH", "1:*", "(INTERNALDATE)")
    m.logout()
    assert b'"02-Jan-2024 08:05:00 +0000"' in data[0], data
    # another device sees the message's own Date as <created>
    other = Device(stack, folder)
    got, _, _ = other.sync()
    order, f = _fields(got[0][2])
    assert f["created"] == "20240102T080000Z" and f["modified"] < "2099"
