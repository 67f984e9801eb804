"""41x: the child dies (SIGKILL) at a named fault point of each side effect
(docs/crash-recovery.md); each test requires the point's log line, shows
what the mailbox (IMAP) and the database (mail rows, the Outbox ledger) held
at that moment, then retries and requires convergence: nothing lost,
nothing twice. They need the module built with --enable-fault-injection
(./dev test's fault stage); httpd runs with MEMDS_TEST_FAULT naming an
arming file (tests/fault/campaign.py), so no kill needs a restart.
test_410b (not a fault test) checks that the production module has no
fault point at all."""
import os
import re
import sys
import time
import uuid

import pytest

import syncml as S
from client import Client
from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tests", "fault"))
import campaign as F  # noqa: E402

KILLED = r"exit signal Killed|child pid \d+ exit signal|MEMDS00407: .*retried while"


def _fault_build(stack):
    mk = os.path.join(stack.env["MEMDS_BUILD"], "Makefile")
    with open(mk) as f:
        return re.search(r"^MEMDS_FAULT_CFLAGS = -D", f.read(), re.M) is not None


def _module(stack):
    return os.path.join(stack.env["MEMDS_BUILD"], "mod_memds", ".libs", "mod_memds.so")


def test_410b_production_module_has_no_fault_points(stack):
    """Without --enable-fault-injection the module has neither the points
    nor the hook: no "fault point" text, no MEMDS_TEST_FAULT lookup, no
    point name (with it, all three are there)."""
    with open(_module(stack), "rb") as f:
        so = f.read()
    there = tuple(x in so for x in (b"fault point", b"MEMDS_TEST_FAULT",
                                    b"imap-append-after"))
    assert there == ((True,) * 3 if _fault_build(stack) else (False,) * 3)


@pytest.fixture
def armed(stack):
    """httpd armable (once), and the kill lines allowed."""
    if not _fault_build(stack):
        pytest.fail("fault tests need MEMDS_BUILD configured with --enable-fault-injection")
    F.ensure_armable(stack)
    stack.allow_log(KILLED)
    yield
    F.disarm(stack)


def _kill_during(stack, point, fn, nth=1):
    """Arm point, run fn (which must fail: the child dies), require the
    point's line; returns fn's result."""
    mark = stack.log_mark()
    F.arm(stack, point, nth)
    try:
        r = fn()
    finally:
        left = F.disarm(stack)
    log = stack.log_since(mark)
    assert F.fired_line(point) in log, "point %s did not fire:\n%s" % (point, log[-3000:])
    assert not left
    assert len(re.findall(r"MEMDS fault point \S+ fired", log)) == 1, log
    return r


def _folder(stack):
    name = "K" + uuid.uuid4().hex[:8]
    m = F.imap(stack)
    assert m.create(name)[0] == "OK"
    m.logout()
    return name


def _rows(stack, folder, mid):
    """(uid, flags) of the live rows of folder with Message-ID mid."""
    out = F.psql(stack, "SELECT uid || ' ' || flags FROM memds.mail_messages WHERE "
                        "account = 'alice' AND folder = '%s' AND message_id = '%s' "
                        "AND NOT deleted ORDER BY uid" % (folder, mid))
    return [tuple(int(x) for x in l.split()) for l in out.splitlines() if l]


def _imap_uids(stack, folder, mid):
    m = F.imap(stack)
    try:
        m.select('"%s"' % folder, readonly=True)
        typ, d = m.uid("SEARCH", None, "UNDELETED", "HEADER", "Message-ID", '"%s"' % mid)
        uids = [int(x) for x in d[0].split()] if d[0] else []
        flags = {}
        for u in uids:
            h = m.uid("FETCH", str(u), "(FLAGS)")[1][0]
            flags[u] = set(re.search(rb"FLAGS \(([^)]*)\)", h).group(1).decode().split())
        return uids, flags
    finally:
        m.logout()


