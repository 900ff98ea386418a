"""Fixtures: the sample, the `fruits` binary (reference results), a Spark standalone cluster.

The cluster is real: a master and two workers, each its own JVM started with
pyspark's `spark-class` on 127.0.0.1, stopped after the tests.
"""

import os
import shutil
import subprocess

import pytest

from fruits.spark.local_cluster import LocalCluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.environ.get("FRUITS_SAMPLE_DIR", os.path.join(ROOT, "..", "shared", "data", "fruits-360-sample"))
MODELS = os.environ.get("FRUITS_MODELS_DIR", os.path.join(ROOT, "..", "shared", "models"))
# The default image model (int8), the one `fruits run` uses without flags.
MODEL = os.path.join(MODELS, "mobilenetv2-12-int8.onnx")

# Every JVM these tests start (the cluster's master, workers and executors, the
# drivers, the notebook's local Spark) lives for seconds to a minute: without
# the optimising JIT compiler (C1 only) and with the serial collector they
# spend over a quarter less CPU (python/tests alone: 178 -> 128 s of CPU, 163 ->
# 137 s of wall), which the tests run beside them in scripts/test.sh get instead.
# A JAVA_TOOL_OPTIONS of the caller's own is kept.
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")


def fruits_bin():
    return os.environ.get("FRUITS_BIN", os.path.join(ROOT, "target", "debug", "fruits"))


def copy_subset(dest, classes, per_class):
    for split in ("Training", "Test"):
        for cls in classes:
            src = os.path.join(SAMPLE, split, cls)
            out = os.path.join(dest, split, cls)
            os.makedirs(out, exist_ok=True)
            for name in sorted(os.listdir(src))[:per_class]:
                shutil.copy(os.path.join(src, name), os.path.join(out, name))


CLASSES = ["Apple Braeburn 1", "Banana 1", "Kiwi 1", "Lemon 1", "Strawberry 1"]


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """5 classes x 30 photos x 2 splits = 300 sample images, plus one bad file."""
    root = tmp_path_factory.mktemp("photos")
    copy_subset(str(root), CLASSES, 30)
    with open(os.path.join(root, "Test", "Kiwi 1", "zz-not-a-photo.jpg"), "wb") as f:
        f.write(b"not a photo")
    return str(root)


@pytest.fixture(scope="session")
def cli_run(photos, tmp_path_factory):
    """`fruits run` on the same photos: the single-machine reference."""
    out = str(tmp_path_factory.mktemp("cli") / "run")
    proc = subprocess.run([fruits_bin(), "run", photos, "--out", out, "--quiet"], capture_output=True, text=True)
    assert proc.returncode in (0, 3), proc.stderr
    return out


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("spark"))
    yield c
    c.stop()


def pca_steps(folder, fs=None):
    """The steps of a reduced output's int8 codes (value = code x step), as
    its manifest records them; decode with `codes * steps` (docs/guide.md)."""
    import json

    if fs is None:
        with open(os.path.join(folder, "_manifest.json")) as f:
            manifest = json.load(f)
    else:
        with fs.open_input_stream(f"{folder}/_manifest.json") as f:
            manifest = json.load(f)
    return np_array(manifest["meta"]["pca_steps"])


def np_array(values):
    import numpy as np

    return np.array(values, dtype=np.float64)


def assert_within(actual, desired, atol):
    """|actual - desired| <= atol elementwise, atol broadcast along rows (one
    tolerance per component: numpy's assert_allclose takes a scalar)."""
    import numpy as np

    excess = np.abs(np.asarray(actual, dtype=np.float64) - np.asarray(desired, dtype=np.float64)) - atol
    assert excess.max() <= 0, f"{(excess > 0).sum()} values beyond the tolerance, worst by {excess.max():.3e}"

