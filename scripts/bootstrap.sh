#!/usr/bin/env bash
# Installs the Python tools the test bed and the deploy checks use (moto, cfn-lint, SAM CLI,
# cargo-lambda, zig) into .venv, from pinned versions. Does nothing when they are already there.
# `bootstrap.sh demo` installs only what `make demo` needs (moto), so a newcomer's first demo
# does not wait for SAM CLI and zig; a later full run adds the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
digest=$(cat requirements-dev.txt constraints.txt | sha256sum | cut -c1-16)
stamp=".venv/.installed-$digest"
if [ -f "$stamp" ]; then
  exit 0
fi
if [ "${1:-}" = demo ]; then
  [ -f ".venv/.demo-$digest" ] && exit 0
  echo "bootstrap: installing moto into .venv for the demo"
  "$python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "$(grep -E '^moto\[server\]==' requirements-dev.txt)" \
    -c constraints.txt
  touch ".venv/.demo-$digest"
  exit 0
fi
echo "bootstrap: installing pinned Python tools into .venv (about a minute)"
"$python" -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
rm -f .venv/.installed-* .venv/.demo-*
touch "$stamp"
