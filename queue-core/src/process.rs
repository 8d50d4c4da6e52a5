//! Draining the job queues (accepting jobs is `enqueue.rs`, reading a job's status `jobs.rs`).
//!
//! Each event has its own queue list, and jobs are taken off it and applied in one script
//! (`process.lua`), so a job is never in flight outside Redis. Workers learn which events have
//! work from ready tokens (see `Shard::ready`); a token comes with the event's *lease*, a deadline
//! in the event hash saying that a worker is on it. Whoever takes an expired lease pushes a token.
//! If a worker dies, its lease lapses and the housekeeping pass takes it over (`reconcile`), so an
//! accepted job waits at most a lease length longer, and is never lost (G4).

use std::time::Duration;

use fred::clients::Client;
use fred::interfaces::{ListInterface, PubsubInterface};

use crate::clock::Millis;
use crate::error::Result;
use crate::ids::EventId;
use crate::job::JobView;
use crate::keys::{self, EventKeys, Shard};
use crate::scripts::{self, arg};
use crate::store::Store;
use crate::wire::decode_record;

/// What one `process` call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The jobs applied (or failed), in queue order.
    pub finished: Vec<JobView>,
    /// Jobs still waiting on the event's queue.
    pub remaining: u64,
    /// When the event next needs a sweep, if ever.
    pub next_due: Option<Millis>,
}

impl Store {
    /// Tells the workers that `event` has jobs and that the caller holds its lease.
    pub async fn push_ready(&self, event: EventId) -> Result<()> {
        let (ready, event) = (self.shard_of(event).ready(), event.to_string());
        self.routed(ready, |client| {
            let event = event.clone();
            async move { Ok(client.rpush::<(), _, _>(ready, event).await?) }
        })
        .await
    }

    /// Waits up to `timeout` for a ready token of one of `shards`, on a client of the caller's
    /// own (a blocking pop holds up every other command on its connection). `None` when none
    /// came. Redis pops from the first of the lists that has a token, so callers that watch
    /// several shards vary the order (on a cluster, one BLPOP names one shard: each shard is a
    /// slot of its own).
    pub async fn next_ready(
        &self,
        client: &Client,
        shards: &[Shard],
        timeout: Duration,
    ) -> Result<Option<EventId>> {
        let lists: Vec<&str> = shards.iter().map(|s| s.ready()).collect();
        match client
            .blpop::<Option<(String, String)>, _>(lists, timeout.as_secs_f64())
            .await
        {
            Ok(Some((_, event))) => Ok(event.parse().ok()),
            Ok(None) => Ok(None),
            // fred reports a blocking pop that timed out as an error of kind Timeout.
            Err(e) if *e.kind() == fred::error::ErrorKind::Timeout => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies up to `max_jobs` jobs from the head of the event's queue, renewing the caller's
    /// lease while jobs remain and giving it up when none do.
    pub async fn process(&self, event: EventId, max_jobs: usize) -> Result<Batch> {
        let mut batches = self.process_events(&[event], max_jobs).await?;
        batches.pop().unwrap_or_else(|| {
            Err(crate::Error::Corrupt(
                "process.lua answered for no event".into(),
            ))
        })
    }

    /// [`Store::process`] for each of `events`, in one script run: on one Redis any events; on
    /// a cluster, events of one slot (a script stays in one). Its fixed cost (the round trip,
    /// the script's start, its announcement of the finished jobs) is shared by them all. The
    /// outer error is the run's, and so every event's; an event whose data has the wrong type
    /// gets its own error, and the others are drained as if it were not there.
    pub async fn process_events(
        &self,
        events: &[EventId],
        max_jobs: usize,
    ) -> Result<Vec<Result<Batch>>> {
        let (rules, queue) = (self.rules(), self.queue());
        // With REDIS_REPLICA_ACKS the script publishes nothing: the results are announced here,
        // once the replicas have them.
        let defer = self.waits_for_replicas();
        let mut keys = Vec::with_capacity(events.len() * 10);
        for event in events {
            let k = EventKeys::new(*event);
            keys.extend([
                k.event,
                k.seats,
                k.deadlines,
                k.holders,
                k.queue,
                k.results,
                k.done,
                k.tick,
                k.changes,
                k.retry,
            ]);
        }
        let slot = keys.first().map(|k| keys::slot_of(k)).unwrap_or_default();
        let mut args = vec![
            arg(max_jobs),
            arg(rules.hold_ttl_secs * 1000),
            arg(rules.max_held_seats),
            arg(queue.job_result_ttl_secs * 1000),
            arg(self.workers().lease_ms),
            arg(if defer { "" } else { keys::FINISHED_CHANNEL }),
            arg(queue.retry_attempts),
            arg(queue.retry_base_ms),
            arg(queue.retry_max_ms),
            arg(jitter()),
        ];
        args.extend(events.iter().map(arg));
        let (mut reply, client) = self.script_on(&scripts::PROCESS, keys, args).await?;
        let announcement = reply.next_bytes().transpose()?;
        // The reply read through first, each event's records kept raw: the replicas' WAIT and
        // the announcement go out whatever a record holds, as the jobs were applied.
        let mut answers = Vec::with_capacity(events.len());
        for _ in events {
            let applied = reply.int()?;
            if applied < 0 {
                answers.push(Err(crate::Error::Corrupt(reply.string()?)));
                continue;
            }
            let remaining = reply.unsigned()?;
            let next_due = Some(reply.int()?).filter(|d| *d >= 0);
            let records = (0..applied)
                .map(|_| {
                    reply.next_bytes().unwrap_or_else(|| {
                        Err(crate::Error::Corrupt(
                            "process.lua answered fewer records than jobs".into(),
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            answers.push(Ok((records, remaining, next_due)));
        }
        if answers
            .iter()
            .any(|a| a.as_ref().is_ok_and(|(records, ..)| !records.is_empty()))
        {
            self.replicated(&client, slot).await?;
        }
        if let Some(message) = announcement.filter(|m| !m.is_empty()) {
            client
                .publish::<(), _, _>(keys::FINISHED_CHANNEL, message)
                .await?;
        }
        let limit = self.rules().max_held_seats;
        let batches = events
            .iter()
            .zip(answers)
            .map(|(event, answer)| {
                let (records, remaining, next_due) = answer?;
                let finished = records
                    .iter()
                    .map(|record| decode_record(*event, record, limit))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Batch {
                    finished,
                    remaining,
                    next_due,
                })
            })
            .collect();
        Ok(batches)
    }
}

/// A random number in [0, 1) for the jitter of retry delays (Lua's generator is seeded the same
/// on every script run, so the randomness comes from here).
fn jitter() -> f64 {
    use std::hash::BuildHasher;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    (random >> 11) as f64 / (1u64 << 53) as f64
}
