//! Loading a model from wherever it lives: a local file or an `s3://` object,
//! through the same storage layer (credentials, region guard) as the data.

use std::path::Path;

use fruits_location::{Location, StorageOptions, is_s3_url};

use crate::{FeatureModel, ModelError, ModelOptions};

/// Loads the ONNX model at `spec`, a local path or an `s3://bucket/key` URL.
pub fn load_model(
    spec: &str,
    storage: &StorageOptions,
    options: &ModelOptions,
) -> Result<FeatureModel, ModelError> {
    let model = if is_s3_url(spec) {
        let bytes = Location::parse(spec, storage)?.get("")?;
        FeatureModel::from_bytes(&bytes, spec, options)?
    } else {
        FeatureModel::load(Path::new(spec), options)?
    };
    tracing::info!(
        model = %spec,
        sha256 = %model.info().sha256,
        runtime = ?crate::runtime::loaded_from(),
        "model loaded"
    );
    Ok(model)
}
