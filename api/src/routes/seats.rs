use actix_web::{web, HttpResponse};
use queue_core::{Enqueued, JobKind, Refusal, Seat, SeatId, SeatStatus};

use crate::dto::{QueueResponse, SeatBody, SeatMessage, SeatRequest};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::routes::parse_id;
use crate::state::AppState;

/// GET /seats/get/{id}
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: SeatId = parse_id(&path, "id")?;
    match state.store.seat(id).await? {
        Some(seat) => Ok(HttpResponse::Ok().json(SeatBody::from(&seat))),
        None => Err(ApiError::NotFound {
            what: "seat",
            id: id.to_string(),
        }),
    }
}

/// POST /seats/hold
pub async fn hold(
    state: web::Data<AppState>,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    enqueue(&state, JobKind::Hold, body.0).await
}

/// POST /seats/reserve
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
    match state.store.enqueue(kind, req.id, req.user).await? {
        Enqueued::Accepted { job, position } => {
            let endpoint = format!("/seats/job/{job}/status");
            let body = QueueResponse {
                message: format!("{} request accepted", kind.as_str()),
                job_id: job.to_string(),
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

/// POST /seats/refresh and POST /seats/hold/refresh
pub async fn refresh(
    state: web::Data<AppState>,
    body: JsonBody<SeatRequest>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let outcome = state.store.refresh(req.id, req.user).await?;
    hold_answer(outcome, req.id, "Hold refreshed")
}

/// POST /seats/release
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
