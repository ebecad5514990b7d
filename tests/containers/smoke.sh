#!/usr/bin/env bash
# End-to-end check of the container test fixture, without dblease: start the
# Podman API service, build the look-alike images, then drive postgres and
# redis containers through the Docker Engine REST API (curl over the Unix
# socket) the way the docker runtime does: create, start, wait until ready,
# use, force-remove. Prints timings and the API version Podman reports.
#
#   tests/containers/smoke.sh [DIR]
#
# DIR (default: a fresh temp dir, removed at exit) is torn down with
# podman-down.sh at exit unless KEEP=1. Exits 77 when the fixture cannot run here.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
own_dir=
if [ $# -ge 1 ]; then dir=$1; else dir=$(mktemp -d /tmp/dblease-podman.XXXXXX); own_dir=1; fi
API=v1.41
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }

cleanup() {
    [ -z "${events_pid:-}" ] || kill "$events_pid" 2>/dev/null || true
    if [ "${KEEP:-0}" != 1 ]; then
        "$here/podman-down.sh" "$dir"
        [ -z "$own_dir" ] || rm -rf "$dir"
    fi
}
trap cleanup EXIT

now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d ms", (b - a) * 1000 }'; }

t0=$(now)
rc=0; envs=$("$here/podman-up.sh" "$dir") || rc=$?
[ $rc -eq 0 ] || { [ $rc -eq 77 ] && echo "smoke: SKIP" >&2; exit $rc; }
eval "$envs"
t1=$(now); echo "podman-up:            $(ms "$t0" "$t1")"
"$here/build-images.sh" "$dir"
t2=$(now); echo "build-images:         $(ms "$t1" "$t2")"

