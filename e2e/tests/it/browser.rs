//! What a person sees: Swagger UI and the seat map at `/`, driven in headless Chromium.
//!
//! Chromium is driven over WebDriver: Debian's `chromedriver` (package `chromium-driver`, built
//! from the same source as `chromium`, so their versions always match) on a free port, and the
//! `fantoccini` client. Each test starts its own chromedriver and browser with a fresh profile,
//! keeps a screenshot under `target/screenshots/` and, when it fails, one of the moment it failed.
//! scripts/test.sh installs both packages; without them these tests fail, saying so.

use std::future::Future;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use loadgen::api::SeatStatus;
use serde_json::{json, Value};

use crate::helpers::{
    free_port, new_user, now_ms, seat_of, spawn_app, spawn_app_with, Options, TestApp,
};

/// The most one test may spend in the browser.
const TEST_BUDGET: Duration = Duration::from_secs(120);
/// The most chromedriver may take to start Chromium.
const BROWSER_START: Duration = Duration::from_secs(60);
/// The most one step may wait for the page.
const STEP: Duration = Duration::from_secs(20);
/// The flags Chromium runs with (a fresh `--user-data-dir` is added per browser).
const CHROMIUM_FLAGS: [&str; 7] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

#[tokio::test]
async fn swagger_ui_lists_every_operation_and_try_it_out_works() {
    let app = spawn_app().await;
    let browser = Browser::start((1400, 1600)).await;
    browser
        .run("swagger-ui", swagger_ui_scenario(&browser, &app))
        .await;
    browser.close().await;
}

async fn swagger_ui_scenario(b: &Browser, app: &TestApp) -> anyhow::Result<()> {
    let (status, doc) = app.get("/api-docs/openapi.json").await;
    ensure!(status == 200, "the OpenAPI document is served: {doc}");

    // Try it out sends requests to the document's `servers`, or to the page's origin when
    // there are none: a server elsewhere would send them away from the running service.
    if let Some(servers) = doc.get("servers").and_then(Value::as_array) {
        for server in servers {
            let url = server["url"].as_str().unwrap_or_default();
            ensure!(
                url.starts_with('/') && !url.starts_with("//"),
                "the document names a server elsewhere ({url}): Try it out would not reach the running service"
            );
        }
    }
    let mut expected = operations(&doc);
    ensure!(
        expected.len() >= 10,
        "the document lists the API: {expected:?}"
    );
    // Every body an operation takes comes with an example, which Try it out fills in.
    for (method, path, op) in operation_objects(&doc) {
        if let Some(body) = op.get("requestBody") {
            ensure!(
                has_example(&doc, body),
                "{method} {path} takes a body without an example: Try it out starts from nothing"
            );
        }
    }

    b.goto(&app.url("/swagger-ui/")).await?;
    let expected_count = expected.len();
    b.wait_js(
        &format!("document.querySelectorAll('.opblock').length >= {expected_count}"),
        "Swagger UI to list the operations",
    )
    .await?;
    let listed = b
        .js(
            "return [...document.querySelectorAll('.opblock')].map(o => [
                o.querySelector('.opblock-summary-method').textContent.trim().toUpperCase(),
                o.querySelector('.opblock-summary-path').dataset.path]);",
        )
        .await?;
    let mut listed: Vec<(String, String)> =
        serde_json::from_value(listed).context("operations as [method, path] pairs")?;
    listed.sort();
    expected.sort();
    ensure!(
        listed == expected,
        "Swagger UI lists exactly the document's operations:\n listed   {listed:?}\n expected {expected:?}"
    );
    let title = b.text(".information-container .title").await?;
    ensure!(
        title.contains("Seat reservation service"),
        "the title shows: {title}"
    );
    b.screenshot("swagger-ui.png").await?;

    // Try it out, as a person would: create an event with the example body...
    let create = Operation::new("post", "/events/create");
    create.open(b).await?;
    let body = b
        .prop(&create.css("textarea.body-param__text"), "value")
        .await?;
    ensure!(
        body.contains("totalSeats"),
        "the example body is filled in: {body}"
    );
    let (status, created, url) = create.execute(b).await?;
    ensure!(status == 201, "POST /events/create answers 201: {created}");
    ensure!(
        url == app.url("/events/create"),
        "the request went to the running service: {url}"
    );
    let created: Value = serde_json::from_str(&created).context("the 201 body is JSON")?;
    let id = created["id"]
        .as_str()
        .context("the new event's id")?
        .to_owned();

    // ...then read it back, typing its id into the path parameter.
    let read = Operation::new("get", "/events/{id}");
    read.open(b).await?;
    let input = b
        .find(&read.css("tr[data-param-name=\"id\"] input"))
        .await?;
    input.clear().await?;
    input.send_keys(&id).await?;
    let (status, event, url) = read.execute(b).await?;
    ensure!(status == 200, "GET /events/{{id}} answers 200: {event}");
    ensure!(
        url == app.url(&format!("/events/{id}")),
        "the id went into the path: {url}"
    );
    let event: Value = serde_json::from_str(&event).context("the 200 body is JSON")?;
    ensure!(
        event["id"] == id.as_str() && event["available"] == event["totalSeats"],
        "the event as created, every seat Available: {event}"
    );
    b.js_void(&format!(
        "document.querySelector('{}').scrollIntoView({{block: 'start'}});",
        read.selector
    ))
    .await?;
    b.screenshot("swagger-ui-try-it-out.png").await?;
    Ok(())
}

