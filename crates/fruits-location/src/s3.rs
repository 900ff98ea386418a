//! Opening a bucket: credentials, the region question, the guard, the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{HttpRequest, HttpRequestBody};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::error::{Action, parse_s3_error};
use crate::{StorageError, StorageOptions, block_on, credentials, guard};

/// A bucket ready for use: its client and where it lives.
pub(crate) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub region: String,
}

/// Buckets already opened by this process, so children and repeated parses do not
/// ask the region again.
type Cache = Mutex<HashMap<String, (Arc<dyn ObjectStore>, String)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The S3-compatible endpoint to use instead of Amazon S3, if any (the
/// environment's is read once, by `StorageOptions::from_env`).
fn endpoint(options: &StorageOptions) -> Option<String> {
    options
        .endpoint
        .clone()
        .filter(|e| !e.trim().is_empty())
        .map(|e| e.trim().trim_end_matches('/').to_string())
}

fn builder(
    bucket: &str,
    region: &str,
    options: &StorageOptions,
    endpoint: Option<&str>,
) -> AmazonS3Builder {
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: options.max_retries,
        retry_timeout: options.retry_timeout,
    };
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(region)
        // One object at a time (the write probe): a plain DeleteObject, which
        // every S3-compatible server has and IAM judges per key, rather than
        // the bulk DeleteObjects call object_store makes by default.
        .with_disable_bulk_delete(true)
        .with_retry(retry)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(10))
                .with_timeout(Duration::from_secs(120)),
        );
    if let Some(keys) = &options.credentials {
        b = b
            .with_access_key_id(&keys.access_key_id)
            .with_secret_access_key(&keys.secret_access_key);
        if let Some(token) = &keys.session_token {
            b = b.with_token(token);
        }
    } else if !credentials::env_has_keys()
        && let Some(profile) = credentials::load_profile().filter(|p| p.has_keys())
    {
        tracing::debug!(profile = %profile.name, "credentials from the shared profile files");
        b = b
            .with_access_key_id(profile.access_key_id.unwrap_or_default())
            .with_secret_access_key(profile.secret_access_key.unwrap_or_default());
        if let Some(token) = profile.session_token {
            b = b.with_token(token);
        }
    }
    // AWS_SERVER_SIDE_ENCRYPTION (read by from_env) wins, e.g. for aws:kms.
    let sse_from_env = std::env::var_os("AWS_SERVER_SIDE_ENCRYPTION").is_some();
    if let (Some(sse), false) = (&options.server_side_encryption, sse_from_env)
        && let Ok(key) = "aws_server_side_encryption".parse::<AmazonS3ConfigKey>()
    {
        b = b.with_config(key, sse);
    }
    match endpoint {
        Some(ep) => b
            .with_endpoint(ep)
            .with_allow_http(ep.starts_with("http://"))
            .with_virtual_hosted_style_request(false),
        None => b,
    }
}

/// Makes ring the process's TLS provider for rustls, once: object_store and
/// reqwest are built without a provider of their own (ring builds in seconds;
/// the default, aws-lc-rs, compiles a large C library). A provider installed
/// earlier by the embedding program is kept.
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Opens `bucket`: finds its region, applies the guard, builds the client.
pub(crate) fn open_bucket(bucket: &str, options: &StorageOptions) -> Result<Opened, StorageError> {
    init_tls();
    let endpoint = endpoint(options);
    // Everything the client is built from; kept in memory only, never shown.
    let keys = options
        .credentials
        .as_ref()
        .map(|c| format!("{}:{}", c.access_key_id, c.secret_access_key))
        .unwrap_or_default();
    let cache_key = format!(
        "{bucket}\n{}\n{}\n{:?}\n{}\n{:?}\n{keys}",
        endpoint.as_deref().unwrap_or(""),
        options.allowed_regions.join(","),
        options.retry_timeout,
        options.max_retries,
        options.server_side_encryption,
    );
    if let Ok(cache) = cache().lock()
        && let Some((store, region)) = cache.get(&cache_key)
    {
        return Ok(Opened {
            store: store.clone(),
            region: region.clone(),
        });
    }
    let signing_region = credentials::env_region()
        .or_else(|| credentials::load_profile().and_then(|p| p.region))
        .unwrap_or_else(|| crate::DEFAULT_REGION.to_string());
    let probe = builder(bucket, &signing_region, options, endpoint.as_deref())
        .build()
        .map_err(|e| StorageError::BadUrl {
            url: format!("s3://{bucket}"),
            reason: e.to_string(),
        })?;
    let region = block_on(bucket_region(
        bucket,
        &signing_region,
        endpoint.as_deref(),
        &probe,
    ))?;
    tracing::info!(bucket, region = %region, "bucket region");
    guard::check(bucket, &region, &options.allowed_regions)?;
    let store: Arc<dyn ObjectStore> = Arc::new(
        builder(bucket, &region, options, endpoint.as_deref())
            .build()
            .map_err(|e| StorageError::BadUrl {
                url: format!("s3://{bucket}"),
                reason: e.to_string(),
            })?,
    );
    if let Ok(mut cache) = cache().lock() {
        cache.insert(cache_key, (store.clone(), region.clone()));
    }
    Ok(Opened { store, region })
}

