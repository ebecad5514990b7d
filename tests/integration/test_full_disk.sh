#!/usr/bin/env bash
# A full disk keeps its evidence (issue 13, item 9): a lease fills the
# small tmpfs the state dir is on until PostgreSQL PANICs on ENOSPC; the
# daemon's log and the lease's instance_down event say so, and the dead
# server's log is kept in <state>/logs, where the restart cannot remove it.
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to mount a small tmpfs"; exit 77; }
SMALL=$T/small
mkdir -m 0711 "$SMALL"
mount -t tmpfs -o size=96m,mode=0711 dblease-it-small "$SMALL" || { echo "SKIP: cannot mount a tmpfs"; exit 77; }
disk_cleanup() {
    stop_daemon || true
    umount "$SMALL" 2>/dev/null || umount -l "$SMALL"
    STATE=$T/state && mkdir -p "$STATE" && : >"$STATE/dbleased.log" # gone with the tmpfs
    cleanup
}
trap disk_cleanup EXIT
STATE=$SMALL/state

test_a_server_that_died_of_a_full_disk_says_so_and_keeps_its_log() {
    start_daemon "disk_reserve_mb = 0" "[postgres]" "min_ready = 1" "max_total = 2"
    open_conn a
    send a '{"id":1,"op":"lease","kind":"postgres"}'
    url=$(reply_of a 1 | jq -r .lease.url)
    [ "$url" != null ] || fail "no lease"
    sql "$url" "CREATE TABLE c(v text); INSERT INTO c VALUES ('x')" >/dev/null
    # Leave a few MiB: the data stays put (HOT updates, a commit each),
    # WAL needs its next 16 MiB segment and cannot have it.
    free=$(df --output=avail -B1 "$SMALL" | tail -n1)
    fallocate -l $((free - 6 * 1024 * 1024)) "$SMALL/filler"
    set +e
    psql "$url" -XAtq -c "DO \$\$ BEGIN FOR k IN 1..200000 LOOP
        UPDATE c SET v = (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 40));
        COMMIT; END LOOP; END \$\$" 2>&1 | tail -n 2
    set -e
    wait_until 60 grep -q instance_down "$T/a.out" || fail "no instance_down event: $(cat "$T/a.out")"
    rm -f "$SMALL/filler"
    ev=$(grep instance_down "$T/a.out" | head -n1)
    echo "$ev"
    jq -e '.message | test("ENOSPC")' <<<"$ev" >/dev/null || fail "the event does not say the disk is full: $ev"
    grep -q "ENOSPC" "$STATE/dbleased.log" || fail "the daemon's log does not say the disk is full"
    kept=$(ls "$STATE"/logs/*.log | head -n1)
    [ -n "$kept" ] && grep -q "No space left on device" $STATE/logs/*.log ||
        fail "the dead server's log is not kept: $(ls -la "$STATE/logs" 2>&1)"
    close_conn a
}

test_temporary_files_are_limited_per_session() {
    start_daemon "disk_reserve_mb = 0" "[postgres]" "min_ready = 1" "max_total = 2" "temp_file_limit_mb = 1"
    url=$(lease_url)
    set +e
    out=$(sql "$url" "SET work_mem = '64kB'; SELECT count(*) FROM (SELECT g FROM generate_series(1, 500000) g ORDER BY g DESC) s" 2>&1)
    set -e
    grep -q "temp_file_limit" <<<"$out" || fail "a sort spilled past the limit: $out"
}

test_below_the_reserve_no_database_is_cloned_and_leases_hear_disk_full() {
    start_daemon "disk_reserve_mb = 8" "[postgres]" "min_ready = 1" "max_total = 4"
    free=$(df --output=avail -B1 "$SMALL" | tail -n1)
    fallocate -l $((free - 4 * 1024 * 1024)) "$SMALL/filler"
    first=$(lease_url) || fail "the ready database was not handed out"
    out=$(rpc '{"id":1,"op":"lease","kind":"postgres","wait_ms":5000}')
    rm -f "$SMALL/filler"
    echo "$out"
    [ "$(jq -r .error.code <<<"$out")" = disk_full ] || fail "not refused with disk_full: $out"
    jq -e '.error.message | test("disk_reserve_mb")' <<<"$out" >/dev/null || fail "the message does not say what to do: $out"
    # with room again, leases are served again
    lease_url --wait 20000 >/dev/null || fail "no lease once the disk had room"
    [ "$(sql "$first" 'SELECT 1')" = 1 ]
}

run_tests
