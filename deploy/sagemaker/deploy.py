#!/usr/bin/env python3
"""Hosts the fruits identification service on Amazon SageMaker, in eu-west-3.

    deploy.py push      --image localhost/fruits-serve:TAG [--repository fruits-serve]
    deploy.py deploy    --image-tag TAG --model-tar model.tar.gz --bucket B --role-arn ARN [--name fruits]
                        [--async-output s3://B/P/]
    deploy.py invoke    --name fruits [--async-input s3://B/P/] PHOTO [PHOTO ...]
    deploy.py transform --name fruits --input s3://B/photos/ --output s3://B/identified/
    deploy.py delete    --name fruits [--delete-model-data]

push      creates the ECR repository (immutable tags, scan on push, AES256) if
          needed, logs the container tool in with an ECR token and pushes the
          image built by build.sh. --registry pushes to another registry instead
          (a mirror, or a local one for a rehearsal); ECR must then learn of the
          image by other means.
deploy    uploads model.tar.gz (package_model.py) with SSE-S3, checks the image
          tag is in ECR and built for the instance type's architecture (x86_64
          for ml.m5/c5/..., arm64 for Graviton ml.*g types: build.sh --platform),
          creates a model (network isolation on: the container needs no network)
          and an endpoint configuration, both named after the time, with
          --instances instances (2: one may fail or be replaced while the other
          answers). A new endpoint is created; an existing one is updated
          blue/green (UpdateEndpoint: the new fleet takes the traffic once it is
          healthy, the old one is removed after, no downtime; rolled back on
          failure), and the previous model and configuration are deleted. Then
          target-tracking autoscaling on invocations per instance, between
          --instances and --max-instances. Waits until InService.
          --async-output makes an asynchronous endpoint instead, for full-size
          phone photos (up to 50 MB and 50 megapixels, where InvokeEndpoint stops
          at 6 MB): requests are queued, each photo is read from S3 and its
          answer written under the output prefix (failures under its
          `failures/`); it scales on the queue per instance, down to zero
          instances when idle (--min-instances 0, the default there) and back
          up when photos wait.
invoke    sends each photo to the endpoint (POST /invocations in the container)
          and prints the answers. With --async-input, each photo is uploaded
          under that prefix, queued with InvokeEndpointAsync, and its answer
          read from S3 once written (--timeout seconds at most).
transform starts a Batch Transform job that identifies every object under an S3
          prefix (one photo per request) and writes `<photo>.out` JSON answers
          under the output prefix; --wait waits for it.
delete    deletes the endpoint, its configuration and the model (and with
          --delete-model-data the uploaded model.tar.gz): a live endpoint bills
          every hour until deleted.

Credentials come from the standard AWS chain; AWS_ENDPOINT_URL points every
client at a stand-in (moto) for rehearsals. Every resource is created in
--region (eu-west-3): data, images, models and logs stay in Paris (GDPR); another
region is refused unless --allow-region-outside-paris is given too (AWS_REGION and
profiles do not move it).
"""

import argparse
import base64
import os
import subprocess
import sys
import time

import boto3

