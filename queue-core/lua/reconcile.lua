-- Wakes an event whose queue holds jobs but whose lease has lapsed: the worker that drained it
-- died, or the process that took the lease died before pushing its ready token.
--
-- KEYS[1]: event hash   KEYS[2]: queue list
-- ARGV[1]: lease length in ms
-- Returns: {wake, depth}: wake=1 means the caller took the lease and must push a ready token
local depth = redis.call('LLEN', KEYS[2])
if depth == 0 then return {0, 0} end
local now = now_ms()
local lease = redis.call('HGET', KEYS[1], 'lease')
if lease and tonumber(lease) > now then return {0, depth} end
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[1]))
return {1, depth}
