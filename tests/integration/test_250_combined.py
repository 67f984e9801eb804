"""25x: packages 1 and 3 together (issue 15 item 4). A device that knows
its anchors puts its Sync in the same message as its Alert: taken when the
Alert is accepted as sent (200), answered like a separate package 3, and
the server's package 4 comes in the same answer; when the server requires
a slow sync (508 for the Alert) the Sync and its items get 508 and nothing
reaches the items store or IMAP. Over the items datastore and alice's
Inbox (hand-made sessions, tests/integration/syncml.py)."""
import hashlib
import time
import uuid

import syncml as S
import test_510_mail as M

EMAIL = M.EMAIL_TYPE


def psql(stack, sql):
    return M.psql(stack, sql)


def alert_statuses(a):
    return [s["Data"] for s in a.statuses() if s["Cmd"] == "Alert"]


def codes(a, cmd):
    return [s["Data"] for s in a.statuses() if s["Cmd"] == cmd]


def server_alert(a):
    return [al.find(S.NS + "Data").text for al in a.commands("Alert")]


def last_client_anchor(stack, devid, store):
    return psql(stack, "SELECT last_client_anchor FROM memds.sync_state s JOIN "
                       "memds.devices d USING (device_id) WHERE d.devid='%s' AND "
                       "s.store='%s'" % (devid, store))


# ---------------------------------------------------------------- items

def items_of(stack, store):
    rows = psql(stack, "SELECT encode(data, 'escape') FROM memds.items WHERE "
                       "account='alice' AND store='%s' AND NOT deleted ORDER BY 1" % store)
    return [r for r in rows.split("\n") if r]


def server_add(stack, store, data):
    psql(stack, "INSERT INTO memds.items (account, store, guid, content_type, data, sha1)"
                " VALUES ('alice', '%s', 'srv-%s', 'text/plain', convert_to('%s', 'UTF8'),"
                " '%s')" % (store, uuid.uuid4().hex[:8], data,
                            hashlib.sha1(data.encode()).hexdigest()))


def items_first_sync(stack, store, devid):
    """A separate slow sync that stores l1..l3; the anchors are n1."""
    s = S.Session(stack["MEMDS_ITEMS_URL"], devid, "alice", "alice-secret")
    a = s.post(s.message(S.alert(1, 201, store, "./" + store, "n1")))
    assert alert_statuses(a) == ["200"], a.body
    a = s.post(s.message(S.sync(2, store, "./" + store,
                                [("Add", "l%d" % i, "item %d" % i) for i in (1, 2, 3)])))
    assert codes(a, "Add") == ["201"] * 3 and a.final
    a = s.post(s.message(""))
    assert a.final and a.hdr_status() == "200"
    assert last_client_anchor(stack, devid, store) == "n1"


def combined_items(stack, store, devid, last):
    """Session 2's first message: Alert 200 with Last = last, and the Sync
    with an Add, a Replace and a Delete."""
    s = S.Session(stack["MEMDS_ITEMS_URL"], devid, "alice", "alice-secret", session_id="2")
    a = s.post(s.message(
        S.alert(1, 200, store, "./" + store, "n2", last=last)
        + S.sync(2, store, "./" + store, [("Add", "l4", "item 4"),
                                          ("Replace", "l1", "item 1 changed"),
                                          ("Delete", "l2", None)])))
    assert a.http_status == 200 and a.hdr_status() == "212", a.body
    return s, a


def test_251_items_combined_with_matching_anchors(stack):
    store = "comb-" + uuid.uuid4().hex[:8]
    devid = "dev-" + uuid.uuid4().hex[:12]
    items_first_sync(stack, store, devid)
    server_add(stack, store, "from the server")
    s, a = combined_items(stack, store, devid, "n1")
    # package 2: the Alert as sent
    assert alert_statuses(a) == ["200"]
    assert server_alert(a) == ["200"]
    # package 3 answered as in a separate message
    assert codes(a, "Sync") == ["200"]
    assert codes(a, "Add") == ["201"]
    assert codes(a, "Replace") == ["200"]
    assert codes(a, "Delete") == ["200"]
    assert items_of(stack, store) == sorted(
        ["from the server", "item 1 changed", "item 3", "item 4"])
    # package 4 in the same answer: the server's item, not the device's own
    got = a.sync_items()
    assert [(op, data) for op, _, _, data, _ in got] == [("Add", "from the server")]
    assert a.final
    # package 5: statuses and the Map; the session completes with anchor n2
    op, guid, _, _, cmd_id = got[0]
    a = s.post(s.message(
        S.status(1, a.hdr("MsgID").text, cmd_id, "Add", "201", source_ref=guid)
        + "<Map><CmdID>2</CmdID><Target><LocURI>%s</LocURI></Target><Source><LocURI>"
          "./%s</LocURI></Source><MapItem><Target><LocURI>%s</LocURI></Target><Source>"
          "<LocURI>l5</LocURI></Source></MapItem></Map>" % (store, store, guid)))
    assert a.final and codes(a, "Map") == ["200"]
    assert last_client_anchor(stack, devid, store) == "n2"


