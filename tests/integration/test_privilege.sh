#!/usr/bin/env bash
# Issue 13 items 1, 2, 7, 8 as an attacker tries them: a migration file that
# wants to be the superuser, local users (the servers' own among them) at the
# superuser's socket, a migrator's or schema lease's credentials at another
# database, and one schema lease reading another's.
source "$(dirname "$0")/lib.sh"

PWNED="/tmp/dblease-pwned-$$"
SQL="$T/sql"
mkdir -p "$SQL/ok"
cat > "$SQL/ok/001.sql" <<'SQL'
CREATE EXTENSION pgcrypto;
CREATE TABLE users (id int, h bytea DEFAULT digest('x', 'sha256'));
SQL
# Schema isolation: one database for all leases, so no extension per lease.
mkdir -p "$SQL/plain"
echo "CREATE TABLE users (id int);" > "$SQL/plain/001.sql"
# Each attack file first leaves the migration's role, which used to put it
# back in the daemon's superuser session.
attack() { # name sql
    mkdir -p "$SQL/$1"
    printf 'CREATE TABLE before_%s (x int);\nRESET ROLE;\n%s;\n' "$1" "$2" > "$SQL/$1/001.sql"
}
attack program "COPY (SELECT 1) TO PROGRAM 'touch $PWNED-program'"
attack setrole "SET ROLE dblease; COPY (SELECT 1) TO PROGRAM 'touch $PWNED-setrole'"
attack sessauth "SET SESSION AUTHORIZATION dblease"
attack superuser "ALTER ROLE CURRENT_USER SUPERUSER"
attack extension "CREATE EXTENSION file_fdw"
attack load "LOAD 'auto_explain'"
attack authid "SELECT rolpassword FROM pg_authid"
# Schema isolation applies the files again in each lease's schema: this one
# attacks only there (the template's own build passes).
mkdir -p "$SQL/schemaattack"
cat > "$SQL/schemaattack/001.sql" <<SQL
CREATE TABLE t (x int);
DO \$\$BEGIN IF current_schema() <> 'public' THEN
  EXECUTE 'RESET ROLE';
  EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch $PWNED-schema''';
END IF; END\$\$;
SQL
chmod -R a+rX "$SQL"

ATTACKS="program setrole sessauth superuser extension load authid"
cfg=("[template.ok]" "sql_dir = $SQL/ok" "min_ready = 0"
     "[template.sch]" "sql_dir = $SQL/plain" "isolation = schema" "min_ready = 0"
     "[template.schemaattack]" "sql_dir = $SQL/schemaattack" "isolation = schema" "min_ready = 0")
for a in $ATTACKS; do cfg+=("[template.$a]" "sql_dir = $SQL/$a" "min_ready = 0"); done
start_daemon "${cfg[@]}"

field() { jq -r ".$2" <<<"$1"; }
tpl() { # name field
    "$DBLEASE" status --json |
        jq -r --arg n "$1" "[.templates[] | select(.name == \$n)] | last | .$2 // \"\""
}
state_is() { [ "$(tpl "$1" state)" = "$2" ]; }
sockfile() { find "$STATE" -name '.s.PGSQL.*' -not -name '*.lock' | head -n1; }
# The user the PostgreSQL servers run as.
server_user() { ps -o user= -p "$(pgrep -o -f -- "-D $STATE/")"; }
# psql as another local user, at the superuser's socket: prints its output.
psql_as() { # user role
    local s
    s=$(sockfile)
    su -s /bin/sh "$1" -c "psql 'host=$(dirname "$s") port=${s##*.} user=$2 dbname=postgres' \
        -XAtqc 'SELECT current_user' 2>&1" || true
}

test_a_migration_file_cannot_become_the_superuser() {
    for a in $ATTACKS; do
        wait_until 30 state_is "$a" failed \
            || { rm -f "$PWNED"-*; fail "template $a is $(tpl "$a" state), not failed"; }
        err=$(tpl "$a" error)
        grep -q "migration 001.sql" <<<"$err" || fail "template $a: error does not name the file: $err"
        echo "$a: $err"
    done
    for f in "$PWNED"-*; do
        [ ! -e "$f" ] || { rm -f "$PWNED"-*; fail "a migration ran a program: $f"; }
    done
    # What templates legitimately do still works: a trusted extension.
    url=$("$DBLEASE" lease --template ok --wait 30000)
    [ "$(sql "$url" "SELECT count(*) FROM users")" = 0 ]
    [ "$(sql "$url" "SELECT rolsuper FROM pg_roles WHERE rolname = (SELECT tableowner FROM pg_tables WHERE tablename = 'users')")" = f ]
}

test_schema_isolation_applies_the_files_as_the_lease() {
    out=$("$DBLEASE" lease --template schemaattack --wait 10000 2>&1) && rc=0 || rc=$?
    if [ -e "$PWNED-schema" ]; then
        rm -f "$PWNED-schema"
        fail "a schema lease's migration ran a program as the server user"
    fi
    [ "$rc" != 0 ] || fail "the schema lease was handed out: $out"
    grep -q "permission denied\|must be superuser" <<<"$out" || fail "no reason given: $out"
    echo "schema lease: $out"
    # An honest schema template serves, its objects its lease's own.
    j=$("$DBLEASE" lease --template sch --json --wait 30000)
    [ "$(sql "$(field "$j" url)" "SELECT tableowner FROM pg_tables WHERE tablename = 'users' AND schemaname = current_schema()")" \
        = "$(field "$j" user)" ] || fail "the schema lease does not own its tables"
}

test_only_the_daemon_is_the_superuser_at_the_socket() {
    [ "$(id -u)" = 0 ] || { skip "needs root to act as other users"; return 0; }
    user="dblit$$"
    useradd -M -r -s /usr/sbin/nologin "$user"
    trap 'userdel "$user" 2>/dev/null || true' EXIT
    run=$(server_user)
    for u in "$user" "$run"; do
        out=$(psql_as "$u" dblease)
        [ "$out" != dblease ] || fail "local user $u logged in as the superuser"
        echo "$u: $out"
    done
    # The server user is refused by authentication, not just by the
    # directory's mode (it owns the directory).
    grep -q 'Peer authentication failed\|password authentication failed\|no password supplied' <<<"$(psql_as "$run" dblease)" \
        || fail "the server user was not refused by authentication: $(psql_as "$run" dblease)"
    # The daemon itself (and so root's tools) still gets in.
    s=$(sockfile)
    [ "$(psql "host=$(dirname "$s") port=${s##*.} user=dblease dbname=postgres" -XAtqc 'SELECT 1')" = 1 ]
}

test_a_migrator_reaches_only_its_template_database() {
    other=$("$DBLEASE" lease --json --wait 20000)
    db=$(field "$other" dbname)
    "$DBLEASE" template migrate mig --hash v1 -- sh -c \
        "psql \"\${DATABASE_URL%/*}/$db\" -XAtqc 'SELECT 1' > '$T/mig.out' 2>&1; echo \$? > '$T/mig.rc'; \
         psql \"\$DATABASE_URL\" -XAtqc 'CREATE TABLE m (x int)'" >/dev/null
    [ "$(cat "$T/mig.rc")" != 0 ] || fail "the migrator opened lease database $db"
    grep -q "no pg_hba.conf entry" "$T/mig.out" || fail "not refused by pg_hba: $(cat "$T/mig.out")"
}

test_a_schema_lease_reaches_only_its_shared_database() {
    other=$("$DBLEASE" lease --json --wait 20000)
    j=$("$DBLEASE" lease --template sch --json --wait 30000)
    base="postgresql://$(field "$j" user):$(field "$j" password)@$(field "$j" host):$(field "$j" port)"
    for db in "$(field "$other" dbname)" postgres; do
        out=$(psql "$base/$db" -XAtqc 'SELECT 1' 2>&1) && fail "schema lease opened $db"
        grep -q "no pg_hba.conf entry" <<<"$out" || fail "not refused by pg_hba at $db: $out"
    done
}

test_a_schema_lease_cannot_read_another_schemas_stats_or_code() {
    a=$("$DBLEASE" lease --template sch --json --wait 30000)
    b=$("$DBLEASE" lease --template sch --json --wait 30000)
    sql "$(field "$a" url)" "CREATE TABLE secret_t (x int); INSERT INTO secret_t SELECT generate_series(1, 42);
        ANALYZE secret_t; CREATE FUNCTION secret_f() RETURNS int LANGUAGE sql AS 'SELECT 4242'" >/dev/null
    burl=$(field "$b" url)
    leaks=0
    for q in "SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'secret_t'" \
             "SELECT n_tup_ins FROM pg_stat_all_tables WHERE relname = 'secret_t'" \
             "SELECT heap_blks_read FROM pg_statio_user_tables WHERE relname = 'secret_t'" \
             "SELECT pg_stat_get_live_tuples(oid) FROM pg_class WHERE relname = 'secret_t'" \
             "SELECT pg_relation_size(oid) FROM pg_class WHERE relname = 'secret_t'" \
             "SELECT prosrc FROM pg_proc WHERE proname = 'secret_f'" \
             "SELECT pg_get_functiondef(oid) FROM pg_proc WHERE proname = 'secret_f'" \
             "SELECT count(*) FROM pg_locks" \
             "SELECT query FROM pg_stat_activity"; do
        if out=$(sql "$burl" "$q" 2>&1); then
            echo "LEAK: $q -> $out"
            leaks=$((leaks + 1))
        else
            grep -q "permission denied" <<<"$out" || fail "$q: $out"
        fi
    done
    [ "$leaks" = 0 ] || fail "$leaks queries read another schema lease's data"
    # Its own objects still work, and ordinary introspection.
    [ "$(sql "$(field "$a" url)" "SELECT count(*) FROM secret_t")" = 42 ]
    [ "$(sql "$(field "$a" url)" "SELECT secret_f()")" = 4242 ]
    sql "$(field "$a" url)" "SELECT proname, pg_get_function_result(oid) FROM pg_proc WHERE proname = 'secret_f'" >/dev/null
    psql "$(field "$a" url)" -Xc '\dt' >/dev/null
}

run_tests
