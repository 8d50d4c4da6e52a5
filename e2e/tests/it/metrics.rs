//! `/metrics`: the API's own figures and the worker pool's, in the Prometheus text format
//!.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::helpers::{new_user, seat_of, spawn_app_with, Options, TestApp};

/// One sample line: name, labels (sorted), value.
type Sample = (String, BTreeMap<String, String>, f64);

fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().expect("a number");
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let labels = rest
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            (name, labels, value)
        })
        .collect()
}

/// The value of the series with exactly these labels, or 0 when it is absent.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|(n, l, _)| n == name && *l == wanted)
        .map_or(0.0, |(_, _, v)| *v)
}

async fn scrape(app: &TestApp) -> Vec<Sample> {
    let response = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(&response.text().await.expect("a body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_show_requests_jobs_latency_lapses_and_the_worker_processes_figures() {
    // No worker inside the test: every job-side figure must come from a separate process.
    let app = spawn_app_with(Options::default().workers(0).env("HOLD_TTL_SECS", 1)).await;
    let event = app.create_event(10).await;
    let (a, b) = (new_user(), new_user());
    // Queued before any worker runs: two holds of seat 1 (the second will be refused, 409) and
    // one of seat 2.
    let mut jobs = Vec::new();
    for (seat, user) in [(1, &a), (1, &b), (2, &a)] {
        let posted = app.hold(&seat_of(&event, seat), user).await;
        assert_eq!(posted.status(), 202, "{posted}");
        jobs.push(posted.job_id().expect("a job id").to_owned());
    }
    let mut worker = app.spawn_worker_process("metrics-worker");
    for job in &jobs {
        app.wait_job(job, Duration::from_secs(10)).await;
    }
    let posted = app.reserve(&seat_of(&event, 2), &a).await;
    assert_eq!(posted.status(), 202, "{posted}");
    let reserve = posted.job_id().expect("a job id").to_owned();
    let done = app.wait_job(&reserve, Duration::from_secs(10)).await;
    assert_eq!(done.code(), Some(200));
    let (status, _) = app.get("/no/such/route").await;
    assert_eq!(status, 404);

    // Seat 1's hold lapses after 1 s; the worker adds its counts to Redis every heartbeat.
    let deadline = Instant::now() + Duration::from_secs(15);
    let samples = loop {
        let samples = scrape(&app).await;
        let lapsed = value(
            &samples,
            "rsv_holds_lapsed_total",
            &[("path", "notification")],
        ) + value(&samples, "rsv_holds_lapsed_total", &[("path", "sweep")]);
        let finished = value(&samples, "rsv_job_accept_to_applied_seconds_count", &[]);
        if lapsed >= 1.0 && finished >= 4.0 {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's figures never showed: lapsed {lapsed}, finished {finished}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let hold = |outcome| {
        value(
            &samples,
            "rsv_jobs_finished_total",
            &[("type", "HOLD_SEAT"), ("outcome", outcome)],
        )
    };
    assert_eq!(hold("applied"), 2.0);
    assert_eq!(hold("conflict"), 1.0);
    assert_eq!(hold("failed"), 0.0);
    assert_eq!(
        value(
            &samples,
            "rsv_jobs_finished_total",
            &[("type", "RESERVE_SEAT"), ("outcome", "applied")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "rsv_jobs_accepted_total",
            &[("type", "HOLD_SEAT")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "rsv_jobs_accepted_total",
            &[("type", "RESERVE_SEAT")]
        ),
        1.0
    );
    // The histogram: cumulative buckets ending in +Inf = count.
    assert_eq!(
        value(
            &samples,
            "rsv_job_accept_to_applied_seconds_bucket",
            &[("le", "+Inf")]
        ),
        4.0
    );
    assert!(value(&samples, "rsv_job_accept_to_applied_seconds_sum", &[]) > 0.0);
    assert_eq!(
        value(
            &samples,
            "rsv_holds_lapsed_total",
            &[("path", "notification")]
        ) + value(&samples, "rsv_holds_lapsed_total", &[("path", "sweep")]),
        1.0,
        "exactly the one unreserved hold lapsed"
    );
    assert_eq!(value(&samples, "rsv_live_workers", &[]), 1.0);
    assert_eq!(value(&samples, "rsv_redis_up", &[]), 1.0);
    assert_eq!(value(&samples, "rsv_queue_depth", &[]), 0.0);
    // HTTP figures, by route pattern rather than raw path.
    let http = |method, route, status| {
        value(
            &samples,
            "http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(http("POST", "/seats/hold", "202"), 3.0);
    assert_eq!(http("POST", "/events/create", "201"), 1.0);
    assert_eq!(http("GET", "unmatched", "404"), 1.0);
    assert!(http("GET", "/seats/job/{jobId}/status", "200") >= 4.0);
    assert!(
        value(
            &samples,
            "http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/seats/hold")]
        ) >= 3.0
    );
    worker.terminate(Duration::from_secs(10));
}