def _one_mail_synced(stack, kind, text):
    """A new folder with one mail, synced by a real client: (folder,
    Message-ID, client, the item's file name)."""
    folder = _folder(stack)
    mid = _mid(kind)
    m = F.imap(stack)
    m.append(folder, None, None, F.raw_message(mid, "%s %s" % (kind, mid), text))
    m.logout()
    c = Client(stack, typ="raw-email", uri=folder)
    c.sync("slow", url=stack["MEMDS_URL"])
    (name,) = os.listdir(c.items_dir)
    return folder, mid, c, name


def _mid(kind):
    return "<%s-%s@%s>" % (kind, uuid.uuid4().hex[:10], F.DOMAIN)


def _draft(mid, text="Draft v1"):
    return F.raw_message(mid, "draft " + mid, text, frm="Alice <alice@example.test>",
                         to="Bob <bob@example.test>")


def _sync(stack, c, check=True):
    return c.sync("two-way", url=stack["MEMDS_URL"], check=check)


@pytest.mark.fault
@pytest.mark.parametrize("point", ["imap-append-before", "imap-append-after",
                                   "pg-commit-before", "pg-commit-after",
                                   "answer-write-before", "answer-write-after"])
def test_411_device_add_killed_is_appended_once(stack, armed, point):
    """A message the device adds (APPEND, then its row in the request's
    transaction): killed before the APPEND, IMAP has nothing; after it (and
    before the commit) IMAP has it but no row records it; after the commit
    the row is there. The retry of the device's Add finds the unrecorded copy
    (same bytes) instead of appending again: one message, one row."""
    folder = _folder(stack)
    c = Client(stack, typ="raw-email", uri=folder)
    c.sync("slow", url=stack["MEMDS_URL"])
    mid = _mid("add")
    raw = _draft(mid)
    c.put("new1", F.item(raw))
    # (the Add travels in the client's second message: the 2nd hit of a
    # point that every request passes)
    nth = 2 if point.startswith(("pg-", "answer-")) else 1
    rc = _kill_during(stack, point, lambda: _sync(stack, c, check=False), nth)
    # (after the whole answer was written the device may not notice: libcurl
    # takes the next message to a new connection; before, its sync fails)
    assert rc != 0 or point == "answer-write-after"
    uids, _ = _imap_uids(stack, folder, mid)
    rows = _rows(stack, folder, mid)
    if point == "imap-append-before":
        assert (uids, rows) == ([], [])
    elif point in ("imap-append-after", "pg-commit-before"):
        assert len(uids) == 1 and rows == []  # the orphan: in IMAP, no row
    else:
        assert len(uids) == 1 and [r[0] for r in rows] == uids
    _sync(stack, c)
    _sync(stack, c)
    uids, _ = _imap_uids(stack, folder, mid)
    assert len(uids) == 1 and [r[0] for r in _rows(stack, folder, mid)] == uids
    assert F.folder_state(stack, folder)[0][2] == raw
    assert len(c.local()) == 1


def _add_killed_after_append(stack, kind):
    """A hand-made device of a new folder (slow-synced, empty) in a two-way
    session whose Add of a draft dies after the APPEND: (folder, its
    Message-ID, the session, the message to resend, the one UID on IMAP),
    no row for it."""
    import test_530_move as MV
    folder = _folder(stack)
    devid = "dev-" + uuid.uuid4().hex[:8]
    assert MV._slow(stack, folder, devid, "alice", "alice-secret") == []
    mid = _mid(kind)
    raw = _draft(mid)
    s = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id="2")
    a = s.post(s.message(S.alert(1, 200, folder, "./" + folder, "2", last="n1")))
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"]
    msg = s.message(MV._sync_body(folder, (
        "<Add><CmdID>3</CmdID><Meta><Type xmlns='syncml:metinf'>"
        "application/vnd.omads-email+xml</Type></Meta><Item><Source><LocURI>N1"
        "</LocURI></Source><Data>%s</Data></Item></Add>" % S.esc(F.item(raw).decode()))))
    assert _kill_during(stack, "imap-append-after", lambda: _post_dies(s, msg)) is None
    uids, _ = _imap_uids(stack, folder, mid)
    assert len(uids) == 1 and _rows(stack, folder, mid) == []
    return folder, mid, s, msg, uids


