"""63x: sending, the cases the Outbox tests of 61x leave out: a temporary
failure retried with backoff (and a device's retry before it is due gets
"pending", nothing sent twice, sent once when due); the ledger failing to
record `submitting` (nothing sent, 503, sent once after); SMTP refusals
other than 550, temporary and permanent, at RCPT TO, at DATA and at the end
of the data, produced by the stack's real Postfix through access maps this
module installs (and removes)."""
import os
import re
import subprocess
import time
import uuid

import pytest
from xml.sax.saxutils import escape

import syncml as S
from smtpfake import FakeSMTP
from test_510_mail import psql
from test_610_outbox import copies, settle


# ------------------------------------------------------------------ helpers

def email_obj(tag, sender="Alice <alice@example.test>", to="Bob <bob@example.test>"):
    msg = ("From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=UTF-8\r\n\r\nHello, this is %s.\r\n"
           % (sender, to, tag, tag))
    return ("<Email><read>true</read><emailitem>%s</emailitem></Email>"
            % escape(msg).replace("\r", "&#13;"))


class Device:
    """One device sending through the Outbox of url, one complete session
    per call (so that its anchors carry over)."""

    def __init__(self, stack, url=None, user="alice", password="alice-secret"):
        self.stack = stack
        self.url = url or stack["MEMDS_URL"]
        self.devid = "dev-" + uuid.uuid4().hex[:8]
        self.user, self.password = user, password
        self.n = 0
        self.last = None

    def _session(self, ops):
        self.n += 1
        nxt = "n%d" % self.n
        sess = S.Session(self.url, self.devid, self.user, self.password,
                         session_id=str(self.n))
        a = sess.post(sess.message(S.alert(1, 200 if self.last else 201, "Outbox",
                                           "./outbox", nxt, last=self.last)))
        assert a.http_status == 200 and a.hdr_status() in ("200", "212"), a.body
        # as devices do: 212 is "authenticated for the session", after 200
        # the credentials go with every message
        self.hdr_status = a.hdr_status()
        sess.cred = self.hdr_status == "200"
        body = ("<Sync><CmdID>2</CmdID><Target><LocURI>Outbox</LocURI></Target>"
                "<Source><LocURI>./outbox</LocURI></Source>%s</Sync>" % "".join(
                    "<Add><CmdID>%d</CmdID><Meta><Type xmlns='syncml:metinf'>"
                    "application/vnd.omads-email+xml</Type></Meta><Item><Source>"
                    "<LocURI>%s</LocURI></Source><Data>%s</Data></Item></Add>"
                    % (3 + i, luid, S.esc(obj)) for i, (luid, obj) in enumerate(ops)))
        a = sess.post(sess.message(body))
        assert a.http_status == 200, a.body
        sess.post(sess.message(""))
        self.last = nxt
        return [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"], a

    def add(self, luid, obj):
        """Adds (or adds again) an Outbox item; returns its Status and the
        answer."""
        st, a = self._session([(luid, obj)])
        return st[0] if st else None, a

    def sync(self):
        """A sync with nothing to send: due retries happen."""
        return self._session([])[1]


def ledger(stack, devid):
    """(state, attempts, status, seconds until the next attempt, reason,
    location, id) of the device's one ledger row."""
    out = psql(stack, "SELECT state || '|' || attempts || '|' || coalesce(status, 0) "
                      "|| '|' || coalesce(round(extract(epoch FROM next_attempt_at - "
                      "now()))::text, '') || '|' || coalesce(location, '') || '|' "
                      "|| outbox_id || '|' || coalesce(reason, '') FROM memds.outbox o "
                      "JOIN memds.devices d USING (device_id) WHERE d.devid = '%s'" % devid)
    assert out and "\n" not in out, out
    state, attempts, status, secs, loc, oid, reason = out.split("|", 6)
    return {"state": state, "attempts": int(attempts), "status": int(status),
            "secs": int(secs) if secs else None, "location": loc, "id": int(oid),
            "reason": reason}


def deletes(a):
    return [op for op, *_ in a.sync_items() if op == "Delete"]


def mail_location(stack, path, smtp_url, extra=""):
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location %s>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster %s %s
    MemDSSMTPServer %s
    %s
</Location>
""" % (path, stack["MEMDS_MASTER_USER"], stack["MEMDS_MASTER_PASS"], smtp_url, extra))
    return "http://127.0.0.1:%s%s" % (stack["MEMDS_HTTP_PORT"], path)


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.2)


# ------------------------------------------- backoff, "retrying, not yet due"

def test_631_backoff_not_yet_due_then_sent_once(stack):
    """A temporary refusal (451 at RCPT, from a scripted SMTP server that
    counts every connection) leaves the message `retrying` with its first
    retry a minute later (202 to the device). Before it is due, the device's
    retried Add gets 202 again, its next sync sends nothing, nor does the
    background job: the server sees no second attempt. Each failed due
    attempt doubles the wait (2, 4 minutes ... at most an hour), one
    attempt each time. Once due with the server accepting, the retried Add
    sends it, once (201, the device's item deleted, one Sent copy), and a
    further retry sends nothing."""
    stack.allow_log(r"not sent yet, retried")
    fake = FakeSMTP()
    fake.rcpt_reply = b"451 4.3.0 Try again later"
    try:
        url = mail_location(stack, "/gaps631", fake.url)
        tag = "backoff-" + uuid.uuid4().hex[:8]
        obj = email_obj(tag)
        d = Device(stack, url)
        st, _ = d.add("L1", obj)
        assert st == "202"
        assert fake.count() == 1 and fake.delivered() == []
        row = ledger(stack, d.devid)
        assert row["state"] == "retrying" and row["attempts"] == 1, row
        assert 55 <= row["secs"] <= 60, row  # the first retry: in 1 minute
        assert "451 4.3.0 Try again later" in row["reason"], row
        assert row["location"] == "/gaps631"
        # the server would accept now, but the retry is not due yet
        fake.rcpt_reply = b"250 2.1.5 Ok"
        st, a = d.add("L1", obj)
        assert st == "202" and deletes(a) == []
        assert deletes(d.sync()) == []
        time.sleep(12)  # at least one run of the background job (every 10 s)
        assert fake.count() == 1 and fake.delivered() == []
        again = ledger(stack, d.devid)
        assert (again["state"], again["attempts"]) == ("retrying", 1)
        assert again["secs"] <= row["secs"]  # not pushed back either
        # Backoff, driven by the device's syncs alone: the background job is
        # kept off this row (a location it does not serve) so that every
        # attempt below is the device's
        psql(stack, "UPDATE memds.outbox SET location = '/not-served' "
                    "WHERE outbox_id = %d" % row["id"])
        fake.rcpt_reply = b"451 4.3.0 Try again later"
        for before, wait in [(1, 120), (2, 240), (5, 1920), (6, 3600), (9, 3600)]:
            psql(stack, "UPDATE memds.outbox SET attempts = %d, next_attempt_at = now() "
                        "WHERE outbox_id = %d" % (before, row["id"]))
            n = fake.count()
            assert deletes(d.sync()) == []
            assert fake.count() == n + 1, "one attempt per due retry"
            r = ledger(stack, d.devid)
            assert (r["state"], r["attempts"]) == ("retrying", before + 1), r
            assert wait - 5 <= r["secs"] <= wait, (before, r)
        # due, and the server accepts: the retried Add sends it, once
        fake.rcpt_reply = b"250 2.1.5 Ok"
        psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() "
                    "WHERE outbox_id = %d" % row["id"])
        st, a = d.add("L1", obj)
        assert st == "201" and deletes(a) == ["Delete"]
        assert len(fake.delivered()) == 1 and tag.encode() in fake.delivered()[0]
        assert ledger(stack, d.devid)["state"] == "filed"
        assert len(copies(stack, "alice", "alice-secret", "Sent", tag)) == 1
        # the answer was lost, say: the Add again gets 201, nothing goes out
        n = fake.count()
        st, a = d.add("L1", obj)
        assert st == "201"
        d.sync()
        assert fake.count() == n and len(fake.delivered()) == 1
        assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1
    finally:
        fake.stop()


def test_635_a_retry_tried_meanwhile_waits(stack):
    """Two senders reach a due retry: the background job, which listed it as
    due, and the device's sync, which tried it first (the job was busy with
    the message before it in its list, whose server is slow). When the job
    gets the row's claim after the device, the row is no longer due: it
    waits for its new time instead of being tried again at once (before,
    the job sent every row it had listed, due or not by then)."""
    stack.allow_log(r"not sent yet, retried")
    fake = FakeSMTP()
    fake.rcpt_reply = b"451 4.3.0 Try again later"
    fake.rcpt_delay = {"carol@example.test": 6}
    try:
        url = mail_location(stack, "/race635", fake.url)
        slow, d = Device(stack, url), Device(stack, url)
        # the slow one first: the job takes the rows in the order of their ids
        assert slow.add("L1", email_obj("race-slow", to="Carol <carol@example.test>"))[0] == "202"
        assert d.add("L1", email_obj("race-" + uuid.uuid4().hex[:6]))[0] == "202"
        assert (fake.count("carol@example.test"), fake.count("bob@example.test")) == (1, 1)
        ids = [ledger(stack, x.devid)["id"] for x in (slow, d)]
        psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() WHERE outbox_id IN "
                    "(%d, %d)" % tuple(ids))
        # the job lists both and is held up by the first (its RCPT takes 6 s)
        wait_for(lambda: fake.count("carol@example.test") == 2, 30, "the job's attempt")
        d.sync()  # the device tries its own row meanwhile
        assert fake.count("bob@example.test") == 2
        mine = ledger(stack, d.devid)
        assert (mine["state"], mine["attempts"]) == ("retrying", 2), mine
        # the job is done with the slow one, then comes to the device's row
        wait_for(lambda: ledger(stack, slow.devid)["attempts"] == 2, 30, "the slow attempt")
        time.sleep(2)
        assert fake.count("bob@example.test") == 2, "tried again before it was due"
        r = ledger(stack, d.devid)
        assert r["attempts"] == 2 and 110 <= r["secs"] <= 120, r
    finally:
        fake.stop()


# --------------------------------------- the ledger cannot record submitting

def test_632_ledger_cannot_record_submitting(stack):
    """A PostgreSQL error at exactly the `received -> submitting` step (a
    trigger on memds.outbox raises on that UPDATE of this test's row): the
    end of the data never goes out, so nothing is delivered; the device gets
    503 for its Add and the log says why (the ledger's error, "not sent");
    the row stays `received`. With the trigger gone, the device's retry
    sends it once and files it once."""
    stack.allow_log(r"MEMDS00514.*the ledger could not record the submission")
    tag = "nosubmit-" + uuid.uuid4().hex[:8]
    luid = "L-" + tag
    psql(stack, """
CREATE FUNCTION public.memds_test_632() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'test 632 refuses submitting'; END $$;
CREATE TRIGGER memds_test_632 BEFORE UPDATE ON memds.outbox FOR EACH ROW
WHEN (NEW.state = 'submitting' AND NEW.luid = '%s')
EXECUTE FUNCTION public.memds_test_632();""" % luid)
    d = Device(stack)
    obj = email_obj(tag)
    mark = stack.log_mark()
    try:
        st, a = d.add(luid, obj)
        assert st == "503" and deletes(a) == []
        log = stack.log_since(mark)
        assert re.search(r"\[[a-z_]+:warn\].*MEMDS00514.*%s.*the ledger could not record "
                         r"the submission.*message not sent.*test 632 refuses submitting"
                         % d.devid, log), log
        r = ledger(stack, d.devid)
        assert (r["state"], r["attempts"]) == ("received", 0), r
        assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=5) == []
    finally:
        psql(stack, "DROP TRIGGER memds_test_632 ON memds.outbox; "
                    "DROP FUNCTION public.memds_test_632()")
    st, a = d.add(luid, obj)
    assert st == "201" and deletes(a) == ["Delete"]
    assert ledger(stack, d.devid)["state"] == "filed"
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1


# ------------------------------------------------- refusals from Postfix

MAPS = ("rcpt", "data", "eod")


class Postfix:
    """Access maps in the stack's Postfix: a sender address found in the
    `rcpt` map is refused at RCPT TO, in `data` at DATA, in `eod` at the
    end of the data, each with the code and text of its entry. The
    envelope sender is the message's From (the account, alice, is no
    address), so each case uses its own From address."""

    def __init__(self, stack):
        self.stack = stack
        self.dir = os.path.join(stack.var, "postfix")
        self.maps = {m: {} for m in MAPS}

    def path(self, m):
        return os.path.join(self.dir, "memds-test-%s-access" % m)

    def postconf(self, *args):
        subprocess.run(["postconf", "-c", self.dir, *args], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)

    def reload(self):
        for m in MAPS:
            with open(self.path(m), "w") as f:
                for k, v in self.maps[m].items():
                    f.write("%s %s\n" % (k, v))
            os.chmod(self.path(m), 0o644)
        subprocess.run(["postfix", "-c", self.dir, "reload"], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        time.sleep(1.5)  # the master restarts its smtpd processes

    def install(self):
        self.reload()
        self.postconf(
            "-e",
            "smtpd_recipient_restrictions=check_sender_access texthash:%s" % self.path("rcpt"),
            "smtpd_data_restrictions=check_sender_access texthash:%s" % self.path("data"),
            "smtpd_end_of_data_restrictions=check_sender_access texthash:%s"
            % self.path("eod"))
        self.reload()

    def remove(self):
        self.postconf("-X", "smtpd_recipient_restrictions", "smtpd_data_restrictions",
                      "smtpd_end_of_data_restrictions")
        self.maps = {m: {} for m in MAPS}
        self.reload()

    def rejects(self, sender):
        """Postfix's reject (and temporary reject) lines for sender."""
        with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
            return [l for l in f if "reject:" in l and "<%s>" % sender in l]


@pytest.fixture(scope="module")
def postfix(stack):
    pf = Postfix(stack)
    pf.install()
    try:
        yield pf
    finally:
        pf.remove()


# (where, reply, status to the device, temporary)
REFUSALS = [
    ("rcpt", "421 4.7.0 Closing the connection", "202", True),
    ("rcpt", "450 4.2.0 Mailbox busy", "202", True),
    ("rcpt", "451 4.3.0 Local error", "202", True),
    ("rcpt", "452 4.3.1 Insufficient storage", "202", True),
    # RFC 5321 4.5.3.1.10: 552 to RCPT (too many recipients) is temporary
    ("rcpt", "552 5.5.3 Too many recipients", "202", True),
    ("rcpt", "553 5.1.3 Bad recipient address syntax", "400", False),
    ("rcpt", "554 5.7.1 Relay access denied", "403", False),
    ("data", "451 4.3.0 Not now", "202", True),
    ("data", "554 5.7.1 No data accepted from you", "403", False),
    ("eod", "421 4.7.0 Closing the connection", "202", True),
    ("eod", "450 4.7.1 Greylisted", "202", True),
    ("eod", "451 4.3.0 Queue file write error", "202", True),
    ("eod", "452 4.3.1 Insufficient system storage", "202", True),
    ("eod", "552 5.3.4 Message size exceeds fixed limit", "413", False),
    ("eod", "553 5.6.0 Malformed message", "500", False),
    ("eod", "554 5.7.1 Message content rejected", "403", False),
]


def _refused_send(stack, postfix, where, reply, url=None):
    """A message from its own sender address, refused by Postfix at where
    with reply. Returns (device, tag, sender, obj, Status, answer)."""
    tag = "refuse-%s-%s-%s" % (where, reply[:3], uuid.uuid4().hex[:6])
    sender = "%s@example.test" % tag
    postfix.maps[where][sender] = reply
    postfix.reload()
    d = Device(stack, url)
    obj = email_obj(tag, sender="Alice <%s>" % sender)
    st, a = d.add("L1", obj)
    return d, tag, sender, obj, st, a


@pytest.mark.parametrize("where,reply,status,temporary", REFUSALS,
                         ids=["%s-%s" % (r[0], r[1][:3]) for r in REFUSALS])
def test_633_smtp_refusals(stack, postfix, where, reply, status, temporary):
    """Postfix refuses the message at RCPT TO, at DATA or at the end of the
    data with the reply. Temporary (4xx, and 552 to RCPT): 202, the ledger
    `retrying` with the server's reply as the reason, nothing in Drafts;
    once Postfix takes it and the retry is due, the device's sync sends it
    once. Permanent: the mapped status (553 to a recipient 400, policy
    5.7.x 403, 552 / 5.3.4 413, other 500), the ledger `rejected` with it,
    the message in Drafts with X-MemDS-Send-Error naming the reply, and a
    retried Add gets the same status without another SMTP transaction."""
    stack.allow_log(r"not sent yet, retried|message refused by the SMTP server")
    code = reply[:3]
    d, tag, sender, obj, st, a = _refused_send(stack, postfix, where, reply)
    # (a retried Add of a refused message: its stored reason, logged again)
    stack.allow_log(r"MEMDS00514: device %s: mailbox Outbox of alice: .*<%s>"
                    % (d.devid, re.escape(sender)))
    assert st == status, a.body
    assert len(postfix.rejects(sender)) == 1, postfix.rejects(sender)
    r = ledger(stack, d.devid)
    # the reason kept (and told to the device) is the server's reply (Postfix
    # puts the address in front of the map's text, and its own enhanced code
    # for a sender refused with 553)
    assert re.search(r"(^|[ (])%s [245]\.\d+\.\d+ .*%s" % (code, re.escape(reply[10:])),
                     r["reason"]), r
    if temporary:
        assert (r["state"], r["attempts"]) == ("retrying", 1), r
        assert 55 <= r["secs"] <= 60, r
        assert deletes(a) == []
        assert copies(stack, "alice", "alice-secret", "Drafts", tag, wait=0) == []
        # Postfix takes it now; once due, the device's next sync sends it
        # (or the background job does, if it comes first: one of them)
        del postfix.maps[where][sender]
        postfix.reload()
        psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() WHERE outbox_id = %d"
             % r["id"])
        d.sync()
        wait_for(lambda: ledger(stack, d.devid)["state"] == "filed", 30, "filed")
        assert len(copies(stack, "bob", "bob-secret", "INBOX", tag)) == 1
        settle(stack)
        assert len(copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0)) == 1
        assert len(copies(stack, "alice", "alice-secret", "Sent", tag, wait=0)) == 1
        assert len(postfix.rejects(sender)) == 1
        return
    assert (r["state"], r["status"]) == ("rejected", int(status)), r
    # the device has the refusal as its Add's status (its item is not mapped,
    # so no Delete follows: what it does with it is up to it); the copy for
    # the user to fix and send again is in Drafts
    assert deletes(a) == []
    drafts = copies(stack, "alice", "alice-secret", "Drafts", tag, wait=10)
    assert len(drafts) == 1, drafts
    m = re.search(rb"(?im)^X-MemDS-Send-Error: (.*)\r$", drafts[0])
    assert m and code.encode() in m.group(1) and reply[10:].encode() in m.group(1), drafts[0]
    assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0) == []
    # the device tries again: the same status, no second transaction
    st, a = d.add("L1", obj)
    assert st == status
    assert len(postfix.rejects(sender)) == 1
    assert len(copies(stack, "alice", "alice-secret", "Drafts", tag, wait=0)) == 1


@pytest.mark.parametrize("where,reply,status", [
    ("rcpt", "554 5.7.1 Relay access denied", "403"),
    ("eod", "554 5.6.0 Message rejected", "500")])
def test_634_rejected_mail_keep(stack, postfix, where, reply, status):
    """MemDSRejectedMail keep: a message refused for good gets its status
    and the ledger says rejected, but nothing is put into Drafts."""
    stack.allow_log(r"message refused by the SMTP server")
    url = mail_location(stack, "/keep634", "{SMTP}", "MemDSRejectedMail keep")
    d, tag, sender, obj, st, a = _refused_send(stack, postfix, where, reply, url)
    assert st == status, a.body
    r = ledger(stack, d.devid)
    assert (r["state"], r["status"]) == ("rejected", int(status)), r
    assert len(postfix.rejects(sender)) == 1
    settle(stack)
    assert copies(stack, "alice", "alice-secret", "Drafts", tag, wait=0) == []
    assert copies(stack, "bob", "bob-secret", "INBOX", tag, wait=0) == []
