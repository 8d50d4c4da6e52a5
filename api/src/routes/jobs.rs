use actix_web::{web, HttpResponse};
use queue_core::JobId;

use crate::dto::JobStatusBody;
use crate::error::ApiError;
use crate::routes::parse_id;
use crate::state::AppState;

/// GET /seats/job/{jobId}/status
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
