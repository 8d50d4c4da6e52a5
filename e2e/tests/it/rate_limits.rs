//! G10, rate limits (docs/CONTRACT.md §2, admission): a client address, or in jwt mode a user,
//! gets its route class's burst and then its sustained rate, whatever the number of API
//! instances; a refusal is a 429 with `Retry-After`, `RateLimit-Policy` and `RateLimit` that
//! writes nothing but the limiter's own key. Linux routes all of 127/8 to the loopback
//! interface, so each 127.0.0.x source address stands for a client machine of its own.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use crate::helpers::{new_user, seat_of, spawn_app_with, Options, TestApp, TestRedis};

/// A client machine: HTTP requests from source address `ip`.
fn machine(ip: &str) -> reqwest::Client {
    crate::helpers::machine(ip.parse::<IpAddr>().expect("an address"))
}

/// One answer: status, headers, JSON body (Null when there is none).
struct Answered {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answered {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answered {
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answered {
        status,
        headers,
        body,
    }
}

/// POST /seats/hold of `seat` for a fresh user, from `client` to `base`, with `extra` headers.
async fn hold(
    client: &reqwest::Client,
    base: &str,
    seat: String,
    extra: &[(&str, &str)],
) -> Answered {
    let mut request = client
        .post(format!("{base}/seats/hold"))
        .json(&json!({"id": seat, "UUID": new_user()}));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    send(request).await
}

/// The most holds a client may have accepted in a flood that lasted `elapsed`: the burst, plus
/// one per interval of the flood, plus one for an interval that began just before it ended.
fn share(app: &TestApp, elapsed: Duration) -> usize {
    let rate = app.settings.rate_limits.holds;
    rate.burst as usize + (elapsed.as_millis() as u64 / rate.every_ms) as usize + 1
}

/// Every refusal in `answers` is a 429 `rate_limited` with the three headers, and every other
/// answer a 202; returns the job ids of the 202s and the longest `Retry-After`.
fn check_answers(app: &TestApp, answers: &[Answered]) -> (Vec<String>, u64) {
    let rate = app.settings.rate_limits.holds;
    let policy = format!(
        "\"holds\";q={};w={}",
        rate.burst,
        (u64::from(rate.burst) * rate.every_ms).div_ceil(1000)
    );
    let (mut jobs, mut retry_after) = (Vec::new(), 0);
    for a in answers {
        match a.status {
            202 => {
                jobs.push(a.body["jobId"].as_str().expect("a job id").to_owned());
                assert_eq!(
                    a.header("ratelimit-policy"),
                    policy,
                    "a 202 names its policy"
                );
                assert!(
                    a.header("ratelimit").starts_with("\"holds\";r="),
                    "a 202 says what is left: {:?}",
                    a.header("ratelimit")
                );
            }
            429 => {
                assert_eq!(a.body["code"], "rate_limited", "the body: {}", a.body);
                assert!(a.body["error"].is_string(), "a sentence: {}", a.body);
                let secs: u64 = a.header("retry-after").parse().unwrap_or_else(|_| {
                    panic!("Retry-After is seconds: {:?}", a.header("retry-after"))
                });
                assert!(
                    (1..=rate.every_ms.div_ceil(1000) + 1).contains(&secs),
                    "Retry-After {secs} s for a bucket that gains one every {} ms",
                    rate.every_ms
                );
                assert_eq!(
                    a.header("ratelimit-policy"),
                    policy,
                    "a 429 names its policy"
                );
                assert_eq!(
                    a.header("ratelimit"),
                    format!("\"holds\";r=0;t={secs}"),
                    "a 429 says nothing is left until Retry-After"
                );
                retry_after = retry_after.max(secs);
            }
            other => panic!("a hold answered {other}: {}", a.body),
        }
    }
    (jobs, retry_after)
}

/// Waits for each job to finish, with `?wait=` (one read per job, well within the read limit).
async fn wait_all(app: &TestApp, jobs: &[String]) {
    for job in jobs {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = app.get(&format!("/seats/job/{job}/status?wait=5")).await;
            assert_eq!(status, 200, "job {job}: {body}");
            if body["status"] == "completed" || body["status"] == "failed" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} did not finish: {body}"
            );
        }
    }
}

