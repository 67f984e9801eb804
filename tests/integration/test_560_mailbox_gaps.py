"""Issue 16 item 4: behaviours of the mailbox datastores that had no test.

- a refresh from the client (Alert 203) deletes nothing on IMAP, for a
  per-folder datastore and for the hierarchical "email" one;
- MemDSDeletePolicy: a device's Delete under trash (the default), flag and
  expunge, and the same in the Trash folder (also through the
  hierarchical "email" datastore); a bad value at configtest;
- an IMAP server without CONDSTORE/QRESYNC (a second Dovecot whose
  imap_capability leaves them out, with a raw log of what the module sent):
  the UID/flags diff carries new mail, flag changes, \\Deleted and expunges
  to the device, and the module never sends a CONDSTORE command;
- large objects: a mail bigger than the device's MaxMsgSize goes down in
  chunks, a device's large draft and Outbox mail come up in chunks; the
  device's MaxObjSize and SupportLargeObjs are respected; MemDSMaxObjSize
  refuses a bigger item with 413 and nothing reaches IMAP or SMTP.

The real SyncEvolution client where it fits, hand-made SyncML where the
test needs the exact commands, imaplib for the server side."""
import glob
import imaplib
import os
import re
import shutil
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

import syncml as S
from test_140_tls import _loc
from test_242_two_servers import SecondDovecot
from test_510_mail import (EMAIL_TYPE, _hier_items, _imap_store, _receive_all,
                           folder_messages, folder_messages_of, imap, items_by_mid,
                           mail_client, message, new_folder, parse_item, psql, stats,
                           sync)
from test_550_filters import Device, devinf_put, falert, items_of
from test_610_outbox import copies, outgoing, settle


def url_of(stack, path):
    return "http://127.0.0.1:%s%s" % (stack["MEMDS_HTTP_PORT"], path)


def location(stack, path, extra, imap_url=None):
    """A mailbox location like the stack's /sync with extra directives."""
    return _loc(stack, path, imap_url or "imap://127.0.0.1:%s" % stack["MEMDS_IMAP_PORT"],
                extra, smtp="smtp://127.0.0.1:%s" % stack["MEMDS_SMTP_PORT"],
                auth_file=False)


def posts(stack, path):
    """POST requests to path so far in httpd's access log."""
    with open(os.path.join(stack.var, "httpd", "access.log")) as f:
        return sum(1 for line in f if '"POST %s' % path in line)


def mid(folder, i):
    return "<%s-%d@example.test>" % (folder, i)


def item_file(c, message_id):
    """The client's file holding the mail with that Message-ID."""
    for n in os.listdir(c.items_dir):
        with open(os.path.join(c.items_dir, n), "rb") as f:
            _, item = parse_item(f.read())
        if item and re.search(rb"(?im)^Message-ID:\s*" + re.escape(message_id.encode()), item):
            return n
    raise AssertionError("no item with %s on the device" % message_id)


def fm(stack, folder):
    """folder_messages without \\Recent (a session-local flag)."""
    return {k: (u, f - {"\\Recent"}, raw) for k, (u, f, raw)
            in folder_messages(stack, folder).items()}


def live_rows(stack, account, folder):
    return psql(stack, "SELECT count(*) FILTER (WHERE NOT deleted) || '/' || count(*) "
                       "FROM memds.mail_messages WHERE account='%s' AND folder='%s'"
                % (account, folder))


# ------------------------------------------------- 1. refresh from client

