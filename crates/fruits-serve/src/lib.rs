//! The app's back end: `POST /v1/identify` takes a photo (raw body or
//! multipart) and answers with the most probable fruits and what the app knows
//! about them; `GET /` is a small page to take or upload a photo; `GET /ping`
//! and `POST /invocations` follow the Amazon SageMaker inference-container
//! contract; `GET /metrics` is Prometheus text.
//!
//! The service listens before the model is loaded: until it is, `/ping` and
//! the identify routes answer 503 `loading` (SageMaker polls `/ping` and only
//! routes traffic once it says 200), and a model that cannot be loaded stops
//! the service with the loader's error.
//!
//! ```text
//! request --(semaphore: at most max_in_flight, else 503)--> read body (size limit)
//!   --> decode + resize on the blocking pool (megapixel limit)
//!   --> batcher queue --> one model call for every photo waiting --> reply
//! ```
//!
//! The batcher takes whatever has queued while the previous model call ran,
//! so a lone request is not delayed, and under load requests share a call
//! (ONNX Runtime does more images per second in batches).

mod batcher;
mod connections;
mod error;
mod metrics;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use fruits_identify::{Identifier, Prediction};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use error::ApiError;
use metrics::Metrics;

/// The upload page.
const PAGE: &str = include_str!("page.html");

/// Limits and tuning of the service.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests being handled at once; more get 503 at once rather than queueing.
    pub max_in_flight: usize,
    /// Longest a request may take from arrival to answer (503 after).
    pub request_timeout: Duration,
    /// Most photos in one model call.
    pub max_batch: usize,
    /// Answers per photo when the request does not say.
    pub default_top: usize,
    /// Print one line per request on standard output (method, path, status, ms).
    pub access_log: bool,
    /// Longest a client may take to send a request's head, and longest an idle
    /// keep-alive connection is kept: a client that sends half a header is
    /// disconnected after this.
    pub header_timeout: Duration,
    /// Longest a client may take to send a request's body. Bodies are read
    /// before the request counts against `max_in_flight`, so slow uploads only
    /// hold a connection, and only this long.
    pub body_timeout: Duration,
    /// Connections open at once; further clients wait to be accepted. Keeps
    /// file descriptors for the service's own work however many clients connect.
    pub max_connections: usize,
    /// On shutdown, how long the requests in flight may take before the
    /// remaining connections are closed.
    pub shutdown_grace: Duration,
    /// Web origins (`https://app.example`) allowed to call the API from a
    /// browser (CORS); none by default.
    pub cors_origins: Vec<String>,
}

/// The service's defaults, defined once (the CLI's flags show them).
pub mod defaults {
    /// Address to listen on.
    pub const HOST: &str = "127.0.0.1";
    /// Port to listen on (SageMaker's).
    pub const PORT: u16 = 8080;
    /// Largest request body, in MiB.
    pub const MAX_BODY_MIB: f64 = 10.0;
    /// Largest photo, in megapixels (from the header, before decoding).
    pub const MAX_MEGAPIXELS: f64 = 40.0;
    /// Requests handled at once.
    pub const MAX_IN_FLIGHT: usize = 64;
    /// Seconds a request may take.
    pub const TIMEOUT_SECS: f64 = 10.0;
    /// Most photos per model call.
    pub const MAX_BATCH: usize = 16;
    /// Seconds to send a request's head (and most seconds idle between requests).
    pub const HEADER_TIMEOUT_SECS: f64 = 10.0;
    /// Seconds to send a request's body.
    pub const BODY_TIMEOUT_SECS: f64 = 30.0;
    /// Connections open at once.
    pub const MAX_CONNECTIONS: usize = 1024;
    /// Seconds the requests in flight get on shutdown.
    pub const SHUTDOWN_GRACE_SECS: f64 = 20.0;
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_body_bytes: (defaults::MAX_BODY_MIB * 1024.0 * 1024.0) as usize,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            request_timeout: Duration::from_secs_f64(defaults::TIMEOUT_SECS),
            max_batch: defaults::MAX_BATCH,
            default_top: fruits_identify::DEFAULT_TOP,
            access_log: false,
            header_timeout: Duration::from_secs_f64(defaults::HEADER_TIMEOUT_SECS),
            body_timeout: Duration::from_secs_f64(defaults::BODY_TIMEOUT_SECS),
            max_connections: defaults::MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs_f64(defaults::SHUTDOWN_GRACE_SECS),
            cors_origins: Vec::new(),
        }
    }
}

/// The loaded half of the service, set once the model is in memory.
struct Ready {
    identifier: Arc<Identifier>,
    batcher: batcher::Handle,
}

/// Shared by every request.
struct AppState {
    ready: OnceLock<Ready>,
    permits: Arc<Semaphore>,
    config: ServeConfig,
    metrics: Metrics,
}

