"""Drive the real SyncEvolution client (tests/client/run-client.sh)
against the stack, and compare what the client and the server hold."""
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid

from conftest import ROOT

RUN_CLIENT = os.path.join(ROOT, "tests", "client", "run-client.sh")


class Client:
    """One SyncEvolution client (its own work dir, device id and datastore)."""

    def __init__(self, stack, enc="xml", auth="basic", uri=None, user="alice",
                 password="alice-secret", maxmsg=None, typ="raw-vcard",
                 syncml=None, cafile=None):
        self.stack = stack
        self.syncml = syncml  # SyncML version, None: the runner's 1.2
        self.cafile = cafile  # https://: the CA file, None: the system's
        self.enc, self.auth, self.typ = enc, auth, typ
        self.uri = uri or "store-" + uuid.uuid4().hex[:10]
        self.user, self.password, self.maxmsg = user, password, maxmsg
        self.workdir = tempfile.mkdtemp(prefix="se-", dir=stack.var)
        self.devid = "se-" + uuid.uuid4().hex[:12]
        self.runs = 0
        self.last_log = ""

    @property
    def items_dir(self):
        return os.path.join(self.workdir, "items")

    def sync(self, mode, url=None, items=0, check=True, timeout=600):
        args = ["bash", RUN_CLIENT, url or self.stack["MEMDS_ITEMS_URL"],
                "--workdir", self.workdir, "--user", self.user,
                "--pass", self.password, "--enc", self.enc, "--auth", self.auth,
                "--type", self.typ, "--uri", self.uri, "--mode", mode,
                "--devid", self.devid, "--timeout", str(timeout)]
        if self.runs:
            args.append("--reuse")
        else:
            args += ["--items", str(items)]
        if self.maxmsg:
            args += ["--maxmsg", str(self.maxmsg)]
        if self.syncml:
            args += ["--syncml", self.syncml]
        if self.cafile:
            args += ["--cafile", self.cafile]
        if os.environ.get("MEMDS_CLIENT_LOGLEVEL"):
            args += ["--loglevel", os.environ["MEMDS_CLIENT_LOGLEVEL"]]
        env = dict(os.environ, TMPDIR=self.stack.var)
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=env, timeout=timeout + 60,
                           stdin=subprocess.DEVNULL)
        self.runs += 1
        self.last_log = r.stdout
        if check:
            assert r.returncode == 0, "client failed (%d):\n%s" % (r.returncode, r.stdout[-4000:])
        return r.returncode

    # ------------------------------------------------------------ client side
    def put(self, name, data):
        os.makedirs(self.items_dir, exist_ok=True)
        with open(os.path.join(self.items_dir, name), "wb") as f:
            f.write(data)

    def remove(self, name):
        os.remove(os.path.join(self.items_dir, name))

    def wipe(self):
        for n in os.listdir(self.items_dir):
            os.remove(os.path.join(self.items_dir, n))

    def local(self):
        out = []
        if os.path.isdir(self.items_dir):
            for n in sorted(os.listdir(self.items_dir)):
                with open(os.path.join(self.items_dir, n), "rb") as f:
                    out.append(f.read())
        return sorted(out)

    # ------------------------------------------------------------ server side
    def psql(self, sql):
        return subprocess.run(["psql", self.stack["MEMDS_PG"], "-XAtq", "-v",
                               "ON_ERROR_STOP=1", "-c", sql], check=True,
                              stdout=subprocess.PIPE, text=True).stdout.strip()

    def remote(self):
        rows = self.psql("SELECT encode(data, 'hex') FROM memds.items WHERE "
                         "account='%s' AND store='%s' AND NOT deleted"
                         % (self.user, self.uri))
        return sorted(bytes.fromhex(h) for h in rows.split("\n") if h)

    def server_add(self, data):
        guid = "srv-" + uuid.uuid4().hex[:8]
        self.psql("INSERT INTO memds.items (account, store, guid, content_type, data, sha1)"
                  " VALUES ('%s', '%s', '%s', 'text/vcard', decode('%s', 'hex'), '%s')"
                  % (self.user, self.uri, guid, data.hex(), hashlib.sha1(data).hexdigest()))
        return guid

    def server_change(self, old, new):
        self.psql("UPDATE memds.items SET data = decode('%s', 'hex'), sha1 = '%s', "
                  "seq = memds.item_seq_take(), changed_by = NULL, updated_at = now() "
                  "WHERE account='%s' AND store='%s' AND data = decode('%s', 'hex')"
                  % (new.hex(), hashlib.sha1(new).hexdigest(), self.user, self.uri, old.hex()))

    def server_delete(self, data):
        self.psql("UPDATE memds.items SET deleted = true, seq = memds.item_seq_take(), "
                  "changed_by = NULL WHERE account='%s' AND store='%s' AND "
                  "data = decode('%s', 'hex')" % (self.user, self.uri, data.hex()))

    def cleanup(self):
        if os.environ.get("MEMDS_KEEP_VAR") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)


def vcard(n, crlf=False):
    nl = "\r\n" if crlf else "\n"
    return nl.join(["BEGIN:VCARD", "VERSION:3.0", "UID:memds-%s" % n,
                    "N:Doe%s;Jane;;;" % n, "FN:Jane Doe %s" % n,
                    "NOTE:<&> ]]> ümlaut €", "END:VCARD", ""]).encode()
