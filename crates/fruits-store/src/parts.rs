//! Writing part files atomically, finding them again, and reading a complete output.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use arrow_array::{Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{
    DatasetMeta, Location, MANIFEST_FILE, Manifest, PartInfo, StoreError, columns, meta_from_kv,
    meta_to_kv,
};

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

/// An output folder (or S3 prefix) being written.
#[derive(Debug, Clone)]
pub struct OutputDir {
    root: Location,
    /// Held while this run writes the output alone (see [`OutputDir::create_exclusive`]).
    lock: Option<std::sync::Arc<crate::OutputLock>>,
}

impl OutputDir {
    /// Opens the output and checks that it can be written (creating a local folder
    /// if needed), so a run without permission fails before doing any work.
    /// Several writers may hold it: a Spark job's tasks each write their own
    /// parts while the driver coordinates.
    pub fn create(root: &Location) -> Result<Self, StoreError> {
        root.check_writable()?;
        Ok(OutputDir {
            root: root.clone(),
            lock: None,
        })
    }

    /// Opens the output for this process alone: checks it can be written,
    /// takes its lock (refusing, with the holder's name, when another run
    /// writes it), then deletes the temporary files a killed run left.
    pub fn create_exclusive(root: &Location) -> Result<Self, StoreError> {
        root.check_writable()?;
        let lock = crate::OutputLock::acquire(root)?;
        let swept = root.sweep_temporary_files()?;
        if swept > 0 {
            tracing::info!(swept, output = %root, "removed temporary files of an interrupted run");
        }
        Ok(OutputDir {
            root: root.clone(),
            lock: Some(std::sync::Arc::new(lock)),
        })
    }

    /// True when this process holds the output's lock.
    pub fn is_exclusive(&self) -> bool {
        self.lock.is_some()
    }

    /// Where the output lives.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// Finds the committed parts and the manifest, reading each part's `path` column.
    pub fn scan(&self) -> Result<Scan, StoreError> {
        let mut found = Vec::new();
        for name in self.root.list_names()? {
            if let Some((kind, run, seq)) = PartKind::parse(&name) {
                found.push((run, seq, kind, name));
            }
        }
        found.sort();
        let mut parts = Vec::with_capacity(found.len());
        for (run, seq, kind, file) in found {
            let (meta, paths) = read_paths(&self.root, &file)?;
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

    /// Writes `batch` as part `file`, atomically.
    pub fn write_part(
        &self,
        file: &str,
        batch: &RecordBatch,
        meta: &DatasetMeta,
    ) -> Result<PartInfo, StoreError> {
        self.write_batch(file, batch, Some(meta_to_kv(meta)))
    }

    /// Writes `batch` as Parquet file `file` with key-value metadata `kv`, atomically.
    pub(crate) fn write_batch(
        &self,
        file: &str,
        batch: &RecordBatch,
        kv: Option<Vec<parquet::file::metadata::KeyValue>>,
    ) -> Result<PartInfo, StoreError> {
        let shown = self.root.describe(file);
        let props = WriterProperties::builder()
            // zstd level 1: strings shrink a lot, floats a little, at little CPU cost.
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
            .set_key_value_metadata(kv)
            .build();
        let pq_err = StoreError::parquet::<parquet::errors::ParquetError>(shown);
        let mut writer =
            ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(&pq_err)?;
        writer.write(batch).map_err(&pq_err)?;
        let bytes = writer.into_inner().map_err(&pq_err)?;
        self.root.put(file, Bytes::from(bytes))?;
        Ok(PartInfo {
            file: file.to_string(),
            rows: batch.num_rows() as u64,
        })
    }

    /// Writes the manifest (atomically), marking the output complete.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let text =
            serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Manifest(e.to_string()))?;
        Ok(self.root.put(MANIFEST_FILE, Bytes::from(text))?)
    }

    /// Writes any other file of the output (a model, a plot), atomically.
    pub fn write_file(&self, file: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        Ok(self.root.put(file, Bytes::from(bytes))?)
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

fn read_manifest(root: &Location) -> Result<Option<Manifest>, StoreError> {
    let Some(text) = root.get_opt(MANIFEST_FILE)? else {
        return Ok(None);
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        StoreError::Manifest(format!(
            "{} is not a valid manifest: {e}",
            root.describe(MANIFEST_FILE)
        ))
    })
}

pub(crate) fn open_part(
    root: &Location,
    file: &str,
) -> Result<ParquetRecordBatchReaderBuilder<Bytes>, StoreError> {
    // Parts are a few MB: one GET (one S3 request) each, decoded from memory.
    let bytes = root.get(file)?;
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(StoreError::parquet(root.describe(file)))
}

/// A batch's `path` column; `shown` names the part in the error.
pub(crate) fn path_column<'a>(
    batch: &'a RecordBatch,
    shown: &str,
) -> Result<&'a StringArray, StoreError> {
    batch
        .column_by_name(columns::PATH)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| StoreError::Schema {
            path: shown.to_string(),
            reason: "no utf8 `path` column".into(),
        })
}

