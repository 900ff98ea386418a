//! Featurises a folder of photos on one machine, resumably.
//!
//! Three stages joined by bounded channels, so memory stays flat however many
//! images there are:
//!
//! ```text
//! fetch (bounded concurrent GETs from the input location, in input order)
//!   --[2 batches]--> decode (rayon pool: hash, decode, resize, normalise into a batch buffer)
//!   --[2 batches]--> inference (one thread per ONNX Runtime session, each on whole batches)
//!   --[4 batches]--> writer (batches back in input order, a Parquet part every `part_rows`)
//! ```
//!
//! Decoding batch k+1 overlaps inference of batch k; with several sessions,
//! batches k and k+1 run side by side and may finish out of order, so the
//! writer holds a batch back until those before it arrived: a clean run writes
//! rows sorted by path. Before starting, the output folder
//! is scanned: inputs found in committed parts (features or errors) are skipped,
//! which is how an interrupted run resumes and how a grown collection is
//! featurised incrementally. The manifest is written only when every input is
//! accounted for.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arrow_array::RecordBatch;
use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, bounded};
use fruits_image::{COLOUR_BINS, DecodeLimits, Prepare, Preprocessing, View};
use fruits_ingest::{ImageEntry, ImageListing};
use fruits_model::FeatureModel;
use fruits_store::{
    DatasetMeta, ErrorKind, ErrorRows, FeatureRows, FeatureSpec, Location, Manifest, OutputDir,
    PartInfo, PartKind, StorageError, StoreError,
};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::PipelineError;
use crate::augment::{Augmentation, CopySources};

/// Default images per inference call: small batches keep MobileNetV2's
/// activations in cache. Measured (docs/performance.md, release build, 2,000
/// photos): with one single-threaded session per core, batch 2 against 4 gave
/// fp32 +3% to +9% in three runs and int8 the same (-1% to +2%), peak memory
/// 197 instead of 246 MiB (fp32); batch 1 was slower (fp32 -3%, int8 -20%).
/// Before sessions (one session of every core), 4 beat 16 by 7% to 9% and 2
/// was slower.
pub const DEFAULT_BATCH_SIZE: usize = 2;
/// Default rows per Parquet part: the unit of work kept when a run is interrupted.
pub const DEFAULT_PART_ROWS: usize = 2048;

/// Most images per inference call: batch 1,024 already needs several GB of
/// tensors and activations. Every shell (CLI, Python, Spark) is held to the
/// bounds here by [`FeaturizeConfig::check`].
pub const MAX_BATCH_SIZE: usize = 1024;
/// Most rows per Parquet part (a part is built in memory before it is written).
pub const MAX_PART_ROWS: usize = 10_000_000;
/// Most decode threads.
pub const MAX_DECODE_THREADS: usize = fruits_model::MAX_THREADS;
/// Most views of one photo.
pub const MAX_VIEWS: usize = 16;
/// Default largest input file, in MiB: far above any photo (a 100-megapixel
/// JPEG is about 30 MiB), far below what would strain memory.
pub const DEFAULT_MAX_FILE_MIB: u64 = 64;

/// Default decode threads on a machine of `cores` cores: one per two cores,
/// at least one; inference takes the others (measured in docs/performance.md).
pub fn default_decode_threads(cores: usize) -> usize {
    (cores / 2).max(1)
}

/// How to run.
#[derive(Debug, Clone)]
pub struct FeaturizeConfig {
    /// Images per inference call.
    pub batch_size: usize,
    /// Threads decoding and resizing images.
    pub decode_threads: usize,
    /// Rows per Parquet part: the unit of work kept when a run is interrupted.
    pub part_rows: usize,
    /// How images are prepared.
    pub preprocessing: Preprocessing,
    /// Guards applied before decoding.
    pub limits: DecodeLimits,
    /// Files larger than this are refused from the listing, before any byte
    /// is read (a 2 GiB file would otherwise be read whole).
    pub max_file_bytes: u64,
    /// Try again the inputs that failed in earlier runs (their old errors
    /// rows are replaced by this run's outcome).
    pub retry_errors: bool,
    /// Augmented copies of the training photos to featurise beside them.
    pub augment: Option<Augmentation>,
    /// Views of each photo to featurise (`--views`): the first is stored as
    /// `features`, the others in the `views` column. Empty: the whole photo only.
    pub views: Vec<View>,
}

impl Default for FeaturizeConfig {
    fn default() -> Self {
        FeaturizeConfig {
            batch_size: DEFAULT_BATCH_SIZE,
            decode_threads: 1,
            part_rows: DEFAULT_PART_ROWS,
            preprocessing: Preprocessing::default(),
            limits: DecodeLimits::default(),
            max_file_bytes: DEFAULT_MAX_FILE_MIB << 20,
            retry_errors: false,
            augment: None,
            views: Vec::new(),
        }
    }
}

