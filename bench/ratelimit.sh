#!/usr/bin/env bash
# What the rate limits cost: the same flat-out on-sale against the same build with RATE_LIMITS=off
# and with them on (limits so generous that nothing is refused, so that both runs do the same
# work plus, when on, one rate_limit.lua call per request), alternated ROUNDS times on a fresh
# redis-server each. Prints each run, then the medians: 202s per second, and the API's and
# Redis's CPU per POST (utime + stime over the run, divided by the POSTs answered).
#   bench/ratelimit.sh [BIN_DIR] [ROUNDS]   BIN_DIR: target/release (api, worker, loadgen), ROUNDS: 3
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=${1:-$ROOT/target/release}; ROUNDS=${2:-3}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
one() {
    local mode=$1 TMP RP PORT RPID APID
    TMP=$(mktemp -d); mkdir -p "$TMP/redis" "$TMP/config"
    cp "$ROOT/config/default.toml" "$TMP/config/"
    generous='{ burst = 1000000, every_ms = 1 }'
    printf '[rate_limits]\nholds = %s\nwrites = %s\nevents = %s\nreads = %s\nstreams = %s\n' \
        "$generous" "$generous" "$generous" "$generous" "$generous" >"$TMP/config/local.toml"
    RP=$(free_port); PORT=$(free_port)
    redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --notify-keyspace-events Ex --dir "$TMP/redis" >"$TMP/redis.log" 2>&1 &
    RPID=$!
    for _ in $(seq 50); do [[ "$(redis-cli -p "$RP" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
    (
        export REDIS_URL=redis://127.0.0.1:$RP PORT CONFIG_DIR=$TMP/config LOG_DIR=$TMP/logs LOG_LEVEL=warn HOLD_TTL_SECS=600 RATE_LIMITS=$mode
        "$BIN/api" >"$TMP/api.out" 2>&1 & APID=$!
        for i in 1 2; do WORKER_NAME=rl-$i "$BIN/worker" >>"$TMP/worker.out" 2>&1 & done
        for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
        sleep 1
        rcpu() { redis-cli -p "$RP" info cpu | awk -F: '/used_cpu_(sys|user):/ {s+=$2} END {printf "%.6f", s}'; }
        t0=$(ticks $APID); r0=$(rcpu)
        "$BIN/loadgen" --url "http://127.0.0.1:$PORT" --quiet --threads 1 --json "$TMP/run.json" \
            run -e 4 -s 10000 -u 200000 -k 2 -c 64 -d 10s --no-read-back >/dev/null 2>&1 || echo "loadgen exit $?" >&2
        t1=$(ticks $APID); r1=$(rcpu)
        hz=$(getconf CLK_TCK)
        posts=$(jq -r .posts "$TMP/run.json")
        printf '%s accepted/s=%.0f api_cpu_us_per_post=%.1f redis_cpu_us_per_post=%.1f\n' "$mode" \
            "$(jq -r .accepted_per_sec "$TMP/run.json")" \
            "$(python3 -c "print(($t1-$t0)/$hz*1e6/$posts)")" \
            "$(python3 -c "print(($r1-$r0)*1e6/$posts)")"
        if [[ $mode == on ]] && ! redis-cli -p "$RP" --scan --pattern 'rsv:rl:*' | grep -q .; then
            echo "no limiter key written: the limits were not on" >&2
        fi
        pkill -P $BASHPID worker || true; kill $APID; wait $APID 2>/dev/null || true
    )
    kill $RPID; wait $RPID 2>/dev/null || true
    rm -rf "$TMP"
}
out=$(mktemp)
for _ in $(seq "$ROUNDS"); do
    one off | tee -a "$out"
    one on | tee -a "$out"
done
python3 - "$out" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    mode, *fields = line.split()
    for f in fields:
        k, v = f.split("=")
        runs.setdefault(mode, {}).setdefault(k, []).append(float(v))
for mode in ("off", "on"):
    m = runs.get(mode, {})
    print(mode, "median", " ".join(f"{k}={statistics.median(v):.1f}" for k, v in m.items()))
off, on = runs["off"], runs["on"]
med = lambda m, k: statistics.median(m[k])
print("on/off accepted/s = %.2f; added per POST: api %+.1f us, redis %+.1f us" % (
    med(on, "accepted/s") / med(off, "accepted/s"),
    med(on, "api_cpu_us_per_post") - med(off, "api_cpu_us_per_post"),
    med(on, "redis_cpu_us_per_post") - med(off, "redis_cpu_us_per_post")))
PY
rm -f "$out"
