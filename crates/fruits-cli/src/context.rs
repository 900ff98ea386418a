//! What every command needs from the global flags: how to reach storage, and
//! how to load the image model with the runtime flags.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use fruits_location::StorageOptions;
use fruits_model::{FeatureModel, ModelOptions, Precision, ThreadLayout, paths};
use fruits_store::Location;

use crate::args::{ClassifierArgs, ModelArgs, RuntimeArgs};

/// The storage options of this invocation, passed to every command.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// How to reach and guard object stores.
    pub storage: StorageOptions,
}

impl Ctx {
    /// Opens a local path or s3:// URL given on the command line.
    pub fn open(&self, spec: &str) -> anyhow::Result<Location> {
        Location::parse(spec, &self.storage).with_context(|| format!("cannot open {spec}"))
    }

    /// The bytes of the file or object `spec` (a regular file: a FIFO or a
    /// folder is refused rather than read).
    pub fn storage_get(
        &self,
        spec: &str,
    ) -> Result<fruits_location::Bytes, fruits_location::StorageError> {
        Location::parse(spec, &self.storage)?.get("")
    }
}

/// Set by Ctrl-C (SIGINT) once [`cancel_on_ctrl_c`] has installed the handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A flag set on Ctrl-C: the command stops at its next checkpoint (the
/// pipeline finishes and saves the batch in flight; training stops at the
/// next iteration, saving nothing) and exits 130; a second Ctrl-C quits at
/// once. `doing` says what happens meanwhile.
pub fn cancel_on_ctrl_c(doing: &'static str) -> anyhow::Result<&'static AtomicBool> {
    ctrlc::set_handler(move || {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(crate::EXIT_INTERRUPTED));
        }
        eprintln!("\ninterrupted: {doing}");
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(&INTERRUPTED)
}

/// Number of cores available to this process.
pub fn cores() -> usize {
    fruits_model::available_cores()
}

impl RuntimeArgs {
    /// The shared models folder.
    pub fn models_dir(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(paths::models_dir)
    }

    /// ONNX Runtime settings from these flags; `default` splits this
    /// machine's cores when neither --sessions nor --intra-threads is given
    /// ([`ThreadLayout::with_overrides`]).
    pub fn model_options(
        &self,
        feature_output: &str,
        default: fn(usize) -> ThreadLayout,
    ) -> ModelOptions {
        let cores = cores();
        let layout = default(cores).with_overrides(self.sessions, self.intra_threads, cores);
        ModelOptions {
            intra_threads: layout.intra_threads,
            sessions: layout.sessions,
            feature_output: feature_output.to_string(),
            runtime_library: self.ort_lib.clone(),
            ..ModelOptions::default()
        }
    }
}

impl ModelArgs {
    /// The model file (or s3:// object) these flags select.
    pub fn model_path(&self) -> String {
        // The flag, else FRUITS_MODEL (read by the core, as every shell reads it).
        match self.model.clone().or_else(paths::model_env) {
            Some(path) => path,
            None => Precision::from(self.precision)
                .path_in(&self.runtime.models_dir())
                .display()
                .to_string(),
        }
    }

    /// Loads the selected model once.
    pub fn load(&self, ctx: &Ctx) -> anyhow::Result<FeatureModel> {
        let options = self
            .runtime
            .model_options(&self.feature_output, ThreadLayout::throughput);
        fruits_model::load_model(&self.model_path(), &ctx.storage, &options)
            .context("cannot load the image model")
    }
}

impl ClassifierArgs {
    /// Loads the classifier, the image model it needs and the fruit catalogue.
    pub fn load(
        &self,
        ctx: &Ctx,
        max_megapixels: f64,
    ) -> anyhow::Result<fruits_identify::Identifier> {
        let options = fruits_identify::LoadOptions {
            image_model: self.image_model.clone(),
            models_dir: self.runtime.models_dir(),
            model: self
                .runtime
                .model_options(fruits_model::DEFAULT_FEATURE_OUTPUT, ThreadLayout::latency),
            limits: fruits_image::DecodeLimits::megapixels(max_megapixels),
        };
        fruits_identify::load(&ctx.open(&self.model)?, &ctx.storage, &options)
            .with_context(|| format!("cannot load the classifier {}", self.model))
    }
}
