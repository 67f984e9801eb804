"""1xx: the HTTP face of memds-sync and memds-status."""
import json
import subprocess
import tempfile

from conftest import capture


def test_101_get_is_405_with_allow(stack):
    st, hdr, _ = stack.request("GET", "/sync")
    assert st == 405
    assert "POST" in hdr.get("allow", "")


def test_102_options_lists_post(stack):
    st, hdr, _ = stack.request("OPTIONS", "/sync")
    assert st == 200
    assert "POST" in hdr.get("allow", "")


def test_103_wrong_content_type_is_415(stack):
    for ct in ("text/xml", "application/xml", "application/vnd.syncml.dm+xml"):
        st, _, _ = stack.request("POST", "/sync", b"<SyncML/>", {"Content-Type": ct})
        assert st == 415, ct
    st, _, _ = stack.request("POST", "/sync", b"<SyncML/>", {})
    assert st == 415


def test_104_oversized_body_is_413(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /sync>
    SetHandler memds-sync
    MemDSEngine On
    MemDSMaxMsgSize 4K
</Location>
""")
    body = capture("pkg1/xml-basic-001-req.xml")  # about 2.5 KB: fits
    assert len(body) < 4096
    st, _, _ = stack.post_syncml(body)
    assert st == 200
    st, _, _ = stack.post_syncml(b"<SyncML>" + b" " * 5000 + b"</SyncML>")
    assert st == 413

    # Without Content-Length (chunked): the cap applies while reading.
    def chunks():
        for _ in range(10):
            yield b" " * 1000
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", int(stack["MEMDS_HTTP_PORT"]), timeout=30)
    c.request("POST", "/sync", body=chunks(), encode_chunked=True,
              headers={"Content-Type": "application/vnd.syncml+xml",
                       "Transfer-Encoding": "chunked"})
    assert c.getresponse().status == 413
    c.close()


def test_105_syncml_xml_post_gets_syncml_answer(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    st, hdr, body = stack.post_syncml(capture("pkg1/xml-basic-001-req.xml"))
    assert st == 200
    assert hdr["content-type"].startswith("application/vnd.syncml+xml")
    assert hdr.get("cache-control") == "no-store"
    assert int(hdr["content-length"]) == len(body)
    text = body.decode()
    assert '<SyncML xmlns="SYNCML:SYNCML1.2">' in text
    assert "<CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>" in text
    assert text.rstrip().endswith("</SyncML>")


def test_106_syncml_wbxml_post_gets_wbxml_answer(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    st, hdr, body = stack.post_syncml(capture("pkg1/wbxml-basic-001-req.wbxml"),
                                      wbxml=True)
    assert st == 200
    assert hdr["content-type"].startswith("application/vnd.syncml+wbxml")
    with tempfile.NamedTemporaryFile(suffix=".wbxml") as f:
        f.write(body)
        f.flush()
        out = subprocess.run(["wbxml2xml", "-o", "-", f.name],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True).stdout
    assert "<Cmd>SyncHdr</Cmd>" in out.replace("\n", "").replace(" ", ""), out


def test_107_garbage_is_400_and_logged(stack):
    mark = stack.log_mark()
    st, _, _ = stack.post_syncml(b"\x00\x01garbage<<<")
    assert st == 400
    st, _, _ = stack.post_syncml(b"<html><body>hi</body></html>")
    assert st == 400
    st, _, _ = stack.post_syncml(b"\x02\xa4\x01\x6a", wbxml=True)
    assert st == 400
    log = stack.log_since(mark)
    assert "not a SyncML message" in log and "not <SyncML>" in log


def test_108_status_page_counts(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    st, hdr, body = stack.request("GET", "/memds-status?json")
    assert st == 200 and hdr["content-type"].startswith("application/json")
    before = json.loads(body)
    stack.post_syncml(capture("pkg1/xml-basic-001-req.xml"))
    stack.request("GET", "/sync")
    st, _, body = stack.request("GET", "/memds-status?json")
    after = json.loads(body)
    assert after["requests"]["answered"] == before["requests"]["answered"] + 1
    assert after["requests"]["http_405"] == before["requests"]["http_405"] + 1
    assert after["requests"]["requests"] >= before["requests"]["requests"] + 2
    assert "db_pool" in after and after["db_pool"]["configured"] is True
    # MemDSDBMax's default: 8 per child (ThreadsPerChild is 25 here)
    assert after["db_pool"]["max"] == 8
    assert after["database"]["reachable"] is True
    assert after["database"]["schema_version"] == after["schema_version_required"]
    st, hdr, body = stack.request("GET", "/memds-status")
    assert st == 200 and hdr["content-type"].startswith("text/plain")
    assert b"PostgreSQL pool" in body


def test_109_engine_off_declines(stack):
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    stack.apply_site("""
MemDSDatabase "{PG}"
<Location /sync>
    SetHandler memds-sync
    MemDSEngine Off
</Location>
""")
    st, _, _ = stack.post_syncml(capture("pkg1/xml-basic-001-req.xml"))
    assert st != 200


def test_111_sync_url_skips_the_directory_walk(stack):
    """A sync URL maps to no file: where its <Location> switches the engine
    on, httpd does not walk the directories under DocumentRoot for it (a
    stat and a .htaccess open per path component, per message). Shown by a
    broken .htaccess in DocumentRoot: it fails every URL that is walked
    (the plain one here: 500), not the sync URL. A sync URL that only a
    <Directory> section configures is still walked (test_621)."""
    import os
    stack.allow_log(r"authentication failed")  # the capture's user is unknown here
    stack.allow_log(r"Invalid command 'NotADirective'")
    htdocs = os.path.join(stack.var, "httpd", "htdocs")
    stack.apply_site("""
MemDSDatabase "{PG}"
<Directory "%s">
    AllowOverride All
</Directory>
<Location /sync>
    SetHandler memds-sync
    MemDSEngine On
</Location>
""" % htdocs)
    with open(os.path.join(htdocs, ".htaccess"), "w") as f:
        f.write("NotADirective on\n")
    try:
        st, _, _ = stack.request("GET", "/plain")
        assert st == 500
        st, hdr, body = stack.post_syncml(capture("pkg1/xml-basic-001-req.xml"))
        assert st == 200
        assert b"</SyncML>" in body
    finally:
        os.unlink(os.path.join(htdocs, ".htaccess"))


def test_110_status_page_prometheus_form(stack):
    """?format=prometheus: the counters, the database's figures and this
    child's pool in the Prometheus text format, every sample line a metric
    with a HELP and TYPE line before it."""
    import re
    stack.post_syncml(b"garbage")
    stack.allow_log(r"MEMDS0001|MEMDS0000|not a SyncML|cannot decode")
    st, hdr, body = stack.request("GET", "/memds-status?format=prometheus")
    assert st == 200 and hdr["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    typed = set(re.findall(r"^# TYPE (\S+) (counter|gauge|histogram)$", text, re.M))
    names = {n for n, _ in typed}
    samples = [l for l in text.splitlines() if l and not l.startswith("#")]
    for line in samples:
        m = re.match(r'^([a-z_]+)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?\d+(\.\d+)?$', line)
        assert m, line
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert m.group(1) in names or (base, "histogram") in typed, line
    values = dict((l.rsplit(" ", 1)[0], float(l.rsplit(" ", 1)[1])) for l in samples)
    assert values["memds_requests_total"] >= 1
    assert values['memds_responses_total{code="400"}'] >= 1
    assert values["memds_database_up"] == 1
    assert values["memds_schema_version"] == values["memds_schema_version_required"]
    assert "memds_push_pending" in values and "memds_sessions_active" in values
    assert any(k.startswith("memds_db_pool_connections{") for k in values)
