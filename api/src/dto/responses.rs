//! The response bodies, and their conversion from queue-core types.

use std::time::{Duration, UNIX_EPOCH};

use queue_core::{
    Event, JobKind, JobState, JobStatus, JobView, Millis, Refusal, Seat, SeatId, SeatStatus, UserId,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::schema::{
    JobKindSchema, SeatStatusSchema, EXAMPLE_EVENT, EXAMPLE_JOB, EXAMPLE_SEAT, EXAMPLE_USER,
};

/// An event. `available`, `onHold` and `reserved` are counts as of the request, present on
/// `GET /events/{id}`, in `GET /events` and in seat lists. `endsAt` is there when the event was
/// created with one.
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
    /// When the event ends (RFC 3339, UTC); EVENT_RETENTION later it is deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
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
            ends_at: e.ends_at.map(rfc3339),
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
    /// The holder's or reserver's id when the asker is that user (`X-User-Id` in none mode, the
    /// bearer token in jwt mode); `""` for everyone else, and when Available.
    #[serde(rename = "UUID")]
    pub user: String,
    #[schema(value_type = SeatStatusSchema)]
    pub status: SeatStatus,
    /// When the hold lapses (RFC 3339), while On hold.
    #[serde(rename = "expiresAt", skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl SeatBody {
    /// The seat as `viewer` may see it: the holder's or reserver's id only when that is the
    /// viewer (docs/CONTRACT.md §2, G9), `""` for everyone else.
    pub fn shown_to(seat: &Seat, viewer: Option<UserId>) -> Self {
        Self {
            id: seat.id.to_string(),
            event_id: seat.id.event().to_string(),
            user: shown_user(seat.state.user(), viewer),
            status: seat.state.status(),
            expires_at: seat.state.expires_at().map(rfc3339),
        }
    }

    /// An Available seat, as listed.
    pub fn available(id: SeatId) -> Self {
        Self::shown_to(
            &Seat {
                id,
                state: queue_core::SeatState::Available,
            },
            None,
        )
    }
}

/// A seat's `UUID` as `viewer` sees it: the user's id when the viewer is that user, else `""`.
/// The one place that decides whether an answer shows a user's id.
pub fn shown_user(user: Option<UserId>, viewer: Option<UserId>) -> String {
    match (user, viewer) {
        (Some(user), Some(viewer)) if user == viewer => user.to_string(),
        _ => String::new(),
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

impl QueueResponse {
    /// The body, byte for byte as `serde_json::to_vec` writes it (a test holds the two
    /// together). It is the answer of every accepted job, and serde_json's escaping, a table
    /// look-up per byte of every field name and string, was most of its cost: here the names
    /// are copied as they are, and a string is escaped by serde_json only when it has a byte
    /// that needs it (the message, job id and path never have).
    pub fn to_json(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(
            96 + self.message.len() + self.job_id.len() + self.status_endpoint.len(),
        );
        body.extend_from_slice(b"{\"message\":");
        push_json_str(&mut body, self.message);
        body.extend_from_slice(b",\"jobId\":");
        push_json_str(&mut body, &self.job_id);
        body.extend_from_slice(b",\"position\":");
        push_json(&mut body, &self.position);
        body.extend_from_slice(b",\"estimatedWaitTime\":");
        push_json(&mut body, &self.estimated_wait_time);
        body.extend_from_slice(b",\"statusEndpoint\":");
        push_json_str(&mut body, &self.status_endpoint);
        body.push(b'}');
        body
    }
}

/// Appends `text` as a JSON string: quoted as it is when no byte of it needs escaping (a control
/// character, a quote or a backslash), else as serde_json escapes it.
fn push_json_str(body: &mut Vec<u8>, text: &str) {
    // A fold without an early exit, so that the compiler checks many bytes at a time.
    let needs_escape = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escape {
        body.push(b'"');
        body.extend_from_slice(text.as_bytes());
        body.push(b'"');
    } else {
        push_json(body, text);
    }
}

/// Appends `value` as serde_json writes it.
fn push_json<T: Serialize + ?Sized>(body: &mut Vec<u8>, value: &T) {
    // Into a Vec, and for a string or number, serde_json cannot fail.
    let _ = serde_json::to_writer(body, value);
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
    pub status: JobStatus,
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
            status: job.state.status(),
            position: None,
            result: None,
            error: None,
            created_at: job.created_at,
            completed_at: None,
        };
        match &job.state {
            JobState::Waiting { position } => body.position = Some(*position),
            JobState::Active => body.position = Some(0),
            JobState::Completed {
                completed_at,
                result,
                seat,
            } => {
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
    // Whoever knows a job's id submitted it. A job that succeeded left the seat held or
    // reserved by its own user, whose id it shows; a refused one shows the seat as anyone sees
    // it, since its holder is someone else (docs/CONTRACT.md §2, G9).
    let shown = |seat: &Seat| {
        let owner = if result.is_ok() {
            seat.state.user()
        } else {
            None
        };
        SeatBody::shown_to(seat, owner)
    };
    let mut body = JobResultBody {
        success: result.is_ok(),
        status: result.err().map_or(200, Refusal::code),
        message: None,
        error: None,
        seat: seat.map(shown),
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

/// One page of the events, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventList {
    pub events: Vec<EventBody>,
    /// Pass it as `cursor` for the next page; absent on the last page. Opaque.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use queue_core::JobStatus;
    use utoipa::PartialSchema;

    use super::{JobStatusBody, QueueResponse};

    proptest! {
        /// `QueueResponse::to_json` writes what serde_json writes, whatever the strings and
        /// numbers (escapes, non-ASCII, NaN and infinities included).
        #[test]
        fn a_queue_response_is_written_as_serde_json_writes_it(
            message in prop::sample::select(vec![
                "HOLD_SEAT request accepted; GET statusEndpoint for its status",
                "",
                "a \"quoted\" \\ line\n\u{1}\u{7f} \u{e9}",
            ]),
            job_id in any::<String>(),
            position in any::<u64>(),
            estimated_wait_time in prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(f64::INFINITY),
                (0u32..100_000).prop_map(|n| f64::from(n) / 1000.0),
            ],
            status_endpoint in "[ -~]{0,100}",
        ) {
            let body = QueueResponse {
                message,
                job_id,
                position,
                estimated_wait_time,
                status_endpoint,
            };
            let expected = serde_json::to_vec(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let written = body.to_json();
            prop_assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&expected)
            );
        }
    }

    /// The schema of `status` spells the statuses out; it must name exactly queue-core's.
    #[test]
    fn the_schema_of_a_job_status_names_every_status() {
        let schema = serde_json::to_value(JobStatusBody::schema()).expect("a schema serialises");
        let status = &schema["properties"]["status"];
        let names: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            status["pattern"],
            format!("^({})$", names.join("|")),
            "the pattern of `status`"
        );
        let description = status["description"].as_str().unwrap_or_default();
        for name in names {
            assert!(
                description.contains(&format!("`{name}`")),
                "the description of `status` names {name}: {description}"
            );
        }
    }
}
