//! One writer per output: two runs writing the same output at once would
//! featurise the same photos twice and name them twice.
//!
//! - A local folder: an exclusive lock on `.fruits-lock` (the operating
//!   system's file lock, released by the kernel when the process ends, even
//!   by `kill -9`, so it never goes stale).
//! - An S3 prefix: a lease object `_fruits-lease.json`, read first, then
//!   created with a conditional put (`If-None-Match: *`) and renewed with
//!   `If-Match` every [`RENEW_EVERY`]; a lease not renewed for [`LEASE_TTL`]
//!   (its holder died), or held by a process of this machine that has ended,
//!   is taken over the same conditional way. The holder deletes it when done
//!   (a run stopped by the store going away cannot, hence the second rule). AWS S3 honours both conditions, so two runs can
//!   never both hold a prefix; servers that ignore them (Garage 2.5) still
//!   refuse a second run that starts while the first is running, only not two
//!   that start within the same few milliseconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Location, StorageError, StoreError};

/// The local lock file (hidden: readers skip it).
pub const LOCK_FILE: &str = ".fruits-lock";
/// The S3 lease object (`_`: Parquet readers skip it).
pub const LEASE_FILE: &str = "_fruits-lease.json";
/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(120);
/// How often the holder renews its lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(30);

/// Who holds an output, as written in the lock file or lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The host name of the writer.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it took the output (seconds since the Unix epoch).
    pub since_unix: u64,
    /// When the lease ends unless renewed (S3 only; 0 for a local lock).
    #[serde(default)]
    pub expires_unix: u64,
    /// When the process started, in clock ticks after boot (Linux
    /// `/proc/PID/stat`; 0 where unknown): with `host` and `pid` it tells a
    /// dead holder on this machine from a live one, even if its pid is reused.
    #[serde(default)]
    pub started_ticks: u64,
}

impl Holder {
    fn me(ttl: Option<Duration>) -> Holder {
        let now = now_unix();
        Holder {
            host: host_name(),
            pid: std::process::id(),
            since_unix: now,
            expires_unix: ttl.map_or(0, |t| now + t.as_secs()),
            started_ticks: process_start(std::process::id()).unwrap_or(0),
        }
    }

    /// True when the holder is a process of this machine that has ended: a
    /// run that failed because the store stopped answering could not delete
    /// its lease, and a rerun on the same machine must not wait out the TTL.
    /// Holders on other machines are only judged by their lease's expiry.
    fn is_dead_here(&self) -> bool {
        if self.host != host_name() || self.host == UNKNOWN_HOST || self.started_ticks == 0 {
            return false;
        }
        process_start(self.pid) != Some(self.started_ticks)
    }

    /// "process 123 on host-a since 2026-11-30 12:00:00 UTC".
    pub fn describe(&self) -> String {
        format!(
            "process {} on {} (since {} s ago)",
            self.pid,
            self.host,
            now_unix().saturating_sub(self.since_unix)
        )
    }
}

/// Written when the host name cannot be read: never matches "this machine".
const UNKNOWN_HOST: &str = "unknown";

/// This machine's name, as holders record it.
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| UNKNOWN_HOST.into())
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), or None
/// when no such process runs (or on systems without `/proc`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An output held by this process; released when dropped.
#[derive(Debug)]
pub struct OutputLock {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Local {
        // Held for the lock; closed (and so released) on drop.
        _file: std::fs::File,
        path: std::path::PathBuf,
    },
    S3 {
        root: Location,
        stop: Arc<AtomicBool>,
        renewer: Option<std::thread::JoinHandle<()>>,
    },
}

impl OutputLock {
    /// Takes `root` for this process, or says who holds it.
    pub fn acquire(root: &Location) -> Result<OutputLock, StoreError> {
        match root.as_local() {
            Some(dir) => acquire_local(root, dir),
            None => acquire_lease(root),
        }
    }
}

fn acquire_local(root: &Location, dir: &std::path::Path) -> Result<OutputLock, StoreError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StorageError::local_io(fruits_location::Action::Put, &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = serde_json::from_str::<Holder>(&text).ok();
            return Err(StoreError::Locked {
                output: root.to_string(),
                holder: holder.map(|h| h.describe()),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StorageError::local_io(fruits_location::Action::Put, &path, e).into());
        }
    }
    let me = serde_json::to_vec(&Holder::me(None)).unwrap_or_default();
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = file.write_all(&me);
    Ok(OutputLock {
        inner: Inner::Local { _file: file, path },
    })
}

