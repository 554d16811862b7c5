# Sourced by scripts/dev.sh and scripts/cargo-lambda-check.sh (not run on its own): the local
# world the functions run in under `cargo lambda watch`, all on 127.0.0.1:
#   moto (Secrets Manager, SQS)     .venv/bin/moto_server
#   the Stara/Leaf stand-in         target/debug/standin, the e2e suite's own (one grower, the Leaf owner)
#   the secrets and the queue       scripts/seed-moto.py
#   cargo lambda watch              with the functions' environment in an --env-file
# The caller sets STACK_DIR (logs and state) and calls stack_stop from its EXIT trap.
# Every wait is bounded; a step that fails prints its log and returns non-zero.

STACK_PIDS=()
STACK_WATCH_PID=

stack_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# stack_wait_http URL SECONDS: until URL answers over HTTP (any status).
stack_wait_http() {
  local deadline=$((SECONDS + $2))
  until curl -s -o /dev/null --max-time 2 "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# The sample events' grower: the leafUserId of events/connect-api.json, so that every file in
# events/ works unchanged with `cargo lambda invoke --data-file`.
stack_sample_user() {
  python3 -c 'import json; print(json.loads(json.load(open("events/connect-api.json"))["body"])["leafUserId"])'
}

# stack_start_moto: sets MOTO_ENDPOINT.
stack_start_moto() {
  local port
  port=$(stack_free_port)
  .venv/bin/moto_server -H 127.0.0.1 -p "$port" > "$STACK_DIR/moto.log" 2>&1 &
  STACK_PIDS+=($!)
  MOTO_ENDPOINT="http://127.0.0.1:$port"
  stack_wait_http "$MOTO_ENDPOINT/moto-api/" 30 || { echo "moto did not start:" >&2; tail -20 "$STACK_DIR/moto.log" >&2; return 1; }
}

# stack_start_standin LEAF_USER_ID: a grower (Stara login and Leaf user) and the Leaf API owner,
# with passwords new on every run. Needs `cargo build --workspace --bins` first. Sets STARA_URL,
# LEAF_URL, STANDIN_CONTROL (GET /_standin/counts, /_standin/issued), GROWER_ID, GROWER_LOGIN,
# GROWER_PASSWORD, LEAF_OWNER, LEAF_OWNER_PASSWORD.
stack_start_standin() {
  GROWER_ID=$1
  GROWER_LOGIN=dev-grower
  GROWER_PASSWORD="stara-pw-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  LEAF_OWNER=owner@example.com
  LEAF_OWNER_PASSWORD="leaf-pw-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
  "${CARGO_TARGET_DIR:-target}/debug/standin" --leaf-owner "$LEAF_OWNER:$LEAF_OWNER_PASSWORD" \
    --grower "$GROWER_ID:$GROWER_LOGIN:$GROWER_PASSWORD" \
    > "$STACK_DIR/standin.json" 2> "$STACK_DIR/standin.log" &
  STACK_PIDS+=($!)
  local deadline=$((SECONDS + 10))
  until [ -s "$STACK_DIR/standin.json" ]; do
    [ "$SECONDS" -lt "$deadline" ] && kill -0 "${STACK_PIDS[-1]}" 2>/dev/null \
      || { echo "the stand-in did not start:" >&2; cat "$STACK_DIR/standin.log" >&2; return 1; }
    sleep 0.1
  done
  STARA_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stara"])' "$STACK_DIR/standin.json")
  LEAF_URL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["leaf"])' "$STACK_DIR/standin.json")
  STANDIN_CONTROL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["control"])' "$STACK_DIR/standin.json")
}

# stack_seed NAMESPACE: the secrets and the queue in moto. Sets LEAF_SECRET_ID,
# STARA_SECRET_PREFIX, CONNECT_QUEUE_URL.
stack_seed() {
  local seeded
  seeded=$(timeout 60 .venv/bin/python scripts/seed-moto.py --endpoint "$MOTO_ENDPOINT" --namespace "$1" \
    --leaf-owner "$LEAF_OWNER:$LEAF_OWNER_PASSWORD" \
    --grower "$GROWER_ID:$GROWER_LOGIN:$GROWER_PASSWORD") || return 1
  LEAF_SECRET_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["leafSecretId"])' "$seeded")
  STARA_SECRET_PREFIX=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["growerPrefix"])' "$seeded")
  CONNECT_QUEUE_URL=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["queueUrl"])' "$seeded")
}

# stack_env_file FILE [KEY=VALUE...]: the environment both functions read (shared/src/lambda/config.rs),
# then the extra pairs. Given to `cargo lambda watch --env-file`, so it reaches the functions only.
stack_env_file() {
  local file=$1
  shift
  {
    echo "AWS_ENDPOINT_URL=$MOTO_ENDPOINT"
    echo "AWS_REGION=us-east-1"
    echo "AWS_DEFAULT_REGION=us-east-1"
    echo "AWS_ACCESS_KEY_ID=test"
    echo "AWS_SECRET_ACCESS_KEY=test"
    echo "STARA_BASE_URL=$STARA_URL"
    echo "LEAF_BASE_URL=$LEAF_URL"
    echo "LEAF_SECRET_ID=$LEAF_SECRET_ID"
    echo "STARA_SECRET_PREFIX=$STARA_SECRET_PREFIX"
    echo "CONNECT_QUEUE_URL=$CONNECT_QUEUE_URL"
    local pair
    for pair in "$@"; do echo "$pair"; done
  } > "$file"
}

# stack_start_watch PORT ENV_FILE LOG: `cargo lambda watch` on 127.0.0.1:PORT, in a process group
# of its own (watch -> cargo run -> function) so that stack_stop ends all of it. LOG "-" keeps
# its output on the terminal. It builds a function on that function's first invoke.
stack_start_watch() {
  local port=$1 env_file=$2 log=$3
  if [ "$log" = - ]; then
    setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-file "$env_file" &
  else
    setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --env-file "$env_file" > "$log" 2>&1 &
  fi
  STACK_WATCH_PID=$!
  if ! stack_wait_http "http://127.0.0.1:$port/" 60; then
    echo "cargo lambda watch did not listen on 127.0.0.1:$port" >&2
    [ "$log" = - ] || tail -30 "$log" >&2
    return 1
  fi
}

# Ends what stack_* started: watch's whole process group, then the stand-in and moto.
stack_stop() {
  local pid waited
  if [ -n "$STACK_WATCH_PID" ] && kill -0 "$STACK_WATCH_PID" 2>/dev/null; then
    kill -TERM -- "-$STACK_WATCH_PID" 2>/dev/null || true
    for waited in $(seq 1 50); do
      kill -0 -- "-$STACK_WATCH_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$STACK_WATCH_PID" 2>/dev/null || true
  fi
  STACK_WATCH_PID=
  for pid in "${STACK_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${STACK_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  STACK_PIDS=()
}
