//! Helpers shared by the end-to-end tests: the sample data, running the binary,
//! reading an output back.

pub mod garage;
pub mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt32Type};
use fruits_store::{Dataset, PartKind};

/// The Fruits-360 sample: `FRUITS_SAMPLE_DIR`, else `../shared/data/fruits-360-sample`
/// beside the repository.
pub fn sample_dir() -> PathBuf {
    shared("FRUITS_SAMPLE_DIR", "data/fruits-360-sample")
}

/// The shared models: `FRUITS_MODELS_DIR`, else `../shared/models` beside the
/// repository.
pub fn models_dir() -> PathBuf {
    shared("FRUITS_MODELS_DIR", "models")
}

/// `env` when set, else `../shared/REL` beside the repository, found from the
/// working directory (cargo runs tests in the crate's folder), not from a path
/// fixed at build time: cached builds move between clones.
fn shared(env: &str, rel: &str) -> PathBuf {
    find_shared(env, rel).unwrap_or_else(|| {
        panic!(
            "no ../shared/{rel} above {}: set {env}",
            std::env::current_dir().unwrap_or_default().display()
        )
    })
}

fn find_shared(env: &str, rel: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(env).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir)).filter(|d| d.is_dir());
    }
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|dir| dir.join("../shared").join(rel))
        .find(|dir| dir.is_dir())
}

/// What a test needs beyond the checkout and the built binary.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    /// The sample photos and the models (`../shared`, or `FRUITS_SAMPLE_DIR`
    /// and `FRUITS_MODELS_DIR`).
    Shared,
    /// The Garage S3 server (`scripts/install-garage.sh` installs it).
    Garage,
    /// chromium and chromedriver (Debian's `chromium`, `chromium-driver`).
    Browser,
}

/// Set (to 1) by `scripts/test.sh`: there every test must run, so a missing
/// need fails the test instead of skipping it.
pub const REQUIRE_ALL_ENV: &str = "FRUITS_REQUIRE_ALL";

/// Why the needs are not met here, if they are not.
fn missing(needs: &[Need]) -> Option<String> {
    let why: Vec<String> = needs
        .iter()
        .filter_map(|need| match need {
            Need::Shared => (find_shared("FRUITS_SAMPLE_DIR", "data/fruits-360-sample").is_none()
                || find_shared("FRUITS_MODELS_DIR", "models").is_none())
            .then(|| {
                "no ../shared/data/fruits-360-sample and ../shared/models (set FRUITS_SAMPLE_DIR \
                 and FRUITS_MODELS_DIR)"
                    .to_string()
            }),
            Need::Garage => {
                let bin = garage::garage_bin();
                (!bin.is_file())
                    .then(|| format!("no Garage at {} (scripts/install-garage.sh)", bin.display()))
            }
            Need::Browser => {
                let driver = std::env::var_os("FRUITS_CHROMEDRIVER")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
                (!driver.is_file()).then(|| {
                    format!(
                        "no chromedriver at {} (Debian's chromium and chromium-driver)",
                        driver.display()
                    )
                })
            }
        })
        .collect();
    (!why.is_empty()).then(|| why.join("; "))
}

/// True when the calling test must stop here because `needs` are not met: it
/// prints why, straight to the terminal (libtest hides a passing test's
/// output), so a skip is never silent. Under `FRUITS_REQUIRE_ALL` it panics
/// instead: CI runs every test.
pub fn skip(needs: &[Need]) -> bool {
    use std::io::Write;
    let Some(why) = missing(needs) else {
        return false;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if std::env::var_os(REQUIRE_ALL_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{test} cannot run: {why} ({REQUIRE_ALL_ENV} is set: every test must run)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    true
}

/// Returns from the calling test, saying why, when what it needs is missing:
/// `require!(Shared, Garage);`.
macro_rules! require {
    ($($need:ident),+) => {
        if $crate::common::skip(&[$($crate::common::Need::$need),+]) {
            return;
        }
    };
}
pub(crate) use require;

/// Copies the first `per_class` images of each class of each split into `dest`.
pub fn copy_subset(dest: &Path, classes: &[&str], per_class: usize) {
    for split in ["Training", "Test"] {
        for class in classes {
            let src = sample_dir().join(split).join(class);
            let mut files: Vec<_> = std::fs::read_dir(&src)
                .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
                .map(|e| e.expect("entry").path())
                .collect();
            files.sort();
            let out = dest.join(split).join(class);
            std::fs::create_dir_all(&out).expect("mkdir");
            for f in files.into_iter().take(per_class) {
                std::fs::copy(&f, out.join(f.file_name().expect("name"))).expect("copy");
            }
        }
    }
}

/// Copies the folder `src` into `dest` (created), sub-folders included.
pub fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read dir") {
        let entry = entry.expect("entry");
        let to = dest.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

/// The `fruits` binary under test.
pub fn fruits() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fruits"));
    cmd.env_remove("FRUITS_MODEL");
    cmd.env("FRUITS_MODELS_DIR", models_dir());
    cmd
}

/// The command `fruits featurize INPUT --out OUT --quiet EXTRA...`.
fn featurize_command(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = fruits();
    cmd.arg("featurize")
        .arg(input)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .args(extra);
    cmd
}

/// `fruits featurize INPUT --out OUT --quiet EXTRA...`.
pub fn featurize(input: &Path, out: &Path, extra: &[&str]) -> Output {
    featurize_command(input, out, extra)
        .output()
        .expect("spawn fruits")
}

/// [`featurize`], stopped as if interrupted once `batches` batches went in
/// (the pipeline's test hook, compiled into the test build only).
pub fn featurize_stopped(input: &Path, out: &Path, extra: &[&str], batches: usize) -> Output {
    featurize_command(input, out, extra)
        .env(
            fruits_pipeline::featurize::test_hooks::STOP_AFTER_BATCHES_ENV,
            batches.to_string(),
        )
        .output()
        .expect("spawn fruits")
}

/// Runs `fruits` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    fruits().args(args).output().expect("spawn fruits")
}

