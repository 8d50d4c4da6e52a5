//! An event's lifecycle (docs/CONTRACT.md §2, G7): an optional `endsAt` on creation, after which
//! (plus EVENT_RETENTION) the housekeeping deletes the event with the deletion an admin's DELETE
//! runs; and `GET /events` a page at a time with a cursor.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fred::clients::Client;
use fred::interfaces::{ClientLike, SortedSetsInterface};
use queue_core::clock::wall_clock_ms;
use queue_core::keys;
use serde_json::{json, Value};

use crate::delete_event::keys_named;
use crate::helpers::{expires_at, keys_of, new_user, seat_of, spawn_app_with, Options, TestApp};

const ADMIN_TOKEN: &str = "an-admin-token-for-the-tests-0123";
/// How soon after `endsAt` plus EVENT_RETENTION the housekeeping must have deleted the event:
/// it looks every second.
const DELETED_WITHIN: Duration = Duration::from_secs(5);

fn rfc3339(ms: i64) -> String {
    api::dto::rfc3339(ms)
}

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/events/create", body).await
}

async fn create_ending(app: &TestApp, name: &str, ends_at: Option<i64>) -> String {
    let mut body = json!({"name": name, "totalSeats": 10});
    if let Some(ms) = ends_at {
        body["endsAt"] = json!(rfc3339(ms));
    }
    let (status, answer) = create(app, body).await;
    assert_eq!(status, 201, "{name} is created: {answer}");
    answer["id"].as_str().expect("an id").to_owned()
}

async fn ends_score(redis: &Client, event: &str) -> Option<f64> {
    redis.zscore(keys::ENDS, event).await.expect("ZSCORE")
}

