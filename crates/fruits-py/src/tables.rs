//! Tables in memory: featurising into pyarrow batches, and reading outputs back.

use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_pyarrow::PyArrowType;
use bytes::Bytes;
use fruits_image::{DecodeLimits, Preprocessing};
use fruits_ingest::{ImageEntry, ImageListing};
use fruits_model::{FeatureModel, ModelOptions};
use fruits_pipeline::augment::Augmentation;
use fruits_pipeline::featurize::{DEFAULT_BATCH_SIZE, feature_spec};
use fruits_pipeline::reduce::BATCH_ROWS;
use fruits_pipeline::{FeaturizeConfig, Photos, Tables};
use fruits_store::{
    Dataset, DatasetMeta, OutputDir, PartKind, columns, errors_schema, features_schema,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::{Error, Result};
use crate::{MODELS_BUILT, json_err, open};

/// Batches as pyarrow gets them: never an empty list, so the schema crosses too.
pub type Batches = PyArrowType<Vec<RecordBatch>>;

/// `(features batches, errors batches, metadata JSON)` of a featurisation in memory.
pub type Featurised = (Batches, Batches, String);

fn or_empty(mut batches: Vec<RecordBatch>, empty: impl FnOnce() -> RecordBatch) -> Batches {
    if batches.is_empty() {
        batches.push(empty());
    }
    PyArrowType(batches)
}

fn featurised(tables: Tables) -> Result<Featurised> {
    let dim = tables.meta.spec.feature_dim;
    let meta = serde_json::to_string(&tables.meta).map_err(json_err)?;
    Ok((
        or_empty(tables.features, || {
            RecordBatch::new_empty(features_schema(dim))
        }),
        or_empty(tables.errors, || RecordBatch::new_empty(errors_schema())),
        meta,
    ))
}

/// The image model, loaded once from bytes (Spark broadcasts them), and the
/// featurisation settings.
#[pyclass(frozen)]
pub struct Featurizer {
    model: FeatureModel,
    config: FeaturizeConfig,
}

#[pymethods]
impl Featurizer {
    /// Builds the ONNX Runtime session from the model file's bytes.
    // Python keyword arguments, mirrored one to one.
    #[allow(clippy::too_many_arguments)]
    #[new]
    #[pyo3(signature = (model_bytes, source, intra_threads=1, sessions=1, batch_size=DEFAULT_BATCH_SIZE, decode_threads=1, max_megapixels=fruits_image::DEFAULT_MAX_MEGAPIXELS, ort_lib=None, augment=0, augment_seed=fruits_pipeline::augment::DEFAULT_SEED, views=false))]
    fn new(
        py: Python<'_>,
        model_bytes: &[u8],
        source: &str,
        intra_threads: usize,
        sessions: usize,
        batch_size: usize,
        decode_threads: usize,
        max_megapixels: f64,
        ort_lib: Option<std::path::PathBuf>,
        augment: u32,
        augment_seed: u64,
        views: bool,
    ) -> Result<Self> {
        if batch_size == 0
            || decode_threads == 0
            || sessions == 0
            || max_megapixels.is_nan()
            || max_megapixels <= 0.0
        {
            return Err(Error::input(
                "batch_size, decode_threads and sessions must be at least 1, max_megapixels positive",
            ));
        }
        let options = ModelOptions {
            intra_threads,
            sessions,
            runtime_library: ort_lib,
            ..ModelOptions::default()
        };
        let model = py.detach(|| FeatureModel::from_bytes(model_bytes, source, &options))?;
        MODELS_BUILT.fetch_add(1, Ordering::Relaxed);
        Ok(Featurizer {
            model,
            config: FeaturizeConfig {
                batch_size,
                decode_threads,
                preprocessing: Preprocessing::default(),
                limits: DecodeLimits::megapixels(max_megapixels),
                augment: (augment > 0).then(|| Augmentation::new(augment, augment_seed)),
                views: if views {
                    fruits_image::DEFAULT_VIEWS.to_vec()
                } else {
                    Vec::new()
                },
                ..FeaturizeConfig::default()
            },
        })
    }

    /// The metadata every part made by this featurizer records, as JSON.
    fn meta_json(&self) -> Result<String> {
        let meta = DatasetMeta::new(feature_spec(&self.model, &self.config.preprocessing));
        serde_json::to_string(&meta).map_err(json_err)
    }

    /// Featurises the images named by `batch` (columns `path`, `size`, relative
    /// to `input`) into part `index` of the output `out` (`part-r000-{index}` and
    /// `errors-r000-{index}`). Returns a dict: `part`, `part_rows`, `errors`,
    /// `error_rows` (file names, or None when empty), `featurised`, `failed`.
    fn featurize_partition<'py>(
        &self,
        py: Python<'py>,
        input: &str,
        out: &str,
        index: u32,
        batch: PyArrowType<RecordBatch>,
    ) -> Result<Bound<'py, PyDict>> {
        let batch = batch.0;
        let paths = batch
            .column_by_name(columns::PATH)
            .ok_or_else(|| Error::input("the batch has no `path` column"))?
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::input("`path` must be utf8"))?
            .clone();
        let sizes = batch
            .column_by_name("size")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>().cloned());
        let entries: Vec<_> = (0..batch.num_rows())
            .filter_map(|i| {
                let size = sizes.as_ref().map(|s| s.value(i)).unwrap_or(0);
                fruits_ingest::entry_for(paths.value(i), size)
            })
            .collect();
        let (input, out) = (open(input)?, open(out)?);
        let result = py.detach(|| {
            let dir = OutputDir::create(&out)?;
            fruits_pipeline::featurize_partition(
                &input,
                &entries,
                &dir,
                index,
                &self.model,
                &self.config,
            )
        })?;
        let d = PyDict::new(py);
        d.set_item("part", result.part.as_ref().map(|p| p.file.clone()))?;
        d.set_item(
            "part_rows",
            result.part.as_ref().map(|p| p.rows).unwrap_or(0),
        )?;
        d.set_item("errors", result.errors.as_ref().map(|p| p.file.clone()))?;
        d.set_item(
            "error_rows",
            result.errors.as_ref().map(|p| p.rows).unwrap_or(0),
        )?;
        d.set_item("featurised", result.featurised)?;
        d.set_item("failed", result.failed)?;
        Ok(d)
    }

    /// Featurises every image under `root` (folder or s3:// prefix) in memory;
    /// listing problems land in the errors batches. Returns
    /// `(features batches, errors batches, metadata JSON)`.
    fn featurize_location(&self, py: Python<'_>, root: &str) -> Result<Featurised> {
        let location = open(root)?;
        let tables = py.detach(|| -> Result<Tables> {
            let listing = fruits_ingest::list_images(&location)?;
            Ok(fruits_pipeline::featurize_in_memory(
                Photos::At(&location),
                listing,
                &self.model,
                &self.config,
            )?)
        })?;
        featurised(tables)
    }

    /// Featurises the photos at `paths` (relative to `root`, `/`-separated; label
    /// and split from their folders) in memory. Returns as `featurize_location`.
    fn featurize_paths(
        &self,
        py: Python<'_>,
        root: &str,
        paths: Vec<String>,
    ) -> Result<Featurised> {
        let location = open(root)?;
        let listing = ImageListing {
            entries: paths
                .iter()
                .map(|p| fruits_ingest::entry_named(p, 0))
                .collect(),
            problems: Vec::new(),
        };
        let tables = py.detach(|| {
            fruits_pipeline::featurize_in_memory(
                Photos::At(&location),
                listing,
                &self.model,
                &self.config,
            )
        })?;
        featurised(tables)
    }

    /// Featurises photos given as bytes (`contents[i]` is the photo at
    /// `paths[i]`, which gives its label and split and is kept as is).
    /// Returns as `featurize_location`.
    fn featurize_bytes(
        &self,
        py: Python<'_>,
        paths: Vec<String>,
        contents: Vec<Vec<u8>>,
    ) -> Result<Featurised> {
        if paths.len() != contents.len() {
            return Err(Error::input(format!(
                "{} paths for {} photos",
                paths.len(),
                contents.len()
            )));
        }
        let entries: Vec<ImageEntry> = paths
            .into_iter()
            .zip(&contents)
            .map(|(path, bytes)| ImageEntry {
                path: path.clone(),
                ..fruits_ingest::entry_named(&path, bytes.len() as u64)
            })
            .collect();
        let bytes: Vec<Bytes> = contents.into_iter().map(Bytes::from).collect();
        let listing = ImageListing {
            entries,
            problems: Vec::new(),
        };
        let tables = py.detach(|| {
            fruits_pipeline::featurize_in_memory(
                Photos::Given(&bytes),
                listing,
                &self.model,
                &self.config,
            )
        })?;
        featurised(tables)
    }

    /// Featurises every image under `input` into the output `out`, exactly as
    /// `fruits featurize` does (resumable: what an earlier run did is skipped).
    /// Returns the run's summary as JSON.
    fn featurize_into(&self, py: Python<'_>, input: &str, out: &str) -> Result<String> {
        let (input, out) = (open(input)?, open(out)?);
        let cancel = std::sync::atomic::AtomicBool::new(false);
        let summary = py.detach(|| {
            fruits_pipeline::featurize(
                &input,
                &out,
                &self.model,
                &self.config,
                &fruits_pipeline::NoProgress,
                &cancel,
            )
        })?;
        serde_json::to_string(&summary).map_err(json_err)
    }
}

