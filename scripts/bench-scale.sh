#!/usr/bin/env bash
# Scale benchmark: the whole Fruits-360 (94,110 photos) next to the 20,889-photo
# sample in one invocation: `fruits run`, train and evaluate on one machine, a
# crash at half and the resume, the photos read from S3 (a local Garage), and
# the Spark job on a 2-worker standalone cluster against `fruits run`.
# Run by hand (about an hour on 2 cores); its figures are in docs/scale.md.
#
# usage: scripts/bench-scale.sh [GIT_DIR] [--only machine,resume,s3,phone,spark]
#   GIT_DIR: a clone of github.com/wiktormalyska/FruitRecognition (see
#   scripts/fetch-fruits360.sh, which extracts the photos outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
git_dir=()
if [[ $# -gt 0 && $1 != --* ]]; then git_dir=("$1"); shift; fi
only=machine,resume,s3,phone,spark
if [[ ${1:-} == --only ]]; then only=$2; fi
whole=$(scripts/fetch-fruits360.sh "${git_dir[@]}")
scripts/setup-onnxruntime.sh >/dev/null
scripts/install-garage.sh >/dev/null
cargo build --release --quiet -p fruits-cli
venv=$(scripts/bench-venv.sh bench/spark/requirements.txt)
# The fruits wheel, release build: the Spark job runs it, and the S3 section starts
# Garage with the tests' helper, which imports it.
install_release_wheel "$venv"
scale_only=$(tr , '\n' <<<"$only" | grep -v '^spark$' | paste -sd, || true)
if [[ -n $scale_only ]]; then
  "$venv/bin/python" bench/scale/bench.py --whole "$whole" --only "$scale_only"
fi
if [[ ,$only, == *,spark,* ]]; then
  "$venv/bin/python" bench/spark/bench.py --photos "$whole" --repeat 1 --skip-reference \
    --event-log target/bench-scale/spark-events
fi
