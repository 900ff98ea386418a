//! The classifier on disk: everything needed from a feature vector to a label.
//!
//! ```text
//! classifier/classifier.json   format, the feature model it expects (sha256, source,
//!                              output, size, preprocessing), the PCA's fingerprint,
//!                              scaler, weights, class names, how it was trained, and
//!                              the studio head with its gate when trained with copies
//! classifier/pca-<fingerprint>/ the PCA it projects with: pca.json and its components
//!                              as components.npy (format 2); absent when trained on
//!                              raw features
//! ```
//!
//! Format 1 bundles (and those written before the PCA folder was named
//! after its fingerprint, `pca/`) stored the components as Parquet: they
//! still load when the `parquet` feature is on (the `fruits` binary, the
//! Python package), and saving one writes format 2.
//!
//! `classifier.json` is written last and names the PCA folder, so saving into
//! a folder that holds a bundle switches from the old bundle to the new one in
//! one atomic write: a save killed before it leaves the old bundle whole (its
//! PCA folder is another one), and the old folder is removed after it.

use bytes::Bytes;
use fruits_contract::{FeatureSpec, View};
use fruits_learn::{CvReport, LearnError, SoftmaxModel, TrainReport};
use fruits_location::Location;
use fruits_pca::PcaModel;
use serde::{Deserialize, Serialize};

use crate::BundleError;

/// The bundle layout this version writes: 2 stores the PCA's components as
/// NumPy (`components.npy`), 1 stored them as Parquet.
pub const FORMAT_VERSION: u32 = 2;

/// Name of the classifier file inside the bundle.
pub const CLASSIFIER_FILE: &str = "classifier.json";
/// Folder of the bundled PCA in bundles written before the folder was named
/// after the PCA's fingerprint.
pub const PCA_DIR: &str = "pca";

fn legacy_pca_dir() -> String {
    PCA_DIR.to_string()
}

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
    pub cv: Option<CvReport>,
    /// Training rows that were augmented copies (`--augment`, `fruits
    /// augment`): 0 for a classifier that has only seen photos as taken in the
    /// studio, which scores far lower on photos taken in the wild.
    #[serde(default)]
    pub augmented_rows: u64,
}

/// Class names of the studio gate, in index order.
pub const GATE_CLASSES: [&str; 2] = ["studio", "wild"];
/// Default studio probability from which the gate sends a photo to the studio
/// head. High on purpose: the studio head is confidently wrong on photos in the
/// wild, while the main head loses little on studio photos, so a doubtful
/// photo goes to the main head.
pub const DEFAULT_MIN_STUDIO: f32 = 0.9;

/// A second head for photos as taken in the studio (the fruit alone on plain
/// white), chosen photo by photo by a gate.
///
/// A linear head on frozen MobileNetV2 features cannot be best at both kinds
/// of photo at once: trained with augmented copies ("in the wild") it loses
/// about a point on studio photos. So a classifier trained with copies keeps
/// the main head (originals and copies) for photos in the wild, and this head,
/// trained on the originals alone, for studio photos; the gate, a two-class
/// softmax on the same inputs trained to tell originals from copies, decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudioHead {
    /// Two classes, [`GATE_CLASSES`]: is the photo as taken in the studio?
    pub gate: SoftmaxModel,
    /// Photos whose studio probability is at least this go to [`model`](Self::model).
    pub min_studio: f32,
    /// The classifier for studio photos, trained on the original photos alone.
    pub model: SoftmaxModel,
    /// The studio head's own PCA, fitted on the studio photos alone (absent:
    /// it takes the main head's inputs). The main head, trained mostly for
    /// photos in the wild, may use another PCA or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pca: Option<PcaStep>,
}

/// Prefix of the folder of a studio head's own PCA.
pub const STUDIO_PCA_DIR: &str = "studio-pca";

/// The PCA step as `classifier.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaStep {
    /// [`PcaModel::fingerprint`] of the bundled PCA.
    pub fingerprint: String,
    /// Components kept.
    pub k: usize,
    /// Share of the variance they keep.
    pub variance_kept: f64,
    /// The folder, inside the bundle, holding the PCA.
    #[serde(default = "legacy_pca_dir")]
    pub dir: String,
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
    /// The studio head and its gate, for a classifier trained with augmented
    /// copies or real photos beside studio ones (absent: [`model`](Self::model)
    /// answers for every photo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio: Option<StudioHead>,
    /// The views of a photo whose probabilities the main head averages
    /// (test-time augmentation), the whole photo first; empty: the whole
    /// photo alone. A photo the gate sends to the studio head is scored on
    /// the whole photo alone, as that head was trained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<View>,
    /// Where the training rows came from (empty in bundles from before
    /// training took several outputs: `training.source` says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TrainingSource>,
}

