#!/usr/bin/env bash
# Redis leases: a redis-server of its own per lease (instance isolation), and
# database numbers on a shared server (db isolation, second daemon).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/redis_lib.sh"

start_daemon "[redis]" "min_ready = 2" "max_total = 8"

rcli() { redis-cli --no-auth-warning -u "$1" "${@:2}"; }
auth_fails() { ! rcli "$1" PING 2>/dev/null | grep -q PONG; }

test_lease_prints_a_redis_url_that_works_with_redis_cli_and_hiredis() {
    url=$("$DBLEASE" lease --kind redis)
    [[ $url == redis://default:*@127.0.0.1:*/0 ]] || fail "url: $url"
    [ "$(rcli "$url" SET greeting hello)" = OK ]
    [ "$(rcli "$url" GET greeting)" = hello ]
    j=$("$DBLEASE" lease --kind redis --json)
    [ "$(probe "$j" SET k v)" = OK ]
    [ "$(probe "$j" GET k)" = v ]
}

test_one_lease_cannot_read_anothers_keys() {
    a=$("$DBLEASE" lease --kind redis --json)
    b=$("$DBLEASE" lease --kind redis --json)
    [ "$(field "$a" port)" != "$(field "$b" port)" ] || fail "two leases on one server"
    probe "$a" SET secret a >/dev/null
    # a's password on b's server is refused
    if "$REDIS_PROBE" 127.0.0.1 "$(field "$b" port)" "$(field "$a" password)" 0 GET secret >/dev/null; then
        fail "a's credentials opened b's server"
    fi
    [ "$(probe "$b" GET secret)" = "(nil)" ]
}

test_lease_cannot_run_admin_commands() {
    j=$("$DBLEASE" lease --kind redis --json)
    for cmd in "CONFIG GET dir" "SHUTDOWN" "DEBUG SLEEP 0" "ACL LIST" "MONITOR"; do
        # shellcheck disable=SC2086
        if probe "$j" $cmd >/dev/null 2>&1; then fail "lease ran $cmd"; fi
    done
    [ "$(probe "$j" FLUSHALL)" = OK ] || fail "tests need FLUSHALL"
}

test_released_instance_comes_back_empty_with_a_new_password() {
    j=$("$DBLEASE" lease --kind redis --json)
    port=$(field "$j" port)
    probe "$j" SET leftover 1 >/dev/null
    "$DBLEASE" release "$(field "$j" id)"
    wait_until 5 auth_fails "$(field "$j" url)" || fail "old password still works"
    # Lease (and hold) until the same server comes round again.
    held=()
    for _ in $(seq 1 8); do
        k=$("$DBLEASE" lease --kind redis --wait 10000 --json)
        held+=("$(field "$k" id)")
        if [ "$(field "$k" port)" = "$port" ]; then
            [ "$(probe "$k" GET leftover)" = "(nil)" ] || fail "data survived the release"
            [ "$(field "$k" password)" != "$(field "$j" password)" ] || fail "same password"
            for id in "${held[@]}"; do "$DBLEASE" release "$id"; done
            return 0
        fi
    done
    fail "the released server never came back"
}

test_run_gives_one_command_postgres_and_redis() {
    out=$("$DBLEASE" run --postgres --redis -- sh -c \
        'redis-cli --no-auth-warning -u "$REDIS_URL" PING; psql -XAtqc "SELECT 41 + 1"')
    [ "$out" = "$(printf 'PONG\n42')" ] || fail "$out"
}

test_killed_redis_server_is_replaced_and_its_holder_told() {
    open_conn holder
    send holder '{"id":1,"op":"lease","kind":"redis"}'
    lease=$(reply_of holder 1)
    port=$(jq -r .lease.port <<<"$lease")
    pid=$("$DBLEASE" status --json | jq -r --argjson p "$port" '.instances[] | select(.port == $p) | .pid')
    kill -9 "$pid"
    wait_until 5 grep -q '"event":"instance_down"' "$T/holder.out" || fail "no instance_down event"
    # A new lease works, and the pool is back to strength.
    j=$("$DBLEASE" lease --kind redis --wait 10000 --json)
    [ "$(probe "$j" PING)" = PONG ]
    close_conn holder
}

test_status_shows_redis_pools_and_servers() {
    "$DBLEASE" lease --kind redis >/dev/null # the pool starts cold: warm it
    s=$("$DBLEASE" status --json)
    [ "$(jq '[.pools[] | select(.kind == "redis")] | length' <<<"$s")" = 1 ]
    [ "$(jq -r '.pools[] | select(.kind == "redis") | .isolation' <<<"$s")" = instance ]
    [ "$(jq '[.instances[] | select(.kind == "redis")] | length' <<<"$s")" -ge 1 ]
    "$DBLEASE" status | grep -q "^redis" || fail "human status lacks the redis pool"
}

test_db_isolation_hands_out_database_numbers_and_flushes_them() {
    # A second daemon, beside the first, configured for db isolation.
    printf '[daemon]\ncache_dir = %s\n[redis]\nisolation = db\nmin_ready = 2\nmax_total = 8\n' \
        "$CACHE" > "$T/db.ini"
    "$DBLEASED" --config "$T/db.ini" --socket "$T/db.sock" --state-dir "$T/dbstate"
    export DBLEASE_SOCKET="$T/db.sock"
    a=$("$DBLEASE" lease --kind redis --json)
    b=$("$DBLEASE" lease --kind redis --json)
    [ "$(field "$a" port)" = "$(field "$b" port)" ] || fail "db leases should share a server"
    [ "$(field "$a" db)" != "$(field "$b" db)" ] || fail "same database number twice"
    probe "$a" SET only-a 1 >/dev/null
    [ "$(probe "$b" GET only-a)" = "(nil)" ]
    "$DBLEASE" release "$(field "$a" id)"
    for _ in $(seq 1 6); do
        k=$("$DBLEASE" lease --kind redis --wait 10000 --json)
        [ "$(probe "$k" GET only-a)" = "(nil)" ] || fail "a released database kept its keys"
    done
    stop_daemon "$T/dbstate"
}

alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]; }

test_sigterm_leaves_no_redis_server() {
    "$DBLEASE" lease --kind redis >/dev/null
    pids=$("$DBLEASE" status --json | jq -r '.instances[] | select(.kind == "redis") | .pid')
    [ -n "$pids" ] || fail "no redis-server to stop"
    stop_daemon
    for p in $pids; do
        if alive "$p"; then fail "redis-server $p survived SIGTERM"; fi
    done
    start_daemon "[redis]" "min_ready = 2" "max_total = 8"
}

run_tests
