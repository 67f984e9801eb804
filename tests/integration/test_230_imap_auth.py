"""2xx: credentials checked by logging in to the IMAP server (pass-through),
and md5 credential data: recorded at a basic login, or set by
memds-admin md5-set."""
import base64
import hashlib
import os
import subprocess
import uuid

import syncml as S


def _site(stack):
    return """
MemDSDatabase "{PG}"
<Location /imapauth>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore items
    MemDSIMAPServer {IMAP}
</Location>
"""


def _md5_cred(user, password, nonce_b64=""):
    inner = base64.b64encode(hashlib.md5(("%s:%s" % (user, password)).encode()).digest())
    digest = hashlib.md5(inner + b":" + base64.b64decode(nonce_b64)).digest()
    return ("<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format><Type xmlns='syncml:metinf'>"
            "syncml:auth-md5</Type></Meta><Data>%s</Data></Cred>"
            % base64.b64encode(digest).decode())


def _url(stack):
    return "http://127.0.0.1:%s/imapauth" % stack["MEMDS_HTTP_PORT"]


def test_231_basic_checked_by_imap_login(stack):
    stack.allow_log(r"authentication failed")
    stack.apply_site(_site(stack))
    ok = S.Session(_url(stack), "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    assert ok.post(ok.message(S.alert(1, 201, "x", "./x", "n"))).hdr_status() == "212"
    bad = S.Session(_url(stack), "dev-" + uuid.uuid4().hex[:8], "alice", "nope")
    assert bad.post(bad.message(S.alert(1, 201, "x", "./x", "n"))).hdr_status() == "401"


def test_232_md5_after_basic_login_and_by_admin(stack):
    stack.allow_log(r"authentication failed")
    stack.apply_site(_site(stack))
    subprocess.run(["psql", stack["MEMDS_PG"], "-qc",
                    "DELETE FROM memds.md5_credentials"], check=True)
    # md5 with no credential data: refused.
    dev = "dev-" + uuid.uuid4().hex[:8]
    s = S.Session(_url(stack), dev, "alice", None)
    a = s.post(s.message(S.alert(1, 201, "x", "./x", "n"),
                         cred=_md5_cred("alice", "alice-secret")))
    assert a.hdr_status() == "401"
    # A basic login (checked by IMAP) records it; md5 then works, with the
    # nonce the server issued in its challenge.
    b = S.Session(_url(stack), "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret")
    assert b.post(b.message(S.alert(1, 201, "x", "./x", "n"))).hdr_status() == "212"
    nonce = a.root.find(".//" + S.NS + "Chal/" + S.NS + "Meta/" + S.MI + "NextNonce").text
    s2 = S.Session(_url(stack), dev, "alice", None, session_id="2")
    a = s2.post(s2.message(S.alert(1, 201, "x", "./x", "n"),
                           cred=_md5_cred("alice", "alice-secret", nonce)))
    assert a.hdr_status() == "212"
    # memds-admin md5-set for bob, who never logged in with basic.
    admin = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-admin")
    r = subprocess.run([admin, "md5-set", "--db", stack["MEMDS_PG"], "bob"],
                       input="bob-secret\n", text=True, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    assert r.returncode == 0, r.stdout
    s3 = S.Session(_url(stack), "dev-" + uuid.uuid4().hex[:8], "bob", None)
    a = s3.post(s3.message(S.alert(1, 201, "x", "./x", "n"), cred=_md5_cred("bob", "bob-secret")))
    assert a.hdr_status() == "212"
    assert subprocess.run(["psql", stack["MEMDS_PG"], "-XAtc",
                           "SELECT source FROM memds.md5_credentials WHERE account='bob'"],
                          stdout=subprocess.PIPE, text=True).stdout.strip() == "admin"


def _logins(stack, user):
    """Dovecot's successful IMAP logins of user so far."""
    with open(os.path.join(stack["MEMDS_VAR"], "dovecot", "dovecot.log"),
              errors="replace") as f:
        return sum(1 for l in f
                   if "imap-login: Info: Login: user=<%s>" % user in l)


def test_233_one_login_proves_and_serves_the_mailbox(stack):
    """A mailbox reached with the device's own password: the IMAP login
    that checks the password is the connection the mailbox then uses (one
    login for a fresh process, not one for the check and one for the
    mailbox); a wrong password still logs in nowhere and is refused."""
    stack.allow_log(r"authentication failed")
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /imapmail>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore imap
    MemDSIMAPServer {IMAP}
</Location>
""")  # a graceful restart: new children, nothing remembered or kept
    url = "http://127.0.0.1:%s/imapmail" % stack["MEMDS_HTTP_PORT"]
    before = _logins(stack, "bob")
    s = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "bob", "bob-secret")
    a = s.post(s.message(S.alert(1, 201, "email", "./email", "n1")))
    assert a.hdr_status() == "200"  # pass-through: credentials in every message
    assert [st["Data"] for st in a.statuses() if st["Cmd"] == "Alert"] == ["200"]
    assert _logins(stack, "bob") - before == 1
    bad = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "bob", "wrong")
    assert bad.post(bad.message(S.alert(1, 201, "email", "./email", "n1"))
                    ).hdr_status() == "401"
    assert _logins(stack, "bob") - before == 1


def test_239_imap_keep(stack):
    """MemDSIMAPKeep N [SECONDS] sizes each child's cache of logged-in IMAP
    connections (default 16, 60 s): what the status page shows of the child
    that answers; configtest refuses values out of range, and the directive
    anywhere but the main server (one cache per child serves every virtual
    host)."""
    import json
    for conf, words in [
            ("MemDSIMAPKeep 0", ["MemDSIMAPKeep", "from 1 to 1024"]),
            ("MemDSIMAPKeep 1025", ["MemDSIMAPKeep", "from 1 to 1024"]),
            ("MemDSIMAPKeep many", ["MemDSIMAPKeep", "'many' is not a number"]),
            ("MemDSIMAPKeep 8 0", ["MemDSIMAPKeep", "seconds from 1 to 3600"]),
            ("MemDSIMAPKeep 8 3601", ["MemDSIMAPKeep", "seconds from 1 to 3600"]),
            ("<Location /k>\nMemDSIMAPKeep 8\n</Location>", ["MemDSIMAPKeep", "not allowed"]),
            ("<VirtualHost 127.0.0.1:1>\nMemDSIMAPKeep 8\n</VirtualHost>",
             ["MemDSIMAPKeep", "VirtualHost"])]:
        rc, out = stack.configtest('MemDSDatabase "{PG}"\n%s\n' % conf)
        assert rc != 0, "configtest accepted:\n" + conf
        for w in words:
            assert w in out, "%r not in configtest output:\n%s" % (w, out)

    def cache():
        st, _, body = stack.request("GET", "/memds-status?json")
        assert st == 200
        return json.loads(body)["imap_cache"]

    c = cache()
    assert (c["max"], c["idle_secs"]) == (16, 60) and 0 <= c["kept"] <= 16
    try:
        stack.apply_site('MemDSDatabase "{PG}"\nMemDSIMAPKeep 64 120\n'
                         "<Location /memds-status>\n    SetHandler memds-status\n"
                         "</Location>\n")
        c = cache()
        assert (c["max"], c["idle_secs"]) == (64, 120) and 0 <= c["kept"] <= 64
        st, _, body = stack.request("GET", "/memds-status")
        assert b"of at most 64, each for 120 s idle" in body
    finally:
        stack.restore_site()
