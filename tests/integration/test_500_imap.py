"""5xx: the IMAP client layer (backends/memds_imap.c) against the stack's
real Dovecot: logins (user and master user), SPECIAL-USE roles, APPEND,
CONDSTORE/QRESYNC, chunked BODY.PEEK fetches byte-exact without setting
\\Seen, STORE, CHANGEDSINCE, VANISHED, MOVE, error mapping
(tests/unit/imap_check, TAP output)."""
import os
import subprocess


def test_501_imap_check(stack):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tests", "unit", "imap_check")
    if not os.path.exists(exe):
        subprocess.run(["make", "-C", stack.env["MEMDS_BUILD"], "tests/unit/imap_check"],
                       check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run([exe, "127.0.0.1", stack["MEMDS_IMAP_PORT"], stack["MEMDS_USER1"],
                        stack["MEMDS_PASS1"], stack["MEMDS_MASTER_USER"],
                        stack["MEMDS_MASTER_PASS"]],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300, env=dict(os.environ, MEMDS_CA_FILE=stack["MEMDS_CA_FILE"]))
    failed = [l for l in r.stdout.splitlines() if l.startswith("not ok")]
    assert r.returncode == 0 and not failed, r.stdout[-3000:]
    assert sum(1 for l in r.stdout.splitlines() if l.startswith("ok ")) >= 50
