#!/usr/bin/env bash
# The daemon's own life: clean stop, crash and restart, no orphans.
source "$(dirname "$0")/lib.sh"

no_postgres_left() { [ -z "$(postgres_procs)" ]; }
# A zombie is dead: it only waits to be reaped (by init, outside our control).
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
# A process that got its death signal is gone a moment later, not at once:
# pgrep no longer lists one whose memory is released, but /proc still has it.
gone() { ! alive "$1"; }

test_sigterm_stops_every_server_it_started() {
    start_daemon
    "$DBLEASE" lease >/dev/null
    [ -n "$(postgres_procs)" ] || fail "no postgres running under $STATE"
    stop_daemon
    no_postgres_left || fail "postgres survived SIGTERM: $(postgres_procs)"
    [ -z "$(ls -A "$STATE/instances" 2>/dev/null)" ] || fail "instance dirs left: $(ls "$STATE/instances")"
    [ ! -e "$SOCK" ] || fail "socket file left behind"
}

test_sigkilled_daemon_leaves_no_server_and_restarts_clean() {
    start_daemon
    url=$("$DBLEASE" lease)
    old_pids=$(postgres_procs)
    # The postmaster's SysV segment id: line 7 of postmaster.pid is "key id".
    shmid=$(sed -n 7p "$STATE"/instances/*/data/postmaster.pid | awk '{print $2}')
    kill9_daemon
    # Servers are tied to the daemon's life (parent-death signal).
    wait_until 10 no_postgres_left || fail "postgres outlived a SIGKILLed daemon: $(postgres_procs)"
    start_daemon
    if psql "$url" -XAtqc 'SELECT 1' >/dev/null 2>&1; then fail "a lease of the old run still works"; fi
    for p in $old_pids; do
        if ! wait_until 5 gone "$p"; then fail "old server pid $p alive after restart: $(ps -o pid=,ppid=,args= -p "$p"); old: $old_pids"; fi
    done
    if [ -n "$shmid" ] && ipcs -m | awk -v id="$shmid" '$2 == id {found=1} END {exit !found}'; then
        fail "shared memory segment $shmid of the killed server is still there"
    fi
    sql "$("$DBLEASE" lease)" "SELECT 1" >/dev/null
    stop_daemon
}

test_root_only_state_dir_gets_server_data_elsewhere_and_cleans_it() {
    [ "$(id -u)" = 0 ] || { skip "the servers run as another user only under root"; return 0; }
    private="$T/private"
    mkdir -m 0700 "$private"
    "$DBLEASED" --socket "$T/p.sock" --state-dir "$private/state"
    pid=$(cat "$private/state/dbleased.lock")
    root=$(sed -n 's/.*server data lives in \([^"]*\)".*/\1/p' "$private/state/dbleased.log")
    [ -d "$root/instances" ] || fail "no fallback server dir announced in the log"
    sql "$(DBLEASE_SOCKET="$T/p.sock" "$DBLEASE" lease)" "SELECT 1" >/dev/null
    kill -TERM "$pid"
    timeout 30 flock "$private/state/dbleased.lock" true
    [ ! -e "$root" ] || fail "fallback dir $root left behind"
}

test_second_daemon_on_the_same_state_dir_is_refused() {
    start_daemon
    set +e
    out=$("$DBLEASED" --socket "$T/other.sock" --state-dir "$STATE" 2>&1)
    rc=$?
    set -e
    [ "$rc" != 0 ] || fail "second daemon started"
    grep -q "in use by another dbleased" <<<"$out" || fail "message: $out"
    sql "$("$DBLEASE" lease)" "SELECT 1" >/dev/null
    stop_daemon
}

test_check_config_rejects_unknown_keys_with_file_and_line() {
    printf '[daemon]\nmax_databases = 10\nbogus = 1\n' > "$T/bad.ini"
    set +e
    out=$("$DBLEASED" --config "$T/bad.ini" --check-config 2>&1)
    rc=$?
    set -e
    [ "$rc" = 78 ] || fail "exit $rc"
    grep -q "bad.ini:3: unknown key 'bogus'" <<<"$out" || fail "message: $out"
}

test_check_config_accepts_the_defaults() {
    "$DBLEASED" --check-config --socket "$T/x.sock" >/dev/null 2>&1
}

run_tests
