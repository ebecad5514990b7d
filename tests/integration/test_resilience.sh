#!/usr/bin/env bash
# Breaking things on purpose: servers that die or hang, slow and greedy
# clients, an exhausted pool, a daemon killed with its Redis servers.
source "$(dirname "$0")/lib.sh"

start_daemon "health_interval_ms = 200" "health_timeout_ms = 1000" \
    "[postgres]" "min_ready = 2" "[redis]" "min_ready = 1" "max_total = 4" \
    "[template.one]" "min_ready = 1" "max_total = 1"

status() { "$DBLEASE" status --json; }
pg_pid() { status | jq -r '.instances[] | select(.kind == "postgres" and .state == "running") | .pid'; }
pg_replaced() { local p; p=$(pg_pid); [ -n "$p" ] && [ "$p" != "$1" ]; }
dead() { ! psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

test_killed_postgres_is_replaced_and_its_holders_told() {
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    reply_of holder 1 >/dev/null
    old=$(pg_pid)
    start=$(date +%s%N)
    kill -9 "$old"
    wait_until 10 grep -q '"event":"instance_down"' "$T/holder.out" || fail "no instance_down event"
    wait_until 10 pg_replaced "$old" || fail "postgres not replaced within 10 s"
    url=$("$DBLEASE" lease --wait 10000)
    sql "$url" "SELECT 1" >/dev/null
    echo "replaced and leasing again after $(( ($(date +%s%N) - start) / 1000000 )) ms"
    close_conn holder
}

test_hung_postgres_is_detected_killed_and_replaced() {
    old=$(pg_pid)
    # The postmaster and every backend (each in a session of its own) stop.
    kids=$(pgrep -P "$old" || true)
    kill -STOP "$old" $kids
    wait_until 10 pg_replaced "$old" || { kill -CONT "$old" $kids; fail "hung postgres not replaced"; }
    for p in $old $kids; do
        if [ -r "/proc/$p/stat" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat")" != Z ]; then
            fail "process $p of the hung server is still there"
        fi
    done
    grep -q "did not answer a health probe" "$STATE/dbleased.log" || fail "no hang reported"
    sql "$("$DBLEASE" lease --wait 10000)" "SELECT 1" >/dev/null
}

test_hung_redis_server_is_replaced() {
    j=$("$DBLEASE" lease --kind redis --wait 10000 --json)
    port=$(jq -r .port <<<"$j")
    pid=$(status | jq -r --argjson p "$port" '.instances[] | select(.port == $p) | .pid')
    kill -STOP "$pid"
    gone() { [ -z "$(status | jq -r --argjson p "$port" '.instances[] | select(.port == $p) | .pid')" ]; }
    wait_until 10 gone || { kill -CONT "$pid"; fail "hung redis-server not replaced"; }
    u=$("$DBLEASE" lease --kind redis --wait 10000)
    [ "$(redis-cli --no-auth-warning -u "$u" PING)" = PONG ]
}

test_slow_loris_client_does_not_stall_others() {
    open_conn loris
    printf '{"id":1,"op":"sta' >&"$fd_loris" # half a line, then nothing
    for _ in 1 2 3; do
        sql "$("$DBLEASE" lease)" "SELECT 1" >/dev/null
    done
    close_conn loris
}

test_client_that_never_reads_is_paused_alone() {
    # Pipeline thousands of status requests without reading a byte.
    ( for _ in $(seq 1 20000); do echo '{"op":"status"}'; done; sleep 30 ) |
        socat -t 30 -u - "UNIX-CONNECT:$SOCK" &
    greedy=$!
    # Its requests stop being read (backpressure) while others are served.
    wait_until 20 grep -q "replies unread; pausing its requests" "$STATE/dbleased.log" || fail "never paused"
    sql "$("$DBLEASE" lease)" "SELECT 1" >/dev/null
    kill "$greedy" 2>/dev/null || true
}

test_exhausted_pool_fails_fast_or_times_out_with_exit_75() {
    held=$("$DBLEASE" lease --template one --json | jq -r .id)
    set +e
    "$DBLEASE" lease --template one --wait 0 2>"$T/err0"
    rc0=$?
    "$DBLEASE" lease --template one --wait 300 2>"$T/err1"
    rc1=$?
    set -e
    [ "$rc0" = 75 ] && grep -q pool_exhausted "$T/err0" || fail "wait 0: exit $rc0 $(cat "$T/err0")"
    [ "$rc1" = 75 ] && grep -q timeout "$T/err1" || fail "wait 300: exit $rc1 $(cat "$T/err1")"
    "$DBLEASE" release "$held"
}

test_waiters_are_served_first_come_first_served() {
    held=$("$DBLEASE" lease --template one --wait 10000 --json | jq -r .id)
    open_conn first
    open_conn second
    send first '{"id":1,"op":"lease","template":"one","wait_ms":20000}'
    wait_until 5 sh -c "status() { \"$DBLEASE\" status --json; }; [ \"\$(status | jq '.pools[] | select(.template == \"one\") | .waiting')\" = 1 ]"
    send second '{"id":1,"op":"lease","template":"one","wait_ms":20000}'
    "$DBLEASE" release "$held"
    reply_of first 1 | jq -e .lease.id >/dev/null || fail "first waiter not served"
    ! grep -q '"id":1' "$T/second.out" || fail "second served before the first"
    close_conn first
    reply_of second 1 | jq -e .lease.id >/dev/null || fail "second waiter not served after the first left"
    close_conn second
}

test_sigkilled_daemon_takes_its_redis_servers_along() {
    "$DBLEASE" lease --kind redis --wait 10000 >/dev/null
    pids=$(status | jq -r '.instances[] | .pid')
    kill -9 "$(cat "$STATE/dbleased.lock")"
    alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]; }
    none_alive() { for p in $pids; do if alive "$p"; then return 1; fi; done; }
    wait_until 10 none_alive || fail "servers outlived the daemon: $pids"
    start_daemon "health_interval_ms = 200" "health_timeout_ms = 1000" \
        "[postgres]" "min_ready = 2" "[redis]" "min_ready = 1" "max_total = 4" \
        "[template.one]" "min_ready = 1" "max_total = 1"
    [ -z "$(ls "$STATE/instances" | grep -v '^pg-\|^rd-' || true)" ]
}

run_tests