/// Receives progress as batches complete (the CLI draws a bar with it).
pub trait Progress: Sync {
    /// Called once before work starts: `total` inputs, of which `done` were done by earlier runs.
    fn start(&self, total: u64, done: u64);
    /// Called after each batch with the number of inputs it accounted for.
    fn advance(&self, n: u64);
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Images found in the input.
    pub inputs: u64,
    /// Images skipped because an earlier run had already done them.
    pub skipped: u64,
    /// Images featurised by this run.
    pub featurised: u64,
    /// Images that failed in this run (recorded in the errors table).
    pub failed: u64,
    /// Rows in the output's features table after this run.
    pub total_rows: u64,
    /// Rows in the output's errors table after this run.
    pub total_errors: u64,
    /// Seconds spent listing the input before featurising (0 when the caller
    /// listed it: [`featurize_entries`]).
    pub listing_secs: f64,
    /// Wall time of this run after the listing, in seconds.
    pub elapsed_secs: f64,
    /// (featurised + failed) / elapsed.
    pub images_per_sec: f64,
    /// False when the run stopped early (interrupted): no manifest was written.
    pub complete: bool,
    /// The output location.
    pub output: String,
    /// Run number of this run's part files.
    pub run: u32,
}

/// Why one input failed.
#[derive(Debug, Clone)]
struct ItemError {
    kind: ErrorKind,
    message: String,
}

/// What the decode stage learned about one input.
struct Decoded {
    sha256: [u8; 32],
    width: u32,
    height: u32,
    /// The colour descriptor, [`COLOUR_BINS`] values.
    colour: Vec<f32>,
}

/// A batch leaving the decode stage: `tensors` holds one slot per entry, filled for the successes.
struct DecodedBatch {
    /// Position in input order, so the writer can put batches back in order.
    seq: usize,
    entries: Vec<ImageEntry>,
    results: Vec<Result<Decoded, ItemError>>,
    tensors: Vec<f32>,
}

/// A batch leaving the inference stage.
struct InferredBatch {
    /// Position in input order.
    seq: usize,
    entries: Vec<ImageEntry>,
    results: Vec<Result<Decoded, ItemError>>,
    /// Features of the successes, in order.
    features: Vec<f32>,
}

/// A batch leaving the fetch stage: each input's bytes, or why it could not be read.
struct FetchedBatch {
    entries: Vec<ImageEntry>,
    bytes: Vec<Result<Bytes, ItemError>>,
}

/// Hashes and preprocesses one input's bytes into `slot`, one tensor per view.
fn load_one(
    bytes: &Result<Bytes, ItemError>,
    pre: &Preprocessing,
    limits: &DecodeLimits,
    views: &[View],
    slot: &mut [f32],
) -> Result<Decoded, ItemError> {
    let bytes = bytes.as_ref().map_err(Clone::clone)?;
    let sha256: [u8; 32] = Sha256::digest(bytes).into();
    // A decoder bug on a hostile file must cost one image, not the run.
    let mut colour = vec![0f32; COLOUR_BINS];
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        pre.preprocess_views(bytes, limits, views, slot, Some(&mut colour))
    }));
    match outcome {
        Ok(Ok(info)) => Ok(Decoded {
            sha256,
            width: info.width,
            height: info.height,
            colour,
        }),
        Ok(Err(e)) => Err(ItemError {
            kind: crate::kinds::image_error_kind(&e),
            message: e.to_string(),
        }),
        Err(_) => Err(ItemError {
            kind: ErrorKind::Panic,
            message: "the image decoder crashed on this file".into(),
        }),
    }
}

/// The augmented copy `k` of `source` from its bytes; a decoder crash costs
/// the copy, not the run, as in [`load_one`].
fn make_copy(
    bytes: &Result<Bytes, ItemError>,
    augmentation: &Augmentation,
    source: &str,
    k: u32,
    limits: &DecodeLimits,
) -> Result<Bytes, ItemError> {
    let bytes = bytes.as_ref().map_err(Clone::clone)?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        augmentation.copy(bytes, source, k, limits)
    }));
    match outcome {
        Ok(Ok(copy)) => Ok(copy),
        Ok(Err((kind, message))) => Err(ItemError { kind, message }),
        Err(_) => Err(ItemError {
            kind: ErrorKind::Panic,
            message: format!("the image decoder crashed making a copy of {source}"),
        }),
    }
}

/// What features `model` makes from photos prepared by `pre`: the contract
/// every part, manifest and classifier bundle records.
pub fn feature_spec(model: &FeatureModel, pre: &Preprocessing) -> FeatureSpec {
    let info = model.info();
    FeatureSpec {
        model_sha256: info.sha256.clone(),
        model_source: info.source.clone(),
        feature_output: info.feature_output.clone(),
        feature_dim: info.feature_dim,
        input_size: info.input_size,
        preprocessing: pre.clone(),
        colour_bins: COLOUR_BINS,
    }
}

/// Refuses to mix into `dir` results of another model, output or
/// preprocessing, or augmented copies made otherwise.
fn check_compatible(
    dir: &Location,
    existing: &DatasetMeta,
    current: &DatasetMeta,
) -> Result<(), PipelineError> {
    if !existing.spec.same_features(&current.spec) {
        return Err(StoreError::ModelMismatch {
            dir: dir.to_string(),
            existing: Box::new(existing.spec.clone()),
            current: Box::new(current.spec.clone()),
        }
        .into());
    }
    if existing.views != current.views {
        return Err(PipelineError::Config(format!(
            "{dir} was featurised with {} views a photo, this run asks for {}: use the same \
             --views, or another output",
            existing.views.len().max(1),
            current.views.len().max(1)
        )));
    }
    if existing.augmentation != current.augmentation {
        let describe = |a: &Option<fruits_store::AugmentRecord>| {
            a.as_ref()
                .map_or("no augmented copies".to_string(), ToString::to_string)
        };
        return Err(PipelineError::AugmentationChanged {
            dir: dir.to_string(),
            existing: describe(&existing.augmentation),
            current: describe(&current.augmentation),
        });
    }
    Ok(())
}

