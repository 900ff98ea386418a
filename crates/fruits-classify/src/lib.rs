//! Identifies the fruit from its feature vector: a softmax (multinomial logistic)
//! regression with standardisation, trained by L-BFGS ([`train`]), and the
//! metrics to judge it ([`metrics`]).
//!
//! The model is small (classes x features weights plus the scaler) and stored as
//! JSON beside the PCA it projects with ([`bundle`]), so it can be read without
//! this project. [`info`] holds what the app says about each fruit.

pub mod bundle;
pub mod cv;
pub mod info;
pub mod lbfgs;
pub mod metrics;
mod softmax;

use serde::{Deserialize, Serialize};

pub use bundle::{Classifier, InputKind, TrainingInfo, TrainingSource};
pub use cv::{CvReport, CvScore, DEFAULT_CV_GRID};
pub use fruits_store::FeatureSpec;
pub use info::{Catalogue, FruitInfo, FruitLevel};
pub use lbfgs::StopReason;
pub use softmax::{DEFAULT_C, DEFAULT_MAX_ITER, TrainConfig, TrainReport, train};

/// What can go wrong training or applying a classifier.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// A flat slice of values is not a whole number of rows.
    #[error("{values} values are not rows of the {d} features this classifier takes")]
    NotRows {
        /// Values given.
        values: usize,
        /// Values per row.
        d: usize,
    },
    /// Rows and labels disagree in number.
    #[error("{rows} rows but {labels} labels")]
    LabelCount {
        /// Rows given.
        rows: usize,
        /// Labels given.
        labels: usize,
    },
    /// Fewer than two classes to tell apart.
    #[error("training needs at least 2 classes, got {0}")]
    TooFewClasses(usize),
    /// A label index beyond the class list.
    #[error("label index {index} but only {classes} classes")]
    LabelOutOfRange {
        /// The index.
        index: usize,
        /// The number of classes.
        classes: usize,
    },
    /// The regularisation strength is not a positive number.
    #[error("C must be positive and finite, got {0}")]
    BadC(f64),
    /// Cross-validation asked for a number of folds it cannot make.
    #[error(
        "cross-validation needs 2 to {max} folds and no more folds than rows ({rows}), got {folds}"
    )]
    BadFolds {
        /// Folds asked for.
        folds: usize,
        /// Training rows.
        rows: usize,
        /// Most folds accepted.
        max: usize,
    },
    /// Cross-validation was given no value of C to try.
    #[error("cross-validation needs at least one value of C to try")]
    EmptyGrid,
    /// NaN or infinite values among the training features.
    #[error("the features contain NaN or infinite values")]
    NonFinite,
    /// NaN or infinite values in the rows given to a classifier.
    #[error(
        "the data holds NaN or infinite values (row {row} of {rows}): those rows are damaged \
         (featurise their photos again); the classifier is not at fault"
    )]
    NonFiniteInput {
        /// The first such row, from 0.
        row: usize,
        /// Rows given.
        rows: usize,
    },
    /// Training was interrupted (Ctrl-C): nothing was made.
    #[error("interrupted before the classifier was trained")]
    Cancelled,
    /// The data's vectors come from another image model than the classifier's.
    #[error(
        "the data holds features of image model {data} but the classifier was trained on \
         features of {expected} ({source_hint})"
    )]
    WrongImageModel {
        /// sha256 recorded with the data.
        data: String,
        /// sha256 the classifier expects.
        expected: String,
        /// Where the classifier's model was loaded from.
        source_hint: String,
    },
    /// The data's vectors were made otherwise (output, length, preprocessing).
    #[error("the data's features ({data}) are not made the way the classifier's were ({expected})")]
    WrongFeatures {
        /// How the data's were made.
        data: String,
        /// How the classifier's were made.
        expected: String,
    },
    /// The classifier uses colour descriptors the data does not have.
    #[error(
        "the classifier uses {expected} colour values per photo but the data has {data}: \
         featurise the photos again with this version (it stores the colour beside the features)"
    )]
    NoColour {
        /// Colour values the classifier takes.
        expected: usize,
        /// Colour values per row in the data.
        data: usize,
    },
    /// Reduced rows from another PCA than the classifier's own.
    #[error(
        "the data was reduced by PCA {data} but the classifier {}; give it the features output \
         instead (the classifier applies its own PCA)",
        expected.as_ref().map(|f| format!("was trained behind PCA {f}")).unwrap_or_else(|| "takes raw features".into())
    )]
    WrongPca {
        /// The fingerprint recorded with the data.
        data: String,
        /// The classifier's PCA fingerprint, if it has one.
        expected: Option<String>,
    },
    /// The revenue values cannot be used.
    #[error(transparent)]
    Revenue(#[from] metrics::RevenueError),
    /// The model gave a NaN or infinite probability (a damaged classifier).
    #[error("the classifier gave a non-finite probability; its weights are damaged")]
    NonFiniteOutput,
    /// The fruit catalogue is unusable.
    #[error("fruit information: {0}")]
    Catalogue(String),
    /// A classifier file is unreadable or inconsistent.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The bundled PCA could not be read, written or applied.
    #[error(transparent)]
    Pca(#[from] fruits_pca::PcaError),
    /// Reading or writing the bundle failed.
    #[error(transparent)]
    Storage(#[from] fruits_location::StorageError),
}

/// Per-feature standardisation: `(x - mean) / scale`, learnt on the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Mean of each feature.
    pub mean: Vec<f64>,
    /// Standard deviation of each feature (1 where it is 0, as scikit-learn does).
    pub scale: Vec<f64>,
}

impl Scaler {
    /// Learns means and standard deviations of `x` (rows of `d`), in f64.
    pub fn fit(x: &[f32], d: usize) -> Scaler {
        let n = (x.len() / d.max(1)).max(1) as f64;
        let mut mean = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                let c = *v as f64 - m;
                *s += c * c;
            }
        }
        let scale = var
            .into_iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 0.0 { sd } else { 1.0 }
            })
            .collect();
        Scaler { mean, scale }
    }

    /// Standardises one row into `out`.
    pub fn apply_f64(&self, row: &[f32], out: &mut [f64]) {
        for (((o, v), m), s) in out.iter_mut().zip(row).zip(&self.mean).zip(&self.scale) {
            *o = (*v as f64 - m) / s;
        }
    }
}

