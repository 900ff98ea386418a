//! Classifiers over stored datasets: read the rows of a split, train, evaluate.

use std::collections::BTreeSet;

use arrow_array::cast::AsArray;
use fruits_classify::bundle::{DEFAULT_MIN_STUDIO, GATE_CLASSES, StudioHead, append_columns};
use fruits_classify::cv::{self, CvReport, CvScore};
use fruits_classify::metrics::{ClassScores, Confusion, NetRevenue, RevenuePoint};
use fruits_classify::{Classifier, InputKind, TrainConfig, TrainingInfo, argmax, train};
use fruits_pca::{Keep, PcaModel, PcaStats};
use fruits_store::{Dataset, columns};
use serde::Serialize;

use crate::PipelineError;
use crate::augment::is_copy;
use crate::reduce::{BATCH_ROWS, pca_beside, vector_column};

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
    /// The colour descriptor of each row (`n x colour_bins`), when the dataset has one.
    pub colour: Vec<f32>,
    /// Colour values per row (0: none).
    pub colour_bins: usize,
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

/// Reads every row of `ds` whose split is `split` (every row when `None`).
pub fn read_rows(ds: &Dataset, split: Option<&str>) -> Result<Rows, PipelineError> {
    let column = ds.manifest().meta.vector_column();
    let has_colour = ds.manifest().meta.spec.colour_bins > 0;
    let mut rows = Rows::default();
    let mut splits_seen = BTreeSet::new();
    let mut wanted = vec![column, columns::PATH, columns::LABEL, columns::SPLIT];
    if has_colour {
        wanted.push(columns::COLOUR);
    }
    for batch in ds.feature_columns(&wanted, BATCH_ROWS) {
        let batch = batch?;
        let (values, d) = vector_column(&batch, column, ds.root())?;
        rows.d = d;
        let colour = if has_colour {
            let (c, bins) = vector_column(&batch, columns::COLOUR, ds.root())?;
            rows.colour_bins = bins;
            Some(c)
        } else {
            None
        };
        let strings = |name: &'static str| {
            batch
                .column_by_name(name)
                .map(|c| c.as_string::<i32>().clone())
                .ok_or_else(|| PipelineError::MissingColumn {
                    dataset: ds.root().to_string(),
                    column: name,
                })
        };
        let (paths, labels, splits) = (
            strings(columns::PATH)?,
            strings(columns::LABEL)?,
            strings(columns::SPLIT)?,
        );
        for (i, v) in values.chunks_exact(d).enumerate() {
            let s = splits.value(i);
            if split.is_some_and(|want| want != s) {
                splits_seen.insert(s.to_string());
                continue;
            }
            rows.x.extend_from_slice(v);
            if let Some(c) = colour {
                let b = rows.colour_bins;
                rows.colour.extend_from_slice(&c[i * b..(i + 1) * b]);
            }
            rows.labels.push(labels.value(i).to_string());
            rows.paths.push(paths.value(i).to_string());
        }
    }
    if rows.is_empty() {
        return Err(PipelineError::NoRows {
            dataset: ds.root().to_string(),
            split: split.map(str::to_string),
            splits_seen: splits_seen.into_iter().collect(),
        });
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

/// Choosing C by cross-validation on the training rows.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossValidation {
    /// Number of stratified folds.
    pub folds: usize,
    /// The values of C to try ([`fruits_classify::DEFAULT_CV_GRID`] by default).
    pub grid: Vec<f64>,
}

