# Shared helpers for the integration suite: start a real dbleased with real
# PostgreSQL in a private directory, talk to it, and check what it leaves.
# Each test script sources this, defines test_* functions and calls run_tests.
set -euo pipefail

: "${DBLEASED:?set by meson: path to dbleased}"
: "${DBLEASE:?set by meson: path to dblease}"

# Exit 77 (meson: skipped) only when the server binaries are truly absent.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null; then
    echo "SKIP: no PostgreSQL server binaries (apt-get install postgresql)"
    exit 77
fi
for tool in psql socat jq; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is required"; exit 1; }
done

# Memory-backed when the machine has it: cloning a database on tmpfs is
# several times faster than on disk. Reachable by the unprivileged user the
# servers run as when we are root.
if [ -z "${DBLEASE_TEST_TMP:-}" ]; then
    DBLEASE_TEST_TMP=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && DBLEASE_TEST_TMP=/dev/shm
fi
T=$(mktemp -d "$DBLEASE_TEST_TMP/dblease-it.XXXXXX")
chmod 0755 "$T"
SOCK="$T/dblease.sock"
STATE="$T/state"
# One initdb for the whole suite: daemons share the cache dir.
CACHE="${DBLEASE_TEST_CACHE:-$DBLEASE_TEST_TMP/dblease-test-cache}"
mkdir -p "$CACHE" && chmod 0755 "$CACHE"
export DBLEASE_SOCKET="$SOCK"
DAEMON_PID=
FAILS=0

