#!/usr/bin/env bash
# Prepares the AWS account for the EMR kit, in eu-west-3, from the files render.sh
# wrote (target/emr/ by default). Idempotent: run it again after rendering for another
# prefix and it changes only what differs.
#
#   deploy/emr/setup-account.sh                      # uses target/emr/
#   deploy/emr/setup-account.sh --dir DIR --log-retention-days 90
#
# Buckets (photos, results, artifacts, logs; each distinct name once):
#   - created in eu-west-3 if missing (tagged created-by=fruits-setup-account, which
#     is what `teardown.sh --delete-buckets` looks for); an existing bucket must be in
#     eu-west-3 and yours;
#   - S3 Block Public Access, all four settings on; default encryption SSE-S3;
#   - lifecycle rule abort-incomplete-multipart-uploads (1 day), and on the log bucket
#     expire-emr-logs (emr-logs/, --log-retention-days, default 30; 0: no such rule);
#     rules of an existing bucket with other IDs are kept;
#   - bucket policy deploy/iam/bucket-policy.json (rendered by deploy/iam/render.sh):
#     deny requests without TLS. An existing bucket keeps the statements of its policy
#     that are not the kit's. The policies applied are kept as DIR/bucket-policy-BUCKET.json.
# IAM:
#   - role fruits-emr-instance-profile (trust: ec2-trust.json) with the managed policies
#     fruits-pipeline (DIR/pipeline-policy.json) and fruits-emr-artifacts
#     (DIR/artifacts-policy.json) attached; a changed document becomes the policy's new
#     default version (IAM keeps 5: the oldest other version is deleted first);
#   - instance profile fruits-emr-instance-profile holding that role;
#   - service role EMR_DefaultRole_V2 (trust: emr-service-trust.json; an existing one is
#     kept as it is) with AmazonEMRServicePolicy_v2 attached and the inline policy
#     pass-fruits-instance-role (service-role-passrole.json).
# What it creates is tagged project=fruits, created-by=fruits-setup-account. It reads the
# account's roles and customer managed policies once (iam:GetAccountAuthorizationDetails,
# in the IAMReadOnlyAccess policy) to find what is missing or different, so a second run
# only reads (and puts the public access block again).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

dir="$root/target/emr"
log_days=30
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) dir="${2:?--dir needs a folder}"; shift 2 ;;
    --log-retention-days) log_days="${2:?--log-retention-days needs a number}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "setup-account.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[[ "$log_days" =~ ^[0-9]+$ ]] || die "--log-retention-days must be a number of days, not '$log_days'"
load_names "$dir"
for f in ec2-trust.json emr-service-trust.json service-role-passrole.json pipeline-policy.json artifacts-policy.json; do
  [[ -f "$dir/$f" ]] || die "no $dir/$f: run deploy/emr/render.sh first"
done

instance_role=fruits-emr-instance-profile
service_role=EMR_DefaultRole_V2
service_policy=arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2

# --- buckets -----------------------------------------------------------------------

bucket_policy() {  # bucket_policy BUCKET > file: the rendered bucket policy
  "$root/deploy/iam/render.sh" bucket "$1"
}

merge_policy() {  # merge_policy OURS CURRENT OUT: the bucket's own statements + ours to OUT;
                  # prints "unchanged" when CURRENT (its policy now, may be empty) is that already
  python3 - "$1" "$2" "$3" "$root/deploy/iam/bucket-policy.json" <<'EOF'
import json, sys
ours = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read().strip()
current = json.loads(text) if text else None
# Statements with the kit's Sids are the kit's: replaced. Earlier versions of the kit
# also denied puts without an encryption header, which denies every part of a multipart
# upload (UploadPart sends no such header): those statements are the kit's too, removed.
kit = {s.get("Sid") for s in json.load(open(sys.argv[4]))["Statement"]}
kit |= {"DenyPutsWithoutEncryptionHeader", "DenyPutsWithOtherEncryption"}
others = [s for s in (current or {}).get("Statement", []) if s.get("Sid") not in kit]
merged = {**(current or {}), **ours, "Statement": others + ours["Statement"]}
with open(sys.argv[3], "w") as f:
    json.dump(merged, f, indent=2)
print("unchanged" if current == merged else "changed")
EOF
}

