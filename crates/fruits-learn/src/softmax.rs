//! Multinomial logistic regression: standardise, then minimise the mean
//! cross-entropy plus an L2 penalty on the weights with L-BFGS.
//!
//! The objective matches scikit-learn's `LogisticRegression(C=c)` (multinomial,
//! intercept not penalised) divided by `c * n`:
//!
//! ```text
//! J(W, b) = 1/n * sum_i -log softmax(x_i W + b)[y_i] + 1/(2 c n) * ||W||^2
//! ```

use std::time::Instant;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use serde::{Deserialize, Serialize};

use crate::lbfgs::{LbfgsConfig, StopReason, minimize};
use crate::{LearnError, Scaler, SoftmaxModel};

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Inverse regularisation strength, as scikit-learn's `C` (larger: less penalty).
    pub c: f64,
    /// Optimiser settings.
    pub lbfgs: LbfgsConfig,
}

/// Default inverse regularisation strength (scikit-learn's default `C`).
pub const DEFAULT_C: f64 = 1.0;
/// Default cap on L-BFGS iterations when training.
pub const DEFAULT_MAX_ITER: usize = 1000;

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            c: DEFAULT_C,
            lbfgs: LbfgsConfig {
                max_iter: DEFAULT_MAX_ITER,
                gradient_tol: 1e-6,
                relative_decrease_tol: 1e-12,
                ..LbfgsConfig::default()
            },
        }
    }
}

/// What training did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Training rows.
    pub rows: usize,
    /// Features per row.
    pub features: usize,
    /// Classes.
    pub classes: usize,
    /// Final objective value.
    pub objective: f64,
    /// L-BFGS iterations.
    pub iterations: usize,
    /// True when a tolerance was met.
    pub converged: bool,
    /// Why the optimiser stopped.
    pub stop_reason: StopReason,
    /// Accuracy on the training rows.
    pub train_accuracy: f64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// The objective and its gradient at `theta` = [W (d x k, column-major), b (k)].
struct Objective<'a> {
    x: MatRef<'a, f64>,
    y: &'a [usize],
    k: usize,
    lambda: f64,
    logits: Vec<f64>,
}

impl Objective<'_> {
    fn eval(&mut self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let (n, d, k) = (self.x.nrows(), self.x.ncols(), self.k);
        let w = MatRef::from_column_major_slice(&theta[..d * k], d, k);
        let b = &theta[d * k..];
        // logits = X W (n x k, column-major)
        {
            let z = MatMut::from_column_major_slice_mut(&mut self.logits, n, k);
            matmul(z, Accum::Replace, self.x, w, 1.0, Par::rayon(0));
        }
        let mut loss = 0.0;
        // Turn logits into (softmax - onehot) / n, row by row, accumulating the loss.
        for i in 0..n {
            let mut max = f64::NEG_INFINITY;
            for (j, bj) in b.iter().enumerate() {
                let v = self.logits[j * n + i] + bj;
                self.logits[j * n + i] = v;
                max = max.max(v);
            }
            let mut sum = 0.0;
            for j in 0..k {
                let e = (self.logits[j * n + i] - max).exp();
                self.logits[j * n + i] = e;
                sum += e;
            }
            let yi = self.y[i];
            loss -= (self.logits[yi * n + i] / sum).ln();
            for j in 0..k {
                let p = self.logits[j * n + i] / sum;
                let target = if j == yi { 1.0 } else { 0.0 };
                self.logits[j * n + i] = (p - target) / n as f64;
            }
        }
        let g = MatRef::from_column_major_slice(&self.logits, n, k);
        // grad W = X' G + lambda W
        {
            let (gw, gb) = grad.split_at_mut(d * k);
            gw.copy_from_slice(&theta[..d * k]);
            let gw_mat = MatMut::from_column_major_slice_mut(gw, d, k);
            matmul(
                gw_mat,
                Accum::Add,
                self.x.transpose(),
                g,
                1.0,
                Par::rayon(0),
            );
            // The copy above put W (not lambda W) in first; fix the scale.
            for (gv, wv) in gw.iter_mut().zip(&theta[..d * k]) {
                *gv += (self.lambda - 1.0) * wv;
            }
            for (j, gbj) in gb.iter_mut().enumerate() {
                *gbj = self.logits[j * n..(j + 1) * n].iter().sum();
            }
        }
        let penalty: f64 = theta[..d * k].iter().map(|v| v * v).sum::<f64>() * 0.5 * self.lambda;
        loss / n as f64 + penalty
    }
}

