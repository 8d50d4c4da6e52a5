//! Tidying that correctness never waits for: forgetting lapsed holds and expired job records
//! (sweeps), waking queues whose worker died (reconcile), and dropping dead workers' heartbeats.

use std::collections::HashMap;

use fred::interfaces::{ConfigInterface, HashesInterface, ListInterface, SortedSetsInterface};
use fred::types::scan::Scanner;
use futures::TryStreamExt;

use crate::clock::{wall_clock_ms, Millis};
use crate::enqueue::HINT_KEEP;
use crate::error::Result;
use crate::ids::EventId;
use crate::keys::{self, EventKeys, Shard};
use crate::scripts::{self, arg};
use crate::store::Store;
use crate::workers::Heartbeat;

/// Most holds and job records one sweep of one event removes; a larger backlog takes more runs.
const SWEEP_LIMIT: usize = 1000;
/// Most events one pass sweeps or reconciles.
const PASS_LIMIT: usize = 500;

/// What a periodic pass did. A pass goes on past a shard or an event it cannot do (on a
/// cluster, a primary that is down must not hold up the tidying of the others' events; one
/// event with a broken key must not hold up the rest) and reports the first error it met. It
/// stops at a Redis that is out of memory: every further write would be refused too, and a
/// pass of thousands of refused calls every period would only add to its load.
#[derive(Debug, Default)]
pub struct Pass {
    /// Holds found lapsed (the sweeps), queues woken (reconcile) or events deleted.
    pub count: u64,
    /// The first error met on the way, if any.
    pub error: Option<crate::Error>,
}

impl Pass {
    /// Counts what a step did, or keeps its error. Returns whether the pass goes on.
    pub(crate) fn add(&mut self, step: Result<u64>) -> bool {
        match step {
            Ok(n) => {
                self.count += n;
                true
            }
            Err(e) => {
                let go_on = !matches!(e, crate::Error::StoreFull(_));
                self.error.get_or_insert(e);
                go_on
            }
        }
    }
}

impl Store {
    /// Sweeps one event now and reschedules its next sweep. Returns the holds it found lapsed.
    /// An event that is gone (deleted) is freed instead (`deletion.rs`).
    pub async fn sweep(&self, event: EventId) -> Result<u64> {
        let k = EventKeys::new(event);
        let mut reply = self
            .script(
                &scripts::SWEEP,
                [
                    &k.seats,
                    &k.deadlines,
                    &k.holders,
                    &k.results,
                    &k.done,
                    &k.tick,
                    &k.changes,
                    &k.retry,
                    &k.event,
                ],
                vec![arg(SWEEP_LIMIT)],
            )
            .await?;
        let lapsed = reply.unsigned()?;
        let next_due = reply.int()?;
        let retry_due = reply.int()? > 0;
        if reply.flag()? {
            // Deleted (or never there): free what a deletion cut short may have left.
            let freed = self.free_event(event).await?;
            if freed > 0 {
                tracing::info!(%event, keys = freed, "finished deleting an event");
            }
            return Ok(0);
        }
        if next_due >= 0 {
            self.schedule_sweep(event, next_due).await?;
        }
        if retry_due {
            // A retry is due: make sure a worker comes for it.
            self.wake_if_stalled(event).await?;
        }
        Ok(lapsed)
    }

    /// Records that `event` needs a sweep at `at` (ms, Redis clock), unless one is scheduled
    /// earlier already (ZADD LT): a worker scheduling a retry and a sweep scheduling a job
    /// record's expiry must not push each other's time back.
    pub async fn schedule_sweep(&self, event: EventId, at: Millis) -> Result<()> {
        let due = self.shard_of(event).due();
        self.client_for(due)?
            .zadd::<(), _, _>(
                due,
                None,
                Some(fred::types::sorted_sets::Ordering::LessThan),
                false,
                false,
                (at as f64, event.to_string()),
            )
            .await?;
        Ok(())
    }

