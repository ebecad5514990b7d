#!/usr/bin/env bash
# The dblease benchmark (issue #7): warm lease latency, the end-to-end suite
# three ways (dblease, clone-on-demand, server-per-test), pool refill rate
# against the raw clone rate, Redis, and the daemon's own RSS/CPU and cold
# start. Prints a table, writes bench/results/latest.json and (with gnuplot)
# bench/results/latest.png. See BENCHMARKS.md.
#
#   bench/run.sh                 full run (release build in build-rel/, ~3-4 min)
#   bench/run.sh --smoke         tiny sizes, seconds; writes nothing under bench/results
#   bench/run.sh --build-dir D   use the binaries in D instead of building build-rel/
#
# Sizes can be overridden from the environment: SUITE_TESTS (400),
# SUITE_WORKERS (8), SERVER_TESTS (20), LAT_ROUNDS (total samples per point,
# 3000), RAW_CLONES (100), and for the suites on a migrated template (50
# tables, bench/gen_template.sh): MIX_TESTS (200), MIX_WORKERS (4),
# MIX_READY (the template pool's min_ready, 8), PREP_REPS (20), MIX_ROUNDS
# (2: each mix runs dblease and clone-on-demand this many times, in turn,
# the order swapped every round, and the ratio is taken round by round;
# read and ddl also run "alone", each worker on one database it holds and
# every test rolled back: the ceiling a free release would reach).
# PARTS picks sections on a loaded machine (default: all): any of lat
# (warm lease latency and fill), refill, suite, redis, template, server, cold;
# LAT_CLIENTS the latency points ("1 8 64"), MIXES the template suites
# ("mixed read ddl"); BENCH_RAW=FILE keeps the raw result lines.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
build_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) smoke=1 ;;
    --build-dir) build_dir=$2; shift ;;
    *) echo "usage: bench/run.sh [--smoke] [--build-dir DIR]" >&2; exit 2 ;;
    esac
    shift
done

if [ $smoke -eq 1 ]; then
    : "${SUITE_TESTS:=16}" "${SUITE_WORKERS:=2}" "${SERVER_TESTS:=2}" "${LAT_ROUNDS:=64}"
    : "${RAW_CLONES:=4}" "${MIX_TESTS:=20}" "${MIX_WORKERS:=2}" "${MIX_READY:=2}" "${PREP_REPS:=2}"
    clients_list="1 4"
    pg_ready=6; pg_total=12; rd_ready=4; rd_total=8
else
    : "${SUITE_TESTS:=400}" "${SUITE_WORKERS:=8}" "${SERVER_TESTS:=20}" "${LAT_ROUNDS:=3000}"
    : "${RAW_CLONES:=100}" "${MIX_TESTS:=200}" "${MIX_WORKERS:=4}" "${MIX_READY:=8}" "${PREP_REPS:=20}"
    clients_list="${LAT_CLIENTS:-1 8 64}"
    pg_ready=72; pg_total=96; rd_ready=68; rd_total=80
fi

: "${MIX_ROUNDS:=2}" "${PARTS:=all}"
part() { [ "$PARTS" = all ] || [[ " $PARTS " == *" $1 "* ]]; }

if [ -z "$build_dir" ]; then
    build_dir=$root/build-rel
    [ -f "$build_dir/build.ninja" ] || meson setup "$build_dir" "$root" --buildtype=release >/dev/null
    meson compile -C "$build_dir" >/dev/null
fi
daemon=$build_dir/daemon/dbleased
cli=$build_dir/client/dblease
lease_bench=$build_dir/bench/lease_bench
suite_bench=$build_dir/bench/suite_bench
prep_bench=$build_dir/bench/prep_bench
for b in "$daemon" "$cli" "$lease_bench" "$suite_bench" "$prep_bench"; do
    [ -x "$b" ] || { echo "bench: $b is missing; build first" >&2; exit 1; }
done

