#!/usr/bin/env bash
# Spark benchmark: the fruits job on a local 2-worker Spark cluster vs `fruits run`
# on one machine vs the usual PySpark + Keras reference, on the same images.
# Arguments go to bench/spark/bench.py (--images N, --skip-reference).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
scripts/setup-onnxruntime.sh >/dev/null
cargo build --release --quiet -p fruits-cli
venv=$(scripts/bench-venv.sh bench/spark/requirements.txt)
# The job's Rust core optimised like the binary it is compared with: a release wheel.
install_release_wheel "$venv"
exec "$venv/bin/python" bench/spark/bench.py "$@"
