//! PCA over a features output: fit in one streaming pass, transform part by part.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use fruits_pca::{Keep, ModelFile, PcaModel, PcaStats};
use fruits_store::{Dataset, DatasetMeta, Location, Manifest, OutputDir, PartInfo, PartKind};

use crate::PipelineError;

/// Rows read per batch: bounds memory at `batch_rows x d` floats plus O(d^2).
pub const BATCH_ROWS: usize = 4096;

/// The values of the vector column `name` of a batch, and its length per row.
pub fn vector_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<(&'a [f32], usize), PipelineError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| PipelineError::Input(format!("the input has no `{name}` column")))?;
    let list = match column.data_type() {
        DataType::FixedSizeList(item, _) if item.data_type() == &DataType::Float32 => {
            column.as_fixed_size_list()
        }
        other => {
            return Err(PipelineError::Input(format!(
                "column `{name}` is {other}, expected a fixed-size list of float32"
            )));
        }
    };
    let dim = list.value_length() as usize;
    let values = list.values().as_primitive::<Float32Type>().values();
    let start = list.offset() * dim;
    Ok((&values[start..start + list.len() * dim], dim))
}

/// Rows read per batch when summarising: measured fastest for d = 1280
/// (the co-moment GEMM of a 1024-row batch stays in cache).
pub const STATS_BATCH_ROWS: usize = 1024;

/// Most rows kept aside during the pass for the projection plot.
pub const PLOT_SAMPLE_ROWS: usize = 8192;

/// The projection plot shows every `plot_stride(rows)`-th row of a dataset of
/// `rows` rows, in part order: at most [`PLOT_SAMPLE_ROWS`] points.
pub fn plot_stride(rows: u64) -> usize {
    (rows as usize).div_ceil(PLOT_SAMPLE_ROWS).max(1)
}

/// The rows of the projection plot gathered part by part while parts are
/// projected one at a time (each Spark task keeps those of its part).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlotSample {
    /// The dataset's row number of the part's first row (rows of earlier parts).
    pub first_row: u64,
    /// Keep rows whose dataset row number is a multiple of this ([`plot_stride`]).
    pub stride: usize,
    /// (PC1, PC2) of the kept rows.
    pub points: Vec<(f32, f32)>,
    /// Their labels.
    pub labels: Vec<String>,
}

/// What one pass over a features output yields.
pub struct Pass {
    /// The statistics of every row.
    pub stats: PcaStats,
    /// Every `stride`-th row (at most [`PLOT_SAMPLE_ROWS`]), for plots.
    pub sample: Vec<f32>,
    /// Labels of the sampled rows.
    pub sample_labels: Vec<String>,
}

/// Summarises the `features` of every row of `ds` in one pass, reading the
/// next batch on another thread while this one is being summarised.
pub fn stats_of(ds: &Dataset) -> Result<Pass, PipelineError> {
    let stride = plot_stride(ds.manifest().rows);
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            for batch in ds.feature_columns(&["features", "label"], STATS_BATCH_ROWS) {
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
        let mut stats: Option<PcaStats> = None;
        let mut sample = Vec::new();
        let mut sample_labels = Vec::new();
        let mut row = 0usize;
        for batch in rx {
            let batch = batch?;
            let (values, dim) = vector_column(&batch, "features")?;
            let s = stats.get_or_insert_with(|| PcaStats::new(dim));
            if s.dim() != dim {
                return Err(PipelineError::Input(format!(
                    "feature vectors of {dim} values after vectors of {}: the parts of {} mix feature sizes",
                    s.dim(),
                    ds.root()
                )));
            }
            s.update(values)?;
            let labels = batch.column_by_name("label").map(|c| c.as_string::<i32>());
            for (i, v) in values.chunks_exact(dim).enumerate() {
                if (row + i).is_multiple_of(stride) {
                    sample.extend_from_slice(v);
                    sample_labels.push(labels.map(|l| l.value(i).to_string()).unwrap_or_default());
                }
            }
            row += batch.num_rows();
        }
        let stats = stats.ok_or_else(|| {
            PipelineError::Input(format!(
                "{} has no featurised rows to fit a PCA on",
                ds.root()
            ))
        })?;
        Ok(Pass {
            stats,
            sample,
            sample_labels,
        })
    })
}

/// Fits a PCA on the features of `ds`; returns it with the pass's plot sample.
pub fn fit_dataset(ds: &Dataset, keep: Keep) -> Result<(PcaModel, Pass), PipelineError> {
    let pass = stats_of(ds)?;
    if pass.stats.count() < 2 {
        return Err(PipelineError::Input(format!(
            "{} has {} featurised row(s); PCA needs at least 2",
            ds.root(),
            pass.stats.count()
        )));
    }
    Ok((fruits_pca::fit(&pass.stats, keep)?, pass))
}

/// The metadata of an output reduced from `ds` by `model`; fails when the PCA
/// was fitted on features of another image model.
pub fn reduced_meta(
    ds: &Dataset,
    model: &PcaModel,
    features_model_sha256: &str,
) -> Result<DatasetMeta, PipelineError> {
    let meta = &ds.manifest().meta;
    if !features_model_sha256.is_empty() && features_model_sha256 != meta.model_sha256 {
        return Err(PipelineError::Input(format!(
            "the PCA was fitted on features of model {} but {} holds features of model {}",
            features_model_sha256,
            ds.root(),
            meta.model_sha256
        )));
    }
    let mut out_meta = meta.clone();
    out_meta.feature_output = "pca".into();
    out_meta.feature_dim = model.k;
    out_meta.pca_fingerprint = model.fingerprint();
    Ok(out_meta)
}