/// Exit code, stdout and stderr of an output, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One features row, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub split: Option<String>,
    pub sha256: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub features: Vec<f32>,
}

/// Reads an output's features rows keyed by path; panics on duplicate paths.
pub fn read_rows(dir: &Path) -> BTreeMap<String, Row> {
    let ds = Dataset::open(&fruits_store::Location::local_path(dir)).expect("open dataset");
    let mut rows = BTreeMap::new();
    for batch in ds.batches(PartKind::Features, 1000) {
        let batch = batch.expect("batch");
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap_or_else(|| panic!("column {name}"))
                .clone()
        };
        let path = col("path");
        let path = path.as_string::<i32>();
        let label = col("label");
        let label = label.as_string::<i32>();
        let split = col("split");
        let split = split.as_string::<i32>();
        let sha = col("sha256");
        let sha = sha.as_fixed_size_binary();
        let width = col("width");
        let width = width.as_primitive::<UInt32Type>();
        let height = col("height");
        let height = height.as_primitive::<UInt32Type>();
        let features = col("features");
        let features = features.as_fixed_size_list();
        for i in 0..batch.num_rows() {
            let values = features.value(i);
            let row = Row {
                label: label.value(i).to_string(),
                split: split.is_valid(i).then(|| split.value(i).to_string()),
                sha256: sha.value(i).to_vec(),
                width: width.value(i),
                height: height.value(i),
                features: values.as_primitive::<Float32Type>().values().to_vec(),
            };
            let previous = rows.insert(path.value(i).to_string(), row);
            assert!(previous.is_none(), "duplicate row for {}", path.value(i));
        }
    }
    rows
}

/// The paths of the manifest's parts of `kind`, in the order they are stored.
pub fn part_paths(dir: &Path, kind: fruits_store::PartKind) -> Vec<String> {
    let ds =
        fruits_store::Dataset::open(&fruits_store::Location::local_path(dir)).expect("dataset");
    dataset_paths(&ds, kind)
}

/// The paths of `ds`'s rows of `kind` (local or S3), in the order they are stored.
pub fn dataset_paths(ds: &fruits_store::Dataset, kind: fruits_store::PartKind) -> Vec<String> {
    let mut paths = Vec::new();
    for batch in ds.batches(kind, 1000) {
        let batch = batch.expect("batch");
        let column = batch
            .column_by_name("path")
            .expect("path")
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .expect("utf8")
            .clone();
        paths.extend(column.iter().flatten().map(str::to_string));
    }
    paths
}

/// Reads an output's errors table as path -> (kind, message).
pub fn read_errors(dir: &Path) -> BTreeMap<String, (String, String)> {
    let ds = Dataset::open(&fruits_store::Location::local_path(dir)).expect("open dataset");
    let mut errors = BTreeMap::new();
    for batch in ds.batches(PartKind::Errors, 1000) {
        let batch = batch.expect("batch");
        let path = batch.column(0).as_string::<i32>().clone();
        let kind = batch.column(1).as_string::<i32>().clone();
        let message = batch.column(2).as_string::<i32>().clone();
        for i in 0..batch.num_rows() {
            let previous = errors.insert(
                path.value(i).to_string(),
                (kind.value(i).to_string(), message.value(i).to_string()),
            );
            assert!(previous.is_none(), "duplicate error for {}", path.value(i));
        }
    }
    errors
}

/// Four classes that look nothing alike: a classifier trained on ten photos
/// of each must get their Test photos right.
pub const DISTINCT_CLASSES: [&str; 4] = ["Banana 1", "Kiwi 1", "Strawberry 1", "Avocado 1"];

