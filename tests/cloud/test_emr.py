"""The EMR kit (deploy/emr), rehearsed against a local moto server.

The kit's own scripts run unchanged, with the AWS CLI v1 pointed at moto through
AWS_ENDPOINT_URL (which the scripts pass on as --endpoint-url):
render.sh -> setup-account.sh (twice: idempotent) -> upload.sh -> create-cluster.sh ->
wait.sh (step COMPLETED, and a FAILED one) -> teardown.sh (twice: tolerant).
Every API call the CLI makes is captured and validated against botocore's EMR, IAM, S3
and STS models (awsapi.py), since moto accepts requests AWS would refuse.

What moto cannot show, and what the test does instead:
- EMR never runs a step: the test moves the step to COMPLETED/FAILED in moto's backend
  and writes the step logs to the log bucket the way EMR does.
- AutoTerminationPolicy (idle timeout) is accepted and dropped, and get/put of it are not
  implemented: checked in the captured RunJobFlow request.
- Bucket policies: moto applies them to object requests with every condition taken as
  true, so the kit's deny-without-TLS / deny-without-SSE policy would deny every object
  request. The test checks the policies were stored (get-bucket-policy), removes them
  before the object requests, and checks the put conditions on the captured requests.
- IAM conditions and the regions of EMR ARNs (moto files clusters reached through a
  custom endpoint under us-east-1) are not evaluated: the region is checked on every
  captured call (the environment says us-east-1; the scripts must pin eu-west-3).

The wheel is a placeholder file with a real wheel's name: building it (Rust, zig) is not
part of this test and is covered elsewhere (deploy/emr/build-wheel.sh; the Python
bindings it packages are tested by scripts/test.sh).
"""
from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import awsapi
from conftest import REGION, REPO

KIT = REPO / "deploy" / "emr"
WHEEL_NAME = "fruits-0.1.0-cp311-abi3-manylinux_2_28_x86_64.whl"
MODEL_NAME = "mobilenetv2-12-int8.onnx"
INSTANCE_ROLE = "fruits-emr-instance-profile"
SERVICE_ROLE = "EMR_DefaultRole_V2"
SERVICE_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
KIT_POLICIES = {"fruits-pipeline": "pipeline-policy.json", "fruits-emr-artifacts": "artifacts-policy.json"}
NAMES = {
    "ARTIFACT_BUCKET": "fruits-rehearsal-artifacts",
    "LOG_BUCKET": "fruits-rehearsal-artifacts",      # one bucket for both, as in the README
    "INPUT_BUCKET": "fruits-rehearsal-photos",
    "INPUT_PREFIX": "fruits-360",
    "OUTPUT_BUCKET": "fruits-rehearsal-results",
    "OUTPUT_PREFIX": "runs/2026-11",
    "SUBNET_ID": "subnet-0123456789abcdef0",   # replaced by emr_network()'s in the kit fixture
}
NEXT_PREFIX = "runs/2026-12"   # the second setup-account.sh run is for another output prefix
BUCKETS = sorted({NAMES["ARTIFACT_BUCKET"], NAMES["LOG_BUCKET"], NAMES["INPUT_BUCKET"], NAMES["OUTPUT_BUCKET"]})
# The photo bucket exists before setup-account.sh (as a lab's bucket might), with a rule
# and a policy statement of its own: setup must keep them, teardown must keep the bucket.
LAB_BUCKET = NAMES["INPUT_BUCKET"]
LAB_RULE = {"ID": "lab-archive", "Status": "Enabled", "Filter": {"Prefix": "archive/"},
            "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}]}
LAB_STATEMENT = {"Sid": "LabAccountReads", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                 "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{LAB_BUCKET}/*"}
PHOTOS = ["Training/Apple Red 1/0_100.jpg", "Training/Apple Red 1/1_100.jpg",
          "Training/Banana/0_100.jpg", "Test/Apple Red 1/5_100.jpg", "Test/Banana/7_100.jpg"]


def emr_network(aws, tagged: bool = True, s3_route: bool = True) -> str:
    """A VPC and subnet on moto as EMR needs them (create-cluster.sh checks): tagged
    for AmazonEMRServicePolicy_v2, with an S3 gateway endpoint on the subnet's route
    table. Returns the subnet id."""
    ec2 = aws.client("ec2")
    tags = lambda kind: [{"ResourceType": kind, "Tags": [{"Key": "for-use-with-amazon-emr-managed-policies", "Value": "true"}]}]
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16", **({"TagSpecifications": tags("vpc")} if tagged else {}))["Vpc"]
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.42.0.0/20",
                               **({"TagSpecifications": tags("subnet")} if tagged else {}))["Subnet"]
    table = ec2.create_route_table(VpcId=vpc["VpcId"])["RouteTable"]["RouteTableId"]
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet["SubnetId"])
    if s3_route:
        ec2.create_vpc_endpoint(VpcId=vpc["VpcId"], ServiceName=f"com.amazonaws.{REGION}.s3",
                                VpcEndpointType="Gateway", RouteTableIds=[table])
    return subnet["SubnetId"]


