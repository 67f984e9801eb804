"""51x: the mailbox datastores (MemDSDatastore imap) with the real
SyncEvolution client (raw-email = application/vnd.omads-email+xml items,
raw-rfc822 = message/rfc822) against the stack's real Dovecot, mail
delivered through the real MTA (Postfix -> LMTP) or appended over IMAP.

Each test works in its own IMAP folder of alice (datastore = folder path),
except the ones about Inbox."""
import imaplib
import os
import re
import smtplib
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

import syncml as S
from client import Client


# ------------------------------------------------------------------ helpers

def imap(stack, user=None, password=None):
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login(user or stack["MEMDS_USER1"], password or stack["MEMDS_PASS1"])
    return m


def message(tag, i, size=0):
    body = "Hello, this is message %d of %s.\r\n" % (i, tag)
    body += ("The quick brown fox jumps over the lazy dog, line by line!!\r\n"
             * (size // 61))
    return ("From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
            "Subject: %s %d\r\nDate: Mon, 1 Jan 2024 10:%02d:00 +0000\r\n"
            "Message-ID: <%s-%d@example.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=UTF-8\r\n\r\n%s"
            % (tag, i, i % 60, tag, i, body)).encode()


def new_folder(stack, n=3, prefix="T", size=0):
    name = prefix + uuid.uuid4().hex[:8]
    m = imap(stack)
    assert m.create(name)[0] == "OK"
    for i in range(n):
        assert m.append(name, None, imaplib.Time2Internaldate(time.time()),
                        message(name, i, size))[0] == "OK"
    m.logout()
    return name


def folder_messages(stack, folder):
    """{Message-ID: (uid, set of flags, bytes)} of a folder, read with
    BODY.PEEK (the test never sets \\Seen itself)."""
    m = imap(stack)
    typ, _ = m.select('"%s"' % folder, readonly=True)
    assert typ == "OK", folder
    out = {}
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    for part in data:
        if not isinstance(part, tuple):
            continue
        head, raw = part
        uid = int(re.search(rb"UID (\d+)", head).group(1))
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split())
        mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", raw)
        out[mid.group(1).decode() if mid else uid] = (uid, flags, raw)
    m.logout()
    return out


def parse_item(b):
    """(flags dict, emailitem bytes or None) of an email object."""
    root = ET.fromstring(b)
    fields = {c.tag: (c.text or "") for c in root if c.tag != "emailitem"}
    it = root.find("emailitem")
    return fields, (it.text or "").encode("utf-8") if it is not None else None


def mail_client(stack, folder, typ="raw-email", **kw):
    return Client(stack, typ=typ, uri=folder, **kw)


def sync(stack, c, mode, **kw):
    return c.sync(mode, url=stack["MEMDS_URL"], **kw)


def stats(c):
    """Local NEW, MOD, DEL, ERR, remote NEW, MOD, DEL, ERR of the last run."""
    for line in c.last_log.splitlines():
        m = re.match(r"\|\s+mail\s+\|(.*)\|\s*$", line)
        if m:
            return [int(x) for x in re.findall(r"\d+", m.group(1))][:8]
    raise AssertionError("no statistics in the client log:\n" + c.last_log[-3000:])


def items_by_mid(c):
    out = {}
    for b in c.local():
        fields, item = parse_item(b)
        mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", item) if item else None
        out[mid.group(1).decode() if mid else len(out)] = (fields, item)
    return out


def psql(stack, sql):
    return subprocess.run(["psql", stack["MEMDS_PG"], "-XAtq", "-c", sql], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def started_mode(c):
    m = re.search(r"mail: starting (.*)", c.last_log)
    return m.group(1) if m else ""


# -------------------------------------------------------------------- tests

@pytest.mark.parametrize("enc,auth", [("xml", "basic"), ("wbxml", "md5")])
def test_511_inbox_over_xml_and_wbxml_basic_and_md5(stack, enc, auth):
    """The real client receives every Inbox message with its emailitem equal
    to the IMAP message and its flags right; nothing gets \\Seen."""
    tag = "inbox" + uuid.uuid4().hex[:6]
    with smtplib.SMTP("127.0.0.1", int(stack["MEMDS_SMTP_PORT"]), timeout=30) as s:
        for i in range(2):
            s.sendmail("bob@example.test", ["alice@example.test"], message(tag, i))
    deadline = time.time() + 60
    while sum(1 for k in folder_messages(stack, "INBOX") if tag in str(k)) != 2:
        assert time.time() < deadline, "the two messages were not delivered in 60 s"
        time.sleep(0.3)
    m = imap(stack)
    m.select("INBOX")
    m.uid("STORE", "1", "+FLAGS", r"(\Flagged)")  # one flag to carry across
    m.logout()
    before = folder_messages(stack, "INBOX")
    c = mail_client(stack, "Inbox", enc=enc, auth=auth)
    sync(stack, c, "slow")
    got = items_by_mid(c)
    assert set(got) == set(before)
    for mid, (uid, flags, raw) in before.items():
        fields, item = got[mid]
        assert item == raw, mid
        assert fields["read"] == ("true" if "\\Seen" in flags else "false")
        assert fields["flagged"] == ("true" if "\\Flagged" in flags else "false")
        assert fields["replied"] == ("true" if "\\Answered" in flags else "false")
    after = folder_messages(stack, "INBOX")
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    # A two-way sync right after: nothing to do.
    sync(stack, c, "two-way")
    assert stats(c) == [0] * 8
    assert "slow" not in started_mode(c)


def test_512_server_changes_reach_the_device(stack):
    """New mail, a flag change and an expunge made over IMAP arrive at the
    next two-way sync: Add, Replace, Delete. The real client announces no
    FieldLevel for the email type, so the flag change reaches it as the
    complete object and its copy stays the IMAP message byte for byte."""
    folder = new_folder(stack, 3)
    c = mail_client(stack, folder)
    sync(stack, c, "slow")
    assert len(c.local()) == 3
    msgs = folder_messages(stack, folder)
    m = imap(stack)
    m.select(folder)
    uid0 = msgs["<%s-0@example.test>" % folder][0]
    uid1 = msgs["<%s-1@example.test>" % folder][0]
    m.uid("STORE", str(uid0), "+FLAGS", r"(\Flagged \Answered)")
    m.uid("STORE", str(uid1), "+FLAGS", r"(\Deleted)")
    m.expunge()
    m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, 7))
    m.logout()
    sync(stack, c, "two-way")
    assert stats(c)[:3] == [1, 1, 1], c.last_log[-2000:]
    local = [parse_item(b) for b in c.local()]
    assert all(item is not None for _, item in local)  # no flags-only copy
    now = folder_messages(stack, folder)
    got = items_by_mid(c)
    assert set(got) == set(now)
    for mid, (uid, flags, raw) in now.items():
        assert got[mid][1] == raw, mid
    changed = got["<%s-0@example.test>" % folder][0]
    assert changed["flagged"] == "true" and changed["replied"] == "true"
    assert changed["read"] == "false"
    subjects = sorted(re.search(rb"Subject: (.*)\r", i).group(1).decode()
                      for _, i in local if i)
    assert subjects == ["%s 0" % folder, "%s 2" % folder, "%s 7" % folder]
    # and a no-change sync after that is empty
    sync(stack, c, "two-way")
    assert stats(c) == [0] * 8
    assert all("\\Seen" not in f for _, f, _ in folder_messages(stack, folder).values())