cleanup() {
    stop_daemon || true
    for u in $LOCAL_USERS; do userdel "$u" 2>/dev/null; groupdel "$u" 2>/dev/null || true; done
    if [ -n "${DBLEASE_TEST_KEEP:-}" ]; then
        echo "kept $T (DBLEASE_TEST_KEEP)" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# A local user (and its group) of the test's own, for attacks performed as
# another user; root only. Removed by cleanup.
LOCAL_USERS=""
add_local_user() { # name
    useradd --system --no-create-home --user-group --shell /usr/sbin/nologin "$1"
    LOCAL_USERS="$LOCAL_USERS $1"
}

fail() {
    echo "FAIL: $*" >&2
    return 1
}

# Start the daemon; extra INI lines for the config come as arguments.
# dbleased (not --foreground) returns once the first database is ready.
start_daemon() {
    {
        echo "[daemon]"
        echo "cache_dir = $CACHE"
        echo "log_level = debug"
        for line in "$@"; do echo "$line"; done
    } > "$T/dbleased.ini"
    "$DBLEASED" --config "$T/dbleased.ini" --socket "$SOCK" --state-dir "$STATE" \
        || { cat "$STATE/dbleased.log" >&2 || true; fail "dbleased did not start"; }
    DAEMON_PID=$(cat "$STATE/dbleased.lock")
}

# SIGTERM, then wait for exit: the daemon holds the lock until its last
# moment. The pid comes from the lock file, so a daemon that a test (in its
# subshell) restarted is the one stopped.
stop_daemon() { # [state dir]
    local state=${1:-$STATE}
    if [ -s "$state/dbleased.lock" ] && ! flock -n "$state/dbleased.lock" true; then
        kill -TERM "$(cat "$state/dbleased.lock")" 2>/dev/null || true
        timeout 30 flock "$state/dbleased.lock" true || fail "dbleased did not exit after SIGTERM"
    fi
    [ "$state" != "$STATE" ] || DAEMON_PID=
    check_sanitizers "$state"
}

# kill -9 the daemon and wait until it is really gone: the kernel releases
# its state-dir lock only once the process has finished exiting, which
# under load takes a moment after kill returns.
kill9_daemon() { # [state dir]
    local state=${1:-$STATE}
    kill -9 "$(cat "$state/dbleased.lock")"
    timeout 10 flock "$state/dbleased.lock" true || fail "dbleased still holds its lock 10 s after kill -9"
    [ "$state" != "$STATE" ] || DAEMON_PID=
}

# ASan/UBSan report into the daemon's log; any report fails the test.
check_sanitizers() { # [state dir]
    if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "${1:-$STATE}/dbleased.log" >&2; then
        fail "sanitizer report in the daemon log"
    fi
}

# Send request lines, print the reply lines (one connection).
rpc() {
    printf '%s\n' "$@" | socat -t 5 - "UNIX-CONNECT:$SOCK"
}

lease_url() { # extra CLI args…
    "$DBLEASE" lease "$@"
}

# A connection held open in the background: write with `send`, read $T/$1.out.
# A command prefix (setpriv …) after the name runs the socat as another user.
CONN_FDS=""
open_conn() { # name [command prefix…]
    rm -f "$T/$1.in" "$T/$1.out"
    mkfifo "$T/$1.in"
    # The socat must not inherit the write ends of the other connections'
    # fifos, or closing one of those would never reach its reader.
    (
        for fd in $CONN_FDS; do eval "exec $fd>&-"; done
        exec "${@:2}" socat -t 60 - "UNIX-CONNECT:$SOCK" < "$T/$1.in" > "$T/$1.out"
    ) &
    eval "pid_$1=$!"
    eval "exec {fd_$1}>\"$T/$1.in\""
    local fdv="fd_$1"
    CONN_FDS="$CONN_FDS ${!fdv}"
}
send() { # name line
    local fd="fd_$1"
    printf '%s\n' "$2" >&"${!fd}"
}
close_conn() {
    local fd="fd_$1"
    eval "exec ${!fd}>&-"
    CONN_FDS=$(tr ' ' '\n' <<<"$CONN_FDS" | grep -vx "${!fd}" | tr '\n' ' ')
}

# Wait for a reply with this id on a held connection; print it.
reply_of() { # name id
    wait_until 30 grep -q "\"id\":$2[,}]" "$T/$1.out" || { fail "no reply $2 on $1"; return 1; }
    grep "\"id\":$2[,}]" "$T/$1.out" | head -n1
}

# Run SQL through a lease URL; prints the single value.
sql() { # url sql
    psql "$1" -XAtq -v ON_ERROR_STOP=1 -c "$2"
}

# Wait up to $1 seconds for a command to succeed, re-checking every 20 ms.
# For conditions with no event to wait on (a database dropped in the server).
wait_until() {
    local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.02
    done
}

postgres_procs() { # processes running from our state dir
    pgrep -f -- "-D $STATE/" || true
}

# A test that cannot run here says why and returns; the script then ends
# as skipped (77) unless another test failed: never a silent pass.
skip() { # why
    echo "SKIP: $*"
    touch "$T/skipped"
}

# Run every test_* function in its own subshell (errexit active there: the
# subshell is not a condition), report TAP-like lines, fail if any failed.
run_tests() {
    local t rc
    for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
        echo "--- $t"
        set +e
        ( set -e; "$t" )
        rc=$?
        set -e
        # Tests that start their own daemon must not leave it to the next.
        if [ -z "$DAEMON_PID" ]; then
            stop_daemon || rc=1
        fi
        if [ "$rc" -eq 0 ]; then
            echo "ok: $t"
        else
            echo "not ok: $t"
            FAILS=$((FAILS + 1))
        fi
    done
    stop_daemon || FAILS=$((FAILS + 1))
    [ "$FAILS" -eq 0 ] || return 1
    if [ -e "$T/skipped" ]; then
        echo "SKIP: the rest passed, but some tests could not run here (see SKIP above)"
        exit 77
    fi
}

# ---- users (issue 13) ------------------------------------------------
# Started as root, dbleased runs its servers as the dedicated user dblease
# (systemd/dblease.sysusers makes it on a real system). Make it here when
# it is missing, like installing the package would; it stays for the next
# scripts (they run in parallel), as the shared cache does. The lock keeps
# two scripts from running useradd at once.
ensure_server_user() {
    [ "$(id -u)" = 0 ] || return 0
    id dblease >/dev/null 2>&1 && return 0
    (
        flock 9
        id dblease >/dev/null 2>&1 ||
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin dblease
    ) 9>"$DBLEASE_TEST_TMP/dblease-useradd.lock"
}
ensure_server_user

# Run a command as the servers' user (what a server, or SQL that escaped
# into a shell through one, could do).
as_server_user() {
    setpriv --reuid=dblease --regid=dblease --clear-groups "$@"
}

# A local user of the test's own, removed when the script exits (the
# caller adds del_test_user to its EXIT trap). Prints its name.
add_test_user() { # prefix
    local name="$1$$"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$name"
    echo "$name"
}
del_test_user() { # name
    userdel "$1" 2>/dev/null || true
    groupdel "$1" 2>/dev/null || true
}

# One round of the stalled-login attack (test_release.sh, test_docker.sh):
# lease, start a SCRAM login and stop it after the server's salt, release
# ($1: "" or --clean), lease until the same database comes back (the pool
# holds at least two), then send the proof: it must not get in. Further
# arguments go to every lease (--template NAME). A schema lease's role
# logs in to its template's shared database: the role is what comes back.
stalled_login_across_release() { # release flag, lease arguments
    local how=$1 j db id out held=() pid
    shift
    j=$("$DBLEASE" lease --json "$@")
    db=$(jq -r .dbname <<<"$j")
    local user
    user=$(jq -r .user <<<"$j")
    rm -f "$T/stall".*
    "$(dirname "${BASH_SOURCE[0]}")/stall_login.py" "$(jq -r .host <<<"$j")" "$(jq -r .port <<<"$j")" \
        "$user" "$db" "$(jq -r .password <<<"$j")" "$T/stall" >"$T/stall.out" 2>&1 &
    pid=$!
    wait_until 10 test -e "$T/stall.stalled" || fail "the login never got the server's salt"
    "$DBLEASE" release $how "$(jq -r .id <<<"$j")"
    id=""
    for _ in 1 2 3 4 5 6; do
        j=$("$DBLEASE" lease --json --wait 60000 "$@")
        if [ "$(jq -r .user <<<"$j")" = "$user" ]; then
            id=$(jq -r .id <<<"$j")
            break
        fi
        held+=("$(jq -r .id <<<"$j")")
    done
    for h in "${held[@]}"; do "$DBLEASE" release --clean "$h"; done
    [ -n "$id" ] || fail "$user was not handed out again"
    touch "$T/stall.go"
    wait "$pid" || true
    out=$(cat "$T/stall.out")
    "$DBLEASE" release --clean "$id"
    case "$out" in
    "LOGGED IN"*) fail "release $how: a login started before it got into the next holder's database" ;;
    REJECTED* | CLOSED*) ;;
    *) fail "release $how: the stalled login ended oddly: $out" ;;
    esac
}

