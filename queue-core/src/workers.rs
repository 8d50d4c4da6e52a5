//! Worker heartbeats: who is alive, and how fast the pool drains.

use std::collections::HashMap;

use fred::interfaces::HashesInterface;

use crate::clock::wall_clock_ms;
use crate::error::{Error, Result};
use crate::keys;
use crate::scripts::{self, arg};
use crate::store::Store;

/// A heartbeat is older than this many heartbeat intervals: its worker counts as dead.
pub const MISSED_BEATS: i64 = 3;

/// One worker's report of itself, stored as `<ms>|<jobs applied>|<µs spent applying>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// When it was sent (ms, the worker's clock).
    pub at: i64,
    /// Jobs this worker process applied since it started.
    pub applied: u64,
    /// Time its tasks spent in `process` calls, in µs.
    pub busy_us: u64,
}

impl Heartbeat {
    pub fn parse(raw: &str) -> Option<Self> {
        let mut f = raw.split('|').map(str::parse::<u64>);
        Some(Self {
            at: i64::try_from(f.next()?.ok()?).ok()?,
            applied: f.next()?.ok()?,
            busy_us: f.next()?.ok()?,
        })
    }

    fn encode(&self) -> String {
        format!("{}|{}|{}", self.at, self.applied, self.busy_us)
    }
}

/// The live workers, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolSnapshot {
    pub live_workers: usize,
    pub applied: u64,
    pub busy_us: u64,
}

impl Store {
    /// Reports this worker alive with its counters. When Redis refuses the write for memory, the
    /// beat is written anyway (`heartbeat_when_full.lua`) and the refusal returned.
    pub async fn heartbeat(&self, worker: &str, applied: u64, busy_us: u64) -> Result<()> {
        let beat = Heartbeat {
            at: wall_clock_ms(),
            applied,
            busy_us,
        };
        let client = self.client_for(keys::WORKERS)?;
        let refused = match client
            .hset::<(), _, _>(keys::WORKERS, (worker, beat.encode()))
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => Error::from(e),
        };
        if let Error::StoreFull(_) = refused {
            // Redis is full, but this worker is alive: the beat goes in all the same, so that
            // /health reports a full Redis and not dead workers. The refusal is still the answer:
            // it is how the worker knows Redis is full.
            self.script(
                &scripts::HEARTBEAT_WHEN_FULL,
                [keys::WORKERS],
                vec![arg(worker), arg(beat.encode())],
            )
            .await?;
        }
        Err(refused)
    }

    /// Removes this worker's heartbeat, on a clean exit.
    pub async fn retire(&self, worker: &str) -> Result<()> {
        self.client_for(keys::WORKERS)?
            .hdel::<(), _, _>(keys::WORKERS, worker)
            .await?;
        Ok(())
    }

    /// The workers whose last heartbeat is recent, with their counters summed.
    pub async fn pool(&self) -> Result<PoolSnapshot> {
        let beats: HashMap<String, String> = self
            .client_for(keys::WORKERS)?
            .hgetall(keys::WORKERS)
            .await?;
        let cutoff = wall_clock_ms() - MISSED_BEATS * self.workers().heartbeat_ms as i64;
        Ok(beats
            .values()
            .filter_map(|raw| Heartbeat::parse(raw))
            .filter(|beat| beat.at >= cutoff)
            .fold(PoolSnapshot::default(), |sum, beat| PoolSnapshot {
                live_workers: sum.live_workers + 1,
                applied: sum.applied + beat.applied,
                busy_us: sum.busy_us + beat.busy_us,
            }))
    }
}
