//! What the tasks of one worker process share.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::types::config::Server;
use queue_core::settings::WorkerSettings;
use queue_core::{Batch, EventId, Store};
use tokio::sync::{oneshot, Semaphore};

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

/// The most events one `process.lua` call drains (each brings ten keys). A process's drain tasks
/// (WORKER_CONCURRENCY, 4 by default) each hold one event, so this is seldom reached.
const MAX_EVENTS_PER_CALL: usize = 16;

/// The `process.lua` calls this process may have in flight on each Redis primary
/// (`workers.calls_in_flight`), and the events waiting for one. Redis runs one script at a time:
/// a further call in flight only waits there, and takes a smaller batch than it would have taken
/// after it. A drain task holding a token waits here instead, while its event's jobs keep coming,
/// so that a busy primary gets fewer, fuller calls (group commit) and an idle one is called at
/// once. The task whose turn comes drains every event waiting for that primary in one call (on a
/// cluster, those of one slot: a script stays in one), so that the call's fixed cost is shared
/// by them all, and hands each task its event's batch. Each primary has its own count: a slow or
/// failing primary holds up its own events only.
#[derive(Debug)]
pub(crate) struct InFlight {
    per_primary: usize,
    /// Per primary (on one Redis: the one, `None`), and per primary that the routing ever
    /// named (a failover names a new one; a handful at most).
    gates: Mutex<HashMap<Option<Server>, Arc<Gate>>>,
}

/// Where one event's batch goes.
type Answer = oneshot::Sender<queue_core::Result<Batch>>;

/// One primary's calls in flight, and the events waiting for one, oldest first.
#[derive(Debug)]
struct Gate {
    calls: Arc<Semaphore>,
    waiting: Mutex<Vec<(EventId, Answer)>>,
}

