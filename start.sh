#!/usr/bin/env bash
# Runs the whole service in the foreground (docs/CONTRACT.md §5): makes sure a Redis answers at REDIS_URL
# (starting a local redis-server when none does), builds in release mode, starts the API and
# WORKERS worker processes, and stops them all on Ctrl-C or SIGTERM.
#
# It sets up what it needs on a Debian/Ubuntu machine: redis-server (only when it has to start a
# local Redis) and a C compiler for cargo are installed with apt-get when missing, as root or
# through sudo (scripts/lib.sh `apt_install`, as scripts/test.sh does); otherwise it says what to
# install. Rust itself comes from rustup.
#
#   ./start.sh                                  # Redis on 127.0.0.1:6379, API on port 3000
#   PORT=8080 WORKERS=2 ./start.sh
#   REDIS_URL=redis://10.0.0.5:6379/1 ./start.sh
#   REDIS_MAXMEMORY=4gb ./start.sh              # the limit of the redis-server it starts
#   ./start.sh --redis-args                     # print that redis-server's arguments and stop
#   ./start.sh --check-redis                    # check the memory settings of the Redis at REDIS_URL
#   RATE_LIMITS=off ./start.sh                  # for a load test from one machine (loadgen, bench/)
#
# Every other setting of docs/CONTRACT.md §4 (HOLD_TTL_SECS, LOG_DIR, ...) passes through the environment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

log() { printf '[start.sh] %s\n' "$*"; }
die() { printf '[start.sh] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- settings
# The `count` of the [workers] section of a TOML file, or nothing.
workers_from_toml() {
    [[ -f $1 ]] || return 0
    awk '
        /^[[:space:]]*\[/ { in_workers = ($0 ~ /^[[:space:]]*\[workers\][[:space:]]*(#.*)?$/); next }
        in_workers && /^[[:space:]]*count[[:space:]]*=/ {
            v = $0; sub(/^[^=]*=/, "", v); sub(/#.*/, "", v); gsub(/[[:space:]"]/, "", v)
            print v; exit
        }' "$1"
}

CONFIG_DIR="${CONFIG_DIR:-config}"
if [[ -z ${WORKERS:-} ]]; then
    WORKERS="$(workers_from_toml "$CONFIG_DIR/local.toml")"
    [[ -n $WORKERS ]] || WORKERS="$(workers_from_toml "$CONFIG_DIR/default.toml")"
    [[ -n $WORKERS ]] || WORKERS=5
fi
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, got '$WORKERS'"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export PORT="${PORT:-3000}"
export CONFIG_DIR

# ---------------------------------------------------------------- Redis
# redis://[user:password@]host[:port][/db], or redis-cluster://host:port?node=...: its first node
url_rest="${REDIS_URL#*://}"
url_rest="${url_rest%%/*}"
url_rest="${url_rest%%\?*}"
if [[ $url_rest == *@* ]]; then
    url_auth="${url_rest%@*}"
    url_rest="${url_rest##*@}"
    export REDISCLI_AUTH="${url_auth#*:}"  # password only; redis-cli reads it from here
fi
if [[ $url_rest =~ ^\[(.*)\](:([0-9]+))?$ ]]; then  # [::1]:6379
    REDIS_HOST="${BASH_REMATCH[1]}"
    REDIS_PORT="${BASH_REMATCH[3]:-6379}"
elif [[ $url_rest == *:* ]]; then
    REDIS_HOST="${url_rest%%:*}"
    REDIS_PORT="${url_rest##*:}"
else
    REDIS_HOST="$url_rest"
    REDIS_PORT=6379
fi
REDIS_HOST="${REDIS_HOST:-127.0.0.1}"
[[ $REDIS_PORT =~ ^[0-9]+$ ]] || die "cannot read a port from REDIS_URL=$REDIS_URL"

# The memory limit of the redis-server started here (docs/CONTRACT.md §4): with `noeviction` a
# Redis at its limit refuses writes (the API answers 503 store_full) instead of evicting keys,
# which would silently drop seats, holds and queued jobs.
REDIS_MAXMEMORY="${REDIS_MAXMEMORY:-1gb}"
[[ $REDIS_MAXMEMORY =~ ^[1-9][0-9]*([kKmMgG][bB]?)?$ ]] ||
    die "REDIS_MAXMEMORY must be a positive size such as 1gb, 512mb or 1000000 (bytes), got '$REDIS_MAXMEMORY'"

REDIS_DIR="$ROOT/.redis-data/$REDIS_PORT"  # one per port: each server its own AOF

# The arguments of the redis-server this script starts, one a line: keyspace notifications for
# expired keys (prompt cleanup of lapsed holds), AOF (G4), and the memory limit without eviction.
redis_server_args() {
    printf '%s\n' --port "$REDIS_PORT" --bind 127.0.0.1 \
        --notify-keyspace-events Ex --appendonly yes --appendfsync everysec \
        --maxmemory "$REDIS_MAXMEMORY" --maxmemory-policy noeviction \
        --dir "$REDIS_DIR" --save ""
}

# `CONFIG GET <name>` of the Redis at REDIS_URL, or nothing (no redis-cli, CONFIG renamed away).
redis_config() {
    command -v redis-cli >/dev/null 2>&1 || return 0
    timeout 2 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --no-raw config get "$1" 2>/dev/null |
        sed -n '2s/^[0-9]*) "\(.*\)"$/\1/p' || true
}

# Warns when the Redis at REDIS_URL, which this script did not start, could grow without bound
# (no maxmemory) or evict keys to make room (any policy but noeviction): either breaks G7.
check_redis_memory() {
    local max policy
    max="$(redis_config maxmemory)"
    policy="$(redis_config maxmemory-policy)"
    if [[ -z $max || -z $policy ]]; then
        log "warning: cannot read maxmemory and maxmemory-policy of the Redis at $REDIS_URL (no redis-cli, or CONFIG is not allowed); make sure it has a maxmemory and maxmemory-policy noeviction"
        return 0
    fi
    if [[ $max == 0 ]]; then
        log "warning: the Redis at $REDIS_URL has no maxmemory: it grows until the machine runs out of memory; set one (CONFIG SET maxmemory 1gb, or in its redis.conf) with maxmemory-policy noeviction"
    fi
    if [[ $policy != noeviction ]]; then
        log "warning: the Redis at $REDIS_URL has maxmemory-policy $policy: at its limit it would evict keys and silently drop seats, holds and queued jobs; set maxmemory-policy noeviction"
    fi
}


redis_ping() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(timeout 2 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]
    else
        # No redis-cli: speak the protocol over bash's /dev/tcp.
        # shellcheck disable=SC2016 # expanded by the inner bash
        timeout 2 bash -c '
            exec 3<>"/dev/tcp/$1/$2" || exit 1
            printf "PING\r\n" >&3
            IFS= read -r reply <&3
            [[ $reply == +PONG* ]]' _ "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null
    fi
}

case "${1:-}" in
    "") ;;
    --redis-args) redis_server_args; exit 0 ;;
    --check-redis)
        redis_ping || die "no Redis answers at $REDIS_URL"
        check_redis_memory
        exit 0
        ;;
    *) die "unknown argument '$1' (known: --redis-args, --check-redis)" ;;
esac

REDIS_PID=""      # set only when this script started the redis-server
API_PID=""
WORKER_PIDS=()

START_REDIS=0     # 1 when no Redis answers and this script must start one
if redis_ping; then
    log "using the Redis that answers at $REDIS_URL"
else
    case "$REDIS_URL" in
        redis-cluster://* | rediss-cluster://*)
            die "no Redis answers at $REDIS_HOST:$REDIS_PORT, the first node of REDIS_URL=$REDIS_URL; start.sh starts one redis-server, not a cluster: start the cluster first (redis-cli --cluster create ... --cluster-replicas 1, each node with --cluster-enabled yes)" ;;
    esac
    case "$REDIS_HOST" in
        127.0.0.1 | localhost | ::1) ;;
        *) die "no Redis answers at $REDIS_URL ($REDIS_HOST:$REDIS_PORT is not local, so start.sh cannot start one); start it or point REDIS_URL at a running Redis" ;;
    esac
    START_REDIS=1
