//! Job ids no one can guess (docs/CONTRACT.md §2, G9): `<event id>:j<seq>.<tag>`, the tag 128
//! bits of an HMAC under a key only the service has. Ids are made through the real API; a tag
//! that is wrong, missing or another job's answers exactly as an unknown job does.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fred::interfaces::KeysInterface;
use futures::stream::{self, StreamExt};
use loadgen::api::Api;
use serde_json::{json, Value};

use crate::helpers::{new_user, seat_of, spawn_app, spawn_app_with, Options, TestApp};

/// Requests in flight at once in the bulk checks.
const IN_FLIGHT: usize = 64;

/// A job id as the API hands it out, taken apart.
#[derive(Debug, Clone)]
struct Issued {
    id: String,
    event: String,
    seq: u64,
    tag: String,
}

impl Issued {
    /// Panics unless `id` is `<event>:j<seq>.<32 lowercase hex digits>`.
    fn parse(id: &str) -> Self {
        let (job, tag) = id
            .split_once('.')
            .unwrap_or_else(|| panic!("a tag in {id}"));
        let (event, seq) = job
            .rsplit_once(":j")
            .unwrap_or_else(|| panic!(":j in {id}"));
        assert!(
            tag.len() == 32 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "the tag of {id} is 32 lowercase hex digits"
        );
        assert_eq!(event.len(), 36, "an event id before :j in {id}");
        Self {
            id: id.to_owned(),
            event: event.to_owned(),
            seq: seq
                .parse()
                .unwrap_or_else(|e| panic!("a number after :j in {id}: {e}")),
            tag: tag.to_owned(),
        }
    }

    /// The same job with another tag, or another job with this one's tag.
    fn with(&self, seq: u64, tag: &str) -> String {
        format!("{}:j{seq}.{tag}", self.event)
    }

    fn bits(&self) -> [bool; 128] {
        let mut bits = [false; 128];
        for (i, bit) in bits.iter_mut().enumerate() {
            let digit = u8::from_str_radix(&self.tag[i / 4..i / 4 + 1], 16).expect("a hex digit");
            *bit = digit & (8 >> (i % 4)) != 0;
        }
        bits
    }
}

