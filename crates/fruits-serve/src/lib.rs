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
    /// Bytes of request bodies held at once across every connection: a body
    /// that would go over it is refused with 503 `busy` (the service's memory
    /// for uploads is bounded by this, not by the number of connections).
    pub max_buffered_bytes: usize,
    /// Photos decoded at once (each holds up to 11 bytes a pixel while
    /// decoded: the decoder's buffer and the RGB image); the others wait.
    pub decode_slots: usize,
    /// On `/invocations`, a photo the service cannot use (an error about the
    /// request itself, 4xx) is answered 200 with the error as the record, its
    /// status in `X-Fruits-Error-Status`: a SageMaker Batch Transform job then
    /// writes an error record for that photo instead of failing whole. Busy,
    /// loading and timeouts stay 5xx (SageMaker retries them).
    pub errors_as_records: bool,
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
    /// MiB of request bodies held at once across all connections.
    pub const MAX_BUFFERED_MIB: f64 = 128.0;
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
            max_buffered_bytes: (defaults::MAX_BUFFERED_MIB * 1024.0 * 1024.0) as usize,
            decode_slots: std::thread::available_parallelism().map_or(1, |n| n.get()),
            errors_as_records: false,
        }
    }
}

impl ServeConfig {
    /// Refuses settings the service cannot run with (a CORS origin that is
    /// not one, an upload budget smaller than one body).
    pub fn check(&self) -> Result<(), ServeError> {
        cors_layer(&self.cors_origins)?;
        if self.max_buffered_bytes < self.max_body_bytes {
            return Err(ServeError::Config(format!(
                "the upload budget ({:.1} MiB) must hold at least one body of the largest size \
                 ({:.1} MiB)",
                self.max_buffered_bytes as f64 / 1048576.0,
                self.max_body_bytes as f64 / 1048576.0
            )));
        }
        Ok(())
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
    /// Request bodies held at once, in KiB (see [`ServeConfig::max_buffered_bytes`]).
    buffered: Arc<Semaphore>,
    /// Photos being decoded at once.
    decoding: Arc<Semaphore>,
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
    // The same routes as ROUTES, which names their methods for 405 answers.
    let app = Router::new()
        .route(ROUTES[0].0, get(page))
        .route(ROUTES[1].0, get(ping))
        .route(ROUTES[2].0, get(metrics_text))
        .route(ROUTES[3].0, post(identify))
        .route(ROUTES[4].0, post(invocations))
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

/// Browser calls from the configured origins (and only those) are allowed;
/// `*` alone allows every origin (no credentials are ever allowed, so that is
/// a valid CORS answer).
fn cors_layer(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>, ServeError> {
    use tower_http::cors::AllowOrigin;
    if origins.is_empty() {
        return Ok(None);
    }
    let any = origins.iter().any(|o| o.trim() == "*");
    let allow = if any {
        if origins.len() > 1 {
            return Err(ServeError::Config(
                "the CORS origin `*` allows every origin: give it alone, or list origins without it"
                    .into(),
            ));
        }
        // tower-http panics if `*` is given as an exact origin.
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| ServeError::Config(format!("{o:?} is not a usable CORS origin")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(allow)
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
    config.check()?;
    let metrics = Metrics::new();
    let limits = connections::Limits::from(&config);
    let state = Arc::new(AppState {
        ready: OnceLock::new(),
        permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        buffered: Arc::new(Semaphore::new(kib(config.max_buffered_bytes).max(1))),
        decoding: Arc::new(Semaphore::new(config.decode_slots.max(1))),
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

/// Every route and the one method it takes (what a 405's `Allow` names).
const ROUTES: [(&str, &str); 5] = [
    ("/", "GET"),
    ("/ping", "GET"),
    ("/metrics", "GET"),
    ("/v1/identify", "POST"),
    ("/invocations", "POST"),
];

async fn method_not_allowed(req: Request) -> Response {
    let allowed = ROUTES
        .iter()
        .find(|(path, _)| *path == req.uri().path())
        .map_or("GET", |(_, method)| *method);
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
        Err(e)
            if endpoint == "invocations"
                && state.config.errors_as_records
                && e.status.is_client_error() =>
        {
            let status = e.status;
            let mut r = e.into_response();
            *r.status_mut() = StatusCode::OK;
            r.headers_mut()
                .insert("x-fruits-error-status", HeaderValue::from(status.as_u16()));
            r
        }
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
        photo_bytes(req, state.config.max_body_bytes, &state.buffered),
    )
    .await
    .map_err(|_| {
        state.metrics.rejected("body_timeout");
        ApiError::body_timeout(state.config.body_timeout)
    })?
    .inspect_err(|e| {
        if e.code == "busy" {
            state.metrics.rejected("buffered_bytes");
        }
    })?;
    let Ok(_permit) = state.permits.clone().try_acquire_owned() else {
        state.metrics.rejected("busy");
        return Err(ApiError::busy(state.config.max_in_flight));
    };
    let _in_flight = InFlight::new(&state.metrics.in_flight);
    let timeout = state.config.request_timeout;
    tokio::time::timeout(timeout, identify_one(state, ready, top, body, started))
        .await
        .map_err(|_| {
            state.metrics.rejected("timeout");
            ApiError::timeout(timeout)
        })?
}

async fn identify_one(
    state: &AppState,
    ready: &Ready,
    top: usize,
    body: Body,
    started: Instant,
) -> Result<IdentifyResponse, ApiError> {
    let identifier = ready.identifier.clone();
    // At most `decode_slots` photos are decoded at once, so decoding memory
    // is bounded whatever the number of requests in flight.
    let slot = state
        .decoding
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("the service is stopping"))?;
    let prepared = tokio::task::spawn_blocking(move || {
        let prepared = identifier.prepare(&body.bytes);
        // The body and its share of the budget go back as soon as it is decoded.
        drop(body);
        drop(slot);
        prepared
    })
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

/// KiB, rounded up: the unit of the body budget's semaphore.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// A request body, holding its share of the service's body budget until it
/// is dropped.
struct Body {
    bytes: Bytes,
    _budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for Body {
    fn drop(&mut self) {
        // Return a large body's memory to the system now rather than keep it
        // in the allocator's free lists: without this, RSS stayed at its
        // high-water mark (2.3 GB after 200 large uploads had closed).
        if self.bytes.len() >= 1 << 20 {
            release_free_memory();
        }
    }
}

/// Gives freed heap pages back to the operating system (glibc's `malloc_trim`).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Reads a body of at most `limit` bytes, taking its size from `budget` (in
/// KiB) as it arrives: past the budget, 503 `busy`. A longer body is drained
/// (up to [`DRAIN_LIMIT`], not kept) and refused.
async fn read_body(
    body: axum::body::Body,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<Body, ApiError> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let mut over_budget = false;
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
            if seen <= limit as u64 && !over_budget {
                let wanted = kib(buf.len() + data.len()) - kib(buf.len());
                let more = match u32::try_from(wanted) {
                    Ok(0) => None,
                    Ok(n) => budget.clone().try_acquire_many_owned(n).ok(),
                    Err(_) => None,
                };
                match (more, &mut held) {
                    (None, _) if wanted > 0 => {
                        // Past the budget: what came is dropped at once and
                        // the rest drained, so the client reads the 503.
                        over_budget = true;
                        buf = bytes::BytesMut::new();
                        held = None;
                        continue;
                    }
                    (Some(more), Some(permit)) => permit.merge(more),
                    (Some(more), None) => held = Some(more),
                    (None, _) => {}
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > limit as u64 {
        return Err(ApiError::too_large(limit));
    }
    if over_budget {
        return Err(ApiError::busy_uploading());
    }
    Ok(Body {
        bytes: buf.freeze(),
        _budget: held,
    })
}

/// The photo in a request: a raw image body, or the file of a multipart form.
async fn photo_bytes(
    req: Request,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Result<Body, ApiError> {
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
    let mut body = read_body(
        body,
        if multipart { limit + 64 * 1024 } else { limit },
        budget,
    )
    .await?;
    if multipart {
        let raw = std::mem::take(&mut body.bytes);
        let req = Request::from_parts(parts, axum::body::Body::from(raw));
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
        // The file is a slice of the form's bytes: the budget taken for the
        // form covers it.
        body.bytes = file;
    }
    if body.bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request has no photo: the body is empty",
        ));
    }
    Ok(body)
}
