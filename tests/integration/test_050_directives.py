"""05x: directives whose effect no other test showed: MemDSSMTPAuth,
MemDSSentCopy, MemDSFolder, MemDSAuthType, MemDSSessionTimeout, the
configuration side of MemDSMaxObjSize, and the configtest side of
MemDSRejectedMail (its effect: test_633 drafts, test_634 keep). Each gets
its effect checked and its bad values refused by configtest with a message
naming the directive. Elsewhere: MemDSDeletePolicy's effect and configtest
(test_560c/d/e), MemDSMaxObjSize's effect and 8K announced (test_560j),
MemDSSentCopy On (test_611)."""
import imaplib
import os
import re
import time
import uuid

import pytest

import syncml as S
from smtpfake import FakeSMTP
from test_510_mail import psql
from test_610_outbox import copies, settle
from test_630_send_gaps import Device, email_obj, ledger, mail_location


# (site config, words the error must contain)
BAD = [
    ("MemDSSMTPAuth maybe", ["MemDSSMTPAuth", "'maybe' is not none, user"]),
    ('MemDSSMTPAuth "sub mitter" secret', ["MemDSSMTPAuth", "no blanks"]),
    # (httpd passes an empty last argument as none)
    ('MemDSSMTPAuth submitter ""', ["MemDSSMTPAuth", "a user name followed by a password"]),
    ("MemDSSMTPAuth a b c", ["MemDSSMTPAuth", "takes 1-2 arguments"]),
    ("MemDSSentCopy maybe", ["MemDSSentCopy", "must be On or Off"]),
    ("MemDSRejectedMail trash", ["MemDSRejectedMail", "'trash' is not drafts or keep"]),
    ("MemDSFolder outbox Out", ["MemDSFolder", "unknown role 'outbox'",
                                "drafts, sent, trash, junk, archive"]),
    ('MemDSFolder sent ""', ["MemDSFolder", "takes two arguments"]),
    ("MemDSFolder sent", ["MemDSFolder", "takes two arguments"]),
    ("MemDSAuthType digest", ["MemDSAuthType", "use basic or md5"]),
    ("MemDSSessionTimeout 29", ["MemDSSessionTimeout", "from 30 to 86400"]),
    ("MemDSSessionTimeout 86401", ["MemDSSessionTimeout", "from 30 to 86400"]),
    ("MemDSSessionTimeout 15m", ["MemDSSessionTimeout", "'15m' is not a number"]),
    ("MemDSMaxObjSize 1023", ["MemDSMaxObjSize", "from 1K to 1G"]),
    ("MemDSMaxObjSize 2G", ["MemDSMaxObjSize", "from 1K to 1G"]),
    ("MemDSMaxObjSize 10X", ["MemDSMaxObjSize", "'10X' is not a size"]),
    ("MemDSMaxObjSize -1", ["MemDSMaxObjSize", "from 1K to 1G"]),
]


@pytest.mark.parametrize("conf,words", BAD, ids=[b[0][:40] for b in BAD])
def test_051_configtest_rejects_bad_values(stack, conf, words):
    rc, out = stack.configtest('MemDSDatabase "{PG}"\n<Location /d>\n%s\n</Location>\n'
                               % conf)
    assert rc != 0, "configtest accepted:\n" + conf
    for w in words:
        assert w in out, "%r not in configtest output:\n%s" % (w, out)


GOOD = ["MemDSSMTPAuth none", "MemDSSMTPAuth USER", "MemDSSMTPAuth submitter s3cret",
        "MemDSSentCopy Off", "MemDSRejectedMail keep", "MemDSRejectedMail Drafts",
        'MemDSFolder archive "INBOX/Old Mail"', "MemDSFolder JUNK Spam",
        "MemDSAuthType md5", "MemDSAuthType basic", "MemDSSessionTimeout 30",
        "MemDSSessionTimeout 86400", "MemDSMaxObjSize 1K", "MemDSMaxObjSize 1G",
        "MemDSMaxObjSize 65536"]


@pytest.mark.parametrize("conf", GOOD)
def test_052_configtest_accepts_the_documented_values(stack, conf):
    rc, out = stack.configtest('MemDSDatabase "{PG}"\n%s\n<Location /d>\n%s\n</Location>\n'
                               % (conf, conf))
    assert rc == 0, out


# --------------------------------------------------------- MemDSSMTPAuth

def _fake_tls(stack, auth=True):
    tls = os.path.join(stack.var, "tls")
    return FakeSMTP(os.path.join(tls, "server.pem"), os.path.join(tls, "server.key"),
                    auth=auth)


@pytest.mark.parametrize("setting,expect", [
    ("none", None),
    ("user", ("", "alice", "alice-secret")),
    ("submitter s3cret", ("alice", "submitter", "s3cret"))])