def test_560a_refresh_from_client_deletes_nothing_on_imap(stack):
    """A refresh from the client (203) after the device dropped two of its
    four mails: IMAP keeps all four, byte for byte, none \\Deleted, nothing
    in Trash, no row a tombstone, and what the device sent matched (no
    second copy), its flags applied (its version wins). New mail still reaches the device, a server-side flag
    change of a mail it dropped does not; a slow sync gives it the two it
    dropped back: nothing is lost."""
    folder = new_folder(stack, 4)
    before = fm(stack, folder)
    trash_before = set(folder_messages(stack, "Trash"))
    c = mail_client(stack, folder)
    sync(stack, c, "slow")
    assert len(c.local()) == 4
    c.remove(item_file(c, mid(folder, 0)))
    c.remove(item_file(c, mid(folder, 1)))
    n = item_file(c, mid(folder, 2))  # and marks one it keeps read and flagged
    with open(os.path.join(c.items_dir, n), "rb") as f:
        b = f.read()
    c.put(n, b.replace(b"<read>false</read>", b"<read>true</read>")
              .replace(b"<flagged>false</flagged>", b"<flagged>true</flagged>"))
    sync(stack, c, "refresh-from-client")
    after = fm(stack, folder)
    assert {k: v[2] for k, v in after.items()} == {k: v[2] for k, v in before.items()}
    assert after[mid(folder, 2)][1] == {"\\Seen", "\\Flagged"}  # its version won
    assert {k: v[1] for k, v in after.items() if k != mid(folder, 2)} == \
        {k: v[1] for k, v in before.items() if k != mid(folder, 2)}
    assert all("\\Deleted" not in v[1] for v in after.values())
    assert set(folder_messages(stack, "Trash")) == trash_before
    assert live_rows(stack, "alice", folder) == "4/4"
    assert len(c.local()) == 2
    # new mail still comes, nothing is deleted on either side, and a flag
    # change of a mail the device dropped does not bring it back
    _imap_store(stack, folder, before[mid(folder, 0)][0], r"(\Flagged)")
    m = imap(stack)
    m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, 7))
    m.logout()
    sync(stack, c, "two-way")
    assert stats(c)[:3] == [1, 0, 0] and stats(c)[4:7] == [0, 0, 0], c.last_log[-2000:]
    assert len(folder_messages(stack, folder)) == 5
    # a slow sync brings back what the device dropped
    sync(stack, c, "slow")
    assert set(items_by_mid(c)) == set(folder_messages(stack, folder))
    assert len(c.local()) == 5


