#!/usr/bin/env bash
# Runs every test of the workspace; the one command for a fresh Debian/Ubuntu machine.
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -- --nocapture  # extra arguments go to `cargo test`
# then the guarantee tests again on a Redis Cluster (E2E_REDIS=cluster).
# The tests start their own redis-server on free ports, so all this needs is the redis-server
# binary; a Redis the Debian package may start on 6379 is neither used nor touched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# Debian packages the tests need: redis-server, and a C linker for cargo.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# Headless Chromium and its WebDriver for the browser tests (e2e/tests/it/browser.rs).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
apt_install "${missing[@]}"

find_cargo
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }

# docker-compose.yml and the Dockerfile: `docker compose config` (no Docker engine needed).
./scripts/check-compose.sh

cargo test --workspace --locked "$@"

# The guarantee tests (G1-G7) once more, each on a Redis Cluster of its own that the harness
# starts on loopback (6 redis-servers: G11), with the ?wait tests whose answers depend on the
# finished-jobs announcements (published on one node, heard on another). The filters name the
# modules; arguments after a `--` of the caller's go along.
cluster_tests=(concurrency:: atomicity:: expiry:: model:: stream:: processes::
    drills::a_worker_sigkilled drills::the_api_sigkilled drills::holds_lapse_on_time_while
    rate_limits:: api_contract::a_wait_on_a_job_whose delete_event::a_wait)
if [[ " $* " == *" -- "* ]]; then
  E2E_REDIS=cluster cargo test -p e2e --test it --locked "$@" "${cluster_tests[@]}"
else
  E2E_REDIS=cluster cargo test -p e2e --test it --locked "$@" -- "${cluster_tests[@]}"
fi