fn acquire_lease(root: &Location) -> Result<OutputLock, StoreError> {
    let body = || Bytes::from(serde_json::to_vec(&Holder::me(Some(LEASE_TTL))).unwrap_or_default());
    // Read first: some S3-compatible servers (Garage 2.5) ignore
    // `If-None-Match` and would let the put below overwrite a live lease. On
    // AWS S3 the conditional put also closes the gap between two runs that
    // start within the same moment.
    let mut attempts = 0;
    let e_tag = loop {
        attempts += 1;
        let existing = root.get_versioned(LEASE_FILE)?;
        let attempt = match &existing {
            None => root.put_if_absent(LEASE_FILE, body()),
            Some((bytes, tag)) => {
                let holder = serde_json::from_slice::<Holder>(bytes).ok();
                let expired = holder
                    .as_ref()
                    .is_none_or(|h| h.expires_unix < now_unix() || h.is_dead_here());
                match (expired, tag) {
                    // Its holder stopped renewing it or ended: take it over.
                    (true, Some(tag)) => root.put_if_match(LEASE_FILE, body(), tag),
                    _ => return Err(locked(root, holder)),
                }
            }
        };
        match attempt {
            Ok(tag) => break tag,
            // Another run got there between the read and the put: see who.
            Err(StorageError::AlreadyExists { .. }) if attempts < 3 => continue,
            Err(StorageError::AlreadyExists { .. }) => return Err(locked(root, None)),
            Err(e) => return Err(e.into()),
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let renewer = {
        let (root, stop) = (root.clone(), stop.clone());
        std::thread::Builder::new()
            .name("fruits-lease".into())
            .spawn(move || renew(&root, &stop, e_tag, body))
            .ok()
    };
    Ok(OutputLock {
        inner: Inner::S3 {
            root: root.clone(),
            stop,
            renewer,
        },
    })
}

fn locked(root: &Location, holder: Option<Holder>) -> StoreError {
    StoreError::Locked {
        output: root.to_string(),
        holder: holder.map(|h| {
            format!(
                "{}; its lease ends in {} s unless renewed",
                h.describe(),
                h.expires_unix.saturating_sub(now_unix())
            )
        }),
    }
}

/// Renews the lease every [`RENEW_EVERY`] until stopped. A renewal that finds
/// the lease changed (taken over after this process stalled past the TTL)
/// stops renewing and logs it: the run goes on, and its parts stay correct
/// (every part holds whole images), but the other writer may redo some.
fn renew(root: &Location, stop: &AtomicBool, mut e_tag: Option<String>, body: impl Fn() -> Bytes) {
    let step = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < RENEW_EVERY {
            continue;
        }
        waited = Duration::ZERO;
        let Some(tag) = e_tag.clone() else {
            return;
        };
        match root.put_if_match(LEASE_FILE, body(), &tag) {
            Ok(new) => e_tag = new,
            Err(e) => {
                tracing::warn!(error = %e, "the output lease could not be renewed");
                return;
            }
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Local { path, .. } => {
                // The kernel releases the lock when the file closes; the file
                // itself stays (removing it could race a waiting writer).
                tracing::debug!(lock = %path.display(), "output released");
            }
            Inner::S3 {
                root,
                stop,
                renewer,
            } => {
                stop.store(true, Ordering::Relaxed);
                if let Some(handle) = renewer.take() {
                    let _ = handle.join();
                }
                let _ = root.delete(LEASE_FILE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_dead_here_only_when_its_process_ended() {
        let me = Holder::me(Some(LEASE_TTL));
        assert!(me.started_ticks > 0, "this process has a start time");
        assert!(!me.is_dead_here(), "this process is alive");

        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let ended = Holder {
            pid: child.id(),
            started_ticks: process_start(child.id()).unwrap_or(1),
            ..me.clone()
        };
        child.wait().expect("wait");
        assert!(ended.is_dead_here(), "its process has ended");

        let elsewhere = Holder {
            host: format!("{}-other", me.host),
            ..ended.clone()
        };
        assert!(
            !elsewhere.is_dead_here(),
            "other machines are judged by expiry"
        );
        let reused = Holder {
            started_ticks: me.started_ticks + 1,
            ..me.clone()
        };
        assert!(reused.is_dead_here(), "a reused pid is not the holder");
    }
}
