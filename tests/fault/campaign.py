#!/usr/bin/python3
"""Fault campaign (docs/crash-recovery.md): kill the httpd child at every
named fault point in turn while real SyncEvolution clients do mixed work on
the mailbox datastores, retry, and check the invariants after each kill.

Needs the module built with --enable-fault-injection. httpd runs with
MEMDS_TEST_FAULT=<var>/fault/arm: a point fires when that file names it
(util/memds_util.c), and the child that fires unlinks it, so thousands of
kills need no httpd restart.

The work (one round per kill, the point decides which):
  inbox   new mail delivered over SMTP to alice's INBOX, the device (real
          client on INBOX) marks one read and deletes one (to Trash);
  drafts  the device (real client on Drafts) adds a draft, edits one (new
          content: APPEND of the new version, EXPUNGE of the old one) and
          deletes one;
  outbox  the device (real client on Outbox) sends a message to bob;
  tree    a hand-made device of the hierarchical "email" datastore (bob's;
          the real client cannot express moves or folder operations) moves
          the campaign's message between two folders (UID MOVE) and creates,
          renames or deletes a folder of its own in the same message.
After the kill the client syncs again until a session succeeds (and once
more), then the invariants are checked:
  - the device converges to IMAP: the campaign's messages of the folder are
    the same on both sides, each once, with the same read flag, and drafts
    byte for byte;
  - nothing lost: IMAP holds every message the campaign delivered or the
    device added and did not delete, and what it deleted is in Trash once;
  - every message sent is delivered to bob once and filed in alice's Sent
    once, and leaves the device's Outbox;
  - tree: the message is once on IMAP, in the folder it was moved to, its
    row there under the server id the device knows; the folders the device
    made are on IMAP and in the rows, once, under their last names; the
    retried ops answer 200/201, a new two-way session sends the device none
    of them back, and a slow sync (every fourth tree round) gives the
    device the message once in its folder and its folders once;
  - the point fired (the log line).

    MEMDS_BUILD=build-fault tests/fault/campaign.py [--kills N] [--points a,b]

starts a private stack (./dev up in a temporary MEMDS_VAR), runs one pass
over every point (or N kills, the points in turn) and prints a table of
kills by point with their outcome; exit status 1 on any invariant failure.
The fault stage of ./dev test runs one pass through
tests/integration/test_410_fault_points.py (test_419).
"""
import argparse
import imaplib
import os
import random
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from client import Client  # noqa: E402
import syncml as S  # noqa: E402

# Every fault point of the module (docs/crash-recovery.md), with the work
# that reaches it ("tree": the hierarchical datastore's moves and folder
# operations, which the real client cannot express: a hand-made device),
# but the two of a message the SMTP server refuses (outbox-rejected,
# outbox-rejected-filed: the campaign's sends are taken; test_415c).
POINTS = [
    ("imap-append-before", "drafts"), ("imap-append-after", "drafts"),
    ("imap-replace-expunge-before", "drafts"), ("imap-replace-expunge-after", "drafts"),
    ("imap-store-before", "inbox"), ("imap-store-after", "inbox"),
    ("imap-delete-before", "inbox"), ("imap-delete-after", "inbox"),
    ("imap-file-before", "outbox"), ("imap-file-after", "outbox"),
    ("outbox-received-before", "outbox"), ("outbox-received", "outbox"),
    ("outbox-submitting-before", "outbox"), ("outbox-submitting", "outbox"),
    ("outbox-sent", "outbox"), ("outbox-submitted", "outbox"),
    ("outbox-filed", "outbox"),
    ("pg-commit-before", "any"), ("pg-commit-after", "any"),
    ("answer-write-before", "any"), ("answer-write-after", "any"),
    ("imap-move-before", "tree"), ("imap-move-after", "tree"),
    ("imap-folder-create-before", "tree"), ("imap-folder-create-after", "tree"),
    ("imap-folder-rename-before", "tree"), ("imap-folder-rename-after", "tree"),
    ("imap-folder-delete-before", "tree"), ("imap-folder-delete-after", "tree"),
]
# A crash at this point loses the message (docs/crash-recovery.md: the
# ledger said "submitting", the final dot was not written; a retry must not
# send again since it cannot tell this from a crash after the dot).
IN_DOUBT = {"outbox-submitting"}
# points hit by every request: which hit fires is drawn from 1..3
EVERY_REQUEST = {"pg-commit-before", "pg-commit-after", "answer-write-before",
                 "answer-write-after"}