fi

# ---------------------------------------------------------------- set-up
# Checked before anything is installed or started: without Rust nothing else is worth doing.
find_cargo
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust from https://rustup.rs (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)"

# The Debian packages this run needs and the machine lacks: redis-server only when a local Redis
# must be started (a Redis that answers at REDIS_URL needs nothing here), and a C compiler, which
# cargo needs to link.
missing=()
if ((START_REDIS)) && ! command -v redis-server >/dev/null 2>&1; then
    log "redis-server not found; it is needed to start a local Redis (or point REDIS_URL at a running one)"
    missing+=(redis-server)
fi
if ! command -v cc >/dev/null 2>&1; then
    log "no C compiler (cc) found; cargo needs one to link"
    missing+=(gcc)
fi
if ((${#missing[@]})); then
    # As root or through sudo; without either it says what to install and stops.
    apt_install "${missing[@]}" || die "could not install ${missing[*]} with apt-get (see above)"
    if ((START_REDIS)); then
        command -v redis-server >/dev/null 2>&1 || die "redis-server is still not on PATH after installing it"
        # On a machine with systemd the package starts a service of its own on 6379, with the
        # package's settings (no AOF). When that is REDIS_URL's port, the service just installed is
        # stopped and disabled, so that the Redis started below has the settings this service
        # needs (AOF, keyspace notifications); should that fail, the package's Redis is used.
        if redis_ping && command -v systemctl >/dev/null 2>&1; then
            log "the redis-server package started its own service on port $REDIS_PORT; stopping and disabling it, to start one with AOF and keyspace notifications"
            sudo=()
            ((EUID == 0)) || sudo=(sudo)
            "${sudo[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
            sleep 1
        fi
        if redis_ping; then
            log "a Redis still answers at $REDIS_URL (the package's service): using it, with its own settings (/etc/redis/redis.conf: no AOF unless turned on there)"
            START_REDIS=0
        fi
    fi
    command -v cc >/dev/null 2>&1 || die "no C compiler (cc) on PATH after installing gcc"
fi

if ((START_REDIS)); then
    mkdir -p "$REDIS_DIR"
    REDIS_LOG="$REDIS_DIR/redis-$REDIS_PORT.log"
    log "no Redis at $REDIS_URL; starting redis-server on 127.0.0.1:$REDIS_PORT (maxmemory $REDIS_MAXMEMORY, noeviction; data in $REDIS_DIR, log in $REDIS_LOG)"
    mapfile -t redis_args < <(redis_server_args)
    # setsid: its own session, so the terminal's Ctrl-C does not stop Redis before the workers.
    setsid redis-server "${redis_args[@]}" >>"$REDIS_LOG" 2>&1 </dev/null &
    REDIS_PID=$!
else
    check_redis_memory
fi

# ---------------------------------------------------------------- shutdown
alive() { kill -0 "$1" 2>/dev/null; }

stop_redis() {
    [[ -n $REDIS_PID ]] || return 0
    if alive "$REDIS_PID"; then
        log "stopping the redis-server started here (pid $REDIS_PID)"
        if command -v redis-cli >/dev/null 2>&1; then
            timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
        fi
        if alive "$REDIS_PID"; then kill -TERM "$REDIS_PID" 2>/dev/null || true; fi
        for _ in $(seq 50); do alive "$REDIS_PID" || break; sleep 0.1; done
        if alive "$REDIS_PID"; then kill -KILL "$REDIS_PID" 2>/dev/null || true; fi
    fi
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
}

SHUTTING_DOWN=0
# Stops the API and the workers (SIGTERM, then SIGKILL after 15 s), then our Redis; exits with $1.
shutdown() {
    local code=$1 pid
    ((SHUTTING_DOWN)) && return 0
    SHUTTING_DOWN=1
    trap '' INT TERM HUP
    local pids=()
    for pid in $API_PID "${WORKER_PIDS[@]}"; do alive "$pid" && pids+=("$pid"); done
    if ((${#pids[@]})); then
        log "stopping the API and the workers (pids ${pids[*]})"
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 150); do
            local left=0
            for pid in "${pids[@]}"; do alive "$pid" && left=1; done
            ((left)) || break
            sleep 0.1
        done
        for pid in "${pids[@]}"; do
            if alive "$pid"; then
                log "pid $pid did not stop within 15 s; killing it"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
    fi
    for pid in $API_PID "${WORKER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_redis
    log "stopped"
    exit "$code"
}
trap 'echo; log "signal received"; shutdown 0' INT TERM HUP
trap 'code=$?; ((SHUTTING_DOWN)) || shutdown "$code"' EXIT

if [[ -n $REDIS_PID ]]; then
    for _ in $(seq 50); do
        redis_ping && break
        alive "$REDIS_PID" || break
        sleep 0.1
    done
    if ! redis_ping; then
        tail -n 20 "$REDIS_LOG" >&2 || true
        die "the redis-server started on port $REDIS_PORT did not answer PING within 5 s (log above: $REDIS_LOG)"
    fi
    log "redis-server is up (pid $REDIS_PID)"
fi

# ---------------------------------------------------------------- build
log "building (cargo build --release --bin api --bin worker)"
cargo build --release --bin api --bin worker || die "the release build failed (see above)"

# ---------------------------------------------------------------- run
# setsid: only this script gets the terminal's Ctrl-C; it then sends each process one SIGTERM.
setsid "$ROOT/target/release/api" </dev/null &
API_PID=$!
log "api started (pid $API_PID)"
for n in $(seq "$WORKERS"); do
    WORKER_NAME="worker-$n" setsid "$ROOT/target/release/worker" </dev/null &
    WORKER_PIDS+=("$!")
done
log "$WORKERS worker(s) started (pids ${WORKER_PIDS[*]})"

cat <<EOF

  API:        http://${BIND:-127.0.0.1}:$PORT
  Swagger UI: http://${BIND:-127.0.0.1}:$PORT/swagger-ui/
  Health:     http://${BIND:-127.0.0.1}:$PORT/health

  Press Ctrl-C to stop everything.

EOF

# Returns when any child ends by itself (a signal runs the trap instead).
set +e
wait -n
status=$?
set -e
((SHUTTING_DOWN)) && exit 0
dead=()
alive "$API_PID" || dead+=("api (pid $API_PID)")
for i in "${!WORKER_PIDS[@]}"; do
    alive "${WORKER_PIDS[$i]}" || dead+=("worker-$((i + 1)) (pid ${WORKER_PIDS[$i]})")
done
[[ -z $REDIS_PID ]] || alive "$REDIS_PID" || dead+=("redis-server (pid $REDIS_PID)")
log "unexpected exit (status $status) of: ${dead[*]:-a child process}; shutting the rest down" >&2
shutdown 1
