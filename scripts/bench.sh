#!/usr/bin/env bash
# Latchkey's benchmark (docs/benchmarks.md): builds in release mode (profile-guided, as the
# container image is), starts Latchkey pinned to one core on the embedded default (fresh SQLite
# file, in-process state), drives it from the other core with latchkey-bench through every
# scenario, samples the server's RSS and start-up time, and repeats on PostgreSQL + Redis when
# both URLs are given. Prints the results side by side and keeps every report (JSON lines,
# tables, server logs) in the output directory.
#
#   scripts/bench.sh [--duration 15s] [--concurrency 32] [--users 200] [--quick]
#
# Environment:
#   LATCHKEY_BENCH_DATABASE_URL  postgres://… to repeat the run on PostgreSQL (a fresh schema)
#   LATCHKEY_BENCH_REDIS_URL     redis://… to go with it (keys under a fresh prefix)
#   LATCHKEY_BENCH_PORT          port Latchkey listens on (default 8091)
#   LATCHKEY_BENCH_OUT           output directory (default target/bench/<date>)
#   LATCHKEY_BENCH_SERVER_CPU / LATCHKEY_BENCH_GENERATOR_CPU   cores to pin to (default 0 / 1)
#   LATCHKEY_BENCH_NICE          run server and generator at this niceness (e.g. -10, as root) so
#                                other work on a shared machine cannot take their cores
#   LATCHKEY_BENCH_MEMORY_STORE_MAX_ENTRIES   the in-process store's cap (default 2,000,000; below)
#   LATCHKEY_BENCH_PGO           0: measure the plain release build instead of the profile-guided
#                                one the container image ships (scripts/pgo-build.sh)
#
# Redis round trips are read from INFO commandstats and database writes from PostgreSQL's
# pg_stat_user_tables, both as deltas around a login run: give the benchmark a Redis of its own
# for exact counts (other clients' commands count too). The CPU time of local postgres and
# redis-server processes is read from /proc around each run (again, other clients' work counts).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=15s concurrency=32 users=200 warmup=3s quick=false
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --quick) quick=true; duration=3s; warmup=1s; shift ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

port=${LATCHKEY_BENCH_PORT:-8091}
issuer="http://localhost:$port"
server_cpu=${LATCHKEY_BENCH_SERVER_CPU:-0}
generator_cpu=${LATCHKEY_BENCH_GENERATOR_CPU:-1}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
target_dir=${CARGO_TARGET_DIR:-target}
out=${LATCHKEY_BENCH_OUT:-$target_dir/bench/$stamp}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The figures depend on the build: the release profile (fat LTO) measured 17-24 % less server
# CPU per flow than release without LTO (docs/benchmarks.md), so overrides are recorded.
# The container image ships a build with profile-guided optimisation (scripts/pgo-build.sh), so
# that is what is measured unless LATCHKEY_BENCH_PGO=0 asks for the plain release build.
overrides=$(env | grep -E '^CARGO_(PROFILE_RELEASE_|ENCODED_RUSTFLAGS|BUILD_RUSTFLAGS)|^RUSTFLAGS' | sort | tr '\n' ' ' || true)
build="${overrides:-release profile as in Cargo.toml}"
if [[ ${LATCHKEY_BENCH_PGO:-1} == 1 ]]; then
  build="$build; profile-guided (scripts/pgo-build.sh)"
  echo "== building ($build)" >&2
  latchkey=$(scripts/pgo-build.sh)
else
  build="$build; no profile-guided optimisation"
  echo "== building ($build)" >&2
  cargo build --release --quiet -p latchkey -p latchkey-bench
  latchkey=$target_dir/release/latchkey
fi
echo "$build" >"$out/build.txt"
generator=$target_dir/release/latchkey-bench
"$generator" --print-clients-file >"$out/clients.yaml"

pin() { # pin CORE: the command prefix that pins to CORE (none on a one-core machine)
  if command -v taskset >/dev/null && (($(nproc) > 1)); then echo "taskset -c $1"; fi
  if [[ -n ${LATCHKEY_BENCH_NICE:-} ]]; then echo "nice -n $LATCHKEY_BENCH_NICE"; fi
}

