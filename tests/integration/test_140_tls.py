"""14x: TLS on every hop. ./dev up makes a private CA and serves HTTPS
(mod_ssl) beside plain HTTP, Dovecot with STARTTLS and imaps, Postfix with
STARTTLS and submissions; the module reaches IMAP over imaps:// and
imap:// + STARTTLS and SMTP over smtp:// + STARTTLS and smtps://, verifying
the servers against MemDSTLSCAFile; a certificate from another CA, or
STARTTLS required but not offered, is refused with a clear log line and
the documented status; the real client syncs over HTTPS."""
import http.client
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

import syncml as S
from client import Client, vcard
from test_610_outbox import _outbox_session, copies, settle


def _ctx(stack):
    return ssl.create_default_context(cafile=stack["MEMDS_CA_FILE"])


def _loc(stack, path, imap, extra="", smtp=None, auth_file=True):
    """A mailbox location: IMAP reached as the master user, credentials
    checked against the passwd-file (so a TLS failure shows at the Alert),
    or, with auth_file=False, by a login to the IMAP server."""
    return """
<Location %s>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore imap
    MemDSIMAPServer %s
    MemDSIMAPMaster %s %s
    %s
    %s
    %s
</Location>
""" % (path, imap, stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"],
       "MemDSSMTPServer %s" % smtp if smtp else "",
       'MemDSAuthFile "%s/httpd/users"' % stack["MEMDS_VAR"] if auth_file else "",
       extra)


def _site(stack, *args, **kw):
    return 'MemDSDatabase "{PG}"\n' + _loc(stack, *args, **kw)


def _url(stack, path):
    return "http://127.0.0.1:%s%s" % (stack["MEMDS_HTTP_PORT"], path)


def _imaps(stack):
    return "imaps://127.0.0.1:%s" % stack["MEMDS_IMAPS_PORT"]


def _dovecot_logins(stack):
    """The login lines of Dovecot's log so far."""
    with open(os.path.join(stack["MEMDS_VAR"], "dovecot", "dovecot.log"),
              errors="replace") as f:
        return [l for l in f if "imap-login: Info: Login: " in l]


def _maillog_tls(stack):
    with open(os.path.join(stack["MEMDS_VAR"], "postfix", "maillog"),
              errors="replace") as f:
        return sum(1 for l in f if "TLS connection established from" in l)


def _alert_email(stack, url, user="alice", password="alice-secret"):
    """A slow sync of the hierarchical email datastore begins: its Alert
    is answered after an IMAP login."""
    s = S.Session(url, "dev-" + uuid.uuid4().hex[:8], user, password)
    return s, s.post(s.message(S.alert(1, 201, "email", "./email", "n1")))


def _alert_status(a):
    return [st["Data"] for st in a.statuses() if st["Cmd"] == "Alert"]


