#!/usr/bin/env bash
# Fills the placeholders of the policies in this folder and prints them, ready for
# `aws iam create-policy` and `aws s3api put-bucket-policy` (see README.md).
#   deploy/iam/render.sh pipeline fruits-photos fruits-360 fruits-results runs
#   deploy/iam/render.sh bucket fruits-results
#   deploy/iam/render.sh sagemaker 123456789012 fruits-artifacts fruits/sagemaker fruits-photos fruits-360 fruits-results identified
#   deploy/iam/render.sh sagemaker-trust 123456789012
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
  sagemaker)
    [[ $# -eq 8 ]] || { echo "usage: $0 sagemaker ACCOUNT_ID MODEL_BUCKET MODEL_PREFIX INPUT_BUCKET INPUT_PREFIX OUTPUT_BUCKET OUTPUT_PREFIX" >&2; exit 2; }
    sed -e "s|ACCOUNT_ID|$2|g" -e "s|MODEL_BUCKET|$3|g" -e "s|MODEL_PREFIX|${4%/}|g" \
        -e "s|INPUT_BUCKET|$5|g" -e "s|INPUT_PREFIX|${6%/}|g" \
        -e "s|OUTPUT_BUCKET|$7|g" -e "s|OUTPUT_PREFIX|${8%/}|g" "$here/sagemaker-execution-policy.json" ;;
  sagemaker-trust)
    [[ $# -eq 2 ]] || { echo "usage: $0 sagemaker-trust ACCOUNT_ID" >&2; exit 2; }
    sed -e "s|ACCOUNT_ID|$2|g" "$here/sagemaker-trust.json" ;;
  *) echo "usage: $0 pipeline|bucket|sagemaker|sagemaker-trust ..." >&2; exit 2 ;;
esac
