//! A first figure for the pool's drain rate (not a benchmark, and never run by default):
//! `cargo test --release -p e2e -- --ignored --nocapture drain_rate`.

use std::time::{Duration, Instant};

use fred::interfaces::ListInterface;
use futures::stream::{self, StreamExt};
use queue_core::{Enqueued, Enqueuer, EventName, JobKind, SeatCount, SeatId, Store, UserId};

use crate::helpers::{keys_of, spawn_app_with, Options};

const EVENTS: u32 = 10;
const SEATS: u32 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand in release mode"]
async fn drain_rate() {
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(5);
    let app = spawn_app_with(Options::default().workers(0).env("LOG_LEVEL", "error")).await;
    let store = Store::connect(&app.settings).await.expect("a store");
    let name = EventName::try_from("Drain".to_owned()).expect("a name");
    let count = SeatCount::try_from(u64::from(SEATS)).expect("in range");
    let mut events = Vec::new();
    for _ in 0..EVENTS {
        events.push(
            store
                .create_event(&name, count, None)
                .await
                .expect("created")
                .id,
        );
    }

    // A backlog of one hold per seat, every one of which will succeed.
    let enqueuer = Enqueuer::new(store.clone());
    let started = Instant::now();
    let jobs = stream::iter(
        events
            .iter()
            .flat_map(|e| (1..=SEATS).map(move |n| (*e, n))),
    )
    .map(|(event, n)| {
        let enqueuer = &enqueuer;
        async move {
            let user: UserId = uuid::Uuid::new_v4().to_string().parse().expect("a UUID");
            let seat = SeatId::new(event, n).expect("in range");
            enqueuer.enqueue(JobKind::Hold, seat, user).await
        }
    })
    .buffer_unordered(256)
    .collect::<Vec<_>>()
    .await;
    let enqueue_secs = started.elapsed().as_secs_f64();
    assert!(
        jobs.iter()
            .all(|j| matches!(j, Ok(Enqueued::Accepted { .. }))),
        "all accepted"
    );
    let total = jobs.len();

    let started = Instant::now();
    let _pool: Vec<_> = (1..=workers)
        .map(|i| app.spawn_worker_process(&format!("drain-{i}")))
        .collect();
    let redis = app.redis.client().await;
    loop {
        let mut left = 0u64;
        for event in &events {
            let depth: u64 = redis
                .llen(keys_of(&event.to_string()).queue)
                .await
                .expect("LLEN");
            left += depth;
        }
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the backlog drains"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    println!(
        "enqueued {total} holds in {enqueue_secs:.2} s ({:.0}/s through queue-core, 256 in flight); \
         {workers} worker processes drained them in {drain_secs:.2} s: {:.0} jobs/s (includes process start-up)",
        total as f64 / enqueue_secs,
        total as f64 / drain_secs
    );
}
