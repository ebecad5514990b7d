#!/usr/bin/env bash
# Every dependency() in a meson.build comes from a Debian package that
# scripts/deps.sh installs. A green build can otherwise hide a package the
# machine happened to have: a fresh Debian 12 once failed at meson setup on
# libcurl, which deps.sh did not install.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v dpkg-query >/dev/null || { echo "SKIP: not a Debian system"; exit 77; }

listed=$(sed -n '/^packages=(/,/^)/p' "$root/scripts/deps.sh" | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^packages=(\|^)$\|^$')
names=$(find "$root" -name meson.build -not -path '*/build*' -not -path '*/node_modules/*' -exec \
    grep -ho "dependency('[^']*'" {} + | sed "s/dependency('//; s/'//" | sort -u)
bad=0
for name in $names; do
    case $name in threads) continue ;; esac # the compiler's own
    dir=$(pkg-config --variable=pcfiledir "$name" 2>/dev/null) || {
        echo "FAIL: dependency('$name'): pkg-config does not know it (run scripts/deps.sh)"; bad=1; continue; }
    pkg=$(dpkg-query -S "$dir/$name.pc" 2>/dev/null | head -n1 | cut -d: -f1) || true
    if [ -z "$pkg" ]; then
        echo "FAIL: dependency('$name'): $dir/$name.pc belongs to no Debian package"; bad=1
    elif ! grep -qx "$pkg" <<<"$listed"; then
        echo "FAIL: dependency('$name') comes from $pkg, which scripts/deps.sh does not install"; bad=1
    else
        echo "ok: dependency('$name') <- $pkg"
    fi
done
exit $bad
