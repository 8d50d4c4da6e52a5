# Sourced by the bench scripts that run a Redis Cluster (cluster.sh, cluster_acks.sh).

# A free port whose cluster bus port (+10000) is free too.
free() { python3 -c 'import socket,random
while True:
    p=random.randint(20000,45000)
    try:
        a=socket.socket();a.bind(("127.0.0.1",p));b=socket.socket();b.bind(("127.0.0.1",p+10000));a.close();b.close();print(p);break
    except OSError: pass'; }

# Starts six redis-servers under DIR on loopback (3 primaries, 3 replicas, node timeout 2 s) and
# waits until each says cluster_state:ok. Sets `ports` (the six), appends their pids to `pids`,
# and exports REDIS_URL as the service's redis-cluster:// URL.
#   start_cluster DIR
start_cluster() {
    local dir=$1 p ok
    ports=()
    for _ in 1 2 3 4 5 6; do ports+=("$(free)"); done
    for p in "${ports[@]}"; do
        mkdir -p "$dir/$p"
        redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-node-timeout 2000 \
            --cluster-require-full-coverage no \
            --cluster-config-file nodes.conf --save "" --appendonly no --notify-keyspace-events Ex \
            --dir "$dir/$p" >"$dir/$p.log" 2>&1 &
        pids+=($!)
    done
    for p in "${ports[@]}"; do for _ in $(seq 50); do [[ "$(redis-cli -p "$p" ping 2>/dev/null)" == PONG ]] && break; sleep 0.1; done; done
    redis-cli --cluster create $(for p in "${ports[@]}"; do printf '127.0.0.1:%s ' "$p"; done) \
        --cluster-replicas 1 --cluster-yes >/dev/null
    for _ in $(seq 100); do
        ok=0; for p in "${ports[@]}"; do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && ok=$((ok + 1)); done
        [[ $ok == 6 ]] && break; sleep 0.1
    done
    # Every primary's replica in sync: a WAIT (REDIS_REPLICA_ACKS) counts only a replica that
    # is online, and the first full sync takes a moment.
    for p in "${ports[@]}"; do
        redis-cli -p "$p" role | head -1 | grep -q master || continue
        for _ in $(seq 100); do
            redis-cli -p "$p" info replication | grep -q 'state=online' && break; sleep 0.1
        done
    done
    local seeds
    seeds=$(for p in "${ports[@]:1}"; do printf 'node=127.0.0.1:%s&' "$p"; done)
    export REDIS_URL="redis-cluster://127.0.0.1:${ports[0]}?${seeds%&}"
}
