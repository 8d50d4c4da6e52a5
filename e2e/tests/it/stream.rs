//! `GET /events/{id}/stream`: a snapshot, then every seat change; a client that reconnects with
//! `Last-Event-ID` gets exactly the changes it missed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use fred::interfaces::StreamsInterface;
use queue_core::ChangeKind;
use serde_json::Value;

use crate::helpers::{
    change_entries, keys_of, new_user, seat_of, spawn_app_with, Options, TestApp,
};

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) event: String,
    pub(crate) id: Option<String>,
    pub(crate) data: Value,
}

/// A minimal SSE client over one HTTP response.
pub(crate) struct SseClient {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl SseClient {
    pub(crate) async fn connect(app: &TestApp, event: &str, last_id: Option<&str>) -> Self {
        Self::connect_as(app, event, last_id, None).await
    }

    /// Opens the stream as `viewer` (none mode's `X-User-Id`), who sees its own id on its seats.
    async fn connect_as(
        app: &TestApp,
        event: &str,
        last_id: Option<&str>,
        viewer: Option<&str>,
    ) -> Self {
        let mut request = reqwest::Client::new().get(app.url(&format!("/events/{event}/stream")));
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id);
        }
        if let Some(viewer) = viewer {
            request = request.header("X-User-Id", viewer);
        }
        let response = request.send().await.expect("the stream answers");
        assert_eq!(response.status(), 200, "the stream opens");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "the stream is SSE"
        );
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next message with an `event:`, or `None` when none comes within `within`.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("SSE is UTF-8");
                let (mut event, mut id, mut data) = (None, None, String::new());
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if let Some(event) = event {
                    let data = serde_json::from_str(&data).expect("data is JSON");
                    return Some(Message { event, id, data });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Err(_) => return None,
                Ok(chunk) => match chunk.expect("the stream reads") {
                    Some(bytes) => self.buffer.extend_from_slice(&bytes),
                    None => return None,
                },
            }
        }
    }

    /// Every message until none comes for `quiet`.
    async fn drain(&mut self, quiet: Duration) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.next(quiet).await {
            out.push(m);
        }
        out
    }
}