@pytest.mark.fault
def test_411b_resent_add_after_append_is_not_appended_twice(stack, armed):
    """The same without the real client's slow sync after a failure (whose
    matching by Message-ID would hide a duplicate): a device resends the
    very message whose Add died after the APPEND, in the same two-way
    session. Without the search for the unrecorded copy, that APPENDed a
    second copy (and the next scan gave the device both)."""
    folder, mid, s, msg, uids = _add_killed_after_append(stack, "resend")
    a = s.post(msg)
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Add"] == ["201"], a.body
    assert _imap_uids(stack, folder, mid)[0] == uids
    assert [r[0] for r in _rows(stack, folder, mid)] == uids


@pytest.mark.fault
def test_411c_add_recorded_by_a_scan_before_the_retry_is_not_appended_twice(
        stack, armed):
    """As test_411b, but before the resend another device of the account
    syncs the folder: its scan records the dead request's copy as the
    server's mail (a row, not the adding device's). The resend takes that
    row over (one message on IMAP, the row now the device's change) and the
    device does not get it back as a server Add. Without taking it over, the
    resend's search saw the copy as recorded and appended a second one."""
    import test_510_mail as M
    import test_530_move as MV
    folder, mid, s, msg, uids = _add_killed_after_append(stack, "scanned")
    # another device's scan records the copy as the server's mail
    other = MV._slow(stack, folder, "dev-" + uuid.uuid4().hex[:8], "alice",
                     "alice-secret")
    assert len(other) == 1 and other[0][0] == "Add"
    assert [r[0] for r in _rows(stack, folder, mid)] == uids
    who = "SELECT coalesce(changed_by, 0) FROM memds.mail_messages WHERE " \
          "account = 'alice' AND folder = '%s' AND message_id = '%s' AND NOT " \
          "deleted" % (folder, mid)
    assert F.psql(stack, who).split() == ["0"]
    a = s.post(msg)
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Add"] == ["201"], a.body
    assert _imap_uids(stack, folder, mid)[0] == uids
    assert [r[0] for r in _rows(stack, folder, mid)] == uids
    assert F.psql(stack, who).split() != ["0"]  # the device's change now
    got, a = M._receive_all(s, a)
    assert [it for it in got if it[0] == "Add"] == [], got


@pytest.mark.fault
@pytest.mark.parametrize("point", ["imap-replace-expunge-before",
                                   "imap-replace-expunge-after"])
def test_412_draft_edit_killed_keeps_one_version(stack, armed, point):
    """A draft the device edits: the new version is appended, then the old
    one expunged. Killed between the two, IMAP has both and the row still
    names the old UID; after the EXPUNGE, only the new one (the row still
    the old UID). The retry adopts the unrecorded new version and removes
    the old one: one message, the new bytes, the row on its UID."""
    folder = _folder(stack)
    c = Client(stack, typ="raw-email", uri=folder)
    c.sync("slow", url=stack["MEMDS_URL"])
    mid = _mid("edit")
    c.put("d1", F.item(_draft(mid)))
    _sync(stack, c)
    (old_uid,), _ = _imap_uids(stack, folder, mid)
    new = _draft(mid, "Draft v2, longer than the first")
    c.put("d1", F.item(new))
    _kill_during(stack, point, lambda: _sync(stack, c, check=False))
    uids, _ = _imap_uids(stack, folder, mid)
    assert [r[0] for r in _rows(stack, folder, mid)] == [old_uid]
    if point.endswith("-before"):
        assert len(uids) == 2 and old_uid in uids
    else:
        assert len(uids) == 1 and old_uid not in uids
    _sync(stack, c)
    _sync(stack, c)
    uids, _ = _imap_uids(stack, folder, mid)
    assert len(uids) == 1 and [r[0] for r in _rows(stack, folder, mid)] == uids
    assert [raw for m, _, raw in F.folder_state(stack, folder)] == [new]


