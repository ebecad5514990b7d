#!/usr/bin/env bash
# Every test dblease has: cmocka unit tests and the integration suite (real
# PostgreSQL), built with -Werror under ASan+UBSan. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

build=${DBLEASE_BUILD_DIR:-build-asan}
if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
fi
meson compile -C "$build"
rc=0
meson test -C "$build" --print-errorlogs --num-processes "$(nproc)" "$@" || rc=$?
# One summary line in the form every CI reader understands.
log="$build/meson-logs/testlog.json"
if [ -f "$log" ]; then
    passed=$(jq -s '[.[] | select(.result == "OK" or .result == "EXPECTEDFAIL")] | length' "$log")
    failed=$(jq -s '[.[] | select(.result != "OK" and .result != "EXPECTEDFAIL" and .result != "SKIP")] | length' "$log")
    skipped=$(jq -s '[.[] | select(.result == "SKIP")] | length' "$log")
    echo "$passed passed, $failed failed, $skipped skipped"
fi
exit "$rc"
