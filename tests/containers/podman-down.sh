#!/usr/bin/env bash
# Tear down what podman-up.sh DIR started: force-remove every container in
# DIR's storage, stop the API service, delete DIR's storage (vfs layers are
# full copies and can be big). Leaves DIR itself and its logs. Safe to run
# twice, or when podman-up.sh never ran.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ -d "$1" ] || exit 0
dir=$(cd "$1" && pwd -P)

if [ -f "$dir/containers.conf" ] && [ -f "$dir/storage.conf" ] && command -v podman >/dev/null; then
    export CONTAINERS_CONF="$dir/containers.conf"
    export CONTAINERS_STORAGE_CONF="$dir/storage.conf"
    podman rm --all --force --volumes --time 0 >/dev/null 2>&1 || true
    podman volume prune --force >/dev/null 2>&1 || true
fi

if [ -f "$dir/podman.pid" ]; then
    pid=$(cat "$dir/podman.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$dir/podman.pid"
fi
rm -f "$dir/podman.sock"

# Containers are gone, so nothing should be mounted; unmount leftovers anyway
# (deepest first) so rm does not walk into a live mount.
if [ -r /proc/self/mountinfo ]; then
    awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
fi
# vfs layers are plain directories, some made read-only inside.
chmod -R u+w "$dir/storage" "$dir/run" "$dir/tmp" "$dir/volumes" 2>/dev/null || true
rm -rf "$dir/storage" "$dir/run" "$dir/tmp" "$dir/volumes"
exit 0
