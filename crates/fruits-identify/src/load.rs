//! Loading an [`Identifier`] from a classifier bundle, wherever it runs.

use std::path::{Path, PathBuf};

use fruits_bundle::Classifier;
use fruits_catalogue::Catalogue;
use fruits_contract::FeatureSpec;
use fruits_image::DecodeLimits;
use fruits_location::{Location, StorageOptions, is_s3_url};
use fruits_model::{ModelOptions, paths};

use crate::{Identifier, IdentifyError};

/// How to load an [`Identifier`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The image model to use (a path or `s3://` URL) instead of finding it.
    pub image_model: Option<String>,
    /// The folder searched for the image model the bundle needs.
    pub models_dir: PathBuf,
    /// ONNX Runtime settings; the feature output comes from the bundle.
    pub model: ModelOptions,
    /// Guards applied to every photo before decoding.
    pub limits: DecodeLimits,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            image_model: None,
            models_dir: paths::models_dir(),
            model: ModelOptions::default(),
            limits: DecodeLimits::default(),
        }
    }
}

/// Loads the classifier bundle at `bundle`, the image model it was trained
/// with and the fruit catalogue, and checks they agree.
///
/// Without [`LoadOptions::image_model`], the model is the file whose sha256 the
/// bundle records: the path it was trained with if that file is still there,
/// else a file of the same name, else any `.onnx` file with that sha256, in
/// [`LoadOptions::models_dir`], the user's cache (`~/.cache/fruits/models`)
/// and `../shared/models` beside the working directory or the executable
/// ([`paths::model_search_dirs`]). So a bundle trained in one folder serves
/// from another, and a renamed model file is still found.
pub fn load(
    bundle: &Location,
    storage: &StorageOptions,
    options: &LoadOptions,
) -> Result<Identifier, IdentifyError> {
    with_classifier(Classifier::load(bundle)?, storage, options)
}

/// Like [`load`], for a classifier already in memory (just trained, in Python).
pub fn with_classifier(
    classifier: Classifier,
    storage: &StorageOptions,
    options: &LoadOptions,
) -> Result<Identifier, IdentifyError> {
    let spec = &classifier.file.features;
    let path = match &options.image_model {
        Some(path) => path.clone(),
        None => find_image_model(spec, &options.models_dir)?,
    };
    let model_options = ModelOptions {
        feature_output: spec.feature_output.clone(),
        ..options.model.clone()
    };
    let model = fruits_model::load_model(&path, storage, &model_options)?;
    let catalogue = Catalogue::builtin()?;
    let preprocessing = spec.preprocessing.clone();
    Identifier::new(model, preprocessing, options.limits, classifier, catalogue)
}

/// The image model file whose sha256 is `spec.model_sha256`.
fn find_image_model(spec: &FeatureSpec, models_dir: &Path) -> Result<String, IdentifyError> {
    if is_s3_url(&spec.model_source) {
        // Read through the storage layer; its hash is checked once loaded.
        return Ok(spec.model_source.clone());
    }
    let recorded = Path::new(&spec.model_source);
    let mut candidates = vec![recorded.to_path_buf()];
    for dir in paths::model_search_dirs(models_dir) {
        if let Some(name) = recorded.file_name() {
            candidates.push(dir.join(name));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            let mut others: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
                })
                .collect();
            others.sort();
            candidates.extend(others);
        }
    }
    let mut tried = Vec::new();
    for candidate in candidates {
        let shown = candidate.display().to_string();
        if tried.contains(&shown) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&candidate)
            && fruits_model::sha256_hex(&bytes) == spec.model_sha256
        {
            tracing::debug!(model = %shown, "image model found by sha256");
            return Ok(shown);
        }
        tried.push(shown);
    }
    Err(IdentifyError::ImageModelNotFound {
        sha256: spec.model_sha256.clone(),
        recorded: spec.model_source.clone(),
        tried,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: &str, sha256: &str) -> FeatureSpec {
        FeatureSpec {
            model_sha256: sha256.into(),
            model_source: source.into(),
            feature_output: "features".into(),
            feature_dim: 4,
            input_size: 224,
            preprocessing: fruits_image::Preprocessing::default(),
            colour_bins: fruits_image::COLOUR_BINS,
        }
    }

    #[test]
    fn the_image_model_is_found_by_its_hash_wherever_the_bundle_moved() -> Result<(), IdentifyError>
    {
        let dir = tempfile::tempdir().map_err(|e| IdentifyError::Internal(e.to_string()))?;
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes)
                .map_err(|e| IdentifyError::Internal(e.to_string()))
        };
        write("a.onnx", b"model a")?;
        write("renamed.onnx", b"model b")?;
        let sha_b = fruits_model::sha256_hex(b"model b");
        // Trained elsewhere: the recorded path no longer exists, the name differs.
        let found = find_image_model(&spec("../gone/b.onnx", &sha_b), dir.path())?;
        assert!(found.ends_with("renamed.onnx"), "{found}");
        // The recorded file itself, when it is still there with that hash.
        let recorded = dir.path().join("a.onnx").display().to_string();
        let sha_a = fruits_model::sha256_hex(b"model a");
        assert_eq!(
            find_image_model(&spec(&recorded, &sha_a), dir.path())?,
            recorded
        );
        // No file with the hash: every place tried is named.
        let err = find_image_model(&spec("../gone/c.onnx", &"0".repeat(64)), dir.path())
            .expect_err("no such model");
        let text = err.to_string();
        assert!(
            matches!(err, IdentifyError::ImageModelNotFound { .. })
                && text.contains("a.onnx")
                && text.contains("renamed.onnx"),
            "{text}"
        );
        Ok(())
    }
}
