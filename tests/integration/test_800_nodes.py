"""Issue 13 item 7: several nodes behind a real load balancer.

Two httpd instances with the module (nodes A and B, tests/integration/
nodes.py) share the stack's PostgreSQL, Dovecot and Postfix behind HAProxy
(Debian's package) on a free loopback port: `balance roundrobin`, no
stickiness, health checks on each node's status page, `retries` with
`option redispatch` and (but in the third variant) L7 retries of requests
that got no answer. Real clients (SyncEvolution and hand-made devices,
distinct device ids) sync alice's and bob's INBOX through it and send mail
through the Outbox, all at once, while mail keeps arriving over SMTP; in
the middle node A is stopped (`httpd -k stop`) or crashes (kill -9 of its
processes) with requests in flight: the devices' rows are held in
PostgreSQL (FOR UPDATE, from psql) until some request of node A waits for
one (pg_stat_activity, by the nodes' application_name), then A goes, then
the rows are given back.

- every session completes (a device resends an unanswered message as it
  was: same MsgID, same bytes; the real client runs a failed session again;
  both kinds of retry are counted);
- every mail of the run reaches every device of its recipient exactly once
  (counted by Message-ID on the device, and no second Add of it);
- every message sent through the Outbox goes out exactly once (one copy
  in the recipient's INBOX and in the sender's Sent, one memds.outbox row);
- sessions were handled by both nodes (a session's messages land on
  either: the engine keeps no session state in memory).

The test prints its figures: sessions, mails, sends, retries, errors, time."""
import collections
import http.client
import imaplib
import os
import random
import re
import smtplib
import socket
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

import syncml as S
from client import Client
from conftest import _port_free
from nodes import SITE, Node
from test_510_mail import parse_item, psql
from test_540_truncation import SmallSession
from test_550_filters import devinf_put, falert, receive
from test_610_outbox import settle

HAPROXY = "/usr/sbin/haproxy"
EMAIL_TYPE = "application/vnd.omads-email+xml"

HAPROXY_CFG = """global
    maxconn 1000
    stats socket {sock} mode 600 level admin
    pidfile {pidfile}
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    # a request that could not be delivered goes again, to the other node;
    # with L7 retries also one that got no answer at all (the node died
    # with it; the whole request is read first so that it can be sent
    # again): SyncML messages may be sent twice (the engine answers a
    # retransmission from the session's stored answer)
    retries 3
    option redispatch 1
{l7}
frontend memds
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /memds-status
    http-check expect status 200
    default-server check inter 300ms fall 2 rise 2
{servers}
"""

USERS = {"alice": "alice-secret", "bob": "bob-secret"}


