//! Arrow schemas of the features and errors tables, and the metadata every part carries.

use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, StringBuilder, UInt32Builder};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use fruits_contract::{COLOUR_BINS, FeatureSpec};
use parquet::file::metadata::KeyValue;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Column names of the features and errors tables, defined once.
pub mod columns {
    /// Path of the photo relative to the input root (both tables).
    pub const PATH: &str = "path";
    /// Class label: the photo's folder name.
    pub const LABEL: &str = "label";
    /// `Training`, `Test`, or null.
    pub const SPLIT: &str = "split";
    /// sha256 of the photo's bytes.
    pub const SHA256: &str = "sha256";
    /// Width as decoded.
    pub const WIDTH: &str = "width";
    /// Height as decoded.
    pub const HEIGHT: &str = "height";
    /// The image model's feature vector.
    pub const FEATURES: &str = "features";
    /// The PCA projection of a reduced output.
    pub const PCA: &str = "pca";
    /// The photo's colour descriptor (`fruits_image::colour_histogram`).
    pub const COLOUR: &str = "colour";
    /// The image model's vectors of the photo's other views (`--views`), one
    /// after another: the views the identifier averages besides the whole photo.
    pub const VIEWS: &str = "views";
    /// Why a photo failed (errors table): an [`ErrorKind`](crate::ErrorKind).
    pub const KIND: &str = "kind";
    /// What went wrong, for people (errors table).
    pub const MESSAGE: &str = "message";
}

/// Describes what made a dataset: stored in each part's Parquet key-value
/// metadata (`fruits.*` keys) and in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// The vectors stored (for a reduced output: `pca`, k long).
    #[serde(flatten)]
    pub spec: FeatureSpec,
    /// Version of the tool that wrote the data.
    pub tool_version: String,
    /// For a reduced output: the fingerprint of the PCA that projected it
    /// (`fruits_pca::PcaModel::fingerprint`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_is_none"
    )]
    pub pca_fingerprint: Option<String>,
    /// How the augmented copies among the rows were made, when the run made
    /// some: an output is only resumed with the same settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augmentation: Option<AugmentRecord>,
    /// The views of each photo featurised (`--views`), the whole photo
    /// first: `features` holds the first, `views` the others. Empty: one
    /// vector per photo, no `views` column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<fruits_contract::View>,
    /// For a reduced output whose `pca` column holds int8 codes: the step of
    /// each component (value = code x step). Absent: float32 values (outputs
    /// reduced before the codes, and features outputs). Readers of this crate
    /// get float32 values either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pca_steps: Option<Vec<f32>>,
}

/// How a run made augmented copies of its photos (`--augment`), recorded with
/// its rows so that resuming with other settings, which would mix two sets of
/// copies, is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AugmentRecord {
    /// Copies of each photo.
    pub copies: u32,
    /// Seed of the random draws.
    pub seed: u64,
    /// The split whose photos got copies.
    pub split: String,
    /// Version of the copies' naming scheme.
    pub naming: u32,
}

impl std::fmt::Display for AugmentRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} augmented copies of each {} photo (seed {}, naming {})",
            self.copies, self.split, self.seed, self.naming
        )
    }
}

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value: Option<String> = Option::deserialize(d)?;
    Ok(value.filter(|v| !v.is_empty()))
}

impl DatasetMeta {
    /// The metadata of features made by this version of the tool.
    pub fn new(spec: FeatureSpec) -> DatasetMeta {
        DatasetMeta {
            spec,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            pca_fingerprint: None,
            augmentation: None,
            views: Vec::new(),
            pca_steps: None,
        }
    }

    /// Vectors per row in the `views` column (the views beyond the whole photo).
    pub fn extra_views(&self) -> usize {
        self.views.len().saturating_sub(1)
    }

