#!/bin/bash
# run-client.sh: one SyncML session of a real, independent client, the
# Debian SyncEvolution command-line client (package `syncevolution`, engine
# libsynthesis 3.4), against any SyncML-over-HTTP URL, without a desktop,
# keyring or D-Bus. The client's datastore is a directory of files, one item
# per file. Everything the client writes stays under --workdir.
#
# usage: tests/client/run-client.sh URL [options]
#
#   --workdir DIR    client state: config, items, logs (default
#                    $TMPDIR/memds-client); emptied first unless --reuse
#   --reuse          keep DIR (anchors, items, config) for the next session
#   --user U --pass P   credentials (default alice / alice-secret)
#   --enc xml|wbxml  message encoding (default xml)
#   --auth basic|md5 credential type (default basic)
#   --type T         datastore type (default memo):
#                      memo        text/plain notes
#                      vcard       text/vcard, parsed by the client
#                      raw-vcard   text/vcard 3.0, bytes passed through
#                      raw-email   application/vnd.omads-email+xml 1.2, bytes
#                                  passed through (the OMA DS email object)
#                      raw-rfc822  message/rfc822 1.0, bytes passed through
#   --uri NAME       server datastore (Alert Target LocURI); default
#                    notes, contacts or mail by type
#   --mode M         two-way | slow | refresh-from-server |
#                    refresh-from-client | one-way-from-server |
#                    one-way-from-client (default two-way)
#   --items N        sample items written into a new datastore (default 0)
#   --devid ID       the client's device ID (SyncHdr Source LocURI)
#   --maxmsg BYTES   MaxMsgSize the client announces and keeps to (the
#                    client raises values below 10240 to 10240)
#   --syncml V       SyncML version the client speaks: 1.2 (default), 1.1, 1.0
#   --loglevel N     SyncEvolution log level; 5 and more also write every
#                    SyncML message into $WORKDIR/cache/syncevolution/...
#   --timeout S      kill the client after S seconds (default 300)
#   --cafile FILE    for an https:// URL: the CA certificates (PEM) that
#                    verify the server (SSLServerCertificates); default the
#                    system's bundle
#   --install        apt-get install what is missing (as root) first
#
# The exit code is the client's: 0 when it reports a successful session.
# Its output ends with its statistics table ("| mail | ...").
#
# Debian 12's SyncEvolution 2.0.0 crashes in its curl transport before it
# sends anything; the LD_PRELOAD library curl-shim.c beside this script
# repairs that (see its header). It is compiled on first use into
# $MEMDS_CLIENT_CACHE (default $TMPDIR/memds-client-cache).
set -u

die() { echo "run-client.sh: $*" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TMP=${TMPDIR:-/tmp}

url="" workdir="$TMP/memds-client" reuse=0 user=alice pass=alice-secret
enc=xml auth=basic type=memo uri="" mode=two-way nitems=0 devid=""
maxmsg="" loglevel="" limit=300 install=0 syncml=1.2 cafile=""

while [ $# -gt 0 ]; do
    opt=$1
    case $opt in
    --reuse) reuse=1; shift; continue ;;
    --install) install=1; shift; continue ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --*) [ $# -ge 2 ] || die "$opt needs a value" ;;
    *) [ -z "$url" ] || die "two URLs: $url $opt"; url=$opt; shift; continue ;;
    esac
    val=$2
    shift 2
    case $opt in
    --workdir) workdir=$val ;;
    --user) user=$val ;;
    --pass) pass=$val ;;
    --enc) enc=$val ;;
    --auth) auth=$val ;;
    --type) type=$val ;;
    --uri) uri=$val ;;
    --mode) mode=$val ;;
    --items) nitems=$val ;;
    --devid) devid=$val ;;
    --maxmsg) maxmsg=$val ;;
    --syncml) syncml=$val ;;
    --loglevel) loglevel=$val ;;
    --timeout) limit=$val ;;
    --cafile) cafile=$val ;;
    *) die "unknown option $opt (see --help)" ;;
    esac
done
[ -n "$url" ] || die "no sync URL (see --help)"

case $enc in xml) wbxml=0 ;; wbxml) wbxml=1 ;; *) die "--enc xml|wbxml" ;; esac
case $auth in basic | md5) ;; *) die "--auth basic|md5" ;; esac
case $syncml in 1.0 | 1.1 | 1.2) ;; *) die "--syncml 1.0|1.1|1.2" ;; esac
case $nitems in '' | *[!0-9]*) die "--items needs a number" ;; esac

