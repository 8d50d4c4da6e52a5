#!/usr/bin/env bash
# On-sale efficiency: what one job costs Redis, the API and the workers, for one build, on a
# fresh redis-server (run it alternately for two builds, in one session, and compare medians):
#   bench/efficiency.sh BIN_DIR LABEL
#   (a) wrk posts holds of distinct seats by fresh users flat out for A_SECS (8) s while WORKERS
#       (2) workers apply them; the clock stops once every accepted job is applied
#   (b) a loadgen run of B_SECS (10) s: users hold up to 4 seats, wait with ?wait, reserve half
#   (c) the same mix again for 4 s with SLOWLOG recording every command: each script's share of
#       Redis's time, its mean time per call, and the jobs per process.lua call
#   (d) the same mix for D_SECS (10) s at D_RATE POSTs/s (default: half of (b)'s rate; give both
#       builds of an A/B the same one): accept-to-result p50 and p99, client and server side
# Prints one line per step: jobs/s, Redis CPU per job, API CPU per POST, worker CPU per job (for
# (a) and (b) also Redis's user and system CPU per job and each command's calls per job; for (c) a line
# per script). BIN_DIR holds the build's `api` and `worker`; the load generators
# (wrk, this checkout's loadgen) are the same for both builds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$ROOT/bench/wrk_holds.sh"
BIN=$1; LABEL=$2
WORKERS=${WORKERS:-2}; A_SECS=${A_SECS:-8}; A_CONNS=${A_CONNS:-128}; B_SECS=${B_SECS:-10}
D_SECS=${D_SECS:-10}; D_RATE=${D_RATE:-}
LG=$ROOT/target/release/loadgen
[[ -x $LG ]] || (cd "$ROOT" && cargo build --release -p loadgen >&2)
if ! command -v wrk >/dev/null 2>&1; then
    env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
