#!/usr/bin/env bash
# Running as a service: systemd readiness and socket activation, live
# reload, draining on SIGTERM, other users, metrics, secrets kept out of logs.
source "$(dirname "$0")/lib.sh"
for tool in curl setpriv; do command -v "$tool" >/dev/null || { echo "FAIL: $tool is required"; exit 1; }; done

status() { "$DBLEASE" status --json; }

test_notify_socket_hears_ready_status_and_stopping() {
    socat -u UNIX-RECV:"$T/notify.sock" - > "$T/notify.out" &
    listener=$!
    wait_until 5 test -S "$T/notify.sock"
    mkdir -p "$T/n"
    : > "$T/n.log" # stands in for the journal's stream: priorities on each line
    NOTIFY_SOCKET="$T/notify.sock" JOURNAL_STREAM=$(stat -c %d:%i "$T/n.log") "$DBLEASED" --foreground --socket "$T/n.sock" --state-dir "$T/n/state" \
        2> "$T/n.log" &
    daemon=$!
    wait_until 30 grep -q "READY=1" "$T/notify.out" || fail "no READY=1"
    DBLEASE_SOCKET="$T/n.sock" "$DBLEASE" lease >/dev/null # READY means it can serve
    wait_until 5 grep -q "STATUS=.*leased" "$T/notify.out" || fail "no STATUS= line"
    kill -TERM "$daemon"
    wait "$daemon" || fail "dbleased exited non-zero"
    kill "$listener" 2>/dev/null || true
    grep -q "STOPPING=1" "$T/notify.out" || fail "no STOPPING=1"
    grep -q '^<6>ts=.* level=info ' "$T/n.log" || fail "no <6> (SD_INFO) on the journal's lines: $(head -3 "$T/n.log")"
    # Draining and then stopping is one stop to systemd.
    [ "$(grep -c "STOPPING=1" "$T/notify.out")" = 1 ] || fail "STOPPING=1 sent more than once: $(cat "$T/notify.out")"
}

test_socket_activation_takes_the_passed_socket_and_leaves_it() {
    mkdir -p "$T/a"
    systemd-socket-activate -l "$T/act.sock" \
        "$DBLEASED" --foreground --state-dir "$T/a/state" 2> "$T/a.log" &
    act=$!
    wait_until 5 test -S "$T/act.sock" || fail "socket not created by the activator"
    # The first connection starts the daemon, which takes the listening fd.
    url=$(DBLEASE_SOCKET="$T/act.sock" "$DBLEASE" lease --wait 30000)
    sql "$url" "SELECT 1" >/dev/null
    grep -q "passed by systemd" "$T/a.log" || fail "daemon did not use the passed socket"
    kill -TERM "$act"
    wait "$act" || true
    [ -S "$T/act.sock" ] || fail "dbleased removed a socket systemd owns"
}

test_sighup_resizes_pools_and_keeps_leases() {
    start_daemon "[postgres]" "min_ready = 2"
    url=$("$DBLEASE" lease)
    sed -i 's/^min_ready = 2$/min_ready = 6/' "$T/dbleased.ini"
    kill -HUP "$(cat "$STATE/dbleased.lock")"
    grown() { [ "$(status | jq '.pools[] | select(.kind == "postgres" and .template == "default") | .ready')" -ge 6 ]; }
    wait_until 20 grown || fail "pool did not grow to min_ready 6: $(status | jq -c .pools)"
    sql "$url" "SELECT 1" >/dev/null || fail "a live lease broke on reload"
    printf '[daemon]\nbogus_key = 1\n' >> "$T/dbleased.ini"
    kill -HUP "$(cat "$STATE/dbleased.lock")"
    wait_until 5 grep -q "keeping the running configuration" "$STATE/dbleased.log" || fail "bad reload not reported"
    sql "$("$DBLEASE" lease)" "SELECT 1" >/dev/null
    stop_daemon
}

test_sigterm_drains_attached_leases_then_stops() {
    start_daemon
    open_conn holder
    send holder '{"id":1,"op":"lease"}'
    url=$(reply_of holder 1 | jq -r .lease.url)
    kill -TERM "$(cat "$STATE/dbleased.lock")"
    draining() { [ "$(status | jq .daemon.draining)" = true ]; }
    wait_until 5 draining || fail "not draining"
    set +e
    "$DBLEASE" lease --wait 0 2>"$T/drain.err"
    rc=$?
    set -e
    [ "$rc" = 1 ] && grep -q shutting_down "$T/drain.err" || fail "new lease while draining: $rc $(cat "$T/drain.err")"
    sql "$url" "SELECT 1" >/dev/null || fail "the attached lease broke while draining"
    close_conn holder
    timeout 10 flock "$STATE/dbleased.lock" true || fail "did not stop once the last lease ended"
    [ -z "$(postgres_procs)" ] || fail "postgres left after the drain"
}

