#!/usr/bin/env bash
# Instructions per login: a cost figure that repeats, for comparing small changes
# (docs/benchmarks.md). Runs Latchkey (release build, on a fresh SQLite file, or on PostgreSQL
# + Redis when their URLs are given) under valgrind's callgrind, drives complete logins + code exchanges at it with latchkey-bench,
# counts the user-space instructions the server executes over a known number of sign-ins, and
# prints instructions per login + exchange and the functions that cost most. With
# `--scenario discovery` it counts per discovery or JWKS request instead (the cost of the
# HTTP stack and middleware every request pays). Besides the costliest functions it prints the
# instructions by component (the P-256 check, SQLite, HTTP, JSON, cookies, the allocator, …).
#
# With `--syscalls` it counts system calls instead, under `strace -c -f` attached for the
# counted window (every thread of the server: tokio's, and SQLite's on the embedded default):
# the kernel's share of a login (a fifth to a quarter of the server's CPU) that instructions
# leave out. strace slows the server down, so fewer requests share a wake-up or a group commit
# than at full speed; like the instructions, the count is for comparing builds, not a figure of
# the server at speed.
#
# Throughput on a shared two-core VM varies by 10 % between identical runs; this figure varies
# by well under 1 %, whatever else the machine does. It leaves out what the kernel does and
# time spent waiting (system calls, task switches, I/O), and it weighs every instruction the
# same, so check a change that moves those with scripts/bench.sh.
#
#   scripts/instructions.sh [--duration 60s] [--scenario login|discovery] [--syscalls] [-- latchkey-bench options, e.g. --alg RS256]
#
# Environment:
#   LATCHKEY_BENCH_DATABASE_URL, LATCHKEY_BENCH_REDIS_URL   both set: count on PostgreSQL (a
#                         fresh schema, dropped afterwards) and Redis (a fresh key prefix)
#                         instead of the embedded default
#   LATCHKEY_BENCH_PORT   port Latchkey listens on (default 8092)
#   LATCHKEY_BENCH_OUT    output directory (default target/instructions/<date>)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=60s
scenario=login
tool=valgrind
while (($#)); do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --scenario) scenario=$2; shift 2 ;;
    --syscalls) tool=strace; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set /{/^#/p}' "$0"; exit 0 ;;
    *) echo "instructions.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
command -v "$tool" >/dev/null || { echo "instructions.sh: needs $tool (apt-get install -y $tool)" >&2; exit 2; }

port=${LATCHKEY_BENCH_PORT:-8092}
issuer="http://localhost:$port"
target_dir=${CARGO_TARGET_DIR:-target}
stamp=$(date -u +%Y%m%dt%H%M%Sz)
out=${LATCHKEY_BENCH_OUT:-$target_dir/instructions/$stamp}
mkdir -p "$out"
out=$(cd "$out" && pwd)

stores=(LATCHKEY_DATABASE_URL="sqlite://$out/latchkey.db?mode=rwc")
pg_schema=
if [[ -n ${LATCHKEY_BENCH_DATABASE_URL:-} && -n ${LATCHKEY_BENCH_REDIS_URL:-} ]]; then
  pg_schema="instructions_$stamp"
  psql "$LATCHKEY_BENCH_DATABASE_URL" -q -c "create schema $pg_schema"
  separator='?'; [[ $LATCHKEY_BENCH_DATABASE_URL == *\?* ]] && separator='&'
  stores=(LATCHKEY_DATABASE_URL="$LATCHKEY_BENCH_DATABASE_URL${separator}options[search_path]=$pg_schema"
    LATCHKEY_REDIS_URL="$LATCHKEY_BENCH_REDIS_URL" LATCHKEY_REDIS_PREFIX="latchkey-instructions:$stamp:")
fi

echo "== building (release)" >&2
cargo build --release --quiet -p latchkey -p latchkey-bench
"$target_dir/release/latchkey-bench" --print-clients-file >"$out/clients.yaml"

under=() # what the server runs under: callgrind from the start, or nothing (strace attaches later)
[[ $tool == valgrind ]] && under=(valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out")
env LATCHKEY_ISSUER="$issuer" LATCHKEY_LISTEN="127.0.0.1:$port" "${stores[@]}" \
  LATCHKEY_CLIENTS_FILE="$out/clients.yaml" LATCHKEY_RATE_LIMITS=off RUST_LOG=warn \
  "${under[@]}" "$target_dir/release/latchkey" serve >"$out/server.log" 2>&1 &
server_pid=$!
strace_pid=
cleanup() {
  [[ -n $strace_pid ]] && kill -INT "$strace_pid" 2>/dev/null
  kill "$server_pid" 2>/dev/null || true
  if [[ -n $pg_schema ]]; then
    psql "$LATCHKEY_BENCH_DATABASE_URL" -q -c "set client_min_messages = warning; drop schema $pg_schema cascade"
    redis-cli -u "$LATCHKEY_BENCH_REDIS_URL" --scan --pattern "latchkey-instructions:$stamp:*" |
      xargs -r redis-cli -u "$LATCHKEY_BENCH_REDIS_URL" del >/dev/null
  fi
}
trap cleanup EXIT

case $scenario in # what is counted, from /metrics: the lines to sum, and their name
  login) counted_lines='/^latchkey_signins_total/ && /success/' unit='logins + exchanges' ;;
  discovery) counted_lines='/^latchkey_http_requests_total/ && /openid-configuration|jwks/' unit='requests' ;;
  *) echo "instructions.sh: --scenario is login or discovery" >&2; exit 2 ;;
