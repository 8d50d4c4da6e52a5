#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine: installs what the tests need when
# it is missing (redis-server; the tests start their own servers on free ports and never touch
# one on 6379), then `cargo test`. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

install_packages() {
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    else
        echo "missing: $*; install with: apt-get install $*" >&2
        exit 1
    fi
}

if ! command -v redis-server >/dev/null 2>&1; then
    echo "[test.sh] installing redis-server"
    install_packages redis-server
fi

exec cargo test --workspace --locked "$@"
