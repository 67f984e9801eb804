#!/bin/bash
# record.sh [--only anchor] [OUTDIR]: record the SyncML corpus of
# tests/corpus anew.
#
# Brings up a private stack (./dev up in a fresh MEMDS_VAR), drives the
# real SyncEvolution client (tests/client/run-client.sh) through the
# recording proxy (tools/memds-record.py) against the gateway, then makes
# the derived files (make-derived.py) and takes the stack down. OUTDIR
# (default: this directory) receives pkg1/, items/ and mail/; handmade/
# is not touched but for its generated renderings.
#
# --only anchor re-records the anchor mismatch session alone
# (items/xml-basic-anchor-mismatch-*), on its own fresh stack: the other
# files, COMMANDS.txt and the derived files stay as they are.
#
# Environment: MEMDS_BUILD (build dir with mod_memds, default ROOT/build),
# MEMDS_PORT_BASE (default 23000), MEMDS_VAR (must not exist yet; default
# a new directory under /tmp). Every client command is echoed as it runs
# ("+ name: ...") and listed in OUTDIR/COMMANDS.txt.
set -eu
ONLY=""
if [ "${1:-}" = --only ]; then
    case "${2:-}" in
        anchor) ONLY=$2 ;;
        *) echo "record.sh: --only anchor is the one section recorded alone" >&2; exit 2 ;;
    esac
    shift 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$(mkdir -p "${1:-$HERE}" && cd "${1:-$HERE}" && pwd)
CLIENT=$ROOT/tests/client/run-client.sh
RECORDER=$ROOT/tools/memds-record.py

export MEMDS_BUILD=${MEMDS_BUILD:-$ROOT/build}
export MEMDS_PORT_BASE=${MEMDS_PORT_BASE:-23000}
own_var=0
if [ -z "${MEMDS_VAR:-}" ]; then
    MEMDS_VAR=$(mktemp -d /tmp/memds-corpus-XXXXXX)
    rmdir "$MEMDS_VAR"
    own_var=1
fi
[ ! -e "$MEMDS_VAR" ] || { echo "record.sh: $MEMDS_VAR exists; the corpus needs a fresh stack" >&2; exit 2; }
export MEMDS_VAR MEMDS_NO_BUILD=1
WORK=$(mktemp -d /tmp/memds-corpus-clients-XXXXXX)
export TMPDIR=$WORK

