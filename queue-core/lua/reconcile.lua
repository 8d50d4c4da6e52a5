-- Wakes an event whose queue holds jobs (or a job whose retry is due) but whose lease has
-- lapsed: the worker that drained it died, the process that took the lease died before pushing
-- its ready token, or a retry fell due while no worker was on the event.
--
-- KEYS[1]: event hash   KEYS[2]: queue list   KEYS[3]: retry sorted set
-- ARGV[1]: lease length in ms
-- Returns: {wake, depth}: wake=1 means the caller took the lease and must push a ready token;
--          {0, 0} for an event that does not exist
local depth = redis.call('LLEN', KEYS[2])
local now = now_ms()
local first_retry = first_score(KEYS[3])
if depth == 0 and not (first_retry and first_retry <= now) then return {0, 0} end
local ev = redis.call('HMGET', KEYS[1], 'total', 'lease')
-- A deleted event (delete_event.lua) whose queue is not freed yet: nothing to wake.
if not ev[1] then return {0, 0} end
local lease = ev[2]
if lease and tonumber(lease) > now then return {0, depth} end
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[1]))
return {1, depth}
