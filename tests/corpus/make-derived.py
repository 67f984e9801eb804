#!/usr/bin/env python3
"""make-derived.py [CORPUS_DIR]: the files of the corpus that are computed
from others (record.sh runs it last; run it alone after editing handmade/).

- X.decoded.xml beside every recorded X.wbxml of pkg1/ and mail/ (not
  items/, to keep the corpus small): libwbxml's rendering,
  `wbxml2xml -m 0 -k` (Debian libwbxml2-utils). It is not well-formed when
  opaque item data holds "]]>" (libwbxml wraps it in one CDATA section, as
  with every raw-email item); such files are kept, decoders must refuse
  them cleanly.
- handmade/X.c.xml beside every hand-written, indented handmade/X.xml: the
  same document without the blanks between elements (leaf text and CDATA
  untouched), so a decoder can be shown to give the same tree for both.
- handmade/X.libwbxml.wbxml for every hand-written handmade/X.xml: the
  message as another WBXML encoder writes it, libwbxml's
  `xml2wbxml -v 1.2` (string table, inline strings, its own DevInf
  nesting), for decoders to read what they did not write.
- handmade/string-fpi-*.wbxml: recorded gateway answers whose WBXML header
  names the document type by a string-table FPI
  ("-//SYNCML//DTD SyncML 1.2//EN") instead of the numeric public id, as
  some servers write it; the body is unchanged.
"""
import os
import subprocess
import sys
import xml.dom.minidom

DECODED = ("pkg1", "mail")
FPI = b"-//SYNCML//DTD SyncML 1.2//EN"
STRING_FPI_FROM = ("items/wbxml-basic-slow-001-resp.wbxml",
                   "mail/wbxml-md5-raw-email-inbox-slow-002-resp.wbxml")


def mb_u_int32(n):
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def read_mb(buf, i):
    n = 0
    while True:
        b = buf[i]
        i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, i


def decoded(corpus):
    for d in DECODED:
        path = os.path.join(corpus, d)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith(".wbxml"):
                continue
            src = os.path.join(path, name)
            dst = src[:-len(".wbxml")] + ".decoded.xml"
            r = subprocess.run(["wbxml2xml", "-m", "0", "-k", "-o", dst, src],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if r.returncode != 0 and os.path.exists(dst):
                os.remove(dst)


def strip_blanks(node):
    kids = list(node.childNodes)
    if any(k.nodeType == k.ELEMENT_NODE for k in kids):
        for k in kids:
            if k.nodeType == k.TEXT_NODE and not k.data.strip():
                node.removeChild(k)
    for k in node.childNodes:
        if k.nodeType == k.ELEMENT_NODE:
            strip_blanks(k)


def renderings(corpus):
    path = os.path.join(corpus, "handmade")
    os.makedirs(path, exist_ok=True)
    for name in hand_written(path):
        with open(os.path.join(path, name), "rb") as f:
            doc = xml.dom.minidom.parseString(f.read())
        strip_blanks(doc.documentElement)
        out = ('<?xml version="1.0" encoding="UTF-8"?>'
               + doc.documentElement.toxml()).encode("utf-8")
        with open(os.path.join(path, name[:-len(".xml")] + ".c.xml"), "wb") as f:
            f.write(out)


def hand_written(path):
    return sorted(n for n in os.listdir(path)
                  if n.endswith(".xml") and not n.endswith(".c.xml"))


def libwbxml(corpus):
    path = os.path.join(corpus, "handmade")
    for name in hand_written(path):
        dst = os.path.join(path, name[:-len(".xml")] + ".libwbxml.wbxml")
        subprocess.run(["xml2wbxml", "-v", "1.2", "-o", dst,
                        os.path.join(path, name)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def string_fpi(corpus):
    for rel in STRING_FPI_FROM:
        with open(os.path.join(corpus, rel), "rb") as f:
            buf = f.read()
        version = buf[0]
        _, i = read_mb(buf, 1)             # numeric public id
        charset, i = read_mb(buf, i)
        strtbl_len, i = read_mb(buf, i)
        if strtbl_len != 0:
            raise SystemExit("%s: already has a string table" % rel)
        table = FPI + b"\0"
        out = (bytes([version]) + b"\x00" + mb_u_int32(0) + mb_u_int32(charset)
               + mb_u_int32(len(table)) + table + buf[i:])
        name = "string-fpi-" + os.path.basename(rel)
        with open(os.path.join(corpus, "handmade", name), "wb") as f:
            f.write(out)


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.abspath(__file__))
    decoded(corpus)
    renderings(corpus)
    libwbxml(corpus)
    string_fpi(corpus)


if __name__ == "__main__":
    main()
