//! Whole-system tests: the API in process on port 0, workers in process or as real processes
//! (`e2e-worker`), each test against its own `redis-server` on a free port.

mod helpers;

mod api_contract;
mod atomicity;
mod bad_input;
mod browser;
mod concurrency;
mod drain_rate;
mod drills;
mod expiry;
mod hostile;
mod identity;
mod layers;
mod loadgen_smoke;
mod memory;
mod metrics;
mod model;
mod processes;
mod rate_limits;
mod seat_record;
mod spellings;
mod stream;
mod wire;
