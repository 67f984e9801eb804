"""285: memds-admin's operator verbs (issue 13 item 5): accounts and devices
as people read them and as JSON checked against the database, the outbox
ledger with a stuck message retried (sent exactly once) and another dropped
(kept as a record, never sent), retry and drop refused where they could send
twice, the connection read from httpd's own configuration (--config), and
--help for every verb."""
import json
import os
import re
import subprocess
import tempfile
import time
import uuid

import pytest

from test_510_mail import new_folder, psql
from test_550_filters import Device
from test_610_outbox import _pending_while_the_mta_is_down, copies, settle
from test_112_metrics import scrape


def adm(stack, *args, db=True, env=None):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tools", "memds-admin")
    e = {k: v for k, v in os.environ.items() if k != "MEMDS_PG"}
    e.update(env or {})
    cmd = [exe, *args] + (["--db", stack["MEMDS_PG"]] if db else [])
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60, env=e)


def verbs(stack):
    r = adm(stack, "help", db=False)
    assert r.returncode == 0, r.stderr
    return sorted({m.group(1) for m in re.finditer(r"^ +memds-admin ([a-z0-9-]+)",
                                                  r.stdout, re.M)})


def test_285_help_for_every_verb_and_the_man_page(stack):
    vs = verbs(stack)
    for v in ("accounts", "devices", "outbox", "sessions", "push", "wipe", "enable",
              "end-session", "push-register", "migrate", "block", "unblock",
              "quarantine", "help"):
        assert v in vs, vs
    man = open(os.path.join(os.path.dirname(__file__), "..", "..", "tools",
                            "memds-admin.1")).read()
    for v in vs:
        for r in (adm(stack, "help", v, db=False), adm(stack, v, "--help", db=False)):
            assert r.returncode == 0 and r.stdout.startswith("usage: memds-admin " + v), \
                (v, r.stdout, r.stderr)
            assert len(r.stdout.splitlines()) >= 3, r.stdout
        assert re.search(r"^\.SS %s\b" % re.escape(v), man, re.M), "man page lacks " + v
    r = adm(stack, "help", "no-such-verb", db=False)
    assert r.returncode == 2 and "no-such-verb" in r.stderr
    assert adm(stack, "no-such-verb", db=False).returncode == 2
    assert "outbox" in adm(stack, "help", db=False).stdout


def test_286_accounts_and_devices_against_the_database(stack):
    folder = new_folder(stack, 2)
    d = Device(stack, folder)
    got, _, st = d.sync()
    assert st == "200" and len(got) == 2
    url = "http://127.0.0.1:9/push-" + d.devid
    assert adm(stack, "push-register", "alice", d.devid, "http", url).returncode == 0
    psql(stack, "INSERT INTO memds.push_pending (device_id, store, due_at, attempts,"
                " last_error) SELECT device_id, '%s', now() + interval '1 hour', 2,"
                " 'connection refused' FROM memds.devices WHERE devid = '%s'"
                % (folder, d.devid))
    try:
        r = adm(stack, "accounts", "--json")
        assert r.returncode == 0, r.stderr
        rows = {x["account"]: x for x in json.loads(r.stdout)}
        a = rows["alice"]
        assert a["devices"] == int(psql(stack, "SELECT count(*) FROM memds.devices"
                                               " WHERE account = 'alice'"))
        assert a["push_devices"] == int(psql(
            stack, "SELECT count(*) FROM memds.push_channels JOIN memds.devices"
                   " USING (device_id) WHERE account = 'alice'"))
        assert a["pending_notifications"] == int(psql(
            stack, "SELECT count(*) FROM memds.push_pending JOIN memds.devices"
                   " USING (device_id) WHERE account = 'alice'"))
        assert a["pending_notifications"] >= 1 and a["push_devices"] >= 1
        assert a["last_sync"] == psql(
            stack, "SELECT to_char(max(s.updated_at) AT TIME ZONE 'UTC',"
                   " 'YYYY-MM-DD HH24:MI:SS') FROM memds.sync_state s JOIN"
                   " memds.devices d USING (device_id) WHERE d.account = 'alice'")
        assert set(a) == {"account", "devices", "last_seen", "last_sync", "push_devices",
                          "pending_notifications", "watched_by", "outbox_open"}
        human = adm(stack, "accounts", "alice")
        assert human.returncode == 0
        line = [l for l in human.stdout.splitlines() if l.startswith("alice ")]
        assert len(line) == 1 and line[0].split()[1] == str(a["devices"]), human.stdout

        r = adm(stack, "devices", "alice", "--json")
        assert r.returncode == 0, r.stderr
        mine = [x for x in json.loads(r.stdout) if x["device"] == d.devid]
        assert len(mine) == 1
        x = mine[0]
        assert x["account"] == "alice" and x["datastores"] == "%s:2" % folder
        assert x["push_channel"] == "http " + url
        assert x["pending_notifications"] == 1 and x["push_error"] == "connection refused"
        assert x["last_sync"] == psql(
            stack, "SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"
                   " HH24:MI:SS') FROM memds.sync_state JOIN memds.devices USING"
                   " (device_id) WHERE devid = '%s'" % d.devid)
        assert "slow" in x["sync_types"].split(",")
        assert x["last_session"].startswith("done ")
        assert x["wipe"] == "" and x["auth_failures"] == 0 and x["blocked"] == ""
        # people: the device's line and its details
        human = adm(stack, "devices", "alice").stdout
        lines = human.splitlines()
        i = [k for k, l in enumerate(lines) if d.devid in l][0]
        assert lines[i].split()[:2] == ["alice", d.devid] and "%s:2" % folder in lines[i]
        detail = "\n".join(lines[i + 1:i + 4])
        assert "last sync " + x["last_sync"] in detail and "slow" in detail
        assert "push http " + url in detail and "1 pending" in detail
        assert "connection refused" in detail
        # an account nobody has: nothing, not an error
        assert json.loads(adm(stack, "devices", "--json", "nobody-" + d.devid).stdout) == []
        assert adm(stack, "devices", "alice", "extra").returncode == 2
    finally:
        adm(stack, "push-register", "--delete", "alice", d.devid)


