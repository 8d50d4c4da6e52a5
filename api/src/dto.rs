//! The JSON shapes of docs/CONTRACT.md §2, and their conversion from queue-core types.

use std::time::{Duration, UNIX_EPOCH};

use queue_core::{
    Event, EventName, JobKind, JobState, JobView, Millis, Refusal, Seat, SeatCount, SeatId,
    SeatStatus, UserId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A new event.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "Opening night", "totalSeats": 100}))]
pub struct CreateEvent {
    /// Not blank, at most 200 characters, no control characters.
    #[schema(value_type = String, min_length = 1, max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub name: EventName,
    /// An integer from 10 to 10,000 (not a string, not a fraction; `50.0` is the integer 50).
    #[schema(value_type = u32, minimum = 10, maximum = 10000)]
    #[serde(deserialize_with = "seat_count")]
    pub total_seats: SeatCount,
}

/// `totalSeats`: a JSON number that is an integer. JSON does not tell `50` from `50.0` (JSON
/// Schema's `integer` accepts both), so neither does the API; `10.5` and `"50"` are refused.
fn seat_count<'de, D: serde::Deserializer<'de>>(de: D) -> Result<SeatCount, D::Error> {
    use serde::de::Error;
    let number = serde_json::Number::deserialize(de)?;
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        // Exact: every integer up to 2^53 is an f64, and the range check comes next.
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    match whole {
        Some(n) => SeatCount::try_from(n).map_err(D::Error::custom),
        None => Err(D::Error::custom(format!(
            "totalSeats must be an integer from {} to {}, got {number}",
            queue_core::ids::MIN_SEATS,
            queue_core::ids::MAX_SEATS
        ))),
    }
}

/// The body of hold, reserve, refresh and release.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"id": EXAMPLE_SEAT, "UUID": EXAMPLE_USER}))]
pub struct SeatRequest {
    /// The seat: `<event id>:<seat number>`, the number from 1 to 10,000.
    #[schema(value_type = String, pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:([1-9][0-9]{0,3}|10000)$")]
    pub id: SeatId,
    /// The user's id, a UUID.
    #[serde(rename = "UUID")]
    #[schema(value_type = String, format = Uuid)]
    pub user: UserId,
}

pub const EXAMPLE_EVENT: &str = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4";
pub const EXAMPLE_SEAT: &str = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:7";
pub const EXAMPLE_JOB: &str = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:j42";
pub const EXAMPLE_USER: &str = "0b6f6a8e-54a4-4b43-9a71-3f0c2f2f5c11";

/// A seat's status (the schema of `queue_core::SeatStatus`, which knows nothing of OpenAPI).
#[derive(Debug, Serialize, ToSchema)]
pub enum SeatStatusSchema {
    Available,
    #[serde(rename = "On hold")]
    OnHold,
    Reserved,
}

/// What a job does (the schema of `queue_core::JobKind`).
#[derive(Debug, Serialize, ToSchema)]
pub enum JobKindSchema {
    #[serde(rename = "HOLD_SEAT")]
    Hold,
    #[serde(rename = "RESERVE_SEAT")]
    Reserve,
}

/// An event. `available`, `onHold` and `reserved` are counts as of the request, present on
/// `GET /events/{id}` and in seat lists.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"id": EXAMPLE_EVENT, "name": "Opening night", "totalSeats": 100,
    "available": 93, "onHold": 5, "reserved": 2}))]
pub struct EventBody {
    pub id: String,
    pub name: String,
    pub total_seats: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_hold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<u32>,
}

impl EventBody {
    /// The event as created (`POST /events/create`): no counts.
    pub fn created(e: &Event) -> Self {
        Self {
            id: e.id.to_string(),
            name: e.name.clone(),
            total_seats: e.total_seats,
            available: None,
            on_hold: None,
            reserved: None,
        }
    }

    /// The event with its counts (`GET /events/{id}`).
    pub fn with_counts(e: &Event) -> Self {
        Self {
            available: Some(e.available),
            on_hold: Some(e.on_hold),
            reserved: Some(e.reserved),
            ..Self::created(e)
        }
    }
}

