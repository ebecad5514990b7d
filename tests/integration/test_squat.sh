#!/usr/bin/env bash
# The daemon serves only from directories of its own (issue 13, item 4,
# the daemon's side; test_cli_trust.sh is the client's): another local user
# who creates the victim's /tmp/dblease-$UID or /dev/shm/dblease-$UID first
# (or plants a link there) must not get a daemon that serves from it. The
# victim is a user this script creates (and removes); nobody squats.
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to create a second user"; exit 77; }

VICTIM=$(add_test_user dblsq)
VUID=$(id -u "$VICTIM")
SQUATS="/tmp/dblease-$VUID /dev/shm/dblease-$VUID"
# A daemon the victim started from a squatted dir (the bug) is stopped by
# the pid in its lock file; then every squat goes.
reset_victim() {
    local lock
    for lock in /tmp/dblease-"$VUID"/state/dbleased.lock /dev/shm/dblease-"$VUID"/state/dbleased.lock \
        "$T"/elsewhere/state/dbleased.lock "$T"/v/state/dbleased.lock; do
        if [ -s "$lock" ] && ! flock -n "$lock" true; then
            kill -TERM "$(cat "$lock")" 2>/dev/null && timeout 20 flock "$lock" true
        fi
    done
    rm -rf $SQUATS "$T/elsewhere" "$T/v"
}
squat_cleanup() {
    reset_victim
    del_test_user "$VICTIM"
    cleanup
}
trap squat_cleanup EXIT
for d in $SQUATS; do [ ! -e "$d" ] || fail "$d exists already"; done
mkdir -p "$STATE" && : >"$STATE/dbleased.log" # no daemon of ours here: nothing to check

mkdir -p "$T/bin" && cp "$DBLEASED" "$T/bin/dbleased" && chmod 0755 "$T/bin" "$T/bin/dbleased"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
# The victim's login environment: no XDG_RUNTIME_DIR, so the defaults are
# /tmp/dblease-$UID (socket) and /dev/shm/dblease-$UID/state.
victim_daemon() { # extra args…
    set +e
    setpriv --reuid="$VICTIM" --regid="$VICTIM" --clear-groups \
        env -i PATH=/usr/bin:/bin HOME=/ timeout 60 "$T/bin/dbleased" "$@" >"$T/out" 2>"$T/err"
    echo $? >"$T/rc"
    set -e
    echo "dbleased exited $(cat "$T/rc"): $(cat "$T/err")"
}

refused() { # the squatted path, what the message must also say
    [ "$(cat "$T/rc")" != 0 ] || fail "dbleased started from a directory another user made"
    [ ! -S "$1/dblease.sock" ] || fail "dbleased listens in $1"
    grep -q "$1" "$T/err" && grep -q "$2" "$T/err" || fail "the message does not say what failed: $(cat "$T/err")"
}

test_a_socket_directory_another_user_made_is_refused() {
    reset_victim
    as_nobody mkdir -m 0777 "/tmp/dblease-$VUID"
    victim_daemon
    refused "/tmp/dblease-$VUID" "uid $(id -u nobody)"
}

test_a_state_directory_another_user_made_is_refused() {
    reset_victim
    as_nobody mkdir -m 0777 "/dev/shm/dblease-$VUID"
    victim_daemon
    refused "/dev/shm/dblease-$VUID" "uid $(id -u nobody)"
}

test_a_link_in_place_of_the_socket_directory_is_refused() {
    reset_victim
    # Even a link to a directory of the victim's own: whoever made the link
    # can point it elsewhere at any time.
    mkdir -m 0755 "$T/elsewhere" && chown "$VICTIM" "$T/elsewhere"
    as_nobody ln -s "$T/elsewhere" "/tmp/dblease-$VUID"
    victim_daemon
    refused "/tmp/dblease-$VUID" "symbolic link"
    [ -z "$(ls -A "$T/elsewhere")" ] || fail "dbleased wrote through the link: $(ls -A "$T/elsewhere")"
}

test_a_world_writable_state_directory_of_our_own_is_refused() {
    reset_victim
    mkdir -m 0755 "$T/v" && chown "$VICTIM" "$T/v"
    setpriv --reuid="$VICTIM" --regid="$VICTIM" --clear-groups mkdir -m 0777 "$T/v/state"
    setpriv --reuid="$VICTIM" --regid="$VICTIM" --clear-groups chmod 0777 "$T/v/state"
    victim_daemon --socket "$T/v/dblease.sock" --state-dir "$T/v/state"
    refused "$T/v/state" "chmod o-w"
}

run_tests