impl Gate {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<(EventId, Answer)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InFlight {
    pub(crate) fn new(per_primary: usize) -> Self {
        Self {
            per_primary,
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// Applies the next batch of `event`'s jobs (up to `max_jobs`), once a call on its primary
    /// may go out: in that call, which this task or another makes, with the other events that
    /// wait for the same turn.
    pub(crate) async fn process(
        &self,
        store: &Store,
        event: EventId,
        max_jobs: usize,
    ) -> queue_core::Result<Batch> {
        let clustered = store.clustered();
        let primary = clustered
            .then(|| store.primary_of(queue_core::keys::slot_of_event(event)))
            .flatten();
        let gate = self.gate(primary);
        let (answer, mut answered) = oneshot::channel();
        gate.waiting().push((event, answer));
        loop {
            let permit = tokio::select! {
                biased;
                batch = &mut answered => return batch_of(batch),
                // Never closed, so never an error.
                permit = gate.calls.clone().acquire_owned() => permit.ok(),
            };
            let taken = take(&mut gate.waiting(), clustered, MAX_EVENTS_PER_CALL);
            if taken.is_empty() {
                // Another task took this event into its call: the batch comes from there.
                drop(permit);
                return batch_of(answered.await);
            }
            let events: Vec<EventId> = taken.iter().map(|(event, _)| *event).collect();
            let batches = store.process_events(&events, max_jobs).await;
            drop(permit);
            match batches {
                Ok(batches) => {
                    for ((_, answer), batch) in taken.into_iter().zip(batches) {
                        let _ = answer.send(batch);
                    }
                }
                Err(e) => {
                    for (_, answer) in taken {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
            // This event's batch is there now, unless the call was of other events (of another
            // slot, on a cluster): then it waits for the next turn.
        }
    }

    /// The gate of `primary` (`None`: the one Redis).
    fn gate(&self, primary: Option<Server>) -> Arc<Gate> {
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .entry(primary)
            .or_insert_with(|| {
                Arc::new(Gate {
                    calls: Arc::new(Semaphore::new(self.per_primary)),
                    waiting: Mutex::new(Vec::new()),
                })
            })
            .clone()
    }
}

/// Takes off `waiting` the events of the next call: the oldest, and those after it, up to `max`
/// in all; on a cluster only those of the oldest's slot.
fn take<T>(waiting: &mut Vec<(EventId, T)>, clustered: bool, max: usize) -> Vec<(EventId, T)> {
    let Some((first, _)) = waiting.first() else {
        return Vec::new();
    };
    let slot = queue_core::keys::slot_of_event(*first);
    let mut taken = Vec::new();
    let mut kept = Vec::with_capacity(waiting.len());
    for (event, answer) in waiting.drain(..) {
        if taken.len() < max && (!clustered || queue_core::keys::slot_of_event(event) == slot) {
            taken.push((event, answer));
        } else {
            kept.push((event, answer));
        }
    }
    *waiting = kept;
    taken
}

/// The batch a task was handed; none when the task making the call was stopped before it
/// answered (its process is shutting down): the caller tries again or gives the event up.
fn batch_of(
    batch: Result<queue_core::Result<Batch>, oneshot::error::RecvError>,
) -> queue_core::Result<Batch> {
    batch.unwrap_or_else(|_| {
        Err(queue_core::Error::Unavailable(fred::error::Error::new(
            fred::error::ErrorKind::Canceled,
            "the call that was to drain this event was stopped",
        )))
    })
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
    use super::*;

    fn node(port: u16) -> Option<Server> {
        Some(Server::new("127.0.0.1", port))
    }

    #[test]
    fn each_primary_has_its_own_count_of_calls_in_flight() {
        let limit = InFlight::new(2);
        let one = limit.gate(node(7000));
        assert!(
            Arc::ptr_eq(&one, &limit.gate(node(7000))),
            "one gate a primary"
        );
        assert!(!Arc::ptr_eq(&one, &limit.gate(node(7001))));
        assert!(!Arc::ptr_eq(&one, &limit.gate(None)));
        let first = one.calls.clone().try_acquire_owned();
        let second = one.calls.clone().try_acquire_owned();
        assert!(first.is_ok() && second.is_ok(), "two may be in flight");
        assert!(
            one.calls.clone().try_acquire_owned().is_err(),
            "a third waits"
        );
        assert!(
            limit
                .gate(node(7001))
                .calls
                .clone()
                .try_acquire_owned()
                .is_ok(),
            "a call on another primary does not wait for the first's"
        );
        drop(first);
        assert!(
            one.calls.clone().try_acquire_owned().is_ok(),
            "it goes once one ends"
        );
        drop(second);
    }

    #[test]
    fn on_one_redis_a_call_takes_the_waiting_events_oldest_first_up_to_the_most_a_call_drains() {
        let events: Vec<EventId> = (0..5).map(|_| EventId::new_random()).collect();
        let mut waiting: Vec<(EventId, usize)> = events.iter().copied().zip(0..).collect();
        let taken = take(&mut waiting, false, 3);
        assert_eq!(taken, events.iter().copied().zip(0..3).collect::<Vec<_>>());
        assert_eq!(
            waiting,
            events.iter().copied().zip(0..).skip(3).collect::<Vec<_>>()
        );
        assert_eq!(take(&mut waiting, false, 3).len(), 2);
        assert!(waiting.is_empty());
        assert!(take(&mut waiting, false, 3).is_empty());
    }

    #[test]
    fn on_a_cluster_a_call_takes_only_the_events_of_the_oldest_ones_slot() {
        use queue_core::keys::slot_of_event;
        let first = EventId::new_random();
        let slot = slot_of_event(first);
        let mut same = Vec::new();
        let mut other = Vec::new();
        while same.len() < 2 || other.len() < 2 {
            let event = EventId::new_random();
            if slot_of_event(event) == slot {
                same.push(event);
            } else if other.len() < 2 {
                other.push(event);
            }
        }
        let mut waiting = vec![
            (first, 0),
            (other[0], 1),
            (same[0], 2),
            (other[1], 3),
            (same[1], 4),
        ];
        let taken = take(&mut waiting, true, 16);
        assert_eq!(taken, vec![(first, 0), (same[0], 2), (same[1], 4)]);
        assert_eq!(
            waiting,
            vec![(other[0], 1), (other[1], 3)],
            "the rest wait, in order"
        );
    }
}
