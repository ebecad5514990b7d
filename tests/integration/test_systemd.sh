#!/usr/bin/env bash
# The systemd integration: the units pass `systemd-analyze verify`, their
# command lines do what their comments say, the sysusers/tmpfiles snippets
# make what the units expect, dbleased runs under socket activation and
# speaks the notify protocol, and the man pages render.
#
# No systemd runs here: systemd-socket-activate passes the socket (as a
# .socket unit does) and a datagram socket stands in for NOTIFY_SOCKET.
# Standalone (not lib.sh): most of it needs no PostgreSQL.
set -euo pipefail

: "${DBLEASED:?set by meson: path to dbleased}"
: "${DBLEASE:?set by meson: path to dblease}"
: "${DBLEASED_SERVICE:?set by meson: the generated dbleased.service}"
: "${DBLEASED_INSTALLED:?set by meson: where the unit expects dbleased}"
: "${SYSTEMD_SRC:?set by meson: the systemd/ source dir}"
: "${MAN_SRC:?set by meson: the man/ source dir}"

# Exit 77 (meson: skipped) only when systemd's tools are truly absent.
for tool in systemd-analyze systemd-socket-activate; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: no $tool (apt-get install systemd)"
        exit 77
    fi
done
command -v socat >/dev/null || { echo "FAIL: socat is required"; exit 1; }

SOCKET_UNIT="$SYSTEMD_SRC/dbleased.socket"
if [ -z "${DBLEASE_TEST_TMP:-}" ]; then
    DBLEASE_TEST_TMP=/tmp
    [ -d /dev/shm ] && [ -w /dev/shm ] && DBLEASE_TEST_TMP=/dev/shm
fi
T=$(mktemp -d "$DBLEASE_TEST_TMP/dblease-sd.XXXXXX")
chmod 0755 "$T" # the servers (run_as) traverse it to the state dir
CACHE="${DBLEASE_TEST_CACHE:-$DBLEASE_TEST_TMP/dblease-test-cache}"
FAILS=0

# Tests run in subshells: what they start in the background is recorded
# in files, for this trap of the main shell.
cleanup() {
    local p
    if [ -s "$T/state/dbleased.lock" ]; then
        kill -TERM "$(cat "$T/state/dbleased.lock")" 2>/dev/null || true
        timeout 30 flock "$T/state/dbleased.lock" true || true
    fi
    if [ -f "$T/bg.pids" ]; then
        while read -r p; do kill -TERM "$p" 2>/dev/null || true; done < "$T/bg.pids"
    fi
    if [ -n "${DBLEASE_TEST_KEEP:-}" ]; then
        echo "kept $T (DBLEASE_TEST_KEEP)" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    return 1
}

# A unit's KEY= value (the Nth when repeated).
unit_value() { # file key [n]
    grep "^$2=" "$1" | sed -n "${3:-1}p" | cut -d= -f2-
}

