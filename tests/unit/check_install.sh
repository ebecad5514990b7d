#!/usr/bin/env bash
# The documentation a newcomer is pointed at gets installed and is right
# (Redis URLs as the daemon sends them):
# `meson install` puts the example configuration and PROTOCOL.md in the doc
# dir, the example names every key --check-config knows, and --check-config
# accepts it as shipped.
# usage: check_install.sh SOURCE_ROOT BUILD_ROOT DBLEASED
set -euo pipefail
src=$1 build=$2 dbleased=$3
example="$src/doc/dbleased.conf.example"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$dbleased" --check-config --config "$example" --state-dir "$T/state" > "$T/effective" 2> "$T/err" ||
    fail "--check-config refuses the example: $(cat "$T/err")"
for key in $("$dbleased" --check-config --state-dir "$T/state" 2>/dev/null | sed -n 's/^\([a-z_]*\) = .*/\1/p' | sort -u); do
    grep -q "^;$key =" "$example" || fail "the example lacks key $key"
done
# Every key uncommented at the value shown is still a valid file.
sed -e 's/^;\([a-z_]* =\)/\1/' -e 's/^;\(\[template\.\)/\1/' -e '/^url =/d' \
    -e "s|^sql_dir = .*|sql_dir = $T/sql|" "$example" > "$T/all.ini"
mkdir -p "$T/sql"
"$dbleased" --check-config --config "$T/all.ini" --state-dir "$T/state" >/dev/null 2> "$T/err" ||
    fail "the example with every key uncommented is refused: $(cat "$T/err")"

# The daemon sends redis://default:PASSWORD@ (pool/lease.c): the docs show that form.
grep -q '"redis://default:%s@' "$src/daemon/pool/lease.c" || fail "lease.c no longer sends redis://default:"
if grep -rn 'redis://:' "$src/README.md" "$src/proto/PROTOCOL.md" "$src/man" "$src/bindings" --include='*.md' \
    --include='*.[18]' --include='*.py' --include='*.go' --include='*.js' --include='*.ts' > "$T/rd"; then
    fail "docs show redis://:PASS@, not redis://default:PASS@: $(cat "$T/rd")"
fi

meson install -C "$build" --no-rebuild --quiet --destdir "$T/dest" > "$T/install.log" 2>&1 ||
    fail "meson install: $(tail -5 "$T/install.log")"
for f in dbleased.conf.example PROTOCOL.md; do
    found=$(find "$T/dest" -path "*/share/doc/dblease/$f" | head -1)
    [ -n "$found" ] || fail "meson install put no $f in share/doc/dblease"
done
[ "$fails" = 0 ] && echo "1 passed, 0 failed" || { echo "0 passed, $fails failed"; exit 1; }
