"""Fixtures: the sample, the `fruits` binary (reference results), a Spark standalone cluster.

The cluster is real: a master and two workers, each its own JVM started with
pyspark's `spark-class` on 127.0.0.1, stopped after the tests.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.environ.get("FRUITS_SAMPLE_DIR", os.path.join(ROOT, "..", "shared", "data", "fruits-360-sample"))
MODELS = os.environ.get("FRUITS_MODELS_DIR", os.path.join(ROOT, "..", "shared", "models"))
FP32 = os.path.join(MODELS, "mobilenetv2-12-dequant-fp32.onnx")


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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home():
    import pyspark

    return os.path.dirname(pyspark.__file__)


class Cluster:
    """A Spark standalone master and workers, as separate processes."""

    def __init__(self, base, workers=2, worker_memory="2g"):
        self.base = str(base)
        self.home = spark_home()
        self.port, self.ui = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.env = dict(os.environ, SPARK_HOME=self.home, SPARK_LOCAL_IP="127.0.0.1",
                        PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable,
                        SPARK_LOG_DIR=os.path.join(self.base, "logs"), SPARK_NO_DAEMONIZE="1")
        self.master = self._start("master", "org.apache.spark.deploy.master.Master",
                                  ["--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui)])
        self._wait(lambda s: True, "the master")
        self.workers = []
        for i in range(workers):
            self.workers.append(self._start(
                f"worker{i}", "org.apache.spark.deploy.worker.Worker",
                ["--host", "127.0.0.1", "--cores", "1", "--memory", worker_memory, "--webui-port", str(free_port()),
                 "--work-dir", os.path.join(self.base, f"work{i}"), self.url]))
        self._wait(lambda s: sum(w["state"] == "ALIVE" for w in s["workers"]) == workers, f"{workers} workers")

    def _start(self, name, cls, args):
        log = open(os.path.join(self.base, f"{name}.log"), "w")
        return subprocess.Popen([os.path.join(self.home, "bin", "spark-class"), cls] + args,
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def state(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:
            return json.load(r)

    def _wait(self, ready, what, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if ready(self.state()):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Spark: {what} did not come up; logs in {self.base}")

    def submit(self, args, timeout=900, **popen):
        """spark-submit the packaged job.py with `args`; returns the Popen."""
        import fruits.spark.job as job

        cmd = [os.path.join(self.home, "bin", "spark-submit"), "--master", self.url,
               "--conf", "spark.task.maxFailures=4", "--conf", "spark.python.worker.reuse=true",
               job.__file__] + args
        return subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)

    def stop(self):
        for p in self.workers + [self.master]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.workers + [self.master]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("spark"))
    yield c
    c.stop()
