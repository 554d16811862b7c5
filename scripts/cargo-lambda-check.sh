#!/usr/bin/env bash
# Drives both functions through cargo-lambda's own emulator (`cargo lambda watch` and
# `cargo lambda invoke`: a Runtime API and a client nobody in this project wrote), against moto
# and the Stara/Leaf stand-in (scripts/local-stack.sh), with the sample events unchanged:
#   connect  events/connect-api.json               201 connected, Leaf holds the credentials
#   connect  events/connect-api.json again         200 already_connected, Stara not called again
#   verify   events/verify-api.json                200 healthy, the same credentials
#   verify   events/verify-schedule-scheduler.json checked 1, healthy 1
#   verify   events/verify-sqs-check.json          no batch item failure (a fan-out's check message)
#   connect  events/connect-sqs.json               no batch item failure
# and checks that watch's build compiled no dependency (it reuses `cargo build --workspace --bins`:
# shared/Cargo.toml, feature alignment), that the stand-in saw no request it does not serve, and
# that no password or token appears in the functions' output or answers.
# Run by scripts/test.sh after the cargo tests; ends with `cargo-lambda: N passed, M failed`.
# Every step is bounded in time; CARGO_LAMBDA_CHECK_TIMEOUT (seconds, default 120) bounds each
# invoke (the function itself is bounded by UPSTREAM_BUDGET_MS below). Logs and answers stay in
# target/cargo-lambda-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
invoke_timeout=${CARGO_LAMBDA_CHECK_TIMEOUT:-120}

for tool in cargo-lambda moto_server; do
  command -v "$tool" > /dev/null || { echo "cargo-lambda-check: $tool not found; run scripts/bootstrap.sh (make tools)" >&2; exit 1; }
done

STACK_DIR="${CARGO_TARGET_DIR:-target}/cargo-lambda-check"
rm -rf "$STACK_DIR"
mkdir -p "$STACK_DIR"
# shellcheck source=scripts/local-stack.sh
source scripts/local-stack.sh
passed=0
failed=0
finished=
# A step that fails before the end (set -e) still closes with the counts, and stops what started.
on_exit() {
  [ -n "$finished" ] || echo "cargo-lambda: $passed passed, $((failed + 1)) failed (stopped before the end: see above)"
  stack_stop
}
trap on_exit EXIT
trap 'echo "cargo-lambda-check: interrupted" >&2; exit 130' INT TERM

pass() { passed=$((passed + 1)); echo "  ok    $1"; }
fail() { failed=$((failed + 1)); echo "  FAIL  $1"; }

# expect NAME FILE PYTHON_CONDITION: the condition over r (FILE as JSON) and b (r["body"] parsed).
expect() {
  local name=$1 file=$2 condition=$3 why
  if why=$(python3 - "$file" "$condition" 2>&1 <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError) as e:
    sys.exit(f"    no JSON answer: {e}")
b = json.loads(r["body"]) if isinstance(r, dict) and isinstance(r.get("body"), str) else None
if not eval(sys.argv[2], {"r": r, "b": b}):
    sys.exit(f"    answer: {json.dumps(r)[:1500]}\n    expected: {sys.argv[2]}")
PY
  ); then pass "$name"; else fail "$name"; echo "$why"; fi
}

# invoke NAME FUNCTION EVENT_FILE: the answer goes to $STACK_DIR/NAME.json.
invoke() {
  local out="$STACK_DIR/$1.json"
  if ! timeout "$invoke_timeout" cargo lambda invoke "$2" --data-file "$3" \
      --invoke-address 127.0.0.1 --invoke-port "$port" --output-format json \
      > "$out" 2> "$STACK_DIR/$1.err"; then
    echo "    cargo lambda invoke $2 --data-file $3 failed or timed out (${invoke_timeout}s):"
    sed 's/^/    /' "$STACK_DIR/$1.err"
    echo "    the end of $STACK_DIR/watch.log (a Compiling line here: watch is building, see shared/Cargo.toml):"
    tail -15 "$STACK_DIR/watch.log" | sed 's/^/    /'
  fi
}

standin_counts() {
  curl -s --max-time 5 "$STANDIN_CONTROL/_standin/counts" > "$STACK_DIR/$1.json" || true
}

echo "cargo-lambda-check: $(cargo lambda --version 2>/dev/null || echo cargo-lambda), moto, the stand-in, the sample events"
# The artifacts watch should reuse (a no-op after `make build` or `make test`).
timeout 1800 cargo build --workspace --bins --quiet

stack_start_moto
stack_start_standin "$(stack_sample_user)"
stack_seed stara-connect-check
stack_env_file "$STACK_DIR/functions.env" AWS_LAMBDA_LOG_FORMAT=JSON \
  HTTP_TIMEOUT_MS=2000 UPSTREAM_BUDGET_MS=8000 RETRY_BASE_DELAY_MS=20 RETRY_MAX_DELAY_MS=200
