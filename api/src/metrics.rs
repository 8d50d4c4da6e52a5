//! This API process's own metrics (`http_*`, `rsv_jobs_accepted_total`), in a `prometheus`
//! registry: scrape every API instance and `sum()` them. `GET /metrics` (`routes/metrics.rs`)
//! adds the service-wide figures it reads from Redis.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use prometheus::proto::MetricFamily;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use queue_core::JobKind;

/// Buckets (seconds) of the HTTP request duration histogram.
const HTTP_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// This process's own metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    jobs_accepted: IntCounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered by this API process, by route pattern and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request (to the first byte of a stream), by route pattern",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let jobs_accepted = IntCounterVec::new(
            Opts::new(
                "rsv_jobs_accepted_total",
                "Hold and reserve jobs this API process accepted (answered 202)",
            ),
            &["type"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(jobs_accepted.clone()))?;
        for kind in [JobKind::Hold, JobKind::Reserve] {
            jobs_accepted.with_label_values(&[kind.as_str()]);
        }
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            jobs_accepted,
        })
    }

    /// Counts one answer. `route` is the matched pattern (`/seats/get/{id}`), never the raw path,
    /// so that ids do not multiply the series.
    pub fn observe(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
        // A client may send any token as a method: only the standard ones become label values,
        // so that nobody can grow the series without bound.
        let method = match *method {
            Method::GET
            | Method::POST
            | Method::PUT
            | Method::DELETE
            | Method::HEAD
            | Method::OPTIONS
            | Method::PATCH
            | Method::CONNECT
            | Method::TRACE => method.as_str(),
            _ => "OTHER",
        };
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(took.as_secs_f64());
    }

    pub fn job_accepted(&self, kind: JobKind) {
        self.jobs_accepted.with_label_values(&[kind.as_str()]).inc();
    }

    /// This process's figures as they stand, one family per metric.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}
