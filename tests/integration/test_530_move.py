"""53x: Move (OMA DS 1.2) in the hierarchical "email" datastore, with
hand-made sessions: a message moved to another folder (UID MOVE, same
server id, flags kept), a folder moved under another (RENAME), and the
moves that are refused (special folders, the Outbox, a target that does not
exist, a datastore that is not hierarchical)."""
import imaplib
import re
import time
import uuid
import xml.etree.ElementTree as ET

import syncml as S
import test_510_mail as M
import test_610_outbox as O

FOLDER_TYPE = "application/vnd.omads-folder+xml"


def _move(cmd_id, luid, target_parent=None, source_parent=None):
    x = "<Move><CmdID>%d</CmdID><Item><Source><LocURI>%s</LocURI></Source>" % (
        cmd_id, S.esc(luid))
    if source_parent:
        x += "<SourceParent><LocURI>%s</LocURI></SourceParent>" % S.esc(source_parent)
    if target_parent:
        x += "<TargetParent><LocURI>%s</LocURI></TargetParent>" % S.esc(target_parent)
    return x + "</Item></Move>"


def _sync_body(store, ops):
    return ("<Sync><CmdID>2</CmdID><Target><LocURI>%s</LocURI></Target>"
            "<Source><LocURI>./%s</LocURI></Source>%s</Sync>" % (store, store, ops))


