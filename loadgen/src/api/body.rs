//! The bodies of the API's answers (docs/CONTRACT.md §2) as typed values, one decoder each: serde
//! with the wire's names. Each shows itself (`Display`) as the JSON it stands for, so that a
//! message about an answer reads like the answer.

use std::fmt;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::spelling::{JobKind, JobStatus, SeatStatus};
use super::values::rfc3339_opt;

/// An answer: the endpoint's success status with its body, or any other status with the error
/// body.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    /// 201, 202 or 200, as the endpoint answers when it did what was asked.
    Success { status: u16, body: T },
    /// `None` when the body is not a JSON error (a proxy's page, say).
    Refused {
        status: u16,
        error: Option<ErrorBody>,
    },
}

/// The answer to `POST /seats/hold` or `POST /seats/reserve`.
pub type Posted = Answer<Queued>;

impl<T> Answer<T> {
    pub fn status(&self) -> u16 {
        match self {
            Self::Success { status, .. } | Self::Refused { status, .. } => *status,
        }
    }

    pub fn body(&self) -> Option<&T> {
        match self {
            Self::Success { body, .. } => Some(body),
            Self::Refused { .. } => None,
        }
    }

    pub fn error(&self) -> Option<&ErrorBody> {
        match self {
            Self::Success { .. } => None,
            Self::Refused { error, .. } => error.as_ref(),
        }
    }

    /// The error body's `code`.
    pub fn code(&self) -> Option<&str> {
        self.error().map(|e| e.code.as_str())
    }

    /// The error body's `currentStatus`.
    pub fn current_status(&self) -> Option<SeatStatus> {
        self.error().and_then(|e| e.current_status)
    }
}

impl Posted {
    /// The accepted job's id.
    pub fn job_id(&self) -> Option<&str> {
        self.body().map(|q| q.job_id.as_str())
    }
}

impl<T: Serialize> fmt::Display for Answer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success { body, .. } => write_json(body, f),
            Self::Refused {
                error: Some(error), ..
            } => write_json(error, f),
            Self::Refused { error: None, .. } => f.write_str("(no JSON error body)"),
        }
    }
}

/// The 202 body of `POST /seats/hold` and `POST /seats/reserve`: the job to follow.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub job_id: String,
    /// Jobs of the same event ahead of this one.
    pub position: u64,
    /// Seconds until the job is applied, as the API estimates it.
    pub estimated_wait_time: f64,
}

/// Every error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub error: String,
    /// Stable snake_case: `seat_not_available`, `held_by_another_user`...
    pub code: String,
    /// The request field that was invalid (422).
    pub field: Option<String>,
    /// The seat's status when it is not the one the operation needs (409).
    pub current_status: Option<SeatStatus>,
    /// The limit that was hit (413: bytes; 429: seats).
    pub limit: Option<u64>,
}

/// The body of `GET /seats/job/{id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub job_id: String,
    /// `type`; absent only for a failed job whose kind could not be read.
    #[serde(rename = "type")]
    pub kind: Option<JobKind>,
    pub status: JobStatus,
    /// Jobs of the same event ahead of it, while waiting or active.
    pub position: Option<u64>,
    /// What a completed job did.
    pub result: Option<JobResult>,
    /// Why it failed, or why its last attempt could not be applied.
    pub error: Option<String>,
    /// When the job was accepted and when it finished (ms since the epoch, Redis's clock).
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// What a completed job did.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResult {
    pub success: bool,
    /// `status`: 200, or 403 / 404 / 409 / 429 for a refusal.
    #[serde(rename = "status")]
    pub code: u16,
    pub message: Option<String>,
    pub error: Option<String>,
    /// The seat as the job left it.
    pub seat: Option<SeatView>,
    /// The seat's status when the job found it in the wrong one (409).
    pub current_status: Option<SeatStatus>,
    /// MAX_HELD_SEATS, when the user already held that many (429).
    pub limit: Option<u32>,
}

impl JobView {
    /// Whether the job completed and did what was asked (`result.success`).
    pub fn succeeded(&self) -> bool {
        self.result.as_ref().is_some_and(|r| r.success)
    }

    /// `result.status` of a completed job.
    pub fn code(&self) -> Option<u16> {
        self.result.as_ref().map(|r| r.code)
    }

    /// `result.seat`: the seat as the job left it.
    pub fn seat(&self) -> Option<&SeatView> {
        self.result.as_ref().and_then(|r| r.seat.as_ref())
    }

