#!/usr/bin/env bash
# Deletes everything deploy.sh made: empties the stack's four buckets (photos,
# results, artifacts, logs: this erases the data), then deletes the stack, which
# removes the buckets, roles, VPC, repository (and its images), log groups and
# budget, and schedules the KMS key's deletion (7 days, AWS's minimum; cancel
# with `aws kms cancel-key-deletion` to read anything it encrypted). Refuses
# without --yes.
#
#   deploy/stack/delete.sh --yes
#
# Credentials: the standard AWS chain; region eu-west-3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../emr/lib.sh
source "$root/deploy/emr/lib.sh"
stack=fruits
yes=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --yes) yes=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ $yes == 1 ]] || die "this erases every photo and result in the stack's buckets: run again with --yes"
if ! awsr_or ValidationError cloudformation describe-stacks --stack-name "$stack" >/dev/null; then
  log "no stack $stack in $region: nothing to delete"
  exit 0
fi
# The stack's buckets, from its resources (outputs may be missing after a failed create).
awsr cloudformation list-stack-resources --stack-name "$stack" \
  --query "StackResourceSummaries[?ResourceType=='AWS::S3::Bucket'].PhysicalResourceId" --output text \
  | tr '\t' '\n' | grep -v '^None$' | grep . >"$_kit_tmp/buckets" || true
empty() {
  local b="$1"
  if awsr_or NoSuchBucket s3api head-bucket --bucket "$b" >/dev/null; then
    awsr s3 rm --recursive --only-show-errors "s3://$b/"
    log "bucket $b emptied"
  fi
}
mapfile -t buckets <"$_kit_tmp/buckets"
[[ ${#buckets[@]} -eq 0 ]] || run_all empty "${buckets[@]}"
log "deleting stack $stack"
awsr cloudformation delete-stack --stack-name "$stack"
awsr cloudformation wait stack-delete-complete --stack-name "$stack" \
  || die "stack $stack not deleted: aws cloudformation describe-stack-events --region $region --stack-name $stack"
log "stack $stack deleted; the KMS key is scheduled for deletion in 7 days"
