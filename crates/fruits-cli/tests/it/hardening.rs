//! The defects hostile tests found in `fruits featurize`, `identify`,
//! `augment`, `train` and `evaluate`, each reproduced: concurrent writers, bad
//! entries in the tree, leftovers of killed runs, truncated JPEGs, huge files,
//! retries, flags out of range, impossible revenue values, absurdly thin
//! images, FIFOs given as paths, colliding copy names, resumes with other
//! settings, outputs inside inputs, damaged vectors, Ctrl-C while ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::require;
use crate::common::*;

/// path -> kind of an output's errors table.
fn error_kinds(out: &Path) -> BTreeMap<String, String> {
    read_errors(out)
        .into_iter()
        .map(|(path, (kind, _))| (path, kind))
        .collect()
}

/// The output's rows, or None when it has no manifest.
fn read_rows_or_none(out: &Path) -> Option<usize> {
    fruits_store::Dataset::open(&fruits_store::Location::local_path(out))
        .ok()
        .map(|ds| ds.manifest().rows as usize)
}

/// Every path of the manifest's parts, with how often it appears.
fn manifest_paths(out: &Path) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for kind in [
        fruits_store::PartKind::Features,
        fruits_store::PartKind::Errors,
    ] {
        for path in part_paths(out, kind) {
            *seen.entry(path).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn a_second_writer_is_refused_and_duplicates_are_repaired() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Apple 6", "Banana 1", "Kiwi 1"], 30);
    let out = tmp.path().join("out");
    let slow = ["--part-rows", "20", "--batch-size", "4"];

    // Another writer holds the output (this test, holding the lock the way
    // a run does): the run is refused, naming the holder, and writes nothing.
    std::fs::create_dir_all(&out).expect("mkdir");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(out.join(".fruits-lock"))
        .expect("lock file");
    lock.try_lock().expect("the lock is free");
    std::fs::write(
        out.join(".fruits-lock"),
        format!(
            r#"{{"host": "test-host", "pid": {}, "since_unix": 0}}"#,
            std::process::id()
        ),
    )
    .expect("holder");
    let refused = featurize(&input, &out, &slow);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("another run is writing to"), "{err}");
    assert!(err.contains("test-host"), "the holder is named: {err}");
    assert!(read_rows_or_none(&out).is_none(), "nothing written");
    drop(lock);
    let first = featurize(&input, &out, &slow);
    assert!(first.status.success(), "{}", describe(&first));

    // An output written twice before outputs were locked: a part's rows
    // copied under a later run's name. The next run repairs it.
    let part = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("part-r000-"))
        .expect("a part");
    std::fs::copy(out.join(&part), out.join("part-r007-00000.parquet")).expect("copy");
    let again = featurize(&input, &out, &[]);
    assert!(again.status.success(), "{}", describe(&again));
    let paths = manifest_paths(&out);
    assert_eq!(paths.len(), 180, "every photo once");
    assert!(paths.values().all(|&n| n == 1), "no path twice: {paths:?}");
    let csv = run(&["export", "csv", out.to_str().expect("utf8")]);
    assert_eq!(String::from_utf8_lossy(&csv.stdout).lines().count(), 181);
}

