#!/usr/bin/env bash
# The client trusts only a daemon it may trust (issue 13, item 4): another
# local user who creates /tmp/dblease-$UID before the victim's daemon does,
# and listens there, must not be able to hand the victim fake leases. The
# "daemon" here is a fake that answers hello and lease; it runs as nobody,
# the victim is a user this script creates (and removes).
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to create a second user"; exit 77; }

VICTIM=dbltrust$$
useradd --system --no-create-home --shell /usr/sbin/nologin "$VICTIM"
VUID=$(id -u "$VICTIM")
SQUAT=/tmp/dblease-$VUID
FAKE_PID=
trust_cleanup() {
    [ -z "$FAKE_PID" ] || kill "$FAKE_PID" 2>/dev/null || true
    rm -rf "$SQUAT"
    userdel "$VICTIM" 2>/dev/null || true
    cleanup
}
trap trust_cleanup EXIT
mkdir -p "$STATE" && : >"$STATE/dbleased.log" # no daemon here: nothing to check
[ ! -e "$SQUAT" ] || fail "$SQUAT exists already"

mkdir -p "$T/bin" && cp "$DBLEASE" "$T/bin/dblease" && chmod 0755 "$T/bin" "$T/bin/dblease"
PLANTED='postgresql://evil:evil@203.0.113.9:5432/planted'
cat >"$T/bin/fake-daemon" <<EOF
#!/usr/bin/env bash
while IFS= read -r line; do
    id=\$(jq -c .id <<<"\$line")
    case \$(jq -r .op <<<"\$line") in
    hello) echo "{\"id\":\$id,\"ok\":true,\"daemon\":\"dbleased\",\"version\":\"0.1.0\",\"proto\":1}" ;;
    lease) echo "{\"id\":\$id,\"ok\":true,\"lease\":{\"id\":\"L-6666666666666666\",\"kind\":\"postgres\",\"url\":\"$PLANTED\",\"host\":\"203.0.113.9\",\"port\":5432,\"dbname\":\"planted\",\"user\":\"evil\",\"password\":\"evil\",\"expires_at\":1,\"ttl_s\":900,\"detached\":true}}" ;;
    *) echo "{\"id\":\$id,\"ok\":true}" ;;
    esac
done
EOF
chmod 0755 "$T/bin/fake-daemon"

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
# The victim's login environment: no XDG_RUNTIME_DIR, so the default socket
# is /tmp/dblease-$UID/dblease.sock.
as_victim() {
    setpriv --reuid="$VICTIM" --regid="$VICTIM" --clear-groups \
        env -i PATH=/usr/bin:/bin HOME=/ "$@"
}

# nobody listens at path (its directory already made) until the test ends.
squat() { # path
    # Not through as_nobody: $! must be socat (setpriv execs it), not a
    # subshell that would outlive a kill.
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
        socat "UNIX-LISTEN:$1,fork,perm-early=0777" EXEC:"$T/bin/fake-daemon" &
    FAKE_PID=$!
    wait_until 5 test -S "$1" || fail "the fake daemon did not start"
}
unsquat() {
    kill "$FAKE_PID" && wait "$FAKE_PID" 2>/dev/null || true
    FAKE_PID=
}

test_a_squatted_default_socket_directory_is_refused() {
    as_nobody mkdir -m 0755 "$SQUAT"
    squat "$SQUAT/dblease.sock"
    set +e
    out=$(as_victim "$T/bin/dblease" lease 2>"$T/err")
    rc=$?
    as_victim "$T/bin/dblease" run -- sh -c 'echo "$DATABASE_URL"' >"$T/run.out" 2>/dev/null
    run_rc=$?
    set -e
    unsquat
    [ "$run_rc" = 69 ] && [ ! -s "$T/run.out" ] ||
        fail "dblease run used the fake daemon (exit $run_rc): $(cat "$T/run.out")"
    rm -rf "$SQUAT"
    echo "exit $rc, stdout: $out, stderr: $(cat "$T/err")"
    [ "$out" != "$PLANTED" ] || fail "the victim took a lease from another user's fake daemon"
    [ "$rc" = 69 ] || fail "exit status $rc, not 69"
    grep -q "$SQUAT" "$T/err" && grep -q "uid $(id -u nobody)" "$T/err" ||
        fail "the message names neither the directory nor its owner"
}

test_a_shared_daemon_named_by_the_user_is_trusted_in_its_own_directory() {
    mkdir -m 0755 "$T/shared" && chown nobody "$T/shared"
    squat "$T/shared/dblease.sock"
    out=$(as_victim DBLEASE_SOCKET="$T/shared/dblease.sock" "$T/bin/dblease" lease) ||
        fail "a daemon in a directory only its user can write was refused"
    [ "$out" = "$PLANTED" ] || fail "unexpected lease: $out"
    # The same daemon in a directory anyone can write: anyone could have
    # put the socket there.
    chmod 0777 "$T/shared"
    set +e
    as_victim DBLEASE_SOCKET="$T/shared/dblease.sock" "$T/bin/dblease" lease >/dev/null 2>"$T/err"
    rc=$?
    set -e
    unsquat
    cat "$T/err"
    [ "$rc" = 69 ] || fail "a daemon in a world-writable directory was trusted (exit $rc)"
    grep -q "writable" "$T/err" || fail "the message does not say why"
}

run_tests
