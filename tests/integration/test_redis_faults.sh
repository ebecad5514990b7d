#!/usr/bin/env bash
# Redis servers that die or hang while the daemon talks to them: killed with
# commands in flight, SIGSTOPped, crashed, killed mid-rotation, or stopped
# while a reply is pending. Slots never wedge, holders are told (a crash
# with its last words), SIGTERM finishes.
source "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null || { echo "SKIP: no redis-server (apt-get install redis-server)"; exit 77; }

# Short deadlines: a silent server is given up on within a second or two.
FAST=("health_interval_ms = 200" "health_timeout_ms = 1000")
start_daemon "${FAST[@]}" "[redis]" "min_ready = 1" "max_total = 8"

# Tests run in subshells: what the exit trap must undo is kept in files.
# Servers a test SIGSTOPped go on at exit, whatever happened.
trap 'for p in $(cat "$T/stopped" 2>/dev/null); do kill -CONT "$p" 2>/dev/null || true; done; kill_db_daemons; cleanup' EXIT

server_pid() { # port → the pid of the redis-server serving it
    "$DBLEASE" status --json | jq -r --argjson p "$1" '.instances[] | select(.kind == "redis" and .port == $p) | .pid'
}
redis_pool() { # field → that count of the redis pool
    "$DBLEASE" status --json | jq -r ".pools[] | select(.kind == \"redis\") | .$1"
}
settled() { # no slot rotating or creating, and at least $1 ready
    [ "$(redis_pool resetting)" = 0 ] && [ "$(redis_pool creating)" = 0 ] &&
        [ "$(redis_pool ready)" -ge "$1" ]
}
stop_server() { echo "$1" >>"$T/stopped"; kill -STOP "$1"; }
dead() { ! [ -r "/proc/$1/stat" ] || [ "$(cut -d' ' -f3 "/proc/$1/stat")" = Z ]; }
# SIGTERM, and the daemon must be gone within $1 seconds.
sigterm_exits_within() { # seconds [state dir]
    local state=${2:-$STATE} pid
    pid=$(cat "$state/dbleased.lock")
    kill -TERM "$pid"
    timeout "$1" flock "$state/dbleased.lock" true || fail "dbleased did not exit within $1 s of SIGTERM"
    check_sanitizers "$state"
}
lease_json() { "$DBLEASE" lease --kind redis --wait 10000 --json; }

test_sigstopped_server_is_given_up_and_its_holder_told() {
    open_conn holder
    send holder '{"id":1,"op":"lease","kind":"redis"}'
    port=$(reply_of holder 1 | jq -r .lease.port)
    pid=$(server_pid "$port")
    stop_server "$pid"
    wait_until 10 grep -q '"event":"instance_down"' "$T/holder.out" || fail "no instance_down event"
    wait_until 10 dead "$pid" || fail "the hung redis-server $pid was left running"
    wait_until 15 settled 1 || fail "pool did not recover: $("$DBLEASE" status --json | jq -c .pools)"
    close_conn holder
    sigterm_exits_within 15
    start_daemon "${FAST[@]}" "[redis]" "min_ready = 1" "max_total = 8"
}

