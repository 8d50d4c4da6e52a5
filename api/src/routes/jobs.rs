use actix_web::{web, HttpResponse};
use queue_core::JobId;

use crate::dto::JobStatusBody;
use crate::error::{ApiError, ErrorBody};
use crate::routes::parse_id;
use crate::state::AppState;
use crate::waiters::MAX_WAIT_SECS;

use std::time::Duration;

/// Where a job stands.
#[utoipa::path(get, path = "/seats/job/{jobId}/status", tag = "jobs",
    params(
        ("jobId" = String, Path, description = "`<event id>:j<number>`, from the 202", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:j42"),
        ("wait" = Option<u64>, Query, description = "Seconds (0 to 30) to wait for the job to finish before answering; the answer comes as soon as it does", maximum = 30, minimum = 0),
    ),
    responses(
        (status = 200, description = "The job (with `wait`: as soon as it finished, or as it stands at the deadline)", body = JobStatusBody),
        (status = 404, description = "Unknown, or its result is past JOB_RESULT_TTL", body = ErrorBody),
        (status = 422, description = "A malformed id", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn status(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id: JobId = parse_id(&path, "jobId")?;
    let wait = match query.wait.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .ok()
                .filter(|secs| *secs <= MAX_WAIT_SECS)
                .map(Duration::from_secs)
                .ok_or_else(|| ApiError::InvalidField {
                    field: "wait".to_owned(),
                    message: format!(
                        "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"
                    ),
                })?,
        ),
    };
    // Registered before the read, so that a job finishing in between still wakes us.
    let woken = wait.map(|_| state.waiters.register(id));
    let mut job = state.store.job(id).await?;
    if let (Some(wait), Some(woken)) = (wait, woken) {
        if job.as_ref().is_some_and(|j| !j.state.is_finished()) {
            let _ = tokio::time::timeout(wait, woken).await;
            job = state.store.job(id).await?;
        }
    }
    match job {
        Some(job) => Ok(HttpResponse::Ok().json(JobStatusBody::from(&job))),
        None => Err(ApiError::JobNotFound { id: id.to_string() }),
    }
}

/// The query of `GET /seats/job/{jobId}/status`; `wait` is parsed by the handler so that a bad
/// value gets the usual 422.
#[derive(Debug, serde::Deserialize)]
pub struct WaitQuery {
    wait: Option<String>,
}
