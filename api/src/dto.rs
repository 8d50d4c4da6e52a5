//! The JSON shapes of SPEC §2, and their conversion from queue-core types.

use std::time::{Duration, UNIX_EPOCH};

use queue_core::{
    Event, EventName, JobKind, JobState, JobView, Millis, Refusal, Seat, SeatCount, SeatId,
    SeatStatus, UserId,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEvent {
    pub name: EventName,
    pub total_seats: SeatCount,
}

/// The body of hold, reserve, refresh and release.
#[derive(Debug, Deserialize)]
pub struct SeatRequest {
    pub id: SeatId,
    #[serde(rename = "UUID")]
    pub user: UserId,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
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

#[derive(Debug, Serialize)]
pub struct SeatBody {
    pub id: String,
    #[serde(rename = "eventId")]
    pub event_id: String,
    #[serde(rename = "UUID")]
    pub user: String,
    pub status: SeatStatus,
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

#[derive(Debug, Serialize)]
pub struct SeatList {
    pub total: usize,
    pub event: EventBody,
    pub seats: Vec<SeatBody>,
}

/// The answer of a synchronous seat operation (refresh, release).
#[derive(Debug, Serialize)]
pub struct SeatMessage {
    pub message: String,
    pub seat: SeatBody,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueResponse {
    pub message: String,
    pub job_id: String,
    pub position: u64,
    pub estimated_wait_time: f64,
    pub status_endpoint: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusBody {
    pub job_id: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<JobKind>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResultBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch, as in the original design.
    pub created_at: Millis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Millis>,
}

#[derive(Debug, Serialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_status: Option<SeatStatus>,
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
