//! Every endpoint of docs/CONTRACT.md §2: its success path and its error paths, with their shapes.

use std::time::Duration;

use serde_json::json;

use fred::interfaces::{ClientLike, HashesInterface};
use loadgen::api::SeatStatus;

use crate::helpers::{
    job_seq, keys_of, new_user, rfc3339_ms, seat_of, spawn_app, spawn_app_with, Options, RedisKind,
};

#[tokio::test]
async fn create_and_read_an_event() {
    let app = spawn_app().await;

    let (status, body) = app
        .post(
            "/events/create",
            json!({"name": "Opening night", "totalSeats": 12}),
        )
        .await;

    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "Opening night");
    assert_eq!(body["totalSeats"], 12);
    let id = body["id"].as_str().expect("an id");
    let (status, event) = app.get(&format!("/events/{id}")).await;
    assert_eq!(status, 200, "event {id}: {event}");
    assert_eq!(
        event,
        json!({"id": id, "name": "Opening night", "totalSeats": 12, "available": 12, "onHold": 0, "reserved": 0})
    );
    let seats = app.available(id).await;
    assert_eq!(
        seats.len(),
        12,
        "every seat exists and is Available once the 201 is sent"
    );
    assert_eq!(seats[0], seat_of(id, 1));
    assert_eq!(seats[11], seat_of(id, 12));
}

#[tokio::test]
async fn unknown_and_malformed_ids_get_404_and_422() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::new_v4().to_string();

    for path in [
        format!("/events/{unknown}"),
        format!("/seats/list/{unknown}"),
        format!("/seats/get/{unknown}:1"),
        format!("/seats/job/{unknown}:j1/status"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["error"].is_string() && body["code"].is_string(),
            "{path}: {body}"
        );
    }
    let event = app.create_event(10).await;
    let (status, body) = app.get(&format!("/seats/get/{event}:11")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("seat_not_found")),
        "seat 11 of 10"
    );

    for (path, field) in [
        ("/events/nope".to_owned(), "id"),
        ("/seats/list/nope".to_owned(), "eventId"),
        ("/seats/get/nope".to_owned(), "id"),
        (format!("/seats/get/{event}:0"), "id"),
        ("/seats/job/nope/status".to_owned(), "jobId"),
        (format!("/seats/job/{event}:j0/status"), "jobId"),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
}

