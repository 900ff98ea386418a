//! Batch work over whole collections, on one machine or one Spark partition:
//! featurise photos into a resumable output ([`featurize`]), fit and apply a
//! PCA over an output ([`reduce`]), train and evaluate classifiers over outputs
//! ([`classify`], [`report`]), and the whole single-machine job ([`run`]).
//!
//! Identifying one photo online lives in `fruits-identify`; this crate is for
//! datasets.

pub mod augment;
pub mod classify;
pub mod featurize;
pub mod frames;
pub mod kinds;
pub mod plots;
pub mod reduce;
pub mod report;
pub mod run;

pub use featurize::{
    FeaturizeConfig, NoProgress, PartitionResult, Photos, Progress, Summary, Tables, feature_spec,
    featurize, featurize_entries, featurize_in_memory, featurize_partition,
};

use fruits_store::{StorageError, StoreError};

/// A failure that stops the whole run (as opposed to one bad image, which is
/// recorded in the errors table).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The input could not be listed.
    #[error(transparent)]
    Ingest(#[from] fruits_ingest::IngestError),
    /// The output could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The input could not be read (the service is down, access was denied).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Inference failed for a whole batch: a model or runtime problem, not an input one.
    #[error(transparent)]
    Model(#[from] fruits_model::ModelError),
    /// PCA statistics, fitting or the model file failed.
    #[error(transparent)]
    Pca(#[from] fruits_pca::PcaError),
    /// Training a classifier failed (or a metric could not be computed).
    #[error(transparent)]
    Learn(#[from] fruits_learn::LearnError),
    /// A classifier bundle could not be read, written or applied.
    #[error(transparent)]
    Bundle(#[from] fruits_bundle::BundleError),
    /// The fruit catalogue does not describe the classifier's classes.
    #[error(transparent)]
    Catalogue(#[from] fruits_catalogue::CatalogueError),
    /// A chart could not be drawn (no font, say): the results themselves are fine.
    #[error(transparent)]
    Report(#[from] fruits_report::ReportError),
    /// Nothing under the input looks like a photo.
    #[error("found no images under {input} (looked for {} files, any case)", fruits_ingest::IMAGE_EXTENSIONS.join(", "))]
    NoImages {
        /// The input root.
        input: String,
    },
    /// A dataset lacks a column this step reads.
    #[error("{dataset} has no `{column}` column")]
    MissingColumn {
        /// The dataset or part.
        dataset: String,
        /// The column.
        column: &'static str,
    },
    /// A dataset's vector column has another type than a list of float32.
    #[error("{dataset}: column `{column}` is {found}, expected a fixed-size list of float32")]
    WrongColumnType {
        /// The dataset or part.
        dataset: String,
        /// The column.
        column: &'static str,
        /// Its type.
        found: String,
    },
    /// No rows (in the split asked for).
    #[error(
        "{dataset} has no rows{}: {}",
        split.as_ref().map(|s| format!(" in split {s:?}")).unwrap_or_default(),
        describe_splits(splits_seen)
    )]
    NoRows {
        /// The dataset.
        dataset: String,
        /// The split asked for.
        split: Option<String>,
        /// The splits it does have ("" for rows outside a split folder).
        splits_seen: Vec<String>,
    },
    /// Too few rows to fit a PCA.
    #[error("{dataset} has {rows} featurised row(s); PCA needs at least 2")]
    TooFewRows {
        /// The dataset.
        dataset: String,
        /// Rows it has.
        rows: u64,
    },
    /// Parts of one dataset hold vectors of different lengths.
    #[error("the parts of {dataset} mix vectors of {first} and {now} values")]
    MixedDimensions {
        /// The dataset.
        dataset: String,
        /// The first length seen.
        first: usize,
        /// A different one.
        now: usize,
    },
    /// Vectors of another length than the model (PCA) takes.
    #[error("{what}: vectors have {got} values but the PCA takes {expected}")]
    WrongDimension {
        /// The part or dataset.
        what: String,
        /// Their length.
        got: usize,
        /// The PCA's.
        expected: usize,
    },
    /// A PCA fitted on features of one image model applied to another's.
    #[error(
        "the PCA was fitted on features of image model {pca_model} but {dataset} holds features of {data_model}"
    )]
    PcaOfAnotherModel {
        /// The dataset.
        dataset: String,
        /// The model the PCA's features came from.
        pca_model: String,
        /// The model of the dataset's features.
        data_model: String,
    },
    /// A reduced output given where its PCA is needed, and no PCA found.
    #[error(
        "{dataset} is a reduced output: training on it needs the PCA that made it (none found beside it)"
    )]
    ReducedWithoutPca {
        /// The dataset.
        dataset: String,
    },
    /// A PCA given for rows another PCA reduced.
    #[error("{dataset} was reduced by PCA {reduced_by} but the PCA given is {given}")]
    PcaMismatch {
        /// The dataset.
        dataset: String,
        /// The fingerprint recorded with the rows.
        reduced_by: String,
        /// The fingerprint of the PCA given.
        given: String,
    },
    /// A PCA given for rows that are features, not reduced ones.
    #[error("{dataset} holds features, not reduced rows: a PCA is fitted on them, not given")]
    NotReduced {
        /// The dataset.
        dataset: String,
    },
    /// None of a dataset's labels is a class the classifier knows.
    #[error("none of the labels of {dataset} is a class the classifier knows")]
    NoKnownLabels {
        /// The dataset.
        dataset: String,
    },
    /// A projection plot needs two components.
    #[error("a projection plot needs at least 2 components; the PCA keeps {k}")]
    PlotNeedsTwoComponents {
        /// Components kept.
        k: usize,
    },
    /// The output would be written inside the input it reads.
    #[error(
        "the output {output} is inside the input {input}: a later run would read its own results \
         (copies, plots) as photos; write it elsewhere"
    )]
    OutputInsideInput {
        /// The input.
        input: String,
        /// The output.
        output: String,
    },
    /// Resuming an output with other augmentation settings than it was begun with.
    #[error(
        "{dir} was featurised with {existing}, not {current}: resuming would mix two sets of copies; \
         use the same --augment and --augment-seed, or another output"
    )]
    AugmentationChanged {
        /// The output.
        dir: String,
        /// What it was made with.
        existing: String,
        /// What this run asks for.
        current: String,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A worker thread died, or Arrow could not build a batch (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe_splits(splits: &[String]) -> String {
    if splits.is_empty() {
        return "it has no rows".to_string();
    }
    let shown: Vec<String> = splits
        .iter()
        .map(|s| {
            if s.is_empty() {
                "\"\" (no split folder)".to_string()
            } else {
                format!("{s:?}")
            }
        })
        .collect();
    format!("its splits are {}", shown.join(", "))
}