sock=${DOCKER_HOST#unix://}
# api METHOD PATH [JSON]: prints the body, then the HTTP status on its own line.
api() {
    local args=(-sS --unix-socket "$sock" -X "$1" -w '\n%{http_code}')
    [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' -d "$3")
    curl "${args[@]}" "http://d/$API$2"
}
body() { sed '$d'; }
status() { tail -n 1; }
expect() {  # EXPECTED-STATUS WHAT RESPONSE -> body on stdout
    local code; code=$(printf '%s\n' "$3" | status)
    [ "$code" = "$1" ] || fail "$2: HTTP $code: $(printf '%s\n' "$3" | body)"
    printf '%s\n' "$3" | body
}

free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

wait_for() {  # WHAT CMD...: retry CMD every 20 ms for up to 30 s
    local what=$1; shift
    local i
    for ((i = 0; i < 1500; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.02
    done
    fail "$what not ready after 30 s"
}

echo "--- API"
ver=$(curl -sS --unix-socket "$sock" http://d/version)
echo "version: $(jq -c '{Version, ApiVersion, MinAPIVersion}' <<<"$ver")"
echo "_ping:   $(curl -sS --unix-socket "$sock" http://d/_ping)"

# Container events as the runtime would watch them (file events logger).
events_log="$dir/events.json"
curl -sSN --unix-socket "$sock" \
    "http://d/$API/events?filters=$(jq -rn '{type:["container"],label:["dblease.test=1"]}|@uri')" \
    > "$events_log" 2>/dev/null &
events_pid=$!

run_container() {  # NAME JSON -> prints id; timings to stderr
    local a b c id
    a=$(now)
    id=$(expect 201 "create $1" "$(api POST "/containers/create?name=$1" "$2")" | jq -r .Id)
    b=$(now)
    expect 204 "start $1" "$(api POST "/containers/$id/start")" >/dev/null
    c=$(now)
    echo "  create: $(ms "$a" "$b"), start: $(ms "$b" "$c")" >&2
    echo "$id"
}

remove_container() {  # ID
    local a b
    a=$(now)
    expect 204 "remove $1" "$(api DELETE "/containers/$1?force=true&v=true")" >/dev/null
    b=$(now)
    echo "  force-remove: $(ms "$a" "$b")"
}

vols_before=$(expect 200 volumes "$(api GET /volumes)" | jq '.Volumes | length')

echo "--- postgres (defaults: user postgres, db postgres)"
port=$(free_port)
a=$(now)
pg=$(run_container "dblease-smoke-pg-$$" "$(jq -nc --arg p "$port" '{
    Image: "localhost/dblease-postgres:15",
    Env: ["POSTGRES_PASSWORD=x"],
    Cmd: ["postgres", "-c", "port=\($p)", "-c", "fsync=off"],
    HostConfig: {NetworkMode: "host"},
    Labels: {"dblease.test": "1"}}')")
wait_for "postgres on $port" pg_isready -q -h 127.0.0.1 -p "$port"
b=$(now); echo "  create -> pg_isready: $(ms "$a" "$b")"
# shellcheck disable=SC2016  # $$...$$ is SQL dollar quoting
out=$(PGPASSWORD=x psql -X -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c 'select current_user, current_database(), current_setting($$server_version_num$$)')
echo "  psql: $out"
[ "${out%%|*}" = postgres ] || fail "psql answered '$out'"
PGPASSWORD=wrong psql -X -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1 &&
    fail "a wrong password was accepted over TCP"
echo "  wrong password over TCP: rejected"

info=$(expect 200 inspect "$(api GET "/containers/$pg/json")")
echo "  inspect: $(jq -c '{Status: .State.Status, NetworkMode: .HostConfig.NetworkMode, Labels: .Config.Labels, Mounts: [.Mounts[] | {Type, Destination}]}' <<<"$info")"
[ "$(jq -r .State.Status <<<"$info")" = running ] || fail "postgres container is not running"
listed=$(expect 200 list "$(api GET "/containers/json?all=true&filters=$(jq -rn '{label:["dblease.test=1"]}|@uri')")")
jq -e --arg id "$pg" 'map(.Id) | index($id) != null' <<<"$listed" >/dev/null || fail "label filter did not list the container"
echo "  label filter lists it: yes ($(jq length <<<"$listed") container(s) with dblease.test=1)"
remove_container "$pg"
b=$(now); echo "  total: $(ms "$a" "$b")"

echo "--- postgres (POSTGRES_USER=app, POSTGRES_DB=app db)"
port=$(free_port)
a=$(now)
pg=$(run_container "dblease-smoke-pg2-$$" "$(jq -nc --arg p "$port" '{
    Image: "localhost/dblease-postgres:15",
    Env: ["POSTGRES_PASSWORD=s3cr\u0027et \"x\"", "POSTGRES_USER=app", "POSTGRES_DB=app db"],
    Cmd: ["-c", "port=\($p)", "-c", "fsync=off"],
    HostConfig: {NetworkMode: "host"},
    Labels: {"dblease.test": "1"}}')")
wait_for "postgres on $port" pg_isready -q -h 127.0.0.1 -p "$port"
b=$(now); echo "  create -> pg_isready: $(ms "$a" "$b")"
out=$(PGPASSWORD="s3cr'et \"x\"" psql -X -qAt -h 127.0.0.1 -p "$port" -U app -d "app db" \
    -c 'select current_user, current_database()')
echo "  psql: $out"
[ "$out" = "app|app db" ] || fail "psql answered '$out'"
remove_container "$pg"

echo "--- wait / logs on a container that exits"
a=$(now)
id=$(run_container "dblease-smoke-exit-$$" '{"Image":"localhost/dblease-postgres:15","Cmd":["postgres","--version"],"HostConfig":{"NetworkMode":"host"},"Labels":{"dblease.test":"1"}}')
w=$(expect 200 wait "$(api POST "/containers/$id/wait?condition=not-running")")
echo "  wait: $w"
[ "$(jq -r .StatusCode <<<"$w")" = 0 ] || fail "wait did not report exit 0"
logs=$(curl -sS --unix-socket "$sock" "http://d/$API/containers/$id/logs?stdout=true&stderr=true" | od -An -tx1 -N8 | tr -s ' ')
echo "  logs: first 8 bytes:$logs (Docker multiplexed-stream header when 01/02 00 00 00 ...)"
remove_container "$id"

echo "--- redis"
port=$(free_port)
a=$(now)
rd=$(run_container "dblease-smoke-redis-$$" "$(jq -nc --arg p "$port" '{
    Image: "localhost/dblease-redis:7",
    Cmd: ["redis-server", "--port", $p, "--save", "", "--appendonly", "no"],
    HostConfig: {NetworkMode: "host"},
    Labels: {"dblease.test": "1"}}')")
wait_for "redis on $port" sh -c "[ \"\$(redis-cli -p $port ping)\" = PONG ]"
b=$(now); echo "  create -> PONG: $(ms "$a" "$b")"
echo "  redis-cli: $(redis-cli -p "$port" info server | grep -E '^redis_version' | tr -d '\r')"
remove_container "$rd"
b=$(now); echo "  total: $(ms "$a" "$b")"

echo "--- leftovers"
left=$(expect 200 list "$(api GET "/containers/json?all=true&filters=$(jq -rn '{label:["dblease.test=1"]}|@uri')")")
[ "$(jq length <<<"$left")" = 0 ] || fail "containers left: $left"
vols=$(expect 200 volumes "$(api GET /volumes)" | jq '.Volumes | length')
echo "  containers: 0, volumes: $vols (before: $vols_before)"
[ "$vols" = "$vols_before" ] || fail "anonymous volumes left after DELETE ?v=true"

sleep 0.2
kill "$events_pid" 2>/dev/null || true; wait "$events_pid" 2>/dev/null || true; events_pid=
echo "  events seen: $(jq -r '.Action' "$events_log" 2>/dev/null | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')"

echo "smoke: PASS"
