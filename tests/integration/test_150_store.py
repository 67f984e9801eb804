"""1xx: the PostgreSQL store layer against the stack's real database
(tests/unit/store_check: every store function, in a rolled-back transaction,
TAP output)."""
import os
import subprocess


def test_151_store_check(stack):
    exe = os.path.join(stack.env["MEMDS_BUILD"], "tests", "unit", "store_check")
    if not os.path.exists(exe):
        subprocess.run(["make", "-C", stack.env["MEMDS_BUILD"], "tests/unit/store_check"],
                       check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run([exe, stack["MEMDS_PG"]], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    failed = [l for l in r.stdout.splitlines() if l.startswith("not ok")]
    assert r.returncode == 0 and not failed, r.stdout[-3000:]
    assert sum(1 for l in r.stdout.splitlines() if l.startswith("ok ")) >= 100
