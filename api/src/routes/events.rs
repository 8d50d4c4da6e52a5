use actix_web::{web, HttpResponse};
use queue_core::clock::wall_clock_ms;
use queue_core::{EventCursor, EventId, Millis};

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
    if let Some(ends) = req.ends_at {
        check_ends_at(ends, wall_clock_ms())?;
    }
    let event = state
        .store
        .create_event(&req.name, req.total_seats, req.ends_at)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/events/{}", event.id)))
        .json(EventBody::created(&event)))
}

/// How far ahead `endsAt` may be.
const MAX_ENDS_AHEAD_MS: Millis = 2 * 366 * 24 * 3_600_000;

/// `endsAt` must be after `now` and at most [`MAX_ENDS_AHEAD_MS`] ahead.
fn check_ends_at(ends: Millis, now: Millis) -> Result<(), ApiError> {
    if ends <= now || ends - now > MAX_ENDS_AHEAD_MS {
        return Err(ApiError::InvalidField {
            field: "endsAt".to_owned(),
            message: "endsAt must be in the future and at most two years ahead".to_owned(),
        });
    }
    Ok(())
}

/// The events, newest first, with their seat counts now, a page at a time: `limit` of them (1
/// to 100, default 100), from the start or from the `cursor` the previous page gave as
/// `nextCursor`. Events created while a client pages through appear on no later page, and no
/// event is listed twice; one deleted meanwhile is left out.
#[utoipa::path(get, path = "/events", tag = "events",
    params(
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 100 (default 100)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "The previous page's `nextCursor`; without it, the first page", pattern = "^[0-9a-f]{1,15}\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    ),
    responses(
        (status = 200, description = "The events; `nextCursor` when more follow", body = EventList),
        (status = 422, description = "A bad `limit` or `cursor`, named in `field`", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = page_params(req.query_string())?;
    let page = state.store.events_page(limit, cursor).await?;
    Ok(HttpResponse::Ok().json(EventList {
        events: page.events.iter().map(EventBody::with_counts).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// Most events one page of `GET /events` lists, and its default size.
const MAX_PAGE: u32 = 100;

/// `limit` and `cursor` of a query string, each at most once. Read by hand rather than with
/// `web::Query`, whose errors are bare 400s: every bad query gets a 422 naming the field.
fn page_params(query: &str) -> Result<(u32, Option<EventCursor>), ApiError> {
    let invalid = |field: &str, message: &str| ApiError::InvalidField {
        field: field.to_owned(),
        message: message.to_owned(),
    };
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(|_| invalid("limit", "the query string is not valid URL encoding"))?
        .into_inner();
    let once = |name: &str| -> Result<Option<&str>, ApiError> {
        let mut values = pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let value = values.next();
        if values.next().is_some() {
            return Err(invalid(name, &format!("{name} must be given at most once")));
        }
        Ok(value)
    };
    let limit = match once("limit")? {
        None => MAX_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| invalid("limit", "limit must be a whole number from 1 to 100"))?,
    };
    let cursor = match once("cursor")? {
        None => None,
        Some(raw) => Some(EventCursor::parse(raw).ok_or_else(|| {
            invalid("cursor", "cursor must be a nextCursor of an earlier answer")
        })?),
    };
    Ok((limit, cursor))
}

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

#[cfg(test)]
mod tests {
    use super::{check_ends_at, page_params, MAX_ENDS_AHEAD_MS};
    use actix_web::ResponseError;
    use queue_core::{EventCursor, EventId};

    #[test]
    fn ends_at_must_be_ahead_and_within_two_years() {
        let now = 1_800_000_000_000;
        assert!(check_ends_at(now + 1, now).is_ok());
        assert!(check_ends_at(now + MAX_ENDS_AHEAD_MS, now).is_ok());
        for bad in [now, now - 1, now + MAX_ENDS_AHEAD_MS + 1] {
            let err = check_ends_at(bad, now).expect_err("refused");
            assert_eq!(err.status_code().as_u16(), 422, "{bad}");
        }
    }

    #[test]
    fn limit_and_cursor_are_read_once_and_checked() {
        let cursor = EventCursor {
            created: 1_800_000_000_000,
            id: EventId::new_random(),
        };
        let (limit, none) = page_params("").expect("no query");
        assert_eq!(
            (limit, none),
            (100, None),
            "the first page of 100 by default"
        );
        let query = format!("limit=7&cursor={}", cursor.encode());
        assert_eq!(page_params(&query).expect("both"), (7, Some(cursor)));
        for bad in [
            "limit=0",
            "limit=101",
            "limit=x",
            "limit=1&limit=2",
            "cursor=nope",
            "cursor=",
            "limit=%zz",
        ] {
            let err = page_params(bad).expect_err("refused");
            assert_eq!(err.status_code().as_u16(), 422, "{bad}");
        }
    }
}
