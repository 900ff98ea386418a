//! Classifiers over stored datasets: read the rows of a split, train, evaluate.

use std::collections::BTreeSet;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use fruits_bundle::{
    Classifier, DEFAULT_MIN_STUDIO, GATE_CLASSES, InputKind, StudioHead, TrainingInfo,
    TrainingSource, append_columns,
};
use fruits_catalogue::{Catalogue, FruitLevel};
use fruits_learn::cv::{self, CvReport, CvScore};
use fruits_learn::metrics::{ClassScores, Confusion, NetRevenue, RevenuePoint};
use fruits_learn::{TrainConfig, argmax, train};
use fruits_pca::{Keep, PcaModel, PcaStats};
use fruits_store::{Dataset, DatasetMeta, columns};
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
    /// The vectors of each row's other views (`n x extra_views x d`), when
    /// the dataset was featurised with views.
    pub views: Vec<f32>,
    /// Other views per row (0: none).
    pub extra_views: usize,
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
    let meta = &ds.manifest().meta;
    let wanted = wanted_columns(meta);
    let batches = ds
        .feature_columns(&wanted, BATCH_ROWS)
        .map(|b| b.map_err(PipelineError::from));
    rows_of_batches(batches, meta, &ds.root().to_string(), split)
}

/// The columns training reads from rows described by `meta`.
fn wanted_columns(meta: &DatasetMeta) -> Vec<&'static str> {
    let mut wanted = vec![
        meta.vector_column(),
        columns::PATH,
        columns::LABEL,
        columns::SPLIT,
    ];
    if meta.spec.colour_bins > 0 {
        wanted.push(columns::COLOUR);
    }
    if meta.extra_views() > 0 {
        wanted.push(columns::VIEWS);
    }
    wanted
}

