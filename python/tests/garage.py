"""A real S3-compatible server for the Spark tests: Garage, as in the Rust tests
(crates/fruits-cli/tests/common/garage.rs), started on 127.0.0.1 and stopped after.

The binary is FRUITS_GARAGE, else $XDG_DATA_HOME/fruits/garage-2.5.0/bin/garage
(~/.local/share by default), where scripts/install-garage.sh (run by scripts/test.sh) puts it.
"""

import os
import subprocess
import time

import pyarrow.fs as pafs

from fruits.spark.local_cluster import free_port



GARAGE_VERSION = "2.5.0"


def garage_bin():
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    default = os.path.join(data_home, "fruits", f"garage-{GARAGE_VERSION}", "bin", "garage")
    return os.environ.get("FRUITS_GARAGE", default)


class Garage:
    """One single-node Garage server whose buckets live in `region`; with
    `log_requests`, every S3 request is a line of server.log (benchmarks count them)."""

    def __init__(self, base, region="eu-west-3", log_requests=False):
        binary = garage_bin()
        if not os.path.isfile(binary):
            raise FileNotFoundError(f"Garage is not installed at {binary}: run scripts/install-garage.sh")
        self.base, self.region, self.binary = str(base), region, binary
        os.makedirs(self.base, exist_ok=True)
        self.s3_port, rpc_port = free_port(), free_port()
        self.config = os.path.join(self.base, "garage.toml")
        # A fixed RPC secret is fine: the server listens on loopback for one test session.
        with open(self.config, "w") as f:
            f.write(f'metadata_dir = "{self.base}/meta"\ndata_dir = "{self.base}/data"\ndb_engine = "lmdb"\n'
                    f'replication_factor = 1\nrpc_bind_addr = "127.0.0.1:{rpc_port}"\n'
                    f'rpc_public_addr = "127.0.0.1:{rpc_port}"\nrpc_secret = "{"5eed" * 16}"\n'
                    f'[s3_api]\ns3_region = "{region}"\napi_bind_addr = "127.0.0.1:{self.s3_port}"\n'
                    f'root_domain = ".s3.garage.localhost"\n')
        self.log = os.path.join(self.base, "server.log")
        log = open(self.log, "w")
        # (this build has no metrics feature: the request log is the counter)
        level = "warn,garage_api_common::generic_server=info" if log_requests else "warn"
        self.proc = subprocess.Popen([binary, "-c", self.config, "server"], env=dict(os.environ, RUST_LOG=level),
                                     stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 30
        while subprocess.run([binary, "-c", self.config, "status"], capture_output=True).returncode != 0:
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"garage did not start; see {self.base}/server.log")
            time.sleep(0.2)
        node = self.cli("node", "id", "-q").strip().split("@")[0]
        self.cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self.cli("layout", "apply", "--version", "1")
        self.key_id, self.secret = "GK" + "%024x" % 1, "01" * 32
        self.cli("key", "import", "--yes", "-n", "spark", self.key_id, self.secret)

    def cli(self, *args):
        proc = subprocess.run([self.binary, "-c", self.config, *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"garage {args}: {proc.stdout}{proc.stderr}")
        return proc.stdout

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def bucket(self, name):
        """Creates a bucket the test key may read and write."""
        self.cli("bucket", "create", name)
        self.cli("bucket", "allow", name, "--key", self.key_id, "--read", "--write")

    def env(self):
        """The AWS environment that points the fruits core at this server (and nowhere else)."""
        return {
            "AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret, "AWS_REGION": "eu-west-3",
            "AWS_ENDPOINT_URL": self.endpoint,
            # No profile from the machine's ~/.aws may leak in.
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.base, "no-credentials"),
            "AWS_CONFIG_FILE": os.path.join(self.base, "no-config"),
        }

    def filesystem(self):
        """A pyarrow S3 filesystem on this server, to upload inputs and read outputs independently."""
        return pafs.S3FileSystem(access_key=self.key_id, secret_key=self.secret, region=self.region,
                                 endpoint_override=self.endpoint, allow_bucket_creation=False)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
