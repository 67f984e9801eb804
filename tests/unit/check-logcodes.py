#!/usr/bin/env python3
"""Every log site has its own code, and docs/logcodes.md lists exactly the
codes the source emits (TAP). A code is MEMDS_APLOGNO(nnnnn) in the glue or
MEMDS_LOGNO(nnnnn) in the core, at the start of the message, as httpd's
APLOGNO. Checked: (1) no code is used at two sites, (2) every call of
ap_log_error/ap_log_rerror/memds_logf and every engine log_msg carries one,
(3) every emitted code is documented, (4) every documented code is
emitted."""
import os
import re
import sys

top = os.environ.get("top_srcdir") or os.path.join(os.path.dirname(__file__), "..", "..")
CODE = re.compile(r"MEMDS_(?:AP)?LOGNO\((\d{5})\)")
CALL = re.compile(r"\b(ap_log_error|ap_log_rerror|memds_logf)\(|\blog_msg = ")


def sources():
    for d in ("mod_memds", "backends", "tools"):
        for root, _, files in os.walk(os.path.join(top, d)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.join(root, f)


def call_text(s, i):
    """The text of a call from i (just after its '(') to its ')', or of an
    assignment up to its ';'."""
    depth, j, instr = 1, i, False
    while j < len(s):
        c = s[j]
        if instr:
            if c == "\\":
                j += 1
            elif c == '"':
                instr = False
        elif c == '"':
            instr = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return s[i:j]
        elif c == ";" and depth == 1:
            return s[i:j]
        j += 1
    return s[i:]


used, missing = {}, []
for path in sources():
    rel = os.path.relpath(path, top)
    s = open(path, encoding="utf-8").read()
    for m in CODE.finditer(s):
        used.setdefault(m.group(1), []).append("%s:%d" % (rel, s.count("\n", 0, m.start()) + 1))
    for m in CALL.finditer(s):
        line = s[s.rfind("\n", 0, m.start()) + 1:m.start()]
        if line.strip() in ("void", "") and m.group(1) == "memds_logf" and "(" not in line:
            # the definition or prototype
            if re.match(r"\s*void\s*$", line) or s[m.start() - 5:m.start()] == "void ":
                continue
        text = call_text(s, m.end())
        rest = s[m.end():s.find("\n", m.end() + len(text))]
        if "/* code in msg */" in rest:
            continue  # passes on a message that carries its code
        if m.group(0).startswith("log_msg") and text.strip() in ("NULL", "0"):
            continue
        if m.group(1) == "memds_logf" and "const memds_logger_t" in text:
            continue  # the prototype or definition
        if not CODE.search(text):
            missing.append("%s:%d" % (rel, s.count("\n", 0, m.start()) + 1))

doc = open(os.path.join(top, "docs", "logcodes.md"), encoding="utf-8").read()
documented = re.findall(r"^\| MEMDS(\d{5}) \|", doc, re.M)

print("1..4")
dups = {c: w for c, w in used.items() if len(w) > 1}
ok = not dups
print("%s 1 - no code is used at two sites" % ("ok" if ok else "not ok"))
for c, w in sorted(dups.items()):
    print("# MEMDS%s at %s" % (c, ", ".join(w)))
print("%s 2 - every log call carries a code" % ("ok" if not missing else "not ok"))
for w in missing:
    print("# no MEMDS_(AP)LOGNO at %s" % w)
undoc = sorted(set(used) - set(documented))
print("%s 3 - every emitted code is in docs/logcodes.md" % ("ok" if not undoc else "not ok"))
for c in undoc:
    print("# MEMDS%s (%s) is not documented" % (c, used[c][0]))
dead = sorted(set(documented) - set(used))
twice = sorted(c for c in set(documented) if documented.count(c) > 1)
print("%s 4 - every documented code is emitted, once" % ("ok" if not dead and not twice else "not ok"))
for c in dead:
    print("# MEMDS%s is documented but no source emits it" % c)
for c in twice:
    print("# MEMDS%s is documented twice" % c)
sys.exit(0)