/// Trains a classifier on the rows of `split` in `ds`. A reduced output is
/// trained with the PCA that made it: `pca` when given, else the PCA folder
/// beside it (as `fruits run` and the Spark job lay them out). With `cv`, C
/// is chosen by cross-validation on those same rows first (`config.c` is
/// then not used); a PCA fitted here is fitted again inside each fold, on
/// that fold's training part only, so no held-out row shapes it.
///
/// With `studio_head` and rows that mix original photos with augmented copies,
/// the bundle also gets a studio head trained on the originals alone and a
/// gate telling the two apart ([`StudioHead`]).
pub fn train_dataset(
    ds: &Dataset,
    split: Option<&str>,
    pca: PcaChoice,
    config: &TrainConfig,
    cv: Option<&CrossValidation>,
    colour: bool,
    studio_head: bool,
) -> Result<Classifier, PipelineError> {
    let meta = &ds.manifest().meta;
    let reduced = meta.pca_fingerprint.is_some();
    let pca = match (pca, reduced) {
        (PcaChoice::Given(_), false) => {
            return Err(PipelineError::NotReduced {
                dataset: ds.root().to_string(),
            });
        }
        (PcaChoice::Given(model), true) => PcaChoice::Given(model),
        (_, true) => PcaChoice::Given(pca_beside(ds)?.model),
        (choice, false) => choice,
    };
    let mut rows = read_rows(ds, split)?;
    let copies: Vec<bool> = rows.paths.iter().map(|p| is_copy(p)).collect();
    let augmented_rows = copies.iter().filter(|c| **c).count() as u64;
    if !colour {
        rows.colour.clear();
        rows.colour_bins = 0;
    }
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
    let cv_report = match cv {
        Some(cv) => Some(cross_validate(&rows, &y, &classes, &pca, config, cv)?),
        None => None,
    };
    let config = &TrainConfig {
        c: cv_report.as_ref().map_or(config.c, |r| r.chosen_c),
        ..*config
    };
    let (pca, x) = match pca {
        PcaChoice::Given(model) => {
            let fingerprint = meta.pca_fingerprint.clone().unwrap_or_default();
            if model.fingerprint() != fingerprint {
                return Err(PipelineError::PcaMismatch {
                    dataset: ds.root().to_string(),
                    reduced_by: fingerprint,
                    given: model.fingerprint(),
                });
            }
            (Some(model), rows.x)
        }
        PcaChoice::None => (None, rows.x),
        PcaChoice::Fit(keep) => {
            let model = fit_pca(&rows.x, rows.d, keep)?;
            let projected = model.transform(&rows.x)?;
            (Some(model), projected)
        }
    };
    let d = x.len() / rows.labels.len();
    // The colour descriptor goes beside the (PCA of the) features: the PCA
    // stays on the image features, the scaler evens the scales out.
    let bins = rows.colour_bins;
    let (x, d) = if bins > 0 {
        (append_columns(&x, d, &rows.colour, bins), d + bins)
    } else {
        (x, d)
    };
    let studio = if studio_head && augmented_rows > 0 && (augmented_rows as usize) < copies.len() {
        Some(train_studio_head(&x, d, &y, &classes, &copies, config)?)
    } else {
        None
    };
    let (model, report) = train(&x, d, &y, classes, config)?;
    // The image features the classifier takes: for a reduced output, those
    // its PCA was fitted on.
    let mut features = meta.spec.clone();
    if reduced {
        features.feature_output = fruits_model::DEFAULT_FEATURE_OUTPUT.into();
        features.feature_dim = pca.as_ref().map_or(rows.d, |p| p.d);
    }
    let training = TrainingInfo {
        source: ds.root().to_string(),
        split: split.unwrap_or_default().to_string(),
        c: config.c,
        report,
        cv: cv_report,
        augmented_rows,
    };
    let classifier = Classifier::new(features, pca, model, training).with_colour(bins);
    Ok(match studio {
        Some(head) => classifier.with_studio_head(head),
        None => classifier,
    })
}

/// The studio head (trained on the rows that are not copies) and its gate
/// (originals against copies), on the same inputs as the main head.
fn train_studio_head(
    x: &[f32],
    d: usize,
    y: &[usize],
    classes: &[String],
    copies: &[bool],
    config: &TrainConfig,
) -> Result<StudioHead, PipelineError> {
    let (mut studio_x, mut studio_y) = (Vec::new(), Vec::new());
    for ((row, &label), _) in x.chunks_exact(d).zip(y).zip(copies).filter(|(_, c)| !**c) {
        studio_x.extend_from_slice(row);
        studio_y.push(label);
    }
    let (model, report) = train(&studio_x, d, &studio_y, classes.to_vec(), config)?;
    tracing::info!(rows = report.rows, seconds = report.seconds, "studio head");
    let gate_y: Vec<usize> = copies.iter().map(|&c| usize::from(c)).collect();
    let gate_classes = GATE_CLASSES.iter().map(|c| c.to_string()).collect();
    let (gate, report) = train(x, d, &gate_y, gate_classes, config)?;
    tracing::info!(
        train_accuracy = report.train_accuracy,
        seconds = report.seconds,
        "studio gate"
    );
    Ok(StudioHead {
        gate,
        min_studio: DEFAULT_MIN_STUDIO,
        model,
    })
}

/// A PCA fitted on the rows `x` (`d` values each), as training fits one.
fn fit_pca(x: &[f32], d: usize, keep: Keep) -> Result<PcaModel, PipelineError> {
    let mut stats = PcaStats::new(d);
    stats.update(x)?;
    Ok(fruits_pca::fit(&stats, keep)?)
}

