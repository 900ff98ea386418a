"""The fruits AWS stack: everything the EMR and SageMaker kits need, as one
CloudFormation stack in eu-west-3 that a team can review, diff, deploy and delete.

The IAM documents are the kits' own (deploy/iam/*.json, deploy/emr/*.json) with
their placeholders filled by the stack's resources: one source of truth for
who may do what, whether the stack or the shell kits create the roles.

Resources, and why each is there:
- four buckets (photos, results, artifacts, logs): Block Public Access, default
  encryption (SSE-S3, or SSE-KMS with the stack's key: context kms_buckets),
  TLS-only bucket policy, lifecycle rules (incomplete uploads, and expiry of
  EMR logs, access logs, Batch Transform outputs and, if asked, photos), server
  access logs into the logs bucket;
- a VPC of two private subnets with no route to the internet: an S3 gateway
  endpoint (the photos and results never leave AWS's network, and no NAT bills
  by the hour) and a KMS interface endpoint (EMR's disk encryption keys);
  tagged for AmazonEMRServicePolicy_v2, which only creates EMR's security
  groups in a VPC carrying for-use-with-amazon-emr-managed-policies=true;
- a KMS key (rotated yearly) for EMR's local disks and EBS volumes, the
  container image and, if asked, the buckets;
- the EMR security configuration: at rest (S3, local disks, EBS), in transit
  (TLS with the PEM certificates deploy.sh uploads), IMDSv2 only;
- IAM: the EMR instance role and profile, the EMR service role, the SageMaker
  execution role;
- the ECR repository of the service image (scanned on push, immutable tags,
  the last 10 images kept);
- CloudWatch log groups of the SageMaker endpoint and Batch Transform jobs with
  a retention period (SageMaker would otherwise create them never expiring);
- an AWS Budgets monthly cost budget mailing AlertEmail at 80% (actual) and
  100% (forecast);
- optionally (context audit) a CloudTrail trail of the S3 data events on the
  photos and results buckets: who read or wrote which photo, for GDPR audits.
"""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_emr as emr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

REPO = Path(__file__).resolve().parents[2]
#: The only region the stack deploys to (GDPR: the photos stay in Paris).
REGION = "eu-west-3"
#: Names the kits already use (deploy/emr, deploy/sagemaker).
INSTANCE_ROLE = "fruits-emr-instance-profile"
SERVICE_ROLE = "fruits-emr-service-role"
SAGEMAKER_ROLE = "fruits-sagemaker-execution"
REPOSITORY = "fruits-serve"
SECURITY_CONFIGURATION = "fruits"
ENDPOINT = "fruits"
#: Where the EMR in-transit TLS certificates go in the artifacts bucket (deploy.sh uploads them).
TLS_CERTIFICATES_KEY = "fruits/emr-tls/certificates.zip"
#: The tag AmazonEMRServicePolicy_v2 requires on the VPC and subnets EMR uses.
EMR_MANAGED_TAG = "for-use-with-amazon-emr-managed-policies"


def kit_document(relative: str, **values: str) -> dict:
    """A kit's IAM policy document with its CAPITAL placeholders replaced by
    `values` (tokens allowed: CDK turns them into Fn::Join)."""
    text = (REPO / relative).read_text()
    # Longest first: INPUT_BUCKET must not be half-replaced by a BUCKET placeholder.
    for name in sorted(values, key=len, reverse=True):
        text = text.replace(name, values[name])
    return json.loads(text)


def checkov_skip(resource: cdk.CfnResource, *checks: tuple[str, str]) -> None:
    """Records why a checkov finding does not apply, beside the resource it is about."""
    skips = resource.get_metadata("checkov") or {"skip": []}
    skips["skip"].extend({"id": check, "comment": why} for check, why in checks)
    resource.add_metadata("checkov", skips)