    /// The name of the vector column: [`columns::PCA`] for a reduced output,
    /// else [`columns::FEATURES`].
    pub fn vector_column(&self) -> &'static str {
        if self.pca_fingerprint.is_some() {
            columns::PCA
        } else {
            columns::FEATURES
        }
    }
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
                "feature_dim" | "input_size" | "colour_bins" => serde_json::from_str(value).ok()?,
                "preprocessing" | "augmentation" if value.starts_with('{') => {
                    serde_json::from_str(value).ok()?
                }
                "views" | "pca_steps" if value.starts_with('[') => {
                    serde_json::from_str(value).ok()?
                }
                _ => serde_json::Value::String(value.clone()),
            };
            map.insert(key.to_string(), v);
        }
    }
    serde_json::from_value(serde_json::Value::Object(map)).ok()
}

/// Why an input is in the errors table: a stable, machine-readable kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The file has no bytes.
    Empty,
    /// Not a JPEG, PNG, WebP or BMP.
    UnsupportedFormat,
    /// Over the pixel limit (read from the header, before decoding).
    TooLarge,
    /// The pixels could not be decoded.
    Decode,
    /// The file ends before the image does.
    Truncated,
    /// The image could not be resized (degenerate size).
    Resize,
    /// The file could not be read.
    Io,
    /// The decoder crashed on this file.
    Panic,
    /// Over the file-size limit (from the listing, before reading).
    FileTooLarge,
    /// A symbolic link whose target does not exist.
    BrokenLink,
    /// A symbolic link that leads back to a folder above it.
    LinkLoop,
    /// A folder (or file) that may not be read: its photos are missing.
    Unreadable,
    /// A FIFO, socket or device named like a photo.
    NotAFile,
    /// A name that is not valid UTF-8 (shown with U+FFFD).
    NonUtf8Name,
    /// An augmented copy (`--augment`) could not be encoded.
    Encode,
    /// One side many times the other (from the header, before decoding).
    AspectRatio,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::Empty,
        ErrorKind::UnsupportedFormat,
        ErrorKind::TooLarge,
        ErrorKind::Decode,
        ErrorKind::Truncated,
        ErrorKind::Resize,
        ErrorKind::Io,
        ErrorKind::Panic,
        ErrorKind::FileTooLarge,
        ErrorKind::BrokenLink,
        ErrorKind::LinkLoop,
        ErrorKind::Unreadable,
        ErrorKind::NotAFile,
        ErrorKind::NonUtf8Name,
        ErrorKind::Encode,
        ErrorKind::AspectRatio,
    ];

    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty",
            ErrorKind::UnsupportedFormat => "unsupported_format",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Decode => "decode",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Resize => "resize",
            ErrorKind::Io => "io",
            ErrorKind::Panic => "panic",
            ErrorKind::FileTooLarge => "file_too_large",
            ErrorKind::BrokenLink => "broken_link",
            ErrorKind::LinkLoop => "link_loop",
            ErrorKind::Unreadable => "unreadable",
            ErrorKind::NotAFile => "not_a_file",
            ErrorKind::NonUtf8Name => "non_utf8_name",
            ErrorKind::Encode => "encode",
            ErrorKind::AspectRatio => "aspect_ratio",
        }
    }

    /// The kind stored as `name`, if it is one.
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<fruits_location::ProblemKind> for ErrorKind {
    fn from(p: fruits_location::ProblemKind) -> Self {
        use fruits_location::ProblemKind as P;
        match p {
            P::BrokenLink => ErrorKind::BrokenLink,
            P::LinkLoop => ErrorKind::LinkLoop,
            P::Unreadable => ErrorKind::Unreadable,
            P::NotAFile => ErrorKind::NotAFile,
            P::NonUtf8Name => ErrorKind::NonUtf8Name,
        }
    }
}

/// A fixed-size binary column (sha256) as lowercase hex text, nulls kept:
/// how CSV exports and DataFrames show it.
pub fn hex_column(bin: &arrow_array::FixedSizeBinaryArray) -> arrow_array::StringArray {
    bin.iter().map(|v| v.map(hex::encode)).collect()
}

/// The int8 codes of a reduced output's projection: `values` (rows of
/// `steps.len()` values) divided by each component's step and rounded,
/// clamped to +-127.
pub fn encode_int8(values: &[f32], steps: &[f32]) -> Vec<i8> {
    values
        .chunks_exact(steps.len().max(1))
        .flat_map(|row| {
            row.iter()
                .zip(steps)
                .map(|(v, s)| (v / s).round().clamp(-127.0, 127.0) as i8)
        })
        .collect()
}

