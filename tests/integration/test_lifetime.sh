#!/usr/bin/env bash
# Object lifetimes under clients that do not read: nothing is freed twice,
# a slow reader is paused rather than cut off, a stuck one is closed on a
# deadline, and shutdown never waits on a client.
source "$(dirname "$0")/lib.sh"
CLIENT="$(dirname "$0")/lifetime_client.py"

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

run_tests
