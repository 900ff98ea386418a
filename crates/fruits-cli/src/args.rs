//! Every flag of the `fruits` command, in one place (as uv keeps its CLI
//! arguments apart from the commands that use them). Defaults come from the
//! library crates, where they are defined once and shared with the Python
//! bindings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fruits_identify::DEFAULT_TOP;
use fruits_image::DEFAULT_MAX_MEGAPIXELS;
use fruits_learn::{DEFAULT_C, DEFAULT_MAX_ITER};
use fruits_location::{DEFAULT_CONCURRENCY, DEFAULT_RETRY_TIMEOUT_SECS};
use fruits_model::{DEFAULT_FEATURE_OUTPUT, Precision};
use fruits_pca::Keep;
use fruits_pipeline::featurize::{DEFAULT_BATCH_SIZE, DEFAULT_MAX_FILE_MIB, DEFAULT_PART_ROWS};
use fruits_pipeline::reduce::DEFAULT_VARIANCE;
use fruits_serve::defaults as serve_defaults;

// The bounds are the core's (every shell is held to them); clap checks them
// too, so a bad flag is a usage error naming the flag.
const MAX_THREADS: u64 = fruits_model::MAX_THREADS as u64;
const MAX_BATCH: u64 = fruits_pipeline::featurize::MAX_BATCH_SIZE as u64;
const MAX_PART_ROWS: u64 = fruits_pipeline::featurize::MAX_PART_ROWS as u64;
const MAX_COPIES: u32 = fruits_pipeline::augment::MAX_COPIES;

/// A whole number flag in `lo..=hi`.
fn count(lo: u64, hi: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(lo..=hi)
}

/// A finite number in (0, `hi`].
fn positive(value: &str, hi: f64) -> Result<f64, String> {
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= hi {
        Ok(v)
    } else {
        Err(format!(
            "{value} is out of range: give a number above 0 and at most {hi}"
        ))
    }
}

fn megapixels(v: &str) -> Result<f64, String> {
    positive(v, 10_000.0)
}
fn mebibytes(v: &str) -> Result<f64, String> {
    positive(v, 4096.0)
}
fn seconds(v: &str) -> Result<f64, String> {
    positive(v, 86_400.0)
}
fn share(v: &str) -> Result<f64, String> {
    positive(v, 1.0)
}
fn inverse_penalty(v: &str) -> Result<f64, String> {
    positive(v, 1e12)
}

