"""245: the device authenticates the server (issue 15 item 2). A device that
answers the server's SyncHdr with 401/407 and a Chal gets the server's Cred
in the SyncHdr of the next message: basic, or md5 with the device's nonce,
from the per-device server password that `memds-admin server-password`
keeps in PostgreSQL (memds.server_credentials, also the SAN secret). The
real client (libsynthesis) never challenges a server (its client-side
header check does no authentication), so these are hand-made sessions
(tests/integration/syncml.py); every Cred value is computed here."""
import base64
import hashlib
import os
import subprocess
import uuid

import syncml as S

NS, MI = S.NS, S.MI
SRV_PASS = "srv-" + uuid.uuid4().hex[:8]


def admin(stack, *args, password=None):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-admin")
    return subprocess.run([exe, "server-password", "--db", stack["MEMDS_PG"], *args],
                          input=(password + "\n") if password else "",
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=60)


def psql(stack, sql):
    return subprocess.run(["psql", stack["MEMDS_PG"], "-XAtq", "-v", "ON_ERROR_STOP=1",
                           "-c", sql], stdout=subprocess.PIPE, text=True,
                          check=True).stdout.strip()


def basic_cred(user, password):
    raw = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return ("<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>"
            "<Type xmlns='syncml:metinf'>syncml:auth-basic</Type></Meta>"
            "<Data>%s</Data></Cred>" % raw)


def hdr_status(msg_ref, code, devid, url, chal_type=None, nonce_b64=None):
    """The device's Status for the server's SyncHdr, with a Chal."""
    chal = ""
    if chal_type:
        chal = ("<Chal><Meta><Type xmlns='syncml:metinf'>%s</Type>"
                "<Format xmlns='syncml:metinf'>b64</Format>%s</Meta></Chal>"
                % (chal_type, "<NextNonce xmlns='syncml:metinf'>%s</NextNonce>"
                   % nonce_b64 if nonce_b64 else ""))
    return ("<Status><CmdID>1</CmdID><MsgRef>%s</MsgRef><CmdRef>0</CmdRef>"
            "<Cmd>SyncHdr</Cmd><TargetRef>%s</TargetRef><SourceRef>%s</SourceRef>"
            "%s<Data>%d</Data></Status>" % (msg_ref, S.esc(devid), S.esc(url), chal, code))


def expect_basic(server_id):
    return base64.b64encode(("%s:%s" % (server_id, SRV_PASS)).encode()).decode()


def expect_md5(server_id, nonce):
    inner = base64.b64encode(hashlib.md5(("%s:%s" % (server_id, SRV_PASS)).encode()).digest())
    return base64.b64encode(hashlib.md5(inner + b":" + nonce).digest()).decode()


def server_cred(a):
    """(Type, Format, Data) of the Cred in the answer's SyncHdr, or None."""
    c = a.hdr("Cred")
    if c is None:
        return None
    return (c.findtext(NS + "Meta/" + MI + "Type"), c.findtext(NS + "Meta/" + MI + "Format"),
            c.findtext(NS + "Data"))


