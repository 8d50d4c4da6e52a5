use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::error::RETRY_AFTER_SECS;
use crate::state::AppState;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    /// "ok", or "unavailable" naming what is down in `problems`.
    status: &'static str,
    redis: &'static str,
    live_workers: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_depth: Option<u64>,
    problems: Vec<&'static str>,
}

/// GET /health: 200 when Redis answers and at least one worker is alive, else 503.
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.store;
    let (ping, pool, depth) = futures::join!(store.ping(), store.pool(), store.queue_depth());
    let mut problems = Vec::new();
    if ping.is_err() {
        problems.push("redis: not answering");
    }
    let live_workers = pool.map(|p| p.live_workers).unwrap_or(0);
    if ping.is_ok() && live_workers == 0 {
        problems.push("workers: none alive (no heartbeat in the last 3 seconds)");
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
