//! How good is the classifier: accuracy, macro-F1, per-class precision and
//! recall, the confusion matrix, and what it earns ([`NetRevenue`]).

use serde::{Deserialize, Serialize};

/// Counts of (true class, predicted class).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    /// Number of classes.
    pub k: usize,
    /// `k x k` counts, row = true class, column = predicted.
    pub counts: Vec<u64>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// Rows of this class.
    pub support: u64,
    /// Of the rows predicted as this class, the share that are.
    pub precision: f64,
    /// Of the rows of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of the two (0 when both are 0).
    pub f1: f64,
}

impl Confusion {
    /// Tallies `truth` against `predicted`.
    pub fn new(k: usize, truth: &[usize], predicted: &[usize]) -> Confusion {
        let mut counts = vec![0u64; k * k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t < k && p < k {
                counts[t * k + p] += 1;
            }
        }
        Confusion { k, counts }
    }

    /// Share of rows on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let total: u64 = self.counts.iter().sum();
        let right: u64 = (0..self.k).map(|i| self.counts[i * self.k + i]).sum();
        if total == 0 {
            0.0
        } else {
            right as f64 / total as f64
        }
    }

    /// Scores of every class.
    pub fn per_class(&self) -> Vec<ClassScores> {
        let k = self.k;
        (0..k)
            .map(|c| {
                let tp = self.counts[c * k + c] as f64;
                let support: u64 = self.counts[c * k..(c + 1) * k].iter().sum();
                let predicted: u64 = (0..k).map(|r| self.counts[r * k + c]).sum();
                let precision = if predicted == 0 {
                    0.0
                } else {
                    tp / predicted as f64
                };
                let recall = if support == 0 {
                    0.0
                } else {
                    tp / support as f64
                };
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScores {
                    support,
                    precision,
                    recall,
                    f1,
                }
            })
            .collect()
    }

    /// Unweighted mean F1 over the classes that occur (in truth or prediction).
    pub fn macro_f1(&self) -> f64 {
        let k = self.k;
        let scores = self.per_class();
        let present: Vec<f64> = (0..k)
            .filter(|&c| scores[c].support > 0 || (0..k).any(|r| self.counts[r * k + c] > 0))
            .map(|c| scores[c].f1)
            .collect();
        if present.is_empty() {
            0.0
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        }
    }
}

/// What an answer is worth, read from a TOML file:
///
/// ```toml
/// gain_correct = 1.0      # a right answer
/// cost_wrong = 5.0        # a wrong answer (a user misled)
/// cost_abstain = 0.5      # "not sure" (a user disappointed, not misled)
/// [classes."Cherry 1"]    # per-class overrides (e.g. allergens cost more when wrong)
/// cost_wrong = 20.0
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetRevenue {
    /// Earned for each correct identification.
    pub gain_correct: f64,
    /// Lost for each wrong identification.
    pub cost_wrong: f64,
    /// Lost for each "not sure" answer.
    #[serde(default)]
    pub cost_abstain: f64,
    /// Overrides by true class name.
    #[serde(default)]
    pub classes: std::collections::BTreeMap<String, ClassValues>,
}

/// Per-class overrides of [`NetRevenue`]; unset fields keep the defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassValues {
    /// Earned for a correct identification of this class.
    pub gain_correct: Option<f64>,
    /// Lost when a photo of this class is identified wrongly.
    pub cost_wrong: Option<f64>,
    /// Lost when the answer for a photo of this class is "not sure".
    pub cost_abstain: Option<f64>,
}

impl Default for NetRevenue {
    fn default() -> Self {
        NetRevenue {
            gain_correct: 1.0,
            cost_wrong: 5.0,
            cost_abstain: 0.5,
            classes: Default::default(),
        }
    }
}

/// Net revenue at one abstain threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevenuePoint {
    /// Answers below this confidence are "not sure".
    pub threshold: f64,
    /// Correct answers given.
    pub correct: u64,
    /// Wrong answers given.
    pub wrong: u64,
    /// "Not sure" answers.
    pub abstained: u64,
    /// Gains minus costs.
    pub net: f64,
    /// Net per photo.
    pub net_per_photo: f64,
}

/// Largest gain or cost a revenue file may give: far above any real price,
/// and small enough that no sum over millions of photos overflows or loses
/// the difference between answers.
pub const MAX_REVENUE_VALUE: f64 = 1e9;

