-- Shared prelude, prepended to every script of queue-core/lua/ (see scripts.rs).
--
-- Seat state lives in the event's `seats` hash, one field per seat number that is not Available:
--   "H|<user>|<deadline ms>|<hold start ms>"  On hold until <deadline>
--   "R|<user>|<reserved at ms>"               Reserved, for good
-- An absent field is an Available seat. A hold whose deadline has passed is Available too, whether
-- or not a sweep has removed it yet: every script decodes seats through `seat_at`, which applies
-- that rule, so correctness never waits for cleanup (G5).
--
-- Time is Redis's own clock (TIME), so that every API and worker process agrees on it.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s, sep)
  local out = {}
  if not s or s == '' then return out end
  for part in string.gmatch(s, '([^' .. sep .. ']+)') do out[#out + 1] = part end
  return out
end

-- Decodes a raw seat state at time `now`.
-- Returns status ('A', 'H' or 'R'), holder ('' when Available), deadline, start, lapsed
-- where `lapsed` is true for a hold past its deadline (reported as 'A').
local function seat_at(raw, now)
  if not raw then return 'A', '', 0, 0, false end
  local f = split(raw, '|')
  if f[1] == 'R' then return 'R', f[2], 0, 0, false end
  if f[1] == 'H' then
    local deadline = tonumber(f[3])
    if deadline > now then return 'H', f[2], deadline, tonumber(f[4]), false end
    return 'A', '', 0, 0, true
  end
  error('corrupt seat state: ' .. raw)
end

local function hold_state(user, deadline, start)
  return 'H|' .. user .. '|' .. deadline .. '|' .. start
end

-- The seats a user holds in this event, as recorded in the `holders` hash (field user, value
-- "n,n,n"); the record may still name seats whose hold lapsed or moved on, so callers filter.
local function holder_remove(holders_key, user, seat)
  local list = redis.call('HGET', holders_key, user)
  if not list then return end
  local kept = {}
  for _, s in ipairs(split(list, ',')) do
    if s ~= seat then kept[#kept + 1] = s end
  end
  if #kept == 0 then
    redis.call('HDEL', holders_key, user)
  else
    redis.call('HSET', holders_key, user, table.concat(kept, ','))
  end
end

-- Forgets a lapsed hold on `seat` (its holder's record and its deadline entry).
local function drop_lapsed(seats_key, deadlines_key, holders_key, seat, raw)
  local f = split(raw, '|')
  redis.call('HDEL', seats_key, seat)
  redis.call('ZREM', deadlines_key, seat)
  holder_remove(holders_key, f[2], seat)
end

-- Keeps the event's tick key expiring at its earliest hold deadline, so that the keyspace
-- notification for it prompts a sweep. Returns that deadline, or false when no hold is left.
local function rearm_tick(deadlines_key, tick_key)
  local first = redis.call('ZRANGE', deadlines_key, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('DEL', tick_key)
    return false
  end
  local at = tonumber(first[2])
  redis.call('SET', tick_key, '1', 'PXAT', at)
  return at
end

-- Removes finished job records whose retention has passed (at most `limit` of them).
-- Returns the earliest retention deadline still pending, or false.
local function trim_results(results_key, done_key, now, limit)
  local old = redis.call('ZRANGEBYSCORE', done_key, '-inf', now, 'LIMIT', 0, limit)
  if #old > 0 then
    redis.call('HDEL', results_key, unpack(old))
    redis.call('ZREM', done_key, unpack(old))
  end
  local first = redis.call('ZRANGE', done_key, 0, 0, 'WITHSCORES')
  if #first == 0 then return false end
  return tonumber(first[2])
end

local function earliest(a, b)
  if not a then return b end
  if not b then return a end
  return math.min(a, b)
end
