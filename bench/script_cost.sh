#!/usr/bin/env bash
# What each Lua script costs Redis alone (issue 16): on a fresh redis-server, redis-benchmark
# sends one EVALSHA at a time from one client, and Redis's own time per call is read from INFO
# commandstats (`usec_per_call` of evalsha, the script's commands included; stats reset before
# each step). No API or worker runs: this is the scripts' cost without the service around them.
#   bench/script_cost.sh [CHECKOUT] [CALLS]    # CHECKOUT: whose queue-core/lua (default: this one)
# Steps, on one event of 10,000 seats that create_event.lua makes:
#   bare          `return 1`, no prelude: what any EVALSHA costs
#   prelude       common.lua, then `return 1`: what prefixing common.lua costs every call
#   read_seat     read_seat.lua of one seat
#   job_status    job_status.lua of a job that finished (the first one applied below)
#   enqueue       enqueue.lua with one hold of a random seat by one of 10,000 users per call
#                 (CALLS jobs queued, less the few refused: seat 0 does not exist)
#   process_1     process.lua applying 1 job per call (CALLS/2 calls)
#   process_64    process.lua applying up to 64 jobs per call, until the queue is empty; also
#                 per job
#   process_empty process.lua on the empty queue: its fixed cost
# Prints one line per step: `<step> calls=N usec_per_call=X [per_job=Y]`, then the commands the
# script ran per call (`<command>=<calls>x<usec>`), their total, and what is left for the Lua.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC=${1:-$ROOT}; CALLS=${2:-20000}
LUA=$SRC/queue-core/lua
TMP=$(mktemp -d)
RP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
redis-server --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do [[ "$(redis-cli -p "$RP" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done
cli() { redis-cli -p "$RP" "$@"; }
# The service's form of a script: common.lua, a newline, the script (queue-core/src/scripts.rs).
# Each script as the service loads it (bench/lua_script.py).
load() { cli -x script load < <(python3 "$ROOT/bench/lua_script.py" "$LUA" "$1"); }
load_bare() { printf '%s' "$1" | cli -x script load; }

EV=00000000-0000-4000-8000-00000000b001
K="rsv:{$EV}"
KEYS_PROCESS=("$K" "$K:seats" "$K:deadlines" "$K:holders" "$K:queue" "$K:results" "$K:done" "$K:tick" "$K:changes" "$K:retry")
create=$(load create_event.lua)
[[ $(cli evalsha "$create" 2 "$K" "$K:seats" bench 10000 "") == 1 ]] || { echo "create_event failed" >&2; exit 1; }

# step NAME JOBS CALLS COMMAND...: CALLS calls of COMMAND (redis-benchmark, 1 client, no
# pipelining); JOBS > 0 also prints the time per job.
step() {
    local name=$1 jobs=$2 n=$3; shift 3
    cli config resetstat >/dev/null
    redis-benchmark -p "$RP" -c 1 -P 1 -n "$n" -r 10000 -q "$@" >/dev/null
    cli info commandstats | tr -d '\r' | awk -F'[:=,]' -v name="$name" -v jobs="$jobs" '
        /^cmdstat_evalsha:/ {
            line = sprintf("%s calls=%d usec_per_call=%.2f", name, $3, $7)
            if (jobs > 0) line = line sprintf(" per_job=%.2f", $5 / jobs)
            print line
        }'
    # The commands the script ran, per script call (commandstats counts them too): what they
    # cost, and what is left for the Lua itself.
    cli info commandstats | tr -d '\r' | awk -F'[:=,]' -v name="$name" '
        /^cmdstat_/ { cmd = substr($1, 9); calls[cmd] = $3; usec[cmd] = $5 }
        END {
            n = calls["evalsha"]; if (n == 0) exit
            inner = 0; detail = ""
            for (c in usec) if (c != "evalsha" && c != "config") {
                inner += usec[c]
                detail = detail sprintf(" %s=%.2fx%.2f", c, calls[c] / n, usec[c] / n)
            }
            printf "  %s commands=%.2f lua=%.2f (usec per call;%s)\n", name, inner / n, (usec["evalsha"] - inner) / n, detail
        }'
}

bare=$(load_bare 'return 1')
prelude=$(load_bare "$(cat "$LUA/common.lua"; echo; echo 'return 1')")
read_seat=$(load read_seat.lua)
job_status=$(load job_status.lua)
enqueue=$(load enqueue.lua)
process=$(load process.lua)

step bare 0 "$CALLS" evalsha "$bare" 0
step prelude 0 "$CALLS" evalsha "$prelude" 0
step read_seat 0 "$CALLS" evalsha "$read_seat" 2 "$K" "$K:seats" 1
# One hold per call: a random seat (redis-benchmark writes __rand_int__ as 12 digits, 0 to 9,999)
# by one of 10,000 users (a 16-byte id, as the service's).
step enqueue "$CALLS" "$CALLS" evalsha "$enqueue" 4 "$K" "$K:seats" "$K:queue" "rsv:{bench}:ready" \
    1000000 2000 4 "$EV" 1 H __rand_int__ user__rand_int__
queued=$(cli llen "$K:queue")
echo "queued=$queued (of $CALLS enqueue calls)"
# (the event ids last since process.lua drains several events per call)
process_args=(60000 6 300000 2000 "rsv:{sys}:finished" "$EV" 3 100 5000 0.5)
grep -q 'ARGV\[11...\]: the event ids' "$LUA/process.lua" &&
    process_args=(60000 6 300000 2000 "rsv:{sys}:finished" 3 100 5000 0.5 "$EV")
half=$((queued / 2))
step process_1 "$half" "$half" evalsha "$process" 10 "${KEYS_PROCESS[@]}" 1 "${process_args[@]}"
left=$(cli llen "$K:queue")
step process_64 "$left" $(((left + 63) / 64)) evalsha "$process" 10 "${KEYS_PROCESS[@]}" 64 "${process_args[@]}"
echo "left in the queue: $(cli llen "$K:queue")"
step process_empty 0 "$CALLS" evalsha "$process" 10 "${KEYS_PROCESS[@]}" 64 "${process_args[@]}"
step job_status 0 "$CALLS" evalsha "$job_status" 4 "$K" "$K:queue" "$K:results" "$K:deleted" 1 2000
