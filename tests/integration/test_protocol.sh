#!/usr/bin/env bash
# The wire protocol from a raw socket, as a client in any language sees it.
source "$(dirname "$0")/lib.sh"

# The admin checks need a peer that is not an admin (root or the daemon's
# uid): a local user of our own, made here and removed on exit, allowed on
# the socket through its group. Only root can make one; without root those
# checks are reported as skipped (exit 77), never as passed.
NONADMIN=
if [ "$(id -u)" = 0 ]; then
    NONADMIN="dblit$$"
    add_local_user "$NONADMIN"
    start_daemon "socket_group = $NONADMIN"
else
    start_daemon
fi

code_of() { jq -r '.error.code // "ok"' <<<"$1"; }

test_hello_reports_daemon_and_protocol() {
    r=$(rpc '{"id":1,"op":"hello","proto":1,"client":"it"}')
    [ "$(jq -r '.ok, .daemon, .proto, .id' <<<"$r" | tr '\n' ' ')" = "true dbleased 1 1 " ] || fail "$r"
}

test_wrong_protocol_version_is_refused() {
    [ "$(code_of "$(rpc '{"id":1,"op":"hello","proto":2}')")" = proto_version ]
}

test_garbage_gets_bad_request_and_the_connection_stays_usable() {
    out=$(rpc 'this is not json' '{"id":1,' '[1,2]' '{"op":1}' '{"id":9,"op":"status"}')
    [ "$(sed -n 1,4p <<<"$out" | jq -r .error.code | sort -u)" = bad_request ] || fail "$out"
    [ "$(sed -n 5p <<<"$out" | jq -r '.id, .ok' | tr '\n' ' ')" = "9 true " ] || fail "$out"
}

test_invalid_utf8_is_a_bad_request() {
    out=$(printf '{"id":1,"op":"hello","client":"\xff\xfe"}\n' | socat -t 5 - "UNIX-CONNECT:$SOCK")
    [ "$(code_of "$out")" = bad_request ] || fail "$out"
}

test_unknown_op_and_wrong_types_are_named() {
    [ "$(code_of "$(rpc '{"id":1,"op":"fly"}')")" = unknown_op ]
    [ "$(code_of "$(rpc '{"id":1,"op":"lease","ttl_s":"long"}')")" = bad_request ]
    [ "$(code_of "$(rpc '{"id":1,"op":"lease","ttl_s":-5}')")" = bad_request ]
    [ "$(code_of "$(rpc '{"id":1,"op":"lease","detach":"yes"}')")" = bad_request ]
    [ "$(code_of "$(rpc '{"id":1,"op":"lease","kind":"mysql"}')")" = bad_request ]
    [ "$(code_of "$(rpc '{"id":1,"op":"lease","template":"nope"}')")" = unknown_template ]
    [ "$(code_of "$(rpc '{"id":1,"op":"release","lease":"L-00"}')")" = not_found ]
    [ "$(code_of "$(rpc '{"id":1,"op":"release"}')")" = bad_request ]
}

test_pipelined_requests_are_all_answered_by_id() {
    out=$(rpc '{"id":"a","op":"status"}' '{"id":"b","op":"hello"}' '{"id":"c","op":"lease"}')
    [ "$(jq -r .id <<<"$out" | sort | tr -d '\n')" = abc ] || fail "$out"
    [ "$(jq -r 'select(.id == "c") | .lease.kind' <<<"$out")" = postgres ]
}

test_line_over_64k_closes_that_connection_alone() {
    open_conn keep
    send keep '{"id":1,"op":"hello"}'
    big=$(head -c 70000 /dev/zero | tr '\0' 'x')
    out=$(printf '{"id":1,"op":"hello","client":"%s"}\n{"id":2,"op":"status"}\n' "$big" | socat -t 5 - "UNIX-CONNECT:$SOCK")
    [ "$(code_of "$out")" = line_too_long ] || fail "$out"
    [ "$(wc -l <<<"$out")" = 1 ] || fail "connection answered after an over-long line"
    send keep '{"id":2,"op":"status"}'
    wait_until 5 grep -q '"id":2' "$T/keep.out" || fail "other connection disturbed"
    close_conn keep
}

