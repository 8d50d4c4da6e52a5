//! Redis memory per seat of a 10,000-seat event, empty and fully reserved (MEMORY USAGE of all
//! the event's keys). Run with `--nocapture` to see the figures.

use std::time::Duration;

use fred::interfaces::{ClientLike, HashesInterface, KeysInterface, MemoryInterface};
use futures::stream::{self, StreamExt};
use queue_core::seat::RECORD_LEN;
use queue_core::{Enqueuer, EventName, JobKind, SeatCount, SeatId, Store, UserId};

use crate::helpers::{keys_of, new_user, seat_of, spawn_app_with, Options, TestApp};

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

/// Redis's encoding of a key (OBJECT ENCODING).
async fn encoding(app: &TestApp, key: &str) -> String {
    let redis = app.redis.client().await;
    redis
        .custom(
            fred::cmd!("OBJECT"),
            vec!["ENCODING".to_owned(), key.to_owned()],
        )
        .await
        .expect("OBJECT ENCODING")
}

/// The hashes searched on every job are hash tables from the start, not listpacks that a lookup
/// searches field by field (at a few hundred holders an HGET costs more than the rest of a job):
/// the event's from its creation, the holders' from its first hold, also after it was deleted by
/// hand; and they keep nothing else once the holds are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_and_holders_hashes_are_hash_tables_from_the_first_write() {
    let app = spawn_app_with(Options::default()).await;
    let event = app.create_event(10).await;
    let keys = keys_of(&event);
    assert_eq!(encoding(&app, &keys.event).await, "hashtable");

    let user = new_user();
    let held = app.hold_and_wait(&seat_of(&event, 1), &user).await;
    assert_eq!(held.code(), Some(200), "{held}");
    assert_eq!(encoding(&app, &keys.holders).await, "hashtable");

    let redis = app.redis.client().await;
    let _: () = redis.del(&keys.holders).await.expect("DEL");
    let held = app.hold_and_wait(&seat_of(&event, 2), &user).await;
    assert_eq!(held.code(), Some(200), "{held}");
    assert_eq!(encoding(&app, &keys.holders).await, "hashtable");

    // A reserve of the user's one listed seat empties their entry: the field stays alone.
    let reserved = app.reserve(&seat_of(&event, 2), &user).await;
    let job = reserved.job_id().expect("a reserve accepted");
    let done = app.wait_job(job, Duration::from_secs(10)).await;
    assert_eq!(done.code(), Some(200), "{done}");
    let fields: Vec<fred::types::Value> = redis.hkeys(&keys.holders).await.expect("HKEYS");
    let fields: Vec<_> = fields
        .iter()
        .map(|f| f.as_bytes().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(
        fields,
        [Some(queue_core::keys::HASH_TABLE_FIELD.as_bytes().to_vec())]
    );
}
