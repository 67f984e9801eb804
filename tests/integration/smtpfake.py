"""A small scripted SMTP server for the integration tests: what the gateway
said (STARTTLS, AUTH PLAIN and its three fields, MAIL, RCPT, the message) is
recorded per connection, and the replies to RCPT and to the end of the data
can be changed between requests. Used where the stack's Postfix cannot be
made to do what a test needs (offer AUTH, count the attempts exactly)."""
import base64
import socket
import ssl
import threading
import time


class FakeSMTP:
    def __init__(self, cert=None, key=None, auth=False):
        """cert/key: offer STARTTLS with them; auth: offer AUTH PLAIN (and
        accept any credentials)."""
        self.tls_ctx = None
        if cert:
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(cert, key)
        self.auth = auth
        self.rcpt_reply = b"250 2.1.5 Ok"
        self.rcpt_delay = {}  # recipient address -> seconds before the reply
        self.eod_reply = b"250 2.0.0 Ok: queued"
        self.connections = []  # one dict per connection, see _serve
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", 0))
        self._srv.listen(16)
        self._srv.settimeout(0.3)
        self.port = self._srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def delivered(self):
        """The messages whose end of data got a 2xx reply."""
        with self._lock:
            return [m for c in self.connections for m, ok in c["messages"] if ok]

    def count(self, rcpt=None):
        """Connections so far (that named rcpt in a RCPT TO)."""
        with self._lock:
            return len([c for c in self.connections
                        if rcpt is None or any("<%s>" % rcpt in r for r in c["rcpts"])])

    def stop(self):
        self._stop.set()

    # ----------------------------------------------------------- server
    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self._srv.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()
        self._srv.close()

    def _serve(self, sock):
        conn = {"tls": False, "auth": None, "mail": None, "rcpts": [],
                "messages": []}
        with self._lock:
            self.connections.append(conn)
        sock.settimeout(30)
        try:
            self._dialogue(sock, conn)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _dialogue(self, sock, conn):
        f = sock.makefile("rwb")

        def say(line):
            f.write(line + b"\r\n")
            f.flush()

        say(b"220 fake ESMTP")
        while True:
            line = f.readline()
            if not line:
                return
            verb = line.split(b" ", 1)[0].strip().upper()
            arg = line[len(verb):].strip()
            if verb in (b"EHLO", b"HELO"):
                caps = [b"fake", b"8BITMIME", b"SIZE 52428800"]
                if self.tls_ctx and not conn["tls"]:
                    caps.append(b"STARTTLS")
                if self.auth:
                    caps.append(b"AUTH PLAIN")
                for c in caps[:-1]:
                    f.write(b"250-" + c + b"\r\n")
                say(b"250 " + caps[-1])
            elif verb == b"STARTTLS" and self.tls_ctx and not conn["tls"]:
                say(b"220 2.0.0 Ready to start TLS")
                sock = self.tls_ctx.wrap_socket(sock, server_side=True)
                conn["tls"] = True
                f = sock.makefile("rwb")
            elif verb == b"AUTH" and self.auth:
                parts = arg.split()
                if len(parts) < 2:
                    say(b"334 ")
                    resp = f.readline().strip()
                else:
                    resp = parts[1]
                fields = base64.b64decode(resp).split(b"\0")
                conn["auth"] = tuple(x.decode() for x in fields)
                say(b"235 2.7.0 Authentication successful")
            elif verb == b"MAIL":
                conn["mail"] = arg.decode()
                conn["rcpts"] = []
                say(b"250 2.1.0 Ok")
            elif verb == b"RCPT":
                conn["rcpts"].append(arg.decode())
                for addr, secs in self.rcpt_delay.items():
                    if ("<%s>" % addr).encode() in arg:
                        time.sleep(secs)
                say(self.rcpt_reply)
                if self.rcpt_reply.startswith(b"421"):
                    return
            elif verb == b"DATA":
                say(b"354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    d = f.readline()
                    if not d:
                        return
                    if d == b".\r\n":
                        break
                    data.append(d[1:] if d.startswith(b"..") else d)
                reply = self.eod_reply
                with self._lock:
                    conn["messages"].append((b"".join(data), reply.startswith(b"2")))
                say(reply)
                if reply.startswith(b"421"):
                    return
            elif verb == b"RSET":
                say(b"250 2.0.0 Ok")
            elif verb == b"NOOP":
                say(b"250 2.0.0 Ok")
            elif verb == b"QUIT":
                say(b"221 2.0.0 Bye")
                return
            else:
                say(b"502 5.5.2 Error: command not recognized")
