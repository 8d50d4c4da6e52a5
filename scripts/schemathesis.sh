#!/usr/bin/env bash
# Hostile-input drill: schemathesis generates requests for every operation of the
# committed OpenAPI document (docs/openapi.json) against a real API + worker + redis-server, and
# fails on any 5xx and on any answer the document does not describe (status, content type,
# headers, body schema).
#   ./scripts/schemathesis.sh                 # the CI run (fixed seed, bounded in time)
#   ./scripts/schemathesis.sh --seed 7 -n 300 # extra arguments go to `schemathesis run`
# It runs twice, against an API in none mode and one in jwt mode (SCHEMATHESIS_MODES="none jwt";
# set it to one of them to run only that).
# It installs schemathesis (pinned) into target/venv when missing, starts its own redis-server,
# `api` and one `worker` on free ports, and stops everything it started on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SCHEMATHESIS_VERSION=4.32.5
venv=${SCHEMATHESIS_VENV:-$root/target/venv}
# Test cases per operation and phase (the coverage phase generates what the schema defines).
examples=${SCHEMATHESIS_EXAMPLES:-100}
seed=${SCHEMATHESIS_SEED:-20261121}
# The whole run is stopped after this many seconds (it normally takes far less).
budget=${SCHEMATHESIS_MAX_SECS:-600}
document=${SCHEMATHESIS_DOCUMENT:-$root/docs/openapi.json}

# --- tools ----------------------------------------------------------------------------------
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
apt_install "${missing[@]}"
find_cargo

if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != *"version $SCHEMATHESIS_VERSION"* ]]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
py=$venv/bin/python

cargo build --locked -p api -p worker
bin=$root/target/debug

# --- the service ----------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/schemathesis.XXXXXX")
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((status != 0)) && [[ -d $work/logs ]]; then
        echo "--- last API log lines ---" >&2
        tail -n 20 "$work"/logs/api.*.log 2>/dev/null >&2 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --notify-keyspace-events Ex --dir "$work" >"$work/redis.out" 2>&1 &
pids+=($!)

# Rate limits stay on, so that every answer passes through them, but generous enough that this
# one client, which sends a few hundred requests a second, is never refused: schemathesis counts a
# 429 to valid data as a false refusal. (The 429 itself, documented on every operation, is proven
# by the e2e tests `rate_limits::*`.)
mkdir -p "$work/config"
cp "$root/config/default.toml" "$work/config/"
generous='{ burst = 1000000, every_ms = 1 }'
cat >"$work/config/local.toml" <<EOF
[rate_limits]
enabled = true
holds = $generous
writes = $generous
events = $generous
reads = $generous
streams = $generous
EOF
export REDIS_URL=redis://127.0.0.1:$redis_port LOG_DIR=$work/logs LOG_LEVEL=warn CONFIG_DIR=$work/config RATE_LIMITS=on
WORKER_NAME=schemathesis-worker "$bin/worker" 2>"$work/worker.err" &
pids+=($!)

export PYTHONPATH=$root/scripts/schemathesis${PYTHONPATH:+:$PYTHONPATH}
export SCHEMATHESIS_HOOKS=hooks
run() {
    timeout --signal=INT --kill-after=30 "$budget" \
        "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis/schemathesis.toml" \
        run "$document" --url "$base" \
        --max-examples "$examples" --seed "$seed" --generation-database none \
        --no-color --report junit --report-dir "$root/target/schemathesis" "$@"
}

# --- the runs: none mode, then jwt mode ---------------------------------------------------------
# Each mode gets an API of its own on the same Redis and worker. In jwt mode the fixtures are
# made with tokens from the API's own `api token`, and the hooks give each seat request its
# user's token (docs/CONTRACT.md §2, who is asking).
for mode in ${SCHEMATHESIS_MODES:-none jwt}; do
    api_port=$(free_port)
    base=http://127.0.0.1:$api_port
    unset SCHEMATHESIS_TOKEN_CMD
    if [[ $mode == jwt ]]; then
        export AUTH_MODE=jwt
        AUTH_JWT_SECRET=$("$py" -c 'import secrets; print(secrets.token_urlsafe(32))')
        export AUTH_JWT_SECRET
        export SCHEMATHESIS_TOKEN_CMD="$bin/api token"
    else
        export AUTH_MODE=none
        unset AUTH_JWT_SECRET
    fi
    PORT=$api_port "$bin/api" 2>"$work/api-$mode.err" &
    pids+=($!)
    # Waits for /health (Redis up, the worker alive), then creates the ids the hooks hand out.
    "$py" "$root/scripts/schemathesis/fixtures.py" "$base" >"$work/fixtures-$mode.env"
    # shellcheck disable=SC1090
    source "$work/fixtures-$mode.env"
    export SCHEMATHESIS_FIXTURE_EVENT SCHEMATHESIS_FIXTURE_SEATS SCHEMATHESIS_FIXTURE_JOBS \
        SCHEMATHESIS_FIXTURE_TOKENS
    echo "--- schemathesis, AUTH_MODE=$mode ---"
    run "$@"
    echo "schemathesis ($mode mode): no server error, every answer as documented"
done
