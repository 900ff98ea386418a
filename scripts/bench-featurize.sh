#!/usr/bin/env bash
# Featurize benchmark: fruits vs the Python reference (ONNX Runtime + Pillow +
# NumPy) on the same images, side by side. Arguments go to bench/featurize/bench.py
# (--images N, --repeat N, --full).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-onnxruntime.sh >/dev/null
cargo build --release --quiet -p fruits-cli
venv=$(scripts/bench-venv.sh bench/featurize/requirements.txt)
exec "$venv/bin/python" bench/featurize/bench.py "$@"
