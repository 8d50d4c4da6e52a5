//! A flood of bad requests cannot fill the disk with log (G8, G10): at the default LOG_LEVEL
//! (info) a client error costs no log at all, while a 5xx keeps its ERROR line with its cause.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::helpers::{free_port, spawn_app_with, Options, RedisKind, TestApp};

/// Bytes of the API process's log files (`api.*.log`).
fn api_log(app: &TestApp) -> String {
    std::fs::read_dir(app.log_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().starts_with("api"))
        .filter_map(|f| std::fs::read_to_string(f.path()).ok())
        .collect()
}

/// The status of a read that needs Redis.
async fn read_an_event(app: &TestApp, base: &str) -> u16 {
    app.http
        .get(format!(
            "{base}/events/00000000-0000-4000-8000-000000000000"
        ))
        .send()
        .await
        .expect("the API answers")
        .status()
        .as_u16()
}

/// Sends `head` on a connection of its own and reads until the server closes it.
fn raw(port: u16, head: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the API listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    let _ = stream.write_all(head);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_bad_requests_write_under_20_bytes_of_log_each_at_info() {
    // Arrange: a real API process logging at the default level.
    let app = spawn_app_with(
        Options::default()
            .workers(0)
            .redis(RedisKind::Single)
            .env("LOG_LEVEL", "info"),
    )
    .await;
    let port = free_port();
    let _api = app.spawn_api_process(port);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.http.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the API process never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = api_log(&app).len();

    // Act: 10,000 bad requests of five kinds, on 8 connections at a time, and 20 heads sent
    // too slowly.
    let slow: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || raw(port, b"GET /health HTTP/1.1\r\nHost: x")))
        .collect();
    const EACH: usize = 2_000;
    const LANES: usize = 8;
    let lanes = (0..LANES).map(|lane| {
        let (http, base) = (app.http.clone(), base.clone());
        async move {
            for i in (lane..EACH).step_by(LANES) {
                let malformed = http
                    .post(format!("{base}/seats/hold"))
                    .header("content-type", "application/json")
                    .body(r#"{"id": nope"#)
                    .send();
                let invalid = http
                    .post(format!("{base}/seats/hold"))
                    .json(&serde_json::json!({"id": "x", "UUID": "y"}))
                    .send();
                let not_json = http
                    .post(format!("{base}/seats/hold"))
                    .header("content-type", "text/plain")
                    .body("x")
                    .send();
                let unknown = http.get(format!("{base}/no/such/path/{i}")).send();
                for (what, answer) in [
                    ("malformed JSON", malformed.await),
                    ("invalid field", invalid.await),
                    ("not JSON", not_json.await),
                    ("unknown path", unknown.await),
                ] {
                    let status = answer.expect("the API answers").status();
                    assert!(status.is_client_error(), "{what}: {status}");
                }
            }
        }
    });
    join_all(lanes).await;
    let heads: Vec<_> = (0..LANES)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..EACH / LANES {
                    raw(port, b"GARBAGE \x01\x02 HTTP/1.1\r\n\r\n");
                }
            })
        })
        .collect();
    for thread in heads.into_iter().chain(slow) {
        thread.join().expect("a client thread");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Assert: next to no log for 10,020 client errors.
    let log = api_log(&app);
    let written = log.len() - before;
    let requests = 5 * EACH + 20;
    let per_request = written as f64 / requests as f64;
    eprintln!("{written} bytes of log for {requests} bad requests: {per_request:.2} a request");
    assert!(
        per_request < 20.0,
        "{per_request:.1} bytes of log a bad request:\n{}",
        &log[before..log.len().min(before + 2000)]
    );

    // A 5xx still logs its cause at ERROR.
    let mut app = app;
    app.redis.kill();
    assert_eq!(read_an_event(&app, &base).await, 503);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = api_log(&app);
        let line = log[before..]
            .lines()
            .find(|l| l.contains("\"ERROR\"") && l.contains("request failed"));
        if let Some(line) = line {
            assert!(line.contains("Unavailable"), "the cause is logged: {line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ERROR line for the 503:\n{}",
            &log[before..]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // While Redis stays down, every request fails the same way: a line every few seconds says
    // so, with how many it stands for, not one line per request.
    let flood_start = api_log(&app).len();
    let started = Instant::now();
    let requests = 400;
    for _ in 0..requests {
        assert_eq!(read_an_event(&app, &base).await, 503);
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = api_log(&app);
    let lines: Vec<&str> = log[flood_start..]
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    let allowed = 1 + took.as_secs() as usize / 5 + 1;
    eprintln!(
        "{requests} requests during an outage, in {took:?}: {} lines of log",
        lines.len()
    );
    assert!(
        lines.len() <= allowed,
        "{} lines for {requests} failures in {took:?} (at most one every 5 s):\n{}",
        lines.len(),
        lines.join("\n")
    );
}
