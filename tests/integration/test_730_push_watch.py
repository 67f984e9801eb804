"""Push without hooks in the IMAP server (issue 12): the IMAP IDLE watcher
(MemDSPushWatch On) keeps IDLE on INBOX of the accounts with push-enabled
devices, under a lease in PostgreSQL. Dovecot's push_notification is
switched off for alice here (her opt-in metadata key removed), so every
SAN in this test comes from the watcher.

Two extra httpd instances (nodes A and B, each with the module, sharing
the stack's PostgreSQL and Dovecot) are started by the test: the lease is
held by exactly one node; when A is killed (kill -9 of its parent and
children), B takes the account over once A's lease has run out, and mail
delivered while nobody watched reaches the device (UIDNEXT kept with the
lease); a node that stops cleanly gives its leases up at once. And
configtest refuses MemDSPushWatch without what it needs."""
import os
import re
import subprocess
import time
import uuid

from test_200_protocol import psql
from test_550_filters import Device
from test_700_push import (SRV_ID, SRV_PW, Receiver, admin, deliver, digest_of,
                           parse_san)
from nodes import SITE as NODE_SITE, Node

META = "/private/vendor/vendor.dovecot/http-notify"

# nodes.SITE (the mailbox location and the status page) with the watcher on
SITE = NODE_SITE.replace("    MemDSPush On\n", "    MemDSPush On\n    MemDSPushWatch On\n")