class Figures:
    """Counters and error notes shared by the clients' threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()
        self.errors = []
        self.why = collections.Counter()

    def add(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def retry(self, why):
        with self.lock:
            self.c["request retries"] += 1
            self.why[why] += 1

    def error(self, who, what):
        with self.lock:
            self.c["errors"] += 1
            self.errors.append("%s: %s" % (who, what))


class Balancer:
    """HAProxy in the foreground (-db), config written here."""

    def __init__(self, stack, nodes, l7=True):
        self.dir = os.path.join(stack.var, "haproxy")
        os.makedirs(self.dir, exist_ok=True)
        port = 40000 + os.getpid() % 10000
        while not _port_free(port):
            port += 1
        self.port = port
        self.url = "http://127.0.0.1:%d/sync" % port
        self.sock = os.path.join(self.dir, "stats.sock")
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        servers = "".join("    server %s 127.0.0.1:%d\n" % (n.name, n.port) for n in nodes)
        with open(self.cfg, "w") as f:
            f.write(HAPROXY_CFG.format(sock=self.sock, port=port, servers=servers,
                                       l7="    option http-buffer-request\n"
                                       "    retry-on conn-failure empty-response\n"
                                       if l7 else "",
                                       pidfile=os.path.join(self.dir, "haproxy.pid")))
        self.proc = None

    def start(self):
        r = subprocess.run([HAPROXY, "-c", "-f", self.cfg], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        assert r.returncode == 0, r.stdout
        self.out = open(os.path.join(self.dir, "haproxy.log"), "w")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.out.close()

    def log_lines(self):
        try:
            with open(os.path.join(self.dir, "haproxy.log"), errors="replace") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def stats(self):
        """{server name: {field: value}} of HAProxy's `show stat`."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        lines = data.decode().splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            if line:
                row = dict(zip(head, line.split(",")))
                out[row["svname"]] = row
        return out

    def wait_up(self, names, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                st = self.stats()
                if all(st.get(n, {}).get("status") == "UP" for n in names):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("HAProxy does not see %s up" % names)


class RetrySession(SmallSession):
    """A hand-made device's session that sends a message again, as it was,
    until it gets an answer (what a device does when the connection breaks)."""

    def __init__(self, fig, *a, **kw):
        super().__init__(*a, **kw)
        self.fig = fig

    def post(self, data, url=None):
        deadline = time.time() + 90
        while True:
            try:
                a = super().post(data, url)
                if a.http_status < 500:
                    return a
                why = "HTTP %d" % a.http_status
            except (OSError, http.client.HTTPException, ET.ParseError) as e:
                why = type(e).__name__
            self.fig.retry(why)
            if time.time() > deadline:
                raise RuntimeError("no answer after 90 s of retries (%s)" % why)
            time.sleep(0.3)


def message_id(data):
    """The Message-ID of an OMA email object (text), or None."""
    try:
        _, item = parse_item(data.encode("utf-8"))
    except ET.ParseError:
        return None
    m = re.search(rb"(?im)^Message-ID:\s*(\S+)", item or b"")
    return m.group(1).decode() if m else None


def outgoing(frm, to, mid, subject):
    msg = ("From: %s@example.test\r\nTo: %s@example.test\r\nSubject: %s\r\n"
           "Message-ID: %s\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=UTF-8\r\n\r\nSent through a node: %s.\r\n"
           % (frm, to, subject, mid, subject))
    return "<Email><read>true</read><emailitem>%s</emailitem></Email>" % S.esc(msg)


class HandDevice:
    """A hand-made device (as test_550's Device) syncing one datastore of
    user through the balancer: its Inbox (receiving; Map of every Add) or
    its Outbox (sending the items it holds; the server deletes them)."""

    def __init__(self, fig, url, user, folder, name):
        self.fig, self.url, self.user, self.folder, self.name = fig, url, user, folder, name
        self.devid = "n8-%s-%s" % (name, uuid.uuid4().hex[:8])
        self.last, self.n = None, 0
        self.held = {}           # luid -> data (Inbox)
        self.adds = collections.Counter()  # Message-ID -> Adds received
        self.outbox = {}         # luid -> data (Outbox items not yet deleted)
        self.sent = []           # Message-IDs put in the Outbox
        self.add_status = collections.Counter()

    def session(self):
        """One session; True when it completed."""
        self.n += 1
        nxt = "n%d" % self.n
        fig = self.fig
        sess = RetrySession(fig, self.url, self.devid, self.user, USERS[self.user],
                            session_id=str(self.n))
        code = 200 if self.last else 201
        put = devinf_put(self.devid, self.folder) if self.n == 1 else ""
        a = sess.post(sess.message(put + falert(code, self.folder, nxt, self.last)))
        st = [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] \
            if a.root is not None else ["HTTP %d" % a.http_status]
        if st == ["508"]:  # (anchors lost: a slow sync, counted)
            fig.add("slow syncs asked")
            self.last = None
            return False
        if st != ["200"]:
            fig.error(self.name, "Alert answered %s" % st)
            return False
        if code == 201:
            self.held, self.adds = {}, collections.Counter()
        ops = ""
        for i, (luid, data) in enumerate(sorted(self.outbox.items())):
            ops += ("<Add><CmdID>%d</CmdID><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta>"
                    "<Item><Source><LocURI>%s</LocURI></Source><Data>%s</Data></Item></Add>"
                    % (4 + i, EMAIL_TYPE, luid, S.esc(data)))
        body = ("<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
                "<LocURI>./%s</LocURI></Source>%s</Sync>" % (self.folder, self.folder, ops))
        a = sess.post(sess.message(body))
        for s in a.statuses():
            if s["Cmd"] == "Add":
                self.add_status[s["Data"]] += 1
        got, _, a, sts = receive(sess, a)
        maps = ""
        for op, key, data, _, _ in got:
            if op == "Add":
                self.held["c" + key] = data
                self.adds[message_id(data)] += 1
                maps += ("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                         "</LocURI></Source></MapItem>" % (key, key))
            elif op == "Replace":
                self.held[key] = data
            elif op == "Delete":
                self.held.pop(key, None)
                if self.outbox.pop(key, None) is not None:
                    fig.add("sends confirmed")
        n = len(sts.split("<Status>")) if sts else 1
        body = sts
        if maps:
            body += ("<Map><CmdID>%d</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
                     "<LocURI>./%s</LocURI></Source>%s</Map>"
                     % (n + 1, self.folder, self.folder, maps))
        a = sess.post(sess.message(body))
        if a.http_status != 200:
            fig.error(self.name, "package 5 answered HTTP %d" % a.http_status)
            return False
        self.last = nxt
        return True

    def mids(self):
        return collections.Counter(message_id(d) for d in self.held.values())


class RealDevice:
    """The real SyncEvolution client (raw-email) on user's Inbox or Outbox
    through the balancer; a failed session is run again."""

    def __init__(self, fig, stack, url, user, folder, name):
        self.fig, self.url, self.name, self.user = fig, url, name, user
        self.c = Client(stack, typ="raw-email", uri=folder, user=user,
                        password=USERS[user])
        self.devid = self.c.devid
        self.n, self.sent = 0, []

    def session(self):
        mode = "two-way" if self.n else "slow"
        rc = self.c.sync(mode, url=self.url, check=False, timeout=240)
        if rc != 0:
            tail = [ln.strip() for ln in self.c.last_log.splitlines()
                    if re.search(r"(?i)error|fail|status|abort", ln)][-2:]
            with open(os.path.join(self.c.workdir, "failed-%d.log" % self.n), "w") as f:
                f.write(self.c.last_log)
            self.fig.add("client retries")
            self.fig.retry("client: " + (" / ".join(t[:120] for t in tail) or "rc %d" % rc))
            return False
        self.n += 1
        self.fig.add("real-client sessions")
        return True

    def mids(self):
        out = collections.Counter()
        for b in self.c.local():
            _, item = parse_item(b)
            m = re.search(rb"(?im)^Message-ID:\s*(\S+)", item or b"")
            out[m.group(1).decode() if m else None] += 1
        return out


def imap_subjects(stack, user, box, tag):
    """Subjects of the messages whose Subject holds tag in user's box."""
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login(user, USERS[user])
    m.select(box, readonly=True)
    _, d = m.search(None, "SUBJECT", '"%s"' % tag)
    out = []
    for i in d[0].split():
        h = m.fetch(i, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1]
        out.append(h.decode().split(":", 1)[1].strip())
    m.logout()
    return out


def session_tokens(node):
    """RespURI tokens of the requests node answered."""
    return set(re.findall(r'"POST /sync\?s=([0-9a-f]+) ', node.access_text()))


class DeviceLock:
    """Holds the rows of some devices in memds.devices (FOR UPDATE) in a
    psql session: their next requests wait in the nodes, in flight."""

    def __init__(self, stack, devids):
        self.p = subprocess.Popen(["psql", stack["MEMDS_PG"], "-XAtq", "-v",
                                   "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.p.stdin.write("BEGIN;\nSELECT count(*) FROM (SELECT 1 FROM memds.devices WHERE "
                           "devid IN (%s) FOR UPDATE) x;\n"
                           % ",".join("'%s'" % d for d in devids))
        self.p.stdin.flush()
        self.n = int(self.p.stdout.readline())

    def release(self):
        if self.p is not None:
            self.p.stdin.write("COMMIT;\n")
            self.p.stdin.close()
            self.p.wait(30)
            self.p = None


def waiting(stack, node):
    """Requests of node waiting for a device's row (in flight)."""
    return int(psql(stack, "SELECT count(*) FROM pg_stat_activity WHERE application_name"
                           " = 'memds-node-%s' AND wait_event_type = 'Lock'" % node.name))


def node_site(name):
    """nodes.SITE with the node's name on its PostgreSQL connections."""
    return SITE.replace('MemDSDatabase "{PG}"',
                        'MemDSDatabase "{PG} application_name=memds-node-%s"' % name)


@pytest.mark.parametrize("how", ["stop", "kill", "kill-no-l7-retry"])
def test_801_two_nodes_behind_haproxy_one_goes(stack, how):
    assert os.access(HAPROXY, os.X_OK), "haproxy is missing (./dev deps installs it)"
    t_start = time.time()
    tag = "n8%s%s" % (how[0], uuid.uuid4().hex[:6])
    fig = Figures()
    a, b = Node(stack, "a", node_site("a")), Node(stack, "b", node_site("b"))
    lb = Balancer(stack, [a, b], l7=how != "kill-no-l7-retry")
    held = None
    devices, threads = [], []
    done = threading.Event()
    expected = {"alice": set(), "bob": set()}   # Message-IDs each user gets
    sends = {}                                  # Message-ID -> (from, to, subject)
    try:
        a.start()
        b.start()
        lb.start()
        lb.wait_up(["a", "b"])

        inbox = [HandDevice(fig, lb.url, "alice", "Inbox", "hand-alice-1"),
                 HandDevice(fig, lb.url, "alice", "Inbox", "hand-alice-2"),
                 HandDevice(fig, lb.url, "bob", "Inbox", "hand-bob-1"),
                 RealDevice(fig, stack, lb.url, "alice", "Inbox", "real-alice"),
                 RealDevice(fig, stack, lb.url, "bob", "Inbox", "real-bob")]
        senders = [HandDevice(fig, lb.url, "alice", "Outbox", "hand-out-alice"),
                   HandDevice(fig, lb.url, "bob", "Outbox", "hand-out-bob"),
                   RealDevice(fig, stack, lb.url, "alice", "Outbox", "real-out-alice")]
        devices = inbox + senders
        per_sender = 4
        lock = threading.Lock()

        def compose(dev, k):
            to = "bob" if dev.user == "alice" else "alice"
            mid = "<%s-%s-%d@example.test>" % (tag, dev.name, k)
            subject = "%s %s %d" % (tag, dev.name, k)
            data = outgoing(dev.user, to, mid, subject)
            with lock:
                sends[mid] = (dev.user, to, subject)
                expected[to].add(mid)
            if isinstance(dev, RealDevice):
                dev.c.put("m%d" % k, data.encode())
            else:
                dev.outbox["L%d" % k] = data
            return mid

        switched = threading.Event()

        def settled(dev):
            if dev not in senders:
                return True
            if isinstance(dev, RealDevice):
                return len(dev.sent) >= per_sender and dev.c.local() == []
            return len(dev.sent) >= per_sender and dev.outbox == {}

        def run(dev):
            while True:
                if dev in senders and dev.n > 0 and len(dev.sent) < per_sender:
                    dev.sent.append(compose(dev, len(dev.sent) + 1))
                try:
                    ok = dev.session()
                except Exception as e:  # a session that could not complete
                    fig.error(dev.name, "%s: %s" % (type(e).__name__, e))
                    ok = False
                fig.add("sessions completed" if ok else "sessions failed")
                if ok and switched.is_set():
                    fig.add("sessions after the switch")
                if done.is_set() and settled(dev):
                    return
                time.sleep(random.uniform(0.1, 0.6))

        for dev in devices:
            th = threading.Thread(target=run, args=(dev,), name=dev.name, daemon=True)
            th.start()
            threads.append(th)

        # mail keeps arriving over SMTP (Postfix, LMTP into Dovecot)
        n_mail = 16
        delivered = [0]

        def deliverer():
            for i in range(n_mail):
                to = "alice" if i % 2 == 0 else "bob"
                mid = "<%s-d%d@example.test>" % (tag, i)
                msg = ("From: Carol <carol@example.test>\r\nTo: %s@example.test\r\n"
                       "Subject: %s d%d\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n"
                       "Content-Type: text/plain; charset=UTF-8\r\n\r\nMail %d of %s.\r\n"
                       % (to, tag, i, mid, i, tag))
                with smtplib.SMTP("127.0.0.1", int(stack["MEMDS_SMTP_PORT"]), timeout=30) as s:
                    s.sendmail("carol@example.test", ["%s@example.test" % to], msg.encode())
                with lock:
                    expected[to].add(mid)
                delivered[0] += 1
                time.sleep(1.0)

        dth = threading.Thread(target=deliverer, daemon=True)
        dth.start()

        # node A goes in the middle of it all: half the mail delivered
        deadline = time.time() + 60
        while fig.c["sessions completed"] < 15 or delivered[0] < n_mail // 2:
            assert time.time() < deadline, ("not half way after 60 s", dict(fig.c), delivered)
            time.sleep(0.1)
        # ... with requests in flight on it: the devices' rows are held in
        # PostgreSQL until some request of node A waits for one
        held = DeviceLock(stack, [d.devid for d in devices])
        deadline = time.time() + 10
        while time.time() < deadline and waiting(stack, a) == 0:
            time.sleep(0.05)
        in_flight = (waiting(stack, a), waiting(stack, b))
        assert in_flight[0] > 0, "no request waits in node A"
        before = dict(fig.c)
        t_switch = time.time()
        if how == "stop":
            # httpd lets running requests finish (for up to ~10 s): the
            # rows are given back a second into the stop
            stopper = threading.Thread(target=a.stop)
            stopper.start()
            time.sleep(1)
            held.release()
            stopper.join(60)
        else:
            a.kill()
            held.release()
        switched.set()
        t_gone = time.time() - t_switch
        # ... and the work goes on through B alone
        deadline = time.time() + 120
        while dth.is_alive() or fig.c["sessions after the switch"] < 30:
            assert time.time() < deadline, ("the work did not go on through B",
                                            dict(fig.c), delivered)
            time.sleep(0.2)
        done.set()
        for th in threads:
            th.join(300)
            assert not th.is_alive(), "%s still running" % th.name
        dth.join(60)
        t_work = time.time() - t_start

        # every mail of the run is in its INBOX, each once; every send once
        deadline = time.time() + 60
        while True:
            inboxes = {u: collections.Counter(imap_subjects(stack, u, "INBOX", tag))
                       for u in USERS}
            if sum(sum(c.values()) for c in inboxes.values()) >= \
                    len(expected["alice"]) + len(expected["bob"]):
                break
            assert time.time() < deadline, ("not every mail arrived in 60 s", inboxes)
            time.sleep(0.5)
        settle(stack)  # the MTA's queue empty: a duplicate would be delivered by now
        inboxes = {u: collections.Counter(imap_subjects(stack, u, "INBOX", tag)) for u in USERS}
        sent_copies = collections.Counter(imap_subjects(stack, "alice", "Sent", tag)
                                          + imap_subjects(stack, "bob", "Sent", tag))
        assert len(sends) == per_sender * len(senders)
        for mid, (frm, to, subject) in sends.items():
            assert inboxes[to][subject] == 1, (subject, inboxes[to][subject])
            assert sent_copies[subject] == 1, (subject, sent_copies[subject])
        for u in USERS:
            assert sum(inboxes[u].values()) == len(expected[u]), (u, inboxes[u])
        rows = psql(stack, "SELECT message_id || ' ' || state FROM memds.outbox "
                           "WHERE message_id LIKE '<%s-%%'" % tag).split("\n")
        outbox = collections.Counter(r.split(" ")[0] for r in rows if r)
        assert outbox == collections.Counter({mid: 1 for mid in sends}), outbox
        states = collections.Counter(r.split(" ")[1] for r in rows if r)
        assert set(states) <= {"filed", "acknowledged"}, states

        # the last sessions bring whatever is left; each device then holds
        # each mail of its user exactly once
        for dev in inbox:
            for _ in range(2):
                for attempt in range(5):
                    if dev.session():
                        fig.add("sessions completed")
                        break
                    fig.add("sessions failed")
                else:
                    raise AssertionError("%s: no final session" % dev.name)
        for dev in inbox:
            got = dev.mids()
            mine = collections.Counter({m: c for m, c in got.items()
                                        if m and m.startswith("<%s-" % tag)})
            assert mine == collections.Counter({m: 1 for m in expected[dev.user]}), \
                (dev.name, sorted(set(expected[dev.user]) - set(mine)),
                 [m for m, c in mine.items() if c > 1])
            if isinstance(dev, HandDevice):
                dup = [m for m, c in dev.adds.items() if c > 1]
                assert not dup, (dev.name, "Added twice", dup)
        for dev in senders:
            if isinstance(dev, HandDevice):
                assert dev.outbox == {}, (dev.name, dev.outbox)
            else:
                assert dev.c.local() == [], dev.name

        # the sessions: all done, handled by both nodes
        devids = ",".join("'%s'" % d.devid for d in devices)
        phases = psql(stack, "SELECT phase, count(*) FROM memds.sessions s JOIN "
                             "memds.devices d USING (device_id) WHERE d.devid IN (%s) "
                             "GROUP BY phase ORDER BY phase" % devids)
        tokens = psql(stack, "SELECT token FROM memds.sessions s JOIN memds.devices d "
                             "USING (device_id) WHERE d.devid IN (%s)" % devids).split()
        on_a, on_b = session_tokens(a), session_tokens(b)
        both = [t for t in tokens if t in on_a and t in on_b]
        only_a = [t for t in tokens if t in on_a and t not in on_b]
        only_b = [t for t in tokens if t in on_b and t not in on_a]
        assert both, "no session was handled by both nodes"
        st = lb.stats()
        fig_lines = [
            "nodes behind HAProxy (%s), node A %s after %d completed sessions "
            "(%.2f s to go), %d requests in flight on A then (%d on B)"
            % ("L7 retries" if how != "kill-no-l7-retry" else "no L7 retries",
               "stopped (httpd -k stop)" if how == "stop" else "killed (kill -9)",
               before.get("sessions completed", 0), t_gone, in_flight[0], in_flight[1]),
            "sessions: %d completed (%d of them the real client's, %d after the switch), "
            "%d failed and run again; in memds.sessions: %s"
            % (fig.c["sessions completed"], fig.c["real-client sessions"],
               fig.c["sessions after the switch"],
               fig.c["sessions failed"], phases.replace("\n", ", ")),
            "sessions by node (requests with a token): both %d, only A %d, only B %d"
            % (len(both), len(only_a), len(only_b)),
            "mails delivered over SMTP: %d; sent through the Outbox: %d (each once in "
            "the recipient's INBOX, in Sent and in memds.outbox: %s)"
            % (n_mail, len(sends), dict(states)),
            "devices: %d receiving (each holds each of its user's %d/%d mails once), "
            "%d sending" % (len(inbox), len(expected["alice"]), len(expected["bob"]),
                            len(senders)),
            "retries: %d requests sent again by hand-made devices and real-client "
            "sessions run again %d (%s); slow syncs asked %d; errors %d %s"
            % (fig.c["request retries"] - fig.c["client retries"], fig.c["client retries"],
               dict(fig.why), fig.c["slow syncs asked"], fig.c["errors"], fig.errors),
            "HAProxy: requests A %s, B %s; retries A %s B %s; redispatches A %s B %s; "
            "5xx to clients %s" % (st["a"]["stot"], st["b"]["stot"], st["a"]["wretr"],
                                   st["b"]["wretr"], st["a"]["wredis"], st["b"]["wredis"],
                                   st["FRONTEND"]["hrsp_5xx"]),
            "time: %.1f s of concurrent work, %.1f s in all" % (t_work, time.time() - t_start),
        ] + ["HAProxy's 5xx: " + ln for ln in lb.log_lines()
             if re.search(r"/\d+ 5\d\d \d+ ", ln)][:5]
        print("\n".join(fig_lines))
        assert fig.c["errors"] == 0, fig.errors
        # the requests caught in flight on A were sent again, by HAProxy or
        # by the devices
        assert int(st["a"]["wretr"]) + fig.c["request retries"] >= 1
    finally:
        done.set()
        if held is not None:
            held.release()
        for n in (a, b):
            bad = [ln for ln in n.log_text().splitlines()
                   if re.search(r"\[[a-z_]+:(warn|error|crit|alert|emerg)\]", ln)]
            print("---- node %s: %d warn/error lines%s" % (n.name, len(bad),
                                                           "\n" + "\n".join(bad[-30:])
                                                           if bad else ""))
        lb.stop()
        for n in (a, b):
            try:
                n.stop()
            except Exception as e:  # the test's own failure matters more
                print("stopping node %s: %s" % (n.name, e))
        for dev in devices:
            if isinstance(dev, RealDevice):
                dev.c.cleanup()
