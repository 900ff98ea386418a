//! Classifiers over stored datasets: read the rows of a split, train, evaluate.

use std::collections::BTreeSet;

use arrow_array::cast::AsArray;
use fruits_classify::metrics::{ClassScores, Confusion, NetRevenue, RevenuePoint};
use fruits_classify::{
    Classifier, FeatureSpec, InputKind, TrainConfig, TrainingInfo, argmax, train,
};
use fruits_pca::{Keep, PcaModel, PcaStats};
use fruits_store::Dataset;
use serde::Serialize;

use crate::PipelineError;
use crate::reduce::{BATCH_ROWS, vector_column};

/// The vectors of one split of a dataset, with labels and paths.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// `n x d`, row-major.
    pub x: Vec<f32>,
    /// Values per row.
    pub d: usize,
    /// Label of each row.
    pub labels: Vec<String>,
    /// Path of each row.
    pub paths: Vec<String>,
}

impl Rows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The vector column of a dataset: `pca` for a reduced output, else `features`.
pub fn vector_column_name(ds: &Dataset) -> &'static str {
    let meta = &ds.manifest().meta;
    if !meta.pca_fingerprint.is_empty() || meta.feature_output == "pca" {
        "pca"
    } else {
        "features"
    }
}

/// Reads every row of `ds` whose split is `split` (every row when `None`).
pub fn read_rows(ds: &Dataset, split: Option<&str>) -> Result<Rows, PipelineError> {
    let column = vector_column_name(ds);
    let mut rows = Rows::default();
    let mut splits_seen = BTreeSet::new();
    for batch in ds.feature_columns(&[column, "path", "label", "split"], BATCH_ROWS) {
        let batch = batch?;
        let (values, d) = vector_column(&batch, column)?;
        rows.d = d;
        let strings = |name: &str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_string::<i32>().clone())
                .ok_or_else(|| PipelineError::Input(format!("the input has no `{name}` column")))
        };
        let (paths, labels, splits) = (strings("path")?, strings("label")?, strings("split")?);
        for (i, v) in values.chunks_exact(d).enumerate() {
            let s = splits.value(i);
            if split.is_some_and(|want| want != s) {
                splits_seen.insert(s.to_string());
                continue;
            }
            rows.x.extend_from_slice(v);
            rows.labels.push(labels.value(i).to_string());
            rows.paths.push(paths.value(i).to_string());
        }
    }
    if rows.is_empty() {
        let seen = if splits_seen.is_empty() {
            "it has no rows".to_string()
        } else {
            format!(
                "its splits are {}",
                splits_seen
                    .iter()
                    .map(|s| if s.is_empty() {
                        "\"\" (no split folder)".to_string()
                    } else {
                        format!("{s:?}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(PipelineError::Input(format!(
            "{} has no rows{}: {seen}",
            ds.root(),
            split
                .map(|s| format!(" in split {s:?}"))
                .unwrap_or_default()
        )));
    }
    Ok(rows)
}

/// The PCA step of training.
#[derive(Debug, Clone)]
pub enum PcaChoice {
    /// Train on the vectors as they are (raw features, no PCA in the bundle).
    None,
    /// Fit a PCA on the training rows' features first, keeping this much.
    Fit(Keep),
    /// The data is a reduced output; this is the PCA that made it.
    Given(PcaModel),
}

/// Trains a classifier on the rows of `split` in `ds`.
pub fn train_dataset(
    ds: &Dataset,
    split: Option<&str>,
    pca: PcaChoice,
    config: &TrainConfig,
) -> Result<Classifier, PipelineError> {
    let meta = &ds.manifest().meta;
    let rows = read_rows(ds, split)?;
    let reduced = !meta.pca_fingerprint.is_empty();
    let (pca, x) = match (pca, reduced) {
        (PcaChoice::Given(model), true) => {
            if model.fingerprint() != meta.pca_fingerprint {
                return Err(PipelineError::Input(format!(
                    "{} was reduced by PCA {} but the PCA given is {}",
                    ds.root(),
                    meta.pca_fingerprint,
                    model.fingerprint()
                )));
            }
            (Some(model), rows.x)
        }
        (_, true) => {
            return Err(PipelineError::Input(format!(
                "{} is a reduced output: training on it needs the PCA that made it",
                ds.root()
            )));
        }
        (PcaChoice::Given(_), false) => {
            return Err(PipelineError::Input(format!(
                "{} holds features, not reduced rows: a PCA is fitted on them, not given",
                ds.root()
            )));
        }
        (PcaChoice::None, false) => (None, rows.x),
        (PcaChoice::Fit(keep), false) => {
            let mut stats = PcaStats::new(rows.d);
            stats.update(&rows.x)?;
            let model = fruits_pca::fit(&stats, keep)?;
            let projected = model.transform(&rows.x)?;
            (Some(model), projected)
        }
    };
    let classes: Vec<String> = rows
        .labels
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let y: Vec<usize> = rows
        .labels
        .iter()
        .map(|l| classes.binary_search(l).unwrap_or(0))
        .collect();
    let d = x.len() / rows.labels.len();
    let (model, report) = train(&x, d, &y, classes, config)?;
    let features = FeatureSpec {
        model_sha256: meta.model_sha256.clone(),
        model_source: meta.model_source.clone(),
        feature_output: if reduced {
            "features".into()
        } else {
            meta.feature_output.clone()
        },
        feature_dim: pca.as_ref().map(|p| p.d).unwrap_or(rows.d),
        input_size: meta.input_size,
        preprocessing: meta.preprocessing.clone(),
    };
    let training = TrainingInfo {
        source: ds.root().to_string(),
        split: split.unwrap_or_default().to_string(),
        c: config.c,
        report,
    };
    Ok(Classifier::new(features, pca, model, training))
}

/// A classifier's answers on a dataset, and what they are worth.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The dataset.
    pub source: String,
    /// The split evaluated (empty: every row).
    pub split: String,
    /// Rows scored.
    pub rows: usize,
    /// Share of right answers.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// Precision, recall, F1 and support per class, in class order.
    pub per_class: Vec<(String, ClassScores)>,
    /// Net revenue when every answer is given.
    pub revenue_always_answer: RevenuePoint,
    /// The abstain threshold that earns the most, and what it earns.
    pub revenue_best: RevenuePoint,
    /// Net revenue at every threshold 0, 0.01, ..., 1.
    pub revenue_curve: Vec<RevenuePoint>,
    /// The values the revenue was computed with.
    pub revenue_values: NetRevenue,
    /// Rows whose label the classifier does not know (not scored).
    pub unknown_labels: Vec<String>,
    /// The most frequent mistakes: (true, predicted, count), largest first.
    pub top_confusions: Vec<(String, String, u64)>,
    /// Seconds spent reading and scoring.
    pub seconds: f64,
    /// The confusion counts (not in the JSON report: the PNG shows them).
    #[serde(skip)]
    pub confusion: Confusion,
}

