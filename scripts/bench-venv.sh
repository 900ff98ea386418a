#!/usr/bin/env bash
# Makes sure the benchmarks' virtualenv (target/bench-venv, shared by the
# benchmarks) has REQUIREMENTS installed; prints the venv's path. Each
# requirements file gets its own stamp, so one benchmark's set-up does not
# reinstall the other's.
#   venv=$(scripts/bench-venv.sh bench/featurize/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=$1
venv=target/bench-venv
stamp="$venv/stamps/$(echo "$requirements" | tr '/' '_')"
if [[ ! -x "$venv/bin/python" ]] || ! cmp -s "$requirements" "$stamp"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$requirements" >&2
  mkdir -p "$venv/stamps"
  cp "$requirements" "$stamp"
fi
echo "$venv"
