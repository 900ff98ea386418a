# Shared by setup-account.sh, upload.sh, wait.sh and teardown.sh (sourced, not run).
#
# - Every AWS call goes through `awsr`: always --region eu-west-3 (data residency),
#   and --endpoint-url when AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3 / _IAM / _EMR /
#   _STS for that service) is set. AWS CLI v2 reads those variables itself; v1 ignores
#   them for `aws emr`, so the scripts pass them on explicitly. Use them for
#   S3-compatible or test endpoints (tests/cloud runs the kit against a local moto
#   server this way); leave them unset for AWS.
# - `load_names DIR` reads the names render.sh wrote to DIR/names.json.

# shellcheck shell=bash
# $(...) keeps set -e (bash >= 4.4; older bash has no such option)
shopt -s inherit_errexit 2>/dev/null || true
region=eu-west-3
prog="$(basename "$0" .sh)"
# shellcheck disable=SC2034,SC2054  # used by the scripts that source this; commas are CLI shorthand
kit_tags_cli=(Key=project,Value=fruits Key=created-by,Value=fruits-setup-account)

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$prog" "$*" >&2; exit 1; }

_kit_tmp="$(mktemp -d "${TMPDIR:-/tmp}/fruits-emr.XXXXXX")"
trap 'rm -rf "$_kit_tmp"' EXIT

# The endpoint for one CLI service name (s3, s3api, iam, emr, sts), or nothing.
endpoint_for() {
  local var=""
  case "$1" in
    s3|s3api) var=AWS_ENDPOINT_URL_S3 ;;
    iam) var=AWS_ENDPOINT_URL_IAM ;;
    emr) var=AWS_ENDPOINT_URL_EMR ;;
    sts) var=AWS_ENDPOINT_URL_STS ;;
  esac
  local ep=""
  [[ -z "$var" ]] || ep="${!var:-}"
  printf '%s' "${ep:-${AWS_ENDPOINT_URL:-}}"
}

# awsr SERVICE ARGS...: the aws CLI in eu-west-3, on the configured endpoint if any.
awsr() {
  local ep
  ep="$(endpoint_for "$1")"
  if [[ -n "$ep" ]]; then
    aws --endpoint-url "$ep" --region "$region" "$@"
  else
    aws --region "$region" "$@"
  fi
}

# awsr_or CODES SERVICE ARGS...: like awsr, but a failure with one of the AWS error
# codes in CODES (comma-separated, e.g. NoSuchEntity,EntityAlreadyExists) returns 1
# quietly and leaves the code in $aws_error. Any other failure prints the CLI's
# message and exits.
aws_error=""
awsr_or() {
  local codes=",$1,"
  shift
  local errf rc code
  errf="$(mktemp "$_kit_tmp/err.XXXXXX")"
  awsr "$@" 2>"$errf" && { rm -f "$errf"; return 0; }
  rc=$?
  code="$(sed -n 's/.*An error occurred (\([^)]*\)).*/\1/p' "$errf" | head -n 1)"
  if [[ -n "$code" && "$codes" == *",$code,"* ]]; then
    # shellcheck disable=SC2034  # read by the callers
    aws_error="$code"
    rm -f "$errf"
    return 1
  fi
  cat "$errf" >&2
  rm -f "$errf"
  die "aws $1 $2 failed (exit $rc)"
}

# run_all FUNCTION ARG...: runs FUNCTION ARG in the background for every ARG, waits for
# all of them, and stops the script if any failed (independent resources are handled
# side by side: each aws CLI call costs about half a second of start-up). Call it as a
# plain command: after `||` or in an `if`, bash would run the tasks without set -e.
run_all() {
  local fn="$1" pids=() p failed=0 arg
  shift
  for arg in "$@"; do
    "$fn" "$arg" &
    pids+=("$!")
  done
  for p in "${pids[@]}"; do
    wait "$p" || failed=1
  done
  [[ $failed == 0 ]] || die "not everything went through (see the messages above); it is safe to run this again"
}

# load_names DIR: sets ARTIFACT_BUCKET LOG_BUCKET INPUT_BUCKET INPUT_PREFIX
# OUTPUT_BUCKET OUTPUT_PREFIX SUBNET_ID WHEEL WHEEL_NAME WHEELHOUSE ARCH RELEASE_LABEL
# from DIR/names.json (render.sh checked them when it wrote the file).
load_names() {
  local file="$1/names.json" assignments
  [[ -f "$file" ]] || die "no $file: run deploy/emr/render.sh first (or pass --dir with the folder it wrote)"
  assignments="$(python3 - "$file" <<'EOF'
import json, shlex, sys
known = ("ARTIFACT_BUCKET", "LOG_BUCKET", "INPUT_BUCKET", "INPUT_PREFIX", "OUTPUT_BUCKET",
         "OUTPUT_PREFIX", "SUBNET_ID", "WHEEL", "WHEEL_NAME", "WHEELHOUSE", "ARCH", "RELEASE_LABEL")
names = json.load(open(sys.argv[1]))
missing = [k for k in known if k not in names]
if missing:
    sys.exit(f"{sys.argv[1]} lacks {missing}: render again with deploy/emr/render.sh")
print("\n".join(f"{k}={shlex.quote(str(names[k]))}" for k in known))
EOF
)" || die "cannot read $file"
  eval "$assignments"
}

# The distinct buckets of the kit, one per line: photos, results, artifacts, logs.
kit_buckets() {
  printf '%s\n' "$INPUT_BUCKET" "$OUTPUT_BUCKET" "$ARTIFACT_BUCKET" "$LOG_BUCKET" | awk '!seen[$0]++'
}
