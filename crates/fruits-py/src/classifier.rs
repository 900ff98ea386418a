//! `fruits._native.Classifier`: train, evaluate and identify, what
//! `fruits.Classifier` wraps. Reports cross as JSON (the CLI's `--json`).

use std::sync::OnceLock;

use arrow_array::RecordBatch;
use arrow_pyarrow::PyArrowType;
use fruits_bundle::Classifier as Bundle;
use fruits_identify::{Identifier, LoadOptions};
use fruits_image::DecodeLimits;
use fruits_learn::TrainConfig;
use fruits_learn::metrics::NetRevenue;
use fruits_model::ModelOptions;
use fruits_pipeline::classify::{
    CrossValidation, PcaChoice, Rowset, Source, evaluate_dataset, train_sources,
};
use fruits_store::{Dataset, DatasetMeta};
use pyo3::prelude::*;

use crate::error::{Error, Result};
use crate::{json_err, open, storage_options};

/// What `Classifier.train` trains on.
#[derive(FromPyObject)]
pub enum TrainData {
    /// Features or reduced outputs (folders or s3:// prefixes).
    Locations(Vec<String>),
    /// Rows in memory: Arrow batches and their output's metadata (JSON).
    Table(Vec<PyArrowType<RecordBatch>>, String),
}

/// How to train, from `train`'s keyword arguments.
struct Settings {
    choice: PcaChoice,
    config: TrainConfig,
    cv: Option<CrossValidation>,
}

impl Settings {
    // The Python keyword arguments, one to one.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        c: f64,
        max_iter: usize,
        variance: Option<f64>,
        k: Option<usize>,
        no_pca: bool,
        pca: Option<String>,
        cv: Option<usize>,
        cv_c: Option<Vec<f64>>,
    ) -> Result<Settings> {
        let choice = match (pca, no_pca, k, variance) {
            (Some(dir), false, None, None) => {
                let dir = open(&dir)?;
                PcaChoice::Given(py.detach(|| fruits_pca::load(&dir))?.model)
            }
            (None, true, None, None) => PcaChoice::None,
            (None, false, Some(k), None) => PcaChoice::Fit(fruits_pca::Keep::K(k)),
            (None, false, None, v) => PcaChoice::Fit(fruits_pca::Keep::Variance(
                v.unwrap_or(fruits_pipeline::reduce::DEFAULT_VARIANCE),
            )),
            _ => {
                return Err(Error::input(
                    "give at most one of pca, no_pca, k and variance",
                ));
            }
        };
        let mut config = TrainConfig {
            c,
            ..TrainConfig::default()
        };
        config.lbfgs.max_iter = max_iter;
        let cv = cv.map(|folds| CrossValidation {
            folds,
            grid: cv_c.unwrap_or_else(|| fruits_learn::DEFAULT_CV_GRID.to_vec()),
        });
        Ok(Settings { choice, config, cv })
    }

    fn train(
        self,
        sources: &[Source<'_>],
        split: Option<&str>,
        colour: bool,
        studio_head: bool,
    ) -> std::result::Result<Bundle, fruits_pipeline::PipelineError> {
        train_sources(
            sources,
            split,
            self.choice,
            &self.config,
            self.cv.as_ref(),
            colour,
            studio_head,
        )
    }
}

/// A trained classifier, and the image model it needs once asked to identify photos.
#[pyclass(frozen)]
pub struct Classifier {
    bundle: Bundle,
    identifier: OnceLock<Identifier>,
}

impl Classifier {
    fn new(bundle: Bundle) -> Self {
        Classifier {
            bundle,
            identifier: OnceLock::new(),
        }
    }

    /// The identifier, built on first use (loads the image model the bundle records).
    fn identifier(
        &self,
        image_model: Option<String>,
        intra_threads: usize,
        ort_lib: Option<std::path::PathBuf>,
    ) -> Result<&Identifier> {
        if let Some(identifier) = self.identifier.get() {
            return Ok(identifier);
        }
        let options = LoadOptions {
            image_model,
            model: ModelOptions {
                intra_threads,
                runtime_library: ort_lib,
                ..ModelOptions::default()
            },
            limits: DecodeLimits::default(),
            ..LoadOptions::default()
        };
        let built =
            fruits_identify::with_classifier(self.bundle.clone(), &storage_options(), &options)?;
        Ok(self.identifier.get_or_init(|| built))
    }
}

