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
                       timeout=300, env=dict(os.environ, MEMDS_CA_FILE=stack["MEMDS_CA_FILE"],
                                             MEMDS_DOVECOT_LOG=os.path.join(
                                                 stack["MEMDS_VAR"], "dovecot", "dovecot.log")))
    failed = [l for l in r.stdout.splitlines() if l.startswith("not ok")]
    assert r.returncode == 0 and not failed, r.stdout[-3000:]
    assert sum(1 for l in r.stdout.splitlines() if l.startswith("ok ")) >= 50


def test_502_kept_connection_closed_by_the_server(stack):
    """A kept (idle) IMAP connection is taken without a NOOP only while
    nothing came from the server: once Dovecot has closed it (doveadm
    kick: BYE, then the close), the next request logs in anew and the
    syncs go on without an error."""
    from test_510_mail import new_folder
    from test_550_filters import Device
    folder = new_folder(stack, 2)
    devs = [Device(stack, folder) for _ in range(3)]
    for d in devs:
        got, _, st = d.sync()
        assert st == "200" and len(got) == 2
    conf = os.path.join(stack["MEMDS_VAR"], "dovecot", "dovecot.conf")
    r = subprocess.run(["doveadm", "-c", conf, "kick", "alice"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0 and "alice" in r.stdout, r.stdout
    for d in devs:
        got, _, st = d.sync()
        assert st == "200" and got == []


def test_503_new_folder_found_through_kept_connections(stack):
    """A kept IMAP connection answers folder look-ups from its last LIST
    (30 s): a folder that another client made after that LIST is still
    found by the first device that syncs it, and a deleted one is refused
    (an Alert names its folder from a new LIST)."""
    from test_510_mail import new_folder, imap
    from test_550_filters import Device
    first = new_folder(stack, 1)
    devs = [Device(stack, first) for _ in range(4)]
    for d in devs:  # (the children keep connections that have LISTed)
        got, _, st = d.sync()
        assert st == "200" and len(got) == 1
    fresh = new_folder(stack, 2)
    d = Device(stack, fresh)
    got, _, st = d.sync()
    assert st == "200" and len(got) == 2
    # a deleted one is refused at the Alert (its LIST is new), as before
    stack.allow_log(r"MEMDS00513: .*no such mail folder")
    m = imap(stack)
    assert m.delete(fresh)[0] == "OK"
    m.logout()
    got, _, st = Device(stack, fresh).sync()
    assert st == "404"