/// Scores `classifier` on the rows of `split` in `ds`.
pub fn evaluate_dataset(
    classifier: &Classifier,
    ds: &Dataset,
    split: Option<&str>,
    revenue: &NetRevenue,
) -> Result<Evaluation, PipelineError> {
    let started = std::time::Instant::now();
    let meta = &ds.manifest().meta;
    let kind =
        classifier.input_kind(&meta.model_sha256, meta.feature_dim, &meta.pca_fingerprint)?;
    let rows = read_rows(ds, split)?;
    let classes = classifier.classes();
    let k = classes.len();
    let mut truth = Vec::with_capacity(rows.len());
    let mut keep = Vec::with_capacity(rows.len());
    let mut unknown = BTreeSet::new();
    for (i, label) in rows.labels.iter().enumerate() {
        match classes.binary_search(label) {
            Ok(t) => {
                truth.push(t);
                keep.push(i);
            }
            Err(_) => {
                unknown.insert(label.clone());
            }
        }
    }
    if keep.is_empty() {
        return Err(PipelineError::Input(format!(
            "none of the labels of {} is a class the classifier knows",
            ds.root()
        )));
    }
    let d = rows.d;
    let x: Vec<f32> = keep
        .iter()
        .flat_map(|&i| rows.x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let proba = score_in_chunks(classifier, &x, d, kind)?;
    let mut predicted = Vec::with_capacity(truth.len());
    let mut scored = Vec::with_capacity(truth.len());
    for (p, &t) in proba.chunks_exact(k).zip(&truth) {
        let best = argmax(p);
        predicted.push(best);
        scored.push((t, best, p[best]));
    }
    let confusion = Confusion::new(k, &truth, &predicted);
    let (curve, best) = revenue.sweep(classes, &scored);
    let mut mistakes: Vec<(String, String, u64)> = Vec::new();
    for t in 0..k {
        for p in 0..k {
            let c = confusion.counts[t * k + p];
            if t != p && c > 0 {
                mistakes.push((classes[t].clone(), classes[p].clone(), c));
            }
        }
    }
    mistakes.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    mistakes.truncate(10);
    Ok(Evaluation {
        source: ds.root().to_string(),
        split: split.unwrap_or_default().to_string(),
        rows: truth.len(),
        accuracy: confusion.accuracy(),
        macro_f1: confusion.macro_f1(),
        per_class: classes.iter().cloned().zip(confusion.per_class()).collect(),
        revenue_always_answer: revenue.at(classes, &scored, 0.0),
        revenue_best: best,
        revenue_curve: curve,
        revenue_values: revenue.clone(),
        unknown_labels: unknown.into_iter().collect(),
        top_confusions: mistakes,
        seconds: started.elapsed().as_secs_f64(),
        confusion,
    })
}

/// Scores rows a few thousand at a time, so the PCA's centred copy stays small.
fn score_in_chunks(
    classifier: &Classifier,
    x: &[f32],
    d: usize,
    kind: InputKind,
) -> Result<Vec<f32>, PipelineError> {
    let mut out = Vec::new();
    for chunk in x.chunks(BATCH_ROWS * d) {
        out.extend(classifier.proba(chunk, kind)?);
    }
    Ok(out)
}

/// One candidate answer for a photo.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The class name.
    pub class: String,
    /// Its probability.
    pub probability: f32,
    /// What to tell the user about it, when the catalogue knows the class.
    pub info: Option<fruits_classify::FruitInfo>,
}

