#!/usr/bin/env bash
# Deletes everything fruits made in the account, in the order AWS accepts:
# 1. the SageMaker endpoints deploy.py made, `fruits` and `fruits-*` (their
#    autoscaling first), and its endpoint configurations and models (names
#    starting with fruits-);
# 2. EMR clusters still active with the tag project=fruits (terminated, waited for);
# 3. the stack's four buckets emptied (photos, results, artifacts, logs: this
#    erases the data);
# 4. the stack: buckets, roles, VPC, repository and its images, log groups,
#    budget; the KMS key scheduled for deletion (7 days, AWS's minimum; cancel
#    with `aws kms cancel-key-deletion` to read anything it encrypted).
# Refuses without --yes. Safe to run again: what is gone is skipped.
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
# 1. Endpoints bill by the hour: first. deploy.py's are named fruits or fruits-*
#    (a real-time and an asynchronous endpoint need two names).
for endpoint in $(awsr sagemaker list-endpoints --name-contains fruits --query 'Endpoints[].EndpointName' --output text); do
  [[ $endpoint == fruits || $endpoint == fruits-* ]] || continue
  resource="endpoint/$endpoint/variant/AllTraffic"
  # deploy.py's SCALING_POLICIES and BACKLOG_ALARM.
  for policy in invocations backlog from-zero; do
    awsr_or ObjectNotFoundException,ValidationException application-autoscaling delete-scaling-policy \
      --service-namespace sagemaker --resource-id "$resource" --scalable-dimension sagemaker:variant:DesiredInstanceCount \
      --policy-name "$endpoint-$policy" || true
  done
  awsr_or ObjectNotFoundException,ValidationException application-autoscaling deregister-scalable-target \
    --service-namespace sagemaker --resource-id "$resource" --scalable-dimension sagemaker:variant:DesiredInstanceCount || true
  awsr cloudwatch delete-alarms --alarm-names "$endpoint-has-backlog-without-capacity"
  awsr sagemaker delete-endpoint --endpoint-name "$endpoint"
  awsr sagemaker wait endpoint-deleted --endpoint-name "$endpoint"
  log "endpoint $endpoint deleted"
done
endpoint=fruits
for config in $(awsr sagemaker list-endpoint-configs --name-contains "$endpoint-" \
                  --query 'EndpointConfigs[].EndpointConfigName' --output text); do
  [[ $config == "$endpoint"-* ]] || continue
  awsr sagemaker delete-endpoint-config --endpoint-config-name "$config"
  log "endpoint configuration $config deleted"
done
for model in $(awsr sagemaker list-models --name-contains "$endpoint-" --query 'Models[].ModelName' --output text); do
  [[ $model == "$endpoint"-* ]] || continue
  awsr sagemaker delete-model --model-name "$model"
  log "model $model deleted"
done
# 2. Clusters use the roles and the subnets: terminated before the stack goes.
clusters=()
for c in $(awsr emr list-clusters --active --query 'Clusters[].Id' --output text); do
  project="$(awsr emr describe-cluster --cluster-id "$c" --query "Cluster.Tags[?Key=='project'].Value | [0]" --output text)"
  [[ $project == fruits ]] && clusters+=("$c")
done
if [[ ${#clusters[@]} -gt 0 ]]; then
  awsr emr terminate-clusters --cluster-ids "${clusters[@]}"
  for c in "${clusters[@]}"; do awsr emr wait cluster-terminated --cluster-id "$c"; done
  log "EMR clusters terminated: ${clusters[*]}"
fi
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