/// A trained classifier: scaler, one weight row and bias per class, class names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxModel {
    /// Class names, in index order.
    pub classes: Vec<String>,
    /// Features per row.
    pub d: usize,
    /// Standardisation applied before the weights.
    pub scaler: Scaler,
    /// `classes x d` weights, row-major.
    pub weights: Vec<f32>,
    /// One bias per class.
    pub bias: Vec<f32>,
}

impl SoftmaxModel {
    /// Class probabilities for each row of `x` (`n x classes`, row-major).
    pub fn predict_proba(&self, x: &[f32]) -> Result<Vec<f32>, ClassifyError> {
        let d = self.d;
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(ClassifyError::NotRows { values: x.len(), d });
        }
        let k = self.classes.len();
        let mut out = Vec::with_capacity(x.len() / d * k);
        let mut z = vec![0.0f64; d];
        let mut logits = vec![0.0f64; k];
        for row in x.chunks_exact(d) {
            self.scaler.apply_f64(row, &mut z);
            for (j, l) in logits.iter_mut().enumerate() {
                let w = &self.weights[j * d..(j + 1) * d];
                *l =
                    self.bias[j] as f64 + w.iter().zip(&z).map(|(a, b)| *a as f64 * b).sum::<f64>();
            }
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            // Never a NaN answer: a damaged model is an error, not a guess.
            if !(max.is_finite() && sum.is_finite() && sum > 0.0) {
                return Err(ClassifyError::NonFiniteOutput);
            }
            out.extend(logits.iter().map(|l| ((l - max).exp() / sum) as f32));
        }
        Ok(out)
    }

    /// The most probable class index of each row.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<usize>, ClassifyError> {
        let k = self.classes.len();
        let p = self.predict_proba(x)?;
        Ok(p.chunks_exact(k.max(1)).map(argmax).collect())
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// The `k` most probable classes of one row of probabilities, best first.
pub fn top_k(probabilities: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.truncate(k);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three Gaussian blobs in 4-d, well separated along different axes.
    fn blobs(n_per: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut state = seed;
        let mut noise = || {
            // xorshift + Box-Muller: deterministic, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u1 = (state % 1_000_000) as f64 / 1_000_000.0 + 1e-9;
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u2 = (state % 1_000_000) as f64 / 1_000_000.0;
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        };
        let centres = [
            [3.0, 0.0, 0.0, 100.0],
            [0.0, 3.0, 0.0, 100.0],
            [0.0, 0.0, 3.0, 100.0],
        ];
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..n_per {
                for v in centre {
                    x.push(*v + noise());
                }
                y.push(c);
            }
        }
        (x, y)
    }

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn separates_blobs_and_generalises() {
        let (x, y) = blobs(200, 7);
        let (model, report) = train(&x, 4, &y, names(), &TrainConfig::default()).expect("train");
        assert!(report.converged, "{report:?}");
        assert!(report.train_accuracy > 0.95, "{report:?}");
        let (xt, yt) = blobs(100, 99);
        let pred = model.predict(&xt).expect("predict");
        let acc = pred.iter().zip(&yt).filter(|(p, t)| p == t).count() as f64 / yt.len() as f64;
        assert!(acc > 0.93, "test accuracy {acc}");
        let p = model.predict_proba(&xt[..4]).expect("proba");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn the_optimum_has_zero_gradient_and_stronger_penalty_shrinks_weights() {
        let (x, y) = blobs(50, 3);
        let strong = TrainConfig {
            c: 0.01,
            ..TrainConfig::default()
        };
        let (m_weak, _) = train(&x, 4, &y, names(), &TrainConfig::default()).expect("weak");
        let (m_strong, _) = train(&x, 4, &y, names(), &strong).expect("strong");
        let norm = |m: &SoftmaxModel| m.weights.iter().map(|w| w * w).sum::<f32>();
        assert!(norm(&m_strong) < norm(&m_weak));
        // The constant fourth feature gets scale 1 and no weight to speak of.
        assert_eq!(m_weak.scaler.scale.len(), 4);
    }

    #[test]
    fn bad_inputs_are_explained() {
        let (x, y) = blobs(5, 1);
        let err = train(&x, 4, &y[..3], names(), &TrainConfig::default()).expect_err("len");
        assert!(err.to_string().contains("labels"), "{err}");
        let err = train(&x, 4, &y, vec!["only".into()], &TrainConfig::default()).expect_err("k");
        assert!(err.to_string().contains("2 classes"), "{err}");
        let mut bad = x.clone();
        bad[0] = f32::NAN;
        assert!(train(&bad, 4, &y, names(), &TrainConfig::default()).is_err());
        let (model, _) = train(&x, 4, &y, names(), &TrainConfig::default()).expect("train");
        assert!(model.predict(&[1.0, 2.0, 3.0]).is_err());
    }

    #[test]
    fn top_k_orders_by_probability() {
        assert_eq!(top_k(&[0.1, 0.6, 0.3], 2), vec![(1, 0.6), (2, 0.3)]);
        assert_eq!(argmax(&[0.2, 0.5, 0.5]), 1);
    }
}
