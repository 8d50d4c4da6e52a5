use actix_web::{web, HttpResponse};
use queue_core::{Enqueued, JobKind, Refusal, Seat, SeatId, SeatStatus};

use crate::dto::{QueueResponse, SeatBody, SeatMessage, SeatRequest};
use crate::error::{ApiError, ErrorBody};
use crate::json::JsonBody;
use crate::routes::parse_id;
use crate::state::AppState;
use crate::waiters::MAX_WAIT_SECS;

/// One seat as it is now.
#[utoipa::path(get, path = "/seats/get/{id}", tag = "seats", operation_id = "get_seat",
    params(("id" = String, Path, description = "`<event id>:<seat number>`, the number from 1 to 10,000", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:7",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:([1-9][0-9]{0,3}|10000)$")),
    responses(
        (status = 200, description = "The seat", body = SeatBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 422, description = "A malformed id", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: SeatId = parse_id(&path, "id")?;
    match state.store.seat(id).await? {
        Some(seat) => Ok(HttpResponse::Ok().json(SeatBody::from(&seat))),
        None => Err(ApiError::SeatNotFound { id: id.to_string() }),
    }
}

/// Hold a seat: pre-checked now, applied by a worker in acceptance order.
#[utoipa::path(post, path = "/seats/hold", tag = "seats", request_body = SeatRequest,
    responses(
        (status = 202, description = "Accepted: poll `statusEndpoint`", body = QueueResponse,
            headers(("Location" = String, description = "Equal to `statusEndpoint`"))),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 409, description = "The seat is not Available now (`currentStatus`)", body = ErrorBody),
        (status = 503, description = "The queue is full or Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn hold(
    state: web::Data<AppState>,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    enqueue(&state, JobKind::Hold, body.0).await
}

/// Reserve a seat the user holds: pre-checked now, applied by a worker in acceptance order.
#[utoipa::path(post, path = "/seats/reserve", tag = "seats", request_body = SeatRequest,
    responses(
        (status = 202, description = "Accepted: poll `statusEndpoint`", body = QueueResponse,
            headers(("Location" = String, description = "Equal to `statusEndpoint`"))),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 403, description = "Another user holds the seat", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (`currentStatus`)", body = ErrorBody),
        (status = 503, description = "The queue is full or Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn reserve(
    state: web::Data<AppState>,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    enqueue(&state, JobKind::Reserve, body.0).await
}

async fn enqueue(
    state: &AppState,
    kind: JobKind,
    req: SeatRequest,
) -> Result<HttpResponse, ApiError> {
    let wanted = match kind {
        JobKind::Hold => SeatStatus::Available,
        JobKind::Reserve => SeatStatus::OnHold,
    };
    // The key first: a job is accepted only when its id can be handed out.
    let job_ids = state.job_ids.get(&state.store).await?;
    match state.enqueuer.enqueue(kind, req.id, req.user).await? {
        Enqueued::Accepted { job, position } => {
            state.metrics.job_accepted(kind);
            let job_id = job_ids.public(job);
            let endpoint = format!("/seats/job/{job_id}/status");
            let body = QueueResponse {
                message: accepted_message(kind),
                job_id,
                position,
                estimated_wait_time: state.drain.estimate_secs(position),
                status_endpoint: endpoint.clone(),
            };
            Ok(HttpResponse::Accepted()
                .insert_header(("Location", endpoint))
                .json(body))
        }
        Enqueued::Refused(refusal) => {
            Err(ApiError::from_refusal(refusal, &req.id.to_string(), wanted))
        }
        Enqueued::QueueFull { depth } => Err(ApiError::QueueFull { depth }),
    }
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
    responses((status = 200, description = "Refreshed: the seat with its new `expiresAt`", body = SeatMessage),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 403, description = "Another user holds the seat", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (a lapsed hold is not)", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn refresh(
    state: web::Data<AppState>,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let outcome = state.store.refresh(req.id, req.user).await?;
    hold_answer(outcome, req.id, "Hold refreshed")
}

/// Give a live hold back: the seat is Available at once.
#[utoipa::path(post, path = "/seats/release", tag = "seats", request_body = SeatRequest,
    responses((status = 200, description = "Released", body = SeatMessage),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 403, description = "Another user holds the seat", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (a lapsed hold is not)", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn release(
    state: web::Data<AppState>,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let outcome = state.store.release(req.id, req.user).await?;
    hold_answer(outcome, req.id, "Hold released")
}

/// The answer of a synchronous operation on a live hold: 200 with the seat, or the refusal.
fn hold_answer(
    outcome: Result<Seat, Refusal>,
    seat: SeatId,
    message: &str,
) -> Result<HttpResponse, ApiError> {
    match outcome {
        Ok(seat) => Ok(HttpResponse::Ok().json(SeatMessage {
            message: message.to_owned(),
            seat: SeatBody::from(&seat),
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
    responses((status = 200, description = "Refreshed: the seat with its new `expiresAt`", body = SeatMessage),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 403, description = "Another user holds the seat", body = ErrorBody),
        (status = 404, description = "No such event or seat", body = ErrorBody),
        (status = 409, description = "The seat is not On hold (a lapsed hold is not)", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn hold_refresh(
    state: web::Data<AppState>,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    refresh(state, body).await
}
