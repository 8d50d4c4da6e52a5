//! The on-sale's settings.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::api::Auth;

/// How to wait for a job's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Waiting {
    /// `GET …/status?wait=5`, answered as soon as the job finishes.
    Wait,
    /// `GET …/status` every so often.
    Poll(Duration),
}

/// The on-sale's settings.
#[derive(Debug, Clone, Serialize)]
pub struct OnSale {
    /// The API's base URL.
    pub url: String,
    /// Events to create, and seats in each (10..=10000).
    pub events: u32,
    pub seats: u32,
    /// Use these existing events instead of creating new ones (the check then assumes nobody
    /// else touches them).
    pub existing_events: Vec<String>,
    /// Distinct users; each go picks one (in turn), an event at random, and 1..=K seats.
    pub users: u32,
    pub holds_per_user: u32,
    /// When set, users only try the first `hot` seats of each event (contention).
    pub hot_seats: Option<u32>,
    /// The part of the seats a user got that they go on to reserve (0..=1).
    pub reserve_ratio: f64,
    /// Target POSTs (holds and reserves) a second; flat out when `None`.
    pub rate: Option<f64>,
    /// Users going at once, each with an HTTP client of its own holding up to
    /// `holds_per_user` connections (opened before the clock starts).
    pub connections: usize,
    /// Stop starting new POSTs after this long…
    pub duration: Option<Duration>,
    /// …or after this many POSTs. With neither, every user has exactly one go.
    pub requests: Option<u64>,
    pub waiting: Waiting,
    /// MAX_HELD_SEATS of the service under test.
    pub cap: u32,
    /// HOLD_TTL of the service under test; `None`: the check takes it from the first hold.
    pub hold_ttl: Option<Duration>,
    /// How long to wait for an accepted job's result before calling it unfinished.
    pub finish_timeout: Duration,
    /// Clock difference forgiven around hold deadlines in the read-back.
    pub clock_margin: Duration,
    /// Read the seats back through the API at the end and check them.
    pub read_back: bool,
    pub progress: bool,
    /// Seed for the random choices (a random one when `None`).
    pub seed: Option<u64>,
    /// Write every POST's timings here as CSV (see [`TRACE_HEADER`](super::TRACE_HEADER)), after
    /// the run: what a percentile hides, such as when in the run the slow requests were and which
    /// leg was slow.
    pub trace: Option<PathBuf>,
    /// How the simulated users identify themselves (bearer tokens for a jwt-mode service).
    pub auth: Auth,
}

impl Default for OnSale {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:3000".to_owned(),
            events: 4,
            seats: 1000,
            existing_events: Vec::new(),
            users: 10_000,
            holds_per_user: 8,
            hot_seats: None,
            reserve_ratio: 0.5,
            rate: None,
            connections: 64,
            duration: None,
            requests: None,
            waiting: Waiting::Wait,
            cap: 6,
            hold_ttl: None,
            finish_timeout: Duration::from_secs(60),
            clock_margin: Duration::from_millis(1000),
            read_back: true,
            progress: true,
            seed: None,
            trace: None,
            auth: Auth::None,
        }
    }
}
