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

running_pid() { status | jq -r '.instances[] | select(.kind == "postgres" and .state == "running") | .pid'; }
replaced() { local p; p=$(running_pid); [ -n "$p" ] && [ "$p" != "$1" ]; }
# The backend serving the daemon's health probe.
probe_backend() {
    local dir="$STATE/instances/$(pg_field id)"
    psql -h "$dir/sock" -p "$(pg_field port)" -U dblease -d postgres -XAtqc \
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'dbleased-health'"
}
has_probe_backend() { [ -n "$(probe_backend)" ]; }
# The daemon's log from line $1 on: what this test caused.
log_mark() { wc -l <"$STATE/dbleased.log"; }
log_since() { tail -n +"$(($1 + 1))" "$STATE/dbleased.log"; }
# grep -c reads to the end: -q would stop early, and pipefail would
# report the SIGPIPE of tail.
logged_since() { log_since "$1" | grep -c "$2" >/dev/null; }

test_a_stuck_probe_connection_alone_does_not_get_the_server_killed() {
    pid=$(pg_field pid)
    mark=$(log_mark)
    wait_until 10 has_probe_backend || fail "no health probe connection"
    backend=$(probe_backend)
    kill -STOP "$backend"
    wait_until 10 logged_since "$mark" "busy, not hung" ||
        { kill -CONT "$backend"; fail "the fresh connection was not asked"; }
    kill -CONT "$backend"
    [ "$(pg_field pid)" = "$pid" ] || fail "the server was replaced"
    ! logged_since "$mark" "did not answer a health probe" || fail "a probe was declared dead"
}

test_a_hung_server_is_killed_with_the_evidence_logged() {
    old=$(running_pid)
    mark=$(log_mark)
    # Every backend stops with the postmaster, the probe's too: it must
    # exist first, or it would go on answering.
    wait_until 10 has_probe_backend || fail "no health probe connection"
    kids=$(pgrep -P "$old" || true)
    kill -STOP "$old" $kids
    wait_until 15 replaced "$old" || { kill -CONT "$old" $kids; fail "hung postgres not replaced"; }
    logged_since "$mark" "hung: the probe connection:.*admin connections:" ||
        fail "the kill's evidence is not in the log"
    logged_since "$mark" "did not answer a health probe.*killed it" || fail "no kill logged"
}

test_half_open_login_does_not_get_a_busy_server_killed() {
    pid=$(pg_field pid)
    port=$(pg_field port)
    mark=$(log_mark)
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
    ! logged_since "$mark" "did not answer a health probe" || fail "a probe was declared dead"
    [ "$(pg_field pid)" = "$pid" ] || fail "the server was replaced"
    close_conn holder
}

# A restarted server's old data dir is removed before the new one is made:
# with this many files that takes a second or more, which must not be a
# second in which nobody gets an answer.
test_status_answers_while_a_big_data_dir_is_removed() {
    pid=$(pg_field pid)
    dir="$STATE/instances/$(pg_field id)"
    [ -d "$dir" ] || fail "no instance dir $dir"
    python3 - "$dir/junk" <<'EOF'
import os, sys
os.mkdir(sys.argv[1])
seed = os.path.join(sys.argv[1], "seed")
open(seed, "w").close()
for d in range(150):  # hard links: quick to make, as slow to remove as files
    sub = os.path.join(sys.argv[1], str(d))
    os.mkdir(sub)
    for f in range(1000):
        os.link(seed, os.path.join(sub, str(f)))
EOF
    # Ask for status every 10 ms until the server is replaced; the slowest
    # answer is what a client waited at worst.
    python3 - "$SOCK" "$pid" >"$T/latency.out" <<'EOF' &
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
worst, n, deadline = 0.0, 0, time.time() + 30
while time.time() < deadline:
    n += 1
    t = time.time()
    f.write(b'{"id":%d,"op":"status"}\n' % n)
    f.flush()
    reply = json.loads(f.readline())
    worst = max(worst, time.time() - t)
    insts = reply.get("instances") or reply.get("status", {}).get("instances", [])
    if any(i["kind"] == "postgres" and i["state"] == "running" and str(i.get("pid")) != sys.argv[2]
           for i in insts):
        print("replaced worst_ms=%d" % (worst * 1000))
        sys.exit(0)
    time.sleep(0.01)
print("not replaced worst_ms=%d" % (worst * 1000))
EOF
    watcher=$!
    kill -9 "$pid"
    wait "$watcher" || true
    cat "$T/latency.out"
    grep -q "^replaced" "$T/latency.out" || fail "the server was not replaced"
    worst=$(sed 's/.*worst_ms=//' "$T/latency.out")
    [ "$worst" -lt 500 ] || fail "status took $worst ms while the old data dir was removed"
    [ ! -e "$dir/junk" ] || fail "the old data dir was not removed"
}

# Stops the daemon: runs last (tests run in name order).
test_stopped_while_down_leaves_no_instance_dir() {
    dir="$STATE/instances/$(pg_field id)"
    kill -9 "$(pg_field pid)"
    failed() { [ "$(pg_field state)" = failed ]; }
    wait_until 10 failed || fail "the instance did not go down"
    stop_daemon
    [ ! -e "$dir" ] || fail "$dir is left after the stop"
}

run_tests