recorder_pid=""
cleanup() {
    [ -z "$recorder_pid" ] || kill "$recorder_pid" 2>/dev/null || true
    (cd "$ROOT" && ./dev down >/dev/null 2>&1) || true
    [ "$own_var" = 0 ] || rm -rf "$MEMDS_VAR"
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$ROOT" && ./dev up) >"$WORK/dev-up.log" 2>&1 || { cat "$WORK/dev-up.log"; exit 1; }
eval "$(cd "$ROOT" && ./dev env)"
HOSTPORT=127.0.0.1:$MEMDS_HTTP_PORT
# A location with a small MaxMsgSize: the client must spread its package
# over several messages and send a large object in chunks.
cat >>"$MEMDS_HTTPD_SITE_CONF" <<SITE
# added by tests/corpus/record.sh
<Location /items-small>
    SetHandler memds-sync
    MemDSEngine On
    MemDSDatastore items
    MemDSMaxMsgSize 8K
    MemDSAuthFile "$MEMDS_VAR/httpd/users"
</Location>
SITE
(cd "$ROOT" && ./dev svc httpd graceful) >>"$WORK/dev-up.log" 2>&1 || { cat "$WORK/dev-up.log"; exit 1; }
if [ -z "$ONLY" ]; then
    rm -rf "$OUT/pkg1" "$OUT/items" "$OUT/mail"
    : >"$OUT/COMMANDS.txt"
fi
say() { echo "+ $*"; [ -n "$ONLY" ] || echo "$*" >>"$OUT/COMMANDS.txt"; }
# want SECTION: whether this run records SECTION
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# direct WORKDIR PATH client-args...: a session that is not recorded
direct() {
    local wd=$1 path=$2
    shift 2
    say "(not recorded): run-client.sh http://GATEWAY$path --workdir $wd $*"
    "$CLIENT" "http://$HOSTPORT$path" --workdir "$WORK/$wd" "$@" >"$WORK/last.log" 2>&1 ||
        { tail -30 "$WORK/last.log"; echo "record.sh: client failed" >&2; exit 1; }
}

# rec DIR NAME EXPECT WORKDIR PATH client-args...: one recorded session;
# EXPECT is ok (the client must succeed) or fail (it must not).
rec() {
    local dir=$1 name=$2 expect=$3 wd=$4 path=$5 port rc=0
    shift 5
    rm -f "$WORK/port" "$OUT/$dir/$name"-[0-9][0-9][0-9]*
    python3 "$RECORDER" --upstream "http://$HOSTPORT" --out "$OUT/$dir" --name "$name" \
        --port-file "$WORK/port" 2>>"$WORK/recorder.log" &
    recorder_pid=$!
    for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
    port=$(cat "$WORK/port")
    say "$dir/$name: run-client.sh http://PROXY$path --workdir $wd $*"
    "$CLIENT" "http://127.0.0.1:$port$path" --workdir "$WORK/$wd" "$@" >"$WORK/last.log" 2>&1 || rc=$?
    kill "$recorder_pid"
    wait "$recorder_pid" 2>/dev/null || true
    recorder_pid=""
    if { [ "$expect" = ok ] && [ $rc != 0 ]; } || { [ "$expect" = fail ] && [ $rc = 0 ]; }; then
        tail -30 "$WORK/last.log"
        echo "record.sh: $dir/$name: client exit code $rc, expected $expect" >&2
        exit 1
    fi
}

sql() { psql "$MEMDS_PG" -XAtq -v ON_ERROR_STOP=1 -c "$1" >/dev/null; }

# a server-side change in the items datastore, as another device would make it
server_add() {
    local store=$1 guid=$2 text=$3 sum
    sum=$(printf '%s\n' "$text" | sha1sum | cut -d' ' -f1)
    sql "INSERT INTO memds.items (account, store, guid, content_type, data, sha1)
         VALUES ('alice', '$store', '$guid', 'text/plain',
                 convert_to(E'$text\\n', 'UTF8'), '$sum')"
}

# one mail delivered to alice's Inbox over SMTP; waits until IMAP shows it
deliver() {
    python3 - "$1" <<'EOF'
import imaplib, os, smtplib, sys, time
n = sys.argv[1]
msg = ("From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n"
       "Subject: Delivered mail %s\r\nDate: Wed, 3 Jan 2024 09:00:00 +0000\r\n"
       "Message-ID: <corpus-delivered-%s@example.test>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: text/plain; charset=UTF-8\r\n\r\n"
       "Delivered over SMTP while the client was away.\r\n" % (n, n))
def count():
    m = imaplib.IMAP4("127.0.0.1", int(os.environ["MEMDS_IMAP_PORT"]))
    m.login("alice", "alice-secret")
    c = int(m.select("INBOX")[1][0])
    m.logout()
    return c
before = count()
with smtplib.SMTP("127.0.0.1", int(os.environ["MEMDS_SMTP_PORT"]), timeout=30) as s:
    s.sendmail("bob@example.test", ["alice@example.test"], msg)
for _ in range(300):
    if count() > before:
        break
    time.sleep(0.1)
else:
    sys.exit("record.sh: the delivered mail did not arrive")
EOF
}

memo() { printf '%s\n' "$@"; }

# ------------------------------------------------ pkg1: an unknown user
# Package 1 as the client sends it (DevInf Put, Get, Alert, credentials)
# and what the gateway answers to credentials it does not know.
if want pkg1; then
    for enc in xml wbxml; do
        for auth in basic md5; do
            rec pkg1 "$enc-$auth" fail "p-$enc-$auth" /items --user corpus --pass corpus-secret \
                --enc "$enc" --auth "$auth" --type memo --mode two-way --devid "corpus-pkg1-$enc-$auth"
        done
        rec pkg1 "$enc-basic-raw-email" fail "p-$enc-mail" /sync --user corpus --pass corpus-secret \
            --enc "$enc" --auth basic --type raw-email --uri Inbox --devid "corpus-pkg1-$enc-mail"
    done
fi

# ------------------------------------- items: the opaque items datastore
# slow sync of three memos, then two-way with changes on both sides
if want items; then
    for enc in xml wbxml; do
        for auth in basic md5; do
            g=$enc-$auth
            rec items "$g-slow" ok "$g" /items --enc "$enc" --auth "$auth" --type memo \
                --uri "notes-$g" --mode slow --items 3 --devid "corpus-$g"
            memo "Corpus memo 1" "Changed on the client." >"$WORK/$g/items/1"
            rm "$WORK/$g/items/2"
            memo "Corpus memo 4" "Added on the client, <&> ]]> too." >"$WORK/$g/items/4"
            server_add "notes-$g" "srv-$g" "Server memo for $g"
            rec items "$g-twoway" ok "$g" /items --reuse --enc "$enc" --auth "$auth" \
                --type memo --uri "notes-$g" --mode two-way
        done
    done
fi

# every other sync mode, XML and basic, one device
if want modes; then
    direct modes /items --type memo --uri notes-modes --mode slow --items 2 --devid corpus-modes
    memo "Memo for one-way from client" >"$WORK/modes/items/3"
    server_add notes-modes srv-modes-1 "Server memo that waits"
    rec items xml-basic-mode-one-way-from-client ok modes /items --reuse --type memo \
        --uri notes-modes --mode one-way-from-client
    rec items xml-basic-mode-one-way-from-server ok modes /items --reuse --type memo \
        --uri notes-modes --mode one-way-from-server
    memo "Client junk, replaced by the refresh" >"$WORK/modes/items/junk"
    rec items xml-basic-mode-refresh-from-server ok modes /items --reuse --type memo \
        --uri notes-modes --mode refresh-from-server
    memo "Memo for refresh from client" >"$WORK/modes/items/5"
    server_add notes-modes srv-modes-2 "Server memo that the refresh removes"
    rec items xml-basic-mode-refresh-from-client ok modes /items --reuse --type memo \
        --uri notes-modes --mode refresh-from-client
fi

# 508: the client comes back with anchors the gateway has moved past. A
# device syncs, its work dir is copied, the original syncs again (the
# gateway now keeps that sync's Next anchor), then the stale copy comes
# with the Last anchor of the first sync. The client's anchors are UTC
# times to the second: without the pause the original's second sync can
# fall in the same second as the first, keep the same anchor, and the
# copy's Last would still match (that recording showed 200, not 508).
# The client's config names its items dir by absolute path: the copy is
# pointed at its own items, else it would sync the original's.
if want anchor; then
    direct anchor /items --type memo --uri notes-anchor --mode slow --items 1 --devid corpus-anchor
    cp -a "$WORK/anchor" "$WORK/anchor-stale"
    grep -rlF "$WORK/anchor/" "$WORK/anchor-stale/config" |
        xargs sed -i "s|$WORK/anchor/|$WORK/anchor-stale/|g"
    memo "Memo changed after the copy" >"$WORK/anchor/items/1"
    sleep 2
    direct anchor /items --reuse --type memo --uri notes-anchor --mode two-way
    rec items xml-basic-anchor-mismatch ok anchor-stale /items --reuse --type memo \
        --uri notes-anchor --mode two-way
    # the gateway must have answered the Alert 508 and asked for a slow sync (201)
    python3 - "$OUT/items/xml-basic-anchor-mismatch-001-resp.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
ns = "{SYNCML:SYNCML1.2}"
body = ET.parse(sys.argv[1]).getroot().find(ns + "SyncBody")
st = [s.findtext(ns + "Data") for s in body.findall(ns + "Status")
      if s.findtext(ns + "Cmd") == "Alert"]
al = [a.findtext(ns + "Data") for a in body.findall(ns + "Alert")]
if st != ["508"] or al != ["201"]:
    sys.exit("record.sh: anchor mismatch recorded as Alert status %s, server Alert %s, "
             "not 508 and 201" % (st, al))
EOF
fi

# multi-message packages and a large object both ways, eight small cards
# and one of about 12 KB: up to a gateway location with MaxMsgSize 8K,
# down to a client with MaxMsgSize 10240
if want large; then
    for enc in xml wbxml; do
        g=lo-$enc
        direct "$g-up" /items --enc "$enc" --type raw-vcard --uri "contacts-$g" --mode slow \
            --maxmsg 10240 --devid "corpus-$g-up"
        for i in 1 2 3 4 5 6 7 8; do
            printf 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:corpus-small-%d\r\nFN:Small Card %d\r\nN:Card %d;Small;;;\r\nEND:VCARD\r\n' \
                $i $i $i >"$WORK/$g-up/items/s$i"
        done
        # LF only: over XML a CR in the client's CDATA reaches the gateway as
        # LF, and the chunks would no longer add up to the announced Size (424)
        {
            printf 'BEGIN:VCARD\nVERSION:3.0\nUID:corpus-large\nFN:Large Card\nN:Card;Large;;;\nNOTE:'
            for i in $(seq 1 220); do printf 'line %03d of a note long enough to be sent in pieces\\n' "$i"; done
            printf '\nEND:VCARD\n'
        } >"$WORK/$g-up/items/large"
        rec items "$enc-basic-large-up" ok "$g-up" /items-small --reuse --enc "$enc" \
            --type raw-vcard --uri "contacts-$g" --mode slow
        rec items "$enc-basic-large-down" ok "$g-down" /items --enc "$enc" --type raw-vcard \
            --uri "contacts-$g" --mode slow --maxmsg 10240 --devid "corpus-$g-down"
    done
fi

# ---------------------------------------------------- mail: the Inbox
# The stack seeds three messages into alice's Inbox. The client sends its
# three raw-email items and receives the seeded ones; then a delivered mail
# comes down and a flag change goes up; the WBXML/md5 device also deletes.
if want mail; then
    rec mail xml-basic-raw-email-inbox-slow ok mail-xml /sync --enc xml --auth basic \
        --type raw-email --uri Inbox --mode slow --items 3 --devid corpus-mail-xml
    deliver 1
    sed -i 's|<read>false</read>|<read>true</read>|' "$WORK/mail-xml/items/1"
    rec mail xml-basic-raw-email-inbox-twoway ok mail-xml /sync --reuse --enc xml --auth basic \
        --type raw-email --uri Inbox --mode two-way
    rec mail wbxml-md5-raw-email-inbox-slow ok mail-wbxml /sync --enc wbxml --auth md5 \
        --type raw-email --uri Inbox --mode slow --items 3 --devid corpus-mail-wbxml
    deliver 2
    rm "$WORK/mail-wbxml/items/2"
    rec mail wbxml-md5-raw-email-inbox-twoway ok mail-wbxml /sync --reuse --enc wbxml --auth md5 \
        --type raw-email --uri Inbox --mode two-way
fi

if [ -n "$ONLY" ]; then
    echo "record.sh: section $ONLY recorded into $OUT"
    exit 0
fi
python3 "$HERE/make-derived.py" "$OUT"
echo "record.sh: corpus written to $OUT ($(du -sh "$OUT" | cut -f1))"
