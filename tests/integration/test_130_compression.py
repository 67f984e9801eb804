"""13x: HTTP compression. Request bodies in gzip, deflate (zlib, the
Funambol form with Uncompressed-Content-Length) and raw deflate are decoded
before the engine sees them, under MemDSMaxMsgSize measured on the decoded
message (a compression bomb gets 413 while inflating); answers are
compressed for clients that accept it, the stored answer of a
retransmission too."""
import gzip
import http.client
import os
import re
import subprocess
import tempfile
import time
import urllib.parse
import uuid
import zlib

import syncml as S
from conftest import capture

XML = "application/vnd.syncml+xml"


def deflate_raw(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def encode(data, form):
    """The body and headers of a request in one form."""
    if form == "gzip":
        return gzip.compress(data), {"Content-Encoding": "gzip"}
    if form == "zlib":  # Funambol: zlib data, the decoded size announced
        return zlib.compress(data), {"Content-Encoding": "deflate",
                                     "Uncompressed-Content-Length": str(len(data))}
    if form == "raw":
        return deflate_raw(data), {"Content-Encoding": "deflate"}
    return data, {}


def decode(body, headers):
    ce = headers.get("content-encoding")
    if ce is None:
        return body
    if ce == "gzip":
        return gzip.decompress(body)
    assert ce == "deflate", ce
    try:
        return zlib.decompress(body)
    except zlib.error:
        return zlib.decompress(body, -15)


def post(url, body, headers=None, ct=XML, timeout=60):
    """POST raw bytes; (status, lower-case headers, body as sent)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        h = {"Content-Type": ct}
        h.update(headers or {})
        c.request("POST", u.path + ("?" + u.query if u.query else ""), body=body,
                  headers=h)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def post_msg(sess, data, form=None, accept=None, url=None):
    """Post a SyncML message of sess compressed in form, accepting the
    codings in accept; returns (Answer on the decoded body, headers, wire
    body)."""
    body, h = encode(data, form)
    if accept is not None:
        h["Accept-Encoding"] = accept
    st, hdr, wire = post(url or sess.next_url, body, h)
    assert int(hdr.get("content-length", -1)) == len(wire)
    a = S.Answer(st, hdr, decode(wire, hdr) if st == 200 else wire)
    if a.root is not None and a.resp_uri:
        sess.next_url = a.resp_uri
        sess.cred = False
    return a, hdr, wire


def psql(stack, sql):
    cmd = ["psql", stack["MEMDS_PG"], "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def new_session(stack):
    return S.Session(stack["MEMDS_ITEMS_URL"], "dev-" + uuid.uuid4().hex[:12],
                     "alice", "alice-secret")


def count_items(stack, store):
    return int(psql(stack, "SELECT count(*) FROM memds.items WHERE account='alice' "
                           "AND store='%s' AND NOT deleted" % store))


def test_131_compressed_requests_answered_as_plain_ones(stack):
    for form in ("gzip", "zlib", "raw"):
        store = "gz-" + uuid.uuid4().hex[:8]
        sess = new_session(stack)
        m1 = sess.message(S.alert(1, 201, store, "./" + store, "n1"))
        a, hdr, _ = post_msg(sess, m1, form)
        assert a.http_status == 200, (form, a.body)
        assert a.hdr_status() == "212" and a.resp_uri and a.final, form
        assert "content-encoding" not in hdr  # it did not ask for it
        # The same message plain is a retransmission: the stored answer,
        # byte for byte, so the engine saw the same message both times.
        b, _, _ = post_msg(sess, m1, None, url=stack["MEMDS_ITEMS_URL"])
        assert b.body == a.body, form
        m2 = sess.message(S.sync(2, store, "./" + store,
                                 [("Add", "l%d" % i, "(item %d of %s)" % (i, form) * 20)
                                  for i in range(5)]))
        a, _, _ = post_msg(sess, m2, form)
        assert a.http_status == 200, a.body
        adds = [s for s in a.statuses() if s["Cmd"] == "Add"]
        assert [s["Data"] for s in adds] == ["201"] * 5, form
        assert count_items(stack, store) == 5
        data = psql(stack, "SELECT convert_from(data, 'UTF8') FROM memds.items "
                           "WHERE store='%s' ORDER BY seq LIMIT 1" % store)
        assert data == "(item 0 of %s)" % form * 20
        # Plain again (retransmission): the same answer.
        b, _, _ = post_msg(sess, m2, None)
        assert b.body == a.body
        assert count_items(stack, store) == 5


def test_132_compressed_wbxml(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    for form in ("gzip", "zlib"):
        body, h = encode(capture("pkg1/wbxml-basic-001-req.wbxml"), form)
        h["Accept-Encoding"] = "gzip" if form == "gzip" else "deflate"
        st, hdr, wire = post(stack["MEMDS_URL"], body, h, ct="application/vnd.syncml+wbxml")
        assert st == 200
        assert hdr["content-type"].startswith("application/vnd.syncml+wbxml")
        out = decode(wire, hdr)
        assert int(hdr.get("uncompressed-content-length", len(out))) == len(out)
        with tempfile.NamedTemporaryFile(suffix=".wbxml") as f:
            f.write(out)
            f.flush()
            text = subprocess.run(["wbxml2xml", "-o", "-", f.name], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True).stdout
        assert "<Cmd>SyncHdr</Cmd>" in text.replace("\n", "").replace(" ", ""), text


def test_133_compression_bomb_is_413_while_inflating(stack):
    url = stack["MEMDS_ITEMS_URL"]
    sess = new_session(stack)
    head = sess.message(S.alert(1, 201, "bomb", "./bomb", "n1"))[:-len(b"</SyncML>")]
    # 200 MB of spaces after a real message's start: about 200 KB compressed,
    # less than MemDSMaxMsgSize (1M) as sent.
    z = {"gzip": zlib.compressobj(9, zlib.DEFLATED, 31),
         "zlib": zlib.compressobj(9),
         "raw": zlib.compressobj(9, zlib.DEFLATED, -15)}
    chunk = b" " * (1 << 20)
    bombs = {}
    for form, c in z.items():
        parts = [c.compress(head)] + [c.compress(chunk) for _ in range(200)]
        bombs[form] = b"".join(parts) + c.compress(b"</SyncML>") + c.flush()
        assert len(bombs[form]) < 400 * 1024
    peak = stack.children_peak_rss_kb()
    for form, body in bombs.items():
        mark = stack.log_mark()
        # The Funambol form even claims a small size: not trusted.
        h = {"Content-Encoding": "x-gzip" if form == "gzip" else "deflate"}
        if form == "zlib":
            h["Uncompressed-Content-Length"] = "2000"
        t0 = time.time()
        st, hdr, _ = post(url, body, h)
        took = time.time() - t0
        assert st == 413, form
        assert hdr.get("connection", "").lower() == "close"
        assert took < 5, took
        print("%s bomb: %d bytes sent, 413 after %.3f s" % (form, len(body), took))
        log = stack.log_since(mark)
        assert "MEMDS00081" in log and "decodes to more than MemDSMaxMsgSize 1048576" in log, log
        # The child is fine: the next request works.
        s2 = new_session(stack)
        a, _, _ = post_msg(s2, s2.message(S.alert(1, 201, "after", "./after", "n1")), form)
        assert a.http_status == 200 and a.hdr_status() == "212"
    # No child grew by anything like the bombs' 200 MB (each holds at most
    # MemDSMaxMsgSize of a decoded body).
    grew = stack.children_peak_rss_kb() - peak
    print("children's peak RSS grew by %d kB" % grew)
    assert grew < 32 * 1024


def test_134_corrupt_or_unknown_codings(stack):
    url = stack["MEMDS_ITEMS_URL"]
    sess = new_session(stack)
    msg = sess.message(S.alert(1, 201, "bad", "./bad", "n1"))
    gz = bytearray(gzip.compress(msg))
    gz[-6] ^= 0xff  # the CRC
    zl = bytearray(zlib.compress(msg))
    zl[len(zl) // 2] ^= 0x55
    cases = [
        (bytes(gz), "gzip", "incorrect data check"),
        (gzip.compress(msg)[:-20], "gzip", "ends early"),
        (bytes(zl), "deflate", ""),
        (zlib.compress(msg) + b"trailing", "deflate", "data after the end"),
        (b"\x78", "deflate", "too short"),
        (msg, "gzip", "incorrect header check"),
    ]
    for body, ce, why in cases:
        mark = stack.log_mark()
        st, _, _ = post(url, body, {"Content-Encoding": ce})
        assert st == 400, (ce, why)
        log = stack.log_since(mark)
        assert "MEMDS00083" in log and why in log, log
    for ce in ("br", "compress", "gzip, deflate"):
        st, _, _ = post(url, gzip.compress(msg), {"Content-Encoding": ce})
        assert st == 415, ce
    # Identity and a gzip file of two members are fine.
    st, _, _ = post(url, msg, {"Content-Encoding": "identity"})
    assert st == 200
    s2 = new_session(stack)
    m = s2.message(S.alert(1, 201, "two", "./two", "n1"))
    st, _, body = post(url, gzip.compress(m[:100]) + gzip.compress(m[100:]),
                       {"Content-Encoding": "gzip"})
    assert st == 200 and b"<Data>212</Data>" in body
    # Chunked, in pieces of 7 bytes (the zlib header split too).
    z = zlib.compress(new_session(stack).message(S.alert(1, 201, "ch", "./ch", "n1")))
    c = http.client.HTTPConnection("127.0.0.1", int(stack["MEMDS_HTTP_PORT"]), timeout=30)
    c.request("POST", "/items", body=(z[i:i + 7] for i in range(0, len(z), 7)),
              encode_chunked=True,
              headers={"Content-Type": XML, "Content-Encoding": "deflate",
                       "Transfer-Encoding": "chunked"})
    r = c.getresponse()
    assert r.status == 200 and b"<Data>212</Data>" in r.read()
    c.close()


def test_135_max_msg_size_is_the_decoded_size(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /sync>
    SetHandler memds-sync
    MemDSEngine On
    MemDSMaxMsgSize 4K
</Location>
""")
    url = stack["MEMDS_URL"]
    msg = capture("pkg1/xml-basic-001-req.xml")  # about 2.5 KB: fits
    assert len(msg) < 4096
    for form in ("gzip", "zlib", "raw"):
        body, h = encode(msg, form)
        st, _, _ = post(url, body, h)
        assert st == 200, form
        # Spaces before </SyncML>: 7 KB decoded, a few hundred bytes sent.
        big = msg.replace(b"</SyncML>", b" " * 4500 + b"</SyncML>")
        body, h = encode(big, form)
        assert len(body) < 2048
        mark = stack.log_mark()
        st, hdr, _ = post(url, body, h)
        assert st == 413, form
        # (The Funambol form announces the size: refused before reading.)
        code = "MEMDS00082" if "Uncompressed-Content-Length" in h else "MEMDS00081"
        assert code in stack.log_since(mark)
        h.pop("Uncompressed-Content-Length", None)
        mark = stack.log_mark()
        st, hdr, _ = post(url, body, h)
        assert st == 413, form
        assert "MEMDS00081" in stack.log_since(mark)
    # An announced decoded size over the limit is refused even when the
    # body is small; one within it that lies is not trusted (above).
    body, h = encode(msg, "gzip")
    h["Uncompressed-Content-Length"] = "5000"
    mark = stack.log_mark()
    st, _, _ = post(url, body, h)
    assert st == 413
    assert "MEMDS00082" in stack.log_since(mark)


