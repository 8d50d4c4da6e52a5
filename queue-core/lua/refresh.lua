-- Extends a live hold to now + HOLD_TTL, capped at the hold's start + MAX_HOLD_LIFETIME (G6).
--
-- KEYS[1]: event hash   KEYS[2]: seats hash   KEYS[3]: deadlines sorted set   KEYS[4]: tick key
-- ARGV[1]: seat number
-- ARGV[2]: user id
-- ARGV[3]: hold length in ms (HOLD_TTL)
-- ARGV[4]: longest total life of a hold in ms (MAX_HOLD_LIFETIME)
-- Returns: {200, new raw seat state}
--          {404} no such event or seat
--          {403, raw seat state} another user holds it
--          {409, raw seat state or false} not On hold (a lapsed hold included)
local now = now_ms()
local total = redis.call('HGET', KEYS[1], 'total')
if not total or tonumber(ARGV[1]) > tonumber(total) then return {404} end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local status, holder, _, start = seat_at(raw, now)
if status == 'A' then return {409, false} end
if status == 'R' then return {409, raw} end
if holder ~= ARGV[2] then return {403, raw} end

local deadline = math.min(now + tonumber(ARGV[3]), start + tonumber(ARGV[4]))
local state = hold_state(holder, deadline, start)
redis.call('HSET', KEYS[2], ARGV[1], state)
redis.call('ZADD', KEYS[3], deadline, ARGV[1])
rearm_tick(KEYS[3], KEYS[4])
return {200, state}
