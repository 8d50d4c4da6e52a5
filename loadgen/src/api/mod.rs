//! A thin typed client for the endpoints of docs/CONTRACT.md §2, which the load generator drives
//! and the e2e tests use.
//!
//! Request bodies are formatted by hand and answers parsed into small structs: at tens of
//! thousands of requests a second on a shared 2-core machine the generator's own CPU is part of
//! what is measured, so it does as little as it can.
//!
//! Layers, bottom up: [`spelling`] (the words the API spells: statuses, job types) and
//! [`values`] (numbers in ids, times), then [`body`] (one typed decoder per answer), then
//! [`client`] (the requests).

mod auth;
mod body;
mod client;
mod spelling;
mod values;

pub use auth::{Auth, Minter};
pub use body::{
    Answer, Completed, ErrorBody, EventCounts, JobAnswer, JobResult, JobView, Posted, Queued,
    SeatList, SeatMessage, SeatView,
};
pub use client::Api;
pub use spelling::{JobKind, JobStatus, SeatStatus};
pub use values::{job_seq, now_ms, rfc3339_ms, seat_number};
