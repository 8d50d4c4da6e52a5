-- Admits one request or refuses it, by GCRA (the Generic Cell Rate Algorithm), on every limiter
-- key given: the request is admitted only when each of them admits it, and then each is charged.
-- A key holds its client's theoretical arrival time (TAT, ms on Redis's clock): the instant by
-- which its bucket would be empty again had every admitted request come at the sustained rate.
-- A request at `now` is admitted when max(TAT, now) + interval - now <= burst * interval; the new
-- TAT is then stored with an expiry at that instant (PXAT), after which the key is not needed: a
-- missing key is a full bucket. A refused request writes nothing, so a flood of refusals never
-- pushes its client's TAT further out: it is served again as soon as the rate allows.
--
-- KEYS[1..n]: limiter strings (`keys::rate_limit_*`), one per client the request counts against
--             (its address; in jwt mode its user too), all of one route class
-- ARGV[1]: the emission interval in ms (one request's worth regained every this many ms)
-- ARGV[2]: the burst (requests a full bucket admits at once)
-- Returns: {1, remaining, reset ms} admitted: `remaining` further requests the emptiest key
--          admits at once, `reset` ms until every key is full again
--          {0, retry ms, reset ms} refused: `retry` ms until every key would admit one
local now = now_ms()
local interval = tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])

local wanted = {}
for i = 1, #KEYS do wanted[#wanted + 1] = KEYS[i]; wanted[#wanted + 1] = 'string' end
local wrong = wrong_key_type(wanted)
if wrong then return redis.error_reply(CORRUPT .. 'cannot rate-limit: ' .. wrong) end

local tats, retry, reset, remaining = {}, 0, 0, nil
for i = 1, #KEYS do
  local stored = redis.call('GET', KEYS[i])
  local tat = now
  if stored then
    tat = tonumber(stored)
    if not tat then return redis.error_reply(CORRUPT .. KEYS[i] .. ' is not a time') end
    if tat < now then tat = now end
  end
  local next_tat = tat + interval
  local used = next_tat - now
  if used > capacity then
    retry = math.max(retry, used - capacity)
    reset = math.max(reset, tat - now)
  else
    tats[i] = next_tat
    reset = math.max(reset, used)
    local left = math.floor((capacity - used) / interval)
    if not remaining or left < remaining then remaining = left end
  end
end

if retry > 0 then return {0, retry, reset} end
for i = 1, #KEYS do redis.call('SET', KEYS[i], tats[i], 'PXAT', tats[i]) end
return {1, remaining or 0, reset}