def doveadm(stack, *args):
    conf = os.path.join(stack.var, "dovecot", "dovecot.conf")
    return subprocess.run(["doveadm", "-c", conf, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)


def holder(stack):
    return psql(stack, "SELECT coalesce(node, '') FROM memds.push_watch WHERE account = "
                       "'alice' AND imap_server = 'imap://127.0.0.1:%s'"
                % stack["MEMDS_IMAP_PORT"])


def wait_holder(stack, pred, timeout=30):
    """The lease holder once pred(holder) is true; fails after timeout s."""
    deadline = time.time() + timeout
    while True:
        h = holder(stack)
        if pred(h):
            return h
        assert time.time() < deadline, "the lease holder stayed %r for %d s" % (h, timeout)
        time.sleep(0.2)


def node_of(h):
    """(parent pid, child pid) of a lease holder host:ppid:pid."""
    _, ppid, pid = h.rsplit(":", 2)
    return int(ppid), int(pid)


def check_san(san):
    digest, version, ui, init, session, sid, syncs = parse_san(san)
    assert (version, sid) == (12, SRV_ID)
    assert syncs == [(206, 0x306, "Inbox")], syncs
    assert digest == digest_of(san, SRV_ID, SRV_PW)


def test_731_idle_watcher_and_its_lease(stack):
    nodes, rcv, dev = [], Receiver(), None
    r = doveadm(stack, "mailbox", "metadata", "unset", "-u", "alice", "-s", "", META)
    assert r.returncode == 0, r.stdout
    try:
        a, b = Node(stack, "a", SITE), Node(stack, "b", SITE)
        nodes = [a, b]
        a.start()
        # the device syncs through node A: its account is noted for the watcher
        dev = Device(stack, "Inbox", url=a.url)
        got, _, _ = dev.sync()
        assert got is not None
        assert admin(stack, "push-register", "alice", dev.devid, "http",
                     rcv.url).returncode == 0
        assert admin(stack, "server-password", "--basic", "--server-id", SRV_ID, "alice",
                     dev.devid, password=SRV_PW).returncode == 0
        h = wait_holder(stack, lambda h: h != "")
        assert node_of(h)[0] == a.ppid(), (h, a.ppid())
        deadline = time.time() + 20  # connected and in IDLE
        while time.time() < deadline and "IDLE" not in a.log_text():
            time.sleep(0.1)
        assert re.search(r"imap: M\d+ IDLE", a.log_text()), a.log_text()[-3000:]

        # new mail: the watcher sees it (no memds-notify call), the SAN goes
        mark = os.path.getsize(os.path.join(stack.var, "httpd", "access.log"))
        tag = "watch-" + uuid.uuid4().hex[:6]
        t0 = time.time()
        deliver(stack, tag)
        assert rcv.wait(1, timeout=20), "no SAN from the IDLE watcher"
        latency = time.time() - t0
        check_san(rcv.got[0][1])
        with open(os.path.join(stack.var, "httpd", "access.log")) as f:
            f.seek(mark)
            assert "/memds-notify" not in f.read(), "Dovecot's hook is not off"
        assert "seen by the IDLE watcher" in a.log_text()
        got, _, _ = dev.sync()
        assert any(tag in d for _, _, d, _, _ in got)

        # node B joins: the lease stays with A (exactly one watcher)
        b.start()
        time.sleep(3)
        assert node_of(holder(stack))[0] == a.ppid()
        assert not re.search(r"imap: M\d+ IDLE", b.log_text())

        # A crashes; mail arrives while nobody watches; B takes the account
        # once A's lease (8 s) has run out and notices the mail by UIDNEXT
        n0 = len(rcv.got)
        a.kill()
        t_kill = time.time()
        tag2 = "gap-" + uuid.uuid4().hex[:6]
        deliver(stack, tag2)
        h = wait_holder(stack, lambda h: h != "" and node_of(h)[0] == b.ppid(), 30)
        moved = time.time() - t_kill
        assert node_of(h)[0] == b.ppid(), h
        assert rcv.wait(n0 + 1, timeout=20), "mail delivered during the gap not notified"
        check_san(rcv.got[-1][1])
        dev.url = b.url  # (A is gone: the device reaches node B)
        got, _, _ = dev.sync()
        assert any(tag2 in d for _, _, d, _, _ in got)

        # and B watches live
        n1 = len(rcv.got)
        deliver(stack, "live-" + uuid.uuid4().hex[:6])
        assert rcv.wait(n1 + 1, timeout=20)
        dev.sync()

        # a clean stop gives the lease up at once
        b.stop()
        assert wait_holder(stack, lambda h: h == "", 5) == ""
        print("IDLE watcher: SAN %.2f s after delivery; lease moved %.1f s after "
              "the crash" % (latency, moved))
    finally:
        for n in nodes:
            print("---- node %s's error log (tail):\n%s" % (n.name, n.log_text()[-4000:]))
            try:
                n.stop()
            except Exception as e:  # the test's own failure matters more
                print("stopping node %s: %s" % (n.name, e))
        if dev is not None:
            admin(stack, "push-register", "--delete", "alice", dev.devid)
        rcv.close()
        doveadm(stack, "mailbox", "metadata", "set", "-u", "alice", "-s", "", META,
                "user=alice")


def test_732_configtest_refuses_a_watch_without_its_needs(stack):
    base = SITE % (stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"])
    rc, out = stack.configtest(base.replace("    MemDSPush On\n", ""))
    assert rc != 0 and "MemDSPushWatch On needs MemDSPush On" in out, out
    no_master = re.sub(r"(?m)^\s*MemDSIMAPMaster .*\n", "", base)
    rc, out = stack.configtest(no_master)
    assert rc != 0 and "needs MemDSIMAPMaster" in out, out
    rc, out = stack.configtest(base.replace("</Location>",
                                            "    MemDSPushWatchMax 0\n</Location>", 1))
    assert rc != 0, out
    rc, out = stack.configtest(base + "MemDSPushWatchMax 0\n")
    assert rc != 0 and "MemDSPushWatchMax" in out, out
    rc, out = stack.configtest(base + "MemDSPushWatchMax 50\n")
    assert rc == 0, out


def test_733_a_sync_clears_only_what_was_pending_when_it_began(stack):
    """A notification made during a session (mail that may have come after
    the session's look at the mailbox) survives the session's end."""
    dev = Device(stack, "Inbox")
    dev.sync()
    did = psql(stack, "SELECT device_id FROM memds.devices WHERE devid = '%s'" % dev.devid)
    try:
        psql(stack, "INSERT INTO memds.push_pending (device_id, store, due_at, first_at, "
                    "last_at) VALUES (%s, 'Inbox', now() + interval '1 hour', "
                    "now() - interval '1 hour', now() - interval '1 hour')" % did)
        dev.sync()
        assert psql(stack, "SELECT count(*) FROM memds.push_pending WHERE device_id = %s"
                    % did) == "0"
        # pending from before the session, with an event after it began
        # (last_at later than its start): kept
        psql(stack, "INSERT INTO memds.push_pending (device_id, store, due_at, first_at, "
                    "last_at) VALUES (%s, 'Inbox', now() + interval '1 hour', "
                    "now() - interval '1 hour', now() + interval '1 minute')" % did)
        dev.sync()
        assert psql(stack, "SELECT count(*) FROM memds.push_pending WHERE device_id = %s"
                    % did) == "1"
    finally:
        psql(stack, "DELETE FROM memds.push_pending WHERE device_id = %s" % did)
