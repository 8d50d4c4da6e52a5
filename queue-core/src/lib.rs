//! The core of the seat-reservation service, shared by the `api` and `worker` binaries: domain
//! types, the Redis key schema, the Lua scripts (one per state transition) and the operations
//! built on them.
//!
//! Invariants:
//! - Every state change is one Lua script that checks everything before it writes anything.
//! - Every key one script touches carries the same hash tag (the event id), see [`keys`].
//! - A hold past its deadline is Available to every script and every read, whether or not it
//!   has been swept: expiry is a property of the data, not of a background task (G5).
//! - A job is taken off its queue and applied in the same script, so it is never in flight
//!   outside Redis (G3, G4).
//!
//! This crate knows nothing of HTTP. It emits tracing events but never installs a subscriber.

pub mod changes;
mod enqueue;
pub mod error;
pub mod event;
pub mod hold;
pub mod housekeeping;
pub mod ids;
#[cfg(test)]
mod ids_proptest;
pub mod job;
pub mod keys;
pub mod metrics;
pub mod queue;
pub mod scripts;
pub mod seat;
pub mod settings;
pub mod store;
pub mod workers;

pub use changes::{CatchUp, ChangeId, ChangeKind, SeatChange, Snapshot};
pub use error::{Error, Result};
pub use event::{AvailableSeats, Event};
pub use ids::{EventId, EventName, InvalidValue, JobId, SeatCount, SeatId, UserId};
pub use job::{Enqueued, JobKind, JobState, JobStatus, JobView};
pub use queue::Batch;
pub use seat::{Millis, Refusal, Seat, SeatState, SeatStatus};
pub use settings::Settings;
pub use store::Store;
