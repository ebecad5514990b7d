#!/usr/bin/env bash
# `dblease release` takes what `dblease lease` printed: the URL, as well as
# the lease id.
source "$(dirname "$0")/lib.sh"
# One database, so that the next lease reuses the slot of the last one.
start_daemon "[postgres]" "min_ready = 1" "max_total = 1"

leases() { "$DBLEASE" status --json | jq -r '.leases[].id'; }

test_release_accepts_the_url_that_lease_printed() {
    url=$("$DBLEASE" lease --wait 30000)
    [ -n "$(leases)" ] || fail "no lease to release"
    "$DBLEASE" release "$url" || fail "release by URL failed"
    [ -z "$(leases)" ] || fail "the lease is still there: $(leases)"
}

test_a_stale_url_does_not_release_the_next_lease_of_its_database() {
    old=$("$DBLEASE" lease --wait 30000)
    "$DBLEASE" release "$old"
    new=$("$DBLEASE" lease --wait 30000)
    [ "${new%%@*}" != "${old%%@*}" ] || fail "the new lease has the old credentials"
    set +e
    "$DBLEASE" release "$old" 2>"$T/err"
    rc=$?
    set -e
    cat "$T/err"
    [ "$rc" = 1 ] && grep -q not_found "$T/err" || fail "a stale URL: exit $rc"
    [ -n "$(leases)" ] || fail "the stale URL released the new lease"
    "$DBLEASE" release "$new"
}

run_tests
