//! The api binary, built inside the e2e package so that its tests can start real API processes
//! (cargo gives a package's tests the paths of that package's binaries only). It runs
//! [`api::main`], as the shipped binary does, so the drills kill a process configured as the
//! shipped one is, down to its runtime and its allocator.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    api::main()
}