# Everything lives on tmpfs, as the README recommends for the state dir; the
# initdb cache is kept across runs (it is what every approach starts from).
shm=/dev/shm
[ -d $shm ] && [ -w $shm ] || shm=${TMPDIR:-/tmp}
work=$(mktemp -d "$shm/dblease-bench.XXXXXX")
chmod 755 "$work"
cache=${BENCH_CACHE:-$shm/dblease-bench-cache-$(id -u)}
mkdir -p "$cache"
chmod 755 "$cache"
results=$work/results.ndjson
: >"$results"
run_user=nobody
as_server=()
if [ "$(id -u)" -eq 0 ]; then
    as_server=(setpriv --reuid="$run_user" --regid="$(id -gn $run_user)" --clear-groups)
fi

pids_to_kill=()
daemon_pid=""
cleanup() {
    set +e
    [ -z "${BENCH_RAW:-}" ] || cp "$results" "$BENCH_RAW" # the raw lines, even of a failed run
    for p in "${pids_to_kill[@]}"; do kill -INT "$p" 2>/dev/null; done
    for p in "${pids_to_kill[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    for lock in "$work"/*/st/dbleased.lock; do
        [ -f "$lock" ] && kill "$(cat "$lock")" 2>/dev/null
    done
    for lock in "$work"/*/st/dbleased.lock; do
        [ -f "$lock" ] || continue
        p=$(cat "$lock")
        for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    rm -rf "$work"
}
trap cleanup EXIT

emit() { echo "$1" >>"$results"; }          # one JSON object per line
now_ns() { date +%s%N; }

# Start a daemon in $work/$1 with config $2; sets $sock.
start_daemon() {
    local d=$work/$1
    mkdir -p "$d"
    chmod 755 "$d"
    printf '%s\n' "$2" >"$d/dbleased.conf"
    "$daemon" --config "$d/dbleased.conf" --socket "$d/s" --state-dir "$d/st" >"$d/start.out" 2>&1 ||
        { cat "$d/start.out" "$d/st/dbleased.log" >&2 2>/dev/null; exit 1; }
    sock=$d/s
}
stop_daemon() {
    local p
    p=$(cat "$work/$1/st/dbleased.lock")
    kill "$p"
    for _ in $(seq 400); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
    echo "bench: daemon $p did not stop" >&2
    return 1
}

# The daemon's CPU seconds (user+system) so far, and its RSS in KiB.
clk=$(getconf CLK_TCK)
dcpu() { awk -v t="$clk" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$daemon_pid/stat"; }
drss() { awk '/^VmRSS/ { print $2 }' "/proc/$daemon_pid/status"; }
dhwm() { awk '/^VmHWM/ { print $2 }' "/proc/$daemon_pid/status"; }
phase_start() { ph_cpu=$(dcpu); ph_t=$(now_ns); }
phase_end() {
    local cpu t
    cpu=$(dcpu); t=$(now_ns)
    emit "$(jq -cn --arg p "$1" --argjson c0 "$ph_cpu" --argjson c1 "$cpu" \
        --argjson t0 "$ph_t" --argjson t1 "$t" --argjson rss "$(drss)" \
        '{bench:"daemon", phase:$p, wall_s:(($t1-$t0)/1e9), cpu_s:($c1-$c0),
          cpu_pct:(if $t1>$t0 then 100*($c1-$c0)/(($t1-$t0)/1e9) else 0 end), rss_kb:$rss}')"
}
# Run a bench program; its one JSON line goes to the results, tagged.
bench() {
    local tag=$1 out
    shift
    out=$("$@") || { echo "bench: $* failed" >&2; exit 1; }
    emit "$(jq -c --arg tag "$tag" '. + {tag:$tag}' <<<"$out")"
}

echo "bench: work dir $work; build $build_dir; $(nproc) cores" >&2

# ---- the main daemon -------------------------------------------------------
start_daemon main "[daemon]
cache_dir = $cache
max_databases = $((pg_total + rd_total + 16))
max_clients = 512
log_level = warn
[postgres]
min_ready = $pg_ready
max_total = $pg_total
max_connections = 400
[redis]
min_ready = $rd_ready
max_total = $rd_total"
daemon_pid=$(cat "$work/main/st/dbleased.lock")
# 3a. fill: the daemon returned with one database ready; time until min_ready
echo "bench: postgres pool fill to $pg_ready" >&2
phase_start
bench pg_fill "$lease_bench" fill -s "$sock" -k postgres
phase_end pg_fill
pg_cache=$(ls -d "$cache"/pg[0-9]* | grep -v '\.tmp\.' | head -1)
major=${pg_cache##*/pg}
pg_bin=/usr/lib/postgresql/$major/bin
# The daemon's servers run as its server user (a dedicated one when the
# system has it): ours run as whoever owns the data they copy.
if [ "$(id -u)" -eq 0 ]; then
    run_user=$(stat -c %U "$pg_cache")
    as_server=(setpriv --reuid="$run_user" --regid="$(id -gn "$run_user")" --clear-groups)
