"""A Spark standalone cluster on 127.0.0.1: a master and workers, each its own JVM.

Used by the tests and `scripts/bench-spark.sh`, and handy for trying the job on a
laptop. It runs pyspark's `spark-class` (Java 17 from the machine), so it needs
nothing but `pip install 'fruits[spark]'`:

    with LocalCluster("/tmp/spark", workers=2) as cluster:
        cluster.submit(["--input", "photos/", "--output", "out/"]).wait()
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home():
    """SPARK_HOME of the installed pyspark (it ships Spark's jars and scripts)."""
    import pyspark

    return os.path.dirname(pyspark.__file__)


class LocalCluster:
    """A master and `workers` workers (`cores` cores, `worker_memory` each), as separate processes.

    Logs go to `base`. Each worker runs in its own process group, so `kill_worker`
    takes its executor and Python workers down with it, as losing a machine would.
    """

    def __init__(self, base, workers=2, cores=1, worker_memory="2g", python=None):
        self.base = str(base)
        os.makedirs(self.base, exist_ok=True)
        self.home = spark_home()
        self.cores = cores
        self.worker_memory = worker_memory
        self.port, self.ui = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        python = python or sys.executable
        self.env = dict(os.environ, SPARK_HOME=self.home, SPARK_LOCAL_IP="127.0.0.1",
                        PYSPARK_PYTHON=python, PYSPARK_DRIVER_PYTHON=python,
                        SPARK_LOG_DIR=os.path.join(self.base, "logs"), SPARK_NO_DAEMONIZE="1")
        self.master = self._start("master", "org.apache.spark.deploy.master.Master",
                                  ["--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui)])
        self.wait_for(lambda s: True, "the master")
        self.workers = []
        for _ in range(workers):
            self.add_worker()
        self.wait_for(lambda s: self.alive_workers(s) == workers, f"{workers} workers")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def add_worker(self):
        """Starts one more worker; returns its Popen."""
        i = len(self.workers)
        worker = self._start(
            f"worker{i}", "org.apache.spark.deploy.worker.Worker",
            ["--host", "127.0.0.1", "--cores", str(self.cores), "--memory", self.worker_memory,
             "--webui-port", str(free_port()), "--work-dir", os.path.join(self.base, f"work{i}"), self.url])
        self.workers.append(worker)
        return worker

    def kill_worker(self, i):
        """SIGKILLs worker `i` with its executor and Python workers (no goodbye to the master)."""
        os.killpg(self.workers[i].pid, signal.SIGKILL)
        self.workers[i].wait()

    def _start(self, name, cls, args):
        log = open(os.path.join(self.base, f"{name}.log"), "w")
        return subprocess.Popen([os.path.join(self.home, "bin", "spark-class"), cls] + args,
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def state(self):
        """The master's JSON status (workers, applications)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as r:
            return json.load(r)

    @staticmethod
    def alive_workers(state):
        return sum(w["state"] == "ALIVE" for w in state["workers"])

    def wait_for(self, ready, what, timeout=120):
        """Polls the master's status until `ready(state)`; raises after `timeout` seconds."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if ready(self.state()):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Spark: {what} did not come up; logs in {self.base}")

    def submit(self, args, script=None, conf=(), env=None, **popen):
        """spark-submit `script` (the packaged job.py by default) with `args`; returns the Popen.

        `conf` is a list of "key=value" Spark settings; output is piped as text.
        """
        if script is None:
            import fruits.spark.job as job

            script = job.__file__
        cmd = [os.path.join(self.home, "bin", "spark-submit"), "--master", self.url,
               "--conf", "spark.task.maxFailures=4", "--conf", "spark.python.worker.reuse=true"]
        for setting in conf:
            cmd += ["--conf", setting]
        return subprocess.Popen(cmd + [script] + list(args), env=dict(self.env, **(env or {})),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)

    def stop(self):
        """Stops workers and master (SIGTERM, then SIGKILL after 30 s)."""
        for p in self.workers + [self.master]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.workers + [self.master]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
