-- Accepts HOLD_SEAT and RESERVE_SEAT jobs, of one event or of several: pre-checks each seat as it
-- is now, then appends each event's accepted jobs to its queue, in argument order. Jobs of one
-- event are applied in the order of their sequence numbers, handed out here (G3).
--
-- One API process sends the jobs that arrived while its previous batch was in flight together
-- (see `enqueue.rs`): on one Redis, those of every event, so that a call's fixed cost (the
-- EVALSHA, this prelude, TIME) is shared by them all; on a cluster, those of one event (a
-- script stays in one slot). Each job is judged as if it were sent alone: the pre-check reads
-- the seat as it is now, which the jobs queued before it (in this call or an earlier one) have
-- not changed yet.
--
-- KEYS, for each event in turn: its event hash, seats string and queue list, then, when ARGV[3]
--       is 4, its shard's ready list: the script pushes the ready token itself (on one Redis;
--       on a cluster the ready list lives in another slot, so the caller pushes it)
-- ARGV[1]: queue depth at which jobs are refused
-- ARGV[2]: lease length in ms for the worker that the token wakes
-- ARGV[3]: keys per event, 3 or 4
-- ARGV[4...], for each event in turn: its ready token (the event id); n, its number of jobs;
--          then for each of its jobs: kind, 'H' (hold) or 'R' (reserve); seat number; user id
--          (16 raw bytes); every number as `%d` text
-- Returns one flat array (each table in a reply costs Redis several lookups to convert, so
--          there is one): for each event in turn, `wake` then three items per job, where wake=1
--          means that jobs were queued, no worker held the event's lease and no ready list was
--          given, so the caller must push the ready token; and each job's three are one of
--          ACCEPTED, seq, position   accepted: `position` jobs are ahead of it
--          NO_SUCH_SEAT, 0, 0        no such event or seat
--          CONFLICT, status, 0       the seat is not in the state the job needs ('A', 'H', 'R')
--          HELD_BY_ANOTHER, 'H', 0   reserve of a seat another user holds
--          QUEUE_FULL, depth, 0      the queue is full
--          (the codes of CODE in common.lua; the queued job's layout is `encode_job` there);
--          or, for an event one of whose keys has the wrong type (`CORRUPT`), -1 then why, and
--          no item for its jobs: none of them is accepted, and the other events' are judged as
--          if it were not there.
-- Nothing of an event is written unless at least one of its jobs is accepted.
local now = now_ms()
-- Times go into jobs and to Redis as `%d` text: a Lua number joined with `..` or handed to
-- redis.call is printed with `%.14g` / `%.17g`, which costs.
local now_s = string.format('%d', now)
-- The caller's numbers are `%d` text; `+ 0` reads one with one conversion (tonumber makes two).
local max_depth, lease_ms, per_event = ARGV[1] + 0, ARGV[2] + 0, ARGV[3] + 0

-- An event's keys are read and written with redis.pcall: a key of the wrong type must stop that
-- event's jobs alone, before any of its writes, and leave the events before it in this call
-- (written already) and after it alone. `wrong_type` gives the error of such a reply; any other
-- error is the whole call's, raised as redis.call would raise it (the one to expect: Redis out
-- of memory refuses a script's first write, before anything is written).
local function wrong_type(reply)
  if type(reply) ~= 'table' or not reply.err then return nil end
  if string.sub(reply.err, 1, 9) ~= 'WRONGTYPE' then error(reply) end
  return reply.err
end
local replies = {}
-- Takes back what the event's jobs added to the reply after `base`, and says why instead.
local function broken(base, why)
  for i = #replies, base + 1, -1 do replies[i] = nil end
  replies[base + 1] = -1
  replies[base + 2] = 'cannot accept jobs: ' .. why
end

-- Adds to the reply what becomes of the jobs of ARGV[first..last] (3 arguments each), of the
-- event whose keys are `ev`, `seats` and `queue` (and `ready`, or nil).
local function accept(ev, seats, queue, ready, token, first, last)
  local base = #replies
  local event = redis.pcall('HMGET', ev, 'total', 'enq', 'deq', 'lease')
  local wrong = wrong_type(event)
  if wrong then return broken(base, ev .. ': ' .. wrong) end
  local total, seq, lease = tonumber(event[1]), tonumber(event[2]) or 0, tonumber(event[4])
  -- The queue holds exactly the jobs numbered deq+1..enq (they are queued and taken in order),
  -- so its depth is known without asking the list; a queue that looks full is checked against
  -- the list itself, so that jobs lost some other way (a manual DEL) never keep an event
  -- refusing.
  local depth = seq - (tonumber(event[3]) or 0)
  if depth >= max_depth then
    depth = redis.pcall('LLEN', queue)
    wrong = wrong_type(depth)
    if wrong then return broken(base, queue .. ': ' .. wrong) end
  end

  local queued = {}
  local out, wake_at = replies, base + 1
  out[wake_at] = 0
  for i = first, last, 3 do
    local kind, seat, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local code, a, b
    local n = seat + 0
    if not total or n < 1 or n > total then
      code, a, b = CODE.NO_SUCH_SEAT, 0, 0
    else
      local from = (n - 1) * RECORD
      local raw = redis.pcall('GETRANGE', seats, string.format('%d', from),
        string.format('%d', from + RECORD - 1))
      wrong = wrong_type(raw)
      if wrong then return broken(base, seats .. ': ' .. wrong) end
      local status, holder = seat_at(raw, now)
      if kind == 'H' then
        if status ~= 'A' then code, a, b = CODE.CONFLICT, status, 0 end
      elseif status ~= 'H' then
        code, a, b = CODE.CONFLICT, status, 0
      elseif holder ~= user then
        code, a, b = CODE.HELD_BY_ANOTHER, status, 0
      end
    end
    if not code then
      local ahead = depth + #queued
      if ahead >= max_depth then
        code, a, b = CODE.QUEUE_FULL, ahead, 0
      else
        seq = seq + 1
        queued[#queued + 1] = encode_job(kind, user, seat, now_s, string.format('%d', seq))
        code, a, b = CODE.ACCEPTED, seq, ahead
      end
    end
    local at = #out
    out[at + 1], out[at + 2], out[at + 3] = code, a, b
  end
  if #queued == 0 then return end

  -- Writes: the ready token first, when there is one to push (a ready list of the wrong type
  -- fails there, before anything is written; pushed, it is a hint: should the queue then turn
  -- out broken, the worker it wakes finds so and drops it), then the queue (one of the wrong type
  -- fails there, before anything of the event is written), then the event hash (read above, so
  -- a hash). So no key needs a TYPE look first.
  local wake = not (lease and lease > now)
  if wake and ready then
    local woken = redis.pcall('RPUSH', ready, token)
    wrong = wrong_type(woken)
    if wrong then return broken(base, ready .. ': ' .. wrong) end
  end
  local pushed = redis.pcall('RPUSH', queue, unpack(queued))
  wrong = wrong_type(pushed)
  if wrong then return broken(base, queue .. ': ' .. wrong) end
  if not wake then
    redis.call('HSET', ev, 'enq', string.format('%d', seq))
  else
    redis.call('HSET', ev, 'enq', string.format('%d', seq),
      'lease', string.format('%d', now + lease_ms))
    if not ready then out[wake_at] = 1 end
  end
end

local at = 4
for k = 1, #KEYS, per_event do
  local n = ARGV[at + 1] + 0
  local first = at + 2
  local last = first + 3 * n - 1
  accept(KEYS[k], KEYS[k + 1], KEYS[k + 2], per_event == 4 and KEYS[k + 3] or nil, ARGV[at],
    first, last)
  at = last + 1
end
return replies