/// Projects every row of `ds` with `model` into a new output at `out`: one
/// part per input part, columns `path`, `label`, `split`, `pca`.
pub fn transform_dataset(
    ds: &Dataset,
    model: &ModelFile,
    out: &Location,
) -> Result<u64, PipelineError> {
    let out_meta = reduced_meta(ds, &model.model, &model.features_model_sha256)?;
    let dir = OutputDir::create(out)?;
    let mut parts = Vec::new();
    let mut rows = 0u64;
    for (seq, part) in ds.manifest().parts.iter().enumerate() {
        if let Some(info) =
            transform_part(ds, part, &model.model, &dir, seq as u32, &out_meta, None)?
        {
            rows += info.rows;
            parts.push(info);
        }
    }
    dir.write_manifest(&Manifest::new(out_meta, parts, Vec::new()))?;
    Ok(rows)
}

/// Projects one part of `ds` into part `seq` of `dir` (`part-r000-{seq}`);
/// `None` when the part has no rows. Writing the same part again replaces it
/// with the same rows, which is what a retried Spark task does. With `sample`,
/// also keeps the part's rows of the projection plot (needs k >= 2).
pub fn transform_part(
    ds: &Dataset,
    part: &PartInfo,
    model: &PcaModel,
    dir: &OutputDir,
    seq: u32,
    out_meta: &DatasetMeta,
    mut sample: Option<&mut PlotSample>,
) -> Result<Option<PartInfo>, PipelineError> {
    let k = model.k;
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let mut batches = Vec::new();
    let mut row = sample.as_ref().map_or(0, |s| s.first_row);
    for batch in ds.part_batches(part, BATCH_ROWS) {
        let batch = batch?;
        let (values, dim) = vector_column(&batch, "features")?;
        if dim != model.d {
            return Err(PipelineError::Input(format!(
                "{}: feature vectors have {dim} values but the PCA expects {}",
                part.file, model.d
            )));
        }
        let projected = model.transform(values)?;
        if let Some(sample) = sample.as_deref_mut()
            && k >= 2
        {
            let labels = batch.column_by_name("label").map(|c| c.as_string::<i32>());
            for (i, z) in projected.chunks_exact(k).enumerate() {
                if (row + i as u64).is_multiple_of(sample.stride.max(1) as u64) {
                    sample.points.push((z[0], z[1]));
                    sample
                        .labels
                        .push(labels.map(|l| l.value(i).to_string()).unwrap_or_default());
                }
            }
        }
        row += batch.num_rows() as u64;
        let list = FixedSizeListArray::try_new(
            item.clone(),
            k as i32,
            Arc::new(Float32Array::from(projected)),
            None,
        )
        .map_err(|e| PipelineError::Internal(e.to_string()))?;
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for name in ["path", "label", "split"] {
            let idx = batch
                .schema()
                .index_of(name)
                .map_err(|_| PipelineError::Input(format!("the input has no `{name}` column")))?;
            fields.push(batch.schema().field(idx).clone());
            columns.push(batch.column(idx).clone());
        }
        fields.push(Field::new(
            "pca",
            DataType::FixedSizeList(item.clone(), k as i32),
            false,
        ));
        columns.push(Arc::new(list));
        batches.push(
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
                .map_err(|e| PipelineError::Internal(e.to_string()))?,
        );
    }
    if batches.is_empty() {
        return Ok(None);
    }
    let schema = batches[0].schema();
    let whole = arrow_select::concat::concat_batches(&schema, &batches)
        .map_err(|e| PipelineError::Internal(e.to_string()))?;
    Ok(Some(dir.write_part(
        &PartKind::Features.file_name(0, seq),
        &whole,
        out_meta,
    )?))
}

/// The PCA statistics of one part of `ds` (a Spark partition's share of the fit).
pub fn part_stats(ds: &Dataset, part: &PartInfo) -> Result<PcaStats, PipelineError> {
    let mut stats: Option<PcaStats> = None;
    for batch in ds.part_batches(part, STATS_BATCH_ROWS) {
        let batch = batch?;
        let (values, dim) = vector_column(&batch, "features")?;
        let s = stats.get_or_insert_with(|| PcaStats::new(dim));
        s.update(values)?;
    }
    Ok(stats.unwrap_or_else(|| PcaStats::new(ds.manifest().meta.feature_dim)))
}

/// The pass's sampled rows on the first two components of `model`, for
/// [`crate::plots::write_pca_plots`].
pub fn first_two_components(pass: &Pass, model: &PcaModel) -> Result<PlotSample, PipelineError> {
    if model.k < 2 {
        return Err(PipelineError::Input(
            "a projection plot needs at least 2 components".into(),
        ));
    }
    let two = PcaModel {
        k: 2,
        components: model.components[..2 * model.d].to_vec(),
        ..model.clone()
    };
    let projected = two.transform(&pass.sample)?;
    Ok(PlotSample {
        first_row: 0,
        stride: plot_stride(pass.stats.count()),
        points: projected.chunks_exact(2).map(|xy| (xy[0], xy[1])).collect(),
        labels: pass.sample_labels.clone(),
    })
}
