//! What the tasks of one worker process share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use queue_core::settings::WorkerSettings;
use queue_core::Store;

/// A pause after a Redis error, so a dead Redis is not hammered.
pub(crate) const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// The pause after Redis refused a write for lack of memory. Memory comes back when someone
/// raises `maxmemory` or deletes data, not within milliseconds, so trying sooner only adds load.
pub(crate) const FULL_PAUSE: Duration = Duration::from_secs(1);

/// Whether this process has found Redis refusing writes for memory (`maxmemory` with
/// `noeviction`) and said so. Every heartbeat, sweep and hand-over would fail meanwhile, so an
/// episode is logged once when it begins and once when it ends rather than once per write.
#[derive(Debug, Default)]
pub(crate) struct FullStore(AtomicBool);

impl FullStore {
    /// Reports a failed Redis call: a refusal for memory at warn the first time in an episode
    /// (debug after that), any other error through `log`, each time. Returns how long to pause
    /// before trying again.
    pub(crate) fn failed(&self, e: &queue_core::Error, log: impl FnOnce()) -> Duration {
        if !matches!(e, queue_core::Error::StoreFull(_)) {
            log();
            return ERROR_PAUSE;
        }
        if self.0.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %e, "a write refused: Redis is still out of memory");
        } else {
            tracing::warn!(error = %e, "Redis is out of memory (maxmemory) and refuses writes; retrying every second, logging again only once it takes writes");
        }
        FULL_PAUSE
    }

    /// A write succeeded: ends an episode of refusals, saying so.
    pub(crate) fn succeeded(&self) {
        if self.0.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis takes writes again");
        }
    }
}

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
    pub(crate) full: FullStore,
}
