#!/usr/bin/env bash
# The Node package (bindings/node) against a real daemon: its own tests with
# node's test runner, then the Vitest example app (examples/node), whose test
# files run in parallel, each with its own database and Redis.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
source "$HERE/lib.sh"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "SKIP: node and npm are required (scripts/deps.sh installs them)"
    exit 77
fi
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' \
    || { echo "FAIL: Node >= 18 is required, this is $(node --version)"; exit 1; }

start_daemon "max_databases = 40" "[redis]" "min_ready = 2" "max_total = 16"

test_binding() {
    example_ready || true # pg for pg.test.mjs; without it that file skips
    # Our own copy of the state dir for worker leases, not the user's.
    TMPDIR="$T" node --test "$ROOT"/bindings/node/test/*.test.mjs
}

# The example's dependencies come from the npm registry (npm ci, pinned by
# its package-lock.json); the dblease package itself is a copy of
# bindings/node (install-links), refreshed when the source changed.
example_ready() { # [DIR under examples/]
    local ex="$ROOT/examples/${1:-node}"
    if [ ! -x "$ex/node_modules/.bin/vitest" ] ||
        ! diff -rq --exclude=test "$ROOT/bindings/node" "$ex/node_modules/dblease" >/dev/null 2>&1; then
        (cd "$ex" && npm ci --no-audit --no-fund --prefer-offline >/dev/null) || return 1
    fi
}

vitest_run() { # extra env…
    (cd "$ROOT/examples/node" && env TMPDIR="$T" "$@" npx vitest run --reporter=dot)
}

test_vitest_example_in_parallel() {
    if ! example_ready; then
        skip "npm ci in examples/node failed (no registry and no cache?)"
        return 0
    fi
    # With pool.end() instead of endPool in test/helpers.js (EXAMPLE_NAIVE_END=1)
    # this run failed 5 of 5 times with 57P01 at release (issue 15, item 4).
    vitest_run DBLEASE_REDIS=1 || fail "vitest run failed"
    # Every file's leases are back.
    [ "$(rpc '{"op":"status"}' | jq '.leases | length')" = 0 ] || fail "leases left after vitest"
}

granted() { rpc '{"op":"status"}' | jq '.counters.leases_granted'; }

test_vitest_worker_scope() {
    example_ready || { skip "examples/node has no node_modules"; return 0; }
    local before
    before=$(granted)
    vitest_run DBLEASE_REDIS=1 DBLEASE_SCOPE=worker || fail "vitest (worker scope) failed"
    # 8 files on at most 4 workers: at most 4 postgres + 4 redis leases.
    [ $(( $(granted) - before )) -le 8 ] || fail "worker scope leased $(( $(granted) - before )) databases for 4 workers"
    [ "$(rpc '{"op":"status"}' | jq '.leases | length')" = 0 ] || fail "worker leases left after the global teardown"
}

# Jest (issue 15): the same kind of suite through dblease/jest, CommonJS,
# 6 files on 4 workers, each creating the same unique user in its own
# database, cloned from a template its globalSetup migrates.
test_jest_example_in_parallel() {
    if ! example_ready node-jest; then
        skip "npm ci in examples/node-jest failed (no registry and no cache?)"
        return 0
    fi
    local before
    before=$(granted)
    (cd "$ROOT/examples/node-jest" && TMPDIR="$T" npx jest --ci --silent) || fail "jest run failed"
    [ $(( $(granted) - before )) -ge 6 ] || fail "jest leased $(( $(granted) - before )) databases for 6 files"
    [ "$(rpc '{"op":"status"}' | jq '.leases | length')" = 0 ] || fail "leases left after jest"
}

run_tests
