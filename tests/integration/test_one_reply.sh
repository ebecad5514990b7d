#!/usr/bin/env bash
# Exactly one reply per request (PROTOCOL.md), on every way a lease request
# waiting for a database can end: drain, stop, its connection cut, the
# instance lost.
source "$(dirname "$0")/lib.sh"

status_ok() { rpc '{"id":1,"op":"status"}' | grep -q '"ok":true'; }
daemon_alive() { kill -0 "$DAEMON_PID" 2>/dev/null && status_ok; }
replies_to() { grep -c "\"id\":$2[,}]" "$T/$1.out" || true; }
code_in() { sed -n 's/.*"code":"\([a-z_]*\)".*/\1/p' <<<"$1"; }

# A pool of one database, leased on connection A; B waits for another.
one_leased_one_waiting() {
    start_daemon "drain_timeout_s = 2" "[postgres]" "min_ready = 1" "max_total = 1"
    open_conn A
    send A '{"id":1,"op":"lease"}'
    reply_of A 1 | grep -q '"ok":true' || fail "first lease refused"
    open_conn B
    send B '{"id":7,"op":"lease","wait_ms":30000}'
    b_waits() { rpc '{"id":1,"op":"status"}' | grep -q '"waiting":1'; }
    wait_until 10 b_waits || fail "B is not waiting"
}

test_waiting_request_is_answered_when_the_daemon_drains() {
    one_leased_one_waiting
    rpc '{"id":1,"op":"drain"}' | grep -q '"ok":true' || fail "drain refused"
    r=$(reply_of B 7) || fail "no reply to the waiting request after drain"
    [ "$(code_in "$r")" = shutting_down ] || fail "reply: $r"
    close_conn A
    wait_until 20 flock -n "$STATE/dbleased.lock" true || fail "daemon did not finish draining"
    [ "$(replies_to B 7)" = 1 ] || fail "$(replies_to B 7) replies to one request"
    DAEMON_PID=
    check_sanitizers
}

test_waiting_request_is_answered_when_the_daemon_stops() {
    one_leased_one_waiting
    kill -INT "$DAEMON_PID"
    r=$(reply_of B 7) || fail "no reply to the waiting request on SIGINT"
    [ "$(code_in "$r")" = shutting_down ] || fail "reply: $r"
    timeout 20 flock "$STATE/dbleased.lock" true || fail "daemon did not stop"
    [ "$(replies_to B 7)" = 1 ] || fail "$(replies_to B 7) replies to one request"
    DAEMON_PID=
    check_sanitizers
}

test_waiting_request_is_answered_when_its_connection_is_cut() {
    one_leased_one_waiting
    send B "$(head -c 70000 /dev/zero | tr '\0' x)"
    r=$(reply_of B 7) || fail "no reply to the waiting request before the connection closed"
    [ "$(code_in "$r")" = line_too_long ] || fail "reply: $r"
    [ "$(replies_to B 7)" = 1 ] || fail "$(replies_to B 7) replies to one request"
    daemon_alive || fail "daemon died"
    stop_daemon
}

test_waiting_request_is_answered_when_the_instance_is_lost() {
    one_leased_one_waiting
    send B '{"id":8,"op":"lease","wait_ms":3000}'
    kill -KILL "$(head -n1 "$STATE"/instances/*/data/postmaster.pid)"
    reply_of B 8 >/dev/null || fail "no reply to the request waiting while postgres died"
    r=$(reply_of A 1)
    wait_until 10 grep -q '"event":"instance_down"' "$T/A.out" || fail "A was not told its lease ended"
    [ "$(replies_to B 8)" = 1 ] || fail "$(replies_to B 8) replies to one request"
    daemon_alive || fail "daemon died"
    stop_daemon
}

run_tests
