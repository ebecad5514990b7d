# Sourced by the docker runtime's integration tests after
# tests/integration/lib.sh: one private Podman engine per script (slow to
# start, so every test of the script shares it), the look-alike images, and
# helpers that ask the engine what exists.
CONTAINERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Short path: the API socket lives in it (sun_path is 108 bytes).
PM=$(mktemp -d /tmp/dbl-pm.XXXXXX)
if ! exports=$("$CONTAINERS_DIR/podman-up.sh" "$PM"); then
    echo "SKIP: no Podman engine here (see above)"
    rm -rf "$PM"
    exit 77
fi
eval "$exports"
PODMAN_SOCK=${DOCKER_HOST#unix://}
engine_down() { "$CONTAINERS_DIR/podman-down.sh" "$PM" >/dev/null 2>&1; rm -rf "$PM"; }
trap 'engine_down; cleanup' EXIT
"$CONTAINERS_DIR/build-images.sh" "$PM" >&2 || {
    rc=$?
    [ "$rc" = 77 ] && { echo "SKIP: cannot build images"; exit 77; }
    exit "$rc"
}

api() { curl -fsS --unix-socket "$PODMAN_SOCK" "$@"; }
our_containers() { # [jq condition on .Labels]: ids of containers a dbleased made
    api "http://d/v1.41/containers/json?all=true" |
        jq -r ".[] | select(.Labels[\"dblease.daemon\"] != null) | select(${1:-true}) | .Id"
}
