-- wrk: POST /seats/hold of distinct seats by fresh users, over the events of the `events` table
-- that the caller puts before this file (`local events = {"<id>", ...}`): request k holds seat
-- floor(k / #events) % 10,000 + 1 of event k % #events, by user k (once every seat has had a hold,
-- the next round's are refused). Put together by bench/wrk_holds.sh, for bench/efficiency.sh (a),
-- bench/api_instructions.sh and bench/run.sh (a).
local requests, n = {}, 0
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  for k = 1, 400000 do
    local e = events[(k % #events) + 1]
    local seat = (math.floor(k / #events) % 10000) + 1
    local body = string.format('{"id":"%s:%d","UUID":"00000000-0000-4000-8000-%012x"}', e, seat, k)
    requests[k] = wrk.format(nil, "/seats/hold", nil, body)
  end
end
function request()
  n = n % #requests + 1
  return requests[n]
end
