#!/usr/bin/env bash
# Deploys (creates or updates) the fruits stack in eu-west-3: one command for
# everything the EMR and SageMaker kits need. Then uploads the EMR in-transit TLS
# certificates the stack's security configuration points at (made once with
# openssl; kept as they are on later runs), and writes the stack's outputs to
# OUT/outputs.json (and prints them), where the kits read the names.
#
#   deploy/stack/deploy.sh --email ops@example.com [--budget 300] [--out target/stack]
#                          [-c kms_buckets=true] [-c audit=true] [-c photo_days=365] ...
#
# Needs the AWS CLI, Python 3 with deploy/stack/requirements.txt (AWS CDK; a venv
# is made in ${XDG_CACHE_HOME:-~/.cache}/fruits/stack-venv when `aws_cdk` cannot
# be imported) and Node.js 18+. No `cdk bootstrap`: the template is deployed with
# CloudFormation directly. Credentials: the standard AWS chain. Delete it all with
# deploy/stack/delete.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../emr/lib.sh
source "$root/deploy/emr/lib.sh"
stack=fruits
email=""
budget=300
out="$root/target/stack"
context=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --email) email="${2:?--email needs an address}"; shift 2 ;;
    --budget) budget="${2:?--budget needs USD}"; shift 2 ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    -c) context+=(-c "${2:?-c needs KEY=VALUE}"); shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ -n "$email" ]] || die "--email is required: AWS Budgets mails it when the month's cost nears --budget"

python="$("$here/python.sh")"
log "synthesising the template into $out"
"$python" "$here/app.py" --out "$out" "${context[@]}" >/dev/null
template="$out/Fruits.template.json"
stack_args=(--stack-name "$stack" --template-body "file://$template" --capabilities CAPABILITY_NAMED_IAM
            --parameters "ParameterKey=AlertEmail,ParameterValue=$email" "ParameterKey=BudgetUsd,ParameterValue=$budget"
            --tags Key=project,Value=fruits)
if awsr_or ValidationError cloudformation describe-stacks --stack-name "$stack" >/dev/null; then
  log "updating stack $stack in $region"
  # update-stack says "No updates are to be performed" (a ValidationError) when nothing changed.
  if awsr cloudformation update-stack "${stack_args[@]}" >/dev/null 2>"$_kit_tmp/update.err"; then
    awsr cloudformation wait stack-update-complete --stack-name "$stack"
  elif grep -q "No updates are to be performed" "$_kit_tmp/update.err"; then
    log "stack $stack is up to date"
  else
    cat "$_kit_tmp/update.err" >&2
    die "update-stack failed"
  fi
else
  log "creating stack $stack in $region (a few minutes: the KMS endpoint and the VPC are the slow parts)"
  awsr cloudformation create-stack "${stack_args[@]}" >/dev/null
  awsr cloudformation wait stack-create-complete --stack-name "$stack" \
    || die "stack $stack was not created: aws cloudformation describe-stack-events --region $region --stack-name $stack"
fi
awsr cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].Outputs' --output json \
  | python3 -c 'import json, sys; print(json.dumps({o["OutputKey"]: o["OutputValue"] for o in json.load(sys.stdin)}, indent=2))' \
  >"$out/outputs.json"

# EMR's in-transit encryption reads PEM certificates from S3 (a zip of
# privateKey.pem, certificateChain.pem, trustedCertificates.pem). Self-signed for
# the region's internal host names: the nodes only talk to each other.
certs="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["TlsCertificates"])' "$out/outputs.json")"
bucket="${certs#s3://}"; key="${bucket#*/}"; bucket="${bucket%%/*}"
if awsr_or 404,NoSuchKey,NotFound s3api head-object --bucket "$bucket" --key "$key" >/dev/null; then
  log "TLS certificates already at $certs"
else
  tls="$_kit_tmp/tls"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=*.$region.compute.internal" \
    -addext "subjectAltName=DNS:*.$region.compute.internal" \
    -keyout "$tls/privateKey.pem" -out "$tls/certificateChain.pem" 2>/dev/null
  cp "$tls/certificateChain.pem" "$tls/trustedCertificates.pem"
  (cd "$tls" && python3 -m zipfile -c certificates.zip privateKey.pem certificateChain.pem trustedCertificates.pem)
  awsr s3api put-object --bucket "$bucket" --key "$key" --body "$tls/certificates.zip" >/dev/null
  log "TLS certificates uploaded to $certs"
fi
log "outputs in $out/outputs.json"
cat "$out/outputs.json"
