#!/usr/bin/env bash
# Templates: leases that start from the application's schema, built by the
# daemon from SQL files or migrated by a client; schema isolation; the cap.
source "$(dirname "$0")/lib.sh"

SQL="$T/sql"
mkdir -p "$SQL"
cat > "$SQL/001_tables.sql" <<'SQL'
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);
CREATE UNIQUE INDEX users_email ON users (email);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users, total numeric);
SQL
cat > "$SQL/002_seed.sql" <<'SQL'
INSERT INTO users (email) VALUES ('ada@example.org'), ('grace@example.org');
INSERT INTO orders (user_id, total) VALUES (1, 9.5);
SQL
chmod -R a+rX "$SQL"

# Template databases count toward the cap too (5 or so here).
MAXDB=20
start_daemon "max_databases = $MAXDB" \
    "[template.app]" "sql_dir = $SQL" "min_ready = 2" "max_total = 6" \
    "[template.shared]" "sql_dir = $SQL" "isolation = schema" "min_ready = 2" "max_total = 6" \
    "release_grace_ms = 1500" \
    "[template.sized]" "min_ready = 1" "max_total = 1"

field() { jq -r ".$2" <<<"$1"; }
code_of() { jq -r '.error.code // "ok"' <<<"$1"; }
dead() { ! psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

test_every_lease_starts_from_the_template() {
    for _ in 1 2 3; do
        url=$("$DBLEASE" lease --template app)
        [ "$(sql "$url" 'SELECT count(*) FROM users')" = 2 ] || fail "seed rows missing"
        [ "$(sql "$url" "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_email'")" = 1 ]
        sql "$url" "INSERT INTO users (email) VALUES ('mine@example.org')"
    done
}

test_lease_role_owns_the_template_objects() {
    url=$("$DBLEASE" lease --template app)
    sql "$url" "ALTER TABLE users ADD COLUMN nick text; TRUNCATE orders; DROP TABLE orders"
}

test_status_shows_the_template_and_its_hash() {
    s=$("$DBLEASE" status --json)
    cur='.templates[] | select(.name == "app" and .state != "retiring")'
    [ "$(jq -r "$cur | .state" <<<"$s")" = ready ]
    [ "$(jq -r "$cur | .hash | length" <<<"$s")" = 64 ]
    [ "$(jq -r "$cur | .source" <<<"$s")" = config ]
    [ "$(jq '[.pools[] | select(.template == "app" and .template_state == "ready")] | length' <<<"$s")" = 1 ]
}

test_edited_file_makes_a_new_version_and_old_leases_keep_working() {
    old=$("$DBLEASE" lease --template app)
    old_hash=$("$DBLEASE" status --json | jq -r '.templates[] | select(.name == "app" and .state == "ready") | .hash')
    echo "CREATE TABLE invoices (id int);" > "$SQL/003_invoices.sql"
    chmod a+r "$SQL/003_invoices.sql"
    kill -HUP "$DAEMON_PID"
    new=$("$DBLEASE" lease --template app --wait 30000)
    [ "$(sql "$new" "SELECT count(*) FROM pg_tables WHERE tablename = 'invoices'")" = 1 ] \
        || fail "new lease lacks the new table"
    [ "$(sql "$old" 'SELECT count(*) FROM users')" = 2 ] || fail "old lease stopped working"
    new_hash=$("$DBLEASE" status --json | jq -r '[.templates[] | select(.name == "app" and .state == "ready")] | last | .hash')
    [ "$new_hash" != "$old_hash" ] || fail "hash did not change"
    rm "$SQL/003_invoices.sql"
    kill -HUP "$DAEMON_PID"
}

test_broken_migration_is_reported_and_nothing_is_handed_out() {
    printf 'SELECT 1;\nCREATE TABLE broken (id int;\n' > "$SQL/009_broken.sql"
    chmod a+r "$SQL/009_broken.sql"
    kill -HUP "$DAEMON_PID"
    set +e
    out=$("$DBLEASE" lease --template app --wait 30000 2>&1)
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "lease from a broken template: exit $rc: $out"
    grep -q "009_broken.sql, line 2" <<<"$out" || fail "error does not name file and line: $out"
    grep -q "template_failed" <<<"$out" || fail "no template_failed code: $out"
    "$DBLEASE" status --json | jq -e '.templates[] | select(.state == "failed") | .error | test("009_broken")' >/dev/null \
        || fail "status does not show the failure"
    rm "$SQL/009_broken.sql"
    kill -HUP "$DAEMON_PID"
    url=$("$DBLEASE" lease --template app --wait 30000)
    [ "$(sql "$url" 'SELECT count(*) FROM users')" = 2 ] || fail "fixed template not served"
}

test_schema_leases_are_isolated() {
    a=$("$DBLEASE" lease --template shared --json)
    b=$("$DBLEASE" lease --template shared --json)
    [ "$(field "$a" dbname)" = "$(field "$b" dbname)" ] || fail "schema leases should share a database"
    [ "$(field "$a" schema)" != "$(field "$b" schema)" ]
    ua=$(field "$a" url)
    [ "$(sql "$ua" 'SELECT count(*) FROM users')" = 2 ] || fail "template not applied in the schema"
    [ "$(sql "$ua" 'SHOW search_path')" = "$(field "$a" schema)" ]
    if sql "$ua" "SELECT count(*) FROM $(field "$b" schema).users" 2>/dev/null; then
        fail "a schema lease read another's table"
    fi
    if sql "$ua" "CREATE TABLE public.escape (x int)" 2>/dev/null; then
        fail "a schema lease wrote to public"
    fi
}

# A schema lease's role is handed out again after a clean release: a login
# its old holder left half-done must not finish into the next holder's
# schema (test_release.sh has the database-lease version).
test_a_login_stalled_across_a_schema_release_does_not_get_in() {
    stalled_login_across_release --clean --template shared
}

# A schema lease's sessions get the same grace at release as a database
# lease's (a release without --clean drops the schema, and used to end
# them at once).
test_a_connection_closing_just_after_a_schema_release_is_not_terminated() {
    closing_session_survives_release "" --template shared
    closing_session_survives_release --clean --template shared
}

test_released_schema_lease_comes_back_fresh_with_new_credentials() {
    a=$("$DBLEASE" lease --template shared --json)
    sql "$(field "$a" url)" "CREATE TABLE leftover (x int)"
    "$DBLEASE" release "$(field "$a" id)"
    wait_until 5 dead "$(field "$a" url)" || fail "old credentials still work"
    for _ in 1 2 3; do
        u=$("$DBLEASE" lease --template shared)
        [ "$(sql "$u" "SELECT count(*) FROM pg_tables WHERE tablename = 'leftover'")" = 0 ]
    done
}

test_concurrent_ensure_migrates_once_and_waiters_get_ready() {
    open_conn a
    open_conn b
    send a '{"id":1,"op":"template.ensure","template":"client1","hash":"h1"}'
    ra=$(reply_of a 1)
    [ "$(jq -r .template.state <<<"$ra")" = migrate ] || fail "first caller: $ra"
    send b '{"id":1,"op":"template.ensure","template":"client1","hash":"h1","wait_ms":20000}'
    sql "$(jq -r .template.url <<<"$ra")" "CREATE TABLE migrated (x int); INSERT INTO migrated VALUES (7)"
    ! grep -q '"id":1' "$T/b.out" || fail "second caller did not wait: $(cat "$T/b.out")"
    send a '{"id":2,"op":"template.finalize","template":"client1","hash":"h1"}'
    [ "$(jq -r .template.state <<<"$(reply_of a 2)")" = ready ]
    [ "$(jq -r .template.state <<<"$(reply_of b 1)")" = ready ] || fail "waiter: $(cat "$T/b.out")"
    dead "$(jq -r .template.url <<<"$ra")" || fail "migrator login still works after finalize"
    url=$("$DBLEASE" lease --template client1)
    [ "$(sql "$url" 'SELECT x FROM migrated')" = 7 ]
    sql "$url" "DROP TABLE migrated"
    close_conn a
    close_conn b
}

test_killed_migrator_releases_the_claim() {
    open_conn a
    open_conn b
    send a '{"id":1,"op":"template.ensure","template":"client2","hash":"h2"}'
    [ "$(jq -r .template.state <<<"$(reply_of a 1)")" = migrate ]
    send b '{"id":1,"op":"template.ensure","template":"client2","hash":"h2","wait_ms":20000}'
    kill -9 "$pid_a"
    [ "$(jq -r .template.state <<<"$(reply_of b 1)")" = migrate ] || fail "claim not handed on"
    send b '{"id":2,"op":"template.finalize","template":"client2","hash":"h2","ok":false}'
    [ "$(jq -r .template.state <<<"$(reply_of b 2)")" = abandoned ]
    close_conn b
}

test_finalize_needs_the_claim() {
    [ "$(code_of "$(rpc '{"id":1,"op":"template.finalize","template":"nope","hash":"x"}')")" = not_found ]
    open_conn a
    send a '{"id":1,"op":"template.ensure","template":"client3","hash":"h3"}'
    reply_of a 1 >/dev/null
    [ "$(code_of "$(rpc '{"id":1,"op":"template.finalize","template":"client3","hash":"h3"}')")" = not_owner ]
    close_conn a
}

test_config_templates_cannot_be_claimed() {
    [ "$(code_of "$(rpc '{"id":1,"op":"template.ensure","template":"app","hash":"x"}')")" = bad_request ]
    [ "$(code_of "$(rpc '{"id":1,"op":"template.ensure","template":"bad name","hash":"x"}')")" = bad_request ]
}

test_max_databases_is_never_exceeded_and_idle_templates_make_room() {
    # Start from no leases (earlier tests leave detached ones), then take
    # more than the ready databases of all templates leave room for.
    for id in $("$DBLEASE" status --json | jq -r '.leases[].id'); do "$DBLEASE" release "$id"; done
    ids=()
    for _ in 1 2 3 4 5 6; do
        ids+=("$("$DBLEASE" lease --template app --wait 30000 --json | jq -r .id)")
        [ "$("$DBLEASE" status --json | jq '.counters.databases')" -le "$MAXDB" ] || fail "over max_databases"
    done
    for _ in 1 2 3 4 5; do
        "$DBLEASE" lease --wait 30000 >/dev/null
        [ "$("$DBLEASE" status --json | jq '.counters.databases')" -le "$MAXDB" ] || fail "over max_databases"
    done
    for id in "${ids[@]}"; do "$DBLEASE" release "$id"; done
}

test_template_migrate_cli_runs_the_tool_once_and_finalizes() {
    "$DBLEASE" template migrate cli1 --hash v1 -- \
        sh -c 'psql -XAtqc "CREATE TABLE from_tool (x int); INSERT INTO from_tool VALUES (1)"'
    url=$("$DBLEASE" lease --template cli1)
    [ "$(sql "$url" 'SELECT count(*) FROM from_tool')" = 1 ]
    # Already migrated: the tool does not run again.
    "$DBLEASE" template migrate cli1 --hash v1 -- sh -c 'exit 9' 2>/dev/null
}

test_failed_migration_tool_abandons_and_passes_its_status() {
    set +e
    "$DBLEASE" template migrate cli2 --hash v1 -- sh -c 'exit 3'
    rc=$?
    out=$("$DBLEASE" lease --template cli2 2>&1)
    lrc=$?
    set -e
    [ "$rc" = 3 ] || fail "exit $rc"
    [ "$lrc" = 1 ] && grep -q "not been migrated" <<<"$out" || fail "lease after abandon: $lrc $out"
}

# dbleased(8): a section without sql_dir sizes a template clients migrate;
# SIGHUP resizes it.
test_section_without_sql_dir_sizes_a_client_template() {
    "$DBLEASE" template migrate sized --hash v1 -- psql -XAtqc "CREATE TABLE s (x int)" 2>/dev/null
    pool='.pools[] | select(.template == "sized")'
    [ "$("$DBLEASE" status --json | jq "$pool | .max_total")" = 1 ] || fail "not sized by its section"
    sed -i 's/^max_total = 1$/max_total = 3/' "$T/dbleased.ini"
    kill -HUP "$DAEMON_PID"
    resized() { [ "$("$DBLEASE" status --json | jq "$pool | .max_total")" = 3 ]; }
    wait_until 10 resized || fail "SIGHUP did not resize it: $("$DBLEASE" status --json | jq -c "$pool")"
    sed -i 's/^max_total = 3$/max_total = 1/' "$T/dbleased.ini"
    kill -HUP "$DAEMON_PID"
    [ "$(code_of "$(rpc '{"id":1,"op":"template.drop","template":"sized"}')")" = ok ]
}

# `template ensure` is read-only: asking about a new hash neither claims it
# nor takes the ready version away; a claim of the new hash that is
# abandoned leaves the old version serving.
test_ensure_of_a_new_hash_leaves_the_ready_version_serving() {
    "$DBLEASE" template migrate ro --hash v1 -- psql -XAtqc "CREATE TABLE ro_v1 (x int)" 2>/dev/null
    set +e
    out=$("$DBLEASE" template ensure ro --hash v2 2>/dev/null)
    rc=$?
    set -e
    [ "$rc" = 1 ] && [ "$out" = missing ] || fail "ensure of an unbuilt hash: exit $rc, printed '$out'"
    "$DBLEASE" status --json | jq -e '[.templates[] | select(.name == "ro" and .state != "retiring")] | length == 1' >/dev/null \
        || fail "ensure made a version: $("$DBLEASE" status --json | jq -c .templates)"
    has() { "$DBLEASE" run --postgres=ro -- psql -XAtqc "SELECT * FROM $1" >/dev/null; }
    has ro_v1 || fail "v1 not served after ensure"
    set +e
    "$DBLEASE" template migrate ro --hash v2 -- sh -c 'exit 4' 2>/dev/null
    set -e
    has ro_v1 || fail "v1 not served after an abandoned v2"
    "$DBLEASE" template migrate ro --hash v3 -- psql -XAtqc "CREATE TABLE ro_v3 (x int)" 2>/dev/null
    has ro_v3 || fail "v3 not served once finalized"
    [ "$(code_of "$(rpc '{"id":1,"op":"template.drop","template":"ro"}')")" = ok ]
}

# A migrate sent before the first server is up (socket activation) waits
# for it and gets the claim; one that gives up first says what it waited
# for, not that another client migrates.
test_migrate_before_the_server_is_up() {
    mkdir -p "$T/early"
    printf '[daemon]\ncache_dir = %s\n' "$T/early/cache" > "$T/early.ini"
    "$DBLEASED" --foreground --config "$T/early.ini" --socket "$T/early.sock" \
        --state-dir "$T/early/state" 2> "$T/early.log" &
    local pid=$! rc
    wait_until 10 test -S "$T/early.sock" || fail "no socket"
    set +e
    out=$(DBLEASE_SOCKET="$T/early.sock" "$DBLEASE" template migrate early --hash v1 --wait 1 -- true 2>&1)
    rc=$?
    set -e
    if [ "$rc" = 75 ]; then # the server was not up within 1 ms (else the claim came: fine)
        ! grep -q "another client" <<<"$out" || fail "blames another client: $out"
        grep -q "not running yet" <<<"$out" || fail "does not say it waited for the server: $out"
    fi
    DBLEASE_SOCKET="$T/early.sock" "$DBLEASE" template migrate early --hash v2 --wait 30000 -- \
        sh -c 'psql -XAtqc "CREATE TABLE early (x int)"' || fail "migrate sent early did not complete"
    kill -TERM "$pid"
    wait "$pid" || fail "dbleased exited non-zero"
    check_sanitizers "$T/early/state"
}

run_tests
