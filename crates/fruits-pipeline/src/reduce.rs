//! PCA over a features output: fit in one streaming pass, transform part by part.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use fruits_pca::{Keep, ModelFile, PcaModel, PcaStats};
use fruits_store::{
    Dataset, DatasetMeta, Location, Manifest, OutputDir, PartInfo, PartKind, columns,
};

use crate::PipelineError;

/// Default share of the variance a PCA keeps.
pub const DEFAULT_VARIANCE: f64 = 0.95;

/// Where `fruits run` and the Spark job put the PCA beside `features/` and `reduced/`.
pub const PCA_DIR: &str = "pca";

/// Rows read per batch: bounds memory at `batch_rows x d` floats plus O(d^2).
pub const BATCH_ROWS: usize = 4096;

/// The values of the vector column `name` of a batch read from `dataset`, and
/// its length per row.
pub fn vector_column<'a>(
    batch: &'a RecordBatch,
    name: &'static str,
    dataset: &dyn std::fmt::Display,
) -> Result<(&'a [f32], usize), PipelineError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| PipelineError::MissingColumn {
            dataset: dataset.to_string(),
            column: name,
        })?;
    let list = match column.data_type() {
        DataType::FixedSizeList(item, _) if item.data_type() == &DataType::Float32 => {
            column.as_fixed_size_list()
        }
        other => {
            return Err(PipelineError::WrongColumnType {
                dataset: dataset.to_string(),
                column: name,
                found: other.to_string(),
            });
        }
    };
    let dim = list.value_length() as usize;
    let values = list.values().as_primitive::<Float32Type>().values();
    let start = list.offset() * dim;
    Ok((&values[start..start + list.len() * dim], dim))
}

/// Where each part of a dataset starts: `(file, first row)` in manifest
/// order, and the projection plot's stride over the whole dataset. What a
/// cluster's tasks need to project one part each and keep the plot's rows
/// exactly as [`transform_dataset`] does on one machine.
pub fn part_plan(ds: &Dataset) -> (Vec<(String, u64)>, usize) {
    let mut first = 0u64;
    let parts = ds
        .manifest()
        .parts
        .iter()
        .map(|p| {
            let start = first;
            first += p.rows;
            (p.file.clone(), start)
        })
        .collect();
    (parts, plot_stride(first))
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

/// One pass's running summary: statistics of every row and the plot sample.
struct Summary {
    stride: usize,
    stats: Option<PcaStats>,
    sample: Vec<f32>,
    sample_labels: Vec<String>,
    row: usize,
}

impl Summary {
    fn new(rows: u64) -> Summary {
        Summary {
            stride: plot_stride(rows),
            stats: None,
            sample: Vec::new(),
            sample_labels: Vec::new(),
            row: 0,
        }
    }

    /// Adds the `features` (and `label`, when present) of one batch of `what`.
    fn add(
        &mut self,
        batch: &RecordBatch,
        what: &dyn std::fmt::Display,
    ) -> Result<(), PipelineError> {
        let (values, dim) = add_features(&mut self.stats, batch, what)?;
        let labels = batch
            .column_by_name(columns::LABEL)
            .and_then(|c| c.as_string_opt::<i32>());
        for (i, v) in values.chunks_exact(dim).enumerate() {
            if (self.row + i).is_multiple_of(self.stride) {
                self.sample.extend_from_slice(v);
                self.sample_labels
                    .push(labels.map(|l| l.value(i).to_string()).unwrap_or_default());
            }
        }
        self.row += batch.num_rows();
        Ok(())
    }

    fn finish(self, what: &dyn std::fmt::Display) -> Result<Pass, PipelineError> {
        let stats = self.stats.ok_or_else(|| PipelineError::TooFewRows {
            dataset: what.to_string(),
            rows: 0,
        })?;
        Ok(Pass {
            stats,
            sample: self.sample,
            sample_labels: self.sample_labels,
        })
    }
}

/// Summarises the `features` of every row of `ds` in one pass, reading the
/// next batch on another thread while this one is being summarised.
pub fn stats_of(ds: &Dataset) -> Result<Pass, PipelineError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            for batch in ds.feature_columns(&[columns::FEATURES, columns::LABEL], STATS_BATCH_ROWS)
            {
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
        let mut summary = Summary::new(ds.manifest().rows);
        for batch in rx {
            summary.add(&batch?, ds.root())?;
        }
        summary.finish(ds.root())
    })
}

