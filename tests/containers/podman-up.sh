#!/usr/bin/env bash
# Start a private Podman API service (Docker-compatible REST API) for the
# docker runtime's tests.
#
#   eval "$(tests/containers/podman-up.sh DIR)"
#
# Everything lives under DIR: containers.conf, storage.conf, vfs storage,
# run/tmp state, the socket DIR/podman.sock, the service's log and pid file.
# Prints the DOCKER_HOST / CONTAINERS_CONF / CONTAINERS_STORAGE_CONF exports
# on stdout (nothing else goes to stdout). Idempotent: a live service for DIR
# is reused. Exits 77 with a one-line reason on stderr when podman/runc are
# missing and cannot be installed, or when the service does not come up;
# callers then skip.
#
# Settings this machine needs (crun and the default RLIMIT handling fail on
# its hybrid cgroups): runtime runc, default_ulimits = [], cgroupfs, file
# events logger, vfs storage, host networking. PODMAN_STORAGE_DRIVER=overlay
# also works here and makes create much faster (vfs copies the whole image
# per container), but vfs is the default: it works on any filesystem.
set -euo pipefail

skip() { echo "podman-up: $*" >&2; exit 77; }

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
dir=$(cd "$1" && pwd -P)
here=$(cd "$(dirname "$0")" && pwd -P)
sock="$dir/podman.sock"
# sun_path holds 107 bytes plus the NUL.
[ ${#sock} -lt 108 ] || skip "socket path too long: $sock"

if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    # scripts/deps.sh is the one place packages are installed.
    "$here/../../scripts/deps.sh" >&2 || true
    hash -r
    command -v podman >/dev/null || skip "podman is not installed and could not be"
    command -v runc >/dev/null || skip "runc is not installed and could not be"
fi
command -v curl >/dev/null || skip "curl is not installed"
[ "$(id -u)" -eq 0 ] || skip "needs root (rootless podman is not set up here)"

ping_ok() {
    [ -S "$sock" ] && [ "$(curl -s -m 2 --unix-socket "$sock" http://d/_ping 2>/dev/null)" = OK ]
}

print_env() {
    printf 'export DOCKER_HOST=%q\n' "unix://$sock"
    printf 'export CONTAINERS_CONF=%q\n' "$dir/containers.conf"
    printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$dir/storage.conf"
}

# Already up?
if [ -f "$dir/podman.pid" ] && kill -0 "$(cat "$dir/podman.pid")" 2>/dev/null && ping_ok; then
    print_env
    exit 0
fi

mkdir -p "$dir/storage" "$dir/run" "$dir/tmp" "$dir/volumes"
cat > "$dir/containers.conf" <<EOF
# Written by tests/containers/podman-up.sh
[containers]
default_ulimits = []
# For the podman CLI; the Docker-compatible API ignores it and defaults to
# bridge: API clients must send HostConfig.NetworkMode = "host".
netns = "host"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/tmp/events.log"
tmp_dir = "$dir/tmp"
static_dir = "$dir/storage/libpod"
volume_path = "$dir/volumes"
EOF
driver=${PODMAN_STORAGE_DRIVER:-vfs}
# Storage made with another driver cannot be reused: podman refuses it.
if [ -f "$dir/storage.conf" ] && ! grep -qx "driver = \"$driver\"" "$dir/storage.conf"; then
    skip "$dir holds storage of another driver; run podman-down.sh $dir first"
fi
cat > "$dir/storage.conf" <<EOF
# Written by tests/containers/podman-up.sh
[storage]
driver = "$driver"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
export CONTAINERS_CONF="$dir/containers.conf"
export CONTAINERS_STORAGE_CONF="$dir/storage.conf"

# A stale pid file or socket from a dead service.
if [ -f "$dir/podman.pid" ]; then
    old=$(cat "$dir/podman.pid")
    if kill -0 "$old" 2>/dev/null; then
        kill "$old" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$dir/podman.pid"
fi
rm -f "$sock"

# Own session, no stdin/stdout: the service outlives this script and must not
# hold the caller's pipe open (eval "$(...)" would otherwise never return).
setsid podman system service --time=0 "unix://$sock" \
    </dev/null >>"$dir/podman.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/podman.pid"

# Wait for the socket to appear, then for the API to answer; bounded (~30 s).
for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$dir/podman.pid"
        skip "podman system service exited: $(tail -n 1 "$dir/podman.log" 2>/dev/null)"
    fi
    if [ -S "$sock" ]; then
        ping_ok && { print_env; exit 0; }
    fi
    sleep 0.1
done
kill "$pid" 2>/dev/null || true
rm -f "$dir/podman.pid"
skip "podman API on $sock did not answer within 30 s (see $dir/podman.log)"