REGION = "eu-west-3"
# Small CPU instances (2 and 4 vCPUs): MobileNetV2 identifies a photo in ~13 ms on one core.
DEFAULT_ENDPOINT_INSTANCE = "ml.m5.large"
DEFAULT_TRANSFORM_INSTANCE = "ml.m5.xlarge"
# Two instances: SageMaker spreads them over availability zones, so one may
# fail or be patched while the other answers.
DEFAULT_INSTANCES = 2
DEFAULT_MAX_INSTANCES = 6
# Target invocations per instance per minute for autoscaling. One ml.m5.large
# answers a photo in ~40 ms of one core (docs/identify.md), so about 3,000 a
# minute on its 2 vCPUs at full load: scaling out at a fifth of that keeps
# latency flat through a burst while new instances start (several minutes).
DEFAULT_INVOCATIONS_PER_INSTANCE = 600
# InvokeEndpoint refuses bodies over 6 MB: the container is told the same
# (fruits serve --max-body-mib), so a local test and the endpoint agree.
INVOKE_MAX_MB = 6
VARIANT = "AllTraffic"
# Asynchronous endpoints take their photos from S3 (InvokeEndpointAsync accepts
# up to 1 GB): the container is told to take bodies and photos up to these, so
# a phone's full-size photo (12-50 megapixels, 3-25 MB as JPEG) is identified
# as it was taken.
ASYNC_MAX_MB = 50
ASYNC_MAX_MEGAPIXELS = 50
# Photos one instance works on at once: one per vCPU of an ml.m5.large, as a
# 12 MP photo keeps one core busy decoding for about half a second.
ASYNC_CONCURRENCY_PER_INSTANCE = 2
# Autoscaling target of an asynchronous endpoint: queued photos per instance.
# At ~1.9 full-size photos a second per core (docs/scale.md), 20 queued photos
# are about 5 s of work for an ml.m5.large.
DEFAULT_BACKLOG_PER_INSTANCE = 20
# How long `invoke --async-input` waits for an answer to appear in S3: an
# endpoint scaled to zero takes several minutes to start an instance.
DEFAULT_ASYNC_TIMEOUT = 900
# The autoscaling policies and alarm deploy() may create, by suffix of the
# endpoint's name (delete.sh removes the same names).
SCALING_POLICIES = ("invocations", "backlog", "from-zero")
BACKLOG_ALARM = "has-backlog-without-capacity"


TAGS = [{"Key": "project", "Value": "fruits"}, {"Key": "data-residency", "Value": REGION}]


def fail(message):
    sys.exit(f"deploy.py: {message}")


def session(region):
    return boto3.session.Session(region_name=region)


def ensure_repository(ecr, name):
    """The ECR repository `name`, created locked down if missing; returns its URI."""
    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException:
        repo = ecr.create_repository(
            repositoryName=name,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfiguration={"encryptionType": "AES256"},
            tags=TAGS,
        )["repository"]
    return repo["repositoryUri"]


def push(sess, image, repository, registry=None, tool="podman"):
    """Pushes the local `image` to ECR (or `registry`); returns the pushed reference."""
    ecr = sess.client("ecr")
    uri = ensure_repository(ecr, repository)
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    if registry:
        target = f"{registry}/{repository}:{tag}"
        tls = ["--tls-verify=false"] if tool == "podman" and registry.startswith(("127.0.0.1", "localhost")) else []
    else:
        target = f"{uri}:{tag}"
        token = ecr.get_authorization_token()["authorizationData"][0]
        user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
        host = token["proxyEndpoint"].removeprefix("https://")
        subprocess.run([tool, "login", "--username", user, "--password-stdin", host],
                       input=password.encode(), check=True)
        tls = []
    subprocess.run([tool, "tag", image, target], check=True)
    subprocess.run([tool, "push", *tls, target], check=True)
    print(f"pushed {target}")
    return target


def image_uri(sess, repository, tag):
    """The ECR URI of `repository:tag`, after checking ECR holds that tag."""
    ecr = sess.client("ecr")
    uri = ensure_repository(ecr, repository)
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ecr.exceptions.ImageNotFoundException:
        fail(f"ECR repository {repository} has no image tagged {tag}: run `deploy.py push` first")
    return f"{uri}:{tag}"


def check_bucket_region(sess, bucket, what):
    """Refuses a bucket outside the session's region: `what` must stay in Paris."""
    s3 = sess.client("s3")
    region = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    if region != sess.region_name:
        fail(f"bucket {bucket} is in {region}, not {sess.region_name}: {what} must stay in Paris")
    return s3


def split_s3(uri, option):
    """(bucket, prefix ending in / or empty) of an s3://bucket/prefix/ URI."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        fail(f"{option} {uri} is not an s3://bucket/prefix/ URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def s3_object(uri):
    """(bucket, key) of an s3://bucket/key URI."""
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return bucket, key