/// The metadata of rows `model` makes with `config`: the feature contract
/// and, when copies are made, how.
fn run_meta(model: &FeatureModel, config: &FeaturizeConfig) -> DatasetMeta {
    let mut meta = DatasetMeta::new(feature_spec(model, &config.preprocessing));
    meta.augmentation = config.augment.as_ref().map(Augmentation::record);
    meta.views = config.views.clone();
    meta
}

/// What [`write_gathered`] wrote.
struct Gathered {
    part: Option<PartInfo>,
    errors: Option<PartInfo>,
}

/// Writes the gathered errors, then the gathered rows, as the parts `seq` of run
/// `run` (`errors-r{run}-{seq}`, `part-r{run}-{seq}`), emptying both; a part is
/// written only when it has rows. Errors first: if we die between the two files,
/// the images of the lost features part are simply redone and no input is
/// counted twice.
fn write_gathered(
    dir: &OutputDir,
    meta: &DatasetMeta,
    run: u32,
    seq: u32,
    rows: &mut FeatureRows,
    errors: &mut ErrorRows,
) -> Result<Gathered, PipelineError> {
    let errors = if errors.is_empty() {
        None
    } else {
        Some(dir.write_part(
            &PartKind::Errors.file_name(run, seq),
            &errors.finish()?,
            meta,
        )?)
    };
    let part = if rows.is_empty() {
        None
    } else {
        Some(dir.write_part(
            &PartKind::Features.file_name(run, seq),
            &rows.finish()?,
            meta,
        )?)
    };
    Ok(Gathered { part, errors })
}

/// What the stages did.
struct StageOutcome {
    featurised: u64,
    failed: u64,
    stopped_early: bool,
}

/// Where the photos' bytes come from.
#[derive(Debug, Clone, Copy)]
pub enum Photos<'a> {
    /// Read from a folder or `s3://` prefix, each entry's path relative to it.
    At(&'a Location),
    /// Already in memory, one per entry, in the same order (Spark's
    /// `binaryFile` content column, an upload).
    Given(&'a [Bytes]),
}

/// What one run of the stages works on.
#[derive(Clone, Copy)]
struct Work<'a> {
    /// Where the bytes come from.
    photos: Photos<'a>,
    /// The entries to featurise, in order.
    pending: &'a [ImageEntry],
    /// Which of them are augmented copies, and of what.
    sources: &'a CopySources,
}

/// Runs fetch -> decode -> inference -> gather over `pending`, in input order,
/// calling `flush` with the gathered rows and errors every `part_rows` inputs
/// and at the end (it must empty them). Used by [`featurize_entries`] (parts of
/// an output) and [`featurize_partition`] (one part per Spark partition).
///
/// Each stage is a function of its own ([`fetch_stage`], [`decode_stage`],
/// [`infer_stage`], [`gather_stage`]); this one holds the plumbing: the
/// bounded channels between them (so memory stays flat), their threads, and
/// how a failure or a stop in one reaches the others.
fn run_stages<F>(
    work: Work<'_>,
    model: &FeatureModel,
    config: &FeaturizeConfig,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    after_batches: Option<usize>,
    flush: F,
) -> Result<StageOutcome, PipelineError>
where
    F: FnMut(&mut FeatureRows, &mut ErrorRows) -> Result<(), PipelineError> + Send,
{
    let views = config.views();
    let shape = Shape {
        dim: model.info().feature_dim,
        views: &views,
        // Each input's slot holds one tensor per view.
        tensor_len: config.preprocessing.tensor_len() * views.len(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.decode_threads)
        .thread_name(|i| format!("fruits-decode-{i}"))
        .build()
        .map_err(|e| PipelineError::Internal(e.to_string()))?;
    let (fetched_tx, fetched_rx) = bounded::<FetchedBatch>(2);
    let (decoded_tx, decoded_rx) = bounded::<DecodedBatch>(2);
    let (inferred_tx, inferred_rx) = bounded::<InferredBatch>(4);
    // Tensor buffers the sessions are done with, back to the decoder: a new
    // one would be zeroed first (1.2 MB a batch of 2, measured at 1.3% of
    // the run's CPU), and every value is written by decoding anyway.
    let (spare_tx, spare_rx) = bounded::<Vec<f32>>(2);
    let fetch_failure: Mutex<Option<StorageError>> = Mutex::new(None);
    let stopped_early = AtomicBool::new(false);
    let stop = Stop {
        cancel,
        stopped_early: &stopped_early,
        after_batches,
    };

    let outcome = std::thread::scope(|s| -> Result<(u64, u64), PipelineError> {
        let fetcher = s.spawn(|| fetch_stage(work, config, stop, &fetch_failure, fetched_tx));
        let decoder = s.spawn(|| {
            let queues = DecodeQueues {
                fetched: fetched_rx,
                decoded: decoded_tx,
                spare: spare_rx,
            };
            decode_stage(work, config, &shape, &pool, stop, queues)
        });
        let writer = s.spawn(|| gather_stage(config, &shape, inferred_rx, flush));
        // Inference: one thread per session, each on whole batches.
        let infer = || {
            infer_stage(
                model,
                &shape,
                progress,
                stop,
                &decoded_rx,
                &inferred_tx,
                &spare_tx,
            )
        };
        let inference_result = std::thread::scope(|inner| {
            let workers: Vec<_> = (1..model.sessions()).map(|_| inner.spawn(infer)).collect();
            let mut result = infer();
            for worker in workers {
                let joined = worker
                    .join()
                    .map_err(|_| PipelineError::Internal("inference thread panicked".into()))
                    .and_then(|r| r);
                result = result.and(joined);
            }
            result
        });
        // Closing our ends lets the stages before and after finish.
        drop(decoded_rx);
        drop(inferred_tx);
        drop(spare_tx);
        decoder
            .join()
            .map_err(|_| PipelineError::Internal("decode thread panicked".into()))?;
        fetcher
            .join()
            .map_err(|_| PipelineError::Internal("fetch thread panicked".into()))?;
        let written = writer
            .join()
            .map_err(|_| PipelineError::Internal("writer thread panicked".into()))??;
        inference_result?;
        Ok(written)
    });
    let (featurised, failed) = outcome?;
    if let Some(e) = fetch_failure.into_inner().ok().flatten() {
        // The parts written before the failure stay: the next run resumes after them.
        return Err(PipelineError::Storage(e));
    }
    Ok(StageOutcome {
        featurised,
        failed,
        stopped_early: stopped_early.load(Ordering::Relaxed),
    })
}

/// What every stage knows of the vectors: their length per view, the views,
/// and the length of one input's tensors.
struct Shape<'a> {
    dim: usize,
    views: &'a [View],
    tensor_len: usize,
}

