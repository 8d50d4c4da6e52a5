//! `JsonBody<T>`: the request-body extractor. It refuses a wrong content type (400), an oversized
//! body (413), a body that does not arrive in time (408), malformed JSON (400) and well-formed
//! JSON with a missing or invalid field (422, naming the field), always with the JSON error shape
//! of `error.rs`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// The largest body accepted, in bytes (app data; PayloadConfig, which enforces it while
/// reading, does not expose it).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

const DEFAULT_LIMIT: usize = 16 * 1024;

/// How long a body may take to arrive, counted from when its handler starts reading it (app
/// data; [`DEFAULT_BODY_TIMEOUT`] without it). actix's `client_request_timeout` covers the
/// request line and headers only: without this, a client sending its body a byte at a time
/// would hold its connection and handler forever.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// The default of [`BodyTimeout`]: the same 5 s as `client_request_timeout_ms` gives the head.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(5);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(DEFAULT_LIMIT, |l| l.0);
        let timeout = req
            .app_data::<BodyTimeout>()
            .map_or(DEFAULT_BODY_TIMEOUT, |t| t.0);
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        let declared_len = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let body = Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::UnsupportedContentType);
            }
            if declared_len.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let bytes = actix_web::rt::time::timeout(timeout, body)
                .await
                .map_err(|_| ApiError::BodyTimeout {
                    secs: timeout.as_secs().max(1),
                })?
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit },
                    _ => ApiError::MalformedJson(e.to_string()),
                })?;
            if bytes.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            parse(&bytes).map(JsonBody)
        })
    }
}

/// Parses a body, telling a syntax error (400) from a bad value (422, with the field's path).
/// Every body is a JSON object: serde's derive would also take a struct from an array of its
/// fields in order (`["Opening night", 50]`), which the API neither documents nor wants.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Well-formed JSON of another kind is a bad value; anything else a syntax error.
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::InvalidField {
                field: ".".to_owned(),
                message: "the body must be a JSON object".to_owned(),
            }),
            Err(e) => Err(ApiError::MalformedJson(strip_position(&e.to_string()))),
        };
    }
    // Read at first without tracking the path, which costs every body its bookkeeping; only a
    // body that fails is read again to name the field (the same bytes fail the same way).
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    if let Ok(value) = T::deserialize(&mut *de) {
        return finished(de, value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(&mut *de) {
        Ok(value) => finished(de, value),
        Err(e) => {
            let field = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let message = strip_position(&inner.to_string());
                    // A missing field is reported by serde at the enclosing level.
                    let field = missing_field(&message).unwrap_or(field);
                    Err(ApiError::InvalidField {
                        message: if field == "." {
                            format!("the body must be a JSON object: {message}")
                        } else {
                            format!("{field}: {message}")
                        },
                        field,
                    })
                }
                _ => Err(ApiError::MalformedJson(strip_position(&inner.to_string()))),
            }
        }
    }
}

