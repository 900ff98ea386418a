"""Least privilege, proven: `fruits` runs with exactly the rights of
deploy/iam/pipeline-policy.json, and everything else is refused with a clear
message naming the bucket and the missing permission.

Two stand-ins, each for what it can judge:

- moto, with IAM enforcement on, judges actions and resources: a user holding
  the rendered pipeline policy runs `fruits run s3://photos/... --out
  s3://results/...` against it, then tries what the policy must refuse.
  moto does not evaluate IAM conditions (it has no request context): with the
  policy's `NothingOutsideParis` statement (a Deny conditioned on
  aws:RequestedRegion) moto denies every request, and it lets ListBucket
  through whatever the s3:prefix. So the user gets the policy without that one
  statement, and listing outside the prefix is judged by the second stand-in.
- iam_policy.py evaluates the conditions (region lock, list-only-this-prefix,
  TLS and encryption in the bucket policy) on the same rendered documents,
  and agrees with moto on every request both judge.

moto's server re-checks SigV4 signatures on a URL it has already
percent-decoded, so requests whose query or key holds reserved characters
(object_store lists with `prefix=fruits-360%2F`) fail with
SignatureDoesNotMatch although they are signed correctly; the test turns that
re-check off in the in-process server. Signatures are verified by Garage in
the Rust S3 tests (a wrong secret is refused there).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

import iam_policy
from conftest import REGION, REPO

INPUT_BUCKET, INPUT_PREFIX = "photos", "fruits-360"
OUTPUT_BUCKET, OUTPUT_PREFIX = "results", "run"
CLASSES = ["Banana 1", "Kiwi 1", "Strawberry 1"]
SAMPLE = Path(os.environ.get("FRUITS_SAMPLE_DIR", REPO.parent / "shared" / "data" / "fruits-360-sample"))


def fruits_bin() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fruits" / "target" / "debug" / "fruits"
    path = Path(os.environ.get("FRUITS_BIN", default))
    if not path.exists():
        pytest.fail(f"no fruits binary at {path}: build it (scripts/test.sh does) or set FRUITS_BIN")
    return path


def rendered(kind: str, *names: str) -> dict:
    out = subprocess.run([str(REPO / "deploy" / "iam" / "render.sh"), kind, *names],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def pipeline_policy() -> dict:
    return rendered("pipeline", INPUT_BUCKET, INPUT_PREFIX, OUTPUT_BUCKET, OUTPUT_PREFIX)


def without_region_lock(policy: dict) -> dict:
    statements = [s for s in policy["Statement"] if s.get("Sid") != "NothingOutsideParis"]
    assert len(statements) == len(policy["Statement"]) - 1, "the region lock is one statement"
    return {**policy, "Statement": statements}


@pytest.fixture
def enforced(moto, monkeypatch):
    """moto with the buckets and photos in place, the pipeline user created,
    and IAM enforcement on; yields (user keys, admin client factory)."""
    from moto.iam.access_control import IAMRequestBase

    s3 = moto.client("s3")
    for bucket in (INPUT_BUCKET, OUTPUT_BUCKET, "other"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    moto.client("s3", region="us-east-1").create_bucket(Bucket="us-photos")   # outside Paris
    uploaded = 0
    for split in ("Training", "Test"):
        for cls in CLASSES:
            for photo in sorted((SAMPLE / split / cls).iterdir())[:4]:
                s3.upload_file(str(photo), INPUT_BUCKET, f"{INPUT_PREFIX}/{split}/{cls}/{photo.name}")
                uploaded += 1
    s3.put_object(Bucket=INPUT_BUCKET, Key="private/secret.jpg", Body=b"not for the pipeline")
    s3.put_object(Bucket="other", Key="data/part.parquet", Body=b"someone else's data")
    moto.client("s3", region="us-east-1").put_object(Bucket="us-photos", Key="fruits-360/Test/Kiwi 1/a.jpg", Body=b"x")

    iam = moto.client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    admin = iam.create_access_key(UserName="admin")["AccessKey"]
    iam.create_user(UserName="pipeline")
    arn = iam.create_policy(PolicyName="fruits-pipeline",
                            PolicyDocument=json.dumps(without_region_lock(pipeline_policy())))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="pipeline", PolicyArn=arn)
    user = iam.create_access_key(UserName="pipeline")["AccessKey"]

    monkeypatch.setattr(IAMRequestBase, "check_signature", lambda self: None)
    requests.post(f"{moto.url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    yield {"user": user, "admin": admin, "photos": uploaded}


def run_fruits(moto, keys, *args, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"],
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
    })
    return subprocess.run([str(fruits_bin()), *map(str, args), "--s3-retry-timeout", "5"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def client_with(moto, keys, service="s3"):
    import boto3
    from botocore.config import Config
    return boto3.client(service, endpoint_url=moto.url, region_name=REGION,
                        aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"],
                        config=Config(retries={"total_max_attempts": 1}))


def test_the_pipeline_runs_with_exactly_its_policy_and_nothing_more(moto, enforced):
    user = enforced["user"]
    inp = f"s3://{INPUT_BUCKET}/{INPUT_PREFIX}/"
    out = f"s3://{OUTPUT_BUCKET}/{OUTPUT_PREFIX}/"

    # 1. The whole job, S3 to S3, with the pipeline's keys.
    ran = run_fruits(moto, user, "run", inp, "--out", out, "--quiet", "--k", "4")
    assert ran.returncode == 0, ran.stderr
    admin = client_with(moto, enforced["admin"])
    keys = {o["Key"] for o in admin.list_objects_v2(Bucket=OUTPUT_BUCKET)["Contents"]}
    for expected in ("run/features/_manifest.json", "run/pca/pca.json", "run/reduced/_manifest.json"):
        assert expected in keys, sorted(keys)
    manifest = json.loads(admin.get_object(Bucket=OUTPUT_BUCKET, Key="run/features/_manifest.json")["Body"].read())
    assert manifest["rows"] == enforced["photos"], manifest

    # 2. Writing outside the results prefix: refused before any work, naming
    #    the bucket and the permission.
    ran = run_fruits(moto, user, "featurize", inp, "--out", f"s3://{OUTPUT_BUCKET}/elsewhere/")
    assert ran.returncode == 1
    assert "s3:PutObject" in ran.stderr and f"bucket {OUTPUT_BUCKET}" in ran.stderr, ran.stderr
    assert "nothing was processed" in ran.stderr, ran.stderr

    # 3. Reading another bucket: the first request (its region) is refused.
    ran = run_fruits(moto, user, "export", "csv", "s3://other/data/")
    assert ran.returncode == 1
    assert "s3:GetBucketLocation" in ran.stderr and "bucket other" in ran.stderr, ran.stderr

    # 4. Reading outside the input prefix of the input bucket.
    ran = run_fruits(moto, user, "export", "csv", f"s3://{INPUT_BUCKET}/private/")
    assert ran.returncode == 1
    assert "s3:GetObject" in ran.stderr and f"bucket {INPUT_BUCKET}" in ran.stderr, ran.stderr

    # 5. Deleting an input photo (no fruits command deletes inputs; the policy
    #    must not allow it to anything holding these keys).
    s3 = client_with(moto, user)
    photo = f"{INPUT_PREFIX}/Test/{CLASSES[0]}/" + sorted((SAMPLE / "Test" / CLASSES[0]).iterdir())[0].name
    with pytest.raises(s3.exceptions.ClientError) as denied:
        s3.delete_object(Bucket=INPUT_BUCKET, Key=photo)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert admin.head_object(Bucket=INPUT_BUCKET, Key=photo)["ContentLength"] > 0

    # 6. A bucket outside eu-west-3: refused by fruits' own guard before any
    #    data moves, whatever the credentials may do.
    ran = run_fruits(moto, enforced["admin"], "featurize", "s3://us-photos/fruits-360/", "--out", out + "us/")
    assert ran.returncode == 1
    assert "us-photos" in ran.stderr and "us-east-1" in ran.stderr and "GDPR" in ran.stderr, ran.stderr
    assert "--allow-region us-east-1" in ran.stderr, ran.stderr


def decisions_under_moto(moto, keys, requests_):
    """moto's decision for each (action, bucket, key or prefix) request."""
    s3 = client_with(moto, keys)
    out = []
    for action, bucket, key in requests_:
        try:
            if action == "s3:GetObject":
                s3.get_object(Bucket=bucket, Key=key)
            elif action == "s3:PutObject":
                s3.put_object(Bucket=bucket, Key=key, Body=b"x", ServerSideEncryption="AES256")
            elif action == "s3:DeleteObject":
                s3.delete_object(Bucket=bucket, Key=key)
            elif action == "s3:GetBucketLocation":
                s3.get_bucket_location(Bucket=bucket)
            out.append("Allow")
        except s3.exceptions.ClientError as e:
            code = e.response["Error"]["Code"]
            # A missing object means IAM let the request through.
            out.append("Deny" if code in ("AccessDenied", "403") else
                       "Allow" if code in ("NoSuchKey", "404") else f"error {code}")
    return out


