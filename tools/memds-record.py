#!/usr/bin/env python3
"""memds-record.py: record SyncML sessions as they cross the wire.

A small HTTP proxy for loopback use. A SyncML client is pointed at it
instead of the gateway; each request is forwarded unchanged to the
upstream gateway and each answer back to the client, and both bodies are
written to numbered files with the headers beside them:

    OUT/NAME-001-req.xml     the client's message 1 (.wbxml for WBXML,
    OUT/NAME-001-resp.xml    the gateway's answer     .bin for anything else)
    OUT/NAME-001.meta        request line and headers, status and headers,
                             time the gateway took

The Host header goes upstream as the client sent it, so a gateway that
builds its RespURI from the request (mod_memds does) sends the client
back to this proxy, and every message of the session is recorded.

usage: memds-record.py --upstream http://127.0.0.1:8080 --out DIR --name NAME
                       [--listen 127.0.0.1:0] [--port-file FILE] [--first N]

--listen 127.0.0.1:0 picks a free port; --port-file receives it once the
socket listens (a caller waits for that file). --first N numbers from N.
Runs until SIGTERM or SIGINT. Requests are forwarded one at a time, so
the numbers follow the order of the session.
"""
import argparse
import http.client
import http.server
import os
import signal
import sys
import threading
import time
import urllib.parse

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business.
HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
       "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}


def extension(content_type):
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct == "application/vnd.syncml+wbxml":
        return "wbxml"
    if ct == "application/vnd.syncml+xml":
        return "xml"
    return "bin"


class Recorder:
    def __init__(self, upstream, out, name, first):
        u = urllib.parse.urlsplit(upstream)
        if u.scheme != "http" or not u.hostname:
            raise SystemExit("memds-record.py: --upstream must be http://HOST[:PORT]")
        self.host, self.port = u.hostname, u.port or 80
        self.out, self.name, self.seq = out, name, first - 1
        self.lock = threading.Lock()
        os.makedirs(out, exist_ok=True)

    def path(self, suffix):
        return os.path.join(self.out, "%s-%03d%s" % (self.name, self.seq, suffix))

    def write(self, suffix, data):
        with open(self.path(suffix), "wb") as f:
            f.write(data)

    def exchange(self, method, target, headers, body):
        """Forward one request; returns (status, reason, headers, body).
        One at a time, whichever connection it came on."""
        with self.lock:
            return self._exchange(method, target, headers, body)

    def _exchange(self, method, target, headers, body):
        self.seq += 1
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        fwd = [(k, v) for k, v in headers if k.lower() not in HOP]
        t0 = time.monotonic()
        try:
            conn.putrequest(method, target, skip_host=True,
                            skip_accept_encoding=True)
            for k, v in fwd:
                if k.lower() != "content-length":
                    conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            rbody = r.read()
            rstatus, rreason, rheaders = r.status, r.reason, r.getheaders()
        except OSError as e:
            rstatus, rreason, rheaders = 502, "Bad Gateway", [
                ("Content-Type", "text/plain")]
            rbody = ("memds-record.py: upstream %s:%d: %s\n"
                     % (self.host, self.port, e)).encode()
        finally:
            conn.close()
        took = time.monotonic() - t0

        req_type = dict((k.lower(), v) for k, v in headers).get("content-type")
        resp_type = dict((k.lower(), v) for k, v in rheaders).get("content-type")
        if body is not None:
            self.write("-req." + extension(req_type), body)
        self.write("-resp." + extension(resp_type), rbody)
        meta = ["request: %s %s" % (method, target)]
        meta += ["request-header: %s: %s" % kv for kv in headers]
        meta += ["request-bytes: %d" % (len(body) if body is not None else 0),
                 "status: %d %s" % (rstatus, rreason)]
        meta += ["response-header: %s: %s" % kv for kv in rheaders]
        meta += ["response-bytes: %d" % len(rbody),
                 "upstream-seconds: %.4f" % took]
        self.write(".meta", ("\n".join(meta) + "\n").encode())
        return rstatus, rreason, rheaders, rbody


def handler_for(rec):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def relay(self, with_body):
            body = None
            if with_body:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = self.read_chunked()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            st, reason, hdrs, rbody = rec.exchange(self.command, self.path,
                                                   list(self.headers.items()), body)
            self.send_response_only(st, reason)
            for k, v in hdrs:
                if k.lower() not in HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(rbody)))
            self.end_headers()
            self.wfile.write(rbody)

        def read_chunked(self):
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()

        def do_POST(self):
            self.relay(True)

        def do_PUT(self):
            self.relay(True)

        def do_GET(self):
            self.relay(False)

        def log_message(self, fmt, *args):
            sys.stderr.write("memds-record.py: %s\n" % (fmt % args))

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file")
    ap.add_argument("--first", type=int, default=1)
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    rec = Recorder(a.upstream, a.out, a.name, a.first)
    srv = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), handler_for(rec))
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, a.port_file)

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.server_close()


if __name__ == "__main__":
    main()