def _row(stack, devid):
    return psql(stack, "SELECT outbox_id FROM memds.outbox o JOIN memds.devices d"
                       " USING (device_id) WHERE d.devid = '%s'" % devid)


def _state(stack, oid):
    return psql(stack, "SELECT state || '|' || coalesce(status::text, '') || '|' ||"
                       " coalesce(reason, '') FROM memds.outbox WHERE outbox_id = %s"
                       % oid).split("|", 2)


def test_287_outbox_retry_and_drop_a_stuck_message(stack):
    stack.allow_log(r"not sent yet, retried|Mail server not reachable")
    s0, h0 = scrape(stack)
    tag1, dev1, _ = _pending_while_the_mta_is_down(stack, "adm-retry-")
    tag2, dev2, _ = _pending_while_the_mta_is_down(stack, "adm-drop-")
    id1, id2 = _row(stack, dev1), _row(stack, dev2)
    s1, h1 = scrape(stack)
    # the MTA was down twice: two submissions, two errors
    assert h1[("memds_smtp_submission_duration_seconds", ())][0] \
        - h0[("memds_smtp_submission_duration_seconds", ())][0] == 2
    assert s1[("memds_smtp_errors_total", ())] - s0[("memds_smtp_errors_total", ())] == 2
    # stuck: five failed attempts, the next one an hour away
    psql(stack, "UPDATE memds.outbox SET attempts = 5, next_attempt_at = now() +"
                " interval '1 hour' WHERE outbox_id IN (%s, %s)" % (id1, id2))
    rows = {str(x["id"]): x for x in json.loads(adm(stack, "outbox", "--json").stdout)}
    assert rows[id1]["state"] == "retrying" and rows[id1]["device"] == dev1
    assert rows[id1]["attempts"] == 5 and "retries keep failing" in rows[id1]["stuck"]
    assert scrape(stack)[0][("memds_outbox_stuck", ())] >= 2
    tsv = adm(stack, "outbox", "alice").stdout.splitlines()
    assert tsv[0].split("\t")[:5] == ["id", "account", "device", "datastore", "state"]
    assert [l for l in tsv if l.startswith(id1 + "\t")][0].split("\t")[4] == "retrying"

    # a sender holds the row (its claim): retry and drop refuse, nothing changes
    lock = subprocess.Popen(["psql", stack["MEMDS_PG"], "-XAtq"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    lock.stdin.write("SELECT pg_advisory_lock(%d, %s);\n" % (0x4d440000, id1))
    lock.stdin.flush()
    assert lock.stdout.readline().strip() == ""  # (the lock's void result)
    try:
        r = adm(stack, "outbox", "retry", id1)
        assert r.returncode == 1 and "being sent right now" in r.stderr, r.stderr
        assert _state(stack, id1)[0] == "retrying"
    finally:
        lock.stdin.close()
        lock.wait(timeout=30)

    # retry: due now, the background job sends it once
    r = adm(stack, "outbox", "retry", id1)
    assert r.returncode == 0 and "due now" in r.stdout, (r.stdout, r.stderr)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag1, wait=60)) == 1
    deadline = time.time() + 30
    while _state(stack, id1)[0] != "filed" and time.time() < deadline:
        time.sleep(0.5)
    assert _state(stack, id1)[0] == "filed"
    r = adm(stack, "outbox", "retry", id1)
    assert r.returncode == 1 and "it was sent" in r.stderr
    assert adm(stack, "outbox", "drop", id1).returncode == 1

    # drop: closed and kept as a record; nothing sends it, even when due
    r = adm(stack, "outbox", "drop", id2)
    assert r.returncode == 0 and "dropped" in r.stdout, r.stderr
    st, status, reason = _state(stack, id2)
    assert st == "rejected" and status == "500"
    assert reason.startswith("dropped by the administrator (was retrying)")
    assert psql(stack, "SELECT data IS NOT NULL FROM memds.outbox WHERE outbox_id = %s"
                % id2) == "t"
    psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() WHERE outbox_id = %s" % id2)
    # a canary, due from now on as well: once the background job (every
    # 10 s, every due row of a run) has sent it, a run has seen the dropped
    # row due too (instead of sleeping 12 s and hoping a run came)
    tag3, dev3, _ = _pending_while_the_mta_is_down(stack, "adm-canary-")
    psql(stack, "UPDATE memds.outbox SET next_attempt_at = now() WHERE outbox_id = %s"
         % _row(stack, dev3))
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag3, wait=60)) == 1
    assert copies(stack, "bob", "bob-secret", "INBOX", tag2, wait=0) == []
    assert _state(stack, id2)[0] == "rejected"
    r = adm(stack, "outbox", "drop", id2)
    assert r.returncode == 1 and "closed already" in r.stderr
    assert adm(stack, "outbox", "retry", id2).returncode == 1
    rows = {str(x["id"]): x for x in json.loads(adm(stack, "outbox", "--json").stdout)}
    assert rows[id2]["state"] == "rejected" and rows[id2]["stuck"] == ""
    assert rows[id2]["reason"].startswith("dropped by the administrator")
    # retry never touches a message that may have been sent (submitting)
    psql(stack, "UPDATE memds.outbox SET state = 'submitting' WHERE outbox_id = %s" % id2)
    r = adm(stack, "outbox", "retry", id2)
    assert r.returncode == 1 and "in doubt" in r.stderr
    assert _state(stack, id2)[0] == "submitting"
    psql(stack, "UPDATE memds.outbox SET state = 'rejected' WHERE outbox_id = %s" % id2)
    # the acknowledged rows only with --all
    assert id1 in {str(x["id"]) for x in json.loads(adm(stack, "outbox", "--all",
                                                        "--json").stdout)}
    r = adm(stack, "outbox", "retry", "999999999")
    assert r.returncode == 1 and "no such" in r.stderr
    assert adm(stack, "outbox", "retry", "x1").returncode == 1
    settle(stack)
    assert len(copies(stack, "bob", "bob-secret", "INBOX", tag1, wait=0)) == 1