/// Turn fruit photos into features, compress them, identify the fruit.
///
/// Exit status: 0 success; 1 fatal error (nothing or not everything could be
/// done, see the message); 2 bad command line; 3 finished, but some inputs
/// failed (listed in the output's errors table); 130 interrupted (run the same
/// command again to resume).
#[derive(Debug, Parser)]
#[command(
    name = "fruits",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Log more (-v: info, -vv: debug), on stderr. RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Featurise every image under a folder or S3 prefix with MobileNetV2 into Parquet.
    ///
    /// Every image under INPUT (jpg, jpeg, png, webp, bmp, any case; hidden files
    /// skipped) becomes one row: path, label (its folder's name), split (the folder
    /// above when it is Training or Test), sha256, width, height and a 1280-d
    /// feature vector. Images that cannot be used go to the errors table with the
    /// reason. Running again on the same --out resumes: images already in the
    /// output are skipped, images added since are featurised.
    Featurize(FeaturizeArgs),
    /// Reduce features with PCA: fit, transform, show.
    #[command(subcommand)]
    Pca(Pca),
    /// Featurise, fit a PCA and transform, into OUT/features, OUT/pca and OUT/reduced.
    Run(RunArgs),
    /// Make transformed copies of photos, for training and testing on photos "in the wild".
    ///
    /// Each copy of each photo under INPUT: the white studio background (when
    /// detectable) and the corners a rotation uncovers replaced by a random
    /// coloured texture, a rotation of up to 40 degrees, a random crop resized
    /// back, brightness / contrast / hue jitter, blur on half of them, JPEG
    /// re-compression. Written to OUT in the same folders (labels and splits
    /// kept) as NAME-augK.jpg, ready for `fruits featurize` (or the Spark job).
    /// Seeded: the same INPUT and --seed give the same files.
    Augment(AugmentArgs),
    /// Export an output as another format.
    #[command(subcommand)]
    Export(Export),
    /// Train a classifier (softmax regression) on a features or reduced output.
    Train(TrainArgs),
    /// Score a classifier on a split: accuracy, F1, confusion matrix, net revenue.
    Evaluate(EvaluateArgs),
    /// Say which fruit is in each photo, with what the app knows about it.
    Identify(IdentifyArgs),
    /// Serve identification over HTTP: upload page, JSON API, SageMaker routes, metrics.
    Serve(ServeArgs),
    /// The image models fruits knows: list them, verify your copies, fetch them.
    #[command(subcommand)]
    Models(Models),
    /// Erase photos' rows from outputs (GDPR): features, reduced and errors tables.
    ///
    /// OUTPUT is one output (features or reduced) or a run's folder (its
    /// features/ and reduced/ are both done). Each part holding a row of a
    /// PATH (as the output stores it: relative to the input root, e.g.
    /// `Test/Kiwi 1/r_1.jpg`) is rewritten without it; the manifest is written
    /// again; a record `_forgotten-<ms>.json` (the paths' sha256, the rows
    /// removed per part) is left beside it. Delete the photos from the input
    /// too, or a rerun featurises them again. A PCA or classifier holds no
    /// rows, only statistics of many: retrain to forget a photo's share.
    Forget(ForgetArgs),
}

/// Flags of `fruits forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// An output (folder or s3:// prefix), or a run's folder.
    pub output: String,
    /// Paths of photos to erase, as the output stores them.
    pub paths: Vec<String>,
    /// A file with more paths, one per line.
    #[arg(long, value_name = "FILE")]
    pub paths_from: Option<PathBuf>,
}

/// Storage flags (global: they go anywhere on the command line).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Storage (S3)")]
pub struct StorageArgs {
    /// Also allow S3 buckets in REGION (repeatable; FRUITS_ALLOW_REGIONS,
    /// comma-separated, adds more). Buckets outside the allowed regions are
    /// refused before any data moves; eu-west-3 (Paris) is always allowed.
    #[arg(long = "allow-region", global = true, value_name = "REGION")]
    pub allow_region: Vec<String>,

    /// S3-compatible endpoint to use instead of Amazon S3 (e.g.
    /// http://127.0.0.1:3900) [default: AWS_ENDPOINT_URL_S3, else
    /// AWS_ENDPOINT_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Give up on an S3 request after retrying it (with backoff) for this long.
    #[arg(long, global = true, default_value_t = DEFAULT_RETRY_TIMEOUT_SECS, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub s3_retry_timeout: u64,

    /// S3 GET requests in flight while reading images.
    #[arg(long, global = true, default_value_t = DEFAULT_CONCURRENCY, value_name = "N",
          value_parser = count(1, 1024))]
    pub s3_concurrency: usize,
}

impl StorageArgs {
    /// The storage options the environment and these flags ask for (the
    /// flags win).
    pub fn options(&self) -> fruits_location::StorageOptions {
        let mut options = fruits_location::StorageOptions::from_env();
        for region in &self.allow_region {
            options.allow_region(region);
        }
        if let Some(endpoint) = self.s3_endpoint.clone().filter(|e| !e.is_empty()) {
            options.endpoint = Some(endpoint);
        }
        options.retry_timeout = std::time::Duration::from_secs(self.s3_retry_timeout);
        options.concurrency = self.s3_concurrency.max(1);
        options
    }
}

/// Which of the shared models to use when `--model` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrecisionArg {
    /// mobilenetv2-12-dequant-fp32.onnx: the reference model.
    Fp32,
    /// mobilenetv2-12-int8.onnx: about 2x faster; features differ slightly.
    Int8,
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Int8 => Precision::Int8,
        }
    }
}

