//! Augmented copies of a folder of photos, for training on photos "in the wild".

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use fruits_image::DecodeLimits;
use fruits_image::augment::{AugmentSettings, augment};
use fruits_ingest::ImageEntry;
use fruits_store::{ErrorKind, Location};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::PipelineError;

/// Default copies made of each photo.
pub const DEFAULT_COPIES: u32 = 2;
/// Most copies of each photo anyone may ask for (the CLI, Python): each copy
/// costs a decode, a transformation and an encode.
pub const MAX_COPIES: u32 = 100;

/// Default seed of the random draws.
pub const DEFAULT_SEED: u64 = 0;
/// The split whose photos get copies while featurising: copies of test photos
/// would only blur what an evaluation measures.
pub const DEFAULT_SPLIT: &str = "Training";

/// Augmented copies made in memory while featurising (`fruits featurize
/// --augment N`): the same files `fruits augment` writes, featurised without
/// being stored, each a row named as the file would be (`...-aug0.jpg`).
#[derive(Debug, Clone, PartialEq)]
pub struct Augmentation {
    /// Copies of each photo.
    pub copies: u32,
    /// Seed of the random draws, as `fruits augment --seed`.
    pub seed: u64,
    /// Only photos of this split get copies; every photo when the input has no split folders.
    pub split: String,
    /// How far the transformations go.
    pub settings: AugmentSettings,
}

impl Augmentation {
    /// `copies` copies of each training photo, drawn from `seed`, default transformations.
    pub fn new(copies: u32, seed: u64) -> Augmentation {
        Augmentation {
            copies,
            seed,
            split: DEFAULT_SPLIT.to_string(),
            settings: AugmentSettings::default(),
        }
    }

    /// Adds the copies' entries to `entries`, each right after its photo (so
    /// the photo is read while it is still in the page cache), and returns where
    /// each copy comes from. A copy whose name a listed file already has (the
    /// files of an earlier `fruits augment` into the same folder) is left out:
    /// each path is one row.
    pub(crate) fn expand(&self, entries: &mut Vec<ImageEntry>) -> CopySources {
        let any_split = entries.iter().any(|e| e.split.is_some());
        let listed: HashSet<String> = entries.iter().map(|e| e.path.clone()).collect();
        let mut sources = CopySources::default();
        let mut all = Vec::with_capacity(entries.len());
        for entry in entries.drain(..) {
            let wanted = !any_split || entry.split.as_deref() == Some(self.split.as_str());
            let copies: Vec<ImageEntry> = if wanted {
                (0..self.copies)
                    .map(|k| (k, copy_name(&entry.path, k)))
                    .filter(|(_, path)| !listed.contains(path))
                    .map(|(k, path)| {
                        sources.0.insert(path.clone(), (entry.path.clone(), k));
                        ImageEntry {
                            path,
                            ..entry.clone()
                        }
                    })
                    .collect()
            } else {
                Vec::new()
            };
            all.push(entry);
            all.extend(copies);
        }
        *entries = all;
        sources
    }

    /// What the rows record of these settings ([`fruits_store::AugmentRecord`]).
    pub fn record(&self) -> fruits_store::AugmentRecord {
        fruits_store::AugmentRecord {
            copies: self.copies,
            seed: self.seed,
            split: self.split.clone(),
            naming: NAMING,
        }
    }

    /// The copy `k` of the photo `source`'s `bytes`, as the file `fruits augment` writes.
    pub(crate) fn copy(
        &self,
        bytes: &[u8],
        source: &str,
        k: u32,
        limits: &DecodeLimits,
    ) -> Result<Bytes, (ErrorKind, String)> {
        augment(
            bytes,
            limits,
            copy_seed(self.seed, source, k),
            &self.settings,
        )
        .map(Bytes::from)
        .map_err(|e| {
            (
                crate::kinds::augment_error_kind(&e),
                format!("augmented copy of {source}: {e}"),
            )
        })
    }
}

/// Where each augmented copy comes from: its row path -> (the photo's path, copy number).
#[derive(Debug, Default)]
pub(crate) struct CopySources(HashMap<String, (String, u32)>);

impl CopySources {
    /// The photo and copy number of the row `path`, when it is a copy.
    pub(crate) fn get(&self, path: &str) -> Option<(&str, u32)> {
        self.0.get(path).map(|(s, k)| (s.as_str(), *k))
    }
}

