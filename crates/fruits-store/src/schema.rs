//! Arrow schemas of the features and errors tables, and the metadata every part carries.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::file::metadata::KeyValue;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Describes what made a dataset: stored in each part's Parquet key-value
/// metadata (`fruits.*` keys) and in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// Hex sha256 of the model file.
    pub model_sha256: String,
    /// Where the model was loaded from, for people; the hash is what identifies it.
    pub model_source: String,
    /// Name of the model output stored in `features`.
    pub feature_output: String,
    /// Length of each feature vector.
    pub feature_dim: usize,
    /// Side of the square model input.
    pub input_size: u32,
    /// How images were prepared (see `fruits_image::Preprocessing::describe`).
    pub preprocessing: String,
    /// Version of the tool that wrote the data.
    pub tool_version: String,
    /// For a reduced output: the fingerprint of the PCA that projected it
    /// (`fruits_pca::PcaModel::fingerprint`); empty for features.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pca_fingerprint: String,
}

const KV_PREFIX: &str = "fruits.";

/// The metadata as Parquet key-value pairs.
pub fn meta_to_kv(meta: &DatasetMeta) -> Vec<KeyValue> {
    let value = serde_json::to_value(meta).unwrap_or_default();
    let mut kv = Vec::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            kv.push(KeyValue::new(format!("{KV_PREFIX}{k}"), text));
        }
    }
    kv
}

/// Reads the metadata back from Parquet key-value pairs; `None` when they are absent.
pub fn meta_from_kv(kv: &[KeyValue]) -> Option<DatasetMeta> {
    let mut map = serde_json::Map::new();
    for pair in kv {
        if let (Some(key), Some(value)) = (pair.key.strip_prefix(KV_PREFIX), pair.value.as_ref()) {
            let v = match key {
                "feature_dim" | "input_size" => serde_json::from_str(value).ok()?,
                _ => serde_json::Value::String(value.clone()),
            };
            map.insert(key.to_string(), v);
        }
    }
    serde_json::from_value(serde_json::Value::Object(map)).ok()
}

/// Schema of a features part with `dim`-long vectors.
pub fn features_schema(dim: usize) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, true),
        Field::new("sha256", DataType::FixedSizeBinary(32), false),
        Field::new("width", DataType::UInt32, false),
        Field::new("height", DataType::UInt32, false),
        Field::new(
            "features",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, false)),
                dim as i32,
            ),
            false,
        ),
    ]))
}

/// Schema of an errors part.
pub fn errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("message", DataType::Utf8, false),
    ]))
}

/// Rows of the features table being gathered for one part, column by column.
#[derive(Debug)]
pub struct FeatureRows {
    dim: usize,
    path: StringBuilder,
    label: StringBuilder,
    split: StringBuilder,
    sha256: FixedSizeBinaryBuilder,
    width: UInt32Builder,
    height: UInt32Builder,
    features: Vec<f32>,
    /// First and last path of the part, for logs and the manifest.
    len: usize,
}

impl FeatureRows {
    /// An empty set of rows for `dim`-long feature vectors.
    pub fn new(dim: usize) -> Self {
        FeatureRows {
            dim,
            path: StringBuilder::new(),
            label: StringBuilder::new(),
            split: StringBuilder::new(),
            sha256: FixedSizeBinaryBuilder::new(32),
            width: UInt32Builder::new(),
            height: UInt32Builder::new(),
            features: Vec::new(),
            len: 0,
        }
    }

    /// Appends one row. `features` must hold exactly `dim` values.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        path: &str,
        label: &str,
        split: Option<&str>,
        sha256: &[u8; 32],
        width: u32,
        height: u32,
        features: &[f32],
    ) -> Result<(), StoreError> {
        if features.len() != self.dim {
            return Err(StoreError::Arrow(format!(
                "{path}: feature vector has {} values, expected {}",
                features.len(),
                self.dim
            )));
        }
        self.path.append_value(path);
        self.label.append_value(label);
        self.split.append_option(split);
        self.sha256
            .append_value(sha256)
            .map_err(|e| StoreError::Arrow(e.to_string()))?;
        self.width.append_value(width);
        self.height.append_value(height);
        self.features.extend_from_slice(features);
        self.len += 1;
        Ok(())
    }

    /// Number of rows gathered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row was gathered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Turns the rows into a record batch and leaves `self` empty.
    pub fn finish(&mut self) -> Result<RecordBatch, StoreError> {
        let schema = features_schema(self.dim);
        let values = Float32Array::from(std::mem::take(&mut self.features));
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let list = FixedSizeListArray::try_new(item, self.dim as i32, Arc::new(values), None)
            .map_err(|e| StoreError::Arrow(e.to_string()))?;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.path.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.split.finish()),
            Arc::new(self.sha256.finish()),
            Arc::new(self.width.finish()),
            Arc::new(self.height.finish()),
            Arc::new(list),
        ];
        self.len = 0;
        RecordBatch::try_new(schema, columns).map_err(|e| StoreError::Arrow(e.to_string()))
    }
}

/// Rows of the errors table being gathered.
#[derive(Debug, Default)]
pub struct ErrorRows {
    path: StringBuilder,
    kind: StringBuilder,
    message: StringBuilder,
    len: usize,
}

impl ErrorRows {
    /// Appends one failed input.
    pub fn push(&mut self, path: &str, kind: &str, message: &str) {
        self.path.append_value(path);
        self.kind.append_value(kind);
        self.message.append_value(message);
        self.len += 1;
    }

    /// Number of rows gathered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row was gathered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Turns the rows into a record batch and leaves `self` empty.
    pub fn finish(&mut self) -> Result<RecordBatch, StoreError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.path.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.message.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(errors_schema(), columns).map_err(|e| StoreError::Arrow(e.to_string()))
    }
}
