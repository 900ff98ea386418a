//! From a summary to a fitted model: eigendecomposition, k selection, transform.

use faer::{Mat, Side};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{PcaError, PcaStats};

/// How many components to keep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Keep {
    /// The smallest k whose cumulative explained-variance ratio reaches this share, in (0, 1].
    Variance(f64),
    /// Exactly k components, 1 <= k <= d.
    K(usize),
}

/// A fitted PCA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcaModel {
    /// Rows it was fitted on.
    pub n: u64,
    /// Input dimension.
    pub d: usize,
    /// Components kept.
    pub k: usize,
    /// What was asked for.
    pub keep: Keep,
    /// Column means subtracted before projecting.
    pub mean: Vec<f64>,
    /// k x d, row-major: component i is `components[i*d..(i+1)*d]`, unit length.
    pub components: Vec<f64>,
    /// Variance along every one of the d components (eigenvalues, descending).
    pub explained_variance: Vec<f64>,
    /// `explained_variance / total variance`, for all d components.
    pub explained_variance_ratio: Vec<f64>,
}

/// The smallest k whose cumulative ratio reaches `target` (d when rounding keeps it just short).
pub fn choose_k(ratios: &[f64], target: f64) -> usize {
    let mut cumulative = 0.0;
    for (i, r) in ratios.iter().enumerate() {
        cumulative += r;
        // The tolerance only absorbs rounding in the running sum (target 1.0).
        if cumulative >= target - 1e-12 {
            return i + 1;
        }
    }
    ratios.len()
}

/// Fits a PCA from a summary.
pub fn fit(stats: &PcaStats, keep: Keep) -> Result<PcaModel, PcaError> {
    let d = stats.dim();
    match keep {
        Keep::Variance(v) if !(v > 0.0 && v <= 1.0) => {
            return Err(PcaError::BadVariance(v));
        }
        Keep::K(k) if k == 0 || k > d => {
            return Err(PcaError::BadK { k, d });
        }
        _ => {}
    }
    let cov = stats.covariance()?;
    let evd = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|_| PcaError::NoConvergence)?;
    let values = evd.S().column_vector();
    let vectors = evd.U();
    // faer sorts ascending; PCA wants descending. Tiny negative eigenvalues are rounding.
    let order: Vec<usize> = (0..d).rev().collect();
    let explained_variance: Vec<f64> = order.iter().map(|&i| values[i].max(0.0)).collect();
    let total: f64 = explained_variance.iter().sum();
    let explained_variance_ratio: Vec<f64> = if total > 0.0 {
        explained_variance.iter().map(|v| v / total).collect()
    } else {
        vec![0.0; d]
    };
    let k = match keep {
        Keep::K(k) => k,
        Keep::Variance(v) => choose_k(&explained_variance_ratio, v),
    };
    let mut components = Vec::with_capacity(k * d);
    for &col in order.iter().take(k) {
        let v: Vec<f64> = (0..d).map(|r| vectors[(r, col)]).collect();
        // Deterministic sign: the largest-magnitude loading is positive (ties: first).
        let pivot = v
            .iter()
            .enumerate()
            .fold((0, 0.0f64), |best, (i, x)| {
                if x.abs() > best.1 { (i, x.abs()) } else { best }
            })
            .0;
        let sign = if v.get(pivot).copied().unwrap_or(0.0) < 0.0 {
            -1.0
        } else {
            1.0
        };
        components.extend(v.into_iter().map(|x| x * sign));
    }
    Ok(PcaModel {
        n: stats.count(),
        d,
        k,
        keep,
        mean: stats.mean().to_vec(),
        components,
        explained_variance,
        explained_variance_ratio,
    })
}

/// Share of the total variance the int8 codes of a reduced output add as
/// rounding noise (the PCA itself, at 95%, drops 5%): measured on the sample,
/// 162 bytes a row for k = 276 instead of 1,335 as float32.
pub const INT8_NOISE: f64 = 0.001;

impl PcaModel {
    /// A short hex digest of what the projection depends on (d, k, mean,
    /// components): outputs it made record it, so a classifier trained on one
    /// projection refuses rows made by another.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update((self.d as u64).to_le_bytes());
        hasher.update((self.k as u64).to_le_bytes());
        for v in self.mean.iter().chain(&self.components[..self.k * self.d]) {
            hasher.update(v.to_le_bytes());
        }
        let digest = hasher.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Cumulative explained-variance ratio of the first `k` components.
    pub fn variance_kept(&self) -> f64 {
        self.explained_variance_ratio.iter().take(self.k).sum()
    }

    /// The step of each component when its projections are stored as int8
    /// codes (a reduced output: value = code x step): the larger of a step
    /// common to all components and a tenth of the component's standard
    /// deviation over 25.4 (codes span +-5 standard deviations).
    ///
    /// The common step makes the rounding noise [`INT8_NOISE`] of the total
    /// variance (uniform noise of step s has variance s^2 / 12, over k
    /// components); components of small variance then take few distinct
    /// codes and compress well, those of large variance keep 254 levels.
    pub fn int8_steps(&self) -> Vec<f32> {
        let total: f64 = self.explained_variance.iter().sum();
        let common = (12.0 * INT8_NOISE * total / self.k.max(1) as f64).sqrt();
        self.explained_variance[..self.k]
            .iter()
            .map(|v| common.max(10.0 * v.max(0.0).sqrt() / 254.0) as f32)
            .collect()
    }

    /// Projects rows (one after another, d values each) onto the k components.
    pub fn transform(&self, rows: &[f32]) -> Result<Vec<f32>, PcaError> {
        let d = self.d;
        if d == 0 || !rows.len().is_multiple_of(d) {
            return Err(PcaError::DimensionMismatch {
                expected: d,
                got: rows.len() % d.max(1),
            });
        }
        let n = rows.len() / d;
        let centred = Mat::<f64>::from_fn(n, d, |i, j| f64::from(rows[i * d + j]) - self.mean[j]);
        let comps = Mat::<f64>::from_fn(d, self.k, |j, c| self.components[c * d + j]);
        let projected = &centred * &comps;
        let mut out = Vec::with_capacity(n * self.k);
        for i in 0..n {
            for c in 0..self.k {
                out.push(projected[(i, c)] as f32);
            }
        }
        Ok(out)
    }
}