def test_513_device_changes_reach_imap(stack):
    """The client's read flag becomes \\Seen, its delete moves the message to
    Trash; its own changes are not echoed back to it."""
    folder = new_folder(stack, 3)
    c = mail_client(stack, folder)
    sync(stack, c, "slow")
    names = sorted(os.listdir(c.items_dir))
    by_subject = {}
    for n in names:
        with open(os.path.join(c.items_dir, n), "rb") as f:
            b = f.read()
        by_subject[re.search(rb"Subject: (.*?)&#13;|Subject: (.*?)\r", b).group(0)] = (n, b)
    items = sorted(by_subject.values(), key=lambda x: x[1])
    (n0, b0), (n1, _), _ = items
    c.put(n0, b0.replace(b"<read>false</read>", b"<read>true</read>")
                .replace(b"<flagged>false</flagged>", b"<flagged>true</flagged>"))
    c.remove(n1)
    trash_before = len(folder_messages(stack, "Trash"))
    sync(stack, c, "two-way")
    assert stats(c)[4:7] == [0, 1, 1], c.last_log[-2000:]
    msgs = folder_messages(stack, folder)
    assert len(msgs) == 2
    read = [f for _, f, raw in msgs.values() if b"Hello, this is message 0" in raw]
    assert read and "\\Seen" in read[0] and "\\Flagged" in read[0]
    trash = folder_messages(stack, "Trash")
    assert len(trash) == trash_before + 1
    assert "<%s-1@example.test>" % folder in trash
    # nothing comes back
    sync(stack, c, "two-way")
    assert stats(c) == [0] * 8


def test_514_flags_only_update_from_the_device(stack):
    """An Email without emailitem from the device changes only flags."""
    folder = new_folder(stack, 1)
    c = mail_client(stack, folder)
    sync(stack, c, "slow")
    (n,) = os.listdir(c.items_dir)
    c.put(n, b"<Email><read>true</read><replied>true</replied></Email>")
    sync(stack, c, "two-way")
    (uid, flags, raw) = list(folder_messages(stack, folder).values())[0]
    assert flags == {"\\Seen", "\\Answered"}
    assert b"Hello, this is message 0" in raw


def test_515_inbox_content_change_refused(stack):
    """Changing the content of received mail is refused (405); the IMAP
    message stays as it was."""
    stack.allow_log(r"content changes to received or sent mail are refused")
    c = mail_client(stack, "Inbox")
    sync(stack, c, "slow")
    before = folder_messages(stack, "INBOX")
    n = sorted(os.listdir(c.items_dir))[0]
    with open(os.path.join(c.items_dir, n), "rb") as f:
        b = f.read()
    c.put(n, b.replace(b"Subject: ", b"Subject: CHANGED ", 1))
    sync(stack, c, "two-way", check=False)
    # the server refused the Replace with 405: the client's sync fails
    # with that status and counts no change on either side
    assert "[ERROR] mail: operation not allowed (remote, status 405)" in c.last_log, \
        c.last_log[-3000:]
    assert stats(c) == [0] * 8, c.last_log[-3000:]
    after = folder_messages(stack, "INBOX")
    assert {k: v[2] for k, v in after.items()} == {k: v[2] for k, v in before.items()}