def test_053_smtp_auth(stack, setting, expect):
    """MemDSSMTPAuth: none logs in to nobody (no AUTH), user with the
    device's own name and password (also with MemDSIMAPMaster: before, the
    engine answered 212 there, the device stopped sending its password and
    the SMTP login went out with an empty one), USER PASSWORD as that
    submission account with the device's account as SASL authorization id
    (PLAIN); each after STARTTLS. The message goes out once."""
    fake = _fake_tls(stack)
    try:
        url = mail_location(stack, "/auth053", fake.url, "MemDSSMTPAuth " + setting)
        tag = "smtpauth-" + uuid.uuid4().hex[:8]
        d = Device(stack, url)
        st, _ = d.add("L1", email_obj(tag))
        assert st == "201"
        # the device's password is needed for the SMTP login in a later
        # message of the session: 200, not 212 (authenticated for the
        # session, when devices stop sending their credentials)
        assert d.hdr_status == ("200" if setting == "user" else "212")
        assert fake.count() == 1
        c = fake.connections[0]
        assert c["tls"] is True
        assert c["auth"] == expect
        assert c["mail"].startswith("FROM:<alice@example.test>")
        assert len(fake.delivered()) == 1 and tag.encode() in fake.delivered()[0]
    finally:
        fake.stop()


def test_054_smtp_auth_credentials_need_tls(stack):
    """With MemDSSMTPAuth credentials, a server that offers no STARTTLS gets
    neither the password nor the message: the device is told 202 (kept for
    a later try)."""
    stack.allow_log(r"not sent yet, retried")
    fake = FakeSMTP(auth=True)  # AUTH offered, STARTTLS not
    try:
        url = mail_location(stack, "/auth054", fake.url,
                            "MemDSSMTPAuth submitter s3cret")
        tag = "smtpauth-notls-" + uuid.uuid4().hex[:8]
        d = Device(stack, url)
        st, _ = d.add("L1", email_obj(tag))
        assert st == "202"
        assert fake.count() == 1
        c = fake.connections[0]
        assert (c["tls"], c["auth"], c["mail"]) == (False, None, None)
        assert fake.delivered() == []
        assert ledger(stack, d.devid)["state"] == "retrying"
    finally:
        fake.stop()


# --------------------------------------------------------- MemDSSentCopy

def test_055_sent_copy_off(stack):
    """MemDSSentCopy Off: the message is sent once and the ledger row done
    (filed, with no Sent copy named), but nothing is appended to Sent. (On,
    the default: test_611.)"""
    url = mail_location(stack, "/nosent055", "{SMTP}", "MemDSSentCopy Off")
    tag = "nosent-" + uuid.uuid4().hex[:8]
    d = Device(stack, url)
    st, a = d.add("L1", email_obj(tag))
    assert st == "201"
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
    settle(stack)
    assert copies(stack, "alice", "alice-secret", "Sent", tag, wait=0) == []
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert ledger(stack, d.devid)["state"] == "filed"
    assert psql(stack, "SELECT count(*) FROM memds.outbox o JOIN memds.devices d USING "
                       "(device_id) WHERE d.devid = '%s' AND sent_guid IS NULL"
                % d.devid) == "1"


# ------------------------------------------------------------ MemDSFolder

def _imap(stack):
    m = imaplib.IMAP4("127.0.0.1", int(stack["MEMDS_IMAP_PORT"]))
    m.login("alice", "alice-secret")
    return m


def _folder_with(stack, name, tag, n=2):
    m = _imap(stack)
    assert m.create('"%s"' % name)[0] == "OK"
    for i in range(n):
        msg = ("From: Bob <bob@example.test>\r\nTo: alice@example.test\r\n"
               "Subject: %s %d\r\nMessage-ID: <%s-%d@example.test>\r\n\r\nold %d\r\n"
               % (tag, i, tag, i, i)).encode()
        assert m.append('"%s"' % name, None, imaplib.Time2Internaldate(time.time()),
                        msg)[0] == "OK"
    m.logout()


