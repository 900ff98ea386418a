//! End-to-end tests of `fruits run` and `fruits pca` on real sample images.

use crate::common::require;
use crate::common::*;

#[test]
fn run_fits_and_transforms_and_pca_errors_are_clear() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Apple 6", "Banana 1", "Kiwi 1", "Lemon 1"], 10);
    let out = tmp.path().join("out");
    let s = |p: &std::path::Path| p.to_str().expect("utf8").to_string();

    let o = run(&[
        "run",
        &s(&input),
        "--out",
        &s(&out),
        "--quiet",
        "--variance",
        "0.9",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pca/pca.json")).expect("pca.json"))
            .expect("json");
    let k = meta["k"].as_u64().expect("k") as usize;
    for png in ["explained_variance.png", "projection.png"] {
        let bytes = std::fs::read(out.join("pca").join(png)).expect(png);
        assert_eq!(&bytes[1..4], b"PNG", "{png}");
    }
    assert_eq!(meta["n"], 80);
    assert_eq!(meta["d"], 1280);
    let ratios: Vec<f64> =
        serde_json::from_value(meta["explained_variance_ratio"].clone()).expect("ratios");
    let kept: f64 = ratios[..k].iter().sum();
    assert!(
        kept >= 0.9 && kept - ratios[k - 1] < 0.9,
        "k={k} is the smallest reaching 90%"
    );

    // The reduced output: same rows, a `pca` vector of k values.
    let reduced =
        fruits_store::Dataset::open(&fruits_store::Location::local_path(&out.join("reduced")))
            .expect("reduced");
    assert_eq!(reduced.manifest().rows, 80);
    let batch = reduced
        .batches(fruits_store::PartKind::Features, 100)
        .next()
        .expect("batch")
        .expect("ok");
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["path", "label", "split", "pca", "colour"]);

    // --k, show.
    let o = run(&[
        "pca",
        "fit",
        &s(&out.join("features")),
        "--out",
        &s(&tmp.path().join("k5")),
        "--k",
        "5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(summary["k"], 5);
    let o = run(&["pca", "show", &s(&tmp.path().join("k5"))]);
    assert!(o.status.success(), "{}", describe(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(table.lines().count(), 2 + 5, "{table}");

    // No usable font: the fit is kept and the plots are a warning, not a failure.
    let not_a_font = tmp.path().join("not-a-font.ttf");
    std::fs::write(&not_a_font, b"plain text").expect("write");
    let no_plots = tmp.path().join("no-plots");
    let o = fruits()
        .env("FRUITS_FONT", &not_a_font)
        .args([
            "pca",
            "fit",
            &s(&out.join("features")),
            "--out",
            &s(&no_plots),
        ])
        .output()
        .expect("run fruits");
    assert!(o.status.success(), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: plots not written") && err.contains("is not a usable TrueType font"),
        "{err}"
    );
    assert!(no_plots.join("pca.json").is_file());
    assert!(!no_plots.join("explained_variance.png").exists());

    // Errors: k > d, variance out of range, both flags, not a features output.
    for (args, needle) in [
        (vec!["--k", "2000"], "between 1 and the feature size 1280"),
        (vec!["--variance", "1.5"], "above 0 and at most 1"),
        (vec!["--variance", "0"], "above 0 and at most 1"),
        (vec!["--k", "3", "--variance", "0.5"], "cannot be used with"),
    ] {
        let mut full = vec![
            "pca",
            "fit",
            s(&out.join("features")).leak() as &str,
            "--out",
            s(&tmp.path().join("bad")).leak(),
        ];
        full.extend(args.iter().copied());
        let o = run(&full);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let o = run(&[
        "pca",
        "fit",
        &s(&input),
        "--out",
        &s(&tmp.path().join("bad")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("_manifest.json"));
}

#[test]
fn fitting_an_output_without_rows_is_a_clear_error() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in/Test/Empty");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("broken.jpg"), b"nope").expect("write");
    let features = tmp.path().join("features");
    let o = run(&[
        "featurize",
        tmp.path().join("in").to_str().expect("utf8"),
        "--out",
        features.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let o = run(&[
        "pca",
        "fit",
        features.to_str().expect("utf8"),
        "--out",
        tmp.path().join("pca").to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("has 0 featurised row(s)"), "{err}");
}