def test_516_uidvalidity_change_is_remapped(stack):
    """Recreating the folder (new UIDVALIDITY) with the same messages leaves
    the device without duplicates and without a slow sync."""
    folder = new_folder(stack, 3)
    c = mail_client(stack, folder)
    sync(stack, c, "slow")
    msgs = folder_messages(stack, folder)
    m = imap(stack)
    uv1 = m.status(folder, "(UIDVALIDITY)")[1][0]
    m.select(folder)
    typ, data = m.uid("FETCH", "1:*", "(INTERNALDATE BODY.PEEK[])")
    saved = [(re.search(rb'INTERNALDATE "([^"]+)"', p[0]).group(1).decode(), p[1])
             for p in data if isinstance(p, tuple)]
    m.close()
    assert m.delete(folder)[0] == "OK"
    time.sleep(1.1)  # a new UIDVALIDITY (Dovecot uses the time)
    assert m.create(folder)[0] == "OK"
    for date, raw in reversed(saved):  # other order: other UIDs
        m.append(folder, None, '"%s"' % date, raw)
    m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, 9))
    uv2 = m.status(folder, "(UIDVALIDITY)")[1][0]
    m.logout()
    assert uv1 != uv2
    sync(stack, c, "two-way")
    assert "slow" not in started_mode(c)
    assert stats(c)[:3] == [1, 0, 0], c.last_log[-2000:]
    assert len(c.local()) == 4
    assert len(set(items_by_mid(c))) == 4
    assert len(msgs) == 3


def test_517_message_rfc822(stack):
    """message/rfc822 items are the IMAP messages byte for byte."""
    folder = new_folder(stack, 2)
    c = mail_client(stack, folder, typ="raw-rfc822", enc="wbxml")
    sync(stack, c, "slow")
    assert sorted(c.local()) == sorted(v[2] for v in folder_messages(stack, folder).values())


@pytest.mark.parametrize("typ,want", [
    ("raw-rfc822", "r=1;t=message/rfc822"),
    # (this client's DevInf for the email object does not name rfc822)
    ("raw-email", "r=0;t=application/vnd.omads-email+xml")])
def test_517b_devinf_facts_kept_with_the_session(stack, typ, want):
    """What opening a mail datastore needs of the device's DevInf (its
    preferred type, field-level email, Funambol, message/rfc822) is read
    once per session and kept with the session's datastore
    (session_stores.client_caps, schema 028), not parsed from the stored
    DevInf again by every message: after a first sync over several
    messages the row holds the device's preferred type, and every mail
    arrived in it."""
    folder = new_folder(stack, 12, size=6000)
    c = mail_client(stack, folder, typ=typ, enc="wbxml", maxmsg=16384)
    sync(stack, c, "slow")
    assert len(c.local()) == 12
    caps = psql(stack, "SELECT string_agg(DISTINCT ss.client_caps, ',')"
                       " FROM memds.devices d JOIN memds.sessions s USING (device_id)"
                       " JOIN memds.session_stores ss USING (session_pk)"
                       " WHERE d.devid = '%s' AND ss.store = '%s'" % (c.devid, folder))
    assert re.fullmatch(r"f=[01];b=0;" + re.escape(want), caps), caps


def test_518_drafts_add_and_edit(stack):
    """A message the device adds to Drafts is appended; an edit replaces it
    (new version appended, old expunged, same server id); neither is echoed."""
    c = mail_client(stack, "Drafts")
    sync(stack, c, "slow")
    base = len(c.local())
    tag = "draft" + uuid.uuid4().hex[:6]
    raw = message(tag, 1).decode()
    obj = ("<Email><read>true</read><emailitem>%s</emailitem></Email>"
           % S.esc(raw)).encode()
    c.put("mydraft", obj)
    sync(stack, c, "two-way")
    assert stats(c)[4] == 1, c.last_log[-2000:]
    drafts = folder_messages(stack, "Drafts")
    mine = [v for v in drafts.values() if tag.encode() in v[2]]
    assert len(mine) == 1 and mine[0][2] == raw.encode() and "\\Seen" in mine[0][1]
    guid = psql(stack, "SELECT guid FROM memds.mail_messages WHERE folder='Drafts' "
                       "AND message_id='<%s-1@example.test>' AND NOT deleted" % tag)
    c.put("mydraft", obj.replace(b"Hello, this is", b"Hello again, this is"))
    sync(stack, c, "two-way")
    assert stats(c)[5] == 1, c.last_log[-2000:]
    drafts = folder_messages(stack, "Drafts")
    mine = [v for v in drafts.values() if tag.encode() in v[2]]
    assert len(mine) == 1 and b"Hello again" in mine[0][2]
    assert psql(stack, "SELECT guid FROM memds.mail_messages WHERE folder='Drafts' "
                       "AND message_id='<%s-1@example.test>' AND NOT deleted" % tag) == guid
    sync(stack, c, "two-way")
    assert stats(c) == [0] * 8
    assert len(c.local()) == base + 1