/// The two ways a run stops before its end: the caller's cancel flag
/// (Ctrl-C), and a stage's own stop (a failed session, the test hook).
#[derive(Clone, Copy)]
struct Stop<'a> {
    cancel: &'a AtomicBool,
    stopped_early: &'a AtomicBool,
    /// Stop as if interrupted once this many batches went in (tests of
    /// resuming; always `None` without the `test-hooks` feature).
    after_batches: Option<usize>,
}

/// Stage 0: reads the inputs' bytes, with bounded concurrency, in input
/// order, into batches of `batch_size`. A failure that is not the item's own
/// (the service down, access denied) goes to `failure` and ends the stage, so
/// that it never lands in the errors table.
fn fetch_stage(
    work: Work<'_>,
    config: &FeaturizeConfig,
    stop: Stop<'_>,
    failure: &Mutex<Option<StorageError>>,
    fetched_tx: Sender<FetchedBatch>,
) {
    let Work {
        photos,
        pending,
        sources,
    } = work;
    // An augmented copy is made from its photo's bytes.
    let keys: Vec<String> = pending
        .iter()
        .map(|e| {
            sources
                .get(&e.path)
                .map_or(&e.path[..], |(source, _)| source)
        })
        .map(str::to_string)
        .collect();
    let mut entries = Vec::with_capacity(config.batch_size);
    let mut bytes = Vec::with_capacity(config.batch_size);
    let each = |i: usize, result: Result<Bytes, StorageError>| {
        if stop.cancel.load(Ordering::Relaxed) {
            return false;
        }
        let item = match result {
            Ok(b) => Ok(b),
            Err(e) if e.is_item_level() => Err(ItemError {
                kind: match e {
                    StorageError::NotAFile { .. } => ErrorKind::NotAFile,
                    _ => ErrorKind::Io,
                },
                message: format!("cannot read the file: {e}"),
            }),
            Err(e) => {
                if let Ok(mut slot) = failure.lock() {
                    *slot = Some(e);
                }
                return false;
            }
        };
        entries.push(pending[i].clone());
        bytes.push(item);
        if entries.len() == config.batch_size {
            let batch = FetchedBatch {
                entries: std::mem::take(&mut entries),
                bytes: std::mem::take(&mut bytes),
            };
            return fetched_tx.send(batch).is_ok();
        }
        true
    };
    match photos {
        Photos::At(location) => location.fetch_each(&keys, each),
        Photos::Given(all) => {
            let mut each = each;
            for (i, bytes) in all.iter().enumerate() {
                if !each(i, Ok(bytes.clone())) {
                    break;
                }
            }
        }
    }
    let failed = failure.lock().map(|f| f.is_some()).unwrap_or(true);
    if !entries.is_empty() && !failed && !stop.cancel.load(Ordering::Relaxed) {
        let _ = fetched_tx.send(FetchedBatch { entries, bytes });
    }
}

/// The decode stage's channels: batches in, decoded batches out, and the
/// tensor buffers the sessions are done with.
struct DecodeQueues {
    fetched: Receiver<FetchedBatch>,
    decoded: Sender<DecodedBatch>,
    spare: Receiver<Vec<f32>>,
}

