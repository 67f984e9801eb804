"""A small SyncML 1.2 client for protocol tests: builds XML messages, posts
them, and reads the answers (with ElementTree). Not a full client: just
enough to drive sessions precisely (retransmissions, wrong tokens, two
servers, kills in the middle)."""
import base64
import http.client
import re
import urllib.parse
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

NS = "{SYNCML:SYNCML1.2}"
MI = "{syncml:metinf}"


def esc(s):
    return escape(s).replace("\r", "&#13;")


class Answer:
    def __init__(self, status, headers, body):
        self.http_status = status
        self.headers = headers
        self.body = body
        self.root = None
        if status == 200 and body:
            self.root = ET.fromstring(body)

    def hdr(self, name):
        return self.root.find("%sSyncHdr/%s%s" % (NS, NS, name))

    @property
    def resp_uri(self):
        e = self.hdr("RespURI")
        return e.text if e is not None else None

    def statuses(self):
        out = []
        for st in self.root.find(NS + "SyncBody").iter(NS + "Status"):
            d = {k: (st.find(NS + k).text if st.find(NS + k) is not None else None)
                 for k in ("CmdRef", "Cmd", "Data", "MsgRef")}
            d["SourceRef"] = [e.text for e in st.findall(NS + "SourceRef")]
            d["TargetRef"] = [e.text for e in st.findall(NS + "TargetRef")]
            out.append(d)
        return out

    def hdr_status(self):
        return self.statuses()[0]["Data"]

    def commands(self, name):
        return self.root.find(NS + "SyncBody").findall(NS + name)

    @property
    def final(self):
        return self.root.find(NS + "SyncBody/" + NS + "Final") is not None

    def sync_items(self):
        """(op, source, target, data) of every item in the answer's Syncs."""
        out = []
        for sync in self.commands("Sync"):
            for op in sync:
                tag = op.tag.replace(NS, "")
                if tag not in ("Add", "Replace", "Delete"):
                    continue
                for it in op.findall(NS + "Item"):
                    src = it.find(NS + "Source/" + NS + "LocURI")
                    tgt = it.find(NS + "Target/" + NS + "LocURI")
                    data = it.find(NS + "Data")
                    out.append((tag, src.text if src is not None else None,
                                tgt.text if tgt is not None else None,
                                data.text if data is not None else None,
                                op.find(NS + "CmdID").text))
        return out


class Session:
    def __init__(self, url, devid, user=None, password=None, session_id="1",
                 max_msg=150000, ssl_context=None):
        self.url = url
        self.ssl_context = ssl_context  # https:// URLs: ssl.SSLContext
        self.next_url = url
        self.devid = devid
        self.user = user
        self.password = password
        self.session_id = session_id
        self.msg_id = 0
        self.max_msg = max_msg
        self.cred = True

    def header(self, msg_id, cred=None):
        h = ("<SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>"
             "<SessionID>%s</SessionID><MsgID>%d</MsgID>"
             "<Target><LocURI>%s</LocURI></Target>"
             "<Source><LocURI>%s</LocURI><LocName>%s</LocName></Source>"
             % (esc(self.session_id), msg_id, esc(self.url), esc(self.devid),
                esc(self.user or "")))
        if cred is None and self.cred and self.user:
            raw = base64.b64encode(("%s:%s" % (self.user, self.password)).encode()).decode()
            cred = ("<Cred><Meta><Format xmlns='syncml:metinf'>b64</Format>"
                    "<Type xmlns='syncml:metinf'>syncml:auth-basic</Type></Meta>"
                    "<Data>%s</Data></Cred>" % raw)
        h += cred or ""
        h += ("<Meta><MaxMsgSize xmlns='syncml:metinf'>%d</MaxMsgSize>"
              "<MaxObjSize xmlns='syncml:metinf'>4000000</MaxObjSize></Meta></SyncHdr>"
              % self.max_msg)
        return h

    def message(self, body, final=True, msg_id=None, cred=None):
        if msg_id is None:
            self.msg_id += 1
            msg_id = self.msg_id
        return ("<?xml version='1.0' encoding='UTF-8'?><SyncML xmlns='SYNCML:SYNCML1.2'>"
                + self.header(msg_id, cred) + "<SyncBody>" + body
                + ("<Final/>" if final else "") + "</SyncBody></SyncML>").encode()

    def post(self, data, url=None):
        u = urllib.parse.urlsplit(url or self.next_url)
        if u.scheme == "https":
            c = http.client.HTTPSConnection(u.hostname, u.port, timeout=60,
                                            context=self.ssl_context)
        else:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            c.request("POST", u.path + ("?" + u.query if u.query else ""), body=data,
                      headers={"Content-Type": "application/vnd.syncml+xml"})
            r = c.getresponse()
            a = Answer(r.status, dict((k.lower(), v) for k, v in r.getheaders()),
                       r.read())
        finally:
            c.close()
        if a.root is not None and a.resp_uri:
            self.next_url = a.resp_uri
            self.cred = False
        return a


def alert(cmd_id, code, target, source, next_anchor, last=None):
    return ("<Alert><CmdID>%d</CmdID><Data>%d</Data><Item><Target><LocURI>%s</LocURI>"
            "</Target><Source><LocURI>%s</LocURI></Source><Meta><Anchor xmlns='syncml:metinf'>"
            "%s<Next>%s</Next></Anchor></Meta></Item></Alert>"
            % (cmd_id, code, esc(target), esc(source),
               "<Last>%s</Last>" % esc(last) if last else "", esc(next_anchor)))


def sync(cmd_id, target, source, ops):
    """ops: list of (cmd, luid, data); CmdIDs from cmd_id+1 on."""
    body = "<Sync><CmdID>%d</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>%s</LocURI></Source>" % (
        cmd_id, esc(target), esc(source))
    n = cmd_id
    for op, luid, data in ops:
        n += 1
        body += "<%s><CmdID>%d</CmdID><Meta><Type xmlns='syncml:metinf'>text/plain</Type></Meta><Item><Source><LocURI>%s</LocURI></Source>" % (op, n, esc(luid))
        if data is not None:
            body += "<Data>%s</Data>" % esc(data)
        body += "</Item></%s>" % op
    return body + "</Sync>"


def status(cmd_id, msg_ref, cmd_ref, cmd, code, source_ref=None, target_ref=None):
    s = "<Status><CmdID>%d</CmdID><MsgRef>%s</MsgRef><CmdRef>%s</CmdRef><Cmd>%s</Cmd>" % (
        cmd_id, msg_ref, cmd_ref, cmd)
    if target_ref:
        s += "<TargetRef>%s</TargetRef>" % esc(target_ref)
    if source_ref:
        s += "<SourceRef>%s</SourceRef>" % esc(source_ref)
    return s + "<Data>%s</Data></Status>" % code


def token_of(url):
    m = re.search(r"[?&]s=([0-9a-f]+)", url or "")
    return m.group(1) if m else None