# A client whose last connection closes ~100 ms after it sent the release
# (a pool.end() that resolves before its sockets close) must not be killed:
# its last query runs during the grace (release_grace_ms well above 100 ms)
# and succeeds. Release flags (--clean or none), then lease arguments.
closing_session_survives_release() { # release flag, lease arguments
    local how=$1 j pid pfd rc=0
    shift
    j=$("$DBLEASE" lease --json "$@")
    rm -f "$T/probe.in" && mkfifo "$T/probe.in"
    psql "$(jq -r .url <<<"$j")" -XAtq <"$T/probe.in" >"$T/probe.out" 2>&1 &
    pid=$!
    exec {pfd}>"$T/probe.in"
    echo "SELECT 'connected';" >&"$pfd"
    wait_until 10 grep -q connected "$T/probe.out" || fail "the probe never connected"
    "$DBLEASE" release $how "$(jq -r .id <<<"$j")"
    echo "SELECT pg_sleep(0.1), 'finished';" >&"$pfd"
    exec {pfd}>&-
    wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ] || ! grep -q finished "$T/probe.out"; then
        cat "$T/probe.out" >&2
        fail "release $how terminated a session that was about to close (rc $rc)"
    fi
}

# The settings every PostgreSQL server we run gets, whatever runs it
# (runtime/pg_settings.c), as a lease sees them: slots reserved for the
# daemon's superuser sessions (a tenth of max_connections, 3 to 10), the
# cap on a session's temporary files, statements never logged (they carry
# passwords), process titles the release reads.
assert_server_settings() { # lease url [temp_file_limit, default 4GB]
    local url=$1 tfl=${2:-4GB} max want got
    max=$(sql "$url" "SHOW max_connections")
    want=$((max / 10 < 3 ? 3 : max / 10 > 10 ? 10 : max / 10))
    got=$(sql "$url" "SELECT string_agg(current_setting(n), ' ' ORDER BY n) FROM unnest(ARRAY[
        'superuser_reserved_connections', 'temp_file_limit', 'log_statement',
        'log_min_error_statement', 'update_process_title', 'cluster_name', 'fsync',
        'authentication_timeout']) n")
    [ "$got" = "5s  off panic none $want $tfl on" ] ||
        fail "server settings (authentication_timeout cluster_name fsync log_min_error_statement log_statement superuser_reserved_connections temp_file_limit update_process_title): '$got', want '5s  off panic none $want $tfl on'"
}