/// Holds `count` seats through the API instance of `api`, spread over `events` and their first
/// 10 seats (with no worker running every hold is accepted); returns the ids of the 202s, each
/// checked against its `statusEndpoint` and `Location`.
async fn issue(app: &TestApp, api: &Api, events: &[String], count: usize) -> Vec<Issued> {
    stream::iter(0..count)
        .map(|i| async move {
            let event = &events[i % events.len()];
            let seat = seat_of(event, 1 + (i / events.len()) as u32 % 10);
            let response = app
                .http
                .post(format!("{}/seats/hold", api.base()))
                .json(&json!({"id": seat, "UUID": new_user()}))
                .send()
                .await
                .expect("the API answers");
            let status = response.status().as_u16();
            let location = response.headers().get("location").cloned();
            let body: Value = response.json().await.expect("a JSON body");
            assert_eq!(status, 202, "hold {i}: {body}");
            let id = body["jobId"].as_str().expect("a jobId");
            let endpoint = format!("/seats/job/{id}/status");
            assert_eq!(
                body["statusEndpoint"],
                endpoint.as_str(),
                "statusEndpoint of {id}"
            );
            assert_eq!(
                location.as_ref().and_then(|l| l.to_str().ok()),
                Some(endpoint.as_str()),
                "Location of {id}"
            );
            Issued::parse(id)
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

/// `GET /seats/job/{id}/status` on `base`: the status and the body.
async fn status_of(app: &TestApp, base: &str, id: &str) -> (u16, Value) {
    let response = app
        .http
        .get(format!("{base}/seats/job/{id}/status"))
        .send()
        .await
        .expect("the API answers");
    let status = response.status().as_u16();
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// Asserts that every id of `ids` answers 404 `job_not_found` on `base`, as an unknown job does.
async fn assert_unknown(app: &TestApp, base: &str, ids: Vec<String>, what: &str) {
    let n = ids.len();
    stream::iter(ids)
        .map(|id| async move {
            let (status, body) = status_of(app, base, &id).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (404, Some("job_not_found")),
                "{what}: {id} must be unknown: {body}"
            );
            let mut keys: Vec<&String> = body.as_object().expect("an object").keys().collect();
            keys.sort();
            assert_eq!(keys, ["code", "error"], "{what}: {id}: the body of any 404");
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    println!("{what}: {n} ids, each 404 job_not_found");
}

/// Asserts that every id of `ids` answers 200 with itself as `jobId` on `base`.
async fn assert_known(app: &TestApp, base: &str, ids: &[String], what: &str) {
    stream::iter(ids)
        .map(|id| async move {
            let (status, body) = status_of(app, base, id).await;
            assert_eq!(status, 200, "{what}: {id} is a job: {body}");
            assert_eq!(body["jobId"], id.as_str(), "{what}: the jobId of {id}");
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_job_ids_carry_distinct_uniform_tags_that_verify_only_for_their_own_job() {
    // No worker: every hold stays queued, so 10,000 of them fit on four events of 10 seats.
    let app = spawn_app_with(Options::default().workers(0)).await;
    let mut events = Vec::new();
    for _ in 0..4 {
        events.push(app.create_event(10).await);
    }
    let started = Instant::now();
    let mut issued = issue(&app, app.api(), &events, 10_000).await;
    issued.sort_by(|a, b| (&a.event, a.seq).cmp(&(&b.event, b.seq)));
    println!("10,000 holds accepted in {:?}", started.elapsed());

    // Each event numbered its jobs 1, 2, 3... as before: the order stays in the id.
    for event in &events {
        let seqs: Vec<u64> = issued
            .iter()
            .filter(|j| &j.event == event)
            .map(|j| j.seq)
            .collect();
        assert_eq!(
            seqs,
            (1..=2500).collect::<Vec<u64>>(),
            "the jobs of {event}"
        );
    }
    let tags: HashSet<&str> = issued.iter().map(|j| j.tag.as_str()).collect();
    assert_eq!(
        tags.len(),
        issued.len(),
        "every tag differs from every other"
    );

    // A constant, a counter or anything short of a keyed hash shows here: each of the 128 bits
    // is set in about half the tags (10,000 tags: 50% ± 0.5% is one standard deviation), and
    // the tags of jobs next to each other differ in about half their bits (64 ± 5.7 for one
    // pair, ± 0.06 over 10,000).
    let mut set = [0u32; 128];
    for job in &issued {
        for (count, bit) in set.iter_mut().zip(job.bits()) {
            *count += u32::from(bit);
        }
    }
    for (i, count) in set.iter().enumerate() {
        assert!(
            (4500..=5500).contains(count),
            "bit {i} is set in {count} of 10,000 tags, not 45-55%"
        );
    }
    let distances: Vec<u32> = issued
        .windows(2)
        .filter(|w| w[0].event == w[1].event)
        .map(|w| {
            let (a, b) = (w[0].bits(), w[1].bits());
            a.iter().zip(b).filter(|(x, y)| **x != *y).count() as u32
        })
        .collect();
    let mean = f64::from(distances.iter().sum::<u32>()) / distances.len() as f64;
    assert!(
        (60.0..=68.0).contains(&mean),
        "the tags of consecutive jobs differ in {mean:.2} of 128 bits on average, not about 64"
    );

    // Each id answers as itself; its neighbours with its tag, and it with another's tag, do not.
    let started = Instant::now();
    let ids: Vec<String> = issued.iter().map(|j| j.id.clone()).collect();
    assert_known(&app, &app.address, &ids, "as issued").await;
    let next_seq: Vec<String> = issued.iter().map(|j| j.with(j.seq + 1, &j.tag)).collect();
    assert_unknown(&app, &app.address, next_seq, "seq + 1 with the tag of seq").await;
    let prev_seq: Vec<String> = issued
        .iter()
        .filter(|j| j.seq > 1)
        .map(|j| j.with(j.seq - 1, &j.tag))
        .collect();
    assert_unknown(&app, &app.address, prev_seq, "seq - 1 with the tag of seq").await;
    let swapped: Vec<String> = issued
        .iter()
        .zip(issued.iter().cycle().skip(1))
        .map(|(j, other)| j.with(j.seq, &other.tag))
        .collect();
    assert_unknown(&app, &app.address, swapped, "a job with the next job's tag").await;
    println!("40,000 status reads in {:?}", started.elapsed());
}

#[tokio::test]
async fn ids_of_the_old_shape_or_with_a_broken_tag_are_unknown_and_only_malformed_ones_are_422() {
    let mut app = spawn_app().await;
    let event = app.create_event(10).await;
    let mut jobs = Vec::new();
    for n in 1..=5 {
        let done = app.hold_and_wait(&seat_of(&event, n), &new_user()).await;
        jobs.push(Issued::parse(&done.job_id));
    }
    // One more that stays waiting.
    app.stop_workers().await;
    let posted = app.hold(&seat_of(&event, 6), &new_user()).await;
    jobs.push(Issued::parse(posted.job_id().expect("a job id")));

    // Real jobs, finished and waiting, under the ids they used to have and under broken tags.
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    assert_known(&app, &app.address, &ids, "as issued").await;
    let mut broken = Vec::new();
    for j in &jobs {
        let old =
            j.id.split_once('.')
                .map(|(old, _)| old.to_owned())
                .expect("a tag");
        broken.extend([
            old.clone(),
            format!("{old}."),
            format!("{old}.{}", &j.tag[..16]),
            format!("{old}.{}0", j.tag),
            format!("{old}.{}", "0".repeat(32)),
            format!(
                "{old}.{}{}",
                &j.tag[..31],
                if j.tag.ends_with('0') { '1' } else { '0' }
            ),
            format!("{old}.not-a-tag"),
        ]);
    }
    assert_unknown(&app, &app.address, broken, "old shape or broken tag").await;

    // `?wait=` does not make a wrong tag wait: unknown at once.
    let old = jobs[5]
        .id
        .split_once('.')
        .map(|(old, _)| old.to_owned())
        .expect("a tag");
    let started = Instant::now();
    let (status, body) = app.get(&format!("/seats/job/{old}/status?wait=5")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("job_not_found")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "at once, not after the wait"
    );

    for bad in [
        "nope".to_owned(),
        format!("{event}:j0.{}", jobs[0].tag),
        format!("{event}:j01.{}", jobs[0].tag),
        format!("{event}:1.{}", jobs[0].tag),
        format!("{event}.{}", jobs[0].tag),
    ] {
        let (status, body) = app.job_json(&bad).await;
        assert_eq!(
            (status, body["code"].as_str(), body["field"].as_str()),
            (422, Some("invalid_field"), Some("jobId")),
            "{bad} is malformed: {body}"
        );
    }
}

#[tokio::test]
async fn api_instances_on_one_redis_share_its_key_and_a_configured_secret_replaces_it() {
    let mut app = spawn_app_with(Options::default().workers(0).apis(2)).await;
    let event = app.create_event(10).await;
    let redis = app.redis.client().await;
    let stored: String = redis
        .get(queue_core::keys::JOB_ID_KEY)
        .await
        .expect("the key is in Redis");
    assert_eq!(stored.len(), 64, "32 random bytes in hex");

    // Ids issued by either instance are known to both.
    let (first, second) = (app.apis[0].clone(), app.apis[1].clone());
    let events = std::slice::from_ref(&event);
    let ids = |issued: Vec<Issued>| issued.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let mut from_first = ids(issue(&app, &first, events, 20).await);
    let from_second = ids(issue(&app, &second, events, 20).await);
    assert_known(
        &app,
        second.base(),
        &from_first,
        "issued by the first, read on the second",
    )
    .await;
    assert_known(
        &app,
        first.base(),
        &from_second,
        "issued by the second, read on the first",
    )
    .await;

    // An instance with a secret of its own knows none of them, and they know none of its ids.
    let secret_a = "a".repeat(32) + "-secret-of-instance-a";
    let secret_b = "b".repeat(32) + "-secret-of-instance-b";
    let (a, b) = (secret_a.clone(), secret_b.clone());
    let with_a = app.start_api(move |s| s.api.job_id_secret = a).await;
    let with_a_too = {
        let a = secret_a.clone();
        app.start_api(move |s| s.api.job_id_secret = a).await
    };
    let with_b = app.start_api(move |s| s.api.job_id_secret = b).await;
    assert_unknown(
        &app,
        with_a.base(),
        from_first.clone(),
        "the Redis key's ids on secret A",
    )
    .await;
    let from_a = ids(issue(&app, &with_a, events, 20).await);
    assert_known(
        &app,
        with_a_too.base(),
        &from_a,
        "secret A's ids on another instance with A",
    )
    .await;
    assert_unknown(
        &app,
        with_b.base(),
        from_a.clone(),
        "secret A's ids on secret B",
    )
    .await;
    assert_unknown(
        &app,
        first.base(),
        from_a.clone(),
        "secret A's ids on the Redis key",
    )
    .await;
    let after: String = redis.get(queue_core::keys::JOB_ID_KEY).await.expect("GET");
    assert_eq!(
        after, stored,
        "a configured secret leaves the Redis key alone"
    );

    // Neither key shows in an answer or a log line.
    from_first.extend(from_a);
    let mut seen = String::new();
    for path in ["/metrics", "/health", "/api-docs/openapi.json", "/events"] {
        let text = app.http.get(app.url(path)).send().await.expect("answers");
        seen.push_str(&text.text().await.expect("a body"));
    }
    for id in &from_first {
        seen.push_str(&status_of(&app, &app.address, id).await.1.to_string());
    }
    for entry in std::fs::read_dir(app.log_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        seen.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    for secret in [&stored, &secret_a, &secret_b] {
        assert!(
            !seen.contains(secret.as_str()),
            "a key showed in an answer or a log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_processes_starting_together_agree_on_one_key() {
    let app = spawn_app_with(Options::default().workers(0)).await;
    let redis = app.redis.client().await;
    let _: i64 = redis.del(queue_core::keys::JOB_ID_KEY).await.expect("DEL");

    // Sixteen processes' worth of key loading at once, on a Redis without a key: each offers a
    // key of its own; one write wins and every one reads that back.
    let loads = (0..16).map(|_| {
        let settings = app.settings.clone();
        tokio::spawn(async move {
            let store = queue_core::Store::connect(&settings)
                .await
                .expect("a store");
            let key = api::job_ids::JobIdKey::new(&settings.api).expect("a key");
            key.get(&store).await.expect("the key").clone()
        })
    });
    let loaded: Vec<_> = futures::future::join_all(loads)
        .await
        .into_iter()
        .map(|joined| joined.expect("a load"))
        .collect();
    let job = queue_core::JobId::new(queue_core::EventId::new_random(), 1).expect("job 1");
    let tags: HashSet<String> = loaded.iter().map(|ids| ids.public(job)).collect();
    assert_eq!(tags.len(), 1, "one key for all: {tags:?}");
    let stored: String = redis.get(queue_core::keys::JOB_ID_KEY).await.expect("GET");
    let expected = api::job_ids::JobIds::new(stored.as_bytes()).expect("a key");
    assert!(
        tags.contains(&expected.public(job)),
        "the key they agree on is the one in Redis"
    );
}
