# shellcheck shell=bash
# Shared by the Redis test scripts, sourced after lib.sh: skip without
# redis-server, and talk to a lease (its --json output) through hiredis.
command -v redis-server >/dev/null || { echo "SKIP: no redis-server (apt-get install redis-server)"; exit 77; }

field() { jq -r ".$2" <<<"$1"; }
probe() { # lease-json cmd…
    local j=$1; shift
    "$REDIS_PROBE" "$(field "$j" host)" "$(field "$j" port)" "$(field "$j" password)" "$(field "$j" db)" "$@"
}