def test_519_soft_delete_and_unknown_folder(stack):
    """SftDel leaves the IMAP message alone (the device just forgets it); a
    folder that does not exist gets 404 on its Alert."""
    folder = new_folder(stack, 1)
    raw = list(folder_messages(stack, folder).values())[0][2].decode()
    obj = "<Email><read>false</read><emailitem>%s</emailitem></Email>" % S.esc(raw)
    sess = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:10], "alice",
                     "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, folder, "./" + folder, "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    a = sess.post(sess.message(S.sync(2, folder, "./" + folder, [("Add", "L1", obj)])))
    adds = [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"]
    assert adds == ["201"]  # matched by Message-ID: no second copy
    assert len(folder_messages(stack, folder)) == 1
    a = sess.post(sess.message(""))
    s2 = S.Session(stack["MEMDS_URL"], sess.devid, "alice", "alice-secret", session_id="2")
    a = s2.post(s2.message(S.alert(1, 200, folder, "./" + folder, "n2", last="n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    body = ("<Sync><CmdID>2</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>./%s"
            "</LocURI></Source><Delete><CmdID>3</CmdID><SftDel/><Item><Source><LocURI>L1"
            "</LocURI></Source></Item></Delete></Sync>" % (folder, folder))
    a = s2.post(s2.message(body))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Delete"] == ["200"]
    msgs = folder_messages(stack, folder)
    assert len(msgs) == 1 and "\\Deleted" not in list(msgs.values())[0][1]
    # unknown folder
    stack.allow_log(r"no such mail folder")
    s3 = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:10], "alice", "alice-secret")
    a = s3.post(s3.message(S.alert(1, 201, "NoSuchFolder", "./x", "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["404"]


def _peak_rss_kb(stack):
    return stack.children_peak_rss_kb()


def _bulk_folder(stack, n, size):
    name = "Bulk" + uuid.uuid4().hex[:6]
    m = imap(stack)
    m.create(name)
    date = imaplib.Time2Internaldate(time.time())
    for i in range(n):
        m.append(name, None, date, message(name, i, size))
    m.logout()
    return name


def test_520_ten_thousand_messages_bounded_memory(stack):
    """A 10 000-message mailbox (about 40 MB) syncs completely; the httpd
    children's peak memory grows no more than for a 1 000-message one plus
    a few MB: bodies are streamed, not held."""
    small, big = _bulk_folder(stack, 1000, 4000), _bulk_folder(stack, 10000, 4000)
    growth = {}
    for folder, n in ((small, 1000), (big, 10000)):
        stack.graceful()  # fresh children: VmHWM starts again
        time.sleep(1)
        base = _peak_rss_kb(stack)
        c = mail_client(stack, folder, enc="wbxml")
        sync(stack, c, "slow", timeout=3000)
        assert len(c.local()) == n
        growth[n] = _peak_rss_kb(stack) - base
        # and a two-way sync on it right after changes nothing
        sync(stack, c, "two-way", timeout=600)
        assert stats(c) == [0] * 8
    print("peak RSS growth: 1000 messages %d KB, 10000 messages %d KB"
          % (growth[1000], growth[10000]))
    # 10x the mail (36 MB more) must not mean 10x the memory
    assert growth[10000] < growth[1000] + 16 * 1024, growth


def test_521_pass_through_login_without_master_user(stack):
    """Without MemDSIMAPMaster the device's own basic password is the IMAP
    login: the server answers 200 (not 212) to its credentials so that the
    client sends them with every message, and a sync spanning many messages
    works; a wrong password is refused."""
    stack.allow_log(r"authentication failed")
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /passthru>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
</Location>
""")
    url = "http://127.0.0.1:%s/passthru" % stack["MEMDS_HTTP_PORT"]
    folder = new_folder(stack, 12, size=2000)
    s = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    a = s.post(s.message(S.alert(1, 201, folder, "./" + folder, "n1")))
    assert a.hdr_status() == "200"
    log = os.path.join(stack.var, "httpd", "access.log")
    with open(log) as f:
        before = sum(1 for l in f if "/passthru" in l)
    c = mail_client(stack, folder, maxmsg=4096)
    c.sync("slow", url=url)
    assert len(c.local()) == 12
    with open(log) as f:
        messages = sum(1 for l in f if "/passthru" in l) - before
    assert messages > 6  # 24 KB in 4 KB messages, each with the password
    c.put("new1", ("<Email><read>true</read><emailitem>%s</emailitem></Email>"
                   % S.esc(message(folder, 40).decode())).encode())
    c.sync("two-way", url=url)
    assert stats(c)[4] == 1
    assert len(folder_messages(stack, folder)) == 13
    bad = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "wrong")
    assert bad.post(bad.message(S.alert(1, 201, folder, "./" + folder, "n1"))).hdr_status() == "401"


def _hier_items(a):
    """(op, source, source parent, type, data, cmdid) of every Sync item."""
    NS = S.NS
    out = []
    for sync in a.commands("Sync"):
        for op in sync:
            tag = op.tag.replace(NS, "")
            if tag not in ("Add", "Replace", "Delete"):
                continue
            typ = op.find(NS + "Meta/" + S.MI + "Type")
            for it in op.findall(NS + "Item"):
                src = it.find(NS + "Source/" + NS + "LocURI")
                par = it.find(NS + "SourceParent/" + NS + "LocURI")
                data = it.find(NS + "Data")
                out.append((tag, src.text if src is not None else None,
                            par.text if par is not None else None,
                            typ.text if typ is not None else None,
                            data.text if data is not None else None,
                            op.find(NS + "CmdID").text))
    return out


def _receive_all(sess, a):
    got = []
    while True:
        items = _hier_items(a)
        got += items
        if a.final:
            return got, a
        body = "".join(S.status(i + 1, a.hdr("MsgID").text, it[5], it[0], "201",
                                source_ref=it[1]) for i, it in enumerate(items))
        body += ("<Alert><CmdID>%d</CmdID><Data>222</Data><Item><Target><LocURI>%s"
                 "</LocURI></Target><Source><LocURI>dev</LocURI></Source></Item></Alert>"
                 % (len(items) + 1, S.esc(sess.url)))
        a = sess.post(sess.message(body, final=False))


def _op(cmd, cmd_id, luid, typ, data, target=None, target_parent=None,
        source_parent=None):
    x = "<%s><CmdID>%d</CmdID><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta><Item>" % (
        cmd, cmd_id, typ)
    if target:
        x += "<Target><LocURI>%s</LocURI></Target>" % target
    x += "<Source><LocURI>%s</LocURI></Source>" % luid
    if source_parent:
        x += "<SourceParent><LocURI>%s</LocURI></SourceParent>" % source_parent
    if target_parent:
        x += "<TargetParent><LocURI>%s</LocURI></TargetParent>" % target_parent
    return x + "<Data>%s</Data></Item></%s>" % (S.esc(data), cmd)


def test_522_hierarchical_email_datastore(stack):
    """The "email" datastore: folders as folder objects, messages with their
    folder as SourceParent; a device's new folder (CREATE), a message added
    into it by SourceParent, a message moved by TargetParent (UID MOVE, same
    server id); IMAP-side folder changes arrive as folder items."""
    user, pw = stack["MEMDS_USER2"], stack["MEMDS_PASS2"]
    m = imap(stack, user, pw)
    delim = re.search(rb'\(.*?\) "(.)"', m.list()[1][0]).group(1).decode()
    top = "H" + uuid.uuid4().hex[:6]
    sub = top + delim + "Alpha"
    assert m.create(top)[0] == "OK" and m.create(sub)[0] == "OK"
    m.append(sub, None, imaplib.Time2Internaldate(time.time()), message(top, 1))
    m.logout()

    sess = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:8], user, pw)
    sess.post(sess.message(S.alert(1, 201, "email", "./email", "n1")))
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(2, "email", "./email", []))))
    folders = {}
    mails = {}
    for op, src, par, typ, data, _ in got:
        assert op == "Add"
        if typ == "application/vnd.omads-folder+xml":
            folders[src] = (ET.fromstring(data).find("name").text, par)
        else:
            assert typ == "application/vnd.omads-email+xml"
            mails[src] = (parse_item(data.encode()), par)
    by_name = {v[0]: k for k, v in folders.items()}
    assert "INBOX" in by_name and folders[by_name[top]][1] is None
    assert folders[by_name["Alpha"]][1] == by_name[top]
    mine = [g for g, (obj, par) in mails.items() if b"message 1 of " + top.encode() in obj[1]]
    assert len(mine) == 1 and mails[mine[0]][1] == by_name["Alpha"]
    maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                   "</LocURI></Source></MapItem>" % (g, g) for _, g, *_ in got)
    a = sess.post(sess.message("<Map><CmdID>1</CmdID><Target><LocURI>email</LocURI></Target>"
                               "<Source><LocURI>./email</LocURI></Source>%s</Map>" % maps))
    assert a.final

    # Session 2: a new folder under top, a message into it, a move.
    s2 = S.Session(stack["MEMDS_URL"], sess.devid, user, pw, session_id="2")
    a = s2.post(s2.message(S.alert(1, 200, "email", "./email", "n2", last="n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    newmail = "<Email><read>true</read><emailitem>%s</emailitem></Email>" % (
        S.esc(message(top, 2).decode()))
    ops = (_op("Add", 3, "cNew", "application/vnd.omads-folder+xml",
               "<Folder><name>Beta</name></Folder>", target_parent=by_name[top])
           + _op("Add", 4, "cMail2", "application/vnd.omads-email+xml", newmail,
                 source_parent="cNew")
           + _op("Replace", 5, "c" + mine[0], "application/vnd.omads-email+xml",
                 "<Email><flagged>true</flagged></Email>", target=mine[0],
                 target_parent=by_name[top]))
    a = s2.post(s2.message("<Sync><CmdID>2</CmdID><Target><LocURI>email</LocURI></Target>"
                           "<Source><LocURI>./email</LocURI></Source>%s</Sync>" % ops))
    codes = {s["CmdRef"]: s["Data"] for s in a.statuses() if s["Cmd"] in ("Add", "Replace")}
    assert codes == {"3": "201", "4": "201", "5": "200"}, a.body
    got2, a = _receive_all(s2, s2.post(s2.message("")))
    assert got2 == []  # its own changes are not echoed
    beta = top + delim + "Beta"
    assert any(b"message 2 of " + top.encode() in v[2]
               for v in folder_messages_of(stack, user, pw, beta).values())
    moved = folder_messages_of(stack, user, pw, top)
    assert len(moved) == 1 and "\\Flagged" in list(moved.values())[0][1]
    assert folder_messages_of(stack, user, pw, sub) == {}
    assert psql(stack, "SELECT count(*) FROM memds.mail_messages WHERE account='%s' AND guid='%s'"
                       " AND NOT deleted AND folder='%s'" % (user, mine[0], top)) == "1"

    # Session 3: a folder made over IMAP arrives; nothing else does.
    m = imap(stack, user, pw)
    m.create(top + delim + "Gamma")
    m.logout()
    s3 = S.Session(stack["MEMDS_URL"], sess.devid, user, pw, session_id="3")
    a = s3.post(s3.message(S.alert(1, 200, "email", "./email", "n3", last="n2")))
    got3, a = _receive_all(s3, s3.post(s3.message(S.sync(2, "email", "./email", []))))
    assert [(op, typ, par) for op, _, par, typ, *_ in got3] == [
        ("Add", "application/vnd.omads-folder+xml", by_name[top])]


EMAIL_TYPE = "application/vnd.omads-email+xml"


def _imap_store(stack, folder, uid, flags):
    """Add flags to message uid of folder over IMAP (another client)."""
    m = imap(stack)
    m.select(folder)
    m.uid("STORE", str(uid), "+FLAGS", flags)
    m.logout()


def _devinf_put(devid, folder, field_level):
    """A DevInf Put whose datastore for folder prefers email objects, with a
    CTCap for the type that has FieldLevel or not."""
    return ("<Put><CmdID>1</CmdID><Meta><Type xmlns='syncml:metinf'>application/"
            "vnd.syncml-devinf+xml</Type></Meta><Item><Source><LocURI>./devinf12</LocURI>"
            "</Source><Data><DevInf xmlns='syncml:devinf'><VerDTD>1.2</VerDTD>"
            "<DevID>%s</DevID><DevTyp>phone</DevTyp><DataStore><SourceRef>./%s"
            "</SourceRef><Rx-Pref><CTType>%s</CTType><VerCT>1.2</VerCT></Rx-Pref>"
            "<Tx-Pref><CTType>%s</CTType><VerCT>1.2</VerCT></Tx-Pref>"
            "<CTCap><CTType>%s</CTType><VerCT>1.2</VerCT>%s<Property><PropName>read"
            "</PropName></Property><Property><PropName>emailitem</PropName></Property>"
            "</CTCap><SyncCap><SyncType>1</SyncType><SyncType>2</SyncType></SyncCap>"
            "</DataStore></DevInf></Data></Item></Put>"
            % (S.esc(devid), S.esc(folder), EMAIL_TYPE, EMAIL_TYPE, EMAIL_TYPE,
               "<FieldLevel/>" if field_level else ""))


def _send_map(sess, folder, got):
    """The device's Map for the items it got (its id: "c" + server id)."""
    maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                   "</LocURI></Source></MapItem>" % (g, g) for _, g, *_ in got)
    a = sess.post(sess.message("<Map><CmdID>1</CmdID><Target><LocURI>%s</LocURI></Target>"
                               "<Source><LocURI>./%s</LocURI></Source>%s</Map>"
                               % (folder, folder, maps)))
    assert a.final


def _hand_session(stack, folder, devid, n1, field_level=None, url=None):
    """A slow sync of folder by a hand-made device (DevInf with or without
    FieldLevel, or none), its Map sent: {server id: email object}."""
    sess = S.Session(url or stack["MEMDS_URL"], devid, "alice", "alice-secret")
    put = _devinf_put(devid, folder, field_level) if field_level is not None else ""
    a = sess.post(sess.message(put + S.alert(2, 201, folder, "./" + folder, n1)))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(3, folder, "./" + folder, []))))
    _send_map(sess, folder, got)
    return {g: data for _, g, _, _, data, _ in got}