def test_288_connection_from_httpds_configuration(stack):
    want = json.loads(adm(stack, "accounts", "--json").stdout)
    # the stack's own httpd.conf: MemDSDatabase comes from its Include
    r = adm(stack, "accounts", "--json", "--config", stack["MEMDS_HTTPD_CONF"], db=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == want
    # --db wins over --config; --config over $MEMDS_PG
    r = adm(stack, "accounts", "--json", "--config", "/nonexistent.conf")
    assert r.returncode == 0 and json.loads(r.stdout) == want
    r = adm(stack, "accounts", "--json", "--config", stack["MEMDS_HTTPD_CONF"], db=False,
            env={"MEMDS_PG": "host=127.0.0.1 port=1 dbname=nothing"})
    assert r.returncode == 0 and json.loads(r.stdout) == want
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "sites"))
        with open(os.path.join(d, "httpd.conf"), "w") as f:
            f.write('ServerRoot "%s"\nDefine PG "%s"\n# MemDSDatabase "not this"\n'
                    "IncludeOptional conf.d/*.conf\nInclude sites/\n"
                    % (d, stack["MEMDS_PG"]))
        with open(os.path.join(d, "sites", "a.conf"), "w") as f:
            f.write("<VirtualHost *:80>\n    MemDSDatabase \\\n        \"${PG}\"\n"
                    "</VirtualHost>\n")
        conf = os.path.join(d, "httpd.conf")
        r = adm(stack, "accounts", "--json", "--config", conf, db=False)
        assert r.returncode == 0 and json.loads(r.stdout) == want, r.stderr
        with open(os.path.join(d, "sites", "b.conf"), "w") as f:
            f.write('MemDSDatabase "host=elsewhere"\n')
        r = adm(stack, "accounts", "--config", conf, db=False)
        assert r.returncode == 2 and "different MemDSDatabase" in r.stderr
        os.remove(os.path.join(d, "sites", "b.conf"))
        os.remove(os.path.join(d, "sites", "a.conf"))
        r = adm(stack, "accounts", "--config", conf, db=False)
        assert r.returncode == 2 and "no MemDSDatabase" in r.stderr
    r = adm(stack, "accounts", "--config", "/nonexistent.conf", db=False)
    assert r.returncode == 2 and "cannot read /nonexistent.conf" in r.stderr
