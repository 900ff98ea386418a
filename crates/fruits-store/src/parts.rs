//! Writing part files atomically, finding them again, and reading a complete output.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::{Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{DatasetMeta, MANIFEST_FILE, Manifest, PartInfo, StoreError, meta_from_kv, meta_to_kv};

/// The two tables of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PartKind {
    /// Featurised rows.
    Features,
    /// Inputs that failed, with the reason.
    Errors,
}

impl PartKind {
    fn prefix(self) -> &'static str {
        match self {
            PartKind::Features => "part-",
            PartKind::Errors => "errors-",
        }
    }

    /// The file name of part `seq` of run `run`.
    pub fn file_name(self, run: u32, seq: u32) -> String {
        format!("{}r{run:03}-{seq:05}.parquet", self.prefix())
    }

    /// Parses a part file name back into (kind, run, seq).
    pub fn parse(name: &str) -> Option<(PartKind, u32, u32)> {
        let (kind, rest) = if let Some(rest) = name.strip_prefix("part-r") {
            (PartKind::Features, rest)
        } else {
            (PartKind::Errors, name.strip_prefix("errors-r")?)
        };
        let (run, seq) = rest.strip_suffix(".parquet")?.split_once('-')?;
        Some((kind, run.parse().ok()?, seq.parse().ok()?))
    }
}

/// A committed part found on disk, whether or not a manifest names it yet.
#[derive(Debug, Clone)]
pub struct ScannedPart {
    /// File name inside the output folder.
    pub file: String,
    /// Which table it belongs to.
    pub kind: PartKind,
    /// Run number it was written by.
    pub run: u32,
    /// Sequence number within the run.
    pub seq: u32,
    /// Metadata recorded in the file (features parts).
    pub meta: Option<DatasetMeta>,
    /// The `path` column: the inputs this part accounts for.
    pub paths: Vec<String>,
}

/// Everything an output folder already holds, for resuming.
#[derive(Debug, Default)]
pub struct Scan {
    /// Committed parts, ordered by run then sequence.
    pub parts: Vec<ScannedPart>,
    /// The manifest of the last completed run, if any.
    pub manifest: Option<Manifest>,
    /// The run number a new run should use.
    pub next_run: u32,
}

/// An output folder being written.
#[derive(Debug, Clone)]
pub struct OutputDir {
    root: PathBuf,
}

impl OutputDir {
    /// Creates the folder if needed and checks that it is writable, so a run
    /// fails before doing any work rather than after.
    pub fn create(root: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(root).map_err(StoreError::io("cannot create output folder", root))?;
        let probe = root.join(".fruits-write-check.tmp");
        fs::write(&probe, b"ok").map_err(StoreError::io("cannot write in output folder", root))?;
        fs::remove_file(&probe)
            .map_err(StoreError::io("cannot delete from output folder", root))?;
        // Temporary files are parts a crashed run did not finish: never valid, safe to drop.
        for entry in fs::read_dir(root).map_err(StoreError::io("cannot list", root))? {
            let entry = entry.map_err(StoreError::io("cannot list", root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(OutputDir {
            root: root.to_path_buf(),
        })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Finds the committed parts and the manifest, reading each part's `path` column.
    pub fn scan(&self) -> Result<Scan, StoreError> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(StoreError::io("cannot list", &self.root))? {
            let entry = entry.map_err(StoreError::io("cannot list", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((kind, run, seq)) = PartKind::parse(&name) {
                found.push((run, seq, kind, name));
            }
        }
        found.sort();
        let mut parts = Vec::with_capacity(found.len());
        for (run, seq, kind, file) in found {
            let path = self.root.join(&file);
            let (meta, paths) = read_paths(&path)?;
            parts.push(ScannedPart {
                file,
                kind,
                run,
                seq,
                meta,
                paths,
            });
        }
        let next_run = parts.iter().map(|p| p.run + 1).max().unwrap_or(0);
        let manifest = read_manifest(&self.root)?;
        Ok(Scan {
            parts,
            manifest,
            next_run,
        })
    }

    /// Writes `batch` as part `file`, atomically: a temporary file renamed into place.
    pub fn write_part(
        &self,
        file: &str,
        batch: &RecordBatch,
        meta: &DatasetMeta,
    ) -> Result<PartInfo, StoreError> {
        let target = self.root.join(file);
        let tmp = self.root.join(format!(".{file}.tmp"));
        let props = WriterProperties::builder()
            // zstd level 1: strings shrink a lot, floats a little, at little CPU cost.
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
            .set_key_value_metadata(Some(meta_to_kv(meta)))
            .build();
        let out = File::create(&tmp).map_err(StoreError::io("cannot create", &tmp))?;
        let pq_err = StoreError::parquet::<parquet::errors::ParquetError>(&target);
        let mut writer = ArrowWriter::try_new(out, batch.schema(), Some(props)).map_err(&pq_err)?;
        writer.write(batch).map_err(&pq_err)?;
        let out = writer.into_inner().map_err(&pq_err)?;
        // Data must be on disk before the rename publishes it, or a power cut could
        // leave a complete-looking name over an empty file.
        out.sync_all()
            .map_err(StoreError::io("cannot sync", &tmp))?;
        fs::rename(&tmp, &target).map_err(StoreError::io("cannot rename into place", &target))?;
        Ok(PartInfo {
            file: file.to_string(),
            rows: batch.num_rows() as u64,
        })
    }

    /// Writes the manifest (atomically), marking the output complete.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let target = self.root.join(MANIFEST_FILE);
        let tmp = self.root.join(format!(".{MANIFEST_FILE}.tmp"));
        let text =
            serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Manifest(e.to_string()))?;
        fs::write(&tmp, text).map_err(StoreError::io("cannot write", &tmp))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(StoreError::io("cannot sync", &tmp))?;
        fs::rename(&tmp, &target).map_err(StoreError::io("cannot rename into place", &target))
    }
}

/// Seconds since the Unix epoch, for the manifest.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Manifest {
    /// Builds the manifest naming `parts`, as of now.
    pub fn new(meta: DatasetMeta, parts: Vec<PartInfo>, error_parts: Vec<PartInfo>) -> Self {
        Manifest {
            format_version: Manifest::FORMAT_VERSION,
            meta,
            rows: parts.iter().map(|p| p.rows).sum(),
            errors: error_parts.iter().map(|p| p.rows).sum(),
            parts,
            error_parts,
            written_at_unix: unix_now(),
        }
    }
}

fn read_manifest(root: &Path) -> Result<Option<Manifest>, StoreError> {
    let path = root.join(MANIFEST_FILE);
    let text = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("cannot read", &path)(e)),
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        StoreError::Manifest(format!("{} is not a valid manifest: {e}", path.display()))
    })
}

