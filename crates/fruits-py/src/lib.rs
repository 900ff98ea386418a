//! `fruits._native`: the fruits core for Python: what `fruits` (notebooks)
//! and `fruits.spark` (DataFrames, the PySpark job) wrap.
//!
//! Thin by design: each function is one call into the Rust crates, with the
//! GIL released while it works. Tables cross the boundary as pyarrow
//! `RecordBatch`es through the Arrow C data interface (no copies of the
//! columns); models cross as bytes, which Spark broadcasts.
//!
//! Locations are local paths or `s3://` URLs, read and written through
//! `fruits-location` (credentials chain, eu-west-3 guard), so executors need
//! no Hadoop S3A. `AWS_ENDPOINT_URL` points at an S3-compatible server and
//! `FRUITS_ALLOW_REGIONS` (comma-separated) allows regions besides eu-west-3.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_pyarrow::PyArrowType;
use arrow_schema::{DataType, Field, Schema};
use fruits_location::{Location, StorageOptions};
use fruits_pca::{PcaModel, PcaStats};
use fruits_pipeline::featurize::DEFAULT_BATCH_SIZE;
use fruits_pipeline::reduce;
use fruits_store::{
    Dataset, DatasetMeta, ErrorKind, ErrorRows, Manifest, OutputDir, PartInfo, PartKind, columns,
    errors_schema, features_schema,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod classifier;
mod error;
mod pca;
mod tables;

use tables::Featurizer;

use error::{Error, Result};

/// Malformed JSON or bytes handed over by the Python side.
pub(crate) fn json_err(e: serde_json::Error) -> Error {
    Error::input(e)
}

pub(crate) fn storage_options() -> StorageOptions {
    StorageOptions::from_env()
}

pub(crate) fn open(spec: &str) -> Result<Location> {
    Ok(Location::parse(spec, &storage_options())?)
}

/// How `fruits featurize` splits this machine's cores between ONNX Runtime
/// sessions and their threads, with the caller's choices applied:
/// `(sessions, intra_threads)`.
#[pyfunction]
#[pyo3(signature = (sessions=None, intra_threads=None))]
fn throughput_layout(sessions: Option<usize>, intra_threads: Option<usize>) -> (usize, usize) {
    let cores = fruits_model::available_cores();
    let layout = fruits_model::ThreadLayout::throughput(cores).with_overrides(
        sessions,
        intra_threads,
        cores,
    );
    (layout.sessions, layout.intra_threads)
}

/// Every image under `root` (folder or s3:// prefix), sorted by path, as a
/// RecordBatch of `path` (relative), `size`, `label`, `split` (null outside
/// Training/Test).
#[pyfunction]
fn list_images(py: Python<'_>, root: &str) -> Result<PyArrowType<RecordBatch>> {
    Ok(list_all(py, root)?.0)
}

/// Like [`list_images`], with the entries that could not be listed as files
/// (broken links, names that cannot be keys...) as a second batch, in the
/// errors table's schema: `(images, problems)`.
#[pyfunction]
fn list_images_and_problems(
    py: Python<'_>,
    root: &str,
) -> Result<(PyArrowType<RecordBatch>, PyArrowType<RecordBatch>)> {
    list_all(py, root)
}

fn list_all(
    py: Python<'_>,
    root: &str,
) -> Result<(PyArrowType<RecordBatch>, PyArrowType<RecordBatch>)> {
    let location = open(root)?;
    let listing = py.detach(|| fruits_ingest::list_images(&location))?;
    let mut path = StringBuilder::new();
    let mut size = UInt64Builder::new();
    let mut label = StringBuilder::new();
    let mut split = StringBuilder::new();
    for e in &listing.entries {
        path.append_value(&e.path);
        size.append_value(e.size);
        label.append_value(&e.label);
        split.append_option(e.split.as_deref());
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new(columns::PATH, DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new(columns::LABEL, DataType::Utf8, false),
        Field::new(columns::SPLIT, DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(path.finish()),
        Arc::new(size.finish()),
        Arc::new(label.finish()),
        Arc::new(split.finish()),
    ];
    let images = RecordBatch::try_new(schema, columns).map_err(Error::input)?;
    let mut problems = ErrorRows::default();
    for p in &listing.problems {
        problems.push(&p.rel, ErrorKind::from(p.kind), &p.message);
    }
    Ok((PyArrowType(images), PyArrowType(problems.finish()?)))
}

/// Models built in this process: the Spark job checks each executor Python
/// worker builds one, not one per batch.
pub(crate) static MODELS_BUILT: AtomicU64 = AtomicU64::new(0);

/// How many [`Featurizer`]s this process has built.
#[pyfunction]
fn models_built() -> u64 {
    MODELS_BUILT.load(Ordering::Relaxed)
}

/// Commits an output: writes `_manifest.json` naming `parts` and `error_parts`
/// (lists of `(file, rows)`), with the metadata `meta_json`. Returns the row count.
#[pyfunction]
fn write_manifest(
    py: Python<'_>,
    out: &str,
    meta_json: &str,
    parts: Vec<(String, u64)>,
    error_parts: Vec<(String, u64)>,
) -> Result<u64> {
    let meta: DatasetMeta = serde_json::from_str(meta_json).map_err(json_err)?;
    let infos = |v: Vec<(String, u64)>| -> Vec<PartInfo> {
        v.into_iter()
            .map(|(file, rows)| PartInfo { file, rows })
            .collect()
    };
    let manifest = Manifest::new(meta, infos(parts), infos(error_parts));
    let out = open(out)?;
    let rows = manifest.rows;
    py.detach(|| OutputDir::create(&out)?.write_manifest(&manifest))?;
    Ok(rows)
}

/// Writes `batch` as part `index` of the output `out` (`part-r000-{index}` for
/// `kind` "features", `errors-r000-{index}` for "errors"), atomically, with the
/// metadata `meta_json`; the batch must have the table's schema. Returns
/// `(file, rows)`. The driver's manifest then names the part.
#[pyfunction]
fn write_part(
    py: Python<'_>,
    out: &str,
    kind: &str,
    index: u32,
    batch: PyArrowType<RecordBatch>,
    meta_json: &str,
) -> Result<(String, u64)> {
    let meta: DatasetMeta = serde_json::from_str(meta_json).map_err(json_err)?;
    let (kind, schema) = match kind {
        "features" => (PartKind::Features, features_schema(meta.spec.feature_dim)),
        "errors" => (PartKind::Errors, errors_schema()),
        other => {
            return Err(Error::input(format!(
                "no part kind {other:?}: \"features\" or \"errors\""
            )));
        }
    };
    let batch = batch.0;
    let same = batch.schema().fields().len() == schema.fields().len()
        && batch
            .schema()
            .fields()
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        return Err(Error::input(format!(
            "a {} part needs the schema {:?}, not {:?}",
            kind.file_name(0, index),
            schema.fields(),
            batch.schema().fields()
        )));
    }
    // The store's schema (non-null columns checked), whatever nullability pyarrow gave.
    let batch = RecordBatch::try_new(schema, batch.columns().to_vec()).map_err(Error::input)?;
    let out = open(out)?;
    let info = py
        .detach(|| OutputDir::create(&out)?.write_part(&kind.file_name(0, index), &batch, &meta))?;
    Ok((info.file, info.rows))
}

/// The files of a committed output's features parts, in manifest order.
#[pyfunction]
fn dataset_parts(py: Python<'_>, root: &str) -> Result<Vec<(String, u64)>> {
    let root = open(root)?;
    let ds = py.detach(|| Dataset::open(&root))?;
    Ok(ds
        .manifest()
        .parts
        .iter()
        .map(|p| (p.file.clone(), p.rows))
        .collect())
}

/// How a cluster projects the output at `root` part by part:
/// `([(file, first_row)], stride)` (`fruits_pipeline::reduce::part_plan`).
#[pyfunction]
fn reduce_plan(py: Python<'_>, root: &str) -> Result<(Vec<(String, u64)>, usize)> {
    let root = open(root)?;
    let ds = py.detach(|| Dataset::open(&root))?;
    Ok(reduce::part_plan(&ds))
}

/// The rows of part `file` of the committed output at `root`.
#[pyfunction]
fn read_part(py: Python<'_>, root: &str, file: &str) -> Result<PyArrowType<Vec<RecordBatch>>> {
    let root = open(root)?;
    let batches = py.detach(|| -> Result<Vec<RecordBatch>> {
        let ds = Dataset::open(&root)?;
        let part = find_part(&ds, file)?;
        Ok(ds
            .part_batches(&part, reduce::BATCH_ROWS)
            .collect::<std::result::Result<Vec<_>, _>>()?)
    })?;
    Ok(PyArrowType(batches))
}

fn find_part(ds: &Dataset, file: &str) -> Result<PartInfo> {
    ds.manifest()
        .parts
        .iter()
        .find(|p| p.file == file)
        .cloned()
        .ok_or_else(|| Error::input(format!("{} names no part {file}", ds.root())))
}

/// Merges partitions' statistics into the statistics of all their rows.
#[pyfunction]
fn pca_merge<'py>(py: Python<'py>, stats: Vec<Vec<u8>>) -> Result<Bound<'py, PyBytes>> {
    let mut iter = stats.iter();
    let first = iter
        .next()
        .ok_or_else(|| Error::input("no statistics to merge"))?;
    let mut total = PcaStats::from_bytes(first)?;
    for s in iter {
        total.merge(&PcaStats::from_bytes(s)?)?;
    }
    Ok(PyBytes::new(py, &total.to_bytes()))
}

