#!/usr/bin/env bash
# Tenants sharing one daemon (issue 13, item 5): one lease cannot take every
# PostgreSQL connection, one local user cannot hold every lease or every
# client slot, and root (an admin) always gets in. Performed as a second
# local user where it matters; each test starts its own daemon.
source "$(dirname "$0")/lib.sh"

TENANT=
if [ "$(id -u)" = 0 ]; then
    TENANT="dblcap$$"
    add_local_user "$TENANT"
fi

code_of() { jq -r '.error.code // "ok"' <<<"$1"; }
TENANT_AS=(setpriv --reuid="$TENANT" --regid="$TENANT" --init-groups)
as_tenant() { "${TENANT_AS[@]}" "$@"; }
tenant_lease() { as_tenant env DBLEASE_SOCKET="$SOCK" "$DBLEASE" lease --json --wait 5000 "$@"; }
PSQL_PIDS=""
stop_psqls() { for p in $PSQL_PIDS; do kill "$p" 2>/dev/null || true; done; PSQL_PIDS=""; }

# Sessions of the lease role $2, counted through another lease ($1).
sessions_of() { sql "$1" "SELECT count(*) FROM pg_stat_activity WHERE usename = '$2'"; }
# psql -q writes to stderr only when it is refused (a zombie still passes kill -0).
opened_or_refused() { # url role n
    [ -s "$T/conn$3.err" ] || [ "$(sessions_of "$1" "$2")" -ge "$3" ]
}

# Open sessions as lease $1 until PostgreSQL refuses one (at most $3);
# print the refusal. $2 is another lease, to count them with.
fill_connections() { # url other_url max
    local role n pid
    role=$(sql "$1" "SELECT current_user")
    for n in $(seq 1 "$3"); do
        psql "$1" -Xq -c "SELECT pg_sleep(60)" >/dev/null 2>"$T/conn$n.err" &
        pid=$!
        PSQL_PIDS="$PSQL_PIDS $pid"
        wait_until 40 opened_or_refused "$2" "$role" "$n" || { fail "session $n of $role neither opened nor was refused: $(cat "$T/conn$n.err"; sessions_of "$2" "$role" 2>&1)"; return 1; }
        if [ -s "$T/conn$n.err" ]; then
            cat "$T/conn$n.err"
            return 0
        fi
    done
    fail "$3 sessions of $role were all let in"
}

test_one_lease_cannot_take_every_connection() {
    start_daemon "[postgres]" "max_connections = 40" "min_ready = 2" "max_total = 4"
    trap stop_psqls EXIT
    a=$(lease_url) && b=$(lease_url)
    # the limit is the lease's to live with, not to raise
    ! sql "$a" "ALTER ROLE current_user CONNECTION LIMIT -1" 2>/dev/null || fail "a lease raised its own limit"
    refused=$(fill_connections "$a" "$b" 45)
    grep -q "too many connections for role" <<<"$refused" || fail "the lease ran the server out of slots: $refused"
    # the other lease still gets in, and the daemon still leases and releases
    [ "$(sql "$b" "SELECT 1")" = 1 ] || fail "another lease could not connect"
    c=$(lease_url --wait 10000) || fail "no new lease while one lease is at its limit"
    [ "$(sql "$c" "SELECT 1")" = 1 ] || fail "a new lease could not connect"
    "$DBLEASE" release "$a" || fail "releasing the lease at its limit"
    "$DBLEASE" release "$c" && "$DBLEASE" release "$b"
    stop_psqls
}

test_schema_and_database_lease_roles_have_a_connection_limit() {
    start_daemon "[template.sch]" "isolation = schema" "min_ready = 1" "max_total = 2" \
        "[template.own]" "lease_connection_limit = 3" "min_ready = 1" "max_total = 2" \
        "[template.one]" "min_ready = 1" "max_total = 1"
    for t in default sch own; do
        url=$(lease_url --template "$t")
        limit=$(sql "$url" "SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")
        [ "$limit" -gt 0 ] || fail "template $t: lease role has CONNECTION LIMIT $limit"
        [ "$t" != own ] || [ "$limit" = 3 ] || fail "lease_connection_limit = 3 gave $limit"
    done
    # a database reused after a release (new password) keeps its limit
    url=$(lease_url --template one)
    db=$(sql "$url" "SELECT current_database()")
    "$DBLEASE" release "$url"
    url=$(lease_url --template one --wait 10000)
    [ "$(sql "$url" "SELECT current_database()")" = "$db" ] || { skip "the release recloned"; return 0; }
    limit=$(sql "$url" "SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user")
    [ "$limit" -gt 0 ] || fail "a reused lease role lost its limit: $limit"
}

