//! Prometheus metrics, in the text format `GET /metrics` serves.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The service's metrics; cheap to clone (shared counters).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<EndpointLabels, Histogram>,
    rejected: Family<ReasonLabels, Counter>,
    /// Requests being handled.
    pub in_flight: Gauge,
    /// Photos per model call.
    pub batch_size: Histogram,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("fruits");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Identification requests answered, by endpoint and HTTP status",
            requests.clone(),
        );
        let duration = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.002, 2.0, 14))
        });
        registry.register(
            "request_duration_seconds",
            "Time from request to answer",
            duration.clone(),
        );
        let rejected = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "rejected",
            "Requests turned away: busy (concurrency limit) or timeout",
            rejected.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("in_flight", "Requests being handled", in_flight.clone());
        let batch_size = Histogram::new(linear_buckets(1.0, 1.0, 16));
        registry.register("batch_size", "Photos per model call", batch_size.clone());
        Metrics {
            registry: Arc::new(registry),
            requests,
            duration,
            rejected,
            in_flight,
            batch_size,
        }
    }

    /// Records an answered request.
    pub fn observe(&self, endpoint: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, status })
            .inc();
        self.duration
            .get_or_create(&EndpointLabels { endpoint })
            .observe(took.as_secs_f64());
    }

    /// Records a request turned away.
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
