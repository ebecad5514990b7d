#!/usr/bin/env bash
# What a Redis lease holder leaves behind, and what the next holder of the
# same server finds. max_total = 1: the next lease is always the same server.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/redis_lib.sh"

start_daemon "[redis]" "min_ready = 1" "max_total = 1"

lease_json() { "$DBLEASE" lease --kind redis --wait 10000 --json; }
# Set by lease_vars (below), one group per lease a test holds.
a_id='' a_port='' a_url='' b_id='' b_port='' b_url='' c_url=''
PLANTED_LIB='#!lua name=planted
redis.register_function("planted", function() return "planted" end)'

test_function_planted_by_a_holder_is_gone_for_the_next() {
    a=$(lease_json)
    [ "$(probe "$a" FUNCTION LOAD "$PLANTED_LIB")" = planted ] || fail "could not load a function"
    [ "$(probe "$a" FCALL planted 0)" = planted ]
    "$DBLEASE" release "$(field "$a" id)"
    b=$(lease_json)
    [ "$(field "$b" port)" = "$(field "$a" port)" ] || fail "not the same server"
    if out=$(probe "$b" FCALL planted 0); then fail "the next holder called FCALL planted: $out"; fi
    [ "$(probe "$b" FUNCTION LIST)" = "(0 elements)" ] || fail "a function library survived"
    "$DBLEASE" release "$(field "$b" id)"
}

# Every command the lease user may run either changes something a release
# clears (keys, scripts, functions, connections, statistics), or nothing, or
# is denied (redis_commands.py holds the reviewed list).
test_every_command_a_lease_may_run_is_cleared_by_the_release_or_denied() {
    lease_vars a
    rcli "$a_url" --json COMMAND >"$T/commands.json"
    [ "$(jq length "$T/commands.json")" -gt 200 ] || fail "COMMAND as the lease: $(head -c 300 "$T/commands.json")"
    python3 "$(dirname "$0")/redis_commands.py" <"$T/commands.json" ||
        fail "commands no release accounts for (above): review them in redis_commands.py"
    for cmd in "MIGRATE 127.0.0.1 1 k 0 100" "SCRIPT DEBUG YES"; do
        # shellcheck disable=SC2086
        [[ $(rcli "$a_url" $cmd 2>&1) == NOPERM* ]] || fail "a lease ran $cmd"
    done
    "$DBLEASE" release "$a_id"
}

# A shared server cannot flush one holder's libraries under the others: none
# can be loaded there. Scripts are content-addressed and stay usable.
test_db_isolation_denies_function_libraries() {
    stop_daemon
    start_daemon "[redis]" "isolation = db" "min_ready = 2" "max_total = 2" "maxmemory_mb = 8"
    lease_vars a
    out=$(rcli "$a_url" FUNCTION LOAD "$PLANTED_LIB" 2>&1)
    [[ $out == NOPERM* ]] || fail "a db lease loaded a function library: $out"
    for sub in "FUNCTION FLUSH" "FUNCTION DELETE planted" "FUNCTION RESTORE x"; do
        # shellcheck disable=SC2086
        [[ $(rcli "$a_url" $sub 2>&1) == NOPERM* ]] || fail "a db lease ran $sub"
    done
    [ "$(rcli "$a_url" EVAL "return 'ok'" 0)" = ok ] || fail "scripts should work"
    # One server, one limit: the leases' budgets together.
    [ "$(rcli "$a_url" INFO memory | tr -d '\r' | sed -n 's/^maxmemory://p')" = $((16 * 1048576)) ] ||
        fail "the shared server's maxmemory is not maxmemory_mb × max_total"
    stop_daemon
    start_daemon "[redis]" "min_ready = 1" "max_total = 1"
}

# ---- maxmemory: a full lease gets OOM errors, and keeps its keys

