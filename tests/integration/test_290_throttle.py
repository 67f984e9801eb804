"""Throttling and quarantine (issue 13 item 6, docs/throttle.md) on the real
stack, with hand-made devices:

- MemDSLimit: a new session over a limit (device sessions per minute,
  account sessions per minute, device bytes per hour, device sessions at a
  time) gets SyncML 503 in a 200 answer with Retry-After; the refused
  session changes nothing (its Add is not applied, no session row); a
  running session is never cut; a later session succeeds;
- MemDSAutoBlock: failed logins in a row block the device (403 even with
  the right password), shown by memds-admin devices; memds-admin unblock
  lets it in; memds-admin block --until;
- quarantine: a mail the device answers with 500 three times is left out
  of its syncs (the rest of the folder keeps syncing), memds-admin
  quarantine shows it with the reason, --release sends it again; the
  Prometheus page counts it."""
import json
import os
import re
import subprocess
import uuid

import syncml as S
from test_510_mail import imap, message, new_folder, folder_messages
from test_540_truncation import SmallSession
from test_550_filters import Device, EMAIL_TYPE, falert, items_of


def admin(stack, *args):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-admin")
    return subprocess.run([exe, args[0], "--db", stack["MEMDS_PG"], *args[1:]],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)


def psql(stack, sql):
    cmd = ["psql", stack["MEMDS_PG"], "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def site(extra):
    return """
MemDSDatabase "{PG}"
<Location /thr>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster memds-master master-secret
    %s
</Location>
<Location /memds-status>
    SetHandler memds-status
</Location>
""" % extra


def url(stack):
    return "http://127.0.0.1:%s/thr" % stack["MEMDS_HTTP_PORT"]


def add_op(folder, tag):
    return ("<Add><CmdID>4</CmdID><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta>"
            "<Item><Source><LocURI>new-%s</LocURI></Source><Data>%s</Data></Item></Add>"
            % (EMAIL_TYPE, tag, S.esc("<Email><emailitem>%s</emailitem></Email>"
                                      % S.esc(message(tag, 7).decode()))))


def probe(dev, ops="", password="alice-secret", sid=None):
    """The first message of a new session of dev: its Alert with the
    device's anchors and, in the same message, a Sync with ops."""
    sess = SmallSession(dev.url, dev.devid, "alice", password,
                        session_id=sid or "p" + uuid.uuid4().hex[:6])
    body = falert(200 if dev.last else 201, dev.folder, "px", dev.last)
    body += ("<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
             "<LocURI>./%s</LocURI></Source>%s</Sync>"
             % (S.esc(dev.folder), S.esc(dev.folder), ops))
    return sess, sess.post(sess.message(body))


def refused(a, code="503"):
    assert a.http_status == 200, a.http_status
    assert a.hdr_status() == code, a.body
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == [code]
    assert a.resp_uri is None and a.final
    return int(a.headers.get("retry-after", "0"))


def sessions_of(stack, devid):
    return int(psql(stack, "SELECT count(*) FROM memds.sessions s JOIN memds.devices d"
                           " USING (device_id) WHERE d.devid = '%s'" % devid))


def forget_minute(stack):
    """As if a minute had passed for the per-minute limits."""
    psql(stack, "UPDATE memds.session_usage SET started_at = started_at"
                " - interval '70 seconds'")


def test_291_device_sessions_per_minute(stack):
    stack.apply_site(site("MemDSLimit device sessions/min 2"))
    folder = new_folder(stack, 2)
    dev = Device(stack, folder, url=url(stack))
    assert len(dev.sync()[0]) == 2
    assert dev.sync()[0] == []
    m = imap(stack)
    m.append(folder, None, None, message(folder, 5))
    m.logout()
    before = folder_messages(stack, folder)
    n = sessions_of(stack, dev.devid)
    mark = stack.log_mark()
    _, a = probe(dev, add_op(folder, "refused"))
    wait = refused(a)
    assert 1 <= wait <= 60, wait
    assert "sessions per minute of this device" in a.body.decode()
    # nothing of the refused session: no session, its Add not applied
    assert sessions_of(stack, dev.devid) == n
    assert folder_messages(stack, folder) == before
    assert "MEMDS00621" in stack.log_since(mark)
    assert prom(stack, 'memds_sessions_refused_total{reason="throttled"}') >= 1
    # a minute later: the session goes, with the mail that came meanwhile
    forget_minute(stack)
    got, _, st = dev.sync()
    assert st == "200" and [op for op, *_ in got] == ["Add"], got


def test_292_account_sessions_and_device_bytes(stack):
    psql(stack, "DELETE FROM memds.session_usage WHERE account = 'alice'")
    stack.apply_site(site("MemDSLimit account sessions/min 1\n"
                          "    MemDSLimit device bytes/hour 1K"))
    folder = new_folder(stack, 3, size=2000)
    d1 = Device(stack, folder, url=url(stack))
    d2 = Device(stack, folder, url=url(stack))
    # the first session is over 1K of this device's: never cut
    got, _, st = d1.sync()
    assert st == "200" and len(got) == 3
    # another device of the account: over the account's sessions a minute
    _, a = probe(d2)
    assert 1 <= refused(a) <= 60
    assert "of this account" in a.body.decode()
    forget_minute(stack)
    # the first device: over its bytes of the hour
    _, a = probe(d1)
    wait = refused(a)
    assert 60 < wait <= 3600, wait
    assert "bytes per hour of this device" in a.body.decode()
    got, _, st = d2.sync()
    assert st == "200" and len(got) == 3
    # an hour later
    psql(stack, "UPDATE memds.session_usage SET started_at = started_at"
                " - interval '61 minutes' WHERE account = 'alice'")
    got, _, st = d1.sync()
    assert st == "200" and got == []


def test_293_device_concurrent(stack):
    stack.apply_site(site("MemDSLimit device concurrent 1"))
    folder = new_folder(stack, 1)
    dev = Device(stack, folder, url=url(stack))
    assert len(dev.sync()[0]) == 1
    # a session left in progress (package 1 only)
    sess = SmallSession(dev.url, dev.devid, "alice", "alice-secret", session_id="run")
    a = sess.post(sess.message(falert(200, folder, "r1", dev.last)))
    assert a.hdr_status() in ("200", "212")
    _, a = probe(dev)
    assert refused(a) >= 1
    assert "sessions at a time of this device" in a.body.decode()
    # the running session goes on and finishes
    body = ("<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
            "<LocURI>./%s</LocURI></Source></Sync>" % (S.esc(folder), S.esc(folder)))
    a = sess.post(sess.message(body))
    assert a.http_status == 200 and a.final
    a = sess.post(sess.message(""))  # package 5: nothing to answer
    assert a.http_status == 200
    dev.last = "r1"
    got, _, st = dev.sync()
    assert st == "200" and got == []


def test_294_autoblock_and_unblock(stack):
    stack.apply_site(site("MemDSAutoBlock 3 forever\n    MemDSAuthLimit 100 600 600"))
    stack.allow_log(r"MEMDS00622|MEMDS00512")
    folder = new_folder(stack, 1)
    dev = Device(stack, folder, url=url(stack))
    for i in range(3):
        _, a = probe(dev, password="wrong-%d" % i)
        assert a.hdr_status() == "401"
    _, a = probe(dev)
    refused(a, "403")
    assert "blocked" in a.body.decode()
    assert "retry-after" not in a.headers  # until unblocked
    out = admin(stack, "devices", "alice").stdout
    line = [l for l in out.splitlines() if dev.devid in l and "failed sessions" in l]
    assert line and "unblocked by an administrator" in line[0], out
    r = admin(stack, "unblock", "alice", dev.devid)
    assert r.returncode == 0, r.stdout
    assert dev.devid not in admin(stack, "devices", "alice").stdout.split("BLOCKED")[-1] \
        or "BLOCKED" not in admin(stack, "devices", "alice").stdout
    got, _, st = dev.sync()
    assert st == "200" and len(got) == 1
    # by hand, for a time
    r = admin(stack, "block", "alice", dev.devid, "--until", "+1h")
    assert r.returncode == 0, r.stdout
    _, a = probe(dev)
    assert 3500 < refused(a, "403") <= 3600
    assert admin(stack, "unblock", "alice", dev.devid).returncode == 0
    got, _, st = dev.sync()
    assert st == "200" and got == []
    assert admin(stack, "unblock", "alice", "no-such-device").returncode == 1


class Picky(Device):
    """A device that answers the mail whose text has `poison` with 500."""

    poison = None

    def sync(self, flt="", ops=(), expect="200"):
        self.n += 1
        nxt = "n%d" % self.n
        sess = SmallSession(self.url, self.devid, "alice", "alice-secret",
                            session_id=str(self.n))
        a = sess.post(sess.message(falert(200 if self.last else 201, self.folder,
                                          nxt, self.last)))
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == [expect]
        body = ("<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
                "<LocURI>./%s</LocURI></Source></Sync>"
                % (S.esc(self.folder), S.esc(self.folder)))
        a = sess.post(sess.message(body))
        got, sts, maps = [], [], ""
        for i, it in enumerate(items_of(a)):
            bad = self.poison and self.poison in it["data"]
            code = "500" if bad else ("201" if it["op"] == "Add" else "200")
            got.append((it["op"], it["src"], bad))
            sts.append(S.status(i + 1, a.hdr("MsgID").text, it["cmdid"], it["op"], code,
                                source_ref=it["src"], target_ref=it["tgt"]))
            if it["op"] == "Add" and not bad:
                maps += ("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>"
                         "c%s</LocURI></Source></MapItem>" % (it["src"], it["src"]))
        assert a.final
        body = "".join(sts)
        if maps:
            body += ("<Map><CmdID>%d</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
                     "<LocURI>./%s</LocURI></Source>%s</Map>"
                     % (len(sts) + 1, S.esc(self.folder), S.esc(self.folder), maps))
        a = sess.post(sess.message(body))
        assert a.http_status == 200
        self.last = nxt
        return got


def prom(stack, name):
    st, _, body = stack.request("GET", "/memds-status?format=prometheus")
    assert st == 200
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    return int(m.group(1)) if m else None


def test_295_quarantine_by_error_statuses_and_release(stack):
    stack.allow_log(r"MEMDS00623")
    folder = new_folder(stack, 1)
    dev = Picky(stack, folder)
    assert [op for op, *_ in dev.sync()] == ["Add"]
    m = imap(stack)
    tag = "poison-" + uuid.uuid4().hex[:6]
    m.append(folder, None, None, message(tag, 1))
    m.append(folder, None, None, message(folder, 2))
    m.logout()
    dev.poison = tag
    # three sessions in which the device refuses it (the good one goes in
    # the first; it is sent again while the position is held back)
    for k in range(3):
        got = dev.sync()
        assert [bad for _, _, bad in got].count(True) == 1, got
    out = admin(stack, "quarantine", "alice", dev.devid)
    assert out.returncode == 0, out.stdout
    rows = [l.split("\t") for l in out.stdout.splitlines()[1:]]
    assert len(rows) == 1, out.stdout
    assert rows[0][4] == "held" and rows[0][5] == "3" and rows[0][6] == "500"
    assert "the device answered 500" in rows[0][9]
    js = json.loads(admin(stack, "quarantine", "alice", dev.devid, "--json").stdout)
    assert js[0]["state"] == "held" and js[0]["count"] == 3 and js[0]["guid"] == rows[0][3]
    assert prom(stack, "memds_quarantine_items") >= 1
    # the rest of the folder keeps syncing, without it
    m = imap(stack)
    m.append(folder, None, None, message(folder, 3))
    m.logout()
    got = dev.sync()
    assert [(op, bad) for op, _, bad in got] == [("Add", False)], got
    assert dev.sync() == []
    # released: sent again at the next sync, then gone from the table
    dev.poison = None
    r = admin(stack, "quarantine", "--release", "alice", dev.devid)
    assert r.returncode == 0 and "1 item released" in r.stdout, r.stdout
    got = dev.sync()
    assert [(op, src) for op, src, _ in got] == [("Add", rows[0][3])], got
    assert admin(stack, "quarantine", "alice", dev.devid).stdout.count("\n") == 1
    assert dev.sync() == []



def test_297_bad_directives_fail_configtest(stack):
    for bad, word in (("MemDSLimit device sessions/hour 3", "MemDSLimit"),
                      ("MemDSLimit phone sessions/min 3", "MemDSLimit"),
                      ("MemDSLimit device bytes/hour lots", "MemDSLimit"),
                      ("MemDSLimit account concurrent 0", "MemDSLimit"),
                      ("MemDSAutoBlock 0", "MemDSAutoBlock"),
                      ("MemDSAutoBlock 5 sometimes", "MemDSAutoBlock"),
                      ("MemDSQuarantine never", "MemDSQuarantine")):
        rc, out = stack.configtest(site(bad))
        assert rc != 0 and word in out, (bad, out)
    rc, out = stack.configtest(site("MemDSLimit device bytes/hour 10M\n"
                                    "    MemDSLimit account concurrent off\n"
                                    "    MemDSAutoBlock 5 forever\n"
                                    "    MemDSQuarantine off"))
    assert rc == 0, out


def maildir_file(stack, folder, tag):
    """The maildir file of the message whose text has tag."""
    root = os.path.join(stack.var, "mail", "alice", "Maildir", "." + folder)
    for sub in ("cur", "new"):
        d = os.path.join(root, sub)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            with open(os.path.join(d, name), "rb") as f:
                if tag.encode() in f.read():
                    return os.path.join(d, name)
    return None


def test_296_quarantine_of_a_mail_whose_fetch_fails(stack):
    """A maildir file damaged behind Dovecot's back: its UID FETCH makes
    Dovecot drop the connection; the device's package 3 is answered 503
    (MemDSQuarantine) times, then its retry goes on without that mail."""
    stack.allow_log(r"MEMDS00502: .*fetching an item|MEMDS00625")
    folder = new_folder(stack, 2)
    tag = "broken-" + uuid.uuid4().hex[:6]
    m = imap(stack)
    m.append(folder, None, None, message(tag, 1, 3000))
    m.logout()
    assert len(Device(stack, folder).sync()[0]) == 3  # (the server knows it)
    path = maildir_file(stack, folder, tag)
    assert path
    with open(path, "r+b") as f:
        f.truncate(100)
    devid = "dev-" + uuid.uuid4().hex[:10]
    sess = SmallSession(stack["MEMDS_URL"], devid, "alice", "alice-secret",
                        session_id="1")
    a = sess.post(sess.message(falert(201, folder, "n1")))
    assert a.hdr_status() in ("200", "212")
    p3 = sess.message("<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target>"
                      "<Source><LocURI>./%s</LocURI></Source></Sync>"
                      % (S.esc(folder), S.esc(folder)))
    for k in range(3):
        a = sess.post(p3)
        assert a.http_status == 503, (k, a.http_status)
        assert "retry-after" in a.headers
    a = sess.post(p3)  # the same message again: without the broken mail
    assert a.http_status == 200
    its = items_of(a)
    assert len(its) == 2 and not any(tag in it["data"] for it in its), its
    out = admin(stack, "quarantine", "alice", devid).stdout
    rows = [l.split("\t") for l in out.splitlines()[1:]]
    assert len(rows) == 1 and rows[0][4] == "held" and rows[0][5] == "3", out
    assert "fetching it failed" in rows[0][9], out
