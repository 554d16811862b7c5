#!/usr/bin/env bash
# `make bench`: benchmarks of the release binaries, driven through the Lambda Runtime API emulator
# against the Stara/Leaf stand-ins (20 ms per upstream call) and moto. Writes docs/BENCHMARKS.md
# and docs/benchmarks-batch.svg. Not run by CI (.ci/run): it takes minutes and wants a quiet machine.
#
#   make bench                                 everything (builds what is out of date first)
#   BENCH_ONLY=warm,batch scripts/bench.sh     a subset, written to target/bench/ instead of docs/
#   BENCH_LATENCY_MS=50 make bench             another upstream latency
#   BENCH_SAM_BUILD=1 make bench               always rebuild the arm64 artifacts first (0: never)
#   BENCH_HARNESS=dev make bench               the harness from the dev build (make build) instead
#   BENCH_ONLY=fanout scripts/bench.sh         verify's fan-out over 100,000 growers alone (~3 minutes)
#   (a BENCH_ONLY without `size` skips the arm64 build unless BENCH_SAM_BUILD says otherwise)
#
# Steps:
#   1. the arm64 bootstraps (scripts/sam-build.sh), only when .aws-sam/build has none or they are
#      older than the sources (BENCH_SAM_BUILD=auto, the default); they are measured, not run;
#   2. the release binaries of this machine: cargo build --release (opt-level s, fat LTO; about
#      6 minutes from nothing on 2 cores, seconds when current);
#   3. the bench harness (bench/: the emulator, the stand-ins, the AWS proxy), optimised: profile
#      `bench-harness` (release without LTO, opt-level 2), in target/bench-harness/. A dev build of the
#      stand-ins adds its own time to every upstream call; the harness is built once (a few minutes,
#      its own copy of the dependencies), then again only when bench/ or tests/ change;
#   4. that harness with TESTBED_BIN_DIR=target/release, on a fresh moto of its own; it also runs
#      the hand-written Python baseline (bench/python/, awslambdaric from .venv) beside connect.
# See bench/src/main.rs for the other BENCH_* settings.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$root/.venv/bin:$PATH"
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target="$root/$target" ;; esac
BENCH_STARTED=$(date +%s)
export BENCH_STARTED

[ -x .venv/bin/moto_server ] || { echo "bench: moto not found in .venv; run scripts/bootstrap.sh (make tools)" >&2; exit 1; }

sam_stale() {
  local fn bootstrap
  for fn in ConnectFunction VerifyFunction; do
    bootstrap=".aws-sam/build/$fn/bootstrap"
    [ -f "$bootstrap" ] || return 0
    # Only what goes into the bootstrap; test-only code (shared/src/proptests.rs) does not.
    if [ -n "$(find shared functions -type f \( -name '*.rs' -o -name Cargo.toml \) ! -name proptests.rs -newer "$bootstrap" -print -quit)" ]; then
      return 0
    fi
  done
  return 1
}
# Only the artifact sizes need the arm64 build: a subset without them does not wait for it.
sam_default=auto
case ",${BENCH_ONLY:-size}," in *,size,*) ;; *) sam_default=0 ;; esac
case ${BENCH_SAM_BUILD:-$sam_default} in
  1) scripts/sam-build.sh ;;
  auto) if sam_stale; then
          echo "bench: the arm64 artifacts are missing or older than the sources: scripts/sam-build.sh"
          scripts/sam-build.sh || echo "bench: WARNING: sam build failed; the artifact sizes will be missing or stale" >&2
        fi ;;
  0) ;;
  *) echo "bench: BENCH_SAM_BUILD must be auto, 1 or 0" >&2; exit 2 ;;
esac

cargo build --release --bins --bin connect --bin verify
case ${BENCH_HARNESS:-optimised} in
  optimised)
    # A profile of its own, defined here: the release binaries and the dev builds stay as they are.
    # Panics unwind, so that a failed check still stops the functions and moto the harness started.
    cargo build -p stara-connect-bench --bin bench --profile bench-harness \
      --config 'profile.bench-harness.inherits="release"' --config 'profile.bench-harness.lto=false' \
      --config 'profile.bench-harness.codegen-units=16' --config 'profile.bench-harness.opt-level=2' \
      --config 'profile.bench-harness.strip=false' --config 'profile.bench-harness.incremental=false' \
      --config 'profile.bench-harness.panic="unwind"'
    harness="$target/bench-harness/bench" ;;
  dev)
    # The workspace build (make build), not `-p stara-connect-bench`: built alone, the bench would
    # resolve other features and compile a second copy of tokio and hyper in the dev profile.
    cargo build --workspace --bins
    harness="$target/debug/bench" ;;
  *) echo "bench: BENCH_HARNESS must be optimised or dev" >&2; exit 2 ;;
esac
BENCH_BUILT=$(date +%s)
export BENCH_BUILT

# A moto of the bench's own (started by the harness), not a shared one with other tests' secrets.
unset MOTO_ENDPOINT
export TESTBED_BIN_DIR="$target/release"
"$harness"
echo "bench: done in $(( $(date +%s) - BENCH_STARTED )) s"
