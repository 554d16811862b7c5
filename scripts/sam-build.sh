#!/usr/bin/env bash
# `sam build` as a deploy would run it: each function's bootstrap cross-compiled for arm64 by
# cargo-lambda (zig from .venv), then the size of each, unzipped and zipped, as Lambda counts it.
# Fails when a function's bootstrap is missing or is not an aarch64 executable.
#
#   scripts/sam-build.sh                      every function in template.yaml
#   scripts/sam-build.sh ConnectFunction      only that one (sam build takes one resource id)
#
# Release builds go to target/sam (CARGO_TARGET_DIR), not target/, so a build here neither waits
# for nor blocks the debug builds and tests that use target/. About 6-8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# cargo-lambda finds zig only as `python3 -m ziglang`: the venv's python3 must come first.
export PATH="$root/.venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
export CARGO_TARGET_DIR="$root/target/sam"

[ "$#" -le 1 ] || { echo "usage: scripts/sam-build.sh [FunctionLogicalId]" >&2; exit 2; }
for tool in sam cargo-lambda; do
  command -v "$tool" > /dev/null || { echo "sam-build: $tool not found; run scripts/bootstrap.sh (make tools)" >&2; exit 1; }
done
# cargo-lambda would add the aarch64 standard library itself; doing it here gives a clear error
# when rustup cannot reach its distribution server.
if command -v rustup > /dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu || { echo "sam-build: cannot install the Rust target aarch64-unknown-linux-gnu (rustup target add)" >&2; exit 1; }
fi
python3 -m ziglang version > /dev/null 2>&1 || { echo "sam-build: zig not found as 'python3 -m ziglang'; run scripts/bootstrap.sh" >&2; exit 1; }

if [ "$#" -gt 0 ]; then
  functions=("$@")
else
  mapfile -t functions < <(python3 - <<'PY'
from cfnlint.decode import cfn_yaml
t = cfn_yaml.load("template.yaml")
for name, r in t["Resources"].items():
    if r.get("Type") == "AWS::Serverless::Function":
        print(name)
PY
)
fi
[ "${#functions[@]}" -gt 0 ] || { echo "sam-build: no AWS::Serverless::Function in template.yaml" >&2; exit 1; }

echo "sam-build: $(sam --version), $(cargo lambda --version), zig $(python3 -m ziglang version)"
echo "sam-build: building ${functions[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
for fn in "${functions[@]}"; do rm -f ".aws-sam/build/$fn/bootstrap"; done
start=$(date +%s)
sam build --template-file template.yaml "$@"
echo "sam-build: built in $(( $(date +%s) - start )) s"

python3 - "${functions[@]}" <<'PY'
import os, sys, tempfile, zipfile

failed = False
print(f"{'function':<22} {'bootstrap':>12} {'zipped':>12}")
for fn in sys.argv[1:]:
    path = os.path.join(".aws-sam", "build", fn, "bootstrap")
    if not os.path.isfile(path):
        print(f"{fn:<22} MISSING: {path}")
        failed = True
        continue
    with open(path, "rb") as f:
        data = f.read()
    # ELF, 64-bit, e_machine 183 (AArch64): what provided.al2023 on arm64 runs.
    if data[:4] != b"\x7fELF" or data[4] != 2 or int.from_bytes(data[18:20], "little") != 183:
        print(f"{fn:<22} NOT an aarch64 ELF executable: {path}")
        failed = True
        continue
    if not os.access(path, os.X_OK):
        print(f"{fn:<22} not executable: {path}")
        failed = True
        continue
    # Zipped as `sam deploy` uploads it (deflate), at level 9: the size Lambda's 50 MB limit counts.
    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, f"{fn}.zip")
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.write(path, "bootstrap")
        zipped = os.path.getsize(archive)
    unzipped = len(data)
    print(f"{fn:<22} {unzipped:>12,} {zipped:>12,}   ({unzipped / 2**20:.2f} MiB, {zipped / 2**20:.2f} MiB zipped)")
sys.exit(1 if failed else 0)
PY

# provided.al2023 ships glibc 2.34: a binary that needs a newer symbol would fail at its first start.
if command -v readelf > /dev/null; then
  for fn in "${functions[@]}"; do
    need=$(readelf -V ".aws-sam/build/$fn/bootstrap" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
    if [ -n "$need" ] && [ "$(printf '%s\n2.34\n' "$need" | sort -V | tail -1)" != "2.34" ]; then
      echo "sam-build: $fn needs glibc $need; provided.al2023 has 2.34" >&2
      exit 1
    fi
    echo "sam-build: $fn needs glibc ${need:-(none)} (provided.al2023 has 2.34)"
  done
fi
