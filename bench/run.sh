#!/usr/bin/env bash
# The benchmark: starts its own redis-server and the service (release build) on free ports, and
# measures in one go, RUNS times over (medians are quoted, min–max shows the noise):
#   (a) the 202 rate of POST /seats/hold (workers stopped, so nothing competes with the accepts)
#   (b) the drain rate of the worker pool from a backlog of 100,000 holds, with 1, 2 and WORKERS
#       worker processes
#   (c) accept-to-result latency at half the maximum rate of a flat-out on-sale
#   (d) the cost of a hold on a 10-seat and on a 10,000-seat event
#   (e) creating and listing a 10,000-seat event
#   (f) redis-benchmark on the same server: LPUSH and an EVALSHA of enqueue.lua's size, the ceiling
#   (g) on-sale efficiency (bench/efficiency.sh, on a Redis of its own): CPU per job of Redis, the
#       API and the workers, for wrk holds flat out and for the loadgen mix; each script's share
#       of Redis's time goes to bench/out/<date>/efficiency-<run>.txt
#   (h) one Redis against a Redis Cluster of 3 primaries (bench/cluster.sh): drain and on-sale,
#       and each primary's share of the cluster's work
# It prints a table with each figure and its ratio to the ceiling, and writes the top of
# bench/RESULTS.md (machine, date, commit, command), keeping the comparison sections below it
# (each under a `## ` heading). Raw JSON reports of each step go to bench/out/<date>/.
#
#   bench/run.sh                 # RUNS=3, WORKERS=5
#   RUNS=1 WORKERS=3 bench/run.sh
#   bench/run.sh --no-results    # print the table, leave bench/RESULTS.md alone
#
# Every figure comes from a machine that may be busy with other work: read the min–max column.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. "$ROOT/bench/wrk_holds.sh"
RUNS="${RUNS:-3}"
WORKERS="${WORKERS:-5}"
BACKLOG_EVENTS=10      # 10 events x 10,000 seats = a backlog of 100,000 holds
BACKLOG_SEATS=10000
CONNS="${CONNS:-64}"   # concurrent connections for the flat-out loadgen steps
A_CONNS="${A_CONNS:-256}"  # wrk's connections for (a)
A_SECS="${A_SECS:-8}"      # wrk's duration for (a)
ONSALE_USERS="${ONSALE_USERS:-256}"  # users at once in the on-sale (each waits for its results)
ONSALE_SECS="${ONSALE_SECS:-10}"
CYCLE_SECS="${CYCLE_SECS:-5}"
WRITE_RESULTS=1
[[ ${1:-} == --no-results ]] && WRITE_RESULTS=0
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 1; }
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || { echo "WORKERS must be a positive integer" >&2; exit 1; }

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- what it needs
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if ((EUID == 0)); then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
        die "missing: ${missing[*]}; install with \`apt-get install ${missing[*]}\` as root"
    fi
    log "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust from https://rustup.rs"

log "building (cargo build --release -p api -p worker -p loadgen)"
cargo build --release -p api -p worker -p loadgen >&2
BIN="$ROOT/target/release"

# ---------------------------------------------------------------- processes
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/bench/out/$STAMP"
TMP="$(mktemp -d)"
mkdir -p "$OUT" "$TMP/redis" "$TMP/logs"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        port_free "$p" && { echo "$p"; return; }
    done
    die "no free port found"
}

REDIS_PID="" API_PID="" WORKER_PIDS=()
alive() { kill -0 "$1" 2>/dev/null; }
stop_pids() { # SIGTERM, then wait (SIGKILL after 15 s)
    local pid
    for pid in "$@"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 150); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
