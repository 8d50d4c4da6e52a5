//! G10, streams (docs/CONTRACT.md §2, admission): one client address cannot hold more than its
//! share of seat streams, the process refuses new ones well before it runs out of file
//! descriptors, others are served meanwhile, a closed stream's place and memory come back, and a
//! stream ends at its lifetime and resumes with `Last-Event-ID` missing nothing.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{free_port, new_user, seat_of, spawn_app_with, Options};

/// A client machine: an HTTP client whose connections leave from `source`.
fn machine(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

/// Opens a stream of `event` from `client`: the response, kept open, or the refusal's status and
/// JSON body.
async fn open(
    client: &reqwest::Client,
    base: &str,
    event: &str,
) -> Result<reqwest::Response, (u16, Option<String>, Value)> {
    let response = client
        .get(format!("{base}/events/{event}/stream"))
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    if status == 200 {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    Err((status, retry_after, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn g10_one_address_opening_streams_is_refused_at_its_share_and_others_are_served() {
    const PER_CLIENT: usize = 40;
    const TOTAL: usize = 100;
    let app = spawn_app_with(
        Options::default()
            .workers(1)
            .env("STREAMS_PER_CLIENT", PER_CLIENT)
            .env("STREAMS_TOTAL", TOTAL),
    )
    .await;
    let event = app.create_event(10).await;
    let port = free_port();
    // Started with a soft limit of open files below the hard one (half of it, at most 1,024).
    let hard: u32 = std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4)?.parse().ok())
        .unwrap_or(1024);
    let lowered = (hard / 2).min(1024);
    let mut api = app.spawn_api_process_with_soft_open_files(port, lowered);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/health")).await.is_err() {
        assert!(Instant::now() < deadline, "the API process did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = api.rss_kib();
    let (soft, hard) = api.open_files_limit();
    assert!(!soft.is_empty(), "the limit is read");
    assert_eq!(
        soft, hard,
        "the API raised its open-files soft limit to the hard limit"
    );
    assert_ne!(
        soft,
        lowered.to_string(),
        "the soft limit was raised from {lowered}"
    );

    // The hoarder opens streams until it is refused.
    let hoarder = machine([127, 0, 0, 2]);
    let mut held = Vec::new();
    let refusal = loop {
        match open(&hoarder, &base, &event).await {
            Ok(stream) => held.push(stream),
            Err(refusal) => break refusal,
        }
        assert!(held.len() <= PER_CLIENT, "never refused");
    };
    assert_eq!(held.len(), PER_CLIENT, "the hoarder got exactly its share");
    let (status, retry_after, body) = refusal;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_streams", "{body}");
    assert_eq!(body["limit"], PER_CLIENT);
    assert!(retry_after.is_some(), "Retry-After on the 429");

    // Meanwhile another machine opens a stream, and its hold is answered quickly.
    let other = machine([127, 0, 0, 3]);
    let mine = open(&other, &base, &event)
        .await
        .expect("another address's stream");
    let started = Instant::now();
    let hold = other
        .post(format!("{base}/seats/hold"))
        .json(&serde_json::json!({"id": seat_of(&event, 1), "UUID": new_user()}))
        .send()
        .await
        .expect("an answer");
    let took = started.elapsed();
    assert_eq!(hold.status(), 202);
    assert!(took < Duration::from_secs(1), "the hold took {took:?}");

    // More machines fill the process; the next one is told the service is full.
    let mut crowd = Vec::new();
    let mut last = 4u8;
    let full = 'fill: loop {
        let client = machine([127, 0, 0, last]);
        for _ in 0..PER_CLIENT {
            match open(&client, &base, &event).await {
                Ok(stream) => crowd.push(stream),
                Err(refusal) => break 'fill refusal,
            }
        }
        last += 1;
        assert!(last < 20, "the total cap was never reached");
    };
    assert_eq!(
        held.len() + 1 + crowd.len(),
        TOTAL,
        "the process holds exactly its total"
    );
    let (status, retry_after, body) = full;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "streams_full", "{body}");
    assert!(retry_after.is_some(), "Retry-After on the 503");
    let (status, _) = app.get("/health").await;
    assert_eq!(status, 200, "health answers while the streams are full");
    let full_rss = api.rss_kib();

    // The streams close; their places and memory come back (the API notices a closed stream at
    // its second keep-alive write, within about 4 s).
    drop(held);
    drop(crowd);
    drop(mine);
    let closed = Instant::now();
    let deadline = closed + Duration::from_secs(8);
    let again = loop {
        match open(&hoarder, &base, &event).await {
            Ok(stream) => break stream,
            Err(refusal) => {
                assert!(
                    Instant::now() < deadline,
                    "a place never came back: {refusal:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    println!(
        "a place came back {:?} after the streams closed",
        closed.elapsed()
    );
    drop(again);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = api.rss_kib();
    println!("API RSS: {baseline} KiB at start, {full_rss} KiB with {TOTAL} streams, {after} KiB after they closed");
    assert!(
        full_rss < baseline + 64 * 1024,
        "{TOTAL} streams cost {} KiB",
        full_rss.saturating_sub(baseline)
    );
    assert!(
        after < baseline + 16 * 1024,
        "memory after the streams closed: {after} KiB, from {baseline} KiB"
    );
    api.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g10_a_stream_ends_at_its_lifetime_and_resumes_with_nothing_missed() {
    let app = spawn_app_with(
        Options::default()
            .workers(1)
            .env("STREAM_MAX_LIFETIME_SECS", 1),
    )
    .await;
    let event = app.create_event(10).await;
    let client = reqwest::Client::new();
    // Timed from before the request: the server's clock starts after this one, so a slow open
    // cannot make the stream look short-lived.
    let started = Instant::now();
    let mut stream = open(&client, &app.address, &event)
        .await
        .expect("the stream opens");
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .expect("it ends in time")
    {
        text.extend_from_slice(&chunk);
    }
    let lived = started.elapsed();
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(4)).contains(&lived),
        "the stream lived {lived:?}"
    );
    let text = String::from_utf8(text).expect("UTF-8");
    let last_id = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("the snapshot's id")
        .to_owned();
    // A change while the client is away comes with the resumed stream.
    assert!(app
        .hold_and_wait(&seat_of(&event, 4), &new_user())
        .await
        .succeeded());
    let mut resumed = client
        .get(app.url(&format!("/events/{event}/stream")))
        .header("Last-Event-ID", &last_id)
        .send()
        .await
        .expect("the stream resumes");
    let mut text = Vec::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_millis(1500), resumed.chunk()).await
    {
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).expect("UTF-8");
    assert!(
        text.contains("\"held\"") && text.contains("\"number\":4"),
        "the resumed stream has the change made meanwhile: {text}"
    );
    assert!(!text.contains("event: snapshot"), "no new snapshot: {text}");
}
