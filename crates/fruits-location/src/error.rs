//! Storage errors a person can act on: which bucket, which permission, which region.
//!
//! Errors are classified from object_store's error variants (which carry the
//! HTTP status: 403, 404, 412, ...), from the transport error kinds in their
//! source chain (connection refused, timeouts), and from the `<Code>` of S3's
//! XML error body (parsed with quick-xml). Two places read text, and say so:
//! object_store keeps a failed response's body only inside its error's
//! message, so the XML document is cut out of that message (`s3_body`);
//! and S3-compatible servers that answer every credential problem with
//! `AccessDenied` (Garage) are told apart by two phrases of their message
//! (`S3ErrorBody::credential_problem`), which only refines the
//! `AccessDenied` class and never turns another code into one.

use std::path::{Path, PathBuf};

use object_store::client::{HttpError, HttpErrorKind};
use serde::Deserialize;

/// An operation on a location, named the way IAM names the S3 permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Reading an object (`s3:GetObject`).
    Get,
    /// Writing an object (`s3:PutObject`).
    Put,
    /// Deleting an object (`s3:DeleteObject`).
    Delete,
    /// Listing a prefix (`s3:ListBucket`).
    List,
    /// Asking a bucket's region (`s3:GetBucketLocation`).
    Locate,
    /// Creating a local folder (no IAM permission).
    CreateFolder,
}

impl Action {
    /// The IAM permission this action needs on S3, e.g. `s3:PutObject`.
    pub fn iam_permission(self) -> &'static str {
        match self {
            Action::Get => "s3:GetObject",
            Action::Put => "s3:PutObject",
            Action::Delete => "s3:DeleteObject",
            Action::List => "s3:ListBucket",
            Action::Locate => "s3:GetBucketLocation",
            Action::CreateFolder => "(local folder)",
        }
    }

    /// What we were doing, for messages: "cannot read", "cannot write", ...
    pub fn failed(self) -> &'static str {
        match self {
            Action::Get => "cannot read",
            Action::Put => "cannot write",
            Action::Delete => "cannot delete",
            Action::List => "cannot list",
            Action::Locate => "cannot ask the region of",
            Action::CreateFolder => "cannot create folder",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.failed())
    }
}

/// Which part of a set of credentials the service refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialProblem {
    /// The access key id is not known to the service.
    UnknownKeyId,
    /// The secret does not match the key id.
    SignatureMismatch,
    /// The session token has expired.
    ExpiredToken,
    /// The session token is not valid.
    InvalidToken,
}

impl std::fmt::Display for CredentialProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CredentialProblem::UnknownKeyId => "the access key id is unknown to the service",
            CredentialProblem::SignatureMismatch => {
                "the secret access key does not match the access key id (signature mismatch)"
            }
            CredentialProblem::ExpiredToken => {
                "the session token has expired; refresh the credentials"
            }
            CredentialProblem::InvalidToken => "the session token is not valid",
        })
    }
}

/// What can go wrong reaching data.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The location string is not a path or an s3:// URL we can use.
    #[error("{url} is not a usable location: {reason}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file, object or folder does not exist.
    #[error("{what} does not exist")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A local file system operation failed.
    #[error("{action} {path}: {error}")]
    Local {
        /// What we were doing.
        action: Action,
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A local path names something other than a regular file (reading a
    /// FIFO would block forever).
    #[error("{} is {what}, not a regular file; only files are read", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead: "a folder", "a FIFO, socket or device".
        what: &'static str,
    },
    /// A local file name is not valid UTF-8, so it cannot be a row key.
    #[error("file name {} is not valid UTF-8; rename it to include it", .0.display())]
    NonUtf8Path(PathBuf),
    /// The credentials are valid but not allowed to do this.
    #[error(
        "{action} {what}: access denied; the credentials need the {} permission on bucket {bucket}{}",
        action.iam_permission(),
        detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
    )]
    PermissionDenied {
        /// What was refused; [`Action::iam_permission`] names the missing permission.
        action: Action,
        /// The object or prefix.
        what: String,
        /// The bucket.
        bucket: String,
        /// The service's own code and message, when it sent them.
        detail: Option<String>,
    },
    /// The server refused the credentials themselves.
    #[error("the storage service refused the credentials for {what}: {problem}")]
    Credentials {
        /// The bucket or object.
        what: String,
        /// Which part is wrong.
        problem: CredentialProblem,
    },
    /// No credentials could be found in the chain.
    #[error(
        "no AWS credentials for {what}: {reason}. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         or AWS_PROFILE with ~/.aws/credentials, or run where an IAM role is attached (EC2, EMR, ECS)"
    )]
    NoCredentials {
        /// The bucket.
        what: String,
        /// What the chain said.
        reason: String,
    },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist (or is not visible to these credentials)")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// The bucket lives in a region the run may not use.
    #[error(
        "bucket {bucket} is in region {region}, outside the allowed region(s) {}; \
         data must stay there (GDPR)",
        allowed.join(", ")
    )]
    RegionNotAllowed {
        /// The bucket.
        bucket: String,
        /// Where it is.
        region: String,
        /// What is allowed.
        allowed: Vec<String>,
    },
    /// The bucket's region could not be established, so the guard fails closed.
    #[error(
        "cannot tell which region bucket {bucket} is in ({detail}); refusing to use it. \
         Grant s3:GetBucketLocation on it"
    )]
    RegionUnknown {
        /// The bucket.
        bucket: String,
        /// Why.
        detail: String,
    },
    /// The service could not be reached, or kept failing, after every retry.
    #[error("{action} {what}: the storage service did not answer after retrying ({detail})")]
    Unreachable {
        /// What we were doing.
        action: Action,
        /// The object or prefix.
        what: String,
        /// The last error.
        detail: String,
    },
    /// Writing was checked up front and is not possible.
    #[error("cannot write to {what} (checked before starting, so nothing was processed): {reason}")]
    NotWritable {
        /// The output location.
        what: String,
        /// Why.
        reason: Box<StorageError>,
    },
    /// A conditional write found the object already there (another writer got it first).
    #[error("{what} already exists")]
    AlreadyExists {
        /// The object.
        what: String,
    },
    /// Any other store failure.
    #[error("{action} {what}: {error}")]
    Store {
        /// What we were doing.
        action: Action,
        /// The object or prefix.
        what: String,
        /// object_store's error (boxed: it is large, and rare).
        error: Box<object_store::Error>,
    },
    /// A bug or a runtime failure.
    #[error("internal storage error: {0}")]
    Internal(String),
}

