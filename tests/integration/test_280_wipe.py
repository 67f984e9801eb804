"""Remote wipe (issue 13 item 1): memds-admin wipe records the order; at
its next sessions the device gets a Delete for every item it has mapped in
each datastore it syncs (the server's own changes wait, the device's
changes are refused with 403, nothing changes on IMAP); the datastore's
maps and anchors go; when none is left the device is refused (403, logged)
until memds-admin enable; memds-admin devices shows the progress."""
import os
import subprocess
import uuid

import syncml as S
from test_510_mail import folder_messages, message, new_folder
from test_550_filters import Device, EMAIL_TYPE, falert


def admin(stack, *args):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-admin")
    return subprocess.run([exe, args[0], "--db", stack["MEMDS_PG"], *args[1:]],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)


def _line(out, devid):
    return [l for l in out.splitlines() if devid in l and "wipe ordered" not in l][0]


def test_281_wipe_every_datastore_then_refuse_until_enabled(stack):
    f1, f2 = new_folder(stack, 2), new_folder(stack, 3)
    d1 = Device(stack, f1)
    d2 = Device(stack, f2)
    d2.devid = d1.devid
    assert len(d1.sync()[0]) == 2 and len(d2.sync()[0]) == 3
    before = {f: folder_messages(stack, f) for f in (f1, f2)}
    r = admin(stack, "devices", "alice")
    assert r.returncode == 0 and d1.devid in r.stdout, r.stdout
    assert "%s:2" % f1 in _line(r.stdout, d1.devid)
    r = admin(stack, "wipe", "alice", d1.devid)
    assert r.returncode == 0 and "wiped" in r.stdout, r.stdout
    assert "requested" in _line(admin(stack, "devices", "alice").stdout, d1.devid)
    assert admin(stack, "wipe", "alice", "no-such-device").returncode == 1
    # first datastore: every mapped item deleted on the device, its own Add
    # refused, IMAP untouched
    add = ("<Add><CmdID>4</CmdID><Meta><Type xmlns='syncml:metinf'>%s</Type></Meta>"
           "<Item><Source><LocURI>new1</LocURI></Source><Data>%s</Data></Item></Add>"
           % (EMAIL_TYPE, S.esc("<Email><emailitem>%s</emailitem></Email>"
                                % S.esc(message(f1, 9).decode()))))
    luids = set(d1.held)
    got, _, st = d1.sync(ops=[add])
    assert st == "200"
    assert sorted((op, sd) for op, _, _, sd, _ in got) == [("Delete", False)] * 2, got
    assert {k for _, k, *_ in got} == luids and len(luids) == 2
    line = _line(admin(stack, "devices", "alice").stdout, d1.devid)
    assert f1 not in line and "%s:3" % f2 in line and "requested" in line, line
    # the second datastore
    got, _, _ = d2.sync()
    assert sorted(op for op, *_ in got) == ["Delete"] * 3, got
    out = admin(stack, "devices", "alice").stdout
    assert "wiped" in _line(out, d1.devid), out
    assert {f: folder_messages(stack, f) for f in (f1, f2)} == before
    # refused until enabled
    stack.allow_log(r"MEMDS00545")
    sess = S.Session(stack["MEMDS_URL"], d1.devid, "alice", "alice-secret",
                     session_id="99")
    a = sess.post(sess.message(falert(200, f1, "z1", d1.last)))
    assert a.hdr_status() == "403"
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["403"]
    r = admin(stack, "enable", "alice", d1.devid)
    assert r.returncode == 0
    fresh = Device(stack, f1)
    fresh.devid = d1.devid
    got, _, _ = fresh.sync()
    assert sorted(op for op, *_ in got) == ["Add"] * 2
    assert _line(admin(stack, "devices", "alice").stdout, d1.devid).split()[4] == "-"


