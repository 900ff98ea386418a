"""The AWS stack (deploy/stack): synthesised by the CDK app, linted by cfn-lint and
checkov with nothing unexplained, its security settings pinned, and created and
deleted against moto by the same deploy.sh and delete.sh a user runs (every AWS
call validated against botocore's models).

The CDK app runs in its own venv ($FRUITS_STACK_PYTHON, else
~/.cache/fruits/stack-venv, made by scripts/test.sh from
deploy/stack/requirements.txt + checkov): checkov pins a boto3 that the moto
server here cannot share.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

import awsapi
from conftest import ACCOUNT, REGION, REPO

sys.path.insert(0, str(REPO / "deploy" / "sagemaker"))
import deploy  # noqa: E402  (deploy/sagemaker/deploy.py)

STACK = REPO / "deploy" / "stack"
VENV = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fruits" / "stack-venv"
PYTHON = os.environ.get("FRUITS_STACK_PYTHON") or str(VENV / "bin" / "python")
CHECKOV = str(Path(PYTHON).parent / "checkov")
# jsii warns on every run that this machine's Node (20) is past its end of life; the
# template is the same. The variables list the major versions to keep quiet about.
QUIET_NODE = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,19,20,21",
              "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "18,19,20,21"}
VARIANTS = {
    "default": [],
    "kms-audit-expiry": ["-c", "kms_buckets=true", "-c", "audit=true", "-c", "photo_days=365"],
}
# Resource types moto's CloudFormation does not create (it skips them with a warning);
# their settings are checked in the template instead (test_template_*).
MOTO_SKIPS = {"AWS::Budgets::Budget", "AWS::S3::BucketPolicy"}


def synth(out: Path, context: list[str]) -> dict:
    ran = subprocess.run([PYTHON, str(STACK / "app.py"), "--out", str(out), *context], capture_output=True,
                         text=True, env={**os.environ, **QUIET_NODE}, timeout=300)
    assert ran.returncode == 0, f"synth failed:\n{ran.stdout}\n{ran.stderr}"
    return json.loads((out / "Fruits.template.json").read_text())


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    if not Path(PYTHON).exists():
        pytest.fail(f"no stack venv at {PYTHON}: scripts/test.sh makes it (deploy/stack/requirements.txt + checkov)")
    made = {}
    for name, context in VARIANTS.items():
        out = tmp_path_factory.mktemp(f"stack-{name}")
        made[name] = (out / "Fruits.template.json", synth(out, context))
    return made


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_template_buckets_are_private_encrypted_tls_only_and_expire(templates):
    for name, (_, t) in templates.items():
        buckets = resources(t, "AWS::S3::Bucket")
        assert len(buckets) == 4, name
        policies = {json.dumps(p["Properties"]["Bucket"]): p["Properties"]["PolicyDocument"]["Statement"]
                    for p in resources(t, "AWS::S3::BucketPolicy").values()}
        for logical, b in buckets.items():
            props = b["Properties"]
            assert props["PublicAccessBlockConfiguration"] == {
                "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True}, logical
            (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            algorithm = sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
            kms = name != "default" and "Logs" not in logical  # access logs need SSE-S3
            assert algorithm == ("aws:kms" if kms else "AES256"), (name, logical)
            rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
            assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == \
                {"DaysAfterInitiation": 1}
            if "Logs" in logical:
                assert rules["expire-emr-logs"]["ExpirationInDays"] == 30
                assert rules["expire-access-logs"]["ExpirationInDays"] == 30
            else:
                assert "LoggingConfiguration" in props, logical
            if "Results" in logical:
                assert rules["expire-transform-outputs"]["Prefix"] == "transform/"
            if "Photos" in logical:
                assert ("expire-photos" in rules) == (name != "default")
            # TLS only: a Deny on aws:SecureTransport = false, for the bucket and its objects.
            statements = policies[json.dumps({"Ref": logical})]
            assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                       for s in statements), logical
            # No statement may deny uploads without an encryption header (it denies UploadPart).
            assert not any("s3:x-amz-server-side-encryption" in json.dumps(s) for s in statements), logical


def test_template_network_has_no_internet_route_and_emr_tags(templates):
    _, t = templates["default"]
    assert not resources(t, "AWS::EC2::InternetGateway") and not resources(t, "AWS::EC2::NatGateway")
    (vpc,) = resources(t, "AWS::EC2::VPC").values()
    tags = {x["Key"]: x["Value"] for x in vpc["Properties"]["Tags"]}
    assert tags["for-use-with-amazon-emr-managed-policies"] == "true"
    for subnet in resources(t, "AWS::EC2::Subnet").values():
        tags = {x["Key"]: x["Value"] for x in subnet["Properties"]["Tags"]}
        assert tags["for-use-with-amazon-emr-managed-policies"] == "true"
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
    endpoints = {json.dumps(e["Properties"]["ServiceName"]): e["Properties"].get("VpcEndpointType", "Gateway")
                 for e in resources(t, "AWS::EC2::VPCEndpoint").values()}
    assert sorted(endpoints.values()) == ["Gateway", "Interface"]
    assert any(".s3" in k for k, v in endpoints.items() if v == "Gateway")


def test_template_emr_security_configuration(templates):
    for name, (_, t) in templates.items():
        (sc,) = resources(t, "AWS::EMR::SecurityConfiguration").values()
        conf = sc["Properties"]["SecurityConfiguration"]
        enc = conf["EncryptionConfiguration"]
        assert enc["EnableAtRestEncryption"] and enc["EnableInTransitEncryption"]
        disk = enc["AtRestEncryptionConfiguration"]["LocalDiskEncryptionConfiguration"]
        assert disk["EncryptionKeyProviderType"] == "AwsKms" and disk["EnableEbsEncryption"]
        s3 = enc["AtRestEncryptionConfiguration"]["S3EncryptionConfiguration"]["EncryptionMode"]
        assert s3 == ("SSE-S3" if name == "default" else "SSE-KMS")
        assert enc["InTransitEncryptionConfiguration"]["TLSCertificateConfiguration"]["CertificateProviderType"] == "PEM"
        assert conf["InstanceMetadataServiceConfiguration"]["MinimumInstanceMetadataServiceVersion"] == 2


def test_template_iam_is_the_kits_documents(templates):
    """The stack's policies are the kits' JSON files (same statements), not a second copy."""
    _, t = templates["default"]
    managed = {p["Properties"]["ManagedPolicyName"]: p["Properties"]["PolicyDocument"]
               for p in resources(t, "AWS::IAM::ManagedPolicy").values()}
    for name, path in (("fruits-pipeline", "deploy/iam/pipeline-policy.json"),
                       ("fruits-emr-artifacts", "deploy/emr/artifacts-policy.json")):
        kit = json.loads((REPO / path).read_text())
        assert [s["Sid"] for s in managed[name]["Statement"]] == [s["Sid"] for s in kit["Statement"]], name
        assert [s["Action"] for s in managed[name]["Statement"]] == [s["Action"] for s in kit["Statement"]], name
    roles = {r["Properties"]["RoleName"]: r for r in resources(t, "AWS::IAM::Role").values()}
    assert set(roles) == {"fruits-emr-instance-profile", "fruits-emr-service-role", "fruits-sagemaker-execution"}
    kit = json.loads((REPO / "deploy/iam/sagemaker-execution-policy.json").read_text())
    (inline,) = roles["fruits-sagemaker-execution"]["Properties"]["Policies"]
    assert [s["Sid"] for s in inline["PolicyDocument"]["Statement"]] == [s["Sid"] for s in kit["Statement"]]


def test_template_logs_retention_budget_and_repository(templates):
    _, t = templates["default"]
    groups = {g["Properties"]["LogGroupName"]: g["Properties"].get("RetentionInDays")
              for g in resources(t, "AWS::Logs::LogGroup").values()}
    assert groups == {"/aws/sagemaker/Endpoints/fruits": 30, "/aws/sagemaker/TransformJobs": 30}
    (budget,) = resources(t, "AWS::Budgets::Budget").values()
    notes = budget["Properties"]["NotificationsWithSubscribers"]
    assert sorted((n["Notification"]["NotificationType"], n["Notification"]["Threshold"]) for n in notes) == \
        [("ACTUAL", 80), ("FORECASTED", 100)]
    (repo,) = resources(t, "AWS::ECR::Repository").values()
    assert repo["Properties"]["ImageTagMutability"] == "IMMUTABLE"
    assert repo["Properties"]["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repo["Properties"]["EmptyOnDelete"] is True
    # Nothing that needs `cdk bootstrap` or runs code of ours: no Lambda, no custom resource.
    kinds = {r["Type"] for r in t["Resources"].values()}
    assert not any(k.startswith(("AWS::Lambda::", "Custom::", "AWS::CloudFormation::CustomResource")) for k in kinds)
    assert "BootstrapVersion" not in t.get("Parameters", {})
    _, audited = templates["kms-audit-expiry"]
    (trail,) = resources(audited, "AWS::CloudTrail::Trail").values()
    assert trail["Properties"]["EventSelectors"][0]["DataResources"][0]["Type"] == "AWS::S3::Object"


def test_cfn_lint_reports_nothing(templates):
    for name, (path, _) in templates.items():
        ran = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--regions", REGION, "--", str(path)],
                             capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0 and not ran.stdout.strip(), f"cfn-lint on {name}:\n{ran.stdout}{ran.stderr}"


def test_checkov_passes_and_every_skip_says_why(templates):
    for name, (path, t) in templates.items():
        ran = subprocess.run([CHECKOV, "-f", str(path), "--framework", "cloudformation", "--skip-download",
                              "--quiet", "--output", "json"], capture_output=True, text=True, timeout=600)
        report = json.loads(ran.stdout)
        failed = report["results"]["failed_checks"] if "results" in report else []
        assert not failed, f"checkov on {name}: " + "\n".join(
            f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed)
        assert report["summary"]["passed"] > 50, report["summary"]
        for logical, r in t["Resources"].items():
            for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert len(skip.get("comment", "")) > 20, f"{logical} skips {skip['id']} without a reason"


def test_moto_creates_and_deletes_the_stack(aws, moto_server, templates, tmp_path, monkeypatch):
    """deploy.sh then delete.sh, as a user runs them, on moto."""
    from moto.cloudformation.parsing import resource_class_from_type

    _, t = templates["default"]
    skipped = {r["Type"] for r in t["Resources"].values() if resource_class_from_type(r["Type"]) is None}
    assert skipped == MOTO_SKIPS, f"moto's CloudFormation skips {sorted(skipped)}; update MOTO_SKIPS and the docs"

    teach_moto(monkeypatch)
    out = tmp_path / "stack"
    env = {"FRUITS_STACK_PYTHON": PYTHON, **QUIET_NODE}
    aws.ok(STACK / "deploy.sh", "--email", "ops@example.com", "--budget", "150", "--out", out, env=env, timeout=600)
    outputs = json.loads((out / "outputs.json").read_text())
    s3 = aws.client("s3")
    for key in ("PhotosBucket", "ResultsBucket", "ArtifactsBucket", "LogsBucket"):
        bucket = outputs[key]
        assert bucket.endswith(f"-{ACCOUNT}-{REGION}")
        assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == REGION
        # (moto's CloudFormation applies a bucket's encryption and tags; the rest of
        # its properties are checked in the template above)
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    iam = aws.client("iam")
    assert iam.get_instance_profile(InstanceProfileName=outputs["EmrInstanceProfile"])["InstanceProfile"]["Roles"]
    assert outputs["SageMakerRoleArn"].endswith(":role/fruits-sagemaker-execution")
    # (moto's EMR API answers from the region its host name says, us-east-1 for
    # 127.0.0.1: the configuration is read from its eu-west-3 backend instead)
    stored = moto_server.backend("emr")[REGION].security_configurations[outputs["EmrSecurityConfiguration"]]
    conf = stored.security_configuration
    conf = json.loads(conf) if isinstance(conf, str) else conf
    assert conf["EncryptionConfiguration"]["EnableInTransitEncryption"] is True
    bucket, key = outputs["TlsCertificates"].removeprefix("s3://").split("/", 1)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 1000
    subnets = aws.client("ec2").describe_subnets(SubnetIds=outputs["SubnetIds"].split(","))["Subnets"]
    assert {tag["Key"] for s in subnets for tag in s["Tags"]} >= {"for-use-with-amazon-emr-managed-policies"}

    # The EMR kit on the stack: render.sh reads its outputs, create-cluster.sh finds the
    # stack's subnet tagged for EMR and routed to S3, and launches with its security
    # configuration and service role.
    wheel = tmp_path / "fruits-0.1.0-cp311-abi3-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"placeholder: the wheel build is covered elsewhere\n")
    emr_dir = tmp_path / "emr"
    aws.ok(REPO / "deploy/emr/render.sh", "--out", emr_dir, "--from-stack", out / "outputs.json",
           "OUTPUT_PREFIX=runs/2026-12", f"WHEEL={wheel}")
    launched = aws.ok(REPO / "deploy/emr/create-cluster.sh", emr_dir / "cluster.json", emr_dir / "step.json")
    assert "is tagged for EMR and reaches S3" in launched.stderr, launched
    (run,) = awsapi.only(aws.calls(), "emr.RunJobFlow")
    assert run.params["SecurityConfiguration"] == outputs["EmrSecurityConfiguration"]
    assert run.params["ServiceRole"] == outputs["EmrServiceRole"]
    assert run.params["JobFlowRole"] == outputs["EmrInstanceProfile"]
    assert run.params["Instances"]["Ec2SubnetId"] in outputs["SubnetIds"].split(",")

    # Again: the stack is updated in place (AWS would say it is up to date; moto
    # updates anyway), and the certificates are kept.
    again = aws.ok(STACK / "deploy.sh", "--email", "ops@example.com", "--budget", "150", "--out", out, env=env,
                   timeout=600)
    assert "updating stack fruits" in again.stderr and "already at" in again.stderr
    assert "end-of-life" not in again.stderr

    # What runs beside the stack, made as deploy.py and create-cluster.sh make them:
    # delete.sh removes those too, before the roles and subnets they use.
    sm = aws.client("sagemaker")
    image = f"{outputs['RepositoryUri']}:0.1.0-amd64"
    sm.create_model(ModelName="fruits-20261206-101010", ExecutionRoleArn=outputs["SageMakerRoleArn"],
                    PrimaryContainer={"Image": image})
    sm.create_endpoint_config(EndpointConfigName="fruits-20261206-101010", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "fruits-20261206-101010", "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 2}])
    sm.create_endpoint(EndpointName="fruits", EndpointConfigName="fruits-20261206-101010")
    # An asynchronous endpoint beside it, scaled on its queue with deploy.py's alarm.
    sm.create_model(ModelName="fruits-async-model-20261206-101010", ExecutionRoleArn=outputs["SageMakerRoleArn"],
                    PrimaryContainer={"Image": image})
    sm.create_endpoint_config(EndpointConfigName="fruits-async-config-20261206-101010", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "fruits-async-model-20261206-101010",
        "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        AsyncInferenceConfig=deploy.async_config(f"s3://{outputs['ResultsBucket']}/transform/async/"))
    sm.create_endpoint(EndpointName="fruits-async", EndpointConfigName="fruits-async-config-20261206-101010")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    deploy.autoscale(boto3.session.Session(region_name=REGION, aws_access_key_id="testing",
                                           aws_secret_access_key="testing"),
                     "fruits-async", 0, 2, deploy.DEFAULT_INVOCATIONS_PER_INSTANCE, backlog=20)
    aas, cloudwatch = aws.client("application-autoscaling"), aws.client("cloudwatch")
    assert len(aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]) == 2
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]] == [
        f"fruits-async-{deploy.BACKLOG_ALARM}"]
    sm.create_model(ModelName="someone-elses", ExecutionRoleArn=outputs["SageMakerRoleArn"],
                    PrimaryContainer={"Image": image})
    s3.put_object(Bucket=outputs["PhotosBucket"], Key="photos/Apple/1.jpg", Body=b"jpeg")
    refused = aws.run(STACK / "delete.sh")
    assert refused.returncode != 0 and "--yes" in refused.stderr
    aws.ok(STACK / "delete.sh", "--yes", timeout=600)
    assert not sm.list_endpoints()["Endpoints"]
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["someone-elses"]
    assert not sm.list_endpoint_configs()["EndpointConfigs"]
    assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert not aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert not cloudwatch.describe_alarms()["MetricAlarms"]
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert not names & {outputs[k] for k in ("PhotosBucket", "ResultsBucket", "ArtifactsBucket", "LogsBucket")}
    assert not [r for r in iam.list_roles()["Roles"] if r["RoleName"].startswith("fruits-")]
    assert not aws.client("cloudformation").list_stacks(StackStatusFilter=["CREATE_COMPLETE", "UPDATE_COMPLETE"])[
        "StackSummaries"]
    assert aws.ok(STACK / "delete.sh", "--yes").stderr.count("nothing to delete") == 1
    awsapi.assert_valid(aws.calls())


def teach_moto(monkeypatch) -> None:
    """What AWS's CloudFormation does and moto's does not (moto 5.2.1), done with
    moto's own backends: record a subnet's route table association where
    DescribeRouteTables sees it (create-cluster.sh's network check reads it), and
    on delete-stack remove VPC endpoints and route tables and detach a role's
    managed policies (without which moto leaves the VPC and roles behind)."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.subnets import SubnetRouteTableAssociation
    from moto.ec2.models.vpcs import VPCEndPoint
    from moto.iam.models import Role, iam_backends

    def delete_endpoint(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = ec2_backends[account_id][region_name]
        endpoint = backend.vpc_end_points.get(resource_name)
        if endpoint is not None:   # (its routes go with route tables deleted before it)
            endpoint.route_table_ids = [t for t in endpoint.route_table_ids or [] if t in backend.route_tables]
        backend.delete_vpc_endpoints([resource_name])
        backend.vpc_end_points.pop(resource_name, None)

    create_association = SubnetRouteTableAssociation.create_from_cloudformation_json.__func__

    def associate(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        made = create_association(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json["Properties"]
        ec2_backends[account_id][region_name].associate_route_table(properties["RouteTableId"],
                                                                   subnet_id=properties["SubnetId"])
        return made

    def disassociate(cls, resource_name, cloudformation_json, account_id, region_name):
        # moto names an association by its route table; CDK gives each subnet a table of its own.
        table = ec2_backends[account_id][region_name].route_tables.get(resource_name)
        if table is not None:
            table._associations.clear()

    def delete_route_table(cls, resource_name, cloudformation_json, account_id, region_name):
        # Raises while a subnet is still associated: moto's delete tries again on its next pass.
        ec2_backends[account_id][region_name].delete_route_table(resource_name)

    delete_role = Role.delete_from_cloudformation_json.__func__

    def detach_then_delete_role(cls, resource_name, cloudformation_json, account_id, region_name):
        backend = iam_backends[account_id]["aws"]
        for role in list(backend.roles.values()):
            if role.name == resource_name:
                for arn in list(role.managed_policies):
                    backend.detach_role_policy(arn, resource_name)
        delete_role(cls, resource_name, cloudformation_json, account_id, region_name)

    monkeypatch.setattr(VPCEndPoint, "delete_from_cloudformation_json", classmethod(delete_endpoint), raising=False)
    monkeypatch.setattr(RouteTable, "delete_from_cloudformation_json", classmethod(delete_route_table), raising=False)
    monkeypatch.setattr(SubnetRouteTableAssociation, "delete_from_cloudformation_json", classmethod(disassociate),
                        raising=False)
    monkeypatch.setattr(SubnetRouteTableAssociation, "create_from_cloudformation_json", classmethod(associate))
    monkeypatch.setattr(Role, "delete_from_cloudformation_json", classmethod(detach_then_delete_role))