fi
[ -x "$pg_bin/postgres" ] || pg_bin=$(pg_config --bindir)

# 1. warm lease latency, PostgreSQL, raw protocol and libdblease
part lat || clients_list=""
for c in $clients_list; do
    for m in raw lib; do
        echo "bench: postgres lease latency, $m, $c clients" >&2
        phase_start
        bench "pg_lat_${m}_$c" "$lease_bench" latency -s "$sock" -k postgres -m "$m" -c "$c" \
            -n $((LAT_ROUNDS / c))
        phase_end "pg_lat_${m}_$c"
    done
done

# 3b. refill: drain the pool, release without clean, time until it is full
if part refill; then
    echo "bench: postgres refill" >&2
    phase_start
    bench pg_refill "$lease_bench" refill -s "$sock" -k postgres
    phase_end pg_refill
fi

# 2a. the suite through dblease
if part suite; then
    echo "bench: suite via dblease ($SUITE_TESTS tests, $SUITE_WORKERS workers)" >&2
    phase_start
    bench suite_dblease "$suite_bench" dblease -s "$sock" -w "$SUITE_WORKERS" -n "$SUITE_TESTS"
    phase_end suite_dblease
fi

# 4. Redis: latency and suite (the pool starts cold: the first lease starts it)
if part redis && command -v redis-server >/dev/null; then
    "$cli" --socket "$sock" lease --kind redis --wait 60000 --ttl 5 >/dev/null
    for c in $clients_list; do
        echo "bench: redis lease latency, raw, $c clients" >&2
        phase_start
        bench "rd_lat_raw_$c" "$lease_bench" latency -s "$sock" -k redis -m raw -c "$c" \
            -n $((LAT_ROUNDS / c))
        phase_end "rd_lat_raw_$c"
    done
    echo "bench: redis refill" >&2
    bench rd_refill "$lease_bench" refill -s "$sock" -k redis
    echo "bench: redis suite via dblease" >&2
    phase_start
    bench rd_suite_dblease "$suite_bench" dblease -k redis -s "$sock" -w "$SUITE_WORKERS" \
        -n "$SUITE_TESTS"
    phase_end rd_suite_dblease
    echo "bench: redis suite, server per test" >&2
    bench rd_suite_server "$suite_bench" server -k redis -b "$(command -v redis-server)" \
        -T "$work" -u "$run_user" -w "$SUITE_WORKERS" -n "$SERVER_TESTS"
fi
daemon_hwm=$(dhwm)
daemon_cpu_total=$(dcpu)
stop_daemon main
daemon_pid=""

# ---- one PostgreSQL server for clone-on-demand and the raw clone rate -----
# Same binaries, flags and tmpfs as the daemon's servers.
cdir=$work/clone
mkdir -p "$cdir/sock"
cp -a "$pg_cache" "$cdir/data"
[ "$(id -u)" -ne 0 ] || chown "$run_user" "$cdir/sock" "$cdir"
cport=$(( 20000 + RANDOM % 20000 ))
"${as_server[@]}" "$pg_bin/postgres" -D "$cdir/data" -k "$cdir/sock" -p "$cport" \
    -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
    -c synchronous_commit=off -c full_page_writes=off -c max_wal_size=1GB \
    -c dynamic_shared_memory_type=mmap -c log_min_messages=warning >"$cdir/server.log" 2>&1 &
pids_to_kill+=($!)
deadline=$((SECONDS + 180)) # a loaded machine starts servers slowly
until "$pg_bin/pg_isready" -q -h "$cdir/sock" -p "$cport"; do
    [ $SECONDS -lt $deadline ] || { echo "bench: the clone server did not start" >&2; cat "$cdir/server.log" >&2; exit 1; }
    sleep 0.1
