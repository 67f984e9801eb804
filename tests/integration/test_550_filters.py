"""Issue 11 items 1-3: bounded downloads on the real stack (Dovecot,
PostgreSQL, httpd with the module), with hand-made devices.

- the default truncation (MemDSTruncate 20K): a 5 MB mail with three
  attachments beside small mail reaches the device as its header and 20 KB
  of text with an exact <truncated>; the small mail whole; the next sync
  sends nothing;
- get-more (an INCLUSIVE filter with &LUID; and an emailitem field clause)
  sends that mail again whole, byte-equal to IMAP, as a large object over
  several messages of a small MaxMsgSize, and nothing else; one attachment
  on demand, byte-equal;
- libsynthesis' get-more (a Replace of its copy with a larger
  X-Sync-Message-Limit);
- DS 1.2 filters: a date window (EXCLUSIVE) moving forward soft-deletes old
  mail on the device and nothing on IMAP, moving back adds it again;
  INCLUSIVE adds once; MAXCOUNT; the refusals; DevInf's FilterCap;
- the administrator's limits: MemDSMaxAge, MemDSMaxItems,
  MemDSExcludeFolder, MemDSTruncate Off and the account setting."""
import base64
import email
import email.policy
import imaplib
import os
import re
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import syncml as S
from test_510_mail import (EMAIL_TYPE, folder_messages, imap, message, new_folder,
                           parse_item)
from test_540_truncation import SmallSession

NS = S.NS
DAY = 86400
BASE_T = 1700000000  # 2023-11-14


