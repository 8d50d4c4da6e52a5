//! Every error answer of the API: one JSON shape ([`ErrorBody`]), one list of stable codes
//! ([`Code`], each with its status), and one exhaustive table from [`ApiError`] to its code and
//! details ([`ApiError::answer`]). Answers actix makes by itself get the same shape and a code
//! from the same list ([`json_error_body`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use queue_core::{Refusal, SeatStatus};
use serde::Serialize;

/// Seconds a client is told to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The rate limits' header naming the policy of a resource (draft-ietf-httpapi-ratelimit-headers):
/// `"<class>";q=<burst>;w=<seconds>`.
pub const POLICY_HEADER: header::HeaderName = header::HeaderName::from_static("ratelimit-policy");
/// The rate limits' header with what is left: `"<class>";r=<remaining>;t=<seconds>`.
pub const STATE_HEADER: header::HeaderName = header::HeaderName::from_static("ratelimit");

/// What a rate limit's refusal answers with besides its body (`rate_limit.rs` fills it in).
#[derive(Debug, Clone)]
pub struct RateLimitRefusal {
    pub retry_after_secs: u64,
    /// `RateLimit-Policy`.
    pub policy: String,
    /// `RateLimit`.
    pub state: String,
}

/// Declares [`Code`] from one table: per code, when it is used (its doc), its spelling and the
/// status it is answered with.
macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $code:ident = ($name:literal, $status:ident),)+) => {
        /// Every stable `code` of an error answer, each with the status it is answered with. This
        /// is the one list of them: the OpenAPI description of [`ErrorBody::code`] is made from it,
        /// and a test fails when one of them is never answered.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])+ $code,)+
        }

        impl Code {
            /// Every code, in the order the OpenAPI document lists them.
            pub const ALL: &'static [Self] = &[$(Self::$code),+];

            /// The spelling clients see, stable snake_case.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$code => $name,)+
                }
            }

            /// The status of the API's own answers with this code.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$code => StatusCode::$status,)+
                }
            }
        }
    };
}

codes! {
    /// The request body is not valid JSON.
    MalformedJson = ("malformed_json", BAD_REQUEST),
    /// The request body is not declared as JSON (`Content-Type`).
    UnsupportedContentType = ("unsupported_content_type", BAD_REQUEST),
    /// The request body is over the size limit (`limit`, in bytes); also actix's own 413.
    PayloadTooLarge = ("payload_too_large", PAYLOAD_TOO_LARGE),
    /// The request body did not arrive in time; also actix's own 408 that passes the app.
    RequestTimeout = ("request_timeout", REQUEST_TIMEOUT),
    /// A path segment, header, query parameter or body field is invalid (`field` names it).
    InvalidField = ("invalid_field", UNPROCESSABLE_ENTITY),
    /// No event with that id.
    EventNotFound = ("event_not_found", NOT_FOUND),
    /// No seat with that id (its event may not exist either).
    SeatNotFound = ("seat_not_found", NOT_FOUND),
    /// No job with that id, or its result is past JOB_RESULT_TTL.
    JobNotFound = ("job_not_found", NOT_FOUND),
    /// A hold found the seat in another status than Available (`currentStatus`).
    SeatNotAvailable = ("seat_not_available", CONFLICT),
    /// A reserve, refresh or release found the seat not On hold (`currentStatus`).
    SeatNotOnHold = ("seat_not_on_hold", CONFLICT),
    /// The request needs credentials it did not carry, or carried ones that do not verify
    /// (`WWW-Authenticate` says which, RFC 6750).
    Unauthenticated = ("unauthenticated", UNAUTHORIZED),
    /// The body's `UUID` is not the user of the bearer token (jwt mode).
    UserMismatch = ("user_mismatch", FORBIDDEN),
    /// An admin operation asked by someone who is not an admin (or none mode has no
    /// ADMIN_TOKEN).
    AdminOnly = ("admin_only", FORBIDDEN),
    /// Another user holds the seat.
    HeldByAnother = ("held_by_another_user", FORBIDDEN),
    /// The user already holds MAX_HELD_SEATS seats of the event (`limit`).
    HoldLimitReached = ("hold_limit_reached", TOO_MANY_REQUESTS),
    /// This client address has its share of seat streams open (`limit`); close one, or retry
    /// after `Retry-After`.
    TooManyStreams = ("too_many_streams", TOO_MANY_REQUESTS),
    /// The process has as many seat streams open as it allows (`limit`); retry after
    /// `Retry-After`.
    StreamsFull = ("streams_full", SERVICE_UNAVAILABLE),
    /// The client (its address, or in jwt mode its user) sent more requests of this kind than
    /// its rate limit admits; retry after `Retry-After` (`RateLimit-Policy`, `RateLimit`).
    RateLimited = ("rate_limited", TOO_MANY_REQUESTS),
    /// The event's queue holds QUEUE_MAX_DEPTH jobs; retry after `Retry-After`.
    QueueFull = ("queue_full", SERVICE_UNAVAILABLE),
    /// Redis cannot be reached; retry after `Retry-After`. Also actix's own 503.
    ServiceUnavailable = ("service_unavailable", SERVICE_UNAVAILABLE),
    /// Redis is at its `maxmemory` and refuses writes (reads go on); retry after `Retry-After`.
    StoreFull = ("store_full", SERVICE_UNAVAILABLE),
    /// A fault of the service (the cause is logged, never answered). Also any 5xx of actix's
    /// own but a 503.
    InternalError = ("internal_error", INTERNAL_SERVER_ERROR),
    /// No resource at that path: the API's, or one of actix's own 404s (a Swagger UI file that
    /// does not exist).
    RouteNotFound = ("route_not_found", NOT_FOUND),
    /// The resource does not answer that method (`Allow` lists the ones it does).
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED),
    /// A request actix refused by itself before a handler read it: its 400, and any other 4xx
    /// of its own that no code above names (the answer keeps actix's status).
    BadRequest = ("bad_request", BAD_REQUEST),
}

