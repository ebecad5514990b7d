#!/usr/bin/env bash
# The docker runtime against a real Podman engine (its Docker-compatible
# API) and local look-alike images of the official postgres image: leases,
# isolation, reset, a container killed behind the daemon's back, a killed
# daemon's containers removed by its successor, an unreachable engine.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../containers/lib.sh"

CONFIG=("[postgres]" "runtime = docker" "docker_host = $DOCKER_HOST"
        "image = localhost/dblease-postgres:15" "min_ready = 2" "start_timeout_s = 60")
field() { jq -r ".$2" <<<"$1"; }
dead() { ! psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

# The release ends logins of the role still under way by their process
# titles, read through the server: inside the container, too.
test_a_login_stalled_across_the_release_does_not_get_in() {
    start_daemon "${CONFIG[@]}"
    stalled_login_across_release --clean
}

test_leases_come_from_a_container_and_are_isolated_and_reset() {
    start_daemon "${CONFIG[@]}"
    [ "$("$DBLEASE" status --json | jq -r '.instances[0].runtime')" = docker ]
    [ -n "$(our_containers)" ] || fail "no labelled container"
    a=$("$DBLEASE" lease --json)
    b=$("$DBLEASE" lease --json)
    assert_server_settings "$(field "$a" url)"
    sql "$(field "$a" url)" "CREATE TABLE mine (x int)"
    cross="postgresql://$(field "$a" user):$(field "$a" password)@127.0.0.1:$(field "$b" port)/$(field "$b" dbname)"
    if psql "$cross" -XAtqc 'SELECT 1' >/dev/null 2>&1; then fail "a opened b's database"; fi
    "$DBLEASE" release "$(field "$a" id)"
    wait_until 10 dead "$(field "$a" url)" || fail "released credentials still work"
    for _ in 1 2 3; do
        u=$("$DBLEASE" lease --wait 20000)
        [ "$(sql "$u" "SELECT count(*) FROM pg_tables WHERE tablename = 'mine'")" = 0 ]
    done
    stop_daemon
    [ -z "$(our_containers)" ] || fail "containers left after stop: $(our_containers)"
}

test_container_killed_behind_our_back_is_replaced() {
    start_daemon "${CONFIG[@]}"
    old=$(our_containers '.Labels["dblease.kind"] == "postgres"')
    api -X POST "http://d/v1.41/containers/$old/kill" >/dev/null
    replaced() { local now; now=$(our_containers '.Labels["dblease.kind"] == "postgres"'); [ -n "$now" ] && [ "$now" != "$old" ] &&
        [ "$("$DBLEASE" status --json | jq -r '.instances[0].state')" = running ]; }
    wait_until 60 replaced || fail "not replaced: $(our_containers)"
    sql "$("$DBLEASE" lease --wait 30000)" "SELECT 1" >/dev/null
    stop_daemon
}

test_killed_daemon_containers_are_removed_by_the_next_one() {
    start_daemon "${CONFIG[@]}"
    old=$(our_containers)
    kill9_daemon
    start_daemon "${CONFIG[@]}"
    for c in $old; do
        gone() { ! our_containers | grep -qx "$c"; }
        wait_until 30 gone || fail "container $c of the killed daemon survived"
    done
    sql "$("$DBLEASE" lease --wait 30000)" "SELECT 1" >/dev/null
    stop_daemon
}

test_redis_leases_come_from_containers_too() {
    start_daemon "${CONFIG[@]}" "[redis]" "runtime = docker" "image = localhost/dblease-redis:7" \
        "min_ready = 1" "max_total = 3"
    j=$("$DBLEASE" lease --kind redis --wait 30000 --json)
    u=$(jq -r .url <<<"$j")
    [ "$(redis-cli --no-auth-warning -u "$u" SET k v)" = OK ] || fail "redis lease unusable: $u"
    other=$("$DBLEASE" lease --kind redis --wait 30000 --json)
    [ "$(jq -r .port <<<"$other")" != "$(jq -r .port <<<"$j")" ] || fail "two leases, one container"
    cross="redis://default:$(jq -r .password <<<"$j")@127.0.0.1:$(jq -r .port <<<"$other")/0"
    if redis-cli --no-auth-warning -u "$cross" GET k 2>/dev/null | grep -q v; then
        fail "one lease's password opened another's container"
    fi
    [ -n "$(api "http://d/v1.41/containers/json" | jq -r '.[] | select(.Labels["dblease.kind"] == "redis") | .Id')" ] \
        || fail "no redis container"
    if redis-cli --no-auth-warning -u "$u" CONFIG GET dir 2>/dev/null | grep -q dir; then
        fail "a lease ran CONFIG"
    fi
    "$DBLEASE" release "$(jq -r .id <<<"$j")"
    dead_redis() { ! redis-cli --no-auth-warning -u "$u" PING 2>/dev/null | grep -q PONG; }
    wait_until 10 dead_redis || fail "old redis password still works"
    stop_daemon
    [ -z "$(our_containers)" ] || fail "containers left after stop: $(our_containers)"
}

test_unreachable_engine_is_a_clear_error() {
    printf '[postgres]\nruntime = docker\ndocker_host = unix:///nonexistent/docker.sock\nstart_timeout_s = 5\n' > "$T/bad.ini"
    set +e
    out=$("$DBLEASED" --config "$T/bad.ini" --socket "$T/bad.sock" --state-dir "$T/bad" 2>&1)
    rc=$?
    set -e
    [ "$rc" != 0 ] || fail "started without an engine"
    wait_until 5 sh -c "! pgrep -f -- '[-]-state-dir $T/bad' >/dev/null" || fail "a failed daemon stayed behind"
    grep -q "container engine unreachable" <<<"$out" || fail "message: $out"
}

run_tests