/// Reads a part's metadata and its `path` column only.
fn read_paths(
    root: &Location,
    file: &str,
) -> Result<(Option<DatasetMeta>, Vec<String>), StoreError> {
    let shown = root.describe(file);
    let builder = open_part(root, file)?;
    let meta = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| meta_from_kv(kv));
    let mask = ProjectionMask::columns(builder.parquet_schema(), [columns::PATH]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(StoreError::parquet(shown.as_str()))?;
    let mut paths = Vec::new();
    for batch in reader {
        let batch = batch.map_err(StoreError::parquet(shown.as_str()))?;
        let column = path_column(&batch, &shown)?;
        paths.extend((0..column.len()).map(|i| column.value(i).to_string()));
    }
    Ok((meta, paths))
}

/// A complete output, as named by its manifest.
#[derive(Debug, Clone)]
pub struct Dataset {
    root: Location,
    manifest: Manifest,
}

impl Dataset {
    /// Opens the output at `root`; fails when it has no manifest (never completed).
    pub fn open(root: &Location) -> Result<Self, StoreError> {
        if let Some(dir) = root.as_local()
            && !dir.is_dir()
        {
            return Err(StoreError::Manifest(format!(
                "{} is not a folder",
                dir.display()
            )));
        }
        let manifest = read_manifest(root)?.ok_or_else(|| {
            StoreError::Manifest(format!(
                "{root} has no {MANIFEST_FILE}: it is not a fruits output, or its run has not completed \
                 (run the same command again to finish it)"
            ))
        })?;
        Ok(Dataset {
            root: root.clone(),
            manifest,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Where the output lives.
    pub fn root(&self) -> &Location {
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
        let path = self.root.describe(&part.file);
        let reader: Result<ParquetRecordBatchReader, StoreError> =
            open_part(&self.root, &part.file).and_then(|b| {
                let b = match columns {
                    Some(cols) => {
                        let mask =
                            ProjectionMask::columns(b.parquet_schema(), cols.iter().copied());
                        b.with_projection(mask)
                    }
                    None => b,
                };
                b.with_batch_size(batch_rows.max(1))
                    .build()
                    .map_err(StoreError::parquet(&path))
            });
        let meta = self.manifest.meta.clone();
        match reader {
            Ok(reader) => Box::new(reader.map(move |b| {
                let mut batch = b.map_err(StoreError::parquet(&path))?;
                if let Some(steps) = &meta.pca_steps {
                    batch = crate::schema::decode_pca(batch, steps, &path)?;
                }
                check_vector_lengths(&batch, &meta, &path)?;
                Ok(batch)
            })),
            Err(e) => Box::new(std::iter::once(Err(e))),
        }
    }
}

/// Refuses a batch whose vectors are not as long as the output's metadata
/// says (a part rewritten by another tool): every reader (training, PCA,
/// evaluation, export) then fails here, naming the part (`path`), instead of
/// building a model that answers nothing but errors. Also for rows handed
/// over in memory with an output's metadata (the Python API's tables).
pub fn check_vector_lengths(
    batch: &RecordBatch,
    meta: &DatasetMeta,
    path: &str,
) -> Result<(), StoreError> {
    let expected = [
        (meta.vector_column(), meta.spec.feature_dim),
        (columns::COLOUR, meta.spec.colour_bins),
        (columns::VIEWS, meta.extra_views() * meta.spec.feature_dim),
    ];
    for (name, want) in expected {
        let Some(column) = batch.column_by_name(name).filter(|_| want > 0) else {
            continue;
        };
        let got = match column.data_type() {
            arrow_schema::DataType::FixedSizeList(_, n) => *n as usize,
            other => {
                return Err(StoreError::Schema {
                    path: path.to_string(),
                    reason: format!("column `{name}` is {other}, not a fixed-size list"),
                });
            }
        };
        if got != want {
            return Err(StoreError::Schema {
                path: path.to_string(),
                reason: format!(
                    "column `{name}` holds vectors of {got} values but the output's metadata \
                     says {want}: the part was rewritten or damaged"
                ),
            });
        }
    }
    Ok(())
}
