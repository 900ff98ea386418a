#!/usr/bin/env bash
# Undoes setup-account.sh (and stops clusters): safe to run again, and what is already
# gone is skipped.
#
#   deploy/emr/teardown.sh j-XXXXXXXXXXXXX                # terminate, then delete the IAM parts
#   deploy/emr/teardown.sh                                # IAM parts only
#   deploy/emr/teardown.sh --delete-buckets [CLUSTER_ID...] [--dir DIR]
#
# 1. Terminates the clusters given and waits until EMR reports them TERMINATED (or
#    TERMINATED_WITH_ERRORS); --timeout SECONDS (1800), --interval SECONDS (15). It stops
#    there if they are still up, or if another active cluster carries cluster.json's
#    name: the roles must outlive every cluster that uses them.
# 2. Deletes the instance profile and role fruits-emr-instance-profile (role removed
#    from the profile and policies detached first) and the policies fruits-pipeline and
#    fruits-emr-artifacts (older versions first); removes the inline policy
#    pass-fruits-instance-role from EMR_DefaultRole_V2, and deletes that role only if
#    setup-account.sh created it (tag created-by=fruits-setup-account) and no cluster
#    is active in eu-west-3 (other clusters may use EMR's default role name).
# 3. With --delete-buckets: empties and deletes the kit's buckets that setup-account.sh
#    created (same tag); buckets that existed before are left alone. This deletes the
#    photos, the results and the EMR logs in them.
# Names come from DIR/names.json (target/emr/ by default), written by render.sh. Like
# setup-account.sh, it reads the account's IAM details once
# (iam:GetAccountAuthorizationDetails) and deletes only what is there.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

dir="$root/target/emr"
clusters=()
delete_buckets=0
timeout=1800
interval=15
number='^[0-9]+$'
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir="${2:?--dir needs a folder}"; shift 2 ;;
    --delete-buckets) delete_buckets=1; shift ;;
    --timeout) timeout="${2:-}"; shift 2 ;;
    --interval) interval="${2:-}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    j-*) clusters+=("$1"); shift ;;
    *) echo "teardown.sh: unexpected argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$timeout" =~ $number && "$interval" =~ $number ]] || { echo "teardown.sh: --timeout and --interval take whole seconds" >&2; exit 2; }
load_names "$dir"

instance_role=fruits-emr-instance-profile
service_role=EMR_DefaultRole_V2
service_policy=arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2
cluster_name="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("Name", "fruits"))' "$dir/cluster.json" 2>/dev/null || echo fruits)"

# --- 1. clusters -------------------------------------------------------------------