def psql(stack, sql):
    cmd = ["psql", stack["MEMDS_PG"], "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def big5(tag):
    """A ~5 MB multipart/mixed: a UTF-8 text part (60 KB) and three
    attachments (report.pdf ~3.4 MB, photo.jpg ~1.6 MB, notes.txt)."""
    text = "".join("Zeile %05d: Grüße aus Köln, €uro ✓ – the long text.\r\n" % i
                   for i in range(1100))

    def b64(data):
        e = base64.b64encode(data)
        return b"\r\n".join(e[i:i + 76] for i in range(0, len(e), 76))

    pdf_raw = bytes((i * 7 + 3) % 256 for i in range(2500000))
    jpg_raw = b"\xff\xd8\xff" + bytes((i * 13) % 251 for i in range(1200000))
    notes = b"plain attachment line\r\n" * 40
    msg = (b"From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
           b"Subject: five megabytes\r\nDate: Mon, 1 Jan 2024 11:00:00 +0000\r\n"
           b"Message-ID: <" + tag.encode() + b"@example.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
           b"Content-Type: text/plain; charset=UTF-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text.encode() +
           b"\r\n--b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n"
           + b64(pdf_raw) +
           b"\r\n--b1\r\nContent-Type: image/jpeg; name=\"photo.jpg\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=\"photo.jpg\"\r\n\r\n"
           + b64(jpg_raw) +
           b"\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii; name=\"notes.txt\"\r\n"
           b"Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\n"
           + notes + b"\r\n--b1--\r\n")
    return msg, text, {"report.pdf": pdf_raw, "photo.jpg": jpg_raw, "notes.txt": notes}


def append(stack, folder, msg, when=None):
    m = imap(stack)
    t = imaplib.Time2Internaldate(when if when is not None else time.time())
    assert m.append(folder, None, t, msg)[0] == "OK"
    m.logout()


def items_of(a):
    """Every item command of the answer's Syncs: dicts with op, src, tgt,
    data, cmdid, more (MoreData), size (Meta Size), sftdel, type."""
    out = []
    for sync in a.commands("Sync"):
        for op in sync:
            tag = op.tag.replace(NS, "")
            if tag not in ("Add", "Replace", "Delete"):
                continue
            typ = op.find(NS + "Meta/" + S.MI + "Type")
            for it in op.findall(NS + "Item"):
                src = it.find(NS + "Source/" + NS + "LocURI")
                tgt = it.find(NS + "Target/" + NS + "LocURI")
                data = it.find(NS + "Data")
                size = it.find(NS + "Meta/" + S.MI + "Size")
                if size is None:
                    size = op.find(NS + "Meta/" + S.MI + "Size")
                out.append({"op": tag, "src": src.text if src is not None else None,
                            "tgt": tgt.text if tgt is not None else None,
                            "data": data.text if data is not None else "",
                            "cmdid": op.find(NS + "CmdID").text,
                            "more": it.find(NS + "MoreData") is not None,
                            "size": int(size.text) if size is not None else None,
                            "sftdel": op.find(NS + "SftDel") is not None,
                            "type": typ.text if typ is not None else None})
    return out


def receive(sess, a):
    """Answer the server's package 4 until Final (213 for chunks, 201/200
    otherwise): [(op, server id or LUID, data joined, sftdel)], the number
    of messages it took, and the last answer."""
    got, partial, msgs = [], None, 1
    while True:
        its = items_of(a)
        sts = []
        for i, it in enumerate(its):
            key = it["src"] if it["op"] == "Add" else it["tgt"]
            if partial is None:
                partial = dict(it)
            else:
                partial["data"] += it["data"]
            code = "213" if it["more"] else ("201" if it["op"] == "Add" else "200")
            sts.append(S.status(i + 1, a.hdr("MsgID").text, it["cmdid"], it["op"], code,
                                source_ref=it["src"], target_ref=it["tgt"]))
            if not it["more"]:
                got.append((partial["op"], key, partial["data"], partial["sftdel"],
                            partial.get("size")))
                partial = None
        if a.final and partial is None:
            return got, msgs, a, "".join(sts)
        body = "".join(sts)
        body += ("<Alert><CmdID>%d</CmdID><Data>222</Data><Item><Target><LocURI>%s"
                 "</LocURI></Target><Source><LocURI>dev</LocURI></Source></Item></Alert>"
                 % (len(sts) + 1, S.esc(sess.url)))
        a = sess.post(sess.message(body, final=False))
        msgs += 1


def filt(record=None, field=None, ftype=None):
    """A Filter element (XML) for the email type."""
    x = "<Filter><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta>" % EMAIL_TYPE
    if field:
        x += ("<Field><Item><Meta><Type xmlns='syncml:metinf'>application/"
              "vnd.syncml-devinf+xml</Type></Meta><Data><Property xmlns='syncml:devinf'>"
              "%s</Property></Data></Item></Field>" % field)
    if record:
        x += ("<Record><Item><Meta><Type xmlns='syncml:metinf'>syncml:filtertype-cgi"
              "</Type></Meta><Data>%s</Data></Item></Record>" % S.esc(record))
    if ftype:
        x += "<FilterType>%s</FilterType>" % ftype
    return x + "</Filter>"


def falert(code, folder, n, last=None, flt=""):
    return ("<Alert><CmdID>2</CmdID><Data>%d</Data><Item><Target><LocURI>%s</LocURI>%s"
            "</Target><Source><LocURI>./%s</LocURI></Source><Meta><Anchor "
            "xmlns='syncml:metinf'>%s<Next>%s</Next></Anchor></Meta></Item></Alert>"
            % (code, S.esc(folder), flt, S.esc(folder),
               "<Last>%s</Last>" % last if last else "", n))


def devinf_put(devid, folder):
    """A DevInf 1.2 Put: large objects, the email type, no FieldLevel."""
    return ("<Put><CmdID>1</CmdID><Meta><Type xmlns='syncml:metinf'>application/"
            "vnd.syncml-devinf+xml</Type></Meta><Item><Source><LocURI>./devinf12</LocURI>"
            "</Source><Data><DevInf xmlns='syncml:devinf'><VerDTD>1.2</VerDTD>"
            "<DevID>%s</DevID><DevTyp>phone</DevTyp><SupportLargeObjs/>"
            "<DataStore><SourceRef>./%s</SourceRef><Rx-Pref><CTType>%s</CTType>"
            "<VerCT>1.2</VerCT></Rx-Pref><Tx-Pref><CTType>%s</CTType><VerCT>1.2</VerCT>"
            "</Tx-Pref><SyncCap><SyncType>1</SyncType><SyncType>2</SyncType></SyncCap>"
            "</DataStore></DevInf></Data></Item></Put>"
            % (S.esc(devid), S.esc(folder), EMAIL_TYPE, EMAIL_TYPE))


class Device:
    """A hand-made device that keeps its anchors and maps its items with
    LUIDs "c" + server id."""

    def __init__(self, stack, folder, max_msg=150000, max_obj=4000000, url=None):
        self.stack, self.folder = stack, folder
        self.devid = "dev-" + uuid.uuid4().hex[:10]
        self.max_msg, self.max_obj = max_msg, max_obj
        self.url = url or stack["MEMDS_URL"]
        self.last = None
        self.n = 0
        self.held = {}  # luid -> data
        self.put = devinf_put

    def sync(self, flt="", ops=(), expect="200"):
        """One session: Alert (200 with the anchors, 201 the first time),
        the device's Sync (ops), the server's changes (Map sent for Adds).
        Returns (got, number of messages of package 4, alert status)."""
        self.n += 1
        nxt = "n%d" % self.n
        sess = SmallSession(self.url, self.devid, "alice", "alice-secret",
                            session_id=str(self.n), max_msg=self.max_msg,
                            max_obj=self.max_obj)
        code = 200 if self.last else 201
        put = self.put(self.devid, self.folder) if self.n == 1 else ""
        a = sess.post(sess.message(put + falert(code, self.folder, nxt, self.last, flt)))
        st = [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"]
        if st != [expect]:
            return None, 0, st[0] if st else None
        body = "<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source>" \
               "<LocURI>./%s</LocURI></Source>%s</Sync>" % (S.esc(self.folder),
                                                             S.esc(self.folder), "".join(ops))
        got, msgs, a, sts = receive(sess, sess.post(sess.message(body)))
        maps = ""
        for op, key, data, sftdel, _ in got:
            if op == "Add":
                self.held["c" + key] = data
                maps += ("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                         "</LocURI></Source></MapItem>" % (key, key))
            elif op == "Replace":
                self.held[key] = data
            elif op == "Delete":
                self.held.pop(key, None)
        n = len(sts.split("<Status>")) if sts else 1
        body = sts
        if maps:
            body += ("<Map><CmdID>%d</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
                     "<LocURI>./%s</LocURI></Source>%s</Map>"
                     % (n + 1, S.esc(self.folder), S.esc(self.folder), maps))
        a = sess.post(sess.message(body))
        assert a.http_status == 200
        self.last = nxt
        return got, msgs, "200"


def item_of(obj):
    return parse_item(obj.encode("utf-8"))[1]


def raw_part(msg, name):
    """The decoded bytes of the attachment called name in msg."""
    m = email.message_from_bytes(msg, policy=email.policy.default)
    for part in m.walk():
        if part.get_filename() == name:
            return part.get_payload(decode=True)
    return None


# ----------------------------------------------------------------- tests

def test_551_default_truncation_and_get_more(stack):
    folder = new_folder(stack, 2)
    tag = "five-" + uuid.uuid4().hex[:8]
    msg, text, atts = big5(tag)
    assert len(msg) > 5000000
    append(stack, folder, msg)
    imap_msgs = folder_messages(stack, folder)
    whole = imap_msgs["<%s@example.test>" % tag][2]
    dev = Device(stack, folder, max_obj=8000000)
    got, _, _ = dev.sync()
    assert sorted(op for op, *_ in got) == ["Add"] * 3, got
    by_id = {k: d for _, k, d, _, _ in got}
    smalls = [item_of(d) for d in by_id.values() if b"five megabytes" not in item_of(d)]
    assert sorted(smalls) == sorted(v[2] for k, v in imap_msgs.items() if k != "<%s@example.test>" % tag)
    big_id, big = [(k, d) for k, d in by_id.items() if b"five megabytes" in item_of(d)][0]
    assert len(big.encode()) < 30000, len(big)
    root = ET.fromstring(big.encode())
    tr = root.find("truncated")
    assert [(b.findtext("type"), int(b.findtext("size"))) for b in tr.findall("body")] == \
        [("text/plain", len(text.encode()))]
    assert [(x.findtext("name"), x.findtext("type")) for x in tr.findall("attach")] == \
        [("report.pdf", "application/pdf"), ("photo.jpg", "image/jpeg"),
         ("notes.txt", "text/plain")]
    head, _, body = item_of(big).partition(b"\r\n\r\n")
    assert b"Subject: five megabytes" in head
    assert 15000 < len(body) <= 20482 and text.encode().startswith(body.rstrip(b"\r\n"))
    # the next sync sends nothing
    got, _, _ = dev.sync()
    assert got == []
    # the level is recorded per device and message
    lv = psql(stack, "SELECT level FROM memds.mail_levels l JOIN memds.devices d USING "
                     "(device_id) WHERE d.devid = '%s' ORDER BY level" % dev.devid)
    assert lv.split("\n") == ["w=0;t=20480;a=0", "whole", "whole"], lv
    # get-more: the whole mail again (large object, small MaxMsgSize), only it
    dev.max_msg = 400000
    f = filt("&LUID;&EQ;c" + big_id,
             "<PropName>emailitem</PropName><PropParam><ParamName>texttype</ParamName>"
             "</PropParam><PropParam><ParamName>attachtype</ParamName></PropParam>",
             "INCLUSIVE")
    got, msgs, st = dev.sync(flt=f)
    assert st == "200"
    assert [(op, k) for op, k, *_ in got] == [("Replace", "c" + big_id)], got
    assert msgs >= 10, msgs  # ~5 MB in 400 KB messages
    assert item_of(got[0][2]) == whole  # byte-equal to IMAP
    assert ET.fromstring(got[0][2].encode()).find("truncated") is None
    # nothing is re-sent afterwards
    got, _, _ = dev.sync()
    assert got == []
    # one attachment on demand, by name, byte-equal
    dev2 = Device(stack, folder, max_obj=8000000)
    got, _, _ = dev2.sync()
    f = filt("&LUID&iEQ;c" + big_id,
             "<PropName>emailitem</PropName><PropParam><ParamName>attachtype</ParamName>"
             "<ValEnum>notes.txt</ValEnum></PropParam>", "INCLUSIVE")
    got, _, st = dev2.sync(flt=f)
    assert [(op, k) for op, k, *_ in got] == [("Replace", "c" + big_id)], got
    obj = got[0][2]
    m = item_of(obj)
    assert raw_part(m, "notes.txt") == atts["notes.txt"]
    assert b"five megabytes" in m and b"multipart/mixed" in m
    tr = ET.fromstring(obj.encode()).find("truncated")
    assert [x.findtext("name") for x in tr.findall("attach")] == ["report.pdf", "photo.jpg"]
    f = filt("&LUID;&EQ;c" + big_id,
             "<PropName>emailitem</PropName><PropParam><ParamName>attachtype</ParamName>"
             "<ValEnum>report.pdf</ValEnum></PropParam>", "INCLUSIVE")
    got, _, st = dev2.sync(flt=f)
    assert raw_part(item_of(got[0][2]), "report.pdf") == atts["report.pdf"]
    # nothing changed on IMAP
    assert folder_messages(stack, folder)["<%s@example.test>" % tag][2] == whole


def test_552_synthesis_get_more_replace_with_larger_limit(stack):
    """A message/rfc822 device sends its copy back with
    X-Sync-Message-Limit: -1: the next sync brings the whole message."""
    folder = new_folder(stack, 1, size=60000)  # 60 KB of text
    whole = list(folder_messages(stack, folder).values())[0][2]
    dev = Device(stack, folder, max_obj=8000000, max_msg=1000000)
    # prefers message/rfc822 (DevInf Put in the first session)
    from test_510_mail import _devinf_put
    put = _devinf_put(dev.devid, folder, False).replace(EMAIL_TYPE, "message/rfc822")
    sess = SmallSession(dev.url, dev.devid, "alice", "alice-secret", max_obj=8000000,
                        max_msg=1000000)
    a = sess.post(sess.message(put + falert(201, folder, "n1")))
    got, _, a, sts = receive(sess, sess.post(sess.message(
        "<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>./%s"
        "</LocURI></Source></Sync>" % (folder, folder))))
    assert len(got) == 1 and got[0][2].startswith("X-Sync-Message-Limit: 20480\r\n")
    key = got[0][1]
    sess.post(sess.message(sts + "<Map><CmdID>9</CmdID><Target><LocURI>%s</LocURI></Target>"
                           "<Source><LocURI>./%s</LocURI></Source><MapItem><Target><LocURI>"
                           "%s</LocURI></Target><Source><LocURI>c%s</LocURI></Source>"
                           "</MapItem></Map>" % (folder, folder, key, key)))
    dev.last, dev.n = "n1", 1
    copy = got[0][2].replace("X-Sync-Message-Limit: 20480", "X-Sync-Message-Limit: -1")
    rep = ("<Replace><CmdID>4</CmdID><Meta><Type xmlns='syncml:metinf'>message/rfc822"
           "</Type></Meta><Item><Source><LocURI>c%s</LocURI></Source><Data>%s</Data>"
           "</Item></Replace>" % (key, S.esc(copy)))
    got, _, _ = dev.sync(ops=[rep])
    assert [(op, k) for op, k, *_ in got] == [("Replace", "c" + key)], got
    assert got[0][2].encode("utf-8").replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") \
        == whole.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    # IMAP unchanged
    assert list(folder_messages(stack, folder).values())[0][2] == whole


def test_553_date_window_exclusive_inclusive(stack):
    folder = new_folder(stack, 0)
    for d in range(5):  # received BASE + 0..4 days
        append(stack, folder, message(folder, d), when=BASE_T + d * DAY + 3600)
    dates = {}
    for mid, (uid, fl, raw) in folder_messages(stack, folder).items():
        dates[int(mid.split("-")[-1].split("@")[0])] = mid

    def ts(t):
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))

    dev = Device(stack, folder)
    got, _, _ = dev.sync(flt=filt("received&GE;" + ts(BASE_T + 2 * DAY)))
    subj = sorted(re.search(rb"Subject: \S+ (\d)", item_of(d)).group(1) for _, _, d, _, _ in got)
    assert subj == [b"2", b"3", b"4"], got
    # the window moves forward: 2 leaves the device (SftDel), IMAP keeps it
    got, _, _ = dev.sync(flt=filt("received&GE;" + ts(BASE_T + 3 * DAY)))
    assert [(op, sd) for op, _, _, sd, _ in got] == [("Delete", True)], got
    assert len(folder_messages(stack, folder)) == 5
    # unchanged window: nothing
    got, _, _ = dev.sync(flt=filt("received&GE;" + ts(BASE_T + 3 * DAY)))
    assert got == []
    # back: 1 and 2 enter the window and are added
    got, _, _ = dev.sync(flt=filt("SINCE&EQ;" + ts(BASE_T + DAY)))
    subj = sorted(re.search(rb"Subject: \S+ (\d)", item_of(d)).group(1) for _, _, d, _, _ in got)
    assert [op for op, *_ in got] == ["Add", "Add"] and subj == [b"1", b"2"], got
    # INCLUSIVE: 0 added once, nothing deleted; the set stays [1, 4]
    got, _, _ = dev.sync(flt=filt("received&LT;" + ts(BASE_T + DAY), ftype="INCLUSIVE"))
    assert [op for op, *_ in got] == ["Add"] and b" 0\r\n" in item_of(got[0][2]), got
    # the next EXCLUSIVE sync with the old window soft-deletes it again
    got, _, _ = dev.sync(flt=filt("SINCE&EQ;" + ts(BASE_T + DAY)))
    assert [(op, sd) for op, _, _, sd, _ in got] == [("Delete", True)], got
    # an upper bound and MAXCOUNT: the newest 2 of [1, 3]
    got, _, _ = dev.sync(flt=filt("SINCE&EQ;%s&AND;BEFORE&EQ;%s&AND;MAXCOUNT&EQ;2"
                                  % (ts(BASE_T + DAY), ts(BASE_T + 4 * DAY))))
    assert sorted((op, sd) for op, _, _, sd, _ in got) == [("Delete", True)] * 2, got
    # no filter: everything the device lacks comes back
    got, _, _ = dev.sync()
    assert sorted(op for op, *_ in got) == ["Add"] * 3, got
    assert len(dev.held) == 5
    assert len(folder_messages(stack, folder)) == 5


def test_554_refusals_and_devinf(stack):
    folder = new_folder(stack, 1)
    dev = Device(stack, folder)
    for f, code in [
            (filt("received&OR;x"), "422"),
            (filt("received&GE;20240101", ftype="SOMETIMES"), "422"),
            (filt("&LUID;&EQ;c1", ftype="INCLUSIVE").replace(
                "syncml:filtertype-cgi", "syncml:filtertype-xpath"), "415"),
            (filt(field="<PropName>subject</PropName>"), "406"),
            (filt("MAXCOUNT&EQ;3", ftype="INCLUSIVE"), "406")]:
        got, _, st = dev.sync(flt=f, expect="200")
        assert st == code, (f, st)
    # the Outbox cannot be filtered
    ob = Device(stack, "Outbox")
    got, _, st = ob.sync(flt=filt("received&GE;20240101"))
    assert st == "406"
    # DevInf: Filter-Rx and FilterCap for a mail folder, not for the Outbox
    sess = S.Session(stack["MEMDS_URL"], dev.devid, "alice", "alice-secret")
    a = sess.post(sess.message(
        falert(201, folder, "x1") + falert(201, "Outbox", "x1").replace(
            "<CmdID>2</CmdID>", "<CmdID>3</CmdID>") +
        "<Get><CmdID>4</CmdID><Meta><Type xmlns='syncml:metinf'>application/"
        "vnd.syncml-devinf+xml</Type></Meta><Item><Target><LocURI>./devinf12</LocURI>"
        "</Target></Item></Get>"))
    xml = a.body.decode()
    stores = re.findall(r"<DataStore>(.*?)</DataStore>", xml, re.S)
    mine = [s for s in stores if folder in s][0]
    outbox = [s for s in stores if "Outbox" in s][0]
    assert "<Filter-Rx><CTType>syncml:filtertype-cgi</CTType>" in mine
    for k in ("SINCE", "BEFORE", "MAXSIZE", "NOATT", "MAXCOUNT"):
        assert "<FilterKeyword>%s</FilterKeyword>" % k in mine
    assert "<PropName>emailitem</PropName>" in mine
    assert "Filter" not in outbox


def _site(extra):
    return """
MemDSDatabase "{PG}"
<Location /lim>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster memds-master master-secret
    %s
</Location>
""" % extra


def test_555_administrator_limits(stack):
    stack.apply_site(_site("MemDSMaxAge 3\n    MemDSMaxItems 2\n"
                           "    MemDSExcludeFolder Secret \"Old Stuff\"\n"
                           "    MemDSTruncate Off"))
    url = "http://127.0.0.1:%s/lim" % stack["MEMDS_HTTP_PORT"]
    folder = new_folder(stack, 0)
    now = time.time()
    for d in (10, 2, 1, 0.5, 0):  # days ago
        append(stack, folder, message(folder, int(d * 10) % 60, 30000), when=now - d * DAY)
    dev = Device(stack, folder, url=url)
    got, _, _ = dev.sync()
    # MaxAge 3 leaves four, MaxItems 2 the newest two; Off: whole (30 KB)
    assert len(got) == 2, got
    whole = {v[2] for v in folder_messages(stack, folder).values()}
    assert all(item_of(d) in whole for _, _, d, _, _ in got)
    # a device's filter can only narrow it
    got, _, _ = dev.sync(flt=filt("received&GE;20000101T000000Z"))
    assert got == []
    # excluded folders: 404 as datastores of their own
    m = imap(stack)
    m.create("Secret")
    m.logout()
    stack.allow_log(r"excluded from synchronisation")
    sec = Device(stack, "Secret", url=url)
    got, _, st = sec.sync()
    assert st == "404"


def test_555b_a_count_window_refills_when_newer_mail_goes(stack):
    """MemDSMaxItems 2: the device has the newest two; it deletes them, and
    its next sync brings the two that entered the window (they used to
    stay on the server only: the set was compared with itself)."""
    stack.apply_site(_site("MemDSMaxItems 2\n    MemDSTruncate Off"))
    url = "http://127.0.0.1:%s/lim" % stack["MEMDS_HTTP_PORT"]
    folder = new_folder(stack, 0)
    now = time.time()
    for d in (4, 3, 2, 1):  # days ago
        append(stack, folder, message(folder, d, 3000), when=now - d * DAY)
    dev = Device(stack, folder, url=url)
    got, _, _ = dev.sync()
    assert len(got) == 2, got
    first = {item_of(d) for _, _, d, _, _ in got}
    dels = "".join("<Delete><CmdID>%d</CmdID><Item><Source><LocURI>c%s</LocURI></Source>"
                   "</Item></Delete>" % (10 + i, key) for i, (_, key, _, _, _) in enumerate(got))
    got, _, _ = dev.sync(ops=[dels])
    assert sorted(op for op, *_ in got) == ["Add", "Add"], got
    second = {item_of(d) for _, _, d, _, _ in got}
    assert not first & second
    whole = {v[2] for v in folder_messages(stack, folder).values()}
    assert second <= whole and len(whole) == 2, (len(whole), len(second))
    # and nothing more: the window is full
    got, _, _ = dev.sync()
    assert got == [], got


def test_555c_window_refill_keeps_to_the_snapshot(stack):
    """MemDSMaxItems 2, and another transaction holds an older change
    sequence value (under load there always is one), so the session's
    snapshot lags behind a mail just delivered: the window's refill does
    not send that mail in this session, it comes once, as an Add, with the
    next session's changes. (It used to go at once and then again as a
    Replace, a change after the device's position: the device's own next
    change of it met a "server change", 419 in bench/load.)"""
    from test_570_concurrency import Holder
    stack.apply_site(_site("MemDSMaxItems 2\n    MemDSTruncate Off"))
    url = "http://127.0.0.1:%s/lim" % stack["MEMDS_HTTP_PORT"]
    folder = new_folder(stack, 0)
    now = time.time()
    for d in (3, 2):  # days ago
        append(stack, folder, message(folder, d, 3000), when=now - d * DAY)
    dev = Device(stack, folder, url=url)
    got, _, _ = dev.sync()
    assert sorted(op for op, *_ in got) == ["Add", "Add"], got
    h = Holder(stack, "SELECT count(*) FROM (SELECT memds.item_seq_take()) x;")
    try:
        append(stack, folder, message(folder, 1, 3000), when=now - DAY)
        newest = {v[2] for v in folder_messages(stack, folder).values()}
        got2, _, _ = dev.sync()
    finally:
        h.release()
    got3, _, _ = dev.sync()
    ops = [(op, item_of(d)) for op, _, d, _, _ in got2 + got3
           if op in ("Add", "Replace")]
    assert len(ops) == 1 and ops[0][0] == "Add", (got2, got3)
    assert ops[0][1] in newest
    assert [op for op, *_ in got3] == ["Add"], got3


def admin_truncate(stack, *args):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-admin")
    return subprocess.run([exe, "truncate", "--db", stack["MEMDS_PG"], *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)


def test_556_account_setting(stack):
    """memds-admin truncate sets an account's level, over MemDSTruncate;
    off sends whole; default goes back to the directive; a bad value is a
    usage error that changes nothing."""
    folder = new_folder(stack, 1, size=3000)
    r = admin_truncate(stack, "alice", "1K")
    assert r.returncode == 0 and "1024 bytes" in r.stdout, r.stdout
    assert psql(stack, "SELECT truncate FROM memds.account_settings "
                       "WHERE account = 'alice'") == "1024"
    try:
        dev = Device(stack, folder)
        got, _, _ = dev.sync()
        root = ET.fromstring(got[0][2].encode())
        assert root.find("truncated") is not None
        assert len(item_of(got[0][2]).partition(b"\r\n\r\n")[2]) <= 1026
        r = admin_truncate(stack, "alice", "lots")
        assert r.returncode == 1 and "neither off" in r.stdout, r.stdout
        assert admin_truncate(stack, "alice", "off").returncode == 0
        dev2 = Device(stack, folder)
        got, _, _ = dev2.sync()
        whole = list(folder_messages(stack, folder).values())[0][2]
        assert item_of(got[0][2]) == whole
    finally:
        assert admin_truncate(stack, "alice", "default").returncode == 0
    assert psql(stack, "SELECT count(*) FROM memds.account_settings WHERE "
                       "account = 'alice' AND truncate IS NOT NULL") == "0"


def test_557_funambol_client_gets_its_ext_form(stack):
    """A device whose DevInf names Funambol gets the truncated mail with
    the x-funambol-* Exts as well as <truncated>; another device does
    not."""
    folder = new_folder(stack, 0)
    tag = "fnbl-" + uuid.uuid4().hex[:8]
    msg, text, atts = big5(tag)
    append(stack, folder, msg)
    size = len(list(folder_messages(stack, folder).values())[0][2])
    for funambol in (True, False):
        dev = Device(stack, folder, max_obj=8000000)
        if funambol:
            dev.put = lambda devid, f: devinf_put(devid, f).replace(
                "<VerDTD>1.2</VerDTD>", "<VerDTD>1.2</VerDTD><Man>Funambol</Man>"
                "<Mod>Funambol Android Sync Client</Mod>")
        got, _, _ = dev.sync()
        root = ET.fromstring(got[0][2].encode())
        assert root.find("truncated") is not None
        exts = {}
        for x in root.findall("Ext"):
            exts.setdefault(x.findtext("XNam"), []).append([v.text for v in x.findall("XVal")])
        if not funambol:
            assert exts == {}
            continue
        assert exts["x-funambol-size"] == [[str(size)]]
        assert int(exts["x-funambol-body"][0][0]) == len(text.encode())
        assert exts["x-funambol-attach-n"] == [["3"]]
        assert [a[0] for a in exts["x-funambol-attach"]] == ["report.pdf", "photo.jpg",
                                                             "notes.txt"]
        assert exts["x-funambol-attach"][0][2] == "application/pdf"


def test_558_sender_gets_its_sent_copy_as_header_and_flags(stack):
    """Issue 11 item 6: the device that sent a message through the Outbox
    gets the copy filed in Sent as its header and flags (what it already
    has; attachments listed, never downloaded again); another device gets
    it at the usual level."""
    tag = "sent-" + uuid.uuid4().hex[:8]
    attach = base64.b64encode(bytes(range(256)) * 40).decode()
    mail = ("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
            "Subject: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"s1\"\r\n\r\n--s1\r\n"
            "Content-Type: text/plain; charset=UTF-8\r\n\r\nSee attached.\r\n--s1\r\n"
            "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n%s\r\n--s1--\r\n"
            % (tag, "\r\n".join(attach[i:i + 76] for i in range(0, len(attach), 76))))
    obj = ("<Email><read>true</read><emailitem>%s</emailitem></Email>"
           % S.esc(mail).replace("\r", "&#13;"))
    sender = Device(stack, "Outbox")
    add = ("<Add><CmdID>4</CmdID><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta>"
           "<Item><Source><LocURI>L1</LocURI></Source><Data>%s</Data></Item></Add>"
           % (EMAIL_TYPE, S.esc(obj)))
    got, _, st = sender.sync(ops=[add])
    assert st == "200"
    # the copy is filed in Sent; the sender syncs Sent
    sent = Device(stack, "Sent")
    sent.devid = sender.devid
    got, _, _ = sent.sync()
    mine = [d for op, k, d, _, _ in got if tag.encode() in item_of(d)]
    assert len(mine) == 1, got
    root = ET.fromstring(mine[0].encode())
    assert root.findtext("read") == "true"
    head, _, body = item_of(mine[0]).partition(b"\r\n\r\n")
    assert b"Subject: " + tag.encode() in head and body == b""
    tr = root.find("truncated")
    assert [a.findtext("name") for a in tr.findall("attach")] == ["data.bin"]
    # another device: the usual level (the whole mail is under 20 KB)
    other = Device(stack, "Sent")
    got, _, _ = other.sync()
    theirs = [d for op, k, d, _, _ in got if tag.encode() in item_of(d)]
    assert len(theirs) == 1 and b"See attached." in item_of(theirs[0])
    assert ET.fromstring(theirs[0].encode()).find("truncated") is None


def test_559_8bit_mail_to_an_email_object_only_device(stack):
    """Issue 11 item 5: raw 8-bit mail in another charset cannot be XML
    text. A device whose DevInf takes only the email object gets it in an
    email object, made 7-bit (parts transfer-encoded, header fields as
    encoded words), the same once decoded."""
    folder = new_folder(stack, 0)
    raw = (b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
           b"Subject: Gr\xfc\xdfe aus K\xf6ln\r\nMessage-ID: <latin1-" + folder.encode()
           + b"@example.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           + b"Sch\xf6ne Gr\xfc\xdfe aus K\xf6ln, \xe9t\xe9 \xe0 Paris.\r\n" * 20)
    append(stack, folder, raw)
    dev = Device(stack, folder)
    got, _, _ = dev.sync()
    assert len(got) == 1
    obj = got[0][2]
    root = ET.fromstring(obj.encode())
    m = item_of(obj)
    assert all(b < 0x80 for b in m)
    parsed = email.message_from_bytes(m, policy=email.policy.default)
    orig = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße aus Köln"
    assert parsed.get_payload(decode=True) == orig.get_payload(decode=True)
    assert root.findtext("read") == "false"


def _peak_rss_kb(stack):
    return stack.children_peak_rss_kb()


MB = 1024 * 1024


def test_560_peak_memory_with_20_mb_mails(stack):
    """The httpd child's peak RSS while syncing a folder of five 20 MB
    mails: with the default truncation no mail is fetched whole, so the
    peak stays within 40 MB of a fresh child's; get-more of one of them
    (whole, as a large object) stays within 8 times the mail's size."""
    folder = new_folder(stack, 0)
    blob = base64.b64encode(bytes((i * 31) % 256 for i in range(15 * MB)))
    body = b"\r\n".join(blob[i:i + 76] for i in range(0, len(blob), 76))
    for i in range(5):
        msg = (b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
               b"Subject: huge %d\r\nMessage-ID: <huge-%d-%s@example.test>\r\n"
               b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"h\"\r\n\r\n"
               b"--h\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA big one.\r\n"
               b"--h\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" % (i, i, folder.encode())
               + body + b"\r\n--h--\r\n")
        append(stack, folder, msg)
    size = len(msg)
    assert size > 20 * MB
    stack.graceful()  # fresh children: their peak is this test's
    base = _peak_rss_kb(stack)
    dev = Device(stack, folder, max_obj=64 * MB, max_msg=1000000)
    got, _, _ = dev.sync()
    assert len(got) == 5 and all(len(d) < 30000 for _, _, d, _, _ in got)
    after_sync = _peak_rss_kb(stack)
    assert after_sync - base < 40 * 1024, (base, after_sync)
    key = got[0][1]
    f = filt("&LUID;&EQ;c" + key,
             "<PropName>emailitem</PropName><PropParam><ParamName>texttype</ParamName>"
             "</PropParam><PropParam><ParamName>attachtype</ParamName></PropParam>",
             "INCLUSIVE")
    got, msgs, _ = dev.sync(flt=f)
    assert len(got) == 1 and len(got[0][2]) > 20 * MB and msgs > 20
    after_more = _peak_rss_kb(stack)
    print("peak RSS kB: fresh %d, after the sync %d, after get-more of %d MB: %d"
          % (base, after_sync, size // MB, after_more))
    assert after_more - base < 8 * size / 1024, (base, after_more)