def test_conditions_moto_cannot_evaluate_hold_and_the_evaluator_agrees_with_moto(moto, enforced):
    policy = pipeline_policy()
    paris = {"aws:RequestedRegion": REGION, "aws:SecureTransport": "true"}

    def decide(action, resource, **context):
        result = iam_policy.evaluate([policy], action, resource, {**paris, **context})
        return "Allow" if result == "Allow" else "Deny"

    # Requests both stand-ins judge: the evaluator decides as moto does.
    matrix = [
        ("s3:GetObject", INPUT_BUCKET, f"{INPUT_PREFIX}/Test/Kiwi 1/a.jpg"),
        ("s3:GetObject", INPUT_BUCKET, "private/secret.jpg"),
        ("s3:GetObject", OUTPUT_BUCKET, f"{OUTPUT_PREFIX}/features/_manifest.json"),
        ("s3:GetObject", "other", "data/part.parquet"),
        ("s3:PutObject", OUTPUT_BUCKET, f"{OUTPUT_PREFIX}/x.parquet"),
        ("s3:PutObject", OUTPUT_BUCKET, "elsewhere/x.parquet"),
        ("s3:PutObject", INPUT_BUCKET, f"{INPUT_PREFIX}/Test/new.jpg"),
        ("s3:DeleteObject", INPUT_BUCKET, f"{INPUT_PREFIX}/Test/Kiwi 1/a.jpg"),
        ("s3:DeleteObject", OUTPUT_BUCKET, f"{OUTPUT_PREFIX}/.fruits-write-check"),
        ("s3:GetBucketLocation", INPUT_BUCKET, None),
        ("s3:GetBucketLocation", "other", None),
    ]
    expected = [decide(a, f"arn:aws:s3:::{b}" + (f"/{k}" if k else "")) for a, b, k in matrix]
    assert decisions_under_moto(moto, enforced["user"], matrix) == expected, list(zip(matrix, expected))

    # Listing: only the two prefixes (moto cannot tell: it ignores s3:prefix).
    def list_(bucket, prefix):
        return decide("s3:ListBucket", f"arn:aws:s3:::{bucket}", **({"s3:prefix": prefix} if prefix is not None else {}))
    assert list_(INPUT_BUCKET, f"{INPUT_PREFIX}/") == "Allow"
    assert list_(INPUT_BUCKET, f"{INPUT_PREFIX}/Test/Kiwi 1/") == "Allow"
    assert list_(OUTPUT_BUCKET, f"{OUTPUT_PREFIX}/features/") == "Allow"
    assert list_(INPUT_BUCKET, "private/") == "Deny"
    assert list_(INPUT_BUCKET, "") == "Deny"
    assert list_(INPUT_BUCKET, None) == "Deny"
    assert list_("other", "data/") == "Deny"

    # The Paris lock: the same allowed request, asked of another region, is
    # refused by an explicit Deny (which no other policy can override).
    get = ("s3:GetObject", f"arn:aws:s3:::{INPUT_BUCKET}/{INPUT_PREFIX}/Test/Kiwi 1/a.jpg")
    assert iam_policy.evaluate([policy], *get, paris) == "Allow"
    assert iam_policy.evaluate([policy], *get, {"aws:RequestedRegion": "us-east-1"}) == "ExplicitDeny"
    assert iam_policy.evaluate([policy, {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}],
                               *get, {"aws:RequestedRegion": "eu-west-1"}) == "ExplicitDeny"

    # The bucket policy: TLS required. A put with the encryption header, and a part
    # of a multipart upload (UploadPart is authorised as s3:PutObject and sends no
    # encryption header), both pass it; the role's policy allows them.
    bucket = rendered("bucket", OUTPUT_BUCKET)
    put = ("s3:PutObject", f"arn:aws:s3:::{OUTPUT_BUCKET}/{OUTPUT_PREFIX}/x.parquet")
    tls = {**paris, "aws:SecureTransport": "true"}
    assert iam_policy.evaluate([bucket, policy], *put, {**tls, "s3:x-amz-server-side-encryption": "AES256"}) == "Allow"
    assert iam_policy.evaluate([bucket, policy], *put, tls) == "Allow"
    assert iam_policy.evaluate([bucket, policy], *put, {**paris, "aws:SecureTransport": "false"}) == "ExplicitDeny"
    assert iam_policy.evaluate([bucket], *put, {"aws:SecureTransport": "false",
                                                "s3:x-amz-server-side-encryption": "AES256"}) == "ExplicitDeny"


