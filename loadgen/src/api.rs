//! A thin typed client for the endpoints of docs/CONTRACT.md §2 that the load generator drives.
//!
//! Request bodies are formatted by hand and answers parsed into small structs: at tens of
//! thousands of requests a second on a shared 2-core machine the generator's own CPU is part of
//! what is measured, so it does as little as it can.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;

/// A client for one API base URL (`http://127.0.0.1:3000`).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// The answer to `POST /seats/hold` or `POST /seats/reserve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    /// 202: the job's id.
    Accepted { job: String },
    /// Any other status, with the error body's `code` when there is one.
    Refused { status: u16, code: String },
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

/// A seat's status as `GET /seats/get/{id}` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SeatStatus {
    Available,
    OnHold,
    Reserved,
}

/// One seat as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatView {
    pub status: SeatStatus,
    /// The holder or reserver, `""` when Available.
    pub user: String,
    pub expires_at: Option<i64>,
}

/// The counts of `GET /events/{id}`.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    pub total_seats: u32,
    pub available: u32,
    pub on_hold: u32,
    pub reserved: u32,
}

#[derive(Deserialize)]
struct Queued {
    #[serde(rename = "jobId")]
    job_id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobBody {
    status: String,
    #[serde(default)]
    result: Option<ResultBody>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    created_at: i64,
    #[serde(default)]
    completed_at: Option<i64>,
}

#[derive(Deserialize)]
struct ResultBody {
    status: u16,
    #[serde(default)]
    seat: Option<SeatBody>,
}

#[derive(Deserialize)]
struct SeatBody {
    #[serde(default)]
    id: String,
    status: String,
    #[serde(rename = "UUID", default)]
    user: String,
    #[serde(rename = "expiresAt", default)]
    expires_at: Option<String>,
}

#[derive(Deserialize)]
struct SeatListBody {
    seats: Vec<SeatBody>,
}

#[derive(Deserialize)]
struct CreatedBody {
    id: String,
}

impl Api {
    /// A client that keeps up to `connections` idle connections open to the API.
    pub fn new(base: &str, connections: usize) -> Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections.max(1))
            .tcp_nodelay(true)
            // Below the API's keep-alive (5 s by default), so that an idle connection is never
            // reused just as the server closes it (a POST cannot be retried safely).
            .pool_idle_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Opens `n` connections (or makes sure they are open) by `n` GETs of `path` at once; they
    /// then wait in the pool.
    pub async fn open_connections(&self, path: &str, n: usize) -> Result<()> {
        futures::future::try_join_all((0..n).map(|_| self.get_ok(path))).await?;
        Ok(())
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /events/create`; the new event's id.
    pub async fn create_event(&self, name: &str, seats: u32) -> Result<String> {
        let body = format!(
            r#"{{"name":{},"totalSeats":{seats}}}"#,
            serde_json::to_string(name)?
        );
        let response = self
            .http
            .post(format!("{}/events/create", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .context("POST /events/create")?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status != 201 {
            bail!(
                "POST /events/create answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice::<CreatedBody>(&bytes)
            .context("the 201 body of POST /events/create")?
            .id)
    }

    /// `POST /seats/hold`.
    pub async fn hold(&self, seat: &str, user: &str) -> Result<Posted> {
        self.post_seat("/seats/hold", seat, user).await
    }

    /// `POST /seats/reserve`.
    pub async fn reserve(&self, seat: &str, user: &str) -> Result<Posted> {
        self.post_seat("/seats/reserve", seat, user).await
    }

    /// `POST /seats/release`: the HTTP status.
    pub async fn release(&self, seat: &str, user: &str) -> Result<u16> {
        let response = self
            .http
            .post(format!("{}/seats/release", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(seat_body(seat, user))
            .send()
            .await?;
        let status = response.status().as_u16();
        let _ = response.bytes().await?;
        Ok(status)
    }

    async fn post_seat(&self, path: &str, seat: &str, user: &str) -> Result<Posted> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/json")
            .body(seat_body(seat, user))
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status == 202 {
            let queued: Queued = serde_json::from_slice(&bytes)
                .with_context(|| format!("the 202 body of POST {path}"))?;
            Ok(Posted::Accepted { job: queued.job_id })
        } else {
            let code = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.code)
                .unwrap_or_default();
            Ok(Posted::Refused { status, code })
        }
    }

    /// `GET /seats/job/{id}/status`, with `?wait=N` when `wait_secs` is given.
    pub async fn job(&self, job: &str, wait_secs: Option<u64>) -> Result<JobAnswer> {
        let url = match wait_secs {
            Some(w) => format!("{}/seats/job/{job}/status?wait={w}", self.base),
            None => format!("{}/seats/job/{job}/status", self.base),
        };
        let response = self.http.get(url).send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        match status {
            200 => parse_job(&bytes),
            404 => Ok(JobAnswer::NotFound),
            _ => bail!(
                "GET job status of {job} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }

    /// `GET /seats/get/{id}`.
    pub async fn seat(&self, seat: &str) -> Result<SeatView> {
        let bytes = self.get_ok(&format!("/seats/get/{seat}")).await?;
        let body: SeatBody = serde_json::from_slice(&bytes).context("a seat body")?;
        Ok(SeatView {
            status: parse_status(&body.status)?,
            user: body.user,
            expires_at: body.expires_at.as_deref().map(rfc3339_ms).transpose()?,
        })
    }

    /// `GET /seats/list/{eventId}`: the numbers of the seats listed Available.
    pub async fn available(&self, event: &str) -> Result<Vec<u32>> {
        let bytes = self.get_ok(&format!("/seats/list/{event}")).await?;
        let list: SeatListBody = serde_json::from_slice(&bytes).context("a seat list")?;
        list.seats
            .iter()
            .map(|s| seat_number(&s.id))
            .collect::<Result<Vec<_>>>()
    }

    /// `GET /seats/list/{eventId}`, the body read whole but not parsed (for timing the endpoint
    /// alone): its length in bytes.
    pub async fn list_len(&self, event: &str) -> Result<usize> {
        Ok(self.get_ok(&format!("/seats/list/{event}")).await?.len())
    }

    /// A GET that must answer 200: its body.
    async fn get_ok(&self, path: &str) -> Result<Vec<u8>> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        if status != 200 {
            bail!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes.to_vec())
    }

    /// `GET /events/{id}`.
    pub async fn event(&self, event: &str) -> Result<EventCounts> {
        let bytes = self.get_ok(&format!("/events/{event}")).await?;
        serde_json::from_slice(&bytes).context("an event body")
    }
}

fn seat_body(seat: &str, user: &str) -> String {
    // Seat ids and UUIDs need no JSON escaping.
    format!(r#"{{"id":"{seat}","UUID":"{user}"}}"#)
}

fn parse_job(bytes: &[u8]) -> Result<JobAnswer> {
    let body: JobBody = serde_json::from_slice(bytes).context("a job status body")?;
    match body.status.as_str() {
        "waiting" | "active" => Ok(JobAnswer::Pending),
        "failed" => Ok(JobAnswer::Failed {
            completed_at: body.completed_at.unwrap_or_default(),
            error: body.error.unwrap_or_default(),
        }),
        "completed" => {
            let result = body.result.context("a completed job without a result")?;
            let expires_at = match result.seat.and_then(|s| s.expires_at) {
                Some(at) if result.status == 200 => Some(rfc3339_ms(&at)?),
                _ => None,
            };
            Ok(JobAnswer::Completed(Completed {
                code: result.status,
                created_at: body.created_at,
                completed_at: body
                    .completed_at
                    .context("a completed job without completedAt")?,
                expires_at,
            }))
        }
        other => bail!("a job status of {other:?}"),
    }
}

fn parse_status(s: &str) -> Result<SeatStatus> {
    match s {
        "Available" => Ok(SeatStatus::Available),
        "On hold" => Ok(SeatStatus::OnHold),
        "Reserved" => Ok(SeatStatus::Reserved),
        other => bail!("a seat status of {other:?}"),
    }
}

/// The number of a seat id `<event>:<n>`.
pub fn seat_number(id: &str) -> Result<u32> {
    id.rsplit_once(':')
        .and_then(|(_, n)| n.parse().ok())
        .with_context(|| format!("a seat id ending in :<number>, not {id:?}"))
}

/// The sequence number of a job id `<event>:j<seq>`.
pub fn job_seq(id: &str) -> Result<u64> {
    id.rsplit_once(":j")
        .and_then(|(_, n)| n.parse().ok())
        .with_context(|| format!("a job id ending in :j<number>, not {id:?}"))
}

/// Milliseconds since the epoch of an RFC 3339 time.
pub fn rfc3339_ms(s: &str) -> Result<i64> {
    let at = humantime::parse_rfc3339(s).with_context(|| format!("an RFC 3339 time: {s:?}"))?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .context("a time after the epoch")?
        .as_millis();
    Ok(i64::try_from(ms)?)
}

/// Milliseconds since the epoch now, by this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ids_give_their_numbers() {
        assert_eq!(seat_number("abc:17").expect("a number"), 17);
        assert_eq!(job_seq("abc:j42").expect("a number"), 42);
        assert!(job_seq("abc:42").is_err());
    }
}