/// The answer for one photo.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// The most probable classes, best first.
    pub top: Vec<Candidate>,
    /// Width of the photo as decoded.
    pub width: u32,
    /// Height of the photo as decoded.
    pub height: u32,
}

/// From photo bytes to an answer: the image model, its preprocessing, the
/// classifier and the fruit catalogue, loaded once and shared by every request.
#[derive(Debug)]
pub struct Identifier {
    model: fruits_model::FeatureModel,
    preprocessing: fruits_image::Preprocessing,
    classifier: Classifier,
    catalogue: fruits_classify::Catalogue,
}

impl Identifier {
    /// Checks that `model` and `preprocessing` make the features `classifier` was trained on.
    pub fn new(
        model: fruits_model::FeatureModel,
        preprocessing: fruits_image::Preprocessing,
        classifier: Classifier,
        catalogue: fruits_classify::Catalogue,
    ) -> Result<Identifier, PipelineError> {
        let spec = &classifier.file.features;
        let info = model.info();
        if info.sha256 != spec.model_sha256 {
            return Err(PipelineError::Input(format!(
                "the image model {} (sha256 {}) is not the one the classifier was trained with: {} (sha256 {})",
                info.source, info.sha256, spec.model_source, spec.model_sha256
            )));
        }
        if info.feature_output != spec.feature_output || info.feature_dim != spec.feature_dim {
            return Err(PipelineError::Input(format!(
                "the classifier expects output {:?} of {} values, the model gives {:?} of {}",
                spec.feature_output, spec.feature_dim, info.feature_output, info.feature_dim
            )));
        }
        if preprocessing.describe() != spec.preprocessing {
            return Err(PipelineError::Input(format!(
                "the classifier was trained on images prepared as \"{}\", not \"{}\"",
                spec.preprocessing,
                preprocessing.describe()
            )));
        }
        Ok(Identifier {
            model,
            preprocessing,
            classifier,
            catalogue,
        })
    }

    /// The classifier.
    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    /// The image preparation (its pixel limit guards the decoder).
    pub fn preprocessing(&self) -> &fruits_image::Preprocessing {
        &self.preprocessing
    }

    /// Decodes and prepares one photo into a model input tensor.
    pub fn prepare(
        &self,
        bytes: &[u8],
    ) -> Result<(Vec<f32>, fruits_image::ImageInfo), fruits_image::ImageError> {
        self.preprocessing.preprocess(bytes)
    }

    /// Identifies prepared photos (tensors from [`prepare`](Self::prepare)) in
    /// one model call; `top` answers each.
    pub fn identify_prepared(
        &self,
        tensors: &[(Vec<f32>, fruits_image::ImageInfo)],
        top: usize,
    ) -> Result<Vec<Prediction>, PipelineError> {
        if tensors.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Vec::with_capacity(tensors.len() * self.model.input_len());
        for (t, _) in tensors {
            batch.extend_from_slice(t);
        }
        let features = self.model.run(&batch)?;
        let proba = self.classifier.proba_from_features(&features)?;
        let classes = self.classifier.classes();
        Ok(proba
            .chunks_exact(classes.len())
            .zip(tensors)
            .map(|(p, (_, info))| Prediction {
                top: fruits_classify::top_k(p, top)
                    .into_iter()
                    .map(|(i, probability)| Candidate {
                        class: classes[i].clone(),
                        probability,
                        info: self.catalogue.get(&classes[i]).cloned(),
                    })
                    .collect(),
                width: info.width,
                height: info.height,
            })
            .collect())
    }

    /// Identifies photos given as bytes: each is prepared on its own (a bad one
    /// gets its own error), the good ones go through the model together.
    pub fn identify(
        &self,
        photos: &[&[u8]],
        top: usize,
    ) -> Result<Vec<Result<Prediction, fruits_image::ImageError>>, PipelineError> {
        use rayon::prelude::*;
        let prepared: Vec<_> = photos.par_iter().map(|b| self.prepare(b)).collect();
        let mut good = Vec::new();
        let mut slots = Vec::with_capacity(prepared.len());
        for r in prepared {
            match r {
                Ok(t) => {
                    good.push(t);
                    slots.push(None);
                }
                Err(e) => slots.push(Some(e)),
            }
        }
        let mut answers = self.identify_prepared(&good, top)?.into_iter();
        slots
            .into_iter()
            .map(|slot| match slot {
                Some(e) => Ok(Err(e)),
                None => answers.next().map(Ok).ok_or_else(|| {
                    PipelineError::Internal("the model returned too few rows".into())
                }),
            })
            .collect()
    }
}