/// Stage 1: decodes each batch on the decode pool (making augmented copies
/// from their photo's bytes), in input order, numbering the batches.
fn decode_stage(
    work: Work<'_>,
    config: &FeaturizeConfig,
    shape: &Shape<'_>,
    pool: &rayon::ThreadPool,
    stop: Stop<'_>,
    queues: DecodeQueues,
) {
    let (pre, limits) = (&config.preprocessing, &config.limits);
    for (seq, fetched) in queues.fetched.iter().enumerate() {
        if stop.cancel.load(Ordering::Relaxed) {
            break;
        }
        let n = fetched.entries.len();
        // Every slot of a decoded input is overwritten; a failed one's stale
        // values are never read (the sessions skip it).
        let mut tensors = queues.spare.try_recv().unwrap_or_default();
        tensors.resize(n * shape.tensor_len, 0.0);
        let results: Vec<Result<Decoded, ItemError>> = pool.install(|| {
            tensors
                .par_chunks_mut(shape.tensor_len)
                .zip(fetched.bytes.par_iter())
                .zip(fetched.entries.par_iter())
                .map(|((slot, bytes), entry)| {
                    match (work.sources.get(&entry.path), &config.augment) {
                        (Some((source, k)), Some(augmentation)) => {
                            let copy = make_copy(bytes, augmentation, source, k, limits);
                            load_one(&copy, pre, limits, shape.views, slot)
                        }
                        _ => load_one(bytes, pre, limits, shape.views, slot),
                    }
                })
                .collect()
        });
        let batch = DecodedBatch {
            seq,
            entries: fetched.entries,
            results,
            tensors,
        };
        if queues.decoded.send(batch).is_err() {
            break; // inference stopped
        }
    }
    // Dropping the receiver (with this function's arguments) unblocks the
    // fetcher when the run stops early.
}

/// Stage 2, on each session's thread: runs the model on whole batches (only
/// the inputs that decoded), sharing the decoded queue with the other sessions.
fn infer_stage(
    model: &FeatureModel,
    shape: &Shape<'_>,
    progress: &dyn Progress,
    stop: Stop<'_>,
    decoded_rx: &Receiver<DecodedBatch>,
    inferred_tx: &Sender<InferredBatch>,
    spare_tx: &Sender<Vec<f32>>,
) -> Result<(), PipelineError> {
    for batch in decoded_rx.iter() {
        // Decided by position, not by which session finishes first,
        // so a test's stop keeps exactly the first k batches.
        if stop.after_batches.is_some_and(|k| batch.seq >= k) {
            stop.stopped_early.store(true, Ordering::Relaxed);
        }
        if stop.stopped_early.load(Ordering::Relaxed) {
            break;
        }
        let good = batch.results.iter().filter(|r| r.is_ok()).count();
        let features = if good == 0 {
            Vec::new()
        } else {
            let input = if good == batch.results.len() {
                batch.tensors
            } else {
                // Compact: the model sees only the images that decoded.
                let mut packed = Vec::with_capacity(good * shape.tensor_len);
                for (slot, r) in batch
                    .tensors
                    .chunks_exact(shape.tensor_len)
                    .zip(&batch.results)
                {
                    if r.is_ok() {
                        packed.extend_from_slice(slot);
                    }
                }
                packed
            };
            let features = model.run(&input).map_err(|e| {
                // The other sessions stop too: the run has failed.
                stop.stopped_early.store(true, Ordering::Relaxed);
                PipelineError::Model(e)
            })?;
            // Full or closed: the buffer is simply freed.
            let _ = spare_tx.try_send(input);
            features
        };
        let n = batch.entries.len() as u64;
        let inferred = InferredBatch {
            seq: batch.seq,
            entries: batch.entries,
            results: batch.results,
            features,
        };
        if inferred_tx.send(inferred).is_err() {
            break; // the writer failed; its error is reported by run_stages
        }
        progress.advance(n);
        if stop.cancel.load(Ordering::Relaxed) {
            stop.stopped_early.store(true, Ordering::Relaxed);
            break;
        }
    }
    Ok(())
}

/// Stage 3: gathers the rows in input order (sessions finish batches out of
/// order: a batch waits for those before it) and hands them to `flush` every
/// `part_rows` inputs and at the end. Owning the receiver, a failed flush
/// drops it, and inference stops instead of waiting on a full queue.
fn gather_stage<F>(
    config: &FeaturizeConfig,
    shape: &Shape<'_>,
    inferred_rx: Receiver<InferredBatch>,
    mut flush: F,
) -> Result<(u64, u64), PipelineError>
where
    F: FnMut(&mut FeatureRows, &mut ErrorRows) -> Result<(), PipelineError>,
{
    let mut rows = FeatureRows::with_views(shape.dim, shape.views.len() - 1);
    let mut errors = ErrorRows::default();
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut waiting = std::collections::BTreeMap::new();
    let mut next = 0;
    for arrived in inferred_rx.iter() {
        waiting.insert(arrived.seq, arrived);
        while let Some(batch) = waiting.remove(&next) {
            next += 1;
            let (good, bad) = gather(batch, shape.dim * shape.views.len(), &mut rows, &mut errors)?;
            ok += good;
            failed += bad;
            if rows.len() + errors.len() >= config.part_rows {
                flush(&mut rows, &mut errors)?;
            }
        }
    }
    // Batches after a gap (a run stopped early) are left out: the next run
    // does them again.
    flush(&mut rows, &mut errors)?;
    Ok((ok, failed))
}