lifecycle() {  # lifecycle BUCKET CURRENT OUT: writes our rules + the bucket's others to OUT;
               # prints "unchanged" when CURRENT (get-bucket-lifecycle-configuration) has them all
  python3 - "$1" "$2" "$3" "$LOG_BUCKET" "$log_days" <<'EOF'
import json, sys
bucket, current, out, log_bucket, days = sys.argv[1:5] + [int(sys.argv[5])]
ours = [{"ID": "abort-incomplete-multipart-uploads", "Status": "Enabled", "Filter": {},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
if bucket == log_bucket and days > 0:
    ours.append({"ID": "expire-emr-logs", "Status": "Enabled", "Filter": {"Prefix": "emr-logs/"},
                 "Expiration": {"Days": days}})
text = open(current).read()
rules = json.loads(text).get("Rules", []) if text.strip() else []
ids = {r["ID"] for r in ours} | {"expire-emr-logs"}
wanted = [r for r in rules if r.get("ID") not in ids] + ours
with open(out, "w") as f:
    json.dump({"Rules": wanted}, f, indent=2)
key = lambda r: r.get("ID", "")
print("unchanged" if sorted(rules, key=key) == sorted(wanted, key=key) else "changed")
EOF
}

setup_bucket() {
  local b="$1" created=0 where existing
  existing="$_kit_tmp/lifecycle-$b.current.json"
  # (not in $(...): awsr_or must be able to stop the script on an unexpected error)
  if awsr_or NoSuchBucket s3api get-bucket-location --bucket "$b" --query LocationConstraint \
      --output text >"$_kit_tmp/location-$b"; then
    where="$(cat "$_kit_tmp/location-$b")"
    [[ "$where" != None ]] || where=us-east-1   # (GetBucketLocation's null)
    [[ "$where" == "$region" ]] || die "bucket $b exists in $where, not $region: pick another name (data must stay in $region)"
  else
    awsr s3api create-bucket --bucket "$b" --create-bucket-configuration "LocationConstraint=$region" >/dev/null
    awsr s3api put-bucket-tagging --bucket "$b" \
      --tagging 'TagSet=[{Key=project,Value=fruits},{Key=created-by,Value=fruits-setup-account}]'
    created=1
  fi
  awsr s3api put-public-access-block --bucket "$b" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  # Encryption at rest as the bucket's default (SSE-S3), whatever a writer asks for:
  # every object, multipart parts and EMR's log uploads included.
  awsr s3api put-bucket-encryption --bucket "$b" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}'
  : >"$existing"
  if [[ $created == 0 ]]; then
    awsr_or NoSuchLifecycleConfiguration s3api get-bucket-lifecycle-configuration --bucket "$b" \
      --output json >"$existing" || : >"$existing"
  fi
  lifecycle "$b" "$existing" "$_kit_tmp/lifecycle-$b.json" >"$_kit_tmp/lifecycle-$b.verdict"
  if [[ "$(cat "$_kit_tmp/lifecycle-$b.verdict")" != unchanged ]]; then
    awsr s3api put-bucket-lifecycle-configuration --bucket "$b" \
      --lifecycle-configuration "file://$_kit_tmp/lifecycle-$b.json" >/dev/null
  fi
  bucket_policy "$b" >"$_kit_tmp/kit-policy-$b.json"
  : >"$_kit_tmp/policy-$b.current"
  if [[ $created == 0 ]]; then
    awsr_or NoSuchBucketPolicy s3api get-bucket-policy --bucket "$b" --query Policy --output text \
      >"$_kit_tmp/policy-$b.current" || : >"$_kit_tmp/policy-$b.current"
  fi
  merge_policy "$_kit_tmp/kit-policy-$b.json" "$_kit_tmp/policy-$b.current" "$dir/bucket-policy-$b.json" \
    >"$_kit_tmp/policy-$b.verdict"
  if [[ "$(cat "$_kit_tmp/policy-$b.verdict")" != unchanged ]]; then
    awsr s3api put-bucket-policy --bucket "$b" --policy "file://$dir/bucket-policy-$b.json"
  fi
  log "bucket $b: $([[ $created == 1 ]] && echo created || echo exists) in $region, public access blocked;" \
      "lifecycle rules $(cat "$_kit_tmp/lifecycle-$b.verdict"); policy $(cat "$_kit_tmp/policy-$b.verdict")" \
      "($dir/bucket-policy-$b.json)"
}

# --- IAM ---------------------------------------------------------------------------
# One read of the account's roles and customer managed policies tells what exists and
# whether it matches the kit's files; then only the missing or different parts are
# written.

ensure_policy() {  # ensure_policy NAME FILE: create, or make FILE the default version;
                   # sets policy_arn (a global: no $(...), which would lose set -e)
  local name="$1" file="$2" key state versions oldest
  key="policy_${name//-/_}"
  state="${key}_state" policy_arn="${key}_arn" versions="${key}_versions" oldest="${key}_oldest"
  state="${!state}" policy_arn="${!policy_arn}" versions="${!versions}" oldest="${!oldest}"
  case "$state" in
    missing)
      awsr iam create-policy --policy-name "$name" --policy-document "file://$file" \
        --description "fruits EMR kit ($(basename "$file"))" --tags "${kit_tags_cli[@]}" \
        --query Policy.Arn --output text >"$_kit_tmp/arn-$name"
      policy_arn="$(cat "$_kit_tmp/arn-$name")"
      log "policy $name: created from $file" ;;
    same)
      log "policy $name: exists, same document" ;;
    *)
      # IAM keeps at most 5 versions of a policy: make room by deleting the oldest other one.
      if [[ "$versions" -ge 5 ]]; then
        awsr iam delete-policy-version --policy-arn "$policy_arn" --version-id "$oldest"
      fi
      awsr iam create-policy-version --policy-arn "$policy_arn" --policy-document "file://$file" \
        --set-as-default >/dev/null
      log "policy $name: new default version from $file" ;;
  esac
}

