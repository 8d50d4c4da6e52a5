//! A full Redis (G7, G10): with `maxmemory` and `noeviction`, a Redis at its limit refuses
//! writes. The API answers them 503 `store_full` at once, reads go on, `/health` and `/metrics`
//! say so, the workers wait quietly, and everything is accepted again once the limit is raised.

use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike, ConfigInterface};
use serde_json::{json, Value};

use crate::helpers::{new_user, seat_of, spawn_app_with, Options, TestApp};

/// The limit the test's Redis runs with: a few 10,000-seat events fill it.
const MAXMEMORY: &str = "8mb";
const MAXMEMORY_BYTES: u64 = 8 * 1024 * 1024;

/// A POST's status, body and how long it took.
async fn timed_post(app: &TestApp, path: &str, body: Value) -> (u16, Value, bool, Duration) {
    let started = Instant::now();
    let response = app
        .http
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.expect("a JSON body");
    (status, body, retry_after, started.elapsed())
}

fn worker_log(app: &TestApp, prefix: &str) -> String {
    std::fs::read_dir(app.log_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|f| std::fs::read_to_string(f.path()).ok())
        .collect()
}

async fn health(app: &TestApp) -> (u16, Value) {
    app.get("/health").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_redis_refuses_writes_at_once_with_store_full_while_reads_go_on() {
    // Arrange: a Redis with a small maxmemory, a worker process (its log is read below), and a
    // seat held through it.
    let app = spawn_app_with(Options::default().workers(0).redis_args(&[
        "--maxmemory",
        MAXMEMORY,
        "--maxmemory-policy",
        "noeviction",
    ]))
    .await;
    let _worker = app.spawn_worker_process("full-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = health(&app).await;
        if status == 200 {
            assert_eq!(body["redisMaxMemory"], MAXMEMORY_BYTES, "{body}");
            assert!(body["redisUsedMemory"].as_u64() > Some(0), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never healthy: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let event = app.create_event(100).await;
    let (held, holder) = (seat_of(&event, 1), new_user());
    let done = app.hold_and_wait(&held, &holder).await;
    assert!(done.succeeded(), "{done}");
    let job = done.job_id.clone();

    // Fill Redis through the API: big events until a create is refused for memory.
    let mut created = 0;
    loop {
        let (status, body, retry_after, _) = timed_post(
            &app,
            "/events/create",
            json!({"name": "filler", "totalSeats": 10_000}),
        )
        .await;
        match status {
            201 => created += 1,
            503 => {
                assert_eq!(body["code"], "store_full", "{body}");
                assert!(retry_after, "a store_full 503 carries Retry-After");
                break;
            }
            _ => panic!("filling Redis: {status} {body}"),
        }
        assert!(
            created < 200,
            "{created} events of 10,000 seats and Redis still takes writes"
        );
    }
    assert!(created > 0, "the first filler event fits in {MAXMEMORY}");
    // Right at its limit, Redis's used memory wavers (client buffers come and go), and a small
    // write may slip in under it: the limit is set a little below what is used now, so that
    // Redis stays full for what follows.
    let redis = app.redis.client().await;
    let info: String = redis
        .custom(fred::cmd!("INFO"), vec!["memory"])
        .await
        .expect("INFO memory");
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO");
    let limit = used - 256 * 1024;
    let _: () = redis
        .config_set("maxmemory", limit.to_string())
        .await
        .expect("CONFIG SET maxmemory");

    // Act and assert: creates, holds, refreshes and releases are refused with store_full, each
    // at once.
    let mut worst = Duration::ZERO;
    for n in 2..=21 {
        let writes = [
            (
                "/events/create",
                json!({"name": "refused", "totalSeats": 10}),
            ),
            (
                "/seats/hold",
                json!({"id": seat_of(&event, n), "UUID": new_user()}),
            ),
            ("/seats/refresh", json!({"id": held, "UUID": holder})),
        ];
        for (path, body) in writes {
            let (status, answer, retry_after, took) = timed_post(&app, path, body).await;
            assert_eq!(
                (status, answer["code"].as_str()),
                (503, Some("store_full")),
                "{path}: {answer}"
            );
            assert!(retry_after, "{path}: Retry-After");
            worst = worst.max(took);
        }
    }
    eprintln!("{created} filler events filled {MAXMEMORY}; the slowest of 60 store_full refusals took {worst:?}");
    // "At once": a refusal that waited on Redis would take the 2 s command timeout; 500 ms
    // leaves room for a machine busy with the rest of the suite (the median is ~1 ms).
    assert!(
        worst < Duration::from_millis(500),
        "the slowest store_full refusal took {worst:?}"
    );

    // Reads answer meanwhile.
    for path in [
        format!("/seats/get/{held}"),
        format!("/events/{event}"),
        format!("/seats/list/{event}"),
        format!("/seats/job/{job}/status"),
        "/events".to_owned(),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 200, "{path} while Redis is full: {body}");
    }

    // /health is a 503 that names memory, with the figures.
    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["status"], "ok", "{body}");
    let problems = body["problems"].to_string();
    assert!(problems.contains("memory"), "{body}");
    let (used, max) = (
        body["redisUsedMemory"].as_u64().expect("redisUsedMemory"),
        body["redisMaxMemory"].as_u64().expect("redisMaxMemory"),
    );
    assert_eq!(max, limit, "{body}");
    assert!(used * 100 >= max * 95, "{used} of {max}: {body}");

    // /metrics has both gauges.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a body");
    let gauge = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"))
    };
    assert_eq!(gauge("rsv_redis_maxmemory_bytes"), limit as f64);
    assert!(gauge("rsv_redis_used_memory_bytes") >= limit as f64 * 0.95);

    // The worker, whose heartbeats and housekeeping are refused too, says so once and waits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = worker_log(&app, "full-1");
    let told = log.lines().filter(|l| l.contains("out of memory")).count();
    assert_eq!(told, 1, "the worker says once that Redis is full:\n{log}");
    assert!(
        log.lines().count() <= 5,
        "the worker logs a line per refused write:\n{log}"
    );
    // Its heartbeats still go in (a script allowed to write when Redis is full): /health blames
    // memory, not dead workers. The limit is set well below what is used, so that even a write
    // of a few bytes is refused, for longer than a heartbeat lives (3 beats of 1 s).
    let _: () = redis
        .config_set("maxmemory", "1mb")
        .await
        .expect("CONFIG SET maxmemory");
    let (status, body, _, _) =
        timed_post(&app, "/seats/release", json!({"id": held, "UUID": holder})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("store_full")),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = health(&app).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["liveWorkers"].as_u64() >= Some(1), "{body}");
    assert!(
        !body["problems"].to_string().contains("workers"),
        "a full Redis is not dead workers: {body}"
    );

    // Once the limit is raised, everything is accepted again.
    let _: () = redis
        .config_set("maxmemory", "0")
        .await
        .expect("CONFIG SET maxmemory");
    let (status, body, _, _) = timed_post(
        &app,
        "/events/create",
        json!({"name": "after", "totalSeats": 10}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let done = app.hold_and_wait(&seat_of(&event, 2), &new_user()).await;
    assert!(
        done.succeeded(),
        "a hold after the limit was raised: {done}"
    );
    let refreshed = app.refresh(&held, &holder).await;
    assert_eq!(refreshed.status(), 200, "{refreshed}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = health(&app).await;
        if status == 200 {
            assert_eq!(body["status"], "ok", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never healthy again: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