/// The fields of an S3 XML error body (`<Error><Code>..</Code>...</Error>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct S3ErrorBody {
    /// S3's error code, e.g. `AccessDenied`, `NoSuchBucket`.
    #[serde(default)]
    pub code: String,
    /// S3's message.
    #[serde(default)]
    pub message: String,
    /// The bucket's region, which S3 names in some errors.
    #[serde(default)]
    pub region: Option<String>,
}

/// Parses an S3 XML error document (with or without the `<?xml ...?>` prolog).
pub(crate) fn parse_s3_error(xml: &str) -> Option<S3ErrorBody> {
    let start = xml.find("<Error")?;
    let body: S3ErrorBody = quick_xml::de::from_str(&xml[start..]).ok()?;
    (!body.code.is_empty()).then_some(body)
}

impl S3ErrorBody {
    /// The credential problem this error reports, if it is one. Amazon S3 has
    /// codes for each; some compatible servers (Garage) answer `AccessDenied`
    /// and say which in the message.
    pub(crate) fn credential_problem(&self) -> Option<CredentialProblem> {
        match self.code.as_str() {
            "InvalidAccessKeyId" => Some(CredentialProblem::UnknownKeyId),
            "SignatureDoesNotMatch" => Some(CredentialProblem::SignatureMismatch),
            "ExpiredToken" | "TokenRefreshRequired" => Some(CredentialProblem::ExpiredToken),
            "InvalidToken" => Some(CredentialProblem::InvalidToken),
            "AccessDenied" if self.message.contains("Invalid signature") => {
                Some(CredentialProblem::SignatureMismatch)
            }
            "AccessDenied" if self.message.contains("No such key") => {
                Some(CredentialProblem::UnknownKeyId)
            }
            _ => None,
        }
    }

    /// True for the codes S3 uses when it is overloaded or failing: retried by
    /// object_store, and when they persist the service counts as unreachable.
    fn is_service_failure(&self) -> bool {
        matches!(
            self.code.as_str(),
            "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout"
        )
    }
}

/// The whole chain of an error's messages ("outer: inner: root"), for the
/// detail of errors people read.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The transport failure (connection, timeout) in an error's source chain, if any.
fn transport_failure(e: &(dyn std::error::Error + 'static)) -> Option<HttpErrorKind> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        current = err.source();
    }
    None
}

/// The S3 error body object_store kept in an error's chain. object_store does
/// not expose the body of a failed response as a value, only in the message of
/// its request error, so the XML document is taken from there and parsed.
fn s3_body(e: &(dyn std::error::Error + 'static)) -> Option<S3ErrorBody> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(body) = parse_s3_error(&err.to_string()) {
            return Some(body);
        }
        current = err.source();
    }
    None
}

impl StorageError {
    /// A local file system failure on `path` while doing `action` (a missing
    /// file becomes [`StorageError::NotFound`]).
    pub fn local_io(action: Action, path: &Path, source: std::io::Error) -> Self {
        Self::local(action, path, source)
    }