DOMAIN = "campaign.example.test"


def fired_line(point):
    return "MEMDS fault point %s fired" % point


def arm_path(stack):
    """The arming file, in a directory the children (www-data) may write:
    the one that fires unlinks it, and counts hits next to it."""
    d = os.path.join(stack.var, "fault")
    if not os.path.isdir(d):
        os.makedirs(d)
        os.chmod(d, 0o777)
    return os.path.join(d, "arm")


def ensure_armable(stack):
    """httpd with MEMDS_TEST_FAULT=<var>/fault/arm (one restart, once)."""
    path = arm_path(stack)
    if stack.env.get("MEMDS_TEST_FAULT") == path:
        return path
    stack.dev("svc", "httpd", "stop")
    stack.env["MEMDS_TEST_FAULT"] = path
    stack.dev("svc", "httpd", "start")
    return path


def arm(stack, point, nth=1):
    path = arm_path(stack)
    for f in (path, path + ".hits"):
        try:
            os.unlink(f)
        except FileNotFoundError:
            pass
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%s %d\n" % (point, nth) if nth > 1 else point + "\n")
    os.chmod(tmp, 0o666)
    os.rename(tmp, path)  # (the children read it at each point: atomic)


def disarm(stack):
    """1 when the arming was still there (no child fired)."""
    path = arm_path(stack)
    try:
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0


# ------------------------------------------------------------ server side

def imap(stack, user="alice", pw="alice-secret"):
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login(user, pw)
    return m


def folder_state(stack, folder, user="alice", pw="alice-secret"):
    """[(Message-ID, flags, bytes)] of the campaign's messages of folder
    that are not \\Deleted."""
    m = imap(stack, user, pw)
    out = []
    try:
        if m.select('"%s"' % folder, readonly=True)[0] != "OK":
            return out
        typ, d = m.uid("SEARCH", None, "UNDELETED", "HEADER", "Message-ID",
                       '"@%s"' % DOMAIN)
        uids = d[0].split() if d and d[0] else []
        if not uids:
            return out
        typ, data = m.uid("FETCH", b",".join(uids).decode(), "(FLAGS BODY.PEEK[])")
        for part in data:
            if not isinstance(part, tuple):
                continue
            head, raw = part
            flags = set(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split())
            mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", raw).group(1).decode()
            out.append((mid, flags, raw))
    finally:
        m.logout()
    return out


def count_tag(stack, user, pw, folder, mid):
    m = imap(stack, user, pw)
    try:
        m.select(folder, readonly=True)
        typ, d = m.search(None, "HEADER", "Message-ID", '"%s"' % mid)
        return len(d[0].split()) if d and d[0] else 0
    finally:
        m.logout()


def count_many(stack, user, pw, folder, mids):
    """{Message-ID: number of messages of folder with it} (one login)."""
    out = {}
    if not mids:
        return out
    m = imap(stack, user, pw)
    try:
        m.select(folder, readonly=True)
        for mid in mids:
            typ, d = m.search(None, "HEADER", "Message-ID", '"%s"' % mid)
            out[mid] = len(d[0].split()) if d and d[0] else 0
    finally:
        m.logout()
    return out


def post_until_200(sess, msg, tries=20):
    """The device's retry of msg (a SyncML session of syncml.py) until a
    child answers it."""
    a = None
    for _ in range(tries):
        a = sess.post(msg)
        if a.http_status == 200:
            break
        time.sleep(0.5)
    return a