@pytest.mark.fault
@pytest.mark.parametrize("point", ["imap-store-before", "imap-store-after"])
def test_413_flag_change_killed_converges(stack, armed, point):
    """The device marks a mail read (UID STORE +FLAGS \\Seen, then the row):
    killed after the STORE, IMAP has \\Seen and the row not; the retry
    stores again (idempotent) and records it; the device keeps read."""
    folder, mid, c, name = _one_mail_synced(stack, "flag", "Read me")
    with open(os.path.join(c.items_dir, name), "rb") as f:
        b = f.read()
    assert b"<read>false</read>" in b
    c.put(name, b.replace(b"<read>false</read>", b"<read>true</read>"))
    _kill_during(stack, point, lambda: _sync(stack, c, check=False))
    (uid,), flags = _imap_uids(stack, folder, mid)
    (row,) = _rows(stack, folder, mid)
    assert ("\\Seen" in flags[uid]) == point.endswith("-after")
    assert row == (uid, 0)  # the row: not yet
    _sync(stack, c)
    _sync(stack, c)
    (uid2,), flags = _imap_uids(stack, folder, mid)
    assert uid2 == uid and "\\Seen" in flags[uid]
    assert _rows(stack, folder, mid) == [(uid, F_SEEN)]
    assert [v[1] for v in F.device_items(c).values()] == [True]


F_SEEN = 0x01  # MEMDS_MAIL_SEEN


@pytest.mark.fault
@pytest.mark.parametrize("point", ["imap-delete-before", "imap-delete-after"])
def test_414_delete_killed_moves_to_trash_once(stack, armed, point):
    """The device deletes a mail (policy trash: UID MOVE to Trash, then the
    row's tombstone): killed after the MOVE, the mail is in Trash and the row
    still live; the retry finds the UID gone (not an error) and tombstones
    it: in Trash once, nowhere else, the device without it."""
    folder, mid, c, name = _one_mail_synced(stack, "del", "Delete me")
    c.remove(name)
    _kill_during(stack, point, lambda: _sync(stack, c, check=False))
    uids, _ = _imap_uids(stack, folder, mid)
    in_trash, _ = _imap_uids(stack, "Trash", mid)
    assert len(_rows(stack, folder, mid)) == 1
    if point.endswith("-before"):
        assert (len(uids), in_trash) == (1, [])
    else:
        assert (uids, len(in_trash)) == ([], 1)
    _sync(stack, c)
    _sync(stack, c)
    assert _imap_uids(stack, folder, mid)[0] == [] and _rows(stack, folder, mid) == []
    assert len(_imap_uids(stack, "Trash", mid)[0]) == 1
    assert c.local() == []


# the Outbox: (ledger state, delivered to bob, copies in Sent) at the kill
LEDGER = {
    "outbox-received-before": ("", 0, 0),
    "outbox-received": ("received", 0, 0),
    "outbox-submitting-before": ("received", 0, 0),
    "outbox-submitting": ("submitting", 0, 0),
    "outbox-sent": ("submitting", 1, 0),
    "outbox-submitted": ("submitted", 1, 0),
    "imap-file-before": ("submitted", 1, 0),
    "imap-file-after": ("submitted", 1, 1),
    "outbox-filed": ("filed", 1, 1),
}


def _outbox_add(stack, devid, sid, raw):
    sess = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id=sid)
    a = sess.post(sess.message(S.alert(1, 201, "Outbox", "./outbox", "n" + sid)))
    assert a.http_status == 200
    body = ("<Sync><CmdID>2</CmdID><Target><LocURI>Outbox</LocURI></Target><Source>"
            "<LocURI>./outbox</LocURI></Source><Add><CmdID>3</CmdID><Meta><Type "
            "xmlns='syncml:metinf'>application/vnd.omads-email+xml</Type></Meta><Item>"
            "<Source><LocURI>L1</LocURI></Source><Data>%s</Data></Item></Add></Sync>"
            % S.esc(F.item(raw).decode()))
    return sess, sess.message(body)


def _post_dies(sess, msg):
    try:
        return sess.post(msg).http_status
    except Exception:  # noqa: BLE001 (the connection died with the child)
        return None


