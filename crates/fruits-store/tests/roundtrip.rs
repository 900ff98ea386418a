//! Write parts, scan them, read them back through the manifest, export CSV.

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use fruits_store::{
    Dataset, DatasetMeta, ErrorRows, FeatureRows, Location, Manifest, OutputDir, PartKind,
    export_csv,
};

fn meta() -> DatasetMeta {
    DatasetMeta {
        model_sha256: "ab".repeat(32),
        model_source: "model.onnx".into(),
        feature_output: "features".into(),
        feature_dim: 4,
        input_size: 224,
        preprocessing: "test".into(),
        tool_version: "0.0.0".into(),
        pca_fingerprint: String::new(),
    }
}

fn rows(paths: &[&str]) -> FeatureRows {
    let mut r = FeatureRows::new(4);
    for (i, p) in paths.iter().enumerate() {
        let v = i as f32;
        r.push(
            p,
            "Kiwi",
            Some("Test"),
            &[i as u8; 32],
            100,
            100,
            &[v, v + 0.5, -v, 1e-7],
        )
        .expect("push");
    }
    r
}

#[test]
fn parts_scan_and_manifest() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let out = OutputDir::create(&Location::local_path(dir.path()))?;
    let p0 = out.write_part(
        &PartKind::Features.file_name(0, 0),
        &rows(&["a.jpg", "b.jpg"]).finish()?,
        &meta(),
    )?;
    let mut errs = ErrorRows::default();
    errs.push("c.jpg", "decode", "truncated");
    let e0 = out.write_part(&PartKind::Errors.file_name(0, 0), &errs.finish()?, &meta())?;

    // Before the manifest exists, the output is not readable as a dataset...
    let err = Dataset::open(&Location::local_path(dir.path())).expect_err("no manifest yet");
    assert!(err.to_string().contains("has not completed"), "{err}");
    // ...but a resuming run sees the committed parts.
    let scan = out.scan()?;
    assert_eq!(scan.next_run, 1);
    assert_eq!(scan.parts.len(), 2);
    assert_eq!(scan.parts[0].paths, ["a.jpg", "b.jpg"]);
    assert_eq!(scan.parts[0].meta.as_ref(), Some(&meta()));

    out.write_manifest(&Manifest::new(meta(), vec![p0], vec![e0]))?;
    // A stray part not named by the manifest is ignored by readers.
    out.write_part(
        &PartKind::Features.file_name(1, 0),
        &rows(&["z.jpg"]).finish()?,
        &meta(),
    )?;

    let ds = Dataset::open(&Location::local_path(dir.path()))?;
    assert_eq!((ds.manifest().rows, ds.manifest().errors), (2, 1));
    let batches: Vec<_> = ds
        .batches(PartKind::Features, 1)
        .collect::<Result<_, _>>()?;
    assert_eq!(batches.len(), 2);
    let features = batches[1]
        .column_by_name("features")
        .ok_or("features")?
        .as_fixed_size_list();
    let values = features.values().as_primitive::<Float32Type>();
    assert_eq!(values.values().as_ref(), &[1.0, 1.5, -1.0, 1e-7]);

    let mut csv = Vec::new();
    assert_eq!(export_csv(&ds, PartKind::Features, &mut csv)?, 2);
    let text = String::from_utf8(csv)?;
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("path,label,split,sha256,width,height,f0,f1,f2,f3")
    );
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "a.jpg,Kiwi,Test,{},100,100,0.0,0.5,-0.0,1e-7",
                "00".repeat(32)
            )
            .as_str()
        )
    );
    Ok(())
}

#[test]
fn unwritable_output_is_a_clear_error() {
    let err = OutputDir::create(&Location::local_path(std::path::Path::new(
        "/proc/fruits-cannot-write-here",
    )))
    .expect_err("ro");
    assert!(
        err.to_string().contains("/proc/fruits-cannot-write-here"),
        "{err}"
    );
}

#[test]
fn part_names_roundtrip() {
    let name = PartKind::Errors.file_name(3, 12);
    assert_eq!(name, "errors-r003-00012.parquet");
    assert_eq!(PartKind::parse(&name), Some((PartKind::Errors, 3, 12)));
    assert_eq!(
        PartKind::parse("part-r1000-00001.parquet"),
        Some((PartKind::Features, 1000, 1))
    );
    assert_eq!(PartKind::parse("part-x.parquet"), None);
}
