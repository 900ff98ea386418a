//! End-to-end tests of `fruits featurize` on real sample images.

use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::require;
use crate::common::*;
use fruits_store::{Dataset, PartKind};

const CLASSES: [&str; 3] = ["Apple 6", "Banana 1", "Kiwi 1"];

#[test]
fn featurises_a_few_classes_deterministically() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &CLASSES, 12);
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    let out = featurize(
        &input,
        &a,
        &["--json", "--batch-size", "16", "--part-rows", "40"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
    assert_eq!(summary["inputs"], 72);
    assert_eq!(summary["featurised"], 72);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["complete"], true);

    let rows = read_rows(&a);
    assert_eq!(rows.len(), 72);
    for class in CLASSES {
        for split in ["Training", "Test"] {
            let n = rows
                .iter()
                .filter(|(p, r)| {
                    r.label == class && r.split.as_deref() == Some(split) && p.starts_with(split)
                })
                .count();
            assert_eq!(n, 12, "{split}/{class}");
        }
    }
    for (path, row) in &rows {
        assert_eq!((row.width, row.height), (100, 100), "{path}");
        assert_eq!(row.features.len(), 1280);
        assert!(row.features.iter().all(|v| v.is_finite()), "NaN in {path}");
        assert!(
            row.features.iter().any(|v| *v > 0.0),
            "all-zero features in {path}"
        );
        let bytes = std::fs::read(input.join(path)).expect("read input");
        assert_eq!(
            row.sha256,
            fruits_model::sha256_hex(&bytes)
                .as_bytes()
                .chunks(2)
                .map(|h| u8::from_str_radix(std::str::from_utf8(h).expect("hex"), 16).expect("hex"))
                .collect::<Vec<_>>(),
            "{path}"
        );
    }

    // Parts follow --part-rows, and the metadata says which model made them.
    let ds = Dataset::open(&fruits_store::Location::local_path(&a)).expect("dataset");
    assert_eq!(ds.manifest().parts.len(), 2);
    assert_eq!(
        ds.manifest().meta.spec.model_sha256,
        "3faa2bbd550cb191dd54e62eccb905bed80eca1c11c7309980edd2f388dab86f",
        "the int8 model, the default"
    );
    let schema = ds
        .batches(PartKind::Features, 10)
        .next()
        .expect("a batch")
        .expect("ok")
        .schema();
    insta::assert_snapshot!("features_schema", format!("{schema:#?}"));

    // A second, independent run gives bit-identical features, also when
    // three sessions finish batches out of order: rows are written in input
    // (path) order all the same.
    let out = featurize(
        &input,
        &b,
        &[
            "--batch-size",
            "4",
            "--part-rows",
            "40",
            "--sessions",
            "3",
            "--intra-threads",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(read_rows(&b), rows);
    let in_order = part_paths(&b, PartKind::Features);
    assert_eq!(in_order.len(), 72);
    assert!(in_order.is_sorted(), "rows out of input order");
}

/// Writes the bad-input zoo of the issue into `dir/Test/Mixed`.
fn bad_inputs(dir: &Path) -> Vec<(&'static str, Option<&'static str>)> {
    use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
    let class = dir.join("Test").join("Mixed");
    std::fs::create_dir_all(&class).expect("mkdir");
    let encode = |img: DynamicImage, fmt: ImageFormat| {
        let mut c = Cursor::new(Vec::new());
        img.write_to(&mut c, fmt).expect("encode");
        c.into_inner()
    };
    let good_jpeg = std::fs::read(
        sample_dir().join("Test/Kiwi 1").join(
            std::fs::read_dir(sample_dir().join("Test/Kiwi 1"))
                .expect("dir")
                .next()
                .expect("one")
                .expect("ok")
                .file_name(),
        ),
    )
    .expect("kiwi");
    let mut bomb = encode(RgbImage::new(1, 1).into(), ImageFormat::Png);
    bomb[16..20].copy_from_slice(&60_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&60_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let grey = DynamicImage::ImageLuma8(image::GrayImage::from_pixel(80, 60, image::Luma([90])));
    let alpha = RgbaImage::from_pixel(64, 64, Rgba([200, 30, 30, 128]));
    let sixteen =
        image::ImageBuffer::<Rgb<u16>, _>::from_pixel(40, 40, Rgb([1000u16, 30000, 65535]));

    let files: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("empty.jpg", Vec::new(), Some("empty")),
        (
            "truncated.jpg",
            good_jpeg[..good_jpeg.len() / 2].to_vec(),
            Some("truncated"),
        ),
        (
            "text.jpg",
            b"this is not a picture\n".to_vec(),
            Some("unsupported_format"),
        ),
        ("bomb.png", bomb, Some("too_large")),
        ("good.jpg", good_jpeg.clone(), None),
        ("alpha.png", encode(alpha.into(), ImageFormat::Png), None),
        ("grey.jpg", encode(grey, ImageFormat::Jpeg), None),
        (
            "sixteen.png",
            encode(DynamicImage::ImageRgb16(sixteen), ImageFormat::Png),
            None,
        ),
        ("UPPER.JPEG", good_jpeg, None),
    ];
    let mut expected = Vec::new();
    for (name, bytes, kind) in files {
        std::fs::write(class.join(name), bytes).expect("write");
        expected.push((name, kind));
    }
    // Not images by name: ignored, not errors.
    std::fs::write(class.join("notes.txt"), b"hello").expect("write");
    std::fs::write(class.join(".hidden.jpg"), b"junk").expect("write");
    expected
}

#[test]
fn bad_inputs_go_to_the_errors_table() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    let expected = bad_inputs(&input);
    let out_dir = tmp.path().join("out");
    let out = featurize(&input, &out_dir, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "some inputs failed: {}",
        describe(&out)
    );
    let rows = read_rows(&out_dir);
    let errors = read_errors(&out_dir);
    assert_eq!(
        rows.len() + errors.len(),
        expected.len(),
        "every input exactly once"
    );
    for (name, kind) in expected {
        let path = format!("Test/Mixed/{name}");
        match kind {
            None => {
                let row = rows
                    .get(&path)
                    .unwrap_or_else(|| panic!("{path} missing: {errors:?}"));
                assert!(row.features.iter().all(|v| v.is_finite()));
            }
            Some(kind) => {
                let (got, message) = errors
                    .get(&path)
                    .unwrap_or_else(|| panic!("{path} not in errors"));
                assert_eq!(got, kind, "{path}: {message}");
                assert!(
                    message.len() > 10,
                    "{path}: message {message:?} should explain"
                );
            }
        }
    }
    assert_eq!(rows["Test/Mixed/grey.jpg"].width, 80);
    assert!(errors["Test/Mixed/bomb.png"].1.contains("60000x60000"));

    // The errors table exports too.
    let csv = run(&["export", "csv", out_dir.to_str().expect("utf8"), "--errors"]);
    assert!(csv.status.success(), "{}", describe(&csv));
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.starts_with("path,kind,message\n"), "{text}");
    assert_eq!(text.lines().count(), 5);
}

