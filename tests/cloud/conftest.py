"""Shared fixtures of the cloud rehearsals (tests/cloud): a local moto server standing in
for AWS, and an environment in which the deploy kits' scripts run the AWS CLI against it
while every API call is captured for validation (awsapi.py).

  moto_server  (session)  ThreadedMotoServer on a free 127.0.0.1 port, in this process, so
                          tests can reach moto's backends (MotoServer.backend("emr"))
  moto         (per test) the same server, emptied before and after the test
  aws          (per test) AwsCli: environment (fake keys, eu-west-3, AWS_ENDPOINT_URL, the
                          capture plugin), .run()/.ok() for scripts, .calls() for the
                          capture, .client() for boto3 checks against the same server

Run: pytest tests/cloud   (in a venv made from tests/cloud/requirements.txt)
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

import awsapi

# moto's server logs every request through werkzeug at INFO: noise in failure reports.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLUGIN_DIR = HERE / "awsplug"
REGION = "eu-west-3"
ACCOUNT = "123456789012"  # moto's default account id
NO_RETRY = Config(retries={"total_max_attempts": 1})


@dataclass
class MotoServer:
    url: str

    def reset(self) -> None:
        # Authorisation off (moto's default); /moto-api/reset keeps that setting.
        requests.post(f"{self.url}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def backend(self, service: str):
        """moto's in-process state for one service: {region: backend} of the default
        account (e.g. to move an EMR step along, which moto never does by itself)."""
        from moto.backends import get_backend
        from moto.core import DEFAULT_ACCOUNT_ID
        return get_backend(service)[DEFAULT_ACCOUNT_ID]

    def client(self, service: str, region: str = REGION):
        return boto3.client(service, endpoint_url=self.url, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=NO_RETRY)


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    # AWS managed policies (AmazonEMRServicePolicy_v2, ...) exist in moto only when asked:
    # then attaching a misspelt managed-policy ARN fails as it would on AWS.
    saved = os.environ.get("MOTO_IAM_LOAD_MANAGED_POLICIES")
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(f"http://{host}:{port}")
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("MOTO_IAM_LOAD_MANAGED_POLICIES", None)
        else:
            os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = saved


@pytest.fixture
def moto(moto_server):
    moto_server.reset()
    yield moto_server
    moto_server.reset()


@pytest.fixture(scope="session")
def aws_cli_bin() -> Path:
    """The AWS CLI v1 of this Python environment (the plugin mechanism is v1's)."""
    here = Path(sys.executable).parent / "aws"
    found = here if here.exists() else (Path(shutil.which("aws")) if shutil.which("aws") else None)
    if found is None:
        pytest.fail("no `aws` command: install tests/cloud/requirements.txt (awscli v1) into this venv")
    version = subprocess.run([str(found), "--version"], capture_output=True, text=True, timeout=60)
    text = (version.stdout + version.stderr).strip()
    if not text.startswith("aws-cli/1."):
        pytest.fail(f"{found} is {text!r}; tests/cloud needs the AWS CLI v1 from "
                    "tests/cloud/requirements.txt (its plugin hook captures the calls)")
    return found


@dataclass
class Ran:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        cmd = " ".join(self.args)
        return (f"$ {cmd}\n-> exit {self.returncode} after {self.seconds:.1f} s\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-6000:]}")


@dataclass
class AwsCli:
    """Runs commands (the kit's scripts, aws ...) in an environment aimed at moto."""
    moto: MotoServer
    env: dict
    capture: Path
    tmp: Path
    log: list[Ran] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def run(self, *args, timeout: float = 120, env: dict | None = None, cwd: Path = REPO) -> Ran:
        args = [str(a) for a in args]
        t = time.monotonic()
        # Its own process group, so that a timeout stops the script's aws children too.
        p = subprocess.Popen(args, cwd=cwd, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out, err = p.communicate()
            raise AssertionError(f"timed out after {timeout} s: {' '.join(args)}\n{out[-3000:]}\n{err[-3000:]}")
        ran = Ran(args, p.returncode, out, err, time.monotonic() - t)
        self.log.append(ran)
        return ran

    def ok(self, *args, **kwargs) -> Ran:
        """run(), and fail the test with the command's output unless it exits 0."""
        ran = self.run(*args, **kwargs)
        assert ran.returncode == 0, f"command failed:\n{ran}"
        return ran

    def spawn(self, *args, env: dict | None = None, cwd: Path = REPO, **popen) -> subprocess.Popen:
        """Start a command in the background (output to pipes unless stdout=/stderr= say)."""
        popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
        proc = subprocess.Popen([str(a) for a in args], cwd=cwd, env={**self.env, **(env or {})},
                                start_new_session=True, **popen)
        self.procs.append(proc)    # stopped at the end of the test if still running
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def calls(self) -> list[awsapi.Call]:
        return awsapi.read_calls(self.capture)

    def client(self, service: str, region: str = REGION):
        return self.moto.client(service, region)

    def timings(self) -> str:
        return "\n".join(f"{r.seconds:6.1f} s  {Path(r.args[0]).name} {' '.join(r.args[1:])[:90]}"
                         for r in self.log)


@pytest.fixture
def aws(moto, aws_cli_bin, tmp_path):
    home = tmp_path / "aws-home"
    home.mkdir()
    config = home / "config"
    # The plugin is imported by the CLI from PYTHONPATH; no region here on purpose (the
    # environment sets one, and the kit's scripts must pass theirs themselves).
    config.write_text("[default]\n\n[plugins]\nfruits_capture = fruits_aws_capture\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({
        "PATH": f"{aws_cli_bin.parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(PLUGIN_DIR),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),   # absent: keys come from env
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": "2",
        "AWS_CAPTURE_FILE": str(tmp_path / "aws-calls.jsonl"),
        "AWS_CAPTURE_ALLOWED_ENDPOINT": moto.url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "TMPDIR": str(tmp_path),
    })
    cli = AwsCli(moto, env, tmp_path / "aws-calls.jsonl", tmp_path)
    yield cli
    cli.stop_all()