cleanup() {
    set +e
    stop_pids "${WORKER_PIDS[@]}" $API_PID
    [[ -n $REDIS_PID ]] && { redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1; stop_pids "$REDIS_PID"; }
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

REDIS_PORT="$(free_port)"
# No persistence for the benchmark (nothing to fsync), keyspace notifications as the service wants.
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --notify-keyspace-events Ex --dir "$TMP/redis" >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
RCLI=(redis-cli -p "$REDIS_PORT")
for _ in $(seq 50); do [[ "$("${RCLI[@]}" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
[[ "$("${RCLI[@]}" ping 2>/dev/null)" == PONG ]] || die "redis-server did not start (see $TMP/redis.log)"

PORT="$(free_port)"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT" PORT CONFIG_DIR="$ROOT/config"
export LOG_DIR="$TMP/logs" LOG_LEVEL="${LOG_LEVEL:-warn}"
# Holds outlive every step, so no seat lapses in the middle of a measurement.
export HOLD_TTL_SECS=600 MAX_HOLD_LIFETIME_SECS=600
# Every request comes from this one machine: rate limits off (RATE_LIMITS=on measures them).
export RATE_LIMITS="${RATE_LIMITS:-off}"
URL="http://127.0.0.1:$PORT"
"$BIN/api" >"$TMP/api.out" 2>&1 &
API_PID=$!
for _ in $(seq 100); do
    code="$(curl -s -o /dev/null -w '%{http_code}' "$URL/health" || true)"
    [[ $code == 200 || $code == 503 ]] && break
    alive "$API_PID" || die "the API exited: $(tail -5 "$TMP/api.out")"
    sleep 0.1
done
log "redis-server on $REDIS_PORT, API on $PORT"

start_workers() { # N
    local i
    for i in $(seq "$1"); do
        WORKER_NAME="bench-$i" "$BIN/worker" >>"$TMP/worker.out" 2>&1 &
        WORKER_PIDS+=("$!")
    done
}
stop_workers() {
    ((${#WORKER_PIDS[@]})) && stop_pids "${WORKER_PIDS[@]}"
    WORKER_PIDS=()
}
# A clean slate between steps (the scripts stay loaded).
flush() { "${RCLI[@]}" flushall >/dev/null; }

LG=("$BIN/loadgen" --url "$URL" --quiet)

# Results: FIG[<key>] = "value value ..." (one per run).
declare -A FIG
add() { FIG[$1]="${FIG[$1]:-} $2"; }
jget() { jq -r "$2" "$1"; }

# An EVALSHA of about enqueue.lua's size and work: TIME, HGET, GETRANGE, LLEN, HINCRBY, RPUSH,
# HGET, HSET on keys of one hash tag.
EVAL_SCRIPT='
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local total = redis.call("HGET", KEYS[1], "total")
if not total then return {404} end
local raw = redis.call("GETRANGE", KEYS[2], (tonumber(ARGV[2]) - 1) * 29, tonumber(ARGV[2]) * 29 - 1)
if string.sub(raw, 1, 1) == "H" then return {409} end
local depth = redis.call("LLEN", KEYS[3])
if depth >= tonumber(ARGV[4]) then return {503, depth} end
local seq = redis.call("HINCRBY", KEYS[1], "enq", 1)
redis.call("RPUSH", KEYS[3], ARGV[1] .. ARGV[3] .. ARGV[2] .. "|" .. now .. "|" .. seq)
local lease = redis.call("HGET", KEYS[1], "lease")
if not lease or tonumber(lease) <= now then redis.call("HSET", KEYS[1], "lease", now + 2000) end
return {202, seq, depth, 0}'

ceiling() { # run
    local r=$1 csv rps sha c best=0
    # LPUSH with 50 clients (redis-benchmark's default) and with as many as the HTTP step uses;
    # the higher of the two is the ceiling.
    for c in 50 "$A_CONNS"; do
        csv="$(redis-benchmark -p "$REDIS_PORT" -q -P 1 -c "$c" -n 300000 -t lpush --csv 2>/dev/null | tail -1)"
        rps="$(echo "$csv" | awk -F'","' '{gsub(/"/, "", $2); print $2}')"
        add "lpush_$c" "$rps"
        best="$(awk -v a="$best" -v b="$rps" 'BEGIN {print (b > a) ? b : a}')"
    done
    add lpush "$best"
    "${RCLI[@]}" hset 'bb:{e}' total 10000 >/dev/null
    "${RCLI[@]}" setrange 'bb:{e}:seats' 289999 x >/dev/null
    sha="$("${RCLI[@]}" script load "$EVAL_SCRIPT")"
    csv="$(redis-benchmark -p "$REDIS_PORT" -q -P 1 -c 50 -n 300000 --csv \
        evalsha "$sha" 3 'bb:{e}' 'bb:{e}:seats' 'bb:{e}:queue' H 5000 0123456789abcdef 100000000 2>/dev/null | tail -1)"
    rps="$(echo "$csv" | awk -F'","' '{gsub(/"/, "", $2); print $2}')"
    add evalsha "$rps"
    echo "$csv" >"$OUT/ceiling-$r.csv"
    flush
}

# (a) with wrk: holds of distinct seats and users across 10 events of 10,000 seats, built before
# the clock starts, one wrk thread (a cheaper client than loadgen, as redis-benchmark is for the
# ceiling); no worker runs, so nothing competes with the accepts.
accept_wrk() { # run
    local r=$1 ids=() i out total non2xx secs p99 queued
    wrk_holds "$URL" "$BACKLOG_EVENTS" wrk "$TMP/holds.lua"
    ids=("${WRK_EVENTS[@]}")
    out="$OUT/wrk-$r.txt"
    wrk -t 1 -c "$A_CONNS" -d "${A_SECS}s" --latency -s "$TMP/holds.lua" "$URL" >"$out" 2>&1 ||
        die "wrk failed: $(tail -3 "$out")"
    total="$(awk '/requests in/ {print $1}' "$out")"
    secs="$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$out")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' "$out")"
    p99="$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms$/, "", v)} else if (v ~ /s$/) {sub(/s$/, "", v); v *= 1000}; print v}' "$out")"
    queued=0
    for i in "${ids[@]}"; do queued=$((queued + $("${RCLI[@]}" llen "rsv:{$i}:queue"))); done
    # Every 202 wrk counted is a job on a queue; the queues may hold up to one more per
    # connection: the requests in flight when wrk stopped counting.
    local ok=$((total - ${non2xx:-0}))
    ((queued >= ok && queued <= ok + A_CONNS)) || die "wrk saw $ok 202s but the queues hold $queued jobs"
    add accept_wrk "$(awk -v n="$ok" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')"
    add accept_wrk_p99 "$p99"
    add accept_wrk_non2xx "${non2xx:-0}"
    flush
}

one_run() { # run number
    local r=$1 n since rate
    log "run $r/$RUNS: (f) redis-benchmark"
    ceiling "$r"
    log "run $r/$RUNS: (a) wrk, $A_CONNS connections, ${A_SECS}s of holds"
    accept_wrk "$r"

    # (a) + (b): a backlog of 100,000 holds accepted with the workers stopped, then drained.
    for n in 1 2 "$WORKERS"; do
        log "run $r/$RUNS: (a) 100,000 holds accepted; (b) drained by $n worker(s)"
        "${LG[@]}" --json "$OUT/backlog-$r-$n.json" backlog -e "$BACKLOG_EVENTS" -s "$BACKLOG_SEATS" \
            -c "$CONNS" --out "$TMP/backlog.json" >&2
        add "accept" "$(jget "$OUT/backlog-$r-$n.json" .accepted_per_sec)"
        add "accept_p99" "$(jget "$OUT/backlog-$r-$n.json" .latency_202.p99_ms)"
        since="$(date +%s%3N)"
        start_workers "$n"
        "${LG[@]}" --json "$OUT/drain-$r-$n.json" drain --backlog "$TMP/backlog.json" --since-ms "$since" >&2
        add "drain_$n" "$(jget "$OUT/drain-$r-$n.json" .jobs_per_sec)"
        [[ "$(jget "$OUT/drain-$r-$n.json" .seats_taken)" == "$(jget "$OUT/drain-$r-$n.json" .jobs)" ]] ||
            die "the drain left holds unapplied (see $OUT/drain-$r-$n.json)"
        stop_workers
        flush
    done

    # (c) the on-sale flat out with WORKERS workers, then at half its rate of POSTs.
    start_workers "$WORKERS"
    log "run $r/$RUNS: (c) on-sale flat out for ${ONSALE_SECS}s"
    "${LG[@]}" --json "$OUT/onsale-max-$r.json" run -e 20 -s 10000 -u 200000 -k 4 \
        -c "$ONSALE_USERS" -d "${ONSALE_SECS}s" >&2 || die "the on-sale broke an invariant (see $OUT/onsale-max-$r.json)"
    add onsale_posts "$(jq -r '.posts / .send_secs' "$OUT/onsale-max-$r.json")"
    add onsale_accepted "$(jget "$OUT/onsale-max-$r.json" .accepted_per_sec)"
    add onsale_finished "$(jget "$OUT/onsale-max-$r.json" .finished_per_sec)"
    add onsale_max_p99 "$(jget "$OUT/onsale-max-$r.json" .accept_to_result.p99_ms)"
    flush
    rate="$(jq -r '(.posts / .send_secs / 2) | floor' "$OUT/onsale-max-$r.json")"
    log "run $r/$RUNS: (c) on-sale at half that: $rate POSTs/s for ${ONSALE_SECS}s"
    # One generator thread here: on 2 cores a second one costs a hop between threads per request,
    # which shows in the latencies measured (it keeps the rate: see "POSTs sent late").
    "${LG[@]}" --threads 1 --json "$OUT/onsale-half-$r.json" run -e 20 -s 10000 -u 200000 -k 4 \
        -c "$ONSALE_USERS" -d "${ONSALE_SECS}s" -r "$rate" >&2 || die "the on-sale broke an invariant (see $OUT/onsale-half-$r.json)"
    add half_rate "$rate"
    add half_p50 "$(jget "$OUT/onsale-half-$r.json" .accept_to_result.p50_ms)"
    add half_p90 "$(jget "$OUT/onsale-half-$r.json" .accept_to_result.p90_ms)"
    add half_p99 "$(jget "$OUT/onsale-half-$r.json" .accept_to_result.p99_ms)"
    add half_max "$(jget "$OUT/onsale-half-$r.json" .accept_to_result.max_ms)"
    add half_server_p99 "$(jget "$OUT/onsale-half-$r.json" .accept_to_result_server.p99_ms)"
    add half_202_p99 "$(jget "$OUT/onsale-half-$r.json" .latency_202.p99_ms)"
    add half_late "$(jget "$OUT/onsale-half-$r.json" .late_posts)"
    flush

    # (d) a hold on a 10-seat and on a 10,000-seat event: whole cycles with the workers running,
    # then the 202 rate alone with them stopped.
    # Alternate which size goes first, so that neither always inherits the previous step's tail.
    local sizes=(10 10000)
    ((r % 2)) || sizes=(10000 10)
    for n in "${sizes[@]}"; do
        log "run $r/$RUNS: (d) hold/result/release cycles on a $n-seat event"
        "${LG[@]}" --json "$OUT/cycle-$r-$n.json" cycle -s "$n" -c 8 -d "${CYCLE_SECS}s" >&2
        add "cycle_$n" "$(jget "$OUT/cycle-$r-$n.json" .cycles_per_sec)"
        add "cycle_p50_$n" "$(jget "$OUT/cycle-$r-$n.json" .cycle.p50_ms)"
        flush
    done
    stop_workers
    for n in "${sizes[@]}"; do
        log "run $r/$RUNS: (d) 50,000 holds accepted on a $n-seat event"
        "${LG[@]}" --json "$OUT/accept-$r-$n.json" backlog -e 1 -s "$n" -n 50000 -c "$CONNS" >&2
        add "accept_$n" "$(jget "$OUT/accept-$r-$n.json" .accepted_per_sec)"
        flush
    done

    # (e) creating and listing a 10,000-seat event, one request at a time.
    log "run $r/$RUNS: (e) create and list 10,000-seat events"
    "${LG[@]}" --json "$OUT/timings-$r.json" timings -s 10000 -n 20 >&2
    add create "$(jget "$OUT/timings-$r.json" .create.p50_ms)"
    add list "$(jget "$OUT/timings-$r.json" .list.p50_ms)"
    flush

    # (g) on-sale efficiency: what a job costs Redis, the API and the workers, on a Redis and
    # service of its own (bench/efficiency.sh, which also prints each script's share).
    log "run $r/$RUNS: (g) on-sale efficiency (bench/efficiency.sh)"
    "$ROOT/bench/efficiency.sh" "$BIN" "run$r" >"$OUT/efficiency-$r.txt" 2>&1 ||
        die "efficiency.sh failed: $(tail -3 "$OUT/efficiency-$r.txt")"
    local step field
    for step in a b; do
        for field in jobs_per_s redis_cpu_us_per_job api_cpu_us_per_post worker_cpu_us_per_job; do
            add "eff_${step}_$field" "$(grep " ($step)" "$OUT/efficiency-$r.txt" | tr ' ' '\n' |
                awk -F= -v f="$field" '$1 == f {print $2}')"
        done
    done
    # Each script alone (bench/script_cost.sh, on a Redis of its own): raw lines only.
    "$ROOT/bench/script_cost.sh" "$ROOT" >"$OUT/script-cost-$r.txt" 2>&1 ||
        log "script_cost.sh failed: $(tail -3 "$OUT/script-cost-$r.txt")"
    # Their instructions (callgrind: the same every run, so once is enough).
    if ((r == 1)); then
        "$ROOT/bench/script_instructions.sh" "$ROOT" >"$OUT/script-instructions.txt" 2>&1 ||
            log "script_instructions.sh failed: $(tail -3 "$OUT/script-instructions.txt")"
    fi
    flush

    # (h) the same load on one Redis and on a cluster of 3 primaries (bench/cluster.sh, on
    # servers of its own), and how the cluster's work spreads over its primaries.
    log "run $r/$RUNS: (h) one Redis and a 3-primary cluster (bench/cluster.sh)"
    WORKERS="$WORKERS" "$ROOT/bench/cluster.sh" "$BIN" >"$OUT/cluster-$r.txt" 2>&1 ||
        die "cluster.sh failed: $(tail -3 "$OUT/cluster-$r.txt")"
    local topo
    for topo in single cluster; do
        add "cl_${topo}_drain" "$(awk -v t="$topo" '$1 == t && / drain: / {for (i = 1; i <= NF; i++) if ($i == "drain:") print $(i + 1)}' "$OUT/cluster-$r.txt")"
        add "cl_${topo}_onsale" "$(awk -v t="$topo" '$1 == t && / onsale: / {for (i = 1; i <= NF; i++) if ($i == "onsale:") print $(i + 1)}' "$OUT/cluster-$r.txt")"
    done
    add cl_gap_calls "$(awk '/share of EVALSHA calls/ {v = $NF; sub(/%$/, "", v); print v}' "$OUT/cluster-$r.txt")"
    add cl_gap_time "$(awk '/share of command time/ {v = $NF; sub(/%$/, "", v); print v}' "$OUT/cluster-$r.txt")"
    flush
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$RUNS"); do one_run "$r"; done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- the table
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%s–%s", lo, hi}'; }
M() { echo "${FIG[$1]}" | median; }
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN {printf "%.*f", d, v}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.0f%%", 100 * a / b; else print "-"}'; }
yes_if() { awk "BEGIN {exit !($1)}" && echo "met" || echo "MISSED"; }
rng() { # key decimals
    echo "${FIG[$1]}" | tr ' ' '\n' | grep -v '^$' | sort -g |
        awk -v d="${2:-0}" 'NR==1{lo=$1} {hi=$1} END {printf "%.*f–%.*f", d, lo, d, hi}'
}

LPUSH="$(M lpush)" EVALSHA="$(M evalsha)"
ACCEPT="$(M accept)" ACCEPT_WRK="$(M accept_wrk)"
D1="$(M drain_1)" D2="$(M drain_2)" DW="$(M "drain_$WORKERS")"
HALF_P99="$(M half_p99)"
C10="$(M cycle_10)" C10K="$(M cycle_10000)"
A10="$(M accept_10)" A10K="$(M accept_10000)"
CREATE="$(M create)" LIST="$(M list)"

row() { # figure key decimals unit ceiling-ratio target verdict
    printf '| %s | %s %s | %s | %s | %s | %s |\n' "$1" "$(fmt "$(M "$2")" "$3")" "$4" "$(rng "$2" "$3")" "$5" "$6" "$7"
}
TABLE="$(
    echo "| figure | median | runs (min–max) | vs ceiling | target | verdict |"
    echo "| --- | ---: | ---: | ---: | --- | --- |"
    row "(f) ceiling: LPUSH, unpipelined (the higher of the two below)" lpush 0 "/s" "1.00" "" ""
    row "(f) LPUSH, unpipelined, 50 clients" lpush_50 0 "/s" "" "" ""
    row "(f) LPUSH, unpipelined, $A_CONNS clients" "lpush_$A_CONNS" 0 "/s" "" "" ""
    row "(f) ceiling: EVALSHA of enqueue.lua's size, 50 clients" evalsha 0 "/s" "$(pct "$EVALSHA" "$LPUSH") of LPUSH" "" ""
    row "(a) 202s of POST /seats/hold (wrk, $A_CONNS connections), workers stopped" accept_wrk 0 "/s" "$(pct "$ACCEPT_WRK" "$LPUSH") of LPUSH" "≥ 40% of LPUSH" "$(yes_if "$ACCEPT_WRK >= 0.4 * $LPUSH")"
    row "(a) p99 latency of those 202s" accept_wrk_p99 2 "ms" "" "" ""
    row "(a) answers other than 202 in that step" accept_wrk_non2xx 0 "" "" "" ""
    row "(a) same through loadgen (a costlier client), $CONNS connections" accept 0 "/s" "$(pct "$ACCEPT" "$LPUSH") of LPUSH" "" ""
    row "(a) p99 latency of those 202s" accept_p99 2 "ms" "" "" ""
    row "(b) drain of 100,000 holds, 1 worker" drain_1 0 "jobs/s" "$(pct "$D1" "$LPUSH") of LPUSH" "" ""
    row "(b) drain, 2 workers" drain_2 0 "jobs/s" "$(pct "$D2" "$LPUSH") of LPUSH" "" ""
    row "(b) drain, $WORKERS workers (WORKERS)" "drain_$WORKERS" 0 "jobs/s" "$(pct "$DW" "$LPUSH") of LPUSH" "≥ 25,000 jobs/s" "$(yes_if "$DW >= 25000")"
    row "(c) on-sale flat out ($WORKERS workers): POSTs" onsale_posts 0 "/s" "$(pct "$(M onsale_posts)" "$LPUSH") of LPUSH" "" ""
    row "(c) on-sale flat out: 202s" onsale_accepted 0 "/s" "" "" ""
    row "(c) on-sale flat out: jobs finished" onsale_finished 0 "/s" "" "" ""
    row "(c) on-sale flat out: accept-to-result p99" onsale_max_p99 2 "ms" "" "" ""
    row "(c) half load: rate of POSTs" half_rate 0 "/s" "" "" ""
    row "(c) half load: accept-to-result p50" half_p50 2 "ms" "" "" ""
    row "(c) half load: accept-to-result p90" half_p90 2 "ms" "" "" ""
    row "(c) half load: accept-to-result p99 (client)" half_p99 2 "ms" "" "< 10 ms" "$(yes_if "$HALF_P99 < 10")"
    row "(c) half load: accept-to-result p99 (server, completedAt − createdAt)" half_server_p99 0 "ms" "" "" ""
    row "(c) half load: 202 p99" half_202_p99 2 "ms" "" "" ""
    row "(c) half load: POSTs sent late (generator behind)" half_late 0 "" "" "" ""
    row "(d) hold/result/release cycles, 10-seat event, 8 users" cycle_10 0 "/s" "" "" ""
    row "(d) same, 10,000-seat event" cycle_10000 0 "/s" "$(ratio "$C10K" "$C10") of 10-seat" "within 10%" "$(yes_if "$C10K >= 0.9 * $C10")"
    row "(d) cycle p50, 10-seat" cycle_p50_10 2 "ms" "" "" ""
    row "(d) cycle p50, 10,000-seat" cycle_p50_10000 2 "ms" "" "" ""
    row "(d) 202s of holds, 10-seat event, workers stopped" accept_10 0 "/s" "$(pct "$A10" "$LPUSH") of LPUSH" "" ""
    row "(d) same, 10,000-seat event" accept_10000 0 "/s" "$(ratio "$A10K" "$A10") of 10-seat" "within 10%" "$(yes_if "$A10K >= 0.9 * $A10")"
    row "(e) POST /events/create, 10,000 seats (median of 20)" create 2 "ms" "" "< 50 ms" "$(yes_if "$CREATE < 50")"
    row "(e) GET /seats/list, 10,000 seats (median of 20)" list 2 "ms" "" "< 20 ms" "$(yes_if "$LIST < 20")"
    row "(g) efficiency, wrk holds flat out, 2 workers: jobs applied" eff_a_jobs_per_s 0 "/s" "" "≥ 25,000 /s" "$(yes_if "$(M eff_a_jobs_per_s) >= 25000")"
    row "(g) same: Redis CPU per job" eff_a_redis_cpu_us_per_job 1 "µs" "" "≤ 20 µs" "$(yes_if "$(M eff_a_redis_cpu_us_per_job) <= 20")"
    row "(g) same: API CPU per POST" eff_a_api_cpu_us_per_post 1 "µs" "" "≤ 15 µs" "$(yes_if "$(M eff_a_api_cpu_us_per_post) <= 15")"
    row "(g) same: worker CPU per job" eff_a_worker_cpu_us_per_job 1 "µs" "" "" ""
    row "(g) efficiency, the loadgen mix: jobs finished" eff_b_jobs_per_s 0 "/s" "" "" ""
    row "(g) same: Redis CPU per job" eff_b_redis_cpu_us_per_job 1 "µs" "" "≤ 25 µs" "$(yes_if "$(M eff_b_redis_cpu_us_per_job) <= 25")"
    row "(g) same: API CPU per POST (its reads included)" eff_b_api_cpu_us_per_post 1 "µs" "" "" ""
    row "(g) same: worker CPU per job" eff_b_worker_cpu_us_per_job 1 "µs" "" "" ""
    row "(h) drain of 30 events' holds, one Redis, $WORKERS workers" cl_single_drain 0 "jobs/s" "" "" ""
    row "(h) same on a cluster of 3 primaries (and 3 replicas)" cl_cluster_drain 0 "jobs/s" "$(ratio "$(M cl_cluster_drain)" "$(M cl_single_drain)") of one Redis" "" ""
    row "(h) on-sale flat out over 30 other events, one Redis" cl_single_onsale 0 "jobs/s" "" "" ""
    row "(h) same on the cluster" cl_cluster_onsale 0 "jobs/s" "$(ratio "$(M cl_cluster_onsale)" "$(M cl_single_onsale)") of one Redis" "" ""
    row "(h) cluster on-sale: largest gap of a primary's EVALSHA calls from an even share" cl_gap_calls 0 "%" "" "≤ 20%" "$(yes_if "$(M cl_gap_calls) <= 20")"
    row "(h) same for Redis's command time" cl_gap_time 0 "%" "" "≤ 20%" "$(yes_if "$(M cl_gap_time) <= 20")"
)"

