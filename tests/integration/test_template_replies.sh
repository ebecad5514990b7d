#!/usr/bin/env bash
# Exactly one reply per template request (PROTOCOL.md), on every path: a
# claim or finalize superseded by a newer version, a dropped template, the
# server lost, the daemon shutting down.
source "$(dirname "$0")/lib.sh"

start_daemon

code_of() { jq -r '.error.code // "ok"' <<<"$1"; }
state_of() { jq -r '.template.state // empty' <<<"$1"; }
# Both lines in one write: the daemon handles the second while the first
# one's engine work is still in flight.
send_two() { # name line line
    local fd="fd_$1"
    printf '%s\n%s\n' "$2" "$3" >&"${!fd}"
}
# A reply that never comes fails the test in 10 s, not the suite's 30.
reply_in_10s() { # name id
    wait_until 10 grep -q "\"id\":$2[,}]" "$T/$1.out" || { fail "no reply $2 on $1: $(cat "$T/$1.out")"; return 1; }
    grep "\"id\":$2[,}]" "$T/$1.out" | head -n1
}
ensure() { # template hash [wait_ms]
    printf '{"id":%s,"op":"template.ensure","template":"%s","hash":"%s","wait_ms":%s}' \
        "${ID:-1}" "$1" "$2" "${3:-20000}"
}
finalize() { # template hash
    printf '{"id":%s,"op":"template.finalize","template":"%s","hash":"%s"}' "${ID:-1}" "$1" "$2"
}

# A new hash is a version beside the old one: claiming it supersedes
# nothing; finalizing it retires the versions before it.
test_a_new_hash_is_claimed_beside_the_old_one() {
    open_conn a
    send_two a "$(ID=1 ensure sup1 h1)" "$(ID=2 ensure sup1 h2)"
    [ "$(state_of "$(reply_in_10s a 1)")" = migrate ] || fail "h1: $(cat "$T/a.out")"
    [ "$(state_of "$(reply_in_10s a 2)")" = migrate ] || fail "h2: $(cat "$T/a.out")"
    close_conn a
}

# A claim still open on an older version ends when a newer one is finalized.
test_older_claim_ends_when_a_newer_version_is_finalized() {
    open_conn a
    send_two a "$(ID=1 ensure sup2 h1)" "$(ID=2 ensure sup2 h2)"
    [ "$(state_of "$(reply_in_10s a 1)")" = migrate ]
    [ "$(state_of "$(reply_in_10s a 2)")" = migrate ]
    send a "$(ID=3 finalize sup2 h2)"
    [ "$(state_of "$(reply_in_10s a 3)")" = ready ]
    send a "$(ID=4 finalize sup2 h1)"
    r4=$(reply_in_10s a 4)
    [ "$(code_of "$r4")" = not_found ] || fail "finalize of a superseded version: $r4"
    close_conn a
}

test_waiter_of_a_superseded_claim_is_answered() {
    open_conn a
    open_conn b
    send a "$(ID=1 ensure sup3 h1)"
    [ "$(state_of "$(reply_in_10s a 1)")" = migrate ]
    send b "$(ID=1 ensure sup3 h1)"
    send a "$(ID=2 ensure sup3 h2)"
    [ "$(state_of "$(reply_in_10s a 2)")" = migrate ]
    send a "$(ID=3 finalize sup3 h2)"
    [ "$(state_of "$(reply_in_10s a 3)")" = ready ]
    [ "$(code_of "$(reply_in_10s b 1)")" = template_failed ]
    close_conn a
    close_conn b
}

test_dropped_template_answers_its_claim_in_flight() {
    open_conn a
    send_two a "$(ID=1 ensure drop1 h1)" '{"id":2,"op":"template.drop","template":"drop1"}'
    [ "$(code_of "$(reply_in_10s a 2)")" = ok ]
    r1=$(reply_in_10s a 1)
    [ "$(code_of "$r1")" = template_failed ] || fail "claim of a dropped template: $r1"
    close_conn a
}

