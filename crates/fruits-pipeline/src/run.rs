//! The whole single-machine job: featurise, fit a PCA, project.
//!
//! ```text
//! OUT/features/   the features output (resumable)
//! OUT/pca/        pca.json, components.parquet, explained_variance.png, projection.png
//! OUT/reduced/    the projected rows
//! ```

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use fruits_model::FeatureModel;
use fruits_pca::{Keep, ModelFile};
use fruits_store::{Dataset, Location};

use crate::reduce::{PCA_DIR, fit_and_save, transform_dataset};
use crate::{FeaturizeConfig, PipelineError, Progress, Summary, featurize};

/// Where the features go under a run's output.
pub const FEATURES_DIR: &str = "features";
/// Where the projected rows go under a run's output.
pub const REDUCED_DIR: &str = "reduced";

/// What a whole run did.
#[derive(Debug)]
pub struct RunSummary {
    /// The featurisation.
    pub featurize: Summary,
    /// The PCA, once featurisation completed (`None` when interrupted).
    pub pca: Option<ModelFile>,
    /// Rows written to `reduced/`.
    pub reduced_rows: u64,
    /// Seconds fitting the PCA (reading the features, the fit, saving it and its plots).
    pub fit_secs: f64,
    /// Seconds projecting the features into `reduced/`.
    pub transform_secs: f64,
    /// Plots that could not be drawn (the results are complete without them).
    pub warnings: Vec<PipelineError>,
}

/// Featurises `input` into `out/features`, then (when every photo is
/// accounted for) fits a PCA keeping `keep` into `out/pca` and projects the
/// features into `out/reduced`. Interrupted (`cancel`), it stops after saving
/// the features done so far; the same call resumes.
pub fn run(
    input: &Location,
    out: &Location,
    model: &FeatureModel,
    config: &FeaturizeConfig,
    keep: Keep,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<RunSummary, PipelineError> {
    let features = out.child(FEATURES_DIR);
    let summary = featurize(input, &features, model, config, progress, cancel)?;
    if !summary.complete {
        return Ok(RunSummary {
            featurize: summary,
            pca: None,
            reduced_rows: 0,
            fit_secs: 0.0,
            transform_secs: 0.0,
            warnings: Vec::new(),
        });
    }
    let fit_started = Instant::now();
    let ds = Dataset::open(&features)?;
    let pca_dir = out.child(PCA_DIR);
    let (pca, warning) = fit_and_save(&ds, keep, &pca_dir)?;
    let transform_started = Instant::now();
    let reduced_rows = transform_dataset(&ds, &pca, &out.child(REDUCED_DIR))?;
    Ok(RunSummary {
        featurize: summary,
        pca: Some(pca),
        reduced_rows,
        fit_secs: (transform_started - fit_started).as_secs_f64(),
        transform_secs: transform_started.elapsed().as_secs_f64(),
        warnings: warning.into_iter().collect(),
    })
}