/// The ids of every entry of the event's changes stream after `after`, straight from Redis.
async fn logged_ids(app: &TestApp, event: &str, after: &str) -> Vec<String> {
    change_entries(app, event, after)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// Seat number → (status, holder), from a snapshot with changes applied in order.
fn replay(snapshot: &Value, changes: &[Message]) -> HashMap<u64, (String, String)> {
    let mut seats: HashMap<u64, (String, String)> = snapshot["seats"]
        .as_array()
        .expect("snapshot seats")
        .iter()
        .map(|s| {
            (
                s["number"].as_u64().expect("a seat number"),
                (
                    s["status"].as_str().expect("a status").to_owned(),
                    s["UUID"].as_str().expect("a holder").to_owned(),
                ),
            )
        })
        .collect();
    for change in changes {
        let status = change.data["status"].as_str().expect("a status").to_owned();
        let holder = match status.as_str() {
            "Available" => String::new(),
            _ => change.data["UUID"].as_str().expect("a user").to_owned(),
        };
        seats.insert(
            change.data["number"].as_u64().expect("a number"),
            (status, holder),
        );
    }
    seats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_reconnects_mid_burst_gets_every_change_it_missed_exactly_once() {
    let app = Arc::new(spawn_app_with(Options::default().workers(2).env("HOLD_TTL_SECS", 2)).await);
    let event = app.create_event(60).await;

    let mut steady = SseClient::connect(&app, &event, None).await;
    let mut flaky = SseClient::connect(&app, &event, None).await;
    let first = steady
        .next(Duration::from_secs(5))
        .await
        .expect("a snapshot");
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.data["seats"].as_array().map(Vec::len), Some(60));
    let start = first.id.clone().expect("the snapshot has an id");
    let flaky_snapshot = flaky
        .next(Duration::from_secs(5))
        .await
        .expect("a snapshot");
    assert_eq!(
        flaky_snapshot.id.as_deref(),
        Some(start.as_str()),
        "nothing changed between them"
    );

    // A burst: 40 users hold seats at once; each then refreshes, releases, reserves or lets its
    // holds lapse (HOLD_TTL is 2 s), so every kind of change is in the stream.
    let mut users = Vec::new();
    for u in 0..40u32 {
        let (app, event) = (app.clone(), event.clone());
        users.push(tokio::spawn(async move {
            let user = new_user();
            for round in 0..3u32 {
                let seat = seat_of(&event, 1 + (u * 7 + round * 13) % 60);
                let accepted = app.hold(&seat, &user).await;
                let Some(job) = accepted.job_id() else {
                    continue; // not Available right now: a 409 pre-check
                };
                let done = app
                    .api()
                    .job_status(job, Some(10))
                    .await
                    .expect("the job status answers");
                if done.and_then(|d| d.code()) != Some(200) {
                    continue;
                }
                match u % 4 {
                    0 => assert_eq!(app.refresh(&seat, &user).await.status(), 200),
                    1 => assert_eq!(app.release(&seat, &user).await.status(), 200),
                    2 => assert_eq!(app.reserve(&seat, &user).await.status(), 202),
                    _ => {}
                }
            }
        }));
    }

    // The flaky client reads part of the burst, drops its connection, misses some changes,
    // and reconnects with the id of the last one it got.
    let mut before = Vec::new();
    while before.len() < 25 {
        let m = flaky
            .next(Duration::from_secs(10))
            .await
            .expect("changes during the burst");
        before.push(m);
    }
    drop(flaky);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = before
        .last()
        .and_then(|m| m.id.clone())
        .expect("changes have ids");
    let mut flaky = SseClient::connect(&app, &event, Some(&last)).await;
    for user in users {
        user.await.expect("a user task");
    }
    // Every hold not reserved or released lapses 2 s after it was made; the sweep notes it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = flaky.drain(Duration::from_millis(1500)).await;
    let seen_by_steady = steady.drain(Duration::from_millis(500)).await;

    assert!(
        after.iter().all(|m| m.event == "seat"),
        "a resume sends no new snapshot"
    );
    let logged = logged_ids(&app, &event, &start).await;
    let ids = |ms: &[Message]| -> Vec<String> { ms.iter().filter_map(|m| m.id.clone()).collect() };
    let flaky_ids: Vec<String> = ids(&before).into_iter().chain(ids(&after)).collect();
    assert_eq!(
        flaky_ids.len(),
        flaky_ids.iter().collect::<HashSet<_>>().len(),
        "no change twice"
    );
    assert_eq!(
        flaky_ids, logged,
        "the reconnecting client got every change, in order"
    );
    assert_eq!(
        ids(&seen_by_steady),
        logged,
        "the steady client got every change, in order"
    );
    assert!(!after.is_empty(), "changes came after the reconnect");

    let kinds: HashSet<&str> = seen_by_steady
        .iter()
        .filter_map(|m| m.data["change"].as_str())
        .collect();
    for kind in ChangeKind::ALL.map(ChangeKind::as_str) {
        assert!(
            kinds.contains(kind),
            "the burst made a `{kind}` change: {kinds:?}"
        );
    }

    // The snapshot plus the changes is the state of every seat.
    let all: Vec<Message> = before.into_iter().chain(after).collect();
    let replayed = replay(&flaky_snapshot.data, &all);
    for n in 1..=60u64 {
        let seat = app.seat(&seat_of(&event, n as u32)).await;
        let expected = (seat.status.as_str().to_owned(), seat.user);
        assert_eq!(replayed[&n], expected, "seat {n}");
    }
}

/// Streams opened together share one snapshot (`api/src/snapshots.rs`), made for nobody in
/// particular, and catch up from it. Each must still be exactly its own viewer's: its snapshot
/// plus its changes is every seat's state as that viewer sees it, its ids only go forward, and a
/// viewer sees its own id on its own seats and nobody else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_opened_together_during_a_burst_each_replay_to_what_their_viewer_sees() {
    const SEATS: u32 = 200;
    // One test client is one address: let it open all 60.
    let app = Arc::new(
        spawn_app_with(Options::default().workers(2).env("STREAMS_PER_CLIENT", 100)).await,
    );
    let event = app.create_event(SEATS).await;
    let users: Vec<String> = (0..20).map(|_| new_user()).collect();
    // Some seats are held before the streams open, so that the shared snapshot has holders.
    for (i, user) in users.iter().enumerate() {
        let job = app.hold(&seat_of(&event, 1 + i as u32), user).await;
        let job = job.job_id().expect("a hold of a free seat is accepted");
        app.wait_job(job, Duration::from_secs(10)).await;
    }

    // A burst of holds and reserves while 60 streams open at once: 20 anonymous, and each user
    // twice, so that a snapshot shared among them shows each its own seats.
    let burst = {
        let (app, event, users) = (app.clone(), event.clone(), users.clone());
        tokio::spawn(async move {
            for round in 0..6u32 {
                let mut jobs = Vec::new();
                for (i, user) in users.iter().enumerate() {
                    let seat = seat_of(&event, 21 + round * 20 + i as u32 % 20);
                    let posted = match round % 3 {
                        2 => app.reserve(&seat_of(&event, 1 + i as u32), user).await,
                        _ => app.hold(&seat, user).await,
                    };
                    jobs.extend(posted.job_id().map(str::to_owned));
                }
                for job in jobs {
                    app.wait_job(&job, Duration::from_secs(10)).await;
                }
            }
        })
    };
    let viewers: Vec<Option<String>> = (0..20)
        .map(|_| None)
        .chain(users.iter().chain(&users).map(|u| Some(u.clone())))
        .collect();
    let opened = futures::future::join_all(viewers.iter().map(|viewer| {
        let (app, event) = (app.clone(), event.clone());
        async move { SseClient::connect_as(&app, &event, None, viewer.as_deref()).await }
    }))
    .await;
    burst.await.expect("the burst");
    let streams = futures::future::join_all(opened.into_iter().map(|mut client| async move {
        let snapshot = client
            .next(Duration::from_secs(5))
            .await
            .expect("a snapshot");
        (snapshot, client.drain(Duration::from_millis(1500)).await)
    }))
    .await;

    // The seats now: their status, and who holds each (a user sees only its own id, so each is
    // asked about the seats it sent jobs for).
    let mut now: HashMap<u64, (String, String)> = HashMap::new();
    for n in 1..=u64::from(SEATS) {
        let seat = app.seat(&seat_of(&event, n as u32)).await;
        now.insert(n, (seat.status.as_str().to_owned(), String::new()));
    }
    for (i, user) in users.iter().enumerate() {
        let i = i as u32;
        for n in std::iter::once(1 + i).chain((0..6).map(|round| 21 + round * 20 + i)) {
            let seat = app.seat_as(&seat_of(&event, n), user).await;
            if seat.user == *user {
                now.insert(
                    u64::from(n),
                    (seat.status.as_str().to_owned(), user.clone()),
                );
            }
        }
    }

    for ((snapshot, changes), viewer) in streams.iter().zip(&viewers) {
        assert_eq!(snapshot.event, "snapshot");
        let snapshot_id = snapshot.id.clone().expect("the snapshot has an id");
        assert!(
            changes.iter().all(|m| m.event == "seat"),
            "one snapshot per stream"
        );
        let ids: Vec<String> = changes.iter().filter_map(|m| m.id.clone()).collect();
        assert_eq!(
            ids,
            logged_ids(&app, &event, &snapshot_id).await,
            "as {viewer:?}: every change after the snapshot, once, in order"
        );
        // Only the viewer's own id ever shows.
        let mut own = 0;
        for seat in snapshot.data["seats"].as_array().expect("seats") {
            let user = seat["UUID"].as_str().expect("a UUID field");
            if !user.is_empty() {
                assert_eq!(Some(user), viewer.as_deref(), "a stranger's id shown");
                own += 1;
            }
        }
        if viewer.is_some() {
            assert!(own >= 1, "as {viewer:?}: its first hold shows as its own");
        }
        let replayed = replay(&snapshot.data, changes);
        for n in 1..=u64::from(SEATS) {
            let (status, holder) = &now[&n];
            let shown = if Some(holder) == viewer.as_ref() {
                holder.as_str()
            } else {
                ""
            };
            assert_eq!(
                replayed[&n],
                (status.clone(), shown.to_owned()),
                "as {viewer:?}: seat {n}"
            );
        }
    }
}