/// A reduced batch as readers take it: its `pca` column of int8 codes
/// decoded to float32 (code x step); other batches unchanged.
pub fn decode_pca(
    batch: RecordBatch,
    steps: &[f32],
    path: &str,
) -> Result<RecordBatch, StoreError> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int8Type;
    let Some(index) = batch.schema().index_of(columns::PCA).ok() else {
        return Ok(batch);
    };
    let column = batch.column(index);
    let DataType::FixedSizeList(item, k) = column.data_type() else {
        return Ok(batch);
    };
    if item.data_type() != &DataType::Int8 {
        return Ok(batch);
    }
    let k = *k as usize;
    if k != steps.len() {
        return Err(StoreError::Schema {
            path: path.to_string(),
            reason: format!(
                "column `pca` holds {k} codes a row but the output's metadata has {} steps",
                steps.len()
            ),
        });
    }
    let list = column.as_fixed_size_list();
    let codes = list.values().as_primitive::<Int8Type>().values();
    let start = list.offset() * k;
    let values: Vec<f32> = codes[start..start + list.len() * k]
        .chunks_exact(k.max(1))
        .flat_map(|row| row.iter().zip(steps).map(|(c, s)| f32::from(*c) * s))
        .collect();
    let decoded = FixedSizeListArray::try_new(
        Arc::new(Field::new("item", DataType::Float32, false)),
        k as i32,
        Arc::new(Float32Array::from(values)),
        list.nulls().cloned(),
    )
    .map_err(|e| StoreError::Arrow(e.to_string()))?;
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(decoded);
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[index] = Field::new(
        columns::PCA,
        columns[index].data_type().clone(),
        fields[index].is_nullable(),
    );
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| StoreError::Arrow(e.to_string()))
}

fn float_list(name: &str, len: usize) -> Field {
    Field::new(
        name,
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float32, false)),
            len as i32,
        ),
        false,
    )
}

/// Schema of a features part with `dim`-long vectors and the colour descriptor.
pub fn features_schema(dim: usize) -> SchemaRef {
    features_schema_with_views(dim, 0)
}

/// Schema of a features part whose rows also hold `extra_views` more vectors
/// of `dim` values (the `views` column, absent when 0).
pub fn features_schema_with_views(dim: usize, extra_views: usize) -> SchemaRef {
    let mut fields = vec![
        Field::new(columns::PATH, DataType::Utf8, false),
        Field::new(columns::LABEL, DataType::Utf8, false),
        Field::new(columns::SPLIT, DataType::Utf8, true),
        Field::new(columns::SHA256, DataType::FixedSizeBinary(32), false),
        Field::new(columns::WIDTH, DataType::UInt32, false),
        Field::new(columns::HEIGHT, DataType::UInt32, false),
        float_list(columns::FEATURES, dim),
        float_list(columns::COLOUR, COLOUR_BINS),
    ];
    if extra_views > 0 {
        fields.push(float_list(columns::VIEWS, extra_views * dim));
    }
    Arc::new(Schema::new(fields))
}

/// Schema of an errors part.
pub fn errors_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(columns::PATH, DataType::Utf8, false),
        Field::new(columns::KIND, DataType::Utf8, false),
        Field::new(columns::MESSAGE, DataType::Utf8, false),
    ]))
}

/// Rows of the features table being gathered for one part, column by column.
#[derive(Debug)]
pub struct FeatureRows {
    dim: usize,
    extra_views: usize,
    path: StringBuilder,
    label: StringBuilder,
    split: StringBuilder,
    sha256: FixedSizeBinaryBuilder,
    width: UInt32Builder,
    height: UInt32Builder,
    features: Vec<f32>,
    views: Vec<f32>,
    colour: Vec<f32>,
    /// Rows gathered.
    len: usize,
}

impl FeatureRows {
    /// An empty set of rows for `dim`-long feature vectors.
    pub fn new(dim: usize) -> Self {
        Self::with_views(dim, 0)
    }