def upload_model(sess, model_tar, bucket, prefix):
    if not os.path.isfile(model_tar):
        fail(f"{model_tar} does not exist (make it with deploy/sagemaker/package_model.py)")
    s3 = check_bucket_region(sess, bucket, "the model")
    key = f"{prefix.strip('/')}/model.tar.gz"
    s3.upload_file(model_tar, bucket, key, ExtraArgs={"ServerSideEncryption": "AES256"})
    return f"s3://{bucket}/{key}"


def endpoint_names(name, stamp=None):
    """The names of a deployment: the endpoint keeps `name`; its model and
    configuration carry the deployment's time, so a new deployment never
    collides with the one it replaces."""
    suffix = f"-{stamp}" if stamp else ""
    return {"model": f"{name}-model{suffix}", "config": f"{name}-config{suffix}", "endpoint": name}


def architecture_of(instance_type):
    """x86_64, or arm64 for the Graviton families (ml.m6g, ml.c7g, ... : a
    `g` after the generation digit)."""
    family = instance_type.removeprefix("ml.").split(".")[0]
    digits = "".join(c for c in family if c.isdigit())
    return "arm64" if digits and family.split(digits, 1)[1].startswith("g") else "x86_64"


def check_architecture(tag, instance_type):
    """Refuses an image tag whose architecture suffix (build.sh: `-amd64`,
    `-arm64`) does not run on `instance_type`."""
    want = architecture_of(instance_type)
    got = {"amd64": "x86_64", "arm64": "arm64"}.get(tag.rsplit("-", 1)[-1])
    if got is None:
        fail(f"image tag {tag} names no architecture (-amd64 or -arm64, as build.sh tags images): "
             f"cannot check it runs on {instance_type} ({want})")
    if got != want:
        fail(f"image tag {tag} is built for {got} but {instance_type} runs {want}: build it with "
             f"build.sh --platform linux/{'arm64' if want == 'arm64' else 'amd64'}")


def current_endpoint(sm, name):
    """The endpoint's description, or None when there is none of that name."""
    try:
        return sm.describe_endpoint(EndpointName=name)
    except sm.exceptions.ClientError as e:
        if "Could not find endpoint" in str(e) or e.response["Error"].get("Code") == "ValidationException":
            return None
        raise


def scaling_target(name):
    """What Application Auto Scaling calls the endpoint's instance count."""
    return {"ServiceNamespace": "sagemaker", "ResourceId": f"endpoint/{name}/variant/{VARIANT}",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}


def autoscale(sess, name, min_instances, max_instances, per_instance, backlog=None):
    """Target tracking on invocations per instance (SageMaker's predefined
    metric), or for an asynchronous endpoint (`backlog`: queued photos per
    instance) on its queue, with a step policy that starts an instance when
    photos wait and none is running (target tracking cannot scale from zero)."""
    aas = sess.client("application-autoscaling")
    target = scaling_target(name)
    aas.register_scalable_target(**target, MinCapacity=min_instances, MaxCapacity=max_instances)
    if backlog is None:
        metric = {"PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
        aas.put_scaling_policy(
            PolicyName=f"{name}-invocations", PolicyType="TargetTrackingScaling", **target,
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(per_instance), **metric,
                # Out fast, in slowly: a burst of shoppers should not wait for instances.
                "ScaleOutCooldown": 60, "ScaleInCooldown": 600,
            })
        return
    on_endpoint = [{"Name": "EndpointName", "Value": name}]
    aas.put_scaling_policy(
        PolicyName=f"{name}-backlog", PolicyType="TargetTrackingScaling", **target,
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(backlog),
            "CustomizedMetricSpecification": {"MetricName": "ApproximateBacklogSizePerInstance",
                                              "Namespace": "AWS/SageMaker", "Dimensions": on_endpoint,
                                              "Statistic": "Average"},
            "ScaleOutCooldown": 60, "ScaleInCooldown": 600,
        })
    if min_instances > 0:
        return
    step = aas.put_scaling_policy(
        PolicyName=f"{name}-from-zero", PolicyType="StepScaling", **target,
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        })
    sess.client("cloudwatch").put_metric_alarm(
        AlarmName=f"{name}-{BACKLOG_ALARM}", AlarmDescription=f"photos wait for {name} and no instance runs",
        Namespace="AWS/SageMaker", MetricName="HasBacklogWithoutCapacity", Dimensions=on_endpoint,
        Statistic="Average", Period=60, EvaluationPeriods=2, DatapointsToAlarm=2, Threshold=1.0,
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="missing",
        AlarmActions=[step["PolicyARN"]], Tags=TAGS)


