//! End-to-end runs against a real S3-compatible server (Garage on 127.0.0.1):
//! same results as local runs, clear refusals, and crash-safe resumes.

use std::collections::HashSet;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::garage::{Garage, Keys, upload_dir};
use crate::common::require;
use crate::common::{copy_subset, describe};
use arrow_array::Array;
use fruits_store::{Dataset, Location, MANIFEST_FILE, PartKind};

const CLASSES: [&str; 3] = ["Apple 6", "Banana 1", "Kiwi 1"];

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", describe(out));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fatal error (exit 1) whose message contains `says`.
fn fails_with(out: &Output, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", describe(out));
    assert!(stderr(out).contains(says), "{}", stderr(out));
}

/// A server with an input bucket holding a few classes under `fruits-360/`, an
/// output bucket, and a key that may read and write both.
fn setup(per_class: usize) -> (Garage, Keys, tempfile::TempDir) {
    let garage = Garage::start("eu-west-3");
    garage.bucket("photos");
    garage.bucket("results");
    let admin = garage.key("admin", 1);
    garage.allow("photos", &admin, true, true);
    garage.allow("results", &admin, true, true);
    let tmp = tempfile::tempdir().expect("tmp");
    copy_subset(&tmp.path().join("in"), &CLASSES, per_class);
    let n = upload_dir(
        &tmp.path().join("in"),
        &garage.open("s3://photos/fruits-360/", &admin),
    );
    assert_eq!(n, CLASSES.len() * per_class * 2);
    (garage, admin, tmp)
}

fn csv(garage: &Garage, keys: &Keys, dataset: &str, file: &std::path::Path) -> String {
    let out = garage
        .fruits(keys)
        .args([
            "export",
            "csv",
            dataset,
            "--out",
            &file.display().to_string(),
        ])
        .output()
        .expect("spawn");
    ok(&out);
    std::fs::read_to_string(file).expect("csv")
}

/// Parses CSV rows into (first column, numbers of the vector columns).
fn numbers(text: &str, skip: usize) -> Vec<(String, Vec<f64>)> {
    text.lines()
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let values = cells[skip..]
                .iter()
                .map(|c| c.parse().expect("number"))
                .collect();
            (cells[0].to_string(), values)
        })
        .collect()
}

