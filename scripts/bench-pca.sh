#!/usr/bin/env bash
# PCA benchmark: fruits pca fit vs scikit-learn (default solver, covariance_eigh)
# on the sample's features and on 100,000 x 1280 rows made from them.
# Arguments go to bench/pca/bench.py (--repeat N).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-onnxruntime.sh >/dev/null
cargo build --release --quiet -p fruits-cli
venv=target/bench-pca-venv
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s bench/pca/requirements.txt "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r bench/pca/requirements.txt
  cp bench/pca/requirements.txt "$venv/requirements.txt"
fi
sample=${FRUITS_SAMPLE_DIR:-../shared/data/fruits-360-sample}
features=target/bench-data/features
# Resumes: only the first call featurises.
target/release/fruits featurize "$sample" --out "$features" --quiet
big=target/bench-data/features-100k
[[ -f "$big/_manifest.json" ]] || "$venv/bin/python" bench/pca/make_big.py "$features" "$big" 100000
exec "$venv/bin/python" bench/pca/bench.py target/release/fruits "$features" "$big" "$@"