def psql(stack, sql):
    return subprocess.run(["psql", stack["MEMDS_PG"], "-XAtq", "-c", sql], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def ledger_state(stack, mid):
    return psql(stack, "SELECT string_agg(state, ',') FROM memds.outbox "
                       "WHERE message_id = '%s'" % mid)


# ------------------------------------------------------------ device side

def raw_message(mid, subject, body, frm="Carol <carol@example.test>",
                to="Alice <alice@example.test>"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000"
            "\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=UTF-8\r\n\r\n%s\r\n"
            % (frm, to, subject, mid, body)).encode()


def item(raw, read=True):
    return ("<Email><read>%s</read><emailitem>%s</emailitem></Email>"
            % ("true" if read else "false",
               escape(raw.decode()).replace("\r", "&#13;"))).encode()


def device_items(c):
    """{file name: (Message-ID or None, read, emailitem bytes or None)}."""
    out = {}
    if not os.path.isdir(c.items_dir):
        return out
    for n in os.listdir(c.items_dir):
        with open(os.path.join(c.items_dir, n), "rb") as f:
            b = f.read()
        try:
            root = ET.fromstring(b)
        except ET.ParseError:
            out[n] = (None, None, b)
            continue
        it = root.find("emailitem")
        raw = (it.text or "").encode() if it is not None else None
        mid = re.search(rb"(?im)^Message-ID:\s*(\S+)", raw) if raw else None
        out[n] = (mid.group(1).decode() if mid else None,
                  root.findtext("read") == "true", raw)
    return out


def sync(stack, c, mode="two-way"):
    """One session of the real client (its exit status). Its session logs
    go first: SyncEvolution names a session's log directory after the
    minute plus a letter, and past some thirty sessions a minute it makes
    names of bytes that are not UTF-8 (Client.sync's text output then fails
    to decode) and then fails its sessions; the logs are only logs (the
    sync state is in its config)."""
    logs = os.path.join(c.workdir, "cache", "syncevolution")
    if os.path.isdir(logs):
        for n in os.listdir(logs):
            shutil.rmtree(os.path.join(logs, n), ignore_errors=True)
    return c.sync(mode, url=stack["MEMDS_URL"], check=False)


class Campaign:
    def __init__(self, stack, log=print, seed=None):
        self.stack = stack
        self.log = log
        self.rnd = random.Random(seed)
        self.run_id = uuid.uuid4().hex[:6]
        self.n = 0
        self.clients = {
            "inbox": Client(stack, typ="raw-email", uri="INBOX"),
            "drafts": Client(stack, typ="raw-email", uri="Drafts"),
            "outbox": Client(stack, typ="raw-email", uri="Outbox"),
        }
        # the model: what IMAP must hold
        self.inbox = set()   # Message-IDs delivered and not deleted
        self.drafts = {}     # Message-ID: bytes (the device's latest version)
        self.sent = []       # Message-IDs sent
        self.trashed = []    # Message-IDs the device deleted (to Trash)
        self.results = []    # (point, outcome, detail)
        self.errors = []     # httpd warn/error lines seen

    # ---------------------------------------------------------------- setup
    def setup(self):
        ensure_armable(self.stack)
        for c in self.clients.values():
            assert sync(self.stack, c, "slow") == 0, c.last_log[-3000:]
        # some mail and drafts on both sides before the first kill
        self.deliver(4)
        for _ in range(3):
            mid, raw = self.put_new("drafts", "draft", "Draft v1 of")
            self.drafts[mid] = raw
        for c in self.clients.values():
            assert sync(self.stack, c) == 0, c.last_log[-3000:]
        self.tree_setup()
        bad = self.check()
        if bad:
            raise RuntimeError("not converged before the first kill: " + "; ".join(bad))

    def mid(self, kind):
        self.n += 1
        return "<%s-%s-%d@%s>" % (kind, self.run_id, self.n, DOMAIN)

    def put_new(self, client, kind, text):
        """A new message from alice to bob put on the device: (mid, bytes)."""
        mid = self.mid(kind)
        raw = raw_message(mid, "%s %s" % (kind, mid), "%s %s" % (text, mid),
                          frm="Alice <alice@example.test>", to="Bob <bob@example.test>")
        self.clients[client].put(kind[0] + mid.strip("<>").split("@")[0], item(raw))
        return mid, raw

    # ---------------------------------------------------------------- work
    def deliver(self, k=2):
        s = smtplib.SMTP("127.0.0.1", int(self.stack["MEMDS_SMTP_PORT"]), timeout=30)
        mids = []
        for _ in range(k):
            mid = self.mid("in")
            s.sendmail("carol@example.test", ["alice@example.test"],
                       raw_message(mid, "campaign " + mid, "New mail " + mid))
            mids.append(mid)
        s.quit()
        deadline = time.time() + 30
        for mid in mids:
            while count_tag(self.stack, "alice", "alice-secret", "INBOX", mid) < 1:
                if time.time() > deadline:
                    raise RuntimeError("mail %s not delivered to alice" % mid)
                time.sleep(0.2)
            self.inbox.add(mid)

    def work_inbox(self):
        c = self.clients["inbox"]
        self.deliver(2)
        mine = {n: v for n, v in device_items(c).items() if v[0] in self.inbox}
        names = sorted(mine)
        self.rnd.shuffle(names)
        if names:
            n = names[0]
            with open(os.path.join(c.items_dir, n), "rb") as f:
                b = f.read()
            b = (b.replace(b"<read>false</read>", b"<read>x</read>")
                 .replace(b"<read>true</read>", b"<read>false</read>")
                 .replace(b"<read>x</read>", b"<read>true</read>"))
            c.put(n, b)
        for n in names[1:1 + (len(names) > 3) + (len(names) > 8)]:
            c.remove(n)
            self.inbox.discard(mine[n][0])
            self.trashed.append(mine[n][0])
        return c

    def work_drafts(self):
        c = self.clients["drafts"]
        mid, raw = self.put_new("drafts", "draft", "Draft v1 of")
        self.drafts[mid] = raw
        mine = sorted(n for n, v in device_items(c).items() if v[0] in self.drafts
                      and v[0] != mid)
        self.rnd.shuffle(mine)
        have = device_items(c)
        if mine:
            n = mine[0]
            old = self.drafts[have[n][0]]
            new = old.replace(b"\r\n\r\nDraft v", b"\r\n\r\nDraft edited v")
            new = new + b"edit %d\r\n" % self.n
            c.put(n, item(new))
            self.drafts[have[n][0]] = new
        if len(mine) > 3:
            c.remove(mine[1])
            del self.drafts[have[mine[1]][0]]
            self.trashed.append(have[mine[1]][0])
        return c

    def work_outbox(self):
        c = self.clients["outbox"]
        mid, _ = self.put_new("outbox", "out", "Sent by the campaign:")
        self.sent.append(mid)
        return c

    # ------------------------------------------- the hierarchical datastore
    # A hand-made device of the "email" datastore (the real client cannot
    # express moves or folder operations), as bob (user 2): one campaign
    # message moved between the folders CT<run>A and CT<run>B each round,
    # and folders CT<run>F<n> it creates, renames and deletes.
    def tree_setup(self):
        st = self.stack
        self.tuser, self.tpw = st["MEMDS_USER2"], st["MEMDS_PASS2"]
        self.tprefix = "CT" + self.run_id
        self.tdev = "camp-" + self.run_id
        self.tsid = 0
        self.tanchor = None
        self.tmid = "<tree-%s@%s>" % (self.run_id, DOMAIN)
        self.thome = {}        # folder name: server id (A, B)
        self.tat = self.tprefix + "A"   # where the message must be
        self.tfolders = {}     # live folders the device made: name: its id
        self.trounds = 0
        m = imap(st, self.tuser, self.tpw)
        try:
            for n in ("A", "B"):
                assert m.create(self.tprefix + n)[0] == "OK"
            m.append(self.tat, None, None,
                     raw_message(self.tmid, "tree " + self.run_id, "Moved around"))
        finally:
            m.logout()
        bad = self.tree_slow()
        if bad:
            raise RuntimeError("tree: " + "; ".join(bad))

    def tree_next(self):
        self.tsid += 1
        return "t%d" % self.tsid

    def tree_finish(self, s, a, luids=None):
        """Receive the rest of a session's answer; its last package:
        statuses and a Map for what it got (the device's id: luids(server
        id, data), else "c" + server id); the items."""
        import test_510_mail as M
        got, a = M._receive_all(s, a)
        last = M._hier_items(a)
        body = "".join(S.status(i + 1, a.hdr("MsgID").text, it[5], it[0], "200",
                                source_ref=it[1]) for i, it in enumerate(last))
        adds = [(g, luids(g, d) if luids else "c" + g)
                for op, g, _, _, d, _ in got if op == "Add"]
        if adds:
            body += ("<Map><CmdID>%d</CmdID><Target><LocURI>email</LocURI></Target>"
                     "<Source><LocURI>./email</LocURI></Source>%s</Map>" % (
                         len(last) + 1, "".join(
                             "<MapItem><Target><LocURI>%s</LocURI></Target><Source>"
                             "<LocURI>%s</LocURI></Source></MapItem>" % (g, S.esc(l))
                             for g, l in adds)))
        s.post(s.message(body))  # (the client's last package ends the session)
        return got

    def tree_slow(self):
        """A slow sync of the device: its view rebuilt from what it gets
        (ids "c" + server id, as after a first sync); invariant failures."""
        st = self.stack
        sid = self.tree_next()
        s = S.Session(st["MEMDS_URL"], self.tdev, self.tuser, self.tpw, session_id=sid)
        a = s.post(s.message(S.alert(1, 201, "email", "./email", sid)))
        codes = [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"]
        if codes != ["200"]:
            return ["tree: slow sync refused: %s" % codes]
        a = s.post(s.message(S.sync(2, "email", "./email", [])))

        def luid(g, data):
            # a device maps what it has to its own ids (the folders it made)
            n = re.search(r"<name>(.*?)</name>", data or "")
            return self.tfolders.get(n.group(1) if n else None, "c" + g)
        got = self.tree_finish(s, a, luid)
        self.tanchor = sid
        names, msgs = {}, []
        for op, g, par, typ, data, _ in got:
            if typ == "application/vnd.omads-folder+xml":
                n = re.search(r"<name>(.*?)</name>", data or "")
                if n and n.group(1).startswith(self.tprefix):
                    names.setdefault(n.group(1), []).append(g)
            elif data and self.tmid.strip("<>") in data:
                msgs.append((g, par))
        bad = ["tree: folder %s %d times in the slow sync" % (n, len(g))
               for n, g in names.items() if len(g) != 1]
        ids = {n: g[0] for n, g in names.items()}
        self.thome = {n: ids.get(n) for n in (self.tprefix + "A", self.tprefix + "B")}
        if not hasattr(self, "tguid"):
            self.tguid = msgs[0][0] if msgs else None
        if msgs != [(self.tguid, self.thome[self.tat])]:
            bad.append("tree: the message in the slow sync is %s, not once as %s in %s (%s)"
                       % (msgs, self.tguid, self.tat, self.thome[self.tat]))
        mine = {n for n in ids if n not in self.thome}
        if self.trounds and mine != set(self.tfolders):
            bad.append("tree: the slow sync has folders %s, the device made %s"
                       % (sorted(mine), sorted(self.tfolders)))
        self.tfolders = {n: self.tfolders.get(n, "c" + ids[n]) for n in mine}
        return bad

    def tree_ops(self, point):
        """The round's ops (the Move first, then a folder operation the
        point needs, a random one for the move points) and the model
        after them."""
        import test_510_mail as M
        import test_530_move as MV
        self.trounds += 1
        other = self.tprefix + ("B" if self.tat.endswith("A") else "A")
        ops = [MV._move(3, "c" + self.tguid, target_parent=self.thome[other])]
        self.tat = other
        op = point.split("-")[2] if "folder" in point else \
            self.rnd.choice(["create", "rename", "delete"])
        if op != "create" and not self.tfolders:
            # a folder to rename or delete first (a session of its own)
            self.tree_run([self.tree_create(4)])
        fold = sorted(self.tfolders)
        if op == "create":
            ops.append(self.tree_create(4))
            if len(fold) > 1:
                ops.append(self.tree_delete(5, fold[0]))
        elif op == "rename":
            old = self.rnd.choice(fold)
            new = "%sF%dr" % (self.tprefix, self.trounds)
            luid = self.tfolders.pop(old)
            ops.append(M._op("Replace", 4, luid, "application/vnd.omads-folder+xml",
                             "<Folder><name>%s</name></Folder>" % new))
            self.tfolders[new] = luid
        else:
            ops.append(self.tree_delete(4, self.rnd.choice(fold)))
        return "".join(ops)

    def tree_create(self, cmd_id):
        import test_510_mail as M
        name = "%sF%d" % (self.tprefix, self.trounds)
        self.tfolders[name] = "dev-f%d" % self.trounds
        return M._op("Add", cmd_id, "dev-f%d" % self.trounds,
                     "application/vnd.omads-folder+xml",
                     "<Folder><name>%s</name></Folder>" % name)

    def tree_delete(self, cmd_id, name):
        return ("<Delete><CmdID>%d</CmdID><Item><Source><LocURI>%s</LocURI></Source>"
                "</Item></Delete>" % (cmd_id, self.tfolders.pop(name)))

    def tree_run(self, ops, point=None, nth=1):
        """A two-way session of the device sending ops (killed at point
        when given, the same message then sent again until a child answers,
        as a device retries): (the ops' statuses, the items it got, whether
        the point fired)."""
        import test_530_move as MV
        st = self.stack
        sid = self.tree_next()
        s = S.Session(st["MEMDS_URL"], self.tdev, self.tuser, self.tpw, session_id=sid)
        a = post_until_200(s, s.message(S.alert(1, 200, "email", "./email", sid,
                                                last=self.tanchor)))
        codes = [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"]
        if codes != ["200"]:
            raise RuntimeError("tree: two-way refused: %s" % codes)
        msg = s.message(MV._sync_body("email", "".join(ops)))
        fired = a = None
        if point:
            mark = st.log_mark()
            arm(st, point, nth)
            try:
                a = s.post(msg)
            except Exception:  # noqa: BLE001 (the connection died with the child)
                a = None
            left = disarm(st)
            fired = fired_line(point) in st.log_since(mark)
            if fired and left:
                raise RuntimeError("fired but the arming file is still there")
        if a is None or a.http_status != 200:
            a = post_until_200(s, msg)
        got = self.tree_finish(s, a)
        self.tanchor = sid
        return {x["CmdRef"]: x["Data"] for x in a.statuses()
                if x["Cmd"] in ("Move", "Add", "Replace", "Delete")}, got, fired

    def tree_check(self, got=()):
        """Invariant failures of the tree work: the message once on IMAP,
        in its folder, its row there under the server id the device
        knows; the device's folders on IMAP and in the rows as it made
        them; got (what a two-way sent the device after) echoes none."""
        st, u, pw = self.stack, self.tuser, self.tpw
        bad = []
        where = {f: n for f, n in
                 ((f, count_many(st, u, pw, '"%s"' % f, [self.tmid])[self.tmid])
                  for f in list(self.thome) + ["INBOX"]) if n}
        if where != {self.tat: 1}:
            bad.append("tree: the message is on IMAP %s, not once in %s" % (where, self.tat))
        rows = psql(st, "SELECT folder FROM memds.mail_messages WHERE account = '%s' AND "
                        "guid = '%s' AND NOT deleted" % (u, self.tguid)).split()
        if rows != [self.tat]:
            bad.append("tree: the message's rows (server id %s) are in %s, not %s"
                       % (self.tguid, rows, self.tat))
        m = imap(st, u, pw)
        try:
            listed = {re.search(rb'"([^"]*)"$|(\S+)$', l).group(1 if l.endswith(b'"') else 2)
                      .decode() for l in m.list()[1] if l}
        finally:
            m.logout()
        on_imap = {n for n in listed if n.startswith(self.tprefix) and n not in self.thome}
        in_rows = set(psql(st, "SELECT folder FROM memds.mail_folders WHERE account = '%s' "
                               "AND folder LIKE '%s%%' AND NOT deleted" % (u, self.tprefix)
                           ).split()) - set(self.thome)
        if on_imap != set(self.tfolders) or in_rows != set(self.tfolders):
            bad.append("tree: the device made folders %s; IMAP has %s, the rows %s"
                       % (sorted(self.tfolders), sorted(on_imap), sorted(in_rows)))
        for op, g, par, typ, data, _ in got:
            if (data and (self.tmid.strip("<>") in data
                          or "<name>%s" % self.tprefix in data)) \
                    or g == self.tguid:
                bad.append("tree: a two-way after sends the device %s of %s (%s)"
                           % (op, g, (data or "")[:80]))
        return bad

    def round_tree(self, point):
        """One kill at point in a session of the hierarchical datastore,
        the retry of the same message, a new two-way session, the checks
        (a slow sync of the device every fourth round): (outcome, detail)."""
        ops = self.tree_ops(point)
        codes, got, fired = self.tree_run([ops], point)
        bad = ["tree: the retried ops answered %s" % codes] \
            if any(c not in ("200", "201") for c in codes.values()) else []
        _, got2, _ = self.tree_run([])
        bad += self.tree_check(got + got2)
        if self.trounds % 4 == 0 and not bad:
            bad += self.tree_slow()
        if bad:
            return "FAIL", "; ".join(bad)
        if not fired:
            return "not-fired", "codes %s" % codes
        return "ok", "codes %s" % sorted(codes.items())

    # ------------------------------------------------------------ checking
    def sync_until_ok(self, c, tries=6):
        for i in range(tries):
            if sync(self.stack, c) == 0:
                return True
            time.sleep(0.3 * (i + 1))
        return False

    def check(self, final=False):
        """Invariant failures (strings) after the retries (the sent
        messages: the last few, all of them when final)."""
        bad = []
        st = self.stack
        for kind, model in (("inbox", self.inbox), ("drafts", set(self.drafts))):
            c = self.clients[kind]
            folder = "INBOX" if kind == "inbox" else "Drafts"
            dev = [v for v in device_items(c).values() if v[0] and DOMAIN in v[0]]
            srv = folder_state(st, folder)
            dmids = sorted(v[0] for v in dev)
            smids = sorted(m for m, _, _ in srv)
            if len(set(dmids)) != len(dmids):
                bad.append("%s: duplicate on the device: %s" % (
                    folder, sorted({m for m in dmids if dmids.count(m) > 1})))
            if len(set(smids)) != len(smids):
                bad.append("%s: duplicate on IMAP: %s" % (
                    folder, sorted({m for m in smids if smids.count(m) > 1})))
            if set(dmids) != set(smids):
                bad.append("%s: device and IMAP differ: only device %s, only IMAP %s" % (
                    folder, sorted(set(dmids) - set(smids)), sorted(set(smids) - set(dmids))))
            if set(smids) != model:
                bad.append("%s: IMAP is not what the device did: lost %s, extra %s" % (
                    folder, sorted(model - set(smids)), sorted(set(smids) - model)))
            sflags = {m: "\\Seen" in f for m, f, _ in srv}
            for m, read, raw in dev:
                if m in sflags and sflags[m] != read:
                    bad.append("%s: %s read=%s on the device, \\Seen=%s on IMAP"
                               % (folder, m, read, sflags[m]))
            if kind == "drafts":
                for m, _, raw in srv:
                    if m in self.drafts and raw != self.drafts[m]:
                        bad.append("Drafts: %s on IMAP is not the device's version" % m)
        oc = self.clients["outbox"]
        if oc.local():
            bad.append("Outbox: %d items left on the device" % len(oc.local()))
        gone = self.trashed if final else self.trashed[-4:]
        for mid, n in count_many(st, "alice", "alice-secret", "Trash", gone).items():
            if n != 1:
                bad.append("deleted %s is %d times in Trash" % (mid, n))
        recent = self.sent if final else self.sent[-4:]
        deadline = time.time() + 20
        while True:
            got = count_many(st, "bob", "bob-secret", "INBOX", recent)
            if all(got[m] >= (0 if m in self.lost_ok else 1) for m in recent) \
                    or time.time() > deadline:
                break
            time.sleep(0.3)
        if final and getattr(self, "tguid", None):
            bad += self.tree_check() or self.tree_slow()
        filed = count_many(st, "alice", "alice-secret", "Sent", recent)
        for mid in recent:
            want = 0 if mid in self.lost_ok else 1
            if got[mid] != want:
                bad.append("sent %s delivered %d times (ledger %s)"
                           % (mid, got[mid], ledger_state(st, mid)))
            if filed[mid] != 1:
                bad.append("sent %s filed %d times in Sent (ledger %s)"
                           % (mid, filed[mid], ledger_state(st, mid)))
        return bad

    lost_ok = set()

    # ---------------------------------------------------------------- round
    def round(self, point, where):
        """One kill at point: (outcome, detail)."""
        st = self.stack
        if where == "tree":
            mark = st.log_mark()
            outcome, detail = self.round_tree(point)
            self.warnings(st.log_since(mark))
            return outcome, detail
        if where == "any":
            where = self.rnd.choice(["inbox", "drafts", "outbox"])
        c = getattr(self, "work_" + where)()
        nth = self.rnd.randint(1, 3) if point in EVERY_REQUEST else 1
        mark = st.log_mark()
        arm(st, point, nth)
        rc = sync(st, c)
        left = disarm(st)
        log = st.log_since(mark)
        fired = fired_line(point) in log
        at_kill = ""
        if where == "outbox" and self.sent:
            mid = self.sent[-1]
            at_kill = "ledger=%s bob=%d Sent=%d" % (
                ledger_state(st, mid) or "-",
                count_tag(st, "bob", "bob-secret", "INBOX", mid),
                count_tag(st, "alice", "alice-secret", "Sent", mid))
            if fired and point in IN_DOUBT:
                self.lost_ok.add(mid)
        if fired and left:
            return "FAIL", "fired but the arming file is still there"
        if not self.sync_until_ok(c):
            outcome = "FAIL"
            detail = "the client never synced again: " + c.last_log[-1500:]
        else:
            self.sync_until_ok(c)  # (what the retry changed comes back)
            bad = self.check()
            if bad:
                outcome, detail = "FAIL", "; ".join(bad)
            elif not fired:
                outcome, detail = "not-fired", "rc=%d" % rc
            elif point in IN_DOUBT:
                outcome, detail = "ok-lost-in-doubt", at_kill
            else:
                outcome, detail = "ok", at_kill
        self.warnings(st.log_since(mark))
        return outcome, detail

    def warnings(self, log):
        for line in log.splitlines():
            if re.search(r"\[[a-z_0-9]*:(warn|error|crit)\]", line):
                self.errors.append(line)

    def run(self, kills=None, points=None):
        pts = [p for p in POINTS if not points or p[0] in points]
        total = kills or len(pts)
        for i in range(total):
            point, where = pts[i % len(pts)]
            t0 = time.time()
            try:
                outcome, detail = self.round(point, where)
            except Exception as e:  # noqa: BLE001 (a round's error is its outcome)
                outcome, detail = "FAIL", "%s: %s" % (type(e).__name__, e)
            self.results.append((point, outcome, detail))
            self.log("%5d %-30s %-18s %5.1fs %s" % (i + 1, point, outcome,
                                                    time.time() - t0, detail[:300]))
        return self.results

    def table(self):
        by = {}
        for p, o, _ in self.results:
            by.setdefault(p, {}).setdefault(o, 0)
            by[p][o] += 1
        outs = sorted({o for _, o, _ in self.results})
        lines = ["%-30s %s" % ("point", " ".join("%18s" % o for o in outs))]
        for p, _ in POINTS:
            if p in by:
                lines.append("%-30s %s" % (p, " ".join("%18d" % by[p].get(o, 0) for o in outs)))
        kills = sum(1 for _, o, _ in self.results if o not in ("not-reached", "not-fired"))
        fails = sum(1 for _, o, _ in self.results if o == "FAIL")
        lines.append("kills: %d, invariant failures: %d, rounds: %d"
                     % (kills, fails, len(self.results)))
        return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=None,
                    help="rounds (the points in turn; default one pass)")
    ap.add_argument("--points", default=None, help="comma-separated points")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the log there")
    a = ap.parse_args()
    from conftest import Stack, _pick_port_base
    var = tempfile.mkdtemp(prefix="memds-campaign-")
    os.chmod(var, 0o755)
    st = Stack(var, _pick_port_base())
    st.env["MEMDS_TEST_FAULT"] = arm_path(st)
    out = open(a.out, "a") if a.out else None

    def log(s):
        print(s, flush=True)
        if out:
            out.write(s + "\n")
            out.flush()
    try:
        st.up()
        camp = Campaign(st, log=log, seed=a.seed)
        camp.setup()
        camp.run(a.kills, a.points.split(",") if a.points else None)
        bad = camp.check(final=True)
        if bad:
            camp.results.append(("final-check", "FAIL", "; ".join(bad)))
        log("final check: %s" % ("; ".join(bad) if bad else "ok"))
        log(camp.table())
        if camp.errors:
            log("httpd warn/error lines during the campaign: %d, e.g.:" % len(camp.errors))
            for line in sorted(set(re.sub(r"^\[[^\]]*\] ", "", e)[:200]
                                   for e in camp.errors))[:20]:
                log("  " + line)
        fails = [r for r in camp.results if r[1] == "FAIL"]
        return 1 if fails else 0
    finally:
        st.down()
        if os.environ.get("MEMDS_KEEP_VAR") != "1":
            subprocess.run(["rm", "-rf", var])


if __name__ == "__main__":
    sys.exit(main())
