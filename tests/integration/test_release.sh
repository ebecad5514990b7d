#!/usr/bin/env bash
# The release path of a database lease: the holder's sessions get a short
# grace, then end; the old credentials never open the database again; the
# outcome (reused, reloaded, recloned) is counted.
source "$(dirname "$0")/lib.sh"
start_daemon "[postgres]" "min_ready = 2"

field() { jq -r ".$2" <<<"$1"; }
url_dead() { ! psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }
# Sessions of the lease role that are running a given query.
running() { [ "$(sql "$1" "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%$2%' AND pid <> pg_backend_pid()")" -ge 1 ]; }

# A client whose last connection closes ~100 ms after it sent the release
# (a pool.end() that resolves before its sockets close) must not be killed.
test_a_connection_closing_just_after_release_is_not_terminated() {
    for clean in "" --clean; do
        j=$("$DBLEASE" lease --json)
        url=$(field "$j" url)
        psql "$url" -XAtq -c "SELECT pg_sleep(0.15), 'grace_probe'" >"$T/grace.out" 2>&1 &
        pid=$!
        wait_until 5 running "$url" grace_probe || fail "the probe session never started"
        "$DBLEASE" release $clean "$(field "$j" id)"
        rc=0
        wait "$pid" || rc=$?
        if [ "$rc" -ne 0 ] || grep -q "terminating connection" "$T/grace.out"; then
            cat "$T/grace.out" >&2
            fail "release $clean terminated a session that was about to close (rc $rc)"
        fi
    done
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

run_tests
