//! `worker`: applies queued jobs until SIGTERM or SIGINT, then finishes what it holds and exits 0.
//!
//! One thread: a worker's tasks spend their time waiting on Redis, and on one thread a reply
//! wakes its task without a hop to another thread (WORKERS scales the pool by processes).

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    worker::run_from_env().await
}
