"""Extra httpd nodes for tests of several nodes: each Node is one more httpd
with the module, started from the stack's httpd.conf with its own port, pid
file, run directory, logs and site, and sharing the stack's PostgreSQL,
Dovecot and Postfix (test_730_push_watch.py, test_800_nodes.py)."""
import os
import re
import shutil
import signal
import subprocess
import time

from conftest import _port_free

# The site of a node by default: the mailbox location of ./dev's site and
# the status page (a balancer's health check). %s %s: the master user and
# its password; {PG}, {IMAP}, {SMTP} as in Stack.site_conf.
SITE = """MemDSDatabase "{PG}"
<Location /sync>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore imap
    MemDSIMAPServer {IMAP}
    MemDSIMAPMaster %s %s
    MemDSSMTPServer {SMTP}
    MemDSPush On
</Location>
<Location /memds-status>
    SetHandler memds-status
    Require ip 127.0.0.1
</Location>
"""


class Node:
    """A second (third) httpd with the module: the stack's httpd.conf with
    its own port, pid file, run directory, logs and site (site: a template
    like SITE)."""

    def __init__(self, stack, name, site=SITE):
        self.stack, self.name = stack, name
        self.dir = os.path.join(stack.var, "node-" + name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "run"))
        os.chmod(self.dir, 0o755)
        port = 20000 + (os.getpid() * 7 + ord(name[0])) % 20000
        while not _port_free(port):
            port += 1
        self.port = port
        self.url = "http://127.0.0.1:%d/sync" % port
        self.log = os.path.join(self.dir, "error.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.pidfile = os.path.join(self.dir, "httpd.pid")
        path = os.path.join(self.dir, "site.conf")
        with open(path, "w") as f:
            f.write(stack.site_conf(site % (stack["MEMDS_MASTER_USER"],
                                            stack["MEMDS_MASTER_PASS"])))
        with open(stack["MEMDS_HTTPD_CONF"]) as f:
            conf = f.read()
        # the stack's HTTPS port is the first httpd's
        conf = re.sub(r"(?ms)^# --- HTTPS .*?^# --- end of HTTPS\n", "", conf)
        conf = re.sub(r"(?m)^Listen .*$", "Listen 127.0.0.1:%d" % port, conf)
        conf = re.sub(r"(?m)^PidFile .*$", 'PidFile "%s"' % self.pidfile, conf)
        conf = re.sub(r"(?m)^DefaultRuntimeDir .*$",
                      'DefaultRuntimeDir "%s/run"' % self.dir, conf)
        conf = re.sub(r"(?m)^Mutex .*$", 'Mutex "file:%s/run" default' % self.dir, conf)
        conf = re.sub(r"(?m)^ErrorLog .*$", 'ErrorLog "%s"' % self.log, conf)
        conf = re.sub(r"(?m)^CustomLog .*$",
                      'CustomLog "%s" memds' % self.access_log, conf)
        conf = re.sub(r"(?m)^LogLevel .*$", "LogLevel warn memds:debug", conf)
        conf = conf.replace(stack["MEMDS_HTTPD_SITE_CONF"], path)
        self.conf = os.path.join(self.dir, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        subprocess.run([self.stack["MEMDS_HTTPD_BIN"], "-f", self.conf, "-k", "start"],
                       check=True, timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(self.pidfile) and not _port_free(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError("node %s did not start" % self.name)

    def running(self):
        return os.path.exists(self.pidfile)

    def ppid(self):
        with open(self.pidfile) as f:
            return int(f.read().strip())

    def stop(self):
        if os.path.exists(self.pidfile):
            subprocess.run([self.stack["MEMDS_HTTPD_BIN"], "-f", self.conf, "-k", "stop"],
                           timeout=60)
            deadline = time.time() + 30
            while time.time() < deadline and os.path.exists(self.pidfile):
                time.sleep(0.1)

    def kill(self):
        """kill -9 of the parent and every child: a crashed node."""
        parent = self.ppid()
        kids = subprocess.run(["pgrep", "-P", str(parent)], stdout=subprocess.PIPE,
                              text=True).stdout.split()
        for pid in [parent] + [int(k) for k in kids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os.unlink(self.pidfile)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def access_text(self):
        try:
            with open(self.access_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
