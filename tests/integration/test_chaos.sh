#!/usr/bin/env bash
# Chaos: parallel workers lease and release PostgreSQL and Redis while
# workers, a PostgreSQL server, a Redis server and the daemon itself are
# killed. Then: no database was held by two workers at once, every lease
# started empty and stayed the worker's own, nothing leaked.
source "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || { echo "SKIP: no redis-server"; exit 77; }

CONFIG=("[postgres]" "min_ready = 4" "max_total = 16" "[redis]" "min_ready = 2" "max_total = 8"
        "[daemon]" "health_interval_ms = 200" "health_timeout_ms = 1000")
WORKERS=${CHAOS_WORKERS:-6}
SECONDS_TOTAL=${CHAOS_SECONDS:-24}

# One lease pair per iteration. Exit 3/4 from the command is a violation;
# 5 means the infrastructure failed under us (tolerated: we are killing it).
cat > "$T/check.sh" <<'SH'
#!/bin/sh
id=$1
start=$(date +%s%N)
n=$(psql -XAtqc "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") || exit 5
[ "$n" = 0 ] || { echo "VIOLATION: lease $PGDATABASE started with $n relations"; exit 3; }
k=$(redis-cli --no-auth-warning -u "$REDIS_URL" DBSIZE 2>/dev/null) || exit 5
case "$k" in ''|*[!0-9]*) exit 5 ;; esac
[ "$k" = 0 ] || { echo "VIOLATION: redis lease started with $k keys"; exit 3; }
psql -XAtqc "CREATE TABLE mine (w text); INSERT INTO mine VALUES ('$id')" >/dev/null || exit 5
[ "$(redis-cli --no-auth-warning -u "$REDIS_URL" SET owner "$id")" = OK ] || exit 5
sleep 0.0$((start % 9))
w=$(psql -XAtqc "SELECT w FROM mine") || exit 5
[ "$w" = "$id" ] || { echo "VIOLATION: $PGDATABASE held $w, not $id"; exit 4; }
o=$(redis-cli --no-auth-warning -u "$REDIS_URL" GET owner) || exit 5
[ -z "$o" ] && exit 5   # the server died under us: the key went with it
[ "$o" = "$id" ] || { echo "VIOLATION: redis held $o, not $id"; exit 4; }
# ledger: which database, where, from when to when
echo "pg $PGPORT/$PGDATABASE $start $(date +%s%N)"
echo "redis ${REDIS_URL##*@} $start $(date +%s%N)"
SH
chmod +x "$T/check.sh"

worker() { # id deadline
    set +e # failures are expected here: we are killing things
    local n=0 rc
    while [ "$(date +%s)" -lt "$2" ]; do
        n=$((n + 1))
        "$DBLEASE" run --postgres --redis -- "$T/check.sh" "w$1-$n" >> "$T/ledger.$1" 2>> "$T/err.$1"
        rc=$?
        case $rc in
        0) echo ok >> "$T/count.$1" ;;
        3 | 4) echo "worker $1: violation (exit $rc)" >> "$T/violations" ;;
        *) sleep 0.05 ;; # daemon restarting, server replaced, or we were killed
        esac
    done
}

test_chaos_keeps_every_promise() {
    start_daemon "${CONFIG[@]}"
    deadline=$(($(date +%s) + SECONDS_TOTAL))
    pids=()
    for w in $(seq 1 "$WORKERS"); do
        worker "$w" "$deadline" &
        pids+=($!)
    done
    chaos_step() { sleep "$1"; }
    chaos_step 3
    for _ in 1 2 3; do # workers die mid-lease
        # one of our workers' clients, not any "dblease run" on the machine
        victim=$(for w in "${pids[@]}"; do pgrep -P "$w" -f "$DBLEASE run" || true; done | shuf -n1)
        [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null || true
        chaos_step 1
    done
    pg=$("$DBLEASE" status --json | jq -r '.instances[] | select(.kind == "postgres") | .pid')
    kill -9 "$pg" || true
    chaos_step 4
    rd=$("$DBLEASE" status --json | jq -r '[.instances[] | select(.kind == "redis") | .pid] | first // empty')
    [ -n "$rd" ] && kill -9 "$rd" || true
    chaos_step 3
    kill9_daemon
    start_daemon "${CONFIG[@]}"
    wait "${pids[@]}" || true

    [ ! -s "$T/violations" ] || fail "isolation violated: $(cat "$T/violations" "$T"/ledger.* | grep -i violation | head -5)"
    total=$(cat "$T"/count.* 2>/dev/null | wc -l)
    echo "$total clean lease pairs by $WORKERS workers in ${SECONDS_TOTAL}s of chaos"
    [ "$total" -ge 10 ] || fail "too little got done: $total"

    # No database was held by two workers at once: sort each resource's
    # intervals and check each starts after the previous one ended.
    overlaps=$(cat "$T"/ledger.* | grep -E '^(pg|redis) ' | sort -k2,2 -k3,3n |
        awk '$2 == prev && $3 < end { print $2; bad++ } { if ($2 != prev || $4 > end) end = $4; prev = $2 } END { exit bad > 0 }') ||
        fail "a database was held by two workers at once: $overlaps"

    # Nothing leaked: every attached lease ended with its worker.
    wait_until 5 sh -c "[ \"\$(\"$DBLEASE\" status --json | jq '.leases | length')\" = 0 ]" ||
        fail "leases left: $("$DBLEASE" status --json | jq -c '.leases')"
    stop_daemon
    left=$(for p in /proc/[0-9]*; do
        c=$(readlink "$p/cwd" 2>/dev/null) || continue
        case "$c" in "$STATE"/*) echo "${p#/proc/}" ;; esac
    done)
    [ -z "$left" ] || fail "server processes left after stop: $left"
}

run_tests
