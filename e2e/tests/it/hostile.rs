//! Hostile clients (G8): requests trickled one byte a second and bodies far over the
//! limit must not hold up anyone else, and each gets cut off with its own answer.
//!
//! Raw TCP clients on their own threads do the hostile part while a well-behaved client keeps
//! making requests; the timings are measured and printed, and bounded generously (an answer
//! within 2 s tells "served" from "blocked behind a slow client", which would take 5 s or more).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fred::interfaces::{ClientLike, SortedSetsInterface};
use queue_core::keys;
use serde_json::{json, Value};

use crate::helpers::{new_user, seat_of, spawn_app_with, Options, TestApp, TestRedis};

/// What a raw client saw.
#[derive(Debug, Default)]
struct Seen {
    /// Bytes of the request it got out before the server answered or closed.
    sent: usize,
    /// When the server's first byte came (from the client's first byte).
    answered_after: Option<Duration>,
    /// When the server closed the connection.
    closed_after: Option<Duration>,
    response: Vec<u8>,
}

impl Seen {
    fn status(&self) -> Option<u16> {
        self.statuses().first().copied()
    }

    /// The status of every response it got, in order (a keep-alive connection gets several).
    fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.response);
        text.split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|rest| rest.get(..3)?.parse().ok())
            .collect()
    }

    fn json_body(&self) -> Option<Value> {
        let text = String::from_utf8_lossy(&self.response);
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    }
}

/// Sends `burst` at once, then `trickle` one byte per `every`, reading whatever the server
/// answers, until the server closes, `trickle` runs out (then it waits for the answer), `stop`
/// is set or `give_up` passes.
fn raw_client(
    port: u16,
    burst: Vec<u8>,
    trickle: Vec<u8>,
    every: Duration,
    give_up: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut seen = Seen::default();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("the API accepts");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("a read timeout");
        let started = Instant::now();
        let mut pending = trickle.into_iter();
        let mut next_byte_at = started;
        if stream.write_all(&burst).is_ok() {
            seen.sent = burst.len();
        }
        let mut buf = [0u8; 4096];
        while started.elapsed() < give_up && !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next_byte_at {
                if let Some(byte) = pending.next() {
                    if stream.write_all(&[byte]).is_err() {
                        // Reset by the server: nothing more will be read either.
                        seen.closed_after.get_or_insert(started.elapsed());
                        break;
                    }
                    seen.sent += 1;
                }
                next_byte_at += every;
            }
            match stream.read(&mut buf) {
                Ok(0) => {
                    seen.closed_after = Some(started.elapsed());
                    break;
                }
                Ok(n) => {
                    seen.answered_after.get_or_insert(started.elapsed());
                    seen.response.extend_from_slice(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    seen.closed_after = Some(started.elapsed());
                    break;
                }
            }
        }
        seen
    })
}

fn request_head(method: &str, path: &str, port: u16, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n")
}

/// The API's port.
fn port_of(app: &TestApp) -> u16 {
    app.address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the API's port")
}

/// A keep-alive connection: one good request (GET /health) at once, then the next one's head a
/// byte a second.
fn keep_alive_client(port: u16, give_up: Duration, stop: Arc<AtomicBool>) -> JoinHandle<Seen> {
    let first = request_head("GET", "/health", port, "");
    let next = request_head("GET", "/health", port, "");
    // The trickle starts at once, right behind the first request.
    raw_client(
        port,
        first.into_bytes(),
        next.into_bytes(),
        Duration::from_secs(1),
        give_up,
        stop,
    )
}