def _count_until(stack, user, pw, folder, mid, want, wait):
    deadline = time.time() + wait
    while True:
        n = F.count_many(stack, user, pw, folder, [mid])[mid]
        if n >= want or time.time() > deadline:
            return n
        time.sleep(0.2)


@pytest.mark.fault
@pytest.mark.parametrize("point", list(LEDGER))
def test_415_send_killed_at_each_step(stack, armed, point):
    """Sending through the Outbox, killed at each step: the ledger (memds.outbox,
    autocommit) and the two mailboxes at the kill are as LEDGER says; the
    device's retry of the same message then ends with the mail delivered
    once (never when the kill left it "submitting" before the final dot: in
    doubt, not sent again, docs/crash-recovery.md) and filed in Sent once."""
    mid = _mid("send")
    raw = F.raw_message(mid, "send " + mid, "Hello Bob, " + mid,
                        frm="Alice <alice@example.test>", to="Bob <bob@example.test>")
    sess, msg = _outbox_add(stack, "dev-" + uuid.uuid4().hex[:8], "1", raw)
    assert _kill_during(stack, point, lambda: _post_dies(sess, msg)) is None
    state, bob, sent = LEDGER[point]
    assert (F.ledger_state(stack, mid),
            _count_until(stack, "bob", "bob-secret", "INBOX", mid, bob, 15),
            F.count_many(stack, "alice", "alice-secret", "Sent", [mid])[mid]) \
        == (state, bob, sent)
    a = F.post_until_200(sess, msg)
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201"], a.body
    want = 0 if point == "outbox-submitting" else 1
    assert _count_until(stack, "bob", "bob-secret", "INBOX", mid, want, 15) == want
    time.sleep(2)  # (a duplicate would be on its way)
    assert F.count_many(stack, "bob", "bob-secret", "INBOX", [mid])[mid] == want
    assert F.count_many(stack, "alice", "alice-secret", "Sent", [mid])[mid] == 1
    assert F.ledger_state(stack, mid) in ("filed", "acknowledged")
    assert F.psql(stack, "SELECT count(*) FROM memds.mail_messages WHERE account = "
                         "'alice' AND folder = 'Sent' AND message_id = '%s' AND NOT "
                         "deleted" % mid) in ("0", "1")


@pytest.mark.fault
def test_419_campaign_one_pass(stack, armed):
    """tests/fault/campaign.py, one pass over every point under real clients
    (INBOX with new mail over SMTP, flags and deletes; Drafts with adds,
    edits and deletes; the Outbox) and a hand-made device of the
    hierarchical datastore (moves, folder create/rename/delete): every point
    fires, and after each kill and retry the invariants hold."""
    stack.allow_log(r"MEMDS\d+")  # (the campaign judges by its invariants)
    camp = F.Campaign(stack, log=print, seed=410)
    camp.setup()
    res = camp.run()
    bad = camp.check(final=True)
    print(camp.table())
    assert not bad, bad
    fails = [r for r in res if r[1] == "FAIL"]
    assert not fails, fails
    for point, _ in F.POINTS:
        outs = [o for p, o, _ in res if p == point]
        assert outs in (["ok"], ["ok-lost-in-doubt"]), (point, outs)


def _hier_device(stack, user, pw, names, mail_to_inbox=None):
    """Folders names (created on IMAP), a mail in INBOX (optional), and a
    device of the hierarchical "email" datastore after its slow sync:
    (devid, {folder name: server id}, server id of the mail or None)."""
    import test_530_move as MV
    m = F.imap(stack, user, pw)
    for n in names:
        assert m.create(n)[0] == "OK"
    if mail_to_inbox:
        m.append("INBOX", None, None, mail_to_inbox)
    m.logout()
    devid = "dev-" + uuid.uuid4().hex[:8]
    got = MV._slow(stack, "email", devid, user, pw)
    by_name = {}
    guid = None
    for op, src, par, typ, data, _ in got:
        if typ == MV.FOLDER_TYPE:
            by_name.setdefault(re.search(r"<name>(.*?)</name>", data).group(1), src)
        elif mail_to_inbox and re.search(r"Subject: (\S+ \S+)", mail_to_inbox.decode()).group(1) \
                in (data or ""):
            guid = src
    return devid, by_name, guid