CPU="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
MACHINE="$(nproc) cores ($CPU), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr)"
REPORT="$(
    cat <<EOF
# Benchmark results

- **date**: $(date -u '+%Y-%m-%d %H:%M UTC')
- **commit**: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- api worker queue-core config 2>/dev/null || echo " (with uncommitted changes to the service)")
- **machine**: $MACHINE
- **software**: $(redis-server --version | awk '{print $1, $2, $3}'), $(rustc --version 2>/dev/null || echo rustc)
- **command**: \`RUNS=$RUNS WORKERS=$WORKERS bench/run.sh\` (medians of $RUNS runs; the machine is shared, so the min–max column shows the noise)
- **load average** (1, 5, 15 min) before and after: $LOAD_BEFORE / $LOAD_AFTER (2 cores; anything above ~2 is someone else's work competing)
- **setup**: one redis-server (no persistence, keyspace notifications on), one API process (\`API_HTTP_WORKERS\` default), worker processes as stated, the load generators (wrk, loadgen) on the same machine, all on 127.0.0.1; HOLD_TTL_SECS=600 so no hold lapses during a step.

$TABLE

Steps: (a) \`wrk -t 1 -c $A_CONNS -d ${A_SECS}s --latency\` posting holds of distinct seats and users
across 10 events of 10,000 seats (requests built before the clock starts), no worker running; the
202s are counted from the queues' lengths, which must equal wrk's count; (a) via loadgen and (b)
\`loadgen backlog -e 10 -s 10000 -c $CONNS\` with no worker running, then N
workers started and \`loadgen drain\` timing from their start to the last job's \`completedAt\`;
(c) \`loadgen run -e 20 -s 10000 -u 200000 -k 4 -c $ONSALE_USERS -d ${ONSALE_SECS}s\`, then the same
with \`--threads 1\` and \`-r\` at half its POST rate (client latency: from the 202 to the \`?wait\`
answer); (d)
\`loadgen cycle -s N -c 8 -d ${CYCLE_SECS}s\` with $WORKERS workers, and \`loadgen backlog -e 1 -s N -n 50000\`
without; (e) \`loadgen timings -s 10000 -n 20\`; (f) \`redis-benchmark -P 1 -c 50 -n 300000\` (and \`-c $A_CONNS\` for LPUSH).
(g) \`bench/efficiency.sh\`: wrk holds flat out over 40 events of 10,000 seats while 2 workers
apply them, and a 10 s \`loadgen run\` mix, each on a fresh Redis and service; CPU from INFO cpu
and /proc, per job applied (per POST for the API, whose figure in the mix carries its reads too).
(h) \`bench/cluster.sh\`: 30 events as many on each primary, a backlog of their holds drained by
$WORKERS workers, then a 10 s flat-out \`loadgen run\` over 30 other events, on one redis-server and
on 6 (3 primaries, 3 replicas) on the same machine: with every process on the same 2 cores a
cluster cannot be faster here; the figure to read is the spread of the work over its primaries
(INFO commandstats during the on-sale).
Raw reports: \`bench/out/$STAMP/\` (not committed; \`efficiency-<run>.txt\` has each script's share).
EOF
)"

echo
echo "$TABLE"
echo
if ((WRITE_RESULTS)); then
    # The report replaces the top of the file; the sections below it (side-by-side comparisons
    # such as ab.sh's, each under a `## ` heading) are kept.
    kept="$(awk 'f || /^## / {f = 1; print}' "$ROOT/bench/RESULTS.md" 2>/dev/null || true)"
    { echo "$REPORT"; [[ -n $kept ]] && printf '\n%s\n' "$kept"; } >"$ROOT/bench/RESULTS.md"
    log "wrote bench/RESULTS.md (its own part; the comparison sections below are kept)"
fi
