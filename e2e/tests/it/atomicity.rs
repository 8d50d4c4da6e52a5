//! A job's writes are all or nothing. Redis does not roll a script back, so a write that fails
//! after another one leaves the first in place. Failures are injected at each write point by
//! giving the key written there the wrong type (the one way a write can fail once a script's
//! checks pass): the job is retried, then ends `failed`, its seat is unchanged and the feed agrees
//! with the seat; a broken key that the whole drain call writes stops the call before it takes a
//! job, so the jobs wait and are applied once it is repaired; a refresh, release, enqueue or sweep
//! that meets one answers an error and changes nothing. A counter that is not a number (the other
//! way a write can fail) is incremented before any other write.

use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::{
    ClientLike, ConfigInterface, HashesInterface, KeysInterface, ListInterface,
};
use fred::types::Value;
use loadgen::api::{JobStatus, SeatStatus};

use queue_core::keys::Shard;

use crate::helpers::{
    keys_of, new_user, seat_of, slowlog, spawn_app_with, Options, RedisKind, TestApp,
};

/// Picks one of an event's keys: the write point a case breaks.
type KeyOf = fn(&queue_core::keys::EventKeys) -> &String;

/// Bytes of one seat record (`queue_core::seat::RECORD_LEN`).
const RECORD: usize = queue_core::seat::RECORD_LEN;

/// Gives `key` the wrong type (a string), keeping what it held under `<key>:saved`.
async fn break_key(redis: &Client, key: &str) {
    let exists: u64 = redis.exists(key).await.expect("EXISTS");
    if exists == 1 {
        let _: () = redis
            .rename(key, format!("{key}:saved"))
            .await
            .expect("RENAME");
    }
    let _: () = redis
        .set(key, "the wrong type", None, None, false)
        .await
        .expect("SET");
}

/// Gives `key` back what [`break_key`] saved.
async fn repair_key(redis: &Client, key: &str) {
    let _: () = redis.del(key).await.expect("DEL");
    let saved: u64 = redis.exists(format!("{key}:saved")).await.expect("EXISTS");
    if saved == 1 {
        let _: () = redis
            .rename(format!("{key}:saved"), key)
            .await
            .expect("RENAME");
    }
}

/// What a failed job must have left as it was: every key of the event's seat state, byte for
/// byte (DUMP), and the event's reserved count.
async fn seat_state(redis: &Client, event: &str) -> Vec<(String, Value)> {
    let keys = keys_of(event);
    let mut state = Vec::new();
    for key in [&keys.seats, &keys.deadlines, &keys.holders, &keys.changes] {
        let dump: Value = redis.dump(key).await.expect("DUMP");
        state.push((key.clone(), dump));
    }
    let reserved: Value = redis.hget(&keys.event, "reserved").await.expect("HGET");
    state.push(("reserved".to_owned(), reserved));
    state
}

async fn seat_record(redis: &Client, event: &str, n: usize) -> Vec<u8> {
    let from = (n - 1) * RECORD;
    redis
        .getrange(keys_of(event).seats, from, from + RECORD - 1)
        .await
        .expect("GETRANGE")
}

/// Asserts that seat 1's record is what it was while `broken` is still broken, then repairs it
/// and asserts that the seat state as a whole is what it was.
async fn left_as_it_was(
    redis: &Client,
    event: &str,
    broken: &str,
    (record, state): (&[u8], &[(String, Value)]),
    case: &str,
) {
    assert_eq!(
        seat_record(redis, event, 1).await,
        record,
        "{case}: the seat record is as it was"
    );
    repair_key(redis, broken).await;
    assert_eq!(
        seat_state(redis, event).await,
        state,
        "{case}: the seat, its deadline, its holder's list, the feed and the reserved count are \
         as they were"
    );
}

