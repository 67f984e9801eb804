"""2xx: the real SyncEvolution client against the items datastore:
XML and WBXML x basic and md5 x all six sync modes, items compared byte by
byte on both sides after each session; 1000 items; MaxMsgSize 10240 with a
200 KB item (multi-message packages and large objects both ways)."""
import os
import subprocess

import pytest

from client import Client, vcard

MATRIX = [("xml", "basic"), ("xml", "md5"), ("wbxml", "basic"), ("wbxml", "md5")]


@pytest.mark.parametrize("enc,auth", MATRIX, ids=["-".join(m) for m in MATRIX])
def test_221_all_modes(stack, enc, auth):
    c = Client(stack, enc=enc, auth=auth)
    # WBXML carries bytes exactly; over XML a CR inside the client's CDATA
    # reaches any XML parser as LF, so XML sessions use LF-only items.
    crlf = enc == "wbxml"
    try:
        # slow sync: the client's items go to the server
        c.sync("slow", items=0)
        for i in range(3):
            c.put("c%d" % i, vcard("c%d" % i, crlf))
        c.sync("slow")
        assert c.remote() == c.local() and len(c.local()) == 3

        # two-way: changes on both sides meet
        c.server_add(vcard("s1", crlf))
        c.put("c0", vcard("c0-changed", crlf))
        c.put("c3", vcard("c3", crlf))
        c.remove("c1")
        c.sync("two-way")
        assert c.local() == c.remote()
        assert vcard("s1", crlf) in c.local() and vcard("c0-changed", crlf) in c.remote()
        assert vcard("c1", crlf) not in c.remote() and len(c.local()) == 4

        # a server deletion and change arrive at the next two-way sync
        c.server_delete(vcard("s1", crlf))
        c.server_change(vcard("c3", crlf), vcard("c3-server", crlf))
        c.sync("two-way")
        assert c.local() == c.remote() and len(c.local()) == 3
        assert vcard("c3-server", crlf) in c.local()

        # one-way from client: the client's change goes up, the server's waits
        c.put("c4", vcard("c4", crlf))
        c.server_add(vcard("s2", crlf))
        c.sync("one-way-from-client")
        assert vcard("c4", crlf) in c.remote()
        assert vcard("s2", crlf) not in c.local()

        # one-way from server: the server's change comes down
        c.sync("one-way-from-server")
        assert vcard("s2", crlf) in c.local()
        assert c.local() == c.remote()

        # refresh from server: the client's copy is replaced by the server's
        c.put("junk", vcard("junk", crlf))
        c.sync("refresh-from-server")
        assert c.local() == c.remote()
        assert vcard("junk", crlf) not in c.local()

        # refresh from client: the server's copy is replaced by the client's
        c.server_add(vcard("s3", crlf))
        c.put("c5", vcard("c5", crlf))
        c.sync("refresh-from-client")
        assert c.remote() == c.local()
        assert vcard("s3", crlf) not in c.remote() and vcard("c5", crlf) in c.remote()

        # and an ordinary two-way sync after all that changes nothing
        before = c.local()
        c.sync("two-way")
        assert c.local() == before == c.remote()
    finally:
        c.cleanup()


def test_222_thousand_items(stack):
    up = Client(stack, enc="wbxml")
    down = Client(stack, enc="xml", uri=up.uri)
    try:
        up.sync("slow", items=0)
        for i in range(1000):
            up.put("i%04d" % i, vcard("bulk-%04d" % i))
        up.sync("slow")
        assert len(up.remote()) == 1000 and up.remote() == up.local()
        down.sync("slow", items=0)
        assert down.local() == up.remote()
    finally:
        up.cleanup()
        down.cleanup()


def _psql(stack, sql):
    return subprocess.run(["psql", stack["MEMDS_PG"], "-XAtq", "-c", sql],
                          check=True, stdout=subprocess.PIPE,
                          text=True).stdout.strip()