impl From<Precision> for PrecisionArg {
    fn from(p: Precision) -> PrecisionArg {
        match p {
            Precision::Fp32 => PrecisionArg::Fp32,
            Precision::Int8 => PrecisionArg::Int8,
        }
    }
}

/// Model selection and runtime flags.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// ONNX model file or s3:// object. Overrides --precision [env:
    /// FRUITS_MODEL].
    #[arg(long, value_name = "PATH")]
    pub model: Option<String>,

    /// Which shared model to use when --model is not given.
    #[arg(long, value_enum, default_value_t = PrecisionArg::from(Precision::default()))]
    pub precision: PrecisionArg,

    /// Model output that holds the feature vector.
    #[arg(long, default_value = DEFAULT_FEATURE_OUTPUT, value_name = "NAME")]
    pub feature_output: String,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Where the shared models and ONNX Runtime are, and how many threads it uses:
/// shared by the commands that featurise and those that identify.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Folder holding the shared models [env: FRUITS_MODELS_DIR] [default:
    /// ../shared/models, else the models cache].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,

    /// ONNX Runtime intra-op threads of each session [default: featurising,
    /// 1; identifying, number of cores].
    #[arg(long, value_name = "N", value_parser = count(1, MAX_THREADS))]
    pub intra_threads: Option<usize>,

    /// ONNX Runtime sessions running batches side by side [default:
    /// featurising, 1 per core (or cores / --intra-threads); identifying, 1].
    #[arg(long, value_name = "N", value_parser = count(1, MAX_THREADS))]
    pub sessions: Option<usize>,

    /// ONNX Runtime shared library [env: FRUITS_ORT_LIB] [default: found
    /// beside the binary or where scripts/setup-onnxruntime.sh installs it].
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,
}

/// Flags of `fruits featurize`.
#[derive(Debug, Args)]
pub struct FeaturizeArgs {
    /// Folder or s3://bucket/prefix of images, one subfolder per class.
    #[arg(value_name = "INPUT")]
    pub input: String,

    /// Output folder or s3://bucket/prefix (created if needed; reused to resume).
    #[arg(long, short, value_name = "DIR")]
    pub out: String,

    #[command(flatten)]
    pub model: ModelArgs,

    /// Images per inference call. Small batches keep activations in cache and
    /// memory low; measured in docs/performance.md.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_name = "N", value_parser = count(1, MAX_BATCH))]
    pub batch_size: usize,

    /// Threads decoding and resizing images [default: 1 per 2 cores, at least 1].
    #[arg(long, value_name = "N", value_parser = count(1, MAX_THREADS))]
    pub decode_threads: Option<usize>,

    /// Rows per Parquet part file: the work kept if a run is interrupted.
    #[arg(long, default_value_t = DEFAULT_PART_ROWS, value_name = "N", value_parser = count(1, MAX_PART_ROWS))]
    pub part_rows: usize,

    /// Refuse images larger than this many megapixels (decompression bombs).
    #[arg(long, default_value_t = DEFAULT_MAX_MEGAPIXELS, value_name = "MP", value_parser = megapixels)]
    pub max_megapixels: f64,

    /// Refuse files larger than this many MiB, from the listing, before
    /// reading them (each becomes a row of the errors table).
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_MIB, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_file_mib: u64,

    /// Try again the images that failed in earlier runs into this output
    /// (their old errors rows are replaced by this run's outcome).
    #[arg(long)]
    pub retry_errors: bool,

    /// Also featurise N augmented copies of each Training photo (photos as in
    /// the wild: the files `fruits augment` would write, made in memory, rows
    /// named `PHOTO.jpg-aug0.jpg`): a classifier trained on them holds up on photos
    /// off the studio background. Every photo gets copies when the input has
    /// no Training/Test folders. Resume with the same N and seed.
    #[arg(long, default_value_t = 0, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_COPIES)))]
    pub augment: u32,

