//! The core of the seat-reservation service, shared by the `api` and `worker` binaries: domain
//! types, the Redis key schema, the Lua scripts (one per state transition) and the operations
//! built on them.
//!
//! Invariants:
//! - Every change to seat and job state is one Lua script that checks everything before it
//!   writes anything.
//! - Every key one script touches carries the same hash tag (the event id), see [`keys`].
//! - A hold past its deadline is Available to every script and every read, whether or not it
//!   has been swept: expiry is a property of the data, not of a background task (G5).
//! - A job is taken off its queue and applied in the same script, so it is never in flight
//!   outside Redis (G3, G4).
//!
//! The modules form layers, each using only the ones below it (a test in the e2e crate checks
//! that no module imports one above it, and that there are no import circles):
//! 1. values: [`ids`], [`seat`], [`job`], [`event`], [`keys`], [`error`], [`settings`],
//!    [`clock`];
//! 2. the wire: [`scripts`] (calling the Lua scripts), `reply` (the one decoder of their
//!    replies, with the reply codes) and [`wire`] (the layouts Rust and Lua both read);
//! 3. the handle: [`store`], connections only, and `routing` (which connection a command goes
//!    out on: a pool per Redis node, and on a cluster the slots' owners);
//! 4. operations: [`enqueue`] (accepting jobs, in batches), [`process`] (draining queues),
//!    [`jobs`] (a job's status), [`job_id_key`] (the key the API's job ids are authenticated
//!    with), [`catalog`] (events and seats), [`deletion`] (deleting an event), [`hold`]
//!    (refresh, release), [`changes`] (the seat-change feed), [`housekeeping`], [`workers`]
//!    (heartbeats), [`memory`] (Redis's memory and its limit), [`metrics`], [`rate_limit`]
//!    (admitting requests).
//!
//! This crate knows nothing of HTTP. It emits tracing events but never installs a subscriber.

// 1. Values.
pub mod clock;
pub mod error;
pub mod event;
pub mod ids;
#[cfg(test)]
mod ids_proptest;
pub mod job;
pub mod keys;
pub mod seat;
pub mod settings;

// 2. The wire.
mod reply;
pub mod scripts;
pub mod wire;

// 3. The handle.
mod routing;
pub mod store;

// 4. Operations.
pub mod catalog;
pub mod changes;
pub mod deletion;
pub mod enqueue;
pub mod hold;
pub mod housekeeping;
pub mod job_id_key;
pub mod jobs;
pub mod memory;
pub mod metrics;
pub mod process;
pub mod rate_limit;
pub mod workers;

pub use changes::{CatchUp, ChangeId, ChangeKind, SeatChange, Snapshot};
pub use clock::Millis;
pub use enqueue::Enqueuer;
pub use error::{Error, Result};
pub use event::{AvailableSeats, Event, EventCursor, EventPage};
pub use ids::{EventId, EventName, InvalidValue, JobId, SeatCount, SeatId, UserId};
pub use job::{Enqueued, JobKind, JobState, JobStatus, JobView};
pub use process::Batch;
pub use seat::{Refusal, Seat, SeatState, SeatStatus};
pub use settings::Settings;
pub use store::Store;