/// A seat.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": EXAMPLE_SEAT, "eventId": EXAMPLE_EVENT, "UUID": EXAMPLE_USER,
    "status": "On hold", "expiresAt": "2026-11-21T18:00:00.000Z"}))]
pub struct SeatBody {
    pub id: String,
    #[serde(rename = "eventId")]
    pub event_id: String,
    /// The holder's or reserver's id, or "" when Available.
    #[serde(rename = "UUID")]
    pub user: String,
    #[schema(value_type = SeatStatusSchema)]
    pub status: SeatStatus,
    /// When the hold lapses (RFC 3339), while On hold.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl From<&Seat> for SeatBody {
    fn from(seat: &Seat) -> Self {
        Self {
            id: seat.id.to_string(),
            event_id: seat.id.event().to_string(),
            user: seat.state.user().map(|u| u.to_string()).unwrap_or_default(),
            status: seat.state.status(),
            expires_at: seat.state.expires_at().map(rfc3339),
        }
    }
}

impl SeatBody {
    /// An Available seat, as listed.
    pub fn available(id: SeatId) -> Self {
        Self::from(&Seat {
            id,
            state: queue_core::SeatState::Available,
        })
    }
}

/// The seats of an event that are Available now.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatList {
    pub total: usize,
    pub event: EventBody,
    pub seats: Vec<SeatBody>,
}

/// The answer of a synchronous seat operation (refresh, release).
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatMessage {
    pub message: String,
    pub seat: SeatBody,
}

/// A job accepted onto the queue. Read `statusEndpoint` (also the `Location` header); with
/// `?wait=N` (N up to 30 seconds) that answer comes as soon as the job finishes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"message": "HOLD_SEAT request accepted; GET statusEndpoint for its status, with ?wait=N (up to 30 s) to have the answer as soon as it finishes", "jobId": EXAMPLE_JOB,
    "position": 3, "estimatedWaitTime": 0.004,
    "statusEndpoint": format!("/seats/job/{EXAMPLE_JOB}/status")}))]
pub struct QueueResponse {
    pub message: &'static str,
    pub job_id: String,
    /// Jobs of the same event ahead of this one.
    pub position: u64,
    /// Seconds until the job is applied, from the workers' measured drain rate.
    pub estimated_wait_time: f64,
    pub status_endpoint: String,
}

/// Where a job stands: `waiting` (with `position`), `active` (a worker is on it), `completed`
/// (with `result`; a refusal is a completed job with `success: false`) or `failed` (could not be
/// applied at all; `error` says why).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"jobId": EXAMPLE_JOB, "type": "HOLD_SEAT", "status": "completed",
    "result": {"success": true, "status": 200, "message": "Seat held", "seat": {"id": EXAMPLE_SEAT,
    "eventId": EXAMPLE_EVENT, "UUID": EXAMPLE_USER, "status": "On hold",
    "expiresAt": "2026-11-21T18:00:00.000Z"}}, "createdAt": 1795284696333_i64,
    "completedAt": 1795284696340_i64}))]
pub struct JobStatusBody {
    pub job_id: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<JobKindSchema>)]
    pub kind: Option<JobKind>,
    /// `waiting`, `active`, `completed` or `failed`.
    #[schema(value_type = String, pattern = "^(waiting|active|completed|failed)$")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResultBody>,
    /// Why the job failed; or, while it is `waiting` for a retry, why its last attempt could not
    /// be applied and when the next is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the job was accepted: milliseconds since the Unix epoch, as in the original design.
    #[schema(value_type = i64)]
    pub created_at: Millis,
    /// When the job finished (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub completed_at: Option<Millis>,
}

