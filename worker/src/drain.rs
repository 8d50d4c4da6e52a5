//! A drain task: takes ready tokens and applies the jobs of their events.

use std::sync::Arc;
use std::time::Instant;

use fred::clients::Client;
use queue_core::{Batch, EventId, JobState};
use tokio_util::sync::CancellationToken;

use crate::{
    Worker, ERROR_PAUSE, POP_TIMEOUT, ROUNDS_PER_TURN, UNAVAILABLE_PATIENCE, UNAVAILABLE_POLL,
};

pub(crate) async fn run(
    worker: Arc<Worker>,
    client: Client,
    task: usize,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = worker.store.next_ready(&client, POP_TIMEOUT) => next,
        };
        match next {
            Ok(Some(event)) => drain(&worker, event, &shutdown).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(task, error = %e, "cannot take work from Redis");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    let _ = fred::interfaces::ClientLike::quit(&client).await;
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
        match worker
            .store
            .process(event, worker.settings.batch_size)
            .await
        {
            Err(queue_core::Error::Unavailable(_))
                if started.elapsed() < UNAVAILABLE_PATIENCE && !shutdown.is_cancelled() =>
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
async fn drain(worker: &Worker, event: EventId, shutdown: &CancellationToken) {
    for _ in 0..ROUNDS_PER_TURN {
        let started = Instant::now();
        let batch = match process(worker, event, shutdown).await {
            Ok(batch) => batch,
            Err(e) => {
                // The lease lapses and the housekeeping pass wakes the event again.
                tracing::warn!(%event, error = %e, "cannot apply jobs");
                tokio::time::sleep(ERROR_PAUSE).await;
                return;
            }
        };
        worker.note_batch(batch.finished.len(), started);
        worker.counters.tally.jobs_finished(&batch.finished);
        for job in &batch.finished {
            if let JobState::Failed { reason, .. } = &job.state {
                tracing::error!(job = %job.id, reason, "job failed");
            }
        }
        if let Some(at) = batch.next_due.filter(|at| worker.sweeps.needed(event, *at)) {
            match worker.store.schedule_sweep(event, at).await {
                Ok(()) => worker.sweeps.scheduled(event, at),
                Err(e) => tracing::warn!(%event, error = %e, "cannot schedule a sweep"),
            }
        }
        if batch.remaining == 0 {
            return;
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
    if let Err(e) = worker.store.push_ready(event).await {
        tracing::warn!(%event, error = %e, "cannot hand the event on; its lease will lapse and be taken over");
    }
}