impl AppState {
    /// The loaded model, or 503 `loading` while it loads.
    fn ready(&self) -> Result<&Ready, ApiError> {
        self.ready.get().ok_or_else(ApiError::loading)
    }
}

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The model could not be loaded.
    #[error("the model could not be loaded: {0}")]
    Load(String),
    /// A configured value cannot be used (a CORS origin that is not a header value).
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// The answer to one photo.
#[derive(Debug, Serialize)]
pub struct IdentifyResponse {
    /// The best answers, best first, each with its probability and fruit information.
    #[serde(flatten)]
    pub prediction: Prediction,
    /// Milliseconds spent on the request in the service.
    pub elapsed_ms: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyQuery {
    top: Option<usize>,
}

/// The query string's `?top=N`, or a JSON 400 saying what is wrong with it.
fn parse_query(req: &Request) -> Result<IdentifyQuery, ApiError> {
    let Some(query) = req.uri().query().filter(|q| !q.is_empty()) else {
        return Ok(IdentifyQuery::default());
    };
    let parsed: IdentifyQuery = serde_urlencoded::from_str(query).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("the query string {query:?} is not usable: {e}; the one parameter is top=N (1 to 50)"),
        )
    })?;
    if parsed.top.is_some_and(|t| t == 0 || t > MAX_TOP) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("top must be between 1 and {MAX_TOP}"),
        ));
    }
    Ok(parsed)
}

/// Most answers a request may ask for.
const MAX_TOP: usize = 50;

fn router(state: Arc<AppState>) -> Result<Router, ServeError> {
    let cors = cors_layer(&state.config.cors_origins)?;
    let app = Router::new()
        .route("/", get(page))
        .route("/v1/identify", post(identify))
        .route("/invocations", post(invocations))
        .route("/ping", get(ping))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are limited (and over-long ones drained) in `read_body`.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(hardening_headers))
        .with_state(state);
    Ok(match cors {
        Some(cors) => app.layer(cors),
        None => app,
    })
}

/// Headers every answer carries: no content sniffing, not framed by other
/// sites (the page handles photos), no referrer leaked.
async fn hardening_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Browser calls from the configured origins (and only those) are allowed.
fn cors_layer(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>, ServeError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let values = origins
        .iter()
        .map(|o| {
            HeaderValue::from_str(o.trim_end_matches('/'))
                .map_err(|_| ServeError::Config(format!("{o:?} is not a usable CORS origin")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(values)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    ))
}

/// Serves on `listener` while `load` builds the identifier on the blocking
/// pool (answering 503 `loading` meanwhile), until `shutdown` completes; then
/// finishes the requests in flight (graceful shutdown) and returns. If `load`
/// fails, the service stops and returns its error.
pub async fn serve<L, E>(
    listener: tokio::net::TcpListener,
    load: L,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    L: FnOnce() -> Result<Identifier, E> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let metrics = Metrics::new();
    let limits = connections::Limits::from(&config);
    let state = Arc::new(AppState {
        ready: OnceLock::new(),
        permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        metrics: metrics.clone(),
        config: config.clone(),
    });
    let app = router(state.clone())?;
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let started = Instant::now();
        match tokio::task::spawn_blocking(load).await {
            Ok(Ok(identifier)) => {
                let identifier = Arc::new(identifier);
                let batcher = batcher::spawn(
                    identifier.clone(),
                    config.max_in_flight,
                    config.max_batch,
                    metrics,
                );
                let _ = state.ready.set(Ready {
                    identifier,
                    batcher,
                });
                println!(
                    "ready: model loaded in {:.2} s",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(Err(e)) => {
                let _ = failed_tx.send(e.to_string());
            }
            Err(e) => {
                let _ = failed_tx.send(format!("the loader crashed: {e}"));
            }
        }
    });
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let failed = failure.clone();
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            Ok(message) = failed_rx => {
                if let Ok(mut slot) = failed.lock() {
                    *slot = Some(message);
                }
            }
        }
    };
    connections::serve(listener, app, &limits, stop).await?;
    let failure = failure.lock().ok().and_then(|mut f| f.take());
    match failure {
        Some(message) => Err(ServeError::Load(message)),
        None => Ok(()),
    }
}

/// What the upload page may load and run: its own inline script and style,
/// the photo previewed from the phone (blob:), calls to this service only;
/// never framed by another site.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            ),
        ],
        Html(PAGE),
    )
}

async fn ping(State(state): State<Arc<AppState>>) -> Response {
    // Healthy means the model is loaded and the batcher is alive.
    match state.ready() {
        Ok(ready) if ready.batcher.is_alive() => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "healthy"})),
        )
            .into_response(),
        Ok(_) => ApiError::unavailable("the inference worker has stopped").into_response(),
        Err(loading) => with_retry_after(loading.into_response()),
    }
}

/// Adds `Retry-After: 1` (a 503 that will pass).
fn with_retry_after(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

async fn not_found(req: Request) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no {} {} here; try POST /v1/identify with a photo, or GET / for the upload page",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}

async fn identify(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, "identify", req).await
}

/// SageMaker's inference route: the same contract as `/v1/identify`.
async fn invocations(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, "invocations", req).await
}