#[test]
fn resumes_after_a_stop_and_after_a_kill() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &CLASSES, 25);
    let small = [
        "--batch-size",
        "8",
        "--part-rows",
        "16",
        "--decode-threads",
        "1",
    ];

    let clean = tmp.path().join("clean");
    let out = featurize(&input, &clean, &small);
    assert!(out.status.success(), "{}", describe(&out));
    let expected = read_rows(&clean);
    assert_eq!(expected.len(), 150);

    // Stopped after 5 batches: saved work, no manifest, exit 130.
    let stopped = tmp.path().join("stopped");
    let out = featurize_stopped(&input, &stopped, &small, 5);
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(!stopped.join("_manifest.json").exists());
    assert!(
        Dataset::open(&fruits_store::Location::local_path(&stopped)).is_err(),
        "an interrupted output must not look complete"
    );
    let out = featurize(&input, &stopped, &[&small[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        summary["skipped"], 40,
        "the 5 batches done before the stop were kept"
    );
    assert_eq!(summary["featurised"], 150 - 40);
    assert_rows_match(&read_rows(&stopped), &expected);

    // Killed (SIGKILL) once a part is on disk: same final output, no duplicates.
    let killed = tmp.path().join("killed");
    let mut child = fruits()
        .args([
            "featurize",
            input.to_str().expect("utf8"),
            "--out",
            killed.to_str().expect("utf8"),
            "--quiet",
        ])
        .args(small)
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    let has_part = || {
        std::fs::read_dir(&killed)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("part-"))
            })
            .unwrap_or(false)
    };
    while !has_part() && Instant::now() < deadline {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(has_part(), "a part was written before the kill");
    assert!(
        !killed.join("_manifest.json").exists(),
        "the kill came before the run finished"
    );
    let out = featurize(&input, &killed, &small);
    assert!(out.status.success(), "{}", describe(&out));
    assert_rows_match(&read_rows(&killed), &expected);

    // Images added later are featurised on the next run, and only those.
    copy_subset(&input, &["Lemon 1"], 5);
    let out = featurize(&input, &killed, &[&small[..], &["--json"]].concat());
    assert!(out.status.success(), "{}", describe(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (summary["skipped"].as_u64(), summary["featurised"].as_u64()),
        (Some(150), Some(10))
    );
    assert_eq!(read_rows(&killed).len(), 160);
}

/// Same paths and metadata; features equal up to float reassociation across batch shapes.
fn assert_rows_match(
    got: &std::collections::BTreeMap<String, Row>,
    want: &std::collections::BTreeMap<String, Row>,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, w) in want {
        let g = &got[path];
        assert_eq!(
            (&g.label, &g.split, &g.sha256),
            (&w.label, &w.split, &w.sha256),
            "{path}"
        );
        let worst = g
            .features
            .iter()
            .zip(&w.features)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{path}: features differ by {worst}");
    }
}