@dataclass
class Kit:
    out: Path        # what render.sh wrote (cluster.json, step.json, policies, names.json)
    wheel: Path
    model: Path
    photos: Path
    logs: Path       # where wait.sh puts the step logs
    names: dict      # NAMES with the subnet made on moto
    wheelhouse: Path  # what build-wheel.sh --wheelhouse makes (placeholders, and the lock file)

    def json(self, name: str):
        return json.loads((self.out / name).read_text())


@pytest.fixture
def kit(aws) -> Kit:
    tmp = aws.tmp
    wheel = tmp / WHEEL_NAME
    wheel.write_bytes(b"placeholder: the wheel build is covered elsewhere\n")
    # Larger than the CLI's 8 MiB multipart threshold, so the multipart calls are captured too.
    model = tmp / MODEL_NAME
    model.write_bytes(b"\0" * (9 * 1024 * 1024))
    photos = tmp / "photos"
    for rel in PHOTOS:
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        (photos / rel).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg " + rel.encode())
    wheelhouse = tmp / "wheelhouse-x86_64"
    wheelhouse.mkdir()
    (wheelhouse / "node-requirements.txt").write_bytes((KIT / "node-requirements.txt").read_bytes())
    (wheelhouse / "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"placeholder\n")
    (wheelhouse / WHEEL_NAME).write_bytes(wheel.read_bytes())
    out = tmp / "emr"
    names = {**NAMES, "SUBNET_ID": emr_network(aws)}
    aws.ok(KIT / "render.sh", "--out", out, *(f"{k}={v}" for k, v in names.items()), f"WHEEL={wheel}")
    return Kit(out, wheel, model, photos, tmp / "logs", names, wheelhouse)


def emr_cluster(moto, cluster_id):
    """moto's record of a cluster (under whichever region moto filed it)."""
    for backend in moto.backend("emr").values():
        if cluster_id in backend.clusters:
            return backend.clusters[cluster_id]
    raise AssertionError(f"moto has no cluster {cluster_id}")


@pytest.fixture
def step_failure_details(monkeypatch):
    """moto's EMR steps have no Status.FailureDetails, which EMR sends for failed steps:
    for this test, a step with a `failure_details` attribute reports them."""
    from moto.emr.models import Step

    plain = Step.status.fget
    monkeypatch.setattr(Step, "status", property(
        lambda self: {**plain(self), **({"FailureDetails": self.failure_details}
                                        if getattr(self, "failure_details", None) else {})}))


def end_step(moto, cluster_id, state, failure=None):
    """What EMR does and moto does not: the step ends, then (no --keep-alive) the cluster."""
    cluster = emr_cluster(moto, cluster_id)
    step = cluster.steps[0]
    step.state = state
    step.failure_details = failure
    cluster.state = "TERMINATED"
    cluster.last_state_change_reason = "Steps completed" if state == "COMPLETED" else "Steps completed with errors"
    return step.id


def put_step_logs(aws, cluster_id, step_id, files: dict[str, str]):
    """The step's logs, where EMR copies them: LOG_URI/<cluster>/steps/<step>/*.gz."""
    s3 = aws.client("s3")
    for name, text in files.items():
        s3.put_object(Bucket=NAMES["LOG_BUCKET"], Key=f"emr-logs/{cluster_id}/steps/{step_id}/{name}",
                      Body=gzip.compress(text.encode()))


def rendered_run_job_flow(kit: Kit) -> dict:
    """cluster.json + step.json as the RunJobFlow request create-cluster.sh should produce
    (the CLI turns --steps into HadoopJarStep)."""
    want = kit.json("cluster.json")
    want["Steps"] = [{"Name": s["Name"], "ActionOnFailure": s["ActionOnFailure"],
                      "HadoopJarStep": {"Jar": s["Jar"], "Args": s["Args"]}} for s in kit.json("step.json")]
    return want


def diff(want, got, path="") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in sorted(set(want) | set(got)):
            if k not in got:
                out.append(f"{path}.{k}: missing from the request")
            elif k not in want:
                out.append(f"{path}.{k}: in the request only ({json.dumps(got[k])[:100]})")
            else:
                out += diff(want[k], got[k], f"{path}.{k}")
        return out
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [d for i, (a, b) in enumerate(zip(want, got)) for d in diff(a, b, f"{path}[{i}]")]
    return [] if want == got else [f"{path}: want {json.dumps(want)[:100]}, request has {json.dumps(got)[:100]}"]


def check_account(aws, kit: Kit, versions: dict[str, int] | None = None):
    """What setup-account.sh must have made, read back from moto (versions: how many
    versions each kit policy should have, 1 unless given)."""
    s3, iam = aws.client("s3"), aws.client("iam")
    for b in BUCKETS:
        assert s3.get_bucket_location(Bucket=b)["LocationConstraint"] == REGION, f"bucket {b} not in {REGION}"
        pab = s3.get_public_access_block(Bucket=b)["PublicAccessBlockConfiguration"]
        assert all(pab.values()) and len(pab) == 4, f"bucket {b}: public access not fully blocked: {pab}"
        encryption = s3.get_bucket_encryption(Bucket=b)["ServerSideEncryptionConfiguration"]["Rules"]
        assert encryption[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", encryption
        rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]}
        assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == \
            {"DaysAfterInitiation": 1}, f"bucket {b}: lifecycle {rules}"
        if b == NAMES["LOG_BUCKET"]:
            assert rules["expire-emr-logs"]["Expiration"] == {"Days": 30}, f"log bucket lifecycle {rules}"
        if b == LAB_BUCKET:
            assert rules["lab-archive"] == LAB_RULE, f"setup-account.sh lost the lab's lifecycle rule: {rules}"
        else:
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=b)["TagSet"]}
            assert tags.get("created-by") == "fruits-setup-account", f"bucket {b} tags {tags}"
        # The bucket policy as stored, against deploy/iam/render.sh's rendering.
        stored = json.loads(s3.get_bucket_policy(Bucket=b)["Policy"])
        rendered = json.loads(aws.ok(REPO / "deploy/iam/render.sh", "bucket", b).stdout)
        if b == LAB_BUCKET:  # the lab's own statement stays, first; the old kit's is gone
            rendered["Statement"].insert(0, LAB_STATEMENT)
        assert stored == rendered, f"bucket {b}: stored policy differs from the rendered one:\n{stored}"
        assert stored == json.loads((kit.out / f"bucket-policy-{b}.json").read_text())

    role = iam.get_role(RoleName=INSTANCE_ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"] == json.loads((KIT / "ec2-trust.json").read_text())
    attached = {p["PolicyName"]: p["PolicyArn"]
                for p in iam.list_attached_role_policies(RoleName=INSTANCE_ROLE)["AttachedPolicies"]}
    assert set(attached) == set(KIT_POLICIES), f"{INSTANCE_ROLE} has {attached}"
    for name, file in KIT_POLICIES.items():
        listed = iam.list_policy_versions(PolicyArn=attached[name])["Versions"]
        want = (versions or {}).get(name, 1)
        assert len(listed) == want, f"policy {name} has {len(listed)} versions, not {want}"
        (default,) = [v["VersionId"] for v in listed if v["IsDefaultVersion"]]
        doc = iam.get_policy_version(PolicyArn=attached[name], VersionId=default)
        assert doc["PolicyVersion"]["Document"] == kit.json(file), f"policy {name} differs from {file}"
    profile = iam.get_instance_profile(InstanceProfileName=INSTANCE_ROLE)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [INSTANCE_ROLE]

    role = iam.get_role(RoleName=SERVICE_ROLE)["Role"]
    assert role["AssumeRolePolicyDocument"] == json.loads((KIT / "emr-service-trust.json").read_text())
    attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=SERVICE_ROLE)["AttachedPolicies"]]
    assert attached == [SERVICE_POLICY], f"{SERVICE_ROLE} has {attached}"
    inline = iam.get_role_policy(RoleName=SERVICE_ROLE, PolicyName="pass-fruits-instance-role")
    assert inline["PolicyDocument"] == json.loads((KIT / "service-role-passrole.json").read_text())


