-- Marks an event deleted, the first step of deleting it (`deletion.rs`): its hash goes, so that
-- from this call on every script finds no such event (enqueue, refresh and release refuse with
-- NO_SUCH_SEAT, the reads answer nothing, process takes no job, sweep and reconcile write
-- nothing), and a small tombstone takes its place for JOB_RESULT_TTL, so that every job of the
-- event reads `failed` (the event was deleted) rather than unknown meanwhile. The caller then
-- frees the event's other keys with one UNLINK (Redis frees them off its main thread) and
-- removes the event from the service-wide sets. Constant work whatever the event's size: no key
-- is walked here.
--
-- KEYS[1]: event hash   KEYS[2]: tombstone string
-- ARGV[1]: how long the tombstone is kept, in ms (JOB_RESULT_TTL)
-- ARGV[2]: the finished-jobs channel, ARGV[3]: the event id: the deletion is announced there as
--          a message of no jobs, "<event id>", so that API processes stop waiting for its jobs to
--          be announced (none will be) and read them from Redis, where they are `failed`
-- Returns: 1 when the event was marked deleted, 0 when there is no such event (already deleted,
--          or never created; nothing written)
local ev = redis.call('HMGET', KEYS[1], 'total', 'enq')
if not ev[1] then return 0 end
-- The event hash was just read (as a hash); the tombstone is the one key written that was not.
local wrong = wrong_key_type({KEYS[2], 'string'})
if wrong then return redis.error_reply(CORRUPT .. 'cannot delete the event: ' .. wrong) end
-- "<last accepted job seq>|<deleted at ms>": the jobs numbered up to that seq are the event's.
redis.call('SET', KEYS[2], string.format('%d', tonumber(ev[2]) or 0) .. '|' .. now_ms(),
  'PX', tonumber(ARGV[1]))
redis.call('UNLINK', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