# The machine, so that runs on different machines can be compared: machines of one kind differ
# by a third from one to the next (docs/benchmarks.md). Its CPU, and OpenSSL's speed on the
# server's core at the operations a login's cryptography is made of, when openssl is installed.
{
  # A guest may name its CPU only "AMD EPYC": family and model tell its generation apart.
  generation=$(awk -F': *' '/^cpu family/ {f = $2} /^model\t/ {m = $2} END {if (f != "") print ", family " f " model " m}' /proc/cpuinfo 2>/dev/null || true)
  echo "cpu: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)$generation, $(nproc) CPUs, kernel $(uname -r)"
  if command -v openssl >/dev/null; then
    # shellcheck disable=SC2046 # the prefix is meant to split
    $(pin "$server_cpu") openssl speed -seconds 2 ecdsap256 rsa2048 2>/dev/null | awk '
      /^rsa 2048 bits/ { rsa = sprintf("RSA-2048 sign %.0f µs", 1e6 / $(NF - 1)) }
      /nistp256/ { p256 = sprintf("P-256 sign %.1f µs, verify %.1f µs", 1e6 / $(NF - 1), 1e6 / $NF) }
      END { if (p256 && rsa) print "openssl speed on the server core: " p256 "; " rsa }'
  fi
  # How much slower the same computation runs when the core does something else between two
  # runs of it, as it does between requests at partial load: on some machines a third or more,
  # which is why a flow costs more CPU at 50-70 % of the full rate (docs/benchmarks.md).
  # shellcheck disable=SC2046 # the prefix is meant to split
  $(pin "$server_cpu") python3 - <<'PY'
import hashlib, os, time
data = os.urandom(16384)
def median_op_us(pause_s):
    times = []
    for _ in range(3000):
        start = time.perf_counter_ns()
        hashlib.sha256(data).digest()
        times.append(time.perf_counter_ns() - start)
        if pause_s:
            time.sleep(pause_s)
    return sorted(times)[len(times) // 2] / 1000
hot, paused = median_op_us(0), median_op_us(0.0003)
print(f"SHA-256 of 16 KiB on the server core: {hot:.1f} µs back to back, {paused:.1f} µs after a 300 µs sleep (+{paused / hot - 1:.0%})")
PY

} >"$out/machine.txt"

# Every login leaves a session, and a full run opens a few hundred thousand (more on a faster
# machine): above the in-process store's default cap of 100,000 entries, which would then evict
# the codes and ceremonies of sign-ins in progress along with the oldest sessions. The cap is
# raised so that every session is kept and counted (Redis runs ignore it).
memory_store_max_entries=${LATCHKEY_BENCH_MEMORY_STORE_MAX_ENTRIES:-2000000}

server_pid=
start_server() { # start_server BACKEND: Latchkey on the backend's stores, pinned
  # shellcheck disable=SC2046 # the prefix is meant to split; taskset and env exec, so $! is Latchkey
  $(pin "$server_cpu") env LATCHKEY_ISSUER="$issuer" LATCHKEY_LISTEN="127.0.0.1:$port" LATCHKEY_DATABASE_URL="$database_url" \
    ${redis_url:+LATCHKEY_REDIS_URL="$redis_url" LATCHKEY_REDIS_PREFIX="$redis_prefix"} \
    LATCHKEY_CLIENTS_FILE="$out/clients.yaml" LATCHKEY_RATE_LIMITS=off LATCHKEY_MEMORY_STORE_MAX_ENTRIES="$memory_store_max_entries" RUST_LOG=warn \
    "$latchkey" serve >>"$out/$1-server.log" 2>&1 &
  server_pid=$!
}
stop_server() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status"; }
cleanup() { stop_server; [[ -n ${sampler_pid:-} ]] && kill "$sampler_pid" 2>/dev/null || true; }
trap cleanup EXIT

redis_calls() { # total commands Redis has served (INFO/MEMORY/SCAN of this script excluded)
  redis-cli -u "$redis_url" info commandstats |
    awk -F'[:=,]' '/^cmdstat_/ && $1 !~ /cmdstat_(info|memory|scan|config|ping)$/ {s += $3} END {print s + 0}'
}
redis_used_memory() { redis-cli -u "$redis_url" info memory | awk -F: '/^used_memory:/ {print $2 + 0}'; }
pg_table_writes() { # per-table inserted/updated/deleted rows of the bench schema, as JSON
  psql "$pg_url" -tA -c "select coalesce(json_object_agg(relname, json_build_object('ins', n_tup_ins, 'upd', n_tup_upd, 'del', n_tup_del)), '{}') from pg_stat_user_tables where schemaname = '$pg_schema'"
}

# run NAME ARGS…: one generator run on the generator's core; keeps its JSON line and table,
# and the server's RSS before, at peak and after.
run() {
  local name=$1; shift
  local before peak=0 rss
  before=$(rss_kb)
  (
    while kill -0 "$server_pid" 2>/dev/null; do
      rss=$(rss_kb 2>/dev/null || echo 0)
      # Written whole and renamed: killed mid-write, the sampler leaves the last peak intact.
      ((rss > peak)) && peak=$rss && echo "$peak" >"$out/$backend-$name.peak.tmp" && mv "$out/$backend-$name.peak.tmp" "$out/$backend-$name.peak"
      sleep 0.2
    done
  ) &
  sampler_pid=$!
  local status=0 watched=()
  # PostgreSQL and Redis share the machine (when they run on it): their CPU per flow too.
  [[ -n $redis_url ]] && watched=(--watch-process postgres --watch-process redis-server)
  $(pin "$generator_cpu") "$generator" --target "$issuer" --duration "$duration" --warmup "$warmup" \
    --concurrency "$concurrency" --users "$users" "${watched[@]}" "$@" \
    >"$out/$backend-$name.json" 2> >(tee "$out/$backend-$name.txt" >&2) || status=$?
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=
  echo "{\"rss_before_kb\": $before, \"rss_peak_kb\": $(cat "$out/$backend-$name.peak" 2>/dev/null || echo "$before"), \"rss_after_kb\": $(rss_kb), \"loadavg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}" \
    >"$out/$backend-$name.rss.json"
  if ((status != 0)); then echo "bench.sh: $backend $name: the generator reported failures (exit $status)" >&2; failed=true; fi
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

failed=false
bench_backend() { # bench_backend NAME: every measurement on the configured stores
  backend=$1
  echo "== $backend: first start (migrations, keys)" >&2
  start_server "$backend"
  "$generator" --target "$issuer" --wait-ready 60s >/dev/null
  stop_server

  echo "== $backend: start-up with an existing database (5 starts)" >&2
  local times=() t0 t1
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    start_server "$backend"
    "$generator" --target "$issuer" --wait-ready 30s >/dev/null
    t1=$(date +%s%N)
    times+=($(((t1 - t0) / 100000)))
    sleep 1
    idle_rss=$(rss_kb)
    stop_server
  done
  start_server "$backend"
  "$generator" --target "$issuer" --wait-ready 30s >/dev/null
  sleep 2
  idle_rss=$(rss_kb)
  printf '{"startup_tenths_ms": [%s], "idle_rss_kb": %s}\n' "$(IFS=,; echo "${times[*]}")" "$idle_rss" \
    >"$out/$backend-startup.json"

  # The headline run, with store counters around it.
  local redis_before=0 redis_mem_before=0 pg_before='{}'
  if [[ -n $redis_url ]]; then redis_before=$(redis_calls); redis_mem_before=$(redis_used_memory); fi
  if [[ -n $pg_schema ]]; then sleep 11; pg_before=$(pg_table_writes); fi
  echo "== $backend: login ES256 (username step)" >&2
  run login-es256 --scenario login --alg ES256
  if [[ -n $redis_url ]]; then
    local session_key
    session_key=$(redis-cli -u "$redis_url" --scan --pattern "${redis_prefix}session:*" | head -1 || true)
    printf '{"calls": %s, "used_memory": %s, "session_key_bytes": %s}\n' "$(($(redis_calls) - redis_before))" \
      "$(($(redis_used_memory) - redis_mem_before))" "$(redis-cli -u "$redis_url" memory usage "$session_key")" \
      >"$out/$backend-login-es256.redis.json"
  fi
  if [[ -n $pg_schema ]]; then
    sleep 11 # PostgreSQL flushes an idle backend's table statistics within 10 s
    printf '{"before": %s, "after": %s}\n' "$pg_before" "$(pg_table_writes)" >"$out/$backend-login-es256.pg.json"
  fi
  local rate
  rate=$(json "$out/$backend-login-es256.json" "round(d['flows_per_sec'] * 0.7)")
  echo "== $backend: login ES256 at 70 % of that ($rate/s)" >&2
  run login-es256-at70 --scenario login --alg ES256 --rate "$rate"
  echo "== $backend: login ES256, remembered user" >&2
  run login-es256-remembered --scenario login --alg ES256 --login-mode remembered
  echo "== $backend: login RS256" >&2
  run login-rs256 --scenario login --alg RS256
  echo "== $backend: login EdDSA" >&2
  run login-eddsa --scenario login --alg EdDSA
  echo "== $backend: token endpoint (code exchange)" >&2
  run token-es256 --scenario token --alg ES256
  rate=$(json "$out/$backend-token-es256.json" "round(d['flows_per_sec'] * 0.5)")
  echo "== $backend: token endpoint at 50 % of that ($rate/s)" >&2
  run token-es256-at50 --scenario token --alg ES256 --rate "$rate"
  echo "== $backend: refresh" >&2
  run refresh-es256 --scenario refresh --alg ES256
  echo "== $backend: userinfo" >&2
  run userinfo-es256 --scenario userinfo --alg ES256
  echo "== $backend: discovery + JWKS" >&2
  run discovery --scenario discovery
  stop_server
}

backends=()
database_url="sqlite://$out/embedded.db?mode=rwc" redis_url= redis_prefix= pg_url= pg_schema=
bench_backend embedded
backends+=(embedded)

if [[ -n ${LATCHKEY_BENCH_DATABASE_URL:-} && -n ${LATCHKEY_BENCH_REDIS_URL:-} ]]; then
  pg_url=$LATCHKEY_BENCH_DATABASE_URL
  pg_schema="bench_$(echo "$stamp" | tr 'A-Z' 'a-z')"
  psql "$pg_url" -q -c "create schema $pg_schema"
  separator='?'; [[ $pg_url == *\?* ]] && separator='&'
  database_url="$pg_url${separator}options[search_path]=$pg_schema"
  redis_url=$LATCHKEY_BENCH_REDIS_URL
  redis_prefix="latchkey-bench:$stamp:"
  bench_backend postgres-redis
  backends+=(postgres-redis)
  echo "(schema $pg_schema and Redis keys $redis_prefix* are left for inspection)" >&2
else
  echo "notice: LATCHKEY_BENCH_DATABASE_URL / LATCHKEY_BENCH_REDIS_URL not set; PostgreSQL + Redis skipped" >&2
fi

python3 - "$out" "$users" "${backends[@]}" <<'PY' | tee "$out/summary.md"
import json, os, statistics, sys

out, users, backends = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

machine = os.path.join(out, "machine.txt")
if os.path.exists(machine):
    print("".join(f"{line.rstrip()}  \n" for line in open(machine)))

def load(backend, name):
    path = os.path.join(out, f"{backend}-{name}")
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None

def cell(backend, name, fmt):
    d = load(backend, name)
    try:
        return fmt(d) if d is not None else "–"
    except (KeyError, TypeError, ZeroDivisionError, ValueError):
        return "–"

def per_flow_writes(backend):
    pg, report = load(backend, "login-es256.pg.json"), load(backend, "login-es256.json")
    if not pg or not report:
        return "–"
    rows, detail = 0, []
    for table, after in pg["after"].items():
        before = pg["before"].get(table, {"ins": 0, "upd": 0, "del": 0})
        grown = {k: after[k] - before[k] for k in ("ins", "upd", "del")}
        # What the setup's sign-ups wrote: per account a user, a passkey and two audit events
        # (signed up, signed in).
        grown["ins"] -= users * {"users": 1, "passkeys": 1, "audit_events": 2}.get(table, 0)
        total = sum(grown.values())
        if total > 0:
            rows += total
            parts = ", ".join(f"{k} {v / report['server']['flows']:.2f}" for k, v in grown.items() if v)
            detail.append(f"{table}: {parts}")
    return f"{rows / report['server']['flows']:.2f} rows ({'; '.join(detail)})"

def redis_calls(backend):
    r, report = load(backend, "login-es256.redis.json"), load(backend, "login-es256.json")
    if not r or not report:
        return "–"
    return f"{r['calls'] / report['server']['flows']:.1f}"

def redis_session(backend):
    r, report = load(backend, "login-es256.redis.json"), load(backend, "login-es256.json")
    if not r:
        return "–"
    return f"{r['session_key_bytes']} B per session key; {r['used_memory'] / report['server']['flows']:.0f} B used_memory per login"

def rss_per_session(backend):
    rss, report = load(backend, "login-es256.rss.json"), load(backend, "login-es256.json")
    return f"{(rss['rss_after_kb'] - rss['rss_before_kb']) * 1024 / report['server']['flows']:.0f} B"

def store_growth(backend):
    report = load(backend, "login-es256.json")
    bytes_per_login = report and report["server"].get("memory_store_bytes_per_flow")
    return "–" if bytes_per_login is None else f"{bytes_per_login:.0f} B"

def startup(backend):
    s = load(backend, "startup.json")
    return f"{statistics.median(s['startup_tenths_ms']) / 10:.0f} ms (median of {len(s['startup_tenths_ms'])})"

def local_cpu(d):
    local = d["server"]["local_processes_cpu_ms_per_flow"]
    return " / ".join(f"{local[name]:.3f} ms" for name in ("postgres", "redis-server"))

def flows(d):
    return f"{d['flows_per_sec']:,.0f}/s"

def lat(d):
    p = d["latency_ms"]
    return f"p50 {p['p50']:.1f} / p99 {p['p99']:.1f} ms"

rows = [
    ("login ES256 (username step)", "login-es256.json", flows),
    ("  latency", "login-es256.json", lat),
    ("  at 70 % rate: achieved, p99", "login-es256-at70.json", lambda d: f"{d['flows_per_sec']:,.0f}/s, p99 {d['latency_ms']['p99']:.1f} ms"),
    ("  server requests per flow", "login-es256.json", lambda d: f"{d['server']['http_requests_per_flow']:.1f}"),
    ("  server CPU per flow", "login-es256.json", lambda d: f"{d['server']['cpu_ms_per_flow']:.3f} ms"),
    ("  PostgreSQL / Redis CPU per flow (local processes)", "login-es256.json", local_cpu),
    ("  generator CPU", "login-es256.json", lambda d: f"{d['generator_cpu'] * 100:.0f} % of a core"),
    ("login ES256, remembered user", "login-es256-remembered.json", flows),
    ("login RS256", "login-rs256.json", flows),
    ("login EdDSA", "login-eddsa.json", flows),
    ("token endpoint (code exchange)", "token-es256.json", flows),
    ("  server CPU per exchange", "token-es256.json", lambda d: f"{d['server']['cpu_ms_per_flow']:.3f} ms"),
    ("  at 50 % rate: achieved, p99", "token-es256-at50.json", lambda d: f"{d['flows_per_sec']:,.0f}/s, p99 {d['latency_ms']['p99']:.2f} ms"),
    ("  at 50 % rate: the token request alone", "token-es256-at50.json", lambda d: f"p50 {d['steps']['token']['p50']:.2f} / p99 {d['steps']['token']['p99']:.2f} ms"),
    ("refresh", "refresh-es256.json", flows),
    ("userinfo", "userinfo-es256.json", flows),
    ("discovery + JWKS", "discovery.json", lambda d: f"{d['requests_per_sec']:,.0f} req/s"),
    ("  server CPU per request; generator CPU", "discovery.json", lambda d: f"{d['server']['cpu_ms_per_flow']:.3f} ms; {d['generator_cpu'] * 100:.0f} % of a core"),
    ("idle RSS", "startup.json", lambda d: f"{d['idle_rss_kb'] / 1024:.1f} MB"),
    ("peak RSS (all runs)", None, None),
]
print(f"| | {' | '.join(backends)} |")
print(f"|---|{'---|' * len(backends)}")
for label, name, fmt in rows:
    if name is None:
        peaks = []
        for b in backends:
            files = [f for f in os.listdir(out) if f.startswith(b + "-") and f.endswith(".rss.json")]
            peak = max((json.load(open(os.path.join(out, f)))["rss_peak_kb"] for f in files), default=0)
            peaks.append(f"{peak / 1024:.1f} MB")
        print(f"| {label} | {' | '.join(peaks)} |")
        continue
    print(f"| {label} | {' | '.join(cell(b, name, fmt) for b in backends)} |")
print(f"| in-process store growth per login (the session; the redeemed code for 60 s) | {' | '.join(store_growth(b) for b in backends)} |")
print(f"| RSS growth per login (sessions kept) | {' | '.join(cell(b, 'login-es256.json', lambda d, b=b: rss_per_session(b)) for b in backends)} |")
print(f"| start-up to /readyz 200 | {' | '.join(cell(b, 'startup.json', lambda d, b=b: startup(b)) for b in backends)} |")
print(f"| database row writes per login + exchange | {' | '.join(per_flow_writes(b) for b in backends)} |")
print(f"| Redis commands per login + exchange | {' | '.join(redis_calls(b) for b in backends)} |")
print(f"| Redis memory | {' | '.join(redis_session(b) for b in backends)} |")
if len(backends) > 1:
    ratios = []
    for name, label in (("login-es256", "login"), ("login-rs256", "RS256"), ("token-es256", "token")):
        first, other = load(backends[0], f"{name}.json"), load(backends[1], f"{name}.json")
        if first and other:
            ratios.append(f"{label} {other['flows_per_sec'] / first['flows_per_sec'] * 100:.0f} %")
    print(f"| {backends[1]} vs {backends[0]} | – | {', '.join(ratios) or '–'} |")
PY
echo "results: $out" >&2
[[ $failed == false ]]
