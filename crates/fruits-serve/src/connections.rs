//! Accepting connections under limits that a hostile client cannot lift:
//! at most `max_connections` open at once, the request head (and any idle
//! time between requests) within `header_timeout`, and a shutdown that lets
//! the requests in flight finish for `shutdown_grace`, then closes the rest.
//!
//! axum's own `serve` sets none of these (a client sending half a header kept
//! its connection, and blocked a graceful shutdown, for ever), so the loop is
//! written here on hyper's connection builder.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::ServeConfig;

/// The connection limits of [`ServeConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    header_timeout: Duration,
    max_connections: usize,
    shutdown_grace: Duration,
}

impl From<&ServeConfig> for Limits {
    fn from(c: &ServeConfig) -> Self {
        Limits {
            header_timeout: c.header_timeout,
            max_connections: c.max_connections.max(1),
            shutdown_grace: c.shutdown_grace,
        }
    }
}

/// Serves `app` on `listener` until `stop` completes, then shuts down within
/// the grace period.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = std::sync::Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let service = app.map_request(|req: Request<Incoming>| req.map(axum::body::Body::new));
    tokio::pin!(stop);
    loop {
        // Wait for a free slot first: beyond the limit, clients queue in the
        // kernel's backlog instead of taking file descriptors.
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(service.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        println!(
            "shutdown: closing the connections still open after {:.0} s",
            limits.shutdown_grace.as_secs_f64()
        );
    }
    Ok(())
}
