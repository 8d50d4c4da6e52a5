//! Accepting jobs, in batches.
//!
//! At an on-sale, many requests arrive while the previous one is still at Redis. Rather than one
//! script run each, the jobs that arrive while a batch is in flight wait in this process's outbox
//! and go together in the next run of `enqueue.lua` (group commit). A lone request goes at once,
//! so nothing waits for a batch to fill: batches form only under load, where they save Redis and
//! this process the per-command work.
//!
//! Which jobs may share a run is a [`Group`]: on one Redis, those of every event, since at an
//! on-sale of many events each one gets a job only every few ms, and a run's fixed cost (the
//! EVALSHA, the prelude, TIME) is most of what a lone job costs Redis; on a cluster, those of
//! one event, since a script stays in one slot. Within a run each event still gets one queue
//! push and one lease check for its jobs, and a broken key of one event fails its jobs alone.
//!
//! Order (G3) is the order of the sequence numbers the script hands out: per event, the order
//! the jobs joined the outbox, and batch after batch (a group has at most one batch in flight).
//! A batch is sent by a task of its own, never by a request, so a client that goes away
//! mid-batch cannot strand the others.
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
use crate::keys::{slot_of_event, EventKeys, Shard};
use crate::reply::{Code, Reply};
use crate::scripts::{self, arg, arg_bytes};
use crate::store::Store;

/// The most jobs one script run accepts; the rest wait for the next run.
pub const MAX_BATCH: usize = 128;
/// How often one API process renews its enqueue hint for an event (see `Shard::hints`).
const HINT_EVERY: Duration = Duration::from_secs(5);
/// A hint older than this, on an empty queue, is forgotten; it must exceed HINT_EVERY by far.
pub const HINT_KEEP: Duration = Duration::from_secs(60);

/// Which waiting jobs may go in one script run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    /// One Redis: every event's.
    All,
    /// A cluster: one event's (its keys are one slot).
    Event(EventId),
}

/// One job waiting to be sent, and where its answer goes.
#[derive(Debug)]
struct Pending {
    event: EventId,
    kind: JobKind,
    seat: SeatId,
    user: UserId,
    answer: oneshot::Sender<Result<Enqueued>>,
}