def test_225_queue_position_not_rows(stack):
    """A message going down records how far its datastore's queue has gone
    (session_stores.sent_upto, schema 021), not each row it carried: after
    300 items down in several messages, every row is covered by sent_upto,
    no row was marked sent on its own, and the device's statuses (all 201)
    moved the acknowledged position (acked_upto, schema 025) instead of
    being written on the rows, but for a last message of fewer than 32 (docs/performance.md, "The send queue's
    position")."""
    up = Client(stack, enc="wbxml")
    down = Client(stack, enc="wbxml", maxmsg=16384, uri=up.uri)
    try:
        up.sync("slow", items=0)
        for i in range(300):
            up.put("i%04d" % i, vcard("pos-%04d" % i))
        up.sync("slow")
        down.sync("slow", items=0)
        assert down.local() == up.remote() and len(down.local()) == 300
        row = _psql(stack, """
            SELECT ss.sent_upto, ss.acked_upto, count(q.*), max(q.n),
                   count(q.*) FILTER (WHERE q.sent_msg_id IS NOT NULL),
                   count(q.*) FILTER (WHERE q.status IS NOT NULL)
              FROM memds.devices d
              JOIN memds.sessions s USING (device_id)
              JOIN memds.session_stores ss USING (session_pk)
              JOIN memds.session_queue q
                ON q.session_pk = ss.session_pk AND q.store = ss.store
             WHERE d.devid = '%s' AND ss.store = '%s'
             GROUP BY ss.session_pk, ss.sent_upto, ss.acked_upto"""
                   % (down.devid, up.uri))
        upto, acked, rows, top, marked, own = (int(x) for x in row.split("|"))
        assert (rows, top) == (300, 300), row
        assert upto == 300, row
        assert marked == 0, row
        # the statuses of a message of 32 items or more move the position;
        # a last message's few (fewer than 32) are written on their rows
        assert acked >= 300 - 31 and own == 300 - acked, row
    finally:
        up.cleanup()
        down.cleanup()


@pytest.mark.parametrize("enc", ["xml", "wbxml"])
def test_223_small_messages_and_a_large_object(stack, enc):
    big = ("BEGIN:VCARD\nVERSION:3.0\nUID:big\nNOTE:"
           + "".join("line %05d of a large item with some text to chunk\\n" % i
                     for i in range(4000)) + "\nEND:VCARD\n").encode()
    assert len(big) > 200 * 1024
    up = Client(stack, enc=enc, maxmsg=10240)
    down = Client(stack, enc=enc, maxmsg=10240, uri=up.uri)
    try:
        up.sync("slow", items=0)
        up.put("big", big)
        for i in range(30):
            up.put("s%02d" % i, vcard("small-%02d" % i))
        up.sync("slow")
        assert up.remote() == up.local()
        assert big in up.remote()
        down.sync("slow", items=0)
        assert down.local() == up.remote()
    finally:
        up.cleanup()
        down.cleanup()


@pytest.mark.parametrize("enc", ["xml", "wbxml"])
def test_224_client_splits_for_a_small_server_limit(stack, enc):
    """With MemDSMaxMsgSize 16K the client must spread its package 3 over
    several messages and send the 200 KB item as a large object (MoreData,
    Status 213, reassembled and size-checked here)."""
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /items>
    SetHandler memds-sync
    MemDSEngine On
    MemDSMaxMsgSize 16K
    MemDSAuthFile "%s"
</Location>
""" % os.path.join(stack.var, "httpd", "users"))
    big = ("BEGIN:VCARD\nVERSION:3.0\nUID:big-up\nNOTE:"
           + "".join("upward line %05d with some text to chunk\\n" % i for i in range(5000))
           + "\nEND:VCARD\n").encode()
    assert len(big) > 200 * 1024
    c = Client(stack, enc=enc)
    try:
        c.sync("slow", items=0)
        c.put("big", big)
        for i in range(40):
            c.put("s%02d" % i, vcard("up-%02d" % i))
        mark = _access_lines(stack)
        c.sync("slow")
        assert c.remote() == c.local() and big in c.remote()
        assert _access_lines(stack) - mark > 10   # many messages, each <= 16K
    finally:
        c.cleanup()


def _access_lines(stack):
    with open(os.path.join(stack.var, "httpd", "access.log")) as f:
        return sum(1 for _ in f)