/// Trains on `x` (`n` rows of `d` features, row-major) with labels `y` indexing `classes`.
pub fn train(
    x: &[f32],
    d: usize,
    y: &[usize],
    classes: Vec<String>,
    config: &TrainConfig,
) -> Result<(SoftmaxModel, TrainReport), LearnError> {
    let started = Instant::now();
    let k = classes.len();
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(LearnError::NotRows { values: x.len(), d });
    }
    let n = x.len() / d;
    if n != y.len() {
        return Err(LearnError::LabelCount {
            rows: n,
            labels: y.len(),
        });
    }
    if k < 2 {
        return Err(LearnError::TooFewClasses(k));
    }
    if let Some(bad) = y.iter().find(|&&c| c >= k) {
        return Err(LearnError::LabelOutOfRange {
            index: *bad,
            classes: k,
        });
    }
    if !(config.c > 0.0 && config.c.is_finite()) {
        return Err(LearnError::BadC(config.c));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(LearnError::NonFinite);
    }
    let scaler = Scaler::fit(x, d);
    let mut xs = vec![0.0f64; n * d];
    for (row, out) in x.chunks_exact(d).zip(xs.chunks_exact_mut(d)) {
        scaler.apply_f64(row, out);
    }
    let xm = MatRef::from_row_major_slice(&xs, n, d);
    let mut objective = Objective {
        x: xm,
        y,
        k,
        lambda: 1.0 / (config.c * n as f64),
        logits: vec![0.0; n * k],
    };
    let mut theta = vec![0.0f64; d * k + k];
    let result = minimize(&mut theta, &config.lbfgs, |t, g| objective.eval(t, g));
    if result.reason == StopReason::Cancelled {
        return Err(LearnError::Cancelled);
    }

    // Store row-major (k x d) f32 weights: one contiguous row per class.
    let mut weights = vec![0.0f32; k * d];
    for j in 0..k {
        for f in 0..d {
            weights[j * d + f] = theta[j * d + f] as f32;
        }
    }
    let bias: Vec<f32> = theta[d * k..].iter().map(|&v| v as f32).collect();
    let model = SoftmaxModel {
        classes,
        d,
        scaler,
        weights,
        bias,
    };
    let predicted = model.predict(x)?;
    let correct = predicted.iter().zip(y).filter(|(p, t)| p == t).count();
    let report = TrainReport {
        rows: n,
        features: d,
        classes: k,
        objective: result.value,
        iterations: result.iterations,
        converged: result.reason.converged(),
        stop_reason: result.reason,
        train_accuracy: correct as f64 / n as f64,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradient matches central finite differences.
    #[test]
    fn gradient_matches_finite_differences() {
        let (n, d, k) = (7, 3, 4);
        let xs: Vec<f64> = (0..n * d)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0)
            .collect();
        let y: Vec<usize> = (0..n).map(|i| i % k).collect();
        let mut obj = Objective {
            x: MatRef::from_row_major_slice(&xs, n, d),
            y: &y,
            k,
            lambda: 0.3,
            logits: vec![0.0; n * k],
        };
        let theta: Vec<f64> = (0..d * k + k)
            .map(|i| ((i * 13 % 7) as f64 - 3.0) / 5.0)
            .collect();
        let mut grad = vec![0.0; theta.len()];
        obj.eval(&theta, &mut grad);
        let mut scratch = vec![0.0; theta.len()];
        for i in 0..theta.len() {
            let h = 1e-6;
            let mut plus = theta.clone();
            plus[i] += h;
            let mut minus = theta.clone();
            minus[i] -= h;
            let numeric =
                (obj.eval(&plus, &mut scratch) - obj.eval(&minus, &mut scratch)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() < 1e-7 * (1.0 + numeric.abs()),
                "component {i}: analytic {} vs numeric {numeric}",
                grad[i]
            );
        }
    }
}
