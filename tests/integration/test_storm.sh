#!/usr/bin/env bash
# The storm: one daemon under a randomized mix of careful, careless and
# hostile clients at once (storm.py lists them), then SIGTERM. Promises
# checked throughout and at the end: the daemon never dies and no sanitizer
# reports; status answers within 1 s every time; every well-formed request
# of a reading client gets exactly one reply with its id; no database is
# held by two leases at once; SIGTERM stops it in bounded time and none of
# its servers survive it.
#
#   DBLEASE_STORM_SECONDS  how long (default 150: a few minutes in CI)
#   DBLEASE_STORM_SEED     replay a run: the seed it printed
#   DBLEASE_STORM_ACTORS   a subset, e.g. normal,flood (default all; see storm.py)
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "FAIL: python3 is required"; exit 1; }

SECONDS_TOTAL=${DBLEASE_STORM_SECONDS:-150}
SEED=${DBLEASE_STORM_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
ACTORS=${DBLEASE_STORM_ACTORS:-all}
echo "storm: seed $SEED, $SECONDS_TOTAL s, actors $ACTORS (replay: DBLEASE_STORM_SEED=$SEED)"

test_ledger_check_sees_overlaps() { # (runs first: names sort)
    python3 -B "$(dirname "$0")/storm.py" --self-test
}

test_storm_keeps_every_promise() {
    mkdir -p "$T/churn"
    echo "CREATE TABLE base (x int);" > "$T/churn/001_base.sql"
    chmod -R a+rX "$T/churn"
    redis=()
    if command -v redis-server >/dev/null; then
        redis=("[redis]" "min_ready = 1" "max_total = 4")
    else
        echo "storm: no redis-server, so no redis leases"
    fi
    start_daemon "health_interval_ms = 500" "shutdown_timeout_s = 5" "drain_timeout_s = 5" \
        "[postgres]" "min_ready = 2" "max_total = 8" "${redis[@]}" \
        "[template.churn]" "sql_dir = $T/churn" "min_ready = 1" "max_total = 2"
    rc=0
    python3 -B "$(dirname "$0")/storm.py" "$SOCK" "$STATE" "$T" "$SEED" "$SECONDS_TOTAL" "$ACTORS" || rc=$?
    if ! check_sanitizers 2>/dev/null; then
        grep -m1 -A30 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$STATE/dbleased.log" | grep -E 'ERROR|error|#[0-9]+ ' | head -25
        fail "sanitizer report in the daemon log"
        rc=1
    fi
    # the last errors the daemon logged: why it died or what it refused
    grep -E 'level=(error|fatal)|impossible|Assertion' "$STATE/dbleased.log" | tail -n 5 | sed 's/^/storm: daemon log: /' || true
    grep -c "did not answer a health probe" "$STATE/dbleased.log" |
        sed 's/^/storm: servers killed by the health probe: /' || true
    [ "$rc" = 0 ] || fail "storm broke a promise (exit $rc); replay with DBLEASE_STORM_SEED=$SEED"
}

run_tests
