//! Limited-memory BFGS (Nocedal & Wright, algorithm 7.4/7.5) with a backtracking
//! line search that keeps the Armijo condition; enough for smooth convex
//! objectives such as L2-regularised softmax regression.

/// When to stop.
#[derive(Debug, Clone, Copy)]
pub struct LbfgsConfig {
    /// Correction pairs kept (the "m" of L-BFGS).
    pub memory: usize,
    /// Most iterations.
    pub max_iter: usize,
    /// Stop when the largest gradient component falls below this.
    pub gradient_tol: f64,
    /// Stop when an iteration lowers the objective by less than this, relatively.
    pub relative_decrease_tol: f64,
    /// Stop at the next iteration once this is true (Ctrl-C in the CLI).
    pub cancel: Option<&'static std::sync::atomic::AtomicBool>,
}

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            memory: 10,
            max_iter: 500,
            gradient_tol: 1e-5,
            relative_decrease_tol: 1e-10,
            cancel: None,
        }
    }
}

/// Why the optimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The largest gradient component fell below the tolerance (converged).
    #[serde(alias = "gradient below tolerance")]
    GradientBelowTolerance,
    /// An iteration lowered the objective by less than the tolerance (converged).
    #[serde(alias = "objective stopped decreasing")]
    ObjectiveStoppedDecreasing,
    /// No step along the search direction lowered the objective.
    #[serde(alias = "line search failed")]
    LineSearchFailed,
    /// The iteration cap was reached first.
    #[serde(alias = "iteration limit reached")]
    IterationLimit,
    /// [`LbfgsConfig::cancel`] was set: the result is not a model to keep.
    Cancelled,
}

impl StopReason {
    /// True when a tolerance was met (not the iteration cap or a failed line search).
    pub fn converged(self) -> bool {
        matches!(
            self,
            StopReason::GradientBelowTolerance | StopReason::ObjectiveStoppedDecreasing
        )
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopReason::GradientBelowTolerance => "gradient below tolerance",
            StopReason::ObjectiveStoppedDecreasing => "objective stopped decreasing",
            StopReason::LineSearchFailed => "line search failed",
            StopReason::IterationLimit => "iteration limit reached",
            StopReason::Cancelled => "interrupted",
        })
    }
}