/// Adds one inferred batch to the rows and errors being gathered (`dim`
/// values per input: every view's vector); returns how many of its inputs
/// were featurised and how many failed.
fn gather(
    batch: InferredBatch,
    dim: usize,
    rows: &mut FeatureRows,
    errors: &mut ErrorRows,
) -> Result<(u64, u64), PipelineError> {
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut feats = batch.features.chunks_exact(dim.max(1));
    for (entry, result) in batch.entries.iter().zip(&batch.results) {
        match result {
            Ok(d) => {
                let f = feats.next().ok_or_else(|| {
                    PipelineError::Internal("fewer feature vectors than images".into())
                })?;
                rows.push(
                    &entry.path,
                    &entry.label,
                    entry.split.as_deref(),
                    &d.sha256,
                    d.width,
                    d.height,
                    f,
                    &d.colour,
                )?;
                ok += 1;
            }
            Err(e) => {
                errors.push(&entry.path, e.kind, &e.message);
                failed += 1;
            }
        }
    }
    Ok((ok, failed))
}

impl FeaturizeConfig {
    /// The views each photo is featurised in: [`FeaturizeConfig::views`], or
    /// the whole photo alone.
    pub fn views(&self) -> Vec<View> {
        if self.views.is_empty() {
            vec![View::WHOLE]
        } else {
            self.views.clone()
        }
    }

    /// Refuses settings out of the bounds every shell is held to (a Python
    /// caller's `batch_size=4_000_000_000` must be an error, not an abort).
    pub fn check(&self) -> Result<(), PipelineError> {
        let range = |name: &str, value: usize, hi: usize| {
            if value == 0 || value > hi {
                Err(PipelineError::Config(format!(
                    "{name} must be 1 to {hi}, got {value}"
                )))
            } else {
                Ok(())
            }
        };
        range("the batch size", self.batch_size, MAX_BATCH_SIZE)?;
        range("decode threads", self.decode_threads, MAX_DECODE_THREADS)?;
        range("rows per part", self.part_rows, MAX_PART_ROWS)?;
        if self.views.first().is_some_and(|v| *v != View::WHOLE) || self.views.len() > MAX_VIEWS {
            return Err(PipelineError::Config(format!(
                "views must start with the whole photo and number at most {MAX_VIEWS}"
            )));
        }
        if let Some(a) = &self.augment
            && a.copies > crate::augment::MAX_COPIES
        {
            return Err(PipelineError::Config(format!(
                "augmented copies must be 0 to {}, got {}",
                crate::augment::MAX_COPIES,
                a.copies
            )));
        }
        let limits = &self.limits;
        if limits.max_pixels == 0
            || limits.max_aspect_ratio.is_nan()
            || limits.max_aspect_ratio < 1.0
        {
            return Err(PipelineError::Config(format!(
                "the pixel limit must be positive and the aspect-ratio limit at least 1, got \
                 {} pixels and {}",
                limits.max_pixels, limits.max_aspect_ratio
            )));
        }
        Ok(())
    }
}

/// Refuses settings no run can use.
fn check_config(model: &FeatureModel, config: &FeaturizeConfig) -> Result<(), PipelineError> {
    config.check()?;
    let pre = &config.preprocessing;
    if pre.size != model.info().input_size {
        return Err(PipelineError::Config(format!(
            "preprocessing makes {}x{} images but the model takes {}x{}",
            pre.size,
            pre.size,
            model.info().input_size,
            model.info().input_size
        )));
    }
    Ok(())
}

/// A stop after a given number of batches, for tests of resuming a run that
/// was interrupted. Compiled in only with the `test-hooks` feature (the CLI's
/// integration tests turn it on through a dev-dependency); a release build
/// has no such switch and never reads the variable.
pub mod test_hooks {
    /// Environment variable: stop [`featurize`](super::featurize) as if
    /// interrupted once this many batches (by input position) went in.
    pub const STOP_AFTER_BATCHES_ENV: &str = "FRUITS_TEST_STOP_AFTER_BATCHES";

    /// The stop the environment asks for, in a build with the `test-hooks` feature.
    pub(crate) fn stop_after_batches() -> Option<usize> {
        #[cfg(feature = "test-hooks")]
        {
            std::env::var(STOP_AFTER_BATCHES_ENV)
                .ok()
                .and_then(|v| v.parse().ok())
        }
        #[cfg(not(feature = "test-hooks"))]
        None
    }
}

