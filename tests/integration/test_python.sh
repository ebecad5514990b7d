#!/usr/bin/env bash
# The Python package (bindings/python) against a real daemon: installed with
# pip into a fresh venv, offline, as the README says; then its own tests and
# examples/python with `pytest -n 4` (every test inserts the same unique
# email, so it passes only if each test got its own database).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Debian's interpreter: its pytest, xdist, psycopg2 and redis come from apt.
PY=${DBLEASE_PYTHON:-/usr/bin/python3}
for mod in pytest xdist psycopg2 redis venv; do
    "$PY" -c "import $mod" 2>/dev/null \
        || { echo "SKIP: $PY lacks $mod (scripts/deps.sh installs python3-pytest-xdist, …)"; exit 77; }
done
export PYTHONDONTWRITEBYTECODE=1

start_daemon "[redis]" "min_ready = 2" "max_total = 16"

# Copies, so that pip and pytest leave nothing in the source tree.
cp -r "$ROOT/bindings/python" "$T/pkg"
cp -r "$ROOT/examples/python" "$T/example"
"$PY" -m venv --system-site-packages "$T/venv"
VPY="$T/venv/bin/python"

pytest_in() { # dir, pytest args…
    (cd "$1" && shift && "$VPY" -m pytest -p no:cacheprovider "$@")
}

# Runs first (functions run in name order): the others need the package.
test_a_pip_install_works_offline() {
    "$T/venv/bin/pip" install -q --no-index --no-build-isolation --no-cache-dir \
        --disable-pip-version-check "$T/pkg" \
        || fail "pip install ./bindings/python failed"
    # Captured, not piped into grep -q: an early grep exit would SIGPIPE the writer.
    where=$("$VPY" -c 'import dblease.pytest_plugin, dblease; print(dblease.__file__)')
    [[ "$where" == "$T/venv/"* ]] || fail "dblease is imported from $where, not the venv"
    help=$(cd "$T" && "$VPY" -m pytest --help)
    grep -q -- --dblease-template <<<"$help" || fail "the pytest11 entry point did not register the plugin"
}

test_package_tests() {
    pytest_in "$T/pkg" -q tests
}

test_example_isolates_each_test_under_xdist() {
    out=$(pytest_in "$T/example" -n 4 -q 2>&1) || { echo "$out"; fail "examples/python failed under -n 4"; }
    echo "$out" | tail -n 3
    n=$(grep -oE '^[0-9]+ passed' <<<"$out" | cut -d' ' -f1)
    [ "${n:-0}" -ge 8 ] || fail "only ${n:-0} example tests passed; expected >= 8"
    # The migration ran once: one client template in the daemon.
    "$DBLEASE" status --json | jq -e '[.templates[] | select(.name == "example_users")] | length == 1' >/dev/null \
        || fail "template example_users missing or built twice"
}

run_tests