def _hier_retry(stack, devid, user, pw, ops, point):
    """A two-way session of the device sending ops, killed at point, then
    the same message sent again: the statuses of the retry {CmdRef: code}."""
    import test_530_move as MV
    s = S.Session(stack["MEMDS_URL"], devid, user, pw, session_id="2")
    a = s.post(s.message(S.alert(1, 200, "email", "./email", "2", last="n1")))
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"]
    msg = s.message(MV._sync_body("email", ops))
    assert _kill_during(stack, point, lambda: _post_dies(s, msg)) is None
    return s, msg


def _codes(a):
    return {x["CmdRef"]: x["Data"] for x in a.statuses()
            if x["Cmd"] in ("Move", "Add", "Replace", "Delete")}


@pytest.fixture(scope="module")
def refusing_postfix(stack):
    import test_630_send_gaps as G
    pf = G.Postfix(stack)
    pf.install()
    try:
        yield pf
    finally:
        pf.remove()


@pytest.mark.fault
@pytest.mark.parametrize("point", ["outbox-rejected", "outbox-rejected-filed"])
def test_415c_refused_send_killed_still_gets_its_drafts_copy(
        stack, armed, refusing_postfix, point):
    """A message Postfix refuses for good (554 at RCPT TO): the ledger says
    `rejected` (with drafts_pending) before the copy for the user goes to
    Drafts. Killed after `rejected` (no copy yet) or after the copy's
    APPEND (drafts_pending still set): the device's retry gets the refusal
    again without a second SMTP transaction, and the copy is in Drafts once
    (made by the retry, or the one there taken). Before drafts_pending, the
    first case left no copy at all."""
    import test_630_send_gaps as G
    stack.allow_log(r"message refused by the SMTP server|MEMDS00411|MEMDS00514")
    pf = refusing_postfix
    tag = "refkill-%s" % uuid.uuid4().hex[:8]
    sender = "%s@example.test" % tag
    pf.maps["rcpt"][sender] = "554 5.7.1 Relay access denied"
    pf.reload()
    d = G.Device(stack)
    obj = G.email_obj(tag, sender="Alice <%s>" % sender)

    def add():
        try:
            return d.add("L1", obj)[0]
        except Exception:  # noqa: BLE001 (the connection died with the child)
            return None
    mark = stack.log_mark()
    assert _kill_during(stack, point, add) is None
    pending = "SELECT state || ' ' || drafts_pending FROM memds.outbox o JOIN " \
              "memds.devices d USING (device_id) WHERE d.devid = '%s'" % d.devid
    assert F.psql(stack, pending) == "rejected true"
    drafts = G.copies(stack, "alice", "alice-secret", "Drafts", tag, wait=0)
    assert len(drafts) == (1 if point.endswith("-filed") else 0), drafts
    assert len(pf.rejects(sender)) == 1
    assert d.add("L1", obj)[0] == "403"
    assert "MEMDS00411" in stack.log_since(mark)
    assert F.psql(stack, pending) == "rejected false"
    drafts = G.copies(stack, "alice", "alice-secret", "Drafts", tag, wait=0)
    assert len(drafts) == 1 and b"X-MemDS-Send-Error: " in drafts[0], drafts
    assert d.add("L1", obj)[0] == "403"
    assert len(G.copies(stack, "alice", "alice-secret", "Drafts", tag, wait=0)) == 1
    assert len(pf.rejects(sender)) == 1