/// What a completed job did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResultBody {
    pub success: bool,
    /// An HTTP-style code: 200, or 403 / 404 / 409 / 429 for a refusal.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<SeatBody>,
    /// The seat's status when the job found it in the wrong one (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SeatStatusSchema>)]
    pub current_status: Option<SeatStatus>,
    /// MAX_HELD_SEATS, when the user already held that many (429).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl From<&JobView> for JobStatusBody {
    fn from(job: &JobView) -> Self {
        let mut body = Self {
            job_id: job.id.to_string(),
            kind: job.kind,
            status: "waiting",
            position: None,
            result: None,
            error: None,
            created_at: job.created_at,
            completed_at: None,
        };
        match &job.state {
            JobState::Waiting { position } => body.position = Some(*position),
            JobState::Active => {
                body.status = "active";
                body.position = Some(0);
            }
            JobState::Completed {
                completed_at,
                result,
                seat,
            } => {
                body.status = "completed";
                body.completed_at = Some(*completed_at);
                body.result = Some(job_result(job.kind, *result, seat.as_ref()));
            }
            JobState::Retrying {
                attempts,
                retry_at,
                reason,
            } => {
                // Still to be applied: waiting, next in line once its retry is due.
                body.position = Some(0);
                body.error = Some(format!(
                    "attempt {attempts} could not be applied ({reason}); retrying at {}",
                    rfc3339(*retry_at)
                ));
            }
            JobState::Failed {
                completed_at,
                reason,
            } => {
                body.status = "failed";
                body.completed_at = Some(*completed_at);
                body.error = Some(format!("the job could not be applied: {reason}"));
            }
        }
        body
    }
}

fn job_result(
    kind: Option<JobKind>,
    result: Result<(), Refusal>,
    seat: Option<&Seat>,
) -> JobResultBody {
    let mut body = JobResultBody {
        success: result.is_ok(),
        status: result.err().map_or(200, Refusal::code),
        message: None,
        error: None,
        seat: seat.map(SeatBody::from),
        current_status: None,
        limit: None,
    };
    match result {
        Ok(()) => {
            body.message = Some(match kind {
                Some(JobKind::Reserve) => "Seat reserved".to_owned(),
                _ => "Seat held".to_owned(),
            });
        }
        Err(Refusal::NoSuchSeat) => body.error = Some("The seat does not exist".to_owned()),
        Err(Refusal::HeldByAnother) => {
            body.error = Some("The seat is held by another user".to_owned())
        }
        Err(Refusal::HoldLimit { limit }) => {
            body.limit = Some(limit);
            body.error = Some(format!(
                "You already hold {limit} seats of this event, the most allowed"
            ));
        }
        Err(Refusal::Conflict { current }) => {
            body.current_status = Some(current);
            body.error = Some(match kind {
                Some(JobKind::Reserve) => format!("The seat is {current}, not On hold by you"),
                _ => format!("The seat is {current}, not Available"),
            });
        }
    }
    body
}

/// RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(ms: Millis) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or_default());
    humantime::format_rfc3339_millis(at).to_string()
}

/// The events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventBody>,
}

/// A seat as the stream's snapshot shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": EXAMPLE_SEAT, "number": 7, "status": "On hold",
    "UUID": EXAMPLE_USER, "expiresAt": "2026-11-21T18:00:00.000Z"}))]
pub struct StreamSeat {
    pub id: String,
    pub number: u32,
    #[schema(value_type = SeatStatusSchema)]
    pub status: SeatStatus,
    /// The holder's or reserver's id, or "" when Available.
    #[serde(rename = "UUID")]
    pub user: String,
    /// When the hold lapses (RFC 3339), while On hold.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The first message of `GET /events/{id}/stream` (`event: snapshot`): the event with its counts
/// and every seat, in seat-number order. Its SSE `id` is that of the last change before it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamSnapshot {
    pub event: EventBody,
    pub seats: Vec<StreamSeat>,
}

impl From<&queue_core::Snapshot> for StreamSnapshot {
    fn from(snapshot: &queue_core::Snapshot) -> Self {
        let event = snapshot.event.id;
        let seats = (1..)
            .zip(&snapshot.seats)
            .map(|(number, state)| StreamSeat {
                id: SeatId::new(event, number)
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                number,
                status: state.status(),
                user: state.user().map(|u| u.to_string()).unwrap_or_default(),
                expires_at: state.expires_at().map(rfc3339),
            })
            .collect();
        Self {
            event: EventBody::with_counts(&snapshot.event),
            seats,
        }
    }
}

/// What happened to a seat (`change` of a stream message).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKindSchema {
    Held,
    Refreshed,
    Released,
    Lapsed,
    Reserved,
}

