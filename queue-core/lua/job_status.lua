-- Reads where a job stands. Writes nothing.
--
-- KEYS[1]: event hash   KEYS[2]: queue list   KEYS[3]: results hash
-- KEYS[4]: the event's tombstone (delete_event.lua)
-- ARGV[1]: the job's sequence number within the event
-- ARGV[2]: lease length in ms
-- Returns: {0} unknown job, or its record is past retention
--          {1, position, queued job, worker on it (0/1)} waiting; `position` jobs are ahead; a
--          worker is on the queue when it holds the lease and drained it within a lease length
--          {2, record} finished; the record as process.lua stored it
--          {3, deleted at ms} a job of an event that was deleted: it ended failed then
local seq = tonumber(ARGV[1])
-- A deleted event's jobs all end failed when it goes, whatever became of them before.
local tombstone = redis.call('GET', KEYS[4])
if tombstone then
  local last, at = string.match(tombstone, '^(%d+)|(%d+)$')
  if last and seq <= tonumber(last) then return {3, tonumber(at)} end
  return {0}
end
local record = redis.call('HGET', KEYS[3], ARGV[1])
if record then return {2, record} end
local ev = redis.call('HMGET', KEYS[1], 'enq', 'deq', 'lease', 'drained')
if not ev[1] or seq > tonumber(ev[1]) or seq <= tonumber(ev[2]) then return {0} end
local position = seq - tonumber(ev[2]) - 1
local now = now_ms()
local leased = 0
if ev[3] and tonumber(ev[3]) > now and ev[4] and now - tonumber(ev[4]) < tonumber(ARGV[2]) then
  leased = 1
end
return {1, position, redis.call('LINDEX', KEYS[2], position), leased}
