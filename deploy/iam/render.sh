#!/usr/bin/env bash
# Fills the placeholders of the policies in this folder and prints them, ready for
# `aws iam create-policy` and `aws s3api put-bucket-policy` (see README.md).
#   deploy/iam/render.sh pipeline fruits-photos fruits-360 fruits-results runs
#   deploy/iam/render.sh bucket fruits-results
set -euo pipefail
here=$(dirname "$0")
case "${1:-}" in
  pipeline)
    [[ $# -eq 5 ]] || { echo "usage: $0 pipeline INPUT_BUCKET INPUT_PREFIX OUTPUT_BUCKET OUTPUT_PREFIX" >&2; exit 2; }
    sed -e "s|INPUT_BUCKET|$2|g" -e "s|INPUT_PREFIX|${3%/}|g" \
        -e "s|OUTPUT_BUCKET|$4|g" -e "s|OUTPUT_PREFIX|${5%/}|g" "$here/pipeline-policy.json" ;;
  bucket)
    [[ $# -eq 2 ]] || { echo "usage: $0 bucket BUCKET" >&2; exit 2; }
    sed -e "s|BUCKET|$2|g" "$here/bucket-policy.json" ;;
  *) echo "usage: $0 pipeline|bucket ..." >&2; exit 2 ;;
esac