def test_560b_refresh_from_client_of_the_email_datastore_keeps_every_folder(stack):
    """A refresh from the client of the hierarchical "email" datastore with
    an empty Sync (a device that holds nothing): every folder and message
    of the account stays, with its flags."""
    user, pw = stack["MEMDS_USER2"], stack["MEMDS_PASS2"]
    m = imap(stack, user, pw)
    top = "R" + uuid.uuid4().hex[:6]
    assert m.create(top)[0] == "OK"
    for i in range(2):
        m.append(top, None, imaplib.Time2Internaldate(time.time()), message(top, i))
    m.logout()

    def state():
        m = imap(stack, user, pw)
        names = sorted(line.rsplit(b' "/" ', 1)[1].decode().strip('"')
                       for line in m.list()[1])
        m.logout()
        return {n: {k: (v[1] - {"\\Recent"}, v[2])
                    for k, v in folder_messages_of(stack, user, pw, n).items()}
                for n in names}

    before = state()
    assert top in before and len(before[top]) == 2
    sess = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:10], user, pw)
    a = sess.post(sess.message(S.alert(1, 203, "email", "./email", "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"], a.body
    a = sess.post(sess.message(S.sync(2, "email", "./email", [])))
    got, a = _receive_all(sess, a)
    assert got == []  # a refresh from the client: the server sends nothing
    assert state() == before


# ---------------------------------------------------- 2. delete policies

POLICIES = {"default": "", "trash": "MemDSDeletePolicy trash",
            "flag": "MemDSDeletePolicy flag", "expunge": "MemDSDeletePolicy Expunge"}


def policy_site(stack):
    return stack._default_site + "".join(
        location(stack, "/pol-" + name, extra) for name, extra in POLICIES.items())


@pytest.mark.parametrize("policy", list(POLICIES))
def test_560c_device_delete_per_policy(stack, policy):
    """A device's Delete (the real client). Another client marked message 2
    \\Deleted beforehand (not expunged). trash and the default: the mail is
    moved to Trash; flag: it stays with \\Deleted; expunge: it is gone (UID
    EXPUNGE: message 2, also \\Deleted, is still there), not in Trash. The
    other mail is untouched, nothing comes back to the device, and a second
    device gets only the mail that is not deleted."""
    stack.apply_site(policy_site(stack))
    url = url_of(stack, "/pol-" + policy)
    folder = new_folder(stack, 3)
    before = fm(stack, folder)
    _imap_store(stack, folder, before[mid(folder, 2)][0], r"(\Deleted)")
    c = mail_client(stack, folder)
    c.sync("slow", url=url)
    assert set(items_by_mid(c)) == {mid(folder, 0), mid(folder, 1)}
    c.remove(item_file(c, mid(folder, 0)))
    c.sync("two-way", url=url)
    assert stats(c)[4:8] == [0, 0, 1, 0], c.last_log[-2000:]
    after = fm(stack, folder)
    trash = fm(stack, "Trash")
    gone = mid(folder, 0)
    assert after[mid(folder, 1)][1:] == before[mid(folder, 1)][1:]  # untouched
    assert "\\Deleted" in after[mid(folder, 2)][1]  # another client's, not expunged
    if policy == "flag":
        assert "\\Deleted" in after[gone][1] and after[gone][2] == before[gone][2]
        assert gone not in trash
    elif policy == "expunge":
        assert gone not in after and gone not in trash
    else:
        assert gone not in after
        assert trash[gone][2] == before[gone][2] and "\\Deleted" not in trash[gone][1]
        assert sum(1 for k in trash if k == gone) == 1
    c.sync("two-way", url=url)
    assert stats(c) == [0] * 8, c.last_log[-2000:]
    c2 = mail_client(stack, folder)
    c2.sync("slow", url=url)
    assert set(items_by_mid(c2)) == {mid(folder, 1)}


def test_560d_delete_policy_configtest(stack):
    """Every value is accepted in any case; anything else stops configtest
    with a message naming the directive and the values."""
    base = """
MemDSDatabase "{PG}"
<Location /sync>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    %s
</Location>
"""
    for v in ("trash", "flag", "expunge", "FLAG", "Trash"):
        rc, out = stack.configtest(base % ("MemDSDeletePolicy " + v))
        assert rc == 0, (v, out)
    for bad, words in (("purge", ["MemDSDeletePolicy", "'purge'", "trash, flag, expunge"]),
                       ("", ["MemDSDeletePolicy", "one argument"]),
                       ("flag expunge", ["MemDSDeletePolicy", "one argument"])):
        rc, out = stack.configtest(base % ("MemDSDeletePolicy " + bad))
        assert rc != 0, bad
        for w in words:
            assert w in out, (bad, w, out)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_560e_delete_in_trash_per_policy(stack, policy):
    """A device deletes a mail that is in Trash: under trash (and the
    default) and expunge it is expunged, not moved into Trash again; under
    flag it stays with \\Deleted. The rest of Trash is untouched."""
    stack.apply_site(policy_site(stack))
    url = url_of(stack, "/pol-" + policy)
    tag = "intrash" + uuid.uuid4().hex[:6]
    m = imap(stack)
    for i in range(2):
        assert m.append("Trash", None, imaplib.Time2Internaldate(time.time()),
                        message(tag, i))[0] == "OK"
    m.logout()
    before = fm(stack, "Trash")
    c = mail_client(stack, "Trash")
    c.sync("slow", url=url)
    assert {mid(tag, 0), mid(tag, 1)} <= set(items_by_mid(c))
    c.remove(item_file(c, mid(tag, 0)))
    c.sync("two-way", url=url)
    assert stats(c)[4:8] == [0, 0, 1, 0], c.last_log[-2000:]
    after = fm(stack, "Trash")
    gone = mid(tag, 0)
    if policy == "flag":
        assert "\\Deleted" in after[gone][1] and after[gone][2] == before[gone][2]
        assert set(after) == set(before)
    else:
        assert set(after) == set(before) - {gone}
    assert {k: v[1:] for k, v in after.items() if k != gone} == \
        {k: v[1:] for k, v in before.items() if k != gone}
    c.sync("two-way", url=url)
    assert stats(c) == [0] * 8, c.last_log[-2000:]


# ------------------------------------------ 3. IMAP without CONDSTORE/QRESYNC

CONDSTORE_WORDS = re.compile(rb"CONDSTORE|QRESYNC|CHANGEDSINCE|UNCHANGEDSINCE|MODSEQ|VANISHED",
                             re.I)


class PlainDovecot(SecondDovecot):
    """A second Dovecot (own mail, same users) whose CAPABILITY leaves out
    CONDSTORE and QRESYNC, writing a raw log of every IMAP connection."""

    def __init__(self, stack):
        super().__init__(stack)
        self.rawlog = os.path.join(self.dir, "rawlog")
        os.makedirs(self.rawlog)
        shutil.chown(self.rawlog, "dovecot", "dovecot")
        m = imap(stack)  # the stack's Dovecot: its capabilities, less the two
        caps = m.capability()[1][0].decode().split()
        m.logout()
        assert "CONDSTORE" in caps and "QRESYNC" in caps
        keep = [c for c in caps if c not in ("CONDSTORE", "QRESYNC")]
        with open(self.conf, "a") as f:
            f.write("\nimap_capability = %s\nrawlog_dir = %s\n"
                    % (" ".join(keep), self.rawlog))

    def login(self):
        m = imaplib.IMAP4("127.0.0.1", self.imap)
        m.login(self.stack["MEMDS_USER1"], self.stack["MEMDS_PASS1"])
        return m

    def messages(self, folder):
        return folder_messages_on(self, folder)

    def sent_by_clients(self):
        """What the IMAP clients sent (the .in raw logs), line by line."""
        out = []
        for p in sorted(glob.glob(os.path.join(self.rawlog, "*.in"))):
            with open(p, "rb") as f:
                out += f.read().splitlines()
        return out


def folder_messages_on(d, folder):
    m = d.login()
    assert m.select('"%s"' % folder, readonly=True)[0] == "OK"
    out = {}
    for part in m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")[1]:
        if isinstance(part, tuple):
            uid = int(re.search(rb"UID (\d+)", part[0]).group(1))
            flags = set(re.search(rb"FLAGS \(([^)]*)\)", part[0]).group(1).decode().split())
            k = re.search(rb"(?im)^Message-ID:\s*(\S+)", part[1]).group(1).decode()
            out[k] = (uid, flags - {"\\Recent"}, part[1])
    m.logout()
    return out


def test_560f_imap_server_without_condstore(stack):
    """Against an IMAP server that offers neither CONDSTORE nor QRESYNC the
    module keeps no HIGHESTMODSEQ and diffs every UID and its flags
    (UID FETCH 1:* (UID FLAGS)) on every sync, never sending a CONDSTORE
    command (the server's raw log); new mail, flag changes, \\Deleted and
    an expunge made on the server all reach the real client, whose copies
    end equal to the server's mail byte for byte; a no-change sync sends
    nothing; the device's flag change reaches the server. The hierarchical
    "email" datastore on that server works the same."""
    d = PlainDovecot(stack)
    d.start()
    try:
        m = d.login()
        assert "CONDSTORE" not in m.capabilities and "QRESYNC" not in m.capabilities
        folder = "P" + uuid.uuid4().hex[:8]
        assert m.create(folder)[0] == "OK"
        for i in range(5):
            m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, i))
        m.logout()
        stack.apply_site(stack._default_site + location(
            stack, "/nocs", "MemDSAccountRealm nocs", imap_url=d.url))
        url = url_of(stack, "/nocs")
        c = mail_client(stack, folder)
        c.sync("slow", url=url)
        assert set(items_by_mid(c)) == set(d.messages(folder))
        assert psql(stack, "SELECT uidvalidity > 0 AND highestmodseq = 0 FROM "
                           "memds.mail_folders WHERE account='nocs:alice' AND folder='%s'"
                    % folder) == "t"
        # the server's changes
        msgs = d.messages(folder)
        m = d.login()
        m.select(folder)
        m.uid("STORE", str(msgs[mid(folder, 0)][0]), "+FLAGS", r"(\Flagged)")
        m.uid("STORE", str(msgs[mid(folder, 1)][0]), "+FLAGS", r"(\Seen)")
        m.uid("STORE", str(msgs[mid(folder, 2)][0]), "+FLAGS", r"(\Deleted)")
        m.expunge()  # message 2 goes for good
        m.uid("STORE", str(msgs[mid(folder, 3)][0]), "+FLAGS", r"(\Deleted)")
        m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, 9))
        m.logout()
        c.sync("two-way", url=url)
        assert stats(c)[:4] == [1, 2, 2, 0], c.last_log[-2000:]
        now = {k: v for k, v in d.messages(folder).items() if "\\Deleted" not in v[1]}
        got = items_by_mid(c)
        assert set(got) == set(now) == {mid(folder, i) for i in (0, 1, 4, 9)}
        for k, (uid, flags, raw) in now.items():
            fields, item = got[k]
            assert item == raw, k
            assert fields["flagged"] == ("true" if "\\Flagged" in flags else "false"), k
            assert fields["read"] == ("true" if "\\Seen" in flags else "false"), k
        c.sync("two-way", url=url)
        assert stats(c) == [0] * 8, c.last_log[-2000:]
        # the device's flag change reaches the server
        n = item_file(c, mid(folder, 4))
        with open(os.path.join(c.items_dir, n), "rb") as f:
            b = f.read()
        c.put(n, b.replace(b"<read>false</read>", b"<read>true</read>"))
        c.sync("two-way", url=url)
        assert stats(c)[4:8] == [0, 1, 0, 0], c.last_log[-2000:]
        assert "\\Seen" in d.messages(folder)[mid(folder, 4)][1]
        c.sync("two-way", url=url)
        assert stats(c) == [0] * 8, c.last_log[-2000:]

        # the hierarchical datastore on the same server
        sess = S.Session(url, "dev-" + uuid.uuid4().hex[:10], "alice", "alice-secret")
        sess.post(sess.message(S.alert(1, 201, "email", "./email", "n1")))
        got, a = _receive_all(sess, sess.post(sess.message(S.sync(2, "email", "./email", []))))
        mails = {g: parse_item(data.encode())[1] for op, g, _, typ, data, _ in got
                 if typ == EMAIL_TYPE}
        mine = {re.search(rb"Message-ID: (\S+)", v).group(1).decode(): g
                for g, v in mails.items() if folder.encode() in v}
        assert set(mine) == set(now)
        maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                       "</LocURI></Source></MapItem>" % (g, g) for _, g, *_ in got)
        sess.post(sess.message("<Map><CmdID>1</CmdID><Target><LocURI>email</LocURI></Target>"
                               "<Source><LocURI>./email</LocURI></Source>%s</Map>" % maps))
        msgs = d.messages(folder)
        m = d.login()
        m.select(folder)
        m.uid("STORE", str(msgs[mid(folder, 1)][0]), "+FLAGS", r"(\Answered)")
        m.uid("STORE", str(msgs[mid(folder, 0)][0]), "+FLAGS", r"(\Deleted)")
        m.expunge()
        m.logout()
        s2 = S.Session(url, sess.devid, "alice", "alice-secret", session_id="2")
        s2.post(s2.message(S.alert(1, 200, "email", "./email", "n2", last="n1")))
        got2, a = _receive_all(s2, s2.post(s2.message(S.sync(2, "email", "./email", []))))
        assert sorted(op for op, *_ in got2) == ["Delete", "Replace"], got2
        assert [src for op, src, *_ in got2 if op == "Replace"] == [mine[mid(folder, 1)]]
        assert "true" in [parse_item(data.encode())[0].get("replied")
                          for op, _, _, _, data, _ in got2 if op == "Replace"]
        # what the module sent: the full diff, never a CONDSTORE command
        sent = d.sent_by_clients()
        assert any(re.search(rb"UID FETCH 1:\* \(UID FLAGS\)", line) for line in sent), sent
        bad = [line for line in sent if CONDSTORE_WORDS.search(line)]
        assert bad == [], bad
    finally:
        stack.restore_site()
        d.stop()


