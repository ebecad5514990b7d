#!/usr/bin/env bash
# The release path must never hand out a database that differs from a fresh
# clone of its template. For each workload of reset/workloads.txt: lease, run
# it as the lease role, release (plain and --clean), and compare every
# database handed out afterwards with a fresh clone: `pg_dump --create` plus
# the shared-catalog rows the lease can see (reset/shared.sql), names
# normalised. The detector runs on every release (reset = detect), for a
# migrated template (reset/workloads.txt: checked on a superuser session the
# daemon keeps in the database between leases) and for the built-in one
# (reset/workloads_default.txt: checked from outside the database, by its
# counters in pg_stat_database and the shared catalogs).
source "$(dirname "$0")/lib.sh"
HERE="$(cd "$(dirname "$0")" && pwd)/reset"
SQL="$T/sql"
mkdir -p "$SQL" && cp "$HERE/template.sql" "$SQL/001_schema.sql" && chmod -R a+rX "$SQL"
start_daemon "[template.app]" "sql_dir = $SQL" "min_ready = 2" "max_total = 4" "reset = detect" \
    "[postgres]" "min_ready = 2" "max_total = 4" "reset = detect"
TPL=app

# Lease from the template: sets ID, URL, DB (one jq, not three: under load
# every process started costs).
take() {
    read -r ID URL DB < <("$DBLEASE" lease --template "$TPL" --wait 30000 --json |
        jq -r '"\(.id) \(.url) \(.dbname)"')
    [ -n "$DB" ] || fail "no lease"
}

# What a client of this database can see of it, with its name masked.
snapshot() { # file
    { pg_dump --create "$URL" && psql "$URL" -XAtq -v ON_ERROR_STOP=1 -f "$HERE/shared.sql"; } |
        sed -E -e '/^\\(un)?restrict /d' -e "s/$DB/LEASEDB/g" >"$1"
}

declare -A LAST # dbname -> the workload that last ran in it
CHECKED=0

# Compare the leased database with the reference; name what ran in it before.
check() {
    snapshot "$T/got.sql"
    if ! cmp -s "$T/ref.sql" "$T/got.sql"; then
        diff -u "$T/ref.sql" "$T/got.sql" | head -n 40 >&2
        fail "$DB differs from a fresh clone after workload '${LAST[$DB]:-none}'"
        return 1
    fi
    CHECKED=$((CHECKED + 1))
}

run_workload() { # url sql
    local session
    # " ;; " separates sessions
    while IFS= read -r session; do
        [ -n "$session" ] || continue
        psql "$1" -Xq -c "$session" >/dev/null 2>&1 || true
    done < <(sed 's/ ;; /\n/g' <<<"$2")
}

releases() { # outcome -> count
    "$DBLEASE" status --json |
        jq --arg o "$1" --arg t "$TPL" '[.pools[] | select(.kind == "postgres" and .template == $t) | .releases[$o]] | add'
}

# Every workload of file $1 in turn (plain, and --clean for those marked *),
# each database checked when it is handed out next. Prints the runs.
run_suite() { # workloads file, minimum reused, reloaded, recloned
    take
    snapshot "$T/ref.sql"
    grep -q "LEASEDB" "$T/ref.sql" || fail "the reference dump does not name its database"
    "$DBLEASE" release --clean "$ID"
    local n=0 name sql hows how
    while read -r name sql; do
        [[ -z $name || $name == \#* ]] && continue
        hows=("")
        [[ $name == \** ]] && hows+=(--clean) && name=${name#\*}
        for how in "${hows[@]}"; do
            take
            check || return 1
            run_workload "$URL" "$sql"
            LAST[$DB]="$name${how:+ ($how)}"
            "$DBLEASE" release $how "$ID"
            n=$((n + 1))
        done
    done <"$1"
    # The databases released last: lease them all (the pool holds 4).
    for _ in 1 2 3 4; do
        take
        check || return 1
    done
    echo "$TPL: workload runs: $n, databases checked: $CHECKED, reused $(releases reused)," \
        "reloaded $(releases reloaded), recloned $(releases recloned)"
    # A suite that only ever saw fresh clones would prove nothing.
    [ "$(releases reused)" -ge "$2" ] || fail "too few databases were reused"
    [ "$(releases reloaded)" -ge "$3" ] || fail "too few databases were reloaded"
    [ "$(releases recloned)" -ge "$4" ] || fail "too few databases were recloned"
}

test_every_database_handed_out_equals_a_fresh_clone() {
    TPL=app
    run_suite "$HERE/workloads.txt" 15 10 20 || return 1
    grep -q "COPY public.child" "$T/ref.sql" || fail "the reference dump has no seed rows"
}

# The built-in template: no session of the daemon in the database, only
# what the server counts for it (any catalog row a lease writes moves them).
test_every_default_database_handed_out_equals_a_fresh_clone() {
    TPL=default
    CHECKED=0
    run_suite "$HERE/workloads_default.txt" 5 0 12
}

# The holder's session is still open when its release comes, its last write
# running or not yet flushed: the release must wait for the session to go
# and only then read the counters (the first look at release counts the
# sessions too, and throws its reading away if any is left). Each round
# writes in a session that closes ~50 ms after the release was sent.
test_a_write_racing_the_release_is_seen() {
    TPL=app
    CHECKED=0
    take
    snapshot "$T/ref.sql"
    "$DBLEASE" release --clean "$ID"
    local i pfd pid
    for i in $(seq 12); do
        take
        check || return 1
        rm -f "$T/race.in" && mkfifo "$T/race.in"
        psql "$URL" -XAtq <"$T/race.in" >"$T/race.out" 2>&1 &
        pid=$!
        exec {pfd}>"$T/race.in"
        echo "SELECT 'connected';" >&"$pfd"
        wait_until 10 grep -q connected "$T/race.out" || fail "the writer never connected"
        echo "INSERT INTO empty_t (v) SELECT 'racing' FROM generate_series(1, 50); SELECT pg_sleep(0.05);" >&"$pfd"
        exec {pfd}>&-
        "$DBLEASE" release "$ID"
        wait "$pid" || true
        LAST[$DB]="a write racing its release (round $i)"
    done
    local held=()
    for _ in 1 2 3 4; do
        take
        check || return 1
        held+=("$ID")
    done
    for ID in "${held[@]}"; do "$DBLEASE" release --clean "$ID"; done
    [ "$CHECKED" -ge 16 ] || fail "only $CHECKED databases checked"
}

run_tests
