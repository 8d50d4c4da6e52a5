-- Accepts a HOLD_SEAT or RESERVE_SEAT job: pre-checks the seat as it is now, then appends the job to
-- the event's queue. Jobs of one event are applied in the order of this script's runs (G3).
--
-- KEYS[1]: event hash   KEYS[2]: seats string   KEYS[3]: queue list
-- ARGV[1]: kind, 'H' (hold) or 'R' (reserve)
-- ARGV[2]: seat number
-- ARGV[3]: user id (16 raw bytes)
-- ARGV[4]: queue depth at which jobs are refused
-- ARGV[5]: lease length in ms for the worker that the caller will wake
-- Returns: {202, seq, position, wake} accepted: `position` jobs are ahead; wake=1 means no worker
--          holds the event's lease, so the caller must push a ready token
--          {404} no such event or seat
--          {409, status} the seat is not in the state the job needs ('A', 'H' or 'R')
--          {403, 'H'} reserve of a seat another user holds
--          {503, depth} the queue is full
-- A queued job is <kind (1 byte)><user (16 bytes)><seat>|<accepted ms>|<seq>.
local now = now_ms()
local total = redis.call('HGET', KEYS[1], 'total')
local seat = ARGV[2]
if not total or tonumber(seat) > tonumber(total) then return {404} end

local raw = seat_record(KEYS[2], seat)
local status, holder = seat_at(raw, now)
if ARGV[1] == 'H' then
  if status ~= 'A' then return {409, status} end
elseif status ~= 'H' then
  return {409, status}
elseif holder ~= ARGV[3] then
  return {403, status}
end

local depth = redis.call('LLEN', KEYS[3])
if depth >= tonumber(ARGV[4]) then return {503, depth} end

local seq = redis.call('HINCRBY', KEYS[1], 'enq', 1)
redis.call('RPUSH', KEYS[3], ARGV[1] .. ARGV[3] .. seat .. '|' .. now .. '|' .. seq)

local wake = 0
local lease = redis.call('HGET', KEYS[1], 'lease')
if not lease or tonumber(lease) <= now then
  redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[5]))
  wake = 1
end
return {202, seq, depth, wake}