done
admin="host=$cdir/sock port=$cport user=dblease dbname=postgres"

if part lat || part refill || part suite; then
    echo "bench: raw CREATE DATABASE rate" >&2
    bench rawclone "$suite_bench" rawclone -d "$admin" -n "$RAW_CLONES"
fi
if part suite; then
    echo "bench: suite, clone on demand" >&2
    bench suite_clone "$suite_bench" clone -d "$admin" -H 127.0.0.1 -P "$cport" \
        -w "$SUITE_WORKERS" -n "$SUITE_TESTS"
fi

# ---- a migrated template: preparation, and suites that use its data ---------
# The same SQL twice: as [template.app] of a daemon, and built by hand on the
# clone server (objects owned by a role of their own, as the daemon does) for
# workers that CREATE DATABASE … TEMPLATE and DROP themselves.
if part template; then
"$root/bench/gen_template.sh" "$work/sql"
chmod 755 "$work/sql"
psql "$admin" -XAtq -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE ROLE apptpl_owner NOLOGIN;
CREATE DATABASE apptpl;
GRANT CREATE ON DATABASE apptpl TO apptpl_owner;
SQL
{ echo "GRANT ALL ON SCHEMA public TO apptpl_owner; SET ROLE apptpl_owner;"; cat "$work"/sql/*.sql; } |
    psql "host=$cdir/sock port=$cport user=dblease dbname=apptpl" -XAtq -v ON_ERROR_STOP=1 >/dev/null
psql "$admin" -XAtq -v ON_ERROR_STOP=1 -c "ALTER DATABASE apptpl WITH ALLOW_CONNECTIONS false" >/dev/null
echo "bench: migrated template: bare clone rate and the steps of preparing one database" >&2
bench rawclone_app "$suite_bench" rawclone -d "$admin" -t apptpl -n "$RAW_CLONES"
bench prep_steps "$prep_bench" -d "$admin" -t apptpl -o apptpl_owner -n "$PREP_REPS"

start_daemon app "[daemon]
cache_dir = $cache
max_databases = $((MIX_READY * 2 + 8))
log_level = warn
[postgres]
min_ready = 1
max_total = 4
[template.app]
sql_dir = $work/sql
min_ready = $MIX_READY
max_total = $((MIX_READY * 2))"
daemon_pid=$(cat "$work/app/st/dbleased.lock")
echo "bench: migrated template: pool refill" >&2
"$lease_bench" fill -s "$sock" -t app >/dev/null # the template builds, the pool fills
bench app_refill "$lease_bench" refill -s "$sock" -t app
# Each mix through dblease and by clone-on-demand in turn, MIX_ROUNDS times,
# the order swapped every round (the load drifts), each on a settled pool (a
# refill left running would take the clone run's CPU).
mix_dblease() {
    "$lease_bench" fill -s "$sock" -t app >/dev/null
    bench "mix_${1}_dblease_$2" "$suite_bench" dblease -s "$sock" -t app -x "$1" \
        -w "$MIX_WORKERS" -n "$MIX_TESTS"
}
mix_clone() {
    "$lease_bench" fill -s "$sock" -t app >/dev/null
    bench "mix_${1}_clone_$2" "$suite_bench" clone -d "$admin" -H 127.0.0.1 -P "$cport" -t apptpl \
        -x "$1" -w "$MIX_WORKERS" -n "$MIX_TESTS"
}
# The ceiling: the same tests, each worker on one database it holds all
# along, every test rolled back: what dblease would do if a release cost
# nothing (not for mixed: a rollback does not undo its nextval).
mix_alone() {
    [ "$1" != mixed ] || return 0
    bench "mix_${1}_alone_$2" "$suite_bench" alone -s "$sock" -t app -x "$1" \
        -w "$MIX_WORKERS" -n "$MIX_TESTS"
}
for mix in ${MIXES:-mixed read ddl}; do
    echo "bench: $mix suite on the migrated template, dblease vs clone-on-demand" >&2
    for r in $(seq "$MIX_ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then mix_dblease "$mix" "$r"; mix_clone "$mix" "$r"
        else mix_clone "$mix" "$r"; mix_dblease "$mix" "$r"; fi
        mix_alone "$mix" "$r"
    done
done
"$cli" --socket "$sock" status --json >"$work/app_status.json"
emit "$(jq -c '{bench:"app_releases", pools:[.pools[] | select(.template == "app") |
    {releases, unchecked}]}' "$work/app_status.json" 2>/dev/null || echo '{"bench":"app_releases"}')"
stop_daemon app
daemon_pid=""
fi

kill -INT "${pids_to_kill[0]}"
wait "${pids_to_kill[0]}" || true
pids_to_kill=()

if part server; then
    echo "bench: suite, server per test ($SERVER_TESTS tests)" >&2
    bench suite_server "$suite_bench" server -b "$pg_bin" -C "$pg_cache" -T "$work" \
        -u "$run_user" -w "$SUITE_WORKERS" -n "$SERVER_TESTS"
fi

# 5. cold start to first lease: a fresh state dir, the initdb cache warm
if part cold; then
    echo "bench: cold start" >&2
    t0=$(now_ns)
    start_daemon cold "[daemon]
cache_dir = $cache
log_level = warn"
    "$cli" --socket "$sock" lease --ttl 5 >/dev/null
    t1=$(now_ns)
    stop_daemon cold
    emit "$(jq -cn --argjson s "$(( (t1 - t0) / 1000000 ))" '{bench:"cold_start", ms:$s}')"
fi
emit "$(jq -cn --argjson h "$daemon_hwm" --argjson c "$daemon_cpu_total" \
    '{bench:"daemon_total", rss_peak_kb:$h, cpu_s:$c}')"

# ---- report ----------------------------------------------------------------
json=$work/latest.json
jq -s --argjson smoke "$smoke" --argjson server_tests "$SERVER_TESTS" --argjson suite_tests "$SUITE_TESTS" \
    --arg host "$(uname -n)" --argjson cores "$(nproc)" --arg pgbin "$pg_bin" '
  def tag($t): map(select(.tag == $t)) | first;
  # A smoke run may measure too little for a rate: no ratio then, not a crash.
  def ratio($a; $b): if ($a == null or $b == null or $b == 0) then null else $a / $b end;
  (tag("suite_dblease").wall_s) as $d |
  (tag("suite_clone").wall_s) as $c |
  (tag("suite_server").wall_s | if . == null then null else . * $suite_tests / $server_tests end) as $s |
  (tag("pg_refill")) as $refill |
  (tag("pg_fill")) as $fill |
  (map(select(.bench=="rawclone")) | first) as $raw |
  (tag("pg_lat_raw_64") // tag("pg_lat_raw_4") // {lease_release: {p50_us: 1e9, p99_us: 1e9}}) as $l64 |
  # Rounds ran dblease and clone-on-demand in turn: the ratio is taken per
  # round, and the mean of those is the one reported.
  def mean: if length == 0 then null else add / length end;
  def rounds($m; $a): [.[] | select(.tag != null and (.tag | startswith("mix_\($m)_\($a)_")))
                             | {r: (.tag | split("_") | last), v: .tests_per_s}];
  def mixr($m): rounds($m; "dblease") as $d | rounds($m; "clone") as $c |
    rounds($m; "alone") as $a |
    [$d[] as $x | $c[] | select(.r == $x.r) | ratio($x.v; .v)] as $rs |
    [$a[] as $x | $c[] | select(.r == $x.r) | ratio($x.v; .v)] as $cs |
    {dblease_tests_per_s: ($d | map(.v) | mean), clone_tests_per_s: ($c | map(.v) | mean),
     ratios: $rs, ratio: ($rs | map(select(. != null)) | mean),
     ceiling_tests_per_s: ($a | map(.v) | mean),
     ceiling_ratio: ($cs | map(select(. != null)) | mean)};
  {
    smoke: ($smoke == 1), cores: $cores, postgres_bin: $pgbin,
    date: (now | todate),
    results: .,
    summary: {
      suite_wall_s: {dblease: $d, clone_on_demand: $c, server_per_test_scaled: $s},
      suite_speedup: {vs_clone: ratio($c; $d), vs_server: ratio($s; $d)},
      fill_per_s: $fill.per_s, raw_clone_per_s: $raw.create_per_s,
      fill_vs_raw: ratio($raw.create_per_s; $fill.per_s),
      refill_per_s: $refill.per_s, raw_clone_drop_per_s: $raw.create_drop_per_s,
      refill_vs_raw: ratio($raw.create_drop_per_s; $refill.per_s),
      migrated_template: {
        prep_steps_ms: (tag("prep_steps") | {bare, reassign, member}),
        raw_clone_per_s: tag("rawclone_app").create_per_s,
        raw_clone_drop_per_s: tag("rawclone_app").create_drop_per_s,
        refill_per_s: tag("app_refill").per_s,
        suites: {mixed: mixr("mixed"), read: mixr("read"), ddl: mixr("ddl")}
      },
      targets: {
        lease_p50_le_100us_at_64: ($l64.lease_release.p50_us <= 100),
        lease_p99_le_1ms_at_64: ($l64.lease_release.p99_us <= 1000),
        suite_5x_clone: ((ratio($c; $d) // 0) >= 5),
        suite_50x_server: ((ratio($s; $d) // 0) >= 50),
        fill_within_1_5x_raw_clone: ((ratio($raw.create_per_s; $fill.per_s) // 99) <= 1.5),
        refill_within_1_5x_raw_clone_drop: ((ratio($raw.create_drop_per_s; $refill.per_s) // 99) <= 1.5)
      }
    }
  }' "$results" >"$json"

jq -r --argjson server_tests "$SERVER_TESTS" '
  def us: if . == null then "-" elif . >= 1000 then "\(. / 1000 * 100 | round / 100) ms" else "\(. | round) us" end;
  def r1: if . == null then "-" else (. * 10 | round / 10) end;
  def r2: if . == null then "-" else (. * 100 | round / 100) end;
  "warm lease+release round trip (all samples, all clients)",
  "  kind      mode  clients     p50       p99     p99.9   leases/s  daemon CPU",
  (.results as $r | $r[] | select(.bench == "lease_latency") | . as $x |
     ($r[] | select(.bench=="daemon" and .phase==$x.tag)) as $dm |
     "  \(.kind|.+"        "|.[0:8])  \(.mode)  \(.clients|tostring|("     "+.)[-7:])  \(.lease_release.p50_us|us|("         "+.)[-9:]) \(.lease_release.p99_us|us|("         "+.)[-9:]) \(.lease_release.p999_us|us|("         "+.)[-9:])  \(.round_trips_per_s|tostring|("        "+.)[-9:])  \($dm.cpu_pct|round)%"),
  "",
  "suite (each test: fresh database, CREATE TABLE, INSERT, SELECT, return)",
  "  kind      approach                 tests  workers   wall      per test (mean)",
  (.results[] | select(.bench == "suite" and (.mix // "items") == "items") |
     "  \(.kind|.+"        "|.[0:8])  \(.approach|.+"                       "|.[0:23]) \(.tests|tostring|("     "+.)[-5:])  \(.workers|tostring|("       "+.)[-7:])  \(.wall_s*100|round/100)s   \(.test_ms.mean*100|round/100) ms"),
  "  server-per-test scaled to the suite size: \(.summary.suite_wall_s.server_per_test_scaled|r1)s (\(.results|map(select(.tag=="suite_server"))|first|.tests) tests run, wall time × \(.results|map(select(.tag=="suite_dblease"))|first|.tests)/\(.results|map(select(.tag=="suite_server"))|first|.tests))",
  "  dblease is \(.summary.suite_speedup.vs_clone|r1)× faster than clone-on-demand, \(.summary.suite_speedup.vs_server|r1)× faster than server-per-test",
  "",
  "pool fill (clone + role + grants): \(.summary.fill_per_s) databases/s; raw CREATE DATABASE … TEMPLATE, one session: \(.summary.raw_clone_per_s)/s; raw is \(.summary.fill_vs_raw|r2)× faster",
  "pool refill (drop + clone): \(.summary.refill_per_s) databases/s; raw CREATE + DROP: \(.summary.raw_clone_drop_per_s)/s; raw is \(.summary.refill_vs_raw|r2)× faster",
  (.results[] | select(.tag=="rd_refill") | "redis refill (flush + new password): \(.per_s) instances/s"),
  "",
  (.summary.migrated_template as $m |
   "migrated template (50 tables, 30 FKs, 80 indexes, 10k seed rows)",
   "  preparing one database, one session, median ms: bare clone \($m.prep_steps_ms.bare.total_ms); before issue 12 \($m.prep_steps_ms.reassign.total_ms) (clone \($m.prep_steps_ms.reassign.clone_ms), session \($m.prep_steps_ms.reassign.connect_ms), REASSIGN+DROP OWNED \($m.prep_steps_ms.reassign.take_over_ms)); now \($m.prep_steps_ms.member.total_ms) (clone \($m.prep_steps_ms.member.clone_ms))",
   "  pool refill (drop + clone) \($m.refill_per_s)/s; raw clone \($m.raw_clone_per_s)/s, raw clone + drop \($m.raw_clone_drop_per_s)/s (one session)",
   "  suite          dblease tests/s   clone-on-demand tests/s   ratio",
   ($m.suites | to_entries[] | "  \(.key|.+"             "|.[0:13])  \(.value.dblease_tests_per_s|r1|tostring|("               "+.)[-15:])   \(.value.clone_tests_per_s|r1|tostring|("                       "+.)[-23:])   \(.value.ratio|r2) (rounds: \(.value.ratios|map(r2|tostring)|join(", ")))\(if .value.ceiling_tests_per_s then "; ceiling \(.value.ceiling_ratio|r2) (\(.value.ceiling_tests_per_s|r1) tests/s with releases free)" else "" end)")),
  "daemon: peak RSS \(.results|map(select(.bench=="daemon_total"))|first|(.rss_peak_kb // 0)/1024*10|round/10) MiB, CPU \(.results|map(select(.bench=="daemon_total"))|first|.cpu_s) s in all; cold start to first lease \(.results|map(select(.bench=="cold_start"))|first|.ms) ms",
  "",
  "targets: " + (.summary.targets | to_entries | map("\(.key)=\(if .value then "met" else "MISSED" end)") | join(", "))
' "$json"

# Plot: latency percentiles per point, and suite wall time per approach.
plot() {
    local png=$1
    command -v gnuplot >/dev/null || { echo "bench: no gnuplot; skipping the plot" >&2; return 0; }
    jq -r '.results[] | select(.bench=="lease_latency") |
        "\(.kind)/\(.mode)/\(.clients) \(.lease_release.p50_us) \(.lease_release.p99_us) \(.lease_release.p999_us)"' \
        "$json" >"$work/lat.dat"
    jq -r '.summary.suite_wall_s | "dblease \(.dblease)\nclone-on-demand \(.clone_on_demand)\nserver-per-test \(.server_per_test_scaled)"' \
        "$json" >"$work/suite.dat"
    # A partial run (PARTS) may have nothing to draw: no plot, no failure.
    gnuplot <<EOF || echo "bench: nothing to plot" >&2
set terminal pngcairo size 1400,560 font ",10" noenhanced
set output "$png"
set multiplot layout 1,2
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set grid ytics
set xtics rotate by -35
set title "warm lease+release round trip (kind/mode/clients)"
set ylabel "microseconds (log)"
plot "$work/lat.dat" using 2:xtic(1) title "p50", "" using 3 title "p99", "" using 4 title "p99.9"
set title "suite wall time, $SUITE_TESTS tests x $SUITE_WORKERS workers (server-per-test scaled)"
set ylabel "seconds (log)"
unset xtics
set xtics
plot "$work/suite.dat" using 2:xtic(1) title "wall time" lc rgb "#4477aa"
unset multiplot
EOF
}

if [ $smoke -eq 1 ]; then
    plot "$work/latest.png"
    echo "bench: smoke run done (nothing judged, nothing kept)" >&2
else
    mkdir -p "$root/bench/results"
    cp "$json" "$root/bench/results/latest.json"
    plot "$root/bench/results/latest.png"
    echo "bench: wrote bench/results/latest.json$(command -v gnuplot >/dev/null && echo ' and latest.png')" >&2
fi
