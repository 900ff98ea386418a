#!/usr/bin/env bash
# Featurize benchmark: fruits vs the Python reference (ONNX Runtime + Pillow +
# NumPy) on the same images, side by side. Arguments go to bench/featurize/bench.py
# (--images N, --repeat N, --full).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-onnxruntime.sh >/dev/null
cargo build --release --quiet -p fruits-cli
venv=target/bench-venv
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s bench/featurize/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r bench/featurize/requirements.txt
  cp bench/featurize/requirements.txt "$venv/requirements.txt"
fi
exec "$venv/bin/python" bench/featurize/bench.py "$@"
