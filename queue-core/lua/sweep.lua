-- Tidies an event: clears holds past their deadline and forgets job records past their
-- retention. Correctness never depends on this script (every script treats a lapsed hold as
-- Available); it keeps memory bounded (G7) and the counts exact. It never touches a Reserved
-- seat (G5).
--
-- KEYS[1]: seats string   KEYS[2]: deadlines sorted set   KEYS[3]: holders hash
-- KEYS[4]: results hash   KEYS[5]: done sorted set        KEYS[6]: tick key
-- KEYS[7]: changes stream   KEYS[8]: retry sorted set   KEYS[9]: event hash
-- ARGV[1]: most entries of each kind to remove in one run
-- Also says whether a job's retry is due (the caller then wakes a worker; process.lua moves it
-- back onto the queue).
-- Returns: {holds lapsed, next due ms or -1, 1 when a retry is due else 0, 1 when the event is
--          gone else 0}; an event that is gone (deleted: delete_event.lua) is not touched, and
--          the caller frees what is left of it
if redis.call('HEXISTS', KEYS[9], 'total') == 0 then return {0, -1, 0, 1} end
local wrong = wrong_key_type({KEYS[3], 'hash', KEYS[4], 'hash', KEYS[5], 'zset', KEYS[7], 'stream'})
if wrong then return redis.error_reply(CORRUPT .. 'cannot sweep: ' .. wrong) end
local now = now_ms()
local limit = tonumber(ARGV[1])
local lapsed = 0
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, seat in ipairs(due) do
  local raw = seat_record(KEYS[1], seat)
  local status, _, deadline, _, was_hold = seat_at(raw, now)
  if was_hold then
    clear_hold(KEYS[1], KEYS[2], KEYS[3], KEYS[7], seat, raw, 'l')
    lapsed = lapsed + 1
  elseif status == 'H' then
    redis.call('ZADD', KEYS[2], deadline, seat)
  else
    -- An entry for a seat that is no longer held is stale: drop the entry, never the seat.
    redis.call('ZREM', KEYS[2], seat)
  end
end
local first_retry = first_score(KEYS[8])
local retry_due = (first_retry and first_retry <= now) and 1 or 0
local next_due = earliest(rearm_tick(KEYS[2], KEYS[6]), trim_results(KEYS[4], KEYS[5], now, limit))
next_due = earliest(next_due, first_retry)
-- A full batch may have left more behind: ask to be run again right away.
if #due == limit then next_due = now + 1 end
return {lapsed, next_due or -1, retry_due, 0}
