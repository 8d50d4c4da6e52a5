//! Accepting jobs, in batches.
//!
//! At an on-sale, many requests for one event arrive while the previous one is still at Redis.
//! Rather than one script run each, the jobs of an event that arrive while a batch of it is in
//! flight wait in this process's outbox and go together in the next run of `enqueue.lua` (group
//! commit). A lone request goes at once, so nothing waits for a batch to fill: batches form only
//! under load, where they save Redis and this process the per-command work (one script run, one
//! RPUSH and one lease check for the batch).
//!
//! Order (G3) is the order of the sequence numbers the script hands out: the order the jobs
//! joined the outbox, and batch after batch. A batch is sent by a task of its own, never by a
//! request, so a client that goes away mid-batch cannot strand the others.
//!
//! The batches and the hints are [`Enqueuer`]'s: one per connection pool (each HTTP worker of
//! the API has one), so that a batch goes out on the connections of the thread that formed it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::interfaces::SortedSetsInterface;
use fred::types::sorted_sets::Ordering;
use fred::types::Value;
use tokio::sync::oneshot;

use crate::clock::wall_clock_ms;
use crate::error::{Error, Result};
use crate::ids::{EventId, JobId, SeatId, UserId};
use crate::job::{Enqueued, JobKind};
use crate::keys::{slot_of, EventKeys, Shard};
use crate::reply::{Code, Reply};
use crate::scripts::{self, arg, arg_bytes};
use crate::store::Store;

/// The most jobs one script run accepts; the rest wait for the next run.
pub const MAX_BATCH: usize = 128;
/// How often one API process renews its enqueue hint for an event (see `Shard::hints`).
const HINT_EVERY: Duration = Duration::from_secs(5);
/// A hint older than this, on an empty queue, is forgotten; it must exceed HINT_EVERY by far.
pub const HINT_KEEP: Duration = Duration::from_secs(60);

/// One job waiting to be sent, and where its answer goes.
#[derive(Debug)]
struct Pending {
    kind: JobKind,
    seat: SeatId,
    user: UserId,
    answer: oneshot::Sender<Result<Enqueued>>,
}

/// Accepts jobs onto their events' queues, in batches per event. Cheap to clone; clones share
/// one outbox.
#[derive(Debug, Clone)]
pub struct Enqueuer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    /// The jobs of each event waiting for the next batch. An event is in the map exactly while
    /// a sender task runs for it.
    outbox: Mutex<HashMap<EventId, Vec<Pending>>>,
    /// When this enqueuer last recorded an enqueue hint per event (see [`Shard::hints`]).
    hinted: Mutex<HashMap<EventId, Instant>>,
}

