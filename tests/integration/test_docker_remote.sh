#!/usr/bin/env bash
# A remote engine: Podman's API on loopback TCP behind a TLS terminator
# (socat) that requires a client certificate, certificates made here with
# openssl. Ports are published on a bridge network and read back from the
# engine; a certificate the engine does not trust is refused, clearly.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../containers/lib.sh"
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }

# A CA, the engine's certificate (127.0.0.1), a client signed by the CA and
# one signed by a stranger.
C="$T/certs"
mkdir -p "$C/good" "$C/bad"
mkcert() { # dir name ca-dir subject [ext]
    openssl req -new -newkey rsa:2048 -nodes -keyout "$1/$2-key.pem" -subj "/CN=$4" \
        -out "$1/$2.csr" 2>/dev/null
    openssl x509 -req -in "$1/$2.csr" -CA "$3/ca.pem" -CAkey "$3/ca-key.pem" -CAcreateserial \
        -days 2 -out "$1/$2.pem" ${5:+-extfile <(printf '%s\n' "$5")} 2>/dev/null
}
for d in good bad; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$C/$d/ca-key.pem" -out "$C/$d/ca.pem" \
        -days 2 -subj "/CN=dblease test CA $d" 2>/dev/null
done
mkcert "$C/good" server "$C/good" engine "subjectAltName=IP:127.0.0.1"
mkcert "$C/good" cert "$C/good" client "extendedKeyUsage=clientAuth"
mkcert "$C/bad" cert "$C/bad" intruder "extendedKeyUsage=clientAuth"
cp "$C/good/ca.pem" "$C/bad/ca.pem.trusted"
for d in good bad; do mv "$C/$d/cert-key.pem" "$C/$d/key.pem"; done
mv "$C/bad/ca.pem" "$C/bad/own-ca.pem" && mv "$C/bad/ca.pem.trusted" "$C/bad/ca.pem"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
socat "OPENSSL-LISTEN:$PORT,bind=127.0.0.1,reuseaddr,fork,cert=$C/good/server.pem,key=$C/good/server-key.pem,cafile=$C/good/ca.pem,verify=1" \
    "UNIX-CONNECT:$PODMAN_SOCK" 2>"$T/socat.log" &
TLS_PID=$!
trap 'kill "$TLS_PID" 2>/dev/null; engine_down; cleanup' EXIT
tls_up() { curl -fsS --cacert "$C/good/ca.pem" --cert "$C/good/cert.pem" --key "$C/good/key.pem" \
    "https://127.0.0.1:$PORT/_ping"; }
wait_until 10 tls_up || fail "the TLS terminator did not come up: $(cat "$T/socat.log")"

CONFIG=("[postgres]" "runtime = docker" "image = localhost/dblease-postgres:15"
        "min_ready = 1" "start_timeout_s = 60"
        "[redis]" "runtime = docker" "image = localhost/dblease-redis:7" "min_ready = 1")

test_leases_through_a_remote_engine_over_tls_with_published_ports() {
    # The docker CLI's variables, as a CI job would have them.
    DOCKER_HOST="tcp://127.0.0.1:$PORT" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$C/good" \
        start_daemon "${CONFIG[@]}"
    grep -q "containers through tcp://127.0.0.1:$PORT" "$STATE/dbleased.log" || fail "not over TCP"
    j=$("$DBLEASE" lease --json --wait 30000)
    u=$(jq -r .url <<<"$j")
    [ "$(sql "$u" "SELECT 1")" = 1 ] || fail "lease unusable: $u"
    [ "$(jq -r .host <<<"$j")" = 127.0.0.1 ] || fail "host: $j"
    id=$(our_containers '.Labels["dblease.kind"] == "postgres"')
    [ "$(api "http://d/v1.41/containers/$id/json" | jq -r .HostConfig.NetworkMode)" = bridge ] \
        || fail "not on a bridge network"
    published=$(api "http://d/v1.41/containers/$id/json" | jq -r '.NetworkSettings.Ports["5432/tcp"][0].HostPort')
    [ "$(jq -r .port <<<"$j")" = "$published" ] || fail "lease port $(jq -r .port <<<"$j"), published $published"
    bad="postgresql://$(jq -r .user <<<"$j"):wrong@127.0.0.1:$published/$(jq -r .dbname <<<"$j")"
    if psql "$bad" -XAtqc 'SELECT 1' >/dev/null 2>&1; then fail "a wrong password got in"; fi
    # Redis servers too: published on the bridge, the URL built from what
    # the engine says (before, the daemon refused [redis] runtime = docker
    # with a remote engine).
    j=$("$DBLEASE" lease --kind redis --json --wait 30000)
    u=$(jq -r .url <<<"$j")
    [ "$(redis-cli --no-auth-warning -u "$u" SET k v)" = OK ] || fail "redis lease unusable: $u"
    id=$(our_containers '.Labels["dblease.kind"] == "redis"' | head -n1)
    [ "$(api "http://d/v1.41/containers/$id/json" | jq -r .HostConfig.NetworkMode)" = bridge ] \
        || fail "redis not on a bridge network"
    ports=$(api "http://d/v1.41/containers/json" |
        jq -r '[.[] | select(.Labels["dblease.kind"] == "redis") | .Ports[]?.PublicPort] | map(tostring) | join(" ")')
    grep -qw "$(jq -r .port <<<"$j")" <<<"$ports" || fail "redis lease port $(jq -r .port <<<"$j") is none of the published $ports"
    bad="redis://default:wrong@127.0.0.1:$(jq -r .port <<<"$j")/0"
    if redis-cli --no-auth-warning -u "$bad" GET k 2>/dev/null | grep -q v; then
        fail "a wrong redis password got in"
    fi
    stop_daemon
    [ -z "$(our_containers)" ] || fail "containers left after stop: $(our_containers)"
}

test_a_certificate_the_engine_does_not_trust_is_refused_clearly() {
    printf '%s\n' "[postgres]" "runtime = docker" "docker_host = tcp://127.0.0.1:$PORT" \
        "docker_tls_verify = yes" "docker_cert_path = $C/bad" "start_timeout_s = 10" \
        "image = localhost/dblease-postgres:15" > "$T/bad.ini"
    set +e
    out=$("$DBLEASED" --config "$T/bad.ini" --socket "$T/bad.sock" --state-dir "$T/bad" 2>&1)
    rc=$?
    set -e
    [ "$rc" != 0 ] || fail "started with an untrusted certificate"
    grep -q "TLS with the engine failed" <<<"$out" || fail "message: $out"
    wait_until 5 grep -q "TLS with the engine failed.*docker_cert_path" "$T/bad/dbleased.log" ||
        fail "not in the log: $(ls "$T/bad"; tail -n 5 "$T/bad/dbleased.log")"
    [ -z "$(our_containers)" ] || fail "a container was made: $(our_containers)"
}

run_tests
