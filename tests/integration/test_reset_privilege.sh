#!/usr/bin/env bash
# A rows reset (issue 12) runs the template's own code: CHECK constraints,
# domain checks, generated columns and index expressions are evaluated when
# the seed rows go back in. That code comes from the template's author (any
# local user, for a client template), so it must run as the template's
# owner, never as the superuser (issue 13: nothing the daemon runs on behalf
# of a template runs as superuser). Found by the pg-privilege review: a
# CHECK function that ran COPY ... TO PROGRAM during the reload.
#
# The release check itself runs as the superuser inside the lease's
# database, after the holder could create what it liked there: a function in
# public whose argument types match a call of the check better than
# pg_catalog's own (concat_ws(text, VARIADIC "any")) would be chosen by
# PostgreSQL's overload resolution and run as the superuser. Found while
# profiling the check (issue 12).
source "$(dirname "$0")/lib.sh"

PWNED="/tmp/dblease-reset-pwned-$$"
SQL="$T/sql"
mkdir -p "$SQL"
cat > "$SQL/001.sql" <<SQL
-- Tries to leave any role it was given (as code run by a superuser that
-- SET ROLE to the owner could), then acts if it is the superuser.
CREATE FUNCTION evil(v int) RETURNS int LANGUAGE plpgsql VOLATILE AS \$\$
BEGIN
  BEGIN EXECUTE 'RESET ROLE'; EXCEPTION WHEN OTHERS THEN NULL; END;
  BEGIN EXECUTE 'RESET SESSION AUTHORIZATION'; EXCEPTION WHEN OTHERS THEN NULL; END;
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch $PWNED-' || v || '''';
  END IF;
  RETURN 1;
END \$\$;
-- Generated columns and indexes take only immutable functions: a wrapper
-- that says so (PostgreSQL believes it) calls the volatile one.
CREATE FUNCTION evil_i(v int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
  \$\$BEGIN RETURN evil(v); END\$\$;
CREATE DOMAIN checked AS int CHECK (evil(VALUE + 1000) > 0);
CREATE TABLE t (id int PRIMARY KEY, x int CHECK (evil(x) > 0), d checked,
                g int GENERATED ALWAYS AS (evil_i(x + 2000)) STORED);
CREATE INDEX t_expr ON t ((evil_i(x + 3000)));
INSERT INTO t (id, x, d) VALUES (1, 1, 1), (2, 2, 2);
SQL
chmod -R a+rX "$SQL"

start_daemon "[template.evil]" "sql_dir = $SQL" "min_ready = 1" "max_total = 1" "reset = detect"

cleanup_pwned() { rm -f "$PWNED"-*; }
trap 'cleanup_pwned; cleanup' EXIT

releases() { # outcome -> count for template evil
    "$DBLEASE" status --json |
        jq --arg o "$1" '[.pools[] | select(.template == "evil") | .releases[$o]] | add // 0'
}
grew_total() { [ "$(total)" -gt "$1" ]; }

total() { echo $(( $(releases reused) + $(releases reloaded) + $(releases recloned) )); }

test_a_rows_reset_runs_no_template_code_as_the_superuser() {
    local url before
    # The first rows verdict only asks for the seed rows (the next clone
    # saves them) and reclones; the releases after it reload.
    for round in 1 2 3 4; do
        before=$(total)
        url=$("$DBLEASE" lease --template evil --wait 60000)
        sql "$url" "INSERT INTO t (id, x, d) VALUES (10, 10, 10); DELETE FROM t WHERE id = 2" >/dev/null
        "$DBLEASE" release "$url"
        wait_until 30 grew_total "$before" || fail "round $round: the release did not finish"
    done
    [ "$(releases reloaded)" -ge 2 ] || fail "only $(releases reloaded) rows resets ($(releases recloned) recloned)"
    for f in "$PWNED"-*; do
        [ ! -e "$f" ] || fail "the template's code ran as the superuser during a reset: $f"
    done
    # The reset still did its job: the next holder sees the template's rows.
    url=$("$DBLEASE" lease --template evil --wait 60000)
    [ "$(sql "$url" "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")" = "1,2" ] \
        || fail "after the reset the rows are $(sql "$url" "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")"
    "$DBLEASE" release "$url"
}

test_b_the_release_check_runs_no_function_a_lease_planted() {
    local url before
    before=$(total)
    url=$("$DBLEASE" lease --template evil --wait 60000)
    # Overloads of concat_ws for every argument list the check passes it:
    # exact matches beat pg_catalog's variadic one wherever public is on
    # the search_path.
    local sigs="text, oid, bigint, bigint, bigint, bigint, bigint|text, bigint, bigint, bigint|text, bigint, bigint|text, text, text|text, text, bigint"
    local IFS='|' sig k=0
    for sig in $sigs; do
        k=$((k + 1))
        sql "$url" "CREATE FUNCTION public.concat_ws($sig) RETURNS text LANGUAGE plpgsql AS \$\$
          BEGIN
            IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
              EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch $PWNED-check-$k''';
            END IF;
            RETURN 'x';
          END \$\$" >/dev/null
    done
    unset IFS
    "$DBLEASE" release "$url"
    wait_until 30 grew_total "$before" || fail "the release did not finish"
    for f in "$PWNED"-check-*; do
        [ ! -e "$f" ] || fail "the release check ran a lease's function as the superuser: $f"
    done
    # What the lease did is gone: the next holder gets a fresh clone.
    url=$("$DBLEASE" lease --template evil --wait 60000)
    [ "$(sql "$url" "SELECT count(*) FROM pg_proc WHERE proname = 'concat_ws' AND pronamespace = 'public'::regnamespace")" = 0 ] \
        || fail "the lease's functions reached the next holder"
    "$DBLEASE" release "$url"
}

run_tests