/// Every (METHOD, path) of an OpenAPI document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    operation_objects(doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

fn operation_objects(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
            if let Some(op) = item.get(method) {
                ops.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    ops
}

/// Whether a request body carries an example: on its media type or on the schema it refers to.
fn has_example(doc: &Value, body: &Value) -> bool {
    body["content"].as_object().is_some_and(|content| {
        content.values().all(|media| {
            if media.get("example").is_some() || media.get("examples").is_some() {
                return true;
            }
            let schema = &media["schema"];
            let schema = match schema["$ref"].as_str() {
                Some(r) => r
                    .strip_prefix("#/components/schemas/")
                    .map_or(&Value::Null, |name| &doc["components"]["schemas"][name]),
                None => schema,
            };
            schema.get("example").is_some()
        })
    })
}

/// One operation's block in Swagger UI.
struct Operation {
    selector: String,
}

impl Operation {
    fn new(method: &str, path: &str) -> Self {
        Self {
            selector: format!(
                ".opblock.opblock-{method}:has(> .opblock-summary .opblock-summary-path[data-path=\"{path}\"])"
            ),
        }
    }

    fn css(&self, inner: &str) -> String {
        format!("{} {inner}", self.selector)
    }

    /// Expands the block and presses "Try it out".
    async fn open(&self, b: &Browser) -> anyhow::Result<()> {
        b.click(&self.css(".opblock-summary")).await?;
        b.click(&self.css(".try-out__btn")).await?;
        b.wait_css(&self.css(".execute")).await?;
        Ok(())
    }

    /// Presses "Execute"; returns the live response's status, body and the request URL.
    async fn execute(&self, b: &Browser) -> anyhow::Result<(u16, String, String)> {
        b.click(&self.css(".execute")).await?;
        let status = self.css(".live-responses-table tr.response .response-col_status");
        b.wait_css(&status).await?;
        let status = b.text(&status).await?;
        let body = b
            .text(&self.css(".live-responses-table tr.response .response-col_description pre"))
            .await?;
        let url = b.text(&self.css(".request-url pre")).await?;
        let status = status
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("a status code in `{status}`"))?;
        Ok((status, body, url.trim().to_owned()))
    }
}