/// Featurises every image under `input` into the output `out`, skipping what
/// earlier runs did. Stops early, without writing the manifest, when `cancel`
/// becomes true; the parts written so far are kept for the next run.
pub fn featurize(
    input: &Location,
    out: &Location,
    model: &FeatureModel,
    config: &FeaturizeConfig,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Summary, PipelineError> {
    crate::augment::check_output_outside(input, out)?;
    // Write access (and the output's lock) is checked before listing: a run
    // that cannot write its results stops before any work, however large the input.
    let dir = OutputDir::create_exclusive(out)?;
    let listed = Instant::now();
    let listing = fruits_ingest::list_images(input)?;
    let listing_secs = listed.elapsed().as_secs_f64();
    if listing.entries.is_empty() && listing.problems.is_empty() {
        // Most often a typo in the prefix: an S3 listing of nothing is not an error.
        return Err(PipelineError::NoImages {
            input: input.to_string(),
        });
    }
    let summary = featurize_entries(input, listing, &dir, model, config, progress, cancel)?;
    Ok(Summary {
        listing_secs,
        ..summary
    })
}

/// Like [`featurize`], for an already made listing of `input` and an opened output.
pub fn featurize_entries(
    input: &Location,
    listing: ImageListing,
    dir: &OutputDir,
    model: &FeatureModel,
    config: &FeaturizeConfig,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    check_config(model, config)?;
    let meta = run_meta(model, config);
    let out = dir.root();
    // Every input once, whatever happened before (see OutputDir::scan_repaired).
    let scan = dir.scan_repaired()?;
    if let Some(existing) = scan.manifest.as_ref().map(|m| &m.meta) {
        check_compatible(out, existing, &meta)?;
    }
    for part in &scan.parts {
        if let Some(existing) = &part.meta {
            check_compatible(out, existing, &meta)?;
        }
    }
    // Inputs an earlier run accounted for are skipped; with retry_errors, only
    // those it featurised.
    let done: HashSet<&str> = scan
        .parts
        .iter()
        .filter(|p| !config.retry_errors || p.kind == PartKind::Features)
        .flat_map(|p| p.paths.iter().map(String::as_str))
        .collect();
    let mut listing = listing;
    let sources = augment_listing(config, &mut listing);
    let total = (listing.entries.len() + listing.problems.len()) as u64;
    let (pending, mut refused) = screen(listing, config, |path| !done.contains(path));
    let refused_count = refused.len() as u64;
    let skipped = total - pending.len() as u64 - refused_count;
    progress.start(total, skipped);
    tracing::info!(
        total,
        skipped,
        refused = refused_count,
        pending = pending.len(),
        run = scan.next_run,
        "featurize starts"
    );

    let run = scan.next_run;
    let mut seq = 0u32;
    if !refused.is_empty() {
        write_gathered(dir, &meta, run, seq, &mut FeatureRows::new(0), &mut refused)?;
        seq += 1;
        progress.advance(refused_count);
    }
    let flush = |rows: &mut FeatureRows, errors: &mut ErrorRows| -> Result<(), PipelineError> {
        write_gathered(dir, &meta, run, seq, rows, errors)?;
        seq += 1;
        Ok(())
    };
    let work = Work {
        photos: Photos::At(input),
        pending: &pending,
        sources: &sources,
    };
    let outcome = run_stages(
        work,
        model,
        config,
        progress,
        cancel,
        test_hooks::stop_after_batches(),
        flush,
    )?;
    let (featurised, failed) = (outcome.featurised, outcome.failed + refused_count);
    let complete = !outcome.stopped_early && !cancel.load(Ordering::Relaxed);

    // The manifest names what the folder holds once repaired: this run's
    // parts, earlier ones, and (after a retry) only each input's last outcome.
    let (rows, errors) = if complete {
        let scan = dir.scan_repaired()?;
        let infos = |kind: PartKind| -> Vec<PartInfo> {
            scan.parts
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| PartInfo {
                    file: p.file.clone(),
                    rows: p.paths.len() as u64,
                })
                .collect()
        };
        let manifest = Manifest::new(meta, infos(PartKind::Features), infos(PartKind::Errors));
        dir.write_manifest(&manifest)?;
        (manifest.rows, manifest.errors)
    } else {
        let count = |kind: PartKind| -> u64 {
            scan.parts
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.paths.len() as u64)
                .sum()
        };
        (
            count(PartKind::Features) + featurised,
            count(PartKind::Errors) + failed,
        )
    };
    let elapsed = started.elapsed().as_secs_f64();
    Ok(Summary {
        inputs: total,
        skipped,
        featurised,
        failed,
        total_rows: rows,
        total_errors: errors,
        listing_secs: 0.0,
        elapsed_secs: elapsed,
        images_per_sec: if elapsed > 0.0 {
            (featurised + failed) as f64 / elapsed
        } else {
            0.0
        },
        complete,
        output: out.to_string(),
        run,
    })
}

/// Adds the augmented copies `config` asks for to `listing`.
fn augment_listing(config: &FeaturizeConfig, listing: &mut ImageListing) -> CopySources {
    match &config.augment {
        Some(augmentation) => augmentation.expand(&mut listing.entries),
        None => CopySources::default(),
    }
}

/// Splits a listing into the entries to featurise (those `wanted` says are
/// still to do) and the error rows of those refused from the listing alone:
/// entries that are not files, names that cannot be keys, files over the size
/// limit (never read).
fn screen(
    listing: ImageListing,
    config: &FeaturizeConfig,
    wanted: impl Fn(&str) -> bool,
) -> (Vec<ImageEntry>, ErrorRows) {
    let ImageListing { entries, problems } = listing;
    let mut refused = ErrorRows::default();
    for p in problems.iter().filter(|p| wanted(&p.rel)) {
        refused.push(&p.rel, ErrorKind::from(p.kind), &p.message);
    }
    let mut pending = Vec::with_capacity(entries.len());
    for e in entries.into_iter().filter(|e| wanted(&e.path)) {
        match oversized(&e, config) {
            Some(why) => refused.push(&e.path, ErrorKind::FileTooLarge, &why),
            None => pending.push(e),
        }
    }
    (pending, refused)
}

/// Why `entry` is refused unread for its size, if it is.
fn oversized(entry: &ImageEntry, config: &FeaturizeConfig) -> Option<String> {
    (entry.size > config.max_file_bytes).then(|| {
        format!(
            "the file is {:.1} MiB, over the {:.1} MiB limit; it was not read",
            entry.size as f64 / 1048576.0,
            config.max_file_bytes as f64 / 1048576.0
        )
    })
}

/// Features and errors made in memory by [`featurize_in_memory`].
#[derive(Debug, Clone)]
pub struct Tables {
    /// Rows of the features table (the schema of a features part).
    pub features: Vec<RecordBatch>,
    /// Rows of the errors table: every input that did not featurise, with why.
    pub errors: Vec<RecordBatch>,
    /// What both tables' rows were made with (model, preprocessing).
    pub meta: DatasetMeta,
}

