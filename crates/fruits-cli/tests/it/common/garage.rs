//! A real S3-compatible server for the tests: Garage (from crates.io), started on
//! 127.0.0.1 in a temporary folder, configured with its own CLI, stopped on drop.
//!
//! The binary is `FRUITS_GARAGE`, else `$XDG_DATA_HOME/fruits/garage-2.5.0/bin/garage`
//! (`~/.local/share` by default) where `scripts/install-garage.sh` (run by
//! `scripts/test.sh`) puts it.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An access key pair known to the server.
#[derive(Debug, Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
}

/// One single-node Garage server.
pub struct Garage {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    pub s3_port: u16,
    pub region: String,
}

/// The Garage version scripts/install-garage.sh installs.
const GARAGE_VERSION: &str = "2.5.0";

/// The garage binary.
pub fn garage_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FRUITS_GARAGE") {
        return PathBuf::from(bin);
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
        });
    data_home
        .join("fruits")
        .join(format!("garage-{GARAGE_VERSION}"))
        .join("bin/garage")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Garage {
    /// Starts a server whose buckets live in `region`.
    pub fn start(region: &str) -> Garage {
        let bin = garage_bin();
        assert!(
            bin.is_file(),
            "Garage is not installed at {}: run scripts/install-garage.sh (or set FRUITS_GARAGE)",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("tmp");
        let (s3_port, rpc_port) = (free_port(), free_port());
        let config = dir.path().join("garage.toml");
        let root = dir.path().display().to_string();
        // A fixed RPC secret is fine: the server only listens on loopback for one test.
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{root}/meta\"\n\
                 data_dir = \"{root}/data\"\n\
                 db_engine = \"lmdb\"\n\
                 replication_factor = 1\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
                 rpc_secret = \"{}\"\n\
                 [s3_api]\n\
                 s3_region = \"{region}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                "5eed".repeat(16)
            ),
        )
        .expect("config");
        let mut garage = Garage {
            dir,
            config,
            child: None,
            s3_port,
            region: region.to_string(),
        };
        garage.spawn();
        let id = garage.cli(&["node", "id", "-q"]);
        let id = id.trim().split('@').next().unwrap_or_default().to_string();
        garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id]);
        garage.cli(&["layout", "apply", "--version", "1"]);
        garage
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log");
        let child = Command::new(garage_bin())
            .args(["-c", &self.config.display().to_string(), "server"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start garage");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let rpc_ok = Command::new(garage_bin())
                .args(["-c", &self.config.display().to_string(), "status"])
                .output()
                .is_ok_and(|o| o.status.success());
            let s3_ok = TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok();
            if rpc_ok && s3_ok {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "garage did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the garage CLI against this server; panics with its output on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(garage_bin())
            .args(["-c", &self.config.display().to_string()])
            .args(args)
            .output()
            .expect("run garage");
        assert!(
            out.status.success(),
            "garage {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The S3 endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Creates a bucket.
    pub fn bucket(&self, name: &str) {
        self.cli(&["bucket", "create", name]);
    }

    /// Imports key number `n` (deterministic, so failures are reproducible).
    pub fn key(&self, name: &str, n: u8) -> Keys {
        let keys = Keys {
            id: format!("GK{:024x}", n),
            secret: format!("{:02x}", n).repeat(32),
        };
        self.cli(&["key", "import", "--yes", "-n", name, &keys.id, &keys.secret]);
        keys
    }

    /// Grants `keys` read and/or write on `bucket`.
    pub fn allow(&self, bucket: &str, keys: &Keys, read: bool, write: bool) {
        let mut args = vec!["bucket", "allow", bucket, "--key", keys.id.as_str()];
        if read {
            args.push("--read");
        }
        if write {
            args.push("--write");
        }
        self.cli(&args);
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Storage options that reach this server with `keys`.
    pub fn options(&self, keys: &Keys) -> fruits_location::StorageOptions {
        fruits_location::StorageOptions {
            endpoint: Some(self.endpoint()),
            credentials: Some(fruits_location::StaticCredentials {
                access_key_id: keys.id.clone(),
                secret_access_key: keys.secret.clone(),
                session_token: None,
            }),
            allowed_regions: vec![self.region.clone()],
            retry_timeout: Duration::from_secs(5),
            ..fruits_location::StorageOptions::default()
        }
    }

    /// Opens `url` on this server with `keys`.
    pub fn open(&self, url: &str, keys: &Keys) -> fruits_location::Location {
        fruits_location::Location::parse(url, &self.options(keys))
            .unwrap_or_else(|e| panic!("open {url}: {e}"))
    }

    /// A `fruits` command whose AWS environment points at this server with `keys`.
    /// Runs `fruits ARGS` against this server with `keys` and waits for it.
    pub fn run(&self, keys: &Keys, args: &[&str]) -> std::process::Output {
        self.fruits(keys).args(args).output().expect("spawn fruits")
    }

    pub fn fruits(&self, keys: &Keys) -> Command {
        let mut cmd = super::fruits();
        for var in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "AWS_DEFAULT_REGION",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_ACCESS_KEY_ID", &keys.id)
            .env("AWS_SECRET_ACCESS_KEY", &keys.secret)
            .env("AWS_REGION", "eu-west-3")
            .env("AWS_ENDPOINT_URL", self.endpoint())
            // No profile from the machine's ~/.aws may leak into the test.
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.path().join("no-credentials"),
            )
            .env("AWS_CONFIG_FILE", self.dir.path().join("no-config"));
        cmd
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Uploads every file under `local` to `dest`, keeping relative paths.
pub fn upload_dir(local: &std::path::Path, dest: &fruits_location::Location) -> usize {
    let src = fruits_location::Location::local_path(local);
    let files = src.list_files().expect("list");
    for f in &files {
        let bytes = src.get(&f.rel).expect("read");
        dest.put(&f.rel, bytes).expect("upload");
    }
    files.len()
}
