use actix_web::{web, HttpResponse};
use queue_core::JobId;

use crate::dto::JobStatusBody;
use crate::error::{ApiError, ErrorBody};
use crate::routes::parse_id;
use crate::state::AppState;

/// Where a job stands.
#[utoipa::path(get, path = "/seats/job/{jobId}/status", tag = "jobs",
    params(("jobId" = String, Path, description = "`<event id>:j<number>`, from the 202", example = "3f0c2f2f-5c11-4b43-9a71-0b6f6a8e54a4:j42")),
    responses(
        (status = 200, description = "The job", body = JobStatusBody),
        (status = 404, description = "Unknown, or its result is past JOB_RESULT_TTL", body = ErrorBody),
        (status = 422, description = "A malformed id", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn status(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: JobId = parse_id(&path, "jobId")?;
    match state.store.job(id).await? {
        Some(job) => Ok(HttpResponse::Ok().json(JobStatusBody::from(&job))),
        None => Err(ApiError::JobNotFound { id: id.to_string() }),
    }
}