def _hand_two_way(stack, folder, devid, last, n2, url=None):
    """A two-way sync of the hand-made device: the items it receives."""
    s2 = S.Session(url or stack["MEMDS_URL"], devid, "alice", "alice-secret",
                   session_id=n2)
    a = s2.post(s2.message(S.alert(1, 200, folder, "./" + folder, n2, last=last)))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    got, a = _receive_all(s2, s2.post(s2.message(S.sync(2, folder, "./" + folder, []))))
    # its statuses for the last items (if any) end the session
    s2.post(s2.message("".join(
        S.status(i + 1, a.hdr("MsgID").text, it[5], it[0], "200", source_ref=it[1])
        for i, it in enumerate(_hier_items(a)))))
    return got


def test_523_flags_only_replace_only_with_field_level(stack):
    """A server-side flag change reaches a device whose DevInf CTCap for the
    email type has FieldLevel as an Email without emailitem; a device whose
    CTCap has no FieldLevel, and one without DevInf, get the complete
    object, its emailitem the IMAP message byte for byte."""
    folder = new_folder(stack, 2)
    devs = {}
    for fl in (True, False, None):
        devid = "dev-" + uuid.uuid4().hex[:10]
        objs = _hand_session(stack, folder, devid, "n1", field_level=fl)
        assert len(objs) == 2 and all(parse_item(o.encode())[1] for o in objs.values())
        devs[fl] = devid
    msgs = folder_messages(stack, folder)
    uid, _, raw = msgs["<%s-1@example.test>" % folder]
    _imap_store(stack, folder, uid, r"(\Flagged)")
    for fl, devid in devs.items():
        got = _hand_two_way(stack, folder, devid, "n1", "n2")
        assert [op for op, *_ in got] == ["Replace"], (fl, got)
        fields, item = parse_item(got[0][4].encode())
        assert fields["flagged"] == "true" and fields["read"] == "false"
        if fl:
            assert item is None, fl
        else:
            assert item == raw, fl