/// A small trained setup: photos, a `fruits run` output and a classifier.
pub struct Trained {
    /// Training/ and Test/ photos of [`DISTINCT_CLASSES`].
    pub photos: PathBuf,
    /// The `fruits run` output (features, pca, reduced).
    pub run: PathBuf,
    /// A classifier trained on run/features (Training split) behind its own PCA.
    pub classifier: PathBuf,
}

/// The [`Trained`] setup shared by every test of this run: built once (under
/// `CARGO_TARGET_TMPDIR/trained`) by the first test that asks. Tests read it
/// and write only into folders of their own names beside it.
pub fn trained() -> &'static Trained {
    static TRAINED: std::sync::OnceLock<Trained> = std::sync::OnceLock::new();
    TRAINED.get_or_init(build_trained)
}

fn build_trained() -> Trained {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("trained");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("mkdir fixture");
    let t = Trained {
        photos: root.join("photos"),
        run: root.join("run"),
        classifier: root.join("classifier"),
    };
    copy_subset(&t.photos, &DISTINCT_CLASSES, 10);
    let (photos, out) = (
        t.photos.to_str().expect("utf-8"),
        t.run.to_str().expect("utf-8"),
    );
    let r = run(&["run", photos, "--out", out, "--quiet", "--k", "8"]);
    assert!(r.status.success(), "{}", describe(&r));
    let features = t.run.join("features");
    let r = run(&[
        "train",
        features.to_str().expect("utf-8"),
        "--split",
        "Training",
        "--k",
        "8",
        "--out",
        t.classifier.to_str().expect("utf-8"),
    ]);
    assert!(r.status.success(), "{}", describe(&r));
    t
}

/// The first Test photo of `class`.
pub fn test_photo(class: &str) -> PathBuf {
    let dir = sample_dir().join("Test").join(class);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files.remove(0)
}

/// Writes a features output at `dir` of `rows` random Training rows of `dim`
/// values in `classes` classes, whose metadata says the vectors have
/// `meta_dim` values (a damaged output when the two differ). Random labels
/// never fit, so training on it runs until stopped: the interruption tests
/// need a run that is still going when they signal it.
pub fn synthetic_features(dir: &Path, rows: usize, classes: usize, dim: usize, meta_dim: usize) {
    use fruits_store::{
        DatasetMeta, FeatureRows, FeatureSpec, Location, Manifest, OutputDir, PartKind,
    };
    let out = OutputDir::create(&Location::local_path(dir)).expect("output");
    let meta = DatasetMeta::new(FeatureSpec {
        model_sha256: "0".repeat(64),
        model_source: "synthetic.onnx".into(),
        feature_output: "features".into(),
        feature_dim: meta_dim,
        input_size: 224,
        preprocessing: Default::default(),
        colour_bins: fruits_image::COLOUR_BINS,
    });
    let mut table = FeatureRows::new(dim);
    // xorshift64: deterministic noise without a dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    for i in 0..rows {
        let features: Vec<f32> = (0..dim).map(|_| next()).collect();
        let colour: Vec<f32> = (0..fruits_image::COLOUR_BINS).map(|_| next()).collect();
        let label = format!("c{}", i % classes);
        table
            .push(
                &format!("Training/{label}/{i}.jpg"),
                &label,
                Some("Training"),
                &[0; 32],
                100,
                100,
                &features,
                &colour,
            )
            .expect("row");
    }
    let batch = table.finish().expect("batch");
    let part = out
        .write_part(&PartKind::Features.file_name(0, 0), &batch, &meta)
        .expect("part");
    out.write_manifest(&Manifest::new(meta, vec![part], Vec::new()))
        .expect("manifest");
}

/// Spawns `fruits ARGS` with SIGINT ignored, as a background job of a
/// non-interactive shell starts it: the command must install its own
/// handler for Ctrl-C to stop it.
#[cfg(unix)]
pub fn spawn_with_sigint_ignored(args: &[&str]) -> std::process::Child {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' INT; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_fruits"))
        .args(args)
        .env_remove("FRUITS_MODEL")
        .env("FRUITS_MODELS_DIR", models_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().expect("spawn fruits")
}

/// Sends SIGINT to `child`.
#[cfg(unix)]
pub fn interrupt(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Runs `fruits ARGS` and returns its output and its peak resident memory in
/// KiB (from `wait4`'s resource usage of that one process).
#[cfg(unix)]
pub fn run_measured(args: &[&str]) -> (Output, u64) {
    let child = fruits()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn fruits");
    let pid = child.id() as libc::pid_t;
    // Read the pipes on threads so a chatty child cannot block on a full pipe.
    let mut child = child;
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let read_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).map(|_| v)
    });
    let read_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).map(|_| v)
    });
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, once.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    let stdout = read_out.join().expect("stdout thread").expect("stdout");
    let stderr = read_err.join().expect("stderr thread").expect("stderr");
    use std::os::unix::process::ExitStatusExt;
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout,
        stderr,
    };
    (output, usage.ru_maxrss as u64)
}
