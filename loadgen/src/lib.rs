//! An on-sale load generator for the seat-reservation API (docs/CONTRACT.md §2), and the measurements behind
//! `bench/run.sh`.
//!
//! - [`onsale`]: users hold and reserve seats like at a real on-sale, then [`check`] proves the
//!   guarantees held (no double booking, the hold cap, every accepted job finished) from what
//!   each user was told and from the state read back through the API, and replays every
//!   accepted job against the reference [`model`] of seat state, which the e2e tests use too.
//! - [`bench`]: the 202 rate, the drain rate of the worker pool, the cost of a hold, and event
//!   creation and listing times.
//!
//! The `loadgen` binary is a thin command line over these; the e2e tests call [`onsale::run`]
//! in process.

pub mod api;
pub mod bench;
pub mod check;
pub mod model;
pub mod onsale;
pub mod stats;