/// One change to one seat (`event: seat` of `GET /events/{id}/stream`); its SSE `id` is what a
/// reconnecting client sends back as `Last-Event-ID`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seat": EXAMPLE_SEAT, "number": 7, "change": "held",
    "status": "On hold", "UUID": EXAMPLE_USER, "expiresAt": "2026-11-21T18:01:00.000Z",
    "at": "2026-11-21T18:00:00.000Z"}))]
pub struct SeatChangeBody {
    pub seat: String,
    pub number: u32,
    #[schema(value_type = ChangeKindSchema)]
    pub change: &'static str,
    /// The seat's status after the change.
    #[schema(value_type = SeatStatusSchema)]
    pub status: SeatStatus,
    /// The user concerned: the new holder or reserver; for `released` and `lapsed`, the former
    /// holder.
    #[serde(rename = "UUID")]
    pub user: String,
    /// When the hold lapses, after `held` and `refreshed`.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// When the change took effect (for `lapsed`, the hold's deadline).
    pub at: String,
}

impl From<&queue_core::SeatChange> for SeatChangeBody {
    fn from(change: &queue_core::SeatChange) -> Self {
        Self {
            seat: change.seat.to_string(),
            number: change.seat.number(),
            change: change.kind.as_str(),
            status: change.kind.status(),
            user: change.user.to_string(),
            expires_at: change.expires_at().map(rfc3339),
            at: rfc3339(change.at()),
        }
    }
}

/// One message of `GET /events/{id}/stream` as schemathesis and OpenAPI 3.2 (`itemSchema`) read
/// a `text/event-stream`: `event` names it, `id` is what a reconnecting client sends back as
/// `Last-Event-ID`, and `data` is one line of JSON — a [`StreamSnapshot`] for `snapshot`, a
/// [`SeatChangeBody`] for `seat`. (The `retry:` line and `: keep-alive` comments carry no data
/// and are not messages.) Written by hand: the derive cannot express `contentSchema`.
#[derive(Debug)]
pub struct StreamMessage;

/// The `id:` of a stream message: `<milliseconds>-<sequence>` (a Redis Stream entry id).
pub const CHANGE_ID_PATTERN: &str = "^[0-9]{1,19}-[0-9]{1,19}$";

impl utoipa::PartialSchema for StreamMessage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        use utoipa::openapi::Ref;
        let message = |event: &str, data: &str| {
            ObjectBuilder::new()
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([event])),
                )
                .required("event")
                .property(
                    "id",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(CHANGE_ID_PATTERN)),
                )
                .required("id")
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json")
                        .content_schema(Some(Ref::from_schema_name(data))),
                )
                .required("data")
                .property(
                    "retry",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
        };
        OneOfBuilder::new()
            .item(message("snapshot", "StreamSnapshot"))
            .item(message("seat", "SeatChangeBody"))
            .description(Some(
                "One Server-Sent Events message: `data` is JSON, a StreamSnapshot for \
                 `event: snapshot`, a SeatChangeBody for `event: seat`",
            ))
            .into()
    }
}

impl ToSchema for StreamMessage {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push((StreamSnapshot::name().into(), StreamSnapshot::schema()));
        StreamSnapshot::schemas(schemas);
        schemas.push((SeatChangeBody::name().into(), SeatChangeBody::schema()));
        SeatChangeBody::schemas(schemas);
    }
}

#[cfg(test)]
mod stream_message_tests {
    use super::*;
    use utoipa::PartialSchema;

    #[test]
    fn each_stream_message_names_the_schema_of_its_data() {
        let schema = serde_json::to_value(StreamMessage::schema()).expect("a schema serialises");
        let variants = schema["oneOf"]
            .as_array()
            .expect("one variant per kind of message");
        let kinds: Vec<(&Value, &Value)> = variants
            .iter()
            .map(|v| {
                (
                    &v["properties"]["event"]["enum"][0],
                    &v["properties"]["data"]["contentSchema"]["$ref"],
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    &Value::from("snapshot"),
                    &Value::from("#/components/schemas/StreamSnapshot")
                ),
                (
                    &Value::from("seat"),
                    &Value::from("#/components/schemas/SeatChangeBody")
                ),
            ]
        );
    }

    use serde_json::Value;
}
