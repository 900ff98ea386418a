//! Erasure: a photo's rows removed from an output (features or reduced
//! parts, and the errors table), with a record of the erasure beside it.
//!
//! Each part holding a row of a forgotten path is rewritten without it under
//! its own name, in one atomic put (a part left empty is deleted); then the
//! manifest is written again with the new counts, and last the record. A run
//! killed midway has already removed what it rewrote: running it again
//! finishes the rest and the manifest.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::parts::unix_now;
use crate::{Manifest, OutputDir, PartInfo, PartKind, StoreError};

/// Prefix of the erasure records an output keeps (`_forgotten-<unix ms>.json`).
pub const FORGOTTEN_PREFIX: &str = "_forgotten-";

/// What one erasure removed from one output, as its record says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Forgotten {
    /// When (seconds since the Unix epoch).
    pub at_unix: u64,
    /// sha256 (hex) of each path asked for, so the record keeps no names:
    /// hash a path to find whether it was erased.
    pub path_sha256: Vec<String>,
    /// Rows removed from the features (or reduced) table.
    pub rows: u64,
    /// Rows removed from the errors table.
    pub error_rows: u64,
    /// Rows removed per part file.
    pub parts: BTreeMap<String, u64>,
    /// How many of the paths asked for had no row in this output.
    pub not_found: usize,
    /// The record file written, inside the output.
    #[serde(skip)]
    pub record: String,
    /// The paths found (and erased) here; not recorded, to keep no names.
    #[serde(skip)]
    pub found: HashSet<String>,
}

impl OutputDir {
    /// Removes every row of `paths` (paths relative to the input root, as the
    /// output stores them) from this output's parts, rewrites its manifest
    /// and writes a record of the erasure. Holds the output's lock when
    /// opened with [`OutputDir::create_exclusive`], as it should be.
    pub fn forget(&self, paths: &HashSet<String>) -> Result<Forgotten, StoreError> {
        let mut scan = self.scan()?;
        let mut report = Forgotten {
            at_unix: unix_now(),
            ..Forgotten::default()
        };
        let mut found: HashSet<&str> = HashSet::new();
        for part in &mut scan.parts {
            let drop: HashSet<String> = part
                .paths
                .iter()
                .filter(|p| paths.contains(p.as_str()))
                .cloned()
                .collect();
            if drop.is_empty() {
                continue;
            }
            let before = part.paths.len() as u64;
            self.rewrite_without(part, &drop)?;
            let removed = before - part.paths.len() as u64;
            match part.kind {
                PartKind::Features => report.rows += removed,
                PartKind::Errors => report.error_rows += removed,
            }
            report.parts.insert(part.file.clone(), removed);
            found.extend(
                paths
                    .iter()
                    .filter(|p| drop.contains(*p))
                    .map(String::as_str),
            );
        }
        report.not_found = paths.len() - found.len();
        report.found = found.into_iter().map(String::from).collect();
        // The manifest names the parts left, with their new counts (rewritten
        // even when nothing was found here: a killed erasure is finished).
        if let Some(old) = scan.manifest.take() {
            let count = |kind: PartKind, named: &[PartInfo]| -> Vec<PartInfo> {
                named
                    .iter()
                    .filter_map(|info| {
                        scan.parts
                            .iter()
                            .find(|p| p.kind == kind && p.file == info.file)
                            .filter(|p| !p.paths.is_empty())
                            .map(|p| PartInfo {
                                file: p.file.clone(),
                                rows: p.paths.len() as u64,
                            })
                    })
                    .collect()
            };
            let manifest = Manifest::new(
                old.meta.clone(),
                count(PartKind::Features, &old.parts),
                count(PartKind::Errors, &old.error_parts),
            );
            self.write_manifest(&manifest)?;
        }
        let mut hashes: Vec<String> = paths.iter().map(|p| sha256_hex(p.as_bytes())).collect();
        hashes.sort();
        report.path_sha256 = hashes;
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        report.record = format!("{FORGOTTEN_PREFIX}{millis}.json");
        let text =
            serde_json::to_vec_pretty(&report).map_err(|e| StoreError::Manifest(e.to_string()))?;
        self.root().put(&report.record, Bytes::from(text))?;
        Ok(report)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Folders of a run holding outputs, in the order they are erased.
const RUN_OUTPUTS: [&str; 2] = ["features", "reduced"];

/// Erases `paths` from the output at `root`, or, when `root` is a run's
/// folder (no output of its own), from each of its `features/` and
/// `reduced/`; each output is locked while it is rewritten. Returns each
/// output with its report; none found is an error.
pub fn forget_in(
    root: &crate::Location,
    paths: &HashSet<String>,
) -> Result<Vec<(crate::Location, Forgotten)>, StoreError> {
    let is_output = |loc: &crate::Location| -> Result<bool, StoreError> {
        Ok(loc.get_opt(crate::MANIFEST_FILE)?.is_some()
            || loc
                .list_names()?
                .iter()
                .any(|n| PartKind::parse(n).is_some()))
    };
    let mut targets = Vec::new();
    if is_output(root)? {
        targets.push(root.clone());
    } else {
        for name in RUN_OUTPUTS {
            let child = root.child(name);
            if is_output(&child)? {
                targets.push(child);
            }
        }
    }
    if targets.is_empty() {
        return Err(StoreError::Manifest(format!(
            "{root} is neither an output nor a run's folder (no manifest or part there, nor in \
             features/ or reduced/)"
        )));
    }
    targets
        .into_iter()
        .map(|loc| {
            let dir = OutputDir::create_exclusive(&loc)?;
            let report = dir.forget(paths)?;
            Ok((loc, report))
        })
        .collect()
}
