//! Deleting an event (`DELETE /events/{id}`): every key of it goes, and Redis stays responsive
//! however large the event is.
//!
//! Two steps, each constant work for Redis whatever the event's size:
//! 1. `delete_event.lua` marks the event deleted: its hash goes (so every script and read finds
//!    no such event from then on: holds and reserves are refused, workers take none of its jobs,
//!    sweeps and reconciles write nothing) and a small tombstone (`EventKeys::deleted`, kept for
//!    JOB_RESULT_TTL) makes every job of the event read `failed`, "the event was deleted".
//! 2. [`Store::free_event`] frees the rest: one UNLINK of the event's other keys (Redis unlinks
//!    them at once and frees their memory on a background thread, so a 10,000-seat event with a
//!    full changes stream and a long queue costs the main thread microseconds), then the event
//!    leaves the service-wide sets (hints, sweep schedule, ready tokens, and last the events
//!    registry).
//!
//! Should the second step not happen (Redis went away between the two, the API died), the
//! housekeeping full pass, which walks the registry, finds the event gone when it sweeps it and
//! frees it then ([`Store::sweep`]); so does any sweep of it that comes earlier.

use fred::interfaces::{KeysInterface, ListInterface, SortedSetsInterface};

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::housekeeping::Pass;
use crate::ids::EventId;
use crate::keys::{self, EventKeys, Shard};
use crate::scripts::{self, arg};
use crate::store::Store;

/// Most ended events one housekeeping turn deletes.
pub const ENDED_PER_PASS: i64 = 100;

impl Store {
    /// Deletes an event and every key of it. `false` when there is no such event (none was
    /// created, or it was deleted before; what a deletion cut short left behind is freed all
    /// the same).
    pub async fn delete_event(&self, id: EventId) -> Result<bool> {
        let k = EventKeys::new(id);
        let mut reply = self
            .script(
                &scripts::DELETE_EVENT,
                [&k.event, &k.deleted],
                vec![
                    arg(self.queue().job_result_ttl_secs * 1000),
                    arg(keys::FINISHED_CHANNEL),
                    arg(id),
                ],
            )
            .await?;
        let deleted = reply.flag()?;
        let freed = self.free_event(id).await?;
        if deleted {
            tracing::info!(event = %id, keys = freed, "deleted an event");
        } else if freed > 0 {
            tracing::info!(event = %id, keys = freed, "finished deleting an event");
        }
        Ok(deleted)
    }

    /// Frees what is left of an event marked deleted (or never created): its keys but the
    /// tombstone, and its entries in the service-wide sets. Returns the keys unlinked. Safe to
    /// repeat, and a no-op for an event that was never there.
    pub(crate) async fn free_event(&self, id: EventId) -> Result<u64> {
        let k = EventKeys::new(id);
        // All of one slot (the event's hash tag). The event hash is in the list too, for a
        // deletion that met an event hash written after the mark (none is: every script that
        // writes it reads `total` first and stops without it).
        let freed: u64 = self.client_for(&k.event)?.unlink(k.live().to_vec()).await?;
        let member = id.to_string();
        // The shard's keys and the service-wide sets are slots of their own (on a cluster,
        // maybe other primaries): each command goes to its key's. On a cluster the event's
        // bookkeeping may be in any shard (`Store::shard_of` follows its primary), so every
        // shard is cleared, each on its own: what a shard whose primary is down keeps is tidied
        // by the passes that meet it (a sweep of a deleted event frees it again, a hint of an
        // empty queue is forgotten, a token of a deleted event drains nothing).
        let shards: Vec<Shard> = if self.clustered() {
            Shard::all().collect()
        } else {
            vec![Shard::of(id)]
        };
        let cleared = futures::future::join_all(shards.iter().map(|shard| {
            let member = member.as_str();
            async move {
                self.routed(shard.hints(), |c| async move {
                    Ok(c.zrem::<(), _, _>(shard.hints(), member).await?)
                })
                .await?;
                self.routed(shard.due(), |c| async move {
                    Ok(c.zrem::<(), _, _>(shard.due(), member).await?)
                })
                .await?;
                // Walks the shard's ready list, which holds at most a few tokens per busy event.
                self.routed(shard.ready(), |c| async move {
                    Ok(c.lrem::<(), _, _>(shard.ready(), 0, member).await?)
                })
                .await
            }
        }))
        .await;
        for (shard, result) in shards.iter().zip(cleared) {
            match result {
                Err(Error::Unavailable(e)) if self.clustered() => {
                    tracing::debug!(event = %id, shard = shard.index(), error = %e, "cannot clear a shard of a deleted event; the passes will");
                }
                other => other?,
            }
        }
        self.routed(keys::ENDS, |c| async move {
            Ok(c.zrem::<(), _, _>(keys::ENDS, id.to_string()).await?)
        })
        .await?;
        // Last: while the event is registered, the housekeeping full pass comes back to it.
        self.routed(keys::EVENTS, |c| {
            let member = member.clone();
            async move { Ok(c.zrem::<(), _, _>(keys::EVENTS, member).await?) }
        })
        .await?;
        Ok(freed)
    }

    /// Deletes the events whose `endsAt` plus EVENT_RETENTION is at or before `now` (at most
    /// [`ENDED_PER_PASS`] of them; the rest wait for the next turn). Counts the events it deleted.
    /// Run by the housekeeping-turn holder only; a deletion racing an admin's is harmless (the
    /// second finds no event and frees what is left).
    pub async fn delete_ended(&self, now: Millis) -> Pass {
        let retention = i64::try_from(self.queue().event_retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(retention);
        let mut pass = Pass::default();
        let due: Result<Vec<String>> = async {
            Ok(self
                .client_for(keys::ENDS)?
                .zrangebyscore(
                    keys::ENDS,
                    "-inf",
                    cutoff as f64,
                    false,
                    Some((0, ENDED_PER_PASS)),
                )
                .await?)
        }
        .await;
        let due = match due {
            Ok(due) => due,
            Err(e) => {
                pass.add(Err(e));
                return pass;
            }
        };
        // One event whose primary is down does not hold up the others' deletion.
        for member in due {
            if !pass.add(self.delete_ended_one(member).await) {
                break;
            }
        }
        pass
    }

    /// One member of the `endsAt` set that is due: deletes the event (1), or drops a member
    /// that names none.
    async fn delete_ended_one(&self, member: String) -> Result<u64> {
        let Ok(id) = member.parse::<EventId>() else {
            self.client_for(keys::ENDS)?
                .zrem::<(), _, _>(keys::ENDS, member)
                .await?;
            return Ok(0);
        };
        let deleted = self.delete_event(id).await?;
        if deleted {
            tracing::info!(event = %id, "deleted an event that ended EVENT_RETENTION ago");
        }
        Ok(u64::from(deleted))
    }

    /// Which of `events` do not exist (any more): the stream hub ends the feeds of an event
    /// deleted by any API process with it.
    pub async fn missing_events(&self, events: &[EventId]) -> Result<Vec<EventId>> {
        let exists = events.iter().map(|id| {
            let key = EventKeys::new(*id).event;
            let client = self.client_for(&key);
            async move { Ok::<_, crate::Error>(client?.exists::<u64, _>(key).await?) }
        });
        let found = futures::future::try_join_all(exists).await?;
        Ok(events
            .iter()
            .zip(found)
            .filter(|(_, n)| *n == 0)
            .map(|(id, _)| *id)
            .collect())
    }
}