# Values of 1 MiB from a Lua script (one command, no 1 MiB argument) until
# the server refuses with OOM; prints the reply that ended it.
fill_until_refused() { # url
    local n out
    for n in $(seq 1 40); do
        out=$(rcli "$1" EVAL "return redis.call('set', KEYS[1], string.rep('x', 1048576))" 1 "big$n" 2>&1)
        [ "$out" = OK ] || { echo "$out"; return 0; }
    done
    echo "40 MiB written, never refused"
}

test_a_full_lease_gets_oom_and_others_are_not_disturbed() {
    stop_daemon
    start_daemon "[redis]" "min_ready = 2" "max_total = 2" "maxmemory_mb = 8"
    lease_vars a
    lease_vars b
    [ "$a_port" != "$b_port" ] || fail "two leases on one server"
    [ "$(rcli "$b_url" SET mine v)" = OK ]
    out=$(fill_until_refused "$a_url")
    [[ $out == *OOM* ]] || fail "writing past maxmemory: $out"
    # Nothing was evicted to make room: the first value is still there.
    [ "$(rcli "$a_url" STRLEN big1)" = 1048576 ] || fail "a full lease lost its keys"
    [ "$(rcli "$a_url" GET big1 | wc -c)" -gt 1000000 ]
    # The other lease writes and reads as before.
    [ "$(rcli "$b_url" SET more v)" = OK ] || fail "the other lease was refused"
    [ "$(rcli "$b_url" GET mine)" = v ]
    # Released, the full server is flushed and takes writes again.
    "$DBLEASE" release "$a_id"
    lease_vars c
    [ "$(rcli "$c_url" SET after v)" = OK ] || fail "a flushed server still refuses"
    stop_daemon
    start_daemon "[redis]" "min_ready = 1" "max_total = 1"
}

# ---- the catalogue: a workload, the release, then what the next holder sees

rcli() { redis-cli --no-auth-warning -u "$1" "${@:2}"; } # url cmd…
# Commands on stdin, one a line, on one connection that then closes.
run_lines() { redis-cli --no-auth-warning -u "$1" >"$T/wl.out" 2>&1; } # url
# A connection left open by the holder: commands go in now, it never quits.
HELD=() HELD_N=0
hold() { # url line…
    local fifo="$T/held.$((HELD_N += 1))"
    mkfifo "$fifo"
    redis-cli --no-auth-warning -u "$1" <"$fifo" >"$fifo.out" 2>&1 &
    HELD+=("$!")
    exec {hfd}>"$fifo"
    shift
    printf '%s\n' "$@" >&"$hfd"
    # The open write end keeps it waiting for more (closed in end_held).
    HELD_FDS+=("$hfd")
    wait_until 5 test -s "$fifo.out" || fail "held connection did not answer"
}
HELD_FDS=()
end_held() {
    for fd in "${HELD_FDS[@]}"; do eval "exec $fd>&-"; done
    for pid in "${HELD[@]}"; do kill "$pid" 2>/dev/null || true; done
    HELD=() HELD_FDS=()
}
denied() { grep -q NOPERM "$T/wl.out" || fail "not denied: $(cat "$T/wl.out")"; }

SHA=$(printf '%s' "return 'planted'" | sha1sum | cut -d' ' -f1)

