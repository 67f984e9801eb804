"""Several accounts (issue 13 item 2): one device with the same login on two
IMAP servers (two Dovecot instances: the stack's and a second one started
by this test), reached through two sync URLs; the second location has
`MemDSAccountRealm second`. State is keyed by the account key (the login,
or realm:login), so the two accounts keep separate devices rows, sessions,
anchors, maps, mail rows and outbox rows: no mail, map or send crosses.
Without the realm the module warns at start-up that the two locations share
the login's state."""
import imaplib
import os
import re
import shutil
import subprocess
import time
import uuid

import syncml as S
from conftest import _port_free
from test_200_protocol import psql
from test_550_filters import Device
from test_610_outbox import _outbox_session, copies, settle


def free_port(start):
    p = start
    while not _port_free(p):
        p += 1
    return p


class SecondDovecot:
    """The stack's Dovecot configuration with its own ports, directories
    and mail, the same users and passwords; no push hook."""

    def __init__(self, stack):
        self.stack = stack
        self.dir = os.path.join(stack.var, "dovecot2")
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in ("", "base", "state", "mail"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "mail"), "dovecot", "dovecot")
        os.chmod(self.dir, 0o755)
        self.imap = free_port(24000 + os.getpid() % 5000)
        self.lmtp = free_port(self.imap + 1)
        src = os.path.join(stack.var, "dovecot", "dovecot.conf")
        with open(src) as f:
            conf = f.read()
        conf = re.sub(r"(?m)^base_dir = .*$", "base_dir = %s/base" % self.dir, conf)
        conf = re.sub(r"(?m)^state_dir = .*$", "state_dir = %s/state" % self.dir, conf)
        conf = re.sub(r"(?m)^instance_name = .*$", "instance_name = memds-second", conf)
        conf = re.sub(r"(?m)^(info_)?log_path = .*$",
                      lambda m: "%slog_path = %s/dovecot.log" % (m.group(1) or "", self.dir),
                      conf)
        conf = re.sub(r"home=\S+/%u", "home=%s/mail/%%u" % self.dir, conf)
        conf = re.sub(r"(inet_listener imap \{[^}]*port = )\d+", r"\g<1>%d" % self.imap, conf)
        conf = re.sub(r"(inet_listener lmtp \{[^}]*port = )\d+", r"\g<1>%d" % self.lmtp, conf)
        conf = re.sub(r"(inet_listener imaps \{[^}]*port = )\d+", r"\g<1>0", conf)
        conf = re.sub(r"(inet_listener submissions? \{[^}]*port = )\d+", r"\g<1>0", conf)
        # no push hook here: its events would name the stack's accounts
        conf = re.sub(r"(?ms)^protocol lmtp \{.*?^\}\n", "", conf)
        conf = re.sub(r"(?ms)^plugin \{.*?^\}\n", "", conf)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.url = "imap://127.0.0.1:%d" % self.imap

    def start(self):
        subprocess.run(["dovecot", "-c", self.conf], check=True, timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline and _port_free(self.imap):
            time.sleep(0.1)
        assert not _port_free(self.imap), "second Dovecot did not start"

    def stop(self):
        subprocess.run(["doveadm", "-c", self.conf, "stop"], timeout=60)

    def append(self, user, password, box, msg):
        m = imaplib.IMAP4("127.0.0.1", self.imap)
        m.login(user, password)
        m.append(box, None, None, msg.encode())
        m.logout()

    def subjects(self, user, password, box, tag):
        m = imaplib.IMAP4("127.0.0.1", self.imap)
        m.login(user, password)
        m.select(box, readonly=True)
        _, d = m.search(None, "SUBJECT", '"%s"' % tag)
        m.logout()
        return d[0].split()


def mail(tag):
    return ("From: Carol <carol@example.test>\r\nTo: Alice <alice@example.test>\r\n"
            "Subject: %s\r\nMessage-ID: <%s@example.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain\r\n\r\nThis is %s.\r\n" % (tag, tag, tag))


def site(stack, imap2, realm=True):
    return stack._default_site + """
<Location /sync2>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore imap
    MemDSIMAPServer %s
    MemDSIMAPMaster %s %s
    MemDSSMTPServer smtp://127.0.0.1:%s
    %s
</Location>
""" % (imap2, stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"],
       stack["MEMDS_SMTP_PORT"], "MemDSAccountRealm second" if realm else "")


def imap_append(stack, user, password, box, msg):
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login(user, password)
    m.append(box, None, None, msg.encode())
    m.logout()


def test_242_same_login_on_two_imap_servers(stack):
    d2 = SecondDovecot(stack)
    d2.start()
    try:
        # without a realm: configtest passes, with a warning that names both
        rc, out = stack.configtest(site(stack, d2.url, realm=False))
        assert rc == 0 and "MEMDS00043" in out and "/sync2" in out, out
        rc, out = stack.configtest(site(stack, d2.url))
        assert rc == 0 and "MEMDS00043" not in out, out
        rc, out = stack.configtest(site(stack, d2.url).replace("second", "no:colon"))
        assert rc != 0 and "MemDSAccountRealm" in out, out
        stack.apply_site(site(stack, d2.url))
        url2 = stack["MEMDS_URL"].replace("/sync", "/sync2")

        one, two = "one-" + uuid.uuid4().hex[:8], "two-" + uuid.uuid4().hex[:8]
        imap_append(stack, "alice", "alice-secret", "INBOX", mail(one))
        d2.append("alice", "alice-secret", "INBOX", mail(two))

        dev1 = Device(stack, "Inbox")
        dev2 = Device(stack, "Inbox", url=url2)
        dev2.devid = dev1.devid  # one device, two accounts
        got1, _, _ = dev1.sync()
        got2, _, _ = dev2.sync()
        texts1 = " ".join(d for _, _, d, _, _ in got1)
        texts2 = " ".join(d for _, _, d, _, _ in got2)
        assert one in texts1 and two not in texts1
        assert two in texts2 and one not in texts2
        n2 = len(got2)

        rows = psql(stack, "SELECT string_agg(account, ',' ORDER BY account) FROM "
                           "memds.devices WHERE devid = '%s'" % dev1.devid)
        assert rows == "alice,second:alice", rows
        ids = {}
        for acc in ("alice", "second:alice"):
            ids[acc] = psql(stack, "SELECT device_id FROM memds.devices WHERE devid = '%s' "
                                   "AND account = '%s'" % (dev1.devid, acc))
        # maps, anchors and sessions of each account under its own device row
        for acc, n in (("alice", len(got1)), ("second:alice", n2)):
            assert psql(stack, "SELECT count(*) FROM memds.maps WHERE device_id = %s"
                        % ids[acc]) == str(n)
            assert psql(stack, "SELECT count(*) FROM memds.sync_state WHERE device_id = %s"
                        % ids[acc]) == "1"
            assert int(psql(stack, "SELECT count(*) FROM memds.sessions WHERE device_id = %s"
                            % ids[acc])) >= 1
        # mail rows: the second server's message only under second:alice
        assert psql(stack, "SELECT count(*) FROM memds.mail_messages WHERE "
                           "account = 'second:alice' AND folder = 'INBOX'") == str(n2)
        # a change on one server reaches only its own account's sync
        three = "three-" + uuid.uuid4().hex[:8]
        d2.append("alice", "alice-secret", "INBOX", mail(three))
        got1, _, _ = dev1.sync()
        got2, _, _ = dev2.sync()
        assert not any(three in d for _, _, d, _, _ in got1)
        assert [three in d for _, _, d, _, _ in got2].count(True) == 1

        # a send through the second location: its outbox row is second:alice's,
        # the copy is filed in the second server's Sent, not the first's
        tag = "send2-" + uuid.uuid4().hex[:8]
        sess, body = _outbox_session(stack, "out-" + dev1.devid, "1", tag, url=url2)
        a = sess.post(sess.message(body))
        assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201"]
        assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
        deadline = time.time() + 20
        while time.time() < deadline and not d2.subjects("alice", "alice-secret", "Sent", tag):
            time.sleep(0.3)
        assert len(d2.subjects("alice", "alice-secret", "Sent", tag)) == 1
        settle(stack)
        assert copies(stack, "alice", "alice-secret", "Sent", tag, wait=0) == []
        assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
        assert psql(stack, "SELECT string_agg(account || ':' || state, ',') FROM memds.outbox "
                           "WHERE location = '/sync2'") == "second:alice:filed"

        # a session of one location cannot go on at the other (its RespURI
        # token posted to the first location's URL): ended, 401
        mark = stack.log_mark()
        stack.allow_log(r"MEMDS00540: .* of account second:alice: the location")
        s3 = S.Session(url2, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
        a = s3.post(s3.message(S.alert(1, 201, "Inbox", "./inbox", "n1")))
        assert a.hdr_status() in ("200", "212") and a.resp_uri, a.body
        token = a.resp_uri.split("?", 1)[1]
        a = s3.post(s3.message("", final=True), url=stack["MEMDS_URL"] + "?" + token)
        assert a.hdr_status() == "401", a.body
        assert "MEMDS00540" in stack.log_since(mark)
    finally:
        stack.restore_site()
        d2.stop()


def test_243_master_login_refused_for_an_unknown_account(stack):
    """A user the credential file knows but the IMAP server does not: the
    master login for it is refused, and the answer says so (the refused
    login's message used to be read from a freed pool: the child died)."""
    users = os.path.join(stack.var, "ghost-users")
    with open(users, "w") as f:
        f.write("ghost:{PLAIN}ghost-secret\n")
    os.chmod(users, 0o644)
    stack.apply_site(stack._default_site + """
<Location /ghost>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore imap
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster %s %s
    MemDSAuthFile %s
</Location>
""" % (stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"], users))
    try:
        stack.allow_log(r"MEMDS00502: .* of ghost: IMAP login failed")
        mark = stack.log_mark()
        s = S.Session(stack["MEMDS_URL"].replace("/sync", "/ghost"),
                      "dev-" + uuid.uuid4().hex[:8], "ghost", "ghost-secret")
        a = s.post(s.message(S.alert(1, 201, "Inbox", "./inbox", "n1")))
        assert a.http_status == 200
        # the mailbox is reached when the server builds its changes
        a = s.post(s.message("<Sync><CmdID>2</CmdID><Target><LocURI>Inbox</LocURI>"
                             "</Target><Source><LocURI>./inbox</LocURI></Source></Sync>"))
        # (it used to kill the child: no answer at all)
        assert a.http_status == 503, a.body
        assert re.search(r"MEMDS00502: .* of ghost: IMAP login failed: .*Login denied",
                         stack.log_since(mark)), stack.log_since(mark)
    finally:
        stack.restore_site()
