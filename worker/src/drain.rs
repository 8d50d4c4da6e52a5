//! A drain task: takes ready tokens and applies the jobs of their events.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fred::clients::Client;
use queue_core::clock::wall_clock_ms;
use queue_core::keys::{Shard, SHARDS};
use queue_core::{Batch, EventId, JobState, Millis};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::shared::Worker;

/// How long a drain task blocks on the ready list before looking at the shutdown signal again.
const POP_TIMEOUT: Duration = Duration::from_secs(1);
/// Batches one task applies to one event before it hands the event back to the pool, so that a
/// busy event does not starve the others and several workers take turns on it.
const ROUNDS_PER_TURN: usize = 16;
/// How long a task that holds a token keeps trying to apply its event's jobs while Redis is
/// unavailable to the process's pool, on one Redis: the token came on the task's own
/// connection, so Redis is back and the pool follows within one reconnect step (capped at 1 s).
/// Giving up sooner would leave the event to its lease lapsing (2 s) and the next housekeeping
/// pass. Not on a cluster: there the token came from another connection, and the event's
/// primary is most likely failing over, which takes longer; a task waiting on it would hold up
/// the live primaries' events, whose tokens wait for a free task.
const UNAVAILABLE_PATIENCE: Duration = Duration::from_millis(1500);
/// How often it tries meanwhile.
const UNAVAILABLE_POLL: Duration = Duration::from_millis(25);

/// The sweep times this process put on the schedule, per event, so that a batch whose next
/// sweep is no earlier than one already there skips the ZADD (most batches, at an on-sale).
#[derive(Debug, Default)]
pub(crate) struct Sweeps {
    at: Mutex<HashMap<EventId, Millis>>,
}

/// A time scheduled this little ahead (or less) may be swept, and taken off the schedule, any
/// moment: it is not relied upon. Also covers a skew between this clock and Redis's.
const SWEEP_MARGIN_MS: Millis = 1000;

impl Sweeps {
    /// Whether `at` must go on the schedule. Not when this process scheduled the event for no
    /// later than `at`, comfortably in the future: that entry is still there (ZADD LT only moves
    /// it earlier), or a sweep took it and scheduled the event again from its data.
    fn needed(&self, event: EventId, at: Millis) -> bool {
        let Ok(scheduled) = self.at.lock() else {
            return true;
        };
        !scheduled
            .get(&event)
            .is_some_and(|s| *s <= at && *s > wall_clock_ms() + SWEEP_MARGIN_MS)
    }

    fn scheduled(&self, event: EventId, at: Millis) {
        if let Ok(mut scheduled) = self.at.lock() {
            if scheduled.len() > 10_000 {
                let now = wall_clock_ms();
                scheduled.retain(|_, s| *s > now);
            }
            scheduled.insert(event, at);
        }
    }
}

/// Where the drain tasks of a process take their ready tokens from.
#[derive(Debug)]
pub(crate) enum Tokens {
    /// One Redis: the task pops from every shard's list with one BLPOP, on a connection of its
    /// own, starting the list of shards one further along each time (BLPOP takes from the
    /// first list that has a token, so a fixed order would serve the first shards first).
    Direct(Client),
    /// A cluster (one BLPOP cannot name lists of several slots): the process's poppers, one
    /// per shard with a blocking connection each ([`pop_shard`]), hand their tokens on.
    Handed(Arc<tokio::sync::Mutex<mpsc::Receiver<EventId>>>),
}

impl Tokens {
    /// The next token, waiting up to about [`POP_TIMEOUT`].
    async fn next(
        &self,
        worker: &Worker,
        round: &mut usize,
    ) -> queue_core::Result<Option<EventId>> {
        match self {
            Self::Direct(client) => {
                *round = round.wrapping_add(1);
                let mut shards: Vec<Shard> = Shard::all().collect();
                shards.rotate_left(*round % SHARDS);
                worker.store.next_ready(client, &shards, POP_TIMEOUT).await
            }
            Self::Handed(tokens) => {
                let mut tokens = tokens.lock().await;
                match tokio::time::timeout(POP_TIMEOUT, tokens.recv()).await {
                    Ok(Some(event)) => Ok(Some(event)),
                    // No popper left (the process is stopping), or none had a token.
                    Ok(None) | Err(_) => Ok(None),
                }
            }
        }
    }

    /// Hands the tokens taken and not yet drained back to their shards (on shutdown).
    pub(crate) async fn give_back(&self, worker: &Worker) {
        let Self::Handed(tokens) = self else {
            return;
        };
        let mut tokens = tokens.lock().await;
        while let Ok(event) = tokens.try_recv() {
            hand_back(worker, event).await;
        }
    }

    async fn quit(&self) {
        if let Self::Direct(client) = self {
            let _ = fred::interfaces::ClientLike::quit(client).await;
        }
    }
}

/// Pushes a token this process took back to its shard, for another worker (or this one) to
/// take: the lease came with it.
async fn hand_back(worker: &Worker, event: EventId) {
    if let Err(e) = worker.store.push_ready(event).await {
        worker.full.failed(&e, || {
            tracing::warn!(%event, error = %e, "cannot hand the event on; its lease will lapse and be taken over")
        });
    }
}

