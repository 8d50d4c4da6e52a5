//! `api`: serves the HTTP API until SIGTERM or SIGINT, then finishes requests in flight and exits 0.
//! [`api::main`] says which runtime it runs on, and why.

fn main() -> anyhow::Result<()> {
    api::main()
}
