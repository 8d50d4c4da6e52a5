-- The holder gives a live hold back: the seat is Available at once.
--
-- KEYS[1]: event hash   KEYS[2]: seats hash   KEYS[3]: deadlines sorted set
-- KEYS[4]: holders hash KEYS[5]: tick key
-- ARGV[1]: seat number
-- ARGV[2]: user id
-- Returns: {200}
--          {404} no such event or seat
--          {403, raw seat state} another user holds it
--          {409, raw seat state or false} not On hold (a lapsed hold included)
local now = now_ms()
local total = redis.call('HGET', KEYS[1], 'total')
if not total or tonumber(ARGV[1]) > tonumber(total) then return {404} end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local status, holder = seat_at(raw, now)
if status == 'A' then return {409, false} end
if status == 'R' then return {409, raw} end
if holder ~= ARGV[2] then return {403, raw} end

redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
holder_remove(KEYS[4], holder, ARGV[1])
rearm_tick(KEYS[3], KEYS[5])
return {200}