wl_reads_only() { printf '%s\n' "GET k" "EXISTS k" "KEYS *" "SCAN 0" "DBSIZE" "TTL k" "INFO" "PING" | run_lines "$1"; }
wl_expire_missing_key() { printf '%s\n' "EXPIRE k 100" "PERSIST k" "DEL k" "UNLINK k" | run_lines "$1"; }
wl_select_only() { printf '%s\n' "SELECT 5" "GET k" "SELECT 15" "DBSIZE" | run_lines "$1"; }
wl_publish() { printf '%s\n' "PUBLISH ch hello" "SPUBLISH sch hello" | run_lines "$1"; }
wl_admin_denied() {
    printf '%s\n' "CONFIG SET maxmemory 1" "ACL SETUSER default nopass" "MONITOR" \
        "CLIENT KILL USER default" "CLIENT NO-EVICT on" "SAVE" | run_lines "$1"
    [ "$(grep -c NOPERM "$T/wl.out")" = 6 ] || fail "admin commands ran: $(cat "$T/wl.out")"
}
wl_migrate_denied() { printf '%s\n' "SET k v" "MIGRATE 127.0.0.1 1 k 0 100" | run_lines "$1"; denied; }
wl_script_debug_denied() { printf '%s\n' "SCRIPT DEBUG YES" | run_lines "$1"; denied; }
wl_eval_then_script_flush() { printf '%s\n' "EVAL \"return 1\" 0" "SCRIPT FLUSH" | run_lines "$1"; }
wl_subscriber_left_open() { hold "$1" "SUBSCRIBE ch"; hold "$1" "PSUBSCRIBE p*"; }
wl_blocked_left_open() { hold "$1" "CLIENT SETNAME blocked" "BLPOP q 0"; }
wl_name_left_open() { hold "$1" "CLIENT SETNAME planted" "CLIENT GETNAME"; }
# The tracking table keeps the key read until it is written or flushed.
wl_tracking_left_open() { hold "$1" "CLIENT TRACKING on" "GET k"; }
wl_transaction_left_open() { hold "$1" "MULTI" "SET k v" "SELECT 4" "SET k v"; }
wl_write() { printf '%s\n' "SET k v" | run_lines "$1"; }
wl_write_then_delete() { printf '%s\n' "SET k v" "DEL k" | run_lines "$1"; }
wl_incr_then_decr() { printf '%s\n' "INCR c" "DECR c" | run_lines "$1"; }
wl_expire_set() { printf '%s\n' "SET k v EX 100" "HSET h f v" "PEXPIRE h 100000" | run_lines "$1"; }
wl_expired_already() { printf '%s\n' "SET k v PX 1" | run_lines "$1"; }
wl_select_other_db_write() { printf '%s\n' "SELECT 7" "SET k v" | run_lines "$1"; }
wl_swapdb() { printf '%s\n' "SET k v" "SWAPDB 0 9" | run_lines "$1"; }
wl_move() { printf '%s\n' "SET k v" "MOVE k 3" | run_lines "$1"; }
wl_flushall_self() { printf '%s\n' "SET k v" "FLUSHALL" | run_lines "$1"; }
wl_multi_exec() { printf '%s\n' "MULTI" "SET k v" "LPUSH l a" "EXEC" | run_lines "$1"; }
wl_stream_group() { printf '%s\n' "XADD s * f v" "XGROUP CREATE s g 0" | run_lines "$1"; }
wl_hyperloglog() { printf '%s\n' "PFADD h a b c" | run_lines "$1"; }
wl_function_load() { rcli "$1" FUNCTION LOAD "$PLANTED_LIB" >"$T/wl.out"; }
wl_function_load_then_delete() {
    rcli "$1" FUNCTION LOAD "$PLANTED_LIB" >/dev/null
    rcli "$1" FUNCTION DELETE planted >"$T/wl.out"
}
wl_script_load() { rcli "$1" SCRIPT LOAD "return 'planted'" >"$T/wl.out"; }
wl_eval() { rcli "$1" EVAL "return 'planted'" 0 >"$T/wl.out"; }
wl_eval_write() { rcli "$1" EVAL "redis.call('set', 'k', 'v')" 0 >"$T/wl.out"; }

