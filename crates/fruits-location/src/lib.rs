//! Where fruits data lives: a local folder or an `s3://bucket/prefix`, behind one
//! blocking interface built on the `object_store` crate.
//!
//! Every command takes a [`Location`] wherever it takes a path, so the pipeline has
//! no S3 special cases: it lists, gets and puts keys relative to a location.
//!
//! ```text
//! Location::parse("out/run-1")                 local folder (object_store's LocalFileSystem)
//! Location::parse("s3://fruits-results/run-1") S3 prefix (object_store's AmazonS3)
//! ```
//!
//! Opening an S3 location first asks the bucket where it lives and refuses buckets
//! outside [`StorageOptions::allowed_regions`] (eu-west-3 by default, for GDPR):
//! see [`guard`]. Credentials come from the standard AWS chain ([`credentials`]).
//!
//! Puts are atomic on both backends: a local file is staged and renamed into place,
//! an S3 object appears only once its PUT (or multipart upload) completes. Large
//! objects go up in parts of [`StorageOptions::multipart_threshold`] bytes.
//!
//! The API is blocking (an internal Tokio runtime drives object_store); call it from
//! plain threads, or from `spawn_blocking` inside an async service.

pub mod credentials;
mod error;
pub mod guard;
mod local;
mod s3;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

pub use error::{Action, CredentialProblem, StorageError, chain as error_chain};
pub use local::{ListProblem, ProblemKind, TEMP_MARKER, read_file};

pub use s3::init_tls;

/// The region the pipeline may use unless told otherwise: Europe (Paris), for GDPR.
pub const DEFAULT_REGION: &str = "eu-west-3";

/// Default of [`StorageOptions::retry_timeout`], in seconds.
pub const DEFAULT_RETRY_TIMEOUT_SECS: u64 = 180;

/// Default of [`StorageOptions::concurrency`].
pub const DEFAULT_CONCURRENCY: usize = 32;

/// Name of the object written and deleted to check write access up front.
pub const WRITE_PROBE: &str = ".fruits-write-check";

/// How to reach and guard object stores.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Regions whose buckets may be read or written.
    pub allowed_regions: Vec<String>,
    /// An S3-compatible endpoint instead of Amazon S3 (`--s3-endpoint`, or
    /// [`env::ENDPOINT_S3`] / [`env::ENDPOINT`] through [`StorageOptions::from_env`]).
    pub endpoint: Option<String>,
    /// Give up on a request after retrying it for this long.
    pub retry_timeout: Duration,
    /// Most retries of one request (throttling, 5xx, connection errors), with backoff.
    pub max_retries: usize,
    /// Objects fetched at once by [`Location::fetch_each`].
    pub concurrency: usize,
    /// Objects at least this large are uploaded in parts of this size (S3's minimum is 5 MiB).
    pub multipart_threshold: usize,
    /// Server-side encryption asked for on every S3 put (`AES256`, `aws:kms`), or none.
    pub server_side_encryption: Option<String>,
    /// Keys to use instead of the AWS credential chain (a caller that already holds them).
    pub credentials: Option<StaticCredentials>,
}

/// An access key pair given explicitly; `Debug` never shows the secret.
#[derive(Clone)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            allowed_regions: vec![DEFAULT_REGION.to_string()],
            endpoint: None,
            retry_timeout: Duration::from_secs(DEFAULT_RETRY_TIMEOUT_SECS),
            max_retries: 10,
            concurrency: DEFAULT_CONCURRENCY,
            multipart_threshold: 16 * 1024 * 1024,
            server_side_encryption: Some("AES256".into()),
            credentials: None,
        }
    }
}

/// The environment variables the storage layer reads, each in one place:
/// [`StorageOptions::from_env`], from which the CLI, the Python bindings and
/// the service build their options.
pub mod env {
    /// An S3-compatible endpoint for S3 alone (AWS's service-specific
    /// variable: it wins over [`ENDPOINT`]).
    pub const ENDPOINT_S3: &str = "AWS_ENDPOINT_URL_S3";
    /// An S3-compatible endpoint (AWS's variable for every service).
    pub const ENDPOINT: &str = "AWS_ENDPOINT_URL";
    /// Regions whose buckets are allowed besides eu-west-3, comma-separated.
    pub const ALLOW_REGIONS: &str = "FRUITS_ALLOW_REGIONS";
}

