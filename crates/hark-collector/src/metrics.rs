//! What `GET /metrics` exposes, in Prometheus' text format: requests by
//! route and status, request latency, events accepted / duplicate /
//! rejected (by field), store errors, requests in flight, requests refused
//! by a rate limit, and the store's queue depth (writes waiting for its
//! writer). Counted by a middleware around every route and by the handlers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    /// `address` or `install`.
    scope: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    /// `accepted`, `duplicate` or `rejected`.
    outcome: String,
    /// For rejected events, the field at fault; empty otherwise.
    field: String,
}

/// The collector's counters, shared by every request.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    events: Family<EventLabels, Counter>,
    store_errors: Counter,
    in_flight: Gauge,
    rate_limited: Family<ScopeLabels, Counter>,
    queue_depth: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hark");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        // 0.5 ms … ~16 s.
        let latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register("http_request_seconds", "Time to answer a request", latency.clone());
        let events = Family::<EventLabels, Counter>::default();
        registry.register("events", "Telemetry events by outcome (and, rejected, by field)", events.clone());
        let store_errors = Counter::default();
        registry.register("store_errors", "Requests the event store failed", store_errors.clone());
        let in_flight = Gauge::default();
        registry.register("http_requests_in_flight", "Requests being answered", in_flight.clone());
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        registry.register("rate_limited", "Requests refused by a rate limit, by scope", rate_limited.clone());
        let queue_depth = Gauge::default();
        registry.register("store_queue_depth", "Writes waiting for the store's writer", queue_depth.clone());
        Self { registry, requests, latency, events, store_errors, in_flight, rate_limited, queue_depth }
    }

    /// Counts what one ingest request did with its events.
    pub fn events(&self, accepted: usize, duplicates: usize, rejected: &[hark_telemetry::v2::Rejection]) {
        let count = |outcome: &str, field: &str, n: u64| {
            self.events.get_or_create(&EventLabels { outcome: outcome.into(), field: field.into() }).inc_by(n);
        };
        count("accepted", "", accepted as u64);
        count("duplicate", "", duplicates as u64);
        for r in rejected {
            count("rejected", &r.field, 1);
        }
    }

    pub fn rate_limited(&self, scope: crate::limits::Scope) {
        self.rate_limited.get_or_create(&ScopeLabels { scope: scope.as_str().into() }).inc();
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.set(depth as i64);
    }

    pub fn store_error(&self) {
        self.store_errors.inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The middleware: times and counts every request by its route pattern
/// (`/v1/installs/{id}`, not the id itself).
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "other".to_owned());
    let started = Instant::now();
    metrics.in_flight.inc();
    let response = next.run(request).await;
    metrics.in_flight.dec();
    metrics.latency.observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { route, status: response.status().as_u16() }).inc();
    response
}