def test_056_folder_names_a_role(stack):
    """MemDSFolder archive "PATH": the Archive datastore is that folder
    (a nested path, "/" between levels, with a blank in it), found for a
    server without SPECIAL-USE marks for archives; a SPECIAL-USE mark wins
    over it (MemDSFolder sent: the Sent copy still goes to \\Sent)."""
    top = "Box" + uuid.uuid4().hex[:6]
    path = top + "/Old Mail"
    tag = "archived-" + uuid.uuid4().hex[:6]
    _folder_with(stack, path, tag)
    url = mail_location(stack, "/folder056", "{SMTP}",
                        'MemDSFolder archive "%s"\n    MemDSFolder sent "%s"' % (path, path))
    sess = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, "Archive", "./archive", "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"], a.body
    a = sess.post(sess.message(S.sync(2, "Archive", "./archive", [])))
    subjects = sorted(re.findall(r"Subject: (%s \d)" % tag, "".join(
        d or "" for op, src, tgt, d, cid in a.sync_items() if op == "Add")))
    assert subjects == ["%s 0" % tag, "%s 1" % tag], a.body
    # the special-use Sent folder wins over MemDSFolder sent
    stag = "specialuse-" + uuid.uuid4().hex[:6]
    st, _ = Device(stack, url).add("L1", email_obj(stag))
    assert st == "201"
    assert len(copies(stack, "alice", "alice-secret", "Sent", stag)) == 1
    assert copies(stack, "alice", "alice-secret", '"%s"' % path, stag, wait=0) == []


# ---------------------------------------------------------- MemDSAuthType

def _items_location(stack, path, extra=""):
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location %s>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore items
    MemDSAuthFile "%s"
    %s
</Location>
""" % (path, os.path.join(stack.var, "httpd", "users"), extra))
    return "http://127.0.0.1:%s%s" % (stack["MEMDS_HTTP_PORT"], path)


def _challenge(a):
    chal = a.root.find(".//%sStatus/%sChal/%sMeta" % (S.NS, S.NS, S.NS))
    assert chal is not None, a.body
    return (chal.findtext(S.MI + "Type"), chal.findtext(S.MI + "Format"),
            chal.findtext(S.MI + "NextNonce"))


@pytest.mark.parametrize("setting,scheme", [(None, "syncml:auth-basic"),
                                            ("md5", "syncml:auth-md5")])
def test_057_auth_type_is_the_challenge(stack, setting, scheme):
    """MemDSAuthType: the scheme a device without credentials is challenged
    with (407 and a Chal; md5 with a nonce), basic by default. Basic
    credentials are accepted either way."""
    stack.allow_log(r"MEMDS00512: .*authentication failed: no credentials")
    url = _items_location(stack, "/authtype057",
                          "MemDSAuthType %s" % setting if setting else "")
    sess = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    sess.cred = False
    a = sess.post(sess.message(S.alert(1, 201, "notes", "./notes", "n1")))
    assert a.hdr_status() == "407"
    typ, fmt, nonce = _challenge(a)
    assert typ == scheme
    if scheme == "syncml:auth-md5":
        assert fmt == "b64" and nonce
    else:
        assert nonce is None
    sess = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, "notes", "./notes", "n1")))
    assert a.hdr_status() in ("200", "212") and a.resp_uri


# ------------------------------------------------------ MemDSSessionTimeout

@pytest.mark.parametrize("setting,secs", [(None, 900), ("30", 30), ("86400", 86400)])
def test_058_session_timeout(stack, setting, secs):
    """MemDSSessionTimeout: a session expires that long after its last
    message (900 s by default); the expiry itself is test_217's and
    test_280's."""
    url = _items_location(stack, "/timeout058",
                          "MemDSSessionTimeout %s" % setting if setting else "")
    sess = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, "notes", "./notes", "n1")))
    assert a.resp_uri
    left = int(psql(stack, "SELECT round(extract(epoch FROM expires_at - now())) FROM "
                           "memds.sessions WHERE token = '%s'" % S.token_of(a.resp_uri)))
    assert secs - 5 <= left <= secs, left
    # the next message moves the expiry along
    psql(stack, "UPDATE memds.sessions SET expires_at = now() + interval '10 s' "
                "WHERE token = '%s'" % S.token_of(a.resp_uri))
    a = sess.post(sess.message(S.sync(2, "notes", "./notes", [])))
    assert a.http_status == 200
    left = int(psql(stack, "SELECT round(extract(epoch FROM expires_at - now())) FROM "
                           "memds.sessions WHERE token = '%s'" % S.token_of(sess.next_url)))
    assert secs - 5 <= left <= secs, left


# --------------------------------------------------------- MemDSMaxObjSize

@pytest.mark.parametrize("setting,value", [(None, 4194304), ("64K", 65536),
                                           ("1G", 1073741824)])
def test_059_max_obj_size_announced(stack, setting, value):
    """MemDSMaxObjSize as parsed (a K/M/G suffix) is the MaxObjSize the
    server announces in its SyncHdr (the limit's effect on large objects is
    tested with the mailbox datastores)."""
    url = _items_location(stack, "/maxobj059",
                          "MemDSMaxObjSize %s" % setting if setting else "")
    sess = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    a = sess.post(sess.message(S.alert(1, 201, "notes", "./notes", "n1")))
    meta = a.hdr("Meta")
    assert meta is not None and meta.findtext(S.MI + "MaxObjSize") == str(value), a.body
