use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpRequest, HttpResponse};
use queue_core::{Enqueued, JobKind, Refusal, Seat, SeatId, SeatStatus, UserId};

use crate::dto::{QueueResponse, SeatBody, SeatMessage, SeatRequest};
use crate::error::{ApiError, ErrorBody};
use crate::identity::Caller;
use crate::json::JsonBody;
use crate::routes::parse_id;
use crate::state::AppState;
use crate::waiters::MAX_WAIT_SECS;

/// One seat as it is now.
#[utoipa::path(get, path = "/seats/get/{id}", tag = "seats", operation_id = "get_seat",
    security((), ("bearer" = [])),
    params(("X-User-Id" = Option<String>, Header, format = Uuid, nullable = false,
            description = "none mode: the asker's user id, to see it on the asker's own seat (everyone else sees `\"UUID\": \"\"`)"),
        ("id" = String, Path, description = "`<event id>:<seat number>`, the number from 1 to 10,000", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:7",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:([1-9][0-9]{0,3}|10000)$")),
    responses(
        (status = 200, description = "The seat; `UUID` is the holder's only when the asker is the holder", body = SeatBody),
        (status = 401, description = "jwt mode: no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 422, description = "A malformed id or `X-User-Id`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id: SeatId = parse_id(&path, "id")?;
    let viewer = state.identity.viewer(req.headers())?;
    match state.store.seat(id).await? {
        Some(seat) => Ok(HttpResponse::Ok().json(SeatBody::shown_to(&seat, viewer))),
        None => Err(ApiError::SeatNotFound { id: id.to_string() }),
    }
}

/// Hold a seat: pre-checked now, applied by a worker in acceptance order.
#[utoipa::path(post, path = "/seats/hold", tag = "seats", request_body = SeatRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: poll `statusEndpoint`", body = QueueResponse,
            headers(("Location" = String, description = "Equal to `statusEndpoint`"))),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 401, description = "jwt mode: no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 403, description = "jwt mode: the body's `UUID` is not the token's user (`user_mismatch`)", body = ErrorBody),
        (status = 409, description = "The seat is not Available now (`currentStatus`)", body = ErrorBody),
        (status = 503, description = "The queue is full (`queue_full`), Redis is unavailable (`service_unavailable`), or Redis is out of memory and refuses writes (`store_full`); retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn hold(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let user = state.identity.actor(&caller, req.user)?;
    enqueue(&state, JobKind::Hold, req.id, user).await
}

/// Reserve a seat the user holds: pre-checked now, applied by a worker in acceptance order.
#[utoipa::path(post, path = "/seats/reserve", tag = "seats", request_body = SeatRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: poll `statusEndpoint`", body = QueueResponse,
            headers(("Location" = String, description = "Equal to `statusEndpoint`"))),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 401, description = "jwt mode: no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 403, description = "Another user holds the seat; or, in jwt mode, the body's `UUID` is not the token's user (`user_mismatch`)", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (`currentStatus`)", body = ErrorBody),
        (status = 503, description = "The queue is full (`queue_full`), Redis is unavailable (`service_unavailable`), or Redis is out of memory and refuses writes (`store_full`); retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn reserve(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let user = state.identity.actor(&caller, req.user)?;
    enqueue(&state, JobKind::Reserve, req.id, user).await
}

async fn enqueue(
    state: &AppState,
    kind: JobKind,
    seat: SeatId,
    user: UserId,
) -> Result<HttpResponse, ApiError> {
    let wanted = match kind {
        JobKind::Hold => SeatStatus::Available,
        JobKind::Reserve => SeatStatus::OnHold,
    };
    // The key first: a job is accepted only when its id can be handed out.
    let job_ids = state.job_ids.get(&state.store).await?;
    // Taken before the job goes to Redis: its acceptance then tells that the event's later jobs
    // are announced while this process listens (`Waiters::accepted`).
    let ticket = state.waiters.ticket();
    match state.enqueuer.enqueue(kind, seat, user).await? {
        Enqueued::Accepted { job, position } => {
            state.waiters.accepted(job, ticket);
            state.metrics.job_accepted(kind);
            let job_id = job_ids.public(job);
            let endpoint = status_endpoint(&job_id);
            let body = QueueResponse {
                message: accepted_message(kind),
                job_id,
                position,
                estimated_wait_time: state.drain.estimate_secs(position),
                status_endpoint: endpoint.clone(),
            };
            Ok(HttpResponse::Accepted()
                .insert_header((header::LOCATION, endpoint))
                .content_type(ContentType::json())
                .body(body.to_json()))
        }
        Enqueued::Refused(refusal) => {
            Err(ApiError::from_refusal(refusal, &seat.to_string(), wanted))
        }
        Enqueued::QueueFull { depth } => Err(ApiError::QueueFull { depth }),
    }
}