impl StorageOptions {
    /// The defaults, with what the environment sets: the endpoint
    /// ([`env::ENDPOINT_S3`], else [`env::ENDPOINT`]) and regions allowed
    /// besides eu-west-3 ([`env::ALLOW_REGIONS`]). Flags given on a command
    /// line go on top.
    pub fn from_env() -> StorageOptions {
        let mut options = StorageOptions {
            endpoint: [env::ENDPOINT_S3, env::ENDPOINT]
                .iter()
                .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty())),
            ..StorageOptions::default()
        };
        if let Ok(extra) = std::env::var(env::ALLOW_REGIONS) {
            for region in extra.split(',') {
                options.allow_region(region);
            }
        }
        options
    }

    /// Allows the buckets of `region` too (blank and repeated names are ignored).
    pub fn allow_region(&mut self, region: &str) {
        let region = region.trim();
        if !region.is_empty() && !self.allowed_regions.iter().any(|r| r == region) {
            self.allowed_regions.push(region.to_string());
        }
    }
}

/// What [`Location::list`] found.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The files, sorted by relative key.
    pub files: Vec<FileMeta>,
    /// Local entries that could not be listed as files.
    pub problems: Vec<ListProblem>,
}

/// A file found under a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// Key relative to the location, `/`-separated.
    pub rel: String,
    /// Size in bytes.
    pub size: u64,
}

#[derive(Debug, Clone)]
enum Kind {
    Local(PathBuf),
    S3 { bucket: String, region: String },
}

/// A folder or prefix that data is read from or written to.
#[derive(Clone)]
pub struct Location {
    kind: Kind,
    /// Key prefix inside `store`, without trailing delimiter.
    prefix: String,
    store: Arc<dyn ObjectStore>,
    options: Arc<StorageOptions>,
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Local(path) => write!(f, "{}", path.display()),
            Kind::S3 { bucket, .. } if self.prefix.is_empty() => write!(f, "s3://{bucket}/"),
            Kind::S3 { bucket, .. } => write!(f, "s3://{bucket}/{}/", self.prefix),
        }
    }
}

/// The runtime that drives object_store for the blocking API.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fruits-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the I/O runtime: {e}"))
    })
}

pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// True for strings this crate reads as S3 URLs.
pub fn is_s3_url(s: &str) -> bool {
    s.starts_with("s3://") || s.starts_with("s3a://")
}

fn join_key(prefix: &str, rel: &str) -> String {
    let rel = rel.trim_matches('/');
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}/{rel}"),
    }
}