    pub(crate) fn local(action: Action, path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            return StorageError::NotFound {
                what: path.display().to_string(),
            };
        }
        StorageError::Local {
            action,
            path: path.to_path_buf(),
            error: source,
        }
    }

    /// Turns an object_store error into one that says what to do.
    pub(crate) fn from_store(
        action: Action,
        what: String,
        bucket: Option<&str>,
        e: object_store::Error,
    ) -> Self {
        let body = s3_body(&e);
        if let Some(problem) = body.as_ref().and_then(S3ErrorBody::credential_problem) {
            return StorageError::Credentials { what, problem };
        }
        if let (Some(bucket), Some(b)) = (bucket, &body)
            && b.code == "NoSuchBucket"
        {
            return StorageError::NoSuchBucket {
                bucket: bucket.to_string(),
            };
        }
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound { what },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => StorageError::AlreadyExists { what },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => StorageError::PermissionDenied {
                action,
                what,
                bucket: bucket.unwrap_or("?").to_string(),
                detail: body.map(|b| format!("{}: {}", b.code, b.message)),
            },
            e if transport_failure(&e).is_some()
                || body.as_ref().is_some_and(S3ErrorBody::is_service_failure) =>
            {
                StorageError::Unreachable {
                    action,
                    what,
                    detail: chain(&e),
                }
            }
            e => StorageError::Store {
                action,
                what,
                error: Box::new(e),
            },
        }
    }

    /// Wraps an error met while checking write access up front.
    pub(crate) fn for_probe(self, what: String) -> Self {
        StorageError::NotWritable {
            what,
            reason: Box::new(self),
        }
    }

    /// True when the error concerns one object only (it vanished, or one local file
    /// is unreadable): the pipeline records it against that input and goes on.
    /// Everything else (service down, access denied) stops the run.
    pub fn is_item_level(&self) -> bool {
        matches!(
            self,
            StorageError::NotFound { .. }
                | StorageError::Local { .. }
                | StorageError::NotAFile { .. }
                | StorageError::NonUtf8Path(_)
        )
    }

    /// The denied action and bucket, when the error is an access denial
    /// (directly or as the reason a write check failed).
    pub fn denied(&self) -> Option<(Action, &str)> {
        match self {
            StorageError::PermissionDenied { action, bucket, .. } => Some((*action, bucket)),
            StorageError::NotWritable { reason, .. } => reason.denied(),
            _ => None,
        }
    }

    /// The bucket and its region, when the error is the region guard's refusal.
    pub fn region_refused(&self) -> Option<(&str, &str)> {
        match self {
            StorageError::RegionNotAllowed { bucket, region, .. } => Some((bucket, region)),
            StorageError::NotWritable { reason, .. } => reason.region_refused(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_error_bodies() {
        let body = "Client error with status 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>Forbidden: Invalid signature</Message></Error>";
        let parsed = parse_s3_error(body).expect("code");
        assert_eq!(parsed.code, "SignatureDoesNotMatch");
        assert_eq!(parsed.message, "Forbidden: Invalid signature");
        assert_eq!(
            parsed.credential_problem(),
            Some(CredentialProblem::SignatureMismatch)
        );
        let garage = S3ErrorBody {
            code: "AccessDenied".into(),
            message: "Forbidden: Invalid signature".into(),
            region: None,
        };
        assert_eq!(
            garage.credential_problem(),
            Some(CredentialProblem::SignatureMismatch)
        );
        let unknown = S3ErrorBody {
            code: "AccessDenied".into(),
            message: "Forbidden: No such key: GK123".into(),
            region: None,
        };
        assert_eq!(
            unknown.credential_problem(),
            Some(CredentialProblem::UnknownKeyId)
        );
        let denied = S3ErrorBody {
            code: "AccessDenied".into(),
            message: "Forbidden: no write".into(),
            region: None,
        };
        assert_eq!(denied.credential_problem(), None);
        assert!(parse_s3_error("no xml here").is_none());
        let region = parse_s3_error(
            "<Error><Code>AuthorizationHeaderMalformed</Code><Message>wrong</Message><Region>us-east-1</Region><RequestId>1</RequestId></Error>",
        )
        .expect("region");
        assert_eq!(region.region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn only_missing_objects_and_local_files_are_item_level() {
        assert!(StorageError::NotFound { what: "x".into() }.is_item_level());
        assert!(
            !StorageError::Unreachable {
                action: Action::Get,
                what: "s3://b/k".into(),
                detail: "connection refused".into()
            }
            .is_item_level()
        );
    }

    #[test]
    fn denials_name_the_permission_and_bucket() {
        let e = StorageError::PermissionDenied {
            action: Action::Put,
            what: "s3://results/run/x".into(),
            bucket: "results".into(),
            detail: Some("AccessDenied: no".into()),
        };
        assert_eq!(e.denied(), Some((Action::Put, "results")));
        let text = e.to_string();
        assert!(
            text.contains("s3:PutObject") && text.contains("results"),
            "{text}"
        );
        let wrapped = e.for_probe("s3://results/run/".into());
        assert_eq!(wrapped.denied(), Some((Action::Put, "results")));
    }
}
