#!/usr/bin/env bash
# Redis releases, untouched against written (issue 12: an untouched instance
# needs no FLUSHALL). One daemon, one redis-server (max_total = 1), N
# back-to-back lease + release round trips that only read, then N that
# write a key; prints the daemon's own time per release outcome (status
# pools[].releases: from the release to the server being ready again).
#
#   bench/redis_reset.sh [BUILD_DIR] [N]     defaults: build-rel, 200
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build-rel}
n=${2:-200}
command -v redis-server >/dev/null || { echo "no redis-server" >&2; exit 77; }
dir=$(mktemp -d /dev/shm/dblease-redis-bench.XXXXXX)
chmod 0755 "$dir"
stop() {
    if [ -s "$dir/state/dbleased.lock" ]; then
        kill "$(cat "$dir/state/dbleased.lock")" 2>/dev/null || true
        timeout 10 flock "$dir/state/dbleased.lock" true || true
    fi
    rm -rf "$dir"
}
trap stop EXIT
printf '[daemon]\nlog_level = warn\n[redis]\nmin_ready = 1\nmax_total = 1\n' >"$dir/d.ini"
"$build/daemon/dbleased" --config "$dir/d.ini" --socket "$dir/s.sock" --state-dir "$dir/state"
export DBLEASE_SOCKET=$dir/s.sock
cli=$build/client/dblease
for cmd in "GET k" "SET k v"; do
    for _ in $(seq 1 "$n"); do
        url=$("$cli" lease --kind redis)
        # shellcheck disable=SC2086
        redis-cli --no-auth-warning -u "$url" $cmd >/dev/null
        "$cli" release "$url"
    done
done
"$cli" status --json | jq -r '.pools[] | select(.kind == "redis") | .releases as $r |
    ("reused", "flushed") as $o | ($r[$o] | if . > 0 then . else 1 end) as $n |
    "\($o): \($r[$o]) releases, \(($r[$o + "_ms"] / $n * 100 | round) / 100) ms each"'
