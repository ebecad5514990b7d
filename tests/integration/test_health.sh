#!/usr/bin/env bash
# Health that tells sick from busy: a server whose DDL waits on a stranger's
# half-finished login is busy, not hung, and must not be killed.
source "$(dirname "$0")/lib.sh"

# A short probe timeout, so a probe queued behind a blocked DROP DATABASE
# would be declared dead within a couple of seconds.
start_daemon "health_interval_ms = 200" "health_timeout_ms = 1000" \
    "[postgres]" "min_ready = 4" "max_total = 8"

status() { "$DBLEASE" status --json; }
pg_field() { status | jq -r ".instances[] | select(.kind == \"postgres\") | .$1"; }

# Open a TCP login as a password user, read the server's SCRAM challenge
# (PostgreSQL sends one to anyone, even for a role that does not exist),
# then never answer. Prints "challenged" once the server has asked.
half_open_login() { # port out-file
    python3 - "$1" >"$2" 2>&1 <<'EOF' &
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
params = b"user\0nobody_here\0database\0nobody_here\0\0"
s.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
head = s.recv(5)
kind, length = head[:1], struct.unpack("!i", head[1:5])[0]
body = s.recv(length - 4)
code = struct.unpack("!i", body[:4])[0]
print("challenged" if kind == b"R" and code == 10 else "unexpected %r %d" % (kind, code), flush=True)
# Hold the login open until the server gives up on it (authentication_timeout).
s.settimeout(120)
try:
    s.recv(1)
except Exception:
    pass
print("server closed", flush=True)
EOF
    HALF_OPEN_PID=$!
}

test_half_open_login_does_not_get_a_busy_server_killed() {
    pid=$(pg_field pid)
    port=$(pg_field port)
    # A holder on an attached connection: it hears instance_down if the
    # server is killed.
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    reply_of holder 1 >/dev/null
    ids=()
    for _ in 1 2 3 4; do ids+=("$("$DBLEASE" lease --wait 10000 --json | jq -r .id)"); done

    half_open_login "$port" "$T/login.out"
    wait_until 10 grep -q challenged "$T/login.out" || fail "no SCRAM challenge: $(cat "$T/login.out")"
    start=$(date +%s%N)
    # Each release drops a database: every DROP DATABASE waits for the
    # half-open backend to absorb a ProcSignalBarrier.
    for id in "${ids[@]}"; do "$DBLEASE" release "$id"; done

    # Several probe timeouts pass while the drops wait: the server stays.
    killed() { [ "$(pg_field pid)" != "$pid" ] || grep -q '"event":"instance_down"' "$T/holder.out"; }
    if wait_until 4 killed; then
        kill "$HALF_OPEN_PID" 2>/dev/null || true
        fail "a busy server was killed: $(grep -E 'health|kill' "$STATE/dbleased.log" | tail -n 5)"
    fi
    [ "$(pg_field state)" = running ] || fail "instance is $(pg_field state)"
    # Our server cuts a half-open login after a few seconds, so the drops
    # finish and the pool refills.
    wait_until 15 grep -q "server closed" "$T/login.out" || fail "the half-open login was never cut"
    waited=$(( ($(date +%s%N) - start) / 1000000 ))
    [ "$waited" -lt 15000 ] || fail "half-open login held for $waited ms"
    wait "$HALF_OPEN_PID" 2>/dev/null || true
    url=$("$DBLEASE" lease --wait 10000)
    [ "$(sql "$url" "SHOW authentication_timeout")" = 5s ] || fail "authentication_timeout is not 5s"
    ! grep -q "did not answer a health probe" "$STATE/dbleased.log" || fail "a probe was declared dead"
    [ "$(pg_field pid)" = "$pid" ] || fail "the server was replaced"
    close_conn holder
}

run_tests
