#!/usr/bin/env bash
# `make dev`: the developer's loop. Starts, all on 127.0.0.1,
#   moto (Secrets Manager, SQS), seeded with the Leaf owner's secret, a grower's login secret
#     (the grower of the sample events) and the connect FIFO queue;
#   the Stara/Leaf stand-in (target/debug/standin, the e2e suite's own) that knows that grower and the Leaf owner;
#   `cargo lambda watch`, which builds and runs a function on its first invoke and rebuilds it
#     when a source file changes;
# then prints a `cargo lambda invoke` command for every file in events/. Ctrl-C stops all of it.
#
#   make dev                 (or scripts/dev.sh)
#   DEV_PORT=9100 make dev   another port for watch (default 9000, or a free one if 9000 is taken)
#   AWS_LAMBDA_LOG_FORMAT=JSON make dev   the functions log JSON, as deployed (default here: Text)
#
# Nothing lasts between runs: moto and the stand-in start empty each time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

scripts/bootstrap.sh
# What `make build` builds: watch's `cargo run --bin <fn>` then reuses it (shared/Cargo.toml,
# feature alignment), so the first invoke starts the function in about a second.
cargo build --workspace --bins

STACK_DIR="${CARGO_TARGET_DIR:-target}/dev"
rm -rf "$STACK_DIR"
mkdir -p "$STACK_DIR"
# shellcheck source=scripts/local-stack.sh
source scripts/local-stack.sh
trap stack_stop EXIT
trap 'echo; echo "dev: stopping"; exit 0' INT TERM

port=${DEV_PORT:-9000}
if [ -z "${DEV_PORT:-}" ] && ! python3 -c 'import socket; socket.socket().bind(("127.0.0.1", 9000))' 2>/dev/null; then
  port=$(stack_free_port)
  echo "dev: port 9000 is taken; watch listens on $port"
fi

stack_start_moto
stack_start_standin "$(stack_sample_user)"
stack_seed stara-connect-dev
stack_env_file "$STACK_DIR/functions.env" "AWS_LAMBDA_LOG_FORMAT=${AWS_LAMBDA_LOG_FORMAT:-Text}"
stack_start_watch "$port" "$STACK_DIR/functions.env" -

cat <<EOF

dev: ready. Everything runs on 127.0.0.1 and stops with Ctrl-C. (Watch's "default function route is
disabled" ERROR above is expected: the workspace has several binaries; invoke a function by name.)
  cargo lambda watch     http://127.0.0.1:$port  (functions: connect, verify; built on first invoke)
  moto                   $MOTO_ENDPOINT  (secrets $LEAF_SECRET_ID, $STARA_SECRET_PREFIX$GROWER_ID)
  Stara stand-in         $STARA_URL
  Leaf stand-in          $LEAF_URL  (requests so far: curl $STANDIN_CONTROL/_standin/counts)
  grower                 leafUserId $GROWER_ID, Stara login $GROWER_LOGIN
  functions' environment $STACK_DIR/functions.env

In another terminal, from $(pwd):
EOF
for event in events/*.json; do
  fn=$(basename "$event" .json)
  fn=${fn%%-*}
  if [ -d "functions/$fn" ]; then
    echo "  cargo lambda invoke $fn --data-file $event --invoke-address 127.0.0.1 --invoke-port $port"
  fi
done
cat <<EOF
(the PATH needs .venv/bin: export PATH="\$PWD/.venv/bin:\$PATH"). Start with connect-api.json:
201 connected, then 200 already_connected; verify-api.json then reports the grower healthy.
Edit shared/src or functions/*/src and invoke again: watch rebuilds the function first.

EOF
wait "$STACK_WATCH_PID"
