"""Push from the device's side (issue 12): a device registers its own push
channel in its DevInf (Ext X-memds-push: http URL, sms NUMBER, or none),
only where MemDSPushSelfRegister allows it (an SSRF guard: Off by default,
sms and URL prefixes); the registered receiver then gets the SAN for mail
delivered through Postfix. A refused registration (not allowed, outside
the prefixes, malformed) leaves no channel, logs MEMDS00570 and does not
fail the DevInf Put. In-band notification: a device in a session of its
own is told, in the server's last message, of the datastores with pending
notifications that the session does not bring (not alerted, synced one
way from the client, mail after the session's snapshot) by an Alert 206
naming the datastore; the session still ends (the real SyncEvolution
client answers the Alert with 406 and finishes), and the notification
stays pending, so a SAN follows."""
import glob
import os
import re
import time
import uuid

import syncml as S
from test_200_protocol import psql
from test_510_mail import mail_client, new_folder, sync as mail_sync
from test_550_filters import Device, SmallSession, devinf_put, falert, receive
from test_700_push import (SRV_ID, SRV_PW, Receiver, _device, _forget, admin, deliver,
                           parse_san, pending)
from test_710_push_sms import _until

NS = S.NS
NOTIFY_HDR = {"Content-Type": "application/json"}


def ext_put(devid, folder, *vals):
    """The DevInf Put of test_550 with an Ext X-memds-push of vals."""
    ext = "<Ext><XNam>X-memds-push</XNam>%s</Ext>" % "".join(
        "<XVal>%s</XVal>" % S.esc(v) for v in vals)
    put = devinf_put(devid, folder)
    assert "</DataStore></DevInf>" in put
    return put.replace("</DataStore></DevInf>", "</DataStore>%s</DevInf>" % ext)


def devinf_only(stack, devid, *vals):
    """A session of one message, the DevInf Put with the Ext: its status."""
    sess = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id="9")
    a = sess.post(sess.message(ext_put(devid, "Inbox", *vals)))
    return [s["Data"] for s in a.statuses() if s["Cmd"] == "Put"]


def channel(stack, devid):
    return psql(stack, "SELECT c.channel || ' ' || c.address FROM memds.push_channels c "
                       "JOIN memds.devices d USING (device_id) WHERE d.account = 'alice' "
                       "AND d.devid = '%s'" % devid)


def self_site(stack, args):
    """The default site with MemDSPushSelfRegister args in /sync."""
    site = stack._default_site.replace("{", "{{").replace("}", "}}")
    assert site.count("    MemDSPush On\n") == 1
    stack.apply_site(site.replace("    MemDSPush On\n", "    MemDSPush On\n"
                                  "    MemDSPushSelfRegister %s\n" % args))


def notify(stack, folder="INBOX"):
    st, _, _ = stack.request("PUT", "/memds-notify",
                             ('{"user":"alice","event":"messageNew","folder":"%s"}'
                              % folder).encode(), NOTIFY_HDR)
    assert st == 204


def session_finished(stack, devid, sid):
    return psql(stack, "SELECT s.finished FROM memds.sessions s JOIN memds.devices d "
                       "USING (device_id) WHERE d.devid = '%s' AND s.session_id = '%s'"
                       % (devid, sid))


def inband(a):
    """(code, Target, Source) of every Alert of an answer."""
    out = []
    for al in a.commands("Alert"):
        it = al.find(NS + "Item")
        out.append((al.find(NS + "Data").text,
                    it.find(NS + "Target/" + NS + "LocURI").text,
                    it.find(NS + "Source/" + NS + "LocURI").text))
    return out


def answer_alerts(sess, a, code=406):
    """The device's Status for each Alert of a (as SyncEvolution: 406)."""
    body = "".join(S.status(i + 1, a.hdr("MsgID").text, al.find(NS + "CmdID").text,
                            "Alert", code)
                   for i, al in enumerate(a.commands("Alert")))
    return sess.post(sess.message(body))


def empty_sync(folder):
    return ("<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
            "<LocURI>./%s</LocURI></Source></Sync>" % (S.esc(folder), S.esc(folder)))