#[tokio::test]
async fn seat_map_holds_a_seat_and_follows_the_stream() {
    let app = spawn_app_with(Options::default().env("HOLD_TTL_SECS", 300)).await;
    let event = app
        .api()
        .create_event("Opening night", 120)
        .await
        .expect("an event id");
    // Others were here first: two holds and two reservations.
    let other = new_user();
    for n in [8, 9, 20, 21] {
        let job = app.hold_and_wait(&seat_of(&event, n), &other).await;
        assert!(job.succeeded(), "{job}");
    }
    for n in [20, 21] {
        let posted = app.reserve(&seat_of(&event, n), &other).await;
        assert_eq!(posted.status(), 202, "{posted}");
        let job = app.wait_job(posted.job_id().expect("a job id"), STEP).await;
        assert!(job.succeeded(), "{job}");
    }

    let browser = Browser::start((1400, 1000)).await;
    browser
        .run(
            "seat-map",
            seat_map_scenario(&browser, &app, &event, &other),
        )
        .await;
    browser.close().await;
}

async fn seat_map_scenario(
    b: &Browser,
    app: &TestApp,
    event: &str,
    other: &str,
) -> anyhow::Result<()> {
    b.goto(&app.url(&format!("/#{event}"))).await?;
    b.wait_css("#grid .seat[data-n=\"120\"]").await?;
    b.wait_js(
        "document.getElementById('live').dataset.state === 'live'",
        "the stream to be live",
    )
    .await?;
    for (n, state) in [(5, "available"), (8, "held"), (20, "reserved")] {
        let shown = b.seat_state(n).await?;
        ensure!(
            shown == state,
            "seat {n} shows {shown}, the snapshot says {state}"
        );
    }
    let me = b.prop("#user", "value").await?;
    ensure!(
        uuid::Uuid::parse_str(&me).is_ok(),
        "the user id field holds a UUID: {me}"
    );
    let available_colour = b.seat_colour(5).await?;

    // Hold seat 5 through the page: the seat turns "held by you".
    b.click("#grid .seat[data-n=\"5\"]").await?;
    ensure!(
        b.text("#sel-title").await? == "Seat 5",
        "clicking selects seat 5"
    );
    b.click("#btn-hold").await?;
    b.wait_seat(5, "held-mine").await?;
    let held_colour = b.seat_colour(5).await?;
    ensure!(
        held_colour != available_colour,
        "the held seat changes colour ({available_colour} before, {held_colour} after)"
    );
    b.wait_text("#message", "held").await?;
    let seat = app.seat_as(&seat_of(event, 5), &me).await;
    ensure!(
        seat.status == SeatStatus::OnHold && seat.user == me,
        "the service holds seat 5 for the page's user: {seat}"
    );
    let anyone = app.seat(&seat_of(event, 5)).await;
    ensure!(
        anyone.user.is_empty(),
        "nobody else sees the page's user on seat 5: {anyone}"
    );
    ensure!(
        b.text("#sel-holder").await? == "you",
        "the panel names the holder as you"
    );

    // Refresh, then reserve it.
    b.click("#btn-refresh").await?;
    b.wait_text("#message", "hold extended").await?;
    b.click("#btn-reserve").await?;
    b.wait_seat(5, "reserved-mine").await?;
    b.wait_text("#message", "reserved").await?;
    ensure!(
        b.seat_colour(5).await? != held_colour,
        "the reserved seat changes colour again"
    );
    let seat = app.seat(&seat_of(event, 5)).await;
    ensure!(
        seat.status == SeatStatus::Reserved,
        "seat 5 is reserved: {seat}"
    );

    // Hold seat 7 and release it; hold seat 6 and keep it.
    for (n, keep) in [(7, false), (6, true)] {
        b.click(&format!("#grid .seat[data-n=\"{n}\"]")).await?;
        b.click("#btn-hold").await?;
        b.wait_seat(n, "held-mine").await?;
        if !keep {
            b.click("#btn-release").await?;
            b.wait_seat(n, "available").await?;
            b.wait_text("#message", "released").await?;
        }
    }

    // Someone else acts elsewhere: the page follows the stream.
    let job = app.hold_and_wait(&seat_of(event, 30), other).await;
    ensure!(job.succeeded(), "{job}");
    b.wait_seat(30, "held").await?;
    let released = app.release(&seat_of(event, 8), other).await;
    ensure!(released.status() == 200, "{released}");
    b.wait_seat(8, "available").await?;

    b.click("#grid .seat[data-n=\"6\"]").await?;
    // Available, on hold, reserved, yours.
    b.wait_js(
        "['available','held','reserved','mine'].map(k => document.getElementById('count-' + k).textContent).join() === '114,3,3,2'",
        "the counts to add up (114 available, 3 on hold, 3 reserved, 2 yours)",
    )
    .await?;
    b.screenshot("seat-map.png").await?;
    Ok(())
}

