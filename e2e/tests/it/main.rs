//! Whole-system tests: the API in process on port 0, workers in process or as real processes
//! (`e2e-worker`), each test against its own `redis-server` on a free port.

mod helpers;

mod api_contract;
mod atomicity;
mod bad_input;
mod browser;
mod cluster;
mod concurrency;
mod delete_event;
mod drain_rate;
mod drills;
mod expiry;
mod hostile;
mod identity;
mod job_ids;
mod layers;
mod lifecycle;
mod loadgen_smoke;
mod log_bytes;
mod memory;
mod memory_limit;
mod metrics;
mod model;
mod page_headers;
mod processes;
mod rate_limits;
mod seat_record;
mod spellings;
mod start_sh;
mod stream;
mod stream_caps;
mod wire;
