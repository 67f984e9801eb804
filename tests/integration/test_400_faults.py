"""4xx: failures of the services around the module. The requests are
SyncML sessions of a real account (alice, items datastore), so that the
engine, the store and the datastore run, not only the authentication."""
import http.client
import json
import re
import os
import signal
import subprocess
import threading
import time
import uuid

import syncml as S


def _pool(stack):
    _, _, body = stack.request("GET", "/memds-status?json")
    return json.loads(body)["db_pool"]


def _alice_session(stack, devid=None, session_id="1"):
    return S.Session(stack["MEMDS_ITEMS_URL"], devid or "dev-" + uuid.uuid4().hex[:12],
                     "alice", "alice-secret", session_id=session_id)


def _open(stack, path="/items"):
    """A first message of a new session of alice's (Alert 201 on an items
    store): (HTTP status, headers, Answer). 200 means the engine read and
    wrote the session, device and anchors in PostgreSQL."""
    sess = _alice_session(stack)
    store = "f-" + uuid.uuid4().hex[:8]
    st, hdr, body = stack.request("POST", path, sess.message(
        S.alert(1, 201, store, "./" + store, "n1")),
        {"Content-Type": "application/vnd.syncml+xml"})
    a = S.Answer(st, hdr, body)
    if st == 200:
        assert a.hdr_status() == "212", body  # authenticated
        assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"], body
    return st, hdr, a


def _items(stack, store):
    return int(subprocess.run(
        ["psql", stack["MEMDS_PG"], "-XAtq", "-c",
         "SELECT count(*) FROM memds.items WHERE account = 'alice' AND store = '%s' "
         "AND NOT deleted" % store], check=True, stdout=subprocess.PIPE,
        text=True).stdout.strip())


def test_401_database_down_is_503_then_recovers(stack):
    stack.allow_log(r"MEMDS00300: PostgreSQL connect failed")
    stack.allow_log(r"MEMDS00021: database")
    # Warm the pool so it holds connections that are about to die.
    for _ in range(5):
        assert _open(stack)[0] == 200
    children = set(stack.httpd_children())
    mark = stack.log_mark()
    stack.dev("svc", "pg", "stop")
    try:
        for _ in range(5):
            st, hdr, _ = _open(stack)
            assert st == 503
            assert hdr.get("retry-after") == "30"
        log = stack.log_since(mark)
        # every pooled connection is found dead before use and no new one
        # can be had: the glue answers, the engine never runs on a dead one
        assert "MEMDS00301: dropping a dead PostgreSQL connection" in log, log
        assert len(re.findall(r"MEMDS00021: database unavailable, answering 503", log)) == 5, log
        assert not re.search(r"MEMDS(00022|00500)", log), log
        # The children survived: same processes still serve.
        assert set(stack.httpd_children()) == children
        st, _, _ = stack.request("GET", "/memds-status")
        assert st == 200
    finally:
        stack.dev("svc", "pg", "start")
    # The pool recovers once PostgreSQL is back: dead connections replaced,
    # and the first request already gets a working one.
    statuses = [_open(stack)[0] for _ in range(10)]
    assert statuses == [200] * 10
    assert set(stack.httpd_children()) == children


def test_402_schema_missing_is_503(stack):
    stack.allow_log(r"MEMDS00023")
    pg = stack["MEMDS_PG"]
    subprocess.run(["psql", pg, "-qc", "DROP DATABASE IF EXISTS memds_empty"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["psql", pg, "-qc", "CREATE DATABASE memds_empty"], check=True)
    empty = pg.replace("dbname=memds", "dbname=memds_empty")
    stack.apply_site("""
MemDSDatabase "%s"
<Location /sync>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore items
    MemDSAuthFile "%s"
</Location>
""" % (empty, os.path.join(stack.var, "httpd", "users")))
    mark = stack.log_mark()
    st, _, _ = _open(stack, "/sync")
    assert st == 503
    log = stack.log_since(mark)
    assert "MEMDS00023" in log and "memds-admin migrate" in log, log


def test_403_kill_child_under_load(stack):
    """Four devices of alice's sync without pause (items datastore: each
    session adds 5 items) while httpd's children are killed with SIGKILL.
    The kill is made while requests are inside the module: memds.items is
    held locked against writes until at least one request waits for it in
    its transaction. A device whose request dies retries the same message
    until answered, as a client does. At the end every device's store holds
    exactly the items it added (none lost, none twice) and a sync of each
    device finds nothing to send either way."""
    stack.allow_log(r"AH10392")
    stop = threading.Event()
    errors = []
    done = {}

    def post(sess, msg):
        deadline = time.time() + 60
        while True:
            try:
                a = sess.post(msg)
                assert a.http_status == 200, (a.http_status, a.body)
                return a
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))  # the killed child's connections break
                assert time.time() < deadline, "no answer for a minute"
                time.sleep(0.2)

    def device(i, failures):
        try:
            devid = "load-%s-%d" % (run, i)
            store = "load-%s-%d" % (run, i)
            n = 0
            while not stop.is_set():
                n += 1
                sess = _alice_session(stack, devid, str(n))
                a = post(sess, sess.message(S.alert(
                    1, 201 if n == 1 else 200, store, "./" + store, "a%d" % n,
                    last=None if n == 1 else "a%d" % (n - 1))))
                assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"]
                ops = [("Add", "s%d-%d" % (n, k), "item %d of session %d" % (k, n))
                       for k in range(5)]
                a = post(sess, sess.message(S.sync(2, store, "./" + store, ops)))
                assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Add"] == ["201"] * 5
                a = post(sess, sess.message(""))
                assert a.final
                done[i] = n
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    run = uuid.uuid4().hex[:6]
    failures = []
    threads = [threading.Thread(target=device, args=(i, failures)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    holder = subprocess.Popen(["psql", stack["MEMDS_PG"], "-XAtq"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("BEGIN; LOCK TABLE memds.items IN EXCLUSIVE MODE; "
                           "SELECT 'held';\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "held"
        deadline = time.time() + 30
        while subprocess.run(
                ["psql", stack["MEMDS_PG"], "-XAtq", "-c",
                 "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                 "AND query ILIKE '%memds.items%'"], check=True, stdout=subprocess.PIPE,
                text=True).stdout.strip() == "0":
            assert not failures, failures  # a device failed before the kill
            assert time.time() < deadline, "no request reached its write"
            time.sleep(0.05)
        victims = stack.httpd_children()
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    assert not failures, failures
    assert errors, "no request was interrupted by the kill"
    assert all(done.get(i, 0) >= 2 for i in range(4)), done
    # converged: each store holds what its device added, once; a sync of
    # each device finds the anchors agreeing and nothing to send
    for i in range(4):
        store = "load-%s-%d" % (run, i)
        assert _items(stack, store) == 5 * done[i], (store, done)
        sess = _alice_session(stack, "load-%s-%d" % (run, i), "x")
        a = sess.post(sess.message(S.alert(1, 200, store, "./" + store, "b",
                                           last="a%d" % done[i])))
        assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"], a.body
        a = sess.post(sess.message(S.sync(2, store, "./" + store, [])))
        assert a.sync_items() == [], a.body
    # After the kill: every request works.
    deadline = time.time() + 20
    while set(victims) & set(stack.httpd_children()):
        assert time.time() < deadline, "the killed children are still there"
        time.sleep(0.2)
    statuses = [_open(stack)[0] for _ in range(30)]
    assert statuses == [200] * 30
