#!/usr/bin/env bash
# Nothing outlives a dead daemon: containers carry their owner's instance id
# and how to prove it dead; any daemon on the same engine removes a dead
# owner's containers, never a live one's, whatever its state dir.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../containers/lib.sh"

CONFIG=("[postgres]" "runtime = docker" "docker_host = $DOCKER_HOST"
        "image = localhost/dblease-postgres:15" "min_ready = 1" "start_timeout_s = 60")

# Run a lib.sh helper against a second daemon: its own state dir and socket.
as() { # name command…
    local STATE="$T/$1" SOCK="$T/$1.sock"
    local -x DBLEASE_SOCKET="$T/$1.sock"
    shift
    "$@"
}
gone() { ! our_containers | grep -qx "$1"; }

test_a_killed_daemon_s_containers_are_removed_by_a_stranger_and_live_ones_kept() {
    as a start_daemon "${CONFIG[@]}"
    dead_ones=$(our_containers)
    as live start_daemon "${CONFIG[@]}"
    live_ones=$(our_containers | grep -vxF "$dead_ones")
    [ -n "$dead_ones" ] && [ -n "$live_ones" ] || fail "no containers: $(our_containers)"
    as a kill9_daemon
    # A fresh state dir: nothing ties it to the killed daemon but the engine.
    as b start_daemon "${CONFIG[@]}"
    for c in $dead_ones; do
        wait_until 30 gone "$c" || fail "container ${c:0:12} of the killed daemon survived"
    done
    for c in $live_ones; do
        our_containers | grep -qx "$c" || fail "the live daemon's container ${c:0:12} was removed"
    done
    as live sql "$(as live "$DBLEASE" lease --wait 30000)" "SELECT 1" >/dev/null
    grep -q "owner .* is dead" "$T/b/dbleased.log" || fail "the sweep did not say why it removed"
    as b stop_daemon
    as live stop_daemon
    [ -z "$(our_containers)" ] || fail "containers left after stop: $(our_containers)"
}

run_tests