impl Code {
    /// The code of an error answer actix made by itself (an extractor's, Swagger UI's), which
    /// keeps its status. Answers actix's HTTP/1 dispatcher writes before the app sees the
    /// request (a head too slow, too large or malformed: 408, 431, 400) have an empty body and
    /// never come here.
    pub fn of_actix_answer(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::SERVICE_UNAVAILABLE => Self::ServiceUnavailable,
            // 400, and the rest (414, 431, 415...) as the nearest documented code.
            status if status.is_client_error() => Self::BadRequest,
            _ => Self::InternalError,
        }
    }
}

/// The realm of `WWW-Authenticate` challenges.
const REALM: &str = "seat-reservation";

/// Why a request is not authenticated: the `error` and `error_description` of its
/// `WWW-Authenticate` challenge (RFC 6750 §3), and the sentence of its JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthProblem {
    /// No credentials at all: the challenge carries no error code (RFC 6750 §3.1).
    Missing,
    /// A token that does not verify; the text says why, for a person.
    Invalid(String),
}

impl AuthProblem {
    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> String {
        match self {
            Self::Missing => format!("Bearer realm=\"{REALM}\""),
            Self::Invalid(why) => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                why.replace(['"', '\\'], "'")
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedContentType,
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {secs} seconds")]
    BodyTimeout { secs: u64 },
    #[error("{message}")]
    InvalidField { field: String, message: String },
    #[error("no event with id `{id}`")]
    EventNotFound { id: String },
    #[error("no seat with id `{id}`")]
    SeatNotFound { id: String },
    #[error("job `{id}` is unknown or its result has expired")]
    JobNotFound { id: String },
    #[error("the seat is {current}, not {wanted}")]
    Conflict {
        current: SeatStatus,
        wanted: SeatStatus,
    },
    #[error("the seat is held by another user")]
    HeldByAnother,
    #[error("{}", match .0 {
        AuthProblem::Missing => "this needs `Authorization: Bearer <token>`",
        AuthProblem::Invalid(why) => why.as_str(),
    })]
    Unauthenticated(AuthProblem),
    #[error(
        "the body's UUID is not the user of the bearer token; leave UUID out, or send your own"
    )]
    UserMismatch,
    #[error("this address has {limit} seat streams open, the most allowed; close one first")]
    TooManyStreams { limit: usize },
    #[error("the service has {limit} seat streams open, the most it allows; try again shortly")]
    StreamsFull { limit: usize },
    #[error("{why}")]
    AdminOnly { why: &'static str },
    /// The app was assembled without a part a handler needs: a bug.
    #[error("internal error")]
    Misconfigured(&'static str),
    #[error("you already hold {limit} seats of this event, the most allowed")]
    HoldLimit { limit: u32 },
    #[error(
        "too many requests of this kind from this client; retry after {} s",
        .0.retry_after_secs
    )]
    RateLimited(RateLimitRefusal),
    #[error("the queue for this event is full ({depth} jobs waiting); try again shortly")]
    QueueFull { depth: u64 },
    #[error("the service cannot reach its data store; try again shortly")]
    Unavailable(#[source] queue_core::Error),
    #[error("the service's data store is full and takes no new writes; try again later")]
    StoreFull(#[source] queue_core::Error),
    /// queue-core failed in a way no retry mends (`Corrupt`: Redis answered with something the
    /// service never writes).
    #[error("internal error")]
    Internal(#[source] queue_core::Error),
    /// This process could not encode an answer (`what`: the metrics, a stream message): a bug,
    /// answered like any other internal error.
    #[error("internal error")]
    Encoding {
        what: &'static str,
        #[source]
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{method} is not allowed here")]
    MethodNotAllowed {
        method: String,
        /// The methods the resource answers, for the `Allow` header.
        allow: &'static str,
    },
}

/// Every error answer: a sentence for a person and a stable code, with details where useful.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"error": "the seat is On hold, not Available",
    "code": "seat_not_available", "currentStatus": "On hold"}))]