def check_cluster(aws, kit: Kit, cluster_id: str):
    """describe-cluster and the lists echo what cluster.json and step.json asked for."""
    emr = aws.client("emr")
    c = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    want = kit.json("cluster.json")
    got = {k: c.get(k) for k in ("Name", "ReleaseLabel", "LogUri", "ServiceRole", "AutoTerminate",
                                 "TerminationProtected", "VisibleToAllUsers")}
    assert got == {"Name": "fruits", "ReleaseLabel": "emr-7.13.0",
                   "LogUri": f"s3://{NAMES['LOG_BUCKET']}/emr-logs/", "ServiceRole": SERVICE_ROLE,
                   "AutoTerminate": True, "TerminationProtected": False, "VisibleToAllUsers": True}, got
    assert c["Ec2InstanceAttributes"]["IamInstanceProfile"] == INSTANCE_ROLE
    assert c["Ec2InstanceAttributes"]["Ec2SubnetId"] == kit.names["SUBNET_ID"]
    assert [a["Name"] for a in c["Applications"]] == ["Spark"]
    assert c["Configurations"] == want["Configurations"]
    assert {(t["Key"], t["Value"]) for t in c["Tags"]} == {(t["Key"], t["Value"]) for t in want["Tags"]}
    groups = sorted((g["Name"], g["InstanceGroupType"], g["InstanceType"], g["RequestedInstanceCount"], g["Market"])
                    for g in emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"])
    assert groups == [("core", "CORE", "m6i.2xlarge", 2, "ON_DEMAND"),
                      ("primary", "MASTER", "m6i.xlarge", 1, "ON_DEMAND")], groups
    a = NAMES["ARTIFACT_BUCKET"]
    actions = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    assert [(b["Name"], b["ScriptPath"], b["Args"]) for b in actions] == \
        [("install fruits", f"s3://{a}/fruits/bootstrap.sh",
          [f"s3://{a}/fruits/{WHEEL_NAME}", "--wheelhouse", f"s3://{a}/fruits/wheelhouse-x86_64/"])], actions
    steps = emr.list_steps(ClusterId=cluster_id)["Steps"]
    assert len(steps) == 1, steps
    (step_json,) = kit.json("step.json")
    assert steps[0]["Name"] == step_json["Name"]
    assert steps[0]["ActionOnFailure"] == "CONTINUE"
    assert steps[0]["Config"]["Jar"] == "command-runner.jar"
    assert steps[0]["Config"]["Args"] == step_json["Args"]
    args = step_json["Args"]
    assert args[args.index("--input") + 1] == f"s3://{NAMES['INPUT_BUCKET']}/{NAMES['INPUT_PREFIX']}/"
    names = kit.json("names.json")
    assert args[args.index("--output") + 1] == f"s3://{names['OUTPUT_BUCKET']}/{names['OUTPUT_PREFIX']}/"


def s3_objects(aws, bucket, prefix=""):
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_emr_kit_rehearsal(aws, kit, moto, step_failure_details):
    t0 = time.monotonic()
    # The kit pins eu-west-3 itself: with the environment saying us-east-1, any call the
    # scripts make without --region would show up in the capture as us-east-1.
    aws.env["AWS_DEFAULT_REGION"] = "us-east-1"
    s3 = aws.client("s3")
    names = {k: v for k, v in kit.json("names.json").items() if k in NAMES}
    assert names == kit.names, "render.sh wrote other names to names.json"
    assert kit.json("names.json")["WHEEL"] == str(kit.wheel)

    # --- set the account up; then again, for another output prefix ----------------------
    s3.create_bucket(Bucket=LAB_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_lifecycle_configuration(Bucket=LAB_BUCKET, LifecycleConfiguration={"Rules": [LAB_RULE]})
    # (written before the policy: moto takes every condition of a Deny as true)
    s3.put_object(Bucket=LAB_BUCKET, Key="archive/notes.txt", Body=b"the lab's", ServerSideEncryption="AES256")
    # The bucket holds a statement of an earlier kit too, which denied multipart uploads.
    old_kit = {"Sid": "DenyPutsWithoutEncryptionHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
               "Resource": f"arn:aws:s3:::{LAB_BUCKET}/*",
               "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}}
    s3.put_bucket_policy(Bucket=LAB_BUCKET, Policy=json.dumps({"Version": "2012-10-17",
                                                               "Statement": [LAB_STATEMENT, old_kit]}))
    aws.ok(KIT / "setup-account.sh", "--dir", kit.out)
    first_run = len(aws.calls())
    check_account(aws, kit)
    aws.ok(KIT / "render.sh", "--out", kit.out, *(f"{k}={v}" for k, v in kit.names.items() if k != "OUTPUT_PREFIX"),
           f"OUTPUT_PREFIX={NEXT_PREFIX}", f"WHEEL={kit.wheel}")
    again = aws.ok(KIT / "setup-account.sh", "--dir", kit.out)
    check_account(aws, kit, versions={"fruits-pipeline": 2})
    # The second run reads, makes the one change (the pipeline policy names the output
    # prefix), and puts again only the public access block and the default encryption
    # (cheaper than reading them).
    rerun = Counter(c.operation for c in aws.calls()[first_run:])
    expected = {"GetAccountAuthorizationDetails", "GetBucketLocation", "GetBucketLifecycleConfiguration",
                "GetBucketPolicy", "PutPublicAccessBlock", "PutBucketEncryption", "CreatePolicyVersion"}
    assert set(rerun) <= expected and rerun["CreatePolicyVersion"] == 1, \
        f"the second setup-account.sh run did {dict(rerun)}:\n{again}"
    (version,) = awsapi.only(aws.calls()[first_run:], "iam.CreatePolicyVersion")
    assert version.params["PolicyArn"].endswith(":policy/fruits-pipeline"), version.params["PolicyArn"]

    # moto evaluates bucket policies on object requests with every condition taken as
    # true: DenyAnythingWithoutTLS would deny all of them (on AWS, HTTPS requests pass).
    # The policies were checked above; they go before the uploads.
    for b in BUCKETS:
        s3.delete_bucket_policy(Bucket=b)

    # --- upload ------------------------------------------------------------------------
    aws.ok(KIT / "upload.sh", "--dir", kit.out, "--photos", kit.photos, "--model", kit.model,
           "--wheelhouse", kit.wheelhouse)
    a = NAMES["ARTIFACT_BUCKET"]
    artifacts = sorted(s3_objects(aws, a, "fruits/"))
    # The wheelhouse (the default): every node installs the pinned versions from S3.
    house = [f"fruits/wheelhouse-x86_64/{p.name}" for p in kit.wheelhouse.iterdir()]
    assert artifacts == sorted([*(f"fruits/{n}" for n in (WHEEL_NAME, "bootstrap.sh", "job.py", MODEL_NAME)),
                                *house]), artifacts
    assert s3.get_object(Bucket=a, Key="fruits/wheelhouse-x86_64/node-requirements.txt")["Body"].read() == \
        (KIT / "node-requirements.txt").read_bytes()
    for key in artifacts:
        assert s3.head_object(Bucket=a, Key=key)["ServerSideEncryption"] == "AES256", key
    assert s3.get_object(Bucket=a, Key="fruits/bootstrap.sh")["Body"].read() == (KIT / "bootstrap.sh").read_bytes()
    assert s3.get_object(Bucket=a, Key="fruits/job.py")["Body"].read() == \
        (REPO / "python/fruits/spark/job.py").read_bytes()
    assert s3.head_object(Bucket=a, Key=f"fruits/{MODEL_NAME}")["ContentLength"] == kit.model.stat().st_size
    prefix = NAMES["INPUT_PREFIX"] + "/"
    photos = sorted(s3_objects(aws, NAMES["INPUT_BUCKET"], prefix))
    assert photos == sorted(prefix + p for p in PHOTOS), photos
    assert s3.head_object(Bucket=NAMES["INPUT_BUCKET"], Key=photos[0])["ServerSideEncryption"] == "AES256"

    # --- the cluster -------------------------------------------------------------------
    before = len(aws.calls())
    cluster = aws.ok(KIT / "create-cluster.sh", kit.out / "cluster.json", kit.out / "step.json").stdout.strip()
    assert cluster.startswith("j-"), cluster
    (run,) = awsapi.only(aws.calls()[before:], "emr.RunJobFlow")
    problems = diff(rendered_run_job_flow(kit), run.params)
    assert not problems, "the RunJobFlow request differs from cluster.json + step.json:\n" + "\n".join(problems)
    # Auto-termination: moto drops it, so the request is the evidence.
    assert run.params["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
    # Spend guards: idle for an hour, the cluster ends; the step stops after STEP_TIMEOUT
    # (4 h by default), after which the transient cluster, with no step left, ends too.
    assert run.params["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert run.params["Steps"][0]["HadoopJarStep"]["Args"][:4] == ["timeout", "--kill-after=5m", "4h", "spark-submit"]
    check_cluster(aws, kit, cluster)
    # Everything the cluster will read from S3 is there.
    referenced = [run.params["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"],
                  *(x for x in run.params["BootstrapActions"][0]["ScriptBootstrapAction"]["Args"]
                    if x.startswith("s3://") and not x.endswith("/")),
                  *(x for x in run.params["Steps"][0]["HadoopJarStep"]["Args"] if x.startswith(f"s3://{a}/"))]
    assert len(referenced) == 4, referenced
    for url in referenced:
        bucket, key = url[len("s3://"):].split("/", 1)
        s3.head_object(Bucket=bucket, Key=key)

    # --keep-alive: no steps, and the idle timeout (1 h) in the request.
    before = len(aws.calls())
    idle = aws.ok(KIT / "create-cluster.sh", "--keep-alive", kit.out / "cluster.json").stdout.strip()
    (run2,) = awsapi.only(aws.calls()[before:], "emr.RunJobFlow")
    assert run2.params["AutoTerminationPolicy"] == {"IdleTimeout": 3600}, run2.params.get("AutoTerminationPolicy")
    assert run2.params["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert "Steps" not in run2.params
    assert aws.client("emr").describe_cluster(ClusterId=idle)["Cluster"]["Status"]["State"] == "WAITING"

    # --- wait.sh: gives up after --timeout; then a step that completes ---------------------
    sid = emr_cluster(moto, cluster).steps[0].id
    early = aws.run(KIT / "wait.sh", cluster, "--step-id", sid, "--timeout", "0", "--out", kit.logs)
    assert early.returncode == 3 and "still RUNNING" in early.stderr, f"wait.sh --timeout 0:\n{early}"
    said = aws.tmp / "wait.stderr"
    with open(said, "w") as stderr:
        waiting = aws.spawn(KIT / "wait.sh", cluster, "--interval", "1", "--out", kit.logs, stderr=stderr)
    deadline = time.monotonic() + 30
    while "RUNNING" not in said.read_text() and waiting.poll() is None:   # it has seen the step run
        assert time.monotonic() < deadline, f"wait.sh never reported the step RUNNING:\n{said.read_text()}"
        time.sleep(0.2)
    step = end_step(moto, cluster, "COMPLETED")
    emr_cluster(moto, cluster).log_uri = f"s3n://{NAMES['LOG_BUCKET']}/emr-logs/"   # EMR reports s3n://
    logs = {"controller.gz": "INFO startExec 'hadoop jar command-runner.jar spark-submit ...'\n",
            "stdout.gz": "", "stderr.gz": "features: 5 rows in 1 part\npca: n = 5, k = 3\n"}
    put_step_logs(aws, cluster, step, logs)
    out, _ = waiting.communicate(timeout=90)
    err = said.read_text()
    assert waiting.returncode == 0, f"wait.sh exited {waiting.returncode}\n{out}\n{err}"
    assert "RUNNING" in err and "COMPLETED" in err, err
    got = kit.logs / cluster / "steps" / step
    assert str(got) in err, f"wait.sh did not say where the logs are:\n{err}"
    assert {p.name: gzip.decompress(p.read_bytes()).decode() for p in got.iterdir()} == logs

    # --- wait.sh: a step that fails ------------------------------------------------------
    failing = aws.ok(KIT / "create-cluster.sh", kit.out / "cluster.json", kit.out / "step.json").stdout.strip()
    sid = emr_cluster(moto, failing).steps[0].id
    log_file = f"s3://{NAMES['LOG_BUCKET']}/emr-logs/{failing}/steps/{sid}/stderr.gz"
    end_step(moto, failing, "FAILED", failure={
        "Reason": "Unknown Error.", "LogFile": log_file,
        "Message": "Exception in thread \"main\" org.apache.spark.SparkException: Application finished with failed status"})
    put_step_logs(aws, failing, sid, {
        "controller.gz": "INFO total process run time: 42 seconds\n",
        "stderr.gz": "Traceback (most recent call last):\nRuntimeError: bucket fruits-rehearsal-photos is in "
                     "region us-east-1, outside the allowed region(s) eu-west-3\n"})
    failed = aws.run(KIT / "wait.sh", failing, "--step-id", sid, "--interval", "1", "--out", kit.logs)
    assert failed.returncode == 1, f"wait.sh should exit 1 for a FAILED step:\n{failed}"
    for text in ("FAILED", "Unknown Error.", "Application finished with failed status", log_file,
                 "outside the allowed region(s) eu-west-3"):
        assert text in failed.stderr, f"wait.sh did not report {text!r}:\n{failed}"
    assert (kit.logs / failing / "steps" / sid / "stderr.gz").exists()

    # --- teardown, twice --------------------------------------------------------------------
    aws.ok(KIT / "teardown.sh", "--dir", kit.out, "--delete-buckets", "--interval", "1", cluster, idle, failing)
    emr, iam = aws.client("emr"), aws.client("iam")
    for c in (cluster, idle, failing):
        assert emr.describe_cluster(ClusterId=c)["Cluster"]["Status"]["State"] == "TERMINATED", c
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []
    assert iam.list_instance_profiles()["InstanceProfiles"] == []
    assert iam.list_policies(Scope="Local")["Policies"] == []
    # setup-account.sh did not create the lab's bucket: it stays, with its objects.
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [LAB_BUCKET]
    assert "archive/notes.txt" in s3_objects(aws, LAB_BUCKET)
    again = aws.ok(KIT / "teardown.sh", "--dir", kit.out, "--delete-buckets", "--interval", "1", cluster, idle, failing)
    assert "already gone" in again.stderr and f"bucket {LAB_BUCKET}: kept" in again.stderr, again
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [LAB_BUCKET]

    # --- every request the kit made ------------------------------------------------------------
    calls = aws.calls()
    awsapi.assert_valid(calls)
    elsewhere = sorted({f"{c.name} in {c.region}" for c in calls if c.region != REGION})
    assert not elsewhere, f"calls outside {REGION}: {elsewhere}"
    # The bucket policy's put conditions, which moto cannot evaluate, on the kit's own puts.
    puts = [c for c in calls if c.operation in ("PutObject", "CreateMultipartUpload", "CopyObject")]
    assert puts and all(c.params.get("ServerSideEncryption") == "AES256" for c in puts), \
        [(c.operation, c.params.get("Key"), c.params.get("ServerSideEncryption")) for c in puts]
    services = {c.service for c in calls}
    assert services == {"s3", "iam", "emr", "ec2"}, services   # ec2: the network check
    print(f"\n{len(calls)} AWS calls, all valid: {awsapi.summary(calls)}")
    print(f"rehearsal took {time.monotonic() - t0:.1f} s:\n{aws.timings()}")


# A mistake in cluster.json or step.json must not reach AWS: create-cluster.sh refuses
# what it does not know, the CLI (botocore) refuses unknown members, and what moto would
# accept anyway (enum values) is caught by the model validation of the captured request.
BAD_CLUSTERS = {
    "misspelt top-level key": ("cluster.json", lambda d: d.update(LogURI=d.pop("LogUri")),
                               "script", "LogURI"),
    "misspelt nested key": ("cluster.json",
                            lambda d: d["ManagedScalingPolicy"]["ComputeLimits"].update(
                                MaximumCoreCapacityUnit=d["ManagedScalingPolicy"]["ComputeLimits"].pop(
                                    "MaximumCoreCapacityUnits")),
                            "cli", "MaximumCoreCapacityUnit"),
    "bad enum value": ("cluster.json",
                       lambda d: d["ManagedScalingPolicy"]["ComputeLimits"].update(UnitType="Instance"),
                       "validator", "'Instance' is not one of"),
    "bad enum value in step.json": ("step.json", lambda d: d[0].update(ActionOnFailure="CONTINUE_ANYWAY"),
                                    "validator", "'CONTINUE_ANYWAY' is not one of"),
}


@pytest.mark.parametrize("case", list(BAD_CLUSTERS))
def test_bad_cluster_json_is_caught(aws, kit, case):
    file, mutate, caught_by, needle = BAD_CLUSTERS[case]
    doc = kit.json(file)
    mutate(doc)
    (kit.out / file).write_text(json.dumps(doc, indent=2))
    ran = aws.run(KIT / "create-cluster.sh", kit.out / "cluster.json", kit.out / "step.json")
    runs = awsapi.only(aws.calls(), "emr.RunJobFlow")
    found = [p for r in runs for p in awsapi.validate(r.service, r.operation, r.params)]
    if caught_by == "script":
        assert ran.returncode != 0 and needle in ran.stderr, f"create-cluster.sh let it through:\n{ran}"
        assert not runs, "create-cluster.sh refused, yet a RunJobFlow request was made"
    elif caught_by == "cli":
        # `aws emr create-cluster` checks its JSON options against the model itself.
        assert ran.returncode != 0 and needle in ran.stderr, f"the CLI did not refuse it:\n{ran}"
        assert not runs, "the CLI refused, yet a RunJobFlow request was made"
    else:
        # moto accepts it (the cluster exists): only the model validation catches it.
        assert ran.returncode == 0 and ran.stdout.startswith("j-"), f"expected moto to accept it:\n{ran}"
        assert any(needle in p for p in found), f"the validator missed it: {found}\n{ran}"
    # Whichever layer stops it first, the validator alone would have caught it too.
    alone = awsapi.validate("emr", "RunJobFlow", rendered_run_job_flow(kit))
    assert any(needle in p for p in alone), f"the validator misses {case!r}: {alone}"


@pytest.mark.parametrize("tagged,s3_route,needle", [
    (False, True, "lacks the tag for-use-with-amazon-emr-managed-policies=true"),
    (True, False, "has no route to S3"),
])
def test_network_is_checked_before_launch(aws, kit, tagged, s3_route, needle):
    """A subnet EMR cannot use is refused with the fix, before any RunJobFlow."""
    subnet = emr_network(aws, tagged=tagged, s3_route=s3_route)
    doc = kit.json("cluster.json")
    doc["Instances"]["Ec2SubnetId"] = subnet
    (kit.out / "cluster.json").write_text(json.dumps(doc, indent=2))
    ran = aws.run(KIT / "create-cluster.sh", kit.out / "cluster.json", kit.out / "step.json")
    assert ran.returncode != 0 and needle in ran.stderr, ran
    assert not awsapi.only(aws.calls(), "emr.RunJobFlow")
    doc["Instances"]["Ec2SubnetId"] = "subnet-0123456789abcdef0"
    (kit.out / "cluster.json").write_text(json.dumps(doc, indent=2))
    ran = aws.run(KIT / "create-cluster.sh", kit.out / "cluster.json", kit.out / "step.json")
    assert ran.returncode != 0 and "not found" in ran.stderr, ran
