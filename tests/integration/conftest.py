"""Integration harness: one real stack per test run.

Starts PostgreSQL, Dovecot, Postfix and httpd (with mod_memds from the build
tree) through `./dev up` in a private MEMDS_VAR on free loopback ports, lets
each test write its own MemDS* configuration and reload httpd, and fails a
test when httpd's error log gains error or warning lines the test did not
announce with `stack.allow_log(regex)`.

With MEMDS_SANITIZE=1 (./dev test stage asan-integration, a module built
with --enable-sanitizers) httpd runs with the ASan/UBSan runtimes preloaded
and the sanitized tools (memds-admin...) get the same options: ASan's
reports go to files in the stack's san/ directory, UBSan's to httpd's error
log; a test during which one appears fails, as does the run if one appears
later (at shutdown).
"""
import http.client
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Recorded SyncML sessions of the real client (tests/corpus/README.md).
CAPTURES = os.path.join(ROOT, "tests", "corpus")

# Lines of these levels fail a test unless allowed.
BAD_LEVEL = re.compile(r"^\[[^\]]*\] \[[a-z_0-9]*:(warn|error|crit|alert|emerg)\]")
# mpm_event's own process management, not the module's: it may say this
# when it stops children in quick succession on a loaded machine (the
# stack's MPM settings make that unlikely; this keeps it from failing an
# unrelated test when it happens anyway).
MPM_NOISE = re.compile(r"\[mpm_event:warn\] .*AH10392: children are killed successively")


def _port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _pick_port_base():
    # ./dev uses base+24, +25, +26, +43, +44, +54, +65, +80, +93; pick a
    # base where all are free. The search starts at a place of this
    # process's own (its pid), so that stacks started at the same moment
    # on one machine (a bench beside a test run) do not both take the
    # first free base and collide when they bind.
    bases = list(range(21000, 60000, 100))
    start = os.getpid() % len(bases)
    for base in bases[start:] + bases[:start]:
        if all(_port_free(base + off) for off in (24, 25, 26, 43, 44, 54, 65, 80, 93)):
            return base
    raise RuntimeError("no free loopback port range")


SANITIZE = os.environ.get("MEMDS_SANITIZE") == "1"
# a sanitizer's report in a log: UBSan's first line, or ASan's
SAN_LINE = re.compile(r": runtime error: |==[0-9]+==ERROR: [A-Za-z]+Sanitizer")


def _sanitizer_env(var):
    """ASan/UBSan options for the sanitized tools the tests run (httpd gets
    its own from ./dev): reports to files in var/san, no leak reports
    (docs/testing.md)."""
    d = os.path.join(var, "san")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o1777)
    return {
        "ASAN_OPTIONS": "log_path=%s/tool-asan:detect_leaks=0:abort_on_error=0:"
                        "halt_on_error=1" % d,
        # UBSan (next to ASan) ignores log_path: its reports go to the
        # tool's stderr, which the tests capture, and it exits with 1
        "UBSAN_OPTIONS": "print_stacktrace=1:abort_on_error=0:halt_on_error=1",
    }