/// One output a classifier was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSource {
    /// Where it was read from.
    pub location: String,
    /// Rows (photos) taken from it.
    pub rows: u64,
    /// Whether its photos are real photos (shops, kitchens, orchards) rather
    /// than studio ones: they train the main head, never the studio head.
    pub real: bool,
    /// Rows of it that were augmented copies.
    pub augmented_rows: u64,
    /// Views of each photo it held (1: the whole photo alone).
    pub views: usize,
}

/// A loaded classifier: features in, class probabilities out.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// What `classifier.json` holds.
    pub file: ClassifierFile,
    /// The PCA, when the file names one.
    pub pca: Option<PcaModel>,
    /// The studio head's own PCA, when it has one.
    pub studio_pca: Option<PcaModel>,
}

impl PcaStep {
    /// The step recording `pca`, saved in the folder `{prefix}-{fingerprint}`.
    pub fn of(pca: &PcaModel, prefix: &str) -> PcaStep {
        PcaStep {
            fingerprint: pca.fingerprint(),
            k: pca.k,
            variance_kept: pca.variance_kept(),
            dir: format!("{prefix}-{}", pca.fingerprint()),
        }
    }
}

/// Which vectors a dataset holds, relative to a classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Image features: the classifier applies its PCA first.
    Features,
    /// Rows already projected by the classifier's own PCA.
    Reduced,
}

