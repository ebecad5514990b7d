#!/usr/bin/env bash
# Object lifetimes under clients that do not read: nothing is freed twice,
# a slow reader is paused rather than cut off, a stuck one is closed on a
# deadline, and shutdown never waits on a client.
source "$(dirname "$0")/lib.sh"
CLIENT="$(dirname "$0")/lifetime_client.py"

status_ok() { rpc '{"id":1,"op":"status"}' | grep -q '"ok":true'; }
daemon_alive() { kill -0 "$DAEMON_PID" 2>/dev/null && status_ok; }

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

# A client that keeps its connection open and idle (a test worker between
# tests, holding detached leases) does not hold the stop up: its replies are
# flushed and it is closed, without waiting for it to hang up first.
test_sigterm_does_not_wait_for_idle_clients_to_hang_up() {
    start_daemon
    coproc IDLE { exec python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"{\"id\":1,\"op\":\"lease\",\"detach\":true}\n")
print("leased" if b"\"ok\":true" in s.recv(65536) else "refused", flush=True)
time.sleep(60)' "$SOCK"; }
    idle_pid=$IDLE_PID
    read -r line <&"${IDLE[0]}"
    [ "$line" = leased ] || { kill "$idle_pid"; fail "client: $line"; }
    kill -TERM "$DAEMON_PID"
    # The flush deadline is 5 s: an exit well before it shows nobody waited on it.
    timeout 3 flock "$STATE/dbleased.lock" true || { kill "$idle_pid"; fail "dbleased waited on an idle client to hang up"; }
    kill "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
    DAEMON_PID=
    check_sanitizers
}

# A closing session still holds its buffers: it counts against max_clients
# until its connection is really closed (here: at the flush deadline). The
# second client is not an admin: root and the daemon's uid may go past
# max_clients (server/caps.h).
status_ok_as_nobody() {
    printf '%s\n' '{"id":1,"op":"status"}' | setpriv --reuid=nobody --regid=nogroup --clear-groups \
        socat -t 5 - "UNIX-CONNECT:$SOCK" | grep -q '"ok":true'
}
test_closing_session_counts_against_max_clients() {
    [ "$(id -u)" = 0 ] || { skip "not root: no non-admin peer to refuse"; return 0; }
    start_daemon "max_clients = 1" "socket_mode = 0666"
    coproc LL { exec python3 "$CLIENT" longline "$SOCK" 3000; }
    ll_pid=$LL_PID
    read -r line <&"${LL[0]}"
    wait_until 10 grep -q "sent a line over" "$STATE/dbleased.log" || fail "daemon did not see the long line"
    status_ok_as_nobody || true
    grep -q "too many clients (max_clients)" "$STATE/dbleased.log" || { kill "$ll_pid"; fail "a second client was let in"; }
    # Once its flush deadline has closed it, the place is free again.
    wait_until 15 status_ok_as_nobody || { kill "$ll_pid"; fail "still refused after the flush deadline"; }
    kill "$ll_pid"
    wait "$ll_pid" 2>/dev/null || true
    stop_daemon
}

run_tests
