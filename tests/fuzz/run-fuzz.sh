#!/bin/bash
# run-fuzz.sh BUILD_DIR: build the libFuzzer targets (clang, ASan+UBSan) in
# BUILD_DIR and run each for a bounded time on a seed corpus made from the
# SyncML messages of tests/corpus. A target passes when libFuzzer
# finds no crash, leak, timeout or sanitizer report in its time.
# Prints "fuzz: N passed, N failed" last. MEMDS_FUZZ_SECONDS (default 60) per
# target. MEMDS_FUZZ_SEED: libFuzzer's random seed; by default the first 8
# hex digits of `git rev-parse HEAD` as a number (31 bits; 1 outside a git
# checkout), so each commit explores new inputs while a run of the same
# commit repeats (the seed is printed: a find reproduces from the log with
# MEMDS_FUZZ_SEED=N); 0 picks a new one each run, for long exploratory runs:
#   MEMDS_FUZZ_SEED=0 MEMDS_FUZZ_SECONDS=1800 tests/fuzz/run-fuzz.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-$ROOT/build-fuzz}
SECS=${MEMDS_FUZZ_SECONDS:-60}
if [ -n "${MEMDS_FUZZ_SEED:-}" ]; then
    SEED=$MEMDS_FUZZ_SEED; seed_from="MEMDS_FUZZ_SEED"
elif head=$(git -C "$ROOT" rev-parse --verify -q HEAD 2>/dev/null) \
        && [[ $head =~ ^[0-9a-f]{8} ]]; then
    SEED=$(( 16#${head:0:8} & 0x7fffffff )); seed_from="commit ${head:0:8}"
    [ "$SEED" != 0 ] || SEED=1
else
    SEED=1; seed_from="no git checkout"
fi
echo "fuzz: libFuzzer seed $SEED ($seed_from; MEMDS_FUZZ_SEED=N repeats it)"
CORPUS="$ROOT/tests/corpus"
pass=0; fail=0

mkdir -p "$BUILD"
if [ ! -f "$BUILD/Makefile" ]; then
    (cd "$BUILD" && CC=clang "$ROOT/configure" --with-apxs --disable-module \
        --enable-fuzz --enable-werror \
        CFLAGS='-g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer' \
        LDFLAGS='-fsanitize=address,undefined' >configure.log 2>&1) \
        || { tail -20 "$BUILD/configure.log"; echo "fuzz: 0 passed, 1 failed"; exit 1; }
fi
if ! make -C "$BUILD" -j2 tests/fuzz/fuzz_xml tests/fuzz/fuzz_wbxml tests/fuzz/fuzz_imap tests/fuzz/fuzz_email tests/fuzz/fuzz_mime tests/fuzz/fuzz_filter tests/fuzz/fuzz_san tests/fuzz/fuzz_json >"$BUILD/make.log" 2>&1; then
    tail -30 "$BUILD/make.log"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi

for t in xml wbxml imap email mime filter san json; do
    corpus="$BUILD/corpus-$t"
    mkdir -p "$corpus"
    # seed files from tests/corpus, and how many there must be at least
    # (fewer: the corpus is missing or incomplete, and the run would
    # start from nothing, or from an earlier run's leftovers, and pass)
    seeds=0 need=0
    case $t in
    xml)   seeds=$(find "$CORPUS" -name '*.xml' ! -name '*.decoded.xml' \
                   -exec cp {} "$corpus/" \; -print | wc -l); need=130 ;;
    wbxml) seeds=$(find "$CORPUS" -name '*.wbxml' -exec cp {} "$corpus/" \; -print | wc -l)
           need=90 ;;
    imap)  # the target writes its own seeds (real Dovecot responses) here
           export MEMDS_FUZZ_IMAP_SEEDS="$corpus" ;;
    email) export MEMDS_FUZZ_EMAIL_SEEDS="$corpus" ;;
    mime)  export MEMDS_FUZZ_MIME_SEEDS="$corpus" ;;
    filter) export MEMDS_FUZZ_FILTER_SEEDS="$corpus" ;;
    san)   export MEMDS_FUZZ_SAN_SEEDS="$corpus" ;;
    json)  export MEMDS_FUZZ_JSON_SEEDS="$corpus" ;;
    esac
    if [ "$seeds" -lt "$need" ]; then
        echo "fuzz_$t: FAILED, $seeds seed files from $CORPUS, expected at least $need"
        fail=$((fail + 1))
        continue
    fi
    log="$BUILD/fuzz-$t.log"
    rm -f "$BUILD"/crash-$t-*
    # targets with built-in seeds write them when they start: once, so the
    # count below is what the run starts from
    "$BUILD/tests/fuzz/fuzz_$t" -runs=0 "$corpus" >/dev/null 2>&1 || true
    echo "fuzz_$t: ${SECS}s on $(ls "$corpus" | wc -l) inputs"
    # New inputs go to a scratch dir: the corpus stays the seeds (reproducible).
    scratch=$(mktemp -d)
    if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
       UBSAN_OPTIONS=print_stacktrace=1 \
       "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECS" -rss_limit_mb=2048 \
           -timeout=10 -max_len=262144 -artifact_prefix="$BUILD/crash-$t-" \
           -seed="$SEED" -print_final_stats=1 "$scratch" "$corpus" >"$log" 2>&1; then
        execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
        echo "fuzz_$t: ok (${execs:-?} executions)"
        pass=$((pass + 1))
    else
        echo "fuzz_$t: FAILED, see $log; artifacts $BUILD/crash-$t-*"
        grep -E 'INFO: Seed:|ERROR|SUMMARY|runtime error|invariant' "$log" | head -9
        # the input, so that a CI log alone reproduces it
        for a in "$BUILD"/crash-$t-*; do
            [ -f "$a" ] || continue
            echo "input $(basename "$a") ($(stat -c %s "$a") bytes), base64:"
            head -c 4096 "$a" | base64 -w 76
        done
        fail=$((fail + 1))
    fi
    rm -rf "$scratch"
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
