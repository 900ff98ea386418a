//! A trained classifier on disk and applying it: the bundle format
//! (`classifier.json`, its PCA, the feature contract it takes), its version
//! and the migration of older bundles, and features in, probabilities out.

mod classifier;

pub use classifier::*;
pub use fruits_contract::FeatureSpec;

use fruits_learn::LearnError;

/// What can go wrong reading, writing or applying a classifier bundle.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The softmax model could not be applied (or trained, for callers that
    /// build a bundle).
    #[error(transparent)]
    Learn(#[from] LearnError),
    /// NaN or infinite values in the rows given to a classifier.
    #[error(
        "the data holds NaN or infinite values (row {row} of {rows}): those rows are damaged \
         (featurise their photos again); the classifier is not at fault"
    )]
    NonFiniteInput {
        /// The first such row, from 0.
        row: usize,
        /// Rows given.
        rows: usize,
    },
    /// The data's vectors come from another image model than the classifier's.
    #[error(
        "the data holds features of image model {data} but the classifier was trained on \
         features of {expected} ({source_hint})"
    )]
    WrongImageModel {
        /// sha256 recorded with the data.
        data: String,
        /// sha256 the classifier expects.
        expected: String,
        /// Where the classifier's model was loaded from.
        source_hint: String,
    },
    /// The data's vectors were made otherwise (output, length, preprocessing).
    #[error("the data's features ({data}) are not made the way the classifier's were ({expected})")]
    WrongFeatures {
        /// How the data's were made.
        data: String,
        /// How the classifier's were made.
        expected: String,
    },
    /// The classifier uses colour descriptors the data does not have.
    #[error(
        "the classifier uses {expected} colour values per photo but the data has {data}: \
         featurise the photos again with this version (it stores the colour beside the features)"
    )]
    NoColour {
        /// Colour values the classifier takes.
        expected: usize,
        /// Colour values per row in the data.
        data: usize,
    },
    /// Reduced rows from another PCA than the classifier's own.
    #[error(
        "the data was reduced by PCA {data} but the classifier {}; give it the features output \
         instead (the classifier applies its own PCA)",
        expected.as_ref().map(|f| format!("was trained behind PCA {f}")).unwrap_or_else(|| "takes raw features".into())
    )]
    WrongPca {
        /// The fingerprint recorded with the data.
        data: String,
        /// The classifier's PCA fingerprint, if it has one.
        expected: Option<String>,
    },
    /// A classifier file is unreadable or inconsistent.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The bundled PCA could not be read, written or applied.
    #[error(transparent)]
    Pca(#[from] fruits_pca::PcaError),
    /// Reading or writing the bundle failed.
    #[error(transparent)]
    Storage(#[from] fruits_location::StorageError),
}