pub struct ErrorBody {
    pub error: String,
    /// One of [`Code::ALL`].
    #[schema(schema_with = code_schema)]
    pub code: &'static str,
    /// The request field that was invalid (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The seat's status when it is not the one the operation needs (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::dto::SeatStatusSchema>)]
    pub current_status: Option<SeatStatus>,
    /// The limit that was hit (413: bytes; 429: seats, or streams of one address; 503: streams
    /// of the service).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// The schema of [`ErrorBody::code`]: a string, described by the list of every code.
fn code_schema() -> utoipa::openapi::Object {
    let codes: Vec<&str> = Code::ALL.iter().map(|code| code.as_str()).collect();
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .description(Some(format!("Stable snake_case: {}.", codes.join(", "))))
        .build()
}

/// What an error answer carries besides its sentence and code.
#[derive(Debug, Default)]
struct Details<'a> {
    field: Option<&'a str>,
    current_status: Option<SeatStatus>,
    limit: Option<usize>,
}

impl ApiError {
    /// Maps a business refusal of a seat operation. `wanted` is the status the operation needs.
    pub fn from_refusal(refusal: Refusal, seat: &str, wanted: SeatStatus) -> Self {
        match refusal {
            Refusal::NoSuchSeat => Self::SeatNotFound {
                id: seat.to_owned(),
            },
            Refusal::Conflict { current } => Self::Conflict { current, wanted },
            Refusal::HeldByAnother => Self::HeldByAnother,
            Refusal::HoldLimit { limit } => Self::HoldLimit { limit },
        }
    }

    pub fn code(&self) -> Code {
        self.answer().0
    }