#[tokio::test]
async fn an_event_is_deleted_by_the_housekeeping_once_its_end_and_the_retention_have_passed() {
    // Arrange: a retention of 1 s; one event ending in a second (with a hold on it), one
    // without an end, one ending in an hour, and one ending in an hour that an admin deletes.
    let app = spawn_app_with(
        Options::default()
            .env("EVENT_RETENTION", "1")
            .env("ADMIN_TOKEN", ADMIN_TOKEN),
    )
    .await;
    let redis = app.redis.client().await;
    let ends = wall_clock_ms() + 1_500;
    let ending = create_ending(&app, "Ending soon", Some(ends)).await;
    let endless = create_ending(&app, "No end", None).await;
    // The list is newest first by creation ms, then by id: two events of the same ms would
    // come in either order.
    tokio::time::sleep(Duration::from_millis(3)).await;
    let later = create_ending(&app, "Ending later", Some(wall_clock_ms() + 3_600_000)).await;
    let deleted = create_ending(&app, "Deleted by hand", Some(wall_clock_ms() + 3_600_000)).await;
    // Until it is deleted, an ended event is served as any other (a hold is applied).
    let held = app.hold_and_wait(&seat_of(&ending, 1), &new_user()).await;
    assert!(expires_at(&held) > 0, "a hold on the event: {held:?}");

    // The end is stored, indexed and shown.
    let (status, body) = app.get(&format!("/events/{ending}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["endsAt"],
        json!(rfc3339(ends)),
        "GET shows endsAt: {body}"
    );
    let (_, body) = app.get(&format!("/events/{endless}")).await;
    assert!(
        body.get("endsAt").is_none(),
        "no endsAt without one: {body}"
    );
    assert_eq!(ends_score(&redis, &ending).await, Some(ends as f64));
    assert_eq!(
        ends_score(&redis, &endless).await,
        None,
        "an event without an end is not indexed"
    );
    let endless_keys = keys_named(&redis, &endless).await;
    let later_keys = keys_named(&redis, &later).await;
    assert!(!keys_named(&redis, &ending).await.is_empty());

    // A manual DELETE takes the event out of the index too.
    let answer = app
        .http
        .delete(app.url(&format!("/events/{deleted}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the API answers");
    assert_eq!(answer.status().as_u16(), 204);
    assert_eq!(
        ends_score(&redis, &deleted).await,
        None,
        "DELETE cleans the index of ends"
    );

    // Act: wait for the end plus the retention, and then for the housekeeping.
    let due =
        Instant::now() + Duration::from_millis((ends + 1_000 - wall_clock_ms()).max(0) as u64);
    let deadline = due + DELETED_WITHIN;
    // The deletion is whole once the event reads 404 (its mark) and it is out of the index of
    // ends (the last step of freeing it).
    loop {
        let (status, _) = app.get(&format!("/events/{ending}")).await;
        if status == 404 && ends_score(&redis, &ending).await.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ended event is deleted within {DELETED_WITHIN:?} of its end plus the retention"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        wall_clock_ms() >= ends + 1_000,
        "not deleted before its end plus the retention"
    );

    // Assert: every key of it is gone but the tombstone, as after a DELETE.
    assert_eq!(
        keys_named(&redis, &ending).await,
        vec![keys_of(&ending).deleted],
        "only the tombstone is left"
    );
    assert_eq!(
        ends_score(&redis, &ending).await,
        None,
        "out of the index of ends"
    );
    let registered: Option<f64> = redis.zscore(keys::EVENTS, &ending).await.expect("ZSCORE");
    assert_eq!(registered, None, "out of the registry");
    // The others are untouched.
    assert_eq!(
        keys_named(&redis, &endless).await,
        endless_keys,
        "the event without an end keeps its keys"
    );
    assert_eq!(
        keys_named(&redis, &later).await,
        later_keys,
        "the event ending later keeps its keys"
    );
    for event in [&endless, &later] {
        let (status, body) = app.get(&format!("/events/{event}")).await;
        assert_eq!(status, 200, "{event} is still there: {body}");
    }
    let (_, list) = app.get("/events").await;
    let listed: Vec<&str> = list["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(
        listed,
        vec![later.as_str(), endless.as_str()],
        "the list shows the two left, newest first"
    );
}

#[tokio::test]
async fn an_ends_at_in_the_past_too_far_ahead_or_malformed_is_a_422_naming_it_and_writes_nothing() {
    let app = spawn_app_with(Options::default()).await;
    let redis = app.redis.client().await;
    let keys_before: Vec<String> = redis
        .custom(fred::cmd!("KEYS"), vec!["*"])
        .await
        .expect("KEYS");
    let now = wall_clock_ms();
    let bads = [
        json!(rfc3339(now - 1_000)),
        json!(rfc3339(now - 86_400_000)),
        json!(rfc3339(now + 3 * 365 * 86_400_000)),
        json!("tomorrow"),
        json!("2027-06-01"),
        json!("2027-06-01T23:00:00"),
        json!("2027-13-01T23:00:00Z"),
        json!(1_900_000_000_000i64),
        json!({"at": "2027-06-01T23:00:00Z"}),
    ];
    for bad in bads {
        let (status, body) = create(
            &app,
            json!({"name": "Bad end", "totalSeats": 10, "endsAt": bad}),
        )
        .await;
        assert_eq!(status, 422, "endsAt {bad} is refused: {body}");
        assert_eq!(
            body["field"], "endsAt",
            "the 422 for {bad} names endsAt: {body}"
        );
    }
    let keys_after: Vec<String> = redis
        .custom(fred::cmd!("KEYS"), vec!["*"])
        .await
        .expect("KEYS");
    assert_eq!(keys_after, keys_before, "nothing was written");
    let (_, list) = app.get("/events").await;
    assert_eq!(list["events"], json!([]), "no event was created: {list}");
    assert!(
        list.get("nextCursor").is_none(),
        "no cursor on an empty list: {list}"
    );
    // `null` is no end, as a missing endsAt is.
    let (status, body) = create(
        &app,
        json!({"name": "No end", "totalSeats": 10, "endsAt": null}),
    )
    .await;
    assert_eq!(status, 201, "endsAt null is accepted: {body}");
    assert!(body.get("endsAt").is_none(), "and is no end: {body}");
    // An offset is accepted, and shown in UTC.
    let (status, body) = create(
        &app,
        json!({"name": "Good end", "totalSeats": 10, "endsAt": "2027-06-02T01:00:00+02:00"}),
    )
    .await;
    if now < 1_811_890_800_000 {
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["endsAt"], "2027-06-01T23:00:00.000Z", "{body}");
    }
}

async fn page(app: &TestApp, query: &str) -> (Vec<String>, Option<String>) {
    let (status, body) = app.get(&format!("/events{query}")).await;
    assert_eq!(status, 200, "{query}: {body}");
    let ids = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect();
    (ids, body["nextCursor"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn get_events_pages_newest_first_with_a_cursor_and_creations_meanwhile_change_nothing() {
    // Arrange: 250 events, created one after another.
    let app = spawn_app_with(Options::default()).await;
    let mut created = Vec::new();
    for i in 0..250 {
        created.push(create_ending(&app, &format!("Event {i}"), None).await);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // Act: three pages, with events created between the reads.
    let (first, cursor) = page(&app, "").await;
    let cursor = cursor.expect("a cursor after the first page");
    let mut meanwhile = HashSet::new();
    for i in 0..5 {
        meanwhile.insert(create_ending(&app, &format!("Meanwhile {i}"), None).await);
    }
    let (second, cursor) = page(&app, &format!("?limit=100&cursor={cursor}")).await;
    let cursor = cursor.expect("a cursor after the second page");
    meanwhile.insert(create_ending(&app, "Meanwhile again", None).await);
    let (third, last) = page(&app, &format!("?cursor={cursor}&limit=100")).await;

    // Assert.
    assert_eq!(
        (first.len(), second.len(), third.len()),
        (100, 100, 50),
        "pages of 100, 100, 50"
    );
    assert_eq!(last, None, "no cursor on the last page");
    let all: Vec<String> = [first, second, third].concat();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no event is listed twice");
    let expected: HashSet<&String> = created.iter().collect();
    assert!(
        unique == expected,
        "the pages list exactly the 250 events, no gap"
    );
    // Newest first: by creation ms (events created in the same ms come by id, descending).
    let redis = app.redis.client().await;
    let mut order = Vec::new();
    for id in &all {
        let ms: Option<f64> = redis.zscore(keys::EVENTS, id).await.expect("ZSCORE");
        order.push((ms.expect("registered") as i64, id.clone()));
    }
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "newest first, by creation time then id"
    );
    // Created one after another: the listing is the creation order reversed, but for events
    // created in the same ms (ordered by id).
    let mut by_creation = Vec::new();
    for id in &newest_first {
        let ms: Option<f64> = redis.zscore(keys::EVENTS, id).await.expect("ZSCORE");
        by_creation.push(ms.expect("registered") as i64);
    }
    let listed_ms: Vec<i64> = order.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(listed_ms, by_creation, "newest first");
    assert!(
        all.iter().all(|id| !meanwhile.contains(id)),
        "events created meanwhile are not on later pages"
    );
    // A smaller page, and the first page shows the newest.
    let (small, cursor) = page(&app, "?limit=7").await;
    assert_eq!(small.len(), 7);
    assert!(cursor.is_some());
    assert!(meanwhile.contains(&small[0]), "the newest first");

    // Bad limits and cursors: 422 naming the field.
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=1&limit=2", "limit"),
        ("?cursor=nope", "cursor"),
        ("?cursor=", "cursor"),
        ("?cursor=1.2", "cursor"),
    ] {
        let (status, body) = app.get(&format!("/events{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["field"], field, "{query} names {field}: {body}");
    }
}