def test_136_answers_compressed_when_accepted(stack):
    url = stack["MEMDS_ITEMS_URL"]
    store = "gzo-" + uuid.uuid4().hex[:8]
    # A first device puts 20 items in the store; a second one slow-syncs
    # and gets them: an answer with data in it.
    s1 = new_session(stack)
    post_msg(s1, s1.message(S.alert(1, 201, store, "./" + store, "n1")))
    a, _, _ = post_msg(s1, s1.message(S.sync(2, store, "./" + store, [
        ("Add", "l%d" % i, "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Person %d\r\nN:%d;Person\r\n"
         "TEL:+41 44 555 %04d\r\nEMAIL:person%d@example.org\r\nEND:VCARD\r\n" % (i, i, i, i))
        for i in range(20)])))
    assert a.http_status == 200
    post_msg(s1, s1.message(""))
    s2 = new_session(stack)
    post_msg(s2, s2.message(S.alert(1, 201, store, "./" + store, "n1")))
    m = s2.message(S.sync(2, store, "./" + store, []))
    plain, hdr, _ = post_msg(s2, m)
    assert "content-encoding" not in hdr
    assert "Accept-Encoding" in hdr.get("vary", "")
    assert len(plain.sync_items()) == 20
    sizes = {"plain": len(plain.body)}
    # Retransmissions of the same message: the stored answer, compressed
    # as each one asks.
    cases = [
        ("gzip", None, "gzip"),
        ("deflate", None, "deflate"),
        ("gzip, deflate", None, "gzip"),
        ("gzip;q=0, deflate", None, "deflate"),
        ("deflate;q=1, gzip;q=0.5", None, "deflate"),
        ("*", None, "gzip"),
        ("identity", None, None),
        ("gzip;q=0", None, None),
        ("", None, None),
        ("gzip, deflate", "zlib", "deflate"),  # Funambol: deflate in, deflate out
        ("deflate", "raw", "deflate"),
        ("gzip", "zlib", "gzip"),
    ]
    for accept, form, expect in cases:
        a, hdr, wire = post_msg(s2, m, form, accept=accept)
        assert a.http_status == 200
        assert hdr.get("content-encoding") == expect, (accept, form)
        assert a.body == plain.body, (accept, form)
        if expect:
            assert int(hdr["uncompressed-content-length"]) == len(plain.body)
            assert len(wire) < len(plain.body) // 3
            sizes.setdefault(expect, len(wire))
            if expect == "deflate" and form != "raw":
                assert zlib.decompress(wire) == plain.body  # zlib, RFC 1950
            if form == "raw":
                assert zlib.decompress(wire, -15) == plain.body
        else:
            assert "uncompressed-content-length" not in hdr
            assert wire == plain.body
    print("answer with 20 items: %(plain)d bytes, gzip %(gzip)d, deflate %(deflate)d"
          % sizes)
    # A client that accepts nothing gets plain answers (the others of this
    # file and of test_1xx); with MemDSCompression Off nobody gets any.
    site = stack._default_site.replace("MemDSDatastore items",
                                       "MemDSDatastore items\n    MemDSCompression Off")
    assert site != stack._default_site
    stack.apply_site(site.replace("{", "{{").replace("}", "}}"))
    a, hdr, wire = post_msg(s2, m, "gzip", accept="gzip, deflate")
    assert "content-encoding" not in hdr and "vary" not in hdr
    assert wire == plain.body