# SyncEvolution's names of the modes; the "from server" ones also need
# enableRefreshSync, or libsynthesis alerts them as an ordinary two-way
# sync (200/201) and merely wipes or keeps its own side.
refresh=0
case $mode in
two-way | slow) se_mode=$mode ;;
refresh-from-server) se_mode='refresh-from-remote' refresh=1 ;;
refresh-from-client) se_mode='refresh-from-local' ;;
one-way-from-server) se_mode='one-way-from-remote' refresh=1 ;;
one-way-from-client) se_mode='one-way-from-local' ;;
*) die "unknown --mode $mode" ;;
esac

# Per type: the client's datastore name, the file backend's format, the
# default server URI, and for the pass-through types the MIME type and
# version the relabelled raw datatype announces.
relabel_type="" relabel_version=""
case $type in
memo) store=memo format=text/plain default_uri=notes ;;
vcard) store=addressbook format=text/vcard default_uri=contacts ;;
raw-vcard) store=addressbook format=raw/text/vcard default_uri=contacts ;;
raw-email)
    store=mail format=raw/text/vcard default_uri=mail
    relabel_type=application/vnd.omads-email+xml relabel_version=1.2 ;;
raw-rfc822)
    store=mail format=raw/text/vcard default_uri=mail
    relabel_type=message/rfc822 relabel_version=1.0 ;;
*) die "unknown --type $type" ;;
esac
uri=${uri:-$default_uri}

# ---------------------------------------------------------------- setup

need_packages() {
    local p missing=()
    for p in syncevolution gcc libc6-dev; do
        dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$install" = 1 ] || die "missing packages: ${missing[*]} (use --install as root)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" </dev/null || die "apt-get install failed"
}

# Compile the shim once per source version; concurrent runs each build a
# private copy and rename it into place.
build_shim() {
    local src="$HERE/curl-shim.c" cache sum lib tmp
    cache=${MEMDS_CLIENT_CACHE:-$TMP/memds-client-cache}
    mkdir -p "$cache" || die "cannot create $cache"
    sum=$(sha1sum "$src" | cut -c1-12)
    lib="$cache/curl-shim-$sum.so"
    if [ ! -f "$lib" ]; then
        tmp=$(mktemp "$cache/.build-XXXXXX") || die "mktemp in $cache"
        ${CC:-gcc} -shared -fPIC -O2 -Wall -Wextra -o "$tmp" "$src" -ldl -lpthread ||
            { rm -f "$tmp"; die "cannot compile $src"; }
        mv -f "$tmp" "$lib"
    fi
    echo "$lib"
}

# Sample item i of the datastore's type, on stdout.
sample_item() {
    local i=$1 min
    min=$(printf '%02d' $((i % 60)))
    case $type in
    memo) printf 'Corpus memo %d\nFirst line of memo %d.\nLast line.\n' "$i" "$i" ;;
    vcard | raw-vcard)
        printf 'BEGIN:VCARD\r\nVERSION:3.0\r\nUID:corpus-card-%d\r\nN:Sample%d;Carla;;;\r\nFN:Carla Sample%d\r\nEMAIL;TYPE=INTERNET:carla%d@example.test\r\nEND:VCARD\r\n' \
            "$i" "$i" "$i" "$i" ;;
    raw-rfc822) rfc822_item "$i" "$min" ;;
    raw-email)
        printf '<Email xmlns="syncml:email"><read>false</read><forwarded>false</forwarded><replied>false</replied><received>20240102T08%s00Z</received><created>20240102T08%s00Z</created><modified>20240102T08%s00Z</modified><deleted>false</deleted><flagged>false</flagged><emailitem><![CDATA[' \
            "$min" "$min" "$min"
        rfc822_item "$i" "$min"
        printf ']]></emailitem></Email>' ;;
    esac
}

rfc822_item() {
    printf 'From: Corpus Sender <sender@example.test>\r\nTo: Alice <alice@example.test>\r\nSubject: Corpus mail %d\r\nDate: Tue, 2 Jan 2024 08:%s:00 +0000\r\nMessage-ID: <corpus-mail-%d@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nThis is corpus mail number %d.\r\nIt has a second line & a <tag>.\r\n' \
        "$1" "$2" "$1" "$1"
}