    /// Seed of the augmented copies' random draws.
    #[arg(long, default_value_t = fruits_pipeline::augment::DEFAULT_SEED, value_name = "N")]
    pub augment_seed: u64,

    /// Also store each photo's vectors in the views the identifier averages
    /// (the whole photo and its centred 80% and 60%, each also mirrored), in a
    /// `views` column: a classifier trained on them learns each view, and
    /// `fruits evaluate` scores the photos as `identify` answers them. For
    /// real photos (shops, kitchens); six times the inference.
    #[arg(long)]
    pub views: bool,

    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,

    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// PCA subcommands.
#[derive(Debug, Subcommand)]
pub enum Pca {
    /// Fit a PCA on a features output in one streaming pass; write the model.
    Fit(FitArgs),
    /// Project a features output with a fitted PCA into a new output (column `pca`).
    Transform(TransformArgs),
    /// Print a fitted PCA's explained-variance table.
    Show(ShowArgs),
}

/// How many components to keep (one of the two).
#[derive(Debug, Clone, Args)]
#[group(multiple = false)]
pub struct KeepArgs {
    /// Keep the fewest components whose cumulative explained variance reaches
    /// this share, in (0, 1] [default: 0.95].
    #[arg(long, value_name = "SHARE", value_parser = share)]
    pub variance: Option<f64>,
    /// Keep exactly K components.
    #[arg(long, value_name = "K", value_parser = count(1, 1_000_000))]
    pub k: Option<usize>,
}

impl KeepArgs {
    /// The choice, [`DEFAULT_VARIANCE`] of the variance by default.
    pub fn keep(&self) -> Keep {
        match (self.k, self.variance) {
            (Some(k), _) => Keep::K(k),
            (None, Some(v)) => Keep::Variance(v),
            (None, None) => Keep::Variance(DEFAULT_VARIANCE),
        }
    }
}

/// Flags of `fruits pca fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// A features output (from `fruits featurize`): folder or s3:// prefix.
    #[arg(value_name = "FEATURES")]
    pub features: String,
    /// Folder or s3:// prefix for the model (pca.json, components.parquet, plots).
    #[arg(long, short, value_name = "DIR")]
    pub out: String,
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `fruits pca transform`.
#[derive(Debug, Args)]
pub struct TransformArgs {
    /// A features output (from `fruits featurize`): folder or s3:// prefix.
    #[arg(value_name = "FEATURES")]
    pub features: String,
    /// A fitted PCA folder (from `fruits pca fit`).
    #[arg(long, value_name = "DIR")]
    pub model: String,
    /// Output folder or s3:// prefix for the reduced rows.
    #[arg(long, short, value_name = "DIR")]
    pub out: String,
}

/// Flags of `fruits pca show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A fitted PCA folder or s3:// prefix.
    #[arg(value_name = "DIR")]
    pub model: String,
    /// List every component, not only the kept ones.
    #[arg(long)]
    pub all: bool,
}

/// Flags of `fruits run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub featurize: FeaturizeArgs,
    #[command(flatten)]
    pub keep: KeepArgs,
}

/// Flags of `fruits augment`.
#[derive(Debug, Clone, Args)]
pub struct AugmentArgs {
    /// Folder or s3:// prefix of photos, one folder per class.
    #[arg(value_name = "INPUT")]
    pub input: String,

    /// Folder or s3:// prefix for the copies.
    #[arg(long, short, value_name = "OUT")]
    pub out: String,

    /// Copies of each photo.
    #[arg(long, default_value_t = fruits_pipeline::augment::DEFAULT_COPIES, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_COPIES)))]
    pub copies: u32,

    /// Seed of the random draws (another seed, other copies).
    #[arg(long, default_value_t = fruits_pipeline::augment::DEFAULT_SEED, value_name = "N")]
    pub seed: u64,
}

