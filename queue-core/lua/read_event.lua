-- Reads an event and its seat counts as of now, and optionally every seat record. Writes nothing.
--
-- KEYS[1]: event hash   KEYS[2]: seats string   KEYS[3]: deadlines sorted set
-- ARGV[1]: '1' to return the seats string too, '0' not to
-- Returns: {} when there is no such event, else
--          {name, total, reserved, on hold, now ms[, seats string]}
local now = now_ms()
local ev = redis.call('HMGET', KEYS[1], 'name', 'total', 'reserved')
if not ev[2] then return {} end
local on_hold = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
local out = {ev[1], tonumber(ev[2]), tonumber(ev[3]), on_hold, now}
if ARGV[1] == '1' then out[6] = redis.call('GET', KEYS[2]) end
return out
