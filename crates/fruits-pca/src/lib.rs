//! Streaming, mergeable PCA.
//!
//! [`PcaStats`] summarises rows in one pass: count, mean and the centred
//! co-moment matrix `sum (x - mean)(x - mean)^T`, all in f64, in O(d^2) memory
//! whatever the number of rows. Two summaries of disjoint row sets
//! [`merge`](PcaStats::merge) into the summary of their union, so partitions
//! (Spark tasks, files, threads) can be summarised separately and combined.
//! [`fit`] turns a summary into a [`PcaModel`]: covariance with the n - 1
//! denominator (as scikit-learn and Spark ML), symmetric eigendecomposition
//! (faer), components sorted by variance with a deterministic sign.

mod file;
mod model;

#[cfg(feature = "parquet")]
pub use file::save;
pub use file::{COMPONENTS_FILE, COMPONENTS_NPY, MODEL_FILE, ModelFile, load, save_npy};
pub use model::{INT8_NOISE, Keep, PcaModel, choose_k, fit};

use faer::linalg::matmul::triangular::{BlockStructure, matmul};
use faer::{Accum, Mat, Par};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum PcaError {
    /// No rows (or one: a covariance needs two).
    #[error("PCA needs at least 2 rows, got {0}")]
    TooFewRows(u64),
    /// Rows of different lengths were mixed.
    #[error(
        "feature vectors have {got} values, expected {expected} (mixed feature sizes across inputs?)"
    )]
    DimensionMismatch {
        /// The length seen first.
        expected: usize,
        /// The length that differs.
        got: usize,
    },
    /// A NaN or infinite value.
    #[error("row {row} of the batch has a non-finite value (NaN or infinity) in column {column}")]
    NotFinite {
        /// Row within the batch.
        row: usize,
        /// Column.
        column: usize,
    },
    /// A variance share outside (0, 1].
    #[error("the variance share must be in (0, 1], got {0}")]
    BadVariance(f64),
    /// A number of components outside 1..=d.
    #[error("k must be between 1 and the feature size {d}, got {k}")]
    BadK {
        /// Components asked for.
        k: usize,
        /// The feature size.
        d: usize,
    },
    /// Bytes that are not a serialised [`PcaStats`].
    #[error("not a serialised PCA summary")]
    BadSummary,
    /// The eigendecomposition did not converge.
    #[error("the eigendecomposition did not converge")]
    NoConvergence,
    /// The model files could not be read or written.
    #[error("{path}: {source}")]
    Storage {
        /// The file.
        path: String,
        /// What the storage said.
        #[source]
        source: fruits_location::StorageError,
    },
    /// A model file is not what this version writes.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// One-pass summary of rows: count, mean and centred co-moment matrix, in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaStats {
    d: usize,
    n: u64,
    mean: Vec<f64>,
    /// `sum (x - mean)(x - mean)^T`, d x d column-major; only the lower triangle is kept up to date.
    comoment: Mat<f64>,
}

impl PcaStats {
    /// An empty summary of `d`-long rows.
    pub fn new(d: usize) -> Self {
        PcaStats {
            d,
            n: 0,
            mean: vec![0.0; d],
            comoment: Mat::zeros(d, d),
        }
    }