#[cfg(unix)]
#[test]
fn bad_entries_in_the_tree_are_rows_of_the_errors_table() {
    require!(Shared);
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1"], 3);
    let kiwi = input.join("Test/Kiwi 1");
    std::os::unix::fs::symlink(tmp.path().join("gone.jpg"), kiwi.join("dangling.jpg"))
        .expect("link");
    std::os::unix::fs::symlink(&input, kiwi.join("loop")).expect("loop");
    std::os::unix::fs::symlink("/dev/zero", kiwi.join("zero.jpg")).expect("zero");
    let made = std::process::Command::new("mkfifo")
        .arg(kiwi.join("fifo.jpg"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let bad_name = std::ffi::OsStr::from_bytes(b"bad-\xff.jpg");
    std::fs::copy(test_photo("Kiwi 1"), kiwi.join(bad_name)).expect("copy");
    let out = tmp.path().join("out");
    let started = Instant::now();
    let o = featurize(&input, &out, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "no hang on the FIFO"
    );
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert_eq!(
        read_rows(&out).len(),
        6,
        "the rest of the tree is featurised"
    );
    let kinds = error_kinds(&out);
    assert_eq!(
        kinds,
        BTreeMap::from([
            (
                "Test/Kiwi 1/bad-\u{fffd}.jpg".to_string(),
                "non_utf8_name".to_string()
            ),
            (
                "Test/Kiwi 1/dangling.jpg".to_string(),
                "broken_link".to_string()
            ),
            ("Test/Kiwi 1/fifo.jpg".to_string(), "not_a_file".to_string()),
            ("Test/Kiwi 1/loop".to_string(), "link_loop".to_string()),
            ("Test/Kiwi 1/zero.jpg".to_string(), "not_a_file".to_string()),
        ])
    );
    // Accounted for: a rerun has nothing to do.
    let again = run(&[
        "featurize",
        input.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--json",
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(summary["skipped"], 11, "{summary}");
}

#[test]
fn leftovers_of_a_killed_run_are_hidden_and_swept() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Banana 1"], 4);
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    // What a run killed mid-write left: this version's hidden temporary
    // file, and an older version's visible one.
    std::fs::write(
        out.join(".part-r000-00001.parquet.fruits-tmp-99-0"),
        b"half",
    )
    .expect("tmp");
    std::fs::write(out.join("part-r000-00009.parquet#1"), b"half").expect("old tmp");
    let o = featurize(&input, &out, &[]);
    assert!(o.status.success(), "{}", describe(&o));
    let names: Vec<String> = std::fs::read_dir(&out)
        .expect("out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("fruits-tmp") && !n.contains('#')),
        "swept: {names:?}"
    );
    // Whatever a reader lists that is not hidden is a part or the manifest.
    assert!(
        names
            .iter()
            .filter(|n| !n.starts_with('.') && !n.starts_with('_'))
            .all(|n| n.ends_with(".parquet")),
        "{names:?}"
    );
}

#[test]
fn truncated_jpegs_huge_files_and_retries() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1"], 2);
    let dir = input.join("Test/Kiwi 1");
    // Half of a real photo, with an end-of-image marker appended.
    let photo = std::fs::read(test_photo("Kiwi 1")).expect("photo");
    let mut half = photo[..photo.len() / 2].to_vec();
    half.extend_from_slice(&[0xFF, 0xD9]);
    std::fs::write(dir.join("half.jpg"), &half).expect("half");
    // A file over the size limit: refused from the listing, never read.
    std::fs::write(dir.join("huge.jpg"), vec![0u8; 2 << 20]).expect("huge");
    let out = tmp.path().join("out");
    let o = featurize(&input, &out, &["--max-file-mib", "1"]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let kinds = error_kinds(&out);
    assert_eq!(
        kinds.get("Test/Kiwi 1/half.jpg").map(String::as_str),
        Some("truncated")
    );
    assert_eq!(
        kinds.get("Test/Kiwi 1/huge.jpg").map(String::as_str),
        Some("file_too_large")
    );

    // The half file is replaced by the whole photo: --retry-errors tries it
    // again, and its old errors row gives way to its features row.
    std::fs::write(dir.join("half.jpg"), &photo).expect("whole");
    let o = featurize(&input, &out, &["--max-file-mib", "1", "--retry-errors"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "huge.jpg still fails: {}",
        describe(&o)
    );
    let kinds = error_kinds(&out);
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert!(read_rows(&out).contains_key("Test/Kiwi 1/half.jpg"));
    let paths = manifest_paths(&out);
    assert!(paths.values().all(|&n| n == 1), "{paths:?}");
}

#[test]
fn numeric_flags_out_of_range_are_usage_errors() {
    require!(Shared);
    for (flag, value) in [
        ("--batch-size", "4000000000"),
        ("--batch-size", "0"),
        ("--decode-threads", "100000"),
        ("--intra-threads", "0"),
        ("--part-rows", "0"),
        ("--max-megapixels", "nan"),
        ("--max-megapixels", "-1"),
        ("--max-file-mib", "0"),
    ] {
        // `=` so a leading minus is read as the value, not as a flag.
        let arg = format!("{flag}={value}");
        let o = run(&["featurize", "in", "--out", "out", &arg]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
    let o = run(&["serve", "--model", "x", "--max-in-flight", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let o = run(&["serve", "--model", "x", "--timeout", "inf"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
}

/// A PNG of `width` x `height` black pixels: a 100000x1 strip is a few hundred bytes.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::from(image::RgbImage::new(width, height))
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

#[test]
fn absurdly_thin_images_are_refused_from_their_header() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1"], 1);
    let dir = input.join("Test/Kiwi 1");
    // Resizing the short side of these up to 256 first asked for 4.2 GB
    // and 19.66 GB, and the run aborted.
    let strip = png(100_000, 1);
    assert!(strip.len() < 2000, "{} bytes", strip.len());
    std::fs::write(dir.join("strip.png"), &strip).expect("strip");
    std::fs::write(dir.join("tall.png"), png(1, 20_000)).expect("tall");
    let out = tmp.path().join("out");
    let (o, peak_kib) = run_measured(&[
        "featurize",
        input.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    assert!(peak_kib < 1024 * 1024, "peak {peak_kib} KiB");
    let kinds = error_kinds(&out);
    assert_eq!(
        kinds.get("Test/Kiwi 1/strip.png").map(String::as_str),
        Some("aspect_ratio")
    );
    assert_eq!(
        kinds.get("Test/Kiwi 1/tall.png").map(String::as_str),
        Some("aspect_ratio")
    );
    assert_eq!(
        read_rows(&out).len(),
        2,
        "the photos beside them are featurised"
    );
}

#[cfg(unix)]
#[test]
fn identify_answers_the_photos_it_can_and_names_the_others() {
    require!(Shared);
    let t = trained();
    let tmp = tempfile::tempdir().expect("tmp");
    let fifo = tmp.path().join("fifo.jpg");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let strip = tmp.path().join("strip.png");
    std::fs::write(&strip, png(100_000, 1)).expect("strip");
    let kiwi = test_photo("Kiwi 1");
    let missing = tmp.path().join("missing.jpg");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let started = Instant::now();
    let o = run(&[
        "identify",
        &s(&kiwi),
        &s(&fifo),
        &s(&missing),
        &s(tmp.path()),
        &s(&strip),
        &s(&kiwi),
        "--model",
        &s(&t.classifier),
        "--json",
    ]);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "no hang on the FIFO"
    );
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("json");
    let kinds: Vec<&str> = answers
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or("answered"))
        .collect();
    assert_eq!(
        kinds,
        [
            "answered",
            "not_a_file",
            "not_found",
            "not_a_file",
            "aspect_ratio",
            "answered"
        ],
        "{answers:?}"
    );
    assert_eq!(answers[5]["top"][0]["class"], "Kiwi 1");

    // A FIFO as the revenue file is refused at once, not waited on.
    let started = Instant::now();
    let o = run(&[
        "evaluate",
        &s(&t.classifier),
        "--on",
        &s(&t.run.join("features")),
        "--revenue",
        &s(&fifo),
        "--out",
        &s(&tmp.path().join("eval")),
    ]);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a regular file"),
        "{}",
        describe(&o)
    );
}

#[cfg(unix)]
#[test]
fn identify_memory_stays_flat_in_the_number_of_photos() {
    require!(Shared);
    let t = trained();
    let kiwi = test_photo("Kiwi 1").to_str().expect("utf8").to_string();
    let classifier = t.classifier.to_str().expect("utf8").to_string();
    let peak = |n: usize| {
        let mut args = vec!["identify", "--model", classifier.as_str(), "--top", "1"];
        args.extend(std::iter::repeat_n(kiwi.as_str(), n));
        let (o, kib) = run_measured(&args);
        assert!(o.status.success(), "{}", describe(&o));
        let heading = format!("{kiwi}:");
        let answered = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| *l == heading)
            .count();
        assert_eq!(answered, n, "every photo answered");
        kib
    };
    let (few, many) = (peak(16), peak(400));
    // Holding every photo's tensor at once, 400 photos took ~1.7 GB more.
    assert!(
        many < few + 64 * 1024,
        "16 photos peak {few} KiB, 400 photos {many} KiB"
    );
}

#[test]
fn augmented_copies_of_photos_that_share_a_name_do_not_collide() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    let dir = input.join("Training/Kiwi 1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let photo = std::fs::read(test_photo("Kiwi 1")).expect("photo");
    let names = ["x.jpg", "x.png", "y.jpg", "y.JPG", "z.jpg", "z.jpeg"];
    for name in names {
        std::fs::write(dir.join(name), &photo).expect("photo");
    }
    let out = tmp.path().join("out");
    let o = featurize(&input, &out, &["--augment", "2"]);
    assert!(o.status.success(), "{}", describe(&o));
    let paths = manifest_paths(&out);
    assert_eq!(
        paths.len(),
        18,
        "6 photos and 12 distinct copies: {paths:?}"
    );
    assert!(
        paths.contains_key("Training/Kiwi 1/y.JPG-aug1.jpg"),
        "{paths:?}"
    );

    let copies = tmp.path().join("copies");
    let o = run(&[
        "augment",
        input.to_str().expect("utf8"),
        "--out",
        copies.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", describe(&o));
    let written = std::fs::read_dir(copies.join("Training/Kiwi 1"))
        .expect("copies")
        .count();
    assert_eq!(written, 12, "{}", describe(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("12 copies written"));
}

#[cfg(unix)]
#[test]
fn augment_reports_what_featurize_reports_and_refuses_its_own_input() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1"], 2);
    let dir = input.join("Training/Kiwi 1");
    std::os::unix::fs::symlink(tmp.path().join("gone.jpg"), dir.join("dangling.jpg"))
        .expect("link");
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo.jpg"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let o = run(&["augment", &s(&input), "--out", &s(&tmp.path().join("aug"))]);
    assert_eq!(o.status.code(), Some(3), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 photos failed"), "{err}");
    assert!(err.contains("dangling.jpg: broken_link"), "{err}");
    assert!(err.contains("fifo.jpg: not_a_file"), "{err}");

    // Into the input itself, or a folder inside it: refused before any work.
    for inside in [input.clone(), input.join("aug")] {
        let o = run(&["augment", &s(&input), "--out", &s(&inside)]);
        assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("inside the input"));
        let o = featurize(&input, &inside, &[]);
        assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("inside the input"));
    }
    assert!(!input.join("aug").exists());
}

#[test]
fn a_resume_with_other_copies_is_refused() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1", "Banana 1"], 4);
    let out = tmp.path().join("out");
    let seed7 = ["--augment", "1", "--augment-seed", "7", "--batch-size", "2"];
    let mut first = seed7.to_vec();
    first.extend(["--part-rows", "2"]);
    let o = featurize_stopped(&input, &out, &first, 2);
    assert_eq!(o.status.code(), Some(130), "{}", describe(&o));
    for other in [
        &["--augment", "1"][..],
        &[][..],
        &["--augment", "2", "--augment-seed", "7"][..],
    ] {
        let o = featurize(&input, &out, other);
        assert_eq!(o.status.code(), Some(1), "{other:?}: {}", describe(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("seed 7") && err.contains("--augment-seed"),
            "{err}"
        );
    }
    let o = featurize(&input, &out, &seed7);
    assert!(o.status.success(), "{}", describe(&o));
    assert_eq!(manifest_paths(&out).len(), 24, "16 photos and 8 copies");
}

#[test]
fn vectors_of_another_length_than_the_metadata_says_are_refused() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("features");
    synthetic_features(&data, 40, 2, 1000, 1280);
    let out = tmp.path().join("classifier");
    let o = run(&[
        "train",
        data.to_str().expect("utf8"),
        "--out",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("vectors of 1000 values") && err.contains("says 1280"),
        "{err}"
    );
    assert!(
        err.contains("part-r000-00000.parquet"),
        "the part is named: {err}"
    );
    assert!(!out.join("classifier.json").exists());
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_train_and_augment_even_when_started_with_it_ignored() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("features");
    synthetic_features(&data, 8000, 50, 512, 512);
    let bundle = tmp.path().join("classifier");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let mut train = spawn_with_sigint_ignored(&[
        "train",
        &s(&data),
        "--no-pca",
        "--max-iter",
        "1000000",
        "--out",
        &s(&bundle),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    interrupt(&train);
    let done = wait_within(&mut train, Duration::from_secs(30));
    assert_eq!(done.code(), Some(130), "train: {done:?}");
    assert!(!bundle.join("classifier.json").exists(), "nothing saved");

    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1", "Banana 1", "Apple 6"], 40);
    let copies = tmp.path().join("copies");
    let args = [
        "augment",
        &s(&input),
        "--out",
        &s(&copies),
        "--copies",
        "40",
    ];
    let mut augment = spawn_with_sigint_ignored(&args);
    std::thread::sleep(Duration::from_secs(1));
    interrupt(&augment);
    let done = wait_within(&mut augment, Duration::from_secs(60));
    assert_eq!(done.code(), Some(130), "augment: {done:?}");
    // The same command finishes the job, keeping what was written.
    let o = run(&args);
    assert!(o.status.success(), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("(0 already there)"), "{err}");
}

/// Waits for `child` for at most `limit` (killing it after).
#[cfg(unix)]
fn wait_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_jpeg_whose_scan_names_a_table_that_cannot_exist_is_an_error_row_not_a_crash() {
    require!(Shared);
    // A 1.9 KB JPEG whose scan header selects Huffman table 15 (of 0..=3)
    // made the completeness walker index past its tables: `identify` exited
    // 101 (a panic), and so did every path that decodes.
    let t = trained();
    let tmp = tempfile::tempdir().expect("tmp");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fruits-image/tests/data/baseline-420.jpg");
    let mut bytes = std::fs::read(fixture).expect("fixture");
    let sos = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .expect("SOS");
    bytes[sos + 6] = 0xF0;
    let photos = tmp.path().join("photos/Test/Kiwi 1");
    std::fs::create_dir_all(&photos).expect("mkdir");
    let bad = photos.join("bad-selector.jpg");
    std::fs::write(&bad, &bytes).expect("write");
    let s = |p: &Path| p.to_str().expect("utf8").to_string();
    let o = run(&["identify", &s(&bad), "--model", &s(&t.classifier), "--json"]);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", describe(&o));
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(answers.len(), 1, "{answers:?}");
    // featurize: the photo ends as a row or an error row, the run completes.
    let out = tmp.path().join("features");
    let o = run(&[
        "featurize",
        &s(&tmp.path().join("photos")),
        "--out",
        &s(&out),
        "--quiet",
    ]);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", describe(&o));
    assert_eq!(read_rows(&out).len() + read_errors(&out).len(), 1);
}
