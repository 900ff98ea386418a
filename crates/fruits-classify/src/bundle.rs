//! The classifier on disk: everything needed from a feature vector to a label.
//!
//! ```text
//! classifier/classifier.json   format, the feature model it expects (sha256, source,
//!                              output, size, preprocessing), the PCA's fingerprint,
//!                              scaler, weights, class names, how it was trained
//! classifier/pca/              the PCA it projects with (as `fruits pca fit` writes
//!                              it), absent when trained on raw features
//! ```
//!
//! `classifier.json` is written last, so a folder holding it is complete.

use bytes::Bytes;
use fruits_location::Location;
use fruits_pca::PcaModel;
use fruits_store::{DatasetMeta, FeatureSpec};
use serde::{Deserialize, Serialize};

use crate::{ClassifyError, SoftmaxModel, TrainReport};

/// Name of the classifier file inside the bundle.
pub const CLASSIFIER_FILE: &str = "classifier.json";
/// Folder of the bundled PCA.
pub const PCA_DIR: &str = "pca";

/// How the classifier was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The dataset it was trained on.
    pub source: String,
    /// The split it was trained on (empty: every row).
    pub split: String,
    /// Inverse regularisation strength.
    pub c: f64,
    /// What the optimiser reported.
    pub report: TrainReport,
    /// How C was chosen by cross-validation on the training rows (absent when
    /// it was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv: Option<crate::CvReport>,
    /// Training rows that were augmented copies (`--augment`, `fruits
    /// augment`): 0 for a classifier that has only seen photos as taken in the
    /// studio, which scores far lower on photos taken in the wild.
    #[serde(default)]
    pub augmented_rows: u64,
}

/// The PCA step as `classifier.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaStep {
    /// [`PcaModel::fingerprint`] of the bundled PCA.
    pub fingerprint: String,
    /// Components kept.
    pub k: usize,
    /// Share of the variance they keep.
    pub variance_kept: f64,
}

/// Contents of `classifier.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierFile {
    /// Layout version.
    pub format_version: u32,
    /// Version of the tool that trained it.
    pub tool_version: String,
    /// The image features it expects (before its PCA).
    pub features: FeatureSpec,
    /// The PCA applied to them first, if any.
    pub pca: Option<PcaStep>,
    /// The softmax regression.
    pub model: SoftmaxModel,
    /// How it was trained.
    pub training: TrainingInfo,
    /// Values of the photo's colour descriptor appended after the (PCA of
    /// the) features; 0 when it uses none (bundles from before colour cues).
    #[serde(default)]
    pub colour_bins: usize,
    /// Below this confidence (top probability) the app answers "not sure"
    /// instead of a name: set by `fruits train --abstain-below` or `fruits
    /// evaluate --save-threshold` (the threshold that earns the most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstain_below: Option<f32>,
}

/// A loaded classifier: features in, class probabilities out.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// What `classifier.json` holds.
    pub file: ClassifierFile,
    /// The PCA, when the file names one.
    pub pca: Option<PcaModel>,
}

/// Which vectors a dataset holds, relative to a classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Image features: the classifier applies its PCA first.
    Features,
    /// Rows already projected by the classifier's own PCA.
    Reduced,
}

fn file_err(dir: &Location, file: &str) -> impl Fn(String) -> ClassifyError {
    let path = dir.describe(file);
    move |message| ClassifyError::File {
        path: path.clone(),
        message,
    }
}

impl Classifier {
    /// Bundles a trained model with the PCA it was trained behind.
    pub fn new(
        features: FeatureSpec,
        pca: Option<PcaModel>,
        model: SoftmaxModel,
        training: TrainingInfo,
    ) -> Classifier {
        let step = pca.as_ref().map(|p| PcaStep {
            fingerprint: p.fingerprint(),
            k: p.k,
            variance_kept: p.variance_kept(),
        });
        Classifier {
            file: ClassifierFile {
                format_version: 1,
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                features,
                pca: step,
                model,
                training,
                colour_bins: 0,
                abstain_below: None,
            },
            pca,
        }
    }

    /// The same classifier, recorded as taking `bins` colour values after the features.
    pub fn with_colour(mut self, bins: usize) -> Classifier {
        self.file.colour_bins = bins;
        self
    }

    /// Class names, in index order.
    pub fn classes(&self) -> &[String] {
        &self.file.model.classes
    }

    /// Whether an answer of confidence `probability` is too unsure to give.
    pub fn abstains(&self, probability: f32) -> bool {
        self.file.abstain_below.is_some_and(|t| probability < t)
    }

    /// Writes the bundle into folder (or S3 prefix) `dir`.
    pub fn save(&self, dir: &Location) -> Result<(), ClassifyError> {
        if let Some(pca) = &self.pca {
            fruits_pca::save(
                &dir.child(PCA_DIR),
                pca,
                &self.file.features.model_sha256,
                &self.file.training.source,
            )?;
        }
        let err = file_err(dir, CLASSIFIER_FILE);
        let text = serde_json::to_vec(&self.file).map_err(|e| err(e.to_string()))?;
        dir.put(CLASSIFIER_FILE, Bytes::from(text))?;
        Ok(())
    }

