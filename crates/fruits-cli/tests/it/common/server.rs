//! `fruits serve` started as its own process on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running service.
pub struct Server {
    child: Option<Child>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `fruits serve --model CLASSIFIER --port 0 EXTRA...` and waits
    /// until its model is loaded (it prints `listening on URL`, then `ready`
    /// on standard output, its log).
    pub fn start(classifier: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(classifier, extra, &[])
    }

    /// Like [`Server::start`], with these environment variables set.
    pub fn start_with_env(classifier: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = super::fruits()
            .args(["serve", "--model"])
            .arg(classifier)
            .args(["--port", "0"])
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("SAGEMAKER_BIND_TO_PORT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fruits serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for (stream, is_stdout) in [
            (
                Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
                true,
            ),
            (Box::new(child.stderr.take().expect("stderr")), false),
        ] {
            let sink = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut url = None;
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        url = rest.split_whitespace().next().map(str::to_string);
                    }
                    if is_stdout && line.starts_with("ready") {
                        let _ = tx.send(url.clone().unwrap_or_default());
                    }
                    if let Ok(mut l) = sink.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                let _ = child.kill();
                panic!(
                    "fruits serve did not start:\n{}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                );
            }
        };
        Server {
            child: Some(child),
            url,
            log,
        }
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Sends SIGTERM and waits for the process: its exit status and its output.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let status = child.wait().expect("wait");
        // Let the reader thread drain the last lines.
        std::thread::sleep(Duration::from_millis(200));
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
