"""57x: devices of one account at the same time (what bench/load found,
issue 14): a folder's scan does not wait for another request's rows or for
the folder's row lock, and loses nothing it skipped; a sent Outbox item's
Delete goes in the session that sent it although another transaction holds
an older change sequence value. The other request is played by a psql
session that keeps a transaction open (released after 30 s at the latest,
so that a regression fails on time instead of hanging)."""
import imaplib
import subprocess
import threading
import time
import uuid

from test_510_mail import (_hand_session, _hand_two_way, _imap_store, imap, message,
                           new_folder, parse_item, psql)
from test_610_outbox import _outbox_session


class Holder:
    """A psql session with a transaction open after sql."""

    def __init__(self, stack, sql, hold=30):
        self.p = subprocess.Popen(["psql", stack["MEMDS_PG"], "-XAtq"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True)
        self.lock = threading.Lock()
        self.p.stdin.write("BEGIN;\n%s\nSELECT 'held';\n" % sql)
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            assert line, "the holder's psql ended"
            if line.strip() == "held":
                break
        self.timer = threading.Timer(hold, self.release)
        self.timer.start()

    def release(self):
        with self.lock:
            if self.p.poll() is None and not self.p.stdin.closed:
                self.p.stdin.write("ROLLBACK;\n")
                self.p.stdin.close()
                self.p.wait(timeout=30)
        self.timer.cancel()


def _guid(stack, folder, uid):
    return psql(stack, "SELECT guid FROM memds.mail_messages WHERE account = 'alice'"
                       " AND folder = '%s' AND uid = %d AND NOT deleted" % (folder, uid))


def _append(stack, folder, i):
    m = imap(stack)
    assert m.append(folder, None, imaplib.Time2Internaldate(time.time()),
                    message(folder, i))[0] == "OK"
    m.logout()


def test_571_scan_skips_a_row_another_request_holds_and_loses_nothing(stack):
    """Another device's request has changed a message's row and not yet
    committed (its flag change): a device's sync neither waits for it nor
    loses the change IMAP reports for that message, which reaches the
    device at its next sync."""
    folder = new_folder(stack, 3, prefix="R")
    devid = "race-" + uuid.uuid4().hex[:8]
    assert len(_hand_session(stack, folder, devid, "n1")) == 3
    uid1 = int(psql(stack, "SELECT min(uid) FROM memds.mail_messages WHERE account"
                           " = 'alice' AND folder = '%s'" % folder))
    g1 = _guid(stack, folder, uid1)
    h = Holder(stack, "UPDATE memds.mail_messages SET updated_at = now() WHERE"
                      " account = 'alice' AND folder = '%s' AND uid = %d;" % (folder, uid1))
    try:
        _imap_store(stack, folder, uid1, r"(\Flagged)")
        _append(stack, folder, 7)
        t0 = time.time()
        got = _hand_two_way(stack, folder, devid, "n1", "n2")
        took = time.time() - t0
    finally:
        h.release()
    assert took < 10, "the sync waited for the other request's row (%.1f s)" % took
    assert [op for op, *_ in got] == ["Add"], got  # the new mail; not the held row
    got = _hand_two_way(stack, folder, devid, "n2", "n3")
    rep = [it for it in got if it[0] == "Replace" and it[1] == g1]
    assert len(rep) == 1, got
    assert parse_item(rep[0][4].encode())[0]["flagged"] == "true"


def test_572_scan_does_not_queue_behind_the_folder_lock(stack):
    """The folder's row lock is held by another transaction for long: a
    device's sync gives its scan up after the lock wait (MEMDS00770) and
    answers with what was recorded; the new mail comes at the next sync."""
    stack.allow_log(r"MEMDS00770")
    folder = new_folder(stack, 2, prefix="L")
    devid = "lock-" + uuid.uuid4().hex[:8]
    assert len(_hand_session(stack, folder, devid, "n1")) == 2
    h = Holder(stack, "SELECT count(*) FROM (SELECT 1 FROM memds.mail_folders WHERE"
                      " account = 'alice' AND folder = '%s' FOR UPDATE) x;" % folder)
    try:
        _append(stack, folder, 5)
        t0 = time.time()
        got = _hand_two_way(stack, folder, devid, "n1", "n2")
        took = time.time() - t0
    finally:
        h.release()
    assert took < 15, "the sync queued behind the folder's lock (%.1f s)" % took
    assert got == []
    got = _hand_two_way(stack, folder, devid, "n2", "n3")
    assert [op for op, *_ in got] == ["Add"], got


def test_573_outbox_delete_in_the_same_session_under_load(stack):
    """Another transaction holds a change sequence value older than the
    sent item's tombstone (under load there always is one): the Delete of
    the sent Outbox item still goes in the session that sent it."""
    tag = "load-" + uuid.uuid4().hex[:8]
    devid = "obx-" + uuid.uuid4().hex[:8]
    h = Holder(stack, "SELECT count(*) FROM (SELECT memds.item_seq_take()) x;")
    try:
        sess, body = _outbox_session(stack, devid, "1", tag)
        a = sess.post(sess.message(body))
    finally:
        h.release()
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Add"] == ["201"]
    assert [(op, tgt) for op, src, tgt, *_ in a.sync_items()] == [("Delete", "L1")]
