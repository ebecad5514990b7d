#!/usr/bin/env bash
# Client templates on a shared daemon (issue 13 item 6): a template belongs
# to the uid that created it. Another local user may lease it and ensure it
# as it is, but not migrate a new version, finalize or drop it. A lease
# waiting on a migration says so; claims count toward max_databases; one
# uid owns at most max_templates_per_uid names; unused client templates
# are retired. The attacks run as a second local user
# (created here, removed at exit), who reaches the socket through its group.
source "$(dirname "$0")/lib.sh"

OTHER=
if [ "$(id -u)" = 0 ]; then
    OTHER="dblto$$"
    add_local_user "$OTHER" # removed at exit (lib.sh)
    start_daemon "socket_group = $OTHER" "max_databases = 12" "max_templates_per_uid = 1" \
        "[postgres]" "min_ready = 1" "max_total = 4"
else
    start_daemon "max_databases = 12" "max_templates_per_uid = 1" "[postgres]" "min_ready = 1" \
        "max_total = 4"
fi

code_of() { jq -r '.error.code // "ok"' <<<"$1"; }
state_of() { jq -r '.template.state // empty' <<<"$1"; }
# Databases counted that no pool holds (template databases, claims), from
# one status: pools refilling meanwhile cannot skew it.
template_dbs() {
    "$DBLEASE" status --json |
        jq '.counters.databases - ([.pools[] | .ready + .leased + .resetting + .creating + .failed] | add)'
}
as_other() { setpriv --reuid="$OTHER" --regid="$OTHER" --init-groups "$@"; }
rpc_other() { printf '%s\n' "$@" | as_other socat -t 5 - "UNIX-CONNECT:$SOCK"; }
need_other() {
    [ -n "$OTHER" ] && return 0
    skip "not root, so no second local user to attack with"
    return 1
}
# Root migrates NAME at HASH with one table, named after the hash.
migrate_as_root() { # name hash
    "$DBLEASE" template migrate "$1" --hash "$2" -- psql -XAtqc "CREATE TABLE t_$2 (x int)" 2>/dev/null
}
has_table() { # url table
    [ "$(sql "$1" "SELECT count(*) FROM pg_tables WHERE tablename = '$2'")" = 1 ]
}

test_another_user_cannot_plant_a_new_version() {
    need_other || return 0
    migrate_as_root app v1
    set +e
    out=$(as_other "$DBLEASE" template migrate app --hash v2 -- \
        sh -c 'psql -XAtqc "CREATE TABLE planted (x int)"' 2>&1)
    rc=$?
    set -e
    [ "$rc" = 1 ] && grep -q forbidden <<<"$out" || fail "other user's migrate: exit $rc: $out"
    grep -q "uid 0" <<<"$out" || fail "the error does not say who owns it: $out"
    url=$("$DBLEASE" lease --template app)
    has_table "$url" t_v1 || fail "root's lease lost the owner's version"
    ! has_table "$url" planted || fail "root's lease contains what the other user planted"
    # Ensuring the version as it is, and leasing it, stay open to everyone.
    [ "$(state_of "$(rpc_other '{"id":1,"op":"template.ensure","template":"app","hash":"v1"}')")" = ready ]
    as_other "$DBLEASE" lease --template app >/dev/null || fail "other user cannot lease it"
}

test_another_user_cannot_finalize_or_drop_it() {
    need_other || return 0
    open_conn a
    send a '{"id":1,"op":"template.ensure","template":"held","hash":"h1"}'
    [ "$(state_of "$(reply_of a 1)")" = migrate ]
    r=$(rpc_other '{"id":1,"op":"template.finalize","template":"held","hash":"h1"}')
    [ "$(code_of "$r")" = forbidden ] || fail "other user's finalize: $r"
    r=$(rpc_other '{"id":1,"op":"template.drop","template":"held"}')
    [ "$(code_of "$r")" = forbidden ] || fail "other user's drop: $r"
    send a '{"id":2,"op":"template.finalize","template":"held","hash":"h1"}'
    [ "$(state_of "$(reply_of a 2)")" = ready ]
    close_conn a
    # The owner may drop its own: here the other user, with a template it made.
    as_other "$DBLEASE" template migrate theirs --hash v1 -- true 2>/dev/null
    [ "$(code_of "$(rpc_other '{"id":1,"op":"template.drop","template":"theirs"}')")" = ok ]
}

