//! Redis's memory: how much it uses and its `maxmemory`, read from `INFO memory` for `/health`
//! and `/metrics`. With `noeviction` (contract §4) a Redis at its limit refuses writes
//! ([`crate::Error::StoreFull`]) while reads go on, so the service says so before it happens.

use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand};

use crate::error::{Error, Result};
use crate::store::Store;

/// The share of `maxmemory` (in percent) from which `/health` reports the store as nearly full:
/// close enough that an operator is warned while writes still succeed, and far enough from 100
/// that the last few percent (a burst of jobs and their results) still fit.
pub const NEAR_FULL_PERCENT: u64 = 95;

/// Redis's memory as `INFO memory` reports it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisMemory {
    /// `used_memory`: what Redis's allocator holds for data and overhead.
    pub used: u64,
    /// `maxmemory`: the limit; 0 when there is none.
    pub max: u64,
}

impl RedisMemory {
    /// Reads `used_memory` and `maxmemory` out of an `INFO memory` reply.
    pub fn parse(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some(Self {
            used: field("used_memory")?,
            max: field("maxmemory")?,
        })
    }

    /// Whether a limit is set and use has reached [`NEAR_FULL_PERCENT`] of it.
    pub fn near_full(&self) -> bool {
        self.max > 0
            && u128::from(self.used) * 100 >= u128::from(self.max) * u128::from(NEAR_FULL_PERCENT)
    }
}

/// The memory of the Redis the service uses: on a cluster, every primary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The sum over the primaries (the one Redis's own figures on a single Redis).
    pub total: RedisMemory,
    /// The primary nearest its limit: at its `maxmemory` it refuses writes to its slots, however
    /// much room the others have.
    pub fullest: RedisMemory,
}

impl Store {
    /// Redis's memory use and limit: `INFO memory` of every primary, each on the connection the
    /// process already has to it.
    pub async fn memory(&self) -> Result<Memory> {
        let info = CustomCommand::new_static("INFO", ClusterHash::Random, false);
        let reads = self.primary_clients()?.into_iter().map(|client| {
            let info = info.clone();
            async move { client.custom::<String, _>(info, vec!["memory"]).await }
        });
        let infos: Vec<String> = futures::future::try_join_all(reads).await?;
        let nodes = infos
            .iter()
            .map(|info| {
                RedisMemory::parse(info).ok_or_else(|| {
                    Error::Corrupt("INFO memory lacks used_memory or maxmemory".into())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Memory::of(&nodes).ok_or_else(|| Error::Corrupt("no primary answered INFO".into()))
    }
}

impl Memory {
    /// The figures of a service over these primaries; `None` for none.
    pub fn of(nodes: &[RedisMemory]) -> Option<Self> {
        let share = |m: &RedisMemory| match m.max {
            0 => 0.0,
            max => m.used as f64 / max as f64,
        };
        let fullest = *nodes.iter().max_by(|a, b| share(a).total_cmp(&share(b)))?;
        let total = RedisMemory {
            used: nodes.iter().map(|m| m.used).sum(),
            // Any primary without a limit: the whole has none.
            max: if nodes.iter().any(|m| m.max == 0) {
                0
            } else {
                nodes.iter().map(|m| m.max).sum()
            },
        };
        Some(Self { total, fullest })
    }
}

#[cfg(test)]
mod tests {
    use super::RedisMemory;

    #[test]
    fn info_memory_is_parsed_and_near_full_starts_at_95_percent() {
        let info = "# Memory\r\nused_memory:950\r\nused_memory_human:950B\r\nused_memory_rss:4096\r\nmaxmemory:1000\r\nmaxmemory_human:1000B\r\nmaxmemory_policy:noeviction\r\n";
        let memory = RedisMemory::parse(info).expect("both fields");
        assert_eq!(
            memory,
            RedisMemory {
                used: 950,
                max: 1000
            }
        );
        assert!(memory.near_full(), "950 of 1000 is 95%");
        assert!(
            !RedisMemory {
                used: 949,
                max: 1000
            }
            .near_full(),
            "94.9% is not"
        );
        assert!(
            !RedisMemory {
                used: u64::MAX,
                max: 0
            }
            .near_full(),
            "no limit, never full"
        );
        assert_eq!(RedisMemory::parse("used_memory_rss:1\r\n"), None);
    }

    #[test]
    fn a_cluster_sums_its_primaries_and_names_the_fullest() {
        use super::Memory;
        let node = |used, max| RedisMemory { used, max };
        let memory = Memory::of(&[node(10, 100), node(96, 100), node(50, 200)]).expect("three");
        assert_eq!(memory.total, node(156, 400));
        assert_eq!(memory.fullest, node(96, 100), "96% is the fullest");
        assert!(memory.fullest.near_full() && !memory.total.near_full());
        let unlimited = Memory::of(&[node(10, 0), node(5, 100)]).expect("two");
        assert_eq!(
            unlimited.total.max, 0,
            "one primary without a limit: no limit"
        );
        assert_eq!(Memory::of(&[]), None);
    }
}
