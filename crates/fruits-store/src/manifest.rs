//! The manifest: written last, it names the parts that make up a complete output.

use serde::{Deserialize, Serialize};

use crate::DatasetMeta;

/// File name of the manifest inside an output folder.
pub const MANIFEST_FILE: &str = "_manifest.json";

/// A part file named by the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// File name, relative to the output folder.
    pub file: String,
    /// Rows in the file.
    pub rows: u64,
}

/// The manifest's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version; bumped on incompatible changes.
    pub format_version: u32,
    /// What made the data (model hash, preprocessing, tool version).
    pub meta: DatasetMeta,
    /// Total rows over `parts`.
    pub rows: u64,
    /// Total rows over `error_parts`.
    pub errors: u64,
    /// Feature parts, in order.
    pub parts: Vec<PartInfo>,
    /// Errors parts, in order.
    pub error_parts: Vec<PartInfo>,
    /// Seconds since the Unix epoch when the manifest was written.
    pub written_at_unix: u64,
}

impl Manifest {
    /// Current layout version.
    pub const FORMAT_VERSION: u32 = 1;
}
