//! `worker`: applies queued jobs until SIGTERM or SIGINT, then finishes what it holds and exits 0.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var("CONFIG_DIR").unwrap_or_else(|_| "config".into()));
    let settings = queue_core::Settings::load(&dir)?;
    let name = std::env::var("WORKER_NAME").unwrap_or_else(|_| worker::default_name());
    let _log = bootstrap::init_tracing(&name, settings.log.dir.as_ref(), &settings.log.level)?;
    let app = worker::Application::build(&settings, name).await?;
    app.run_until_stopped(bootstrap::shutdown_signal()).await
}
