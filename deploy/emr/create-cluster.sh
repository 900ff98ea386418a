#!/usr/bin/env bash
# Starts the EMR cluster described by a rendered cluster.json, in eu-west-3 only.
#
#   deploy/emr/create-cluster.sh target/emr/cluster.json target/emr/step.json   # run the step, then terminate
#   deploy/emr/create-cluster.sh --keep-alive target/emr/cluster.json           # stays up for add-steps;
#                                                                               # ends after 1 h idle
#   deploy/emr/create-cluster.sh --dry-run target/emr/cluster.json target/emr/step.json
#
# cluster.json has the shape of the EMR RunJobFlow request (what boto3's run_job_flow
# and Airflow's job_flow_overrides take). `aws emr create-cluster` is a hand-written
# AWS CLI command with its own options and no --cli-input-json, and `aws emr
# run-job-flow` is removed from the CLI, so this script turns the document into
# create-cluster options. step.json has the shape of `aws emr create-cluster|add-steps
# --steps`. --dry-run prints the command instead of running it. Prints the cluster id.
# AWS_ENDPOINT_URL_EMR or AWS_ENDPOINT_URL, when set, is passed as --endpoint-url (AWS
# CLI v1 ignores both for `aws emr`); tests/cloud points them at a local moto server.
set -euo pipefail
region=eu-west-3   # data residency: the kit starts clusters in Paris only

dry_run=0
keep_alive=0
files=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) dry_run=1; shift ;;
    --keep-alive) keep_alive=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "create-cluster.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
