"""One writer per S3 output, atomically: fruits takes an output prefix with a
lease object created by a conditional put (`If-None-Match: *`), and takes
over a dead writer's lease with `If-Match`. AWS S3 and moto honour both;
Garage (the Rust tests' server) ignores them, so the race itself is checked
here.

The race is made deterministic inside moto's in-process server: right after
fruits reads the lease key, another writer's live lease appears, before
fruits' put arrives. Only a conditional put notices; an unconditional one
would overwrite the other writer's lease and both runs would write.
"""
from __future__ import annotations

import json
import shutil
import time

import pytest
from moto.s3.models import S3Backend

from conftest import REGION
from test_iam import SAMPLE, CLASSES, run_fruits

BUCKET = "results"
LEASE = "_fruits-lease.json"
KEYS = {"AccessKeyId": "testing", "SecretAccessKey": "testing"}


def lease(expires_in: int) -> bytes:
    now = int(time.time())
    return json.dumps({"host": "racer", "pid": 4242, "since_unix": now,
                       "expires_unix": now + expires_in}).encode()


@pytest.fixture
def photos(tmp_path):
    out = tmp_path / "photos"
    for cls in CLASSES[:2]:
        (out / "Test" / cls).mkdir(parents=True)
        for photo in sorted((SAMPLE / "Test" / cls).iterdir())[:2]:
            shutil.copy(photo, out / "Test" / cls / photo.name)
    return out


def racing_writer(monkeypatch, key: str):
    """After fruits' first read of `key`, another writer puts a live lease."""
    original = S3Backend.get_object
    raced = []

    def get_object(self, bucket_name, key_name, *args, **kwargs):
        found = original(self, bucket_name, key_name, *args, **kwargs)
        if bucket_name == BUCKET and key_name == key and not raced:
            raced.append(key_name)
            self.put_object(BUCKET, key, lease(600))
        return found

    monkeypatch.setattr(S3Backend, "get_object", get_object)
    return raced


@pytest.mark.parametrize("before", ["no lease", "a dead writer's lease"])
def test_a_writer_that_wins_the_race_keeps_the_output(moto, monkeypatch, photos, before):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    if before != "no lease":
        s3.put_object(Bucket=BUCKET, Key=f"race/{LEASE}", Body=lease(-60))
    raced = racing_writer(monkeypatch, f"race/{LEASE}")

    ran = run_fruits(moto, KEYS, "featurize", photos, "--out", f"s3://{BUCKET}/race/", "--quiet")

    assert raced, "fruits never read the lease"
    assert ran.returncode == 1, ran.stderr
    assert "another run is writing to" in ran.stderr and "process 4242 on racer" in ran.stderr, ran.stderr
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="race/").get("Contents", [])}
    assert keys == {f"race/{LEASE}"}, keys
    held = json.loads(s3.get_object(Bucket=BUCKET, Key=f"race/{LEASE}")["Body"].read())
    assert held["host"] == "racer", held


def test_without_a_race_the_lease_is_taken_and_released(moto, photos):
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    ran = run_fruits(moto, KEYS, "featurize", photos, "--out", f"s3://{BUCKET}/calm/", "--quiet")
    assert ran.returncode == 0, ran.stderr
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="calm/")["Contents"]}
    assert "calm/_manifest.json" in keys and f"calm/{LEASE}" not in keys, keys