port=$(stack_free_port)
stack_start_watch "$port" "$STACK_DIR/functions.env" "$STACK_DIR/watch.log"

invoke connect-first connect events/connect-api.json
expect "connect (API): 201 connected, credentials attached" "$STACK_DIR/connect-first.json" \
  'r["statusCode"] == 201 and b["outcome"] == "connected" and b["leafUserId"] == "'"$GROWER_ID"'" and b["leafStatus"] == "OK" and len(b["credentialsId"]) > 0'
standin_counts counts-first
expect "connect (API): one Stara login, one token, one Leaf POST" "$STACK_DIR/counts-first.json" \
  'r["counts"]["StaraAuth"] == 1 and r["counts"]["StaraToken"] == 1 and r["counts"]["LeafPostCredentials"] == 1'

invoke connect-again connect events/connect-api.json
standin_counts counts-again
expect "connect (API) again: 200 already_connected" "$STACK_DIR/connect-again.json" \
  'r["statusCode"] == 200 and b["outcome"] == "already_connected"'
expect "connect (API) again: Stara not called, no second POST" "$STACK_DIR/counts-again.json" \
  'r["counts"]["StaraAuth"] == 1 and r["counts"]["LeafPostCredentials"] == 1'

invoke verify-api verify events/verify-api.json
credentials_id=$(python3 -c 'import json,sys; print(json.loads(json.load(open(sys.argv[1]))["body"]).get("credentialsId", ""))' \
  "$STACK_DIR/connect-first.json" 2>/dev/null || true)
expect "verify (API): 200 healthy, the credentials connect attached" "$STACK_DIR/verify-api.json" \
  'r["statusCode"] == 200 and b["health"] == "healthy" and b["leafStatus"] == "OK" and b["credentialsId"] == "'"$credentials_id"'" and b["leafUserId"] == "'"$GROWER_ID"'"'

invoke verify-schedule verify events/verify-schedule-scheduler.json
expect "verify (schedule): 1 grower checked, healthy, nothing queued" "$STACK_DIR/verify-schedule.json" \
  'r["checked"] == 1 and r["healthy"] == 1 and r["errors"] == 0 and r["repairsQueued"] == 0'

invoke verify-sqs verify events/verify-sqs-check.json
expect "verify (SQS check message of a fan-out): no batch item failure" "$STACK_DIR/verify-sqs.json" \
  'r["batchItemFailures"] == []'

invoke connect-sqs connect events/connect-sqs.json
expect "connect (SQS): no batch item failure" "$STACK_DIR/connect-sqs.json" \
  'r["batchItemFailures"] == []'

standin_counts counts-last
expect "the stand-in got no request outside the Stara and Leaf APIs" "$STACK_DIR/counts-last.json" \
  'r["unrouted"] == []'

# `cargo run --bin <fn>`, as watch runs it, after `cargo build --workspace --bins`: no dependency
# to compile (shared/Cargo.toml, feature alignment). A crate of this workspace may be rebuilt when
# its sources changed meanwhile (watch rebuilds on every change); a dependency never.
ran=$(grep -c 'Running `' "$STACK_DIR/watch.log" || true)
dependencies=$(grep -E '^ *Compiling ' "$STACK_DIR/watch.log" | grep -vF "($PWD/" || true)
if [ "$ran" -ge 2 ] && [ -z "$dependencies" ]; then
  pass "watch built both functions without compiling a dependency (reused the workspace build)"
else
  fail "watch built both functions without compiling a dependency (reused the workspace build)"
  echo "    functions started: $ran (expected 2); dependencies compiled:"
  echo "${dependencies:-    (none)}" | head -20 | sed 's/^ */    /'
fi

# Every password the stand-in was given and every token it issued (Leaf echoes the Stara tokens
# in its answers, which the functions read) must appear in no log line and no answer.
curl -s --max-time 5 "$STANDIN_CONTROL/_standin/issued" > "$STACK_DIR/issued.txt" || true
if why=$(python3 - "$STACK_DIR" 2>&1 <<'PY'
import glob, json, os, sys
directory = sys.argv[1]
try:
    secrets = json.load(open(os.path.join(directory, "issued.txt")))
except (OSError, ValueError):
    secrets = []
texts = {path: open(path, errors="replace").read() for path in
         [os.path.join(directory, "watch.log")] + glob.glob(os.path.join(directory, "*.json"))
         + glob.glob(os.path.join(directory, "*.err"))
         if not path.endswith("standin.json")}
leaks = sorted({(s[:14] + "...", os.path.basename(p)) for s in secrets for p, t in texts.items() if s in t})
if leaks:
    sys.exit(f"    leaked: {leaks}")
# Two passwords, an apiKey, three Stara tokens and a Leaf id_token at least, or the search proves nothing.
if len(secrets) < 7:
    sys.exit(f"    only {len(secrets)} secrets to search for")
PY
); then pass "no password or token in the functions' output or answers"; else fail "no password or token in the functions' output or answers"; echo "$why"; fi

finished=1
echo "cargo-lambda: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
