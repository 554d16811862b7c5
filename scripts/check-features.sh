#!/usr/bin/env bash
# Fails when a build of the dev profile would compile a second copy of a dependency.
#
# Cargo resolves features per command: `cargo build -p <function>` (what `cargo lambda watch` and
# `cargo run --bin <function>` do) sees only that package's dependency graph, `cargo build
# --workspace --bins` (make build) sees every member but no dev-dependency, and `cargo test
# --workspace` sees everything. A dependency resolved with other features is compiled again, with
# everything that depends on it (tokio: the AWS SDK, minutes on 2 cores). shared/Cargo.toml aligns
# them; this script checks, without building, that every dependency of each of these builds has
# the feature set of `cargo test --workspace`, and names what differs. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

tree() {  # one line per dependency (this workspace's own packages left out): "name vX [features]"
  cargo tree --quiet --prefix none --format '{p} [{f}]' "$@" | sed 's/ (\*)$//' | grep -vF "($PWD" | sort -u
}

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
tree --workspace > "$dir/reference"  # `cargo test --workspace --all-targets` and `--bins --tests`
builds=("cargo build --workspace --bins (make build)|-e normal,build --workspace")
while read -r package; do
  builds+=("cargo build -p $package (cargo lambda watch)|-e normal,build -p $package")
done < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if os.path.relpath(p["manifest_path"]).startswith("functions" + os.sep):
        print(p["name"])')

status=0
for build in "${builds[@]}"; do
  name=${build%%|*}
  read -r -a args <<< "${build#*|}"
  tree "${args[@]}" > "$dir/build"
  if ! python3 - "$dir/reference" "$dir/build" "$name" <<'PY'
import re, sys
def load(path):
    found = {}
    for line in open(path):
        m = re.match(r"(.*) \[(.*)\]$", line.rstrip("\n"))
        if m:
            found.setdefault(m[1], set()).add(frozenset(filter(None, m[2].split(","))))
    return found
reference, build, name = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
differ = [p for p in sorted(build) if build[p] != reference.get(p)]
for package in differ:
    have = " | ".join(",".join(sorted(f)) or "-" for f in build[package])
    want = " | ".join(",".join(sorted(f)) or "-" for f in reference.get(package, ())) or "(not in it)"
    print(f"  {package}\n      {name}: {have}\n      cargo test --workspace: {want}")
if differ:
    print(f"check-features: {name} resolves {len(differ)} dependencies with other features than the "
          "workspace build, and would compile them (and what depends on them) again: enable the "
          "missing features in shared/Cargo.toml (feature alignment), or drop them where they are added")
    sys.exit(1)
print(f"check-features: {name}: {len(build)} dependencies, the features of the workspace build")
PY
  then status=1; fi
done
exit "$status"
