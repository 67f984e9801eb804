#!/bin/bash
# TAP test of tools/memds-codec: every message of the corpus (tests/corpus)
# decodes (whatever its encoding) and checks; re-encoding in both encodings
# decodes to the same XML; raw-email WBXML messages keep their item data
# byte-identical through WBXML -> XML -> WBXML; malformed input exits 1 with
# a precise message.
top=${top_srcdir:-$(dirname "$0")/../..}
codec=./tools/memds-codec
corpus="$top/tests/corpus"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0; out=""
ok() { n=$((n + 1)); out="$out\nok $n - $1"; }
nok() { n=$((n + 1)); out="$out\nnot ok $n - $1"; }
check() { if "$@" >/dev/null 2>"$tmp/err"; then return 0; else return 1; fi; }

files=$(find "$corpus/pkg1" "$corpus/items" "$corpus/mail" "$corpus/handmade" \
        \( -name '*.wbxml' -o -name '*.xml' \) ! -name '*.decoded.xml' ! -name '*.c.xml' | sort)
nfiles=$(echo $files | wc -w)
min_files=210  # fewer: the corpus is missing or incomplete
[ "$nfiles" -ge $min_files ] && ok "the corpus is there ($nfiles messages)" \
                      || nok "the corpus has $nfiles messages, expected 210 (tests/corpus)"
bad=""
for f in $files; do
    if ! $codec decode "$f" >"$tmp/a.xml" 2>"$tmp/err"; then bad="$bad $f"; continue; fi
    $codec check "$f" >/dev/null 2>&1 || bad="$bad $f(check)"
    $codec encode --wbxml "$f" >"$tmp/b.wbxml" && $codec decode "$tmp/b.wbxml" >"$tmp/b.xml" \
        && cmp -s "$tmp/a.xml" "$tmp/b.xml" || bad="$bad $f(wbxml)"
    $codec encode --xml "$f" >"$tmp/c.xml" 2>/dev/null && $codec decode "$tmp/c.xml" >"$tmp/c2.xml" \
        && cmp -s "$tmp/a.xml" "$tmp/c2.xml" || {
        # XML cannot carry some binary item data: then encode must say so.
        $codec encode --xml "$f" 2>&1 >/dev/null | grep -q "XML cannot carry" || bad="$bad $f(xml)"; }
done
# (never ok over a missing corpus: zero files have nothing bad in them)
[ -z "$bad" ] && [ "$nfiles" -ge $min_files ] \
    && ok "every message decodes, checks and re-encodes ($nfiles files)" \
    || nok "corpus ($nfiles files):$bad"

# raw-email: item data bytes identical after WBXML -> XML -> WBXML
bad="" nraw=0
for f in $(ls "$corpus"/*/*raw-email*.wbxml 2>/dev/null); do
    nraw=$((nraw + 1))
    $codec encode --xml "$f" >"$tmp/r.xml" && $codec encode --wbxml "$tmp/r.xml" >"$tmp/r.wbxml" \
        && $codec encode --wbxml "$f" >"$tmp/r0.wbxml" && cmp -s "$tmp/r0.wbxml" "$tmp/r.wbxml" \
        || bad="$bad $f"
done
[ -z "$bad" ] && [ "$nraw" -ge 21 ] && ok "raw-email WBXML messages keep their bytes through XML ($nraw)" \
    || nok "raw-email ($nraw files):$bad"

printf '\x02\xa4\x01\x6a\x00\x6d\x6c' >"$tmp/trunc.wbxml"
if $codec check "$tmp/trunc.wbxml" >/dev/null 2>"$tmp/err"; then nok "truncated WBXML accepted"
elif [ $? = 1 ] && grep -q "WBXML" "$tmp/err"; then ok "truncated WBXML: $(head -c 100 "$tmp/err")"
else nok "truncated WBXML: wrong exit or message"; fi

printf '<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><Foo/></SyncHdr></SyncML>' >"$tmp/unk.xml"
if $codec check "$tmp/unk.xml" >/dev/null 2>"$tmp/err"; then nok "unknown element accepted"
elif grep -q "Foo" "$tmp/err"; then ok "unknown element named: $(head -c 100 "$tmp/err")"
else nok "unknown element: $(cat "$tmp/err")"; fi

# SAN: the worked example of docs/san.md built byte for byte, decoded with
# its digest checked; a wrong password refused; the legacy form decoded
san_ex=65d58602508d64f8b83e0704e2f1dddf0318000000002a12   # digest, header
san_ex=${san_ex}6d61696c67772e6578616d706c652e636f6d1060000306046d61696c
$codec san-build --server-id mailgw.example.com --password srvsecret --nonce SyncNonce1 \
    --session 42 --ui 1 --alert 206 --type application/vnd.omads-email+xml --uri mail \
    >"$tmp/ex.san" 2>"$tmp/err"
[ "$(od -An -tx1 -v "$tmp/ex.san" | tr -d ' \n')" = "$san_ex" ] \
    && ok "san-build: the worked example, byte for byte" \
    || nok "san-build: the worked example: $(od -An -tx1 -v "$tmp/ex.san" | tr -d ' \n') $(cat "$tmp/err")"
$codec san-decode --password srvsecret --nonce-b64 U3luY05vbmNlMQ== "$tmp/ex.san" >"$tmp/ex.txt" 2>&1 \
    && grep -q "^digest .*(matches" "$tmp/ex.txt" && grep -q '^session-id   42$' "$tmp/ex.txt" \
    && grep -q '^sync 1       206 (two-way), content-type 0x000306 .*server URI "mail"$' "$tmp/ex.txt" \
    && ok "san-decode: the worked example, digest checked" || nok "san-decode: $(cat "$tmp/ex.txt")"
if $codec san-decode --password srvsecreT --nonce SyncNonce1 "$tmp/ex.san" >/dev/null 2>"$tmp/err"; then
    nok "san-decode: a wrong password accepted"
elif [ $? = 1 ] && grep -q "digest does not match" "$tmp/err"; then ok "san-decode: a wrong password refused"
else nok "san-decode: wrong password: $(cat "$tmp/err")"; fi
head -c 30 "$tmp/ex.san" >"$tmp/cut.san"
if $codec san-decode "$tmp/cut.san" >/dev/null 2>"$tmp/err"; then nok "san-decode: a cut package accepted"
elif [ $? = 1 ] && grep -q "server identifier of 18 bytes runs past the end" "$tmp/err"; then
    ok "san-decode: a cut package: $(head -c 100 "$tmp/err")"
else nok "san-decode: cut package: $(cat "$tmp/err")"; fi
$codec san-build --server-id srv --session 7 --alert 210 --type application/vnd.omads-folder+xml \
    --uri email --legacy --device IMEI:1 >"$tmp/l.wbxml" 2>"$tmp/err" \
    && $codec san-decode "$tmp/l.wbxml" >"$tmp/l.txt" && grep -q '^legacy SAN (SyncML 1.1' "$tmp/l.txt" \
    && grep -q '^sync 1       210 (refresh from server), content-type 0x000308' "$tmp/l.txt" \
    && $codec decode "$tmp/l.wbxml" | grep -q '<Data>210</Data>' \
    && ok "san-build --legacy: a SyncML 1.1 Alert the codec decodes" || nok "legacy SAN: $(cat "$tmp/err" "$tmp/l.txt")"

if $codec frobnicate x >/dev/null 2>&1; then nok "bad usage accepted"
elif [ $? = 2 ]; then ok "usage error exits 2"; else nok "usage error exit code"; fi

echo "1..$n"; printf "$out\n" | sed '/^$/d'