#[tokio::test]
async fn seat_map_lapses_a_hold_at_its_deadline_without_the_server() {
    let mut app = spawn_app_with(Options::default().env("HOLD_TTL_SECS", 4)).await;
    let event = app.create_event(10).await;
    let browser = Browser::start((1000, 700)).await;
    browser
        .run("seat-map-lapse", lapse_scenario(&browser, &mut app, &event))
        .await;
    browser.close().await;
}

async fn lapse_scenario(b: &Browser, app: &mut TestApp, event: &str) -> anyhow::Result<()> {
    b.goto(&app.url(&format!("/#{event}"))).await?;
    b.wait_js(
        "document.getElementById('live').dataset.state === 'live'",
        "the stream to be live",
    )
    .await?;
    let job = app.hold_and_wait(&seat_of(event, 2), &new_user()).await;
    ensure!(job.succeeded(), "{job}");
    let deadline = job
        .seat()
        .and_then(|s| s.expires_at)
        .context("the hold's expiresAt")?;
    b.wait_seat(2, "held").await?;
    // With no worker left, nothing sweeps the hold and no `lapsed` message comes: the page has
    // to see the deadline pass by itself.
    app.stop_workers().await;
    b.wait_seat(2, "available").await?;
    let now = now_ms();
    ensure!(
        now >= deadline - 100,
        "the hold was shown lapsed {} ms before its deadline",
        deadline - now
    );
    ensure!(
        now <= deadline + 2000,
        "the hold was shown lapsed {} ms after its deadline",
        now - deadline
    );
    Ok(())
}

#[tokio::test]
async fn seat_map_catches_up_after_its_stream_drops() {
    let app = spawn_app_with(Options::default().env("HOLD_TTL_SECS", 300)).await;
    let event = app.create_event(10).await;
    // The page talks to an API process of its own, which the test kills and starts again; the
    // test's changes go through the in-process API, on the same Redis.
    let port = free_port();
    let api = app.spawn_api_process(port);
    let browser = Browser::start((1000, 700)).await;
    browser
        .run(
            "seat-map-reconnect",
            reconnect_scenario(&browser, &app, &event, port, api),
        )
        .await;
    browser.close().await;
}

async fn reconnect_scenario(
    b: &Browser,
    app: &TestApp,
    event: &str,
    port: u16,
    mut api: crate::helpers::ChildProcess,
) -> anyhow::Result<()> {
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(app, &base).await?;
    let other = new_user();
    b.goto(&format!("{base}/#{event}")).await?;
    b.wait_live().await?;
    let job = app.hold_and_wait(&seat_of(event, 2), &other).await;
    ensure!(job.succeeded(), "{job}");
    b.wait_seat(2, "held").await?;

    // The service goes away: the page says so, and keeps trying.
    api.kill_9();
    b.wait_js(
        "document.getElementById('live').dataset.state !== 'live'",
        "the page to notice the dropped stream",
    )
    .await?;
    // Meanwhile seats change.
    let job = app.hold_and_wait(&seat_of(event, 3), &other).await;
    ensure!(job.succeeded(), "{job}");
    let released = app.release(&seat_of(event, 2), &other).await;
    ensure!(released.status() == 200, "{released}");

    // Back on the same port: the page reconnects by itself (with Last-Event-ID) and shows
    // what it missed.
    let _api = app.spawn_api_process(port);
    b.wait_seat(3, "held").await?;
    b.wait_seat(2, "available").await?;
    b.wait_live().await?;
    let log = b.text("#log").await?;
    ensure!(
        log.contains("catching up") && !log.contains("read afresh"),
        "the page resumed after the last message it had, not from a new snapshot: {log}"
    );
    Ok(())
}

