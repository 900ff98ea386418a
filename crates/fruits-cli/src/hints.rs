//! What to type next: the library's errors say what went wrong in terms any
//! caller understands (Python users see the same messages); the command line
//! adds the flag or command that addresses it.

use std::error::Error;

use fruits_identify::IdentifyError;
use fruits_ingest::IngestError;
use fruits_location::StorageError;
use fruits_model::ModelError;
use fruits_pipeline::PipelineError;
use fruits_store::StoreError;

/// A typed error found in a chain, wherever it was wrapped.
enum Found<'a> {
    Storage(&'a StorageError),
    Model(&'a ModelError),
    Store(&'a StoreError),
    Pipeline(&'a PipelineError),
    Identify(&'a IdentifyError),
}

/// The typed errors in `e`, looking through the library's wrapper variants
/// (which forward their inner error's message and source, so the inner
/// error is not a link of the chain itself).
fn find<'a>(e: &'a (dyn Error + 'static), out: &mut Vec<Found<'a>>) {
    if let Some(s) = e.downcast_ref::<StorageError>() {
        out.push(Found::Storage(s));
    } else if let Some(m) = e.downcast_ref::<ModelError>() {
        model(m, out);
    } else if let Some(s) = e.downcast_ref::<StoreError>() {
        store(s, out);
    } else if let Some(IngestError::List { error, .. }) = e.downcast_ref::<IngestError>() {
        out.push(Found::Storage(error));
    } else if let Some(p) = e.downcast_ref::<PipelineError>() {
        out.push(Found::Pipeline(p));
        match p {
            PipelineError::Storage(s) => out.push(Found::Storage(s)),
            PipelineError::Store(s) => store(s, out),
            PipelineError::Model(m) => model(m, out),
            PipelineError::Ingest(IngestError::List { error, .. }) => {
                out.push(Found::Storage(error))
            }
            _ => {}
        }
    } else if let Some(i) = e.downcast_ref::<IdentifyError>() {
        out.push(Found::Identify(i));
        match i {
            IdentifyError::Storage(s) => out.push(Found::Storage(s)),
            IdentifyError::Model(m) => model(m, out),
            _ => {}
        }
    }
}

fn model<'a>(m: &'a ModelError, out: &mut Vec<Found<'a>>) {
    out.push(Found::Model(m));
    if let ModelError::Storage(s) = m {
        out.push(Found::Storage(s));
    }
}

fn store<'a>(s: &'a StoreError, out: &mut Vec<Found<'a>>) {
    out.push(Found::Store(s));
    if let StoreError::Storage(e) = s {
        out.push(Found::Storage(e));
    }
}

/// The hints for an error, found anywhere in its chain of causes.
pub fn for_error(err: &anyhow::Error) -> Vec<String> {
    let mut found = Vec::new();
    for cause in err.chain() {
        find(cause, &mut found);
    }
    let mut hints: Vec<String> = Vec::new();
    for f in found {
        let hint = match f {
            Found::Storage(e) => e.region_refused().map(|(_, region)| {
                format!("pass --allow-region {region} if moving data there is intended")
            }),
            Found::Model(ModelError::ModelNotFound(_)) => Some(
                "pass --model PATH (or set FRUITS_MODEL), or the shared models' folder with --models-dir"
                    .into(),
            ),
            Found::Model(ModelError::NoSuchOutput { .. }) => {
                Some("choose the output holding the features with --feature-output".into())
            }
            Found::Store(StoreError::ModelMismatch { .. }) => {
                Some("pass another --out folder, or delete the old one to start over".into())
            }
            Found::Pipeline(PipelineError::ReducedWithoutPca { .. }) => Some(
                "say which PCA made it with --pca DIR, or train on the features output".into(),
            ),
            Found::Identify(IdentifyError::ImageModelNotFound { .. }) => Some(
                "pass the model with --image-model PATH, or its folder with --models-dir".into(),
            ),
            _ => None,
        };
        if let Some(hint) = hint
            && !hints.contains(&hint)
        {
            hints.push(hint);
        }
    }
    hints
}
