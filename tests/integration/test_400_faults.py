"""4xx: failures of the services around the module."""
import json
import re
import os
import signal
import threading
import time

from conftest import capture

REQ = capture("pkg1/xml-basic-001-req.xml")


def _pool(stack):
    _, _, body = stack.request("GET", "/memds-status?json")
    return json.loads(body)["db_pool"]


def test_401_database_down_is_503_then_recovers(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    stack.allow_log(r"MEMDS00300: PostgreSQL connect failed")
    stack.allow_log(r"MEMDS0002[12]: database")
    stack.allow_log(r"MEMDS00500: database error")
    # Warm the pool so it holds connections that are about to die.
    for _ in range(5):
        assert stack.post_syncml(REQ)[0] == 200
    children = set(stack.httpd_children())
    mark = stack.log_mark()
    stack.dev("svc", "pg", "stop")
    try:
        for _ in range(5):
            st, hdr, _ = stack.post_syncml(REQ)
            assert st == 503
            assert hdr.get("retry-after") == "30"
        log = stack.log_since(mark)
        assert re.search(r"MEMDS(00021|00022|00500): database", log), log
        # The children survived: same processes still serve.
        assert set(stack.httpd_children()) == children
        st, _, _ = stack.request("GET", "/memds-status")
        assert st == 200
    finally:
        stack.dev("svc", "pg", "start")
    # The pool recovers once PostgreSQL is back: dead connections replaced.
    ok = 0
    deadline = time.time() + 30
    while time.time() < deadline and ok < 10:
        ok = ok + 1 if stack.post_syncml(REQ)[0] == 200 else 0
        if ok == 0:
            time.sleep(0.5)
    assert ok == 10
    assert set(stack.httpd_children()) == children


def test_402_schema_missing_is_503(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    stack.allow_log(r"MEMDS00023")
    import subprocess
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
</Location>
""" % empty)
    mark = stack.log_mark()
    st, _, _ = stack.post_syncml(REQ)
    assert st == 503
    assert "memds-admin migrate" in stack.log_since(mark)


def test_403_kill_child_under_load(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    stack.allow_log(r"AH10392")
    stop = threading.Event()
    results = []

    def load():
        while not stop.is_set():
            try:
                results.append(stack.post_syncml(REQ, )[0])
            except Exception as e:  # the killed child's connections break
                results.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    victim = stack.httpd_children()[0]
    os.kill(victim, signal.SIGKILL)
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join()
    assert results.count(200) > 0
    # After the kill: every request works.
    deadline = time.time() + 20
    while victim in stack.httpd_children() and time.time() < deadline:
        time.sleep(0.2)
    statuses = [stack.post_syncml(REQ)[0] for _ in range(30)]
    assert statuses == [200] * 30
