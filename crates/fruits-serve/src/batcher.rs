//! Micro-batching: photos prepared by concurrent requests share one model call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fruits_identify::Prepared;
use fruits_identify::{Identifier, Prediction};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::metrics::Metrics;

struct Job {
    tensor: Prepared,
    reply: oneshot::Sender<Result<Prediction, ApiError>>,
}

/// Sends prepared photos to the batcher.
#[derive(Clone)]
pub struct Handle {
    queue: mpsc::Sender<Job>,
    alive: Arc<AtomicBool>,
}

impl Handle {
    /// Identifies one prepared photo, in whatever batch it lands in.
    pub async fn identify(&self, tensor: Prepared) -> Result<Prediction, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { tensor, reply })
            .await
            .map_err(|_| ApiError::unavailable("the inference worker has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the inference worker dropped the request"))?
    }

    /// False once the worker has stopped.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed) && !self.queue.is_closed()
    }
}

/// Starts the worker. It waits for a photo, takes every photo queued behind
/// it (up to `max_batch`), runs them through the model in one call on the
/// blocking pool, answers each, and repeats: a lone request waits for nothing,
/// and requests arriving during a model call form the next batch.
pub fn spawn(
    identifier: Arc<Identifier>,
    capacity: usize,
    max_batch: usize,
    metrics: Metrics,
) -> Handle {
    let (queue, mut jobs) = mpsc::channel::<Job>(capacity.max(1));
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    tokio::spawn(async move {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < max_batch.max(1) {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // Requests that timed out meanwhile need no answer.
            batch.retain(|job| !job.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            metrics.batch_size.observe(batch.len() as f64);
            let (tensors, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|j| (j.tensor, j.reply)).unzip();
            let id = identifier.clone();
            let result =
                tokio::task::spawn_blocking(move || id.identify_prepared(&tensors, crate::MAX_TOP))
                    .await;
            match result {
                Ok(Ok(predictions)) => {
                    for (reply, p) in replies.into_iter().zip(predictions) {
                        let _ = reply.send(Ok(p));
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "inference failed");
                    for reply in replies {
                        let _ =
                            reply.send(Err(ApiError::internal(format!("inference failed: {e}"))));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "inference crashed");
                    for reply in replies {
                        let _ = reply.send(Err(ApiError::internal("inference crashed")));
                    }
                }
            }
        }
        flag.store(false, Ordering::Relaxed);
    });
    Handle { queue, alive }
}