def test_negated_operators_hold_when_the_key_is_missing():
    # IAM: a negated operator (StringNotEquals, StringNotLike) holds when the
    # request has no value for the key; the positive ones and IfExists as before.
    def decide(op, context):
        policy = {"Statement": [{"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*",
                                 "Condition": {op: {"s3:x-amz-server-side-encryption": "AES256"}}}]}
        return iam_policy.evaluate([policy], "s3:PutObject", "arn:aws:s3:::b/k", context)
    for op in ("StringNotEquals", "StringNotLike"):
        assert decide(op, {}) == "ExplicitDeny", op
        assert decide(op, {"s3:x-amz-server-side-encryption": "AES256"}) == "ImplicitDeny", op
        assert decide(op + "IfExists", {}) == "ExplicitDeny", op
    for op in ("StringEquals", "StringLike"):
        assert decide(op, {}) == "ImplicitDeny", op
        assert decide(op + "IfExists", {}) == "ExplicitDeny", op


def test_the_evaluator_refuses_operators_it_does_not_implement():
    policy = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                             "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}
    with pytest.raises(ValueError, match="IpAddress"):
        iam_policy.evaluate([policy], "s3:GetObject", "arn:aws:s3:::b/k", {"aws:SourceIp": "10.1.2.3"})


def test_fruits_puts_ask_for_server_side_encryption(moto, tmp_path):
    """What the bucket policy requires of every put, fruits sends: moto records
    each object's encryption, so every object fruits wrote says AES256."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=OUTPUT_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    photos = tmp_path / "photos"
    for cls in CLASSES[:2]:
        (photos / "Test" / cls).mkdir(parents=True)
        for photo in sorted((SAMPLE / "Test" / cls).iterdir())[:2]:
            shutil.copy(photo, photos / "Test" / cls / photo.name)
    keys = {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
    ran = run_fruits(moto, keys, "featurize", photos, "--out", f"s3://{OUTPUT_BUCKET}/sse/", "--quiet")
    assert ran.returncode == 0, ran.stderr
    objects = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="sse/")["Contents"]
    assert objects
    for o in objects:
        head = s3.head_object(Bucket=OUTPUT_BUCKET, Key=o["Key"])
        assert head.get("ServerSideEncryption") == "AES256", (o["Key"], head)