/// A photo given to `identify`: a path (or s3:// URL) to read, or its bytes.
#[derive(FromPyObject)]
pub enum PhotoArg {
    /// Read from here (a str is tried first: bytes are never a path).
    Path(String),
    /// The photo's content.
    Bytes(Vec<u8>),
}

#[pymethods]
impl Classifier {
    /// Trains on the rows of `split` of `data`: the features or reduced
    /// outputs at a list of locations, as `fruits train` does, or rows in
    /// memory (`(batches, meta_json)`: Arrow batches with the columns of a
    /// features output and the metadata of the output they came from). PCA:
    /// `pca` (a saved PCA's folder) for reduced data, else fitted keeping
    /// `variance` or `k`, or none with `no_pca`. `cv` folds choose C among
    /// `cv_c` on the training rows. The photos' colour descriptors go beside
    /// the features unless `colour` is false. With augmented copies or `real`
    /// outputs (real photos, trained on beside the studio ones) among the rows,
    /// a studio head and its gate are trained as well unless `studio_head` is
    /// false.
    #[staticmethod]
    // Python keyword arguments, mirrored one to one.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (data, split=None, c=fruits_learn::DEFAULT_C, max_iter=fruits_learn::DEFAULT_MAX_ITER, variance=None, k=None, no_pca=false, pca=None, cv=None, cv_c=None, colour=true, studio_head=true, real=Vec::new()))]
    fn train(
        py: Python<'_>,
        data: TrainData,
        split: Option<String>,
        c: f64,
        max_iter: usize,
        variance: Option<f64>,
        k: Option<usize>,
        no_pca: bool,
        pca: Option<String>,
        cv: Option<usize>,
        cv_c: Option<Vec<f64>>,
        colour: bool,
        studio_head: bool,
        real: Vec<String>,
    ) -> Result<Classifier> {
        let settings = Settings::new(py, c, max_iter, variance, k, no_pca, pca, cv, cv_c)?;
        let split = split.as_deref();
        let bundle = match data {
            TrainData::Locations(location) => {
                let roots = location
                    .iter()
                    .map(|l| Ok((open(l)?, false)))
                    .chain(real.iter().map(|l| Ok((open(l)?, true))))
                    .collect::<Result<Vec<_>>>()?;
                py.detach(|| {
                    let datasets = roots
                        .iter()
                        .map(|(root, real)| Ok((Dataset::open(root)?, *real)))
                        .collect::<std::result::Result<Vec<_>, fruits_store::StoreError>>()?;
                    settings.train(&Source::stored(&datasets), split, colour, studio_head)
                })?
            }
            TrainData::Table(batches, meta_json) => {
                if !real.is_empty() {
                    return Err(Error::input(
                        "real= names outputs; train on a table alone, or on outputs",
                    ));
                }
                let meta: DatasetMeta = serde_json::from_str(&meta_json).map_err(|e| {
                    Error::input(format!(
                        "the table carries no readable fruits metadata ({e}): train on a \
                         table from fruits.featurize or fruits.read"
                    ))
                })?;
                let batches: Vec<RecordBatch> = batches.into_iter().map(|b| b.0).collect();
                py.detach(|| {
                    let source = Source {
                        rows: Rowset::InMemory {
                            batches: &batches,
                            meta: &meta,
                            name: "a table",
                        },
                        real: false,
                    };
                    settings.train(&[source], split, colour, studio_head)
                })?
            }
        };
        Ok(Classifier::new(bundle))
    }

    /// Loads a classifier bundle (a folder or s3:// prefix).
    #[staticmethod]
    fn load(py: Python<'_>, location: &str) -> Result<Classifier> {
        let dir = open(location)?;
        Ok(Classifier::new(py.detach(|| Bundle::load(&dir))?))
    }

