//! `api`: serves the HTTP API until SIGTERM or SIGINT, then finishes requests in flight and exits 0.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var("CONFIG_DIR").unwrap_or_else(|_| "config".into()));
    let settings = queue_core::Settings::load(&dir)?;
    let _log = bootstrap::init_tracing("api", settings.log.dir.as_ref(), &settings.log.level)?;
    let app = api::Application::build(&settings).await?;
    app.run_until_stopped(bootstrap::shutdown_signal()).await
}
