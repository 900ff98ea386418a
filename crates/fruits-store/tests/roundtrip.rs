//! Write parts, scan them, read them back through the manifest, export CSV.

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use fruits_contract::Preprocessing;
use fruits_store::{
    Dataset, DatasetMeta, ErrorKind, ErrorRows, FeatureRows, FeatureSpec, Location, Manifest,
    OutputDir, PartKind, export_csv, meta_from_kv,
};

fn meta() -> DatasetMeta {
    DatasetMeta::new(FeatureSpec {
        model_sha256: "ab".repeat(32),
        model_source: "model.onnx".into(),
        feature_output: "features".into(),
        feature_dim: 4,
        input_size: 224,
        preprocessing: Preprocessing::default(),
        colour_bins: fruits_contract::COLOUR_BINS,
    })
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
            &[1.0 / fruits_contract::COLOUR_BINS as f32; fruits_contract::COLOUR_BINS],
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
    errs.push("c.jpg", ErrorKind::Decode, "truncated");
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
    // The vectors spread over columns: features f0.., then the colour descriptor.
    let header = lines.next().ok_or("header")?;
    assert!(
        header.starts_with("path,label,split,sha256,width,height,f0,f1,f2,f3,colour0,colour1,"),
        "{header}"
    );
    assert_eq!(header.split(',').count(), 6 + 4 + 128);
    let row = lines.next().ok_or("row")?;
    let start = format!(
        "a.jpg,Kiwi,Test,{},100,100,0.0,0.5,-0.0,1e-7,",
        "00".repeat(32)
    );
    assert!(row.starts_with(&start), "{row}");
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

#[test]
fn metadata_of_older_outputs_reads_back() {
    use parquet::file::metadata::KeyValue;
    // What version 0.1 wrote: the preprocessing as text, an empty fingerprint.
    let legacy = [
        ("model_sha256", "ab".repeat(32)),
        ("model_source", "model.onnx".to_string()),
        ("feature_output", "features".to_string()),
        ("feature_dim", "4".to_string()),
        ("input_size", "224".to_string()),
        ("preprocessing", Preprocessing::default().describe()),
        ("tool_version", "0.1.0".to_string()),
    ];
    let kv: Vec<KeyValue> = legacy
        .iter()
        .map(|(k, v)| KeyValue::new(format!("fruits.{k}"), v.clone()))
        .collect();
    let meta = meta_from_kv(&kv).expect("legacy metadata");
    // Written before colour descriptors: none recorded.
    let spec = FeatureSpec {
        colour_bins: 0,
        ..self::meta().spec
    };
    assert_eq!(meta.spec, spec);
    assert_eq!(meta.pca_fingerprint, None);
    // And a manifest of 0.1 with a reduced output's fingerprint.
    let manifest = serde_json::json!({
        "format_version": 1,
        "meta": {"model_sha256": "ab", "model_source": "m", "feature_output": "pca",
                 "feature_dim": 2, "input_size": 224,
                 "preprocessing": Preprocessing::default().describe(),
                 "tool_version": "0.1.0", "pca_fingerprint": "f00d"},
        "rows": 0, "errors": 0, "parts": [], "error_parts": [], "written_at_unix": 0
    });
    let m: Manifest = serde_json::from_value(manifest).expect("legacy manifest");
    assert_eq!(m.meta.pca_fingerprint.as_deref(), Some("f00d"));
    assert_eq!(m.meta.vector_column(), "pca");
}