/// Accepts jobs onto their events' queues, in batches (see [`Group`]). Cheap to clone; clones
/// share one outbox.
#[derive(Debug, Clone)]
pub struct Enqueuer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    /// The jobs of each group waiting for the next batch, in the order they came. A group is in
    /// the map exactly while a sender task runs for it.
    outbox: Mutex<HashMap<Group, Vec<Pending>>>,
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
        self.store().client_for_event(event)?;
        let (answer, answered) = oneshot::channel();
        let group = if self.store().clustered() {
            Group::Event(event)
        } else {
            Group::All
        };
        let job = Pending {
            event,
            kind,
            seat,
            user,
            answer,
        };
        let start_sender = {
            let mut events = self.inner.outbox.lock().map_err(|_| POISONED_OUTBOX)?;
            match events.entry(group) {
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
            tokio::spawn(self.clone().send_batches(group));
        }
        // The sender answers every job it takes; a sender that is gone (the runtime is shutting
        // down) leaves the job's fate unknown, like a connection dropped mid-command.
        answered.await.map_err(|_| Error::not_connected())?
    }

    /// Sends the group's waiting jobs, a batch at a time, until none are left.
    async fn send_batches(self, group: Group) {
        let mut guard = SenderGuard {
            enqueuer: &self,
            group,
            armed: true,
        };
        loop {
            let batch: Vec<Pending> = {
                let Ok(mut events) = self.inner.outbox.lock() else {
                    return;
                };
                let Some(waiting) = events.get_mut(&group) else {
                    return;
                };
                if waiting.is_empty() {
                    events.remove(&group);
                    guard.armed = false;
                    return;
                }
                let take = waiting.len().min(MAX_BATCH);
                waiting.drain(..take).collect()
            };
            let events = by_event(batch);
            match self.enqueue_batch(&events).await {
                Ok(replies) => {
                    let woken: Vec<(EventId, bool)> = events
                        .into_iter()
                        .zip(replies)
                        .filter_map(|((event, jobs), reply)| {
                            answer(jobs, reply).map(|wake| (event, wake))
                        })
                        .collect();
                    // The jobs are stored and answered: telling the workers comes next, for
                    // every event at once (one round trip, not one per event), and a failure
                    // to must not turn their 202s into errors.
                    futures::future::join_all(
                        woken
                            .into_iter()
                            .map(|(event, wake)| self.after_accepting(event, wake)),
                    )
                    .await;
                }
                Err(e) => {
                    for job in events.into_iter().flat_map(|(_, jobs)| jobs) {
                        let _ = job.answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One run of `enqueue.lua` for a batch, its jobs grouped by event (one event on a
    /// cluster): what the script said of each event's jobs, in order. An error of the run is
    /// every job's; an event whose keys are broken is its own jobs' alone.
    async fn enqueue_batch(
        &self,
        events: &[(EventId, Vec<Pending>)],
    ) -> Result<Vec<Result<EventReply>>> {
        let store = self.store();
        // On a single Redis the script pushes the ready token itself, which saves the wake-up a
        // round trip; on a cluster the shard's ready list is in another slot than the event, so
        // it is left out and `after_accepting` pushes the token.
        let with_ready = !store.clustered();
        let (max_depth, lease_ms) = (store.queue().max_depth, store.workers().lease_ms);
        let jobs: usize = events.iter().map(|(_, jobs)| jobs.len()).sum();
        // Made again only should Redis not know the script (`Store::script_built`).
        let build = || {
            let mut keys: Vec<String> = Vec::with_capacity(4 * events.len());
            let mut args: Vec<Value> = Vec::with_capacity(3 + 2 * events.len() + 3 * jobs);
            args.push(arg(max_depth));
            args.push(arg(lease_ms));
            args.push(arg(if with_ready { 4 } else { 3 }));
            for (event, jobs) in events {
                keys.extend(EventKeys::for_enqueue(*event));
                if with_ready {
                    keys.push(Shard::of(*event).ready().to_owned());
                }
                args.push(arg(event));
                args.push(arg(jobs.len()));
                for job in jobs {
                    args.push(arg(job.kind.code()));
                    args.push(arg(job.seat.number()));
                    args.push(arg_bytes(&job.user.to_bytes()));
                }
            }
            (keys, args)
        };
        let (mut reply, client) = store.script_built(&scripts::ENQUEUE, build).await?;
        let mut replies = Vec::with_capacity(events.len());
        for (event, jobs) in events {
            replies.push(self.event_reply(*event, jobs.len(), &mut reply)?);
        }
        let accepted = replies.iter().flatten().any(|r| {
            r.outcomes
                .iter()
                .any(|o| matches!(o, Enqueued::Accepted { .. }))
        });
        if accepted {
            // REDIS_REPLICA_ACKS: no 202 before the replicas have the jobs. Should they not
            // acknowledge in time the batch is answered 503, though its jobs are queued on the
            // primary (and applied, unless a failover undoes them): like a reply lost on the
            // way, the client cannot tell. The slot is the first event's, where the script ran.
            let slot = events
                .first()
                .map(|(event, _)| slot_of_event(*event))
                .unwrap_or_default();
            store.replicated(&client, slot).await?;
        }
        Ok(replies)
    }

    /// Reads what `enqueue.lua` said of one event's `jobs` jobs off the reply: `wake` and three
    /// items per job, or `-1, why` when one of its keys has the wrong type (that event's
    /// error). An error of the reply's shape is the whole batch's: past it, nothing can be
    /// told apart.
    fn event_reply(
        &self,
        event: EventId,
        jobs: usize,
        reply: &mut Reply,
    ) -> Result<Result<EventReply>> {
        let wake = match reply.int()? {
            -1 => return Ok(Err(Error::Corrupt(reply.string()?))),
            flag => flag == 1,
        };
        let mut outcomes = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            let items: Vec<Value> = (0..3)
                .map(|_| reply.value())
                .collect::<Option<_>>()
                .ok_or_else(|| Error::Corrupt("an enqueue reply is short of outcomes".into()))?;
            outcomes.push(self.outcome(event, Reply::new(Value::Array(items)))?);
        }
        Ok(Ok(EventReply { outcomes, wake }))
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

/// What `enqueue.lua` said of one event's jobs in a batch.
#[derive(Debug)]
struct EventReply {
    /// One per job, in order.
    outcomes: Vec<Enqueued>,
    /// Whether the caller took the event's lease and must wake a worker.
    wake: bool,
}

/// Answers an event's jobs in a batch with what the script said of them. Returns, when it
/// accepted any, whether the caller took the event's lease (see [`EventReply::wake`]).
fn answer(jobs: Vec<Pending>, reply: Result<EventReply>) -> Option<bool> {
    match reply {
        Ok(EventReply { outcomes, wake }) => {
            let accepted = outcomes
                .iter()
                .any(|o| matches!(o, Enqueued::Accepted { .. }));
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.answer.send(Ok(outcome));
            }
            accepted.then_some(wake)
        }
        Err(e) => {
            for job in jobs {
                let _ = job.answer.send(Err(e.clone()));
            }
            None
        }
    }
}

/// A batch's jobs grouped by event, the events in the order of their first job and each
/// event's jobs in the order they came (the order of their sequence numbers).
fn by_event(batch: Vec<Pending>) -> Vec<(EventId, Vec<Pending>)> {
    let mut events: Vec<(EventId, Vec<Pending>)> = Vec::new();
    let mut at: HashMap<EventId, usize> = HashMap::new();
    for job in batch {
        match at.entry(job.event) {
            Entry::Occupied(i) => events[*i.get()].1.push(job),
            Entry::Vacant(slot) => {
                slot.insert(events.len());
                events.push((job.event, vec![job]));
            }
        }
    }
    events
}

/// Takes the group out of the outbox when its sender stops before it has emptied it (the task
/// was dropped, say, as the runtime shut down), answering the jobs still waiting with an error:
/// a later request then starts a new sender instead of waiting on one that is gone.
struct SenderGuard<'a> {
    enqueuer: &'a Enqueuer,
    group: Group,
    /// Cleared by the sender when it leaves the outbox empty and the group out of the map, after
    /// which the map entry, if any, belongs to a newer sender.
    armed: bool,
}

impl Drop for SenderGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let left = match self.enqueuer.inner.outbox.lock() {
            Ok(mut events) => events.remove(&self.group).unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for job in left {
            let _ = job.answer.send(Err(Error::not_connected()));
        }
    }
}

const POISONED_OUTBOX: Error = Error::Poisoned("the enqueue outbox");
const POISONED_HINTS: Error = Error::Poisoned("the enqueue hints");