TMP=$(mktemp -d); mkdir -p "$TMP/redis"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RP=$(free_port); PORT=$(free_port); URL=http://127.0.0.1:$PORT
PIDS=()
cleanup() { set +e; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --notify-keyspace-events Ex \
    --slowlog-max-len 1000000 --dir "$TMP/redis" >"$TMP/redis.log" 2>&1 &
RPID=$!; PIDS+=("$RPID")
R=(redis-cli -p "$RP")
for _ in $(seq 50); do [[ "$("${R[@]}" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
export REDIS_URL=redis://127.0.0.1:$RP PORT CONFIG_DIR=$ROOT/config LOG_DIR=$TMP/logs LOG_LEVEL=warn \
    HOLD_TTL_SECS=600 MAX_HOLD_LIFETIME_SECS=600 RATE_LIMITS=off
"$BIN/api" >"$TMP/api.out" 2>&1 & APID=$!; PIDS+=("$APID")
WPIDS=()
for i in $(seq "$WORKERS"); do WORKER_NAME=eff-$i "$BIN/worker" >>"$TMP/worker.out" 2>&1 & WPIDS+=("$!"); PIDS+=("$!"); done
for _ in $(seq 100); do curl -sf -o /dev/null "$URL/health" && break; sleep 0.1; done

# CPU seconds so far: of Redis, of the API, of every worker.
redis_cpu() { "${R[@]}" info cpu | awk -F: '/used_cpu_(sys|user):/ {s+=$2} END {printf "%.6f", s}'; }
proc_cpu() { local s=0 p; for p in "$@"; do s=$(awk -v s="$s" -v t="$(getconf CLK_TCK)" '{print s + ($14 + $15) / t}' "/proc/$p/stat"); done; echo "$s"; }
redis_user() { "${R[@]}" info cpu | awk -F: '/used_cpu_user:/ {printf "%.6f", $2}'; }
# Where Redis's CPU per job goes: user (commands, scripts) and system (the kernel: sockets), and
# each command's calls per job (INFO commandstats, reset before the step; scripts' own commands
# counted too).
per_job() { # label jobs u0 u1 r0 r1
    local label=$1 jobs=$2
    python3 - "$@" <<'PY'
import sys
label, jobs, u0, u1, r0, r1 = sys.argv[1:]
jobs = max(int(jobs), 1)
user = (float(u1) - float(u0)) * 1e6 / jobs
total = (float(r1) - float(r0)) * 1e6 / jobs
print(f"{label} redis_user_us_per_job={user:.1f} redis_sys_us_per_job={total - user:.1f}")
PY
    "${R[@]}" info commandstats | tr -d '\r' | awk -F'[:=,]' -v label="$label" -v jobs="$jobs" '
        /^cmdstat_/ { if ($3 / jobs >= 0.01) line = line sprintf(" %s=%.2f", substr($1, 9), $3 / jobs) }
        END { print label " calls per job:" line }'
}
report() { # label jobs posts r0 r1 a0 a1 w0 w1 t0 t1
    python3 - "$@" <<'PY'
import sys
label, jobs, posts, r0, r1, a0, a1, w0, w1, t0, t1 = sys.argv[1:]
jobs, posts, secs = int(jobs), int(posts), float(t1) - float(t0)
f = lambda a, b, n: (float(b) - float(a)) * 1e6 / max(n, 1)
print(f"{label} jobs={jobs} jobs_per_s={jobs / secs:.0f} redis_cpu_us_per_job={f(r0, r1, jobs):.1f} "
      f"api_cpu_us_per_post={f(a0, a1, posts):.1f} worker_cpu_us_per_job={f(w0, w1, jobs):.1f}")
PY
}

# (a) wrk flat out, the workers applying as the holds come.
wrk_holds "$URL" 40 eff "$TMP/holds.lua"
ids=("${WRK_EVENTS[@]}")
"${R[@]}" config resetstat >/dev/null
u0=$(redis_user)
r0=$(redis_cpu); a0=$(proc_cpu "$APID"); w0=$(proc_cpu "${WPIDS[@]}"); t0=$(date +%s.%N)
wrk -t 1 -c "$A_CONNS" -d "${A_SECS}s" -s "$TMP/holds.lua" "$URL" >"$TMP/wrk.txt" 2>&1
posts=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
# Every 202 is a job the workers apply (all of them: the seats are distinct and free).
jobs=$((posts - $(awk '/Non-2xx/ {print $NF}' "$TMP/wrk.txt" | grep . || echo 0)))
# Until every accepted job is applied (the queues empty).
for _ in $(seq 600); do
    q=0; for i in "${ids[@]}"; do q=$((q + $("${R[@]}" llen "rsv:{$i}:queue"))); done
    ((q == 0)) && break; sleep 0.05
done
t1=$(date +%s.%N); r1=$(redis_cpu); a1=$(proc_cpu "$APID"); w1=$(proc_cpu "${WPIDS[@]}")
report "$LABEL (a)wrk" "$jobs" "$posts" "$r0" "$r1" "$a0" "$a1" "$w0" "$w1" "$t0" "$t1"
per_job "$LABEL (a)wrk" "$jobs" "$u0" "$(redis_user)" "$r0" "$r1"

# (b) the loadgen mix.
"${R[@]}" config resetstat >/dev/null
u0=$(redis_user)
r0=$(redis_cpu); a0=$(proc_cpu "$APID"); w0=$(proc_cpu "${WPIDS[@]}"); t0=$(date +%s.%N)
"$LG" --url "$URL" --quiet --threads 1 --json "$TMP/run.json" run -e 20 -s 10000 -u 200000 -k 4 -c 256 \
    -d "${B_SECS}s" --no-read-back >/dev/null 2>&1 || echo "$LABEL (b) loadgen exit $?"
t1=$(date +%s.%N); r1=$(redis_cpu); a1=$(proc_cpu "$APID"); w1=$(proc_cpu "${WPIDS[@]}")
# The CPU of the whole run, read-backs of results included, over its jobs and its POSTs.
report "$LABEL (b)loadgen" "$(jq -r .finished "$TMP/run.json")" "$(jq -r .posts "$TMP/run.json")" \
    "$r0" "$r1" "$a0" "$a1" "$w0" "$w1" "$t0" "$t1"
per_job "$LABEL (b)loadgen" "$(jq -r .finished "$TMP/run.json")" "$u0" "$(redis_user)" "$r0" "$r1"

# (c) each script's share of Redis's time: the same mix for 4 s with every command logged.
"${R[@]}" config set slowlog-log-slower-than 0 >/dev/null
"${R[@]}" slowlog reset >/dev/null
"$LG" --url "$URL" --quiet --threads 1 --json "$TMP/c.json" run -e 20 -s 10000 -u 200000 -k 4 -c 256 \
    -d 4s --no-read-back >/dev/null 2>&1 || true
"${R[@]}" config set slowlog-log-slower-than 10000 >/dev/null
python3 "$ROOT/bench/slowlog_share.py" "$RP" "$ROOT/queue-core/lua" "$LABEL (c)" "$(jq -r .finished "$TMP/c.json")"

# (d) the mix at a fixed rate of POSTs: half of (b)'s flat-out rate unless D_RATE says.
"${R[@]}" config set slowlog-log-slower-than 10000 >/dev/null
rate=${D_RATE:-$(jq -r '(.posts / .send_secs / 2) | floor' "$TMP/run.json" 2>/dev/null || echo 2000)}
"$LG" --url "$URL" --quiet --threads 1 --json "$TMP/d.json" run -e 20 -s 10000 -u 200000 -k 4 -c 256 \
    -d "${D_SECS}s" -r "$rate" --no-read-back >/dev/null 2>&1 || echo "$LABEL (d) loadgen exit $?"
jq -r --arg name "$LABEL (d)" --arg rate "$rate" \
    '"\($name) rate=\($rate) posts=\(.posts) accept_to_result_p50_ms=\(.accept_to_result.p50_ms) accept_to_result_p99_ms=\(.accept_to_result.p99_ms) server_p99_ms=\(.accept_to_result_server.p99_ms)"' \
    "$TMP/d.json"
