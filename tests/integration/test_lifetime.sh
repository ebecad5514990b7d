#!/usr/bin/env bash
# Object lifetimes under clients that do not read: nothing is freed twice,
# a slow reader is paused rather than cut off, a stuck one is closed on a
# deadline, and shutdown never waits on a client.
source "$(dirname "$0")/lib.sh"
CLIENT="$(dirname "$0")/lifetime_client.py"

status_ok() { rpc '{"id":1,"op":"status"}' | grep -q '"ok":true'; }
daemon_alive() { kill -0 "$DAEMON_PID" 2>/dev/null && rpc '{"id":1,"op":"status"}' | grep -q '"ok":true'; }

# An attached lease expires while its session's write queue sits just under
# the old 4 MiB cut-off: the expiry event used to close the session from
# inside lease_end, which freed the lease that lease_end then used again.
test_lease_expiring_on_a_full_session_is_ended_once() {
    start_daemon
    out=$(python3 "$CLIENT" fill-to-event "$SOCK")
    echo "client: $out"
    daemon_alive || fail "daemon died (see $STATE/dbleased.log)"
    check_sanitizers
    [ "$(jq -r .renews <<<"$out")" -gt 0 ] || fail "the client sent no renews: $out"
    # Whatever was queued reaches the client, the event included.
    jq -e '.events | index("lease_expired")' <<<"$out" >/dev/null || fail "no lease_expired event: $out"
    [ "$(jq -r .replies <<<"$out")" = "$(jq -r .renews <<<"$out")" ] || fail "not every renew got its reply: $out"
    stop_daemon
}

# More replies than the old 4 MiB cut-off, none read until the daemon
# stops taking requests: it pauses the client and answers every one later.
test_client_pipelining_without_reading_is_paused_then_answered() {
    start_daemon
    out=$(python3 "$CLIENT" pipeline "$SOCK" 30000)
    echo "client: $out"
    [ "$(jq -r .replies <<<"$out")" = 30000 ] || fail "not every request got its reply: $out"
    jq -e '.in_order and .all_ok' <<<"$out" >/dev/null || fail "replies out of order or failed: $out"
    daemon_alive || fail "daemon died"
    stop_daemon
}

test_client_that_never_reads_is_closed_after_the_stuck_deadline() {
    start_daemon "stuck_client_timeout_s = 2"
    out=$(python3 "$CLIENT" noread "$SOCK" 30000 20)
    echo "client: $out"
    after=$(jq -r .closed_after <<<"$out")
    [ "$after" != null ] || fail "never closed: $out"
    # Not cut off on the spot: closed once stuck for the deadline.
    python3 -c "import sys; sys.exit(not (1.8 <= $after <= 15))" || fail "closed after ${after}s, want ~2s after pausing"
    grep -q "has read none of its replies for 2 s" "$STATE/dbleased.log" || fail "no log line saying why"
    daemon_alive || fail "daemon died"
    stop_daemon
}

# Paused, it is not read, so its death shows as a failed write: its
# attached lease still ends at once (safety promise 1), not at the deadline.
test_paused_client_killed_loses_its_lease_at_once() {
    start_daemon
    coproc LF { exec python3 "$CLIENT" lease-and-flood "$SOCK"; }
    lf_pid=$LF_PID
    read -r line <&"${LF[0]}"
    jq -e .paused <<<"$line" >/dev/null || { kill "$lf_pid"; fail "client was not paused: $line"; }
    kill -KILL "$lf_pid"
    wait "$lf_pid" 2>/dev/null || true
    no_leases() { rpc '{"id":1,"op":"status"}' | jq -e '.leases == []'; }
    wait_until 2 no_leases || fail "lease of a killed client still held: $(rpc '{"id":1,"op":"status"}' | jq -c .leases)"
    daemon_alive || fail "daemon died"
    stop_daemon
}

# Its last replies never read, a closing session used to hold the loop (and
# so SIGTERM) forever in uv_shutdown.
test_sigterm_finishes_while_a_client_does_not_read() {
    start_daemon
    coproc LL { exec python3 "$CLIENT" longline "$SOCK" 3000; }
    ll_pid=$LL_PID
    read -r line <&"${LL[0]}"
    [ "$line" = sent ] || fail "client: $line"
    wait_until 10 grep -q "sent a line over" "$STATE/dbleased.log" || fail "daemon did not see the long line"
    kill -TERM "$DAEMON_PID"
    timeout 20 flock "$STATE/dbleased.lock" true || { kill "$ll_pid"; fail "dbleased still running 20 s after SIGTERM"; }
    kill "$ll_pid" 2>/dev/null || true
    wait "$ll_pid" 2>/dev/null || true
    DAEMON_PID=
    check_sanitizers
}

# A closing session still holds its buffers: it counts against max_clients
# until its connection is really closed (here: at the flush deadline).
test_closing_session_counts_against_max_clients() {
    start_daemon "max_clients = 1"
    coproc LL { exec python3 "$CLIENT" longline "$SOCK" 3000; }
    ll_pid=$LL_PID
    read -r line <&"${LL[0]}"
    wait_until 10 grep -q "sent a line over" "$STATE/dbleased.log" || fail "daemon did not see the long line"
    rpc '{"id":1,"op":"status"}' >/dev/null 2>&1 || true
    grep -q "too many clients (max_clients)" "$STATE/dbleased.log" || { kill "$ll_pid"; fail "a second client was let in"; }
    # Once its flush deadline has closed it, the place is free again.
    wait_until 15 status_ok || { kill "$ll_pid"; fail "still refused after the flush deadline"; }
    kill "$ll_pid"
    wait "$ll_pid" 2>/dev/null || true
    stop_daemon
}

# ---- exactly one reply per waiting lease request, on every way it can end

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