fn file_err(dir: &Location, file: &str) -> impl Fn(String) -> BundleError {
    let path = dir.describe(file);
    move |message| BundleError::File {
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
        let step = pca.as_ref().map(|p| PcaStep::of(p, PCA_DIR));
        Classifier {
            file: ClassifierFile {
                format_version: FORMAT_VERSION,
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                features,
                pca: step,
                model,
                training,
                colour_bins: 0,
                abstain_below: None,
                studio: None,
                views: Vec::new(),
                sources: Vec::new(),
            },
            pca,
            studio_pca: None,
        }
    }

    /// The same classifier, recorded as taking `bins` colour values after the features.
    pub fn with_colour(mut self, bins: usize) -> Classifier {
        self.file.colour_bins = bins;
        self
    }

    /// The same classifier, with a studio head and gate ([`StudioHead`]),
    /// and the studio head's own PCA when it has one.
    pub fn with_studio_head(mut self, mut head: StudioHead, pca: Option<PcaModel>) -> Classifier {
        head.pca = pca.as_ref().map(|p| PcaStep::of(p, STUDIO_PCA_DIR));
        self.file.studio = Some(head);
        self.studio_pca = pca;
        self
    }

    /// The same classifier, averaging its main head over `views` of a photo.
    pub fn with_views(mut self, views: Vec<View>) -> Classifier {
        self.file.views = views;
        self
    }

    /// The views of a photo this classifier scores: [`ClassifierFile::views`],
    /// or the whole photo alone.
    pub fn views(&self) -> Vec<View> {
        if self.file.views.is_empty() {
            vec![View::WHOLE]
        } else {
            self.file.views.clone()
        }
    }

    /// Class names, in index order.
    pub fn classes(&self) -> &[String] {
        &self.file.model.classes
    }

    /// Whether an answer of confidence `probability` is too unsure to give.
    pub fn abstains(&self, probability: f32) -> bool {
        self.file.abstain_below.is_some_and(|t| probability < t)
    }

    /// Writes the bundle into folder (or S3 prefix) `dir`, replacing any
    /// bundle there in one atomic step: the PCA goes to its own folder first,
    /// then `classifier.json` (one atomic put) names it, then the PCA folders
    /// no longer named (and temporary files of a killed save) are removed.
    pub fn save(&self, dir: &Location) -> Result<(), BundleError> {
        dir.sweep_temporary_files()?;
        let studio_step = self.file.studio.as_ref().and_then(|h| h.pca.as_ref());
        for (pca, step) in [
            (&self.pca, self.file.pca.as_ref()),
            (&self.studio_pca, studio_step),
        ] {
            if let (Some(pca), Some(step)) = (pca, step) {
                fruits_pca::save_npy(
                    &dir.child(&step.dir),
                    pca,
                    &self.file.features.model_sha256,
                    &self.file.training.source,
                )?;
            }
        }
        let err = file_err(dir, CLASSIFIER_FILE);
        // Always the current format: a loaded format-1 bundle saved again is
        // written as this version writes bundles.
        let file = ClassifierFile {
            format_version: FORMAT_VERSION,
            ..self.file.clone()
        };
        let text = serde_json::to_vec(&file).map_err(|e| err(e.to_string()))?;
        dir.put(CLASSIFIER_FILE, Bytes::from(text))?;
        let current = [
            self.file.pca.as_ref().map(|s| s.dir.as_str()),
            studio_step.map(|s| s.dir.as_str()),
        ];
        let mut stale = std::collections::BTreeSet::new();
        for file in dir.list_files()? {
            let top = file.rel.split('/').next().unwrap_or_default();
            let is_pca = top == PCA_DIR
                || top.starts_with(&format!("{PCA_DIR}-"))
                || top.starts_with(&format!("{STUDIO_PCA_DIR}-"));
            if is_pca && file.rel.contains('/') && !current.contains(&Some(top)) {
                dir.delete(&file.rel)?;
                stale.insert(top.to_string());
            } else if is_pca
                && file
                    .rel
                    .ends_with(&format!("/{}", fruits_pca::COMPONENTS_FILE))
            {
                // A format-1 PCA saved again in its own folder: its Parquet
                // components are no longer named by its pca.json.
                dir.delete(&file.rel)?;
            }
        }
        for folder in stale {
            dir.child(&folder).remove_empty_folder();
        }
        Ok(())
    }

    /// Reads a bundle written by [`save`](Self::save) (format 2) or by an
    /// earlier version (format 1), checking its parts agree.
    pub fn load(dir: &Location) -> Result<Classifier, BundleError> {
        let err = file_err(dir, CLASSIFIER_FILE);
        let text = dir
            .get(CLASSIFIER_FILE)
            .map_err(|e| err(format!("{e} (is this a folder written by `fruits train`?)")))?;
        let file: ClassifierFile = serde_json::from_slice(&text).map_err(|e| err(e.to_string()))?;
        if !(1..=FORMAT_VERSION).contains(&file.format_version) {
            return Err(err(format!(
                "format version {} is not supported by this fruits (1 to {FORMAT_VERSION}): \
                 it was written by a newer version",
                file.format_version
            )));
        }
        check_model(&file.model, &err)?;
        let mut studio_pca = None;
        if let Some(head) = &file.studio {
            check_model(&head.gate, &err)?;
            check_model(&head.model, &err)?;
            let m = &file.model;
            let head_inputs = match &head.pca {
                Some(step) => {
                    let pca = load_pca(dir, step, &file.features, &err)?;
                    let d = pca.k + file.colour_bins;
                    studio_pca = Some(pca);
                    d
                }
                None => m.d,
            };
            if head.gate.classes != GATE_CLASSES
                || head.gate.d != m.d
                || head.model.d != head_inputs
                || head.model.classes != m.classes
                || !(0.0..=1.0).contains(&head.min_studio)
            {
                return Err(err(
                    "the studio head or its gate does not match the main model (classes, \
                     inputs or threshold)"
                        .into(),
                ));
            }
        }
        if file.views.first().is_some_and(|v| *v != View::WHOLE) {
            return Err(err(
                "its views do not start with the whole photo (a damaged or edited file)".into(),
            ));
        }
        let m = &file.model;
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
                let pca = load_pca(dir, step, &file.features, &err)?;
                if pca.k + colour != m.d {
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
        Ok(Classifier {
            file,
            pca,
            studio_pca,
        })
    }

    /// Decides how to read the rows of a dataset whose vectors `data`
    /// describes (reduced by the PCA `pca_fingerprint` names, if any), or
    /// explains why they do not fit this classifier.
    pub fn input_kind(
        &self,
        data: &FeatureSpec,
        pca_fingerprint: Option<&str>,
    ) -> Result<InputKind, BundleError> {
        let spec = &self.file.features;
        if data.model_sha256 != spec.model_sha256 {
            return Err(BundleError::WrongImageModel {
                data: data.model_sha256.clone(),
                expected: spec.model_sha256.clone(),
                source_hint: spec.model_source.clone(),
            });
        }
        if self.file.colour_bins > 0 && data.colour_bins != self.file.colour_bins {
            return Err(BundleError::NoColour {
                expected: self.file.colour_bins,
                data: data.colour_bins,
            });
        }
        // Compared without the colour descriptor: a classifier that uses none
        // reads data that has one, and the check above covers the others.
        let data_spec = FeatureSpec {
            colour_bins: spec.colour_bins,
            ..data.clone()
        };
        let Some(fingerprint) = pca_fingerprint else {
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
                return Err(BundleError::WrongFeatures {
                    data: describe(data),
                    expected: describe(spec),
                });
            }
            return Ok(InputKind::Features);
        };
        match &self.file.pca {
            Some(step) if step.fingerprint == fingerprint => Ok(InputKind::Reduced),
            step => Err(BundleError::WrongPca {
                data: fingerprint.to_string(),
                expected: step.as_ref().map(|s| s.fingerprint.clone()),
            }),
        }
    }

    /// Values per row of `kind` (before the colour descriptor).
    fn input_dim(&self, kind: InputKind) -> usize {
        match (kind, &self.file.pca) {
            (InputKind::Features, _) => self.file.features.feature_dim,
            (InputKind::Reduced, Some(step)) => step.k,
            (InputKind::Reduced, None) => self.file.model.d.saturating_sub(self.file.colour_bins),
        }
    }

    /// Class probabilities (`n x classes`) for rows of image features and
    /// their colour descriptors (`n x colour_bins`; empty when it uses none).
    pub fn proba_from_features(
        &self,
        features: &[f32],
        colour: &[f32],
    ) -> Result<Vec<f32>, BundleError> {
        self.proba(features, colour, InputKind::Features)
    }

    /// Class probabilities for rows of `kind` and their colour descriptors
    /// (empty when it uses none).
    pub fn proba(
        &self,
        rows: &[f32],
        colour: &[f32],
        kind: InputKind,
    ) -> Result<Vec<f32>, BundleError> {
        Ok(self.proba_routed(rows, colour, kind)?.0)
    }

    /// As [`proba`](Self::proba), with for each row whether the gate sent it
    /// to the studio head (all false without one).
    pub fn proba_routed(
        &self,
        rows: &[f32],
        colour: &[f32],
        kind: InputKind,
    ) -> Result<(Vec<f32>, Vec<bool>), BundleError> {
        self.proba_views(rows, colour, kind, 1)
    }

    /// Class probabilities (`n x classes`) of `n` photos given as `views`
    /// rows each (`rows` is `n x views x d`, a photo's views one after
    /// another, the whole photo first; `colour` is `n x colour_bins`), and for
    /// each photo whether the gate sent it to the studio head. The gate looks
    /// at the whole photo; a studio photo is scored by the studio head on the
    /// whole photo, any other by the main head averaged over its views.
    pub fn proba_views(
        &self,
        rows: &[f32],
        colour: &[f32],
        kind: InputKind,
        views: usize,
    ) -> Result<(Vec<f32>, Vec<bool>), BundleError> {
        let views = views.max(1);
        let given = self.input_dim(kind);
        check_finite(rows, given)?;
        let bins = self.file.colour_bins;
        check_finite(colour, bins)?;
        let n = rows.len() / (given * views).max(1);
        if rows.len() != n * given * views {
            return Err(LearnError::NotRows {
                values: rows.len(),
                d: given * views,
            }
            .into());
        }
        if bins > 0 && colour.len() != n * bins {
            return Err(BundleError::NoColour {
                expected: bins,
                data: colour.len() / n.max(1),
            });
        }
        // The main head's inputs: every view through its PCA, then the
        // photo's colour descriptor.
        let main = match (kind, &self.pca) {
            (InputKind::Features, Some(pca)) => std::borrow::Cow::Owned(pca.transform(rows)?),
            _ => std::borrow::Cow::Borrowed(rows),
        };
        let d = main.len() / (n * views).max(1);
        let width = d + bins;
        let joined = join_colour(&main, d * views, d, colour, bins);
        let whole: Vec<f32> = joined
            .chunks_exact(width * views)
            .flat_map(|photo| photo[..width].iter().copied())
            .collect();
        let routed: Vec<bool> = match &self.file.studio {
            Some(head) => head
                .gate
                .predict_proba(&whole)?
                .chunks_exact(GATE_CLASSES.len())
                .map(|g| g[0] >= head.min_studio)
                .collect(),
            None => vec![false; n],
        };
        let k = self.classes().len();
        // Each photo is scored by the one head the gate picked, not by both.
        let studio = self.studio_proba(rows, given, views, &whole, width, colour, &routed, kind)?;
        let mut studio = studio.chunks_exact(k.max(1));
        let mut p = Vec::with_capacity(n * k);
        for (photo, &to_studio) in joined.chunks_exact(width * views).zip(&routed) {
            if to_studio {
                let row = studio
                    .next()
                    .ok_or(LearnError::NotRows { values: 0, d: k })?;
                p.extend_from_slice(row);
                continue;
            }
            let each = self.file.model.predict_proba(photo)?;
            let mut mean = vec![0f32; k];
            for view in each.chunks_exact(k) {
                for (m, v) in mean.iter_mut().zip(view) {
                    *m += v / views as f32;
                }
            }
            p.extend(mean);
        }
        Ok((p, routed))
    }

    /// The studio head's probabilities of the photos `routed` to it (their
    /// whole view), in order: on its own PCA of the image features when it
    /// has one, else on the main head's inputs (`whole`, `width` values each).
    #[allow(clippy::too_many_arguments)]
    fn studio_proba(
        &self,
        rows: &[f32],
        given: usize,
        views: usize,
        whole: &[f32],
        width: usize,
        colour: &[f32],
        routed: &[bool],
        kind: InputKind,
    ) -> Result<Vec<f32>, BundleError> {
        let Some(head) = &self.file.studio else {
            return Ok(Vec::new());
        };
        let picked = routed
            .iter()
            .enumerate()
            .filter(|(_, r)| **r)
            .map(|(i, _)| i);
        let bins = self.file.colour_bins;
        let x: Vec<f32> = match &self.studio_pca {
            None => picked
                .flat_map(|i| whole[i * width..(i + 1) * width].iter().copied())
                .collect(),
            Some(pca) => {
                if kind != InputKind::Features {
                    return Err(BundleError::WrongPca {
                        data: "rows reduced by the main head's PCA".into(),
                        expected: self.file.pca.as_ref().map(|s| s.fingerprint.clone()),
                    });
                }
                let picked: Vec<usize> = picked.collect();
                let raw: Vec<f32> = picked
                    .iter()
                    .flat_map(|&i| {
                        let start = i * given * views;
                        rows[start..start + given].iter().copied()
                    })
                    .collect();
                let reduced = pca.transform(&raw)?;
                let picked_colour: Vec<f32> = picked
                    .iter()
                    .flat_map(|&i| colour.get(i * bins..(i + 1) * bins).unwrap_or_default())
                    .copied()
                    .collect();
                join_colour(&reduced, pca.k, pca.k, &picked_colour, bins)
            }
        };
        if x.is_empty() {
            return Ok(Vec::new());
        }
        Ok(head.model.predict_proba(&x)?)
    }
}

