"""Push (issue 12, first part): mail delivered through Postfix to alice's
Inbox makes Dovecot's push_notification (OX driver) tell the module's
memds-notify handler; the pending notification becomes a SAN 1.2 POSTed to
the device's registered HTTP receiver, with a valid digest and the right
datastore and sync type; the device then syncs and gets the mail, which
clears the notification. A burst makes a handful of SANs, not one per
mail; a receiver that is down keeps the notification (retried, cleared by
the next sync); a device in a session gets nothing until it ends; bad
calls of memds-notify are refused; DevInf offers server-alerted sync
(SyncType 7) only where MemDSPush is on."""
import base64
import hashlib
import http.server
import os
import re
import smtplib
import subprocess
import threading
import time
import uuid

import syncml as S
from test_200_protocol import items_url, psql
from test_510_mail import message
from test_550_filters import Device, falert, receive

SRV_ID = "memds-push-test"
SRV_PW = "srv-" + uuid.uuid4().hex[:8]


class Receiver:
    """A device platform's push receiver: collects the POSTed bodies."""

    def __init__(self, delay=0):
        self.got = []
        self.arrived = 0  # POSTs read, answered or not (delay: seconds before answering)
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                outer.arrived += 1
                time.sleep(delay)
                outer.got.append((self.headers.get("Content-Type"), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d/push" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()

    def wait(self, n, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.got) < n:
            time.sleep(0.05)
        return len(self.got) >= n


def admin(stack, *args, password=None):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-admin")
    return subprocess.run([exe, args[0], "--db", stack["MEMDS_PG"], *args[1:]],
                          input=(password + "\n") if password else "",
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)


def parse_san(b):
    """(digest, version, ui, initiator, session, server id, [(type, ct, uri)])."""
    digest, hdr = b[:16], b[16:24]
    bits = int.from_bytes(hdr, "big")
    version = bits >> 54
    ui = (bits >> 52) & 3
    init = (bits >> 51) & 1
    session = (bits >> 8) & 0xFFFF
    idlen = bits & 0xFF
    sid = b[24:24 + idlen].decode()
    p = 24 + idlen
    n = b[p] >> 4
    p += 1
    syncs = []
    for _ in range(n):
        st = (b[p] >> 4) + 200
        ct = int.from_bytes(b[p + 1:p + 4], "big")
        ul = b[p + 4]
        syncs.append((st, ct, b[p + 5:p + 5 + ul].decode()))
        p += 5 + ul
    return digest, version, ui, init, session, sid, syncs


def digest_of(b, sid, pw, nonce=b""):
    def b64md5(x):
        return base64.b64encode(hashlib.md5(x).digest())
    return hashlib.md5(b64md5(("%s:%s" % (sid, pw)).encode()) + b":" + nonce + b":"
                       + b64md5(b[16:])).digest()


def deliver(stack, tag, n=1):
    with smtplib.SMTP("127.0.0.1", int(stack["MEMDS_SMTP_PORT"]), timeout=30) as s:
        for i in range(n):
            s.sendmail("bob@example.test", ["alice@example.test"], message(tag, i))


def pending(stack, devid):
    return psql(stack, "SELECT coalesce(string_agg(p.store || ':' || p.attempts || ':' || "
                       "coalesce(p.last_error, ''), ','), '') FROM memds.push_pending p "
                       "JOIN memds.devices d USING (device_id) WHERE d.devid = '%s'" % devid)


def _forget(stack, dev):
    """No channel left behind: later deliveries to alice would notify it."""
    if dev is not None:
        admin(stack, "push-register", "--delete", "alice", dev.devid)


def _device(stack, rcv):
    dev = Device(stack, "Inbox")
    got, _, _ = dev.sync()
    r = admin(stack, "push-register", "alice", dev.devid, "http", rcv.url)
    assert r.returncode == 0, r.stdout
    r = admin(stack, "server-password", "--basic", "--server-id", SRV_ID, "alice",
              dev.devid, password=SRV_PW)
    assert r.returncode == 0, r.stdout
    return dev


def test_701_new_mail_reaches_the_device_as_a_san(stack):
    rcv, dev = Receiver(), None
    try:
        dev = _device(stack, rcv)
        tag = "push-" + uuid.uuid4().hex[:6]
        t0 = time.time()
        deliver(stack, tag)
        assert rcv.wait(1), "no SAN within 15 s"
        latency = time.time() - t0
        ctype, san = rcv.got[0]
        assert ctype == "application/vnd.syncml.ds.notification"
        digest, version, ui, init, session, sid, syncs = parse_san(san)
        assert (version, ui, init, sid) == (12, 1, 1, SRV_ID)
        assert syncs == [(206, 0x306, "Inbox")], syncs
        assert digest == digest_of(san, SRV_ID, SRV_PW)
        assert digest != digest_of(san, SRV_ID, "wrong")
        # the device syncs and gets the mail; the notification is gone
        got, _, _ = dev.sync()
        assert any(tag.encode() in d.encode() for _, _, d, _, _ in got), got
        assert pending(stack, dev.devid) == ""
        print("delivery to SAN: %.2f s" % latency)
    finally:
        _forget(stack, dev)
        rcv.close()


def test_702_a_burst_makes_a_handful_of_sans(stack):
    rcv, dev = Receiver(), None
    try:
        dev = _device(stack, rcv)
        tag = "burst-" + uuid.uuid4().hex[:6]
        deliver(stack, tag, 100)
        deadline = time.time() + 60
        while True:
            if len(rcv.got) and pending(stack, dev.devid) == "":
                time.sleep(2)  # anything still coming
                if pending(stack, dev.devid) == "":
                    break
            assert time.time() < deadline, "notifications still pending after 60 s"
            time.sleep(0.2)
        assert 1 <= len(rcv.got) <= 8, len(rcv.got)
        print("100 deliveries: %d SANs" % len(rcv.got))
        got, _, _ = dev.sync()
        assert sum(1 for _, _, d, _, _ in got if tag in d) == 100
    finally:
        _forget(stack, dev)
        rcv.close()


def test_703_receiver_down_keeps_the_notification(stack):
    rcv = Receiver()
    dev = _device(stack, rcv)
    rcv.close()  # the receiver is gone
    stack.allow_log(r"MEMDS00611")
    deliver(stack, "down-" + uuid.uuid4().hex[:6])
    deadline = time.time() + 20
    while True:
        p = pending(stack, dev.devid)
        if p and p.split(":")[1] != "0":
            break
        assert time.time() < deadline, "no failed delivery attempt recorded in 20 s: %r" % p
        time.sleep(0.2)
    store, attempts, err = p.split(":", 2)
    assert store == "Inbox" and int(attempts) >= 1 and err, p
    # the device's next sync clears it
    _forget(stack, dev)
    dev.sync()
    assert pending(stack, dev.devid) == ""


def test_704_no_san_while_the_device_is_in_a_session(stack):
    rcv, dev = Receiver(), None
    try:
        dev = _device(stack, rcv)
        sess = S.Session(stack["MEMDS_URL"], dev.devid, "alice", "alice-secret",
                         session_id="77")
        a = sess.post(sess.message(falert(200, "Inbox", "m1", dev.last)))
        assert a.hdr_status() == "212"
        deliver(stack, "mid-" + uuid.uuid4().hex[:6])
        time.sleep(3)
        assert rcv.got == [] and pending(stack, dev.devid) == "Inbox:0:"
        # the session ends (package 3 and its answers): the sync clears it
        got, _, a, sts = receive(sess, sess.post(sess.message(
            "<Sync><CmdID>3</CmdID><Target><LocURI>Inbox</LocURI></Target><Source>"
            "<LocURI>./Inbox</LocURI></Source></Sync>")))
        sess.post(sess.message(sts))
        assert rcv.got == []
    finally:
        _forget(stack, dev)
        rcv.close()


def test_705_notify_refuses_bad_calls_and_devinf_tells_the_truth(stack):
    stack.allow_log(r"MEMDS00091")
    for method, body, code in [("GET", None, 405), ("PUT", b"{not json", 400),
                               ("PUT", b'{"folder":"INBOX"}', 400),
                               ("POST", b'{"user":"alice","folder":"INBOX",'
                                        b'"nested":{"a":1}}', 400)]:
        st, hdr, out = stack.request(method, "/memds-notify", body,
                                     {"Content-Type": "application/json"})
        assert st == code, (method, body, st)
    st, hdr, out = stack.request("PUT", "/memds-notify",
                                 b'{"user":"nobody","event":"messageNew","folder":"INBOX",'
                                 b'"subject":"\\u00e9t\\u00e9"}',
                                 {"Content-Type": "application/json"})
    assert st == 204
    get = ("<Get><CmdID>3</CmdID><Meta><Type xmlns='syncml:metinf'>application/"
           "vnd.syncml-devinf+xml</Type></Meta><Item><Target><LocURI>./devinf12</LocURI>"
           "</Target></Item></Get>")
    for url, store, seven in [(stack["MEMDS_URL"], "Inbox", True),
                              (items_url(stack), "notes", False)]:
        sess = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
        a = sess.post(sess.message(falert(201, store, "d1") + get))
        assert (b"<SyncType>7</SyncType>" in a.body) == seven, url
        assert b"<SyncType>6</SyncType>" in a.body


def test_706_a_wipe_order_sends_a_san(stack):
    """memds-admin wipe on a device with a push channel: a SAN for each
    datastore it syncs goes at once (UI mode background), so the wipe
    starts without waiting for the device's own next sync."""
    rcv, dev = Receiver(), None
    try:
        dev = _device(stack, rcv)
        r = admin(stack, "wipe", "alice", dev.devid)
        assert r.returncode == 0, r.stdout
        assert rcv.wait(1), "no SAN after the wipe order"
        digest, version, ui, init, session, sid, syncs = parse_san(rcv.got[0][1])
        assert ui == 1 and syncs == [(206, 0x306, "Inbox")], syncs
        assert digest == digest_of(rcv.got[0][1], SRV_ID, SRV_PW)
        got, _, _ = dev.sync()
        assert got and all(op == "Delete" for op, *_ in got), got
    finally:
        _forget(stack, dev)
        rcv.close()


def test_707_a_syncml_11_device_gets_the_legacy_san(stack):
    """The real client in SyncML 1.1 mode: its DevInf says VerDTD 1.1, so
    its notification is the legacy SAN (docs/san.md): a WBXML SyncML 1.1
    message with an Alert 206 for the datastore, POSTed as
    application/vnd.syncml+wbxml, no digest; its Source is the server
    identifier."""
    import json
    import test_510_mail as M
    rcv, c = Receiver(), None
    try:
        folder = M.new_folder(stack, 1)
        c = M.mail_client(stack, folder, enc="wbxml", syncml="1.1")
        M.sync(stack, c, "slow")
        r = admin(stack, "push-register", "alice", c.devid, "http", rcv.url)
        assert r.returncode == 0, r.stdout
        r = admin(stack, "server-password", "--basic", "--server-id", SRV_ID, "alice",
                  c.devid, password=SRV_PW)
        assert r.returncode == 0, r.stdout
        st, _, _ = stack.request("PUT", "/memds-notify",
                                 json.dumps({"user": "alice", "folder": folder,
                                             "event": "MessageNew"}).encode(),
                                 {"Content-Type": "application/json"})
        assert st == 204
        assert rcv.wait(1), "no SAN for the 1.1 device"
        ctype, san = rcv.got[0]
        assert ctype == "application/vnd.syncml+wbxml", ctype
        assert san[:4] == b"\x02\x9f\x53\x6a", san[:8]  # WBXML 1.2, SyncML 1.1
        codec = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-codec")
        xml = subprocess.run([codec, "decode", "-"], input=san, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=30).stdout.decode()
        assert "<VerDTD>1.1</VerDTD>" in xml and "<LocURI>%s</LocURI>" % SRV_ID in xml, xml
        assert re.search(r"<Alert>\s*<CmdID>1</CmdID>\s*<Data>206</Data>\s*<Item>\s*"
                         r"<Source>\s*<LocURI>%s</LocURI>" % re.escape(folder), xml), xml
        # and the device syncs: the notification is gone
        M.sync(stack, c, "two-way")
        assert pending(stack, c.devid) == ""
    finally:
        if c is not None:
            admin(stack, "push-register", "--delete", "alice", c.devid)
            c.cleanup()
        rcv.close()


def test_709_a_restart_lets_the_delivery_in_progress_end(stack):
    """mod_watchdog's threads belong to the process, not to the child: at a
    child's exit they may be inside the push job while the child's pool
    (its PostgreSQL connections, the job's LISTEN) is released. The jobs
    run inside a gate that the child's pool closes first, waiting for the
    job inside (memds_jobgate.h). Here the receiver takes 3 s to answer and
    httpd restarts gracefully meanwhile: the old child ends the delivery
    and commits it, so the device gets one SAN and nothing stays pending.
    (Without the gate the child ended under the job: its transaction was
    lost and the new children sent the SAN again, seen as two here; under
    ASan, a use after free of the job's LISTEN.)"""
    rcv, dev = Receiver(delay=3), None
    try:
        dev = _device(stack, rcv)
        deliver(stack, "exit-" + uuid.uuid4().hex[:6])
        deadline = time.time() + 15
        while rcv.arrived < 1:
            assert time.time() < deadline, "no SAN within 15 s"
            time.sleep(0.05)
        stack.graceful()  # (the old children exit while the job waits)
        deadline = time.time() + 20
        while pending(stack, dev.devid) != "":
            assert time.time() < deadline, pending(stack, dev.devid)
            time.sleep(0.2)
        time.sleep(4)  # (a second delivery would have arrived by now)
        assert rcv.arrived == 1 and len(rcv.got) == 1, (rcv.arrived, len(rcv.got))
        assert pending(stack, dev.devid) == ""
    finally:
        _forget(stack, dev)
        rcv.close()


def test_708_the_push_job_waits_for_work(stack):
    """With nothing pending the push job does not query: it LISTENs on
    memds_push, which a trigger on memds.push_pending notifies (schema/020),
    and otherwise waits for the next due row or its 30 s recheck. Counted
    with the module's own statement counter (memds_db_query_duration_seconds,
    all children): over 4 s with the table empty, the statements beyond the
    scrape's own are at most one round's (a recheck may fall in); polling
    ran its query and transaction at every 200 ms round (≥ 40). That a new
    row still wakes it at once is test_701 and test_707."""
    from test_112_metrics import scrape
    fam = ("memds_db_query_duration_seconds", ())
    psql(stack, "DELETE FROM memds.push_pending")
    time.sleep(1.5)  # (a round held back by a session rechecks within 1 s)
    h0 = scrape(stack)[1][fam][0]
    h1 = scrape(stack)[1][fam][0]
    time.sleep(4)
    h2 = scrape(stack)[1][fam][0]
    own = h1 - h0  # the statements of one scrape
    assert (h2 - h1) - own <= 15, (h0, h1, h2)
