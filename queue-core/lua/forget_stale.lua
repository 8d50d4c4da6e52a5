-- Removes a member of a sorted set unless someone raised its score since the caller read it: used
-- for the enqueue hints and the sweep schedule, where a newer score means new work.
--
-- KEYS[1]: sorted set
-- ARGV[1]: member
-- ARGV[2]: the highest score that may be removed
-- Returns: 1 when removed, 0 when kept
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