class FruitsStack(cdk.Stack):
    """The stack; context: kms_buckets (SSE-KMS on the buckets), audit (CloudTrail
    data events), photo_days (photos expire after N days; 0 keeps them),
    log_days (EMR, access and container logs), transform_days, input_prefix,
    output_prefix."""

    def __init__(self, scope: Construct, construct_id: str, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        ctx = self.node.try_get_context
        kms_buckets = str(ctx("kms_buckets") or "false").lower() == "true"
        audit = str(ctx("audit") or "false").lower() == "true"
        photo_days = int(ctx("photo_days") or 0)
        log_days = int(ctx("log_days") or 30)
        transform_days = int(ctx("transform_days") or 30)
        input_prefix = str(ctx("input_prefix") or "photos").strip("/")
        output_prefix = str(ctx("output_prefix") or "runs").strip("/")

        alert_email = cdk.CfnParameter(
            self, "AlertEmail", type="String", allowed_pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+",
            description="Who AWS Budgets mails when the month's cost nears BudgetUsd")
        budget_usd = cdk.CfnParameter(
            self, "BudgetUsd", type="Number", default=300, min_value=1,
            description="Monthly cost budget in USD (alerts at 80% actual and 100% forecast)")

        key = kms.Key(self, "Key", alias="alias/fruits", enable_key_rotation=True,
                      description="fruits: EMR local disks and EBS, the service image, optionally the buckets",
                      pending_window=cdk.Duration.days(7), removal_policy=cdk.RemovalPolicy.DESTROY)

        # --- buckets ---------------------------------------------------------------
        account_region = f"{cdk.Aws.ACCOUNT_ID}-{REGION}"
        logs_bucket = s3.Bucket(
            self, "LogsBucket", bucket_name=f"fruits-logs-{account_region}",
            # Server access logs can only be delivered to an SSE-S3 bucket.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            # No ACLs: S3's log delivery is let in by the bucket policy.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=cdk.RemovalPolicy.DESTROY,
            lifecycle_rules=[
                s3.LifecycleRule(id="abort-incomplete-multipart-uploads",
                                 abort_incomplete_multipart_upload_after=cdk.Duration.days(1)),
                s3.LifecycleRule(id="expire-emr-logs", prefix="emr-logs/", expiration=cdk.Duration.days(log_days)),
                s3.LifecycleRule(id="expire-access-logs", prefix="s3-access/", expiration=cdk.Duration.days(log_days)),
                s3.LifecycleRule(id="expire-audit-logs", prefix="cloudtrail/", expiration=cdk.Duration.days(365)),
            ])
        checkov_skip(logs_bucket.node.default_child,
                     ("CKV_AWS_18", "the logs bucket is the access-log target; logging it into itself would loop"),
                     ("CKV_AWS_21", "logs expire by lifecycle; versions would keep them past their retention"))

        def data_bucket(cid: str, name: str, rules: list[s3.LifecycleRule]) -> s3.Bucket:
            bucket = s3.Bucket(
                self, cid, bucket_name=f"fruits-{name}-{account_region}",
                encryption=s3.BucketEncryption.KMS if kms_buckets else s3.BucketEncryption.S3_MANAGED,
                encryption_key=key if kms_buckets else None, bucket_key_enabled=kms_buckets or None,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                server_access_logs_bucket=logs_bucket, server_access_logs_prefix=f"s3-access/{name}/",
                removal_policy=cdk.RemovalPolicy.DESTROY,
                lifecycle_rules=[s3.LifecycleRule(id="abort-incomplete-multipart-uploads",
                                                  abort_incomplete_multipart_upload_after=cdk.Duration.days(1)),
                                 *rules])
            checkov_skip(bucket.node.default_child,
                         ("CKV_AWS_21", "no versioning: an erasure (fruits forget, GDPR) must not leave old "
                                        "versions of a person's rows behind"))
            return bucket

        photos = data_bucket("PhotosBucket", "photos", [
            s3.LifecycleRule(id="expire-photos", prefix=f"{input_prefix}/", expiration=cdk.Duration.days(photo_days))
        ] if photo_days > 0 else [])
        results = data_bucket("ResultsBucket", "results", [
            s3.LifecycleRule(id="expire-transform-outputs", prefix="transform/",
                             expiration=cdk.Duration.days(transform_days))])
        artifacts = data_bucket("ArtifactsBucket", "artifacts", [])

        # --- network ---------------------------------------------------------------
        vpc = ec2.Vpc(
            self, "Vpc", ip_addresses=ec2.IpAddresses.cidr("10.42.0.0/16"), max_azs=2, nat_gateways=0,
            subnet_configuration=[ec2.SubnetConfiguration(name="emr", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                                          cidr_mask=20)],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            # CDK would add a Lambda-backed custom resource for this; EMR makes its own groups.
            restrict_default_security_group=False)
        cdk.Tags.of(vpc).add(EMR_MANAGED_TAG, "true")
        checkov_skip(vpc.node.default_child,
                     ("CKV2_AWS_11", "no flow logs: the subnets have no internet route; S3 access logs and "
                                     "the optional CloudTrail data events record who touched the data"),
                     ("CKV2_AWS_12", "the default security group is unused: EMR creates and manages its own"))
        endpoint_sg = ec2.SecurityGroup(self, "KmsEndpointSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                        description="HTTPS to the KMS endpoint from the VPC")
        endpoint_sg.add_ingress_rule(ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(443),
                                     "EMR nodes ask KMS for their disk keys")
        vpc.add_interface_endpoint("Kms", service=ec2.InterfaceVpcEndpointAwsService.KMS,
                                   security_groups=[endpoint_sg], private_dns_enabled=True)

        # --- IAM -------------------------------------------------------------------
        instance_role = iam.Role(
            self, "EmrInstanceRole", role_name=INSTANCE_ROLE,
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="fruits EMR nodes: read the photos and artifacts, write the results and logs")
        iam.ManagedPolicy(
            self, "PipelinePolicy", managed_policy_name="fruits-pipeline", roles=[instance_role],
            document=iam.PolicyDocument.from_json(kit_document(
                "deploy/iam/pipeline-policy.json", INPUT_BUCKET=photos.bucket_name, INPUT_PREFIX=input_prefix,
                OUTPUT_BUCKET=results.bucket_name, OUTPUT_PREFIX=output_prefix)))
        iam.ManagedPolicy(
            self, "ArtifactsPolicy", managed_policy_name="fruits-emr-artifacts", roles=[instance_role],
            document=iam.PolicyDocument.from_json(kit_document(
                "deploy/emr/artifacts-policy.json", ARTIFACT_BUCKET=artifacts.bucket_name,
                LOG_BUCKET=logs_bucket.bucket_name)))
        profile = iam.CfnInstanceProfile(self, "EmrInstanceProfile", instance_profile_name=INSTANCE_ROLE,
                                         roles=[instance_role.role_name])

        service_role = iam.Role(
            self, "EmrServiceRole", role_name=SERVICE_ROLE,
            assumed_by=iam.ServicePrincipal("elasticmapreduce.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonEMRServicePolicy_v2")],
            inline_policies={"pass-fruits-instance-role": iam.PolicyDocument.from_json(
                kit_document("deploy/emr/service-role-passrole.json"))},
            description="Amazon EMR runs the fruits clusters")

        sagemaker_role = iam.Role(
            self, "SageMakerRole", role_name=SAGEMAKER_ROLE,
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com",
                                            conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}}),
            inline_policies={"fruits-sagemaker": iam.PolicyDocument.from_json(kit_document(
                "deploy/iam/sagemaker-execution-policy.json", ACCOUNT_ID=cdk.Aws.ACCOUNT_ID,
                MODEL_BUCKET=artifacts.bucket_name, MODEL_PREFIX="fruits/sagemaker",
                INPUT_BUCKET=photos.bucket_name, INPUT_PREFIX=input_prefix,
                OUTPUT_BUCKET=results.bucket_name, OUTPUT_PREFIX="transform"))},
            description="SageMaker runs the fruits service")

        # The key: EMR nodes encrypt their disks with it, EMR's service role lets
        # EC2 attach encrypted EBS volumes (grants), SageMaker pulls the image.
        key.grant_encrypt_decrypt(instance_role)
        key.grant_encrypt_decrypt(service_role)
        key.grant(service_role, "kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")
        key.grant_decrypt(sagemaker_role)

        # --- EMR security configuration ---------------------------------------------
        s3_encryption = ({"EncryptionMode": "SSE-KMS", "AwsKmsKey": key.key_arn} if kms_buckets
                         else {"EncryptionMode": "SSE-S3"})
        security = emr.CfnSecurityConfiguration(
            self, "EmrSecurityConfiguration", name=SECURITY_CONFIGURATION,
            security_configuration={
                "EncryptionConfiguration": {
                    "EnableAtRestEncryption": True,
                    "AtRestEncryptionConfiguration": {
                        "S3EncryptionConfiguration": s3_encryption,
                        "LocalDiskEncryptionConfiguration": {
                            "EncryptionKeyProviderType": "AwsKms", "AwsKmsKey": key.key_arn,
                            "EnableEbsEncryption": True},
                    },
                    "EnableInTransitEncryption": True,
                    "InTransitEncryptionConfiguration": {
                        "TLSCertificateConfiguration": {
                            "CertificateProviderType": "PEM",
                            "S3Object": f"s3://{artifacts.bucket_name}/{TLS_CERTIFICATES_KEY}"}},
                },
                "InstanceMetadataServiceConfiguration": {
                    "MinimumInstanceMetadataServiceVersion": 2, "HttpPutResponseHopLimit": 1},
            })

        # --- SageMaker: image repository and logs --------------------------------------
        repository = ecr.Repository(
            self, "Repository", repository_name=REPOSITORY, image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            encryption=ecr.RepositoryEncryption.KMS, encryption_key=key,
            lifecycle_rules=[ecr.LifecycleRule(description="keep the last 10 images", max_image_count=10)],
            removal_policy=cdk.RemovalPolicy.DESTROY, empty_on_delete=True)
        for cid, name in (("EndpointLogs", f"/aws/sagemaker/Endpoints/{ENDPOINT}"),
                          ("TransformLogs", "/aws/sagemaker/TransformJobs")):
            group = logs.LogGroup(self, cid, log_group_name=name, retention=_retention(log_days),
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
            checkov_skip(group.node.default_child,
                         ("CKV_AWS_158", "CloudWatch Logs encrypts every log group at rest; the container "
                                         "logs hold request metadata, never photos"))

        # --- spend guard ----------------------------------------------------------------
        def notify(kind: str, percent: int) -> budgets.CfnBudget.NotificationWithSubscribersProperty:
            return budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind, comparison_operator="GREATER_THAN", threshold=percent,
                    threshold_type="PERCENTAGE"),
                subscribers=[budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL",
                                                                  address=alert_email.value_as_string)])

        budgets.CfnBudget(
            self, "Budget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name="fruits-monthly", budget_type="COST", time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=budget_usd.value_as_number, unit="USD")),
            notifications_with_subscribers=[notify("ACTUAL", 80), notify("FORECASTED", 100)])

        # --- optional audit trail ----------------------------------------------------------
        if audit:
            trail = cloudtrail.Trail(self, "AuditTrail", trail_name="fruits-data-events", bucket=logs_bucket,
                                     s3_key_prefix="cloudtrail", include_global_service_events=False,
                                     is_multi_region_trail=False, enable_file_validation=True,
                                     management_events=cloudtrail.ReadWriteType.NONE)
            trail.add_s3_event_selector([cloudtrail.S3EventSelector(bucket=photos),
                                         cloudtrail.S3EventSelector(bucket=results)])
            checkov_skip(trail.node.default_child,
                         ("CKV_AWS_35", "the trail's logs are in the SSE-S3 logs bucket (TLS-only, no public "
                                        "access); a KMS key would add a key policy for CloudTrail"),
                         ("CKV_AWS_252", "no SNS topic: nobody is paged per log file"),
                         ("CKV_AWS_67", "data events of two buckets in eu-west-3 only; a multi-region trail "
                                        "would record nothing more"))

        # --- outputs: what the kits read ----------------------------------------------------
        for name, value in (
            ("PhotosBucket", photos.bucket_name), ("ResultsBucket", results.bucket_name),
            ("ArtifactsBucket", artifacts.bucket_name), ("LogsBucket", logs_bucket.bucket_name),
            ("InputPrefix", input_prefix), ("OutputPrefix", output_prefix),
            ("SubnetIds", cdk.Fn.join(",", [s.subnet_id for s in vpc.isolated_subnets])),
            ("EmrInstanceProfile", profile.ref), ("EmrServiceRole", service_role.role_name),
            ("EmrSecurityConfiguration", security.ref),
            ("TlsCertificates", f"s3://{artifacts.bucket_name}/{TLS_CERTIFICATES_KEY}"),
            ("SageMakerRoleArn", sagemaker_role.role_arn), ("RepositoryUri", repository.repository_uri),
            ("KeyArn", key.key_arn),
        ):
            cdk.CfnOutput(self, f"Output{name}", key=name, value=value)


def _retention(days: int) -> logs.RetentionDays:
    """The CloudWatch retention period closest to `days` without going under it."""
    periods = {1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
               60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
               365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS"}
    return getattr(logs.RetentionDays, periods[min((d for d in periods if d >= days), default=731)])