    /// An empty set of rows for `dim`-long feature vectors of the whole photo
    /// and of `extra_views` more views each.
    pub fn with_views(dim: usize, extra_views: usize) -> Self {
        FeatureRows {
            dim,
            extra_views,
            path: StringBuilder::new(),
            label: StringBuilder::new(),
            split: StringBuilder::new(),
            sha256: FixedSizeBinaryBuilder::new(32),
            width: UInt32Builder::new(),
            height: UInt32Builder::new(),
            features: Vec::new(),
            views: Vec::new(),
            colour: Vec::new(),
            len: 0,
        }
    }

    /// Appends one row. `features` must hold exactly `dim` values for each
    /// view (the whole photo first, then the extra views) and `colour`
    /// [`COLOUR_BINS`].
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
        colour: &[f32],
    ) -> Result<(), StoreError> {
        let expected = self.dim * (1 + self.extra_views);
        if features.len() != expected || colour.len() != COLOUR_BINS {
            return Err(StoreError::Arrow(format!(
                "{path}: {} feature values and {} colour values, expected {expected} and {COLOUR_BINS}",
                features.len(),
                colour.len(),
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
        let (whole, views) = features.split_at(self.dim);
        self.features.extend_from_slice(whole);
        self.views.extend_from_slice(views);
        self.colour.extend_from_slice(colour);
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
        let schema = features_schema_with_views(self.dim, self.extra_views);
        let values = Float32Array::from(std::mem::take(&mut self.features));
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        let list =
            FixedSizeListArray::try_new(item.clone(), self.dim as i32, Arc::new(values), None)
                .map_err(|e| StoreError::Arrow(e.to_string()))?;
        let colour = Float32Array::from(std::mem::take(&mut self.colour));
        let colour =
            FixedSizeListArray::try_new(item.clone(), COLOUR_BINS as i32, Arc::new(colour), None)
                .map_err(|e| StoreError::Arrow(e.to_string()))?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.path.finish()),
            Arc::new(self.label.finish()),
            Arc::new(self.split.finish()),
            Arc::new(self.sha256.finish()),
            Arc::new(self.width.finish()),
            Arc::new(self.height.finish()),
            Arc::new(list),
            Arc::new(colour),
        ];
        if self.extra_views > 0 {
            let views = Float32Array::from(std::mem::take(&mut self.views));
            let width = (self.extra_views * self.dim) as i32;
            let views = FixedSizeListArray::try_new(item, width, Arc::new(views), None)
                .map_err(|e| StoreError::Arrow(e.to_string()))?;
            columns.push(Arc::new(views));
        }
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
    pub fn push(&mut self, path: &str, kind: ErrorKind, message: &str) {
        self.path.append_value(path);
        self.kind.append_value(kind.as_str());
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float32Type;
    use arrow_array::{Array, Int8Array};

    /// int8 codes decode to within half a step of the values, clamped at
    /// +-127 steps; a batch whose code count disagrees with the steps is refused.
    #[test]
    fn int8_codes_round_trip_within_half_a_step() {
        let steps = [0.5f32, 0.01, 2.0];
        let values = [1.26f32, -0.013, 300.0, -0.24, 0.0049, -1.1];
        let codes = encode_int8(&values, &steps);
        assert_eq!(codes, [3, -1, 127, 0, 0, -1]);
        let list = FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Int8, false)),
            3,
            Arc::new(Int8Array::from(codes)),
            None,
        )
        .expect("list");
        let schema = Arc::new(Schema::new(vec![Field::new(
            columns::PCA,
            list.data_type().clone(),
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(list)]).expect("batch");
        let decoded = decode_pca(batch.clone(), &steps, "part").expect("decode");
        let column = decoded.column(0).as_fixed_size_list();
        let got = column.values().as_primitive::<Float32Type>().values();
        for (i, (g, v)) in got.iter().zip(values).enumerate() {
            let step = steps[i % 3];
            let want = v.clamp(-127.0 * step, 127.0 * step);
            assert!((g - want).abs() <= step / 2.0 + 1e-6, "{i}: {g} vs {v}");
        }
        let err = decode_pca(batch, &steps[..2], "part").expect_err("steps");
        assert!(err.to_string().contains("3 codes a row"), "{err}");
    }
}
