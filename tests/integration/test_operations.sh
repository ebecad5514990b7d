#!/usr/bin/env bash
# What an operator meets: `dblease status` safe on a terminal whatever a
# client calls itself, --check-config refusing what start-up would refuse
# (with file:line, resolved values, no secrets), a Redis problem that
# leaves PostgreSQL serving.
source "$(dirname "$0")/lib.sh"

test_status_shows_a_hostile_client_name_without_terminal_escapes() {
    start_daemon
    open_conn hostile
    # ESC [2J clears the screen, BEL rings, CSI (U+009B) is the 8-bit ESC [.
    send hostile '{"id":1,"op":"hello","proto":1,"client":"\u001b[2J\u001b]0;owned\u0007x\u009b31m"}'
    reply_of hostile 1 | jq -e .ok >/dev/null || fail "hello refused"
    send hostile '{"id":2,"op":"lease"}'
    reply_of hostile 2 | jq -e .ok >/dev/null || fail "no lease"
    "$DBLEASE" status > "$T/status.txt"
    if LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]\|\xc2[\x80-\x9f]' "$T/status.txt"; then
        fail "status printed control characters: $(od -c "$T/status.txt" | grep -m3 '033\|007')"
    fi
    grep -q 'x' "$T/status.txt" || fail "the client's name is gone"
    grep -Fq '\x1b[2J' "$T/status.txt" || fail "ESC not shown escaped: $(grep -A3 LEASES "$T/status.txt")"
    # JSON stays JSON: the name as sent, escaped by JSON's rules.
    [ "$("$DBLEASE" status --json | jq -r '.leases[0].owner.client')" = $'\e[2J\e]0;owned\ax\u009b31m' ] ||
        fail "status --json changed the name: $("$DBLEASE" status --json | jq -c '.leases[0].owner')"
    close_conn hostile
    stop_daemon
}

run_tests
