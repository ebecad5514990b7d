#!/usr/bin/env bash
# Fuzz proto/ (the NDJSON decoder, requests, replies) with libFuzzer for a
# bounded time. Exits 0 if nothing was found, 1 on any crash, sanitizer
# report, leak, timeout or broken invariant, 77 (skip) only when clang or
# libFuzzer is not installed (scripts/deps.sh installs both).
#
#   FUZZ_SECONDS=600 tests/fuzz/run.sh        # default 60
#   FUZZ_BUILD_DIR=/tmp/bf tests/fuzz/run.sh  # default build-fuzz in the repo
#   tests/fuzz/run.sh -seed=1                 # extra flags go to libFuzzer
#
# It builds in its own dir with CC=clang -Dfuzz=enabled (reused by the next
# run), fuzzes a temporary copy of tests/fuzz/corpus (the repo's seeds are
# never modified), and keeps crashing inputs in $FUZZ_BUILD_DIR/artifacts.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
secs=${FUZZ_SECONDS:-60}
clang=${FUZZ_CC:-clang}

# Two runs on one build dir (say, two meson test invocations) would race on
# it: take turns.
mkdir -p "$build"
exec 9>"$build/.run.lock"
flock 9

work=$(mktemp -d "${TMPDIR:-/tmp}/dblease-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Skip only when the toolchain is truly missing; anything else is a failure.
if ! command -v "$clang" >/dev/null 2>&1; then
    echo "SKIP: $clang not found; scripts/deps.sh installs it"
    exit 77
fi
cat >"$work/probe.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }
EOF
if ! "$clang" -fsanitize=fuzzer,address,undefined "$work/probe.c" -o "$work/probe" \
        >"$work/probe.log" 2>&1; then
    cat "$work/probe.log"
    echo "SKIP: $clang cannot link -fsanitize=fuzzer (libFuzzer: libclang-rt-14-dev)"
    exit 77
fi

# The main project's meson.build is configured too, but only the fuzz target
# (proto sources + json-c) is compiled.
if [ ! -f "$build/build.ninja" ]; then
    CC=$clang meson setup "$build" "$root" -Dfuzz=enabled -Dwerror=true \
        --buildtype=debugoptimized >"$work/setup.log" 2>&1 || {
        cat "$work/setup.log"
        echo "FAIL: could not configure $build"
        exit 1
    }
fi
# A dir set up some other way (FUZZ_BUILD_DIR) may lack the target.
if ! grep -q 'fuzz_proto' "$build/build.ninja"; then
    meson configure "$build" -Dfuzz=enabled >"$work/setup.log" 2>&1 || {
        cat "$work/setup.log"
        echo "FAIL: could not enable -Dfuzz in $build (configured without CC=clang?)"
        exit 1
    }
fi
meson compile -C "$build" fuzz_proto >"$work/build.log" 2>&1 || {
    cat "$work/build.log"
    echo "FAIL: could not build fuzz_proto in $build"
    exit 1
}

mkdir -p "$work/corpus" "$build/artifacts"
cp "$here"/corpus/* "$work/corpus/"

# libFuzzer's own exit codes for a finding (77 by default) must not read as
# a skip: make them all 1. Leaks are findings (LeakSanitizer is on by default
# with ASan); so are UBSan reports (-fno-sanitize-recover).
rc=0
"$build/tests/fuzz/fuzz_proto" \
    -max_total_time="$secs" \
    -timeout=5 \
    -rss_limit_mb=2048 \
    -max_len=16384 \
    -use_value_profile=1 \
    -dict="$here/proto.dict" \
    -error_exitcode=1 \
    -timeout_exitcode=1 \
    -artifact_prefix="$build/artifacts/" \
    -print_final_stats=1 \
    "$@" \
    "$work/corpus" >"$work/fuzz.log" 2>&1 || rc=$?

if [ "$rc" -ne 0 ]; then
    # The report and the reproducer, then the end of the log.
    grep -v -E '^#[0-9]+' "$work/fuzz.log" | tail -n 80
    echo "FAIL: fuzz_proto found a problem (exit $rc). Reproduce with:"
    sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/fuzz.log" | while read -r a; do
        echo "  $build/tests/fuzz/fuzz_proto $a"
    done
    echo "then add the input to tests/fuzz/corpus/ and a regression test to tests/unit/."
    exit 1
fi
grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$work/fuzz.log" || true
echo "OK: fuzz_proto ran ${secs}s with no findings"