def unscale(sess, name):
    """Removes the endpoint's scaling policies, target and alarm (needed before
    an update that changes the instance type, and before deleting it)."""
    aas = sess.client("application-autoscaling")
    target = scaling_target(name)
    # A policy or target that is not there: AWS says ObjectNotFound, moto ValidationException.
    missing = (aas.exceptions.ObjectNotFoundException, aas.exceptions.ValidationException)
    for policy in SCALING_POLICIES:
        try:
            aas.delete_scaling_policy(PolicyName=f"{name}-{policy}", **target)
        except missing:
            pass
    try:
        aas.deregister_scalable_target(**target)
    except missing:
        pass
    # DeleteAlarms ignores names it does not know.
    sess.client("cloudwatch").delete_alarms(AlarmNames=[f"{name}-{BACKLOG_ALARM}"])


# Blue/green: the new fleet is started beside the old one, takes all the
# traffic at once when healthy, and the old fleet is kept 5 minutes in case
# the update must roll back.
BLUE_GREEN = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
        "TerminationWaitInSeconds": 300,
        "MaximumExecutionTimeoutInSeconds": 3600,
    },
}


def async_config(output_uri):
    """The AsyncInferenceConfig writing answers under `output_uri` and failures
    under its `failures/`."""
    return {
        "OutputConfig": {"S3OutputPath": output_uri, "S3FailurePath": f"{output_uri.rstrip('/')}/failures/"},
        "ClientConfig": {"MaxConcurrentInvocationsPerInstance": ASYNC_CONCURRENCY_PER_INSTANCE},
    }


