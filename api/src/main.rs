//! `api`: serves the HTTP API until SIGTERM or SIGINT, then finishes requests in flight and exits 0.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::run_from_env().await
}