[[ ${#files[@]} -ge 1 && ${#files[@]} -le 2 ]] || { echo "usage: $0 [--dry-run] [--keep-alive] CLUSTER_JSON [STEP_JSON]" >&2; exit 2; }
cluster_json="${files[0]}"
step_json="${files[1]:-}"
if [[ $keep_alive == 0 && -z "$step_json" ]]; then
  echo "create-cluster.sh: cluster.json terminates the cluster when it has no steps left;" \
       "give STEP_JSON, or --keep-alive to add steps later" >&2
  exit 2
fi

args=()
while IFS= read -r -d '' arg; do args+=("$arg"); done < <(
  python3 - "$cluster_json" "$step_json" "$keep_alive" <<'EOF'
import json, re, sys

cluster_path, step_path, keep_alive = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
placeholders = re.compile(r"\b(ARTIFACT_BUCKET|LOG_BUCKET|INPUT_BUCKET|INPUT_PREFIX|OUTPUT_BUCKET|OUTPUT_PREFIX|SUBNET_ID|WHEEL_NAME|STEP_TIMEOUT)\b")

def load(path):
    with open(path) as f:
        text = f.read()
    left = sorted(set(placeholders.findall(text)))
    if left:
        sys.exit(f"create-cluster.sh: {path} still has placeholders {left}: use the files deploy/emr/render.sh wrote")
    return json.loads(text)

doc = dict(load(cluster_path))
args = []
def opt(name, value=None):
    args.append("--" + name)
    if value is not None:
        args.append(value if isinstance(value, str) else json.dumps(value))

def take(d, key, name, convert=lambda v: v):
    if key in d:
        opt(name, convert(d.pop(key)))

take(doc, "Name", "name")
take(doc, "ReleaseLabel", "release-label")
take(doc, "LogUri", "log-uri")
take(doc, "ServiceRole", "service-role")
take(doc, "SecurityConfiguration", "security-configuration")
take(doc, "ScaleDownBehavior", "scale-down-behavior")
take(doc, "StepConcurrencyLevel", "step-concurrency-level", str)
take(doc, "EbsRootVolumeSize", "ebs-root-volume-size", str)
take(doc, "Applications", "applications")
take(doc, "ManagedScalingPolicy", "managed-scaling-policy")
take(doc, "AutoTerminationPolicy", "auto-termination-policy")
take(doc, "Configurations", "configurations")
if "VisibleToAllUsers" in doc:
    opt("visible-to-all-users" if doc.pop("VisibleToAllUsers") else "no-visible-to-all-users")
if "Tags" in doc:
    opt("tags")
    args.extend(f"{t['Key']}={t.get('Value', '')}" for t in doc.pop("Tags"))
if "BootstrapActions" in doc:
    opt("bootstrap-actions", [
        {"Name": a.get("Name", "Bootstrap action"), "Path": a["ScriptBootstrapAction"]["Path"],
         "Args": a["ScriptBootstrapAction"].get("Args", [])}
        for a in doc.pop("BootstrapActions")])

instances = dict(doc.pop("Instances", {}))
ec2 = {}
if "JobFlowRole" in doc:
    ec2["InstanceProfile"] = doc.pop("JobFlowRole")
for key, name in (("Ec2SubnetId", "SubnetId"), ("Ec2KeyName", "KeyName"),
                  ("EmrManagedMasterSecurityGroup", "EmrManagedMasterSecurityGroup"),
                  ("EmrManagedSlaveSecurityGroup", "EmrManagedSlaveSecurityGroup"),
                  ("ServiceAccessSecurityGroup", "ServiceAccessSecurityGroup"),
                  ("AdditionalMasterSecurityGroups", "AdditionalMasterSecurityGroups"),
                  ("AdditionalSlaveSecurityGroups", "AdditionalSlaveSecurityGroups")):
    if key in instances:
        ec2[name] = instances.pop(key)
if ec2:
    opt("ec2-attributes", ec2)
groups = []
for g in instances.pop("InstanceGroups", []):
    g = dict(g)
    group = {"Name": g.pop("Name", g["InstanceRole"]), "InstanceGroupType": g.pop("InstanceRole"),
             "InstanceType": g.pop("InstanceType"), "InstanceCount": g.pop("InstanceCount")}
    market = g.pop("Market", "ON_DEMAND")
    bid = g.pop("BidPrice", None)
    if market == "SPOT":
        group["BidPrice"] = bid or "OnDemandPrice"
    elif market != "ON_DEMAND" or bid is not None:
        sys.exit(f"create-cluster.sh: instance group {group['Name']}: Market {market!r} with BidPrice {bid!r} is not supported")
    for key in ("EbsConfiguration", "Configurations", "CustomAmiId"):
        if key in g:
            group[key] = g.pop(key)
    if g:
        sys.exit(f"create-cluster.sh: instance group {group['Name']}: unsupported keys {sorted(g)}")
    groups.append(group)
if groups:
    opt("instance-groups", groups)
keep = instances.pop("KeepJobFlowAliveWhenNoSteps", False) or keep_alive
opt("no-auto-terminate" if keep else "auto-terminate")
if keep_alive and "--auto-termination-policy" not in args:
    opt("auto-termination-policy", {"IdleTimeout": 3600})
if "TerminationProtected" in instances:
    opt("termination-protected" if instances.pop("TerminationProtected") else "no-termination-protected")
if instances:
    sys.exit(f"create-cluster.sh: Instances keys not supported here: {sorted(instances)}")
if doc:
    sys.exit(f"create-cluster.sh: keys not supported here: {sorted(doc)} (add them to create-cluster.sh)")
if step_path:
    steps = load(step_path)
    if not isinstance(steps, list):
        sys.exit(f"create-cluster.sh: {step_path} must be a list of steps (the --steps format)")
    opt("steps", steps)
sys.stdout.write("".join(a + "\0" for a in args))
EOF
)
[[ ${#args[@]} -gt 0 ]] || { echo "create-cluster.sh: could not read $cluster_json" >&2; exit 1; }

endpoint="${AWS_ENDPOINT_URL_EMR:-${AWS_ENDPOINT_URL:-}}"
cmd=(aws)
if [[ -n "$endpoint" ]]; then cmd+=(--endpoint-url "$endpoint"); fi
start=${#cmd[@]}
cmd+=(emr create-cluster --region "$region" "${args[@]}" --query ClusterId --output text)
if [[ $dry_run == 1 ]]; then
  quote() { if [[ "$1" =~ ^[A-Za-z0-9_./:=,@+-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi; }
  line="aws${endpoint:+ --endpoint-url $(quote "$endpoint")} emr create-cluster"
  for arg in "${cmd[@]:$((start + 2))}"; do
    if [[ "$arg" == --* ]]; then printf '%s \\\n' "$line"; line="  $arg"; else line+=" $(quote "$arg")"; fi
  done
  printf '%s\n' "$line"
  exit 0
fi
command -v aws >/dev/null || { echo "create-cluster.sh: the aws CLI is not installed" >&2; exit 1; }

# Before launching: the network EMR needs, checked with a clear message instead of
# a cluster that fails after minutes of billing. AmazonEMRServicePolicy_v2 lets EMR
# create its security groups and instances only in a VPC and subnet tagged
# for-use-with-amazon-emr-managed-policies=true, and the nodes must reach S3 (the
# wheel, the photos, the results): an S3 gateway endpoint on the subnet's route
# table, or a default route to an internet or NAT gateway.
ec2_endpoint="${AWS_ENDPOINT_URL_EC2:-${AWS_ENDPOINT_URL:-}}"
ec2() { aws ${ec2_endpoint:+--endpoint-url "$ec2_endpoint"} --region "$region" ec2 "$@" --output json; }
net="$(mktemp -d "${TMPDIR:-/tmp}/fruits-net.XXXXXX")"
trap 'rm -rf "$net"' EXIT
subnet="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Instances"]["Ec2SubnetId"])' "$cluster_json")"
ec2 describe-subnets --subnet-ids "$subnet" >"$net/subnets.json" 2>"$net/err" \
  || { echo "create-cluster.sh: subnet $subnet not found in $region (deploy/stack/deploy.sh makes two: its output SubnetIds)" >&2; exit 1; }
vpc="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["Subnets"][0]["VpcId"])' <"$net/subnets.json")"
ec2 describe-vpcs --vpc-ids "$vpc" >"$net/vpcs.json"
ec2 describe-route-tables --filters "Name=association.subnet-id,Values=$subnet" >"$net/own.json"
ec2 describe-route-tables --filters "Name=vpc-id,Values=$vpc" "Name=association.main,Values=true" >"$net/main.json"
ec2 describe-vpc-endpoints --filters "Name=vpc-id,Values=$vpc" "Name=service-name,Values=com.amazonaws.$region.s3" \
  >"$net/endpoints.json"
python3 - "$net" <<'EOF' || exit 1
import json, os, sys
net = sys.argv[1]
read = lambda name: json.load(open(os.path.join(net, name)))
subnet, vpc = read("subnets.json")["Subnets"][0], read("vpcs.json")["Vpcs"][0]
# A subnet without a route table of its own uses the VPC's main one.
tables = read("own.json")["RouteTables"] or read("main.json")["RouteTables"]
table_ids = {t["RouteTableId"] for t in tables}
gateways = [e for e in read("endpoints.json")["VpcEndpoints"]
            if e.get("VpcEndpointType", "Gateway") == "Gateway" and e.get("State", "available").lower() == "available"]
tag = "for-use-with-amazon-emr-managed-policies"
problems = []
for kind, resource, rid in (("VPC", vpc, vpc["VpcId"]), ("subnet", subnet, subnet["SubnetId"])):
    if {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(tag) != "true":
        problems.append(f"the {kind} {rid} lacks the tag {tag}=true, without which AmazonEMRServicePolicy_v2 "
                        "refuses to create EMR's security groups and instances there (deploy/stack tags its own; "
                        f"or: aws ec2 create-tags --region eu-west-3 --resources {rid} --tags Key={tag},Value=true)")
to_s3 = any(table_ids & set(e.get("RouteTableIds", [])) for e in gateways)
routes = [r for t in tables for r in t.get("Routes", [])]
out = any(r.get("DestinationCidrBlock") == "0.0.0.0/0"
          and (r.get("NatGatewayId") or str(r.get("GatewayId", "")).startswith("igw-")) for r in routes)
if not (to_s3 or out):
    problems.append(f"the subnet {subnet['SubnetId']} has no route to S3, where the nodes read the wheel, the model "
                    "and the photos: add an S3 gateway endpoint on its route table (free; deploy/stack has one) "
                    "or a NAT gateway")
if problems:
    sys.exit("create-cluster.sh: " + "\ncreate-cluster.sh: ".join(problems))
EOF
echo "network: subnet $subnet of $vpc is tagged for EMR and reaches S3" >&2
cluster_id="$("${cmd[@]}")"
echo "cluster $cluster_id starting in $region" >&2
echo "  aws emr describe-cluster --region $region --cluster-id $cluster_id --query Cluster.Status" >&2
echo "  deploy/emr/wait.sh $cluster_id     # waits for the step, then fetches its logs" >&2
echo "$cluster_id"
