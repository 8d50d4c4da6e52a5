//! G1, G2 and G3 under real concurrency: hundreds of simultaneous requests, several API
//! instances and several worker processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use loadgen::api::{JobKind as Post, JobView, Posted, SeatStatus};

use crate::helpers::{
    applied_by_worker, job_seq, keys_of, new_user, queue_state, seat_of, spawn_app_with,
    wait_drained, Options, RedisKind, TestApp,
};

/// Sends one request per user at once, spread over the API instances; returns (user, answer).
async fn race(app: &TestApp, post: Post, seat: &str, users: &[String]) -> Vec<(String, Posted)> {
    let requests = users
        .iter()
        .enumerate()
        .map(|(i, user)| async move { (user.clone(), app.post_job_at(i, post, seat, user).await) });
    join_all(requests).await
}

/// Waits for every accepted job; returns (user, job id, final status).
async fn finish(app: &TestApp, answers: &[(String, Posted)]) -> Vec<(String, String, JobView)> {
    let waits = answers
        .iter()
        .filter_map(|(user, posted)| Some((user, posted.job_id()?)))
        .map(|(user, job)| async move {
            let done = app.wait_job(job, Duration::from_secs(30)).await;
            (user.clone(), job.to_owned(), done)
        });
    // At most 64 polling at once: a race of hundreds would otherwise poll as many connections.
    stream::iter(waits).buffered(64).collect().await
}

