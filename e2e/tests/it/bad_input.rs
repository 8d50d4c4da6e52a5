//! G8: every malformed, oversized or hostile request gets a JSON error with the right status, and
//! nothing is written.

use serde_json::Value;

use crate::helpers::{new_user, seat_of, spawn_app_with, Options};

#[tokio::test]
async fn bad_inputs_get_their_status_and_change_nothing() {
    let app = spawn_app_with(Options::default().workers(0)).await;
    let event = app.create_event(10).await;
    let seat = seat_of(&event, 1);
    let user = new_user();
    let before = app.redis.digest().await;

    let huge_name = "x".repeat(64 * 1024);
    // (what, path, body, content type, status, code)
    type Case<'a> = (&'a str, &'a str, String, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "missing name",
            "/events/create",
            r#"{"totalSeats": 50}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "missing totalSeats",
            "/events/create",
            r#"{"name": "a"}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "totalSeats as a string",
            "/events/create",
            r#"{"name": "a", "totalSeats": "50"}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "fractional totalSeats",
            "/events/create",
            r#"{"name": "a", "totalSeats": 10.5}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "too few seats",
            "/events/create",
            r#"{"name": "a", "totalSeats": 9}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "too many seats",
            "/events/create",
            r#"{"name": "a", "totalSeats": 10001}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "negative seats",
            "/events/create",
            r#"{"name": "a", "totalSeats": -10}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "empty name",
            "/events/create",
            r#"{"name": "", "totalSeats": 50}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "blank name",
            "/events/create",
            r#"{"name": "   ", "totalSeats": 50}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "name too long",
            "/events/create",
            format!(r#"{{"name": "{}", "totalSeats": 50}}"#, "n".repeat(201)),
            None,
            422,
            "invalid_field",
        ),
        (
            "name of the wrong type",
            "/events/create",
            r#"{"name": 7, "totalSeats": 50}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "an array body",
            "/events/create",
            r#"[1, 2]"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "null body",
            "/events/create",
            "null".into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "malformed JSON",
            "/events/create",
            r#"{"name": "a", "totalSeats": 50"#.into(),
            None,
            400,
            "malformed_json",
        ),
        (
            "an object with something after it",
            "/events/create",
            r#"{"name": "a", "totalSeats": 50} xyz"#.into(),
            None,
            400,
            "malformed_json",
        ),
        (
            "a hold with a second object after it",
            "/seats/hold",
            format!(r#"{{"id": "{seat}", "UUID": "{user}"}} {{}}"#),
            None,
            400,
            "malformed_json",
        ),
        (
            "empty body",
            "/events/create",
            String::new(),
            None,
            400,
            "malformed_json",
        ),
        (
            "not JSON at all",
            "/events/create",
            "name=a&totalSeats=50".into(),
            None,
            400,
            "malformed_json",
        ),
        (
            "wrong content type",
            "/events/create",
            r#"{"name": "a", "totalSeats": 50}"#.into(),
            Some("text/plain"),
            400,
            "unsupported_content_type",
        ),
        (
            "form content type",
            "/seats/hold",
            format!(r#"{{"id": "{seat}", "UUID": "{user}"}}"#),
            Some("application/x-www-form-urlencoded"),
            400,
            "unsupported_content_type",
        ),
        (
            "a huge body",
            "/events/create",
            format!(r#"{{"name": "{huge_name}", "totalSeats": 50}}"#),
            None,
            413,
            "payload_too_large",
        ),
        (
            "user id not a UUID",
            "/seats/hold",
            format!(r#"{{"id": "{seat}", "UUID": "bob"}}"#),
            None,
            422,
            "invalid_field",
        ),
        (
            "user id as a number",
            "/seats/hold",
            format!(r#"{{"id": "{seat}", "UUID": 12}}"#),
            None,
            422,
            "invalid_field",
        ),
        (
            "missing user id",
            "/seats/hold",
            format!(r#"{{"id": "{seat}"}}"#),
            None,
            422,
            "invalid_field",
        ),
        (
            "garbage seat id",
            "/seats/hold",
            format!(r#"{{"id": "'; DROP TABLE seats; --", "UUID": "{user}"}}"#),
            None,
            422,
            "invalid_field",
        ),
        (
            "seat number zero",
            "/seats/hold",
            format!(r#"{{"id": "{event}:0", "UUID": "{user}"}}"#),
            None,
            422,
            "invalid_field",
        ),
        (
            "seat id with a hash tag",
            "/seats/hold",
            format!(r#"{{"id": "{{{event}}}:1", "UUID": "{user}"}}"#),
            None,
            422,
            "invalid_field",
        ),
        (
            "garbage reserve",
            "/seats/reserve",
            r#"{"id": 1, "UUID": null}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "garbage refresh",
            "/seats/refresh",
            r#"{"id": [], "UUID": {}}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "garbage hold refresh",
            "/seats/hold/refresh",
            "{}".into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "garbage release",
            "/seats/release",
            r#"{"id": "x", "UUID": "y"}"#.into(),
            None,
            422,
            "invalid_field",
        ),
        (
            "unknown route",
            "/tickets/buy",
            "{}".into(),
            None,
            404,
            "route_not_found",
        ),
        (
            "hold on an unknown event",
            "/seats/hold",
            format!(
                r#"{{"id": "{}:1", "UUID": "{user}"}}"#,
                uuid::Uuid::new_v4()
            ),
            None,
            404,
            "seat_not_found",
        ),
        (
            "hold on a seat past the last",
            "/seats/hold",
            format!(r#"{{"id": "{event}:11", "UUID": "{user}"}}"#),
            None,
            404,
            "seat_not_found",
        ),
        (
            "reserve of a seat nobody holds",
            "/seats/reserve",
            format!(r#"{{"id": "{seat}", "UUID": "{user}"}}"#),
            None,
            409,
            "seat_not_on_hold",
        ),
        (
            "refresh of a seat nobody holds",
            "/seats/refresh",
            format!(r#"{{"id": "{seat}", "UUID": "{user}"}}"#),
            None,
            409,
            "seat_not_on_hold",
        ),
        (
            "wrong method on a known path",
            "/events/some-id",
            "{}".into(),
            None,
            405,
            "method_not_allowed",
        ),
    ];

    for (what, path, body, content_type, status, code) in cases {
        let response = app
            .http
            .post(app.url(path))
            .header("content-type", content_type.unwrap_or("application/json"))
            .body(body)
            .send()
            .await
            .expect("the API answers");
        let got = response.status().as_u16();
        let is_json = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let text = response.text().await.expect("a body");
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e}): {text}"));
        assert!(is_json, "{what}: the content type is JSON");
        assert_eq!(got, status, "{what}: {json}");
        assert_eq!(json["code"], code, "{what}: {json}");
        assert!(
            json["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty() && e.len() < 1000),
            "{what}: a short sentence for a person: {json}"
        );
        if code == "invalid_field" {
            assert!(json["field"].is_string(), "{what}: names the field: {json}");
        }
    }

    // Wrong methods and unknown paths are JSON too.
    for (method, path, status) in [
        (reqwest::Method::GET, "/seats/hold", 405),
        (reqwest::Method::DELETE, "/events/create", 405),
        (reqwest::Method::GET, "/no/such/route", 404),
        (reqwest::Method::PUT, "/", 405),
        (reqwest::Method::POST, "/events/x/stream", 405),
        (reqwest::Method::DELETE, "/events", 405),
    ] {
        let response = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        if status == 405 {
            let allow = response
                .headers()
                .get("allow")
                .map(|v| v.as_bytes().to_vec());
            let expected: &[u8] = match path {
                "/seats/hold" | "/events/create" => b"POST",
                _ => b"GET",
            };
            assert_eq!(allow.as_deref(), Some(expected), "{method} {path}: Allow");
        }
        let json: Value = response.json().await.expect("a JSON body");
        assert!(json["code"].is_string(), "{method} {path}: {json}");
    }

    assert_eq!(
        app.redis.digest().await,
        before,
        "no bad request wrote anything to Redis"
    );
}