# --------------------------------------------------------- 4. large objects

def test_560g_big_mail_down_in_chunks_to_the_real_client(stack):
    """A 15 KB mail (whole under the default truncation) to the real client
    whose MaxMsgSize is 4096: it comes over several messages (MoreData) and
    the client's copy is the IMAP message byte for byte."""
    folder = new_folder(stack, 1)
    m = imap(stack)
    m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, 5, 15000))
    m.logout()
    imap_msgs = folder_messages(stack, folder)
    assert len(imap_msgs[mid(folder, 5)][2]) > 15000
    n0 = posts(stack, "/sync")
    c = mail_client(stack, folder, maxmsg=4096)
    sync(stack, c, "slow")
    assert posts(stack, "/sync") - n0 >= 5  # 15 KB in 4 KB messages
    got = items_by_mid(c)
    assert set(got) == set(imap_msgs)
    for k, v in imap_msgs.items():
        assert got[k][1] == v[2], k
        assert "truncated" not in got[k][0]


def test_560h_big_mail_down_in_chunks_within_the_devices_limits(stack, monkeypatch):
    """Hand-made devices, MaxMsgSize 6000: with large objects (DevInf
    SupportLargeObjs) the 15 KB mail comes whole in chunks, the first
    announcing its Size; with MaxObjSize 12000 it comes truncated to at
    most 12000 bytes (still in chunks); a device whose DevInf does not
    announce large objects gets it truncated to fit one message, no chunk."""
    folder = new_folder(stack, 0)
    m = imap(stack)
    m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, 5, 15000))
    m.logout()
    raw = folder_messages(stack, folder)[mid(folder, 5)][2]

    dev = Device(stack, folder, max_msg=6000)
    got, msgs, _ = dev.sync()
    (op, key, data, _, size), = got
    assert op == "Add" and msgs >= 3, msgs
    assert size == len(data.encode("utf-8"))
    assert parse_item(data.encode("utf-8"))[1] == raw

    dev = Device(stack, folder, max_msg=6000, max_obj=12000)
    got, msgs, _ = dev.sync()
    (op, key, data, _, size), = got
    obj = data.encode("utf-8")
    assert msgs >= 2 and size == len(obj) <= 12000, (msgs, size, len(obj))
    assert ET.fromstring(obj).find("truncated") is not None
    assert b"Subject: %s 5\r\n" % folder.encode() in parse_item(obj)[1]

    dev = Device(stack, folder, max_msg=6000)
    dev.put = lambda devid, f: devinf_put(devid, f).replace("<SupportLargeObjs/>", "")
    sess_items = []
    orig = S.Session.post

    def spy(self, data, url=None):
        a = orig(self, data, url)
        if a.root is not None:
            sess_items.extend(items_of(a))
            assert len(a.body) <= 6000, len(a.body)
        return a
    monkeypatch.setattr(S.Session, "post", spy)
    got, msgs, _ = dev.sync()
    monkeypatch.undo()
    (op, key, data, _, _), = got
    assert not any(it["more"] for it in sess_items)
    obj = data.encode("utf-8")
    assert ET.fromstring(obj).find("truncated") is not None and len(obj) < 6000