/// Accuracy of every C of `cv.grid` on each held-out fold of `rows`.
fn cross_validate(
    rows: &Rows,
    y: &[usize],
    classes: &[String],
    pca: &PcaChoice,
    config: &TrainConfig,
    cv: &CrossValidation,
) -> Result<CvReport, PipelineError> {
    cv::check(cv.folds, &cv.grid, rows.len())?;
    let folds = cv::stratified_folds(y, classes.len(), cv.folds);
    let mut accuracy = vec![Vec::with_capacity(cv.folds); cv.grid.len()];
    for fold in 0..cv.folds {
        let (mut train_x, mut train_y, mut held_x, mut held_y) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut train_c, mut held_c) = (Vec::new(), Vec::new());
        let bins = rows.colour_bins;
        for (i, ((row, &label), &f)) in rows.x.chunks_exact(rows.d).zip(y).zip(&folds).enumerate() {
            let (xs, ys, cs) = if f == fold {
                (&mut held_x, &mut held_y, &mut held_c)
            } else {
                (&mut train_x, &mut train_y, &mut train_c)
            };
            xs.extend_from_slice(row);
            ys.push(label);
            if bins > 0 {
                cs.extend_from_slice(&rows.colour[i * bins..(i + 1) * bins]);
            }
        }
        // A PCA fitted by training is part of what is validated: fit it on
        // this fold's training part alone.
        if let PcaChoice::Fit(keep) = pca {
            let model = fit_pca(&train_x, rows.d, *keep)?;
            train_x = model.transform(&train_x)?;
            held_x = model.transform(&held_x)?;
        }
        let mut d = train_x.len() / train_y.len().max(1);
        if bins > 0 {
            train_x = append_columns(&train_x, d, &train_c, bins);
            held_x = append_columns(&held_x, d, &held_c, bins);
            d += bins;
        }
        for (c, scores) in cv.grid.iter().zip(&mut accuracy) {
            let config = TrainConfig { c: *c, ..*config };
            let (model, _) = train(&train_x, d, &train_y, classes.to_vec(), &config)?;
            let predicted = model.predict(&held_x)?;
            scores.push(Confusion::new(classes.len(), &held_y, &predicted).accuracy());
            tracing::info!(fold, c, accuracy = scores.last(), "cross-validation");
        }
    }
    let scores = cv
        .grid
        .iter()
        .zip(accuracy)
        .map(|(c, a)| CvScore::new(*c, a))
        .collect();
    Ok(CvReport::new(cv.folds, rows.len(), scores))
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
    /// Rows the gate sent to the studio head (`None`: the classifier has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub studio_rows: Option<usize>,
    /// Seconds spent reading and scoring.
    pub seconds: f64,
    /// The confusion counts (not in the JSON report: the PNG shows them).
    #[serde(skip)]
    pub confusion: Confusion,
}

impl Evaluation {
    /// "`rows` `noun` of split Test: accuracy 98.24%, macro-F1 0.9821", the
    /// first line of the report, the chart's title.
    pub fn headline(&self, noun: &str) -> String {
        let split = if self.split.is_empty() {
            String::new()
        } else {
            format!(" of split {}", self.split)
        };
        format!(
            "{} {noun}{split}: accuracy {:.2}%, macro-F1 {:.4}",
            self.rows,
            self.accuracy * 100.0,
            self.macro_f1
        )
    }
}

/// Scores `classifier` on the rows of `split` in `ds`.
pub fn evaluate_dataset(
    classifier: &Classifier,
    ds: &Dataset,
    split: Option<&str>,
    revenue: &NetRevenue,
) -> Result<Evaluation, PipelineError> {
    let started = std::time::Instant::now();
    revenue
        .check_values()
        .and_then(|()| revenue.check_classes(classifier.classes()))
        .map_err(fruits_classify::ClassifyError::from)?;
    let kind = classifier.input_kind(&ds.manifest().meta)?;
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
        return Err(PipelineError::NoKnownLabels {
            dataset: ds.root().to_string(),
        });
    }
    let d = rows.d;
    let x: Vec<f32> = keep
        .iter()
        .flat_map(|&i| rows.x[i * d..(i + 1) * d].iter().copied())
        .collect();
    let bins = classifier.file.colour_bins;
    let colour: Vec<f32> = if bins > 0 {
        keep.iter()
            .flat_map(|&i| rows.colour[i * bins..(i + 1) * bins].iter().copied())
            .collect()
    } else {
        Vec::new()
    };
    let (proba, studio_rows) = score_in_chunks(classifier, &x, d, &colour, kind)?;
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
        studio_rows: classifier.file.studio.as_ref().map(|_| studio_rows),
        seconds: started.elapsed().as_secs_f64(),
        confusion,
    })
}

/// Scores rows a few thousand at a time, so the PCA's centred copy stays
/// small: the probabilities, and how many rows went to the studio head.
fn score_in_chunks(
    classifier: &Classifier,
    x: &[f32],
    d: usize,
    colour: &[f32],
    kind: InputKind,
) -> Result<(Vec<f32>, usize), PipelineError> {
    let bins = classifier.file.colour_bins;
    let (mut out, mut studio) = (Vec::new(), 0);
    for (i, chunk) in x.chunks(BATCH_ROWS * d).enumerate() {
        let c = if bins > 0 {
            let start = i * BATCH_ROWS * bins;
            &colour[start..(start + chunk.len() / d * bins).min(colour.len())]
        } else {
            &[][..]
        };
        let (p, routed) = classifier.proba_routed(chunk, c, kind)?;
        out.extend(p);
        studio += routed.iter().filter(|r| **r).count();
    }
    Ok((out, studio))
}