/// Model file subcommands.
#[derive(Debug, Subcommand)]
pub enum Models {
    /// The known model files (name, precision, size, sha256, source, licence)
    /// and where a verified copy of each was found.
    List,
    /// Check every copy of the known model files in the search folders against
    /// its pinned size and sha256; exits 1 when a copy differs.
    Verify,
    /// Download model files into the models cache, checking size and sha256.
    ///
    /// Into FRUITS_MODELS_DIR when set, else ~/.cache/fruits/models (or
    /// $XDG_CACHE_HOME/fruits/models), which every command searches. A download
    /// whose bytes differ from the pinned file is refused and nothing is left
    /// under the model's name.
    Fetch(FetchArgs),
}

/// `fruits models fetch` flags.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Models to fetch, by file name or precision (int8, fp32) [default: all].
    #[arg(value_name = "MODEL")]
    pub models: Vec<String>,

    /// Where the files are: a base URL (http:// or https://; MODEL is appended)
    /// or a folder holding them (a mirror, a copy of ../shared/models).
    #[arg(long, env = fruits_model::catalog::MODELS_URL_ENV, value_name = "URL")]
    pub from: Option<String>,

    /// Do not draw the progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Export formats.
#[derive(Debug, Subcommand)]
pub enum Export {
    /// Write an output's rows as CSV (vectors spread over columns f0, f1, ...).
    Csv {
        /// A complete output folder or s3:// prefix (with a _manifest.json).
        #[arg(value_name = "DIR")]
        dataset: String,

        /// CSV file or s3:// object to write [default: standard output].
        #[arg(long, short, value_name = "FILE")]
        out: Option<String>,

        /// Export the errors table (path, kind, message) instead of the rows.
        #[arg(long)]
        errors: bool,
    },
}

/// Flags of `fruits train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Features outputs of studio photos (the classifier fits its own PCA on
    /// the training rows of all of them), or one reduced output (it reuses
    /// the PCA that made it): folders or s3:// prefixes.
    #[arg(value_name = "DATA", required = true)]
    pub data: Vec<String>,

    /// A features output of real photos (shops, kitchens, orchards:
    /// `scripts/real-photos.py`, then `fruits featurize --views`), trained on
    /// beside DATA (repeatable): its photos train the main head and, as photos
    /// in the wild, the gate, never the studio head.
    #[arg(long, value_name = "DATA")]
    pub real: Vec<String>,

    /// Folder or s3:// prefix for the classifier (classifier.json and its PCA).
    #[arg(long, short, value_name = "DIR")]
    pub out: String,

    /// Train on the rows of this split only (e.g. Training) [default: every row].
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,

    /// PCA kept when DATA holds features (ignored for a reduced output).
    #[command(flatten)]
    pub keep: KeepArgs,

    /// Train on the raw features, with no PCA.
    #[arg(long, conflicts_with_all = ["variance", "k", "pca"])]
    pub no_pca: bool,

    /// Leave out the photos' colour descriptors (stored beside the features
    /// since 0.2); by default they go beside the PCA of the features when the
    /// data has them (Test 98.24% -> 99.2% on the sample, fp32).
    #[arg(long)]
    pub no_colour: bool,

    /// With augmented copies or real photos among the rows, train a single
    /// head for every photo; by default a second head, trained on the studio
    /// photos alone, answers for photos the gate sees as taken in the studio
    /// (plain white).
    #[arg(long)]
    pub no_studio_head: bool,

    /// Answer "not sure" (with the runners-up) when the top probability (of a
    /// class, or of a fruit over its varieties) is below P [default: always
    /// answer]. 0.75 is the break-even confidence of the default net-revenue
    /// values; `fruits evaluate --save-threshold` sets the one that earned
    /// most on the data it scored.
    #[arg(long, value_name = "P", value_parser = share)]
    pub abstain_below: Option<f64>,

    /// The PCA folder that made a reduced DATA [default: the `pca` folder beside
    /// it, as `fruits run` lays them out].
    #[arg(long, value_name = "DIR")]
    pub pca: Option<String>,

    /// Inverse L2 regularisation strength, as scikit-learn's C (larger: less penalty).
    #[arg(long = "c", default_value_t = DEFAULT_C, value_name = "C", value_parser = inverse_penalty,
          conflicts_with = "cv")]
    pub c: f64,

    /// Choose C by stratified K-fold cross-validation on the training rows
    /// (the --split rows only: the test split is never used to pick it); a PCA
    /// fitted here is refitted inside each fold.
    #[arg(long, value_name = "K", value_parser = count(2, fruits_learn::cv::MAX_FOLDS as u64))]
    pub cv: Option<usize>,

    /// The values of C cross-validation tries, comma-separated.
    #[arg(long, value_name = "C,...", value_delimiter = ',', value_parser = inverse_penalty,
          requires = "cv", default_values_t = fruits_learn::DEFAULT_CV_GRID.to_vec())]
    pub cv_c: Vec<f64>,

    /// Most L-BFGS iterations.
    #[arg(long, default_value_t = DEFAULT_MAX_ITER, value_name = "N", value_parser = count(1, 1_000_000))]
    pub max_iter: usize,

    /// Print the training report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `fruits evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A classifier folder or s3:// prefix (from `fruits train`).
    #[arg(value_name = "CLASSIFIER")]
    pub classifier: String,

    /// The features (or matching reduced) output to score it on.
    #[arg(long, value_name = "DATA")]
    pub on: String,

    /// Score the rows of this split only (e.g. Test) [default: every row].
    #[arg(long, value_name = "NAME")]
    pub split: Option<String>,

    /// What answers are worth, as TOML: gain_correct, cost_wrong, cost_abstain,
    /// and [classes."Name"] overrides [default: 1, 5, 0.5].
    #[arg(long, value_name = "FILE")]
    pub revenue: Option<String>,

    /// Where to write report.json, per_class.csv, confusion.png and revenue.png
    /// [default: CLASSIFIER/evaluation-SPLIT].
    #[arg(long, short, value_name = "DIR")]
    pub out: Option<String>,

    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Record the net-revenue-maximising threshold in the classifier: below
    /// it, `identify` and `serve` answer "not sure". Evaluate on photos the
    /// classifier was not trained on.
    #[arg(long)]
    pub save_threshold: bool,
}

