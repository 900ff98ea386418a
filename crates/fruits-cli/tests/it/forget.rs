//! `fruits forget`: a photo's rows leave every output of a run, the
//! manifests follow, a record stays, and nothing else changes.

use std::collections::BTreeSet;

use crate::common::require;
use crate::common::*;
use fruits_store::{Dataset, Location, PartKind};

fn paths_of(output: &std::path::Path, kind: PartKind) -> BTreeSet<String> {
    part_paths(output, kind).into_iter().collect()
}

#[test]
fn forget_erases_a_photo_from_features_reduced_and_errors() {
    require!(Shared);
    let tmp = tempfile::tempdir().expect("tmp");
    let input = tmp.path().join("in");
    copy_subset(&input, &["Kiwi 1", "Banana 1"], 3);
    std::fs::write(input.join("Test/Kiwi 1/zz-not-a-photo.jpg"), b"text").expect("bad file");
    let run_dir = tmp.path().join("run");
    let out = run(&[
        "run",
        input.to_str().expect("utf8"),
        "--out",
        run_dir.to_str().expect("utf8"),
        "--k",
        "2",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out)); // one bad file
    let features = run_dir.join("features");
    let reduced = run_dir.join("reduced");
    let before = paths_of(&features, PartKind::Features);
    assert_eq!(before.len(), 12);
    let gone = before.iter().next().expect("a photo").clone();

    let out = run(&[
        "forget",
        run_dir.to_str().expect("utf8"),
        &gone,
        "Test/Kiwi 1/zz-not-a-photo.jpg",
        "Test/never/there.jpg",
    ]);
    // One path was in no output: said, exit 3; the others are erased.
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of the 3 paths were in no output"),
        "{}",
        describe(&out)
    );
    let mut expected = before.clone();
    expected.remove(&gone);
    assert_eq!(paths_of(&features, PartKind::Features), expected);
    assert_eq!(paths_of(&reduced, PartKind::Features), expected);
    assert!(paths_of(&features, PartKind::Errors).is_empty());
    let manifest = Dataset::open(&Location::local_path(&features)).expect("open");
    assert_eq!(
        (manifest.manifest().rows, manifest.manifest().errors),
        (11, 0)
    );
    // The record: hashes of the paths and the rows removed, no names.
    let records: Vec<_> = std::fs::read_dir(&features)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(fruits_store::FORGOTTEN_PREFIX))
        })
        .collect();
    assert_eq!(records.len(), 1);
    let text = std::fs::read_to_string(&records[0]).expect("record");
    assert!(!text.contains("Kiwi"), "{text}");
    let record: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (record["rows"].as_u64(), record["error_rows"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(record["path_sha256"].as_array().map(Vec::len), Some(3));
    // The erased rows are gone from the CSV export too, and a second erasure finds nothing.
    let csv = run(&["export", "csv", features.to_str().expect("utf8")]);
    assert!(!String::from_utf8_lossy(&csv.stdout).contains(&gone));
    let again = run(&["forget", features.to_str().expect("utf8"), &gone]);
    assert_eq!(again.status.code(), Some(3), "{}", describe(&again));
    assert_eq!(paths_of(&features, PartKind::Features), expected);
}
