-- Wakes an event whose queue holds jobs (or a job whose retry is due) but whose lease has
-- lapsed: the worker that drained it died, the process that took the lease died before pushing
-- its ready token, or a retry fell due while no worker was on the event.
--
-- KEYS[1]: event hash   KEYS[2]: queue list   KEYS[3]: retry sorted set
-- ARGV[1]: lease length in ms
-- Returns: {wake, depth}: wake=1 means the caller took the lease and must push a ready token
local depth = redis.call('LLEN', KEYS[2])
local now = now_ms()
local first_retry = first_score(KEYS[3])
if depth == 0 and not (first_retry and first_retry <= now) then return {0, 0} end
local lease = redis.call('HGET', KEYS[1], 'lease')
if lease and tonumber(lease) > now then return {0, depth} end
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[1]))
return {1, depth}
