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

impl Store {
    /// Redis's memory use and limit.
    pub async fn memory(&self) -> Result<RedisMemory> {
        let info: String = self
            .client()?
            .custom(
                CustomCommand::new_static("INFO", ClusterHash::Random, false),
                vec!["memory"],
            )
            .await?;
        RedisMemory::parse(&info)
            .ok_or_else(|| Error::Corrupt("INFO memory lacks used_memory or maxmemory".into()))
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
}
