//! `GET /metrics` in the Prometheus text format: this process's own figures (see
//! [`crate::metrics::Metrics`]), then the whole service's, read from Redis at scrape time
//! (`rsv_jobs_finished_total`, `rsv_job_accept_to_applied_seconds`, `rsv_holds_lapsed_total`,
//! `rsv_queue_depth`, `rsv_live_workers`, `rsv_redis_used_memory_bytes`, `rsv_redis_maxmemory_bytes`). The worker processes add their counts to one Redis hash
//! every second (see `queue_core::metrics`), so no one scrapes the workers, and every API instance
//! reports the same service-wide values: aggregate them with `max()`, not `sum()`.

use std::time::Instant;

use actix_web::{web, HttpResponse, ResponseError};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};
use queue_core::metrics::{ServiceFigures, LATENCY_BOUNDS_MS};
use queue_core::JobKind;

use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus metrics of this API process and of the whole service.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses(
        (status = 200, description = "Prometheus text format (0.0.4). `rsv_redis_up` is 0 and the service-wide figures are missing while Redis does not answer.", content_type = "text/plain", body = String),
    ))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let store = &state.store;
    let (figures, pool, depth, memory) = futures::join!(
        store.service_figures(),
        store.pool(),
        store.queue_depth(),
        store.memory()
    );
    let mut families = state.metrics.gather();
    let redis_up = figures.is_ok();
    families.push(gauge(
        "rsv_redis_up",
        "1 when Redis answered this scrape, else 0",
        f64::from(u8::from(redis_up)),
    ));
    if let Ok(figures) = figures {
        families.extend(service_families(&figures));
    }
    if let Ok(pool) = pool {
        families.push(gauge(
            "rsv_live_workers",
            "Worker processes with a recent heartbeat",
            pool.live_workers as f64,
        ));
    }
    if let Ok(depth) = depth {
        families.push(gauge(
            "rsv_queue_depth",
            "Jobs accepted and not applied yet, across recently active events",
            depth as f64,
        ));
    }
    if let Ok(memory) = memory.map(|m| m.total) {
        families.push(gauge(
            "rsv_redis_used_memory_bytes",
            "Bytes Redis uses (used_memory of INFO memory; on a cluster, summed over the primaries)",
            memory.used as f64,
        ));
        families.push(gauge(
            "rsv_redis_maxmemory_bytes",
            "Redis's maxmemory in bytes (0: no limit); at it, writes are refused with 503 store_full",
            memory.max as f64,
        ));
    }
    families.push(gauge(
        "rsv_metrics_scrape_seconds",
        "Time this scrape spent reading Redis",
        started.elapsed().as_secs_f64(),
    ));
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&families, &mut body) {
        Ok(()) => HttpResponse::Ok()
            .content_type(encoder.format_type())
            .body(body),
        Err(e) => ApiError::Encoding {
            what: "the metrics",
            reason: e.into(),
        }
        .error_response(),
    }
}

fn service_families(figures: &ServiceFigures) -> Vec<MetricFamily> {
    let mut jobs = family(
        "rsv_jobs_finished_total",
        "Jobs the worker pool finished, by type and outcome (applied, a refusal, or failed)",
        MetricType::COUNTER,
    );
    for (kind, outcome, count) in &figures.jobs {
        let kind = kind.map_or("UNKNOWN", JobKind::as_str);
        let labels = [("type", kind), ("outcome", outcome.as_str())];
        jobs.mut_metric().push(counter(&labels, *count));
    }

    let mut latency = family(
        "rsv_job_accept_to_applied_seconds",
        "Time from a job's 202 to its application by a worker (Redis clock)",
        MetricType::HISTOGRAM,
    );
    let mut histogram = proto::Histogram::default();
    let mut cumulative = 0;
    let mut buckets = Vec::new();
    for (bound_ms, count) in LATENCY_BOUNDS_MS.iter().zip(&figures.latency_buckets) {
        cumulative += count;
        let mut bucket = proto::Bucket::default();
        bucket.set_upper_bound(*bound_ms as f64 / 1000.0);
        bucket.set_cumulative_count(cumulative);
        buckets.push(bucket);
    }
    histogram.set_bucket(buckets);
    histogram.set_sample_count(figures.latency_count);
    histogram.set_sample_sum(figures.latency_sum_ms as f64 / 1000.0);
    let mut unlabelled = metric(&[]);
    unlabelled.set_histogram(histogram);
    latency.mut_metric().push(unlabelled);

    let mut lapsed = family(
        "rsv_holds_lapsed_total",
        "Lapsed holds tidied away, by what prompted it (a keyspace notification or the sweep)",
        MetricType::COUNTER,
    );
    for (path, count) in &figures.holds_lapsed {
        lapsed
            .mut_metric()
            .push(counter(&[("path", path.as_str())], *count));
    }
    vec![jobs, latency, lapsed]
}

fn family(name: &str, help: &str, kind: MetricType) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family
}

fn metric(labels: &[(&str, &str)]) -> proto::Metric {
    let mut metric = proto::Metric::default();
    metric.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = proto::LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value((*value).to_owned());
                pair
            })
            .collect(),
    );
    metric
}

fn counter(labels: &[(&str, &str)], count: u64) -> proto::Metric {
    let mut metric = metric(labels);
    let mut counter = proto::Counter::default();
    counter.set_value(count as f64);
    metric.set_counter(counter);
    metric
}

fn gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    let mut family = family(name, help, MetricType::GAUGE);
    let mut metric = metric(&[]);
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value);
    metric.set_gauge(gauge);
    family.mut_metric().push(metric);
    family
}
