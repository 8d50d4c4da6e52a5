//! `worker`: applies queued jobs until SIGTERM or SIGINT, then finishes what it holds and exits 0.
//! [`worker::main`] says which runtime it runs on, and why.

fn main() -> anyhow::Result<()> {
    worker::main()
}
