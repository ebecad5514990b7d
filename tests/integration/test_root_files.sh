#!/usr/bin/env bash
# Started as root, dbleased never writes, chowns or copies through a link
# that the servers' user planted (issue 13, item 2). That user (dblease)
# owns the servers' directories: SQL that escapes into a shell through a
# server runs as it. Every link below points at a root-owned 0600 file or a
# root-owned 0700 directory; afterwards both must be as they were.
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (the daemon runs servers as another user only as root)"; exit 77; }

SECRET=$T/secret # every file link points here
VAULT=$T/vault   # every directory link points here
CACHE=$T/cache   # a cache of this script's own: the planted links stay here
mkdir -m 0755 "$CACHE"

# Each test starts from fresh targets, whatever the last one did to them.
fresh_targets() {
    rm -rf "$SECRET" "$VAULT"
    printf 'root secret\n' >"$SECRET" && chmod 0600 "$SECRET"
    mkdir -m 0700 "$VAULT"
}

targets_untouched() {
    [ "$(cat "$SECRET")" = "root secret" ] || fail "the root-owned file was written: $(head -c 300 "$SECRET")"
    [ "$(stat -c '%u %a' "$SECRET")" = "0 600" ] || fail "the root-owned file is now $(stat -c '%U %a' "$SECRET")"
    [ "$(stat -c '%u %a' "$VAULT")" = "0 700" ] || fail "the root-owned directory is now $(stat -c '%U %a' "$VAULT")"
    [ -z "$(ls -A "$VAULT")" ] || fail "root wrote into the root-owned directory: $(ls -A "$VAULT")"
}

cached_datadir() {
    find "$CACHE" -mindepth 1 -maxdepth 1 -type d -name 'pg*' ! -name '*.tmp.*' | head -n1
}

test_a_linked_pg_hba_conf_in_the_cache_is_replaced_not_written_through() {
    fresh_targets
    start_daemon
    stop_daemon
    local cached
    cached=$(cached_datadir)
    [ -n "$cached" ] || fail "no cached data dir in $CACHE: $(ls -la "$CACHE")"
    as_server_user ln -sfn "$SECRET" "$cached/pg_hba.conf"
    start_daemon
    targets_untouched
    url=$(lease_url)
    [ "$(sql "$url" 'SELECT 1')" = 1 ] || fail "the lease does not work"
    stop_daemon
    as_server_user rm -f "$cached/pg_hba.conf" # the next test starts from a clean cache
    rm -rf "$cached"
}

# The servers' user plants links in every instance directory, over and
# over, while the daemon prepares and starts them (and restarts them when
# the links make a start fail): the log, the data dir, the socket dir,
# redis.conf. Refusing to start is fine; reaching root's files is not.
test_links_planted_while_servers_start_reach_nothing_of_roots() {
    command -v redis-server >/dev/null || { skip "no redis-server"; return 0; }
    fresh_targets
    : >"$T/go"
    as_server_user bash -c '
        while [ -e "$1/go" ]; do
            for d in pg-1 pg-2 pg-3 rd-1 rd-2 rd-3 rd-4; do
                d=$2/instances/$d
                ln -sfn "$3" "$d/server.log" 2>/dev/null
                ln -sfn "$3" "$d/redis.conf" 2>/dev/null
                ln -sn "$4" "$d/data" 2>/dev/null
                ln -sn "$4" "$d/sock" 2>/dev/null
            done
        done' _ "$T" "$STATE" "$SECRET" "$VAULT" &
    local attacker=$!
    {
        echo "[daemon]"
        echo "cache_dir = $CACHE"
        echo "[redis]"
        echo "min_ready = 4"
    } >"$T/attacked.ini"
    set +e
    timeout 60 "$DBLEASED" --config "$T/attacked.ini" --socket "$SOCK" --state-dir "$STATE"
    echo "dbleased exited $? under attack"
    wait_until 5 test -S "$SOCK" # redis servers start after the first database
    set -e
    rm -f "$T/go"
    wait "$attacker" || true
    stop_daemon
    grep -E "refus|symbolic|ELOOP|Too many levels" "$STATE/dbleased.log" | head -n 5 || true
    targets_untouched
}

# No fallback to a shared user: a missing server user stops the start, and
# the message says how to make it.
test_a_missing_server_user_is_an_error_that_says_how_to_create_it() {
    printf '[daemon]\ncache_dir = %s\nrun_as = dblnouser%s\n' "$CACHE" "$$" >"$T/nouser.ini"
    set +e
    out=$("$DBLEASED" --config "$T/nouser.ini" --socket "$SOCK" --state-dir "$STATE" 2>&1)
    rc=$?
    set -e
    echo "$out"
    [ "$rc" != 0 ] || fail "dbleased started without its server user"
    grep -q "useradd --system" <<<"$out" && grep -q "systemd-sysusers" <<<"$out" ||
        fail "the message does not say how to create the user"
    [ ! -S "$SOCK" ] || fail "dbleased listens"
}

run_tests