/// `value`, read from `de`, if only whitespace follows it: a body with anything after its object
/// (`{...} xyz`, a second object) is malformed, as `serde_json::from_slice` would say.
fn finished<T>(
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
    value: T,
) -> Result<T, ApiError> {
    match de.end() {
        Ok(()) => Ok(value),
        Err(e) => Err(ApiError::MalformedJson(strip_position(&e.to_string()))),
    }
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// serde_json appends " at line 1 column 9"; people do not need it for one-line bodies.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Whether a Content-Type is JSON: its `type/subtype` (parameters ignored, any case) is
/// `application/json` or `application/<anything>+json`.
fn is_json(content_type: &str) -> bool {
    const JSON: &[u8] = b"application/json";
    const APPLICATION: &[u8] = b"application/";
    const SUFFIX: &[u8] = b"+json";
    // Compared byte by byte, ignoring ASCII case, rather than lowercased into a new string:
    // this runs for every request with a body.
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let essence = essence.as_bytes();
    essence.eq_ignore_ascii_case(JSON)
        || (essence.len() >= APPLICATION.len() + SUFFIX.len()
            && essence[..APPLICATION.len()].eq_ignore_ascii_case(APPLICATION)
            && essence[essence.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX))
}

/// Property tests: whatever bytes, JSON or headers a client sends, the
/// body extractor answers with a value that passed validation or with one of its documented
/// errors (400, 413, 422) — never a panic, never another status.
#[cfg(test)]
mod tests {
    use actix_web::http::header;
    use actix_web::test::TestRequest;
    use actix_web::web::{Bytes, PayloadConfig};
    use actix_web::{FromRequest, ResponseError};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::{parse, BodyLimit, BodyTimeout, JsonBody};
    use crate::dto::{CreateEvent, SeatRequest};
    use crate::error::ApiError;

    const LIMIT: usize = 16 * 1024;

    fn status(e: &ApiError) -> u16 {
        e.status_code().as_u16()
    }

    /// JSON values of every kind, nested a few levels, with the fields of the real bodies
    /// showing up often enough to reach the validation of their values.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from), // NaN and infinities become null
            (0u64..20_000).prop_map(|n| json!(n as f64)),
            any::<String>().prop_map(Value::from),
            "[0-9a-f-]{36}(:[0-9]{1,5})?".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            let key = prop_oneof![
                Just("id".to_owned()),
                Just("UUID".to_owned()),
                Just("name".to_owned()),
                Just("totalSeats".to_owned()),
                any::<String>(),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Runs the extractor on a request as actix would hand it over.
    fn extract<T: serde::de::DeserializeOwned + 'static>(
        content_type: Option<&str>,
        content_length: Option<String>,
        body: Vec<u8>,
    ) -> Result<T, ApiError> {
        let mut request = TestRequest::post()
            .app_data(PayloadConfig::new(LIMIT))
            .app_data(BodyLimit(LIMIT))
            .set_payload(body);
        if let Some(content_type) = content_type {
            request = request.insert_header((header::CONTENT_TYPE, content_type));
        }
        if let Some(length) = content_length {
            request = request.insert_header((header::CONTENT_LENGTH, length));
        }
        let (req, mut payload) = request.to_http_parts();
        actix_web::rt::System::new()
            .block_on(JsonBody::<T>::from_request(&req, &mut payload))
            .map(|JsonBody(value)| value)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn any_bytes_give_a_value_or_a_400_or_422(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            for result in [parse::<SeatRequest>(&bytes).map(|_| ()), parse::<CreateEvent>(&bytes).map(|_| ())] {
                if let Err(e) = result {
                    prop_assert!(matches!(status(&e), 400 | 422), "{e:?}");
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }

        #[test]
        fn well_formed_json_is_never_a_400(value in json_value()) {
            let bytes = serde_json::to_vec(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for result in [parse::<SeatRequest>(&bytes).map(|_| ()), parse::<CreateEvent>(&bytes).map(|_| ())] {
                if let Err(e) = result {
                    prop_assert_eq!(status(&e), 422, "{:?} for {}", e, value);
                    let ApiError::InvalidField { field, .. } = &e else {
                        return Err(TestCaseError::fail(format!("{e:?}")));
                    };
                    prop_assert!(!field.is_empty(), "a 422 names its field");
                }
            }
        }

        #[test]
        fn create_event_accepts_exactly_the_documented_values(
            name in prop_oneof![any::<String>(), "[ a-z]{0,3}", "[a-z]{195,205}"],
            seats in prop_oneof![
                (0u64..20_000).prop_map(Value::from),
                (0u64..20_000).prop_map(|n| json!(n as f64)),
                any::<f64>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                (0u64..20_000).prop_map(|n| Value::from(n.to_string())),
            ],
        ) {
            let body = json!({"name": name, "totalSeats": seats});
            let bytes = serde_json::to_vec(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let whole = seats.as_f64().filter(|f| f.fract() == 0.0 && (10.0..=10_000.0).contains(f));
            let name_ok = !name.trim().is_empty()
                && name.chars().count() <= 200
                && !name.chars().any(char::is_control);
            match parse::<CreateEvent>(&bytes) {
                Ok(event) => {
                    prop_assert!(name_ok && whole.is_some(), "accepted {}", body);
                    prop_assert_eq!(Some(f64::from(event.total_seats.get())), whole);
                    prop_assert_eq!(event.name.as_str(), name.as_str());
                }
                Err(e) => {
                    prop_assert!(!(name_ok && whole.is_some()), "refused {}: {:?}", body, e);
                    prop_assert_eq!(status(&e), 422);
                }
            }
        }

        #[test]
        fn the_extractor_answers_400_413_or_422_whatever_the_headers(
            content_type in prop::option::of(prop_oneof![
                Just("application/json"),
                Just("application/json; charset=utf-8"),
                Just("APPLICATION/JSON"),
                Just("application/problem+json"),
                Just("text/plain"),
                Just("application/x-www-form-urlencoded"),
                Just("multipart/form-data; boundary=x"),
                Just(""),
                Just(";;;"),
                Just("application/\u{e9}json"),
            ]),
            declared in prop::option::of(prop_oneof![
                (0usize..40_000).prop_map(|n| n.to_string()),
                Just("-1".to_owned()),
                Just("18446744073709551616".to_owned()),
                Just("abc".to_owned()),
            ]),
            body in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
                (LIMIT - 2..LIMIT + 64).prop_map(|n| {
                    let mut body = b"{\"name\": \"".to_vec();
                    body.resize(n.saturating_sub(2), b'x');
                    body.extend_from_slice(b"\"}");
                    body
                }),
            ],
        ) {
            let declared_len = declared.as_deref().map(str::parse::<usize>);
            let big = body.len() > LIMIT || declared_len.clone().is_some_and(|d| d.is_ok_and(|d| d > LIMIT));
            // A Content-Length that is not a number (a real server refuses it before any
            // handler) makes the body unreadable: 400.
            let bad_length = declared_len.is_some_and(|d| d.is_err());
            let is_json = content_type.is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.starts_with("application/json") || t.starts_with("application/problem+json")
            });
            match extract::<CreateEvent>(content_type, declared.clone(), body.clone()) {
                Ok(event) => {
                    prop_assert!(is_json && !big, "accepted {:?} {:?}", content_type, declared);
                    prop_assert!((10..=10_000).contains(&event.total_seats.get()));
                }
                Err(e) => {
                    let status = status(&e);
                    prop_assert!(matches!(status, 400 | 413 | 422), "{:?}", e);
                    if !is_json || bad_length {
                        prop_assert_eq!(status, 400, "{:?}", e);
                    } else if big {
                        prop_assert_eq!(status, 413, "over the limit: {:?}", e);
                    }
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let open = "[".repeat(100_000);
        let close = "]".repeat(100_000);
        for body in [
            format!("{open}{close}"),
            format!("{{\"id\": {open}{close}}}"),
            format!("{{\"x\": {open}{close}, \"id\": 1}}"),
            format!("{{\"name\": {}", "{\"a\": ".repeat(100_000)),
        ] {
            let err = parse::<SeatRequest>(body.as_bytes()).expect_err("refused");
            assert!(matches!(status(&err), 400 | 422), "{err:?}");
            let err = parse::<CreateEvent>(body.as_bytes()).expect_err("refused");
            assert!(matches!(status(&err), 400 | 422), "{err:?}");
        }
    }

    #[test]
    fn a_body_that_does_not_arrive_in_time_is_a_408() {
        let (req, _) = TestRequest::post()
            .app_data(BodyTimeout(std::time::Duration::from_millis(50)))
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::CONTENT_LENGTH, "40"))
            .to_http_parts();
        // A body whose bytes never come.
        let never: std::pin::Pin<
            Box<dyn futures::Stream<Item = Result<Bytes, actix_web::error::PayloadError>>>,
        > = Box::pin(futures::stream::pending());
        let mut payload = actix_web::dev::Payload::Stream { payload: never };
        let started = std::time::Instant::now();
        let err = actix_web::rt::System::new()
            .block_on(JsonBody::<SeatRequest>::from_request(&req, &mut payload))
            .expect_err("no body, no value");
        assert_eq!(status(&err), 408, "{err:?}");
        assert_eq!(err.code().as_str(), "request_timeout");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let response = err.error_response();
        assert!(
            !response.head().keep_alive(),
            "the connection is not reused after a half-read body"
        );
    }

    #[test]
    fn a_body_is_an_object_not_an_array_of_fields() {
        let err = parse::<CreateEvent>(br#"["Opening night", 50]"#).expect_err("an array");
        assert_eq!(status(&err), 422, "{err:?}");
        let err = parse::<CreateEvent>(b"  [1, ").expect_err("broken");
        assert_eq!(status(&err), 400, "{err:?}");
        assert!(parse::<CreateEvent>(br#" {"name": "a", "totalSeats": 50.0}"#).is_ok());
    }

    #[test]
    fn nothing_but_whitespace_may_follow_the_object() {
        for body in [
            &br#"{"name": "a", "totalSeats": 50} xyz"#[..],
            br#"{"name": "a", "totalSeats": 50}{}"#,
            br#"{"name": "a", "totalSeats": 50},"#,
        ] {
            let err = parse::<CreateEvent>(body).expect_err("trailing characters");
            assert_eq!(status(&err), 400, "{err:?}");
            assert_eq!(err.code().as_str(), "malformed_json");
        }
        assert!(parse::<CreateEvent>(b"{\"name\": \"a\", \"totalSeats\": 50} \r\n\t ").is_ok());
    }
}