#[test]
fn s3_to_s3_matches_local_and_mixed_runs_too() {
    require!(Shared, Garage);
    let (garage, admin, tmp) = setup(6);
    let local_in = tmp.path().join("in").display().to_string();
    let local_out = tmp.path().join("local").display().to_string();

    let out = garage.run(
        &admin,
        &[
            "run",
            "s3://photos/fruits-360/",
            "--out",
            "s3://results/run-1/",
            "--part-rows",
            "16",
            "--quiet",
        ],
    );
    ok(&out);
    ok(&garage.run(
        &admin,
        &[
            "run",
            &local_in,
            "--out",
            &local_out,
            "--part-rows",
            "16",
            "--quiet",
        ],
    ));

    // Same features, byte for byte, whether the photos came from S3 or disk.
    let s3_features = csv(
        &garage,
        &admin,
        "s3://results/run-1/features",
        &tmp.path().join("a.csv"),
    );
    let local_features = csv(
        &garage,
        &admin,
        &format!("{local_out}/features"),
        &tmp.path().join("b.csv"),
    );
    assert_eq!(s3_features.lines().count(), 1 + 36);
    assert_eq!(s3_features, local_features);

    // The same PCA, fitted from S3.
    let s3_reduced = numbers(
        &csv(
            &garage,
            &admin,
            "s3://results/run-1/reduced",
            &tmp.path().join("c.csv"),
        ),
        3,
    );
    let local_reduced = numbers(
        &csv(
            &garage,
            &admin,
            &format!("{local_out}/reduced"),
            &tmp.path().join("d.csv"),
        ),
        3,
    );
    assert_eq!(s3_reduced.len(), local_reduced.len());
    for ((pa, a), (pb, b)) in s3_reduced.iter().zip(&local_reduced) {
        assert_eq!(pa, pb);
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{pa}: {x} vs {y}");
        }
    }
    let results = garage.open("s3://results/run-1/", &admin);
    let names: Vec<String> = results.child("pca").list_names().expect("list");
    for expected in [
        "components.parquet",
        "explained_variance.png",
        "pca.json",
        "projection.png",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let features = results.child("features");
    let parts = features.list_names().expect("list");
    assert!(
        parts.iter().filter(|n| n.starts_with("part-")).count() >= 3,
        "36 rows in parts of 16: {parts:?}"
    );
    assert!(
        !parts.iter().any(|n| n.contains("write-check")),
        "{parts:?}"
    );

    // Mixed: local photos -> S3 features -> local PCA; S3 photos -> local features.
    ok(&garage.run(
        &admin,
        &[
            "featurize",
            &local_in,
            "--out",
            "s3://results/mixed/",
            "--quiet",
        ],
    ));
    let mixed = csv(
        &garage,
        &admin,
        "s3://results/mixed",
        &tmp.path().join("e.csv"),
    );
    assert_eq!(mixed, local_features);
    let pca_dir = tmp.path().join("mixed-pca").display().to_string();
    ok(&garage.run(
        &admin,
        &[
            "pca",
            "fit",
            "s3://results/mixed",
            "--out",
            &pca_dir,
            "--k",
            "5",
        ],
    ));
    ok(&garage.run(
        &admin,
        &[
            "pca",
            "transform",
            "s3://results/mixed",
            "--model",
            &pca_dir,
            "--out",
            "s3://results/mixed-reduced/",
        ],
    ));
    let reduced = Dataset::open(&garage.open("s3://results/mixed-reduced", &admin)).expect("open");
    assert_eq!(reduced.manifest().rows, 36);
    assert_eq!(reduced.manifest().meta.spec.feature_dim, 5);
    let back = tmp.path().join("back").display().to_string();
    ok(&garage.run(
        &admin,
        &[
            "featurize",
            "s3://photos/fruits-360",
            "--out",
            &back,
            "--quiet",
        ],
    ));
    let back_csv = csv(&garage, &admin, &back, &tmp.path().join("f.csv"));
    assert_eq!(back_csv, local_features);
    // The ONNX model itself can come from S3 too.
    let model_file = fruits_model::paths::models_dir().join(fruits_model::paths::INT8_MODEL);
    let model_bytes = std::fs::read(&model_file).expect("model");
    garage
        .open("s3://photos/models/", &admin)
        .put("mobilenetv2.onnx", model_bytes.into())
        .expect("upload model");
    let s3_model = tmp.path().join("s3-model").display().to_string();
    ok(&garage
        .fruits(&admin)
        .args([
            "featurize",
            &local_in,
            "--out",
            &s3_model,
            "--model",
            "s3://photos/models/mobilenetv2.onnx",
            "--quiet",
        ])
        .output()
        .expect("spawn"));
    assert_eq!(
        csv(&garage, &admin, &s3_model, &tmp.path().join("g.csv")),
        local_features
    );
    // CSV export straight to S3.
    ok(&garage
        .fruits(&admin)
        .args([
            "export",
            "csv",
            &back,
            "--out",
            "s3://results/exports/features.csv",
        ])
        .output()
        .expect("spawn"));
    let exported = garage
        .open("s3://results/exports/", &admin)
        .get("features.csv")
        .expect("exported csv");
    assert_eq!(String::from_utf8_lossy(&exported), local_features);
}

#[test]
fn large_parts_go_up_in_multipart_uploads() {
    require!(Shared, Garage);
    let garage = Garage::start("eu-west-3");
    garage.bucket("big");
    let admin = garage.key("admin", 1);
    garage.allow("big", &admin, true, true);
    let mut options = garage.options(&admin);
    options.multipart_threshold = 5 * 1024 * 1024;
    let loc = Location::parse("s3://big/parts/", &options).expect("open");
    let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    loc.put("part.bin", data.clone().into())
        .expect("multipart put");
    assert_eq!(loc.get("part.bin").expect("get").as_ref(), data.as_slice());
    let listed = loc.list_files().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, data.len() as u64);
}