    /// Where the job stands, as the load generator counts it.
    pub fn answer(self) -> Result<JobAnswer> {
        match self.status {
            JobStatus::Waiting | JobStatus::Active => Ok(JobAnswer::Pending),
            JobStatus::Failed => Ok(JobAnswer::Failed {
                completed_at: self.completed_at.unwrap_or_default(),
                error: self.error.unwrap_or_default(),
            }),
            JobStatus::Completed => {
                let result = self.result.context("a completed job without a result")?;
                let expires_at = match result.seat {
                    Some(seat) if result.code == 200 => seat.expires_at,
                    _ => None,
                };
                Ok(JobAnswer::Completed(Completed {
                    code: result.code,
                    created_at: self.created_at,
                    completed_at: self
                        .completed_at
                        .context("a completed job without completedAt")?,
                    expires_at,
                }))
            }
        }
    }
}

/// Where a job stands, as `GET /seats/job/{id}/status` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobAnswer {
    /// `waiting` or `active`.
    Pending,
    Completed(Completed),
    Failed {
        completed_at: i64,
        error: String,
    },
    /// 404: unknown, or past JOB_RESULT_TTL.
    NotFound,
}

/// A completed job's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The HTTP-style code of `result.status`: 200, 403, 404, 409 or 429.
    pub code: u16,
    /// When the job was accepted and when it was applied (ms since the epoch, Redis's clock).
    pub created_at: i64,
    pub completed_at: i64,
    /// `result.seat.expiresAt` in ms, for a successful hold.
    pub expires_at: Option<i64>,
}

/// One seat, as `GET /seats/get/{id}`, the seat lists and job results show it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeatView {
    pub id: String,
    #[serde(rename = "eventId")]
    pub event_id: String,
    pub status: SeatStatus,
    /// The holder or reserver when the asker is that user (see [`super::Api::seat_as`]),
    /// else `""`.
    #[serde(rename = "UUID")]
    pub user: String,
    /// `expiresAt` in ms, while On hold.
    #[serde(rename = "expiresAt", default, with = "rfc3339_opt")]
    pub expires_at: Option<i64>,
}

/// An event with its counts, as `GET /events/{id}` and the seat list show it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    pub id: String,
    pub name: String,
    pub total_seats: u32,
    pub available: u32,
    pub on_hold: u32,
    pub reserved: u32,
}

/// `GET /seats/list/{eventId}`: the seats Available now.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeatList {
    pub total: usize,
    pub event: EventCounts,
    pub seats: Vec<SeatView>,
}

/// The 200 body of `POST /seats/refresh` and `POST /seats/release`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct SeatMessage {
    pub message: String,
    pub seat: SeatView,
}

/// The 201 body of `POST /events/create`, as far as the client needs it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(super) struct Created {
    pub(super) id: String,
}

fn write_json(value: &impl Serialize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&serde_json::to_string(value).map_err(|_| fmt::Error)?)
}

/// `Display` as the JSON the value stands for.
macro_rules! display_as_json {
    ($($name:ident),+) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_json(self, f)
            }
        }
    )+};
}

display_as_json!(
    Queued,
    ErrorBody,
    JobView,
    SeatView,
    EventCounts,
    SeatList,
    SeatMessage
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_job(bytes: &[u8]) -> Result<JobAnswer> {
        serde_json::from_slice::<JobView>(bytes)?.answer()
    }

    #[test]
    fn a_completed_hold_is_parsed_with_its_expiry() {
        let body =
            br#"{"jobId":"e:j1","type":"HOLD_SEAT","status":"completed","result":{"success":true,
            "status":200,"message":"Seat held","seat":{"id":"e:7","eventId":"e","UUID":"u",
            "status":"On hold","expiresAt":"2026-01-01T00:01:00.000Z"}},"createdAt":1767225600000,
            "completedAt":1767225600004}"#;
        let answer = parse_job(body).expect("parses");
        assert_eq!(
            answer,
            JobAnswer::Completed(Completed {
                code: 200,
                created_at: 1_767_225_600_000,
                completed_at: 1_767_225_600_004,
                expires_at: Some(1_767_225_660_000),
            })
        );
        let refused =
            br#"{"jobId":"e:j2","type":"HOLD_SEAT","status":"completed","result":{"success":false,
            "status":429,"error":"too many","limit":6},"createdAt":1,"completedAt":2}"#;
        assert!(matches!(
            parse_job(refused).expect("parses"),
            JobAnswer::Completed(Completed {
                code: 429,
                expires_at: None,
                ..
            })
        ));
        let waiting =
            br#"{"jobId":"e:j3","type":"HOLD_SEAT","status":"waiting","position":3,"createdAt":1}"#;
        assert_eq!(parse_job(waiting).expect("parses"), JobAnswer::Pending);
    }

    #[test]
    fn a_seat_shows_itself_as_the_json_it_was_read_from() {
        let text = r#"{"id":"e:7","eventId":"e","status":"On hold","UUID":"u","expiresAt":"2026-01-01T00:01:00.000Z"}"#;
        let seat: SeatView = serde_json::from_str(text).expect("parses");
        assert_eq!(seat.expires_at, Some(1_767_225_660_000));
        assert_eq!(seat.to_string(), text);
    }
}
