#!/usr/bin/env bash
# dblease vs Testcontainers (issue 15): examples/node's Vitest suite (8 test
# files, 4 workers, each file needing a migrated PostgreSQL database and a
# Redis) run both ways, alternating, on the same machine:
#   dblease         a clone of the migrated template + a Redis database per
#                   file, leased from a dbleased started here (process
#                   runtime, state dir on tmpfs)
#   testcontainers  the npm `testcontainers` package (10.28, @testcontainers/
#                   postgresql and /redis) starting a PostgreSQL and a Redis
#                   container per file against Podman's Docker-compatible
#                   API (overlay storage on tmpfs, bridge networking,
#                   published ports), migrations run into each
# Prints the wall time of each `vitest run` and the per-file setup times,
# and writes them as JSON to bench/results/testcontainers.json.
#
#   bench/testcontainers/run.sh [--build-dir DIR] [--runs N]
#
# Images: no registry is reachable here, so the containers run the
# look-alike images tests/containers/build-images.sh makes from the host's
# PostgreSQL 15 and Redis 7 (same entrypoint interface as the official
# ones: initdb on first start). Exits 77 when Podman or Node is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=3
build_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) build_dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    *) echo "usage: bench/testcontainers/run.sh [--build-dir DIR] [--runs N]" >&2; exit 2 ;;
    esac
    shift
done
command -v node >/dev/null && command -v npm >/dev/null || { echo "bench: node and npm are required" >&2; exit 77; }

if [ -z "$build_dir" ]; then
    build_dir=$root/build-rel
    [ -f "$build_dir/build.ninja" ] || meson setup "$build_dir" "$root" --buildtype=release >/dev/null
    meson compile -C "$build_dir" >/dev/null
fi
daemon=$build_dir/daemon/dbleased

shm=/dev/shm
[ -d $shm ] && [ -w $shm ] || shm=${TMPDIR:-/tmp}
work=$(mktemp -d "$shm/dblease-tcbench.XXXXXX")
chmod 755 "$work"
podman_dir=${BENCH_PODMAN_DIR:-$shm/dblease-tcbench-podman}
daemon_pid=""
cleanup() {
    set +e
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null
        for _ in $(seq 200); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.05; done
    fi
    "$root/tests/containers/podman-down.sh" "$podman_dir" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# The engine: overlay storage (what Docker uses; vfs would copy each image
# per container and make Testcontainers look slower than it is).
env_out=$(PODMAN_STORAGE_DRIVER=overlay "$root/tests/containers/podman-up.sh" "$podman_dir") || exit $?
eval "$env_out"
"$root/tests/containers/build-images.sh" "$podman_dir" >&2 || exit $?
export TESTCONTAINERS_RYUK_DISABLED=true

# Node packages: pinned by each package-lock.json.
for d in "$here" "$root/examples/node"; do
    [ -d "$d/node_modules" ] || (cd "$d" && npm ci --no-audit --no-fund --prefer-offline >/dev/null)
done

# The daemon: the default pool and Redis, as `dblease` users run it.
cat >"$work/dbleased.conf" <<CONF
[daemon]
cache_dir = $work/cache
[redis]
min_ready = 8
CONF
"$daemon" --config "$work/dbleased.conf" --socket "$work/s" --state-dir "$work/st" >"$work/start.out" 2>&1 ||
    { cat "$work/start.out" "$work/st/dbleased.log" >&2 2>/dev/null; exit 1; }
daemon_pid=$(cat "$work/st/dbleased.lock")
export DBLEASE_SOCKET=$work/s DBLEASE_REDIS=1

times=$work/times.ndjson
walls=$work/walls.ndjson
: >"$times"; : >"$walls"
suite() { # APPROACH RUN
    local t0 t1
    t0=$(date +%s%N)
    (cd "$root/examples/node" && BENCH_APPROACH=$1 BENCH_TIMES=$times \
        npx vitest run --config "$here/vitest.config.mjs" --reporter=dot >"$work/$1-$2.out" 2>&1) ||
        { cat "$work/$1-$2.out" >&2; echo "bench: the $1 run failed" >&2; exit 1; }
    t1=$(date +%s%N)
    echo "bench: $1 run $2: $(grep -a 'Duration' "$work/$1-$2.out" | tr -s ' ')" >&2
    jq -cn --arg a "$1" --argjson r "$2" --argjson s "$(( (t1 - t0) / 1000000 ))" \
        '{approach:$a, run:$r, wall_ms:$s}' >>"$walls"
}

# One untimed round each: the template is built, the images are unpacked.
suite dblease 0
suite testcontainers 0
: >"$times"; : >"$walls"
for r in $(seq "$runs"); do
    suite dblease "$r"
    suite testcontainers "$r"
    echo "bench: run $r of $runs done" >&2
done

mkdir -p "$root/bench/results"
jq -n --slurpfile w "$walls" --slurpfile t "$times" --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" '
  def med: sort | .[length/2|floor];
  def pct(p): sort | .[((length-1)*p)|round];
  def per(a): {
    wall_ms_median: ([$w[] | select(.approach==a) | .wall_ms] | med),
    wall_ms: [$w[] | select(.approach==a) | .wall_ms],
    setup_ms_p50: ([$t[] | select(.approach==a) | .setup_ms] | pct(0.5)),
    setup_ms_p95: ([$t[] | select(.approach==a) | .setup_ms] | pct(0.95)),
    files: ([$t[] | select(.approach==a)] | length)};
  {suite: "examples/node: 8 files x 3 tests, 4 workers, postgres + redis per file",
   load: $load, dblease: per("dblease"), testcontainers: per("testcontainers")}
  | . + {speedup: (.testcontainers.wall_ms_median / .dblease.wall_ms_median)}' \
    >"$root/bench/results/testcontainers.json"
jq -r '"suite wall time, median of \(.dblease.wall_ms|length): dblease \(.dblease.wall_ms_median) ms, testcontainers \(.testcontainers.wall_ms_median) ms: \(.speedup*100|round/100)x",
  "per-file setup p50/p95: dblease \(.dblease.setup_ms_p50|round)/\(.dblease.setup_ms_p95|round) ms, testcontainers \(.testcontainers.setup_ms_p50|round)/\(.testcontainers.setup_ms_p95|round) ms (load \(.load))"' \
    "$root/bench/results/testcontainers.json"
