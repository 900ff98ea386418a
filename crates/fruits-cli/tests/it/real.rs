//! Real photos beside studio ones: featurised in views, trained on as
//! photos in the wild, scored by fruit, answered at the level the photo
//! supports. The "real" photos here are augmented copies of sample photos
//! filed under real-photo classes: the mechanics, not the accuracy (which
//! needs the datasets of data/real-photos/, measured by hand).

use std::path::Path;

use crate::common::require;
use crate::common::*;

/// `fruits evaluate ... --json` as JSON.
fn evaluate(bundle: &Path, data: &Path, out: &Path) -> serde_json::Value {
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let o = run(&[
        "evaluate",
        &s(bundle),
        "--on",
        &s(data),
        "--split",
        "Test",
        "--json",
        "--out",
        &s(out),
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn real_photos_train_in_views_and_are_answered_by_fruit() {
    require!(Shared);
    let t = trained();
    let tmp = tempfile::tempdir().expect("tmp");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    // Real photos of three fruits, under real-photo classes (no number).
    let real = tmp.path().join("real");
    for (studio, class) in [
        ("Kiwi 1", "Kiwi"),
        ("Banana 1", "Banana"),
        ("Avocado 1", "Avocado"),
    ] {
        for split in ["Training", "Test"] {
            let o = run(&[
                "augment",
                &s(&t.photos.join(split).join(studio)),
                "--out",
                &s(&real.join(split).join(class)),
                "--copies",
                "1",
            ]);
            assert!(o.status.success(), "{}", describe(&o));
        }
    }
    let features = tmp.path().join("real-features");
    let o = featurize(&real, &features, &["--views"]);
    assert!(o.status.success(), "{}", describe(&o));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(features.join("_manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["meta"]["views"].as_array().map(Vec::len), Some(6));
    // A resume with other views would mix rows of two kinds: refused.
    let o = featurize(&real, &features, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("views"));

    // Studio features and real ones, trained together.
    let bundle = tmp.path().join("classifier");
    let o = run(&[
        "train",
        &s(&t.run.join("features")),
        "--real",
        &s(&features),
        "--split",
        "Training",
        "--k",
        "8",
        "--out",
        &s(&bundle),
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("classifier.json")).expect("bundle"))
            .expect("json");
    assert_eq!(file["views"].as_array().map(Vec::len), Some(6));
    let sources = file["sources"].as_array().expect("sources");
    assert_eq!(sources.len(), 2);
    assert_eq!(
        (sources[0]["real"].as_bool(), sources[1]["real"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(sources[1]["views"], 6);
    assert_eq!(file["model"]["classes"].as_array().map(Vec::len), Some(7));
    // The studio head has its own PCA, fitted on the studio photos alone.
    let studio_pca = file["studio"]["pca"]["dir"].as_str().expect("studio PCA");
    assert!(bundle.join(studio_pca).join("pca.json").exists());

    // Scored by fruit, each photo in its 6 views, as identify answers it.
    let eval = evaluate(&bundle, &features, &tmp.path().join("eval"));
    assert_eq!(eval["views"], 6);
    assert_eq!(eval["fruit"]["rows"], 30);
    assert!(
        eval["fruit"]["accuracy"].as_f64().expect("fruit accuracy") >= 0.8,
        "{}",
        eval["fruit"]
    );
    // The studio bundle never saw these classes: no class-level row, but
    // every photo is scored at the fruit level.
    let studio_only = evaluate(&t.classifier, &features, &tmp.path().join("eval-studio"));
    assert_eq!(studio_only["rows"], 0);
    assert_eq!(studio_only["fruit"]["rows"], 30);
    assert_eq!(studio_only["views"], 1);

    // identify names the fruit; the card has the level and the fruit's names.
    let photo = std::fs::read_dir(real.join("Test/Kiwi"))
        .expect("photos")
        .flatten()
        .map(|e| e.path())
        .min()
        .expect("a photo");
    let o = run(&["identify", &s(&photo), "--model", &s(&bundle), "--json"]);
    assert!(o.status.success(), "{}", describe(&o));
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("json");
    let a = &answers[0];
    assert_eq!(a["fruit"]["fruit"], "Kiwi", "{a}");
    assert_eq!(a["fruit"]["french"], "Kiwi", "{a}");
    assert!(a["level"] == "variety" || a["level"] == "fruit", "{a}");
}
