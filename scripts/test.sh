#!/usr/bin/env bash
# Every test: unit tests of each crate, the end-to-end suite that drives the compiled Lambda
# binaries through the Runtime API against moto and the Stara/Leaf stand-ins, and the
# template checks. Run through `make test`, which installs the tools and builds the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

# One moto server for the whole run; each test isolates itself by secret and queue names.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
export MOTO_ENDPOINT="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$MOTO_ENDPOINT/moto-api/" 2>/dev/null && break
  sleep 0.2
done

# Style and lints first: they fail in seconds, the suites take minutes.
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# One feature set for every dev build (make build, cargo test, cargo lambda watch): no second copy of the dependencies.
scripts/check-features.sh

rm -rf target/e2e-capture
cargo test --workspace --all-targets 2>&1 | tee target/cargo-test.log

# Every password and token issued anywhere in the suite, searched for in every captured log
# line and response of every test.
# (Built by `cargo build --workspace --bins`; `cargo run -p` would resolve features for one
# package only and rebuild dependencies.)
"${CARGO_TARGET_DIR:-target}/debug/leak_scan"

# Both functions once more, through cargo-lambda's emulator (cargo lambda watch + invoke) and the sample events.
scripts/cargo-lambda-check.sh 2>&1 | tee target/cargo-lambda-test.log

# The SAM template: cfn-lint, sam validate --lint, and the project's own template rules.
scripts/check-template.sh 2>&1 | tee target/template-test.log

# One closing line for the whole run (any failure above has already stopped it).
rust=$(grep -hoE '^test result: ok\. [0-9]+ passed' target/cargo-test.log | awk '{n += $4} END {print n + 0}')
python=$(grep -hoE '^[0-9]+ passed' target/template-test.log | awk '{n += $1} END {print n + 0}')
lambda=$(grep -hoE '^cargo-lambda: [0-9]+ passed' target/cargo-lambda-test.log | awk '{n += $2} END {print n + 0}')
echo "tests: $((rust + python + lambda)) passed, 0 failed" | tee target/test-summary.txt