def test_137_with_mod_deflate_filters(stack):
    """An operator who also turns on mod_deflate's filters: its input
    filter decodes gzip before the module reads (and the module then sees
    a plain body), the module's compressed answers are not compressed
    again, and with MemDSCompression Off mod_deflate does gzip alone."""
    with open(stack["MEMDS_HTTPD_CONF"]) as f:  # next to the modules ./dev loads
        moddir = re.search(r"LoadModule \w+ \"?(\S+)/mod_\w+\.so", f.read()).group(1)
    so = os.path.join(moddir, "mod_deflate.so")
    base = stack._default_site.replace("{", "{{").replace("}", "}}")
    filters = ("MemDSDatastore items\n    SetInputFilter DEFLATE\n"
               "    SetOutputFilter DEFLATE")
    site = ('LoadModule deflate_module "%s"\n' % so
            + base.replace("MemDSDatastore items", filters))
    stack.apply_site(site)
    store = "mdf-" + uuid.uuid4().hex[:8]
    sess = new_session(stack)
    m1 = sess.message(S.alert(1, 201, store, "./" + store, "n1"))
    for form, accept in (("gzip", "gzip"), ("zlib", "deflate"), ("raw", "gzip"),
                         (None, None)):
        a, hdr, wire = post_msg(sess, m1, form, accept=accept,
                                url=stack["MEMDS_ITEMS_URL"])
        assert a.http_status == 200 and a.hdr_status() == "212", (form, a.body)
        assert hdr.get("content-encoding") == (accept if accept else None)
        assert a.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><SyncML')
    st, _, body = post(stack["MEMDS_ITEMS_URL"], gzip.compress(m1),
                       {"Content-Encoding": "x-gzip"})
    assert st == 200 and body == a.body
    stack.apply_site(site.replace("SetOutputFilter DEFLATE",
                                  "SetOutputFilter DEFLATE\n    MemDSCompression Off"))
    st, hdr, wire = post(stack["MEMDS_ITEMS_URL"], m1, {"Accept-Encoding": "gzip"})
    assert st == 200 and hdr.get("content-encoding") == "gzip"
    assert gzip.decompress(wire) == a.body
    print("mod_deflate's answer: Content-Length %s, Transfer-Encoding %s"
          % (hdr.get("content-length"), hdr.get("transfer-encoding")))
