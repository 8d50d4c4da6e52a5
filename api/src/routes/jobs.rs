use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::dto::{JobStatusBody, EXAMPLE_JOB};
use crate::error::{ApiError, ErrorBody};
use crate::job_ids::ClaimedJobId;
use crate::state::AppState;
use crate::waiters::MAX_WAIT_SECS;

/// Where a job stands.
#[utoipa::path(get, path = "/seats/job/{jobId}/status", tag = "jobs",
    params(
        ("jobId" = String, Path, description = "`<event id>:j<number>.<tag>`, as the 202 gave it. An id with a wrong or missing tag is unknown (404), like a job that does not exist", example = json!(EXAMPLE_JOB),
            pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:j[1-9][0-9]{0,18}([.].*)?$"),
        ("wait" = Option<u64>, Query, description = "Seconds (0 to 30) to wait for the job to finish before answering; the answer comes as soon as it does", maximum = 30, minimum = 0),
    ),
    responses(
        (status = 200, description = "The job (with `wait`: as soon as it finished, or as it stands at the deadline)", body = JobStatusBody),
        (status = 404, description = "Unknown (a wrong or missing tag included), or its result is past JOB_RESULT_TTL", body = ErrorBody),
        (status = 422, description = "A malformed id", body = ErrorBody),
        (status = 503, description = "Redis is unavailable; retry after `Retry-After` seconds", body = ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn status(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let claimed = ClaimedJobId::parse(&path).ok_or_else(|| ApiError::InvalidField {
        field: "jobId".to_owned(),
        message: format!(
            "`{}` is not a job id (`<event id>:j<number>.<tag>`, as a 202 gave it)",
            clip(&path)
        ),
    })?;
    let wait = wait(req.query_string())?;
    let job_ids = state.job_ids.get(&state.store).await?;
    // The same answer for a tag that is wrong and for a job that does not exist, so that an id
    // cannot be tried out piece by piece.
    let unknown = || ApiError::JobNotFound { id: clip(&path) };
    let id = job_ids.verify(&claimed).ok_or_else(unknown)?;
    match state.waiters.status(&state.store, id, wait).await? {
        Some(job) => Ok(HttpResponse::Ok().json(JobStatusBody {
            job_id: job_ids.public(id),
            ..JobStatusBody::from(&job)
        })),
        None => Err(unknown()),
    }
}

/// The id as the client sent it, cut short when it is long, for the error message.
fn clip(raw: &str) -> String {
    const MAX_CHARS: usize = 120;
    raw.chars().take(MAX_CHARS).collect()
}

/// The `wait` of a query string: none, or from 0 to [`MAX_WAIT_SECS`] seconds.
fn wait(query: &str) -> Result<Option<Duration>, ApiError> {
    let Some(raw) = wait_param(query)? else {
        return Ok(None);
    };
    raw.parse::<u64>()
        .ok()
        .filter(|secs| *secs <= MAX_WAIT_SECS)
        .map(|secs| Some(Duration::from_secs(secs)))
        .ok_or_else(|| ApiError::InvalidField {
            field: "wait".to_owned(),
            message: format!("wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"),
        })
}

/// The raw `wait` of a query string. Read by hand rather than with `web::Query`, whose errors
/// (a repeated `wait`, say) are bare 400s: every bad query gets the usual 422 naming `wait`.
/// Other parameters are ignored.
fn wait_param(query: &str) -> Result<Option<String>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query).map_err(|_| {
        ApiError::InvalidField {
            field: "wait".to_owned(),
            message: "the query string is not valid URL encoding".to_owned(),
        }
    })?;
    let mut waits = pairs.0.into_iter().filter(|(name, _)| name == "wait");
    let wait = waits.next().map(|(_, value)| value);
    if waits.next().is_some() {
        return Err(ApiError::InvalidField {
            field: "wait".to_owned(),
            message: "wait must be given at most once".to_owned(),
        });
    }
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::wait_param;
    use actix_web::ResponseError;

    #[test]
    fn wait_is_read_once_and_anything_else_is_a_422() {
        assert_eq!(wait_param("").expect("no query"), None);
        assert_eq!(
            wait_param("x=1&wait=5").expect("one wait").as_deref(),
            Some("5")
        );
        for bad in ["wait=1&wait=2", "wait=null&wait=null"] {
            let err = wait_param(bad).expect_err("a repeated wait is refused");
            assert_eq!(err.status_code().as_u16(), 422, "{bad}");
        }
    }
}
