//! The on-disk layout of a fruits output, and reading it back.
//!
//! An output is a folder of Parquet part files plus a manifest:
//!
//! ```text
//! out/features/
//!   part-r000-00000.parquet     rows: path, label, split, sha256, width, height, features
//!   errors-r000-00000.parquet   inputs that failed: path, kind, message
//!   _manifest.json              written last: the parts that make up the output
//! ```
//!
//! The output may be a local folder or an S3 prefix ([`Location`]). Every part is
//! put atomically (a local file is staged and renamed, an S3 object appears when
//! its upload completes), so a part either exists whole or not at all. The manifest is rewritten at the
//! end of each run; readers ([`Dataset`]) only read the parts it names, so a run
//! that crashed midway never looks complete, while the parts it did finish are
//! picked up by the next run ([`OutputDir::scan`]).

mod csv;
mod forget;
mod lock;
mod manifest;
mod parts;
mod repair;
mod schema;

pub use csv::export_csv;
pub use forget::{FORGOTTEN_PREFIX, Forgotten, forget_in};
pub use lock::{Holder, LEASE_FILE, LEASE_TTL, LOCK_FILE, OutputLock};
pub use manifest::{MANIFEST_FILE, Manifest, PartInfo};
pub use parts::{Dataset, OutputDir, PartKind, Scan, ScannedPart, check_vector_lengths};
pub use schema::{
    AugmentRecord, DatasetMeta, ErrorKind, ErrorRows, FeatureRows, columns, decode_pca,
    encode_int8, errors_schema, features_schema, hex_column, meta_from_kv, meta_to_kv,
};

pub use fruits_contract::{FeatureSpec, View};
pub use fruits_location::{Location, StorageError};

/// What can go wrong reading or writing an output.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage (local folder or S3) failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Parquet encoding or decoding failed.
    #[error("Parquet error in {path}: {message}")]
    Parquet {
        /// The part file.
        path: String,
        /// The parquet crate's message.
        message: String,
    },
    /// Arrow could not build or convert a batch.
    #[error("Arrow error: {0}")]
    Arrow(String),
    /// The manifest is missing or unreadable.
    #[error("{0}")]
    Manifest(String),
    /// A part does not have the shape this version expects.
    #[error("{path} does not look like a fruits output: {reason}")]
    Schema {
        /// The part file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process is writing this output.
    #[error(
        "another run is writing to {output}{}; wait for it to finish, or write elsewhere",
        holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Locked {
        /// The output.
        output: String,
        /// Who holds it, when known.
        holder: Option<String>,
    },
    /// Existing parts were made with another model (or output, or preprocessing)
    /// than the current run's.
    #[error(
        "{dir} already holds features of model {} (output {:?}), not this run's model {} (output {:?}); \
         write to a new output, or delete the old one to start over",
        existing.model_sha256, existing.feature_output, current.model_sha256, current.feature_output
    )]
    ModelMismatch {
        /// The output folder.
        dir: String,
        /// What the existing parts record.
        existing: Box<FeatureSpec>,
        /// What this run makes.
        current: Box<FeatureSpec>,
    },
}

impl StoreError {
    /// Wraps a Parquet or Arrow failure on `path`; `Fn` so a reader can map every batch.
    pub(crate) fn parquet<E: std::fmt::Display>(path: impl Into<String>) -> impl Fn(E) -> Self {
        let path = path.into();
        move |e| StoreError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        }
    }
}
