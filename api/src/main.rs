//! `api`: serves the HTTP API until SIGTERM or SIGINT, then finishes requests in flight and exits 0.
//!
//! The requests run on actix's HTTP worker threads, each with its own Redis pool; this runtime
//! only runs the background tasks (finished-job and seat-change feeds, the drain rate), which
//! need no more than one thread.

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    api::run_from_env().await
}