impl Location {
    /// Opens `spec`: an `s3://bucket/prefix` URL or a local path.
    ///
    /// For S3 this resolves credentials, asks the bucket's region and applies the
    /// region guard, so a misconfigured run stops here, before any work.
    pub fn parse(spec: &str, options: &StorageOptions) -> Result<Location, StorageError> {
        let options = Arc::new(options.clone());
        if is_s3_url(spec) {
            let rest = spec.split_once("://").map(|(_, r)| r).unwrap_or_default();
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StorageError::BadUrl {
                    url: spec.to_string(),
                    reason: "no bucket name".into(),
                });
            }
            let opened = s3::open_bucket(bucket, &options)?;
            return Ok(Location {
                kind: Kind::S3 {
                    bucket: bucket.to_string(),
                    region: opened.region,
                },
                prefix: prefix.trim_matches('/').to_string(),
                store: opened.store,
                options,
            });
        }
        if spec.contains("://") {
            return Err(StorageError::BadUrl {
                url: spec.to_string(),
                reason: "only local paths and s3:// URLs are supported".into(),
            });
        }
        Ok(Location::local(Path::new(spec), options))
    }

    /// A local folder (need not exist yet).
    pub fn local_path(path: &Path) -> Location {
        Location::local(path, Arc::new(StorageOptions::default()))
    }

    fn local(path: &Path, options: Arc<StorageOptions>) -> Location {
        let absolute = normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        let prefix = absolute
            .to_string_lossy()
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        Location {
            kind: Kind::Local(path.to_path_buf()),
            prefix,
            // fsync: a part must be on disk before its name is, as S3 guarantees.
            store: Arc::new(LocalFileSystem::new().with_fsync(true)),
            options,
        }
    }

    /// The location `rel` below this one.
    ///
    /// An empty `rel` names this location itself, which lets one API read and
    /// write single files (`get("")` on `photo.jpg` or `s3://b/photo.jpg`).
    pub fn child(&self, rel: &str) -> Location {
        let kind = match &self.kind {
            Kind::Local(path) => Kind::Local(local_join(path, rel)),
            s3 => s3.clone(),
        };
        Location {
            kind,
            prefix: join_key(&self.prefix, rel),
            store: self.store.clone(),
            options: self.options.clone(),
        }
    }

    /// The location one level up (`out/reduced` -> `out`, `s3://b/run/reduced/`
    /// -> `s3://b/run/`); `None` at the top of a bucket or file system.
    pub fn parent(&self) -> Option<Location> {
        let (parent_prefix, _) = match self.prefix.rsplit_once('/') {
            Some((p, last)) => (p.to_string(), last),
            None if self.prefix.is_empty() => return None,
            None => (String::new(), self.prefix.as_str()),
        };
        let kind = match &self.kind {
            Kind::Local(path) => {
                let absolute =
                    normalize(&std::path::absolute(path).unwrap_or_else(|_| path.clone()));
                Kind::Local(absolute.parent()?.to_path_buf())
            }
            s3 => s3.clone(),
        };
        Some(Location {
            kind,
            prefix: parent_prefix,
            store: self.store.clone(),
            options: self.options.clone(),
        })
    }

    /// The last part of this location's key (`out/reduced` -> `reduced`).
    pub fn name(&self) -> &str {
        self.prefix.rsplit('/').next().unwrap_or_default()
    }

    /// The folder, for a local location.
    pub fn as_local(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Local(path) => Some(path),
            Kind::S3 { .. } => None,
        }
    }

    /// The bucket's region, for an S3 location.
    pub fn region(&self) -> Option<&str> {
        match &self.kind {
            Kind::Local(_) => None,
            Kind::S3 { region, .. } => Some(region),
        }
    }

    /// The options this location was opened with.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// How `rel` below this location is shown to people.
    pub fn describe(&self, rel: &str) -> String {
        match &self.kind {
            Kind::Local(path) => local_join(path, rel).display().to_string(),
            Kind::S3 { bucket, .. } => format!("s3://{bucket}/{}", join_key(&self.prefix, rel)),
        }
    }

    fn key(&self, rel: &str) -> ObjPath {
        ObjPath::from(join_key(&self.prefix, rel))
    }

    fn error(&self, action: Action, rel: &str, e: object_store::Error) -> StorageError {
        let bucket = match &self.kind {
            Kind::S3 { bucket, .. } => Some(bucket.as_str()),
            Kind::Local(_) => None,
        };
        StorageError::from_store(action, self.describe(rel), bucket, e)
    }

    /// Whether `other` is this location or lies below it (in the same bucket
    /// under this prefix, or in this folder once symbolic links and `..` are
    /// resolved; `other` need not exist yet). A run whose output lies inside
    /// its input would read its own results back as input on the next run.
    pub fn contains(&self, other: &Location) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::S3 { bucket: a, .. }, Kind::S3 { bucket: b, .. }) => {
                a == b
                    && (self.prefix.is_empty()
                        || other.prefix == self.prefix
                        || other.prefix.starts_with(&format!("{}/", self.prefix)))
            }
            (Kind::Local(a), Kind::Local(b)) => match (resolve(a), resolve(b)) {
                (Some(a), Some(b)) => b.starts_with(a),
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether anything exists at or below this location.
    pub fn exists(&self) -> Result<bool, StorageError> {
        if let Kind::Local(path) = &self.kind {
            return Ok(path.exists());
        }
        let prefix = ObjPath::from(self.prefix.as_str());
        let mut listing = self.store.list(Some(&prefix));
        match block_on(listing.next()) {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(self.error(Action::List, "", e)),
        }
    }

    /// Every file below this location, sorted by relative key. S3 listings are
    /// paginated by the store, so prefixes with millions of keys stream rather than
    /// time out; local listings follow symbolic links and skip hidden entries.
    /// Local entries that cannot be listed as files (broken or looping links,
    /// unreadable folders, FIFOs and devices, non-UTF-8 names) are left out:
    /// [`list`](Self::list) reports them.
    pub fn list_files(&self) -> Result<Vec<FileMeta>, StorageError> {
        Ok(self.list()?.files)
    }

    /// Every file below this location, sorted by relative key, and the local
    /// entries that could not be listed as files, each with the reason.
    pub fn list(&self) -> Result<Listing, StorageError> {
        let (mut files, problems) = match &self.kind {
            Kind::Local(path) => local::list(path)?,
            Kind::S3 { .. } => {
                let prefix = ObjPath::from(self.prefix.as_str());
                let listing = self.store.list(Some(&prefix));
                let metas: Vec<object_store::ObjectMeta> =
                    block_on(listing.try_collect()).map_err(|e| self.error(Action::List, "", e))?;
                let files = metas
                    .into_iter()
                    .filter_map(|m| {
                        let rel: Vec<String> = m
                            .location
                            .prefix_match(&prefix)?
                            .map(|part| decode(part.as_ref()))
                            .collect();
                        Some(FileMeta {
                            rel: rel.join("/"),
                            size: m.size,
                        })
                    })
                    .collect();
                (files, Vec::new())
            }
        };
        files.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(Listing { files, problems })
    }

    /// Deletes the temporary files a killed writer left directly in this
    /// location (local folders only: S3 puts leave none). Call it holding the
    /// output's lock, so no live writer's file is taken. Returns how many.
    pub fn sweep_temporary_files(&self) -> Result<usize, StorageError> {
        let Kind::Local(path) = &self.kind else {
            return Ok(0);
        };
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StorageError::local(Action::List, path, e)),
        };
        let mut swept = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if local::is_temporary(&name) && entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| StorageError::local(Action::Delete, &entry.path(), e))?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Removes this local folder if it is empty (S3 has no folders: nothing
    /// to do). Used after deleting a folder's files; a folder something else
    /// still holds is left alone.
    pub fn remove_empty_folder(&self) {
        if let Kind::Local(path) = &self.kind {
            let _ = std::fs::remove_dir(path);
        }
    }

    /// The names of the files directly in this location (not in sub-folders).
    pub fn list_names(&self) -> Result<Vec<String>, StorageError> {
        let mut names = match &self.kind {
            Kind::Local(path) => {
                let entries = match std::fs::read_dir(path) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(StorageError::local(Action::List, path, e)),
                };
                let mut names = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(|e| StorageError::local(Action::List, path, e))?;
                    if entry.file_type().is_ok_and(|t| t.is_file()) {
                        names.push(entry.file_name().to_string_lossy().into_owned());
                    }
                }
                names
            }
            Kind::S3 { .. } => {
                let prefix = ObjPath::from(self.prefix.as_str());
                let listing = block_on(self.store.list_with_delimiter(Some(&prefix)))
                    .map_err(|e| self.error(Action::List, "", e))?;
                listing
                    .objects
                    .into_iter()
                    .filter_map(|m| m.location.filename().map(decode))
                    .collect()
            }
        };
        names.sort();
        Ok(names)
    }

    /// The bytes of `rel`.
    pub fn get(&self, rel: &str) -> Result<Bytes, StorageError> {
        block_on(self.get_async(rel))
    }

    async fn get_async(&self, rel: &str) -> Result<Bytes, StorageError> {
        match &self.kind {
            Kind::Local(path) => {
                let file = local_join(path, rel);
                match tokio::task::spawn_blocking(move || local::read_file(&file)).await {
                    Ok(read) => read.map(Bytes::from),
                    Err(e) => Err(StorageError::Internal(e.to_string())),
                }
            }
            Kind::S3 { .. } => {
                let key = self.key(rel);
                async { self.store.get(&key).await?.bytes().await }
                    .await
                    .map_err(|e| self.error(Action::Get, rel, e))
            }
        }
    }

    /// The bytes of `rel`, or `None` when it does not exist.
    pub fn get_opt(&self, rel: &str) -> Result<Option<Bytes>, StorageError> {
        match self.get(rel) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fetches every key of `rels` with at most [`StorageOptions::concurrency`]
    /// requests in flight, calling `each(index, result)` in input order. Stops when
    /// `each` returns false.
    pub fn fetch_each<F>(&self, rels: &[String], mut each: F)
    where
        F: FnMut(usize, Result<Bytes, StorageError>) -> bool,
    {
        let concurrency = self.options.concurrency.max(1);
        let fetches = futures::stream::iter(rels.iter().enumerate())
            .map(|(i, rel)| async move { (i, self.get_async(rel).await) })
            .buffered(concurrency);
        block_on(async {
            futures::pin_mut!(fetches);
            while let Some((i, result)) = fetches.next().await {
                if !each(i, result) {
                    break;
                }
            }
        });
    }

    /// Writes `bytes` at `rel`, replacing it atomically: readers see the old object
    /// or the new one, never a part. Large objects are uploaded in parts.
    pub fn put(&self, rel: &str, bytes: Bytes) -> Result<(), StorageError> {
        if let Kind::Local(path) = &self.kind {
            let file = local_join(path, rel);
            return local::put_atomic(&file, &bytes)
                .map_err(|e| StorageError::local(Action::Put, &file, e));
        }
        let key = self.key(rel);
        let threshold = self.options.multipart_threshold.max(5 * 1024 * 1024);
        let result = block_on(async {
            if bytes.len() < threshold {
                self.store
                    .put(&key, PutPayload::from(bytes))
                    .await
                    .map(|_| ())
            } else {
                let upload = self.store.put_multipart(&key).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, threshold);
                writer.write(&bytes);
                writer.finish().await.map(|_| ())
            }
        });
        result.map_err(|e| self.error(Action::Put, rel, e))
    }

    /// Writes `bytes` at `rel` only if nothing is there yet (S3: a conditional
    /// put, `If-None-Match: *`; a local file: created exclusively). Returns the
    /// new object's version tag, or [`StorageError::AlreadyExists`].
    pub fn put_if_absent(&self, rel: &str, bytes: Bytes) -> Result<Option<String>, StorageError> {
        self.put_with_mode(rel, bytes, object_store::PutMode::Create)
    }

    /// Replaces `rel` only if its version tag is still `e_tag` (S3:
    /// `If-Match`). Returns the new tag, or [`StorageError::AlreadyExists`]
    /// when another writer changed it first.
    pub fn put_if_match(
        &self,
        rel: &str,
        bytes: Bytes,
        e_tag: &str,
    ) -> Result<Option<String>, StorageError> {
        let version = object_store::UpdateVersion {
            e_tag: Some(e_tag.to_string()),
            version: None,
        };
        self.put_with_mode(rel, bytes, object_store::PutMode::Update(version))
    }

    fn put_with_mode(
        &self,
        rel: &str,
        bytes: Bytes,
        mode: object_store::PutMode,
    ) -> Result<Option<String>, StorageError> {
        let key = self.key(rel);
        let options = object_store::PutOptions {
            mode,
            ..Default::default()
        };
        block_on(self.store.put_opts(&key, PutPayload::from(bytes), options))
            .map(|r| r.e_tag)
            .map_err(|e| self.error(Action::Put, rel, e))
    }

    /// The bytes of `rel` with their version tag (for [`put_if_match`](Self::put_if_match)),
    /// or `None` when it does not exist.
    pub fn get_versioned(
        &self,
        rel: &str,
    ) -> Result<Option<(Bytes, Option<String>)>, StorageError> {
        let key = self.key(rel);
        let got = block_on(async {
            let r = self.store.get(&key).await?;
            let e_tag = r.meta.e_tag.clone();
            Ok::<_, object_store::Error>((r.bytes().await?, e_tag))
        });
        match got {
            Ok(pair) => Ok(Some(pair)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(Action::Get, rel, e)),
        }
    }

    /// Deletes `rel`; deleting what does not exist is not an error.
    pub fn delete(&self, rel: &str) -> Result<(), StorageError> {
        let key = self.key(rel);
        match block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(Action::Delete, rel, e)),
        }
    }

    /// Checks up front that this location can be written, by writing and deleting
    /// a small probe object, so a run without permission fails before any work.
    pub fn check_writable(&self) -> Result<(), StorageError> {
        if let Kind::Local(path) = &self.kind {
            std::fs::create_dir_all(path)
                .map_err(|e| StorageError::local(Action::CreateFolder, path, e))?;
        }
        self.put(WRITE_PROBE, Bytes::from_static(b"ok"))
            .map_err(|e| e.for_probe(self.to_string()))?;
        self.delete(WRITE_PROBE)
            .map_err(|e| e.for_probe(self.to_string()))
    }
}

