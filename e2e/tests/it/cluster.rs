//! Redis Cluster (G11): what only a cluster shows. The guarantee tests themselves run on a
//! cluster too, unchanged, with `E2E_REDIS=cluster` (see `helpers::RedisKind`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::interfaces::SortedSetsInterface;
use futures::StreamExt;
use loadgen::api::JobView;
use queue_core::Settings;

use crate::helpers::{
    command, keys_of, new_user, seat_of, spawn_app_with, Options, RedisKind, TestApp, TestRedis,
    CLUSTER_PRIMARIES,
};
use crate::stream::SseClient;

/// The test settings with REDIS_URL set to `url`.
fn settings_for(url: &str) -> Settings {
    let env = HashMap::from([
        ("REDIS_URL".to_owned(), url.to_owned()),
        ("PORT".to_owned(), "0".to_owned()),
        ("LOG_LEVEL".to_owned(), "warn".to_owned()),
    ]);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config");
    Settings::load_with(&dir, |name| env.get(name).cloned()).expect("valid settings")
}

#[tokio::test]
async fn a_plain_url_naming_a_cluster_node_stops_startup_saying_what_to_write() {
    // Arrange: a cluster, named by a plain redis:// URL of one of its nodes.
    let cluster = TestRedis::start_cluster(&[]);
    let settings = settings_for(&format!("redis://127.0.0.1:{}", cluster.port));

    // Act: the API and a worker start.
    let api = api::Application::build(&settings).await;
    let worker = worker::Application::build(&settings, "w".into()).await;

    // Assert: both refuse, naming the cluster form and the cluster's primaries as seeds.
    let primaries = cluster.primary_ports();
    for (who, error) in [
        ("the API", api.err().map(|e| format!("{e:#}"))),
        ("a worker", worker.err().map(|e| format!("{e:#}"))),
    ] {
        let error = error.unwrap_or_else(|| panic!("{who} refuses to start"));
        assert!(
            error.contains("is a Redis Cluster node") && error.contains("write redis-cluster://"),
            "{who} says what is wrong and what to write: {error}"
        );
        for port in &primaries {
            assert!(
                error.contains(&format!("127.0.0.1:{port}")),
                "{who} names primary {port} in the URL to write: {error}"
            );
        }
    }
}

#[tokio::test]
async fn a_cluster_url_naming_a_lone_redis_stops_startup_saying_what_to_write() {
    // Arrange: one redis-server, named by a cluster URL.
    let redis = TestRedis::start_kind(RedisKind::Single, &[]);
    let settings = settings_for(&format!("redis-cluster://127.0.0.1:{}", redis.port));

    // Act
    let api = api::Application::build(&settings).await;
    let worker = worker::Application::build(&settings, "w".into()).await;

    // Assert
    let want = format!("write redis://127.0.0.1:{}", redis.port);
    for (who, error) in [
        ("the API", api.err().map(|e| format!("{e:#}"))),
        ("a worker", worker.err().map(|e| format!("{e:#}"))),
    ] {
        let error = error.unwrap_or_else(|| panic!("{who} refuses to start"));
        assert!(
            error.contains("is not a Redis Cluster node") && error.contains(&want),
            "{who} says what is wrong and `{want}`: {error}"
        );
    }
}

/// Events created until every primary has at least `per_primary` of them (events spread by
/// their random ids), by primary port.
async fn events_on_every_primary(app: &TestApp, per_primary: usize) -> BTreeMap<u16, Vec<String>> {
    events_of_seats_on_every_primary(app, per_primary, 10).await
}