#[tokio::test]
async fn a_resume_the_stream_cannot_serve_starts_again_from_a_snapshot() {
    let app = spawn_app_with(Options::default().workers(1)).await;
    let event = app.create_event(10).await;
    for n in 1..=3 {
        let held = app.hold_and_wait(&seat_of(&event, n), &new_user()).await;
        assert_eq!(held.code(), Some(200));
    }
    let ids = logged_ids(&app, &event, "0-0").await;
    assert_eq!(ids.len(), 3);

    // From the start: every change, no snapshot.
    let mut from_start = SseClient::connect(&app, &event, Some("0-0")).await;
    let got = from_start.drain(Duration::from_millis(500)).await;
    assert_eq!(
        got.iter().filter_map(|m| m.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert!(got.iter().all(|m| m.event == "seat"));

    // Entries trimmed away (as MAXLEN does past ~10,000): a client behind them gets a snapshot.
    let client = app.redis.client().await;
    let _: i64 = client
        .xtrim(keys_of(&event).changes, ("MAXLEN", 1))
        .await
        .expect("XTRIM");
    let mut behind = SseClient::connect(&app, &event, Some(&ids[0])).await;
    let first = behind
        .next(Duration::from_secs(5))
        .await
        .expect("a message");
    assert_eq!(
        first.event, "snapshot",
        "a client behind the kept changes resyncs"
    );
    assert_eq!(first.id.as_deref(), Some(ids[2].as_str()));
    assert_eq!(first.data["event"]["onHold"], 3);
    // A client whose last change is still kept is served from there, without a snapshot.
    let mut current = SseClient::connect(&app, &event, Some(&ids[2])).await;
    let got = current.drain(Duration::from_millis(300)).await;
    assert!(got.is_empty(), "nothing after the last change: {got:?}");
    // An id this stream never made (from the future, or another server) also resyncs.
    let mut stranger = SseClient::connect(&app, &event, Some("99999999999999-0")).await;
    let first = stranger
        .next(Duration::from_secs(5))
        .await
        .expect("a message");
    assert_eq!(first.event, "snapshot");

    // Bad input is a JSON error and opens nothing.
    let response = reqwest::Client::new()
        .get(app.url(&format!("/events/{event}/stream")))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["field"], "Last-Event-ID");
    let (status, body) = app
        .get("/events/3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4/stream")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("event_not_found"))
    );
    let (status, body) = app.get("/events/nope/stream").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("id")));
}

#[tokio::test]
async fn events_are_listed_newest_first() {
    let app = spawn_app_with(Options::default()).await;
    let older = app.create_event(10).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let newer = app.create_event(20).await;
    let (status, body) = app.get("/events").await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(listed, [newer.as_str(), older.as_str()]);
    assert_eq!(body["events"][0]["totalSeats"], 20);
    assert_eq!(body["events"][0]["available"], 20);
}