/// Like [`fit_dataset`], for rows in memory (a table from Python): `what`
/// names them in errors.
pub fn fit_batches(
    batches: &[RecordBatch],
    keep: Keep,
    what: &str,
) -> Result<(PcaModel, Pass), PipelineError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut summary = Summary::new(rows as u64);
    for batch in batches {
        summary.add(batch, &what)?;
    }
    fit_pass(summary.finish(&what)?, keep, &what)
}

/// Fits a PCA on the statistics of a pass over `what`; returns it with the pass.
fn fit_pass(
    pass: Pass,
    keep: Keep,
    what: &dyn std::fmt::Display,
) -> Result<(PcaModel, Pass), PipelineError> {
    if pass.stats.count() < 2 {
        return Err(PipelineError::TooFewRows {
            dataset: what.to_string(),
            rows: pass.stats.count(),
        });
    }
    Ok((fruits_pca::fit(&pass.stats, keep)?, pass))
}

/// The PCA statistics of the `features` of rows in memory (one Spark
/// partition's share of a fit); `what` names them in errors.
pub fn batch_stats(batches: &[RecordBatch], what: &str) -> Result<Option<PcaStats>, PipelineError> {
    let mut stats: Option<PcaStats> = None;
    for batch in batches {
        add_features(&mut stats, batch, &what)?;
    }
    Ok(stats)
}

/// Adds the `features` of `batch` to `stats` (made at the first batch);
/// returns the batch's values and their length per row.
fn add_features<'a>(
    stats: &mut Option<PcaStats>,
    batch: &'a RecordBatch,
    what: &dyn std::fmt::Display,
) -> Result<(&'a [f32], usize), PipelineError> {
    let (values, dim) = vector_column(batch, columns::FEATURES, what)?;
    let s = stats.get_or_insert_with(|| PcaStats::new(dim));
    if s.dim() != dim {
        return Err(PipelineError::MixedDimensions {
            dataset: what.to_string(),
            first: s.dim(),
            now: dim,
        });
    }
    s.update(values)?;
    Ok((values, dim))
}

/// Fits a PCA on the features of `ds`; returns it with the pass's plot sample.
pub fn fit_dataset(ds: &Dataset, keep: Keep) -> Result<(PcaModel, Pass), PipelineError> {
    fit_pass(stats_of(ds)?, keep, ds.root())
}

/// The metadata of an output reduced from `ds` by `model`; fails when the PCA
/// was fitted on features of another image model.
pub fn reduced_meta(
    ds: &Dataset,
    model: &PcaModel,
    features_model_sha256: &str,
) -> Result<DatasetMeta, PipelineError> {
    let meta = &ds.manifest().meta;
    if !features_model_sha256.is_empty() && features_model_sha256 != meta.spec.model_sha256 {
        return Err(PipelineError::PcaOfAnotherModel {
            dataset: ds.root().to_string(),
            pca_model: features_model_sha256.to_string(),
            data_model: meta.spec.model_sha256.clone(),
        });
    }
    let mut out_meta = meta.clone();
    // A reduced output projects the whole photo's vector only.
    out_meta.views = Vec::new();
    out_meta.spec.feature_output = columns::PCA.into();
    out_meta.spec.feature_dim = model.k;
    out_meta.pca_fingerprint = Some(model.fingerprint());
    out_meta.pca_steps = Some(model.int8_steps());
    Ok(out_meta)
}

