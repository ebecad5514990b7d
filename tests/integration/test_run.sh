#!/usr/bin/env bash
# `dblease run`: environment for any program, release on exit, exit status.
source "$(dirname "$0")/lib.sh"
start_daemon

leased_count() { "$DBLEASE" status --json | jq '[.leases[]] | length'; }
url_dead() { ! psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

test_run_exports_working_libpq_variables() {
    out=$("$DBLEASE" run -- sh -c 'echo "$PGHOST|$PGPORT|$PGDATABASE|$PGUSER"; psql -XAtqc "SELECT current_database() || current_user"')
    host_line=$(head -n1 <<<"$out")
    IFS='|' read -r h p d u <<<"$host_line"
    [ -n "$h" ] && [ -n "$p" ] && [ -n "$d" ] && [ -n "$u" ] || fail "missing variables: $host_line"
    [ "$(tail -n1 <<<"$out")" = "$d$u" ] || fail "psql via PG* variables reached $(tail -n1 <<<"$out")"
}

test_run_exports_a_database_url() {
    out=$("$DBLEASE" run --postgres -- sh -c 'psql "$DATABASE_URL" -XAtqc "SELECT 1"')
    [ "$out" = 1 ]
}

test_run_passes_the_exit_status_through() {
    set +e
    "$DBLEASE" run -- sh -c 'exit 7'
    rc=$?
    set -e
    [ "$rc" = 7 ] || fail "exit $rc"
}

test_run_reports_death_by_signal_as_128_plus_signal() {
    set +e
    "$DBLEASE" run -- sh -c 'kill -TERM $$'
    rc=$?
    set -e
    [ "$rc" = 143 ] || fail "exit $rc"
}

test_run_releases_its_lease_when_the_command_ends() {
    before=$(leased_count)
    url=$("$DBLEASE" run -- sh -c 'echo "$DATABASE_URL"')
    [ "$(leased_count)" = "$before" ] || fail "lease still held after run"
    wait_until 5 url_dead "$url" || fail "credentials still work after run ended"
}

test_killed_client_has_its_lease_reclaimed_within_one_second() {
    # The command says its pid (it becomes the sleep), so the test ends
    # exactly what it started, not every "sleep 600" on the machine.
    "$DBLEASE" run -- sh -c 'echo $$ > "$0.pid"; echo "$DATABASE_URL" > "$0"; exec sleep 600' "$T/url" &
    cli=$!
    wait_until 10 test -s "$T/url" || fail "run never started its command"
    url=$(cat "$T/url")
    sql "$url" "CREATE TABLE t (x int)"
    kill -9 "$cli"
    kill -9 "$(cat "$T/url.pid")"
    wait_until 1 url_dead "$url" || fail "lease of a SIGKILLed client not reclaimed within 1 s"
    [ "$("$DBLEASE" status --json | jq '.counters.leases_disconnected')" -ge 1 ]
}

test_run_without_a_command_is_a_usage_error() {
    set +e
    "$DBLEASE" run 2>/dev/null
    rc=$?
    set -e
    [ "$rc" = 2 ] || fail "exit $rc"
}

run_tests