# The Nth KEY= command line of the service, as systemd would run it ($$ is
# a literal $, $MAINPID the main pid), into CMD: with this build's dbleased
# for the installed one, and the test's state dir for /var/lib/dblease.
unit_cmd() { # key [n]
    local line
    line=$(unit_value "$DBLEASED_SERVICE" "$1" "${2:-1}")
    [ -n "$line" ] || fail "dbleased.service has no $1= line ${2:-1}"
    line=${line//\$\$/\$}
    line=${line//"$DBLEASED_INSTALLED"/$DBLEASED}
    line=${line//\/var\/lib\/dblease/$T\/state}
    eval "CMD=($line)"
}

# Wait up to $1 seconds for a command to succeed.
wait_until() {
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# The notify messages received so far, one state change a line, in order.
notified() {
    grep -oE 'READY=1|RELOADING=1|STOPPING=1' "$T/notify.log" || true
}

# ---- the unit files -----------------------------------------------------

# verify prints its complaints (an unknown key, a value it cannot parse)
# and still exits 0: any output fails the test. Documentation= is checked
# against the man pages we ship.
verify() { # unit files...
    local out man=(--man=no)
    if command -v man >/dev/null; then
        mkdir -p "$T/man/man1" "$T/man/man8"
        cp "$MAN_SRC/dblease.1" "$T/man/man1/"
        cp "$MAN_SRC/dbleased.8" "$T/man/man8/"
        man=(--man=yes)
    fi
    out=$(cd "$T" && MANPATH="$T/man" systemd-analyze verify "${man[@]}" "$@" 2>&1) ||
        { echo "$out" >&2; return 1; }
    [ -z "$out" ] || { echo "$out" >&2; return 1; }
}

test_units_pass_systemd_analyze_verify() {
    mkdir -p "$T/units"
    cp "$DBLEASED_SERVICE" "$SOCKET_UNIT" "$T/units/"
    verify "$T/units/dbleased.service" "$T/units/dbleased.socket" ||
        fail "systemd-analyze verify complains about the units (above)"
}

test_verify_check_catches_a_misspelt_setting() {
    mkdir -p "$T/bad"
    sed 's/^Type=notify$/Type=notifyy/' "$DBLEASED_SERVICE" > "$T/bad/dbleased.service"
    cp "$SOCKET_UNIT" "$T/bad/"
    ! verify "$T/bad/dbleased.service" "$T/bad/dbleased.socket" 2>/dev/null ||
        fail "a unit with Type=notifyy passed the verify check"
}

test_units_agree_on_paths_with_each_other_and_the_daemon() {
    local sock state
    sock=$(unit_value "$SOCKET_UNIT" ListenStream)
    [ "$sock" = /run/dblease/dblease.sock ] || fail "socket unit listens on $sock"
    [ "$(unit_value "$DBLEASED_SERVICE" RuntimeDirectory)" = dblease ] ||
        fail "RuntimeDirectory= is not the socket's directory"
    [ "$(unit_value "$DBLEASED_SERVICE" StateDirectory)" = dblease ] || fail "StateDirectory="
    grep -q -- "--state-dir /var/lib/dblease " "$DBLEASED_SERVICE" ||
        fail "ExecStart= does not use the StateDirectory= for --state-dir"
    grep -q "exec $DBLEASED_INSTALLED " "$DBLEASED_SERVICE" ||
        fail "the unit does not run $DBLEASED_INSTALLED"
    # The unit passes no --socket: the daemon's default for root must be
    # the socket unit's path (the one it gets when not socket-activated).
    if [ "$(id -u)" -eq 0 ]; then
        state=$(env -i PATH="$PATH" "$DBLEASED" --check-config 2>/dev/null | grep '^socket = ')
        [ "$state" = "socket = $sock" ] || fail "dbleased's root default is '$state'"
    fi
}

test_tmpfiles_snippet_makes_the_dirs_the_unit_declares() {
    [ "$(id -u)" -eq 0 ] || { echo "(not root: tmpfiles cannot chown; skipped)"; return 0; }
    mkdir -p "$T/root"
    systemd-tmpfiles --create --root="$T/root" "$SYSTEMD_SRC/dblease.tmpfiles"
    [ "$(stat -c %a "$T/root/run/dblease")" = "$(unit_value "$DBLEASED_SERVICE" RuntimeDirectoryMode | sed 's/^0//')" ] ||
        fail "/run/dblease: tmpfiles and RuntimeDirectoryMode= disagree"
    [ "$(stat -c %a "$T/root/var/lib/dblease")" = "$(unit_value "$DBLEASED_SERVICE" StateDirectoryMode | sed 's/^0//')" ] ||
        fail "/var/lib/dblease: tmpfiles and StateDirectoryMode= disagree"
    [ "$(stat -c %a "$T/root/var/lib/dblease")" = 711 ] || fail "the state dir is not 0711"
}

test_sysusers_snippet_makes_the_user_and_the_socket_group() {
    [ "$(id -u)" -eq 0 ] || { echo "(not root: skipped)"; return 0; }
    mkdir -p "$T/root/etc"
    systemd-sysusers --root="$T/root" "$SYSTEMD_SRC/dblease.sysusers" 2>/dev/null
    grep -q '^dblease:x:[0-9]*:[0-9]*:[^:]*:/var/lib/dblease:' "$T/root/etc/passwd" ||
        fail "no dblease user with home /var/lib/dblease: $(cat "$T/root/etc/passwd")"
    grep -q "^$(unit_value "$SOCKET_UNIT" SocketGroup):" "$T/root/etc/group" ||
        fail "the socket's group is not created"
}

# ExecStartPre= and the first ExecReload=: the configuration check.
config_check_lines() {
    echo "ExecStartPre 1"
    echo "ExecReload 1"
}

test_config_check_passes_without_a_config_file() {
    local key n
    while read -r key n; do
        unit_cmd "$key" "$n"
        DBLEASED_CONFIG="$T/absent.conf" "${CMD[@]}" || fail "$key= failed without a config file"
    done < <(config_check_lines)
}

test_config_check_passes_a_valid_config_file() {
    local key n
    printf '[daemon]\nmax_databases = 50\n' > "$T/good.conf"
    while read -r key n; do
        unit_cmd "$key" "$n"
        DBLEASED_CONFIG="$T/good.conf" "${CMD[@]}" || fail "$key= failed on a valid file"
    done < <(config_check_lines)
}

test_config_check_fails_an_invalid_config_file_with_78() {
    local key n rc
    printf '[daemon]\nmax_databasse = 50\n' > "$T/bad.conf"
    while read -r key n; do
        unit_cmd "$key" "$n"
        set +e
        DBLEASED_CONFIG="$T/bad.conf" "${CMD[@]}" 2> "$T/check.err"
        rc=$?
        set -e
        [ "$rc" -eq 78 ] || fail "$key= exited $rc on an invalid file, not 78"
        grep -q "bad.conf:2:" "$T/check.err" || fail "$key= does not name the line: $(cat "$T/check.err")"
    done < <(config_check_lines)
}

# ---- the service, socket-activated ---------------------------------------

has_postgres() {
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null
}

# ExecStart= under systemd-socket-activate, with a NOTIFY_SOCKET; the
# first connection starts it. Sets MAINPID.
start_activated() {
    mkdir -p "$CACHE" && chmod 0755 "$CACHE"
    printf '[daemon]\ncache_dir = %s\nlog_level = debug\n[postgres]\nmin_ready = 1\n' \
        "$CACHE" > "$T/dbleased.conf"
    socat -u "UNIX-RECV:$T/notify.sock" "OPEN:$T/notify.log,creat,append" &
    echo $! >> "$T/bg.pids"
    wait_until 10 test -S "$T/notify.sock" || fail "no notify socket"
    unit_cmd ExecStart
    # A daemon that failed to take the passed socket binds DBLEASE_SOCKET,
    # here rather than the system's /run/dblease.
    NOTIFY_SOCKET="$T/notify.sock" DBLEASED_CONFIG="$T/dbleased.conf" \
        DBLEASE_SOCKET="$T/not-activated.sock" \
        systemd-socket-activate -l "$T/dblease.sock" \
        -E NOTIFY_SOCKET -E DBLEASED_CONFIG -E DBLEASE_SOCKET \
        -- "${CMD[@]}" >> "$T/daemon.log" 2>&1 &
    echo $! >> "$T/bg.pids"
    wait_until 10 test -S "$T/dblease.sock" || fail "systemd-socket-activate did not listen"
    "$DBLEASE" --socket "$T/dblease.sock" status > /dev/null ||
        fail "the first connection did not start dbleased: $(cat "$T/daemon.log")"
    wait_until 60 grep -q READY=1 "$T/notify.log" ||
        fail "no READY=1 within 60 s: $(cat "$T/daemon.log")"
    MAINPID=$(cat "$T/state/dbleased.lock")
}

test_socket_activated_service_is_ready_serves_reloads_and_drains() {
    has_postgres || { echo "(no PostgreSQL server binaries: skipped)"; return 0; }
    start_activated
    # The shell of ExecStart= exec'd dbleased: the pid systemd gave the
    # socket to (LISTEN_PID) is the daemon's, so it took the socket.
    grep -q "passed by systemd" "$T/daemon.log" ||
        fail "dbleased did not take the passed socket: $(cat "$T/daemon.log")"
    [ "$(readlink "/proc/$MAINPID/exe")" = "$(readlink -f "$DBLEASED")" ] ||
        fail "the main pid $MAINPID is not dbleased"
    url=$("$DBLEASE" --socket "$T/dblease.sock" lease)
    [[ $url == postgresql://* ]] || fail "no lease through the passed socket: $url"

    # systemctl reload: the check, then SIGHUP; RELOADING=1, then READY=1.
    unit_cmd ExecReload 1
    DBLEASED_CONFIG="$T/dbleased.conf" "${CMD[@]}" || fail "the reload check failed"
    unit_cmd ExecReload 2
    "${CMD[@]}"
    wait_until 10 sh -c "grep -oE 'READY=1|RELOADING=1' '$T/notify.log' | tail -n 2 | tr '\n' ' ' | grep -qx 'RELOADING=1 READY=1 '" ||
        fail "reload did not notify RELOADING=1 then READY=1: $(notified | tr '\n' ' ')"

    # systemctl stop (KillMode=mixed): SIGTERM to the main pid alone.
    kill -TERM "$MAINPID"
    wait_until 60 sh -c "! kill -0 $MAINPID" || fail "dbleased did not exit after SIGTERM"
    notified | grep -qx STOPPING=1 || fail "no STOPPING=1: $(notified | tr '\n' ' ')"
    grep -q 'msg="stopped"' "$T/daemon.log" || fail "dbleased did not stop cleanly"

    # The socket is systemd's, for the next start: dbleased left it there.
    [ -S "$T/dblease.sock" ] || fail "dbleased removed the socket systemd passed it"
    if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T/daemon.log" >&2; then
        fail "sanitizer report in the daemon log"
    fi
}

# ---- man pages -----------------------------------------------------------

test_man_pages_render_without_warnings() {
    local page out
    for page in "$MAN_SRC/dbleased.8" "$MAN_SRC/dblease.1"; do
        if command -v man >/dev/null; then
            out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
            [ -z "$out" ] || fail "man warns about $page: $out"
            LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q '^NAME' ||
                fail "$page renders no NAME section"
        elif command -v groff >/dev/null; then
            out=$(groff -man -ww -z -Tutf8 "$page" 2>&1)
            [ -z "$out" ] || fail "groff warns about $page: $out"
        else
            echo "(neither man nor groff: $page not rendered; apt-get install man-db)"
        fi
    done
}

test_man_pages_cover_every_option_and_config_key() {
    local opt key
    for opt in $("$DBLEASED" --help | grep -oE -- '--[a-z-]+' | sort -u); do
        grep -q -- "${opt//-/\\\\-}" "$MAN_SRC/dbleased.8" || fail "dbleased.8 lacks $opt"
    done
    for opt in $("$DBLEASE" --help | grep -oE -- '--[a-z-]+' | sort -u); do
        grep -q -- "${opt//-/\\\\-}" "$MAN_SRC/dblease.1" || fail "dblease.1 lacks $opt"
    done
    for key in $("$DBLEASED" --check-config 2>/dev/null | sed -n 's/^\([a-z_]*\) = .*/\1/p' | sort -u); do
        grep -qw -- "$key" "$MAN_SRC/dbleased.8" || fail "dbleased.8 does not describe key $key"
    done
}

# Each test in its own subshell (errexit active there), TAP-like lines.
for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
    echo "--- $t"
    set +e
    (set -e; "$t")
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        echo "ok: $t"
    else
        echo "not ok: $t"
        FAILS=$((FAILS + 1))
    fi
done
[ "$FAILS" -eq 0 ]