# libsynthesis has no OMA DS email datatype. The file backend passes items
# of its "raw" datatypes through untouched; the MIME type and version they
# announce come from 42-raw-types.xml, which a file of the same name under
# $XDG_CONFIG_HOME/syncevolution-xml/datatypes replaces.
write_relabel() {
    local dir="$XDG_CONFIG_HOME/syncevolution-xml/datatypes"
    mkdir -p "$dir"
    cat >"$dir/42-raw-types.xml" <<EOF
    <datatype name="raw-vcard" basetype="raw">
      <use fieldlist="Raw"/>
      <typestring>$relabel_type</typestring>
      <versionstring>$relabel_version</versionstring>
    </datatype>
    <datatype name="raw-calendar" basetype="raw">
      <use fieldlist="Raw"/>
      <typestring>text/calendar</typestring>
      <versionstring>2.0</versionstring>
    </datatype>
EOF
}

need_packages
command -v syncevolution >/dev/null || die "syncevolution is not installed"
shim=$(build_shim) || exit 2

mkdir -p "$workdir" || die "cannot create $workdir"
workdir=$(cd "$workdir" && pwd)
if [ "$reuse" = 0 ]; then
    find "$workdir" -mindepth 1 -delete || die "cannot empty $workdir"
fi

# The client sees only the work dir: no ~/.config, no keyring, no D-Bus.
export HOME=$workdir XDG_CONFIG_HOME=$workdir/config XDG_CACHE_HOME=$workdir/cache \
    XDG_DATA_HOME=$workdir/data
unset DBUS_SESSION_BUS_ADDRESS
export LD_PRELOAD="$shim${LD_PRELOAD:+:$LD_PRELOAD}"

items=$workdir/items
config=memds@corpus
se=(syncevolution --daemon=no)

if [ ! -d "$XDG_CONFIG_HOME/syncevolution" ]; then
    mkdir -p "$items"
    for i in $(seq 1 "$nitems"); do
        sample_item "$i" >"$items/$i"
    done
    [ -z "$relabel_type" ] || write_relabel
    props=(--sync-property keyring=no
        --sync-property "syncURL=$url"
        --sync-property "username=$user" --sync-property "password=$pass"
        --sync-property "enableWBXML=$wbxml" --sync-property "clientAuthType=$auth"
        --sync-property "SyncMLVersion=$syncml" --sync-property preventSlowSync=0
        --sync-property RetryInterval=0 --sync-property RetryDuration=0
        --sync-property printChanges=0 --sync-property dumpData=0
        --datastore-property backend=file
        --datastore-property "database=file://$items"
        --datastore-property "databaseFormat=$format"
        --datastore-property "uri=$uri" --datastore-property sync=two-way)
    [ -z "$devid" ] || props+=(--sync-property "deviceId=$devid")
    [ -z "$maxmsg" ] || props+=(--sync-property "maxMsgSize=$maxmsg")
    if ! "${se[@]}" --configure --template none "${props[@]}" "$config" "$store" \
        >"$workdir/configure.log" 2>&1; then
        cat "$workdir/configure.log" >&2
        die "configuring the client failed"
    fi
fi

# Per-session settings, so that a reused work dir can change them.
run=(--sync "$se_mode" --sync-property "syncURL=$url"
    --sync-property "enableWBXML=$wbxml" --sync-property "clientAuthType=$auth"
    --sync-property "SyncMLVersion=$syncml")
[ "$refresh" = 0 ] || run+=(--sync-property enableRefreshSync=1)
[ -z "$maxmsg" ] || run+=(--sync-property "maxMsgSize=$maxmsg")
[ -z "$loglevel" ] || run+=(--sync-property "loglevel=$loglevel")
[ -z "$cafile" ] || run+=(--sync-property "SSLServerCertificates=$cafile")

cd "$workdir" || die "cd $workdir"
echo "run-client.sh: ${se[*]} --run ${run[*]} $config $store" >&2
timeout --kill-after=10 "$limit" "${se[@]}" --run "${run[@]}" "$config" "$store"
rc=$?
echo "run-client.sh: client exit code $rc" >&2
exit $rc
