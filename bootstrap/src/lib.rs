//! Process plumbing shared by the `api` and `worker` binaries, called once from their `main`:
//! the tracing subscriber (JSON lines to a daily file `<dir>/<name>.YYYY-MM-DD.log`, readable
//! lines on stderr) and the shutdown signal (SIGTERM or SIGINT).

use std::path::Path;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// Keep the returned guard alive until exit: dropping it flushes the file writer.
pub fn init_tracing(name: &str, dir: &Path, level: &str) -> anyhow::Result<WorkerGuard> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the log directory {}", dir.display()))?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .filename_suffix("log")
        .build(dir)
        .with_context(|| format!("cannot open a log file in {}", dir.display()))?;
    let (file, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_new(level)
        .with_context(|| format!("LOG_LEVEL `{level}` is not a valid tracing filter"))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            fmt::layer()
                .json()
                .with_current_span(false)
                .with_writer(file),
        )
        .with(fmt::layer().with_writer(std::io::stderr))
        .try_init()
        .context("a tracing subscriber is installed already")?;
    Ok(guard)
}

/// A token cancelled on the first SIGTERM or SIGINT, so that the process stops taking work,
/// finishes what it holds and exits 0.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match signal(SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = terminate => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        cancel.cancel();
    });
    token
}