/// Why a revenue file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RevenueError {
    /// Not TOML, or an unknown field.
    #[error("{0}")]
    Parse(String),
    /// NaN, infinite, negative or over [`MAX_REVENUE_VALUE`].
    #[error(
        "{field}{} is {value}: gains and costs must be finite, at least 0 and at most {MAX_REVENUE_VALUE}",
        class.as_ref().map(|c| format!(" of class {c:?}")).unwrap_or_default()
    )]
    BadValue {
        /// `gain_correct`, `cost_wrong` or `cost_abstain`.
        field: &'static str,
        /// The class override it is in, if any.
        class: Option<String>,
        /// The value given.
        value: f64,
    },
    /// An override for a class the classifier does not know (a typo would
    /// otherwise be ignored silently).
    #[error("the revenue file overrides class {class:?}, which the classifier does not know{}", suggestion.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default())]
    UnknownClass {
        /// The class named.
        class: String,
        /// A known class that differs only in case or spacing, if there is one.
        suggestion: Option<String>,
    },
}

impl NetRevenue {
    /// Parses the TOML form and checks every value.
    pub fn from_toml(text: &str) -> Result<NetRevenue, RevenueError> {
        let revenue: NetRevenue =
            toml::from_str(text).map_err(|e| RevenueError::Parse(e.to_string()))?;
        revenue.check_values()?;
        Ok(revenue)
    }

    /// Parses the same table as JSON (what the Python API hands over from a
    /// dict) and checks every value.
    pub fn from_json(text: &str) -> Result<NetRevenue, RevenueError> {
        let revenue: NetRevenue =
            serde_json::from_str(text).map_err(|e| RevenueError::Parse(e.to_string()))?;
        revenue.check_values()?;
        Ok(revenue)
    }

