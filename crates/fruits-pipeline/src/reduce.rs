//! PCA over a features output: fit in one streaming pass, transform part by part.

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use fruits_pca::{Keep, ModelFile, PcaModel, PcaStats};
use fruits_store::{Dataset, Manifest, OutputDir, PartInfo, PartKind};

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

/// Summarises the `features` of every row of `ds` in one pass.
pub fn stats_of(ds: &Dataset) -> Result<PcaStats, PipelineError> {
    let mut stats: Option<PcaStats> = None;
    for batch in ds.batches(PartKind::Features, BATCH_ROWS) {
        let batch = batch?;
        let (values, dim) = vector_column(&batch, "features")?;
        let s = stats.get_or_insert_with(|| PcaStats::new(dim));
        if s.dim() != dim {
            return Err(PipelineError::Input(format!(
                "feature vectors of {dim} values after vectors of {}: the parts of {} mix feature sizes",
                s.dim(),
                ds.root().display()
            )));
        }
        s.update(values)?;
    }
    stats.ok_or_else(|| {
        PipelineError::Input(format!(
            "{} has no featurised rows to fit a PCA on",
            ds.root().display()
        ))
    })
}

/// Fits a PCA on the features of `ds`.
pub fn fit_dataset(ds: &Dataset, keep: Keep) -> Result<PcaModel, PipelineError> {
    let stats = stats_of(ds)?;
    if stats.count() < 2 {
        return Err(PipelineError::Input(format!(
            "{} has {} featurised row(s); PCA needs at least 2",
            ds.root().display(),
            stats.count()
        )));
    }
    Ok(fruits_pca::fit(&stats, keep)?)
}

/// Projects every row of `ds` with `model` into a new output at `out`: one
/// part per input part, columns `path`, `label`, `split`, `pca`.
pub fn transform_dataset(
    ds: &Dataset,
    model: &ModelFile,
    out: &Path,
) -> Result<u64, PipelineError> {
    let meta = &ds.manifest().meta;
    if !model.features_model_sha256.is_empty() && model.features_model_sha256 != meta.model_sha256 {
        return Err(PipelineError::Input(format!(
            "the PCA was fitted on features of model {} but {} holds features of model {}",
            model.features_model_sha256,
            ds.root().display(),
            meta.model_sha256
        )));
    }
    let dir = OutputDir::create(out)?;
    let k = model.model.k;
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let mut parts = Vec::new();
    let mut rows = 0u64;
    let mut out_meta = meta.clone();
    out_meta.feature_output = "pca".into();
    out_meta.feature_dim = k;
    for (seq, part) in ds.manifest().parts.iter().enumerate() {
        let mut batches = Vec::new();
        for batch in ds.part_batches(part, BATCH_ROWS) {
            let batch = batch?;
            let (values, dim) = vector_column(&batch, "features")?;
            if dim != model.model.d {
                return Err(PipelineError::Input(format!(
                    "{}: feature vectors have {dim} values but the PCA expects {}",
                    part.file, model.model.d
                )));
            }
            let projected = model.model.transform(values)?;
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
                let idx = batch.schema().index_of(name).map_err(|_| {
                    PipelineError::Input(format!("the input has no `{name}` column"))
                })?;
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
            continue;
        }
        let schema = batches[0].schema();
        let whole = arrow_select_concat(&schema, &batches)?;
        rows += whole.num_rows() as u64;
        parts.push(dir.write_part(
            &PartKind::Features.file_name(0, seq as u32),
            &whole,
            &out_meta,
        )?);
    }
    let parts: Vec<PartInfo> = parts;
    dir.write_manifest(&Manifest::new(out_meta, parts, Vec::new()))?;
    Ok(rows)
}

fn arrow_select_concat(
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
) -> Result<RecordBatch, PipelineError> {
    arrow_select::concat::concat_batches(schema, batches)
        .map_err(|e| PipelineError::Internal(e.to_string()))
}

/// A row on two components, with the index of its class.
pub type Point = (f32, f32, usize);

/// Every row of `ds` projected on the first two components, with a class index
/// per distinct label (labels returned sorted; index into them).
pub fn first_two_components(
    ds: &Dataset,
    model: &PcaModel,
) -> Result<(Vec<Point>, Vec<String>), PipelineError> {
    if model.k < 2 {
        return Err(PipelineError::Input(
            "a projection plot needs at least 2 components".into(),
        ));
    }
    let d = model.d;
    let (c1, c2) = (&model.components[..d], &model.components[d..2 * d]);
    let mut points = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for batch in ds.batches(PartKind::Features, BATCH_ROWS) {
        let batch = batch?;
        let (values, dim) = vector_column(&batch, "features")?;
        if dim != d {
            return Err(PipelineError::Input(format!(
                "feature vectors have {dim} values, the PCA {d}"
            )));
        }
        let label = batch
            .column_by_name("label")
            .ok_or_else(|| PipelineError::Input("the input has no `label` column".into()))?
            .as_string::<i32>();
        for (i, row) in values.chunks_exact(d).enumerate() {
            let (mut x, mut y) = (0f64, 0f64);
            for j in 0..d {
                let v = f64::from(row[j]) - model.mean[j];
                x += v * c1[j];
                y += v * c2[j];
            }
            let name = label.value(i);
            let class = match labels.iter().position(|l| l == name) {
                Some(c) => c,
                None => {
                    labels.push(name.to_string());
                    labels.len() - 1
                }
            };
            points.push((x as f32, y as f32, class));
        }
    }
    // Sort labels so colours do not depend on row order.
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| labels[a].cmp(&labels[b]));
    let mut rank = vec![0; labels.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    for p in &mut points {
        p.2 = rank[p.2];
    }
    let sorted = order.into_iter().map(|i| labels[i].clone()).collect();
    Ok((points, sorted))
}
