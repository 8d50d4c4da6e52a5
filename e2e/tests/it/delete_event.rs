//! `DELETE /events/{id}` (docs/CONTRACT.md §2, G7): admin only; every key of the event goes, bar
//! the small tombstone that makes its jobs read `failed` for JOB_RESULT_TTL; Redis's memory comes
//! back; Redis stays responsive while it happens; open streams end; workers and housekeeping
//! carry on. Run with `--nocapture` to see the figures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::{
    ClientLike, ConfigInterface, KeysInterface, ListInterface, MemoryInterface,
    SortedSetsInterface, StreamsInterface,
};
use futures::stream::{self, StreamExt};
use queue_core::{Enqueued, Enqueuer, JobKind, SeatId, Store, UserId};
use serde_json::Value as Json;

use crate::helpers::{
    keys_of, new_user, queue_holds, queue_state, seat_of, slowlog, spawn_app_with, Options, TestApp,
};

const ADMIN_TOKEN: &str = "an-admin-token-for-the-tests-0123";
const JWT_SECRET: &str = "a-jwt-secret-of-at-least-32-characters!";
/// How far above its level before the event Redis's `used_memory` (less client buffers) may
/// stay once the event is deleted. The event's keys take about 1.8 MB (2.1 MB of used_memory);
/// after the delete the tombstone (about 100 bytes) stays, and Redis keeps some 150 to 260 KB
/// more than before (measured over six runs), though the same event was built, read and deleted
/// once before that level was taken. Three create-and-delete cycles in a row left used_memory
/// within 200 bytes of one another, so nothing of an event accumulates; what the residue is (the
/// Lua client's argument arrays, allocator size classes, MEMORY USAGE's sampling) was not pinned
/// down.
const MEMORY_SLACK: u64 = 384 * 1024;
/// The longest any one Redis command may take while an event is deleted.
const LONGEST_COMMAND: Duration = Duration::from_millis(50);
/// How soon after a deletion an open stream of the event must have ended (another API
/// process's hub checks its watched events every second).
const STREAM_ENDS_WITHIN: Duration = Duration::from_secs(5);

async fn delete(app: &TestApp, api: usize, event: &str, token: Option<&str>) -> reqwest::Response {
    let base = if api == 0 {
        app.address.clone()
    } else {
        app.apis[api].base().to_owned()
    };
    let mut request = app.http.delete(format!("{base}/events/{event}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the API answers")
}

/// Every key whose name holds the event's id, by SCAN.
pub(crate) async fn keys_named(redis: &Client, event: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, keys): (String, Vec<String>) = redis
            .custom(
                fred::cmd!("SCAN"),
                vec![
                    cursor,
                    "MATCH".to_owned(),
                    format!("*{event}*"),
                    "COUNT".to_owned(),
                    "1000".to_owned(),
                ],
            )
            .await
            .expect("SCAN");
        found.extend(keys);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    found.sort();
    found
}

/// Whether any service-wide set or list still names the event.
async fn registered_anywhere(redis: &Client, event: &str) -> Vec<&'static str> {
    let mut named = Vec::new();
    let shard = queue_core::keys::Shard::of(event.parse().expect("an event id"));
    for (name, key) in [
        ("events", queue_core::keys::EVENTS),
        ("hints", shard.hints()),
        ("due", shard.due()),
    ] {
        let score: Option<f64> = redis.zscore(key, event).await.expect("ZSCORE");
        if score.is_some() {
            named.push(name);
        }
    }
    let tokens: Vec<String> = redis.lrange(shard.ready(), 0, -1).await.expect("LRANGE");
    if tokens.iter().any(|t| t == event) {
        named.push("ready");
    }
    named
}

fn info_field(info: &str, name: &str) -> u64 {
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {name}"))
}