def open_inbox(stack):
    """alice's slow sync of Inbox at /sync, package 1 accepted."""
    sess = S.Session(stack["MEMDS_URL"], "dev-" + uuid.uuid4().hex[:12],
                     "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, "Inbox", "./Inbox", "n1")))
    assert a.http_status == 200, a.body
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"], a.body
    assert server_cred(a) is None  # nobody asked
    return sess, a


def challenge(sess, prev, code, chal_type, nonce_b64=None, sync=True):
    body = hdr_status(prev.hdr("MsgID").text, code, sess.devid, sess.url, chal_type,
                      nonce_b64)
    if sync:
        body += S.sync(2, "Inbox", "./Inbox", [])
    return sess.post(sess.message(body, cred=basic_cred("alice", "alice-secret")))


def assert_cancelled(a):
    assert a.http_status == 200, a.body
    assert a.hdr_status() == "514", a.body
    assert {x["Data"] for x in a.statuses()} == {"514"}, a.body
    assert a.commands("Sync") == [] and a.commands("Alert") == []
    assert server_cred(a) is None and a.resp_uri is None and a.final


def test_245_md5_challenge_answered(stack):
    """memds-admin stores the password (md5 only, a server id) in
    PostgreSQL; alice's device challenges with md5 and its nonce: the next
    message carries the md5 Cred made with that nonce; 212 then stops it."""
    sess, a = open_inbox(stack)
    server_id = "memds-it-server"
    r = admin(stack, "--md5", "--server-id", server_id, "alice", sess.devid,
              password=SRV_PASS)
    assert r.returncode == 0, r.stdout
    row = psql(stack, "SELECT server_id, password, auth, nonce FROM "
                      "memds.server_credentials WHERE account = 'alice' AND devid = '%s'"
                      % sess.devid)
    assert row == "%s|%s|md5|" % (server_id, SRV_PASS)
    nonce = ("n-" + uuid.uuid4().hex[:10]).encode()
    nonce_b64 = base64.b64encode(nonce).decode()
    mark = stack.log_mark()
    a = challenge(sess, a, 401, "syncml:auth-md5", nonce_b64)
    assert a.hdr_status() == "200", a.body
    assert server_cred(a) == ("syncml:auth-md5", "b64", expect_md5(server_id, nonce))
    assert a.commands("Sync"), a.body  # the session goes on
    assert "MEMDS00591" in stack.log_since(mark)
    # the device's nonce is the server nonce (the SAN digest's), kept
    assert psql(stack, "SELECT nonce FROM memds.server_credentials WHERE devid = '%s'"
                % sess.devid) == nonce_b64
    # 212: accepted for the session; no Cred any more
    a = sess.post(sess.message(hdr_status(a.hdr("MsgID").text, 212, sess.devid, sess.url),
                               cred=basic_cred("alice", "alice-secret")))
    assert a.http_status == 200 and a.hdr_status() == "200", a.body
    assert server_cred(a) is None


def test_246_basic_challenge_as_sync_url(stack):
    """--basic and no server id: a basic challenge (407) is answered as the
    sync URL the device addresses; a new challenge after that Cred is a
    rejection and ends the session (no loop)."""
    stack.allow_log(r"MEMDS00592")
    sess, a = open_inbox(stack)
    assert admin(stack, "--basic", "alice", sess.devid, password=SRV_PASS).returncode == 0
    a = challenge(sess, a, 407, "syncml:auth-basic")
    assert server_cred(a) == ("syncml:auth-basic", "b64", expect_basic(sess.url)), a.body
    mark = stack.log_mark()
    a = challenge(sess, a, 401, "syncml:auth-basic", sync=False)
    assert_cancelled(a)
    assert "MEMDS00592" in stack.log_since(mark)
    a = sess.post(sess.message(S.sync(2, "Inbox", "./Inbox", []),
                               cred=basic_cred("alice", "alice-secret")))
    assert a.hdr_status() == "400" and a.commands("Sync") == [], a.body


def test_247_no_server_password(stack):
    """No server password for the device (or removed with --delete): the
    session ends with 514 and a clear warning; md5 only refuses a basic
    challenge the same way."""
    stack.allow_log(r"MEMDS0059[03]")
    sess, a = open_inbox(stack)
    mark = stack.log_mark()
    a = challenge(sess, a, 407, "syncml:auth-md5", base64.b64encode(b"x1").decode())
    assert_cancelled(a)
    log = stack.log_since(mark)
    assert "MEMDS00590" in log and sess.devid in log and "memds-admin server-password" in log
    # set, then removed: the same
    sess, a = open_inbox(stack)
    assert admin(stack, "alice", sess.devid, password=SRV_PASS).returncode == 0
    r = admin(stack, "--delete", "alice", sess.devid)
    assert r.returncode == 0, r.stdout
    assert admin(stack, "--delete", "alice", sess.devid).returncode == 1
    assert_cancelled(challenge(sess, a, 407, "syncml:auth-md5"))
    # md5 only (the default): a basic challenge is not answered
    sess, a = open_inbox(stack)
    assert admin(stack, "alice", sess.devid, password=SRV_PASS).returncode == 0
    mark = stack.log_mark()
    assert_cancelled(challenge(sess, a, 407, "syncml:auth-basic"))
    assert "MEMDS00593" in stack.log_since(mark)
