//! Flags shared by every command that runs the image model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use fruits_location::is_s3_url;
use fruits_model::{FeatureModel, ModelOptions, paths};

use super::storage_args::open;

/// Which of the shared models to use when `--model` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// mobilenetv2-12-dequant-fp32.onnx: the reference model.
    Fp32,
    /// mobilenetv2-12-int8.onnx: about 2.7x faster; features differ slightly.
    Int8,
}

/// Model selection and runtime flags.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// ONNX model file or s3:// object. Overrides --precision.
    #[arg(
        long,
        env = "FRUITS_MODEL",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub model: Option<String>,

    /// Which shared model to use when --model is not given.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,

    /// Model output that holds the feature vector.
    #[arg(long, default_value = "features", value_name = "NAME")]
    pub feature_output: String,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Where the shared models and ONNX Runtime are, and how many threads it uses:
/// shared by the commands that featurise and those that identify.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Folder holding the shared models [default: ../shared/models].
    #[arg(
        long,
        env = "FRUITS_MODELS_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub models_dir: Option<PathBuf>,

    /// ONNX Runtime intra-op threads [default: number of cores].
    #[arg(long, value_name = "N")]
    pub intra_threads: Option<usize>,

    /// ONNX Runtime shared library [default: found beside the binary or where
    /// scripts/setup-onnxruntime.sh installs it].
    #[arg(
        long,
        env = "FRUITS_ORT_LIB",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub ort_lib: Option<PathBuf>,
}

impl RuntimeArgs {
    /// The shared model file `name` in --models-dir.
    fn shared_model(&self, name: &str) -> String {
        let dir = self.models_dir.clone().unwrap_or_else(paths::models_dir);
        dir.join(name).display().to_string()
    }

    /// Loads the ONNX model at a path or s3:// URL with these runtime settings.
    pub fn load(&self, path: &str, feature_output: &str) -> anyhow::Result<FeatureModel> {
        load_image_model(
            path,
            feature_output,
            self.intra_threads,
            self.ort_lib.clone(),
        )
    }
}

/// Number of cores available to this process.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl ModelArgs {
    /// The model file (or s3:// object) these flags select.
    pub fn model_path(&self) -> String {
        if let Some(path) = &self.model {
            return path.clone();
        }
        self.runtime.shared_model(match self.precision {
            Precision::Fp32 => paths::FP32_MODEL,
            Precision::Int8 => paths::INT8_MODEL,
        })
    }

    /// Loads the selected model once.
    pub fn load(&self) -> anyhow::Result<FeatureModel> {
        self.runtime.load(&self.model_path(), &self.feature_output)
    }
}

/// Loads the ONNX model at a path or s3:// URL.
fn load_image_model(
    path: &str,
    feature_output: &str,
    intra_threads: Option<usize>,
    ort_lib: Option<PathBuf>,
) -> anyhow::Result<FeatureModel> {
    let options = ModelOptions {
        intra_threads: intra_threads.unwrap_or_else(cores),
        feature_output: feature_output.to_string(),
        runtime_library: ort_lib,
        ..ModelOptions::default()
    };
    let model = if is_s3_url(path) {
        // Through the storage layer: same credentials and region guard as the data.
        let bytes = open(path)?.get("").context("cannot read the image model")?;
        FeatureModel::from_bytes(&bytes, path, &options)
    } else {
        FeatureModel::load(Path::new(path), &options)
    }
    .context("cannot load the image model")?;
    tracing::info!(
        model = %path,
        sha256 = %model.info().sha256,
        runtime = ?fruits_model::runtime::loaded_from(),
        "model loaded"
    );
    Ok(model)
}

/// Flags of the commands that identify photos with a trained classifier.
#[derive(Debug, Clone, Args)]
pub struct ClassifierArgs {
    /// A classifier folder or s3:// prefix (from `fruits train`).
    #[arg(long, env = "FRUITS_CLASSIFIER", value_name = "DIR")]
    pub model: String,

    /// The ONNX image model [default: the file the classifier's features were
    /// made with, if it is still there, else the shared fp32 model]. Its sha256
    /// must be the one the classifier was trained on.
    #[arg(long, value_name = "PATH")]
    pub image_model: Option<String>,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

impl ClassifierArgs {
    /// Loads the classifier, the image model it needs and the fruit catalogue.
    pub fn load(
        &self,
        max_megapixels: f64,
    ) -> anyhow::Result<fruits_pipeline::identify::Identifier> {
        let classifier = fruits_classify::Classifier::load(&open(&self.model)?)
            .with_context(|| format!("cannot load the classifier {}", self.model))?;
        let spec = &classifier.file.features;
        let path = match &self.image_model {
            Some(p) => p.clone(),
            None if is_s3_url(&spec.model_source) || Path::new(&spec.model_source).is_file() => {
                spec.model_source.clone()
            }
            None => self.runtime.shared_model(paths::FP32_MODEL),
        };
        let model = self.runtime.load(&path, &spec.feature_output)?;
        let preprocessing = fruits_image::Preprocessing {
            max_pixels: (max_megapixels * 1e6) as u64,
            ..fruits_image::Preprocessing::default()
        };
        let catalogue = fruits_classify::Catalogue::builtin()?;
        Ok(fruits_pipeline::identify::Identifier::new(
            model,
            preprocessing,
            classifier,
            catalogue,
        )?)
    }
}
