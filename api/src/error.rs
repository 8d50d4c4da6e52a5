//! Every error answer of the API: one JSON shape, one exhaustive mapping to status codes.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use queue_core::{Refusal, SeatStatus};
use serde::Serialize;

/// Seconds a client is told to wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

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
    #[error("you already hold {limit} seats of this event, the most allowed")]
    HoldLimit { limit: u32 },
    #[error("the queue for this event is full ({depth} jobs waiting); try again shortly")]
    QueueFull { depth: u64 },
    #[error("the service cannot reach its data store; try again shortly")]
    Unavailable(#[source] queue_core::Error),
    #[error("internal error")]
    Internal(#[source] queue_core::Error),
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
    /// Stable snake_case: malformed_json, unsupported_content_type, payload_too_large,
    /// request_timeout, invalid_field, event_not_found, seat_not_found, job_not_found, seat_not_available,
    /// seat_not_on_hold, held_by_another_user, hold_limit_reached, queue_full,
    /// service_unavailable, internal_error, route_not_found, method_not_allowed.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// The request field that was invalid (422).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The seat's status when it is not the one the operation needs (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::dto::SeatStatusSchema>)]
    pub current_status: Option<SeatStatus>,
    /// The limit that was hit (413: bytes; 429: seats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
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

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BodyTimeout { .. } => "request_timeout",
            Self::InvalidField { .. } => "invalid_field",
            Self::EventNotFound { .. } => "event_not_found",
            Self::SeatNotFound { .. } => "seat_not_found",
            Self::JobNotFound { .. } => "job_not_found",
            Self::Conflict {
                wanted: SeatStatus::OnHold,
                ..
            } => "seat_not_on_hold",
            Self::Conflict { .. } => "seat_not_available",
            Self::HeldByAnother => "held_by_another_user",
            Self::HoldLimit { .. } => "hold_limit_reached",
            Self::QueueFull { .. } => "queue_full",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
            Self::RouteNotFound { .. } => "route_not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    fn body(&self) -> ErrorBody {
        let mut body = ErrorBody {
            error: self.to_string(),
            code: self.code(),
            field: None,
            current_status: None,
            limit: None,
        };
        match self {
            Self::InvalidField { field, .. } => body.field = Some(field.clone()),
            Self::Conflict { current, .. } => body.current_status = Some(*current),
            Self::PayloadTooLarge { limit } => body.limit = Some(*limit),
            Self::HoldLimit { limit } => body.limit = Some(*limit as usize),
            _ => {}
        }
        body
    }
}

impl From<queue_core::Error> for ApiError {
    fn from(e: queue_core::Error) -> Self {
        match e {
            queue_core::Error::Unavailable(_) => Self::Unavailable(e),
            queue_core::Error::Corrupt(_) | queue_core::Error::Poisoned(_) => Self::Internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::UnsupportedContentType => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::EventNotFound { .. }
            | Self::SeatNotFound { .. }
            | Self::JobNotFound { .. }
            | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::HeldByAnother => StatusCode::FORBIDDEN,
            Self::HoldLimit { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::QueueFull { .. } | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            // The body stays generic; the cause chain goes to the log.
            tracing::error!(error = ?self, code = self.code(), "request failed");
        }
        let mut response = HttpResponse::build(status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS)));
        }
        if let Self::MethodNotAllowed { allow, .. } = self {
            response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        if matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            // The rest of the body is unread and may still be on its way: the connection cannot
            // serve another request, and keeping it open would let the client hold it.
            response.force_close();
        }
        response.json(self.body())
    }
}