test_attached_lease_of_another_connection_is_not_owned() {
    open_conn owner
    send owner '{"id":1,"op":"lease"}'
    wait_until 10 grep -q '"lease"' "$T/owner.out"
    id=$(jq -r .lease.id < "$T/owner.out")
    [ "$(code_of "$(rpc "{\"id\":1,\"op\":\"release\",\"lease\":\"$id\"}")")" = not_owner ]
    [ "$(code_of "$(rpc "{\"id\":1,\"op\":\"renew\",\"lease\":\"$id\"}")")" = not_owner ]
    # the owner still may
    send owner "{\"id\":2,\"op\":\"release\",\"lease\":\"$id\"}"
    wait_until 5 grep -q '"id":2,"ok":true' "$T/owner.out"
    close_conn owner
}

# Requests from the unprivileged user, one connection: its reply lines.
rpc_as_nonadmin() {
    printf '%s\n' "$@" | setpriv --reuid="$NONADMIN" --regid="$NONADMIN" --init-groups \
        socat -t 5 - "UNIX-CONNECT:$SOCK"
}
lease_listed() { "$DBLEASE" status --json | jq -e --arg id "$1" '[.leases[].id] | index($id)' >/dev/null; }

test_force_release_is_refused_to_a_non_admin_and_allowed_to_root() {
    [ -n "$NONADMIN" ] || { skip "not root, so no non-admin user to try force as"; return 0; }
    open_conn victim
    send victim '{"id":1,"op":"lease"}'
    id=$(reply_of victim 1 | jq -r .lease.id)
    [ "$(setpriv --reuid="$NONADMIN" id -u)" != 0 ] || fail "setpriv did not drop root"
    out=$(rpc_as_nonadmin "{\"id\":1,\"op\":\"release\",\"lease\":\"$id\",\"force\":true}" \
        "{\"id\":2,\"op\":\"release\",\"lease\":\"$id\"}")
    [ "$(jq -r 'select(.id == 1) | .error.code' <<<"$out")" = forbidden ] || fail "non-admin force: $out"
    [ "$(jq -r 'select(.id == 2) | .error.code' <<<"$out")" = not_owner ] || fail "non-admin release: $out"
    lease_listed "$id" || fail "a refused force still ended lease $id"
    # root is an admin: its force ends the lease, and the holder is told
    r=$(rpc "{\"id\":1,\"op\":\"release\",\"lease\":\"$id\",\"force\":true}")
    [ "$(code_of "$r")" = ok ] || fail "root's force: $r"
    ! lease_listed "$id" || fail "lease $id still listed after root's force"
    close_conn victim
}

test_expired_lease_is_reclaimed_and_its_owner_told() {
    open_conn ttl
    send ttl '{"id":1,"op":"lease","ttl_s":1}'
    wait_until 10 grep -q '"lease"' "$T/ttl.out"
    url=$(head -n1 "$T/ttl.out" | jq -r .lease.url)
    wait_until 4 grep -q '"event":"lease_expired"' "$T/ttl.out" || fail "no lease_expired event"
    dead() { ! psql "$url" -XAtqc 'SELECT 1' >/dev/null 2>&1; }
    wait_until 5 dead || fail "expired lease's credentials still work"
    close_conn ttl
}

test_detached_lease_survives_its_connection() {
    r=$(rpc '{"id":1,"op":"lease","detach":true}')
    url=$(jq -r .lease.url <<<"$r")
    sql "$url" "SELECT 1" >/dev/null
    [ "$(code_of "$(rpc "{\"id\":1,\"op\":\"release\",\"lease\":\"$(jq -r .lease.id <<<"$r")\"}")")" = ok ]
}

run_tests