/// Fits a PCA on the features of `ds`, writes it into `out` (`pca.json`,
/// `components.parquet`) with its two plots, and returns the model as saved.
/// A plot that cannot be drawn (no font) does not fail the fit: its error is
/// returned beside the model for the caller to report.
pub fn fit_and_save(
    ds: &Dataset,
    keep: Keep,
    out: &Location,
) -> Result<(ModelFile, Option<PipelineError>), PipelineError> {
    out.check_writable()?;
    let (model, pass) = fit_dataset(ds, keep)?;
    fruits_pca::save(
        out,
        &model,
        &ds.manifest().meta.spec.model_sha256,
        &ds.root().to_string(),
    )?;
    let plots = (|| {
        let sample = if model.k >= 2 {
            first_two_components(&pass, &model)?
        } else {
            PlotSample::default()
        };
        crate::plots::write_pca_plots(
            out,
            &model,
            &sample.points,
            &sample.labels,
            ds.manifest().rows,
        )
    })();
    // Read back what was written: the caller gets exactly what others will load.
    Ok((fruits_pca::load(out)?, plots.err()))
}

/// The PCA that made the reduced output `ds`: the [`PCA_DIR`] folder beside it
/// (`run/reduced` -> `run/pca`), checked by fingerprint.
pub fn pca_beside(ds: &Dataset) -> Result<ModelFile, PipelineError> {
    let meta = &ds.manifest().meta;
    let Some(fingerprint) = &meta.pca_fingerprint else {
        return Err(PipelineError::NotReduced {
            dataset: ds.root().to_string(),
        });
    };
    let dir = ds
        .root()
        .parent()
        .map(|p| p.child(PCA_DIR))
        .ok_or_else(|| PipelineError::ReducedWithoutPca {
            dataset: ds.root().to_string(),
        })?;
    let model = match fruits_pca::load(&dir) {
        Ok(m) => m,
        Err(fruits_pca::PcaError::Storage {
            source: fruits_store::StorageError::NotFound { .. },
            ..
        }) => {
            return Err(PipelineError::ReducedWithoutPca {
                dataset: ds.root().to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    if &model.model.fingerprint() != fingerprint {
        return Err(PipelineError::PcaMismatch {
            dataset: ds.root().to_string(),
            reduced_by: fingerprint.clone(),
            given: model.model.fingerprint(),
        });
    }
    Ok(model)
}

/// Projects every row of `ds` with `model` into a new output at `out`: one
/// part per input part, columns `path`, `label`, `split`, `pca`.
pub fn transform_dataset(
    ds: &Dataset,
    model: &ModelFile,
    out: &Location,
) -> Result<u64, PipelineError> {
    let out_meta = reduced_meta(ds, &model.model, &model.features_model_sha256)?;
    let dir = OutputDir::create_exclusive(out)?;
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

/// Schema of a reduced part as readers get it: `path, label, split`, the
/// `pca` vector (k float32) and, when the features had one, the colour
/// descriptor.
pub fn reduced_schema(k: usize, colour_bins: usize) -> arrow_schema::SchemaRef {
    reduced_schema_of(k, colour_bins, DataType::Float32)
}

/// Schema of a reduced part as it is stored: the `pca` vector as k int8
/// codes (value = code x step, the steps in the output's metadata,
/// [`PcaModel::int8_steps`]): about an eighth of the float32 bytes.
pub fn stored_reduced_schema(k: usize, colour_bins: usize) -> arrow_schema::SchemaRef {
    reduced_schema_of(k, colour_bins, DataType::Int8)
}

fn reduced_schema_of(k: usize, colour_bins: usize, item: DataType) -> arrow_schema::SchemaRef {
    let features = fruits_store::features_schema(0);
    let mut fields: Vec<Field> = [columns::PATH, columns::LABEL, columns::SPLIT]
        .iter()
        .filter_map(|name| features.field_with_name(name).ok().cloned())
        .collect();
    let item = Arc::new(Field::new("item", item, false));
    fields.push(Field::new(
        columns::PCA,
        DataType::FixedSizeList(item, k as i32),
        false,
    ));
    if colour_bins > 0
        && let Ok(colour) = features.field_with_name(columns::COLOUR)
    {
        fields.push(colour.clone());
    }
    Arc::new(Schema::new(fields))
}

/// The `features` of one batch of `what` projected by `model`: a `k`-long
/// vector per row.
pub fn project_vectors(
    batch: &RecordBatch,
    model: &PcaModel,
    what: &dyn std::fmt::Display,
) -> Result<FixedSizeListArray, PipelineError> {
    let (values, dim) = vector_column(batch, columns::FEATURES, what)?;
    if dim != model.d {
        return Err(PipelineError::WrongDimension {
            what: what.to_string(),
            got: dim,
            expected: model.d,
        });
    }
    let projected = model.transform(values)?;
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    FixedSizeListArray::try_new(
        item,
        model.k as i32,
        Arc::new(Float32Array::from(projected)),
        None,
    )
    .map_err(|e| PipelineError::Internal(e.to_string()))
}

/// Projects the `features` of one batch of `what` with `model`: the batch's
/// `path`, `label` and `split` and a `pca` column, the schema of a reduced
/// part. `first_row` is the batch's first row number in its dataset; with
/// `sample`, keeps the batch's rows of the projection plot (needs k >= 2).
pub fn project_batch(
    batch: &RecordBatch,
    model: &PcaModel,
    what: &dyn std::fmt::Display,
    first_row: u64,
    sample: Option<&mut PlotSample>,
) -> Result<RecordBatch, PipelineError> {
    let list = project_vectors(batch, model, what)?;
    if let Some(sample) = sample
        && model.k >= 2
    {
        let projected = list.values().as_primitive::<Float32Type>().values();
        let labels = batch
            .column_by_name(columns::LABEL)
            .and_then(|c| c.as_string_opt::<i32>());
        for (i, z) in projected.chunks_exact(model.k).enumerate() {
            if (first_row + i as u64).is_multiple_of(sample.stride.max(1) as u64) {
                sample.points.push((z[0], z[1]));
                sample
                    .labels
                    .push(labels.map(|l| l.value(i).to_string()).unwrap_or_default());
            }
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    for name in [columns::PATH, columns::LABEL, columns::SPLIT] {
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| PipelineError::MissingColumn {
                dataset: what.to_string(),
                column: name,
            })?;
        columns.push(column.clone());
    }
    // Stored as int8 codes, decoded by every reader of the output.
    let steps = model.int8_steps();
    let codes =
        fruits_store::encode_int8(list.values().as_primitive::<Float32Type>().values(), &steps);
    let codes = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Int8, false)),
        model.k as i32,
        Arc::new(arrow_array::Int8Array::from(codes)),
        None,
    )
    .map_err(|e| PipelineError::Internal(e.to_string()))?;
    columns.push(Arc::new(codes));
    // The colour descriptor travels with the projection: a classifier trained
    // on a reduced output uses it as one trained on the features does.
    let colour = batch.column_by_name(columns::COLOUR).filter(|c| {
        matches!(c.data_type(), DataType::FixedSizeList(_, n) if *n as usize == fruits_image::COLOUR_BINS)
    });
    let bins = if let Some(c) = colour {
        columns.push(c.clone());
        fruits_image::COLOUR_BINS
    } else {
        0
    };
    RecordBatch::try_new(stored_reduced_schema(model.k, bins), columns)
        .map_err(|e| PipelineError::Internal(e.to_string()))
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
    let what = ds.root().describe(&part.file);
    let mut batches = Vec::new();
    let mut row = sample.as_ref().map_or(0, |s| s.first_row);
    for batch in ds.part_batches(part, BATCH_ROWS) {
        let batch = batch?;
        batches.push(project_batch(
            &batch,
            model,
            &what,
            row,
            sample.as_deref_mut(),
        )?);
        row += batch.num_rows() as u64;
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
        let (values, dim) = vector_column(&batch, columns::FEATURES, ds.root())?;
        let s = stats.get_or_insert_with(|| PcaStats::new(dim));
        s.update(values)?;
    }
    Ok(stats.unwrap_or_else(|| PcaStats::new(ds.manifest().meta.spec.feature_dim)))
}

/// The pass's sampled rows on the first two components of `model`, for
/// [`crate::plots::write_pca_plots`].
pub fn first_two_components(pass: &Pass, model: &PcaModel) -> Result<PlotSample, PipelineError> {
    if model.k < 2 {
        return Err(PipelineError::PlotNeedsTwoComponents { k: model.k });
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
