//! The api binary, built inside the e2e package so that its tests can start real API processes
//! (cargo gives a package's tests the paths of that package's binaries only).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::run_from_env().await
}
