-- Extends a live hold to now + HOLD_TTL, capped at the hold's start + MAX_HOLD_LIFETIME (G6).
--
-- KEYS[1]: event hash   KEYS[2]: seats string   KEYS[3]: deadlines sorted set   KEYS[4]: tick key
-- KEYS[5]: changes stream
-- ARGV[1]: seat number
-- ARGV[2]: user id (16 raw bytes)
-- ARGV[3]: hold length in ms (HOLD_TTL)
-- ARGV[4]: longest total life of a hold in ms (MAX_HOLD_LIFETIME)
-- Returns: {OK, new raw seat record}
--          {NO_SUCH_SEAT} no such event or seat
--          {HELD_BY_ANOTHER, 'H'} another user holds it
--          {CONFLICT, status} not On hold (a lapsed hold included): 'A' or 'R'
local now = now_ms()
local total = redis.call('HGET', KEYS[1], 'total')
if not total or tonumber(ARGV[1]) > tonumber(total) then return {CODE.NO_SUCH_SEAT} end
local raw = seat_record(KEYS[2], ARGV[1])
local status, holder, _, start = seat_at(raw, now)
if status ~= 'H' then return {CODE.CONFLICT, status} end
if holder ~= ARGV[2] then return {CODE.HELD_BY_ANOTHER, status} end

local wrong = wrong_key_type({KEYS[3], 'zset', KEYS[5], 'stream'})
if wrong then return redis.error_reply(CORRUPT .. 'cannot refresh: ' .. wrong) end

local deadline = math.min(now + tonumber(ARGV[3]), start + tonumber(ARGV[4]))
local record = hold_record(holder, deadline, start)
write_seat(KEYS[2], ARGV[1], record)
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
rearm_tick(KEYS[3], KEYS[4])
log_change(KEYS[5], 'f', ARGV[1], holder, deadline)
return {CODE.OK, record}