/// Like [`events_on_every_primary`], with `seats` seats each.
async fn events_of_seats_on_every_primary(
    app: &TestApp,
    per_primary: usize,
    seats: u32,
) -> BTreeMap<u16, Vec<String>> {
    let primaries = app.redis.primary_ports();
    let mut by_primary: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for _ in 0..60 {
        if primaries
            .iter()
            .all(|p| by_primary.get(p).map_or(0, Vec::len) >= per_primary)
        {
            return by_primary;
        }
        let event = app.create_event(seats).await;
        by_primary
            .entry(app.redis.primary_of(&event))
            .or_default()
            .push(event);
    }
    panic!("60 events did not cover every primary: {by_primary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_api_process_streams_the_changes_of_events_on_every_primary() {
    // Arrange: two events on each primary, each watched by a stream of the one API process
    // (its hub reads them all; one XREAD over them would be refused, CROSSSLOT).
    let app = spawn_app_with(Options::default().redis(RedisKind::Cluster)).await;
    // Two of each primary's: the helper may have made more on one primary, and more than
    // STREAMS_PER_CLIENT (16) streams from one address would be refused (429).
    let events: Vec<String> = events_on_every_primary(&app, 2)
        .await
        .into_values()
        .flat_map(|events| events.into_iter().take(2))
        .collect();
    let mut streams = Vec::new();
    for event in &events {
        let mut stream = SseClient::connect(&app, event, None).await;
        let snapshot = stream
            .next(Duration::from_secs(5))
            .await
            .expect("a snapshot");
        assert_eq!(
            snapshot.event, "snapshot",
            "{event}: the stream starts with one"
        );
        streams.push(stream);
    }

    // Act: one hold on each event.
    let mut holders = Vec::new();
    for event in &events {
        let user = new_user();
        let done = app.hold_and_wait(&seat_of(event, 3), &user).await;
        assert_eq!(done.code(), Some(200), "{event}: held: {done}");
        holders.push(user);
    }

    // Assert: every stream tells of its event's hold.
    for (event, stream) in events.iter().zip(&mut streams) {
        let change = stream
            .next(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{event}: the hold reaches its stream"));
        assert_eq!(
            (change.data["seat"].as_str(), change.data["status"].as_str()),
            (Some(seat_of(event, 3).as_str()), Some("On hold")),
            "{event}: {:?}",
            change.data
        );
    }
}

/// A cluster whose nodes announce nothing until the worker turns notifications on, holds of
/// 1 s, and the worker's periodic sweeps kept out of the way: what tidies a lapsed hold is then
/// a notification alone.
fn notifications_alone() -> Options {
    Options::default()
        .redis(RedisKind::Cluster)
        .redis_args(&["--notify-keyspace-events", ""])
        .env("HOLD_TTL_SECS", 1)
        .tweak(|s| s.workers.housekeeping_ms = 600_000)
}

/// Whether `notify-keyspace-events` flags announce expired keys.
fn announces_expiry(flags: &str) -> bool {
    flags.contains('E') && (flags.contains('x') || flags.contains('A'))
}

/// Stops the replica on `replica` and cuts its link from `primary`: it acknowledges nothing
/// more, and gets nothing more (a stopped process's socket would still take in what the
/// primary sends).
fn cut_off(redis: &TestRedis, primary: u16, replica: u16) {
    redis.signal_node(replica, "STOP");
    let cut = command(primary, "CLIENT KILL TYPE replica");
    assert_eq!(cut.as_deref(), Some(":1"), "the replica's link is cut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_notifications_are_turned_on_and_heard_on_every_primary() {
    // Arrange: a cluster whose nodes announce nothing, and a worker whose periodic sweeps are
    // kept out of the way: what tidies lapsed holds here is notifications alone.
    let app = spawn_app_with(notifications_alone()).await;
    let flags = app
        .redis
        .config_on_primaries("notify-keyspace-events")
        .await;
    assert_eq!(flags.len(), CLUSTER_PRIMARIES, "{flags:?}");
    for flag in &flags {
        assert!(
            announces_expiry(flag),
            "the worker turned expiry events on on every primary: {flags:?}"
        );
    }
    let events = events_on_every_primary(&app, 1).await;

    // Act: a one-second hold on one event of each primary.
    for (primary, events) in &events {
        let done = app
            .hold_and_wait(&seat_of(&events[0], 1), &new_user())
            .await;
        assert_eq!(done.code(), Some(200), "held on primary {primary}: {done}");
    }

    // Assert: each is tidied (its deadline gone), which only a notification can do here.
    let redis = app.redis.client().await;
    for (primary, events) in &events {
        let keys = keys_of(&events[0]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: u64 = redis.zcard(&keys.deadlines).await.expect("ZCARD");
            if left == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the lapsed hold on primary {primary} was tidied on its notification"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        app.holds_lapsed().0,
        events.len() as u64,
        "each lapse was heard as a notification"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_the_event_list_cover_every_primary() {
    // Arrange: each node with a limit of 100 MB; events on every primary, one seat held each.
    let app = spawn_app_with(Options::default().redis(RedisKind::Cluster).redis_args(&[
        "--maxmemory",
        "100mb",
        "--maxmemory-policy",
        "noeviction",
    ]))
    .await;
    let events: Vec<String> = events_on_every_primary(&app, 1)
        .await
        .into_values()
        .flatten()
        .collect();
    for event in &events {
        let done = app.hold_and_wait(&seat_of(event, 1), &new_user()).await;
        assert_eq!(done.code(), Some(200), "{done}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get("/health").await.0 != 200 {
        assert!(Instant::now() < deadline, "the service became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Act
    let (_, health) = app.get("/health").await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a body");
    let (status, list) = app
        .get(&format!("/events?limit={}", events.len() + 1))
        .await;

    // Assert: memory is the primaries' sum (replicas hold copies, not more room), the listing
    // has the events of every primary.
    let limit = 100 * 1024 * 1024 * CLUSTER_PRIMARIES as u64;
    assert_eq!(health["redis"], "up", "{health}");
    assert_eq!(
        health["redisMaxMemory"].as_u64(),
        Some(limit),
        "the limit of the 3 primaries together: {health}"
    );
    assert!(
        health["redisUsedMemory"].as_u64().unwrap_or(0) > 3 * 500_000,
        "the use of the 3 primaries together (each over 0.5 MB empty): {health}"
    );
    assert!(
        metrics.contains(&format!("rsv_redis_maxmemory_bytes {limit}")),
        "/metrics shows the same limit: {metrics}"
    );
    assert!(metrics.contains("rsv_redis_up 1"), "{metrics}");
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    for event in &events {
        assert!(
            listed.contains(&event.as_str()),
            "{event} is listed: {list}"
        );
    }
}

/// What one hold POST got during the failover drill.
#[derive(Debug, Clone)]
struct Attempt {
    event: String,
    seat: String,
    /// When it was sent.
    at: Duration,
    status: u16,
    retry_after: bool,
    job: Option<String>,
}

/// What the failover drill saw.
struct Drill {
    attempts: Vec<Attempt>,
    /// The killed primary's events.
    victims: Vec<String>,
    /// When the primary was killed, and when every node was `cluster_state:ok` again.
    killed_at: Duration,
    promoted_at: Duration,
    /// Jobs answered 202 that did not end completed or failed.
    lost: usize,
    /// When the stream of one of the other primaries' events (opened before the load) brought
    /// a change.
    streamed_at: Vec<Duration>,
}

impl Drill {
    fn theirs(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts
            .iter()
            .filter(|a| self.victims.contains(&a.event))
    }

    fn others(&self) -> impl Iterator<Item = &Attempt> {
        self.attempts
            .iter()
            .filter(|a| !self.victims.contains(&a.event))
    }
}

/// A steady stream of holds over two events on each primary; one primary SIGKILLed after 2 s
/// (with `lag`, its replica SIGSTOPped and its replication link cut 1 s before, so that the
/// primary dies with a second of writes its replica never got; the replica is let go 0.2 s
/// after the kill, and promoted); the holds go on 8 s after the cluster is ok again. Every
/// job answered 202 is then looked up.
async fn failover_drill(replica_acks: u32, lag: bool) -> Drill {
    let mut app = spawn_app_with(
        Options::default()
            .redis(RedisKind::Cluster)
            .workers(2)
            .env("REDIS_REPLICA_ACKS", replica_acks),
    )
    .await;
    let events = events_of_seats_on_every_primary(&app, 2, 5000).await;
    let victim = *events.keys().next().expect("a primary");
    let replica = app.redis.replica_of(victim);
    let log = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let watched = events
        .iter()
        .find(|(primary, _)| **primary != victim)
        .map(|(_, events)| events[0].clone())
        .expect("another primary");
    let mut stream = SseClient::connect(&app, &watched, None).await;
    let started = Instant::now();
    let streamed = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut at = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(message) = stream.next(Duration::from_millis(200)).await {
                    if message.event != "snapshot" {
                        at.push(started.elapsed());
                    }
                }
            }
            at
        })
    };
    let load = {
        let all: Vec<String> = events.values().flatten().cloned().collect();
        let (base, http) = (app.url(""), app.http.clone());
        let (log, stop) = (log.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let posts = all.iter().map(|event| {
                    let (http, base) = (http.clone(), base.clone());
                    let seat = seat_of(event, n);
                    let body = serde_json::json!({"id": seat, "UUID": new_user()});
                    async move {
                        let sent = started.elapsed();
                        let response = http
                            .post(format!("{base}/seats/hold"))
                            .json(&body)
                            .send()
                            .await
                            .expect("the API answers");
                        let status = response.status().as_u16();
                        let retry_after = response.headers().contains_key("retry-after");
                        let body: serde_json::Value = response.json().await.expect("a JSON answer");
                        let job = body["jobId"].as_str().map(str::to_owned);
                        (seat, sent, status, retry_after, job)
                    }
                });
                let answers = futures::future::join_all(posts).await;
                {
                    let mut log = log.lock().expect("the log");
                    for (event, (seat, at, status, retry_after, job)) in all.iter().zip(answers) {
                        log.push(Attempt {
                            event: event.clone(),
                            seat,
                            at,
                            status,
                            retry_after,
                            job,
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    if lag {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cut_off(&app.redis, victim, replica);
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let killed_at = started.elapsed();
    app.redis.kill_node(victim);
    if lag {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.redis.signal_node(replica, "CONT");
    }
    let redis = &app.redis;
    tokio::task::block_in_place(|| redis.wait_cluster_ok(Duration::from_secs(30)));
    let promoted_at = started.elapsed();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("the load runs");
    if replica_acks > 0 {
        // With acks, a primary without a replica tells nothing (not even a status read): the
        // killed node is started again, as the operator would, and rejoins as the promoted
        // one's replica.
        app.redis.restart_node(victim);
        let synced = Instant::now() + Duration::from_secs(30);
        while !command(replica, "INFO replication")
            .unwrap_or_default()
            .contains("state=online")
        {
            assert!(
                Instant::now() < synced,
                "the killed node rejoins as a replica"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let streamed_at = streamed.await.expect("the stream is read");
    let attempts = log.lock().expect("the log").clone();
    // Lost: unknown, unfinished, or finished as another job (a promoted replica that missed
    // jobs hands their sequence numbers, and so their ids, out again).
    let mut lost = 0;
    for a in attempts.iter().filter(|a| a.status == 202) {
        let job = a.job.as_deref().expect("a 202 has a job id");
        let view = app.api().job_status(job, Some(5)).await.expect("a status");
        let its_own = view.is_some_and(|v| {
            v.status.is_finished() && v.seat().is_some_and(|seat| seat.id == a.seat)
        });
        if !its_own {
            lost += 1;
        }
    }
    eprintln!(
        "replica acks {replica_acks}, lag {lag}: killed at {killed_at:?}, cluster ok at \
         {promoted_at:?}; {lost} of {} accepted jobs lost",
        attempts.iter().filter(|a| a.status == 202).count()
    );
    Drill {
        attempts,
        victims: events[&victim].clone(),
        killed_at,
        promoted_at,
        lost,
        streamed_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_primary_pauses_only_its_own_events_until_its_failover() {
    let drill = failover_drill(0, false).await;

    let refused: Vec<&Attempt> = drill.others().filter(|a| a.status != 202).collect();
    eprintln!(
        "other primaries' refusals: {} of {}, from {:?} to {:?}",
        refused.len(),
        drill.others().count(),
        refused.first().map(|a| a.at),
        refused.last().map(|a| a.at),
    );
    // Each primary has its own connections, and the cluster serves the slots it still covers
    // (`cluster-require-full-coverage no`): the other primaries' events never notice.
    assert!(
        refused.is_empty(),
        "the other primaries' events are answered 202 throughout the failover: {} refused, \
         the first {:?}",
        refused.len(),
        refused.first()
    );
    // Their streams: how many changes one brought while the dead primary's events waited.
    let while_dead = drill
        .streamed_at
        .iter()
        .filter(|at| **at > drill.killed_at + Duration::from_secs(1) && **at < drill.promoted_at)
        .count();
    eprintln!(
        "another primary's stream: {while_dead} changes between 1 s after the kill and the \
         promotion, {} in all",
        drill.streamed_at.len()
    );
    // Their jobs are applied meanwhile, not only accepted: each event's ready tokens and hints
    // go to a shard on its own primary (`Store::shard_of`). Before that, an event whose slot
    // range's shard sat on the dead primary got 202s and no change (0 of 448 in one CI run).
    assert!(
        while_dead > 0,
        "another primary's event is applied while the primary is dead: no change streamed \
         between {:?} and {:?}",
        drill.killed_at + Duration::from_secs(1),
        drill.promoted_at
    );
    for a in drill.theirs().filter(|a| a.status != 202) {
        assert!(
            a.status == 503 && a.retry_after,
            "a refusal during the failover is a 503 with Retry-After: {a:?}"
        );
        assert!(
            a.at < drill.promoted_at + Duration::from_secs(5),
            "no refusal 5 s after the promotion: {a:?}, ok at {:?}",
            drill.promoted_at
        );
    }
    assert!(
        drill
            .others()
            .any(|a| a.at > drill.promoted_at && a.status == 202),
        "the other primaries' events accept after the failover"
    );
    let back = drill
        .theirs()
        .filter(|a| a.at > drill.killed_at && a.status == 202)
        .map(|a| a.at)
        .min()
        .expect("the killed primary's events accept again");
    eprintln!(
        "its events accept again at {back:?}, {:?} after the cluster was ok",
        back.saturating_sub(drill.promoted_at)
    );
    assert!(
        back < drill.promoted_at + Duration::from_secs(5),
        "its events accept again within 5 s of the promotion: at {back:?}, ok at {:?}",
        drill.promoted_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_replica_acks_jobs_accepted_ahead_of_the_replica_are_lost_in_its_failover() {
    // The primary dies with a second of writes its (stopped) replica never got.
    let drill = failover_drill(0, true).await;

    assert!(
        drill.lost > 0,
        "jobs answered 202 while the replica lagged are gone after the failover: {} lost",
        drill.lost
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_replica_acks_no_job_answered_202_is_lost_when_the_primary_dies_ahead_of_its_replica()
{
    // The same failover, with REDIS_REPLICA_ACKS=1: no 202 before the replica has the job.
    let drill = failover_drill(1, true).await;

    assert_eq!(
        drill.lost, 0,
        "every job answered 202 ended completed or failed"
    );
    let held_back = drill
        .theirs()
        .filter(|a| a.at < drill.killed_at && a.status == 503 && a.retry_after)
        .count();
    assert!(
        held_back > 0,
        "while its replica lagged, the primary's events got 503 with Retry-After, not 202"
    );
    assert!(
        drill
            .others()
            .any(|a| a.at < drill.killed_at && a.status == 202),
        "the other primaries' events got 202s meanwhile"
    );
}

/// The node id of the node on `port` (CLUSTER MYID).
fn node_id(port: u16) -> String {
    command(port, "CLUSTER MYID").expect("the node answers CLUSTER MYID")
}

/// What one POST of the resharding drill got.
#[derive(Debug, Clone)]
struct Post {
    kind: &'static str,
    seat: String,
    user: String,
    /// When it was sent, from the drill's start.
    at: Duration,
    status: u16,
    retry_after: bool,
    job: Option<String>,
}

/// The job once it finished (polled until `deadline`, shared by all the drill's polls), or as it stands then; `None` when the API
/// does not know it. A 503 (a client's cue to retry) is counted in `unavailable` and retried.
async fn finished(
    app: &TestApp,
    job: &str,
    unavailable: &AtomicUsize,
    deadline: Instant,
) -> Option<JobView> {
    loop {
        match app.api().job_status(job, None).await {
            Ok(Some(view)) if !view.status.is_finished() && Instant::now() < deadline => {}
            Ok(view) => return view,
            Err(e) if format!("{e:#}").contains("answered 503") && Instant::now() < deadline => {
                unavailable.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => panic!("job {job}: {e:#} (still so at the checks' deadline)"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The slots the resharding drill moves: 0 ..= 2047, shards 0 and 1 (their bookkeeping keys
/// move with their events), the lowest of the first primary's (`redis-cli --cluster reshard`
/// moves a source's slots lowest first).
const MOVED_SLOTS: u16 = 2048;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resharding_the_slots_of_live_events_loses_and_doubles_nothing() {
    // Arrange: events in the slots that move (on the primary of slot 0) and events that stay,
    // on every primary.
    let app = spawn_app_with(
        Options::default()
            .redis(RedisKind::Cluster)
            .workers(2)
            .env("HOLD_TTL_SECS", 600),
    )
    .await;
    let slot = |event: &str| queue_core::keys::slot_of(&keys_of(event).event);
    let mut moving = Vec::new();
    let mut staying: BTreeMap<u16, String> = BTreeMap::new();
    for _ in 0..200 {
        if moving.len() >= 3 && staying.len() == CLUSTER_PRIMARIES {
            break;
        }
        let event = app.create_event(2000).await;
        if slot(&event) < MOVED_SLOTS {
            if moving.len() < 3 {
                moving.push(event);
            }
        } else {
            staying.entry(app.redis.primary_of(&event)).or_insert(event);
        }
    }
    assert!(
        moving.len() == 3 && staying.len() == CLUSTER_PRIMARIES,
        "200 events gave 3 in slots below {MOVED_SLOTS} and one elsewhere on each primary: \
         {moving:?} {staying:?}"
    );
    let source = app.redis.primary_of(&moving[0]);
    let target = *staying
        .keys()
        .find(|p| **p != source)
        .expect("another primary");
    let events: Vec<String> = moving.iter().chain(staying.values()).cloned().collect();

    // Act: on each event, every round, two users race for a hold of the round's seat, and
    // both try to reserve the seat of the round before (one of them holds it, the other gets
    // a 403); 2 s in, the slots move.
    let log = Arc::new(Mutex::new(Vec::<Post>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load = {
        let events = events.clone();
        let (base, http) = (app.url(""), app.http.clone());
        let (log, stop) = (log.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last: Vec<(String, String)> = vec![(new_user(), new_user()); events.len()];
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 1999 {
                n += 1;
                let mut posts = Vec::new();
                for (event, last) in events.iter().zip(&mut last) {
                    let users = (new_user(), new_user());
                    for user in [&users.0, &users.1] {
                        posts.push(("hold", seat_of(event, n), user.clone()));
                    }
                    if n > 1 {
                        for user in [&last.0, &last.1] {
                            posts.push(("reserve", seat_of(event, n - 1), user.clone()));
                        }
                    }
                    *last = users;
                }
                let answers =
                    futures::future::join_all(posts.into_iter().map(|(kind, seat, user)| {
                        let (http, base) = (http.clone(), base.clone());
                        async move {
                            let at = started.elapsed();
                            let response = http
                                .post(format!("{base}/seats/{kind}"))
                                .json(&serde_json::json!({"id": seat, "UUID": user}))
                                .send()
                                .await
                                .expect("the API answers");
                            let status = response.status().as_u16();
                            let retry_after = response.headers().contains_key("retry-after");
                            let body: serde_json::Value =
                                response.json().await.unwrap_or(serde_json::Value::Null);
                            let job = body["jobId"].as_str().map(str::to_owned);
                            Post {
                                kind,
                                seat,
                                user,
                                at,
                                status,
                                retry_after,
                                job,
                            }
                        }
                    }))
                    .await;
                log.lock().expect("the log").extend(answers);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let move_from = started.elapsed();
    let (from, to) = (node_id(source), node_id(target));
    let reshard = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{source}")])
            .args(["--cluster-from", &from, "--cluster-to", &to])
            .args(["--cluster-slots", &MOVED_SLOTS.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli runs")
    })
    .await
    .expect("the reshard runs");
    let move_to = started.elapsed();
    assert!(
        reshard.status.success(),
        "redis-cli --cluster reshard succeeds: {}\n{}",
        String::from_utf8_lossy(&reshard.stdout)
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&reshard.stderr)
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("the load runs");
    let posts = log.lock().expect("the log").clone();

    // Assert: the moved events live on the target now, the others where they were, and all
    // accept holds.
    for event in &moving {
        assert_eq!(
            app.redis.primary_of(event),
            target,
            "{event} (slot {}) moved to the target primary",
            slot(event)
        );
    }
    for (primary, event) in &staying {
        assert_eq!(app.redis.primary_of(event), *primary, "{event} stayed");
    }
    let status_503s = AtomicUsize::new(0);
    let mut hold_503s = 0;
    for event in &events {
        let seat = seat_of(event, 2000);
        let mut tries = 0;
        let job = loop {
            let posted = app.hold(&seat, &new_user()).await;
            match posted.job_id() {
                Some(job) => break job.to_owned(),
                None if posted.status() == 503 && tries < 25 => {
                    tries += 1;
                    hold_503s += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => panic!("{event} accepts holds after the move: {posted}"),
            }
        };
        let done = finished(
            &app,
            &job,
            &status_503s,
            Instant::now() + Duration::from_secs(20),
        )
        .await;
        assert!(
            done.as_ref().is_some_and(|d| d.code() == Some(200)),
            "{event}'s hold after the move is applied: {done:?}"
        );
    }
    // Only 503s with Retry-After, and only around the move, besides the synchronous refusals.
    for p in &posts {
        assert!(
            matches!(p.status, 202 | 403 | 409) || (p.status == 503 && p.retry_after),
            "a 202, a refusal, or a 503 with Retry-After: {p:?}"
        );
    }
    let unavailable: Vec<&Post> = posts.iter().filter(|p| p.status == 503).collect();
    for p in &unavailable {
        assert!(
            p.at >= move_from.saturating_sub(Duration::from_secs(1)),
            "no 503 before the slots moved (from {move_from:?}): {p:?}"
        );
    }
    // Once the slots have moved, nothing is refused: a MOVED is followed to the new owner (a
    // command sent on a stale routing table is not a 503), and every event, moved or not,
    // keeps accepting.
    let refused_after: Vec<&&Post> = unavailable.iter().filter(|p| p.at > move_to).collect();
    assert!(
        refused_after.is_empty(),
        "no 503 once the slots have moved ({move_to:?}): {} of them, the first {:?}",
        refused_after.len(),
        refused_after.first()
    );
    for event in &events {
        let after: Vec<&Post> = posts
            .iter()
            .filter(|p| p.seat.starts_with(event.as_str()) && p.at > move_to)
            .collect();
        assert!(
            after.iter().any(|p| p.status == 202),
            "{event} (moved: {}) got 202s after the move: {} answers, {:?}",
            moving.contains(event),
            after.len(),
            after
                .iter()
                .map(|p| p.status)
                .collect::<std::collections::BTreeSet<_>>()
        );
    }
    // Every job answered 202 ended completed or failed, as itself.
    let accepted: Vec<&Post> = posts.iter().filter(|p| p.status == 202).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let views: Vec<Option<JobView>> = futures::stream::iter(&accepted)
        .map(|p| {
            finished(
                &app,
                p.job.as_deref().expect("a 202 has a job id"),
                &status_503s,
                deadline,
            )
        })
        .buffered(16)
        .collect()
        .await;
    let mut lost = Vec::new();
    // Seat → the users whose hold, and whose reserve, succeeded.
    let mut seats: BTreeMap<&str, (Vec<&str>, Vec<&str>)> = posts
        .iter()
        .map(|p| (p.seat.as_str(), Default::default()))
        .collect();
    for (p, view) in accepted.iter().zip(&views) {
        let its_own = view.as_ref().is_some_and(|v| {
            v.status.is_finished() && (v.seat().is_none_or(|seat| seat.id == p.seat))
        });
        if !its_own {
            lost.push((p, view));
            continue;
        }
        let entry = seats.entry(&p.seat).or_default();
        if view.as_ref().is_some_and(|v| v.succeeded()) {
            match p.kind {
                "hold" => entry.0.push(&p.user),
                _ => entry.1.push(&p.user),
            }
        }
    }
    let failed = views
        .iter()
        .flatten()
        .filter(|v| v.status == loadgen::api::JobStatus::Failed)
        .count();
    eprintln!(
        "reshard of {MOVED_SLOTS} slots {source} -> {target}: took {:?} (from {move_from:?}); \
         {} POSTs, {} accepted, {} failed jobs, {} lost; {} 503s (first {:?}, last {:?}, \
         {} after the move, of {} POSTs sent after it); after the load, {} 503s of status reads and {} of the {} holds",
        move_to - move_from,
        posts.len(),
        accepted.len(),
        failed,
        lost.len(),
        unavailable.len(),
        unavailable.first().map(|p| p.at),
        unavailable.last().map(|p| p.at),
        unavailable.iter().filter(|p| p.at > move_to).count(),
        posts.iter().filter(|p| p.at > move_to).count(),
        status_503s.load(Ordering::Relaxed),
        hold_503s,
        events.len(),
    );
    assert!(
        lost.is_empty(),
        "every job answered 202 ended completed or failed: lost {lost:?}"
    );
    assert_eq!(
        (status_503s.load(Ordering::Relaxed), hold_503s),
        (0, 0),
        "after the load, no status read and no hold is refused (503)"
    );
    assert!(
        accepted
            .iter()
            .any(|p| moving.iter().any(|e| p.seat.starts_with(e.as_str())) && p.at > move_to),
        "the moved events accepted jobs after the move"
    );
    // No seat went to two users, and each seat is as its jobs left it.
    let candidates: HashMap<&str, Vec<String>> = posts.iter().fold(HashMap::new(), |mut m, p| {
        let users: &mut Vec<String> = m.entry(p.seat.as_str()).or_default();
        if !users.contains(&p.user) {
            users.push(p.user.clone());
        }
        m
    });
    let app = &app;
    let checks: Vec<_> = futures::stream::iter(&seats)
        .map(|(seat, (holds, reserves))| {
            let candidates = &candidates[seat];
            async move {
                let view = app.seat_held_by_one_of(seat, candidates).await;
                (seat, holds, reserves, view)
            }
        })
        .buffered(16)
        .collect()
        .await;
    for (seat, holds, reserves, view) in checks {
        assert!(holds.len() <= 1, "{seat} was held by one user: {holds:?}");
        assert!(
            reserves.len() <= 1,
            "{seat} was reserved by one user: {reserves:?}"
        );
        let want = match (holds.first(), reserves.first()) {
            (_, Some(user)) => {
                assert_eq!(holds.first(), Some(user), "{seat}: its reserver held it");
                (loadgen::api::SeatStatus::Reserved, *user)
            }
            (Some(user), None) => (loadgen::api::SeatStatus::OnHold, *user),
            (None, None) => (loadgen::api::SeatStatus::Available, ""),
        };
        assert_eq!(
            (view.status, view.user.as_str()),
            want,
            "{seat} is as its jobs left it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_replica_acks_no_read_tells_what_the_replica_lacks() {
    // Arrange: acks 1, no worker yet; a hold accepted (its replica has the job) and a stream
    // open on its event; then the event's replica stopped and cut off, then a worker applies
    // the job: its record and its seat change are on the primary only, and the worker's WAIT
    // runs out, so it announces nothing.
    let mut app = spawn_app_with(
        Options::default()
            .redis(RedisKind::Cluster)
            .workers(0)
            .env("REDIS_REPLICA_ACKS", 1),
    )
    .await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 1);
    let posted = app.hold(&seat, &new_user()).await;
    assert_eq!(
        posted.status(),
        202,
        "accepted while the replica is up: {posted}"
    );
    let job = posted.job_id().expect("a job id").to_owned();
    let mut stream = SseClient::connect(&app, &event, None).await;
    let snapshot = stream.next(Duration::from_secs(5)).await;
    assert!(snapshot.is_some(), "the stream opens with its snapshot");
    let primary = app.redis.primary_of(&event);
    let replica = app.redis.replica_of(primary);
    cut_off(&app.redis, primary, replica);
    app.start_worker().await;
    let results = keys_of(&event).results;
    let applied = Instant::now() + Duration::from_secs(10);
    while command(primary, &format!("HLEN {results}")).as_deref() != Some(":1") {
        assert!(
            Instant::now() < applied,
            "the worker applies the job on the primary"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Act: read the job's status, the event and its stream while the replica lacks them.
    let event_read = app
        .http
        .get(app.url(&format!("/events/{event}")))
        .send()
        .await
        .expect("the API answers");
    let event_status = (
        event_read.status().as_u16(),
        event_read.headers().contains_key("retry-after"),
    );
    let streamed = stream.next(Duration::from_millis(1500)).await;
    let read = app
        .http
        .get(app.url(&format!("/seats/job/{job}/status")))
        .send()
        .await
        .expect("the API answers");
    let (status, retry_after) = (
        read.status().as_u16(),
        read.headers().contains_key("retry-after"),
    );
    let told = read.text().await.unwrap_or_default();
    app.redis.signal_node(replica, "CONT");

    // Assert: not told (a failover now would undo it), but 503 with Retry-After; once the
    // replica is back and has it, the result is told.
    assert!(
        status == 503 && retry_after,
        "a result only the primary has is not told: {status} {told}"
    );
    assert_eq!(
        event_status,
        (503, true),
        "nor the seat it changed (GET /events/{{id}})"
    );
    assert!(
        streamed.is_none(),
        "nor the change on the stream: {streamed:?}"
    );
    let change = stream.next(Duration::from_secs(10)).await;
    assert!(
        change.is_some_and(|m| m.event != "snapshot"),
        "the change streams once the replica has it"
    );
    let view = app
        .api()
        .job_status(&job, Some(10))
        .await
        .expect("a status once the replica is back");
    assert!(
        view.is_some_and(|v| v.status.is_finished()),
        "the result is told once the replica has it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_failover_expiry_notifications_are_turned_on_and_heard_on_the_promoted_primary() {
    // Arrange: nodes that announce nothing, the periodic sweeps out of the way (as in
    // `expiry_notifications_are_turned_on_and_heard_on_every_primary`), and one primary killed:
    // its replica, on which nobody turned notifications on, is promoted.
    let mut app = spawn_app_with(notifications_alone()).await;
    let events = events_on_every_primary(&app, 1).await;
    let victim = *events.keys().next().expect("a primary");
    let event = events[&victim][0].clone();
    let replica = app.redis.replica_of(victim);
    let flags = |port: u16| {
        command(port, "CONFIG GET notify-keyspace-events")
            .unwrap_or_default()
            .split("\r\n")
            .filter(|line| !line.starts_with(['*', '$']))
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(flags(replica), "", "the replica announces nothing yet");
    app.redis.kill_node(victim);
    let redis = &app.redis;
    tokio::task::block_in_place(|| redis.wait_cluster_ok(Duration::from_secs(30)));
    assert_eq!(
        app.redis.primary_of(&event),
        replica,
        "the replica took over"
    );

    // Act: the worker follows the new primary; then a one-second hold on the event it took.
    let turned_on = Instant::now() + Duration::from_secs(10);
    loop {
        let now = flags(replica);
        if announces_expiry(&now) {
            break;
        }
        assert!(
            Instant::now() < turned_on,
            "the worker turned expiry events on on the promoted primary: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seat = seat_of(&event, 1);
    let accepting = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let posted = app.hold(&seat, &new_user()).await;
        if posted.status() == 202 {
            break posted.job_id().expect("a job id").to_owned();
        }
        assert!(
            Instant::now() < accepting,
            "the event accepts again: {posted}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let done = app.wait_job(&job, Duration::from_secs(10)).await;
    assert_eq!(
        done.code(),
        Some(200),
        "held on the promoted primary: {done}"
    );

    // Assert: the lapsed hold is tidied, which only a notification from the new primary can do.
    let deadlines = keys_of(&event).deadlines;
    let tidied = Instant::now() + Duration::from_secs(5);
    while command(replica, &format!("ZCARD {deadlines}")).as_deref() != Some(":0") {
        assert!(
            Instant::now() < tidied,
            "the lapsed hold on the promoted primary was tidied on its notification"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        app.holds_lapsed().0 >= 1,
        "the lapse was heard as a notification"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slot_moved_behind_the_services_back_is_followed_without_a_503() {
    // Arrange: an event in use (the service's routing knows its primary), then its slot moved
    // to another primary by hand, as `redis-cli --cluster reshard` does it: IMPORTING and
    // MIGRATING, its keys MIGRATEd, the slot given to the target on every primary.
    let app = spawn_app_with(Options::default().redis(RedisKind::Cluster).workers(1)).await;
    let event = app.create_event(20).await;
    let done = app.hold_and_wait(&seat_of(&event, 1), &new_user()).await;
    assert_eq!(done.code(), Some(200), "{done}");
    let keys = keys_of(&event);
    let slot = queue_core::keys::slot_of(&keys.event);
    let source = app.redis.primary_of(&event);
    let primaries = app.redis.primary_ports();
    let target = *primaries
        .iter()
        .find(|p| **p != source)
        .expect("another primary");
    let (from, to) = (node_id(source), node_id(target));
    let ok = |reply: Option<String>, what: &str| {
        assert!(
            reply.as_deref().is_some_and(|r| r.contains("OK")),
            "{what}: {reply:?}"
        );
    };
    ok(
        command(target, &format!("CLUSTER SETSLOT {slot} IMPORTING {from}")),
        "IMPORTING",
    );
    ok(
        command(source, &format!("CLUSTER SETSLOT {slot} MIGRATING {to}")),
        "MIGRATING",
    );
    ok(
        command(
            source,
            &format!(
                "MIGRATE 127.0.0.1 {target} \"\" 0 5000 KEYS {}",
                keys.live().join(" ")
            ),
        ),
        "MIGRATE",
    );
    for primary in &primaries {
        ok(
            command(*primary, &format!("CLUSTER SETSLOT {slot} NODE {to}")),
            "NODE",
        );
    }
    assert_eq!(app.redis.primary_of(&event), target, "the slot moved");

    // Act: at once (before the service's next read of the routing, due within a second),
    // holds and a status read on the event.
    let (app_ref, event_ref) = (&app, &event);
    let posts = futures::future::join_all(
        (2..=20).map(|n| async move { app_ref.hold(&seat_of(event_ref, n), &new_user()).await }),
    )
    .await;

    // Assert: every hold is accepted and applied on the new primary: a MOVED is followed, not
    // answered 503.
    for posted in &posts {
        assert_eq!(posted.status(), 202, "a hold after the move: {posted}");
    }
    for posted in &posts {
        let job = posted.job_id().expect("a job id");
        let done = app.wait_job(job, Duration::from_secs(10)).await;
        assert_eq!(done.code(), Some(200), "applied after the move: {done}");
    }
    assert_eq!(
        command(target, &format!("HGET {} total", keys.event)).as_deref(),
        Some("20"),
        "the event lives on the new primary"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_event_frees_it_and_its_bookkeeping_on_every_primary_they_sit_on() {
    // Arrange: an event on another primary than the service-wide sets' (`{sys}`), with a hold.
    let app = spawn_app_with(
        Options::default()
            .redis(RedisKind::Cluster)
            .env("ADMIN_TOKEN", "cluster-admin-token"),
    )
    .await;
    let sys = app
        .redis
        .primary_of_slot(queue_core::keys::slot_of(queue_core::keys::EVENTS));
    let mut event = app.create_event(10).await;
    for _ in 0..30 {
        if app.redis.primary_of(&event) != sys {
            break;
        }
        event = app.create_event(10).await;
    }
    assert_ne!(
        app.redis.primary_of(&event),
        sys,
        "an event off the registry's primary"
    );
    let done = app.hold_and_wait(&seat_of(&event, 1), &new_user()).await;
    assert_eq!(done.code(), Some(200), "{done}");

    // Act
    let answer = app
        .http
        .delete(app.url(&format!("/events/{event}")))
        .bearer_auth("cluster-admin-token")
        .send()
        .await
        .expect("the API answers");

    // Assert: deleted, its keys gone from its primary, and out of the registry on the other.
    assert_eq!(answer.status().as_u16(), 204, "{:?}", answer.text().await);
    let (status, _) = app.get(&format!("/events/{event}")).await;
    assert_eq!(status, 404, "the event is gone");
    let keys = keys_of(&event);
    assert_eq!(
        command(
            app.redis.primary_of(&event),
            &format!("EXISTS {}", keys.seats)
        )
        .as_deref(),
        Some(":0"),
        "its seats are freed"
    );
    let registered: Option<f64> = TestRedis::node_client(sys)
        .await
        .zscore(queue_core::keys::EVENTS, &event)
        .await
        .expect("ZSCORE");
    assert_eq!(registered, None, "out of the events registry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_gone_for_good_holds_up_its_own_events_alone() {
    // Arrange: an event whose slot range's shard (`keys::Shard::of`) has its keys on another
    // primary, the victim (not the `{sys}` keys' one: without it the housekeeping turn waits);
    // an event of the victim's; a client address whose rate-limit bucket is on the victim.
    let mut app = spawn_app_with(Options::default().redis(RedisKind::Cluster).workers(1)).await;
    let sys = app
        .redis
        .primary_of_slot(queue_core::keys::slot_of(queue_core::keys::EVENTS));
    let mut found = None;
    for _ in 0..1000 {
        let event = app.create_event(50).await;
        let shard = queue_core::keys::Shard::of(event.parse().expect("an event id"));
        let its_shards = app.redis.primary_of_slot(shard.slot());
        if its_shards != app.redis.primary_of(&event) && its_shards != sys {
            found = Some((event, its_shards));
            break;
        }
    }
    let (event, victim) = found.expect("an event whose range's shard is on another primary");
    let mut theirs = app.create_event(10).await;
    while app.redis.primary_of(&theirs) != victim {
        theirs = app.create_event(10).await;
    }
    let bucket_on = |ip: std::net::Ipv4Addr| {
        let key =
            queue_core::keys::rate_limit(&queue_core::keys::RateLimitClient::Address(ip), "holds");
        app.redis.primary_of_slot(queue_core::keys::slot_of(&key))
    };
    let client = (2..=250)
        .map(|n| std::net::Ipv4Addr::new(127, 0, 0, n))
        .find(|ip| bucket_on(*ip) == victim)
        .expect("an address whose bucket is on the victim");
    let limited = app.start_api(|s| s.rate_limits.enabled = true).await;
    let shards: Vec<(queue_core::keys::Shard, u16)> = queue_core::keys::Shard::all()
        .map(|shard| (shard, app.redis.primary_of_slot(shard.slot())))
        .collect();
    let replica = app.redis.replica_of(victim);
    app.redis.kill_node(replica);
    app.redis.kill_node(victim);

    // Act 1: holds on the event, through the API without limits.
    let (app_ref, event_ref) = (&app, &event);
    let posts = futures::future::join_all(
        (1..=20).map(|n| async move { app_ref.hold(&seat_of(event_ref, n), &new_user()).await }),
    )
    .await;

    // Assert 1: accepted and applied. Without `Store::shard_of` the ready token and hint went
    // to the dead primary and no worker ever came.
    for posted in &posts {
        assert_eq!(
            posted.status(),
            202,
            "a hold on a live primary's event: {posted}"
        );
    }
    for posted in &posts {
        let job = posted.job_id().expect("a job id");
        let done = app.wait_job(job, Duration::from_secs(10)).await;
        assert_eq!(done.code(), Some(200), "applied: {done}");
    }
    let dead = app.hold(&seat_of(&theirs, 1), &new_user()).await;
    assert_eq!(
        dead.status(),
        503,
        "the dead primary's event is refused: {dead}"
    );

    // Act 2: a hold accepted while no worker runs, its ready token then lost (taken off every
    // live shard's list), the worker started again.
    app.stop_workers().await;
    let posted = app.hold(&seat_of(&event, 21), &new_user()).await;
    assert_eq!(posted.status(), 202, "{posted}");
    let token = event.clone();
    let mut taken = 0;
    for (shard, primary) in shards.iter().filter(|(_, primary)| *primary != victim) {
        let node = TestRedis::node_client(*primary).await;
        let n: u64 = fred::interfaces::ListInterface::lrem(&node, shard.ready(), 0, &token)
            .await
            .expect("LREM");
        taken += n;
    }
    assert_eq!(taken, 1, "the one token of the event was taken away");
    app.start_worker().await;

    // Assert 2: the reconcile pass, reading every shard it can reach, wakes the event once
    // its lease lapses (2 s).
    let done = app
        .wait_job(posted.job_id().expect("a job id"), Duration::from_secs(15))
        .await;
    assert_eq!(
        done.code(),
        Some(200),
        "woken by the reconcile pass: {done}"
    );

    // Act 3 and assert: the client whose bucket was on the dead primary is served on a live
    // primary's event (the limit fails open), not refused with the dead primary.
    let answer = crate::helpers::machine(client.into())
        .post(format!("{}/seats/hold", limited.base()))
        .json(&serde_json::json!({"id": seat_of(&event, 22), "UUID": new_user()}))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(
        answer.status().as_u16(),
        202,
        "a client whose rate-limit bucket is on the dead primary: {:?}",
        answer.text().await
    );
}
