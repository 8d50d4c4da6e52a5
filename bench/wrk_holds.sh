# Sourced by the benches that post holds with wrk (bench/efficiency.sh, bench/api_instructions.sh,
# bench/run.sh):
#   wrk_holds URL N NAME SCRIPT
# creates N events of 10,000 seats named NAME on the service at URL, writes SCRIPT for
# `wrk -s SCRIPT` (their ids, then bench/wrk_holds.lua), and leaves the ids in WRK_EVENTS.
WRK_HOLDS_LUA="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/wrk_holds.lua"
wrk_holds() {
    local url=$1 n=$2 name=$3 script=$4 _
    WRK_EVENTS=()
    for _ in $(seq "$n"); do
        WRK_EVENTS+=("$(curl -sf -XPOST -H 'content-type: application/json' \
            -d "{\"name\":\"$name\",\"totalSeats\":10000}" "$url/events/create" | jq -r .id)")
    done
    {
        echo "local events = {"; printf '"%s",\n' "${WRK_EVENTS[@]}"; echo "}"
        cat "$WRK_HOLDS_LUA"
    } >"$script"
}
