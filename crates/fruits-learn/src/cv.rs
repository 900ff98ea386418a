//! Choosing C by stratified k-fold cross-validation on the training rows
//! only: the test split is never looked at to pick a setting.

use serde::{Deserialize, Serialize};

use crate::LearnError;

/// The values of C tried when none are given: a decade apart around
/// scikit-learn's default of 1.
pub const DEFAULT_CV_GRID: [f64; 4] = [0.01, 0.1, 1.0, 10.0];
/// Most folds accepted (each fold trains a model per value of C).
pub const MAX_FOLDS: usize = 20;

/// The fold (0..`k`) of each row: within each class, rows go to the folds in
/// turn, so every fold holds each class in the same proportion (to one row).
/// Deterministic: the same rows in the same order give the same folds.
pub fn stratified_folds(y: &[usize], classes: usize, k: usize) -> Vec<usize> {
    let mut next = vec![0usize; classes];
    y.iter()
        .map(|&c| {
            next.get_mut(c).map_or(0, |n| {
                let f = *n % k.max(1);
                *n += 1;
                f
            })
        })
        .collect()
}

/// Checks a cross-validation request before any training.
pub fn check(folds: usize, grid: &[f64], rows: usize) -> Result<(), LearnError> {
    if !(2..=MAX_FOLDS).contains(&folds) || folds > rows {
        return Err(LearnError::BadFolds {
            folds,
            rows,
            max: MAX_FOLDS,
        });
    }
    if grid.is_empty() {
        return Err(LearnError::EmptyGrid);
    }
    if let Some(&c) = grid.iter().find(|c| !(c.is_finite() && **c > 0.0)) {
        return Err(LearnError::BadC(c));
    }
    Ok(())
}

/// One value of C across the folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvScore {
    /// The inverse regularisation strength tried.
    pub c: f64,
    /// Accuracy on each held-out fold, in fold order.
    pub fold_accuracy: Vec<f64>,
    /// Mean of `fold_accuracy`.
    pub mean: f64,
    /// Standard deviation of `fold_accuracy` (population).
    pub std: f64,
}

impl CvScore {
    /// Summarises the folds' accuracies for `c`.
    pub fn new(c: f64, fold_accuracy: Vec<f64>) -> CvScore {
        let n = fold_accuracy.len().max(1) as f64;
        let mean = fold_accuracy.iter().sum::<f64>() / n;
        let var = fold_accuracy
            .iter()
            .map(|a| (a - mean).powi(2))
            .sum::<f64>()
            / n;
        CvScore {
            c,
            fold_accuracy,
            mean,
            std: var.sqrt(),
        }
    }
}

/// What cross-validation measured and chose; recorded in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    /// Number of folds.
    pub folds: usize,
    /// Rows cross-validated (the training rows).
    pub rows: usize,
    /// Every value of C tried, in the order given.
    pub scores: Vec<CvScore>,
    /// The value kept: the best mean accuracy; on a tie, the smaller C (the
    /// stronger penalty, which generalises at least as well).
    pub chosen_c: f64,
}

impl CvReport {
    /// Picks the best of `scores`.
    pub fn new(folds: usize, rows: usize, scores: Vec<CvScore>) -> CvReport {
        let chosen_c = scores
            .iter()
            .fold(None::<&CvScore>, |best, s| match best {
                Some(b) if b.mean > s.mean || (b.mean == s.mean && b.c <= s.c) => Some(b),
                _ => Some(s),
            })
            .map_or(crate::DEFAULT_C, |s| s.c);
        CvReport {
            folds,
            rows,
            scores,
            chosen_c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_and_deterministic() {
        // 7 rows of class 0, 5 of class 1, interleaved.
        let y = [0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0];
        let folds = stratified_folds(&y, 2, 3);
        assert_eq!(folds, stratified_folds(&y, 2, 3));
        for class in 0..2 {
            let mut per_fold = [0usize; 3];
            for (f, _) in folds.iter().zip(&y).filter(|(_, c)| **c == class) {
                per_fold[*f] += 1;
            }
            let (lo, hi) = (per_fold.iter().min(), per_fold.iter().max());
            assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{per_fold:?}");
        }
    }

    #[test]
    fn the_best_mean_wins_and_ties_go_to_the_smaller_c() {
        let r = CvReport::new(
            2,
            10,
            vec![
                CvScore::new(10.0, vec![0.9, 0.9]),
                CvScore::new(0.1, vec![0.8, 1.0]),
                CvScore::new(1.0, vec![0.7, 0.7]),
            ],
        );
        assert_eq!(r.chosen_c, 0.1);
        assert!((r.scores[1].std - 0.1).abs() < 1e-12);
        let r = CvReport::new(2, 10, vec![CvScore::new(1.0, vec![0.95, 0.85])]);
        assert_eq!(r.chosen_c, 1.0);
    }

    #[test]
    fn bad_requests_are_typed_errors() {
        assert!(matches!(
            check(1, &[1.0], 10),
            Err(LearnError::BadFolds { .. })
        ));
        assert!(matches!(
            check(11, &[1.0], 10),
            Err(LearnError::BadFolds { .. })
        ));
        assert!(matches!(check(3, &[], 10), Err(LearnError::EmptyGrid)));
        assert!(matches!(
            check(3, &[1.0, -1.0], 10),
            Err(LearnError::BadC(_))
        ));
        assert!(check(3, &DEFAULT_CV_GRID, 10).is_ok());
    }
}