@pytest.fixture(scope="module")
def other_ca(stack):
    """A CA (and nothing it signed) that the stack's servers do not use."""
    d = tempfile.mkdtemp(prefix="other-ca-", dir=stack["MEMDS_VAR"])
    os.chmod(d, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
                    "-subj", "/CN=some other CA", "-keyout", os.path.join(d, "ca.key"),
                    "-out", os.path.join(d, "ca.pem")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(os.path.join(d, "ca.pem"), 0o644)
    with open(os.path.join(d, "key-and-cert.pem"), "w") as f:
        f.write(open(os.path.join(d, "ca.pem")).read())
        f.write(open(os.path.join(d, "ca.key")).read())
    return d


# ------------------------------------------------------------------ HTTPS

def test_141_sync_over_https(stack):
    url = stack["MEMDS_HTTPS_ITEMS_URL"]
    assert url.startswith("https://127.0.0.1:")
    s = S.Session(url, "dev-" + uuid.uuid4().hex[:8], "alice", "alice-secret",
                  ssl_context=_ctx(stack))
    a = s.post(s.message(S.alert(1, 201, "tls-notes", "./notes", "n1")))
    assert a.http_status == 200 and a.hdr_status() == "212"
    assert _alert_status(a) == ["200"]
    # the session goes on over HTTPS: the RespURI names the HTTPS port
    assert s.next_url.startswith(url + "?"), s.next_url
    a = s.post(s.message(S.sync(2, "tls-notes", "./notes",
                                [("Add", "1", "a note over TLS")])))
    assert a.http_status == 200
    assert [st["Data"] for st in a.statuses() if st["Cmd"] == "Add"] == ["201"]
    # the server's certificate names both localhost and 127.0.0.1
    c = http.client.HTTPSConnection("localhost", int(stack["MEMDS_HTTPS_PORT"]),
                                    context=_ctx(stack), timeout=10)
    c.request("GET", "/memds-status")
    assert c.getresponse().status == 200
    c.close()
    # a client with only the system's CAs refuses the stack's certificate
    c = http.client.HTTPSConnection("127.0.0.1", int(stack["MEMDS_HTTPS_PORT"]),
                                    context=ssl.create_default_context(), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        c.request("GET", "/memds-status")
    c.close()


def test_142_https_handshake_cost(stack):
    """Figures: a new connection per request, HTTP against HTTPS."""
    def run(conn_of, n=40):
        t0 = time.perf_counter()
        for _ in range(n):
            c = conn_of()
            c.request("GET", "/memds-status")
            assert c.getresponse().read()
            c.close()
        return (time.perf_counter() - t0) / n * 1000
    port, sport = int(stack["MEMDS_HTTP_PORT"]), int(stack["MEMDS_HTTPS_PORT"])
    ctx = _ctx(stack)
    plain = run(lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10))
    tls = run(lambda: http.client.HTTPSConnection("127.0.0.1", sport, context=ctx,
                                                  timeout=10))
    print("\nGET /memds-status, new connection each: HTTP %.2f ms, HTTPS %.2f ms "
          "(handshake about %.2f ms)" % (plain, tls, tls - plain))
    assert tls < plain + 200


# ------------------------------------------------------------------ IMAP

def test_143_mailbox_over_imaps(stack):
    stack.apply_site(_site(stack, "/tls-imaps", _imaps(stack),
                           'MemDSTLSCAFile "%s"' % stack["MEMDS_CA_FILE"]))
    before = len(_dovecot_logins(stack))
    s, a = _alert_email(stack, _url(stack, "/tls-imaps"))
    assert a.http_status == 200 and _alert_status(a) == ["200"], a.body[-800:]
    a = s.post(s.message(S.sync(2, "email", "./email", [])))
    assert a.http_status == 200
    # the seeded mail came over the TLS connection
    assert any(op == "Add" for op, *_ in a.sync_items())
    new = _dovecot_logins(stack)[before:]
    assert new and all(", TLS, " in l for l in new), new


def test_144_mailbox_over_imap_starttls(stack):
    imap = "imap://127.0.0.1:%s" % stack["MEMDS_IMAP_PORT"]
    stack.apply_site(_site(stack, "/tls-starttls", imap,
                           'MemDSTLSCAFile "%s"\n    MemDSIMAPStartTLS On'
                           % stack["MEMDS_CA_FILE"]))
    before = len(_dovecot_logins(stack))
    s, a = _alert_email(stack, _url(stack, "/tls-starttls"))
    assert a.http_status == 200 and _alert_status(a) == ["200"], a.body[-800:]
    new = _dovecot_logins(stack)[before:]
    assert new and all(", TLS, " in l for l in new), new
    # without MemDSIMAPStartTLS the same imap:// URL stays in the clear
    stack.apply_site(_site(stack, "/tls-starttls", imap))
    before = len(_dovecot_logins(stack))
    s, a = _alert_email(stack, _url(stack, "/tls-starttls"))
    assert _alert_status(a) == ["200"]
    new = _dovecot_logins(stack)[before:]
    assert new and not any(", TLS, " in l for l in new), new


def test_145_untrusted_imap_certificate_refused(stack, other_ca):
    bad = 'MemDSTLSCAFile "%s/ca.pem"' % other_ca
    good = 'MemDSTLSCAFile "%s"' % stack["MEMDS_CA_FILE"]
    stack.allow_log(r"MEMDS00513: device .*certificate is not trusted")
    stack.allow_log(r"MEMDS00220: pass-through login of alice not checked: "
                    r".*certificate is not trusted")
    stack.allow_log(r"MEMDS00511")
    # imaps:// and imap:// of one Dovecot look like two servers to the
    # account realm check: they are one mail store
    stack.allow_log(r"MEMDS00043: .*reach different IMAP servers")
    starttls = "imap://127.0.0.1:%s" % stack["MEMDS_IMAP_PORT"]
    # the same servers under the right CA and under another CA, side by
    # side: logins and connections kept by the first (per child) must not
    # serve the second
    stack.apply_site(
        _site(stack, "/tls-good", _imaps(stack), good)
        + _loc(stack, "/tls-bad", _imaps(stack), bad)
        + _loc(stack, "/tls-good-st", starttls, good + "\n    MemDSIMAPStartTLS On")
        + _loc(stack, "/tls-bad-st", starttls, bad + "\n    MemDSIMAPStartTLS On")
        + _loc(stack, "/tls-good-pt", _imaps(stack), good, auth_file=False)
        + _loc(stack, "/tls-bad-pt", _imaps(stack), bad, auth_file=False))
    for good_path, bad_path in (("/tls-good", "/tls-bad"), ("/tls-good-st", "/tls-bad-st")):
        for _ in range(3):
            s, a = _alert_email(stack, _url(stack, good_path))
            assert _alert_status(a) == ["200"], a.body[-800:]
            # the mailbox (master login): the Alert gets 503, the session goes on
            mark = stack.log_mark()
            s, a = _alert_email(stack, _url(stack, bad_path))
            assert a.http_status == 200 and _alert_status(a) == ["503"], a.body[-800:]
            log = stack.log_since(mark)
            assert "MEMDS00513" in log and "the server's certificate is not trusted" in log, log
    # the right CA, but a host name the certificate does not name (this
    # machine's name, when it resolves to 127.0.0.1 like localhost)
    name = socket.gethostname()
    if name not in ("localhost", "127.0.0.1") and _loopback(name):
        stack.apply_site(_site(stack, "/tls-badname", "imaps://%s:%s"
                               % (name, stack["MEMDS_IMAPS_PORT"]), good))
        mark = stack.log_mark()
        s, a = _alert_email(stack, _url(stack, "/tls-badname"))
        assert _alert_status(a) == ["503"], a.body[-800:]
        log = stack.log_since(mark)
        assert "the server's certificate is not trusted" in log \
            and "match" in log and name in log, log
        stack.apply_site(
            _site(stack, "/tls-good-pt", _imaps(stack), good, auth_file=False)
            + _loc(stack, "/tls-bad-pt", _imaps(stack), bad, auth_file=False))
    # the pass-through login cannot be checked: 503 for the request
    for _ in range(3):
        s, a = _alert_email(stack, _url(stack, "/tls-good-pt"))
        assert a.http_status == 200 and _alert_status(a) == ["200"]
        mark = stack.log_mark()
        s, a = _alert_email(stack, _url(stack, "/tls-bad-pt"))
        assert a.http_status == 503
        log = stack.log_since(mark)
        assert "MEMDS00220" in log and "certificate is not trusted" in log, log


def _loopback(name):
    try:
        return socket.gethostbyname(name) == "127.0.0.1"
    except OSError:
        return False


class _NoStartTLSImap:
    """An IMAP server that offers no STARTTLS (and logs nobody in)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rwb")
        try:
            f.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no TLS here\r\n")
            f.flush()
            for line in f:
                self.seen.append(line.strip())
                tag, cmd = (line.split(b" ", 1) + [b""])[:2]
                if cmd.upper().startswith(b"CAPABILITY"):
                    f.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag
                            + b" OK done\r\n")
                elif cmd.upper().startswith(b"LOGOUT"):
                    f.write(b"* BYE\r\n" + tag + b" OK bye\r\n")
                    f.flush()
                    break
                else:
                    f.write(tag + b" NO not here\r\n")
                f.flush()
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


def test_146_starttls_required_but_not_offered(stack):
    stack.allow_log(r"MEMDS00513: device .*STARTTLS is required but the "
                    r"server does not offer it")
    stack.allow_log(r"MEMDS00404: outbox .*STARTTLS is required but the "
                    r"server does not offer it")
    srv = _NoStartTLSImap()
    try:
        mark = stack.log_mark()
        stack.apply_site(_site(stack, "/tls-nostarttls", "imap://127.0.0.1:%d" % srv.port,
                               "MemDSIMAPStartTLS On"))
        s, a = _alert_email(stack, _url(stack, "/tls-nostarttls"))
        assert _alert_status(a) == ["503"], a.body[-800:]
        assert "STARTTLS is required but the server does not offer it" in \
            stack.log_since(mark)
        # no credentials went over the plain connection
        assert not any(b"LOGIN" in l.upper() or b"AUTHENTICATE" in l.upper()
                       for l in srv.seen), srv.seen
    finally:
        srv.close()
    # SMTP: Postfix's listener without TLS; the message is kept (202) and
    # not sent in the clear
    tag = "nostarttls-" + uuid.uuid4().hex[:8]
    smtp = "smtp://127.0.0.1:%s" % stack["MEMDS_SMTP_PLAIN_PORT"]
    try:
        mark = stack.log_mark()
        stack.apply_site(_site(stack, "/tls-nostarttls", _imaps(stack),
                               "MemDSSMTPStartTLS On", smtp=smtp))
        sess, body = _outbox_session(stack, "dev-" + uuid.uuid4().hex[:8], "1", tag,
                                     url=_url(stack, "/tls-nostarttls"))
        a = sess.post(sess.message(body))
        assert [st["Data"] for st in a.statuses() if st["Cmd"] == "Add"] == ["202"]
        assert "STARTTLS is required but the server does not offer it" in \
            stack.log_since(mark)
        settle(stack, 2)
        assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0) == []
    finally:
        _forget_outbox(stack, "/tls-nostarttls")


def _forget_outbox(stack, location):
    """Drop the ledger rows a refusal test left to be retried: nothing
    serves that location any more."""
    subprocess.run(["psql", stack["MEMDS_PG"], "-qXc",
                    "DELETE FROM memds.outbox WHERE location = '%s'" % location],
                   check=True, stdout=subprocess.DEVNULL)


# ------------------------------------------------------------------ SMTP

@pytest.mark.parametrize("how", ["starttls", "submissions"])
def test_147_send_over_tls_arrives_once(stack, how):
    if how == "starttls":
        smtp = "smtp://127.0.0.1:%s" % stack["MEMDS_SMTP_PORT"]
        extra = "MemDSSMTPStartTLS On"
    else:
        smtp = "smtps://127.0.0.1:%s" % stack["MEMDS_SUBMISSIONS_PORT"]
        extra = ""
    stack.apply_site(_site(stack, "/tls-send", _imaps(stack),
                           'MemDSTLSCAFile "%s"\n    %s' % (stack["MEMDS_CA_FILE"], extra),
                           smtp=smtp))
    tag = "tls-%s-%s" % (how, uuid.uuid4().hex[:8])
    tls_before = _maillog_tls(stack)
    sess, body = _outbox_session(stack, "dev-" + uuid.uuid4().hex[:8], "1", tag,
                                 url=_url(stack, "/tls-send"))
    a = sess.post(sess.message(body))
    assert [st["Data"] for st in a.statuses() if st["Cmd"] == "Add"] == ["201"], a.body[-800:]
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
    settle(stack, 2)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1
    assert _maillog_tls(stack) > tls_before


def test_148_untrusted_smtp_certificate_refused(stack, other_ca):
    stack.allow_log(r"MEMDS00404: outbox .*certificate is not trusted")
    tag = "tls-bad-smtp-" + uuid.uuid4().hex[:8]
    try:
        for smtp in ("smtp://127.0.0.1:%s" % stack["MEMDS_SMTP_PORT"],
                     "smtps://127.0.0.1:%s" % stack["MEMDS_SUBMISSIONS_PORT"]):
            mark = stack.log_mark()
            # IMAP with the right CA (it is the file of the location that
            # counts for both): a location of its own for the SMTP side
            stack.apply_site(_site(stack, "/tls-bad-smtp", "imap://127.0.0.1:%s"
                                   % stack["MEMDS_IMAP_PORT"],
                                   'MemDSTLSCAFile "%s/ca.pem"' % other_ca, smtp=smtp))
            sess, body = _outbox_session(stack, "dev-" + uuid.uuid4().hex[:8], "1", tag,
                                         url=_url(stack, "/tls-bad-smtp"))
            a = sess.post(sess.message(body))
            assert [st["Data"] for st in a.statuses() if st["Cmd"] == "Add"] == ["202"]
            log = stack.log_since(mark)
            assert "MEMDS00404" in log and "the server's certificate is not trusted" in log, log
        settle(stack, 2)
        assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0) == []
    finally:
        _forget_outbox(stack, "/tls-bad-smtp")


# ------------------------------------------------------------------ configuration

def test_149_configtest(stack, other_ca):
    base = """
MemDSDatabase "{PG}"
<Location /x>
    SetHandler memds-sync
    MemDSEngine On
    %s
</Location>
"""
    rc, out = stack.configtest(base % 'MemDSTLSCAFile "%s"' % stack["MEMDS_CA_FILE"])
    assert rc == 0, out
    rc, out = stack.configtest(base % "MemDSTLSCAFile /nonexistent/ca.pem")
    assert rc != 0 and "MemDSTLSCAFile: cannot read '/nonexistent/ca.pem'" in out, out
    rc, out = stack.configtest(base % 'MemDSTLSCAFile "%s/key-and-cert.pem"' % other_ca)
    assert rc != 0 and "private key" in out, out
    rc, out = stack.configtest(base % 'MemDSTLSCAFile "%s"' % stack["MEMDS_HTTPD_CONF"])
    assert rc != 0 and "no PEM certificate" in out, out
    rc, out = stack.configtest(base % "MemDSIMAPStartTLS maybe")
    assert rc != 0 and "MemDSIMAPStartTLS" in out, out
    rc, out = stack.configtest(base % "MemDSSMTPStartTLS On\n    MemDSIMAPStartTLS Off")
    assert rc == 0, out


# ------------------------------------------------------------------ the real client

def test_150_real_client_over_https(stack):
    url = stack["MEMDS_HTTPS_ITEMS_URL"]
    c = Client(stack, enc="wbxml", typ="raw-vcard", cafile=stack["MEMDS_CA_FILE"])
    try:
        c.sync("slow", url=url)
        c.put("c1", vcard("over-tls", True))
        c.sync("two-way", url=url)
        assert c.remote() == c.local() and len(c.local()) == 1
        c.server_add(vcard("from-server", True))
        c.sync("two-way", url=url)
        assert c.local() == c.remote() and len(c.local()) == 2
    finally:
        c.cleanup()
    # with only the system's CAs the client refuses the server
    c = Client(stack, enc="xml", typ="raw-vcard")
    try:
        assert c.sync("slow", url=url, check=False, timeout=120) != 0
        # refused for the certificate (not for anything else TLS can say)
        assert "CurlTransport Failure: server certificate verification failed" \
            in c.last_log, c.last_log[-2000:]
    finally:
        c.cleanup()