/// What [`augment_folder`] did.
#[derive(Debug, Clone, Serialize)]
pub struct AugmentSummary {
    /// Photos found under the input (and entries that looked like photos but
    /// could not be listed as files).
    pub inputs: u64,
    /// Copies written by this run.
    pub written: u64,
    /// Copies already in the output (from an earlier, interrupted run): the
    /// files are the same, so they are not made again.
    pub kept: u64,
    /// Photos with no copies: (path, kind, why), the kinds of the errors table.
    pub failed: Vec<(String, ErrorKind, String)>,
    /// Where the copies are.
    pub output: String,
    /// False when the run was interrupted: run it again to finish.
    pub complete: bool,
}

/// One photo's outcome: copies written and kept, or (path, kind, why) it has none.
type Outcome = Result<(u64, u64), (String, ErrorKind, String)>;

/// The copy `k` of the photo at `path`: its own seed, so each copy is
/// reproducible on its own whatever else the run holds.
fn copy_seed(seed: u64, path: &str, k: u32) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(path.as_bytes())
        .chain_update(k.to_le_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// Version of [`copy_name`]'s scheme, recorded with featurised copies so a
/// resume never mixes two schemes: 1 dropped the photo's extension (`x.jpg`
/// and `x.png` both gave `x-aug0.jpg`), 2 keeps it.
pub const NAMING: u32 = 2;

/// The name of copy `k` of `path`: `Training/Kiwi 1/r_12_100.jpg` ->
/// `Training/Kiwi 1/r_12_100.jpg-aug1.jpg`, in the same folders, so labels
/// and splits stay what they were. The whole file name is kept, extension
/// and case included, so two photos never share a copy's name (`x.jpg`,
/// `x.JPG`, `x.png`, `x.jpeg`).
pub fn copy_name(path: &str, k: u32) -> String {
    format!("{path}-aug{k}.jpg")
}

/// Whether the row `path` is an augmented copy (named by [`copy_name`], or
/// by the first scheme, `x-aug0.jpg`).
pub fn is_copy(path: &str) -> bool {
    let file = path.rsplit_once('/').map_or(path, |(_, f)| f);
    file.strip_suffix(".jpg")
        .and_then(|stem| stem.rsplit_once("-aug"))
        .is_some_and(|(_, k)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
}

/// Refuses an output that is the input or lies inside it: the next run would
/// take the output's own files (copies, plots) for photos.
pub fn check_output_outside(input: &Location, out: &Location) -> Result<(), PipelineError> {
    if input.contains(out) {
        return Err(PipelineError::OutputInsideInput {
            input: input.to_string(),
            output: out.to_string(),
        });
    }
    Ok(())
}

/// Writes `copies` transformed copies ([`augment`]) of every photo under
/// `input` into `out`, as JPEG files in the same folder layout. Seeded: the same
/// input, seed and settings give the same files, so copies already in `out`
/// are kept and a rerun finishes an interrupted one. A photo that cannot be
/// read or decoded, and an entry the listing could not read as a file, is
/// listed in the summary with its kind, not fatal; a storage failure is.
/// Stops early (summary not `complete`) when `cancel` becomes true.
pub fn augment_folder(
    input: &Location,
    out: &Location,
    copies: u32,
    seed: u64,
    limits: &DecodeLimits,
    settings: &AugmentSettings,
    cancel: &AtomicBool,
) -> Result<AugmentSummary, PipelineError> {
    if copies == 0 || copies > MAX_COPIES {
        return Err(PipelineError::Config(format!(
            "copies must be 1 to {MAX_COPIES}, got {copies}"
        )));
    }
    check_output_outside(input, out)?;
    out.check_writable()?;
    let listing = fruits_ingest::list_images(input)?;
    if listing.entries.is_empty() && listing.problems.is_empty() {
        return Err(PipelineError::NoImages {
            input: input.to_string(),
        });
    }
    let existing: HashSet<String> = if out.exists()? {
        out.list_files()?.into_iter().map(|f| f.rel).collect()
    } else {
        HashSet::new()
    };
    let outcomes: Vec<Result<Option<Outcome>, PipelineError>> = listing
        .entries
        .par_iter()
        .map(|entry| {
            if cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let names: Vec<String> = (0..copies).map(|k| copy_name(&entry.path, k)).collect();
            let kept = names.iter().filter(|n| existing.contains(*n)).count() as u64;
            if kept == u64::from(copies) {
                return Ok(Some(Ok((0, kept))));
            }
            let bytes = match input.get(&entry.path) {
                Ok(b) => b,
                Err(e) if e.is_item_level() => {
                    return Ok(Some(Err((
                        entry.path.clone(),
                        ErrorKind::Io,
                        e.to_string(),
                    ))));
                }
                Err(e) => return Err(PipelineError::Storage(e)),
            };
            let mut written = 0;
            for (k, name) in (0..copies).zip(&names) {
                if existing.contains(name) {
                    continue;
                }
                let jpeg = match augment(&bytes, limits, copy_seed(seed, &entry.path, k), settings)
                {
                    Ok(j) => j,
                    Err(e) => {
                        return Ok(Some(Err((
                            entry.path.clone(),
                            crate::kinds::augment_error_kind(&e),
                            e.to_string(),
                        ))));
                    }
                };
                out.put(name, jpeg.into())?;
                written += 1;
            }
            Ok(Some(Ok((written, kept))))
        })
        .collect();
    let mut summary = AugmentSummary {
        inputs: (listing.entries.len() + listing.problems.len()) as u64,
        written: 0,
        kept: 0,
        failed: listing
            .problems
            .iter()
            .map(|p| (p.rel.clone(), ErrorKind::from(p.kind), p.message.clone()))
            .collect(),
        output: out.to_string(),
        complete: true,
    };
    for outcome in outcomes {
        match outcome? {
            Some(Ok((written, kept))) => {
                summary.written += written;
                summary.kept += kept;
            }
            Some(Err(failure)) => summary.failed.push(failure),
            None => summary.complete = false,
        }
    }
    summary.failed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, split: Option<&str>) -> ImageEntry {
        ImageEntry {
            path: path.to_string(),
            size: 1,
            label: "Kiwi".to_string(),
            split: split.map(str::to_string),
        }
    }

    #[test]
    fn only_training_photos_get_copies_each_after_its_photo_and_names_stay_unique() {
        let mut entries = vec![
            entry("Training/Kiwi/a.jpg", Some("Training")),
            entry("Training/Kiwi/a.jpg-aug1.jpg", Some("Training")),
            entry("Test/Kiwi/b.jpg", Some("Test")),
        ];
        let sources = Augmentation::new(2, 0).expand(&mut entries);
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "Training/Kiwi/a.jpg",
                "Training/Kiwi/a.jpg-aug0.jpg",
                // a.jpg-aug1.jpg is a listed file: no copy of that name is made.
                "Training/Kiwi/a.jpg-aug1.jpg",
                "Training/Kiwi/a.jpg-aug1.jpg-aug0.jpg",
                "Training/Kiwi/a.jpg-aug1.jpg-aug1.jpg",
                "Test/Kiwi/b.jpg",
            ]
        );
        assert_eq!(
            sources.get("Training/Kiwi/a.jpg-aug0.jpg"),
            Some(("Training/Kiwi/a.jpg", 0))
        );
        assert_eq!(sources.get("Training/Kiwi/a.jpg-aug1.jpg"), None);
        // Without split folders, every photo gets copies.
        let mut flat = vec![entry("Kiwi/c.jpg", None)];
        Augmentation::new(1, 0).expand(&mut flat);
        assert_eq!(flat.len(), 2);
    }

    #[test]
    fn copies_keep_their_folders_and_have_their_own_seeds() {
        assert_eq!(
            copy_name("Training/Kiwi 1/r_12_100.jpg", 1),
            "Training/Kiwi 1/r_12_100.jpg-aug1.jpg"
        );
        assert_eq!(copy_name("a.png", 0), "a.png-aug0.jpg");
        // Photos that differ only by extension or its case get their own copies.
        let names: HashSet<String> = ["x.jpg", "x.png", "x.JPG", "x.jpeg"]
            .iter()
            .map(|p| copy_name(p, 0))
            .collect();
        assert_eq!(names.len(), 4);
        assert!(is_copy("Training/Kiwi 1/r_12_100.jpg-aug1.jpg") && is_copy("a.png-aug10.jpg"));
        // Rows of the first naming scheme still count as copies.
        assert!(is_copy("Training/Kiwi 1/r_12_100-aug1.jpg"));
        assert!(!is_copy("Training/Kiwi 1/r_12_100.jpg") && !is_copy("a-aug.jpg"));
        assert!(!is_copy("a-aug1.png") && !is_copy("x-aug1/b.jpg.png"));
        assert_ne!(copy_seed(1, "a.jpg", 0), copy_seed(1, "a.jpg", 1));
        assert_ne!(copy_seed(1, "a.jpg", 0), copy_seed(2, "a.jpg", 0));
        assert_eq!(copy_seed(1, "a.jpg", 0), copy_seed(1, "a.jpg", 0));
    }
}