    /// The one table of error answers: each error's code (which brings its status) and the
    /// details its body carries.
    fn answer(&self) -> (Code, Details<'_>) {
        let none = Details::default;
        match self {
            Self::MalformedJson(_) => (Code::MalformedJson, none()),
            Self::UnsupportedContentType => (Code::UnsupportedContentType, none()),
            Self::PayloadTooLarge { limit } => (
                Code::PayloadTooLarge,
                Details {
                    limit: Some(*limit),
                    ..none()
                },
            ),
            Self::BodyTimeout { .. } => (Code::RequestTimeout, none()),
            Self::InvalidField { field, .. } => (
                Code::InvalidField,
                Details {
                    field: Some(field),
                    ..none()
                },
            ),
            Self::EventNotFound { .. } => (Code::EventNotFound, none()),
            Self::SeatNotFound { .. } => (Code::SeatNotFound, none()),
            Self::JobNotFound { .. } => (Code::JobNotFound, none()),
            Self::Conflict { current, wanted } => (
                match wanted {
                    SeatStatus::OnHold => Code::SeatNotOnHold,
                    SeatStatus::Available | SeatStatus::Reserved => Code::SeatNotAvailable,
                },
                Details {
                    current_status: Some(*current),
                    ..none()
                },
            ),
            Self::HeldByAnother => (Code::HeldByAnother, none()),
            Self::Unauthenticated(_) => (Code::Unauthenticated, none()),
            Self::UserMismatch => (Code::UserMismatch, none()),
            Self::TooManyStreams { limit } => (
                Code::TooManyStreams,
                Details {
                    limit: Some(*limit),
                    ..none()
                },
            ),
            Self::StreamsFull { limit } => (
                Code::StreamsFull,
                Details {
                    limit: Some(*limit),
                    ..none()
                },
            ),
            Self::AdminOnly { .. } => (Code::AdminOnly, none()),
            Self::HoldLimit { limit } => (
                Code::HoldLimitReached,
                Details {
                    limit: Some(*limit as usize),
                    ..none()
                },
            ),
            Self::RateLimited(_) => (Code::RateLimited, none()),
            Self::QueueFull { .. } => (Code::QueueFull, none()),
            Self::Unavailable(_) => (Code::ServiceUnavailable, none()),
            Self::StoreFull(_) => (Code::StoreFull, none()),
            Self::Internal(_) | Self::Encoding { .. } | Self::Misconfigured(_) => {
                (Code::InternalError, none())
            }
            Self::RouteNotFound { .. } => (Code::RouteNotFound, none()),
            Self::MethodNotAllowed { .. } => (Code::MethodNotAllowed, none()),
        }
    }
}

impl From<queue_core::Error> for ApiError {
    fn from(e: queue_core::Error) -> Self {
        match e {
            queue_core::Error::Unavailable(_) => Self::Unavailable(e),
            queue_core::Error::StoreFull(_) => Self::StoreFull(e),
            queue_core::Error::Corrupt(_)
            | queue_core::Error::Poisoned(_)
            | queue_core::Error::CrossSlot(_)
            | queue_core::Error::Misconfigured(_) => Self::Internal(e),
        }
    }
}

/// The head of an error answer: its status, and `Retry-After` on a 503.
fn error_head(status: StatusCode) -> HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS)));
    }
    response
}

/// The 503s of a Redis that is down, or full, logged at most once every [`LogThrottle::EVERY`].
static REDIS_DOWN: LogThrottle = LogThrottle::new();
static REDIS_FULL: LogThrottle = LogThrottle::new();

/// Lets one log line of a kind through every [`Self::EVERY`], counting the ones it holds back:
/// a flood of requests during an outage writes a line every few seconds, not one per request.
#[derive(Debug)]
struct LogThrottle {
    /// When the next line may go (ms since [`LogThrottle::clock`]'s start).
    next_ms: AtomicU64,
    /// Lines held back since the last one.
    held_back: AtomicU64,
}

impl LogThrottle {
    const EVERY: Duration = Duration::from_secs(5);