/// Flags of the commands that identify photos with a trained classifier.
#[derive(Debug, Clone, Args)]
pub struct ClassifierArgs {
    /// A classifier folder or s3:// prefix (from `fruits train`).
    #[arg(long, env = "FRUITS_CLASSIFIER", value_name = "DIR")]
    pub model: String,

    /// The ONNX image model [default: the file with the sha256 the classifier
    /// records: where it was trained from if still there, else in --models-dir].
    #[arg(long, value_name = "PATH")]
    pub image_model: Option<String>,

    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Flags of `fruits identify`.
#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// Photos: files or s3:// objects.
    #[arg(value_name = "PHOTO", required = true)]
    pub photos: Vec<String>,

    #[command(flatten)]
    pub classifier: ClassifierArgs,

    /// How many answers to give per photo, best first.
    #[arg(long, default_value_t = DEFAULT_TOP, value_name = "N", value_parser = count(1, fruits_identify::MAX_TOP as u64))]
    pub top: usize,

    /// Refuse photos larger than this many megapixels.
    #[arg(long, default_value_t = DEFAULT_MAX_MEGAPIXELS, value_name = "MP", value_parser = megapixels)]
    pub max_megapixels: f64,

    /// Print the answers as JSON (one object per photo) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `fruits serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub classifier: ClassifierArgs,

