#!/usr/bin/env bash
# Prints a Python that can import aws_cdk: $FRUITS_STACK_PYTHON, else python3 if it
# has it, else the venv in ${XDG_CACHE_HOME:-~/.cache}/fruits/stack-venv, made from
# deploy/stack/requirements.txt when missing or out of date.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -n "${FRUITS_STACK_PYTHON:-}" ]]; then echo "$FRUITS_STACK_PYTHON"; exit 0; fi
if python3 -c 'import aws_cdk' 2>/dev/null; then command -v python3; exit 0; fi
venv="${XDG_CACHE_HOME:-$HOME/.cache}/fruits/stack-venv"
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
echo "$venv/bin/python"
