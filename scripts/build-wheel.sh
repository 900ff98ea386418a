#!/usr/bin/env bash
# Builds the `fruits` Python wheel for this machine (the Rust core and the
# Python package, abi3: one wheel for every CPython >= 3.11) and prints its
# path, so that
#
#   pip install "$(scripts/build-wheel.sh)"
#   pip install "$(scripts/build-wheel.sh)[spark]"     # with pyspark and pandas
#
# installs it. maturin (pinned) comes from PyPI into a virtualenv in the cache;
# the wheel goes to $CARGO_TARGET_DIR/wheels (default target/wheels). The first
# build compiles the dependencies with optimisations (about 12 minutes on 2
# cores); later builds only what changed. For EMR nodes (manylinux, another
# architecture) use deploy/emr/build-wheel.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
maturin_version=1.9.6
cache=${FRUITS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fruits}
venv=$cache/maturin-$maturin_version
if [[ ! -x "$venv/bin/maturin" ]]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "maturin==$maturin_version" >&2
fi
out=${CARGO_TARGET_DIR:-$PWD/target}/wheels
mkdir -p "$out"
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
# From python/, where pyproject.toml names the crate and the module.
(cd python && "$venv/bin/maturin" build --release --locked --out "$out") >&2
wheel=$(find "$out" -maxdepth 1 -name 'fruits-*.whl' -newer "$stamp" | sort | tail -n 1)
[[ -n "$wheel" ]] || { echo "build-wheel.sh: maturin finished but wrote no fruits-*.whl in $out" >&2; exit 1; }
echo "$wheel"