impl Enqueuer {
    /// An enqueuer sending on `store`'s connections.
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                outbox: Mutex::default(),
                hinted: Mutex::default(),
            }),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Pre-checks the seat and appends a job to its event's queue. Returns the job's id and
    /// position, or why it was not accepted (nothing is written then).
    pub async fn enqueue(&self, kind: JobKind, seat: SeatId, user: UserId) -> Result<Enqueued> {
        // Fail at once, as every other operation does, while Redis is known to be down.
        let event = seat.event();
        self.store().client_for(&EventKeys::new(event).queue)?;
        let (answer, answered) = oneshot::channel();
        let job = Pending {
            kind,
            seat,
            user,
            answer,
        };
        let start_sender = {
            let mut events = self.inner.outbox.lock().map_err(|_| POISONED_OUTBOX)?;
            match events.entry(event) {
                Entry::Occupied(mut waiting) => {
                    waiting.get_mut().push(job);
                    false
                }
                Entry::Vacant(none) => {
                    none.insert(vec![job]);
                    true
                }
            }
        };
        if start_sender {
            tokio::spawn(self.clone().send_batches(event));
        }
        // The sender answers every job it takes; a sender that is gone (the runtime is shutting
        // down) leaves the job's fate unknown, like a connection dropped mid-command.
        answered.await.map_err(|_| Error::not_connected())?
    }

    /// Sends the event's waiting jobs, a batch at a time, until none are left.
    async fn send_batches(self, event: EventId) {
        let mut guard = SenderGuard {
            enqueuer: &self,
            event,
            armed: true,
        };
        loop {
            let batch: Vec<Pending> = {
                let Ok(mut events) = self.inner.outbox.lock() else {
                    return;
                };
                let Some(waiting) = events.get_mut(&event) else {
                    return;
                };
                if waiting.is_empty() {
                    events.remove(&event);
                    guard.armed = false;
                    return;
                }
                let take = waiting.len().min(MAX_BATCH);
                waiting.drain(..take).collect()
            };
            match self.enqueue_batch(event, &batch).await {
                Ok((outcomes, wake)) => {
                    let accepted = outcomes
                        .iter()
                        .any(|o| matches!(o, Enqueued::Accepted { .. }));
                    for (job, outcome) in batch.into_iter().zip(outcomes) {
                        let _ = job.answer.send(Ok(outcome));
                    }
                    // The jobs are stored and answered: telling the workers comes next, and a
                    // failure to must not turn their 202s into errors.
                    if accepted {
                        self.after_accepting(event, wake).await;
                    }
                }
                Err(e) => {
                    for job in batch {
                        let _ = job.answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One run of `enqueue.lua` for `batch` (jobs of `event`): one outcome per job, in order, and
    /// whether the caller took the event's lease and must wake a worker.
    async fn enqueue_batch(
        &self,
        event: EventId,
        batch: &[Pending],
    ) -> Result<(Vec<Enqueued>, bool)> {
        let k = EventKeys::new(event);
        let store = self.store();
        let mut args: Vec<Value> = Vec::with_capacity(3 + 3 * batch.len());
        args.push(arg(store.queue().max_depth));
        args.push(arg(store.workers().lease_ms));
        args.push(arg(event));
        for job in batch {
            args.push(arg(job.kind.code()));
            args.push(arg(job.seat.number()));
            args.push(arg_bytes(&job.user.to_bytes()));
        }
        // On a single Redis the script pushes the ready token itself, which saves the wake-up a
        // round trip; on a cluster the shard's ready list is in another slot than the event, so
        // it is left out and `after_accepting` pushes the token.
        let with_ready = [
            k.event.as_str(),
            &k.seats,
            &k.queue,
            Shard::of(event).ready(),
        ];
        let script_keys = if store.clustered() {
            &with_ready[..3]
        } else {
            &with_ready[..]
        };
        let (mut reply, client) = store
            .script_on(&scripts::ENQUEUE, script_keys, args)
            .await?;
        let wake = reply.flag()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for _ in batch {
            let outcome = reply
                .value()
                .ok_or_else(|| Error::Corrupt("an enqueue reply is short of outcomes".into()))?;
            outcomes.push(self.outcome(event, Reply::new(outcome))?);
        }
        if outcomes
            .iter()
            .any(|o| matches!(o, Enqueued::Accepted { .. }))
        {
            // REDIS_REPLICA_ACKS: no 202 before the replicas have the jobs. Should they not
            // acknowledge in time the batch is answered 503, though its jobs are queued on the
            // primary (and applied, unless a failover undoes them): like a reply lost on the
            // way, the client cannot tell.
            store.replicated(&client, slot_of(&k.queue)).await?;
        }
        Ok((outcomes, wake))
    }

    /// After jobs of `event` were accepted: wakes a worker if this process took the lease, and
    /// records the hint that lets the housekeeping pass find the queue within a second should
    /// no token get pushed (without one, its full pass finds it within a minute).
    async fn after_accepting(&self, event: EventId, wake: bool) {
        if wake {
            if let Err(e) = self.store().push_ready(event).await {
                tracing::warn!(%event, error = %e, "accepted jobs but could not push their ready token");
            }
        }
        if let Err(e) = self.hint(event).await {
            tracing::warn!(%event, error = %e, "accepted jobs but could not record their hint");
        }
    }

    /// One job's outcome in an `enqueue.lua` reply.
    fn outcome(&self, event: EventId, mut reply: Reply) -> Result<Enqueued> {
        Ok(match reply.code()? {
            Code::Accepted => Enqueued::Accepted {
                job: JobId::new(event, reply.unsigned()?)
                    .ok_or_else(|| Error::Corrupt("an enqueue reply numbered a job 0".into()))?,
                position: reply.unsigned()?,
            },
            Code::QueueFull => Enqueued::QueueFull {
                depth: reply.unsigned()?,
            },
            code => Enqueued::Refused(reply.refusal(code, self.store().rules().max_held_seats)?),
        })
    }

    /// Records, at most every few seconds per event and process, that this event has jobs, so
    /// that the housekeeping pass can find a queue whose ready token was never pushed. Written
    /// only after an accepted job: a request for an unknown event writes nothing.
    async fn hint(&self, event: EventId) -> Result<()> {
        let now = Instant::now();
        {
            let hinted = self.inner.hinted.lock().map_err(|_| POISONED_HINTS)?;
            if hinted
                .get(&event)
                .is_some_and(|at| now.duration_since(*at) < HINT_EVERY)
            {
                return Ok(());
            }
        }
        let hints = self.store().shard_of(event).hints();
        self.store()
            .routed(hints, |client| async move {
                Ok(client
                    .zadd::<(), _, _>(
                        hints,
                        None,
                        Some(Ordering::GreaterThan),
                        false,
                        false,
                        (wall_clock_ms() as f64, event.to_string()),
                    )
                    .await?)
            })
            .await?;
        let mut hinted = self.inner.hinted.lock().map_err(|_| POISONED_HINTS)?;
        if hinted.len() > 100_000 {
            hinted.retain(|_, at| now.duration_since(*at) < HINT_EVERY);
        }
        hinted.insert(event, now);
        Ok(())
    }
}

/// Takes the event out of the outbox when its sender stops before it has emptied it (the task
/// was dropped, say, as the runtime shut down), answering the jobs still waiting with an error:
/// a later request then starts a new sender instead of waiting on one that is gone.
struct SenderGuard<'a> {
    enqueuer: &'a Enqueuer,
    event: EventId,
    /// Cleared by the sender when it leaves the outbox empty and the event out of the map, after
    /// which the map entry, if any, belongs to a newer sender.
    armed: bool,
}

impl Drop for SenderGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let left = match self.enqueuer.inner.outbox.lock() {
            Ok(mut events) => events.remove(&self.event).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for job in left {
            let _ = job.answer.send(Err(Error::not_connected()));
        }
    }
}

const POISONED_OUTBOX: Error = Error::Poisoned("the enqueue outbox");
const POISONED_HINTS: Error = Error::Poisoned("the enqueue hints");