def deploy(sess, name, image, model_data, role_arn, instance_type=DEFAULT_ENDPOINT_INSTANCE, wait=True,
           instances=None, max_instances=DEFAULT_MAX_INSTANCES, per_instance=DEFAULT_INVOCATIONS_PER_INSTANCE,
           stamp=None, async_output=None, min_instances=None, backlog=DEFAULT_BACKLOG_PER_INSTANCE):
    """Creates the endpoint (asynchronous with `async_output`), or updates it
    blue/green; returns its name."""
    # Real-time: 2 instances, never fewer. Asynchronous: photos wait in the
    # queue while an instance starts, so one to begin with and none when idle.
    instances = instances if instances is not None else (1 if async_output else DEFAULT_INSTANCES)
    min_instances = min_instances if min_instances is not None else (0 if async_output else instances)
    if not 1 <= instances <= max_instances:
        fail(f"--instances {instances} must be at least 1 and at most --max-instances {max_instances}")
    if not 0 <= min_instances <= instances:
        fail(f"--min-instances {min_instances} must be between 0 and --instances {instances}")
    if min_instances == 0 and not async_output:
        fail("--min-instances 0 needs an asynchronous endpoint (--async-output): a real-time endpoint "
             "with no instance refuses every photo")
    sm = sess.client("sagemaker")
    if async_output:
        check_bucket_region(sess, split_s3(async_output, "--async-output")[0], "the answers")
    names = endpoint_names(name, stamp or time.strftime("%Y%m%d-%H%M%S"))
    existing = current_endpoint(sm, name)
    previous = None
    if existing is not None:
        previous = sm.describe_endpoint_config(EndpointConfigName=existing["EndpointConfigName"])
        was_async, kinds = bool(previous.get("AsyncInferenceConfig")), ("real-time", "asynchronous")
        if was_async != bool(async_output):
            fail(f"endpoint {name} is {kinds[was_async]} and this deployment is "
                 f"{kinds[bool(async_output)]}: deploy it under another --name (or delete {name} first)")
    environment = {"FRUITS_ACCESS_LOG": "1"}
    if async_output:
        # The body comes from S3, not from InvokeEndpoint's 6 MB request.
        environment |= {"FRUITS_MAX_BODY_MIB": str(ASYNC_MAX_MB), "FRUITS_MAX_MEGAPIXELS": str(ASYNC_MAX_MEGAPIXELS)}
    sm.create_model(
        ModelName=names["model"],
        PrimaryContainer={"Image": image, "ModelDataUrl": model_data, "Environment": environment},
        ExecutionRoleArn=role_arn,
        # The container reads /opt/ml/model and answers HTTP: it needs no network.
        EnableNetworkIsolation=True,
        Tags=TAGS,
    )
    sm.create_endpoint_config(
        EndpointConfigName=names["config"],
        ProductionVariants=[{
            "VariantName": VARIANT,
            "ModelName": names["model"],
            "InstanceType": instance_type,
            "InitialInstanceCount": instances,
            # Photos are decoded and identified in well under a second.
            "ContainerStartupHealthCheckTimeoutInSeconds": 120,
        }],
        **({"AsyncInferenceConfig": async_config(async_output)} if async_output else {}),
        Tags=TAGS,
    )
    if existing is None:
        sm.create_endpoint(EndpointName=names["endpoint"], EndpointConfigName=names["config"], Tags=TAGS)
    else:
        old_type = previous["ProductionVariants"][0]["InstanceType"]
        # Autoscaling allows an update that changes the model only; another
        # instance type needs the variant deregistered first (AWS's rule).
        if old_type != instance_type:
            unscale(sess, name)
        sm.update_endpoint(EndpointName=name, EndpointConfigName=names["config"],
                           RetainAllVariantProperties=old_type == instance_type,
                           DeploymentConfig=BLUE_GREEN)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=names["endpoint"], WaiterConfig={"Delay": 15, "MaxAttempts": 240})
    status = sm.describe_endpoint(EndpointName=names["endpoint"])["EndpointStatus"]
    print(f"endpoint {names['endpoint']}: {status} ({names['config']})")
    if wait:
        autoscale(sess, name, min_instances, max_instances, per_instance, backlog if async_output else None)
        if previous is not None and status == "InService":
            # The old fleet is gone once the update is done: its model and
            # configuration are no longer used by anything.
            sm.delete_endpoint_config(EndpointConfigName=previous["EndpointConfigName"])
            for variant in previous["ProductionVariants"]:
                sm.delete_model(ModelName=variant["ModelName"])
    return names["endpoint"]


def content_type(path):
    ext = os.path.splitext(path)[1].lower()
    return {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
            ".webp": "image/webp", ".bmp": "image/bmp"}.get(ext, "application/octet-stream")


def invoke(sess, name, photos):
    runtime = sess.client("sagemaker-runtime")
    answers = []
    for photo in photos:
        with open(photo, "rb") as f:
            body = f.read()
        r = runtime.invoke_endpoint(EndpointName=name, ContentType=content_type(photo),
                                    Accept="application/json", Body=body)
        answer = r["Body"].read().decode()
        answers.append(answer)
        print(f"{photo}: {answer}")
    return answers


def read_answer(s3, location, failure, deadline):
    """The text at `location` (or at `failure`, where SageMaker writes a failed
    request's error), once one of them exists; None past `deadline`."""
    while True:
        for uri in filter(None, (location, failure)):
            bucket, key = s3_object(uri)
            try:
                return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            except s3.exceptions.NoSuchKey:
                pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(2)