/// Redis's `used_memory` less what its clients' buffers take (`mem_clients_normal`: sized by
/// the connections' traffic, not by any data), once its background frees are done.
async fn used_memory(redis: &Client) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis
            .custom(fred::cmd!("INFO"), vec!["memory".to_owned()])
            .await
            .expect("INFO memory");
        if info_field(&info, "lazyfree_pending_objects") == 0 || Instant::now() > deadline {
            return info_field(&info, "used_memory") - info_field(&info, "mem_clients_normal");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bytes_of_event(redis: &Client, event: &str) -> u64 {
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

/// Applies every job queued on the event, as a worker would (no worker runs in these tests).
async fn apply_all(store: &Store, event: &str) {
    let id = event.parse().expect("an event id");
    loop {
        let batch = store.process(id, 64).await.expect("process");
        if batch.remaining == 0 {
            return;
        }
    }
}

async fn queue_reserves(
    enqueuer: &Enqueuer,
    job_ids: &api::job_ids::JobIds,
    reserves: &[(String, String)],
) -> Vec<String> {
    stream::iter(reserves)
        .map(|(seat, user)| async move {
            let seat: SeatId = seat.parse().expect("a seat id");
            let user: UserId = user.parse().expect("a user id");
            match enqueuer.enqueue(JobKind::Reserve, seat, user).await {
                Ok(Enqueued::Accepted { job, .. }) => job_ids.public(job),
                other => panic!("a reserve of a seat its user holds is accepted: {other:?}"),
            }
        })
        .buffered(256)
        .collect()
        .await
}

/// An open `GET /events/{id}/stream`, read to its end by a task of its own.
struct OpenStream {
    ended: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

async fn open_stream(base: &str, event: &str) -> OpenStream {
    let mut response = reqwest::Client::new()
        .get(format!("{base}/events/{event}/stream"))
        .send()
        .await
        .expect("the stream answers");
    assert_eq!(response.status(), 200, "the stream of {event} opens");
    let (ended, bytes) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let (done, count) = (ended.clone(), bytes.clone());
    let task = tokio::spawn(async move {
        let result = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    count.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            }
        };
        done.store(true, Ordering::Relaxed);
        result
    });
    OpenStream { ended, bytes, task }
}

impl OpenStream {
    /// Waits until the snapshot (at least `min_bytes`) came.
    async fn wait_for_snapshot(&self, min_bytes: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.bytes.load(Ordering::Relaxed) < min_bytes {
            assert!(Instant::now() < deadline, "the stream's snapshot came");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the body to finish; panics unless it finishes cleanly within `within`.
    async fn ends_within(self, within: Duration) -> Duration {
        let started = Instant::now();
        let ended = tokio::time::timeout(within, self.task)
            .await
            .unwrap_or_else(|_| panic!("the stream did not end within {within:?}"))
            .expect("the reading task runs");
        assert_eq!(ended, Ok(()), "the stream's body finished cleanly");
        assert!(self.ended.load(Ordering::Relaxed));
        started.elapsed()
    }
}

/// The longest command Redis logged since `SLOWLOG RESET` (it logs every command here), with its
/// name.
async fn longest_logged_command(redis: &Client) -> (Duration, String) {
    let entries = slowlog(redis).await;
    assert!(!entries.is_empty(), "the slow log recorded the commands");
    entries
        .into_iter()
        .map(|(took, args)| (took, args.into_iter().next().unwrap_or_default()))
        .fold((Duration::ZERO, String::new()), |longest, entry| {
            if entry.0 > longest.0 {
                entry
            } else {
                longest
            }
        })
}

/// What [`measured_delete`] saw.
struct Measured {
    answer: reqwest::Response,
    took: Duration,
    longest: Duration,
    command: String,
    worst_ping: Duration,
    pings: u32,
}

/// Deletes the event as an admin while Redis logs every command it runs with its duration (the
/// slow log, at a threshold of 0) and a probe times PINGs on a connection of its own.
async fn measured_delete(app: &TestApp, redis: &Client, event: &str) -> Measured {
    let probe = app.redis.client().await;
    crate::helpers::log_every_command(redis).await;
    let probing = Arc::new(AtomicBool::new(true));
    let prober = {
        let probing = probing.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut pings = 0u32;
            while probing.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let _: String = probe.ping(None).await.expect("PING");
                worst = worst.max(sent.elapsed());
                pings += 1;
            }
            let _ = probe.quit().await;
            (worst, pings)
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;

    let started = Instant::now();
    let answer = delete(app, 0, event, Some(ADMIN_TOKEN)).await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(20)).await;
    probing.store(false, Ordering::Relaxed);
    let (worst_ping, pings) = prober.await.expect("the probe runs");
    let _: () = redis
        .config_set("slowlog-log-slower-than", 10_000)
        .await
        .expect("CONFIG SET");
    let (longest, command) = longest_logged_command(redis).await;
    let _: () = redis
        .custom(fred::cmd!("SLOWLOG"), vec!["RESET".to_owned()])
        .await
        .expect("SLOWLOG RESET");

    Measured {
        answer,
        took,
        longest,
        command,
        worst_ping,
        pings,
    }
}

/// Builds a 10,000-seat event the way an on-sale leaves it: 3,000 holds applied (1,000 of them
/// then reserved), so 4,000 changes and 4,000 finished job records, and 2,000 more holds queued
/// and waiting. Returns the ids of one finished job and of the waiting jobs.
async fn busy_event(
    app: &TestApp,
    store: &Store,
    enqueuer: &Enqueuer,
) -> (String, String, Vec<String>) {
    let job_ids = app.job_ids().await;
    let event = app.create_event(10_000).await;
    let holds: Vec<(String, String)> = (1..=3_000)
        .map(|n| (seat_of(&event, n), new_user()))
        .collect();
    let held = queue_holds(enqueuer, &job_ids, &holds).await;
    apply_all(store, &event).await;
    let reserved = queue_reserves(enqueuer, &job_ids, &holds[..1_000]).await;
    apply_all(store, &event).await;
    assert_eq!(reserved.len(), 1_000);
    let waiting_holds: Vec<(String, String)> = (3_001..=5_000)
        .map(|n| (seat_of(&event, n), new_user()))
        .collect();
    let waiting = queue_holds(enqueuer, &job_ids, &waiting_holds).await;
    (event, held[0].clone(), waiting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_busy_10000_seat_event_frees_every_key_and_its_memory_without_blocking_redis() {
    // No worker: the queued jobs stay queued. Two API processes: a stream open on the one that
    // does not delete must end too.
    let app = spawn_app_with(
        Options::default()
            .workers(0)
            .apis(2)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("MAX_HELD_SEATS", 10),
    )
    .await;
    let redis = app.redis.client().await;
    let store = Store::connect(&app.settings).await.expect("a store");
    let enqueuer = Enqueuer::new(store.clone());

    // Warm-up: the same event built and deleted once, so that every script, connection, stream
    // reader and buffer that Redis sizes to the largest value it has seen exists before the
    // baseline, and the comparison sees the event alone.
    let (warm, warm_job, _) = busy_event(&app, &store, &enqueuer).await;
    let warm_streams = [
        open_stream(&app.address, &warm).await,
        open_stream(app.apis[1].base(), &warm).await,
    ];
    for s in &warm_streams {
        s.wait_for_snapshot(500_000).await;
    }
    let _ = app.job_json(&warm_job).await;
    // The same looks at the data as below.
    let _ = bytes_of_event(&redis, &warm).await;
    let _: u64 = redis.xlen(keys_of(&warm).changes).await.expect("XLEN");
    let _ = keys_named(&redis, &warm).await;
    // Measured as the real one is: the slow log keeps some memory after its reset.
    assert_eq!(
        measured_delete(&app, &redis, &warm).await.answer.status(),
        204
    );
    for s in warm_streams {
        s.ends_within(STREAM_ENDS_WITHIN).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = used_memory(&redis).await;

    // Arrange: the busy event, with a stream open on each API process.
    let (event, finished_job, waiting) = busy_event(&app, &store, &enqueuer).await;
    let (status, job) = app.job_json(&waiting[waiting.len() - 1]).await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("waiting")),
        "{job}"
    );
    let streams = [
        open_stream(&app.address, &event).await,
        open_stream(app.apis[1].base(), &event).await,
    ];
    for s in &streams {
        s.wait_for_snapshot(500_000).await;
    }
    let event_bytes = bytes_of_event(&redis, &event).await;
    let changes: u64 = redis.xlen(keys_of(&event).changes).await.expect("XLEN");
    let with_event = used_memory(&redis).await;
    let keys_before = keys_named(&redis, &event).await;
    // Every key but the retry set (no job failed), which the deletion unlinks with the rest.
    assert_eq!(
        keys_before.len(),
        9,
        "the busy event has its keys: {keys_before:?}"
    );
    assert!(changes >= 4_000, "{changes} changes");

    // Act.
    let measured = measured_delete(&app, &redis, &event).await;
    let Measured {
        answer,
        took,
        longest,
        command,
        worst_ping,
        pings,
    } = measured;

    // Assert: 204 at once, and no command held Redis up.
    assert_eq!(answer.status(), 204, "an admin deletes the event");
    assert!(
        answer.bytes().await.expect("a body").is_empty(),
        "204 has no body"
    );
    println!(
        "delete of a 10,000-seat event ({event_bytes} bytes in its keys, {changes} changes, \
         {} waiting jobs): {took:?}; longest Redis command meanwhile {longest:?} ({command}); \
         worst PING round trip {worst_ping:?} over {pings} pings",
        waiting.len()
    );
    assert!(
        longest < LONGEST_COMMAND,
        "the longest command during the delete took {longest:?} ({command})"
    );

    // Every key of the event is gone but the tombstone, which expires after JOB_RESULT_TTL.
    let left = keys_named(&redis, &event).await;
    assert_eq!(
        left,
        vec![keys_of(&event).deleted],
        "only the tombstone is left"
    );
    let ttl: i64 = redis.pttl(&keys_of(&event).deleted).await.expect("PTTL");
    let ttl_limit = app.settings.queue.job_result_ttl_secs as i64 * 1000;
    assert!(
        ttl > 0 && ttl <= ttl_limit,
        "the tombstone expires within JOB_RESULT_TTL: {ttl} ms"
    );
    assert_eq!(
        registered_anywhere(&redis, &event).await,
        Vec::<&str>::new(),
        "no service-wide set or list names the event"
    );

    // Redis's memory is back where it was before the event.
    // Client buffers shrink back once their connections idle a little (Redis's clientsCron).
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let after = used_memory(&redis).await;
        if after <= before + MEMORY_SLACK || Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "used_memory: {before} before the event, {with_event} with it, {after} after the delete \
         ({:+} bytes; slack {MEMORY_SLACK})",
        after as i64 - before as i64
    );
    assert!(
        after <= before + MEMORY_SLACK,
        "used_memory {after} is more than {MEMORY_SLACK} above {before} from before the event"
    );

    // Both streams ended.
    for s in streams {
        let ended = s.ends_within(STREAM_ENDS_WITHIN).await;
        println!("a stream ended {ended:?} after the delete's answer was checked");
    }

    // Its jobs read failed, saying why; a job id past its last is unknown.
    for job in [&finished_job, &waiting[0], &waiting[waiting.len() - 1]] {
        let (status, body) = app.job_json(job).await;
        assert_eq!(status, 200, "{job}: {body}");
        assert_eq!(body["status"], "failed", "{job}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("the event was deleted")),
            "{job} says why: {body}"
        );
    }
    // 3,000 holds, 1,000 reserves, 2,000 waiting holds: j1 to j6000.
    let (status, body) = app.job_json(&format!("{event}:j6001")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("job_not_found")),
        "{body}"
    );

    // Later reads and writes answer 404.
    for path in [
        format!("/events/{event}"),
        format!("/seats/list/{event}"),
        format!("/seats/get/{}", seat_of(&event, 1)),
        format!("/events/{event}/stream"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    let user = new_user();
    let seat = seat_of(&event, 6_000);
    for path in [
        "/seats/hold",
        "/seats/reserve",
        "/seats/refresh",
        "/seats/release",
    ] {
        let (status, body) = app
            .post(path, serde_json::json!({"id": seat, "UUID": user}))
            .await;
        assert_eq!(status, 404, "POST {path}: {body}");
    }
    let (_, list) = app.get("/events").await;
    let listed: Vec<&str> = list["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(
        !listed.contains(&event.as_str()),
        "GET /events no longer lists it: {listed:?}"
    );
    assert_eq!(
        delete(&app, 1, &event, Some(ADMIN_TOKEN)).await.status(),
        404,
        "a second delete finds no event"
    );
    // Nothing of it came back.
    assert_eq!(
        keys_named(&redis, &event).await,
        vec![keys_of(&event).deleted]
    );
}

async fn assert_untouched(app: &TestApp, event: &str, keys: &[String], case: &str) {
    let redis = app.redis.client().await;
    assert_eq!(
        &keys_named(&redis, event).await,
        keys,
        "{case}: every key of the event is still there"
    );
    let (status, body) = app.get(&format!("/events/{event}")).await;
    assert_eq!(status, 200, "{case}: the event is still there: {body}");
}

async fn refused(answer: reqwest::Response) -> (u16, Option<String>, Json) {
    let status = answer.status().as_u16();
    let challenge = answer
        .headers()
        .get("WWW-Authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Json = answer.json().await.expect("a JSON error");
    (status, challenge, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_deletes_an_event_and_a_refusal_touches_nothing() {
    // none mode with ADMIN_TOKEN: the token is the admin's credential.
    let app = spawn_app_with(Options::default().env("ADMIN_TOKEN", ADMIN_TOKEN)).await;
    let event = app.create_event(10).await;
    let done = app.hold_and_wait(&seat_of(&event, 1), &new_user()).await;
    assert_eq!(done.status.as_str(), "completed");
    let redis = app.redis.client().await;
    let keys = keys_named(&redis, &event).await;
    assert!(keys.len() >= 5, "{keys:?}");

    let (status, challenge, body) = refused(delete(&app, 0, &event, None).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer")),
        "a 401 carries a Bearer challenge: {challenge:?}"
    );
    assert_untouched(&app, &event, &keys, "no Authorization").await;

    let wrong = format!("{ADMIN_TOKEN}-not");
    let (status, challenge, body) = refused(delete(&app, 0, &event, Some(&wrong)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    assert!(
        challenge.is_some(),
        "a wrong token's 401 carries a challenge"
    );
    assert_untouched(&app, &event, &keys, "a wrong token").await;

    // The admin checks come before the id is read: a malformed id is refused the same way,
    // and an admin gets 422 for it and 404 for an unknown one.
    assert_eq!(delete(&app, 0, "not-an-id", None).await.status(), 401);
    let (status, _, body) = refused(delete(&app, 0, "not-an-id", Some(ADMIN_TOKEN)).await).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("id")),
        "{body}"
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, _, body) = refused(delete(&app, 0, &unknown, Some(ADMIN_TOKEN)).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("event_not_found")),
        "{body}"
    );
    assert_eq!(
        keys_named(&redis, &unknown).await,
        Vec::<String>::new(),
        "a 404 writes nothing"
    );

    assert_eq!(
        delete(&app, 0, &event, Some(ADMIN_TOKEN)).await.status(),
        204
    );
    assert_eq!(
        keys_named(&redis, &event).await,
        vec![keys_of(&event).deleted]
    );
    drop(app);

    // none mode without ADMIN_TOKEN: admin operations are off.
    let app = spawn_app_with(Options::default()).await;
    let event = app.create_event(10).await;
    let keys = keys_named(&app.redis.client().await, &event).await;
    for token in [None, Some(ADMIN_TOKEN)] {
        let (status, _, body) = refused(delete(&app, 0, &event, token).await).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("admin_only")),
            "{body}"
        );
        assert_untouched(&app, &event, &keys, "no ADMIN_TOKEN").await;
    }
    drop(app);

    // jwt mode: a token with the admin role, and nothing else, deletes.
    let app = spawn_app_with(
        Options::default()
            .env("AUTH_MODE", "jwt")
            .env("AUTH_JWT_SECRET", JWT_SECRET),
    )
    .await;
    let event = app.create_event(10).await;
    let keys = keys_named(&app.redis.client().await, &event).await;
    let mint = |admin: bool| {
        api::identity::mint(
            &app.settings.auth,
            &api::identity::MintRequest {
                sub: "someone".to_owned(),
                admin,
                ttl: Duration::from_secs(600),
                private_key: None,
            },
        )
        .expect("a token")
    };
    let (status, challenge, body) = refused(delete(&app, 0, &event, None).await).await;
    assert_eq!(status, 401, "{body}");
    assert!(challenge.is_some(), "jwt mode's 401 carries a challenge");
    let (status, _, body) = refused(delete(&app, 0, &event, Some(&mint(false))).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("admin_only")),
        "{body}"
    );
    assert_untouched(&app, &event, &keys, "a user's token").await;
    assert_eq!(
        delete(&app, 0, &event, Some(ADMIN_TOKEN)).await.status(),
        401
    );
    assert_untouched(&app, &event, &keys, "ADMIN_TOKEN in jwt mode").await;
    assert_eq!(
        delete(&app, 0, &event, Some(&mint(true))).await.status(),
        204
    );
    assert_eq!(
        keys_named(&app.redis.client().await, &event).await,
        vec![keys_of(&event).deleted]
    );
}

fn warnings_in_logs(dir: &std::path::Path, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("the log directory exists")
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let text = std::fs::read_to_string(entry.path()).expect("a readable log");
            lines.extend(
                text.lines()
                    .filter(|l| {
                        let line: Json = serde_json::from_str(l).unwrap_or_default();
                        matches!(line["level"].as_str(), Some("WARN" | "ERROR"))
                    })
                    .map(str::to_owned),
            );
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_draining_an_event_when_it_is_deleted_carries_on_with_the_others() {
    let mut app = spawn_app_with(
        Options::default()
            .workers(0)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LOG_LEVEL", "warn"),
    )
    .await;
    let redis = app.redis.client().await;
    let store = Store::connect(&app.settings).await.expect("a store");
    let enqueuer = Enqueuer::new(store.clone());
    let job_ids = app.job_ids().await;
    // A backlog of 10,000 holds on one event, 200 on another, before any worker runs.
    let doomed = app.create_event(10_000).await;
    let other = app.create_event(1_000).await;
    let backlog: Vec<(String, String)> = (1..=10_000)
        .map(|n| (seat_of(&doomed, n), new_user()))
        .collect();
    queue_holds(&enqueuer, &job_ids, &backlog).await;
    let others: Vec<(String, String)> = (1..=200)
        .map(|n| (seat_of(&other, n), new_user()))
        .collect();
    let other_jobs = queue_holds(&enqueuer, &job_ids, &others).await;

    // Act: a worker process starts on the backlog; once it is well into it, the event goes.
    let mut worker = app.spawn_worker_process("deleting-1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let state = queue_state(&redis, &doomed).await;
        if state.queued < 9_000 {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "the worker took the backlog: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    assert_eq!(
        delete(&app, 0, &doomed, Some(ADMIN_TOKEN)).await.status(),
        204
    );
    println!(
        "deleted with {} jobs of the event left to apply",
        state.queued
    );
    assert!(
        state.queued > 0 && state.deq > 0,
        "the worker was draining it: {state:?}"
    );

    // Assert: the other event's jobs, those queued before and after, complete.
    let more: Vec<(String, String)> = (201..=300)
        .map(|n| (seat_of(&other, n), new_user()))
        .collect();
    let later = queue_holds(&enqueuer, &job_ids, &more).await;
    for job in [
        &other_jobs[0],
        &other_jobs[other_jobs.len() - 1],
        &later[later.len() - 1],
    ] {
        let done = app.wait_job(job, Duration::from_secs(20)).await;
        assert_eq!(done.status.as_str(), "completed", "{job}: {done:?}");
    }
    // A few housekeeping rounds (sweeps every 250 ms, reconcile every second) pass over it.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        keys_named(&redis, &doomed).await,
        vec![keys_of(&doomed).deleted]
    );
    let exit = worker.stop_with("TERM", Duration::from_secs(10));
    assert!(exit.success(), "the worker exits cleanly: {exit}");
    let warnings = warnings_in_logs(app.log_dir(), "deleting-1.");
    assert!(
        warnings.is_empty(),
        "the worker logged no warning or error: {warnings:#?}"
    );
    app.stop_workers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_cut_short_is_finished_by_a_sweep_and_the_tombstone_expires() {
    let app = spawn_app_with(
        Options::default()
            .workers(0)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("JOB_RESULT_TTL_SECS", 2),
    )
    .await;
    let redis = app.redis.client().await;
    let store = Store::connect(&app.settings).await.expect("a store");
    let event = app.create_event(10).await;
    let job = app.hold(&seat_of(&event, 1), &new_user()).await;
    let job = job.job_id().expect("a job").to_owned();

    // Only the first step of a deletion (the API went away before the second): the mark.
    let source = queue_core::scripts::SOURCES
        .iter()
        .find(|(name, _)| *name == "delete_event.lua")
        .map(|(_, source)| format!("{}\n{source}", queue_core::scripts::COMMON))
        .expect("delete_event.lua");
    let k = keys_of(&event);
    let marked: i64 = redis
        .custom(
            fred::cmd!("EVAL"),
            vec![
                source,
                "2".to_owned(),
                k.event.clone(),
                k.deleted.clone(),
                "2000".to_owned(),
                queue_core::keys::FINISHED_CHANNEL.to_owned(),
                event.clone(),
            ],
        )
        .await
        .expect("EVAL");
    assert_eq!(marked, 1);
    let (status, body) = app.get(&format!("/events/{event}")).await;
    assert_eq!(
        status, 404,
        "marked deleted, the event reads as gone: {body}"
    );
    let status = app.job_status(&job).await.expect("the job is known");
    assert_eq!(status.status.as_str(), "failed", "{status:?}");
    assert!(
        redis.exists::<bool, _>(&k.queue).await.expect("EXISTS"),
        "the rest is still there"
    );

    // A sweep of it (scheduled, after a notification, or in the full pass) frees the rest.
    store
        .sweep(event.parse().expect("an id"))
        .await
        .expect("a sweep");
    assert_eq!(keys_named(&redis, &event).await, vec![k.deleted.clone()]);
    assert_eq!(
        registered_anywhere(&redis, &event).await,
        Vec::<&str>::new()
    );

    // JOB_RESULT_TTL later the tombstone is gone too, and the job is unknown.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !keys_named(&redis, &event).await.is_empty() {
        assert!(Instant::now() < deadline, "the tombstone expires");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        app.job_status(&job).await.is_none(),
        "past retention the job is unknown"
    );
}

/// A client waiting on a job of an event that another API process deletes is answered at once,
/// `failed`, not at its deadline: the deletion is announced to every API process, and none of
/// the event's jobs will be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_on_a_job_of_an_event_deleted_meanwhile_ends_failed_at_once() {
    let app = spawn_app_with(
        Options::default()
            .workers(0)
            .apis(2)
            .env("ADMIN_TOKEN", ADMIN_TOKEN),
    )
    .await;
    crate::helpers::wait_finished_subscribers(&app.redis, 2).await;
    let event = app.create_event(10).await;
    let posted = app.hold(&seat_of(&event, 1), &new_user()).await;
    let job = posted.job_id().expect("accepted").to_owned();
    let waiting = {
        let (http, url) = (
            app.http.clone(),
            app.url(&format!("/seats/job/{job}/status?wait=20")),
        );
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let response = http.get(url).send().await.expect("the API answers");
            let body: Json = response.json().await.expect("JSON");
            (body, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the job waits in its queue");
    assert_eq!(
        delete(&app, 1, &event, Some(ADMIN_TOKEN)).await.status(),
        204
    );
    let (body, took) = waiting.await.expect("the waiting request ends");
    assert_eq!(body["status"], "failed", "{body}");
    assert!(
        took < Duration::from_secs(10),
        "answered {took:?} after it began waiting, not at its 20 s deadline"
    );
}