/// Rows of `stride` values, each cut into vectors of `d` values, every
/// vector followed by its row's `bins` colour values (`rows` unchanged when
/// `bins` is 0).
fn join_colour(rows: &[f32], stride: usize, d: usize, colour: &[f32], bins: usize) -> Vec<f32> {
    if bins == 0 {
        return rows.to_vec();
    }
    let mut joined = Vec::with_capacity(rows.len() + rows.len() / d.max(1) * bins);
    for (row, c) in rows
        .chunks_exact(stride.max(1))
        .zip(colour.chunks_exact(bins))
    {
        for vector in row.chunks_exact(d.max(1)) {
            joined.extend_from_slice(vector);
            joined.extend_from_slice(c);
        }
    }
    joined
}

/// Loads the PCA `step` names from the bundle at `dir`, checking it takes the
/// bundle's features and is the one the bundle was trained with.
fn load_pca(
    dir: &Location,
    step: &PcaStep,
    features: &FeatureSpec,
    err: &impl Fn(String) -> BundleError,
) -> Result<PcaModel, BundleError> {
    if step.dir.is_empty() || step.dir.contains(['/', '\\']) || step.dir.starts_with('.') {
        return Err(err(format!("{:?} is not a PCA folder name", step.dir)));
    }
    let pca = fruits_pca::load(&dir.child(&step.dir))?.model;
    if pca.d != features.feature_dim {
        return Err(err(format!(
            "the bundled PCA takes vectors of {} values but the features it is recorded to take \
             have {}",
            pca.d, features.feature_dim
        )));
    }
    if pca.fingerprint() != step.fingerprint || pca.k != step.k {
        return Err(err(format!(
            "the bundled PCA ({}, k = {}) is not the one it was trained with ({}, k = {})",
            pca.fingerprint(),
            pca.k,
            step.fingerprint,
            step.k
        )));
    }
    Ok(pca)
}

