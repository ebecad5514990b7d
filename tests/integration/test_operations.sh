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

# --check-config exits 78 with FILE:LINE and the key; $1: INI text.
check_config_refuses() { # ini expected-key
    printf '%b' "$1" > "$T/bad.ini"
    set +e
    "$DBLEASED" --check-config --config "$T/bad.ini" --state-dir "$T/cc" >/dev/null 2>"$T/cc.err"
    rc=$?
    set -e
    [ "$rc" = 78 ] || fail "--check-config accepted $1 (exit $rc): $(cat "$T/cc.err")"
    grep -q "$T/bad.ini:[0-9]\+: .*$2" "$T/cc.err" || fail "no FILE:LINE naming $2: $(cat "$T/cc.err")"
}

test_check_config_refuses_what_start_up_would_refuse_with_file_and_line() {
    check_config_refuses '[daemon]\nmetrics_listen = 127.0.0.1\n' metrics_listen
    check_config_refuses '[daemon]\nmetrics_listen = localhost:99999\n' metrics_listen
    check_config_refuses '[daemon]\nlog_level = loud\n' log_level
    check_config_refuses '[postgres]\nisolation = rows\n' isolation
    check_config_refuses '[postgres]\n\nreset = sometimes\n' reset
    check_config_refuses '[postgres]\nbin_dir = /nonexistent\n' bin_dir
    check_config_refuses '[template.app]\nsql_dir = /nonexistent/sql\n' sql_dir
    check_config_refuses '[daemon]\nrun_as = no-such-user-here\n' run_as
    # and start-up itself says the same, before anything starts
    set +e
    "$DBLEASED" --config "$T/bad.ini" --socket "$T/x.sock" --state-dir "$T/x" 2>"$T/x.err"
    rc=$?
    set -e
    [ "$rc" = 78 ] && grep -q "bad.ini:2: .*run_as" "$T/x.err" || fail "start-up: $rc $(cat "$T/x.err")"
    # under systemd (stderr is the journal's stream) the line is an error to journald
    : > "$T/j.err"
    set +e
    JOURNAL_STREAM=$(stat -c %d:%i "$T/j.err") "$DBLEASED" --check-config --config "$T/bad.ini" \
        --state-dir "$T/x" >/dev/null 2>>"$T/j.err"
    set -e
    grep -q "^<3>dbleased: .*run_as" "$T/j.err" || fail "no <3> (SD_ERR): $(cat "$T/j.err")"
}

test_check_config_prints_the_values_the_daemon_will_use_and_no_secret() {
    printf '[postgres]\nruntime = external\nurl = postgresql://admin:s3cr%%40t@127.0.0.1:5432/postgres\n' > "$T/ext.ini"
    "$DBLEASED" --check-config --config "$T/ext.ini" --state-dir "$T/cc" > "$T/cc.out" 2>"$T/cc.err" ||
        fail "--check-config refused: $(cat "$T/cc.err")"
    if grep -q 's3cr' "$T/cc.out" "$T/cc.err"; then fail "the password was printed: $(grep url "$T/cc.out")"; fi
    grep -q '^url = postgresql://admin:\*\*\*@127.0.0.1:5432/postgres$' "$T/cc.out" || fail "url: $(grep url "$T/cc.out")"
    "$DBLEASED" --check-config --state-dir "$T/cc" > "$T/cc.out" 2>"$T/cc.err" || fail "defaults refused: $(cat "$T/cc.err")"
    for key in cache_dir run_as socket state_dir; do
        grep -q "^$key = ." "$T/cc.out" || fail "$key printed empty: $(cat "$T/cc.out")"
    done
    grep -q "^bin_dir = /.*postgresql" "$T/cc.out" || fail "postgres bin_dir not resolved: $(grep bin_dir "$T/cc.out")"
}

test_a_redis_bin_dir_without_redis_server_leaves_postgres_serving() {
    mkdir -p "$T/empty"
    printf '[redis]\nbin_dir = %s/empty\n' "$T" > "$T/rd.ini"
    "$DBLEASED" --check-config --config "$T/rd.ini" --state-dir "$T/cc" >/dev/null 2>"$T/cc.err" ||
        fail "--check-config refused what start-up serves: $(cat "$T/cc.err")"
    grep -q "warning: .*redis-server" "$T/cc.err" || fail "no warning: $(cat "$T/cc.err")"
    start_daemon "[redis]" "bin_dir = $T/empty"
    sql "$("$DBLEASE" lease)" "SELECT 1" >/dev/null || fail "postgres does not serve"
    set +e
    "$DBLEASE" lease --kind redis 2>"$T/rd.err"
    rc=$?
    set -e
    [ "$rc" != 0 ] && grep -q "redis-server" "$T/rd.err" || fail "redis lease: $rc $(cat "$T/rd.err")"
    "$DBLEASE" status --json | jq -e '.daemon.redis.state == "failed" and (.daemon.redis.error | test("redis-server"))' \
        >/dev/null || fail "status does not say why: $("$DBLEASE" status --json | jq -c .daemon)"
    "$DBLEASE" status | grep -q "redis: failed: .*redis-server" || fail "status table: $("$DBLEASE" status | head -3)"
    stop_daemon
}

run_tests