# name → what the release must have taken: reused (nothing left) or flushed
CATALOGUE=(
    reads_only:reused expire_missing_key:reused select_only:reused publish:reused
    admin_denied:reused migrate_denied:flushed script_debug_denied:reused
    eval_then_script_flush:reused subscriber_left_open:reused blocked_left_open:reused
    name_left_open:reused tracking_left_open:flushed transaction_left_open:reused
    write:flushed write_then_delete:flushed incr_then_decr:flushed expire_set:flushed
    expired_already:flushed select_other_db_write:flushed swapdb:flushed move:flushed
    flushall_self:flushed multi_exec:flushed stream_group:flushed hyperloglog:flushed
    function_load:flushed function_load_then_delete:flushed script_load:flushed eval:flushed
    eval_write:flushed
)

releases() { # outcome → how many releases of the redis pool took it
    "$DBLEASE" status --json | jq -r ".pools[] | select(.kind == \"redis\") | .releases.$1"
}
# What a fresh server shows its first holder (whose own connection is one
# of the two clients; the daemon's is the other). Few processes: the
# machine is shared, and each redis-cli costs more than the reset itself.
check_fresh() { # url workload
    local j=$1 wl=$2 stats info sizes
    stats=$(rcli "$j" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):.*/\1/p' |
        grep -vxE 'auth|select|info|ping|config\|resetstat|hello' || true)
    [ -z "$stats" ] || fail "$wl: statistics left: $stats"
    info=$(rcli "$j" INFO keyspace memory clients stats | tr -d '\r')
    want() { grep -qx "$1" <<<"$info" || fail "$wl: want $1, got $(grep "^${1%%:*}:" <<<"$info")"; }
    ! grep -q '^db' <<<"$info" || fail "$wl: keys left: $(grep '^db' <<<"$info")"
    want number_of_cached_scripts:0
    want number_of_libraries:0
    want connected_clients:2 # the holder's connections are gone
    want blocked_clients:0
    want pubsub_channels:0
    want pubsub_patterns:0
    want tracking_total_keys:0
    want maxmemory_policy:noeviction
    sizes=$(for db in $(seq 0 15); do printf 'SELECT %d\nDBSIZE\n' "$db"; done | rcli "$j" | grep -vx OK | sort -u)
    [ "$sizes" = 0 ] || fail "$wl: DBSIZE in some database: $sizes"
    [ "$(printf '%s\n' "FUNCTION LIST" "SCRIPT EXISTS $SHA" | rcli "$j")" = "$(printf '\n0')" ] ||
        fail "$wl: a function library or the planted script is left"
    [[ $(rcli "$j" FCALL planted 0) == ERR* ]] || fail "$wl: FCALL planted ran"
}

# One jq for each lease: id, port and url.
lease_vars() { # prefix
    local id port url
    read -r id port url < <(lease_json | jq -r '[.id, .port, .url] | @tsv')
    printf -v "$1_id" %s "$id"
    printf -v "$1_port" %s "$port"
    printf -v "$1_url" %s "$url"
}

test_no_workload_leaves_anything_for_the_next_holder() {
    local n=0 entry wl want before after
    [ "${#CATALOGUE[@]}" -ge 15 ] || fail "catalogue too short"
    for entry in "${CATALOGUE[@]}"; do
        wl=${entry%%:*} want=${entry##*:}
        before=$(releases "$want")
        lease_vars a
        "wl_$wl" "$a_url" || fail "$wl: the workload failed: $(cat "$T/wl.out" 2>/dev/null)"
        # Both kinds of release go through the same check.
        if [ $((n % 2)) = 0 ]; then
            "$DBLEASE" release "$a_id" --clean
        else
            "$DBLEASE" release "$a_id"
        fi
        lease_vars b
        end_held
        [ "$b_port" = "$a_port" ] || fail "$wl: not the same server"
        [[ $(rcli "$a_url" PING 2>&1) != PONG ]] || fail "$wl: the old password still works"
        after=$(releases "$want")
        [ "$after" = $((before + 1)) ] || fail "$wl: expected $want ($before -> $after)"
        check_fresh "$b_url" "$wl"
        "$DBLEASE" release "$b_id"
        n=$((n + 1))
    done
    echo "$n workloads"
}

run_tests