async fn method_not_allowed(req: Request) -> Response {
    let allowed = if req.uri().path() == "/" || req.uri().path() == "/ping" {
        "GET"
    } else {
        "POST"
    };
    let mut r = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} {} is not served; use {allowed}",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    r
}

/// Counts a request in `fruits_in_flight` for as long as it lives, however it
/// ends (a client that disconnects drops the request's future midway).
struct InFlight<'a>(&'a prometheus_client::metrics::gauge::Gauge);

impl<'a> InFlight<'a> {
    fn new(gauge: &'a prometheus_client::metrics::gauge::Gauge) -> Self {
        gauge.inc();
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn handle(state: Arc<AppState>, endpoint: &'static str, req: Request) -> Response {
    let started = Instant::now();
    let response = match answer(&state, req, started).await {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) if matches!(e.code, "loading" | "busy") => with_retry_after(e.into_response()),
        Err(e) => e.into_response(),
    };
    state
        .metrics
        .observe(endpoint, response.status().as_u16(), started.elapsed());
    if state.config.access_log {
        println!(
            "POST /{} {} {:.1} ms",
            if endpoint == "identify" {
                "v1/identify"
            } else {
                endpoint
            },
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    response
}

/// One request: its query, its body (within the body deadline, before it
/// counts as in flight), then decoding and the model within the request
/// timeout, holding one of the `max_in_flight` permits.
async fn answer(
    state: &AppState,
    req: Request,
    started: Instant,
) -> Result<IdentifyResponse, ApiError> {
    let ready = state.ready()?;
    let top = parse_query(&req)?.top.unwrap_or(state.config.default_top);
    let body = tokio::time::timeout(
        state.config.body_timeout,
        photo_bytes(req, state.config.max_body_bytes),
    )
    .await
    .map_err(|_| {
        state.metrics.rejected("body_timeout");
        ApiError::body_timeout(state.config.body_timeout)
    })??;
    let Ok(_permit) = state.permits.clone().try_acquire_owned() else {
        state.metrics.rejected("busy");
        return Err(ApiError::busy(state.config.max_in_flight));
    };
    let _in_flight = InFlight::new(&state.metrics.in_flight);
    let timeout = state.config.request_timeout;
    tokio::time::timeout(timeout, identify_one(ready, top, body, started))
        .await
        .map_err(|_| {
            state.metrics.rejected("timeout");
            ApiError::timeout(timeout)
        })?
}

async fn identify_one(
    ready: &Ready,
    top: usize,
    bytes: Bytes,
    started: Instant,
) -> Result<IdentifyResponse, ApiError> {
    let identifier = ready.identifier.clone();
    let prepared = tokio::task::spawn_blocking(move || identifier.prepare(&bytes))
        .await
        .map_err(|e| ApiError::internal(format!("the decoder crashed: {e}")))?
        .map_err(ApiError::from_image)?;
    let mut prediction = ready.batcher.identify(prepared).await?;
    prediction.top.truncate(top);
    Ok(IdentifyResponse {
        prediction,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Bodies over the limit are still read (and dropped) up to this size before
/// the 413 goes out: a client still sending when the server answers and closes
/// sees a broken pipe instead of the explanation.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads a body of at most `limit` bytes; a longer one is drained (up to
/// [`DRAIN_LIMIT`]) and refused.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("the request body could not be read: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_LIMIT {
                break;
            }
            if seen <= limit as u64 {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > limit as u64 {
        return Err(ApiError::too_large(limit));
    }
    Ok(buf.freeze())
}

/// The photo in a request: a raw image body, or the file of a multipart form.
async fn photo_bytes(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let multipart = mime == "multipart/form-data";
    let raw = mime.starts_with("image/")
        || mime == "application/octet-stream"
        || mime == "application/x-image";
    if !multipart && !raw {
        return Err(ApiError::unsupported_content_type(&mime));
    }
    if let Some(length) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > DRAIN_LIMIT
    {
        return Err(ApiError::too_large(limit));
    }
    let (parts, body) = req.into_parts();
    // The form's own framing is a few hundred bytes over the photo.
    let body = read_body(body, if multipart { limit + 64 * 1024 } else { limit }).await?;
    let bytes = if multipart {
        let req = Request::from_parts(parts, axum::body::Body::from(body));
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::new(e.status(), "bad_multipart", e.body_text()))?;
        let mut found = None;
        while let Some(field) = form.next_field().await.map_err(ApiError::from_multipart)? {
            let is_file = field.file_name().is_some()
                || matches!(field.name(), Some("file" | "image" | "photo"));
            if is_file {
                found = Some(field.bytes().await.map_err(ApiError::from_multipart)?);
                break;
            }
        }
        let file = found.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "no_file",
                "the multipart form has no file: send the photo in a field named `file`",
            )
        })?;
        if file.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        file
    } else {
        body
    };
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request has no photo: the body is empty",
        ));
    }
    Ok(bytes)
}
