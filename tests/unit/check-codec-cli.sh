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
[ "$nfiles" -ge 210 ] && ok "the corpus is there ($nfiles messages)" \
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
[ -z "$bad" ] && ok "every message decodes, checks and re-encodes ($nfiles files)" \
              || nok "corpus:$bad"

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

if $codec frobnicate x >/dev/null 2>&1; then nok "bad usage accepted"
elif [ $? = 2 ]; then ok "usage error exits 2"; else nok "usage error exit code"; fi

echo "1..$n"; printf "$out\n" | sed '/^$/d'