test_a_lease_waiting_on_a_migration_says_so() {
    open_conn m
    send m '{"id":1,"op":"template.ensure","template":"slow","hash":"s1"}'
    [ "$(state_of "$(reply_of m 1)")" = migrate ]
    set +e
    out=$("$DBLEASE" lease --template slow --wait 300 2>&1)
    rc=$?
    set -e
    [ "$rc" = 75 ] || fail "lease of a template being migrated: exit $rc: $out"
    grep -q "being migrated" <<<"$out" || fail "the timeout blames something else: $out"
    close_conn m
}

test_claims_count_toward_max_databases() {
    before=$(template_dbs)
    open_conn c
    send c '{"id":1,"op":"template.ensure","template":"counted","hash":"c1"}'
    [ "$(state_of "$(reply_of c 1)")" = migrate ]
    [ "$(template_dbs)" = $((before + 1)) ] || fail "the claim's database is not counted: $before -> $(template_dbs)"
    close_conn c
    back() { [ "$(template_dbs)" = "$before" ]; }
    wait_until 10 back || fail "the abandoned claim is still counted: $(template_dbs)"
}

# Each template name is a database and a pool: one uid cannot fill
# max_databases with names (max_templates_per_uid, 1 here). A new version
# of its own is not a new name; dropping one makes room; root is exempt.
test_one_user_cannot_take_the_databases_with_template_names() {
    need_other || return 0
    as_other "$DBLEASE" template migrate mine1 --hash h1 -- true 2>/dev/null || fail "first template"
    set +e
    out=$(as_other "$DBLEASE" template migrate mine2 --hash h1 -- true 2>&1)
    rc=$?
    set -e
    [ "$rc" = 1 ] && grep -q too_many_templates <<<"$out" || fail "second name: exit $rc: $out"
    grep -q "mine1" <<<"$out" && grep -q "dblease template drop NAME" <<<"$out" &&
        grep -q "max_templates_per_uid" <<<"$out" || fail "the error does not say what to do: $out"
    as_other "$DBLEASE" template migrate mine1 --hash h2 -- true 2>/dev/null ||
        fail "a new version of its own template was refused"
    as_other "$DBLEASE" template drop mine1 2>/dev/null || fail "the owner could not drop it"
    as_other "$DBLEASE" template migrate mine2 --hash h1 -- true 2>/dev/null ||
        fail "still refused after dropping one"
    as_other "$DBLEASE" template drop mine2 2>/dev/null
    for n in 1 2; do
        migrate_as_root "rootown$n" h1 || fail "root was capped at template $n"
    done
    for n in 1 2; do "$DBLEASE" template drop "rootown$n" 2>/dev/null; done
}

test_unused_client_templates_are_retired() {
    migrate_as_root idle v1
    url=$("$DBLEASE" lease --template idle --json | jq -r .id)
    "$DBLEASE" release "$url"
    sed -i '/^\[daemon\]$/a client_template_idle_s = 1' "$T/dbleased.ini"
    kill -HUP "$DAEMON_PID"
    gone() { ! "$DBLEASE" status --json | jq -e '.templates[] | select(.name == "idle")' >/dev/null; }
    wait_until 15 gone || fail "unused template not dropped: $("$DBLEASE" status --json | jq -c '.templates')"
    set +e
    out=$("$DBLEASE" lease --template idle 2>&1)
    set -e
    grep -q unknown_template <<<"$out" || fail "lease of a retired template: $out"
    sed -i '/^client_template_idle_s/d' "$T/dbleased.ini"
    kill -HUP "$DAEMON_PID"
}

run_tests