    /// Row length.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// Rows summarised.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Mean of the rows summarised.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Adds a batch of rows, laid out one after another (`rows.len()` a multiple of d).
    ///
    /// Numerics: the batch is centred on its own mean before its co-moment is
    /// formed, and batches are combined with Chan et al.'s pairwise update, so
    /// no step subtracts two large nearly-equal sums (the textbook
    /// `X^T X / n - mean mean^T` loses most digits when |mean| >> spread, as
    /// with ReLU features that are all positive).
    pub fn update(&mut self, rows: &[f32]) -> Result<(), PcaError> {
        let d = self.d;
        if d == 0 || rows.is_empty() {
            return Ok(());
        }
        if !rows.len().is_multiple_of(d) {
            return Err(PcaError::DimensionMismatch {
                expected: d,
                got: rows.len() % d,
            });
        }
        let nb = rows.len() / d;
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(PcaError::NotFinite {
                row: i / d,
                column: i % d,
            });
        }
        let mut mean = vec![0f64; d];
        for row in rows.chunks_exact(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += f64::from(*v);
            }
        }
        for m in &mut mean {
            *m /= nb as f64;
        }
        // Centred batch, transposed: d x rows, column-major, so column i is row i
        // of the input and both reading and writing are contiguous.
        let centred_t = Mat::<f64>::from_fn(d, nb, |j, i| f64::from(rows[i * d + j]) - mean[j]);
        let mut batch = PcaStats {
            d,
            n: nb as u64,
            mean,
            comoment: Mat::zeros(d, d),
        };
        // Only the lower triangle: half the flops of a full X^T X.
        matmul(
            batch.comoment.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            centred_t.as_ref(),
            BlockStructure::Rectangular,
            centred_t.transpose(),
            BlockStructure::Rectangular,
            1.0,
            Par::rayon(0),
        );
        self.merge(&batch)
    }

    /// Merges the summary of another, disjoint set of rows into this one.
    pub fn merge(&mut self, other: &PcaStats) -> Result<(), PcaError> {
        if other.n == 0 {
            return Ok(());
        }
        if self.d != other.d {
            return Err(PcaError::DimensionMismatch {
                expected: self.d,
                got: other.d,
            });
        }
        if self.n == 0 {
            *self = other.clone();
            return Ok(());
        }
        let (na, nb) = (self.n as f64, other.n as f64);
        let n = na + nb;
        let delta: Vec<f64> = other
            .mean
            .iter()
            .zip(&self.mean)
            .map(|(b, a)| b - a)
            .collect();
        let w = na * nb / n;
        let d = self.d;
        for j in 0..d {
            for i in j..d {
                self.comoment[(i, j)] += other.comoment[(i, j)] + w * delta[i] * delta[j];
            }
        }
        for (m, dl) in self.mean.iter_mut().zip(&delta) {
            *m += dl * nb / n;
        }
        self.n += other.n;
        Ok(())
    }

    /// The sample covariance (n - 1 denominator), full symmetric matrix.
    pub fn covariance(&self) -> Result<Mat<f64>, PcaError> {
        if self.n < 2 {
            return Err(PcaError::TooFewRows(self.n));
        }
        let denom = (self.n - 1) as f64;
        let c = &self.comoment;
        Ok(Mat::from_fn(self.d, self.d, |i, j| {
            let (r, s) = if i >= j { (i, j) } else { (j, i) };
            c[(r, s)] / denom
        }))
    }

    /// Serialises to little-endian bytes (for shipping partial summaries between processes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let d = self.d;
        let mut out = Vec::with_capacity(16 + 8 * (d + d * (d + 1) / 2));
        out.extend_from_slice(&(d as u64).to_le_bytes());
        out.extend_from_slice(&self.n.to_le_bytes());
        for m in &self.mean {
            out.extend_from_slice(&m.to_le_bytes());
        }
        for j in 0..d {
            for i in j..d {
                out.extend_from_slice(&self.comoment[(i, j)].to_le_bytes());
            }
        }
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PcaError> {
        let bad = || PcaError::BadSummary;
        let word = |i: usize| -> Result<[u8; 8], PcaError> {
            bytes
                .get(i * 8..i * 8 + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(bad)
        };
        let d = u64::from_le_bytes(word(0)?) as usize;
        let n = u64::from_le_bytes(word(1)?);
        if bytes.len() != 16 + 8 * (d + d * (d + 1) / 2) {
            return Err(bad());
        }
        let mut k = 2;
        let mut mean = Vec::with_capacity(d);
        for _ in 0..d {
            mean.push(f64::from_le_bytes(word(k)?));
            k += 1;
        }
        let mut comoment = Mat::zeros(d, d);
        for j in 0..d {
            for i in j..d {
                comoment[(i, j)] = f64::from_le_bytes(word(k)?);
                k += 1;
            }
        }
        Ok(PcaStats {
            d,
            n,
            mean,
            comoment,
        })
    }
}

#[cfg(test)]
mod tests;
