//! The PCA model on disk: portable, readable from Python without this project.
//!
//! ```text
//! out/pca/pca.json            n, d, k, keep, mean, explained variance (+ ratio) of all d
//!                             components, the features' model sha256, the source, and
//!                             the name of the components file
//! out/pca/components.parquet  k rows: component (u32), explained_variance (f64),
//!                             explained_variance_ratio (f64), loadings (FixedSizeList<f64, d>)
//!   or components.npy         the k x d loadings as a NumPy array (f64, C order): how a
//!                             classifier bundle stores its PCA, so that reading one links
//!                             no Parquet
//! ```
//!
//! In Python: `json.load(open("pca.json"))` and
//! `np.stack(pq.read_table("components.parquet")["loadings"].to_numpy(zero_copy_only=False))`
//! (or `np.load("components.npy")`); then `(X - mean) @ components.T`
//! reproduces `fruits pca transform`.

use bytes::Bytes;
use fruits_location::Location;
use serde::{Deserialize, Serialize};

use crate::{PcaError, PcaModel};

/// Metadata file name.
pub const MODEL_FILE: &str = "pca.json";
/// Components file name of the Parquet layout (`fruits pca fit`, `fruits run`).
pub const COMPONENTS_FILE: &str = "components.parquet";
/// Components file name of the NumPy layout (classifier bundles).
pub const COMPONENTS_NPY: &str = "components.npy";

fn parquet_components() -> String {
    COMPONENTS_FILE.to_string()
}

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
    /// The file beside it holding the components: [`COMPONENTS_FILE`] (the
    /// default, and what files written before the NumPy layout hold) or
    /// [`COMPONENTS_NPY`].
    #[serde(default = "parquet_components")]
    pub components_file: String,
    /// The model; `components` is stored in the components file and empty here.
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

/// Writes the model into folder (or S3 prefix) `dir`, its components as
/// Parquet ([`COMPONENTS_FILE`]): the layout of a run's `pca/` output.
#[cfg(feature = "parquet")]
pub fn save(
    dir: &Location,
    model: &PcaModel,
    features_model_sha256: &str,
    source: &str,
) -> Result<(), PcaError> {
    let bytes = parquet_io::components_bytes(dir, model)?;
    dir.put(COMPONENTS_FILE, bytes)
        .map_err(storage_err(dir, COMPONENTS_FILE))?;
    write_meta(dir, model, features_model_sha256, source, COMPONENTS_FILE)
}

/// Writes the model into folder (or S3 prefix) `dir`, its components as a
/// NumPy array ([`COMPONENTS_NPY`]): the layout of a classifier bundle's PCA.
pub fn save_npy(
    dir: &Location,
    model: &PcaModel,
    features_model_sha256: &str,
    source: &str,
) -> Result<(), PcaError> {
    use npyz::WriterBuilder;
    let err = file_err(dir, COMPONENTS_NPY);
    let mut bytes = Vec::with_capacity(128 + model.components.len() * 8);
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[model.k as u64, model.d as u64])
        .writer(&mut bytes)
        .begin_nd()
        .map_err(|e| err(e.to_string()))?;
    writer
        .extend(model.components.iter().copied())
        .map_err(|e| err(e.to_string()))?;
    writer.finish().map_err(|e| err(e.to_string()))?;
    dir.put(COMPONENTS_NPY, Bytes::from(bytes))
        .map_err(storage_err(dir, COMPONENTS_NPY))?;
    write_meta(dir, model, features_model_sha256, source, COMPONENTS_NPY)
}