def _slow(stack, store, devid, user, pw):
    """A slow sync of store by a hand-made device, its Map sent (the
    device's id of each item: "c" + server id): the items it got."""
    sess = S.Session(stack["MEMDS_URL"], devid, user, pw)
    a = sess.post(sess.message(S.alert(1, 201, store, "./" + store, "n1")))
    assert [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"] == ["200"]
    got, a = M._receive_all(sess, sess.post(sess.message(S.sync(2, store, "./" + store, []))))
    M._send_map(sess, store, got)
    return got


def _two_way(stack, store, devid, user, pw, last, nxt, ops=""):
    """A two-way sync sending ops: (statuses of the ops, items received)."""
    s = S.Session(stack["MEMDS_URL"], devid, user, pw, session_id=nxt)
    a = s.post(s.message(S.alert(1, 200, store, "./" + store, nxt, last=last)))
    assert [x["Data"] for x in a.statuses() if x["Cmd"] == "Alert"] == ["200"]
    a = s.post(s.message(_sync_body(store, ops)))
    codes = {x["CmdRef"]: x["Data"] for x in a.statuses()
             if x["Cmd"] in ("Move", "Add", "Replace")}
    got, a = M._receive_all(s, a)
    s.post(s.message("".join(
        S.status(i + 1, a.hdr("MsgID").text, it[5], it[0], "200", source_ref=it[1])
        for i, it in enumerate(M._hier_items(a)))))
    return codes, got


def test_531_move_message_and_folder(stack):
    """A message moved Inbox -> a folder keeps its server id and its flags,
    IMAP has it there, and the per-folder datastores of another device see it
    leave the Inbox and arrive in the folder; a folder moved under another is
    renamed on IMAP; the refusals get 405/404/412, a per-folder datastore 406."""
    stack.allow_log(r"MEMDS00514: .*(Move|special folders|moved into itself)")
    user, pw = stack["MEMDS_USER2"], stack["MEMDS_PASS2"]
    tag = "M" + uuid.uuid4().hex[:6]
    m = M.imap(stack, user, pw)
    delim = re.search(rb'\(.*?\) "(.)"', m.list()[1][0]).group(1).decode()
    top, other = tag + "top", tag + "other"
    assert m.create(top)[0] == "OK" and m.create(other)[0] == "OK"
    m.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(time.time()),
             M.message(tag, 1))
    m.logout()

    # another device syncs the folder and the Inbox per folder
    per = "dev-" + uuid.uuid4().hex[:8]
    assert _slow(stack, top, per + "t", user, pw) == []
    inbox = _slow(stack, "INBOX", per + "i", user, pw)
    in_inbox = [g for _, g, _, _, data, _ in inbox
                if ("message 1 of " + tag) in (data or "")]
    assert len(in_inbox) == 1

    # the device of the "email" datastore
    devid = "dev-" + uuid.uuid4().hex[:8]
    got = _slow(stack, "email", devid, user, pw)
    folders = {src: (ET.fromstring(data).find("name").text,
                     ET.fromstring(data).findtext("role"), par)
               for op, src, par, typ, data, _ in got if typ == FOLDER_TYPE}
    by_name = {v[0]: k for k, v in folders.items() if v[2] is None}
    mine = [src for op, src, par, typ, data, _ in got
            if typ != FOLDER_TYPE and ("message 1 of " + tag) in (data or "")]
    assert len(mine) == 1 and in_inbox == mine
    guid = mine[0]
    outbox = [k for k, v in folders.items() if v[1] == "outbox"]

    ops = (_move(3, "c" + guid, target_parent=by_name[top])          # 200
           + _move(4, "c" + by_name[other], target_parent=by_name[top])  # 200
           + _move(5, "c" + by_name["INBOX"], target_parent=by_name[top])  # 405
           + _move(6, "c" + by_name[top], source_parent="c" + by_name[top])  # 405
           + _move(7, "c" + guid, target_parent="f999999999")       # 404
           + _move(8, "cUnknown", target_parent=by_name[top])       # 404
           + _move(9, "c" + guid))                                  # 412
    if outbox:
        msg = O.outgoing(tag + "-out", to="Alice <alice@example.test>").replace(
            "From: Alice &lt;alice@example.test&gt;",
            "From: %s &lt;%s@example.test&gt;" % (user, user))
        ops += (_move(10, "c" + guid, target_parent=outbox[0])      # 405 into
                + M._op("Add", 11, "cOut", M.EMAIL_TYPE, msg, target_parent=outbox[0])
                + _move(12, "cOut", target_parent=by_name["INBOX"]))  # 405 out of
    codes, got2 = _two_way(stack, "email", devid, user, pw, "n1", "2", ops)
    want = {"3": "200", "4": "200", "5": "405", "6": "405", "7": "404", "8": "404",
            "9": "412"}
    if outbox:
        want.update({"10": "405", "11": "201", "12": "405"})
    assert codes == want
    # its own moves are not echoed (what comes is the sent mail: its Outbox
    # item deleted, the copy in Sent)
    assert not [it for it in got2 if it[1] in (guid, by_name[other])]

    # IMAP: the message in top with its flag, the Inbox without it
    there = M.folder_messages_of(stack, user, pw, top)
    assert len(there) == 1
    ((_, flags, raw),) = there.values()
    assert "\\Flagged" in flags and ("message 1 of " + tag).encode() in raw
    assert not any(("message 1 of " + tag).encode() in v[2]
                   for v in M.folder_messages_of(stack, user, pw, "INBOX").values())
    assert M.psql(stack, "SELECT count(*) FROM memds.mail_messages WHERE account='%s' AND "
                         "guid='%s' AND NOT deleted AND folder='%s'" % (user, guid, top)) == "1"
    # the folder moved under top
    names = [l.decode() for l in M.imap(stack, user, pw).list()[1]]
    assert any(l.endswith('"%s%s%s"' % (top, delim, other)) or
               l.endswith(" %s%s%s" % (top, delim, other)) for l in names), names
    assert not any(l.endswith('"%s"' % other) or l.endswith(" " + other) for l in names)

    # the other device: it arrives in top, it leaves the Inbox
    _, got_t = _two_way(stack, top, per + "t", user, pw, "n1", "2")
    assert [(op, src) for op, src, *_ in got_t] == [("Add", guid)]
    _, got_i = _two_way(stack, "INBOX", per + "i", user, pw, "n1", "2")
    assert [op for op, *_ in got_i] == ["Delete"]

    # a per-folder datastore is not hierarchical: Move is not supported
    codes, _ = _two_way(stack, top, per + "t", user, pw, "2", "3",
                        _move(3, "c" + guid, target_parent=by_name["INBOX"]))
    assert codes == {"3": "406"}
    assert len(M.folder_messages_of(stack, user, pw, top)) == 1