def _copy_obj(raw, flags="", trunc="<truncated><body><size>%d</size><type>text/plain"
              "</type></body></truncated>"):
    """A device's truncated copy of raw: the headers and a cut body."""
    cut = raw[:raw.index(b"\r\n\r\n") + 10].decode() + "EDITED ON THE DEVICE"
    return "<Email>%s<emailitem>%s</emailitem>%s</Email>" % (
        flags, S.esc(cut), trunc % len(raw) if "%d" in trunc else trunc)


def test_524_device_copies_stay_copies(stack):
    """What a device sends back as its truncated copy (<truncated>,
    x-funambol-body, X-Sync-Message-Limit) is never appended, is matched in a
    slow sync by its Message-ID alone, and a Replace with it changes only
    flags; a mail the device soft-deleted does not come back to it when its
    flags change on the server."""
    stack.allow_log(r"a truncated copy of a message is not the message")
    folder = new_folder(stack, 2)
    before = folder_messages(stack, folder)
    raw0 = before["<%s-0@example.test>" % folder][2]
    devid = "dev-" + uuid.uuid4().hex[:10]
    sess = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, folder, "./" + folder, "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    stranger = message(folder, 9)  # not on the server
    lim = stranger.replace(b"MIME-Version", b"X-Sync-Message-Limit: 20\r\nMIME-Version")
    fnbl = _copy_obj(message(folder, 8), trunc="<Ext><XNam>x-funambol-body</XNam>"
                                               "<XVal>300</XVal></Ext>")
    ops = (_op("Add", 3, "L1", EMAIL_TYPE, _copy_obj(raw0))
           + _op("Add", 4, "L2", "message/rfc822", lim.decode())
           + _op("Add", 5, "L3", EMAIL_TYPE, fnbl)
           + _op("Add", 6, "L4", EMAIL_TYPE, _copy_obj(stranger, trunc="<truncated/>")))
    a = sess.post(sess.message(
        "<Sync><CmdID>2</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>./%s"
        "</LocURI></Source>%s</Sync>" % (folder, folder, ops)))
    codes = {s["CmdRef"]: s["Data"] for s in a.statuses() if s["Cmd"] == "Add"}
    assert codes["3"] in ("200", "201") and codes["4"] == codes["5"] == codes["6"] == "405", codes
    got, a = _receive_all(sess, a)
    now = folder_messages(stack, folder)  # nothing appended or changed
    assert {k: v[2] for k, v in now.items()} == {k: v[2] for k, v in before.items()}
    # the copy of message 0 was matched: only message 1 comes to the device
    assert [op for op, *_ in got] == ["Add"], got
    assert b"message 1 of" in parse_item(got[0][4].encode())[1]
    _send_map(sess, folder, got)
    guid1 = got[0][1]

    # Session 2: a Replace with the (edited) truncated copy sets flags only;
    # the device soft-deletes message 1.
    s2 = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id="2")
    a = s2.post(s2.message(S.alert(1, 200, folder, "./" + folder, "n2", last="n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    body = ("<Sync><CmdID>2</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>./%s"
            "</LocURI></Source>%s<Delete><CmdID>4</CmdID><SftDel/><Item><Source><LocURI>c%s"
            "</LocURI></Source></Item></Delete></Sync>"
            % (folder, folder, _op("Replace", 3, "L1", EMAIL_TYPE,
                                   _copy_obj(raw0, flags="<read>true</read>")), guid1))
    a = s2.post(s2.message(body))
    codes = {s["Cmd"]: s["Data"] for s in a.statuses() if s["Cmd"] in ("Replace", "Delete")}
    assert codes == {"Replace": "200", "Delete": "200"}, a.body
    got2, a = _receive_all(s2, s2.post(s2.message("")))
    assert got2 == []
    after = folder_messages(stack, folder)
    assert {k: v[2] for k, v in after.items()} == {k: v[2] for k, v in before.items()}
    assert after["<%s-0@example.test>" % folder][1] - {"\\Recent"} == {"\\Seen"}

    # A server-side flag change of the soft-deleted mail: nothing comes.
    _imap_store(stack, folder, before["<%s-1@example.test>" % folder][0], r"(\Flagged)")
    assert _hand_two_way(stack, folder, devid, "n2", "3") == []


def test_525_deleted_flag_with_delete_policy_flag(stack):
    """With MemDSDeletePolicy flag a mail marked \\Deleted on the server stays
    on the device with <deleted>true</deleted>; it goes when expunged. With
    the default policy \\Deleted makes it go at once."""
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /flagdel>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster %s %s
    MemDSDeletePolicy flag
</Location>
<Location /trashdel>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster %s %s
</Location>
""" % ((stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"]) * 2))
    url = "http://127.0.0.1:%s/flagdel" % stack["MEMDS_HTTP_PORT"]
    folder = new_folder(stack, 2)
    devid = "dev-" + uuid.uuid4().hex[:10]
    assert len(_hand_session(stack, folder, devid, "n1", url=url)) == 2
    msgs = folder_messages(stack, folder)
    uid, _, raw = msgs["<%s-0@example.test>" % folder]
    _imap_store(stack, folder, uid, r"(\Deleted)")
    got = _hand_two_way(stack, folder, devid, "n1", "n2", url=url)
    assert [op for op, *_ in got] == ["Replace"], got
    fields, item = parse_item(got[0][4].encode())
    assert fields["deleted"] == "true" and item == raw
    assert _hand_two_way(stack, folder, devid, "n2", "n3", url=url) == []
    m = imap(stack)
    m.select(folder)
    m.expunge()
    m.logout()
    got = _hand_two_way(stack, folder, devid, "n3", "n4", url=url)
    assert [op for op, *_ in got] == ["Delete"], got
    # the default policy (trash): \Deleted on the server removes it at once
    folder = new_folder(stack, 2)
    devid = "dev-" + uuid.uuid4().hex[:10]
    url = "http://127.0.0.1:%s/trashdel" % stack["MEMDS_HTTP_PORT"]
    assert len(_hand_session(stack, folder, devid, "n1", url=url)) == 2
    _imap_store(stack, folder, folder_messages(stack, folder)["<%s-0@example.test>" % folder][0],
                r"(\Deleted)")
    got = _hand_two_way(stack, folder, devid, "n1", "n2", url=url)
    assert [op for op, *_ in got] == ["Delete"], got


def folder_messages_of(stack, user, pw, folder):
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login(user, pw)
    typ, _ = m.select('"%s"' % folder, readonly=True)
    assert typ == "OK", folder
    out = {}
    typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
    for part in data:
        if isinstance(part, tuple):
            uid = int(re.search(rb"UID (\d+)", part[0]).group(1))
            flags = set(re.search(rb"FLAGS \(([^)]*)\)", part[0]).group(1).decode().split())
            out[uid] = (uid, flags, part[1])
    m.logout()
    return out


def _known(stack, table, column, value):
    """Do the planner's statistics of memds.<table> know <value> of <column>
    (among its most common values)?"""
    return subprocess.run(
        ["psql", stack["MEMDS_PG"], "-XAtq", "-c",
         "SELECT count(*) FROM pg_stats WHERE schemaname = 'memds'"
         " AND tablename = '%s' AND attname = '%s'"
         " AND '%s' = ANY (most_common_vals::text::text[])"
         % (table, column, value)],
        check=True, stdout=subprocess.PIPE, text=True).stdout.strip() == "1"


def _folder_known(stack, folder):
    return _known(stack, "mail_messages", "folder", folder)


GROWN_TABLES = ("mail_messages", "mail_levels", "maps")


def test_526_first_scan_of_a_large_folder_analyzes(stack):
    """A folder's first scan that records 2000 mails or more ANALYZEs
    memds.mail_messages in its transaction: the first sync reads the rows
    of each message's mails by GUID, and with the folder unknown to the
    statistics the planner walked the whole folder every message
    (docs/performance.md, Mail). The same first sync, once 2000 of its
    mails have gone down, ANALYZEs the tables that grew by a row per mail
    for the new device (memds.mail_levels, memds.maps): their lookups by
    GUID walked all the device's rows otherwise. autovacuum is held off
    the tables meanwhile, so that only the sync can have done it."""
    pg = ["psql", stack["MEMDS_PG"], "-XAtq", "-c"]
    for t in GROWN_TABLES:
        subprocess.run(pg + ["ALTER TABLE memds.%s"
                             " SET (autovacuum_enabled = false)" % t],
                       check=True)
    try:
        name = new_folder(stack, n=0, prefix="Big")
        m = imap(stack)
        for i in range(2100):
            assert m.append(name, None, imaplib.Time2Internaldate(time.time()),
                            message(name, i))[0] == "OK"
        m.logout()
        assert not _folder_known(stack, name)
        c = mail_client(stack, name)
        try:
            sync(stack, c, "slow")
            assert len(c.local()) == 2100
        finally:
            c.cleanup()
        assert _folder_known(stack, name)
        dev = subprocess.run(
            pg + ["SELECT DISTINCT device_id FROM memds.mail_levels"
                  " WHERE store = '%s'" % name],
            check=True, stdout=subprocess.PIPE, text=True).stdout.split()
        assert len(dev) == 1, dev
        assert _known(stack, "mail_levels", "device_id", dev[0])
        assert _known(stack, "maps", "device_id", dev[0])
    finally:
        for t in GROWN_TABLES:
            subprocess.run(pg + ["ALTER TABLE memds.%s"
                                 " RESET (autovacuum_enabled)" % t],
                           check=True)