    /// Saves the bundle into the folder `location`, as `fruits train --out` does.
    fn save(&self, py: Python<'_>, location: &str) -> Result<()> {
        let dir = open(location)?;
        py.detach(|| -> Result<()> {
            dir.check_writable()?;
            Ok(self.bundle.save(&dir)?)
        })
    }

    /// Scores it on the rows of `split` of the output at `location`, as
    /// `fruits evaluate` does; with `out`, also writes its report files there.
    /// `revenue_toml` (a TOML file's text) or `revenue_json` (a dict, as
    /// JSON) overrides the net-revenue values. Returns
    /// `(report JSON, confusion counts row-major)`.
    #[pyo3(signature = (location, split=None, out=None, revenue_toml=None, revenue_json=None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        location: &str,
        split: Option<String>,
        out: Option<String>,
        revenue_toml: Option<String>,
        revenue_json: Option<String>,
    ) -> Result<(String, Vec<u64>, Vec<String>)> {
        let parsed = match (revenue_toml, revenue_json) {
            (Some(text), None) => NetRevenue::from_toml(&text),
            (None, Some(text)) => NetRevenue::from_json(&text),
            (None, None) => Ok(NetRevenue::default()),
            (Some(_), Some(_)) => {
                return Err(Error::input("give the revenue values once: TOML or a dict"));
            }
        };
        let revenue =
            parsed.map_err(|e| Error::input(format!("not a valid revenue table: {e}")))?;
        let root = open(location)?;
        let out = out.map(|o| open(&o)).transpose()?;
        let (eval, warnings) = py.detach(|| -> Result<_> {
            let ds = Dataset::open(&root)?;
            let eval = evaluate_dataset(&self.bundle, &ds, split.as_deref(), &revenue)?;
            let warnings = match &out {
                Some(out) => {
                    out.check_writable()?;
                    fruits_pipeline::report::write_evaluation(&eval, self.bundle.classes(), out)?
                }
                None => Vec::new(),
            };
            Ok((eval, warnings))
        })?;
        let json = serde_json::to_string(&eval).map_err(json_err)?;
        let warnings = warnings.iter().map(ToString::to_string).collect();
        Ok((json, eval.confusion.counts, warnings))
    }

    /// Identifies photos given as bytes or paths (read a chunk at a time):
    /// a JSON list with, per photo, either `{"top": [...], "width",
    /// "height"}` or `{"error", "kind"}` (a photo that cannot be read or
    /// decoded; the others are answered).
    #[pyo3(signature = (photos, top=fruits_identify::DEFAULT_TOP, image_model=None, intra_threads=1, ort_lib=None))]
    fn identify(
        &self,
        py: Python<'_>,
        photos: Vec<PhotoArg>,
        top: usize,
        image_model: Option<String>,
        intra_threads: usize,
        ort_lib: Option<std::path::PathBuf>,
    ) -> Result<String> {
        let answers = py.detach(|| -> Result<Vec<serde_json::Value>> {
            let identifier = self.identifier(image_model, intra_threads, ort_lib)?;
            let options = crate::storage_options();
            let read = |i: usize| match &photos[i] {
                PhotoArg::Bytes(b) => Ok(fruits_location::Bytes::copy_from_slice(b)),
                PhotoArg::Path(p) => fruits_location::Location::parse(p, &options)?.get(""),
            };
            let mut answers = Vec::with_capacity(photos.len());
            identifier.identify_each(photos.len(), top, read, |_, a| {
                answers.push(match a {
                    Ok(p) => serde_json::to_value(&p).unwrap_or_default(),
                    Err(e) => serde_json::json!({"error": e.to_string(), "kind": e.kind()}),
                });
            })?;
            Ok(answers)
        })?;
        serde_json::to_string(&answers).map_err(json_err)
    }

    /// The classes, in the order of the model's outputs.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.bundle.classes().to_vec()
    }

    /// `classifier.json` as JSON text (features contract, PCA step, training report).
    #[getter]
    fn file_json(&self) -> Result<String> {
        serde_json::to_string(&self.bundle.file).map_err(json_err)
    }
}
