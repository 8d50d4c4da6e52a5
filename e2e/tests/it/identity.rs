//! G9, nobody acts as anyone else (docs/CONTRACT.md §2, "who is asking"): no answer shows a
//! user's id to anyone but that user, in either mode; a stranger who follows the stream cannot
//! release, refresh or reserve anyone's hold; in jwt mode a user is a verified bearer token, and
//! every kind of bad token is a 401 with a challenge.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::identity::{mint, subject_user, MintRequest};
use futures::future::join_all;
use loadgen::api::{Auth, JobStatus, SeatStatus};
use serde_json::{json, Value};

use crate::helpers::{new_user, seat_of, spawn_app_with, Options, TestApp};

const SECRET: &str = "an-e2e-secret-of-at-least-32-bytes!!";

fn jwt_mode() -> Options {
    Options::default()
        .env("AUTH_MODE", "jwt")
        .env("AUTH_JWT_SECRET", SECRET)
}

/// A token of `sub` for `app`'s configuration.
fn token(app: &TestApp, sub: &str, admin: bool) -> String {
    mint(
        &app.settings.auth,
        &MintRequest {
            sub: sub.to_owned(),
            admin,
            ttl: Duration::from_secs(600),
            private_key: None,
        },
    )
    .expect("a token")
}

/// The header a read names its asker with, in the app's mode.
fn asker(app: &TestApp, user: &str) -> (&'static str, String) {
    app.api().auth().viewer_header(user).expect("a header")
}

/// A raw GET, with `header` when given: status and body text.
async fn get_text(app: &TestApp, path: &str, header: Option<&(&str, String)>) -> (u16, String) {
    let mut request = app.http.get(app.url(path));
    if let Some((name, value)) = header {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// What a stream sends within `quiet` after it opens (and after `during` is done), as text.
async fn stream_text(
    app: &TestApp,
    event: &str,
    header: Option<&(&str, String)>,
    last_event_id: Option<&str>,
) -> String {
    let mut request = reqwest::Client::new().get(app.url(&format!("/events/{event}/stream")));
    if let Some((name, value)) = header {
        request = request.header(*name, value);
    }
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let mut response = request.send().await.expect("the stream answers");
    assert_eq!(response.status(), 200, "the stream opens");
    let mut text = Vec::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_millis(400), response.chunk()).await
    {
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text).expect("SSE is UTF-8")
}

/// An open stream, read in the background: its text so far on demand.
struct OpenStream {
    task: tokio::task::JoinHandle<String>,
    stop: tokio_util::sync::CancellationToken,
}

impl OpenStream {
    async fn open(app: &TestApp, event: &str, header: Option<(&'static str, String)>) -> Self {
        let mut request = reqwest::Client::new().get(app.url(&format!("/events/{event}/stream")));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let mut response = request.send().await.expect("the stream answers");
        assert_eq!(response.status(), 200, "the stream opens");
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut text = Vec::new();
            loop {
                tokio::select! {
                    chunk = response.chunk() => match chunk {
                        Ok(Some(chunk)) => text.extend_from_slice(&chunk),
                        _ => break,
                    },
                    () = stopped.cancelled() => break,
                }
            }
            String::from_utf8_lossy(&text).into_owned()
        });
        Self { task, stop }
    }

    async fn text(self) -> String {
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.stop.cancel();
        self.task.await.expect("the reader ends")
    }
}

