-- The holder gives a live hold back: the seat is Available at once.
--
-- KEYS[1]: event hash   KEYS[2]: seats string   KEYS[3]: deadlines sorted set
-- KEYS[4]: holders hash KEYS[5]: tick key           KEYS[6]: changes stream
-- ARGV[1]: seat number
-- ARGV[2]: user id (16 raw bytes)
-- Returns: {OK, the seat's new (empty) record}
--          {NO_SUCH_SEAT} no such event or seat
--          {HELD_BY_ANOTHER, 'H'} another user holds it
--          {CONFLICT, status} not On hold (a lapsed hold included): 'A' or 'R'
local now = now_ms()
local total = redis.call('HGET', KEYS[1], 'total')
if not total or tonumber(ARGV[1]) > tonumber(total) then return {CODE.NO_SUCH_SEAT} end
local raw = seat_record(KEYS[2], ARGV[1])
local status, holder = seat_at(raw, now)
if status ~= 'H' then return {CODE.CONFLICT, status} end
if holder ~= ARGV[2] then return {CODE.HELD_BY_ANOTHER, status} end

local wrong = wrong_key_type({KEYS[3], 'zset', KEYS[4], 'hash', KEYS[6], 'stream'})
if wrong then return redis.error_reply(CORRUPT .. 'cannot release: ' .. wrong) end

clear_hold(KEYS[2], KEYS[3], KEYS[4], KEYS[6], ARGV[1], raw, 'x')
rearm_tick(KEYS[3], KEYS[5])
return {CODE.OK, EMPTY}