/// On a cluster: takes the tokens of one shard, on a blocking connection of its own to the
/// shard's primary, and hands each to the next free drain task of the process. A token waits
/// here while every drain task is busy (at most one per shard and process); on shutdown it goes
/// back to its shard. When the routing moves the shard's slot to another primary (a failover, a
/// resharding) the popper reconnects there; a pop that overruns its block (its primary went
/// away) is dropped with its connection.
pub(crate) async fn pop_shard(
    worker: Arc<Worker>,
    shard: Shard,
    tokens: mpsc::Sender<EventId>,
    shutdown: CancellationToken,
) {
    let shards = [shard];
    let slot = queue_core::keys::slot_of(shard.ready());
    let mut popper: Option<(fred::types::config::Server, Client)> = None;
    while !shutdown.is_cancelled() {
        let primary = worker.store.primary_of(slot);
        if let Some((_, client)) = popper.take_if(|(node, _)| primary.as_ref() != Some(node)) {
            quit(&client).await;
        }
        let client = match &popper {
            Some((_, client)) => client.clone(),
            None => match worker.store.dedicated_client_at(slot).await {
                Ok((node, client)) => popper.insert((node, client)).1.clone(),
                Err(e) => {
                    let pause = worker.full.failed(&e, || {
                        tracing::warn!(shard = shard.index(), error = %e, "cannot take work from Redis")
                    });
                    tokio::time::sleep(pause).await;
                    continue;
                }
            },
        };
        let limit = POP_TIMEOUT + Duration::from_secs(1);
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = tokio::time::timeout(limit, worker.store.next_ready(&client, &shards, POP_TIMEOUT)) => next,
        };
        let Ok(next) = next else {
            if let Some((_, client)) = popper.take() {
                quit(&client).await;
            }
            continue;
        };
        match next {
            Ok(Some(event)) => {
                let handed = tokio::select! {
                    _ = shutdown.cancelled() => false,
                    sent = tokens.send(event) => sent.is_ok(),
                };
                if !handed {
                    hand_back(&worker, event).await;
                    break;
                }
            }
            Ok(None) => {}
            Err(e) => {
                let shard = shard.index();
                let pause = worker.full.failed(
                    &e,
                    || tracing::warn!(shard, error = %e, "cannot take work from Redis"),
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
    if let Some((_, client)) = popper {
        quit(&client).await;
    }
}

pub(crate) async fn run(
    worker: Arc<Worker>,
    sweeps: Arc<Sweeps>,
    tokens: Arc<Tokens>,
    task: usize,
    shutdown: CancellationToken,
) {
    let mut round = task;
    while !shutdown.is_cancelled() {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = tokens.next(&worker, &mut round) => next,
        };
        match next {
            Ok(Some(event)) => drain(&worker, &sweeps, event, &shutdown).await,
            Ok(None) => {}
            Err(e) => {
                let pause = worker.full.failed(
                    &e,
                    || tracing::warn!(task, error = %e, "cannot take work from Redis"),
                );
                tokio::time::sleep(pause).await;
            }
        }
    }
    tokens.quit().await;
}

/// Applies the next batch of the event's jobs, trying again for a little while when Redis is
/// unavailable (see [`UNAVAILABLE_PATIENCE`]). Trying again is safe whatever became of the
/// failed call: each run of the script applies the jobs at the head of the queue and records their
/// results in Redis, so a run whose answer was lost is followed by one that applies the next jobs.
async fn process(
    worker: &Worker,
    event: EventId,
    shutdown: &CancellationToken,
) -> queue_core::Result<Batch> {
    let started = Instant::now();
    loop {
        let answer = worker
            .in_flight
            .process(&worker.store, event, worker.settings.batch_size)
            .await;
        match answer {
            Err(queue_core::Error::Unavailable(_))
                if !worker.store.clustered()
                    && started.elapsed() < UNAVAILABLE_PATIENCE
                    && !shutdown.is_cancelled() =>
            {
                tokio::time::sleep(UNAVAILABLE_POLL).await;
            }
            answer => return answer,
        }
    }
}

/// Applies the event's jobs for a turn. The token came with the event's lease, which `process`
/// renews while jobs remain and gives up when none do; a task that stops with jobs left (its
/// turn is over, or the process is shutting down) passes the token on.
async fn drain(worker: &Worker, sweeps: &Sweeps, event: EventId, shutdown: &CancellationToken) {
    for _ in 0..ROUNDS_PER_TURN {
        let started = Instant::now();
        let batch = match process(worker, event, shutdown).await {
            Ok(batch) => batch,
            Err(e) => {
                // The lease lapses and the housekeeping pass wakes the event again. On a
                // cluster the task goes straight back to the other events: a primary found
                // unreachable is refused without a round trip, so nothing is hammered.
                let pause = worker.full.failed(
                    &e,
                    || tracing::warn!(%event, error = %e, "cannot apply jobs"),
                );
                if !(worker.store.clustered() && matches!(e, queue_core::Error::Unavailable(_))) {
                    tokio::time::sleep(pause).await;
                }
                return;
            }
        };
        let counters = &worker.counters;
        counters
            .applied
            .fetch_add(batch.finished.len() as u64, Ordering::Relaxed);
        counters
            .busy_us
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        counters.tally.jobs_finished(&batch.finished);
        for job in &batch.finished {
            if let JobState::Failed { reason, .. } = &job.state {
                tracing::error!(job = %job.id, reason, "job failed");
            }
        }
        if let Some(at) = batch.next_due.filter(|at| sweeps.needed(event, *at)) {
            match worker.store.schedule_sweep(event, at).await {
                Ok(()) => sweeps.scheduled(event, at),
                Err(e) => {
                    worker.full.failed(
                        &e,
                        || tracing::warn!(%event, error = %e, "cannot schedule a sweep"),
                    );
                }
            }
        }
        if batch.remaining == 0 {
            return;
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    hand_back(worker, event).await;
}

/// Closes a popper's connection, waiting at most a second (a primary that is gone never answers
/// QUIT).
async fn quit(client: &Client) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        fred::interfaces::ClientLike::quit(client),
    )
    .await;
}