/// Resolves `.` and `..` lexically, as object_store keys cannot hold them.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` made absolute with symbolic links resolved, for the part that
/// exists (the rest, not yet created, appended as written).
fn resolve(path: &Path) -> Option<PathBuf> {
    let absolute = normalize(&std::path::absolute(path).ok()?);
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return Some(rest.iter().rev().fold(real, |p, c| p.join(c)));
        }
        rest.push(existing.file_name()?.to_os_string());
        existing = existing.parent()?;
    }
}

/// Undoes object_store's percent-encoding of a key part.
fn decode(part: &str) -> String {
    percent_encoding::percent_decode_str(part)
        .decode_utf8_lossy()
        .into_owned()
}

/// `path/rel`, or `path` itself when `rel` is empty (`Path::join("")` adds a
/// trailing separator, which names a directory).
fn local_join(path: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        path.to_path_buf()
    } else {
        path.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_sees_through_links_and_missing_folders() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let photos = tmp.path().join("photos");
        std::fs::create_dir(&photos)?;
        std::os::unix::fs::symlink(&photos, tmp.path().join("link"))?;
        let at = |p: &Path| Location::local_path(p);
        let input = at(&photos);
        assert!(input.contains(&at(&photos)), "the same folder");
        assert!(
            input.contains(&at(&photos.join("out/features"))),
            "below, not yet made"
        );
        assert!(
            input.contains(&at(&tmp.path().join("link/out"))),
            "through a link"
        );
        assert!(input.contains(&at(&photos.join("a/../b"))));
        assert!(
            !input.contains(&at(&tmp.path().join("photos-out"))),
            "a sibling"
        );
        assert!(!input.contains(&at(tmp.path())), "the parent");
        Ok(())
    }

    #[test]
    fn local_paths_are_normalised() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        let loc = Location::local_path(Path::new("/tmp/x/../y"));
        assert_eq!(loc.prefix, "tmp/y");
    }

    #[test]
    fn keys_join_without_double_slashes() {
        assert_eq!(join_key("", "a/b"), "a/b");
        assert_eq!(join_key("p/q", ""), "p/q");
        assert_eq!(join_key("p", "/a/"), "p/a");
    }

    #[test]
    fn local_roundtrip_list_and_probe() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let loc = Location::parse(
            &dir.path().join("out").to_string_lossy(),
            &StorageOptions::default(),
        )?;
        assert!(!loc.exists()?);
        loc.check_writable()?;
        loc.put("Test/Apple 6/a b.jpg", Bytes::from_static(b"x"))?;
        loc.child("Test")
            .put("Kiwi/c.png", Bytes::from_static(b"yz"))?;
        let files = loc.list_files()?;
        let rels: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["Test/Apple 6/a b.jpg", "Test/Kiwi/c.png"]);
        assert_eq!(files[1].size, 2);
        assert_eq!(loc.get("Test/Kiwi/c.png")?, Bytes::from_static(b"yz"));
        assert!(loc.get_opt("missing")?.is_none());
        assert!(loc.list_names()?.is_empty(), "only sub-folders at the top");
        assert_eq!(loc.child("Test/Kiwi").list_names()?, ["c.png"]);
        let mut got = Vec::new();
        loc.fetch_each(&["Test/Kiwi/c.png".into(), "nope".into()], |i, r| {
            got.push((i, r.is_ok()));
            true
        });
        assert_eq!(got, [(0, true), (1, false)]);
        Ok(())
    }

    #[test]
    fn bad_urls_are_explained() {
        let err = Location::parse("gs://x/y", &StorageOptions::default()).expect_err("gs");
        assert!(err.to_string().contains("s3://"), "{err}");
        let err = Location::parse("s3:///y", &StorageOptions::default()).expect_err("no bucket");
        assert!(err.to_string().contains("no bucket"), "{err}");
    }
}