/// What [`reduce_partition`] returns: (part file, rows, the part's rows of the
/// projection plot as (PC1, PC2), their labels).
type Reduced = (String, u64, Vec<(f32, f32)>, Vec<String>);

/// Projects part `file` of the features output `features` with the PCA in
/// `model_bytes` (`Pca.model_bytes`) into part `index` of the reduced output
/// `out`. Returns `(file, rows, points, labels)`, or None when the part is
/// empty; `points`/`labels` are the part's rows whose dataset row number
/// (`first_row` + row in part) is a multiple of `stride` (0: none), for [`pca_plots`].
#[pyfunction]
#[pyo3(signature = (features, file, model_bytes, out, index, first_row=0, stride=0))]
#[allow(clippy::too_many_arguments)] // a Python signature with defaults, not a Rust API
fn reduce_partition(
    py: Python<'_>,
    features: &str,
    file: &str,
    model_bytes: &[u8],
    out: &str,
    index: u32,
    first_row: u64,
    stride: usize,
) -> Result<Option<Reduced>> {
    let model: PcaModel = serde_json::from_slice(model_bytes).map_err(json_err)?;
    let (root, out) = (open(features)?, open(out)?);
    py.detach(|| -> Result<Option<Reduced>> {
        let ds = Dataset::open(&root)?;
        let part = find_part(&ds, file)?;
        let meta = reduce::reduced_meta(&ds, &model, "")?;
        let dir = OutputDir::create(&out)?;
        let mut sample = reduce::PlotSample {
            first_row,
            stride,
            ..Default::default()
        };
        let wanted = (stride > 0).then_some(&mut sample);
        let info = reduce::transform_part(&ds, &part, &model, &dir, index, &meta, wanted)?;
        Ok(info.map(|p| (p.file, p.rows, sample.points, sample.labels)))
    })
}

