#!/usr/bin/env bash
# Leasing through the CLI: real databases, isolated, reset on return.
source "$(dirname "$0")/lib.sh"
start_daemon

field() { jq -r ".$2" <<<"$1"; }
url_dead() { ! psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

test_lease_prints_a_url_to_a_writable_database() {
    url=$("$DBLEASE" lease)
    [[ $url == postgresql://* ]] || fail "not a URL: $url"
    sql "$url" "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"
    [ "$(sql "$url" 'SELECT x FROM t')" = 42 ]
}

test_lease_json_has_every_field() {
    j=$("$DBLEASE" lease --json)
    for k in id kind template url host port dbname user password expires_at; do
        [ "$(jq "has(\"$k\")" <<<"$j")" = true ] || fail "lease --json lacks $k: $j"
    done
    [ "$(field "$j" kind)" = postgres ]
    [[ $(field "$j" id) == L-* ]]
}

test_two_leases_are_different_databases() {
    a=$("$DBLEASE" lease --json)
    b=$("$DBLEASE" lease --json)
    [ "$(field "$a" dbname)" != "$(field "$b" dbname)" ] || fail "same database twice"
    sql "$(field "$a" url)" "CREATE TABLE only_in_a (x int)"
    [ "$(sql "$(field "$b" url)" "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'")" = 0 ]
}

test_credentials_open_no_other_database() {
    a=$("$DBLEASE" lease --json)
    b=$("$DBLEASE" lease --json)
    base="postgresql://$(field "$a" user):$(field "$a" password)@$(field "$a" host):$(field "$a" port)"
    for db in "$(field "$b" dbname)" postgres template1; do
        if psql "$base/$db" -XAtqc 'SELECT 1' >/dev/null 2>&1; then
            fail "lease $(field "$a" dbname) opened database $db"
        fi
    done
    # and b's credentials on a's database
    if psql "postgresql://$(field "$b" user):$(field "$b" password)@$(field "$b" host):$(field "$b" port)/$(field "$a" dbname)" \
        -XAtqc 'SELECT 1' >/dev/null 2>&1; then
        fail "lease b opened lease a's database"
    fi
}

test_lease_role_has_no_privileges_beyond_its_database() {
    url=$("$DBLEASE" lease)
    [ "$(sql "$url" "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication FROM pg_roles WHERE rolname = current_user")" = f ]
    if sql "$url" "CREATE DATABASE escape" 2>/dev/null; then fail "lease role created a database"; fi
    if sql "$url" "CREATE ROLE escape" 2>/dev/null; then fail "lease role created a role"; fi
}

test_release_ends_the_credentials_and_no_later_lease_sees_the_data() {
    j=$("$DBLEASE" lease --json)
    url=$(field "$j" url)
    sql "$url" "CREATE TABLE leftover (x int)"
    "$DBLEASE" release "$(field "$j" id)"
    wait_until 5 url_dead "$url" || fail "released credentials still work"
    # More leases than the pool holds, so recycled databases come round too.
    for _ in $(seq 1 8); do
        k=$("$DBLEASE" lease --json)
        [ "$(sql "$(field "$k" url)" "SELECT count(*) FROM pg_tables WHERE tablename = 'leftover'")" = 0 ] \
            || fail "a later lease saw the released lease's table"
        "$DBLEASE" release --clean "$(field "$k" id)"
    done
}

test_clean_release_rotates_the_password_and_keeps_the_database() {
    j=$("$DBLEASE" lease --json)
    url=$(field "$j" url)
    db=$(field "$j" dbname)
    "$DBLEASE" release --clean "$(field "$j" id)"
    wait_until 5 url_dead "$url" || fail "old password still works after a clean release"
    # The database itself went back to the pool: it is still there, unleased.
    in_pool() { [ "$("$DBLEASE" status --json | jq --arg db "$db" '[.leases[] | select(.dbname == $db)] | length')" = 0 ]; }
    in_pool
}

test_renew_extends_the_expiry() {
    j=$("$DBLEASE" lease --ttl 60 --json)
    id=$(field "$j" id)
    before=$(field "$j" expires_at)
    "$DBLEASE" renew "$id" --ttl 3600 >/dev/null
    after=$("$DBLEASE" status --json | jq --arg id "$id" '.leases[] | select(.id == $id) | .expires_at')
    [ "$after" -ge $((before + 3000)) ] || fail "expires_at $before -> $after"
}

test_status_shows_pools_and_leases() {
    id=$("$DBLEASE" lease --json | jq -r .id)
    s=$("$DBLEASE" status --json)
    [ "$(jq '.pools[0] | (.ready|type) == "number" and (.leased|type) == "number" and (.resetting|type) == "number" and (.failed|type) == "number"' <<<"$s")" = true ]
    [ "$(jq --arg id "$id" '[.leases[] | select(.id == $id)] | length' <<<"$s")" = 1 ]
    if jq -e '.. | .password? // empty' <<<"$s" >/dev/null; then fail "status shows a password"; fi
    "$DBLEASE" status | grep -q "postgres" || fail "human status has no postgres pool"
}

test_release_of_unknown_lease_is_an_error_with_advice() {
    set +e
    out=$("$DBLEASE" release L-0000000000000000 2>&1)
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "exit $rc"
    grep -q "dblease:" <<<"$out" || fail "message: $out"
}

test_unreachable_daemon_exits_69() {
    set +e
    DBLEASE_SOCKET="$T/nope.sock" "$DBLEASE" status 2>/dev/null
    rc=$?
    set -e
    [ "$rc" = 69 ] || fail "exit $rc"
}

test_bad_usage_exits_2() {
    set +e
    "$DBLEASE" lease --ttl notanumber 2>/dev/null
    rc=$?
    set -e
    [ "$rc" = 2 ] || fail "exit $rc"
}

run_tests
