-- Reads an event and its seat counts as of now, and optionally every seat record with the id of
-- the last entry of its changes stream (a snapshot that the stream continues exactly). Writes
-- nothing.
--
-- KEYS[1]: event hash   KEYS[2]: seats string   KEYS[3]: deadlines sorted set
-- KEYS[4]: changes stream
-- ARGV[1]: '1' to return the seats string and the last change id too, '0' not to
-- Returns: {} when there is no such event, else
--          {name, total, reserved, on hold, now ms, endsAt ms or -1[, seats string,
--          last change id or '0-0']}
local now = now_ms()
local ev = redis.call('HMGET', KEYS[1], 'name', 'total', 'reserved', 'ends')
if not ev[2] then return {} end
local on_hold = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
local out = {ev[1], tonumber(ev[2]), tonumber(ev[3]), on_hold, now, tonumber(ev[4]) or -1}
if ARGV[1] == '1' then
  out[7] = redis.call('GET', KEYS[2])
  local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
  out[8] = last[1] and last[1][1] or '0-0'
end
return out