def test_282_admin_reports_and_end_session(stack):
    """memds-admin sessions/outbox/push list what operators look at, as a
    table or --json; end-session ends a device's session in progress."""
    import json
    folder = new_folder(stack, 1)
    d = Device(stack, folder)
    d.sync()
    sess = S.Session(stack["MEMDS_URL"], d.devid, "alice", "alice-secret", session_id="5")
    a = sess.post(sess.message(falert(200, folder, "e1", d.last)))
    assert a.hdr_status() == "212"
    r = admin(stack, "sessions", "alice")
    assert r.returncode == 0 and d.devid in r.stdout, r.stdout
    assert r.stdout.splitlines()[0].split("\t")[:4] == ["account", "device", "session", "phase"]
    rows = json.loads(admin(stack, "sessions", "--json", "alice").stdout)
    mine = [x for x in rows if x["device"] == d.devid]
    assert len(mine) == 1 and mine[0]["session"] == "5" and folder in mine[0]["datastores"]
    r = admin(stack, "end-session", "alice", d.devid)
    assert r.returncode == 0 and "1 session" in r.stdout, r.stdout
    assert not [x for x in json.loads(admin(stack, "sessions", "--json", "alice").stdout)
                if x["device"] == d.devid]
    # the device's next message in that session: 400 (expired)
    a = sess.post(sess.message(
        "<Sync><CmdID>3</CmdID><Target><LocURI>%s</LocURI></Target><Source>"
        "<LocURI>./%s</LocURI></Source></Sync>" % (folder, folder)))
    assert a.hdr_status() == "400"
    # a pending notification of a device without a channel: NULL columns
    # in the report (memds-admin died on them)
    from test_200_protocol import psql
    psql(stack, "INSERT INTO memds.push_pending (device_id, store, due_at) SELECT "
                "device_id, 'NoChannel', now() + interval '1 hour' FROM memds.devices "
                "WHERE device_id NOT IN (SELECT device_id FROM memds.push_channels) "
                "LIMIT 1")
    try:
        for which in ("outbox", "push"):
            r = admin(stack, which, "--json")
            assert r.returncode == 0 and isinstance(json.loads(r.stdout), list), r.stdout
        assert any(x.get("channel") is None for x in json.loads(admin(stack, "push",
                                                                      "--json").stdout))
    finally:
        psql(stack, "DELETE FROM memds.push_pending WHERE store = 'NoChannel'")
    assert admin(stack, "sessions", "alice", "extra").returncode == 2


def test_283_wipe_through_the_admin_page(stack):
    """The memds-admin handler orders a wipe (and undoes it) for a user
    httpd authenticated; without authentication it refuses (403)."""
    import base64
    import hashlib
    import urllib.parse
    from test_200_protocol import psql
    users = os.path.join(stack.var, "admin-users")
    with open(users, "w") as f:
        f.write("root-admin:{SHA}%s\n" % base64.b64encode(
            hashlib.sha1(b"adm-secret").digest()).decode())
    os.chmod(users, 0o644)
    stack.apply_site(stack._default_site + """
<Location /gw-admin>
    SetHandler memds-admin
    AuthType Basic
    AuthName "gateway administrators"
    AuthBasicProvider file
    AuthUserFile %s
    Require valid-user
</Location>
<Location /gw-admin-open>
    SetHandler memds-admin
</Location>
""" % users)
    try:
        stack.allow_log(r"MEMDS00095|MEMDS00096|AH01618|AH01617")
        dev = Device(stack, "Inbox")
        dev.sync()
        auth = {"Authorization": "Basic " + base64.b64encode(b"root-admin:adm-secret").decode(),
                "Content-Type": "application/x-www-form-urlencoded"}
        form = urllib.parse.urlencode({"action": "wipe", "account": "alice",
                                       "device": dev.devid}).encode()
        wipe = lambda: psql(stack, "SELECT coalesce(wipe, '-') FROM memds.devices WHERE "
                                   "account = 'alice' AND devid = '%s'" % dev.devid)
        # no credentials: httpd asks for them; a location without
        # authentication: the handler refuses
        st, _, _ = stack.request("POST", "/gw-admin", form,
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 401
        mark = stack.log_mark()
        st, _, _ = stack.request("POST", "/gw-admin-open", form,
                                 {"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 403 and "MEMDS00095" in stack.log_since(mark)
        assert wipe() == "-"
        # the administrator: listed, wiped, enabled
        st, _, out = stack.request("GET", "/gw-admin", None, auth)
        assert st == 200 and ("alice %s " % dev.devid).encode() in out
        mark = stack.log_mark()
        st, _, out = stack.request("POST", "/gw-admin", form, auth)
        assert st == 200, out
        assert wipe() == "requested"
        assert "MEMDS00097: memds-admin: root-admin ordered wipe of device %s of alice" \
            % dev.devid in stack.log_since(mark)
        got, _, _ = dev.sync()
        assert got is not None and all(op == "Delete" for op, *_ in got)
        st, _, _ = stack.request("POST", "/gw-admin", urllib.parse.urlencode(
            {"action": "enable", "account": "alice", "device": dev.devid}).encode(), auth)
        assert st == 200 and wipe() == "-"
        # unknown device, unknown action
        st, _, _ = stack.request("POST", "/gw-admin", urllib.parse.urlencode(
            {"action": "wipe", "account": "alice", "device": "no-such"}).encode(), auth)
        assert st == 404
        st, _, _ = stack.request("POST", "/gw-admin", urllib.parse.urlencode(
            {"action": "format", "account": "alice", "device": dev.devid}).encode(), auth)
        assert st == 400
    finally:
        stack.restore_site()