/// Every key of the dataset and its digest (DEBUG DIGEST-VALUE), on every primary.
pub(crate) async fn key_digests(redis: &TestRedis) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for port in redis.primary_ports() {
        let client = TestRedis::node_client(port).await;
        let names: Vec<String> = client
            .custom(fred::cmd!("KEYS"), vec!["*".to_owned()])
            .await
            .expect("KEYS");
        for name in names {
            // One key a call: on a cluster one DEBUG may not name keys of several slots.
            let digest: Vec<String> = client
                .custom(
                    fred::cmd!("DEBUG"),
                    vec!["DIGEST-VALUE".to_owned(), name.clone()],
                )
                .await
                .expect("DEBUG DIGEST-VALUE is enabled on test servers");
            all.insert(name, digest.into_iter().next().unwrap_or_default());
        }
        let _ = fred::interfaces::ClientLike::quit(&client).await;
    }
    all
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("never".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_do_not_hold_up_others() {
    let app = spawn_app_with(Options::default()).await;
    let port = port_of(&app);
    let head_timeout = Duration::from_millis(app.settings.api.client_request_timeout_ms);
    let limit = app.settings.api.max_body_bytes;
    let event = app.create_event(50).await;
    // /health answers 503 until the worker's first heartbeat.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get("/health").await.0 != 200 {
        assert!(Instant::now() < deadline, "the service became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let redis = app.redis.client().await;
    let events_before: BTreeSet<String> = redis
        .zrange(keys::EVENTS, 0, -1, None, false, None, false)
        .await
        .expect("ZRANGE");
    let keys_before = key_digests(&app.redis).await;
    let hold_body = json!({"id": seat_of(&event, 1), "UUID": new_user()}).to_string();
    let create_body = r#"{"name": "slow", "totalSeats": 10}"#.to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let second = Duration::from_secs(1);
    let run_for = Duration::from_secs(12);
    let started = Instant::now();

    // 1. The request line and headers, a byte a second: actix's client_request_timeout.
    let slow_heads: Vec<_> = (0..10)
        .map(|_| {
            let request = request_head(
                "POST",
                "/events/create",
                port,
                &format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    create_body.len()
                ),
            ) + &create_body;
            raw_client(
                port,
                Vec::new(),
                request.into_bytes(),
                second,
                run_for,
                stop.clone(),
            )
        })
        .collect();
    // 2. The headers at once, then the body a byte a second: the body extractor's timeout.
    let slow_bodies: Vec<_> = (0..10)
        .map(|_| {
            let head = request_head(
                "POST",
                "/seats/hold",
                port,
                &format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n",
                    hold_body.len()
                ),
            );
            raw_client(
                port,
                head.into_bytes(),
                hold_body.clone().into_bytes(),
                second,
                run_for,
                stop.clone(),
            )
        })
        .collect();
    // 3. A Content-Length far over the limit, the body then sent slowly (or never finished).
    let oversized: Vec<_> = (0..10)
        .map(|i| {
            let head = request_head(
                "POST",
                if i % 2 == 0 {
                    "/events/create"
                } else {
                    "/seats/hold"
                },
                port,
                "Content-Type: application/json\r\nContent-Length: 1000000000\r\n",
            );
            let mut burst = head.into_bytes();
            burst.extend_from_slice(&[b'{'; 4096]);
            raw_client(
                port,
                burst,
                vec![b' '; 100],
                Duration::from_millis(100),
                run_for,
                stop.clone(),
            )
        })
        .collect();
    // 4. A chunked body (no Content-Length) that goes past the limit at full speed.
    let chunked: Vec<_> = (0..3)
        .map(|_| {
            let mut burst = request_head(
                "POST",
                "/events/create",
                port,
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
            )
            .into_bytes();
            for _ in 0..(limit / 4096 + 4) {
                burst.extend_from_slice(format!("{:x}\r\n", 4096).as_bytes());
                burst.extend_from_slice(&[b' '; 4096]);
                burst.extend_from_slice(b"\r\n");
            }
            raw_client(port, burst, Vec::new(), second, run_for, stop.clone())
        })
        .collect();
    // 5. A keep-alive connection: one good request, then the next one's head a byte a second.
    let keep_alive_then_slow = keep_alive_client(port, run_for, stop.clone());

    // Meanwhile, a well-behaved client; the events it creates are the only writes expected.
    let mut latencies = Vec::new();
    let mut created = BTreeSet::new();
    while started.elapsed() < run_for {
        for (method, path, body) in [
            ("GET", format!("/events/{event}"), None),
            ("GET", "/health".to_owned(), None),
            (
                "POST",
                "/events/create".to_owned(),
                Some(json!({"name": "meanwhile", "totalSeats": 10})),
            ),
        ] {
            let asked = Instant::now();
            let request = match &body {
                Some(body) => app.http.post(app.url(&path)).json(body),
                None => app
                    .http
                    .request(method.parse().expect("a method"), app.url(&path)),
            };
            let response = tokio::time::timeout(Duration::from_secs(10), request.send())
                .await
                .unwrap_or_else(|_| panic!("{method} {path} got no answer within 10 s"))
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let took = asked.elapsed();
            assert!(
                response.status().is_success(),
                "{method} {path}: {}",
                response.status()
            );
            latencies.push(took);
            if body.is_some() {
                let event: Value = response.json().await.expect("the created event");
                created.insert(event["id"].as_str().expect("an event id").to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let join = |handles: Vec<JoinHandle<Seen>>| -> Vec<Seen> {
        handles
            .into_iter()
            .map(|h| h.join().expect("a raw client thread"))
            .collect()
    };
    let slow_heads = join(slow_heads);
    let slow_bodies = join(slow_bodies);
    let oversized = join(oversized);
    let chunked = join(chunked);
    let keep_alive_then_slow = join(vec![keep_alive_then_slow]).remove(0);

    latencies.sort();
    let max = *latencies.last().expect("the good client made requests");
    let median = latencies[latencies.len() / 2];
    eprintln!(
        "well-behaved client: {} requests in {:.1} s while 34 hostile connections were open; \
         median {:.1} ms, max {:.1} ms",
        latencies.len(),
        run_for.as_secs_f64(),
        median.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    for (what, seen) in [
        ("slow head", &slow_heads[0]),
        ("slow body", &slow_bodies[0]),
        ("oversized", &oversized[0]),
        ("chunked over the limit", &chunked[0]),
        ("keep-alive, then a slow head", &keep_alive_then_slow),
    ] {
        eprintln!(
            "{what}: status {:?} after {}, closed after {}, {} bytes sent",
            seen.status(),
            secs(seen.answered_after),
            secs(seen.closed_after),
            seen.sent
        );
    }

    assert!(
        latencies.len() >= 30,
        "the good client kept going: {}",
        latencies.len()
    );
    assert!(
        max < Duration::from_secs(2),
        "a hostile client held up a good one: {max:?}"
    );

    // Slow heads: 408 from actix once client_request_timeout passes, then closed. (actix
    // writes that 408 itself, before any handler: its body is empty, not our JSON.)
    for seen in &slow_heads {
        assert_eq!(seen.status(), Some(408), "slow head: {seen:?}");
        let cut = seen.closed_after.expect("a slow head is cut off");
        assert!(
            cut >= head_timeout - Duration::from_millis(500) && cut < head_timeout + 3 * second,
            "a slow head is cut off at client_request_timeout ({head_timeout:?}): {cut:?}"
        );
        assert!(
            seen.sent < create_body.len() + 100,
            "cut before it finished"
        );
    }
    // Slow bodies: our 408 JSON once the body timeout passes, then closed.
    for seen in &slow_bodies {
        assert_eq!(seen.status(), Some(408), "slow body: {seen:?}");
        let body = seen.json_body().expect("a JSON error");
        assert_eq!(body["code"], "request_timeout", "{body}");
        let cut = seen.closed_after.expect("a slow body is cut off");
        assert!(
            cut < api::json::DEFAULT_BODY_TIMEOUT + 3 * second,
            "a slow body is cut off: {cut:?}"
        );
    }
    // Oversized: 413 JSON at once, without reading the body; a declared length over the limit
    // also closes the connection. (A chunked body over the limit gets the same 413, but actix
    // then drains the rest of a chunked body before closing, however long that takes.)
    for seen in oversized.iter().chain(&chunked) {
        assert_eq!(seen.status(), Some(413), "oversized: {seen:?}");
        let body = seen.json_body().expect("a JSON error");
        assert_eq!(body["code"], "payload_too_large", "{body}");
        assert_eq!(body["limit"], limit, "{body}");
        let answered = seen.answered_after.expect("an answer");
        assert!(answered < 2 * second, "413 at once: {answered:?}");
    }
    for seen in &oversized {
        let closed = seen
            .closed_after
            .expect("the connection is closed after a 413");
        assert!(closed < 3 * second, "and promptly: {closed:?}");
    }
    // Keep-alive, then a slow head: the first request is answered at once. (That the slow
    // second head is cut off is `a_slow_head_after_a_keep_alive_request_is_cut_off`.)
    assert_eq!(
        keep_alive_then_slow.status(),
        Some(200),
        "the request before the slow one: {keep_alive_then_slow:?}"
    );
    let answered = keep_alive_then_slow.answered_after.expect("an answer");
    assert!(answered < 2 * second, "answered at once: {answered:?}");

    // Nothing the hostile clients sent was applied: every key is as it was, but for the events
    // the good client created and the workers' own bookkeeping (heartbeats, the housekeeping
    // turn, metrics), which runs on a timer whatever clients do.
    let listed = app.get(&format!("/events/{event}")).await.1;
    assert_eq!(listed["available"], 50, "{listed}");
    let events_after: BTreeSet<String> = redis
        .zrange(keys::EVENTS, 0, -1, None, false, None, false)
        .await
        .expect("ZRANGE");
    let new_events: BTreeSet<String> = events_after.difference(&events_before).cloned().collect();
    assert_eq!(
        new_events, created,
        "the only events added are the good client's"
    );
    let bookkeeping = [
        keys::WORKERS,
        keys::HOUSEKEEPING_LOCK,
        keys::METRICS,
        keys::EVENTS,
    ];
    let keys_after = key_digests(&app.redis).await;
    let touched: Vec<&String> = keys_before
        .keys()
        .chain(keys_after.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|key| keys_before.get(*key) != keys_after.get(*key))
        .filter(|key| !bookkeeping.contains(&key.as_str()))
        .filter(|key| {
            let fresh = !keys_before.contains_key(*key);
            !(fresh && created.iter().any(|e| key.contains(&format!("{{{e}}}"))))
        })
        .collect();
    assert!(
        touched.is_empty(),
        "keys written by hostile clients: {touched:?}"
    );
}

/// actix-http times a connection's first request head only (`client_request_timeout`): once a
/// keep-alive connection has been answered, the next head may trickle in a byte a second for as
/// long as the client likes, holding the connection open. docs/CONTRACT.md §2 promises a 408
/// and a closed connection to any head that does not arrive within the request timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_head_after_a_keep_alive_request_is_cut_off() {
    let app = spawn_app_with(Options::default()).await;
    let head_timeout = Duration::from_millis(app.settings.api.client_request_timeout_ms);
    let give_up = head_timeout + Duration::from_secs(5);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.get("/health").await.0 != 200 {
        assert!(Instant::now() < deadline, "the service became healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let seen = keep_alive_client(port_of(&app), give_up, Arc::new(AtomicBool::new(false)))
        .join()
        .expect("the raw client's thread");

    eprintln!(
        "keep-alive, then a slow head: statuses {:?}, closed after {}",
        seen.statuses(),
        secs(seen.closed_after)
    );
    assert_eq!(
        seen.statuses(),
        [200, 408],
        "the first request answered, the slow one refused"
    );
    let cut = seen.closed_after.expect("the slow head is cut off");
    assert!(
        cut >= head_timeout - Duration::from_millis(500)
            && cut < head_timeout + Duration::from_secs(3),
        "cut off at client_request_timeout ({head_timeout:?}): {cut:?}"
    );
}
