//! What the tasks of one worker process share.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use queue_core::settings::WorkerSettings;
use queue_core::Store;

/// A pause after a Redis error, so a dead Redis is not hammered.
pub(crate) const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// Counters of one worker process, reported in its heartbeat.
#[derive(Debug, Default)]
pub struct Counters {
    pub applied: AtomicU64,
    pub busy_us: AtomicU64,
    pub holds_lapsed_by_notification: AtomicU64,
    pub holds_lapsed_by_sweep: AtomicU64,
    /// What this process did since it last added to the service-wide figures (every heartbeat).
    pub tally: queue_core::metrics::Tally,
}

/// The worker process as its tasks see it.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) store: Store,
    pub(crate) settings: WorkerSettings,
    pub(crate) name: String,
    pub(crate) counters: Arc<Counters>,
}