#[tokio::test]
async fn hold_poll_refresh_reserve_walkthrough() {
    let app = spawn_app().await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 3);
    let user = new_user();

    // Hold: 202 with a job to poll, a Location header and a position.
    let response = app
        .http
        .post(app.url("/seats/hold"))
        .json(&json!({"id": seat, "UUID": user}))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status().as_u16(), 202);
    let location = response.headers()["location"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let accepted: serde_json::Value = response.json().await.expect("JSON");
    let job = accepted["jobId"].as_str().expect("a job id").to_owned();
    assert_eq!(location, format!("/seats/job/{job}/status"));
    assert_eq!(accepted["statusEndpoint"], location);
    assert_eq!(accepted["position"], 0, "nothing was ahead of it");
    assert!(
        accepted["estimatedWaitTime"]
            .as_f64()
            .is_some_and(|s| s > 0.0),
        "{accepted}"
    );
    assert!(accepted["message"].is_string());

    app.wait_job(&job, Duration::from_secs(5)).await;
    let (status, done) = app.job_json(&job).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["type"], "HOLD_SEAT");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["success"], true);
    assert_eq!(done["result"]["status"], 200);
    assert_eq!(done["result"]["seat"]["status"], "On hold");
    assert_eq!(done["result"]["seat"]["UUID"], user);
    assert!(done["createdAt"].as_i64() <= done["completedAt"].as_i64());
    let expires = rfc3339_ms(
        done["result"]["seat"]["expiresAt"]
            .as_str()
            .expect("expiresAt"),
    );

    let held = app.seat(&seat).await;
    assert_eq!(held.status, SeatStatus::OnHold);
    assert_eq!(held.event_id, event);
    assert!(
        !app.available(&event).await.contains(&seat),
        "a held seat is not listed"
    );
    assert_eq!(app.event(&event).await.on_hold, 1);

    // Both refresh paths answer 200 with the seat and its new expiry.
    for path in ["/seats/refresh", "/seats/hold/refresh"] {
        let (status, body) = app.post(path, json!({"id": seat, "UUID": user})).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body["message"].is_string());
        let new_expiry = rfc3339_ms(body["seat"]["expiresAt"].as_str().expect("expiresAt"));
        assert!(
            new_expiry >= expires,
            "{path} does not move the expiry back"
        );
    }

    // Reserve: pre-checks, then a job.
    let refused = app.reserve(&seat, &new_user()).await;
    assert_eq!(
        (refused.status(), refused.code()),
        (403, Some("held_by_another_user")),
        "{refused}"
    );
    let refused = app.reserve(&seat_of(&event, 4), &user).await;
    assert_eq!(
        refused.status(),
        409,
        "an Available seat cannot be reserved: {refused}"
    );
    assert_eq!(refused.current_status(), Some(SeatStatus::Available));
    let posted = app.reserve(&seat, &user).await;
    assert_eq!(posted.status(), 202, "{posted}");
    let job = posted.job_id().expect("a job id");
    app.wait_job(job, Duration::from_secs(5)).await;
    let (status, reserved) = app.job_json(job).await;
    assert_eq!(status, 200, "{reserved}");
    assert_eq!(reserved["type"], "RESERVE_SEAT");
    assert_eq!(reserved["result"]["success"], true);
    assert_eq!(reserved["result"]["seat"]["status"], "Reserved");
    assert!(
        reserved["result"]["seat"].get("expiresAt").is_none(),
        "only holds expire"
    );

    // A Reserved seat can be neither held, refreshed, released nor reserved again.
    let refused = app.hold(&seat, &new_user()).await;
    assert_eq!(
        (refused.status(), refused.current_status()),
        (409, Some(SeatStatus::Reserved)),
        "{refused}"
    );
    for path in ["/seats/refresh", "/seats/release", "/seats/reserve"] {
        let (status, body) = app.post(path, json!({"id": seat, "UUID": user})).await;
        assert_eq!(status, 409, "{path} of a Reserved seat: {body}");
        assert_eq!(body["currentStatus"], "Reserved", "{path}");
    }
    let counts = app.event(&event).await;
    assert_eq!(
        (counts.available, counts.on_hold, counts.reserved),
        (9, 0, 1)
    );
}

#[tokio::test]
async fn release_gives_a_hold_back() {
    let app = spawn_app().await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 1);
    let user = new_user();
    assert!(app.hold_and_wait(&seat, &user).await.succeeded());

    let (status, body) = app
        .post("/seats/release", json!({"id": seat, "UUID": new_user()}))
        .await;
    assert_eq!(status, 403, "only the holder releases: {body}");
    let (status, body) = app
        .post("/seats/release", json!({"id": seat, "UUID": user}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["seat"]["status"], "Available");
    assert_eq!(body["seat"]["UUID"], "");

    assert_eq!(app.seat(&seat).await.status, SeatStatus::Available);
    let (status, body) = app
        .post("/seats/release", json!({"id": seat, "UUID": user}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("seat_not_on_hold")),
        "{body}"
    );
    let (status, _) = app
        .post("/seats/refresh", json!({"id": seat, "UUID": user}))
        .await;
    assert_eq!(status, 409, "a released hold cannot be refreshed");
    let (status, body) = app
        .post(
            "/seats/release",
            json!({"id": format!("{event}:11"), "UUID": user}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // The released seat can be held again, by anyone.
    assert!(app.hold_and_wait(&seat, &new_user()).await.succeeded());
}

#[tokio::test]
async fn hold_pre_checks_refuse_at_once() {
    let app = spawn_app().await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 2);
    app.hold_and_wait(&seat, &new_user()).await;

    let refused = app.hold(&seat, &new_user()).await;
    assert_eq!(refused.status(), 409, "{refused}");
    assert_eq!(refused.code(), Some("seat_not_available"));
    assert_eq!(refused.current_status(), Some(SeatStatus::OnHold));
    let refused = app.hold(&seat_of(&event, 11), &new_user()).await;
    assert_eq!(
        (refused.status(), refused.code()),
        (404, Some("seat_not_found")),
        "{refused}"
    );
    let unknown_event = uuid::Uuid::new_v4();
    let refused = app.hold(&format!("{unknown_event}:1"), &new_user()).await;
    assert_eq!(refused.status(), 404, "a seat of an unknown event");
}

#[tokio::test]
async fn waiting_jobs_report_their_position() {
    // No worker: jobs stay waiting, in acceptance order.
    let app = spawn_app_with(Options::default().workers(0)).await;
    let event = app.create_event(10).await;
    let mut jobs = Vec::new();
    for n in 1..=3 {
        let posted = app.hold(&seat_of(&event, n), &new_user()).await;
        assert_eq!(posted.status(), 202, "{posted}");
        assert_eq!(
            posted.body().map(|q| q.position),
            Some(u64::from(n - 1)),
            "{posted}"
        );
        jobs.push(posted.job_id().expect("a job id").to_owned());
    }
    assert!(
        jobs.windows(2).all(|w| job_seq(&w[0]) < job_seq(&w[1])),
        "ids follow acceptance"
    );

    let (status, body) = app.job_json(&jobs[2]).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "waiting");
    assert_eq!(body["position"], 2);
    assert_eq!(body["type"], "HOLD_SEAT");
    assert!(body["createdAt"].as_i64().is_some_and(|t| t > 0), "{body}");
    assert!(body.get("result").is_none() && body.get("completedAt").is_none());
}