class Stack:
    def __init__(self, var, base):
        self.var = var
        self.base = base
        self.env = dict(os.environ)
        self.env.update(MEMDS_VAR=var, MEMDS_PORT_BASE=str(base),
                        MEMDS_NO_BUILD="1")
        self.env.setdefault("MEMDS_BUILD", os.path.join(ROOT, "build"))
        self.vars = {}
        self._allowed = []
        self._default_site = None
        self._san_seen = set()
        self._san_log_pos = 0

    # ------------------------------------------------------------- commands
    def dev(self, *args, check=True, timeout=300):
        r = subprocess.run([os.path.join(ROOT, "dev"), *args], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError("./dev %s failed (%d):\n%s"
                               % (" ".join(args), r.returncode, r.stdout))
        return r

    def up(self):
        self.dev("up", timeout=600)
        out = self.dev("env").stdout
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):]
            if "=" not in line:
                continue
            k, v = line.split("=", 1)
            self.vars[k] = shlex.split(v)[0] if v else ""
        with open(self.vars["MEMDS_HTTPD_SITE_CONF"]) as f:
            self._default_site = f.read()

    def down(self):
        self.dev("down", check=False)

    def __getitem__(self, k):
        return self.vars[k]

    # ------------------------------------------------------------ httpd conf
    def site_conf(self, body):
        """Site config text with {PG}, {IMAP}, {SMTP} placeholders filled."""
        return body.format(
            PG=self["MEMDS_PG"],
            IMAP="imap://127.0.0.1:%s" % self["MEMDS_IMAP_PORT"],
            SMTP="smtp://127.0.0.1:%s" % self["MEMDS_SMTP_PORT"])

    def configtest(self, site_text):
        """Run `apache2 -t` on the stack's httpd.conf with site_text as the
        site config; returns (exit code, output)."""
        d = tempfile.mkdtemp(prefix="ct-", dir=self.var)
        site = os.path.join(d, "site.conf")
        with open(site, "w") as f:
            f.write(self.site_conf(site_text))
        with open(self["MEMDS_HTTPD_CONF"]) as f:
            main = f.read()
        main = main.replace(self["MEMDS_HTTPD_SITE_CONF"], site)
        conf = os.path.join(d, "httpd.conf")
        with open(conf, "w") as f:
            f.write(main)
        r = subprocess.run([self["MEMDS_HTTPD_BIN"], "-t", "-f", conf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)
        return r.returncode, r.stdout

    def apply_site(self, site_text):
        """Install site_text as the live site config and reload gracefully."""
        rc, out = self.configtest(site_text)
        assert rc == 0, out
        with open(self["MEMDS_HTTPD_SITE_CONF"], "w") as f:
            f.write(self.site_conf(site_text))
        self.graceful()

    def restore_site(self):
        with open(self["MEMDS_HTTPD_SITE_CONF"]) as f:
            cur = f.read()
        if cur != self._default_site:
            with open(self["MEMDS_HTTPD_SITE_CONF"], "w") as f:
                f.write(self._default_site)
            self.graceful()

    def graceful(self):
        mark = self.log_mark()
        subprocess.run([self["MEMDS_HTTPD_BIN"], "-f", self["MEMDS_HTTPD_CONF"],
                        "-k", "graceful"], check=True, timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline:
            if "resuming normal operations" in self.log_since(mark):
                time.sleep(0.3)  # let the new generation's children come up
                return
            time.sleep(0.1)
        raise RuntimeError("httpd did not come back after graceful restart")

    # --------------------------------------------------------------- logs
    def log_mark(self):
        try:
            return os.path.getsize(self["MEMDS_ERROR_LOG"])
        except OSError:
            return 0

    def log_since(self, mark):
        with open(self["MEMDS_ERROR_LOG"], errors="replace") as f:
            f.seek(mark)
            return f.read()

    def allow_log(self, regex):
        """Announce error/warning lines this test expects."""
        self._allowed.append(re.compile(regex))

    def unexpected_log_lines(self, mark):
        bad = []
        for line in self.log_since(mark).splitlines():
            if BAD_LEVEL.match(line) and not MPM_NOISE.search(line) \
                    and not any(a.search(line) for a in self._allowed):
                bad.append(line)
        self._allowed = []
        return bad

    # --------------------------------------------------------- sanitizers
    @staticmethod
    def _san_report(path):
        """A sanitizer's report file, waited for until it is whole: the
        runtime writes its header first and the stacks after symbolizing
        them (a second or more), so a report read at once may end at its
        first lines (up to 20 s: a "SUMMARY:" line, or no growth for 3 s)."""
        deadline, last, still = time.time() + 20, None, time.time()
        while True:
            with open(path, errors="replace") as f:
                text = f.read()
            if "SUMMARY:" in text or time.time() > deadline:
                return text.splitlines()
            if text != last:
                last, still = text, time.time()
            elif time.time() - still > 3:
                return text.splitlines()
            time.sleep(0.2)

    def sanitizer_reports(self):
        """Sanitizer reports not returned before: the files in var/san and
        UBSan's lines in httpd's error log (gcc's UBSan runtime ignores
        log_path next to ASan's: it writes to stderr, which is the error log)."""
        d = os.path.join(self.var, "san")
        out = []
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            path = os.path.join(d, name)
            if name in self._san_seen or not os.path.isfile(path):
                continue
            self._san_seen.add(name)
            lines = self._san_report(path)
            if len(lines) > 150:
                lines = lines[:150] + ["... (%d more lines)" % (len(lines) - 150)]
            out.append("==== %s ====\n%s" % (path, "\n".join(lines)))
        try:
            pos, self._san_log_pos = self._san_log_pos, self.log_mark()
            text = self.log_since(pos)
        except (OSError, KeyError):
            text = ""
        found, keep = [], False
        for line in text.splitlines():
            if SAN_LINE.search(line):
                keep = True
            elif not line.startswith("    #"):
                keep = False
            if keep and len(found) < 150:
                found.append(line)
        if found:
            out.append("==== %s ====\n%s" % (self["MEMDS_ERROR_LOG"], "\n".join(found)))
        return out

    # --------------------------------------------------------------- HTTP
    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", int(self["MEMDS_HTTP_PORT"]),
                                       timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def post_syncml(self, body, wbxml=False, path="/sync"):
        ct = "application/vnd.syncml+%s" % ("wbxml" if wbxml else "xml")
        return self.request("POST", path, body, {"Content-Type": ct})

    def httpd_children(self):
        with open(self["MEMDS_HTTPD_PID"]) as f:
            ppid = f.read().strip()
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", ppid],
                             stdout=subprocess.PIPE, text=True).stdout
        return [int(x) for x in out.split()]

    def children_peak_rss_kb(self):
        """The highest VmHWM (peak RSS) among httpd's children, in kB."""
        peak = 0
        for pid in self.httpd_children():
            try:
                with open("/proc/%d/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        return peak


@pytest.fixture(scope="session")
def stack():
    var = tempfile.mkdtemp(prefix="memds-it-")
    os.chmod(var, 0o755)
    if SANITIZE:
        os.environ.update(_sanitizer_env(var))
    st = Stack(var, _pick_port_base())
    reports = []
    try:
        st.up()
        yield st
    finally:
        st.down()
        reports = st.sanitizer_reports() if SANITIZE else []
        if os.environ.get("MEMDS_KEEP_VAR") != "1":
            shutil.rmtree(var, ignore_errors=True)
    assert not reports, "sanitizer reports:\n" + "\n".join(reports)


@pytest.fixture(autouse=True)
def log_guard(request, stack):
    """Fails the test on unexpected warn/error lines in httpd's error log and
    puts the default site config back afterwards."""
    mark = stack.log_mark()
    yield
    try:
        stack.restore_site()
    finally:
        bad = stack.unexpected_log_lines(mark)
        reports = stack.sanitizer_reports() if SANITIZE else []
        assert not reports, "sanitizer reports:\n" + "\n".join(reports)
        assert not bad, "unexpected lines in the httpd error log:\n" + "\n".join(bad)


def capture(path):
    with open(os.path.join(CAPTURES, path), "rb") as f:
        return f.read()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fault: needs the module built with --enable-fault-injection "
        "(./dev test runs these in its fault stage against a second build)")
