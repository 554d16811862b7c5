#!/usr/bin/env bash
# Fuzzes the connect function's event dispatcher (fuzz/fuzz_targets/dispatch.rs) with libFuzzer.
#
#   scripts/fuzz.sh [SECONDS] [libFuzzer options...]      default: 30 seconds
#
# Installs the pinned cargo-fuzz into .tools on first use. Seeds the corpus (fuzz/corpus/dispatch,
# not committed) with events/*.json and fuzz/seeds/*; the corpus grows across runs on the same
# machine. A crash stops the run with a non-zero exit and leaves its input in
# fuzz/artifacts/dispatch/ (replay it with `scripts/fuzz.sh 0 fuzz/artifacts/dispatch/<file>`).
#
# Only stable Rust is needed: cargo-fuzz passes `-Z` flags, which a stable rustc accepts with
# RUSTC_BOOTSTRAP=1. The first build compiles shared and all its dependencies (the AWS SDK
# included) with coverage instrumentation, into fuzz/target: 6-10 minutes on 2 busy cores, then
# seconds. Build settings, chosen for that first build:
#   FUZZ_SANITIZER=none      the code under test is safe Rust; `address` costs ~40 % more build CPU
#                            and runs ~6x fewer inputs per second
#   FUZZ_CODEGEN_UNITS=16    cargo-fuzz's default of 1 serialises the code generation of the big
#                            SDK crates; 16 builds ~35 % faster and runs ~20 % fewer inputs/s
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${1:-30}
shift || true

# A replay of given files (`scripts/fuzz.sh 0 <file>...`) runs them once instead of fuzzing.
inputs=()
if [ "$seconds" = 0 ] && [ $# -gt 0 ] && [ -f "$1" ]; then
  inputs=("$@")
  set --
elif ! [ "$seconds" -gt 0 ] 2>/dev/null; then
  # libFuzzer reads -max_total_time=0 as "no limit".
  echo "usage: scripts/fuzz.sh [SECONDS > 0] [libFuzzer options...] | scripts/fuzz.sh 0 FILE..." >&2
  exit 2
fi

tools="$PWD/.tools"
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools (about a minute)"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$tools" --quiet
fi
export PATH="$tools/bin:$PATH"
export RUSTC_BOOTSTRAP=1

corpus=fuzz/corpus/dispatch
mkdir -p "$corpus"
for seed in events/*.json fuzz/seeds/*; do
  cp "$seed" "$corpus/seed-$(basename "$seed")"
done

flags=(--sanitizer "${FUZZ_SANITIZER:-none}" --codegen-units "${FUZZ_CODEGEN_UNITS:-16}" --fuzz-dir fuzz)
echo "fuzz: building the dispatch target (the first build takes minutes, see above)"
time cargo fuzz build "${flags[@]}" dispatch

if [ ${#inputs[@]} -gt 0 ]; then
  exec cargo fuzz run "${flags[@]}" dispatch "${inputs[@]}"
fi
echo "fuzz: running for ${seconds}s"
exec cargo fuzz run "${flags[@]}" dispatch "$corpus" -- \
  -max_total_time="$seconds" -dict=fuzz/dispatch.dict -max_len=20000 -print_final_stats=1 "$@"
