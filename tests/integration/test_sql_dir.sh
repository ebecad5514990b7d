#!/usr/bin/env bash
# sql_dir as a careless user or an attacker leaves it: missing, a dangling
# link, a FIFO, a link to /dev/zero, a huge file. The template fails with the
# reason, the daemon keeps answering and serving everything else, and the
# template recovers once its files are readable again.
source "$(dirname "$0")/lib.sh"

SQL="$T/sql"
GONE="$T/gone"
mkdir -p "$SQL"
echo "CREATE TABLE users (id int);" > "$SQL/001_users.sql"
chmod -R a+rX "$SQL"
# Many files: reading them takes long enough for one to vanish meanwhile.
CHURN="$T/churn"
mkdir -p "$CHURN"
cp "$SQL/001_users.sql" "$CHURN/"
for i in $(seq 100 399); do echo "SELECT $i;" > "$CHURN/$i.sql"; done
chmod -R a+rX "$CHURN"

# The current (newest, not retiring) version of a template: its state, error.
current() { # name field
    "$DBLEASE" status --json |
        jq -r --arg n "$1" "[.templates[] | select(.name == \$n and .state != \"retiring\")] | last | .$2 // \"\""
}
state_is() { [ "$(current "$1" state)" = "$2" ]; }
# inotify may be reading the directory again (a version in "scanning"): poll.
error_has() { grep -qF "$2" <<<"$(current "$1" error)"; }
# Status answers within 5 s, whatever is in sql_dir.
status_answers() { timeout 5 "$DBLEASE" status --json >/dev/null; }

# The template fails with a reason naming $2; status stays prompt; the
# default pool still leases.
expect_failed_naming() { # template text
    wait_until 20 state_is "$1" failed || fail "$1 is $(current "$1" state), not failed"
    wait_until 10 error_has "$1" "$2" || fail "error does not name $2: $(current "$1" error)"
    set +e
    out=$("$DBLEASE" lease --template "$1" --wait 5000 2>&1)
    rc=$?
    set -e
    [ "$rc" = 1 ] && grep -q template_failed <<<"$out" && grep -qF "$2" <<<"$out" \
        || fail "lease of $1: exit $rc: $out"
    sql "$("$DBLEASE" lease --wait 20000)" "SELECT 1" >/dev/null || fail "default pool stopped serving"
}

# Reloaded with readable files, the template serves again.
expect_recovers() { # template
    kill -HUP "$DAEMON_PID"
    url=$("$DBLEASE" lease --template "$1" --wait 30000) || fail "$1 did not recover"
    [ "$(sql "$url" "SELECT count(*) FROM pg_tables WHERE tablename = 'users'")" = 1 ]
}

start_daemon "[template.app]" "sql_dir = $SQL" "min_ready = 1" \
    "[template.gone]" "sql_dir = $GONE" "min_ready = 1" \
    "[template.churn]" "sql_dir = $CHURN" "min_ready = 0"

# --check-config with this sql_dir exits non-zero saying what is wrong.
check_config_refuses() { # sql_dir pattern
    printf '[template.x]\nsql_dir = %s\n' "$1" > "$T/check.ini"
    set +e
    out=$("$DBLEASED" --config "$T/check.ini" --check-config 2>&1 >/dev/null)
    rc=$?
    set -e
    [ "$rc" = 78 ] || fail "--check-config on sql_dir $1: exit $rc, not 78"
    grep -q "$2" <<<"$out" || fail "message: $out"
}

test_check_config_reports_a_missing_or_wrong_sql_dir() {
    check_config_refuses "$T/nowhere" "template.x.*$T/nowhere.*No such file"
    check_config_refuses "$SQL/001_users.sql" "not a directory"
    mkdir -p "$T/fifo" && mkfifo "$T/fifo/001.sql"
    check_config_refuses "$T/fifo" "001.sql is a FIFO"
    printf '[template.x]\nsql_dir = %s\n' "$SQL" > "$T/good.ini"
    "$DBLEASED" --config "$T/good.ini" --check-config >/dev/null 2>&1 || fail "good config refused"
}

test_missing_sql_dir_at_start_fails_only_its_template() {
    expect_failed_naming gone "$GONE"
    mkdir -p "$GONE"
    cp "$SQL/001_users.sql" "$GONE/"
    chmod -R a+rX "$GONE"
    expect_recovers gone
}

