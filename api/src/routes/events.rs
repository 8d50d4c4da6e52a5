use actix_web::{web, HttpResponse};
use queue_core::EventId;

use crate::dto::{CreateEvent, EventBody, SeatBody, SeatList};
use crate::error::ApiError;
use crate::json::JsonBody;
use crate::routes::parse_id;
use crate::state::AppState;

/// POST /events/create
pub async fn create(
    state: web::Data<AppState>,
    body: JsonBody<CreateEvent>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let event = state.store.create_event(&req.name, req.total_seats).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/events/{}", event.id)))
        .json(EventBody::created(&event)))
}

/// GET /events/{id}
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: EventId = parse_id(&path, "id")?;
    match state.store.event(id).await? {
        Some(event) => Ok(HttpResponse::Ok().json(EventBody::with_counts(&event))),
        None => Err(ApiError::NotFound {
            what: "event",
            id: id.to_string(),
        }),
    }
}

/// GET /seats/list/{eventId}
pub async fn list_seats(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: EventId = parse_id(&path, "eventId")?;
    let Some(list) = state.store.available_seats(id).await? else {
        return Err(ApiError::NotFound {
            what: "event",
            id: id.to_string(),
        });
    };
    let seats: Vec<SeatBody> = list.seats.into_iter().map(SeatBody::available).collect();
    Ok(HttpResponse::Ok().json(SeatList {
        total: seats.len(),
        event: EventBody::with_counts(&list.event),
        seats,
    }))
}
