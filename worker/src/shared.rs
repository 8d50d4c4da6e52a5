//! What the tasks of one worker process share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::types::config::Server;
use queue_core::settings::WorkerSettings;
use queue_core::{EventId, Store};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The `process.lua` calls this process may have in flight on each Redis primary
/// (`workers.calls_in_flight`). Redis runs one script at a time: a further call in flight only
/// waits there, and takes a smaller batch than it would have taken after it. A drain task holding
/// a token waits here instead, while its event's jobs keep coming, so that a busy primary gets
/// fewer, fuller calls (group commit) and an idle one is called at once. Each primary has its own
/// count: a slow or failing primary holds up its own events only.
#[derive(Debug)]
pub(crate) struct InFlight {
    per_primary: usize,
    /// Per primary (on one Redis: the one, `None`), and per primary that the routing ever
    /// named (a failover names a new one; a handful at most).
    gates: Mutex<HashMap<Option<Server>, Arc<Semaphore>>>,
}

impl InFlight {
    pub(crate) fn new(per_primary: usize) -> Self {
        Self {
            per_primary,
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until a call on `event`'s primary may go out; the call is in flight while the
    /// permit lives.
    pub(crate) async fn enter(
        &self,
        store: &Store,
        event: EventId,
    ) -> Option<OwnedSemaphorePermit> {
        let primary = store
            .clustered()
            .then(|| store.primary_of(queue_core::keys::slot_of_event(event)))
            .flatten();
        self.enter_at(primary).await
    }

    /// Waits until a call on `primary` may go out (`None`: the one Redis).
    async fn enter_at(&self, primary: Option<Server>) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
            gates
                .entry(primary)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_primary)))
                .clone()
        };
        // Never closed, so never an error.
        gate.acquire_owned().await.ok()
    }
}

/// The worker process as its tasks see it.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) store: Store,
    pub(crate) settings: WorkerSettings,
    pub(crate) name: String,
    pub(crate) counters: Arc<Counters>,
    pub(crate) full: FullStore,
    pub(crate) in_flight: InFlight,
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn node(port: u16) -> Option<Server> {
        Some(Server::new("127.0.0.1", port))
    }

    #[test]
    fn a_call_waits_while_its_primary_has_as_many_in_flight_as_allowed_and_goes_once_one_ends() {
        let limit = InFlight::new(2);
        let first = limit.enter_at(node(7000)).now_or_never().flatten();
        let second = limit.enter_at(node(7000)).now_or_never().flatten();
        assert!(first.is_some() && second.is_some(), "two may be in flight");
        let mut third = Box::pin(limit.enter_at(node(7000)));
        assert!((&mut third).now_or_never().is_none(), "a third waits");
        drop(first);
        assert!(
            third.now_or_never().flatten().is_some(),
            "it goes once one ends"
        );
        drop(second);
    }

    #[test]
    fn each_primary_has_its_own_count() {
        let limit = InFlight::new(1);
        let on_one = limit.enter_at(node(7000)).now_or_never().flatten();
        assert!(on_one.is_some());
        assert!(
            limit
                .enter_at(node(7001))
                .now_or_never()
                .flatten()
                .is_some(),
            "a call on another primary does not wait for the first's"
        );
        assert!(
            limit.enter_at(None).now_or_never().flatten().is_some(),
            "nor one on a lone Redis"
        );
        assert!(limit.enter_at(node(7000)).now_or_never().is_none());
    }
}
