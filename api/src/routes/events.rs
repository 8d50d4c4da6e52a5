use actix_web::{web, HttpResponse};
use queue_core::EventId;

use crate::dto::{CreateEvent, EventBody, EventList, SeatBody, SeatList};
use crate::error::{ApiError, ErrorBody};
use crate::identity::{Admin, EventCreator};
use crate::json::JsonBody;
use crate::routes::parse_id;
use crate::state::AppState;

/// Create an event; every seat exists, Available, when the 201 is sent.
#[utoipa::path(post, path = "/events/create", tag = "events", request_body = CreateEvent,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = EventBody,
            headers(("Location" = String, description = "The event's URL"))),
        (status = 400, description = "Malformed JSON or not `application/json`", body = ErrorBody),
        (status = 401, description = "jwt mode (admin only): no bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 403, description = "jwt mode: the token is not an admin's", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 413, description = "The body is over the size limit", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the time limit (the connection is closed)", body = ErrorBody),
        (status = 503, description = "Redis is unavailable (`service_unavailable`), or out of memory and refusing writes (`store_full`); retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn create(
    state: web::Data<AppState>,
    _creator: EventCreator,
    body: JsonBody<CreateEvent>,
) -> Result<HttpResponse, ApiError> {
    let JsonBody(req) = body;
    let event = state.store.create_event(&req.name, req.total_seats).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/events/{}", event.id)))
        .json(EventBody::created(&event)))
}

/// The most recently created events, newest first, with their seat counts now (at most 100).
#[utoipa::path(get, path = "/events", tag = "events",
    responses(
        (status = 200, description = "The events", body = EventList),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let events = state.store.recent_events(LISTED_EVENTS).await?;
    Ok(HttpResponse::Ok().json(EventList {
        events: events.iter().map(EventBody::with_counts).collect(),
    }))
}

/// Most events `GET /events` lists.
const LISTED_EVENTS: usize = 100;

/// An event with its seat counts now.
#[utoipa::path(get, path = "/events/{id}", tag = "events", operation_id = "get_event",
    params(("id" = String, Path, description = "The event's id (a UUID)", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 200, description = "The event", body = EventBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 422, description = "A malformed id", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: EventId = parse_id(&path, "id")?;
    match state.store.event(id).await? {
        Some(event) => Ok(HttpResponse::Ok().json(EventBody::with_counts(&event))),
        None => Err(ApiError::EventNotFound { id: id.to_string() }),
    }
}

/// The seats of an event that are Available now (a lapsed hold is Available).
#[utoipa::path(get, path = "/seats/list/{eventId}", tag = "seats",
    params(("eventId" = String, Path, description = "The event's id (a UUID)", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 200, description = "The Available seats", body = SeatList),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 422, description = "A malformed id", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn list_seats(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: EventId = parse_id(&path, "eventId")?;
    let Some(list) = state.store.available_seats(id).await? else {
        return Err(ApiError::EventNotFound { id: id.to_string() });
    };
    let seats: Vec<SeatBody> = list.seats.into_iter().map(SeatBody::available).collect();
    Ok(HttpResponse::Ok().json(SeatList {
        total: seats.len(),
        event: EventBody::with_counts(&list.event),
        seats,
    }))
}

/// Delete an event (admin only): the event and every key of it go, its waiting jobs end
/// `failed` ("the event was deleted"), its open streams end, and later reads answer 404.
///
/// In none mode the bearer token is ADMIN_TOKEN (without it set, every call is refused with
/// 403 `admin_only`); in jwt mode, a token with `role: "admin"` or `"admin"` in `roles`. For
/// JOB_RESULT_TTL afterwards, the status of any of its jobs reads `failed` with that reason.
#[utoipa::path(delete, path = "/events/{id}", tag = "events", operation_id = "delete_event",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The event's id (a UUID)", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses(
        (status = 204, description = "Deleted: the event and all its keys are gone"),
        (status = 401, description = "No bearer token, or one that does not verify (`WWW-Authenticate` says why)", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "The RFC 6750 challenge"))),
        (status = 403, description = "Not an admin (`admin_only`): jwt mode, a token without the admin role; none mode, ADMIN_TOKEN is not set", body = ErrorBody),
        (status = 404, description = "No such event (or it was deleted already)", body = ErrorBody),
        (status = 422, description = "A malformed id", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn delete(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: EventId = parse_id(&path, "id")?;
    if !state.store.delete_event(id).await? {
        return Err(ApiError::EventNotFound { id: id.to_string() });
    }
    // This process's streams of the event end now; other processes' hubs notice within a second.
    state.changes.forget(id);
    state.waiters.forget_event(id);
    Ok(HttpResponse::NoContent().finish())
}
