//! The PCA model on disk: portable, readable from Python without this project.
//!
//! ```text
//! out/pca/pca.json            n, d, k, keep, mean, explained variance (+ ratio) of all d
//!                             components, the features' model sha256, the source
//! out/pca/components.parquet  k rows: component (u32), explained_variance (f64),
//!                             explained_variance_ratio (f64), loadings (FixedSizeList<f64, d>)
//! ```
//!
//! In Python: `json.load(open("pca.json"))` and
//! `np.stack(pq.read_table("components.parquet")["loadings"].to_numpy(zero_copy_only=False))`;
//! then `(X - mean) @ components.T` reproduces `fruits pca transform`.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, FixedSizeListArray, Float64Array, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use fruits_location::Location;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};

use crate::{PcaError, PcaModel};

/// Metadata file name.
pub const MODEL_FILE: &str = "pca.json";
/// Components file name.
pub const COMPONENTS_FILE: &str = "components.parquet";

/// Everything in `pca.json`: the model without its components, plus provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Layout version.
    pub format_version: u32,
    /// sha256 of the image model that made the features.
    pub features_model_sha256: String,
    /// Where the features came from.
    pub source: String,
    /// Version of the tool that fitted it.
    pub tool_version: String,
    /// Denominator of the covariance, for readers comparing with other tools.
    pub covariance_denominator: String,
    /// The model; `components` is stored in components.parquet and empty here.
    #[serde(flatten)]
    pub model: PcaModel,
}

fn file_err(dir: &Location, file: &str) -> impl Fn(String) -> PcaError {
    let path = dir.describe(file);
    move |message| PcaError::File {
        path: path.clone(),
        message,
    }
}

/// Writes the model into folder (or S3 prefix) `dir`.
pub fn save(
    dir: &Location,
    model: &PcaModel,
    features_model_sha256: &str,
    source: &str,
) -> Result<(), PcaError> {
    let d = model.d;
    let values = Float64Array::from(model.components.clone());
    let item = Arc::new(Field::new("item", DataType::Float64, false));
    let list = FixedSizeListArray::try_new(item.clone(), d as i32, Arc::new(values), None)
        .map_err(|e| file_err(dir, COMPONENTS_FILE)(e.to_string()))?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("component", DataType::UInt32, false),
        Field::new("explained_variance", DataType::Float64, false),
        Field::new("explained_variance_ratio", DataType::Float64, false),
        Field::new("loadings", DataType::FixedSizeList(item, d as i32), false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(0..model.k as u32)),
        Arc::new(Float64Array::from(
            model.explained_variance[..model.k].to_vec(),
        )),
        Arc::new(Float64Array::from(
            model.explained_variance_ratio[..model.k].to_vec(),
        )),
        Arc::new(list),
    ];
    let err = file_err(dir, COMPONENTS_FILE);
    let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| err(e.to_string()))?;
    let mut writer =
        ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| err(e.to_string()))?;
    writer.write(&batch).map_err(|e| err(e.to_string()))?;
    let bytes = writer.into_inner().map_err(|e| err(e.to_string()))?;
    dir.put(COMPONENTS_FILE, Bytes::from(bytes))
        .map_err(storage_err(dir, COMPONENTS_FILE))?;

    let meta = ModelFile {
        format_version: 1,
        features_model_sha256: features_model_sha256.to_string(),
        source: source.to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        covariance_denominator: "n - 1".into(),
        model: PcaModel {
            components: Vec::new(),
            ..model.clone()
        },
    };
    // pca.json last: a folder with it is a complete model.
    let err = file_err(dir, MODEL_FILE);
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| err(e.to_string()))?;
    dir.put(MODEL_FILE, Bytes::from(text))
        .map_err(storage_err(dir, MODEL_FILE))
}

fn storage_err(dir: &Location, file: &str) -> impl Fn(fruits_location::StorageError) -> PcaError {
    let path = dir.describe(file);
    move |source| PcaError::Storage {
        path: path.clone(),
        source,
    }
}

/// Reads a model written by [`save`].
pub fn load(dir: &Location) -> Result<ModelFile, PcaError> {
    let err = file_err(dir, MODEL_FILE);
    let text = dir.get(MODEL_FILE).map_err(storage_err(dir, MODEL_FILE))?;
    let mut meta: ModelFile = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
    let err = file_err(dir, COMPONENTS_FILE);
    let bytes = dir
        .get(COMPONENTS_FILE)
        .map_err(storage_err(dir, COMPONENTS_FILE))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| err(e.to_string()))?;
    let mut components = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(e.to_string()))?;
        let list = batch
            .column_by_name("loadings")
            .ok_or_else(|| err("no loadings column".into()))?
            .as_fixed_size_list();
        let values = list.values().as_primitive::<Float64Type>();
        let d = meta.model.d;
        let start = list.offset() * d;
        components.extend_from_slice(&values.values()[start..start + list.len() * d]);
    }
    if components.len() != meta.model.k * meta.model.d {
        return Err(err(format!(
            "has {} loadings, expected k x d = {} x {}",
            components.len(),
            meta.model.k,
            meta.model.d
        )));
    }
    meta.model.components = components;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keep, PcaStats, fit};

    #[test]
    fn save_then_load() {
        let mut s = PcaStats::new(3);
        s.update(&[1.0, 2.0, 3.0, 2.0, 1.0, 0.0, 5.0, 5.0, 1.0, 0.0, 0.5, 2.0])
            .expect("update");
        let m = fit(&s, Keep::K(2)).expect("fit");
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = Location::local_path(tmp.path());
        save(&dir, &m, "abc", "features/").expect("save");
        let back = load(&dir).expect("load");
        assert_eq!(back.model, m);
        assert_eq!(back.features_model_sha256, "abc");
        let err = load(&dir.child("nope")).expect_err("missing");
        assert!(
            matches!(
                err,
                PcaError::Storage {
                    source: fruits_location::StorageError::NotFound { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
}
