-- Accepts a batch of HOLD_SEAT and RESERVE_SEAT jobs of one event: pre-checks each seat as it is
-- now, then appends the accepted jobs to the event's queue, in argument order. Jobs of one event
-- are applied in the order of their sequence numbers, handed out here (G3).
--
-- One API process sends the jobs that arrived while its previous batch for the event was in
-- flight together (see `enqueue.rs`): one script run, one RPUSH, one lease check for them all.
-- Each job is judged as if it were sent alone: the pre-check reads the seat as it is now, which
-- the jobs queued before it (in this batch or an earlier one) have not changed yet.
--
-- KEYS[1]: event hash   KEYS[2]: seats string   KEYS[3]: queue list
-- KEYS[4]: (optional) the ready list: when given, the script pushes the ready token itself
--          (on a single Redis; on a cluster the ready list lives in another slot, so the caller
--          pushes it)
-- ARGV[1]: queue depth at which jobs are refused
-- ARGV[2]: lease length in ms for the worker that the token wakes
-- ARGV[3]: the ready token (the event id)
-- ARGV[4], ARGV[5], ARGV[6], then the same for each further job:
--          kind, 'H' (hold) or 'R' (reserve); seat number; user id (16 raw bytes)
-- Returns: {wake, outcome of job 1, outcome of job 2, ...} where wake=1 means that jobs were
--          queued, no worker held the event's lease and no KEYS[4] was given, so the caller must
--          push the ready token; and each outcome is one of
--          {ACCEPTED, seq, position} accepted: `position` jobs are ahead of it
--          {NO_SUCH_SEAT} no such event or seat
--          {CONFLICT, status} the seat is not in the state the job needs ('A', 'H' or 'R')
--          {HELD_BY_ANOTHER, 'H'} reserve of a seat another user holds
--          {QUEUE_FULL, depth} the queue is full
--          (the codes of CODE in common.lua; the queued job's layout is `encode_job` there)
-- Nothing is written unless at least one job is accepted.
local now = now_ms()
-- Times go into jobs and to Redis as `%d` text: a Lua number joined with `..` or handed to
-- redis.call is printed with `%.14g` / `%.17g`, which costs.
local now_s = string.format('%d', now)
local event = redis.call('HMGET', KEYS[1], 'total', 'enq', 'deq', 'lease')
local total, seq, lease = tonumber(event[1]), tonumber(event[2]) or 0, tonumber(event[4])
local max_depth = tonumber(ARGV[1])
-- The queue holds exactly the jobs numbered deq+1..enq (they are queued and taken in order), so
-- its depth is known without asking the list; a queue that looks full is checked against the
-- list itself, so that jobs lost some other way (a manual DEL) never keep an event refusing.
local depth = seq - (tonumber(event[3]) or 0)
if depth >= max_depth then depth = redis.call('LLEN', KEYS[3]) end

local out, queued = {0}, {}
for i = 4, #ARGV, 3 do
  local kind, seat, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local outcome
  if not total or not tonumber(seat) or tonumber(seat) > total then
    outcome = {CODE.NO_SUCH_SEAT}
  else
    local status, holder = seat_at(seat_record(KEYS[2], seat), now)
    if kind == 'H' then
      if status ~= 'A' then outcome = {CODE.CONFLICT, status} end
    elseif status ~= 'H' then
      outcome = {CODE.CONFLICT, status}
    elseif holder ~= user then
      outcome = {CODE.HELD_BY_ANOTHER, status}
    end
  end
  if not outcome then
    local ahead = depth + #queued
    if ahead >= max_depth then
      outcome = {CODE.QUEUE_FULL, ahead}
    else
      seq = seq + 1
      queued[#queued + 1] = encode_job(kind, user, seat, now_s, string.format('%d', seq))
      outcome = {CODE.ACCEPTED, seq, ahead}
    end
  end
  out[#out + 1] = outcome
end

if #queued > 0 then
  -- The queue is the first key written, and the event hash was read; the ready list, written
  -- last, is looked at first (see `wrong_key_type`).
  local wrong = KEYS[4] and wrong_key_type({KEYS[4], 'list'})
  if wrong then return redis.error_reply(CORRUPT .. 'cannot accept jobs: ' .. wrong) end
  redis.call('RPUSH', KEYS[3], unpack(queued))
  if lease and lease > now then
    redis.call('HSET', KEYS[1], 'enq', string.format('%d', seq))
  else
    redis.call('HSET', KEYS[1], 'enq', string.format('%d', seq),
      'lease', string.format('%d', now + tonumber(ARGV[2])))
    if KEYS[4] then
      redis.call('RPUSH', KEYS[4], ARGV[3])
    else
      out[1] = 1
    end
  end
end
return out