def test_252_items_combined_when_a_slow_sync_is_required(stack):
    store = "comb-" + uuid.uuid4().hex[:8]
    devid = "dev-" + uuid.uuid4().hex[:12]
    items_first_sync(stack, store, devid)
    before = items_of(stack, store)
    s, a = combined_items(stack, store, devid, "not-the-anchor")
    assert alert_statuses(a) == ["508"]
    assert server_alert(a) == ["201"]
    assert codes(a, "Sync") == ["508"]
    assert codes(a, "Add") == codes(a, "Replace") == codes(a, "Delete") == ["508"]
    assert a.commands("Sync") == [] and a.final
    assert items_of(stack, store) == before
    # the device then sends its whole datastore as package 3 (slow sync)
    a = s.post(s.message(S.sync(3, store, "./" + store, [("Replace", "l1", "item 1"),
                                                          ("Replace", "l2", "item 2"),
                                                          ("Replace", "l3", "item 3")])))
    assert codes(a, "Sync") == ["200"] and codes(a, "Replace") == ["200"] * 3
    assert items_of(stack, store) == before


# -------------------------------------------------------------- mailbox

def _inbox_messages(stack, tag, n):
    """n new messages in alice's INBOX, their Message-IDs."""
    m = M.imap(stack)
    for i in range(n):
        assert m.append("INBOX", None, M.imaplib.Time2Internaldate(time.time()),
                        M.message(tag, i))[0] == "OK"
    m.logout()
    return ["<%s-%d@example.test>" % (tag, i) for i in range(n)]


def _inbox_first_sync(stack, devid, mids):
    """A separate slow sync of Inbox (the device maps "c" + server id):
    {Message-ID: server id} of mids."""
    objs = M._hand_session(stack, "Inbox", devid, "n1")
    out = {}
    for guid, data in objs.items():
        for mid in mids:
            if mid.strip("<>") in data:  # (escaped inside the object)
                out[mid] = guid
    assert sorted(out) == sorted(mids)
    assert last_client_anchor(stack, devid, "Inbox") == "n1"
    return out


def _combined_inbox(stack, devid, last, read_guid, del_guid):
    s = S.Session(stack["MEMDS_URL"], devid, "alice", "alice-secret", session_id="2")
    sync = ("<Sync><CmdID>2</CmdID><Target><LocURI>Inbox</LocURI></Target><Source>"
            "<LocURI>./Inbox</LocURI></Source>"
            + M._op("Replace", 3, "c" + read_guid, EMAIL,
                    "<Email><read>true</read><flagged>true</flagged></Email>")
            + "<Delete><CmdID>4</CmdID><Item><Source><LocURI>c%s</LocURI></Source>"
              "</Item></Delete></Sync>" % del_guid)
    return s, s.post(s.message(S.alert(1, 200, "Inbox", "./Inbox", "n2", last=last) + sync))


def test_253_inbox_combined_with_matching_anchors(stack):
    tag = "comb" + uuid.uuid4().hex[:8]
    mids = _inbox_messages(stack, tag, 2)
    devid = "dev-" + uuid.uuid4().hex[:12]
    guids = _inbox_first_sync(stack, devid, mids)
    trash_before = len(M.folder_messages(stack, "Trash"))
    s, a = _combined_inbox(stack, devid, "n1", guids[mids[0]], guids[mids[1]])
    assert a.http_status == 200 and a.hdr_status() == "212", a.body
    assert alert_statuses(a) == ["200"] and server_alert(a) == ["200"]
    assert codes(a, "Sync") == ["200"]
    assert codes(a, "Replace") == ["200"] and codes(a, "Delete") == ["200"]
    inbox = M.folder_messages(stack, "INBOX")
    assert mids[1] not in inbox
    assert {"\\Seen", "\\Flagged"} <= inbox[mids[0]][1]
    trash = M.folder_messages(stack, "Trash")
    assert mids[1] in trash and len(trash) == trash_before + 1
    # the device's own changes are not echoed in the package 4 that follows
    assert M._hier_items(a) == [] and a.final
    a = s.post(s.message(""))
    assert a.final
    assert last_client_anchor(stack, devid, "Inbox") == "n2"


def test_254_inbox_combined_when_a_slow_sync_is_required(stack):
    tag = "comb" + uuid.uuid4().hex[:8]
    mids = _inbox_messages(stack, tag, 2)
    devid = "dev-" + uuid.uuid4().hex[:12]
    guids = _inbox_first_sync(stack, devid, mids)
    before = {k: v[1] for k, v in M.folder_messages(stack, "INBOX").items()}
    trash_before = len(M.folder_messages(stack, "Trash"))
    s, a = _combined_inbox(stack, devid, "stale", guids[mids[0]], guids[mids[1]])
    assert a.http_status == 200 and a.hdr_status() == "212", a.body
    assert alert_statuses(a) == ["508"] and server_alert(a) == ["201"]
    assert codes(a, "Sync") == ["508"]
    assert codes(a, "Replace") == ["508"] and codes(a, "Delete") == ["508"]
    assert a.commands("Sync") == [] and a.final
    # IMAP has nothing new: same messages, same flags, nothing in Trash
    after = {k: v[1] for k, v in M.folder_messages(stack, "INBOX").items()}
    assert after[mids[0]] == before[mids[0]] and mids[1] in after
    assert "\\Seen" not in after[mids[0]]
    assert len(M.folder_messages(stack, "Trash")) == trash_before
