#!/usr/bin/env bash
# The release path of a database lease: the holder's sessions get a short
# grace, then end; the old credentials never open the database again; the
# outcome (reused, reloaded, recloned) is counted.
source "$(dirname "$0")/lib.sh"
# A grace well above the ~100 ms the probe needs, for loaded CI machines.
start_daemon "metrics_listen = 127.0.0.1:0" "[postgres]" "min_ready = 2" "release_grace_ms = 1500"

field() { jq -r ".$2" <<<"$1"; }
url_dead() { ! psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }
# Sessions of the lease role that are running a given query.
running() { [ "$(sql "$1" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%$2%' AND pid <> pg_backend_pid()")" -ge 1 ]; }

# The process runtime's servers get the common settings (the docker
# runtime's test checks its own).
test_servers_get_the_common_settings() {
    assert_server_settings "$("$DBLEASE" lease)"
}

# A connection closing just after the release runs its last query in the
# grace (lib.sh).
test_a_connection_closing_just_after_release_is_not_terminated() {
    closing_session_survives_release ""
    closing_session_survives_release --clean
}

# A session that stays open past the grace is still ended.
test_a_session_left_open_is_ended_after_the_grace() {
    j=$("$DBLEASE" lease --json)
    url=$(field "$j" url)
    psql "$url" -XAtq -c "SELECT pg_sleep(30), 'long_probe'" >"$T/long.out" 2>&1 &
    pid=$!
    wait_until 5 running "$url" long_probe || fail "the probe session never started"
    start=$(date +%s%N)
    "$DBLEASE" release --clean "$(field "$j" id)"
    wait "$pid" && fail "a session left open survived the release"
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    [ "$ms" -lt 5000 ] || fail "ending the session took $ms ms"
    url_dead "$url" || fail "old credentials still work"
}

# The holder keeps setting its own password while releasing --clean: the
# password it knows must not open the database afterwards.
test_a_holder_resetting_its_password_cannot_log_in_after_release() {
    j=$("$DBLEASE" lease --json)
    url=$(field "$j" url)
    user=$(field "$j" user)
    known="postgresql://$user:known@$(field "$j" host):$(field "$j" port)/$(field "$j" dbname)"
    psql "$url" -XAtq -c "DO \$\$BEGIN LOOP BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', current_user, 'known'); EXCEPTION WHEN OTHERS THEN NULL; END; COMMIT; END LOOP; END\$\$" \
        >"$T/loop.out" 2>&1 &
    pid=$!
    wait_until 5 psql "$known" -XAtqc 'SELECT 1' || fail "the loop never set its password"
    "$DBLEASE" release --clean "$(field "$j" id)"
    wait "$pid" || true
    if psql "$known" -XAtqc 'SELECT 1' >/dev/null 2>&1; then
        fail "the password the holder set still opens the database after release"
    fi
}

# A login reads the role's password verifier once, when its SCRAM exchange
# starts, and PostgreSQL checks nothing of the password after the proof: a
# holder that starts a login before its release and sends the proof only
# after its database was reused and handed out again would be in the next
# holder's database (it was, before the release ended such logins). Plain
# and --clean releases both reuse an untouched database.
test_a_login_stalled_across_the_release_does_not_get_in() {
    stalled_login_across_release ""
    stalled_login_across_release --clean
}

outcome() { # name -> releases of the built-in pool with that outcome
    "$DBLEASE" status --json |
        jq --arg o "$1" '[.pools[] | select(.kind == "postgres" and .template == "default") | .releases[$o]] | add'
}
grew() { [ "$(outcome "$1")" -gt "$2" ]; }

test_release_outcomes_are_counted_in_status_and_metrics() {
    reused=$(outcome reused)
    recloned=$(outcome recloned)
    j=$("$DBLEASE" lease --json)
    sql "$(field "$j" url)" "SELECT count(*) FROM pg_class" >/dev/null
    "$DBLEASE" release "$(field "$j" id)"
    wait_until 10 grew reused "$reused" || fail "a read-only release was not reused"
    j=$("$DBLEASE" lease --json)
    sql "$(field "$j" url)" "CREATE TABLE t (x int)"
    "$DBLEASE" release --clean "$(field "$j" id)"
    wait_until 10 grew recloned "$recloned" || fail "a clean-hinted release with DDL was not recloned"
    [ "$(outcome reused_ms)" -ge 0 ] || fail "no time for reused releases"
    port=$("$DBLEASE" status --json | jq -r .daemon.metrics | sed 's/.*://')
    m=$(curl -fsS "http://127.0.0.1:$port/metrics")
    grep -q '^dblease_pool_releases_total{kind="postgres",template="default",hash="",outcome="reused"} [1-9]' <<<"$m" \
        || fail "no reused counter in /metrics"
    grep -q '^dblease_pool_release_seconds_total{kind="postgres",template="default",hash="",outcome="recloned"} [0-9.]*$' <<<"$m" \
        || fail "no recloned time in /metrics"
}

release_with() { # sql [--clean]: a lease of the built-in template runs sql, then is released
    local j
    j=$("$DBLEASE" lease --json)
    sql "$(field "$j" url)" "$1" >/dev/null
    "$DBLEASE" release ${2:-} "$(field "$j" id)"
}

# reset = auto: once releases keep coming back dirty, a check costs more
# than it saves (the policy weighs the measured check against the measured
# clone), so later ones are recloned without it; a hint still gets one.
test_repeated_ddl_releases_skip_the_check() {
    reused=$(outcome reused)
    release_with "SELECT 1"
    wait_until 10 grew reused "$reused" || fail "a read-only release was not reused"
    recloned=$(outcome recloned)
    for i in 1 2 3; do release_with "CREATE TABLE t$i (x int)"; done
    wait_until 20 grew recloned $((recloned + 2)) || fail "DDL releases were not recloned"
    unchecked=$(outcome unchecked)
    for i in $(seq 4 24); do
        release_with "CREATE TABLE t$i (x int)"
        grew unchecked "$unchecked" && break
    done
    wait_until 10 grew unchecked "$unchecked" || fail "20 more DDL releases in a row were all checked"
    reused=$(outcome reused)
    release_with "SELECT 1" --clean
    wait_until 10 grew reused "$reused" || fail "a clean-hinted release was not checked"
}

# A lease may make its own database a template; DROP DATABASE refuses
# those, so the release must undo it before the pool drops it.
test_a_database_made_a_template_is_still_dropped() {
    j=$("$DBLEASE" lease --json)
    db=$(field "$j" dbname)
    sql "$(field "$j" url)" "ALTER DATABASE \"$db\" IS_TEMPLATE true"
    "$DBLEASE" release "$(field "$j" id)"
    k=$("$DBLEASE" lease --json)
    gone() { [ "$(sql "$(field "$k" url)" "SELECT count(*) FROM pg_database WHERE datname = '$db'")" = 0 ]; }
    wait_until 10 gone || fail "$db (IS_TEMPLATE true) was not dropped"
    "$DBLEASE" release --clean "$(field "$k" id)"
}

run_tests