def invoke_async(sess, name, photos, input_uri, timeout=DEFAULT_ASYNC_TIMEOUT):
    """Uploads each photo under `input_uri`, queues it on the asynchronous
    endpoint `name`, and returns the answers SageMaker writes to S3 (None for
    one not written within `timeout` seconds)."""
    bucket, prefix = split_s3(input_uri, "--async-input")
    s3 = check_bucket_region(sess, bucket, "the photos")
    runtime = sess.client("sagemaker-runtime")
    queued = []
    for photo in photos:
        key = f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{len(queued)}-{os.path.basename(photo)}"
        s3.upload_file(photo, bucket, key, ExtraArgs={"ServerSideEncryption": "AES256",
                                                      "ContentType": content_type(photo)})
        r = runtime.invoke_endpoint_async(EndpointName=name, InputLocation=f"s3://{bucket}/{key}",
                                          ContentType=content_type(photo), Accept="application/json",
                                          InvocationTimeoutSeconds=600)
        queued.append((photo, r["OutputLocation"], r.get("FailureLocation")))
    deadline = time.monotonic() + timeout
    answers = []
    for photo, location, failure in queued:
        answer = read_answer(s3, location, failure, deadline)
        answers.append(answer)
        print(f"{photo}: {answer if answer is not None else f'no answer within {timeout} s (it will be at {location})'}")
    return answers


def transform_job(name, model_name, input_uri, output_uri, instance_type=DEFAULT_TRANSFORM_INSTANCE):
    """The CreateTransformJob request identifying every photo under `input_uri`."""
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        # One photo per request, as /invocations takes them.
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": INVOKE_MAX_MB,
        # A photo that cannot be read gets an error record (its `.out` file
        # says why) instead of failing the whole job.
        "Environment": {"FRUITS_ERRORS_AS_RECORDS": "1"},
        "MaxConcurrentTransforms": 4,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "application/x-image",
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "application/json", "AssembleWith": "None"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
        "Tags": TAGS,
    }


def deployed_model(sm, name):
    """The model the endpoint `name` serves now."""
    endpoint = current_endpoint(sm, name)
    if endpoint is None:
        fail(f"no endpoint {name}: deploy it first (the transform job uses its model)")
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    return config["ProductionVariants"][0]["ModelName"]


def transform(sess, name, input_uri, output_uri, instance_type=DEFAULT_TRANSFORM_INSTANCE, wait=False):
    sm = sess.client("sagemaker")
    job = f"{name}-transform-{time.strftime('%Y%m%d-%H%M%S')}"
    sm.create_transform_job(**transform_job(job, deployed_model(sm, name), input_uri, output_uri, instance_type))
    if wait:
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=job, WaiterConfig={"Delay": 30, "MaxAttempts": 240})
    status = sm.describe_transform_job(TransformJobName=job)["TransformJobStatus"]
    print(f"transform job {job}: {status}")
    return job


def delete(sess, name, delete_model_data=False):
    """Deletes the endpoint, its autoscaling, its configuration and model (and
    the uploaded model.tar.gz with `delete_model_data`)."""
    sm = sess.client("sagemaker")
    endpoint = current_endpoint(sm, name)
    if endpoint is None:
        print(f"no endpoint {name} (already gone?)")
        return
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    models = [v["ModelName"] for v in config["ProductionVariants"]]
    model_data = [sm.describe_model(ModelName=m)["PrimaryContainer"].get("ModelDataUrl") for m in models]
    unscale(sess, name)
    sm.delete_endpoint(EndpointName=name)
    sm.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])
    for model in models:
        sm.delete_model(ModelName=model)
    if delete_model_data:
        for url in filter(None, model_data):
            bucket, key = s3_object(url)
            sess.client("s3").delete_object(Bucket=bucket, Key=key)
    print(f"deleted endpoint {name}, its autoscaling, configuration and model")


