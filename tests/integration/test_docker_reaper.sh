#!/usr/bin/env bash
# Nothing outlives a dead daemon: containers carry their owner's instance id
# and how to prove it dead; any daemon on the same engine removes a dead
# owner's containers, never a live one's, whatever its state dir. Proof is
# the owner's pid where the sweeper shares its boot and pid namespace, else
# its heartbeat (a beacon container renamed every beat). One scene, four
# daemons started at once (containers are slow here): two in the host's pid
# namespace, two each in a namespace of its own, as in a job container or
# on another host; one of each pair is killed with -9.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../containers/lib.sh"
command -v unshare >/dev/null || { echo "SKIP: no unshare"; exit 77; }

CONFIG=("[postgres]" "runtime = docker" "docker_host = $DOCKER_HOST"
        "image = localhost/dblease-postgres:15" "min_ready = 1" "docker_heartbeat_s = 2"
        "start_timeout_s = 150") # four initdbs at once, in containers, on a loaded machine

# Run a lib.sh helper against another daemon: its own state dir and socket.
as() { # name command…
    local STATE="$T/$1" SOCK="$T/$1.sock"
    local -x DBLEASE_SOCKET="$T/$1.sock"
    shift
    "$@"
}
# Start daemon NAME (state dir $T/NAME, socket $T/NAME.sock), in the
# background; `running NAME` says when it serves. "here": in our pid
# namespace. "elsewhere": in one of its own, as in a job container or on
# another host; --foreground makes it the namespace's pid 1, so the
# namespace lives exactly as long as it does.
start_here() { # name
    printf '%s\n' "[daemon]" "cache_dir = $CACHE" "log_level = debug" "${CONFIG[@]}" > "$T/$1.ini"
    "$DBLEASED" --config "$T/$1.ini" --socket "$T/$1.sock" --state-dir "$T/$1" >/dev/null 2>&1 &
}
start_elsewhere() { # name
    mkdir -p "$T/$1"
    printf '%s\n' "[daemon]" "cache_dir = $CACHE" "log_level = debug" "${CONFIG[@]}" > "$T/$1.ini"
    unshare --pid --fork --mount-proc --kill-child=SIGTERM "$DBLEASED" --foreground --config "$T/$1.ini" \
        --socket "$T/$1.sock" --state-dir "$T/$1" >>"$T/$1.out" 2>&1 &
    echo $! > "$T/$1.unshare"
}
running() { DBLEASE_SOCKET="$T/$1.sock" "$DBLEASE" status --json | jq -e '.instances[0].state == "running"'; }
log_of() { if [ -e "$T/$1.out" ]; then echo "$T/$1.out"; else echo "$T/$1/dbleased.log"; fi; }
daemon_id() { sed -n 's/.*our containers carry dblease.daemon=\([0-9a-f]*\);.*/\1/p' "$(log_of "$1")" | tail -n 1; }
owned_by() { our_containers ".Labels[\"dblease.daemon\"] == \"$(daemon_id "$1")\""; }
gone() { ! our_containers | grep -qx "$1"; }
# Whatever the test left running, before the engine goes.
stop_all() {
    local u d
    for u in "$T"/*.unshare; do # errexit holds in traps: nothing here may fail
        [ -e "$u" ] && kill -TERM "$(pgrep -P "$(cat "$u")")" 2>/dev/null || true
    done
    for d in "$T"/*/; do
        [ -e "$d/dbleased.lock" ] && [ ! -e "${d%/}.unshare" ] && stop_daemon "${d%/}" || true
    done
    return 0
}
trap 'stop_all; engine_down; cleanup' EXIT

test_dead_daemons_containers_go_live_ones_stay() {
    start_elsewhere far
    start_elsewhere near
    start_here here_dead
    start_here here_live
    for n in far near here_dead here_live; do
        wait_until 180 running "$n" || fail "$n did not start: $(tail -n 5 "$(log_of "$n")")"
    done
    declare -A had
    for n in far near here_dead here_live; do
        had[$n]=$(owned_by "$n")
        # a server and the beacon
        [ "$(wc -l <<<"${had[$n]}")" -ge 2 ] || fail "$n has $(owned_by "$n" | wc -l) containers"
    done
    kill -9 "$(pgrep -P "$(cat "$T/far.unshare")")"
    as here_dead kill9_daemon
    # A fresh state dir: nothing ties it to the dead but the engine.
    as stranger start_daemon "${CONFIG[@]}"
    # Six missed beats of 2 s, on the sweepers' clocks.
    for c in ${had[far]} ${had[here_dead]}; do
        wait_until 40 gone "$c" || fail "container ${c:0:12} of a dead daemon survived"
    done
    for c in ${had[near]} ${had[here_live]}; do
        our_containers | grep -qx "$c" || fail "a live daemon's container ${c:0:12} was removed"
    done
    # The host's daemons proved here_dead dead by its pid, and nobody
    # judged a pid it could not see.
    grep -qh "owner dbleased $(daemon_id here_dead) .* is dead\"" "$T"/{stranger,here_live}/dbleased.log ||
        fail "here_dead not judged by its pid"
    if cat "$T"/*/dbleased.log "$T"/*.out | grep "owner dbleased $(daemon_id far) .* is dead" | grep -v "heartbeat stopped"; then
        fail "far judged by a pid nobody can see"
    fi
    as here_live sql "$(as here_live "$DBLEASE" lease --wait 30000)" "SELECT 1" >/dev/null
    DBLEASE_SOCKET="$T/near.sock" sql "$(DBLEASE_SOCKET="$T/near.sock" "$DBLEASE" lease --wait 30000)" "SELECT 1" >/dev/null
    as stranger stop_daemon
    as here_live stop_daemon
    kill -TERM "$(pgrep -P "$(cat "$T/near.unshare")")"
    wait_until 30 sh -c "! kill -0 $(cat "$T/near.unshare") 2>/dev/null" || fail "near did not stop"
    [ -z "$(our_containers)" ] || fail "containers left after stop: $(our_containers)"
}

run_tests