/// Refuses rows (`d` values each) holding NaN or infinite values, naming the
/// first: a damaged row must not read as a damaged classifier.
fn check_finite(values: &[f32], d: usize) -> Result<(), BundleError> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(BundleError::NonFiniteInput {
            row: i / d.max(1),
            rows: values.len() / d.max(1),
        }),
    }
}

/// Checks one softmax model's sizes and values, as [`Classifier::load`] reads it.
fn check_model(m: &SoftmaxModel, err: &impl Fn(String) -> BundleError) -> Result<(), BundleError> {
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
            "the scaler has a zero, negative or non-finite value (a damaged or edited file)".into(),
        ));
    }
    if m.weights.iter().chain(&m.bias).any(|w| !w.is_finite()) {
        return Err(err(
            "the weights hold NaN or infinite values (a damaged or edited file)".into(),
        ));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A test's own failure (temp folder, file copy) as an error.
    fn test_err(e: impl ToString) -> BundleError {
        BundleError::File {
            path: "test".into(),
            message: e.to_string(),
        }
    }
    use fruits_learn::{Scaler, StopReason};

    /// A softmax model on 2 inputs whose class `j` wins when input `j` is large.
    fn model(classes: &[&str]) -> SoftmaxModel {
        let k = classes.len();
        let mut weights = vec![0.0; k * 2];
        for j in 0..k.min(2) {
            weights[j * 2 + j] = 10.0;
        }
        SoftmaxModel {
            classes: classes.iter().map(|c| c.to_string()).collect(),
            d: 2,
            scaler: Scaler {
                mean: vec![0.0; 2],
                scale: vec![1.0; 2],
            },
            weights,
            bias: vec![0.0; k],
        }
    }

    fn classifier() -> Classifier {
        let spec = FeatureSpec {
            model_sha256: "ab".into(),
            model_source: "model.onnx".into(),
            feature_output: "features".into(),
            feature_dim: 2,
            input_size: 224,
            preprocessing: Default::default(),
            colour_bins: 0,
        };
        let report = TrainReport {
            rows: 4,
            features: 2,
            classes: 2,
            objective: 0.0,
            iterations: 1,
            converged: true,
            stop_reason: StopReason::GradientBelowTolerance,
            train_accuracy: 1.0,
            seconds: 0.0,
        };
        let training = TrainingInfo {
            source: "test".into(),
            split: String::new(),
            c: 1.0,
            report,
            cv: None,
            augmented_rows: 2,
        };
        Classifier::new(spec, None, model(&["apple", "pear"]), training)
    }

    /// The studio head answers the opposite of the main head, so which one
    /// answered shows in the result.
    fn with_head(min_studio: f32) -> Classifier {
        let mut studio = model(&["apple", "pear"]);
        studio.weights.swap(0, 2);
        studio.weights.swap(1, 3);
        classifier().with_studio_head(
            StudioHead {
                gate: model(&GATE_CLASSES),
                min_studio,
                model: studio,
                pca: None,
            },
            None,
        )
    }

    #[test]
    fn the_gate_sends_studio_rows_to_the_studio_head() -> Result<(), BundleError> {
        // Row 0: large first input (the gate says studio; the main head says
        // apple). Row 1: large second input (wild; pear).
        let rows = [1.0, 0.0, 0.0, 1.0];
        let plain = classifier().proba_routed(&rows, &[], InputKind::Reduced)?;
        assert_eq!(plain.1, vec![false, false]);
        assert!(plain.0[0] > 0.99 && plain.0[3] > 0.99);
        let (p, routed) = with_head(0.9).proba_routed(&rows, &[], InputKind::Reduced)?;
        assert_eq!(routed, vec![true, false]);
        assert!(p[1] > 0.99, "row 0 answered by the studio head: {p:?}");
        assert!(p[3] > 0.99, "row 1 answered by the main head: {p:?}");
        // A gate that is never sure enough leaves every row to the main head.
        let (_, routed) = with_head(1.0).proba_routed(&rows, &[], InputKind::Reduced)?;
        assert_eq!(routed, vec![false, false]);
        Ok(())
    }

    /// A PCA on 2 inputs keeping both (identity components), with a mean
    /// that makes its fingerprint `offset`'s own.
    fn pca(offset: f64) -> PcaModel {
        PcaModel {
            n: 4,
            d: 2,
            k: 2,
            keep: fruits_pca::Keep::K(2),
            mean: vec![offset, 0.0],
            components: vec![1.0, 0.0, 0.0, 1.0],
            explained_variance: vec![1.0, 1.0],
            explained_variance_ratio: vec![0.5, 0.5],
        }
    }

    fn with_pca(offset: f64) -> Classifier {
        let c = classifier();
        Classifier::new(
            c.file.features,
            Some(pca(offset)),
            c.file.model,
            c.file.training,
        )
    }

    #[test]
    fn a_save_killed_midway_leaves_the_old_bundle_and_the_next_one_cleans_up()
    -> Result<(), BundleError> {
        let tmp = tempfile::tempdir().map_err(test_err)?;
        let dir = Location::local_path(tmp.path());
        let old = with_pca(0.0);
        old.save(&dir)?;
        // A retrain killed after writing its PCA, before classifier.json,
        // with a half-written classifier.json beside it: the old bundle loads.
        let new = with_pca(1.0);
        let (old_dir, new_dir) = match (&old.file.pca, &new.file.pca) {
            (Some(a), Some(b)) => (a.dir.clone(), b.dir.clone()),
            _ => return Err(test_err("no PCA step")),
        };
        assert_ne!(old_dir, new_dir);
        fruits_pca::save(&dir.child(&new_dir), &pca(1.0), "ab", "test")?;
        std::fs::write(
            tmp.path().join(".classifier.json.fruits-tmp-9-0"),
            b"{\"half",
        )
        .map_err(test_err)?;
        let loaded = Classifier::load(&dir)?;
        assert_eq!(
            loaded.pca.as_ref().map(PcaModel::fingerprint),
            Some(pca(0.0).fingerprint())
        );
        // The next save switches over and removes what is no longer named.
        new.save(&dir)?;
        let loaded = Classifier::load(&dir)?;
        assert_eq!(
            loaded.pca.as_ref().map(PcaModel::fingerprint),
            Some(pca(1.0).fingerprint())
        );
        let mut names: Vec<String> = std::fs::read_dir(tmp.path())
            .map_err(test_err)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![CLASSIFIER_FILE.to_string(), new_dir]);
        Ok(())
    }

    #[test]
    fn bundles_naming_their_pca_folder_pca_still_load() -> Result<(), BundleError> {
        let tmp = tempfile::tempdir().map_err(test_err)?;
        let dir = Location::local_path(tmp.path());
        let mut legacy = with_pca(0.0);
        if let Some(step) = &mut legacy.file.pca {
            step.dir = PCA_DIR.to_string();
        }
        legacy.save(&dir)?;
        // As written before the folder had the PCA's name: no `dir` field.
        let file = tmp.path().join(CLASSIFIER_FILE);
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).map_err(test_err)?).map_err(test_err)?;
        if let Some(step) = json["pca"].as_object_mut() {
            step.remove("dir");
        }
        std::fs::write(&file, json.to_string()).map_err(test_err)?;
        let loaded = Classifier::load(&dir)?;
        assert_eq!(loaded.file.pca.map(|s| s.dir), Some(PCA_DIR.to_string()));
        Ok(())
    }

    #[test]
    fn a_studio_head_survives_the_disk_and_a_damaged_one_is_refused() -> Result<(), BundleError> {
        let tmp = tempfile::tempdir().map_err(test_err)?;
        let dir = Location::local_path(tmp.path());
        let bundle = with_head(0.9);
        bundle.save(&dir)?;
        let back = Classifier::load(&dir)?;
        assert_eq!(back.file.studio, bundle.file.studio);

        let mut damaged = with_head(0.9);
        if let Some(head) = &mut damaged.file.studio {
            head.model.classes.reverse();
        }
        damaged.save(&dir)?;
        let err = Classifier::load(&dir).expect_err("classes disagree");
        assert!(matches!(err, BundleError::File { .. }), "{err}");
        Ok(())
    }
}