    const fn new() -> Self {
        Self {
            next_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    fn clock() -> u64 {
        static START: LazyLock<Instant> = LazyLock::new(Instant::now);
        u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `Some(lines held back since the last)` when this one is to be logged.
    fn admit(&self) -> Option<u64> {
        let now = Self::clock();
        let next = self.next_ms.load(Ordering::Relaxed);
        let due = now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + Self::EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
    }

    fn error_response(&self) -> HttpResponse {
        let (code, details) = self.answer();
        let status = code.status();
        if status.is_server_error() {
            // The body stays generic; the cause chain goes to the log. A Redis that is down or
            // full fails every request while it lasts: a line every few seconds says so.
            let throttle = match self {
                Self::Unavailable(_) => Some(&REDIS_DOWN),
                Self::StoreFull(_) => Some(&REDIS_FULL),
                _ => None,
            };
            match throttle.map(LogThrottle::admit) {
                None => tracing::error!(error = ?self, code = code.as_str(), "request failed"),
                Some(Some(not_logged)) => tracing::error!(
                    error = ?self,
                    code = code.as_str(),
                    not_logged,
                    "request failed (and `not_logged` more like it since the last such line)"
                ),
                Some(None) => {}
            }
        }
        let mut response = error_head(status);
        match self {
            Self::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            Self::TooManyStreams { .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS)));
            }
            Self::Unauthenticated(problem) => {
                if let Ok(challenge) = HeaderValue::from_str(&problem.challenge()) {
                    response.insert_header((header::WWW_AUTHENTICATE, challenge));
                }
            }
            Self::RateLimited(refusal) => {
                response.insert_header((header::RETRY_AFTER, refusal.retry_after_secs));
                for (name, value) in [
                    (POLICY_HEADER, &refusal.policy),
                    (STATE_HEADER, &refusal.state),
                ] {
                    if let Ok(value) = HeaderValue::from_str(value) {
                        response.insert_header((name, value));
                    }
                }
            }
            _ => {}
        }
        if matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            // The rest of the body is unread and may still be on its way: the connection cannot
            // serve another request, and keeping it open would let the client hold it.
            response.force_close();
        }
        response.json(ErrorBody {
            error: self.to_string(),
            code: code.as_str(),
            field: details.field.map(str::to_owned),
            current_status: details.current_status,
            limit: details.limit,
        })
    }
}

