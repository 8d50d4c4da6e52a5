#!/usr/bin/env bash
# What verifying a token costs: the same flat-out on-sale against the same build in none mode and
# in jwt mode (HS256, one token per simulated user, each request verified), alternated ROUNDS
# times on a fresh redis-server each, so that a noisy machine hits both alike. Prints each run,
# then the medians: 202s per second, and the API's CPU per POST (utime + stime of the api
# process over the run, divided by the POSTs it answered).
#   bench/auth.sh [BIN_DIR] [ROUNDS]   BIN_DIR: target/release (api, worker, loadgen), ROUNDS: 3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=${1:-$ROOT/target/release}; ROUNDS=${2:-3}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
one() {
    local mode=$1 TMP RP PORT RPID APID
    TMP=$(mktemp -d); mkdir -p "$TMP/redis"
    RP=$(free_port); PORT=$(free_port)
    redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --notify-keyspace-events Ex --dir "$TMP/redis" >"$TMP/redis.log" 2>&1 &
    RPID=$!
    for _ in $(seq 50); do [[ "$(redis-cli -p "$RP" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
    (
        export REDIS_URL=redis://127.0.0.1:$RP PORT CONFIG_DIR=$ROOT/config LOG_DIR=$TMP/logs LOG_LEVEL=warn HOLD_TTL_SECS=600 RATE_LIMITS=${RATE_LIMITS:-off}
        if [[ $mode == jwt ]]; then export AUTH_MODE=jwt AUTH_JWT_SECRET=bench-secret-of-at-least-thirty-two-bytes; else unset AUTH_JWT_SECRET; export AUTH_MODE=none; fi
        "$BIN/api" >"$TMP/api.out" 2>&1 & APID=$!
        for i in 1 2; do WORKER_NAME=auth-$i "$BIN/worker" >>"$TMP/worker.out" 2>&1 & done
        for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
        sleep 1
        t0=$(ticks $APID)
        "$BIN/loadgen" --url "http://127.0.0.1:$PORT" --quiet --threads 1 --json "$TMP/run.json" \
            run -e 4 -s 10000 -u 200000 -k 2 -c 64 -d 10s --no-read-back >/dev/null 2>&1 || echo "loadgen exit $?" >&2
        t1=$(ticks $APID)
        hz=$(getconf CLK_TCK)
        posts=$(jq -r .posts "$TMP/run.json")
        printf '%s accepted/s=%.0f posts/s=%.0f api_cpu_us_per_post=%.1f\n' "$mode" \
            "$(jq -r .accepted_per_sec "$TMP/run.json")" "$(jq -r '.posts / .send_secs' "$TMP/run.json")" \
            "$(python3 -c "print(($t1-$t0)/$hz*1e6/$posts)")"
        pkill -P $BASHPID worker || true; kill $APID; wait $APID 2>/dev/null || true
    )
    kill $RPID; wait $RPID 2>/dev/null || true
    rm -rf "$TMP"
}
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
    one none | tee -a "$out"
    one jwt | tee -a "$out"
done
python3 - "$out" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    mode, *fields = line.split()
    for f in fields:
        k, v = f.split("=")
        runs.setdefault(mode, {}).setdefault(k, []).append(float(v))
for mode in ("none", "jwt"):
    m = runs.get(mode, {})
    print(mode, "median", " ".join(f"{k}={statistics.median(v):.1f}" for k, v in m.items()))
n, j = runs["none"], runs["jwt"]
print("jwt/none accepted/s = %.2f, api cpu per POST = %.2f" % (
    statistics.median(j["accepted/s"]) / statistics.median(n["accepted/s"]),
    statistics.median(j["api_cpu_us_per_post"]) / statistics.median(n["api_cpu_us_per_post"])))
PY
rm -f "$out"