# A redis-server that crashes leaves its evidence, as a PostgreSQL server
# does: its last words (the crash line of its bug report) in the holder's
# instance_down and the daemon's log, and its log kept in <state>/logs.
test_a_crashed_server_says_why_and_keeps_its_log() {
    open_conn holder
    send holder '{"id":1,"op":"lease","kind":"redis"}'
    port=$(reply_of holder 1 | jq -r .lease.port)
    pid=$(server_pid "$port")
    kill -SEGV "$pid"
    wait_until 10 grep -q '"event":"instance_down"' "$T/holder.out" || fail "no instance_down event"
    ev=$(grep instance_down "$T/holder.out" | head -n1)
    jq -e '.message | test("crashed by signal: 11")' <<<"$ev" >/dev/null ||
        fail "the event does not say how it died: $ev"
    jq -e '.message | test("/logs/")' <<<"$ev" >/dev/null || fail "the event does not say where its log is: $ev"
    grep -q "crashed by signal: 11" "$STATE/dbleased.log" || fail "the daemon's log does not say how it died"
    kept() { grep -ql "crashed by signal" "$STATE"/logs/*.log 2>/dev/null; }
    wait_until 10 kept || fail "the crashed server's log is not kept: $(ls -la "$STATE/logs" 2>&1)"
    close_conn holder
    wait_until 15 settled 1 || fail "pool did not recover: $("$DBLEASE" status --json | jq -c .pools)"
}

# Commands queued on the admin connection and unread by a server that is then
# killed: the socket reports an error (ECONNRESET), not an end of file.
test_servers_killed_with_commands_in_flight_do_not_wedge_slots() {
    ids=() pids=()
    for _ in 1 2 3; do
        j=$(lease_json)
        ids+=("$(jq -r .id <<<"$j")")
        pids+=("$(server_pid "$(jq -r .port <<<"$j")")")
    done
    for p in "${pids[@]}"; do stop_server "$p"; done
    for id in "${ids[@]}"; do "$DBLEASE" release "$id"; done # resets queue, unread
    for p in "${pids[@]}"; do kill -9 "$p"; done
    wait_until 15 settled 1 || fail "slots wedged: $("$DBLEASE" status --json | jq -c .pools)"
    j=$(lease_json)
    [ "$(jq -r .port <<<"$j")" != null ] || fail "no lease after the storm"
    sigterm_exits_within 15
    start_daemon "${FAST[@]}" "[redis]" "min_ready = 1" "max_total = 8"
}

# A second daemon in its own dir ($DB), beside the first; killed at exit if
# a test left it wedged.
start_other_daemon() { # name isolation health_interval_ms
    DB="$T/db-$1"
    mkdir -p "$DB"
    printf '[daemon]\ncache_dir = %s\nlog_level = debug\nhealth_interval_ms = %s\nhealth_timeout_ms = 1000\n[redis]\nisolation = %s\nmin_ready = 2\nmax_total = 8\n' \
        "$CACHE" "$3" "$2" > "$DB/db.ini"
    "$DBLEASED" --config "$DB/db.ini" --socket "$DB/db.sock" --state-dir "$DB/state"
    export DBLEASE_SOCKET="$DB/db.sock" SOCK="$DB/db.sock"
}
kill_db_daemons() {
    for db in "$T"/db-*; do
        if [ -s "$db/state/dbleased.lock" ] && ! flock -n "$db/state/dbleased.lock" true; then
            kill -9 "$(cat "$db/state/dbleased.lock")" 2>/dev/null || true
        fi
    done
}

test_shared_server_killed_mid_rotation_ends_leases_and_recovers() {
    start_other_daemon killed db 200
    open_conn holder
    send holder '{"id":1,"op":"lease","kind":"redis"}'
    port=$(reply_of holder 1 | jq -r .lease.port)
    pid=$(server_pid "$port")
    ids=()
    for _ in 1 2 3; do ids+=("$(lease_json | jq -r .id)"); done
    stop_server "$pid"
    for id in "${ids[@]}"; do "$DBLEASE" release "$id"; done # CLIENT LIST, unread
    kill -9 "$pid"
    wait_until 10 grep -q '"event":"instance_down"' "$T/holder.out" || fail "no instance_down event"
    grep instance_down "$T/holder.out" | head -n1 | jq -e '.message | test("redis-server .* exited")' \
        >/dev/null || fail "the holder is not told why: $(grep instance_down "$T/holder.out")"
    wait_until 20 settled 2 || fail "slots wedged: $("$DBLEASE" status --json | jq -c .pools)"
    [ "$(lease_json | jq -r .port)" != "$port" ] || fail "a lease on the dead server"
    close_conn holder
    sigterm_exits_within 15 "$DB/state"
}

test_shutdown_while_a_reply_is_pending_on_the_shared_server() {
    start_other_daemon pending db 200
    id=$(lease_json | jq -r .id)
    pid=$("$DBLEASE" status --json | jq -r '.instances[] | select(.kind == "redis") | .pid')
    stop_server "$pid"
    "$DBLEASE" release "$id" # its CLIENT LIST waits on the stopped server
    kill -TERM "$(cat "$DB/state/dbleased.lock")"
    wait_until 5 grep -q "shutting down" "$DB/state/dbleased.log" || fail "SIGTERM not taken"
    kill -CONT "$pid"
    timeout 15 flock "$DB/state/dbleased.lock" true || fail "dbleased did not exit after SIGTERM"
    check_sanitizers "$DB/state"
    if grep -q "SEGV\|Segmentation" "$DB/state/dbleased.log"; then fail "the daemon crashed"; fi
    wait_until 10 dead "$pid" || fail "the shared redis-server survived"
}

shared_pid() { "$DBLEASE" status --json | jq -r '.instances[] | select(.kind == "redis" and .state == "running") | .pid'; }
new_shared_server() { # old pid → a running shared server with another pid
    local p
    p=$(shared_pid)
    [ -n "$p" ] && [ "$p" != "$1" ]
}

# Clients lease and release as fast as they can while the shared server is
# killed again and again: whatever the clients saw, nothing stays wedged.
test_lease_release_storm_survives_repeated_kills() {
    start_other_daemon storm db 200
    for w in 1 2 3 4; do
        (for _ in $(seq 1 20); do
            id=$("$DBLEASE" lease --kind redis --wait 2000 --json 2>/dev/null | jq -r .id) || continue
            "$DBLEASE" release "$id" 2>/dev/null || true
        done) &
        eval "worker_$w=$!"
    done
    for _ in 1 2 3; do
        wait_until 10 new_shared_server "" || fail "no shared server"
        pid=$(shared_pid)
        kill -9 "$pid"
        wait_until 10 new_shared_server "$pid" || fail "the shared server was not restarted"
    done
    for w in 1 2 3 4; do eval "wait \$worker_$w" || true; done
    wait_until 20 settled 2 || fail "slots wedged: $("$DBLEASE" status --json | jq -c .pools)"
    [ "$(lease_json | jq -r .port)" != null ] || fail "no lease after the storm"
    sigterm_exits_within 15 "$DB/state"
}

# No health probe for minutes: only the commands' own deadline can notice.
test_commands_to_a_hung_server_fail_at_their_deadline() {
    start_other_daemon deadline instance 600000
    j=$(lease_json)
    pid=$(server_pid "$(jq -r .port <<<"$j")")
    stop_server "$pid"
    "$DBLEASE" release "$(jq -r .id <<<"$j")" # its reset waits on the stopped server
    wait_until 10 dead "$pid" || fail "the hung redis-server $pid was left running"
    grep -q "no reply within 1000 ms" "$DB/state/dbleased.log" || fail "no deadline in the log"
    wait_until 15 settled 2 || fail "slot wedged: $("$DBLEASE" status --json | jq -c .pools)"
    sigterm_exits_within 15 "$DB/state"
}

run_tests
