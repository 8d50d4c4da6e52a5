#!/usr/bin/env bash
# One run of the service on a Redis Cluster: six redis-servers on loopback (3 primaries, 3
# replicas), the API and 5 workers from BIN_DIR (a release build), loadgen at a fixed rate for
# 10 s; prints the refusals, jobs finished per second and accept-to-result p50/p99.
#   bench/cluster_acks.sh BIN_DIR REPLICA_ACKS [POSTS_PER_SEC]
# Alternate REPLICA_ACKS=0 and 1 in one session to see what REDIS_REPLICA_ACKS costs. It kills
# only the processes it started.
set -euo pipefail
BIN=$1; ACKS=$2; RATE=${3:-2000}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
# shellcheck source=bench/cluster_lib.sh
source "$ROOT/bench/cluster_lib.sh"
start_cluster "$TMP"
export PORT=$(free) CONFIG_DIR=$ROOT/config LOG_DIR=$TMP/logs LOG_LEVEL=warn HOLD_TTL_SECS=600 MAX_HOLD_LIFETIME_SECS=600 RATE_LIMITS=off REDIS_REPLICA_ACKS=$ACKS
"$BIN/api" >"$TMP/api.out" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
for i in 1 2 3 4 5; do WORKER_NAME=b-$i "$BIN/worker" >>"$TMP/worker.out" 2>&1 & pids+=($!); done
sleep 1.5
"$BIN/loadgen" --url "http://127.0.0.1:$PORT" --quiet --threads 1 --json "$TMP/run.json" run -e 20 -s 10000 -u 200000 -k 4 -c 256 -d 10s -r "$RATE" >"$TMP/loadgen.out" 2>&1 || { echo "loadgen exit $?"; tail -5 "$TMP/loadgen.out"; tail -5 "$TMP/api.out"; }
jq -c "{counts: (.counts // {} | with_entries(select(.key|test(\"503|error\"))))}" "$TMP/run.json" || true
printf 'acks=%s finished/s=%s p50=%s p99=%s server_p99=%s\n' "$ACKS" "$(jq -r .finished_per_sec "$TMP/run.json")" "$(jq -r .accept_to_result.p50_ms "$TMP/run.json")" "$(jq -r .accept_to_result.p99_ms "$TMP/run.json")" "$(jq -r .accept_to_result_server.p99_ms "$TMP/run.json")"
