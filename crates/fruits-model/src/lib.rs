//! Loads an ONNX image model in ONNX Runtime and turns batches of NCHW tensors
//! into feature vectors.
//!
//! [`FeatureModel`] is built once (from a file, or from bytes when Spark
//! broadcasts the weights) and shared by reference: [`FeatureModel::run`] takes
//! `&self`, so an `Arc<FeatureModel>` serves many threads. The model's sha256 is
//! computed at load time so every result can say which weights made it.

pub mod catalog;
pub mod paths;
pub mod runtime;
mod source;

pub use paths::Precision;
pub use source::load_model;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use ort::session::{OutputSelector, RunOptions, Session, builder::GraphOptimizationLevel};
use ort::value::{TensorRef, ValueType};
use sha2::{Digest, Sha256};

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The ONNX Runtime shared library is not installed where we look.
    #[error("ONNX Runtime library not found (looked for {}); {hint}", display_paths(.searched))]
    RuntimeNotFound {
        /// Every candidate path tried.
        searched: Vec<PathBuf>,
        /// What to do about it.
        hint: String,
    },
    /// The library was found but could not be loaded.
    #[error("{0}")]
    RuntimeLoad(String),
    /// The model file does not exist.
    #[error("model file {} not found", .0.display())]
    ModelNotFound(PathBuf),
    /// The model could not be read from its storage (S3).
    #[error("cannot read the model: {0}")]
    Storage(#[from] fruits_location::StorageError),
    /// The model file exists but could not be read.
    #[error("cannot read model file {path}: {source}")]
    ModelRead {
        /// The model file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// ONNX Runtime rejected the model (not ONNX, unsupported operator, ...).
    #[error("ONNX Runtime cannot load the model {name}: {message}")]
    Load {
        /// Model path or label.
        name: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The model has no output with the requested name.
    #[error("the model has no output named {wanted:?}; its outputs are {available:?}")]
    NoSuchOutput {
        /// The requested output.
        wanted: String,
        /// The outputs the model has.
        available: Vec<String>,
    },
    /// The model's input is not a single 4-d float tensor.
    #[error("the model must take one float input of shape [N,3,H,W]; it takes {0}")]
    UnsupportedInput(String),
    /// The batch passed in does not match the model's input size.
    #[error("batch of {len} values is not a whole number of {per_image}-value images")]
    BadBatch {
        /// Values passed.
        len: usize,
        /// Values per image.
        per_image: usize,
    },
    /// Inference failed.
    #[error("inference failed: {0}")]
    Run(String),
    /// Sessions or threads out of the range any machine can use.
    #[error("{0}")]
    BadOptions(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to build a session.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Threads ONNX Runtime uses inside one operator (intra-op), per session;
    /// 0 lets it choose.
    pub intra_threads: usize,
    /// Sessions of the same model that run batches side by side (at least 1).
    /// Throughput work gives each core its own single-threaded session, since
    /// the threads of one session wait for each other at every operator (see
    /// [`ThreadLayout`]).
    pub sessions: usize,
    /// Whether idle intra-op threads spin. Spinning wastes cores that image
    /// decoding needs when both share a small machine.
    pub spinning: bool,
    /// Whether ONNX Runtime keeps freed tensors in its own arena. On by default:
    /// without it every batch maps and faults in fresh pages for its activations,
    /// measured here at 150 vs 240 images/s (batch 64). The arena keeps its
    /// high-water mark, which grows with the batch size; keep batches small.
    pub memory_arena: bool,
    /// The output holding the features.
    pub feature_output: String,
    /// An explicit runtime library, overriding the search in [`runtime::find_runtime`].
    pub runtime_library: Option<PathBuf>,
}

/// Most sessions, and most intra-op threads per session, anyone may ask for:
/// far beyond any machine's cores, and low enough that a typo cannot start
/// thousands of threads (each session also holds its own activations).
pub const MAX_THREADS: usize = 256;

impl ModelOptions {
    /// Refuses session and thread counts no machine can use (the bound every
    /// shell gets: CLI, Python, service).
    pub fn check(&self) -> Result<(), ModelError> {
        if self.sessions == 0 || self.sessions > MAX_THREADS || self.intra_threads > MAX_THREADS {
            return Err(ModelError::BadOptions(format!(
                "sessions must be 1 to {MAX_THREADS} and intra-op threads 0 (automatic) to \
                 {MAX_THREADS}; got {} sessions of {} threads",
                self.sessions, self.intra_threads
            )));
        }
        Ok(())
    }
}

/// The model output that holds the feature vector, unless told otherwise.
pub const DEFAULT_FEATURE_OUTPUT: &str = "features";

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            intra_threads: 0,
            sessions: 1,
            spinning: false,
            memory_arena: true,
            feature_output: DEFAULT_FEATURE_OUTPUT.into(),
            runtime_library: None,
        }
    }
}

/// Cores available to this process (at least 1): what the default
/// [`ThreadLayout`]s and decode threads are sized from.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How a process's cores are split between ONNX Runtime sessions and their
/// intra-op threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadLayout {
    /// Sessions running batches side by side.
    pub sessions: usize,
    /// Intra-op threads of each session.
    pub intra_threads: usize,
}

