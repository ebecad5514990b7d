#!/usr/bin/env bash
# dblease stop | drain | reload against a real daemon: the way to stop one
# daemon without `pkill`, which would end every user's.
source "$(dirname "$0")/lib.sh"

# The daemon holds its lock until its last moment (a pid could be a zombie
# that nobody reaps here).
daemon_alive() { ! flock -n "$STATE/dbleased.lock" true; }
draining() { [ "$("$DBLEASE" status --json | jq .daemon.draining)" = true ]; }

test_stop_drains_then_returns_once_the_daemon_has_exited() {
    start_daemon "drain_timeout_s = 60"
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    reply_of holder 1 >/dev/null
    # Without the holder's fifo: closing it must reach its socat.
    (
        eval "exec $fd_holder>&-"
        exec "$DBLEASE" stop >"$T/stop.out" 2>&1
    ) &
    stop_pid=$!
    wait_until 10 draining || fail "stop did not start a drain"
    kill -0 "$stop_pid" 2>/dev/null || fail "stop returned while a lease was still attached"
    daemon_alive || fail "the daemon exited before its attached lease ended"
    close_conn holder
    # Well before drain_timeout_s: the drain ended with the last lease.
    wait_until 20 eval '! kill -0 '"$stop_pid" || fail "stop still waits after the last lease ended"
    wait "$stop_pid" || fail "stop failed: $(cat "$T/stop.out")"
    ! daemon_alive || fail "stop returned before the daemon exited"
    [ -z "$(postgres_procs)" ] || fail "postgres left after stop"
    [ ! -e "$SOCK" ] || fail "the socket is still there"
    DAEMON_PID=
}

test_stop_now_ends_attached_leases_at_once() {
    start_daemon "drain_timeout_s = 60"
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    reply_of holder 1 >/dev/null
    timeout 30 "$DBLEASE" stop --now || fail "stop --now failed"
    ! daemon_alive || fail "stop --now returned before the daemon exited"
    close_conn holder
    DAEMON_PID=
}

test_stop_gives_up_at_its_timeout_and_says_what_to_do() {
    start_daemon "drain_timeout_s = 60"
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    reply_of holder 1 >/dev/null
    set +e
    "$DBLEASE" stop --timeout 1 2>"$T/stop.err"
    rc=$?
    set -e
    cat "$T/stop.err"
    [ "$rc" = 75 ] || fail "exit $rc, not 75"
    grep -q -- "--now" "$T/stop.err" || fail "the message does not mention --now"
    daemon_alive || fail "the daemon was not draining but gone"
    close_conn holder
}

test_drain_returns_at_once_and_the_daemon_takes_no_new_lease() {
    start_daemon "drain_timeout_s = 60"
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    reply_of holder 1 >/dev/null
    timeout 10 "$DBLEASE" drain || fail "drain failed or did not return"
    draining || fail "not draining"
    set +e
    "$DBLEASE" lease --wait 0 2>"$T/lease.err"
    rc=$?
    set -e
    [ "$rc" = 1 ] && grep -q shutting_down "$T/lease.err" || fail "leased while draining: $rc"
    close_conn holder
}

# The daemon takes a second drain as "stop now"; stop must not send one.
test_stop_after_drain_still_lets_attached_leases_finish() {
    start_daemon "drain_timeout_s = 60"
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    reply_of holder 1 >/dev/null
    "$DBLEASE" drain
    set +e
    "$DBLEASE" stop --timeout 1 2>"$T/stop.err"
    rc=$?
    set -e
    [ "$rc" = 75 ] || fail "stop after drain: exit $rc, $(cat "$T/stop.err")"
    draining || fail "stop after drain stopped the daemon at once"
    close_conn holder
}

test_reload_rereads_the_configuration() {
    start_daemon "[postgres]" "min_ready = 1"
    sed -i 's/^min_ready = 1$/min_ready = 2/' "$T/dbleased.ini"
    "$DBLEASE" reload || fail "reload failed"
    grep -q "min_ready 1 -> 2" "$STATE/dbleased.log" || fail "the new min_ready was not applied"
}

test_others_are_told_who_may_stop_the_daemon() {
    [ "$(id -u)" = 0 ] || return 0
    start_daemon "socket_mode = 0666"
    mkdir -p "$T/bin" && cp "$DBLEASE" "$T/bin/dblease" && chmod 0755 "$T/bin" "$T/bin/dblease"
    for cmd in stop drain reload; do
        set +e
        setpriv --reuid=nobody --regid=nogroup --clear-groups env DBLEASE_SOCKET="$SOCK" \
            "$T/bin/dblease" "$cmd" 2>"$T/err"
        rc=$?
        set -e
        cat "$T/err"
        [ "$rc" = 1 ] || fail "$cmd by nobody: exit $rc"
        grep -q "root" "$T/err" && grep -q "uid 0" "$T/err" || fail "$cmd: the message does not name who may"
    done
    daemon_alive || fail "nobody stopped the daemon"
}

run_tests
