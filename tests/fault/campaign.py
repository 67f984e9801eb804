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
  outbox  the device (real client on Outbox) sends a message to bob.
After the kill the client syncs again until a session succeeds (and once
more), then the invariants are checked:
  - the device converges to IMAP: the campaign's messages of the folder are
    the same on both sides, each once, with the same read flag, and drafts
    byte for byte;
  - nothing lost: IMAP holds every message the campaign delivered or the
    device added and did not delete, and what it deleted is in Trash once;
  - every message sent is delivered to bob once and filed in alice's Sent
    once, and leaves the device's Outbox;
  - the point fired (the log line), unless no work reaches it.

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

# Every fault point of the module (docs/crash-recovery.md), with the work
# that reaches it ("hier": the hierarchical datastore's moves and folder
# operations, which the real client cannot express: test_410 has them).
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
    ("imap-move-before", "hier"), ("imap-move-after", "hier"),
    ("imap-folder-create-before", "hier"), ("imap-folder-create-after", "hier"),
    ("imap-folder-rename-before", "hier"), ("imap-folder-rename-after", "hier"),
    ("imap-folder-delete-before", "hier"), ("imap-folder-delete-after", "hier"),
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
        if where == "hier":
            return "not-reached", "no campaign work reaches it (test_410)"
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
        for line in st.log_since(mark).splitlines():
            if re.search(r"\[[a-z_0-9]*:(warn|error|crit)\]", line):
                self.errors.append(line)
        return outcome, detail

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