test_dangling_link_fails_the_template_then_it_recovers() {
    ln -s "$T/no-such-file" "$SQL/002_dangling.sql"
    kill -HUP "$DAEMON_PID"
    expect_failed_naming app 002_dangling.sql
    rm "$SQL/002_dangling.sql"
    expect_recovers app
}

test_fifo_neither_freezes_the_daemon_nor_builds() {
    mkfifo "$SQL/003_fifo.sql"
    chmod a+rw "$SQL/003_fifo.sql"
    kill -HUP "$DAEMON_PID"
    rc=0
    wait_until 10 state_is app failed || rc=1
    status_answers || rc=1
    # A daemon blocked opening the FIFO for reading wakes up when a writer
    # comes: let it go, so a failure here does not hang the whole suite.
    timeout 2 sh -c "echo > '$SQL/003_fifo.sql'" || true
    [ "$rc" = 0 ] || fail "status did not answer, or the template did not fail"
    expect_failed_naming app 003_fifo.sql
    rm "$SQL/003_fifo.sql"
    expect_recovers app
}

test_link_to_dev_zero_and_huge_file_are_refused() {
    ln -s /dev/zero "$SQL/004_zero.sql"
    kill -HUP "$DAEMON_PID"
    status_answers || fail "status did not answer"
    expect_failed_naming app 004_zero.sql
    rm "$SQL/004_zero.sql"
    truncate -s 65M "$SQL/005_huge.sql"
    chmod a+r "$SQL/005_huge.sql"
    kill -HUP "$DAEMON_PID"
    expect_failed_naming app "005_huge.sql is 65 MiB, over the limit of 64 MiB"
    rm "$SQL/005_huge.sql"
    expect_recovers app
}

test_files_vanishing_while_read_are_survived() {
    # As `git checkout` does: files come and go while SIGHUP (and inotify)
    # have the directory read again and again.
    (
        while :; do
            echo "SELECT 1;" > "$CHURN/999_tmp.sql"
            rm -f "$CHURN/999_tmp.sql"
        done
    ) &
    churn=$!
    rc=0
    for _ in $(seq 1 25); do
        kill -HUP "$DAEMON_PID" || { rc=1; break; }
        status_answers || { rc=1; break; }
    done
    kill "$churn"
    wait "$churn" || true
    rm -f "$CHURN/999_tmp.sql"
    [ "$rc" = 0 ] && kill -0 "$DAEMON_PID" || fail "the daemon died or stopped answering"
    expect_recovers churn
}

test_reload_resizes_a_template_whose_files_did_not_change() {
    # The reload reads sql_dir again; finding it unchanged must not lose
    # the new pool sizes.
    sed -i 's/^min_ready = 1$/min_ready = 2/' "$T/dbleased.ini"
    kill -HUP "$DAEMON_PID"
    app_min() { "$DBLEASE" status --json | jq -e '[.pools[] | select(.template == "app" and .template_state == "ready")] | last | .min_ready == 2'; }
    wait_until 10 app_min || fail "min_ready not applied: $("$DBLEASE" status --json | jq -c '.pools')"
    sed -i 's/^min_ready = 2$/min_ready = 1/' "$T/dbleased.ini"
    kill -HUP "$DAEMON_PID"
}

test_template_removed_while_being_read_retires_every_version() {
    # A big file keeps the read of churn's sql_dir in flight while a second
    # reload removes the template: no version of it may stay live.
    head -c 60M /dev/zero | tr '\0' ' ' > "$CHURN/500_big.sql"
    chmod a+r "$CHURN/500_big.sql"
    kill -HUP "$DAEMON_PID"
    status_answers
    sed -i '/^\[template.churn\]$/,$d' "$T/dbleased.ini"
    kill -HUP "$DAEMON_PID"
    live() { "$DBLEASE" status --json | jq '[.templates[] | select(.name == "churn" and .state != "retiring")] | length'; }
    wait_until 20 test "$(live)" = 0 || fail "churn still live: $("$DBLEASE" status --json | jq -c '.templates')"
    rm "$CHURN/500_big.sql"
}

run_tests
