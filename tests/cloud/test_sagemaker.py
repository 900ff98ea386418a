"""SageMaker, hosted for real: the inference container built with podman from
deploy/sagemaker/Containerfile, started the way SageMaker starts it (argument
`serve`, model.tar.gz extracted at /opt/ml/model, SAGEMAKER_BIND_TO_PORT),
answering real photos and every bad input; then the deploy script against
moto's SageMaker, ECR and S3 APIs, with the image pushed to a real local
registry (moto's ECR has no registry behind it).

Needs podman + runc and the local base image: scripts/setup-containers.sh
(scripts/test.sh runs it), and the fruits binary (FRUITS_BIN, as built by
scripts/test.sh).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
import requests

import awsapi
from conftest import REGION, REPO
from test_iam import CLASSES, SAMPLE, fruits_bin

SAGEMAKER = REPO / "deploy" / "sagemaker"
sys.path.insert(0, str(SAGEMAKER))
import deploy  # noqa: E402  (deploy/sagemaker/deploy.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def podman(*args, timeout=120, check=True):
    return subprocess.run(["podman", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=check)


@pytest.fixture(scope="module")
def containers_env():
    """The environment podman needs here (runc, no rlimit changes): what
    scripts/setup-containers.sh prints."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run scripts/setup-containers.sh (scripts/test.sh does)")
    out = subprocess.run([str(REPO / "scripts" / "setup-containers.sh")], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        if line.startswith("export "):
            key, value = line.removeprefix("export ").split("=", 1)
            os.environ[key] = value.strip("'")
    return os.environ


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A classifier trained on three classes of the sample, with `fruits`."""
    root = tmp_path_factory.mktemp("trained")
    photos = root / "photos"
    for split in ("Training", "Test"):
        for cls in CLASSES:
            (photos / split / cls).mkdir(parents=True)
            for photo in sorted((SAMPLE / split / cls).iterdir())[:8]:
                shutil.copy(photo, photos / split / cls / photo.name)
    fruits = str(fruits_bin())
    subprocess.run([fruits, "run", photos, "--out", root / "run", "--quiet", "--k", "6"], cwd=REPO, check=True,
                   capture_output=True)
    subprocess.run([fruits, "train", root / "run" / "features", "--split", "Training", "--k", "6",
                    "--out", root / "classifier"], cwd=REPO, check=True, capture_output=True)
    return root / "classifier"


@pytest.fixture(scope="module")
def model_dir(classifier, tmp_path_factory):
    """model.tar.gz made by package_model.py, extracted as SageMaker does."""
    out = tmp_path_factory.mktemp("model")
    tar = out / "model.tar.gz"
    subprocess.run([sys.executable, SAGEMAKER / "package_model.py", classifier, tar], check=True,
                   capture_output=True)
    extracted = out / "opt-ml-model"
    with tarfile.open(tar) as t:
        names = sorted(t.getnames())
        t.extractall(extracted, filter="data")
    # The PCA folder is the one classifier.json names (pca-<fingerprint>), its
    # components as NumPy (bundle format 2).
    pca = json.loads((classifier / "classifier.json").read_text())["pca"]["dir"]
    assert names == ["classifier.json", "mobilenetv2-12-int8.onnx", f"{pca}/components.npy",
                     f"{pca}/pca.json"], names
    return {"tar": tar, "dir": extracted}


@pytest.fixture(scope="module")
def image(containers_env):
    started = time.monotonic()
    out = subprocess.run([str(SAGEMAKER / "build.sh"), f"localhost/fruits-serve:test-{uuid.uuid4().hex[:8]}"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "FRUITS_BIN": str(fruits_bin())})
    assert out.returncode == 0, out.stderr
    # build.sh names the architecture in the tag (deploy.py checks it).
    tag = out.stdout.strip().splitlines()[-1]
    assert tag.endswith("-amd64"), tag
    print(f"image {tag} built in {time.monotonic() - started:.1f} s")
    yield tag
    podman("rmi", "-f", tag, check=False)


class Container:
    def __init__(self, image, model, extra_env=None, name=None):
        self.name = name or f"fruits-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        inside = 8080 + (self.port % 100)   # not 8080: SAGEMAKER_BIND_TO_PORT must be honoured
        env = {"SAGEMAKER_BIND_TO_PORT": str(inside), **(extra_env or {})}
        args = ["run", "-d", "--pull=never", "--name", self.name, "-p", f"127.0.0.1:{self.port}:{inside}",
                "-v", f"{model}:/opt/ml/model:ro"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        self.started = time.monotonic()
        podman(*args, image, "serve")
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, deadline=60.0):
        """Seconds from `podman run` to the first 200 from /ping; 503s before it are fine."""
        end = time.monotonic() + deadline
        seen = []
        while time.monotonic() < end:
            try:
                r = requests.get(f"{self.url}/ping", timeout=2)
                seen.append(r.status_code)
                if r.status_code == 200:
                    return time.monotonic() - self.started, seen
                assert r.status_code == 503 and r.json()["error"]["code"] == "loading", r.text
            except requests.ConnectionError:
                running = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
                if running.stdout.strip() == "false":
                    raise AssertionError(f"the container exited; logs:\n{self.logs()}") from None
            time.sleep(0.05)
        raise AssertionError(f"no 200 from /ping within {deadline} s; logs:\n{self.logs()}")

    def logs(self):
        out = podman("logs", self.name, check=False)
        return out.stdout + out.stderr

    def wait_exit(self, timeout=60):
        out = podman("wait", self.name, timeout=timeout)
        return int(out.stdout.strip().splitlines()[-1])

    def remove(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)


def photo(cls, i=0):
    return sorted((SAMPLE / "Test" / cls).iterdir())[i]


def test_the_container_keeps_the_sagemaker_contract(image, model_dir):
    c = Container(image, model_dir["dir"])
    try:
        start_to_ready, statuses = c.wait_ready()
        print(f"container start to first /ping 200: {start_to_ready:.2f} s (answers before: {statuses[:-1][:5]})")
        inspect = json.loads(podman("inspect", c.name).stdout)[0]
        assert inspect["Config"]["User"].split(":")[0] == "10001", inspect["Config"]["User"]
        assert podman("exec", c.name, "id", "-u").stdout.strip() == "10001"
        assert podman("exec", c.name, "touch", "/opt/ml/model/x", check=False).returncode != 0

        for cls in CLASSES:
            body = photo(cls).read_bytes()
            for route in ("/invocations", "/v1/identify"):
                r = requests.post(f"{c.url}{route}", data=body, headers={"Content-Type": "image/jpeg"}, timeout=30)
                assert r.status_code == 200, r.text
                answer = r.json()
                assert answer["top"][0]["class"] == cls, answer
            multipart = requests.post(f"{c.url}/invocations", files={"file": (photo(cls).name, body, "image/jpeg")},
                                      timeout=30)
            assert multipart.json()["top"][0]["class"] == cls
        top2 = requests.post(f"{c.url}/invocations?top=2", data=photo(CLASSES[0]).read_bytes(),
                             headers={"Content-Type": "application/x-image"}, timeout=30).json()
        assert len(top2["top"]) == 2 and top2["top"][0]["info"]["french"], top2

        jpeg = photo(CLASSES[1]).read_bytes()
        bad = [
            (b"", "image/jpeg", 400, "empty_body"),
            (b"I am text, not a photo", "image/jpeg", 415, "not_an_image"),
            (jpeg[: len(jpeg) // 2], "image/jpeg", 422, "truncated_image"),
            (jpeg, "text/plain", 415, "unsupported_content_type"),
            # InvokeEndpoint's limit is 6 MB (6,291,456 bytes): the image says the same.
            (b"x" * (6 * 1024 * 1024 + 1), "image/jpeg", 413, "body_too_large"),
        ]
        for body, ctype, status, code in bad:
            r = requests.post(f"{c.url}/invocations", data=body, headers={"Content-Type": ctype}, timeout=60)
            assert r.status_code == status and r.json()["error"]["code"] == code, (code, r.status_code, r.text)
        r = requests.get(f"{c.url}/nope", timeout=5)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        # Still serving after every bad input.
        assert requests.get(f"{c.url}/ping", timeout=5).status_code == 200

        # SIGTERM (what SageMaker sends to stop an instance): exits cleanly.
        stopped = time.monotonic()
        podman("stop", "-t", "20", c.name, timeout=60)
        assert c.wait_exit() == 0
        print(f"stop after SIGTERM: {time.monotonic() - stopped:.2f} s")
        logs = c.logs()
        assert "ready: model loaded" in logs and "POST /invocations 200" in logs, logs
        assert "stopped: every request in flight was answered" in logs, logs
    finally:
        c.remove()


def run_to_exit(image, model):
    """Runs the container on the model folder `model` until it stops by itself:
    its exit status and logs."""
    c = Container(image, model)
    try:
        return c.wait_exit(), c.logs()
    finally:
        c.remove()


def test_bad_model_folders_stop_the_container_with_a_clear_error(image, model_dir, tmp_path):
    # Missing files: nothing in /opt/ml/model.
    empty = tmp_path / "empty"
    empty.mkdir()
    code, logs = run_to_exit(image, empty)
    assert code == 1
    assert "classifier.json" in logs and "/opt/ml/model" in logs, logs
    # A bundle whose image model is not the one it was trained with.
    wrong = tmp_path / "wrong"
    shutil.copytree(model_dir["dir"], wrong)
    onnx = next(wrong.glob("*.onnx"))
    onnx.unlink()
    fp32 = Path(os.environ.get("FRUITS_MODELS_DIR", REPO.parent / "shared" / "models")) / "mobilenetv2-12-dequant-fp32.onnx"
    shutil.copy(fp32, wrong / onnx.name)
    code, logs = run_to_exit(image, wrong)
    assert code == 1
    assert "sha256" in logs and "3faa2bbd550cb191dd54e62eccb905bed80eca1c11c7309980edd2f388dab86f" in logs, logs


def emulate_update_endpoint(sm):
    """A botocore handler standing in for UpdateEndpoint, which moto lacks: the
    request (validated against botocore's model like every other) is carried
    out on moto as its outcome looks to a caller once a blue/green update is
    done: the endpoint, same name, now on the new configuration. `sm` is a
    client of its own (its calls are not the deploy script's)."""

    class Http:
        status_code, headers, content, raw = 200, {}, b"{}", None

    def handler(model, params, **kwargs):
        if model.name != "UpdateEndpoint":
            return None
        request = json.loads(params["body"])
        sm.delete_endpoint(EndpointName=request["EndpointName"])
        arn = sm.create_endpoint(EndpointName=request["EndpointName"],
                                 EndpointConfigName=request["EndpointConfigName"])["EndpointArn"]
        return Http(), {"EndpointArn": arn, "ResponseMetadata": {"HTTPStatusCode": 200}}

    return handler


def route_invocations_to(container_url):
    """A botocore handler that answers InvokeEndpoint as SageMaker does: the
    request's body goes to the container's POST /invocations, its answer comes
    back as the call's result. moto's InvokeEndpoint cannot stand in here (it
    answers a canned body, and fails on a binary one: it decodes bodies as
    UTF-8), so the call reaches the real container instead."""
    import io

    from botocore.response import StreamingBody

    class Http:
        def __init__(self, r):
            self.status_code, self.headers, self.content, self.raw = r.status_code, dict(r.headers), r.content, None

    def handler(model, params, **kwargs):
        if model.name != "InvokeEndpoint":
            return None
        headers = {k: v for k, v in params["headers"].items() if k.lower() in ("content-type", "accept")}
        r = requests.post(f"{container_url}/invocations", data=params["body"], headers=headers, timeout=30)
        parsed = {"Body": StreamingBody(io.BytesIO(r.content), len(r.content)),
                  "ContentType": r.headers.get("Content-Type", ""),
                  "ResponseMetadata": {"HTTPStatusCode": r.status_code}}
        if r.status_code >= 300:
            parsed["Error"] = {"Code": r.json()["error"]["code"], "Message": r.text}
        return Http(r), parsed

    return handler


@contextlib.contextmanager
def deploy_session(moto, calls):
    """A boto3 session on moto, as deploy.py is given one, whose requests are
    captured into `calls` (to be validated against botocore's models)."""
    import boto3
    from awsplug import fruits_aws_capture as capture

    sess = boto3.session.Session(region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    os.environ["AWS_CAPTURE_FILE"] = str(calls)
    capture.install(sess.events)
    os.environ["AWS_ENDPOINT_URL"] = moto.url
    try:
        yield sess
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        os.environ.pop("AWS_CAPTURE_FILE", None)


def execution_role(sess):
    """The SageMaker execution role, with the IAM kit's trust policy; its ARN."""
    trust = subprocess.run([str(REPO / "deploy" / "iam" / "render.sh"), "sagemaker-trust", "123456789012"],
                           capture_output=True, text=True, check=True).stdout
    return sess.client("iam").create_role(RoleName="fruits-sagemaker", AssumeRolePolicyDocument=trust)["Role"]["Arn"]


def test_deploy_script_against_moto_with_a_real_registry(moto, image, model_dir, tmp_path):
    registry = tmp_path / "registry"
    reg_port = free_port()
    started = subprocess.run([str(SAGEMAKER / "registry.sh"), "start", registry, f"127.0.0.1:{reg_port}"],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    calls = tmp_path / "calls.jsonl"
    pushed = None
    try:
        with deploy_session(moto, calls) as sess:
            s3 = sess.client("s3")
            s3.create_bucket(Bucket="fruits-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
            role = execution_role(sess)

            # Push: the real image into a real registry; moto's ECR learns of it
            # from the pushed manifest, as ECR would from the push itself.
            pushed = deploy.main(["push", "--image", image, "--registry", f"127.0.0.1:{reg_port}"], sess=sess)
            tag = pushed.rsplit(":", 1)[1]
            manifest = requests.get(f"http://127.0.0.1:{reg_port}/v2/fruits-serve/manifests/{tag}", timeout=10,
                                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                                       "application/vnd.docker.distribution.manifest.v2+json"})
            assert manifest.status_code == 200, manifest.text
            sess.client("ecr").put_image(repositoryName="fruits-serve", imageManifest=manifest.text, imageTag=tag)

            endpoint = deploy.main(["deploy", "--image-tag", tag, "--model-tar", str(model_dir["tar"]),
                                    "--bucket", "fruits-artifacts", "--role-arn", role, "--name", "fruits-test"],
                                   sess=sess)
            sm = sess.client("sagemaker")
            described = sm.describe_endpoint(EndpointName=endpoint)
            assert described["EndpointStatus"] == "InService"
            first_config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
            variant = first_config["ProductionVariants"][0]
            assert variant["InitialInstanceCount"] == deploy.DEFAULT_INSTANCES == 2
            model = sm.describe_model(ModelName=variant["ModelName"])
            # Autoscaling: target tracking on invocations per instance, from the instance count up.
            aas = sess.client("application-autoscaling")
            target = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
            assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in target] == [
                (f"endpoint/{endpoint}/variant/AllTraffic", 2, deploy.DEFAULT_MAX_INSTANCES)]
            policy = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"][0]
            assert policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
                "PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
            assert model["PrimaryContainer"]["Image"].endswith(f"/fruits-serve:{tag}")
            assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://fruits-artifacts/fruits/sagemaker/model.tar.gz"
            assert s3.head_object(Bucket="fruits-artifacts", Key="fruits/sagemaker/model.tar.gz")[
                "ServerSideEncryption"] == "AES256"
            # Invocations reach a real container (see route_invocations_to).
            container = Container(image, model_dir["dir"])
            try:
                container.wait_ready()
                sess.events.register("before-call.sagemaker-runtime.InvokeEndpoint",
                                     route_invocations_to(container.url))
                answers = deploy.main(["invoke", "--name", endpoint, str(photo(CLASSES[0])), str(photo(CLASSES[2]))],
                                      sess=sess)
            finally:
                container.remove()
            assert [json.loads(a)["top"][0]["class"] for a in answers] == [CLASSES[0], CLASSES[2]], answers
            # A second deploy updates the endpoint blue/green (UpdateEndpoint, no
            # downtime) and removes the model and configuration it replaced.
            sess.events.register("before-call.sagemaker.UpdateEndpoint",
                                 emulate_update_endpoint(moto.client("sagemaker")))
            deploy.main(["deploy", "--image-tag", tag, "--model-tar", str(model_dir["tar"]), "--bucket",
                         "fruits-artifacts", "--role-arn", role, "--name", "fruits-test"], sess=sess)
            updated = sm.describe_endpoint(EndpointName=endpoint)
            assert updated["EndpointStatus"] == "InService"
            assert updated["EndpointConfigName"] != described["EndpointConfigName"]
            assert [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]] == [
                updated["EndpointConfigName"]]
            assert len(sm.list_models()["Models"]) == 1
            job = deploy.main(["transform", "--name", "fruits-test", "--input", "s3://fruits-artifacts/photos/",
                               "--output", "s3://fruits-artifacts/identified/"], sess=sess)
            described_job = sm.describe_transform_job(TransformJobName=job)
            assert described_job["TransformInput"]["ContentType"] == "application/x-image"
            # A bad photo is an error record, not a failed job; payloads as InvokeEndpoint's.
            assert described_job["Environment"] == {"FRUITS_ERRORS_AS_RECORDS": "1"}
            assert described_job["MaxPayloadInMB"] == deploy.INVOKE_MAX_MB == 6
            deploy.main(["delete", "--name", "fruits-test", "--delete-model-data"], sess=sess)
            assert not sm.list_endpoints()["Endpoints"]
            assert not sm.list_models()["Models"] and not sm.list_endpoint_configs()["EndpointConfigs"]
            assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
            # An image built for another architecture than the instance type's is refused.
            with pytest.raises(SystemExit, match="built for x86_64 but ml.c7g.large runs arm64"):
                deploy.main(["deploy", "--image-tag", tag, "--model-tar", str(model_dir["tar"]), "--bucket",
                             "fruits-artifacts", "--role-arn", role, "--instance-type", "ml.c7g.large"], sess=sess)
            # An image tag ECR does not hold is refused before anything is created.
            with pytest.raises(SystemExit, match="no image tagged"):
                deploy.main(["deploy", "--image-tag", "missing-amd64", "--model-tar", str(model_dir["tar"]),
                             "--bucket", "fruits-artifacts", "--role-arn", role], sess=sess)
    finally:
        subprocess.run([str(SAGEMAKER / "registry.sh"), "stop", registry], capture_output=True, timeout=60)
        if pushed:  # the registry's tag of the image: local storage must not grow per run
            podman("rmi", "-f", pushed, check=False)
    recorded = awsapi.read_calls(calls)
    operations = {c.name for c in recorded}
    assert operations & {"s3.PutObject", "s3.CreateMultipartUpload"}, sorted(operations)
    for op in ("ecr.CreateRepository", "sagemaker.CreateModel", "sagemaker.CreateEndpointConfig",
               "sagemaker.CreateEndpoint", "sagemaker.UpdateEndpoint", "sagemaker-runtime.InvokeEndpoint",
               "sagemaker.CreateTransformJob", "sagemaker.DeleteEndpoint",
               "application-autoscaling.RegisterScalableTarget", "application-autoscaling.PutScalingPolicy"):
        assert op in operations, sorted(operations)
    awsapi.assert_valid(recorded)


def route_async_invocations_to(container_url, sm, s3):
    """A botocore handler carrying out InvokeEndpointAsync as SageMaker's queue
    does (moto's answers canned locations and writes nothing): the photo at
    InputLocation goes to the container's POST /invocations; a 2xx answer is
    written under the endpoint configuration's S3OutputPath as `<id>.out`,
    another under its S3FailurePath as `<id>-error.out`; the call returns
    both locations. `sm` and `s3` are clients of their own on moto."""

    class Http:
        status_code, headers, content, raw = 202, {}, b"{}", None

    def handler(model, params, **kwargs):
        if model.name != "InvokeEndpointAsync":
            return None
        headers = params["headers"]
        name = params["url_path"].split("/")[2]
        config = sm.describe_endpoint_config(
            EndpointConfigName=sm.describe_endpoint(EndpointName=name)["EndpointConfigName"])
        output = config["AsyncInferenceConfig"]["OutputConfig"]
        bucket, key = headers["X-Amzn-SageMaker-InputLocation"].removeprefix("s3://").split("/", 1)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        inference = uuid.uuid4().hex
        located = {"OutputLocation": f"{output['S3OutputPath'].rstrip('/')}/{inference}.out",
                   "FailureLocation": f"{output['S3FailurePath'].rstrip('/')}/{inference}-error.out"}
        r = requests.post(f"{container_url}/invocations", data=body, timeout=60,
                          headers={"Content-Type": headers["X-Amzn-SageMaker-Content-Type"]})
        where = located["OutputLocation" if r.status_code < 300 else "FailureLocation"]
        out_bucket, out_key = where.removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=r.content)
        return Http(), {"InferenceId": inference, **located, "ResponseMetadata": {"HTTPStatusCode": 202}}

    return handler


def phone_photo(path, cls):
    """A photo the size a phone takes (4032 x 3024, with sensor-like noise):
    a sample photo upscaled, saved as a JPEG of more than InvokeEndpoint's 6 MB."""
    import numpy as np
    from PIL import Image

    big = np.asarray(Image.open(photo(cls)).convert("RGB").resize((4032, 3024), Image.BICUBIC), dtype=np.float32)
    noise = np.random.default_rng(7).normal(0, 12, big.shape)
    Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=98)
    assert path.stat().st_size > deploy.INVOKE_MAX_MB * 1024 * 1024, path.stat().st_size
    return path


def test_async_endpoint_identifies_full_size_phone_photos(moto, image, model_dir, tmp_path):
    big = phone_photo(tmp_path / "phone.jpg", CLASSES[2])
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_bytes(b"I am text, not a photo")
    # The real-time image refuses it: InvokeEndpoint's 6 MB.
    realtime = Container(image, model_dir["dir"])
    try:
        realtime.wait_ready()
        r = requests.post(f"{realtime.url}/invocations", data=big.read_bytes(),
                          headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text
    finally:
        realtime.remove()

    calls = tmp_path / "calls.jsonl"
    with deploy_session(moto, calls) as sess:
            s3 = sess.client("s3")
            for bucket in ("fruits-artifacts", "fruits-photos", "fruits-results"):
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
            role = execution_role(sess)
            # ECR learns of the image from its manifest, as it would from a push
            # (the push itself is tested above).
            tag = image.rsplit(":", 1)[1]
            manifest = subprocess.run(["skopeo", "inspect", "--raw", f"containers-storage:{image}"],
                                      capture_output=True, text=True, check=True).stdout
            ecr = sess.client("ecr")
            deploy.ensure_repository(ecr, "fruits-serve")
            ecr.put_image(repositoryName="fruits-serve", imageManifest=manifest, imageTag=tag)

            output = "s3://fruits-results/transform/async/"
            endpoint = deploy.main(["deploy", "--name", "fruits-async", "--image-tag", tag, "--model-tar",
                                    str(model_dir["tar"]), "--bucket", "fruits-artifacts", "--role-arn", role,
                                    "--async-output", output], sess=sess)
            sm = sess.client("sagemaker")
            config = sm.describe_endpoint_config(
                EndpointConfigName=sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"])
            assert config["AsyncInferenceConfig"]["OutputConfig"] == {
                "S3OutputPath": output, "S3FailurePath": "s3://fruits-results/transform/async/failures/"}
            assert config["ProductionVariants"][0]["InitialInstanceCount"] == 1
            environment = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])[
                "PrimaryContainer"]["Environment"]
            assert environment["FRUITS_MAX_BODY_MIB"] == str(deploy.ASYNC_MAX_MB)
            # Scales on the queue, to zero when idle and back up when photos wait.
            aas = sess.client("application-autoscaling")
            assert [(t["MinCapacity"], t["MaxCapacity"]) for t in
                    aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]] == [
                (0, deploy.DEFAULT_MAX_INSTANCES)]
            policies = {p["PolicyName"]: p for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker")[
                "ScalingPolicies"]}
            assert sorted(policies) == ["fruits-async-backlog", "fruits-async-from-zero"]
            assert policies["fruits-async-backlog"]["TargetTrackingScalingPolicyConfiguration"][
                "CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"
            alarm = sess.client("cloudwatch").describe_alarms()["MetricAlarms"]
            assert [(a["MetricName"], a["AlarmActions"]) for a in alarm] == [
                ("HasBacklogWithoutCapacity", [policies["fruits-async-from-zero"]["PolicyARN"]])]

            # The container runs with the model's environment, as SageMaker starts it.
            container = Container(image, model_dir["dir"], extra_env=environment)
            try:
                container.wait_ready()
                sess.events.register("before-call.sagemaker-runtime.InvokeEndpointAsync",
                                     route_async_invocations_to(container.url, moto.client("sagemaker"),
                                                                moto.client("s3")))
                answers = deploy.main(["invoke", "--name", endpoint, "--timeout", "60",
                                       "--async-input", "s3://fruits-photos/photos/async/",
                                       str(big), str(photo(CLASSES[0])), str(not_a_photo)], sess=sess)
            finally:
                container.remove()
            assert [json.loads(a)["top"][0]["class"] for a in answers[:2]] == [CLASSES[2], CLASSES[0]], answers
            assert json.loads(answers[2])["error"]["code"] == "not_an_image", answers[2]
            uploaded = s3.list_objects_v2(Bucket="fruits-photos", Prefix="photos/async/")["Contents"]
            assert len(uploaded) == 3
            assert s3.head_object(Bucket="fruits-photos", Key=uploaded[0]["Key"])["ServerSideEncryption"] == "AES256"

            # A real-time deployment under the asynchronous endpoint's name is refused.
            with pytest.raises(SystemExit, match="fruits-async is asynchronous and this deployment is real-time"):
                deploy.main(["deploy", "--name", "fruits-async", "--image-tag", tag, "--model-tar",
                             str(model_dir["tar"]), "--bucket", "fruits-artifacts", "--role-arn", role], sess=sess)
            with pytest.raises(SystemExit, match="--min-instances 0 needs an asynchronous endpoint"):
                deploy.main(["deploy", "--name", "fruits", "--image-tag", tag, "--model-tar", str(model_dir["tar"]),
                             "--bucket", "fruits-artifacts", "--role-arn", role, "--min-instances", "0"], sess=sess)
            deploy.main(["delete", "--name", endpoint], sess=sess)
            assert not sm.list_endpoints()["Endpoints"]
            assert not aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
            assert not sess.client("cloudwatch").describe_alarms()["MetricAlarms"]
    recorded = awsapi.read_calls(calls)
    operations = {c.name for c in recorded}
    for op in ("sagemaker.CreateEndpointConfig", "sagemaker-runtime.InvokeEndpointAsync",
               "application-autoscaling.PutScalingPolicy", "cloudwatch.PutMetricAlarm", "cloudwatch.DeleteAlarms"):
        assert op in operations, sorted(operations)
    awsapi.assert_valid(recorded)


def test_instance_types_name_their_architecture():
    assert [deploy.architecture_of(t) for t in ("ml.m5.large", "ml.c5.xlarge", "ml.m6g.large", "ml.c7g.2xlarge",
                                                 "ml.r6gd.xlarge", "ml.g5.xlarge", "ml.m7i.large")] == [
        "x86_64", "x86_64", "arm64", "arm64", "arm64", "x86_64", "x86_64"]


def test_deploy_stays_in_paris_unless_told_otherwise(capsys, monkeypatch):
    # Neither AWS_REGION nor --region alone moves it: another region needs the override.
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with pytest.raises(SystemExit) as e:
        deploy.main(["--region", "us-east-1", "delete"], sess=object())
    assert e.value.code == 2
    assert "eu-west-3" in capsys.readouterr().err