esac
counted() { # the units so far (successful sign-ins, or discovery and JWKS requests)
  curl -sf "$issuer/metrics" | awk "$counted_lines"' {s += $2} END {print s + 0}'
}
wait_until() { # wait_until SECONDS COMMAND…: retries COMMAND every half second
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || { echo "instructions.sh: timed out waiting for: $*" >&2; exit 1; }
    sleep 0.5
  done
}
counted_some() { (($(counted) >= 20)); }

echo "== starting (under $tool: slow)" >&2
wait_until 180 curl -sf -o /dev/null "$issuer/readyz"
# A few virtual users keep the server busy without piling up latency under valgrind; the
# warm-up covers the sign-ups and the first sign-ins, which the count below leaves out.
"$target_dir/release/latchkey-bench" --target "$issuer" --scenario "$scenario" --concurrency 4 --users 8 \
  --warmup 20s --duration "$duration" "$@" >"$out/generator.json" 2>"$out/generator.txt" &
generator_pid=$!
wait_until 180 counted_some
if [[ $tool == valgrind ]]; then
  first=$(counted)
  callgrind_control --zero "$server_pid" >/dev/null
else
  strace -c -f -p "$server_pid" -o "$out/strace.txt" 2>/dev/null &
  strace_pid=$!
  sleep 0.5 # attached by then; the window starts here
  first=$(counted)
fi
echo "== counting for $duration" >&2
generator_status=0
wait "$generator_pid" || generator_status=$?
last=$(counted)
if [[ $tool == valgrind ]]; then
  callgrind_control --dump "$server_pid" >/dev/null
else
  kill -INT "$strace_pid"
  wait "$strace_pid" || true
  strace_pid=
fi
kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
if ((generator_status != 0)); then
  echo "instructions.sh: latchkey-bench failed; see $out/generator.txt" >&2
  exit 1
fi

if [[ $tool == valgrind ]]; then
  python3 - "$out/callgrind.out.1" $((last - first)) "$unit" <<'PY' | tee "$out/summary.txt"
import collections, re, sys

# Exclusive cost per function from callgrind's format: a cost line belongs to the current
# fn= unless it follows a calls= line (then it is the callee's inclusive cost).
path, units, unit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
names, own, total = {}, collections.Counter(), 0
function, callee_cost_next = None, False

def resolve(spec):
    match = re.match(r"\((\d+)\)(?: (.*))?", spec)
    if not match:
        return spec
    if match.group(2):
        names[match.group(1)] = match.group(2)
    return names.get(match.group(1), spec)

