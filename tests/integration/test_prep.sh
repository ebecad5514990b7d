#!/usr/bin/env bash
# Preparing and dropping lease databases (issue 12): one batch on an admin
# connection per database, no session into the clone; closed to connections
# until PUBLIC's grants are gone; a lease cannot block its own drop.
source "$(dirname "$0")/lib.sh"

SQL="$T/sql"
mkdir -p "$SQL"
cat > "$SQL/001_tables.sql" <<'SQL'
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users, total numeric);
INSERT INTO users (email) VALUES ('ada@example.org');
SQL
chmod -R a+rX "$SQL"

start_daemon "[template.app]" "sql_dir = $SQL" "min_ready = 2" "max_total = 6"

field() { jq -r ".$2" <<<"$1"; }
# SQL as the daemon's superuser, over the server's private socket.
admin() {
    local s
    s=$(find "$STATE" -name '.s.PGSQL.*' -not -name '*.lock' | head -n1)
    psql "host=$(dirname "$s") port=${s##*.} user=dblease dbname=postgres" -XAtq -v ON_ERROR_STOP=1 -c "$1"
}
db_gone() { [ "$(admin "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 0 ]; }

test_preparing_a_database_opens_no_session_in_it() {
    j=$("$DBLEASE" lease --template app --json)
    db=$(field "$j" dbname)
    # Nobody has connected yet: not the lease, and not the daemon either.
    [ "$(admin "SELECT sessions FROM pg_stat_database WHERE datname = '$db'")" = 0 ] \
        || fail "the daemon opened a session in $db while preparing it"
    url=$(field "$j" url)
    sql "$url" "ALTER TABLE users ADD COLUMN nick text; TRUNCATE orders; DROP TABLE orders"
}

test_a_new_database_admits_only_its_role() {
    j=$("$DBLEASE" lease --template app --json)
    db=$(field "$j" dbname)
    [ "$(admin "SELECT datallowconn FROM pg_database WHERE datname = '$db'")" = t ]
    acl=$(admin "SELECT datacl::text FROM pg_database WHERE datname = '$db'")
    [[ $acl != *'{=c'* && $acl != *',=c'* && $acl != *'{=Tc'* && $acl != *',=Tc'* ]] \
        || fail "PUBLIC may still connect to $db: $acl"
}

test_template_leases_reach_no_other_database() {
    a=$("$DBLEASE" lease --template app --json)
    b=$("$DBLEASE" lease --template app --json)
    base="postgresql://$(field "$a" user):$(field "$a" password)@$(field "$a" host):$(field "$a" port)"
    for db in "$(field "$b" dbname)" postgres template1; do
        if psql "$base/$db" -XAtqc 'SELECT 1' >/dev/null 2>&1; then
            fail "lease $(field "$a" dbname) opened database $db"
        fi
    done
    # Its tables are its own to change, and b's copy does not see it.
    sql "$(field "$a" url)" "DROP TABLE orders"
    [ "$(sql "$(field "$b" url)" "SELECT count(*) FROM orders")" = 0 ]
}

test_client_template_leases_are_no_migrators() {
    "$DBLEASE" template migrate prep1 --hash v1 -- \
        sh -c 'psql "$DATABASE_URL" -XAtqc "CREATE TABLE migrated (x int)"' >/dev/null
    url=$("$DBLEASE" lease --template prep1)
    sql "$url" "DROP TABLE migrated"
    [ "$(sql "$url" "SELECT pg_has_role(current_user, 'dbl_migrators', 'MEMBER')")" = f ] \
        || fail "a lease role matches pg_hba's +migrators lines"
}

test_a_lease_that_made_its_database_a_template_is_still_dropped() {
    j=$("$DBLEASE" lease --json)
    db=$(field "$j" dbname)
    sql "$(field "$j" url)" "ALTER DATABASE \"$db\" IS_TEMPLATE true"
    "$DBLEASE" release "$(field "$j" id)"
    wait_until 10 db_gone "$db" || fail "$db was not dropped: $(grep "dropping $db" "$STATE/dbleased.log")"
    ! grep -q "dropping $db failed" "$STATE/dbleased.log" || fail "the drop of $db failed once"
}

test_no_lease_leaves_settings_on_the_template_owner() {
    j=$("$DBLEASE" lease --template app --json)
    owner=$(sql "$(field "$j" url)" "SELECT tableowner FROM pg_tables WHERE tablename = 'users'")
    # PostgreSQL 16+ refuses SET ROLE outright; before, the drop undoes it.
    if sql "$(field "$j" url)" "SET ROLE \"$owner\"; ALTER ROLE \"$owner\" SET work_mem = '7MB'" 2>/dev/null; then
        "$DBLEASE" release "$(field "$j" id)"
        wait_until 10 db_gone "$(field "$j" dbname)" || fail "not dropped"
    fi
    # What every later lease of the template can read:
    k=$("$DBLEASE" lease --template app --json)
    [ "$(sql "$(field "$k" url)" "SELECT rolconfig IS NULL FROM pg_roles WHERE rolname = '$owner'")" = t ] \
        || fail "the owner role $owner kept a lease's settings"
}

run_tests
