//! `worker`: applies queued jobs until SIGTERM or SIGINT, then finishes what it holds and exits 0.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    worker::run_from_env().await
}
