//! What every user task of a run shares: the settings, the clock, the pacer of POSTs, the
//! counters and the latency histograms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::OnSale;
use crate::stats::Latency;

/// The run's latency histograms, one set shared by every user task.
///
/// Not a set per task: a histogram of this range takes ~170 KB, so the sets of a 256-user run
/// were ~130 MB, first touched (page faults, zeroing) by every task in its first requests. That
/// stalled the generator for the first ~100 ms of each run, and the requests it delayed made up
/// most of the measured p99.
#[derive(Default)]
pub(super) struct Latencies {
    pub(super) lat_202: Latency,
    pub(super) lat_result: Latency,
    pub(super) lat_server: Latency,
}

pub(super) struct Shared {
    pub(super) cfg: OnSale,
    pub(super) events: Vec<String>,
    pub(super) users: Vec<String>,
    pub(super) start: Instant,
    pub(super) stop_at: Option<Instant>,
    /// POSTs handed out so far (for the request budget and the pacer).
    pub(super) issued: AtomicU64,
    pub(super) next_go: AtomicU64,
    pub(super) accepted: AtomicU64,
    pub(super) finished: AtomicU64,
    pub(super) last_post_us: AtomicU64,
    pub(super) last_result_us: AtomicU64,
    /// Locked once per group of attempts, never across an await.
    pub(super) latencies: Mutex<Latencies>,
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The answer to asking for a POST slot.
pub(super) enum Slot {
    Go,
    Late,
    Stop,
}

impl Shared {
    pub(super) async fn slot(&self) -> Slot {
        if self.stop_at.is_some_and(|t| Instant::now() >= t) {
            return Slot::Stop;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        if self.cfg.requests.is_some_and(|max| n >= max) {
            return Slot::Stop;
        }
        let Some(rate) = self.cfg.rate else {
            return Slot::Go;
        };
        let due = self.start + Duration::from_secs_f64(n as f64 / rate);
        let now = Instant::now();
        if due > now {
            tokio::time::sleep_until(due.into()).await;
            if self.stop_at.is_some_and(|t| Instant::now() >= t) {
                return Slot::Stop;
            }
            Slot::Go
        } else if now - due > Duration::from_millis(10) {
            Slot::Late
        } else {
            Slot::Go
        }
    }

    pub(super) fn mark(&self, at: &AtomicU64) {
        let us = micros(self.start.elapsed());
        at.fetch_max(us, Ordering::Relaxed);
    }
}