test_one_user_cannot_hold_every_lease() {
    [ -n "$TENANT" ] || { skip "not root: no second local user"; return 0; }
    start_daemon "socket_group = $TENANT" "max_leases_per_uid = 2" \
        "[postgres]" "min_ready = 2" "max_total = 6"
    first=$(tenant_lease) && tenant_lease >/dev/null || fail "the tenant's first two leases"
    out=$(as_tenant env DBLEASE_SOCKET="$SOCK" socat -t 5 - "UNIX-CONNECT:$SOCK" \
        <<<'{"id":1,"op":"lease","wait_ms":2000}')
    [ "$(code_of "$out")" = too_many_leases ] || fail "third lease of one user: $out"
    jq -r .error.message <<<"$out" | grep -q "max_leases_per_uid" || fail "no config key named: $out"
    # root is exempt, and a released lease frees the tenant's cap
    lease_url >/dev/null && lease_url >/dev/null && lease_url >/dev/null || fail "root was capped"
    as_tenant env DBLEASE_SOCKET="$SOCK" "$DBLEASE" release "$(jq -r .id <<<"$first")"
    tenant_lease >/dev/null || fail "a released lease did not free the tenant's cap"
    # the admin sees who holds what; the tenant does not
    as_tenant env DBLEASE_SOCKET="$SOCK" "$DBLEASE" status --json | jq -e 'has("uids") | not' >/dev/null \
        || fail "a non-admin's status lists every uid's usage"
    "$DBLEASE" status --json | jq -e --argjson u "$(id -u "$TENANT")" \
        '.uids[] | select(.uid == $u) | .leases == 2' >/dev/null || fail "status: no per-uid usage"
    "$DBLEASE" status | grep -A3 '^USERS' | grep -Eq "^$(id -u "$TENANT") +2 +0 " || fail "dblease status: no USERS table"
}

test_one_user_cannot_take_every_client_slot() {
    [ -n "$TENANT" ] || { skip "not root: no second local user"; return 0; }
    start_daemon "socket_group = $TENANT" "max_clients = 3" "max_clients_per_uid = 3"
    for n in 1 2 3; do
        open_conn "t$n" "${TENANT_AS[@]}"
        send "t$n" '{"id":1,"op":"hello"}'
        reply_of "t$n" 1 >/dev/null
    done
    out=$(as_tenant socat -t 5 - "UNIX-CONNECT:$SOCK" <<<'{"id":1,"op":"hello"}')
    [ "$(code_of "$out")" = too_many_clients ] || fail "fourth connection of one user: $out"
    jq -r .error.message <<<"$out" | grep -q "max_clients_per_uid" || fail "no config key named: $out"
    # the daemon is full (max_clients), yet root still connects and leases
    r=$(rpc '{"id":1,"op":"lease"}')
    [ "$(code_of "$r")" = ok ] || fail "root locked out by one user's connections: $r"
    # a flood of refused connections (each may linger to flush its error) is
    # bounded too: past twice the cap they are closed at once
    for n in 4 5 6 7; do open_conn "t$n" "${TENANT_AS[@]}"; done
    wait_until 10 grep -q "uid $(id -u "$TENANT") has 6 connections open" "$STATE/dbleased.log" \
        || fail "the seventh connection was not refused"
    for n in 4 5 6 7; do close_conn "t$n"; wait "$(eval echo "\$pid_t$n")" || true; done
    replies=$(cat "$T"/t[4567].out | grep -c '"ok":true' || true)
    [ "$replies" = 0 ] || fail "$replies connections past the cap were served"
    [ "$(code_of "$(rpc '{"id":1,"op":"hello"}')")" = ok ] || fail "root refused after the flood"
    for n in 1 2 3; do close_conn "t$n"; done
}

run_tests
