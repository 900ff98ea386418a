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

/// A core error on its way to Python: the name of its class in
/// `fruits.errors`, and the core's message.
#[derive(Debug)]
pub struct Error {
    class: &'static str,
    message: String,
    /// A Python error raised while calling back into Python: passed through.
    python: Option<PyErr>,
}

impl Error {
    fn new(class: &'static str, message: impl std::fmt::Display) -> Self {
        Error {
            class,
            message: message.to_string(),
            python: None,
        }
    }

    /// Bad data or arguments: `fruits.InputError` (a `ValueError`).
    pub fn input(message: impl std::fmt::Display) -> Self {
        Error::new("InputError", message)
    }
}

/// The class of a storage error.
fn storage_class(e: &StorageError) -> &'static str {
    match e {
        StorageError::RegionNotAllowed { .. } | StorageError::RegionUnknown { .. } => {
            "RegionNotAllowed"
        }
        StorageError::PermissionDenied { .. } => "AccessDenied",
        StorageError::NotWritable { reason, .. } => storage_class(reason),
        StorageError::Credentials { .. } | StorageError::NoCredentials { .. } => "CredentialsError",
        StorageError::NotFound { .. } | StorageError::NoSuchBucket { .. } => "NotFound",
        StorageError::Unreachable { .. } => "Unreachable",
        StorageError::BadUrl { .. } | StorageError::NotAFile { .. } => "InputError",
        _ => "StorageError",
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::new(storage_class(&e), e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let class = match &e {
            StoreError::Storage(s) => storage_class(s),
            StoreError::Manifest(_) | StoreError::Schema { .. } => "InputError",
            StoreError::ModelMismatch { .. } => "ModelMismatch",
            _ => "FruitsError",
        };
        Error::new(class, e)
    }
}

impl From<fruits_model::ModelError> for Error {
    fn from(e: fruits_model::ModelError) -> Self {
        let class = match &e {
            fruits_model::ModelError::Storage(s) => storage_class(s),
            fruits_model::ModelError::BadOptions(_) => "InputError",
            _ => "ModelError",
        };
        Error::new(class, e)
    }
}

impl From<fruits_pca::PcaError> for Error {
    fn from(e: fruits_pca::PcaError) -> Self {
        let class = match &e {
            fruits_pca::PcaError::Storage { source, .. } => storage_class(source),
            fruits_pca::PcaError::NoConvergence => "FruitsError",
            _ => "InputError",
        };
        Error::new(class, e)
    }
}

impl From<fruits_classify::ClassifyError> for Error {
    fn from(e: fruits_classify::ClassifyError) -> Self {
        use fruits_classify::ClassifyError as C;
        let class = match &e {
            C::Storage(s) => storage_class(s),
            C::WrongImageModel { .. }
            | C::WrongFeatures { .. }
            | C::WrongPca { .. }
            | C::NoColour { .. } => "ModelMismatch",
            _ => "InputError",
        };
        Error::new(class, e)
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
        match e {
            PipelineError::Ingest(e) => e.into(),
            PipelineError::Store(e) => e.into(),
            PipelineError::Storage(e) => e.into(),
            PipelineError::Model(e) => e.into(),
            PipelineError::Pca(e) => e.into(),
            PipelineError::Classify(e) => e.into(),
            e @ (PipelineError::Report(_) | PipelineError::Internal(_)) => {
                Error::new("FruitsError", e)
            }
            e @ (PipelineError::PcaOfAnotherModel { .. } | PipelineError::PcaMismatch { .. }) => {
                Error::new("ModelMismatch", e)
            }
            e => Error::input(e),
        }
    }
}

impl From<fruits_identify::IdentifyError> for Error {
    fn from(e: fruits_identify::IdentifyError) -> Self {
        use fruits_identify::IdentifyError as I;
        match e {
            I::Classify(e) => e.into(),
            I::Model(e) => e.into(),
            e @ (I::WrongImageModel { .. }
            | I::WrongOutput { .. }
            | I::WrongPreprocessing { .. }) => Error::new("ModelMismatch", e),
            e @ I::BadTop(_) => Error::input(e),
            e => Error::new("ModelError", e),
        }
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error {
            class: "FruitsError",
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
            let class = py.import("fruits.errors").and_then(|m| m.getattr(e.class));
            match class {
                Ok(class) => match class.call1((e.message.clone(),)) {
                    Ok(instance) => PyErr::from_value(instance),
                    Err(err) => err,
                },
                // The package is always there beside the extension; if not,
                // still raise with the core's message.
                Err(_) => PyRuntimeError::new_err(e.message),
            }
        })
    }
}

/// What the bindings' functions return.
pub type Result<T> = std::result::Result<T, Error>;