setup_instance_role() {
  local name file policy_arn
  if [[ $instance_role_exists == 0 ]]; then
    awsr iam create-role --role-name "$instance_role" --assume-role-policy-document "file://$dir/ec2-trust.json" \
      --description "fruits EMR nodes (deploy/emr)" --tags "${kit_tags_cli[@]}" >/dev/null
    log "role $instance_role: created"
  elif [[ $instance_trust_same == 0 ]]; then
    awsr iam update-assume-role-policy --role-name "$instance_role" --policy-document "file://$dir/ec2-trust.json"
    log "role $instance_role: exists, trust policy set from ec2-trust.json"
  else
    log "role $instance_role: exists"
  fi
  for name in fruits-pipeline fruits-emr-artifacts; do
    case "$name" in
      fruits-pipeline) file="$dir/pipeline-policy.json" ;;
      *) file="$dir/artifacts-policy.json" ;;
    esac
    ensure_policy "$name" "$file"
    if [[ "$instance_attached" != *" $policy_arn "* ]]; then
      awsr iam attach-role-policy --role-name "$instance_role" --policy-arn "$policy_arn"
      log "role $instance_role: $name attached"
    fi
  done
  case "$instance_profile_roles" in
    " $instance_role ") log "instance profile $instance_role: exists, holds role $instance_role" ;;
    " ")
      if awsr_or EntityAlreadyExists iam create-instance-profile --instance-profile-name "$instance_role" \
          --tags "${kit_tags_cli[@]}" >/dev/null; then
        log "instance profile $instance_role: created"
      fi
      if ! awsr_or LimitExceeded iam add-role-to-instance-profile --instance-profile-name "$instance_role" \
          --role-name "$instance_role"; then
        die "instance profile $instance_role holds another role: EMR needs the role of the same name in it"
      fi
      log "instance profile $instance_role: holds role $instance_role" ;;
    *) die "instance profile $instance_role holds role(s)$instance_profile_roles- EMR needs $instance_role there" ;;
  esac
}

setup_service_role() {
  if [[ $service_role_exists == 0 ]]; then
    awsr iam create-role --role-name "$service_role" \
      --assume-role-policy-document "file://$dir/emr-service-trust.json" \
      --description "EMR service role (fruits deploy/emr)" --tags "${kit_tags_cli[@]}" >/dev/null
    log "role $service_role: created"
  else
    log "role $service_role: exists$([[ $service_trust_same == 1 ]] || echo ' (its own trust policy is kept)')"
  fi
  if [[ "$service_attached" != *" $service_policy "* ]]; then
    awsr iam attach-role-policy --role-name "$service_role" --policy-arn "$service_policy"
    log "role $service_role: AmazonEMRServicePolicy_v2 attached"
  fi
  if [[ $service_inline_same == 0 ]]; then
    awsr iam put-role-policy --role-name "$service_role" --policy-name pass-fruits-instance-role \
      --policy-document "file://$dir/service-role-passrole.json"
    log "role $service_role: inline policy pass-fruits-instance-role set"
  fi
}

awsr iam get-account-authorization-details --filter Role LocalManagedPolicy --output json >"$_kit_tmp/iam.json"
iam_state="$(python3 "$here/iam_state.py" "$_kit_tmp/iam.json" --trust-instance "$dir/ec2-trust.json" \
  --trust-service "$dir/emr-service-trust.json" --inline "$dir/service-role-passrole.json" \
  --policy "fruits-pipeline=$dir/pipeline-policy.json" --policy "fruits-emr-artifacts=$dir/artifacts-policy.json")"
instance_role_exists=0 instance_trust_same=0 instance_attached=" " instance_profile_roles=" "
service_role_exists=0 service_trust_same=0 service_attached=" " service_inline_same=0
eval "$iam_state"   # sets the variables above, and policy_<name>_{arn,state,versions,oldest}

# Buckets and the two IAM chains are independent: set them up side by side.
task() { "${1%%:*}" "${1#*:}"; }
tasks=()
while IFS= read -r b; do tasks+=("setup_bucket:$b"); done < <(kit_buckets)
tasks+=("setup_instance_role:" "setup_service_role:")
run_all task "${tasks[@]}"   # (not after `||` or in an `if`: that would switch set -e off in the tasks)
log "done. Next: deploy/emr/upload.sh --dir $dir --photos DIR (IAM changes can take a few seconds to apply)"
