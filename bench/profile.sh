#!/usr/bin/env bash
# Where the time goes in one benchmark step: runs it under a system-wide `perf record` (software
# cpu-clock sampling, which works in VMs without hardware counters) and prints the CPU split by
# process and the hottest functions of each. Needs Debian's linux-perf (installed when missing).
#
#   bench/profile.sh accept     # POST /seats/hold flat out, workers stopped (step a)
#   bench/profile.sh drain      # 100,000 holds drained by WORKERS workers (step b)
#   bench/profile.sh onsale     # the on-sale at a fixed rate with WORKERS workers (step c)
#   RATE=2000 bench/profile.sh onsale
#
# Output: bench/out/profile-<step>-<date>/{perf.data,by-process.txt,top.txt}.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STEP="${1:-accept}"
WORKERS="${WORKERS:-5}"
RATE="${RATE:-2000}"
CONNS="${CONNS:-64}"
case "$STEP" in accept | drain | onsale) ;; *) echo "usage: $0 accept|drain|onsale" >&2; exit 1 ;; esac

if ! command -v perf >/dev/null 2>&1; then
    env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf
fi
command -v redis-server >/dev/null 2>&1 || { echo "redis-server is missing (bench/run.sh installs it)" >&2; exit 1; }
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then PATH="$HOME/.cargo/bin:$PATH"; fi
cargo build --release -p api -p worker -p loadgen >&2
BIN="$ROOT/target/release"
OUT="$ROOT/bench/out/profile-$STEP-$(date -u +%Y%m%dT%H%M%SZ)"
TMP="$(mktemp -d)"
mkdir -p "$OUT"

free_port() { local p; for _ in $(seq 100); do p=$((20000 + RANDOM % 40000)); ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { echo "$p"; return; }; done; exit 1; }
PIDS=()
cleanup() { set +e; for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

RP="$(free_port)"
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --notify-keyspace-events Ex --dir "$TMP" >/dev/null 2>&1 &
PIDS+=("$!")
until [[ "$(redis-cli -p "$RP" ping 2>/dev/null)" == PONG ]]; do sleep 0.1; done
PORT="$(free_port)"
export REDIS_URL="redis://127.0.0.1:$RP" PORT CONFIG_DIR="$ROOT/config" LOG_DIR="$TMP" LOG_LEVEL=warn HOLD_TTL_SECS=600 RATE_LIMITS=${RATE_LIMITS:-off}
"$BIN/api" >/dev/null 2>&1 &
PIDS+=("$!")
until curl -s -o /dev/null "http://127.0.0.1:$PORT/health"; do sleep 0.1; done
LG=("$BIN/loadgen" --url "http://127.0.0.1:$PORT" --quiet)
workers() { for i in $(seq "$1"); do WORKER_NAME="prof-$i" "$BIN/worker" >/dev/null 2>&1 & PIDS+=("$!"); done; }

record() { perf record -q -a -g -e cpu-clock -F 499 -o "$OUT/perf.data" -- "$@" >&2; }
case "$STEP" in
    accept) record "${LG[@]}" backlog -e 10 -s 10000 -c "$CONNS" ;;
    drain)
        "${LG[@]}" backlog -e 10 -s 10000 -c "$CONNS" --out "$TMP/backlog.json" >&2
        workers "$WORKERS"
        record "${LG[@]}" drain --backlog "$TMP/backlog.json" ;;
    onsale)
        workers "$WORKERS"
        record "${LG[@]}" run -e 20 -s 10000 -u 200000 -k 4 -c "$CONNS" -d 10s -r "$RATE" ;;
esac
perf report -i "$OUT/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null | grep -v "^#" | grep -v '^$' | head -40 >"$OUT/by-process.txt"
perf report -i "$OUT/perf.data" --no-children --sort comm,dso,sym --stdio -g none 2>/dev/null |
    grep -v '^$' | grep -v '^#' | head -80 >"$OUT/top.txt"
echo "== CPU by process (samples of both cores) =="
cat "$OUT/by-process.txt"
echo "== hottest functions =="
head -50 "$OUT/top.txt"
echo "(full data: $OUT/perf.data)"