fn open_part(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, StoreError> {
    let file = File::open(path).map_err(StoreError::io("cannot open", path))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(StoreError::parquet(path))
}

/// Reads a part's metadata and its `path` column only.
fn read_paths(path: &Path) -> Result<(Option<DatasetMeta>, Vec<String>), StoreError> {
    let builder = open_part(path)?;
    let meta = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| meta_from_kv(kv));
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["path"]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(StoreError::parquet(path))?;
    let mut paths = Vec::new();
    for batch in reader {
        let batch = batch.map_err(StoreError::parquet(path))?;
        let column = batch
            .column_by_name("path")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| StoreError::Schema {
                path: path.to_path_buf(),
                reason: "no utf8 `path` column".into(),
            })?;
        paths.extend((0..column.len()).map(|i| column.value(i).to_string()));
    }
    Ok((meta, paths))
}

/// A complete output, as named by its manifest.
#[derive(Debug, Clone)]
pub struct Dataset {
    root: PathBuf,
    manifest: Manifest,
}

impl Dataset {
    /// Opens the output at `root`; fails when it has no manifest (never completed).
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        if !root.is_dir() {
            return Err(StoreError::Manifest(format!(
                "{} is not a folder",
                root.display()
            )));
        }
        let manifest = read_manifest(root)?.ok_or_else(|| {
            StoreError::Manifest(format!(
                "{} has no {MANIFEST_FILE}: it is not a fruits output, or its run has not completed \
                 (run the same command again to finish it)",
                root.display()
            ))
        })?;
        Ok(Dataset {
            root: root.to_path_buf(),
            manifest,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads the rows of `kind`, part by part in manifest order, `batch_rows` at a time.
    /// Parts on disk that the manifest does not name are ignored.
    pub fn batches(
        &self,
        kind: PartKind,
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<RecordBatch, StoreError>> + '_ {
        let parts = match kind {
            PartKind::Features => &self.manifest.parts,
            PartKind::Errors => &self.manifest.error_parts,
        };
        parts
            .iter()
            .flat_map(move |part| self.part_batches(part, batch_rows))
    }

    /// Like [`batches`](Self::batches) for the features table, reading only `columns`
    /// (Parquet skips the others entirely: less I/O and decompression).
    pub fn feature_columns<'a>(
        &'a self,
        columns: &'a [&'a str],
        batch_rows: usize,
    ) -> impl Iterator<Item = Result<RecordBatch, StoreError>> + 'a {
        self.manifest
            .parts
            .iter()
            .flat_map(move |part| self.read_part(part, Some(columns), batch_rows))
    }

    /// Reads the rows of one part, `batch_rows` at a time.
    pub fn part_batches(
        &self,
        part: &PartInfo,
        batch_rows: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch, StoreError>>> {
        self.read_part(part, None, batch_rows)
    }

    fn read_part(
        &self,
        part: &PartInfo,
        columns: Option<&[&str]>,
        batch_rows: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch, StoreError>>> {
        let path = self.root.join(&part.file);
        let reader: Result<ParquetRecordBatchReader, StoreError> = open_part(&path).and_then(|b| {
            let b = match columns {
                Some(cols) => {
                    let mask = ProjectionMask::columns(b.parquet_schema(), cols.iter().copied());
                    b.with_projection(mask)
                }
                None => b,
            };
            b.with_batch_size(batch_rows.max(1))
                .build()
                .map_err(StoreError::parquet(&path))
        });
        match reader {
            Ok(reader) => Box::new(reader.map(move |b| b.map_err(StoreError::parquet(&path)))),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }
}
