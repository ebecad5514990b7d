#!/usr/bin/env bash
# The Go module (bindings/go) against a real daemon: its own tests, then
# examples/go with `go test -parallel 4` (every test inserts the same unique
# email, so it passes only if each test got its own database). Offline: no
# module proxy; lib/pq for the example comes from Debian through a replace.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v go >/dev/null || { echo "SKIP: no go (scripts/deps.sh installs golang-go)"; exit 77; }
[ -f /usr/share/gocode/src/github.com/lib/pq/go.mod ] \
    || { echo "SKIP: no lib/pq (scripts/deps.sh installs golang-github-lib-pq-dev)"; exit 77; }
export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
# go needs a build cache and a GOPATH, by default under $HOME.
if [ -z "${HOME:-}" ]; then export GOCACHE="$CACHE/go-build" GOPATH="$T/gopath"; fi
# Copies with the same layout (the example's replace is ../../bindings/go),
# so that go leaves nothing in the source tree.
mkdir -p "$T/src/bindings" "$T/src/examples"
cp -r "$ROOT/bindings/go" "$T/src/bindings/go"
cp -r "$ROOT/examples/go" "$T/src/examples/go"

start_daemon "[redis]" "min_ready = 2" "max_total = 16"

go_test_in() { # dir, go test args…
    (cd "$1" && shift && go test -count=1 "$@" ./...)
}

test_module_tests() {
    out=$(go_test_in "$T/src/bindings/go" -race -v 2>&1) || { echo "$out"; fail "bindings/go tests failed"; }
    ! grep -- "--- SKIP" <<<"$out" || fail "tests skipped with a daemon running"
    grep -c -- "--- PASS" <<<"$out"
}

test_example_isolates_parallel_tests() {
    out=$(go_test_in "$T/src/examples/go" -v -parallel 4 2>&1) || { echo "$out"; fail "examples/go failed"; }
    n=$(grep -c -- "--- PASS: TestSignupThenCachedLookup/" <<<"$out" || true)
    [ "$n" -ge 8 ] || fail "only $n parallel example tests passed; expected >= 8"
    "$DBLEASE" status --json | jq -e '[.templates[] | select(.name == "example_users_go")] | length == 1' >/dev/null \
        || fail "template example_users_go missing or built twice"
}

run_tests