    /// Reads a bundle written by [`save`](Self::save), checking its parts agree.
    pub fn load(dir: &Location) -> Result<Classifier, ClassifyError> {
        let err = file_err(dir, CLASSIFIER_FILE);
        let text = dir
            .get(CLASSIFIER_FILE)
            .map_err(|e| err(format!("{e} (is this a folder written by `fruits train`?)")))?;
        let file: ClassifierFile = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
        if file.format_version != 1 {
            return Err(err(format!(
                "format version {} is not supported by this fruits (1)",
                file.format_version
            )));
        }
        let m = &file.model;
        if m.weights.len() != m.classes.len() * m.d
            || m.bias.len() != m.classes.len()
            || m.scaler.mean.len() != m.d
            || m.scaler.scale.len() != m.d
        {
            return Err(err("weights, bias and scaler sizes disagree".into()));
        }
        // A zero or non-finite scale divides by zero; non-finite weights make
        // every probability NaN. Either would serve wrong answers silently.
        if m.scaler.scale.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || m.scaler.mean.iter().any(|v| !v.is_finite())
        {
            return Err(err(
                "the scaler has a zero, negative or non-finite value (a damaged or edited file)"
                    .into(),
            ));
        }
        if m.weights.iter().chain(&m.bias).any(|w| !w.is_finite()) {
            return Err(err(
                "the weights hold NaN or infinite values (a damaged or edited file)".into(),
            ));
        }
        let colour = file.colour_bins;
        let pca = match &file.pca {
            None => {
                if m.d != file.features.feature_dim + colour {
                    return Err(err(format!(
                        "the model takes {} values but the features have {} and the colour {colour}",
                        m.d, file.features.feature_dim
                    )));
                }
                None
            }
            Some(step) => {
                let pca = fruits_pca::load(&dir.child(PCA_DIR))?.model;
                if pca.fingerprint() != step.fingerprint || pca.k + colour != m.d {
                    return Err(err(format!(
                        "the bundled PCA ({}, k = {}) and {colour} colour values are not what it was \
                         trained with ({}, {} values)",
                        pca.fingerprint(),
                        pca.k,
                        step.fingerprint,
                        m.d
                    )));
                }
                Some(pca)
            }
        };
        Ok(Classifier { file, pca })
    }

    /// Decides how to read the rows of a dataset described by `data`, or
    /// explains why they do not fit this classifier.
    pub fn input_kind(&self, data: &DatasetMeta) -> Result<InputKind, ClassifyError> {
        let spec = &self.file.features;
        if data.spec.model_sha256 != spec.model_sha256 {
            return Err(ClassifyError::WrongImageModel {
                data: data.spec.model_sha256.clone(),
                expected: spec.model_sha256.clone(),
                source_hint: spec.model_source.clone(),
            });
        }
        if self.file.colour_bins > 0 && data.spec.colour_bins != self.file.colour_bins {
            return Err(ClassifyError::NoColour {
                expected: self.file.colour_bins,
                data: data.spec.colour_bins,
            });
        }
        // Compared without the colour descriptor: a classifier that uses none
        // reads data that has one, and the check above covers the others.
        let data_spec = FeatureSpec {
            colour_bins: spec.colour_bins,
            ..data.spec.clone()
        };
        let Some(fingerprint) = &data.pca_fingerprint else {
            if !spec.same_features(&data_spec) {
                let describe = |f: &FeatureSpec| {
                    format!(
                        "output {:?} of {} values from {}x{} inputs, {}",
                        f.feature_output,
                        f.feature_dim,
                        f.input_size,
                        f.input_size,
                        f.preprocessing.describe()
                    )
                };
                return Err(ClassifyError::WrongFeatures {
                    data: describe(&data.spec),
                    expected: describe(spec),
                });
            }
            return Ok(InputKind::Features);
        };
        match &self.file.pca {
            Some(step) if &step.fingerprint == fingerprint => Ok(InputKind::Reduced),
            step => Err(ClassifyError::WrongPca {
                data: fingerprint.clone(),
                expected: step.as_ref().map(|s| s.fingerprint.clone()),
            }),
        }
    }

    /// Class probabilities (`n x classes`) for rows of image features and
    /// their colour descriptors (`n x colour_bins`; empty when it uses none).
    pub fn proba_from_features(
        &self,
        features: &[f32],
        colour: &[f32],
    ) -> Result<Vec<f32>, ClassifyError> {
        match &self.pca {
            Some(pca) => self.proba(&pca.transform(features)?, colour, InputKind::Reduced),
            None => self.proba(features, colour, InputKind::Reduced),
        }
    }

    /// Class probabilities for rows of `kind` and their colour descriptors
    /// (empty when it uses none).
    pub fn proba(
        &self,
        rows: &[f32],
        colour: &[f32],
        kind: InputKind,
    ) -> Result<Vec<f32>, ClassifyError> {
        if kind == InputKind::Features {
            return self.proba_from_features(rows, colour);
        }
        let bins = self.file.colour_bins;
        if bins == 0 {
            return self.file.model.predict_proba(rows);
        }
        let d = self.file.model.d - bins;
        let n = rows.len() / d.max(1);
        if colour.len() != n * bins || rows.len() != n * d {
            return Err(ClassifyError::NoColour {
                expected: bins,
                data: colour.len() / n.max(1),
            });
        }
        self.file
            .model
            .predict_proba(&append_columns(rows, d, colour, bins))
    }
}

/// Rows of `a` (`da` values each) followed by the rows of `b` (`db` each).
pub fn append_columns(a: &[f32], da: usize, b: &[f32], db: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    for (x, y) in a.chunks_exact(da.max(1)).zip(b.chunks_exact(db.max(1))) {
        out.extend_from_slice(x);
        out.extend_from_slice(y);
    }
    out
}