/// Gives any error answer that is not JSON yet (one produced by actix itself) the JSON shape,
/// with its status, actix's reason for it as the sentence, and the code
/// [`Code::of_actix_answer`] gives it.
pub fn json_error_body<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, _) = res.into_parts();
    let response = error_head(status).json(ErrorBody {
        error: status.canonical_reason().unwrap_or("Error").to_owned(),
        code: Code::of_actix_answer(status).as_str(),
        field: None,
        current_status: None,
        limit: None,
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, response).map_into_right_body(),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::Ordering;

    use actix_web::http::StatusCode;
    use actix_web::middleware::ErrorHandlers;
    use actix_web::test::{call_service, init_service, read_body_json, TestRequest};
    use actix_web::{web, App, HttpResponse, ResponseError};
    use queue_core::SeatStatus;

    use super::{json_error_body, ApiError, Code, LogThrottle};

    #[test]
    fn a_throttled_kind_of_line_goes_once_a_window_and_counts_the_ones_held_back() {
        let throttle = LogThrottle::new();
        assert_eq!(throttle.admit(), Some(0), "the first line goes");
        for _ in 0..99 {
            assert_eq!(throttle.admit(), None, "the next ones wait");
        }
        // As if the window had passed.
        throttle.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(
            throttle.admit(),
            Some(99),
            "and the next line says how many"
        );
        assert_eq!(throttle.admit(), None);
    }

    /// One error of each variant, and every status actix answers by itself.
    fn every_answer() -> Vec<(String, Code, StatusCode)> {
        let errors = [
            ApiError::MalformedJson("x".into()),
            ApiError::UnsupportedContentType,
            ApiError::PayloadTooLarge { limit: 1 },
            ApiError::BodyTimeout { secs: 1 },
            ApiError::InvalidField {
                field: "id".into(),
                message: "x".into(),
            },
            ApiError::EventNotFound { id: "x".into() },
            ApiError::SeatNotFound { id: "x".into() },
            ApiError::JobNotFound { id: "x".into() },
            ApiError::Conflict {
                current: SeatStatus::OnHold,
                wanted: SeatStatus::Available,
            },
            ApiError::Conflict {
                current: SeatStatus::Available,
                wanted: SeatStatus::OnHold,
            },
            ApiError::HeldByAnother,
            ApiError::Unauthenticated(super::AuthProblem::Missing),
            ApiError::UserMismatch,
            ApiError::AdminOnly { why: "a test" },
            ApiError::TooManyStreams { limit: 1 },
            ApiError::StreamsFull { limit: 1 },
            ApiError::HoldLimit { limit: 1 },
            ApiError::RateLimited(super::RateLimitRefusal {
                retry_after_secs: 1,
                policy: "\"holds\";q=1;w=1".into(),
                state: "\"holds\";r=0;t=1".into(),
            }),
            ApiError::QueueFull { depth: 1 },
            ApiError::Unavailable(queue_core::Error::Unavailable(fred::error::Error::new(
                fred::error::ErrorKind::IO,
                "down",
            ))),
            ApiError::StoreFull(queue_core::Error::StoreFull(fred::error::Error::new(
                fred::error::ErrorKind::Unknown,
                "OOM command not allowed when used memory > 'maxmemory'.",
            ))),
            ApiError::Encoding {
                what: "a test",
                reason: "cannot".into(),
            },
            ApiError::RouteNotFound {
                method: "GET".into(),
                path: "/x".into(),
            },
            ApiError::MethodNotAllowed {
                method: "PUT".into(),
                allow: "GET",
            },
        ];
        let actix = [400, 404, 405, 408, 413, 414, 415, 431, 500, 502, 503]
            .map(|s| StatusCode::from_u16(s).expect("a status"));
        errors
            .iter()
            .map(|e| (format!("{e:?}"), e.code(), e.status_code()))
            .chain(actix.map(|s| (format!("actix's {s}"), Code::of_actix_answer(s), s)))
            .collect()
    }

    #[test]
    fn every_documented_code_is_answered() {
        let answered: HashSet<Code> = every_answer().iter().map(|(_, code, _)| *code).collect();
        let never: Vec<&str> = Code::ALL
            .iter()
            .filter(|code| !answered.contains(code))
            .map(|code| code.as_str())
            .collect();
        assert!(
            never.is_empty(),
            "codes listed but never answered: {never:?}"
        );
    }

    #[test]
    fn codes_are_spelled_once_and_keep_their_status() {
        let spellings: HashSet<&str> = Code::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(
            spellings.len(),
            Code::ALL.len(),
            "no two codes share a spelling"
        );
        for (what, code, status) in every_answer() {
            // Only actix's statuses that no code names keep a status of their own.
            let named = Code::ALL.iter().any(|c| c.status() == status);
            if named {
                assert_eq!(code.status(), status, "{what} answers {}", code.as_str());
            }
        }
    }

    #[test]
    fn the_schema_of_code_lists_every_code() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(super::ErrorBody::schema()).expect("a schema");
        let description = schema["properties"]["code"]["description"]
            .as_str()
            .expect("code is described");
        let listed: Vec<&str> = description
            .trim_start_matches("Stable snake_case: ")
            .trim_end_matches('.')
            .split(", ")
            .collect();
        let all: Vec<&str> = Code::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(listed, all, "the OpenAPI description of `code`");
    }

    #[actix_web::test]
    async fn an_answer_of_actix_gets_the_json_shape_and_a_documented_code() {
        let app = init_service(
            App::new()
                .wrap(ErrorHandlers::new().default_handler(json_error_body))
                .route("/gone", web::get().to(HttpResponse::NotFound))
                .route("/busy", web::get().to(HttpResponse::ServiceUnavailable)),
        )
        .await;
        let res = call_service(&app, TestRequest::get().uri("/gone").to_request()).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = read_body_json(res).await;
        assert_eq!(
            body,
            serde_json::json!({"error": "Not Found", "code": "route_not_found"})
        );
        let res = call_service(&app, TestRequest::get().uri("/busy").to_request()).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "a 503 says when to retry"
        );
        let body: serde_json::Value = read_body_json(res).await;
        assert_eq!(
            body,
            serde_json::json!({"error": "Service Unavailable", "code": "service_unavailable"})
        );
    }
}