for line in open(path, errors="replace"):
    if line.startswith("fn="):
        function = resolve(line[3:].strip())
    elif line.startswith("cfn="):
        resolve(line[4:].strip())
    elif line.startswith("calls="):
        callee_cost_next = True
    elif line[:1].isdigit() or line[:1] in "+-*":
        fields = line.split()
        if len(fields) < 2:
            continue
        if callee_cost_next:
            callee_cost_next = False
            continue
        own[function] += int(fields[1])
        total += int(fields[1])

print(f"{units} {unit} counted; {total / units / 1e6:.3f} M instructions each (user space)")
print("functions by their own instructions:")
for function, cost in own.most_common(25):
    print(f"  {cost / total * 100:5.1f} %  {cost / units / 1e3:8.1f} k each  {function[:110]}")

# Components, by the first pattern a function's name matches (Latchkey's own functions first,
# generic code instantiated for its types by the library's). SHA-256 under valgrind runs
# sha2's portable code (valgrind hides the SHA extensions), several times slower than at speed.
COMPONENTS = [
    ("Latchkey's own code", r"^latchkey::"),
    ("P-256 check (webauthn-rs: p256, crypto-bigint)", r"p256::|primeorder::|crypto_bigint::|elliptic_curve::|ecdsa::"),
    ("AWS-LC (token signatures, its hashes)", r"aws_lc|ecp_nistz256|bignum|BN_|ECDSA|RSA|sha(256|512)_block"),
    ("HMAC-SHA-256 (sha2, hmac)", r"sha2::|hmac::|digest::"),
    ("SQLite", r"sqlite3|^wal[A-Z]|pcache|[pP]ager|[bB]tree|getPage|memjrnl|[vV]dbe|yy_"),
    ("sqlx, sea-orm, sea-query", r"sqlx|sea_orm|sea_query"),
    ("JSON (serde)", r"serde"),
    ("HTTP (hyper, http, axum, tower)", r"hyper|(?<!latchkey::)http::|axum|tower|httparse"),
    ("cookies, forms, URLs, base64, AES-GCM", r"cookie|percent_encoding|form_urlencoded|url::|base64|aes|ghash|polyval"),
    ("allocator", r"je_|jemalloc|malloc|free|ralloc|calloc|_rjem|tcache"),
    ("memcpy, memset, memcmp", r"mem(cpy|move|set|cmp)"),
    ("strings, formatting, collections", r"fmt|from_utf8|core::str|alloc::str|alloc::string|alloc::vec|RawVec|hashbrown|hash"),
    ("tokio, futures", r"tokio|futures|flume|event_listener"),
    ("templates (minijinja)", r"minijinja"),
    ("webauthn-rs (the rest)", r"webauthn"),
]
by_component = collections.Counter()
for function, cost in own.items():
    name = function or ""
    component = next((label for label, pattern in COMPONENTS if re.search(pattern, name)), "other")
    by_component[component] += cost
print("by component:")
for component, cost in by_component.most_common():
    print(f"  {cost / total * 100:5.1f} %  {cost / units / 1e3:8.1f} k each  {component}")
PY
  echo "results: $out (callgrind_annotate --inclusive=yes $out/callgrind.out.1 for inclusive costs)" >&2
else
  python3 - "$out/strace.txt" $((last - first)) "$unit" <<'PY' | tee "$out/summary.txt"
import re, sys

# strace -c's table: % time, seconds, usecs/call, calls, [errors,] syscall.
path, units, unit = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = {}
for line in open(path):
    fields = line.split()
    if len(fields) >= 5 and re.fullmatch(r"[\d.]+", fields[0]) and fields[-1] != "total":
        calls[fields[-1]] = int(fields[3])
total = sum(calls.values())
if not total:
    sys.exit(f"instructions.sh: strace counted nothing (could it attach? see {path})")
print(f"{units} {unit} counted; {total / units:.1f} system calls each (all the server's threads)")
for name, count in sorted(calls.items(), key=lambda item: -item[1]):
    if count / units >= 0.05:
        print(f"  {count / units:6.2f}  {name}")
PY
  echo "results: $out (strace.txt: strace's own table)" >&2
fi
