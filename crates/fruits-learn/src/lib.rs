//! The learning maths: a softmax (multinomial logistic) regression with
//! standardisation, trained by L-BFGS ([`train`]), cross-validation of its
//! regularisation ([`cv`]), and the metrics to judge it ([`metrics`]).

pub mod cv;
pub mod lbfgs;
pub mod metrics;
mod softmax;

use serde::{Deserialize, Serialize};

pub use cv::{CvReport, CvScore, DEFAULT_CV_GRID};
pub use lbfgs::StopReason;
pub use softmax::{DEFAULT_C, DEFAULT_MAX_ITER, TrainConfig, TrainReport, train};

/// What can go wrong training or applying a softmax model.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
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
    /// Training was interrupted (Ctrl-C): nothing was made.
    #[error("interrupted before the classifier was trained")]
    Cancelled,
    /// The revenue values cannot be used.
    #[error(transparent)]
    Revenue(#[from] metrics::RevenueError),
    /// The model gave a NaN or infinite probability (a damaged classifier).
    #[error("the classifier gave a non-finite probability; its weights are damaged")]
    NonFiniteOutput,
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
    pub fn predict_proba(&self, x: &[f32]) -> Result<Vec<f32>, LearnError> {
        let d = self.d;
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(LearnError::NotRows { values: x.len(), d });
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
                return Err(LearnError::NonFiniteOutput);
            }
            out.extend(logits.iter().map(|l| ((l - max).exp() / sum) as f32));
        }
        Ok(out)
    }

    /// The most probable class index of each row.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<usize>, LearnError> {
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
