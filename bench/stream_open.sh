#!/usr/bin/env bash
# What opening a stream on a big event costs one build of the service, on a fresh redis-server
# (run it alternately for each build, in one session, and compare medians):
#   bench/stream_open.sh BIN_DIR LABEL
# BIN_DIR holds the build's `api` and `worker` (target/release of a checkout). A 10,000-seat event
# with 2,000 seats held; 8 clients open streams back to back for 10 s (half anonymous, half as a
# holder) while a prober reads GET /events/{id} every 50 ms (bench/stream_open.py; SEATS, HELD,
# CLIENTS and DURATION change the figures).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=$1; LABEL=$2
TMP=$(mktemp -d); mkdir -p $TMP/redis
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RP=$(free_port); PORT=$(free_port)
redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --notify-keyspace-events Ex --dir $TMP/redis >$TMP/redis.log 2>&1 &
RPID=$!
for _ in $(seq 50); do [[ "$(redis-cli -p $RP ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
export REDIS_URL=redis://127.0.0.1:$RP PORT CONFIG_DIR=$ROOT/config LOG_DIR=$TMP/logs LOG_LEVEL=warn \
  HOLD_TTL_SECS=600 MAX_HOLD_LIFETIME_SECS=600 RATE_LIMITS=off STREAMS_PER_CLIENT=1000
$BIN/api >$TMP/api.out 2>&1 & APID=$!
WORKER_NAME=bench-1 $BIN/worker >$TMP/worker.out 2>&1 & WPID=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/health && break; sleep 0.1; done
python3 "$ROOT/bench/stream_open.py" $PORT $RP $APID "$LABEL" || echo "$LABEL failed: $(tail -3 $TMP/api.out)"
kill $WPID $APID; sleep 0.5; kill $RPID; wait 2>/dev/null || true
rm -rf $TMP