/// `/seats/job/{jobId}/status` of a job id, with `push_str` rather than `format!`, for every
/// accepted job.
fn status_endpoint(job_id: &str) -> String {
    const BEFORE: &str = "/seats/job/";
    const AFTER: &str = "/status";
    let mut endpoint = String::with_capacity(BEFORE.len() + job_id.len() + AFTER.len());
    endpoint.push_str(BEFORE);
    endpoint.push_str(job_id);
    endpoint.push_str(AFTER);
    endpoint
}

/// The message of a 202.
fn accepted_message(kind: JobKind) -> &'static str {
    macro_rules! message {
        ($kind:literal) => {
            concat!(
                $kind,
                " request accepted; GET statusEndpoint for its status, with ?wait=N (up to 30 s) \
                 to have the answer as soon as it finishes"
            )
        };
    }
    const _: () = assert!(MAX_WAIT_SECS == 30, "the message names the longest wait");
    match kind {
        JobKind::Hold => message!("HOLD_SEAT"),
        JobKind::Reserve => message!("RESERVE_SEAT"),
    }
}

/// Extend the user's live hold to now + HOLD_TTL, capped at MAX_HOLD_LIFETIME from its start.
#[utoipa::path(post, path = "/seats/refresh", tag = "seats", request_body = SeatRequest,
    security((), ("bearer" = [])),
    responses((status = 200, description = "Refreshed: the seat with its new `expiresAt`", body = SeatMessage),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 401, description = "jwt mode: no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 403, description = "Another user holds the seat; or, in jwt mode, the body's `UUID` is not the token's user (`user_mismatch`)", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (a lapsed hold is not)", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable (`service_unavailable`), or out of memory and refusing writes (`store_full`); retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn refresh(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let user = state.identity.actor(&caller, req.user)?;
    let outcome = state.store.refresh(req.id, user).await?;
    hold_answer(outcome, req.id, user, "Hold refreshed")
}

/// Give a live hold back: the seat is Available at once.
#[utoipa::path(post, path = "/seats/release", tag = "seats", request_body = SeatRequest,
    security((), ("bearer" = [])),
    responses((status = 200, description = "Released", body = SeatMessage),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 401, description = "jwt mode: no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 403, description = "Another user holds the seat; or, in jwt mode, the body's `UUID` is not the token's user (`user_mismatch`)", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (a lapsed hold is not)", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable (`service_unavailable`), or out of memory and refusing writes (`store_full`); retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn release(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let user = state.identity.actor(&caller, req.user)?;
    let outcome = state.store.release(req.id, user).await?;
    hold_answer(outcome, req.id, user, "Hold released")
}

/// The answer of a synchronous operation on a live hold: 200 with the seat, or the refusal.
fn hold_answer(
    outcome: Result<Seat, Refusal>,
    seat: SeatId,
    user: UserId,
    message: &str,
) -> Result<HttpResponse, ApiError> {
    match outcome {
        Ok(seat) => Ok(HttpResponse::Ok().json(SeatMessage {
            message: message.to_owned(),
            seat: SeatBody::shown_to(&seat, Some(user)),
        })),
        Err(refusal) => Err(ApiError::from_refusal(
            refusal,
            &seat.to_string(),
            SeatStatus::OnHold,
        )),
    }
}

/// Same as `POST /seats/refresh` (the original design's second path).
#[utoipa::path(post, path = "/seats/hold/refresh", tag = "seats", request_body = SeatRequest,
    security((), ("bearer" = [])),
    responses((status = 200, description = "Refreshed: the seat with its new `expiresAt`", body = SeatMessage),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 401, description = "jwt mode: no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 403, description = "Another user holds the seat; or, in jwt mode, the body's `UUID` is not the token's user (`user_mismatch`)", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (a lapsed hold is not)", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn hold_refresh(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    refresh(state, caller, body).await
}
