#!/usr/bin/env bash
# Fills the CAPITAL placeholders of the EMR kit and writes the results to one folder
# (target/emr/ by default), ready for create-cluster.sh, `aws emr add-steps` and
# `aws iam`. Values come from NAME=VALUE arguments, else from environment variables.
#
#   deploy/emr/render.sh ARTIFACT_BUCKET=fruits-artifacts LOG_BUCKET=fruits-artifacts \
#     INPUT_BUCKET=fruits-photos INPUT_PREFIX=fruits-360 \
#     OUTPUT_BUCKET=fruits-results OUTPUT_PREFIX=runs/2026-11 \
#     SUBNET_ID=subnet-0123456789abcdef0 WHEEL=target/wheels/fruits-0.1.0-cp311-abi3-manylinux_2_28_x86_64.whl
#
# Required: ARTIFACT_BUCKET LOG_BUCKET INPUT_BUCKET INPUT_PREFIX OUTPUT_BUCKET
#           OUTPUT_PREFIX SUBNET_ID WHEEL (the wheel's path or file name)
# Optional: RELEASE_LABEL (emr-7.13.0), WHEELHOUSE (1, the default: nodes install
#           the versions pinned in node-requirements.txt from
#           s3://ARTIFACT_BUCKET/fruits/wheelhouse-<arch>/, no PyPI; 0: from PyPI,
#           which needs a NAT or internet route and pins nothing), STEP_TIMEOUT
#           (4h: the step is stopped after it, and the transient cluster then
#           terminates), SECURITY_CONFIGURATION and SERVICE_ROLE (the stack's
#           outputs EmrSecurityConfiguration and EmrServiceRole; default none and
#           EMR_DefaultRole_V2), --out DIR.
# The wheel's architecture picks the instance types: x86_64 keeps m6i, aarch64
# (Graviton) turns m6i/m7i/c6i/c7i/r6i/r7i into m7g/c7g/r7g.
#
# With the stack (deploy/stack): --from-stack target/stack/outputs.json fills every
# name but WHEEL from its outputs (buckets, prefixes, the first subnet, the security
# configuration and service role); NAME=VALUE arguments still win.
#
# Writes: cluster.json step.json artifacts-policy.json pipeline-policy.json
#         (deploy/iam/render.sh pipeline ...) ec2-trust.json emr-service-trust.json
#         service-role-passrole.json, and names.json (the names above, read by
#         setup-account.sh, upload.sh and teardown.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/target/emr"

names=(ARTIFACT_BUCKET LOG_BUCKET INPUT_BUCKET INPUT_PREFIX OUTPUT_BUCKET OUTPUT_PREFIX SUBNET_ID WHEEL RELEASE_LABEL WHEELHOUSE STEP_TIMEOUT SECURITY_CONFIGURATION SERVICE_ROLE)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="${2:?--out needs a folder}"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    --from-stack) from_stack="${2:?--from-stack needs the outputs.json of the stack}"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *=*)
      name="${1%%=*}"
      [[ " ${names[*]} " == *" $name "* ]] || { echo "render.sh: unknown name '$name' (known: ${names[*]})" >&2; exit 2; }
      export "$name=${1#*=}"; shift ;;
    *) echo "render.sh: expected NAME=VALUE or --out DIR, got '$1' (try --help)" >&2; exit 2 ;;
  esac
done
if [[ -n "${from_stack:-}" ]]; then
  # The stack's outputs (deploy/stack/deploy.sh wrote them) fill every name not given.
  eval "$(python3 - "$from_stack" <<'EOF'
import json, os, shlex, sys
o = json.load(open(sys.argv[1]))
names = {"ARTIFACT_BUCKET": o["ArtifactsBucket"], "LOG_BUCKET": o["LogsBucket"], "INPUT_BUCKET": o["PhotosBucket"],
         "INPUT_PREFIX": o["InputPrefix"], "OUTPUT_BUCKET": o["ResultsBucket"], "OUTPUT_PREFIX": o["OutputPrefix"],
         "SUBNET_ID": o["SubnetIds"].split(",")[0], "SECURITY_CONFIGURATION": o["EmrSecurityConfiguration"],
         "SERVICE_ROLE": o["EmrServiceRole"]}