    /// `read` of every shard, all at once (on a cluster they are on several primaries): the
    /// shards that answered, each with its answer. A shard that failed is left out, its error
    /// kept in `pass`; `None` when the pass must stop there (see [`Pass`]).
    async fn each_shard<T, F, Fut>(&self, pass: &mut Pass, read: F) -> Option<Vec<(Shard, T)>>
    where
        F: Fn(Shard) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let reads = Shard::all().map(|shard| {
            let read = read(shard);
            async move { (shard, read.await) }
        });
        let mut answered = Vec::with_capacity(crate::keys::SHARDS);
        for (shard, answer) in futures::future::join_all(reads).await {
            match answer {
                Ok(answer) => answered.push((shard, answer)),
                Err(e) => {
                    if !pass.add(Err(e)) {
                        return None;
                    }
                }
            }
        }
        Some(answered)
    }

    /// Sweeps every event whose sweep is due by `now`. The schedule holds Redis-clock times and
    /// callers pass their own clock: on one machine they agree; across machines a skew only
    /// moves tidying earlier or later, never correctness. Counts the holds found lapsed.
    pub async fn sweep_due(&self, now: Millis) -> Pass {
        let mut pass = Pass::default();
        let Some(shards) = self
            .each_shard(&mut pass, |shard| async move {
                Ok(self
                    .client_for(shard.due())?
                    .zrangebyscore::<Vec<(String, f64)>, _, _, _>(
                        shard.due(),
                        "-inf",
                        now as f64,
                        true,
                        Some((0, PASS_LIMIT as i64)),
                    )
                    .await?)
            })
            .await
        else {
            return pass;
        };
        for (shard, due) in shards {
            for (event, score) in due {
                if !pass.add(self.sweep_due_one(shard, event, score).await) {
                    return pass;
                }
            }
        }
        pass
    }

    /// One entry of a shard's sweep schedule that fell due.
    async fn sweep_due_one(&self, shard: Shard, event: String, score: f64) -> Result<u64> {
        let Ok(id) = event.parse::<EventId>() else {
            self.client_for(shard.due())?
                .zrem::<(), _, _>(shard.due(), event)
                .await?;
            return Ok(0);
        };
        // The entry goes first, unless a worker scheduled the event anew meanwhile; the sweep
        // then schedules the next time it is needed (if ever).
        self.script(
            &scripts::FORGET_STALE,
            [shard.due()],
            vec![arg(event), arg(score)],
        )
        .await?;
        self.sweep(id).await
    }

    /// Sweeps and reconciles every event ever created: the slow safety net for what a crashed
    /// process left behind (a sweep schedule, or a hint it never wrote). Counts the holds it
    /// found lapsed (a queue it wakes is logged).
    pub async fn tidy_all(&self) -> Pass {
        let mut pass = Pass::default();
        let client = match self.client_for(keys::EVENTS) {
            Ok(client) => client,
            Err(e) => {
                pass.add(Err(e));
                return pass;
            }
        };
        let mut pages = std::pin::pin!(client.zscan(keys::EVENTS, "*", Some(200)));
        loop {
            let mut page = match pages.try_next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    pass.add(Err(e.into()));
                    break;
                }
            };
            for (member, _) in page.take_results().unwrap_or_default() {
                if let Some(id) = member.as_str().and_then(|s| s.parse::<EventId>().ok()) {
                    if !pass.add(self.sweep(id).await)
                        || !pass.add(self.wake_if_stalled(id).await.map(|_| 0))
                    {
                        return pass;
                    }
                }
            }
        }
        pass
    }

    /// Takes the event's lease and pushes a ready token if its queue has jobs and no worker holds
    /// the lease. Returns whether it did, and the queue's depth.
    async fn wake_if_stalled(&self, id: EventId) -> Result<(bool, i64)> {
        let k = EventKeys::new(id);
        let mut reply = self
            .script(
                &scripts::RECONCILE,
                [&k.event, &k.queue, &k.retry],
                vec![arg(self.workers().lease_ms)],
            )
            .await?;
        let wake = reply.flag()?;
        let depth = reply.int()?;
        if wake {
            tracing::info!(event = %id, depth, "woke a queue whose lease had lapsed");
            self.push_ready(id).await?;
        }
        Ok((wake, depth))
    }

    /// Wakes every hinted event whose queue has jobs but no live lease, and forgets hints that
    /// are old and whose queue is empty. Counts the queues woken.
    pub async fn reconcile(&self) -> Pass {
        // Every shard's newest hints; then the newest PASS_LIMIT of them all.
        let mut pass = Pass::default();
        let Some(shards) = self
            .each_shard(&mut pass, |shard| async move {
                Ok(self
                    .client_for(shard.hints())?
                    .zrange::<Vec<(String, f64)>, _, _, _>(
                        shard.hints(),
                        0,
                        PASS_LIMIT as i64 - 1,
                        None,
                        true, // newest first: with more hints than that, the busiest matter
                        None,
                        true,
                    )
                    .await?)
            })
            .await
        else {
            return pass;
        };
        let mut hints: Vec<(Shard, String, f64)> = shards
            .into_iter()
            .flat_map(|(shard, hints)| hints.into_iter().map(move |(e, at)| (shard, e, at)))
            .collect();
        hints.sort_by(|a, b| b.2.total_cmp(&a.2));
        hints.truncate(PASS_LIMIT);
        for (shard, event, hinted_at) in hints {
            if !pass.add(self.reconcile_one(shard, event, hinted_at).await) {
                break;
            }
        }
        pass
    }

    /// One hint: wakes its event's queue if it stalled (1), or forgets the hint if it is old and
    /// the queue empty.
    async fn reconcile_one(&self, shard: Shard, event: String, hinted_at: f64) -> Result<u64> {
        let Ok(id) = event.parse::<EventId>() else {
            self.client_for(shard.hints())?
                .zrem::<(), _, _>(shard.hints(), event)
                .await?;
            return Ok(0);
        };
        let (wake, depth) = self.wake_if_stalled(id).await?;
        let stale_before = (wall_clock_ms() - HINT_KEEP.as_millis() as i64) as f64;
        if !wake && depth == 0 && hinted_at < stale_before {
            self.script(
                &scripts::FORGET_STALE,
                [shard.hints()],
                vec![arg(event), arg(hinted_at)],
            )
            .await?;
        }
        Ok(u64::from(wake))
    }

    /// Total jobs waiting across the events with recent activity (those hinted).
    pub async fn queue_depth(&self) -> Result<u64> {
        let reads = Shard::all().map(|shard| {
            let client = self.client_for(shard.hints());
            async move {
                Ok::<_, crate::Error>(
                    client?
                        .zrange::<Vec<String>, _, _, _>(
                            shard.hints(),
                            0,
                            -1,
                            None,
                            false,
                            None,
                            false,
                        )
                        .await?,
                )
            }
        });
        let events: Vec<String> = futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let depths = events
            .iter()
            .filter_map(|e| e.parse::<EventId>().ok())
            .map(|id| {
                let queue = EventKeys::new(id).queue;
                let client = self.client_for(&queue);
                async move { Ok::<_, crate::Error>(client?.llen::<u64, _>(queue).await?) }
            });
        Ok(futures::future::try_join_all(depths)
            .await?
            .into_iter()
            .sum())
    }

    /// Drops heartbeats older than `older_than_ms`.
    pub async fn forget_dead_workers(&self, older_than_ms: i64) -> Result<()> {
        let beats: HashMap<String, String> = self
            .client_for(keys::WORKERS)?
            .hgetall(keys::WORKERS)
            .await?;
        let cutoff = wall_clock_ms() - older_than_ms;
        for (worker, beat) in beats {
            if Heartbeat::parse(&beat).is_none_or(|b| b.at < cutoff) {
                self.client_for(keys::WORKERS)?
                    .hdel::<(), _, _>(keys::WORKERS, worker)
                    .await?;
            }
        }
        Ok(())
    }
}