/// An app whose jobs get two attempts, 20 ms apart, with no worker running yet.
async fn app_with_quick_retries() -> TestApp {
    spawn_app_with(
        Options::default()
            .workers(0)
            .env("JOB_RETRY_ATTEMPTS", 2)
            .env("JOB_RETRY_BASE_MS", 20),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_meets_a_key_of_the_wrong_type_fails_before_its_first_write() {
    let mut app = app_with_quick_retries().await;
    let redis = app.redis.client().await;
    // Each key a hold or a reserve writes besides the seat record (which each job reads first,
    // and so fails on before any write): the hold-deadline set, the holders hash, the feed.
    let points: [(&str, KeyOf); 3] = [
        ("deadlines", |k| &k.deadlines),
        ("holders", |k| &k.holders),
        ("changes", |k| &k.changes),
    ];
    for (name, key_of) in points {
        for reserve in [false, true] {
            let case = format!(
                "{} with {name} broken",
                if reserve { "reserve" } else { "hold" }
            );
            let event = app.create_event(10).await;
            let keys = keys_of(&event);
            let seat = seat_of(&event, 1);
            let user = new_user();
            // Arrange: for a reserve, the user holds the seat (so every write of a reserve is
            // ahead); then the job waits on the queue while the key is broken.
            if reserve {
                app.start_worker().await;
                let held = app.hold_and_wait(&seat, &user).await;
                assert_eq!(held.code(), Some(200), "{case}: the hold first: {held}");
                app.stop_workers().await;
            }
            let posted = if reserve {
                app.reserve(&seat, &user).await
            } else {
                app.hold(&seat, &user).await
            };
            assert_eq!(posted.status(), 202, "{case}: {posted}");
            let job = posted.job_id().expect("a job id").to_owned();
            let before = seat_state(&redis, &event).await;
            let record_before = seat_record(&redis, &event, 1).await;
            break_key(&redis, key_of(&keys)).await;

            // Act.
            app.start_worker().await;
            let done = app.wait_job(&job, Duration::from_secs(10)).await;
            app.stop_workers().await;

            // Assert: failed, saying why, and nothing of the job's writes is left.
            assert_eq!(
                done.status,
                JobStatus::Failed,
                "{case}: the job cannot be applied: {done}"
            );
            let why = done.error.clone().unwrap_or_default();
            assert!(
                why.contains(key_of(&keys).as_str()) && why.contains("gave up after 2 attempts"),
                "{case}: the reason names the broken key and the attempts: {done}"
            );
            left_as_it_was(
                &redis,
                &event,
                key_of(&keys),
                (&record_before, &before),
                &case,
            )
            .await;
            let seen = app.seat(&seat).await;
            let expected = if reserve {
                SeatStatus::OnHold
            } else {
                SeatStatus::Available
            };
            assert_eq!(seen.status, expected, "{case}: the seat reads as before");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_call_whose_own_keys_are_broken_takes_no_job_and_loses_none() {
    let mut app = app_with_quick_retries().await;
    let redis = app.redis.client().await;
    // The keys a drain call writes after its jobs: the results hash and the retention set.
    let points: [(&str, KeyOf); 2] = [("results", |k| &k.results), ("done", |k| &k.done)];
    for (name, key_of) in points {
        let event = app.create_event(10).await;
        let keys = keys_of(&event);
        let mut jobs = Vec::new();
        for n in 1..=2 {
            let posted = app.hold(&seat_of(&event, n), &new_user()).await;
            assert_eq!(posted.status(), 202, "{name}: {posted}");
            jobs.push(posted.job_id().expect("a job id").to_owned());
        }
        let before = seat_state(&redis, &event).await;
        break_key(&redis, key_of(&keys)).await;

        // The worker tries (and its drain calls fail) for a while: the jobs stay queued.
        app.start_worker().await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let queued: u64 = redis.llen(&keys.queue).await.expect("LLEN");
        assert_eq!(queued, 2, "{name} broken: no job was taken off the queue");
        assert_eq!(
            seat_state(&redis, &event).await,
            before,
            "{name} broken: no seat was touched"
        );

        // Repaired, the jobs are applied, each once.
        repair_key(&redis, key_of(&keys)).await;
        let started = Instant::now();
        for job in &jobs {
            let done = app.wait_job(job, Duration::from_secs(10)).await;
            assert_eq!(done.code(), Some(200), "{name} repaired: {done}");
        }
        println!("{name}: applied {:?} after the repair", started.elapsed());
        app.stop_workers().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_or_release_that_meets_a_key_of_the_wrong_type_changes_nothing() {
    let app = spawn_app_with(Options::default()).await;
    let redis = app.redis.client().await;
    let cases: [(&str, bool, KeyOf); 5] = [
        ("refresh, deadlines broken", false, |k| &k.deadlines),
        ("refresh, changes broken", false, |k| &k.changes),
        ("release, deadlines broken", true, |k| &k.deadlines),
        ("release, holders broken", true, |k| &k.holders),
        ("release, changes broken", true, |k| &k.changes),
    ];
    for (case, release, key_of) in cases {
        let event = app.create_event(10).await;
        let keys = keys_of(&event);
        let seat = seat_of(&event, 1);
        let user = new_user();
        let held = app.hold_and_wait(&seat, &user).await;
        assert_eq!(held.code(), Some(200), "{case}: {held}");
        let before = seat_state(&redis, &event).await;
        let record_before = seat_record(&redis, &event, 1).await;
        break_key(&redis, key_of(&keys)).await;

        let status = if release {
            app.release(&seat, &user).await.status()
        } else {
            app.refresh(&seat, &user).await.status()
        };

        assert_eq!(
            status, 500,
            "{case}: data the service never writes is an internal error, not a 503 to retry"
        );
        left_as_it_was(
            &redis,
            &event,
            key_of(&keys),
            (&record_before, &before),
            case,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserve_whose_count_is_not_a_number_reserves_nothing() {
    let mut app = app_with_quick_retries().await;
    let redis = app.redis.client().await;
    let event = app.create_event(10).await;
    let keys = keys_of(&event);
    let (seat, user) = (seat_of(&event, 1), new_user());
    app.start_worker().await;
    let held = app.hold_and_wait(&seat, &user).await;
    assert_eq!(held.code(), Some(200), "{held}");
    app.stop_workers().await;
    let posted = app.reserve(&seat, &user).await;
    assert_eq!(posted.status(), 202, "{posted}");
    let job = posted.job_id().expect("a job id").to_owned();
    let _: () = redis
        .hset(&keys.event, ("reserved", "not a number"))
        .await
        .expect("HSET");
    let before = seat_state(&redis, &event).await;

    app.start_worker().await;
    let done = app.wait_job(&job, Duration::from_secs(10)).await;

    assert_eq!(
        done.status,
        JobStatus::Failed,
        "the reserve cannot count: {done}"
    );
    assert_eq!(
        seat_state(&redis, &event).await,
        before,
        "the seat is still On hold, its deadline and holder kept, the feed without a reserve"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_whose_ready_list_is_broken_accepts_nothing() {
    // No worker: the ready list is the service's own, and a worker blocked on it would fail too.
    // One Redis only: there `enqueue.lua` pushes the token into the shard's ready list itself
    // (on a cluster the list is in another slot, and the API pushes the token after the jobs
    // are stored).
    let app = spawn_app_with(Options::default().workers(0).redis(RedisKind::Single)).await;
    let redis = app.redis.client().await;
    let event = app.create_event(10).await;
    let keys = keys_of(&event);
    let ready = Shard::of(event.parse().expect("an event id")).ready();
    break_key(&redis, ready).await;

    let posted = app.hold(&seat_of(&event, 1), &new_user()).await;

    assert_eq!(posted.status(), 500, "an internal error: {posted}");
    let queued: u64 = redis.llen(&keys.queue).await.expect("LLEN");
    assert_eq!(queued, 0, "no job was queued");
    let enq: Option<String> = redis.hget(&keys.event, "enq").await.expect("HGET");
    assert_eq!(
        enq.as_deref(),
        Some("0"),
        "no sequence number was handed out"
    );
    repair_key(&redis, ready).await;
    let posted = app.hold(&seat_of(&event, 1), &new_user()).await;
    assert_eq!(posted.status(), 202, "repaired, it accepts: {posted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_whose_queue_is_broken_fails_alone_in_a_batch_shared_with_another() {
    // One Redis only: there one script run takes the jobs of several events (on a cluster,
    // of one).
    let app = spawn_app_with(Options::default().workers(0).redis(RedisKind::Single)).await;
    let redis = app.redis.client().await;
    let (broken, sound) = (app.create_event(100).await, app.create_event(100).await);
    let (broken_keys, sound_keys) = (keys_of(&broken), keys_of(&sound));
    break_key(&redis, &broken_keys.queue).await;
    // Every command Redis runs is logged with its arguments, to see which runs were shared.
    for (name, value) in [("slowlog-max-len", 100_000), ("slowlog-log-slower-than", 0)] {
        let _: () = redis.config_set(name, value).await.expect("CONFIG SET");
    }
    let _: () = redis
        .custom(fred::cmd!("SLOWLOG"), vec!["RESET".to_owned()])
        .await
        .expect("SLOWLOG RESET");

    // 200 holds at once, the two events' interleaved, so that most runs carry both.
    let posts = (1..=100).flat_map(|n| {
        [&broken, &sound].map(|event| {
            let app = &app;
            async move { (event, app.hold(&seat_of(event, n), &new_user()).await) }
        })
    });
    let answers = futures::future::join_all(posts).await;

    for (event, posted) in &answers {
        if *event == &sound {
            assert_eq!(posted.status(), 202, "the sound event accepts: {posted}");
        } else {
            assert_eq!(posted.status(), 500, "the broken event refuses: {posted}");
        }
    }
    let queued: u64 = redis.llen(&sound_keys.queue).await.expect("LLEN");
    assert_eq!(queued, 100, "every hold of the sound event is queued");
    let enq: Option<String> = redis.hget(&broken_keys.event, "enq").await.expect("HGET");
    assert_eq!(
        enq.as_deref(),
        Some("0"),
        "the broken event handed out no sequence number"
    );
    let shared = runs_naming_both(&redis, &broken_keys.event, &sound_keys.event).await;
    assert!(
        shared > 0,
        "at least one script run carried the jobs of both events"
    );
    repair_key(&redis, &broken_keys.queue).await;
    let posted = app.hold(&seat_of(&broken, 1), &new_user()).await;
    assert_eq!(posted.status(), 202, "repaired, it accepts: {posted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_call_shared_by_events_applies_each_in_order_and_one_whose_keys_are_broken_loses_nothing(
) {
    use fred::interfaces::{EventInterface, PubsubInterface};
    // One Redis only: there one process.lua run drains several events (on a cluster, those
    // of one slot).
    let app = spawn_app_with(Options::default().workers(0).redis(RedisKind::Single)).await;
    let redis = app.redis.client().await;
    let store = queue_core::Store::connect(&app.settings)
        .await
        .expect("a store");
    let events = [
        app.create_event(10).await,
        app.create_event(10).await,
        app.create_event(10).await,
    ];
    let [first, broken, last] = &events;
    // Three holds on each; on the first and the last, seat 1 twice, by two users: accepted
    // both (it is free when they are), the earlier applied, the later refused (G3).
    let mut jobs: Vec<Vec<String>> = Vec::new();
    for event in &events {
        let mut ids = Vec::new();
        for n in [1, 1, 2] {
            let posted = app.hold(&seat_of(event, n), &new_user()).await;
            assert_eq!(posted.status(), 202, "{posted}");
            // The public id is the job's id and a tag that proves it was handed out here.
            let public = posted.job_id().expect("a job id");
            ids.push(public.split('.').next().unwrap_or(public).to_owned());
        }
        jobs.push(ids);
    }
    let broken_keys = keys_of(broken);
    let before = seat_state(&redis, broken).await;
    break_key(&redis, &broken_keys.results).await;

    let subscriber = store.subscriber().await.expect("a subscriber");
    let mut messages = subscriber.message_rx();
    let _: () = subscriber
        .subscribe(queue_core::keys::FINISHED_CHANNEL)
        .await
        .expect("SUBSCRIBE");

    let ids: Vec<queue_core::EventId> = events.iter().map(|e| e.parse().expect("an id")).collect();
    let batches = store.process_events(&ids, 64).await.expect("one run");
    assert_eq!(batches.len(), 3, "a batch per event, in order");
    for (i, batch) in batches.iter().enumerate() {
        if i == 1 {
            assert!(
                matches!(batch, Err(queue_core::Error::Corrupt(why)) if why.contains("results")),
                "the broken event answers why: {batch:?}"
            );
            continue;
        }
        let batch = batch.as_ref().expect("a sound event's batch");
        assert_eq!(batch.remaining, 0);
        let finished: Vec<(String, Option<i64>)> = batch
            .finished
            .iter()
            .map(|job| {
                let code = match &job.state {
                    queue_core::JobState::Completed { result, .. } => {
                        Some(result.map_or_else(|refusal| i64::from(refusal.code()), |()| 200))
                    }
                    _ => None,
                };
                (job.id.to_string(), code)
            })
            .collect();
        let expected: Vec<(String, Option<i64>)> = jobs[i]
            .iter()
            .cloned()
            .zip([Some(200), Some(409), Some(200)])
            .collect();
        assert_eq!(
            finished, expected,
            "event {i}: its jobs, in the order accepted"
        );
    }
    let queued: u64 = redis.llen(&broken_keys.queue).await.expect("LLEN");
    assert_eq!(queued, 3, "the broken event's jobs were not taken");
    assert_eq!(
        seat_state(&redis, broken).await,
        before,
        "nor its seats touched"
    );

    // One announcement for the run, naming the sound events' jobs.
    let message = tokio::time::timeout(Duration::from_secs(5), messages.recv())
        .await
        .expect("an announcement")
        .expect("a message");
    let bytes = message.value.as_bytes().expect("bytes").to_vec();
    let announced: Vec<(String, Vec<String>)> = queue_core::wire::finished_records(&bytes)
        .expect("a readable message")
        .into_iter()
        .map(|(event, records)| {
            (
                event.to_string(),
                records
                    .into_iter()
                    .map(|(job, _)| job.to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        announced,
        vec![
            (first.clone(), jobs[0].clone()),
            (last.clone(), jobs[2].clone())
        ]
    );

    // Repaired, the broken event's jobs are applied, each once, in order.
    repair_key(&redis, &broken_keys.results).await;
    let mut again = store.process_events(&ids[1..2], 64).await.expect("one run");
    let batch = again.pop().expect("a batch").expect("applied");
    let order: Vec<String> = batch.finished.iter().map(|j| j.id.to_string()).collect();
    assert_eq!(order, jobs[1]);
    let _ = subscriber.quit().await;
}

/// How many EVALSHAs in the slow log name both keys among their arguments.
async fn runs_naming_both(redis: &Client, a: &str, b: &str) -> usize {
    slowlog(redis)
        .await
        .into_iter()
        .map(|(_, args)| args)
        .filter(|args| {
            args.first()
                .is_some_and(|c| c.eq_ignore_ascii_case("evalsha"))
                && args.iter().any(|x| x == a)
                && args.iter().any(|x| x == b)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_that_meets_a_key_of_the_wrong_type_clears_no_hold() {
    let app = spawn_app_with(Options::default().env("HOLD_TTL_SECS", 1)).await;
    let redis = app.redis.client().await;
    let store = queue_core::Store::connect(&app.settings)
        .await
        .expect("a store");
    let cases: [(&str, KeyOf); 2] = [("holders", |k| &k.holders), ("changes", |k| &k.changes)];
    for (name, key_of) in cases {
        let event = app.create_event(10).await;
        let keys = keys_of(&event);
        let held = app.hold_and_wait(&seat_of(&event, 1), &new_user()).await;
        assert_eq!(held.code(), Some(200), "{name}: {held}");
        // The hold lapses; the workers' own sweeps would meet the broken key just the same.
        break_key(&redis, key_of(&keys)).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let record_before = seat_record(&redis, &event, 1).await;
        assert_eq!(
            record_before.first(),
            Some(&b'H'),
            "{name}: the lapsed hold is still in the record, for the sweep to clear"
        );

        let swept = store.sweep(event.parse().expect("an event id")).await;

        assert!(
            matches!(swept, Err(queue_core::Error::Corrupt(_))),
            "{name} broken: the sweep refuses ({swept:?})"
        );
        assert_eq!(
            seat_record(&redis, &event, 1).await,
            record_before,
            "{name} broken: the lapsed hold's record is left for a later sweep"
        );
        repair_key(&redis, key_of(&keys)).await;
    }
}
