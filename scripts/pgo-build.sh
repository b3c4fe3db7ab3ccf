#!/usr/bin/env bash
# Builds Latchkey's release binary with profile-guided optimisation (PGO), as the container
# image ships it: an instrumented build first, trained by latchkey-bench driving every
# scenario against it on the embedded default for a few seconds each; then the release build,
# which LLVM lays out and inlines by the recorded profile. The binary behaves exactly as the
# plain release build; in docs/benchmarks.md (twenty-fourth run) it took 13-27 % less CPU per
# passkey sign-in, 8-14 % less with RS256 tokens and 6-12 % less per token request.
#
#   scripts/pgo-build.sh        # prints the binary's path: $CARGO_TARGET_DIR/pgo/release/latchkey
#
# Needs the toolchain's llvm-profdata (`rustup component add llvm-tools`) and a free port
# (LATCHKEY_PGO_PORT, default 8092) for the training run. The training builds latchkey-bench
# with the plain release profile, in the usual target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir/pgo"
pgo_dir=$(cd "$target_dir/pgo" && pwd)
port=${LATCHKEY_PGO_PORT:-8092}

profdata="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
if [[ ! -x $profdata ]]; then
  echo "pgo-build.sh: llvm-profdata is missing; install it with: rustup component add llvm-tools" >&2
  exit 1
fi

# `--config build.rustflags=…` adds to .cargo/config.toml's flags, where RUSTFLAGS would
# replace them.
build() { # build TARGET_DIR RUSTFLAG: the latchkey binary with one more compiler flag
  cargo build --release --locked --quiet --bin latchkey --target-dir "$1" --config "build.rustflags=[\"$2\"]"
}

echo "== pgo: the instrumented build and the load generator" >&2
cargo build --release --locked --quiet -p latchkey-bench
generator=$target_dir/release/latchkey-bench
raw=$pgo_dir/raw
rm -rf "$raw"
build "$pgo_dir/train" "-Cprofile-generate=$raw"

echo "== pgo: training on the embedded default" >&2
work=$(mktemp -d)
server=
cleanup() { [[ -n $server ]] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$generator" --print-clients-file >"$work/clients.yaml"
LATCHKEY_ISSUER="http://localhost:$port" LATCHKEY_LISTEN="127.0.0.1:$port" \
  LATCHKEY_DATABASE_URL="sqlite://$work/latchkey.db?mode=rwc" LATCHKEY_CLIENTS_FILE="$work/clients.yaml" \
  LATCHKEY_RATE_LIMITS=off RUST_LOG=warn "$pgo_dir/train/release/latchkey" serve >"$work/server.log" 2>&1 &
server=$!
"$generator" --target "http://localhost:$port" --wait-ready 10s >/dev/null || { cat "$work/server.log" >&2; exit 1; }
train() { # train [GENERATOR OPTIONS]: one short scenario; any failed request stops the build
  "$generator" --target "http://localhost:$port" --duration 3s --warmup 1s --concurrency 16 --users 32 "$@" \
    >>"$work/training.log" 2>&1 || { cat "$work/training.log" "$work/server.log" >&2; exit 1; }
}
train --scenario login --alg ES256
train --scenario login --alg ES256 --login-mode remembered
train --scenario login --alg ES256 --login-mode discoverable
train --scenario login --alg RS256
train --scenario login --alg EdDSA
train --scenario token
train --scenario refresh
train --scenario userinfo
train --scenario discovery
kill -TERM "$server" # a graceful exit writes the profile
wait "$server" || { cat "$work/server.log" >&2; exit 1; }
server=

# Named by its content, so that a new profile changes the flags and cargo rebuilds everything.
"$profdata" merge -o "$pgo_dir/merged.profdata" "$raw"
profile=$pgo_dir/profile-$(sha256sum "$pgo_dir/merged.profdata" | cut -c1-16).profdata
mv "$pgo_dir/merged.profdata" "$profile"
find "$pgo_dir" -maxdepth 1 -name 'profile-*.profdata' ! -path "$profile" -delete

echo "== pgo: the optimised build" >&2
build "$pgo_dir" "-Cprofile-use=$profile"
echo "$pgo_dir/release/latchkey"
