#!/usr/bin/env bash
# `dblease run` is told when its lease ends under the command (the server
# behind it died): it says so on stderr at once, the command keeps running,
# and the end brings no "could not release" for a lease that is gone.
source "$(dirname "$0")/lib.sh"
start_daemon

test_run_says_at_once_that_its_server_went_down() {
    pg_pid=$("$DBLEASE" status --json | jq -r '[.instances[] | select(.kind == "postgres")][0].pid')
    [ -n "$pg_pid" ] && [ "$pg_pid" != null ] || fail "no postgres server pid in status"
    set +e
    "$DBLEASE" run -- sh -c '
        kill -KILL "$0"
        for i in $(seq 400); do
            grep -q "$DBLEASE_LEASE_ID.*server went down" "$1" && exit 0
            sleep 0.05
        done
        exit 9' "$pg_pid" "$T/run.err" 2>"$T/run.err"
    rc=$?
    set -e
    cat "$T/run.err"
    [ "$rc" = 0 ] || fail "the command was not told within 20 s (exit $rc)"
    ! grep -q "could not release" "$T/run.err" || fail "a release of the ended lease was tried"
}

run_tests