@pytest.mark.fault
@pytest.mark.parametrize("point", ["imap-move-before", "imap-move-after"])
def test_416_move_killed_keeps_the_message_once(stack, armed, point):
    """A device of the hierarchical datastore moves a mail from INBOX to a
    folder (UID MOVE, then the row follows). Killed after the MOVE, the mail
    is in the target and its row still in INBOX; the retried Move finds no
    such UID in INBOX and takes the message in the target that no row
    records (same Message-ID and size): 200, same server id, the row in the
    target on the new UID, the mail once."""
    import test_530_move as MV
    user, pw = stack["MEMDS_USER2"], stack["MEMDS_PASS2"]
    top = "MV" + uuid.uuid4().hex[:6]
    mid = _mid("move")
    raw = F.raw_message(mid, "move " + mid.strip("<>").split("@")[0], "Move me")
    devid, by_name, guid = _hier_device(stack, user, pw, [top], raw)
    assert guid and top in by_name
    s, msg = _hier_retry(stack, devid, user, pw,
                            MV._move(3, "c" + guid, target_parent=by_name[top]), point)

    def where():
        return (F.count_many(stack, user, pw, "INBOX", [mid])[mid],
                F.count_many(stack, user, pw, top, [mid])[mid],
                F.psql(stack, "SELECT folder FROM memds.mail_messages WHERE account = "
                              "'%s' AND guid = '%s' AND NOT deleted" % (user, guid)))
    assert where() == ((1, 0, "INBOX") if point.endswith("-before") else (0, 1, "INBOX"))
    a = F.post_until_200(s, msg)
    assert _codes(a) == {"3": "200"}, a.body
    assert where() == (0, 1, top)


@pytest.mark.fault
@pytest.mark.parametrize("point", ["imap-folder-create-before", "imap-folder-create-after",
                                   "imap-folder-rename-before", "imap-folder-rename-after",
                                   "imap-folder-delete-before", "imap-folder-delete-after"])
def test_417_folder_op_killed_is_done_once(stack, armed, point):
    """A device's folder Add (CREATE), rename (Replace with a new name:
    RENAME) and Delete (DELETE), killed before or after the IMAP command:
    IMAP has the folder as the point says while its row does not follow; the
    device's retry of the same message ends with IMAP and the rows agreeing.
    CREATE and DELETE are re-applied (ALREADYEXISTS, NONEXISTENT count as
    done), and a RENAME whose old name is gone while the new one exists is
    the one a dead request made: 201/200 (docs/crash-recovery.md)."""
    user, pw = stack["MEMDS_USER2"], stack["MEMDS_PASS2"]
    base = "FO" + uuid.uuid4().hex[:6]
    op = point.split("-")[2]
    after = point.endswith("-after")
    devid, by_name, _ = _hier_device(stack, user, pw, [base] if op != "create" else [])
    new = base + "N"
    if op == "create":
        ops = _folder_op("Add", 3, "cNew", "<Folder><name>%s</name></Folder>" % new)
        gone, there = None, new
    elif op == "rename":
        ops = _folder_op("Replace", 3, "c" + by_name[base], "<Folder><name>%s</name></Folder>" % new)
        gone, there = base, new
    else:
        ops = "<Delete><CmdID>3</CmdID><Item><Source><LocURI>c%s</LocURI></Source>" \
              "</Item></Delete>" % by_name[base]
        gone, there = base, None
    s, msg = _hier_retry(stack, devid, user, pw, ops, point)

    def imap_has(name):
        m = F.imap(stack, user, pw)
        try:
            return m.select('"%s"' % name, readonly=True)[0] == "OK"
        finally:
            m.logout()

    def row(name):
        return F.psql(stack, "SELECT count(*) FROM memds.mail_folders WHERE account = "
                             "'%s' AND folder = '%s' AND NOT deleted" % (user, name))
    # at the kill: IMAP done (after) or not (before); the rows as before
    if there:
        assert imap_has(there) == after and row(there) == "0"
    if gone:
        assert imap_has(gone) == (not after) and row(gone) == "1"
    a = F.post_until_200(s, msg)
    assert _codes(a)["3"] in ("200", "201"), a.body
    if there:
        assert imap_has(there) and row(there) == "1"
    if gone:
        assert not imap_has(gone) and row(gone) == "0"


def _folder_op(cmd, cmd_id, luid, data):
    import test_510_mail as M
    return M._op(cmd, cmd_id, luid, "application/vnd.omads-folder+xml", data)
