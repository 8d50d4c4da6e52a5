//! The worker binary, built inside the e2e package so that its tests can start real worker
//! processes (cargo gives a package's tests the paths of that package's binaries only). It runs
//! [`worker::main`], as the shipped binary does, so the drills kill a process configured as the
//! shipped one is, down to its runtime.

fn main() -> anyhow::Result<()> {
    worker::main()
}
