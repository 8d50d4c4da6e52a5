//! Process plumbing shared by the `api` and `worker` binaries, called once from their `main`:
//! the tracing subscriber (JSON lines to a daily file `<dir>/<name>.YYYY-MM-DD.log`, readable
//! lines on stderr) and the shutdown signal (SIGTERM or SIGINT).

use std::path::Path;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::{self, Layer, SubscriberExt};
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
    let client_faults = ClientFaults {
        keep: level.contains("debug") || level.contains("trace"),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(client_faults)
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

/// Drops actix-http's ERROR line for a connection whose client sent a malformed request head, or
/// none within the request timeout, unless LOG_LEVEL asks for debug or trace. actix answers those
/// itself (400, 431, 408) before the app sees a request, and logs each as `stream error: ...` at
/// ERROR: about 180 bytes in the JSON file and a line on stderr per bad request, so a flood of
/// them would fill the disk with the client's mistakes. The app's own 4xx answers log nothing;
/// a 5xx keeps its ERROR line with its cause (`api::error`).
struct ClientFaults {
    keep: bool,
}

/// The dispatcher's messages for a client's fault (actix-http's `DispatchError::Parse` and
/// `SlowRequestTimeout`, as its dispatcher logs them).
const CLIENT_FAULTS: [&str; 2] = [
    "stream error: request parse error",
    "stream error: request did not complete within the specified timeout",
];
const DISPATCHER: &str = "actix_http::h1::dispatcher";

impl<S: Subscriber> Layer<S> for ClientFaults {
    fn event_enabled(&self, event: &Event<'_>, _: layer::Context<'_, S>) -> bool {
        let meta = event.metadata();
        if self.keep || *meta.level() != Level::ERROR || meta.target() != DISPATCHER {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        !CLIENT_FAULTS.iter().any(|f| message.0.starts_with(f))
    }
}

/// The `message` field of an event.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
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
