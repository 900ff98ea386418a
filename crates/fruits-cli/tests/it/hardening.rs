//! The defects a hostile test found in `fruits featurize` and `evaluate`
//! (issue 15), each reproduced: concurrent writers, bad entries in the tree,
//! leftovers of killed runs, truncated JPEGs, huge files, retries, flags out
//! of range, impossible revenue values.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

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
