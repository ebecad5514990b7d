#!/usr/bin/env bash
# Test jobs in containers (GitLab's docker executor, GitHub Actions
# `container:` jobs): the daemon on the host, the job in a container on a
# bridge network with the daemon's socket mounted. With advertise_host =
# the bridge gateway the job's lease URLs work from inside it, and the
# servers still refuse whoever lacks the lease's password.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../containers/lib.sh"

GATEWAY=$(api "http://d/v1.41/networks/podman" | jq -r '.IPAM.Config[0].Gateway // empty')
[ -n "$GATEWAY" ] || { echo "SKIP: the engine has no bridge network"; exit 77; }
CLI_DIR=$(dirname "$DBLEASE")

# Run sh -c SCRIPT in a job container (bridge network, the socket's dir
# mounted, the host's /usr for psql and the CLI; root, as most CI images run,
# so the socket's peer check lets it in); print its exit code.
run_job() { # script
    local body id
    body=$(jq -n --arg s "$1" --arg sock "$SOCK" --arg t "$T" --arg cli "$CLI_DIR" '{
        Image: "localhost/dblease-postgres:15", Entrypoint: ["/bin/sh", "-c"], Cmd: [$s],
        Env: ["DBLEASE_SOCKET=" + $sock, "ASAN_OPTIONS=detect_leaks=0",
              "PATH=/usr/lib/postgresql/15/bin:/usr/bin:/bin", "CLI=" + $cli + "/dblease"],
        User: "root", Labels: {"dblease-test": "job"},
        HostConfig: {NetworkMode: "bridge", Binds: ["/usr:/usr:ro", $t + ":" + $t, $cli + ":" + $cli + ":ro"]}}')
    id=$(api -X POST -H 'Content-Type: application/json' -d "$body" \
        "http://d/v1.41/containers/create?name=dblease-test-job-$$" | jq -r .Id)
    api -X POST "http://d/v1.41/containers/$id/start" >/dev/null
    api -m 90 -X POST "http://d/v1.41/containers/$id/wait" | jq -r .StatusCode
    api -X DELETE "http://d/v1.41/containers/$id?force=true" >/dev/null || true
}

test_a_job_container_leases_through_the_mounted_socket_and_connects() {
    start_daemon "[postgres]" "runtime = docker" "docker_host = $DOCKER_HOST" \
        "image = localhost/dblease-postgres:15" "min_ready = 1" "start_timeout_s = 60" \
        "advertise_host = $GATEWAY"
    j=$("$DBLEASE" lease --json --wait 30000)
    [ "$(jq -r .host <<<"$j")" = "$GATEWAY" ] || fail "URL host: $(jq -r .url <<<"$j")"
    "$DBLEASE" release "$(jq -r .id <<<"$j")"
    # Inside: lease, connect, and try the same server with a wrong password.
    code=$(run_job '
        j=$("$CLI" lease --json --wait 30000 2>>'"$T"'/job.out) || exit 3
        u=$(echo "$j" | jq -r .url)
        psql "$u" -XAtqc "SELECT '"'"'reached from the job'"'"'" > '"$T"'/job.out 2>&1 || exit 4
        bad=$(echo "$j" | jq -r "\"postgresql://\" + .user + \":wrong@\" + .host + \":\" + (.port|tostring) + \"/\" + .dbname")
        if psql "$bad" -XAtqc "SELECT 1" >> '"$T"'/job.out 2>&1; then exit 5; fi
        echo refused >> '"$T"'/job.out')
    [ "$code" = 0 ] || fail "the job failed ($code): $(cat "$T/job.out" 2>/dev/null)"
    grep -q "reached from the job" "$T/job.out" || fail "no answer: $(cat "$T/job.out")"
    grep -q "password authentication failed" "$T/job.out" || fail "not refused: $(cat "$T/job.out")"
    stop_daemon
    [ -z "$(our_containers)" ] || fail "containers left after stop: $(our_containers)"
}

run_tests