/// One batch of `batches` (all of one schema); an empty batch for none.
fn one_batch(batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    match batches.first() {
        None => Ok(RecordBatch::new_empty(Arc::new(Schema::empty()))),
        Some(first) => arrow_select::concat::concat_batches(&first.schema(), &batches)
            .map_err(|e| fruits_pipeline::PipelineError::Internal(e.to_string()).into()),
    }
}

/// A featurised batch (`features` and `errors`, the store's tables) as one
/// DataFrame batch whose row i answers `paths[i]` (`fruits_pipeline::frames`).
#[pyfunction]
fn rows_in_order(
    py: Python<'_>,
    paths: Vec<String>,
    features: PyArrowType<Vec<RecordBatch>>,
    errors: PyArrowType<Vec<RecordBatch>>,
) -> Result<PyArrowType<RecordBatch>> {
    let features = one_batch(features.0)?;
    let errors = one_batch(errors.0)?;
    let batch = py.detach(|| fruits_pipeline::frames::rows_in_order(&paths, &features, &errors))?;
    Ok(PyArrowType(batch))
}

/// Stored batches in the types DataFrames exchange (`fruits_pipeline::frames::for_frames`).
#[pyfunction]
fn for_frames(batches: PyArrowType<Vec<RecordBatch>>) -> Result<PyArrowType<Vec<RecordBatch>>> {
    let out = batches
        .0
        .iter()
        .map(fruits_pipeline::frames::for_frames)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(PyArrowType(out))
}

