"""0xx: configuration — directive validation at configtest time, reference
config and README in step with the module."""
import os
import re
import subprocess

import pytest

from conftest import ROOT

GOOD = """
MemDSDatabase "{PG}"
<Location /sync>
    SetHandler memds-sync
    MemDSEngine On
    MemDSIMAPServer {IMAP}
    MemDSSMTPServer {SMTP}
    MemDSMaxMsgSize 256K
</Location>
"""


def test_001_good_config_passes(stack):
    rc, out = stack.configtest(GOOD)
    assert rc == 0, out
    assert "Syntax OK" in out


def test_007_db_keep_above_the_default_max(stack):
    """MemDSDBMax's default (8 per child) grows to MemDSDBKeep: a
    configuration that keeps more connections idle still starts."""
    rc, out = stack.configtest('MemDSDBKeep 12\n' + GOOD)
    assert rc == 0 and "Syntax OK" in out, out
    rc, out = stack.configtest('MemDSDBKeep 12\nMemDSDBMax 8\n' + GOOD)
    assert rc != 0 and "MemDSDBKeep (12) <= MemDSDBMax (8)" in out, out


# (site config, words the error must contain)
BAD = [
    ('MemDSDatabase "nosuchkey=1"', ["MemDSDatabase", "libpq", "nosuchkey"]),
    ('MemDSDatabase "host=\'unterminated"', ["MemDSDatabase", "libpq"]),
    ('MemDSDatabase ""', ["MemDSDatabase", "takes one argument"]),
    ('MemDSIMAPServer http://mail.example.test', ["MemDSIMAPServer", "imap://, imaps://"]),
    ('MemDSIMAPServer imap://u:pw@mail.example.test', ["MemDSIMAPServer", "credentials"]),
    ('MemDSIMAPServer imap://mail.example.test:99999', ["MemDSIMAPServer", "port"]),
    ('MemDSIMAPServer imap://mail.example.test/INBOX', ["MemDSIMAPServer", "path"]),
    ('MemDSSMTPServer imap://mail.example.test', ["MemDSSMTPServer", "smtp://, smtps://"]),
    ('MemDSSMTPServer mail.example.test', ["MemDSSMTPServer", "not a URL"]),
    ('MemDSMaxMsgSize 10X', ["MemDSMaxMsgSize", "1K to 64M"]),
    ('MemDSMaxMsgSize 100', ["MemDSMaxMsgSize", "1K to 64M"]),
    ('MemDSMaxMsgSize 65M', ["MemDSMaxMsgSize", "1K to 64M"]),
    ('<Location /x>\nMemDSEngine maybe\n</Location>', ["MemDSEngine", "On or Off"]),
    ('<Location /x>\nMemDSDatabase "dbname=x"\n</Location>', ["MemDSDatabase", "not allowed"]),
    ('MemDSDBMax 0', ["MemDSDBMax", "1 to 10000"]),
    ('MemDSDBKeep -1', ["MemDSDBKeep", "0 to 10000"]),
    ('MemDSDBExptime 1h', ["MemDSDBExptime", "0 to 86400"]),
    ('MemDSDatabase "{PG}"\nMemDSDBMin 3\nMemDSDBKeep 2', ["MemDSDBMin", "MemDSDBKeep"]),
    ('<Location /sync>\nSetHandler memds-sync\nMemDSEngine On\n</Location>',
     ["MemDSEngine On", "needs MemDSDatabase"]),
    ("MemDSKannelURL ftp://127.0.0.1/cgi-bin/sendsms", ["MemDSKannelURL", "http://"]),
    ("MemDSKannelURL http://127.0.0.1:13013", ["MemDSKannelURL", "path"]),
    ("MemDSKannelURL http://u:p@127.0.0.1/cgi-bin/sendsms", ["MemDSKannelURL", "MemDSKannelAuth"]),
    ("MemDSKannelURL http://127.0.0.1:99999/cgi-bin/sendsms", ["MemDSKannelURL", "port"]),
    ("MemDSKannelAuth memds", ["MemDSKannelAuth", "two arguments"]),
    ("<Location /x>\nMemDSKannelURL http://127.0.0.1/s\n</Location>",
     ["MemDSKannelURL", "not allowed"]),
]


@pytest.mark.parametrize("conf,words", BAD, ids=[b[0].split("\n")[0][:40] for b in BAD])
def test_002_configtest_rejects_bad_values(stack, conf, words):
    rc, out = stack.configtest(conf)
    assert rc != 0, "configtest accepted:\n" + conf
    for w in words:
        assert w in out, "%r not in configtest output:\n%s" % (w, out)


def _module_directives(stack):
    out = subprocess.run([stack["MEMDS_HTTPD_BIN"], "-L", "-f",
                          stack["MEMDS_HTTPD_CONF"]], stdout=subprocess.PIPE,
                         text=True, check=True).stdout
    return set(re.findall(r"^(MemDS\w+) \(mod_memds\.c\)", out, re.M))


def test_003_reference_config_lists_every_directive(stack):
    defined = _module_directives(stack)
    assert {"MemDSEngine", "MemDSDatabase", "MemDSIMAPServer",
            "MemDSSMTPServer", "MemDSMaxMsgSize"} <= defined
    with open(os.path.join(ROOT, "httpd-conf", "memds.conf")) as f:
        conf = f.read()
    listed = set(re.findall(r"^\s*#?\s*(MemDS\w+)\s", conf, re.M))
    assert listed == defined, ("memds.conf and the module differ: only in "
                               "conf %s, only in module %s"
                               % (listed - defined, defined - listed))


def test_004_readme_documents_every_directive(stack):
    defined = _module_directives(stack)
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    documented = set(re.findall(r"^### (MemDS\w+)", readme, re.M))
    assert documented == defined, ("README directive reference differs: only "
                                   "in README %s, only in module %s"
                                   % (documented - defined, defined - documented))
    for d in defined:
        sect = readme.split("### " + d, 1)[1].split("\n### ", 1)[0]
        for field in ("Syntax:", "Default:", "Context:"):
            assert field in sect, "%s lacks %s in README" % (d, field)


def test_005_reference_config_is_valid(stack):
    """httpd-conf/memds.conf, with the stack's database, passes configtest."""
    with open(os.path.join(ROOT, "httpd-conf", "memds.conf")) as f:
        conf = f.read()
    conf = re.sub(r'^MemDSDatabase .*$', 'MemDSDatabase "{PG}"', conf, flags=re.M)
    conf = re.sub(r'^(\s*)MemDSAuthFile .*$', r'\1MemDSAuthFile "%s"'
                  % os.path.join(stack.var, "httpd", "users"), conf, flags=re.M)
    rc, out = stack.configtest(conf.replace("{", "{{").replace("}", "}}")
                               .replace("{{PG}}", "{PG}"))
    assert rc == 0, out


def test_006_make_install(stack, tmp_path):
    """make install puts the module (through apxs), the tools and the schema
    under DESTDIR."""
    build = stack.env["MEMDS_BUILD"]
    r = subprocess.run(["make", "-C", build, "install", "DESTDIR=%s" % tmp_path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    names = {os.path.relpath(os.path.join(d, f), tmp_path)
             for d, _, fs in os.walk(tmp_path) for f in fs}
    assert any(n.endswith("modules/mod_memds.so") for n in names), names
    assert any(n.endswith("bin/memds-admin") for n in names)
    assert any(n.endswith("bin/memds-codec") for n in names)
    assert any(n.endswith("schema/002_engine.sql") for n in names)
