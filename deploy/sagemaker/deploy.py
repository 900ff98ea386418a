#!/usr/bin/env python3
"""Hosts the fruits identification service on Amazon SageMaker, in eu-west-3.

    deploy.py push      --image localhost/fruits-serve:TAG [--repository fruits-serve]
    deploy.py deploy    --image-tag TAG --model-tar model.tar.gz --bucket B --role-arn ARN [--name fruits]
    deploy.py invoke    --name fruits PHOTO [PHOTO ...]
    deploy.py transform --name fruits --input s3://B/photos/ --output s3://B/identified/
    deploy.py delete    --name fruits [--delete-model-data]

push      creates the ECR repository (immutable tags, scan on push, AES256) if
          needed, logs the container tool in with an ECR token and pushes the
          image built by build.sh. --registry pushes to another registry instead
          (a mirror, or a local one for a rehearsal); ECR must then learn of the
          image by other means.
deploy    uploads model.tar.gz (package_model.py) with SSE-S3, checks the image
          tag is in ECR, creates the model (network isolation on: the container
          needs no network), the endpoint configuration and the endpoint, waits
          until it is InService and prints its name.
invoke    sends each photo to the endpoint (POST /invocations in the container)
          and prints the answers.
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
            tags=[{"Key": "project", "Value": "fruits"}, {"Key": "data-residency", "Value": REGION}],
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


def upload_model(sess, model_tar, bucket, prefix):
    if not os.path.isfile(model_tar):
        fail(f"{model_tar} does not exist (make it with deploy/sagemaker/package_model.py)")
    s3 = sess.client("s3")
    region = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") or "us-east-1"
    if region != sess.region_name:
        fail(f"bucket {bucket} is in {region}, not {sess.region_name}: the model must stay in Paris")
    key = f"{prefix.strip('/')}/model.tar.gz"
    s3.upload_file(model_tar, bucket, key, ExtraArgs={"ServerSideEncryption": "AES256"})
    return f"s3://{bucket}/{key}"


def endpoint_names(name):
    return {"model": f"{name}-model", "config": f"{name}-config", "endpoint": name}


def deploy(sess, name, image, model_data, role_arn, instance_type=DEFAULT_ENDPOINT_INSTANCE, wait=True):
    sm = sess.client("sagemaker")
    names = endpoint_names(name)
    tags = [{"Key": "project", "Value": "fruits"}, {"Key": "data-residency", "Value": REGION}]
    sm.create_model(
        ModelName=names["model"],
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": model_data,
            "Environment": {"FRUITS_ACCESS_LOG": "1"},
        },
        ExecutionRoleArn=role_arn,
        # The container reads /opt/ml/model and answers HTTP: it needs no network.
        EnableNetworkIsolation=True,
        Tags=tags,
    )
    sm.create_endpoint_config(
        EndpointConfigName=names["config"],
        ProductionVariants=[{
            "VariantName": "AllTraffic",
            "ModelName": names["model"],
            "InstanceType": instance_type,
            "InitialInstanceCount": 1,
            # Photos are decoded and identified in well under a second.
            "ContainerStartupHealthCheckTimeoutInSeconds": 120,
        }],
        Tags=tags,
    )
    sm.create_endpoint(EndpointName=names["endpoint"], EndpointConfigName=names["config"], Tags=tags)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=names["endpoint"], WaiterConfig={"Delay": 15, "MaxAttempts": 80})
    status = sm.describe_endpoint(EndpointName=names["endpoint"])["EndpointStatus"]
    print(f"endpoint {names['endpoint']}: {status}")
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


def transform_job(name, model_name, input_uri, output_uri, instance_type=DEFAULT_TRANSFORM_INSTANCE):
    """The CreateTransformJob request identifying every photo under `input_uri`."""
    return {
        "TransformJobName": name,
        "ModelName": model_name,
        # One photo per request, as /invocations takes them.
        "BatchStrategy": "SingleRecord",
        "MaxPayloadInMB": 10,
        "MaxConcurrentTransforms": 4,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
            "ContentType": "application/x-image",
            "SplitType": "None",
            "CompressionType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "application/json", "AssembleWith": "None"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
        "Tags": [{"Key": "project", "Value": "fruits"}, {"Key": "data-residency", "Value": REGION}],
    }


def transform(sess, name, input_uri, output_uri, instance_type=DEFAULT_TRANSFORM_INSTANCE, wait=False):
    sm = sess.client("sagemaker")
    job = f"{name}-transform-{time.strftime('%Y%m%d-%H%M%S')}"
    sm.create_transform_job(**transform_job(job, endpoint_names(name)["model"], input_uri, output_uri,
                                            instance_type))
    if wait:
        sm.get_waiter("transform_job_completed_or_stopped").wait(
            TransformJobName=job, WaiterConfig={"Delay": 30, "MaxAttempts": 240})
    status = sm.describe_transform_job(TransformJobName=job)["TransformJobStatus"]
    print(f"transform job {job}: {status}")
    return job


def delete(sess, name, delete_model_data=False):
    sm = sess.client("sagemaker")
    names = endpoint_names(name)
    model_data = None
    try:
        model_data = sm.describe_model(ModelName=names["model"])["PrimaryContainer"].get("ModelDataUrl")
    except sm.exceptions.ClientError:
        pass
    for call, kwargs in ((sm.delete_endpoint, {"EndpointName": names["endpoint"]}),
                         (sm.delete_endpoint_config, {"EndpointConfigName": names["config"]}),
                         (sm.delete_model, {"ModelName": names["model"]})):
        try:
            call(**kwargs)
        except sm.exceptions.ClientError as e:
            print(f"{call.__name__}: {e.response['Error'].get('Message', e)} (already gone?)")
    if delete_model_data and model_data:
        bucket, key = model_data.removeprefix("s3://").split("/", 1)
        sess.client("s3").delete_object(Bucket=bucket, Key=key)
    print(f"deleted endpoint {names['endpoint']}, its configuration and model")


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
    p.add_argument("--no-wait", action="store_true")
    p = sub.add_parser("invoke")
    p.add_argument("--name", default="fruits")
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
        image = image_uri(sess, args.repository, args.image_tag)
        model_data = upload_model(sess, args.model_tar, args.bucket, args.prefix)
        return deploy(sess, args.name, image, model_data, args.role_arn, args.instance_type,
                      wait=not args.no_wait)
    if args.command == "invoke":
        return invoke(sess, args.name, args.photos)
    if args.command == "transform":
        return transform(sess, args.name, args.input, args.output, args.instance_type, args.wait)
    if args.command == "delete":
        return delete(sess, args.name, args.delete_model_data)
    return None


if __name__ == "__main__":
    main()