/// The most sessions [`ThreadLayout::throughput`] makes: each holds its own
/// copy of the weights and activations.
pub const MAX_DEFAULT_SESSIONS: usize = 8;

impl ThreadLayout {
    /// For throughput (featurising many photos): one single-threaded session
    /// per core, up to [`MAX_DEFAULT_SESSIONS`], the cores left over shared
    /// out as intra-op threads. With batches of 4, the two intra-op threads of
    /// one session spent 7.5% of the CPU spin-waiting for each other at
    /// operator ends (profiled); two sessions of one thread each on alternate
    /// batches have nothing to wait for (measured in docs/performance.md).
    pub fn throughput(cores: usize) -> ThreadLayout {
        let cores = cores.max(1);
        let sessions = cores.min(MAX_DEFAULT_SESSIONS);
        ThreadLayout {
            sessions,
            intra_threads: cores / sessions,
        }
    }

    /// For latency (one photo at a time): one session using every core.
    pub fn latency(cores: usize) -> ThreadLayout {
        ThreadLayout {
            sessions: 1,
            intra_threads: cores.max(1),
        }
    }

    /// This layout with the user's choices: both given are taken as they
    /// are; one given fills the `cores` with the other (`intra_threads` equal
    /// to the cores means one session, as before sessions existed).
    pub fn with_overrides(
        self,
        sessions: Option<usize>,
        intra_threads: Option<usize>,
        cores: usize,
    ) -> ThreadLayout {
        let fill = |n: usize| (cores / n.max(1)).max(1);
        let (sessions, intra_threads) = match (sessions, intra_threads) {
            (Some(s), Some(t)) => (s, t),
            (Some(s), None) => (s, fill(s)),
            (None, Some(t)) => (fill(t), t),
            (None, None) => (self.sessions, self.intra_threads),
        };
        ThreadLayout {
            sessions: sessions.max(1),
            intra_threads: intra_threads.max(1),
        }
    }
}

/// Identity of a model file, recorded with every result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// Where it was loaded from (or a label when loaded from bytes).
    pub source: String,
    /// Hex sha256 of the model file's bytes.
    pub sha256: String,
    /// Name of the single input.
    pub input_name: String,
    /// Side of the square input (224), from the model's declared input shape.
    pub input_size: u32,
    /// Name of the feature output.
    pub feature_output: String,
    /// Length of one feature vector (1280 for MobileNetV2).
    pub feature_dim: usize,
    /// Every output name, in model order.
    pub outputs: Vec<String>,
}

/// A loaded model whose feature output can be computed for batches of images.
pub struct FeatureModel {
    // `ort` sessions need `&mut` to run; the locks let one loaded model serve
    // several threads, which is what the pipeline and the HTTP service need.
    // A call takes whichever session is free.
    sessions: Vec<Mutex<Session>>,
    // Where the next call starts looking for a free session, so calls spread
    // over the sessions instead of all queueing on the first.
    next: AtomicUsize,
    info: ModelInfo,
}