    /// Every gain and cost finite and in `0..=MAX_REVENUE_VALUE`.
    pub fn check_values(&self) -> Result<(), RevenueError> {
        let check = |field: &'static str, class: Option<&String>, value: f64| {
            if value.is_finite() && (0.0..=MAX_REVENUE_VALUE).contains(&value) {
                Ok(())
            } else {
                Err(RevenueError::BadValue {
                    field,
                    class: class.cloned(),
                    value,
                })
            }
        };
        check("gain_correct", None, self.gain_correct)?;
        check("cost_wrong", None, self.cost_wrong)?;
        check("cost_abstain", None, self.cost_abstain)?;
        for (class, v) in &self.classes {
            for (field, value) in [
                ("gain_correct", v.gain_correct),
                ("cost_wrong", v.cost_wrong),
                ("cost_abstain", v.cost_abstain),
            ] {
                if let Some(value) = value {
                    check(field, Some(class), value)?;
                }
            }
        }
        Ok(())
    }

    /// Every overridden class is one of `classes`.
    pub fn check_classes(&self, classes: &[String]) -> Result<(), RevenueError> {
        let squash = |s: &str| s.to_lowercase().split_whitespace().collect::<String>();
        for class in self.classes.keys() {
            if !classes.contains(class) {
                let suggestion = classes.iter().find(|c| squash(c) == squash(class)).cloned();
                return Err(RevenueError::UnknownClass {
                    class: class.clone(),
                    suggestion,
                });
            }
        }
        Ok(())
    }

    fn values(&self, class: &str) -> (f64, f64, f64) {
        let o = self.classes.get(class).cloned().unwrap_or_default();
        (
            o.gain_correct.unwrap_or(self.gain_correct),
            o.cost_wrong.unwrap_or(self.cost_wrong),
            o.cost_abstain.unwrap_or(self.cost_abstain),
        )
    }

    /// Net revenue when answers with confidence below `threshold` abstain.
    /// `rows` are (true class, predicted class, confidence).
    pub fn at(
        &self,
        classes: &[String],
        rows: &[(usize, usize, f32)],
        threshold: f64,
    ) -> RevenuePoint {
        let (mut correct, mut wrong, mut abstained, mut net) = (0, 0, 0, 0.0);
        for &(t, p, conf) in rows {
            let (gain, cost, abstain) =
                self.values(classes.get(t).map(String::as_str).unwrap_or(""));
            if (conf as f64) < threshold {
                abstained += 1;
                net -= abstain;
            } else if t == p {
                correct += 1;
                net += gain;
            } else {
                wrong += 1;
                net -= cost;
            }
        }
        RevenuePoint {
            threshold,
            correct,
            wrong,
            abstained,
            net,
            net_per_photo: if rows.is_empty() {
                0.0
            } else {
                net / rows.len() as f64
            },
        }
    }

    /// The confidence above which answering earns more than "not sure" when
    /// the confidence is the probability of being right: answering earns
    /// `p * gain - (1 - p) * cost`, "not sure" costs `abstain`, so answer when
    /// `p > (cost - abstain) / (gain + cost)` (0.75 with the defaults 1, 5,
    /// 0.5). Chosen from the values alone, without looking at any test data.
    pub fn break_even(&self) -> f64 {
        let total = self.gain_correct + self.cost_wrong;
        if total <= 0.0 {
            return 0.0;
        }
        ((self.cost_wrong - self.cost_abstain) / total).clamp(0.0, 1.0)
    }

    /// Net revenue at every threshold from 0 to 1 in steps of 0.01, and the best
    /// (the lowest threshold among equals, so fewer users are turned away).
    pub fn sweep(
        &self,
        classes: &[String],
        rows: &[(usize, usize, f32)],
    ) -> (Vec<RevenuePoint>, RevenuePoint) {
        let curve: Vec<RevenuePoint> = (0..=100)
            .map(|i| self.at(classes, rows, i as f64 / 100.0))
            .collect();
        let best = curve
            .iter()
            .fold(None::<&RevenuePoint>, |best, p| match best {
                Some(b) if b.net >= p.net => Some(b),
                _ => Some(p),
            })
            .cloned()
            .unwrap_or_else(|| self.at(classes, rows, 0.0));
        (curve, best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_scores_by_hand() {
        // truth:     0 0 0 1 1 2
        // predicted: 0 0 1 1 1 0
        let c = Confusion::new(3, &[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 1, 0]);
        assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-12);
        let s = c.per_class();
        assert!(
            (s[0].precision - 2.0 / 3.0).abs() < 1e-12 && (s[0].recall - 2.0 / 3.0).abs() < 1e-12
        );
        assert!((s[1].precision - 2.0 / 3.0).abs() < 1e-12 && (s[1].recall - 1.0).abs() < 1e-12);
        assert_eq!((s[2].precision, s[2].recall, s[2].f1), (0.0, 0.0, 0.0));
        let f1_1 = 2.0 * (2.0 / 3.0) / (2.0 / 3.0 + 1.0);
        assert!((c.macro_f1() - (2.0 / 3.0 + f1_1 + 0.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn revenue_files_with_impossible_values_or_unknown_classes_are_refused() {
        for bad in [
            "gain_correct = inf\ncost_wrong = 5.0",
            "gain_correct = nan\ncost_wrong = 5.0",
            "gain_correct = 1e308\ncost_wrong = 1e308\ncost_abstain = 1e308",
            "gain_correct = 1.0\ncost_wrong = -5.0",
            "gain_correct = 1.0\ncost_wrong = 5.0\n[classes.\"Kiwi 1\"]\ncost_wrong = inf",
        ] {
            let err = NetRevenue::from_toml(bad).expect_err(bad);
            assert!(matches!(err, RevenueError::BadValue { .. }), "{bad}: {err}");
        }
        let typo = NetRevenue::from_toml(
            "gain_correct = 1.0\ncost_wrong = 5.0\n[classes.\"kiwi  1\"]\ncost_wrong = 9.0",
        )
        .expect("values are fine");
        let classes = vec!["Banana 1".to_string(), "Kiwi 1".to_string()];
        let err = typo.check_classes(&classes).expect_err("unknown class");
        assert_eq!(
            err,
            RevenueError::UnknownClass {
                class: "kiwi  1".into(),
                suggestion: Some("Kiwi 1".into())
            }
        );
        assert!(NetRevenue::default().check_classes(&classes).is_ok());
    }

    #[test]
    fn revenue_with_overrides_and_abstain() {
        let cfg = NetRevenue::from_toml(
            "gain_correct = 1.0\ncost_wrong = 5.0\ncost_abstain = 0.5\n[classes.b]\ncost_wrong = 20.0\n",
        )
        .expect("toml");
        let classes = vec!["a".to_string(), "b".to_string()];
        let rows = [(0, 0, 0.9), (0, 1, 0.4), (1, 0, 0.3), (1, 1, 0.95)];
        let all = cfg.at(&classes, &rows, 0.0);
        assert_eq!((all.correct, all.wrong, all.abstained), (2, 2, 0));
        assert!((all.net - (2.0 - 5.0 - 20.0)).abs() < 1e-12);
        let cautious = cfg.at(&classes, &rows, 0.5);
        assert_eq!(
            (cautious.correct, cautious.wrong, cautious.abstained),
            (2, 0, 2)
        );
        assert!((cautious.net - (2.0 - 1.0)).abs() < 1e-12);
        let (_, best) = cfg.sweep(&classes, &rows);
        assert!(
            (best.net - 1.0).abs() < 1e-12 && best.threshold > 0.4 && best.threshold <= 0.9,
            "{best:?}"
        );
        assert!(
            NetRevenue::from_toml("gain = 1").is_err(),
            "unknown keys are refused"
        );
    }
}