impl Store {
    /// Takes the housekeeping turn for `ttl_ms` if no other worker holds it: one worker at a time
    /// runs the periodic passes, and the turn passes on by itself if that worker dies.
    pub async fn take_housekeeping_turn(&self, worker: &str, ttl_ms: u64) -> Result<bool> {
        let mut reply = self
            .script(
                &scripts::TAKE_TURN,
                [keys::HOUSEKEEPING_LOCK],
                vec![arg(worker), arg(ttl_ms)],
            )
            .await?;
        reply.flag()
    }

    /// Makes Redis announce expired keys (`notify-keyspace-events` gains `E` and `x`, keeping
    /// whatever else is set): on a cluster, every primary (CONFIG is per node, and so are
    /// keyspace notifications; the listener calls this again when a new primary appears).
    /// Managed services may forbid CONFIG; the caller logs that and relies on the sweep
    /// schedule alone.
    pub async fn enable_expiry_notifications(&self) -> Result<()> {
        for client in self.primary_clients()? {
            enable_expiry_notifications_on(&client).await?;
        }
        Ok(())
    }
}

/// [`Store::enable_expiry_notifications`] on the node `client` sends to.
async fn enable_expiry_notifications_on(client: &impl ConfigInterface) -> Result<()> {
    let current: HashMap<String, String> = client.config_get("notify-keyspace-events").await?;
    let mut flags = current
        .get("notify-keyspace-events")
        .cloned()
        .unwrap_or_default();
    let has_expired = flags.contains('x') || flags.contains('A');
    if flags.contains('E') && has_expired {
        return Ok(());
    }
    for flag in ['E', 'x'] {
        if !flags.contains(flag) {
            flags.push(flag);
        }
    }
    client.config_set("notify-keyspace-events", flags).await?;
    Ok(())
}
