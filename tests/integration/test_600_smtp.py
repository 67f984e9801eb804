"""6xx: the SMTP submission layer (backends/memds_smtp.c) against the
stack's real Postfix, delivery checked in Dovecot: byte-exact delivery of a
dot-heavy message, the before-end-of-data hook (runs once; a failing hook
means no delivery), refused sender and recipients, closed ports, timeouts,
status mapping (tests/unit/smtp_check, TAP output)."""
import os
import subprocess


def test_601_smtp_check(stack):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tests", "unit", "smtp_check")
    if not os.path.exists(exe):
        subprocess.run(["make", "-C", stack.env["MEMDS_BUILD"], "tests/unit/smtp_check"],
                       check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run([exe, "127.0.0.1", stack["MEMDS_SMTP_PORT"], stack["MEMDS_IMAP_PORT"],
                        stack["MEMDS_USER1"], stack["MEMDS_PASS1"], stack["MEMDS_USER2"],
                        stack["MEMDS_PASS2"], stack["MEMDS_DOMAIN"]],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300, env=dict(os.environ, MEMDS_CA_FILE=stack["MEMDS_CA_FILE"]))
    failed = [l for l in r.stdout.splitlines() if l.startswith("not ok")]
    assert r.returncode == 0 and not failed, r.stdout[-3000:]
    assert sum(1 for l in r.stdout.splitlines() if l.startswith("ok ")) >= 40