    /// Address to listen on (0.0.0.0 for every interface, as in a SageMaker container).
    #[arg(
        long,
        env = "FRUITS_HOST",
        default_value = serve_defaults::HOST,
        value_name = "ADDR"
    )]
    pub host: String,

    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "FRUITS_PORT", default_value_t = serve_defaults::PORT, value_name = "PORT")]
    pub port: u16,

    /// The port SageMaker tells its container to listen on; wins over --port.
    #[arg(long, env = "SAGEMAKER_BIND_TO_PORT", hide = true, value_name = "PORT")]
    pub sagemaker_port: Option<u16>,

    /// Print one line per request on standard output (method, path, status, ms).
    /// FRUITS_ACCESS_LOG=1 (or true, yes, on) turns it on.
    #[arg(long, env = "FRUITS_ACCESS_LOG", value_parser = clap::builder::FalseyValueParser::new())]
    pub access_log: bool,

    /// On /invocations, answer a photo that cannot be used with 200 and the
    /// error as the record (its status in X-Fruits-Error-Status), so a
    /// SageMaker Batch Transform job writes an error record instead of
    /// failing. FRUITS_ERRORS_AS_RECORDS=1 turns it on.
    #[arg(long, env = "FRUITS_ERRORS_AS_RECORDS", value_parser = clap::builder::FalseyValueParser::new())]
    pub errors_as_records: bool,

    /// Largest request body, in MiB [env: FRUITS_MAX_BODY_MIB].
    #[arg(long, env = "FRUITS_MAX_BODY_MIB", hide_env = true, default_value_t = serve_defaults::MAX_BODY_MIB, value_name = "MIB", value_parser = mebibytes)]
    pub max_body_mib: f64,

    /// Refuse photos larger than this many megapixels (checked before decoding)
    /// [env: FRUITS_MAX_MEGAPIXELS].
    #[arg(long, env = "FRUITS_MAX_MEGAPIXELS", hide_env = true, default_value_t = serve_defaults::MAX_MEGAPIXELS, value_name = "MP", value_parser = megapixels)]
    pub max_megapixels: f64,

    /// Requests handled at once; more are answered 503 at once.
    #[arg(long, default_value_t = serve_defaults::MAX_IN_FLIGHT, value_name = "N", value_parser = count(1, 65_536))]
    pub max_in_flight: usize,

    /// Seconds a request may take before it is answered 503.
    #[arg(long, default_value_t = serve_defaults::TIMEOUT_SECS, value_name = "SECONDS", value_parser = seconds)]
    pub timeout: f64,

    /// Most photos per model call (micro-batching of concurrent requests).
    #[arg(long, default_value_t = serve_defaults::MAX_BATCH, value_name = "N", value_parser = count(1, MAX_BATCH))]
    pub max_batch: usize,

    /// Seconds a client may take to send a request's head (and to stay idle
    /// between requests) before it is disconnected.
    #[arg(long, default_value_t = serve_defaults::HEADER_TIMEOUT_SECS, value_name = "SECONDS", value_parser = seconds)]
    pub header_timeout: f64,

    /// Seconds a client may take to send the photo (408 after); slow uploads
    /// do not count against --max-in-flight.
    #[arg(long, default_value_t = serve_defaults::BODY_TIMEOUT_SECS, value_name = "SECONDS", value_parser = seconds)]
    pub body_timeout: f64,

    /// Connections open at once; more clients wait to be accepted.
    #[arg(long, default_value_t = serve_defaults::MAX_CONNECTIONS, value_name = "N", value_parser = count(1, 100_000))]
    pub max_connections: usize,

    /// On SIGTERM or Ctrl-C, seconds the requests in flight get before the
    /// remaining connections are closed.
    #[arg(long, default_value_t = serve_defaults::SHUTDOWN_GRACE_SECS, value_name = "SECONDS", value_parser = seconds)]
    pub shutdown_grace: f64,

    /// A web origin allowed to call the API from a browser (CORS), e.g.
    /// https://app.fruits.example (repeatable), or `*` alone for any origin
    /// [default: none].
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,

    /// MiB of request bodies held at once across all connections; an upload
    /// that would go over it is answered 503 `busy` (at least --max-body-mib).
    #[arg(long, default_value_t = serve_defaults::MAX_BUFFERED_MIB, value_name = "MIB", value_parser = mebibytes)]
    pub max_buffered_mib: f64,
}
