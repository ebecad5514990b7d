#!/usr/bin/env bash
# The external runtime: a PostgreSQL server someone else runs (here one the
# test starts, as a CI service container would be). dblease only creates,
# resets and drops its own databases and roles in it, and after a crash or a
# stop none of them is left.
source "$(dirname "$0")/lib.sh"

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
EXT="$T/ext"
mkdir -p "$EXT"
as_owner() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown nobody "$EXT"
echo 'ext-secret' > "$EXT/pw" && chmod 0644 "$EXT/pw"
as_owner "$PGBIN/initdb" -D "$EXT/data" -U super --auth=scram-sha-256 --pwfile="$EXT/pw" \
    --no-sync -E UTF8 --locale=C >/dev/null
# Other tests pick ports at the same time: a taken one just means another try.
for _ in 1 2 3 4 5; do
    PORT=$(shuf -i 20000-60000 -n1)
    as_owner "$PGBIN/pg_ctl" -D "$EXT/data" -l "$EXT/server.log" -w start \
        -o "-p $PORT -k $EXT -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null && break
done
trap 'as_owner "$PGBIN/pg_ctl" -D "$EXT/data" -m immediate stop >/dev/null 2>&1; cleanup' EXIT
URL="postgresql://super:ext-secret@127.0.0.1:$PORT/postgres"
CONFIG=("[postgres]" "runtime = external" "url = $URL" "name_prefix = dblt_" "min_ready = 2")

ours() { # databases (d) or roles (r) named with our prefix, groups aside
    if [ "$1" = d ]; then
        psql "$URL" -XAtqc "SELECT count(*) FROM pg_database WHERE left(datname, 5) = 'dblt_'"
    else
        psql "$URL" -XAtqc "SELECT count(*) FROM pg_roles WHERE left(rolname, 5) = 'dblt_'
                              AND rolname NOT IN ('dblt_migrators', 'dblt_schema_users')"
    fi
}
field() { jq -r ".$2" <<<"$1"; }

test_leases_are_databases_on_the_external_server() {
    start_daemon "${CONFIG[@]}"
    j=$("$DBLEASE" lease --json)
    [ "$(field "$j" port)" = "$PORT" ] || fail "lease not on the external server: $j"
    sql "$(field "$j" url)" "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"
    [ "$(psql "$URL" -XAtqc "SELECT count(*) FROM pg_database WHERE datname = '$(field "$j" dbname)'")" = 1 ]
    [ "$("$DBLEASE" status --json | jq -r '.instances[0].runtime')" = external ]
    stop_daemon
}

test_leases_cannot_open_each_others_databases() {
    start_daemon "${CONFIG[@]}"
    a=$("$DBLEASE" lease --json)
    b=$("$DBLEASE" lease --json)
    cross="postgresql://$(field "$a" user):$(field "$a" password)@127.0.0.1:$PORT/$(field "$b" dbname)"
    if psql "$cross" -XAtqc 'SELECT 1' >/dev/null 2>&1; then fail "a opened b's database"; fi
    # (The server's own databases are its owner's to lock; ours are locked.)
    stop_daemon
}

test_killed_daemon_leaves_nothing_of_its_run_after_a_restart() {
    start_daemon "${CONFIG[@]}"
    old=$("$DBLEASE" lease)
    sql "$old" "CREATE TABLE from_the_old_run (x int)"
    kill9_daemon
    start_daemon "${CONFIG[@]}"
    if psql "$old" -XAtqc 'SELECT 1' >/dev/null 2>&1; then fail "a lease of the old run still works"; fi
    have=$("$DBLEASE" status --json | jq '.counters.databases')
    [ "$(ours d)" = "$have" ] || fail "$(ours d) prefixed databases on the server, $have tracked"
    stop_daemon
}

test_stop_drops_every_database_and_role_it_made() {
    start_daemon "${CONFIG[@]}"
    "$DBLEASE" lease >/dev/null
    [ "$(ours d)" -ge 1 ]
    stop_daemon
    [ "$(ours d)" = 0 ] || fail "$(ours d) databases left"
    [ "$(ours r)" = 0 ] || fail "$(ours r) roles left"
}

test_unreachable_external_server_is_a_clear_error() {
    set +e
    out=$(printf '[postgres]\nruntime = external\nurl = postgresql://super:x@127.0.0.1:1/postgres\nstart_timeout_s = 2\n' > "$T/bad.ini";
        "$DBLEASED" --config "$T/bad.ini" --socket "$T/bad.sock" --state-dir "$T/bad" 2>&1)
    rc=$?
    set -e
    [ "$rc" != 0 ] || fail "started against a server that is not there"
    wait_until 5 sh -c "! pgrep -f -- '[-]-state-dir $T/bad' >/dev/null" || fail "a failed daemon stayed behind"
    grep -qi "connect" <<<"$out" || fail "message: $out"
}

run_tests
