//! `api`: serves the HTTP API until SIGTERM or SIGINT, then finishes requests in flight and exits 0.
//! [`api::main`] says which runtime it runs on, and why.

/// mimalloc rather than glibc's malloc: a POST's allocations (actix's request and response,
/// serde, fred's frames) are many and small, and under the on-sale load the API spent 15% fewer
/// instructions per POST with it (bench/RESULTS.md, "What the API's instructions go to").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    api::main()
}