/// The users whose jobs succeeded.
fn winners(finished: &[(String, String, JobView)]) -> Vec<&String> {
    finished
        .iter()
        .filter(|(_, _, done)| done.succeeded())
        .map(|(user, _, _)| user)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g1_one_seat_is_held_once_and_reserved_once() {
    let app = spawn_app_with(Options::default().apis(2).workers(0)).await;
    let _workers: Vec<_> = (1..=3)
        .map(|i| app.spawn_worker_process(&format!("g1-{i}")))
        .collect();
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 5);
    let users: Vec<String> = (0..500).map(|_| new_user()).collect();

    let holds = race(&app, Post::Hold, &seat, &users).await;
    let finished = finish(&app, &holds).await;

    for (_, posted) in &holds {
        let status = posted.status();
        assert!(
            status == 202 || (status == 409 && posted.current_status() == Some(SeatStatus::OnHold)),
            "a hold is accepted or refused because the seat is held: {status} {posted}"
        );
    }
    let winners = winners(&finished);
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 500 concurrent holds succeeds"
    );
    for (_, _, done) in finished.iter().filter(|(_, _, d)| !d.succeeded()) {
        assert_eq!(
            done.code(),
            Some(409),
            "the others find the seat held: {done}"
        );
    }
    let holder = winners[0].clone();
    let seat_now = app.seat_as(&seat, &holder).await;
    assert_eq!(
        (seat_now.status, seat_now.user.as_str()),
        (SeatStatus::OnHold, holder.as_str())
    );

    // Many users, the holder among them several times, reserve at once.
    let mut reservers: Vec<String> = (0..200).map(|_| new_user()).collect();
    reservers.extend(std::iter::repeat_n(holder.clone(), 5));
    let reserves = race(&app, Post::Reserve, &seat, &reservers).await;
    let finished = finish(&app, &reserves).await;

    for (user, posted) in &reserves {
        if *user != holder {
            // Refused at once: held by another user, or already reserved by the holder.
            let status = posted.status();
            assert!(
                status == 403
                    || (status == 409 && posted.current_status() == Some(SeatStatus::Reserved)),
                "a non-holder's reserve is refused at once: {status} {posted}"
            );
        }
    }
    let successes: Vec<_> = finished.iter().filter(|(_, _, d)| d.succeeded()).collect();
    assert_eq!(successes.len(), 1, "the seat is reserved exactly once");
    assert_eq!(successes[0].0, holder, "by its holder");
    let event_now = app.event(&event).await;
    assert_eq!(event_now.reserved, 1, "{event_now}");
    assert_eq!(app.seat(&seat).await.status, SeatStatus::Reserved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g1_jobs_queued_while_no_worker_runs_all_reach_it_and_each_seat_is_reserved_once() {
    // With workers running, most of a race stops at the API's pre-check, so the worker's own
    // checks see one or two of its jobs. Here the jobs are accepted while no worker runs: the
    // pre-check passes them all, and the worker alone decides.
    let mut app = spawn_app_with(Options::default().apis(2).workers(0)).await;
    let event = app.create_event(10).await;
    let seats: Vec<String> = (1..=10).map(|n| seat_of(&event, n)).collect();

    // 20 users race for each of the 10 seats.
    let holds = join_all(seats.iter().map(|seat| {
        let users: Vec<String> = (0..20).map(|_| new_user()).collect();
        let app = &app;
        async move { race(app, Post::Hold, seat, &users).await }
    }))
    .await;
    for (_, posted) in holds.iter().flatten() {
        assert_eq!(
            posted.status(),
            202,
            "accepted while no worker runs: {posted}"
        );
    }
    app.start_worker().await;
    let mut holders = HashMap::new();
    for (seat, holds) in seats.iter().zip(&holds) {
        let finished = finish(&app, holds).await;
        assert_eq!(
            finished.len(),
            20,
            "all 20 holds of {seat} reached the worker"
        );
        let winners = winners(&finished);
        assert_eq!(winners.len(), 1, "{seat} is held by one user: {winners:?}");
        for (_, _, done) in finished.iter().filter(|(_, _, d)| !d.succeeded()) {
            assert_eq!(
                done.code(),
                Some(409),
                "the others find {seat} held: {done}"
            );
        }
        let now = app.seat_as(seat, winners[0]).await;
        assert_eq!(
            (now.status, now.user.as_str()),
            (SeatStatus::OnHold, winners[0].as_str()),
            "{seat}"
        );
        holders.insert(seat.clone(), winners[0].clone());
    }

    // Each holder reserves its seat five times, and 20 other users try too, while no worker
    // runs: the holder's five are all accepted, the others refused at once.
    app.stop_workers().await;
    let reserves = join_all(seats.iter().map(|seat| {
        let mut users: Vec<String> = (0..20).map(|_| new_user()).collect();
        users.extend(std::iter::repeat_n(holders[seat].clone(), 5));
        let app = &app;
        async move { race(app, Post::Reserve, seat, &users).await }
    }))
    .await;
    for (seat, answers) in seats.iter().zip(&reserves) {
        for (user, posted) in answers {
            let expected = if *user == holders[seat] { 202 } else { 403 };
            assert_eq!(posted.status(), expected, "a reserve of {seat}: {posted}");
        }
    }
    app.start_worker().await;
    for (seat, answers) in seats.iter().zip(&reserves) {
        let finished = finish(&app, answers).await;
        assert_eq!(
            finished.len(),
            5,
            "the holder's five reserves of {seat} reached the worker"
        );
        let codes: Vec<Option<u16>> = finished.iter().map(|(_, _, done)| done.code()).collect();
        assert_eq!(
            codes.iter().filter(|c| **c == Some(200)).count(),
            1,
            "{seat} is reserved once, and the holder's other reserves find it reserved: {codes:?}"
        );
        for (_, _, done) in finished.iter().filter(|(_, _, d)| !d.succeeded()) {
            assert_eq!(
                (
                    done.code(),
                    done.result.as_ref().and_then(|r| r.current_status)
                ),
                (Some(409), Some(SeatStatus::Reserved)),
                "{done}"
            );
        }
        let now = app.seat_as(seat, &holders[seat]).await;
        assert_eq!(
            (now.status, now.user.as_str()),
            (SeatStatus::Reserved, holders[seat].as_str()),
            "{seat}"
        );
    }
    let counts = app.event(&event).await;
    assert_eq!(counts.reserved, 10, "each seat reserved once: {counts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g2_one_user_never_exceeds_the_hold_cap() {
    let app = spawn_app_with(Options::default().workers(2)).await;
    let event = app.create_event(60).await;
    let user = new_user();
    let cap = app.settings.reservations.max_held_seats as usize;

    let holds = join_all((1..=50).map(|n| {
        let seat = seat_of(&event, n);
        let user = user.clone();
        let app = &app;
        async move { (seat.clone(), app.hold(&seat, &user).await) }
    }))
    .await;
    let answers: Vec<(String, Posted)> = holds
        .into_iter()
        .map(|(_, posted)| (user.clone(), posted))
        .collect();
    assert!(
        answers.iter().all(|(_, posted)| posted.status() == 202),
        "every hold is on a free seat"
    );
    let finished = finish(&app, &answers).await;

    let held = finished.iter().filter(|(_, _, d)| d.succeeded()).count();
    assert_eq!(held, cap, "exactly MAX_HELD_SEATS holds succeed");
    for (_, _, done) in finished.iter().filter(|(_, _, d)| !d.succeeded()) {
        assert_eq!(done.code(), Some(429), "the rest hit the cap: {done}");
        assert_eq!(
            done.result.as_ref().and_then(|r| r.limit),
            Some(cap as u32),
            "{done}"
        );
    }
    assert_eq!(app.event(&event).await.on_hold, cap as u32);

    // Releasing one makes room for exactly one more.
    let first = finished
        .iter()
        .find(|(_, _, d)| d.succeeded())
        .map(|(_, _, d)| d.seat().expect("a seat id").id.clone())
        .expect("a held seat");
    assert_eq!(app.release(&first, &user).await.status(), 200);
    let again = app.hold_and_wait(&seat_of(&event, 60), &user).await;
    assert!(again.succeeded(), "{again}");
    let over = app.hold_and_wait(&seat_of(&event, 59), &user).await;
    assert_eq!(over.code(), Some(429), "{over}");
}

/// Batches one drain task applies to an event before it hands the event on to the pool
/// (`ROUNDS_PER_TURN` in worker/src/drain.rs); no setting names it.
const BATCHES_PER_TURN: usize = 16;

/// One user's holds of three seats, each sent once the one before it was accepted, highest seat
/// first: acceptance order and seat order disagree. Returns (seat, job id) in acceptance order.
async fn three_holds_downwards(app: &TestApp, event: &str, lowest: u32) -> Vec<(String, String)> {
    let user = new_user();
    let mut jobs = Vec::new();
    for n in (lowest..lowest + 3).rev() {
        let seat = seat_of(event, n);
        let posted = app.hold(&seat, &user).await;
        assert_eq!(posted.status(), 202, "{seat} is free: {posted}");
        jobs.push((seat, posted.job_id().expect("a job id").to_owned()));
    }
    jobs
}

/// G3 across seats, through the hold cap (MAX_HELD_SEATS = 2): of one user's three holds, the two
/// accepted first win and the third gets 429, whatever their seats. `jobs` are one user's three
/// (seat, job id), in any order; `finished` has every job's final state.
fn assert_the_first_two_accepted_win(
    jobs: &[(String, String)],
    finished: &HashMap<String, JobView>,
) {
    let mut jobs = jobs.to_vec();
    jobs.sort_by_key(|(_, job)| job_seq(job));
    let codes: Vec<(&str, Option<u16>)> = jobs
        .iter()
        .map(|(seat, job)| (seat.as_str(), finished[job].code()))
        .collect();
    let expected: Vec<(&str, Option<u16>)> = jobs
        .iter()
        .zip([200, 200, 429])
        .map(|((seat, _), code)| (seat.as_str(), Some(code)))
        .collect();
    assert_eq!(
        codes, expected,
        "one user's holds in acceptance order: the first two are held, the third hits the cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g3_the_earliest_accepted_hold_wins_with_several_workers() {
    // Jobs pile up while three worker processes are paused, more than one worker's turn of them,
    // then all three go on them together: every job was accepted, so the order is the workers'
    // alone. One drain task per process, so that an event handed on at the end of a turn goes to
    // another process.
    let app = spawn_app_with(
        Options::default()
            .apis(2)
            .workers(0)
            .env("MAX_HELD_SEATS", 2)
            .env("WORKER_CONCURRENCY", 1),
    )
    .await;
    let turn = BATCHES_PER_TURN * app.settings.workers.batch_size;
    // 200 users race for seat 1; and users hold three seats each, two turns' worth of jobs.
    let downwards = 2 * turn / 3;
    let event = app.create_event(1 + 3 * downwards as u32).await;
    let seat = seat_of(&event, 1);
    let users: Vec<String> = (0..200).map(|_| new_user()).collect();
    let redis = app.redis.client().await;
    let workers: Vec<_> = (1..=3)
        .map(|i| app.spawn_worker_process(&format!("g3-{i}")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while applied_by_worker(&redis).await.len() < 3 {
        assert!(Instant::now() < deadline, "the three workers did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in &workers {
        worker.signal("STOP");
    }

    let holds = race(&app, Post::Hold, &seat, &users).await;
    assert!(
        holds.iter().all(|(_, posted)| posted.status() == 202),
        "all 200 are accepted while the workers are paused"
    );
    let first = holds
        .iter()
        .min_by_key(|(_, posted)| job_seq(posted.job_id().expect("a job id")))
        .map(|(user, _)| user.clone())
        .expect("accepted jobs");
    // A few users at a time, so that one user's three jobs sit close in the queue (in one batch).
    let triples: Vec<Vec<(String, String)>> = stream::iter(0..downwards as u32)
        .map(|i| three_holds_downwards(&app, &event, 2 + 3 * i))
        .buffer_unordered(4)
        .collect()
        .await;
    let backlog = queue_state(&redis, &event).await;
    assert!(
        backlog.left() as usize > turn,
        "more than one worker's turn ({turn} jobs) waits: {backlog:?}"
    );
    for worker in &workers {
        worker.signal("CONT");
    }
    wait_drained(&redis, &event, Duration::from_secs(30)).await;
    let finished = finish(&app, &holds).await;
    let mut all: HashMap<String, JobView> = finished
        .iter()
        .map(|(_, job, done)| (job.clone(), done.clone()))
        .collect();
    for (_, job) in triples.iter().flatten() {
        all.insert(
            job.clone(),
            app.wait_job(job, Duration::from_secs(10)).await,
        );
    }

    let winners: Vec<_> = finished.iter().filter(|(_, _, d)| d.succeeded()).collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(
        winners[0].0, first,
        "the user whose job was accepted first holds the seat"
    );
    for jobs in &triples {
        assert_the_first_two_accepted_win(jobs, &all);
    }
    // Applied in acceptance order: completion times never go backwards along the sequence.
    let mut by_seq: Vec<(u64, i64)> = all
        .iter()
        .map(|(job, d)| (job_seq(job), d.completed_at.expect("completedAt")))
        .collect();
    by_seq.sort();
    assert!(
        by_seq.windows(2).all(|w| w[0].1 <= w[1].1),
        "jobs were applied in acceptance order"
    );
    // Really several workers: the heartbeats (every heartbeat_ms) count every job applied, and
    // more than one process applied some.
    let deadline = Instant::now() + Duration::from_secs(10);
    let applied = loop {
        let applied = applied_by_worker(&redis).await;
        if applied.values().sum::<u64>() == backlog.enq {
            break applied;
        }
        assert!(
            Instant::now() < deadline,
            "the heartbeats count the {} jobs applied: {applied:?}",
            backlog.enq
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("jobs applied by each worker: {applied:?}");
    assert!(
        applied.values().filter(|n| **n > 0).count() >= 2,
        "the workers took turns on the backlog: {applied:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g3_with_workers_running_each_seat_goes_to_its_earliest_accepted_hold() {
    let app = spawn_app_with(
        Options::default()
            .apis(2)
            .workers(0)
            .env("MAX_HELD_SEATS", 2),
    )
    .await;
    let _workers: Vec<_> = (1..=3)
        .map(|i| app.spawn_worker_process(&format!("g3b-{i}")))
        .collect();
    let event = app.create_event(170).await;

    // 20 seats, 15 users each, all at once while the workers drain; meanwhile 50 users each send
    // holds of three of the other 150 seats at once (their order of acceptance is the queue's).
    let requests: Vec<(u32, String)> = (1..=20)
        .flat_map(|n| (0..15).map(move |_| (n, new_user())))
        .collect();
    let race = join_all(requests.iter().enumerate().map(|(i, (n, user))| {
        let seat = seat_of(&event, *n);
        let app = &app;
        async move {
            let posted = app.post_job_at(i % 2, Post::Hold, &seat, user).await;
            (seat, user.clone(), posted)
        }
    }));
    let triples = join_all((0..50u32).map(|i| {
        let (app, event, user) = (&app, &event, new_user());
        join_all((0..3).map(move |k| {
            let seat = seat_of(event, 21 + 3 * i + k);
            let user = user.clone();
            async move {
                let posted = app.post_job_at(k as usize, Post::Hold, &seat, &user).await;
                assert_eq!(posted.status(), 202, "{seat} is free: {posted}");
                (seat, posted.job_id().expect("a job id").to_owned())
            }
        }))
    }));
    let (answers, triples) = futures::join!(race, triples);

    let mut accepted: HashMap<String, Vec<(u64, String)>> = HashMap::new();
    for (seat, user, posted) in &answers {
        let status = posted.status();
        assert!(status == 202 || status == 409, "{status} {posted}");
        if status == 202 {
            let job = posted.job_id().expect("a job id").to_owned();
            app.wait_job(&job, Duration::from_secs(30)).await;
            accepted
                .entry(seat.clone())
                .or_default()
                .push((job_seq(&job), user.clone()));
        }
    }
    assert_eq!(
        accepted.len(),
        20,
        "every seat had at least one accepted hold"
    );
    for (seat, mut jobs) in accepted {
        jobs.sort();
        let holder = app.seat_as(&seat, &jobs[0].1).await.user;
        assert_eq!(
            holder, jobs[0].1,
            "{seat} went to its earliest accepted hold"
        );
    }
    let mut finished = HashMap::new();
    for (_, job) in triples.iter().flatten() {
        finished.insert(
            job.clone(),
            app.wait_job(job, Duration::from_secs(30)).await,
        );
    }
    for jobs in &triples {
        assert_the_first_two_accepted_win(jobs, &finished);
    }
}

/// How many scripts Redis has run so far (EVALSHA calls, from INFO commandstats).
async fn evalsha_calls(app: &TestApp) -> u64 {
    use fred::interfaces::ClientLike;
    let info: String = app
        .redis
        .client()
        .await
        .custom(fred::cmd!("INFO"), vec!["commandstats".to_owned()])
        .await
        .expect("INFO commandstats");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_sent_together_go_in_batches_and_each_gets_its_own_answer() {
    use queue_core::{Enqueued, Enqueuer, JobKind, Refusal, SeatId, SeatStatus, Store, UserId};

    // No worker runs, so the queue only grows: 150 jobs fit in it.
    let app = spawn_app_with(Options::default().workers(0).env("QUEUE_MAX_DEPTH", 150)).await;
    let store = Store::connect(&app.settings).await.expect("a store");
    let event_text = app.create_event(100).await;
    let event: queue_core::EventId = event_text.parse().expect("an event id");
    let seat = |n: u32| SeatId::new(event, n).expect("a seat number in range");
    let user = || -> UserId { new_user().parse().expect("a UUID") };

    // 400 jobs at once from one process: holds of free seats (accepted until the queue is
    // full), reserves of free seats (409) and holds of seats past the event's 100 (404).
    let jobs: Vec<(JobKind, SeatId)> = (0..400u32)
        .map(|i| match i % 4 {
            1 => (JobKind::Reserve, seat(i % 100 + 1)),
            2 => (JobKind::Hold, seat(100 + i % 100 + 1)),
            _ => (JobKind::Hold, seat(i % 100 + 1)),
        })
        .collect();
    let enqueuer = Enqueuer::new(store.clone());
    let scripts_before = evalsha_calls(&app).await;
    let answers = join_all(
        jobs.iter()
            .map(|(kind, seat)| enqueuer.enqueue(*kind, *seat, user())),
    )
    .await;
    let scripts_run = evalsha_calls(&app).await - scripts_before;

    let mut accepted = Vec::new();
    let mut full = 0;
    for ((kind, seat), answer) in jobs.iter().zip(&answers) {
        match (kind, answer.as_ref().expect("Redis answers")) {
            (JobKind::Reserve, answer) => assert_eq!(
                *answer,
                Enqueued::Refused(Refusal::Conflict {
                    current: SeatStatus::Available
                }),
                "a reserve of a free seat"
            ),
            (JobKind::Hold, answer) if seat.number() > 100 => {
                assert_eq!(*answer, Enqueued::Refused(Refusal::NoSuchSeat), "{seat}")
            }
            (JobKind::Hold, Enqueued::Accepted { job, position }) => {
                accepted.push((job.seq(), *position))
            }
            (JobKind::Hold, Enqueued::QueueFull { depth }) => {
                assert_eq!(*depth, 150, "refused at the configured depth");
                full += 1;
            }
            (JobKind::Hold, other) => panic!("a hold of a free seat: {other:?}"),
        }
    }
    assert_eq!((accepted.len(), full), (150, 50), "150 fit, 50 did not");
    // Each accepted job has its own number, from 1 up without a gap, and as many jobs ahead.
    accepted.sort();
    for (i, (seq, position)) in accepted.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "sequence numbers are dense");
        assert_eq!(*position, i as u64, "job {seq} has {i} jobs ahead");
    }
    let redis = app.redis.client().await;
    let queued: u64 = fred::interfaces::ListInterface::llen(&redis, keys_of(&event_text).queue)
        .await
        .expect("LLEN");
    assert_eq!(
        queued, 150,
        "the queue holds the accepted jobs and no other"
    );
    // Sent one by one, that would have been 400 script runs.
    assert!(
        scripts_run <= 20,
        "400 jobs sent at once went to Redis in {scripts_run} script runs"
    );
    println!("400 jobs sent at once: {scripts_run} script runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_redis_the_jobs_of_many_events_sent_together_share_script_runs_in_order() {
    use queue_core::{Enqueued, Enqueuer, JobKind, SeatId, Store, UserId};

    // One Redis: there a run takes the jobs of every event (on a cluster, of one event).
    let app = spawn_app_with(Options::default().workers(0).redis(RedisKind::Single)).await;
    let store = Store::connect(&app.settings).await.expect("a store");
    let mut events: Vec<queue_core::EventId> = Vec::new();
    for _ in 0..40 {
        events.push(app.create_event(20).await.parse().expect("an event id"));
    }
    // 400 holds at once from one process, the 40 events' interleaved: 10 per event, of seats
    // 1 to 10 in that order.
    let jobs: Vec<(queue_core::EventId, u32)> = (0..400u32)
        .map(|i| (events[(i % 40) as usize], i / 40 + 1))
        .collect();
    let enqueuer = Enqueuer::new(store.clone());
    let scripts_before = evalsha_calls(&app).await;
    let answers = join_all(jobs.iter().map(|(event, n)| {
        let seat = SeatId::new(*event, *n).expect("a seat number in range");
        let user: UserId = new_user().parse().expect("a UUID");
        enqueuer.enqueue(JobKind::Hold, seat, user)
    }))
    .await;
    let scripts_run = evalsha_calls(&app).await - scripts_before;

    // Each event's jobs got the sequence numbers 1 to 10 in the order they were sent (G3):
    // seat n's hold is job n.
    for ((event, n), answer) in jobs.iter().zip(&answers) {
        match answer.as_ref().expect("Redis answers") {
            Enqueued::Accepted { job, position } => {
                assert_eq!(job.event(), *event, "the job is its event's");
                assert_eq!(job.seq(), u64::from(*n), "seat {n}'s hold is job {n}");
                assert_eq!(
                    *position,
                    u64::from(*n) - 1,
                    "with the jobs before it ahead"
                );
            }
            other => panic!("a hold of a free seat: {other:?}"),
        }
    }
    let redis = app.redis.client().await;
    for event in &events {
        let queued: u64 =
            fred::interfaces::ListInterface::llen(&redis, keys_of(&event.to_string()).queue)
                .await
                .expect("LLEN");
        assert_eq!(queued, 10, "the event's queue holds its 10 jobs");
    }
    // Sent per event, that would have been at least 40 script runs (one per event).
    assert!(
        scripts_run < 40,
        "400 jobs of 40 events sent at once went to Redis in {scripts_run} script runs"
    );
    println!("400 jobs of 40 events sent at once: {scripts_run} script runs");
}
