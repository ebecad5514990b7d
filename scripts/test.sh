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
meson test -C "$build" --print-errorlogs --num-processes "$(nproc)" "$@"
