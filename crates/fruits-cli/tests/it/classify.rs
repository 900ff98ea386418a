//! `fruits train`, `evaluate` and `identify` end to end on real sample photos.

use std::path::Path;

use crate::common::require;
use crate::common::{DISTINCT_CLASSES, copy_dir, describe, run, test_photo, trained};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(out)))
}

#[test]
fn trains_evaluates_and_identifies() {
    require!(Shared);
    let t = trained();
    // The bundle: classifier.json plus the PCA it fitted on the Training rows only.
    let file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(t.classifier.join("classifier.json")).expect("classifier.json"),
    )
    .expect("json");
    assert_eq!(file["pca"]["k"], 8);
    assert_eq!(file["training"]["split"], "Training");
    assert_eq!(file["training"]["report"]["rows"], 40);
    assert_eq!(
        file["model"]["classes"].as_array().expect("classes").len(),
        4
    );
    // The PCA lives in the folder classifier.json names.
    let folder = file["pca"]["dir"].as_str().expect("the PCA's folder");
    assert!(folder.starts_with("pca-"), "{folder}");
    let pca: serde_json::Value = serde_json::from_slice(
        &std::fs::read(t.classifier.join(folder).join("pca.json")).expect("pca.json"),
    )
    .expect("json");
    assert_eq!(
        pca["n"], 40,
        "the PCA is fitted on the 40 Training rows, not the Test rows"
    );

    // Evaluate on the Test split of the features output.
    let report_dir = t.classifier.join("eval");
    let out = run(&[
        "evaluate",
        s(&t.classifier),
        "--on",
        s(&t.run.join("features")),
        "--split",
        "Test",
        "--out",
        s(&report_dir),
        "--json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let report = json(&out);
    assert_eq!(report["rows"], 40);
    assert_eq!(report["accuracy"], 1.0, "{report}");
    assert_eq!(report["macro_f1"], 1.0);
    assert_eq!(report["revenue_always_answer"]["correct"], 40);
    assert_eq!(report["revenue_best"]["net"], 40.0);
    for file in [
        "report.json",
        "per_class.csv",
        "confusion.png",
        "revenue.png",
    ] {
        let bytes = std::fs::read(report_dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(bytes.len() > 100, "{file} is nearly empty");
    }
    let csv = std::fs::read_to_string(report_dir.join("per_class.csv")).expect("csv");
    assert!(
        csv.starts_with("class,support,precision,recall,f1\nAvocado 1,10,"),
        "{csv}"
    );

    // Human output names the figures.
    let out = run(&[
        "evaluate",
        s(&t.classifier),
        "--on",
        s(&t.run.join("features")),
        "--split",
        "Test",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("40 rows of split Test: accuracy 100.00%"),
        "{text}"
    );
    assert!(t.classifier.join("evaluation-Test/confusion.png").is_file());

    // Identify: every class's first Test photo, with its fruit information.
    let photos: Vec<_> = DISTINCT_CLASSES.iter().map(|c| test_photo(c)).collect();
    let mut args = vec![
        "identify",
        "--model",
        s(&t.classifier),
        "--json",
        "--top",
        "3",
    ];
    args.extend(photos.iter().map(|p| s(p)));
    let out = run(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let answers = json(&out);
    for (class, answer) in DISTINCT_CLASSES
        .iter()
        .zip(answers.as_array().expect("array"))
    {
        let top = answer["top"].as_array().expect("top");
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["class"], *class, "{answer}");
        assert!(top[0]["probability"].as_f64().expect("p") > 0.5, "{answer}");
        assert!(
            !top[0]["info"]["french"]
                .as_str()
                .expect("french")
                .is_empty()
        );
    }
    let out = run(&["identify", "--model", s(&t.classifier), s(&photos[1])]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Kiwi 1 - Kiwifruit"),
        "{}",
        describe(&out)
    );
}

#[test]
fn reduced_outputs_train_with_their_own_pca_and_mismatches_are_refused() {
    require!(Shared);
    let t = trained();
    let reduced = t.run.join("reduced");
    let from_reduced = t.run.join("clf-reduced");
    // `out/reduced` finds `out/pca` beside it.
    let out = run(&[
        "train",
        s(&reduced),
        "--split",
        "Training",
        "--out",
        s(&from_reduced),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = run(&[
        "evaluate",
        s(&from_reduced),
        "--on",
        s(&reduced),
        "--split",
        "Test",
        "--json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(json(&out)["accuracy"].as_f64().expect("accuracy") >= 0.95);

    // The classifier behind its own PCA refuses rows another PCA reduced.
    let out = run(&[
        "evaluate",
        s(&t.classifier),
        "--on",
        s(&reduced),
        "--split",
        "Test",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(err.contains("give it the features output instead"), "{err}");

    // A raw-feature classifier refuses reduced rows too.
    let raw = t.run.join("clf-raw");
    let out = run(&[
        "train",
        s(&t.run.join("features")),
        "--split",
        "Training",
        "--no-pca",
        "--out",
        s(&raw),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(raw.join("classifier.json")).expect("read"))
            .expect("json");
    // The raw features and, beside them, the photo's colour descriptor.
    assert!(file["pca"].is_null() && file["model"]["d"] == 1280 + 128);
    assert_eq!(file["colour_bins"], 128);
    let out = run(&["evaluate", s(&raw), "--on", s(&reduced)]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("takes raw features"),
        "{}",
        describe(&out)
    );
}

#[test]
fn bad_requests_are_explained() {
    require!(Shared);
    let t = trained();
    let features = t.run.join("features");
    // A split that does not exist lists the ones that do.
    let out = run(&[
        "train",
        s(&features),
        "--split",
        "Validation",
        "--out",
        s(&t.run.join("x")),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        err.contains("no rows in split \"Validation\"") && err.contains("\"Test\""),
        "{err}"
    );
    // Not a classifier.
    let out = run(&["evaluate", s(&features), "--on", s(&features)]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("written by `fruits train`"),
        "{}",
        describe(&out)
    );
    // A revenue file with a typo.
    let revenue = t.run.join("revenue.toml");
    std::fs::write(&revenue, "gain_correct = 1.0\ncost_wrng = 5.0\n").expect("write");
    let out = run(&[
        "evaluate",
        s(&t.classifier),
        "--on",
        s(&features),
        "--revenue",
        s(&revenue),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a valid revenue file") && err.contains("cost_wrng"),
        "{err}"
    );
    // Impossible values and unknown classes are refused, not swept for ever.
    for (text, says) in [
        ("gain_correct = inf\ncost_wrong = 5.0\n", "must be finite"),
        (
            "gain_correct = 1e308\ncost_wrong = 1e308\ncost_abstain = 1e308\n",
            "at most",
        ),
        ("gain_correct = nan\ncost_wrong = 5.0\n", "must be finite"),
        (
            "gain_correct = 1.0\ncost_wrong = 5.0\n[classes.\"kiwi 1\"]\ncost_wrong = 9.0\n",
            "did you mean \"Kiwi 1\"",
        ),
    ] {
        std::fs::write(&revenue, text).expect("write");
        let started = std::time::Instant::now();
        let out = run(&[
            "evaluate",
            s(&t.classifier),
            "--on",
            s(&features),
            "--revenue",
            s(&revenue),
            "--out",
            s(&t.run.join("eval-bad-revenue")),
        ]);
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{text}: {}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{text}: {err}");
    }
    // A costly mistake class moves the best threshold; overrides are applied.
    std::fs::write(
        &revenue,
        "gain_correct = 1.0\ncost_wrong = 5.0\ncost_abstain = 0.5\n[classes.\"Kiwi 1\"]\ngain_correct = 3.0\n",
    )
    .expect("write");
    let out = run(&[
        "evaluate",
        s(&t.classifier),
        "--on",
        s(&features),
        "--split",
        "Test",
        "--revenue",
        s(&revenue),
        "--json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(json(&out)["revenue_always_answer"]["net"], 60.0);
    // Photos that cannot be read: reported, exit 3, the others still answered.
    let junk = t.run.join("junk.jpg");
    std::fs::write(&junk, b"not a photo").expect("write");
    let good = test_photo("Banana 1");
    let out = run(&["identify", "--model", s(&t.classifier), s(&junk), s(&good)]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.jpg: not a supported image"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Banana 1"));
    // A classifier for another image model is refused with both hashes named.
    let out = run(&[
        "identify",
        "--model",
        s(&t.classifier),
        "--image-model",
        s(&fruits_model::paths::models_dir().join(fruits_model::paths::FP32_MODEL)),
        s(&good),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        err.contains("is not the one the classifier was trained with"),
        "{err}"
    );
}

#[test]
fn tampered_classifiers_are_refused_when_loaded() {
    require!(Shared);
    let t = trained();
    let text = std::fs::read_to_string(t.classifier.join("classifier.json")).expect("bundle");
    let original: serde_json::Value = serde_json::from_str(&text).expect("json");
    let photo = test_photo(DISTINCT_CLASSES[0]);
    let root = t.classifier.parent().expect("parent").join("tampered");
    // Zero and negative scales divide by zero (a null probability and a
    // wrong class were served); a weight beyond f32 would be infinite.
    type Edit = fn(&mut serde_json::Value);
    let edits: [(&str, Edit, &str); 3] = [
        (
            "zero scale",
            |v| v["model"]["scaler"]["scale"][0] = 0.0.into(),
            "a damaged or edited file",
        ),
        (
            "negative scale",
            |v| v["model"]["scaler"]["scale"][3] = (-1.0).into(),
            "a damaged or edited file",
        ),
        (
            "infinite weight",
            |v| v["model"]["weights"][5] = 1e39.into(),
            "number out of range",
        ),
    ];
    for (what, edit, needle) in edits {
        let dir = root.join(what.replace(' ', "-"));
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&t.classifier, &dir);
        let mut bundle = original.clone();
        edit(&mut bundle);
        std::fs::write(dir.join("classifier.json"), bundle.to_string()).expect("write");
        let o = run(&["identify", s(&photo), "--model", s(&dir)]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(needle) && err.contains("classifier.json"),
            "{what}: {err}"
        );
    }
}

#[test]
fn cross_validation_chooses_c_on_the_training_rows_only() {
    require!(Shared);
    let t = trained();
    let features = t.run.join("features");
    let out_dir = t.run.join("clf-cv");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            s(&features),
            "--split",
            "Training",
            "--out",
            s(&out_dir),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let out = train(&["--cv", "3", "--cv-c", "0.1,1", "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let info = json(&out);
    let cv = &info["cv"];
    // 4 classes x 10 Training photos: the Test rows never enter.
    assert_eq!(cv["rows"], 40, "{info}");
    assert_eq!(cv["folds"], 3);
    let scores = cv["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 2);
    for score in scores {
        assert_eq!(score["fold_accuracy"].as_array().map(Vec::len), Some(3));
        let mean = score["mean"].as_f64().expect("mean");
        assert!((0.0..=1.0).contains(&mean), "{score}");
    }
    let chosen = cv["chosen_c"].as_f64().expect("chosen");
    let best = scores
        .iter()
        .filter_map(|s| s["mean"].as_f64())
        .fold(0.0, f64::max);
    assert!(
        scores
            .iter()
            .any(|s| s["c"].as_f64() == Some(chosen) && s["mean"].as_f64() == Some(best)),
        "{info}"
    );
    // The final model is trained with the chosen C, and the bundle says how.
    assert_eq!(info["c"].as_f64(), Some(chosen));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("classifier.json")).expect("read"))
            .expect("json");
    assert_eq!(file["training"]["cv"], *cv);

    // The human report names every C and the one kept.
    let out = train(&["--cv", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        text.contains("2 stratified folds of the 40 training rows"),
        "{text}"
    );
    assert_eq!(text.matches("C = ").count(), 5, "{text}");
    assert!(text.contains("<- kept"), "{text}");

    // Requests that cannot work are usage errors naming the flag.
    for (extra, flag) in [
        (&["--cv", "1"][..], "--cv"),
        (&["--cv", "3", "--c", "2"][..], "--c"),
        (&["--cv-c", "1"][..], "--cv"),
        (&["--cv", "3", "--cv-c", "0"][..], "--cv-c"),
    ] {
        let out = train(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", describe(&out));
        assert!(err.contains(flag), "{extra:?}: {err}");
    }
}

#[test]
fn below_the_bundles_threshold_the_answer_is_not_sure() {
    require!(Shared);
    let t = trained();
    let tmp = tempfile::tempdir().expect("tmp");
    let bundle = tmp.path().join("classifier");
    copy_dir(&t.classifier, &bundle);
    let photo = test_photo("Kiwi 1");
    let identify = |bundle: &Path| {
        let out = run(&["identify", "--model", s(bundle), s(&photo), "--json"]);
        assert!(out.status.success(), "{}", describe(&out));
        json(&out)[0].clone()
    };
    // No threshold: the best class is the answer.
    let sure = identify(&bundle);
    assert_eq!(sure["not_sure"], false);
    assert_eq!(sure["answer"]["class"], sure["top"][0]["class"]);

    // `evaluate --save-threshold` records the threshold that earns the most.
    let out = run(&[
        "evaluate",
        s(&bundle),
        "--on",
        s(&t.run.join("features")),
        "--split",
        "Test",
        "--save-threshold",
        "--json",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let best = json(&out)["revenue_best"]["threshold"]
        .as_f64()
        .expect("threshold");
    let file = bundle.join("classifier.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let recorded = saved["abstain_below"].as_f64().expect("recorded");
    assert!((recorded - best).abs() < 1e-6, "{recorded} vs {best}");

    // A threshold above every confidence: "not sure", the guesses, no answer.
    saved["abstain_below"] = serde_json::json!(1.5);
    std::fs::write(&file, saved.to_string()).expect("write");
    let unsure = identify(&bundle);
    assert_eq!(unsure["not_sure"], true);
    assert!(unsure["answer"].is_null(), "{unsure}");
    assert_eq!(unsure["top"][0]["class"], "Kiwi 1");
    let text = run(&["identify", "--model", s(&bundle), s(&photo)]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("not sure"),
        "{}",
        describe(&text)
    );

    // `train --abstain-below` sets it at training time.
    let trained_with = tmp.path().join("with-threshold");
    let out = run(&[
        "train",
        s(&t.run.join("features")),
        "--split",
        "Training",
        "--abstain-below",
        "0.4",
        "--out",
        s(&trained_with),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(trained_with.join("classifier.json")).expect("read"))
            .expect("json");
    assert!((file["abstain_below"].as_f64().expect("set") - 0.4).abs() < 1e-6);
}

#[test]
fn augmented_copies_are_reproducible_and_score_like_photos_in_the_wild() {
    require!(Shared);
    let t = trained();
    let tmp = tempfile::tempdir().expect("tmp");
    let test_photos = t.photos.join("Test");
    let augment = |out: &Path, seed: &str| {
        let o = run(&[
            "augment",
            s(&test_photos),
            "--out",
            s(out),
            "--copies",
            "2",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", describe(&o));
    };
    let files = |dir: &Path| {
        let mut found = Vec::new();
        for class in std::fs::read_dir(dir).expect("read") {
            for f in std::fs::read_dir(class.expect("entry").path()).expect("read") {
                let f = f.expect("entry").path();
                found.push((
                    f.strip_prefix(dir).expect("under").to_path_buf(),
                    std::fs::read(&f).expect("read"),
                ));
            }
        }
        found.sort();
        found
    };
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    augment(&a, "5");
    augment(&b, "5");
    augment(&c, "6");
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    let originals: usize = std::fs::read_dir(&test_photos)
        .expect("read")
        .map(|d| {
            std::fs::read_dir(d.expect("entry").path())
                .expect("read")
                .count()
        })
        .sum();
    assert_eq!(fa.len(), 2 * originals, "two copies of each photo");
    assert!(fa.iter().all(|(p, _)| p.to_string_lossy().contains("-aug")));
    assert_eq!(fa, fb, "the same seed makes the same copies");
    assert_ne!(fa, fc, "another seed, other copies");

    // The copies featurise like any photo, and the classifier trained on studio
    // photos is scored on them: the robustness figure.
    let features = tmp.path().join("features");
    let o = run(&["featurize", s(&a), "--out", s(&features), "--quiet"]);
    assert!(o.status.success(), "{}", describe(&o));
    let o = run(&[
        "evaluate",
        s(&t.classifier),
        "--on",
        s(&features),
        "--out",
        s(&tmp.path().join("report")),
        "--json",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let report = json(&o);
    assert_eq!(report["rows"], 2 * originals);
    let accuracy = report["accuracy"].as_f64().expect("accuracy");
    assert!((0.0..=1.0).contains(&accuracy));
    eprintln!("accuracy on augmented Test copies: {accuracy:.3}");
}

#[test]
fn identify_answers_from_any_folder_with_no_flag() {
    require!(Shared);
    let t = trained();
    let photo = std::fs::canonicalize(test_photo("Kiwi 1")).expect("photo");
    let bundle = std::fs::canonicalize(&t.classifier).expect("bundle");
    // From `/`, with no models folder named: the bundle finds its image model
    // by the absolute path it records, or by sha256 in the search folders.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fruits"))
        .current_dir("/")
        .env_remove("FRUITS_MODELS_DIR")
        .env_remove("FRUITS_MODEL")
        .args([
            "identify",
            photo.to_str().expect("utf8"),
            "--model",
            bundle.to_str().expect("utf8"),
        ])
        .output()
        .expect("spawn fruits");
    assert!(o.status.success(), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Kiwi 1"),
        "{}",
        describe(&o)
    );
}