test_finalize_right_after_ensure_answers_both() {
    open_conn a
    send_two a "$(ID=1 ensure quick1 h1)" "$(ID=2 finalize quick1 h1)"
    r1=$(reply_in_10s a 1)
    r2=$(reply_in_10s a 2)
    [ "$(code_of "$r2")" = bad_request ] || fail "finalize before the claim was ready: $r2"
    [ "$(state_of "$r1")" = migrate ] || fail "ensure: $r1"
    send a "$(ID=3 finalize quick1 h1)"
    [ "$(state_of "$(reply_in_10s a 3)")" = ready ]
    close_conn a
}

test_server_lost_answers_waiters_and_the_claim_is_offered_again() {
    open_conn a
    open_conn b
    send a "$(ID=1 ensure lost1 h1)"
    [ "$(state_of "$(reply_in_10s a 1)")" = migrate ]
    send b "$(ID=1 ensure lost1 h1)"
    postmaster=$(pgrep -f -- "-D $STATE/")
    kill -9 $postmaster
    [ "$(code_of "$(reply_in_10s b 1)")" = template_failed ] || fail "waiter: $(cat "$T/b.out")"
    # The server comes back; the template can be migrated again.
    send a "$(ID=2 ensure lost1 h1 30000)"
    [ "$(state_of "$(reply_in_10s a 2)")" = migrate ]
    close_conn a
    close_conn b
}

# A lease waiting for a client template being migrated: answered when the
# migrator goes away or the template is dropped, not left to its wait_ms.
lease_waiting_on() { # name template
    send "$1" "{\"id\":1,\"op\":\"lease\",\"template\":\"$2\",\"wait_ms\":60000}"
    send "$1" '{"id":2,"op":"hello"}'
    reply_in_10s "$1" 2 >/dev/null
}

test_lease_waiting_on_a_template_is_answered_when_its_migrator_goes() {
    open_conn a
    open_conn l
    send a "$(ID=1 ensure wait1 h1)"
    [ "$(state_of "$(reply_in_10s a 1)")" = migrate ]
    lease_waiting_on l wait1
    close_conn a # EOF with nothing pending: the session closes, the claim goes
    r=$(reply_in_10s l 1)
    [ "$(code_of "$r")" = template_failed ] || fail "lease waiter: $r"
    close_conn l
}

test_lease_waiting_on_a_template_is_answered_when_it_is_dropped() {
    open_conn a
    open_conn l
    send a "$(ID=1 ensure wait2 h1)"
    [ "$(state_of "$(reply_in_10s a 1)")" = migrate ]
    lease_waiting_on l wait2
    [ "$(code_of "$(rpc '{"id":1,"op":"template.drop","template":"wait2"}')")" = ok ]
    r=$(reply_in_10s l 1)
    [ "$(code_of "$r")" = template_failed ] || fail "lease waiter: $r"
    close_conn a
    close_conn l
}

test_server_lost_answers_a_claim_in_flight() {
    # Stopped, the server cannot finish setting up the claim: it is still
    # in flight when the server is killed.
    postmaster=$(pgrep -f -- "-D $STATE/")
    children=$(pgrep -P "$postmaster" | tr '\n' ' ')
    kill -STOP "$postmaster" $children
    open_conn a
    send_two a "$(ID=1 ensure lost2 h1)" '{"id":2,"op":"hello"}'
    reply_in_10s a 2 >/dev/null
    kill -9 "$postmaster"
    kill -CONT $children
    # Answered by whichever sees it first: the admin statement failing, or
    # the server's exit.
    r=$(reply_in_10s a 1)
    [ "$(code_of "$r")" = template_failed ] || fail "claim in flight when the server was lost: $r"
    close_conn a
}

test_shutdown_answers_waiters() {
    open_conn a
    open_conn b
    send a "$(ID=1 ensure stop1 h1)"
    [ "$(state_of "$(reply_in_10s a 1)")" = migrate ]
    # The hello's reply shows the ensure before it was read and is waiting.
    send_two b "$(ID=1 ensure stop1 h1 60000)" '{"id":2,"op":"hello"}'
    reply_in_10s b 2 >/dev/null
    kill -TERM "$DAEMON_PID"
    r=$(reply_in_10s b 1)
    [ "$(code_of "$r")" = shutting_down ] || fail "waiter at shutdown: $r"
    close_conn a
    close_conn b
    stop_daemon
    start_daemon
}

run_tests
