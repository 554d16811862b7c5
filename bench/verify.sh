#!/usr/bin/env bash
# Benchmark of one scheduled verify run: 10,000 growers, 20 ms added to every Stara/Leaf call,
# VERIFY_CONCURRENCY 16. Prints the run's wall time and the verify process's peak RSS (VmHWM).
# Not a timed test: it fails only if the run's summary is wrong, never because it is slow.
#
#   bench/verify.sh                      # release binaries (what Lambda runs)
#   PROFILE=dev bench/verify.sh          # debug binaries, no release build needed
#   BENCH_GROWERS=2000 VERIFY_CONCURRENCY=32 bench/verify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target="$root/$target" ;; esac

if [ "${PROFILE:-release}" = release ]; then
    cargo build --release -p verify
    export TESTBED_BIN_DIR="$target/release"
else
    cargo build -p verify
    export TESTBED_BIN_DIR="$target/debug"
fi
export BENCH_GROWERS=${BENCH_GROWERS:-10000}
exec cargo test -p stara-connect-e2e --test verify -- --ignored --nocapture --exact benchmark_ten_thousand_growers_at_20ms
