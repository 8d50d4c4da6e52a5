use actix_web::{web, HttpResponse};
use queue_core::memory::{RedisMemory, NEAR_FULL_PERCENT};
use serde::Serialize;

use crate::error::RETRY_AFTER_SECS;
use crate::state::AppState;

/// Whether the service can do its work.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"status": "ok", "redis": "up", "liveWorkers": 5, "queueDepth": 0,
    "redisUsedMemory": 1048576, "redisMaxMemory": 1073741824, "problems": []}))]
pub struct Health {
    /// "ok"; "degraded" when everything answers but Redis's memory is at 95% of its
    /// `maxmemory` or more (writes are about to be refused, or are: `store_full`); or
    /// "unavailable" when Redis or every worker is down. `problems` says which, in words.
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
    /// Bytes Redis uses (`used_memory` of `INFO memory`; on a cluster, summed over the
    /// primaries); absent while Redis does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_used_memory: Option<u64>,
    /// Redis's `maxmemory` in bytes, 0 for no limit (on a cluster, summed over the primaries; 0
    /// when one has none); absent while Redis does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_max_memory: Option<u64>,
    /// What is down, in words.
    problems: Vec<String>,
}

/// 200 when Redis answers, at least one worker is alive and Redis's memory is below
/// [`NEAR_FULL_PERCENT`] of its limit; else 503 saying what is wrong.
#[utoipa::path(get, path = "/health", tag = "service",
    responses(
        (status = 200, description = "Redis answers, workers are alive, and Redis's memory is below 95% of its `maxmemory`", body = Health),
        (status = 503, description = "Something is down, or Redis's memory is at 95% of its limit or more (`status`, `problems`)", body = Health,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let store = &state.store;
    let (ping, pool, depth, memory) = futures::join!(
        store.ping(),
        store.pool(),
        store.queue_depth(),
        store.memory()
    );
    let mut problems = Vec::new();
    if ping.is_err() {
        problems.push("redis: not answering".to_owned());
    }
    let live_workers = pool.map(|p| p.live_workers).unwrap_or(0);
    if ping.is_ok() && live_workers == 0 {
        problems.push("workers: none alive (no recent heartbeat)".to_owned());
    }
    let down = !problems.is_empty();
    let memory = memory.ok();
    if let Some(m) = memory.map(|m| m.fullest).filter(RedisMemory::near_full) {
        problems.push(format!(
            "redis memory: {} of {} bytes used (maxmemory{}), at or above {NEAR_FULL_PERCENT}%; \
             writes are refused (store_full) once it is full",
            m.used,
            m.max,
            if store.clustered() {
                " of one primary"
            } else {
                ""
            }
        ));
    }
    let memory = memory.map(|m| m.total);
    let body = Health {
        status: match (down, problems.is_empty()) {
            (true, _) => "unavailable",
            (false, false) => "degraded",
            (false, true) => "ok",
        },
        redis: if ping.is_ok() { "up" } else { "down" },
        live_workers,
        queue_depth: depth.ok(),
        redis_used_memory: memory.map(|m| m.used),
        redis_max_memory: memory.map(|m| m.max),
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
