//! What the handlers share: the store and the measured drain rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use queue_core::workers::PoolSnapshot;
use queue_core::{Enqueuer, Store};
use tokio_util::sync::CancellationToken;

/// Cheap to clone: every part but the store is shared by the whole process.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Redis connections. Each HTTP worker has a pool of its own, connected from its thread, so
    /// that a request and its Redis commands stay on one thread (see `Application::build`); the
    /// process's background tasks have another.
    pub store: Store,
    /// Accepts holds and reserves, in batches per event, on the connections of `store`.
    pub enqueuer: Enqueuer,
    pub drain: Arc<DrainRate>,
    pub waiters: Arc<crate::waiters::Waiters>,
    pub changes: Arc<crate::changes::ChangeHub>,
    /// The snapshots that open seat streams, shared by the streams opened together.
    pub snapshots: Arc<crate::snapshots::Snapshots>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Who is asking: the user a request acts for or is shown to, and who is an admin.
    pub identity: Arc<crate::identity::Identity>,
    /// The seat streams open, per client address and in all.
    pub stream_slots: Arc<crate::stream_slots::StreamSlots>,
    /// How long a seat stream stays open before it is ended (the client resumes).
    pub stream_lifetime: Duration,
    /// The key of the job ids this process hands out and verifies.
    pub job_ids: Arc<crate::job_ids::JobIdKey>,
    /// Cancelled when the API starts stopping, so that open streams end and let it stop.
    pub stopping: CancellationToken,
}

/// Until the pool has applied its first batch, the estimate assumes this rate (jobs/s).
const PRIOR_JOBS_PER_SEC: f64 = 1000.0;
/// How often the rate is re-read from the workers' heartbeats.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The rate at which one event's queue drains, measured from the workers' heartbeats: jobs applied
/// per second spent applying them. One event's jobs are applied one batch at a time, so this,
/// not the pool's total throughput, is what a client's wait depends on.
#[derive(Debug)]
pub struct DrainRate {
    jobs_per_sec: AtomicU64,
}

impl Default for DrainRate {
    fn default() -> Self {
        Self {
            jobs_per_sec: AtomicU64::new(PRIOR_JOBS_PER_SEC.to_bits()),
        }
    }
}

impl DrainRate {
    pub fn jobs_per_sec(&self) -> f64 {
        f64::from_bits(self.jobs_per_sec.load(Ordering::Relaxed))
    }

    /// Seconds until a job with `position` jobs ahead is applied, to the millisecond.
    pub fn estimate_secs(&self, position: u64) -> f64 {
        let secs = (position + 1) as f64 / self.jobs_per_sec();
        (secs * 1000.0).ceil() / 1000.0
    }

    fn update(&self, previous: Option<PoolSnapshot>, now: PoolSnapshot) {
        let window = previous
            .filter(|p| now.busy_us > p.busy_us && now.applied >= p.applied)
            .map(|p| (now.applied - p.applied, now.busy_us - p.busy_us));
        let (applied, busy_us) = window.unwrap_or((now.applied, now.busy_us));
        if applied > 0 && busy_us > 0 {
            let rate = applied as f64 / (busy_us as f64 / 1e6);
            self.jobs_per_sec.store(rate.to_bits(), Ordering::Relaxed);
        }
    }

    /// Re-reads the heartbeats every second until `shutdown`.
    pub async fn keep_measuring(&self, store: &Store, shutdown: CancellationToken) {
        let mut previous = None;
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Ok(now) = store.pool().await {
                self.update(previous, now);
                previous = Some(now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_measured_rate() {
        let rate = DrainRate::default();
        let snapshot = |applied, busy_us| PoolSnapshot {
            live_workers: 1,
            applied,
            busy_us,
        };
        rate.update(None, snapshot(0, 0));
        assert_eq!(
            rate.jobs_per_sec(),
            PRIOR_JOBS_PER_SEC,
            "no measurement keeps the prior"
        );
        rate.update(None, snapshot(500, 1_000_000));
        assert_eq!(rate.jobs_per_sec(), 500.0);
        rate.update(Some(snapshot(500, 1_000_000)), snapshot(2500, 2_000_000));
        assert_eq!(rate.jobs_per_sec(), 2000.0, "the latest window wins");
        assert_eq!(rate.estimate_secs(1999), 1.0);
    }
}