for name, value in names.items():
    if not os.environ.get(name):
        print(f"export {name}={shlex.quote(value)}")
EOF
)"
fi
missing=()
for name in ARTIFACT_BUCKET LOG_BUCKET INPUT_BUCKET INPUT_PREFIX OUTPUT_BUCKET OUTPUT_PREFIX SUBNET_ID WHEEL; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "render.sh: missing ${missing[*]} (as NAME=VALUE arguments or environment variables; try --help)" >&2
  exit 2
fi
export RELEASE_LABEL="${RELEASE_LABEL:-emr-7.13.0}" WHEELHOUSE="${WHEELHOUSE:-1}" STEP_TIMEOUT="${STEP_TIMEOUT:-4h}"
export SECURITY_CONFIGURATION="${SECURITY_CONFIGURATION:-}" SERVICE_ROLE="${SERVICE_ROLE:-EMR_DefaultRole_V2}"
export INPUT_PREFIX="${INPUT_PREFIX%/}" OUTPUT_PREFIX="${OUTPUT_PREFIX%/}"

mkdir -p "$out"
python3 - "$here" "$out" <<'EOF'
import json, os, re, sys

here, out = sys.argv[1], sys.argv[2]
env = os.environ
errors = []

def check(name, pattern, hint):
    if not re.fullmatch(pattern, env[name]):
        errors.append(f"{name}={env[name]!r}: {hint}")

bucket = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
for name in ("ARTIFACT_BUCKET", "LOG_BUCKET", "INPUT_BUCKET", "OUTPUT_BUCKET"):
    check(name, bucket, "not an S3 bucket name (3-63 of a-z 0-9 . -)")
for name in ("INPUT_PREFIX", "OUTPUT_PREFIX"):
    check(name, r"(?!/)(?!.*//)[A-Za-z0-9._=/-]+", "a non-empty key prefix without a leading '/' (letters, digits, . _ = / -)")
check("SUBNET_ID", r"subnet-[0-9a-f]{8,17}", "not a subnet id (subnet-0123...)")
check("RELEASE_LABEL", r"emr-7\.\d+\.\d+", "this kit is for EMR 7.x release labels (emr-7.N.N, N >= 1 for Python 3.11)")
check("WHEELHOUSE", r"[01]", "0 or 1")
check("STEP_TIMEOUT", r"[1-9][0-9]*[smhd]", "a duration for timeout(1): 90m, 4h, 1d")
check("SECURITY_CONFIGURATION", r"([A-Za-z0-9_.-]{1,256})?", "an EMR security configuration name (the stack's is fruits)")
check("SERVICE_ROLE", r"[\w+=,.@-]{1,64}", "an IAM role name")
wheel = os.path.basename(env["WHEEL"])
m = re.fullmatch(r"fruits-[^/]+-manylinux_2_(?:2[0-9]|3[0-4])_(x86_64|aarch64)\.whl", wheel)
if not m:
    errors.append(f"WHEEL={env['WHEEL']!r}: expected fruits-*-manylinux_2_NN_x86_64.whl or _aarch64.whl (NN <= 34, glibc of Amazon Linux 2023) from build-wheel.sh")
if env["RELEASE_LABEL"] == "emr-7.0.0":
    errors.append("RELEASE_LABEL=emr-7.0.0 has no Python 3.11; use emr-7.1.0 or later")
if errors:
    sys.exit("render.sh: " + "\nrender.sh: ".join(errors))
arch = m.group(1)

values = {
    "ARTIFACT_BUCKET": env["ARTIFACT_BUCKET"], "LOG_BUCKET": env["LOG_BUCKET"],
    "INPUT_BUCKET": env["INPUT_BUCKET"], "INPUT_PREFIX": env["INPUT_PREFIX"],
    "OUTPUT_BUCKET": env["OUTPUT_BUCKET"], "OUTPUT_PREFIX": env["OUTPUT_PREFIX"],
    "SUBNET_ID": env["SUBNET_ID"], "WHEEL_NAME": wheel, "STEP_TIMEOUT": env["STEP_TIMEOUT"],
}
placeholder = re.compile(r"\b(" + "|".join(sorted(values, key=len, reverse=True)) + r")\b")