#[tokio::test]
async fn health_reports_redis_and_workers() {
    // It kills the one redis-server.
    let mut app = spawn_app_with(Options::default().workers(0).redis(RedisKind::Single)).await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, 503, "no worker is alive: {body}");
    assert_eq!(body["redis"], "up");
    assert_eq!(body["liveWorkers"], 0);
    assert!(
        body["problems"][0]
            .as_str()
            .is_some_and(|p| p.contains("workers")),
        "{body}"
    );

    app.start_worker().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = app.get("/health").await;
        if status == 200 {
            assert_eq!(body["status"], "ok");
            assert_eq!(body["liveWorkers"], 1);
            assert_eq!(body["queueDepth"], 0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the worker's heartbeat never showed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    app.redis.kill();
    let response = app
        .http
        .get(app.url("/health"))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["redis"], "down", "{body}");
    let (status, body) = app
        .get("/events/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("service_unavailable")),
        "{body}"
    );
}

#[tokio::test]
async fn the_openapi_document_and_swagger_ui_are_served() {
    let app = spawn_app_with(Options::default().workers(0)).await;

    let (status, served) = app.get("/api-docs/openapi.json").await;
    assert_eq!(status, 200);
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json"))
            .expect("docs/openapi.json is committed"),
    )
    .expect("JSON");
    assert_eq!(
        served, committed,
        "the served document is the committed one"
    );
    let paths = served["paths"].as_object().expect("paths");
    for path in [
        "/events/create",
        "/events/{id}",
        "/seats/list/{eventId}",
        "/seats/get/{id}",
        "/seats/hold",
        "/seats/reserve",
        "/seats/refresh",
        "/seats/hold/refresh",
        "/seats/release",
        "/seats/job/{jobId}/status",
        "/health",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let response = no_redirects
        .get(app.url("/swagger-ui"))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status().as_u16(), 301);
    assert_eq!(response.headers()["location"], "/swagger-ui/");
    let page = app
        .http
        .get(app.url("/swagger-ui/"))
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("a page");
    assert!(html.contains("swagger-ui"), "the Swagger UI page: {html}");
    let init = app
        .http
        .get(app.url("/swagger-ui/swagger-initializer.js"))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        init.status().as_u16(),
        200,
        "the vendored assets are served"
    );
    assert!(init
        .text()
        .await
        .expect("a script")
        .contains("/api-docs/openapi.json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_a_job_answers_as_soon_as_it_finishes() {
    let mut app = spawn_app_with(Options::default().workers(0)).await;
    // Until the API has subscribed to the announcements, a wait answers at once.
    crate::helpers::wait_finished_subscribers(&app.redis, 1).await;
    let event = app.create_event(10).await;
    let posted = app.hold(&seat_of(&event, 1), &new_user()).await;
    assert_eq!(posted.status(), 202);
    let job = posted.job_id().expect("a job id").to_owned();

    // With no worker the job stays waiting: the answer comes at the deadline, as it stands.
    let started = std::time::Instant::now();
    let (status, body) = app.get(&format!("/seats/job/{job}/status?wait=1")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("waiting")),
        "{body}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it waited for the deadline"
    );

    // A client waits; a worker then applies the job: the answer follows the completion at once.
    let waiting = {
        let (http, url) = (
            app.http.clone(),
            app.url(&format!("/seats/job/{job}/status?wait=20")),
        );
        tokio::spawn(async move {
            let response = http.get(url).send().await.expect("the API answers");
            let answered_at = std::time::SystemTime::now();
            (
                response.json::<serde_json::Value>().await.expect("JSON"),
                answered_at,
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the request is still waiting");
    app.start_worker().await;
    let (body, answered_at) = waiting.await.expect("the waiting request ends");

    assert_eq!(body["status"], "completed", "{body}");
    let completed = body["completedAt"].as_i64().expect("completedAt");
    let answered = answered_at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64;
    let lag = answered - completed;
    println!("answered {lag} ms after completion");
    // Nothing polls: a missed announcement would show as the 20 s deadline. 1 s leaves room
    // for a machine busy with the rest of the suite.
    assert!(
        lag < 1000,
        "answered {lag} ms after the job completed, not at a poll or the deadline"
    );

    // A finished job answers at once; bad waits are refused.
    let started = std::time::Instant::now();
    let (status, _) = app.get(&format!("/seats/job/{job}/status?wait=30")).await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "no wait for a finished job"
    );
    for bad in ["31", "-1", "soon", "1.5"] {
        let (status, body) = app
            .get(&format!("/seats/job/{job}/status?wait={bad}"))
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (422, Some("wait")),
            "wait={bad}: {body}"
        );
    }
}

#[tokio::test]
async fn a_job_that_just_finished_is_answered_from_what_the_api_heard() {
    // JOB_RESULT_TTL_SECS=2: the API keeps a finished record for at most half of that.
    let app = spawn_app_with(Options::default().env("JOB_RESULT_TTL_SECS", 2)).await;
    // Until the API has subscribed to the announcements, a wait answers at once.
    crate::helpers::wait_finished_subscribers(&app.redis, 1).await;
    let event = app.create_event(10).await;
    let posted = app.hold(&seat_of(&event, 1), &new_user()).await;
    assert_eq!(posted.status(), 202, "{posted}");
    let job = posted.job_id().expect("a job id").to_owned();
    let (status, finished) = app.get(&format!("/seats/job/{job}/status?wait=5")).await;
    if finished["status"] != "completed" {
        panic!("{status} {finished}; {}", app.work_of(&event).await);
    }
    let heard = std::time::Instant::now();

    // The record goes from Redis; the API still answers as Redis did, from what it heard.
    let redis = app.redis.client().await;
    let removed: u64 = redis
        .hdel(&keys_of(&event).results, job_seq(&job).to_string())
        .await
        .expect("HDEL");
    assert_eq!(removed, 1, "the record was in Redis");
    let (status, again) = app.job_json(&job).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, finished, "the same answer, without Redis");
    let (status, waited) = app.get(&format!("/seats/job/{job}/status?wait=5")).await;
    assert_eq!((status, &waited), (200, &finished), "?wait= too");

    // Not for longer than half the retention: then Redis is asked, and has nothing.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(heard.elapsed())).await;
    let (status, gone) = app.job_json(&job).await;
    assert_eq!(
        (status, gone["code"].as_str()),
        (404, Some("job_not_found")),
        "{gone}"
    );
}

/// A `?wait` on `job` of at most `secs`: its status and how long it took.
async fn timed_wait(app: &crate::helpers::TestApp, job: &str, secs: u64) -> (String, Duration) {
    let started = std::time::Instant::now();
    let (status, body) = app
        .get(&format!("/seats/job/{job}/status?wait={secs}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let state = body["status"].as_str().expect("a status").to_owned();
    (state, started.elapsed())
}

/// A 1 s wait on `job` that ends with the job still waiting, and how many times it made Redis
/// run job_status.lua on `event` (SLOWLOG, logging every command from the wait's start).
async fn status_reads_of_a_wait(
    app: &crate::helpers::TestApp,
    redis: &fred::clients::Client,
    job: &str,
    event: &str,
) -> usize {
    crate::helpers::log_every_command(redis).await;
    let (state, _) = timed_wait(app, job, 1).await;
    assert_eq!(state, "waiting", "{job}");
    crate::helpers::job_status_reads(redis, event).await
}

/// A wait on a job accepted by the same API process while it listened to the workers'
/// announcements does not read Redis first (the announcement will come: it follows the job's
/// acceptance), only at its deadline; once the subscription was lost and made again, the jobs
/// accepted before are read first, as any job not known to be heard, until a job is accepted
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_on_a_job_accepted_here_reads_redis_first_only_when_an_announcement_may_be_missed() {
    let mut app = spawn_app_with(Options::default().workers(0).redis(RedisKind::Single)).await;
    let redis = app.redis.client().await;
    crate::helpers::wait_finished_subscribers(&app.redis, 1).await;
    let event = app.create_event(10).await;
    let first = app.hold(&seat_of(&event, 1), &new_user()).await;
    let first = first.job_id().expect("accepted").to_owned();
    // A read without a wait, which loads the status script into Redis.
    let view = app.job_status(&first).await.expect("the job is known");
    assert!(!view.status.is_finished(), "{view}");

    assert_eq!(
        status_reads_of_a_wait(&app, &redis, &first, &event).await,
        1,
        "one read, at the deadline"
    );

    // The API's subscription is cut; fred makes it again. What was published meanwhile is lost.
    let _: () = redis
        .custom(
            fred::cmd!("CLIENT"),
            vec!["KILL".to_owned(), "TYPE".to_owned(), "pubsub".to_owned()],
        )
        .await
        .expect("CLIENT KILL");
    crate::helpers::wait_finished_subscribers(&app.redis, 1).await;
    assert_eq!(
        status_reads_of_a_wait(&app, &redis, &first, &event).await,
        2,
        "read first, then at the deadline"
    );

    // A job accepted now is known to be heard again, and so is the first (a later job).
    let second = app.hold(&seat_of(&event, 2), &new_user()).await;
    let second = second.job_id().expect("accepted").to_owned();
    assert_eq!(
        status_reads_of_a_wait(&app, &redis, &second, &event).await,
        1
    );

    // And the wait ends with the job's completion, heard.
    let waiting = {
        let (http, url) = (
            app.http.clone(),
            app.url(&format!("/seats/job/{second}/status?wait=20")),
        );
        tokio::spawn(async move {
            let response = http.get(url).send().await.expect("the API answers");
            response.json::<serde_json::Value>().await.expect("JSON")
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    crate::helpers::log_every_command(&redis).await;
    app.start_worker().await;
    let body = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered at the completion, not the deadline")
        .expect("the request ends");
    assert_eq!(body["status"], "completed", "{body}");
    assert_eq!(crate::helpers::job_status_reads(&redis, &event).await, 0);
}

/// Once the record of a job heard is forgotten (after a few seconds: here JOB_RESULT_TTL / 2),
/// a wait on it reads Redis at once, though the job was accepted by this process while it
/// listened: it cannot be known to be heard any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_on_a_job_whose_record_this_process_forgot_is_answered_from_redis_at_once() {
    let mut app = spawn_app_with(Options::default().env("JOB_RESULT_TTL_SECS", 8)).await;
    crate::helpers::wait_finished_subscribers(&app.redis, 1).await;
    let (event, other) = (app.create_event(10).await, app.create_event(10).await);
    let held = app.hold_and_wait(&seat_of(&event, 1), &new_user()).await;
    assert!(held.succeeded(), "{held}");
    let job = held.job_id.clone();

    // Records are kept 4 s; they are forgotten as later announcements come.
    tokio::time::sleep(Duration::from_millis(4300)).await;
    // Waited on, so that its announcement, and with it the forgetting, came before the next wait.
    let later = app.hold(&seat_of(&other, 1), &new_user()).await;
    let (state, _) = timed_wait(&app, later.job_id().expect("accepted"), 10).await;
    assert_eq!(state, "completed");
    let (state, took) = timed_wait(&app, &job, 10).await;
    assert_eq!(state, "completed");
    assert!(
        took < Duration::from_secs(5),
        "answered from Redis in {took:?}, not at the deadline"
    );
    app.stop_workers().await;
}