/// A response to the region question.
struct Answer {
    status: u16,
    header_region: Option<String>,
    body: String,
}

/// Asks where `bucket` lives with a signed GetBucketLocation, reading the answer
/// from the body, a redirect's header or the region an error names.
async fn bucket_region(
    bucket: &str,
    signing_region: &str,
    endpoint: Option<&str>,
    probe: &object_store::aws::AmazonS3,
) -> Result<String, StorageError> {
    let what = format!("s3://{bucket}");
    let credential =
        probe
            .credentials()
            .get_credential()
            .await
            .map_err(|e| StorageError::NoCredentials {
                what: what.clone(),
                reason: e.to_string(),
            })?;
    let base = match endpoint {
        Some(ep) => ep.to_string(),
        None => format!("https://s3.{signing_region}.amazonaws.com"),
    };
    let ask = |method: http::Method, url: String| {
        let credential = credential.clone();
        async move {
            let mut request: HttpRequest = http::Request::builder()
                .method(method)
                .uri(url.as_str())
                .body(HttpRequestBody::from(bytes::Bytes::new()))
                .map_err(|e| StorageError::Internal(e.to_string()))?;
            AwsAuthorizer::new(&credential, "s3", signing_region)
                .try_authorize(&mut request, None)
                .map_err(|e| StorageError::Internal(e.to_string()))?;
            send(request).await
        }
    };
    let answer = ask(http::Method::GET, format!("{base}/{bucket}?location")).await?;
    if answer.status == 200 {
        return guard::location_from_body(&answer.body).ok_or_else(|| {
            StorageError::RegionUnknown {
                bucket: bucket.to_string(),
                detail: "the answer to GetBucketLocation had no LocationConstraint".into(),
            }
        });
    }
    let error = parse_s3_error(&answer.body).unwrap_or_default();
    if let Some(problem) = error.credential_problem() {
        return Err(StorageError::Credentials { what, problem });
    }
    if error.code == "NoSuchBucket" || answer.status == 404 {
        return Err(StorageError::NoSuchBucket {
            bucket: bucket.to_string(),
        });
    }
    if let Some(region) = answer
        .header_region
        .clone()
        .or_else(|| guard::region_from_error(&answer.body))
    {
        return Ok(region);
    }
    if answer.status == 403 {
        // Without s3:GetBucketLocation, Amazon S3 still names the region in the
        // x-amz-bucket-region header of a HeadBucket answer.
        let head = ask(http::Method::HEAD, format!("{base}/{bucket}")).await?;
        if let Some(region) = head.header_region {
            return Ok(region);
        }
        // Neither answer named it: these credentials may not touch the bucket.
        return Err(StorageError::PermissionDenied {
            action: Action::Locate,
            what: what.clone(),
            bucket: bucket.to_string(),
            detail: (!error.code.is_empty()).then(|| format!("{}: {}", error.code, error.message)),
        });
    }
    Err(StorageError::RegionUnknown {
        bucket: bucket.to_string(),
        detail: format!("HTTP {} {} {}", answer.status, error.code, error.message)
            .trim()
            .to_string(),
    })
}

/// Sends one request. It is not retried here: this is the first request a run
/// makes to a bucket, so a service that does not answer it stops the run at
/// once (with nothing done), and every later request goes through
/// object_store's retry policy ([`StorageOptions::max_retries`], backoff).
async fn send(request: HttpRequest) -> Result<Answer, StorageError> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| StorageError::Internal(e.to_string()))?;
    let (parts, _) = request.into_parts();
    let url = parts.uri.to_string();
    let response = client
        .request(parts.method.clone(), url.as_str())
        .headers(parts.headers.clone())
        .send()
        .await
        .map_err(|e| StorageError::Unreachable {
            action: Action::Locate,
            what: url.split('?').next().unwrap_or(&url).to_string(),
            detail: crate::error::chain(&e),
        })?;
    let status = response.status().as_u16();
    let header_region = response
        .headers()
        .get("x-amz-bucket-region")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = response.text().await.unwrap_or_default();
    Ok(Answer {
        status,
        header_region,
        body,
    })
}
