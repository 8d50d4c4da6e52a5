//! G4 with real worker processes killed mid-stream, and graceful shutdown on SIGTERM.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fred::interfaces::{HashesInterface, SortedSetsInterface};
use futures::future::join_all;
use loadgen::api::{JobKind, JobStatus, JobView, SeatStatus};
use serde_json::Value;

use crate::helpers::{
    assert_each_seat_went_to_its_first_hold, change_entries, free_port, job_records, keys_of,
    new_user, now_ms, queue_holds, queue_state, seat_of, spawn_app_with, taken_over_within,
    wait_drained, Options, BACKLOG_APPLIED_WITHIN,
};

/// A pseudo-random number from a fresh UUID (the tests need no seedable generator).
fn random_below(n: u32) -> u32 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n)) as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g4_a_worker_killed_mid_stream_loses_and_doubles_nothing() {
    let app = spawn_app_with(Options::default().workers(0).env("MAX_HELD_SEATS", 1000)).await;
    let mut workers: Vec<_> = (1..=3)
        .map(|i| app.spawn_worker_process(&format!("g4-{i}")))
        .collect();
    let events: Vec<String> = join_all((0..3).map(|_| app.create_event(300))).await;

    // Producers: each user holds random seats and reserves what it got, for a few seconds.
    let accepted: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let stream_for = Duration::from_secs(5);
    let started = Instant::now();
    let producers = (0..24).map(|_| {
        let (app, events, accepted) = (&app, &events, &accepted);
        async move {
            let user = new_user();
            while started.elapsed() < stream_for {
                let event = &events[random_below(3) as usize];
                let seat = seat_of(event, 1 + random_below(300));
                let posted = app.hold(&seat, &user).await;
                if posted.status() != 202 {
                    assert_eq!(
                        posted.status(),
                        409,
                        "a hold is accepted or finds the seat taken: {posted}"
                    );
                    continue;
                }
                let job = posted.job_id().expect("a job id").to_owned();
                accepted.lock().expect("not poisoned").push(job.clone());
                let done = app.wait_job(&job, Duration::from_secs(30)).await;
                if done.succeeded() && random_below(2) == 0 {
                    let posted = app.reserve(&seat, &user).await;
                    if posted.status() == 202 {
                        accepted
                            .lock()
                            .expect("not poisoned")
                            .push(posted.job_id().expect("a job id").to_owned());
                    }
                }
            }
        }
    });
    let killer = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        workers[0].kill_9();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        workers.push(app.spawn_worker_process("g4-replacement"));
    };
    futures::join!(join_all(producers), killer);

    // Every accepted job ends, exactly once.
    let accepted = accepted.into_inner().expect("not poisoned");
    assert!(
        accepted.len() > 200,
        "a steady stream ({} jobs)",
        accepted.len()
    );
    let finals: Vec<JobView> = join_all(
        accepted
            .iter()
            .map(|job| app.wait_job(job, Duration::from_secs(30))),
    )
    .await;
    let mut held_by: HashMap<String, Vec<String>> = HashMap::new();
    let mut reserved: HashMap<String, Vec<String>> = HashMap::new();
    for done in &finals {
        assert!(
            done.status == JobStatus::Completed,
            "no infrastructure failure expected: {done}"
        );
        if done.succeeded() {
            let seat = done.seat().expect("a seat");
            let (seat, user) = (seat.id.clone(), seat.user.clone());
            let map = if done.kind == Some(JobKind::Hold) {
                &mut held_by
            } else {
                &mut reserved
            };
            map.entry(seat).or_default().push(user);
        }
    }
    for (seat, holders) in &held_by {
        assert_eq!(
            holders.len(),
            1,
            "{seat} was held by one successful job, not {holders:?}"
        );
    }
    let redis = app.redis.client().await;
    for event in &events {
        let counts = app.event(event).await;
        let successes = reserved
            .keys()
            .filter(|s| s.starts_with(event.as_str()))
            .count();
        assert_eq!(
            counts.reserved as usize, successes,
            "each reserve applied once: {counts}"
        );
        let (enq, deq): (Option<u64>, Option<u64>) = redis
            .hmget(keys_of(event).event, vec!["enq", "deq"])
            .await
            .expect("HMGET");
        assert_eq!(
            enq, deq,
            "every accepted job of {event} was taken off the queue once"
        );
    }
    for (seat, users) in &reserved {
        assert_eq!(users.len(), 1, "{seat} reserved once");
        let now = app.seat_as(seat, &users[0]).await;
        assert_eq!(
            (now.status, now.user.as_str()),
            (SeatStatus::Reserved, users[0].as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g4_a_worker_killed_holding_a_lease_with_jobs_left_loses_and_doubles_nothing() {
    let app = spawn_app_with(Options::default().workers(0)).await;
    let workers = app.settings.workers.clone();
    let batch = workers.batch_size as u64;
    // A backlog of 10,000 jobs (157 batches of 64), queued while no worker runs: two users race
    // for each of 5,000 seats.
    let seats = 5000;
    let event = app.create_event(seats).await;
    let store = queue_core::Store::connect(&app.settings)
        .await
        .expect("a store");
    let holds: Vec<(String, String)> = (1..=seats)
        .flat_map(|n| {
            [
                (seat_of(&event, n), new_user()),
                (seat_of(&event, n), new_user()),
            ]
        })
        .collect();
    let jobs = queue_holds(
        &queue_core::Enqueuer::new(store),
        &app.job_ids().await,
        &holds,
    )
    .await;
    let redis = app.redis.client().await;

    // One worker process starts on it, and is killed as soon as it has applied a batch.
    let mut first = app.spawn_worker_process("mid-drain-1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue_state(&redis, &event).await.deq < batch {
        assert!(Instant::now() < deadline, "the worker never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.kill_9();
    let killed = Instant::now();
    // A script it had sent runs whole or not at all; give Redis a moment to finish one.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at_kill = queue_state(&redis, &event).await;
    let now = now_ms();
    println!("killed with {at_kill:?}, now {now}");
    assert!(
        at_kill.deq >= batch && at_kill.left() > batch,
        "killed mid-drain, after a batch ({batch} jobs) and with more than one left: {at_kill:?}"
    );
    assert!(
        at_kill.lease > now && at_kill.lease <= now + workers.lease_ms as i64,
        "it held the event's lease, for at most lease_ms ({} ms) from its last batch: \
         {at_kill:?}, now {now}",
        workers.lease_ms
    );

    // Nothing wakes the event but its lease lapsing, then the next reconcile.
    let _second = app.spawn_worker_process("mid-drain-2");
    let within = taken_over_within(&workers);
    while queue_state(&redis, &event).await.deq == at_kill.deq {
        assert!(
            killed.elapsed() < within,
            "no worker took the event over within {within:?} of the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let taken_over = killed.elapsed();
    wait_drained(&redis, &event, BACKLOG_APPLIED_WITHIN).await;
    println!(
        "taken over {taken_over:?} after the kill (bound {within:?}), drained {:?} later",
        killed.elapsed() - taken_over
    );

    // Every job ended once: each seat went to its earliest accepted hold.
    let records = job_records(&app, &redis, &event).await;
    assert_eq!(records.len(), jobs.len(), "one record per accepted job");
    let holds: Vec<(String, String, String)> = holds
        .into_iter()
        .zip(jobs)
        .map(|((seat, user), job)| (seat, user, job))
        .collect();
    assert_each_seat_went_to_its_first_hold(&holds, &records);
    let counts = app.event(&event).await;
    assert_eq!(
        (counts.on_hold, counts.available),
        (seats, 0),
        "every seat is held: {counts}"
    );
    let held = change_entries(&app, &event, "0-0")
        .await
        .into_iter()
        .filter(|(_, fields)| {
            fields
                .get("k")
                .is_some_and(|k| k.as_bytes() == [queue_core::ChangeKind::Held.code()])
        })
        .count();
    assert_eq!(
        held, seats as usize,
        "one hold applied per seat, none twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_worker_cleanly_and_its_work_goes_on() {
    let app = spawn_app_with(Options::default().workers(0)).await;
    let mut first = app.spawn_worker_process("term-1");
    let event = app.create_event(100).await;
    assert!(app
        .hold_and_wait(&seat_of(&event, 1), &new_user())
        .await
        .succeeded());

    // Jobs keep coming while the worker is told to stop.
    let mut jobs = Vec::new();
    for n in 2..=60 {
        let posted = app.hold(&seat_of(&event, n), &new_user()).await;
        assert_eq!(posted.status(), 202, "{posted}");
        jobs.push(posted.job_id().expect("a job id").to_owned());
    }
    let status = first.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "a worker exits 0 on SIGTERM, got {status}"
    );

    // Whatever it did not apply, the next worker does.
    let _second = app.spawn_worker_process("term-2");
    for job in &jobs {
        let done = app.wait_job(job, Duration::from_secs(15)).await;
        assert!(done.succeeded(), "{done}");
    }
}

/// The JSON lines of the log files in `dir` whose name starts with `prefix`.
fn json_log_lines(dir: &std::path::Path, prefix: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("the log directory exists")
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let text = std::fs::read_to_string(entry.path()).expect("a readable log");
            for line in text.lines() {
                lines.push(
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")),
                );
            }
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binaries_exit_0_on_sigterm_and_sigint_and_log_json() {
    let app = spawn_app_with(Options::default().workers(0).env("LOG_LEVEL", "info")).await;
    let port = free_port();
    let mut api = app.spawn_api_process(port);
    let mut worker = app.spawn_worker_process("signals-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = app
            .http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await;
        if let Ok(response) = health {
            if response.status().as_u16() == 200 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the API process never reported a live worker"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let api_exit = api.stop_with("TERM", Duration::from_secs(10));
    let worker_exit = worker.stop_with("INT", Duration::from_secs(10));

    assert!(
        api_exit.success(),
        "the API exits 0 on SIGTERM, got {api_exit}"
    );
    assert!(
        worker_exit.success(),
        "a worker exits 0 on SIGINT, got {worker_exit}"
    );
    for (prefix, said) in [("api.", "API listening"), ("signals-1.", "worker stopped")] {
        let lines = json_log_lines(app.log_dir(), prefix);
        assert!(
            lines.iter().any(|l| l["fields"]["message"] == said),
            "{prefix}*.log holds JSON lines, among them `{said}`: {lines:?}"
        );
    }
}

#[tokio::test]
async fn the_api_stops_on_request_and_returns() {
    let redis = crate::helpers::TestRedis::start();
    let env = HashMap::from([("REDIS_URL", redis.url()), ("PORT", "0".to_owned())]);
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    let settings =
        queue_core::Settings::load_with(&dir, |n| env.get(n).cloned()).expect("settings");
    let app = api::Application::build(&settings)
        .await
        .expect("the API starts");
    let port = app.port();
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(stop.clone()));
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("answers");
    assert_eq!(health.status().as_u16(), 503, "up, with no worker yet");

    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the API returns cleanly after shutdown: {stopped:?}"
    );
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .is_err(),
        "nothing listens any more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_be_applied_is_retried_with_backoff_then_fails_without_blocking_the_next()
{
    let mut app = spawn_app_with(
        Options::default()
            .workers(0)
            // Long enough that a status poll every 10 ms sees the first wait, at least 250 ms,
            // on a busy machine and a cluster too (at 100 ms, one run in many missed it; at
            // 300 ms, one cluster run in CI did).
            .env("JOB_RETRY_ATTEMPTS", 4)
            .env("JOB_RETRY_BASE_MS", 500),
    )
    .await;
    let event = app.create_event(10).await;
    let keys = keys_of(&event);
    let redis = app.redis.client().await;
    // A job of an unknown kind, queued as enqueue.lua would queue one (sequence 1).
    let seq: u64 = redis.hincrby(&keys.event, "enq", 1).await.expect("HINCRBY");
    let corrupt = format!("X{}1|0|{seq}", "u".repeat(16));
    let _: u64 = fred::interfaces::ListInterface::rpush(&redis, &keys.queue, corrupt)
        .await
        .expect("RPUSH");
    let posted = app.hold(&seat_of(&event, 1), &new_user()).await;
    assert_eq!(posted.status(), 202, "{posted}");
    assert_eq!(
        posted.body().map(|q| q.position),
        Some(1),
        "the corrupt job is ahead of it"
    );
    let good = posted.job_id().expect("a job id").to_owned();

    // Its id first, so that the polling below starts as soon as the worker does.
    let bad_id = app.public_job_id(&event, seq).await;
    app.start_worker().await;
    let started = Instant::now();

    // Follow the bad job: waiting between attempts, saying why, until it gives up.
    let mut attempts_seen = Vec::new();
    let bad = loop {
        let body = app
            .job_status(&bad_id)
            .await
            .unwrap_or_else(|| panic!("job {bad_id}: 404, not 200"));
        if body.status == JobStatus::Failed {
            break body;
        }
        if let Some(error) = &body.error {
            assert_eq!(body.status, JobStatus::Waiting, "between attempts: {body}");
            assert!(error.contains("unknown job kind"), "{body}");
            let attempt = error
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse::<u32>().ok())
                .expect("`attempt N ...`");
            if attempts_seen.last() != Some(&attempt) {
                attempts_seen.push(attempt);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "it never gave up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let gave_up_after = started.elapsed();

    let done = app.wait_job(&good, Duration::from_secs(5)).await;
    assert!(done.succeeded(), "the job behind it is applied: {done}");
    assert!(
        done.completed_at < bad.completed_at,
        "the job behind it did not wait for the retries: {done} {bad}"
    );
    assert!(
        bad.error.as_deref().is_some_and(
            |e| e.contains("gave up after 4 attempts") && e.contains("unknown job kind")
        ),
        "it says why and how often it tried: {bad}"
    );
    assert_eq!(attempts_seen, [1, 2, 3], "each retry was seen waiting");
    // Backoff: the three delays are at least half of 500, 1,000 and 2,000 ms.
    println!("gave up after {gave_up_after:?}");
    assert!(
        gave_up_after >= Duration::from_millis(1750),
        "retries were spaced out: gave up after {gave_up_after:?}"
    );
    let left: u64 = redis.zcard(&keys.retry).await.expect("ZCARD");
    assert_eq!(left, 0, "nothing left to retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_fail_together_are_retried_in_their_order_of_acceptance() {
    let mut app = spawn_app_with(
        Options::default()
            .workers(0)
            .env("JOB_RETRY_ATTEMPTS", 5)
            .env("JOB_RETRY_BASE_MS", 200),
    )
    .await;
    let event = app.create_event(10).await;
    let keys = keys_of(&event);
    let redis = app.redis.client().await;
    // Four users race for seat 1; while the holders hash is broken (the wrong type), every
    // attempt to apply a hold raises.
    let mut jobs = Vec::new();
    for _ in 0..4 {
        let user = new_user();
        let posted = app.hold(&seat_of(&event, 1), &user).await;
        assert_eq!(posted.status(), 202, "{posted}");
        jobs.push((user, posted.job_id().expect("a job id").to_owned()));
    }
    let _: () = fred::interfaces::KeysInterface::set(
        &redis,
        &keys.holders,
        "not a hash",
        None,
        None,
        false,
    )
    .await
    .expect("SET");
    app.start_worker().await;
    // All four fail their first attempt and wait for a retry...
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let waiting: u64 = redis.zcard(&keys.retry).await.expect("ZCARD");
        if waiting == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the four jobs never failed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ...then the data is repaired, and the retries apply them in the order they were accepted.
    let _: () = fred::interfaces::KeysInterface::del(&redis, &keys.holders)
        .await
        .expect("DEL");
    let mut codes = Vec::new();
    for (_, job) in &jobs {
        let done = app.wait_job(job, Duration::from_secs(10)).await;
        assert_eq!(done.status, JobStatus::Completed, "{done}");
        codes.push(done.code().expect("a code"));
    }
    assert_eq!(codes, [200, 409, 409, 409], "the earliest accepted wins");
    let seat = app.seat_as(&seat_of(&event, 1), &jobs[0].0).await;
    assert_eq!(seat.user, jobs[0].0.as_str());
}
