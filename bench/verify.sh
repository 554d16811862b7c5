#!/usr/bin/env bash
# Verify at scale only: the "verify" part of `make bench` (scripts/bench.sh), on the release
# binaries, 20 ms per upstream call, VERIFY_CONCURRENCY 16. Prints time, peak RSS and Secrets
# Manager calls, and writes target/bench/BENCHMARKS.md (docs/BENCHMARKS.md is `make bench`'s).
#
#   bench/verify.sh                          1,000 and 10,000 growers
#   BENCH_GROWERS=2000 bench/verify.sh       one fleet of another size
set -euo pipefail
cd "$(dirname "$0")/.."
export BENCH_ONLY=verify BENCH_SAM_BUILD=0
if [ -n "${BENCH_GROWERS:-}" ]; then
  export BENCH_VERIFY_GROWERS=$BENCH_GROWERS
fi
exec scripts/bench.sh
