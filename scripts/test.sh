#!/usr/bin/env bash
# The project's test command (README and CI run exactly this): installs the
# ONNX Runtime library if missing, checks formatting and lints, runs every test.
# Tests read the shared models and sample from ../shared (override with
# FRUITS_MODELS_DIR and FRUITS_SAMPLE_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-onnxruntime.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole workspace: cargo prints one per test binary,
# and the last of those is often a crate's empty doctest run.
awk '/^test result:/ { p += $4; f += $6 } END { printf "workspace tests: %d passed, %d failed\n", p, f }' "$log"