def fill(node):
    if isinstance(node, str):
        return placeholder.sub(lambda m: values[m.group(1)], node)
    if isinstance(node, list):
        return [fill(x) for x in node]
    if isinstance(node, dict):
        return {k: fill(v) for k, v in node.items()}
    return node

def load(name):
    with open(os.path.join(here, name)) as f:
        return json.load(f)

def save(name, doc):
    text = json.dumps(doc, indent=2) + "\n"
    left = placeholder.findall(text)
    if left:
        sys.exit(f"render.sh: {name} still has placeholders {sorted(set(left))}")
    with open(os.path.join(out, name), "w") as f:
        f.write(text)

cluster = fill(load("cluster.json"))
cluster["ReleaseLabel"] = env["RELEASE_LABEL"]
graviton = {"m6i": "m7g", "m7i": "m7g", "c6i": "c7g", "c7i": "c7g", "r6i": "r7g", "r7i": "r7g"}
for group in cluster["Instances"]["InstanceGroups"]:
    family, _, size = group["InstanceType"].partition(".")
    is_graviton = family.endswith("g") or family.endswith("gd")
    if arch == "aarch64" and not is_graviton:
        if family not in graviton:
            sys.exit(f"render.sh: {group['InstanceType']} is not Graviton; pick an aarch64 type for an aarch64 wheel")
        group["InstanceType"] = f"{graviton[family]}.{size}"
    elif arch == "x86_64" and is_graviton:
        sys.exit(f"render.sh: {group['InstanceType']} is Graviton (aarch64) but the wheel is x86_64")
if env["WHEELHOUSE"] == "1":
    for action in cluster["BootstrapActions"]:
        if action["ScriptBootstrapAction"]["Path"].endswith("/bootstrap.sh"):
            action["ScriptBootstrapAction"]["Args"] += [
                "--wheelhouse", f"s3://{values['ARTIFACT_BUCKET']}/fruits/wheelhouse-{arch}/"]
# The stack (deploy/stack) makes its own service role and a security configuration
# (encryption at rest and in transit, IMDSv2 only); without the stack, the account's
# default service role and no security configuration, as before.
cluster["ServiceRole"] = env["SERVICE_ROLE"]
if env["SECURITY_CONFIGURATION"]:
    cluster["SecurityConfiguration"] = env["SECURITY_CONFIGURATION"]
save("cluster.json", cluster)
save("step.json", fill(load("step.json")))
save("artifacts-policy.json", fill(load("artifacts-policy.json")))
for name in ("ec2-trust.json", "emr-service-trust.json", "service-role-passrole.json"):
    save(name, load(name))
# The names themselves, for setup-account.sh, upload.sh and teardown.sh (lib.sh reads them).
wheel_path = env["WHEEL"]
names = dict(values, WHEEL=os.path.abspath(wheel_path) if os.path.exists(wheel_path) else wheel_path,
             WHEELHOUSE=env["WHEELHOUSE"], ARCH=arch, RELEASE_LABEL=env["RELEASE_LABEL"])
with open(os.path.join(out, "names.json"), "w") as f:
    f.write(json.dumps(names, indent=2) + "\n")
types = ", ".join(f"{g['InstanceCount']} x {g['InstanceType']}" for g in cluster["Instances"]["InstanceGroups"])
print(f"rendered into {out}: {cluster['ReleaseLabel']}, {arch}, {types}", file=sys.stderr)
print(f"upload to s3://{values['ARTIFACT_BUCKET']}/fruits/: {wheel}, bootstrap.sh, job.py, "
      "mobilenetv2-12-int8.onnx" + (f", wheelhouse-{arch}/" if env["WHEELHOUSE"] == "1" else ""),
      file=sys.stderr)
EOF

# The role's S3 policy comes from deploy/iam, filled with the same (now checked) names.
"$root/deploy/iam/render.sh" pipeline "$INPUT_BUCKET" "$INPUT_PREFIX" "$OUTPUT_BUCKET" "$OUTPUT_PREFIX" \
  > "$out/pipeline-policy.json"
python3 -m json.tool "$out/pipeline-policy.json" >/dev/null