/// How `rows` listed photos are cut into tasks of about `chunk` photos:
/// `(start, end)` of each.
#[pyfunction]
fn chunk_bounds(rows: usize, chunk: usize) -> Vec<(usize, usize)> {
    fruits_pipeline::frames::chunk_bounds(rows, chunk)
}

/// The stride of the projection plot's sample for a dataset of `rows` rows:
/// every `stride`-th row in part order, as `fruits pca fit` samples them.
#[pyfunction]
fn plot_stride(rows: u64) -> usize {
    reduce::plot_stride(rows)
}

/// Draws `explained_variance.png` and `projection.png` into the PCA folder
/// `out`, as `fruits pca fit` does: `points` (PC1, PC2) and `labels` are the
/// sampled rows (from [`reduce_partition`], in part order) of `rows` rows.
#[pyfunction]
fn pca_plots(
    py: Python<'_>,
    out: &str,
    model_bytes: &[u8],
    points: Vec<[f32; 2]>,
    labels: Vec<String>,
    rows: u64,
) -> Result<()> {
    let model: PcaModel = serde_json::from_slice(model_bytes).map_err(json_err)?;
    let points: Vec<(f32, f32)> = points.into_iter().map(|[x, y]| (x, y)).collect();
    let out = open(out)?;
    py.detach(|| fruits_pipeline::plots::write_pca_plots(&out, &model, &points, &labels, rows))?;
    Ok(())
}

/// The metadata of an output reduced from `features` by the PCA in `model_bytes`, as JSON.
#[pyfunction]
fn reduced_meta_json(py: Python<'_>, features: &str, model_bytes: &[u8]) -> Result<String> {
    let model: PcaModel = serde_json::from_slice(model_bytes).map_err(json_err)?;
    let root = open(features)?;
    let ds = py.detach(|| Dataset::open(&root))?;
    let meta = reduce::reduced_meta(&ds, &model, "")?;
    serde_json::to_string(&meta).map_err(json_err)
}

/// The models folder, found as the `fruits` binary finds it
/// (`fruits_model::paths::models_dir`): one lookup for every shell.
#[pyfunction]
fn models_dir() -> String {
    fruits_model::paths::models_dir().display().to_string()
}

/// The cores this process may use, as the core counts them for its thread
/// layouts (`fruits_model::available_cores`).
#[pyfunction]
fn available_cores() -> usize {
    fruits_model::available_cores()
}

/// `FRUITS_MODEL`, when set, as the core reads it (`fruits_model::paths::model_env`).
#[pyfunction]
fn model_from_env() -> Option<String> {
    fruits_model::paths::model_env()
}

/// `FRUITS_ORT_LIB` (else `ORT_DYLIB_PATH`), when set, as the core reads it
/// (`fruits_model::runtime::runtime_env`).
#[pyfunction]
fn runtime_library_from_env() -> Option<String> {
    fruits_model::runtime::runtime_env().map(|(_, path)| path.display().to_string())
}

