//! Golden checks against the values published with the shared models.

use std::path::PathBuf;

use fruits_image::{DecodeLimits, Prepare, Preprocessing};
use fruits_model::{FeatureModel, ModelOptions, paths};

fn argmax(v: &[f32]) -> (usize, f32) {
    v.iter()
        .copied()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, x)| {
            if x > best.1 { (i, x) } else { best }
        })
}

/// True when the shared models are not here and the calling test must stop:
/// it says why on the terminal (never a silent pass); under
/// `FRUITS_REQUIRE_ALL` (`scripts/test.sh`, where every test must run) it fails.
fn no_models() -> bool {
    use std::io::Write;
    let dir = paths::models_dir();
    if dir.join(paths::FP32_MODEL).is_file() {
        return false;
    }
    let why = format!(
        "no models in {} (set FRUITS_MODELS_DIR, or fetch them: fruits models fetch)",
        dir.display()
    );
    if std::env::var_os("FRUITS_REQUIRE_ALL").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{why} (FRUITS_REQUIRE_ALL is set: every test must run)");
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    true
}

fn test_image(name: &str) -> Vec<u8> {
    let path: PathBuf = paths::models_dir().join("testimages").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn fp32() -> FeatureModel {
    let path = paths::models_dir().join(paths::FP32_MODEL);
    FeatureModel::load(&path, &ModelOptions::default()).expect("load the fp32 model")
}

#[test]
fn cat_logits_and_features_match_the_published_values() {
    if no_models() {
        return;
    }
    let model = fp32();
    assert_eq!(model.info().feature_dim, 1280);
    assert_eq!(model.info().input_size, 224);
    assert_eq!(
        model.info().sha256,
        "1258977a06602d965ecf40793ac41ad5cef4fde2d56aa54e361c4709ee65c838"
    );
    let (tensor, info) = Preprocessing::default()
        .preprocess(&test_image("cat.bmp"), &DecodeLimits::default())
        .expect("cat");
    assert!(
        info.width != info.height,
        "cat.bmp exercises the short-side + crop path"
    );
    let out = model
        .run_outputs(&tensor, &["logits", "features"])
        .expect("run");
    let (cls, max_logit) = argmax(&out[0]);
    assert_eq!(cls, 285, "Egyptian cat");
    assert!((max_logit - 15.35).abs() < 0.5, "max logit {max_logit}");
    let (feat, max_feat) = argmax(&out[1]);
    assert_eq!(feat, 1193);
    assert!((max_feat - 3.33).abs() < 0.15, "max feature {max_feat}");
    assert!(
        out[1].iter().all(|v| v.is_finite() && *v >= 0.0),
        "pooled ReLU6 features"
    );
}

#[test]
fn hot_dog_and_parrot_top1() {
    if no_models() {
        return;
    }
    let model = fp32();
    let pre = Preprocessing::default();
    for (name, class) in [("hot_dog.jpg", 934), ("parrot.jpg", 88)] {
        let (tensor, _) = pre
            .preprocess(&test_image(name), &DecodeLimits::default())
            .expect(name);
        let logits = model
            .run_outputs(&tensor, &["logits"])
            .expect("run")
            .remove(0);
        assert_eq!(argmax(&logits).0, class, "{name}");
    }
}

#[test]
fn batches_equal_single_images() {
    if no_models() {
        return;
    }
    let model = fp32();
    let pre = Preprocessing::default();
    let mut batch = Vec::new();
    let mut singles = Vec::new();
    for name in ["cat.bmp", "hot_dog.jpg", "parrot.jpg"] {
        let (t, _) = pre
            .preprocess(&test_image(name), &DecodeLimits::default())
            .expect(name);
        singles.extend(model.run(&t).expect("single"));
        batch.extend(t);
    }
    let batched = model.run(&batch).expect("batch");
    assert_eq!(batched.len(), 3 * 1280);
    let worst = batched
        .iter()
        .zip(&singles)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "batched vs single differ by {worst}");
}

#[test]
fn sessions_side_by_side_give_the_answers_of_one() {
    if no_models() {
        return;
    }
    let pre = Preprocessing::default();
    let images: Vec<Vec<f32>> = ["cat.bmp", "hot_dog.jpg", "parrot.jpg"]
        .iter()
        .map(|name| {
            pre.preprocess(&test_image(name), &DecodeLimits::default())
                .expect(name)
                .0
        })
        .collect();
    let one = fp32();
    let want: Vec<Vec<f32>> = images.iter().map(|t| one.run(t).expect("run")).collect();
    let options = ModelOptions {
        sessions: 2,
        intra_threads: 1,
        ..ModelOptions::default()
    };
    let two = FeatureModel::load(&paths::models_dir().join(paths::FP32_MODEL), &options)
        .expect("two sessions");
    assert_eq!(two.sessions(), 2);
    assert_eq!(two.info(), one.info());
    // Four threads on two sessions: calls wait for a free session, none fails,
    // and each image gets its own features whichever session ran it.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for (t, want) in images.iter().zip(&want) {
                    let got = two.run(t).expect("run");
                    let worst = got
                        .iter()
                        .zip(want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(worst < 1e-4, "differs by {worst}");
                }
            });
        }
    });
}

#[test]
fn int8_model_has_the_same_interface() {
    if no_models() {
        return;
    }
    let path = paths::models_dir().join(paths::INT8_MODEL);
    let model = FeatureModel::load(&path, &ModelOptions::default()).expect("int8");
    let (tensor, _) = Preprocessing::default()
        .preprocess(&test_image("hot_dog.jpg"), &DecodeLimits::default())
        .expect("img");
    assert_eq!(model.run(&tensor).expect("run").len(), 1280);
    let logits = model
        .run_outputs(&tensor, &["output"])
        .expect("logits")
        .remove(0);
    assert_eq!(argmax(&logits).0, 934);
}

#[test]
fn clear_errors_for_missing_model_and_output() {
    if no_models() {
        return;
    }
    let err = FeatureModel::load(
        std::path::Path::new("/nope/model.onnx"),
        &ModelOptions::default(),
    )
    .expect_err("missing");
    assert!(
        matches!(err, fruits_model::ModelError::ModelNotFound(_))
            && err.to_string().contains("/nope/model.onnx"),
        "{err}"
    );
    let options = ModelOptions {
        feature_output: "pool5".into(),
        ..ModelOptions::default()
    };
    let err = FeatureModel::load(&paths::models_dir().join(paths::FP32_MODEL), &options)
        .expect_err("output");
    let msg = err.to_string();
    assert!(
        msg.contains("pool5") && msg.contains("features") && msg.contains("logits"),
        "{msg}"
    );
}
