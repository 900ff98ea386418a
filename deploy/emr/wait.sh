#!/usr/bin/env bash
# Waits for a cluster's step to end, then fetches the step's logs from the cluster's
# LogUri into a local folder and says where they are.
#
#   deploy/emr/wait.sh j-XXXXXXXXXXXXX                     # the cluster's latest step
#   deploy/emr/wait.sh j-XXXXXXXXXXXXX --step-id s-XXXXXXXXXXXX --out DIR
#
# Options: --interval SECONDS between polls (30), --timeout SECONDS for the step (14400:
# 4 h), --logs-timeout SECONDS to wait for the logs after the step ended (600: EMR copies
# step logs to S3 every few minutes), --out DIR (target/emr/logs; the logs go to
# DIR/CLUSTER_ID/steps/STEP_ID/: controller.gz, stderr.gz, stdout.gz, syslog.gz).
# Exit status: 0 the step COMPLETED; 1 it FAILED, was CANCELLED or INTERRUPTED (the
# reason and the end of its stderr are printed); 2 usage; 3 timed out (still running).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

cluster=""
step=""
interval=30
timeout=14400
logs_timeout=600
out="$root/target/emr/logs"
number='^[0-9]+([.][0-9]+)?$'
while [[ $# -gt 0 ]]; do
  case "$1" in
    --step-id) step="${2:?--step-id needs an id}"; shift 2 ;;
    --interval) interval="${2:-}"; shift 2 ;;
    --timeout) timeout="${2:-}"; shift 2 ;;
    --logs-timeout) logs_timeout="${2:-}"; shift 2 ;;
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    j-*) [[ -z "$cluster" ]] || { echo "wait.sh: one cluster id only" >&2; exit 2; }; cluster="$1"; shift ;;
    *) echo "wait.sh: unexpected argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$cluster" ]] || { echo "usage: wait.sh CLUSTER_ID [--step-id ID] [--out DIR] (try --help)" >&2; exit 2; }
for v in "$interval" "$timeout" "$logs_timeout"; do
  [[ "$v" =~ $number ]] || { echo "wait.sh: '$v' is not a number of seconds" >&2; exit 2; }
done
timeout="${timeout%.*}"
logs_timeout="${logs_timeout%.*}"

if [[ -z "$step" ]]; then
  step="$(awsr emr list-steps --cluster-id "$cluster" --query 'Steps[0].Id' --output text)"
  [[ -n "$step" && "$step" != None ]] || die "cluster $cluster has no steps"
fi

started=$SECONDS
state=""
while :; do
  awsr emr describe-step --cluster-id "$cluster" --step-id "$step" --output json >"$_kit_tmp/step.json"
  now="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Step"]["Status"]["State"])' "$_kit_tmp/step.json")"
  if [[ "$now" != "$state" ]]; then
    log "step $step of $cluster: $now (after $((SECONDS - started)) s)"
    state="$now"
  fi
  case "$state" in
    COMPLETED|FAILED|CANCELLED|INTERRUPTED) break ;;
  esac
  if (( SECONDS - started >= timeout )); then
    log "step $step is still $state after ${timeout} s; giving up waiting (the cluster goes on:" \
        "deploy/emr/teardown.sh $cluster stops it)"
    exit 3
  fi
  sleep "$interval"
done

# What happened: the step's status (from the last poll) and the cluster's, from EMR.
awsr emr describe-cluster --cluster-id "$cluster" --output json >"$_kit_tmp/cluster.json"
python3 - "$_kit_tmp/step.json" "$_kit_tmp/cluster.json" >"$_kit_tmp/facts" <<'EOF'
import json, sys
step = json.load(open(sys.argv[1]))["Step"]
cluster = json.load(open(sys.argv[2]))["Cluster"]
status = step.get("Status") or {}
details = status.get("FailureDetails") or {}
why = (status.get("StateChangeReason") or {}).get("Message")
cstatus = cluster.get("Status") or {}
creason = cstatus.get("StateChangeReason") or {}
log_uri = cluster.get("LogUri") or ""
for scheme in ("s3n://", "s3a://"):        # EMR reports s3n://; the CLI wants s3://
    if log_uri.startswith(scheme):
        log_uri = "s3://" + log_uri[len(scheme):]
print("LOG_URI=" + log_uri)
lines = [f"step {step.get('Id')} ({step.get('Name')}): {status.get('State')}"]
if details:
    lines.append(f"  reason:   {details.get('Reason') or '-'}")
    lines.append(f"  message:  {details.get('Message') or '-'}")
    if details.get("LogFile"):
        lines.append(f"  log file: {details['LogFile']}")
if why:
    lines.append(f"  state change: {why}")
reason = ": ".join(str(creason[k]) for k in ("Code", "Message") if creason.get(k))
lines.append(f"cluster {cluster.get('Id')}: {cstatus.get('State')}" + (f" ({reason})" if reason else ""))
for line in lines:
    print("SAY=" + line)
EOF
log_uri="$(sed -n 's/^LOG_URI=//p' "$_kit_tmp/facts")"
log_uri="${log_uri%/}"
while IFS= read -r line; do log "$line"; done < <(sed -n 's/^SAY=//p' "$_kit_tmp/facts")

# The step's logs: EMR writes them to LOG_URI/CLUSTER/steps/STEP/ some minutes later.
logs="$out/$cluster/steps/$step"
if [[ -z "$log_uri" ]]; then
  log "the cluster has no LogUri: no step logs to fetch"
else
  src="$log_uri/$cluster/steps/$step/"
  mkdir -p "$logs"
  logs_started=$SECONDS
  while :; do
    awsr s3 cp --recursive --only-show-errors "$src" "$logs/"
    [[ ! -f "$logs/stderr.gz" ]] || break
    if (( SECONDS - logs_started >= logs_timeout )); then
      log "warning: no stderr.gz under $src after ${logs_timeout} s (fetched what there was)"
      break
    fi
    sleep "$interval"
  done
  # shellcheck disable=SC2012  # EMR's own file names
  log "logs of step $step: $logs/ (from $src): $(cd "$logs" && ls | tr '\n' ' ')"
fi

if [[ "$state" == COMPLETED ]]; then
  exit 0
fi
if [[ -f "$logs/stderr.gz" ]]; then
  log "last lines of $logs/stderr.gz:"
  gzip -dc "$logs/stderr.gz" | tail -n 30 >&2 || true
fi
log "the step did not complete; bootstrap logs, if it never started:" \
    "${log_uri:-s3://LOG_BUCKET/emr-logs}/$cluster/node/<instance-id>/bootstrap-actions/"
exit 1
