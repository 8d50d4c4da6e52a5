#!/usr/bin/env bash
# One side of an A/B of two builds of the service, on a fresh redis-server (run it alternately for
# each build, in one session, and compare medians):
#   bench/ab.sh drain  BIN_DIR LABEL   step (a)+(b) with 1 worker: 100,000 holds accepted with no
#                                      worker, then drained: accept/s, drain/s, Redis CPU per job
#   bench/ab.sh onsale BIN_DIR LABEL   step (c) at a fixed 5,000 POSTs/s for 10 s, 5 workers:
#                                      p99 accept-to-result, Redis CPU per finished job
# BIN_DIR holds the build's `api` and `worker` (target/release of a checkout); the load generator
# is this checkout's (cargo build --release -p loadgen), so that both sides get the same client.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE=$1; BIN=$2; LABEL=$3; LG=$ROOT/target/release/loadgen
TMP=$(mktemp -d); mkdir -p $TMP/redis
RP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no --notify-keyspace-events Ex --dir $TMP/redis >$TMP/redis.log 2>&1 &
RPID=$!
for _ in $(seq 50); do [[ "$(redis-cli -p $RP ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
export REDIS_URL=redis://127.0.0.1:$RP PORT CONFIG_DIR=$ROOT/config LOG_DIR=$TMP/logs LOG_LEVEL=warn HOLD_TTL_SECS=600 MAX_HOLD_LIFETIME_SECS=600 RATE_LIMITS=${RATE_LIMITS:-off}
$BIN/api >$TMP/api.out 2>&1 & APID=$!
for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$PORT/health && break; sleep 0.1; done
if [[ $MODE == drain ]]; then
$LG --url http://127.0.0.1:$PORT --quiet --json $TMP/backlog.json backlog -e 10 -s 10000 -c 64 --out $TMP/jobs.json >/dev/null 2>&1
cpu() { redis-cli -p $RP info cpu | awk -F: '/used_cpu_(sys|user):/ {s+=$2} END {printf "%.6f", s}'; }
c0=$(cpu); since=$(date +%s%3N)
WORKER_NAME=ab-1 $BIN/worker >$TMP/worker.out 2>&1 & WPID=$!
$LG --url http://127.0.0.1:$PORT --quiet --json $TMP/drain.json drain --backlog $TMP/jobs.json --since-ms $since >/dev/null 2>&1
c1=$(cpu)
jobs=$(jq -r .jobs $TMP/drain.json)
printf '%s accept/s=%s drain/s=%s redis_cpu_us_per_job(drain)=%.1f\n' "$LABEL" "$(jq -r .accepted_per_sec $TMP/backlog.json)" "$(jq -r .jobs_per_sec $TMP/drain.json)" "$(python3 -c "print(($c1-$c0)*1e6/$jobs)")"
kill $WPID $APID; sleep 0.5; kill $RPID; wait 2>/dev/null || true
else
for i in 1 2 3 4 5; do WORKER_NAME=ab-$i $BIN/worker >>$TMP/worker.out 2>&1 & done; sleep 1
cpu() { redis-cli -p $RP info cpu | awk -F: '/used_cpu_(sys|user):/ {s+=$2} END {printf "%.6f", s}'; }
c0=$(cpu)
$LG --url http://127.0.0.1:$PORT --quiet --threads 1 --json $TMP/run.json run -e 20 -s 10000 -u 200000 -k 4 -c 256 -d 10s -r 5000 >/dev/null 2>&1 || echo "invariant or error exit $?"
c1=$(cpu)
jobs=$(jq -r '.finished_per_sec * .send_secs' $TMP/run.json)
printf '%s finished/s=%s p99_accept_to_result_ms=%s server_p99=%s redis_cpu_us_per_job=%.1f\n' "$LABEL" "$(jq -r .finished_per_sec $TMP/run.json)" "$(jq -r .accept_to_result.p99_ms $TMP/run.json)" "$(jq -r .accept_to_result_server.p99_ms $TMP/run.json)" "$(python3 -c "print(($c1-$c0)*1e6/$jobs)")"
pkill -P $$ worker || true; kill $APID; sleep 0.5; kill $RPID; wait 2>/dev/null || true
fi
rm -rf $TMP