test_drain_gives_up_after_drain_timeout() {
    start_daemon "drain_timeout_s = 1"
    open_conn stubborn
    send stubborn '{"id":1,"op":"lease"}'
    reply_of stubborn 1 >/dev/null
    kill -TERM "$(cat "$STATE/dbleased.lock")"
    timeout 10 flock "$STATE/dbleased.lock" true || fail "drain did not time out"
    grep -q "drain timeout" "$STATE/dbleased.log" || fail "timeout not logged"
    close_conn stubborn
}

test_other_users_lease_but_never_touch_foreign_leases() {
    [ "$(id -u)" = 0 ] || { skip "needs root to act as another user"; return 0; }
    start_daemon "socket_mode = 0666"
    mkdir -p "$T/bin" && cp "$DBLEASE" "$T/bin/dblease" && chmod 0755 "$T/bin" "$T/bin/dblease"
    as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups env DBLEASE_SOCKET="$SOCK" "$T/bin/dblease" "$@"; }
    theirs=$(as_nobody lease --json) || fail "nobody cannot lease"
    sql "$(jq -r .url <<<"$theirs")" "SELECT 1" >/dev/null
    mine=$("$DBLEASE" lease --json | jq -r .id)
    set +e
    out=$(as_nobody release "$mine" 2>&1)
    rc=$?
    set -e
    [ "$rc" = 1 ] && grep -q not_owner <<<"$out" || fail "nobody released root's lease: $rc $out"
    if as_nobody status --json | grep -q "$(jq -r .password <<<"$theirs")"; then
        fail "status shows a password"
    fi
    [ "$(status | jq -r --arg id "$(jq -r .id <<<"$theirs")" '.leases[] | select(.id == $id) | .owner.uid')" = "$(id -u nobody)" ]
    [ "$(status | jq -r --arg id "$mine" '.leases[] | select(.id == $id) | .owner.command')" = dblease ]
    stop_daemon
}

test_admin_ops_are_for_root_and_the_daemons_user_only() {
    [ "$(id -u)" = 0 ] || { skip "needs root to act as another user"; return 0; }
    start_daemon "socket_mode = 0666"
    as_nobody_rpc() { setpriv --reuid=nobody --regid=nogroup --clear-groups socat -t 5 - "UNIX-CONNECT:$SOCK"; }
    held=$("$DBLEASE" lease --json | jq -r .id)
    for req in '{"id":1,"op":"drain"}' '{"id":1,"op":"reload"}' \
        '{"id":1,"op":"template.drop","template":"x"}' \
        "{\"id\":1,\"op\":\"release\",\"lease\":\"$held\",\"force\":true}"; do
        r=$(echo "$req" | as_nobody_rpc)
        [ "$(jq -r .error.code <<<"$r")" = forbidden ] || fail "nobody ran $req: $r"
    done
    status | jq -e --arg id "$held" '.leases | map(.id) | index($id)' >/dev/null || fail "nobody force-released root's lease"
    [ "$(rpc '{"id":1,"op":"reload"}' | jq -r .ok)" = true ] || fail "root cannot reload"
    [ "$(rpc '{"id":1,"op":"drain"}' | jq -r .ok)" = true ] || fail "root cannot drain"
    timeout 10 flock "$STATE/dbleased.lock" true || fail "drain op did not stop the daemon"
}

test_metrics_are_scraped_and_parse() {
    start_daemon "metrics_listen = 127.0.0.1:0" # any free port; status says which
    addr=$(status | jq -r .daemon.metrics)
    [[ $addr == 127.0.0.1:* ]] || fail "status does not say where metrics are: $addr"
    port=${addr##*:}
    "$DBLEASE" lease >/dev/null
    m=$(curl -fsS "http://127.0.0.1:$port/metrics")
    grep -q '^dblease_leases_granted_total [1-9]' <<<"$m" || fail "no granted counter"
    grep -q '^dblease_lease_latency_seconds_bucket{kind="postgres",le="+Inf"} [1-9]' <<<"$m" || fail "no histogram"
    grep -q '^dblease_pool_ready{kind="postgres",template="default",hash=""} [0-9]' <<<"$m" || fail "no ready gauge"
    # Every sample line is NAME{LABELS} VALUE with a number.
    bad=$(grep -v '^#' <<<"$m" | grep -Ev '^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$' || true)
    [ -z "$bad" ] || fail "unparsable lines: $bad"
    # Prometheus' own checker: every metric has HELP and TYPE, names follow its rules.
    command -v promtool >/dev/null || fail "promtool is required (scripts/deps.sh installs prometheus)"
    lint=$(promtool check metrics <<<"$m" 2>&1) || fail "promtool check metrics: $lint"
    curl -fsS "http://127.0.0.1:$port/nope" >/dev/null 2>&1 && fail "unknown path answered 200"
    stop_daemon
}

test_passwords_never_reach_a_log() {
    start_daemon
    pw=$("$DBLEASE" lease --json | jq -r .password)
    "$DBLEASE" release "$("$DBLEASE" lease --json | jq -r .id)" --clean
    stop_daemon
    if grep -rq "$pw" "$STATE"/*.log "$STATE"/instances 2>/dev/null; then fail "a password is in a log"; fi
}

run_tests
