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
            TokioIo::new(JsonProtocolErrors::new(stream)),
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

/// A connection whose protocol errors are answered with the service's JSON.
///
/// hyper answers a request it cannot parse (bad request line, HTTP/0.9, bad
/// or duplicate headers, a negative Content-Length, control bytes: 400; a
/// head over its buffer or 100 headers: 431; a URL too long: 414) by itself,
/// with an empty body and none of the service's headers, then closes the
/// connection; it offers no hook to change that answer. This wrapper sees
/// every byte hyper writes: an error head with no Content-Type (every answer
/// of the service has one; hyper's automatic ones never do) is replaced by
/// the documented `{"error": {"code", "message"}}` with the same status and
/// the hardening headers.
pub(crate) struct JsonProtocolErrors<IO> {
    io: IO,
    /// A replacement being written: (length of hyper's buffer, bytes, written so far).
    replacing: Option<(usize, Vec<u8>, usize)>,
}

impl<IO> JsonProtocolErrors<IO> {
    fn new(io: IO) -> Self {
        JsonProtocolErrors {
            io,
            replacing: None,
        }
    }
}

/// The JSON answer for hyper's automatic error head `head`, when it is one.
fn protocol_error_answer(head: &[u8]) -> Option<Vec<u8>> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&head[..end]).ok()?;
    let status_line = head.lines().next()?;
    let code: u16 = status_line
        .strip_prefix("HTTP/1.")?
        .get(2..5)?
        .parse()
        .ok()?;
    if !(400..600).contains(&code) || head.to_ascii_lowercase().contains("\ncontent-type:") {
        return None;
    }
    let (name, message) = match code {
        431 => (
            "headers_too_large",
            "the request head is too large (too many or too long headers)",
        ),
        414 => ("uri_too_long", "the request's URL is too long"),
        _ => (
            "bad_request",
            "the request is not valid HTTP/1.1 (request line, headers or framing)",
        ),
    };
    let body = serde_json::json!({"error": {"code": name, "message": message}}).to_string();
    let reason = axum::http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Some(
        format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\nx-content-type-options: nosniff\r\nx-frame-options: DENY\r\n\
             referrer-policy: no-referrer\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonProtocolErrors<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonProtocolErrors<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.replacing.is_none()
            && buf.starts_with(b"HTTP/1.")
            && let Some(answer) = protocol_error_answer(buf)
        {
            this.replacing = Some((buf.len(), answer, 0));
        }
        let Some((original, answer, written)) = &mut this.replacing else {
            return std::pin::Pin::new(&mut this.io).poll_write(cx, buf);
        };
        while *written < answer.len() {
            match std::pin::Pin::new(&mut this.io).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        let original = *original;
        this.replacing = None;
        Poll::Ready(Ok(original))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each answer's head as one buffer,
    // which is what the check above reads.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_error_heads_are_replaced() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = protocol_error_answer(hyper_400).expect("replaced");
        let text = String::from_utf8(answer).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("x-content-type-options: nosniff"), "{text}");
        assert!(text.ends_with(r#"{"error":{"code":"bad_request","message":"the request is not valid HTTP/1.1 (request line, headers or framing)"}}"#), "{text}");
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(
            String::from_utf8(protocol_error_answer(hyper_431).expect("431"))
                .expect("utf8")
                .contains("headers_too_large")
        );
        // The service's own answers carry a Content-Type and are left alone.
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\r\n{}";
        assert!(protocol_error_answer(ours).is_none());
        assert!(protocol_error_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_none());
        assert!(
            protocol_error_answer(b"HTTP/1.1 400 Bad Req").is_none(),
            "half a head"
        );
    }
}