impl std::fmt::Debug for FeatureModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureModel")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl FeatureModel {
    /// Loads the model at `path`.
    pub fn load(path: &Path, options: &ModelOptions) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::ModelNotFound(path.to_path_buf()));
        }
        let bytes = std::fs::read(path).map_err(|source| ModelError::ModelRead {
            path: path.to_path_buf(),
            source,
        })?;
        // Recorded absolute, so outputs and bundles made here find it again
        // from any working directory.
        let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Self::from_bytes(&bytes, &source.display().to_string(), options)
    }

    /// Builds the model from its bytes, as an executor does with broadcast weights.
    pub fn from_bytes(
        bytes: &[u8],
        source: &str,
        options: &ModelOptions,
    ) -> Result<Self, ModelError> {
        options.check()?;
        let env = runtime::environment(options.runtime_library.as_deref())?;
        let load_err = |e: ort::Error| ModelError::Load {
            name: source.to_string(),
            message: e.to_string(),
        };
        let build = || -> Result<Session, ModelError> {
            let mut builder = Session::builder(&env)
                .map_err(load_err)?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(|e| load_err(e.into()))?
                .with_intra_op_spinning(options.spinning)
                .map_err(|e| load_err(e.into()))?
                .with_execution_providers([ort::ep::CPU::default()
                    .with_arena_allocator(options.memory_arena)
                    .build()])
                .map_err(|e| load_err(e.into()))?;
            if options.intra_threads > 0 {
                builder = builder
                    .with_intra_threads(options.intra_threads)
                    .map_err(|e| load_err(e.into()))?;
            }
            builder.commit_from_memory(bytes).map_err(load_err)
        };
        let sessions = (0..options.sessions.max(1))
            .map(|_| build())
            .collect::<Result<Vec<_>, _>>()?;
        let session = &sessions[0];

        let inputs = session.inputs();
        let (input_name, input_size) = match inputs {
            [only] => match only.dtype() {
                ValueType::Tensor { shape, .. } if shape.len() == 4 => {
                    let side = shape[3];
                    let size = if side > 0 { side as u32 } else { 224 };
                    (only.name().to_string(), size)
                }
                other => return Err(ModelError::UnsupportedInput(format!("{other:?}"))),
            },
            many => {
                return Err(ModelError::UnsupportedInput(format!(
                    "{} inputs",
                    many.len()
                )));
            }
        };
        let outputs: Vec<String> = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let feature_outlet = session
            .outputs()
            .iter()
            .find(|o| o.name() == options.feature_output)
            .ok_or_else(|| ModelError::NoSuchOutput {
                wanted: options.feature_output.clone(),
                available: outputs.clone(),
            })?;
        let feature_dim = match feature_outlet.dtype() {
            ValueType::Tensor { shape, .. } => {
                shape.iter().skip(1).product::<i64>().max(0) as usize
            }
            _ => 0,
        };
        let info = ModelInfo {
            source: source.to_string(),
            sha256: sha256_hex(bytes),
            input_name,
            input_size,
            feature_output: options.feature_output.clone(),
            feature_dim,
            outputs,
        };
        Ok(FeatureModel {
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            info,
        })
    }

    /// The model's identity and shapes.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// How many sessions run batches side by side: callers that want
    /// throughput run this many batches at once.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// A free session, or the next one in turn when all are busy.
    fn session(&self) -> Result<MutexGuard<'_, Session>, ModelError> {
        let poisoned = || ModelError::Run("a previous inference panicked".into());
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        for i in 0..self.sessions.len() {
            match self.sessions[(start + i) % self.sessions.len()].try_lock() {
                Ok(guard) => return Ok(guard),
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
            }
        }
        self.sessions[start].lock().map_err(|_| poisoned())
    }

    /// Values in one image's input tensor (3 x size x size).
    pub fn input_len(&self) -> usize {
        3 * self.info.input_size as usize * self.info.input_size as usize
    }

    /// Runs a batch of images laid out one after another (NCHW) and returns the
    /// feature vectors, `feature_dim` values per image.
    pub fn run(&self, batch: &[f32]) -> Result<Vec<f32>, ModelError> {
        let name = self.info.feature_output.clone();
        Ok(self.run_outputs(batch, &[name.as_str()])?.remove(0))
    }

    /// Runs a batch and returns the named outputs, each flattened (row-major).
    pub fn run_outputs(&self, batch: &[f32], names: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let per_image = self.input_len();
        if batch.is_empty() || !batch.len().is_multiple_of(per_image) {
            return Err(ModelError::BadBatch {
                len: batch.len(),
                per_image,
            });
        }
        for name in names {
            if !self.info.outputs.iter().any(|o| o == name) {
                return Err(ModelError::NoSuchOutput {
                    wanted: name.to_string(),
                    available: self.info.outputs.clone(),
                });
            }
        }
        let n = batch.len() / per_image;
        let side = self.info.input_size as usize;
        let run_err = |e: ort::Error| ModelError::Run(e.to_string());
        let input = TensorRef::from_array_view(([n, 3, side, side], batch)).map_err(run_err)?;
        // Ask only for the outputs we need: ONNX Runtime then skips the classifier head.
        let selector = names
            .iter()
            .fold(OutputSelector::no_default(), |sel, name| sel.with(*name));
        let options = RunOptions::new().map_err(run_err)?.with_outputs(selector);
        let mut session = self.session()?;
        let outputs = session
            .run_with_options(
                ort::inputs![self.info.input_name.as_str() => input],
                &options,
            )
            .map_err(run_err)?;
        names
            .iter()
            .map(|name| {
                let (_, data) = outputs[*name]
                    .try_extract_tensor::<f32>()
                    .map_err(run_err)?;
                Ok(data.to_vec())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_gives_each_core_a_session_and_latency_one_session_all_cores() {
        let t = |cores| ThreadLayout::throughput(cores);
        assert_eq!((t(1).sessions, t(1).intra_threads), (1, 1));
        assert_eq!((t(2).sessions, t(2).intra_threads), (2, 1));
        assert_eq!((t(32).sessions, t(32).intra_threads), (8, 4));
        assert_eq!((t(0).sessions, t(0).intra_threads), (1, 1));
        let l = ThreadLayout::latency(4);
        assert_eq!((l.sessions, l.intra_threads), (1, 4));
    }

    #[test]
    fn a_choice_given_fills_the_cores_with_the_other() {
        let base = ThreadLayout::throughput(4);
        let pick = |s, t| {
            let l = base.with_overrides(s, t, 4);
            (l.sessions, l.intra_threads)
        };
        assert_eq!(pick(None, None), (4, 1));
        assert_eq!(
            pick(None, Some(4)),
            (1, 4),
            "all cores to one session, as before"
        );
        assert_eq!(pick(Some(2), None), (2, 2));
        assert_eq!(pick(Some(3), Some(3)), (3, 3), "both given: as given");
        assert_eq!(pick(None, Some(8)), (1, 8));
    }
}
