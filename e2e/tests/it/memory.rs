//! Redis memory per seat of a 10,000-seat event, empty and fully reserved (MEMORY USAGE of all
//! the event's keys). Run with `--nocapture` to see the figures.

use std::time::Duration;

use fred::interfaces::{KeysInterface, MemoryInterface};
use futures::stream::{self, StreamExt};
use queue_core::seat::RECORD_LEN;
use queue_core::{Enqueuer, EventName, JobKind, SeatCount, SeatId, Store, UserId};

use crate::helpers::{keys_of, spawn_app_with, Options, TestApp};

const SEATS: u32 = 10_000;

// Bytes a seat, as README.md and docs/ARCHITECTURE.md give them: 32.8 fresh (the 29-byte
// records in one allocation, rounded up to the allocator's size class), 75.4 with every seat
// reserved and the changes stream full. Measured over seven runs: 32.79 every time, and 75.00 to
// 75.53 (the stream is trimmed approximately, a whole node at a time). Allocator size classes
// and listpack sizes can shift with the Redis version, so each figure may be exceeded by 3%;
// below, a fresh seat cannot cost less than its record, and a full one 3% under its figure
// means a key was left out of the sum.
const FRESH: f64 = 32.8;
const FULLY_RESERVED: f64 = 75.4;
const MARGIN: f64 = 1.03;

async fn bytes_of_event(app: &TestApp, event: &str) -> u64 {
    let redis = app.redis.client().await;
    let k = keys_of(event);
    let mut total = 0;
    for key in k.live() {
        let usage: Option<u64> = redis
            .memory_usage(key, Some(0))
            .await
            .expect("MEMORY USAGE");
        total += usage.unwrap_or(0);
    }
    total
}

async fn apply_to_every_seat(
    app: &TestApp,
    enqueuer: &Enqueuer,
    kind: JobKind,
    event: &str,
    users: &[UserId],
) {
    let event_id = event.parse().expect("an event id");
    let jobs: Vec<_> = stream::iter(1..=SEATS)
        .map(|n| {
            let seat = SeatId::new(event_id, n).expect("a seat number in range");
            async move { enqueuer.enqueue(kind, seat, users[n as usize - 1]).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut last = None;
    for job in jobs {
        match job.expect("Redis answers") {
            queue_core::Enqueued::Accepted { job, .. } => last = Some(job),
            other => panic!("every seat is free for this job: {other:?}"),
        }
    }
    // Jobs of one event are applied in order, so the last accepted finishing means all did.
    let last = app
        .job_ids()
        .await
        .public(last.expect("jobs were accepted"));
    let _ = app.wait_job(&last, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_seat_event_costs_33_bytes_a_seat_fresh_and_75_full() {
    let app = spawn_app_with(
        Options::default()
            .env("MAX_HELD_SEATS", 10)
            .env("QUEUE_MAX_DEPTH", 20_000)
            .env("JOB_RESULT_TTL_SECS", 1),
    )
    .await;
    let store = Store::connect(&app.settings).await.expect("a store");
    let name = EventName::try_from("Big".to_owned()).expect("a name");
    let event = store
        .create_event(
            &name,
            SeatCount::try_from(u64::from(SEATS)).expect("in range"),
            None,
        )
        .await
        .expect("created")
        .id
        .to_string();

    let empty = bytes_of_event(&app, &event).await as f64 / f64::from(SEATS);
    println!("memory per seat, freshly created: {empty:.2} bytes");
    assert!(
        (RECORD_LEN as f64..FRESH * MARGIN).contains(&empty),
        "{empty:.2} bytes per seat fresh; documented: {FRESH}"
    );

    let users: Vec<UserId> = (0..SEATS)
        .map(|_| uuid::Uuid::new_v4().to_string().parse().expect("a UUID"))
        .collect();
    let enqueuer = Enqueuer::new(store.clone());
    apply_to_every_seat(&app, &enqueuer, JobKind::Hold, &event, &users).await;
    let held = app.event(&event).await;
    assert_eq!(held.on_hold, SEATS, "{held}");
    apply_to_every_seat(&app, &enqueuer, JobKind::Reserve, &event, &users).await;
    let reserved = app.event(&event).await;
    assert_eq!(reserved.reserved, SEATS, "{reserved}");

    // Let the job records expire (JOB_RESULT_TTL_SECS=1) so that only seat state is measured.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let redis = app.redis.client().await;
    loop {
        let left: bool = redis.exists(keys_of(&event).results).await.expect("EXISTS");
        if !left {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job records were not trimmed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let full = bytes_of_event(&app, &event).await as f64 / f64::from(SEATS);
    println!("memory per seat, every seat reserved: {full:.2} bytes");
    assert!(
        (FULLY_RESERVED / MARGIN..FULLY_RESERVED * MARGIN).contains(&full),
        "{full:.2} bytes per seat fully reserved; documented: {FULLY_RESERVED}"
    );
}