def statuses_and_map(folder, got, sts):
    """Package 5: the statuses for package 4 and a Map for its Adds."""
    maps = "".join("<MapItem><Target><LocURI>%s</LocURI></Target><Source><LocURI>c%s"
                   "</LocURI></Source></MapItem>" % (key, key)
                   for op, key, *_ in got if op == "Add")
    n = len(sts.split("<Status>")) if sts else 1
    if maps:
        sts += ("<Map><CmdID>%d</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
                "<LocURI>./%s</LocURI></Source>%s</Map>"
                % (n + 1, S.esc(folder), S.esc(folder), maps))
    return sts


def end(sess, folder, got, a, sts):
    """After package 4 (a its last message): package 5 when the server
    waits for it (its answer), else a."""
    if not a.commands("Sync"):
        return a
    return sess.post(sess.message(statuses_and_map(folder, got, sts)))


def begin(stack, dev, code):
    """Package 1 of the device's next session (Alert code for its folder)."""
    dev.n += 1
    sess = SmallSession(dev.url, dev.devid, "alice", "alice-secret",
                        session_id=str(dev.n), max_msg=dev.max_msg, max_obj=dev.max_obj)
    a = sess.post(sess.message(falert(code, dev.folder, "n%d" % dev.n, dev.last)))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    return sess


# ------------------------------------------------------- self-registration

def test_721_a_device_registers_its_http_channel(stack):
    """Allowed by prefix: the DevInf of the device's first sync makes its
    channel; mail through Postfix then reaches that receiver as a SAN."""
    rcv, dev = Receiver(), None
    try:
        self_site(stack, "sms http://127.0.0.1:%d/" % rcv.srv.server_address[1])
        dev = Device(stack, "Inbox")
        dev.put = lambda devid, folder: ext_put(devid, folder, "http", rcv.url)
        mark = stack.log_mark()
        got, _, st = dev.sync()
        assert st == "200"
        assert channel(stack, dev.devid) == "http " + rcv.url
        assert "MEMDS00571" in stack.log_since(mark)
        r = admin(stack, "server-password", "--basic", "--server-id", SRV_ID, "alice",
                  dev.devid, password=SRV_PW)
        assert r.returncode == 0, r.stdout
        tag = "self-" + uuid.uuid4().hex[:6]
        deliver(stack, tag)
        assert rcv.wait(1), "no SAN at the receiver the device registered"
        assert parse_san(rcv.got[0][1])[6] == [(206, 0x306, "Inbox")]
        got, _, _ = dev.sync()
        assert any(tag in d for _, _, d, _, _ in got)
        # sms, allowed here, replaces it; none removes it
        assert devinf_only(stack, dev.devid, "sms", "+4915550123") == ["200"]
        assert channel(stack, dev.devid) == "sms +4915550123"
        assert devinf_only(stack, dev.devid, "none") == ["200"]
        assert channel(stack, dev.devid) == ""
        assert devinf_only(stack, dev.devid, "none") == ["200"]
    finally:
        _forget(stack, dev)
        rcv.close()


def test_722_refused_registrations(stack):
    """Not allowed (Off, the default), outside every prefix, sms not
    allowed, malformed: no channel, MEMDS00570 with the reason, the Put
    still 200; a channel the administrator set stays as it was."""
    stack.allow_log(r"MEMDS00570")
    cases = [
        (None, ("http", "http://127.0.0.1:9/push"), "Off"),
        ("http://127.0.0.1:9/", ("http", "http://127.0.0.2:9/push"), "no prefix"),
        ("http://127.0.0.1:9/", ("http", "http://127.0.0.1:9@169.254.169.254/"), "no prefix"),
        ("http://127.0.0.1:9/", ("sms", "+4915550123"), "sms is not allowed"),
        ("sms", ("sms", "12ab"), "phone number"),
        ("sms", ("pigeon", "+4915550123"), "malformed"),
        ("sms", ("http",), "malformed"),
        ("sms http://127.0.0.1:9/", ("http", "http://127.0.0.1:9/a b"), "space"),
    ]
    site = "unset"
    for args, vals, why in cases:
        if args != site:
            if args is None:
                stack.restore_site()
            else:
                self_site(stack, args)
            site = args
        devid = "dev-" + uuid.uuid4().hex[:10]
        mark = stack.log_mark()
        assert devinf_only(stack, devid, *vals) == ["200"], (args, vals)
        assert channel(stack, devid) == "", (args, vals)
        log = [ln for ln in stack.log_since(mark).splitlines() if "MEMDS00570" in ln]
        assert len(log) == 1 and devid in log[0] and why in log[0], (args, vals, log)
    # an administrator's channel is not touched by a refused one
    devid = "dev-" + uuid.uuid4().hex[:10]
    assert devinf_only(stack, devid) == ["200"]  # (an empty Ext: malformed)
    r = admin(stack, "push-register", "alice", devid, "http", "http://127.0.0.1:9/admin")
    assert r.returncode == 0, r.stdout
    assert devinf_only(stack, devid, "sms", "+49 1555") == ["200"]
    assert channel(stack, devid) == "http http://127.0.0.1:9/admin"
    admin(stack, "push-register", "--delete", "alice", devid)


