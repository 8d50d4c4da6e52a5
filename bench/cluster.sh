#!/usr/bin/env bash
# The same load on one Redis and on a Redis Cluster of 3 primaries (each with a replica), for one
# build: how the work spreads over the primaries, and what it costs next to one Redis.
#   bench/cluster.sh BIN_DIR [single|cluster]...     # both by default, single first
# For each topology, on fresh redis-servers on loopback, with the API and WORKERS (5) workers:
#   drain   EVENTS (30) events x 10,000 seats, as many on each primary: a backlog of their holds accepted with no worker
#           running, then the workers started: jobs drained per second
#   onsale  a 10 s flat-out `loadgen run` over the same number of events: jobs finished per
#           second and accept-to-result p99
#   share   on the cluster, each primary's part of the EVALSHA calls and of Redis's command time
#           during the on-sale (INFO commandstats), and the largest gap from an even share
# Prints one line per figure. BIN_DIR holds `api`, `worker` and `loadgen` (target/release).
set -euo pipefail
BIN=$1; shift
TOPOLOGIES=("$@"); ((${#TOPOLOGIES[@]})) || TOPOLOGIES=(single cluster)
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKERS=${WORKERS:-5}; EVENTS=${EVENTS:-30}
pids=(); TMP=""
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); [[ -n $TMP ]] && rm -rf "$TMP"; TMP=""; }
trap stop_all EXIT
# shellcheck source=bench/cluster_lib.sh
source "$ROOT/bench/cluster_lib.sh"
# `cmdstat_evalsha` calls and usec, and the usec of every command, of the server at port $1.
commandstats() { redis-cli -p "$1" info commandstats | tr -d '\r' | awk -F'[:=,]' '
    /^cmdstat_evalsha:/ {calls = $3; evalsha = $5} /^cmdstat_/ {usec += $5}
    END {printf "%d %d %d\n", calls, evalsha, usec}'; }

for topology in "${TOPOLOGIES[@]}"; do
    TMP=$(mktemp -d)
    ports=(); primaries=()
    if [[ $topology == cluster ]]; then
        start_cluster "$TMP"
        for p in "${ports[@]}"; do redis-cli -p "$p" role | head -1 | grep -q master && primaries+=("$p"); done
    else
        ports=("$(free)")
        mkdir -p "$TMP/r"
        redis-server --port "${ports[0]}" --bind 127.0.0.1 --save "" --appendonly no \
            --notify-keyspace-events Ex --dir "$TMP/r" >"$TMP/r.log" 2>&1 &
        pids+=($!)
        for _ in $(seq 50); do [[ "$(redis-cli -p "${ports[0]}" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
        primaries=("${ports[0]}")
        export REDIS_URL="redis://127.0.0.1:${ports[0]}"
    fi
    PORT=$(free); URL=http://127.0.0.1:$PORT
    export PORT CONFIG_DIR=$ROOT/config LOG_DIR=$TMP/logs LOG_LEVEL=warn HOLD_TTL_SECS=600 \
        MAX_HOLD_LIFETIME_SECS=600 RATE_LIMITS=off
    "$BIN/api" >"$TMP/api.out" 2>&1 & pids+=($!)
    for _ in $(seq 100); do curl -s -o /dev/null "$URL/health" && break; sleep 0.1; done
    LG=("$BIN/loadgen" --url "$URL" --quiet)
    label="$topology (${#primaries[@]} primar$( ((${#primaries[@]} == 1)) && echo y || echo ies))"
    # EVENTS events spread evenly: on a cluster, as many on each primary (events are created
    # until each has its share; the others are left unused). One set for the drain, another for
    # the on-sale (the drain leaves every seat of its events held).
    nodes=""; [[ $topology == cluster ]] && nodes="$(redis-cli -p "${ports[0]}" cluster nodes)"
    pick() { NODES="$nodes" python3 - "$URL" "$EVENTS" "${#primaries[@]}" <<'PY'
import json, os, sys, urllib.request
url, events, primaries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def crc16(data):  # Redis Cluster's key hash (CRC16/XMODEM)
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc
ranges = []  # (first slot, last slot, primary)
for line in os.environ.get("NODES", "").splitlines():
    f = line.split()
    if len(f) > 8 and "master" in f[2]:
        for r in f[8:]:
            lo, _, hi = r.partition("-")
            ranges.append((int(lo), int(hi or lo), f[1]))
def primary(event):
    slot = crc16(event.encode()) % 16384
    return next((p for lo, hi, p in ranges if lo <= slot <= hi), "one")
per = -(-events // primaries)
picked = {}
for _ in range(events * 20):
    if sum(len(v) for v in picked.values()) >= events:
        break
    req = urllib.request.Request(url + "/events/create", method="POST",
        data=json.dumps({"name": "bench", "totalSeats": 10000}).encode(),
        headers={"content-type": "application/json"})
    event = json.load(urllib.request.urlopen(req))["id"]
    mine = picked.setdefault(primary(event), [])
    if len(mine) < per:
        mine.append(event)
print(",".join(e for v in picked.values() for e in v))
PY
    }
    ids=$(pick); onsale_ids=$(pick)

    # drain: the backlog first, with no worker, then the workers.
    "${LG[@]}" --json "$TMP/backlog.json" backlog --event-ids "$ids" -c 64 --out "$TMP/jobs.json" >/dev/null 2>&1
    since=$(date +%s%3N)
    for i in $(seq "$WORKERS"); do WORKER_NAME=c-$i "$BIN/worker" >>"$TMP/worker.out" 2>&1 & pids+=($!); done
    "${LG[@]}" --json "$TMP/drain.json" drain --backlog "$TMP/jobs.json" --since-ms "$since" >/dev/null 2>&1
    printf '%s drain: %s jobs/s (%s jobs)\n' "$label" "$(jq -r '.jobs_per_sec | floor' "$TMP/drain.json")" "$(jq -r .jobs "$TMP/drain.json")"

    # onsale, with each primary's command counts around it.
    before=(); for p in "${primaries[@]}"; do before+=("$(commandstats "$p")"); done
    "${LG[@]}" --threads 1 --json "$TMP/run.json" run --event-ids "$onsale_ids" -u 200000 -k 4 -c 256 -d 10s --no-read-back >/dev/null 2>&1 ||
        echo "$label onsale: loadgen exit $?"
    after=(); for p in "${primaries[@]}"; do after+=("$(commandstats "$p")"); done
    printf '%s onsale: %s jobs finished/s, accept-to-result p99 %s ms\n' "$label" \
        "$(jq -r '.finished_per_sec | floor' "$TMP/run.json")" "$(jq -r .accept_to_result.p99_ms "$TMP/run.json")"
    if ((${#primaries[@]} > 1)); then
        python3 - "$label" "${primaries[@]}" -- "${before[@]}" -- "${after[@]}" <<'PY'
import sys
args = sys.argv[2:]
cut = args.index("--")
ports = args[:cut]
rest = args[cut + 1:]
cut2 = rest.index("--")
before = [list(map(int, x.split())) for x in rest[:cut2]]
after = [list(map(int, x.split())) for x in rest[cut2 + 1:]]
delta = [[a - b for a, b in zip(x, y)] for x, y in zip(after, before)]
label = sys.argv[1]
for what, i in (("EVALSHA calls", 0), ("command time", 2)):
    total = sum(d[i] for d in delta) or 1
    shares = [d[i] / total for d in delta]
    even = 1 / len(shares)
    gap = max(abs(s - even) / even for s in shares)
    print(f"{label} share of {what}: " + ", ".join(f"{p} {100 * s:.1f}%" for p, s in zip(ports, shares))
          + f"; largest gap from even {100 * gap:.0f}%")
PY
    fi
    stop_all
done