/// The rows of `split` among `batches` (rows described by `meta`, from the
/// output or table called `name`).
fn rows_of_batches(
    batches: impl Iterator<Item = Result<RecordBatch, PipelineError>>,
    meta: &DatasetMeta,
    name: &str,
    split: Option<&str>,
) -> Result<Rows, PipelineError> {
    let column = meta.vector_column();
    let has_colour = meta.spec.colour_bins > 0;
    let extra_views = meta.extra_views();
    let mut rows = Rows {
        extra_views,
        ..Rows::default()
    };
    let mut splits_seen = BTreeSet::new();
    for batch in batches {
        let batch = batch?;
        let (values, d) = vector_column(&batch, column, &name)?;
        rows.d = d;
        let colour = if has_colour {
            let (c, bins) = vector_column(&batch, columns::COLOUR, &name)?;
            rows.colour_bins = bins;
            Some(c)
        } else {
            None
        };
        let views = if extra_views > 0 {
            Some(vector_column(&batch, columns::VIEWS, &name)?.0)
        } else {
            None
        };
        let strings = |col: &'static str| {
            batch
                .column_by_name(col)
                .and_then(|c| c.as_string_opt::<i32>().cloned())
                .ok_or_else(|| PipelineError::MissingColumn {
                    dataset: name.to_string(),
                    column: col,
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
            if let Some(views) = views {
                let w = extra_views * d;
                rows.views.extend_from_slice(&views[i * w..(i + 1) * w]);
            }
            rows.labels.push(labels.value(i).to_string());
            rows.paths.push(paths.value(i).to_string());
        }
    }
    if rows.is_empty() {
        return Err(PipelineError::NoRows {
            dataset: name.to_string(),
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
    /// The values of C to try ([`fruits_bundle::DEFAULT_CV_GRID`] by default).
    pub grid: Vec<f64>,
}

/// Rows to train on.
#[derive(Debug, Clone, Copy)]
pub enum Rowset<'a> {
    /// A features (or reduced) output.
    Stored(&'a Dataset),
    /// Rows in memory (a table of the Python API): Arrow batches with the
    /// columns of a features output, and the metadata of the output they
    /// came from.
    InMemory {
        /// The batches.
        batches: &'a [RecordBatch],
        /// What made them.
        meta: &'a DatasetMeta,
        /// What to call them in messages and in the bundle's sources.
        name: &'a str,
    },
}

impl Rowset<'_> {
    fn meta(&self) -> &DatasetMeta {
        match self {
            Rowset::Stored(ds) => &ds.manifest().meta,
            Rowset::InMemory { meta, .. } => meta,
        }
    }

    fn name(&self) -> String {
        match self {
            Rowset::Stored(ds) => ds.root().to_string(),
            Rowset::InMemory { name, .. } => name.to_string(),
        }
    }

    fn read(&self, split: Option<&str>) -> Result<Rows, PipelineError> {
        match self {
            Rowset::Stored(ds) => read_rows(ds, split),
            Rowset::InMemory {
                batches,
                meta,
                name,
            } => {
                // Stored parts are checked by the reader; rows in memory here.
                let checked = batches.iter().map(|batch| {
                    fruits_store::check_vector_lengths(batch, meta, name)?;
                    Ok(batch.clone())
                });
                rows_of_batches(checked, meta, name, split)
            }
        }
    }
}

/// One set of rows to train on.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The rows.
    pub rows: Rowset<'a>,
    /// Its photos are real photos (shops, kitchens, orchards), not studio
    /// ones: they train the main head and, as photos in the wild, the gate,
    /// never the studio head.
    pub real: bool,
}

impl<'a> Source<'a> {
    /// The sources of stored outputs, each with whether it holds real photos.
    pub fn stored(datasets: &'a [(Dataset, bool)]) -> Vec<Source<'a>> {
        datasets
            .iter()
            .map(|(dataset, real)| Source {
                rows: Rowset::Stored(dataset),
                real: *real,
            })
            .collect()
    }
}

/// Trains a classifier on the rows of `split` in `ds`: [`train_sources`] with
/// one source of studio photos.
pub fn train_dataset(
    ds: &Dataset,
    split: Option<&str>,
    pca: PcaChoice,
    config: &TrainConfig,
    cv: Option<&CrossValidation>,
    colour: bool,
    studio_head: bool,
) -> Result<Classifier, PipelineError> {
    let source = Source {
        rows: Rowset::Stored(ds),
        real: false,
    };
    train_sources(&[source], split, pca, config, cv, colour, studio_head)
}

/// The training rows gathered from every source: each photo's whole view,
/// then (as extra rows of the same label) the other views of the photos that
/// have them.
struct Gathered {
    rows: Rows,
    /// Per row: an augmented copy.
    copies: Vec<bool>,
    /// Per row: a real photo (or a view of one).
    real: Vec<bool>,
    /// Per row: the whole photo (not one of its other views).
    whole: Vec<bool>,
    /// The views the photos with views were featurised in.
    views: Vec<fruits_store::View>,
    sources: Vec<TrainingSource>,
}

/// Reads `split` of every source into one set of training rows.
fn gather_sources(sources: &[Source<'_>], split: Option<&str>) -> Result<Gathered, PipelineError> {
    let first = sources[0].rows.meta();
    let colour_bins = if sources.iter().all(|s| s.rows.meta().spec.colour_bins > 0) {
        first.spec.colour_bins
    } else {
        0
    };
    let mut all = Gathered {
        rows: Rows {
            colour_bins,
            ..Rows::default()
        },
        copies: Vec::new(),
        real: Vec::new(),
        whole: Vec::new(),
        views: Vec::new(),
        sources: Vec::new(),
    };
    for source in sources {
        let meta = source.rows.meta();
        if !meta.spec.same_features(&first.spec) {
            return Err(PipelineError::Store(
                fruits_store::StoreError::ModelMismatch {
                    dir: source.rows.name(),
                    existing: Box::new(first.spec.clone()),
                    current: Box::new(meta.spec.clone()),
                },
            ));
        }
        if !meta.views.is_empty() {
            if !all.views.is_empty() && all.views != meta.views {
                return Err(PipelineError::Config(format!(
                    "{} was featurised with other views than the outputs before it",
                    source.rows.name()
                )));
            }
            all.views = meta.views.clone();
        }
        let rows = source.rows.read(split)?;
        let d = rows.d;
        let copies: Vec<bool> = rows.paths.iter().map(|p| is_copy(p)).collect();
        all.sources.push(TrainingSource {
            location: source.rows.name(),
            rows: rows.len() as u64,
            real: source.real,
            augmented_rows: copies.iter().filter(|c| **c).count() as u64,
            views: rows.extra_views + 1,
        });
        let bins = rows.colour_bins;
        let colour_of = |i: usize| -> &[f32] {
            if colour_bins > 0 {
                &rows.colour[i * bins..(i + 1) * bins]
            } else {
                &[]
            }
        };
        let out = &mut all.rows;
        out.d = d;
        for (i, copy) in copies.iter().enumerate() {
            out.x.extend_from_slice(&rows.x[i * d..(i + 1) * d]);
            out.colour.extend_from_slice(colour_of(i));
            out.labels.push(rows.labels[i].clone());
            out.paths.push(rows.paths[i].clone());
            all.copies.push(*copy);
            all.real.push(source.real);
            all.whole.push(true);
        }
        let extra = rows.extra_views;
        for (i, views) in rows.views.chunks_exact((extra * d).max(1)).enumerate() {
            for view in views.chunks_exact(d) {
                out.x.extend_from_slice(view);
                out.colour.extend_from_slice(colour_of(i));
                out.labels.push(rows.labels[i].clone());
                out.paths.push(rows.paths[i].clone());
                all.copies.push(copies[i]);
                all.real.push(source.real);
                all.whole.push(false);
            }
        }
    }
    Ok(all)
}

/// Trains a classifier on the rows of `split` of every source. A reduced
/// output (alone) is trained with the PCA that made it: `pca` when given,
/// else the PCA folder beside it (as `fruits run` and the Spark job lay them
/// out). With `cv`, C is chosen by cross-validation on the training photos
/// first (`config.c` is then not used); a PCA fitted here is fitted again
/// inside each fold, on that fold's training part only, so no held-out row
/// shapes it.
///
/// Outputs featurised with views give a row per view, and the classifier
/// averages the main head over those views of a photo. With `studio_head`
/// and rows that mix studio photos with photos in the wild (augmented
/// copies, or the photos of a `real` source), the bundle also gets a studio
/// head trained on the studio photos alone and a gate telling the two apart
/// ([`StudioHead`]).
pub fn train_sources(
    sources: &[Source<'_>],
    split: Option<&str>,
    pca: PcaChoice,
    config: &TrainConfig,
    cv: Option<&CrossValidation>,
    colour: bool,
    studio_head: bool,
) -> Result<Classifier, PipelineError> {
    let Some(first) = sources.first() else {
        return Err(PipelineError::Config("nothing to train on".into()));
    };
    let meta = first.rows.meta();
    let reduced = meta.pca_fingerprint.is_some();
    if sources.len() > 1
        && sources
            .iter()
            .any(|s| s.rows.meta().pca_fingerprint.is_some())
    {
        return Err(PipelineError::Config(
            "training on several outputs takes features outputs, not reduced ones".into(),
        ));
    }
    let pca = match (pca, reduced) {
        (PcaChoice::Given(_), false) => {
            return Err(PipelineError::NotReduced {
                dataset: first.rows.name(),
            });
        }
        (PcaChoice::Given(model), true) => PcaChoice::Given(model),
        (_, true) => match first.rows {
            Rowset::Stored(ds) => PcaChoice::Given(pca_beside(ds)?.model),
            Rowset::InMemory { name, .. } => {
                return Err(PipelineError::Config(format!(
                    "{name} holds reduced rows: give the PCA that made them"
                )));
            }
        },
        (choice, false) => choice,
    };
    let Gathered {
        mut rows,
        copies,
        real,
        whole,
        views,
        sources,
    } = gather_sources(sources, split)?;
    let augmented_rows = copies
        .iter()
        .zip(&whole)
        .filter(|(c, w)| **c && **w)
        .count() as u64;
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
        // Folds hold whole photos: a photo's views never sit on both sides.
        Some(cv) => {
            let (photos, photo_y) = whole_photos(&rows, &y, &whole);
            Some(cross_validate(
                &photos, &photo_y, &classes, &pca, config, cv,
            )?)
        }
        None => None,
    };
    let config = &TrainConfig {
        c: cv_report.as_ref().map_or(config.c, |r| r.chosen_c),
        ..*config
    };
    // The photos in the wild: augmented copies and real photos (all views).
    let wild: Vec<bool> = copies.iter().zip(&real).map(|(c, r)| *c || *r).collect();
    let studio_photos = wild.iter().zip(&whole).filter(|(w, h)| !**w && **h).count();
    let with_studio_head = studio_head && studio_photos > 0 && wild.iter().any(|w| *w);
    // The studio head's own inputs: its own PCA of the studio photos alone
    // (the main head's PCA, fitted mostly on photos in the wild, cost the
    // studio photos a few tenths of a point), beside their colour.
    let studio_inputs = match (&pca, with_studio_head) {
        (PcaChoice::Given(_), _) | (_, false) => None,
        (choice, true) => {
            let keep = match choice {
                PcaChoice::Fit(keep) => *keep,
                _ => Keep::Variance(crate::reduce::DEFAULT_VARIANCE),
            };
            Some(studio_inputs(&rows, &y, &wild, &whole, keep)?)
        }
    };
    let (pca, x) = match pca {
        PcaChoice::Given(model) => {
            let fingerprint = meta.pca_fingerprint.clone().unwrap_or_default();
            if model.fingerprint() != fingerprint {
                return Err(PipelineError::PcaMismatch {
                    dataset: first.rows.name(),
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
    let studio = if with_studio_head {
        Some(train_studio_head(
            &x,
            d,
            &y,
            &classes,
            &wild,
            &whole,
            studio_inputs,
            config,
        )?)
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
        source: sources
            .iter()
            .map(|s| s.location.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        split: split.unwrap_or_default().to_string(),
        c: config.c,
        report,
        cv: cv_report,
        augmented_rows,
    };
    let mut classifier = Classifier::new(features, pca, model, training)
        .with_colour(bins)
        .with_views(views);
    classifier.file.sources = sources;
    Ok(match studio {
        Some((head, pca)) => classifier.with_studio_head(head, pca),
        None => classifier,
    })
}

/// What the studio head is trained on when it has its own PCA.
struct StudioInputs {
    /// Rows: the PCA of each studio photo's whole view, then its colour.
    x: Vec<f32>,
    /// Values per row.
    d: usize,
    /// Their labels.
    y: Vec<usize>,
    /// The PCA, fitted on the studio photos alone.
    pca: PcaModel,
}

/// The studio photos' rows (whole views of photos not in the wild) through a
/// PCA fitted on them alone, keeping `keep`.
fn studio_inputs(
    rows: &Rows,
    y: &[usize],
    wild: &[bool],
    whole: &[bool],
    keep: Keep,
) -> Result<StudioInputs, PipelineError> {
    let (d, bins) = (rows.d, rows.colour_bins);
    let (mut raw, mut colour, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    for (i, (w, h)) in wild.iter().zip(whole).enumerate() {
        if !*w && *h {
            raw.extend_from_slice(&rows.x[i * d..(i + 1) * d]);
            if bins > 0 {
                colour.extend_from_slice(&rows.colour[i * bins..(i + 1) * bins]);
            }
            labels.push(y[i]);
        }
    }
    let pca = fit_pca(&raw, d, keep)?;
    let reduced = pca.transform(&raw)?;
    let x = if bins > 0 {
        append_columns(&reduced, pca.k, &colour, bins)
    } else {
        reduced
    };
    Ok(StudioInputs {
        x,
        d: pca.k + bins,
        y: labels,
        pca,
    })
}

/// The rows of whole photos (not their other views) and their labels.
fn whole_photos(rows: &Rows, y: &[usize], whole: &[bool]) -> (Rows, Vec<usize>) {
    let (d, bins) = (rows.d, rows.colour_bins);
    let mut out = Rows {
        d,
        colour_bins: bins,
        ..Rows::default()
    };
    let mut labels = Vec::new();
    for (i, _) in whole.iter().enumerate().filter(|(_, w)| **w) {
        out.x.extend_from_slice(&rows.x[i * d..(i + 1) * d]);
        if bins > 0 {
            out.colour
                .extend_from_slice(&rows.colour[i * bins..(i + 1) * bins]);
        }
        out.labels.push(rows.labels[i].clone());
        out.paths.push(rows.paths[i].clone());
        labels.push(y[i]);
    }
    (out, labels)
}

/// The studio head (trained on the whole views of the studio photos, on its
/// own inputs when given, else on the main head's) and its gate (studio
/// photos against photos in the wild: copies and real photos, on the main
/// head's inputs).
#[allow(clippy::too_many_arguments)]
fn train_studio_head(
    x: &[f32],
    d: usize,
    y: &[usize],
    classes: &[String],
    wild: &[bool],
    whole: &[bool],
    own: Option<StudioInputs>,
    config: &TrainConfig,
) -> Result<(StudioHead, Option<PcaModel>), PipelineError> {
    let (model, report, pca) = match own {
        Some(own) => {
            let (model, report) = train(&own.x, own.d, &own.y, classes.to_vec(), config)?;
            (model, report, Some(own.pca))
        }
        None => {
            let (mut studio_x, mut studio_y) = (Vec::new(), Vec::new());
            for (((row, &label), w), h) in x.chunks_exact(d).zip(y).zip(wild).zip(whole) {
                if !*w && *h {
                    studio_x.extend_from_slice(row);
                    studio_y.push(label);
                }
            }
            let (model, report) = train(&studio_x, d, &studio_y, classes.to_vec(), config)?;
            (model, report, None)
        }
    };
    tracing::info!(rows = report.rows, seconds = report.seconds, "studio head");
    let gate_y: Vec<usize> = wild.iter().map(|&c| usize::from(c)).collect();
    let gate_classes = GATE_CLASSES.iter().map(|c| c.to_string()).collect();
    let (gate, report) = train(x, d, &gate_y, gate_classes, config)?;
    tracing::info!(
        train_accuracy = report.train_accuracy,
        seconds = report.seconds,
        "studio gate"
    );
    let head = StudioHead {
        gate,
        min_studio: DEFAULT_MIN_STUDIO,
        model,
        pca: None,
    };
    Ok((head, pca))
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
    /// Views of each photo averaged (1: the whole photo alone).
    pub views: usize,
    /// The same photos scored at the fruit level (`None`: no label has a
    /// fruit in the catalogue).
    pub fruit: Option<FruitScores>,
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

/// Scores `classifier` on the rows of `split` in `ds`: accuracy, macro-F1,
/// per-class scores and the net revenue over the rows whose label is one of
/// its classes, and the same photos scored at the fruit level (the right
/// fruit, whatever the variety: [`FruitScores`]) over every row whose label
/// the fruit catalogue knows, so a classifier is also scored on photos of
/// classes it was never trained on. When the data holds the views the
/// classifier averages (`fruits featurize --views`), each photo is scored as
/// `identify` answers it; otherwise on the whole photo.
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
        .map_err(fruits_learn::LearnError::from)?;
    let meta = &ds.manifest().meta;
    let kind = classifier.input_kind(&meta.spec, meta.pca_fingerprint.as_deref())?;
    let rows = read_rows(ds, split)?;
    let catalogue = Catalogue::builtin()?;
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
    let fruit_known = rows.labels.iter().any(|l| catalogue.fruit_of(l).is_some());
    if keep.is_empty() && !fruit_known {
        return Err(PipelineError::NoKnownLabels {
            dataset: ds.root().to_string(),
        });
    }
    // Every photo is scored (the fruit level needs those of unknown classes too).
    let views = if !classifier.file.views.is_empty() && meta.views == classifier.file.views {
        rows.extra_views + 1
    } else {
        1
    };
    let d = rows.d;
    let x: Vec<f32> = if views == 1 {
        rows.x.clone()
    } else {
        let w = rows.extra_views * d;
        (0..rows.len())
            .flat_map(|i| {
                rows.x[i * d..(i + 1) * d]
                    .iter()
                    .chain(&rows.views[i * w..(i + 1) * w])
                    .copied()
            })
            .collect()
    };
    let colour: Vec<f32> = if classifier.file.colour_bins > 0 {
        rows.colour.clone()
    } else {
        Vec::new()
    };
    let (proba, routed) = score_in_chunks(classifier, &x, d * views, &colour, kind, views)?;
    let mut predicted = Vec::with_capacity(truth.len());
    let mut scored = Vec::with_capacity(truth.len());
    for (&i, &t) in keep.iter().zip(&truth) {
        let p = &proba[i * k..(i + 1) * k];
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
    let threshold = classifier
        .file
        .abstain_below
        .map_or(revenue.break_even(), f64::from);
    let fruit = fruit_scores(&catalogue, classes, &rows.labels, &proba, threshold)?;
    let scored_rows = truth.len();
    Ok(Evaluation {
        source: ds.root().to_string(),
        split: split.unwrap_or_default().to_string(),
        rows: scored_rows,
        accuracy: if scored_rows > 0 {
            confusion.accuracy()
        } else {
            0.0
        },
        macro_f1: if scored_rows > 0 {
            confusion.macro_f1()
        } else {
            0.0
        },
        per_class: classes.iter().cloned().zip(confusion.per_class()).collect(),
        revenue_always_answer: revenue.at(classes, &scored, 0.0),
        revenue_best: best,
        revenue_curve: curve,
        revenue_values: revenue.clone(),
        unknown_labels: unknown.into_iter().collect(),
        top_confusions: mistakes,
        studio_rows: classifier
            .file
            .studio
            .as_ref()
            .map(|_| keep.iter().filter(|&&i| routed[i]).count()),
        views,
        fruit,
        seconds: started.elapsed().as_secs_f64(),
        confusion,
    })
}

/// How often the right fruit is named, whatever the variety.
#[derive(Debug, Clone, Serialize)]
pub struct FruitScores {
    /// Photos scored: those whose label the fruit catalogue knows.
    pub rows: usize,
    /// Share whose most probable fruit (class probabilities summed by fruit) is right.
    pub accuracy: f64,
    /// Share whose right fruit is among the 5 most probable fruits.
    pub top5: f64,
    /// The confidence below which the app says "not sure": the classifier's
    /// own threshold, else the break-even confidence of the net-revenue
    /// values ([`NetRevenue::break_even`]).
    pub threshold: f64,
    /// Share of the photos answered (a fruit at least as probable as the threshold).
    pub answered: f64,
    /// Share right among the photos answered.
    pub right_when_answered: f64,
    /// The most frequent mistakes: (true fruit, answered fruit, count).
    pub top_confusions: Vec<(String, String, u64)>,
}

/// The fruit-level scores of `proba` (rows x classes) for photos labelled
/// `labels`; `None` when no label has a fruit in the catalogue.
fn fruit_scores(
    catalogue: &Catalogue,
    classes: &[String],
    labels: &[String],
    proba: &[f32],
    threshold: f64,
) -> Result<Option<FruitScores>, PipelineError> {
    let fruits = FruitLevel::new(catalogue, classes)?;
    let k = classes.len();
    let (mut rows, mut right, mut top5, mut answered, mut answered_right) = (0, 0, 0, 0, 0);
    let mut mistakes = std::collections::BTreeMap::<(String, String), u64>::new();
    for (label, p) in labels.iter().zip(proba.chunks_exact(k.max(1))) {
        let Some(truth) = catalogue.fruit_of(label) else {
            continue;
        };
        rows += 1;
        let ranked = fruits.ranked(p);
        let (best, confidence) = ranked[0];
        let is_right = fruits.names[best] == truth;
        right += usize::from(is_right);
        top5 += usize::from(
            ranked
                .iter()
                .take(5)
                .any(|(f, _)| fruits.names[*f] == truth),
        );
        if f64::from(confidence) >= threshold {
            answered += 1;
            answered_right += usize::from(is_right);
        }
        if !is_right {
            *mistakes
                .entry((truth.to_string(), fruits.names[best].clone()))
                .or_default() += 1;
        }
    }
    if rows == 0 {
        return Ok(None);
    }
    let mut top_confusions: Vec<(String, String, u64)> =
        mistakes.into_iter().map(|((t, p), c)| (t, p, c)).collect();
    top_confusions.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    top_confusions.truncate(10);
    let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    Ok(Some(FruitScores {
        rows,
        accuracy: share(right, rows),
        top5: share(top5, rows),
        threshold,
        answered: share(answered, rows),
        right_when_answered: share(answered_right, answered),
        top_confusions,
    }))
}

/// Scores photos a few thousand at a time, so the PCA's centred copy stays
/// small (`x` holds `d` values a photo: all its views): the probabilities,
/// and for each photo whether the gate sent it to the studio head.
fn score_in_chunks(
    classifier: &Classifier,
    x: &[f32],
    d: usize,
    colour: &[f32],
    kind: InputKind,
    views: usize,
) -> Result<(Vec<f32>, Vec<bool>), PipelineError> {
    let bins = classifier.file.colour_bins;
    let (mut out, mut studio) = (Vec::new(), Vec::new());
    for (i, chunk) in x.chunks(BATCH_ROWS * d).enumerate() {
        let c = if bins > 0 {
            let start = i * BATCH_ROWS * bins;
            &colour[start..(start + chunk.len() / d * bins).min(colour.len())]
        } else {
            &[][..]
        };
        let (p, routed) = classifier.proba_views(chunk, c, kind, views)?;
        out.extend(p);
        studio.extend(routed);
    }
    Ok((out, studio))
}