/// Reads a whole file or object (the model, on the driver, before broadcasting it).
#[pyfunction]
fn read_bytes<'py>(py: Python<'py>, spec: &str) -> Result<Bound<'py, PyBytes>> {
    let location = open(spec)?;
    let bytes = py.detach(|| location.get(""))?;
    Ok(PyBytes::new(py, &bytes))
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The defaults, defined once in the library crates, for the Python side.
    m.add("DEFAULT_BATCH_SIZE", DEFAULT_BATCH_SIZE)?;
    m.add("DEFAULT_VARIANCE", reduce::DEFAULT_VARIANCE)?;
    m.add(
        "DEFAULT_MAX_MEGAPIXELS",
        fruits_image::DEFAULT_MAX_MEGAPIXELS,
    )?;
    m.add(
        "DEFAULT_MODEL_FILE",
        fruits_model::Precision::default().file_name(),
    )?;
    m.add(
        "DEFAULT_DECODE_THREADS",
        fruits_pipeline::featurize::default_decode_threads(fruits_model::available_cores()),
    )?;
    m.add("DEFAULT_C", fruits_learn::DEFAULT_C)?;
    m.add("DEFAULT_MAX_ITER", fruits_learn::DEFAULT_MAX_ITER)?;
    m.add("DEFAULT_TOP", fruits_identify::DEFAULT_TOP)?;
    m.add("DEFAULT_CV_GRID", fruits_learn::DEFAULT_CV_GRID.to_vec())?;
    // The bounds every shell is held to, for arguments checked before the
    // extension converts them (a negative count would be an OverflowError).
    m.add("MAX_BATCH_SIZE", fruits_pipeline::featurize::MAX_BATCH_SIZE)?;
    m.add("MAX_THREADS", fruits_model::MAX_THREADS)?;
    m.add("MAX_COPIES", fruits_pipeline::augment::MAX_COPIES)?;
    m.add("MAX_TOP", fruits_identify::MAX_TOP)?;
    m.add("MAX_FOLDS", fruits_learn::cv::MAX_FOLDS)?;
    m.add("FP32_MODEL_FILE", fruits_model::Precision::Fp32.file_name())?;
    m.add("INT8_MODEL_FILE", fruits_model::Precision::Int8.file_name())?;
    m.add_class::<Featurizer>()?;
    m.add_class::<pca::Pca>()?;
    m.add_class::<classifier::Classifier>()?;
    m.add_function(wrap_pyfunction!(tables::read_dataset, m)?)?;
    m.add_function(wrap_pyfunction!(pca::batch_stats, m)?)?;
    m.add_function(wrap_pyfunction!(list_images, m)?)?;
    m.add_function(wrap_pyfunction!(throughput_layout, m)?)?;
    m.add_function(wrap_pyfunction!(list_images_and_problems, m)?)?;
    m.add_function(wrap_pyfunction!(write_part, m)?)?;
    m.add_function(wrap_pyfunction!(read_part, m)?)?;
    m.add_function(wrap_pyfunction!(models_built, m)?)?;
    m.add_function(wrap_pyfunction!(write_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(dataset_parts, m)?)?;
    m.add_function(wrap_pyfunction!(pca_merge, m)?)?;
    m.add_function(wrap_pyfunction!(reduce_partition, m)?)?;
    m.add_function(wrap_pyfunction!(plot_stride, m)?)?;
    m.add_function(wrap_pyfunction!(rows_in_order, m)?)?;
    m.add_function(wrap_pyfunction!(for_frames, m)?)?;
    m.add_function(wrap_pyfunction!(chunk_bounds, m)?)?;
    m.add_function(wrap_pyfunction!(reduce_plan, m)?)?;
    m.add_function(wrap_pyfunction!(pca_plots, m)?)?;
    m.add_function(wrap_pyfunction!(reduced_meta_json, m)?)?;
    m.add_function(wrap_pyfunction!(read_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(models_dir, m)?)?;
    m.add_function(wrap_pyfunction!(model_from_env, m)?)?;
    m.add_function(wrap_pyfunction!(available_cores, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_library_from_env, m)?)?;
    // The exception classes every core error maps to, looked up once here.
    m.add(
        "ERROR_CLASSES",
        error::Class::ALL.map(error::Class::name).to_vec(),
    )?;
    error::init(m.py())?;
    Ok(())
}
