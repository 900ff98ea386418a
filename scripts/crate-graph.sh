#!/usr/bin/env bash
# Prints the workspace's crate graph (each crate and the workspace crates it
# depends on, dependencies first) from `cargo metadata`: the block of
# docs/design.md between its crate-graph markers, which the tests compare
# with the crates' Cargo.toml files.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --no-deps --format-version 1 --offline | python3 -c '
import json, sys
packages = {p["name"]: p for p in json.load(sys.stdin)["packages"]}
deps = {name: sorted({d["name"] for d in p["dependencies"] if d["name"] in packages and d["kind"] is None})
        for name, p in packages.items()}
done = []
while len(done) < len(deps):
    ready = sorted(n for n in deps if n not in done and all(d in done for d in deps[n]))
    if not ready:
        sys.exit("the crates depend on each other in a cycle")
    done += ready
width = max(map(len, done))
for name in done:
    uses = ", ".join(deps[name]) or "(none)"
    print(f"{name:<{width}}  <- {uses}")
'
