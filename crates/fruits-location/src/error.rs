//! Storage errors a person can act on: which bucket, which permission, which region.

use std::path::{Path, PathBuf};

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
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A local file name is not valid UTF-8, so it cannot be a row key.
    #[error("file name {0} is not valid UTF-8; rename it to include it")]
    NonUtf8Path(PathBuf),
    /// The credentials are valid but not allowed to do this.
    #[error(
        "{action} {what}: access denied; the credentials need the {permission} permission on bucket {bucket}{detail}"
    )]
    PermissionDenied {
        /// What we were doing.
        action: &'static str,
        /// The object or prefix.
        what: String,
        /// The bucket.
        bucket: String,
        /// The IAM action that is missing.
        permission: &'static str,
        /// The server's own words, prefixed with ": ", or empty.
        detail: String,
    },
    /// The server refused the credentials themselves.
    #[error("the storage service refused the credentials for {what}: {reason}")]
    Credentials {
        /// The bucket or object.
        what: String,
        /// Which part is wrong, in plain words.
        reason: String,
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
        "bucket {bucket} is in region {region}, outside the allowed region(s) {allowed}; \
         data must stay there (GDPR). Use a bucket in an allowed region, or pass \
         --allow-region {region} if moving data there is intended"
    )]
    RegionNotAllowed {
        /// The bucket.
        bucket: String,
        /// Where it is.
        region: String,
        /// What is allowed, comma-separated.
        allowed: String,
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
        action: &'static str,
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
    /// Any other store failure.
    #[error("{action} {what}: {error}")]
    Store {
        /// What we were doing.
        action: &'static str,
        /// The object or prefix.
        what: String,
        /// object_store's error (boxed: it is large, and rare).
        error: Box<object_store::Error>,
    },
    /// A bug or a runtime failure.
    #[error("internal storage error: {0}")]
    Internal(String),
}

/// The IAM action behind one of our verbs.
fn permission_for(action: &str) -> &'static str {
    match action {
        "cannot write" => "s3:PutObject",
        "cannot delete" => "s3:DeleteObject",
        "cannot list" => "s3:ListBucket",
        _ => "s3:GetObject",
    }
}

/// The `<Code>` and `<Message>` of an S3 XML error body found in `text`.
pub(crate) fn s3_error_code(text: &str) -> Option<(String, String)> {
    let tag = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    Some((tag("Code")?, tag("Message").unwrap_or_default()))
}

/// Plain words for the S3 errors that mean "wrong credentials". Amazon S3 has
/// codes for them; some compatible servers (Garage) answer `AccessDenied` and say
/// which in the message.
pub(crate) fn credential_problem(code: &str, message: &str) -> Option<&'static str> {
    if code == "AccessDenied" {
        if message.contains("Invalid signature") {
            return credential_problem("SignatureDoesNotMatch", "");
        }
        if message.contains("No such key") {
            return credential_problem("InvalidAccessKeyId", "");
        }
    }
    match code {
        "InvalidAccessKeyId" => Some("the access key id is unknown to the service"),
        "SignatureDoesNotMatch" => {
            Some("the secret access key does not match the access key id (signature mismatch)")
        }
        "ExpiredToken" | "TokenRefreshRequired" => {
            Some("the session token has expired; refresh the credentials")
        }
        "InvalidToken" => Some("the session token is not valid"),
        _ => None,
    }
}

/// The whole chain of an error's messages ("outer: inner: root"), for
/// classification and for the detail of errors people read.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl StorageError {
    pub(crate) fn local(action: &'static str, path: &Path, source: std::io::Error) -> Self {
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
        action: &'static str,
        what: String,
        bucket: Option<&str>,
        e: object_store::Error,
    ) -> Self {
        let text = chain(&e);
        let code = s3_error_code(&text);
        if let Some(reason) = code.as_ref().and_then(|(c, m)| credential_problem(c, m)) {
            return StorageError::Credentials {
                what,
                reason: reason.to_string(),
            };
        }
        if let (Some(bucket), Some((c, _))) = (bucket, &code)
            && c == "NoSuchBucket"
        {
            return StorageError::NoSuchBucket {
                bucket: bucket.to_string(),
            };
        }
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound { what },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => StorageError::PermissionDenied {
                action,
                what,
                bucket: bucket.unwrap_or("?").to_string(),
                permission: permission_for(action),
                detail: code
                    .map(|(c, m)| format!(" ({c}: {m})"))
                    .unwrap_or_default(),
            },
            _ if looks_unreachable(&text) => StorageError::Unreachable {
                action,
                what,
                detail: text,
            },
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
            StorageError::NotFound { .. } | StorageError::Local { .. }
        )
    }
}

/// True when `text` says the request never got an answer (connection refused,
/// timeouts) or kept failing until the retries ran out.
fn looks_unreachable(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "error sending request",
        "connection refused",
        "timed out",
        "retries",
        "connect error",
        "dns error",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_error_bodies() {
        let body = "Client error with status 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>Forbidden: Invalid signature</Message></Error>";
        let (code, message) = s3_error_code(body).expect("code");
        assert_eq!(code, "SignatureDoesNotMatch");
        assert_eq!(message, "Forbidden: Invalid signature");
        assert!(credential_problem(&code, &message).is_some_and(|r| r.contains("secret")));
        let garage = credential_problem("AccessDenied", "Forbidden: Invalid signature");
        assert!(garage.is_some_and(|r| r.contains("secret")));
        let unknown = credential_problem("AccessDenied", "Forbidden: No such key: GK123");
        assert!(unknown.is_some_and(|r| r.contains("access key id")));
        assert!(credential_problem("AccessDenied", "Forbidden: no write").is_none());
        assert!(s3_error_code("no xml here").is_none());
    }

    #[test]
    fn only_missing_objects_and_local_files_are_item_level() {
        assert!(StorageError::NotFound { what: "x".into() }.is_item_level());
        assert!(
            !StorageError::Unreachable {
                action: "cannot read",
                what: "s3://b/k".into(),
                detail: "connection refused".into()
            }
            .is_item_level()
        );
    }
}