/// Why the optimiser stopped, and where.
#[derive(Debug, Clone)]
pub struct LbfgsResult {
    /// The objective at the returned point.
    pub value: f64,
    /// Iterations made.
    pub iterations: usize,
    /// Objective evaluations made (line search included).
    pub evaluations: usize,
    /// Why it stopped.
    pub reason: StopReason,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f` from `x` (updated in place). `f(x, grad)` returns the objective
/// and writes its gradient.
pub fn minimize<F>(x: &mut [f64], config: &LbfgsConfig, mut f: F) -> LbfgsResult
where
    F: FnMut(&[f64], &mut [f64]) -> f64,
{
    let n = x.len();
    let mut grad = vec![0.0; n];
    let mut value = f(x, &mut grad);
    let mut evaluations = 1;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut rho_hist: Vec<f64> = Vec::new();
    let mut direction = vec![0.0; n];
    let mut alpha = vec![0.0; config.memory.max(1)];
    let mut x_new = vec![0.0; n];
    let mut grad_new = vec![0.0; n];

    for iteration in 0..config.max_iter {
        if config
            .cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return LbfgsResult {
                value,
                iterations: iteration,
                evaluations,
                reason: StopReason::Cancelled,
            };
        }
        let gmax = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        if gmax <= config.gradient_tol {
            return LbfgsResult {
                value,
                iterations: iteration,
                evaluations,
                reason: StopReason::GradientBelowTolerance,
            };
        }
        // Two-loop recursion: direction = -H * grad.
        direction.copy_from_slice(&grad);
        let k = s_hist.len();
        for i in (0..k).rev() {
            alpha[i] = rho_hist[i] * dot(&s_hist[i], &direction);
            for (d, y) in direction.iter_mut().zip(&y_hist[i]) {
                *d -= alpha[i] * y;
            }
        }
        let gamma = match k {
            0 => 1.0 / grad.iter().map(|g| g * g).sum::<f64>().sqrt().max(1e-12),
            _ => dot(&s_hist[k - 1], &y_hist[k - 1]) / dot(&y_hist[k - 1], &y_hist[k - 1]),
        };
        for d in direction.iter_mut() {
            *d *= gamma;
        }
        for i in 0..k {
            let beta = rho_hist[i] * dot(&y_hist[i], &direction);
            for (d, s) in direction.iter_mut().zip(&s_hist[i]) {
                *d += (alpha[i] - beta) * s;
            }
        }
        for d in direction.iter_mut() {
            *d = -*d;
        }
        let mut slope = dot(&grad, &direction);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            rho_hist.clear();
            for (d, g) in direction.iter_mut().zip(&grad) {
                *d = -g;
            }
            slope = dot(&grad, &direction);
        }

        // Backtracking line search on the Armijo condition.
        let mut step = 1.0;
        let mut accepted = false;
        let mut new_value = value;
        for _ in 0..40 {
            for ((xn, xi), d) in x_new.iter_mut().zip(x.iter()).zip(&direction) {
                *xn = xi + step * d;
            }
            new_value = f(&x_new, &mut grad_new);
            evaluations += 1;
            if new_value.is_finite() && new_value <= value + 1e-4 * step * slope {
                accepted = true;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            return LbfgsResult {
                value,
                iterations: iteration,
                evaluations,
                reason: StopReason::LineSearchFailed,
            };
        }
        let s: Vec<f64> = x_new.iter().zip(x.iter()).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = grad_new.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        // Keep the pair only when it carries positive curvature (H stays positive definite).
        if sy > 1e-12 * dot(&y, &y).max(1e-300) {
            if s_hist.len() == config.memory.max(1) {
                s_hist.remove(0);
                y_hist.remove(0);
                rho_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
            rho_hist.push(1.0 / sy);
        }
        x.copy_from_slice(&x_new);
        grad.copy_from_slice(&grad_new);
        let decrease = value - new_value;
        value = new_value;
        if decrease <= config.relative_decrease_tol * value.abs().max(1.0) {
            return LbfgsResult {
                value,
                iterations: iteration + 1,
                evaluations,
                reason: StopReason::ObjectiveStoppedDecreasing,
            };
        }
    }
    LbfgsResult {
        value,
        iterations: config.max_iter,
        evaluations,
        reason: StopReason::IterationLimit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_the_rosenbrock_function() {
        let mut x = vec![-1.2, 1.0];
        let result = minimize(
            &mut x,
            &LbfgsConfig {
                max_iter: 1000,
                gradient_tol: 1e-8,
                relative_decrease_tol: 0.0,
                ..LbfgsConfig::default()
            },
            |x, g| {
                let (a, b) = (x[0], x[1]);
                g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
                g[1] = 200.0 * (b - a * a);
                (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
            },
        );
        assert!(result.reason.converged(), "{result:?}");
        assert!(
            (x[0] - 1.0).abs() < 1e-5 && (x[1] - 1.0).abs() < 1e-5,
            "{x:?}"
        );
    }

    #[test]
    fn solves_a_convex_quadratic_exactly() {
        // f(x) = 1/2 x'Ax - b'x with A diagonal: minimum at x = b / diag(A).
        let diag = [1.0, 10.0, 100.0, 1000.0];
        let b = [1.0, -2.0, 3.0, -4.0];
        let mut x = vec![0.0; 4];
        let result = minimize(
            &mut x,
            &LbfgsConfig {
                gradient_tol: 1e-10,
                relative_decrease_tol: 0.0,
                ..LbfgsConfig::default()
            },
            |x, g| {
                let mut v = 0.0;
                for i in 0..4 {
                    g[i] = diag[i] * x[i] - b[i];
                    v += 0.5 * diag[i] * x[i] * x[i] - b[i] * x[i];
                }
                v
            },
        );
        assert!(result.reason.converged(), "{result:?}");
        for i in 0..4 {
            assert!((x[i] - b[i] / diag[i]).abs() < 1e-8, "{x:?}");
        }
    }
}