def test_723_directive_checked_at_configtest(stack):
    base = stack._default_site.replace("{", "{{").replace("}", "}}")
    for bad in ["ftp://push.example/", "http://push.example", "Off sms", "sms Off",
                "http://", "https://push.example/ x", "https:///p/"]:
        rc, out = stack.configtest(base.replace(
            "    MemDSPush On\n", "    MemDSPush On\n    MemDSPushSelfRegister %s\n" % bad))
        assert rc != 0 and "MemDSPushSelfRegister" in out, (bad, out)
    for good in ["Off", "sms", "sms https://push.example/ http://10.0.0.1:8080/p/"]:
        rc, out = stack.configtest(base.replace(
            "    MemDSPush On\n", "    MemDSPush On\n    MemDSPushSelfRegister %s\n" % good))
        assert rc == 0, (good, out)


# ----------------------------------------------------------------- in-band

def test_724_inband_for_a_datastore_not_in_the_session(stack):
    """A session of another folder while the Inbox gets mail: its last
    message carries Alert 206 for the Inbox (Target the device's URI,
    Source the server's), the session ends, the notification stays and its
    SAN follows the session; the device's Inbox sync clears it."""
    rcv, dev = Receiver(), None
    try:
        dev = _device(stack, rcv)
        other = Device(stack, new_folder(stack, 1))
        other.devid, other.n = dev.devid, 10
        got, _, _ = other.sync()
        assert len(got) == 1
        sess = begin(stack, other, 200)
        notify(stack)  # Dovecot's event for the Inbox, mid-session
        assert pending(stack, dev.devid) == "Inbox:0:"
        got, _, a, sts = receive(sess, sess.post(sess.message(empty_sync(other.folder))))
        assert got == [] and a.final
        a = end(sess, other.folder, got, a, sts)
        assert a.final and inband(a) == [("206", "./Inbox", "Inbox")]
        assert session_finished(stack, dev.devid, str(other.n)) == "t"
        b = answer_alerts(sess, a)
        assert b.http_status == 200 and b.final and inband(b) == []
        assert pending(stack, dev.devid).startswith("Inbox:")
        t0 = time.time()
        assert rcv.wait(1, timeout=20), "no SAN after the session"
        print("SAN %.1f s after the session" % (time.time() - t0))
        assert parse_san(rcv.got[0][1])[6] == [(206, 0x306, "Inbox")]
        dev.sync()
        assert pending(stack, dev.devid) == ""
    finally:
        _forget(stack, dev)
        rcv.close()


def test_725_inband_for_mail_after_the_snapshot(stack):
    """Mail that arrives after package 4 was made (the session's snapshot
    of the Inbox): the Map's answer carries Alert 206 for the Inbox and the
    notification outlives the session's completion (which clears the
    Inbox's notifications): a SAN follows and the next sync brings it."""
    rcv, dev = Receiver(), None
    try:
        dev = _device(stack, rcv)
        tag1, tag2 = ("snap-" + uuid.uuid4().hex[:6] for _ in range(2))
        deliver(stack, tag1)
        assert rcv.wait(1)
        assert _until(lambda: pending(stack, dev.devid), lambda v: v == "") == ""
        sess = begin(stack, dev, 200)
        got, _, a, sts = receive(sess, sess.post(sess.message(empty_sync("Inbox"))))
        assert any(tag1 in d for _, _, d, _, _ in got) and inband(a) == []
        deliver(stack, tag2)  # after the snapshot
        assert _until(lambda: pending(stack, dev.devid), lambda v: v != "") == "Inbox:0:"
        a = sess.post(sess.message(statuses_and_map("Inbox", got, sts)))
        assert a.final and inband(a) == [("206", "./Inbox", "Inbox")]
        assert session_finished(stack, dev.devid, str(dev.n)) == "t"
        dev.last = "n%d" % dev.n
        assert answer_alerts(sess, a).final
        assert pending(stack, dev.devid).startswith("Inbox:")
        assert rcv.wait(2, timeout=20), "no SAN for the mail after the snapshot"
        got, _, _ = dev.sync()
        assert any(tag2 in d for _, _, d, _, _ in got)
        assert pending(stack, dev.devid) == ""
    finally:
        _forget(stack, dev)
        rcv.close()