fn limits_on() -> Options {
    Options::default().env("RATE_LIMITS", "on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hoarding_bot_gets_its_share_and_a_person_at_a_human_pace_is_never_refused() {
    // Arrange: the default limits, a 1,000-seat event, a bot at 127.0.0.2, a person at 127.0.0.3.
    let app = spawn_app_with(limits_on()).await;
    let event = app.create_event(1000).await;
    let base = app.address.clone();
    let person = {
        let (base, event) = (base.clone(), event.clone());
        tokio::spawn(async move {
            let me = machine("127.0.0.3");
            let mut answers = Vec::new();
            for n in 0..4 {
                answers.push(hold(&me, &base, seat_of(&event, 901 + n), &[]).await);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            answers
        })
    };

    // Act: 600 holds as fast as one machine sends them, on distinct seats, each for a new user.
    let bot = machine("127.0.0.2");
    let started = Instant::now();
    let answers = join_all((1..=600).map(|n| hold(&bot, &base, seat_of(&event, n), &[]))).await;
    let elapsed = started.elapsed();

    // Assert: at most the documented share accepted, every other answer a 429 with its headers.
    let (mut jobs, retry_after) = check_answers(&app, &answers);
    let burst = app.settings.rate_limits.holds.burst as usize;
    assert!(
        jobs.len() >= burst && jobs.len() <= share(&app, elapsed),
        "the bot had {} of 600 holds accepted in {elapsed:?}; its share is {burst} at once and \
         one every {} ms (at most {})",
        jobs.len(),
        app.settings.rate_limits.holds.every_ms,
        share(&app, elapsed)
    );
    assert!(retry_after >= 1, "the bot was refused with a Retry-After");
    let person = person.await.expect("the person's task");
    let (person_jobs, _) = check_answers(&app, &person);
    assert_eq!(
        person_jobs.len(),
        person.len(),
        "a person holding a seat every 2 s meanwhile is never refused"
    );

    // After Retry-After the bot is served again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let again = hold(&bot, &base, seat_of(&event, 700), &[]).await;
    assert_eq!(
        again.status, 202,
        "after Retry-After the bot is served: {}",
        again.body
    );
    let (again_jobs, _) = check_answers(&app, &[again]);

    // Every accepted hold, and only those, holds a seat.
    jobs.extend(person_jobs);
    jobs.extend(again_jobs);
    wait_all(&app, &jobs).await;
    let counts = app.event(&event).await;
    assert_eq!(
        counts.on_hold as usize,
        jobs.len(),
        "seats on hold = holds accepted (bot, person, the bot again)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_limit_holds_across_two_api_instances() {
    let app = spawn_app_with(limits_on().apis(2)).await;
    let event = app.create_event(1000).await;
    let bases: Vec<String> = app.apis.iter().map(|api| api.base().to_owned()).collect();
    assert_ne!(bases[0], bases[1], "two instances");

    let bot = machine("127.0.0.4");
    let started = Instant::now();
    let answers = join_all((1..=300).map(|n| {
        let base = &bases[n as usize % 2];
        let bot = &bot;
        let seat = seat_of(&event, n);
        async move { hold(bot, base, seat, &[]).await }
    }))
    .await;
    let elapsed = started.elapsed();

    let (jobs, _) = check_answers(&app, &answers);
    assert!(
        jobs.len() <= share(&app, elapsed),
        "through two instances the address had {} holds accepted in {elapsed:?}; one share is \
         at most {} (two separate limits would have let ~{} through)",
        jobs.len(),
        share(&app, elapsed),
        2 * app.settings.rate_limits.holds.burst
    );
    for base in &bases {
        let through: Vec<&Answered> = answers
            .iter()
            .enumerate()
            .filter(|(i, _)| &bases[(i + 1) % 2] == base)
            .map(|(_, a)| a)
            .collect();
        assert!(
            through.iter().any(|a| a.status == 429),
            "the instance at {base} refuses too"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_jwt_mode_one_user_over_several_addresses_is_limited_as_one() {
    const SECRET: &str = "rate-limit-test-secret-of-at-least-32-bytes";
    let app = spawn_app_with(
        limits_on()
            .env("AUTH_MODE", "jwt")
            .env("AUTH_JWT_SECRET", SECRET),
    )
    .await;
    let admin = api::identity::mint(
        &app.settings.auth,
        &api::identity::MintRequest {
            sub: "organiser".into(),
            admin: true,
            ttl: Duration::from_secs(600),
            private_key: None,
        },
    )
    .expect("an admin token");
    let created = send(
        machine("127.0.0.1")
            .post(app.url("/events/create"))
            .bearer_auth(&admin)
            .json(&json!({"name": "jwt flood", "totalSeats": 1000})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let event = created.body["id"].as_str().expect("an id").to_owned();
    let user = api::identity::mint(
        &app.settings.auth,
        &api::identity::MintRequest {
            sub: "one-bot".into(),
            admin: false,
            ttl: Duration::from_secs(600),
            private_key: None,
        },
    )
    .expect("a user token");
    let bearer = format!("Bearer {user}");

    // Five machines, 20 holds each: each address alone stays within its burst.
    let machines: Vec<reqwest::Client> =
        (5..10).map(|i| machine(&format!("127.0.0.{i}"))).collect();
    let started = Instant::now();
    let answers = join_all((1..=100u32).map(|n| {
        let client = &machines[n as usize % machines.len()];
        let (base, seat, bearer) = (&app.address, seat_of(&event, n), &bearer);
        async move {
            send(
                client
                    .post(format!("{base}/seats/hold"))
                    .header("Authorization", bearer.as_str())
                    .json(&json!({"id": seat})),
            )
            .await
        }
    }))
    .await;
    let elapsed = started.elapsed();

    let (jobs, _) = check_answers(&app, &answers);
    assert!(
        jobs.len() <= share(&app, elapsed),
        "one user over five addresses had {} holds accepted in {elapsed:?}; a user's share is \
         at most {}",
        jobs.len(),
        share(&app, elapsed)
    );
    // Another user on those very addresses still has room on each of them.
    let other = api::identity::mint(
        &app.settings.auth,
        &api::identity::MintRequest {
            sub: "someone-else".into(),
            admin: false,
            ttl: Duration::from_secs(600),
            private_key: None,
        },
    )
    .expect("a user token");
    let fresh = send(
        machines[0]
            .post(app.url("/seats/hold"))
            .bearer_auth(&other)
            .json(&json!({"id": seat_of(&event, 999)})),
    )
    .await;
    assert_eq!(
        fresh.status, 202,
        "another user from 127.0.0.5: {}",
        fresh.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client_and_otherwise_ignored() {
    let app = spawn_app_with(limits_on().env("TRUSTED_PROXIES", "127.0.0.10/32")).await;
    let event = app.create_event(1000).await;
    let base = app.address.clone();
    let burst = app.settings.rate_limits.holds.burst;
    let proxy = machine("127.0.0.10");
    let stranger = machine("127.0.0.11");

    // Through the trusted proxy: a client at 203.0.113.7 uses its burst up...
    let mut seats = 0;
    let mut flood = |_: &str| {
        seats += 1;
        seats
    };
    let mut refused = false;
    for _ in 0..burst + 5 {
        let seat = seat_of(&event, flood(""));
        let a = hold(
            &proxy,
            &base,
            seat,
            &[("X-Forwarded-For", "6.6.6.6, 203.0.113.7")],
        )
        .await;
        refused |= a.status == 429;
    }
    assert!(refused, "the forwarded client 203.0.113.7 is limited");
    // ...while another client behind the same proxy is served, by either header.
    let seat = seat_of(&event, flood(""));
    let other = hold(&proxy, &base, seat, &[("X-Forwarded-For", "203.0.113.8")]).await;
    assert_eq!(
        other.status, 202,
        "203.0.113.8 has a bucket of its own: {}",
        other.body
    );
    let seat = seat_of(&event, flood(""));
    let other = hold(
        &proxy,
        &base,
        seat,
        &[("Forwarded", "for=\"[2001:db8::9]:443\"")],
    )
    .await;
    assert_eq!(
        other.status, 202,
        "2001:db8::9 has a bucket of its own: {}",
        other.body
    );
    let keys = app.redis.keys("rsv:rl:*").await;
    for key in [
        "rsv:rl:{a:203.0.113.7}:holds",
        "rsv:rl:{a:203.0.113.8}:holds",
        "rsv:rl:{a:2001:db8::/64}:holds",
    ] {
        assert!(keys.contains(&key.to_owned()), "{key} among {keys:?}");
    }
    assert!(
        !keys
            .iter()
            .any(|k| k.contains("127.0.0.10") || k.contains("6.6.6.6")),
        "neither the proxy nor the spoofed left-most entry is a client: {keys:?}"
    );

    // From an untrusted peer the headers are ignored: every forwarded name shares its bucket.
    let mut refused_at = None;
    for i in 0..burst + 5 {
        let forwarded = format!("198.51.100.{i}");
        let seat = seat_of(&event, flood(""));
        let a = hold(
            &stranger,
            &base,
            seat,
            &[("X-Forwarded-For", forwarded.as_str())],
        )
        .await;
        if a.status == 429 {
            refused_at.get_or_insert(i);
        }
    }
    assert!(
        refused_at.is_some_and(|i| i >= burst - 1),
        "127.0.0.11 is limited as itself whatever it forwards (first refusal at {refused_at:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_rate_limits_off_the_same_flood_gets_no_429() {
    let app = spawn_app_with(Options::default().env("RATE_LIMITS", "off")).await;
    let event = app.create_event(1000).await;
    let bot = machine("127.0.0.12");
    let answers =
        join_all((1..=600).map(|n| hold(&bot, &app.address, seat_of(&event, n), &[]))).await;
    let statuses: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.status).or_default() += 1;
        m
    });
    assert_eq!(
        statuses,
        BTreeMap::from([(202, 600)]),
        "every hold accepted"
    );
    let keys = app.redis.keys("rsv:rl:*").await;
    assert!(keys.is_empty(), "no limiter key is written: {keys:?}");
}

/// Every key but the limiter's, with its digest.
async fn digests_but_the_limiters(redis: &TestRedis) -> BTreeMap<String, String> {
    crate::hostile::key_digests(redis)
        .await
        .into_iter()
        .filter(|(key, _)| !key.starts_with("rsv:rl:"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_request_writes_nothing_but_the_limiters_key() {
    // No worker, and a bucket that does not refill within the test: nothing else writes while
    // the refusals come in, and every request past the burst is refused.
    let app = spawn_app_with(
        limits_on()
            .workers(0)
            .tweak(|s| s.rate_limits.holds.every_ms = 600_000),
    )
    .await;
    let event = app.create_event(1000).await;
    let bot = machine("127.0.0.13");
    let burst = app.settings.rate_limits.holds.burst;
    for n in 1..=burst {
        let a = hold(&bot, &app.address, seat_of(&event, n), &[]).await;
        assert_eq!(a.status, 202, "within the burst: {}", a.body);
    }
    let before = digests_but_the_limiters(&app.redis).await;
    let limiter_before = crate::hostile::key_digests(&app.redis).await;

    let answers = join_all(
        (burst + 1..=burst + 50).map(|n| hold(&bot, &app.address, seat_of(&event, n), &[])),
    )
    .await;

    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(
        statuses.iter().all(|s| *s == 429),
        "every one refused: {statuses:?}"
    );
    assert_eq!(
        digests_but_the_limiters(&app.redis).await,
        before,
        "the refusals wrote nothing"
    );
    assert_eq!(
        crate::hostile::key_digests(&app.redis).await,
        limiter_before,
        "not even the limiter's key: GCRA does not charge a refused request, so a flood of \
         refusals never pushes the client's next admission further out"
    );
}
