#!/usr/bin/env bash
# Breaking things on purpose: servers that die or hang, slow and greedy
# clients, an exhausted pool, a daemon killed with its Redis servers.
source "$(dirname "$0")/lib.sh"

start_daemon "health_interval_ms = 200" "health_timeout_ms = 1000" \
    "[postgres]" "min_ready = 2" "[redis]" "min_ready = 1" "max_total = 4" \
    "[template.one]" "min_ready = 1" "max_total = 1"
# [template.one] has no sql_dir: it sizes a template clients migrate.
"$DBLEASE" template migrate one --hash v1 -- true 2>/dev/null

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
        # Read once: a zombie may be reaped between two reads.
        st=$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null || true)
        if [ -n "$st" ] && [ "$st" != Z ]; then
            fail "process $p of the hung server is still there ($st)"
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
    # (the writer becomes the sleep that holds the connection open; its pid
    # is kept so the test ends it, and only it, when done)
    ( echo "$BASHPID" > "$T/greedy.pid"; for _ in $(seq 1 20000); do echo '{"op":"status"}'; done; exec sleep 30 ) |
        socat -t 30 -u - "UNIX-CONNECT:$SOCK" &
    greedy=$!
    # Its requests stop being read (backpressure) while others are served.
    wait_until 20 grep -q "replies unread; pausing its requests" "$STATE/dbleased.log" || fail "never paused"
    sql "$("$DBLEASE" lease)" "SELECT 1" >/dev/null
    kill "$greedy" "$(cat "$T/greedy.pid")" 2>/dev/null || true
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

# A process as "pid:starttime", so a recycled pid never passes for it.
proc_id() { [ -r "/proc/$1/stat" ] && echo "$1:$(awk '{print $22}' "/proc/$1/stat")"; }
proc_alive() { # pid:starttime
    local p=${1%%:*}
    [ -r "/proc/$p/stat" ] && [ "$(proc_id "$p")" = "$1" ] &&
        [ "$(awk '{print $3}' "/proc/$p/stat")" != Z ]
}

test_sigkilled_daemon_leaves_nothing_behind_after_a_restart() {
    "$DBLEASE" lease --kind redis --wait 10000 >/dev/null
    # Every server process of this run (postmasters, their backends, redis).
    old=""
    for p in $(status | jq -r '.instances[] | .pid'); do
        for q in $p $(pgrep -P "$p" || true); do old="$old $(proc_id "$q" || true)"; done
    done
    [ -n "$(status | jq -r '.instances[] | select(.kind == "redis") | .pid')" ] || fail "no redis server to watch"
    # A mark in each data dir of this run: a dir still marked after the
    # restart is one the new daemon kept (names like pg-1 are reused).
    dirs=$(ls "$STATE/instances")
    [ -n "$dirs" ] || fail "no instance dirs under $STATE/instances"
    for d in $dirs; do touch "$STATE/instances/$d/old-run"; done
    kill9_daemon
    rd_alive() { for p in $old; do proc_alive "$p" && grep -q redis "/proc/${p%%:*}/comm" && return 0; done; return 1; }
    rd_gone() { ! rd_alive; }
    wait_until 10 rd_gone ||
        fail "redis servers outlived the daemon"
    start_daemon "health_interval_ms = 200" "health_timeout_ms = 1000" \
        "[postgres]" "min_ready = 2" "[redis]" "min_ready = 1" "max_total = 4" \
        "[template.one]" "min_ready = 1" "max_total = 1"
    "$DBLEASE" template migrate one --hash v1 -- true 2>/dev/null # a client template: gone with the old daemon
    left=""
    for p in $old; do if proc_alive "$p"; then left="$left ${p%%:*}"; fi; done
    [ -z "$left" ] || fail "server processes of the killed daemon still run: $left ($(ps -o pid,cmd -p ${left// /,} | tail -n +2))"
    kept=$(find "$STATE/instances" -name old-run 2>/dev/null)
    [ -z "$kept" ] || fail "data dirs of the killed daemon kept: $kept"
    [ -z "$(ls "$STATE/instances" | grep -v '^pg-\|^rd-' || true)" ] || fail "stray entries: $(ls "$STATE/instances")"
    # and it leases again, databases that start empty
    url=$("$DBLEASE" lease --wait 10000)
    [ "$(sql "$url" "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")" = 0 ] ||
        fail "a lease after the restart is not empty"
    u=$("$DBLEASE" lease --kind redis --wait 10000)
    [ "$(redis-cli --no-auth-warning -u "$u" PING)" = PONG ] || fail "redis lease after the restart"
}

run_tests