def _draft(tag, size):
    body = "".join("Draft line %05d of %s, long enough to make it big.\r\n" % (i, tag)
                   for i in range(size // 50))
    return ("From: Alice <alice@example.test>\r\nTo: Bob <bob@example.test>\r\n"
            "Subject: %s\r\nMessage-ID: <%s@example.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=UTF-8\r\n\r\n%s" % (tag, tag, body))


def _up_in_chunks(stack, url, box, raw):
    """The real client (its MaxMsgSize 4096) adds raw to box at url (a
    location with MemDSMaxMsgSize 4K): it must take at least 8 messages."""
    c = mail_client(stack, box, maxmsg=4096)
    c.sync("slow", url=url)
    c.put("big", ("<Email><read>true</read><emailitem>%s</emailitem></Email>"
                  % S.esc(raw)).encode())
    path = url[url.index("/", 8):]
    n0 = posts(stack, path)
    c.sync("two-way", url=url)
    assert stats(c)[4] == 1, c.last_log[-2000:]
    assert posts(stack, path) - n0 >= 8  # 30 KB in 4 KB messages


def test_560i_big_draft_and_outbox_mail_up_in_chunks(stack):
    """The real client adds a 30 KB draft (Drafts) and sends a 30 KB mail
    (Outbox) to a server whose MaxMsgSize is 4K: both go up as large objects
    over several messages; the draft in IMAP is the device's message byte
    for byte, the mail reaches bob once with its whole body."""
    stack.apply_site(stack._default_site + location(stack, "/smallmsg",
                                                    "MemDSMaxMsgSize 4K"))
    url = url_of(stack, "/smallmsg")
    tag = "bigdraft" + uuid.uuid4().hex[:6]
    raw = _draft(tag, 30000)
    _up_in_chunks(stack, url, "Drafts", raw)
    mine = [v for v in folder_messages(stack, "Drafts").values() if tag.encode() in v[2]]
    assert len(mine) == 1 and mine[0][2] == raw.encode(), len(mine)

    tag = "bigsend" + uuid.uuid4().hex[:6]
    raw = _draft(tag, 30000).replace("Message-ID: <%s@example.test>\r\n" % tag, "")
    _up_in_chunks(stack, url, "Outbox", raw)
    bob = copies(stack, "bob", "bob-secret", "INBOX", tag)
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1 == len(bob)
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login("bob", "bob-secret")
    m.select("INBOX", readonly=True)
    (num,) = m.search(None, "SUBJECT", '"%s"' % tag)[1][0].split()
    body = m.fetch(num, "(BODY.PEEK[TEXT])")[1][0][1]
    m.logout()
    assert body == raw.split("\r\n\r\n", 1)[1].encode()


def _add(cmd_id, luid, data, size=None, more=False):
    meta = "<Type xmlns='syncml:metinf'>%s</Type>" % EMAIL_TYPE
    if size is not None:
        meta += "<Size xmlns='syncml:metinf'>%d</Size>" % size
    return ("<Add><CmdID>%d</CmdID><Meta>%s</Meta><Item><Source><LocURI>%s</LocURI>"
            "</Source><Data>%s</Data>%s</Item></Add>"
            % (cmd_id, meta, luid, S.esc(data), "<MoreData/>" if more else ""))


def test_560j_max_obj_size_refuses_bigger_items(stack):
    """MemDSMaxObjSize 8K: the server announces MaxObjSize 8192 in its
    Alert; a device's 12 KB Add gets 413 whole or as a large object (on the
    first chunk, from its Size) and nothing is appended; a 12 KB Outbox
    mail gets 413 and is not sent; a 5 KB Add is taken. Downwards the
    limit is the device's MaxObjSize, not the server's: a 12 KB mail on
    the server reaches a device whole."""
    stack.apply_site(stack._default_site + location(stack, "/smallobj",
                                                    "MemDSMaxObjSize 8K"))
    url = url_of(stack, "/smallobj")
    folder = new_folder(stack, 0)
    m = imap(stack)
    m.append(folder, None, imaplib.Time2Internaldate(time.time()), message(folder, 1, 12000))
    m.logout()
    big = "<Email><read>true</read><emailitem>%s</emailitem></Email>" % \
        S.esc(_draft("big" + folder, 12000))
    chunked = "<Email><read>true</read><emailitem>%s</emailitem></Email>" % \
        S.esc(_draft("chunked" + folder, 12000))
    small = "<Email><read>true</read><emailitem>%s</emailitem></Email>" % \
        S.esc(_draft("small" + folder, 5000))
    assert len(big) > 12000 and len(small) < 8000
    sess = S.Session(url, "dev-" + uuid.uuid4().hex[:10], "alice", "alice-secret")
    a = sess.post(sess.message(falert(201, folder, "n1")))
    assert re.search(rb"<MaxObjSize[^>]*>8192</MaxObjSize>", a.body), a.body
    half = len(chunked) // 2
    a = sess.post(sess.message(
        "<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>./%s"
        "</LocURI></Source>%s%s%s</Sync>"
        % (folder, folder, _add(4, "L1", big), _add(5, "L3", small),
           _add(6, "L2", chunked[:half], size=len(chunked.encode()), more=True)),
        final=False))
    codes = {s["CmdRef"]: s["Data"] for s in a.statuses() if s["Cmd"] == "Add"}
    assert codes == {"4": "413", "5": "201", "6": "413"}, a.body
    got = folder_messages(stack, folder)
    assert len(got) == 2 and mid(folder, 1) in got  # the server's and the small one
    assert any(b"small" + folder.encode() in v[2] for v in got.values())
    assert psql(stack, "SELECT count(*) FROM memds.mail_messages WHERE account='alice' "
                       "AND folder='%s'" % folder) == "2"
    # downwards: the 12 KB mail whole to a device that takes it
    a = sess.post(sess.message(""))
    its = []
    while True:
        its += items_of(a)
        if a.final:
            break
        a = sess.post(sess.message(
            "<Alert><CmdID>1</CmdID><Data>222</Data><Item><Target><LocURI>%s</LocURI>"
            "</Target><Source><LocURI>dev</LocURI></Source></Item></Alert>" % url,
            final=False))
    whole = [it for it in its if folder.encode() + b" 1" in
             (parse_item(it["data"].encode())[1] or b"")]
    assert len(whole) == 1 and parse_item(whole[0]["data"].encode())[1] == \
        folder_messages(stack, folder)[mid(folder, 1)][2]
    # the Outbox
    tag = "bigout" + uuid.uuid4().hex[:6]
    s2 = S.Session(url, "dev-" + uuid.uuid4().hex[:10], "alice", "alice-secret")
    s2.post(s2.message(S.alert(1, 201, "Outbox", "./outbox", "n1")))
    text = outgoing(tag).replace("Hello, this is", "Hello, this is " + "x" * 12000)
    a = s2.post(s2.message(
        "<Sync><CmdID>2</CmdID><Target><LocURI>Outbox</LocURI></Target><Source><LocURI>"
        "./outbox</LocURI></Source><Add><CmdID>3</CmdID><Meta><Type xmlns='syncml:metinf'>"
        "%s</Type></Meta><Item><Source><LocURI>O1</LocURI></Source><Data>%s</Data></Item>"
        "</Add></Sync>" % (EMAIL_TYPE, S.esc(text))))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["413"], a.body
    settle(stack)
    assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0) == []


def test_560k_delete_in_trash_in_the_email_datastore(stack):
    """The hierarchical "email" datastore, default policy: a device's Delete
    of a mail in another folder moves it to Trash; of a mail in Trash
    expunges it (not a second copy in Trash)."""
    user, pw = stack["MEMDS_USER2"], stack["MEMDS_PASS2"]
    tag = "H" + uuid.uuid4().hex[:6]
    m = imap(stack, user, pw)
    assert m.create(tag)[0] == "OK"
    m.append(tag, None, imaplib.Time2Internaldate(time.time()), message(tag, 0))
    m.append("Trash", None, imaplib.Time2Internaldate(time.time()), message(tag, 1))
    m.logout()
    sess = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:10], user, pw)
    sess.post(sess.message(S.alert(1, 201, "email", "./email", "n1")))
    got, a = _receive_all(sess, sess.post(sess.message(S.sync(2, "email", "./email", []))))
    guid = {}
    for op, g, _, typ, data, _ in got:
        item = parse_item(data.encode())[1] if typ == EMAIL_TYPE else None
        for i in (0, 1):
            if item and ("message %d of %s." % (i, tag)).encode() in item:
                guid[i] = g
    assert set(guid) == {0, 1}, got
    maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                   "</LocURI></Source></MapItem>" % (g, g) for _, g, *_ in got)
    sess.post(sess.message("<Map><CmdID>1</CmdID><Target><LocURI>email</LocURI></Target>"
                           "<Source><LocURI>./email</LocURI></Source>%s</Map>" % maps))
    s2 = S.Session(stack["MEMDS_URL"], sess.devid, user, pw, session_id="2")
    s2.post(s2.message(S.alert(1, 200, "email", "./email", "n2", last="n1")))
    dels = "".join("<Delete><CmdID>%d</CmdID><Item><Source><LocURI>c%s</LocURI></Source>"
                   "</Item></Delete>" % (3 + i, guid[i]) for i in (0, 1))
    a = s2.post(s2.message("<Sync><CmdID>2</CmdID><Target><LocURI>email</LocURI></Target>"
                           "<Source><LocURI>./email</LocURI></Source>%s</Sync>" % dels))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Delete"] == ["200", "200"], a.body
    assert folder_messages_of(stack, user, pw, tag) == {}
    trash = [v[2] for v in folder_messages_of(stack, user, pw, "Trash").values()
             if ("of %s." % tag).encode() in v[2]]
    assert len(trash) == 1 and b"message 0 of" in trash[0], trash


