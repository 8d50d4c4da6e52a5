#!/usr/bin/env bash
# What the hot scripts cost Redis in instructions rather than time (issue 16): redis-server runs
# under callgrind, which counts every instruction it executes while redis-benchmark sends one
# EVALSHA at a time (request parsing and reply included). On this shared 2-core VM a script's
# time per call varies by a third between runs (bench/script_cost.sh); its instruction count by
# well under 1%, so two versions of a script are told apart in one run.
#   bench/script_instructions.sh [CHECKOUT ...]    # whose queue-core/lua (default: this one)
# N (default 2000) calls per step, on one event of 10,000 seats, as bench/script_cost.sh:
#   enqueue   enqueue.lua, one hold of a random seat by one of 10,000 users per call
#   process_1 process.lua applying those holds 1 per call
#   process_8 process.lua applying as many more 8 per call (the figure is per job)
#   empty     process.lua on the empty queue
#   enqueue_8_events  enqueue.lua, one hold on each of 8 events per call (the figure is per job)
#   process_8_events  process.lua draining those 8 events in one call, one job of each (per job)
# Prints one line per checkout: `<checkout> enqueue=I process_1=I process_8_per_job=I empty=I
# enqueue_8_events_per_job=I process_8_events_1_each_per_job=I`
# (instructions per call, or per job). Needs valgrind (installed when missing).
# KEEP=1 keeps the profiles (cg.1 enqueue, cg.2 process_1, cg.3 process_8, cg.4 empty, cg.5
# enqueue_8_events, cg.6 process_8_events) and says where; REDIS_BIN names another redis-server, such as one built with
# symbols, so that `callgrind_annotate` can name Lua's and Redis's functions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N=${N:-2000}
(($# > 0)) || set -- "$ROOT"
if ! command -v valgrind >/dev/null 2>&1; then
    env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
fi
for src in "$@"; do
    LUA=$src/queue-core/lua
    TMP=$(mktemp -d)
    RP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    valgrind --tool=callgrind --callgrind-out-file="$TMP/cg" --instr-atstart=no \
        "${REDIS_BIN:-redis-server}" --port "$RP" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
        >/dev/null 2>"$TMP/valgrind.log" &
    VPID=$!
    for _ in $(seq 150); do [[ "$(redis-cli -p "$RP" ping 2>/dev/null)" == PONG ]] && break; sleep 0.2; done
    cli() { redis-cli -p "$RP" "$@"; }
    # Each script as that checkout's service loads it (a checkout of the scripts alone, or one
    # from before scripts.rs cut the prelude per script: with the whole of common.lua).
    whole=--whole
    grep -qs 'fn with_prelude' "$src/queue-core/src/scripts.rs" && whole=
    load() { cli -x script load < <(python3 "$ROOT/bench/lua_script.py" $whole "$LUA" "$1"); }
    EV=00000000-0000-4000-8000-00000000b001; K="rsv:{$EV}"
    KP=("$K" "$K:seats" "$K:deadlines" "$K:holders" "$K:queue" "$K:results" "$K:done" "$K:tick" "$K:changes" "$K:retry")
    # process.lua's arguments: since it drains several events per call (this commit on), the
    # event ids come last.
    if grep -q 'ARGV\[11...\]: the event ids' "$LUA/process.lua"; then
        drains=1; PA=(60000 6 300000 2000 "rsv:{sys}:finished" 3 100 5000 0.5 "$EV")
    else
        drains=0; PA=(60000 6 300000 2000 "rsv:{sys}:finished" "$EV" 3 100 5000 0.5)
    fi
    cli evalsha "$(load create_event.lua)" 2 "$K" "$K:seats" bench 10000 "" >/dev/null
    enqueue=$(load enqueue.lua); process=$(load process.lua)
    # enqueue.lua's arguments: since it takes the jobs of several events per call (this commit on), the
    # keys per event and each event's count of jobs come in; before, neither.
    if grep -q 'keys per event' "$LUA/enqueue.lua"; then
        several=1; one=(1000000 2000 4 "$EV" 1)
    else
        several=0; one=(1000000 2000 "$EV")
    fi
    # calls SEED CALLS COMMAND...: CALLS copies of COMMAND, sent one at a time by redis-cli, each
    # `__seat__` a seat number from 1 to 10,000 written as the service writes it, each `__user__`
    # one of 10,000 16-byte users; the same numbers for every checkout (seeded). (redis-benchmark's
    # __rand_int__ pads to 12 digits, which no caller of the service sends.)
    calls() {
        python3 - "$@" > "$TMP/calls.txt" <<'PY'
import random, sys
seed, n, words = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
rng = random.Random(seed)
for _ in range(n):
    print(" ".join(str(rng.randint(1, 10000)) if w == "__seat__"
                   else "user%012d" % rng.randint(0, 9999) if w == "__user__" else w for w in words))
PY
        redis-cli -p "$RP" < "$TMP/calls.txt" >/dev/null
    }
    rounds=0
    holds() {
        rounds=$((rounds + 1))
        calls "$rounds" "$N" evalsha "$enqueue" 4 "$K" "$K:seats" "$K:queue" \
            "rsv:{bench}:ready" "${one[@]}" H __seat__ __user__
    }
    # measured CALLS COMMAND...: the instructions of CALLS calls, dumped to the next file.
    dumps=0
    measured() {
        callgrind_control -i on "$VPID" >/dev/null 2>&1
        redis-benchmark -p "$RP" -c 1 -n "$1" -q "${@:2}" >/dev/null
        callgrind_control -i off "$VPID" >/dev/null 2>&1
        callgrind_control -d "$VPID" >/dev/null 2>&1
        dumps=$((dumps + 1))
    }
    total() { callgrind_annotate "$TMP/cg.$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n++ {gsub(",", "", $1); print $1}'; }
    callgrind_control -i on "$VPID" >/dev/null 2>&1; holds; callgrind_control -i off "$VPID" >/dev/null 2>&1
    callgrind_control -d "$VPID" >/dev/null 2>&1; dumps=1
    measured "$N" evalsha "$process" 10 "${KP[@]}" 1 "${PA[@]}"
    holds
    measured $((N / 8)) evalsha "$process" 10 "${KP[@]}" 8 "${PA[@]}"
    measured "$N" evalsha "$process" 10 "${KP[@]}" 8 "${PA[@]}"
    # 8 events of one hold each per call, as the group commit sends them at an on-sale of many
    # events (a checkout whose enqueue.lua takes one event per call: not measured).
    per_job_of_8_events=-
    if ((several)); then
        keys8=(); args8=(1000000 2000 4)
        for i in 1 2 3 4 5 6 7; do
            E=00000000-0000-4000-8000-00000000c00$i
            cli evalsha "$(load create_event.lua)" 2 "rsv:{$E}" "rsv:{$E}:seats" bench 10000 "" >/dev/null
            keys8+=("rsv:{$E}" "rsv:{$E}:seats" "rsv:{$E}:queue" "rsv:{bench}:ready")
            args8+=("$E" 1 H __seat__ __user__)
        done
        keys8+=("$K" "$K:seats" "$K:queue" "rsv:{bench}:ready"); args8+=("$EV" 1 H __seat__ __user__)
        callgrind_control -i on "$VPID" >/dev/null 2>&1
        calls 9 $((N / 8)) evalsha "$enqueue" 32 "${keys8[@]}" "${args8[@]}"
        callgrind_control -i off "$VPID" >/dev/null 2>&1
        callgrind_control -d "$VPID" >/dev/null 2>&1
        per_job_of_8_events=$(($(total 5) / N))
    fi
    # Then those 8 events drained in one process.lua call, one job of each per call (a checkout
    # whose process.lua drains one event per call: not measured).
    process_of_8_events=-
    if ((several && drains)); then
        keysp=(); idsp=()
        for i in 1 2 3 4 5 6 7 0; do
            E=00000000-0000-4000-8000-00000000c00$i; ((i == 0)) && E=$EV
            P="rsv:{$E}"
            keysp+=("$P" "$P:seats" "$P:deadlines" "$P:holders" "$P:queue" "$P:results" "$P:done" \
                "$P:tick" "$P:changes" "$P:retry")
            idsp+=("$E")
        done
        measured $((N / 8)) evalsha "$process" 80 "${keysp[@]}" 1 "${PA[@]:0:9}" "${idsp[@]}"
        process_of_8_events=$(($(total 6) / N))
    fi
    cli shutdown nosave >/dev/null 2>&1 || true
    wait "$VPID" 2>/dev/null || true
    echo "$src enqueue=$(($(total 1) / N)) process_1=$(($(total 2) / N)) process_8_per_job=$(($(total 3) / N)) empty=$(($(total 4) / N)) enqueue_8_events_per_job=$per_job_of_8_events process_8_events_1_each_per_job=$process_of_8_events"
    if [[ -n ${KEEP:-} ]]; then echo "kept: $TMP" >&2; else rm -rf "$TMP"; fi
done
