use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::error::RETRY_AFTER_SECS;
use crate::state::AppState;

/// Whether the service can do its work.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"status": "ok", "redis": "up", "liveWorkers": 5, "queueDepth": 0, "problems": []}))]
pub struct Health {
    /// "ok", or "unavailable" naming what is down in `problems`.
    #[schema(value_type = String)]
    status: &'static str,
    /// "up" or "down".
    #[schema(value_type = String)]
    redis: &'static str,
    /// Workers whose last heartbeat is within 3 heartbeat intervals (3 s by default).
    live_workers: usize,
    /// Jobs waiting across recently active events.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_depth: Option<u64>,
    /// What is down, in words.
    #[schema(value_type = Vec<String>)]
    problems: Vec<&'static str>,
}

/// 200 when Redis answers and at least one worker is alive, else 503 saying what is down.
#[utoipa::path(get, path = "/health", tag = "service",
    responses(
        (status = 200, description = "Redis answers and workers are alive", body = Health),
        (status = 503, description = "Something is down (`problems`)", body = Health,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.store;
    let (ping, pool, depth) = futures::join!(store.ping(), store.pool(), store.queue_depth());
    let mut problems = Vec::new();
    if ping.is_err() {
        problems.push("redis: not answering");
    }
    let live_workers = pool.map(|p| p.live_workers).unwrap_or(0);
    if ping.is_ok() && live_workers == 0 {
        problems.push("workers: none alive (no recent heartbeat)");
    }
    let body = Health {
        status: if problems.is_empty() {
            "ok"
        } else {
            "unavailable"
        },
        redis: if ping.is_ok() { "up" } else { "down" },
        live_workers,
        queue_depth: depth.ok(),
        problems,
    };
    if body.problems.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()))
            .json(body)
    }
}
