//! Time, and which clock tells it.
//!
//! Seat state and job times (hold deadlines, when a job was accepted and applied) are Redis's
//! clock: the scripts read TIME, so every API and worker process agrees on them. This machine's
//! clock ([`wall_clock_ms`]) is used only for bookkeeping whose margins are seconds and which
//! correctness never waits for: enqueue hints, worker heartbeats, the moment a sweep schedule is
//! read, and the creation time an event is listed by. A skew between machines only makes such
//! tidying earlier or later.

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Milliseconds since the epoch on this machine's clock.
pub fn wall_clock_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}