/// Writes `pca.json`, last: a folder with it is a complete model.
fn write_meta(
    dir: &Location,
    model: &PcaModel,
    features_model_sha256: &str,
    source: &str,
    components_file: &str,
) -> Result<(), PcaError> {
    let meta = ModelFile {
        format_version: 1,
        features_model_sha256: features_model_sha256.to_string(),
        source: source.to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        covariance_denominator: "n - 1".into(),
        components_file: components_file.to_string(),
        model: PcaModel {
            components: Vec::new(),
            ..model.clone()
        },
    };
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

/// Reads a model written by [`save`] or [`save_npy`].
pub fn load(dir: &Location) -> Result<ModelFile, PcaError> {
    let err = file_err(dir, MODEL_FILE);
    let text = dir.get(MODEL_FILE).map_err(storage_err(dir, MODEL_FILE))?;
    let mut meta: ModelFile = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
    let name = meta.components_file.clone();
    let err = file_err(dir, &name);
    let components = match name.as_str() {
        COMPONENTS_NPY => {
            let bytes = dir.get(&name).map_err(storage_err(dir, &name))?;
            let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| err(e.to_string()))?;
            let shape = npy.shape().to_vec();
            if shape != [meta.model.k as u64, meta.model.d as u64] {
                return Err(err(format!(
                    "holds an array of shape {shape:?}, expected k x d = [{}, {}]",
                    meta.model.k, meta.model.d
                )));
            }
            npy.into_vec::<f64>().map_err(|e| err(e.to_string()))?
        }
        #[cfg(feature = "parquet")]
        COMPONENTS_FILE => {
            let bytes = dir.get(&name).map_err(storage_err(dir, &name))?;
            parquet_io::read_components(bytes, meta.model.d, &err)?
        }
        #[cfg(not(feature = "parquet"))]
        COMPONENTS_FILE => {
            return Err(err(
                "components stored as Parquet (a PCA written by `fruits pca fit` or a classifier \
                 bundle of format 1): this build reads them only with its `parquet` feature; \
                 load the bundle once with the `fruits` binary and save it again"
                    .into(),
            ));
        }
        other => {
            return Err(err(format!(
                "names components file {other:?}, which this version does not know"
            )));
        }
    };
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

/// The Parquet layout of the components, behind the `parquet` feature.
#[cfg(feature = "parquet")]
mod parquet_io {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use arrow_array::{
        Array, ArrayRef, FixedSizeListArray, Float64Array, RecordBatch, UInt32Array,
    };
    use arrow_schema::{DataType, Field, Schema};
    use bytes::Bytes;
    use fruits_location::Location;
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::{COMPONENTS_FILE, file_err};
    use crate::{PcaError, PcaModel};

    /// The components as one Parquet file's bytes.
    pub(super) fn components_bytes(dir: &Location, model: &PcaModel) -> Result<Bytes, PcaError> {
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
        let batch =
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| err(e.to_string()))?;
        let mut writer =
            ArrowWriter::try_new(Vec::new(), schema, None).map_err(|e| err(e.to_string()))?;
        writer.write(&batch).map_err(|e| err(e.to_string()))?;
        let bytes = writer.into_inner().map_err(|e| err(e.to_string()))?;
        Ok(Bytes::from(bytes))
    }

    /// The `loadings` column of a components file, row after row.
    pub(super) fn read_components(
        bytes: Bytes,
        d: usize,
        err: &impl Fn(String) -> PcaError,
    ) -> Result<Vec<f64>, PcaError> {
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
            let start = list.offset() * d;
            components.extend_from_slice(&values.values()[start..start + list.len() * d]);
        }
        Ok(components)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Keep, PcaStats, fit};

    /// A small fitted model and an empty folder to save it in.
    fn fitted() -> (PcaModel, tempfile::TempDir, Location) {
        let mut s = PcaStats::new(3);
        s.update(&[1.0, 2.0, 3.0, 2.0, 1.0, 0.0, 5.0, 5.0, 1.0, 0.0, 0.5, 2.0])
            .expect("update");
        let m = fit(&s, Keep::K(2)).expect("fit");
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = Location::local_path(tmp.path());
        (m, tmp, dir)
    }

    #[test]
    fn npy_save_then_load() {
        let (m, tmp, dir) = fitted();
        save_npy(&dir, &m, "abc", "features/").expect("save");
        assert!(tmp.path().join(COMPONENTS_NPY).exists());
        assert!(!tmp.path().join(COMPONENTS_FILE).exists());
        let back = load(&dir).expect("load");
        assert_eq!(back.model, m);
        // A components file of the wrong shape is refused, not misread.
        let mut other = m.clone();
        other.k = 1;
        other.components.truncate(3);
        save_npy(&dir.child("one"), &other, "abc", "x").expect("save");
        std::fs::copy(
            tmp.path().join("one").join(COMPONENTS_NPY),
            tmp.path().join(COMPONENTS_NPY),
        )
        .expect("copy");
        let err = load(&dir).expect_err("shape");
        assert!(err.to_string().contains("shape [1, 3]"), "{err}");
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn save_then_load() {
        let (m, _tmp, dir) = fitted();
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
