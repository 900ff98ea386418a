//! The one place where the core's errors become Python exceptions (the pattern
//! of Polars' `From<PyPolarsErr> for PyErr`).
//!
//! The exception classes live in Python (`fruits/errors.py`) so they can also
//! derive from the builtin they mean (`AccessDenied` is a `PermissionError`,
//! `InputError` a `ValueError`): code that catches `OSError` keeps working, and
//! code that wants to can catch `fruits.RegionNotAllowed` precisely.

use fruits_location::StorageError;
use fruits_pipeline::PipelineError;
use fruits_store::StoreError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The exception classes of `fruits.errors` the core's errors map to. Every
/// variant of every core error enum is matched below without a catch-all arm,
/// so a new variant does not compile until it is given a class; the classes
/// are looked up once, when the extension is imported, and the tests check
/// that each exists in `fruits.errors` and is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Anything else the core reports.
    FruitsError,
    /// Bad data or arguments (a `ValueError`).
    InputError,
    /// The image model cannot be loaded or run.
    ModelError,
    /// Data, PCA or classifier made with another model (a `ValueError`).
    ModelMismatch,
    /// Reading or writing a folder or S3 (an `OSError`).
    StorageError,
    /// A file, object or bucket that does not exist.
    NotFound,
    /// The credentials lack a permission.
    AccessDenied,
    /// No credentials, or refused ones.
    CredentialsError,
    /// A bucket outside the allowed regions.
    RegionNotAllowed,
    /// The service did not answer after retrying.
    Unreachable,
}

impl Class {
    /// Every class, in `fruits.errors`' order.
    pub const ALL: [Class; 10] = [
        Class::FruitsError,
        Class::InputError,
        Class::ModelError,
        Class::ModelMismatch,
        Class::StorageError,
        Class::NotFound,
        Class::AccessDenied,
        Class::CredentialsError,
        Class::RegionNotAllowed,
        Class::Unreachable,
    ];

    /// Its name in `fruits.errors`.
    pub fn name(self) -> &'static str {
        match self {
            Class::FruitsError => "FruitsError",
            Class::InputError => "InputError",
            Class::ModelError => "ModelError",
            Class::ModelMismatch => "ModelMismatch",
            Class::StorageError => "StorageError",
            Class::NotFound => "NotFound",
            Class::AccessDenied => "AccessDenied",
            Class::CredentialsError => "CredentialsError",
            Class::RegionNotAllowed => "RegionNotAllowed",
            Class::Unreachable => "Unreachable",
        }
    }
}

/// The classes, imported from `fruits.errors` once (at the extension's import).
static CLASSES: PyOnceLock<Vec<Py<PyAny>>> = PyOnceLock::new();

/// Imports `fruits.errors` and keeps every class of [`Class::ALL`]; fails (and
/// so does the extension's import) when one is missing.
pub fn init(py: Python<'_>) -> PyResult<()> {
    let module = py.import("fruits.errors")?;
    let classes = Class::ALL
        .iter()
        .map(|c| module.getattr(c.name()).map(Bound::unbind))
        .collect::<PyResult<Vec<_>>>()?;
    let _ = CLASSES.set(py, classes);
    Ok(())
}

/// A core error on its way to Python: its class in `fruits.errors`, and the
/// core's message.
#[derive(Debug)]
pub struct Error {
    class: Class,
    message: String,
    /// A Python error raised while calling back into Python: passed through.
    python: Option<PyErr>,
}

impl Error {
    fn new(class: Class, message: impl std::fmt::Display) -> Self {
        Error {
            class,
            message: message.to_string(),
            python: None,
        }
    }

    /// Bad data or arguments: `fruits.InputError` (a `ValueError`).
    pub fn input(message: impl std::fmt::Display) -> Self {
        Error::new(Class::InputError, message)
    }
}