def test_726_inband_after_a_one_way_from_client_sync(stack):
    """A notification pending from before the session (its receiver is
    down) for the datastore the device syncs one way from the client
    (202): told in the last message, and still pending afterwards."""
    stack.allow_log(r"MEMDS00611")
    rcv = Receiver()
    dev = _device(stack, rcv)
    rcv.close()
    try:
        notify(stack)
        assert _until(lambda: pending(stack, dev.devid),
                     lambda v: v and v.split(":")[1] != "0").startswith("Inbox:")
        sess = begin(stack, dev, 202)
        got, _, a, sts = receive(sess, sess.post(sess.message(empty_sync("Inbox"))))
        assert got == [] and a.final
        a = end(sess, "Inbox", got, a, sts)
        assert a.final and inband(a) == [("206", "./Inbox", "Inbox")]
        dev.last = "n%d" % dev.n
        assert answer_alerts(sess, a, 200).final
        assert pending(stack, dev.devid).startswith("Inbox:")
        # a two-way sync of it satisfies it: no Alert, nothing pending
        sess = begin(stack, dev, 200)
        got, _, a, sts = receive(sess, sess.post(sess.message(empty_sync("Inbox"))))
        a = end(sess, "Inbox", got, a, sts)
        assert a.final and inband(a) == []
        dev.last = "n%d" % dev.n
        assert pending(stack, dev.devid) == ""
    finally:
        _forget(stack, dev)


def test_727_the_real_client_and_the_inband_alert(stack, monkeypatch):
    """SyncEvolution (libsynthesis 3.4) syncs one folder while another of
    its datastores has a notification pending: the server's last message
    carries Alert 206 for it; the client answers 406 (it implements no
    server alerts inside a session), the session ends cleanly (exit 0,
    the row finished), and the notification stays for the SAN."""
    stack.allow_log(r"MEMDS00611")
    monkeypatch.setenv("MEMDS_CLIENT_LOGLEVEL", "5")
    f1, f2 = new_folder(stack, 1), new_folder(stack, 1)
    c1 = mail_client(stack, f1)
    c2 = mail_client(stack, f2)
    c2.devid = c1.devid
    try:
        mail_sync(stack, c1, "slow")
        mail_sync(stack, c2, "slow")
        r = admin(stack, "push-register", "alice", c1.devid, "http", "http://127.0.0.1:9/down")
        assert r.returncode == 0, r.stdout
        notify(stack, f2)
        assert _until(lambda: pending(stack, c1.devid), bool).startswith(f2 + ":")
        mark = stack.log_mark()
        mail_sync(stack, c1, "two-way")  # exit code 0: the session ended well
        assert "MEMDS00572" in stack.log_since(mark)
        assert psql(stack, "SELECT bool_and(s.finished) FROM memds.sessions s JOIN "
                           "memds.devices d USING (device_id) WHERE d.devid = '%s'"
                    % c1.devid) == "t"
        assert pending(stack, c1.devid).startswith(f2 + ":")
        # the session's messages as the client logged them (loglevel 5)
        logs = max(glob.glob(os.path.join(c1.workdir, "cache", "syncevolution", "*")),
                   key=os.path.getmtime)
        got, sent = b"", b""
        for p in sorted(glob.glob(os.path.join(logs, "*_msg*.xml"))):
            with open(p, "rb") as f:
                if p.endswith("_incoming.xml"):
                    got += f.read()
                else:
                    sent += f.read()
        assert b"<Alert><CmdID>2</CmdID><Data>206</Data><Item><Target><LocURI>./mail" \
               b"</LocURI></Target><Source><LocURI>%s</LocURI>" % f2.encode() in got
        assert re.search(rb"<Cmd>Alert</Cmd>.*?<Data>406</Data><Item><Data>Unimplemented "
                         rb"Alert Code</Data>", sent)
    finally:
        admin(stack, "push-register", "--delete", "alice", c1.devid)
        c1.cleanup()
        c2.cleanup()