#[test]
fn fatal_errors_say_what_to_do() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1"], 1);
    let out_dir = tmp.path().join("out");

    let out = featurize(&input, &out_dir, &["--model", "/nowhere/model.onnx"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nowhere/model.onnx") && err.contains("--model"),
        "{err}"
    );

    let out = featurize(&tmp.path().join("missing"), &out_dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let out = featurize(&input, Path::new("/proc/fruits-out"), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/fruits-out"));

    // An output made with the fp32 model refuses int8 features (the default) mixed into it.
    let out = featurize(&input, &out_dir, &["--precision", "fp32"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = featurize(&input, &out_dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already holds features of model") && err.contains("another --out folder"),
        "{err}"
    );
}

#[test]
fn csv_export_has_the_same_rows() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1"], 3);
    let out_dir = tmp.path().join("out");
    assert!(featurize(&input, &out_dir, &[]).status.success());
    let csv_path = tmp.path().join("features.csv");
    let out = run(&[
        "export",
        "csv",
        out_dir.to_str().expect("utf8"),
        "--out",
        csv_path.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = std::fs::read_to_string(&csv_path).expect("csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    assert_eq!(
        &header[..7],
        ["path", "label", "split", "sha256", "width", "height", "f0"]
    );
    assert_eq!(
        header.len(),
        6 + 1280 + 128,
        "features, then the colour descriptor"
    );
    assert_eq!(header[6 + 1280], "colour0");
    let rows = read_rows(&out_dir);
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), rows.len());
    for line in body {
        let cells: Vec<&str> = line.split(',').collect();
        let row = &rows[cells[0]];
        let parsed: Vec<f32> = cells[6..6 + 1280]
            .iter()
            .map(|c| c.parse().expect("float"))
            .collect();
        assert_eq!(parsed, row.features, "CSV floats round-trip exactly");
    }
}

#[test]
fn help_explains_every_flag() {
    require!(Shared);
    // Fixed width and no environment overrides, so the text is the same everywhere.
    let out = fruits()
        .args(["featurize", "--help"])
        .env("COLUMNS", "100")
        .env_remove("FRUITS_MODELS_DIR")
        .env_remove("FRUITS_ORT_LIB")
        .output()
        .expect("spawn");
    assert!(out.status.success());
    insta::assert_snapshot!("featurize_help", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn augment_featurises_the_copies_fruits_augment_writes_and_resumes() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &CLASSES, 3);
    let copies = tmp.path().join("copies");
    let o = run(&[
        "augment",
        input.to_str().expect("utf-8"),
        "--out",
        copies.to_str().expect("utf-8"),
        "--seed",
        "5",
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let from_files = tmp.path().join("from-files");
    let o = featurize(&copies, &from_files, &[]);
    assert!(o.status.success(), "{}", describe(&o));

    let in_memory = tmp.path().join("in-memory");
    let flags = ["--augment", "2", "--augment-seed", "5", "--json"];
    let o = featurize(&input, &in_memory, &flags);
    assert!(o.status.success(), "{}", describe(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json summary");
    // 9 photos per split; two copies of each Training photo only.
    assert_eq!(summary["inputs"], 18 + 2 * 9);
    assert_eq!(summary["featurised"], 18 + 2 * 9);

    let rows = read_rows(&in_memory);
    let (made, originals): (Vec<_>, Vec<_>) = rows.iter().partition(|(p, _)| p.contains("-aug"));
    assert_eq!((made.len(), originals.len()), (18, 18));
    assert!(
        made.iter()
            .all(|(_, r)| r.split.as_deref() == Some("Training"))
    );
    // The copies are the very files `fruits augment` writes: same bytes, same features.
    let want = read_rows(&from_files);
    let made: std::collections::BTreeMap<String, Row> = made
        .into_iter()
        .map(|(p, r)| (p.clone(), r.clone()))
        .collect();
    let want = want
        .into_iter()
        .filter(|(p, _)| made.contains_key(p))
        .collect();
    assert_rows_match(&made, &want);

    // Resuming finds every copy done, as any photo.
    let o = featurize(&input, &in_memory, &flags);
    assert!(o.status.success(), "{}", describe(&o));
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json summary");
    assert_eq!(
        (again["featurised"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(36))
    );

    // The classifier records how many of its training rows were copies (0 makes
    // `fruits serve` say it has only seen studio photos).
    let classifier = tmp.path().join("classifier");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            in_memory.to_str().expect("utf-8"),
            "--split",
            "Training",
            "--out",
            classifier.to_str().expect("utf-8"),
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", describe(&o));
        let training: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        assert_eq!(training["augmented_rows"], 18);
        let bundle = std::fs::read(classifier.join("classifier.json")).expect("classifier.json");
        serde_json::from_slice::<serde_json::Value>(&bundle).expect("json")
    };

    // Trained with copies, the bundle carries a studio head and its gate; the
    // evaluation says how many rows went to it (the studio Test photos are
    // originals, so the gate should see them as taken in the studio).
    let bundle = train(&[]);
    assert_eq!(
        bundle["studio"]["gate"]["classes"],
        serde_json::json!(["studio", "wild"])
    );
    let studio_rows = |on: &Path| {
        let o = run(&[
            "evaluate",
            classifier.to_str().expect("utf-8"),
            "--on",
            on.to_str().expect("utf-8"),
            "--split",
            "Test",
            "--json",
        ]);
        assert!(o.status.success(), "{}", describe(&o));
        let eval: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        eval["studio_rows"].as_u64().expect("studio_rows")
    };
    // 9 studio Test photos (all 9 went there when written); 18 copies of them.
    assert!(studio_rows(&in_memory) >= 8);
    assert_eq!(studio_rows(&from_files), 0);
    // `--no-studio-head` trains the one head, as before.
    let bundle = train(&["--no-studio-head"]);
    assert!(bundle.get("studio").is_none(), "{bundle}");
}