/// The class of a storage error.
fn storage_class(e: &StorageError) -> Class {
    use StorageError as S;
    match e {
        S::RegionNotAllowed { .. } | S::RegionUnknown { .. } => Class::RegionNotAllowed,
        S::PermissionDenied { .. } => Class::AccessDenied,
        S::NotWritable { reason, .. } => storage_class(reason),
        S::Credentials { .. } | S::NoCredentials { .. } => Class::CredentialsError,
        S::NotFound { .. } | S::NoSuchBucket { .. } => Class::NotFound,
        S::Unreachable { .. } => Class::Unreachable,
        S::BadUrl { .. } | S::NotAFile { .. } | S::NonUtf8Path(_) => Class::InputError,
        S::Local { .. } | S::AlreadyExists { .. } | S::Store { .. } | S::Internal(_) => {
            Class::StorageError
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::new(storage_class(&e), e)
    }
}

/// The class of an output error.
fn store_class(e: &StoreError) -> Class {
    match e {
        StoreError::Storage(s) => storage_class(s),
        StoreError::Manifest(_) | StoreError::Schema { .. } => Class::InputError,
        StoreError::ModelMismatch { .. } => Class::ModelMismatch,
        // Another writer holds the output: a storage condition.
        StoreError::Locked { .. } => Class::StorageError,
        StoreError::Parquet { .. } | StoreError::Arrow(_) => Class::FruitsError,
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::new(store_class(&e), e)
    }
}

/// The class of an image model error.
fn model_class(e: &fruits_model::ModelError) -> Class {
    use fruits_model::ModelError as M;
    match e {
        M::Storage(s) => storage_class(s),
        M::BadOptions(_) => Class::InputError,
        M::ModelNotFound(_) => Class::NotFound,
        M::RuntimeNotFound { .. }
        | M::RuntimeLoad(_)
        | M::ModelRead { .. }
        | M::Load { .. }
        | M::NoSuchOutput { .. }
        | M::UnsupportedInput(_)
        | M::BadBatch { .. }
        | M::Run(_) => Class::ModelError,
    }
}

impl From<fruits_model::ModelError> for Error {
    fn from(e: fruits_model::ModelError) -> Self {
        Error::new(model_class(&e), e)
    }
}

/// The class of a PCA error.
fn pca_class(e: &fruits_pca::PcaError) -> Class {
    use fruits_pca::PcaError as P;
    match e {
        P::Storage { source, .. } => storage_class(source),
        P::NoConvergence => Class::FruitsError,
        P::TooFewRows(_)
        | P::DimensionMismatch { .. }
        | P::NotFinite { .. }
        | P::BadVariance(_)
        | P::BadK { .. }
        | P::BadSummary
        | P::File { .. } => Class::InputError,
    }
}

impl From<fruits_pca::PcaError> for Error {
    fn from(e: fruits_pca::PcaError) -> Self {
        Error::new(pca_class(&e), e)
    }
}

/// The class of a learning error.
fn learn_class(e: &fruits_learn::LearnError) -> Class {
    use fruits_learn::LearnError as L;
    match e {
        // Stopped by a cancel flag (Ctrl-C in the CLI): not the caller's input.
        L::Cancelled | L::NonFinite | L::NonFiniteOutput => Class::FruitsError,
        L::NotRows { .. }
        | L::LabelCount { .. }
        | L::TooFewClasses(_)
        | L::LabelOutOfRange { .. }
        | L::BadC(_)
        | L::BadFolds { .. }
        | L::EmptyGrid
        | L::Revenue(_) => Class::InputError,
    }
}

impl From<fruits_learn::LearnError> for Error {
    fn from(e: fruits_learn::LearnError) -> Self {
        Error::new(learn_class(&e), e)
    }
}

/// The class of a classifier bundle error.
fn bundle_class(e: &fruits_bundle::BundleError) -> Class {
    use fruits_bundle::BundleError as B;
    match e {
        B::Learn(l) => learn_class(l),
        B::Storage(s) => storage_class(s),
        B::Pca(p) => pca_class(p),
        B::WrongImageModel { .. }
        | B::WrongFeatures { .. }
        | B::WrongPca { .. }
        | B::NoColour { .. } => Class::ModelMismatch,
        B::NonFiniteInput { .. } | B::File { .. } => Class::InputError,
    }
}

impl From<fruits_bundle::BundleError> for Error {
    fn from(e: fruits_bundle::BundleError) -> Self {
        Error::new(bundle_class(&e), e)
    }
}

impl From<fruits_catalogue::CatalogueError> for Error {
    fn from(e: fruits_catalogue::CatalogueError) -> Self {
        Error::input(e)
    }
}

impl From<fruits_ingest::IngestError> for Error {
    fn from(e: fruits_ingest::IngestError) -> Self {
        let class = match &e {
            fruits_ingest::IngestError::List { error, .. } => storage_class(error),
        };
        Error::new(class, e)
    }
}

impl From<PipelineError> for Error {
    fn from(e: PipelineError) -> Self {
        use PipelineError as P;
        match e {
            P::Ingest(e) => e.into(),
            P::Store(e) => e.into(),
            P::Storage(e) => e.into(),
            P::Model(e) => e.into(),
            P::Pca(e) => e.into(),
            P::Learn(e) => e.into(),
            P::Bundle(e) => e.into(),
            P::Catalogue(e) => e.into(),
            e @ (P::Report(_) | P::Internal(_)) => Error::new(Class::FruitsError, e),
            e @ (P::PcaOfAnotherModel { .. } | P::PcaMismatch { .. }) => {
                Error::new(Class::ModelMismatch, e)
            }
            e @ (P::NoImages { .. }
            | P::MissingColumn { .. }
            | P::WrongColumnType { .. }
            | P::NoRows { .. }
            | P::TooFewRows { .. }
            | P::MixedDimensions { .. }
            | P::WrongDimension { .. }
            | P::ReducedWithoutPca { .. }
            | P::NotReduced { .. }
            | P::NoKnownLabels { .. }
            | P::PlotNeedsTwoComponents { .. }
            | P::OutputInsideInput { .. }
            | P::AugmentationChanged { .. }
            | P::Config(_)) => Error::input(e),
        }
    }
}

impl From<fruits_identify::IdentifyError> for Error {
    fn from(e: fruits_identify::IdentifyError) -> Self {
        use fruits_identify::IdentifyError as I;
        match e {
            I::Bundle(e) => e.into(),
            I::Catalogue(e) => e.into(),
            I::Model(e) => e.into(),
            I::Storage(e) => e.into(),
            e @ (I::WrongImageModel { .. }
            | I::WrongOutput { .. }
            | I::WrongPreprocessing { .. }) => Error::new(Class::ModelMismatch, e),
            e @ I::BadTop(_) => Error::input(e),
            e @ I::ImageModelNotFound { .. } => Error::new(Class::NotFound, e),
            e @ I::Internal(_) => Error::new(Class::FruitsError, e),
        }
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error {
            class: Class::FruitsError,
            message: String::new(),
            python: Some(e),
        }
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        if let Some(python) = e.python {
            return python;
        }
        Python::attach(|py| {
            let index = Class::ALL.iter().position(|c| *c == e.class).unwrap_or(0);
            match CLASSES.get(py).and_then(|classes| classes.get(index)) {
                Some(class) => match class.bind(py).call1((e.message.clone(),)) {
                    Ok(instance) => PyErr::from_value(instance),
                    Err(err) => err,
                },
                // Only before the module's init ran (it fails without them).
                None => PyRuntimeError::new_err(e.message),
            }
        })
    }
}

/// What the bindings' functions return.
pub type Result<T> = std::result::Result<T, Error>;