/// The rows of a committed output (features or reduced): `table` is
/// `"features"` or `"errors"`. Returns `(batches, metadata JSON)`.
#[pyfunction]
#[pyo3(signature = (location, table="features"))]
pub fn read_dataset(py: Python<'_>, location: &str, table: &str) -> Result<(Batches, String)> {
    let kind = match table {
        "features" => PartKind::Features,
        "errors" => PartKind::Errors,
        other => {
            return Err(Error::input(format!(
                "no table {other:?}: read \"features\" or \"errors\""
            )));
        }
    };
    let root = open(location)?;
    let (batches, ds) = py.detach(|| -> Result<(Vec<RecordBatch>, Dataset)> {
        let ds = Dataset::open(&root)?;
        let batches = ds
            .batches(kind, BATCH_ROWS)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((batches, ds))
    })?;
    let meta = &ds.manifest().meta;
    let dim = meta.spec.feature_dim;
    let json = serde_json::to_string(meta).map_err(json_err)?;
    let batches = match kind {
        PartKind::Features if meta.pca_fingerprint.is_some() => {
            // A reduced output: its schema is the first part's; none means no rows.
            or_empty(batches, || {
                RecordBatch::new_empty(fruits_pipeline::reduce::reduced_schema(
                    dim,
                    meta.spec.colour_bins,
                ))
            })
        }
        PartKind::Features => or_empty(batches, || RecordBatch::new_empty(features_schema(dim))),
        PartKind::Errors => or_empty(batches, || RecordBatch::new_empty(errors_schema())),
    };
    Ok((batches, json))
}
