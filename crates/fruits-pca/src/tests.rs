use super::*;

/// Deterministic pseudo-random rows with a large common offset (like ReLU features).
fn rows(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n * d)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 33) as f32 / (1u64 << 31) as f32;
            1000.0 + u * (1.0 + (i % d) as f32) + if i % d == 0 { u * 5.0 } else { 0.0 }
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())))
}

#[test]
fn merge_of_parts_equals_whole() {
    let (n, d) = (300, 7);
    let x = rows(n, d, 1);
    let mut whole = PcaStats::new(d);
    whole.update(&x).expect("whole");
    for cuts in [
        vec![1, 299],
        vec![100, 100, 100],
        vec![17, 200, 83],
        vec![299, 1],
    ] {
        let mut parts = Vec::new();
        let mut start = 0;
        for len in cuts {
            let mut s = PcaStats::new(d);
            s.update(&x[start * d..(start + len) * d]).expect("part");
            parts.push(s);
            start += len;
        }
        // Merge in a tree-ish order to exercise both sides.
        let mut merged = PcaStats::new(d);
        for p in parts.iter().rev() {
            let mut m = p.clone();
            m.merge(&merged).expect("merge");
            merged = m;
        }
        assert_eq!(merged.count(), whole.count());
        assert!(close(merged.mean(), whole.mean(), 1e-12));
        let (a, b) = (
            merged.covariance().expect("cov"),
            whole.covariance().expect("cov"),
        );
        for i in 0..d {
            for j in 0..d {
                assert!((a[(i, j)] - b[(i, j)]).abs() < 1e-9 * (1.0 + b[(i, j)].abs()));
            }
        }
        let (fa, fb) = (
            fit(&merged, Keep::K(d)).expect("fit"),
            fit(&whole, Keep::K(d)).expect("fit"),
        );
        assert!(close(&fa.explained_variance, &fb.explained_variance, 1e-9));
        assert!(close(&fa.components, &fb.components, 1e-7));
    }
}

#[test]
fn covariance_matches_two_pass_despite_a_large_offset() {
    let (n, d) = (500, 4);
    let x = rows(n, d, 2);
    let mut s = PcaStats::new(d);
    for chunk in x.chunks(37 * d) {
        s.update(chunk).expect("update");
    }
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| f64::from(x[i * d + j])).sum::<f64>() / n as f64)
        .collect();
    let cov = s.covariance().expect("cov");
    for a in 0..d {
        for b in 0..d {
            let two_pass = (0..n)
                .map(|i| (f64::from(x[i * d + a]) - mean[a]) * (f64::from(x[i * d + b]) - mean[b]))
                .sum::<f64>()
                / (n - 1) as f64;
            assert!(
                (cov[(a, b)] - two_pass).abs() < 1e-9 * two_pass.abs().max(1e-3),
                "{a},{b}"
            );
        }
    }
}

#[test]
fn k_selection_is_the_smallest_reaching_the_target() {
    let ratios = [0.5, 0.3, 0.15, 0.05];
    assert_eq!(choose_k(&ratios, 0.5), 1);
    assert_eq!(choose_k(&ratios, 0.51), 2);
    assert_eq!(choose_k(&ratios, 0.8), 2);
    assert_eq!(choose_k(&ratios, 0.95), 3);
    assert_eq!(choose_k(&ratios, 0.96), 4);
    assert_eq!(choose_k(&ratios, 1.0), 4);
}

#[test]
fn components_are_orthonormal_sorted_and_signed() {
    let d = 6;
    let mut s = PcaStats::new(d);
    s.update(&rows(400, d, 3)).expect("update");
    let m = fit(&s, Keep::Variance(0.9)).expect("fit");
    assert!(m.variance_kept() >= 0.9);
    assert!(m.k < d);
    assert!(m.explained_variance.windows(2).all(|w| w[0] >= w[1]));
    for a in 0..m.k {
        let ca = &m.components[a * d..(a + 1) * d];
        let biggest = ca
            .iter()
            .fold(0.0f64, |acc, x| if x.abs() > acc.abs() { *x } else { acc });
        assert!(biggest > 0.0, "sign convention");
        for b in 0..m.k {
            let dot: f64 = ca
                .iter()
                .zip(&m.components[b * d..(b + 1) * d])
                .map(|(x, y)| x * y)
                .sum();
            assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-10);
        }
    }
    // Projections of the fitting rows are centred and their variances are the eigenvalues.
    let x = rows(400, d, 3);
    let z = m.transform(&x).expect("transform");
    for c in 0..m.k {
        let col: Vec<f64> = (0..400).map(|i| f64::from(z[i * m.k + c])).collect();
        let mean = col.iter().sum::<f64>() / 400.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 399.0;
        assert!(mean.abs() < 1e-3);
        assert!((var - m.explained_variance[c]).abs() < 1e-3 * m.explained_variance[c]);
    }
}

#[test]
fn errors_are_clear() {
    let mut s = PcaStats::new(3);
    assert!(matches!(fit(&s, Keep::K(1)), Err(PcaError::TooFewRows(0))));
    assert!(s.update(&[1.0, f32::NAN, 2.0]).is_err());
    assert!(s.update(&[1.0, 2.0]).is_err());
    s.update(&[1.0, 2.0, 3.0, 2.0, 2.0, 1.0]).expect("ok");
    for bad in [
        Keep::K(0),
        Keep::K(4),
        Keep::Variance(0.0),
        Keep::Variance(1.5),
        Keep::Variance(f64::NAN),
    ] {
        let err = fit(&s, bad).expect_err("bad target");
        assert!(err.to_string().contains("must be"), "{err}");
    }
    let mut other = PcaStats::new(4);
    other.update(&[1.0; 8]).expect("ok");
    assert!(s.merge(&other).is_err());
}

#[test]
fn bytes_roundtrip() {
    let mut s = PcaStats::new(5);
    s.update(&rows(20, 5, 4)).expect("update");
    assert_eq!(PcaStats::from_bytes(&s.to_bytes()).expect("parse"), s);
    assert!(PcaStats::from_bytes(&[1, 2, 3]).is_err());
}