#[test]
fn read_only_key_is_refused_before_any_work() {
    require!(Shared, Garage);
    let (garage, admin, _tmp) = setup(2);
    let reader = garage.key("reader", 2);
    garage.allow("photos", &reader, true, false);
    garage.allow("results", &reader, true, false);
    let started = Instant::now();
    let out = garage.run(
        &reader,
        &[
            "featurize",
            "s3://photos/fruits-360/",
            "--out",
            "s3://results/ro/",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("results"), "names the bucket: {err}");
    assert!(err.contains("s3:PutObject"), "names the permission: {err}");
    assert!(err.contains("nothing was processed"), "{err}");
    assert!(
        garage
            .open("s3://results/", &admin)
            .list_files()
            .expect("list")
            .is_empty(),
        "nothing written"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn bad_credentials_missing_bucket_and_foreign_region_are_clear() {
    require!(Shared, Garage);
    let (garage, admin, tmp) = setup(2);
    let results = garage.open("s3://results/", &admin);

    let wrong = Keys {
        id: admin.id.clone(),
        secret: "f".repeat(64),
    };
    let out = garage.run(
        &wrong,
        &[
            "-vv",
            "featurize",
            "s3://photos/fruits-360/",
            "--out",
            "s3://results/x/",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("secret access key does not match"), "{err}");
    assert!(
        !err.contains(&wrong.secret),
        "the secret must never be printed"
    );

    let unknown = Keys {
        id: "GK00000000000000000000dead".into(),
        secret: admin.secret.clone(),
    };
    let out = garage.run(
        &unknown,
        &[
            "featurize",
            "s3://photos/fruits-360/",
            "--out",
            "s3://results/x/",
        ],
    );
    fails_with(&out, "access key id is unknown");
    assert!(!stderr(&out).contains(&admin.secret));

    let out = garage.run(
        &admin,
        &[
            "featurize",
            "s3://no-such-bucket/x/",
            "--out",
            "s3://results/x/",
        ],
    );
    fails_with(&out, "bucket no-such-bucket does not exist");
    assert!(
        results.list_files().expect("list").is_empty(),
        "nothing written"
    );

    // A second server whose buckets live in us-east-1: refused unless allowed.
    let us = Garage::start("us-east-1");
    us.bucket("us-results");
    let us_admin = us.key("admin", 1);
    us.allow("us-results", &us_admin, true, true);
    let local_in = tmp.path().join("in").display().to_string();
    let out = us.run(
        &us_admin,
        &["featurize", &local_in, "--out", "s3://us-results/x/"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("us-results is in region us-east-1")
            && err.contains("outside the allowed region(s) eu-west-3"),
        "{err}"
    );
    assert!(err.contains("--allow-region us-east-1"), "{err}");
    let us_results = us.open("s3://us-results/", &us_admin);
    assert!(us_results.list_files().expect("list").is_empty());
    let out = us.run(
        &us_admin,
        &[
            "featurize",
            &local_in,
            "--out",
            "s3://us-results/x/",
            "--allow-region",
            "us-east-1",
            "--quiet",
        ],
    );
    ok(&out);
    assert!(
        us_results
            .list_files()
            .expect("list")
            .iter()
            .any(|f| f.rel == format!("x/{MANIFEST_FILE}"))
    );
    // The environment allows it as the flag does (as in Python and the service).
    let out = us
        .fruits(&us_admin)
        .env("FRUITS_ALLOW_REGIONS", " ap-south-1, us-east-1 ")
        .args([
            "featurize",
            &local_in,
            "--out",
            "s3://us-results/y/",
            "--quiet",
        ])
        .output()
        .expect("spawn fruits");
    ok(&out);
}

#[test]
fn server_stopped_mid_run_fails_clearly_and_a_rerun_completes() {
    require!(Shared, Garage);
    let per_class = 25;
    let (mut garage, admin, _tmp) = setup(per_class);
    let total = CLASSES.len() * per_class * 2;
    let run = |garage: &Garage| {
        garage
            .fruits(&admin)
            .args([
                "featurize",
                "s3://photos/fruits-360/",
                "--out",
                "s3://results/crash/",
                "--part-rows",
                "8",
                "--batch-size",
                "8",
                "--intra-threads",
                "1",
                "--s3-retry-timeout",
                "3",
                "--quiet",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let mut child = run(&garage);
    let watch = garage.open("s3://results/crash/", &admin);
    let started = Instant::now();
    loop {
        let names = watch.list_names().unwrap_or_default();
        if names.iter().any(|n| n.starts_with("part-")) {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before its first part was seen"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no part appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    garage.stop();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = stderr(&out);
    assert!(err.contains("did not answer after retrying"), "{err}");

    garage.restart();
    let watch = garage.open("s3://results/crash/", &admin);
    assert!(
        watch.get_opt(MANIFEST_FILE).expect("get").is_none(),
        "a failed run must not look complete"
    );
    let kept = watch
        .list_names()
        .expect("list")
        .iter()
        .filter(|n| PartKind::parse(n).is_some())
        .count();
    assert!(kept >= 1, "the parts written before the crash are kept");

    let out = run(&garage).wait_with_output().expect("rerun");
    ok(&out);
    let ds = Dataset::open(&watch).expect("complete");
    assert_eq!(ds.manifest().rows as usize, total);
    let mut seen = HashSet::new();
    for batch in ds.feature_columns(&["path"], 1024) {
        let batch = batch.expect("batch");
        let paths = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .expect("strings");
        for i in 0..paths.len() {
            assert!(
                seen.insert(paths.value(i).to_string()),
                "duplicate {}",
                paths.value(i)
            );
        }
    }
    assert_eq!(seen.len(), total);
}

#[test]
fn an_s3_output_takes_one_writer_at_a_time() {
    require!(Shared, Garage);
    // Garage 2.5 ignores `If-None-Match`, so this checks the read-first
    // path; tests/cloud checks the conditional puts against moto.
    let (garage, admin, _tmp) = setup(1);
    let results = garage.open("s3://results/", &admin);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let lease = |expires: u64| {
        format!(r#"{{"host":"other-host","pid":4242,"since_unix":{now},"expires_unix":{expires}}}"#)
    };
    let featurize = |out: &str| {
        garage.run(
            &admin,
            &[
                "featurize",
                "s3://photos/fruits-360",
                "--out",
                out,
                "--quiet",
            ],
        )
    };

    // A live lease (another run is writing): refused, nothing written.
    let live = results.child("live");
    live.put(fruits_store::LEASE_FILE, lease(now + 600).into())
        .expect("lease");
    let o = featurize("s3://results/live/");
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = stderr(&o);
    assert!(
        err.contains("another run is writing to") && err.contains("process 4242 on other-host"),
        "{err}"
    );
    assert!(live.get_opt(MANIFEST_FILE).expect("get").is_none());

    // A lease its holder stopped renewing (it died): taken over, and removed
    // when the run ends.
    let stale = results.child("stale");
    stale
        .put(fruits_store::LEASE_FILE, lease(now - 1).into())
        .expect("lease");
    ok(&featurize("s3://results/stale/"));
    assert!(stale.get_opt(MANIFEST_FILE).expect("get").is_some());
    assert!(
        stale
            .get_opt(fruits_store::LEASE_FILE)
            .expect("get")
            .is_none()
    );
}

/// `fruits forget` on an S3 output: the rows of a photo leave its parts, the
/// manifest follows, the record is an object beside them.
#[test]
fn forget_erases_rows_from_an_s3_output() {
    require!(Shared, Garage);
    let (garage, admin, _tmp) = setup(2);
    ok(&garage.run(
        &admin,
        &[
            "featurize",
            "s3://photos/fruits-360",
            "--out",
            "s3://results/features",
            "--quiet",
        ],
    ));
    let results = garage.open("s3://results/features", &admin);
    let paths = |ds: &Dataset| crate::common::dataset_paths(ds, PartKind::Features);
    let before = paths(&Dataset::open(&results).expect("open"));
    let gone = before[0].clone();
    ok(&garage.run(&admin, &["forget", "s3://results/features", &gone]));
    let ds = Dataset::open(&results).expect("open");
    let after = paths(&ds);
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.contains(&gone));
    assert_eq!(ds.manifest().rows as usize, after.len());
    assert!(
        results
            .list_names()
            .expect("list")
            .iter()
            .any(|n| n.starts_with(fruits_store::FORGOTTEN_PREFIX))
    );
}