# ------------------------------------- 6. a slow sync's match with other flags

@pytest.mark.parametrize("policy", ["server-wins", "client-wins", "duplicate"])
def test_560l_slow_sync_match_with_other_flags_is_a_conflict(stack, policy):
    """A new device's slow sync sends mail the server has (matched by
    Message-ID and size), one of them read while IMAP has it unread: that
    is a conflict settled by MemDSConflictPolicy, as for a known item.
    server-wins (and duplicate: a mail is never copied for its flags): the
    server's version goes to the device (a Replace), IMAP stays unread;
    client-wins: IMAP gets \\Seen. Either way one copy on each side. (The
    match used to take the device's item as it was: 201, nothing sent,
    the two disagreeing until the next change.)"""
    stack.apply_site(stack._default_site + location(
        stack, "/conf-" + policy, "MemDSConflictPolicy " + policy))
    url = url_of(stack, "/conf-" + policy)
    folder = new_folder(stack, 2)
    before = fm(stack, folder)
    c = mail_client(stack, folder)
    c.sync("slow", url=url)
    assert len(c.local()) == 2
    # a new device holding the same two mails (its first run must keep
    # them: the runner empties a work dir only when not told to reuse it)
    c2 = mail_client(stack, folder)
    c2.runs = 1
    read = item_file(c, mid(folder, 0))
    for n in os.listdir(c.items_dir):
        with open(os.path.join(c.items_dir, n), "rb") as f:
            b = f.read()
        if n == read:
            assert b"<read>false</read>" in b
            b = b.replace(b"<read>false</read>", b"<read>true</read>")
        c2.put(n, b)
    c2.sync("slow", url=url)
    after = fm(stack, folder)
    assert {k: v[2] for k, v in after.items()} == {k: v[2] for k, v in before.items()}
    got = items_by_mid(c2)
    assert set(got) == set(before) and len(c2.local()) == 2
    if policy == "client-wins":
        assert after[mid(folder, 0)][1] == {"\\Seen"}
        assert got[mid(folder, 0)][0]["read"] == "true"
    else:
        assert "\\Seen" not in after[mid(folder, 0)][1]
        assert got[mid(folder, 0)][0]["read"] == "false", c2.last_log[-3000:]
        assert stats(c2)[1] == 1, c2.last_log[-3000:]  # the server's Replace
    assert "\\Seen" not in after[mid(folder, 1)][1]
    assert got[mid(folder, 1)][0]["read"] == "false"
    # and they agree: nothing to do either way
    c2.sync("two-way", url=url)
    assert stats(c2) == [0] * 8, c2.last_log[-2000:]