/// Featurises the photos of `listing` in memory and writes nothing: for
/// notebooks and Spark DataFrames. With [`Photos::Given`], `listing.entries`
/// name the given bytes one for one (their `size` is the bytes' length).
/// Every entry and listing problem ends up in exactly one of the two tables.
pub fn featurize_in_memory(
    photos: Photos<'_>,
    listing: ImageListing,
    model: &FeatureModel,
    config: &FeaturizeConfig,
) -> Result<Tables, PipelineError> {
    check_config(model, config)?;
    let meta = run_meta(model, config);
    let config = FeaturizeConfig {
        part_rows: usize::MAX,
        ..config.clone()
    };
    let mut tables = Tables {
        features: Vec::new(),
        errors: Vec::new(),
        meta,
    };
    let cancel = AtomicBool::new(false);
    match photos {
        Photos::At(_) => {
            let mut listing = listing;
            let sources = augment_listing(&config, &mut listing);
            let (pending, mut refused) = screen(listing, &config, |_| true);
            if !refused.is_empty() {
                tables.errors.push(refused.finish()?);
            }
            let work = Work {
                photos,
                pending: &pending,
                sources: &sources,
            };
            run_in_memory(work, model, &config, &cancel, &mut tables)?;
        }
        Photos::Given(all) => {
            if all.len() != listing.entries.len() {
                return Err(PipelineError::Internal(format!(
                    "{} photos for {} entries",
                    all.len(),
                    listing.entries.len()
                )));
            }
            // Screened pairwise, so entries and bytes stay one for one
            // (a DataFrame may name one path twice).
            let ImageListing { entries, problems } = listing;
            let only_problems = ImageListing {
                entries: Vec::new(),
                problems,
            };
            let (_, mut refused) = screen(only_problems, &config, |_| true);
            let (mut pending, mut bytes) = (Vec::new(), Vec::new());
            for (entry, photo) in entries.into_iter().zip(all) {
                match oversized(&entry, &config) {
                    Some(why) => refused.push(&entry.path, ErrorKind::FileTooLarge, &why),
                    None => {
                        pending.push(entry);
                        bytes.push(photo.clone());
                    }
                }
            }
            if !refused.is_empty() {
                tables.errors.push(refused.finish()?);
            }
            let work = Work {
                photos: Photos::Given(&bytes),
                pending: &pending,
                sources: &CopySources::default(),
            };
            run_in_memory(work, model, &config, &cancel, &mut tables)?;
        }
    }
    Ok(tables)
}

fn run_in_memory(
    work: Work<'_>,
    model: &FeatureModel,
    config: &FeaturizeConfig,
    cancel: &AtomicBool,
    tables: &mut Tables,
) -> Result<(), PipelineError> {
    let (features, errors) = (&mut tables.features, &mut tables.errors);
    let flush = |rows: &mut FeatureRows, errs: &mut ErrorRows| -> Result<(), PipelineError> {
        if !rows.is_empty() {
            features.push(rows.finish()?);
        }
        if !errs.is_empty() {
            errors.push(errs.finish()?);
        }
        Ok(())
    };
    run_stages(work, model, config, &NoProgress, cancel, None, flush)?;
    Ok(())
}

/// What [`featurize_partition`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionResult {
    /// The features part, when any image of the partition featurised.
    pub part: Option<PartInfo>,
    /// The errors part, when any image of the partition failed.
    pub errors: Option<PartInfo>,
    /// Images featurised.
    pub featurised: u64,
    /// Images that failed (in the errors part).
    pub failed: u64,
}

/// One partition of a distributed run (a Spark task): featurises `entries` of
/// `input` and writes them as at most one features part and one errors part
/// named after `index` (`part-r000-{index:05}`, `errors-r000-{index:05}`), the
/// same layout as the CLI's. A retried or speculative task writes the same names
/// with the same rows, and each put is atomic, so however often a partition
/// runs, the output holds each image once; the driver's manifest names the parts.
pub fn featurize_partition(
    input: &Location,
    entries: &[ImageEntry],
    dir: &OutputDir,
    index: u32,
    model: &FeatureModel,
    config: &FeaturizeConfig,
) -> Result<PartitionResult, PipelineError> {
    let meta = run_meta(model, config);
    // With `part_rows` unbounded, `run_stages` flushes once, at the end: the
    // partition becomes one features part and one errors part named after `index`.
    let config = FeaturizeConfig {
        part_rows: usize::MAX,
        ..config.clone()
    };
    let mut written = Gathered {
        part: None,
        errors: None,
    };
    let flush = |r: &mut FeatureRows, e: &mut ErrorRows| -> Result<(), PipelineError> {
        written = write_gathered(dir, &meta, 0, index, r, e)?;
        Ok(())
    };
    let cancel = AtomicBool::new(false);
    let work = Work {
        photos: Photos::At(input),
        pending: entries,
        sources: &CopySources::default(),
    };
    let outcome = run_stages(work, model, &config, &NoProgress, &cancel, None, flush)?;
    let Gathered { part, errors } = written;
    Ok(PartitionResult {
        part,
        errors,
        featurised: outcome.featurised,
        failed: outcome.failed,
    })
}