active_clusters() {  # "ID NAME" per active cluster
  awsr emr list-clusters --active --query 'Clusters[].[Id,Name]' --output text
}
if [[ ${#clusters[@]} -gt 0 ]]; then
  if awsr_or InvalidRequestException,ValidationException emr terminate-clusters --cluster-ids "${clusters[@]}"; then
    log "termination requested: ${clusters[*]}"
  else
    for c in "${clusters[@]}"; do   # one of them is unknown: ask one by one
      if awsr_or InvalidRequestException,ValidationException emr terminate-clusters --cluster-ids "$c"; then
        log "cluster $c: termination requested"
      else
        log "cluster $c: not found ($aws_error), skipped"
      fi
    done
  fi
fi
started=$SECONDS
while :; do
  active="$(active_clusters)"
  left=()
  for c in ${clusters[@]+"${clusters[@]}"}; do
    if grep -q "^${c}[[:space:]]" <<<"$active"; then left+=("$c"); fi
  done
  [[ ${#left[@]} -gt 0 ]] || break
  if (( SECONDS - started >= timeout )); then
    die "still not terminated after ${timeout} s: ${left[*]} (termination protection on?); nothing deleted"
  fi
  sleep "$interval"
done
[[ ${#clusters[@]} -eq 0 ]] || log "terminated (no longer active): ${clusters[*]}"
others="$(awk -F '\t' -v n="$cluster_name" '$2 == n { print $1 }' <<<"$active" | tr '\n' ' ')"
if [[ -n "${others// /}" ]]; then
  die "active cluster(s) named $cluster_name still use the roles: $others- pass their ids to terminate them; nothing deleted"
fi

# --- 2. IAM --------------------------------------------------------------------------
# One read of the account's roles and customer managed policies tells what is left.

delete_policy() {  # delete_policy NAME: older versions first, as IAM requires
  local name="$1" key arn others v
  key="policy_${name//-/_}"
  arn="${key}_arn" others="${key}_others"
  arn="${!arn}" others="${!others}"
  if [[ -z "$arn" ]]; then
    log "policy $name: already gone"
    return 0
  fi
  for v in $others; do
    awsr_or NoSuchEntity iam delete-policy-version --policy-arn "$arn" --version-id "$v" || true
  done
  if awsr_or NoSuchEntity,DeleteConflict iam delete-policy --policy-arn "$arn"; then
    log "policy $name: deleted"
  elif [[ "$aws_error" == DeleteConflict ]]; then
    log "policy $name: still attached elsewhere (aws iam list-entities-for-policy --policy-arn $arn); kept"
    return 1
  fi
}

teardown_instance_role() {
  local arn failed=0 name
  if [[ "$instance_profile_roles" == *" $instance_role "* ]]; then
    awsr_or NoSuchEntity iam remove-role-from-instance-profile \
      --instance-profile-name "$instance_role" --role-name "$instance_role" || true
  fi
  # (an instance profile without its role does not show in the account details: just try)
  if awsr_or NoSuchEntity iam delete-instance-profile --instance-profile-name "$instance_role"; then
    log "instance profile $instance_role: deleted"
  else
    log "instance profile $instance_role: already gone"
  fi
  if [[ $instance_role_exists == 1 ]]; then
    for name in fruits-pipeline fruits-emr-artifacts; do
      arn="policy_${name//-/_}_arn"
      arn="${!arn}"
      if [[ -n "$arn" && "$instance_attached" == *" $arn "* ]]; then
        awsr_or NoSuchEntity iam detach-role-policy --role-name "$instance_role" --policy-arn "$arn" || true
      fi
    done
    if awsr_or NoSuchEntity,DeleteConflict iam delete-role --role-name "$instance_role"; then
      log "role $instance_role: deleted"
    elif [[ "$aws_error" == DeleteConflict ]]; then
      log "role $instance_role: other policies are attached to it; kept"
      failed=1
    fi
  else
    log "role $instance_role: already gone"
  fi
  for name in fruits-pipeline fruits-emr-artifacts; do
    delete_policy "$name" || failed=1
  done
  return "$failed"
}

teardown_service_role() {
  if [[ $service_role_exists == 0 ]]; then
    log "role $service_role: already gone"
    return 0
  fi
  if [[ $service_inline_exists == 1 ]]; then
    awsr_or NoSuchEntity iam delete-role-policy --role-name "$service_role" --policy-name pass-fruits-instance-role || true
    log "role $service_role: inline policy pass-fruits-instance-role deleted"
  fi
  if [[ $service_role_ours == 0 ]]; then
    log "role $service_role: kept (it was there before setup-account.sh)"
    return 0
  fi
  if [[ -n "${active//[[:space:]]/}" ]]; then   # EMR's default role name: other clusters may use it
    log "role $service_role: kept, other clusters are active: $(awk -F '\t' '{ printf "%s ", $1 }' <<<"$active")"
    return 0
  fi
  if [[ "$service_attached" == *" $service_policy "* ]]; then
    awsr_or NoSuchEntity iam detach-role-policy --role-name "$service_role" --policy-arn "$service_policy" || true
  fi
  if awsr_or NoSuchEntity,DeleteConflict iam delete-role --role-name "$service_role"; then
    log "role $service_role: deleted"
  elif [[ "$aws_error" == DeleteConflict ]]; then
    log "role $service_role: other policies are attached to it; kept"
    return 1
  fi
}

awsr iam get-account-authorization-details --filter Role LocalManagedPolicy --output json >"$_kit_tmp/iam.json"
iam_state="$(python3 "$here/iam_state.py" "$_kit_tmp/iam.json" \
  --policy fruits-pipeline= --policy fruits-emr-artifacts=)"
instance_role_exists=0 instance_attached=" " instance_profile_roles=" "
service_role_exists=0 service_role_ours=0 service_attached=" " service_inline_exists=0
eval "$iam_state"   # sets the variables above, and policy_<name>_{arn,others}

# --- 3. buckets ----------------------------------------------------------------------

teardown_bucket() {
  local b="$1" creator
  if ! awsr_or NoSuchBucket,NoSuchTagSet s3api get-bucket-tagging --bucket "$b" \
      --query "TagSet[?Key=='created-by'].Value" --output text >"$_kit_tmp/tags-$b"; then
    if [[ "$aws_error" == NoSuchBucket ]]; then
      log "bucket $b: already gone"
    else
      log "bucket $b: kept (not created by setup-account.sh)"
    fi
    return 0
  fi
  creator="$(cat "$_kit_tmp/tags-$b")"
  if [[ "$creator" != fruits-setup-account ]]; then
    log "bucket $b: kept (not created by setup-account.sh)"
    return 0
  fi
  awsr s3 rb "s3://$b" --force >/dev/null   # deletes the objects, then the bucket
  log "bucket $b: emptied and deleted"
}

task() { "${1%%:*}" "${1#*:}"; }
tasks=("teardown_instance_role:" "teardown_service_role:")
if [[ $delete_buckets == 1 ]]; then
  while IFS= read -r b; do tasks+=("teardown_bucket:$b"); done < <(kit_buckets)
fi
run_all task "${tasks[@]}"   # (not after `||` or in an `if`: that would switch set -e off in the tasks)
log "done"
