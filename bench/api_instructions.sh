#!/usr/bin/env bash
# What the API's user-space CPU per POST is made of, in instructions rather than time: the
# release API runs under valgrind's callgrind while wrk posts holds of distinct seats over 40
# events (32 connections, 8 s, 2 workers applying, RATE_LIMITS=off), on a redis-server of its own.
#   bench/api_instructions.sh BIN_DIR LABEL     # BIN_DIR holds the build's `api` and `worker`
# Prints `<label> posts=N instructions_per_post=I` and the top functions, and leaves the profile
# in bench/out/api-<label>.callgrind (for callgrind_annotate). Under valgrind the API is the
# slowest part, so its enqueue batches are larger than they would be: compare builds with it,
# not with the figures of bench/efficiency.sh. Needs valgrind and wrk (installed when missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/bench/wrk_holds.sh"
BIN=$1; LABEL=$2
for tool in valgrind wrk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool"
    fi
done
TMP=$(mktemp -d); mkdir -p "$ROOT/bench/out"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RP=$(free_port); PORT=$(free_port); URL=http://127.0.0.1:$PORT
PIDS=()
cleanup() { set +e; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --notify-keyspace-events Ex \
    --dir "$TMP" >/dev/null 2>&1 &
PIDS+=("$!")
for _ in $(seq 50); do [[ "$(redis-cli -p "$RP" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
export REDIS_URL=redis://127.0.0.1:$RP PORT CONFIG_DIR=$ROOT/config LOG_DIR=$TMP/logs LOG_LEVEL=warn \
    HOLD_TTL_SECS=600 MAX_HOLD_LIFETIME_SECS=600 RATE_LIMITS=off
valgrind --tool=callgrind --callgrind-out-file="$TMP/cg" --instr-atstart=no "$BIN/api" >"$TMP/api.out" 2>&1 &
APID=$!; PIDS+=("$APID")
for i in 1 2; do WORKER_NAME=cg-$i "$BIN/worker" >>"$TMP/worker.out" 2>&1 & PIDS+=("$!"); done
for _ in $(seq 300); do curl -sf -o /dev/null "$URL/health" && break; sleep 0.2; done
wrk_holds "$URL" 40 cg "$TMP/holds.lua"
callgrind_control -i on "$APID" >/dev/null 2>&1
wrk -t 1 -c 32 -d 8s -s "$TMP/holds.lua" "$URL" >"$TMP/wrk.txt" 2>&1
callgrind_control -i off "$APID" >/dev/null 2>&1
callgrind_control -d "$APID" >/dev/null 2>&1
posts=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
total=$(callgrind_annotate "$TMP/cg.1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n++ {gsub(",", "", $1); print $1}')
echo "$LABEL posts=$posts instructions_per_post=$((total / posts))"
callgrind_annotate "$TMP/cg.1" 2>/dev/null | sed -n '/PROGRAM TOTALS/,$p' | sed -n 5,16p | cut -c1-160
cp "$TMP/cg.1" "$ROOT/bench/out/api-$LABEL.callgrind"