def main(argv=None, sess=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", default=REGION,
                        help=f"AWS region [{REGION}, Paris: the data, images, models and logs stay there]")
    parser.add_argument("--allow-region-outside-paris", action="store_true",
                        help="accept a --region other than eu-west-3 (check the data may leave Paris first)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("push")
    p.add_argument("--image", required=True, help="local image (deploy/sagemaker/build.sh prints it)")
    p.add_argument("--repository", default="fruits-serve")
    p.add_argument("--registry", help="push here instead of ECR (host:port)")
    p.add_argument("--tool", default=os.environ.get("CONTAINER_TOOL", "podman"))
    p = sub.add_parser("deploy")
    p.add_argument("--name", default="fruits")
    p.add_argument("--image-tag", required=True)
    p.add_argument("--repository", default="fruits-serve")
    p.add_argument("--model-tar", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="fruits/sagemaker")
    p.add_argument("--role-arn", required=True, help="the SageMaker execution role (deploy/iam/sagemaker-*.json)")
    p.add_argument("--instance-type", default=DEFAULT_ENDPOINT_INSTANCE)
    p.add_argument("--instances", type=int,
                   help=f"instances to start with [{DEFAULT_INSTANCES}; asynchronous: 1]")
    p.add_argument("--min-instances", type=int,
                   help="the autoscaling minimum [--instances; asynchronous: 0, none while no photo waits]")
    p.add_argument("--max-instances", type=int, default=DEFAULT_MAX_INSTANCES,
                   help=f"the autoscaling maximum [{DEFAULT_MAX_INSTANCES}]")
    p.add_argument("--invocations-per-instance", type=int, default=DEFAULT_INVOCATIONS_PER_INSTANCE,
                   help=f"autoscaling target, per instance per minute [{DEFAULT_INVOCATIONS_PER_INSTANCE}]")
    p.add_argument("--async-output", metavar="S3_URI",
                   help=f"make an asynchronous endpoint for full-size photos (up to {ASYNC_MAX_MB} MB): answers "
                        "are written under this s3://bucket/prefix/ (in Paris), failures under its failures/")
    p.add_argument("--backlog-per-instance", type=int, default=DEFAULT_BACKLOG_PER_INSTANCE,
                   help=f"asynchronous autoscaling target, queued photos per instance [{DEFAULT_BACKLOG_PER_INSTANCE}]")
    p.add_argument("--no-wait", action="store_true",
                   help="return once the request is accepted (autoscaling and the old model's removal are then "
                        "left undone)")
    p = sub.add_parser("invoke")
    p.add_argument("--name", default="fruits")
    p.add_argument("--async-input", metavar="S3_URI",
                   help="the endpoint is asynchronous: upload the photos under this s3://bucket/prefix/ and queue them")
    p.add_argument("--timeout", type=float, default=DEFAULT_ASYNC_TIMEOUT,
                   help=f"seconds to wait for asynchronous answers [{DEFAULT_ASYNC_TIMEOUT}]")
    p.add_argument("photos", nargs="+")
    p = sub.add_parser("transform")
    p.add_argument("--name", default="fruits")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--instance-type", default=DEFAULT_TRANSFORM_INSTANCE)
    p.add_argument("--wait", action="store_true")
    p = sub.add_parser("delete")
    p.add_argument("--name", default="fruits")
    p.add_argument("--delete-model-data", action="store_true")
    args = parser.parse_args(argv)
    # Pinned to Paris (GDPR): neither AWS_REGION nor a profile's region moves it; another
    # region takes --region and an explicit override.
    if args.region != REGION and not args.allow_region_outside_paris:
        parser.error(f"--region {args.region} is not {REGION} (Paris), where the data must stay; "
                     "add --allow-region-outside-paris if it may leave")
    sess = sess or session(args.region)
    if args.command == "push":
        return push(sess, args.image, args.repository, args.registry, args.tool)
    if args.command == "deploy":
        check_architecture(args.image_tag, args.instance_type)
        image = image_uri(sess, args.repository, args.image_tag)
        model_data = upload_model(sess, args.model_tar, args.bucket, args.prefix)
        return deploy(sess, args.name, image, model_data, args.role_arn, args.instance_type,
                      wait=not args.no_wait, instances=args.instances, max_instances=args.max_instances,
                      per_instance=args.invocations_per_instance, async_output=args.async_output,
                      min_instances=args.min_instances, backlog=args.backlog_per_instance)
    if args.command == "invoke":
        if args.async_input:
            return invoke_async(sess, args.name, args.photos, args.async_input, args.timeout)
        return invoke(sess, args.name, args.photos)
    if args.command == "transform":
        return transform(sess, args.name, args.input, args.output, args.instance_type, args.wait)
    if args.command == "delete":
        return delete(sess, args.name, args.delete_model_data)
    return None


if __name__ == "__main__":
    main()
