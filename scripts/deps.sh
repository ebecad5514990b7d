#!/usr/bin/env bash
# Install what building and testing dblease needs, from Debian 12's packages.
# Idempotent: does nothing when everything is there already.
set -euo pipefail

packages=(
    gcc pkg-config meson ninja-build            # toolchain
    clang libclang-rt-14-dev                    # libFuzzer for tests/fuzz
    libuv1-dev libpq-dev libjson-c-dev libinih-dev libcmocka-dev  # libraries
    libhiredis-dev libssl-dev libsystemd-dev    # Redis client; SHA-256; sd_notify
    libcurl4-openssl-dev                        # docker runtime: the engine API over HTTP
    postgresql redis-server                     # server binaries for the process runtime
    postgresql-client redis-tools socat jq curl util-linux procps systemd # what the tests drive
    gnuplot-nox                                 # bench/run.sh draws its plot
    prometheus                                  # promtool checks /metrics (test_service)
    podman runc                                 # tests/containers: Docker-compatible API for the docker runtime
    python3-pytest python3-pytest-xdist python3-venv python3-pip python3-setuptools python3-wheel  # bindings/python, offline
    python3-psycopg2 python3-redis              # examples/python
    golang-go golang-github-lib-pq-dev          # bindings/go; lib/pq for examples/go, through a go.mod replace
    nodejs                                      # bindings/node and examples/node (Node >= 18)
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian packages npm apart from nodejs; a Node from elsewhere (NodeSource,
# nvm) brings its own npm, which Debian's npm package would conflict with.
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