/// Every public read, in both modes: a stranger's answer never contains the holder's id, and the
/// holder's own read of the same thing does.
async fn no_read_shows_a_holder_to_a_stranger(options: Options) {
    let app = spawn_app_with(options.workers(1)).await;
    let event = app.create_event(20).await;
    let holder = new_user();
    let stranger = new_user();
    // A hold, a reservation, and a hold given back (a past holder, in the replays).
    assert!(app
        .hold_and_wait(&seat_of(&event, 1), &holder)
        .await
        .succeeded());
    assert!(app
        .hold_and_wait(&seat_of(&event, 2), &holder)
        .await
        .succeeded());
    let reserve = app.reserve(&seat_of(&event, 2), &holder).await;
    let done = app
        .wait_job(reserve.job_id().expect("a job"), Duration::from_secs(10))
        .await;
    assert!(done.succeeded(), "{done}");
    assert!(app
        .hold_and_wait(&seat_of(&event, 3), &holder)
        .await
        .succeeded());
    assert_eq!(
        app.release(&seat_of(&event, 3), &holder).await.status(),
        200
    );

    let as_holder = asker(&app, &holder);
    let as_stranger = asker(&app, &stranger);
    // Live messages: streams open while the holder holds seat 4.
    let live = [
        OpenStream::open(&app, &event, None).await,
        OpenStream::open(&app, &event, Some(as_stranger.clone())).await,
        OpenStream::open(&app, &event, Some(as_holder.clone())).await,
    ];
    assert!(app
        .hold_and_wait(&seat_of(&event, 4), &holder)
        .await
        .succeeded());
    let [anonymous_live, stranger_live, holder_live] = live;
    let (anonymous_live, stranger_live, holder_live) = (
        anonymous_live.text().await,
        stranger_live.text().await,
        holder_live.text().await,
    );
    assert!(
        holder_live.contains("\"held\"") && anonymous_live.contains("\"held\""),
        "the live streams carried the hold: {anonymous_live}"
    );

    let mut stranger_reads: Vec<(String, String)> = Vec::new();
    let mut holder_reads: Vec<(String, String)> = Vec::new();
    for seat in 1..=4 {
        let path = format!("/seats/get/{}", seat_of(&event, seat));
        for (who, header) in [("anonymous", None), ("stranger", Some(&as_stranger))] {
            let (status, body) = get_text(&app, &path, header).await;
            assert_eq!(status, 200, "{path}: {body}");
            stranger_reads.push((format!("{who} {path}"), body));
        }
        if seat != 3 {
            let (status, body) = get_text(&app, &path, Some(&as_holder)).await;
            assert_eq!(status, 200, "{path}: {body}");
            holder_reads.push((format!("holder {path}"), body));
        }
    }
    for path in [
        format!("/seats/list/{event}"),
        format!("/events/{event}"),
        "/events".to_owned(),
        "/metrics".to_owned(),
        "/health".to_owned(),
    ] {
        for header in [None, Some(&as_stranger)] {
            let (_, body) = get_text(&app, &path, header).await;
            stranger_reads.push((path.clone(), body));
        }
    }
    for header in [None, Some(&as_stranger)] {
        stranger_reads.push((
            "the stream's snapshot".into(),
            stream_text(&app, &event, header, None).await,
        ));
        stranger_reads.push((
            "a replay from 0-0".into(),
            stream_text(&app, &event, header, Some("0-0")).await,
        ));
    }
    stranger_reads.push(("a live stream, anonymous".into(), anonymous_live));
    stranger_reads.push(("a live stream, as a stranger".into(), stranger_live));
    holder_reads.push((
        "the holder's snapshot".into(),
        stream_text(&app, &event, Some(&as_holder), None).await,
    ));
    holder_reads.push((
        "the holder's replay from 0-0".into(),
        stream_text(&app, &event, Some(&as_holder), Some("0-0")).await,
    ));
    holder_reads.push(("the holder's live stream".into(), holder_live));

    for (what, body) in &stranger_reads {
        assert!(
            !body.contains(&holder),
            "{what} shows the holder's id {holder} to a stranger: {body}"
        );
    }
    for (what, body) in &holder_reads {
        assert!(
            body.contains(&holder),
            "{what} does not show the holder their own id: {body}"
        );
    }
    // The replay shows the holder the whole history of their seats: held, reserved, released.
    let replay = &holder_reads[holder_reads.len() - 2].1;
    for change in ["\"held\"", "\"reserved\"", "\"released\""] {
        assert!(replay.contains(change), "the replay has a {change} change");
    }
    // And the API's log at info level names no user either.
    let logs = std::fs::read_dir(app.log_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|f| std::fs::read_to_string(f.path()).ok())
        .collect::<String>();
    assert!(!logs.contains(&holder), "the logs name the holder");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_in_none_mode_no_read_shows_a_holder_to_a_stranger_and_the_holder_sees_their_own_id() {
    no_read_shows_a_holder_to_a_stranger(Options::default().env("LOG_LEVEL", "info")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_in_jwt_mode_no_read_shows_a_holder_to_a_stranger_and_the_holder_sees_their_own_id() {
    no_read_shows_a_holder_to_a_stranger(jwt_mode().env("LOG_LEVEL", "info")).await;
}

/// Every UUID-shaped string in `text`.
fn uuids_in(text: &str) -> HashSet<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(35))
        .filter_map(|i| text.get(i..i + 36))
        .filter(|s| uuid::Uuid::try_parse(s).is_ok() && s.as_bytes()[8] == b'-')
        .map(str::to_lowercase)
        .collect()
}

/// The sniper, replayed: a client follows the stream and, for every hold it sees, tries to
/// release, refresh and reserve it with every id any answer gave it (and its own). Every attempt
/// fails, and every victim then reserves their seat.
async fn the_sniper_takes_nothing(options: Options) {
    let app = spawn_app_with(options.workers(2)).await;
    let event = app.create_event(20).await;
    let sniper = new_user();
    let feed = OpenStream::open(&app, &event, Some(asker(&app, &sniper))).await;
    let victims: Vec<String> = (0..5).map(|_| new_user()).collect();
    for (n, victim) in (1..).zip(&victims) {
        assert!(app
            .hold_and_wait(&seat_of(&event, n), victim)
            .await
            .succeeded());
    }
    let mut seen = feed.text().await;
    for n in 1..=5 {
        seen.push_str(
            &get_text(&app, &format!("/seats/get/{}", seat_of(&event, n)), None)
                .await
                .1,
        );
    }
    for path in [
        format!("/seats/list/{event}"),
        format!("/events/{event}"),
        "/events".to_owned(),
        "/metrics".to_owned(),
    ] {
        seen.push_str(&get_text(&app, &path, None).await.1);
    }
    seen.push_str(&stream_text(&app, &event, None, Some("0-0")).await);
    let mut ids = uuids_in(&seen);
    ids.remove(&event);
    for victim in &victims {
        assert!(!ids.contains(victim), "the sniper learnt {victim}");
    }
    ids.insert(sniper.clone());
    let held: std::collections::BTreeSet<u32> = seen
        .lines()
        .filter(|l| l.contains("\"held\""))
        .filter_map(|l| {
            let data: Value = serde_json::from_str(l.strip_prefix("data: ")?).ok()?;
            data["number"].as_u64().map(|n| n as u32)
        })
        .collect();
    assert_eq!(
        held.len(),
        5,
        "the sniper saw every hold (live and replayed): {seen}"
    );

    let mut attempts = 0;
    for &n in &held {
        let seat = seat_of(&event, n);
        for id in &ids {
            for path in ["/seats/release", "/seats/refresh", "/seats/reserve"] {
                // With the id in the body, as the sniper's own user (its token in jwt mode),
                // and in jwt mode with no token at all.
                let body = json!({"id": seat, "UUID": id});
                let mut request = app.http.post(app.url(path)).json(&body);
                if let Some((name, value)) = app.api().auth().headers_for(&sniper).expect("auth") {
                    request = request.header(name, value);
                }
                let status = request.send().await.expect("an answer").status().as_u16();
                attempts += 1;
                assert!(
                    !matches!(status, 200 | 202),
                    "{path} of seat {n} with UUID {id} answered {status}"
                );
            }
        }
    }
    assert!(attempts >= 5 * 3, "{attempts} attempts");
    for (n, victim) in (1..).zip(&victims) {
        let seat = seat_of(&event, n);
        let reserve = app.reserve(&seat, victim).await;
        assert_eq!(reserve.status(), 202, "victim {n}'s reserve: {reserve}");
        let done = app
            .wait_job(reserve.job_id().expect("a job"), Duration::from_secs(10))
            .await;
        assert!(done.succeeded(), "victim {n} reserves their seat: {done}");
        let view = app.seat_as(&seat, victim).await;
        assert_eq!(
            (view.status, view.user.as_str()),
            (SeatStatus::Reserved, victim.as_str())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_in_none_mode_a_sniper_following_the_stream_takes_no_seat() {
    the_sniper_takes_nothing(Options::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_in_jwt_mode_a_sniper_following_the_stream_takes_no_seat() {
    the_sniper_takes_nothing(jwt_mode()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g9_in_jwt_mode_200_users_with_tokens_race_and_no_seat_is_double_booked_nor_a_cap_passed() {
    let app = spawn_app_with(jwt_mode().workers(2).apis(2).env("MAX_HELD_SEATS", 2)).await;
    let event = app.create_event(20).await;
    let users: Vec<String> = (0..200).map(|_| new_user()).collect();
    // Every user asks for 4 of the 20 seats at the same instant.
    let posts = join_all(users.iter().enumerate().flat_map(|(i, user)| {
        let app = &app;
        let event = &event;
        (0..4u32).map(move |k| async move {
            let n = 1 + (i as u32 * 7 + k * 5) % 20;
            let posted = app
                .post_job_at(
                    i + k as usize,
                    loadgen::api::JobKind::Hold,
                    &seat_of(event, n),
                    user,
                )
                .await;
            (n, user.as_str(), posted)
        })
    }))
    .await;
    let mut winners: Vec<(u32, &str)> = Vec::new();
    for (n, user, posted) in &posts {
        let Some(job) = posted.job_id() else {
            assert_eq!(posted.status(), 409, "a refused hold is a 409: {posted}");
            continue;
        };
        let done = app.wait_job(job, Duration::from_secs(30)).await;
        assert_eq!(done.status, JobStatus::Completed, "{done}");
        if done.succeeded() {
            winners.push((*n, *user));
        }
    }
    let mut seats: Vec<u32> = winners.iter().map(|(n, _)| *n).collect();
    seats.sort_unstable();
    let before = seats.len();
    seats.dedup();
    assert_eq!(
        seats.len(),
        before,
        "G1: a seat was held twice: {winners:?}"
    );
    assert_eq!(seats.len(), 20, "every seat went to someone");
    for user in &users {
        let held = winners.iter().filter(|(_, u)| u == user).count();
        assert!(
            held <= 2,
            "G2: {user} holds {held} seats, over the cap of 2"
        );
    }
    for (n, user) in &winners {
        let view = app.seat_as(&seat_of(&event, *n), user).await;
        assert_eq!(view.user, *user, "seat {n} is held for the token's user");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_in_jwt_mode_a_token_acts_only_for_its_user_with_or_without_an_id_in_the_body() {
    let app = spawn_app_with(jwt_mode().workers(1)).await;
    let event = app.create_event(10).await;
    let (a, b) = (new_user(), new_user());
    let seat = seat_of(&event, 1);
    assert!(app.hold_and_wait(&seat, &b).await.succeeded());
    let a_token = format!("Bearer {}", token(&app, &a, false));
    for path in [
        "/seats/release",
        "/seats/refresh",
        "/seats/reserve",
        "/seats/hold",
    ] {
        for (body, expected) in [
            (
                json!({"id": seat}),
                if path == "/seats/hold" {
                    "seat_not_available"
                } else {
                    "held_by_another_user"
                },
            ),
            (json!({"id": seat, "UUID": b}), "user_mismatch"),
        ] {
            let response = app
                .http
                .post(app.url(path))
                .header("Authorization", &a_token)
                .json(&body)
                .send()
                .await
                .expect("an answer");
            let status = response.status().as_u16();
            let error: Value = response.json().await.expect("a JSON error");
            assert_eq!(error["code"], expected, "{path} {body}: {status} {error}");
            assert!(matches!(status, 403 | 409), "{path} {body}: {status}");
        }
    }
    // B's own token, with the id left out, works.
    let response = app
        .http
        .post(app.url("/seats/refresh"))
        .header(
            "Authorization",
            format!("Bearer {}", token(&app, &b, false)),
        )
        .json(&json!({"id": seat}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["seat"]["UUID"], b, "the holder sees their own id");
    let view = app.seat_as(&seat, &b).await;
    assert_eq!(
        (view.status, view.user.as_str()),
        (SeatStatus::OnHold, b.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_in_jwt_mode_a_subject_that_is_not_a_uuid_is_a_user() {
    let app = spawn_app_with(jwt_mode().workers(1)).await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 3);
    let bearer = format!("Bearer {}", token(&app, "auth0|alice@example.com", false));
    let response = app
        .http
        .post(app.url("/seats/hold"))
        .header("Authorization", &bearer)
        .json(&json!({"id": seat}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("JSON");
    let job = accepted["jobId"].as_str().expect("a job id");
    assert!(app.wait_job(job, Duration::from_secs(10)).await.succeeded());
    let user = subject_user("auth0|alice@example.com").to_string();
    let (status, body) = get_text(
        &app,
        &format!("/seats/get/{seat}"),
        Some(&("Authorization", bearer.clone())),
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        body["UUID"], user,
        "the v5 UUID of the subject holds the seat"
    );
    // The same subject in the body, spelt as its UUID, is that user.
    let response = app
        .http
        .post(app.url("/seats/release"))
        .header("Authorization", &bearer)
        .json(&json!({"id": seat, "UUID": user}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 200);
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A token with `claims`, signed HS256 with `secret`.
fn signed(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("an HS256 key"),
    )
    .expect("a token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g9_in_jwt_mode_every_bad_token_is_a_401_with_a_challenge_and_writes_nothing() {
    let app = spawn_app_with(
        jwt_mode()
            .workers(0)
            .env("AUTH_JWT_ISSUER", "https://id.example.com/")
            .env("AUTH_JWT_AUDIENCE", "seats"),
    )
    .await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 1);
    let user = new_user();
    let now = now_secs();
    let good =
        json!({"sub": user, "exp": now + 600, "iss": "https://id.example.com/", "aud": "seats"});
    let with = |key: &str, value: Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().expect("an object").remove(key);
        claims
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good.to_string().as_bytes())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        (
            "expired",
            Some(signed(&with("exp", json!(now - 3600)), SECRET)),
        ),
        (
            "not valid yet",
            Some(signed(&with("nbf", json!(now + 3600)), SECRET)),
        ),
        ("no exp", Some(signed(&without("exp"), SECRET))),
        (
            "bad signature",
            Some(signed(&good, "another-secret-of-at-least-32-bytes!!")),
        ),
        ("alg none", Some(alg_none)),
        (
            "wrong iss",
            Some(signed(
                &with("iss", json!("https://evil.example.com/")),
                SECRET,
            )),
        ),
        (
            "wrong aud",
            Some(signed(&with("aud", json!("other")), SECRET)),
        ),
        ("no iss", Some(signed(&without("iss"), SECRET))),
        ("garbage", Some("not.a.jwt".to_owned())),
        ("empty", Some(String::new())),
    ];
    let before = app.redis.digest().await;
    for (what, token) in &cases {
        let mut request = app
            .http
            .post(app.url("/seats/hold"))
            .json(&json!({"id": seat, "UUID": user}));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.expect("an answer");
        assert_eq!(response.status(), 401, "{what}");
        let challenge = response
            .headers()
            .get("WWW-Authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer realm="),
            "{what}: {challenge}"
        );
        if token.is_some() {
            assert!(
                challenge.contains("error=\"invalid_token\""),
                "{what}: {challenge}"
            );
        }
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body["code"], "unauthenticated", "{what}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}"
        );
    }
    assert_eq!(
        app.redis.digest().await,
        before,
        "a refused request writes nothing"
    );
    // The same claims, well signed, are accepted.
    let response = app
        .http
        .post(app.url("/seats/hold"))
        .header("Authorization", format!("Bearer {}", signed(&good, SECRET)))
        .json(&json!({"id": seat}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), 202, "a good token is accepted");
}

#[tokio::test]
async fn g9_in_jwt_mode_only_an_admin_creates_events() {
    let app = spawn_app_with(jwt_mode().workers(0)).await;
    let create = |bearer: Option<String>| {
        let mut request = app
            .http
            .post(app.url("/events/create"))
            .json(&json!({"name": "Gala", "totalSeats": 10}));
        if let Some(bearer) = bearer {
            request = request.header("Authorization", format!("Bearer {bearer}"));
        }
        async move {
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("JSON");
            (status, body)
        }
    };
    let (status, body) = create(None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated")),
        "{body}"
    );
    let (status, body) = create(Some(token(&app, &new_user(), false))).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("admin_only")),
        "{body}"
    );
    let (status, body) = create(Some(signed(
        &json!({"sub": "ops", "exp": now_secs() + 60, "roles": ["staff", "admin"]}),
        SECRET,
    )))
    .await;
    assert_eq!(status, 201, "a `roles` claim with admin: {body}");
    let (status, body) = create(Some(token(&app, "ops", true))).await;
    assert_eq!(status, 201, "a `role: admin` claim: {body}");
    let (_, events) = app.get("/events").await;
    assert_eq!(events["events"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn g9_in_none_mode_a_read_with_a_malformed_asker_is_a_422_and_a_body_without_uuid_too() {
    let app = spawn_app_with(Options::default().workers(0)).await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 1);
    let header = ("X-User-Id", "not-a-uuid".to_owned());
    let (status, body) = get_text(&app, &format!("/seats/get/{seat}"), Some(&header)).await;
    assert_eq!(status, 422, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["field"], "X-User-Id");
    let (status, body) = app.post("/seats/hold", json!({"id": seat})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("UUID")),
        "{body}"
    );
    // The typed client's none mode needs no token: a bearer header is ignored by user routes.
    assert!(matches!(app.api().auth(), Auth::None));
}

#[test]
fn a_bad_key_setting_stops_startup_naming_the_setting() {
    let settings = |env: &[(&str, &str)]| {
        let env: std::collections::HashMap<_, _> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
        queue_core::Settings::load_with(&dir, |name| env.get(name).cloned())
    };
    let err = settings(&[("AUTH_MODE", "jwt")]).expect_err("jwt mode needs a key");
    assert!(err.to_string().contains("AUTH_JWT_SECRET"), "{err}");
    let err = settings(&[("AUTH_MODE", "jwt"), ("AUTH_JWT_SECRET", "short")])
        .expect_err("a short secret");
    assert!(err.to_string().contains("AUTH_JWT_SECRET"), "{err}");
    let dir = std::env::temp_dir().join(format!("e2e-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let not_a_key = dir.join("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").expect("writable");
    let s = settings(&[
        ("AUTH_MODE", "jwt"),
        (
            "AUTH_JWT_PUBLIC_KEY_FILE",
            not_a_key.to_str().expect("utf-8"),
        ),
    ])
    .expect("the settings themselves are well-formed");
    let err = api::identity::Identity::from_settings(&s.auth).expect_err("not a PEM key");
    assert!(
        format!("{err:#}").contains("AUTH_JWT_PUBLIC_KEY_FILE"),
        "{err:#}"
    );
    let missing = dir.join("missing.pem");
    let s = settings(&[
        ("AUTH_MODE", "jwt"),
        ("AUTH_JWT_PUBLIC_KEY_FILE", missing.to_str().expect("utf-8")),
    ])
    .expect("well-formed");
    let err = api::identity::Identity::from_settings(&s.auth).expect_err("no such file");
    assert!(
        format!("{err:#}").contains("AUTH_JWT_PUBLIC_KEY_FILE"),
        "{err:#}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

impl TestApp {
    /// Creates an event with an admin token signed by `private_key` (jwt mode with a PEM key).
    async fn create_event_as_admin(&self, private_key: &std::path::Path) -> String {
        let admin = mint(
            &self.settings.auth,
            &MintRequest {
                sub: "ops".to_owned(),
                admin: true,
                ttl: Duration::from_secs(60),
                private_key: Some(private_key.to_owned()),
            },
        )
        .expect("an admin token");
        let response = self
            .http
            .post(self.url("/events/create"))
            .header("Authorization", format!("Bearer {admin}"))
            .json(&json!({"name": "Keyed", "totalSeats": 10}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("JSON");
        body["id"].as_str().expect("an id").to_owned()
    }
}

/// A fixture key of `e2e/tests/fixtures`.
fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// With a PEM public key configured, tokens signed by its private key are users; one signed by
/// another key, and an HS256 token "signed" with the public key (the algorithm-confusion
/// attack), are 401s.
async fn a_public_key_verifies_its_own_tokens_only(public: &str, private: &str, other: &str) {
    let key = fixture(public);
    let app = spawn_app_with(
        Options::default()
            .workers(0)
            .env("AUTH_MODE", "jwt")
            .env("AUTH_JWT_PUBLIC_KEY_FILE", key.display()),
    )
    .await;
    let event = app.create_event_as_admin(&fixture(private)).await;
    let user = new_user();
    let signed_by = |private: &str| {
        mint(
            &app.settings.auth,
            &MintRequest {
                sub: user.clone(),
                admin: false,
                ttl: Duration::from_secs(60),
                private_key: Some(fixture(private)),
            },
        )
        .expect("a token")
    };
    let public_pem = std::fs::read_to_string(&key).expect("the public key");
    let confused = signed(&json!({"sub": user, "exp": now_secs() + 60}), &public_pem);
    for (what, token, expected) in [
        ("its own key", signed_by(private), 202),
        ("another key", signed_by(other), 401),
        ("HS256 with the public key as secret", confused, 401),
    ] {
        let response = app
            .http
            .post(app.url("/seats/hold"))
            .header("Authorization", format!("Bearer {token}"))
            .json(&json!({"id": seat_of(&event, 1)}))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), expected, "{public}: {what}");
    }
}

#[tokio::test]
async fn g9_in_jwt_mode_an_rs256_public_key_verifies_its_own_tokens_only() {
    a_public_key_verifies_its_own_tokens_only(
        "rs256-public.pem",
        "rs256-private.pem",
        "es256-private.pem",
    )
    .await;
}

#[tokio::test]
async fn g9_in_jwt_mode_an_es256_public_key_verifies_its_own_tokens_only() {
    a_public_key_verifies_its_own_tokens_only(
        "es256-public.pem",
        "es256-private.pem",
        "rs256-private.pem",
    )
    .await;
}
