#!/usr/bin/env bash
# Build dblease, start dbleased with its built-in defaults (process runtime,
# this machine's PostgreSQL) and show a lease. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release
fi
meson compile -C build >/dev/null

# Started as root, dbleased runs its servers as the dedicated user dblease
# (never as a shared user such as nobody): make it as the package would.
if [ "$(id -u)" = 0 ] && ! id dblease >/dev/null 2>&1; then
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers systemd/dblease.sysusers
    else
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin dblease
    fi
fi

if ! build/client/dblease status >/dev/null 2>&1; then
    # Returns once the first database is ready (or says why it could not).
    build/daemon/dbleased
fi
echo "dbleased is running. A lease:"
url=$(build/client/dblease lease --ttl 600)
echo "  $url"
psql "$url" -XAtc "SELECT '  connected to ' || current_database() || ' as ' || current_user || ', ' || version()"
echo
build/client/dblease status
echo
echo "Try: build/client/dblease run -- psql -c 'SELECT 1'"
echo "Stop it: build/client/dblease stop   (it stops every server it started)"