async fn wait_healthy(app: &TestApp, base: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(r) = app.http.get(format!("{base}/health")).send().await {
            if r.status().as_u16() == 200 {
                return Ok(());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{base} was not healthy within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// AUTH_JWT_SECRET of the jwt-mode tests (HS256 wants 32 bytes or more).
const JWT_SECRET: &str = "browser-tests-hs256-secret-0123456789abcdef";

fn jwt_mode() -> Options {
    Options::default()
        .env("AUTH_MODE", "jwt")
        .env("AUTH_JWT_SECRET", JWT_SECRET)
        .env("HOLD_TTL_SECS", 300)
}

/// A token for `sub`, as `api token --sub <sub>` would mint it for this app.
fn token_for(app: &TestApp, sub: &str) -> String {
    api::identity::mint(
        &app.settings.auth,
        &api::identity::MintRequest {
            sub: sub.to_owned(),
            admin: false,
            ttl: Duration::from_secs(600),
            private_key: None,
        },
    )
    .expect("the test settings mint tokens")
}

#[tokio::test]
async fn seat_map_in_jwt_mode_holds_a_seat_for_the_pasted_tokens_user() {
    let app = spawn_app_with(jwt_mode()).await;
    let event = app
        .api()
        .create_event("Members' night", 40)
        .await
        .expect("an event id");
    let alice = token_for(&app, "alice");
    let bob_id = new_user();
    let bob = token_for(&app, &bob_id);
    // A token signed with another secret: what a forger would paste.
    let mut other = app.settings.auth.clone();
    other.jwt_secret = "a-secret-this-service-does-not-know-0123".to_owned();
    let forged = api::identity::mint(
        &other,
        &api::identity::MintRequest {
            sub: "alice".to_owned(),
            admin: false,
            ttl: Duration::from_secs(600),
            private_key: None,
        },
    )
    .expect("a forged token");

    let first = Browser::start((1400, 1000)).await;
    let second = Browser::start((1400, 1000)).await;
    first
        .run(
            "seat-map-jwt",
            jwt_seat_map_scenario(&first, &second, &app, &event, [&alice, &bob, &forged]),
        )
        .await;
    first.close().await;
    second.close().await;
}

async fn jwt_seat_map_scenario(
    b: &Browser,
    b2: &Browser,
    app: &TestApp,
    event: &str,
    [alice, bob, forged]: [&str; 3],
) -> anyhow::Result<()> {
    let alice_id = api::identity::subject_user("alice").to_string();
    b.goto(&app.url(&format!("/#{event}"))).await?;
    b.wait_css("#grid .seat[data-n=\"40\"]").await?;
    b.wait_live().await?;
    ensure!(
        b.js("return document.getElementById('user-block').hidden && !document.getElementById('token-form').hidden;")
            .await?
            == Value::Bool(true),
        "jwt mode asks for a token, not a user id"
    );

    // Without a token a person may watch, but a hold says what is missing.
    b.click("#grid .seat[data-n=\"5\"]").await?;
    b.click("#btn-hold").await?;
    b.wait_text("#message", "paste a valid token").await?;
    b.wait_text("#token-hint", "paste a valid token").await?;

    // A forged token: the service refuses it, and the page says so where tokens go.
    b.paste_token(forged).await?;
    b.wait_text("#token-hint", "signature does not verify")
        .await?;
    b.wait_text("#live", "token refused").await?;
    b.click("#btn-hold").await?;
    b.wait_text("#message", "refused your token").await?;

    // Alice's token: the page shows her `sub`, holds seat 5 in her name, and learns her user id
    // (the v5 UUID of "alice") from the seat the service shows her.
    b.paste_token(alice).await?;
    b.wait_text("#token-hint", "You are alice").await?;
    b.wait_live().await?;
    b.click("#btn-hold").await?;
    b.wait_seat(5, "held-mine").await?;
    b.wait_text("#message", "held").await?;
    b.wait_text("#token-hint", &alice_id).await?;
    let seat = app.seat_as(&seat_of(event, 5), &alice_id).await;
    ensure!(
        seat.status == SeatStatus::OnHold && seat.user == alice_id,
        "the service holds seat 5 for the token's user ({alice_id}): {seat}"
    );
    let anyone = app.seat(&seat_of(event, 5)).await;
    ensure!(
        anyone.user.is_empty(),
        "an anonymous read does not show alice's id: {anyone}"
    );

    // Bob, in another browser: seat 5 is someone else's; his own hold is his.
    b2.goto(&app.url(&format!("/#{event}"))).await?;
    b2.wait_live().await?;
    b2.paste_token(bob).await?;
    b2.wait_live().await?;
    b2.wait_seat(5, "held").await?;
    b2.click("#grid .seat[data-n=\"5\"]").await?;
    ensure!(
        b2.text("#sel-holder").await? == "someone else",
        "bob's page names seat 5's holder as someone else"
    );
    b2.click("#grid .seat[data-n=\"6\"]").await?;
    b2.click("#btn-hold").await?;
    b2.wait_seat(6, "held-mine").await?;
    b.wait_seat(6, "held").await?;

    // Alice refreshes, releases... and reserves with her token; the stream follows on both.
    b.click("#grid .seat[data-n=\"5\"]").await?;
    b.click("#btn-refresh").await?;
    b.wait_text("#message", "hold extended").await?;
    b.click("#btn-reserve").await?;
    b.wait_seat(5, "reserved-mine").await?;
    b2.wait_seat(5, "reserved").await?;
    let seat = app.seat_as(&seat_of(event, 5), &alice_id).await;
    ensure!(
        seat.status == SeatStatus::Reserved && seat.user == alice_id,
        "seat 5 is reserved for alice: {seat}"
    );
    b.screenshot("seat-map-jwt.png").await?;
    b2.screenshot("seat-map-jwt-second.png").await?;
    Ok(())
}

#[tokio::test]
async fn swagger_ui_holds_a_seat_with_a_token_in_jwt_mode() {
    let app = spawn_app_with(jwt_mode()).await;
    let event = app.create_event(10).await;
    let user = new_user();
    let token = token_for(&app, &user);
    let browser = Browser::start((1400, 1600)).await;
    browser
        .run(
            "swagger-ui-jwt",
            swagger_jwt_scenario(&browser, &app, &event, &user, &token),
        )
        .await;
    browser.close().await;
}

async fn swagger_jwt_scenario(
    b: &Browser,
    app: &TestApp,
    event: &str,
    user: &str,
    token: &str,
) -> anyhow::Result<()> {
    b.goto(&app.url("/swagger-ui/")).await?;
    b.wait_css(".opblock").await?;

    // Authorize, as a person would: the button, the bearer field, Authorize, Close.
    b.click(".auth-wrapper .btn.authorize").await?;
    let field = b.find(".modal-ux .auth-container input").await?;
    field.send_keys(token).await?;
    b.click(".modal-ux .auth-btn-wrapper .btn.authorize")
        .await?;
    // Once authorized, the dialog offers to log out instead.
    b.wait_css(".modal-ux button[aria-label=\"Remove authorization\"]")
        .await?;
    b.click(".modal-ux .btn-done").await?;

    // Try it out on POST /seats/hold with a real seat and no UUID: the token says who.
    let seat = seat_of(event, 3);
    let hold = Operation::new("post", "/seats/hold");
    hold.open(b).await?;
    let body = b.find(&hold.css("textarea.body-param__text")).await?;
    body.clear().await?;
    body.send_keys(&json!({ "id": seat }).to_string()).await?;
    let (status, answer, url) = hold.execute(b).await?;
    let curl = b.text(&hold.css(".curl-command")).await?;
    ensure!(
        status == 202,
        "POST /seats/hold answers 202: {answer}\n{curl}"
    );
    ensure!(
        url == app.url("/seats/hold"),
        "the request went to the running service: {url}"
    );
    ensure!(
        curl.contains(&format!("Bearer {token}")) && curl.contains(&seat),
        "Try it out sent the token and the typed body: {curl}"
    );
    b.js_void(&format!(
        "document.querySelector('{}').scrollIntoView({{block: 'start'}});",
        hold.selector
    ))
    .await?;
    b.screenshot("swagger-ui-jwt-hold.png").await?;

    let answer: Value = serde_json::from_str(&answer).context("the 202 body is JSON")?;
    let job = answer["jobId"].as_str().context("the 202 names its job")?;
    let done = app.wait_job(job, STEP).await;
    ensure!(done.succeeded(), "the hold was applied: {done}");
    let held = app.seat_as(&seat, user).await;
    ensure!(
        held.status == SeatStatus::OnHold && held.user == user,
        "the service holds {seat} for the token's user: {held}"
    );
    Ok(())
}

/// A headless Chromium under chromedriver, with a profile of its own; both go when dropped.
struct Browser {
    client: Option<Client>,
    driver: Child,
    driver_port: u16,
    session: Option<String>,
    profile: PathBuf,
}

impl Browser {
    async fn start(window: (u32, u32)) -> Self {
        let chromium = find_program(&["chromium", "chromium-browser"], "CHROMIUM").expect(
            "Chromium is not installed: scripts/test.sh installs it (apt-get install chromium chromium-driver)",
        );
        let chromedriver = find_program(&["chromedriver"], "CHROMEDRIVER").expect(
            "chromedriver is not installed: scripts/test.sh installs it (apt-get install chromium-driver)",
        );
        let driver_port = free_port();
        let profile =
            std::env::temp_dir().join(format!("e2e-chromium-{}-{driver_port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", chromedriver.display()));
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", window.0, window.1));
        let mut capabilities = fantoccini::wd::Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": args}),
        );
        capabilities.insert(
            "timeouts".into(),
            json!({"pageLoad": 30_000, "script": 10_000, "implicit": 0}),
        );
        let mut browser = Self {
            client: None,
            driver,
            driver_port,
            session: None,
            profile,
        };
        browser.wait_for_driver(&chromedriver);
        let url = format!("http://127.0.0.1:{driver_port}");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = tokio::time::timeout(
            BROWSER_START,
            ClientBuilder::new(connector)
                .capabilities(capabilities)
                .connect(&url),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "chromedriver did not start {} within {BROWSER_START:?}",
                chromium.display()
            )
        })
        .unwrap_or_else(|e| panic!("chromedriver starts {}: {e}", chromium.display()));
        browser.session = client.session_id().await.ok().flatten();
        browser.client = Some(client);
        browser
    }

    /// Waits until chromedriver accepts connections.
    fn wait_for_driver(&mut self, chromedriver: &std::path::Path) {
        let deadline = Instant::now() + STEP;
        while std::net::TcpStream::connect(("127.0.0.1", self.driver_port)).is_err() {
            if let Ok(Some(status)) = self.driver.try_wait() {
                panic!("{} exited at once: {status}", chromedriver.display());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen within {STEP:?}",
                chromedriver.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the browser has started")
    }

    /// Runs a scenario within the test's time budget; on failure keeps a screenshot of the page
    /// as it was, then fails the test.
    async fn run(&self, name: &str, scenario: impl Future<Output = anyhow::Result<()>>) {
        let outcome = match tokio::time::timeout(TEST_BUDGET, scenario).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow!("the scenario took longer than {TEST_BUDGET:?}")),
        };
        if let Err(e) = outcome {
            let shot = format!("{name}-failure.png");
            let kept = match self.screenshot(&shot).await {
                Ok(path) => format!("the page as it was: {}", path.display()),
                Err(e) => format!("no screenshot: {e:#}"),
            };
            panic!("{name}: {e:#}\n{kept}");
        }
    }

    async fn close(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if tokio::time::timeout(Duration::from_secs(10), client.close())
            .await
            .is_ok()
        {
            self.session = None;
        }
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client()
            .goto(url)
            .await
            .with_context(|| format!("open {url}"))
    }

    async fn find(&self, css: &str) -> anyhow::Result<Element> {
        self.client()
            .wait()
            .at_most(STEP)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for `{css}`"))
    }

    async fn wait_css(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await.map(drop)
    }

    /// Waits for an element, scrolls it into view and clicks it once it is enabled.
    async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        let deadline = Instant::now() + STEP;
        while !element.is_enabled().await? {
            ensure!(
                Instant::now() < deadline,
                "`{css}` stayed disabled for {STEP:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        element
            .click()
            .await
            .with_context(|| format!("click `{css}`"))
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    async fn prop(&self, css: &str, name: &str) -> anyhow::Result<String> {
        self.find(css)
            .await?
            .prop(name)
            .await?
            .with_context(|| format!("`{css}` has a {name}"))
    }

    /// Waits until the text of `css` contains `needle` (case-insensitive).
    async fn wait_text(&self, css: &str, needle: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP;
        loop {
            let text = self.text(css).await?;
            if text.to_lowercase().contains(&needle.to_lowercase()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("`{css}` shows `{text}`, not `{needle}`, after {STEP:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn js(&self, script: &str) -> anyhow::Result<Value> {
        self.client()
            .execute(script, Vec::new())
            .await
            .with_context(|| format!("run {script}"))
    }

    async fn js_void(&self, script: &str) -> anyhow::Result<()> {
        self.js(script).await.map(drop)
    }

    /// Waits until a JavaScript expression is true.
    async fn wait_js(&self, expression: &str, what: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP;
        let script = format!("return !!({expression});");
        while self.js(&script).await? != Value::Bool(true) {
            if Instant::now() >= deadline {
                bail!("waited {STEP:?} for {what} ({expression})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Waits until the seat map's stream is live.
    async fn wait_live(&self) -> anyhow::Result<()> {
        self.wait_js(
            "document.getElementById('live').dataset.state === 'live'",
            "the stream to be live",
        )
        .await
    }

    /// Pastes a token into the seat map's token field and presses "Use token".
    async fn paste_token(&self, token: &str) -> anyhow::Result<()> {
        let field = self.find("#token").await?;
        field.clear().await?;
        field.send_keys(token).await?;
        self.click("#use-token").await
    }

    /// How the seat map shows seat `n`: available, held, held-mine, reserved or reserved-mine.
    async fn seat_state(&self, n: u32) -> anyhow::Result<String> {
        let state = self
            .js(&format!(
                "const s = document.querySelector('#grid .seat[data-n=\"{n}\"]'); return s && s.dataset.state;"
            ))
            .await?;
        state
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("seat {n} is on the map"))
    }

    async fn wait_seat(&self, n: u32, state: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + STEP;
        loop {
            let shown = self.seat_state(n).await?;
            if shown == state {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let message = self.text("#message").await.unwrap_or_default();
                bail!("seat {n} shows {shown}, not {state}, after {STEP:?} (message: {message})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The seat's background as drawn, e.g. `rgb(47, 158, 87)` (a gradient for others' holds).
    async fn seat_colour(&self, n: u32) -> anyhow::Result<String> {
        let colour = self
            .js(&format!(
                "const s = getComputedStyle(document.querySelector('#grid .seat[data-n=\"{n}\"]'));
                 return s.backgroundImage === 'none' ? s.backgroundColor : s.backgroundImage;"
            ))
            .await?;
        colour
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("a colour for seat {n}"))
    }

    /// Saves the visible page as `target/screenshots/<name>`.
    async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self.client().screenshot().await?;
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(name);
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed did not close its session: end it, which quits Chromium, before
        // chromedriver goes.
        if let Some(session) = self.session.take() {
            delete_session(self.driver_port, &session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/<id>` to chromedriver, blocking, bounded in time.
fn delete_session(port: u16, session: &str) {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
    }
}

/// The first of `names` on PATH, or the path in environment variable `var`.
fn find_program(names: &[&str], var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Cargo's target directory: CARGO_TARGET_DIR, or the workspace's `target/`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}
