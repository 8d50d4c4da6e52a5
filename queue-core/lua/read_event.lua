-- Reads an event and its seat counts as of now, and optionally which seats are not Available.
-- Writes nothing.
--
-- KEYS[1]: event hash   KEYS[2]: seats hash   KEYS[3]: deadlines sorted set
-- ARGV[1]: '1' to list the seats that are On hold or Reserved now, '0' not to
-- Returns: {} when there is no such event, else
--          {name, total, reserved, on hold, now ms, taken seat number 1, taken seat number 2, ...}
local now = now_ms()
local ev = redis.call('HMGET', KEYS[1], 'name', 'total', 'reserved')
if not ev[2] then return {} end
local on_hold = redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf')
local out = {ev[1], tonumber(ev[2]), tonumber(ev[3]), on_hold, now}
if ARGV[1] == '1' then
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    if seat_at(all[i + 1], now) ~= 'A' then out[#out + 1] = tonumber(all[i]) end
  end
end
return out
